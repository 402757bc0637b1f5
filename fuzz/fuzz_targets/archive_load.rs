//! Arbitrary bytes as a `berth load` archive (docker-archive / OCI layout,
//! any compression): refused with an error or loaded, never a panic.
#![no_main]

use berth::engine::archive::load;
use berth::engine::paths::Paths;
use berth::engine::store::Store;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else { return };
    let Ok(store) = Store::open(Paths::new(Some(tmp.path().to_path_buf()))) else {
        return;
    };
    let _ = load(&store, std::io::Cursor::new(data.to_vec()), &mut |_, _, _| {});
});
