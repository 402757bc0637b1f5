//! Resource usage samples for `stats`, read from the container's cgroups
//! (v1 or v2, through the directories the runtime recorded), its network
//! namespace (`/proc/<pid>/net/dev`) and `/proc/stat`, and docker's
//! arithmetic on two of them.

use std::path::Path;

use runtime::cgroups::CgroupRecord;

/// One reading of a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Container CPU time, ns.
    pub cpu_total: u64,
    /// Host CPU time (all CPUs), ns, from `/proc/stat`.
    pub system: u64,
    pub online_cpus: u32,
    /// Usage as docker's CLI shows it: without the inactive page cache.
    pub mem_usage: u64,
    /// The limit; the host's memory when unlimited (docker's daemon does so).
    pub mem_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file)?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok())?
    })
}

/// v1 `blkio.*io_service_bytes*`: `MAJ:MIN Read N` lines; (read, write).
pub fn parse_blkio_v1(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let n: u64 = f[2].parse().unwrap_or(0);
        match f[1] {
            "Read" => r += n,
            "Write" => w += n,
            _ => {}
        }
    }
    (r, w)
}

/// v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N ...`; (read, write).
pub fn parse_io_stat_v2(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for l in text.lines() {
        for kv in l.split_whitespace().skip(1) {
            match kv.split_once('=') {
                Some(("rbytes", v)) => r += v.parse::<u64>().unwrap_or(0),
                Some(("wbytes", v)) => w += v.parse::<u64>().unwrap_or(0),
                _ => {}
            }
        }
    }
    (r, w)
}

/// `/proc/<pid>/net/dev`: received and sent bytes over every interface but
/// loopback (docker counts the container's endpoints, never `lo`).
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    for l in text.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

/// `/proc/stat`: total host CPU time in ns (user..steal, USER_HZ 100 as
/// docker assumes) and the number of CPUs listed.
pub fn parse_proc_stat(text: &str) -> (u64, u32) {
    let mut total = 0;
    let mut cpus = 0;
    for l in text.lines() {
        let mut it = l.split_whitespace();
        match it.next() {
            Some("cpu") => {
                let ticks: u64 = it.take(8).filter_map(|x| x.parse::<u64>().ok()).sum();
                total = ticks * (1_000_000_000 / 100);
            }
            Some(c) if c.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| keyed(&t.replace(':', " "), "MemTotal"))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Cgroup part of a sample, v1 or v2.
pub fn read_cgroup(cg: &CgroupRecord, host_mem: u64, s: &mut Sample) {
    let limit_or_host = |l: Option<u64>| match l {
        Some(l) if host_mem == 0 || l < host_mem => l,
        _ => host_mem,
    };
    match cg.version {
        1 => {
            if let Some(d) = cg.dirs.get("memory") {
                let usage = read_u64(d, "memory.usage_in_bytes").unwrap_or(0);
                let inactive = read(d, "memory.stat")
                    .and_then(|t| keyed(&t, "total_inactive_file"))
                    .unwrap_or(0);
                s.mem_usage = if inactive < usage {
                    usage - inactive
                } else {
                    usage
                };
                s.mem_limit = limit_or_host(read_u64(d, "memory.limit_in_bytes"));
            }
            if let Some(d) = cg.dirs.get("cpuacct") {
                s.cpu_total = read_u64(d, "cpuacct.usage").unwrap_or(0);
            }
            if let Some(d) = cg.dirs.get("pids") {
                s.pids = read_u64(d, "pids.current").unwrap_or(0);
            }
            if let Some(d) = cg.dirs.get("blkio") {
                let t = read(d, "blkio.throttle.io_service_bytes_recursive")
                    .filter(|t| !t.trim().is_empty())
                    .or_else(|| read(d, "blkio.io_service_bytes_recursive"))
                    .unwrap_or_default();
                (s.blk_read, s.blk_write) = parse_blkio_v1(&t);
            }
        }
        2 => {
            let Some(d) = cg.dirs.get("") else { return };
            let usage = read_u64(d, "memory.current").unwrap_or(0);
            let inactive = read(d, "memory.stat")
                .and_then(|t| keyed(&t, "inactive_file"))
                .unwrap_or(0);
            s.mem_usage = if inactive < usage {
                usage - inactive
            } else {
                usage
            };
            s.mem_limit = limit_or_host(read_u64(d, "memory.max"));
            s.cpu_total = read(d, "cpu.stat")
                .and_then(|t| keyed(&t, "usage_usec"))
                .unwrap_or(0)
                * 1000;
            s.pids = read_u64(d, "pids.current").unwrap_or(0);
            (s.blk_read, s.blk_write) = parse_io_stat_v2(&read(d, "io.stat").unwrap_or_default());
        }
        _ => {}
    }
}

/// A full reading: cgroups, the container's network namespace (`pid` is
/// its init; `count_net` false for `--network host`, which docker reports
/// as no traffic), and the host CPU counter.
pub fn sample(cg: &CgroupRecord, pid: i32, count_net: bool) -> Sample {
    let mut s = Sample::default();
    read_cgroup(cg, host_memory(), &mut s);
    if count_net && pid > 0 {
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) {
            (s.net_rx, s.net_tx) = parse_net_dev(&t);
        }
    }
    if let Ok(t) = std::fs::read_to_string("/proc/stat") {
        (s.system, s.online_cpus) = parse_proc_stat(&t);
    }
    s
}

/// docker's `calculateCPUPercentUnix`: the container's share of the host's
/// CPU time between two samples, scaled by the number of CPUs.
pub fn cpu_percent(prev: &Sample, cur: &Sample) -> f64 {
    let cpu_delta = cur.cpu_total as f64 - prev.cpu_total as f64;
    let sys_delta = cur.system as f64 - prev.system as f64;
    let cpus = if cur.online_cpus > 0 {
        cur.online_cpus as f64
    } else {
        1.0
    };
    if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    }
}

pub fn mem_percent(s: &Sample) -> f64 {
    if s.mem_limit == 0 {
        0.0
    } else {
        s.mem_usage as f64 / s.mem_limit as f64 * 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn fake_v2() -> (tempfile::TempDir, CgroupRecord) {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("ctr");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("memory.current"), "10485760\n").unwrap();
        std::fs::write(
            d.join("memory.stat"),
            "anon 8000000\nfile 2000000\ninactive_file 1048576\nactive_file 5\n",
        )
        .unwrap();
        std::fs::write(d.join("memory.max"), "104857600\n").unwrap();
        std::fs::write(
            d.join("cpu.stat"),
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
        )
        .unwrap();
        std::fs::write(d.join("pids.current"), "3\n").unwrap();
        std::fs::write(
            d.join("io.stat"),
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=2\n",
        )
        .unwrap();
        let mut dirs = BTreeMap::new();
        dirs.insert(String::new(), d);
        (
            t,
            CgroupRecord {
                version: 2,
                dirs,
                created: vec![],
            },
        )
    }

    #[test]
    fn v2_fake_cgroupfs() {
        let (_t, cg) = fake_v2();
        let mut s = Sample::default();
        read_cgroup(&cg, 8 << 30, &mut s);
        assert_eq!(s.mem_usage, 10485760 - 1048576);
        assert_eq!(s.mem_limit, 104857600);
        assert_eq!(s.cpu_total, 2_500_000_000);
        assert_eq!(s.pids, 3);
        assert_eq!((s.blk_read, s.blk_write), (4097, 8194));
        // "max" is unlimited: the host's memory, as docker shows it.
        std::fs::write(cg.dirs[""].join("memory.max"), "max\n").unwrap();
        read_cgroup(&cg, 8 << 30, &mut s);
        assert_eq!(s.mem_limit, 8 << 30);
    }

    #[test]
    fn v1_fake_cgroupfs() {
        let t = tempfile::tempdir().unwrap();
        let mut dirs = BTreeMap::new();
        for c in ["memory", "cpuacct", "pids", "blkio"] {
            let d = t.path().join(c);
            std::fs::create_dir(&d).unwrap();
            dirs.insert(c.to_string(), d);
        }
        std::fs::write(dirs["memory"].join("memory.usage_in_bytes"), "5000\n").unwrap();
        std::fs::write(
            dirs["memory"].join("memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        std::fs::write(
            dirs["memory"].join("memory.stat"),
            "cache 0\ntotal_inactive_file 1000\n",
        )
        .unwrap();
        std::fs::write(dirs["cpuacct"].join("cpuacct.usage"), "123456789\n").unwrap();
        std::fs::write(dirs["pids"].join("pids.current"), "2\n").unwrap();
        std::fs::write(
            dirs["blkio"].join("blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 100\n8:0 Write 50\n8:0 Sync 150\n8:0 Total 150\nTotal 150\n",
        )
        .unwrap();
        let cg = CgroupRecord {
            version: 1,
            dirs,
            created: vec![],
        };
        let mut s = Sample::default();
        read_cgroup(&cg, 1 << 30, &mut s);
        assert_eq!(s.mem_usage, 4000);
        assert_eq!(s.mem_limit, 1 << 30);
        assert_eq!(s.cpu_total, 123456789);
        assert_eq!(s.pids, 2);
        assert_eq!((s.blk_read, s.blk_write), (100, 50));
    }

    #[test]
    fn net_dev_skips_loopback() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:  999 1 0 0 0 0 0 0  999 1 0 0 0 0 0 0\n  eth0: 1500 10 0 0 0 0 0 0  700 5 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(t), (1500, 700));
    }

    #[test]
    fn proc_stat_and_cpu_math() {
        let (total, cpus) = parse_proc_stat(
            "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400\ncpu1 50 0 50 400\nintr 1\n",
        );
        assert_eq!(total, 1000 * 10_000_000);
        assert_eq!(cpus, 2);
        let a = Sample {
            cpu_total: 0,
            system: 0,
            online_cpus: 2,
            ..Default::default()
        };
        // Half a CPU's worth of a 2-CPU host's elapsed time: 50%.
        let b = Sample {
            cpu_total: 500_000_000,
            system: 2_000_000_000,
            online_cpus: 2,
            ..Default::default()
        };
        assert!((cpu_percent(&a, &b) - 50.0).abs() < 1e-9);
        assert_eq!(cpu_percent(&b, &a), 0.0);
        let m = Sample {
            mem_usage: 25,
            mem_limit: 100,
            ..Default::default()
        };
        assert!((mem_percent(&m) - 25.0).abs() < 1e-9);
    }
}
