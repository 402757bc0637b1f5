//! `save` and `load` on the command line.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context, Result};

use super::args::{LoadArgs, SaveArgs};
use super::progress::{bar, Progress};
use super::Ctx;
use crate::engine::archive;

pub fn save(ctx: &Ctx, a: SaveArgs) -> Result<()> {
    let store = ctx.store()?;
    match &a.output {
        Some(path) => {
            // Write beside the target and rename, so a failed save never
            // leaves a truncated archive under the requested name.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".berth-save-")
                .tempfile_in(dir)
                .with_context(|| {
                    format!("failed to save image: cannot write in {}", dir.display())
                })?;
            let file = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file().try_clone()?);
            archive::save(&store, &a.images, file)?;
            tmp.as_file().sync_all()?;
            tmp.persist(path).with_context(|| {
                format!("failed to save image: cannot create {}", path.display())
            })?;
            Ok(())
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            archive::save(&store, &a.images, out)
        }
    }
}

pub fn load(ctx: &Ctx, a: LoadArgs) -> Result<()> {
    let store = ctx.store()?;
    let input: Box<dyn std::io::Read> = match &a.input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p)
                .with_context(|| format!("cannot open {}", p.display()))
                .map_err(super::errors::client)?,
        )),
        None => {
            if std::io::stdin().is_terminal() {
                return Err(super::errors::client(anyhow::anyhow!(
                    "requested load from stdin, but stdin is empty"
                )));
            }
            Box::new(std::io::BufReader::new(std::io::stdin()))
        }
    };
    // Docker shows "Loading layer" bars on a terminal unless -q; never on a pipe.
    let show = !a.quiet && std::io::stdout().is_terminal();
    let progress = Progress::new(show);
    let mut report = |id: &str, done: u64, total: u64| {
        if show {
            progress.set(
                id,
                &format!("Loading layer {}", bar(done, Some(total))),
                false,
            );
        }
    };
    let loaded = archive::load(&store, input, &mut report)?;
    progress.finish();
    let mut out = std::io::stdout().lock();
    for l in loaded {
        for (name, old) in &l.renamed {
            writeln!(
                out,
                "The image {name} already exists, renaming the old one with ID {old} to empty string"
            )?;
        }
        if l.tags.is_empty() {
            writeln!(out, "Loaded image ID: {}", l.id)?;
        }
        for t in l.tags {
            writeln!(out, "Loaded image: {t}")?;
        }
    }
    Ok(())
}
