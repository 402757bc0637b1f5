//! `volumes/<name>/`: `_data` (what containers see) and `volume.json`
//! (driver, labels, options, creation time). A volume appears by renaming a
//! finished temp directory into place under `locks/volume-<name>.lock`, so
//! two concurrent creates of one name make one volume and a crash leaves
//! either nothing or a whole volume (temp leftovers are swept).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::parse::{invalid_name_message, valid_volume_name};
use crate::engine::fsutil::{atomic_write, fsync_dir, random_suffix, FileLock};
use crate::engine::paths::Paths;

/// docker ≥ 23 marks anonymous volumes with this label; `volume prune`
/// without `-a` removes only those.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{0}")]
    InvalidName(String),
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("remove {name}: volume is in use - [{}]", .ids.join(", "))]
    InUse { name: String, ids: Vec<String> },
    #[error("{0}")]
    InvalidOption(String),
    #[error("volume {name}: {what} {}: {source}; check the permissions and free space of the volumes directory", .path.display())]
    Io {
        name: String,
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(name: &str, what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError {
    let (name, path) = (name.to_string(), path.to_path_buf());
    move |source| VolumeError::Io {
        name,
        what,
        path,
        source,
    }
}

/// `volume.json`, in docker's field names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeMeta {
    pub name: String,
    pub driver: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

impl VolumeMeta {
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// The local driver's options: `type`, `device`, `o` (and `size`, which
/// needs xfs project quotas: refused).
pub fn validate_options(opts: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    for k in opts.keys() {
        if !matches!(k.as_str(), "type" | "device" | "o") {
            return Err(VolumeError::InvalidOption(format!(
                "invalid option key: {k:?}"
            )));
        }
    }
    match (opts.contains_key("type"), opts.contains_key("device")) {
        (true, false) => Err(VolumeError::InvalidOption(
            "missing required option: \"device\"".into(),
        )),
        (false, true) => Err(VolumeError::InvalidOption(
            "missing required option: \"type\"".into(),
        )),
        (false, false) if opts.contains_key("o") => Err(VolumeError::InvalidOption(
            "missing required option: \"type\"".into(),
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone)]
pub struct VolumeStore {
    pub paths: Paths,
}

impl VolumeStore {
    pub fn new(paths: Paths) -> VolumeStore {
        VolumeStore { paths }
    }

    pub fn dir(&self) -> PathBuf {
        self.paths.root.join("volumes")
    }

    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// What containers mount (docker's `Mountpoint`).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    /// Held while a volume is created, mounted by the local driver, or removed.
    pub fn lock(&self, name: &str) -> Result<FileLock, VolumeError> {
        let dir = self.paths.locks_dir();
        std::fs::create_dir_all(&dir).map_err(io(name, "cannot create", &dir))?;
        let p = self.paths.lock_file(&format!("volume-{name}"));
        FileLock::exclusive(&p).map_err(io(name, "cannot lock", &p))
    }

    fn check_name(name: &str) -> Result<(), VolumeError> {
        if valid_volume_name(name) {
            Ok(())
        } else {
            Err(VolumeError::InvalidName(invalid_name_message(name)))
        }
    }

    /// Creates the volume, or returns the existing one of that name (docker's
    /// `volume create` is idempotent). `name` None: an anonymous volume with
    /// a random 64-hex name. The bool says whether it was created now.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<(VolumeMeta, bool), VolumeError> {
        self.create_held(name, labels, options)
            .map(|(m, c, _)| (m, c))
    }

    /// `create`, returning the volume's lock still held: a container
    /// records its use of the volume before a `volume rm` can look.
    pub fn create_held(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<(VolumeMeta, bool, FileLock), VolumeError> {
        let (name, mut labels) = match name {
            Some(n) => (n.to_string(), labels),
            None => {
                let mut l = labels;
                l.insert(ANONYMOUS_LABEL.into(), String::new());
                (
                    format!(
                        "{:016x}{:016x}{:016x}{:016x}",
                        rand::random::<u64>(),
                        rand::random::<u64>(),
                        rand::random::<u64>(),
                        rand::random::<u64>()
                    ),
                    l,
                )
            }
        };
        Self::check_name(&name)?;
        validate_options(&options)?;
        let lock = self.lock(&name)?;
        if let Ok(m) = self.get(&name) {
            return Ok((m, false, lock));
        }
        labels.retain(|k, _| !k.is_empty());
        let meta = VolumeMeta {
            name: name.clone(),
            driver: "local".into(),
            labels,
            options,
            created_at: Utc::now(),
        };
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(io(&name, "cannot create", &dir))?;
        self.sweep();
        let tmp = dir.join(format!(".tmp-{}", random_suffix()));
        let r = (|| {
            let data = tmp.join("_data");
            std::fs::create_dir_all(&data).map_err(io(&name, "cannot create", &data))?;
            let b = serde_json::to_vec_pretty(&meta)
                .map_err(|e| io(&name, "cannot encode", &tmp)(std::io::Error::other(e)))?;
            let mf = tmp.join("volume.json");
            atomic_write(&mf, &b).map_err(io(&name, "cannot write", &mf))?;
            let dst = self.volume_dir(&name);
            std::fs::rename(&tmp, &dst).map_err(io(&name, "cannot rename into", &dst))?;
            fsync_dir(&dir).map_err(io(&name, "cannot sync", &dir))
        })();
        if r.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        r?;
        Ok((meta, true, lock))
    }

    /// Temp directories of creates or removals whose process died.
    fn sweep(&self) {
        let Ok(rd) = std::fs::read_dir(self.dir()) else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            // A removal or create in progress finishes what it started; only
            // a dead one leaves these behind (old, nothing mounted there).
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|d| d.as_secs() > 3600);
            if (n.starts_with(".rm-") || n.starts_with(".tmp-"))
                && old
                && !super::localdrv::is_mounted_under(&e.path())
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    pub fn get(&self, name: &str) -> Result<VolumeMeta, VolumeError> {
        if !valid_volume_name(name) {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        let p = self.volume_dir(name).join("volume.json");
        let b = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()))
            }
            Err(e) => return Err(io(name, "cannot read", &p)(e)),
        };
        serde_json::from_slice(&b)
            .map_err(|e| io(name, "cannot decode", &p)(std::io::Error::other(e)))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<VolumeMeta>, VolumeError> {
        let dir = self.dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io("*", "cannot list", &dir)(e)),
        };
        let mut out: Vec<VolumeMeta> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| valid_volume_name(n))
            .filter_map(|n| self.get(&n).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes the volume. `users` says which containers use it; it is
    /// asked under the volume's lock so a concurrent `run` cannot slip in.
    pub fn remove(
        &self,
        name: &str,
        users: impl FnOnce(&str) -> Vec<String>,
    ) -> Result<(), VolumeError> {
        if !valid_volume_name(name) {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        let _lock = self.lock(name)?;
        self.get(name)?;
        let ids = users(name);
        if !ids.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                ids,
            });
        }
        let vdir = self.volume_dir(name);
        // A local-driver mount left by a killed container goes first: removing
        // through it would delete the device's (or a bound host dir's) files.
        super::localdrv::unmount_all(self, name);
        if super::localdrv::is_mounted_under(&vdir) {
            return Err(io(name, "cannot unmount what is mounted under", &vdir)(
                std::io::Error::from_raw_os_error(libc::EBUSY),
            ));
        }
        let gone = self.dir().join(format!(".rm-{}", random_suffix()));
        std::fs::rename(&vdir, &gone).map_err(io(name, "cannot move away", &vdir))?;
        let _ = fsync_dir(&self.dir());
        match std::fs::remove_dir_all(&gone) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(name, "cannot remove", &gone)(e))
            }
            _ => Ok(()),
        }
    }

    /// Bytes used under `_data` (not following symlinks, not crossing mounts).
    pub fn size(&self, name: &str) -> u64 {
        du(&self.data_dir(name))
    }
}

fn du(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(root) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    let dev = root.dev();
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    let mut seen = std::collections::HashSet::new();
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            if m.is_dir() {
                stack.push(e.path());
            } else if m.nlink() <= 1 || seen.insert(m.ino()) {
                total += m.size();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, VolumeStore) {
        let d = tempfile::tempdir().unwrap();
        let s = VolumeStore::new(Paths::new(Some(d.path().to_path_buf())));
        (d, s)
    }

    #[test]
    fn create_get_list_remove() {
        let (_d, s) = store();
        let (m, created) = s
            .create(Some("data"), BTreeMap::new(), BTreeMap::new())
            .unwrap();
        assert!(created && m.driver == "local" && !m.anonymous());
        let (_, again) = s
            .create(Some("data"), BTreeMap::new(), BTreeMap::new())
            .unwrap();
        assert!(!again);
        assert!(s.data_dir("data").is_dir());
        let (a, _) = s.create(None, BTreeMap::new(), BTreeMap::new()).unwrap();
        assert!(a.anonymous() && a.name.len() == 64);
        assert_eq!(s.list().unwrap().len(), 2);
        let e = s.remove("data", |_| vec!["abc".into()]).unwrap_err();
        assert_eq!(e.to_string(), "remove data: volume is in use - [abc]");
        s.remove("data", |_| vec![]).unwrap();
        assert!(matches!(s.get("data"), Err(VolumeError::NotFound(_))));
        assert_eq!(std::fs::read_dir(s.dir()).unwrap().count(), 1);
    }

    #[test]
    fn names_never_escape() {
        let (_d, s) = store();
        for bad in ["../x", "..", "a/b", "/abs", "x"] {
            assert!(matches!(
                s.create(Some(bad), BTreeMap::new(), BTreeMap::new()),
                Err(VolumeError::InvalidName(_))
            ));
            assert!(matches!(s.get(bad), Err(VolumeError::NotFound(_))));
        }
    }

    #[test]
    fn options_checked() {
        let mut o = BTreeMap::new();
        o.insert("foo".to_string(), "1".to_string());
        assert_eq!(
            validate_options(&o).unwrap_err().to_string(),
            "invalid option key: \"foo\""
        );
        let mut o = BTreeMap::new();
        o.insert("type".to_string(), "tmpfs".to_string());
        assert_eq!(
            validate_options(&o).unwrap_err().to_string(),
            "missing required option: \"device\""
        );
        o.insert("device".to_string(), "tmpfs".to_string());
        o.insert("o".to_string(), "size=1m".to_string());
        validate_options(&o).unwrap();
    }

    #[test]
    fn concurrent_creates_make_one_volume() {
        let (_d, s) = store();
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    s.create(Some("race"), BTreeMap::new(), BTreeMap::new())
                        .unwrap()
                        .1
                })
            })
            .collect();
        let created: usize = hs.into_iter().map(|h| h.join().unwrap() as usize).sum();
        assert_eq!(created, 1);
        assert_eq!(std::fs::read_dir(s.dir()).unwrap().count(), 1);
    }
}
