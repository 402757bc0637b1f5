//! nftables rules in berth's own `inet` table (IPv4 and IPv6 in one
//! table: one set of bridges, one container chain per container for both
//! families; see docs/architecture.md). Network-wide rules (rare) go
//! through the `nft` binary: a text script on stdin is one atomic
//! transaction, and `nft -j list table` gives rule handles for exact
//! removal. A container's published ports, added and removed on every
//! start and exit, go over nf_tables netlink in process ([`crate::nfnl`],
//! [`crate::nfnl_rule`]): no process run and no RCU wait on the caller's
//! path. Only the table named by `table` is ever created, changed or
//! deleted.
//!
//! Every rule carries a comment tag: `net:<network>` for a network's rules,
//! `ctr:<container id>` for a container's published ports, so removing a
//! network or container deletes exactly its rules, and removing twice is a
//! no-op.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::{Error, Result};
use crate::nfnl::{self, Del};
use crate::nfnl_rule;
pub use crate::nfnl_rule::{Dnat, TableFamily};
use crate::types::{PortMapping, RuleHandle};

/// Rules of one network.
pub struct NetRules<'a> {
    pub name: &'a str,
    pub bridge: &'a str,
    pub subnet: Ipv4Net,
    pub internal: bool,
    pub gateway: Ipv4Addr,
    /// The v6 subnet of a dual-stack network.
    pub subnet6: Option<Ipv6Net>,
}

/// The nftables family of berth's table. `inet` (kernel >= 5.2 for nat)
/// holds both families' rules; `nfnl` deletes in the same family.
pub const FAMILY: &str = "inet";

fn nft(table: &str, op: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut cmd = Command::new("nft");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::NftMissing { source })?;
    if let (Some(script), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error shows up as nft's own failure below.
        let _ = pipe.write_all(script.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| Error::NftMissing { source })?;
    if !out.status.success() {
        return Err(Error::Nft {
            op: op.to_string(),
            table: table.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_script(table: &str, op: &str, script: &str) -> Result<()> {
    nft(table, op, &["-f", "-"], Some(script)).map(|_| ())
}

pub fn table_exists(table: &str) -> Result<bool> {
    table_exists_in(table, FAMILY)
}

fn table_exists_in(table: &str, family: &str) -> Result<bool> {
    let out = nft(table, "list tables", &["list", "tables", family], None)?;
    Ok(out
        .lines()
        .any(|l| l.trim() == format!("table {family} {table}")))
}

/// The base table: hooks, the set of berth bridges, and rules shared by
/// every network. Created once (the caller holds the firewall lock).
fn base_script(t: &str) -> String {
    // `::1` is never DNAT'ed (see `crate::proxy`): the relay's listening
    // socket serves it; every other local v6 address jumps to `ports`.
    // The host's own connections to a published port leave from the
    // gateway: those from 127.0.0.1 must (the container cannot answer a
    // loopback address), and those from the host's other addresses then
    // get answers within the network, in its large frames, where an answer
    // to the host's eth0 address would take the default route and its 1500
    // MTU (see `NetworkState::links`). docker-proxy does the same for the
    // connections it relays.
    format!(
        "add table inet {t}
add set inet {t} bridges {{ type ifname; }}
add chain inet {t} prerouting {{ type nat hook prerouting priority -100; policy accept; }}
add chain inet {t} output {{ type nat hook output priority -100; policy accept; }}
add chain inet {t} postrouting {{ type nat hook postrouting priority 100; policy accept; }}
add chain inet {t} forward {{ type filter hook forward priority 0; policy accept; }}
add chain inet {t} ports
add chain inet {t} ports_local
add rule inet {t} prerouting fib daddr type local jump ports
add rule inet {t} output ip daddr 127.0.0.0/8 jump ports_local
add rule inet {t} output meta nfproto ipv4 fib daddr type local jump ports
add rule inet {t} output ip6 daddr != ::1 fib daddr type local jump ports
add rule inet {t} postrouting oifname @bridges ct status dnat fib saddr type local masquerade
add rule inet {t} forward ct state established,related accept
add rule inet {t} forward ct status dnat accept
"
    )
}

/// Adds a network's rules (creating the table if needed).
pub fn add_network(table: &str, n: &NetRules) -> Result<()> {
    let t = table;
    let mut s = String::new();
    if !table_exists(t)? {
        s.push_str(&base_script(t));
    }
    let (br, sub, tag) = (n.bridge, n.subnet, format!("net:{}", n.name));
    s.push_str(&format!("add element inet {t} bridges {{ \"{br}\" }}\n"));
    if n.name != crate::dns::DEFAULT_NETWORK {
        // Containers ask gateway:53; the resolver listens on another port
        // of the gateway, so a container may publish host port 53 (a DNS
        // server) without taking the resolver's port, and that port's DNAT
        // (the `ports` jump below) never catches the containers' queries.
        // `insert` puts these ahead of the jump. Internal networks too.
        let (gw, port) = (n.gateway, crate::dns::RESOLVER_PORT);
        for proto in ["udp", "tcp"] {
            s.push_str(&format!(
                "insert rule inet {t} prerouting iifname \"{br}\" ip daddr {gw} {proto} dport 53 redirect to :{port} comment \"{tag}\"\n"
            ));
        }
    }
    if n.internal {
        s.push_str(&format!(
            "add rule inet {t} forward iifname \"{br}\" oifname != \"{br}\" drop comment \"{tag}\"
add rule inet {t} forward oifname \"{br}\" iifname != \"{br}\" drop comment \"{tag}\"
"
        ));
    } else {
        // Hairpin masquerade matches the source subnet, not `iifname`: the
        // postrouting hook has no input interface, so an `iifname` match
        // never fired and a container could not reach its own published port.
        s.push_str(&format!(
            "add rule inet {t} forward iifname \"{br}\" oifname != \"{br}\" oifname @bridges drop comment \"{tag}\"
add rule inet {t} postrouting ip saddr {sub} oifname != \"{br}\" masquerade comment \"{tag}\"
add rule inet {t} postrouting ip saddr {sub} oifname \"{br}\" ct status dnat masquerade comment \"{tag}\"
"
        ));
        // The same egress and hairpin masquerade for the v6 subnet (docker
        // masquerades v6 too unless the subnet is routed).
        if let Some(sub6) = n.subnet6 {
            s.push_str(&format!(
                "add rule inet {t} postrouting ip6 saddr {sub6} oifname != \"{br}\" masquerade comment \"{tag}\"
add rule inet {t} postrouting ip6 saddr {sub6} oifname \"{br}\" ct status dnat masquerade comment \"{tag}\"
"
            ));
        }
    }
    run_script(t, &format!("add rules of network {}", n.name), &s)
}

/// The table as `nft -j` JSON, or `None` when it does not exist (one nft
/// run: each costs a few milliseconds).
fn list_table(table: &str) -> Result<Option<serde_json::Value>> {
    let out = match nft(
        table,
        "list table",
        &["-j", "list", "table", FAMILY, table],
        None,
    ) {
        Ok(out) => out,
        Err(Error::Nft { stderr, .. }) if stderr.contains("No such file or directory") => {
            return Ok(None)
        }
        Err(e) => Err(e)?,
    };
    serde_json::from_str(&out)
        .map(Some)
        .map_err(|e| Error::Nft {
            op: "parse nft -j output".into(),
            table: table.into(),
            stderr: e.to_string(),
        })
}

fn rules(v: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| &i["rule"])
        .filter(|r| r.is_object())
}

fn delete_tagged(table: &str, tag: &str, extra: &str) -> Result<()> {
    let Some(v) = list_table(table)? else {
        return Ok(());
    };
    delete_tagged_in(table, &v, tag, extra)
}

/// Deletes the rules tagged `tag` in the listing `v` (rules inside the
/// chains `extra` deletes are skipped: their chain goes as a whole), then
/// runs `extra`, in one transaction.
fn delete_tagged_in(table: &str, v: &serde_json::Value, tag: &str, extra: &str) -> Result<()> {
    let mut s = String::new();
    for r in rules(v).filter(|r| r["comment"].as_str() == Some(tag)) {
        if let (Some(chain), Some(handle)) = (r["chain"].as_str(), r["handle"].as_u64()) {
            if extra.contains(&format!("flush chain {FAMILY} {table} {chain}\n")) {
                continue;
            }
            s.push_str(&format!(
                "delete rule {FAMILY} {table} {chain} handle {handle}\n"
            ));
        }
    }
    s.push_str(extra);
    if s.is_empty() {
        return Ok(());
    }
    run_script(table, &format!("delete rules tagged {tag}"), &s)
}

/// Removes a network's rules; with `last`, the whole table goes.
pub fn remove_network(table: &str, name: &str, bridge: &str, last: bool) -> Result<()> {
    if last {
        if table_exists(table)? {
            run_script(
                table,
                "delete table",
                &format!("delete table {FAMILY} {table}\n"),
            )?;
        }
        // berth before the `inet` table kept its rules in an `ip` table of
        // the same name: gone with the last network too.
        if table_exists_in(table, "ip")? {
            run_script(table, "delete table", &format!("delete table ip {table}\n"))?;
        }
        return Ok(());
    }
    // Deleting an absent set element fails the whole transaction, so add
    // it first: `add element` of a present one is a no-op.
    let extra = format!(
        "add element {FAMILY} {table} bridges {{ \"{bridge}\" }}\ndelete element {FAMILY} {table} bridges {{ \"{bridge}\" }}\n"
    );
    delete_tagged(table, &format!("net:{name}"), &extra)
}

/// The chains holding a container's DNAT rules: one jumped to from
/// `ports`, one from `ports_local` (loopback-bound ports).
fn ctr_chains(container: &str) -> [(&'static str, String); 2] {
    [
        ("ports", format!("ctr_{container}")),
        ("ports_local", format!("ctrl_{container}")),
    ]
}

/// Adds DNAT rules for a container's published ports (v4, and v6 for a
/// dual-stack container) and returns the handles of the jump rules that
/// lead to them, for [`remove_ports_by_handle`]; see [`add_dnat`].
pub fn add_ports(
    table: &str,
    container: &str,
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
    ports: &[PortMapping],
) -> Result<Vec<RuleHandle>> {
    add_dnat(
        TableFamily::Inet,
        table,
        container,
        &port_dnats(ip, ip6, ports),
    )
}

/// The DNAT rules of a container's ports. v4: every mapping without a
/// host address or on a v4 one. v6 (dual-stack containers only): no host
/// address or `[::]` answers on every local v6 address but `::1` (the base
/// `output` rule skips it: kernel DNAT cannot leave `::1`, the monitor's
/// relay serves it), a v6 address on that address; v4 host addresses get
/// no v6 rule. A wildcard rule matches its target's family only
/// (`meta nfproto`, see [`crate::nfnl_rule`]).
fn port_dnats(ip: Ipv4Addr, ip6: Option<Ipv6Addr>, ports: &[PortMapping]) -> Vec<Dnat> {
    let rule = |daddr, to, p: &PortMapping| Dnat {
        daddr,
        proto: p.proto,
        dport: p.host_port,
        to,
        to_port: p.container_port,
    };
    let mut v: Vec<Dnat> = ports
        .iter()
        .filter(|p| !matches!(p.host_ip, Some(IpAddr::V6(_))))
        .map(|p| rule(p.host_ip, IpAddr::V4(ip), p))
        .collect();
    if let Some(ip6) = ip6 {
        for p in ports {
            let daddr = match p.host_ip {
                None => None,
                Some(IpAddr::V6(h)) if h.is_unspecified() => None,
                Some(IpAddr::V6(h)) if h.is_loopback() => continue,
                Some(IpAddr::V6(h)) => Some(IpAddr::V6(h)),
                Some(IpAddr::V4(_)) => continue,
            };
            v.push(rule(daddr, IpAddr::V6(ip6), p));
        }
    }
    v
}

/// Adds a container's DNAT rules in one nf_tables transaction sent over
/// netlink in process ([`crate::nfnl_rule`]: no `nft` run, and the socket
/// is closed off the caller's path, so nothing waits for RCU) and returns
/// the handles of the jump rules the kernel echoed back. The rules live in
/// the container's own chains (`ctr_<id>`, `ctrl_<id>`), so removal needs
/// only the jumps' handles, and the kernel refuses to delete a chain still
/// jumped to: a stale handle can never delete another rule (see
/// [`remove_ports_by_handle`]). A `daddr` of `None` or the unspecified
/// address matches every host address; a loopback `daddr` goes to the
/// chain jumped to from the output hook only, so a loopback-bound port is
/// never reachable from another host (moby#41872).
pub fn add_dnat(
    family: TableFamily,
    table: &str,
    container: &str,
    rules: &[Dnat],
) -> Result<Vec<RuleHandle>> {
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let tag = format!("ctr:{container}");
    let [(_, ctr), (_, ctrl)] = ctr_chains(container);
    let (mut global, mut local) = (Vec::new(), Vec::new());
    for r in rules {
        r.check(family)?;
        let mut r = r.clone();
        r.daddr = r.daddr.filter(|a| !a.is_unspecified());
        let (out, chain) = match r.daddr {
            Some(a) if a.is_loopback() => (&mut local, &ctrl),
            _ => (&mut global, &ctr),
        };
        out.push(nfnl_rule::dnat_rule(family, table, chain, &r, &tag));
    }
    let jumps = usize::from(!global.is_empty()) + usize::from(!local.is_empty());
    let mut msgs = Vec::new();
    for (parent, chain, rules) in [("ports", &ctr, global), ("ports_local", &ctrl, local)] {
        if rules.is_empty() {
            continue;
        }
        msgs.push(nfnl_rule::new_chain(table, chain));
        msgs.extend(rules);
        msgs.push(nfnl_rule::jump_rule(table, parent, chain, &tag));
    }
    let op = format!("publish ports of container {container}");
    let echoed = nfnl::commit(family.nfproto(), table, &op, &msgs)?;
    let handles: Vec<RuleHandle> = echoed
        .into_iter()
        .filter(|e| e.chain == "ports" || e.chain == "ports_local")
        .map(|e| RuleHandle {
            chain: e.chain,
            handle: e.handle,
        })
        .collect();
    if handles.len() != jumps {
        return Err(Error::Nft {
            op,
            table: table.into(),
            stderr: format!(
                "the kernel echoed {} of {jumps} jump rules; remove the container's rules with `berth rm -f` and retry",
                handles.len()
            ),
        });
    }
    Ok(handles)
}

/// Removes a container's DNAT rules in one transaction sent over
/// netlink in process ([`crate::nfnl`]: no `nft` run, no RCU wait), without
/// listing the table: deletes the recorded jump rules and the container's
/// chains. If a handle is stale (the table was re-created since, so it may
/// name another rule now), the container's chain is still jumped to or
/// gone, and the kernel refuses the whole transaction (EBUSY / ENOENT), so
/// nothing else is ever deleted; the caller then falls back to
/// [`remove_ports`].
pub fn remove_ports_by_handle(table: &str, container: &str, handles: &[RuleHandle]) -> Result<()> {
    let chains = ctr_chains(container);
    let mut steps: Vec<Del> = handles
        .iter()
        .map(|h| Del::Rule {
            chain: &h.chain,
            handle: h.handle,
        })
        .collect();
    for (parent, chain) in &chains {
        if handles.iter().any(|h| h.chain == *parent) {
            steps.push(Del::Flush { chain });
            steps.push(Del::Chain { chain });
        }
    }
    if steps.is_empty() {
        return Ok(());
    }
    nfnl::delete(table, &steps)
}

/// Removes a container's DNAT rules (jumps and its chains, or rules of
/// the older layout placed straight in `ports`) by listing the table;
/// idempotent.
pub fn remove_ports(table: &str, container: &str) -> Result<()> {
    let Some(v) = list_table(table)? else {
        return Ok(());
    };
    let mut extra = String::new();
    let chains: Vec<&str> = v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["chain"]["name"].as_str())
        .collect();
    for (_, chain) in ctr_chains(container) {
        if chains.contains(&chain.as_str()) {
            extra.push_str(&format!(
                "flush chain {FAMILY} {table} {chain}\ndelete chain {FAMILY} {table} {chain}\n"
            ));
        }
    }
    delete_tagged_in(table, &v, &format!("ctr:{container}"), &extra)
}

/// Every container id that has rules in the table (for orphan sweeps).
pub fn containers_with_rules(table: &str) -> Result<Vec<String>> {
    let Some(v) = list_table(table)? else {
        return Ok(Vec::new());
    };
    let mut ids: Vec<String> = rules(&v)
        .filter_map(|r| r["comment"].as_str())
        .filter_map(|c| c.strip_prefix("ctr:"))
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Proto;

    #[test]
    fn v4_and_v6_rules_per_host_address() {
        let m = |h: Option<&str>, port| PortMapping {
            host_ip: h.map(|s| s.parse().unwrap()),
            host_port: port,
            container_port: 80,
            proto: Proto::Tcp,
            host_port_end: 0,
        };
        let ports = [
            m(None, 8080),
            m(Some("::"), 8081),
            m(Some("::1"), 8082),
            m(Some("fd00::2"), 8083),
            m(Some("127.0.0.1"), 8084),
        ];
        let (v4, v6): (Ipv4Addr, Ipv6Addr) =
            ("10.1.1.2".parse().unwrap(), "fd12::2".parse().unwrap());
        let r = port_dnats(v4, Some(v6), &ports);
        let got: Vec<(Option<String>, u16, String)> = r
            .iter()
            .map(|d| (d.daddr.map(|a| a.to_string()), d.dport, d.to.to_string()))
            .collect();
        let e = |a: Option<&str>, p, to: &str| (a.map(str::to_string), p, to.to_string());
        assert_eq!(
            got,
            vec![
                e(None, 8080, "10.1.1.2"),
                e(Some("127.0.0.1"), 8084, "10.1.1.2"),
                e(None, 8080, "fd12::2"),
                e(None, 8081, "fd12::2"),
                e(Some("fd00::2"), 8083, "fd12::2"),
            ]
        );
        // A v4-only container: v4 rules only, v6 host addresses skipped.
        assert_eq!(port_dnats(v4, None, &ports).len(), 2);
    }
}
