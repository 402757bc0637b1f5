//! Escapes tried from images and containers, refused; and the container's
//! root filesystem compared file by file with a reference made from the
//! harness's own tar entries.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::ctr::{err, out, Env};
use common::image::{base_entries, Entry, ImageBuilder, Kind, Layer};

#[test]
fn etc_symlinked_to_a_host_path_writes_nothing_outside() {
    let host = tempfile::Builder::new()
        .prefix("berth-escape-")
        .tempdir()
        .unwrap();
    let target = host.path().to_string_lossy().into_owned();
    // The base layer without /etc, and /etc an absolute symlink to a host
    // directory.
    let mut base = Layer::new();
    for e in base_entries() {
        if !e.path.starts_with(b"etc") {
            base = base.add(e);
        }
    }
    base = base.add(Entry::symlink("etc", &target));
    let e = Env::with(ImageBuilder::empty().layer(base));
    let o = e.run(&[
        "run",
        "--rm",
        "--add-host",
        "x.test:10.1.1.1",
        "--dns",
        "10.0.0.9",
        "-h",
        "esc",
        &e.image,
        "sh",
        "-c",
        "cat /etc/hostname /etc/hosts /etc/resolv.conf 2>&1",
    ]);
    // Whatever berth did with the container, the host directory is empty.
    let left: Vec<_> = std::fs::read_dir(host.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        left.is_empty(),
        "berth wrote outside the rootfs: {left:?}\n{}{}",
        out(&o),
        err(&o)
    );
    // As docker does, the target is made inside the rootfs and the files
    // are mounted there.
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).starts_with("esc\n"), "{}", out(&o));
    assert!(out(&o).contains("10.1.1.1\tx.test"), "{}", out(&o));
    assert!(out(&o).contains("nameserver 10.0.0.9"), "{}", out(&o));
    // -u name reads passwd through the same symlink, also inside.
    std::fs::write(host.path().join("passwd"), "evil:x:0:0::/:/bin/sh\n").unwrap();
    let (code, msg) = e.b.fails(&["run", "--rm", "-u", "evil", &e.image, "id"]);
    assert_eq!(code, 125, "{msg}");
    // The host's passwd is never read.
    assert!(msg.contains("unable to find user evil"), "{msg}");
    let left: Vec<_> = std::fs::read_dir(host.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["passwd"]);
}

#[test]
fn dangling_resolv_conf_symlink_is_created_inside() {
    // systemd-style images: /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf,
    // which the image does not have.
    let e = Env::with(ImageBuilder::new().layer(Layer::new().add(Entry::symlink(
        "etc/resolv.conf",
        "../run/systemd/resolve/stub-resolv.conf",
    ))));
    let o = e.run(&[
        "run",
        "--rm",
        "--dns",
        "10.0.0.7",
        &e.image,
        "sh",
        "-c",
        "cat /etc/resolv.conf; readlink /etc/resolv.conf",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        out(&o),
        "nameserver 10.0.0.7\n../run/systemd/resolve/stub-resolv.conf\n"
    );
}

#[test]
fn no_berth_fd_and_no_host_binary_reachable() {
    let e = Env::new();
    let fid =
        e.b.ok(&["run", "-d", "--name", "fds", &e.image, "sleep", "1000"]);
    let fid = fid.trim().to_string();
    assert_eq!(e.b.ok(&["exec", "fds", "ls", "/proc/1/fd"]), "0\n1\n2\n");
    assert_eq!(
        e.b.ok(&["exec", "fds", "sh", "-c", "ls /proc/$$/fd; true"]),
        "0\n1\n2\n"
    );
    let o =
        e.b.ok(&["run", "--rm", &e.image, "sh", "-c", "ls /proc/$$/fd; true"]);
    assert_eq!(o, "0\n1\n2\n");
    let pid: i32 = e.inspect("fds", "{{.State.Pid}}").parse().unwrap();
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"]);
    // CVE-2019-5736: while execs come and go, the container looks for any
    // process whose exe is not its own busybox and tries to open it for
    // writing.
    e.b.ok(&[
        "exec",
        "-d",
        "fds",
        "sh",
        "-c",
        "while :; do for p in /proc/[0-9]*; do l=$(readlink $p/exe 2>/dev/null); \
         case \"$l\" in ''|/bin/busybox) ;; *) echo \"$p $l\" >> /tmp/seen; \
         (: >> $p/exe) 2>/dev/null && echo WROTE >> /tmp/seen;; esac; done; done",
    ]);
    let bin = common::berth::berth_bin();
    let before = std::fs::metadata(&bin).unwrap();
    for _ in 0..20 {
        e.b.ok(&["exec", "fds", "true"]);
    }
    let seen =
        e.b.ok(&["exec", "fds", "sh", "-c", "cat /tmp/seen 2>/dev/null; true"]);
    assert!(!seen.contains("WROTE"), "{seen}");
    assert!(
        !seen.contains("berth"),
        "a berth process was visible: {seen}"
    );
    let after = std::fs::metadata(&bin).unwrap();
    assert_eq!((before.len(), before.mtime()), (after.len(), after.mtime()));
    // The container's own /proc/self/exe is its busybox, never berth.
    assert_eq!(
        e.b.ok(&["exec", "fds", "readlink", "/proc/self/exe"]),
        "/bin/busybox\n"
    );
    // The `exec -d` process has a reaper of its own: a killed container
    // finishes exiting, and `rm -f` leaves no cgroup behind.
    e.b.ok(&["rm", "-f", "fds"]);
    let left = common::cgroupfs::leftovers(std::slice::from_ref(&fid));
    assert!(left.is_empty(), "{left:?}");
}

fn lgetxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let cp = CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    let cn = CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// The tree the layers describe, applied in order: path -> entry.
fn reference(layers: &[Vec<Entry>]) -> BTreeMap<String, Entry> {
    let mut tree: BTreeMap<String, Entry> = BTreeMap::new();
    for l in layers {
        for e in l {
            let p = String::from_utf8_lossy(&e.path)
                .trim_end_matches('/')
                .to_string();
            let (dir, name) = match p.rsplit_once('/') {
                Some((d, n)) => (format!("{d}/"), n.to_string()),
                None => (String::new(), p.clone()),
            };
            if name == ".wh..wh..opq" {
                tree.retain(|k, _| !k.starts_with(&dir));
                continue;
            }
            if let Some(gone) = name.strip_prefix(".wh.") {
                let g = format!("{dir}{gone}");
                tree.retain(|k, _| k != &g && !k.starts_with(&format!("{g}/")));
                continue;
            }
            tree.insert(p, e.clone());
        }
    }
    tree
}

#[test]
fn root_filesystem_matches_a_reference_unpack() {
    let extra = vec![
        Entry::dir("data").mode(0o710).owner(12, 34),
        Entry::file("data/suid", "s").mode(0o4755).owner(1000, 1000),
        Entry::file("data/sgid", "g").mode(0o2750).owner(0, 50),
        Entry::file("data/attr", "x").xattr("user.berth", "v1"),
        Entry::hardlink("data/attr-link", "data/attr"),
        Entry::symlink("data/abs", "/etc/passwd"),
        Entry::symlink("data/rel", "../bin/busybox"),
        Entry::symlink("data/dangling", "/nowhere"),
        Entry::fifo("data/fifo").mode(0o600),
        Entry::dir("data/opq"),
        Entry::file("data/opq/old", "old"),
        Entry::whiteout("etc/os-release"),
        Entry::file("usr/bin/tool", "#!/bin/sh\n")
            .mode(0o700)
            .owner(5, 6),
    ];
    // Parents are repeated as docker's builder writes them (a parent a
    // layer lacks is made 0755 root, in docker as in berth).
    let top = vec![
        Entry::dir("data").mode(0o710).owner(12, 34),
        Entry::dir("data/opq"),
        Entry::opaque("data/opq"),
        Entry::file("data/opq/new", "new").mode(0o640),
    ];
    let mut l2 = Layer::new();
    for e in &extra {
        l2 = l2.add(e.clone());
    }
    let mut l3 = Layer::new();
    for e in &top {
        l3 = l3.add(e.clone());
    }
    let e = Env::with(ImageBuilder::new().layer(l2).layer(l3));
    let reference = reference(&[base_entries(), extra, top]);
    e.b.ok(&["run", "-d", "--name", "cmp", &e.image, "sleep", "1000"]);
    let pid: i32 = e.inspect("cmp", "{{.State.Pid}}").parse().unwrap();
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let mut checked = 0;
    for (p, ent) in &reference {
        // Mount points the engine puts over the image.
        if [
            "etc/hosts",
            "etc/hostname",
            "etc/resolv.conf",
            "proc",
            "sys",
            "dev",
        ]
        .contains(&p.as_str())
        {
            continue;
        }
        let path = root.join(p);
        let md = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|err| panic!("{p} missing in the container: {err}"));
        let ft = md.mode() & libc::S_IFMT;
        let (want_type, want_mode) = match &ent.kind {
            Kind::File(data) => {
                assert_eq!(std::fs::read(&path).unwrap(), *data, "{p} content");
                (libc::S_IFREG, ent.mode)
            }
            Kind::Dir => (libc::S_IFDIR, ent.mode),
            Kind::Symlink(t) => {
                assert_eq!(
                    std::fs::read_link(&path)
                        .unwrap()
                        .as_os_str()
                        .as_encoded_bytes(),
                    t.as_slice(),
                    "{p} target"
                );
                (libc::S_IFLNK, 0o777)
            }
            Kind::Hardlink(t) => {
                let other =
                    std::fs::symlink_metadata(root.join(String::from_utf8_lossy(t).as_ref()))
                        .unwrap();
                assert_eq!(
                    (md.dev(), md.ino()),
                    (other.dev(), other.ino()),
                    "{p} is not a hardlink"
                );
                assert!(md.nlink() >= 2, "{p}");
                checked += 1;
                continue;
            }
            Kind::Fifo => (libc::S_IFIFO, ent.mode),
            _ => continue,
        };
        assert_eq!(ft, want_type, "{p} type");
        if want_type != libc::S_IFLNK {
            assert_eq!(md.mode() & 0o7777, want_mode, "{p} mode {:o}", md.mode());
        }
        assert_eq!(
            (md.uid() as u64, md.gid() as u64),
            (ent.uid, ent.gid),
            "{p} owner"
        );
        for (k, v) in &ent.xattrs {
            assert_eq!(
                lgetxattr(&path, k).as_deref(),
                Some(v.as_slice()),
                "{p} xattr {k}"
            );
        }
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
    // What the layers deleted is gone, what the opaque dir hid is hidden.
    for gone in ["etc/os-release", "data/opq/old"] {
        assert!(
            std::fs::symlink_metadata(root.join(gone)).is_err(),
            "{gone} visible"
        );
    }
    // Nothing beyond the reference but what the engine adds.
    let mut extra_paths = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = if rel.is_empty() {
            root.clone()
        } else {
            root.join(&rel)
        };
        for d in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            let p = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if ["proc", "sys", "dev"].contains(&p.as_str()) {
                continue;
            }
            if !reference.contains_key(&p) {
                extra_paths.push(p.clone());
            }
            if d.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    extra_paths.sort();
    assert_eq!(
        extra_paths,
        ["etc/hostname", "etc/resolv.conf"],
        "paths not in the image"
    );
}
