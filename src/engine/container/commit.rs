//! `commit`: the container's overlay upper directory becomes a new gzip
//! OCI layer (whiteouts and opaque directories as `.wh.` entries), stored
//! through the image store like a pulled one (blob, `LayerStore::ingest`,
//! config, manifest, `images.json`), on top of the container's image, with
//! the container's config, the `-c` changes and a history entry.

use std::io::{Seek, Write};
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use flate2::write::GzEncoder;
use registry_client::manifest as mt;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use super::access::Rootfs;
use super::store::ContainerStore;
use super::tarwalk::Walker;
use super::{liveness, Status};
use crate::engine::images_cmd::store_digest;
use crate::engine::store::{
    chain_id, Digest, ImageIndex, ImageRecord, LayerRef, LayerSource, Store,
};

pub struct CommitRequest {
    pub author: Option<String>,
    pub message: Option<String>,
    pub changes: Vec<String>,
    pub pause: bool,
    /// `REPOSITORY[:TAG]`.
    pub reference: Option<String>,
}

/// Hashes what passes through (the compressed blob digest / the diff ID).
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    n: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(b)?;
        self.hash.update(&b[..k]);
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn skip_engine(p: &Path) -> bool {
    super::changes::is_engine_path(&format!("/{}", p.display()))
}

/// The upper dir as a gzip layer in `file`: (blob digest, size, diff ID).
fn write_layer(upper: &Path, file: &std::fs::File) -> Result<(Digest, u64, Digest)> {
    let blob = Hashing {
        inner: std::io::BufWriter::new(file),
        hash: Sha256::new(),
        n: 0,
    };
    let gz = GzEncoder::new(blob, flate2::Compression::fast());
    let plain = Hashing {
        inner: gz,
        hash: Sha256::new(),
        n: 0,
    };
    let mut w = Walker::new(plain, None, true).with_skip(skip_engine);
    let dir = rustix::fs::open(
        upper,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("cannot open {}", upper.display()))?;
    w.add_children(dir.as_fd(), Path::new(""))?;
    let plain = w.finish()?;
    let diff_id = store_digest(format!("sha256:{}", hex(plain.hash)))?;
    let mut blob = plain
        .inner
        .finish()
        .context("cannot finish the gzip stream")?;
    blob.flush()?;
    let size = blob.n;
    let digest = store_digest(format!("sha256:{}", hex(blob.hash)))?;
    Ok((digest, size, diff_id))
}

/// Pauses a running container for the commit and resumes it on drop.
struct Paused<'a> {
    cs: &'a ContainerStore,
    id: String,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        let _ = super::ops::unpause(self.cs, &self.id);
    }
}

/// Runs the commit; returns the new image ID.
pub fn commit(cs: &ContainerStore, store: &Store, id: &str, req: &CommitRequest) -> Result<Digest> {
    let rec = cs.load(id)?;
    let image_id = store_digest(&rec.image)?;
    let idx = store.images().map_err(|e| anyhow!("{e}"))?;
    let parent = idx.get(&image_id).cloned().ok_or_else(|| {
        anyhow!(
            "the image {} of container {} is no longer in the store",
            rec.image,
            rec.name
        )
    })?;
    let parent_cfg: Value = serde_json::from_slice(
        &store
            .blobs
            .read(&parent.id)
            .map_err(|e| anyhow!("cannot read the config of {}: {e}", parent.id))?,
    )
    .context("the parent image config is not JSON")?;
    // Parse the changes before any work, so a bad -c changes nothing.
    let mut config: Map<String, Value> = parent_cfg
        .get("config")
        .and_then(|c| c.as_object())
        .cloned()
        .unwrap_or_default();
    let c = &rec.config;
    config.insert("Env".into(), json!(c.env));
    config.insert("Cmd".into(), json!(c.cmd));
    config.insert(
        "Entrypoint".into(),
        if c.entrypoint.is_empty() {
            Value::Null
        } else {
            json!(c.entrypoint)
        },
    );
    config.insert("WorkingDir".into(), json!(c.working_dir));
    config.insert("User".into(), json!(c.user));
    if !c.labels.is_empty() {
        config.insert("Labels".into(), json!(c.labels));
    }
    if let Some(s) = &c.stop_signal {
        config.insert("StopSignal".into(), json!(s));
    }
    for ch in &req.changes {
        super::commit_changes::apply(&mut config, ch)?;
    }

    let st = liveness::current(cs, id)?;
    let _paused = if req.pause && st.status == Status::Running {
        super::ops::pause(cs, id)?;
        Some(Paused {
            cs,
            id: id.to_string(),
        })
    } else {
        None
    };
    let rf = Rootfs::open(cs, id)?;
    let tmp_dir = store.paths.tmp_dir();
    std::fs::create_dir_all(&tmp_dir)
        .with_context(|| format!("cannot create {}", tmp_dir.display()))?;
    let mut tmp = tempfile::tempfile_in(&tmp_dir)
        .with_context(|| format!("cannot create a temp file in {}", tmp_dir.display()))?;
    let (digest, size, diff_id) = write_layer(&rf.upper(), &tmp)?;
    drop(_paused);
    drop(rf);

    let parent_chain = parent.layers.last().map(|l| l.chain_id.clone());
    let chain = chain_id(parent_chain.as_ref(), &diff_id);
    {
        let _lock = store.layers.lock(&chain).map_err(|e| anyhow!("{e}"))?;
        tmp.rewind()?;
        let src = LayerSource {
            digest: digest.clone(),
            size: Some(size),
            media_type: mt::OCI_LAYER_GZIP.to_string(),
        };
        if !store.layers.has(&chain) {
            store
                .layers
                .ingest(
                    std::io::BufReader::new(&tmp),
                    &src,
                    &diff_id,
                    &chain,
                    parent_chain.as_ref(),
                    &store.blobs,
                    &mut |_| {},
                )
                .map_err(|e| anyhow!("cannot store the new layer: {e}"))?;
        } else if !store.blobs.has(&digest) {
            let mut w = store
                .blobs
                .writer(Some(&digest))
                .map_err(|e| anyhow!("{e}"))?;
            std::io::copy(&mut tmp, &mut w)?;
            w.commit().map_err(|e| anyhow!("{e}"))?;
        }
    }

    let now = Utc::now();
    let created = now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut cfg = parent_cfg.clone();
    let obj = cfg
        .as_object_mut()
        .ok_or_else(|| anyhow!("the parent image config is not an object"))?;
    obj.insert("created".into(), json!(created));
    obj.insert("container".into(), json!(rec.id));
    if let Some(a) = &req.author {
        obj.insert("author".into(), json!(a));
    }
    if let Some(m) = &req.message {
        obj.insert("comment".into(), json!(m));
    }
    obj.insert("config".into(), Value::Object(config));
    let mut diff_ids: Vec<Value> = parent
        .layers
        .iter()
        .map(|l| json!(l.diff_id.to_string()))
        .collect();
    diff_ids.push(json!(diff_id.to_string()));
    obj.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );
    let mut history: Vec<Value> = obj
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    let mut h = Map::new();
    h.insert("created".into(), json!(created));
    if let Some(a) = &req.author {
        h.insert("author".into(), json!(a));
    }
    let mut by = vec![rec.path.clone()];
    by.extend(rec.args.iter().cloned());
    h.insert("created_by".into(), json!(by.join(" ")));
    if let Some(m) = &req.message {
        h.insert("comment".into(), json!(m));
    }
    history.push(Value::Object(h));
    obj.insert("history".into(), json!(history));
    let cfg_bytes = serde_json::to_vec(&cfg)?;
    let new_id = store
        .blobs
        .write_bytes(&cfg_bytes)
        .map_err(|e| anyhow!("{e}"))?;

    // An OCI manifest names every layer with OCI media types (the bytes of
    // docker's layer types are the same).
    let mut layers: Vec<LayerRef> = parent
        .layers
        .iter()
        .cloned()
        .map(|mut l| {
            l.media_type = oci_layer_type(&l.media_type).to_string();
            l
        })
        .collect();
    layers.push(LayerRef {
        digest: digest.clone(),
        diff_id,
        chain_id: chain,
        size,
        media_type: mt::OCI_LAYER_GZIP.to_string(),
    });
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": {"mediaType": mt::OCI_CONFIG, "digest": new_id.to_string(), "size": cfg_bytes.len()},
        "layers": layers.iter().map(|l| json!({
            "mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size,
        })).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let manifest_digest = store
        .blobs
        .write_bytes(&manifest_bytes)
        .map_err(|e| anyhow!("{e}"))?;
    let record = ImageRecord {
        id: new_id.clone(),
        manifest_digest,
        manifest_media_type: mt::OCI_MANIFEST.to_string(),
        repo_digests: Vec::new(),
        layers,
        config_size: cfg_bytes.len() as u64,
        created: Some(now),
        pulled_at: now,
    };
    ImageIndex::update(&store.paths, |idx| {
        idx.put_image(record);
        Ok(())
    })
    .map_err(|e| anyhow!("{e}"))?;
    if let Some(r) = &req.reference {
        crate::engine::images_cmd::tag(store, new_id.as_ref(), r)?;
    }
    Ok(new_id)
}

fn oci_layer_type(t: &str) -> &str {
    match t {
        mt::DOCKER_LAYER_GZIP => mt::OCI_LAYER_GZIP,
        mt::DOCKER_LAYER_ZSTD => mt::OCI_LAYER_ZSTD,
        mt::DOCKER_LAYER_TAR => mt::OCI_LAYER_TAR,
        other => other,
    }
}

/// Checks `REPOSITORY[:TAG]` before any work, as docker does.
pub fn check_reference(r: &str) -> Result<()> {
    let parsed: registry_client::Reference = r
        .parse()
        .map_err(|e| anyhow!("invalid reference format: {e}"))?;
    if parsed.digest.is_some() {
        bail!("invalid reference format: a commit cannot be tagged with a digest");
    }
    Ok(())
}
