//! Shared harness for the end-to-end tests of the `berth` binary.
//!
//! The generic fixtures (images, registries, token server, fault proxy,
//! HTTP, certificates, processes) live in the `testkit` crate and are
//! re-exported here, so `common::image::...` paths keep working. What
//! stays here is specific to the berth binary and its store.
#![allow(dead_code)]

pub mod berth;
pub mod cgroupfs;
pub mod ctr;
pub mod netcfg;
pub mod store;
pub mod web;
// Each test binary uses only some of these; the rest would warn.
#[allow(unused_imports)]
pub use testkit::{
    http, image, mounts, pki, proc, proxy, push, raw, registry, server, token_server,
};
