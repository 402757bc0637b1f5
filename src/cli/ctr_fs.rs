//! `export`, `diff` and `commit`: a container's filesystem as a tar, its
//! changes, and a new image from them.

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::ctr_more_args::{CommitArgs, DiffArgs, ExportArgs};
use super::Ctx;
use crate::engine::container::access::Rootfs;
use crate::engine::container::commit::{self, CommitRequest};
use crate::engine::container::tarwalk::Walker;

pub fn export_cmd(ctx: &Ctx, a: ExportArgs) -> Result<()> {
    let cs = super::containers::containers(ctx);
    let id = cs.resolve(&a.container)?;
    let out: Box<dyn Write> = match a.output.as_deref() {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .with_context(|| format!("failed to export container: cannot create {p}"))?,
        )),
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
        }
    };
    let rf = Rootfs::open(&cs, &id)?;
    let root = rf.overlay_root_fd()?;
    let mut w = Walker::new(out, None, false);
    w.add_children(root.as_fd(), Path::new(""))?;
    w.finish()?.flush()?;
    Ok(())
}

pub fn diff_cmd(ctx: &Ctx, a: DiffArgs) -> Result<()> {
    let cs = super::containers::containers(ctx);
    let id = cs.resolve(&a.container)?;
    let rec = cs.load(&id)?;
    let lowers: Vec<_> = rec
        .layers
        .iter()
        .map(|h| cs.paths.layers_dir().join(h).join("diff"))
        .collect();
    let changes = crate::engine::container::changes::changes(&cs.dir(&id).join("upper"), &lowers)?;
    let mut out = std::io::stdout().lock();
    for (p, k) in changes {
        if writeln!(out, "{} {p}", k.letter()).is_err() {
            break;
        }
    }
    Ok(())
}

pub fn commit_cmd(ctx: &Ctx, a: CommitArgs) -> Result<()> {
    if let Some(r) = &a.repository {
        commit::check_reference(r)?;
    }
    let cs = super::containers::containers(ctx);
    let id = cs.resolve(&a.container)?;
    let store = ctx.store()?;
    let req = CommitRequest {
        author: a.author,
        message: a.message,
        changes: a.change,
        pause: a.pause,
        reference: a.repository,
    };
    let new = commit::commit(&cs, &store, &id, &req)
        .map_err(|e| anyhow!("Error response from daemon: {}", super::error_chain(&e)))?;
    println!("{new}");
    Ok(())
}
