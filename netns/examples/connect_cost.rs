//! What berth's socket redirect programs cost a `connect()`: a host
//! process's connects to an unrelated local listener (which the connect
//! program looks up and lets through), and to a published port (redirected
//! at the socket, or DNAT'ed), each timed from a child process inside the
//! programs' cgroup and from one outside it, in interleaved rounds.
//! Run as root: `cargo run --release -p netns --example connect_cost -- 5 20000`
//! (rounds, connects per measurement); a third argument `time-wait` closes
//! normally, leaving each connection in TIME_WAIT, instead of with a reset.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use nix::sys::socket::{setsockopt, sockopt};

use netns::{attach, namespace, AttachOpts, NetEnv, Network, NetworkConfig, PortMapping, Proto};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Child mode: `connect_cost --child CGROUP ADDR N RESET`, joins CGROUP
/// (or stays where it is for `-`) and prints the mean ns per
/// connect+close.
fn child(cgroup: &str, addr: SocketAddr, n: u32, reset: bool) -> Res<()> {
    if cgroup != "-" {
        std::fs::write(
            Path::new(cgroup).join("cgroup.procs"),
            std::process::id().to_string(),
        )?;
    }
    let t = Instant::now();
    // Closed with a reset: no TIME_WAIT left to crowd later connects'
    // port choice (20000 of them would).
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    for _ in 0..n {
        let s = TcpStream::connect(addr)?;
        if reset {
            setsockopt(&s, sockopt::Linger, &linger)?;
        }
    }
    println!("{}", t.elapsed().as_nanos() / n as u128);
    Ok(())
}

fn measure(cgroup: &str, addr: SocketAddr, n: u32, reset: bool) -> Res<f64> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--child", cgroup, &addr.to_string(), &n.to_string()])
        .arg(if reset { "reset" } else { "time-wait" })
        .output()?;
    if !out.status.success() {
        return Err(format!("child for {addr}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Accepts and drops connections until the process ends.
fn sink(l: TcpListener) {
    std::thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(
            &args[1],
            args[2].parse()?,
            args[3].parse()?,
            args[4] == "reset",
        );
    }
    let rounds: usize = args.first().map_or(Ok(5), |s| s.parse())?;
    let n: u32 = args.get(1).map_or(Ok(20000), |s| s.parse())?;
    let reset = args.get(2).map(String::as_str) != Some("time-wait");
    let dir = tempfile::tempdir()?;
    let mut env = NetEnv::new(dir.path().join("state"));
    env.table = format!("ccost_{}", std::process::id());
    let cg = testkit::cgroup2::TestCgroup::new(&format!("btccost-{}", std::process::id()));
    env.port_redirect = netns::redirect::PortRedirect::Cgroup(cg.dir.clone());
    let cfg = NetworkConfig {
        name: "ccost".into(),
        bridge: Some(format!("btcc{}", std::process::id() % 100000)),
        subnet: Some("10.123.202.0/24".parse()?),
        ..Default::default()
    };
    Network::create(&env, &cfg)?;
    let ns = dir.path().join("netns/c");
    let res = (|| -> Res<()> {
        namespace::create(&ns)?;
        let ctr = namespace::run_in(&ns, || Ok(TcpListener::bind("0.0.0.0:80")))??;
        sink(ctr);
        let a = attach(
            &env,
            "ccost",
            "c",
            &ns,
            &AttachOpts {
                ports: vec![PortMapping {
                    host_ip: None,
                    host_port: 0,
                    container_port: 80,
                    proto: Proto::Tcp,
                    host_port_end: 0,
                }],
                ..Default::default()
            },
        )?;
        let published = SocketAddr::from((Ipv4Addr::LOCALHOST, a.lease.ports[0].host_port));
        let other = TcpListener::bind("127.0.0.1:0")?;
        let unrelated = other.local_addr()?;
        sink(other);
        let inside = cg.dir.to_string_lossy().into_owned();
        let cases: [(&str, &str, SocketAddr); 4] = [
            ("unrelated 127.0.0.1 listener, no program", "-", unrelated),
            (
                "unrelated 127.0.0.1 listener, program passes",
                &inside,
                unrelated,
            ),
            ("published 127.0.0.1:port, DNAT", "-", published),
            (
                "published 127.0.0.1:port, socket redirect",
                &inside,
                published,
            ),
        ];
        let mut got = vec![Vec::new(); cases.len()];
        for round in 0..rounds {
            for k in 0..cases.len() {
                let i = (round + k) % cases.len();
                got[i].push(measure(cases[i].1, cases[i].2, n, reset)?);
            }
        }
        let close = if reset { "reset" } else { "close (TIME_WAIT)" };
        println!("\n| connect + {close}, {n} per run x {rounds} interleaved rounds | median ns |");
        println!("|---|---|");
        for (i, (name, ..)) in cases.iter().enumerate() {
            println!("| {name} | {:.0} |", median(got[i].clone()));
        }
        Ok(())
    })();
    let _ = netns::release(&env, "c", &ns);
    Network::delete(&env, "ccost")?;
    res
}
