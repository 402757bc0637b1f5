//! Reading a process's cgroups from the host side (v1 and v2), and finding
//! cgroup directories a test's containers left behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// controller name -> the host directory of `pid`'s cgroup for it. For
/// cgroup v2 the key is `unified`.
pub fn cgroup_dirs(pid: i32) -> BTreeMap<String, PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut m = BTreeMap::new();
    for l in text.lines() {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let rel = path.trim_start_matches('/');
        if ctrls.is_empty() {
            for base in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
                if Path::new(base).join("cgroup.controllers").exists() {
                    m.insert("unified".to_string(), Path::new(base).join(rel));
                    break;
                }
            }
            continue;
        }
        for c in ctrls.split(',') {
            let c = c.trim_start_matches("name=");
            for mount in [c, ctrls] {
                let d = Path::new("/sys/fs/cgroup").join(mount);
                if d.is_dir() {
                    m.insert(c.to_string(), d.join(rel));
                    break;
                }
            }
        }
    }
    m
}

/// The content of `file` in `pid`'s cgroup of `ctrl`, trimmed.
pub fn read(pid: i32, ctrl: &str, file: &str) -> Option<String> {
    let d = cgroup_dirs(pid).get(ctrl)?.clone();
    std::fs::read_to_string(d.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

/// A `key value` field of a flat-keyed cgroup file (cpu.stat).
pub fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

/// Every directory under /sys/fs/cgroup whose name contains one of `ids`.
pub fn leftovers(ids: &[String]) -> Vec<PathBuf> {
    fn walk(d: &Path, depth: usize, ids: &[String], out: &mut Vec<PathBuf>) {
        if depth > 8 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(d) else {
            return;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() || ft.is_symlink() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if ids.iter().any(|id| name.contains(id.as_str())) {
                out.push(e.path());
            }
            walk(&e.path(), depth + 1, ids, out);
        }
    }
    let mut out = Vec::new();
    if ids.is_empty() {
        return out;
    }
    walk(Path::new("/sys/fs/cgroup"), 0, ids, &mut out);
    out
}
