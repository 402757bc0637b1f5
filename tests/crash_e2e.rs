//! kill -9 of the CLI and of the monitor at random moments of create,
//! start, stop and rm: afterwards `ps -a` must show a sane state, `rm -f`
//! and `container prune` must clean everything, and nothing may be left:
//! no mount, no cgroup, no process, no runtime state.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use common::berth::mounts_under;
use common::cgroupfs;
use common::ctr::{err, out, reap_monitors, Env};

/// xorshift: the seed is printed so a failing run can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Our own children named berth-monitor (the monitors double-fork and this
/// test is their subreaper), alive.
fn live_monitors() -> Vec<i32> {
    common::ctr::own_children_named(&["berth-monitor"])
        .into_iter()
        .filter(|(_, state)| *state != 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

fn container_ids(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root.join("containers"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() == 64)
                .collect()
        })
        .unwrap_or_default()
}

/// Processes whose cgroup names one of `ids` (a container's processes).
fn processes_of(ids: &BTreeSet<String>) -> Vec<i32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            continue;
        };
        if ids.iter().any(|id| cg.contains(id.as_str())) {
            v.push(pid);
        }
    }
    v
}

/// Runs `args` in the background and kills it with SIGKILL after `delay`
/// (and, when `monitor_too`, every live monitor of ours at the same moment).
fn run_and_kill(e: &Env, args: &[&str], delay: Duration, monitor_too: bool) {
    let mut child =
        e.b.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    if monitor_too {
        for m in live_monitors() {
            unsafe {
                libc::kill(m, libc::SIGKILL);
            }
        }
    }
    let _ = child.wait();
    reap_monitors(Duration::from_millis(200));
}

#[test]
fn kill_9_of_cli_and_monitor_at_any_step() {
    let e = Env::new();
    // CRASH_SEED replays a failed run's rounds.
    let seed = match std::env::var("CRASH_SEED") {
        Ok(s) => s.trim().parse::<u64>().expect("CRASH_SEED: a number") | 1,
        Err(_) => {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        }
    };
    eprintln!("crash seed {seed}");
    let mut rng = Rng(seed);
    let mut seen = BTreeSet::new();
    let rounds = 24;
    for round in 0..rounds {
        let name = format!("crash{round}");
        let delay = Duration::from_millis(rng.below(250));
        let monitor_too = rng.below(2) == 0;
        let step = round % 4;
        match step {
            // create (the CLI only; no monitor yet) or run -d (CLI + monitor)
            0 => {
                let args: Vec<&str> = if monitor_too {
                    vec!["run", "-d", "--name", &name, &e.image, "sleep", "1000"]
                } else {
                    vec!["create", "--name", &name, &e.image, "sleep", "1000"]
                };
                run_and_kill(&e, &args, delay, monitor_too);
            }
            // start
            1 => {
                e.b.ok(&["create", "--name", &name, &e.image, "sleep", "1000"]);
                run_and_kill(&e, &["start", &name], delay, monitor_too);
            }
            // stop
            2 => {
                e.b.ok(&["run", "-d", "--name", &name, &e.image, "sleep", "1000"]);
                run_and_kill(&e, &["stop", "-t", "1", &name], delay, monitor_too);
            }
            // rm -f
            _ => {
                e.b.ok(&["run", "-d", "--name", &name, &e.image, "sleep", "1000"]);
                run_and_kill(&e, &["rm", "-f", &name], delay, monitor_too);
            }
        }
        seen.extend(container_ids(e.b.root()));
        // Every command still works and tells a sane state.
        let ps = e.run(&[
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Names}} {{.State}}",
        ]);
        assert_eq!(
            ps.status.code(),
            Some(0),
            "round {round} (seed {seed}): {}",
            err(&ps)
        );
        for l in out(&ps).lines() {
            let state = l.rsplit(' ').next().unwrap();
            assert!(
                [
                    "created",
                    "running",
                    "exited",
                    "restarting",
                    "paused",
                    "removing",
                    "dead"
                ]
                .contains(&state),
                "round {round} (seed {seed}): {l}"
            );
        }
        // A container that ps calls running really runs, or its live
        // monitor is about to record the exit (the window docker has too).
        for l in out(&ps).lines().filter(|l| l.ends_with(" running")) {
            let id = l.split(' ').next().unwrap();
            let until = Instant::now() + Duration::from_secs(20);
            loop {
                let s = e.inspect(id, "{{.State.Status}} {{.State.Pid}}");
                let (status, pid) = s.split_once(' ').unwrap();
                let pid: i32 = pid.parse().unwrap();
                if status != "running" || (pid > 0 && Path::new(&format!("/proc/{pid}")).exists()) {
                    break;
                }
                assert!(
                    Instant::now() < until,
                    "round {round} (seed {seed}): running without a process: {l}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // What a later command does with it: rm -f cleans it, whatever state.
        if round % 3 == 2 {
            let o = e.run(&["rm", "-f", &name]);
            assert!(
                o.status.success() || err(&o).contains("No such container"),
                "round {round} (seed {seed}): rm -f {name}: {}",
                err(&o)
            );
        }
    }
    // Stop what runs, then prune removes everything stopped.
    let ids = out(&e.run(&["ps", "-q", "--no-trunc"]));
    for id in ids.lines() {
        let o = e.run(&["stop", "-t", "1", id]);
        assert!(o.status.success(), "stop {id} (seed {seed}): {}", err(&o));
    }
    let o = e.run(&["container", "prune", "-f"]);
    assert!(o.status.success(), "prune (seed {seed}): {}", err(&o));
    reap_monitors(Duration::from_secs(5));
    let left = out(&e.run(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]));
    assert_eq!(left, "", "prune left containers (seed {seed})");
    assert!(
        container_ids(e.b.root()).is_empty(),
        "container dirs left (seed {seed})"
    );
    let m = mounts_under(e.b.root());
    assert!(m.is_empty(), "mounts left (seed {seed}): {m:?}");
    let rt = e.b.root().join("run").join("runtime");
    let states: Vec<_> = std::fs::read_dir(&rt)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        states.is_empty(),
        "runtime state left (seed {seed}): {:#?}",
        states
            .iter()
            .map(|s| {
                let d = rt.join(s);
                let files: Vec<String> = std::fs::read_dir(&d)
                    .map(|rd| {
                        rd.flatten()
                            .map(|f| f.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                let st = std::fs::read_to_string(d.join("state.json")).unwrap_or_default();
                format!("{s:?}: {files:?} {st}")
            })
            .collect::<Vec<_>>()
    );
    let procs = processes_of(&seen);
    assert!(
        procs.is_empty(),
        "container processes left (seed {seed}): {procs:?}"
    );
    let ids: Vec<String> = seen.iter().cloned().collect();
    let cg = cgroupfs::leftovers(&ids);
    assert!(cg.is_empty(), "cgroups left (seed {seed}): {cg:?}");
    assert!(live_monitors().is_empty(), "monitors left (seed {seed})");
}

/// Round `round`'s `rm -f` of `name` succeeded and `ps -a` no longer
/// lists it.
fn assert_removed(e: &Env, round: u64, name: &str, rm: &std::process::Output) {
    assert!(
        rm.status.success(),
        "round {round}: rm -f {name}: {}",
        err(rm)
    );
    assert!(
        !e.b.ok(&["ps", "-a", "--format", "{{.Names}}"])
            .contains(name),
        "round {round}: {name} still listed"
    );
}

/// After a test's rounds: no monitor left alive, nothing mounted under the
/// root.
fn assert_no_monitor_or_mount(e: &Env) {
    reap_monitors(Duration::from_secs(10));
    assert!(
        live_monitors().is_empty(),
        "monitors left: {:?}",
        live_monitors()
    );
    let m = mounts_under(e.b.root());
    assert!(m.is_empty(), "mounts left: {m:?}");
}

/// `rm -f` while a monitor is still starting the container (its `start`
/// runs, or was killed): the record says `created` until the process runs.
/// rm -f once waited 2 x 10 s for that monitor, then failed with EBUSY on
/// the mounted rootfs; it must kill what the monitor starts and remove it.
#[test]
fn rm_force_during_start_kills_what_the_monitor_starts() {
    let e = Env::new();
    for round in 0..6u64 {
        let name = format!("racing{round}");
        let id =
            e.b.ok(&["create", "--name", &name, &e.image, "sleep", "1000"]);
        let before = live_monitors();
        let lock =
            e.b.root()
                .join("run/containers")
                .join(id.trim())
                .join("monitor.lock");
        let mut start =
            e.b.command(&["start", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
        // Freeze the monitor as soon as it exists (before the process runs),
        // send rm -f, and let the monitor go on a moment later: rm -f sees
        // `created` with a live monitor that is about to start the process.
        // Polled without sleeping: the window is a few milliseconds.
        let until = Instant::now() + Duration::from_secs(10);
        let monitor = loop {
            if lock.exists() {
                if let Some(p) = live_monitors().into_iter().find(|p| !before.contains(p)) {
                    break p;
                }
            }
            assert!(Instant::now() < until, "round {round}: no monitor");
            std::thread::yield_now();
        };
        std::thread::sleep(Duration::from_micros(round * 200));
        unsafe { libc::kill(monitor, libc::SIGSTOP) };
        let t = Instant::now();
        let rm =
            e.b.command(&["rm", "-f", &name])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        unsafe { libc::kill(monitor, libc::SIGCONT) };
        let o = rm.wait_with_output().unwrap();
        let took = t.elapsed();
        let _ = start.wait();
        assert_removed(&e, round, &name, &o);
        assert!(
            took < Duration::from_secs(8),
            "round {round}: rm -f took {took:?}"
        );
    }
    assert_no_monitor_or_mount(&e);
}

/// `start` and `rm -f` sent together, in both orders by chance: `rm -f`
/// always succeeds; `start` either ran first (and its container was then
/// killed) or found the container gone. Nothing is left behind.
#[test]
fn start_and_rm_force_together_are_ordered() {
    let e = Env::new();
    for round in 0..10u64 {
        let name = format!("both{round}");
        e.b.ok(&["create", "--name", &name, &e.image, "sleep", "1000"]);
        let start =
            e.b.command(&["start", &name])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
        std::thread::sleep(Duration::from_micros(round * 400));
        let o = e.run(&["rm", "-f", &name]);
        let s = start.wait_with_output().unwrap();
        assert!(
            s.status.success() || err(&s).contains("No such container"),
            "round {round}: start {name}: {}",
            err(&s)
        );
        assert_removed(&e, round, &name, &o);
    }
    assert_no_monitor_or_mount(&e);
    let locks: Vec<_> = std::fs::read_dir(e.b.root().join("locks"))
        .unwrap()
        .filter_map(|d| d.ok())
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("lifecycle-") || n.starts_with("container-"))
        .filter(|n| n != "container-names.lock")
        .collect();
    assert!(locks.is_empty(), "lock files left: {locks:?}");
}

/// kill -9 of a monitor while the runtime makes the container's cgroups
/// (one `mkdir` per v1 hierarchy, well under a millisecond in all): every
/// directory that exists must already be named by the runtime's record,
/// else `rm -f` cannot know it and it stays forever (the crash test above
/// hit this about once in 30 runs). The monitor is stopped as soon as the
/// first directory appears, the record read, then the monitor killed.
#[test]
fn monitor_killed_while_the_cgroups_are_made_leaves_none() {
    let e = Env::new();
    // Where the runtime puts `berth-<id>`: under our own cgroup on v1,
    // beside it on v2.
    let bases: BTreeSet<PathBuf> = cgroupfs::cgroup_dirs(std::process::id() as i32)
        .into_values()
        .flat_map(|d| [d.parent().map(Path::to_path_buf), Some(d)])
        .flatten()
        .collect();
    for round in 0..8u64 {
        let name = format!("mkcg{round}");
        let id =
            e.b.ok(&["create", "--name", &name, &e.image, "sleep", "1000"])
                .trim()
                .to_string();
        let cgs: Vec<PathBuf> = bases
            .iter()
            .map(|b| b.join(format!("berth-{id}")))
            .collect();
        let before = live_monitors();
        let mut start =
            e.b.command(&["start", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
        // Polled without sleeping: the window is a fraction of a millisecond.
        let until = Instant::now() + Duration::from_secs(10);
        let monitor = loop {
            if let Some(p) = live_monitors().into_iter().find(|p| !before.contains(p)) {
                break p;
            }
            assert!(Instant::now() < until, "round {round}: no monitor");
            std::thread::yield_now();
        };
        while !cgs.iter().any(|d| d.exists()) && Instant::now() < until {}
        unsafe { libc::kill(monitor, libc::SIGSTOP) };
        let made: Vec<&PathBuf> = cgs.iter().filter(|d| d.exists()).collect();
        let state = e.b.root().join("run/runtime").join(&id).join("state.json");
        let recorded: Vec<PathBuf> = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["cgroup"]["created"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.as_str().map(PathBuf::from))
            .collect();
        unsafe { libc::kill(monitor, libc::SIGKILL) };
        let _ = start.kill();
        let _ = start.wait();
        reap_monitors(Duration::from_millis(200));
        let rm = e.run(&["rm", "-f", &name]);
        // Ours alone (named by this container's id): removed even when the
        // test fails, so no run leaves them.
        let left = cgroupfs::leftovers(std::slice::from_ref(&id));
        for d in &left {
            let _ = std::fs::remove_dir(d);
        }
        assert!(!made.is_empty(), "round {round}: no cgroup was made");
        let unrecorded: Vec<_> = made.iter().filter(|d| !recorded.contains(d)).collect();
        assert!(
            unrecorded.is_empty(),
            "round {round}: made before the record named them: {unrecorded:?} (record: {recorded:?})"
        );
        assert_removed(&e, round, &name, &rm);
        assert!(left.is_empty(), "round {round}: cgroups left: {left:?}");
    }
    assert_no_monitor_or_mount(&e);
}
