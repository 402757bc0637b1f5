//! Unpacked layers keyed by ChainID: `layers/<chain-hex>/{diff/,layer.json}`.
//!
//! `ingest` reads the compressed stream once. The calling thread tees it
//! into the blob file, decompresses and hashes it; a second thread parses
//! the tar and unpacks it, so decompression and filesystem work use both
//! cores. The result appears under its final name only when both digests
//! match; until then it lives in `layers/.tmp-*`, which the writer `flock`s
//! so that `sweep_incomplete` can tell a crashed unpack from a running one.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::blobs::{digest_from_hasher, BlobStore, BlobWriter};
use super::error::{IoContext, StoreError};
use super::unpack::{self, UnpackError, UnpackOptions};
use super::Digest;
use crate::engine::fsutil::{self, FileLock};
use crate::engine::paths::Paths;

pub const DEFAULT_MAX_LAYER_BYTES: u64 = 64 << 30;
const TMP_PREFIX: &str = ".tmp-";
const CHUNK: usize = 256 * 1024;
/// Decompressed chunks in flight between the two threads.
const QUEUE: usize = 8;

/// The compressed layer as a manifest describes it.
#[derive(Debug, Clone)]
pub struct LayerSource {
    pub digest: Digest,
    pub size: Option<u64>,
    pub media_type: String,
}

/// `layer.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    #[serde(with = "super::serde_digest")]
    pub diff_id: Digest,
    #[serde(with = "super::serde_digest")]
    pub chain_id: Digest,
    #[serde(with = "super::serde_digest::option", default)]
    pub parent: Option<Digest>,
    /// Unpacked bytes (sum of regular file sizes).
    pub size: u64,
    #[serde(with = "super::serde_digest")]
    pub compressed_digest: Digest,
    pub compressed_size: u64,
    pub media_type: String,
}

/// ChainID per the OCI image spec: the first layer's is its diff_id.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::sha256_of(format!("{p} {diff_id}").as_bytes()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn name(self) -> &'static str {
        match self {
            Compression::None => "tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// What the media type declares; `Err` for types berth cannot unpack.
    fn declared(media_type: &str) -> Result<Compression, ()> {
        let mt = media_type.trim();
        if mt.is_empty() || mt.ends_with(".tar") || mt.ends_with("+tar") {
            Ok(Compression::None)
        } else if mt.ends_with("+gzip") || mt.ends_with(".gzip") || mt.ends_with(".tar.gz") {
            Ok(Compression::Gzip)
        } else if mt.ends_with("+zstd") || mt.ends_with(".zstd") {
            Ok(Compression::Zstd)
        } else {
            Err(())
        }
    }

    /// Content wins over the label: "tar" layers are often compressed.
    fn sniff(magic: &[u8], declared: Compression) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            declared
        }
    }
}

#[derive(Debug, Clone)]
pub struct LayerStore {
    dir: PathBuf,
    locks: PathBuf,
    max_bytes: u64,
    opts: UnpackOptions,
}

fn max_bytes_from_env() -> u64 {
    match std::env::var("BERTH_MAX_LAYER_BYTES") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                tracing::warn!("ignoring BERTH_MAX_LAYER_BYTES={v:?}: not a positive byte count");
                DEFAULT_MAX_LAYER_BYTES
            }
        },
        Err(_) => DEFAULT_MAX_LAYER_BYTES,
    }
}

/// `.tmp-*` unpack directory, locked while alive, removed unless kept.
struct TmpDir {
    path: PathBuf,
    _lock: FileLock,
    keep: bool,
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Reads the compressed input, copying it into the blob (or hashing it when
/// the blob is already stored) and reporting progress.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    blob: Option<&'a mut BlobWriter>,
    hasher: Option<Sha256>,
    count: u64,
    progress: &'a mut dyn FnMut(u64),
    failed: Option<io::Error>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                return Err(copy);
            }
        };
        if n > 0 {
            if let Some(w) = self.blob.as_deref_mut() {
                if let Err(e) = io::Write::write_all(w, &buf[..n]) {
                    let copy = io::Error::new(e.kind(), e.to_string());
                    self.failed = Some(e);
                    return Err(copy);
                }
            }
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf[..n]);
            }
            self.count += n as u64;
            (self.progress)(self.count);
        }
        Ok(n)
    }
}

/// The unpack thread's end of the decompressed stream. Used chunks go back
/// to the producer so the stream reuses a few buffers instead of
/// allocating (and zeroing) one per chunk.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    recycle: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(v) => {
                    let used = std::mem::replace(&mut self.cur, v);
                    let _ = self.recycle.try_send(used);
                    self.pos = 0;
                }
                // The producer is done (or failed, and reports that itself).
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// What the producer side learned from the stream.
struct Produced {
    diff_id: Digest,
    compressed_hash: Option<Digest>,
    compressed_size: u64,
}

impl LayerStore {
    pub fn new(paths: &Paths) -> LayerStore {
        LayerStore {
            dir: paths.layers_dir(),
            locks: paths.locks_dir(),
            max_bytes: max_bytes_from_env(),
            opts: UnpackOptions::default(),
        }
    }

    /// Caps the decompressed size of one layer (tests use small caps).
    pub fn with_max_bytes(mut self, max: u64) -> LayerStore {
        self.max_bytes = max;
        self
    }

    pub fn with_unpack_options(mut self, opts: UnpackOptions) -> LayerStore {
        self.opts = opts;
        self
    }

    pub fn dir(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join(chain_id.hex())
    }

    pub fn diff_path(&self, chain_id: &Digest) -> PathBuf {
        self.dir(chain_id).join("diff")
    }

    fn lock_path(&self, chain_id: &Digest) -> PathBuf {
        self.locks.join(format!("layer-{}.lock", chain_id.hex()))
    }

    /// Exclusive per-layer lock; hold it around `has` + `ingest`, and until
    /// the image record that references the layer is written (GC skips
    /// locked layers).
    pub fn lock(&self, chain_id: &Digest) -> Result<FileLock, StoreError> {
        let p = self.lock_path(chain_id);
        FileLock::exclusive(&p).ctx("lock", &p)
    }

    /// A layer for a pull: `Present` with a shared lock (kept until the
    /// image record names the layer, so GC's `try_lock` skips it), or
    /// `Missing` with the exclusive lock to ingest it under (then
    /// `downgrade` it). Exclusive locks are only held while one layer is
    /// ingested, never while waiting for another lock, so concurrent pulls
    /// that share layers in any order cannot deadlock; a pull that holds
    /// every layer exclusively until its record is written would.
    pub fn claim(&self, chain_id: &Digest) -> Result<LayerClaim, StoreError> {
        let p = self.lock_path(chain_id);
        loop {
            if let Some(ex) = self.try_lock(chain_id)? {
                if self.has(chain_id) {
                    ex.downgrade().ctx("lock", &p)?;
                    return Ok(LayerClaim::Present(ex));
                }
                return Ok(LayerClaim::Missing(ex));
            }
            // Another process ingests it (wait for it) or holds it present.
            let sh = FileLock::shared(&p).ctx("lock", &p)?;
            if self.has(chain_id) {
                return Ok(LayerClaim::Present(sh));
            }
            // Its ingest failed, or a claimant is between its check and its
            // release: try again to ingest it ourselves.
            drop(sh);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    pub fn try_lock(&self, chain_id: &Digest) -> Result<Option<FileLock>, StoreError> {
        let p = self.lock_path(chain_id);
        FileLock::try_exclusive(&p).ctx("lock", &p)
    }

    /// A layer is complete once its `layer.json` is in place.
    pub fn has(&self, chain_id: &Digest) -> bool {
        self.dir(chain_id).join("layer.json").is_file()
    }

    pub fn info(&self, chain_id: &Digest) -> Result<LayerInfo, StoreError> {
        let p = self.dir(chain_id).join("layer.json");
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::LayerNotFound {
                    chain_id: chain_id.to_string(),
                })
            }
            Err(e) => return Err(StoreError::io("read", &p, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: p,
            reason: e.to_string(),
        })
    }

    /// Streams a compressed layer into the blob store and the layer store in
    /// one pass. The caller holds `lock(chain_id)`.
    #[allow(clippy::too_many_arguments)]
    pub fn ingest(
        &self,
        mut compressed: impl Read,
        desc: &LayerSource,
        diff_id: &Digest,
        chain_id: &Digest,
        parent: Option<&Digest>,
        blobs: &BlobStore,
        progress: &mut dyn FnMut(u64),
    ) -> Result<LayerInfo, StoreError> {
        if self.has(chain_id) {
            return self.info(chain_id);
        }
        let writer = if blobs.has(&desc.digest) {
            None
        } else {
            Some(blobs.writer(Some(&desc.digest))?.expect_size(desc.size))
        };
        self.ingest_inner(
            &mut compressed,
            desc,
            diff_id,
            chain_id,
            parent,
            writer,
            progress,
        )
    }

    /// Unpacks a layer whose compressed blob is already stored (after
    /// `load`, or after the layer was removed). The caller holds the lock.
    pub fn ingest_from_blob(
        &self,
        desc: &LayerSource,
        diff_id: &Digest,
        chain_id: &Digest,
        parent: Option<&Digest>,
        blobs: &BlobStore,
    ) -> Result<LayerInfo, StoreError> {
        if self.has(chain_id) {
            return self.info(chain_id);
        }
        let mut file = blobs.open(&desc.digest)?;
        self.ingest_inner(
            &mut file,
            desc,
            diff_id,
            chain_id,
            parent,
            None,
            &mut |_| {},
        )
    }

    fn make_tmp(&self) -> Result<TmpDir, StoreError> {
        loop {
            let path = self
                .dir
                .join(format!("{TMP_PREFIX}{}", fsutil::random_suffix()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io("create", &path, e)),
            }
            let f = File::open(&path).ctx("open", &path)?;
            let Some(lock) = FileLock::try_file(f, &path).ctx("lock", &path)? else {
                continue;
            };
            // A sweeper may have removed it between mkdir and flock.
            if lock.file().metadata().ctx("stat", &path)?.nlink() == 0 {
                continue;
            }
            return Ok(TmpDir {
                path,
                _lock: lock,
                keep: false,
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ingest_inner(
        &self,
        compressed: &mut dyn Read,
        desc: &LayerSource,
        diff_id: &Digest,
        chain_id: &Digest,
        parent: Option<&Digest>,
        mut writer: Option<BlobWriter>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<LayerInfo, StoreError> {
        let layer = desc.digest.to_string();
        let declared = Compression::declared(&desc.media_type).map_err(|()| {
            StoreError::UnsupportedMediaType {
                layer: layer.clone(),
                media_type: desc.media_type.clone(),
            }
        })?;
        let mut tmp = self.make_tmp()?;
        let diff_dir = tmp.path.join("diff");
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&diff_dir)
            .ctx("create", &diff_dir)?;

        let hash_compressed = writer.is_none();
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let (recycle, recycled) = sync_channel::<Vec<u8>>(QUEUE + 2);
        let opts = self.opts.clone();
        let (produced, unpacked) = std::thread::scope(|s| {
            let unpack_dir = diff_dir.clone();
            let handle = s.spawn(move || {
                let reader = ChannelReader {
                    rx,
                    recycle,
                    cur: Vec::new(),
                    pos: 0,
                };
                unpack::unpack(reader, &unpack_dir, &opts)
            });
            let mut tee = Tee {
                inner: compressed,
                blob: writer.as_mut(),
                hasher: hash_compressed.then(Sha256::new),
                count: 0,
                progress,
                failed: None,
            };
            let produced = self.produce(&mut tee, declared, &layer, tx, recycled);
            let unpacked = match handle.join() {
                Ok(r) => r,
                Err(_) => Err(UnpackError::Archive(io::Error::other(
                    "unpack thread panicked",
                ))),
            };
            (produced, unpacked)
        });
        let produced = produced?;

        // A corrupt download breaks both digests: name the download first.
        if let Some(actual) = &produced.compressed_hash {
            if actual != &desc.digest {
                return Err(StoreError::DigestMismatch {
                    what: "layer blob",
                    expected: layer,
                    actual: actual.to_string(),
                });
            }
        }
        if let Some(w) = &writer {
            let actual = w.digest_so_far();
            if actual != desc.digest {
                return Err(StoreError::DigestMismatch {
                    what: "layer blob",
                    expected: layer,
                    actual: actual.to_string(),
                });
            }
        }
        if let Some(expected) = desc.size {
            if expected != produced.compressed_size {
                return Err(StoreError::SizeMismatch {
                    digest: layer,
                    expected,
                    actual: produced.compressed_size,
                });
            }
        }
        let stats = unpacked.map_err(|e| map_unpack_error(&layer, e))?;
        if &produced.diff_id != diff_id {
            return Err(StoreError::DiffIdMismatch {
                layer,
                expected: diff_id.to_string(),
                actual: produced.diff_id.to_string(),
            });
        }
        // One syncfs flushes every unpacked file and the temp blob (same
        // filesystem), so the blob's own fsync in commit finds little to do.
        sync_fs(&diff_dir)?;
        if let Some(w) = writer.take() {
            w.commit()?;
        }

        let info = LayerInfo {
            diff_id: diff_id.clone(),
            chain_id: chain_id.clone(),
            parent: parent.cloned(),
            size: stats.bytes,
            compressed_digest: desc.digest.clone(),
            compressed_size: produced.compressed_size,
            media_type: desc.media_type.clone(),
        };
        self.finish(&mut tmp, &info)?;
        Ok(info)
    }

    /// Decompresses and hashes on this thread; feeds the unpack thread.
    fn produce(
        &self,
        tee: &mut Tee<'_>,
        declared: Compression,
        layer: &str,
        tx: SyncSender<Vec<u8>>,
        recycled: Receiver<Vec<u8>>,
    ) -> Result<Produced, StoreError> {
        let stream_err =
            |tee: &mut Tee<'_>, kind: Compression, e: io::Error| match tee.failed.take() {
                Some(source) => StoreError::Stream {
                    layer: layer.to_string(),
                    source,
                },
                None => StoreError::Decompress {
                    layer: layer.to_string(),
                    kind: kind.name(),
                    source: e,
                },
            };
        let mut magic = [0u8; 4];
        let got = read_full(tee, &mut magic).map_err(|e| stream_err(tee, declared, e))?;
        let compression = Compression::sniff(&magic[..got], declared);

        let mut diff_hasher = Sha256::new();
        let mut total: u64 = 0;
        let mut receiver_gone = false;
        {
            let mut src = BufReader::with_capacity(
                CHUNK,
                io::Cursor::new(magic[..got].to_vec()).chain(&mut *tee),
            );
            let result: Result<(), StoreError> = (|| {
                let mut decoder: Box<dyn Read + '_> = match compression {
                    Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(&mut src)),
                    Compression::Zstd => {
                        Box::new(zstd::stream::read::Decoder::with_buffer(&mut src).map_err(
                            |e| StoreError::Decompress {
                                layer: layer.to_string(),
                                kind: "zstd",
                                source: e,
                            },
                        )?)
                    }
                    Compression::None => Box::new(&mut src),
                };
                loop {
                    let mut buf = recycled.try_recv().unwrap_or_default();
                    buf.resize(CHUNK, 0);
                    let n =
                        read_full(&mut decoder, &mut buf).map_err(|e| StoreError::Decompress {
                            layer: layer.to_string(),
                            kind: compression.name(),
                            source: e,
                        })?;
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                    if total > self.max_bytes {
                        return Err(StoreError::LayerTooLarge {
                            layer: layer.to_string(),
                            limit: self.max_bytes,
                        });
                    }
                    diff_hasher.update(&buf[..n]);
                    buf.truncate(n);
                    if !receiver_gone && tx.send(buf).is_err() {
                        // The unpacker failed; its error is reported. Keep
                        // reading so the digests still describe the stream.
                        receiver_gone = true;
                        break;
                    }
                }
                drop(decoder);
                // Bytes after the compressed stream's end still belong to the blob.
                loop {
                    let n = src
                        .fill_buf()
                        .map(|b| b.len())
                        .map_err(|e| StoreError::Stream {
                            layer: layer.to_string(),
                            source: e,
                        })?;
                    if n == 0 {
                        break;
                    }
                    src.consume(n);
                }
                Ok(())
            })();
            drop(tx);
            if let Err(e) = result {
                return Err(match (e, tee.failed.take()) {
                    (_, Some(source)) => StoreError::Stream {
                        layer: layer.to_string(),
                        source,
                    },
                    (e, None) => e,
                });
            }
        }
        Ok(Produced {
            diff_id: digest_from_hasher(diff_hasher),
            compressed_hash: tee.hasher.take().map(digest_from_hasher),
            compressed_size: tee.count,
        })
    }

    /// Writes `layer.json` and renames the temp dir into place.
    fn finish(&self, tmp: &mut TmpDir, info: &LayerInfo) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(info).map_err(|e| StoreError::Corrupt {
            path: tmp.path.join("layer.json"),
            reason: e.to_string(),
        })?;
        let lj = tmp.path.join("layer.json");
        fsutil::atomic_write(&lj, &json).ctx("write", &lj)?;
        let dest = self.dir(&info.chain_id);
        match std::fs::rename(&tmp.path, &dest) {
            Ok(()) => {
                tmp.keep = true;
            }
            // Someone else (without the lock) finished the same layer first.
            Err(e) if dest.join("layer.json").is_file() => {
                tracing::debug!("layer {} already present: {e}", info.chain_id);
                return Ok(());
            }
            Err(e) => return Err(StoreError::io("rename layer into", &dest, e)),
        }
        fsutil::fsync_dir(&self.dir).ctx("fsync", &self.dir)
    }

    /// Removes a layer; the caller holds its lock. The rename makes it
    /// vanish atomically; a crash during deletion leaves a `.tmp-*` to sweep.
    pub fn remove(&self, chain_id: &Digest) -> Result<(), StoreError> {
        let dir = self.dir(chain_id);
        let doomed = self
            .dir
            .join(format!("{TMP_PREFIX}rm-{}", fsutil::random_suffix()));
        match std::fs::rename(&dir, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("remove layer", &dir, e)),
        }
        fsutil::fsync_dir(&self.dir).ctx("fsync", &self.dir)?;
        std::fs::remove_dir_all(&doomed).ctx("remove", &doomed)
    }

    /// Complete layers (with `layer.json`).
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).ctx("list", &self.dir)? {
            let entry = entry.ctx("list", &self.dir)?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Ok(d) = format!("sha256:{name}").parse::<Digest>() {
                if self.has(&d) {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes `.tmp-*` directories whose writer is gone.
    pub fn sweep_incomplete(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir).ctx("list", &self.dir)? {
            let entry = entry.ctx("list", &self.dir)?;
            let is_tmp = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TMP_PREFIX));
            if !is_tmp {
                continue;
            }
            let path = entry.path();
            let Ok(f) = File::open(&path) else { continue };
            if let Some(_lock) = FileLock::try_file(f, &path).ctx("lock", &path)? {
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io("remove", &path, e)),
                }
            }
        }
        Ok(removed)
    }
}

fn sync_fs(dir: &Path) -> Result<(), StoreError> {
    let fd = File::open(dir).ctx("open", dir)?;
    rustix::fs::syncfs(&fd).map_err(|e| StoreError::io("syncfs", dir, e.into()))
}

fn map_unpack_error(layer: &str, e: UnpackError) -> StoreError {
    match e {
        UnpackError::Entry { entry, reason } => StoreError::Entry {
            layer: layer.to_string(),
            entry,
            reason,
        },
        UnpackError::Archive(e) => StoreError::Archive {
            layer: layer.to_string(),
            reason: e.to_string(),
        },
        UnpackError::Root { path, source } => StoreError::io("open", Path::new(&path), source),
    }
}

/// What [`LayerStore::claim`] found.
pub enum LayerClaim {
    /// Complete; the lock is shared.
    Present(FileLock),
    /// Absent; the lock is exclusive.
    Missing(FileLock),
}
