//! End-to-end tests of the container commands: real containers from images
//! built offline and pulled from a throwaway registry, each test with its
//! own --root, cleaned up (containers, monitors, mounts) also on failure.

mod common;

use std::path::Path;
use std::time::Duration;

use common::berth::Berth;
use common::ctr::{assert_clean, err, out, reap_monitors, set_subreaper, Env};
use common::image::{many_layers, ImageBuilder};
use common::registry::Registry;

#[test]
fn foreground_exit_codes_and_streams() {
    let e = Env::new();
    let o = e.run(&[
        "run",
        "--rm",
        &e.image,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert_eq!(out(&o), "out\n");
    assert_eq!(err(&o), "err\n");
    let o = e.run(&["run", "--rm", &e.image, "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = e.run(&["run", "--rm", &e.image, "nosuchcmd"]);
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert!(err(&o).contains("executable file not found"), "{}", err(&o));
    let o = e.run(&["run", "--rm", &e.image, "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", err(&o));
    // --rm leaves nothing: no container, no mount, no directory.
    assert_eq!(e.b.ok(&["ps", "-aq"]), "");
    assert_clean(e.b.root());
    let left: Vec<_> = std::fs::read_dir(e.b.root().join("containers"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn detached_ps_logs_exec_stop_rm() {
    let e = Env::new();
    let id = e.b.ok(&[
        "run",
        "-d",
        "--name",
        "web1",
        &e.image,
        "sh",
        "-c",
        "echo hello; echo oops >&2; exec sleep 1000",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let ps = e.b.ok(&["ps"]);
    let mut lines = ps.lines();
    let head = lines.next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(head.contains(col), "{ps}");
    }
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&id[..12]) && row.contains("Up ") && row.ends_with("web1"),
        "{ps}"
    );
    e.wait_for("logs", || e.run(&["logs", "web1"]).stdout == b"hello\n");
    let l = e.run(&["logs", "web1"]);
    assert_eq!(err(&l), "oops\n");
    let pid: i32 = e.inspect("web1", "{{.State.Pid}}").parse().unwrap();
    assert!(pid > 0 && Path::new(&format!("/proc/{pid}")).exists());
    // nsenter works with that pid, as docker users do.
    let ns = std::process::Command::new("nsenter")
        .args([
            "--target",
            &pid.to_string(),
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "hostname",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ns.stdout).trim(), &id[..12]);
    assert_eq!(
        e.b.ok(&["exec", "web1", "sh", "-c", "echo in-$HOSTNAME"])
            .trim(),
        format!("in-{}", &id[..12])
    );
    let o = e.run(&["exec", "web1", "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    let o = e.run(&["exec", "web1", "nosuch"]);
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert_eq!(
        e.inspect("web1", "{{.State.Status}} {{.Name}}"),
        "running /web1"
    );
    e.b.ok(&["stop", "-t", "1", "web1"]);
    assert_eq!(e.inspect("web1", "{{.State.Status}}"), "exited");
    assert_eq!(e.b.ok(&["ps", "-q"]), "");
    let psa = e.b.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        psa.starts_with("web1 Exited (137)") || psa.starts_with("web1 Exited (143)"),
        "{psa}"
    );
    let o = e.run(&["exec", "web1", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("is not running"), "{}", err(&o));
    assert_clean(e.b.root());
    assert_eq!(e.b.ok(&["rm", "web1"]).trim(), "web1");
    assert_eq!(e.b.ok(&["ps", "-aq"]), "");
    // rm -f of a running container.
    e.b.ok(&["run", "-d", "--name", "web2", &e.image, "sleep", "1000"]);
    e.b.ok(&["rm", "-f", "web2"]);
    assert_eq!(e.b.ok(&["ps", "-aq"]), "");
    assert_clean(e.b.root());
}

#[test]
fn name_conflict_and_image_in_use() {
    let e = Env::new();
    let id =
        e.b.ok(&["create", "--name", "dup", &e.image, "true"])
            .trim()
            .to_string();
    let (code, msg) = e.b.fails(&["create", "--name", "dup", &e.image, "true"]);
    assert_eq!(code, 125);
    assert!(
        msg.contains(&format!(
            "Conflict. The container name \"/dup\" is already in use by container \"{id}\""
        )),
        "{msg}"
    );
    assert_eq!(e.inspect("dup", "{{.State.Status}}"), "created");
    let (code, msg) = e.b.fails(&["rmi", &e.image]);
    assert_eq!(code, 1);
    assert!(msg.contains("in use"), "{msg}");
    // started later, it runs
    e.b.ok(&["start", "dup"]);
    assert_eq!(e.b.ok(&["wait", "dup"]).trim(), "0");
    e.b.ok(&["rename", "dup", "dup2"]);
    assert_eq!(e.inspect(&id, "{{.Name}}"), "/dup2");
}

#[test]
fn restart_on_failure_twice() {
    let e = Env::new();
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "rs",
        "--restart",
        "on-failure:2",
        &e.image,
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    e.wait_for("two restarts and exit", || {
        e.inspect("rs", "{{.State.Status}} {{.RestartCount}}") == "exited 2"
    });
    assert_eq!(e.inspect("rs", "{{.State.ExitCode}}"), "1");
    assert_eq!(out(&e.run(&["logs", "rs"])), "run\nrun\nrun\n");
}

#[test]
fn process_config_flags() {
    let e = Env::with(ImageBuilder::new().env("FROM_IMAGE=1").workdir("/home"));
    let envf = e.b.root().join("env.list");
    std::fs::write(&envf, "# comment\nB=from-file\n").unwrap();
    let o = e.b.ok(&[
        "run",
        "--rm",
        "-e",
        "A=flag",
        "--env-file",
        envf.to_str().unwrap(),
        "-w",
        "/tmp",
        "-u",
        "app",
        "-h",
        "myhost",
        &e.image,
        "sh",
        "-c",
        "echo $A $B $FROM_IMAGE; pwd; id -u; id -g; hostname; cat /etc/hostname; echo $HOME",
    ]);
    assert_eq!(
        o,
        "flag from-file 1\n/tmp\n1000\n1000\nmyhost\nmyhost\n/home/app\n"
    );
    assert_eq!(e.b.ok(&["run", "--rm", &e.image, "pwd"]), "/home\n");
    assert_eq!(
        e.b.ok(&["run", "--rm", "-u", "4242:7", &e.image, "id"])
            .trim(),
        "uid=4242 gid=7"
    );
    assert_eq!(
        e.b.ok(&["run", "--rm", "--entrypoint", "echo", &e.image, "hello"]),
        "hello\n"
    );
    let o = e.b.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db:10.1.2.3",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "example.test",
        &e.image,
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(o.contains("10.1.2.3\tdb"), "{o}");
    assert!(
        o.contains("nameserver 10.0.0.53") && o.contains("search example.test"),
        "{o}"
    );
    let (code, msg) =
        e.b.fails(&["run", "--rm", "-u", "nosuchuser", &e.image, "true"]);
    assert_eq!(code, 125, "{msg}");
    assert!(msg.contains("unable to find user nosuchuser"), "{msg}");
}

#[test]
fn security_defaults_seen_from_inside() {
    let e = Env::new();
    let o = e.b.ok(&["run", "--rm", &e.image, "sh", "-c", "grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status; wc -c < /proc/timer_list; wc -c < /proc/keys; ls /proc/acpi | wc -l"]);
    assert!(o.contains("CapEff:\t00000000a80425fb"), "{o}");
    assert!(o.contains("CapBnd:\t00000000a80425fb"), "{o}");
    assert!(o.contains("Seccomp:\t2"), "{o}");
    // This kernel has no /proc/kcore; timer_list and keys are masked
    // (bound to /dev/null), acpi is masked with an empty read-only tmpfs.
    assert!(
        o.trim_end().ends_with("0\n0\n0"),
        "masked /proc paths must read empty: {o}"
    );
    let o = e.b.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CHOWN",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "no-new-privileges",
        &e.image,
        "sh",
        "-c",
        "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status",
    ]);
    assert!(o.contains("CapEff:\t0000000000000001"), "{o}");
    assert!(o.contains("Seccomp:\t0"), "{o}");
    assert!(o.contains("NoNewPrivs:\t1"), "{o}");
    let o = e.run(&["run", "--rm", "--read-only", &e.image, "touch", "/x"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(err(&o).contains("Read-only file system"), "{}", err(&o));
}

#[test]
fn memory_limit_oom_and_pids_limit() {
    let e = Env::new();
    // tail buffers /dev/zero looking for a newline until the limit hits.
    let o = e.run(&[
        "run",
        "--name",
        "oom",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        &e.image,
        "tail",
        "/dev/zero",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", err(&o));
    assert_eq!(
        e.inspect("oom", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
    assert_eq!(
        e.inspect("oom", "{{.HostConfig.Memory}}"),
        (16u64 << 20).to_string()
    );
    // A child shell forks until it fails (and dies); the outer one then
    // uses builtins only, as any fork would fail now.
    let o = e.b.ok(&["run", "--rm", "--pids-limit", "8", &e.image, "sh", "-c",
        "sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 30 & done' 2>/dev/null; read m < /sys/fs/cgroup/pids/pids.max; echo $m; set -- /proc/[0-9]*; echo $#"]);
    let mut l = o.lines();
    assert_eq!(l.next(), Some("8"), "{o}");
    let procs: i32 = l.next().unwrap().parse().unwrap();
    assert!(procs <= 8, "{o}");
}

#[test]
fn killed_monitor_reads_exited_and_rm_cleans_up() {
    let e = Env::new();
    let id =
        e.b.ok(&["run", "-d", "--name", "victim", &e.image, "sleep", "1000"])
            .trim()
            .to_string();
    let pid: i32 = e.inspect("victim", "{{.State.Pid}}").parse().unwrap();
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.b.root().join("containers").join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    let mon = st["MonitorPid"].as_i64().unwrap() as i32;
    assert!(mon > 0);
    unsafe {
        libc::kill(mon, libc::SIGKILL);
    }
    reap_monitors(Duration::from_secs(5));
    let ps = e.b.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(ps.trim(), "victim exited");
    assert_eq!(e.b.ok(&["ps", "-q"]), "");
    e.b.ok(&["rm", "-f", "victim"]);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
    );
    assert_clean(e.b.root());
    assert_eq!(e.b.ok(&["ps", "-aq"]), "");
}

#[test]
fn image_with_120_layers_runs() {
    let e = Env::with(many_layers(120));
    assert_eq!(
        e.b.ok(&[
            "run",
            "--rm",
            &e.image,
            "cat",
            "/layers/top",
            "/layers/0001"
        ]),
        "119\nlayer 1\n"
    );
    assert_clean(e.b.root());
}

#[test]
fn tty_init_logs_kill_pause_top_prune() {
    let e = Env::new();
    // -t: the process gets a pty from the container's devpts.
    let o =
        e.b.ok(&["run", "--rm", "-t", &e.image, "sh", "-c", "tty; echo $TERM"]);
    assert_eq!(o, "/dev/pts/0\r\nxterm\r\n");
    // --init: berth's tiny init is pid 1 and the command its child.
    // (through the host's loader when berth is dynamically linked), the exit
    // code passes through.
    let o = e.run(&[
        "run",
        "--rm",
        "--init",
        &e.image,
        "sh",
        "-c",
        "readlink /proc/1/exe; echo $$; sleep 0.2 & sleep 0.1; exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", err(&o));
    let text = out(&o);
    assert!(
        text.starts_with("/.berth-init/") && text.ends_with("\n2\n"),
        "{text}"
    );
    // -i: stdin reaches the container.
    let o = e.b.ok_stdin(
        &[
            "run",
            "--rm",
            "-i",
            &e.image,
            "sh",
            "-c",
            "read x; echo got-$x",
        ],
        b"abc\n",
    );
    assert_eq!(o, "got-abc\n");
    e.b.ok(&["run", "-d", "--name", "lg", &e.image, "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; trap 'echo term; exit 7' TERM; while true; do sleep 0.1; done"]);
    e.wait_for("5 log lines", || {
        out(&e.run(&["logs", "lg"])).lines().count() == 5
    });
    assert_eq!(
        out(&e.run(&["logs", "--tail", "2", "lg"])),
        "line4\nline5\n"
    );
    let ts = out(&e.run(&["logs", "-t", "--tail", "1", "lg"]));
    assert!(ts.ends_with("Z line5\n") && ts.starts_with("20"), "{ts}");
    assert_eq!(
        out(&e.run(&[
            "logs",
            "--since",
            "2000-01-01T00:00:00Z",
            "--until",
            "2000-01-02T00:00:00Z",
            "lg"
        ])),
        ""
    );
    // pause / unpause, as ps and inspect see it.
    e.b.ok(&["pause", "lg"]);
    assert_eq!(
        e.inspect("lg", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    assert!(e
        .b
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(Paused)"));
    e.b.ok(&["unpause", "lg"]);
    assert_eq!(e.inspect("lg", "{{.State.Status}}"), "running");
    let top = e.b.ok(&["top", "lg"]);
    assert!(
        top.lines().next().unwrap().contains("PID") && top.contains("sleep")
            || top.contains("sh -c"),
        "{top}"
    );
    // exec -t and -u by name.
    assert_eq!(
        e.b.ok(&["exec", "-t", "-u", "app", "lg", "id", "-un"]),
        "app\r\n"
    );
    // kill -s TERM: the trap runs, the exit code is the script's.
    e.b.ok(&["kill", "-s", "TERM", "lg"]);
    assert_eq!(e.b.ok(&["wait", "lg"]).trim(), "7");
    assert!(out(&e.run(&["logs", "lg"])).ends_with("term\n"));
    let (code, msg) = e.b.fails(&["kill", "lg"]);
    assert_eq!(code, 1);
    assert!(msg.contains("is not running"), "{msg}");
    // ps filters.
    e.b.ok(&["create", "--name", "cr", "-l", "tier=db", &e.image, "true"]);
    assert_eq!(
        e.b.ok(&[
            "ps",
            "-a",
            "--filter",
            "status=created",
            "--format",
            "{{.Names}}"
        ]),
        "cr\n"
    );
    assert_eq!(
        e.b.ok(&[
            "ps",
            "-a",
            "--filter",
            "label=tier=db",
            "--format",
            "{{.Names}}"
        ]),
        "cr\n"
    );
    assert_eq!(
        e.b.ok(&["ps", "-a", "--filter", "exited=7", "--format", "{{.Names}}"]),
        "lg\n"
    );
    assert_eq!(
        e.b.ok(&["ps", "-a", "-n", "1", "--format", "{{.Names}}"]),
        "cr\n"
    );
    let js = e.b.ok(&["ps", "-a", "-l", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(js.trim()).unwrap();
    assert_eq!(v["Names"], "cr");
    // start -a streams and returns the exit code.
    e.b.ok(&[
        "create",
        "--name",
        "sa",
        &e.image,
        "sh",
        "-c",
        "echo started; echo e >&2; exit 3",
    ]);
    let o = e.run(&["start", "-a", "sa"]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert_eq!((out(&o).as_str(), err(&o).as_str()), ("started\n", "e\n"));
    let removed = e.b.ok(&["container", "prune", "-f"]);
    assert!(removed.starts_with("Deleted Containers:"), "{removed}");
    assert_eq!(e.b.ok(&["ps", "-aq"]), "");
    assert_clean(e.b.root());
}

#[test]
fn run_pulls_a_missing_image_unless_pull_never() {
    set_subreaper();
    let reg = Registry::plain();
    reg.push("t/pl", "1", &ImageBuilder::new().build());
    let b = Berth::new();
    let image = reg.reference("t/pl", "1");
    let (code, msg) = b.fails(&["run", "--rm", "--pull", "never", &image, "true"]);
    assert_eq!(code, 125);
    assert!(msg.contains("No such image"), "{msg}");
    let o = b.cmd(&["run", "--rm", &image, "echo", "ran"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // stdout is the container's alone: the pull reports on stderr.
    assert_eq!(out(&o), "ran\n");
    assert!(
        err(&o).starts_with(&format!("Unable to find image '{image}' locally")),
        "{}",
        err(&o)
    );
    reap_monitors(Duration::from_secs(10));
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}
