//! A container's network at start and exit: the monitor calls [`setup`]
//! before the runtime creates the container (namespace bound under the run
//! dir, one veth per network, ports), [`apply`] on the finished OCI spec,
//! keeps the returned [`Sandbox`] (the host-port reservations) for the
//! container's life, and calls [`release`] when the process is gone.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use oci_spec::runtime::Spec;

use super::endpoints::{self, Live};
use super::Net;
use crate::engine::container::{liveness, ContainerRecord, ContainerStore};

/// What the monitor holds while the container runs.
#[derive(Debug, Default)]
pub struct Sandbox {
    /// Bound sockets on the published host ports (docker-proxy's guard).
    _reservations: Vec<OwnedFd>,
    /// `[::1]` listeners waiting for [`Sandbox::start_relays`], and the
    /// container addresses they relay to.
    loopback6: Vec<(OwnedFd, std::net::SocketAddr)>,
    /// Running `[::1]` relays; dropped (stopped) with the sandbox.
    relays: Vec<netns::proxy::Relay>,
    /// The network config `setup` read, for `apply` (one read per start).
    net: Option<Net>,
}

impl Sandbox {
    /// Starts the `[::1]` relays (threads). Called once the runtime has
    /// created the container: the runtime forks in this process, and a
    /// fork while another thread may hold the allocator's lock is unsafe.
    /// Connections made before are queued on the listening sockets.
    pub fn start_relays(&mut self) {
        for (fd, target) in self.loopback6.drain(..) {
            match netns::proxy::spawn(fd, target) {
                Ok(r) => self.relays.push(r),
                Err(e) => eprintln!("berth: cannot relay [::1] to {target}: {e}"),
            }
        }
    }
}

/// How the container's network namespace is made.
pub enum Mode {
    Host,
    None,
    /// Another container's namespace.
    Container(String),
    /// berth's own namespace with bridge networks.
    Bridge,
}

pub fn mode(rec: &ContainerRecord) -> Mode {
    let m = rec.host_config.network_mode.as_str();
    match m {
        "host" => Mode::Host,
        // Records from before bridge networks defaulted to none.
        "none" | "" => Mode::None,
        _ => match m.strip_prefix("container:") {
            Some(c) => Mode::Container(c.to_string()),
            None => Mode::Bridge,
        },
    }
}

fn endpoint_id(network_id: &str, container: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        format!("{network_id}/{container}").as_bytes(),
    ))
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| anyhow!("invalid MAC address: {s}"))?;
    v.try_into()
        .map_err(|_| anyhow!("invalid MAC address: {s}"))
}

/// Port reservations, and `[::1]` listeners with their relay targets.
pub type Attached = (Vec<OwnedFd>, Vec<(OwnedFd, std::net::SocketAddr)>);

/// Attaches container `rec` to one network; records the attachment.
pub fn attach_one(
    cs: &ContainerStore,
    net: &Net,
    rec: &ContainerRecord,
    network: &str,
    ifname: &str,
    ports: Vec<netns::PortMapping>,
) -> Result<Attached> {
    let mut st = net.find(network)?;
    // A reboot (or `ip link del`) removes bridges and nft tables but not
    // berth's records: bring the network back before attaching.
    if !std::path::Path::new("/sys/class/net")
        .join(&st.bridge)
        .exists()
    {
        st = netns::Network::ensure_up(&net.env, &st.name)
            .map_err(|e| anyhow!("cannot recreate network {}: {e}", st.name))?;
    }
    let cn = endpoints::load(cs, &rec.id)?;
    let ep = cn.endpoint(network).cloned().unwrap_or_default();
    let opts = netns::AttachOpts {
        ip: ep.ip,
        ip6: ep.ip6,
        mac: ep.mac.as_deref().map(parse_mac).transpose()?,
        ifname: Some(ifname.to_string()),
        name: rec.name.clone(),
        aliases: ep.aliases.clone(),
        ports,
        // docker: on user-defined networks `--dns` servers are the
        // embedded resolver's upstreams for this container.
        dns: rec
            .host_config
            .dns
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
    };
    let path = net.netns_path(&rec.id);
    let a = netns::attach(&net.env, &st.name, &rec.id, &path, &opts)
        .map_err(|e| anyhow!("Error response from daemon: {e}"))?;
    let live = Live {
        network_id: st.id.clone(),
        endpoint_id: endpoint_id(&st.id, &rec.id),
        ip: a.lease.ip,
        prefix_len: a.prefix_len,
        gateway: Some(a.gateway),
        ip6: a.lease.ip6,
        prefix_len6: a.v6.map(|v| v.0).unwrap_or(0),
        gateway6: a.v6.map(|v| v.1),
        mac: netns::format_mac(&a.lease.mac),
        ifname: a.lease.ifname.clone(),
        ports: a.lease.ports.clone(),
    };
    endpoints::update(cs, &rec.id, false, |n| {
        n.sandbox_key = Some(path.clone());
        match n.endpoints.iter_mut().find(|e| e.network == network) {
            Some(e) => e.live = Some(live),
            None => n.endpoints.push(endpoints::Endpoint {
                network: network.to_string(),
                live: Some(live),
                ..Default::default()
            }),
        }
        Ok(())
    })?;
    Ok((a.port_reservations, a.loopback6))
}

/// Creates the namespace and attaches every requested network; ports go
/// to the first network. On error nothing is left attached.
pub fn setup(cs: &ContainerStore, rec: &ContainerRecord) -> Result<Sandbox> {
    if !matches!(mode(rec), Mode::Bridge) {
        return Ok(Sandbox::default());
    }
    let net = Net::new(&cs.paths)?;
    let path = net.netns_path(&rec.id);
    // Leftovers of a previous run (a killed monitor, a restart).
    release_with(cs, &net, &rec.id)?;
    netns::namespace::create(&path)
        .map_err(|e| anyhow!("cannot create the network namespace: {e}"))?;
    let res = (|| -> Result<Attached> {
        let cn = endpoints::load_for(cs, rec)?;
        let hc = &rec.host_config;
        let mut ports = super::ports::mappings(
            &hc.port_bindings,
            hc.publish_all_ports,
            &rec.config.exposed_ports,
        )?;
        let (mut fds, mut lo6) = (Vec::new(), Vec::new());
        for (i, ep) in cn.endpoints.iter().enumerate() {
            let p = std::mem::take(&mut ports);
            let (f, l) = attach_one(cs, &net, rec, &ep.network, &format!("eth{i}"), p)?;
            fds.extend(f);
            lo6.extend(l);
        }
        Ok((fds, lo6))
    })();
    match res {
        Ok((fds, loopback6)) => Ok(Sandbox {
            _reservations: fds,
            loopback6,
            relays: Vec::new(),
            net: Some(net),
        }),
        Err(e) => {
            let _ = release_with(cs, &net, &rec.id);
            Err(e)
        }
    }
}

/// Points the spec's network namespace at the container's own (or
/// another container's) and writes hosts / resolv.conf for its networks.
pub fn apply(
    cs: &ContainerStore,
    rec: &ContainerRecord,
    sandbox: Option<&Sandbox>,
    dir: &std::path::Path,
    spec: Spec,
) -> Result<Spec> {
    let path: PathBuf = match mode(rec) {
        Mode::Host | Mode::None => return Ok(spec),
        Mode::Container(other) => {
            let id = cs
                .resolve(&other)
                .map_err(|_| anyhow!("Error response from daemon: No such container: {other}"))?;
            let st = liveness::current(cs, &id)?;
            if !st.running() || st.pid <= 0 {
                return Err(anyhow!("Error response from daemon: cannot join network of a non running container: {other}"));
            }
            PathBuf::from(format!("/proc/{}/ns/net", st.pid))
        }
        Mode::Bridge => {
            let read;
            let net = match sandbox.and_then(|s| s.net.as_ref()) {
                Some(net) => net,
                None => {
                    read = Net::new(&cs.paths)?;
                    &read
                }
            };
            write_etc(cs, net, rec, dir)?;
            net.netns_path(&rec.id)
        }
    };
    let spec = super::link_env::apply(cs, rec, spec)?;
    let mut v = serde_json::to_value(&spec)?;
    if let Some(nss) = v
        .pointer_mut("/linux/namespaces")
        .and_then(|n| n.as_array_mut())
    {
        for ns in nss.iter_mut() {
            if ns.get("type").and_then(|t| t.as_str()) == Some("network") {
                ns["path"] = serde_json::json!(path);
            }
        }
    }
    serde_json::from_value(v).context("generated OCI spec is invalid")
}

/// hosts and resolv.conf of a container on bridge networks.
fn write_etc(
    cs: &ContainerStore,
    net: &Net,
    rec: &ContainerRecord,
    dir: &std::path::Path,
) -> Result<()> {
    let cn = endpoints::load(cs, &rec.id)?;
    super::etc::write_hosts(cs, rec, dir, &cn)?;
    setup_user_network_dns(net, rec, dir, &cn)
}

/// DNS on user-defined networks (docker's embedded resolver): the
/// container's resolv.conf names the gateway of its first user-defined
/// network, where berth's resolver answers; the resolver is started on
/// demand here (`engine::dns::ensure_running`). On the default bridge the
/// host's resolvers stay (as docker).
pub fn setup_user_network_dns(
    net: &Net,
    rec: &ContainerRecord,
    dir: &std::path::Path,
    cn: &endpoints::ContainerNet,
) -> Result<()> {
    // The resolver listens on the gateway address of internal networks
    // too (they have no default route, but the address is on the bridge).
    let Some(ep) = cn
        .endpoints
        .iter()
        .find(|e| e.network != super::DEFAULT && e.live.is_some())
    else {
        return Ok(());
    };
    let gw = match ep.live.as_ref().and_then(|l| l.gateway) {
        Some(gw) => gw,
        None => net.find(&ep.network)?.gateway,
    };
    crate::engine::dns::ensure_running(&net.paths.root)?;
    let p = dir.join("resolv.conf");
    // In place, as `etcfiles` wrote it a moment ago (no reader yet, and
    // no second inode per start).
    std::fs::write(&p, super::etc::user_network_resolv_conf(gw, rec).as_bytes())
        .with_context(|| format!("cannot write {}", p.display()))
}

fn release_with(cs: &ContainerStore, net: &Net, id: &str) -> Result<()> {
    let path = net.netns_path(id);
    netns::release(&net.env, id, &path)
        .map_err(|e| anyhow!("cannot release the network of container {id}: {e}"))?;
    let live = endpoints::load(cs, id)
        .map(|n| n.sandbox_key.is_some() || n.endpoints.iter().any(|e| e.live.is_some()))
        .unwrap_or(false);
    if live {
        endpoints::update(cs, id, false, |n| {
            n.sandbox_key = None;
            for e in &mut n.endpoints {
                e.live = None;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// The container's process is gone: drop its leases, port rules and
/// namespace handle (the kernel removes the veths with the namespace).
pub fn release(cs: &ContainerStore, id: &str) -> Result<()> {
    let rec = match cs.load(id) {
        Ok(r) => r,
        Err(_) => return Ok(()),
    };
    if !matches!(mode(&rec), Mode::Bridge) {
        return Ok(());
    }
    release_with(cs, &Net::new(&cs.paths)?, id)
}

/// `container prune` / `network prune`: leases, namespaces and port rules
/// of containers whose monitor is gone (killed) or that no longer exist.
pub fn cleanup_orphans(cs: &ContainerStore) -> Result<Vec<String>> {
    let net = Net::new(&cs.paths)?;
    if !net.paths.root.join("networks").exists() && !net.paths.run.join("netns").exists() {
        return Ok(Vec::new());
    }
    let live: Vec<String> = cs
        .list()?
        .into_iter()
        .filter(|r| liveness::monitor_alive(cs, &r.id))
        .map(|r| r.id)
        .collect();
    let refs: Vec<&str> = live.iter().map(String::as_str).collect();
    let cleaned = netns::cleanup_orphans(&net.env, &refs)
        .map_err(|e| anyhow!("cannot clean up network leftovers: {e}"))?;
    // Namespace handles nobody leases (a monitor killed between create and attach).
    if let Ok(rd) = std::fs::read_dir(net.paths.run.join("netns")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !live.contains(&name) {
                let _ = netns::namespace::delete(&e.path());
            }
        }
    }
    for id in &cleaned {
        if cs.dir(id).join("network.json").exists() {
            let _ = endpoints::update(cs, id, false, |n| {
                n.sandbox_key = None;
                n.endpoints.iter_mut().for_each(|e| e.live = None);
                Ok(())
            });
        }
    }
    Ok(cleaned)
}
