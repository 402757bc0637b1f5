//! The image store: blobs, unpacked layers and the image index on disk.
//! See docs/architecture.md "engine::store" and "Layer safety".

pub mod blobs;
pub mod error;
pub mod images;
pub mod layers;
mod serde_digest;
#[cfg(test)]
pub(crate) mod testutil;
pub mod unpack;

use std::collections::HashSet;
use std::os::unix::fs::DirBuilderExt;

pub use blobs::{BlobStore, BlobWriter};
pub use error::StoreError;
pub use images::{ContainerUsage, ImageIndex, ImageRecord, LayerRef, NoContainers};
pub use layers::{chain_id, LayerClaim, LayerInfo, LayerSource, LayerStore};
pub use registry_client::digest::Digest;

use crate::engine::fsutil::FileLock;
use crate::engine::paths::Paths;
use error::IoContext;

/// The store of one `--root`.
#[derive(Debug, Clone)]
pub struct Store {
    pub paths: Paths,
    pub blobs: BlobStore,
    pub layers: LayerStore,
}

/// What `gc` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub layers: Vec<Digest>,
    pub blobs: Vec<Digest>,
}

impl Store {
    /// Creates the directory layout (0700) and sweeps what crashed writers
    /// left behind.
    pub fn open(paths: Paths) -> Result<Store, StoreError> {
        for dir in [
            paths.root.clone(),
            paths.root.join("blobs"),
            paths.blobs_dir(),
            paths.layers_dir(),
            paths.locks_dir(),
            paths.tmp_dir(),
        ] {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(&dir)
                .ctx("create", &dir)?;
        }
        let store = Store {
            blobs: BlobStore::new(&paths),
            layers: LayerStore::new(&paths),
            paths,
        };
        store.layers.sweep_incomplete()?;
        store.blobs.sweep_tmp()?;
        Ok(store)
    }

    pub fn images(&self) -> Result<ImageIndex, StoreError> {
        ImageIndex::load(&self.paths)
    }

    /// Removes layers and blobs that no image references. Holds the images
    /// lock so no record appears meanwhile, and skips layers and blobs whose
    /// lock someone holds (a pull that has not written its record yet).
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let _images = ImageIndex::lock(&self.paths)?;
        let idx = ImageIndex::load(&self.paths)?;
        let mut chains = HashSet::new();
        let mut blobs = HashSet::new();
        for rec in idx.images.values() {
            blobs.insert(rec.id.to_string());
            blobs.insert(rec.manifest_digest.to_string());
            for rd in &rec.repo_digests {
                if let Some((_, d)) = rd.rsplit_once('@') {
                    blobs.insert(d.to_string());
                }
            }
            for l in &rec.layers {
                chains.insert(l.chain_id.to_string());
                blobs.insert(l.digest.to_string());
            }
        }
        let mut report = GcReport::default();
        for chain in self.layers.list()? {
            if chains.contains(&chain.to_string()) {
                continue;
            }
            if let Some(_lock) = self.layers.try_lock(&chain)? {
                self.layers.remove(&chain)?;
                report.layers.push(chain);
            }
        }
        for blob in self.blobs.list()? {
            if blobs.contains(&blob.to_string()) {
                continue;
            }
            let lp = self.blobs.lock_path(blob.hex());
            if let Some(_lock) = FileLock::try_exclusive(&lp).ctx("lock", &lp)? {
                self.blobs.remove(&blob)?;
                report.blobs.push(blob);
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;
