//! End-to-end tests of the runtime library as root on the real kernel.

mod common;

use std::io::Read;
use std::os::fd::AsRawFd;

use common::*;
use runtime::{ExecOpts, Status, Stdio};
use serde_json::json;

#[test]
fn lifecycle_transitions_and_errors() {
    let id = unique_id("life");
    let b = Bundle::new(&id, &["sleep", "30"]);
    let g = Guard::new(&id);
    let (pid, _r) = create_captured(&g, &b).unwrap();
    let st = g.rt.state(&id).unwrap();
    assert_eq!(st.status, Status::Created);
    assert_eq!(st.pid, pid);
    assert_eq!(st.id, id);
    // The user process has not run yet: init is still our runtime code.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sleep");
    assert!(
        g.rt.create(&id, b.path(), &Default::default()).is_err(),
        "duplicate id must fail"
    );

    g.rt.start(&id).unwrap();
    assert_eq!(g.rt.state(&id).unwrap().status, Status::Running);
    let e = g.rt.start(&id).unwrap_err().to_string();
    assert!(e.contains("running"), "{e}");
    let e = g.rt.delete(&id, false).unwrap_err().to_string();
    assert!(e.contains("not stopped"), "{e}");
    assert_eq!(g.rt.ps(&id).unwrap(), vec![pid]);

    g.rt.pause(&id).unwrap();
    assert_eq!(g.rt.state(&id).unwrap().status, Status::Paused);
    g.rt.resume(&id).unwrap();
    assert_eq!(g.rt.state(&id).unwrap().status, Status::Running);

    g.rt.kill(&id, libc::SIGKILL, false).unwrap();
    assert_eq!(runtime::wait(pid), 128 + libc::SIGKILL);
    let st = g.rt.state(&id).unwrap();
    assert_eq!(st.status, Status::Stopped);
    assert!(g.rt.kill(&id, libc::SIGTERM, false).is_err());
    let list = g.rt.list().unwrap();
    assert_eq!(list.len(), 1);
    let cg = g.rt.cgroup(&id).unwrap();
    g.rt.delete(&id, false).unwrap();
    assert!(g.rt.state(&id).is_err());
    for d in cg.created {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
}

#[test]
fn exit_codes() {
    for (cmd, want, msg) in [
        (vec!["true"], 0, ""),
        (vec!["sh", "-c", "exit 3"], 3, ""),
        (
            vec!["nosuchcmd"],
            127,
            "exec: \"nosuchcmd\": executable file not found in $PATH",
        ),
        (vec!["/etc/notexec"], 126, "permission denied"),
    ] {
        let id = unique_id("exit");
        let b = Bundle::new(&id, &cmd);
        std::fs::write(b.rootfs().join("etc/notexec"), "data").unwrap();
        let g = Guard::new(&id);
        let (code, out) = run_captured(&g, &b);
        assert_eq!(code, want, "{cmd:?}: {out}");
        assert!(out.contains(msg), "{cmd:?}: {out}");
    }
}

#[test]
fn namespaces_are_isolated() {
    let id = unique_id("ns");
    let mut b = Bundle::new(&id, &["sh", "-c", "echo pid=$$; hostname; readlink /proc/self/ns/mnt; ls /; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"]);
    // docker's default: no_new_privs off, so seccomp is loaded while init
    // still has CAP_SYS_ADMIN, before the user and capabilities change.
    b.edit(|c| c["process"]["noNewPrivileges"] = json!(false));
    let g = Guard::new(&id);
    let (code, out) = run_captured(&g, &b);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains("berthtest\n"), "{out}");
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert!(
        !out.contains(&host_mnt.to_string_lossy().to_string()),
        "{out}"
    );
    // pivot_root: the old root is gone, only the rootfs is visible.
    assert!(!out.contains("usr\n") && out.contains("bin\n"), "{out}");
    assert!(out.contains("NoNewPrivs:\t0\nSeccomp:\t2"), "{out}");
}

#[test]
fn pivot_root_hides_the_host() {
    let id = unique_id("pivot");
    let b = Bundle::new(
        &id,
        &[
            "sh",
            "-c",
            "cat /proc/self/mountinfo; ls /proc/1/root/ ; ls -d /tmp/*",
        ],
    );
    let marker = b.path().to_string_lossy().to_string();
    let g = Guard::new(&id);
    let (_, out) = run_captured(&g, &b);
    let root_line = out
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    assert!(root_line.contains(&format!("{marker}/rootfs")), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.split(' ').nth(4) == Some("/"))
            .count(),
        1,
        "{out}"
    );
}

#[test]
fn docker_security_defaults() {
    let id = unique_id("sec");
    let b = Bundle::new(
        &id,
        &["sh", "-c", "grep -E 'CapEff|CapBnd|NoNewPrivs|Seccomp:' /proc/self/status; unshare -m true; echo unshare=$?; \
           wc -c < /proc/kcore; echo 1 > /proc/sys/kernel/ns_last_pid; echo sys=$?; ls -1 /proc/$$/fd; ulimit -n; ulimit -Hn"],
    );
    // A host fd the caller forgot to mark close-on-exec must not leak in.
    let leaky = std::fs::File::open("/").unwrap();
    unsafe { libc::fcntl(leaky.as_raw_fd(), libc::F_SETFD, 0) };
    let g = Guard::new(&id);
    let (code, out) = run_captured(&g, &b);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(
        out.contains("Operation not permitted") && out.contains("unshare=1"),
        "{out}"
    );
    assert!(
        out.contains("\n0\n"),
        "masked /proc/kcore must be empty: {out}"
    );
    assert!(
        out.contains("Read-only file system") && out.contains("sys=1"),
        "{out}"
    );
    // Only stdio reaches the container.
    assert!(out.contains("0\n1\n2\n1024\n2048\n"), "{out}");
}

#[test]
fn rlimit_above_hard_limit_is_refused_clearly() {
    let id = unique_id("rlim");
    let mut b = Bundle::new(&id, &["true"]);
    let hard = runtime::rlimit::current_hard(libc::RLIMIT_NOFILE);
    b.edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": hard + 1, "soft": 1024}])
    });
    let g = Guard::new(&id);
    let res = g.rt.create(&id, b.path(), &Default::default());
    if has_cap_sys_resource() {
        eprintln!("skipped: this process may raise RLIMIT_NOFILE (CAP_SYS_RESOURCE)");
        return;
    }
    let e = res.unwrap_err().to_string();
    assert!(
        e.contains("RLIMIT_NOFILE") && e.contains(&format!("allowed maximum {hard}")),
        "{e}"
    );
}

fn has_cap_sys_resource() -> bool {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = s.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap();
    u64::from_str_radix(eff.trim(), 16).unwrap() & (1 << 24) != 0
}

#[test]
fn memory_limit_and_oom_kill() {
    let id = unique_id("oom");
    let mut b = Bundle::new(
        &id,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    b.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 16777216, "swap": 16777216}));
    let g = Guard::new(&id);
    let (pid, _r) = create_captured(&g, &b).unwrap();
    let cg = g.rt.cgroup(&id).unwrap();
    let mem = cg.dirs.get("memory").or(cg.dirs.get("")).unwrap().clone();
    let f = if cg.version == 1 {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    assert_eq!(
        std::fs::read_to_string(mem.join(f)).unwrap().trim(),
        "16777216"
    );
    g.rt.start(&id).unwrap();
    let code = runtime::wait(pid);
    assert_eq!(code, 137);
    assert!(g.rt.oom_kills(&id).unwrap() >= 1);
}

#[test]
fn pids_limit_stops_a_fork_bomb_and_cpu_quota_is_written() {
    let id = unique_id("pids");
    let mut b = Bundle::new(
        &id,
        &[
            "sh",
            "-c",
            "for i in $(seq 1 30); do sleep 2 & done; wait; echo done",
        ],
    );
    b.edit(|c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 10});
        c["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000, "shares": 512});
    });
    let g = Guard::new(&id);
    let (pid, mut r) = create_captured(&g, &b).unwrap();
    let cg = g.rt.cgroup(&id).unwrap();
    if cg.version == 1 {
        assert_eq!(
            std::fs::read_to_string(cg.dirs["pids"].join("pids.max"))
                .unwrap()
                .trim(),
            "10"
        );
        assert_eq!(
            std::fs::read_to_string(cg.dirs["cpu"].join("cpu.cfs_quota_us"))
                .unwrap()
                .trim(),
            "50000"
        );
        assert_eq!(
            std::fs::read_to_string(cg.dirs["cpu"].join("cpu.shares"))
                .unwrap()
                .trim(),
            "512"
        );
    }
    g.rt.start(&id).unwrap();
    let mut out = String::new();
    r.read_to_string(&mut out).unwrap();
    runtime::wait(pid);
    assert!(out.contains("can't fork"), "{out}");
}

#[test]
fn cwd_through_a_leaked_fd_is_refused() {
    let id = unique_id("cwd");
    let mut b = Bundle::new(&id, &["pwd"]);
    // A host directory fd, passed on purpose with preserve_fds (as a careless
    // engine might leak one), named as the cwd.
    let host_dir = std::fs::File::open("/").unwrap();
    let n = host_dir.as_raw_fd();
    unsafe { libc::fcntl(n, libc::F_SETFD, 0) };
    b.edit(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{n}")));
    let g = Guard::new(&id);
    let opts = runtime::CreateOpts {
        preserve_fds: (n - 2) as u32,
        ..Default::default()
    };
    let e = g.rt.create(&id, b.path(), &opts).unwrap_err().to_string();
    assert!(e.contains("outside of the container's root"), "{e}");
}

#[test]
fn symlinked_etc_cannot_redirect_a_mount_to_the_host() {
    let id = unique_id("link");
    let mut b = Bundle::new(&id, &["cat", "/etc/hostname"]);
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("hostname"), "HOST\n").unwrap();
    std::fs::remove_dir(b.rootfs().join("etc")).unwrap();
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("etc")).unwrap();
    std::fs::write(b.path().join("hostname"), "CONTAINER\n").unwrap();
    let src = b.path().join("hostname").to_string_lossy().to_string();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/etc/hostname", "type": "bind", "source": src, "options": ["rbind", "ro"]}))
    });
    let g = Guard::new(&id);
    let res = create_captured(&g, &b);
    // Whatever the outcome, the host's file is untouched and unmounted.
    assert_eq!(
        std::fs::read_to_string(host.path().join("hostname")).unwrap(),
        "HOST\n"
    );
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(&host.path().to_string_lossy().to_string()));
    if let Ok((pid, mut r)) = res {
        g.rt.start(&id).unwrap();
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        runtime::wait(pid);
        assert_eq!(out, "CONTAINER\n");
        assert!(b
            .rootfs()
            .join(host.path().strip_prefix("/").unwrap())
            .join("hostname")
            .exists());
    }
}

#[test]
fn exec_joins_namespaces_and_cgroup() {
    let id = unique_id("exec");
    let b = Bundle::new(&id, &["sleep", "30"]);
    let g = Guard::new(&id);
    let (pid, _r) = create_captured(&g, &b).unwrap();
    g.rt.start(&id).unwrap();
    let mut p: oci_spec::runtime::Process =
        serde_json::from_value(b.config["process"].clone()).unwrap();
    p.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "hostname; [ $(readlink /proc/1/ns/pid) = $(readlink /proc/self/ns/pid) ] && echo samepid; cat /proc/1/cmdline; echo; grep memory /proc/self/cgroup".into(),
    ]));
    let (r, w) = pipe();
    let null = std::fs::File::open("/dev/null").unwrap();
    let opts = ExecOpts {
        stdio: Stdio::Fds([null.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()]),
        ..Default::default()
    };
    let epid = g.rt.exec(&id, &p, &opts).unwrap();
    drop(w);
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    assert_eq!(runtime::wait(epid), 0, "{out}");
    assert!(out.contains("berthtest\nsamepid\nsleep"), "{out}");
    // The exec'ed process was in the container's cgroup (a cgroup namespace
    // makes it show as the root there).
    assert!(out.contains(":memory:/\n"), "{out}");
    g.rt.kill(&id, libc::SIGKILL, true).unwrap();
    runtime::wait(pid);
}

#[test]
fn hooks_get_the_state_on_stdin() {
    let id = unique_id("hook");
    let mut b = Bundle::new(&id, &["true"]);
    let out = b.path().join("hook.out");
    let o = out.to_string_lossy().to_string();
    b.edit(|c| {
        c["hooks"] = json!({
            "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {o}.prestart")]}],
            "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {o}.poststop")]}]
        })
    });
    let g = Guard::new(&id);
    let (code, _) = run_captured(&g, &b);
    assert_eq!(code, 0);
    g.rt.delete(&id, false).unwrap();
    let pre: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{o}.prestart")).unwrap()).unwrap();
    assert_eq!(pre["id"], id.as_str());
    // runtime-tools' hooks_stdin validation expects "created" here.
    assert_eq!(pre["status"], "created");
    assert!(pre["pid"].as_i64().unwrap() > 0);
    let post: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{o}.poststop")).unwrap()).unwrap();
    assert_eq!(post["status"], "stopped");
}

/// CVE-2019-5736: while the container's init is still the runtime's code
/// (created, not started), its /proc/<pid>/exe is the host binary; a
/// container process must not be able to open it.
#[test]
fn host_binary_is_unreachable_through_proc_exe() {
    let id = unique_id("exe");
    let b = Bundle::new(&id, &["true"]);
    let g = Guard::new(&id);
    let (pid, _r) = create_captured(&g, &b).unwrap();
    let host_exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(host_exe, std::env::current_exe().unwrap());
    let mut p: oci_spec::runtime::Process =
        serde_json::from_value(b.config["process"].clone()).unwrap();
    p.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "readlink /proc/1/exe; echo readlink=$?; cat /proc/1/exe > /dev/null; echo cat=$?".into(),
    ]));
    let (r, w) = pipe();
    let null = std::fs::File::open("/dev/null").unwrap();
    let opts = ExecOpts {
        stdio: Stdio::Fds([null.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()]),
        ..Default::default()
    };
    let epid = g.rt.exec(&id, &p, &opts).unwrap();
    drop(w);
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    runtime::wait(epid);
    assert!(out.contains("readlink=1") && out.contains("cat=1"), "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    g.rt.kill(&id, libc::SIGKILL, false).unwrap();
    runtime::wait(pid);
}
