//! Errors of the image store. Each one names the object and says what to do.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("blob {digest} not found in the store; pull or load the image again")]
    BlobNotFound { digest: String },

    #[error("{what} {expected}: content has digest {actual}; the data is corrupt or was tampered with, pull it again")]
    DigestMismatch {
        what: &'static str,
        expected: String,
        actual: String,
    },

    #[error("blob {digest}: expected {expected} bytes, got {actual}; the download was truncated or padded, pull it again")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },

    #[error("layer {layer}: uncompressed content {actual} does not match diff_id {expected} from the image config; the image is corrupt")]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },

    #[error("layer {layer}: unpacked size exceeds the limit of {limit} bytes (set BERTH_MAX_LAYER_BYTES to raise it)")]
    LayerTooLarge { layer: String, limit: u64 },

    #[error("layer {layer}: unsupported media type {media_type:?}; berth handles tar, tar+gzip and tar+zstd layers")]
    UnsupportedMediaType { layer: String, media_type: String },

    #[error(
        "layer {layer}: cannot decompress ({kind}): {source}; the blob is corrupt, pull it again"
    )]
    Decompress {
        layer: String,
        kind: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("layer {layer}: cannot read the layer stream: {source}")]
    Stream {
        layer: String,
        #[source]
        source: io::Error,
    },

    #[error("layer {layer}: tar entry {entry:?}: {reason}; the layer is malformed or hostile and was not unpacked")]
    Entry {
        layer: String,
        entry: String,
        reason: String,
    },

    #[error("layer {layer}: invalid tar archive: {reason}; the layer is corrupt")]
    Archive { layer: String, reason: String },

    #[error("layer {chain_id} is not in the store; pull the image again")]
    LayerNotFound { chain_id: String },

    #[error("{path}: {reason}; remove the file or pull the image again")]
    Corrupt { path: PathBuf, reason: String },

    #[error("No such image: {reference}")]
    ImageNotFound { reference: String },

    #[error("{reference} is ambiguous: it matches several image IDs; give more characters")]
    AmbiguousImage { reference: String },

    #[error("image {id} is in use by container {container}; remove the container first or force the removal")]
    ImageInUse { id: String, container: String },
}

impl StoreError {
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> StoreError {
        StoreError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Adds the operation and the path to an `io::Error`.
pub trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::io(op, path, e))
    }
}
