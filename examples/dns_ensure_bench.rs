//! Measures `engine::dns::ensure_running`, which the monitor calls on every
//! container start on a user-defined network: cold (spawns `__dns` and
//! waits until it listens) and warm (a resolver runs: one flock probe).
//! The state dir holds one network file with one lease and no bridge (the
//! resolver binds the gateway with IP_FREEBIND; no packet is sent). This
//! binary answers `__dns` itself and is the child subreaper that reaps the
//! resolvers. Root: `cargo run --example dns_ensure_bench -- 20 2000`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use netns::{Lease, NetworkState};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn write_state(dir: &std::path::Path, with_lease: bool) -> std::io::Result<()> {
    let mut leases = BTreeMap::new();
    if with_lease {
        let id = format!("{:0>64}", 1);
        leases.insert(
            id.clone(),
            Lease {
                container_id: id,
                ip: [10, 126, 201, 2].into(),
                ip6: None,
                mac: [2, 0x42, 10, 126, 201, 2],
                ifname: "eth0".into(),
                host_veth: "vbbench".into(),
                netns_path: dir.join("none"),
                name: "bench".into(),
                aliases: vec![],
                ports: vec![],
                dns: vec![],
                port_rules: Vec::new(),
                redirects: Vec::new(),
            },
        );
    }
    let st = NetworkState {
        id: format!("{:0>64}", 2),
        name: "bench".into(),
        bridge: "btnone".into(),
        subnet: "10.126.201.0/24".parse().map_err(std::io::Error::other)?,
        gateway: [10, 126, 201, 1].into(),
        ip_range: None,
        internal: true,
        mtu: None,
        link_mtu: None,
        labels: BTreeMap::new(),
        table: "none".into(),
        leases,
        v6: None,
    };
    let nets = dir.join("networks");
    std::fs::create_dir_all(&nets)?;
    let tmp = nets.join(".bench.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(&st).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, nets.join("bench.json"))
}

/// Waits for our resolver child to exit and reaps it.
fn reap_all() {
    loop {
        // SAFETY: reaping our own (adopted) children.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) };
        if r <= 0 {
            return;
        }
    }
}

/// VmRSS and private dirty memory (Private_Dirty, from smaps_rollup) of
/// our berth-dns child.
fn resolver_memory() -> Option<(String, String)> {
    let me = std::process::id().to_string();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |text: &str, k: &str| {
            text.lines()
                .find(|l| l.starts_with(k))
                .map(|l| l[k.len()..].trim().to_string())
        };
        if field(&status, "Name:").as_deref() != Some("berth-dns")
            || field(&status, "PPid:").as_deref() != Some(me.as_str())
        {
            continue;
        }
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        return Some((field(&status, "VmRSS:")?, field(&smaps, "Private_Dirty:")?));
    }
    None
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(code) = berth::engine::container::hidden_entry() {
        std::process::exit(code);
    }
    // SAFETY: marks this process as the reaper of its orphaned descendants.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut args = std::env::args().skip(1);
    let cold_runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let warm_runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir()?;
    let (mut cold, mut warm, mut exit) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..cold_runs {
        write_state(dir.path(), true)?;
        let t = Instant::now();
        berth::engine::dns::ensure_running(dir.path())?;
        cold.push(t.elapsed());
        if cold.len() == 1 {
            if let Some((rss, dirty)) = resolver_memory() {
                println!("resolver memory: VmRSS {rss}, private dirty {dirty}");
            }
        }
        for _ in 0..warm_runs / cold_runs.max(1) {
            let t = Instant::now();
            berth::engine::dns::ensure_running(dir.path())?;
            warm.push(t.elapsed());
        }
        // the last container leaves
        write_state(dir.path(), false)?;
        let t = Instant::now();
        reap_all();
        exit.push(t.elapsed());
    }
    println!(
        "cold ensure_running (spawn, listening): {:?} median of {}",
        median(cold),
        cold_runs
    );
    println!(
        "warm ensure_running (resolver running): {:?} median of {}",
        median(warm.clone()),
        warm.len()
    );
    println!(
        "last lease gone -> resolver exited:     {:?} median (inotify; 1 s poll as fallback)",
        median(exit)
    );
    Ok(())
}
