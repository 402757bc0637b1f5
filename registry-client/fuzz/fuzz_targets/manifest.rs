#![no_main]
//! Manifests are untrusted JSON; the first byte picks the Content-Type so
//! both the typed and the sniffing paths are explored.

use libfuzzer_sys::fuzz_target;
use registry_client::manifest::{self, Manifest};

const TYPES: &[&str] = &[
    "",
    "application/json",
    manifest::OCI_MANIFEST,
    manifest::OCI_INDEX,
    manifest::DOCKER_MANIFEST,
    manifest::DOCKER_MANIFEST_LIST,
    manifest::DOCKER_SCHEMA1_SIGNED,
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else { return };
    let ct = TYPES[first as usize % TYPES.len()];
    if let Ok(Manifest::Index(idx)) = Manifest::parse(body, ct) {
        let _ = registry_client::Platform::host().select(&idx);
    }
});
