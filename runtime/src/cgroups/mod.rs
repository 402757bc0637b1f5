//! Cgroups v1 and v2: placement, resources, freezer, OOM events, stats.
//!
//! Every function works on directories under a hierarchy root passed in, so
//! the v2 logic is tested against a fake cgroupfs in a temp dir. berth only
//! ever removes directories it created itself (kept in `CgroupRecord`).

pub mod devices_v2;
mod fsutil;
mod hierarchy;
mod resources;

pub use hierarchy::Hierarchy;
pub use resources::{with_default_devices, Stats};

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup: {what} {path}: {err}")]
    Io {
        what: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("cgroup: no cgroup filesystem is mounted (looked in /proc/self/mountinfo)")]
    NoCgroupFs,
    #[error("cgroup: controller {0} is needed for the requested resources but is not mounted")]
    MissingController(&'static str),
    #[error("cgroup: invalid cgroupsPath {0:?}: it must not contain '..'")]
    BadPath(String),
    #[error("cgroup: {path} still has processes after SIGKILL; not removed")]
    Busy { path: PathBuf },
    #[error("cgroup: {0}")]
    Invalid(String),
}

/// Where a container's cgroups are, and which of them berth created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupRecord {
    /// 1 or 2; 0 when the container has no cgroup.
    pub version: u8,
    /// v1: controller name -> directory; v2: "" -> the one directory.
    pub dirs: BTreeMap<String, PathBuf>,
    /// Directories berth made, parents before children; recorded before
    /// the `mkdir`, so one may not exist (yet).
    pub created: Vec<PathBuf>,
}

impl CgroupRecord {
    /// Distinct directories (v1 co-mounted controllers share one).
    pub fn unique_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.dirs.values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    fn dir(&self, controller: &str) -> Option<&PathBuf> {
        if self.version == 2 {
            self.dirs.get("")
        } else {
            self.dirs.get(controller)
        }
    }

    /// The file of every directory that a process writes "0" to, to join.
    ///
    /// v1: `tasks`, not `cgroup.procs`. The joining process is a freshly
    /// forked, single-threaded child, so moving its one thread moves the
    /// process; and the kernel moves `current` alone without taking the
    /// global `cgroup_threadgroup_rwsem` for writing, whose RCU grace period
    /// costs 6-17 ms per `cgroup.procs` write here (0.3 ms through `tasks`).
    /// v2: `cgroup.procs` (`cgroup.threads` needs threaded mode).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        let file = if self.version == 1 {
            "tasks"
        } else {
            "cgroup.procs"
        };
        self.unique_dirs()
            .into_iter()
            .map(|d| d.join(file))
            .collect()
    }

    /// Pids in the container's cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let Some(d) = self
            .dir("pids")
            .or_else(|| self.dir("memory"))
            .or_else(|| self.dirs.values().next())
        else {
            return Ok(vec![]);
        };
        let p = d.join("cgroup.procs");
        let s = match std::fs::read_to_string(&p) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(err) => {
                return Err(CgroupError::Io {
                    what: "read",
                    path: p,
                    err,
                })
            }
        };
        Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Freeze (pause) or thaw (resume) every process of the container.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        resources::set_frozen(self, frozen)
    }

    /// Whether the freezer says the cgroup is frozen.
    pub fn is_frozen(&self) -> bool {
        resources::is_frozen(self)
    }

    /// How many processes the kernel OOM-killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        resources::oom_kills(self)
    }

    pub fn stats(&self) -> Result<Stats, CgroupError> {
        resources::stats(self)
    }

    /// Kill what is left and remove the directories berth created.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        if self.version == 0 {
            return Ok(());
        }
        if self.is_frozen() {
            let _ = self.set_frozen(false);
        }
        for _ in 0..200 {
            let pids = self.pids()?;
            if pids.is_empty() {
                break;
            }
            for p in pids {
                // SAFETY: kill(2) with a pid read from our own cgroup.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for d in self.created.iter().rev() {
            match std::fs::remove_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    return Err(CgroupError::Busy { path: d.clone() })
                }
                Err(err) => {
                    return Err(CgroupError::Io {
                        what: "remove",
                        path: d.clone(),
                        err,
                    })
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
