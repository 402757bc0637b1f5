//! The host's upstream resolvers and forwarding to them: the query bytes
//! are relayed as they came (EDNS, flags and all), over UDP first and over
//! TCP when the UDP answer is truncated or the client asked over TCP; each
//! server gets a timeout, then the next is tried.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// systemd-resolved's stub: only reachable on the host, and it hides the
/// real servers, which resolved lists in [`RESOLVED_UPSTREAMS`].
pub const RESOLVED_STUB: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53));
pub const RESOLVED_UPSTREAMS: &str = "/run/systemd/resolve/resolv.conf";
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// Where the upstream servers come from.
#[derive(Debug, Clone)]
pub enum UpstreamSource {
    /// A resolv.conf (the host's `/etc/resolv.conf` in production),
    /// re-read when it changes.
    ResolvConf(PathBuf),
    /// Fixed servers (tests: a fake upstream on loopback with its port).
    Fixed(Vec<SocketAddr>),
}

/// `nameserver` lines of a resolv.conf, in order (at most 3 are used by
/// libc; the resolver tries them all, as docker does).
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            if l.starts_with('#') || l.starts_with(';') {
                return None;
            }
            let mut f = l.split_whitespace();
            if f.next()? != "nameserver" {
                return None;
            }
            // An IPv6 address may carry a zone (`fe80::1%eth0`): not
            // usable from our sockets without the interface index.
            f.next()?.parse().ok()
        })
        .collect()
}

/// The servers in `path`; when it lists only systemd-resolved's stub, the
/// servers resolved itself uses (from `resolved`), if that file has any.
pub fn servers_from(path: &Path, resolved: &Path) -> Vec<SocketAddr> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|t| parse_resolv_conf(&t))
            .unwrap_or_default()
    };
    let mut ips = read(path);
    if !ips.is_empty() && ips.iter().all(|ip| *ip == RESOLVED_STUB) {
        let real = read(resolved);
        if !real.is_empty() {
            ips = real;
        }
    }
    ips.into_iter().map(|ip| SocketAddr::new(ip, 53)).collect()
}

/// The upstream servers, re-read when the source file changes.
#[derive(Debug)]
pub struct Upstreams {
    source: UpstreamSource,
    stamp: Option<SystemTime>,
    servers: Vec<SocketAddr>,
}

impl Upstreams {
    pub fn new(source: UpstreamSource) -> Upstreams {
        let mut u = Upstreams {
            source,
            stamp: None,
            servers: Vec::new(),
        };
        u.refresh();
        u
    }

    /// Re-reads the resolv.conf if its mtime changed (a cheap stat).
    pub fn refresh(&mut self) {
        match &self.source {
            UpstreamSource::Fixed(s) => self.servers = s.clone(),
            UpstreamSource::ResolvConf(p) => {
                let stamp = std::fs::metadata(p).and_then(|m| m.modified()).ok();
                if stamp != self.stamp || stamp.is_none() {
                    self.stamp = stamp;
                    self.servers = servers_from(p, Path::new(RESOLVED_UPSTREAMS));
                }
            }
        }
    }

    /// Servers to use, minus `ours` (a host whose resolv.conf names one of
    /// our own listening addresses would loop forever).
    pub fn servers(&self, ours: &[Ipv4Addr]) -> Vec<SocketAddr> {
        self.servers
            .iter()
            .filter(|s| !matches!(s.ip(), IpAddr::V4(v4) if ours.contains(&v4)))
            .copied()
            .collect()
    }
}

/// Per-server time limit (docker waits a similar few seconds; a client's
/// own timeout, 5 s for glibc and musl, should outlast one retry).
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(2);

/// Relays `query` to the first server that answers; `None` when none did
/// (the caller answers SERVFAIL). With `tcp`, TCP is used straight away.
/// A SERVFAIL or REFUSED answer moves on to the next server, as docker's
/// resolver does, and is returned only when no server did better.
pub async fn forward(
    servers: &[SocketAddr],
    query: &[u8],
    tcp: bool,
    limit: Duration,
) -> Option<Vec<u8>> {
    let mut fallback = None;
    for s in servers {
        let Some(resp) = exchange(*s, query, tcp, limit).await else {
            continue;
        };
        if matches!(rcode(&resp), RCODE_SERVFAIL | RCODE_REFUSED) {
            fallback = Some(resp);
            continue;
        }
        return Some(resp);
    }
    fallback
}

const RCODE_SERVFAIL: u8 = 2;
const RCODE_REFUSED: u8 = 5;

/// The RCODE of a DNS header.
pub fn rcode(msg: &[u8]) -> u8 {
    msg.get(3).map_or(0, |b| b & 0x0f)
}

/// One server: UDP (unless `tcp`), then TCP if the UDP answer was
/// truncated; only an answer to our id counts.
async fn exchange(s: SocketAddr, query: &[u8], tcp: bool, limit: Duration) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    if !tcp {
        match timeout(limit, udp_exchange(s, query)).await {
            Ok(Ok(resp)) if resp.get(..2) == Some(id) => {
                if !truncated(&resp) {
                    return Some(resp);
                }
            }
            _ => return None,
        }
    }
    match timeout(limit, tcp_exchange(s, query)).await {
        Ok(Ok(resp)) if resp.get(..2) == Some(id) => Some(resp),
        _ => None,
    }
}

/// The TC bit of a DNS header.
pub fn truncated(msg: &[u8]) -> bool {
    msg.get(2).is_some_and(|b| b & 0x02 != 0)
}

async fn udp_exchange(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).await?;
    // Connected: the kernel drops datagrams from anyone but the server.
    sock.connect(server).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await?;
        // A reply to another id is someone else's late answer: keep waiting.
        if n >= 2 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp_exchange(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(query.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut s = TcpStream::connect(server).await?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    s.write_all(&framed).await?;
    let n = s.read_u16().await?;
    let mut buf = vec![0u8; n as usize];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameservers_and_skips_the_rest() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\n  nameserver\t1.1.1.1 # x\n;nameserver 9.9.9.9\noptions ndots:2\nnameserver 2001:db8::1\nnameserver fe80::1%eth0\nnameserver bogus\n";
        let ips = parse_resolv_conf(text);
        assert_eq!(
            ips,
            [
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "1.1.1.1".parse().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        assert!(parse_resolv_conf("").is_empty());
    }

    #[test]
    fn systemd_stub_is_replaced_by_resolveds_servers() {
        let d = tempfile::tempdir().unwrap();
        let (etc, run) = (d.path().join("etc"), d.path().join("run"));
        std::fs::write(&etc, "nameserver 127.0.0.53\noptions edns0 trust-ad\n").unwrap();
        std::fs::write(&run, "nameserver 10.1.1.1\nnameserver 10.1.1.2\n").unwrap();
        let s = servers_from(&etc, &run);
        assert_eq!(
            s,
            [
                "10.1.1.1:53".parse::<SocketAddr>().unwrap(),
                "10.1.1.2:53".parse().unwrap()
            ]
        );
        // resolved's file missing: the stub is still reachable from the host.
        std::fs::remove_file(&run).unwrap();
        assert_eq!(servers_from(&etc, &run), ["127.0.0.53:53".parse().unwrap()]);
        // the stub beside a real server: kept as written
        std::fs::write(&etc, "nameserver 127.0.0.53\nnameserver 10.2.2.2\n").unwrap();
        std::fs::write(&run, "nameserver 10.1.1.1\n").unwrap();
        assert_eq!(servers_from(&etc, &run).len(), 2);
        assert!(servers_from(&d.path().join("none"), &run).is_empty());
    }

    #[test]
    fn own_addresses_are_never_upstream() {
        let u = Upstreams::new(UpstreamSource::Fixed(vec![
            "10.9.1.1:53".parse().unwrap(),
            "10.0.0.2:53".parse().unwrap(),
        ]));
        assert_eq!(
            u.servers(&["10.9.1.1".parse().unwrap()]),
            ["10.0.0.2:53".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn resolv_conf_is_reread_when_it_changes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("resolv.conf");
        std::fs::write(&p, "nameserver 10.3.3.3\n").unwrap();
        let mut u = Upstreams::new(UpstreamSource::ResolvConf(p.clone()));
        assert_eq!(u.servers(&[]), ["10.3.3.3:53".parse().unwrap()]);
        std::fs::write(&p, "nameserver 10.4.4.4\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(later)
            .unwrap();
        u.refresh();
        assert_eq!(u.servers(&[]), ["10.4.4.4:53".parse().unwrap()]);
    }

    #[test]
    fn rcode_of_a_header() {
        assert_eq!(rcode(&[0, 1, 0x81, 0x82]), RCODE_SERVFAIL);
        assert_eq!(rcode(&[0, 1, 0x81, 0x83]), 3);
        assert_eq!(rcode(&[0, 1]), 0);
    }

    #[test]
    fn tc_bit() {
        assert!(truncated(&[0, 1, 0x82, 0]));
        assert!(!truncated(&[0, 1, 0x80, 0]));
        assert!(!truncated(&[0]));
    }
}
