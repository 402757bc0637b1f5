//! `images.json`: image records keyed by image ID (config digest) and the
//! tags that point at them. Readers load the file as it is (writes are
//! atomic renames); writers go through `update`, which holds
//! `locks/images.lock` across read-modify-write.

use std::collections::BTreeMap;
use std::io;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::{IoContext, StoreError};
use super::Digest;
use crate::engine::fsutil::{self, FileLock};
use crate::engine::paths::Paths;

/// One layer of an image, as its manifest and config describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    /// Compressed blob digest.
    #[serde(with = "super::serde_digest")]
    pub digest: Digest,
    #[serde(with = "super::serde_digest")]
    pub diff_id: Digest,
    #[serde(with = "super::serde_digest")]
    pub chain_id: Digest,
    /// Compressed size.
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest, docker's image ID.
    #[serde(with = "super::serde_digest")]
    pub id: Digest,
    #[serde(with = "super::serde_digest")]
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    /// `docker.io/library/busybox@sha256:<manifest or index digest>`.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    pub layers: Vec<LayerRef>,
    pub config_size: u64,
    /// `created` from the image config.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    /// When this store pulled or loaded it.
    pub pulled_at: DateTime<Utc>,
}

/// Answers whether a container still uses an image; containers come later,
/// so `rmi` takes this as a parameter.
pub trait ContainerUsage {
    /// The name or ID of a container using `image`, if any.
    fn container_using(&self, image: &Digest) -> Option<String>;
}

/// For callers (and tests) with no containers to consult.
pub struct NoContainers;

impl ContainerUsage for NoContainers {
    fn container_using(&self, _image: &Digest) -> Option<String> {
        None
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageIndex {
    /// "sha256:<config digest>" -> record.
    #[serde(default)]
    pub images: BTreeMap<String, ImageRecord>,
    /// "docker.io/library/busybox:latest" -> "sha256:<image id>".
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl ImageIndex {
    /// The current index; an absent file is an empty store.
    pub fn load(paths: &Paths) -> Result<ImageIndex, StoreError> {
        let p = paths.images_json();
        match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: p,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ImageIndex::default()),
            Err(e) => Err(StoreError::io("read", &p, e)),
        }
    }

    fn save(&self, paths: &Paths) -> Result<(), StoreError> {
        let p = paths.images_json();
        let json = serde_json::to_vec_pretty(self).map_err(|e| StoreError::Corrupt {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        fsutil::atomic_write(&p, &json).ctx("write", &p)
    }

    /// Read-modify-write under `locks/images.lock`; `f`'s error leaves the
    /// file untouched.
    pub fn update<T>(
        paths: &Paths,
        f: impl FnOnce(&mut ImageIndex) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _lock = Self::lock(paths)?;
        let mut idx = Self::load(paths)?;
        let before = idx.clone();
        let out = f(&mut idx)?;
        if idx != before {
            idx.save(paths)?;
        }
        Ok(out)
    }

    /// The images lock, for work (like GC) that must keep the index stable.
    pub fn lock(paths: &Paths) -> Result<FileLock, StoreError> {
        let p = paths.lock_file("images");
        FileLock::exclusive(&p).ctx("lock", &p)
    }

    pub fn get(&self, id: &Digest) -> Option<&ImageRecord> {
        self.images.get(&id.to_string())
    }

    /// Adds or replaces a record; repo digests already known are kept.
    pub fn put_image(&mut self, mut record: ImageRecord) {
        if let Some(old) = self.images.get(&record.id.to_string()) {
            for rd in &old.repo_digests {
                if !record.repo_digests.contains(rd) {
                    record.repo_digests.push(rd.clone());
                }
            }
        }
        self.images.insert(record.id.to_string(), record);
    }

    /// Finds an image by full `name:tag`, `name@digest`, full image ID
    /// (`sha256:<hex>` or bare hex) or a unique ID prefix. Names must be
    /// normalised by the caller (`busybox` -> `docker.io/library/busybox:latest`).
    pub fn resolve(&self, reference: &str) -> Result<Digest, StoreError> {
        let not_found = || StoreError::ImageNotFound {
            reference: reference.to_string(),
        };
        let parse = |s: &str| s.parse::<Digest>().map_err(|_| not_found());
        if let Some(id) = self.tags.get(reference) {
            return parse(id);
        }
        if reference.contains('@') {
            if let Some(rec) = self
                .images
                .values()
                .find(|r| r.repo_digests.iter().any(|d| d == reference))
            {
                return Ok(rec.id.clone());
            }
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if is_hex(hex) && hex.len() <= 64 {
            let mut matches = self.images.values().filter(|r| r.id.hex().starts_with(hex));
            if let Some(first) = matches.next() {
                if matches.next().is_some() {
                    return Err(StoreError::AmbiguousImage {
                        reference: reference.to_string(),
                    });
                }
                return Ok(first.id.clone());
            }
        }
        Err(not_found())
    }

    /// Points `name` at `id`; returns the image it pointed at before.
    pub fn tag(&mut self, name: &str, id: &Digest) -> Result<Option<Digest>, StoreError> {
        if self.get(id).is_none() {
            return Err(StoreError::ImageNotFound {
                reference: id.to_string(),
            });
        }
        let old = self.tags.insert(name.to_string(), id.to_string());
        Ok(old
            .and_then(|o| o.parse().ok())
            .filter(|o: &Digest| o != id))
    }

    /// Removes a tag; returns the image it pointed at.
    pub fn untag(&mut self, name: &str) -> Option<Digest> {
        self.tags.remove(name).and_then(|id| id.parse().ok())
    }

    pub fn tags_of(&self, id: &Digest) -> Vec<String> {
        let id = id.to_string();
        self.tags
            .iter()
            .filter(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Errors when a container uses the image (docker's `rmi` refusal).
    pub fn check_not_in_use(
        &self,
        id: &Digest,
        usage: &dyn ContainerUsage,
    ) -> Result<(), StoreError> {
        match usage.container_using(id) {
            Some(container) => Err(StoreError::ImageInUse {
                id: id.to_string(),
                container,
            }),
            None => Ok(()),
        }
    }

    /// Drops the record and every tag pointing at it. Layers and blobs stay
    /// until `Store::gc`.
    pub fn remove_image(&mut self, id: &Digest) -> Option<ImageRecord> {
        let key = id.to_string();
        self.tags.retain(|_, v| *v != key);
        self.images.remove(&key)
    }

    /// Images whose layer chain includes `chain_id`.
    pub fn images_using_chain(&self, chain_id: &Digest) -> Vec<Digest> {
        self.images
            .values()
            .filter(|r| r.layers.iter().any(|l| &l.chain_id == chain_id))
            .map(|r| r.id.clone())
            .collect()
    }

    /// Images without any tag (`<none>:<none>`).
    pub fn dangling(&self) -> Vec<Digest> {
        self.images
            .values()
            .filter(|r| {
                let id = r.id.to_string();
                !self.tags.values().any(|v| *v == id)
            })
            .map(|r| r.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(seed: &str) -> ImageRecord {
        let id = Digest::sha256_of(seed.as_bytes());
        let diff = Digest::sha256_of(format!("{seed}-diff").as_bytes());
        ImageRecord {
            id: id.clone(),
            manifest_digest: Digest::sha256_of(format!("{seed}-manifest").as_bytes()),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            repo_digests: vec![format!(
                "docker.io/library/{seed}@sha256:{}",
                "0".repeat(64)
            )],
            layers: vec![LayerRef {
                digest: Digest::sha256_of(format!("{seed}-blob").as_bytes()),
                diff_id: diff.clone(),
                chain_id: diff,
                size: 10,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            }],
            config_size: 100,
            created: None,
            pulled_at: Utc::now(),
        }
    }

    fn paths() -> (tempfile::TempDir, Paths) {
        let d = tempfile::tempdir().unwrap();
        let p = Paths::new(Some(d.path().to_path_buf()));
        std::fs::create_dir_all(p.locks_dir()).unwrap();
        (d, p)
    }

    #[test]
    fn resolve_by_tag_digest_id_and_prefix() {
        let mut idx = ImageIndex::default();
        let a = record("a");
        let b = record("b");
        idx.put_image(a.clone());
        idx.put_image(b.clone());
        idx.tag("docker.io/library/a:latest", &a.id).unwrap();
        assert_eq!(idx.resolve("docker.io/library/a:latest").unwrap(), a.id);
        assert_eq!(idx.resolve(&a.repo_digests[0]).unwrap(), a.id);
        assert_eq!(idx.resolve(a.id.as_ref()).unwrap(), a.id);
        assert_eq!(idx.resolve(&a.id.hex()[..12]).unwrap(), a.id);
        assert!(matches!(
            idx.resolve("docker.io/library/zzz:latest"),
            Err(StoreError::ImageNotFound { .. })
        ));
        // Two IDs share the empty-ish prefix "": not hex, so not found; a
        // one-digit prefix shared by both is ambiguous.
        let (ah, bh) = (a.id.hex().to_string(), b.id.hex().to_string());
        let common: String = ah
            .chars()
            .zip(bh.chars())
            .take_while(|(x, y)| x == y)
            .map(|(x, _)| x)
            .collect();
        if !common.is_empty() {
            assert!(matches!(
                idx.resolve(&common),
                Err(StoreError::AmbiguousImage { .. })
            ));
        }
        assert_eq!(idx.dangling(), vec![b.id.clone()]);
        assert_eq!(
            idx.images_using_chain(&b.layers[0].chain_id),
            vec![b.id.clone()]
        );
    }

    #[test]
    fn tag_untag_remove() {
        let mut idx = ImageIndex::default();
        let a = record("a");
        idx.put_image(a.clone());
        assert!(idx.tag("x:1", &Digest::sha256_of(b"nope")).is_err());
        assert_eq!(idx.tag("x:1", &a.id).unwrap(), None);
        idx.tag("x:2", &a.id).unwrap();
        assert_eq!(
            idx.tags_of(&a.id),
            vec!["x:1".to_string(), "x:2".to_string()]
        );
        assert_eq!(idx.untag("x:1"), Some(a.id.clone()));
        assert!(idx.check_not_in_use(&a.id, &NoContainers).is_ok());
        struct Busy;
        impl ContainerUsage for Busy {
            fn container_using(&self, _: &Digest) -> Option<String> {
                Some("web".into())
            }
        }
        assert!(matches!(
            idx.check_not_in_use(&a.id, &Busy),
            Err(StoreError::ImageInUse { .. })
        ));
        assert!(idx.remove_image(&a.id).is_some());
        assert!(idx.tags.is_empty());
    }

    #[test]
    fn json_shape_and_roundtrip() {
        let (_d, p) = paths();
        let a = record("a");
        ImageIndex::update(&p, |idx| {
            idx.put_image(a.clone());
            idx.tag("docker.io/library/a:latest", &a.id)?;
            Ok(())
        })
        .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(p.images_json()).unwrap()).unwrap();
        assert_eq!(v["tags"]["docker.io/library/a:latest"], a.id.to_string());
        assert_eq!(v["images"][a.id.to_string()]["id"], a.id.to_string());
        assert_eq!(ImageIndex::load(&p).unwrap().get(&a.id), Some(&a));
    }

    #[test]
    fn failed_update_changes_nothing() {
        let (_d, p) = paths();
        let r: Result<(), _> = ImageIndex::update(&p, |idx| {
            idx.put_image(record("a"));
            Err(StoreError::ImageNotFound {
                reference: "x".into(),
            })
        });
        assert!(r.is_err());
        assert!(!p.images_json().exists());
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let (_d, p) = paths();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for j in 0..5 {
                        let r = record(&format!("img-{i}-{j}"));
                        ImageIndex::update(&p, |idx| {
                            let id = r.id.clone();
                            idx.put_image(r);
                            idx.tag(&format!("t{i}:{j}"), &id)?;
                            Ok(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let idx = ImageIndex::load(&p).unwrap();
        assert_eq!(idx.images.len(), 80);
        assert_eq!(idx.tags.len(), 80);
    }
}
