//! runtime-tools' lifecycle programs: create, start, state, kill, delete and their errors, the pid file, unknown and invalid config values, config.json changes after create.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::hooks::hook;
use super::lab::{Lab, Tap, T};
use crate::common;

#[test]
fn create() {
    let mut t = Tap::new("create");
    let mut lab = Lab::new();
    let b = lab.bundle(&["ls"]);
    let o = lab.rt(&["create", "--bundle", &b.path()]);
    t.ok(
        !o.ok,
        "create MUST generate an error if the ID is not provided",
        &o,
    );
    let id = lab.id("create");
    let o = lab.create(&b, &id, None);
    t.ok(o.ok, "create MUST create a new container", &o);
    let st = lab.state(&id);
    t.ok(
        st.as_ref().is_ok_and(|s| s["id"] == id.as_str()),
        "'state' MUST return the state of a container",
        format!("{st:?}"),
    );
    let o = lab.create(&b, &id, None);
    t.ok(
        !o.ok,
        "create MUST generate an error if the ID provided is not unique",
        &o,
    );
    t.ok(
        lab.status(&id) == "created",
        "a failed create leaves the existing container alone",
        lab.status(&id),
    );
    t.finish();
}

#[test]
fn start() {
    let mut t = Tap::new("start");
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["sh", "-c", "echo 'process called' >> /output"]);
    let output = b.dir.join("output");
    let o = lab.rt(&["start"]);
    t.ok(
        !o.ok,
        "start MUST generate an error if it is not provided the container ID",
        &o,
    );
    let id = lab.id("start");
    let o = lab.rt(&["start", &id]);
    t.ok(
        !o.ok,
        "attempting to start a container that does not exist MUST generate an error",
        &o,
    );
    let o = lab.create(&b, &id, None);
    t.ok(o.ok, "create", &o);
    t.ok(
        !output.exists(),
        "process.args MUST NOT be applied until triggered by the start operation",
        "output exists after create",
    );
    let o = lab.rt(&["start", &id]);
    t.ok(o.ok, "start MUST run the user-specified program", &o);
    t.ok(
        lab.wait_status(&id, &["stopped"], T),
        "the container stops",
        lab.status(&id),
    );
    let data = std::fs::read_to_string(&output).unwrap_or_default();
    t.ok(
        data == "process called\n",
        "start ran process.args once",
        format!("{data:?}"),
    );
    let o = lab.rt(&["start", &id]);
    t.ok(
        !o.ok,
        "attempting to start a container that is not created MUST generate an error",
        &o,
    );
    let data = std::fs::read_to_string(&output).unwrap_or_default();
    t.ok(
        data == "process called\n",
        "attempting to start a container that is not created MUST have no effect",
        format!("{data:?}"),
    );
    let o = lab.rt(&["delete", &id]);
    t.ok(o.ok, "delete the stopped container", &o);

    // A config without process: create succeeds, start is what fails.
    b.config.as_object_mut().unwrap().remove("process");
    b.write();
    let o = lab.create(&b, &id, None);
    t.ok(
        o.ok,
        "create accepts a config without process (process is OPTIONAL)",
        &o,
    );
    let o = lab.rt(&["start", &id]);
    t.ok(
        !o.ok,
        "start MUST generate an error if process was not set",
        &o,
    );
    t.ok(
        lab.status(&id) == "created",
        "the failed start leaves the container created",
        lab.status(&id),
    );
    let o = lab.rt(&["kill", &id, "KILL"]);
    t.ok(
        o.ok && lab.wait_status(&id, &["stopped"], T),
        "kill KILL stops it",
        &o,
    );
    let o = lab.rt(&["delete", &id]);
    t.ok(o.ok, "delete it", &o);
    t.finish();
}

#[test]
fn state() {
    let mut t = Tap::new("state");
    let mut lab = Lab::new();
    let b = lab.bundle(&["true"]);
    let o = lab.rt(&["state"]);
    t.ok(
        !o.ok,
        "state MUST generate an error if it is not provided the ID of a container",
        &o,
    );
    let id = lab.id("state");
    let o = lab.rt(&["state", &id]);
    t.ok(
        !o.ok,
        "state MUST generate an error if a container does not exist",
        &o,
    );
    let o = lab.create(&b, &id, None);
    t.ok(o.ok, "create", &o);
    match lab.state(&id) {
        Ok(s) => {
            let fields_ok = s["ociVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("1."))
                && s["id"] == id.as_str()
                && s["status"] == "created"
                && s["pid"].as_i64().is_some_and(|p| p > 0)
                && s["bundle"].as_str().map(Path::new) == Some(b.dir.as_path());
            t.ok(
                fields_ok,
                "state MUST return the state of a container as specified in the State section",
                &s,
            );
        }
        Err(e) => t.ok(false, "state MUST return the state of a container", e),
    }
    let o = lab.rt(&["kill", &id, "KILL"]);
    t.ok(
        o.ok && lab.wait_status(&id, &["stopped"], T),
        "kill KILL a created container",
        &o,
    );
    let o = lab.rt(&["delete", &id]);
    t.ok(o.ok, "delete", &o);

    // While create runs (here: during its createRuntime hook) the state is
    // "creating", not stopped.
    let mut b = lab.bundle(&["true"]);
    let id = lab.id("creating");
    let seen = b.dir.join("seen");
    let cmd = format!(
        "'{}' state {id} > {}",
        lab.runtime.display(),
        seen.display()
    );
    b.config["hooks"] = json!({"createRuntime": [hook(&b, &cmd)]});
    b.write();
    let o = lab.create(&b, &id, None);
    t.ok(o.ok, "create", &o);
    let data = std::fs::read_to_string(&seen).unwrap_or_default();
    let st: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
    t.ok(
        st["status"] == "creating" && st["id"] == id.as_str(),
        "state during create says creating",
        format!("{data:?}"),
    );
    t.ok(
        lab.status(&id) == "created",
        "and created once create returned",
        lab.status(&id),
    );
    t.finish();
}

#[test]
fn kill() {
    let mut t = Tap::new("kill");
    let mut lab = Lab::new();
    let stopped = lab.bundle(&["true"]);
    let running = lab.bundle(&["sleep", "30"]);
    let o = lab.rt(&["kill"]);
    t.ok(
        !o.ok,
        "kill MUST generate an error if it is not provided the container ID",
        &o,
    );
    let id = lab.id("kill");
    let o = lab.rt(&["kill", &id, "TERM"]);
    t.ok(
        !o.ok,
        "kill of a container that does not exist MUST generate an error",
        &o,
    );
    // A created container: KILL is delivered and it stops.
    lab.create(&stopped, &id, None);
    let o = lab.rt(&["kill", &id, "KILL"]);
    let stops = lab.wait_status(&id, &["stopped"], T);
    t.ok(
        o.ok && stops,
        "kill MUST send the specified signal to the container process (created)",
        &o,
    );
    lab.rt(&["delete", &id]);
    // A stopped container: kill errors.
    lab.create(&stopped, &id, None);
    lab.rt(&["start", &id]);
    lab.wait_status(&id, &["stopped"], T);
    let o = lab.rt(&["kill", &id, "KILL"]);
    t.ok(!o.ok, "sending a signal to a container that is neither created nor running MUST generate an error", &o);
    lab.rt(&["delete", &id]);
    // A running container.
    lab.create(&running, &id, None);
    lab.rt(&["start", &id]);
    let was_running = lab.status(&id) == "running";
    let o = lab.rt(&["kill", &id, "KILL"]);
    let stops = lab.wait_status(&id, &["stopped"], T);
    t.ok(
        was_running && o.ok && stops,
        "kill MUST send the specified signal to the container process (running)",
        &o,
    );
    let o = lab.rt(&["delete", &id]);
    t.ok(o.ok, "delete", &o);
    t.finish();
}

#[test]
fn kill_no_effect() {
    let mut t = Tap::new("kill_no_effect");
    let mut lab = Lab::new();
    let b = lab.bundle(&["true"]);
    let id = lab.id("knoeff");
    lab.create(&b, &id, None);
    lab.rt(&["start", &id]);
    t.ok(
        lab.wait_status(&id, &["stopped"], T),
        "the container stops",
        lab.status(&id),
    );
    let before = lab.state(&id);
    lab.rt(&["kill", &id, "KILL"]);
    let after = lab.state(&id);
    t.ok(
        before.is_ok() && before == after,
        "sending a signal to a container that is neither created nor running MUST have no effect",
        format!("{before:?} / {after:?}"),
    );
    let o = lab.rt(&["delete", &id]);
    t.ok(o.ok, "delete", &o);
    t.finish();
}

#[test]
fn killsig() {
    let mut t = Tap::new("killsig");
    let mut lab = Lab::new();
    for sig in ["TERM", "USR1", "USR2"] {
        let b = lab.bundle(&[
            "sh",
            "-c",
            &format!("trap 'touch /{sig}' {sig}; sleep 10 & wait $!"),
        ]);
        let id = lab.id("killsig");
        lab.create(&b, &id, None);
        lab.rt(&["start", &id]);
        lab.wait_status(&id, &["running"], T);
        // The shell is its pid namespace's init: a signal it has no handler
        // for yet is dropped. Wait until the trap shows in SigCgt.
        let pid = lab.pid(&id);
        let num = match sig {
            "TERM" => libc::SIGTERM,
            "USR1" => libc::SIGUSR1,
            _ => libc::SIGUSR2,
        };
        let until = std::time::Instant::now() + T;
        while std::time::Instant::now() < until {
            let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let cgt = st
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .unwrap_or("0");
            if u64::from_str_radix(cgt.trim(), 16).unwrap_or(0) & (1 << (num - 1)) != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = lab.rt(&["kill", &id, sig]);
        let stopped = lab.wait_status(&id, &["stopped"], T);
        t.ok(
            o.ok && stopped && b.dir.join(sig).exists(),
            &format!("kill MUST send the specified signal ({sig}) to the container process"),
            &o,
        );
        lab.rt(&["delete", &id]);
    }
    t.finish();
}

#[test]
fn delete() {
    let mut t = Tap::new("delete");
    let mut lab = Lab::new();
    let o = lab.rt(&["delete"]);
    t.ok(
        !o.ok,
        "delete MUST generate an error if it is not provided the container ID",
        &o,
    );
    for (what, args) in [
        ("created", &["true"][..]),
        ("running", &["sleep", "30"][..]),
    ] {
        let b = lab.bundle(args);
        let id = lab.id("delete");
        lab.create(&b, &id, None);
        if what == "running" {
            lab.rt(&["start", &id]);
            lab.wait_status(&id, &["running"], T);
        }
        let o = lab.rt(&["delete", &id]);
        t.ok(!o.ok, &format!("attempting to delete a container that is not stopped ({what}) MUST generate an error"), &o);
        t.ok(
            lab.status(&id) == what,
            &format!(
                "attempting to delete a container that is not stopped ({what}) MUST have no effect"
            ),
            lab.status(&id),
        );
        lab.rt(&["kill", &id, "KILL"]);
        lab.wait_status(&id, &["stopped"], T);
        let o = lab.rt(&["delete", &id]);
        t.ok(
            o.ok,
            &format!("delete the stopped container ({what} before)"),
            &o,
        );
        let o = lab.rt(&["state", &id]);
        t.ok(!o.ok, "a deleted container no longer exists", &o);
    }
    t.finish();
}

#[test]
fn delete_resources() {
    let mut t = Tap::new("delete_resources");
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["sleep", "30"]);
    let id = lab.id("delres");
    b.config["linux"]["cgroupsPath"] = json!(format!("/{id}"));
    b.write();
    lab.create(&b, &id, None);
    lab.rt(&["start", &id]);
    let pid = lab.pid(&id);
    let before = common::cgroupfs::leftovers(std::slice::from_ref(&id));
    t.ok(
        pid > 0 && !before.is_empty(),
        "the running container has a pid and cgroups",
        format!("{pid} {before:?}"),
    );
    lab.rt(&["kill", &id, "KILL"]);
    lab.wait_status(&id, &["stopped"], T);
    let o = lab.rt(&["delete", &id]);
    t.ok(o.ok, "delete", &o);
    let after = common::cgroupfs::leftovers(std::slice::from_ref(&id));
    t.ok(
        after.is_empty(),
        "delete MUST destroy the resources created during create (cgroups)",
        format!("{after:?}"),
    );
    t.ok(
        !Path::new(&format!("/proc/{pid}/stat")).exists(),
        "the container's process is gone",
        pid,
    );
    t.ok(
        !lab.rt(&["state", &id]).ok,
        "the container's state is gone",
        "",
    );
    t.finish();
}

#[test]
fn delete_only_create_resources() {
    let mut t = Tap::new("delete_only_create_resources");
    let mut lab = Lab::new();
    let b = lab.bundle(&["true"]);
    let id = lab.id("delonly");
    // A cgroup the runtime did not create, holding the container's init.
    let foreign = Path::new("/sys/fs/cgroup/pids").join(format!("{id}-foreign"));
    std::fs::create_dir(&foreign).unwrap();
    lab.cgroups.push(foreign.clone());
    lab.create(&b, &id, None);
    let pid = lab.pid(&id);
    let moved = std::fs::write(foreign.join("cgroup.procs"), pid.to_string()).is_ok();
    t.ok(
        moved,
        "move the container into a cgroup the runtime did not create",
        pid,
    );
    lab.rt(&["start", &id]);
    lab.wait_status(&id, &["stopped"], T);
    let o = lab.rt(&["delete", &id]);
    t.ok(o.ok, "delete", &o);
    t.ok(
        foreign.is_dir(),
        "resources associated with the container but not created by it MUST NOT be deleted",
        foreign.display(),
    );
    t.finish();
}

#[test]
fn pidfile() {
    let mut t = Tap::new("pidfile");
    let mut lab = Lab::new();
    let b = lab.bundle(&["true"]);
    let id = lab.id("pidfile");
    let pf = lab.dir.path().join("pidfile");
    let o = lab.create(&b, &id, Some(&pf));
    t.ok(o.ok, "create with --pid-file", &o);
    let written = std::fs::read_to_string(&pf).unwrap_or_default();
    let st = lab.state(&id).ok().and_then(|s| s["pid"].as_i64());
    t.ok(
        written.parse::<i64>().ok() == st && st.is_some(),
        "the pid file holds the container's pid, as a bare number",
        format!("{written:?} vs {st:?}"),
    );
    lab.rt(&["start", &id]);
    lab.wait_status(&id, &["stopped"], T);
    t.ok(lab.rt(&["delete", &id]).ok, "delete", "");
    t.finish();
}

#[test]
fn misc_props() {
    let mut t = Tap::new("misc_props");
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    let cases = [
        (
            "annotations",
            json!({"org.unknown-key": ""}),
            true,
            "runtimes MUST NOT generate an error for an unknown annotation key",
        ),
        (
            "unknown",
            json!("unknown"),
            true,
            "runtimes MUST NOT generate an error for an unknown property",
        ),
        (
            "ociVersion",
            json!("invalid"),
            false,
            "runtimes MUST generate an error when invalid or unsupported values are encountered",
        ),
        (
            "ociVersion",
            json!("2.0.0"),
            false,
            "an unsupported major ociVersion is an error",
        ),
    ];
    for (key, value, ok, desc) in cases {
        b.config = super::lab::default_config(&["true"]);
        b.config[key] = value;
        b.write();
        let r = lab.run_to_stop(&b, "misc");
        t.ok(r.is_ok() == ok, desc, format!("{r:?}"));
    }
    t.finish();
}

#[test]
fn config_updates_without_affect() {
    let mut t = Tap::new("config_updates_without_affect");
    let mut lab = Lab::new();
    let mut b = lab.bundle(&["true"]);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.config["process"]["oomScoreAdj"] = json!(100);
    let script = super::inside::script(&b.config);
    b.config["process"]["args"] = json!(["sh", "-c", script]);
    b.write();
    let id = lab.id("cfgupd");
    let o = lab.create(&b, &id, None);
    t.ok(o.ok, "create", &o);
    let cfg = b.config.clone();
    std::fs::write(b.dir.join("config.json"), r#"{"ociVersion": "1.0.0"}"#).unwrap();
    let o = lab.rt(&["start", &id]);
    t.ok(
        o.ok,
        "any updates to config.json after create MUST NOT affect the container",
        &o,
    );
    lab.wait_status(&id, &["stopped"], T);
    let out = std::fs::read_to_string(b.dir.join("stdout")).unwrap_or_default();
    super::inside::check(&mut t, &cfg, &out);
    t.ok(lab.rt(&["delete", &id]).ok, "delete", "");
    t.finish();
}
