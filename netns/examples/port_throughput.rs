//! TCP throughput through a published port (kernel DNAT, from the host to
//! 127.0.0.1 and to the bridge gateway) against the host's own loopback.
//! Run as root: `cargo run --release -p netns --example port_throughput -- 2048`
//! (MiB per transfer).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Instant;

use netns::{attach, namespace, AttachOpts, NetEnv, Network, NetworkConfig, PortMapping, Proto};

fn sink(l: TcpListener) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        for mut c in l.incoming().flatten() {
            while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
            let _ = c.write_all(b"k");
        }
    });
}

fn send(ip: Ipv4Addr, port: u16, mib: usize) -> std::io::Result<f64> {
    let mut s = TcpStream::connect((ip, port))?;
    let buf = vec![7u8; 1 << 20];
    let t = Instant::now();
    for _ in 0..mib {
        s.write_all(&buf)?;
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let mut ack = [0u8; 1];
    s.read_exact(&mut ack)?;
    Ok(mib as f64 * 8.0 / 1024.0 / t.elapsed().as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir()?;
    let mut env = NetEnv::new(dir.path().join("state"));
    env.table = format!("tput_{}", std::process::id());
    let cfg = NetworkConfig {
        name: "tput".into(),
        bridge: Some(format!("bttput{}", std::process::id() % 10000)),
        subnet: Some("10.123.201.0/24".parse()?),
        ..Default::default()
    };
    Network::create(&env, &cfg)?;
    let ns = dir.path().join("netns/c");
    let res = (|| -> Result<(), Box<dyn std::error::Error>> {
        namespace::create(&ns)?;
        let l = namespace::run_in(&ns, || {
            TcpListener::bind("0.0.0.0:5001").map_err(|e| netns::Error::Io {
                op: "bind",
                path: "0.0.0.0:5001".into(),
                source: e,
            })
        })?;
        sink(l);
        let a = attach(
            &env,
            "tput",
            "c",
            &ns,
            &AttachOpts {
                ports: vec![PortMapping {
                    host_ip: None,
                    host_port: 0,
                    container_port: 5001,
                    proto: Proto::Tcp,
                    host_port_end: 0,
                }],
                ..Default::default()
            },
        )?;
        let hp = a.lease.ports[0].host_port;
        // A second container on the same bridge, sending from its namespace.
        let ns2 = dir.path().join("netns/c2");
        namespace::create(&ns2)?;
        attach(&env, "tput", "c2", &ns2, &AttachOpts::default())?;
        let lo = TcpListener::bind("127.0.0.1:0")?;
        let lp = lo.local_addr()?.port();
        sink(lo);
        for round in 0..3 {
            let base = send(Ipv4Addr::LOCALHOST, lp, mib)?;
            let pubd = send(Ipv4Addr::LOCALHOST, hp, mib)?;
            let gw = send(a.gateway, hp, mib)?;
            let direct = send(a.lease.ip, 5001, mib)?;
            let ip = a.lease.ip;
            let c2c = namespace::run_in(&ns2, move || {
                send(ip, 5001, mib).map_err(|e| netns::Error::Io {
                    op: "send",
                    path: "container to container".into(),
                    source: e,
                })
            })?;
            println!(
                "round {round}: loopback {base:.1} Gbit/s | 127.0.0.1:published {pubd:.1} ({:.0}%) | gateway:published {gw:.1} ({:.0}%) | host to container ip {direct:.1} | container to container {c2c:.1} ({:.0}%)",
                pubd / base * 100.0,
                gw / base * 100.0,
                c2c / base * 100.0
            );
        }
        Ok(())
    })();
    let _ = netns::release(&env, "c", &ns);
    let _ = netns::release(&env, "c2", &dir.path().join("netns/c2"));
    Network::delete(&env, "tput")?;
    res
}
