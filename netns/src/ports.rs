//! Host port checks. DNAT never binds a socket, so berth binds the host
//! port itself: that fails when another process owns it (docker's
//! `Bind for 0.0.0.0:8080 failed: port is already allocated`), picks a free
//! port for `host_port == 0`, and the bound socket, kept by the caller,
//! stops later processes from taking the port. Other containers' mappings
//! are checked against the recorded leases as well.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

use nix::sys::socket::{
    bind, getsockname, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};

use crate::error::{Error, Result};
use crate::types::{PortMapping, Proto};

fn host_ip(p: &PortMapping) -> Ipv4Addr {
    p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED)
}

/// Whether two mappings would catch the same packets.
pub fn conflicts(a: &PortMapping, b: &PortMapping) -> bool {
    let (ia, ib) = (host_ip(a), host_ip(b));
    a.proto == b.proto
        && a.host_port == b.host_port
        && (ia == ib || ia.is_unspecified() || ib.is_unspecified())
}

/// Binds the host port of `p` (a free one if it is 0) and returns the
/// resolved mapping with the socket holding the port.
pub fn reserve(p: &PortMapping) -> Result<(PortMapping, OwnedFd)> {
    let ip = host_ip(p);
    let allocated = || Error::PortAllocated {
        host_ip: ip.to_string(),
        port: p.host_port,
    };
    let ty = match p.proto {
        Proto::Tcp => SockType::Stream,
        Proto::Udp => SockType::Datagram,
    };
    let fd =
        socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None).map_err(|_| allocated())?;
    // Like docker-proxy (Go sets SO_REUSEADDR): a TIME_WAIT leftover must not
    // block the port, a listener must.
    if p.proto == Proto::Tcp {
        let _ = setsockopt(&fd, sockopt::ReuseAddr, &true);
    }
    let addr = SockaddrIn::from(SocketAddrV4::new(ip, p.host_port));
    match bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
        Ok(()) => {}
        Err(_) if p.host_port == 0 => {
            return Err(Error::NoFreePort {
                proto: p.proto.to_string(),
            })
        }
        Err(_) => return Err(allocated()),
    }
    let bound: SockaddrIn =
        getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).map_err(|_| allocated())?;
    let mut resolved = p.clone();
    resolved.host_port = bound.port();
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
            host_ip: ip.map(Ipv4Addr::from),
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
