//! Shared harness for the end-to-end tests of the `berth` binary.
//!
//! Every fixture here is built without the code under test: images are made
//! offline from Debian's busybox-static, registries are the real CNCF
//! distribution program, and seeding uses a tiny HTTP client of our own.
//!
//! Processes started here (registries, proxies, token servers) are owned by
//! guards whose `Drop` kills and reaps them; children also get
//! `PR_SET_PDEATHSIG(SIGKILL)` so a test killed outright does not leak them.
//! That signal fires when the *spawning thread* ends, so start fixtures from
//! the test's own thread, not from a short-lived helper thread.
#![allow(dead_code)]

pub mod berth;
pub mod cgroupfs;
pub mod ctr;
pub mod http;
pub mod image;
pub mod pki;
pub mod proc;
pub mod proxy;
pub mod push;
pub mod registry;
pub mod store;
pub mod token_server;
