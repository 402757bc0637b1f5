//! runtime-tools' hook programs, and the 1.0.2 stages it does not test.

use std::path::Path;

use serde_json::json;

use super::lab::{Lab, Tap, T};
use super::namespaces::ns_of;
use crate::common;

pub fn hook(b: &super::lab::Bundle, cmd: &str) -> serde_json::Value {
    json!({"path": b.dir.join("bin/sh"), "args": ["sh", "-c", cmd], "timeout": 5})
}

#[test]
fn hooks_stdin() {
    let mut t = Tap::new("hooks_stdin");
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    let d = b.dir.clone();
    b.config["annotations"] = json!({"org.opencontainers.runtime-tools": "hook stdin test"});
    b.config["hooks"] = json!({
        "prestart": [hook(&b, &format!("cat > {}/prestart", d.display()))],
        "poststart": [hook(&b, &format!("cat > {}/poststart", d.display()))],
        "poststop": [hook(&b, &format!("cat > {}/poststop", d.display()))],
    });
    b.write();
    let id = lab.id("hstdin");
    lab.create(&b, &id, None);
    let pid = lab
        .state(&id)
        .ok()
        .and_then(|s| s["pid"].as_i64())
        .unwrap_or(-1);
    lab.rt(&["start", &id]);
    lab.wait_status(&id, &["stopped"], T);
    lab.rt(&["delete", &id]);
    for (name, status) in [
        ("prestart", "created"),
        ("poststart", "running"),
        ("poststop", ""),
    ] {
        let data = std::fs::read_to_string(d.join(name)).unwrap_or_default();
        let s: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
        let ok = s["id"] == id.as_str()
            && s["bundle"].as_str().map(Path::new) == Some(d.as_path())
            && (name == "poststop" || s["pid"].as_i64() == Some(pid))
            && s["annotations"] == b.config["annotations"]
            && (if status.is_empty() {
                s["status"].as_str().is_some_and(|x| !x.is_empty())
            } else {
                s["status"] == status
            });
        t.ok(
            ok,
            &format!("the state of the container MUST be passed to the {name} hook over stdin"),
            data,
        );
    }
    t.finish();
}

/// prestart, poststart, poststop: hooks of a stage run in order.
fn hooks_in_order(name: &'static str, stage: &str) {
    let mut t = Tap::new(name);
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["sh", "-c", "echo 'process called' >> /output"]);
    let out = b.dir.join("output");
    let h1 = hook(&b, &format!("echo '{stage}1 called' >> {}", out.display()));
    let h2 = hook(&b, &format!("echo '{stage}2 called' >> {}", out.display()));
    b.config["hooks"] = json!({ stage: [h1, h2] });
    b.write();
    let r = lab.run_to_stop(&b, name);
    t.ok(r.is_ok(), "lifecycle", format!("{r:?}"));
    let data = std::fs::read_to_string(&out).unwrap_or_default();
    let want = match stage {
        "prestart" => format!("{stage}1 called\n{stage}2 called\nprocess called\n"),
        _ => format!("process called\n{stage}1 called\n{stage}2 called\n"),
    };
    // poststart hooks may run while (or after) the process writes.
    let ok = if stage == "poststart" {
        data.lines()
            .filter(|l| l.starts_with(stage))
            .collect::<Vec<_>>()
            == [format!("{stage}1 called"), format!("{stage}2 called")]
            && data.contains("process called")
    } else {
        data == want
    };
    t.ok(
        ok,
        &format!("the {stage} hooks MUST be called in order"),
        format!("{data:?}"),
    );
    t.finish();
}

/// All three stages, two hooks each: called in the listed order.
#[test]
fn hooks() {
    let mut t = Tap::new("hooks");
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    let out = b.dir.join("output");
    let h = |name: &str| hook(&b, &format!("echo '{name} called' >> {}", out.display()));
    let hooks = json!({
        "prestart": [h("pre-start1"), h("pre-start2")],
        "poststart": [h("post-start1"), h("post-start2")],
        "poststop": [h("post-stop1"), h("post-stop2")],
    });
    b.config["hooks"] = hooks;
    b.write();
    let r = lab.run_to_stop(&b, "hooks");
    t.ok(r.is_ok(), "lifecycle", format!("{r:?}"));
    let data = std::fs::read_to_string(&out).unwrap_or_default();
    t.ok(
        data == "pre-start1 called\npre-start2 called\npost-start1 called\npost-start2 called\npost-stop1 called\npost-stop2 called\n",
        "hooks MUST be called in the listed order",
        format!("{data:?}"),
    );
    t.finish();
}

/// The runtime spec's 1.0.2 hook stages (not in runtime-tools' suite):
/// createRuntime in the runtime's namespaces, createContainer in the
/// container's before pivot_root (its path resolves on the host),
/// startContainer in the container before the process (path inside), in
/// that order, each with the state on stdin.
#[test]
fn hooks_create_and_start_container() {
    let mut t = Tap::new("hooks_create_and_start_container");
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["sh", "-c", "echo process >> /output"]);
    let out = b.dir.join("output");
    let report = |stage: &str, file: &str| {
        format!("echo \"{stage} $(readlink /proc/self/ns/mnt) $(grep -o '\"status\":\"[a-z]*\"')\" >> {file}")
    };
    let host_out = out.display().to_string();
    b.config["hooks"] = json!({
        "createRuntime": [hook(&b, &report("createRuntime", &host_out))],
        "createContainer": [hook(&b, &report("createContainer", &host_out))],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", report("startContainer", "/output")]}],
    });
    b.write();
    let id = lab.id("hooks102");
    let o = lab.create(&b, &id, None);
    t.ok(o.ok, "create", &o);
    let pid = lab.pid(&id);
    let ctr_mnt = ns_of(pid)["mnt"].clone();
    let host_mnt = ns_of(std::process::id() as i64)["mnt"].clone();
    lab.rt(&["start", &id]);
    lab.wait_status(&id, &["stopped"], T);
    lab.rt(&["delete", &id]);
    let data = std::fs::read_to_string(&out).unwrap_or_default();
    let lines: Vec<Vec<&str>> = data.lines().map(|l| l.split(' ').collect()).collect();
    let stages: Vec<&str> = lines.iter().map(|l| l[0]).collect();
    t.ok(
        stages
            == [
                "createRuntime",
                "createContainer",
                "startContainer",
                "process",
            ],
        "createRuntime, createContainer, startContainer, then the process",
        format!("{data:?}"),
    );
    let ns = |stage: &str| {
        lines
            .iter()
            .find(|l| l[0] == stage)
            .and_then(|l| l.get(1).copied())
            .unwrap_or("")
    };
    t.ok(
        ns("createRuntime") == host_mnt,
        "createRuntime runs in the runtime namespace",
        format!("{data:?}"),
    );
    t.ok(
        ns("createContainer") == ctr_mnt,
        "createContainer runs in the container namespace",
        format!("{data:?} vs {ctr_mnt}"),
    );
    t.ok(
        ns("startContainer") == ctr_mnt,
        "startContainer runs in the container namespace",
        format!("{data:?} vs {ctr_mnt}"),
    );
    let with_state = lines
        .iter()
        .filter(|l| l.len() > 2 && l[2].starts_with("\"status\""))
        .count();
    t.ok(
        with_state == 3,
        "each gets the state on stdin",
        format!("{data:?}"),
    );
    t.finish();
}

#[test]
fn prestart() {
    hooks_in_order("prestart", "prestart");
}

#[test]
fn poststart() {
    hooks_in_order("poststart", "poststart");
}

#[test]
fn poststop() {
    hooks_in_order("poststop", "poststop");
}

#[test]
fn prestart_fail() {
    let mut t = Tap::new("prestart_fail");
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["sh", "-c", "touch /output"]);
    let f = b.dir.join("bin/false");
    let stop_log = b.dir.join("poststop-ran");
    let ps = hook(&b, &format!("touch {}", stop_log.display()));
    b.config["hooks"] = json!({"prestart": [{"path": f, "args": ["false"]}], "poststop": [ps]});
    let id = lab.id("prefail");
    b.config["linux"]["cgroupsPath"] = json!(format!("/{id}"));
    b.write();
    let o = lab.create(&b, &id, None);
    let started = o.ok && lab.rt(&["start", &id]).ok;
    t.ok(
        !started,
        "if any prestart hook fails, the runtime MUST generate an error",
        &o,
    );
    t.ok(
        !b.dir.join("output").exists(),
        "... and the process does not run",
        "",
    );
    t.ok(
        !lab.rt(&["state", &id]).ok,
        "... the container is stopped and deleted",
        "",
    );
    let left = common::cgroupfs::leftovers(std::slice::from_ref(&id));
    t.ok(left.is_empty(), "... with its cgroups", format!("{left:?}"));
    t.ok(
        stop_log.exists(),
        "... and the lifecycle continues: poststop hooks run",
        "",
    );
    t.finish();
}

/// The 1.0.2 stages that fail like prestart: createRuntime and
/// createContainer (not in runtime-tools' suite).
#[test]
fn create_hooks_fail() {
    let mut t = Tap::new("create_hooks_fail");
    let mut lab = Lab::new();
    for stage in ["createRuntime", "createContainer"] {
        let mut b = lab.bundle(&["sh", "-c", "touch /output"]);
        let f = b.dir.join("bin/false");
        let stop_log = b.dir.join("poststop-ran");
        let ps = hook(&b, &format!("touch {}", stop_log.display()));
        b.config["hooks"] = json!({ stage: [{"path": f, "args": ["false"]}], "poststop": [ps] });
        let id = lab.id("crfail");
        b.config["linux"]["cgroupsPath"] = json!(format!("/{id}"));
        b.write();
        let o = lab.create(&b, &id, None);
        t.ok(!o.ok, &format!("a failing {stage} hook fails create"), &o);
        t.ok(
            !b.dir.join("output").exists(),
            "... the process does not run",
            "",
        );
        t.ok(!lab.rt(&["state", &id]).ok, "... no container is left", "");
        let left = common::cgroupfs::leftovers(std::slice::from_ref(&id));
        t.ok(left.is_empty(), "... nor its cgroups", format!("{left:?}"));
        t.ok(stop_log.exists(), "... and the poststop hooks run", "");
    }
    // startContainer runs in the container after start: start fails, the
    // container is stopped, delete runs the poststop hooks.
    let mut b = lab.bundle(&["sh", "-c", "touch /output"]);
    let stop_log = b.dir.join("poststop-ran");
    let ps = hook(&b, &format!("touch {}", stop_log.display()));
    b.config["hooks"] = json!({"startContainer": [{"path": "/bin/false"}], "poststop": [ps]});
    b.write();
    let id = lab.id("scfail");
    let o = lab.create(&b, &id, None);
    t.ok(o.ok, "create with a failing startContainer hook", &o);
    let o = lab.rt(&["start", &id]);
    t.ok(
        !o.ok && o.stderr.contains("startContainer"),
        "a failing startContainer hook fails start",
        &o,
    );
    t.ok(
        lab.wait_status(&id, &["stopped"], T),
        "... the container is stopped",
        lab.status(&id),
    );
    t.ok(
        !b.dir.join("output").exists(),
        "... the process did not run",
        "",
    );
    let o = lab.rt(&["delete", &id]);
    t.ok(
        o.ok && stop_log.exists(),
        "... delete runs the poststop hooks",
        &o,
    );
    t.finish();
}

fn failing_hook_continues(name: &'static str, stage: &str) {
    let mut t = Tap::new(name);
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    let out = b.dir.join("output");
    let f = b.dir.join("bin/false");
    let ok_hook = hook(&b, &format!("echo '{stage} called' >> {}", out.display()));
    b.config["hooks"] = json!({ stage: [{"path": f, "args": ["false"]}, ok_hook] });
    b.write();
    let id = lab.id(name);
    let c = lab.create(&b, &id, None);
    let s = lab.rt(&["start", &id]);
    lab.wait_status(&id, &["stopped"], T);
    let d = lab.rt(&["delete", &id]);
    let data = std::fs::read_to_string(&out).unwrap_or_default();
    t.ok(
        c.ok && s.ok && d.ok && data == format!("{stage} called\n"),
        &format!("if any {stage} hook fails, the runtime MUST log a warning, but the remaining hooks and lifecycle continue"),
        format!("{data:?} create {c} start {s} delete {d}"),
    );
    let warned = if stage == "poststart" { &s } else { &d };
    t.ok(
        warned.stderr.contains("warning"),
        &format!("the failed {stage} hook is logged as a warning"),
        warned,
    );
    t.finish();
}

#[test]
fn poststart_fail() {
    failing_hook_continues("poststart_fail", "poststart");
}

#[test]
fn poststop_fail() {
    failing_hook_continues("poststop_fail", "poststop");
}
