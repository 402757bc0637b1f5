//! Presentation of the local image commands, in docker's formats.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{anyhow, Result};
use chrono::Utc;
use serde_json::{json, Value};

use super::args::{DfArgs, FormatOnly, HistoryArgs, ImagesArgs, PruneArgs, RmiArgs, TagArgs};
use super::format::{render_inspect, render_list, ListFormat};
use super::units::{ago, go_time_string, human_size, human_size_with_precision};
use super::{Ctx, Reported};
use crate::engine::images_cmd::{self as ops, ImageFilter, ImageView, RmiEvent};
use crate::engine::store::ImageIndex;

const IMAGES_TABLE: &str = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const IMAGES_TABLE_DIGESTS: &str =
    "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const HISTORY_TABLE: &str = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

fn out(s: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes())?;
    o.flush()?;
    Ok(())
}

fn images_header() -> Value {
    json!({
        "Containers": "CONTAINERS", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED",
        "Digest": "DIGEST", "ID": "IMAGE ID", "Repository": "REPOSITORY",
        "SharedSize": "SHARED SIZE", "Size": "SIZE", "Tag": "TAG",
        "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
    })
}

fn image_id(v: &ImageView, no_trunc: bool) -> String {
    if no_trunc {
        v.id()
    } else {
        v.short_id()
    }
}

/// `images` / `image ls`.
pub fn list(ctx: &Ctx, a: ImagesArgs) -> Result<()> {
    let store = ctx.store()?;
    let idx = store.images().map_err(|e| anyhow!("{e}"))?;
    let views = ops::views(&store, &idx)?;
    let mut filters = a.filter.clone();
    if let Some(r) = &a.reference {
        filters.push(format!("reference={r}"));
    }
    let filter = ImageFilter::parse(&filters, &idx, &views)?;
    let rows = ops::image_rows(&views, &filter);
    let now = Utc::now();
    let values: Vec<Value> = rows
        .iter()
        .map(|r| {
            let v = &r.view;
            let size = human_size_with_precision(v.size as f64, 3);
            json!({
                "Containers": "N/A",
                "CreatedAt": v.created.map(go_time_string).unwrap_or_default(),
                "CreatedSince": v.created.map(|c| ago(c, now)).unwrap_or_else(|| "N/A".into()),
                "Digest": r.digest,
                "ID": image_id(v, a.no_trunc),
                "Repository": r.repository,
                "SharedSize": "N/A",
                "Size": size,
                "Tag": r.tag,
                "UniqueSize": "N/A",
                "VirtualSize": size,
            })
        })
        .collect();
    let fmt = if a.quiet {
        ListFormat::Raw("{{.ID}}".into())
    } else {
        let default = if a.digests {
            IMAGES_TABLE_DIGESTS
        } else {
            IMAGES_TABLE
        };
        ListFormat::parse(a.format.as_deref(), default)
    };
    out(&render_list(&fmt, &images_header(), &values)?)
}

/// `rmi` / `image rm`: every argument is tried; failures print and exit 1.
pub fn rmi(ctx: &Ctx, a: RmiArgs) -> Result<()> {
    let store = ctx.store()?;
    let mut failed = false;
    let mut any_deleted = false;
    for name in &a.images {
        match ops::rmi(&store, name, a.force) {
            Ok(events) => {
                let mut text = String::new();
                for e in &events {
                    match e {
                        RmiEvent::Untagged(n) => text.push_str(&format!("Untagged: {n}\n")),
                        RmiEvent::Deleted(d) => {
                            any_deleted = true;
                            text.push_str(&format!("Deleted: {d}\n"));
                        }
                    }
                }
                out(&text)?;
                if any_deleted {
                    // Layers no image needs any more go with the image, as in docker.
                    let (layers, _) = ops::collect_garbage(&store)?;
                    let mut text = String::new();
                    for l in layers {
                        text.push_str(&format!("Deleted: {l}\n"));
                    }
                    out(&text)?;
                    any_deleted = false;
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("{}", super::errors::daemon_line(&e.to_string()));
            }
        }
    }
    if failed {
        return Err(Reported { code: 1 }.into());
    }
    Ok(())
}

pub fn tag(ctx: &Ctx, a: TagArgs) -> Result<()> {
    let store = ctx.store()?;
    ops::tag(&store, &a.source, &a.target)
}

/// `inspect` / `image inspect`: found images print; each missing one is an
/// error on stderr and exit 1, as docker does.
pub fn inspect(ctx: &Ctx, format: Option<String>, names: Vec<String>) -> Result<()> {
    let store = ctx.store()?;
    let idx = store.images().map_err(|e| anyhow!("{e}"))?;
    let views = ops::views(&store, &idx)?;
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for n in &names {
        match ops::lookup(&idx, n) {
            Ok(id) => match views.iter().find(|v| v.record.id == id) {
                Some(v) => items.push(ops::inspect_json(&store, v)),
                None => errors.push(format!("No such image: {n}")),
            },
            Err(crate::engine::store::StoreError::ImageNotFound { .. }) => {
                errors.push(format!("No such image: {n}"))
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !items.is_empty() || format.is_none() {
        out(&render_inspect(format.as_deref(), &items)?)?;
    }
    if errors.is_empty() {
        return Ok(());
    }
    // docker's API client words a missing object itself: "Error: No such image".
    for e in &errors {
        eprintln!("Error: {e}");
    }
    Err(Reported { code: 1 }.into())
}

fn find_view(ctx: &Ctx, name: &str) -> Result<(crate::engine::store::Store, ImageView)> {
    let store = ctx.store()?;
    let idx: ImageIndex = store.images().map_err(|e| anyhow!("{e}"))?;
    let id = ops::lookup(&idx, name).map_err(|e| match e {
        crate::engine::store::StoreError::ImageNotFound { .. } => {
            anyhow!("No such image: {}", ops::familiar_or_raw(name))
        }
        other => anyhow!("{other}"),
    })?;
    let views = ops::views(&store, &idx)?;
    let v = views
        .into_iter()
        .find(|v| v.record.id == id)
        .ok_or_else(|| anyhow!("No such image: {name}"))?;
    Ok((store, v))
}

/// Docker's `Ellipsis`: cut to `max` characters, the last one an ellipsis.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

pub fn history(ctx: &Ctx, a: HistoryArgs) -> Result<()> {
    let (store, v) = find_view(ctx, &a.image)?;
    let entries = ops::history(&store, &v);
    let now = Utc::now();
    let trunc = !a.no_trunc;
    let rows: Vec<Value> = entries
        .iter()
        .map(|h| {
            let id = if trunc && h.id.starts_with("sha256:") {
                h.id["sha256:".len()..].chars().take(12).collect()
            } else {
                h.id.clone()
            };
            let created_by = h.created_by.replace('\t', " ");
            let created_by = if trunc { ellipsis(&created_by, 45) } else { created_by };
            let (since, size) = if a.human {
                (
                    h.created.map(|c| ago(c, now)).unwrap_or_else(|| "N/A".into()),
                    human_size_with_precision(h.size as f64, 3),
                )
            } else {
                (
                    h.created
                        .map(|c| c.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_else(|| "N/A".into()),
                    h.size.to_string(),
                )
            };
            json!({
                "Comment": h.comment,
                "CreatedAt": h.created.map(|c| c.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default(),
                "CreatedBy": created_by,
                "CreatedSince": since,
                "ID": id,
                "Size": size,
            })
        })
        .collect();
    let header = json!({
        "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
    });
    let fmt = if a.quiet {
        ListFormat::Raw("{{.ID}}".into())
    } else {
        ListFormat::parse(a.format.as_deref(), HISTORY_TABLE)
    };
    out(&render_list(&fmt, &header, &rows)?)
}

/// Docker's prompt: only on a terminal; anything but y/Y declines.
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

pub fn prune(ctx: &Ctx, a: PruneArgs) -> Result<()> {
    if !a.filter.is_empty() {
        // Docker's prune filters are `until=` and `label=`; only `label` maps
        // onto what berth records, so refuse rather than half-apply.
        for f in &a.filter {
            if !f.starts_with("label=") {
                anyhow::bail!("invalid filter '{}'", f.split('=').next().unwrap_or(f));
            }
        }
    }
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        let q = format!("{warning}\nAre you sure you want to continue?");
        if !confirm(&q)? {
            return Ok(());
        }
    }
    let store = ctx.store()?;
    let idx = store.images().map_err(|e| anyhow!("{e}"))?;
    let views = ops::views(&store, &idx)?;
    let label_filter = ImageFilter::parse(&a.filter, &idx, &views)?;
    let mut text = String::new();
    let mut first = true;
    for v in &views {
        if !a.all && !v.tags.is_empty() {
            continue;
        }
        if !ops::image_rows(std::slice::from_ref(v), &label_filter)
            .iter()
            .any(|_| true)
        {
            continue;
        }
        let events = match ops::rmi(&store, &v.id(), true) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{}", super::errors::daemon_line(&e.to_string()));
                continue;
            }
        };
        if first {
            text.push_str("Deleted Images:\n");
            first = false;
        }
        for e in events {
            match e {
                RmiEvent::Untagged(n) => text.push_str(&format!("untagged: {n}\n")),
                RmiEvent::Deleted(d) => text.push_str(&format!("deleted: {d}\n")),
            }
        }
    }
    let (layers, reclaimed) = ops::collect_garbage(&store)?;
    for l in layers {
        text.push_str(&format!("deleted: {l}\n"));
    }
    if !first {
        text.push('\n');
    }
    text.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reclaimed as f64)
    ));
    out(&text)
}

/// `system df`: berth has images only so far, so it reports the Images row.
pub fn df(ctx: &Ctx, a: DfArgs) -> Result<()> {
    let store = ctx.store()?;
    let idx = store.images().map_err(|e| anyhow!("{e}"))?;
    let views = ops::views(&store, &idx)?;
    // Shared layers count once, as docker's df does.
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    for v in &views {
        for l in &v.record.layers {
            if seen.insert(l.chain_id.to_string()) {
                total += store.layers.info(&l.chain_id).map(|i| i.size).unwrap_or(0);
            }
        }
    }
    // Layers of images that some container uses are not reclaimable.
    let cu = super::df_containers::usage(&super::containers::containers(ctx));
    let mut used = std::collections::HashSet::new();
    for v in &views {
        if cu.per_image.contains_key(&v.record.id.to_string()) {
            for l in &v.record.layers {
                used.insert(l.chain_id.to_string());
            }
        }
    }
    let mut reclaimable = 0u64;
    for c in &seen {
        if !used.contains(c) {
            if let Ok(d) = c.parse() {
                reclaimable += store.layers.info(&d).map(|i| i.size).unwrap_or(0);
            }
        }
    }
    let active_images = views
        .iter()
        .filter(|v| cu.per_image.contains_key(&v.record.id.to_string()))
        .count();
    let reclaim_text = if total > 0 {
        format!(
            "{} ({}%)",
            human_size(reclaimable as f64),
            (reclaimable as f64 / total as f64 * 100.0) as i64
        )
    } else {
        human_size(reclaimable as f64)
    };
    if a.verbose && a.format.is_none() {
        let now = Utc::now();
        let mut body = String::from("Images space usage:\n\n");
        let rows: Vec<Value> = ops::image_rows(&views, &ImageFilter::default())
            .iter()
            .map(|r| {
                let v = &r.view;
                json!({
                    "Repository": r.repository, "Tag": r.tag, "ID": v.short_id(),
                    "CreatedSince": v.created.map(|c| ago(c, now)).unwrap_or_default(),
                    "Size": human_size(v.size as f64),
                    "SharedSize": human_size(0.0),
                    "UniqueSize": human_size(v.size as f64),
                    "Containers": cu.per_image.get(&v.record.id.to_string()).copied().unwrap_or(0).to_string(),
                })
            })
            .collect();
        let t = ListFormat::Table(
            "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}".into(),
        );
        body.push_str(&render_list(&t, &images_header(), &rows)?);
        body.push_str("\nContainers space usage:\n\n");
        let ct = ListFormat::Table(super::df_containers::VERBOSE_TABLE.into());
        body.push_str(&render_list(
            &ct,
            &super::df_containers::verbose_header(),
            &cu.rows,
        )?);
        body.push_str(&super::volume::df_verbose(ctx)?);
        return out(&body);
    }
    let rows = vec![
        json!({
            "Type": "Images",
            "TotalCount": views.len().to_string(),
            "Active": active_images.to_string(),
            "Size": human_size(total as f64),
            "Reclaimable": reclaim_text,
        }),
        super::df_containers::df_row(&cu),
        super::volume::df_row(ctx),
    ];
    let header = json!({
        "Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
        "Size": "SIZE", "Reclaimable": "RECLAIMABLE",
    });
    let fmt = ListFormat::parse(
        a.format.as_deref(),
        "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
    );
    out(&render_list(&fmt, &header, &rows)?)
}

fn version_value() -> Value {
    json!({
        "Client": {
            "Version": env!("CARGO_PKG_VERSION"),
            "Os": std::env::consts::OS,
            "Arch": go_arch(),
        }
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

pub fn version(a: FormatOnly) -> Result<()> {
    let v = version_value();
    match a.format {
        Some(f) => out(&render_inspect(Some(&f), &[v])?),
        None => out(&format!(
            "Client:\n Version:    {}\n OS/Arch:    {}/{}\n Daemon:     none (berth is daemonless)\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            go_arch()
        )),
    }
}

pub fn info(ctx: &Ctx, a: FormatOnly) -> Result<()> {
    let store = ctx.store()?;
    let idx = store.images().map_err(|e| anyhow!("{e}"))?;
    let uname = rustix::system::uname();
    let v = json!({
        "Images": idx.images.len(),
        "Driver": "overlay",
        "DockerRootDir": store.paths.root.display().to_string(),
        "KernelVersion": uname.release().to_string_lossy(),
        "OperatingSystem": std::env::consts::OS,
        "OSType": std::env::consts::OS,
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "Name": uname.nodename().to_string_lossy(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
    });
    match a.format {
        Some(f) => out(&render_inspect(Some(&f), &[v])?),
        None => out(&format!(
            "Client:\n Version:    {}\n\nServer:\n Images: {}\n Storage Driver: overlay\n Kernel Version: {}\n Architecture: {}\n CPUs: {}\n Name: {}\n Berth Root Dir: {}\n",
            env!("CARGO_PKG_VERSION"),
            v["Images"],
            v["KernelVersion"].as_str().unwrap_or(""),
            v["Architecture"].as_str().unwrap_or(""),
            v["NCPU"],
            v["Name"].as_str().unwrap_or(""),
            v["DockerRootDir"].as_str().unwrap_or(""),
        )),
    }
}
