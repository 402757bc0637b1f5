//! Host port checks. DNAT never binds a socket, so berth binds the host
//! port itself: that fails when another process owns it (docker's
//! `Bind for 0.0.0.0:8080 failed: port is already allocated`), picks a free
//! port for `host_port == 0`, and the bound socket, kept by the caller,
//! stops later processes from taking the port. Other containers' mappings
//! are checked against the recorded leases as well.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, getsockname, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag,
    SockType, SockaddrIn6, SockaddrStorage,
};

use crate::error::{Error, Result};
use crate::types::{PortMapping, Proto};

fn host_ip(p: &PortMapping) -> IpAddr {
    p.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Whether two mappings would catch the same packets. No host address
/// means every address of both families; `0.0.0.0` / `::` every address
/// of one family.
pub fn conflicts(a: &PortMapping, b: &PortMapping) -> bool {
    if a.proto != b.proto || a.host_port != b.host_port {
        return false;
    }
    let (Some(ia), Some(ib)) = (a.host_ip, b.host_ip) else {
        return true;
    };
    ia.is_ipv4() == ib.is_ipv4() && (ia == ib || ia.is_unspecified() || ib.is_unspecified())
}

fn sock_type(p: &PortMapping) -> SockType {
    match p.proto {
        Proto::Tcp => SockType::Stream,
        Proto::Udp => SockType::Datagram,
    }
}

/// Binds `addr` (v4 or v6-only). A TCP socket on `[::]` or `[::1]`
/// listens: it is the relay for `[::1]` (see `crate::proxy`).
fn bind_one(p: &PortMapping, addr: SocketAddr) -> nix::Result<(OwnedFd, u16)> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, sock_type(p), SockFlag::SOCK_CLOEXEC, None)?;
    // Like docker-proxy (Go sets SO_REUSEADDR): a TIME_WAIT leftover must not
    // block the port, a listener must.
    if p.proto == Proto::Tcp {
        let _ = setsockopt(&fd, sockopt::ReuseAddr, &true);
    }
    if addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    bind(raw, &SockaddrStorage::from(addr))?;
    let bound: SockaddrStorage = getsockname(raw)?;
    let port = bound
        .as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| bound.as_sockaddr_in6().map(SockaddrIn6::port))
        .ok_or(Errno::EAFNOSUPPORT)?;
    if let SocketAddr::V6(a) = addr {
        if p.proto == Proto::Tcp && (a.ip().is_unspecified() || a.ip().is_loopback()) {
            listen(&fd, Backlog::new(128)?)?;
        }
    }
    Ok((fd, port))
}

/// The `[::]` side of a mapping without host address, for the monitor's
/// relay (TCP: listening; UDP: bound): `[::1]` of a dual-stack container,
/// every v6 address of a v4-only one. A host without IPv6 gets none, and
/// no error.
pub fn reserve6_any(r: &PortMapping) -> Result<Option<OwnedFd>> {
    let addr = SocketAddr::V6(SocketAddrV6::new(
        std::net::Ipv6Addr::UNSPECIFIED,
        r.host_port,
        0,
        0,
    ));
    match bind_one(r, addr) {
        Ok((fd, _)) => Ok(Some(fd)),
        Err(Errno::EAFNOSUPPORT) => Ok(None),
        Err(_) => Err(Error::PortAllocated {
            host_ip: "::".into(),
            port: r.host_port,
        }),
    }
}

/// Binds the host port of `p` (a free one if it is 0) and returns the
/// resolved mapping with the socket holding the port.
pub fn reserve(p: &PortMapping) -> Result<(PortMapping, OwnedFd)> {
    let ip = host_ip(p);
    let allocated = || Error::PortAllocated {
        host_ip: ip.to_string(),
        port: p.host_port,
    };
    let (fd, port) = match bind_one(p, SocketAddr::new(ip, p.host_port)) {
        Ok(x) => x,
        Err(_) if p.host_port == 0 => {
            return Err(Error::NoFreePort {
                proto: p.proto.to_string(),
            })
        }
        Err(_) => return Err(allocated()),
    };
    let mut resolved = p.clone();
    resolved.host_port = port;
    Ok((resolved, fd))
}

/// `-p 8000-8010:80`: the first port of the range that is free on the
/// host and published by no other container (docker's choice).
pub fn reserve_in_range(
    p: &PortMapping,
    published: &[PortMapping],
    resolved: &[PortMapping],
) -> Result<(PortMapping, OwnedFd)> {
    for port in p.host_port..=p.host_port_end {
        let mut one = p.clone();
        one.host_port = port;
        one.host_port_end = 0;
        if published.iter().chain(resolved).any(|o| conflicts(o, &one)) {
            continue;
        }
        if let Ok(r) = reserve(&one) {
            return Ok(r);
        }
    }
    Err(Error::PortRangeAllocated {
        host_ip: host_ip(p).to_string(),
        start: p.host_port,
        end: p.host_port_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ip: Option<[u8; 4]>, port: u16, proto: Proto) -> PortMapping {
        PortMapping {
            host_ip: ip.map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            host_port: port,
            container_port: 80,
            proto,
            host_port_end: 0,
        }
    }

    #[test]
    fn conflict_rules() {
        assert!(conflicts(
            &m(None, 8080, Proto::Tcp),
            &m(Some([127, 0, 0, 1]), 8080, Proto::Tcp)
        ));
        assert!(!conflicts(
            &m(None, 8080, Proto::Tcp),
            &m(None, 8080, Proto::Udp)
        ));
        assert!(!conflicts(
            &m(Some([127, 0, 0, 1]), 8080, Proto::Tcp),
            &m(Some([127, 0, 0, 2]), 8080, Proto::Tcp)
        ));
    }

    #[test]
    fn v6_conflicts() {
        let v6 = |s: &str, port| PortMapping {
            host_ip: Some(s.parse().unwrap()),
            host_port: port,
            container_port: 80,
            proto: Proto::Tcp,
            host_port_end: 0,
        };
        // no host address: both families
        assert!(conflicts(&m(None, 8080, Proto::Tcp), &v6("::1", 8080)));
        assert!(conflicts(&v6("::", 8080), &v6("::1", 8080)));
        assert!(!conflicts(
            &v6("::", 8080),
            &m(Some([0, 0, 0, 0]), 8080, Proto::Tcp)
        ));
        assert!(!conflicts(
            &v6("::1", 8080),
            &m(Some([127, 0, 0, 1]), 8080, Proto::Tcp)
        ));
        assert!(!conflicts(&v6("::1", 8080), &v6("fd00::2", 8080)));
        assert!(!conflicts(&v6("::1", 8080), &v6("::1", 8081)));
    }

    #[test]
    fn v6_loopback_reservation_listens() {
        let (r, fd) = reserve(&PortMapping {
            host_ip: Some("::1".parse().unwrap()),
            host_port: 0,
            container_port: 80,
            proto: Proto::Tcp,
            host_port_end: 0,
        })
        .unwrap();
        assert_ne!(r.host_port, 0);
        // listening: a connect succeeds (queued in the backlog)
        std::net::TcpStream::connect(("::1", r.host_port)).unwrap();
        drop(fd);
        let (r4, _fd4) = reserve(&m(None, 0, Proto::Tcp)).unwrap();
        let six = reserve6_any(&r4).unwrap().unwrap();
        std::net::TcpStream::connect(("::1", r4.host_port)).unwrap();
        drop(six);
    }

    #[test]
    fn port_taken_by_a_listener_is_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let err = reserve(&m(Some([127, 0, 0, 1]), port, Proto::Tcp)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Bind for 127.0.0.1:{port} failed: port is already allocated")
        );
        let (got, _fd) = reserve(&m(Some([127, 0, 0, 1]), 0, Proto::Udp)).unwrap();
        assert_ne!(got.host_port, 0);
    }
}
