//! `cp` between a container and the host with docker's path rules.
//!
//! Every path in the container is resolved by fd from the container's root
//! with `openat2(RESOLVE_IN_ROOT)`: a symlink to `/` or `../../` in the
//! container points at the container's own root, never the host's. Reads
//! walk with `*at` + `NOFOLLOW` (`tarwalk`), writes go through the layer
//! unpacker (`*at`, `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, existing
//! symlinks replaced, never written through). The data moves as a tar
//! stream between a producer thread and the unpacker, as docker's does.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::access::Rootfs;
use super::tarwalk::Walker;
use crate::engine::store::unpack::{unpack_at, UnpackOptions};

/// One side of `cp`, as docker's `splitCpArg` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Local(String),
    Container { container: String, path: String },
}

/// A local path when it is absolute or starts with `.`, or has no colon;
/// otherwise `CONTAINER:PATH` split at the first colon.
pub fn split_arg(arg: &str) -> Endpoint {
    if arg.starts_with('/') || arg.starts_with('.') {
        return Endpoint::Local(arg.to_string());
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => Endpoint::Container {
            container: c.to_string(),
            path: p.to_string(),
        },
        _ => Endpoint::Local(arg.to_string()),
    }
}

/// docker: `SRC/.` copies the directory's contents, not the directory.
pub fn is_contents(p: &str) -> bool {
    p == "." || p.ends_with("/.")
}

pub fn has_trailing_sep(p: &str) -> bool {
    p.len() > 1 && p.ends_with('/')
}

/// Lexically cleaned absolute path in the container ("" is `/`).
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

fn split_last(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("", p),
    }
}

fn open_in_root(root: BorrowedFd<'_>, rel: &str) -> rustix::io::Result<OwnedFd> {
    crate::engine::fsutil::openat2(
        root,
        if rel.is_empty() { "." } else { rel },
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// A path in the container: its parent directory (an fd inside the root)
/// and its name there; `kind` None when it does not exist.
pub struct Located {
    pub parent: OwnedFd,
    pub name: OsString,
    pub kind: Option<FileType>,
    /// The cleaned path after following symlinks.
    pub path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("parent directory missing")]
    MissingParent,
    #[error("too many levels of symbolic links")]
    Loop,
    #[error("{0}")]
    Sys(#[from] Errno),
}

/// Finds `path` below `root`, following a final symlink when `follow`
/// (each hop is resolved again inside the root).
pub fn locate(root: BorrowedFd<'_>, path: &str, follow: bool) -> Result<Located, LocateError> {
    let mut cur = clean(path);
    for _ in 0..40 {
        let (parent, name) = split_last(&cur);
        if name.is_empty() {
            return Ok(Located {
                parent: open_in_root(root, "")?,
                name: ".".into(),
                kind: Some(FileType::Directory),
                path: String::new(),
            });
        }
        let pfd = match open_in_root(root, parent) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Err(LocateError::MissingParent),
            Err(e) => return Err(e.into()),
        };
        let kind = match rfs::statat(&pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(FileType::from_raw_mode(st.st_mode)),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(e.into()),
        };
        if follow && kind == Some(FileType::Symlink) {
            let t = rfs::readlinkat(&pfd, name, Vec::new())?;
            let t = String::from_utf8_lossy(t.as_bytes()).into_owned();
            cur = if t.starts_with('/') {
                clean(&t)
            } else {
                clean(&format!("{parent}/{t}"))
            };
            continue;
        }
        return Ok(Located {
            parent: pfd,
            name: name.into(),
            kind,
            path: cur.clone(),
        });
    }
    Err(LocateError::Loop)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CpOpts {
    /// `-a`: keep uid/gid.
    pub archive: bool,
    /// `-L`: follow a symlink given as SRC.
    pub follow: bool,
}

fn not_found(path: &str, name: &str) -> anyhow::Error {
    anyhow!("Error response from daemon: Could not find the file {path} in container {name}")
}

/// Where to unpack on the receiving side and under which top name.
enum Place {
    /// Unpack into this directory; the source's top entry gets `name`.
    Named(OwnedFd, OsString),
    /// Unpack the source's children into this directory (`SRC/.`).
    Contents(OwnedFd),
}

/// Counts the archive bytes (docker reports them: "Successfully copied").
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(b)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The producer half: a tar of `name` in `dir` (or of its children);
/// returns its size.
fn produce(
    w: impl Write,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    place_name: Option<&OsStr>,
    owner: Option<(u64, u64)>,
) -> Result<u64> {
    let mut walker = Walker::new(Counting { inner: w, n: 0 }, owner, false);
    match place_name {
        Some(n) => walker.add(dir, name, Path::new(n))?,
        None => {
            let fd = rfs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .context("cannot open the source directory")?;
            walker.add_children(fd.as_fd(), Path::new(""))?;
        }
    }
    let mut w = walker.finish()?;
    w.flush()?;
    Ok(w.n)
}

/// Streams the source through a pipe into the unpacker at `place`.
fn transfer(
    src_dir: BorrowedFd<'_>,
    src_name: &OsStr,
    place: Place,
    owner: Option<(u64, u64)>,
) -> Result<u64> {
    let (reader, writer) = std::io::pipe().context("cannot create a pipe")?;
    let (target, top) = match place {
        Place::Named(fd, n) => (fd, Some(n)),
        Place::Contents(fd) => (fd, None),
    };
    std::thread::scope(|s| {
        let producer = s.spawn(move || produce(writer, src_dir, src_name, top.as_deref(), owner));
        let unpacked = unpack_at(reader, target, &UnpackOptions::default());
        let produced = producer
            .join()
            .map_err(|_| anyhow!("the copy's reader thread panicked"))?;
        let n = produced?;
        unpacked.map_err(|e| anyhow!("{e}"))?;
        Ok(n)
    })
}

fn host_dir(p: &Path) -> Result<OwnedFd> {
    rfs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("cannot open {}", p.display()))
}

fn host_parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(pp) if !pp.as_os_str().is_empty() => pp.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `cp CONTAINER:SRC DEST` (DEST `-`: a tar on `out`).
/// Returns the size of the archive that moved.
pub fn copy_out(rf: &Rootfs, src: &str, dest: &str, o: CpOpts, out: impl Write) -> Result<u64> {
    let root = rf.root_fd()?;
    let cname = &rf.rec.name;
    let shown = if src.starts_with('/') {
        src.to_string()
    } else {
        format!("/{src}")
    };
    let loc = match locate(root.as_fd(), src, o.follow) {
        Ok(l) => l,
        Err(LocateError::MissingParent) => return Err(not_found(&shown, cname)),
        Err(e) => bail!("cannot resolve {shown} in container {cname}: {e}"),
    };
    let Some(kind) = loc.kind else {
        return Err(not_found(&shown, cname));
    };
    let src_dir = kind == FileType::Directory;
    if has_trailing_sep(src) && !src_dir {
        bail!("Error response from daemon: {shown}: not a directory");
    }
    // SAFETY: getuid/getgid have no preconditions.
    let me = unsafe { (libc::getuid() as u64, libc::getgid() as u64) };
    let owner = (!o.archive).then_some(me);
    let base: OsString = if loc.path.is_empty() {
        "/".into()
    } else {
        split_last(&loc.path).1.into()
    };
    // The container's `/` has no name of its own: its contents are copied.
    let contents = src_dir && (is_contents(src) || loc.path.is_empty());
    if dest == "-" {
        let top = if contents {
            None
        } else {
            Some(base.as_os_str())
        };
        return produce(out, loc.parent.as_fd(), &loc.name, top, owner);
    }
    let d = Path::new(dest);
    let place = match std::fs::metadata(d) {
        Ok(m) if m.is_dir() => {
            let fd = host_dir(d)?;
            if contents {
                Place::Contents(fd)
            } else {
                Place::Named(fd, base)
            }
        }
        Ok(_) => {
            if src_dir {
                bail!("cannot copy directory");
            }
            let name = d
                .file_name()
                .ok_or_else(|| anyhow!("invalid output path {dest}"))?;
            Place::Named(host_dir(&host_parent(d))?, name.to_os_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = host_parent(d);
            if !parent.is_dir() {
                bail!(
                    "invalid output path: directory {:?} does not exist",
                    parent.display().to_string()
                );
            }
            if has_trailing_sep(dest) && !src_dir {
                bail!("no such directory");
            }
            let name = d
                .file_name()
                .ok_or_else(|| anyhow!("invalid output path {dest}"))?
                .to_os_string();
            if contents {
                std::fs::create_dir(d).with_context(|| format!("cannot create {dest}"))?;
                Place::Contents(host_dir(d)?)
            } else {
                Place::Named(host_dir(&parent)?, name)
            }
        }
        Err(e) => return Err(e).with_context(|| format!("cannot stat {dest}")),
    };
    transfer(loc.parent.as_fd(), &loc.name, place, owner)
}

/// Where `cp` writes in the container: resolved and checked as docker
/// does (the destination's own symlink is followed inside the root).
fn dest_place(
    rf: &Rootfs,
    root: BorrowedFd<'_>,
    dest: &str,
    src_dir: bool,
    src_contents: bool,
    src_base: &OsStr,
) -> Result<Place> {
    let cname = &rf.rec.name;
    let shown = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("/{dest}")
    };
    let loc = match locate(root, dest, true) {
        Ok(l) => l,
        Err(LocateError::MissingParent) => {
            let cleaned = clean(dest);
            let (p, _) = split_last(&cleaned);
            return Err(not_found(&format!("/{p}"), cname));
        }
        Err(e) => bail!("cannot resolve {shown} in container {cname}: {e}"),
    };
    let open_here = |loc: &Located| -> Result<OwnedFd> {
        rfs::openat(
            &loc.parent,
            &loc.name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("cannot open {shown} in container {cname}"))
    };
    match loc.kind {
        Some(FileType::Directory) => {
            let fd = open_here(&loc)?;
            Ok(if src_contents && src_dir {
                Place::Contents(fd)
            } else {
                Place::Named(fd, src_base.to_os_string())
            })
        }
        Some(_) => {
            if src_dir {
                bail!("Error response from daemon: cannot copy directory");
            }
            if has_trailing_sep(dest) {
                bail!("Error response from daemon: {shown}: not a directory");
            }
            Ok(Place::Named(loc.parent, loc.name))
        }
        None => {
            if has_trailing_sep(dest) && !src_dir {
                bail!("Error response from daemon: no such directory");
            }
            if src_contents && src_dir {
                rfs::mkdirat(&loc.parent, &loc.name, Mode::from_raw_mode(0o755))
                    .with_context(|| format!("cannot create {shown} in container {cname}"))?;
                Ok(Place::Contents(open_here(&loc)?))
            } else {
                Ok(Place::Named(loc.parent, loc.name))
            }
        }
    }
}

/// `cp SRC CONTAINER:DEST` (SRC `-`: a tar from `input`).
pub fn copy_in(
    rf: &Rootfs,
    src: &str,
    dest: &str,
    o: CpOpts,
    input: impl Read + Send,
) -> Result<u64> {
    // docker's checkIfPathIsInAVolume: a read-only volume or bind refuses
    // the copy; a writable one takes it even on a read-only rootfs.
    let mps = rf.mount_points()?;
    let to_volume = match super::cp_mounts::mount_point_of(&mps, &format!("/{}", clean(dest))) {
        Some(m) if !m.rw => bail!("Error response from daemon: mounted volume is marked read-only"),
        Some(_) => true,
        None => false,
    };
    if rf.rec.host_config.readonly_rootfs && !to_volume {
        bail!("Error response from daemon: container rootfs is marked read-only");
    }
    let root = rf.root_fd()?;
    let owner = (!o.archive).then_some((0u64, 0u64));
    if src == "-" {
        let place = dest_place(rf, root.as_fd(), dest, true, true, OsStr::new(""))?;
        let Place::Contents(fd) = place else {
            bail!("Error response from daemon: extraction point is not a directory");
        };
        return retar_into(input, fd, owner);
    }
    let sp = Path::new(src);
    let meta = if o.follow {
        std::fs::metadata(sp)
    } else {
        std::fs::symlink_metadata(sp)
    };
    let meta = meta.map_err(|e| anyhow!("lstat {src}: {}", io_text(&e)))?;
    let src_dir = meta.is_dir();
    if has_trailing_sep(src) && !src_dir {
        bail!("lstat {src}: not a directory");
    }
    // The host side is the user's own: resolve it normally (with -L the
    // link itself, else its parent).
    let real = if o.follow {
        std::fs::canonicalize(sp).with_context(|| format!("cannot resolve {src}"))?
    } else {
        std::path::absolute(sp).with_context(|| format!("cannot resolve {src}"))?
    };
    let real = PathBuf::from(clean_host(&real));
    let (pdir, name) = match real.file_name() {
        Some(n) => (host_parent(&real), n.to_os_string()),
        None => (PathBuf::from("/"), OsString::from(".")),
    };
    let pfd = host_dir(&pdir)?;
    let base = if name == "." {
        OsString::from("root")
    } else {
        name.clone()
    };
    let place = dest_place(rf, root.as_fd(), dest, src_dir, is_contents(src), &base)?;
    transfer(pfd.as_fd(), &name, place, owner)
}

fn clean_host(p: &Path) -> String {
    format!("/{}", clean(&p.to_string_lossy()))
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

/// A tar from stdin, with ownership reset to root unless `-a`, into `fd`.
fn retar_into(input: impl Read + Send, fd: OwnedFd, owner: Option<(u64, u64)>) -> Result<u64> {
    let (reader, writer) = std::io::pipe().context("cannot create a pipe")?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<u64> {
            let mut a = tar::Archive::new(input);
            let mut b = tar::Builder::new(Counting {
                inner: writer,
                n: 0,
            });
            for e in a.entries().context("cannot read the tar stream")? {
                let mut e = e.context("cannot read the tar stream")?;
                let mut h = e.header().clone();
                if let Some((u, g)) = owner {
                    h.set_uid(u);
                    h.set_gid(g);
                }
                let path = e.path().context("bad entry name")?.into_owned();
                match h.entry_type() {
                    tar::EntryType::Symlink => {
                        let l = e
                            .link_name_bytes()
                            .map(|l| l.into_owned())
                            .unwrap_or_default();
                        super::tarwalk::append_symlink(&mut b, &mut h, &path, &l)?;
                    }
                    tar::EntryType::Link => {
                        let l = e
                            .link_name()
                            .context("bad link name")?
                            .map(|l| l.into_owned())
                            .unwrap_or_default();
                        b.append_link(&mut h, &path, &l)?;
                    }
                    _ => b.append_data(&mut h, &path, &mut e)?,
                }
            }
            let mut w = b.into_inner()?;
            w.flush()?;
            Ok(w.n)
        });
        let unpacked = unpack_at(reader, fd, &UnpackOptions::default());
        let produced = producer
            .join()
            .map_err(|_| anyhow!("the tar reader thread panicked"))?;
        let n = produced?;
        unpacked.map_err(|e| anyhow!("{e}"))?;
        Ok(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_args_like_docker() {
        assert_eq!(
            split_arg("c1:/etc/passwd"),
            Endpoint::Container {
                container: "c1".into(),
                path: "/etc/passwd".into()
            }
        );
        assert_eq!(split_arg("/tmp/a:b"), Endpoint::Local("/tmp/a:b".into()));
        assert_eq!(split_arg("./c1:x"), Endpoint::Local("./c1:x".into()));
        assert_eq!(split_arg("file"), Endpoint::Local("file".into()));
        assert_eq!(split_arg("-"), Endpoint::Local("-".into()));
        assert_eq!(
            split_arg("c:rel"),
            Endpoint::Container {
                container: "c".into(),
                path: "rel".into()
            }
        );
    }

    #[test]
    fn path_rules() {
        assert!(is_contents("/etc/."));
        assert!(is_contents("."));
        assert!(!is_contents("/etc/.x"));
        assert!(has_trailing_sep("/etc/"));
        assert!(!has_trailing_sep("/"));
        assert_eq!(clean("/a/./b/../c/"), "a/c");
        assert_eq!(clean("/../../etc"), "etc");
        assert_eq!(clean("/"), "");
    }

    #[test]
    fn locate_stays_in_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/passwd"), "inside").unwrap();
        std::os::unix::fs::symlink("/", r.join("rootlink")).unwrap();
        std::os::unix::fs::symlink("../../../../..", r.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("pw")).unwrap();
        let root = rfs::open(r, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        for p in ["/rootlink/etc/passwd", "/up/etc/passwd", "/pw"] {
            let l = locate(root.as_fd(), p, true).unwrap();
            assert_eq!(l.kind, Some(FileType::RegularFile), "{p}");
            let fd = rfs::openat(&l.parent, &l.name, OFlags::RDONLY, Mode::empty()).unwrap();
            let mut s = String::new();
            std::fs::File::from(fd).read_to_string(&mut s).unwrap();
            assert_eq!(s, "inside", "{p}");
        }
        let l = locate(root.as_fd(), "/pw", false).unwrap();
        assert_eq!(l.kind, Some(FileType::Symlink));
        assert!(matches!(
            locate(root.as_fd(), "/nope/x", false),
            Err(LocateError::MissingParent)
        ));
    }
}
