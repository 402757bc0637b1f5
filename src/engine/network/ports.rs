//! `-p/--publish` in docker's syntax (`[ip:][hostPort:]containerPort[/proto]`
//! with ranges) into docker's `PortBindings`, and those plus `-P` into the
//! `netns` mappings a start publishes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};

use crate::engine::container::model::PortBinding;

fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let a: u16 = a.parse().ok()?;
    let b: u16 = b.parse().ok()?;
    (a <= b).then_some((a, b))
}

/// One `-p` value into `("80/tcp", binding)` pairs, one per port.
pub fn parse_publish(spec: &str) -> Result<Vec<(String, PortBinding)>> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p),
        None => (spec, "tcp"),
    };
    if proto != "tcp" && proto != "udp" {
        bail!("invalid argument \"{spec}\" for \"-p, --publish\" flag: invalid proto: {proto}");
    }
    // docker's splitParts: the last two fields are the ports, everything
    // before them the address, so `[::1]:8080:80` and `::1:8080:80` both
    // name ::1 (brackets trimmed).
    let parts: Vec<&str> = rest.split(':').collect();
    let joined;
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [i, h, c] => (*i, *h, *c),
        [head @ .., h, c] => {
            joined = head.join(":");
            (joined.as_str(), *h, *c)
        }
        [] => bail!(
            "invalid argument \"{spec}\" for \"-p, --publish\" flag: Invalid hostPort: {rest}"
        ),
    };
    let ip = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    let ip_text = match ip.parse::<IpAddr>() {
        Ok(a) => a.to_string(),
        Err(_) if ip.is_empty() => String::new(),
        Err(_) => bail!(
            "invalid argument \"{spec}\" for \"-p, --publish\" flag: Invalid ip address: {ip}"
        ),
    };
    let ip = ip_text.as_str();
    if ctr.is_empty() {
        bail!("invalid argument \"{spec}\" for \"-p, --publish\" flag: No port specified: {spec}<empty>");
    }
    let (c0, c1) = parse_range(ctr).filter(|(a, _)| *a > 0).ok_or_else(|| {
        anyhow!(
            "invalid argument \"{spec}\" for \"-p, --publish\" flag: Invalid containerPort: {ctr}"
        )
    })?;
    let hosts = if host.is_empty() {
        None
    } else {
        Some(parse_range(host).ok_or_else(|| {
            anyhow!(
                "invalid argument \"{spec}\" for \"-p, --publish\" flag: Invalid hostPort: {host}"
            )
        })?)
    };
    let n = c1 - c0;
    if let Some((h0, h1)) = hosts {
        if h1 - h0 != n {
            if n == 0 {
                // docker keeps "8000-8010" as the HostPort; the start takes
                // the first free port of it.
                return Ok(vec![(
                    format!("{c0}/{proto}"),
                    PortBinding {
                        host_ip: ip.to_string(),
                        host_port: host.to_string(),
                    },
                )]);
            }
            bail!("invalid argument \"{spec}\" for \"-p, --publish\" flag: Invalid ranges specified for container and host Ports: {ctr} and {host}");
        }
    }
    Ok((0..=n)
        .map(|i| {
            (
                format!("{}/{proto}", c0 + i),
                PortBinding {
                    host_ip: ip.to_string(),
                    host_port: hosts
                        .map(|(h0, _)| (h0 + i).to_string())
                        .unwrap_or_default(),
                },
            )
        })
        .collect())
}

/// `"80/tcp"` into port and protocol.
pub fn parse_key(k: &str) -> Option<(u16, netns::Proto)> {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    let proto = match proto {
        "tcp" => netns::Proto::Tcp,
        "udp" => netns::Proto::Udp,
        _ => return None,
    };
    Some((p.parse().ok()?, proto))
}

/// What a start publishes: the bindings, plus (`-P`) every exposed port
/// not bound explicitly on a random host port.
pub fn mappings(
    bindings: &BTreeMap<String, Vec<PortBinding>>,
    publish_all: bool,
    exposed: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<Vec<netns::PortMapping>> {
    let mut out = Vec::new();
    for (k, bs) in bindings {
        let (port, proto) = parse_key(k).ok_or_else(|| anyhow!("invalid port binding key {k}"))?;
        for b in bs {
            let host_ip = if b.host_ip.is_empty() {
                None
            } else {
                Some(
                    b.host_ip
                        .parse()
                        .map_err(|_| anyhow!("Invalid ip address: {}", b.host_ip))?,
                )
            };
            let (host_port, host_port_end) = if b.host_port.is_empty() {
                (0, 0)
            } else {
                let (a, z) = parse_range(&b.host_port)
                    .ok_or_else(|| anyhow!("Invalid hostPort: {}", b.host_port))?;
                (a, if z > a { z } else { 0 })
            };
            out.push(netns::PortMapping {
                host_ip,
                host_port,
                container_port: port,
                proto,
                host_port_end,
            });
        }
    }
    if publish_all {
        for k in exposed.keys() {
            if bindings.contains_key(k) {
                continue;
            }
            // Exposed sctp ports and other protocols cannot be published here.
            if let Some((port, proto)) = parse_key(k) {
                out.push(netns::PortMapping {
                    host_ip: None,
                    host_port: 0,
                    container_port: port,
                    proto,
                    host_port_end: 0,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Vec<(String, String, String)> {
        parse_publish(s)
            .unwrap()
            .into_iter()
            .map(|(k, b)| (k, b.host_ip, b.host_port))
            .collect()
    }

    #[test]
    fn every_docker_form() {
        assert_eq!(one("80"), vec![("80/tcp".into(), "".into(), "".into())]);
        assert_eq!(
            one("8080:80"),
            vec![("80/tcp".into(), "".into(), "8080".into())]
        );
        assert_eq!(
            one("127.0.0.1:8080:80/udp"),
            vec![("80/udp".into(), "127.0.0.1".into(), "8080".into())]
        );
        assert_eq!(
            one("127.0.0.1::80"),
            vec![("80/tcp".into(), "127.0.0.1".into(), "".into())]
        );
        assert_eq!(
            one("9090-9091:8080-8081"),
            vec![
                ("8080/tcp".into(), "".into(), "9090".into()),
                ("8081/tcp".into(), "".into(), "9091".into())
            ]
        );
        assert_eq!(one("80-81").len(), 2);
        assert!(parse_publish("x:80").is_err());
        assert!(parse_publish("1.2.3:80:80").is_err());
        assert!(parse_publish("80/sctp").is_err());
        assert!(parse_publish("9090-9092:80-81").is_err());
        // docker: one container port, a host range kept whole
        assert_eq!(
            one("127.0.0.1:8000-8010:80"),
            vec![("80/tcp".into(), "127.0.0.1".into(), "8000-8010".into())]
        );
        assert!(parse_publish("8080:").is_err());
        assert!(parse_publish("0").is_err());
    }

    #[test]
    fn ipv6_host_addresses() {
        assert_eq!(
            one("[::1]:8080:80"),
            vec![("80/tcp".into(), "::1".into(), "8080".into())]
        );
        assert_eq!(
            one("[::]:8080:80/udp"),
            vec![("80/udp".into(), "::".into(), "8080".into())]
        );
        assert_eq!(
            one("[fd00:0::2]::80"),
            vec![("80/tcp".into(), "fd00::2".into(), "".into())]
        );
        assert_eq!(one("[::1]:9090-9091:80-81").len(), 2);
        // docker accepts the address without brackets too
        assert_eq!(
            one("::1:8080:80"),
            vec![("80/tcp".into(), "::1".into(), "8080".into())]
        );
        assert!(parse_publish("[::1]:80").is_err());
        assert!(parse_publish("[::1:8080:80").is_err());
        assert!(parse_publish("[zz::1]:8080:80").is_err());
        assert!(parse_publish("[::1]8080:80").is_err());
        let b = BTreeMap::from([(
            "80/tcp".to_string(),
            vec![PortBinding {
                host_ip: "::1".into(),
                host_port: "8080".into(),
            }],
        )]);
        let m = mappings(&b, false, &BTreeMap::new()).unwrap();
        assert_eq!(m[0].host_ip, Some("::1".parse().unwrap()));
    }

    #[test]
    fn publish_all_adds_unbound_exposed_ports() {
        let mut b = BTreeMap::new();
        b.insert(
            "80/tcp".to_string(),
            vec![PortBinding {
                host_ip: "".into(),
                host_port: "8080".into(),
            }],
        );
        let mut e = BTreeMap::new();
        e.insert("80/tcp".to_string(), BTreeMap::new());
        e.insert("53/udp".to_string(), BTreeMap::new());
        let m = mappings(&b, true, &e).unwrap();
        assert_eq!(m.len(), 2);
        assert!(m
            .iter()
            .any(|p| p.container_port == 53 && p.host_port == 0 && p.proto == netns::Proto::Udp));
        assert!(m
            .iter()
            .any(|p| p.container_port == 80 && p.host_port == 8080));
        assert_eq!(mappings(&b, false, &e).unwrap().len(), 1);
    }
}
