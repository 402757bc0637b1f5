//! Starting a container's monitor: `berth __monitor` forks once more and
//! setsids, so it outlives us; we reap the intermediate child right away
//! (this machine's pid 1 reaps nothing) and read the monitor's report.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{anyhow, Context, Result};

use super::store::ContainerStore;

/// What the monitor said about the start.
pub enum Started {
    /// The container runs with this pid.
    Running(i32),
    /// It waits for an attach client before it starts (see `--wait-attach`);
    /// the reader gives the next report after the client connected.
    Listening(Box<dyn FnOnce() -> Result<i32>>),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

pub fn spawn(store: &ContainerStore, id: &str, wait_attach: bool) -> Result<Started> {
    if let Some(sock) = super::zygote::take(&store.paths, id, wait_attach) {
        return reports(BufReader::new(sock));
    }
    let exe = std::env::current_exe().context("cannot find the berth binary")?;
    let mut c = Command::new(exe);
    c.arg("__monitor")
        .arg(&store.paths.root)
        .arg(&store.paths.run)
        .arg(id);
    if wait_attach {
        c.arg("--wait-attach");
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().context("cannot start the container monitor")?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("monitor has no status pipe"))?;
    // The intermediate exits at once; reaping it here leaves no zombie.
    let _ = child.wait();
    reports(BufReader::new(out))
}

/// Reads the monitor's first report (and, after `listening`, the next).
fn reports<R: BufRead + 'static>(mut r: R) -> Result<Started> {
    let first = read_report(&mut r)?;
    if first == "listening" {
        return Ok(Started::Listening(Box::new(move || {
            let next = read_report(&mut r)?;
            parse_ok(&next)
        })));
    }
    parse_ok(&first).map(Started::Running)
}

fn read_report(r: &mut impl BufRead) -> Result<String> {
    let mut line = String::new();
    r.read_line(&mut line)
        .context("reading the monitor's report")?;
    if line.is_empty() {
        return Err(
            StartError("the container monitor exited before the container started".into()).into(),
        );
    }
    Ok(line.trim_end().to_string())
}

fn parse_ok(line: &str) -> Result<i32> {
    if let Some(p) = line.strip_prefix("ok ") {
        return p
            .parse()
            .map_err(|_| anyhow!("bad monitor report {line:?}"));
    }
    if let Some(e) = line.strip_prefix("err ") {
        return Err(StartError(e.to_string()).into());
    }
    Err(anyhow!("bad monitor report {line:?}"))
}
