//! docker's legacy `--link` environment: `<ALIAS>_PORT`,
//! `<ALIAS>_PORT_<n>_<PROTO>{,_ADDR,_PORT,_PROTO}`, `_START`/`_END` for
//! consecutive ports, `<ALIAS>_NAME` and `<ALIAS>_ENV_*` (the linked
//! container's own environment), added at start to the process of a
//! container on the default bridge. The container's own `-e` values win,
//! as in docker (`ReplaceOrAppendEnvValues`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::Result;
use oci_spec::runtime::Spec;

use crate::engine::container::{ContainerRecord, ContainerStore};

/// One exposed port of the linked container (`80/tcp`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    num: u32,
    proto: String,
}

/// TCP first, then by protocol name; within a protocol by number.
fn tcp_first(a: &Port, b: &Port) -> std::cmp::Ordering {
    if a.proto == b.proto {
        return a.num.cmp(&b.num);
    }
    match (a.proto.as_str(), b.proto.as_str()) {
        ("tcp", _) => std::cmp::Ordering::Less,
        (_, "tcp") => std::cmp::Ordering::Greater,
        _ => a.proto.cmp(&b.proto),
    }
}

fn parse_ports(exposed: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Port> {
    let mut out: Vec<Port> = exposed
        .keys()
        .filter_map(|k| {
            let (n, p) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
            Some(Port {
                num: n.parse().ok()?,
                proto: p.to_ascii_lowercase(),
            })
        })
        .collect();
    out.sort_by(tcp_first);
    out
}

/// The variables for one link. `link_name` is docker's `/<parent>/<alias>`.
pub fn vars(
    link_name: &str,
    child_ip: Ipv4Addr,
    child_env: &[String],
    exposed: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<String> {
    let last = link_name.rsplit('/').next().unwrap_or(link_name);
    let alias = last.to_ascii_uppercase().replace('-', "_");
    let ports = parse_ports(exposed);
    let mut env = Vec::new();
    let prefix = |p: &Port| format!("{alias}_PORT_{}_{}", p.num, p.proto.to_ascii_uppercase());
    let mut range: Option<(usize, usize)> = None;
    for (i, p) in ports.iter().enumerate() {
        if i == 0 {
            env.push(format!("{alias}_PORT={}://{child_ip}:{}", p.proto, p.num));
        }
        let pre = prefix(p);
        env.push(format!("{pre}={}://{child_ip}:{}", p.proto, p.num));
        env.push(format!("{pre}_ADDR={child_ip}"));
        env.push(format!("{pre}_PORT={}", p.num));
        env.push(format!("{pre}_PROTO={}", p.proto));
        // A run of consecutive ports of one protocol also gets _START/_END
        // under its first port's prefix, once the run ends.
        let (start, end) = range.unwrap_or((i, i));
        let joins = i > 0 && p.proto == ports[end].proto && p.num == ports[end].num + 1;
        if joins && i + 1 < ports.len() {
            range = Some((start, i));
            continue;
        }
        let (s, e) = if joins { (start, i) } else { (start, end) };
        if s != e {
            let (ps, pe) = (&ports[s], &ports[e]);
            let pre = prefix(ps);
            env.push(format!("{pre}_START={}://{child_ip}:{}", ps.proto, ps.num));
            env.push(format!("{pre}_PORT_START={}", ps.num));
            env.push(format!("{pre}_END={}://{child_ip}:{}", pe.proto, pe.num));
            env.push(format!("{pre}_PORT_END={}", pe.num));
        }
        range = Some((i, i));
    }
    env.push(format!("{alias}_NAME={link_name}"));
    for v in child_env {
        let Some((k, val)) = v.split_once('=') else {
            continue;
        };
        // docker leaves out what image builds set for every container
        if k == "HOME" || k == "PATH" {
            continue;
        }
        env.push(format!("{alias}_ENV_{k}={val}"));
    }
    env
}

/// Adds every link's variables to the spec's process environment; the
/// container's own values win.
pub fn apply(cs: &ContainerStore, rec: &ContainerRecord, mut spec: Spec) -> Result<Spec> {
    if rec.host_config.links.is_empty() {
        return Ok(spec);
    }
    let mut add = Vec::new();
    for l in &rec.host_config.links {
        let (name, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
        let (child, ip) = super::etc::link_target(cs, name)?;
        let link_name = format!("/{}/{alias}", rec.name);
        add.extend(vars(
            &link_name,
            ip,
            &child.config.env,
            &child.config.exposed_ports,
        ));
    }
    let Some(process) = spec.process_mut() else {
        return Ok(spec);
    };
    let mut env = process.env().clone().unwrap_or_default();
    // The container's own values (docker's defaults and Config.Env, already
    // in the spec) replace link values of the same name.
    let mut seen: std::collections::HashSet<String> = env
        .iter()
        .map(|v| v.split('=').next().unwrap_or(v).to_string())
        .collect();
    for v in add {
        let k = v.split('=').next().unwrap_or(&v).to_string();
        if seen.insert(k) {
            env.push(v);
        }
    }
    process.set_env(Some(env));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(list: &[&str]) -> BTreeMap<String, BTreeMap<String, String>> {
        list.iter()
            .map(|p| (p.to_string(), BTreeMap::new()))
            .collect()
    }

    #[test]
    fn one_port_name_and_env() {
        let ip: Ipv4Addr = "172.17.0.2".parse().unwrap();
        let env = vec!["PATH=/bin".into(), "PASS=x=y".into(), "HOME=/root".into()];
        let v = vars("/web/my-db", ip, &env, &ports(&["5432/tcp"]));
        assert_eq!(
            v,
            [
                "MY_DB_PORT=tcp://172.17.0.2:5432",
                "MY_DB_PORT_5432_TCP=tcp://172.17.0.2:5432",
                "MY_DB_PORT_5432_TCP_ADDR=172.17.0.2",
                "MY_DB_PORT_5432_TCP_PORT=5432",
                "MY_DB_PORT_5432_TCP_PROTO=tcp",
                "MY_DB_NAME=/web/my-db",
                "MY_DB_ENV_PASS=x=y",
            ]
        );
    }

    #[test]
    fn tcp_first_and_ranges() {
        let ip: Ipv4Addr = "10.0.0.3".parse().unwrap();
        let v = vars(
            "/a/b",
            ip,
            &[],
            &ports(&["53/udp", "8081/tcp", "8080/tcp", "9000/tcp"]),
        );
        assert_eq!(v[0], "B_PORT=tcp://10.0.0.3:8080");
        let starts: Vec<&String> = v
            .iter()
            .filter(|s| s.contains("START") || s.contains("END"))
            .collect();
        assert_eq!(
            starts,
            [
                "B_PORT_8080_TCP_START=tcp://10.0.0.3:8080",
                "B_PORT_8080_TCP_PORT_START=8080",
                "B_PORT_8080_TCP_END=tcp://10.0.0.3:8081",
                "B_PORT_8080_TCP_PORT_END=8081",
            ]
        );
        // udp after every tcp port
        let pos = |s: &str| v.iter().position(|x| x == s).unwrap();
        assert!(pos("B_PORT_9000_TCP_PROTO=tcp") < pos("B_PORT_53_UDP_PROTO=udp"));
        assert_eq!(v.last().unwrap(), "B_NAME=/a/b");
    }

    #[test]
    fn range_at_the_end() {
        let ip: Ipv4Addr = "10.0.0.3".parse().unwrap();
        let v = vars(
            "/a/b",
            ip,
            &[],
            &ports(&["1/tcp", "5/tcp", "6/tcp", "7/tcp"]),
        );
        assert!(
            v.contains(&"B_PORT_5_TCP_PORT_START=5".to_string()),
            "{v:?}"
        );
        assert!(v.contains(&"B_PORT_5_TCP_PORT_END=7".to_string()), "{v:?}");
        assert!(
            !v.iter().any(|s| s.starts_with("B_PORT_1_TCP_PORT_START")),
            "{v:?}"
        );
    }
}
