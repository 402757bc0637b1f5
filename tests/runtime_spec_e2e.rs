//! `berth runtime` driven as the OCI runtime-tools validation suite drives a
//! runtime: the lifecycle (create -> created -> start -> running -> stopped
//! -> delete) and its errors, the state JSON, hooks with the state on stdin,
//! the pid file, and the config fields the suite checks from inside
//! (rlimits, sysctls, masked/readonly paths, additionalGids, cwd, env,
//! hostname, mounts, devices).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::berth::berth_bin;
use common::ctr::set_subreaper;
use serde_json::{json, Value};

struct Rt {
    root: tempfile::TempDir,
    bundle: tempfile::TempDir,
    config: Value,
    ids: Vec<String>,
}

fn applets() -> Vec<String> {
    let out = Command::new("/bin/busybox").arg("--list").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

impl Rt {
    fn new(args: &[&str]) -> Rt {
        set_subreaper();
        let bundle = tempfile::Builder::new()
            .prefix("berth-bundle-")
            .tempdir()
            .unwrap();
        let rootfs = bundle.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root", "mnt"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for a in applets() {
            if a != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
            }
        }
        std::fs::write(rootfs.join("etc/secret"), "top secret\n").unwrap();
        std::fs::create_dir_all(rootfs.join("etc/ro")).unwrap();
        let config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": args,
                "env": ["PATH=/bin", "HOME=/root"],
                "cwd": "/",
                "noNewPrivileges": true
            },
            "root": {"path": "rootfs"},
            "hostname": "spec-host",
            "annotations": {"org.berth.test": "yes"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
            ],
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
                "resources": {"devices": [{"allow": false, "access": "rwm"}]}
            }
        });
        let rt = Rt {
            root: tempfile::Builder::new()
                .prefix("berth-rtroot-")
                .tempdir()
                .unwrap(),
            bundle,
            config,
            ids: Vec::new(),
        };
        rt.write();
        rt
    }

    fn write(&self) {
        std::fs::write(
            self.bundle.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.arg("runtime")
            .arg("--root")
            .arg(self.root.path())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// A command whose container may outlive it: its stdout and stderr go
    /// to files (a pipe would stay open in the container).
    fn detached(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let o = self.root.path().join("out");
        let e = self.root.path().join("err");
        let st = self
            .cmd(args)
            .stdout(std::fs::File::create(&o).unwrap())
            .stderr(std::fs::File::create(&e).unwrap())
            .status()
            .unwrap();
        (
            st.code(),
            std::fs::read_to_string(&o).unwrap_or_default(),
            std::fs::read_to_string(&e).unwrap_or_default(),
        )
    }

    fn create(&mut self, id: &str, extra: &[&str]) -> (Option<i32>, String) {
        self.ids.push(id.to_string());
        let b = self.bundle.path().to_string_lossy().into_owned();
        let mut a = vec!["create", "--bundle", b.as_str()];
        a.extend_from_slice(extra);
        a.push(id);
        let (code, _, err) = self.detached(&a);
        (code, err)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args).output().unwrap();
        assert!(
            o.status.success(),
            "berth runtime {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.cmd(args).output().unwrap();
        assert!(
            !o.status.success(),
            "berth runtime {args:?} succeeded but must fail"
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    fn wait_status(&self, id: &str, want: &str) {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            reap();
            if self.state(id)["status"] == want {
                return;
            }
            assert!(Instant::now() < until, "{id} never became {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `runtime run` in the foreground: exit code and output.
    fn run(&mut self, id: &str) -> Output {
        self.ids.push(id.to_string());
        let b = self.bundle.path().to_string_lossy().into_owned();
        let o = self.cmd(&["run", "--bundle", &b, id]).output().unwrap();
        reap();
        o
    }
}

/// Reap our zombie children (container inits reparented to this subreaper).
fn reap() {
    unsafe { while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {} }
}

impl Drop for Rt {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self
                .cmd(&["delete", "--force", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        reap();
    }
}

fn unique(tag: &str) -> String {
    format!("spec-{tag}-{}", std::process::id())
}

#[test]
fn lifecycle_state_json_and_errors() {
    let mut rt = Rt::new(&["sleep", "1000"]);
    let id = unique("life");
    let pidfile = rt.root.path().join("pid");
    let pf = pidfile.to_string_lossy().into_owned();
    // Operations on a container that does not exist fail.
    for op in [
        &["state", id.as_str()][..],
        &["start", &id],
        &["kill", &id, "KILL"],
        &["delete", &id],
    ] {
        rt.fails(op);
    }
    let (code, err) = rt.create(&id, &["--pid-file", &pf]);
    assert_eq!(code, Some(0), "{err}");
    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert!(st["ociVersion"].as_str().unwrap().starts_with("1."), "{st}");
    assert_eq!(
        Path::new(st["bundle"].as_str().unwrap()),
        rt.bundle.path().canonicalize().unwrap()
    );
    assert_eq!(st["annotations"]["org.berth.test"], "yes");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );
    // The user's program has not run yet: init is still berth's.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    assert!(!exe.ends_with("busybox"), "{exe:?}");
    // A second create with the same id fails and leaves the first alone.
    let (code, _) = rt.create(&id, &[]);
    assert_ne!(code, Some(0));
    assert_eq!(rt.state(&id)["status"], "created");
    // The spec: deleting a container that is not stopped (created is not)
    // errors and has no effect.
    rt.fails(&["delete", &id]);
    rt.ok(&["start", &id]);
    let st = rt.state(&id);
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"].as_i64().unwrap(), pid);
    // start on a running container errors; so does delete without --force.
    rt.fails(&["start", &id]);
    rt.fails(&["delete", &id]);
    assert_eq!(rt.state(&id)["status"], "running");
    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    // kill of a stopped container errors and changes nothing.
    rt.fails(&["kill", &id, "KILL"]);
    rt.fails(&["start", &id]);
    assert_eq!(rt.state(&id)["status"], "stopped");
    rt.ok(&["delete", &id]);
    rt.fails(&["state", &id]);
    rt.fails(&["delete", &id]);
    assert!(
        !Path::new(&format!("/proc/{pid}/stat")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    );
}

#[test]
fn kill_on_created_and_forced_delete() {
    let mut rt = Rt::new(&["sleep", "1000"]);
    let a = unique("killc");
    let (code, err) = rt.create(&a, &[]);
    assert_eq!(code, Some(0), "{err}");
    rt.ok(&["kill", &a, "SIGKILL"]);
    rt.wait_status(&a, "stopped");
    rt.ok(&["delete", &a]);
    let b = unique("force");
    let (code, err) = rt.create(&b, &[]);
    assert_eq!(code, Some(0), "{err}");
    rt.ok(&["start", &b]);
    let pid = rt.state(&b)["pid"].as_i64().unwrap();
    rt.ok(&["delete", "--force", &b]);
    rt.fails(&["state", &b]);
    reap();
    assert!(!Path::new(&format!("/proc/{pid}/stat")).exists());
    // list shows nothing left.
    assert_eq!(rt.ok(&["list", "-q"]).trim(), "");
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    let mut rt = Rt::new(&["true"]);
    let log = rt.root.path().join("hooks.log");
    let l = log.to_string_lossy().into_owned();
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} $(cat) >> {l}")]});
    rt.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    rt.write();
    let id = unique("hooks");
    let (code, err) = rt.create(&id, &[]);
    assert_eq!(code, Some(0), "{err}");
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let names: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        ["prestart", "createRuntime", "poststart", "poststop"],
        "{text}"
    );
    for l in &lines {
        let st: Value = serde_json::from_str(l.split_once(' ').unwrap().1).unwrap();
        assert_eq!(st["id"], id.as_str(), "{l}");
        assert!(st["bundle"].as_str().unwrap().starts_with('/'), "{l}");
        assert_eq!(st["annotations"]["org.berth.test"], "yes", "{l}");
    }
    let status = |i: usize| -> String {
        let st: Value = serde_json::from_str(lines[i].split_once(' ').unwrap().1).unwrap();
        st["status"].as_str().unwrap().to_string()
    };
    // runtime-tools' hooks_stdin: prestart sees created, poststart running.
    assert_eq!(status(0), "created");
    assert_eq!(status(1), "creating");
    assert_eq!(status(2), "running");
    assert_eq!(status(3), "stopped");
    let pid_of = |i: usize| -> i64 {
        let st: Value = serde_json::from_str(lines[i].split_once(' ').unwrap().1).unwrap();
        st["pid"].as_i64().unwrap_or(0)
    };
    assert!(pid_of(0) > 0);
    assert_eq!(pid_of(0), pid_of(2));
    // A failing prestart hook fails create and leaves nothing behind.
    rt.config["hooks"] = json!({"prestart": [{"path": "/bin/false"}]});
    rt.write();
    let bad = unique("badhook");
    let (code, _) = rt.create(&bad, &[]);
    assert_ne!(code, Some(0));
    rt.fails(&["state", &bad]);
}

#[test]
fn process_and_linux_fields_seen_from_inside() {
    let mut rt = Rt::new(&[
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn; cat /proc/sys/kernel/shmmax; cat /etc/secret; touch /etc/ro/x || echo ro; \
         id -G; pwd; echo $FOO; hostname; grep ' /mnt ' /proc/mounts | cut -d' ' -f3; stat -c '%t:%T' /dev/xnull; \
         echo ok > /dev/xnull && echo devok",
    ]);
    rt.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]);
    rt.config["process"]["user"] = json!({"uid": 0, "gid": 0, "additionalGids": [5, 7]});
    rt.config["process"]["cwd"] = json!("/tmp");
    rt.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
    rt.config["linux"]["sysctl"] = json!({"kernel.shmmax": "7654321"});
    rt.config["linux"]["maskedPaths"] = json!(["/etc/secret"]);
    rt.config["linux"]["readonlyPaths"] = json!(["/etc/ro"]);
    rt.config["linux"]["devices"] = json!([{"path": "/dev/xnull", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0}]);
    rt.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    rt.write();
    let o = rt.run(&unique("fields"));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{text} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        text,
        "123\n456\n7654321\nro\n0 5 7\n/tmp\nbar\nspec-host\ntmpfs\n1:3\ndevok\n"
    );
    // A sysctl outside the container's namespaces is refused at create.
    rt.config["linux"]["sysctl"] = json!({"kernel.panic": "1"});
    rt.write();
    let id = unique("hostsysctl");
    let (code, err) = rt.create(&id, &[]);
    assert_ne!(code, Some(0));
    assert!(err.contains("not in a separate kernel namespace"), "{err}");
    // And net.* without a network namespace of its own.
    rt.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    rt.config["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]);
    rt.write();
    let id = unique("hostnet");
    let (code, err) = rt.create(&id, &[]);
    assert_ne!(code, Some(0));
    assert!(err.contains("host network namespace"), "{err}");
}

#[test]
fn run_exit_code_and_uid_gid_mappings() {
    let mut rt = Rt::new(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; exit 7",
    ]);
    rt.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    rt.config["linux"]["uidMappings"] =
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    rt.config["linux"]["gidMappings"] =
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    rt.write();
    // The rootfs must be reachable by the mapped root.
    chown_tree(&rt.bundle.path().join("rootfs"), 100000);
    let o = rt.run(&unique("userns"));
    assert_eq!(
        o.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "100000", "65536", "0", "100000", "65536", "0"],
        "{text}"
    );
}

fn chown_tree(p: &Path, id: u32) {
    let mut stack: Vec<PathBuf> = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = std::os::unix::fs::lchown(&d, Some(id), Some(id));
        if d.is_dir() && !d.is_symlink() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                stack.push(e.path());
            }
        }
    }
}

#[test]
fn console_socket_receives_the_pty_master() {
    use std::io::Read;
    let mut rt = Rt::new(&["sh", "-c", "tty; echo hello-tty"]);
    rt.config["process"]["terminal"] = json!(true);
    rt.config["mounts"].as_array_mut().unwrap().push(json!(
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}
    ));
    rt.write();
    let sock = rt.root.path().join("console.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let t = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        berth::engine::container::console::receive_fd(&s).unwrap()
    });
    let id = unique("tty");
    let s = sock.to_string_lossy().into_owned();
    let (code, err) = rt.create(&id, &["--console-socket", &s]);
    assert_eq!(code, Some(0), "{err}");
    let master = t.join().unwrap();
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped");
    let mut f = std::fs::File::from(master);
    // All of it: a single read may end after the first line (the master
    // reads EIO once the slave is closed; read_to_end keeps what it read).
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let out = String::from_utf8_lossy(&buf).to_string();
    assert!(out.starts_with("/dev/pts/0\r\n"), "{out}");
    assert!(out.contains("hello-tty"), "{out}");
    rt.ok(&["delete", &id]);
    // terminal without a console socket: a clear error.
    let (code, err) = rt.create(&unique("notty"), &[]);
    assert_ne!(code, Some(0));
    assert!(err.contains("console socket"), "{err}");
}

#[test]
fn kill_delivers_the_named_signal_to_a_trap() {
    for sig in ["TERM", "USR1", "SIGUSR2"] {
        let name = sig.trim_start_matches("SIG");
        let script = format!("trap 'touch /tmp/{name}; exit 0' {name}; sleep 10 & wait $!");
        let mut rt = Rt::new(&["sh", "-c", &script]);
        let id = unique(&format!("sig{}", name.to_lowercase()));
        let (code, err) = rt.create(&id, &[]);
        assert_eq!(code, Some(0), "{err}");
        rt.ok(&["start", &id]);
        // Give sh the moment to install its trap: a running pid 1 without a
        // handler ignores the signal.
        let until = Instant::now() + Duration::from_secs(10);
        let pid = rt.state(&id)["pid"].as_i64().unwrap();
        let signo: u32 = match name {
            "TERM" => 15,
            "USR1" => 10,
            _ => 12,
        };
        let caught = || {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("SigCgt:"))
                        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
                })
                .is_some_and(|m| m & (1 << (signo - 1)) != 0)
        };
        while !caught() {
            assert!(Instant::now() < until, "the trap for {sig} never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        rt.ok(&["kill", &id, sig]);
        rt.wait_status(&id, "stopped");
        assert!(
            rt.bundle.path().join("rootfs/tmp").join(name).exists(),
            "{sig} did not reach the trap"
        );
        rt.ok(&["delete", &id]);
    }
}
