//! Hostile and ordinary layers against the real kernel (run as root).

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::*;
use crate::engine::store::testutil::{TarMaker, MTIME};

/// A layer root with an empty sentinel directory beside it.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sentinel: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("layer");
        let sentinel = dir.path().join("sentinel");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&sentinel).unwrap();
        Fixture {
            _dir: dir,
            root,
            sentinel,
        }
    }

    fn run(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
        unpack(tar, &self.root, &UnpackOptions::default())
    }

    fn sentinel_empty(&self) -> bool {
        std::fs::read_dir(&self.sentinel).unwrap().next().is_none()
            && std::fs::read_dir(self.root.parent().unwrap())
                .unwrap()
                .count()
                == 2
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

fn entry_of(e: UnpackError) -> String {
    match e {
        UnpackError::Entry { entry, .. } => entry,
        other => panic!("expected an entry error, got {other}"),
    }
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

#[test]
fn dotdot_is_refused() {
    let f = Fixture::new();
    let tar = TarMaker::new()
        .file("ok", b"1")
        .file("../x", b"evil")
        .finish();
    let e = f.run(&tar).unwrap_err();
    assert_eq!(entry_of(e), "../x");
    assert!(f.sentinel_empty());
    let tar = TarMaker::new().file("a/../../sentinel/x", b"evil").finish();
    assert_eq!(entry_of(f.run(&tar).unwrap_err()), "a/../../sentinel/x");
    assert!(f.sentinel_empty());
}

#[test]
fn absolute_paths_land_inside() {
    let f = Fixture::new();
    let tar = TarMaker::new()
        .file("/abs/file", b"x")
        .file("./rel", b"y")
        .finish();
    f.run(&tar).unwrap();
    assert_eq!(std::fs::read(f.p("abs/file")).unwrap(), b"x");
    assert_eq!(std::fs::read(f.p("rel")).unwrap(), b"y");
    assert!(f.sentinel_empty());
}

#[test]
fn write_through_symlink_is_refused() {
    let f = Fixture::new();
    let target = f.sentinel.to_str().unwrap().to_string();
    let tar = TarMaker::new()
        .symlink("a", &target)
        .file("a/evil", b"evil")
        .finish();
    assert_eq!(entry_of(f.run(&tar).unwrap_err()), "a/evil");
    assert!(f.sentinel_empty());
}

#[test]
fn relative_symlink_escape_is_refused() {
    let f = Fixture::new();
    let tar = TarMaker::new()
        .symlink("up", "..")
        .file("up/sentinel/x", b"evil")
        .finish();
    assert_eq!(entry_of(f.run(&tar).unwrap_err()), "up/sentinel/x");
    assert!(f.sentinel_empty());
    // Symlinks deeper in the path are refused as well.
    let f = Fixture::new();
    let tar = TarMaker::new()
        .dir("d", 0o755)
        .symlink("d/l", "../..")
        .dir("d/l/sentinel/y", 0o755)
        .finish();
    assert_eq!(entry_of(f.run(&tar).unwrap_err()), "d/l/sentinel/y");
    assert!(f.sentinel_empty());
}

#[test]
fn hardlink_escape_is_refused() {
    let f = Fixture::new();
    let tar = TarMaker::new().hardlink("h", "../../etc/passwd").finish();
    assert_eq!(entry_of(f.run(&tar).unwrap_err()), "h");
    let tar = TarMaker::new().hardlink("h2", "/etc/passwd").finish();
    // Absolute targets are layer-relative; /etc/passwd is not in the layer.
    assert_eq!(entry_of(f.run(&tar).unwrap_err()), "h2");
    assert!(!f.p("h2").exists());
    assert!(f.sentinel_empty());
}

#[test]
fn hardlink_through_symlinked_dir_is_refused() {
    let f = Fixture::new();
    let target = f.sentinel.parent().unwrap().to_str().unwrap().to_string();
    let outside = f.sentinel.parent().unwrap().join("outside-file");
    std::fs::write(&outside, b"keep").unwrap();
    let tar = TarMaker::new()
        .symlink("s", &target)
        .hardlink("h", "s/outside-file")
        .finish();
    assert_eq!(entry_of(f.run(&tar).unwrap_err()), "h");
    assert_eq!(std::fs::metadata(&outside).unwrap().nlink(), 1);
    std::fs::remove_file(&outside).unwrap();
    assert!(f.sentinel_empty());
}

#[test]
fn hardlink_to_symlink_links_the_symlink() {
    let f = Fixture::new();
    let outside = f.sentinel.parent().unwrap().join("outside-file");
    std::fs::write(&outside, b"keep").unwrap();
    let tar = TarMaker::new()
        .symlink("s", outside.to_str().unwrap())
        .hardlink("h", "s")
        .finish();
    f.run(&tar).unwrap();
    let h = std::fs::symlink_metadata(f.p("h")).unwrap();
    assert!(h.file_type().is_symlink());
    assert_eq!(h.ino(), std::fs::symlink_metadata(f.p("s")).unwrap().ino());
    assert_eq!(std::fs::metadata(&outside).unwrap().nlink(), 1);
    assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
    std::fs::remove_file(&outside).unwrap();
    assert!(f.sentinel_empty());
}

#[test]
fn hardlink_to_dir_or_missing_is_refused() {
    let f = Fixture::new();
    let tar = TarMaker::new().dir("d", 0o755).hardlink("h", "d").finish();
    assert_eq!(entry_of(f.run(&tar).unwrap_err()), "h");
    let f = Fixture::new();
    let tar = TarMaker::new().hardlink("h", "nothing").finish();
    assert_eq!(entry_of(f.run(&tar).unwrap_err()), "h");
}

#[test]
fn dir_replaced_by_symlink_then_entry_below_is_refused() {
    let f = Fixture::new();
    let target = f.sentinel.to_str().unwrap().to_string();
    let tar = TarMaker::new()
        .dir("d", 0o755)
        .file("d/a", b"1")
        .symlink("d", &target)
        .file("d/x", b"evil")
        .finish();
    assert_eq!(entry_of(f.run(&tar).unwrap_err()), "d/x");
    assert!(f.sentinel_empty());
}

#[test]
fn file_replacing_absolute_symlink_does_not_write_through() {
    let f = Fixture::new();
    let target = f.sentinel.join("f");
    let tar = TarMaker::new()
        .symlink("abs", target.to_str().unwrap())
        .file("abs", b"content")
        .finish();
    f.run(&tar).unwrap();
    let m = std::fs::symlink_metadata(f.p("abs")).unwrap();
    assert!(m.file_type().is_file());
    assert_eq!(std::fs::read(f.p("abs")).unwrap(), b"content");
    assert!(f.sentinel_empty());
}

#[test]
fn overlay_xattr_from_tar_is_refused() {
    let f = Fixture::new();
    let tar = TarMaker::new()
        .pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
        .dir("d", 0o755)
        .finish();
    assert_eq!(entry_of(f.run(&tar).unwrap_err()), "d");
    let f = Fixture::new();
    let opts = UnpackOptions {
        overlay_xattr_prefix: "user.overlay.".into(),
    };
    let tar = TarMaker::new()
        .pax(&[("SCHILY.xattr.user.overlay.redirect", b"/x")])
        .file("f", b"")
        .finish();
    let e = unpack(&tar[..], &f.root, &opts).unwrap_err();
    assert_eq!(entry_of(e), "f");
}

#[test]
fn unsupported_entry_type_is_named() {
    let f = Fixture::new();
    let tar = TarMaker::new()
        .node("weird", EntryType::new(b'Z'), 0, 0, 0o644)
        .finish();
    let e = f.run(&tar).unwrap_err();
    assert!(e.to_string().contains("unsupported"), "{e}");
    assert_eq!(entry_of(e), "weird");
}

#[test]
fn whiteouts_become_devices_and_opaque_xattrs() {
    let f = Fixture::new();
    let mut t = TarMaker::new();
    t.dir("etc", 0o755);
    t.file_with(b"etc/.wh.gone", b"", 0o644, 1234, 5678);
    t.dir("opq", 0o755);
    t.file("opq/.wh..wh..opq", b"");
    t.file("opq/kept", b"k");
    t.file(".wh..wh.plnk", b"");
    f.run(&t.finish()).unwrap();
    let m = std::fs::symlink_metadata(f.p("etc/gone")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    assert!(!f.p("etc/.wh.gone").exists());
    assert_eq!(
        xattr(&f.p("opq"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!f.p("opq/.wh..wh..opq").exists());
    assert!(!f.p(".wh..wh.plnk").exists());
    assert_eq!(std::fs::read(f.p("opq/kept")).unwrap(), b"k");
}

#[test]
fn whiteout_replaces_existing_entry() {
    let f = Fixture::new();
    let tar = TarMaker::new()
        .dir("d", 0o755)
        .file("d/x", b"1")
        .file(".wh.d", b"")
        .finish();
    f.run(&tar).unwrap();
    assert!(std::fs::symlink_metadata(f.p("d"))
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn links_nodes_modes_owners() {
    let f = Fixture::new();
    let mut t = TarMaker::new();
    t.file_with(b"bin/su", b"setuid", 0o4755, 0, 0);
    t.dir("sgid", 0o2755);
    t.dir("tmp", 0o1777);
    t.file_with(b"owned", b"x", 0o640, 1234, 5678);
    t.hardlink("bin/su-link", "bin/su");
    t.symlink("rel", "../../weird/../x");
    t.symlink("abs", "/abs/target");
    t.node("fifo", EntryType::Fifo, 0, 0, 0o600);
    t.node("null", EntryType::Char, 1, 3, 0o666);
    t.node("blk", EntryType::Block, 7, 0, 0o660);
    f.run(&t.finish()).unwrap();

    let su = std::fs::metadata(f.p("bin/su")).unwrap();
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(
        su.ino(),
        std::fs::metadata(f.p("bin/su-link")).unwrap().ino()
    );
    assert_eq!(su.nlink(), 2);
    assert_eq!(
        std::fs::metadata(f.p("bin")).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        std::fs::metadata(f.p("sgid")).unwrap().permissions().mode() & 0o7777,
        0o2755
    );
    assert_eq!(
        std::fs::metadata(f.p("tmp")).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
    let o = std::fs::metadata(f.p("owned")).unwrap();
    assert_eq!(
        (o.uid(), o.gid(), o.permissions().mode() & 0o7777),
        (1234, 5678, 0o640)
    );
    assert_eq!(
        std::fs::read_link(f.p("rel")).unwrap(),
        Path::new("../../weird/../x")
    );
    assert_eq!(
        std::fs::read_link(f.p("abs")).unwrap(),
        Path::new("/abs/target")
    );
    assert!(std::fs::symlink_metadata(f.p("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let null = std::fs::symlink_metadata(f.p("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o7777, 0o666);
    assert!(std::fs::symlink_metadata(f.p("blk"))
        .unwrap()
        .file_type()
        .is_block_device());
}

#[test]
fn capability_xattr_and_times_are_kept() {
    let f = Fixture::new();
    // cap_net_bind_service+ep, VFS_CAP_REVISION_2 as setcap writes it.
    let cap: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut t = TarMaker::new();
    t.dir_mtime("d", 0o755, 1_500_000_000);
    t.pax(&[
        ("SCHILY.xattr.security.capability", &cap[..]),
        ("SCHILY.xattr.user.note", b"hello"),
        ("mtime", b"1600000000.123456789"),
    ]);
    t.file_with(b"d/ping", b"bin", 0o755, 0, 0);
    t.file("d/plain", b"p");
    f.run(&t.finish()).unwrap();
    assert_eq!(
        xattr(&f.p("d/ping"), "security.capability").as_deref(),
        Some(&cap[..])
    );
    assert_eq!(
        xattr(&f.p("d/ping"), "user.note").as_deref(),
        Some(&b"hello"[..])
    );
    let m = std::fs::metadata(f.p("d/ping")).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 123_456_789));
    assert_eq!(
        std::fs::metadata(f.p("d/plain")).unwrap().mtime(),
        MTIME as i64
    );
    // Set after its children were written.
    assert_eq!(std::fs::metadata(f.p("d")).unwrap().mtime(), 1_500_000_000);
}

#[test]
fn odd_names() {
    let f = Fixture::new();
    let long = format!("dir/{}", "n".repeat(230));
    let names: Vec<Vec<u8>> = vec![
        b"with space".to_vec(),
        "ünïcødé-日本".as_bytes().to_vec(),
        b"new\nline".to_vec(),
        b"\xff\xfe-not-utf8".to_vec(),
        long.as_bytes().to_vec(),
    ];
    let mut t = TarMaker::new();
    for n in &names {
        t.file_with(n, n, 0o644, 0, 0);
    }
    f.run(&t.finish()).unwrap();
    use std::os::unix::ffi::OsStrExt;
    for n in &names {
        let p = f.root.join(std::ffi::OsStr::from_bytes(n));
        assert_eq!(&std::fs::read(&p).unwrap(), n);
    }
}

#[test]
fn later_entries_replace_earlier_ones() {
    let f = Fixture::new();
    let tar = TarMaker::new()
        .file("x", b"first")
        .file("x", b"second")
        .dir("y", 0o755)
        .file("y/inner", b"1")
        .file("y", b"now a file")
        .file("z", b"file")
        .dir("z", 0o700)
        .dir("z", 0o755)
        .finish();
    f.run(&tar).unwrap();
    assert_eq!(std::fs::read(f.p("x")).unwrap(), b"second");
    assert_eq!(std::fs::read(f.p("y")).unwrap(), b"now a file");
    let z = std::fs::metadata(f.p("z")).unwrap();
    assert!(z.is_dir());
    assert_eq!(z.permissions().mode() & 0o777, 0o755);
}

#[test]
fn root_entry_metadata_applies() {
    let f = Fixture::new();
    let tar = TarMaker::new().dir("./", 0o751).file("a", b"").finish();
    f.run(&tar).unwrap();
    let m = std::fs::metadata(&f.root).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o751);
    assert_eq!(m.mtime(), MTIME as i64);
}

#[test]
fn truncated_archive_is_an_error() {
    let f = Fixture::new();
    let tar = TarMaker::new().file("big", &[7u8; 4096]).finish();
    let e = f.run(&tar[..512 + 1000]).unwrap_err();
    assert!(
        matches!(e, UnpackError::Entry { .. } | UnpackError::Archive(_)),
        "{e}"
    );
}
