//! docker's `NetworkSettings` of a container, and `berth port`'s lines.

use serde_json::{json, Map, Value};

use super::endpoints::{self, ContainerNet};
use crate::engine::container::{ContainerRecord, ContainerStore};

/// Every published binding as docker lists it: a port without host
/// address is `0.0.0.0` and `::` too, on a dual-stack endpoint, and on a
/// v4-only one when the host has IPv6 (the monitor relays IPv6 clients to
/// it, as docker-proxy does).
fn bindings(cn: &ContainerNet) -> Vec<(netns::PortMapping, String)> {
    // Once per process: `ps` lists every container's ports.
    static HOST6: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let host6 = *HOST6.get_or_init(|| std::path::Path::new("/proc/net/if_inet6").exists());
    let mut out = Vec::new();
    for l in cn.endpoints.iter().filter_map(|e| e.live.as_ref()) {
        for p in &l.ports {
            match p.host_ip {
                Some(h) => out.push((p.clone(), h.to_string())),
                None => {
                    out.push((p.clone(), "0.0.0.0".into()));
                    if l.ip6.is_some() || host6 {
                        out.push((p.clone(), "::".into()));
                    }
                }
            }
        }
    }
    out.sort_by_key(|(p, ip)| {
        (
            p.container_port,
            p.proto == netns::Proto::Udp,
            p.host_port,
            ip.contains(':'),
        )
    });
    out
}

/// `[::]:8080` for v6 addresses, `0.0.0.0:8080` for v4 (docker's text).
fn host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn empty_endpoint(network_id: &str, ep: Option<&endpoints::Endpoint>) -> Value {
    let aliases = ep
        .filter(|e| !e.aliases.is_empty())
        .map(|e| json!(e.aliases));
    let ipam = ep.filter(|e| e.ip.is_some() || e.ip6.is_some()).map(|e| {
        let mut m = Map::new();
        if let Some(ip) = e.ip {
            m.insert("IPv4Address".into(), json!(ip.to_string()));
        }
        if let Some(ip6) = e.ip6 {
            m.insert("IPv6Address".into(), json!(ip6.to_string()));
        }
        Value::Object(m)
    });
    json!({
        "IPAMConfig": ipam,
        "Links": null,
        "Aliases": aliases,
        "MacAddress": ep.and_then(|e| e.mac.clone()).unwrap_or_default(),
        "DriverOpts": null,
        "NetworkID": network_id,
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": null,
    })
}

/// docker's `Ports`: every exposed port, with its host bindings while the
/// container runs (null when not published).
fn ports(rec: &ContainerRecord, cn: &ContainerNet) -> Value {
    let mut m = Map::new();
    let running = cn.sandbox_key.is_some();
    if running {
        for k in rec.config.exposed_ports.keys() {
            m.insert(k.clone(), Value::Null);
        }
        for (p, ip) in bindings(cn) {
            let k = format!("{}/{}", p.container_port, p.proto);
            let e = m.entry(k).or_insert_with(|| json!([]));
            if e.is_null() {
                *e = json!([]);
            }
            if let Some(a) = e.as_array_mut() {
                a.push(json!({
                    "HostIp": ip,
                    "HostPort": p.host_port.to_string(),
                }));
            }
        }
    }
    Value::Object(m)
}

pub fn settings(cs: &ContainerStore, rec: &ContainerRecord) -> Value {
    let cn = endpoints::load_for(cs, rec).unwrap_or_default();
    let mut networks = Map::new();
    let mode = rec.host_config.network_mode.as_str();
    let mut top = json!({
        "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
    });
    match super::sandbox::mode(rec) {
        super::sandbox::Mode::Host => {
            networks.insert(
                "host".into(),
                empty_endpoint(&super::pseudo_id("host"), None),
            );
        }
        super::sandbox::Mode::None => {
            networks.insert(
                "none".into(),
                empty_endpoint(&super::pseudo_id("none"), None),
            );
        }
        super::sandbox::Mode::Container(_) => {}
        super::sandbox::Mode::Bridge => {
            for ep in &cn.endpoints {
                let v = match &ep.live {
                    Some(l) => {
                        let mut v = empty_endpoint(&l.network_id, Some(ep));
                        v["MacAddress"] = json!(l.mac);
                        v["EndpointID"] = json!(l.endpoint_id);
                        v["Gateway"] = json!(l.gateway.map(|g| g.to_string()).unwrap_or_default());
                        v["IPAddress"] = json!(l.ip.to_string());
                        v["IPPrefixLen"] = json!(l.prefix_len);
                        if let Some(a6) = l.ip6 {
                            v["GlobalIPv6Address"] = json!(a6.to_string());
                            v["GlobalIPv6PrefixLen"] = json!(l.prefix_len6);
                            v["IPv6Gateway"] =
                                json!(l.gateway6.map(|g| g.to_string()).unwrap_or_default());
                        }
                        if ep.network != super::DEFAULT {
                            let mut names = vec![rec.name.clone(), rec.id[..12].to_string()];
                            names.extend(ep.aliases.iter().cloned());
                            v["DNSNames"] = json!(names);
                        }
                        if ep.network == super::DEFAULT {
                            for k in [
                                "EndpointID",
                                "Gateway",
                                "IPAddress",
                                "IPPrefixLen",
                                "MacAddress",
                                "GlobalIPv6Address",
                                "GlobalIPv6PrefixLen",
                                "IPv6Gateway",
                            ] {
                                top[k] = v[k].clone();
                            }
                        }
                        v
                    }
                    None => {
                        let id = super::Net::new(&cs.paths)
                            .ok()
                            .and_then(|n| netns::Network::load(&n.env, &ep.network).ok())
                            .map(|s| s.id)
                            .unwrap_or_default();
                        empty_endpoint(&id, Some(ep))
                    }
                };
                networks.insert(ep.network.clone(), v);
            }
        }
    }
    let sandbox_key = cn
        .sandbox_key
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let sandbox_id = if cn.sandbox_key.is_some() {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            format!("sandbox/{}", rec.id).as_bytes(),
        ))
    } else {
        String::new()
    };
    let _ = mode;
    let mut out = json!({
        "Bridge": "",
        "SandboxID": sandbox_id,
        "SandboxKey": sandbox_key,
        "Ports": ports(rec, &cn),
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
    });
    if let (Some(o), Some(t)) = (out.as_object_mut(), top.as_object()) {
        for (k, v) in t {
            o.insert(k.clone(), v.clone());
        }
        o.insert("Networks".into(), Value::Object(networks));
    }
    out
}

/// `berth port` lines: `80/tcp -> 0.0.0.0:8080`, sorted like docker's.
pub fn port_lines(
    cs: &ContainerStore,
    id: &str,
    filter: Option<(u16, netns::Proto)>,
) -> Vec<String> {
    let cn = endpoints::load(cs, id).unwrap_or_default();
    bindings(&cn)
        .iter()
        .filter(|(p, _)| {
            filter.is_none_or(|(port, proto)| p.container_port == port && p.proto == proto)
        })
        .map(|(p, ip)| {
            let hp = host_port(ip, p.host_port);
            if filter.is_some() {
                hp
            } else {
                format!("{}/{} -> {hp}", p.container_port, p.proto)
            }
        })
        .collect()
}

/// `ps`'s NETWORKS and PORTS columns, from one read of `network.json`.
pub fn ps_columns(cs: &ContainerStore, rec: &ContainerRecord) -> (String, String) {
    match endpoints::load_for(cs, rec) {
        Ok(cn) => (ps_networks(&cn, rec), ps_ports(&cn, rec)),
        Err(_) => (rec.host_config.network_mode.clone(), String::new()),
    }
}

/// PORTS: `0.0.0.0:8080->80/tcp, 443/tcp` (published while running,
/// exposed only otherwise), as docker shows it.
fn ps_ports(cn: &ContainerNet, rec: &ContainerRecord) -> String {
    let published = cn.ports();
    let mut out: Vec<String> = bindings(cn)
        .iter()
        .map(|(p, ip)| {
            format!(
                "{}->{}/{}",
                host_port(ip, p.host_port),
                p.container_port,
                p.proto
            )
        })
        .collect();
    if cn.sandbox_key.is_some() {
        for k in rec.config.exposed_ports.keys() {
            let bound = super::ports::parse_key(k).is_some_and(|(port, proto)| {
                published
                    .iter()
                    .any(|p| p.container_port == port && p.proto == proto)
            });
            if !bound {
                out.push(k.clone());
            }
        }
    }
    out.join(", ")
}

/// `ps`'s NETWORKS column: the container's networks, comma-separated.
fn ps_networks(cn: &ContainerNet, rec: &ContainerRecord) -> String {
    if cn.endpoints.is_empty() {
        return rec.host_config.network_mode.clone();
    }
    cn.endpoints
        .iter()
        .map(|e| e.network.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
