#![no_main]
//! References, digests and platforms come from users and registries: they
//! must parse or fail, never panic, and what parses must round-trip.

use libfuzzer_sys::fuzz_target;
use registry_client::{Digest, Platform, Reference};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = s.parse::<Reference>() {
        let again: Reference = r.to_string().parse().expect("Display output must parse");
        assert_eq!(again, r);
        let _ = r.familiar();
        let _ = r.api_host();
    }
    if let Ok(d) = s.parse::<Digest>() {
        assert_eq!(d.to_string(), s);
    }
    let _ = s.parse::<Platform>();
    let _ = registry_client::reference::normalize_registry(s);
});
