//! Content-addressed blobs under `blobs/sha256/<hex>`.
//!
//! Writers stream into a temp file under `tmp/` that they `flock` while they
//! live, hash while writing, and rename into place only when digest and size
//! match. A crash leaves an unlocked temp file that `sweep_tmp` removes.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::error::{IoContext, StoreError};
use super::Digest;
use crate::engine::fsutil::{self, FileLock};
use crate::engine::paths::Paths;

const TMP_PREFIX: &str = "blob-";

#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
    locks: PathBuf,
}

/// Turns a finished sha256 into a `Digest`.
pub(crate) fn digest_from_hasher(hasher: Sha256) -> Digest {
    let hex = hex::encode(hasher.finalize());
    match format!("sha256:{hex}").parse() {
        Ok(d) => d,
        // 64 lowercase hex digits always parse; keep the type honest anyway.
        Err(_) => unreachable!("sha256 hex is a valid digest"),
    }
}

impl BlobStore {
    pub fn new(paths: &Paths) -> BlobStore {
        BlobStore {
            dir: paths.blobs_dir(),
            tmp: paths.tmp_dir(),
            locks: paths.locks_dir(),
        }
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Exclusive per-blob lock (`locks/blob-<hex>.lock`), for callers that
    /// must keep GC away from a blob they are about to reference.
    pub fn lock(&self, digest: &Digest) -> Result<FileLock, StoreError> {
        let p = self.locks.join(format!("blob-{}.lock", digest.hex()));
        FileLock::exclusive(&p).ctx("lock", &p)
    }

    pub(crate) fn lock_path(&self, hex: &str) -> PathBuf {
        self.locks.join(format!("blob-{hex}.lock"))
    }

    /// Opens a blob for streaming; the caller verifies or trusts it.
    pub fn open(&self, digest: &Digest) -> Result<File, StoreError> {
        let p = self.path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::BlobNotFound {
                    digest: digest.to_string(),
                }
            } else {
                StoreError::io("open blob", &p, e)
            }
        })
    }

    /// Reads a whole blob and checks it still has its digest.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.path(digest);
        let mut bytes = Vec::new();
        self.open(digest)?
            .read_to_end(&mut bytes)
            .ctx("read blob", &p)?;
        let actual = Digest::sha256_of(&bytes);
        if &actual != digest {
            return Err(StoreError::DigestMismatch {
                what: "blob",
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Stores bytes (manifests, configs) and returns their digest.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::sha256_of(bytes);
        if self.has(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer(Some(&digest))?;
        w.write_all(bytes).ctx("write blob", &w.tmp_path)?;
        w.commit()
    }

    /// A streaming writer; `expected` makes `commit` refuse other content.
    pub fn writer(&self, expected: Option<&Digest>) -> Result<BlobWriter, StoreError> {
        loop {
            let tmp_path = self
                .tmp
                .join(format!("{TMP_PREFIX}{}", fsutil::random_suffix()));
            let file = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp_path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io("create temp blob", &tmp_path, e)),
            };
            let dup = file.try_clone().ctx("open temp blob", &tmp_path)?;
            let Some(lock) = FileLock::try_file(dup, &tmp_path).ctx("lock", &tmp_path)? else {
                continue;
            };
            // A sweeper may have removed the name between create and lock.
            if file.metadata().ctx("stat", &tmp_path)?.nlink() == 0 {
                continue;
            }
            return Ok(BlobWriter {
                out: BufWriter::with_capacity(256 * 1024, file),
                tmp_path,
                hasher: Sha256::new(),
                size: 0,
                expected: expected.cloned(),
                expected_size: None,
                dest_dir: self.dir.clone(),
                _lock: lock,
                committed: false,
            });
        }
    }

    pub fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        let p = self.path(digest);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove blob", &p, e)),
        }
    }

    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).ctx("list", &self.dir)? {
            let entry = entry.ctx("list", &self.dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Ok(d) = format!("sha256:{name}").parse::<Digest>() {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes temp files whose writer is gone (its flock was released).
    pub fn sweep_tmp(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        let rd = match std::fs::read_dir(&self.tmp) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(StoreError::io("list", &self.tmp, e)),
        };
        for entry in rd {
            let entry = entry.ctx("list", &self.tmp)?;
            let path = entry.path();
            let is_temp = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TMP_PREFIX));
            if !is_temp {
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if let Some(_lock) = FileLock::try_file(file, &path).ctx("lock", &path)? {
                if std::fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// A blob being written. Dropping it without `commit` removes the temp file.
pub struct BlobWriter {
    out: BufWriter<File>,
    tmp_path: PathBuf,
    hasher: Sha256,
    size: u64,
    expected: Option<Digest>,
    expected_size: Option<u64>,
    dest_dir: PathBuf,
    _lock: FileLock,
    committed: bool,
}

impl BlobWriter {
    /// Makes `commit` also check the byte count (from a descriptor).
    pub fn expect_size(mut self, size: Option<u64>) -> BlobWriter {
        self.expected_size = size;
        self
    }

    pub fn bytes_written(&self) -> u64 {
        self.size
    }

    /// The digest of what was written so far (the hasher is cloned).
    pub fn digest_so_far(&self) -> Digest {
        digest_from_hasher(self.hasher.clone())
    }

    pub fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// Verifies digest and size, fsyncs, and renames into place.
    pub fn commit(mut self) -> Result<Digest, StoreError> {
        let actual = digest_from_hasher(std::mem::take(&mut self.hasher));
        if let Some(expected) = &self.expected {
            if expected != &actual {
                return Err(StoreError::DigestMismatch {
                    what: "blob",
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        if let Some(expected) = self.expected_size {
            if expected != self.size {
                return Err(StoreError::SizeMismatch {
                    digest: actual.to_string(),
                    expected,
                    actual: self.size,
                });
            }
        }
        self.out.flush().ctx("write blob", &self.tmp_path)?;
        self.out.get_ref().sync_all().ctx("fsync", &self.tmp_path)?;
        let dest = self.dest_dir.join(actual.hex());
        std::fs::rename(&self.tmp_path, &dest).ctx("rename blob into", &dest)?;
        self.committed = true;
        fsutil::fsync_dir(&self.dest_dir).ctx("fsync", &self.dest_dir)?;
        Ok(actual)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(Some(dir.path().to_path_buf()));
        for d in [paths.blobs_dir(), paths.tmp_dir(), paths.locks_dir()] {
            std::fs::create_dir_all(d).unwrap();
        }
        (dir, BlobStore::new(&paths))
    }

    #[test]
    fn write_read_list_remove() {
        let (_d, s) = store();
        let d = s.write_bytes(b"hello").unwrap();
        assert_eq!(d, Digest::sha256_of(b"hello"));
        assert!(s.has(&d));
        assert_eq!(s.read(&d).unwrap(), b"hello");
        assert_eq!(s.list().unwrap(), vec![d.clone()]);
        s.remove(&d).unwrap();
        assert!(!s.has(&d));
        assert!(matches!(s.read(&d), Err(StoreError::BlobNotFound { .. })));
    }

    #[test]
    fn mismatch_leaves_nothing() {
        let (_d, s) = store();
        let want = Digest::sha256_of(b"right");
        let mut w = s.writer(Some(&want)).unwrap();
        w.write_all(b"wrong").unwrap();
        let tmp = w.tmp_path().to_path_buf();
        assert!(matches!(w.commit(), Err(StoreError::DigestMismatch { .. })));
        assert!(!tmp.exists());
        assert!(s.list().unwrap().is_empty());

        let mut w = s.writer(None).unwrap().expect_size(Some(3));
        w.write_all(b"four").unwrap();
        assert!(matches!(w.commit(), Err(StoreError::SizeMismatch { .. })));
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn corrupt_blob_is_detected_on_read() {
        let (_d, s) = store();
        let d = s.write_bytes(b"data").unwrap();
        std::fs::write(s.path(&d), b"evil").unwrap();
        assert!(matches!(s.read(&d), Err(StoreError::DigestMismatch { .. })));
    }

    #[test]
    fn sweep_removes_only_unlocked_temps() {
        let (d, s) = store();
        let live = s.writer(None).unwrap();
        let stale = d.path().join("tmp").join("blob-stale");
        std::fs::write(&stale, b"x").unwrap();
        assert_eq!(s.sweep_tmp().unwrap(), 1);
        assert!(!stale.exists());
        assert!(live.tmp_path().exists());
        drop(live);
        assert_eq!(std::fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }
}
