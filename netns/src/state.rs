//! On-disk state: one JSON file per network (definition and leases), read
//! and written under an `flock`, replaced atomically (temp, fsync, rename,
//! fsync dir) so a crash leaves the old or the new file, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};

/// An exclusive lock held until dropped (std's `File::lock` is `flock`).
pub struct Lock(#[allow(dead_code)] File);

pub fn lock(path: &Path) -> Result<Lock> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    }
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open lock file", path, e))?;
    f.lock().map_err(|e| Error::io("lock", path, e))?;
    Ok(Lock(f))
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|source| Error::CorruptState {
            path: path.to_path_buf(),
            source,
        })
}

/// Writes `value` atomically (temp + rename: a killed process leaves the old
/// or the new file). With `durable`, the data and the directory are also
/// fsync'ed, which costs 1-10 ms on this disk: used for network definitions;
/// lease updates skip it, because leases describe kernel objects that a
/// power loss destroys anyway, and `cleanup_orphans` reconciles them.
pub fn write_json<T: Serialize>(path: &Path, value: &T, durable: bool) -> Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(|source| Error::CorruptState {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(&data)
        .and_then(|_| if durable { f.sync_all() } else { Ok(()) })
        .map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("rename into", path, e))?;
    if !durable {
        return Ok(());
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}
