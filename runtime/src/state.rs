//! Container state on disk: `<state_root>/<id>/state.json`, written
//! atomically (temp + rename) under a per-container flock.
//!
//! The state root is volatile (under /run, a tmpfs, like runc's): a crash of
//! the writer leaves the old or the new file thanks to the rename, and there
//! is nothing to preserve across a reboot, so there is no fsync (it cost
//! ~30 ms per write on this machine's disk).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Hooks;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists; delete it first or choose another id")]
    Exists(String),
    #[error(
        "invalid container id {0:?}: use letters, digits, '_', '-', '.' (not starting with '.')"
    )]
    BadId(String),
    #[error("state of container {id}: {what} {path}: {err}")]
    Io {
        id: String,
        what: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("state of container {id}: {path} is corrupt: {err}")]
    Corrupt {
        id: String,
        path: PathBuf,
        err: serde_json::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// The OCI state (runtime.md "State"), as `state` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    #[serde(default)]
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// What berth keeps beside the OCI state to manage the container later.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub state: State,
    /// Field 22 of /proc/<pid>/stat: tells our init from a recycled pid.
    pub pid_start_time: u64,
    pub rootfs: PathBuf,
    /// Unix seconds.
    pub created: u64,
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// Cgroup directories berth created for this container (only these are removed).
    #[serde(default)]
    pub cgroup: crate::cgroups::CgroupRecord,
    /// config.json had no process: `start` must fail (runtime spec).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_process: bool,
}

pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadId(id.to_owned()))
    }
}

/// One container's directory, locked for as long as this value lives.
pub struct ContainerDir {
    pub id: String,
    pub dir: PathBuf,
    _lock: File,
}

impl ContainerDir {
    /// The lock is an `flock` on the directory itself: a separate lock file
    /// would cost one more inode to create and delete per container (each
    /// 0.1-0.5 ms on a busy ext4).
    fn lock_file(id: &str, dir: &Path) -> Result<File, StateError> {
        let path = dir.to_path_buf();
        let f = File::open(&path).map_err(|err| StateError::Io {
            id: id.into(),
            what: "open",
            path: path.clone(),
            err,
        })?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let err = std::io::Error::last_os_error();
            return Err(StateError::Io {
                id: id.into(),
                what: "lock",
                path,
                err,
            });
        }
        Ok(f)
    }

    /// Create a new container directory; fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<Self, StateError> {
        validate_id(id)?;
        let io = |what, path: &Path, err| StateError::Io {
            id: id.into(),
            what,
            path: path.into(),
            err,
        };
        fs::create_dir_all(root).map_err(|e| io("create", root, e))?;
        let dir = root.join(id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.into()))
            }
            Err(e) => return Err(io("create", &dir, e)),
        }
        let lock = Self::lock_file(id, &dir)?;
        Ok(Self {
            id: id.into(),
            dir,
            _lock: lock,
        })
    }

    /// Open and lock an existing container directory.
    pub fn open(root: &Path, id: &str) -> Result<Self, StateError> {
        validate_id(id)?;
        let dir = root.join(id);
        if !dir.join("state.json").exists() {
            return Err(StateError::NotFound(id.into()));
        }
        let lock = Self::lock_file(id, &dir)?;
        Ok(Self {
            id: id.into(),
            dir,
            _lock: lock,
        })
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    pub fn load(&self) -> Result<Record, StateError> {
        load(&self.dir, &self.id)
    }

    /// Removes `root/id` when it is what a `create` killed before its
    /// first record leaves: no state.json and nobody holding the lock.
    /// Returns whether it did.
    pub fn remove_abandoned(root: &Path, id: &str) -> Result<bool, StateError> {
        validate_id(id)?;
        let dir = root.join(id);
        if !dir.is_dir() || dir.join("state.json").exists() {
            return Ok(false);
        }
        let Ok(f) = File::open(&dir) else {
            return Ok(false);
        };
        // SAFETY: flock on an fd we own; a creator alive holds it.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Ok(false);
        }
        fs::remove_dir_all(&dir).map_err(|err| StateError::Io {
            id: id.into(),
            what: "remove",
            path: dir.clone(),
            err,
        })?;
        Ok(true)
    }

    pub fn save(&self, rec: &Record) -> Result<(), StateError> {
        let path = self.dir.join("state.json");
        let tmp = self.dir.join(".state.json.tmp");
        let io = |what, p: &Path, err| StateError::Io {
            id: self.id.clone(),
            what,
            path: p.into(),
            err,
        };
        let data = serde_json::to_vec(rec).map_err(|err| StateError::Corrupt {
            id: self.id.clone(),
            path: path.clone(),
            err,
        })?;
        let mut f = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
        f.write_all(&data).map_err(|e| io("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io("rename", &path, e))?;
        Ok(())
    }

    pub fn remove(self) -> Result<(), StateError> {
        fs::remove_dir_all(&self.dir).map_err(|err| StateError::Io {
            id: self.id.clone(),
            what: "remove",
            path: self.dir.clone(),
            err,
        })
    }
}

/// Read a record without taking the lock (for `list` and `state`: the file
/// is replaced atomically, so a reader sees the old or the new one).
pub fn load(dir: &Path, id: &str) -> Result<Record, StateError> {
    let path = dir.join("state.json");
    let data = fs::read(&path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            StateError::NotFound(id.into())
        } else {
            StateError::Io {
                id: id.into(),
                what: "read",
                path: path.clone(),
                err,
            }
        }
    })?;
    serde_json::from_slice(&data).map_err(|err| StateError::Corrupt {
        id: id.into(),
        path,
        err,
    })
}

/// Whether some process holds the container's lock now (a `create` in
/// progress does, from its first record until it returns). For readers
/// that do not take the lock themselves.
pub fn lock_held(dir: &Path) -> bool {
    // The lock is the directory's own flock (`ContainerDir::lock_file`).
    let Ok(f) = File::open(dir) else {
        return false;
    };
    // SAFETY: flock on an fd we own; released when `f` closes.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 }
}

/// Start time of a process (clock ticks since boot), `None` if it is gone or a zombie.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: split after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state); starttime is field 22.
    let state = *fields.first()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.get(19)?.parse().ok()
}
