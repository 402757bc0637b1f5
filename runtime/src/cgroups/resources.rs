//! Writing `linux.resources`, freezer, OOM events and stats, v1 and v2.

use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};
use serde::Serialize;

use super::fsutil::{keyed, read, read_u64, write};
use super::{CgroupError, CgroupRecord};

/// Resource usage, as `stats` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub memory_usage: u64,
    /// `None` when unlimited.
    pub memory_limit: Option<u64>,
    pub cpu_usage_ns: u64,
    pub pids_current: u64,
    pub oom_kills: u64,
}

fn need<'a>(rec: &'a CgroupRecord, c: &'static str) -> Result<&'a Path, CgroupError> {
    rec.dir(c)
        .map(|p| p.as_path())
        .ok_or(CgroupError::MissingController(c))
}

impl CgroupRecord {
    /// Apply `linux.resources`.
    pub fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        match self.version {
            1 => apply_v1(self, r),
            2 => apply_v2(self, r),
            _ => Ok(()),
        }
    }
}

fn apply_v1(rec: &CgroupRecord, r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(m) = r.memory() {
        let d = need(rec, "memory")?;
        if let Some(l) = m.limit() {
            write(d, "memory.limit_in_bytes", &l.to_string())?;
        }
        if let Some(s) = m.reservation() {
            write(d, "memory.soft_limit_in_bytes", &s.to_string())?;
        }
        if let Some(s) = m.swap() {
            if d.join("memory.memsw.limit_in_bytes").exists() {
                write(d, "memory.memsw.limit_in_bytes", &s.to_string())?;
            } else {
                crate::util::warn("linux.resources.memory.swap not applied: the kernel has no swap accounting (memory.memsw.*)");
            }
        }
        if let Some(k) = m.kernel() {
            kernel_memory_v1(d, k)?;
        }
        if let Some(t) = m.kernel_tcp() {
            write(d, "memory.kmem.tcp.limit_in_bytes", &t.to_string())?;
        }
        if let Some(s) = m.swappiness() {
            write(d, "memory.swappiness", &s.to_string())?;
        }
        if m.disable_oom_killer() == Some(true) {
            write(d, "memory.oom_control", "1")?;
        }
    }
    if let Some(c) = r.cpu() {
        if c.shares().is_some() || c.quota().is_some() || c.period().is_some() {
            let d = need(rec, "cpu")?;
            if let Some(s) = c.shares() {
                write(d, "cpu.shares", &s.to_string())?;
            }
            if let Some(p) = c.period() {
                write(d, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = c.quota() {
                write(d, "cpu.cfs_quota_us", &q.to_string())?;
            }
        }
        if c.cpus().is_some() || c.mems().is_some() {
            let d = need(rec, "cpuset")?;
            if let Some(v) = c.cpus() {
                write(d, "cpuset.cpus", v)?;
            }
            if let Some(v) = c.mems() {
                write(d, "cpuset.mems", v)?;
            }
        }
    }
    if let Some(p) = r.pids() {
        let d = need(rec, "pids")?;
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        write(d, "pids.max", &v)?;
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight() {
            let d = need(rec, "blkio")?;
            let f = if d.join("blkio.weight").exists() {
                "blkio.weight"
            } else {
                "blkio.bfq.weight"
            };
            write(d, f, &w.to_string())?;
        }
        // Leaf weights exist only with CFQ (gone since Linux 5.0): an
        // error naming the field, rather than a limit silently dropped.
        let leaf = |d: &Path, file: &str, value: &str| {
            if d.join(file).exists() {
                write(d, file, value)
            } else {
                Err(CgroupError::Invalid(format!(
                    "linux.resources.blockIO leafWeight needs {file}, which this kernel does not have (no CFQ); remove it"
                )))
            }
        };
        if let Some(w) = b.leaf_weight() {
            leaf(need(rec, "blkio")?, "blkio.leaf_weight", &w.to_string())?;
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.leaf_weight() {
                leaf(
                    need(rec, "blkio")?,
                    "blkio.leaf_weight_device",
                    &format!("{}:{} {w}", wd.major(), wd.minor()),
                )?;
            }
            if let Some(w) = wd.weight() {
                let d = need(rec, "blkio")?;
                let f = if d.join("blkio.weight_device").exists() {
                    "blkio.weight_device"
                } else {
                    "blkio.bfq.weight_device"
                };
                write(d, f, &format!("{}:{} {w}", wd.major(), wd.minor()))?;
            }
        }
        for (list, file) in [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
            ),
        ] {
            for t in list.iter().flatten() {
                write(
                    need(rec, "blkio")?,
                    file,
                    &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                )?;
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(v) = c.realtime_period() {
            write(need(rec, "cpu")?, "cpu.rt_period_us", &v.to_string())?;
        }
        if let Some(v) = c.realtime_runtime() {
            write(need(rec, "cpu")?, "cpu.rt_runtime_us", &v.to_string())?;
        }
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            write(need(rec, "net_cls")?, "net_cls.classid", &id.to_string())?;
        }
        for p in n.priorities().iter().flatten() {
            write(
                need(rec, "net_prio")?,
                "net_prio.ifpriomap",
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(CgroupError::Invalid(
            "linux.resources.unified needs cgroup v2; this host uses v1".into(),
        ));
    }
    if r.rdma().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(CgroupError::Invalid(
            "linux.resources.rdma is not supported by berth".into(),
        ));
    }
    for h in r.hugepage_limits().iter().flatten() {
        let d = need(rec, "hugetlb")?;
        write(
            d,
            &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
            &h.limit().to_string(),
        )?;
    }
    if let Some(devs) = r.devices() {
        if let Some(d) = rec.dir("devices") {
            for dev in devs {
                let file = if dev.allow() {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                write(d, file, &device_rule(dev))?;
            }
        }
    }
    Ok(())
}

/// The config's device rules followed by what every container needs, as
/// runc adds them: mknod of any node, the standard devices, ptys, and the
/// config's own `linux.devices`.
pub fn with_default_devices(r: &LinuxResources, devices: &[LinuxDevice]) -> LinuxResources {
    let Some(rules) = r.devices() else {
        return r.clone();
    };
    let mut rules = rules.clone();
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some(access.to_string()));
        d
    };
    use LinuxDeviceType::{B, C};
    rules.push(rule(C, None, None, "m"));
    rules.push(rule(B, None, None, "m"));
    for (ma, mi) in [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(2)),
        (136, None),
    ] {
        rules.push(rule(C, Some(ma), mi, "rwm"));
    }
    for d in devices {
        let t = match d.typ() {
            LinuxDeviceType::B => B,
            // A fifo is no device to the devices controller, which
            // refuses a "p" rule (EINVAL): opening one needs no allow.
            LinuxDeviceType::P => continue,
            _ => C,
        };
        // A rule the config gives for this very device wins: docker's
        // `--device HOST:CTR:r` must stay read-only.
        let explicit = r.devices().iter().flatten().any(|x| {
            x.typ() == Some(t) && x.major() == Some(d.major()) && x.minor() == Some(d.minor())
        });
        if explicit {
            continue;
        }
        rules.push(rule(t, Some(d.major()), Some(d.minor()), "rwm"));
    }
    let mut out = r.clone();
    out.set_devices(Some(rules));
    out
}

/// "c 1:3 rwm" from an OCI device rule.
pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let t = match d.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        Some(LinuxDeviceType::B) => "b",
        Some(LinuxDeviceType::P) => "p",
        Some(LinuxDeviceType::A) | None => "a",
    };
    let num = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_else(|| "*".into());
    let access = d.access().clone().unwrap_or_else(|| "rwm".into());
    format!("{t} {}:{} {access}", num(d.major()), num(d.minor()))
}

/// cpu.shares (2..262144) -> cpu.weight (1..10000), as runc converts.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262144) - 2) * 9999) / 262142
}

/// blkio weight (10..1000) -> io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    1 + (u64::from(w.clamp(10, 1000)) - 10) * 9999 / 990
}

/// memory.kmem.limit_in_bytes: deprecated since Linux 5.4; from 6.1 the
/// kernel takes the write and enforces nothing. The spec marks the field
/// NOT RECOMMENDED; say so when it has no effect rather than pretend.
fn kernel_memory_v1(d: &Path, k: i64) -> Result<(), CgroupError> {
    const FILE: &str = "memory.kmem.limit_in_bytes";
    if !d.join(FILE).exists() {
        crate::util::warn(&format!(
            "linux.resources.memory.kernel {k} not applied: this kernel has no {FILE}"
        ));
        return Ok(());
    }
    write(d, FILE, &k.to_string())?;
    // The kernel rounds a limit down to whole pages.
    let page = 4096;
    if k >= 0 && read_u64(d, FILE) != Some(k as u64 / page * page) {
        crate::util::warn(&format!(
            "linux.resources.memory.kernel {k} is not enforced: this kernel ignores kernel memory limits (removed in Linux 6.1); remove it"
        ));
    }
    Ok(())
}

fn apply_v2(rec: &CgroupRecord, r: &LinuxResources) -> Result<(), CgroupError> {
    let d = need(rec, "")?;
    if let Some(m) = r.memory() {
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            crate::util::warn(
                "linux.resources.memory.kernel / kernelTCP not applied: cgroup v2 has no kernel memory limits",
            );
        }
        if let Some(l) = m.limit() {
            write(d, "memory.max", &max_or(l))?;
        }
        if let Some(s) = m.reservation() {
            write(d, "memory.low", &s.to_string())?;
        }
        if let Some(s) = m.swap() {
            // OCI swap is memory+swap; v2 memory.swap.max is swap alone.
            let v = match (s, m.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l > 0 => (s - l).max(0).to_string(),
                (s, _) => s.to_string(),
            };
            write(d, "memory.swap.max", &v)?;
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            write(d, "cpu.weight", &shares_to_weight(s).to_string())?;
        }
        if c.quota().is_some() || c.period().is_some() {
            let q = match c.quota() {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".into(),
            };
            let p = c.period().unwrap_or(100_000);
            write(d, "cpu.max", &format!("{q} {p}"))?;
        }
        if let Some(v) = c.cpus() {
            write(d, "cpuset.cpus", v)?;
        }
        if let Some(v) = c.mems() {
            write(d, "cpuset.mems", v)?;
        }
    }
    if let Some(p) = r.pids() {
        write(d, "pids.max", &max_or(p.limit()))?;
    }
    if let Some(b) = r.block_io() {
        // BFQ takes blkio's own scale (its range 1..1000 holds 10..1000);
        // io.weight (io.cost) needs the conversion to 1..10000. runc also
        // prefers BFQ when its module is loaded.
        let bfq = d.join("io.bfq.weight").exists();
        let (f, scale): (&str, fn(u16) -> u64) = if bfq {
            ("io.bfq.weight", u64::from)
        } else {
            ("io.weight", blkio_to_io_weight)
        };
        if let Some(w) = b.weight() {
            write(d, f, &format!("default {}", scale(w)))?;
        }
        // v2 has no leaf weights: an error naming the field, rather than a
        // weight silently dropped.
        if b.leaf_weight().is_some()
            || b.weight_device()
                .iter()
                .flatten()
                .any(|w| w.leaf_weight().is_some())
        {
            return Err(CgroupError::Invalid(
                "linux.resources.blockIO leafWeight is not available on cgroup v2; remove it"
                    .into(),
            ));
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight() {
                write(d, f, &format!("{}:{} {}", wd.major(), wd.minor(), scale(w)))?;
            }
        }
        for (list, key) in [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ] {
            for t in list.iter().flatten() {
                write(
                    d,
                    "io.max",
                    &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
                )?;
            }
        }
    }
    if let Some(c) = r.cpu() {
        if c.realtime_period().is_some() || c.realtime_runtime().is_some() {
            return Err(CgroupError::Invalid(
                "cpu realtime period/runtime are not available on cgroup v2".into(),
            ));
        }
    }
    if r.network().as_ref().is_some_and(|n| {
        n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty())
    }) {
        return Err(CgroupError::Invalid(
            "linux.resources.network (net_cls/net_prio) is not available on cgroup v2".into(),
        ));
    }
    if r.rdma().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(CgroupError::Invalid(
            "linux.resources.rdma is not supported by berth".into(),
        ));
    }
    for (k, v) in r.unified().iter().flatten() {
        if k.contains('/') || k.starts_with('.') {
            return Err(CgroupError::Invalid(format!(
                "linux.resources.unified key {k:?} is not a cgroup file name"
            )));
        }
        write(d, k, v)?;
    }
    for h in r.hugepage_limits().iter().flatten() {
        write(
            d,
            &format!("hugetlb.{}.max", h.page_size()),
            &max_or(h.limit()),
        )?;
    }
    if let Some(rules) = r.devices().as_ref().filter(|v| !v.is_empty()) {
        // The fake tree in unit tests is no cgroupfs: attaching needs a real one.
        if d.join("cgroup.controllers").exists() && is_cgroup2(d) {
            super::devices_v2::attach(d, rules)?;
        }
    }
    Ok(())
}

fn max_or(v: i64) -> String {
    if v > 0 {
        v.to_string()
    } else {
        "max".into()
    }
}

pub fn set_frozen(rec: &CgroupRecord, frozen: bool) -> Result<(), CgroupError> {
    let (d, file, val, want) = match rec.version {
        1 => {
            let v = if frozen { "FROZEN" } else { "THAWED" };
            (need(rec, "freezer")?, "freezer.state", v, v)
        }
        2 => (
            need(rec, "")?,
            "cgroup.freeze",
            if frozen { "1" } else { "0" },
            "",
        ),
        _ => {
            return Err(CgroupError::Invalid(
                "the container has no cgroup to freeze".into(),
            ))
        }
    };
    write(d, file, val)?;
    if rec.version == 1 {
        // FREEZING is transient; wait until the kernel settles.
        for _ in 0..1000 {
            if read(d, file).is_some_and(|s| s.trim() == want) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            write(d, file, val)?;
        }
        return Err(CgroupError::Invalid(format!(
            "{} did not reach {want}",
            d.display()
        )));
    }
    // v2 freezes asynchronously: each task stops at its next trip through
    // the kernel, and cgroup.events says when all have (runc waits too).
    // Without the wait, `pause` returned while the container still ran.
    let target = u64::from(frozen);
    for _ in 0..V2_FREEZE_POLLS {
        if keyed(d, "cgroup.events", "frozen") == Some(target) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Err(CgroupError::Invalid(format!(
        "{}: cgroup.events did not report frozen {target} within 5 s; retry, or check for tasks stuck in the kernel",
        d.display()
    )))
}

/// 1000 polls of 5 ms: a freeze under heavy load can take a few seconds.
const V2_FREEZE_POLLS: u32 = 1000;

pub fn is_frozen(rec: &CgroupRecord) -> bool {
    match rec.version {
        1 => rec
            .dir("freezer")
            .and_then(|d| read(d, "freezer.state"))
            .is_some_and(|s| s.trim() == "FROZEN"),
        2 => {
            rec.dir("")
                .and_then(|d| keyed(d, "cgroup.events", "frozen"))
                == Some(1)
        }
        _ => false,
    }
}

pub fn oom_kills(rec: &CgroupRecord) -> u64 {
    match rec.version {
        1 => rec
            .dir("memory")
            .and_then(|d| keyed(d, "memory.oom_control", "oom_kill")),
        2 => rec
            .dir("")
            .and_then(|d| keyed(d, "memory.events", "oom_kill")),
        _ => None,
    }
    .unwrap_or(0)
}

pub fn stats(rec: &CgroupRecord) -> Result<Stats, CgroupError> {
    let mut s = Stats {
        oom_kills: oom_kills(rec),
        ..Default::default()
    };
    match rec.version {
        1 => {
            if let Some(d) = rec.dir("memory") {
                s.memory_usage = read_u64(d, "memory.usage_in_bytes").unwrap_or(0);
                // v1 reports "unlimited" as a huge page-aligned number.
                s.memory_limit = read_u64(d, "memory.limit_in_bytes").filter(|l| *l < (1 << 62));
            }
            if let Some(d) = rec.dir("cpuacct") {
                s.cpu_usage_ns = read_u64(d, "cpuacct.usage").unwrap_or(0);
            }
            if let Some(d) = rec.dir("pids") {
                s.pids_current = read_u64(d, "pids.current").unwrap_or(0);
            }
        }
        2 => {
            let d = need(rec, "")?;
            s.memory_usage = read_u64(d, "memory.current").unwrap_or(0);
            s.memory_limit = read_u64(d, "memory.max");
            s.cpu_usage_ns = keyed(d, "cpu.stat", "usage_usec").unwrap_or(0) * 1000;
            s.pids_current = read_u64(d, "pids.current").unwrap_or(0);
        }
        _ => {}
    }
    Ok(s)
}

fn is_cgroup2(d: &Path) -> bool {
    nix::sys::statfs::statfs(d)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}
