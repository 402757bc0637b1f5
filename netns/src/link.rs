//! Links, addresses and routes over rtnetlink (no `ip` binary).
//!
//! A [`Netlink`] owns one netlink socket, driven by a current-thread tokio
//! runtime made once per thread (building one costs an epoll set, an
//! eventfd and a timer wheel: too much to repeat per call on the start path).
//! A socket belongs to the network namespace it was created in, so
//! [`Netlink::in_namespace`] creates one on a helper thread that joined the
//! container's namespace and then uses it from the calling thread.

use std::cell::{OnceCell, RefCell};
use std::future::Future;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::path::Path;

use futures_util::future::{select, Either};
use futures_util::TryStreamExt;
use ipnet::{Ipv4Net, Ipv6Net};
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteMetric};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::proto::Connection;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use crate::error::{Error, Result};
use crate::types::LinkSizes;

const EEXIST: i32 = libc::EEXIST;

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

fn nl_err(op: &'static str, object: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let object = object.into();
    move |source| Error::Netlink { op, object, source }
}

/// The loopback device's index in every network namespace (the kernel's
/// `LOOPBACK_IFINDEX`), so `lo` needs no lookup.
const LOOPBACK_INDEX: u32 = 1;

thread_local! {
    static RUNTIME: OnceCell<tokio::runtime::Runtime> = const { OnceCell::new() };
}

/// Runs `f` with this thread's runtime, building it on first use.
fn with_runtime<T>(f: impl FnOnce(&tokio::runtime::Runtime) -> T) -> Result<T> {
    RUNTIME.with(|cell| {
        if cell.get().is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(|e| Error::io("start tokio runtime for", "netlink", e))?;
            let _ = cell.set(rt);
        }
        match cell.get() {
            Some(rt) => Ok(f(rt)),
            None => Err(Error::ThreadPanicked("netlink runtime init")),
        }
    })
}

/// Adds the GSO limits of `sizes` to a link message. Both the IPv6 and the
/// IPv4 attribute: IPv4 BIG TCP has its own since Linux 6.3, and older
/// kernels skip attributes they do not know in RTM_NEWLINK/SETLINK.
fn with_gso<T>(msg: LinkMessageBuilder<T>, sizes: LinkSizes) -> LinkMessageBuilder<T> {
    match sizes.gso {
        Some(g) => msg
            .append_extra_attribute(LinkAttribute::GsoMaxSize(g))
            .append_extra_attribute(LinkAttribute::GsoIpv4MaxSize(g)),
        None => msg,
    }
}

fn with_route_mtu(mut route: RouteMessage, mtu: Option<u32>) -> RouteMessage {
    if let Some(m) = mtu {
        route
            .attributes
            .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(m)]));
    }
    route
}

pub struct Netlink {
    /// Polled inside each request (never spawned), so dropping the
    /// `Netlink` closes the socket at once: a socket left open in a
    /// container namespace would keep that namespace, and its veth, alive.
    conn: RefCell<Connection<RouteNetlinkMessage, TokioSocket>>,
    handle: Handle,
    /// The runtime is per thread: a `Netlink` stays on the thread that made it.
    _not_send: PhantomData<*const ()>,
}

impl Netlink {
    /// Opens a netlink socket in the calling thread's network namespace.
    pub fn new() -> Result<Self> {
        let sock = Socket::new(NETLINK_ROUTE)
            .map_err(|e| Error::io("open netlink socket", "rtnetlink", e))?;
        Self::from_socket(sock)
    }

    /// Opens a netlink socket inside the namespace bound at `path` (on a
    /// helper thread) and returns it for use on this thread: requests on it
    /// act in that namespace.
    pub fn in_namespace(path: &Path) -> Result<Self> {
        Self::in_namespace_with(path, || Ok(()))
    }

    /// [`Self::in_namespace`], running `prep` on the helper thread inside
    /// the namespace first (e.g. its sysctls): no second thread.
    pub fn in_namespace_with(
        path: &Path,
        prep: impl FnOnce() -> Result<()> + Send,
    ) -> Result<Self> {
        let sock = crate::namespace::run_in(path, || {
            prep()?;
            Socket::new(NETLINK_ROUTE)
                .map_err(|e| Error::io("open netlink socket in", path.display().to_string(), e))
        })?;
        Self::from_socket(sock)
    }

    fn from_socket(sock: Socket) -> Result<Self> {
        sock.set_non_blocking(true)
            .map_err(|e| Error::io("set non-blocking", "netlink socket", e))?;
        let fd = sock.into_raw_fd();
        // TokioSocket registers the fd with the runtime's reactor, which
        // must be entered; the fd is non-blocking already.
        let tsock = with_runtime(|rt| {
            let _guard = rt.enter();
            // SAFETY: `fd` comes from `into_raw_fd` above; ownership moves here.
            unsafe { TokioSocket::from_raw_fd(fd) }
        })?;
        let (conn, handle, _) = rtnetlink::from_socket(tsock);
        Ok(Netlink {
            conn: RefCell::new(conn),
            handle,
            _not_send: PhantomData,
        })
    }

    /// Drives `fut` and the connection together until `fut` is done.
    fn run<F: Future>(&self, fut: F) -> Result<F::Output> {
        let mut conn = self.conn.borrow_mut();
        with_runtime(|rt| {
            rt.block_on(async {
                let fut = std::pin::pin!(fut);
                match select(fut, &mut *conn).await {
                    Either::Left((out, _)) => out,
                    // The socket closed: the request now fails on its own.
                    Either::Right(((), fut)) => fut.await,
                }
            })
        })
    }

    pub fn link_index(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.link(name)?.map(|msg| msg.header.index))
    }

    /// The kernel's description of link `name`, if it exists.
    fn link(&self, name: &str) -> Result<Option<LinkMessage>> {
        let h = self.handle.clone();
        let res = self.run(async move {
            h.link()
                .get()
                .match_name(name.to_string())
                .execute()
                .try_next()
                .await
        })?;
        match res {
            Ok(msg) => Ok(msg),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_err("get link", name)(e)),
        }
    }

    /// A bridge's index, and whether its GSO limit is `sizes.gso` already
    /// (or none is asked), from one lookup.
    pub fn bridge(&self, name: &str, sizes: LinkSizes) -> Result<(u32, bool)> {
        let msg = self
            .link(name)?
            .ok_or_else(|| Error::LinkNotFound(name.to_string()))?;
        let gso_set = sizes.gso.is_none_or(|g| {
            msg.attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::GsoIpv4MaxSize(v) if *v == g))
        });
        Ok((msg.header.index, gso_set))
    }

    fn require_index(&self, name: &str) -> Result<u32> {
        self.link_index(name)?
            .ok_or_else(|| Error::LinkNotFound(name.to_string()))
    }

    /// Creates bridge `name` (or reuses it), sets its MTU, adds `gateway`
    /// with the subnet's prefix and brings it up. Returns its index.
    /// `gateway6`: the v6 gateway of a dual-stack network, added without
    /// duplicate address detection (a bridge without ports has no carrier,
    /// so DAD would keep it tentative and unusable until the first veth).
    pub fn ensure_bridge(
        &self,
        name: &str,
        sizes: LinkSizes,
        gateway: Ipv4Net,
        gateway6: Option<Ipv6Net>,
    ) -> Result<u32> {
        let h = self.handle.clone();
        // A bridge whose address was never set takes the lowest MAC of its
        // ports, so it changes as containers come and go, and containers
        // keep sending to the old gateway MAC from their ARP cache (lost
        // traffic to the gateway, DNS included, for up to a minute). A set
        // address stays: 02:42:<gateway>, as containers get 02:42:<ip>.
        let o = gateway.addr().octets();
        let mac = vec![0x02, 0x42, o[0], o[1], o[2], o[3]];
        let mut msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Bridge)
            .name(name.to_string())
            .address(mac.clone())
            .up();
        if let Some(mtu) = sizes.mtu {
            msg = msg.mtu(mtu);
        }
        let msg = msg.build();
        match self.run(h.link().add(msg).execute())? {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(EEXIST) => {}
            Err(e) => return Err(nl_err("create bridge", name)(e)),
        }
        let index = self.require_index(name)?;
        self.add_address(index, name, gateway)?;
        if let Some(g6) = gateway6 {
            self.add_address6(index, name, g6)?;
        }
        // An existing bridge may be down or carry other sizes: set them.
        let mut set = LinkUnspec::new_with_index(index).address(mac).up();
        if let Some(mtu) = sizes.mtu {
            set = set.mtu(mtu);
        }
        self.run(h.link().set(set.build()).execute())?
            .map_err(nl_err("set up", name))?;
        Ok(index)
    }

    pub fn add_address(&self, index: u32, name: &str, addr: Ipv4Net) -> Result<()> {
        let h = self.handle.clone();
        match self.run(
            h.address()
                .add(index, IpAddr::V4(addr.addr()), addr.prefix_len())
                .execute(),
        )? {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(nl_err("add address", format!("{addr} on {name}"))(e)),
        }
    }

    /// A v6 address with `nodad`: usable at once (docker's addresses are
    /// unique by IPAM, so detection would only delay the first packets).
    pub fn add_address6(&self, index: u32, name: &str, addr: Ipv6Net) -> Result<()> {
        let h = self.handle.clone();
        let mut req = h
            .address()
            .add(index, IpAddr::V6(addr.addr()), addr.prefix_len());
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        match self.run(req.execute())? {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(nl_err("add address", format!("{addr} on {name}"))(e)),
        }
    }

    /// Deletes a link by name; a missing link is not an error.
    pub fn delete_link(&self, name: &str) -> Result<()> {
        let Some(index) = self.link_index(name)? else {
            return Ok(());
        };
        let h = self.handle.clone();
        match self.run(h.link().del(index).execute())? {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(nl_err("delete link", name)(e)),
        }
    }

    /// Creates a veth pair in one request: `host` attached to bridge
    /// `bridge_index` and up, its peer `peer_name` created directly in the
    /// namespace `netns_fd` with `mac` and `sizes` (netavark's way: the peer
    /// never appears on the host, so its name cannot clash there). The peer
    /// cannot be born up (this kernel answers ENOTCONN to IFF_UP on a peer,
    /// as `ip link add ... peer ... up` shows), so
    /// [`Self::configure_container`] sets it up.
    pub fn create_veth(
        &self,
        host: &str,
        bridge_index: u32,
        netns_fd: RawFd,
        peer_name: &str,
        mac: [u8; 6],
        sizes: LinkSizes,
    ) -> Result<()> {
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer_name.to_string())
            .address(mac.to_vec())
            .setns_by_fd(netns_fd);
        let mut msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_string())
            .controller(bridge_index)
            .up();
        if let Some(mtu) = sizes.mtu {
            peer = peer.mtu(mtu);
            msg = msg.mtu(mtu);
        }
        // Only the host end takes large GSO segments (the host's own
        // traffic into the container). The container's end keeps 64 KiB:
        // what a container sends to the outside is forwarded to the host's
        // NIC, and a segment over that NIC's GSO limit is cut into
        // MTU-sized packets in software (8 Gbit/s instead of 22 here).
        let peer = peer.build();
        let msg = with_gso(msg, sizes)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        let h = self.handle.clone();
        let err = nl_err("create veth", format!("{host} (peer {peer_name})"));
        match self.run(h.link().add(msg.clone()).execute())? {
            Ok(()) => Ok(()),
            // Left by a released namespace the kernel has not destroyed yet
            // (or by a crash): the name is ours, so replace it.
            Err(e) if errno(&e) == Some(EEXIST) => {
                self.delete_link(host)?;
                self.run(h.link().add(msg).execute())?.map_err(err)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// Sets a bridge's GSO limits. Only once it has a port: a bridge's own
    /// TSO limit is the kernel's 64 KiB until a port raises it, and the
    /// bridge does not take its ports' GSO limits itself. The caller skips
    /// it when [`Self::bridge`] found the limit set: a SETLINK takes the
    /// RTNL lock, which every start's veth creation needs too.
    pub fn set_bridge_gso(&self, index: u32, name: &str, sizes: LinkSizes) -> Result<()> {
        if sizes.gso.is_none() {
            return Ok(());
        }
        let h = self.handle.clone();
        let msg = with_gso(LinkUnspec::new_with_index(index), sizes).build();
        self.run(h.link().set(msg).execute())?
            .map_err(nl_err("set GSO size", name))
    }

    fn set_up(&self, index: u32, name: &str) -> Result<()> {
        let h = self.handle.clone();
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.run(h.link().set(msg).execute())?
            .map_err(nl_err("set up", name))
    }

    /// Inside a container namespace: `lo` up (its index is fixed), `ifname` up
    /// with `addr`, and a default route via `gateway` (none for internal
    /// networks, as docker). Four requests and one lookup.
    /// `v6`: the address and (not internal) gateway on a dual-stack network.
    /// `route_mtu`: the default routes' MTU, when it is not the link's.
    pub fn configure_container(
        &self,
        ifname: &str,
        addr: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        v6: Option<(Ipv6Net, Option<Ipv6Addr>)>,
        route_mtu: Option<u32>,
    ) -> Result<()> {
        self.set_up(LOOPBACK_INDEX, "lo")?;
        let index = self.require_index(ifname)?;
        self.add_address(index, ifname, addr)?;
        if let Some((a6, _)) = v6 {
            self.add_address6(index, ifname, a6)?;
        }
        self.set_up(index, ifname)?;
        if let Some((_, Some(gw6))) = v6 {
            let route = RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(gw6)
                .output_interface(index)
                .build();
            let route = with_route_mtu(route, route_mtu);
            let h = self.handle.clone();
            match self.run(h.route().add(route).execute())? {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(EEXIST) => {}
                Err(e) => {
                    return Err(nl_err(
                        "add default IPv6 route",
                        format!("via {gw6} dev {ifname}"),
                    )(e))
                }
            }
        }
        let Some(gateway) = gateway else {
            return Ok(());
        };
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        let route = with_route_mtu(route, route_mtu);
        let h = self.handle.clone();
        match self.run(h.route().add(route).execute())? {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(nl_err(
                "add default route",
                format!("via {gateway} dev {ifname}"),
            )(e)),
        }
    }

    /// The host's addresses (of one family, or all), with their prefix
    /// lengths.
    fn addresses(&self, family: Option<AddressFamily>) -> Result<Vec<(IpAddr, u8)>> {
        let h = self.handle.clone();
        let addrs: Vec<_> = self
            .run(h.address().get().execute().try_collect())?
            .map_err(nl_err("list addresses", "host"))?;
        let mut out = Vec::new();
        for a in addrs
            .iter()
            .filter(|a| family.is_none_or(|f| a.header.family == f))
        {
            for attr in &a.attributes {
                if let AddressAttribute::Address(ip) = attr {
                    out.push((*ip, a.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// The host's own addresses, both families, link-local v6 left out
    /// (they need a scope to be reached).
    pub fn host_addresses(&self) -> Result<Vec<IpAddr>> {
        Ok(self
            .addresses(None)?
            .into_iter()
            .map(|(ip, _)| ip)
            .filter(|ip| match ip {
                IpAddr::V4(_) => true,
                IpAddr::V6(a) => a.segments()[0] & 0xffc0 != 0xfe80,
            })
            .collect())
    }

    /// The prefixes of one family the host already uses: its addresses'
    /// (address, prefix length) and its routes' destinations, the default
    /// route excluded.
    fn host_prefixes(&self, v6: bool) -> Result<Vec<(IpAddr, u8)>> {
        let h = self.handle.clone();
        let family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let mut out = self.addresses(Some(family))?;
        let query = if v6 {
            RouteMessageBuilder::<Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<Ipv4Addr>::new().build()
        };
        let routes: Vec<_> = self
            .run(h.route().get(query).execute().try_collect())?
            .map_err(nl_err("list routes", "host"))?;
        for r in routes {
            let len = r.header.destination_prefix_length;
            if len == 0 {
                continue;
            }
            for attr in &r.attributes {
                match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                        out.push((IpAddr::V4(*ip), len))
                    }
                    RouteAttribute::Destination(RouteAddress::Inet6(ip)) => {
                        out.push((IpAddr::V6(*ip), len))
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// Every IPv4 network the host already uses: its addresses' subnets and
    /// its routes' destinations (the default route excluded).
    pub fn host_ipv4_networks(&self) -> Result<Vec<Ipv4Net>> {
        Ok(self
            .host_prefixes(false)?
            .into_iter()
            .filter_map(|(ip, len)| match ip {
                IpAddr::V4(ip) => Ipv4Net::new(ip, len).ok().map(|n| n.trunc()),
                IpAddr::V6(_) => None,
            })
            .collect())
    }

    /// Every IPv6 network the host already uses (addresses' prefixes and
    /// routes' destinations, link-local and the default route excluded).
    pub fn host_ipv6_networks(&self) -> Result<Vec<Ipv6Net>> {
        let mut out: Vec<Ipv6Net> = self
            .host_prefixes(true)?
            .into_iter()
            .filter_map(|(ip, len)| match ip {
                IpAddr::V6(ip) => Ipv6Net::new(ip, len).ok().map(|n| n.trunc()),
                IpAddr::V4(_) => None,
            })
            .collect();
        // fe80::/64 is on every link and never a berth subnet; multicast
        // and loopback routes are not networks.
        out.retain(|n| {
            let first = n.network().segments()[0];
            first & 0xffc0 != 0xfe80 && first & 0xff00 != 0xff00 && !n.network().is_loopback()
        });
        Ok(out)
    }

    /// Names of the host's links (for tests and orphan sweeps).
    pub fn link_names(&self) -> Result<Vec<String>> {
        let h = self.handle.clone();
        let links: Vec<LinkMessage> = self
            .run(h.link().get().execute().try_collect())?
            .map_err(nl_err("list links", "host"))?;
        Ok(links
            .iter()
            .flat_map(|l| l.attributes.iter())
            .filter_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })
            .collect())
    }
}
