//! A fake upstream DNS server on loopback (UDP and TCP on one port), for
//! the tests of berth's resolver: A queries for names under
//! `upstream.test` get [`ANSWER`]; `big.upstream.test` is truncated over
//! UDP and has three records (10.126.250.1-3) over TCP; everything else is
//! NXDOMAIN, or SERVFAIL from a failing server. Records every name asked
//! (lower case, with the root dot: `x.upstream.test.`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The address every `*.upstream.test` A query gets.
pub const ANSWER: Ipv4Addr = Ipv4Addr::new(10, 126, 250, 1);

pub struct DnsUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    ths: Vec<JoinHandle<()>>,
}

/// The question's name (FQDN, lower case) and the offset after it.
fn qname(q: &[u8]) -> Option<(String, usize)> {
    let mut i = 12;
    let mut name = String::new();
    loop {
        let n = *q.get(i)? as usize;
        i += 1;
        if n == 0 {
            break;
        }
        name.push_str(&String::from_utf8_lossy(q.get(i..i + n)?).to_ascii_lowercase());
        name.push('.');
        i += n;
    }
    if name.is_empty() {
        name.push('.');
    }
    Some((name, i))
}

fn answer(q: &[u8], udp: bool, failing: bool, seen: &Mutex<Vec<String>>) -> Option<Vec<u8>> {
    let (name, end) = qname(q)?;
    let qtype = u16::from_be_bytes([*q.get(end)?, *q.get(end + 1)?]);
    seen.lock().unwrap().push(name.clone());
    // Header and question of the query; no EDNS record in the answer.
    let mut r = q.get(..end + 4)?.to_vec();
    r[2] = 0x80 | (q[2] & 0x01); // QR, RD as asked
    r[3] = 0x80; // RA, NOERROR
    r[4..6].copy_from_slice(&[0, 1]);
    r[6..12].copy_from_slice(&[0; 6]);
    let a = qtype == 1;
    let records: Vec<u8> = if failing {
        r[3] |= 2; // SERVFAIL
        vec![]
    } else if name == "big.upstream.test." {
        if udp {
            r[2] |= 0x02; // TC: ask again over TCP
            vec![]
        } else if a {
            vec![1, 2, 3]
        } else {
            vec![]
        }
    } else if name.ends_with(".upstream.test.") {
        if a {
            vec![1]
        } else {
            vec![]
        }
    } else {
        r[3] |= 3; // NXDOMAIN
        vec![]
    };
    r[7] = records.len() as u8;
    for o in records {
        let [a, b, c, _] = ANSWER.octets();
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, a, b, c, o]);
    }
    Some(r)
}

impl DnsUpstream {
    /// On 127.0.0.1 and a free port.
    pub fn start() -> DnsUpstream {
        DnsUpstream::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), false)
    }

    /// Answers SERVFAIL to everything.
    pub fn start_failing() -> DnsUpstream {
        DnsUpstream::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), true)
    }

    /// On port 53 of a random loopback address (as `--dns` servers and
    /// resolv.conf name them: no port).
    pub fn start_on_53() -> DnsUpstream {
        let mut b = [0u8; 3];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut b)
            .unwrap();
        let ip = Ipv4Addr::new(127, b[0].max(2), b[1], b[2].clamp(1, 254));
        DnsUpstream::start_on(SocketAddr::from((ip, 53)), false)
    }

    pub fn start_on(addr: SocketAddr, failing: bool) -> DnsUpstream {
        let tcp = TcpListener::bind(addr).unwrap();
        let addr = tcp.local_addr().unwrap();
        let udp = UdpSocket::bind(addr).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s1, st1) = (seen.clone(), stop.clone());
        let u = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !st1.load(Ordering::Relaxed) {
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    if let Some(r) = answer(&buf[..n], true, failing, &s1) {
                        let _ = udp.send_to(&r, from);
                    }
                }
            }
        });
        let (s2, st2) = (seen.clone(), stop.clone());
        let t = std::thread::spawn(move || {
            while !st2.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = tcp.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut len = [0u8; 2];
                if c.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if c.read_exact(&mut q).is_err() {
                    continue;
                }
                if let Some(r) = answer(&q, false, failing, &s2) {
                    let mut framed = (r.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&r);
                    let _ = c.write_all(&framed);
                }
            }
        });
        DnsUpstream {
            addr,
            seen,
            stop,
            ths: vec![u, t],
        }
    }

    /// The names asked so far, in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for DnsUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.ths.drain(..) {
            let _ = t.join();
        }
    }
}
