//! Filesystem primitives that never leave the layer root: every lookup is
//! relative to a directory fd and refuses symlinks and `..` escapes.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Timestamps};
use rustix::io::Errno;

use super::entry::Time;

/// The flags every lookup under the layer root uses.
pub(crate) fn resolve_flags() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

fn dir_oflags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Explains an errno from a resolution that refused to follow something.
pub(crate) fn describe(e: Errno) -> String {
    match e {
        Errno::LOOP => "a parent path component is a symlink; refusing to follow it".into(),
        Errno::XDEV => "path escapes the layer root".into(),
        Errno::NOTDIR => "a parent path component is not a directory".into(),
        Errno::NOENT => "no such file or directory".into(),
        other => std::io::Error::from(other).to_string(),
    }
}

/// Opens `path` (relative, normalised) below `root` as a directory.
pub(crate) fn open_dir_beneath(root: BorrowedFd<'_>, path: &[u8]) -> Result<OwnedFd, Errno> {
    crate::engine::fsutil::openat2(root, path, dir_oflags(), Mode::empty(), resolve_flags())
}

/// Opens the directory `path`, creating missing components as 0755
/// directories one at a time, never following a symlink.
pub(crate) fn open_or_create_dir(root: BorrowedFd<'_>, path: &[u8]) -> Result<OwnedFd, Errno> {
    match open_dir_beneath(root, path) {
        Err(Errno::NOENT) => {}
        other => return other,
    }
    let mut cur: OwnedFd = open_dir_beneath(root, b".")?;
    for comp in path.split(|&b| b == b'/') {
        let next = match open_dir_beneath(cur.as_fd(), comp) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                match rfs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e),
                }
                let fd = open_dir_beneath(cur.as_fd(), comp)?;
                // mkdirat is subject to the umask; docker's implicit parents are 0755.
                rfs::fchmod(&fd, Mode::from_raw_mode(0o755))?;
                fd
            }
            Err(e) => return Err(e),
        };
        cur = next;
    }
    Ok(cur)
}

/// Removes whatever `name` is in `dir` (a directory recursively). Returns
/// whether a directory was removed, since cached directory fds then go stale.
pub(crate) fn remove_any(dir: BorrowedFd<'_>, name: &[u8]) -> Result<bool, Errno> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => Ok(false),
        Err(Errno::NOENT) => Ok(false),
        Err(Errno::ISDIR) => {
            remove_tree(dir, name)?;
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Removes a directory tree through fds only (no path can lead outside).
pub(crate) fn remove_tree(parent: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let fd = rfs::openat(parent, name, dir_oflags(), Mode::empty())?;
    let mut children: Vec<(Vec<u8>, bool)> = Vec::new();
    {
        let mut dir = Dir::read_from(&fd)?;
        while let Some(ent) = dir.read() {
            let ent = ent?;
            let n = ent.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            let is_dir = match ent.file_type() {
                FileType::Directory => true,
                FileType::Unknown => {
                    let st = rfs::statat(&fd, n, AtFlags::SYMLINK_NOFOLLOW)?;
                    FileType::from_raw_mode(st.st_mode) == FileType::Directory
                }
                _ => false,
            };
            children.push((n.to_vec(), is_dir));
        }
    }
    for (n, is_dir) in children {
        if is_dir {
            remove_tree(fd.as_fd(), &n)?;
        } else {
            match rfs::unlinkat(&fd, n.as_slice(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e),
            }
        }
    }
    rfs::unlinkat(parent, name, AtFlags::REMOVEDIR)
}

pub(crate) fn timestamps(mtime: Time, atime: Option<Time>) -> Timestamps {
    let ts = |t: Time| rustix::fs::Timespec {
        tv_sec: t.sec,
        tv_nsec: t.nsec.into(),
    };
    Timestamps {
        last_access: ts(atime.unwrap_or(mtime)),
        last_modification: ts(mtime),
    }
}

/// `/proc/self/fd/<dir>/<name>`: lets l*xattr act on a name in a directory
/// fd without following a symlink in the final component.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> Vec<u8> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    p
}

pub(crate) fn is_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Option<bool>, Errno> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(
            FileType::from_raw_mode(st.st_mode) == FileType::Directory,
        )),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}
