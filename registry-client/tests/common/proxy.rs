//! A loopback TCP proxy in front of the registry that injects faults into
//! the byte stream: corrupt a blob, cut a connection mid-blob, hide Range
//! headers, or answer 503 first. It also counts what passed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub enum Mode {
    Pass,
    /// Flip a byte of the first occurrence of `marker` in each response.
    Corrupt {
        marker: Vec<u8>,
    },
    /// The first `times` responses carrying `marker` are cut right after it.
    Drop {
        marker: Vec<u8>,
        times: usize,
    },
    /// Rename `range:` request headers so the registry answers 200.
    StripRange,
    /// The first `times` connections get `503` with `Retry-After: 0`.
    Fail503 {
        times: usize,
    },
}

#[derive(Default)]
pub struct Stats {
    /// Raw request bytes seen, for counting methods and headers.
    pub requests: Vec<u8>,
    pub drops: usize,
    pub failures: usize,
}

impl Stats {
    pub fn count(&self, needle: &str) -> usize {
        let n = needle.as_bytes();
        self.requests
            .windows(n.len())
            .filter(|w| w.eq_ignore_ascii_case(n))
            .count()
    }
}

pub struct Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    pub stats: Arc<Mutex<Stats>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Proxy {
    pub fn start(upstream_port: u16, mode: Mode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let counter = Arc::new(AtomicUsize::new(0));
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let (mode, stats, counter) =
                            (mode.clone(), stats2.clone(), counter.clone());
                        std::thread::spawn(move || {
                            handle(client, upstream_port, mode, stats, counter)
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            port,
            stop,
            stats,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(
    mut client: TcpStream,
    upstream_port: u16,
    mode: Mode,
    stats: Arc<Mutex<Stats>>,
    counter: Arc<AtomicUsize>,
) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    if let Mode::Fail503 { times } = mode {
        if counter.fetch_add(1, Ordering::SeqCst) < times {
            let mut buf = [0u8; 65536];
            let n = client.read(&mut buf).unwrap_or(0);
            stats.lock().unwrap().requests.extend_from_slice(&buf[..n]);
            stats.lock().unwrap().failures += 1;
            let _ = client.write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    }
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
        return;
    };
    let (mut c_read, mut u_write) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let strip = matches!(mode, Mode::StripRange);
    let stats_up = stats.clone();
    let up = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let data = &mut buf[..n];
            stats_up.lock().unwrap().requests.extend_from_slice(data);
            if strip {
                while let Some(i) = find(data, b"range: bytes=") {
                    data[i..i + 6].copy_from_slice(b"x-nge:");
                }
            }
            if u_write.write_all(data).is_err() {
                break;
            }
        }
        let _ = u_write.shutdown(Shutdown::Write);
    });
    let mut u_read = upstream.try_clone().unwrap();
    let mut buf = vec![0u8; 65536];
    // Tail of the previous read, to find a marker split across reads.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match u_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = &mut buf[..n];
        match &mode {
            Mode::Corrupt { marker } => {
                if let Some(i) = find(data, marker) {
                    data[i] ^= 0x01;
                }
            }
            Mode::Drop { marker, times } => {
                let mut joined = tail.clone();
                joined.extend_from_slice(data);
                if let Some(i) = find(&joined, marker) {
                    if counter.fetch_add(1, Ordering::SeqCst) < *times {
                        let end = (i + marker.len())
                            .saturating_sub(tail.len())
                            .min(data.len());
                        let _ = client.write_all(&data[..end]);
                        stats.lock().unwrap().drops += 1;
                        let _ = client.shutdown(Shutdown::Both);
                        let _ = upstream.shutdown(Shutdown::Both);
                        break;
                    }
                }
                let keep = marker.len().saturating_sub(1).min(joined.len());
                tail = joined[joined.len() - keep..].to_vec();
            }
            _ => {}
        }
        if client.write_all(data).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = up.join();
}
