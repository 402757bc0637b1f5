//! How the OCI runtime-tools validation programs drive a runtime, rebuilt
//! for berth: a `RUNTIME` wrapper (`berth runtime --root <private dir>`),
//! bundles whose rootfs is the bundle directory itself (`root.path` "."),
//! the default config of runtime-tools' generator, `create`'s stdout and
//! stderr in files the container inherits, and TAP output per program.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::berth::berth_bin;
use crate::common::ctr::set_subreaper;

/// How long a program waits for a status. Generous: a loaded CI machine
/// is slow, and only a failure waits this long.
pub const T: Duration = Duration::from_secs(30);

/// The 14 capabilities runtime-tools' generator puts in every set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// TAP output of one validation program; `finish` fails the test when any
/// assertion failed.
pub struct Tap {
    name: &'static str,
    n: usize,
    failed: Vec<String>,
}

impl Tap {
    pub fn new(name: &'static str) -> Tap {
        println!("TAP version 13\n# {name}");
        Tap {
            name,
            n: 0,
            failed: vec![],
        }
    }

    pub fn ok(&mut self, pass: bool, desc: &str, diag: impl std::fmt::Display) {
        self.n += 1;
        if pass {
            println!("ok {} - {desc}", self.n);
        } else {
            println!("not ok {} - {desc}\n  ---\n  {diag}\n  ...", self.n);
            self.failed.push(format!("{desc}: {diag}"));
        }
    }

    pub fn finish(self) {
        println!("1..{}", self.n);
        assert!(self.n > 0, "{}: no assertion ran", self.name);
        assert!(
            self.failed.is_empty(),
            "{}: {} of {} failed:\n{}",
            self.name,
            self.failed.len(),
            self.n,
            self.failed.join("\n")
        );
    }
}

/// What one runtime command did.
pub struct Out {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}, stderr {:?}", self.code, self.stderr.trim())
    }
}

/// A private runtime root, the wrapper that points the runtime at it, and
/// everything to remove afterwards (containers, cgroups the test made).
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub runtime: PathBuf,
    ids: Vec<String>,
    pub cgroups: Vec<PathBuf>,
    calls: AtomicUsize,
}

pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    pub fn write(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    pub fn path(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }
}

fn applets() -> Vec<String> {
    let out = Command::new("/bin/busybox").arg("--list").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// runtime-tools' `generate.New("linux")` with `SetRootPath(".")`.
pub fn default_config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "root": {"path": ".", "readonly": false},
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS, "permitted": DEFAULT_CAPS,
                "inheritable": DEFAULT_CAPS, "effective": DEFAULT_CAPS,
                "ambient": DEFAULT_CAPS
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
        },
        "hostname": "mrsdalloway",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

impl Lab {
    pub fn new() -> Lab {
        set_subreaper();
        let dir = tempfile::Builder::new()
            .prefix("berth-ocival-")
            .tempdir()
            .unwrap();
        // The wrapper scripts/oci-validation.sh writes for runtime-tools'
        // own programs: the suite drives berth through it too.
        let out = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/oci-validation.sh"
        ))
        .arg("--wrapper")
        .arg(dir.path())
        .arg(dir.path().join("state"))
        .env("BERTH", berth_bin())
        .output()
        .unwrap();
        assert!(out.status.success(), "{out:?}");
        let runtime = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Lab {
            dir,
            runtime,
            ids: vec![],
            cgroups: vec![],
            calls: AtomicUsize::new(0),
        }
    }

    /// A fresh bundle (util.PrepareBundle): busybox and its applets in the
    /// bundle directory, which is also the rootfs.
    pub fn bundle(&self, args: &[&str]) -> Bundle {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.path().join(format!("bundle{n}"));
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
        for a in applets() {
            if a != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(a));
            }
        }
        let b = Bundle {
            dir,
            config: default_config(args),
        };
        b.write();
        b
    }

    /// A container id unique on this machine (names in cgroup paths too).
    pub fn id(&mut self, tag: &str) -> String {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let id = format!("ocival-{tag}-{}-{n}", std::process::id());
        self.ids.push(id.clone());
        id
    }

    /// Run the wrapper. Output goes to files: a container started by
    /// `create` inherits them and would hold a pipe open.
    pub fn rt(&self, args: &[&str]) -> Out {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let o = self.dir.path().join(format!("out{n}"));
        let e = self.dir.path().join(format!("err{n}"));
        let st = Command::new(&self.runtime)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&o).unwrap())
            .stderr(std::fs::File::create(&e).unwrap())
            .status()
            .unwrap();
        reap();
        let out = Out {
            ok: st.success(),
            code: st.code(),
            stdout: std::fs::read_to_string(&o).unwrap_or_default(),
            stderr: std::fs::read_to_string(&e).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(&o);
        let _ = std::fs::remove_file(&e);
        out
    }

    /// `create --bundle B [--pid-file P] ID`; the container's stdout and
    /// stderr are the bundle's `stdout` and `stderr` files.
    pub fn create(&self, b: &Bundle, id: &str, pid_file: Option<&Path>) -> Out {
        let mut args = vec!["create".to_string()];
        if let Some(p) = pid_file {
            args.push("--pid-file".into());
            args.push(p.to_string_lossy().into_owned());
        }
        args.extend(["--bundle".into(), b.path(), id.into()]);
        let st = Command::new(&self.runtime)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(b.dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(b.dir.join("stderr")).unwrap())
            .status()
            .unwrap();
        reap();
        Out {
            ok: st.success(),
            code: st.code(),
            stdout: String::new(),
            stderr: std::fs::read_to_string(b.dir.join("stderr")).unwrap_or_default(),
        }
    }

    pub fn state(&self, id: &str) -> Result<Value, String> {
        let o = self.rt(&["state", id]);
        if !o.ok {
            return Err(o.to_string());
        }
        serde_json::from_str(&o.stdout).map_err(|e| format!("state JSON {:?}: {e}", o.stdout))
    }

    /// The container's pid from `state`, 0 when there is none.
    pub fn pid(&self, id: &str) -> i64 {
        self.state(id)
            .ok()
            .and_then(|s| s["pid"].as_i64())
            .unwrap_or(0)
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)
            .ok()
            .and_then(|s| s["status"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// util.WaitingForStatus: poll `state` until the status is one of `want`.
    pub fn wait_status(&self, id: &str, want: &[&str], timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            let s = self.status(id);
            if want.contains(&s.as_str()) {
                return true;
            }
            if Instant::now() > until || s.is_empty() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// util.RuntimeInsideValidate without the runtimetest binary: create,
    /// start, wait for the stop, delete; the container's stdout.
    pub fn run_to_stop(&mut self, b: &Bundle, tag: &str) -> Result<String, String> {
        let id = self.id(tag);
        let o = self.create(b, &id, None);
        if !o.ok {
            return Err(format!("create: {o}"));
        }
        let o = self.rt(&["start", &id]);
        if !o.ok {
            return Err(format!("start: {o}"));
        }
        if !self.wait_status(&id, &["stopped"], Duration::from_secs(20)) {
            return Err(format!("{id} did not stop"));
        }
        let o = self.rt(&["delete", &id]);
        if !o.ok {
            return Err(format!("delete: {o}"));
        }
        Ok(std::fs::read_to_string(b.dir.join("stdout")).unwrap_or_default())
    }
}

/// Reap container inits reparented to this test (its subreaper).
pub fn reap() {
    // SAFETY: reaping our own zombie children.
    unsafe { while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {} }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = Command::new(&self.runtime)
                .args(["delete", "--force", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        reap();
        for c in self.cgroups.iter().rev() {
            let _ = std::fs::remove_dir(c);
        }
    }
}
