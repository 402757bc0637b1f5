#![no_main]
//! Any `-v`, `--mount`, `--volumes-from` or `--tmpfs` value must parse or
//! fail with an error, never panic; and whatever parses must be safe to
//! act on: an absolute target that is not `/`, an absolute bind source, and
//! a volume name that cannot leave the volumes directory.

use std::path::Path;

use berth::engine::volume::parse::{self, Kind};
use libfuzzer_sys::fuzz_target;

fn check(r: &parse::Request) {
    assert!(r.target.starts_with('/'), "relative target {:?}", r.target);
    assert_ne!(parse::lexical_clean(Path::new(&r.target)), Path::new("/"));
    match r.kind() {
        Kind::Bind => assert!(r.source.starts_with('/'), "relative bind source {:?}", r.source),
        Kind::Volume => assert!(
            r.source.is_empty()
                || (parse::valid_volume_name(&r.source)
                    && !r.source.contains('/')
                    && r.source != ".."),
            "volume name {:?}",
            r.source
        ),
        Kind::Tmpfs => assert!(r.source.is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let cwd = Path::new("/work/dir");
    if let Ok(r) = parse::parse_volume(s, cwd) {
        check(&r);
    }
    if let Ok(r) = parse::parse_mount(s, cwd) {
        check(&r);
        let _ = parse::tmpfs_options(r.tmpfs_size, r.tmpfs_mode, r.read_only);
    }
    let _ = parse::parse_volumes_from(s);
    if let Ok((d, _)) = parse::parse_tmpfs(s) {
        assert!(d.starts_with('/'));
    }
    let _ = parse::csv_fields(s);
    let _ = parse::ram_in_bytes(s);
});
