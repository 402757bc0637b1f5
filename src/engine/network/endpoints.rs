//! A container's networks: `containers/<id>/network.json` holds what was
//! asked for (`run --network/--ip/--network-alias/--mac-address`, `network
//! connect`) and, while the container runs, where it is attached. Updated
//! under `network.lock` in the same directory (the monitor and `network
//! connect` may write at once).

use std::net::Ipv4Addr;
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
    /// None on internal networks (no default route).
    pub gateway: Option<Ipv4Addr>,
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

pub fn save(cs: &ContainerStore, id: &str, n: &ContainerNet) -> Result<()> {
    let p = file(cs, id);
    atomic_write(&p, &serde_json::to_vec_pretty(n)?)
        .with_context(|| format!("cannot write {}", p.display()))
}

/// Read-modify-write under the container's network lock.
pub fn update<T>(
    cs: &ContainerStore,
    id: &str,
    f: impl FnOnce(&mut ContainerNet) -> Result<T>,
) -> Result<T> {
    let lp = cs.dir(id).join("network.lock");
    let _l = FileLock::exclusive(&lp).with_context(|| format!("cannot lock {}", lp.display()))?;
    let mut n = load(cs, id)?;
    let r = f(&mut n)?;
    save(cs, id, &n)?;
    Ok(r)
}
