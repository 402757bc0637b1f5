//! `volume create|ls|inspect|rm|prune`, the mount flags of `create`/`run`,
//! and the volume rows of `system df`, with docker's output and errors.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::container_args::CreateFlags;
use super::format::{render_inspect, render_list, ListFormat};
use super::units::human_size;
use super::{Ctx, Reported};
use crate::engine::container::{ContainerStore, HostConfig};
use crate::engine::volume::mounts::{self, Flags, Plan};
use crate::engine::volume::{VolumeError, VolumeMeta, VolumeStore};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Specify volume name
    #[arg(long)]
    pub name: Option<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    #[arg(value_name = "VOLUME")]
    pub volume: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub fn dispatch(ctx: &Ctx, c: VolumeCommand) -> Result<()> {
    match c {
        VolumeCommand::Create(a) => create(ctx, a),
        VolumeCommand::Ls(a) => ls(ctx, a),
        VolumeCommand::Inspect(a) => inspect(ctx, a),
        VolumeCommand::Rm(a) => rm(ctx, a),
        VolumeCommand::Prune(a) => prune(ctx, a),
    }
}

fn store(ctx: &Ctx) -> (VolumeStore, ContainerStore) {
    (
        VolumeStore::new(ctx.paths()),
        ContainerStore::new(ctx.paths()),
    )
}

fn daemon(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("Error response from daemon: {e}")
}

fn kv(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (s.to_string(), String::new()),
        })
        .collect()
}

/// The mount plan of `create`/`run` (before the container exists).
pub fn plan_mounts(
    cs: &ContainerStore,
    f: &CreateFlags,
    hc: &HostConfig,
    image_config: &Value,
) -> Result<Plan> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    mounts::plan(
        cs,
        &Flags {
            volumes: &f.volume,
            mounts: &f.mount,
            volumes_from: &f.volumes_from,
            tmpfs: hc.tmpfs.keys().cloned().collect(),
        },
        image_config,
        &cwd,
    )
}

fn create(ctx: &Ctx, a: CreateArgs) -> Result<()> {
    let name = match (&a.name, &a.volume) {
        (Some(n), Some(v)) if n != v => {
            bail!("conflicting options: either specify --name or provide positional arg, not both")
        }
        (Some(n), _) => Some(n.clone()),
        (None, v) => v.clone(),
    };
    if a.driver != "local" {
        return Err(daemon(format!(
            "create {}: error looking up volume plugin {}: plugin \"{}\" not found",
            name.as_deref().unwrap_or(""),
            a.driver,
            a.driver
        )));
    }
    let (vs, _) = store(ctx);
    let (meta, _) = vs
        .create(name.as_deref(), kv(&a.label), kv(&a.opt))
        .map_err(|e| match (&e, &name) {
            (VolumeError::InvalidOption(_), Some(n)) => daemon(format!("create {n}: {e}")),
            _ => daemon(e),
        })?;
    // `volume create` without a name makes a named-by-ID volume, not an anonymous one.
    println!("{}", meta.name);
    Ok(())
}

fn created_at(m: &VolumeMeta) -> String {
    m.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn inspect_json(vs: &VolumeStore, m: &VolumeMeta) -> Value {
    let nullable = |b: &BTreeMap<String, String>| if b.is_empty() { Value::Null } else { json!(b) };
    json!({
        "CreatedAt": created_at(m),
        "Driver": m.driver,
        "Labels": nullable(&m.labels),
        "Mountpoint": vs.data_dir(&m.name),
        "Name": m.name,
        "Options": nullable(&m.options),
        "Scope": "local",
    })
}

fn inspect(ctx: &Ctx, a: InspectArgs) -> Result<()> {
    let (vs, _) = store(ctx);
    let mut items = Vec::new();
    let mut missing = Vec::new();
    for n in &a.volumes {
        match vs.get(n) {
            Ok(m) => items.push(inspect_json(&vs, &m)),
            Err(VolumeError::NotFound(_)) => missing.push(n.clone()),
            Err(e) => return Err(daemon(e)),
        }
    }
    if !items.is_empty() || missing.is_empty() {
        print!("{}", render_inspect(a.format.as_deref(), &items)?);
    }
    if !missing.is_empty() {
        for n in &missing {
            eprintln!("Error: No such volume: {n}");
        }
        return Err(Reported { code: 1 }.into());
    }
    Ok(())
}

/// Generic `inspect` (docker's order: container, image, volume): when
/// every name is a volume and none is an image, the volumes' JSON.
pub fn inspect_if_volumes(ctx: &Ctx, format: Option<&str>, names: &[String]) -> Option<Result<()>> {
    let (vs, _) = store(ctx);
    let metas: Vec<VolumeMeta> = names
        .iter()
        .map(|n| vs.get(n).ok())
        .collect::<Option<_>>()?;
    if let Ok(store) = ctx.store() {
        if let Ok(idx) = store.images() {
            if names
                .iter()
                .any(|n| crate::engine::images_cmd::lookup(&idx, n).is_ok())
            {
                return None;
            }
        }
    }
    let items: Vec<Value> = metas.iter().map(|m| inspect_json(&vs, m)).collect();
    Some(render_inspect(format, &items).map(|s| print!("{s}")))
}

/// docker's volume filters.
struct Filter {
    dangling: Option<bool>,
    names: Vec<String>,
    labels: Vec<(String, Option<String>, bool)>,
    drivers: Vec<String>,
    all: bool,
}

fn parse_filters(items: &[String], allowed: &[&str]) -> Result<Filter> {
    let mut f = Filter {
        dangling: None,
        names: vec![],
        labels: vec![],
        drivers: vec![],
        all: false,
    };
    for it in items {
        let Some((k, v)) = it.split_once('=') else {
            bail!("Error response from daemon: invalid filter '{it}'");
        };
        if !allowed.contains(&k) {
            bail!("Error response from daemon: invalid filter '{k}'");
        }
        match k {
            "dangling" | "all" => {
                let b = match v.to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("Error response from daemon: invalid filter '{k}={v}'"),
                };
                if k == "all" {
                    f.all = b;
                } else {
                    f.dangling = Some(b);
                }
            }
            "name" => f.names.push(v.to_string()),
            "driver" => f.drivers.push(v.to_string()),
            "label" | "label!" => {
                let (lk, lv) = match v.split_once('=') {
                    Some((a, b)) => (a.to_string(), Some(b.to_string())),
                    None => (v.to_string(), None),
                };
                f.labels.push((lk, lv, k == "label!"));
            }
            _ => bail!("Error response from daemon: invalid filter '{k}'"),
        }
    }
    Ok(f)
}

impl Filter {
    fn matches(&self, m: &VolumeMeta, in_use: bool) -> bool {
        if self.dangling.is_some_and(|d| d == in_use) {
            return false;
        }
        if !self.names.is_empty() && !self.names.iter().any(|n| m.name.contains(n.as_str())) {
            return false;
        }
        if !self.drivers.is_empty() && !self.drivers.contains(&m.driver) {
            return false;
        }
        self.labels.iter().all(|(k, v, neg)| {
            let hit = match (m.labels.get(k), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            };
            hit != *neg
        })
    }
}

fn labels_text(m: &VolumeMeta) -> String {
    m.labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn ls(ctx: &Ctx, a: LsArgs) -> Result<()> {
    let (vs, cs) = store(ctx);
    let f = parse_filters(
        &a.filter,
        &["dangling", "name", "label", "label!", "driver"],
    )?;
    let usage = mounts::usage(&cs);
    let vols: Vec<VolumeMeta> = vs
        .list()
        .map_err(daemon)?
        .into_iter()
        .filter(|m| f.matches(m, usage.contains_key(&m.name)))
        .collect();
    if a.quiet {
        for v in &vols {
            println!("{}", v.name);
        }
        return Ok(());
    }
    let rows: Vec<Value> = vols
        .iter()
        .map(|m| {
            json!({
                "Availability": "N/A", "Driver": m.driver, "Group": "N/A",
                "Labels": labels_text(m), "Links": "N/A",
                "Mountpoint": vs.data_dir(&m.name), "Name": m.name,
                "Scope": "local", "Size": "N/A", "Status": "N/A",
            })
        })
        .collect();
    let header = json!({
        "Availability": "AVAILABILITY", "Driver": "DRIVER", "Group": "GROUP", "Labels": "LABELS",
        "Links": "LINKS", "Mountpoint": "MOUNTPOINT", "Name": "VOLUME NAME", "Scope": "SCOPE",
        "Size": "SIZE", "Status": "STATUS",
    });
    let fmt = ListFormat::parse(a.format.as_deref(), "{{.Driver}}\t{{.Name}}");
    print!("{}", render_list(&fmt, &header, &rows)?);
    Ok(())
}

fn rm(ctx: &Ctx, a: RmArgs) -> Result<()> {
    let (vs, cs) = store(ctx);
    let mut failed = false;
    for n in &a.volumes {
        match vs.remove(n, |name| mounts::users(&cs, name)) {
            Ok(()) => println!("{n}"),
            Err(VolumeError::NotFound(_)) if a.force => {}
            Err(e) => {
                failed = true;
                eprintln!("Error response from daemon: {e}");
            }
        }
    }
    if failed {
        return Err(Reported { code: 1 }.into());
    }
    Ok(())
}

fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y"))
}

fn prune(ctx: &Ctx, a: PruneArgs) -> Result<()> {
    let f = parse_filters(&a.filter, &["label", "label!", "all"])?;
    let all = a.all || f.all;
    if !a.force {
        let w = if all {
            "WARNING! This will remove all local volumes not used by at least one container."
        } else {
            "WARNING! This will remove anonymous local volumes not used by at least one container."
        };
        if !confirm(&format!("{w}\nAre you sure you want to continue?"))? {
            return Ok(());
        }
    }
    let (vs, cs) = store(ctx);
    let mut removed = Vec::new();
    let mut reclaimed = 0u64;
    for m in vs.list().map_err(daemon)? {
        if !all && !m.anonymous() {
            continue;
        }
        if !f.matches(&m, false) {
            continue;
        }
        let size = vs.size(&m.name);
        match vs.remove(&m.name, |n| mounts::users(&cs, n)) {
            Ok(()) => {
                reclaimed += size;
                removed.push(m.name);
            }
            Err(VolumeError::InUse { .. }) | Err(VolumeError::NotFound(_)) => {}
            Err(e) => eprintln!("Error response from daemon: {e}"),
        }
    }
    if !removed.is_empty() {
        println!("Deleted Volumes:");
        for n in &removed {
            println!("{n}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed as f64));
    Ok(())
}

/// `system df`'s "Local Volumes" row.
pub fn df_row(ctx: &Ctx) -> Value {
    let (vs, cs) = store(ctx);
    let usage = mounts::usage(&cs);
    let vols = vs.list().unwrap_or_default();
    let (mut total, mut reclaim, mut active) = (0u64, 0u64, 0usize);
    for v in &vols {
        let s = vs.size(&v.name);
        total += s;
        if usage.contains_key(&v.name) {
            active += 1;
        } else {
            reclaim += s;
        }
    }
    let reclaimable = if total > 0 {
        format!(
            "{} ({}%)",
            human_size(reclaim as f64),
            (reclaim as f64 / total as f64 * 100.0) as i64
        )
    } else {
        human_size(reclaim as f64)
    };
    json!({
        "Type": "Local Volumes",
        "TotalCount": vols.len().to_string(),
        "Active": active.to_string(),
        "Size": human_size(total as f64),
        "Reclaimable": reclaimable,
    })
}

/// `system df -v`'s "Local Volumes space usage" section.
pub fn df_verbose(ctx: &Ctx) -> Result<String> {
    let (vs, cs) = store(ctx);
    let usage = mounts::usage(&cs);
    let rows: Vec<Value> = vs
        .list()
        .unwrap_or_default()
        .iter()
        .map(|v| {
            json!({
                "Name": v.name,
                "Links": usage.get(&v.name).map(Vec::len).unwrap_or(0).to_string(),
                "Size": human_size(vs.size(&v.name) as f64),
            })
        })
        .collect();
    let header = json!({"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"});
    let t = ListFormat::Table("{{.Name}}\t{{.Links}}\t{{.Size}}".into());
    Ok(format!(
        "\nLocal Volumes space usage:\n\n{}",
        render_list(&t, &header, &rows)?
    ))
}
