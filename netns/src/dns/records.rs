//! The resolver's view of the network state files: which names each
//! user-defined network knows, and which networks the asking container
//! shares with the containers it asks about.
//!
//! Scoping follows docker's embedded DNS: a container resolves names on the
//! networks it is connected to and nowhere else; the network the query came
//! in on is tried first, then the asker's other networks; the first network
//! that knows the name gives the answer. Aliases are tried before container
//! names (as docker does), and `name.network` picks a network explicitly.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::Ipv4Net;

use crate::types::NetworkState;

/// Docker's default network: no name resolution there.
pub const DEFAULT_NETWORK: &str = "bridge";

/// Length of the short container id that docker resolves.
const SHORT_ID: usize = 12;

/// One container's place on a served network.
#[derive(Debug, Clone)]
struct Entry {
    container_id: String,
    ip: Ipv4Addr,
    /// Its v6 address on a dual-stack network (AAAA answers).
    ip6: Option<Ipv6Addr>,
    /// Lower-case container name (without a leading `/`) and short id.
    names: Vec<String>,
    /// Lower-case network aliases.
    aliases: Vec<String>,
    /// Name for PTR answers, as given (docker answers `name.network`).
    display: String,
    /// The container's own upstream servers (`--dns`), if any.
    dns: Vec<SocketAddr>,
}

/// A user-defined network the resolver serves.
#[derive(Debug, Clone)]
pub struct ServedNet {
    pub name: String,
    pub id: String,
    pub gateway: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub internal: bool,
    entries: Vec<Entry>,
}

/// Every network of a state dir, as far as name resolution cares.
#[derive(Debug, Clone, Default)]
pub struct Records {
    served: Vec<ServedNet>,
    /// container id -> does any of its networks (the default bridge
    /// included) have egress. Docker forwards a container's queries
    /// upstream only then.
    external: HashMap<String, bool>,
}

/// Who asks: the networks whose names it may resolve (the one the query
/// arrived on first) and whether its queries may go upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asker {
    nets: Vec<usize>,
    pub container_id: Option<String>,
    pub may_forward: bool,
    /// The asker's own upstream servers (`--dns`); empty: the host's.
    pub upstream: Vec<SocketAddr>,
}

/// Lower-cases and drops the root dot: DNS names compare case-insensitively.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Records {
    pub fn new(states: &[NetworkState]) -> Records {
        let mut served = Vec::new();
        let mut external: HashMap<String, bool> = HashMap::new();
        for st in states {
            for id in st.leases.keys() {
                let e = external.entry(id.clone()).or_default();
                *e |= !st.internal;
            }
            if st.name == DEFAULT_NETWORK {
                continue;
            }
            let mut entries: Vec<Entry> = st
                .leases
                .values()
                .map(|l| {
                    let name = l.name.trim_start_matches('/');
                    let mut names = Vec::new();
                    if !name.is_empty() {
                        names.push(normalize(name));
                    }
                    if l.container_id.len() >= SHORT_ID {
                        names.push(normalize(&l.container_id[..SHORT_ID]));
                    }
                    let display = if name.is_empty() {
                        l.container_id.chars().take(SHORT_ID).collect()
                    } else {
                        name.to_string()
                    };
                    Entry {
                        container_id: l.container_id.clone(),
                        ip: l.ip,
                        ip6: l.ip6,
                        names,
                        aliases: l.aliases.iter().map(|a| normalize(a)).collect(),
                        display,
                        dns: l.dns.iter().map(|ip| SocketAddr::new(*ip, 53)).collect(),
                    }
                })
                .collect();
            entries.sort_by_key(|e| e.ip);
            served.push(ServedNet {
                name: st.name.clone(),
                id: st.id.clone(),
                gateway: st.gateway,
                subnet: st.subnet,
                internal: st.internal,
                entries,
            });
        }
        served.sort_by(|a, b| a.name.cmp(&b.name));
        Records { served, external }
    }

    /// The user-defined networks to listen on.
    pub fn served(&self) -> &[ServedNet] {
        &self.served
    }

    /// True while some container is attached to a user-defined network:
    /// the resolver has work.
    pub fn has_leases(&self) -> bool {
        self.served.iter().any(|n| !n.entries.is_empty())
    }

    /// Identifies the asker by its source address: a container's queries
    /// see the networks that container is on, whichever gateway they were
    /// sent to (a container must not learn another network's names by
    /// asking that network's gateway). An address of the arrival network
    /// no lease holds (the host itself, via the gateway address) sees that
    /// network; any other address sees nothing.
    pub fn asker(&self, via: &str, src: Ipv4Addr) -> Asker {
        let nobody = Asker {
            nets: Vec::new(),
            container_id: None,
            may_forward: false,
            upstream: Vec::new(),
        };
        let Some(v) = self.served.iter().position(|n| n.name == via) else {
            return nobody;
        };
        // The arrival network first: a container's address is unique there.
        let order = std::iter::once(v).chain((0..self.served.len()).filter(|&i| i != v));
        let mut me = None;
        for i in order {
            let net = &self.served[i];
            if !net.subnet.contains(&src) {
                continue;
            }
            if let Some(e) = net.entries.iter().find(|e| e.ip == src) {
                me = Some((e.container_id.clone(), e.dns.clone()));
                break;
            }
        }
        let Some((id, upstream)) = me else {
            if self.served[v].subnet.contains(&src) {
                return Asker {
                    nets: vec![v],
                    container_id: None,
                    may_forward: !self.served[v].internal,
                    upstream: Vec::new(),
                };
            }
            return nobody;
        };
        let on = |i: usize| self.served[i].entries.iter().any(|e| e.container_id == id);
        let mut nets: Vec<usize> = Vec::new();
        if on(v) {
            nets.push(v);
        }
        nets.extend((0..self.served.len()).filter(|&i| i != v && on(i)));
        Asker {
            nets,
            may_forward: self.external.get(&id).copied().unwrap_or(false),
            container_id: Some(id),
            upstream,
        }
    }

    /// A records for `qname` as seen by `asker`, sorted by address; `None`
    /// when no network the asker is on knows the name.
    pub fn lookup(&self, asker: &Asker, qname: &str) -> Option<Vec<Ipv4Addr>> {
        self.lookup_entries(asker, qname)
            .map(|es| es.iter().map(|e| e.ip).collect())
    }

    /// AAAA records for `qname`: the v6 addresses of the containers the
    /// name picks (empty when the name is known but has no v6 address:
    /// an empty NOERROR, never a forward).
    pub fn lookup6(&self, asker: &Asker, qname: &str) -> Option<Vec<Ipv6Addr>> {
        self.lookup_entries(asker, qname)
            .map(|es| es.iter().filter_map(|e| e.ip6).collect())
    }

    fn lookup_entries(&self, asker: &Asker, qname: &str) -> Option<Vec<&Entry>> {
        let name = normalize(qname);
        if name.is_empty() {
            return None;
        }
        if let Some(es) = self.lookup_in(asker.nets.iter().copied(), &name) {
            return Some(es);
        }
        // `a.b.c` may be container `a.b` on network `c` or `a` on `b.c`.
        for (i, _) in name.match_indices('.') {
            let (head, net) = (&name[..i], &name[i + 1..]);
            let scoped = asker
                .nets
                .iter()
                .copied()
                .filter(|&n| self.served[n].name.eq_ignore_ascii_case(net));
            if let Some(es) = self.lookup_in(scoped, head) {
                return Some(es);
            }
        }
        None
    }

    fn lookup_in(
        &self,
        nets: impl Iterator<Item = usize> + Clone,
        name: &str,
    ) -> Option<Vec<&Entry>> {
        type Pick = fn(&Entry, &str) -> bool;
        let by_alias: Pick = |e, n| e.aliases.iter().any(|a| a == n);
        let by_name: Pick = |e, n| e.names.iter().any(|a| a == n);
        for pick in [by_alias, by_name] {
            for n in nets.clone() {
                let es: Vec<&Entry> = self.served[n]
                    .entries
                    .iter()
                    .filter(|e| pick(e, name))
                    .collect();
                if !es.is_empty() {
                    return Some(es);
                }
            }
        }
        None
    }

    /// The PTR name of a v6 address, as for v4.
    pub fn lookup_ptr6(&self, asker: &Asker, ip: Ipv6Addr) -> Option<String> {
        asker.nets.iter().find_map(|&n| {
            let net = &self.served[n];
            net.entries
                .iter()
                .find(|e| e.ip6 == Some(ip))
                .map(|e| format!("{}.{}", e.display, net.name))
        })
    }

    /// The PTR name of `ip` on a network the asker is on: `name.network`,
    /// as docker answers.
    pub fn lookup_ptr(&self, asker: &Asker, ip: Ipv4Addr) -> Option<String> {
        asker.nets.iter().find_map(|&n| {
            let net = &self.served[n];
            net.entries
                .iter()
                .find(|e| e.ip == ip)
                .map(|e| format!("{}.{}", e.display, net.name))
        })
    }
}

/// Round robin: each answer with several addresses starts one further
/// along than the previous answer for the same name and network.
#[derive(Debug, Default)]
pub struct Rotor {
    next: HashMap<(usize, String), usize>,
}

/// Bound on remembered names, so a client asking random names cannot grow
/// the resolver's memory.
const ROTOR_MAX: usize = 4096;

impl Rotor {
    pub fn rotate<T>(&mut self, asker: &Asker, qname: &str, ips: &mut [T]) {
        if ips.len() < 2 {
            return;
        }
        if self.next.len() >= ROTOR_MAX {
            self.next.clear();
        }
        let key = (asker.nets.first().copied().unwrap_or(0), normalize(qname));
        let n = self.next.entry(key).or_default();
        ips.rotate_left(*n % ips.len());
        *n = n.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Lease;
    use std::path::PathBuf;

    fn lease(id: &str, name: &str, ip: [u8; 4], aliases: &[&str]) -> Lease {
        Lease {
            container_id: id.into(),
            ip: ip.into(),
            ip6: None,
            mac: [0; 6],
            ifname: "eth0".into(),
            host_veth: "vb".into(),
            netns_path: PathBuf::new(),
            name: name.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            ports: vec![],
            dns: vec![],
            port_rules: Vec::new(),
            redirects: Vec::new(),
        }
    }

    fn net(name: &str, third: u8, internal: bool, leases: Vec<Lease>) -> NetworkState {
        NetworkState {
            id: format!("{name}-id"),
            name: name.into(),
            bridge: format!("br-{name}"),
            subnet: format!("10.9.{third}.0/24").parse().unwrap(),
            gateway: Ipv4Addr::new(10, 9, third, 1),
            ip_range: None,
            internal,
            mtu: None,
            link_mtu: None,
            labels: Default::default(),
            table: "t".into(),
            leases: leases
                .into_iter()
                .map(|l| (l.container_id.clone(), l))
                .collect(),
            v6: None,
        }
    }

    const A: &str = "aaaaaaaaaaaa0000000000000000000000000000000000000000000000000001";
    const B: &str = "bbbbbbbbbbbb0000000000000000000000000000000000000000000000000002";
    const C: &str = "cccccccccccc0000000000000000000000000000000000000000000000000003";
    const D: &str = "dddddddddddd0000000000000000000000000000000000000000000000000004";
    const E: &str = "eeeeeeeeeeee0000000000000000000000000000000000000000000000000005";

    /// front: a, b, c (b and c share alias "web"); back: a, d; d also on
    /// internal "vault"; e alone on internal "lonely"; the default bridge
    /// holds b too.
    fn records() -> Records {
        Records::new(&[
            net(
                "front",
                1,
                false,
                vec![
                    lease(A, "a", [10, 9, 1, 2], &[]),
                    lease(B, "b", [10, 9, 1, 3], &["web", "Both"]),
                    lease(C, "/c", [10, 9, 1, 4], &["web"]),
                ],
            ),
            net(
                "back",
                2,
                false,
                vec![
                    lease(A, "a", [10, 9, 2, 2], &[]),
                    lease(D, "d", [10, 9, 2, 3], &["both"]),
                ],
            ),
            net("vault", 3, true, vec![lease(D, "d", [10, 9, 3, 2], &[])]),
            net("lonely", 4, true, vec![lease(E, "e", [10, 9, 4, 2], &[])]),
            net(
                DEFAULT_NETWORK,
                5,
                false,
                vec![lease(B, "b", [10, 9, 5, 2], &[])],
            ),
        ])
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn default_bridge_is_not_served() {
        let r = records();
        let names: Vec<&str> = r.served().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["back", "front", "lonely", "vault"]);
        let asker = r.asker(DEFAULT_NETWORK, ip("10.9.5.2"));
        assert_eq!(r.lookup(&asker, "a"), None);
    }

    #[test]
    fn names_aliases_and_short_ids_on_shared_networks() {
        let r = records();
        let a = r.asker("front", ip("10.9.1.2"));
        assert_eq!(a.container_id.as_deref(), Some(A));
        assert_eq!(r.lookup(&a, "b"), Some(vec![ip("10.9.1.3")]));
        assert_eq!(r.lookup(&a, "c."), Some(vec![ip("10.9.1.4")]));
        assert_eq!(r.lookup(&a, "B.",), Some(vec![ip("10.9.1.3")]));
        assert_eq!(r.lookup(&a, "bbbbbbbbbbbb"), Some(vec![ip("10.9.1.3")]));
        assert_eq!(r.lookup(&a, "BBBBBBBBBBBB"), Some(vec![ip("10.9.1.3")]));
        assert_eq!(r.lookup(&a, "bbbbbbbbbbbb0000"), None);
        assert_eq!(
            r.lookup(&a, "WEB"),
            Some(vec![ip("10.9.1.3"), ip("10.9.1.4")])
        );
        // a is on back too (queried via front): d is visible.
        assert_eq!(r.lookup(&a, "d"), Some(vec![ip("10.9.2.3")]));
        // itself, on the network the query came in on first
        assert_eq!(r.lookup(&a, "a"), Some(vec![ip("10.9.1.2")]));
        let via_back = r.asker("back", ip("10.9.2.2"));
        assert_eq!(r.lookup(&via_back, "a"), Some(vec![ip("10.9.2.2")]));
    }

    #[test]
    fn other_networks_names_are_unknown() {
        let r = records();
        let d = r.asker("back", ip("10.9.2.3"));
        assert_eq!(r.lookup(&d, "b"), None);
        assert_eq!(r.lookup(&d, "web"), None);
        assert_eq!(r.lookup(&d, "c"), None);
        assert_eq!(r.lookup(&d, "a"), Some(vec![ip("10.9.2.2")]));
        let e = r.asker("lonely", ip("10.9.4.2"));
        assert_eq!(r.lookup(&e, "a"), None);
        assert_eq!(r.lookup(&e, "E"), Some(vec![ip("10.9.4.2")]));
    }

    #[test]
    fn aliases_win_over_names_and_network_suffix_scopes() {
        let r = records();
        let a = r.asker("front", ip("10.9.1.2"));
        // "both" is b's alias on front and d's alias on back: front first.
        assert_eq!(r.lookup(&a, "both"), Some(vec![ip("10.9.1.3")]));
        assert_eq!(r.lookup(&a, "both.back"), Some(vec![ip("10.9.2.3")]));
        assert_eq!(r.lookup(&a, "a.BACK."), Some(vec![ip("10.9.2.2")]));
        // not a network of a
        assert_eq!(r.lookup(&a, "d.vault"), None);
        assert_eq!(r.lookup(&a, ""), None);
    }

    #[test]
    fn unknown_source_sees_the_arrival_network_only() {
        let r = records();
        let host = r.asker("front", ip("10.9.1.1"));
        assert_eq!(host.container_id, None);
        assert!(host.may_forward);
        assert_eq!(r.lookup(&host, "b"), Some(vec![ip("10.9.1.3")]));
        assert_eq!(r.lookup(&host, "d"), None);
        let gone = r.asker("nosuch", ip("10.9.1.2"));
        assert_eq!(r.lookup(&gone, "b"), None);
        assert!(!gone.may_forward);
        // an address of no served network (the default bridge, the host's
        // own eth0) learns nothing and is not forwarded
        for src in ["10.9.5.2", "10.1.2.3"] {
            let stranger = r.asker("front", ip(src));
            assert_eq!(r.lookup(&stranger, "b"), None);
            assert!(!stranger.may_forward);
        }
    }

    #[test]
    fn the_askers_own_dns_servers() {
        let mut l = lease(A, "a", [10, 9, 1, 2], &[]);
        l.dns = vec!["10.0.0.2".parse().unwrap()];
        let r = Records::new(&[net(
            "front",
            1,
            false,
            vec![l, lease(B, "b", [10, 9, 1, 3], &[])],
        )]);
        assert_eq!(
            r.asker("front", ip("10.9.1.2")).upstream,
            ["10.0.0.2:53".parse::<SocketAddr>().unwrap()]
        );
        assert!(r.asker("front", ip("10.9.1.3")).upstream.is_empty());
    }

    #[test]
    fn asking_another_networks_gateway_does_not_widen_the_scope() {
        let r = records();
        // d (back only) sends its query to front's gateway
        let d = r.asker("front", ip("10.9.2.3"));
        assert_eq!(d.container_id.as_deref(), Some(D));
        assert_eq!(r.lookup(&d, "b"), None);
        assert_eq!(r.lookup(&d, "web"), None);
        assert_eq!(r.lookup(&d, "a"), Some(vec![ip("10.9.2.2")]));
        assert!(d.may_forward);
    }

    #[test]
    fn forwarding_needs_a_network_with_egress() {
        let r = records();
        assert!(r.asker("front", ip("10.9.1.2")).may_forward);
        // d: internal vault, but also on back
        assert!(r.asker("vault", ip("10.9.3.2")).may_forward);
        // e: only on internal lonely
        assert!(!r.asker("lonely", ip("10.9.4.2")).may_forward);
        // the default bridge gives b egress (docker counts every network)
        let b_internal = Records::new(&[
            net("vault", 3, true, vec![lease(B, "b", [10, 9, 3, 3], &[])]),
            net(
                DEFAULT_NETWORK,
                5,
                false,
                vec![lease(B, "b", [10, 9, 5, 2], &[])],
            ),
        ]);
        assert!(b_internal.asker("vault", ip("10.9.3.3")).may_forward);
        let only_internal = Records::new(&[net(
            "vault",
            3,
            true,
            vec![lease(D, "d", [10, 9, 3, 2], &[])],
        )]);
        assert!(!only_internal.asker("vault", ip("10.9.3.2")).may_forward);
        assert!(!only_internal.asker("vault", ip("10.9.3.9")).may_forward);
    }

    #[test]
    fn ptr_names_container_dot_network() {
        let r = records();
        let a = r.asker("front", ip("10.9.1.2"));
        assert_eq!(r.lookup_ptr(&a, ip("10.9.1.4")).as_deref(), Some("c.front"));
        assert_eq!(r.lookup_ptr(&a, ip("10.9.2.3")).as_deref(), Some("d.back"));
        assert_eq!(r.lookup_ptr(&a, ip("10.9.3.2")), None);
    }

    #[test]
    fn rotor_rotates_each_answer() {
        let r = records();
        let a = r.asker("front", ip("10.9.1.2"));
        let mut rotor = Rotor::default();
        let mut firsts = Vec::new();
        for _ in 0..4 {
            let mut ips = r.lookup(&a, "web").unwrap();
            rotor.rotate(&a, "Web.", &mut ips);
            assert_eq!(ips.len(), 2);
            firsts.push(ips[0]);
        }
        assert_eq!(
            firsts,
            [
                ip("10.9.1.3"),
                ip("10.9.1.4"),
                ip("10.9.1.3"),
                ip("10.9.1.4")
            ]
        );
        let mut one = vec![ip("10.9.1.3")];
        rotor.rotate(&a, "b", &mut one);
        assert_eq!(one, [ip("10.9.1.3")]);
    }

    #[test]
    fn has_leases_ignores_the_default_bridge() {
        assert!(records().has_leases());
        let r = Records::new(&[
            net("front", 1, false, vec![]),
            net(
                DEFAULT_NETWORK,
                5,
                false,
                vec![lease(B, "b", [10, 9, 5, 2], &[])],
            ),
        ]);
        assert!(!r.has_leases());
        assert_eq!(r.served().len(), 1);
    }
}
