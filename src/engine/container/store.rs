//! `containers/<id>/`: the records, their locks and the name index.
//!
//! Names are unique because every create and rename takes
//! `locks/container-names.lock` and checks every record under it; each
//! container's `state.json` changes only under `locks/container-<id>.lock`.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};

use super::model::{ContainerRecord, State};
use crate::engine::fsutil::{atomic_replace, atomic_write, FileLock};
use crate::engine::paths::Paths;

/// Docker's text for a missing container (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("No such container: {0}")]
pub struct NoSuchContainer(pub String);

#[derive(Debug, Clone)]
pub struct ContainerStore {
    pub paths: Paths,
}

impl ContainerStore {
    pub fn new(paths: Paths) -> ContainerStore {
        ContainerStore { paths }
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.paths.root.join("containers")
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// Volatile per-container directory: attach socket, monitor lock.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.paths.run.join("containers").join(id)
    }

    /// The runtime crate's state root.
    pub fn runtime_root(&self) -> PathBuf {
        self.paths.run.join("runtime")
    }

    pub fn runtime(&self) -> runtime::Runtime {
        runtime::Runtime::new(self.runtime_root())
    }

    pub fn monitor_lock_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("monitor.lock")
    }

    pub fn attach_socket(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("attach.sock")
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("ctr.log")
    }

    fn ensure_dirs(&self) -> Result<()> {
        for d in [
            self.containers_dir(),
            self.paths.locks_dir(),
            self.paths.run.join("containers"),
        ] {
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
        }
        Ok(())
    }

    /// The per-container lock (state.json read-modify-write, rm).
    pub fn lock(&self, id: &str) -> Result<FileLock> {
        self.named_lock(&format!("container-{id}"))
    }

    fn named_lock(&self, name: &str) -> Result<FileLock> {
        self.ensure_dirs()?;
        let p = self.paths.lock_file(name);
        FileLock::exclusive(&p).with_context(|| format!("cannot lock {}", p.display()))
    }

    /// Held by `start` until its monitor runs the process, and by `rm`: no
    /// daemon orders them, and an `rm` between a start's check and its
    /// monitor's first write would remove the directory under that
    /// monitor. The monitor itself never takes it (its state writes take
    /// [`Self::lock`]), so holding it across the monitor's start is safe.
    pub fn lifecycle_lock(&self, id: &str) -> Result<FileLock> {
        self.named_lock(&format!("lifecycle-{id}"))
    }

    /// Removes the lifecycle lock's file of a container that is gone (a
    /// `start` or `rm` that found it removed under the lock).
    pub fn forget_lifecycle_lock(&self, id: &str) {
        let _ = std::fs::remove_file(self.paths.lock_file(&format!("lifecycle-{id}")));
    }

    pub(super) fn names_lock(&self) -> Result<FileLock> {
        self.named_lock("container-names")
    }

    /// Every record, in no particular order. Directories without a readable
    /// `container.json` (a create killed half-way) are skipped.
    pub fn list(&self) -> Result<Vec<ContainerRecord>> {
        let rd = match std::fs::read_dir(self.containers_dir()) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e).context("cannot list containers"),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() == 64 {
                if let Ok(r) = self.load(&name) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    pub fn load(&self, id: &str) -> Result<ContainerRecord> {
        let p = self.dir(id).join("container.json");
        let b = std::fs::read(&p).map_err(|_| NoSuchContainer(id.to_string()))?;
        serde_json::from_slice(&b).with_context(|| format!("corrupt {}", p.display()))
    }

    /// The state as last written (see `liveness::current` for the truth).
    pub fn load_state(&self, id: &str) -> Result<State> {
        let p = self.dir(id).join("state.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("corrupt {}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    /// Writes state.json; the caller holds `lock(id)`. Not fsync'ed: after
    /// a power loss a reboot reads a "running" state as exited anyway, and
    /// a lost late transition costs less than 2-15 ms per write.
    pub fn write_state(&self, id: &str, st: &State) -> Result<()> {
        let p = self.dir(id).join("state.json");
        let b = serde_json::to_vec_pretty(st)?;
        atomic_replace(&p, &b).with_context(|| format!("cannot write {}", p.display()))
    }

    /// Read-modify-write of state.json under the container's lock.
    pub fn update_state<T>(&self, id: &str, f: impl FnOnce(&mut State) -> T) -> Result<T> {
        let _l = self.lock(id)?;
        let mut st = self.load_state(id)?;
        let r = f(&mut st);
        self.write_state(id, &st)?;
        Ok(r)
    }

    fn conflict(name: &str, id: &str) -> anyhow::Error {
        anyhow!(
            "Error response from daemon: Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
        )
    }

    /// Creates the directory and the records; fails with docker's conflict
    /// text when the name is taken. `name` None picks a random free name.
    pub fn create(&self, rec: &mut ContainerRecord, name: Option<&str>) -> Result<()> {
        let _names = self.names_lock()?;
        let all = self.list()?;
        match name {
            Some(n) => {
                if let Some(other) = all.iter().find(|r| r.name == n) {
                    return Err(Self::conflict(n, &other.id));
                }
                rec.name = n.to_string();
            }
            None => {
                let mut retry = 0;
                loop {
                    let n = super::names::random_name(retry);
                    if !all.iter().any(|r| r.name == n) {
                        rec.name = n;
                        break;
                    }
                    retry += 1;
                }
            }
        }
        let dir = self.dir(&rec.id);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        self.write_state(&rec.id, &State::default())?;
        // container.json last: a directory without it is an incomplete create.
        // A --rm container does not outlive its run: no fsync for it.
        let b = serde_json::to_vec_pretty(rec)?;
        let write = if rec.host_config.auto_remove {
            atomic_replace
        } else {
            atomic_write
        };
        write(&dir.join("container.json"), &b)
            .with_context(|| format!("cannot write {}/container.json", dir.display()))
    }

    pub fn rename(&self, input: &str, new: &str) -> Result<()> {
        if !super::names::valid_name(new) {
            bail!("Error response from daemon: Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
        }
        let _names = self.names_lock()?;
        let id = self.resolve(input)?;
        let all = self.list()?;
        if let Some(other) = all.iter().find(|r| r.name == new) {
            return Err(Self::conflict(new, &other.id));
        }
        // `update` rewrites container.json under the container's lock; take
        // it too (always after the names lock) so neither change is lost.
        let _l = self.lock(&id)?;
        let mut rec = self.load(&id)?;
        if rec.name == new {
            bail!("Error response from daemon: Renaming a container with the same name as its current name");
        }
        rec.name = new.to_string();
        let b = serde_json::to_vec_pretty(&rec)?;
        atomic_write(&self.dir(&id).join("container.json"), &b)
            .context("cannot write container.json")
    }

    /// Docker's lookup order: full ID, exact name, unique ID prefix.
    pub fn resolve(&self, input: &str) -> Result<String> {
        let input_name = input.strip_prefix('/').unwrap_or(input);
        if input.len() == 64 && self.dir(input).join("container.json").exists() {
            return Ok(input.to_string());
        }
        let all = self.list()?;
        if let Some(r) = all.iter().find(|r| r.name == input_name) {
            return Ok(r.id.clone());
        }
        if !input.is_empty() && input.bytes().all(|b| b.is_ascii_hexdigit()) {
            let m: Vec<&ContainerRecord> = all.iter().filter(|r| r.id.starts_with(input)).collect();
            match m.len() {
                1 => return Ok(m[0].id.clone()),
                0 => {}
                _ => bail!(
                    "Error response from daemon: Multiple IDs found with provided prefix: {input}"
                ),
            }
        }
        Err(NoSuchContainer(input.to_string()).into())
    }

    /// Removes the records; the caller has released mounts and runtime state.
    pub fn remove_dirs(&self, id: &str) -> Result<()> {
        let _ = std::fs::remove_dir_all(self.run_dir(id));
        let d = self.dir(id);
        match std::fs::remove_dir_all(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", d.display())),
        }
        let _ = std::fs::remove_file(self.paths.lock_file(&format!("container-{id}")));
        self.forget_lifecycle_lock(id);
        Ok(())
    }
}

impl crate::engine::store::ContainerUsage for ContainerStore {
    fn container_using(&self, image: &crate::engine::store::Digest) -> Option<String> {
        let want = image.to_string();
        self.list()
            .ok()?
            .into_iter()
            .find(|r| r.image == want)
            .map(|r| r.id)
    }
}

/// A unix socket path that fits in `sun_path` however deep `dir` is: the
/// directory held open and named through `/proc/self/fd` (valid in this
/// process while the returned fd lives).
pub fn short_socket_path(
    dir: &std::path::Path,
    name: &str,
) -> Result<(std::os::fd::OwnedFd, PathBuf)> {
    use std::os::fd::AsRawFd;
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("cannot open {}", dir.display()))?;
    let p = PathBuf::from(format!("/proc/self/fd/{}/{name}", fd.as_raw_fd()));
    Ok((fd, p))
}
