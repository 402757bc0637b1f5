//! Dispatch of attach, stats, update, cp, export, diff, commit and
//! `system boot`; `update` itself (the engine does the work).

use anyhow::{bail, Result};

use super::ctr_more_args::{MoreCommand, UpdateArgs};
use super::{Ctx, Reported};
use crate::engine::container::update::{self, UpdateRequest};

pub fn dispatch(ctx: &Ctx, m: MoreCommand) -> Result<()> {
    report(run(ctx, m))
}

/// docker's client wording: a missing container is the daemon's error;
/// anything else that does not carry the daemon's prefix is the CLI's own
/// (printed by `errors::line`, like every other command).
fn report(r: Result<()>) -> Result<()> {
    r.map_err(|e| {
        if e.downcast_ref::<crate::engine::container::store::NoSuchContainer>()
            .is_some()
        {
            e
        } else {
            super::errors::client(e)
        }
    })
}

fn run(ctx: &Ctx, m: MoreCommand) -> Result<()> {
    match m {
        MoreCommand::Attach(a) => super::ctr_attach::attach_cmd(ctx, a),
        MoreCommand::Stats(a) => super::ctr_stats::stats_cmd(ctx, a),
        MoreCommand::Update(a) => update_cmd(ctx, a),
        MoreCommand::Cp(a) => super::ctr_cp::cp_cmd(ctx, a),
        MoreCommand::Export(a) => super::ctr_fs::export_cmd(ctx, a),
        MoreCommand::Diff(a) => super::ctr_fs::diff_cmd(ctx, a),
        MoreCommand::Commit(a) => super::ctr_fs::commit_cmd(ctx, a),
    }
}

fn request(a: &UpdateArgs) -> Result<UpdateRequest> {
    use super::container_flags::swap_in_bytes;
    let size = |s: &Option<String>| s.as_deref().map(swap_in_bytes).transpose();
    Ok(UpdateRequest {
        memory: size(&a.memory)?,
        memory_swap: size(&a.memory_swap)?,
        memory_reservation: size(&a.memory_reservation)?,
        nano_cpus: a.cpus.map(|c| (c * 1e9) as i64),
        cpu_shares: a.cpu_shares,
        cpuset_cpus: a.cpuset_cpus.clone(),
        cpuset_mems: a.cpuset_mems.clone(),
        pids_limit: a.pids_limit,
        blkio_weight: a.blkio_weight,
        restart: a
            .restart
            .as_deref()
            .map(super::container_flags::parse_restart)
            .transpose()?,
    })
}

fn update_cmd(ctx: &Ctx, a: UpdateArgs) -> Result<()> {
    let req = request(&a)?;
    if req.is_empty() {
        bail!("you must provide one or more flags when using this command");
    }
    super::containers::each_with(ctx, &a.containers, |cs, id, n| {
        update::update(cs, id, &req).map_err(|e| {
            anyhow::anyhow!(
                "Cannot update container {id}: {}",
                super::error_chain(&e).trim_start_matches(super::errors::DAEMON)
            )
        })?;
        Ok(n.to_string())
    })
}

/// `berth system boot`.
pub fn boot(ctx: &Ctx) -> Result<()> {
    report(boot_inner(ctx))
}

fn boot_inner(ctx: &Ctx) -> Result<()> {
    let cs = super::containers::containers(ctx);
    let report = crate::engine::container::boot::boot(&cs)?;
    for (name, r) in &report {
        match r {
            Ok(()) => println!("{name}"),
            Err(e) => eprintln!("Error: cannot start {name}: {e}"),
        }
    }
    if report.iter().any(|(_, r)| r.is_err()) {
        return Err(Reported { code: 1 }.into());
    }
    Ok(())
}
