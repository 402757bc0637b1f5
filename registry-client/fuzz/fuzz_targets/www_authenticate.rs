#![no_main]
//! WWW-Authenticate headers come from any server the client talks to.

use libfuzzer_sys::fuzz_target;
use registry_client::auth::parse_www_authenticate;

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    for c in parse_www_authenticate(&header) {
        let _ = c.scopes();
        let _ = c.param("realm");
    }
});
