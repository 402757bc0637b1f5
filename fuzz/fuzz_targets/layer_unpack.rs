//! Arbitrary bytes as a layer tar: the unpacker may refuse them, but must
//! never panic and never create anything outside the layer directory.
#![no_main]

use berth::engine::store::unpack::{unpack, UnpackOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else { return };
    let root = tmp.path().join("layer");
    let outside = tmp.path().join("outside");
    if std::fs::create_dir(&root).is_err() || std::fs::create_dir(&outside).is_err() {
        return;
    }
    let _ = unpack(data, &root, &UnpackOptions::default());
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(names.len(), 2, "unpack created {names:?} beside the layer");
    let escaped = std::fs::read_dir(&outside).map(|mut d| d.next().is_some());
    assert!(!escaped.unwrap_or(false), "unpack wrote outside the layer");
});
