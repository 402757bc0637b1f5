//! The container's root filesystem for `cp`, `export` and `commit`: the
//! monitor's overlay mount while the container runs; for a stopped
//! container the same overlay mounted here and detached again on drop.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags};

use super::rootfs::{self, Layout};
use super::store::ContainerStore;
use super::{liveness, ContainerRecord};
use crate::engine::fsutil::FileLock;

pub struct Rootfs {
    pub merged: PathBuf,
    pub rec: ContainerRecord,
    /// The container's init while it runs.
    pid: i32,
    mounted_here: bool,
    cs: ContainerStore,
    /// `cp` of a stopped container: the private mount namespace holding its
    /// volumes and binds (`cp_mounts`); left before the overlay is detached.
    view: Option<super::cp_mounts::MountView>,
    /// A stopped container's monitor lock, held while we use its mount: a
    /// `start` meanwhile waits for it instead of running on a mount we are
    /// about to detach. Dropped after the unmount (field order).
    _hold: Option<FileLock>,
}

impl Rootfs {
    pub fn open(cs: &ContainerStore, id: &str) -> Result<Rootfs> {
        let rec = cs.load(id)?;
        let dir = cs.dir(id);
        let merged = dir.join("merged");
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let st = liveness::current(cs, id)?;
            if st.running() && rootfs::is_mounted(&merged) {
                return Ok(Rootfs {
                    merged,
                    rec,
                    pid: st.pid,
                    mounted_here: false,
                    cs: cs.clone(),
                    view: None,
                    _hold: None,
                });
            }
            let run = cs.run_dir(id);
            std::fs::create_dir_all(&run)
                .with_context(|| format!("cannot create {}", run.display()))?;
            let lock = FileLock::try_exclusive(&cs.monitor_lock_path(id))
                .context("cannot take the container's monitor lock")?;
            if let Some(lock) = lock {
                // A dead monitor's mount is reused, and left as it was.
                let mounted_here = !rootfs::is_mounted(&merged);
                if mounted_here {
                    let lower = rec
                        .layers
                        .iter()
                        .map(|h| cs.paths.layers_dir().join(h).join("diff"))
                        .collect();
                    rootfs::mount(&Layout::new(&dir, lower)).with_context(|| {
                        format!("cannot mount the filesystem of container {id}")
                    })?;
                }
                return Ok(Rootfs {
                    merged,
                    rec,
                    pid: 0,
                    mounted_here,
                    cs: cs.clone(),
                    view: None,
                    _hold: Some(lock),
                });
            }
            // A monitor is starting, or another cp/export/commit holds it.
            if Instant::now() > until {
                bail!("container {id} is busy (starting, or another copy or commit is running); try again");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A directory fd of the container's `/`, the root every lookup is
    /// resolved in (`RESOLVE_IN_ROOT`). For a running container it is
    /// `/proc/<pid>/root`, so lookups cross the container's own mounts
    /// (`--tmpfs`, volumes, its `/etc/hosts`) as the container sees them;
    /// it is used only when it is the same directory as our overlay root
    /// (a container that chrooted its init, or a reused pid, falls back).
    pub fn root_fd(&self) -> Result<OwnedFd> {
        if let Some(fd) = self.live_root() {
            return Ok(fd);
        }
        self.overlay_root_fd()
    }

    /// The overlay's root only (what `export` and `commit` read).
    pub fn overlay_root_fd(&self) -> Result<OwnedFd> {
        rustix::fs::open(
            &self.merged,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("cannot open {}", self.merged.display()))
    }

    fn live_root(&self) -> Option<OwnedFd> {
        if self.pid <= 0 {
            return None;
        }
        let fd = rustix::fs::open(
            format!("/proc/{}/root", self.pid),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let a = rustix::fs::fstat(&fd).ok()?;
        let b = rustix::fs::stat(&self.merged).ok()?;
        (a.st_dev == b.st_dev && a.st_ino == b.st_ino).then_some(fd)
    }

    /// `cp`: a stopped container's volumes and binds mounted over its
    /// overlay, as docker does for the copy (a running container's are
    /// already seen through `/proc/<pid>/root`). Call before `root_fd`.
    pub fn mount_volumes(&mut self) -> Result<()> {
        if self.pid <= 0 && self.view.is_none() {
            self.view = super::cp_mounts::enter(&self.cs, &self.rec.id, &self.merged)?;
        }
        Ok(())
    }

    /// The container's volume and bind mount points, parents first.
    pub fn mount_points(&self) -> Result<Vec<crate::engine::volume::mounts::MountPoint>> {
        super::cp_mounts::mount_points(&self.cs, &self.rec.id)
    }

    /// The overlay's upper directory (the container's own changes).
    pub fn upper(&self) -> PathBuf {
        self.cs.dir(&self.rec.id).join("upper")
    }

    /// Lower layer directories, top first.
    pub fn lowers(&self) -> Vec<PathBuf> {
        self.rec
            .layers
            .iter()
            .map(|h| self.cs.paths.layers_dir().join(h).join("diff"))
            .collect()
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        drop(self.view.take());
        if self.mounted_here {
            let _ = rootfs::unmount(&self.merged);
        }
    }
}
