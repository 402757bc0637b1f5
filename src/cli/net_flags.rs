//! The network flags of `create`/`run` (`--network`, `--ip`,
//! `--network-alias`, `--mac-address`, `-p`, `-P`, `--expose`, `--link`)
//! with docker's rules and error texts.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::container_args::CreateFlags;
use crate::engine::container::{ContainerStore, HostConfig, RunConfig};
use crate::engine::network::endpoints::{self, ContainerNet, Endpoint};
use crate::engine::network::{ports, Net, DEFAULT};

/// docker's `HostConfig.NetworkMode`: the first `--network`, `bridge` by default.
pub fn network_mode(nets: &[String]) -> String {
    match nets.first().map(String::as_str) {
        None | Some("default") | Some("") => DEFAULT.to_string(),
        Some(n) => n.to_string(),
    }
}

fn special(n: &str) -> bool {
    n == "host" || n == "none" || n.starts_with("container:")
}

/// What create records about networks once the container exists.
pub struct NetRequest {
    endpoints: Vec<Endpoint>,
    expose: Vec<String>,
}

fn parse_expose(e: &str) -> Result<Vec<String>> {
    let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
    let (a, b) = p.split_once('-').unwrap_or((p, p));
    let bad = || {
        anyhow!("invalid argument \"{e}\" for \"--expose\" flag: invalid range format for --expose: {e}")
    };
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if a > b || !matches!(proto, "tcp" | "udp") {
        return Err(bad());
    }
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// Checks the flags against each other and fills `PortBindings`.
pub fn parse(f: &CreateFlags, hc: &mut HostConfig) -> Result<NetRequest> {
    let mut names: Vec<String> = f
        .network
        .iter()
        .map(|n| network_mode(std::slice::from_ref(n)))
        .collect();
    if names.is_empty() {
        names.push(DEFAULT.into());
    }
    if names.len() > 1 && names.iter().any(|n| special(n)) {
        bail!("Error response from daemon: conflicting options: cannot attach both user-defined and non-user-defined network-modes");
    }
    let first = names[0].clone();
    let ip =
        f.ip.as_deref()
            .map(|s| {
                s.parse::<Ipv4Addr>().map_err(|_| {
                    anyhow!("invalid argument \"{s}\" for \"--ip\" flag: invalid IPv4 address: {s}")
                })
            })
            .transpose()?;
    let ip6 = f
        .ip6
        .as_deref()
        .map(|s| {
            s.parse::<Ipv6Addr>().map_err(|_| {
                anyhow!("invalid argument \"{s}\" for \"--ip6\" flag: invalid IPv6 address: {s}")
            })
        })
        .transpose()?;
    if let Some(m) = &f.mac_address {
        let ok = m.split(':').count() == 6
            && m.split(':')
                .all(|x| x.len() == 2 && u8::from_str_radix(x, 16).is_ok());
        if !ok {
            bail!("invalid argument \"{m}\" for \"--mac-address\" flag: {m} is not a valid mac address");
        }
        if special(&first) {
            bail!(
                "Error response from daemon: conflicting options: mac-address and the network mode"
            );
        }
    }
    if first == DEFAULT && (ip.is_some() || ip6.is_some()) {
        bail!("Error response from daemon: user specified IP address is supported on user defined networks only");
    }
    if first == DEFAULT && !f.network_alias.is_empty() {
        bail!("Error response from daemon: network-scoped alias is supported only for containers in user defined networks");
    }
    if special(&first) && (ip.is_some() || ip6.is_some() || !f.network_alias.is_empty()) {
        bail!("Error response from daemon: conflicting options: --ip and --network-alias need a bridge network");
    }
    let mut bindings: BTreeMap<String, Vec<crate::engine::container::model::PortBinding>> =
        BTreeMap::new();
    for p in &f.publish {
        for (k, b) in ports::parse_publish(p)? {
            bindings.entry(k).or_default().push(b);
        }
    }
    let mut expose = Vec::new();
    for e in &f.expose {
        expose.extend(parse_expose(e)?);
    }
    if first.starts_with("container:") {
        if !bindings.is_empty() || f.publish_all {
            bail!("Error response from daemon: conflicting options: port publishing and the container type network mode");
        }
        if !f.link.is_empty() {
            bail!("Error response from daemon: conflicting options: container type network can't be used with links");
        }
    }
    if (first == "host" || first == "none") && (!bindings.is_empty() || f.publish_all) {
        eprintln!("WARNING: Published ports are discarded when using {first} network mode");
        bindings.clear();
        hc.publish_all_ports = false;
    }
    hc.port_bindings = bindings;
    let endpoints = if special(&first) {
        vec![]
    } else {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Endpoint {
                network: n.clone(),
                ip: if i == 0 { ip } else { None },
                ip6: if i == 0 { ip6 } else { None },
                aliases: if i == 0 {
                    f.network_alias.clone()
                } else {
                    vec![]
                },
                mac: if i == 0 {
                    f.mac_address.clone().map(|m| m.to_ascii_lowercase())
                } else {
                    None
                },
                live: None,
            })
            .collect()
    };
    Ok(NetRequest { endpoints, expose })
}

impl NetRequest {
    /// Resolves the networks (the default bridge is created on demand),
    /// checks `container:NAME`, and fills `Config.ExposedPorts`.
    pub fn prepare(
        &mut self,
        cs: &ContainerStore,
        image: &Value,
        cfg: &mut RunConfig,
        hc: &mut HostConfig,
    ) -> Result<()> {
        if !self.endpoints.is_empty() {
            let net = Net::new(&cs.paths)?;
            for ep in &mut self.endpoints {
                let st = net.find(&ep.network)?;
                ep.network = st.name;
                if let Some(ip) = ep.ip {
                    if !st.subnet.contains(&ip) {
                        bail!("Error response from daemon: invalid endpoint settings:\nno configured subnet or ip-range contain the IP address {ip}");
                    }
                }
                if let Some(ip6) = ep.ip6 {
                    if !st.v6.is_some_and(|v| v.subnet.contains(&ip6)) {
                        bail!("Error response from daemon: invalid endpoint settings:\nno configured subnet or ip-range contain the IP address {ip6}");
                    }
                }
            }
            // The name, also when an ID (prefix) was given.
            if let Some(first) = self.endpoints.first() {
                hc.network_mode = first.network.clone();
            }
        }
        if let Some(other) = hc.network_mode.strip_prefix("container:") {
            cs.resolve(other)
                .map_err(|_| anyhow!("Error response from daemon: No such container: {other}"))?;
        }
        let mut exposed = BTreeMap::new();
        if let Some(m) = image
            .pointer("/config/ExposedPorts")
            .and_then(|v| v.as_object())
        {
            for k in m.keys() {
                let k = if k.contains('/') {
                    k.clone()
                } else {
                    format!("{k}/tcp")
                };
                exposed.insert(k, BTreeMap::new());
            }
        }
        for k in hc.port_bindings.keys().chain(self.expose.iter()) {
            exposed.insert(k.clone(), BTreeMap::new());
        }
        cfg.exposed_ports = exposed;
        Ok(())
    }

    /// Writes the container's `network.json`, unless its one network is
    /// `NetworkMode` with no settings (`endpoints::load_for`'s default).
    pub fn save(&self, cs: &ContainerStore, id: &str) -> Result<()> {
        let implicit = match self.endpoints.as_slice() {
            [] => true,
            [e] => e.ip.is_none() && e.ip6.is_none() && e.aliases.is_empty() && e.mac.is_none(),
            _ => false,
        };
        if implicit {
            return Ok(());
        }
        endpoints::save(
            cs,
            id,
            &ContainerNet {
                endpoints: self.endpoints.clone(),
                sandbox_key: None,
            },
            true,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct T {
        #[command(flatten)]
        f: CreateFlags,
    }

    fn req(args: &[&str]) -> Result<(NetRequest, HostConfig)> {
        let mut a = vec!["t"];
        a.extend_from_slice(args);
        a.push("img");
        let t = T::try_parse_from(a).expect("flags parse");
        let mut hc = HostConfig {
            network_mode: network_mode(&t.f.network),
            publish_all_ports: t.f.publish_all,
            ..Default::default()
        };
        let r = parse(&t.f, &mut hc)?;
        Ok((r, hc))
    }

    #[test]
    fn defaults_and_endpoints() {
        let (r, hc) = req(&[]).unwrap();
        assert_eq!(hc.network_mode, "bridge");
        assert_eq!(r.endpoints.len(), 1);
        let (r, _) = req(&[
            "--network",
            "a",
            "--network",
            "b",
            "--ip",
            "10.1.0.5",
            "--network-alias",
            "x",
        ])
        .unwrap();
        assert_eq!(r.endpoints.len(), 2);
        assert_eq!(r.endpoints[0].ip, Some("10.1.0.5".parse().unwrap()));
        assert_eq!(r.endpoints[0].aliases, vec!["x".to_string()]);
        assert!(r.endpoints[1].ip.is_none() && r.endpoints[1].aliases.is_empty());
        let (r, hc) = req(&["--network", "host"]).unwrap();
        assert!(r.endpoints.is_empty());
        assert_eq!(hc.network_mode, "host");
    }

    #[test]
    fn docker_conflicts() {
        let e = |a: &[&str]| req(a).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e(&["--ip", "10.0.0.2"]).contains("user defined networks only"));
        assert!(e(&["--network-alias", "x"]).contains("user defined networks"));
        assert!(e(&["--network", "host", "--network", "a"]).contains("conflicting options"));
        assert!(e(&["--network", "container:x", "-p", "80"]).contains("port publishing"));
        assert!(e(&["--mac-address", "zz"]).contains("not a valid mac address"));
        assert!(e(&["--expose", "9-8"]).contains("--expose"));
        // host mode drops ports (with docker's warning)
        let (_, hc) = req(&["--network", "host", "-p", "80:80"]).unwrap();
        assert!(hc.port_bindings.is_empty());
        let (r, hc) = req(&["-p", "8080:80", "--expose", "53/udp"]).unwrap();
        assert_eq!(hc.port_bindings["80/tcp"][0].host_port, "8080");
        assert_eq!(r.expose, vec!["53/udp".to_string()]);
    }
}
