//! Real-kernel check (root) that published-port rules added over nf_tables
//! netlink are the rules the former `nft` script added: the same
//! expressions in `nft -j list table`, the same comments, and the jump
//! handles the kernel reports. Every test uses its own tables, removed on
//! drop.

mod common;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use common::rand_hex;
use netns::firewall::{self, Dnat, TableFamily};
use netns::{PortMapping, Proto, RuleHandle};
use serde_json::Value;

/// Deletes the listed tables on drop, also when the test fails.
struct Tables(Vec<(&'static str, String)>);

impl Drop for Tables {
    fn drop(&mut self) {
        for (family, t) in &self.0 {
            let _ = Command::new("nft")
                .args(["delete", "table", family, t])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Two fresh `inet` base tables: one for the `nft` script, one for the
/// netlink path; removed when the guard drops.
fn two_inet_tables() -> (String, String, Tables) {
    let tag = rand_hex(6);
    let (old, new) = (format!("bt_{tag}o"), format!("bt_{tag}n"));
    let guard = Tables(vec![("inet", old.clone()), ("inet", new.clone())]);
    nft(&base("inet", &old));
    nft(&base("inet", &new));
    (old, new, guard)
}

fn nft(script: &str) {
    let mut c = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The base chains berth's table has (as firewall.rs creates them), so
/// the kernel validates the DNAT rules in a NAT hook's context.
fn base(family: &str, t: &str) -> String {
    let (lo4, lo6) = (
        "ip daddr 127.0.0.0/8 jump ports_local",
        "ip6 daddr ::1 jump ports_local",
    );
    let local = if family == "inet" {
        format!("add rule {family} {t} output {lo4}\nadd rule {family} {t} output {lo6}\n")
    } else {
        format!("add rule {family} {t} output {lo4}\n")
    };
    format!(
        "add table {family} {t}
add chain {family} {t} prerouting {{ type nat hook prerouting priority -100; policy accept; }}
add chain {family} {t} output {{ type nat hook output priority -100; policy accept; }}
add chain {family} {t} ports
add chain {family} {t} ports_local
add rule {family} {t} prerouting fib daddr type local jump ports
{local}add rule {family} {t} output fib daddr type local jump ports
"
    )
}

/// The script `firewall::add_ports` ran through `nft` before it spoke
/// netlink (copied from that version, v4 rules of the `inet` table): the
/// reference. A wildcard rule names its family, as the netlink path does.
fn old_script(table: &str, container: &str, ip: Ipv4Addr, ports: &[PortMapping]) -> String {
    let tag = format!("ctr:{container}");
    let (ctr, ctrl) = (format!("ctr_{container}"), format!("ctrl_{container}"));
    let (mut global, mut local) = (String::new(), String::new());
    for p in ports {
        let proto = match p.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        let (out, chain, daddr) = match p.host_ip {
            None => (&mut global, &ctr, "meta nfproto ipv4 ".to_string()),
            Some(h) if h.is_unspecified() => (&mut global, &ctr, "meta nfproto ipv4 ".to_string()),
            Some(h) if h.is_loopback() => (&mut local, &ctrl, format!("ip daddr {h} ")),
            Some(h) => (&mut global, &ctr, format!("ip daddr {h} ")),
        };
        out.push_str(&format!(
            "add rule inet {table} {chain} {daddr}{proto} dport {} dnat ip to {ip}:{} comment \"{tag}\"\n",
            p.host_port, p.container_port
        ));
    }
    let mut s = String::new();
    for (parent, chain, rules) in [("ports", &ctr, &global), ("ports_local", &ctrl, &local)] {
        if rules.is_empty() {
            continue;
        }
        s.push_str(&format!("add chain inet {table} {chain}\n{rules}"));
        s.push_str(&format!(
            "add rule inet {table} {parent} jump {chain} comment \"{tag}\"\n"
        ));
    }
    s
}

fn listing(family: &str, t: &str) -> Value {
    let out = Command::new("nft")
        .args(["-j", "list", "table", family, t])
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every rule as (chain, expressions, comment), in listing order: what
/// must not depend on the table's name or on the handles.
fn rules(v: &Value) -> Vec<(String, Value, Value)> {
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("rule"))
        .map(|r| {
            (
                r["chain"].as_str().unwrap().to_string(),
                r["expr"].clone(),
                r["comment"].clone(),
            )
        })
        .collect()
}

fn chains(v: &Value) -> Vec<String> {
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("chain"))
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// The handles of the jump rules tagged for `container`, from the listing.
fn jump_handles(v: &Value, container: &str) -> Vec<RuleHandle> {
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("rule"))
        .filter(|r| r["comment"].as_str() == Some(&format!("ctr:{container}")))
        .filter(|r| r["expr"][0].get("jump").is_some())
        .map(|r| RuleHandle {
            chain: r["chain"].as_str().unwrap().into(),
            handle: r["handle"].as_u64().unwrap(),
        })
        .collect()
}

fn port(host_ip: Option<[u8; 4]>, host_port: u16, cport: u16, proto: Proto) -> PortMapping {
    PortMapping {
        host_ip: host_ip.map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        host_port,
        container_port: cport,
        proto,
        host_port_end: 0,
    }
}

#[test]
fn v4_rules_match_the_nft_script() {
    let (old, new, _guard) = two_inet_tables();
    let ip = Ipv4Addr::new(10, 123, 40, 2);
    // Wildcard tcp and udp, 0.0.0.0, a host address, loopback (its own
    // chain), and a range as the engine expands it (one mapping a port).
    let cases: Vec<(&str, Vec<PortMapping>)> = vec![
        (
            "a",
            vec![
                port(None, 8080, 80, Proto::Tcp),
                port(None, 5353, 53, Proto::Udp),
                port(Some([0, 0, 0, 0]), 8443, 443, Proto::Tcp),
                port(Some([10, 123, 41, 7]), 9000, 9000, Proto::Udp),
                port(Some([127, 0, 0, 1]), 7000, 70, Proto::Tcp),
            ],
        ),
        (
            "b",
            (0..3)
                .map(|i| port(Some([10, 123, 41, 7]), 9100 + i, 80 + i, Proto::Tcp))
                .collect(),
        ),
        ("c", vec![port(Some([127, 0, 0, 1]), 7001, 70, Proto::Udp)]),
        ("d", vec![port(None, 7002, 22, Proto::Tcp)]),
    ];
    for (ctr, ports) in &cases {
        nft(&old_script(&old, ctr, ip, ports));
        let handles = firewall::add_ports(&new, ctr, ip, None, ports).unwrap();
        assert_eq!(handles, jump_handles(&listing("inet", &new), ctr), "{ctr}");
        let local = ports
            .iter()
            .any(|p| p.host_ip.is_some_and(|h| h.is_loopback()));
        let global = ports
            .iter()
            .any(|p| !p.host_ip.is_some_and(|h| h.is_loopback()));
        assert_eq!(handles.len(), usize::from(local) + usize::from(global));
    }
    let (lo, ln) = (listing("inet", &old), listing("inet", &new));
    assert_eq!(chains(&lo), chains(&ln));
    let (ro, rn) = (rules(&lo), rules(&ln));
    assert_eq!(ro, rn);
    // Not vacuous: every rule of every container is there, comment too.
    assert_eq!(
        rn.iter().filter(|r| r.2.as_str() == Some("ctr:a")).count(),
        5 + 2
    );
    // The listing shows the statements the script had.
    let text = Command::new("nft")
        .args(["list", "chain", "inet", &new, "ctr_a"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(
            "ip daddr 10.123.41.7 udp dport 9000 dnat ip to 10.123.40.2:9000 comment \"ctr:a\""
        ),
        "{text}"
    );
    // The handles remove exactly the container's rules on the netlink path.
    let h = jump_handles(&ln, "b");
    firewall::remove_ports_by_handle(&new, "b", &h).unwrap();
    let after = listing("inet", &new);
    assert!(!chains(&after).contains(&"ctr_b".to_string()));
    assert_eq!(rules(&after).len(), rn.len() - 4);
}

#[test]
fn inet_table_v4_and_v6_rules_match_the_nft_script() {
    let (old, new, _guard) = two_inet_tables();
    let t = &old;
    // What nft is given for the same rules: the nfproto check is nft's own
    // dependency of `ip daddr` / `ip6 daddr`, and spelled out for wildcards.
    nft(&format!(
        "add chain inet {t} ctr_x
add rule inet {t} ctr_x meta nfproto ipv4 tcp dport 8080 dnat ip to 10.123.40.2:80 comment \"ctr:x\"
add rule inet {t} ctr_x ip daddr 10.123.41.7 udp dport 9000 dnat ip to 10.123.40.2:9000 comment \"ctr:x\"
add rule inet {t} ctr_x meta nfproto ipv6 tcp dport 8080 dnat ip6 to [fd7a:1::2]:80 comment \"ctr:x\"
add rule inet {t} ctr_x ip6 daddr fd7a:2::7 udp dport 9000 dnat ip6 to [fd7a:1::2]:9000 comment \"ctr:x\"
add rule inet {t} ports jump ctr_x comment \"ctr:x\"
add chain inet {t} ctrl_x
add rule inet {t} ctrl_x ip daddr 127.0.0.1 tcp dport 7000 dnat ip to 10.123.40.2:70 comment \"ctr:x\"
add rule inet {t} ctrl_x ip6 daddr ::1 tcp dport 7000 dnat ip6 to [fd7a:1::2]:70 comment \"ctr:x\"
add rule inet {t} ports_local jump ctrl_x comment \"ctr:x\"
"
    ));
    let d = |daddr: Option<&str>, proto, dport, to: &str, to_port| Dnat {
        daddr: daddr.map(|a| a.parse().unwrap()),
        proto,
        dport,
        to: to.parse().unwrap(),
        to_port,
    };
    let (v4, v6) = ("10.123.40.2", "fd7a:1::2");
    let rules_in = [
        d(None, Proto::Tcp, 8080, v4, 80),
        d(Some("10.123.41.7"), Proto::Udp, 9000, v4, 9000),
        d(Some("::"), Proto::Tcp, 8080, v6, 80),
        d(Some("fd7a:2::7"), Proto::Udp, 9000, v6, 9000),
        d(Some("127.0.0.1"), Proto::Tcp, 7000, v4, 70),
        d(Some("::1"), Proto::Tcp, 7000, v6, 70),
    ];
    let handles = firewall::add_dnat(TableFamily::Inet, &new, "x", &rules_in).unwrap();
    let ln = listing("inet", &new);
    assert_eq!(handles, jump_handles(&ln, "x"));
    assert_eq!(handles.len(), 2);
    let (ro, rn) = (rules(&listing("inet", &old)), rules(&ln));
    assert_eq!(ro, rn);
    assert_eq!(rn.len(), 4 + 6 + 2);
    // An IPv6 target cannot go into an `ip` table, nor mix versions.
    let bad = [d(None, Proto::Tcp, 1, v6, 1)];
    assert!(firewall::add_dnat(TableFamily::Ip, &new, "y", &bad).is_err());
    let mixed = [d(Some("10.123.41.7"), Proto::Tcp, 1, v6, 1)];
    assert!(firewall::add_dnat(TableFamily::Inet, &new, "y", &mixed).is_err());
    assert_eq!(rules(&listing("inet", &new)).len(), rn.len());
}

#[test]
fn missing_table_is_an_error_and_adds_nothing() {
    let t = format!("bt_{}m", rand_hex(6));
    let err = firewall::add_ports(
        &t,
        "z",
        Ipv4Addr::new(10, 123, 40, 2),
        None,
        &[port(None, 8080, 80, Proto::Tcp)],
    )
    .unwrap_err();
    assert!(err.to_string().contains(&t), "{err}");
    let ok = Command::new("nft")
        .args(["list", "table", "inet", &t])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!ok.success());
    // No ports: nothing to send, nothing to fail.
    assert!(firewall::add_dnat(TableFamily::Ip, &t, "z", &[])
        .unwrap()
        .is_empty());
}

#[test]
fn a_large_range_goes_in_one_batch() {
    // 2000 ports: a batch of ~400 KiB, beyond the default socket buffers.
    let tag = rand_hex(6);
    let t = format!("bt_{tag}r");
    let _guard = Tables(vec![("inet", t.clone())]);
    nft(&base("inet", &t));
    let ip = Ipv4Addr::new(10, 123, 40, 2);
    let ports: Vec<PortMapping> = (0..2000u16)
        .map(|i| port(None, 30000 + i, 80, Proto::Tcp))
        .collect();
    let handles = firewall::add_ports(&t, "big", ip, None, &ports).unwrap();
    let l = listing("inet", &t);
    assert_eq!(handles, jump_handles(&l, "big"));
    let in_chain = rules(&l).iter().filter(|r| r.0 == "ctr_big").count();
    assert_eq!(in_chain, 2000);
    firewall::remove_ports_by_handle(&t, "big", &handles).unwrap();
    assert!(!chains(&listing("inet", &t)).contains(&"ctr_big".to_string()));
}
