//! Network namespaces kept alive by a bind mount (`<run dir>/netns/<id>`),
//! created and entered on short-lived threads so the caller's thread never
//! changes namespace.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Error, Result};

/// Where the namespace of container `id` is bound under `run_dir`.
pub fn netns_path(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join("netns").join(id)
}

/// Creates a new network namespace and bind-mounts it at `path` (the parent
/// directory is created). Fails if something is already mounted there.
pub fn create(path: &Path) -> Result<()> {
    let ns_err = |op, source| Error::Namespace {
        op,
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| ns_err("create directory", e))?;
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| ns_err("create mount point", e))?;
    let target = path.to_path_buf();
    // unshare() changes only the calling thread; the thread then exits, so no
    // thread of the process is left in the new namespace.
    let res = std::thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(io::Error::from)
    })
    .join()
    .map_err(|_| Error::ThreadPanicked("netns create"))?;
    if let Err(e) = res {
        let _ = fs::remove_file(path);
        return Err(ns_err("unshare and bind mount", e));
    }
    Ok(())
}

/// Unmounts and removes a namespace handle. Missing handles are fine, so a
/// crashed attempt can be cleaned up by calling this again.
pub fn delete(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => {
            return Err(Error::Namespace {
                op: "unmount",
                path: path.to_path_buf(),
                source: e.into(),
            })
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Namespace {
            op: "remove",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Runs `f` on a dedicated thread that has joined the namespace at `path`.
/// The thread exits afterwards, so the namespace switch never leaks.
pub fn run_in<T, F>(path: &Path, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send,
    T: Send,
{
    let file = File::open(path).map_err(|e| Error::Namespace {
        op: "open",
        path: path.to_path_buf(),
        source: e,
    })?;
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::Namespace {
                op: "setns",
                path: path.to_path_buf(),
                source: e.into(),
            })?;
            f()
        })
        .join()
        .map_err(|_| Error::ThreadPanicked("netns run_in"))?
    })
}
