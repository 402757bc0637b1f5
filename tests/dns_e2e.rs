//! End-to-end tests of name resolution on user-defined networks: busybox
//! containers ask with `nslookup` the resolver berth starts on demand
//! (`berth __dns`, process name `berth-dns`). Each test has its own root,
//! networks from its own address pool (tests/common/netcfg.rs) and a fake
//! upstream DNS server on a loopback address of its own (berth config
//! `dns`), so no query leaves the machine.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::ctr::{err, out, Env};
use testkit::dns_upstream::DnsUpstream;

/// An Env whose berth config sends upstream queries to a fake server.
/// The upstream is declared first so it outlives the Env (dropped last).
fn env_with_upstream() -> (DnsUpstream, Env) {
    let up = DnsUpstream::start_on_53();
    let e = Env::new();
    let p = &e.b.net.config;
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    cfg["dns"] = serde_json::json!([up.addr.ip().to_string()]);
    std::fs::write(p, cfg.to_string()).unwrap();
    (up, e)
}

fn ip_of(e: &Env, c: &str, net: &str) -> String {
    e.inspect(
        c,
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
    )
}

fn sleeper(e: &Env, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&e.image, "sleep", "1000"]);
    e.b.ok(&args);
}

/// The addresses busybox `nslookup` printed after the `Name:` line (the
/// ones before it are the server's).
fn addresses(text: &str) -> Vec<String> {
    text.split_once("Name:")
        .map(|(_, rest)| {
            rest.lines()
                .filter_map(|l| l.trim().strip_prefix("Address:"))
                .map(|a| a.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `nslookup NAME` in a fresh container on `net`: (success, output).
fn lookup(e: &Env, net: &str, name: &str) -> (bool, String) {
    let o = e.run(&["run", "--rm", "--network", net, &e.image, "nslookup", name]);
    (o.status.success(), format!("{}{}", out(&o), err(&o)))
}

/// `nslookup NAME` inside running container `c`.
fn exec_lookup(e: &Env, c: &str, name: &str) -> (bool, String) {
    let o = e.run(&["exec", c, "nslookup", name]);
    (o.status.success(), format!("{}{}", out(&o), err(&o)))
}

/// Live (not zombie) berth-dns processes serving `root`.
fn resolvers(root: &Path) -> Vec<i32> {
    let root = root.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            comm.trim() == "berth-dns"
                && cmd
                    .split(|b| *b == 0)
                    .any(|a| String::from_utf8_lossy(a).starts_with(&root))
        })
        .collect()
}

#[test]
fn names_aliases_round_robin_and_scoping() {
    let (up, e) = env_with_upstream();
    e.b.ok(&["network", "create", "front"]);
    e.b.ok(&["network", "create", "back"]);
    sleeper(&e, "aa", &["--network", "front"]);
    sleeper(&e, "bb", &["--network", "front", "--network-alias", "svc"]);
    sleeper(&e, "cc", &["--network", "front", "--network-alias", "svc"]);
    sleeper(&e, "dd", &["--network", "back"]);
    let (a, b, c) = (
        ip_of(&e, "aa", "front"),
        ip_of(&e, "bb", "front"),
        ip_of(&e, "cc", "front"),
    );
    let root = e.b.root().to_path_buf();
    assert_eq!(resolvers(&root).len(), 1, "one resolver per root");

    // container name, from a fresh container and from a running one
    let (ok, o) = lookup(&e, "front", "aa");
    assert!(ok, "{o}");
    assert_eq!(addresses(&o), [a.as_str()], "{o}");
    let (ok, o) = exec_lookup(&e, "bb", "AA");
    assert!(ok, "{o}");
    assert_eq!(addresses(&o), [a.as_str()], "case-insensitive: {o}");
    // the resolver is the network's gateway, as in the container's resolv.conf
    let gw = e.inspect(
        "aa",
        "{{(index .NetworkSettings.Networks \"front\").Gateway}}",
    );
    let conf = e.b.ok(&["exec", "aa", "cat", "/etc/resolv.conf"]);
    assert!(conf.contains(&format!("nameserver {gw}")), "{conf}");
    // short container id
    let id = e.inspect("cc", "{{.Id}}");
    let (ok, o) = exec_lookup(&e, "aa", &id[..12]);
    assert!(ok, "{o}");
    assert_eq!(addresses(&o), [c.as_str()], "{o}");

    // reverse lookup of a container address: docker's `name.network`
    let (ok, o) = exec_lookup(&e, "aa", &b);
    assert!(ok, "{o}");
    assert!(o.contains("bb.front"), "{o}");

    // a shared alias: both addresses, in turns
    let script =
        "for i in 1 2 3 4; do nslookup svc | sed -n '/^Name:/,$p' | grep -m1 '^Address' ; done";
    let o = e.b.ok(&["exec", "aa", "sh", "-c", script]);
    let firsts: std::collections::BTreeSet<String> = o
        .lines()
        .map(|l| l.trim_start_matches("Address:").trim().to_string())
        .collect();
    assert_eq!(
        firsts,
        [b.clone(), c.clone()].into_iter().collect(),
        "round robin: {o}"
    );
    let (_, o) = exec_lookup(&e, "aa", "svc");
    let mut all = addresses(&o);
    all.sort();
    let mut want = vec![b.clone(), c.clone()];
    want.sort();
    assert_eq!(all, want, "{o}");

    // d is on another network: no answer for front's names
    let (ok, o) = exec_lookup(&e, "dd", "aa");
    assert!(!ok, "{o}");
    assert!(!o.contains(&a), "{o}");
    let (ok, o) = exec_lookup(&e, "dd", "svc");
    assert!(!ok && !o.contains(&b) && !o.contains(&c), "{o}");
    // ...which docker forwards upstream, where it is unknown
    assert!(up.seen().iter().any(|n| n == "aa."), "{:?}", up.seen());
    // and a name on its own network works
    let (ok, o) = lookup(&e, "back", "dd");
    assert!(ok, "{o}");
    assert_eq!(addresses(&o), [ip_of(&e, "dd", "back")]);

    // any other name goes to the upstream server
    let (ok, o) = exec_lookup(&e, "aa", "www.upstream.test");
    assert!(ok, "{o}");
    assert_eq!(addresses(&o), ["10.126.250.1"], "{o}");
    // ...or to the container's own --dns servers (docker's embedded DNS
    // does the same), while resolv.conf keeps pointing at the resolver
    let own = DnsUpstream::start_on_53();
    let own_ip = own.addr.ip().to_string();
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        "front",
        "--dns",
        &own_ip,
        &e.image,
        "sh",
        "-c",
        "cat /etc/resolv.conf; nslookup own.upstream.test",
    ]);
    let text = format!("{}{}", out(&o), err(&o));
    assert!(o.status.success(), "{text}");
    assert!(text.contains(&format!("nameserver {gw}")), "{text}");
    assert_eq!(addresses(&text), ["10.126.250.1"], "{text}");
    assert!(
        own.seen().iter().any(|n| n == "own.upstream.test."),
        "{:?}",
        own.seen()
    );
    assert!(
        !up.seen().iter().any(|n| n == "own.upstream.test."),
        "{:?}",
        up.seen()
    );
}

#[test]
fn restarted_container_new_address_internal_network_and_resolver_exit() {
    let (up, e) = env_with_upstream();
    e.b.ok(&["network", "create", "n"]);
    sleeper(&e, "aa", &["--network", "n"]);
    sleeper(&e, "bb", &["--network", "n"]);
    let a1 = ip_of(&e, "aa", "n");
    let (ok, o) = exec_lookup(&e, "bb", "aa");
    assert!(ok, "{o}");
    assert_eq!(addresses(&o), [a1.as_str()]);
    // a stops, another container takes its address, a comes back elsewhere
    e.b.ok(&["stop", "-t", "0", "aa"]);
    sleeper(&e, "xx", &["--network", "n"]);
    assert_eq!(ip_of(&e, "xx", "n"), a1);
    e.b.ok(&["start", "aa"]);
    let a2 = ip_of(&e, "aa", "n");
    assert_ne!(a1, a2);
    let (ok, o) = exec_lookup(&e, "bb", "aa");
    assert!(ok, "{o}");
    assert_eq!(addresses(&o), [a2.as_str()], "{o}");
    // rm + run again under the same name
    e.b.ok(&["rm", "-f", "xx"]);
    e.b.ok(&["rm", "-f", "aa"]);
    sleeper(&e, "aa", &["--network", "n", "--ip", &a1]);
    let (ok, o) = exec_lookup(&e, "bb", "aa");
    assert!(ok, "{o}");
    assert_eq!(addresses(&o), [a1.as_str()], "{o}");

    // an internal network: names resolve, nothing is forwarded
    e.b.ok(&["network", "create", "--internal", "inside"]);
    sleeper(
        &e,
        "ii",
        &["--network", "inside", "--network-alias", "vault"],
    );
    let before = up.seen().len();
    let (ok, o) = lookup(&e, "inside", "vault");
    assert!(ok, "{o}");
    assert_eq!(addresses(&o), [ip_of(&e, "ii", "inside")], "{o}");
    let (ok, o) = lookup(&e, "inside", "www.upstream.test");
    assert!(!ok && !o.contains("10.126.250.1"), "{o}");
    assert_eq!(up.seen().len(), before, "{:?}", up.seen());

    // the last container leaves: the resolver exits by itself
    let root = e.b.root().to_path_buf();
    assert_eq!(resolvers(&root).len(), 1);
    for c in ["aa", "bb", "ii"] {
        e.b.ok(&["rm", "-f", c]);
    }
    let until = Instant::now() + Duration::from_secs(20);
    while !resolvers(&root).is_empty() {
        assert!(Instant::now() < until, "berth-dns still runs");
        std::thread::sleep(Duration::from_millis(100));
    }
    // and the next container on a user network starts it again
    sleeper(&e, "zz", &["--network", "n"]);
    assert_eq!(resolvers(&root).len(), 1);
    let (ok, o) = lookup(&e, "n", "zz");
    assert!(ok, "{o}");

    // `network connect` of a running container starts it too
    e.b.ok(&["rm", "-f", "zz"]);
    e.wait_for("berth-dns to exit", || resolvers(&root).is_empty());
    sleeper(&e, "yy", &[]);
    assert!(
        resolvers(&root).is_empty(),
        "no resolver for the default bridge"
    );
    e.b.ok(&["network", "connect", "--alias", "late", "n", "yy"]);
    assert_eq!(resolvers(&root).len(), 1);
    let (ok, o) = lookup(&e, "n", "late");
    assert!(ok, "{o}");
    assert_eq!(addresses(&o), [ip_of(&e, "yy", "n")], "{o}");
    // and disconnecting removes the name
    e.b.ok(&["network", "disconnect", "n", "yy"]);
    let (ok, o) = lookup(&e, "n", "late");
    assert!(!ok, "{o}");
}

#[test]
fn concurrent_first_starts_resolve_at_once() {
    let (_up, e) = env_with_upstream();
    e.b.ok(&["network", "create", "n"]);
    let root = e.b.root().to_path_buf();
    assert!(resolvers(&root).is_empty());
    // Four containers start together on a network without a resolver;
    // each asks for its own name right away: whichever start launched the
    // resolver, every container finds it listening.
    let outs: Vec<(bool, String)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let e = &e;
                s.spawn(move || {
                    let name = format!("q{i}");
                    let o = e.run(&[
                        "run",
                        "--rm",
                        "--network",
                        "n",
                        "--name",
                        &name,
                        &e.image,
                        "nslookup",
                        &name,
                    ]);
                    (o.status.success(), format!("{}{}", out(&o), err(&o)))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (ok, o) in &outs {
        assert!(ok, "{o}");
        assert_eq!(addresses(o).len(), 1, "{o}");
    }
    e.wait_for("berth-dns to exit", || resolvers(&root).is_empty());
}

#[test]
fn rename_changes_the_name_at_once() {
    let (_up, e) = env_with_upstream();
    e.b.ok(&["network", "create", "rn"]);
    sleeper(&e, "oldname", &["--network", "rn"]);
    sleeper(&e, "asker", &["--network", "rn"]);
    let ip = ip_of(&e, "oldname", "rn");
    let (ok, o) = exec_lookup(&e, "asker", "oldname");
    assert!(ok, "{o}");
    e.b.ok(&["rename", "oldname", "newname"]);
    // no restart: the running container answers to its new name only
    let (ok, o) = exec_lookup(&e, "asker", "newname");
    assert!(ok, "{o}");
    assert_eq!(addresses(&o), [ip.as_str()], "{o}");
    let (ok, o) = exec_lookup(&e, "asker", "oldname");
    assert!(!ok && !o.contains(&ip), "{o}");
    // the reverse record too
    let (ok, o) = exec_lookup(&e, "asker", &ip);
    assert!(ok && o.contains("newname.rn"), "{o}");
    // and a stopped container keeps the new name when it starts again
    e.b.ok(&["stop", "-t", "0", "newname"]);
    e.b.ok(&["start", "newname"]);
    let (ok, o) = exec_lookup(&e, "asker", "newname");
    assert!(ok, "{o}");
    for c in ["newname", "asker"] {
        e.b.ok(&["rm", "-f", c]);
    }
}
