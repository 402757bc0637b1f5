//! Measures the name resolver: the "is it running?" probe that the engine
//! runs on every container start on a user-defined network
//! (`dns::probe`, one open + one non-blocking flock + one stat), the time from
//! `dns::run` to listening, and a query's round trip from a container
//! namespace (a container name, answered locally), median over N. Root:
//! `cargo run --release -p netns --example dns_bench -- 2000`

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use netns::dns::{self, answer::build_query, UpstreamSource};
use netns::{attach, namespace, AttachOpts, NetEnv, Network, NetworkConfig};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir()?;
    let mut env = NetEnv::new(dir.path().join("state"));
    env.table = format!("bench_{}", std::process::id());
    let bridge = format!("btdns{}", std::process::id() % 10000);
    let cfg = NetworkConfig {
        name: "bench".into(),
        bridge: Some(bridge.clone()),
        subnet: Some("10.126.200.0/24".parse()?),
        ..Default::default()
    };
    let net = Network::create(&env, &cfg)?;
    let mut paths = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        for name in ["asker", "target"] {
            let p = dir.path().join("netns").join(name);
            namespace::create(&p)?;
            paths.push(p.clone());
            let opts = AttachOpts {
                name: name.into(),
                ..Default::default()
            };
            attach(&env, "bench", &format!("{name}{:0>58}", 0), &p, &opts)?;
        }
        let mut probe = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let p = dns::probe(&env.state_dir)?;
            probe.push(t.elapsed());
            assert_eq!(p, dns::Probe::Stopped);
        }
        let mut c = dns::Config::new(&env.state_dir);
        c.upstream = UpstreamSource::Fixed(vec![]);
        let (tx, rx) = mpsc::channel();
        let s2 = stop.clone();
        let t0 = Instant::now();
        let th = std::thread::spawn(move || {
            dns::run(
                &c,
                move |_| {
                    let _ = tx.send(Instant::now());
                },
                Some(s2),
            )
        });
        let listening = rx.recv_timeout(Duration::from_secs(10))? - t0;
        let mut probe_running = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let p = dns::probe(&env.state_dir)?;
            probe_running.push(t.elapsed());
            assert_eq!(p, dns::Probe::Ready);
        }
        let gw = net.gateway;
        let rtt = namespace::run_in(&paths[0], move || {
            let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| netns::Error::Io {
                op: "bind",
                path: "udp".into(),
                source: e,
            })?;
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let q = build_query(7, "target.", hickory_proto::rr::RecordType::A)
                .ok_or(netns::Error::ThreadPanicked("build query"))?;
            let mut buf = [0u8; 512];
            let mut v = Vec::with_capacity(runs);
            for _ in 0..runs {
                let t = Instant::now();
                let _ = s.send_to(&q, (gw, 53));
                if s.recv(&mut buf).is_ok() {
                    v.push(t.elapsed());
                }
            }
            Ok(v)
        })?;
        stop.store(true, Ordering::Relaxed);
        let _ = th.join();
        println!("runs: {runs}");
        println!(
            "probe, no resolver (flock + unlock):      {:?}",
            median(probe)
        );
        println!(
            "probe, resolver ready (flock + stat):     {:?}",
            median(probe_running)
        );
        println!("dns::run to listening:                    {listening:?}");
        println!(
            "query round trip (container name, UDP):   {:?} ({} answered)",
            median(rtt.clone()),
            rtt.len()
        );
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    for n in netns::list(&env)? {
        for id in n.leases.keys() {
            let _ = netns::detach(&env, &n.name, id);
        }
    }
    let _ = Network::delete(&env, "bench");
    for p in &paths {
        let _ = namespace::delete(p);
    }
    result
}
