//! What docker shows of a network that the `netns` state does not hold:
//! its creation time and the `-o` options as given
//! (`<root>/network-meta/<id>.json`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use netns::NetworkState;
use serde::{Deserialize, Serialize};

use super::Net;
use crate::engine::fsutil::atomic_write;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Meta {
    pub created: Option<DateTime<Utc>>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn path(net: &Net, id: &str) -> PathBuf {
    net.paths
        .root
        .join("network-meta")
        .join(format!("{id}.json"))
}

pub fn write(net: &Net, st: &NetworkState, options: &BTreeMap<String, String>) -> Result<()> {
    let p = path(net, &st.id);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let m = Meta {
        created: Some(Utc::now()),
        options: options.clone(),
    };
    atomic_write(&p, &serde_json::to_vec(&m)?)
        .with_context(|| format!("cannot write {}", p.display()))
}

/// Missing or unreadable metadata reads as empty (it is only shown).
pub fn read(net: &Net, id: &str) -> Meta {
    std::fs::read(path(net, id))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn remove(net: &Net, id: &str) {
    let _ = std::fs::remove_file(path(net, id));
}
