//! Bridge networks in the engine: glue between the container lifecycle and
//! the `netns` crate. Which nft table, default bridge device and pools berth
//! uses comes from berth's config file (see `config.rs`), so tests with
//! their own `--root` and config never share a host-global name.
//!
//! Files: `endpoints.rs` (a container's `network.json`), `ports.rs`
//! (`-p` parsing), `sandbox.rs` (attach at start, release at exit),
//! `etc.rs` (hosts / resolv.conf of networked containers), `inspect.rs`
//! (docker's `NetworkSettings`), `meta.rs` (creation time and options of a
//! network), `ops.rs` (the `network` commands).

pub mod endpoints;
pub mod etc;
pub mod hosts_live;
pub mod inspect;
pub mod link_env;
pub mod meta;
pub mod ops;
pub mod ports;
pub mod rename;
pub mod sandbox;

use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Context, Result};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netns::redirect::PortRedirect;
use netns::{NetEnv, NetworkConfig, NetworkState};

use super::config::BerthConfig;
use super::paths::Paths;

/// docker's default network.
pub const DEFAULT: &str = "bridge";
/// The default bridge's device name (docker's `docker0`).
pub const DEFAULT_BRIDGE_DEVICE: &str = "berth0";
/// The predefined networks that have no state file.
pub const PSEUDO: [&str; 2] = ["host", "none"];

/// Where berth's networks live and the host-global names it uses.
#[derive(Debug, Clone)]
pub struct Net {
    pub env: NetEnv,
    pub paths: Paths,
    pub default_device: String,
    /// `bip`: the default bridge's gateway within its subnet.
    pub bip: Option<(Ipv4Net, Ipv4Addr)>,
    /// `ipv6` and `fixed-cidr-v6`: the default bridge is dual-stack.
    pub default_ipv6: Option<Option<Ipv6Net>>,
}

impl Net {
    pub fn new(paths: &Paths) -> Result<Net> {
        Self::with_config(paths, &BerthConfig::load()?)
    }

    pub fn with_config(paths: &Paths, cfg: &BerthConfig) -> Result<Net> {
        let mut env = NetEnv::new(&paths.root);
        if let Some(t) = &cfg.nft_table {
            env.table = t.clone();
        }
        env.port_redirect = match cfg.port_redirect.as_deref() {
            None | Some("auto") => PortRedirect::Auto,
            Some("off") => PortRedirect::Off,
            Some(p) if p.starts_with('/') => PortRedirect::Cgroup(p.into()),
            Some(other) => bail!(
                "invalid berth config: port-redirect {other:?} must be \"auto\", \"off\" or the absolute path of a cgroup v2 directory"
            ),
        };
        if !cfg.default_address_pools.is_empty() {
            let (mut pools, mut pools6) = (Vec::new(), Vec::new());
            for p in &cfg.default_address_pools {
                let base: IpNet = p.base.parse().map_err(|_| {
                    anyhow!(
                        "invalid berth config: default-address-pools base {:?} is not a CIDR",
                        p.base
                    )
                })?;
                let bad_size = || {
                    anyhow!(
                        "invalid berth config: default-address-pools size {} does not fit base {}",
                        p.size,
                        p.base
                    )
                };
                match base {
                    IpNet::V4(b) => pools.extend(b.subnets(p.size).map_err(|_| bad_size())?),
                    IpNet::V6(b) => {
                        if p.size < b.prefix_len() || p.size > 126 {
                            return Err(bad_size());
                        }
                        pools6.push((b.trunc(), p.size));
                    }
                }
            }
            // Only v6 entries given: the v4 defaults stay (and the reverse).
            if !pools.is_empty() {
                env.pools = pools;
            }
            if !pools6.is_empty() {
                env.pools6 = pools6;
            }
        }
        let bip = match &cfg.bip {
            Some(b) => {
                let n: Ipv4Net = b.parse().map_err(|_| {
                    anyhow!("invalid berth config: bip {b:?} must be an address with a prefix, e.g. 172.17.0.1/16")
                })?;
                Some((n.trunc(), n.addr()))
            }
            None => None,
        };
        let default_ipv6 = match (cfg.ipv6, &cfg.fixed_cidr_v6) {
            (false, _) => None,
            (true, None) => Some(None),
            (true, Some(c)) => Some(Some(c.parse::<Ipv6Net>().map_err(|_| {
                anyhow!("invalid berth config: fixed-cidr-v6 {c:?} is not an IPv6 CIDR")
            })?)),
        };
        Ok(Net {
            env,
            default_ipv6,
            paths: paths.clone(),
            default_device: cfg
                .bridge
                .clone()
                .unwrap_or_else(|| DEFAULT_BRIDGE_DEVICE.to_string()),
            bip,
        })
    }

    /// The default `bridge` network, created on first use (docker has it
    /// from daemon start; berth has no daemon).
    pub fn ensure_default(&self) -> Result<NetworkState> {
        match netns::Network::load(&self.env, DEFAULT) {
            Ok(s) => return Ok(s),
            Err(netns::Error::NetworkNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let mut options = std::collections::BTreeMap::new();
        options.insert(
            "com.docker.network.bridge.default_bridge".to_string(),
            "true".to_string(),
        );
        options.insert(
            "com.docker.network.bridge.name".to_string(),
            self.default_device.clone(),
        );
        let cfg = NetworkConfig {
            name: DEFAULT.into(),
            bridge: Some(self.default_device.clone()),
            subnet: self.bip.map(|b| b.0),
            gateway: self.bip.map(|b| b.1),
            ipv6: self.default_ipv6.is_some(),
            subnet6: self.default_ipv6.flatten(),
            ..Default::default()
        };
        match netns::Network::create(&self.env, &cfg) {
            Ok(s) => {
                meta::write(self, &s, &options)?;
                Ok(s)
            }
            // Another berth process created it a moment ago.
            Err(netns::Error::NetworkExists(_)) => Ok(netns::Network::load(&self.env, DEFAULT)?),
            Err(e) => Err(anyhow!(e)).context("cannot create the default bridge network"),
        }
    }

    /// A network by name, full ID or unique ID prefix (docker's lookup);
    /// `bridge` is created on demand.
    pub fn find(&self, input: &str) -> Result<NetworkState> {
        if input == DEFAULT {
            return self.ensure_default();
        }
        if let Ok(s) = netns::Network::load(&self.env, input) {
            return Ok(s);
        }
        let all = netns::list(&self.env)?;
        if let Some(s) = all.iter().find(|s| s.id == input) {
            return Ok(s.clone());
        }
        let m: Vec<&NetworkState> = all.iter().filter(|s| s.id.starts_with(input)).collect();
        match m.len() {
            1 => Ok(m[0].clone()),
            0 => bail!("Error response from daemon: network {input} not found"),
            _ => bail!("Error response from daemon: network {input} is ambiguous ({} matches found based on ID prefix)", m.len()),
        }
    }

    /// Where container `id`'s network namespace is bound.
    pub fn netns_path(&self, id: &str) -> std::path::PathBuf {
        netns::namespace::netns_path(&self.paths.run, id)
    }
}

/// Stable IDs for the pseudo networks `host` and `none` (they have no state).
pub fn pseudo_id(name: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        format!("berth-network-{name}").as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_redirect(v: Option<&str>) -> Result<PortRedirect> {
        let paths = Paths {
            root: "/nonexistent/root".into(),
            run: "/nonexistent/run".into(),
        };
        let cfg = BerthConfig {
            port_redirect: v.map(str::to_string),
            ..Default::default()
        };
        Ok(Net::with_config(&paths, &cfg)?.env.port_redirect)
    }

    #[test]
    fn port_redirect_setting() {
        assert_eq!(with_redirect(None).unwrap(), PortRedirect::Auto);
        assert_eq!(with_redirect(Some("auto")).unwrap(), PortRedirect::Auto);
        assert_eq!(with_redirect(Some("off")).unwrap(), PortRedirect::Off);
        assert_eq!(
            with_redirect(Some("/sys/fs/cgroup/x")).unwrap(),
            PortRedirect::Cgroup("/sys/fs/cgroup/x".into())
        );
        let e = with_redirect(Some("yes")).unwrap_err().to_string();
        assert!(
            e.contains("port-redirect \"yes\"") && e.contains("\"off\""),
            "{e}"
        );
    }
}
