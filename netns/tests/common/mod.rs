//! Test fixtures: every test gets its own state dir, nft table, names and
//! subnets, and a guard that removes what it created, also on failure.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use netns::{namespace, NetEnv};

pub fn rand_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect::<String>()[..n].to_string()
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub env: NetEnv,
    pub tag: String,
    pub netns: Vec<PathBuf>,
    pub dummies: Vec<String>,
}

impl Fixture {
    pub fn new() -> Self {
        let tag = rand_hex(6);
        let dir = tempfile::tempdir().unwrap();
        let mut env = NetEnv::new(dir.path().join("state"));
        env.table = format!("bt_{tag}");
        Fixture {
            dir,
            env,
            tag,
            netns: Vec::new(),
            dummies: Vec::new(),
        }
    }

    /// Bridge name unique to this test: `bt<tag><i>`.
    pub fn bridge(&self, i: u8) -> String {
        format!("bt{}{i}", self.tag)
    }

    pub fn netns_dir(&self) -> PathBuf {
        self.dir.path().join("run/netns")
    }

    pub fn new_netns(&mut self, name: &str) -> PathBuf {
        let p = self.netns_dir().join(name);
        namespace::create(&p).unwrap();
        self.netns.push(p.clone());
        p
    }

    /// A link holding a test-only host address (never the real network).
    /// This kernel has no `dummy` module, so it is one end of a veth pair.
    pub fn dummy(&mut self, i: u8, addr: &str) -> String {
        let name = format!("dt{}{i}", self.tag);
        let peer = format!("{name}p");
        sh(&[
            "ip", "link", "add", &name, "type", "veth", "peer", "name", &peer,
        ]);
        sh(&["ip", "link", "set", &peer, "up"]);
        self.dummies.push(name.clone());
        sh(&["ip", "addr", "add", addr, "dev", &name]);
        sh(&["ip", "link", "set", &name, "up"]);
        name
    }

    /// Asserts nothing of this test is left in the kernel.
    pub fn assert_clean(&self) {
        let links = String::from_utf8(
            Command::new("ip")
                .args(["-br", "link"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let veths: Vec<String> = self
            .env_networks_veths()
            .into_iter()
            .filter(|v| links.contains(v.as_str()))
            .collect();
        assert!(veths.is_empty(), "veths left: {veths:?}");
        assert!(
            !links.contains(&format!("bt{}", self.tag)),
            "bridge left:\n{links}"
        );
        let tables = String::from_utf8(
            Command::new("nft")
                .args(["list", "tables"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert!(!tables.contains(&self.env.table), "table left:\n{tables}");
        let left: Vec<_> = std::fs::read_dir(self.netns_dir())
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "netns left: {left:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(self.dir.path().to_str().unwrap()),
            "mounts left"
        );
    }

    fn env_networks_veths(&self) -> Vec<String> {
        netns::list(&self.env)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|n| n.leases.into_values().map(|l| l.host_veth))
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let ids: Vec<(String, String)> = netns::list(&self.env)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|n| {
                let name = n.name.clone();
                n.leases.into_keys().map(move |c| (name.clone(), c))
            })
            .collect();
        for (net, c) in ids {
            let _ = netns::detach(&self.env, &net, &c);
        }
        for n in netns::list(&self.env).unwrap_or_default() {
            let _ = netns::Network::delete(&self.env, &n.name);
            let _ = Command::new("ip").args(["link", "del", &n.bridge]).output();
        }
        for p in &self.netns {
            let _ = namespace::delete(p);
        }
        for d in &self.dummies {
            let _ = Command::new("ip").args(["link", "del", d]).output();
        }
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.env.table])
            .output();
    }
}

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TCP or UDP server in a namespace answering every request with `reply`,
/// stopped and joined on drop (so no socket keeps the namespace alive).
pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
    th: Option<JoinHandle<()>>,
}

impl Server {
    pub fn tcp(ns: &Path, port: u16, reply: &'static str) -> Server {
        let l = namespace::run_in(
            ns,
            move || Ok(TcpListener::bind(("0.0.0.0", port)).unwrap()),
        )
        .unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let th = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.write_all(reply.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            port,
            stop,
            th: Some(th),
        }
    }

    pub fn udp(ns: &Path, port: u16, reply: &'static str) -> Server {
        let s =
            namespace::run_in(ns, move || Ok(UdpSocket::bind(("0.0.0.0", port)).unwrap())).unwrap();
        let port = s.local_addr().unwrap().port();
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let th = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !s2.load(Ordering::Relaxed) {
                if let Ok((_, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(reply.as_bytes(), from);
                }
            }
        });
        Server {
            port,
            stop,
            th: Some(th),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.th.take() {
            let _ = t.join();
        }
    }
}

/// Connects to `addr` (from namespace `ns`, or the host) and reads the reply.
pub fn tcp_get(ns: Option<&Path>, ip: Ipv4Addr, port: u16) -> std::io::Result<String> {
    let f = move || -> std::io::Result<String> {
        let addr = SocketAddr::from((ip, port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(1500))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    };
    match ns {
        None => f(),
        Some(ns) => namespace::run_in(ns, move || Ok(f())).unwrap(),
    }
}

pub fn udp_get(ip: Ipv4Addr, port: u16) -> std::io::Result<String> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.set_read_timeout(Some(Duration::from_millis(1500)))?;
    s.send_to(b"ping", (ip, port))?;
    let mut buf = [0u8; 64];
    let (n, _) = s.recv_from(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}
