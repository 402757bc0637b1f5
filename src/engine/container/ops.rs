//! Lifecycle operations the commands call: create, start, stop, kill, rm,
//! pause, exec, wait. Every one reads the true state (`liveness`) and works
//! whether or not the container's monitor is alive.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use serde_json::Value;

use super::liveness;
use super::model::{ContainerRecord, HostConfig, RunConfig, State, Status};
use super::store::ContainerStore;

/// What create needs from the image.
pub struct ImageInfo {
    pub id: String,
    /// Chain-ID hex of each layer, top layer first.
    pub layers: Vec<String>,
    /// The image config blob (`config` holds Cmd, Env, ...).
    pub config: Value,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Merges the image's config with the flags as docker does and writes the
/// records. `entrypoint` Some(empty) resets the image's entrypoint.
pub fn create(
    cs: &ContainerStore,
    img: &ImageInfo,
    mut cfg: RunConfig,
    hc: HostConfig,
    name: Option<&str>,
    entrypoint: Option<Vec<String>>,
    cmd: Vec<String>,
) -> Result<ContainerRecord> {
    if let Some(n) = name {
        if !super::names::valid_name(n) {
            bail!("Error response from daemon: Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
        }
    }
    let ic = img.config.get("config").cloned().unwrap_or(Value::Null);
    let id = super::names::new_id();
    let mut env = strings(ic.get("Env"));
    for e in &cfg.env {
        let k = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(k));
        env.push(e.clone());
    }
    cfg.env = env;
    let overridden = entrypoint.is_some();
    let entry = match entrypoint {
        Some(e) => e,
        None => strings(ic.get("Entrypoint")),
    };
    let cmd = if !cmd.is_empty() {
        cmd
    } else if overridden {
        // docker: an --entrypoint override clears the image's Cmd.
        vec![]
    } else {
        strings(ic.get("Cmd"))
    };
    cfg.entrypoint = entry.clone();
    cfg.cmd = cmd.clone();
    let mut full = entry;
    full.extend(cmd);
    if full.is_empty() {
        bail!("Error response from daemon: No command specified");
    }
    if cfg.working_dir.is_empty() {
        cfg.working_dir = ic
            .get("WorkingDir")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
    }
    if cfg.user.is_empty() {
        cfg.user = ic
            .get("User")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
    }
    if let Some(l) = ic.get("Labels").and_then(|v| v.as_object()) {
        for (k, v) in l {
            cfg.labels
                .entry(k.clone())
                .or_insert_with(|| v.as_str().unwrap_or("").to_string());
        }
    }
    if cfg.stop_signal.is_none() {
        cfg.stop_signal = ic
            .get("StopSignal")
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
    if cfg.hostname.is_empty() {
        cfg.hostname = id[..12].to_string();
    }
    let mut rec = ContainerRecord {
        id: id.clone(),
        name: String::new(),
        created: Utc::now(),
        image: img.id.clone(),
        layers: img.layers.clone(),
        path: full[0].clone(),
        args: full[1..].to_vec(),
        config: cfg,
        host_config: hc,
    };
    cs.create(&mut rec, name)?;
    Ok(rec)
}

/// Starts a created or exited container; returns the pid.
pub fn start(cs: &ContainerStore, id: &str) -> Result<i32> {
    // Until the monitor runs the process: an `rm` waits, or went first (the
    // record is gone and `load` says so).
    let _order = cs.lifecycle_lock(id)?;
    cs.load(id).inspect_err(|_| cs.forget_lifecycle_lock(id))?;
    let st = liveness::current(cs, id)?;
    if st.running() {
        return Ok(st.pid);
    }
    release(cs, id)?;
    cs.update_state(id, |s| {
        s.manually_stopped = false;
    })?;
    match super::spawn::spawn(cs, id, false)? {
        super::spawn::Started::Running(pid) => Ok(pid),
        super::spawn::Started::Listening(_) => {
            Err(anyhow!("monitor waits for attach unexpectedly"))
        }
    }
}

/// Releases what a dead monitor left: the runtime container (its processes
/// and cgroup) and the rootfs mount.
pub fn release(cs: &ContainerStore, id: &str) -> Result<()> {
    // A monitor that reported the exit releases them itself, then exits.
    wait_monitor_settled(cs, id);
    if liveness::monitor_alive(cs, id) {
        return Ok(());
    }
    let rt = cs.runtime();
    if rt.state(id).is_ok() {
        rt.delete(id, true)
            .map_err(|e| anyhow!("cannot delete the runtime state of {id}: {e}"))?;
    } else {
        // A runtime create killed before its first record: the directory.
        let _ = rt.delete(id, true);
    }
    crate::engine::network::sandbox::release(cs, id)?;
    super::rootfs::unmount(&cs.dir(id).join("merged"))?;
    crate::engine::volume::mounts::stop(cs, id);
    Ok(())
}

fn wait_not_running(cs: &ContainerStore, id: &str, timeout: Option<Duration>) -> bool {
    let until = timeout.map(|t| Instant::now() + t);
    loop {
        match liveness::current(cs, id) {
            Ok(s) if s.running() && s.status != Status::Restarting => {}
            _ => return true,
        }
        if until.is_some_and(|u| Instant::now() > u) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn parse_signal(s: &str) -> Result<i32> {
    runtime::cli::parse_signal(s).map_err(|_| anyhow!("Invalid signal: {s}"))
}

/// docker stop: the stop signal, then SIGKILL after the timeout.
pub fn stop(
    cs: &ContainerStore,
    id: &str,
    timeout: Option<i64>,
    signal: Option<&str>,
) -> Result<()> {
    let rec = cs.load(id)?;
    let st = liveness::current(cs, id)?;
    cs.update_state(id, |s| s.manually_stopped = true)?;
    if !st.running() {
        return Ok(());
    }
    let rt = cs.runtime();
    if st.status == Status::Paused {
        let _ = rt.resume(id);
    }
    let sig = signal
        .map(str::to_string)
        .or_else(|| rec.config.stop_signal.clone())
        .unwrap_or_else(|| "SIGTERM".into());
    let sig = parse_signal(&sig)?;
    let t = timeout.or(rec.config.stop_timeout).unwrap_or(10);
    if st.status != Status::Restarting {
        let _ = rt.kill(id, sig, false);
    }
    let graceful = if t < 0 {
        None
    } else {
        Some(Duration::from_secs(t as u64))
    };
    if !wait_not_running(cs, id, graceful) {
        let _ = rt.kill(id, libc::SIGKILL, true);
        wait_not_running(cs, id, None);
    }
    wait_monitor_settled(cs, id);
    Ok(())
}

/// After a stop the monitor writes the final state and exits (or goes on,
/// for a restart it will not do because of `manually_stopped`).
fn wait_monitor_settled(cs: &ContainerStore, id: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while liveness::monitor_alive(cs, id) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn kill(cs: &ContainerStore, id: &str, signal: &str) -> Result<()> {
    let st = liveness::current(cs, id)?;
    if !st.running() || st.status == Status::Restarting {
        bail!("Error response from daemon: Cannot kill container: {id}: container {id} is not running");
    }
    let sig = parse_signal(signal)?;
    cs.runtime()
        .kill(id, sig, false)
        .map_err(|e| anyhow!("Error response from daemon: Cannot kill container: {id}: {e}"))
}

pub fn rm(cs: &ContainerStore, id: &str, force: bool) -> Result<()> {
    let _order = cs.lifecycle_lock(id)?;
    let rec = cs.load(id).inspect_err(|_| cs.forget_lifecycle_lock(id))?;
    let st = liveness::current(cs, id)?;
    if st.running() && !force {
        bail!(
            "Error response from daemon: cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
            rec.name,
            st.status.as_str()
        );
    }
    if force {
        kill_for_removal(cs, id)?;
    }
    // `release` first lets a monitor that just recorded the exit finish
    // writing into the container's directory (`rm` right after `run`).
    release(cs, id)?;
    cs.remove_dirs(id)
}

/// `rm -f`: kills the container and waits for its monitor to be done. A
/// live monitor may also be starting it (its `start` was interrupted, or
/// runs right now): the record says `created` until the process runs, so
/// the state is read again until the monitor is gone, and a process that
/// appears meanwhile is killed too.
fn kill_for_removal(cs: &ContainerStore, id: &str) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(10);
    // The process last killed: a restarting container keeps its state
    // `running`-like between processes, and is killed once per process.
    let mut killed = None;
    loop {
        let st = liveness::current(cs, id)?;
        if st.running() && killed != Some(st.pid) {
            killed = Some(st.pid);
            cs.update_state(id, |s| s.manually_stopped = true)?;
            let rt = cs.runtime();
            if st.status == Status::Paused {
                let _ = rt.resume(id);
            }
            let _ = rt.kill(id, libc::SIGKILL, true);
            wait_not_running(cs, id, Some(Duration::from_secs(10)));
        }
        if !liveness::monitor_alive(cs, id) || Instant::now() > until {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn pause(cs: &ContainerStore, id: &str) -> Result<()> {
    let st = liveness::current(cs, id)?;
    match st.status {
        Status::Running => {}
        Status::Paused => bail!("Error response from daemon: container {id} is already paused"),
        _ => bail!("Error response from daemon: container {id} is not running"),
    }
    cs.runtime().pause(id).map_err(|e| anyhow!("{e}"))?;
    cs.update_state(id, |s| s.status = Status::Paused)
}

pub fn unpause(cs: &ContainerStore, id: &str) -> Result<()> {
    let st = liveness::current(cs, id)?;
    if st.status != Status::Paused {
        bail!("Error response from daemon: container {id} is not paused");
    }
    cs.runtime().resume(id).map_err(|e| anyhow!("{e}"))?;
    cs.update_state(id, |s| {
        if s.status == Status::Paused {
            s.status = Status::Running
        }
    })
}

/// Blocks until the container is not running; its exit code.
pub fn wait(cs: &ContainerStore, id: &str) -> Result<i32> {
    loop {
        let st = match liveness::current(cs, id) {
            Ok(s) => s,
            Err(_) => bail!("Error response from daemon: No such container: {id}"),
        };
        if !st.running() {
            return Ok(st.exit_code);
        }
        if !cs.dir(id).exists() {
            return Ok(st.exit_code);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub privileged: bool,
    pub tty: bool,
    pub detach: bool,
    pub console_socket: Option<std::path::PathBuf>,
}

/// Runs a process in the running container; returns its pid (our child).
pub fn exec(cs: &ContainerStore, id: &str, req: &ExecRequest) -> Result<i32> {
    let st = liveness::current(cs, id)?;
    if st.status == Status::Paused {
        bail!("Error response from daemon: container {id} is paused, unpause the container before exec");
    }
    if st.status != Status::Running {
        bail!("Error response from daemon: container {id} is not running");
    }
    let rec = cs.load(id)?;
    let cfg = cs.dir(id).join("config.json");
    let spec = oci_spec::runtime::Spec::load(&cfg)
        .map_err(|e| anyhow!("cannot load {}: {e}", cfg.display()))?;
    let mut p = spec
        .process()
        .clone()
        .ok_or_else(|| anyhow!("{} has no process", cfg.display()))?;
    p.set_args(Some(req.cmd.clone()));
    p.set_terminal(Some(req.tty));
    let mut env = p.env().clone().unwrap_or_default();
    if req.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    for e in &req.env {
        let k = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(k));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(w) = &req.workdir {
        p.set_cwd(w.into());
    }
    if let Some(u) = &req.user {
        let r = super::user::resolve(u, &rec.host_config.group_add, &cs.dir(id).join("merged"))?;
        let mut user = p.user().clone();
        user.set_uid(r.uid);
        user.set_gid(r.gid);
        user.set_additional_gids(Some(r.additional_gids));
        p.set_user(user);
    }
    if req.privileged {
        let all = super::spec::capabilities(true, &[], &[])?;
        let set: std::collections::HashSet<oci_spec::runtime::Capability> = all
            .iter()
            .filter_map(|n| serde_json::from_value(Value::String(n.clone())).ok())
            .collect();
        let mut caps = p.capabilities().clone().unwrap_or_default();
        caps.set_bounding(Some(set.clone()));
        caps.set_effective(Some(set.clone()));
        caps.set_permitted(Some(set));
        p.set_capabilities(Some(caps));
    }
    let mut opts = runtime::ExecOpts {
        console_socket: req.console_socket.clone(),
        ..Default::default()
    };
    let devnull;
    if req.detach {
        devnull = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .context("open /dev/null")?;
        use std::os::fd::AsRawFd;
        let fd = devnull.as_raw_fd();
        opts.stdio = runtime::Stdio::Fds([fd, fd, fd]);
    }
    cs.runtime()
        .exec(id, &p, &opts)
        .map_err(|e| anyhow!("Error response from daemon: {e}"))
}

/// `container prune`: removes every stopped container; their IDs.
pub fn prune(cs: &ContainerStore) -> Result<Vec<String>> {
    super::removal::sweep(cs);
    let mut out = super::sweep::incomplete(cs)?;
    for r in cs.list()? {
        let st = liveness::current(cs, &r.id)?;
        if !st.running() {
            rm(cs, &r.id, false).with_context(|| format!("cannot remove {}", r.id))?;
            out.push(r.id);
        }
    }
    crate::engine::network::sandbox::cleanup_orphans(cs)?;
    Ok(out)
}

/// Both records, for the commands that show containers.
pub fn load_both(cs: &ContainerStore, id: &str) -> Result<(ContainerRecord, State)> {
    Ok((cs.load(id)?, liveness::current(cs, id)?))
}
