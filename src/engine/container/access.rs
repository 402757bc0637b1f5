//! The container's root filesystem for `cp`, `export` and `commit`: the
//! monitor's overlay mount while the container runs; for a stopped
//! container the same overlay mounted here and detached again on drop.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};

use super::rootfs::{self, Layout};
use super::store::ContainerStore;
use super::{liveness, ContainerRecord};

pub struct Rootfs {
    pub merged: PathBuf,
    pub rec: ContainerRecord,
    pub running: bool,
    /// The container's init while it runs.
    pid: i32,
    cs: ContainerStore,
    mounted_here: bool,
}

impl Rootfs {
    pub fn open(cs: &ContainerStore, id: &str) -> Result<Rootfs> {
        let rec = cs.load(id)?;
        let st = liveness::current(cs, id)?;
        let dir = cs.dir(id);
        let merged = dir.join("merged");
        let mut r = Rootfs {
            merged: merged.clone(),
            rec,
            running: st.running(),
            pid: if st.running() { st.pid } else { 0 },
            cs: cs.clone(),
            mounted_here: false,
        };
        if rootfs::is_mounted(&merged) {
            return Ok(r);
        }
        let lower = r
            .rec
            .layers
            .iter()
            .map(|h| cs.paths.layers_dir().join(h).join("diff"))
            .collect();
        rootfs::mount(&Layout::new(&dir, lower))
            .with_context(|| format!("cannot mount the filesystem of container {id}"))?;
        r.mounted_here = true;
        Ok(r)
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
        // Leave the mount to a monitor that started the container meanwhile.
        if self.mounted_here && !liveness::monitor_alive(&self.cs, &self.rec.id) {
            let _ = rootfs::unmount(&self.merged);
        }
    }
}
