//! Crash-safe file writes and cross-process locks.
//!
//! Every write to shared state goes temp file -> fsync -> rename -> fsync of
//! the directory, so a reader or a crash sees the old content or the new one.
//! Locks are `flock`s on files under `locks/`: they work between processes
//! and between threads (each `FileLock` has its own open file description),
//! and the kernel drops them when the holder dies. (rustix's `flock` rather
//! than std's `File::lock`, which needs Rust 1.89 above the workspace MSRV.)

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A random suffix for temp names; collisions are retried by `O_EXCL`.
pub fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Flushes a directory so a rename or create inside it survives a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` atomically (temp in the same directory).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// Like `atomic_write` without the two fsyncs: a killed process still
/// leaves the old content or the new, but a power loss may bring the old
/// one back. For files rewritten at every container start (config.json,
/// hosts, ...) and for state that a reboot re-derives (state.json): on this
/// machine's ext4 each fsync costs 2-15 ms, the largest part of a `run`.
pub fn atomic_replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

/// Like `atomic_replace`, but a file that does not exist yet is written in
/// place (no temp name, no rename): for per-start files of the monitor
/// (hosts, hostname, resolv.conf, config.json) that nothing reads before
/// the container runs. A process killed half-way leaves a short file,
/// which the next start replaces atomically (the file exists then).
pub fn write_new_or_replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
    {
        Ok(mut f) => f.write_all(bytes),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => replace(path, bytes, false),
        Err(e) => Err(e),
    }
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "path has no parent directory")
    })?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", random_suffix()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)?;
        if durable {
            fsync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A blocking flock that a signal does not abort.
fn flock_retry(file: &File, op: FlockOperation) -> io::Result<()> {
    loop {
        match flock(file, op) {
            Err(Errno::INTR) => continue,
            other => return other.map_err(Into::into),
        }
    }
}

/// An `flock` held on a lock file until dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    fn open(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
    }

    /// Blocks until the exclusive lock is ours.
    pub fn exclusive(path: &Path) -> io::Result<FileLock> {
        let file = Self::open(path)?;
        flock_retry(&file, FlockOperation::LockExclusive)?;
        Ok(FileLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Blocks until the exclusive lock on the directory `path` itself is
    /// ours: no lock file to create (an inode costs 0.1-0.5 ms here).
    pub fn exclusive_dir(path: &Path) -> io::Result<FileLock> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)?;
        flock_retry(&file, FlockOperation::LockExclusive)?;
        Ok(FileLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Blocks until a shared lock is ours.
    pub fn shared(path: &Path) -> io::Result<FileLock> {
        let file = Self::open(path)?;
        flock_retry(&file, FlockOperation::LockShared)?;
        Ok(FileLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The exclusive lock if nobody holds it now, `None` if somebody does.
    pub fn try_exclusive(path: &Path) -> io::Result<Option<FileLock>> {
        let file = Self::open(path)?;
        Self::try_file(file, path)
    }

    /// Tries an exclusive lock on an already open file (a temp file or a
    /// directory locks itself instead of using a separate lock file).
    pub fn try_file(file: File, path: &Path) -> io::Result<Option<FileLock>> {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(FileLock {
                file,
                path: path.to_path_buf(),
            })),
            Err(Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Turns a held exclusive lock into a shared one. Linux converts a
    /// flock from exclusive to shared under the inode's lock, so no other
    /// process can take it exclusively in between.
    pub fn downgrade(&self) -> io::Result<()> {
        flock_retry(&self.file, FlockOperation::LockShared)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the file releases the flock; unlocking first only makes the
        // release independent of other dup'ed descriptors.
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

/// `openat2(2)`, retried while it answers EAGAIN: with `RESOLVE_IN_ROOT` or
/// `RESOLVE_BENEATH` the kernel refuses a `..` step when any rename or mount
/// happened anywhere on the host during the lookup, which on a busy host
/// (other containers starting) is routine rather than an error.
pub fn openat2<Fd: std::os::fd::AsFd, P: rustix::path::Arg + Copy>(
    dir: Fd,
    path: P,
    oflags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
    resolve: rustix::fs::ResolveFlags,
) -> rustix::io::Result<std::os::fd::OwnedFd> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir.as_fd(), path, oflags, mode, resolve) {
            Err(Errno::AGAIN | Errno::INTR) if tries < 1000 => tries += 1,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn exclusive_lock_excludes_other_descriptions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let held = FileLock::exclusive(&p).unwrap();
        assert!(FileLock::try_exclusive(&p).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_exclusive(&p).unwrap().is_some());
        let s1 = FileLock::shared(&p).unwrap();
        let s2 = FileLock::shared(&p).unwrap();
        assert!(FileLock::try_exclusive(&p).unwrap().is_none());
        drop((s1, s2));
    }
}
