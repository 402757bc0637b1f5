//! The image commands that only read or edit the local store: list, remove,
//! tag, inspect, history, prune and disk usage. Output shaping lives in
//! `cli::images`; this module answers with plain data.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};
use registry_client::Reference;
use serde_json::{json, Map, Value};

use crate::engine::store::{ContainerUsage, Digest, ImageIndex, ImageRecord, Store, StoreError};

/// Parses a digest in the store's type (it may differ from the client's).
pub fn store_digest(s: impl std::fmt::Display) -> Result<Digest> {
    let s = s.to_string();
    s.parse::<Digest>()
        .map_err(|_| anyhow!("invalid digest {s:?}"))
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The full `name:tag` or `name@digest` key that `images.json` uses.
pub fn reference_key(r: &Reference) -> String {
    match &r.digest {
        Some(d) => format!("{}@{}", r.name(), d),
        None => format!("{}:{}", r.name(), r.tag_or_latest()),
    }
}

/// Finds an image as docker does: full ID, then name (tag or digest), then
/// a unique ID prefix.
pub fn lookup(idx: &ImageIndex, input: &str) -> Result<Digest, StoreError> {
    let not_found = || StoreError::ImageNotFound {
        reference: input.to_string(),
    };
    if input.starts_with("sha256:") {
        return idx.resolve(input);
    }
    if let Ok(r) = input.parse::<Reference>() {
        if let Ok(id) = idx.resolve(&reference_key(&r)) {
            return Ok(id);
        }
    }
    if is_hex(input) && input.len() <= 64 {
        return idx.resolve(input).map_err(|e| match e {
            StoreError::ImageNotFound { .. } => not_found(),
            other => other,
        });
    }
    Err(not_found())
}

/// Docker's `No such image: busybox:latest` wording for a name argument.
pub fn familiar_or_raw(input: &str) -> String {
    match input.parse::<Reference>() {
        Ok(r) if !(input.starts_with("sha256:") || is_hex(input) && input.len() == 64) => {
            r.familiar()
        }
        _ => input.to_string(),
    }
}

/// Familiar form of a stored full `name:tag` / `name@digest` key.
pub fn familiar_key(key: &str) -> String {
    key.parse::<Reference>()
        .map(|r| r.familiar())
        .unwrap_or_else(|_| key.to_string())
}

/// Everything the commands show about one image, gathered once.
#[derive(Debug, Clone)]
pub struct ImageView {
    pub record: ImageRecord,
    /// Full `name:tag` keys, sorted.
    pub tags: Vec<String>,
    pub config: Value,
    /// Unpacked size, the sum of its layers' sizes.
    pub size: u64,
    pub created: Option<DateTime<Utc>>,
}

impl ImageView {
    pub fn id(&self) -> String {
        self.record.id.to_string()
    }

    pub fn short_id(&self) -> String {
        self.record.id.hex().chars().take(12).collect()
    }

    pub fn labels(&self) -> Map<String, Value> {
        self.config
            .pointer("/config/Labels")
            .and_then(|v| v.as_object())
            .cloned()
            .unwrap_or_default()
    }
}

/// Loads views of every image, newest first (docker's `images` order).
pub fn views(store: &Store, idx: &ImageIndex) -> Result<Vec<ImageView>> {
    let mut sizes: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::new();
    for rec in idx.images.values() {
        let config: Value = match store.blobs.read(&rec.id) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let mut size = 0;
        for l in &rec.layers {
            let key = l.chain_id.to_string();
            let s = match sizes.get(&key) {
                Some(s) => *s,
                None => {
                    let s = store.layers.info(&l.chain_id).map(|i| i.size).unwrap_or(0);
                    sizes.insert(key, s);
                    s
                }
            };
            size += s;
        }
        let created = rec.created.or_else(|| {
            config
                .get("created")
                .and_then(|c| c.as_str())
                .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                .map(|d| d.with_timezone(&Utc))
        });
        let mut tags = idx.tags_of(&rec.id);
        tags.retain(|t| !t.contains('@'));
        tags.sort();
        out.push(ImageView {
            record: rec.clone(),
            tags,
            config,
            size,
            created,
        });
    }
    out.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then(a.record.id.hex().cmp(b.record.id.hex()))
    });
    Ok(out)
}

/// One `images` row before formatting: one per tag, or one `<none>` row.
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub view: ImageView,
}

/// `docker images` filters.
#[derive(Debug, Default, Clone)]
pub struct ImageFilter {
    pub dangling: Option<bool>,
    pub references: Vec<String>,
    pub labels: Vec<(String, Option<String>)>,
    pub since: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => bail!("Invalid filter '{key}={v}'"),
    }
}

impl ImageFilter {
    /// Parses `-f key=value` flags; `idx`/`views` resolve `since`/`before` images.
    pub fn parse(filters: &[String], idx: &ImageIndex, views: &[ImageView]) -> Result<Self> {
        let mut f = ImageFilter::default();
        for raw in filters {
            let Some((key, value)) = raw.split_once('=') else {
                bail!("bad format of filter (expected name=value)");
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "dangling" => f.dangling = Some(parse_bool("dangling", value)?),
                "reference" => f.references.push(value.to_string()),
                "label" => f.labels.push(match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.to_string(), None),
                }),
                k @ ("since" | "before") => {
                    let id = lookup(idx, value).map_err(|e| anyhow!("{e}"))?;
                    let created = views
                        .iter()
                        .find(|v| v.record.id == id)
                        .and_then(|v| v.created);
                    if k == "since" {
                        f.since = created;
                    } else {
                        f.before = created;
                    }
                }
                other => bail!("invalid filter '{other}'"),
            }
        }
        Ok(f)
    }

    fn keep_image(&self, v: &ImageView) -> bool {
        if let Some(d) = self.dangling {
            if d != v.tags.is_empty() {
                return false;
            }
        }
        let labels = v.labels();
        for (k, want) in &self.labels {
            match (labels.get(k), want) {
                (None, _) => return false,
                (Some(have), Some(w)) if have.as_str() != Some(w.as_str()) => return false,
                _ => {}
            }
        }
        if let Some(s) = self.since {
            if v.created.is_none_or(|c| c <= s) {
                return false;
            }
        }
        if let Some(b) = self.before {
            if v.created.is_none_or(|c| c >= b) {
                return false;
            }
        }
        true
    }

    /// Docker matches `reference=` patterns against the familiar name and
    /// the familiar `name:tag`, with shell globbing (`path.Match`).
    fn keep_tag(&self, tag_key: &str) -> bool {
        if self.references.is_empty() {
            return true;
        }
        let Ok(r) = tag_key.parse::<Reference>() else {
            return false;
        };
        let name = r.familiar_name();
        let full = r.familiar();
        self.references
            .iter()
            .any(|p| glob_match(p, &name) || glob_match(p, &full))
    }
}

/// Go's `path.Match`: `*` and `?` do not match `/`; `[...]` classes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => {
                let rest = &p[1..];
                for i in 0..=n.len() {
                    if i > 0 && n[i - 1] == '/' {
                        break;
                    }
                    if m(rest, &n[i..]) {
                        return true;
                    }
                }
                false
            }
            Some('?') => !n.is_empty() && n[0] != '/' && m(&p[1..], &n[1..]),
            Some('[') => {
                let Some(close) = p.iter().position(|c| *c == ']') else {
                    return false;
                };
                let Some(&c) = n.first() else { return false };
                let class = &p[1..close];
                let (neg, class) = match class.first() {
                    Some('^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != neg && m(&p[close + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => !n.is_empty() && n[0] == p[1] && m(&p[2..], &n[1..]),
            Some(c) => !n.is_empty() && n[0] == *c && m(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

/// Builds the rows of `images`, applying filters.
pub fn image_rows(views: &[ImageView], filter: &ImageFilter) -> Vec<ImageRow> {
    let mut rows = Vec::new();
    for v in views {
        if !filter.keep_image(v) {
            continue;
        }
        // repository name -> digest, from repo digests.
        let mut digests: BTreeMap<String, String> = BTreeMap::new();
        for rd in &v.record.repo_digests {
            if let Some((name, d)) = rd.rsplit_once('@') {
                let fam = format!("{name}:latest")
                    .parse::<Reference>()
                    .map(|r| r.familiar_name())
                    .unwrap_or_else(|_| name.to_string());
                digests.entry(fam).or_insert_with(|| d.to_string());
            }
        }
        if v.tags.is_empty() {
            if !filter.references.is_empty() {
                continue;
            }
            if digests.is_empty() {
                rows.push(ImageRow {
                    repository: "<none>".into(),
                    tag: "<none>".into(),
                    digest: "<none>".into(),
                    view: v.clone(),
                });
            }
            for (repo, d) in &digests {
                rows.push(ImageRow {
                    repository: repo.clone(),
                    tag: "<none>".into(),
                    digest: d.clone(),
                    view: v.clone(),
                });
            }
            continue;
        }
        for t in &v.tags {
            if !filter.keep_tag(t) {
                continue;
            }
            let Ok(r) = t.parse::<Reference>() else {
                continue;
            };
            let repo = r.familiar_name();
            let digest = digests
                .get(&repo)
                .cloned()
                .unwrap_or_else(|| "<none>".into());
            rows.push(ImageRow {
                repository: repo,
                tag: r.tag_or_latest().to_string(),
                digest,
                view: v.clone(),
            });
        }
    }
    rows
}

/// What `rmi` did, in docker's order, for printing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RmiEvent {
    Untagged(String),
    Deleted(String),
}

/// Removes one image reference as `docker rmi` does. Layers and blobs no
/// image needs any more are removed afterwards by `gc` (the caller).
pub fn rmi(store: &Store, input: &str, force: bool) -> Result<Vec<RmiEvent>> {
    let usage = crate::engine::container::ContainerStore::new(store.paths.clone());
    // The inner Result carries docker's conflict refusal, which leaves the
    // index untouched.
    let res = ImageIndex::update(&store.paths, |idx| {
        let id = match lookup(idx, input) {
            Ok(id) => id,
            Err(StoreError::ImageNotFound { .. }) => {
                return Err(StoreError::ImageNotFound {
                    reference: familiar_or_raw(input),
                })
            }
            Err(e) => return Err(e),
        };
        let mut events = Vec::new();
        let tags: Vec<String> = idx.tags_of(&id);
        let named: Option<String> = input
            .parse::<Reference>()
            .ok()
            .map(|r| reference_key(&r))
            .filter(|k| idx.tags.contains_key(k));
        let by_digest: Option<String> = input
            .parse::<Reference>()
            .ok()
            .filter(|r| r.digest.is_some())
            .map(|r| reference_key(&r))
            .filter(|k| idx.get(&id).is_some_and(|rec| rec.repo_digests.contains(k)));
        if let Some(key) = by_digest {
            // By digest: drop that reference; the image goes with its last one.
            if let Some(rec) = idx.images.get_mut(&id.to_string()) {
                rec.repo_digests.retain(|d| d != &key);
            }
            events.push(RmiEvent::Untagged(familiar_key(&key)));
            let still_named = !idx.tags_of(&id).is_empty()
                || idx.get(&id).is_some_and(|rec| !rec.repo_digests.is_empty());
            if still_named && !force {
                return Ok(Ok(events));
            }
            for t in &tags {
                idx.untag(t);
                events.push(RmiEvent::Untagged(familiar_key(t)));
            }
        } else if let Some(key) = named {
            // By name: untag; delete the image only with its last name.
            idx.untag(&key);
            events.push(RmiEvent::Untagged(familiar_key(&key)));
            let remaining = idx.tags_of(&id);
            if !remaining.is_empty() {
                return Ok(Ok(events));
            }
        } else {
            // By ID: names in several repositories need -f (docker's conflict).
            let repos: HashSet<String> = tags
                .iter()
                .filter_map(|t| t.parse::<Reference>().ok().map(|r| r.name()))
                .collect();
            if repos.len() > 1 && !force {
                return Ok(Err(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    &id.hex()[..12]
                )));
            }
            for t in &tags {
                idx.untag(t);
                events.push(RmiEvent::Untagged(familiar_key(t)));
            }
        }
        if let Some(c) = usage.container_using(&id) {
            if !force {
                // An Err leaves images.json untouched (the untag above too).
                return Err(StoreError::ImageInUse {
                    id: id.hex()[..12].to_string(),
                    container: c[..12.min(c.len())].to_string(),
                });
            }
            // docker: forced, the image only loses its names while a
            // container still uses it (its layers stay).
            return Ok(Ok(events));
        }
        if let Some(rec) = idx.remove_image(&id) {
            for rd in &rec.repo_digests {
                events.push(RmiEvent::Untagged(familiar_key(rd)));
            }
            events.push(RmiEvent::Deleted(rec.id.to_string()));
        }
        Ok(Ok(events))
    })
    .map_err(|e| anyhow!("{e}"))?;
    res.map_err(|msg| anyhow!(msg))
}

/// Layers that `gc` removed, with their unpacked sizes, top layer first.
pub fn collect_garbage(store: &Store) -> Result<(Vec<String>, u64)> {
    let mut sizes = HashMap::new();
    for chain in store.layers.list().map_err(|e| anyhow!("{e}"))? {
        if let Ok(info) = store.layers.info(&chain) {
            sizes.insert(chain.to_string(), info.size);
        }
    }
    let report = store.gc().map_err(|e| anyhow!("{e}"))?;
    let mut reclaimed = 0;
    let mut deleted = Vec::new();
    for l in report.layers.iter().rev() {
        reclaimed += sizes.get(&l.to_string()).copied().unwrap_or(0);
        deleted.push(l.to_string());
    }
    Ok((deleted, reclaimed))
}

/// `tag SOURCE TARGET`.
pub fn tag(store: &Store, source: &str, target: &str) -> Result<()> {
    let dst: Reference = target.parse().map_err(|e| anyhow!("{e}"))?;
    if dst.digest.is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    let key = reference_key(&dst);
    ImageIndex::update(&store.paths, |idx| {
        let id = lookup(idx, source).map_err(|e| match e {
            StoreError::ImageNotFound { .. } => StoreError::ImageNotFound {
                reference: source.to_string(),
            },
            other => other,
        })?;
        idx.tag(&key, &id)?;
        Ok(())
    })
    .map_err(|e| anyhow!("{e}"))
}

fn cfg_str(c: &Value, key: &str) -> Value {
    c.get(key).cloned().unwrap_or(Value::String(String::new()))
}

/// Docker's `container.Config` as `image inspect` shows it, in its field
/// order, from the image config's `config` object.
fn inspect_config(c: &Value) -> Value {
    let get = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
    let mut m = Map::new();
    m.insert("Hostname".into(), cfg_str(c, "Hostname"));
    m.insert("Domainname".into(), cfg_str(c, "Domainname"));
    m.insert("User".into(), cfg_str(c, "User"));
    m.insert("AttachStdin".into(), json!(false));
    m.insert("AttachStdout".into(), json!(false));
    m.insert("AttachStderr".into(), json!(false));
    if let Some(p) = c.get("ExposedPorts").filter(|v| !v.is_null()) {
        m.insert("ExposedPorts".into(), p.clone());
    }
    m.insert("Tty".into(), json!(false));
    m.insert("OpenStdin".into(), json!(false));
    m.insert("StdinOnce".into(), json!(false));
    m.insert("Env".into(), get("Env"));
    m.insert("Cmd".into(), get("Cmd"));
    if let Some(h) = c.get("Healthcheck").filter(|v| !v.is_null()) {
        m.insert("Healthcheck".into(), h.clone());
    }
    if let Some(a) = c.get("ArgsEscaped").filter(|v| v.as_bool() == Some(true)) {
        m.insert("ArgsEscaped".into(), a.clone());
    }
    m.insert("Image".into(), cfg_str(c, "Image"));
    m.insert("Volumes".into(), get("Volumes"));
    m.insert("WorkingDir".into(), cfg_str(c, "WorkingDir"));
    m.insert("Entrypoint".into(), get("Entrypoint"));
    m.insert("OnBuild".into(), get("OnBuild"));
    m.insert("Labels".into(), get("Labels"));
    if let Some(s) = c.get("StopSignal").filter(|v| !v.is_null()) {
        m.insert("StopSignal".into(), s.clone());
    }
    if let Some(s) = c.get("Shell").filter(|v| !v.is_null()) {
        m.insert("Shell".into(), s.clone());
    }
    Value::Object(m)
}

/// `image inspect` JSON for one image, in docker's shape and field order.
pub fn inspect_json(store: &Store, v: &ImageView) -> Value {
    let c = &v.config;
    let mut m = Map::new();
    m.insert("Id".into(), json!(v.id()));
    let tags: Vec<String> = v.tags.iter().map(|t| familiar_key(t)).collect();
    m.insert("RepoTags".into(), json!(tags));
    let digests: Vec<String> = v
        .record
        .repo_digests
        .iter()
        .map(|t| familiar_key(t))
        .collect();
    m.insert("RepoDigests".into(), json!(digests));
    m.insert("Parent".into(), json!(""));
    m.insert("Comment".into(), cfg_str(c, "comment"));
    m.insert("Created".into(), cfg_str(c, "created"));
    m.insert("DockerVersion".into(), cfg_str(c, "docker_version"));
    m.insert("Author".into(), cfg_str(c, "author"));
    m.insert(
        "Config".into(),
        inspect_config(c.get("config").unwrap_or(&Value::Null)),
    );
    m.insert("Architecture".into(), cfg_str(c, "architecture"));
    if let Some(var) = c.get("variant").filter(|v| v.is_string()) {
        m.insert("Variant".into(), var.clone());
    }
    m.insert("Os".into(), cfg_str(c, "os"));
    m.insert("Size".into(), json!(v.size));
    let dirs: Vec<String> = v
        .record
        .layers
        .iter()
        .rev()
        .map(|l| store.layers.diff_path(&l.chain_id).display().to_string())
        .collect();
    let mut data = Map::new();
    if let Some((upper, lower)) = dirs.split_first() {
        if !lower.is_empty() {
            data.insert("LowerDir".into(), json!(lower.join(":")));
        }
        data.insert("UpperDir".into(), json!(upper));
    }
    m.insert(
        "GraphDriver".into(),
        json!({"Data": Value::Object(data), "Name": "overlay"}),
    );
    let diff_ids: Vec<String> = v
        .record
        .layers
        .iter()
        .map(|l| l.diff_id.to_string())
        .collect();
    m.insert(
        "RootFS".into(),
        json!({"Type": "layers", "Layers": diff_ids}),
    );
    m.insert(
        "Metadata".into(),
        json!({"LastTagTime": "0001-01-01T00:00:00Z"}),
    );
    Value::Object(m)
}

/// One `history` entry, newest first.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub id: String,
    pub created: Option<DateTime<Utc>>,
    pub created_by: String,
    pub size: u64,
    pub comment: String,
}

pub fn history(store: &Store, v: &ImageView) -> Vec<HistoryEntry> {
    let mut layer_sizes = v
        .record
        .layers
        .iter()
        .map(|l| store.layers.info(&l.chain_id).map(|i| i.size).unwrap_or(0));
    let mut out = Vec::new();
    let hist = v
        .config
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    for h in &hist {
        let empty = h.get("empty_layer").and_then(|e| e.as_bool()) == Some(true);
        let size = if empty {
            0
        } else {
            layer_sizes.next().unwrap_or(0)
        };
        out.push(HistoryEntry {
            id: "<missing>".into(),
            created: h
                .get("created")
                .and_then(|c| c.as_str())
                .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                .map(|d| d.with_timezone(&Utc)),
            created_by: h
                .get("created_by")
                .and_then(|c| c.as_str())
                .unwrap_or("")
                .to_string(),
            size,
            comment: h
                .get("comment")
                .and_then(|c| c.as_str())
                .unwrap_or("")
                .to_string(),
        });
    }
    if hist.is_empty() {
        // An image without history (e.g. hand-made): one entry per layer.
        for _ in &v.record.layers {
            out.push(HistoryEntry {
                id: "<missing>".into(),
                created: v.created,
                created_by: String::new(),
                size: layer_sizes.next().unwrap_or(0),
                comment: String::new(),
            });
        }
    }
    out.reverse();
    if let Some(first) = out.first_mut() {
        first.id = v.id();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn go_path_match() {
        assert!(glob_match("busy*", "busybox"));
        assert!(glob_match("*", "busybox"));
        assert!(!glob_match("*", "library/busybox"));
        assert!(glob_match("*/busybox", "library/busybox"));
        assert!(glob_match("busybox:1.3?", "busybox:1.36"));
        assert!(glob_match("b[a-z]sybox", "busybox"));
        assert!(!glob_match("b[^u]sybox", "busybox"));
        assert!(!glob_match("busybox", "busybox:latest"));
        assert!(glob_match("localhost:5000/*", "localhost:5000/app"));
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;
    use crate::engine::store::LayerRef;

    fn view(seed: &str, tags: &[&str], labels: Value, created_day: u32) -> ImageView {
        let id = Digest::sha256_of(seed.as_bytes());
        let diff = Digest::sha256_of(format!("{seed}-diff").as_bytes());
        let created =
            chrono::DateTime::parse_from_rfc3339(&format!("2024-01-{created_day:02}T00:00:00Z"))
                .unwrap()
                .with_timezone(&Utc);
        ImageView {
            record: ImageRecord {
                id,
                manifest_digest: Digest::sha256_of(format!("{seed}-m").as_bytes()),
                manifest_media_type: registry_client::manifest::OCI_MANIFEST.into(),
                repo_digests: vec![],
                layers: vec![LayerRef {
                    digest: Digest::sha256_of(format!("{seed}-blob").as_bytes()),
                    diff_id: diff.clone(),
                    chain_id: diff,
                    size: 1,
                    media_type: registry_client::manifest::OCI_LAYER_GZIP.into(),
                }],
                config_size: 1,
                created: Some(created),
                pulled_at: Utc::now(),
            },
            tags: tags.iter().map(|t| t.to_string()).collect(),
            config: json!({"config": {"Labels": labels}}),
            size: 1,
            created: Some(created),
        }
    }

    fn names(rows: &[ImageRow]) -> Vec<String> {
        rows.iter()
            .map(|r| format!("{}:{}", r.repository, r.tag))
            .collect()
    }

    #[test]
    fn filters_select_like_docker() {
        let views = vec![
            view(
                "a",
                &["docker.io/library/web:1", "docker.io/library/web:2"],
                json!({"role": "web"}),
                3,
            ),
            view("b", &["localhost:5000/db:latest"], json!({"role": "db"}), 2),
            view("c", &[], json!(null), 1),
        ];
        let mut idx = ImageIndex::default();
        for v in &views {
            idx.put_image(v.record.clone());
            for t in &v.tags {
                idx.tag(t, &v.record.id).unwrap();
            }
        }
        let f = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            names(&image_rows(
                &views,
                &ImageFilter::parse(&args, &idx, &views).unwrap(),
            ))
        };
        assert_eq!(
            f(&[]),
            vec![
                "web:1",
                "web:2",
                "localhost:5000/db:latest",
                "<none>:<none>"
            ]
        );
        assert_eq!(f(&["dangling=true"]), vec!["<none>:<none>"]);
        assert_eq!(f(&["dangling=false"]).len(), 3);
        assert_eq!(f(&["label=role=db"]), vec!["localhost:5000/db:latest"]);
        assert_eq!(f(&["label=role"]).len(), 3);
        assert_eq!(f(&["reference=web:2"]), vec!["web:2"]);
        assert_eq!(f(&["reference=web"]), vec!["web:1", "web:2"]);
        assert_eq!(
            f(&["reference=localhost:5000/*"]),
            vec!["localhost:5000/db:latest"]
        );
        assert_eq!(f(&["since=localhost:5000/db"]), vec!["web:1", "web:2"]);
        assert_eq!(f(&["before=localhost:5000/db"]), vec!["<none>:<none>"]);
        assert!(ImageFilter::parse(&["dangling=maybe".into()], &idx, &views).is_err());
        assert!(ImageFilter::parse(&["nope=1".into()], &idx, &views).is_err());
        assert!(ImageFilter::parse(&["noequals".into()], &idx, &views).is_err());
        assert!(ImageFilter::parse(&["since=missing".into()], &idx, &views).is_err());
    }

    #[test]
    fn lookup_by_name_id_prefix_and_digest() {
        let v = view("a", &["docker.io/library/web:1"], json!(null), 1);
        let mut idx = ImageIndex::default();
        let mut rec = v.record.clone();
        let d = format!("sha256:{}", "1".repeat(64));
        rec.repo_digests = vec![format!("docker.io/library/web@{d}")];
        idx.put_image(rec);
        idx.tag("docker.io/library/web:1", &v.record.id).unwrap();
        let id = v.record.id.clone();
        assert_eq!(lookup(&idx, "web:1").unwrap(), id);
        assert_eq!(lookup(&idx, id.as_ref()).unwrap(), id);
        assert_eq!(lookup(&idx, &id.hex()[..12]).unwrap(), id);
        assert_eq!(lookup(&idx, &format!("web@{d}")).unwrap(), id);
        assert!(lookup(&idx, "web:2").is_err());
        assert_eq!(familiar_or_raw("web"), "web:latest");
        assert_eq!(
            familiar_or_raw(&id.hex()[..12]),
            format!("{}:latest", &id.hex()[..12])
        );
    }
}
