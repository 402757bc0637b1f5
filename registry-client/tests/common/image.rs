//! Small images made in the test: a config, one layer, an OCI manifest.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt as _;
use registry_client::manifest::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
use registry_client::{Client, Digest, Reference};

pub struct Blob {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub path: PathBuf,
}

pub fn blob(dir: &Path, bytes: Vec<u8>) -> Blob {
    let digest = Digest::sha256_of(&bytes);
    let path = dir.join(digest.hex());
    std::fs::write(&path, &bytes).unwrap();
    Blob {
        bytes,
        digest,
        path,
    }
}

pub struct Image {
    pub config: Blob,
    pub layer: Blob,
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
}

pub fn make_image(dir: &Path, layer: Vec<u8>, note: &str) -> Image {
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
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest.to_string(), "size": config.bytes.len()},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer.digest.to_string(), "size": layer.bytes.len()}],
        "annotations": {"note": note},
    }))
    .unwrap();
    let manifest_digest = Digest::sha256_of(&manifest);
    Image {
        config,
        layer,
        manifest,
        manifest_digest,
    }
}

/// Pushes blobs (skipping those present) and the manifest under r's tag.
pub async fn push_image(client: &Client, r: &Reference, img: &Image) -> Digest {
    for b in [&img.config, &img.layer] {
        if client.blob_exists(r, &b.digest).await.unwrap().is_none() {
            client
                .push_blob(r, &b.digest, b.bytes.len() as u64, &b.path)
                .await
                .unwrap();
        }
    }
    client
        .put_manifest(r, OCI_MANIFEST, Bytes::from(img.manifest.clone()))
        .await
        .unwrap()
}

/// Collects a blob stream; the error, if the stream ended with one.
pub async fn collect(
    client: &Client,
    r: &Reference,
    d: &Digest,
    size: Option<u64>,
) -> Result<Vec<u8>, registry_client::Error> {
    let mut s = client.fetch_blob(r, d, size).await?;
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.extend_from_slice(&item?);
    }
    Ok(out)
}
