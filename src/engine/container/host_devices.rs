//! `--privileged`: every device node of the host, as docker's
//! `devices.HostDevices` walks `/dev` (pts, shm, mqueue and fd are the
//! container's own; the standard devices are made by the runtime).

use std::path::Path;

use serde_json::{json, Value};

const SKIP_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
const RUNTIME_MADE: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/console",
];

/// OCI `linux.devices` entries for the host's char and block devices,
/// leaving out the paths in `taken` (the user's own `--device` targets).
pub fn all(taken: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    walk(Path::new("/dev"), 0, taken, &mut out);
    out
}

fn walk(dir: &Path, depth: usize, taken: &[String], out: &mut Vec<Value>) {
    if depth > 4 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        let p = path.to_string_lossy().into_owned();
        if ft.is_dir() {
            let name = e.file_name();
            if depth == 0 && SKIP_DIRS.iter().any(|s| name == *s) {
                continue;
            }
            walk(&path, depth + 1, taken, out);
            continue;
        }
        if RUNTIME_MADE.contains(&p.as_str()) || taken.contains(&p) {
            continue;
        }
        let Ok(st) = rustix::fs::lstat(&path) else {
            continue;
        };
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFCHR => "c",
            libc::S_IFBLK => "b",
            _ => continue,
        };
        out.push(json!({"path": p, "type": kind,
            "major": rustix::fs::major(st.st_rdev), "minor": rustix::fs::minor(st.st_rdev),
            "fileMode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid}));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_host_nodes_but_not_the_standard_ones() {
        let d = super::all(&[]);
        assert!(d.iter().all(|v| v["path"] != "/dev/null"));
        if std::path::Path::new("/dev/kmsg").exists() {
            assert!(d.iter().any(|v| v["path"] == "/dev/kmsg"));
        }
    }
}
