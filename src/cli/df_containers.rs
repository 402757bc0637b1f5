//! The containers' part of `system df` and the SIZE column of `ps -s`:
//! a container's size is its overlay upper directory (what it wrote), its
//! virtual size that plus its image's layers.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::units::{ago, human_size};
use crate::engine::container::{liveness, ContainerRecord, ContainerStore};
use crate::engine::store::{Digest, LayerStore};

/// Bytes of regular files below `p`, not following symlinks.
pub fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total += m.len();
            }
        }
    }
    total
}

/// The unpacked size of the container's image layers.
pub fn image_size(cs: &ContainerStore, rec: &ContainerRecord) -> u64 {
    let ls = LayerStore::new(&cs.paths);
    rec.layers
        .iter()
        .filter_map(|h| format!("sha256:{h}").parse::<Digest>().ok())
        .filter_map(|d| ls.info(&d).ok())
        .map(|i| i.size)
        .sum()
}

/// `ps -s`: "SIZE (virtual VIRTUAL)" as docker prints it.
pub fn ps_size(cs: &ContainerStore, rec: &ContainerRecord) -> String {
    let rw = dir_size(&cs.dir(&rec.id).join("upper"));
    let virt = rw + image_size(cs, rec);
    format!(
        "{} (virtual {})",
        super::units::human_size_with_precision(rw as f64, 3),
        super::units::human_size_with_precision(virt as f64, 3)
    )
}

pub struct Usage {
    pub rows: Vec<Value>,
    pub total: usize,
    pub active: usize,
    pub size: u64,
    pub reclaimable: u64,
    /// Image ID -> how many containers use it.
    pub per_image: HashMap<String, usize>,
}

pub fn usage(cs: &ContainerStore) -> Usage {
    let mut recs = cs.list().unwrap_or_default();
    recs.sort_by_key(|r| std::cmp::Reverse(r.created));
    let now = chrono::Utc::now();
    let mut u = Usage {
        rows: Vec::new(),
        total: recs.len(),
        active: 0,
        size: 0,
        reclaimable: 0,
        per_image: HashMap::new(),
    };
    for r in &recs {
        let st = liveness::current(cs, &r.id).unwrap_or_default();
        let size = dir_size(&cs.dir(&r.id).join("upper"));
        u.size += size;
        if st.running() {
            u.active += 1;
        } else {
            u.reclaimable += size;
        }
        *u.per_image.entry(r.image.clone()).or_default() += 1;
        let mut cmd = vec![r.path.clone()];
        cmd.extend(r.args.iter().cloned());
        let cmd = cmd.join(" ");
        let cmd = if cmd.chars().count() > 20 {
            format!("{}…", cmd.chars().take(19).collect::<String>())
        } else {
            cmd
        };
        u.rows.push(json!({
            "ID": r.id[..12].to_string(),
            "Image": r.config.image,
            "Command": format!("\"{cmd}\""),
            "LocalVolumes": "0",
            "Size": human_size(size as f64),
            "CreatedSince": ago(r.created, now),
            "Status": st.status.as_str(),
            "Names": r.name,
        }));
    }
    u
}

/// docker's `RECLAIMABLE` text: size and percentage of the total.
pub fn reclaim_text(reclaimable: u64, total: u64) -> String {
    if total > 0 {
        format!(
            "{} ({}%)",
            human_size(reclaimable as f64),
            (reclaimable as f64 / total as f64 * 100.0) as i64
        )
    } else {
        human_size(reclaimable as f64)
    }
}

/// The `system df` row for containers.
pub fn df_row(u: &Usage) -> Value {
    json!({
        "Type": "Containers",
        "TotalCount": u.total.to_string(),
        "Active": u.active.to_string(),
        "Size": human_size(u.size as f64),
        "Reclaimable": reclaim_text(u.reclaimable, u.size),
    })
}

pub const VERBOSE_TABLE: &str = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.CreatedSince}}\t{{.Status}}\t{{.Names}}";

pub fn verbose_header() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
        "LocalVolumes": "LOCAL VOLUMES", "Size": "SIZE", "CreatedSince": "CREATED",
        "Status": "STATUS", "Names": "NAMES",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaimable_percent() {
        assert_eq!(reclaim_text(0, 0), "0B");
        assert_eq!(reclaim_text(500, 1000), "500B (50%)");
    }
}
