//! A container's networks: `containers/<id>/network.json` holds what was
//! asked for (`run --network/--ip/--network-alias/--mac-address`, `network
//! connect`) and, while the container runs, where it is attached. Updated
//! under an flock of the container's directory (the monitor and `network
//! connect` may write at once).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::engine::container::ContainerStore;
use crate::engine::fsutil::{atomic_write, FileLock};

/// One requested network (docker's `EndpointSettings` as configured).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    /// The network's name.
    pub network: String,
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// `--ip6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub mac: Option<String>,
    /// Set while attached.
    #[serde(default)]
    pub live: Option<Live>,
}

/// Where the container is attached on one network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Live {
    pub network_id: String,
    pub endpoint_id: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,

    pub gateway: Option<Ipv4Addr>,
    /// The v6 address, prefix and gateway on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    #[serde(default)]
    pub prefix_len6: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    pub mac: String,
    pub ifname: String,
    /// Published ports with the host port resolved (first network only).
    #[serde(default)]
    pub ports: Vec<netns::PortMapping>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerNet {
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// The bound network namespace while the container runs.
    #[serde(default)]
    pub sandbox_key: Option<PathBuf>,
}

impl ContainerNet {
    pub fn endpoint(&self, network: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.network == network)
    }

    /// Every published port of the running container.
    pub fn ports(&self) -> Vec<netns::PortMapping> {
        self.endpoints
            .iter()
            .filter_map(|e| e.live.as_ref())
            .flat_map(|l| l.ports.iter().cloned())
            .collect()
    }
}

fn file(cs: &ContainerStore, id: &str) -> PathBuf {
    cs.dir(id).join("network.json")
}

/// Missing file: a container without bridge networks.
pub fn load(cs: &ContainerStore, id: &str) -> Result<ContainerNet> {
    let p = file(cs, id);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("{} is corrupt; remove the container", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ContainerNet::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    }
}

/// The endpoints of `rec`: without a `network.json` (the common case, so
/// `create` writes and fsyncs nothing more), its one network is
/// `NetworkMode` with no `--ip`, alias or MAC.
pub fn load_for(
    cs: &ContainerStore,
    rec: &crate::engine::container::ContainerRecord,
) -> Result<ContainerNet> {
    let mut n = load(cs, &rec.id)?;
    materialize(&mut n, rec);
    Ok(n)
}

/// Adds the implicit endpoint of a container without `network.json`.
pub fn materialize(n: &mut ContainerNet, rec: &crate::engine::container::ContainerRecord) {
    if n.endpoints.is_empty() && matches!(super::sandbox::mode(rec), super::sandbox::Mode::Bridge) {
        n.endpoints.push(Endpoint {
            network: rec.host_config.network_mode.clone(),
            ..Default::default()
        });
    }
}

/// `durable`: fsync'ed (configuration); otherwise only atomic (what is
/// attached now: one fsync costs 1-10 ms here, over the start budget, and
/// the kernel objects it describes do not survive a power loss either).
pub fn save(cs: &ContainerStore, id: &str, n: &ContainerNet, durable: bool) -> Result<()> {
    let p = file(cs, id);
    let b = serde_json::to_vec_pretty(n)?;
    if durable {
        atomic_write(&p, &b)
    } else {
        volatile_write(&p, &b)
    }
    .with_context(|| format!("cannot write {}", p.display()))
}

/// Read-modify-write under the container's network lock.
pub fn update<T>(
    cs: &ContainerStore,
    id: &str,
    durable: bool,
    f: impl FnOnce(&mut ContainerNet) -> Result<T>,
) -> Result<T> {
    // The container's directory is the lock: nobody else flocks it.
    let lp = cs.dir(id);
    let _l =
        FileLock::exclusive_dir(&lp).with_context(|| format!("cannot lock {}", lp.display()))?;
    let mut n = load(cs, id)?;
    let r = f(&mut n)?;
    save(cs, id, &n, durable)?;
    Ok(r)
}

/// Temp file + rename, no fsync: readers see the old or the new content;
/// after a power loss the file may be old (it is rewritten at every start).
pub fn volatile_write(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", crate::engine::fsutil::random_suffix()));
    let tmp = path.with_file_name(tmp_name);
    let r = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}
