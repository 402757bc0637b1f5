//! Programs that check config.json fields from inside the container (runtimetest's checks, oci_validation/inside.rs), and the configs that must fail.

use serde_json::json;

use super::inside_validate;
use super::lab::{Lab, Tap};
use crate::common;

/// runtimetest on runtime-tools' default config.
#[test]
fn default() {
    let mut lab = Lab::new();
    let b = lab.bundle(&["true"]);
    inside_validate("default", &mut lab, b);
}

#[test]
fn hostname() {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    b.config["hostname"] = json!("hostname-specific");
    inside_validate("hostname", &mut lab, b);
}

#[test]
fn linux_sysctl() {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    b.config["linux"]["sysctl"] =
        json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "8589934592", "kernel.msgmax": "8192"});
    inside_validate("linux_sysctl", &mut lab, b);
}

#[test]
fn process_rlimits() {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    // runtime-tools' values; each is within this host's hard limits
    // (raising a hard limit needs CAP_SYS_RESOURCE, which this machine
    // does not give even to root).
    let g: u64 = 1024 * 1024 * 1024;
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_AS", "hard": 2 * g, "soft": g},
        {"type": "RLIMIT_CORE", "hard": 4 * g, "soft": 3 * g},
        {"type": "RLIMIT_DATA", "hard": 6 * g, "soft": 5 * g},
        {"type": "RLIMIT_FSIZE", "hard": 8 * g, "soft": 7 * g},
        {"type": "RLIMIT_STACK", "hard": 10 * g, "soft": 9 * g},
        {"type": "RLIMIT_CPU", "hard": 120, "soft": 60},
        {"type": "RLIMIT_NOFILE", "hard": 4000, "soft": 3000}
    ]);
    inside_validate("process_rlimits", &mut lab, b);
}

#[test]
fn process() {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    std::fs::create_dir_all(b.dir.join("test")).unwrap();
    b.config["process"]["cwd"] = json!("/test");
    b.config["process"]["env"]
        .as_array_mut()
        .unwrap()
        .extend([json!("testa=valuea"), json!("testb=123")]);
    inside_validate("process", &mut lab, b);
}

#[test]
fn process_oom_score_adj() {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    b.config["process"]["oomScoreAdj"] = json!(500);
    inside_validate("process_oom_score_adj", &mut lab, b);
}

#[test]
fn process_capabilities() {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    let caps = json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"]);
    b.config["process"]["capabilities"] = json!({
        "bounding": caps, "permitted": caps, "effective": caps, "inheritable": [], "ambient": []
    });
    b.config["process"]["noNewPrivileges"] = json!(true);
    inside_validate("process_capabilities", &mut lab, b);
}

#[test]
fn process_capabilities_fail() {
    let mut t = Tap::new("process_capabilities_fail");
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_TEST"]);
    let id = lab.id("capfail");
    b.config["linux"]["cgroupsPath"] = json!(format!("/{id}"));
    b.write();
    let o = lab.create(&b, &id, None);
    t.ok(!o.ok, "an unknown capability MUST generate an error", &o);
    // runtime.md: if the container cannot be created as specified, a new
    // container MUST NOT be created.
    t.ok(!lab.rt(&["state", &id]).ok, "no container was created", "");
    let left = common::cgroupfs::leftovers(std::slice::from_ref(&id));
    t.ok(
        left.is_empty(),
        "no cgroup of it is left",
        format!("{left:?}"),
    );
    let state_dir = lab.dir.path().join("state").join(&id);
    t.ok(
        !state_dir.exists(),
        "no state of it is left",
        state_dir.display(),
    );
    t.finish();
}

#[test]
fn process_user() {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    b.config["process"]["user"] = json!({"uid": 10, "gid": 10, "additionalGids": [5], "umask": 2});
    inside_validate("process_user", &mut lab, b);
}

/// Nested paths (a masked directory holding more masked paths), a file,
/// device nodes of each kind, absent paths; then runtime-tools' relative
/// path, which must be an error.
fn paths_program(name: &'static str, field: &str) {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    let d = b.dir.clone();
    std::fs::create_dir_all(d.join("p-dir/p-subdir")).unwrap();
    std::fs::write(d.join("p-dir/p-subdir/p-file"), "secrets").unwrap();
    std::fs::write(d.join("p-dir/p-file"), "secrets").unwrap();
    std::fs::write(d.join("p-file"), "secrets").unwrap();
    let mut paths = vec![
        "/p-dir",
        "/p-file",
        "/p-dir/p-subdir",
        "/p-dir/p-file",
        "/p-dir/p-subdir/p-file",
        "/nonexistent",
    ];
    for (node, kind) in [
        ("p-blk", libc::S_IFBLK),
        ("p-chr", libc::S_IFCHR),
        ("p-fifo", libc::S_IFIFO),
    ] {
        let c = std::ffi::CString::new(d.join(node).as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mknod of a path we own, device 0:0.
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), kind | 0o666, 0) }, 0);
    }
    paths.extend(["/p-blk", "/p-chr", "/p-fifo"]);
    b.config["linux"][field] = json!(paths);
    inside_validate(name, &mut lab, b);

    let mut t = Tap::new(name);
    let mut b = lab.bundle(&["true"]);
    b.config["linux"][field] = json!(["p-relpath"]);
    b.write();
    let r = lab.run_to_stop(&b, "relpath");
    t.ok(
        r.is_err(),
        &format!("a relative path in linux.{field} is an error"),
        format!("{r:?}"),
    );
    t.finish();
}

#[test]
fn linux_masked_paths() {
    paths_program("linux_masked_paths", "maskedPaths");
}

#[test]
fn linux_readonly_paths() {
    paths_program("linux_readonly_paths", "readonlyPaths");
}

#[test]
fn root_readonly_true() {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    b.config["root"]["readonly"] = json!(true);
    inside_validate("root_readonly_true", &mut lab, b);
}

#[test]
fn process_rlimits_fail() {
    let mut t = Tap::new("process_rlimits_fail");
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_TEST", "hard": 1024, "soft": 1024}]);
    b.write();
    let r = lab.run_to_stop(&b, "rlfail");
    t.ok(r.is_err(), "the runtime MUST generate an error for rlimits which cannot be mapped to a kernel interface", format!("{r:?}"));
    t.finish();
}

/// linux_process without its AppArmor profile and SELinux label (see
/// EXCLUDED): oomScoreAdj, noNewPrivileges and a privileged setup (all
/// capabilities, no seccomp).
#[test]
fn linux_process() {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.config["process"]["noNewPrivileges"] = json!(true);
    // Every capability this test process has: this machine withholds
    // CAP_SYS_RESOURCE even from root.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    let bnd = u64::from_str_radix(bnd, 16).unwrap();
    let all: Vec<&str> = super::inside::CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| bnd & (1 << i) != 0)
        .map(|(_, c)| *c)
        .collect();
    b.config["process"]["capabilities"] = json!({
        "bounding": all, "permitted": all, "effective": all, "inheritable": all, "ambient": all
    });
    inside_validate("linux_process", &mut lab, b);
}

#[test]
fn linux_seccomp() {
    let mut t = Tap::new("linux_seccomp");
    let mut lab = Lab::new();
    // /bin/pwd is busybox's applet, which asks the kernel (getcwd).
    let mut b = lab.bundle(&["sh", "-c", "if /bin/pwd >/dev/null 2>&1; then echo allowed; else echo denied; fi; cat /proc/$$/status | grep Seccomp:"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
    });
    b.write();
    let r = lab.run_to_stop(&b, "seccomp");
    let out = r.clone().unwrap_or_default();
    t.ok(
        out.starts_with("denied"),
        "a syscall with action SCMP_ACT_ERRNO fails",
        format!("{r:?}"),
    );
    t.ok(
        out.contains("Seccomp:\t2"),
        "the process runs under a seccomp filter",
        format!("{r:?}"),
    );
    t.finish();
}

#[test]
fn linux_devices() {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/file1", "type": "c", "major": 1, "minor": 3, "fileMode": 0o644, "uid": 0, "gid": 0},
        {"path": "/dev/file2", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 1, "gid": 2},
        {"path": "/dev/file3", "type": "p", "fileMode": 0o640}
    ]);
    inside_validate("linux_devices", &mut lab, b);
}

#[test]
fn linux_uid_mappings() {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 3200}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 3200}]);
    // The container's root is host uid 1000: it owns its rootfs, as it
    // would with an engine that shifts the image's ownership.
    let o = std::process::Command::new("chown")
        .args(["-hR", "1000:1000"])
        .arg(&b.dir)
        .status()
        .unwrap();
    assert!(o.success());
    inside_validate("linux_uid_mappings", &mut lab, b);
}

#[test]
fn mounts() {
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    std::fs::create_dir_all(b.dir.join("bind-src")).unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=1k"]}));
    mounts.push(json!({"destination": "/tmp/tmpfs-test", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=700"]}));
    mounts.push(json!({"destination": "/mnt/bind", "type": "bind", "source": b.dir.join("bind-src"), "options": ["rbind", "ro"]}));
    inside_validate("mounts", &mut lab, b);
}

/// runtimetest's check: bind `/` recursively elsewhere, mount something
/// under `/`, and see whether it shows in the copy (shared) or not
/// (slave, private); an unbindable `/` cannot be bound at all.
#[test]
fn linux_rootfs_propagation() {
    let mut t = Tap::new("linux_rootfs_propagation");
    let mut lab = Lab::new();
    let probe = "mkdir -p /target /mnt1 /test && touch /test/example && \
        if ! mount --rbind / /target 2>/dev/null; then echo unbindable; exit 0; fi; \
        mount --bind /test /mnt1 && \
        if [ -e /target/mnt1/example ]; then echo propagated; else echo not-propagated; fi";
    for (prop, want) in [
        ("shared", "propagated"),
        ("slave", "not-propagated"),
        ("private", "not-propagated"),
        ("unbindable", "unbindable"),
    ] {
        let mut b = lab.bundle(&["sh", "-c", probe]);
        b.config["linux"]["rootfsPropagation"] = json!(prop);
        // Mounting needs CAP_SYS_ADMIN, which the default config lacks.
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_ADMIN"));
        }
        b.write();
        let r = lab.run_to_stop(&b, "prop");
        t.ok(
            r.as_deref().map(str::trim) == Ok(want),
            &format!("rootfsPropagation {prop}: a new mount under / is {want}"),
            format!("{r:?}"),
        );
    }
    t.finish();
}
