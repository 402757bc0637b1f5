//! The mounts of a stopped container for `cp`: docker mounts a container's
//! volumes and binds for the copy (`mountVolumes`), so `cp` reads and writes
//! the same files the container would. berth mounts them in a private
//! mount namespace of the calling thread, on that namespace's copy of the
//! overlay: nothing reaches the host's mount table, and everything is gone
//! once the namespace is (when `cp` exits). Each target is resolved in the
//! container's root with `openat2(RESOLVE_IN_ROOT)`, as the runtime does at
//! start, so a symlinked mount point never leads out of the rootfs.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};

use super::store::ContainerStore;
use crate::engine::volume::mounts::{self, MountPoint};
use crate::engine::volume::VolumeStore;

/// While alive, the calling thread is in the private namespace; dropping
/// it moves the thread back to the namespace it came from.
pub struct MountView {
    host: OwnedFd,
}

impl Drop for MountView {
    fn drop(&mut self) {
        // SAFETY: setns on an fd we own; the thread's fs data is its own
        // since unshare (the copy's worker threads have been joined).
        unsafe {
            libc::setns(self.host.as_raw_fd(), libc::CLONE_NEWNS);
        }
    }
}

/// Where docker's `HasResource` puts `path` (cleaned, absolute): the
/// deepest mount point that is the path or one of its parents.
pub fn mount_point_of<'a>(mps: &'a [MountPoint], path: &str) -> Option<&'a MountPoint> {
    mps.iter()
        .filter(|m| m.ty != "tmpfs")
        .filter(|m| {
            let d = m.destination.trim_end_matches('/');
            path == d || d.is_empty() || path.starts_with(&format!("{d}/"))
        })
        .max_by_key(|m| Path::new(&m.destination).components().count())
}

/// The mount points `cp` mounts, parents first.
pub fn mount_points(cs: &ContainerStore, id: &str) -> Result<Vec<MountPoint>> {
    let mut mps = mounts::load(cs, id)?.mount_points;
    mps.sort_by_key(|m| Path::new(&m.destination).components().count());
    Ok(mps)
}

/// Enters a private mount namespace and mounts the container's volumes
/// and binds on `merged`. Returns None when the container has none (no
/// namespace is made).
pub fn enter(cs: &ContainerStore, id: &str, merged: &Path) -> Result<Option<MountView>> {
    let mps: Vec<MountPoint> = mount_points(cs, id)?
        .into_iter()
        .filter(|m| m.ty == "bind" || m.ty == "volume")
        .collect();
    if mps.is_empty() {
        return Ok(None);
    }
    let host = rfs::open(
        "/proc/thread-self/ns/mnt",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("cannot open this thread's mount namespace")?;
    // SAFETY: plain syscalls on constant arguments.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(std::io::Error::last_os_error())
            .context("cannot make a private mount namespace for the copy");
    }
    let view = MountView { host };
    // Private first: mounts made below must not propagate to the host's
    // peers of the overlay or of a bind source.
    // SAFETY: NUL-terminated constant strings.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .context("cannot make the copy's mount namespace private");
    }
    let root = rfs::open(
        merged,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("cannot open {}", merged.display()))?;
    let vs = VolumeStore::new(cs.paths.clone());
    for mp in &mps {
        let source: PathBuf = match mp.ty.as_str() {
            "bind" => PathBuf::from(&mp.source),
            _ => vs.data_dir(&mp.name),
        };
        if std::fs::symlink_metadata(&source).is_err() {
            // A bind source made at the first start, or a volume removed
            // meanwhile: nothing to show there.
            continue;
        }
        let rel = mp.destination.trim_start_matches('/');
        let target = match crate::engine::fsutil::openat2(
            root.as_fd(),
            if rel.is_empty() { "." } else { rel },
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            // Made by the runtime at the first start; until then the
            // overlay's own (absent) path is what the container has.
            Err(Errno::NOENT) => continue,
            Err(e) => {
                return Err(anyhow!(
                    "cannot open mount point {} in the container: {e}",
                    mp.destination
                ))
            }
        };
        attach(&source, &target, mp)?;
    }
    Ok(Some(view))
}

fn attach(source: &Path, target: &OwnedFd, mp: &MountPoint) -> Result<()> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if mp.recursive != "disabled" {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = open_tree(rfs::CWD, source, flags)
        .with_context(|| format!("cannot clone mount {}", source.display()))?;
    set_attr(&tree, !mp.rw).with_context(|| {
        format!(
            "cannot set the attributes of mount {} for {}",
            source.display(),
            mp.destination
        )
    })?;
    move_mount(
        tree.as_fd(),
        "",
        target.as_fd(),
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .with_context(|| format!("cannot mount {} on {}", source.display(), mp.destination))
}

/// Private propagation (and read-only) on the whole detached tree.
fn set_attr(tree: &OwnedFd, readonly: bool) -> std::io::Result<()> {
    use runtime::mount_attr::{set_recursive, MOUNT_ATTR_RDONLY};
    set_recursive(
        tree.as_fd(),
        if readonly { MOUNT_ATTR_RDONLY } else { 0 },
        libc::MS_PRIVATE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp(dest: &str, rw: bool) -> MountPoint {
        MountPoint {
            ty: "volume".into(),
            destination: dest.into(),
            rw,
            ..Default::default()
        }
    }

    #[test]
    fn deepest_mount_point_holds_the_path() {
        let mps = vec![mp("/data", true), mp("/data/ro", false), mp("/etc", true)];
        assert_eq!(
            mount_point_of(&mps, "/data/x").unwrap().destination,
            "/data"
        );
        assert_eq!(
            mount_point_of(&mps, "/data/ro").unwrap().destination,
            "/data/ro"
        );
        assert_eq!(
            mount_point_of(&mps, "/data/ro/f").unwrap().destination,
            "/data/ro"
        );
        assert!(mount_point_of(&mps, "/database").is_none());
        assert!(mount_point_of(&mps, "/").is_none());
    }
}
