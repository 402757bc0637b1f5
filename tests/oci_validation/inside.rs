//! The checks runtime-tools' `runtimetest` makes inside the container,
//! done with busybox: the container's shell prints what it sees (its own
//! /proc/$$ entries, mountinfo, devices, paths) and the test compares that
//! with config.json, field by field as runtimetest does.

use std::collections::BTreeMap;

use serde_json::Value;

use super::lab::Tap;

/// Capability names in the kernel's order (the runtime's own table).
pub const CAPS: &[&str] = runtime::caps::NAMES;

const RLIMITS: &[(&str, &str)] = &[
    ("RLIMIT_CPU", "Max cpu time"),
    ("RLIMIT_FSIZE", "Max file size"),
    ("RLIMIT_DATA", "Max data size"),
    ("RLIMIT_STACK", "Max stack size"),
    ("RLIMIT_CORE", "Max core file size"),
    ("RLIMIT_RSS", "Max resident set"),
    ("RLIMIT_NPROC", "Max processes"),
    ("RLIMIT_NOFILE", "Max open files"),
    ("RLIMIT_MEMLOCK", "Max locked memory"),
    ("RLIMIT_AS", "Max address space"),
    ("RLIMIT_LOCKS", "Max file locks"),
    ("RLIMIT_SIGPENDING", "Max pending signals"),
    ("RLIMIT_MSGQUEUE", "Max msgqueue size"),
    ("RLIMIT_NICE", "Max nice priority"),
    ("RLIMIT_RTPRIO", "Max realtime priority"),
    ("RLIMIT_RTTIME", "Max realtime timeout"),
];

const DEFAULT_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
];

const DEFAULT_SYMLINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The shell program that reports what the checks need, as one line (it
/// is also process.args[2], which /proc/$$/cmdline must show unchanged).
pub fn script(cfg: &Value) -> String {
    let mut s = vec![
        "echo ==cwd".to_string(),
        "pwd".into(),
        "echo ==umask".into(),
        "umask".into(),
        "echo ==status".into(),
        "cat /proc/$$/status".into(),
        "echo ==cmdline".into(),
        "tr '\\000' '\\n' < /proc/$$/cmdline".into(),
        "echo ==env".into(),
        "env".into(),
        "echo ==hostname".into(),
        "hostname".into(),
        "echo ==mountinfo".into(),
        "cat /proc/$$/mountinfo".into(),
        "echo ==limits".into(),
        "cat /proc/$$/limits".into(),
        "echo ==oom".into(),
        "cat /proc/$$/oom_score_adj".into(),
        "echo ==uidmap".into(),
        "cat /proc/$$/uid_map".into(),
        "echo ==gidmap".into(),
        "cat /proc/$$/gid_map".into(),
        "echo ==rootfs".into(),
        "if touch /.ocival-w 2>/dev/null; then rm -f /.ocival-w; echo writable; else echo ro; fi"
            .into(),
        "echo ==links".into(),
    ];
    for (l, _) in DEFAULT_SYMLINKS {
        s.push(format!("echo \"{l} $(readlink {l})\""));
    }
    s.push("echo ==defdevs".into());
    for d in DEFAULT_DEVICES {
        s.push(format!(
            "if [ -c {d} ]; then echo '{d} c'; else echo '{d} missing'; fi"
        ));
    }
    let linux = &cfg["linux"];
    s.push("echo ==devices".into());
    for d in linux["devices"].as_array().into_iter().flatten() {
        let p = d["path"].as_str().unwrap_or_default();
        s.push(format!(
            "stat -c '%n|%F|%t|%T|%a|%u|%g' {p} 2>/dev/null || echo '{p}|missing'"
        ));
    }
    s.push("echo ==masked".into());
    for p in strs(&linux["maskedPaths"]) {
        s.push(format!(
            "if [ ! -e {p} ]; then echo '{p} absent'; elif [ -d {p} ]; then echo \"{p} $(ls -A {p} | wc -l)\"; else echo \"{p} $(head -c 1 {p} 2>/dev/null | wc -c)\"; fi"
        ));
    }
    s.push("echo ==ro".into());
    for p in strs(&linux["readonlyPaths"]) {
        s.push(format!(
            "if [ ! -e {p} ]; then echo '{p} absent'; elif [ -d {p} ]; then if touch {p}/.ocival-w 2>/dev/null; then echo '{p} writable'; else echo '{p} ro'; fi; elif [ -p {p} ] || [ -b {p} ] || [ -c {p} ]; then o=$(awk -v p={p} '$5 == p {{ o = $6 }} END {{ print o }}' /proc/$$/mountinfo); case \",$o,\" in *,ro,*) echo '{p} ro';; *) echo '{p} writable';; esac; elif (: >> {p}) 2>/dev/null; then echo '{p} writable'; else echo '{p} ro'; fi"
        ));
    }
    s.push("echo ==sysctl".into());
    if let Some(m) = linux["sysctl"].as_object() {
        for k in m.keys() {
            s.push(format!(
                "echo \"{k} $(cat /proc/sys/{})\"",
                k.replace('.', "/")
            ));
        }
    }
    s.push("echo ==end".into());
    s.join("; ")
}

fn sections(out: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cur = String::new();
    for l in out.lines() {
        if let Some(name) = l.strip_prefix("==") {
            cur = name.to_string();
            m.entry(cur.clone()).or_default();
        } else {
            m.entry(cur.clone()).or_default().push(l.to_string());
        }
    }
    m
}

fn field<'a>(lines: &'a [String], key: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or("")
}

fn cap_mask(names: &[String]) -> u64 {
    names
        .iter()
        .filter_map(|n| CAPS.iter().position(|c| c == n))
        .fold(0, |m, i| m | 1 << i)
}

fn clean(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if p.starts_with('/') {
        format!("/{}", parts.join("/"))
    } else {
        parts.join("/")
    }
}

/// Compare the container's report with `cfg`, one TAP line per field.
pub fn check(t: &mut Tap, cfg: &Value, out: &str) {
    let s = sections(out);
    let get = |k: &str| s.get(k).cloned().unwrap_or_default();
    t.ok(
        s.contains_key("end"),
        "the process ran to its end",
        format!("output {out:?}"),
    );
    let p = &cfg["process"];
    let status = get("status");

    let cwd = get("cwd").join("");
    let want_cwd = p["cwd"].as_str().unwrap_or("/");
    t.ok(
        cwd == want_cwd,
        "process.cwd",
        format!("{cwd:?} != {want_cwd:?}"),
    );

    let env = get("env");
    for e in strs(&p["env"]) {
        t.ok(
            env.contains(&e),
            &format!("process.env {e}"),
            format!("{env:?}"),
        );
    }
    let args = strs(&p["args"]);
    let cmdline = get("cmdline");
    // The script is one line, so the split on NUL bytes is exact.
    t.ok(cmdline == args, "process.args", format!("{cmdline:?}"));

    let ids = |k: &str| -> Vec<String> {
        field(&status, k)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let uid = p["user"]["uid"].as_u64().unwrap_or(0).to_string();
    let gid = p["user"]["gid"].as_u64().unwrap_or(0).to_string();
    t.ok(
        ids("Uid:").iter().all(|u| *u == uid),
        "process.user.uid",
        field(&status, "Uid:"),
    );
    t.ok(
        ids("Gid:").iter().all(|g| *g == gid),
        "process.user.gid",
        field(&status, "Gid:"),
    );
    let groups = ids("Groups:");
    for g in p["user"]["additionalGids"].as_array().into_iter().flatten() {
        let g = g.to_string();
        t.ok(
            groups.contains(&g),
            &format!("process.user.additionalGids {g}"),
            format!("{groups:?}"),
        );
    }

    if let Some(m) = p["user"]["umask"].as_u64() {
        let got = get("umask").join("");
        t.ok(
            u64::from_str_radix(&got, 8).ok() == Some(m),
            "process.user.umask",
            format!("{got:?} != {m:o}"),
        );
    }

    let caps = &p["capabilities"];
    for (set, key) in [
        ("bounding", "CapBnd:"),
        ("effective", "CapEff:"),
        ("inheritable", "CapInh:"),
        ("permitted", "CapPrm:"),
        ("ambient", "CapAmb:"),
    ] {
        let want = cap_mask(&strs(&caps[set]));
        let got = u64::from_str_radix(field(&status, key), 16).unwrap_or(u64::MAX);
        // Capabilities the kernel does not know cannot be set.
        let known = u64::from_str_radix(field(&status, "CapBnd:"), 16).unwrap_or(0) | want;
        t.ok(
            got == want & known,
            &format!("process.capabilities.{set}"),
            format!("{got:016x} != {want:016x}"),
        );
    }
    let nnp = p["noNewPrivileges"].as_bool().unwrap_or(false);
    t.ok(
        field(&status, "NoNewPrivs:") == if nnp { "1" } else { "0" },
        "process.noNewPrivileges",
        field(&status, "NoNewPrivs:"),
    );

    let limits = get("limits");
    for r in p["rlimits"].as_array().into_iter().flatten() {
        let ty = r["type"].as_str().unwrap_or_default();
        let Some((_, label)) = RLIMITS.iter().find(|(n, _)| *n == ty) else {
            t.ok(false, &format!("rlimit {ty}"), "unknown rlimit type");
            continue;
        };
        let line = limits
            .iter()
            .find(|l| l.starts_with(label))
            .cloned()
            .unwrap_or_default();
        let v: Vec<&str> = line[label.len().min(line.len())..]
            .split_whitespace()
            .collect();
        let num = |x: Option<&&str>| match x {
            Some(&"unlimited") => Some(u64::MAX),
            Some(n) => n.parse().ok(),
            None => None,
        };
        let want = (r["soft"].as_u64(), r["hard"].as_u64());
        t.ok(
            (num(v.first()), num(v.get(1))) == want,
            &format!("process.rlimits {ty}"),
            format!("{line:?} != {want:?}"),
        );
    }
    if let Some(adj) = p["oomScoreAdj"].as_i64() {
        let got = get("oom").join("");
        t.ok(
            got == adj.to_string(),
            "process.oomScoreAdj",
            format!("{got:?}"),
        );
    }

    if let Some(h) = cfg["hostname"].as_str() {
        let got = get("hostname").join("");
        t.ok(got == h, "hostname", format!("{got:?}"));
    }
    let rootfs = get("rootfs").join("");
    let ro = cfg["root"]["readonly"].as_bool().unwrap_or(false);
    t.ok(
        rootfs == if ro { "ro" } else { "writable" },
        &format!("root.readonly is {ro}"),
        format!("rootfs is {rootfs}"),
    );

    // mountpoint -> (fstype, source) for every mount the container sees.
    let mounts: Vec<(String, String, String)> = get("mountinfo")
        .iter()
        .filter_map(|l| {
            let (a, b) = l.split_once(" - ")?;
            let mp = a.split_whitespace().nth(4)?.to_string();
            let mut bs = b.split_whitespace();
            Some((mp, bs.next()?.to_string(), bs.next()?.to_string()))
        })
        .collect();
    // validatePosixMounts: each mount is there, and in config order.
    let mut next = 0;
    for m in cfg["mounts"].as_array().into_iter().flatten() {
        let ty = m["type"].as_str().unwrap_or_default();
        if ty == "bind" || ty == "rbind" {
            continue;
        }
        let dest = clean(m["destination"].as_str().unwrap_or_default());
        let src = clean(m["source"].as_str().unwrap_or_default());
        let is = |(mp, t2, s2): &(String, String, String)| *mp == dest && t2 == ty && *s2 == src;
        let at = mounts.iter().skip(next).position(is).map(|i| i + next);
        t.ok(
            at.is_some(),
            &format!("mount {dest} ({ty} from {src}), in config order"),
            if mounts.iter().any(is) {
                "mounted before an earlier config mount"
            } else {
                "not in /proc/self/mountinfo"
            },
        );
        if let Some(i) = at {
            next = i + 1;
        }
    }

    let links = get("links");
    for (l, want) in DEFAULT_SYMLINKS {
        t.ok(
            links.contains(&format!("{l} {want}")),
            &format!("default symlink {l} -> {want}"),
            format!("{links:?}"),
        );
    }
    let defdevs = get("defdevs");
    for d in DEFAULT_DEVICES {
        t.ok(
            defdevs.contains(&format!("{d} c")),
            &format!("default device {d}"),
            format!("{defdevs:?}"),
        );
    }
    let devs = get("devices");
    for d in cfg["linux"]["devices"].as_array().into_iter().flatten() {
        let path = d["path"].as_str().unwrap_or_default();
        let line = devs
            .iter()
            .find(|l| l.starts_with(&format!("{path}|")))
            .cloned()
            .unwrap_or_default();
        let f: Vec<&str> = line.split('|').collect();
        let kind = match f.get(1) {
            Some(&"character special file") => "c",
            Some(&"block special file") => "b",
            Some(&"fifo") => "p",
            _ => "?",
        };
        let want_kind = match d["type"].as_str() {
            Some("u") => "c",
            Some(k) => k,
            None => "?",
        };
        let mut ok = kind == want_kind;
        if kind != "p" {
            let hex = |i: usize| u64::from_str_radix(f.get(i).unwrap_or(&""), 16).ok();
            ok &= hex(2) == d["major"].as_u64() && hex(3) == d["minor"].as_u64();
        }
        if let Some(m) = d["fileMode"].as_u64() {
            ok &= f.get(4) == Some(&format!("{:o}", m & 0o777).as_str());
        }
        if let Some(u) = d["uid"].as_u64() {
            ok &= f.get(5) == Some(&u.to_string().as_str());
        }
        if let Some(g) = d["gid"].as_u64() {
            ok &= f.get(6) == Some(&g.to_string().as_str());
        }
        t.ok(ok, &format!("linux.devices {path}"), format!("{line:?}"));
    }
    let masked = get("masked");
    for p in strs(&cfg["linux"]["maskedPaths"]) {
        let ok = masked.contains(&format!("{p} absent")) || masked.contains(&format!("{p} 0"));
        t.ok(
            ok,
            &format!("linux.maskedPaths {p} reads empty"),
            format!("{masked:?}"),
        );
    }
    let ro_paths = get("ro");
    for p in strs(&cfg["linux"]["readonlyPaths"]) {
        let ok = ro_paths.contains(&format!("{p} absent")) || ro_paths.contains(&format!("{p} ro"));
        t.ok(
            ok,
            &format!("linux.readonlyPaths {p} is not writable"),
            format!("{ro_paths:?}"),
        );
    }
    let sysctl = get("sysctl");
    if let Some(m) = cfg["linux"]["sysctl"].as_object() {
        for (k, v) in m {
            let want = format!("{k} {}", v.as_str().unwrap_or_default());
            t.ok(
                sysctl.contains(&want),
                &format!("linux.sysctl {k}"),
                format!("{sysctl:?}"),
            );
        }
    }
    for (key, sec) in [("uidMappings", "uidmap"), ("gidMappings", "gidmap")] {
        let Some(maps) = cfg["linux"][key].as_array() else {
            continue;
        };
        let got: Vec<Vec<u64>> = get(sec)
            .iter()
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .collect();
        let all = maps.iter().all(|m| {
            got.contains(&vec![
                m["containerID"].as_u64().unwrap_or(u64::MAX),
                m["hostID"].as_u64().unwrap_or(u64::MAX),
                m["size"].as_u64().unwrap_or(u64::MAX),
            ])
        });
        t.ok(
            all && got.len() == maps.len(),
            &format!("linux.{key}"),
            format!("{got:?}"),
        );
    }
}
