//! Leftovers of a `create` or `rm` killed half-way: a container directory
//! without `container.json` is invisible to `ps` and `rm`, so `container
//! prune` sweeps it (its runtime state, mount and directories).

use anyhow::Result;

use super::liveness;
use super::store::ContainerStore;

/// Removes every incomplete container directory whose monitor is gone;
/// returns their IDs. Runs under the names lock, which `create` holds
/// until container.json is written, so a create in progress is never seen.
pub fn incomplete(cs: &ContainerStore) -> Result<Vec<String>> {
    let _names = cs.names_lock()?;
    let rd = match std::fs::read_dir(cs.containers_dir()) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        if cs.dir(&id).join("container.json").exists() || liveness::monitor_alive(cs, &id) {
            continue;
        }
        let _ = cs.runtime().delete(&id, true);
        super::rootfs::unmount(&cs.dir(&id).join("merged"))?;
        cs.remove_dirs(&id)?;
        out.push(id);
    }
    Ok(out)
}
