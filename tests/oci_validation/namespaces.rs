//! runtime-tools' namespace programs: new, joined by path, wrong type, inherited.

use std::time::Duration;

use serde_json::json;

use super::lab::{Lab, Tap, T};

/// Namespace inodes of a pid, by /proc/PID/ns name.
pub fn ns_of(pid: i64) -> std::collections::BTreeMap<&'static str, String> {
    ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"]
        .into_iter()
        .map(|n| {
            let l = std::fs::read_link(format!("/proc/{pid}/ns/{n}")).unwrap_or_default();
            (n, l.to_string_lossy().into_owned())
        })
        .collect()
}

/// config type -> /proc/PID/ns name.
pub const NS: &[(&str, &str)] = &[
    ("cgroup", "cgroup"),
    ("ipc", "ipc"),
    ("mount", "mnt"),
    ("network", "net"),
    ("pid", "pid"),
    ("uts", "uts"),
];

#[test]
fn linux_ns_nopath() {
    let mut t = Tap::new("linux_ns_nopath");
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["sleep", "30"]);
    b.config["linux"]["namespaces"] = NS.iter().map(|(ty, _)| json!({"type": ty})).collect();
    b.write();
    let id = lab.id("nsnopath");
    let o = lab.create(&b, &id, None);
    t.ok(o.ok, "create", &o);
    let pid = lab.pid(&id);
    let (host, ctr) = (ns_of(std::process::id() as i64), ns_of(pid));
    for (ty, n) in NS {
        t.ok(
            !ctr[n].is_empty() && ctr[n] != host[n],
            &format!("a {ty} namespace without path is a new namespace"),
            format!("{} vs {}", ctr[n], host[n]),
        );
    }
    t.finish();
}

#[test]
fn linux_ns_path() {
    let mut t = Tap::new("linux_ns_path");
    let mut lab = Lab::new();
    let mut first = lab.bundle(&["sleep", "30"]);
    first.config["linux"]["namespaces"] = NS.iter().map(|(ty, _)| json!({"type": ty})).collect();
    first.write();
    let a = lab.id("nspath-a");
    lab.create(&first, &a, None);
    lab.rt(&["start", &a]);
    let apid = lab.pid(&a);
    let joined = ["cgroup", "ipc", "network", "pid", "uts"];
    let mut second = lab.bundle(&["sleep", "30"]);
    let mut nss: Vec<serde_json::Value> = vec![json!({"type": "mount"})];
    for ty in joined {
        let n = NS.iter().find(|(t2, _)| *t2 == ty).unwrap().1;
        nss.push(json!({"type": ty, "path": format!("/proc/{apid}/ns/{n}")}));
    }
    second.config["linux"]["namespaces"] = json!(nss);
    second.config.as_object_mut().unwrap().remove("hostname");
    second.write();
    let b = lab.id("nspath-b");
    let o = lab.create(&second, &b, None);
    t.ok(
        o.ok,
        "create a container joining another's namespaces by path",
        &o,
    );
    let bpid = lab.pid(&b);
    let (na, nb) = (ns_of(apid), ns_of(bpid));
    for ty in joined {
        let n = NS.iter().find(|(t2, _)| *t2 == ty).unwrap().1;
        t.ok(
            !nb[n].is_empty() && na[n] == nb[n],
            &format!("the runtime MUST place the container in the {ty} namespace at path"),
            format!("{} vs {}", nb[n], na[n]),
        );
    }
    t.finish();
}

/// A process `unshare` holds in new namespaces, killed on drop.
struct Unshared(std::process::Child);

impl Drop for Unshared {
    fn drop(&mut self) {
        // SAFETY: signalling the process group of our own child.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
        super::lab::reap();
    }
}

/// runtime-tools' way: namespaces made by `unshare --fork`, joined by path
/// (pid through the holder's pid_for_children), mount included.
#[test]
fn linux_ns_path_unshare() {
    let mut t = Tap::new("linux_ns_path_unshare");
    let mut lab = Lab::new();
    for (ty, opt, n) in [
        ("ipc", "--ipc", "ipc"),
        ("mount", "--mount", "mnt"),
        ("network", "--net", "net"),
        ("pid", "--pid", "pid"),
        ("uts", "--uts", "uts"),
    ] {
        let mut cmd = std::process::Command::new("unshare");
        cmd.args([opt, "--fork", "sleep", "30"]);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let holder = Unshared(cmd.spawn().unwrap());
        let hp = holder.0.id();
        let link = if n == "pid" { "pid_for_children" } else { n };
        let path = format!("/proc/{hp}/ns/{link}");
        let host = ns_of(std::process::id() as i64)[n].clone();
        // unshare switches namespaces a moment after it starts.
        let deadline = std::time::Instant::now() + T;
        let mut want = String::new();
        while std::time::Instant::now() < deadline {
            want = std::fs::read_link(&path)
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if !want.is_empty() && want != host {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut b = lab.bundle(&["sleep", "30"]);
        let mut nss: Vec<serde_json::Value> = b.config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["type"] != ty)
            .cloned()
            .collect();
        nss.push(json!({"type": ty, "path": path}));
        b.config["linux"]["namespaces"] = json!(nss);
        b.write();
        let id = lab.id("nsunshare");
        let o = lab.create(&b, &id, None);
        let pid = lab.pid(&id);
        let got = ns_of(pid)[n].clone();
        t.ok(
            o.ok && !want.is_empty() && want != host && got == want,
            &format!("the runtime MUST place the container in the {ty} namespace at path"),
            format!("{got:?} vs {want:?}: {o}"),
        );
        lab.rt(&["delete", "--force", &id]);
        drop(holder);
    }
    t.finish();
}

#[test]
fn linux_ns_path_type() {
    let mut t = Tap::new("linux_ns_path_type");
    let mut lab = Lab::new();
    for (ty, wrong) in [
        ("cgroup", "ipc"),
        ("ipc", "mnt"),
        ("network", "pid"),
        ("pid", "user"),
        ("uts", "cgroup"),
    ] {
        let mut b = lab.bundle(&["true"]);
        let mut nss: Vec<serde_json::Value> = b.config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] != ty)
            .cloned()
            .collect();
        nss.push(json!({"type": ty, "path": format!("/proc/self/ns/{wrong}")}));
        b.config["linux"]["namespaces"] = json!(nss);
        b.write();
        let id = lab.id("nstype");
        let o = lab.create(&b, &id, None);
        t.ok(
            !o.ok,
            &format!("a {ty} namespace path of another type ({wrong}) MUST generate an error"),
            &o,
        );
    }
    t.finish();
}

#[test]
fn linux_ns_itype() {
    let mut t = Tap::new("linux_ns_itype");
    let mut lab = Lab::new();
    // Every type but mount left out (see EXCLUDED): each is inherited.
    let mut b = lab.bundle(&["sleep", "30"]);
    b.config["linux"]["namespaces"] = json!([{"type": "mount"}]);
    b.config.as_object_mut().unwrap().remove("hostname");
    b.write();
    let id = lab.id("nsitype");
    let o = lab.create(&b, &id, None);
    t.ok(o.ok, "create", &o);
    let pid = lab.pid(&id);
    let (host, ctr) = (ns_of(std::process::id() as i64), ns_of(pid));
    for n in ["cgroup", "ipc", "net", "pid", "user", "uts"] {
        t.ok(
            !ctr[n].is_empty() && ctr[n] == host[n],
            &format!("inherit namespace {n} without type"),
            format!("{} vs {}", ctr[n], host[n]),
        );
    }
    t.finish();
}
