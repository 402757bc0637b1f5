//! The UDP side of the relay: each client address gets its own socket
//! connected to the container, so the container's answers go back to the
//! right client, from the published address (docker-proxy's scheme, with
//! its 90 s idle timeout and 1024 clients at most).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// docker-proxy's `UDPConnTrackTimeout`.
const IDLE: Duration = Duration::from_secs(90);
/// docker-proxy's limit of clients relayed at once.
const MAX_CLIENTS: usize = 1024;
/// The largest UDP payload.
const BUF: usize = 65507;

/// One client's socket to the container. `last` is the last traffic
/// either way, in ms since the relay started; `gone` is set when its
/// answer thread ends (idle, or the relay stopped).
struct Client {
    up: Arc<UdpSocket>,
    last: Arc<AtomicU64>,
    gone: Arc<AtomicBool>,
}

fn shutdown_read(s: &UdpSocket) {
    // SAFETY: shutdown(2) on a socket we hold; it wakes a blocked recv.
    unsafe { libc::shutdown(s.as_raw_fd(), libc::SHUT_RD) };
}

/// Relays datagrams from `front` to `target` until `stop` is set.
pub(super) fn relay(front: UdpSocket, target: SocketAddr, stop: &AtomicBool) {
    let front = Arc::new(front);
    let start = Instant::now();
    let mut clients: HashMap<SocketAddr, Client> = HashMap::new();
    let mut buf = vec![0u8; BUF];
    loop {
        let got = front.recv_from(&mut buf);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok((n, from)) = got else {
            continue;
        };
        clients.retain(|_, c| !c.gone.load(Ordering::Relaxed));
        if !clients.contains_key(&from) {
            if clients.len() >= MAX_CLIENTS {
                continue;
            }
            match upstream(&front, from, target, start) {
                Some(c) => clients.insert(from, c),
                None => continue,
            };
        }
        let Some(c) = clients.get(&from) else {
            continue;
        };
        c.last
            .store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        // An ICMP "port unreachable" for an earlier datagram fails the
        // next send on a connected socket (ECONNREFUSED) without sending
        // it: send again. Otherwise a lost datagram is lost, as on the wire.
        if let Err(e) = c.up.send(&buf[..n]) {
            if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                let _ = c.up.send(&buf[..n]);
            }
        }
    }
    for c in clients.values() {
        c.gone.store(true, Ordering::Relaxed);
        shutdown_read(&c.up);
    }
}

/// A socket connected to `target` for `client`, with a thread that sends
/// the container's answers back until the client has been idle for
/// [`IDLE`] or the relay stops.
fn upstream(
    front: &Arc<UdpSocket>,
    client: SocketAddr,
    target: SocketAddr,
    start: Instant,
) -> Option<Client> {
    let any: SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let up = UdpSocket::bind(any).ok()?;
    up.connect(target).ok()?;
    up.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let c = Client {
        up: Arc::new(up),
        last: Arc::new(AtomicU64::new(start.elapsed().as_millis() as u64)),
        gone: Arc::new(AtomicBool::new(false)),
    };
    let (up, last, gone, front) = (
        Arc::clone(&c.up),
        Arc::clone(&c.last),
        Arc::clone(&c.gone),
        Arc::clone(front),
    );
    let idle = move |last: &AtomicU64| {
        (start.elapsed().as_millis() as u64).saturating_sub(last.load(Ordering::Relaxed))
            > IDLE.as_millis() as u64
    };
    std::thread::Builder::new()
        .name("berth-relay6uc".into())
        .spawn(move || {
            let mut buf = vec![0u8; BUF];
            while !gone.load(Ordering::Relaxed) && !idle(&last) {
                // Errors: the read timeout (to check idleness), or
                // ECONNREFUSED from an earlier send to a closed port.
                if let Ok(n) = up.recv(&mut buf) {
                    last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                    let _ = front.send_to(&buf[..n], client);
                }
            }
            gone.store(true, Ordering::Relaxed);
        })
        .ok()?;
    Some(c)
}
