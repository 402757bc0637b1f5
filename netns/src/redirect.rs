//! Socket-level redirection of the host's own connections to published
//! TCP ports.
//!
//! A DNAT'ed connection from the host to `127.0.0.1:8080` pays netfilter on
//! every packet: a route lookup per packet after NAT (`ip_route_me_harder`),
//! the address rewrites both ways, and the bridge's netfilter hooks. An
//! eBPF `cgroup/connect4` program rewrites the destination once, in
//! `connect()`, to the container's address and port, so the packets are
//! plain routed traffic to the bridge (Cilium's socket load balancer does
//! the same for services). A `cgroup/getpeername4` program gives the
//! client back the address it asked for. Measured in docs/benchmarks.md.
//!
//! Only an accelerator: the DNAT rules stay, so connections from other
//! network namespaces (containers, hairpin), from processes outside the
//! cgroup the programs are attached to, to host addresses added after the
//! container started, and any failure here all take the DNAT path.
//!
//! The programs act only in the network namespace berth ran in when it
//! loaded them (its cookie is compiled in), only on TCP, and only on the
//! (address, port) pairs in their map, which hold the published ports of
//! live containers. The objects are found again through the cgroup, by
//! name (`bc4_<hash of the nft table>`), so no file records them; the
//! programs are detached when the last published port goes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use crate::bpf::{self, Asm, R0, R1, R10, R2, R3, R4, R6, R8, R9};
use crate::types::{PortMapping, Proto};

/// Where the programs are attached.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PortRedirect {
    /// DNAT only.
    #[default]
    Off,
    /// The root of the host's cgroup v2 hierarchy: every process.
    Auto,
    /// One cgroup v2 directory and the processes below it.
    Cgroup(PathBuf),
}

/// `struct bpf_sock_addr` offsets.
const CTX_USER_IP4: i16 = 4;
const CTX_USER_PORT: i16 = 24;
const CTX_TYPE: i16 = 32;
const SOCK_STREAM: i32 = 1;

/// Published (address, port) → container (address, port): 8 bytes each,
/// addresses and ports in network byte order, as the context holds them.
const PORTS_MAX: u32 = 4096;
/// Socket cookie → (asked address, port, container address, port).
const PEERS_MAX: u32 = 8192;

struct Names {
    connect: String,
    peername: String,
    ports: String,
    peers: String,
}

/// Object names from the nft table's name, so two berth roots with their
/// own tables (tests) keep their own programs. At most 15 characters.
fn names(table: &str) -> Names {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in table.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    let tag = format!("{:011x}", h & 0xfff_ffff_ffff);
    Names {
        connect: format!("bc4_{tag}"),
        peername: format!("bp4_{tag}"),
        ports: format!("bm4_{tag}"),
        peers: format!("bk4_{tag}"),
    }
}

pub(crate) fn key(addr: Ipv4Addr, port: u16) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&addr.octets());
    k[4..6].copy_from_slice(&port.to_be_bytes());
    k
}

/// The connect program: TCP, in the host's namespace, to a published
/// (address, port): record the asked address under the socket's cookie,
/// then point the socket at the container.
fn connect_program(netns_cookie: u64, ports: &OwnedFd, peers: &OwnedFd) -> Option<Vec<bpf::Insn>> {
    let mut a = Asm::default();
    let allow = a.new_label();
    a.mov_reg(R6, R1)
        .load32(R2, R6, CTX_TYPE)
        .jne_imm(R2, SOCK_STREAM, allow)
        .mov_reg(R1, R6)
        .call(bpf::FN_GET_NETNS_COOKIE)
        .load_imm64(R1, netns_cookie)
        .jne_reg(R0, R1, allow)
        // key at fp-8: address, port
        .load32(R2, R6, CTX_USER_IP4)
        .store32(R10, -8, R2)
        .load32(R2, R6, CTX_USER_PORT)
        .store32(R10, -4, R2)
        .load_map(R1, ports)
        .mov_reg(R2, R10)
        .add_imm(R2, -8)
        .call(bpf::FN_MAP_LOOKUP_ELEM)
        .jeq_imm(R0, 0, allow)
        .load32(R8, R0, 0)
        .load32(R9, R0, 4)
        // peers[cookie] = (asked address, port, container address, port)
        .mov_reg(R1, R6)
        .call(bpf::FN_GET_SOCKET_COOKIE)
        .store64(R10, -16, R0)
        .load32(R2, R6, CTX_USER_IP4)
        .store32(R10, -32, R2)
        .load32(R2, R6, CTX_USER_PORT)
        .store32(R10, -28, R2)
        .store32(R10, -24, R8)
        .store32(R10, -20, R9)
        .load_map(R1, peers)
        .mov_reg(R2, R10)
        .add_imm(R2, -16)
        .mov_reg(R3, R10)
        .add_imm(R3, -32)
        .mov_imm(R4, 0)
        .call(bpf::FN_MAP_UPDATE_ELEM)
        .store32(R6, CTX_USER_IP4, R8)
        .store32(R6, CTX_USER_PORT, R9);
    a.label(allow);
    a.mov_imm(R0, 1).exit();
    a.finish()
}

/// The getpeername program: a socket the connect program redirected, and
/// still connected where it sent it, reports the address it asked for.
fn peername_program(peers: &OwnedFd) -> Option<Vec<bpf::Insn>> {
    let mut a = Asm::default();
    let out = a.new_label();
    a.mov_reg(R6, R1)
        .call(bpf::FN_GET_SOCKET_COOKIE)
        .store64(R10, -8, R0)
        .load_map(R1, peers)
        .mov_reg(R2, R10)
        .add_imm(R2, -8)
        .call(bpf::FN_MAP_LOOKUP_ELEM)
        .jeq_imm(R0, 0, out)
        .load32(R2, R0, 8)
        .load32(R3, R6, CTX_USER_IP4)
        .jne_reg(R2, R3, out)
        .load32(R2, R0, 12)
        .load32(R3, R6, CTX_USER_PORT)
        .jne_reg(R2, R3, out)
        .load32(R2, R0, 0)
        .store32(R6, CTX_USER_IP4, R2)
        .load32(R2, R0, 4)
        .store32(R6, CTX_USER_PORT, R2);
    a.label(out);
    a.mov_imm(R0, 1).exit();
    a.finish()
}

fn refused(what: &str, e: io::Error, log: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}: {}", log.trim()))
}

/// The programs' cgroup, or `None` when redirection is off or there is no
/// cgroup v2 hierarchy (pure v1 hosts).
fn cgroup_dir(mode: &PortRedirect) -> Option<PathBuf> {
    match mode {
        PortRedirect::Off => None,
        PortRedirect::Cgroup(p) => Some(p.clone()),
        PortRedirect::Auto => cgroup2_root(),
    }
}

/// The first cgroup2 mount (`/sys/fs/cgroup` on v2 hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones).
fn cgroup2_root() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split(' ').next() == Some("cgroup2"))
            .then(|| left.split(' ').nth(4).map(PathBuf::from))
            .flatten()
    })
}

fn open_dir(p: &Path) -> io::Result<OwnedFd> {
    Ok(std::fs::File::open(p)?.into())
}

/// berth's programs on one cgroup.
struct Loaded {
    ports: OwnedFd,
}

fn find(cg: &OwnedFd, n: &Names) -> io::Result<Option<Loaded>> {
    for id in bpf::prog_query(cg, bpf::ATTACH_INET4_CONNECT)? {
        let Ok(prog) = bpf::prog_by_id(id) else {
            continue;
        };
        let (name, maps) = bpf::prog_info(&prog)?;
        if name != n.connect {
            continue;
        }
        for m in maps {
            let map = bpf::map_by_id(m)?;
            if bpf::map_name(&map)? == n.ports {
                return Ok(Some(Loaded { ports: map }));
            }
        }
    }
    Ok(None)
}

fn load(cg: &OwnedFd, n: &Names) -> io::Result<Loaded> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let cookie = bpf::netns_cookie(&sock)?;
    let ports = bpf::map_create(bpf::MAP_TYPE_HASH, 8, 8, PORTS_MAX, &n.ports)?;
    let peers = bpf::map_create(bpf::MAP_TYPE_LRU_HASH, 8, 16, PEERS_MAX, &n.peers)?;
    let bug = || io::Error::other("unplaced label in a redirect program");
    let connect = connect_program(cookie, &ports, &peers).ok_or_else(bug)?;
    let peername = peername_program(&peers).ok_or_else(bug)?;
    let kind = bpf::PROG_TYPE_CGROUP_SOCK_ADDR;
    let c = bpf::prog_load(kind, bpf::ATTACH_INET4_CONNECT, &n.connect, &connect)
        .map_err(|(e, log)| refused("load connect4 program", e, &log))?;
    let p = bpf::prog_load(kind, bpf::ATTACH_INET4_GETPEERNAME, &n.peername, &peername)
        .map_err(|(e, log)| refused("load getpeername4 program", e, &log))?;
    // getpeername first: every redirected socket can be answered.
    bpf::prog_attach(cg, &p, bpf::ATTACH_INET4_GETPEERNAME)?;
    if let Err(e) = bpf::prog_attach(cg, &c, bpf::ATTACH_INET4_CONNECT) {
        let _ = bpf::prog_detach(cg, &p, bpf::ATTACH_INET4_GETPEERNAME);
        return Err(e);
    }
    Ok(Loaded { ports })
}

fn detach_all(cg: &OwnedFd, n: &Names) -> io::Result<()> {
    for (attach, name) in [
        (bpf::ATTACH_INET4_CONNECT, &n.connect),
        (bpf::ATTACH_INET4_GETPEERNAME, &n.peername),
    ] {
        for id in bpf::prog_query(cg, attach)? {
            let Ok(prog) = bpf::prog_by_id(id) else {
                continue;
            };
            if &bpf::prog_info(&prog)?.0 == name {
                bpf::prog_detach(cg, &prog, attach)?;
            }
        }
    }
    Ok(())
}

/// The (address, port) pairs that redirect to a container's TCP
/// mappings: a mapping without host address (or on `0.0.0.0`) answers on
/// 127.0.0.1 and on each address the host has now, one on a v4 address on
/// that address. v6 stays with DNAT and the `[::1]` relay.
pub(crate) fn keys_for(ports: &[PortMapping], host_addrs: &[Ipv4Addr]) -> Vec<(SocketAddr, u16)> {
    let mut out = Vec::new();
    for p in ports.iter().filter(|p| p.proto == Proto::Tcp) {
        let addrs: Vec<Ipv4Addr> = match p.host_ip {
            None | Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)) => std::iter::once(Ipv4Addr::LOCALHOST)
                .chain(host_addrs.iter().copied())
                .collect(),
            Some(IpAddr::V4(a)) => vec![a],
            Some(IpAddr::V6(_)) => continue,
        };
        for a in addrs {
            let k = (
                SocketAddr::new(IpAddr::V4(a), p.host_port),
                p.container_port,
            );
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out
}

/// Adds redirects from `keys` to `container`. Returns the published
/// addresses now redirected (to record in the lease); on any failure,
/// none, and DNAT serves them.
pub(crate) fn add(
    mode: &PortRedirect,
    table: &str,
    container: Ipv4Addr,
    keys: &[(SocketAddr, u16)],
) -> Vec<SocketAddr> {
    if keys.is_empty() {
        return Vec::new();
    }
    let Some(dir) = cgroup_dir(mode) else {
        return Vec::new();
    };
    match try_add(&dir, table, container, keys) {
        Ok(done) => done,
        Err(e) => {
            tracing::debug!("published ports stay on DNAT only: {e}");
            Vec::new()
        }
    }
}

fn try_add(
    dir: &Path,
    table: &str,
    container: Ipv4Addr,
    keys: &[(SocketAddr, u16)],
) -> io::Result<Vec<SocketAddr>> {
    let cg = open_dir(dir)?;
    let n = names(table);
    let loaded = match find(&cg, &n)? {
        Some(l) => l,
        None => load(&cg, &n)?,
    };
    let mut done = Vec::new();
    for (published, to_port) in keys {
        let SocketAddr::V4(p) = published else {
            continue;
        };
        let r = bpf::map_update(
            &loaded.ports,
            &key(*p.ip(), p.port()),
            &key(container, *to_port),
        );
        if let Err(e) = r {
            for d in &done {
                if let SocketAddr::V4(p) = d {
                    let _ = bpf::map_delete(&loaded.ports, &key(*p.ip(), p.port()));
                }
            }
            return Err(e);
        }
        done.push(*published);
    }
    Ok(done)
}

/// Removes the redirects of `published`, and the programs once no
/// published port is left. Missing programs or keys are no error.
pub(crate) fn remove(mode: &PortRedirect, table: &str, published: &[SocketAddr]) -> io::Result<()> {
    if published.is_empty() {
        return Ok(());
    }
    let Some(dir) = cgroup_dir(mode) else {
        return Ok(());
    };
    retain(&dir, table, |k| {
        !published.iter().any(|p| match p {
            SocketAddr::V4(p) => key(*p.ip(), p.port()) == k,
            SocketAddr::V6(_) => false,
        })
    })
}

/// For `cleanup_orphans`: drops every redirect to an address no live
/// lease holds.
pub(crate) fn sweep(mode: &PortRedirect, table: &str, live: &[Ipv4Addr]) -> io::Result<()> {
    let Some(dir) = cgroup_dir(mode) else {
        return Ok(());
    };
    if !dir.exists() {
        return Ok(());
    }
    let cg = open_dir(&dir)?;
    let n = names(table);
    let Some(l) = find(&cg, &n)? else {
        return Ok(());
    };
    for k in bpf::map_keys(&l.ports, 8)? {
        let Some(v) = bpf::map_lookup(&l.ports, &k, 8)? else {
            continue;
        };
        let to = Ipv4Addr::new(v[0], v[1], v[2], v[3]);
        if !live.contains(&to) {
            bpf::map_delete(&l.ports, &k)?;
        }
    }
    if bpf::map_keys(&l.ports, 8)?.is_empty() {
        detach_all(&cg, &n)?;
    }
    Ok(())
}

/// How many published addresses are redirected, or `None` when no
/// programs of `table` are attached (for tests and diagnostics).
pub fn status(mode: &PortRedirect, table: &str) -> io::Result<Option<usize>> {
    let Some(dir) = cgroup_dir(mode) else {
        return Ok(None);
    };
    let cg = open_dir(&dir)?;
    let n = names(table);
    match find(&cg, &n)? {
        Some(l) => Ok(Some(bpf::map_keys(&l.ports, 8)?.len())),
        None => Ok(None),
    }
}

fn retain(dir: &Path, table: &str, keep: impl Fn(&[u8]) -> bool) -> io::Result<()> {
    let cg = match open_dir(dir) {
        Ok(cg) => cg,
        // The cgroup went (a test's, removed): so did the programs.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let n = names(table);
    let Some(l) = find(&cg, &n)? else {
        return Ok(());
    };
    let keys = bpf::map_keys(&l.ports, 8)?;
    let mut left = 0;
    for k in &keys {
        if keep(k) {
            left += 1;
        } else {
            bpf::map_delete(&l.ports, k)?;
        }
    }
    if left == 0 {
        detach_all(&cg, &n)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ip: Option<&str>, hp: u16, cp: u16, proto: Proto) -> PortMapping {
        PortMapping {
            host_ip: ip.map(|s| s.parse().unwrap()),
            host_port: hp,
            container_port: cp,
            proto,
            host_port_end: 0,
        }
    }

    #[test]
    fn keys_cover_loopback_and_host_addresses_for_tcp_only() {
        let host = [Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::LOCALHOST];
        let k = keys_for(
            &[
                m(None, 8080, 80, Proto::Tcp),
                m(Some("10.0.0.5"), 9090, 90, Proto::Tcp),
                m(None, 5353, 53, Proto::Udp),
                m(Some("::1"), 7070, 70, Proto::Tcp),
            ],
            &host,
        );
        let s = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert_eq!(
            k,
            vec![
                (s("127.0.0.1:8080"), 80),
                (s("10.0.0.5:8080"), 80),
                (s("10.0.0.5:9090"), 90),
            ]
        );
    }

    #[test]
    fn keys_hold_network_byte_order() {
        assert_eq!(
            key(Ipv4Addr::new(127, 0, 0, 1), 8080),
            [127, 0, 0, 1, 0x1f, 0x90, 0, 0]
        );
    }

    #[test]
    fn names_fit_the_kernel_limit_and_differ_per_table() {
        let (a, b) = (names("berth"), names("bt_0a1b2c"));
        for s in [&a.connect, &a.peername, &a.ports, &a.peers] {
            assert!(s.len() <= 15, "{s}");
        }
        assert_ne!(a.connect, b.connect);
    }

    #[test]
    fn programs_assemble() {
        // Any fds do for assembling; the kernel checks them at load.
        let f: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let g: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        assert!(connect_program(7, &f, &g).is_some());
        assert!(peername_program(&g).is_some());
    }
}
