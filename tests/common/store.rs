//! Reads berth's on-disk store (docs/architecture.md "State on disk") to
//! check what a command left behind, without using berth's code.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `R/layers/<chain-hex>/diff`.
pub fn diff_dir(root: &Path, chain_hex: &str) -> PathBuf {
    root.join("layers").join(chain_hex).join("diff")
}

/// Names in `R/layers` (chain hexes and any `.tmp-*` leftovers).
pub fn layer_entries(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(root.join("layers")) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Committed layer dirs (names that are 64 hex chars).
pub fn committed_layers(root: &Path) -> Vec<String> {
    layer_entries(root)
        .into_iter()
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

/// Anything under `R/layers` or `R/tmp` whose name says "unfinished".
pub fn leftovers(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = layer_entries(root)
        .into_iter()
        .filter(|n| n.starts_with(".tmp") || n.ends_with(".tmp"))
        .map(|n| format!("layers/{n}"))
        .collect();
    if let Ok(rd) = std::fs::read_dir(root.join("tmp")) {
        v.extend(
            rd.filter_map(|e| e.ok())
                .map(|e| format!("tmp/{}", e.file_name().to_string_lossy())),
        );
    }
    v
}

/// Every committed layer has `layer.json` and `diff/`; panics otherwise.
pub fn assert_layers_consistent(root: &Path) {
    for c in committed_layers(root) {
        let d = root.join("layers").join(&c);
        assert!(
            d.join("layer.json").is_file(),
            "layer {c} has no layer.json"
        );
        assert!(d.join("diff").is_dir(), "layer {c} has no diff/");
        let j: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("layer.json")).unwrap())
                .unwrap_or_else(|e| panic!("layer {c}: layer.json is not JSON: {e}"));
        assert!(j.is_object(), "layer {c}: layer.json is {j}");
    }
}

/// Layers as above, and `images.json` (if any) parses as JSON.
pub fn assert_store_consistent(root: &Path) {
    assert_layers_consistent(root);
    let images = root.join("images.json");
    if images.exists() {
        let raw = std::fs::read(&images).unwrap();
        serde_json::from_slice::<serde_json::Value>(&raw).unwrap_or_else(|e| {
            panic!(
                "images.json is not JSON ({e}): {}",
                String::from_utf8_lossy(&raw)
            )
        });
    }
}

pub fn blob_path(root: &Path, digest: &str) -> PathBuf {
    root.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// `lgetxattr(path, name)`; None if absent.
pub fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return None;
    }
    buf.truncate(r as usize);
    Some(buf)
}

/// Every path below `dir` (relative), sorted; does not follow symlinks.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    fn rec(base: &Path, d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().to_path_buf());
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    rec(base, &p, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    rec(dir, dir, &mut out);
    out.sort();
    out
}
