//! `ps`: docker's columns, filters and formats.

use anyhow::{bail, Result};
use chrono::Utc;
use serde_json::{json, Value};

use super::container_args::PsArgs;
use super::format::{render_list, ListFormat};
use super::units::{ago, go_time_string, human_duration};
use super::Ctx;
use crate::engine::container::model::{ContainerRecord, State, Status};
use crate::engine::container::{liveness, ContainerStore};

const PS_TABLE: &str =
    "{{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.CreatedAt}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}";

fn header() -> Value {
    json!({"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
           "CreatedAt": "CREATED", "RunningFor": "CREATED", "Status": "STATUS",
           "Ports": "PORTS", "Names": "NAMES", "Size": "SIZE", "Labels": "LABELS",
           "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE",
           "LocalVolumes": "LOCAL VOLUMES"})
}

/// docker's STATUS column.
pub fn status_text(st: &State) -> String {
    let now = Utc::now();
    let since = |t: Option<chrono::DateTime<Utc>>| {
        t.map(|t| human_duration((now - t).num_milliseconds() as f64 / 1000.0))
            .unwrap_or_else(|| "Less than a second".into())
    };
    match st.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", since(st.started_at)),
        Status::Paused => format!("Up {} (Paused)", since(st.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            st.exit_code,
            since(st.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Exited => format!("Exited ({}) {} ago", st.exit_code, since(st.finished_at)),
        Status::Dead => "Dead".into(),
    }
}

/// docker's COMMAND column: the quoted command line, cut at 20 chars.
fn command(rec: &ContainerRecord, no_trunc: bool) -> String {
    let mut c = rec.path.clone();
    for a in &rec.args {
        c.push(' ');
        c.push_str(a);
    }
    if !no_trunc && c.chars().count() > 20 {
        c = c.chars().take(19).collect::<String>() + "…";
    }
    format!("\"{c}\"")
}

struct Filter {
    status: Vec<String>,
    name: Vec<String>,
    label: Vec<String>,
    ancestor: Vec<String>,
    exited: Vec<i32>,
    id: Vec<String>,
}

fn parse_filters(f: &[String]) -> Result<Filter> {
    let mut out = Filter {
        status: vec![],
        name: vec![],
        label: vec![],
        ancestor: vec![],
        exited: vec![],
        id: vec![],
    };
    for s in f {
        let Some((k, v)) = s.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        match k {
            "status" => {
                if ![
                    "created",
                    "restarting",
                    "running",
                    "removing",
                    "paused",
                    "exited",
                    "dead",
                ]
                .contains(&v)
                {
                    bail!("Error response from daemon: invalid filter 'status={v}'");
                }
                out.status.push(v.into())
            }
            "name" => out.name.push(v.into()),
            "label" => out.label.push(v.into()),
            "ancestor" => out.ancestor.push(v.into()),
            "exited" => out.exited.push(v.parse().map_err(|_| {
                anyhow::anyhow!("Error response from daemon: invalid filter 'exited={v}'")
            })?),
            "id" => out.id.push(v.into()),
            _ => bail!("Error response from daemon: invalid filter '{k}'"),
        }
    }
    Ok(out)
}

fn matches(f: &Filter, rec: &ContainerRecord, st: &State, image_ids: &[String]) -> bool {
    (f.status.is_empty() || f.status.iter().any(|s| s == st.status.as_str()))
        && (f.name.is_empty()
            || f.name
                .iter()
                .any(|n| rec.name.contains(n.trim_start_matches('/'))))
        && (f.id.is_empty() || f.id.iter().any(|i| rec.id.starts_with(i.as_str())))
        && (f.exited.is_empty()
            || (st.status == Status::Exited && f.exited.contains(&st.exit_code)))
        && f.label.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => rec.config.labels.get(k).map(String::as_str) == Some(v),
            None => rec.config.labels.contains_key(l.as_str()),
        })
        && (f.ancestor.is_empty()
            || f.ancestor.iter().any(|a| a == &rec.config.image)
            || image_ids.contains(&rec.image))
}

pub fn ps(ctx: &Ctx, a: PsArgs) -> Result<()> {
    let cs = ContainerStore::new(ctx.paths());
    let f = parse_filters(&a.filter)?;
    // ancestor= by image reference or ID: resolve to IDs once.
    let mut image_ids = Vec::new();
    if !f.ancestor.is_empty() {
        if let Ok(store) = ctx.store() {
            if let Ok(idx) = store.images() {
                for an in &f.ancestor {
                    if let Ok(id) = crate::engine::images_cmd::lookup(&idx, an) {
                        image_ids.push(id.to_string());
                    }
                }
            }
        }
    }
    let mut all: Vec<(ContainerRecord, State)> = cs
        .list()?
        .into_iter()
        .filter_map(|r| liveness::current(&cs, &r.id).ok().map(|s| (r, s)))
        .collect();
    all.sort_by_key(|x| std::cmp::Reverse(x.0.created));
    let show_all = a.all || a.latest || a.last > 0 || !f.status.is_empty() || !f.exited.is_empty();
    let mut rows: Vec<&(ContainerRecord, State)> = all
        .iter()
        .filter(|(r, s)| (show_all || s.running()) && matches(&f, r, s, &image_ids))
        .collect();
    let limit = if a.latest { 1 } else { a.last };
    if limit > 0 {
        rows.truncate(limit as usize);
    }
    let now = Utc::now();
    let values: Vec<Value> = rows
        .iter()
        .map(|(r, s)| {
            let id = if a.no_trunc { r.id.clone() } else { r.id[..12].to_string() };
            let labels: Vec<String> = r.config.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let size = if a.size {
                super::df_containers::ps_size(&cs, r)
            } else {
                String::new()
            };
            let (networks, ports) = crate::engine::network::inspect::ps_columns(&cs, r);
            json!({
                "Command": command(r, a.no_trunc),
                "CreatedAt": if a.format.is_some() { go_time_string(r.created) } else { ago(r.created, now) },
                "ID": id,
                "Image": r.config.image,
                "Labels": labels.join(","),
                "LocalVolumes": "0",
                "Mounts": "",
                "Names": r.name,
                "Networks": networks,
                "Ports": ports,
                "RunningFor": ago(r.created, now),
                "Size": size,
                "State": s.status.as_str(),
                "Status": status_text(s),
            })
        })
        .collect();
    let fmt = if a.quiet {
        ListFormat::Raw("{{.ID}}".into())
    } else {
        let default = if a.size {
            format!("{PS_TABLE}\\t{{{{.Size}}}}")
        } else {
            PS_TABLE.to_string()
        };
        ListFormat::parse(a.format.as_deref(), &default)
    };
    let out = render_list(&fmt, &header(), &values)?;
    print!("{out}");
    Ok(())
}
