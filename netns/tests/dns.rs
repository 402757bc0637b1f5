//! Real-kernel tests of the resolver (root): networks and namespaces made
//! with the netns API, the resolver on the gateways (port 53) in this
//! process, queries sent from inside the container namespaces, and a fake
//! upstream on loopback. Subnets 10.126.x.0/24 (x distinct per test).

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use netns::dns::{self, answer::build_query, Exit, Probe, UpstreamSource};
use netns::{attach, detach, namespace, AttachOpts, Network, NetworkConfig};
use testkit::dns_upstream::DnsUpstream as Upstream;

fn cfg(name: &str, bridge: String, subnet: &str, internal: bool) -> NetworkConfig {
    NetworkConfig {
        name: name.into(),
        bridge: Some(bridge),
        subnet: Some(subnet.parse().unwrap()),
        internal,
        ..Default::default()
    }
}

/// 64 hex characters starting with `short` (12 hex): a container id.
fn cid(short: &str) -> String {
    format!("{short:0<64}")
}

fn opts(name: &str, aliases: &[&str]) -> AttachOpts {
    AttachOpts {
        name: name.into(),
        aliases: aliases.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// The resolver on a thread of this process; stopped and joined on drop.
struct Resolver {
    stop: Arc<AtomicBool>,
    th: Option<JoinHandle<netns::Result<Exit>>>,
}

impl Resolver {
    fn start(state_dir: &Path, upstream: Vec<SocketAddr>) -> Resolver {
        let mut c = dns::Config::new(state_dir);
        c.upstream = UpstreamSource::Fixed(upstream);
        c.poll = Duration::from_millis(100);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let s2 = stop.clone();
        let th = std::thread::spawn(move || {
            dns::run(
                &c,
                move |r| {
                    let _ = tx.send(format!("{r:?}"));
                },
                Some(s2),
            )
        });
        let ready = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(ready.contains("failed: []"), "resolver ready: {ready}");
        Resolver { stop, th: Some(th) }
    }

    /// Waits for the resolver to return on its own.
    fn join(mut self) -> Exit {
        let th = self.th.take().unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while !th.is_finished() {
            assert!(Instant::now() < until, "resolver did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
        th.join().unwrap().unwrap()
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.th.take() {
            let _ = t.join();
        }
    }
}

/// Sends one query from inside namespace `ns` to `server`:53.
fn query(ns: &Path, server: Ipv4Addr, name: &str, t: RecordType, tcp: bool) -> Message {
    let q = build_query(0x4242, name, t).unwrap();
    let resp = namespace::run_in(ns, move || {
        Ok(if tcp {
            let mut s =
                TcpStream::connect_timeout(&(server, 53).into(), Duration::from_secs(3)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
            let mut framed = (q.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&q);
            s.write_all(&framed).unwrap();
            let mut len = [0u8; 2];
            s.read_exact(&mut len).unwrap();
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut buf).unwrap();
            buf
        } else {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
            s.send_to(&q, (server, 53)).unwrap();
            let mut buf = vec![0u8; 65535];
            let n = s.recv(&mut buf).unwrap();
            buf.truncate(n);
            buf
        })
    })
    .unwrap();
    let m = Message::from_vec(&resp).unwrap();
    assert_eq!(m.metadata.id, 0x4242);
    m
}

/// True when a UDP query from `ns` to `server`:53 gets no answer at all.
fn no_answer(ns: &Path, server: Ipv4Addr, name: &str) -> bool {
    let q = build_query(0x4343, name, RecordType::A).unwrap();
    namespace::run_in(ns, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        s.send_to(&q, (server, 53)).unwrap();
        let mut buf = [0u8; 512];
        Ok(s.recv(&mut buf).is_err())
    })
    .unwrap()
}

fn resolve(ns: &Path, server: Ipv4Addr, name: &str) -> (ResponseCode, Vec<Ipv4Addr>) {
    let m = query(ns, server, name, RecordType::A, false);
    (m.metadata.response_code, ips(&m))
}

fn ips(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

struct Two {
    f: Fixture,
    ns: Vec<PathBuf>,
    gw1: Ipv4Addr,
    gw2: Ipv4Addr,
}

/// n1 (third octet `k`): a, b, c, e (b and c share alias `web`, b also
/// has `Db`); n2 (`k+1`): d and e (e is on both networks).
fn two_networks(k: u8) -> Two {
    let mut f = Fixture::new();
    let n1 = Network::create(
        &f.env,
        &cfg("n1", f.bridge(1), &format!("10.126.{k}.0/24"), false),
    )
    .unwrap();
    let n2 = Network::create(
        &f.env,
        &cfg("n2", f.bridge(2), &format!("10.126.{}.0/24", k + 1), false),
    )
    .unwrap();
    let mut ns = Vec::new();
    for (name, short, net, aliases) in [
        ("a", "aaaaaaaaaaaa", "n1", vec![]),
        ("b", "bbbbbbbbbbbb", "n1", vec!["web", "Db"]),
        ("c", "cccccccccccc", "n1", vec!["web"]),
        ("d", "dddddddddddd", "n2", vec![]),
        ("e", "eeeeeeeeeeee", "n1", vec![]),
    ] {
        let p = f.new_netns(name);
        attach(&f.env, net, &cid(short), &p, &opts(name, &aliases)).unwrap();
        ns.push(p);
    }
    let mut o = opts("e", &[]);
    o.ifname = Some("eth1".into());
    attach(&f.env, "n2", &cid("eeeeeeeeeeee"), &ns[4], &o).unwrap();
    Two {
        f,
        ns,
        gw1: n1.gateway,
        gw2: n2.gateway,
    }
}

#[test]
fn scoped_names_aliases_short_ids_and_round_robin() {
    let t = two_networks(10);
    let up = Upstream::start();
    let _r = Resolver::start(&t.f.env.state_dir, vec![up.addr]);
    let (a, d, e) = (&t.ns[0], &t.ns[3], &t.ns[4]);
    let (b_ip, c_ip) = (ip("10.126.10.3"), ip("10.126.10.4"));
    assert_eq!(resolve(a, t.gw1, "b."), (ResponseCode::NoError, vec![b_ip]));
    assert_eq!(resolve(a, t.gw1, "B."), (ResponseCode::NoError, vec![b_ip]));
    assert_eq!(
        resolve(a, t.gw1, "db."),
        (ResponseCode::NoError, vec![b_ip])
    );
    assert_eq!(
        resolve(a, t.gw1, "bbbbbbbbbbbb."),
        (ResponseCode::NoError, vec![b_ip])
    );
    assert_eq!(
        resolve(a, t.gw1, "b.n1."),
        (ResponseCode::NoError, vec![b_ip])
    );
    // over TCP too
    let m = query(a, t.gw1, "c.", RecordType::A, true);
    assert_eq!(ips(&m), [c_ip]);
    // round robin over the shared alias: every address comes first in turn
    let mut firsts = BTreeSet::new();
    for _ in 0..4 {
        let (code, got) = resolve(a, t.gw1, "web.");
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(
            got.iter().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([b_ip, c_ip])
        );
        firsts.insert(got[0]);
    }
    assert_eq!(firsts.len(), 2, "round robin");
    // AAAA of an owned name: empty NOERROR, not forwarded
    let m = query(a, t.gw1, "b.", RecordType::AAAA, false);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    // PTR of a container address
    let m = query(
        a,
        t.gw1,
        "3.10.126.10.in-addr.arpa.",
        RecordType::PTR,
        false,
    );
    match &m.answers[0].data {
        RData::PTR(p) => assert_eq!(p.0.to_ascii(), "b.n1."),
        other => panic!("{other:?}"),
    }
    // d (only on n2) cannot resolve n1's names; like docker, the name goes
    // upstream, which does not know it.
    assert_eq!(resolve(d, t.gw2, "b.").0, ResponseCode::NXDomain);
    assert_eq!(resolve(d, t.gw2, "web.").0, ResponseCode::NXDomain);
    assert_eq!(resolve(a, t.gw1, "d.").0, ResponseCode::NXDomain);
    assert!(up.seen().contains(&"b.".to_string()), "{:?}", up.seen());
    // nor by sending the query to n1's gateway: only a query that comes in
    // on n1's bridge is redirected to the resolver
    assert!(no_answer(d, t.gw1, "b."));
    // ...but the other way, names on the network they share resolve
    let e_on_n2 = ip("10.126.11.3");
    assert_eq!(
        resolve(d, t.gw2, "e."),
        (ResponseCode::NoError, vec![e_on_n2])
    );
    // e is on both: sees a (n1) and d (n2), itself first on the arrival network
    assert_eq!(resolve(e, t.gw1, "a.").1, [ip("10.126.10.2")]);
    assert_eq!(resolve(e, t.gw1, "d.").1, [ip("10.126.11.2")]);
    assert_eq!(resolve(e, t.gw2, "e.").1, [e_on_n2]);
}

#[test]
fn other_names_go_upstream_with_tcp_fallback_or_servfail() {
    let t = two_networks(20);
    let up = Upstream::start();
    let r = Resolver::start(&t.f.env.state_dir, vec![up.addr]);
    let a = &t.ns[0];
    assert_eq!(
        resolve(a, t.gw1, "www.upstream.test."),
        (ResponseCode::NoError, vec![ip("10.126.250.1")])
    );
    assert_eq!(resolve(a, t.gw1, "nothing.test.").0, ResponseCode::NXDomain);
    // truncated over UDP: the resolver asks again over TCP
    let (code, got) = resolve(a, t.gw1, "big.upstream.test.");
    assert_eq!(code, ResponseCode::NoError);
    assert_eq!(got.len(), 3);
    let big = up
        .seen()
        .iter()
        .filter(|n| *n == "big.upstream.test.")
        .count();
    assert_eq!(
        big,
        2,
        "one UDP and one TCP query upstream: {:?}",
        up.seen()
    );
    // the client itself over TCP
    let m = query(a, t.gw1, "tcp.upstream.test.", RecordType::A, true);
    assert_eq!(ips(&m), [ip("10.126.250.1")]);
    drop(r);
    // An upstream that does not answer: SERVFAIL.
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let r = Resolver::start(&t.f.env.state_dir, vec![dead_addr]);
    assert_eq!(
        resolve(a, t.gw1, "www.upstream.test.").0,
        ResponseCode::ServFail
    );
    assert_eq!(resolve(a, t.gw1, "b.").1, [ip("10.126.20.3")]);
    drop(r);
    // A server that answers SERVFAIL: the next one is asked (docker).
    let failing = Upstream::start_failing();
    let _r = Resolver::start(&t.f.env.state_dir, vec![failing.addr, up.addr]);
    assert_eq!(
        resolve(a, t.gw1, "next.upstream.test."),
        (ResponseCode::NoError, vec![ip("10.126.250.1")])
    );
    assert_eq!(failing.seen(), ["next.upstream.test."]);
}

#[test]
fn internal_network_resolves_names_but_never_forwards() {
    let mut f = Fixture::new();
    let n = Network::create(&f.env, &cfg("in", f.bridge(1), "10.126.30.0/24", true)).unwrap();
    let (x, y) = (f.new_netns("x"), f.new_netns("y"));
    attach(&f.env, "in", &cid("111111111111"), &x, &opts("x", &[])).unwrap();
    attach(&f.env, "in", &cid("222222222222"), &y, &opts("y", &["why"])).unwrap();
    let up = Upstream::start();
    let _r = Resolver::start(&f.env.state_dir, vec![up.addr]);
    assert_eq!(
        resolve(&x, n.gateway, "why."),
        (ResponseCode::NoError, vec![ip("10.126.30.3")])
    );
    assert_eq!(
        resolve(&x, n.gateway, "www.upstream.test.").0,
        ResponseCode::ServFail
    );
    assert!(up.seen().is_empty(), "{:?}", up.seen());
}

#[test]
fn reattached_container_new_network_and_idle_exit() {
    let mut f = Fixture::new();
    let n = Network::create(&f.env, &cfg("n", f.bridge(1), "10.126.40.0/24", false)).unwrap();
    let (x, y) = (f.new_netns("x"), f.new_netns("y"));
    let (xid, yid) = (cid("333333333333"), cid("444444444444"));
    attach(&f.env, "n", &xid, &x, &opts("x", &[])).unwrap();
    attach(&f.env, "n", &yid, &y, &opts("y", &[])).unwrap();
    let r = Resolver::start(&f.env.state_dir, vec![]);
    assert!(dns::is_running(&f.env.state_dir).unwrap());
    assert_eq!(dns::probe(&f.env.state_dir).unwrap(), Probe::Ready);
    // a second resolver for the same state dir steps aside
    let c = dns::Config::new(&f.env.state_dir);
    assert_eq!(dns::run(&c, |_| {}, None).unwrap(), Exit::AlreadyRunning);
    assert_eq!(resolve(&x, n.gateway, "y.").1, [ip("10.126.40.3")]);
    // y "restarts" with another address: the resolver sees it
    detach(&f.env, "n", &yid).unwrap();
    let mut o = opts("y", &[]);
    o.ip = Some(ip("10.126.40.77"));
    attach(&f.env, "n", &yid, &y, &o).unwrap();
    wait_for("the new address", || {
        resolve(&x, n.gateway, "y.").1 == [ip("10.126.40.77")]
    });
    // a network created while the resolver runs is served too
    let m = Network::create(&f.env, &cfg("m", f.bridge(2), "10.126.41.0/24", false)).unwrap();
    let z = f.new_netns("z");
    attach(&f.env, "m", &cid("555555555555"), &z, &opts("z", &[])).unwrap();
    let mut o = opts("x", &[]);
    o.ifname = Some("eth1".into());
    attach(&f.env, "m", &xid, &x, &o).unwrap();
    wait_for("the new network", || {
        namespace::run_in(&z, || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            s.send_to(
                &build_query(1, "x.", RecordType::A).unwrap(),
                (m.gateway, 53),
            )
            .unwrap();
            let mut buf = [0u8; 512];
            Ok(s.recv(&mut buf).is_ok())
        })
        .unwrap()
    });
    assert_eq!(resolve(&z, m.gateway, "x.").1, [ip("10.126.41.3")]);
    assert_eq!(resolve(&z, m.gateway, "y.").0, ResponseCode::ServFail); // no upstream
                                                                        // the last container leaves: the resolver returns by itself
    for (net, id) in [
        ("n", &xid),
        ("n", &yid),
        ("m", &xid),
        ("m", &cid("555555555555")),
    ] {
        detach(&f.env, net, id).unwrap();
    }
    assert_eq!(r.join(), Exit::Idle);
    assert!(!dns::is_running(&f.env.state_dir).unwrap());
    assert_eq!(dns::probe(&f.env.state_dir).unwrap(), Probe::Stopped);
    assert!(!dns::ready_path(&f.env.state_dir).exists());
    // and its sockets are closed: the port is free again
    UdpSocket::bind((n.gateway, dns::RESOLVER_PORT)).unwrap();
    TcpListener::bind((n.gateway, dns::RESOLVER_PORT)).unwrap();
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_containers_dns_servers_are_its_upstream() {
    let mut f = Fixture::new();
    let n = Network::create(&f.env, &cfg("n", f.bridge(1), "10.126.50.0/24", false)).unwrap();
    let (host_up, own_up) = (Upstream::start(), Upstream::start_on_53());
    let (x, y) = (f.new_netns("x"), f.new_netns("y"));
    attach(&f.env, "n", &cid("666666666666"), &x, &opts("x", &[])).unwrap();
    let mut o = opts("y", &[]);
    // the gateway itself is never used as an upstream (it would loop)
    o.dns = vec![own_up.addr.ip(), n.gateway.into()];
    attach(&f.env, "n", &cid("777777777777"), &y, &o).unwrap();
    let _r = Resolver::start(&f.env.state_dir, vec![host_up.addr]);
    assert_eq!(
        resolve(&y, n.gateway, "y.upstream.test.").1,
        [ip("10.126.250.1")]
    );
    assert_eq!(own_up.seen(), ["y.upstream.test."]);
    assert!(host_up.seen().is_empty());
    assert_eq!(
        resolve(&x, n.gateway, "x.upstream.test.").1,
        [ip("10.126.250.1")]
    );
    assert_eq!(host_up.seen(), ["x.upstream.test."]);
    // names of containers are still answered locally
    assert_eq!(resolve(&y, n.gateway, "x.").1, [ip("10.126.50.2")]);
    assert_eq!(own_up.seen().len(), 1);
}

#[test]
fn a_starting_resolver_waits_for_the_port_of_one_that_is_leaving() {
    let mut f = Fixture::new();
    let n = Network::create(&f.env, &cfg("n", f.bridge(1), "10.126.60.0/24", false)).unwrap();
    let x = f.new_netns("x");
    attach(&f.env, "n", &cid("888888888888"), &x, &opts("x", &[])).unwrap();
    // the previous resolver's sockets, closed a moment later
    let old = (
        UdpSocket::bind((n.gateway, dns::RESOLVER_PORT)).unwrap(),
        TcpListener::bind((n.gateway, dns::RESOLVER_PORT)).unwrap(),
    );
    let sd = f.env.state_dir.clone();
    assert_eq!(dns::probe(&sd).unwrap(), Probe::Stopped);
    // Resolver::start asserts that nothing failed to bind at ready time
    let starter = std::thread::spawn(move || Resolver::start(&sd, vec![]));
    // holding the lock, not listening yet: callers wait
    wait_for("the resolver to start", || {
        dns::probe(&f.env.state_dir).unwrap() == Probe::Starting
    });
    drop(old);
    let _r = starter.join().unwrap();
    assert_eq!(dns::probe(&f.env.state_dir).unwrap(), Probe::Ready);
    assert_eq!(resolve(&x, n.gateway, "x.").1, [ip("10.126.60.2")]);
}
