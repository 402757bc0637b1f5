//! TCP throughput through a published port (berth's socket redirect, and
//! kernel DNAT) against the host's own loopback, with iperf3 on every path: the same client (on the
//! host, or in a second container), the same server program (on the host
//! for loopback, in the container otherwise), the same duration and
//! buffer sizes. Rounds are interleaved (each round runs every path once,
//! starting at a different path) and the medians are reported, so a load
//! change from other work on the machine hits every path alike.
//! Run as root, with iperf3 installed (scripts/install-deps.sh --bench):
//! `cargo run --release -p netns --example port_throughput -- 5 5 [MTU]`
//! (rounds, seconds per transfer, and the network's MTU as
//! `network create -o com.docker.network.driver.mtu` sets it; when not
//! given, berth's default: 65535-byte links with 1500-byte default routes).

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netns::{attach, namespace, AttachOpts, NetEnv, Network, NetworkConfig, PortMapping, Proto};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A path: its name, the client's namespace (host: `None`) and cgroup (as
/// is: `None`), and the server's address and port.
type Case<'a> = (&'a str, Option<&'a Path>, Option<&'a Path>, Ipv4Addr, u16);

/// An iperf3 server, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `iperf3 -s` on `port`, in the namespace `ns` or on the host.
fn server(ns: Option<&Path>, bind: Option<Ipv4Addr>, port: u16) -> Res<Server> {
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg("iperf3");
            c
        }
        None => Command::new("iperf3"),
    };
    c.args(["-s", "-p", &port.to_string()]);
    if let Some(b) = bind {
        c.args(["-B", &b.to_string()]);
    }
    let child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("run iperf3 (install it: scripts/install-deps.sh --bench): {e}"))?;
    Ok(Server(child))
}

/// One `iperf3 -c` transfer of `secs` seconds; Gbit/s received. The
/// first try may meet a server that is not listening yet: retried. With
/// `cgroup`, the client runs in that cgroup v2 directory (where berth's
/// redirect programs are attached).
fn client(
    ns: Option<&Path>,
    cgroup: Option<&Path>,
    ip: Ipv4Addr,
    port: u16,
    secs: u32,
) -> Res<f64> {
    let mut last = String::new();
    for _ in 0..50 {
        let mut c = match (ns, cgroup) {
            (Some(ns), _) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg("iperf3");
                c
            }
            (None, Some(cg)) => {
                let mut c = Command::new("sh");
                c.args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec iperf3 \"$@\""])
                    .arg(cg);
                c
            }
            (None, None) => Command::new("iperf3"),
        };
        let out = c
            .args(["-c", &ip.to_string(), "-p", &port.to_string()])
            .args(["-t", &secs.to_string(), "-J"])
            .stderr(Stdio::null())
            .output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(bps) = v["end"]["sum_received"]["bits_per_second"].as_f64() {
            return Ok(bps / 1e9);
        }
        last = v["error"].as_str().unwrap_or("no output").to_string();
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("iperf3 to {ip}:{port}: {last}").into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1).map(|s| s.parse::<u32>());
    let rounds = args.next().transpose()?.unwrap_or(5).max(1);
    let secs = args.next().transpose()?.unwrap_or(5).max(1);
    let mtu = args.next().transpose()?;
    let dir = tempfile::tempdir()?;
    let mut env = NetEnv::new(dir.path().join("state"));
    env.table = format!("tput_{}", std::process::id());
    // berth's socket redirect programs, on a cgroup of this run's own (the
    // host's root cgroup, berth's default, would act on every process).
    let cg = testkit::cgroup2::TestCgroup::new(&format!("bttput-{}", std::process::id()));
    env.port_redirect = netns::redirect::PortRedirect::Cgroup(cg.dir.clone());
    let cfg = NetworkConfig {
        name: "tput".into(),
        bridge: Some(format!("bttput{}", std::process::id() % 10000)),
        subnet: Some("10.123.201.0/24".parse()?),
        mtu,
        ..Default::default()
    };
    Network::create(&env, &cfg)?;
    let (ns, ns2) = (dir.path().join("netns/c"), dir.path().join("netns/c2"));
    let res = (|| -> Res<()> {
        namespace::create(&ns)?;
        let a = attach(
            &env,
            "tput",
            "c",
            &ns,
            &AttachOpts {
                ports: vec![PortMapping {
                    host_ip: None,
                    host_port: 0,
                    container_port: 5201,
                    proto: Proto::Tcp,
                    host_port_end: 0,
                }],
                ..Default::default()
            },
        )?;
        let hp = a.lease.ports[0].host_port;
        // A second container on the same bridge, as a client.
        namespace::create(&ns2)?;
        attach(&env, "tput", "c2", &ns2, &AttachOpts::default())?;
        let lp = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let _lo = server(None, Some(Ipv4Addr::LOCALHOST), lp)?;
        let _ctr = server(Some(&ns), None, 5201)?;
        let ip = a.lease.ip;
        // The address the host would use toward the outside (connecting a
        // UDP socket sends nothing).
        let host = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|u| u.connect("192.0.2.1:9").map(|()| u))
            .and_then(|u| u.local_addr())
            .map(|a| a.ip())
            .ok()
            .and_then(|a| match a {
                std::net::IpAddr::V4(v) => Some(v),
                _ => None,
            })
            .unwrap_or(a.gateway);
        let rdr = Some(cg.dir.as_path());
        let paths: [Case; 8] = [
            (
                "loopback (host -> 127.0.0.1)",
                None,
                None,
                Ipv4Addr::LOCALHOST,
                lp,
            ),
            (
                "published, socket redirect (host -> 127.0.0.1:port)",
                None,
                rdr,
                Ipv4Addr::LOCALHOST,
                hp,
            ),
            (
                "published, socket redirect (host -> host address:port)",
                None,
                rdr,
                host,
                hp,
            ),
            (
                "published, DNAT (host -> 127.0.0.1:port)",
                None,
                None,
                Ipv4Addr::LOCALHOST,
                hp,
            ),
            (
                "published, DNAT (host -> gateway:port)",
                None,
                None,
                a.gateway,
                hp,
            ),
            (
                "published, DNAT (host -> host address:port)",
                None,
                None,
                host,
                hp,
            ),
            ("host -> container IP (no DNAT)", None, None, ip, 5201),
            ("container -> container", Some(&ns2), None, ip, 5201),
        ];
        let mut got = vec![Vec::new(); paths.len()];
        for round in 0..rounds as usize {
            for k in 0..paths.len() {
                let i = (round + k) % paths.len();
                let (_, cns, cgroup, ip, port) = paths[i];
                got[i].push(client(cns, cgroup, ip, port, secs)?);
            }
            let line: Vec<String> = got.iter().map(|g| format!("{:.1}", g[round])).collect();
            eprintln!("round {round}: {} Gbit/s", line.join(" | "));
        }
        let base = median(got[0].clone());
        println!(
            "\n| iperf3, 1 TCP stream, {secs} s x {rounds} interleaved rounds, {} | median Gbit/s | min-max | / loopback median | median of per-round ratios |",
            mtu.map_or("default MTU".to_string(), |m| format!("MTU {m}"))
        );
        println!("|---|---|---|---|---|");
        for (i, (name, ..)) in paths.iter().enumerate() {
            let m = median(got[i].clone());
            let ratios: Vec<f64> = got[i].iter().zip(&got[0]).map(|(a, b)| a / b).collect();
            let (lo, hi) = got[i]
                .iter()
                .fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
            println!(
                "| {name} | {m:.1} | {lo:.1}-{hi:.1} | {:.0}% | {:.0}% |",
                m / base * 100.0,
                median(ratios) * 100.0
            );
        }
        Ok(())
    })();
    let _ = netns::release(&env, "c", &ns);
    let _ = netns::release(&env, "c2", &ns2);
    Network::delete(&env, "tput")?;
    res
}
