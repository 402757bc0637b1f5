//! berth on a cgroup-v2-only host. This machine is v1 hybrid, so the test
//! boots Debian's kernel under qemu (TCG; `BERTH_VM_KVM=1` for KVM) with only
//! cgroup2 mounted and runs scripts/vm/cgv2-checks.sh there as PID 1: real
//! run/update/stats/pause/rm/OOM/runtime checks against cgroup2 files. The
//! script prints `CHECK <name> ok|fail <detail>` lines on the serial console.
//! The kernel is cached under `<target>/vm/kernel` (apt-get download, not
//! installed); the initramfs and console log live in a temp dir.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every check the VM script runs; a missing one fails the test like a
/// failed one, so a script that dies early cannot pass.
const CHECKS: &[&str] = &[
    "v2-only",
    "load",
    "run-limits",
    "run-swap",
    "cgroupns",
    "run-weights",
    "devices-deny",
    "devices-allow",
    "nested-session",
    "stats-blkio",
    "oom-exit",
    "oom-killed",
    "cgroup-dir",
    "run-d-memory",
    "update-memory",
    "update-swap",
    "update-pids",
    "update-cpus",
    "update-inspect",
    "stats",
    "exec-cgroup",
    "exec-procs",
    "update-more",
    "top",
    "pause-freeze",
    "pause-frozen",
    "pause-status",
    "unpause-freeze",
    "unpause-status",
    "update-paused",
    "restart-limits",
    "pause-busy",
    "rm-cgroup",
    "runtime-run",
    "runtime-cgroup",
    "runtime-bfq",
    "cgroups-left",
];

/// TCG boots and runs everything in ~20 s here; 240 s leaves room for a
/// loaded machine while keeping a hung VM from hanging the suite.
/// `BERTH_VM_TIMEOUT` (seconds) overrides it.
fn timeout() -> Duration {
    let secs = std::env::var("BERTH_VM_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(240);
    Duration::from_secs(secs)
}

/// Kills the script and qemu (its own process group) however the test ends.
struct Vm(Child);

impl Drop for Vm {
    fn drop(&mut self) {
        let pgid = self.0.id() as i32;
        // SAFETY: signals only the process group this test created.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

fn kernel_cache(berth: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_VM_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    // <target>/<profile>/berth -> <target>/vm/kernel
    match berth.parent().and_then(Path::parent) {
        Some(target) => target.join("vm/kernel"),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/vm/kernel")),
    }
}

/// Parses `CHECK name result detail` lines; console lines may carry `\r`
/// and escape sequences before the word CHECK.
fn checks(console: &str) -> Vec<(String, String, String)> {
    console
        .lines()
        .filter_map(|l| {
            let l = l.trim_end_matches('\r');
            let rest = &l[l.find("CHECK ")? + 6..];
            let mut it = rest.splitn(3, ' ');
            Some((
                it.next()?.to_string(),
                it.next()?.to_string(),
                it.next().unwrap_or("").trim().to_string(),
            ))
        })
        .collect()
}

#[test]
fn parses_check_lines() {
    let c = checks("noise\r\n\x1b[2JCHECK v2-only ok cgroup2fs x\r\nCHECK stats fail 0B / 0B\n");
    assert_eq!(
        c,
        vec![
            ("v2-only".into(), "ok".into(), "cgroup2fs x".into()),
            ("stats".into(), "fail".into(), "0B / 0B".into()),
        ]
    );
}

#[test]
fn berth_on_a_cgroup_v2_only_kernel() {
    let berth = common::berth::berth_bin();
    let cache = kernel_cache(&berth);
    let work = common::proc::owned_temp_dir("cgv2vm");
    let log = work.path().join("console.log");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/vm-cgv2.sh");
    let child = Command::new(script)
        .arg("run")
        .arg(&berth)
        .arg(&cache)
        .arg(work.path().join("vm"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::from(
            std::fs::File::create(work.path().join("stderr")).unwrap(),
        ))
        .process_group(0)
        .spawn()
        .unwrap();
    let mut vm = Vm(child);
    let start = Instant::now();
    let limit = timeout();
    let status = loop {
        if let Some(s) = vm.0.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    drop(vm);
    let console = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    let stderr = std::fs::read_to_string(work.path().join("stderr")).unwrap_or_default();
    let diag = format!("console:\n{console}\nstderr:\n{stderr}");
    let Some(status) = status else {
        panic!("VM did not power off within {limit:?}\n{diag}");
    };
    assert!(status.success(), "vm-cgv2.sh run failed: {status}\n{diag}");
    assert!(
        console.contains("VM-DONE"),
        "the check script did not finish\n{diag}"
    );

    let got = checks(&console);
    let failed: Vec<_> = got.iter().filter(|(_, r, _)| r != "ok").collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}\n{diag}");
    for name in CHECKS {
        assert!(
            got.iter().any(|(n, _, _)| n == name),
            "check {name} missing from the console\n{diag}"
        );
    }
    assert_eq!(got.len(), CHECKS.len(), "unexpected checks: {got:#?}");
    eprintln!(
        "cgroup v2 VM: {} checks ok in {:?}",
        got.len(),
        start.elapsed()
    );
}
