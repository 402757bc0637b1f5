//! `pull`: reference → manifest (platform chosen from an index) → config →
//! every layer streamed from the registry straight into the layer store, all
//! layers at once (decompression runs on blocking threads, one per layer, so
//! both cores inflate) → one `images.json` update with the record and tag.

use std::io::Read;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use registry_client::client::Client;
use registry_client::manifest::Manifest;
use registry_client::{Platform, Reference};
use tokio::sync::{mpsc, Semaphore};

use crate::engine::events::{PullEvent, PullObserver};
use crate::engine::fsutil::FileLock;
use crate::engine::images_cmd::{reference_key, store_digest};
use crate::engine::store::{
    chain_id, Digest, ImageIndex, ImageRecord, LayerClaim, LayerRef, LayerSource, Store, StoreError,
};

/// Docker's `max-concurrent-downloads` default.
const MAX_CONCURRENT_LAYERS: usize = 3;
/// Chunks buffered between the network task and the unpacking thread.
const CHANNEL_DEPTH: usize = 16;

#[derive(Debug, Clone)]
pub struct PullOutcome {
    pub id: Digest,
    /// Digest of what the tag points at (index or manifest): docker's "Digest:".
    pub digest: String,
    pub up_to_date: bool,
}

pub fn short(d: &str) -> String {
    d.strip_prefix("sha256:")
        .unwrap_or(d)
        .chars()
        .take(12)
        .collect()
}

/// Pulls one reference. `platform` picks from an index; it defaults to the host.
pub async fn pull(
    store: &Store,
    client: &Client,
    r: &Reference,
    platform: Option<&Platform>,
    obs: Arc<dyn PullObserver>,
) -> Result<PullOutcome> {
    let fetched = client.fetch_manifest(r).await.map_err(|e| anyhow!("{e}"))?;
    let top_digest = fetched.digest.to_string();
    let repo_digest = format!("{}@{}", r.name(), top_digest);
    let key = reference_key(r);
    let host = Platform::host();
    let want = platform.cloned().unwrap_or(host);

    // Re-pull of what we have: one manifest request, nothing else.
    if let Some(outcome) = up_to_date(store, r, &key, &repo_digest, &top_digest, platform)? {
        return Ok(outcome);
    }

    let parsed =
        Manifest::parse(&fetched.bytes, &fetched.media_type).map_err(|e| anyhow!("{e}"))?;
    let (manifest_bytes, manifest_media_type, manifest_digest) = match &parsed {
        Manifest::Index(index) => {
            let desc = want.select(index).ok_or_else(|| {
                anyhow!("no matching manifest for {want} in the manifest list entries")
            })?;
            let d = store_digest(desc.digest())?;
            let m = client
                .fetch_manifest(&r.with_digest(d))
                .await
                .map_err(|e| anyhow!("{e}"))?;
            // Keep the index too, so `save`/`push` can reproduce the original.
            store
                .blobs
                .write_bytes(&fetched.bytes)
                .map_err(|e| anyhow!("{e}"))?;
            (m.bytes, m.media_type, m.digest.to_string())
        }
        Manifest::Image(_) => (
            fetched.bytes.clone(),
            fetched.media_type.clone(),
            top_digest.clone(),
        ),
    };
    let manifest =
        match Manifest::parse(&manifest_bytes, &manifest_media_type).map_err(|e| anyhow!("{e}"))? {
            Manifest::Image(m) => m,
            Manifest::Index(_) => bail!("{r}: the manifest list points at another manifest list"),
        };

    // Config: small, fetched whole and kept as a blob (its digest is the image ID).
    let cfg_desc = manifest.config();
    let cfg_digest = store_digest(cfg_desc.digest())?;
    let mut cfg_stream = client
        .fetch_blob(r, &cfg_digest, Some(cfg_desc.size()))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut cfg_bytes = Vec::with_capacity(cfg_desc.size() as usize);
    while let Some(chunk) = cfg_stream.next().await {
        cfg_bytes.extend_from_slice(&chunk.map_err(|e| anyhow!("{e}"))?);
    }
    let config: serde_json::Value = serde_json::from_slice(&cfg_bytes)
        .with_context(|| format!("image config {cfg_digest} of {r} is not valid JSON"))?;
    let diff_ids: Vec<Digest> = config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .ok_or_else(|| anyhow!("image config {cfg_digest} has no rootfs.diff_ids"))?
        .iter()
        .map(|v| store_digest(v.as_str().unwrap_or("")))
        .collect::<Result<_>>()?;
    let layers = manifest.layers();
    if diff_ids.len() != layers.len() {
        bail!(
            "image {r}: manifest lists {} layers but the config has {} diff_ids; the image is malformed",
            layers.len(),
            diff_ids.len()
        );
    }
    let id = store
        .blobs
        .write_bytes(&cfg_bytes)
        .map_err(|e| anyhow!("{e}"))?;
    store
        .blobs
        .write_bytes(&manifest_bytes)
        .map_err(|e| anyhow!("{e}"))?;

    // Chain IDs depend only on diff_ids, so every layer can start now.
    let mut refs = Vec::with_capacity(layers.len());
    let mut parent: Option<Digest> = None;
    for (desc, diff_id) in layers.iter().zip(&diff_ids) {
        let chain = chain_id(parent.as_ref(), diff_id);
        refs.push(LayerRef {
            digest: store_digest(desc.digest())?,
            diff_id: diff_id.clone(),
            chain_id: chain.clone(),
            size: desc.size(),
            media_type: desc.media_type().to_string(),
        });
        parent = Some(chain);
    }
    // Present layers say so at once, as docker does; the rest queue up.
    let mut todo = Vec::new();
    for (i, l) in refs.iter().enumerate() {
        let id = short(l.digest.as_ref());
        if store.layers.has(&l.chain_id) {
            obs.event(PullEvent::AlreadyExists { id });
        } else {
            obs.event(PullEvent::Waiting { id });
            todo.push(i);
        }
    }
    let sem = Arc::new(Semaphore::new(MAX_CONCURRENT_LAYERS));
    let mut tasks = Vec::new();
    for i in todo {
        let l = &refs[i];
        let parent = if i == 0 {
            None
        } else {
            Some(refs[i - 1].chain_id.clone())
        };
        tasks.push(tokio::spawn(pull_layer(
            store.clone(),
            client.clone(),
            r.clone(),
            l.clone(),
            parent,
            obs.clone(),
            sem.clone(),
        )));
    }
    // Layer locks stay held until the image record names the layers, so a
    // concurrent `image prune` cannot collect a layer this pull just unpacked.
    let mut held = Vec::new();
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(Ok(lock)) => held.extend(lock),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(anyhow!("layer task failed: {e}"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }

    let created = config
        .get("created")
        .and_then(|c| c.as_str())
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|d| d.with_timezone(&chrono::Utc));
    let record = ImageRecord {
        id: id.clone(),
        manifest_digest: store_digest(&manifest_digest)?,
        manifest_media_type: manifest_media_type.clone(),
        repo_digests: vec![repo_digest],
        layers: refs,
        config_size: cfg_bytes.len() as u64,
        created,
        pulled_at: chrono::Utc::now(),
    };
    let layers = store.layers.clone();
    ImageIndex::update(&store.paths, |idx| {
        // Layers found present at the start are not locked: under the images
        // lock (which GC holds throughout) make sure none was collected since.
        if let Some(gone) = record.layers.iter().find(|l| !layers.has(&l.chain_id)) {
            return Err(StoreError::LayerNotFound {
                chain_id: format!("{} of {key}", gone.chain_id),
            });
        }
        idx.put_image(record);
        idx.tag(&key, &id)?;
        Ok(())
    })
    .map_err(|e| anyhow!("{e}"))?;
    drop(held);
    Ok(PullOutcome {
        id,
        digest: top_digest,
        up_to_date: false,
    })
}

fn up_to_date(
    store: &Store,
    r: &Reference,
    key: &str,
    repo_digest: &str,
    top_digest: &str,
    platform: Option<&Platform>,
) -> Result<Option<PullOutcome>> {
    let idx = store.images().map_err(|e| anyhow!("{e}"))?;
    let Some(rec) = idx
        .images
        .values()
        .find(|rec| rec.repo_digests.iter().any(|d| d == repo_digest))
    else {
        return Ok(None);
    };
    if !rec.layers.iter().all(|l| store.layers.has(&l.chain_id)) {
        return Ok(None);
    }
    if let Some(p) = platform {
        // The same index may hold the platform asked for under another manifest.
        let cfg: serde_json::Value = store
            .blobs
            .read(&rec.id)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let have = Platform::new(
            cfg["os"].as_str().unwrap_or(""),
            cfg["architecture"].as_str().unwrap_or(""),
            cfg["variant"].as_str(),
        );
        if have.normalized() != p.normalized() {
            return Ok(None);
        }
    }
    let id = rec.id.clone();
    if idx.tags.get(key) != Some(&id.to_string()) && r.digest.is_none() {
        ImageIndex::update(&store.paths, |idx| {
            idx.tag(key, &id)?;
            Ok(())
        })
        .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(Some(PullOutcome {
        id,
        digest: top_digest.to_string(),
        up_to_date: true,
    }))
}

/// Feeds a blocking reader from the async download.
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

async fn pull_layer(
    store: Store,
    client: Client,
    r: Reference,
    l: LayerRef,
    parent: Option<Digest>,
    obs: Arc<dyn PullObserver>,
    sem: Arc<Semaphore>,
) -> Result<Option<FileLock>> {
    let sid = short(l.digest.as_ref());
    let _permit = match sem.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            obs.event(PullEvent::Queued { id: sid.clone() });
            sem.acquire_owned().await.map_err(|e| anyhow!("{e}"))?
        }
    };
    // The layer lock makes two concurrent pulls unpack a layer once: the
    // second waits here, then finds it present.
    let claim = {
        let store = store.clone();
        let chain = l.chain_id.clone();
        tokio::task::spawn_blocking(move || store.layers.claim(&chain))
            .await
            .map_err(|e| anyhow!("{e}"))?
            .map_err(|e| anyhow!("{e}"))?
    };
    let lock = match claim {
        LayerClaim::Present(shared) => {
            obs.event(PullEvent::AlreadyExists { id: sid });
            return Ok(Some(shared));
        }
        LayerClaim::Missing(exclusive) => exclusive,
    };
    let blob_digest = l.digest.clone();
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(CHANNEL_DEPTH);
    let unpack = {
        let store = store.clone();
        let l = l.clone();
        tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx,
                cur: Bytes::new(),
            };
            let src = LayerSource {
                digest: l.digest.clone(),
                size: Some(l.size),
                media_type: l.media_type.clone(),
            };
            store
                .layers
                .ingest(
                    reader,
                    &src,
                    &l.diff_id,
                    &l.chain_id,
                    parent.as_ref(),
                    &store.blobs,
                    &mut |_| {},
                )
                .map(|_| lock)
        })
    };
    let download = async {
        let mut stream = client
            .fetch_blob(&r, &blob_digest, Some(l.size))
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let mut got = 0u64;
        let mut last_report = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) => {
                    got += b.len() as u64;
                    // Report about every 512 KiB: enough for a smooth bar.
                    if got - last_report >= 512 * 1024 || got == l.size {
                        last_report = got;
                        obs.event(PullEvent::Downloading {
                            id: sid.clone(),
                            current: got,
                            total: Some(l.size),
                        });
                    }
                    if tx.send(Ok(b)).await.is_err() {
                        // The unpacker stopped; its error explains why.
                        return Ok(());
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    let _ = tx.send(Err(std::io::Error::other(msg.clone()))).await;
                    return Err(anyhow!("{msg}"));
                }
            }
        }
        obs.event(PullEvent::VerifyingChecksum { id: sid.clone() });
        obs.event(PullEvent::DownloadComplete { id: sid.clone() });
        obs.event(PullEvent::Extracting { id: sid.clone() });
        Ok::<(), anyhow::Error>(())
    };
    let dl = download.await;
    drop(tx);
    let res = unpack.await.map_err(|e| anyhow!("{e}"))?;
    match (dl, res) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(anyhow!("{e}")),
        (Ok(()), Ok(lock)) => {
            // Other pulls of this layer may go on; GC still may not.
            lock.downgrade()
                .map_err(|e| anyhow!("cannot downgrade the lock of layer {}: {e}", l.chain_id))?;
            obs.event(PullEvent::PullComplete { id: sid });
            Ok(Some(lock))
        }
    }
}
