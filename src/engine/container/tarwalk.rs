//! Writes a directory tree as a tar stream without ever following a
//! symlink: every step is an `*at` call on a directory fd with `NOFOLLOW`,
//! so a symlink in a container (to `/`, to `../../`) is archived as a
//! symlink and never read through. Used by `cp` (both directions),
//! `export` and, in layer mode, `commit` (overlay whiteouts and opaque
//! directories become OCI `.wh.` entries).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

/// Overlay's marker of an opaque directory (the layer unpacker writes the
/// same under this prefix as root).
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

pub struct Walker<W: Write> {
    b: tar::Builder<W>,
    /// Ownership written for every entry instead of the file's own
    /// (`cp` without `-a`).
    owner: Option<(u64, u64)>,
    /// Overlay upper dir → OCI layer: whiteouts and opaque markers.
    layer: bool,
    links: HashMap<(u64, u64), PathBuf>,
    /// Entries (by tar path) left out with everything below them.
    skip: Option<fn(&Path) -> bool>,
}

fn open_dir_nofollow(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

impl<W: Write> Walker<W> {
    pub fn new(w: W, owner: Option<(u64, u64)>, layer: bool) -> Walker<W> {
        let mut b = tar::Builder::new(w);
        b.follow_symlinks(false);
        Walker {
            b,
            owner,
            layer,
            links: HashMap::new(),
            skip: None,
        }
    }

    pub fn with_skip(mut self, skip: fn(&Path) -> bool) -> Walker<W> {
        self.skip = Some(skip);
        self
    }

    pub fn finish(self) -> Result<W> {
        self.b.into_inner().context("cannot finish the tar stream")
    }

    fn header(&self, st: &rfs::Stat, t: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(t);
        h.set_mode(st.st_mode & 0o7777);
        let (uid, gid) = self.owner.unwrap_or((st.st_uid as u64, st.st_gid as u64));
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        h
    }

    /// The file's extended attributes as a PAX header before its entry
    /// (`SCHILY.xattr.*`, as docker writes them; `security.capability`
    /// matters most). Overlay's own markers never leave the engine.
    fn xattrs(&mut self, fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
        let mut names = vec![0u8; 4096];
        let n = match rfs::flistxattr(fd, &mut names) {
            Ok(n) => n,
            Err(rustix::io::Errno::NOTSUP) | Err(rustix::io::Errno::RANGE) => return Ok(()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot list xattrs of {}", path.display()))
            }
        };
        let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for name in names[..n].split(|&b| b == 0).filter(|x| !x.is_empty()) {
            if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                continue;
            }
            let cname = std::ffi::CString::new(name)?;
            let mut val = vec![0u8; 65536];
            let Ok(k) = rfs::fgetxattr(fd, cname.as_c_str(), &mut val) else {
                continue;
            };
            val.truncate(k);
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(name);
            records.push((key, val));
        }
        if records.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        for (k, v) in &records {
            data.extend(pax_record(k, v));
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_path("PaxHeaders.0/xattrs")?;
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b
            .append(&h, data.as_slice())
            .with_context(|| format!("cannot write the xattrs of {}", path.display()))
    }

    fn empty_file(&mut self, path: &Path) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(0);
        self.b
            .append_data(&mut h, path, std::io::empty())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Every entry of the directory `dir`, named `prefix/<name>` (no
    /// prefix for an empty one), sorted by name.
    pub fn add_children(&mut self, dir: BorrowedFd<'_>, prefix: &Path) -> Result<()> {
        let fd = rfs::openat(
            dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .context("cannot open a directory to list it")?;
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        let d = rfs::Dir::read_from(&fd).context("cannot list a directory")?;
        for e in d {
            let e = e.context("cannot read a directory entry")?;
            let n = e.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            names.push(OsStr::from_bytes(n).to_os_string());
        }
        names.sort();
        for n in names {
            let p = prefix.join(&n);
            self.add(fd.as_fd(), &n, &p)?;
        }
        Ok(())
    }

    /// `name` in `dir` (a symlink stays a symlink) as `path`, and for a
    /// directory everything below it.
    pub fn add(&mut self, dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<()> {
        if self.skip.is_some_and(|f| f(path)) {
            return Ok(());
        }
        // The receiving unpacker reads `.wh.` names as whiteouts (deletions);
        // outside layer mode such a file is left out rather than let it
        // delete its sibling at the destination.
        if !self.layer
            && path
                .file_name()
                .is_some_and(|n| n.as_bytes().starts_with(b".wh."))
        {
            tracing::warn!("{}: a .wh. name is not copied", path.display());
            return Ok(());
        }
        let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .with_context(|| format!("cannot stat {}", path.display()))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        match ft {
            FileType::Directory => {
                let fd = open_dir_nofollow(dir, name)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                self.xattrs(fd.as_fd(), path)?;
                let mut h = self.header(&st, tar::EntryType::Directory);
                self.b
                    .append_data(&mut h, path, std::io::empty())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                if self.layer && is_opaque(fd.as_fd()) {
                    self.empty_file(&path.join(".wh..wh..opq"))?;
                }
                if !is_pseudo_fs(fd.as_fd()) {
                    self.add_children(fd.as_fd(), path)?;
                }
            }
            FileType::RegularFile => {
                let key = (st.st_dev as u64, st.st_ino as u64);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key).cloned() {
                        let mut h = self.header(&st, tar::EntryType::Link);
                        return self
                            .b
                            .append_link(&mut h, path, &first)
                            .with_context(|| format!("cannot write {}", path.display()));
                    }
                    self.links.insert(key, path.to_path_buf());
                }
                let fd = rfs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
                    Mode::empty(),
                )
                .with_context(|| format!("cannot open {}", path.display()))?;
                self.xattrs(fd.as_fd(), path)?;
                let size = st.st_size.max(0) as u64;
                let mut h = self.header(&st, tar::EntryType::Regular);
                h.set_size(size);
                // A file that shrinks while we read (a running container)
                // is padded with zeros to the size in the header.
                let data = std::fs::File::from(fd)
                    .take(size)
                    .chain(std::io::repeat(0))
                    .take(size);
                self.b
                    .append_data(&mut h, path, data)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(dir, name, Vec::new())
                    .with_context(|| format!("cannot read the link {}", path.display()))?;
                let mut h = self.header(&st, tar::EntryType::Symlink);
                append_symlink(&mut self.b, &mut h, path, target.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let rdev = st.st_rdev;
                if self.layer && ft == FileType::CharacterDevice && rdev == 0 {
                    let wh = match (path.parent(), path.file_name()) {
                        (Some(p), Some(n)) => {
                            let mut w = std::ffi::OsString::from(".wh.");
                            w.push(n);
                            p.join(w)
                        }
                        _ => return Ok(()),
                    };
                    return self.empty_file(&wh);
                }
                let t = match ft {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = self.header(&st, t);
                if t != tar::EntryType::Fifo {
                    h.set_device_major(rfs::major(rdev))?;
                    h.set_device_minor(rfs::minor(rdev))?;
                }
                self.b
                    .append_data(&mut h, path, std::io::empty())
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            // Sockets have no tar form; docker skips them too.
            _ => {}
        }
        Ok(())
    }
}

/// One PAX record: `LEN KEY=VALUE\n`, LEN counting itself.
fn pax_record(k: &[u8], v: &[u8]) -> Vec<u8> {
    let body = k.len() + v.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} ").into_bytes();
    r.extend_from_slice(k);
    r.push(b'=');
    r.extend_from_slice(v);
    r.push(b'\n');
    r
}

/// A symlink entry with its target byte for byte (the tar crate's
/// `append_link` doubles the leading slash of an absolute target); a
/// target over 100 bytes goes in a GNU long-link entry first.
pub fn append_symlink<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    path: &Path,
    target: &[u8],
) -> std::io::Result<()> {
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    if target.len() > 100 {
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::GNULongLink);
        l.set_path("././@LongLink")?;
        l.set_mode(0o644);
        l.set_size(target.len() as u64 + 1);
        l.set_cksum();
        let mut data = target.to_vec();
        data.push(0);
        b.append(&l, data.as_slice())?;
        h.set_link_name_literal(&target[..100])?;
    } else {
        h.set_link_name_literal(target)?;
    }
    b.append_data(h, path, std::io::empty())
}

/// A running container's `/proc`, `/sys` and the like: the directory is
/// archived, its kernel-made contents are not (docker's `cp` never sees
/// them either).
fn is_pseudo_fs(fd: BorrowedFd<'_>) -> bool {
    const PSEUDO: &[i64] = &[
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x1cd1,      // devpts
        0x1980_0202, // mqueue
        0x6462_6720, // debugfs
        0x7363_6673, // securityfs
        0x7472_6163, // tracefs
        0xcafe_4a11, // bpf
    ];
    // f_type is i64 on x86_64 but narrower on other targets.
    #[allow(clippy::unnecessary_cast)]
    let is = |t| PSEUDO.contains(&(t as i64));
    rustix::fs::fstatfs(fd).is_ok_and(|s| is(s.f_type))
}

fn is_opaque(fd: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 4];
    matches!(rfs::fgetxattr(fd, OPAQUE_XATTR, &mut buf), Ok(n) if n >= 1 && buf[0] == b'y')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, String)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                    link,
                )
            })
            .collect()
    }

    #[test]
    fn pax_records_count_their_own_length() {
        let r = pax_record(b"a", b"b");
        assert_eq!(r, b"6 a=b\n");
        let v = vec![b'x'; 95];
        let r = pax_record(b"k", &v);
        assert_eq!(r.len(), 102);
        assert!(r.starts_with(b"102 k="));
    }

    #[test]
    fn xattrs_travel_but_overlay_markers_do_not() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let fd = rfs::open(&f, OFlags::RDONLY, Mode::empty()).unwrap();
        if rfs::fsetxattr(&fd, "user.berth", b"v1", rfs::XattrFlags::empty()).is_err() {
            return; // no user xattrs on this filesystem
        }
        rfs::fsetxattr(
            &fd,
            "trusted.overlay.opaque",
            b"y",
            rfs::XattrFlags::empty(),
        )
        .unwrap();
        let root = rfs::open(t.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let mut w = Walker::new(Vec::new(), None, false);
        w.add(root.as_fd(), OsStr::new("f"), Path::new("f"))
            .unwrap();
        let bytes = w.finish().unwrap();
        let mut a = tar::Archive::new(&bytes[..]);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        let exts: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| {
                let x = x.unwrap();
                (x.key().unwrap().to_string(), x.value_bytes().to_vec())
            })
            .collect();
        assert_eq!(
            exts,
            vec![("SCHILY.xattr.user.berth".to_string(), b"v1".to_vec())]
        );
    }

    #[test]
    fn symlinks_are_archived_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir(r.join("d")).unwrap();
        std::fs::write(r.join("d/f"), "x").unwrap();
        std::os::unix::fs::symlink("/", r.join("d/root")).unwrap();
        std::os::unix::fs::symlink("../../..", r.join("d/up")).unwrap();
        std::fs::hard_link(r.join("d/f"), r.join("d/g")).unwrap();
        let fd = rfs::open(r, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let mut w = Walker::new(Vec::new(), Some((0, 0)), false);
        w.add(fd.as_fd(), OsStr::new("d"), Path::new("top"))
            .unwrap();
        let got = entries(&w.finish().unwrap());
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["top", "top/f", "top/g", "top/root", "top/up"]);
        assert_eq!(got[2].1, tar::EntryType::Link);
        assert_eq!(got[2].2, "top/f");
        assert_eq!(got[3].1, tar::EntryType::Symlink);
        assert_eq!(got[3].2, "/");
    }
}
