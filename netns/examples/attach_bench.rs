//! Measures bridge networking's cost on a container start: create netns +
//! attach (veth, address, route, one published port), and detach + delete
//! netns or `release`, median over N runs; with a port, also with the
//! socket redirect programs (on a cgroup of the run's own). Run as root:
//! `cargo run --release -p netns --example attach_bench -- 50`
//! (`-- 50 v6`: a dual-stack network, v6 address and route too)

use std::time::{Duration, Instant};

use netns::{
    attach, detach, namespace, AttachOpts, NetEnv, Network, NetworkConfig, PortMapping, Proto,
};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir()?;
    let mut env = NetEnv::new(dir.path().join("state"));
    env.table = format!("bench_{}", std::process::id());
    let cfg = NetworkConfig {
        name: "bench".into(),
        bridge: Some(format!("btbench{}", std::process::id() % 10000)),
        subnet: Some("10.123.200.0/24".parse()?),
        ..Default::default()
    };
    let dual = std::env::args().nth(2).as_deref() == Some("v6");
    let cfg = NetworkConfig {
        ipv6: dual,
        // a ULA /64 no test runner slot uses (tests/common/netcfg.rs)
        subnet6: dual.then(|| "fdb7:e57:ff::/64".parse()).transpose()?,
        ..cfg
    };
    Network::create(&env, &cfg)?;
    let cg = testkit::cgroup2::TestCgroup::new(&format!("btbench-{}", std::process::id()));
    let mut env_rdr = env.clone();
    env_rdr.port_redirect = netns::redirect::PortRedirect::Cgroup(cg.dir.clone());
    let variants = [(false, &env), (true, &env), (true, &env_rdr)];
    let (mut up, mut down, mut rel) = (
        vec![vec![]; variants.len()],
        vec![vec![]; variants.len()],
        vec![vec![]; variants.len()],
    );
    let mut ns = vec![vec![]; variants.len()];
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        for i in 0..runs {
            for (k, (with_port, env)) in variants.iter().copied().enumerate() {
                let id = format!("c{i}-{k}");
                let path = dir.path().join("netns").join(&id);
                let opts = AttachOpts {
                    ports: if with_port {
                        vec![PortMapping {
                            host_ip: None,
                            host_port: 0,
                            container_port: 80,
                            proto: Proto::Tcp,
                            host_port_end: 0,
                        }]
                    } else {
                        vec![]
                    },
                    ..Default::default()
                };
                let t = Instant::now();
                namespace::create(&path)?;
                let t_ns = t.elapsed();
                attach(env, "bench", &id, &path, &opts)?;
                let t_up = t.elapsed();
                ns[k].push(t_ns);
                let t = Instant::now();
                if i % 2 == 0 {
                    detach(env, "bench", &id)?;
                    namespace::delete(&path)?;
                } else {
                    netns::release(env, &id, &path)?;
                }
                let t_down = t.elapsed();
                up[k].push(t_up);
                if i % 2 == 0 {
                    down[k].push(t_down);
                } else {
                    rel[k].push(t_down);
                }
            }
        }
        Ok(())
    })();
    Network::delete(&env, "bench")?;
    result?;
    println!("runs: {runs}{}", if dual { " (dual-stack)" } else { "" });
    for (k, label) in ["no ports", "one -p", "one -p, redirect"]
        .iter()
        .enumerate()
    {
        println!(
            "{label:9} netns create {:?} | netns create+attach {:?} | detach+netns delete {:?} | release {:?}",
            median(ns[k].clone()),
            median(up[k].clone()),
            median(down[k].clone()),
            median(rel[k].clone())
        );
    }
    Ok(())
}
