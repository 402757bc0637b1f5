//! `/etc/hosts` and `/etc/resolv.conf` of a container on bridge networks,
//! written over the files `container::etcfiles` made before the container
//! is created (the runtime bind-mounts them at create).

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};

use super::endpoints::ContainerNet;
use crate::engine::container::etcfiles::Resolv;
use crate::engine::container::{ContainerRecord, ContainerStore};

/// `resolv.conf` on a user-defined network. docker points containers at
/// its embedded resolver (127.0.0.11); berth's resolver serves each user
/// network's gateway address, so the first user network's gateway is the
/// nameserver (also on internal networks: the gateway is on-link). The
/// resolver itself is started next to the caller,
/// `sandbox::setup_user_network_dns`. Search domains and options are the host's or the
/// `--dns-search` / `--dns-option` ones, plus docker's `ndots:0`.
pub fn user_network_resolv_conf(gateway: Ipv4Addr, rec: &ContainerRecord) -> String {
    let mut r = Resolv::for_container(&rec.host_config);
    r.nameservers = vec![gateway.to_string()];
    if !r.options.iter().any(|o| o.starts_with("ndots:")) {
        r.options.insert(0, "ndots:0".into());
    }
    r.render()
}

/// The IP of a running container on the default bridge, for `--link`.
pub(super) fn link_target(cs: &ContainerStore, name: &str) -> Result<(ContainerRecord, Ipv4Addr)> {
    let id = cs
        .resolve(name)
        .with_context(|| format!("Cannot link to {name}: no such container"))?;
    let rec = cs.load(&id)?;
    let n = super::endpoints::load(cs, &id)?;
    let ip = n
        .endpoint(super::DEFAULT)
        .and_then(|e| e.live.as_ref())
        .map(|l| l.ip)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "Cannot link to {name}: it is not running on the default bridge network"
            )
        })?;
    Ok((rec, ip))
}

/// Appends the container's own address (docker: `<ip>\t<hostname>`) and
/// its `--link` entries to `hosts`.
pub fn write_hosts(
    cs: &ContainerStore,
    rec: &ContainerRecord,
    dir: &Path,
    net: &ContainerNet,
) -> Result<()> {
    let p = dir.join("hosts");
    let mut h = String::new();
    for l in &rec.host_config.links {
        let (name, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
        let (target, ip) = link_target(cs, name)?;
        let mut names = vec![alias.to_string()];
        if target.name != alias {
            names.push(target.name);
        }
        h.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    if let Some(l) = net.endpoints.iter().find_map(|e| e.live.as_ref()) {
        h.push_str(&format!("{}\t{}\n", l.ip, rec.config.hostname));
        // docker writes the v6 address of a dual-stack endpoint too.
        if let Some(a6) = l.ip6 {
            h.push_str(&format!("{a6}\t{}\n", rec.config.hostname));
        }
    }
    // Appended in place to the file `etcfiles` wrote a moment ago for this
    // start: nothing reads it before the container runs, and a temp file
    // + rename would cost one more inode per start.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .and_then(|mut f| std::io::Write::write_all(&mut f, h.as_bytes()))
        .with_context(|| format!("cannot write {}", p.display()))
}
