//! `save` and `load`: image archives that docker, podman and skopeo read.
//!
//! `save` writes docker 25's combined layout: every blob under
//! `blobs/sha256/`, an OCI `index.json` + `oci-layout` (the stored manifests,
//! byte for byte, so digests survive), and docker's `manifest.json` +
//! `repositories` pointing at the same blobs.
//!
//! `load` accepts that, plain docker archives (`<id>/layer.tar`, symlinked
//! duplicate layers) and OCI layouts, optionally gzip- or zstd-compressed.
//! Every layer goes through the store's verified, safe `ingest`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use registry_client::manifest::{self as mt, Compression};
use registry_client::Reference;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::engine::images_cmd::{familiar_key, lookup, reference_key, store_digest};
use crate::engine::store::{
    chain_id, Digest, ImageIndex, ImageRecord, LayerRef, LayerSource, Store,
};

/// Caps on archive metadata files, read whole into memory.
const MAX_JSON: u64 = 16 << 20;

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

struct SaveItem {
    rec: ImageRecord,
    /// Full `name:tag` keys to record for this image.
    tags: Vec<String>,
}

/// Writes the archive of `names` to `out`.
pub fn save(store: &Store, names: &[String], out: impl Write) -> Result<()> {
    let idx = store.images().map_err(|e| anyhow!("{e}"))?;
    let mut items: Vec<SaveItem> = Vec::new();
    for n in names {
        let id = lookup(&idx, n).map_err(|e| anyhow!("{e}"))?;
        let rec = idx
            .get(&id)
            .cloned()
            .ok_or_else(|| anyhow!("No such image: {n}"))?;
        // A name saves that tag; an ID saves the image untagged, as docker does.
        let tag = n
            .parse::<Reference>()
            .ok()
            .map(|r| reference_key(&r))
            .filter(|k| idx.tags.get(k).map(|v| v.as_str()) == Some(id.to_string().as_str()));
        match items.iter_mut().find(|i| i.rec.id == id) {
            Some(item) => item.tags.extend(tag),
            None => items.push(SaveItem {
                rec,
                tags: tag.into_iter().collect(),
            }),
        }
    }
    let mut tar = tar::Builder::new(out);
    let mut written = std::collections::HashSet::new();
    let mut docker_manifest = Vec::new();
    let mut oci_manifests = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    add_dir(&mut tar, "blobs/")?;
    add_dir(&mut tar, "blobs/sha256/")?;
    for item in &items {
        let rec = &item.rec;
        let mut blobs = vec![rec.id.clone()];
        for l in &rec.layers {
            if !store.blobs.has(&l.digest) {
                bail!(
                    "image {}: layer blob {} is not in the store; pull the image again to save it",
                    rec.id,
                    l.digest
                );
            }
            blobs.push(l.digest.clone());
        }
        let manifest_present = store.blobs.has(&rec.manifest_digest);
        if manifest_present {
            blobs.push(rec.manifest_digest.clone());
        }
        for d in blobs {
            if written.insert(d.to_string()) {
                add_file(&mut tar, &blob_path(&d), &store.blobs.path(&d))?;
            }
        }
        let repo_tags: Vec<String> = item.tags.iter().map(|t| familiar_key(t)).collect();
        docker_manifest.push(json!({
            "Config": blob_path(&rec.id),
            "RepoTags": if repo_tags.is_empty() { Value::Null } else { json!(repo_tags) },
            "Layers": rec.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
        }));
        if manifest_present {
            let size = std::fs::metadata(store.blobs.path(&rec.manifest_digest))
                .map(|m| m.len())
                .unwrap_or(0);
            let desc = |annotations: Option<Value>| {
                let mut d = json!({
                    "mediaType": rec.manifest_media_type,
                    "digest": rec.manifest_digest.to_string(),
                    "size": size,
                });
                if let Some(a) = annotations {
                    d["annotations"] = a;
                }
                d
            };
            if item.tags.is_empty() {
                oci_manifests.push(desc(None));
            }
            for t in &item.tags {
                let r: Reference = t.parse().map_err(|e| anyhow!("{e}"))?;
                oci_manifests.push(desc(Some(json!({
                    "io.containerd.image.name": t,
                    "org.opencontainers.image.ref.name": r.tag_or_latest(),
                }))));
            }
        }
        for t in &item.tags {
            let r: Reference = t.parse().map_err(|e| anyhow!("{e}"))?;
            if let Some(top) = rec.layers.last() {
                repositories
                    .entry(r.familiar_name())
                    .or_default()
                    .insert(r.tag_or_latest().to_string(), top.digest.hex().to_string());
            }
        }
    }
    add_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_INDEX,
        "manifests": oci_manifests,
    });
    add_bytes(&mut tar, "index.json", &serde_json::to_vec(&index)?)?;
    add_bytes(
        &mut tar,
        "manifest.json",
        &serde_json::to_vec(&docker_manifest)?,
    )?;
    if !repositories.is_empty() {
        add_bytes(
            &mut tar,
            "repositories",
            &serde_json::to_vec(&repositories)?,
        )?;
    }
    let mut out = tar.into_inner().context("finishing the archive")?;
    out.flush().context("writing the archive")?;
    Ok(())
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn add_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> Result<()> {
    let mut h = header(tar::EntryType::Directory, 0, 0o755);
    tar.append_data(&mut h, name, std::io::empty())
        .with_context(|| format!("writing {name} to the archive"))
}

fn add_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut h = header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
    tar.append_data(&mut h, name, bytes)
        .with_context(|| format!("writing {name} to the archive"))
}

fn add_file<W: Write>(tar: &mut tar::Builder<W>, name: &str, path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = f.metadata()?.len();
    let mut h = header(tar::EntryType::Regular, size, 0o644);
    tar.append_data(&mut h, name, f)
        .with_context(|| format!("writing {name} to the archive"))
}

/// One image `load` added.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Digest,
    /// Familiar names tagged (empty: untagged, docker prints the ID).
    pub tags: Vec<String>,
    /// Names that pointed at another image before: (name, old image ID).
    pub renamed: Vec<(String, String)>,
}

/// Archive members spooled to a private temp dir, by normalised path.
struct Spool {
    dir: tempfile::TempDir,
    files: HashMap<String, PathBuf>,
    links: HashMap<String, String>,
}

fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

impl Spool {
    /// Reads the outer tar. Member names never become paths: files are
    /// stored under counters, so a hostile name cannot escape the spool.
    fn read(input: impl Read, tmp: &Path) -> Result<Spool> {
        let dir = tempfile::Builder::new()
            .prefix("load-")
            .tempdir_in(tmp)
            .context("creating a temp dir for the archive")?;
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        let mut ar = tar::Archive::new(input);
        let entries = ar.entries().context("reading the archive")?;
        for (n, entry) in entries.enumerate() {
            let mut entry = entry.context("reading the archive: invalid tar")?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(name) = normalize(&raw) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let p = dir.path().join(format!("m{n}"));
                    let mut f =
                        File::create(&p).with_context(|| format!("writing {}", p.display()))?;
                    std::io::copy(&mut entry, &mut f)
                        .with_context(|| format!("reading {raw} from the archive"))?;
                    files.insert(name, p);
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let Some(target) = entry.link_name_bytes() else {
                        continue;
                    };
                    let target = String::from_utf8_lossy(&target).into_owned();
                    let joined = if entry.header().entry_type() == tar::EntryType::Symlink {
                        match name.rsplit_once('/') {
                            Some((parent, _)) => format!("{parent}/{target}"),
                            None => target,
                        }
                    } else {
                        target
                    };
                    if let Some(t) = normalize(&joined) {
                        links.insert(name, t);
                    }
                }
                _ => {}
            }
        }
        Ok(Spool { dir, files, links })
    }

    fn path(&self, name: &str) -> Option<&PathBuf> {
        let mut name = normalize(name)?;
        for _ in 0..16 {
            if let Some(p) = self.files.get(&name) {
                return Some(p);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }

    fn json(&self, name: &str) -> Result<Value> {
        let p = self
            .path(name)
            .ok_or_else(|| anyhow!("the archive has no {name}"))?;
        let f = File::open(p)?;
        let mut buf = Vec::new();
        f.take(MAX_JSON).read_to_end(&mut buf)?;
        serde_json::from_slice(&buf)
            .with_context(|| format!("{name} in the archive is not valid JSON"))
    }

    fn bytes(&self, name: &str) -> Result<Vec<u8>> {
        let p = self
            .path(name)
            .ok_or_else(|| anyhow!("the archive has no {name}"))?;
        let mut buf = Vec::new();
        File::open(p)?.take(MAX_JSON).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn blob_name(d: &str) -> String {
        format!("blobs/{}", d.replacen(':', "/", 1))
    }
}

/// Wraps `input` in the decompressor its magic bytes call for.
fn decompress(mut input: impl Read + 'static) -> Result<Box<dyn Read>> {
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        let k = input.read(&mut magic[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let chained = head.chain(input);
    if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        return Ok(Box::new(flate2::read::MultiGzDecoder::new(chained)));
    }
    if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        return Ok(Box::new(zstd::stream::read::Decoder::new(chained)?));
    }
    Ok(Box::new(chained))
}

fn sniff_compression(f: &mut File) -> Result<Compression> {
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic)?;
    f.seek(SeekFrom::Start(0))?;
    Ok(if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Compression::Gzip
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Compression::Zstd
    } else {
        Compression::None
    })
}

fn oci_layer_type(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => mt::OCI_LAYER_GZIP,
        Compression::Zstd => mt::OCI_LAYER_ZSTD,
        Compression::None => mt::OCI_LAYER_TAR,
    }
}

fn hash_file(p: &Path) -> Result<(Digest, u64)> {
    let mut f = BufReader::new(File::open(p)?);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((
        store_digest(format!("sha256:{}", hex::encode(h.finalize())))?,
        size,
    ))
}

/// Progress callback: (short layer id, bytes done, total).
pub type LoadProgress<'a> = &'a mut dyn FnMut(&str, u64, u64);

/// Loads every image of the archive read from `input`.
pub fn load(
    store: &Store,
    input: impl Read + 'static,
    progress: LoadProgress,
) -> Result<Vec<Loaded>> {
    let input = decompress(input)?;
    let spool = Spool::read(input, &store.paths.tmp_dir())?;
    let oci_index = if spool.path("index.json").is_some() {
        Some(spool.json("index.json")?)
    } else {
        None
    };
    let mut out = Vec::new();
    if spool.path("manifest.json").is_some() {
        let entries = spool.json("manifest.json")?;
        let entries = entries
            .as_array()
            .ok_or_else(|| anyhow!("manifest.json in the archive is not a list"))?;
        for e in entries {
            let config_path = e["Config"]
                .as_str()
                .ok_or_else(|| anyhow!("manifest.json entry without Config"))?;
            let layers: Vec<String> = e["Layers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let tags: Vec<String> = e["RepoTags"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let cfg = spool.bytes(config_path)?;
            let mut descs = Vec::new();
            for l in &layers {
                let p = spool
                    .path(l)
                    .ok_or_else(|| anyhow!("the archive lacks layer {l} named in manifest.json"))?;
                let mut f = File::open(p)?;
                let c = sniff_compression(&mut f)?;
                let (digest, size) = hash_file(p)?;
                descs.push((p.clone(), digest, size, oci_layer_type(c).to_string()));
            }
            // Reuse the original manifest when the OCI index carries it.
            let cfg_digest = store_digest(format!("sha256:{}", hex::encode(Sha256::digest(&cfg))))?;
            let original = oci_index
                .as_ref()
                .and_then(|idx| find_oci_manifest(&spool, idx, &cfg_digest, &descs));
            out.push(import(store, &cfg, descs, original, &tags, progress)?);
        }
        return Ok(out);
    }
    let Some(index) = oci_index else {
        bail!("the archive has neither manifest.json nor index.json; it is not an image archive");
    };
    for m in index["manifests"].as_array().cloned().unwrap_or_default() {
        let mut desc = m.clone();
        let mut media = desc["mediaType"].as_str().unwrap_or("").to_string();
        let mut bytes = spool.bytes(&Spool::blob_name(desc["digest"].as_str().unwrap_or("")))?;
        if media == mt::OCI_INDEX || media == mt::DOCKER_MANIFEST_LIST {
            let inner: oci_spec::image::ImageIndex =
                serde_json::from_slice(&bytes).context("nested index in the archive is invalid")?;
            let Some(d) = registry_client::Platform::host().select(&inner) else {
                continue;
            };
            desc = serde_json::to_value(d)?;
            media = desc["mediaType"].as_str().unwrap_or("").to_string();
            bytes = spool.bytes(&Spool::blob_name(desc["digest"].as_str().unwrap_or("")))?;
        }
        let manifest: Value =
            serde_json::from_slice(&bytes).context("manifest in the archive is invalid")?;
        let cfg = spool.bytes(&Spool::blob_name(
            manifest["config"]["digest"].as_str().unwrap_or(""),
        ))?;
        let mut descs = Vec::new();
        for l in manifest["layers"].as_array().cloned().unwrap_or_default() {
            let d = l["digest"].as_str().unwrap_or("");
            let p = spool
                .path(&Spool::blob_name(d))
                .ok_or_else(|| anyhow!("the archive lacks layer blob {d}"))?;
            descs.push((
                p.clone(),
                store_digest(d)?,
                l["size"].as_u64().unwrap_or(0),
                l["mediaType"]
                    .as_str()
                    .unwrap_or(mt::OCI_LAYER_GZIP)
                    .to_string(),
            ));
        }
        let annotations = &m["annotations"];
        let name = annotations["io.containerd.image.name"]
            .as_str()
            .map(String::from)
            .or_else(|| {
                annotations["org.opencontainers.image.ref.name"]
                    .as_str()
                    .filter(|n| n.contains(':') || n.contains('/'))
                    .map(String::from)
            });
        let media = if media.is_empty() {
            mt::OCI_MANIFEST.to_string()
        } else {
            media
        };
        out.push(import(
            store,
            &cfg,
            descs,
            Some((bytes, media)),
            &name.into_iter().collect::<Vec<_>>(),
            progress,
        )?);
    }
    Ok(out)
}

/// The OCI manifest in `index` for config `cfg` whose layers are exactly `descs`.
fn find_oci_manifest(
    spool: &Spool,
    index: &Value,
    cfg: &Digest,
    descs: &[(PathBuf, Digest, u64, String)],
) -> Option<(Vec<u8>, String)> {
    for m in index["manifests"].as_array()? {
        let media = m["mediaType"]
            .as_str()
            .unwrap_or(mt::OCI_MANIFEST)
            .to_string();
        let bytes = spool.bytes(&Spool::blob_name(m["digest"].as_str()?)).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        if v["config"]["digest"].as_str() != Some(cfg.to_string().as_str()) {
            continue;
        }
        let layers = v["layers"].as_array()?;
        if layers.len() == descs.len()
            && layers
                .iter()
                .zip(descs)
                .all(|(l, d)| l["digest"].as_str() == Some(d.1.to_string().as_str()))
        {
            return Some((bytes, media));
        }
    }
    None
}

fn import(
    store: &Store,
    cfg_bytes: &[u8],
    descs: Vec<(PathBuf, Digest, u64, String)>,
    original: Option<(Vec<u8>, String)>,
    tags: &[String],
    progress: LoadProgress,
) -> Result<Loaded> {
    let config: Value = serde_json::from_slice(cfg_bytes)
        .context("image config in the archive is not valid JSON")?;
    let diff_ids: Vec<Digest> = config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .ok_or_else(|| anyhow!("image config in the archive has no rootfs.diff_ids"))?
        .iter()
        .map(|v| store_digest(v.as_str().unwrap_or("")))
        .collect::<Result<_>>()?;
    if diff_ids.len() != descs.len() {
        bail!(
            "the archive lists {} layers but the image config has {} diff_ids; the archive is malformed",
            descs.len(),
            diff_ids.len()
        );
    }
    let id = store
        .blobs
        .write_bytes(cfg_bytes)
        .map_err(|e| anyhow!("{e}"))?;
    let mut refs = Vec::new();
    let mut parent: Option<Digest> = None;
    for ((path, digest, size, media), diff_id) in descs.into_iter().zip(&diff_ids) {
        let chain = chain_id(parent.as_ref(), diff_id);
        let _lock = store.layers.lock(&chain).map_err(|e| anyhow!("{e}"))?;
        if !store.layers.has(&chain) {
            let src = LayerSource {
                digest: digest.clone(),
                size: Some(size),
                media_type: media.clone(),
            };
            let short: String = digest.hex().chars().take(12).collect();
            let f = BufReader::new(File::open(&path)?);
            store
                .layers
                .ingest(
                    f,
                    &src,
                    diff_id,
                    &chain,
                    parent.as_ref(),
                    &store.blobs,
                    &mut |n| progress(&short, n, size),
                )
                .map_err(|e| anyhow!("{e}"))?;
        } else if !store.blobs.has(&digest) {
            // Keep the blob for later `save`/`push` even when the layer exists.
            let mut w = store
                .blobs
                .writer(Some(&digest))
                .map_err(|e| anyhow!("{e}"))?;
            std::io::copy(&mut File::open(&path)?, &mut w)?;
            w.commit().map_err(|e| anyhow!("{e}"))?;
        }
        refs.push(LayerRef {
            digest,
            diff_id: diff_id.clone(),
            chain_id: chain.clone(),
            size,
            media_type: media,
        });
        parent = Some(chain);
    }
    let (manifest_bytes, manifest_media_type) = match original {
        Some(o) => o,
        None => {
            let m = json!({
                "schemaVersion": 2,
                "mediaType": mt::OCI_MANIFEST,
                "config": {"mediaType": mt::OCI_CONFIG, "digest": id.to_string(), "size": cfg_bytes.len()},
                "layers": refs.iter().map(|l| json!({
                    "mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size,
                })).collect::<Vec<_>>(),
            });
            (serde_json::to_vec(&m)?, mt::OCI_MANIFEST.to_string())
        }
    };
    let manifest_digest = store
        .blobs
        .write_bytes(&manifest_bytes)
        .map_err(|e| anyhow!("{e}"))?;
    let created = config
        .get("created")
        .and_then(|c| c.as_str())
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|d| d.with_timezone(&chrono::Utc));
    let mut keys = Vec::new();
    for t in tags {
        let r: Reference = t
            .parse()
            .map_err(|e| anyhow!("invalid tag {t:?} in the archive: {e}"))?;
        keys.push(reference_key(&r));
    }
    let record = ImageRecord {
        id: id.clone(),
        manifest_digest,
        manifest_media_type,
        repo_digests: Vec::new(),
        layers: refs,
        config_size: cfg_bytes.len() as u64,
        created,
        pulled_at: chrono::Utc::now(),
    };
    let renamed = ImageIndex::update(&store.paths, |idx| {
        idx.put_image(record);
        let mut renamed = Vec::new();
        for k in &keys {
            if let Some(old) = idx.tag(k, &id)? {
                renamed.push((familiar_key(k), old.to_string()));
            }
        }
        Ok(renamed)
    })
    .map_err(|e| anyhow!("{e}"))?;
    Ok(Loaded {
        id,
        tags: keys.iter().map(|k| familiar_key(k)).collect(),
        renamed,
    })
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn member_names_normalise_inside_the_archive() {
        assert_eq!(normalize("./a/b/../c").as_deref(), Some("a/c"));
        assert_eq!(normalize("/abs/x").as_deref(), Some("abs/x"));
        assert_eq!(normalize("../x"), None);
        assert_eq!(normalize("."), None);
    }
}
