//! End-to-end tests of IPv6 on bridge networks: dual-stack networks
//! (`network create --ipv6`), containers' v6 addresses and routes, AAAA
//! answers, published ports on `[::1]` and the host's own v6 address,
//! isolation, `--internal`, and cleanup. Each test has its own --root, nft
//! table, v4 pool and v6 /48 (tests/common/netcfg.rs: fdb7:e57:<slot>::/48,
//! never the host's fd00::/64) and removes what it made, also on failure,
//! through the `Env` / `Berth` guards.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};

use common::ctr::{err, out, Env};
use common::web::{assert_redirected, http_get, wait_http};

/// busybox httpd serving `$0` on port 80 (all addresses, both families).
const HTTPD: &str = "mkdir -p /www && echo $0 > /www/index.html && exec httpd -f -p 80 -h /www";

/// `network create --ipv6` on this runner's v6 subnet number `n`.
fn create6(e: &Env, name: &str, n: u8, extra: &[&str]) {
    let sub = e.b.net.subnet6(n);
    let mut args = vec!["network", "create", "--ipv6"];
    args.extend_from_slice(extra);
    args.extend(["--subnet", &sub, name]);
    e.b.ok(&args);
}

fn field(e: &Env, c: &str, net: &str, f: &str) -> String {
    e.inspect(
        c,
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").{f}}}}}"),
    )
}

/// Shell snippet: one HTTP GET with busybox nc, retried while a server
/// starts (busybox-static wget segfaults on failed connections here).
fn get_retry(host: &str, port: u16) -> String {
    format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do r=$(printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port} | tail -n 1); [ -n \"$r\" ] && echo \"$r\" && exit 0; sleep 0.3; done; exit 1"
    )
}

/// One attempt only (for what must fail).
fn get_once(host: &str, port: u16) -> String {
    format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port} | tail -n 1")
}

fn free_port() -> u16 {
    // A dual-stack socket on `[::]`: the port is free on both families
    // (the v4 and v6 sides of a published port).
    TcpListener::bind("[::]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("[::]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A "no port" counter of the container's namespace: `NoPorts` of the
/// `Udp:` lines of /proc/net/snmp, or `Udp6NoPorts` of /proc/net/snmp6.
fn no_ports(e: &Env, c: &str, counter: &str) -> u64 {
    if counter == "NoPorts" {
        let snmp = e.b.ok(&["exec", c, "cat", "/proc/net/snmp"]);
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let (h, v) = (udp.next().unwrap(), udp.next().unwrap());
        let i = h.split_whitespace().position(|x| x == "NoPorts").unwrap();
        return v.split_whitespace().nth(i).unwrap().parse().unwrap();
    }
    let snmp6 = e.b.ok(&["exec", c, "cat", "/proc/net/snmp6"]);
    snmp6
        .lines()
        .find_map(|l| l.strip_prefix(counter))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {counter} in {snmp6}"))
}

/// The host's first global IPv6 address that is no berth test address
/// (fd00::2 on this machine), or None.
fn host_v6() -> Option<std::net::Ipv6Addr> {
    let o = std::process::Command::new("ip")
        .args(["-6", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            it.find(|w| *w == "inet6")?;
            it.next()?.split('/').next()?.parse().ok()
        })
        .find(|a: &std::net::Ipv6Addr| a.segments()[0] != 0xfdb7)
}

/// `nft list table inet T` (empty when there is none).
fn nft_table(table: &str) -> String {
    let o = std::process::Command::new("nft")
        .args(["list", "table", "inet", table])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn host_addrs6() -> String {
    let o = std::process::Command::new("ip")
        .args(["-6", "-o", "addr"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sleeper(e: &Env, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&e.image, "sleep", "1000"]);
    e.b.ok(&args);
}

#[test]
fn dual_stack_network_addresses_routes_dns_and_inspect() {
    let e = Env::new();
    let sub6 = e.b.net.subnet6(0);
    let prefix = sub6.trim_end_matches("::/64").to_string();
    e.b.ok(&["network", "create", "--ipv6", "--subnet", &sub6, "n6"]);
    // network inspect: both IPAM configs, EnableIPv6
    let j: serde_json::Value =
        serde_json::from_str(&e.b.ok(&["network", "inspect", "n6"])).unwrap();
    assert_eq!(j[0]["EnableIPv6"], true, "{j}");
    let cfg = j[0]["IPAM"]["Config"].as_array().unwrap();
    assert_eq!(cfg.len(), 2, "{j}");
    assert!(
        cfg[0]["Subnet"].as_str().unwrap().starts_with("10.79."),
        "{j}"
    );
    assert_eq!(cfg[1]["Subnet"], sub6.as_str());
    assert_eq!(cfg[1]["Gateway"], format!("{prefix}::1"));
    // the gateway address is on the bridge
    let bridge = j[0]["Id"].as_str().unwrap()[..12].to_string();
    assert!(
        host_addrs6().contains(&format!("{prefix}::1/64")),
        "br-{bridge}: {}",
        host_addrs6()
    );

    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "n6",
        &e.image,
        "sh",
        "-c",
        HTTPD,
        "hello6",
    ]);
    sleeper(
        &e,
        "fixed",
        &["--network", "n6", "--ip6", &format!("{prefix}::99")],
    );
    let srv6 = field(&e, "srv", "n6", "GlobalIPv6Address");
    assert_eq!(srv6, format!("{prefix}::2"));
    assert_eq!(field(&e, "srv", "n6", "GlobalIPv6PrefixLen"), "64");
    assert_eq!(
        field(&e, "srv", "n6", "IPv6Gateway"),
        format!("{prefix}::1")
    );
    assert_eq!(
        field(&e, "fixed", "n6", "GlobalIPv6Address"),
        format!("{prefix}::99")
    );
    assert_eq!(
        field(&e, "fixed", "n6", "IPAMConfig.IPv6Address"),
        format!("{prefix}::99")
    );
    // network inspect lists the container's v6 address
    let j: serde_json::Value =
        serde_json::from_str(&e.b.ok(&["network", "inspect", "n6"])).unwrap();
    let v6s: Vec<&str> = j[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["IPv6Address"].as_str().unwrap())
        .collect();
    assert!(v6s.contains(&format!("{srv6}/64").as_str()), "{j}");

    // inside: v6 on, the address, the default route, /etc/hosts
    let o = e.b.ok(&[
        "exec",
        "srv",
        "sh",
        "-c",
        "cat /proc/sys/net/ipv6/conf/all/disable_ipv6; ip -6 addr show dev eth0; ip -6 route; cat /etc/hosts",
    ]);
    assert!(o.starts_with("0\n"), "{o}");
    assert!(o.contains(&format!("{srv6}/64")), "{o}");
    assert!(
        o.contains(&format!("default via {prefix}::1 dev eth0")),
        "{o}"
    );
    let host = e.inspect("srv", "{{.Config.Hostname}}");
    assert!(o.contains(&format!("{srv6}\t{host}")), "{o}");

    // the other container reaches srv over v6, by address and by name
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        "n6",
        &e.image,
        "sh",
        "-c",
        &format!(
            "ping -6 -c 1 -W 3 {srv6} >/dev/null && {}",
            get_retry(&srv6, 80)
        ),
    ]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert_eq!(out(&o), "hello6\n");
    let o = e.run(&["exec", "fixed", "nslookup", "srv"]);
    let text = format!("{}{}", out(&o), err(&o));
    assert!(o.status.success(), "{text}");
    assert!(text.contains(&srv6), "no AAAA answer: {text}");
    assert!(
        text.contains(&field(&e, "srv", "n6", "IPAddress")),
        "{text}"
    );
    let o = e.run(&["exec", "fixed", "sh", "-c", &get_retry("srv", 80)]);
    assert_eq!(out(&o), "hello6\n", "{}", err(&o));

    // --ip6 outside the subnet, --ip6 on a v4-only network
    let (_, msg) = e.b.fails(&[
        "run",
        "--rm",
        "--network",
        "n6",
        "--ip6",
        "fdb7:ffff::5",
        &e.image,
        "true",
    ]);
    assert!(msg.contains("no configured subnet"), "{msg}");
    e.b.ok(&["network", "create", "v4only"]);
    let (_, msg) = e.b.fails(&[
        "run",
        "--rm",
        "--network",
        "v4only",
        "--ip6",
        &format!("{prefix}::5"),
        &e.image,
        "true",
    ]);
    assert!(msg.contains("no configured subnet"), "{msg}");
}

#[test]
fn v4_only_networks_keep_ipv6_off_on_eth0() {
    let e = Env::new();
    let o = e.run(&[
        "run",
        "--rm",
        &e.image,
        "sh",
        "-c",
        "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; ip -6 addr show dev eth0 | grep -c inet6",
    ]);
    // no stray link-local address on a v4-only interface (docker's way)
    assert_eq!(out(&o), "1\n0\n", "{}", err(&o));
    assert_eq!(
        e.b.ok(&["network", "inspect", "-f", "{{.EnableIPv6}}", "bridge"])
            .trim(),
        "false"
    );
}

#[test]
fn automatic_v6_subnet_comes_from_the_configured_pool() {
    let e = Env::new();
    e.b.ok(&["network", "create", "--ipv6", "auto6"]);
    e.b.ok(&["network", "create", "--ipv6", "auto6b"]);
    let s1 = e.b.ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 1).Subnet}}",
        "auto6",
    ]);
    let s2 = e.b.ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 1).Subnet}}",
        "auto6b",
    ]);
    // inside the slot's pool fdb7:e57:<slot>::/56, a /64
    let net: std::net::Ipv6Addr = s1.trim().trim_end_matches("/64").parse().unwrap();
    let seg = net.segments();
    assert_eq!(
        (seg[0], seg[1], seg[2], seg[3] >> 8),
        (0xfdb7, 0xe57, e.b.net.slot as u16, 0),
        "{s1} not in {}",
        e.b.net.pool6()
    );
    assert!(s1.trim().ends_with("/64"), "{s1}");
    assert_ne!(s1, s2);
    // an overlapping explicit subnet is refused
    let (_, msg) = e.b.fails(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        s1.trim(),
        "clash",
    ]);
    assert!(msg.contains("overlaps"), "{msg}");
    // a v6 subnet without --ipv6 is refused rather than ignored
    let (_, msg) =
        e.b.fails(&["network", "create", "--subnet", &e.b.net.subnet6(9), "no6"]);
    assert!(msg.contains("--ipv6"), "{msg}");
}

#[test]
fn published_ports_answer_on_v6_loopback_host_address_and_from_containers() {
    let e = Env::new();
    create6(&e, "pub6", 1, &[]);
    let (p_all, p_lo, p_any) = (free_port(), free_port(), free_port());
    let pub_all = format!("{p_all}:80");
    let pub_lo = format!("[::1]:{p_lo}:80");
    let pub_any = format!("[::]:{p_any}:80");
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "pub6",
        "-p",
        &pub_all,
        "-p",
        &pub_lo,
        "-p",
        &pub_any,
        &e.image,
        "sh",
        "-c",
        HTTPD,
        "web6",
    ]);
    let lo6 = |p: u16| SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, p));
    wait_http(&e, lo6(p_all), "web6");
    wait_http(&e, SocketAddr::from(([127, 0, 0, 1], p_all)), "web6");
    wait_http(&e, lo6(p_lo), "web6");
    wait_http(&e, lo6(p_any), "web6");
    // `[::1]` only: not on IPv4
    assert!(http_get(SocketAddr::from(([127, 0, 0, 1], p_lo))).is_none());
    // docker's port / inspect shapes
    let lines = e.b.ok(&["port", "web"]);
    assert!(
        lines.contains(&format!("80/tcp -> 0.0.0.0:{p_all}")),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("80/tcp -> [::]:{p_all}")),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("80/tcp -> [::1]:{p_lo}")),
        "{lines}"
    );
    let ports = e.inspect("web", "{{json .NetworkSettings.Ports}}");
    assert!(
        ports.contains(&format!("{{\"HostIp\":\"::\",\"HostPort\":\"{p_all}\"}}")),
        "{ports}"
    );

    match host_v6() {
        Some(h) => {
            let hs = SocketAddr::from((h, p_all));
            wait_http(&e, hs, "web6");
            wait_http(&e, SocketAddr::from((h, p_any)), "web6");
            // from a container on another network, through the host address
            create6(&e, "other6", 2, &[]);
            let o = e.run(&[
                "run",
                "--rm",
                "--network",
                "other6",
                &e.image,
                "sh",
                "-c",
                &get_retry(&h.to_string(), p_all),
            ]);
            assert_eq!(out(&o), "web6\n", "{}", err(&o));
        }
        None => eprintln!("skipped: the host has no global IPv6 address to publish on"),
    }

    // a v6 bind conflicts with the same port on `[::]` / no address
    let (_, msg) = e.b.fails(&[
        "run",
        "--rm",
        "--network",
        "pub6",
        "-p",
        &format!("[::1]:{p_all}:80"),
        &e.image,
        "true",
    ]);
    assert!(msg.contains("port is already allocated"), "{msg}");
    // UDP on `[::1]` goes through the monitor's relay too: to the
    // container's v6 address on a dual-stack network, to its v4 address
    // on a v4-only one (busybox has no UDP server here: the datagrams are
    // counted by the container's "no port" counters).
    let (pu6, pu4) = (free_udp_port(), free_udp_port());
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "udp6",
        "--network",
        "pub6",
        "-p",
        &format!("[::1]:{pu6}:5353/udp"),
        &e.image,
        "sleep",
        "1000",
    ]);
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "udp4",
        "-p",
        &format!("{pu4}:5353/udp"),
        &e.image,
        "sleep",
        "1000",
    ]);
    assert_eq!(
        e.b.ok(&["port", "udp4"]),
        format!("5353/udp -> 0.0.0.0:{pu4}\n5353/udp -> [::]:{pu4}\n")
    );
    for (c, port, counter) in [("udp6", pu6, "Udp6NoPorts"), ("udp4", pu4, "NoPorts")] {
        let before = no_ports(&e, c, counter);

        let s = std::net::UdpSocket::bind("[::1]:0").unwrap();
        for _ in 0..3 {
            s.send_to(b"ping-udp6\n", ("::1", port)).unwrap();
        }

        e.wait_for(&format!("udp datagrams from [::1]:{port} in {c}"), || {
            no_ports(&e, c, counter) >= before + 3
        });
    }
    e.b.ok(&["rm", "-f", "udp6", "udp4"]);
    // a v4-only container takes `[::1]` (relayed to its v4 address, as
    // docker-proxy does), not another v6 address
    let p4 = free_port();
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "web4",
        "-p",
        &format!("[::1]:{p4}:80"),
        &e.image,
        "sh",
        "-c",
        HTTPD,
        "web4",
    ]);
    wait_http(&e, lo6(p4), "web4");
    assert!(http_get(SocketAddr::from(([127, 0, 0, 1], p4))).is_none());
    assert_eq!(e.b.ok(&["port", "web4"]), format!("80/tcp -> [::1]:{p4}\n"));
    e.b.ok(&["rm", "-f", "web4"]);
    assert!(http_get(lo6(p4)).is_none(), "[::1]:{p4} still answers");
    let spec = format!("[fd00::99]:{}:80", free_port());
    let (_, msg) = e.b.fails(&["run", "--rm", "-p", &spec, &e.image, "true"]);
    assert!(msg.contains("no IPv6 address"), "{spec}: {msg}");
    // a restart re-publishes (the old relay's listener is gone first)
    e.b.ok(&["restart", "-t", "1", "web"]);
    wait_http(&e, lo6(p_all), "web6");
    wait_http(&e, lo6(p_lo), "web6");
    e.b.ok(&["rm", "-f", "web"]);
    assert!(http_get(lo6(p_lo)).is_none(), "[::1]:{p_lo} still answers");
    assert!(
        !nft_table(&e.b.net.table).contains("ctr_"),
        "{}",
        nft_table(&e.b.net.table)
    );
}

#[test]
fn v6_networks_are_isolated_and_internal_has_no_egress() {
    let e = Env::new();
    create6(&e, "a6", 3, &[]);
    create6(&e, "b6", 4, &[]);
    create6(&e, "i6", 5, &["--internal"]);
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "bsrv",
        "--network",
        "b6",
        &e.image,
        "sh",
        "-c",
        HTTPD,
        "b-side",
    ]);
    let b6 = field(&e, "bsrv", "b6", "GlobalIPv6Address");
    // reachable on its own network (the positive control)...
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        "b6",
        &e.image,
        "sh",
        "-c",
        &get_retry(&b6, 80),
    ]);
    assert_eq!(out(&o), "b-side\n", "{}", err(&o));
    // ...not from another v6 network
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        "a6",
        &e.image,
        "sh",
        "-c",
        &get_once(&b6, 80),
    ]);
    assert_eq!(out(&o), "", "reached another network: {}", err(&o));

    // internal: no default v6 route, no way out (to a listener on the host
    // that greets and closes; it lives until the test process ends)
    let l = TcpListener::bind(("::", 0)).unwrap();
    let hp = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(b"hi\n");
        }
    });
    let gw_a = format!("{}1", e.b.net.subnet6(3).trim_end_matches("/64"));
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        "i6",
        &e.image,
        "sh",
        "-c",
        &format!("ip -6 route | grep -c default; nc -w 2 {gw_a} {hp} </dev/null"),
    ]);
    assert_eq!(out(&o).lines().next(), Some("0"), "{}", out(&o));
    assert!(
        !out(&o).contains("reached"),
        "internal network has egress: {}",
        out(&o)
    );
    // the same host listener is reachable from a normal v6 network
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        "a6",
        &e.image,
        "sh",
        "-c",
        &format!("nc -w 2 {gw_a} {hp} </dev/null"),
    ]);
    assert_eq!(out(&o), "hi\n", "{}", err(&o));
}

#[test]
fn removal_leaves_no_rules_leases_or_addresses() {
    let e = Env::new();
    let sub6 = e.b.net.subnet6(6);
    let prefix = sub6.trim_end_matches("::/64").to_string();
    e.b.ok(&["network", "create", "--ipv6", "--subnet", &sub6, "gone6"]);
    let p = free_port();
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "c6",
        "--network",
        "gone6",
        "-p",
        &format!("{p}:80"),
        &e.image,
        "sh",
        "-c",
        HTTPD,
        "x",
    ]);
    let t = nft_table(&e.b.net.table);
    assert!(t.contains(&format!("ip6 saddr {sub6}")), "{t}");
    assert!(t.contains("dnat ip6 to"), "{t}");
    e.b.ok(&["rm", "-f", "c6"]);
    let state = std::fs::read_to_string(e.b.root().join("networks/gone6.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(v["leases"], serde_json::json!({}), "{state}");
    let t = nft_table(&e.b.net.table);
    assert!(!t.contains("dnat ip6"), "{t}");
    e.b.ok(&["network", "rm", "gone6"]);
    assert!(!host_addrs6().contains(&prefix), "{}", host_addrs6());
    assert!(!e.b.root().join("networks/gone6.json").exists());
    // the last network gone: the table too (the default bridge never existed)
    assert_eq!(nft_table(&e.b.net.table), "");
    assert!(http_get(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, p))).is_none());
}

#[test]
fn network_connect_with_ip6_and_disconnect() {
    let e = Env::new();
    let sub6 = e.b.net.subnet6(7);
    let prefix = sub6.trim_end_matches("::/64").to_string();
    e.b.ok(&["network", "create", "--ipv6", "--subnet", &sub6, "c6net"]);
    sleeper(&e, "late", &[]);
    let want = format!("{prefix}::77");
    e.b.ok(&["network", "connect", "--ip6", &want, "c6net", "late"]);
    assert_eq!(field(&e, "late", "c6net", "GlobalIPv6Address"), want);
    let o = e.b.ok(&[
        "exec",
        "late",
        "sh",
        "-c",
        "ip -6 addr show dev eth1; cat /etc/hosts",
    ]);
    assert!(o.contains(&format!("{want}/64")), "{o}");
    assert!(o.contains(&format!("{want}\t")), "{o}");
    e.b.ok(&["network", "disconnect", "c6net", "late"]);
    let o = e.b.ok(&["exec", "late", "cat", "/etc/hosts"]);
    assert!(!o.contains(&want), "{o}");
    let (_, msg) =
        e.b.fails(&["network", "connect", "--ip6", "zz", "c6net", "late"]);
    assert!(msg.contains("invalid IPv6 address"), "{msg}");
}

#[test]
fn default_bridge_is_dual_stack_when_the_config_says_so() {
    let e = Env::new();
    let sub6 = e.b.net.subnet6(8);
    let prefix = sub6.trim_end_matches("::/64").to_string();
    let p = &e.b.net.config;
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    cfg["ipv6"] = serde_json::json!(true);
    cfg["fixed-cidr-v6"] = serde_json::json!(sub6);
    std::fs::write(p, cfg.to_string()).unwrap();
    sleeper(&e, "d6", &[]);
    assert_eq!(
        e.inspect("d6", "{{.NetworkSettings.GlobalIPv6Address}}"),
        format!("{prefix}::2")
    );
    assert_eq!(
        e.inspect("d6", "{{.NetworkSettings.IPv6Gateway}}"),
        format!("{prefix}::1")
    );
    let o = e.b.ok(&["exec", "d6", "ip", "-6", "route"]);
    assert!(o.contains(&format!("default via {prefix}::1")), "{o}");
    assert_eq!(
        e.b.ok(&["network", "inspect", "-f", "{{.EnableIPv6}}", "bridge"])
            .trim(),
        "true"
    );
}

/// Socket-level redirect on IPv6: from a process in the redirect cgroup,
/// `[::1]` and the host's v6 address reach a dual-stack container's v6
/// address at `connect()` (no relay, no NAT), with the v6 gateway as the
/// client's local address and the published address as its peer.
#[test]
fn v6_host_connections_to_published_ports_are_redirected_at_the_socket() {
    let e = Env::new();
    create6(&e, "rdr6", 3, &[]);
    let (p_all, p_lo) = (free_port(), free_port());
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "rdr6",
        "-p",
        &format!("{p_all}:80"),
        "-p",
        &format!("[::1]:{p_lo}:80"),
        &e.image,
        "sh",
        "-c",
        HTTPD,
        "rdr6",
    ]);
    let gw6 = field(&e, "web", "rdr6", "IPv6Gateway");
    let gw4 = field(&e, "web", "rdr6", "Gateway");
    let lo6 = |p: u16| SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, p));
    wait_http(&e, lo6(p_all), "rdr6");
    let mut targets = vec![
        (lo6(p_all), gw6.clone()),
        (lo6(p_lo), gw6.clone()),
        (SocketAddr::from(([127, 0, 0, 1], p_all)), gw4),
    ];
    if let Some(h) = host_v6() {
        targets.push((SocketAddr::from((h, p_all)), gw6.clone()));
    }
    let status = || e.b.net.redirects();
    assert!(
        status().is_some_and(|n| n >= targets.len()),
        "{:?}",
        status()
    );
    {
        let _in = e.b.net.cgroup.join();
        for (addr, gw) in &targets {
            assert_redirected(*addr, gw, "rdr6");
        }
    }
    e.b.ok(&["rm", "-f", "web"]);
    // The programs stay, empty, until the root's last network goes.
    assert_eq!(status(), Some(0));
}
