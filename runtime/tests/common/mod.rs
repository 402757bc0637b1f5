//! Test helpers: a busybox bundle in a temp dir, a private state root, and
//! a guard that kills and deletes the container (and so its cgroups).
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use runtime::{CreateOpts, Runtime, Stdio};
use serde_json::{json, Value};

static N: AtomicU32 = AtomicU32::new(0);

pub fn unique_id(tag: &str) -> String {
    format!(
        "rt-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn docker_caps() -> Vec<String> {
    runtime::defaults::DOCKER_CAPABILITIES
        .iter()
        .map(|c| {
            serde_json::to_value(c)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    /// A rootfs with Debian's static busybox and one symlink per applet.
    pub fn new(id: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        let out = std::process::Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .unwrap();
        for a in String::from_utf8_lossy(&out.stdout).lines() {
            if a != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
            }
        }
        let caps = docker_caps();
        let set: HashSet<oci_spec::runtime::Capability> = runtime::defaults::DOCKER_CAPABILITIES
            .iter()
            .copied()
            .collect();
        let seccomp =
            serde_json::to_value(runtime::seccomp::docker_default("amd64", &set)).unwrap();
        let config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": args,
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"],
                "cwd": "/",
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024}],
                "noNewPrivileges": true
            },
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "berthtest",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}
            ],
            "linux": {
                "cgroupsPath": format!("berth-test-{id}"),
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
                "seccomp": seccomp,
                "maskedPaths": runtime::defaults::MASKED_PATHS,
                "readonlyPaths": runtime::defaults::READONLY_PATHS
            }
        });
        let b = Bundle { dir, config };
        b.write();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn write(&self) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.config);
        self.write();
    }
}

/// Kills and deletes the container on drop, also when the test fails.
pub struct Guard {
    pub rt: Runtime,
    pub id: String,
    _root: tempfile::TempDir,
}

impl Guard {
    pub fn new(id: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        Guard {
            rt: Runtime::new(root.path().join("state")),
            id: id.to_string(),
            _root: root,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.rt.delete(&self.id, true);
    }
}

pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Create with stdout+stderr into a pipe; returns (pid, reader).
pub fn create_captured(g: &Guard, b: &Bundle) -> Result<(i32, std::fs::File), runtime::Error> {
    let (r, w) = pipe();
    let null = std::fs::File::open("/dev/null").unwrap();
    let opts = CreateOpts {
        stdio: Stdio::Fds([null.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()]),
        ..Default::default()
    };
    let st = g.rt.create(&g.id, b.path(), &opts)?;
    drop(w);
    Ok((st.pid, std::fs::File::from(r)))
}

/// Create, start, wait: (exit code, output).
pub fn run_captured(g: &Guard, b: &Bundle) -> (i32, String) {
    let (pid, mut r) = create_captured(g, b).unwrap();
    g.rt.start(&g.id).unwrap();
    let mut out = String::new();
    r.read_to_string(&mut out).unwrap();
    let code = runtime::wait(pid);
    (code, out)
}
