//! `push`: blobs first (skip what the registry has, mount what another
//! repository of the same registry has, upload the rest from the blob
//! store), then the manifest. Stored blobs go byte for byte, so an image
//! pulled elsewhere keeps its digests; uncompressed layers (from `load` of
//! an uncompressed archive) are gzip'ed first, which needs a new manifest.

use std::io::{BufReader, BufWriter};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use registry_client::client::Client;
use registry_client::manifest::{self as mt, Compression};
use registry_client::Reference;
use serde_json::{json, Value};

pub use crate::engine::events::{PushEvent, PushObserver};
use crate::engine::images_cmd::{reference_key, store_digest};
use crate::engine::pull::short;
use crate::engine::store::{ImageIndex, Store};

pub struct SilentPush;
impl PushObserver for SilentPush {
    fn event(&self, _e: PushEvent) {}
}

pub struct PushOutcome {
    pub digest: String,
    pub size: usize,
}

/// A blob to push: where it is on disk, its digest and size.
struct Upload {
    path: std::path::PathBuf,
    digest: String,
    size: u64,
    media_type: String,
    /// Keeps a recompressed temp file alive until the upload is done.
    _tmp: Option<tempfile::TempPath>,
}

fn gzip_to_temp(store: &Store, src: &std::path::Path) -> Result<Upload> {
    let tmp = tempfile::Builder::new()
        .prefix("push-gz-")
        .tempfile_in(store.paths.tmp_dir())
        .context("creating a temp file to compress a layer")?;
    let (file, path) = tmp.into_parts();
    {
        let mut enc =
            flate2::write::GzEncoder::new(BufWriter::new(&file), flate2::Compression::default());
        let mut input = BufReader::new(std::fs::File::open(src)?);
        std::io::copy(&mut input, &mut enc)?;
        enc.finish()?;
    }
    let bytes_path = path.to_path_buf();
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    let mut f = BufReader::new(std::fs::File::open(&bytes_path)?);
    let size = std::io::copy(&mut f, &mut HashWriter(&mut h))?;
    let digest = format!("sha256:{}", hex::encode(sha2::Digest::finalize(h)));
    Ok(Upload {
        path: bytes_path,
        digest,
        size,
        media_type: mt::OCI_LAYER_GZIP.into(),
        _tmp: Some(path),
    })
}

struct HashWriter<'a>(&'a mut sha2::Sha256);
impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(self.0, b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub async fn push(
    store: &Store,
    client: &Client,
    r: &Reference,
    obs: Arc<dyn PushObserver>,
) -> Result<PushOutcome> {
    let idx = store.images().map_err(|e| anyhow!("{e}"))?;
    let key = reference_key(r);
    let id = idx.tags.get(&key).ok_or_else(|| {
        anyhow!(
            "An image does not exist locally with the tag: {}",
            r.familiar_name()
        )
    })?;
    let rec = idx
        .get(&store_digest(id)?)
        .cloned()
        .ok_or_else(|| anyhow!("No such image: {}", r.familiar()))?;
    // Other repositories on the same registry that hold this image: mount sources.
    let mount_from: Vec<String> = rec
        .repo_digests
        .iter()
        .filter_map(|d| d.rsplit_once('@').map(|(n, _)| n.to_string()))
        .filter_map(|n| format!("{n}:x").parse::<Reference>().ok())
        .filter(|o| o.registry == r.registry && o.repository != r.repository)
        .map(|o| o.repository)
        .collect();

    let mut uploads = Vec::new();
    let mut rewritten = false;
    for l in &rec.layers {
        let path = store.blobs.path(&l.digest);
        if !store.blobs.has(&l.digest) {
            anyhow::bail!(
                "layer blob {} of {} is not in the store; pull or load the image again",
                l.digest,
                r.familiar()
            );
        }
        if mt::layer_compression(&l.media_type) == Some(Compression::None) {
            uploads.push(gzip_to_temp(store, &path)?);
            rewritten = true;
        } else {
            uploads.push(Upload {
                path,
                digest: l.digest.to_string(),
                size: l.size,
                media_type: l.media_type.clone(),
                _tmp: None,
            });
        }
    }
    for u in &uploads {
        obs.event(PushEvent::Preparing {
            id: short(&u.digest),
        });
    }
    let mut tasks = Vec::new();
    for u in &uploads {
        let client = client.clone();
        let r = r.clone();
        let obs = obs.clone();
        let mount_from = mount_from.clone();
        let (path, digest, size) = (u.path.clone(), u.digest.clone(), u.size);
        tasks.push(tokio::spawn(async move {
            push_blob(&client, &r, &path, &digest, size, &mount_from, obs.as_ref()).await
        }));
    }
    for t in tasks {
        t.await.map_err(|e| anyhow!("{e}"))??;
    }
    // The config last among blobs, as docker does; it is not shown.
    let cfg_path = store.blobs.path(&rec.id);
    let cfg_digest = rec.id.to_string();
    push_blob(
        client,
        r,
        &cfg_path,
        &cfg_digest,
        rec.config_size,
        &mount_from,
        &SilentPush,
    )
    .await?;

    let (bytes, media_type) = if !rewritten && store.blobs.has(&rec.manifest_digest) {
        (
            store
                .blobs
                .read(&rec.manifest_digest)
                .map_err(|e| anyhow!("{e}"))?,
            rec.manifest_media_type.clone(),
        )
    } else {
        let m: Value = json!({
            "schemaVersion": 2,
            "mediaType": mt::OCI_MANIFEST,
            "config": {"mediaType": mt::OCI_CONFIG, "digest": cfg_digest, "size": rec.config_size},
            "layers": uploads.iter().map(|u| json!({
                "mediaType": u.media_type, "digest": u.digest, "size": u.size,
            })).collect::<Vec<_>>(),
        });
        (serde_json::to_vec(&m)?, mt::OCI_MANIFEST.to_string())
    };
    let size = bytes.len();
    let digest = client
        .put_manifest(r, &media_type, Bytes::from(bytes.clone()))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    // Record what the registry now has: a repo digest for this repository.
    store
        .blobs
        .write_bytes(&bytes)
        .map_err(|e| anyhow!("{e}"))?;
    let repo_digest = format!("{}@{}", r.name(), digest);
    let id = rec.id.clone();
    ImageIndex::update(&store.paths, |idx| {
        if let Some(rec) = idx.images.get_mut(&id.to_string()) {
            rec.repo_digests
                .retain(|d| !d.starts_with(&format!("{}@", r.name())));
            rec.repo_digests.push(repo_digest.clone());
        }
        Ok(())
    })
    .map_err(|e| anyhow!("{e}"))?;
    Ok(PushOutcome {
        digest: digest.to_string(),
        size,
    })
}

async fn push_blob(
    client: &Client,
    r: &Reference,
    path: &std::path::Path,
    digest: &str,
    size: u64,
    mount_from: &[String],
    obs: &dyn PushObserver,
) -> Result<()> {
    let id = short(digest);
    let d = store_digest(digest)?;
    if client
        .blob_exists(r, &d)
        .await
        .map_err(|e| anyhow!("{e}"))?
        .is_some()
    {
        obs.event(PushEvent::LayerExists { id });
        return Ok(());
    }
    for from in mount_from {
        if client
            .mount_blob(r, &d, from)
            .await
            .map_err(|e| anyhow!("{e}"))?
        {
            obs.event(PushEvent::Mounted {
                id,
                from: from.clone(),
            });
            return Ok(());
        }
    }
    obs.event(PushEvent::Pushing {
        id: id.clone(),
        total: size,
    });
    client
        .push_blob(r, &d, size, path)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    obs.event(PushEvent::Pushed { id });
    Ok(())
}
