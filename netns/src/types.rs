//! Plain data shared with the engine.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One published port. The engine expands ranges (`9090-9091:80-81`) into
/// one mapping per port. `host_port == 0` asks for a free port (`-p 80`,
/// `-P`); the chosen one is in the [`Attachment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// `None`: every host address of each family the container has, and
    /// localhost; 0.0.0.0 / `::`: every address of that family.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
    /// docker's `-p 8000-8010:80`: the first free host port from
    /// `host_port` to this one is taken; 0 for one port.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub host_port_end: u16,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

/// What `network create` asks for; unset fields get docker's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub name: String,
    /// Bridge device name; default `br-<first 12 hex of the network id>`.
    pub bridge: Option<String>,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    pub internal: bool,
    pub mtu: Option<u32>,
    pub labels: BTreeMap<String, String>,
    /// `--ipv6`: a v6 subnet too (dual stack).
    #[serde(default)]
    pub ipv6: bool,
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    #[serde(default)]
    pub ip_range6: Option<Ipv6Net>,
}

/// The IPv6 half of a dual-stack network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct V6Config {
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
    pub ip_range: Option<Ipv6Net>,
}

/// Where state lives and which nft table to use.
#[derive(Debug, Clone)]
pub struct NetEnv {
    /// Holds `networks/<name>.json` (e.g. `/var/lib/berth`).
    pub state_dir: PathBuf,
    /// nftables table (family `inet`) owning every berth rule; `berth` in
    /// production, a private name per test.
    pub table: String,
    /// Candidate subnets for networks created without `--subnet`.
    pub pools: Vec<Ipv4Net>,
    /// Candidate v6 subnets for `--ipv6` networks without a v6 `--subnet`:
    /// (base, size) pairs, split lazily. Empty: docker's default, a ULA
    /// /48 derived from the host ([`NetEnv::effective_pools6`]).
    pub pools6: Vec<(Ipv6Net, u8)>,
    /// Socket-level redirection of the host's connections to published
    /// TCP ports ([`crate::redirect`]); off by default for library users.
    pub port_redirect: crate::redirect::PortRedirect,
}

impl NetEnv {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        NetEnv {
            state_dir: state_dir.into(),
            table: "berth".to_string(),
            pools: crate::pool::default_pools(),
            pools6: Vec::new(),
            port_redirect: crate::redirect::PortRedirect::Off,
        }
    }

    /// The v6 pools to draw from: the configured ones, else /64s of a ULA
    /// /48 derived from `/etc/machine-id` and the state dir (read only when
    /// a v6 subnet is chosen, never on the start path).
    pub fn effective_pools6(&self) -> Vec<(ipnet::Ipv6Net, u8)> {
        if !self.pools6.is_empty() {
            return self.pools6.clone();
        }
        let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
        crate::pool::default_pools6(&format!("{}\n{}", machine.trim(), self.state_dir.display()))
    }

    pub(crate) fn networks_dir(&self) -> PathBuf {
        self.state_dir.join("networks")
    }

    pub(crate) fn state_file(&self, name: &str) -> PathBuf {
        self.networks_dir().join(format!("{name}.json"))
    }

    pub(crate) fn lock_file(&self, name: &str) -> PathBuf {
        self.networks_dir().join(format!("{name}.lock"))
    }

    pub(crate) fn global_lock(&self) -> PathBuf {
        self.networks_dir().join(".networks.lock")
    }

    pub(crate) fn firewall_lock(&self) -> PathBuf {
        self.networks_dir().join(".firewall.lock")
    }
}

#[derive(Debug, Clone, Default)]
pub struct AttachOpts {
    /// Static address (`--ip`); otherwise the next free one.
    pub ip: Option<Ipv4Addr>,
    /// Static v6 address (`--ip6`) on a dual-stack network.
    pub ip6: Option<Ipv6Addr>,
    /// `--mac-address`; otherwise docker's 02:42:<ip bytes>.
    pub mac: Option<[u8; 6]>,
    /// Interface name inside the container; default `eth0`.
    pub ifname: Option<String>,
    /// The container's name, recorded for the resolver.
    pub name: String,
    /// Network aliases, recorded for the resolver.
    pub aliases: Vec<String>,
    pub ports: Vec<PortMapping>,
    /// The container's `--dns` servers: the resolver forwards this
    /// container's other queries to them instead of the host's (docker).
    pub dns: Vec<std::net::IpAddr>,
}

/// A container's place on a network, as recorded in the network's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub container_id: String,
    pub ip: Ipv4Addr,
    /// The v6 address on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    pub mac: [u8; 6],
    pub ifname: String,
    pub host_veth: String,
    pub netns_path: PathBuf,
    /// The container's name (resolvable on user-defined networks).
    #[serde(default)]
    pub name: String,
    pub aliases: Vec<String>,
    /// Ports with the host port resolved.
    pub ports: Vec<PortMapping>,
    /// Upstream servers for this container's queries (`--dns`); empty:
    /// the host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<std::net::IpAddr>,
    /// nft handles of the jump rules to this container's port chains, so
    /// releasing its ports needs no listing of the table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_rules: Vec<RuleHandle>,
    /// Published addresses whose host connections the connect program
    /// redirects to this container ([`crate::redirect`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<std::net::SocketAddr>,
}

/// One nft rule in berth's table: its chain and kernel handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleHandle {
    pub chain: String,
    pub handle: u64,
}

/// Result of [`crate::attach`].
#[derive(Debug)]
pub struct Attachment {
    pub lease: Lease,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    /// The network's v6 half (prefix length, gateway) when dual-stack.
    pub v6: Option<(u8, Ipv6Addr)>,
    /// Bound (not listening) sockets on each published host port. Keep them
    /// open for the container's life (e.g. in its monitor) so no other
    /// process can take the port; dropping them only loses that guard.
    pub port_reservations: Vec<OwnedFd>,
    /// Listening sockets on `[::1]` host ports with the container address
    /// to relay to: loopback-sourced IPv6 cannot be DNAT'ed to a bridge
    /// (no `route_localnet` for v6), so these take a userland relay
    /// ([`crate::proxy`]), as docker-proxy does.
    pub loopback6: Vec<(OwnedFd, std::net::SocketAddr)>,
}

/// A network's definition (resolved) and its leases: `networks/<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkState {
    pub id: String,
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub ip_range: Option<Ipv4Net>,
    pub internal: bool,
    pub mtu: Option<u32>,
    /// Set at creation when no MTU was asked for: the bridge and veths
    /// carry frames up to this size (and BIG TCP segments) inside the
    /// network, while containers' default routes keep docker's 1500 (see
    /// [`NetworkState::links`]). Networks made by an older berth have none
    /// and keep 1500-byte links, so one bridge never mixes the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_mtu: Option<u32>,
    pub labels: BTreeMap<String, String>,
    pub table: String,
    pub leases: BTreeMap<String, Lease>,
    /// Dual stack (`EnableIPv6`): the v6 subnet, gateway and range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6: Option<V6Config>,
}

/// The MTU docker gives a bridge network's containers when none is asked
/// for; berth keeps it on their default routes.
pub const DEFAULT_MTU: u32 = 1500;
/// The link MTU inside a network with no MTU asked for: the largest a veth
/// takes, next to loopback's 65536.
pub const NETWORK_LINK_MTU: u32 = 65535;
/// The GSO size (BIG TCP) of such a network's links: what Cilium uses; the
/// kernel's veth and bridge limit is 512 KiB.
pub const NETWORK_GSO_SIZE: u32 = 196_608;

/// The sizes of a network's links and of its containers' default routes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkSizes {
    /// The bridge's and veths' MTU (`None`: the kernel's 1500).
    pub mtu: Option<u32>,
    /// The GSO limit for both families (`None`: the kernel's 64 KiB).
    pub gso: Option<u32>,
    /// The MTU on containers' default routes (`None`: the link's).
    pub route_mtu: Option<u32>,
}

impl NetworkState {
    /// Traffic that stays inside the network (container to container, the
    /// host through the gateway or a published port on 127.0.0.1) moves in
    /// loopback-sized frames on a network with a `link_mtu`; anything
    /// routed beyond it still leaves with the MTU docker's containers have,
    /// so TCP's MSS and UDP fragmentation toward the outside stay as
    /// docker's. A user-set MTU is applied as docker does, to the links.
    pub fn links(&self) -> LinkSizes {
        match self.link_mtu {
            Some(link) => LinkSizes {
                mtu: Some(link),
                gso: Some(NETWORK_GSO_SIZE),
                route_mtu: Some(self.mtu.unwrap_or(DEFAULT_MTU)),
            },
            None => LinkSizes {
                mtu: self.mtu,
                ..Default::default()
            },
        }
    }
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(crate) fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(mtu: Option<u32>, link_mtu: Option<u32>) -> NetworkState {
        NetworkState {
            id: "0".repeat(64),
            name: "n".into(),
            bridge: "br-n".into(),
            subnet: "10.1.2.0/24".parse().unwrap(),
            gateway: "10.1.2.1".parse().unwrap(),
            ip_range: None,
            internal: false,
            mtu,
            link_mtu,
            labels: Default::default(),
            table: "t".into(),
            leases: Default::default(),
            v6: None,
        }
    }

    #[test]
    fn links_are_large_inside_the_network_and_routes_keep_docker_mtu() {
        let l = state(None, Some(NETWORK_LINK_MTU)).links();
        assert_eq!(l.mtu, Some(65535));
        assert_eq!(l.gso, Some(NETWORK_GSO_SIZE));
        assert_eq!(l.route_mtu, Some(1500));
        // A user-set MTU goes to the links, as docker's.
        let l = state(Some(1400), None).links();
        assert_eq!(
            l,
            LinkSizes {
                mtu: Some(1400),
                gso: None,
                route_mtu: None
            }
        );
        // A network from an older berth keeps its 1500-byte links.
        assert_eq!(state(None, None).links(), LinkSizes::default());
    }

    #[test]
    fn link_mtu_is_optional_in_older_state_files() {
        let mut v = serde_json::to_value(state(None, None)).unwrap();
        assert!(v.get("link_mtu").is_none());
        v["link_mtu"] = 65535.into();
        let st: NetworkState = serde_json::from_value(v).unwrap();
        assert_eq!(st.link_mtu, Some(65535));
    }
}
