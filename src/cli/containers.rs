//! The container commands: create, run, start and the lifecycle verbs.

use std::os::fd::AsRawFd;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::attach_client::{self, Options};
use super::container_args::*;
use super::{Ctx, Reported};
use crate::engine::container::ops::{self, ImageInfo};
use crate::engine::container::spawn::{self, StartError};
use crate::engine::container::{liveness, ContainerStore};
use crate::engine::images_cmd::{familiar_or_raw, lookup};
use crate::engine::store::StoreError;

pub fn dispatch(ctx: &Ctx, c: ContainerCommand) -> Result<()> {
    use ContainerCommand as C;
    match c {
        C::Run(a) | C::Container(ContainerSub::Run(a)) => run(ctx, a),
        C::Create(a) | C::Container(ContainerSub::Create(a)) => create(ctx, a),
        C::Start(a) | C::Container(ContainerSub::Start(a)) => start(ctx, a),
        C::Ps(a) | C::Container(ContainerSub::Ls(a)) => super::ctr_ps::ps(ctx, a),
        C::Logs(a) | C::Container(ContainerSub::Logs(a)) => super::ctr_logs::logs(ctx, a),
        C::Stop(a) | C::Container(ContainerSub::Stop(a)) => stop(ctx, a, false),
        C::Restart(a) | C::Container(ContainerSub::Restart(a)) => stop(ctx, a, true),
        C::Kill(a) | C::Container(ContainerSub::Kill(a)) => kill(ctx, a),
        C::Rm(a) | C::Container(ContainerSub::Rm(a)) => rm(ctx, a),
        C::Wait(a) | C::Container(ContainerSub::Wait(a)) => wait(ctx, a),
        C::Exec(a) | C::Container(ContainerSub::Exec(a)) => super::ctr_exec::exec(ctx, a),
        C::Pause(a) | C::Container(ContainerSub::Pause(a)) => each(ctx, &a.containers, ops::pause),
        C::Unpause(a) | C::Container(ContainerSub::Unpause(a)) => {
            each(ctx, &a.containers, ops::unpause)
        }
        C::Top(a) | C::Container(ContainerSub::Top(a)) => super::ctr_exec::top(ctx, a),
        C::Rename(a) | C::Container(ContainerSub::Rename(a)) => {
            crate::engine::network::rename::rename_container(
                &ctx.paths(),
                &a.container,
                &a.new_name,
            )
        }
        C::Container(ContainerSub::Prune(a)) => prune(ctx, a),
        C::Container(ContainerSub::Inspect(a)) => {
            super::ctr_inspect::inspect(ctx, a.format, a.containers, true)
        }
        C::More(m) | C::Container(ContainerSub::More(m)) => super::ctr_more::dispatch(ctx, m),
    }
}

pub fn containers(ctx: &Ctx) -> ContainerStore {
    ContainerStore::new(ctx.paths())
}

/// docker's exit 125 for errors of `run`/`create` themselves.
fn fail125(e: anyhow::Error) -> anyhow::Error {
    if e.downcast_ref::<Reported>().is_some() {
        return e;
    }
    eprintln!("{}", super::errors::line(&e));
    Reported {
        code: super::EXIT_USAGE,
    }
    .into()
}

fn image_info(ctx: &Ctx, image: &str, pull: &str, platform: Option<String>) -> Result<ImageInfo> {
    let store = ctx.store()?;
    let mut idx = store.images().map_err(|e| anyhow!("{e}"))?;
    let found = match lookup(&idx, image) {
        Ok(id) => Some(id),
        Err(StoreError::ImageNotFound { .. }) => None,
        Err(e) => return Err(anyhow!("{e}")),
    };
    let id = match (found, pull) {
        (Some(id), "missing" | "never") => id,
        (None, "never") => bail!(
            "Error response from daemon: No such image: {}",
            familiar_or_raw(image)
        ),
        (found, _) => {
            if found.is_none() {
                eprintln!("Unable to find image '{}' locally", familiar_or_raw(image));
            }
            pull_to_stderr(ctx, image, platform)?;
            idx = store.images().map_err(|e| anyhow!("{e}"))?;
            lookup(&idx, image).map_err(|e| anyhow!("{e}"))?
        }
    };
    let rec = idx
        .get(&id)
        .ok_or_else(|| anyhow!("No such image: {}", familiar_or_raw(image)))?;
    let config: Value = store
        .blobs
        .read(&rec.id)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            anyhow!(
                "the config of image {} is missing from the store; pull it again",
                rec.id
            )
        })?;
    let mut layers: Vec<String> = rec
        .layers
        .iter()
        .map(|l| l.chain_id.hex().to_string())
        .collect();
    layers.reverse();
    Ok(ImageInfo {
        id: rec.id.to_string(),
        layers,
        config,
    })
}

/// docker run prints pull progress on stderr, keeping stdout for the
/// container (and `-d`'s ID): the pull writes to fd 1, so fd 1 points at
/// stderr for its duration.
fn pull_to_stderr(ctx: &Ctx, image: &str, platform: Option<String>) -> Result<()> {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: dup/dup2 of our own stdio descriptors.
    let saved = unsafe { libc::dup(1) };
    unsafe { libc::dup2(2, 1) };
    let r = super::registry::pull(
        ctx,
        super::args::PullArgs {
            all_tags: false,
            platform,
            quiet: false,
            name: image.to_string(),
        },
    );
    let _ = std::io::stdout().flush();
    if saved >= 0 {
        // SAFETY: restoring fd 1.
        unsafe {
            libc::dup2(saved, 1);
            libc::close(saved);
        }
    }
    r
}

fn do_create(
    ctx: &Ctx,
    f: &CreateFlags,
) -> Result<(ContainerStore, crate::engine::container::ContainerRecord)> {
    let (mut cfg, mut hc) = super::container_flags::to_config(f).map_err(super::errors::client)?;
    let mut netreq = super::net_flags::parse(f, &mut hc)?;
    let cs = containers(ctx);
    // Mount flags are checked before any pull, as docker's client does.
    super::volume::plan_mounts(&cs, f, &hc, &Value::Null)?;
    let img = image_info(ctx, &f.image, &f.pull, f.platform.clone())?;
    netreq.prepare(&cs, &img.config, &mut cfg, &mut hc)?;
    let mount_plan = super::volume::plan_mounts(&cs, f, &hc, &img.config)?;
    let entry = f.entrypoint.as_ref().map(|e| {
        if e.is_empty() {
            vec![]
        } else {
            vec![e.clone()]
        }
    });
    let rec = ops::create(&cs, &img, cfg, hc, f.name.as_deref(), entry, f.cmd.clone())?;
    if let Err(e) = netreq.save(&cs, &rec.id) {
        let _ = cs.remove_dirs(&rec.id);
        return Err(e);
    }
    if let Err(e) = crate::engine::volume::mounts::commit(&cs, &rec.id, mount_plan) {
        let _ = ops::rm(&cs, &rec.id, true);
        return Err(e);
    }
    for w in crate::engine::container::spec::ulimit_warnings(&rec) {
        eprintln!("{w}");
    }
    Ok((cs, rec))
}

fn create(ctx: &Ctx, a: CreateArgs) -> Result<()> {
    let (_, rec) = do_create(ctx, &a.flags).map_err(fail125)?;
    println!("{}", rec.id);
    Ok(())
}

/// docker's exit code for a failed start: 127/126 by the message, else 125.
fn start_failure_code(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        125
    }
}

fn run(ctx: &Ctx, a: RunArgs) -> Result<()> {
    let (cs, rec) = do_create(ctx, &a.flags).map_err(fail125)?;
    let id = rec.id.clone();
    if a.detach {
        match spawn::spawn(&cs, &id, false) {
            Ok(_) => {
                println!("{id}");
                return Ok(());
            }
            Err(e) => return Err(start_error(e)),
        }
    }
    let started = spawn::spawn(&cs, &id, true).map_err(start_error)?;
    let code = attach_client::run_attached(
        &cs,
        &id,
        started,
        Options {
            stdin: a.flags.interactive,
            tty: a.flags.tty,
            sig_proxy: a.sig_proxy,
        },
    )
    .map_err(start_error)?;
    if code != 0 {
        return Err(Reported { code }.into());
    }
    Ok(())
}

fn start_error(e: anyhow::Error) -> anyhow::Error {
    if let Some(s) = e.downcast_ref::<StartError>() {
        eprintln!("Error response from daemon: {}", s.0);
        return Reported {
            code: start_failure_code(&s.0),
        }
        .into();
    }
    fail125(e)
}

fn start(ctx: &Ctx, a: StartArgs) -> Result<()> {
    let cs = containers(ctx);
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let id = cs.resolve(&a.containers[0])?;
        let st = liveness::current(&cs, &id)?;
        if st.running() {
            bail!("Error response from daemon: container {id} is already running; use berth logs -f to follow it");
        }
        ops::release(&cs, &id)?;
        cs.update_state(&id, |s| s.manually_stopped = false)?;
        let rec = cs.load(&id)?;
        let daemon_error = |e: anyhow::Error| match e.downcast_ref::<StartError>() {
            Some(s) => anyhow!("Error response from daemon: {}", s.0),
            None => e,
        };
        let started = spawn::spawn(&cs, &id, true).map_err(daemon_error)?;
        // A failed create is reported after `listening`, through run_attached.
        let code = attach_client::run_attached(
            &cs,
            &id,
            started,
            Options {
                stdin: a.interactive && rec.config.open_stdin,
                tty: rec.config.tty,
                sig_proxy: true,
            },
        )
        .map_err(daemon_error)?;
        if code != 0 {
            return Err(Reported { code }.into());
        }
        return Ok(());
    }
    let mut failed = false;
    for c in &a.containers {
        let r = cs.resolve(c).and_then(|id| ops::start(&cs, &id));
        match r {
            Ok(_) => println!("{c}"),
            Err(e) => {
                failed = true;
                match e.downcast_ref::<StartError>() {
                    Some(s) => eprintln!("Error response from daemon: {}", s.0),
                    None => eprintln!(
                        "Error response from daemon: {}",
                        super::error_chain(&e).trim_start_matches("Error response from daemon: ")
                    ),
                }
            }
        }
    }
    if failed {
        eprintln!(
            "Error: failed to start containers: {}",
            a.containers.join(", ")
        );
        return Err(Reported { code: 1 }.into());
    }
    Ok(())
}

/// Runs `f` on each named container, printing what it returns on success
/// and docker's per-item error otherwise; exit 1 when any failed.
pub(super) fn each_with<T: std::fmt::Display>(
    ctx: &Ctx,
    names: &[String],
    f: impl Fn(&ContainerStore, &str, &str) -> Result<T>,
) -> Result<()> {
    let cs = containers(ctx);
    let mut failed = false;
    for n in names {
        match cs.resolve(n).and_then(|id| f(&cs, &id, n)) {
            Ok(out) => println!("{out}"),
            Err(e) => {
                failed = true;
                let m = match e.downcast_ref::<StartError>() {
                    Some(s) => s.0.clone(),
                    None => super::error_chain(&e),
                };
                let m = m.trim_start_matches("Error response from daemon: ");
                eprintln!("Error response from daemon: {m}");
            }
        }
    }
    if failed {
        return Err(Reported { code: 1 }.into());
    }
    Ok(())
}

/// `each_with` for operations that print the name the user gave.
fn each(ctx: &Ctx, names: &[String], f: fn(&ContainerStore, &str) -> Result<()>) -> Result<()> {
    each_with(ctx, names, |cs, id, n| f(cs, id).map(|()| n.to_string()))
}

fn stop(ctx: &Ctx, a: StopArgs, restart: bool) -> Result<()> {
    each_with(ctx, &a.containers, |cs, id, n| {
        ops::stop(cs, id, a.time, a.signal.as_deref())?;
        if restart {
            ops::start(cs, id)?;
        }
        Ok(n.to_string())
    })
}

fn kill(ctx: &Ctx, a: KillArgs) -> Result<()> {
    each_with(ctx, &a.containers, |cs, id, n| {
        ops::kill(cs, id, &a.signal).map(|()| n.to_string())
    })
}

fn rm(ctx: &Ctx, a: RmArgs) -> Result<()> {
    each_with(ctx, &a.containers, |cs, id, n| {
        let mounts = crate::engine::volume::mounts::load(cs, id).unwrap_or_default();
        ops::rm(cs, id, a.force)?;
        if a.volumes {
            crate::engine::volume::mounts::remove_anonymous(&cs.paths, &mounts)?;
        }
        Ok(n.to_string())
    })
}

fn wait(ctx: &Ctx, a: NamesArgs) -> Result<()> {
    each_with(ctx, &a.containers, |cs, id, _| ops::wait(cs, id))
}

fn prune(ctx: &Ctx, a: ContainerPruneArgs) -> Result<()> {
    if !a.filter.is_empty() {
        bail!("container prune: --filter is not supported by berth yet");
    }
    if !a.force {
        use std::io::{BufRead, IsTerminal, Write};
        print!("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        if std::io::stdin().is_terminal() || std::io::stdin().as_raw_fd() >= 0 {
            let _ = std::io::stdin().lock().read_line(&mut line);
        }
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let cs = containers(ctx);
    let removed = ops::prune(&cs)?;
    if !removed.is_empty() {
        println!("Deleted Containers:");
        for id in &removed {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: 0B");
    Ok(())
}
