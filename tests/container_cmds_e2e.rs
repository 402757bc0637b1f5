//! End-to-end tests of attach, stats, update, cp, export, diff, commit,
//! `system df` / `ps -s` and `system boot`: real containers from an image
//! pulled from a throwaway registry, each test with its own --root,
//! cleaned up (containers, monitors, mounts) also on failure.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::ctr::{assert_clean, err, out, reap_monitors, Env};

/// The cgroup directories of a process, as /proc/PID/cgroup names them
/// (v1: one per controller hierarchy; v2: the unified one).
fn cgroup_dirs(pid: i32) -> Vec<(String, PathBuf)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut v = Vec::new();
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        if path == "/" {
            continue;
        }
        if ctrls.is_empty() {
            let p = PathBuf::from(format!("/sys/fs/cgroup{path}"));
            if p.join("cgroup.procs").exists() && !p.starts_with("/sys/fs/cgroup/unified") {
                v.push((String::new(), p));
            }
            continue;
        }
        for c in ctrls.split(',') {
            let p = PathBuf::from(format!("/sys/fs/cgroup/{c}{path}"));
            if p.exists() {
                v.push((c.to_string(), p));
            }
        }
    }
    v
}

fn cg_file(pid: i32, ctrl: &str, file: &str) -> String {
    let dirs = cgroup_dirs(pid);
    let d = dirs
        .iter()
        .find(|(c, p)| c == ctrl || (c.is_empty() && p.join(file).exists()))
        .unwrap_or_else(|| panic!("no {ctrl} cgroup for {pid}: {dirs:?}"));
    std::fs::read_to_string(d.1.join(file))
        .unwrap()
        .trim()
        .to_string()
}

/// `berth ARGS` on a terminal (util-linux `script`), its output piped.
fn on_tty(e: &Env, args: &str) -> std::process::Child {
    let cmd = format!(
        "{} --root {} {args}",
        common::berth::berth_bin().display(),
        e.b.root().display()
    );
    std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("DOCKER_CONFIG", e.b.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn pid_of(e: &Env, c: &str) -> i32 {
    e.inspect(c, "{{.State.Pid}}").parse().unwrap()
}

/// Reads `child`'s stdout until `want` shows up (a thread, so a silent
/// child cannot hang the test: the read ends when the child is killed).
fn spawn_reader(out: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { return };
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_line(rx: &std::sync::mpsc::Receiver<String>, want: &str) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains(want);
                seen.push(l);
                if hit {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {want:?}; saw {seen:?}"),
        }
    }
}

#[test]
fn attach_streams_input_output_and_exit_code() {
    let e = Env::new();
    e.b.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "chat",
        &e.image,
        "sh",
        "-c",
        "echo start; while read x; do [ \"$x\" = quit ] && exit 3; echo got:$x; done",
    ]);
    let mut c = e.b.command(&["attach", "chat"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let rx = spawn_reader(child.stdout.take().unwrap());
    stdin.write_all(b"hello\n").unwrap();
    wait_line(&rx, "got:hello");
    stdin.write_all(b"quit\n").unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(3));
    assert_eq!(e.inspect("chat", "{{.State.Status}}"), "exited");

    // Attaching to a stopped container is refused as docker does.
    let (code, msg) = e.b.fails(&["attach", "chat"]);
    assert_eq!(code, 1);
    assert!(
        msg.contains("You cannot attach to a stopped container, start it first"),
        "{msg}"
    );
    let (code, msg) = e.b.fails(&["attach", "nosuch"]);
    assert_eq!(code, 1);
    assert!(msg.contains("No such container: nosuch"), "{msg}");
}

#[test]
fn attach_detach_keys_and_sig_proxy() {
    let e = Env::new();
    e.b.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "d1",
        &e.image,
        "sh",
        "-c",
        "trap 'echo TERM; exit 9' TERM; while true; do if read -t 1 x; then echo got:$x; fi; done",
    ]);
    // ctrl-p ctrl-q: docker's message, exit 1, the container runs on.
    let o = e.b.cmd_stdin(&["attach", "d1"], b"a\n\x10\x11");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("read escape sequence"), "{}", err(&o));
    assert_eq!(e.inspect("d1", "{{.State.Status}}"), "running");
    e.wait_for("input before the escape", || {
        out(&e.run(&["logs", "d1"])).contains("got:a")
    });
    // A custom sequence; the default one is then plain input.
    let o = e.b.cmd_stdin(
        &["attach", "--detach-keys", "ctrl-a", "d1"],
        b"\x10\x11b\n\x01",
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(e.inspect("d1", "{{.State.Status}}"), "running");
    // docker's config.json `detachKeys` is the default.
    let cfg = e.b.root().join("cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.json"), r#"{"detachKeys": "ctrl-x"}"#).unwrap();
    let cfg_s = cfg.display().to_string();
    let o =
        e.b.cmd_stdin(&["--config", &cfg_s, "attach", "d1"], b"c\n\x18");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("read escape sequence"), "{}", err(&o));
    let (code, msg) = e.b.fails(&["attach", "--detach-keys", "ctrl-1", "d1"]);
    assert_eq!(code, 1);
    assert!(
        msg.contains("Invalid detach keys (ctrl-1) provided"),
        "{msg}"
    );

    // --sig-proxy=false: a SIGTERM ends attach only.
    let mut c =
        e.b.command(&["attach", "--no-stdin", "--sig-proxy=false", "d1"]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    assert_eq!(e.inspect("d1", "{{.State.Status}}"), "running");

    // Default sig-proxy: the container gets the SIGTERM, attach returns its code.
    let mut c = e.b.command(&["attach", "--no-stdin", "d1"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let rx = spawn_reader(child.stdout.take().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_line(&rx, "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(9));
    assert_eq!(e.inspect("d1", "{{.State.ExitCode}}"), "9");
}

#[test]
fn attach_tty_output_and_no_stdin() {
    let e = Env::new();
    e.b.ok(&[
        "run",
        "-d",
        "-t",
        "-i",
        "--name",
        "tt",
        &e.image,
        "sh",
        "-c",
        "sleep 1; i=0; while [ $i -lt 5 ]; do echo tick$i; i=$((i+1)); sleep 0.2; done; exit 4",
    ]);
    // A tty container with stdin needs a terminal, as docker says.
    let (code, msg) = e.b.fails(&["attach", "tt"]);
    assert_eq!(code, 1);
    assert!(msg.contains("the input device is not a TTY"), "{msg}");
    let o = e.run(&["attach", "--no-stdin", "tt"]);
    assert_eq!(o.status.code(), Some(4), "{}", err(&o));
    // The pty turns \n into \r\n.
    assert!(out(&o).contains("tick4\r\n"), "{:?}", out(&o));

    // On a terminal (util-linux `script` gives attach one): typed input
    // reaches the shell, ctrl-p ctrl-q detaches in raw mode.
    e.b.ok(&["run", "-d", "-t", "-i", "--name", "sh1", &e.image, "sh"]);
    let mut child = on_tty(&e, "attach sh1");
    let mut stdin = child.stdin.take().unwrap();
    let rx = spawn_reader(child.stdout.take().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(b"echo hi-$((40+2))\r").unwrap();
    wait_line(&rx, "hi-42");
    stdin.write_all(b"\x10\x11").unwrap();
    wait_line(&rx, "read escape sequence");
    assert_eq!(child.wait().unwrap().code(), Some(1));
    assert_eq!(e.inspect("sh1", "{{.State.Status}}"), "running");
}

#[test]
fn stats_reports_plausible_numbers() {
    let e = Env::new();
    e.b.ok(&[
        "run",
        "-d",
        "-m",
        "64m",
        "--network",
        "none",
        "--name",
        "busy",
        &e.image,
        "sh",
        "-c",
        "dd if=/dev/zero of=/tmp/f bs=1M count=8 2>/dev/null; sleep 1000 & while true; do :; done",
    ]);
    e.b.ok(&[
        "run",
        "-d",
        "--network",
        "host",
        "--name",
        "idle",
        &e.image,
        "sleep",
        "1000",
    ]);
    e.b.ok(&["create", "--name", "never", &e.image, "true"]);
    let table = e.b.ok(&["stats", "--no-stream"]);
    let mut lines = table.lines();
    let head = lines.next().unwrap();
    for col in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ] {
        assert!(head.contains(col), "{table}");
    }
    // Running ones only, newest first.
    let names: Vec<&str> = lines
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(names, ["idle", "busy"], "{table}");

    let j =
        e.b.ok(&["stats", "--no-stream", "--format", "json", "busy"]);
    let v: serde_json::Value = serde_json::from_str(j.trim()).unwrap();
    assert_eq!(v["Name"], "busy");
    assert_eq!(v["Container"], "busy");
    assert_eq!(v["ID"].as_str().unwrap().len(), 12);
    let mem = v["MemUsage"].as_str().unwrap();
    assert!(mem.ends_with(" / 64MiB"), "{mem}");
    let cpu: f64 = v["CPUPerc"]
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(cpu > 1.0, "a busy loop shows CPU use: {v}");
    let memp: f64 = v["MemPerc"]
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(memp > 0.0 && memp <= 100.0, "{v}");
    let pids: u32 = v["PIDs"].as_str().unwrap().parse().unwrap();
    assert!((2..10).contains(&pids), "sh and sleep: {v}");
    assert_eq!(v["NetIO"], "0B / 0B", "network none: {v}");

    let idle = e.b.ok(&[
        "stats",
        "--no-stream",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.NetIO}} {{.PIDs}}",
        "idle",
    ]);
    let f: Vec<&str> = idle.split_whitespace().collect();
    assert_eq!(f[0].len(), 64);
    assert_eq!(
        &f[1..],
        ["0B", "/", "0B", "1"],
        "host network counts nothing: {idle}"
    );

    // -a adds the stopped one with zeros.
    let all = e.b.ok(&[
        "stats",
        "--no-stream",
        "-a",
        "--format",
        "{{.Name}} {{.CPUPerc}} {{.MemUsage}}",
    ]);
    assert!(all.lines().any(|l| l == "never 0.00% 0B / 0B"), "{all}");

    // Streaming without a terminal: a table per second, no escape codes.
    let mut c = e.b.command(&["stats", "idle"]);
    c.stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let rx = spawn_reader(child.stdout.take().unwrap());
    let first = wait_line(&rx, "idle");
    let second = wait_line(&rx, "idle");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first[0].starts_with("CONTAINER ID") && second[0].starts_with("CONTAINER ID"));
    assert!(!first.concat().contains('\x1b'));
    // On a terminal: docker's clear-and-home before each table.
    let mut child = on_tty(&e, "stats idle");
    let rx = spawn_reader(child.stdout.take().unwrap());
    let seen = wait_line(&rx, "idle");
    let seen2 = wait_line(&rx, "idle");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen.concat().contains("\x1b[2J\x1b[H"), "{seen:?}");
    assert!(seen2.concat().contains("\x1b[2J\x1b[H"), "{seen2:?}");
}

#[test]
fn update_changes_cgroups_and_survives_restart() {
    let e = Env::new();
    e.b.ok(&[
        "run", "-d", "-m", "64m", "--name", "upd", &e.image, "sleep", "1000",
    ]);
    let pid = pid_of(&e, "upd");
    let v1 = cgroup_dirs(pid).iter().any(|(c, _)| c == "memory");
    let (mem_file, ctrl) = if v1 {
        ("memory.limit_in_bytes", "memory")
    } else {
        ("memory.max", "")
    };
    assert_eq!(cg_file(pid, ctrl, mem_file), (64u64 << 20).to_string());
    assert_eq!(
        e.b.ok(&["update", "-m", "128m", "--memory-swap", "256m", "upd"]),
        "upd\n"
    );
    assert_eq!(cg_file(pid, ctrl, mem_file), (128u64 << 20).to_string());
    e.b.ok(&[
        "update",
        "--pids-limit",
        "33",
        "--cpus",
        "0.5",
        "-c",
        "512",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "--blkio-weight",
        "300",
        "upd",
    ]);
    if v1 {
        assert_eq!(cg_file(pid, "pids", "pids.max"), "33");
        assert_eq!(cg_file(pid, "cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cg_file(pid, "cpu", "cpu.shares"), "512");
        assert_eq!(cg_file(pid, "cpuset", "cpuset.cpus"), "0");
        assert_eq!(cg_file(pid, "cpuset", "cpuset.mems"), "0");
        let blkio = cgroup_dirs(pid)
            .into_iter()
            .find(|(c, _)| c == "blkio")
            .unwrap()
            .1;
        let w = ["blkio.weight", "blkio.bfq.weight"]
            .iter()
            .find_map(|f| std::fs::read_to_string(blkio.join(f)).ok())
            .unwrap();
        assert!(w.trim().ends_with("300"), "{w}");
    } else {
        assert_eq!(cg_file(pid, "", "pids.max"), "33");
        assert_eq!(cg_file(pid, "", "cpu.max"), "50000 100000");
    }
    assert_eq!(
        e.inspect(
            "upd",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpusetMems}} {{.HostConfig.BlkioWeight}}"
        ),
        format!("{} 500000000 33 0 300", 128u64 << 20)
    );

    // docker's checks and errors.
    let (code, msg) = e.b.fails(&["update", "upd"]);
    assert_eq!(code, 1);
    assert!(msg.contains("you must provide one or more flags"), "{msg}");
    let (code, msg) = e.b.fails(&["update", "--blkio-weight", "5", "upd"]);
    assert_eq!(code, 1);
    assert!(
        msg.contains("Range of blkio weight is from 10 to 1000"),
        "{msg}"
    );
    let (code, msg) = e.b.fails(&["update", "-m", "512m", "upd"]);
    assert_eq!(code, 1);
    assert!(
        msg.contains("update the memoryswap at the same time"),
        "{msg}"
    );
    let (code, msg) = e.b.fails(&["update", "-m", "100m", "nosuch"]);
    assert_eq!(code, 1);
    assert!(msg.contains("No such container: nosuch"), "{msg}");

    // A new restart policy is seen by the running monitor, and the new
    // limits are what the restarted container gets.
    e.b.ok(&["update", "--restart", "always", "upd"]);
    unsafe { libc::kill(pid, libc::SIGKILL) };
    e.wait_for("the restart", || {
        e.inspect("upd", "{{.RestartCount}} {{.State.Status}}") == "1 running"
    });
    let pid2 = pid_of(&e, "upd");
    assert_ne!(pid, pid2);
    assert_eq!(cg_file(pid2, ctrl, mem_file), (128u64 << 20).to_string());
    if v1 {
        assert_eq!(cg_file(pid2, "pids", "pids.max"), "33");
    }
    assert_eq!(
        e.inspect("upd", "{{.HostConfig.RestartPolicy.Name}}"),
        "always"
    );
    // And back to no: the next exit is final.
    e.b.ok(&["update", "--restart", "no", "upd"]);
    unsafe { libc::kill(pid2, libc::SIGKILL) };
    e.wait_for("the exit", || {
        e.inspect("upd", "{{.State.Status}}") == "exited"
    });
    assert_eq!(e.inspect("upd", "{{.RestartCount}}"), "1");
    // A stopped container's record is updated for its next start.
    e.b.ok(&["update", "-m", "96m", "--memory-swap", "-1", "upd"]);
    e.b.ok(&["start", "upd"]);
    assert_eq!(
        cg_file(pid_of(&e, "upd"), ctrl, mem_file),
        (96u64 << 20).to_string()
    );
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn cp_both_directions_with_docker_path_rules() {
    let e = Env::new();
    e.b.ok(&[
        "run", "-d", "--name", "cpc", "--tmpfs", "/scratch", "-h", "cphost", &e.image, "sleep",
        "1000",
    ]);
    e.b.ok(&[
        "exec", "cpc", "sh", "-c",
        "mkdir -p /data/sub && echo one > /data/f1 && echo two > /data/sub/f2 && ln -s f1 /data/lnk && chown 1000:1000 /data/f1",
    ]);
    let t = tempfile::tempdir().unwrap();
    let h = t.path();
    let hs = |p: &str| h.join(p).display().to_string();

    // A directory into an existing directory: the directory itself.
    e.b.ok(&["cp", "cpc:/data", &hs("")]);
    assert_eq!(
        std::fs::read_to_string(h.join("data/sub/f2")).unwrap(),
        "two\n"
    );
    assert_eq!(
        std::fs::read_link(h.join("data/lnk")).unwrap(),
        Path::new("f1")
    );
    // Without -a the files are the caller's; with -a they keep their owner.
    assert_eq!(std::fs::metadata(h.join("data/f1")).unwrap().uid(), 0);
    e.b.ok(&["cp", "-a", "cpc:/data/f1", &hs("owned")]);
    assert_eq!(std::fs::metadata(h.join("owned")).unwrap().uid(), 1000);
    // SRC/. copies the contents; a missing DEST is created.
    e.b.ok(&["cp", "cpc:/data/.", &hs("contents")]);
    assert!(h.join("contents/f1").is_file() && h.join("contents/sub/f2").is_file());
    // A file to a new name, and over an existing file.
    e.b.ok(&["cp", "cpc:/data/f1", &hs("renamed")]);
    assert_eq!(std::fs::read_to_string(h.join("renamed")).unwrap(), "one\n");
    e.b.ok(&["cp", "cpc:/data/sub/f2", &hs("renamed")]);
    assert_eq!(std::fs::read_to_string(h.join("renamed")).unwrap(), "two\n");
    // -L follows a symlink source; without it the link is copied.
    e.b.ok(&["cp", "cpc:/data/lnk", &hs("l1")]);
    assert!(std::fs::symlink_metadata(h.join("l1"))
        .unwrap()
        .file_type()
        .is_symlink());
    e.b.ok(&["cp", "-L", "cpc:/data/lnk", &hs("l2")]);
    assert_eq!(std::fs::read_to_string(h.join("l2")).unwrap(), "one\n");
    // `-`: a tar on stdout.
    let o = e.run(&["cp", "cpc:/data", "-"]);
    assert!(o.status.success(), "{}", err(&o));
    let names = tar_names(&o.stdout);
    for n in ["data", "data/f1", "data/sub", "data/sub/f2", "data/lnk"] {
        assert!(
            names.iter().any(|x| x.trim_end_matches('/') == n),
            "{n} in {names:?}"
        );
    }

    // Errors as docker gives them.
    let (code, msg) = e.b.fails(&["cp", "cpc:/nope", &hs("x")]);
    assert_eq!(code, 1);
    assert!(
        msg.contains("Could not find the file /nope in container cpc"),
        "{msg}"
    );
    let (_, msg) = e.b.fails(&["cp", "cpc:/data/f1", &hs("missing/dir/x")]);
    assert!(
        msg.contains("invalid output path: directory") && msg.contains("does not exist"),
        "{msg}"
    );
    let (_, msg) = e.b.fails(&["cp", "cpc:/data", &hs("renamed")]);
    assert!(msg.contains("cannot copy directory"), "{msg}");
    let (_, msg) = e.b.fails(&["cp", &hs("nope"), "cpc:/"]);
    assert!(msg.contains("no such file or directory"), "{msg}");
    let (_, msg) = e.b.fails(&["cp", &hs("renamed"), "cpc:/nodir/x"]);
    assert!(
        msg.contains("Could not find the file /nodir in container cpc"),
        "{msg}"
    );
    let (_, msg) = e.b.fails(&["cp", &hs("a"), &hs("b")]);
    assert!(
        msg.contains("must specify at least one container source"),
        "{msg}"
    );
    let (_, msg) = e.b.fails(&["cp", "cpc:/a", "cpc:/b"]);
    assert!(
        msg.contains("copying between containers is not supported"),
        "{msg}"
    );

    // Into the container: file, directory, new name, ownership.
    std::fs::write(h.join("hostfile"), "from host\n").unwrap();
    std::os::unix::fs::chown(h.join("hostfile"), Some(1234), Some(1234)).unwrap();
    e.b.ok(&["cp", &hs("hostfile"), "cpc:/tmp/"]);
    e.b.ok(&["cp", "-a", &hs("hostfile"), "cpc:/tmp/kept"]);
    assert_eq!(
        e.b.ok(&[
            "exec",
            "cpc",
            "sh",
            "-c",
            "cat /tmp/hostfile; stat -c %u /tmp/hostfile /tmp/kept"
        ]),
        "from host\n0\n1234\n"
    );
    e.b.ok(&["cp", &hs("data"), "cpc:/copied"]);
    assert_eq!(e.b.ok(&["exec", "cpc", "cat", "/copied/sub/f2"]), "two\n");
    e.b.ok(&["cp", &hs("data/."), "cpc:/etc"]);
    assert_eq!(e.b.ok(&["exec", "cpc", "cat", "/etc/f1"]), "one\n");
    // A running container is seen with its own mounts: a tmpfs, and the
    // hostname file berth bind-mounts.
    e.b.ok(&["cp", &hs("hostfile"), "cpc:/scratch/"]);
    assert_eq!(
        e.b.ok(&["exec", "cpc", "cat", "/scratch/hostfile"]),
        "from host\n"
    );
    e.b.ok(&["cp", "cpc:/etc/hostname", &hs("hn")]);
    assert_eq!(std::fs::read_to_string(h.join("hn")).unwrap(), "cphost\n");
    let all = e.run(&["cp", "cpc:/", "-"]);
    assert!(all.status.success(), "{}", err(&all));
    let names = tar_names(&all.stdout);
    assert!(names.iter().any(|n| n.trim_end_matches('/') == "proc"));
    assert!(
        !names.iter().any(|n| n.starts_with("proc/")),
        "no kernel files"
    );
    // On a terminal, docker's closing line; -q silences it.
    let o = on_tty(&e, &format!("cp cpc:/data/f1 {}", hs("tty1")))
        .wait_with_output()
        .unwrap();
    assert!(
        out(&o).contains("Successfully copied 2.05kB to"),
        "{}",
        out(&o)
    );
    let o = on_tty(&e, &format!("cp -q cpc:/data/f1 {}", hs("tty2")))
        .wait_with_output()
        .unwrap();
    assert!(!out(&o).contains("Successfully"), "{}", out(&o));
    // A tar on stdin.
    let mut b = tar::Builder::new(Vec::new());
    let mut hd = tar::Header::new_gnu();
    hd.set_size(4);
    hd.set_mode(0o600);
    b.append_data(&mut hd, "fromtar", &b"tar\n"[..]).unwrap();
    let o =
        e.b.cmd_stdin(&["cp", "-", "cpc:/tmp"], &b.into_inner().unwrap());
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        e.b.ok(&["exec", "cpc", "stat", "-c", "%a %s", "/tmp/fromtar"]),
        "600 4\n"
    );

    e.b.ok(&[
        "run",
        "-d",
        "--read-only",
        "--name",
        "ro",
        &e.image,
        "sleep",
        "1000",
    ]);
    let (code, msg) = e.b.fails(&["cp", &hs("hostfile"), "ro:/tmp/"]);
    assert_eq!(code, 1);
    assert!(
        msg.contains("container rootfs is marked read-only"),
        "{msg}"
    );
    e.b.ok(&["cp", "ro:/etc/passwd", &hs("ro-passwd")]);
    e.b.ok(&["rm", "-f", "ro"]);

    // A stopped container: mounted for the copy, unmounted after.
    e.b.ok(&["stop", "-t", "1", "cpc"]);
    e.b.ok(&["cp", &hs("hostfile"), "cpc:/stopped"]);
    e.b.ok(&["cp", "cpc:/stopped", &hs("back")]);
    assert_eq!(
        std::fs::read_to_string(h.join("back")).unwrap(),
        "from host\n"
    );
    assert_clean(e.b.root());
    e.b.ok(&["start", "cpc"]);
    assert_eq!(e.b.ok(&["exec", "cpc", "cat", "/stopped"]), "from host\n");
}

#[test]
fn cp_never_leaves_the_container_root_through_symlinks() {
    let e = Env::new();
    let t = tempfile::tempdir().unwrap();
    let host = t.path();
    std::fs::write(host.join("secret"), "HOST SECRET\n").unwrap();
    let hp = host.display().to_string();
    e.b.ok(&["run", "-d", "--name", "esc", &e.image, "sleep", "1000"]);
    let script = format!(
        "ln -s / /toroot && ln -s ../../../../../../.. /up && ln -s {hp}/secret /abs \
         && ln -s {hp} /hostdir && mkdir -p /d && ln -s ../../../../../../.. /d/up \
         && echo container-passwd > /pw && ln -s /pw /pwlink"
    );
    e.b.ok(&["exec", "esc", "sh", "-c", &script]);
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path();
    // Reads through links that point at the host's paths find nothing:
    // the links resolve inside the container.
    for src in [
        format!("esc:/toroot{hp}/secret"),
        format!("esc:/up{hp}/secret"),
        format!("esc:/d/up{hp}/secret"),
        "esc:/hostdir/secret".to_string(),
    ] {
        let (code, msg) = e.b.fails(&["cp", &src, &o.join("x").display().to_string()]);
        assert_eq!(code, 1, "{src}");
        assert!(msg.contains("Could not find the file"), "{src}: {msg}");
        assert!(!o.join("x").exists(), "{src} copied something");
    }
    let (code, _) =
        e.b.fails(&["cp", "-L", "esc:/abs", &o.join("x").display().to_string()]);
    assert_eq!(code, 1);
    assert!(!o.join("x").exists());
    // Copying the links themselves copies links, never their host targets.
    e.b.ok(&["cp", "esc:/abs", &o.join("abs").display().to_string()]);
    assert!(std::fs::symlink_metadata(o.join("abs"))
        .unwrap()
        .file_type()
        .is_symlink());
    e.b.ok(&["cp", "esc:/toroot/pw", &o.join("pw").display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(o.join("pw")).unwrap(),
        "container-passwd\n"
    );
    let o2 = e.run(&["cp", "esc:/", "-"]);
    assert!(o2.status.success(), "{}", err(&o2));
    assert!(!String::from_utf8_lossy(&o2.stdout).contains("HOST SECRET"));

    // Writes through the same links stay in the container.
    std::fs::write(o.join("payload"), "PAYLOAD\n").unwrap();
    let payload = o.join("payload").display().to_string();
    for dest in [
        format!("esc:/toroot{hp}/secret"),
        format!("esc:/up{hp}/"),
        "esc:/hostdir/secret".to_string(),
        "esc:/abs".to_string(),
    ] {
        let _ = e.run(&["cp", &payload, &dest]);
        assert_eq!(
            std::fs::read_to_string(host.join("secret")).unwrap(),
            "HOST SECRET\n",
            "{dest} wrote to the host"
        );
        assert!(!host.join("payload").exists(), "{dest} created a host file");
    }
    // `cp` to a link target that does not exist in the container creates it
    // there (docker follows DEST links, within the container).
    let made = e.b.ok(&[
        "exec",
        "esc",
        "sh",
        "-c",
        &format!("cat {hp}/secret 2>/dev/null || echo none"),
    ]);
    assert!(made == "PAYLOAD\n" || made == "none\n", "{made}");
    // A tar with links and entries through them cannot escape either.
    let mut b = tar::Builder::new(Vec::new());
    let mut hd = tar::Header::new_gnu();
    hd.set_entry_type(tar::EntryType::Symlink);
    hd.set_size(0);
    hd.set_mode(0o777);
    b.append_link(&mut hd, "esc", hp.as_str()).unwrap();
    let mut hd = tar::Header::new_gnu();
    hd.set_size(4);
    hd.set_mode(0o644);
    b.append_data(&mut hd, "esc/evil", &b"bad\n"[..]).unwrap();
    let _ =
        e.b.cmd_stdin(&["cp", "-", "esc:/tmp"], &b.into_inner().unwrap());
    assert!(
        !host.join("evil").exists(),
        "a tar entry followed a symlink to the host"
    );
}

#[test]
fn diff_export_commit_and_run_the_new_image() {
    let e = Env::new();
    e.b.ok(&["run", "-d", "--name", "src", &e.image, "sleep", "1000"]);
    e.b.ok(&[
        "exec", "src", "sh", "-c",
        "mkdir /added && echo new > /added/file && echo extra >> /etc/passwd && rm /etc/os-release /bin/true",
    ]);
    let diff = e.b.ok(&["diff", "src"]);
    assert_eq!(
        diff,
        "A /added\nA /added/file\nC /bin\nD /bin/true\nC /etc\nD /etc/os-release\nC /etc/passwd\n"
    );

    let o = e.run(&["export", "src"]);
    assert!(o.status.success(), "{}", err(&o));
    let names = tar_names(&o.stdout);
    assert!(names.iter().any(|n| n == "added/file"), "{names:?}");
    assert!(names.iter().any(|n| n == "bin/busybox"));
    assert!(!names
        .iter()
        .any(|n| n == "bin/true" || n == "etc/os-release"));
    let mut a = tar::Archive::new(&o.stdout[..]);
    let mut passwd = String::new();
    for en in a.entries().unwrap() {
        let mut en = en.unwrap();
        if en.path().unwrap() == Path::new("etc/passwd") {
            en.read_to_string(&mut passwd).unwrap();
        }
    }
    assert!(passwd.ends_with("extra\n"), "{passwd}");
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("x.tar");
    e.b.ok(&["export", "-o", &file.display().to_string(), "src"]);
    assert_eq!(std::fs::read(&file).unwrap().len(), o.stdout.len());

    // commit of the running container: paused during the commit, running after.
    let (code, msg) = e.b.fails(&["commit", "-c", "ADD . /", "src", "bad:1"]);
    assert_eq!(code, 1);
    assert!(msg.contains("ADD is not a valid change command"), "{msg}");
    let id = e.b.ok(&[
        "commit",
        "-m",
        "the message",
        "-a",
        "Jane <j@x>",
        "-c",
        "CMD [\"cat\", \"/added/file\"]",
        "-c",
        "ENV K=v",
        "-c",
        "LABEL role=test",
        "-c",
        "WORKDIR /added",
        "-c",
        "EXPOSE 8080",
        "src",
        "committed:1",
    ]);
    assert!(
        id.trim().starts_with("sha256:") && id.trim().len() == 71,
        "{id}"
    );
    assert_eq!(e.inspect("src", "{{.State.Status}}"), "running");
    assert!(!e
        .b
        .ok(&["images", "--format", "{{.Repository}}"])
        .contains("bad"));
    assert_eq!(e.b.ok(&["run", "--rm", "committed:1"]), "new\n");
    assert_eq!(
        e.b.ok(&[
            "run",
            "--rm",
            "committed:1",
            "sh",
            "-c",
            "echo $K $PWD; tail -1 /etc/passwd; ls /bin/true /etc/os-release 2>&1 | wc -l"
        ]),
        "v /added\nextra\n2\n"
    );
    let img = e.b.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Author}}|{{.Config.Labels.role}}|{{len .RootFS.Layers}}",
        "committed:1",
    ]);
    assert_eq!(img.trim(), "Jane <j@x>|test|2");
    let hist = e.b.ok(&[
        "history",
        "--format",
        "{{.Comment}}|{{.CreatedBy}}",
        "committed:1",
    ]);
    assert!(
        hist.lines()
            .next()
            .unwrap()
            .starts_with("the message|sleep 1000"),
        "{hist}"
    );
    // The image can be saved and pushed like any other.
    let saved = t.path().join("img.tar");
    e.b.ok(&["save", "-o", &saved.display().to_string(), "committed:1"]);
    assert!(std::fs::metadata(&saved).unwrap().len() > 0);
    let remote = e.reg.reference("t/committed", "1");
    e.b.ok(&["tag", "committed:1", &remote]);
    e.b.ok(&["push", &remote]);

    // Commit a stopped container, no tag: a dangling image that runs.
    e.b.ok(&["stop", "-t", "1", "src"]);
    let id2 = e.b.ok(&["commit", "--pause=false", "src"]);
    let id2 = id2.trim();
    assert_eq!(e.b.ok(&["run", "--rm", id2, "cat", "/added/file"]), "new\n");
    assert_clean(e.b.root());
}

#[test]
fn system_df_and_ps_size_show_containers() {
    let e = Env::new();
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "wr",
        &e.image,
        "sh",
        "-c",
        "head -c 5000 /dev/zero > /blob; sleep 1000",
    ]);
    e.b.ok(&["create", "--name", "idle", &e.image, "true"]);
    e.wait_for("the write", || {
        e.b.ok(&["ps", "-s", "--format", "{{.Size}}", "-f", "name=wr"])
            .starts_with("5kB")
    });
    let ps = e.b.ok(&["ps", "-a", "-s"]);
    assert!(ps.lines().next().unwrap().contains("SIZE"), "{ps}");
    assert!(ps.contains("5kB (virtual "), "{ps}");
    let df = e.b.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}}",
    ]);
    assert!(df.lines().any(|l| l == "Containers 2 1 5kB"), "{df}");
    assert!(df.lines().any(|l| l.starts_with("Images 1 1 ")), "{df}");
    let v = e.b.ok(&["system", "df", "-v"]);
    assert!(v.contains("Containers space usage:"), "{v}");
    assert!(
        v.lines()
            .any(|l| l.contains("running") && l.ends_with(" wr")),
        "{v}"
    );
}

#[test]
fn system_boot_starts_always_and_unless_stopped_after_reboot() {
    let e = Env::new();
    for (name, policy) in [
        ("al", "always"),
        ("al-stopped", "always"),
        ("us", "unless-stopped"),
        ("us-stopped", "unless-stopped"),
        ("of", "on-failure"),
        ("no", "no"),
    ] {
        e.b.ok(&[
            "run",
            "-d",
            "--restart",
            policy,
            "--name",
            name,
            &e.image,
            "sleep",
            "1000",
        ]);
    }
    e.b.ok(&["stop", "-t", "1", "al-stopped", "us-stopped"]);
    // Never started: boot leaves it alone, as docker's daemon does.
    e.b.ok(&[
        "create",
        "--restart",
        "always",
        "--name",
        "al-created",
        &e.image,
        "true",
    ]);
    // The reboot: every monitor and container process dies, mounts and
    // cgroups go, the run directory is empty.
    let ids = e.b.ok(&["ps", "-q", "--no-trunc"]);
    let mut cgroups = Vec::new();
    let mut pids = Vec::new();
    for id in ids.lines() {
        let st: serde_json::Value = serde_json::from_slice(
            &std::fs::read(e.b.root().join("containers").join(id).join("state.json")).unwrap(),
        )
        .unwrap();
        let pid = st["Pid"].as_i64().unwrap() as i32;
        let mon = st["MonitorPid"].as_i64().unwrap() as i32;
        cgroups.extend(cgroup_dirs(pid).into_iter().map(|(_, p)| p));
        unsafe {
            libc::kill(mon, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
        pids.push(pid);
    }
    reap_monitors(Duration::from_secs(5));
    // The container processes were the monitors' children: now ours.
    for pid in pids {
        let until = Instant::now() + Duration::from_secs(5);
        while unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for id in ids.lines() {
        let merged = e.b.root().join("containers").join(id).join("merged");
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&merged)
            .status();
    }
    cgroups.sort();
    cgroups.dedup();
    for d in &cgroups {
        let until = Instant::now() + Duration::from_secs(10);
        while std::fs::remove_dir(d).is_err() && d.exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // A reboot also drops the network namespace handles bound under run/.
    common::berth::unmount_all_under(&e.b.root().join("run"));
    std::fs::remove_dir_all(e.b.root().join("run")).unwrap();
    assert_eq!(e.b.ok(&["ps", "-q"]), "");

    let booted = e.b.ok(&["system", "boot"]);
    let mut names: Vec<&str> = booted.lines().collect();
    names.sort();
    assert_eq!(names, ["al", "al-stopped", "of", "us"], "{booted}");
    let running = e.b.ok(&["ps", "--format", "{{.Names}}"]);
    let mut running: Vec<&str> = running.lines().collect();
    running.sort();
    assert_eq!(running, ["al", "al-stopped", "of", "us"]);
    for n in ["al", "us"] {
        assert_eq!(e.b.ok(&["exec", n, "echo", "up"]), "up\n");
    }
    // Running twice starts nothing more.
    assert_eq!(e.b.ok(&["system", "boot"]), "");
}

#[test]
fn commit_on_a_docker_media_type_image_pushes_and_pulls_back() {
    use common::image::{ImageBuilder, Media};
    let e = Env::with(ImageBuilder::new().media(Media::Docker));
    e.b.ok(&[
        "run",
        "--name",
        "dm",
        &e.image,
        "sh",
        "-c",
        "echo docker-base > /mark",
    ]);
    let remote = e.reg.reference("t/dcommit", "2");
    e.b.ok(&["commit", "dm", &remote]);
    e.b.ok(&["push", &remote]);
    // Fetched back into a fresh store, it runs with the change.
    let b2 = common::berth::Berth::new();
    b2.ok(&["pull", "-q", &remote]);
    assert_eq!(
        b2.ok(&["run", "--rm", &remote, "cat", "/mark"]),
        "docker-base\n"
    );
    reap_monitors(Duration::from_secs(5));
}

#[test]
fn start_while_copying_from_a_stopped_container() {
    let e = Env::new();
    e.b.ok(&["create", "--name", "busycp", &e.image, "sleep", "1000"]);
    let t = tempfile::tempdir().unwrap();
    let big = t.path().join("big");
    std::fs::write(&big, vec![7u8; 64 << 20]).unwrap();
    e.b.ok(&["cp", &big.display().to_string(), "busycp:/big"]);
    let back = t.path().join("back");
    let mut cp =
        e.b.command(&["cp", "busycp:/big", &back.display().to_string()]);
    cp.stdout(Stdio::null()).stderr(Stdio::piped());
    let child = cp.spawn().unwrap();
    // The start waits for the copy's hold on the mount, then runs.
    e.b.ok(&["start", "busycp"]);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::metadata(&back).unwrap().len(), 64 << 20);
    assert_eq!(
        e.b.ok(&["exec", "busycp", "sh", "-c", "wc -c < /big"])
            .trim(),
        (64u64 << 20).to_string()
    );
    e.b.ok(&["rm", "-f", "busycp"]);
    assert_clean(e.b.root());
}

/// Mounts in this process's view naming `needle` (leaks of the copy's).
fn mounts_naming(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

#[test]
fn cp_on_a_stopped_container_sees_its_volumes_and_binds() {
    let e = Env::new();
    let t = tempfile::tempdir().unwrap();
    let hb = t.path().join("hb");
    let rb = t.path().join("rb");
    std::fs::create_dir_all(&hb).unwrap();
    std::fs::create_dir_all(&rb).unwrap();
    std::fs::write(hb.join("hostfile"), "from host\n").unwrap();
    std::fs::write(rb.join("ro"), "read only\n").unwrap();
    std::fs::write(t.path().join("secret"), "HOST SECRET\n").unwrap();
    let (hbs, rbs) = (hb.display().to_string(), rb.display().to_string());
    let hp = t.path().display().to_string();
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "vc",
        "-v",
        "cpvol:/data",
        "-v",
        "/anon",
        "-v",
        &format!("{hbs}:/bind"),
        "-v",
        &format!("{rbs}:/robind:ro"),
        &e.image,
        "sleep",
        "1000",
    ]);
    let script = "echo invol > /data/f && echo inanon > /anon/g \
                  && ln -s ../../../../../../.. /data/up && ln -s / /data/root";
    e.b.ok(&["exec", "vc", "sh", "-c", script]);
    // docker refuses a write into a read-only mount, running or not
    let o = t.path().join("payload");
    std::fs::write(&o, "PAYLOAD\n").unwrap();
    let payload = o.display().to_string();
    let (code, msg) = e.b.fails(&["cp", &payload, "vc:/robind/x"]);
    assert_eq!(code, 1);
    assert!(msg.contains("mounted volume is marked read-only"), "{msg}");
    e.b.ok(&["stop", "-t", "0", "vc"]);
    let id = e.inspect("vc", "{{.Id}}");

    // reads: named and anonymous volumes, binds
    let out_dir = tempfile::tempdir().unwrap();
    let od = out_dir.path();
    for (src, want) in [
        ("vc:/data/f", "invol\n"),
        ("vc:/anon/g", "inanon\n"),
        ("vc:/bind/hostfile", "from host\n"),
        ("vc:/robind/ro", "read only\n"),
    ] {
        let dst = od.join("x");
        e.b.ok(&["cp", src, &dst.display().to_string()]);
        assert_eq!(std::fs::read_to_string(&dst).unwrap(), want, "{src}");
        std::fs::remove_file(&dst).unwrap();
    }
    // a directory copy out of the volume
    let dd = od.join("datadir");
    e.b.ok(&["cp", "vc:/data", &dd.display().to_string()]);
    assert_eq!(std::fs::read_to_string(dd.join("f")).unwrap(), "invol\n");

    // writes land in the volume and the bind
    e.b.ok(&["cp", &payload, "vc:/data/new"]);
    e.b.ok(&["cp", &payload, "vc:/bind/new"]);
    assert_eq!(
        std::fs::read_to_string(hb.join("new")).unwrap(),
        "PAYLOAD\n"
    );
    let (code, msg) = e.b.fails(&["cp", &payload, "vc:/robind/x"]);
    assert_eq!(code, 1);
    assert!(msg.contains("mounted volume is marked read-only"), "{msg}");
    assert!(!rb.join("x").exists());

    // symlinks inside a volume resolve in the container's root
    let (code, msg) = e.b.fails(&[
        "cp",
        &format!("vc:/data/up{hp}/secret"),
        &od.join("s").display().to_string(),
    ]);
    assert_eq!(code, 1);
    assert!(msg.contains("Could not find the file"), "{msg}");
    assert!(!od.join("s").exists());
    let _ = e.run(&["cp", &payload, &format!("vc:/data/root{hp}/")]);
    let _ = e.run(&["cp", &payload, &format!("vc:/data/up{hp}/secret")]);
    assert_eq!(
        std::fs::read_to_string(t.path().join("secret")).unwrap(),
        "HOST SECRET\n"
    );
    assert!(!t.path().join("payload-copied").exists());

    // nothing of the copy is left mounted on the host
    assert!(mounts_naming(&id).is_empty(), "{:?}", mounts_naming(&id));

    // the container sees what cp wrote, in its volume
    e.b.ok(&["start", "vc"]);
    assert_eq!(e.b.ok(&["exec", "vc", "cat", "/data/new"]), "PAYLOAD\n");
    e.b.ok(&["rm", "-f", "-v", "vc"]);
    e.b.ok(&["volume", "rm", "cpvol"]);
}

/// `rename` and `update` both rewrite container.json; run together, each
/// must keep the other's change (they share the container's lock).
#[test]
fn concurrent_rename_and_update_lose_nothing() {
    let e = Env::new();
    e.b.ok(&["create", "--name", "ru0", &e.image, "true"]);
    let id = e.inspect("ru0", "{{.Id}}");
    let rounds = 15;
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..rounds {
                let (from, to) = (format!("ru{i}"), format!("ru{}", i + 1));
                e.b.ok(&["rename", &from, &to]);
            }
        });
        s.spawn(|| {
            for i in 0..rounds {
                e.b.ok(&["update", "--cpu-shares", &(512 + i).to_string(), &id]);
            }
        });
    });
    assert_eq!(e.inspect(&id, "{{.Name}}"), format!("/ru{rounds}"));
    assert_eq!(
        e.inspect(&id, "{{.HostConfig.CpuShares}}"),
        (512 + rounds - 1).to_string()
    );
}
