//! `run` flags of issue 3 not covered by containers_e2e.rs, each proven from
//! inside the container or from its cgroup on the host, plus docker's error
//! paths for invalid values. Every test has its own --root and registry.

mod common;

use std::time::Duration;

use common::cgroupfs;
use common::ctr::{assert_clean, err, out, Env};
use common::image::ImageBuilder;

fn pid_of(e: &Env, c: &str) -> i32 {
    e.inspect(c, "{{.State.Pid}}").parse().unwrap()
}

#[test]
fn cpu_flags_are_written_and_cpus_throttles() {
    let e = Env::new();
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--cpus",
        "0.5",
        "-c",
        "512",
        &e.image,
        "sh",
        "-c",
        // Six busy loops want six CPUs: the 0.5 quota throttles them even
        // on a machine busy with other work.
        "for i in 1 2 3 4 5; do (while :; do :; done) & done; while :; do :; done",
    ]);
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "pin",
        "--cpuset-cpus",
        "0",
        &e.image,
        "sleep",
        "1000",
    ]);
    let pin = pid_of(&e, "pin");
    let pid = pid_of(&e, "busy");
    assert_eq!(
        e.inspect("busy", "{{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}}"),
        "500000000 512"
    );
    assert_eq!(e.inspect("pin", "{{.HostConfig.CpusetCpus}}"), "0");
    let dirs = cgroupfs::cgroup_dirs(pid);
    if dirs.contains_key("cpu") {
        assert_eq!(
            cgroupfs::read(pid, "cpu", "cpu.cfs_quota_us").as_deref(),
            Some("50000")
        );
        assert_eq!(
            cgroupfs::read(pid, "cpu", "cpu.cfs_period_us").as_deref(),
            Some("100000")
        );
        assert_eq!(
            cgroupfs::read(pid, "cpu", "cpu.shares").as_deref(),
            Some("512")
        );
        assert_eq!(
            cgroupfs::read(pin, "cpuset", "cpuset.cpus").as_deref(),
            Some("0")
        );
    } else {
        assert_eq!(
            cgroupfs::read(pid, "unified", "cpu.max").as_deref(),
            Some("50000 100000")
        );
        assert_eq!(
            cgroupfs::read(pin, "unified", "cpuset.cpus").as_deref(),
            Some("0")
        );
    }
    // The busy loop is throttled again and again.
    let ctrl = if dirs.contains_key("cpu") {
        "cpu"
    } else {
        "unified"
    };
    let throttled = || {
        cgroupfs::read(pid, ctrl, "cpu.stat")
            .and_then(|s| cgroupfs::stat_field(&s, "nr_throttled"))
            .unwrap_or(0)
    };
    e.wait_for("first throttling", || throttled() > 0);
    let first = throttled();
    e.wait_for("more throttling", || throttled() > first);
    // The container sees its own cpuset.
    let o = e.b.ok(&[
        "exec",
        "pin",
        "sh",
        "-c",
        "grep Cpus_allowed_list /proc/self/status",
    ]);
    assert!(o.trim().ends_with("\t0"), "{o}");
    let id = e.inspect("busy", "{{.Id}}");
    assert!(!cgroupfs::leftovers(std::slice::from_ref(&id)).is_empty());
    e.b.ok(&["rm", "-f", "busy"]);
    let left = cgroupfs::leftovers(&[id]);
    assert!(left.is_empty(), "cgroup dirs left after rm -f: {left:?}");
}

#[test]
fn memory_swap_and_reservation_reach_the_cgroup() {
    let e = Env::new();
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "mem",
        "-m",
        "64m",
        "--memory-swap",
        "96m",
        "--memory-reservation",
        "32m",
        &e.image,
        "sleep",
        "1000",
    ]);
    let pid = pid_of(&e, "mem");
    assert_eq!(
        e.inspect(
            "mem",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.MemoryReservation}}"
        ),
        format!("{} {} {}", 64u64 << 20, 96u64 << 20, 32u64 << 20)
    );
    if cgroupfs::cgroup_dirs(pid).contains_key("memory") {
        assert_eq!(
            cgroupfs::read(pid, "memory", "memory.limit_in_bytes"),
            Some((64u64 << 20).to_string())
        );
        assert_eq!(
            cgroupfs::read(pid, "memory", "memory.soft_limit_in_bytes"),
            Some((32u64 << 20).to_string())
        );
        // memsw exists only with swap accounting on.
        if let Some(v) = cgroupfs::read(pid, "memory", "memory.memsw.limit_in_bytes") {
            assert_eq!(v, (96u64 << 20).to_string());
        }
    } else {
        assert_eq!(
            cgroupfs::read(pid, "unified", "memory.max"),
            Some((64u64 << 20).to_string())
        );
        assert_eq!(
            cgroupfs::read(pid, "unified", "memory.low"),
            Some((32u64 << 20).to_string())
        );
        assert_eq!(
            cgroupfs::read(pid, "unified", "memory.swap.max"),
            Some((32u64 << 20).to_string())
        );
    }
    // docker's checks on the values.
    let (code, msg) =
        e.b.fails(&["run", "--rm", "--memory-swap", "96m", &e.image, "true"]);
    assert_eq!(code, 125, "{msg}");
    assert!(
        msg.contains("You should always set the Memory limit when using Memoryswap limit"),
        "{msg}"
    );
    let (code, msg) = e.b.fails(&[
        "run",
        "--rm",
        "-m",
        "64m",
        "--memory-swap",
        "32m",
        &e.image,
        "true",
    ]);
    assert_eq!(code, 125, "{msg}");
    assert!(
        msg.contains("Minimum memoryswap limit should be larger than memory limit"),
        "{msg}"
    );
}

#[test]
fn ulimits_and_the_clamp_warning() {
    let e = Env::new();
    let o = e.b.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "--ulimit",
        "nproc=500",
        &e.image,
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn; ulimit -u",
    ]);
    assert_eq!(o, "100\n200\n500\n");
    // Above the hard limit berth runs with: a warning, then the clamp.
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard);
    }
    if hard.rlim_max < 1 << 30 {
        let big = format!("nofile={}:{}", hard.rlim_max + 1000, hard.rlim_max + 1000);
        let o = e.run(&[
            "run",
            "--rm",
            "--ulimit",
            &big,
            &e.image,
            "sh",
            "-c",
            "ulimit -Hn",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        assert!(err(&o).contains("WARNING: --ulimit nofile="), "{}", err(&o));
        assert_eq!(out(&o).trim(), hard.rlim_max.to_string());
    }
    let (code, msg) = e.b.fails(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=300:200",
        &e.image,
        "true",
    ]);
    assert_eq!(code, 125, "{msg}");
    assert!(msg.contains("invalid ulimit argument"), "{msg}");
}

#[test]
fn sysctls_namespaced_allowed_host_refused() {
    let e = Env::new();
    let o = e.b.ok(&[
        "run",
        "--rm",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--sysctl",
        "kernel.shmmax=123456789",
        &e.image,
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax",
    ]);
    assert_eq!(o, "1\n123456789\n");
    // kernel.* outside the IPC namespace, and unknown prefixes, are refused
    // before anything is created, with docker's text.
    for bad in ["kernel.hostname=x", "vm.swappiness=10", "kernel.panic=1"] {
        let (code, msg) =
            e.b.fails(&["run", "--rm", "--sysctl", bad, &e.image, "true"]);
        assert_eq!(code, 125, "{msg}");
        assert!(
            msg.contains(&format!("sysctl '{bad}' is not allowed")),
            "{msg}"
        );
    }
    // net.* in the host's network namespace: refused too (runc's rule).
    let (code, msg) = e.b.fails(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        &e.image,
        "true",
    ]);
    assert_ne!(code, 0);
    assert!(msg.contains("host network namespace"), "{msg}");
    assert_eq!(e.b.ok(&["ps", "-q"]), "");
}

#[test]
fn devices_and_their_cgroup_rules() {
    let e = Env::new();
    let o = e.b.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/xnull:rwm",
        &e.image,
        "sh",
        "-c",
        "stat -c '%F %t %T' /dev/xnull; echo hi > /dev/xnull && echo wrote",
    ]);
    assert_eq!(o, "character special file 1 3\nwrote\n");
    // /dev/kmsg (1:11) is not in the default allow list: with `r` only the
    // device cgroup refuses opening it for writing.
    let o = e.run(&[
        "run",
        "--rm",
        "--device",
        "/dev/kmsg:/dev/xkmsg:r",
        &e.image,
        "sh",
        "-c",
        "stat -c '%t %T' /dev/xkmsg; echo berth-test > /dev/xkmsg || echo refused",
    ]);
    assert_eq!(out(&o), "1 b\nrefused\n", "{}", err(&o));
    assert!(err(&o).contains("Operation not permitted"), "{}", err(&o));
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "dv",
        "--device",
        "/dev/kmsg:/dev/xkmsg:rw",
        &e.image,
        "sleep",
        "1000",
    ]);
    let pid = pid_of(&e, "dv");
    if let Some(list) = cgroupfs::read(pid, "devices", "devices.list") {
        assert!(list.lines().any(|l| l == "c 1:11 rw"), "{list}");
    }
    let (code, msg) = e.b.fails(&[
        "run",
        "--rm",
        "--device",
        "/dev/nosuchdevice",
        &e.image,
        "true",
    ]);
    assert_eq!(code, 125, "{msg}");
    assert!(
        msg.contains(
            "error gathering device information while adding custom device \"/dev/nosuchdevice\""
        ),
        "{msg}"
    );
}

#[test]
fn shm_size_and_tmpfs_mounts() {
    let e = Env::new();
    let o = e.b.ok(&[
        "run",
        "--rm",
        "--shm-size",
        "16m",
        "--tmpfs",
        "/run/x:size=1m,mode=1770",
        "--tmpfs",
        "/scratch",
        &e.image,
        "sh",
        "-c",
        "grep -E ' /(dev/shm|run/x|scratch) ' /proc/mounts; stat -c %a /run/x; touch /run/x/f && echo writable",
    ]);
    let line = |p: &str| {
        o.lines()
            .find(|l| l.split(' ').nth(1) == Some(p))
            .unwrap_or_else(|| panic!("{p} not mounted: {o}"))
            .to_string()
    };
    let shm = line("/dev/shm");
    assert!(
        shm.starts_with("shm /dev/shm tmpfs ") && shm.contains("size=16384k"),
        "{shm}"
    );
    let x = line("/run/x");
    assert!(x.contains("tmpfs") && x.contains("size=1024k"), "{x}");
    for opt in ["nosuid", "nodev", "noexec"] {
        assert!(x.contains(opt), "{x}");
        assert!(line("/scratch").contains(opt), "{o}");
    }
    assert!(o.contains("\n1770\nwritable\n"), "{o}");
    // The default /dev/shm is docker's 64 MiB.
    let o = e.b.ok(&[
        "run",
        "--rm",
        &e.image,
        "grep",
        " /dev/shm ",
        "/proc/mounts",
    ]);
    assert!(o.contains("size=65536k"), "{o}");
    let (code, msg) =
        e.b.fails(&["run", "--rm", "--tmpfs", "rel", &e.image, "true"]);
    assert_eq!(code, 125, "{msg}");
    assert!(msg.contains("mount path must be absolute"), "{msg}");
}

#[test]
fn stop_signal_and_stop_timeout_seen_by_a_trap() {
    let e = Env::new();
    // The trap keeps running after USR1: stop sends USR1, waits the
    // container's own stop timeout, then SIGKILL.
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "--stop-signal",
        "USR1",
        "--stop-timeout",
        "1",
        &e.image,
        "sh",
        "-c",
        "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.1; done",
    ]);
    assert_eq!(
        e.inspect("stubborn", "{{.Config.StopSignal}} {{.Config.StopTimeout}}"),
        "USR1 1"
    );
    e.wait_for("ready", || out(&e.run(&["logs", "stubborn"])) == "ready\n");
    e.b.ok(&["stop", "stubborn"]);
    assert_eq!(e.inspect("stubborn", "{{.State.ExitCode}}"), "137");
    assert_eq!(out(&e.run(&["logs", "stubborn"])), "ready\ngot-usr1\n");
    // A trap that exits: the exit code is the trap's.
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "polite",
        "--stop-signal",
        "SIGHUP",
        &e.image,
        "sh",
        "-c",
        "trap 'echo got-hup; exit 9' HUP; echo ready; while :; do sleep 0.1; done",
    ]);
    e.wait_for("ready", || out(&e.run(&["logs", "polite"])) == "ready\n");
    e.b.ok(&["stop", "polite"]);
    assert_eq!(e.inspect("polite", "{{.State.ExitCode}}"), "9");
    assert_eq!(out(&e.run(&["logs", "polite"])), "ready\ngot-hup\n");
    let (code, msg) =
        e.b.fails(&["run", "--rm", "--stop-signal", "NOPE", &e.image, "true"]);
    assert_eq!(code, 125, "{msg}");
    assert!(msg.contains("Invalid signal: NOPE"), "{msg}");
}

fn status_field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} missing in {text}"))
}

#[test]
fn privileged_read_only_and_capabilities() {
    let e = Env::new();
    let me = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status_field(&me, "CapBnd:").to_string();
    let o = e.b.ok(&[
        "run",
        "--rm",
        "--privileged",
        &e.image,
        "sh",
        "-c",
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; test -e /dev/kmsg && echo kmsg; wc -c < /proc/timer_list; grep ' /sys ' /proc/mounts",
    ]);
    // Every capability berth itself holds, no seccomp, host devices, and
    // /proc not masked, /sys writable.
    assert_eq!(status_field(&o, "CapEff:"), bnd, "{o}");
    assert_eq!(status_field(&o, "Seccomp:"), "0", "{o}");
    assert!(o.contains("\nkmsg\n"), "{o}");
    let n: u64 = o.lines().nth(3).unwrap().trim().parse().unwrap();
    assert!(n > 0, "/proc/timer_list is masked under --privileged: {o}");
    assert!(o.contains(" sysfs rw,"), "{o}");
    // cap-drop / cap-add arithmetic as docker does it.
    let caps = |args: &[&str]| -> String {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[e.image.as_str(), "grep", "CapEff", "/proc/self/status"]);
        status_field(&e.b.ok(&a), "CapEff:").to_string()
    };
    assert_eq!(caps(&["--cap-drop", "ALL"]), "0000000000000000");
    assert_eq!(caps(&["--cap-drop", "NET_RAW"]), "00000000a80405fb");
    assert_eq!(caps(&["--cap-add", "SYS_ADMIN"]), "00000000a82425fb");
    assert_eq!(
        caps(&["--cap-add", "cap_sys_admin", "--cap-drop", "chown"]),
        "00000000a82425fa"
    );
    assert_eq!(caps(&["--cap-add", "ALL"]), bnd);
    // no-new-privileges in docker's spellings; off by default.
    for (opt, want) in [
        (None, "0"),
        (Some("no-new-privileges"), "1"),
        (Some("no-new-privileges:true"), "1"),
        (Some("no-new-privileges=true"), "1"),
    ] {
        let mut a = vec!["run", "--rm"];
        if let Some(o) = opt {
            a.extend_from_slice(&["--security-opt", o]);
        }
        a.extend_from_slice(&[e.image.as_str(), "grep", "NoNewPrivs", "/proc/self/status"]);
        assert_eq!(status_field(&e.b.ok(&a), "NoNewPrivs:"), want, "{opt:?}");
    }
    let (code, msg) =
        e.b.fails(&["run", "--rm", "--cap-add", "NOPE", &e.image, "true"]);
    assert_eq!(code, 125, "{msg}");
    assert!(msg.contains("unknown capability: \"CAP_NOPE\""), "{msg}");
    // --read-only: root is read-only, the tmpfs and volumes docker makes
    // writable stay writable.
    let o = e.run(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/tmp",
        &e.image,
        "sh",
        "-c",
        "touch /tmp/ok && echo tmp-ok; touch /dev/shm/ok && echo shm-ok; touch /etc/x || echo etc-ro",
    ]);
    assert_eq!(out(&o), "tmp-ok\nshm-ok\netc-ro\n", "{}", err(&o));
}

#[test]
fn seccomp_profiles_from_files() {
    let e = Env::new();
    let dir = e.b.root().join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    // OCI LinuxSeccomp: allow all but mkdir/mkdirat.
    let oci = dir.join("oci.json");
    std::fs::write(
        &oci,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let o = e.run(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", oci.display()),
        &e.image,
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; mkdir /tmp/d || echo refused",
    ]);
    assert_eq!(out(&o), "Seccomp:\t2\nrefused\n", "{}", err(&o));
    assert!(err(&o).contains("Operation not permitted"), "{}", err(&o));
    // docker's profile format: archMap, includes/excludes by capability.
    let docker = dir.join("docker.json");
    std::fs::write(
        &docker,
        r#"{
          "defaultAction": "SCMP_ACT_ALLOW",
          "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                      {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
          "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "includes": {"arches": ["s390x"]}},
            {"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}
          ]
        }"#,
    )
    .unwrap();
    let sec = format!("seccomp={}", docker.display());
    let o = e.run(&[
        "run", "--rm", "--security-opt", &sec, &e.image, "sh", "-c",
        "mkdir /tmp/d || echo mkdir-refused; rmdir /tmp/d 2>/dev/null; rmdir /home/app && echo rmdir-ok; ln -s a /tmp/l && echo ln-ok",
    ]);
    assert_eq!(out(&o), "mkdir-refused\nrmdir-ok\nln-ok\n", "{}", err(&o));
    assert!(err(&o).contains("Permission denied"), "{}", err(&o));
    // With CAP_SYS_ADMIN the mkdir rule is excluded and the symlink one included.
    let o = e.run(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        &sec,
        &e.image,
        "sh",
        "-c",
        "mkdir /tmp/d && echo mkdir-ok; ln -s a /tmp/l || echo ln-refused",
    ]);
    assert_eq!(out(&o), "mkdir-ok\nln-refused\n", "{}", err(&o));
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let (code, msg) = e.b.fails(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", bad.display()),
        &e.image,
        "true",
    ]);
    assert_eq!(code, 125, "{msg}");
    assert!(msg.contains("seccomp"), "{msg}");
}

#[test]
fn restart_always_and_unless_stopped_until_stop() {
    let e = Env::new();
    for policy in ["always", "unless-stopped"] {
        let name = format!("r-{policy}");
        e.b.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--restart",
            policy,
            &e.image,
            "sh",
            "-c",
            "echo up; sleep 0.2; exit 0",
        ]);
        // Exit 0 restarts too.
        e.wait_for("two restarts", || {
            e.inspect(&name, "{{.RestartCount}}")
                .parse::<u32>()
                .unwrap()
                >= 2
        });
        assert_eq!(
            e.inspect(&name, "{{.HostConfig.RestartPolicy.Name}}"),
            policy
        );
        e.b.ok(&["stop", "-t", "1", &name]);
        let count = e.inspect(&name, "{{.RestartCount}}");
        // Longer than docker's back-off at this count: it stays stopped.
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(e.inspect(&name, "{{.State.Status}}"), "exited", "{policy}");
        assert_eq!(e.inspect(&name, "{{.RestartCount}}"), count, "{policy}");
        let logs = out(&e.run(&["logs", &name]));
        // One line per run: the first and each restart that started.
        assert!(logs.starts_with("up\nup\n"), "{logs}");
        // start clears the manual stop: the policy applies again.
        e.b.ok(&["start", &name]);
        let c: u32 = count.parse().unwrap();
        e.wait_for("restarts after start", || {
            e.inspect(&name, "{{.RestartCount}}")
                .parse::<u32>()
                .unwrap()
                > c
        });
        e.b.ok(&["rm", "-f", &name]);
    }
    assert_clean(e.b.root());
}

#[test]
fn ps_size_last_and_every_filter() {
    let e = Env::new();
    let img_id = e.b.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    let a =
        e.b.ok(&[
            "run", "-d", "--name", "fa", "-l", "app=x", "-l", "tier", &e.image, "sleep", "1000",
        ])
        .trim()
        .to_string();
    assert_eq!(
        e.run(&["run", "--name", "fb", &e.image, "sh", "-c", "exit 3"])
            .status
            .code(),
        Some(3)
    );
    e.b.ok(&["create", "--name", "fc", &e.image, "true"]);
    let names = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["ps", "--format", "{{.Names}}"];
        v.extend_from_slice(args);
        let mut n: Vec<String> = e.b.ok(&v).lines().map(str::to_string).collect();
        n.sort();
        n
    };
    assert_eq!(names(&[]), ["fa"]);
    assert_eq!(names(&["-a"]), ["fa", "fb", "fc"]);
    assert_eq!(names(&["-a", "-f", "status=running"]), ["fa"]);
    assert_eq!(names(&["-a", "-f", "status=exited"]), ["fb"]);
    assert_eq!(
        names(&["-a", "-f", "status=exited", "-f", "status=created"]),
        ["fb", "fc"]
    );
    assert_eq!(names(&["-a", "-f", "name=f"]), ["fa", "fb", "fc"]);
    assert_eq!(names(&["-a", "-f", "name=fb"]), ["fb"]);
    assert_eq!(names(&["-a", "-f", "label=app"]), ["fa"]);
    assert_eq!(names(&["-a", "-f", "label=app=x"]), ["fa"]);
    assert_eq!(names(&["-a", "-f", "label=tier"]), ["fa"]);
    assert!(names(&["-a", "-f", "label=app=y"]).is_empty());
    assert_eq!(names(&["-a", "-f", "exited=3"]), ["fb"]);
    assert_eq!(names(&["-a", "-f", &format!("id={}", &a[..6])]), ["fa"]);
    assert_eq!(
        names(&["-a", "-f", &format!("ancestor={}", e.image)]),
        ["fa", "fb", "fc"]
    );
    assert_eq!(
        names(&["-a", "-f", &format!("ancestor={}", &img_id[7..19])]),
        ["fa", "fb", "fc"]
    );
    assert!(names(&["-a", "-f", "ancestor=nosuch:image"]).is_empty());
    // Filters of different keys combine with AND.
    assert_eq!(
        names(&["-a", "-f", "name=f", "-f", "status=running"]),
        ["fa"]
    );
    assert_eq!(names(&["-a", "-n", "2"]), ["fb", "fc"]);
    assert_eq!(names(&["-l"]), ["fc"]);
    let (code, msg) = e.b.fails(&["ps", "-f", "bogus=1"]);
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("invalid filter 'bogus'"), "{msg}");
    // -s: docker's SIZE column, the writable layer and the image.
    e.b.ok(&["exec", "fa", "sh", "-c", "head -c 5000 /dev/zero > /big"]);
    let s = e.b.ok(&["ps", "-s", "-f", "name=fa"]);
    let head = s.lines().next().unwrap();
    assert!(head.contains("SIZE"), "{s}");
    let row = s.lines().nth(1).unwrap();
    assert!(row.contains("(virtual "), "{s}");
    let size =
        e.b.ok(&["ps", "-s", "-f", "name=fa", "--format", "{{.Size}}"]);
    let kb: f64 = size
        .split("kB")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{size}"));
    assert!(kb >= 5.0, "{size}");
}

#[test]
fn pull_policies_and_platform() {
    let e = Env::with(ImageBuilder::new().env("V=1"));
    // A new image under the same tag in the registry.
    e.reg
        .push("t/img", "1", &ImageBuilder::new().env("V=2").build());
    let v = |pull: &str| {
        e.b.ok(&[
            "run", "--rm", "--pull", pull, &e.image, "sh", "-c", "echo $V",
        ])
    };
    assert_eq!(v("missing"), "1\n");
    assert_eq!(v("never"), "1\n");
    let o = e.run(&[
        "run", "--rm", "--pull", "always", &e.image, "sh", "-c", "echo $V",
    ]);
    assert_eq!(out(&o), "2\n", "{}", err(&o));
    assert_eq!(v("never"), "2\n");
    let (code, msg) =
        e.b.fails(&["run", "--rm", "--pull", "sometimes", &e.image, "true"]);
    assert_eq!(code, 125, "{msg}");
    // --platform picks from an index.
    e.reg
        .push("t/multi", "1", &ImageBuilder::new().build_two_platforms());
    let multi = e.reg.reference("t/multi", "1");
    let o = e.run(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &multi,
        "sh",
        "-c",
        "echo $BERTH_TEST_ARCH",
    ]);
    assert_eq!(out(&o), "arm64\n", "{}", err(&o));
}

#[test]
fn stdin_env_file_hosts_and_dns_options() {
    let e = Env::new();
    // -i: stdin to EOF, which ends the container's cat.
    let o =
        e.b.ok_stdin(&["run", "--rm", "-i", &e.image, "cat"], b"one\ntwo\n");
    assert_eq!(o, "one\ntwo\n");
    // Without -i the container's stdin is empty.
    let o =
        e.b.ok_stdin(&["run", "--rm", &e.image, "cat"], b"ignored\n");
    assert_eq!(o, "");
    let envf = e.b.root().join("e.env");
    std::fs::write(&envf, "A=1\n\n# c\nB=two words\nPASSED\n").unwrap();
    let mut c = e.b.command(&[
        "run",
        "--rm",
        "--env-file",
        envf.to_str().unwrap(),
        &e.image,
        "sh",
        "-c",
        "echo \"$A|$B|$PASSED\"",
    ]);
    c.env("PASSED", "from-caller");
    let o = c.output().unwrap();
    assert_eq!(out(&o), "1|two words|from-caller\n", "{}", err(&o));
    let (code, msg) = e.b.fails(&[
        "run",
        "--rm",
        "--env-file",
        "/nonexistent/env",
        &e.image,
        "true",
    ]);
    assert_eq!(code, 125, "{msg}");
    assert!(
        msg.contains("open /nonexistent/env: no such file or directory"),
        "{msg}"
    );
    let o = e.b.ok(&[
        "run",
        "--rm",
        "--add-host",
        "a.test:10.9.8.7",
        "--add-host",
        "b.test=10.9.8.6",
        "--dns",
        "10.0.0.1",
        "--dns",
        "10.0.0.2",
        "--dns-option",
        "ndots:2",
        "--dns-option",
        "timeout:3",
        "--dns-search",
        "x.test",
        &e.image,
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(
        o.contains("10.9.8.7\ta.test") && o.contains("10.9.8.6\tb.test"),
        "{o}"
    );
    assert!(
        o.contains("nameserver 10.0.0.1\nnameserver 10.0.0.2\n"),
        "{o}"
    );
    assert!(o.contains("options ndots:2 timeout:3"), "{o}");
    let (code, msg) =
        e.b.fails(&["run", "--rm", "--add-host", "nocolon", &e.image, "true"]);
    assert_eq!(code, 125, "{msg}");
    assert!(msg.contains("bad format for add-host"), "{msg}");
}

#[test]
fn invalid_values_and_limits_the_kernel_refuses() {
    let e = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (&["-m", "abc"], "invalid size: 'abc'"),
        (&["-m", "4m"], "Minimum memory limit allowed is 6MB"),
        (
            &["--cpus=-1"],
            "Range of CPUs is from 0.01 to the number of CPUs",
        ),
        (&["--restart", "bogus"], "invalid restart policy format"),
        (
            &["--restart", "always", "--rm"],
            "Conflicting options: --restart and --rm",
        ),
        (&["--ulimit", "nofile"], "invalid ulimit argument"),
        (&["--name", "bad/name"], "Invalid container name (bad/name)"),
        (
            &["--sysctl", "noequals"],
            "sysctl 'noequals' is not allowed",
        ),
    ];
    for (flags, text) in cases {
        let mut a = vec!["run"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&[e.image.as_str(), "true"]);
        let (code, msg) = e.b.fails(&a);
        assert_eq!(code, 125, "{flags:?}: {msg}");
        assert!(msg.contains(text), "{flags:?}: {msg}");
    }
    // A memlock limit above the hard limit berth holds (root without
    // CAP_SYS_RESOURCE): the kernel refuses setrlimit when the container
    // starts; the error names the limit and nothing is left running.
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut hard);
    }
    let me = std::fs::read_to_string("/proc/self/status").unwrap();
    let sys_resource =
        u64::from_str_radix(status_field(&me, "CapEff:"), 16).unwrap() & (1 << 24) != 0;
    if hard.rlim_max != libc::RLIM_INFINITY && !sys_resource {
        let big = format!("memlock={}", hard.rlim_max.saturating_mul(4));
        let (code, msg) = e.b.fails(&[
            "run", "--rm", "--name", "memlock", "--ulimit", &big, &e.image, "true",
        ]);
        assert_eq!(code, 125, "{msg}");
        assert!(
            msg.contains("Error response from daemon: ") && msg.to_lowercase().contains("memlock"),
            "{msg}"
        );
        assert_eq!(e.b.ok(&["ps", "-q"]), "");
    }
    // A CPU this machine does not have: docker's check, before the kernel's.
    let (code, msg) = e.b.fails(&[
        "run",
        "--rm",
        "--name",
        "nocpu",
        "--cpuset-cpus",
        "999",
        &e.image,
        "true",
    ]);
    assert_eq!(code, 125, "{msg}");
    assert!(
        msg.contains("Error response from daemon: Requested CPUs are not available - requested 999, available: "),
        "{msg}"
    );
    assert_eq!(e.b.ok(&["ps", "-q"]), "");
    // exec in a stopped container; unknown container.
    e.b.ok(&["create", "--name", "idle", &e.image, "true"]);
    let (code, msg) = e.b.fails(&["exec", "idle", "true"]);
    assert_eq!(code, 1);
    assert!(msg.contains("is not running"), "{msg}");
    let (code, msg) = e.b.fails(&["exec", "nosuch", "true"]);
    assert_eq!(code, 1);
    assert!(msg.contains("No such container: nosuch"), "{msg}");
    // docker's codes for the process itself.
    let o = e.run(&["run", "--rm", &e.image, "/nonexistent/bin"]);
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    let o = e.run(&["run", "--rm", &e.image, "/tmp"]);
    assert_eq!(o.status.code(), Some(126), "{}", err(&o));
    assert_clean(e.b.root());
}
