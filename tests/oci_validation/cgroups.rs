//! runtime-tools' cgroup programs: linux.resources read back from the host (runtime-tools' RuntimeOutsideValidate).

use std::path::Path;

use serde_json::json;

use super::lab::{Lab, Tap, T};
use crate::common;

/// The container's cgroup directory of `ctrl` and the content of `file` there.
fn cg(pid: i64, ctrl: &str, file: &str) -> String {
    common::cgroupfs::read(pid as i32, ctrl, file).unwrap_or_else(|| "<missing>".into())
}

/// util.RuntimeOutsideValidate for linux.resources: create, then read
/// the container's cgroup files from the host.
fn cgroups_program(
    name: &'static str,
    relative: bool,
    resources: serde_json::Value,
    expect: &[(&str, &str, &str)],
    extra: &dyn Fn(&mut Tap, i64, &str),
) {
    let mut t = Tap::new(name);
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    let id = lab.id(name);
    b.config["linux"]["cgroupsPath"] = json!(if relative {
        id.clone()
    } else {
        format!("/{id}")
    });
    for (k, v) in resources.as_object().unwrap() {
        b.config["linux"]["resources"][k] = v.clone();
    }
    b.write();
    let o = lab.create(&b, &id, None);
    t.ok(o.ok, "create", &o);
    let pid = lab.pid(&id);
    let path = common::cgroupfs::cgroup_dirs(pid as i32);
    // Named hierarchies (name=systemd) and the empty v2 tree of a hybrid
    // host are not resource controllers; runc leaves them alone too.
    let in_place = path
        .iter()
        .filter(|(c, _)| *c != "systemd" && *c != "unified")
        .all(|(_, p)| p.to_string_lossy().ends_with(&id));
    t.ok(
        in_place,
        &format!(
            "the container's cgroups are at cgroupsPath {} (relative: {relative})",
            id
        ),
        format!("{path:?}"),
    );
    extra(&mut t, pid, &o.stderr);
    for (ctrl, file, want) in expect {
        let got = cg(pid, ctrl, file);
        t.ok(
            got.lines().any(|l| l.trim() == *want),
            &format!("{ctrl}/{file} = {want}"),
            format!("{got:?}"),
        );
    }
    lab.rt(&["kill", &id, "KILL"]);
    lab.wait_status(&id, &["stopped"], T);
    t.ok(lab.rt(&["delete", &id]).ok, "delete", "");
    t.finish();
}

fn memory(name: &'static str, relative: bool) {
    let l = 50593792;
    let mut expect = vec![
        ("memory", "memory.limit_in_bytes", "50593792"),
        ("memory", "memory.soft_limit_in_bytes", "50593792"),
        ("memory", "memory.kmem.tcp.limit_in_bytes", "50593792"),
        ("memory", "memory.swappiness", "50"),
        ("memory", "memory.oom_control", "oom_kill_disable 1"),
    ];
    // Swap accounting (memsw) exists only with swapaccount=1.
    if Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        expect.push(("memory", "memory.memsw.limit_in_bytes", "50593792"));
    }
    // runtime-tools also wants memory.kmem.limit_in_bytes = kernel, which
    // Linux 6.1+ accepts and ignores for any runtime: berth must then say
    // so rather than pretend.
    let kernel_check = |t: &mut Tap, pid: i64, stderr: &str| {
        let got = cg(pid, "memory", "memory.kmem.limit_in_bytes");
        t.ok(
            got == l.to_string() || stderr.contains("memory.kernel 50593792 is not enforced"),
            "linux.resources.memory.kernel is applied, or a warning says the kernel ignores it",
            format!("{got:?} {stderr:?}"),
        );
    };
    cgroups_program(
        name,
        relative,
        json!({"memory": {"limit": l, "reservation": l, "swap": l, "kernel": l, "kernelTCP": l, "swappiness": 50, "disableOOMKiller": true}}),
        &expect,
        &kernel_check,
    );
}

#[test]
fn linux_cgroups_memory() {
    memory("linux_cgroups_memory", false);
}

#[test]
fn linux_cgroups_relative_memory() {
    memory("linux_cgroups_relative_memory", true);
}

fn pids(name: &'static str, relative: bool) {
    cgroups_program(
        name,
        relative,
        json!({"pids": {"limit": 1000}}),
        &[("pids", "pids.max", "1000")],
        &|_, _, _| {},
    );
}

#[test]
fn linux_cgroups_pids() {
    pids("linux_cgroups_pids", false);
}

#[test]
fn linux_cgroups_relative_pids() {
    pids("linux_cgroups_relative_pids", true);
}

fn cpus(name: &'static str, relative: bool) {
    // One of runtime-tools' cases: every CPU, a quota above the period.
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let range = if n > 1 {
        format!("0-{}", n - 1)
    } else {
        "0".into()
    };
    let mut cpu =
        json!({"shares": 2048, "quota": 200000, "period": 100000, "cpus": range, "mems": "0"});
    let mut expect = vec![
        ("cpu", "cpu.shares", "2048".to_string()),
        ("cpu", "cpu.cfs_quota_us", "200000".into()),
        ("cpu", "cpu.cfs_period_us", "100000".into()),
        ("cpuset", "cpuset.cpus", range.clone()),
        ("cpuset", "cpuset.mems", "0".into()),
    ];
    // Realtime knobs as runtime-tools sets them where the kernel has them
    // (CONFIG_RT_GROUP_SCHED); only a cgroup right under the root can get
    // the root's whole realtime budget.
    if !relative && Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists() {
        cpu["realtimePeriod"] = json!(1000000);
        cpu["realtimeRuntime"] = json!(950000);
        expect.push(("cpu", "cpu.rt_period_us", "1000000".into()));
        expect.push(("cpu", "cpu.rt_runtime_us", "950000".into()));
    }
    let expect: Vec<(&str, &str, &str)> = expect
        .iter()
        .map(|(a, b, c)| (*a, *b, c.as_str()))
        .collect();
    cgroups_program(
        name,
        relative,
        json!({ "cpu": cpu }),
        &expect,
        &|_, _, _| {},
    );
}

/// runtime-tools' testEmptyCPU: `linux.resources.cpu` present but empty
/// leaves the kernel's defaults (the root cgroup's values, every CPU).
#[test]
fn linux_cgroups_cpus_empty() {
    let root = |f: &str| {
        std::fs::read_to_string(Path::new("/sys/fs/cgroup/cpu").join(f))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpus = if n > 1 {
        format!("0-{}", n - 1)
    } else {
        "0".into()
    };
    let want = [
        ("cpu", "cpu.shares", root("cpu.shares")),
        ("cpu", "cpu.cfs_period_us", root("cpu.cfs_period_us")),
        ("cpu", "cpu.cfs_quota_us", root("cpu.cfs_quota_us")),
        ("cpuset", "cpuset.cpus", cpus),
        ("cpuset", "cpuset.mems", "0".to_string()),
    ];
    let expect: Vec<(&str, &str, &str)> =
        want.iter().map(|(a, b, c)| (*a, *b, c.as_str())).collect();
    cgroups_program(
        "linux_cgroups_cpus_empty",
        false,
        json!({"cpu": {}}),
        &expect,
        &|_, _, _| {},
    );
}

#[test]
fn linux_cgroups_cpus() {
    cpus("linux_cgroups_cpus", false);
}

#[test]
fn linux_cgroups_relative_cpus() {
    cpus("linux_cgroups_relative_cpus", true);
}

fn devices(name: &'static str, relative: bool) {
    // runtime-tools' rules; it wants devices.list to start with the allow
    // rules in the listed order (DevicesApplyInOrder).
    let in_order = |t: &mut Tap, pid: i64, _: &str| {
        let list = cg(pid, "devices", "devices.list");
        let first: Vec<&str> = list.lines().take(3).collect();
        t.ok(
            first == ["c 10:229 rwm", "b 8:20 rw", "b 10:200 r"],
            "the runtime MUST apply device entries in the listed order",
            format!("{list:?}"),
        );
    };
    cgroups_program(
        name,
        relative,
        json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
            {"allow": true, "type": "b", "major": 8, "minor": 20, "access": "rw"},
            {"allow": true, "type": "b", "major": 10, "minor": 200, "access": "r"}
        ]}),
        &[],
        &in_order,
    );
}

#[test]
fn linux_cgroups_devices() {
    devices("linux_cgroups_devices", false);
}

#[test]
fn linux_cgroups_relative_devices() {
    devices("linux_cgroups_relative_devices", true);
}

/// linux_cgroups_blkio as far as this kernel goes: the weight (BFQ names
/// it blkio.bfq.weight, where runtime-tools reads blkio.weight only) and
/// throttling on the disk holding the temp dir; a leafWeight the kernel
/// cannot apply (no CFQ) must be an error, not a silently dropped limit.
#[test]
fn linux_cgroups_blkio() {
    let dev = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(std::env::temp_dir()).unwrap().dev()
    };
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let rule = |rate: u64| json!([{"major": major, "minor": minor, "rate": rate}]);
    let want = |rate: u64| format!("{major}:{minor} {rate}");
    let (r1, r2, r3, r4) = (want(102400), want(204800), want(300), want(400));
    let has_leaf = std::cell::Cell::new(true);
    let weight = |t: &mut Tap, pid: i64, _: &str| {
        let dirs = common::cgroupfs::cgroup_dirs(pid as i32);
        let d = dirs.get("blkio").cloned().unwrap_or_default();
        has_leaf.set(d.join("blkio.leaf_weight").exists());
        let got = ["blkio.weight", "blkio.bfq.weight"]
            .iter()
            .find_map(|f| std::fs::read_to_string(d.join(f)).ok())
            .unwrap_or_default();
        t.ok(
            got.split_whitespace().last() == Some("500"),
            "blockIO.weight is applied",
            format!("{got:?}"),
        );
    };
    cgroups_program(
        "linux_cgroups_blkio",
        false,
        json!({"blockIO": {
            "weight": 500,
            "throttleReadBpsDevice": rule(102400),
            "throttleWriteBpsDevice": rule(204800),
            "throttleReadIOPSDevice": rule(300),
            "throttleWriteIOPSDevice": rule(400)
        }}),
        &[
            ("blkio", "blkio.throttle.read_bps_device", r1.as_str()),
            ("blkio", "blkio.throttle.write_bps_device", r2.as_str()),
            ("blkio", "blkio.throttle.read_iops_device", r3.as_str()),
            ("blkio", "blkio.throttle.write_iops_device", r4.as_str()),
        ],
        &weight,
    );
    let mut t = Tap::new("linux_cgroups_blkio");
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    let id = lab.id("blkio");
    b.config["linux"]["cgroupsPath"] = json!(format!("/{id}"));
    b.config["linux"]["resources"]["blockIO"] = json!({"leafWeight": 300});
    b.write();
    let o = lab.create(&b, &id, None);
    t.ok(
        o.ok == has_leaf.get(),
        "blockIO.leafWeight is applied where the kernel has it, an error where not",
        &o,
    );
    t.finish();
}

/// The excluded hugetlb and network programs' resources on a host without
/// those hierarchies: create must fail with an error, not drop the limit.
#[test]
fn linux_cgroups_unavailable() {
    let mut t = Tap::new("linux_cgroups_unavailable");
    let mut lab = Lab::new();
    let cases = [
        (
            "hugetlb",
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 52428800}]}),
        ),
        ("net_cls", json!({"network": {"classID": 1048577}})),
        (
            "net_prio",
            json!({"network": {"priorities": [{"name": "lo", "priority": 1}]}}),
        ),
    ];
    for (ctrl, res) in cases {
        if Path::new("/sys/fs/cgroup").join(ctrl).exists() {
            t.ok(true, &format!("# SKIP {ctrl} is mounted here"), "");
            continue;
        }
        let mut b = lab.bundle(&["true"]);
        let id = lab.id("unavail");
        b.config["linux"]["cgroupsPath"] = json!(format!("/{id}"));
        for (k, v) in res.as_object().unwrap() {
            b.config["linux"]["resources"][k] = v.clone();
        }
        b.write();
        let o = lab.create(&b, &id, None);
        t.ok(
            !o.ok && o.stderr.contains(ctrl),
            &format!("a {ctrl} limit without a {ctrl} hierarchy is an error naming it"),
            &o,
        );
    }
    t.finish();
}
