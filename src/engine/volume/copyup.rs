//! docker's copy-up: a new, empty volume mounted over a directory of the
//! image starts with that directory's contents, owners, modes, xattrs,
//! times, symlinks and hardlinks.
//!
//! The image is untrusted: the source directory is resolved inside the
//! rootfs with `openat2(RESOLVE_IN_ROOT)` (a symlink at the mount target
//! is followed as the container would, never out of the rootfs), and the
//! walk below it uses `*at` calls with `O_NOFOLLOW` on both sides, so no
//! symlink in the image can make berth read or write outside.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timestamps};
use rustix::io::Errno;

/// Directories deeper than this are refused (a crafted image cannot
/// exhaust the stack).
const MAX_DEPTH: usize = 512;

#[derive(Debug, thiserror::Error)]
#[error("copy-up of {path} from the image into volume {volume}: {what}: {errno}")]
pub struct CopyError {
    pub volume: String,
    pub path: String,
    pub what: &'static str,
    pub errno: Errno,
}

struct Ctx<'a> {
    volume: &'a str,
    /// (dev, ino) of a multiply linked file -> its copy, relative to the volume root.
    links: HashMap<(u64, u64), PathBuf>,
    dst_root: OwnedFd,
}

fn err<'a>(
    c: &'a Ctx<'_>,
    path: &'a Path,
    what: &'static str,
) -> impl FnOnce(Errno) -> CopyError + 'a {
    move |errno| CopyError {
        volume: c.volume.to_string(),
        path: path.display().to_string(),
        what,
        errno,
    }
}

fn dir_fd(fd: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        fd,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Whether the directory has no entries.
pub fn is_empty(dir: &Path) -> std::io::Result<bool> {
    Ok(std::fs::read_dir(dir)?.next().is_none())
}

/// Copies `target` (a path inside the container) from the mounted rootfs
/// into `data` when `data` is empty and the target is a directory there.
/// Returns whether anything was copied.
pub fn copy_up(rootfs: &Path, target: &str, data: &Path, volume: &str) -> Result<bool, CopyError> {
    let e = |what: &'static str, p: &str| {
        let p = p.to_string();
        move |errno| CopyError {
            volume: volume.to_string(),
            path: p,
            what,
            errno,
        }
    };
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e("open the rootfs", &rootfs.display().to_string()))?;
    let rel = target.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let src = match crate::engine::fsutil::openat2(
        root.as_fd(),
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
    ) {
        Ok(fd) => fd,
        // Nothing (or not a directory) there in the image: nothing to copy.
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(false),
        // Crossing a mount (another volume below) or a magic link: docker
        // copies from the image alone; so do we, by not copying.
        Err(Errno::XDEV | Errno::LOOP) => return Ok(false),
        Err(x) => return Err(e("open in the rootfs", target)(x)),
    };
    let dst = rustix::fs::open(
        data,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e("open the volume", &data.display().to_string()))?;
    if rustix::fs::Dir::read_from(dst.as_fd())
        .map_err(e("read the volume", &data.display().to_string()))?
        .filter_map(Result::ok)
        .any(|d| d.file_name() != c"." && d.file_name() != c"..")
    {
        return Ok(false);
    }
    let mut c = Ctx {
        volume,
        links: HashMap::new(),
        dst_root: rustix::fs::open(
            data,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(e("open the volume", &data.display().to_string()))?,
    };
    copy_dir(&mut c, src.as_fd(), dst.as_fd(), Path::new(""), 0)?;
    // The volume's root takes the image directory's owner and mode.
    let st = rustix::fs::fstat(src.as_fd()).map_err(e("stat", target))?;
    copy_meta(&c, src.as_fd(), dst.as_fd(), &st, Path::new(target))?;
    Ok(true)
}

fn copy_meta(
    c: &Ctx<'_>,
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    st: &rustix::fs::Stat,
    rel: &Path,
) -> Result<(), CopyError> {
    rustix::fs::fchown(
        dst,
        Some(rustix::process::Uid::from_raw(st.st_uid)),
        Some(rustix::process::Gid::from_raw(st.st_gid)),
    )
    .map_err(err(c, rel, "chown"))?;
    rustix::fs::fchmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777))
        .map_err(err(c, rel, "chmod"))?;
    copy_xattrs(c, src, dst, rel)?;
    let ts = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    rustix::fs::futimens(dst, &ts).map_err(err(c, rel, "set times"))
}

fn copy_xattrs(
    c: &Ctx<'_>,
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    rel: &Path,
) -> Result<(), CopyError> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::flistxattr(src, &mut names) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(()),
        Err(Errno::RANGE) => {
            names = vec![0u8; 65536];
            rustix::fs::flistxattr(src, &mut names).map_err(err(c, rel, "list xattrs"))?
        }
        Err(x) => return Err(err(c, rel, "list xattrs")(x)),
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        // Overlay's own attributes describe the image's layers, not the file.
        if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
            continue;
        }
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        let mut val = vec![0u8; 65536];
        let len = match rustix::fs::fgetxattr(src, cname.as_c_str(), &mut val) {
            Ok(l) => l,
            Err(Errno::NODATA) => continue,
            Err(x) => return Err(err(c, rel, "read xattr")(x)),
        };
        match rustix::fs::fsetxattr(
            dst,
            cname.as_c_str(),
            &val[..len],
            rustix::fs::XattrFlags::empty(),
        ) {
            Ok(()) | Err(Errno::NOTSUP) => {}
            Err(x) => return Err(err(c, rel, "write xattr")(x)),
        }
    }
    Ok(())
}

fn copy_dir(
    c: &mut Ctx<'_>,
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    rel: &Path,
    depth: usize,
) -> Result<(), CopyError> {
    if depth > MAX_DEPTH {
        return Err(err(c, rel, "directory nesting too deep")(Errno::LOOP));
    }
    let dir = rustix::fs::Dir::read_from(src).map_err(err(c, rel, "read directory"))?;
    let names: Vec<CString> = dir
        .filter_map(Result::ok)
        .map(|d| d.file_name().to_owned())
        .filter(|n| n.as_c_str() != c"." && n.as_c_str() != c"..")
        .collect();
    for name in names {
        copy_entry(c, src, dst, rel, &name, depth)?;
    }
    Ok(())
}

fn copy_entry(
    c: &mut Ctx<'_>,
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    rel_dir: &Path,
    name: &CStr,
    depth: usize,
) -> Result<(), CopyError> {
    let os = OsStr::from_bytes(name.to_bytes());
    let rel = rel_dir.join(os);
    let st =
        rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW).map_err(err(c, &rel, "stat"))?;
    let mode = st.st_mode & libc::S_IFMT;
    let perm = Mode::from_raw_mode(st.st_mode & 0o7777);
    let owner = (
        Some(rustix::process::Uid::from_raw(st.st_uid)),
        Some(rustix::process::Gid::from_raw(st.st_gid)),
    );
    if mode != libc::S_IFDIR && st.st_nlink > 1 {
        let key = (st.st_dev, st.st_ino);
        if let Some(first) = c.links.get(&key) {
            let first = first.clone();
            rustix::fs::linkat(c.dst_root.as_fd(), &first, dst, name, AtFlags::empty())
                .map_err(err(c, &rel, "hardlink"))?;
            return Ok(());
        }
        c.links.insert(key, rel.clone());
    }
    match mode {
        libc::S_IFDIR => {
            rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700))
                .map_err(err(c, &rel, "mkdir"))?;
            let s = dir_fd(src, os).map_err(err(c, &rel, "open directory"))?;
            let d = dir_fd(dst, os).map_err(err(c, &rel, "open directory"))?;
            copy_dir(c, s.as_fd(), d.as_fd(), &rel, depth + 1)?;
            copy_meta(c, s.as_fd(), d.as_fd(), &st, &rel)?;
        }
        libc::S_IFREG => {
            let s = rustix::fs::openat(
                src,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(err(c, &rel, "open"))?;
            let d = rustix::fs::openat(
                dst,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(err(c, &rel, "create"))?;
            let mut sf = std::fs::File::from(s);
            let mut df = std::fs::File::from(d);
            std::io::copy(&mut sf, &mut df).map_err(|e| {
                err(c, &rel, "copy data")(Errno::from_io_error(&e).unwrap_or(Errno::IO))
            })?;
            copy_meta(c, sf.as_fd(), df.as_fd(), &st, &rel)?;
        }
        libc::S_IFLNK => {
            let target =
                rustix::fs::readlinkat(src, name, Vec::new()).map_err(err(c, &rel, "readlink"))?;
            rustix::fs::symlinkat(target.as_c_str(), dst, name).map_err(err(c, &rel, "symlink"))?;
            rustix::fs::chownat(dst, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(err(c, &rel, "chown"))?;
            let ts = times(&st);
            rustix::fs::utimensat(dst, name, &ts, AtFlags::SYMLINK_NOFOLLOW).map_err(err(
                c,
                &rel,
                "set times",
            ))?;
        }
        libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO | libc::S_IFSOCK => {
            let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
            rustix::fs::mknodat(dst, name, ft, perm, st.st_rdev).map_err(err(c, &rel, "mknod"))?;
            rustix::fs::chownat(dst, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(err(c, &rel, "chown"))?;
            rustix::fs::chmodat(dst, name, perm, AtFlags::empty())
                .map_err(err(c, &rel, "chmod"))?;
            rustix::fs::utimensat(dst, name, &times(&st), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(err(c, &rel, "set times"))?;
        }
        _ => {}
    }
    Ok(())
}

fn times(st: &rustix::fs::Stat) -> Timestamps {
    Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn copies_tree_with_owner_mode_links_and_stays_inside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(root.join("app/sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        std::fs::write(root.join("app/f"), "hello").unwrap();
        std::fs::set_permissions(root.join("app/f"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        std::os::unix::fs::chown(root.join("app/sub"), Some(1000), Some(1000)).unwrap();
        std::fs::set_permissions(root.join("app/sub"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("app/link")).unwrap();
        std::fs::hard_link(root.join("app/f"), root.join("app/sub/h")).unwrap();
        // A target that is a symlink leaving the rootfs resolves inside it.
        std::os::unix::fs::symlink(outside.to_str().unwrap(), root.join("evil")).unwrap();
        let data = t.path().join("data");
        std::fs::create_dir(&data).unwrap();
        assert!(copy_up(&root, "/app", &data, "v").unwrap());
        assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "hello");
        assert_eq!(
            std::fs::metadata(data.join("f")).unwrap().mode() & 0o7777,
            0o640
        );
        let m = std::fs::metadata(data.join("sub")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1000, 0o750));
        assert_eq!(
            std::fs::read_link(data.join("link")).unwrap(),
            PathBuf::from("../../outside")
        );
        assert_eq!(
            std::fs::metadata(data.join("f")).unwrap().ino(),
            std::fs::metadata(data.join("sub/h")).unwrap().ino()
        );
        // Not empty any more: a second copy does nothing.
        assert!(!copy_up(&root, "/app", &data, "v").unwrap());
        let data2 = t.path().join("data2");
        std::fs::create_dir(&data2).unwrap();
        assert!(!copy_up(&root, "/evil", &data2, "v").unwrap());
        assert!(is_empty(&data2).unwrap());
        assert!(!copy_up(&root, "/missing", &data2, "v").unwrap());
    }
}
