//! A TCP and UDP relay for published ports on `[::1]`. IPv4 reaches a container
//! from 127.0.0.1 by DNAT plus `route_localnet`; IPv6 has no
//! `route_localnet`: the container's answer, un-NAT'ed back to `::1`,
//! arrives on the bridge and the kernel refuses a loopback destination on
//! a non-loopback device (strict route lookup). docker relays these with
//! docker-proxy; berth relays them in the container's monitor, on the
//! listening socket that already reserves the port (every other v6
//! address is DNAT'ed before it could reach that socket). It also relays
//! IPv6 clients of a v4-only container (the `[::]` or `[::1]` socket of
//! its TCP ports) to its v4 address, as docker-proxy does.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt, SockType};

mod udp;

/// A running relay; dropping it stops accepting (open connections run on
/// until either side closes) or, for UDP, stops relaying.
#[derive(Debug)]
pub struct Relay {
    front: OwnedFd,
    stop: Arc<AtomicBool>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept() (EINVAL) or recvfrom() (returns 0,
        // though the UDP socket is unconnected): the thread exits.
        // SAFETY: shutdown(2) on a descriptor this relay keeps open.
        unsafe { libc::shutdown(self.front.as_raw_fd(), libc::SHUT_RDWR) };
    }
}

/// Starts relaying to `target` what arrives on `front`: connections
/// accepted on a bound, listening TCP socket (those that arrived before
/// are in the backlog and get served), or datagrams on a bound UDP socket.
pub fn spawn(front: OwnedFd, target: SocketAddr) -> io::Result<Relay> {
    let stop = Arc::new(AtomicBool::new(false));
    let kind = getsockopt(&front, sockopt::SockType).map_err(io::Error::from)?;
    // The thread works on a duplicate; shutting the socket down through
    // `front` (on drop) wakes it.
    let (fd, st) = (front.try_clone()?, Arc::clone(&stop));
    if kind == SockType::Datagram {
        std::thread::Builder::new()
            .name("berth-relay6u".into())
            .spawn(move || udp::relay(UdpSocket::from(fd), target, &st))?;
    } else {
        std::thread::Builder::new()
            .name("berth-relay6".into())
            .spawn(move || accept_loop(&TcpListener::from(fd), target))?;
    }
    Ok(Relay { front, stop })
}

fn accept_loop(listener: &TcpListener, target: SocketAddr) {
    loop {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            // A client gave up, or a signal: the next one.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ECONNABORTED)) => {
                continue
            }
            // Out of descriptors or memory for now: back off, then retry.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                ) =>
            {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            // Shut down by `Relay::drop` (EINVAL), or not a listener.
            Err(_) => return,
        };
        let _ = std::thread::Builder::new()
            .name("berth-relay6c".into())
            .spawn(move || serve(client, target));
    }
}

fn serve(client: TcpStream, target: SocketAddr) {
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        // The client sees a reset, as with a closed port.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::Builder::new()
        .name("berth-relay6c".into())
        .spawn(move || pump(c2, s2));
    pump(server, client);
    if let Ok(h) = up {
        let _ = h.join();
    }
}

/// Copies until EOF, then half-closes the other side so a client's
/// `shutdown(WR)` reaches the server (HTTP/1.0 style requests).
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_both_ways_and_stops_on_drop() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        let front = TcpListener::bind("[::1]:0").unwrap();
        let port = front.local_addr().unwrap().port();
        let relay = spawn(OwnedFd::from(front), target).unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(&got).unwrap();
        });
        let mut c = TcpStream::connect(("::1", port)).unwrap();
        c.write_all(b"ping").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = String::new();
        c.read_to_string(&mut back).unwrap();
        assert_eq!(back, "ping");
        echo.join().unwrap();
        drop(relay);
        // The listener is shut down: no new connection is accepted.
        let mut ok = false;
        for _ in 0..100 {
            match TcpStream::connect(("::1", port)) {
                Err(_) => {
                    ok = true;
                    break;
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        assert!(ok, "relay still accepts after drop");
    }
}

#[cfg(test)]
mod udp_tests {
    use super::*;

    /// Two clients through one relay each get their own answers, and the
    /// relay stops on drop.
    #[test]
    fn udp_relays_each_client_its_answers() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            for _ in 0..2 {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                let mut reply = b"re:".to_vec();
                reply.extend_from_slice(&buf[..n]);
                server.send_to(&reply, from).unwrap();
            }
        });
        let front = UdpSocket::bind("[::1]:0").unwrap();
        let port = front.local_addr().unwrap().port();
        let relay = spawn(OwnedFd::from(front), target).unwrap();
        let ask = |what: &[u8]| {
            let c = UdpSocket::bind("[::1]:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            c.send_to(what, ("::1", port)).unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(from.port(), port, "answered from the published port");
            buf[..n].to_vec()
        };
        assert_eq!(ask(b"one"), b"re:one");
        assert_eq!(ask(b"two"), b"re:two");
        echo.join().unwrap();
        drop(relay);
    }
}
