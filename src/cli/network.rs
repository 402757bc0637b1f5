//! `berth network ...` and `berth port`.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use super::format::{render_inspect, render_list, ListFormat};
use super::network_args::*;
use super::{Ctx, Reported};
use crate::engine::container::ContainerStore;
use crate::engine::network::{ops, Net};

const LS_TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

fn setup(ctx: &Ctx) -> Result<(ContainerStore, Net)> {
    let paths = ctx.paths();
    Ok((ContainerStore::new(paths.clone()), Net::new(&paths)?))
}

pub fn dispatch(ctx: &Ctx, c: NetworkCommand) -> Result<()> {
    match c {
        NetworkCommand::Create(a) => create(ctx, a),
        NetworkCommand::Ls(a) => ls(ctx, a),
        NetworkCommand::Inspect(a) => inspect(ctx, a),
        NetworkCommand::Rm(a) => rm(ctx, a),
        NetworkCommand::Prune(a) => prune(ctx, a),
        NetworkCommand::Connect(a) => {
            let (cs, net) = setup(ctx)?;
            let ip =
                a.ip.as_deref()
                    .map(|s| {
                        s.parse().map_err(|_| {
                            anyhow!(
                            "invalid argument \"{s}\" for \"--ip\" flag: invalid IPv4 address: {s}"
                        )
                        })
                    })
                    .transpose()?;
            let ip6 = a
                .ip6
                .as_deref()
                .map(|s| {
                    s.parse().map_err(|_| {
                        anyhow!("invalid argument \"{s}\" for \"--ip6\" flag: invalid IPv6 address: {s}")
                    })
                })
                .transpose()?;
            ops::connect(&cs, &net, &a.network, &a.container, ip, ip6, a.alias)
        }
        NetworkCommand::Disconnect(a) => {
            let (cs, net) = setup(ctx)?;
            ops::disconnect(&cs, &net, &a.network, &a.container, a.force)
        }
    }
}

fn kv(items: &[String], flag: &str) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for s in items {
        match s.split_once('=') {
            Some((k, v)) => m.insert(k.to_string(), v.to_string()),
            None if flag == "label" => m.insert(s.clone(), String::new()),
            None => bail!("invalid argument \"{s}\" for \"-o, --opt\" flag: opt must be in the format KEY=VALUE"),
        };
    }
    Ok(m)
}

fn create(ctx: &Ctx, a: NetCreateArgs) -> Result<()> {
    let (_, net) = setup(ctx)?;
    let req = ops::CreateRequest {
        name: a.name,
        driver: a.driver,
        subnet: a.subnet,
        gateway: a.gateway,
        ip_range: a.ip_range,
        ipv6: a.ipv6,
        internal: a.internal,
        labels: kv(&a.label, "label")?,
        options: kv(&a.opt, "opt")?,
    };
    let st = ops::create(&net, &req)?;
    println!("{}", st.id);
    Ok(())
}

struct Filters(Vec<(String, String)>);

impl Filters {
    fn parse(v: &[String]) -> Result<Filters> {
        let mut out = Vec::new();
        for f in v {
            let (k, val) = f
                .split_once('=')
                .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
            if !matches!(
                k,
                "name" | "id" | "driver" | "label" | "type" | "scope" | "dangling"
            ) {
                bail!("Error response from daemon: invalid filter '{k}'");
            }
            out.push((k.to_string(), val.to_string()));
        }
        Ok(Filters(out))
    }

    /// docker: different keys AND, the same key OR.
    fn matches(&self, n: &Value) -> bool {
        let mut keys: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        keys.dedup();
        keys.iter().all(|key| {
            self.0.iter().filter(|(k, _)| k == key).any(|(_, v)| {
                let s = |f: &str| n[f].as_str().unwrap_or("").to_string();
                match *key {
                    "name" => s("Name").contains(v.as_str()),
                    "id" => s("Id").starts_with(v.as_str()),
                    "driver" => s("Driver") == *v,
                    "scope" => s("Scope") == *v,
                    "type" => {
                        let builtin = matches!(s("Name").as_str(), "bridge" | "host" | "none");
                        (v == "builtin" && builtin) || (v == "custom" && !builtin)
                    }
                    "dangling" => {
                        let builtin = matches!(s("Name").as_str(), "bridge" | "host" | "none");
                        let unused = n["Containers"].as_object().is_none_or(|c| c.is_empty());
                        (v == "true") == (unused && !builtin)
                    }
                    "label" => {
                        let (lk, lv) = match v.split_once('=') {
                            Some((a, b)) => (a, Some(b)),
                            None => (v.as_str(), None),
                        };
                        match n["Labels"].get(lk) {
                            Some(x) => lv.is_none_or(|lv| x.as_str() == Some(lv)),
                            None => false,
                        }
                    }
                    _ => false,
                }
            })
        })
    }
}

fn ls(ctx: &Ctx, a: NetLsArgs) -> Result<()> {
    let (cs, net) = setup(ctx)?;
    let f = Filters::parse(&a.filter)?;
    let rows: Vec<Value> = ops::list_all(&cs, &net)?
        .into_iter()
        .filter(|n| f.matches(n))
        .map(|n| {
            let id = n["Id"].as_str().unwrap_or("").to_string();
            let labels: Vec<String> = n["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "ID": if a.no_trunc { id.clone() } else { id.chars().take(12).collect() },
                "Name": n["Name"],
                "Driver": n["Driver"],
                "Scope": n["Scope"],
                "IPv4": "true",
                "IPv6": "false",
                "Internal": if n["Internal"].as_bool() == Some(true) { "true" } else { "false" },
                "Labels": labels.join(","),
                "CreatedAt": n["Created"],
            })
        })
        .collect();
    let fmt = if a.quiet {
        ListFormat::Raw("{{.ID}}".into())
    } else {
        ListFormat::parse(a.format.as_deref(), LS_TABLE)
    };
    let header = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED"});
    print!("{}", render_list(&fmt, &header, &rows)?);
    Ok(())
}

fn inspect(ctx: &Ctx, a: NetInspectArgs) -> Result<()> {
    let (cs, net) = setup(ctx)?;
    let mut items = Vec::new();
    let mut missing = Vec::new();
    for n in &a.networks {
        match ops::inspect_one(&cs, &net, n) {
            Ok(v) => items.push(v),
            Err(_) => missing.push(n.clone()),
        }
    }
    if !items.is_empty() || missing.is_empty() {
        print!("{}", render_inspect(a.format.as_deref(), &items)?);
    }
    if !missing.is_empty() {
        for n in &missing {
            eprintln!("Error: No such network: {n}");
        }
        return Err(Reported { code: 1 }.into());
    }
    Ok(())
}

fn rm(ctx: &Ctx, a: NetRmArgs) -> Result<()> {
    let (_, net) = setup(ctx)?;
    let mut failed = false;
    for n in &a.networks {
        match ops::remove(&net, n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                let msg = super::error_chain(&e);
                if a.force && msg.contains("not found") {
                    continue;
                }
                eprintln!("Error: {msg}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(Reported { code: 1 }.into());
    }
    Ok(())
}

fn prune(ctx: &Ctx, a: NetPruneArgs) -> Result<()> {
    if !a.force {
        use std::io::{BufRead, Write};
        print!("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let (cs, net) = setup(ctx)?;
    let removed = ops::prune(&cs, &net)?;
    if !removed.is_empty() {
        println!("Deleted Networks:");
        for n in &removed {
            println!("{n}");
        }
    }
    Ok(())
}

pub fn port(ctx: &Ctx, a: PortArgs) -> Result<()> {
    let cs = ContainerStore::new(ctx.paths());
    let id = cs.resolve(&a.container)?;
    let filter = match &a.port {
        None => None,
        Some(p) => Some(crate::engine::network::ports::parse_key(p).ok_or_else(|| {
            anyhow!("Error: invalid port ({p}): use PORT[/PROTO] with tcp or udp")
        })?),
    };
    let lines = crate::engine::network::inspect::port_lines(&cs, &id, filter);
    if lines.is_empty() {
        if let Some(p) = &a.port {
            let p = if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            };
            bail!("No public port '{p}' published for {}", a.container);
        }
    }
    for l in lines {
        println!("{l}");
    }
    Ok(())
}
