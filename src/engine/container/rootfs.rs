//! The container's root filesystem: an overlay of the image's layers (top
//! first) under `upper/`, mounted on `merged/`.
//!
//! `mount(2)` takes its options in one page, which 120 layer paths overflow;
//! the new mount API (Linux 6.8+) adds one lower layer per
//! `fsconfig("lowerdir+")` call, with no length limit. Older kernels get the
//! classic call when the options fit.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MoveMountFlags,
};

pub struct Layout {
    /// Skip overlay's sync of the upper layer at unmount (`--rm`: the
    /// data is discarded anyway; the sync costs tens of ms per run).
    pub volatile: bool,
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

impl Layout {
    pub fn new(container_dir: &Path, lower: Vec<PathBuf>) -> Layout {
        Layout {
            volatile: false,
            lower,
            upper: container_dir.join("upper"),
            work: container_dir.join("work"),
            merged: container_dir.join("merged"),
        }
    }
}

/// Whether `p` is a mount point (its device differs from its parent's, or
/// mountinfo lists it).
pub fn is_mounted(p: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

pub fn mount(l: &Layout) -> Result<()> {
    if l.lower.is_empty() {
        bail!("the image has no layers: nothing to mount");
    }
    for d in [&l.upper, &l.work] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    // A `merged` made just now is no mount point: mountinfo (large with
    // many containers running) is read only for one that was there.
    let fresh = match std::fs::create_dir(&l.merged) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(_) => {
            std::fs::create_dir_all(&l.merged)
                .with_context(|| format!("cannot create {}", l.merged.display()))?;
            true
        }
    };
    if !fresh && is_mounted(&l.merged) {
        return Ok(());
    }
    match mount_new_api(l) {
        Ok(()) => Ok(()),
        Err(new_err) => mount_classic(l).map_err(|e| {
            anyhow::anyhow!(
                "cannot mount the overlay root filesystem on {}: {new_err} (new mount API); {e} (mount(2))",
                l.merged.display()
            )
        }),
    }
}

fn mount_new_api(l: &Layout) -> Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen(overlay)")?;
    for p in &l.lower {
        fsconfig_set_string(fs.as_fd(), "lowerdir+", p)
            .with_context(|| format!("fsconfig lowerdir+ {}", p.display()))?;
    }
    fsconfig_set_string(fs.as_fd(), "upperdir", &l.upper).context("fsconfig upperdir")?;
    fsconfig_set_string(fs.as_fd(), "workdir", &l.work).context("fsconfig workdir")?;
    if l.volatile {
        rustix::mount::fsconfig_set_flag(fs.as_fd(), "volatile").context("fsconfig volatile")?;
    }
    fsconfig_create(fs.as_fd()).context("fsconfig create")?;
    let mnt = fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )
    .context("fsmount")?;
    move_mount(
        mnt.as_fd(),
        "",
        rustix::fs::CWD,
        &l.merged,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .with_context(|| format!("move_mount to {}", l.merged.display()))?;
    Ok(())
}

fn mount_classic(l: &Layout) -> Result<()> {
    let lower: Vec<String> = l
        .lower
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        l.upper.display(),
        l.work.display()
    );
    if l.volatile {
        opts.push_str(",volatile");
    }
    // The kernel copies at most one page of options.
    if opts.len() >= 4096 {
        bail!(
            "{} layers do not fit in mount(2) options ({} bytes); this kernel lacks fsconfig(lowerdir+)",
            l.lower.len(),
            opts.len()
        );
    }
    let copts = std::ffi::CString::new(opts).context("mount options contain NUL")?;
    rustix::mount::mount(
        "overlay",
        &l.merged,
        "overlay",
        rustix::mount::MountFlags::empty(),
        Some(copts.as_c_str()),
    )
    .context("mount(overlay)")?;
    Ok(())
}

/// Detaches the overlay; a missing mount is fine (umount2 says EINVAL for
/// a directory that is not a mount point, so mountinfo need not be read).
pub fn unmount(merged: &Path) -> Result<()> {
    let flags = rustix::mount::UnmountFlags::DETACH | rustix::mount::UnmountFlags::NOFOLLOW;
    match rustix::mount::unmount(merged, flags) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot unmount {}", merged.display())),
    }
}
