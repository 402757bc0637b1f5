//! The OCI runtime spec for a container: docker's defaults plus the
//! container's flags. Built when the container starts (the rootfs is
//! mounted then, so `-u name` resolves against the image's own passwd).

use std::collections::HashSet;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Capability, LinuxSeccomp, Spec};
use serde_json::{json, Value};

use super::model::ContainerRecord;

/// Every capability the kernel knows (for `--privileged` and `--cap-add ALL`).
const ALL_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

fn cap_name(c: &Capability) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn normalize_cap(s: &str) -> String {
    let u = s.to_ascii_uppercase();
    u.strip_prefix("CAP_").unwrap_or(&u).to_string()
}

/// Docker's capability arithmetic: defaults, minus drops, plus adds; `ALL`
/// on either side.
pub fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Result<Vec<String>> {
    // Only what berth itself may pass on: capset fails for a capability
    // outside our bounding set (root without CAP_SYS_RESOURCE here).
    let bounding = super::caps_held::bounding_set();
    let all: Vec<String> = ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| bounding.is_none_or(|b| b & (1u64 << i) != 0))
        .map(|(_, c)| format!("CAP_{c}"))
        .collect();
    if privileged {
        return Ok(all);
    }
    for c in add.iter().chain(drop) {
        let n = normalize_cap(c);
        if n != "ALL" && !ALL_CAPS.contains(&n.as_str()) {
            bail!("invalid capability: {c}: unknown capability: \"CAP_{n}\"");
        }
    }
    let add: Vec<String> = add.iter().map(|c| normalize_cap(c)).collect();
    let drop: Vec<String> = drop.iter().map(|c| normalize_cap(c)).collect();
    let mut set: Vec<String> = if add.iter().any(|c| c == "ALL") {
        all.clone()
    } else {
        runtime::defaults::DOCKER_CAPABILITIES
            .iter()
            .map(cap_name)
            .collect()
    };
    if drop.iter().any(|c| c == "ALL") {
        set.clear();
    } else {
        set.retain(|c| !drop.iter().any(|d| format!("CAP_{d}") == *c));
    }
    for a in add.iter().filter(|a| *a != "ALL") {
        let n = format!("CAP_{a}");
        if !set.contains(&n) {
            set.push(n);
        }
    }
    Ok(set)
}

fn caps_set(names: &[String]) -> HashSet<Capability> {
    names
        .iter()
        .filter_map(|n| serde_json::from_value(Value::String(n.clone())).ok())
        .collect()
}

fn seccomp(rec: &ContainerRecord, caps: &[String]) -> Result<Option<Value>> {
    let hc = &rec.host_config;
    let mut profile: Option<String> = None;
    for o in &hc.security_opt {
        if let Some(v) = o
            .strip_prefix("seccomp=")
            .or_else(|| o.strip_prefix("seccomp:"))
        {
            profile = Some(v.to_string());
        }
    }
    match profile.as_deref() {
        Some("unconfined") => Ok(None),
        _ if hc.privileged => Ok(None),
        Some(file) => {
            let b = std::fs::read(file)
                .with_context(|| format!("opening seccomp profile ({file}) failed"))?;
            let names: HashSet<String> = caps.iter().cloned().collect();
            let target = runtime::seccomp::profile::Target {
                arch: std::env::consts::ARCH,
                caps: &names,
                kernel: runtime::seccomp::kernel_version(),
            };
            let s: LinuxSeccomp = runtime::seccomp::profile::from_json(&b, &target)
                .map_err(|e| anyhow!("{e} ({file})"))?;
            Ok(Some(serde_json::to_value(s)?))
        }
        None => {
            let s = runtime::seccomp::docker_default(std::env::consts::ARCH, &caps_set(caps));
            Ok(Some(serde_json::to_value(s)?))
        }
    }
}

fn no_new_privileges(rec: &ContainerRecord) -> bool {
    rec.host_config.security_opt.iter().any(|o| {
        o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
    })
}

fn rlimit_resource(name: &str) -> Option<&'static str> {
    Some(match name {
        "core" => "RLIMIT_CORE",
        "cpu" => "RLIMIT_CPU",
        "data" => "RLIMIT_DATA",
        "fsize" => "RLIMIT_FSIZE",
        "locks" => "RLIMIT_LOCKS",
        "memlock" => "RLIMIT_MEMLOCK",
        "msgqueue" => "RLIMIT_MSGQUEUE",
        "nice" => "RLIMIT_NICE",
        "nofile" => "RLIMIT_NOFILE",
        "nproc" => "RLIMIT_NPROC",
        "rss" => "RLIMIT_RSS",
        "rtprio" => "RLIMIT_RTPRIO",
        "rttime" => "RLIMIT_RTTIME",
        "sigpending" => "RLIMIT_SIGPENDING",
        "stack" => "RLIMIT_STACK",
        "as" => "RLIMIT_AS",
        _ => return None,
    })
}

/// Clamps a limit to the hard limit berth itself runs with: raising a hard
/// limit needs CAP_SYS_RESOURCE, which root may lack (this machine: nofile
/// 20000). Returns the pair and whether it was lowered.
fn clamp_nofile(soft: u64, hard: u64) -> (u64, u64, bool) {
    let max = runtime::rlimit::current_hard(libc::RLIMIT_NOFILE);
    let have_cap =
        rustix::thread::capability_is_in_bounding_set(rustix::thread::CapabilitySet::SYS_RESOURCE)
            .unwrap_or(false)
            && effective_sys_resource();
    if have_cap || hard <= max {
        return (soft, hard, false);
    }
    (soft.min(max), max, true)
}

fn effective_sys_resource() -> bool {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|m| m & (1 << 24) != 0)
}

/// Warnings for the user (clamped `--ulimit`s), printed by the CLI at create.
pub fn ulimit_warnings(rec: &ContainerRecord) -> Vec<String> {
    rec.host_config
        .ulimits
        .iter()
        .filter(|u| u.name == "nofile")
        .filter_map(|u| {
            let (s, h, lowered) = clamp_nofile(u.soft, u.hard);
            lowered.then(|| format!(
                "WARNING: --ulimit nofile={}:{} is above the hard limit berth runs with; using {s}:{h} (raising it needs CAP_SYS_RESOURCE)",
                u.soft, u.hard
            ))
        })
        .collect()
}

fn rlimits(rec: &ContainerRecord) -> Result<Vec<Value>> {
    let (ds, dh) = runtime::defaults::DOCKER_NOFILE;
    let mut out = Vec::new();
    let mut have_nofile = false;
    for u in &rec.host_config.ulimits {
        let ty =
            rlimit_resource(&u.name).ok_or_else(|| anyhow!("invalid ulimit type: {}", u.name))?;
        let (s, h) = if u.name == "nofile" {
            have_nofile = true;
            let (s, h, _) = clamp_nofile(u.soft, u.hard);
            (s, h)
        } else {
            (u.soft, u.hard)
        };
        out.push(json!({"type": ty, "soft": s, "hard": h}));
    }
    if !have_nofile {
        let (s, h, _) = clamp_nofile(ds, dh);
        out.push(json!({"type": "RLIMIT_NOFILE", "soft": s, "hard": h}));
    }
    Ok(out)
}

fn device(spec: &str) -> Result<(Value, Value)> {
    let parts: Vec<&str> = spec.split(':').collect();
    let host = parts[0];
    let (target, perms) = match parts.len() {
        1 => (host, "rwm"),
        2 if parts[1].chars().all(|c| "rwm".contains(c)) => (host, parts[1]),
        2 => (parts[1], "rwm"),
        _ => (parts[1], parts[2]),
    };
    let st = rustix::fs::stat(host).with_context(|| {
        format!("error gathering device information while adding custom device \"{host}\"")
    })?;
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFCHR => "c",
        libc::S_IFBLK => "b",
        _ => bail!("error gathering device information while adding custom device \"{host}\": not a device node"),
    };
    let major = rustix::fs::major(st.st_rdev) as i64;
    let minor = rustix::fs::minor(st.st_rdev) as i64;
    Ok((
        json!({"path": target, "type": kind, "major": major, "minor": minor,
               "fileMode": st.st_mode & 0o7777, "uid": 0, "gid": 0}),
        json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": perms}),
    ))
}

fn resources(rec: &ContainerRecord, dev_rules: Vec<Value>) -> Value {
    let hc = &rec.host_config;
    let mut r = serde_json::Map::new();
    let mut devices = vec![json!({"allow": hc.privileged, "access": "rwm"})];
    devices.extend(dev_rules);
    r.insert("devices".into(), Value::Array(devices));
    let mut mem = serde_json::Map::new();
    if hc.memory > 0 {
        mem.insert("limit".into(), json!(hc.memory));
        // docker: swap defaults to twice the memory; -1 is unlimited.
        let swap = match hc.memory_swap {
            0 => hc.memory * 2,
            s => s,
        };
        mem.insert("swap".into(), json!(swap));
    }
    if hc.memory_reservation > 0 {
        mem.insert("reservation".into(), json!(hc.memory_reservation));
    }
    if !mem.is_empty() {
        r.insert("memory".into(), Value::Object(mem));
    }
    let mut cpu = serde_json::Map::new();
    if hc.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(hc.cpu_shares));
    }
    if hc.nano_cpus > 0 {
        let period: i64 = 100_000;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!(hc.nano_cpus * period / 1_000_000_000));
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(hc.cpuset_cpus));
    }
    if !hc.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(hc.cpuset_mems));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if hc.blkio_weight > 0 {
        r.insert("blockIO".into(), json!({"weight": hc.blkio_weight}));
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        r.insert("pids".into(), json!({"limit": if p < 0 { -1 } else { p }}));
    }
    Value::Object(r)
}

fn mounts(rec: &ContainerRecord, etc: &[(String, std::path::PathBuf)]) -> Vec<Value> {
    let hc = &rec.host_config;
    let shm = if hc.shm_size > 0 {
        hc.shm_size
    } else {
        64 << 20
    };
    let sys_ro = if hc.privileged { "rw" } else { "ro" };
    let mut m = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", sys_ro]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", sys_ro]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}),
    ];
    for (target, src) in etc {
        m.push(json!({"destination": target, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
    }
    for (dest, opts) in &hc.tmpfs {
        let mut o: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
        o.extend(
            opts.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        m.push(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": o}));
    }
    m
}

/// Docker's process env: image Env with flags over it, PATH default, HOSTNAME, HOME.
fn env(rec: &ContainerRecord, home: &str) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut set = |kv: String| {
        let k = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(k.as_str()));
        env.push(kv);
    };
    set("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    set(format!("HOSTNAME={}", rec.config.hostname));
    if rec.config.tty {
        set("TERM=xterm".into());
    }
    for e in &rec.config.env {
        set(e.clone());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

pub struct Inputs<'a> {
    pub rec: &'a ContainerRecord,
    pub rootfs: &'a Path,
    /// containers/<id>/ (hosts, hostname, resolv.conf).
    pub dir: &'a Path,
    /// `--init`: the directory to bind-mount and how to start it.
    pub init: Option<&'a super::init::Installed>,
}

/// The container's process args (docker: entrypoint + cmd).
pub fn process_args(rec: &ContainerRecord) -> Vec<String> {
    let mut a = vec![rec.path.clone()];
    a.extend(rec.args.iter().cloned());
    a
}

pub fn build(i: Inputs<'_>) -> Result<Spec> {
    let rec = i.rec;
    let hc = &rec.host_config;
    let user = super::user::resolve(&rec.config.user, &hc.group_add, i.rootfs)?;
    let caps = capabilities(hc.privileged, &hc.cap_add, &hc.cap_drop)?;
    let etc = super::etcfiles::write_all(rec, i.dir)?;
    let mut devs = Vec::new();
    let mut dev_rules = Vec::new();
    for d in &hc.devices {
        let (dv, rule) = device(d)?;
        devs.push(dv);
        dev_rules.push(rule);
    }
    if hc.privileged {
        let taken: Vec<String> = devs
            .iter()
            .filter_map(|d| d["path"].as_str().map(str::to_string))
            .collect();
        devs.extend(super::host_devices::all(&taken));
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    match hc.network_mode.as_str() {
        "host" => {}
        _ => namespaces.push(json!({"type": "network"})),
    }
    let mut args = process_args(rec);
    let mut mounts = mounts(rec, &etc);
    if hc.init {
        let init = i
            .init
            .ok_or_else(|| anyhow!("--init: the init binary was not installed"))?;
        mounts.push(
            json!({"destination": super::init::MOUNT_POINT, "type": "bind",
            "source": init.dir, "options": ["bind", "ro", "nosuid", "nodev"]}),
        );
        let mut a = init.argv.clone();
        a.append(&mut args);
        args = a;
    }
    let cwd = if rec.config.working_dir.is_empty() {
        "/".to_string()
    } else {
        rec.config.working_dir.clone()
    };
    let hostname = if hc.network_mode == "host" {
        Value::Null
    } else {
        json!(rec.config.hostname)
    };
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": format!("berth-{}", rec.id),
        "resources": resources(rec, dev_rules),
        "devices": devs,
        "sysctl": hc.sysctls,
        "rootfsPropagation": "rprivate",
    });
    if !hc.privileged {
        linux["maskedPaths"] = json!(runtime::defaults::MASKED_PATHS);
        linux["readonlyPaths"] = json!(runtime::defaults::READONLY_PATHS);
    }
    if let Some(s) = seccomp(rec, &caps)? {
        linux["seccomp"] = s;
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": rec.config.tty,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
            "args": args,
            "env": env(rec, &user.home),
            "cwd": cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "rlimits": rlimits(rec)?,
            "noNewPrivileges": no_new_privileges(rec),
        },
        "root": {"path": i.rootfs, "readonly": hc.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    });
    if !hostname.is_null() {
        spec["hostname"] = hostname;
    }
    serde_json::from_value(spec).context("generated OCI spec is invalid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_caps_arithmetic() {
        let d = capabilities(false, &[], &[]).unwrap();
        assert_eq!(d.len(), 14);
        assert!(d.contains(&"CAP_NET_RAW".to_string()));
        let d = capabilities(false, &["NET_ADMIN".into()], &["net_raw".into()]).unwrap();
        assert!(
            d.contains(&"CAP_NET_ADMIN".to_string()) && !d.contains(&"CAP_NET_RAW".to_string())
        );
        let d = capabilities(false, &["CHOWN".into()], &["ALL".into()]).unwrap();
        assert_eq!(d, vec!["CAP_CHOWN".to_string()]);
        assert!(capabilities(false, &["BOGUS".into()], &[]).is_err());
        // Privileged: every known capability berth itself holds.
        let held = super::super::caps_held::bounding_set().unwrap();
        let want = (0..ALL_CAPS.len())
            .filter(|i| held & (1u64 << i) != 0)
            .count();
        assert_eq!(capabilities(true, &[], &[]).unwrap().len(), want);
    }
}
