//! Socket-level redirection of the host's own connections to published
//! TCP ports.
//!
//! A DNAT'ed connection from the host to `127.0.0.1:8080` pays netfilter on
//! every packet: a route lookup per packet after NAT (`ip_route_me_harder`),
//! the address rewrites both ways, and the bridge's netfilter hooks. An
//! eBPF `cgroup/connect4` (`connect6`) program rewrites the destination
//! once, in `connect()`, to the container's address and port, so the
//! packets are plain routed traffic to the bridge (Cilium's socket load
//! balancer does the same for services). A `cgroup/getpeername4` (`6`)
//! program gives the client back the address it asked for. Measured in
//! docs/benchmarks.md.
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
//! name (`bc4_<hash of the nft table>`), so no file records them. They
//! live as long as berth's nft table (until the root's last network is
//! removed): loading and attaching them costs a start about 0.8 ms (the
//! two program loads, mostly the JIT), which a root whose published ports
//! come and go would otherwise pay on every start, while an idle program
//! costs other connects nothing measurable (docs/benchmarks.md).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use crate::bpf::{self, Asm, R0, R1, R10, R2, R3, R4, R6, R7};
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

/// `struct bpf_sock_addr`: the socket type, and the words of the address
/// (`user_ip4`, or `user_ip6[4]`) and of the port (`user_port`), all in
/// network byte order as the program sees them.
const CTX_TYPE: i16 = 32;
const CTX_V4: [i16; 2] = [4, 24];
const CTX_V6: [i16; 5] = [8, 12, 16, 20, 24];
const SOCK_STREAM: i32 = 1;

/// Published (address, port) → container (address, port), each as the
/// context's words.
const PORTS_MAX: u32 = 4096;
/// Socket cookie → (asked address, port, container address, port).
const PEERS_MAX: u32 = 8192;

/// One address family's programs and maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

struct Names {
    connect: String,
    peername: String,
    ports: String,
    peers: String,
}

impl Family {
    fn of(a: &SocketAddr) -> Family {
        if a.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
    fn words(self) -> &'static [i16] {
        match self {
            Family::V4 => &CTX_V4,
            Family::V6 => &CTX_V6,
        }
    }
    /// Bytes of a key (address and port word).
    fn key_len(self) -> usize {
        self.words().len() * 4
    }
    fn connect_attach(self) -> u32 {
        match self {
            Family::V4 => bpf::ATTACH_INET4_CONNECT,
            Family::V6 => bpf::ATTACH_INET6_CONNECT,
        }
    }
    fn peername_attach(self) -> u32 {
        match self {
            Family::V4 => bpf::ATTACH_INET4_GETPEERNAME,
            Family::V6 => bpf::ATTACH_INET6_GETPEERNAME,
        }
    }
    /// Object names from the nft table's name, so two berth roots with
    /// their own tables (tests) keep their own programs. At most 15
    /// characters.
    fn names(self, table: &str) -> Names {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in table.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        let tag = format!("{:011x}", h & 0xfff_ffff_ffff);
        let f = match self {
            Family::V4 => '4',
            Family::V6 => '6',
        };
        Names {
            connect: format!("bc{f}_{tag}"),
            peername: format!("bp{f}_{tag}"),
            ports: format!("bm{f}_{tag}"),
            peers: format!("bk{f}_{tag}"),
        }
    }
}

/// A key or value: the address bytes, then the port in network byte
/// order in a 4-byte word, as the context holds them.
pub(crate) fn key(a: &SocketAddr) -> Vec<u8> {
    let mut k = match a.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    k.extend_from_slice(&a.port().to_be_bytes());
    k.extend_from_slice(&[0, 0]);
    k
}

fn addr_of(f: Family, v: &[u8]) -> Option<IpAddr> {
    match f {
        Family::V4 => <[u8; 4]>::try_from(v.get(..4)?).ok().map(IpAddr::from),
        Family::V6 => <[u8; 16]>::try_from(v.get(..16)?).ok().map(IpAddr::from),
    }
}

/// Stack offsets (from the frame pointer) of an 8-aligned slot of `len`
/// bytes below `below`: the verifier wants aligned stack accesses.
fn slot(below: i16, len: usize) -> i16 {
    below - ((len as i16 + 7) & !7)
}

/// The connect program: TCP, in the host's namespace, to a published
/// (address, port): record the asked address under the socket's cookie,
/// then point the socket at the container.
fn connect_program(
    f: Family,
    netns_cookie: u64,
    ports: &OwnedFd,
    peers: &OwnedFd,
) -> Option<Vec<bpf::Insn>> {
    let words = f.words();
    let k = f.key_len();
    let key = slot(0, k);
    let peer_key = slot(key, 8);
    let value = slot(peer_key, 2 * k);
    let mut a = Asm::default();
    let allow = a.new_label();
    a.mov_reg(R6, R1)
        .load32(R2, R6, CTX_TYPE)
        .jne_imm(R2, SOCK_STREAM, allow)
        .mov_reg(R1, R6)
        .call(bpf::FN_GET_NETNS_COOKIE)
        .load_imm64(R1, netns_cookie)
        .jne_reg(R0, R1, allow);
    for (i, off) in words.iter().enumerate() {
        a.load32(R2, R6, *off).store32(R10, key + 4 * i as i16, R2);
    }
    a.load_map(R1, ports)
        .mov_reg(R2, R10)
        .add_imm(R2, key as i32)
        .call(bpf::FN_MAP_LOOKUP_ELEM)
        .jeq_imm(R0, 0, allow)
        .mov_reg(R7, R0)
        .mov_reg(R1, R6)
        .call(bpf::FN_GET_SOCKET_COOKIE)
        .store64(R10, peer_key, R0);
    // peers[cookie] = (asked address, port, container address, port)
    for (i, off) in words.iter().enumerate() {
        let at = 4 * i as i16;
        a.load32(R2, R6, *off)
            .store32(R10, value + at, R2)
            .load32(R2, R7, at)
            .store32(R10, value + k as i16 + at, R2);
    }
    a.load_map(R1, peers)
        .mov_reg(R2, R10)
        .add_imm(R2, peer_key as i32)
        .mov_reg(R3, R10)
        .add_imm(R3, value as i32)
        .mov_imm(R4, 0)
        .call(bpf::FN_MAP_UPDATE_ELEM);
    for (i, off) in words.iter().enumerate() {
        a.load32(R2, R7, 4 * i as i16).store32(R6, *off, R2);
    }
    a.label(allow);
    a.mov_imm(R0, 1).exit();
    a.finish()
}

/// The getpeername program: a socket the connect program redirected, and
/// still connected where it sent it, reports the address it asked for.
fn peername_program(f: Family, peers: &OwnedFd) -> Option<Vec<bpf::Insn>> {
    let words = f.words();
    let k = f.key_len() as i16;
    let mut a = Asm::default();
    let out = a.new_label();
    a.mov_reg(R6, R1)
        .call(bpf::FN_GET_SOCKET_COOKIE)
        .store64(R10, -8, R0)
        .load_map(R1, peers)
        .mov_reg(R2, R10)
        .add_imm(R2, -8)
        .call(bpf::FN_MAP_LOOKUP_ELEM)
        .jeq_imm(R0, 0, out);
    for (i, off) in words.iter().enumerate() {
        a.load32(R2, R0, k + 4 * i as i16)
            .load32(R3, R6, *off)
            .jne_reg(R2, R3, out);
    }
    for (i, off) in words.iter().enumerate() {
        a.load32(R2, R0, 4 * i as i16).store32(R6, *off, R2);
    }
    a.label(out);
    a.mov_imm(R0, 1).exit();
    a.finish()
}

fn refused(what: &str, e: io::Error, log: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}: {}", log.trim()))
}

/// The programs' cgroup, or `None` when redirection is off, there is no
/// cgroup v2 hierarchy (pure v1 hosts), or the directory is gone (a
/// test's, removed: so are the programs).
fn cgroup(mode: &PortRedirect) -> io::Result<Option<OwnedFd>> {
    let dir = match mode {
        PortRedirect::Off => return Ok(None),
        PortRedirect::Cgroup(p) => p.clone(),
        PortRedirect::Auto => match cgroup2_root() {
            Some(p) => p,
            None => return Ok(None),
        },
    };
    match std::fs::File::open(&dir) {
        Ok(f) => Ok(Some(f.into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cgroup {}: {e}", dir.display()),
        )),
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

/// The ports map of `f`'s programs on the cgroup, if attached.
fn find(cg: &OwnedFd, f: Family, n: &Names) -> io::Result<Option<OwnedFd>> {
    for id in bpf::prog_query(cg, f.connect_attach())? {
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
                return Ok(Some(map));
            }
        }
    }
    Ok(None)
}

/// Loads and attaches `f`'s programs; returns their ports map.
fn load(cg: &OwnedFd, f: Family, n: &Names) -> io::Result<OwnedFd> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let cookie = bpf::netns_cookie(&sock)?;
    let k = f.key_len() as u32;
    // Preallocating the ports map costs a start ~0.2 ms for entries it
    // rarely needs.
    let ports = bpf::map_create(
        bpf::MAP_TYPE_HASH,
        k,
        k,
        PORTS_MAX,
        bpf::F_NO_PREALLOC,
        &n.ports,
    )?;
    let peers = bpf::map_create(bpf::MAP_TYPE_LRU_HASH, 8, 2 * k, PEERS_MAX, 0, &n.peers)?;
    let bug = || io::Error::other("unplaced label in a redirect program");
    let connect = connect_program(f, cookie, &ports, &peers).ok_or_else(bug)?;
    let peername = peername_program(f, &peers).ok_or_else(bug)?;
    let kind = bpf::PROG_TYPE_CGROUP_SOCK_ADDR;
    let c = bpf::prog_load(kind, f.connect_attach(), &n.connect, &connect)
        .map_err(|(e, log)| refused("load connect program", e, &log))?;
    let p = bpf::prog_load(kind, f.peername_attach(), &n.peername, &peername)
        .map_err(|(e, log)| refused("load getpeername program", e, &log))?;
    // getpeername first: every redirected socket can be answered.
    bpf::prog_attach(cg, &p, f.peername_attach())?;
    if let Err(e) = bpf::prog_attach(cg, &c, f.connect_attach()) {
        let _ = bpf::prog_detach(cg, &p, f.peername_attach());
        return Err(e);
    }
    Ok(ports)
}

fn detach_all(cg: &OwnedFd, f: Family, n: &Names) -> io::Result<()> {
    for (attach, name) in [
        (f.connect_attach(), &n.connect),
        (f.peername_attach(), &n.peername),
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

/// One published address and where its connections go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Redirect {
    pub published: SocketAddr,
    pub to: SocketAddr,
}

/// The redirects of a container's TCP mappings, as its DNAT rules and
/// `[::1]` relay would serve them: a mapping without host address answers
/// on 127.0.0.1 and each IPv4 address the host has now, and (dual-stack
/// containers) on `[::1]` and each IPv6 address; one on `0.0.0.0` or
/// `[::]` on that family's; one on an address on that address. A
/// v4-only container gets no v6 redirect: the relay serves its v6 side.
pub(crate) fn redirects_for(
    ports: &[PortMapping],
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
    host: &[IpAddr],
) -> Vec<Redirect> {
    let all = |v6: bool| -> Vec<IpAddr> {
        let lo = if v6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        std::iter::once(lo)
            .chain(host.iter().copied().filter(|a| a.is_ipv6() == v6))
            .collect()
    };
    let mut out = Vec::new();
    for p in ports.iter().filter(|p| p.proto == Proto::Tcp) {
        let published: Vec<IpAddr> = match p.host_ip {
            None => {
                let mut v = all(false);
                if ip6.is_some() {
                    v.extend(all(true));
                }
                v
            }
            Some(h) if h.is_unspecified() => all(h.is_ipv6()),
            Some(h) => vec![h],
        };
        for a in published {
            let to = match (a, ip6) {
                (IpAddr::V4(_), _) => IpAddr::V4(ip),
                (IpAddr::V6(_), Some(c6)) => IpAddr::V6(c6),
                (IpAddr::V6(_), None) => continue,
            };
            let r = Redirect {
                published: SocketAddr::new(a, p.host_port),
                to: SocketAddr::new(to, p.container_port),
            };
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// Adds `redirects`. Returns the published addresses now redirected (to
/// record in the lease); a family whose programs fail gets none, and DNAT
/// serves it.
pub(crate) fn add(mode: &PortRedirect, table: &str, redirects: &[Redirect]) -> Vec<SocketAddr> {
    if redirects.is_empty() {
        return Vec::new();
    }
    let cg = match cgroup(mode) {
        Ok(Some(cg)) => cg,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::debug!("published ports stay on DNAT: {e}");
            return Vec::new();
        }
    };
    let mut done = Vec::new();
    for f in FAMILIES {
        let mine: Vec<&Redirect> = redirects
            .iter()
            .filter(|r| Family::of(&r.published) == f)
            .collect();
        if mine.is_empty() {
            continue;
        }
        match add_family(&cg, f, table, &mine) {
            Ok(()) => done.extend(mine.iter().map(|r| r.published)),
            Err(e) => tracing::debug!("{f:?} published ports stay on DNAT only: {e}"),
        }
    }
    done
}

fn add_family(cg: &OwnedFd, f: Family, table: &str, redirects: &[&Redirect]) -> io::Result<()> {
    let n = f.names(table);
    let ports = match find(cg, f, &n)? {
        Some(m) => m,
        None => load(cg, f, &n)?,
    };
    for (i, r) in redirects.iter().enumerate() {
        if let Err(e) = bpf::map_update(&ports, &key(&r.published), &key(&r.to)) {
            for d in &redirects[..i] {
                let _ = bpf::map_delete(&ports, &key(&d.published));
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Removes the redirects of `published`; the programs stay. Missing
/// programs or keys are no error.
pub(crate) fn remove(mode: &PortRedirect, table: &str, published: &[SocketAddr]) -> io::Result<()> {
    if published.is_empty() {
        return Ok(());
    }
    let Some(cg) = cgroup(mode)? else {
        return Ok(());
    };
    for f in FAMILIES {
        let mut gone = published.iter().filter(|p| Family::of(p) == f).peekable();
        if gone.peek().is_none() {
            continue;
        }
        let Some(ports) = find(&cg, f, &f.names(table))? else {
            continue;
        };
        for p in gone {
            bpf::map_delete(&ports, &key(p))?;
        }
    }
    Ok(())
}

/// For `cleanup_orphans`: drops every redirect to an address no live
/// lease holds.
pub(crate) fn sweep(mode: &PortRedirect, table: &str, live: &[IpAddr]) -> io::Result<()> {
    let Some(cg) = cgroup(mode)? else {
        return Ok(());
    };
    for f in FAMILIES {
        let Some(ports) = find(&cg, f, &f.names(table))? else {
            continue;
        };
        for k in bpf::map_keys(&ports, f.key_len())? {
            let to = bpf::map_lookup(&ports, &k, f.key_len())?.and_then(|v| addr_of(f, &v));
            if !to.is_some_and(|a| live.contains(&a)) {
                bpf::map_delete(&ports, &k)?;
            }
        }
    }
    Ok(())
}

/// Detaches every program of `table` (its last network went).
pub(crate) fn unload(mode: &PortRedirect, table: &str) -> io::Result<()> {
    let Some(cg) = cgroup(mode)? else {
        return Ok(());
    };
    for f in FAMILIES {
        detach_all(&cg, f, &f.names(table))?;
    }
    Ok(())
}

/// How many published addresses are redirected, or `None` when no
/// programs of `table` are attached (for tests and diagnostics).
pub fn status(mode: &PortRedirect, table: &str) -> io::Result<Option<usize>> {
    let Some(cg) = cgroup(mode)? else {
        return Ok(None);
    };
    let mut total = None;
    for f in FAMILIES {
        if let Some(ports) = find(&cg, f, &f.names(table))? {
            *total.get_or_insert(0) += bpf::map_keys(&ports, f.key_len())?.len();
        }
    }
    Ok(total)
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

    fn r(published: &str, to: &str) -> Redirect {
        Redirect {
            published: published.parse().unwrap(),
            to: to.parse().unwrap(),
        }
    }

    #[test]
    fn redirects_follow_the_dnat_rules_for_tcp_only() {
        let host: Vec<IpAddr> = ["10.0.0.5", "127.0.0.1", "fd00::5"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let ports = [
            m(None, 8080, 80, Proto::Tcp),
            m(Some("10.0.0.5"), 9090, 90, Proto::Tcp),
            m(None, 5353, 53, Proto::Udp),
            m(Some("::1"), 7070, 70, Proto::Tcp),
            m(Some("0.0.0.0"), 6060, 60, Proto::Tcp),
        ];
        let ip = Ipv4Addr::new(10, 9, 0, 2);
        // v4-only container: no v6 redirect
        assert_eq!(
            redirects_for(&ports, ip, None, &host),
            vec![
                r("127.0.0.1:8080", "10.9.0.2:80"),
                r("10.0.0.5:8080", "10.9.0.2:80"),
                r("10.0.0.5:9090", "10.9.0.2:90"),
                r("127.0.0.1:6060", "10.9.0.2:60"),
                r("10.0.0.5:6060", "10.9.0.2:60"),
            ]
        );
        let six = redirects_for(&ports, ip, Some("fd9::2".parse().unwrap()), &host);
        assert_eq!(
            six,
            vec![
                r("127.0.0.1:8080", "10.9.0.2:80"),
                r("10.0.0.5:8080", "10.9.0.2:80"),
                r("[::1]:8080", "[fd9::2]:80"),
                r("[fd00::5]:8080", "[fd9::2]:80"),
                r("10.0.0.5:9090", "10.9.0.2:90"),
                r("[::1]:7070", "[fd9::2]:70"),
                r("127.0.0.1:6060", "10.9.0.2:60"),
                r("10.0.0.5:6060", "10.9.0.2:60"),
            ]
        );
    }

    #[test]
    fn keys_hold_network_byte_order() {
        assert_eq!(
            key(&"127.0.0.1:8080".parse().unwrap()),
            [127, 0, 0, 1, 0x1f, 0x90, 0, 0]
        );
        let k6 = key(&"[::1]:8080".parse().unwrap());
        assert_eq!(k6.len(), Family::V6.key_len());
        assert_eq!(&k6[15..], [1, 0x1f, 0x90, 0, 0]);
        assert_eq!(addr_of(Family::V6, &k6), Some("::1".parse().unwrap()));
    }

    #[test]
    fn names_fit_the_kernel_limit_and_differ_per_table_and_family() {
        let (a, b) = (Family::V4.names("berth"), Family::V4.names("bt_0a1b2c"));
        let c = Family::V6.names("berth");
        for s in [&a.connect, &a.peername, &a.ports, &a.peers, &c.peers] {
            assert!(s.len() <= 15, "{s}");
        }
        assert_ne!(a.connect, b.connect);
        assert_ne!(a.connect, c.connect);
    }

    #[test]
    fn stack_slots_stay_aligned() {
        for f in FAMILIES {
            let key = slot(0, f.key_len());
            let peer = slot(key, 8);
            let value = slot(peer, 2 * f.key_len());
            assert!(key % 8 == 0 && peer % 8 == 0 && value % 8 == 0, "{f:?}");
            assert!(-value as usize >= f.key_len() * 3 + 8);
        }
    }

    #[test]
    fn programs_assemble() {
        // Any fds do for assembling; the kernel checks them at load.
        let f: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let g: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        for fam in FAMILIES {
            assert!(connect_program(fam, 7, &f, &g).is_some());
            assert!(peername_program(fam, &g).is_some());
        }
    }
}
