//! The `network` commands' engine side: create, inspect, rm, prune,
//! connect, disconnect.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{anyhow, bail, Result};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netns::{NetworkConfig, NetworkState};
use serde_json::{json, Map, Value};

use super::{endpoints, meta, sandbox, Net, DEFAULT, PSEUDO};
use crate::engine::container::{liveness, ContainerStore};

/// What `network create` was given.
#[derive(Debug, Default)]
pub struct CreateRequest {
    pub name: String,
    pub driver: String,
    /// `--subnet`, `--gateway`, `--ip-range`: at most one of each per
    /// family (docker pairs them by family too).
    pub subnet: Vec<String>,
    pub gateway: Vec<String>,
    pub ip_range: Vec<String>,
    /// `--ipv6`.
    pub ipv6: bool,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

fn daemon(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("Error response from daemon: {e}")
}

pub fn create(net: &Net, r: &CreateRequest) -> Result<NetworkState> {
    if r.driver != "bridge" {
        bail!(
            "Error response from daemon: plugin \"{}\" not found: berth has only the bridge driver",
            r.driver
        );
    }
    if PSEUDO.contains(&r.name.as_str()) || r.name == DEFAULT {
        bail!(
            "Error response from daemon: network with name {} already exists",
            r.name
        );
    }
    let f = by_family(r)?;
    if !r.ipv6 && (f.subnet6.is_some() || f.gateway6.is_some() || f.ip_range6.is_some()) {
        bail!("Error response from daemon: IPv6 subnet, gateway or ip-range given without --ipv6: add --ipv6 to create a dual-stack network");
    }
    if (f.gateway.is_some() || f.ip_range.is_some()) && f.subnet.is_none() {
        bail!("Error response from daemon: invalid pool request: a --gateway or --ip-range needs a --subnet");
    }
    if (f.gateway6.is_some() || f.ip_range6.is_some()) && f.subnet6.is_none() {
        bail!("Error response from daemon: invalid pool request: an IPv6 --gateway or --ip-range needs an IPv6 --subnet");
    }
    let mut mtu = None;
    let mut bridge = None;
    for (k, v) in &r.options {
        match k.as_str() {
            "com.docker.network.bridge.name" => bridge = Some(v.clone()),
            "com.docker.network.driver.mtu" => {
                mtu = Some(v.parse::<u32>().map_err(|_| daemon(format!("invalid MTU {v}")))?)
            }
            _ => bail!("Error response from daemon: option {k} is not supported by berth's bridge driver (supported: com.docker.network.bridge.name, com.docker.network.driver.mtu)"),
        }
    }
    let cfg = NetworkConfig {
        name: r.name.clone(),
        bridge,
        subnet: f.subnet,
        gateway: f.gateway,
        ip_range: f.ip_range,
        internal: r.internal,
        mtu,
        labels: r.labels.clone(),
        ipv6: r.ipv6,
        subnet6: f.subnet6,
        gateway6: f.gateway6,
        ip_range6: f.ip_range6,
    };
    let st = netns::Network::create(&net.env, &cfg).map_err(daemon)?;
    meta::write(net, &st, &r.options)?;
    Ok(st)
}

/// `--subnet` / `--gateway` / `--ip-range` sorted by family.
#[derive(Debug, Default, PartialEq)]
struct Families {
    subnet: Option<Ipv4Net>,
    gateway: Option<Ipv4Addr>,
    ip_range: Option<Ipv4Net>,
    subnet6: Option<Ipv6Net>,
    gateway6: Option<Ipv6Addr>,
    ip_range6: Option<Ipv6Net>,
}

fn by_family(r: &CreateRequest) -> Result<Families> {
    let mut f = Families::default();
    let once = |what: &str, v6: bool| {
        daemon(format!(
            "berth networks have one {} pool: give {what} once per address family",
            if v6 { "IPv6" } else { "IPv4" }
        ))
    };
    for (what, list) in [("--subnet", &r.subnet), ("--ip-range", &r.ip_range)] {
        for v in list {
            let n: IpNet = v.parse().map_err(|_| {
                daemon(format!(
                    "invalid {}: {v}: use a CIDR such as 10.1.0.0/16 or fd12:3456::/64",
                    &what[2..]
                ))
            })?;
            let slot = match (what, n) {
                ("--subnet", IpNet::V4(n)) => f.subnet.replace(n).is_some(),
                ("--subnet", IpNet::V6(n)) => f.subnet6.replace(n).is_some(),
                (_, IpNet::V4(n)) => f.ip_range.replace(n).is_some(),
                (_, IpNet::V6(n)) => f.ip_range6.replace(n).is_some(),
            };
            if slot {
                return Err(once(what, n.addr().is_ipv6()));
            }
        }
    }
    for g in &r.gateway {
        let a: IpAddr = g
            .parse()
            .map_err(|_| daemon(format!("invalid gateway address {g}")))?;
        let dup = match a {
            IpAddr::V4(a) => f.gateway.replace(a).is_some(),
            IpAddr::V6(a) => f.gateway6.replace(a).is_some(),
        };
        if dup {
            return Err(once("--gateway", a.is_ipv6()));
        }
    }
    Ok(f)
}

/// docker's `network inspect` object of a bridge network.
pub fn to_json(cs: &ContainerStore, net: &Net, st: &NetworkState) -> Value {
    let m = meta::read(net, &st.id);
    let mut containers = Map::new();
    for (id, l) in &st.leases {
        let name = cs.load(id).map(|r| r.name).unwrap_or_default();
        let eid = cs
            .dir(id)
            .exists()
            .then(|| endpoints::load(cs, id).ok())
            .flatten()
            .and_then(|n| n.endpoint(&st.name).and_then(|e| e.live.clone()))
            .map(|l| l.endpoint_id)
            .unwrap_or_default();
        containers.insert(
            id.clone(),
            json!({
                "Name": name,
                "EndpointID": eid,
                "MacAddress": netns::format_mac(&l.mac),
                "IPv4Address": format!("{}/{}", l.ip, st.subnet.prefix_len()),
                "IPv6Address": match (l.ip6, st.v6) {
                    (Some(a), Some(v)) => format!("{a}/{}", v.subnet.prefix_len()),
                    _ => String::new(),
                },
            }),
        );
    }
    let mut ipam = json!({"Subnet": st.subnet.to_string(), "Gateway": st.gateway.to_string()});
    if let Some(r) = st.ip_range {
        ipam["IPRange"] = json!(r.to_string());
    }
    let mut ipam_config = vec![ipam];
    if let Some(v6) = st.v6 {
        let mut c = json!({"Subnet": v6.subnet.to_string(), "Gateway": v6.gateway.to_string()});
        if let Some(r) = v6.ip_range {
            c["IPRange"] = json!(r.to_string());
        }
        ipam_config.push(c);
    }
    let mut options = m.options.clone();
    if st.name == DEFAULT {
        options.insert(
            "com.docker.network.bridge.default_bridge".into(),
            "true".into(),
        );
        options.insert("com.docker.network.bridge.name".into(), st.bridge.clone());
    }
    json!({
        "Name": st.name,
        "Id": st.id,
        "Created": m.created.map(|c| c.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv4": true,
        "EnableIPv6": st.v6.is_some(),
        "IPAM": {"Driver": "default", "Options": null, "Config": ipam_config},
        "Internal": st.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": st.labels,
    })
}

/// `host` and `none` as docker shows them.
pub fn pseudo_json(name: &str) -> Value {
    json!({
        "Name": name,
        "Id": super::pseudo_id(name),
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": if name == "none" { "null" } else { "host" },
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": {},
        "Options": {},
        "Labels": {},
    })
}

/// Every network (the default bridge created on demand), sorted by name.
pub fn list_all(cs: &ContainerStore, net: &Net) -> Result<Vec<Value>> {
    net.ensure_default()?;
    let mut v: Vec<Value> = netns::list(&net.env)?
        .iter()
        .map(|s| to_json(cs, net, s))
        .collect();
    v.extend(PSEUDO.iter().map(|n| pseudo_json(n)));
    v.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    Ok(v)
}

pub fn inspect_one(cs: &ContainerStore, net: &Net, input: &str) -> Result<Value> {
    if let Some(p) = PSEUDO
        .iter()
        .find(|p| **p == input || super::pseudo_id(p) == input)
    {
        return Ok(pseudo_json(p));
    }
    Ok(to_json(cs, net, &net.find(input)?))
}

/// `network rm`: refused for predefined networks and while in use.
pub fn remove(net: &Net, input: &str) -> Result<()> {
    if PSEUDO.contains(&input) || input == DEFAULT {
        bail!("Error response from daemon: {input} is a pre-defined network and cannot be removed");
    }
    let st = net.find(input)?;
    if st.name == DEFAULT {
        bail!("Error response from daemon: {input} is a pre-defined network and cannot be removed");
    }
    netns::Network::delete(&net.env, &st.name).map_err(daemon)?;
    meta::remove(net, &st.id);
    Ok(())
}

/// `network prune`: leftovers of killed monitors first, then every
/// user-defined network without containers. Their names.
pub fn prune(cs: &ContainerStore, net: &Net) -> Result<Vec<String>> {
    sandbox::cleanup_orphans(cs)?;
    let mut out = Vec::new();
    for st in netns::list(&net.env)? {
        if st.name == DEFAULT || !st.leases.is_empty() {
            continue;
        }
        match netns::Network::delete(&net.env, &st.name) {
            Ok(()) => {
                meta::remove(net, &st.id);
                out.push(st.name);
            }
            // Someone attached meanwhile: in use, so not pruned.
            Err(netns::Error::NetworkInUse { .. }) => {}
            Err(e) => return Err(daemon(e)),
        }
    }
    Ok(out)
}

fn check_bridge_mode(
    cs: &ContainerStore,
    id: &str,
) -> Result<crate::engine::container::ContainerRecord> {
    let rec = cs.load(id)?;
    match sandbox::mode(&rec) {
        sandbox::Mode::Bridge => Ok(rec),
        sandbox::Mode::Host => bail!("Error response from daemon: container cannot be disconnected from host network or connected to host network"),
        _ => bail!("Error response from daemon: container sharing network namespace with another container or host cannot be connected to any other network"),
    }
}

/// `network connect [--ip] [--alias] NETWORK CONTAINER`.
pub fn connect(
    cs: &ContainerStore,
    net: &Net,
    network: &str,
    container: &str,
    ip: Option<Ipv4Addr>,
    ip6: Option<Ipv6Addr>,
    aliases: Vec<String>,
) -> Result<()> {
    if PSEUDO.contains(&network) {
        bail!("Error response from daemon: container cannot be disconnected from host network or connected to host network");
    }
    let st = net.find(network)?;
    let id = cs.resolve(container)?;
    let rec = check_bridge_mode(cs, &id)?;
    if st.name == DEFAULT && (ip.is_some() || ip6.is_some() || !aliases.is_empty()) {
        bail!("Error response from daemon: user specified IP address is supported on user defined networks only");
    }
    endpoints::update(cs, &id, true, |n| {
        endpoints::materialize(n, &rec);
        if n.endpoint(&st.name).is_some() {
            bail!(
                "Error response from daemon: endpoint with name {} already exists in network {}",
                rec.name,
                st.name
            );
        }
        n.endpoints.push(endpoints::Endpoint {
            network: st.name.clone(),
            ip,
            ip6,
            aliases: aliases.clone(),
            ..Default::default()
        });
        Ok(())
    })?;
    if !liveness::current(cs, &id)?.running() {
        return Ok(());
    }
    let n = endpoints::load(cs, &id)?;
    let used: Vec<String> = n
        .endpoints
        .iter()
        .filter_map(|e| e.live.as_ref().map(|l| l.ifname.clone()))
        .collect();
    let ifname = (0..)
        .map(|i| format!("eth{i}"))
        .find(|c| !used.contains(c))
        .unwrap_or_else(|| "eth9".into());
    if let Err(e) = sandbox::attach_one(cs, net, &rec, &st.name, &ifname, vec![]) {
        let _ = endpoints::update(cs, &id, true, |n| {
            n.endpoints.retain(|e| e.network != st.name);
            Ok(())
        });
        return Err(e);
    }
    if let Some(l) = endpoints::load(cs, &id)?
        .endpoint(&st.name)
        .and_then(|e| e.live.as_ref())
    {
        super::hosts_live::add(cs, &rec, l.ip.into())?;
        if let Some(a6) = l.ip6 {
            super::hosts_live::add(cs, &rec, a6.into())?;
        }
    }
    if st.name != DEFAULT {
        crate::engine::dns::ensure_running(&net.paths.root)?;
    }
    Ok(())
}

/// `network disconnect NETWORK CONTAINER`.
pub fn disconnect(
    cs: &ContainerStore,
    net: &Net,
    network: &str,
    container: &str,
    force: bool,
) -> Result<()> {
    if PSEUDO.contains(&network) {
        bail!("Error response from daemon: container cannot be disconnected from host network or connected to host network");
    }
    let st = net.find(network)?;
    let id = match cs.resolve(container) {
        Ok(id) => id,
        // -f: drop a lease whose container is gone.
        Err(_) if force => {
            netns::detach(&net.env, &st.name, container).map_err(daemon)?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let rec = check_bridge_mode(cs, &id)?;
    let n = endpoints::load_for(cs, &rec)?;
    if n.endpoint(&st.name).is_none() && !st.leases.contains_key(&id) {
        bail!(
            "Error response from daemon: container {id} is not connected to network {}",
            st.name
        );
    }
    netns::detach(&net.env, &st.name, &id).map_err(daemon)?;
    let live_ip = n
        .endpoint(&st.name)
        .and_then(|e| e.live.as_ref())
        .map(|l| (l.ip, l.ip6));
    endpoints::update(cs, &id, true, |n| {
        endpoints::materialize(n, &rec);
        n.endpoints.retain(|e| e.network != st.name);
        Ok(())
    })?;
    if let Some((ip, ip6)) = live_ip {
        if liveness::current(cs, &id)?.running() {
            super::hosts_live::remove(cs, &rec, ip.into())?;
            if let Some(a6) = ip6 {
                super::hosts_live::remove(cs, &rec, a6.into())?;
            }
        }
    }
    Ok(())
}
