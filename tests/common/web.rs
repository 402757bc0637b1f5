//! Plain HTTP against a container's busybox `httpd` from the host.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::ctr::Env;

/// HTTP GET of /index.html over TCP with short timeouts: the answer, or
/// None when nothing answers. `addr` is `ip:port` or `[ip6]:port`.
pub fn http_get(addr: impl ToSocketAddrs) -> Option<String> {
    let sa: SocketAddr = addr.to_socket_addrs().ok()?.next()?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut b = String::new();
    s.read_to_string(&mut b).ok()?;
    Some(b)
}

/// Waits until `addr` answers with a body containing `want`.
pub fn wait_http(e: &Env, addr: impl ToSocketAddrs + std::fmt::Debug + Copy, want: &str) {
    e.wait_for(&format!("http on {addr:?}"), || {
        http_get(addr).is_some_and(|b| b.contains(want))
    });
}

/// From a process in the redirect programs' cgroup: a connection to
/// `addr` is sent straight to the container (its local address is the
/// network's gateway `gw`), still shows `addr` as its peer, and a GET
/// through the port answers with `want`.
pub fn assert_redirected(addr: SocketAddr, gw: &str, want: &str) {
    let s = TcpStream::connect(addr).unwrap();
    assert_eq!(s.local_addr().unwrap().ip().to_string(), gw, "{addr}");
    assert_eq!(s.peer_addr().unwrap(), addr);
    drop(s);
    assert!(http_get(addr).unwrap().contains(want), "{addr}");
}
