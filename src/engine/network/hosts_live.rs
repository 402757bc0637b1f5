//! A running container's `/etc/hosts` after `network connect` /
//! `disconnect`: docker adds (removes) a `<address>\t<hostname>` line for
//! the endpoint at once. The file is bind-mounted from
//! `containers/<id>/hosts`, so it is rewritten in place: a rename would
//! leave the container looking at the old inode.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, Result};

use crate::engine::container::{ContainerRecord, ContainerStore};

fn line(ip: IpAddr, rec: &ContainerRecord) -> String {
    format!("{ip}\t{}", rec.config.hostname)
}

/// Replaces the file's content without replacing the file. A file that
/// does not exist is left alone (a container that never started has none).
fn rewrite_in_place(path: &Path, f: impl FnOnce(&str) -> Option<String>) -> Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let Some(new) = f(&old) else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(new.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `network connect` of a running container: its new address.
pub fn add(cs: &ContainerStore, rec: &ContainerRecord, ip: IpAddr) -> Result<()> {
    let want = line(ip, rec);
    rewrite_in_place(&cs.dir(&rec.id).join("hosts"), |old| {
        if old.lines().any(|l| l == want) {
            return None;
        }
        let mut s = old.to_string();
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&want);
        s.push('\n');
        Some(s)
    })
}

/// `network disconnect` of a running container: the line of the address
/// it had on that network.
pub fn remove(cs: &ContainerStore, rec: &ContainerRecord, ip: IpAddr) -> Result<()> {
    let gone = line(ip, rec);
    rewrite_in_place(&cs.dir(&rec.id).join("hosts"), |old| {
        if !old.lines().any(|l| l == gone) {
            return None;
        }
        let mut s: String = old
            .lines()
            .filter(|l| *l != gone)
            .collect::<Vec<_>>()
            .join("\n");
        s.push('\n');
        Some(s)
    })
}
