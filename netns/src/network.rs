//! Networks and attachments: the state file is written first, the kernel
//! objects follow, so a crash at any point leaves a record that `detach`,
//! `Network::delete` and `cleanup_orphans` can undo from the state alone.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::Path;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::{Error, Result};
use crate::firewall::{self, NetRules};
use crate::link::Netlink;
use crate::types::*;
use crate::{ipam, namespace, pool, ports, redirect, state, sysctl};

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::io("read", "/dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// FNV-1a: a stable short name for the host end of a veth.
fn veth_name(network_id: &str, container: &str) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in network_id.bytes().chain([0]).chain(container.bytes()) {
        h = (h ^ b as u32).wrapping_mul(0x01000193);
    }
    format!("vb{h:08x}")
}

/// All network states in `env` (names sorted).
pub fn list(env: &NetEnv) -> Result<Vec<NetworkState>> {
    let dir = env.networks_dir();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read directory", &dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        if let Some(s) = state::read_json::<NetworkState>(&entry.path())? {
            out.push(s);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub struct Network;

impl Network {
    pub fn load(env: &NetEnv, name: &str) -> Result<NetworkState> {
        state::read_json(&env.state_file(name))?.ok_or_else(|| Error::NetworkNotFound(name.into()))
    }

    /// `network create`: records the network, creates its bridge, sets
    /// `ip_forward` and `route_localnet`, and adds its firewall rules.
    pub fn create(env: &NetEnv, cfg: &NetworkConfig) -> Result<NetworkState> {
        if !valid_name(&cfg.name, 128) {
            return Err(Error::InvalidNetworkName(cfg.name.clone()));
        }
        let _g = state::lock(&env.global_lock())?;
        if env.state_file(&cfg.name).exists() {
            return Err(Error::NetworkExists(cfg.name.clone()));
        }
        let id = random_hex(32)?;
        let bridge = cfg
            .bridge
            .clone()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        if !valid_name(&bridge, 15) {
            return Err(Error::InvalidBridgeName(bridge));
        }
        let others = list(env)?;
        if let Some(o) = others.iter().find(|o| o.bridge == bridge) {
            return Err(Error::InvalidConfig {
                what: "bridge name",
                value: bridge,
                why: format!("network {} already uses it", o.name),
            });
        }
        let nl = Netlink::new()?;
        let mut taken: Vec<Ipv4Net> = others.iter().map(|o| o.subnet).collect();
        let subnet = match cfg.subnet {
            Some(s) => {
                let s = s.trunc();
                // A bridge left from a crash may hold this very subnet.
                if nl.link_index(&bridge)?.is_none() {
                    taken.extend(nl.host_ipv4_networks()?);
                }
                pool::check_free(&s, &taken)?;
                s
            }
            None => {
                taken.extend(nl.host_ipv4_networks()?);
                pool::choose(&env.pools, &taken)?
            }
        };
        let gateway = match cfg.gateway {
            Some(g) if subnet.contains(&g) && g != subnet.network() && g != subnet.broadcast() => g,
            Some(g) => {
                return Err(Error::InvalidConfig {
                    what: "gateway",
                    value: g.to_string(),
                    why: format!("not a host address of subnet {subnet}"),
                })
            }
            None => subnet.hosts().next().ok_or_else(|| Error::InvalidConfig {
                what: "subnet",
                value: subnet.to_string(),
                why: "too small for a gateway and a container".into(),
            })?,
        };
        if let Some(r) = cfg.ip_range {
            if !subnet.contains(&r) {
                return Err(Error::InvalidConfig {
                    what: "ip-range",
                    value: r.to_string(),
                    why: format!("not inside subnet {subnet}"),
                });
            }
        }
        let v6 = if cfg.ipv6 || cfg.subnet6.is_some() {
            Some(resolve_v6(env, cfg, &others, &nl)?)
        } else {
            None
        };
        let st = NetworkState {
            id,
            name: cfg.name.clone(),
            bridge,
            subnet,
            gateway,
            ip_range: cfg.ip_range.map(|r| r.trunc()),
            internal: cfg.internal,
            mtu: cfg.mtu,
            link_mtu: cfg.mtu.is_none().then_some(NETWORK_LINK_MTU),
            labels: cfg.labels.clone(),
            table: env.table.clone(),
            leases: Default::default(),
            v6,
        };
        state::write_json(&env.state_file(&st.name), &st, true)?;
        let res = (|| {
            sysctl::enable_ip_forward()?;
            let gw =
                Ipv4Net::new(gateway, subnet.prefix_len()).map_err(|e| Error::InvalidConfig {
                    what: "subnet",
                    value: subnet.to_string(),
                    why: e.to_string(),
                })?;
            if st.v6.is_some() {
                sysctl::enable_ipv6_forward()?;
            }
            nl.ensure_bridge(&st.bridge, st.links(), gw, gateway6(&st)?)?;
            sysctl::enable_route_localnet(&st.bridge)?;
            let _f = state::lock(&env.firewall_lock())?;
            firewall::add_network(&st.table, &rules(&st))
        })();
        if let Err(e) = res {
            let _ = Self::teardown(env, &st, &nl);
            return Err(e);
        }
        Ok(st)
    }

    /// Recreates a network's bridge, sysctls and firewall rules when its
    /// bridge is gone (a host reboot keeps `networks/` but not links or nft
    /// tables; or the bridge was deleted by hand). Leases are untouched.
    /// Does nothing when the bridge exists.
    pub fn ensure_up(env: &NetEnv, name: &str) -> Result<NetworkState> {
        let _g = state::lock(&env.global_lock())?;
        let st = Self::load(env, name)?;
        let nl = Netlink::new()?;
        if nl.link_index(&st.bridge)?.is_some() {
            return Ok(st);
        }
        sysctl::enable_ip_forward()?;
        let gw =
            Ipv4Net::new(st.gateway, st.subnet.prefix_len()).map_err(|e| Error::InvalidConfig {
                what: "subnet",
                value: st.subnet.to_string(),
                why: e.to_string(),
            })?;
        if st.v6.is_some() {
            sysctl::enable_ipv6_forward()?;
        }
        nl.ensure_bridge(&st.bridge, st.links(), gw, gateway6(&st)?)?;
        sysctl::enable_route_localnet(&st.bridge)?;
        let _f = state::lock(&env.firewall_lock())?;
        // The table may have survived (bridge deleted by hand): replace the
        // network's rules rather than adding them twice.
        firewall::remove_network(&st.table, &st.name, &st.bridge, false)?;
        firewall::add_network(&st.table, &rules(&st))?;
        Ok(st)
    }

    /// `network rm`: refused while containers are attached.
    pub fn delete(env: &NetEnv, name: &str) -> Result<()> {
        let _g = state::lock(&env.global_lock())?;
        let st = Self::load(env, name)?;
        if !st.leases.is_empty() {
            return Err(Error::NetworkInUse {
                network: name.into(),
                containers: st.leases.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        Self::teardown(env, &st, &Netlink::new()?)
    }

    fn teardown(env: &NetEnv, st: &NetworkState, nl: &Netlink) -> Result<()> {
        {
            let _f = state::lock(&env.firewall_lock())?;
            let last = !list(env)?
                .iter()
                .any(|o| o.name != st.name && o.table == st.table);
            firewall::remove_network(&st.table, &st.name, &st.bridge, last)?;
            // The redirect programs live as long as the table.
            if last {
                if let Err(e) = redirect::unload(&env.port_redirect, &st.table) {
                    tracing::debug!("detaching the socket redirect programs: {e}");
                }
            }
        }
        nl.delete_link(&st.bridge)?;
        state::remove(&env.state_file(&st.name))?;
        state::remove(&env.lock_file(&st.name))
    }
}

fn rules(st: &NetworkState) -> NetRules<'_> {
    NetRules {
        name: &st.name,
        bridge: &st.bridge,
        subnet: st.subnet,
        internal: st.internal,
        gateway: st.gateway,
        subnet6: st.v6.map(|v| v.subnet),
    }
}

/// The bridge's v6 gateway address with the subnet's prefix.
fn gateway6(st: &NetworkState) -> Result<Option<Ipv6Net>> {
    st.v6
        .map(|v| {
            Ipv6Net::new(v.gateway, v.subnet.prefix_len()).map_err(|e| Error::InvalidConfig {
                what: "IPv6 subnet",
                value: v.subnet.to_string(),
                why: e.to_string(),
            })
        })
        .transpose()
}

/// The v6 half of a new network: the given subnet (checked against the
/// host's and other networks' v6 subnets) or the first free one of the
/// v6 pools, its gateway (default: the subnet's first address, `::1`, as
/// docker) and range.
fn resolve_v6(
    env: &NetEnv,
    cfg: &NetworkConfig,
    others: &[NetworkState],
    nl: &Netlink,
) -> Result<V6Config> {
    let mut taken: Vec<Ipv6Net> = others
        .iter()
        .filter_map(|o| o.v6.map(|v| v.subnet))
        .collect();
    taken.extend(nl.host_ipv6_networks()?);
    let subnet = match cfg.subnet6 {
        Some(s) => {
            let s = s.trunc();
            if s.prefix_len() > 126 {
                return Err(Error::InvalidConfig {
                    what: "IPv6 subnet",
                    value: s.to_string(),
                    why: "too small for a gateway and a container (use /126 or larger)".into(),
                });
            }
            pool::check_free6(&s, &taken)?;
            s
        }
        None => pool::choose6(&env.effective_pools6(), &taken)?,
    };
    let gateway = match cfg.gateway6 {
        Some(g) if subnet.contains(&g) && g != subnet.network() => g,
        Some(g) => {
            return Err(Error::InvalidConfig {
                what: "IPv6 gateway",
                value: g.to_string(),
                why: format!("not a host address of subnet {subnet}"),
            })
        }
        None => Ipv6Addr::from(u128::from(subnet.network()) + 1),
    };
    if let Some(r) = cfg.ip_range6 {
        if !subnet.contains(&r) {
            return Err(Error::InvalidConfig {
                what: "ip-range",
                value: r.to_string(),
                why: format!("not inside subnet {subnet}"),
            });
        }
    }
    Ok(V6Config {
        subnet,
        gateway,
        ip_range: cfg.ip_range6.map(|r| r.trunc()),
    })
}

fn check_container_id(id: &str) -> Result<()> {
    if valid_name(id, 64) {
        Ok(())
    } else {
        Err(Error::InvalidContainerId(id.into()))
    }
}

/// Connects the container whose namespace is bound at `netns_path` to
/// `network`: lease, veth (peer created inside the namespace), address,
/// routes, published ports.
pub fn attach(
    env: &NetEnv,
    network: &str,
    container_id: &str,
    netns_path: &Path,
    opts: &AttachOpts,
) -> Result<Attachment> {
    check_container_id(container_id)?;
    // Ports are checked against every network's leases: one lock for all.
    let _ports_guard = if opts.ports.is_empty() {
        None
    } else {
        Some(state::lock(&env.networks_dir().join(".ports.lock"))?)
    };
    let _l = state::lock(&env.lock_file(network))?;
    let mut st = Network::load(env, network)?;
    if st.leases.contains_key(container_id) {
        return Err(Error::AlreadyAttached {
            network: network.into(),
            container: container_id.into(),
        });
    }
    if st.internal && !opts.ports.is_empty() {
        return Err(Error::InternalPublish(network.into()));
    }
    let used: BTreeSet<Ipv4Addr> = st.leases.values().map(|l| l.ip).collect();
    let ip = match opts.ip {
        Some(ip) => ipam::request(network, st.subnet, st.gateway, &used, ip)?,
        None => ipam::allocate(network, st.subnet, st.ip_range, st.gateway, &used)?,
    };
    let ip6 = match (st.v6, opts.ip6) {
        (None, Some(_)) => {
            return Err(Error::NoIpv6 {
                network: network.into(),
            })
        }
        (None, None) => None,
        (Some(v6), want) => {
            let used6: BTreeSet<Ipv6Addr> = st.leases.values().filter_map(|l| l.ip6).collect();
            Some(match want {
                Some(a) => ipam::request6(network, v6.subnet, v6.gateway, &used6, a)?,
                None => ipam::allocate6(network, v6.subnet, v6.ip_range, v6.gateway, &used6)?,
            })
        }
    };
    // A v4-only container is reached over IPv6 through the monitor's
    // relay (docker-proxy's job), which holds `[::]` or `[::1]` only:
    // refuse other v6 host addresses rather than drop their traffic.
    if ip6.is_none() {
        if let Some(p) = opts.ports.iter().find(|p| match p.host_ip {
            Some(IpAddr::V6(h)) => !(h.is_unspecified() || h.is_loopback()),
            _ => false,
        }) {
            return Err(Error::NoIpv6Publish {
                host_ip: p.host_ip.map(|h| h.to_string()).unwrap_or_default(),
                port: p.host_port,
                container: container_id.into(),
            });
        }
    }
    let mut resolved = Vec::new();
    let mut reservations = Vec::new();
    let mut loopback6 = Vec::new();
    if !opts.ports.is_empty() {
        let published: Vec<PortMapping> = list(env)?
            .into_iter()
            .flat_map(|n| n.leases.into_values())
            .flat_map(|l| l.ports)
            .collect();
        for p in &opts.ports {
            let (r, fd) = if p.host_port_end > p.host_port {
                ports::reserve_in_range(p, &published, &resolved)?
            } else {
                let (r, fd) = ports::reserve(p)?;
                if let Some(other) = published
                    .iter()
                    .chain(resolved.iter())
                    .find(|o| ports::conflicts(o, &r))
                {
                    return Err(Error::PortAllocated {
                        host_ip: other
                            .host_ip
                            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
                            .to_string(),
                        port: r.host_port,
                    });
                }
                (r, fd)
            };
            // `[::1]` cannot be DNAT'ed to a bridge, and a v4-only
            // container has no v6 rules at all: the socket on `[::]` /
            // `[::1]` (listening, for TCP) is served by the monitor's relay,
            // to the container's v6 address or else its v4 one, as
            // docker-proxy does (on a dual-stack network every other v6
            // address is DNAT'ed first and never reaches it). A port
            // without host address takes `[::]` too.
            let relay_to =
                SocketAddr::new(ip6.map_or(IpAddr::V4(ip), IpAddr::V6), r.container_port);
            match r.host_ip {
                Some(IpAddr::V6(h)) if h.is_unspecified() || h.is_loopback() => {
                    loopback6.push((fd, relay_to));
                }
                None => {
                    reservations.push(fd);
                    if let Some(l) = ports::reserve6_any(&r)? {
                        loopback6.push((l, relay_to));
                    }
                }
                _ => reservations.push(fd),
            }
            resolved.push(r);
        }
    }
    let mut lease = Lease {
        container_id: container_id.into(),
        ip,
        ip6,
        mac: opts.mac.unwrap_or_else(|| ipam::mac_for(ip)),
        ifname: opts.ifname.clone().unwrap_or_else(|| "eth0".into()),
        host_veth: veth_name(&st.id, container_id),
        netns_path: netns_path.to_path_buf(),
        name: opts.name.clone(),
        aliases: opts.aliases.clone(),
        ports: resolved,
        dns: opts.dns.clone(),
        port_rules: Vec::new(),
        redirects: Vec::new(),
    };
    // The port rules go in before the lease is written, so one write
    // records their handles too (`release` drops them without listing the
    // table). A crash in between leaves rules no lease knows: they carry
    // the container's id, and `cleanup_orphans` removes them.
    // One netlink socket for the host's addresses (redirects) and the links.
    let nl = Netlink::new()?;
    if !lease.ports.is_empty() {
        let _f = state::lock(&env.firewall_lock())?;
        lease.port_rules = firewall::add_ports(&st.table, container_id, ip, ip6, &lease.ports)?;
        lease.redirects = add_redirects(env, &st, &lease, &nl);
    }
    st.leases.insert(container_id.into(), lease.clone());
    if let Err(e) = state::write_json(&env.state_file(network), &st, false) {
        let _ = remove_ports(env, &st, &lease);
        return Err(e);
    }
    if let Err(e) = plumb(&st, &lease, &nl) {
        let _ = unplumb(env, &st, &lease);
        st.leases.remove(container_id);
        let _ = state::write_json(&env.state_file(network), &st, false);
        return Err(e);
    }
    Ok(Attachment {
        lease,
        prefix_len: st.subnet.prefix_len(),
        gateway: st.gateway,
        v6: st.v6.map(|v| (v.subnet.prefix_len(), v.gateway)),
        port_reservations: reservations,
        loopback6,
    })
}

/// Makes the lease's links and addresses (its port rules are made first).
fn plumb(st: &NetworkState, lease: &Lease, nl: &Netlink) -> Result<()> {
    let ns = File::open(&lease.netns_path).map_err(|e| Error::Namespace {
        op: "open",
        path: lease.netns_path.clone(),
        source: e,
    })?;
    let sizes = st.links();
    let (bridge, gso_set) = nl.bridge(&st.bridge, sizes)?;
    nl.create_veth(
        &lease.host_veth,
        bridge,
        ns.as_raw_fd(),
        &lease.ifname,
        lease.mac,
        sizes,
    )?;
    if !gso_set {
        nl.set_bridge_gso(bridge, &st.bridge, sizes)?;
    }
    // Only a container with published ports can reach itself through them.
    if !lease.ports.is_empty() {
        sysctl::enable_hairpin(&lease.host_veth)?;
    }
    let addr =
        Ipv4Net::new(lease.ip, st.subnet.prefix_len()).map_err(|e| Error::InvalidConfig {
            what: "subnet",
            value: st.subnet.to_string(),
            why: e.to_string(),
        })?;
    let (ifname, gw) = (lease.ifname.clone(), (!st.internal).then_some(st.gateway));
    let v6 = match (st.v6, lease.ip6) {
        (Some(v), Some(a)) => Some((
            Ipv6Net::new(a, v.subnet.prefix_len()).map_err(|e| Error::InvalidConfig {
                what: "IPv6 subnet",
                value: v.subnet.to_string(),
                why: e.to_string(),
            })?,
            (!st.internal).then_some(v.gateway),
        )),
        _ => None,
    };
    // Before the link is up, so a v4-only interface never gets an address.
    let dual = v6.is_some();
    let ifn = ifname.clone();
    Netlink::in_namespace_with(&lease.netns_path, move || {
        sysctl::container_ipv6(&ifn, dual)
    })?
    .configure_container(&ifname, addr, gw, v6, sizes.route_mtu)
}

/// Socket-level redirects for the lease's TCP ports, under the firewall
/// lock; best effort, DNAT serves whatever is not redirected.
fn add_redirects(env: &NetEnv, st: &NetworkState, lease: &Lease, nl: &Netlink) -> Vec<SocketAddr> {
    if env.port_redirect == redirect::PortRedirect::Off || st.internal {
        return Vec::new();
    }
    let wildcard = lease
        .ports
        .iter()
        .any(|p| p.proto == Proto::Tcp && p.host_ip.is_none_or(|h| h.is_unspecified()));
    let host = if wildcard {
        match nl.host_addresses() {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("no socket redirects: {e}");
                return Vec::new();
            }
        }
    } else {
        Vec::new()
    };
    let redirects = redirect::redirects_for(&lease.ports, lease.ip, lease.ip6, &host);
    redirect::add(&env.port_redirect, &st.table, &redirects)
}

fn remove_ports(env: &NetEnv, st: &NetworkState, lease: &Lease) -> Result<()> {
    // Rules exist only for recorded ports: nothing to send otherwise.
    if lease.ports.is_empty() {
        return Ok(());
    }
    let _f = state::lock(&env.firewall_lock())?;
    // Redirects first: a host connection must not reach an address that is
    // about to be handed to another container.
    if let Err(e) = redirect::remove(&env.port_redirect, &st.table, &lease.redirects) {
        tracing::debug!("removing socket redirects: {e}");
    }
    // One netlink batch with the recorded handles; listing the table is the
    // fallback (no handles recorded, or the kernel refused stale ones).
    if !lease.port_rules.is_empty()
        && firewall::remove_ports_by_handle(&st.table, &lease.container_id, &lease.port_rules)
            .is_ok()
    {
        return Ok(());
    }
    firewall::remove_ports(&st.table, &lease.container_id)
}

fn unplumb(env: &NetEnv, st: &NetworkState, lease: &Lease) -> Result<()> {
    remove_ports(env, st, lease)?;
    // Deleting the host end removes the peer inside the namespace too.
    Netlink::new()?.delete_link(&lease.host_veth)
}

/// Disconnects a container: removes its port rules, its veth and its lease.
/// Works from the recorded state alone and does nothing the second time.
pub fn detach(env: &NetEnv, network: &str, container_id: &str) -> Result<()> {
    let _l = state::lock(&env.lock_file(network))?;
    let mut st = match state::read_json::<NetworkState>(&env.state_file(network))? {
        Some(st) => st,
        None => return Ok(()),
    };
    let Some(lease) = st.leases.get(container_id).cloned() else {
        return Ok(());
    };
    unplumb(env, &st, &lease)?;
    st.leases.remove(container_id);
    state::write_json(&env.state_file(network), &st, false)
}

/// Fast teardown when a container is gone for good: drops its port rules
/// and leases on every network, then deletes its namespace handle. The
/// veths are not deleted one by one (a veth deletion costs ~20 ms of RCU
/// waiting here): the kernel destroys them with the namespace, in the
/// background, once no process is left in it. Use [`detach`] for
/// `network disconnect` of a running container. Idempotent.
pub fn release(env: &NetEnv, container_id: &str, netns_path: &Path) -> Result<()> {
    each_lease_of(env, container_id, |st| {
        let Some(lease) = st.leases.remove(container_id) else {
            return Ok(false);
        };
        remove_ports(env, st, &lease)?;
        Ok(true)
    })?;
    namespace::delete(netns_path)
}

/// Runs `f` on the state of every network holding a lease of
/// `container_id`, under that network's lock and on a fresh read; writes
/// the state back where `f` says it changed it. Returns those networks.
fn each_lease_of(
    env: &NetEnv,
    container_id: &str,
    mut f: impl FnMut(&mut NetworkState) -> Result<bool>,
) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    for net in list(env)? {
        if !net.leases.contains_key(container_id) {
            continue;
        }
        let _l = state::lock(&env.lock_file(&net.name))?;
        let Some(mut st) = state::read_json::<NetworkState>(&env.state_file(&net.name))? else {
            continue;
        };
        if !st.leases.contains_key(container_id) || !f(&mut st)? {
            continue;
        }
        state::write_json(&env.state_file(&net.name), &st, false)?;
        changed.push(net.name.clone());
    }
    Ok(changed)
}

/// For `container prune` / `network prune` after a crash: detaches every
/// lease whose container is not in `live`, deletes its namespace handle,
/// and drops port rules of containers no lease knows. Returns the
/// container ids cleaned up.
pub fn cleanup_orphans(env: &NetEnv, live: &[&str]) -> Result<Vec<String>> {
    let mut cleaned = Vec::new();
    let mut tables = BTreeSet::from([env.table.clone()]);
    let mut known = BTreeSet::new();
    for st in list(env)? {
        tables.insert(st.table.clone());
        for (id, lease) in &st.leases {
            if live.contains(&id.as_str()) {
                known.insert(id.clone());
                continue;
            }
            detach(env, &st.name, id)?;
            namespace::delete(&lease.netns_path)?;
            cleaned.push(id.clone());
        }
    }
    let _f = state::lock(&env.firewall_lock())?;
    let live_ips: Vec<IpAddr> = list(env)?
        .iter()
        .flat_map(|st| st.leases.values())
        .flat_map(|l| std::iter::once(IpAddr::V4(l.ip)).chain(l.ip6.map(IpAddr::V6)))
        .collect();
    for table in &tables {
        if let Err(e) = redirect::sweep(&env.port_redirect, table, &live_ips) {
            tracing::debug!("sweeping socket redirects: {e}");
        }
    }
    for table in tables {
        for id in firewall::containers_with_rules(&table)? {
            if !known.contains(&id) && !live.contains(&id.as_str()) {
                firewall::remove_ports(&table, &id)?;
                cleaned.push(id);
            }
        }
    }
    cleaned.sort();
    cleaned.dedup();
    Ok(cleaned)
}

/// `rename`: the container's lease on every network takes its new name at
/// once (docker renames the DNS record without a restart); the resolver
/// sees the rewritten state files. Returns the networks changed.
pub fn rename_leases(env: &NetEnv, container_id: &str, new_name: &str) -> Result<Vec<String>> {
    each_lease_of(env, container_id, |st| {
        match st.leases.get_mut(container_id) {
            Some(lease) if lease.name != new_name => {
                lease.name = new_name.to_string();
                Ok(true)
            }
            _ => Ok(false),
        }
    })
}
