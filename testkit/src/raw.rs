//! Raw content for registry protocol tests: deterministic bytes, blobs
//! written to files (clients upload from a path), and a one-layer OCI
//! image whose "layer" is arbitrary bytes rather than a tar. For real
//! root filesystems use `image::ImageBuilder`.

use crate::image::{digest_of, Compression, Media};
use std::path::{Path, PathBuf};

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `bytes` with `marker` written over them at `at`: a recognisable spot
/// inside otherwise random content, for faults aimed at a known offset.
pub fn with_marker(mut bytes: Vec<u8>, marker: &[u8], at: usize) -> Vec<u8> {
    bytes[at..at + marker.len()].copy_from_slice(marker);
    bytes
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A blob kept in memory and in a file named after its hex digest.
#[derive(Clone, Debug)]
pub struct FileBlob {
    pub bytes: Vec<u8>,
    /// `sha256:<hex>`.
    pub digest: String,
    pub path: PathBuf,
}

impl FileBlob {
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// Writes `bytes` to `dir/<hex digest>`.
pub fn blob(dir: &Path, bytes: Vec<u8>) -> FileBlob {
    let digest = digest_of(&bytes);
    let path = dir.join(digest.trim_start_matches("sha256:"));
    std::fs::write(&path, &bytes).unwrap();
    FileBlob {
        bytes,
        digest,
        path,
    }
}

/// A config, one layer and an OCI manifest, all written under a dir.
#[derive(Clone, Debug)]
pub struct RawImage {
    pub config: FileBlob,
    pub layer: FileBlob,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
}

/// An OCI image whose single gzip-typed layer is `layer` as given (not
/// necessarily a tar: registries never look inside). `note` goes into the
/// config's `Env` and the manifest's annotations, so distinct notes make
/// distinct manifests and configs over the same layer.
pub fn make_image(dir: &Path, layer: Vec<u8>, note: &str) -> RawImage {
    let config = blob(
        dir,
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": [format!("NOTE={note}")]},
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .unwrap(),
    );
    let layer = blob(dir, layer);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": Media::Oci.manifest(),
        "config": {"mediaType": Media::Oci.config(), "digest": config.digest, "size": config.size()},
        "layers": [{"mediaType": Media::Oci.layer(Compression::Gzip), "digest": layer.digest, "size": layer.size()}],
        "annotations": {"note": note},
    }))
    .unwrap();
    let manifest_digest = digest_of(&manifest);
    RawImage {
        config,
        layer,
        manifest,
        manifest_digest,
    }
}
