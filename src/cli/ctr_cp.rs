//! `berth cp`: between a container (running or stopped) and the host.

use std::io::IsTerminal;

use anyhow::{bail, Result};

use super::ctr_more_args::CpArgs;
use super::Ctx;
use crate::engine::container::access::Rootfs;
use crate::engine::container::cp::{self, CpOpts, Endpoint};

pub fn cp_cmd(ctx: &Ctx, a: CpArgs) -> Result<()> {
    let o = CpOpts {
        archive: a.archive,
        follow: a.follow_link,
    };
    let cs = super::containers::containers(ctx);
    match (cp::split_arg(&a.src), cp::split_arg(&a.dest)) {
        (Endpoint::Container { .. }, Endpoint::Container { .. }) => {
            bail!("copying between containers is not supported")
        }
        (Endpoint::Local(_), Endpoint::Local(_)) => {
            bail!("must specify at least one container source")
        }
        (Endpoint::Container { container, path }, Endpoint::Local(dest)) => {
            if path.is_empty() {
                bail!("filepath must be specified");
            }
            let id = cs.resolve(&container)?;
            let mut rf = Rootfs::open(&cs, &id)?;
            rf.mount_volumes()?;
            let out = std::io::stdout().lock();
            let n = cp::copy_out(&rf, &path, &dest, o, out)?;
            if dest != "-" {
                done(a.quiet, n, &dest);
            }
            Ok(())
        }
        (Endpoint::Local(src), Endpoint::Container { container, path }) => {
            if path.is_empty() {
                bail!("filepath must be specified");
            }
            let id = cs.resolve(&container)?;
            let mut rf = Rootfs::open(&cs, &id)?;
            rf.mount_volumes()?;
            let n = cp::copy_in(&rf, &src, &path, o, std::io::stdin())?;
            done(a.quiet, n, &a.dest);
            Ok(())
        }
    }
}

/// docker's closing line on a terminal (`-q` silences it).
fn done(quiet: bool, bytes: u64, dest: &str) {
    if !quiet && std::io::stderr().is_terminal() {
        eprintln!(
            "Successfully copied {} to {dest}",
            super::units::human_size_with_precision(bytes as f64, 3)
        );
    }
}
