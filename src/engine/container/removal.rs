//! `--rm` removal in two steps, so that the exit is reported without
//! waiting for the filesystem: first the container's directory leaves
//! `containers/` with one rename (from then on no command lists, resolves or
//! names it; its name is free), then, after the exit went to the client, the
//! runtime state, the cgroups and the files go. Removing a directory costs
//! 2-5 ms on this machine's ext4 (ten of them per container).
//!
//! A monitor killed between the two steps leaves `removing/<id>`; `sweep`
//! (run by `container prune`) finishes the job for every entry whose monitor
//! is gone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::liveness;
use super::store::ContainerStore;

/// Where hidden containers wait for the removal of their files.
pub fn removing_dir(cs: &ContainerStore) -> PathBuf {
    cs.paths.root.join("removing")
}

/// Moves `containers/<id>` to `removing/<id>`; the caller has unmounted the
/// rootfs (the runtime state and the cgroups may remain).
pub fn hide(cs: &ContainerStore, id: &str) -> Result<PathBuf> {
    let dir = removing_dir(cs);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let to = dir.join(id);
    std::fs::rename(cs.dir(id), &to)
        .with_context(|| format!("cannot move {id} to {}", to.display()))?;
    Ok(to)
}

/// Releases what a hidden container still holds and removes its files. The
/// run directory (holding `monitor.lock`) goes last, so `sweep` leaves the
/// entry to a monitor that is still at work.
pub fn finish(cs: &ContainerStore, id: &str, hidden: &Path) {
    let rt = cs.runtime();
    if rt.state(id).is_ok() {
        let _ = rt.delete(id, true);
    }
    let _ = super::rootfs::unmount(&hidden.join("merged"));
    let _ = std::fs::remove_dir_all(hidden);
    let _ = std::fs::remove_file(cs.paths.lock_file(&format!("container-{id}")));
    let _ = std::fs::remove_dir_all(cs.run_dir(id));
}

/// Finishes removals whose monitor was killed; returns how many.
pub fn sweep(cs: &ContainerStore) -> usize {
    let Ok(rd) = std::fs::read_dir(removing_dir(cs)) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        if liveness::monitor_alive(cs, &id) {
            continue;
        }
        finish(cs, &id, &e.path());
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::paths::Paths;

    #[test]
    fn hidden_container_leaves_listings_and_sweep_removes_it() {
        let t = tempfile::tempdir().unwrap();
        let cs = ContainerStore::new(Paths {
            root: t.path().to_path_buf(),
            run: t.path().join("run"),
        });
        let id = "ab".repeat(32);
        std::fs::create_dir_all(cs.dir(&id).join("upper/etc")).unwrap();
        std::fs::write(cs.dir(&id).join("state.json"), "{}").unwrap();
        let hidden = hide(&cs, &id).unwrap();
        assert!(!cs.dir(&id).exists());
        assert!(hidden.join("state.json").exists());
        assert!(cs.list().unwrap().is_empty());
        assert!(cs.resolve(&id).is_err());
        // No monitor holds its lock: the sweep finishes the removal.
        assert_eq!(sweep(&cs), 1);
        assert!(!hidden.exists());
        assert_eq!(sweep(&cs), 0);
    }
}
