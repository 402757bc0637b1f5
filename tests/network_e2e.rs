//! End-to-end tests of bridge networks: real bridges, veths and nft rules,
//! busybox containers. Each test has its own --root, nft table, default
//! bridge and subnets (tests/common/netcfg.rs; explicit `--subnet`s are
//! 10.77.<n>.0/24 slices, one n per test) and removes everything it made
//! (containers, networks, bridges, table) also on failure, through the
//! `Env` / `Berth` guards.

mod common;

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::ctr::{err, out, Env};
use common::image::ImageBuilder;
use common::web::{assert_redirected, http_get, wait_http};

fn ip_of(e: &Env, c: &str, net: &str) -> String {
    e.inspect(
        c,
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
    )
}

/// Shell snippet: one HTTP GET of /index.html with busybox nc (this
/// machine's busybox-static wget segfaults on failed connections).
fn get(host: &str, port: u16) -> String {
    format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port} | tail -n 1")
}

/// The same, retried while a server starts.
fn get_retry(host: &str, port: u16) -> String {
    format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do r=$({}); [ -n \"$r\" ] && echo \"$r\" && exit 0; sleep 0.3; done; exit 1",
        get(host, port)
    )
}

/// busybox httpd serving `text` on port 80.
/// The same in the background, for a script that goes on.
const HTTPD_BG: &str = "mkdir -p /www && echo $0 > /www/index.html && httpd -p 80 -h /www";

const HTTPD: &str = "mkdir -p /www && echo $0 > /www/index.html && exec httpd -f -p 80 -h /www";

#[test]
fn default_bridge_two_containers_talk_by_address() {
    let e = Env::new();
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        &e.image,
        "sh",
        "-c",
        HTTPD,
        "hello-srv",
    ]);
    let ip = ip_of(&e, "srv", "bridge");
    assert!(ip.starts_with(&format!("10.78.{}.", e.b.net.slot)), "{ip}");
    let o = e.run(&["run", "--rm", &e.image, "sh", "-c", &get_retry(&ip, 80)]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "hello-srv\n");
    // docker's NetworkSettings shape
    assert_eq!(e.inspect("srv", "{{.HostConfig.NetworkMode}}"), "bridge");
    assert_eq!(e.inspect("srv", "{{.NetworkSettings.IPAddress}}"), ip);
    assert_eq!(
        e.inspect("srv", "{{.NetworkSettings.Gateway}}"),
        format!("10.78.{}.1", e.b.net.slot)
    );
    let mac = e.inspect("srv", "{{.NetworkSettings.MacAddress}}");
    assert!(mac.starts_with("02:42:"), "{mac}");
    let key = e.inspect("srv", "{{.NetworkSettings.SandboxKey}}");
    assert!(std::path::Path::new(&key).exists(), "{key}");
    // /etc/hosts names the container's own address.
    let hosts = e.b.ok(&["exec", "srv", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&ip), "{hosts}");
    e.b.ok(&["rm", "-f", "srv"]);
    assert!(!std::path::Path::new(&key).exists(), "{key} left");
}

/// The host's address on the default route's interface (eth0 here).
fn host_addr() -> String {
    let r = std::process::Command::new("ip")
        .args(["-4", "-o", "route", "get", "1.1.1.1"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&r.stdout).into_owned();
    let mut it = s.split_whitespace();
    while let Some(w) = it.next() {
        if w == "src" {
            return it.next().unwrap().to_string();
        }
    }
    panic!("no host address in {s}");
}

fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A GET from a fresh container, retried (a server may still be starting).
fn get_from(e: &Env, net: &[&str], host: &str, port: u16) -> std::process::Output {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(net);
    let script = get_retry(host, port);
    args.extend_from_slice(&[&e.image, "sh", "-c", &script]);
    e.run(&args)
}

/// One GET that must get no answer (isolation).
fn get_fails(e: &Env, net: &[&str], host: &str, port: u16) {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(net);
    let script = get(host, port);
    args.extend_from_slice(&[&e.image, "sh", "-c", &script]);
    let o = e.run(&args);
    assert_eq!(out(&o), "", "{host}:{port} reachable");
}

#[test]
fn published_port_answers_on_loopback_host_address_and_hairpin() {
    let e = Env::new();
    let hp = free_port();
    let spec = format!("{hp}:80");
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &spec,
        &e.image,
        "sh",
        "-c",
        HTTPD,
        "hello-web",
    ]);
    wait_http(&e, format!("127.0.0.1:{hp}").as_str(), "hello-web");
    let ha = host_addr();
    wait_http(&e, format!("{ha}:{hp}").as_str(), "hello-web");
    // From another container through the host address (hairpin).
    let o = get_from(&e, &[], &ha, hp);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "hello-web\n");
    // IPv6 clients of this v4-only container reach it through the
    // monitor's relay, as docker-proxy relays them.
    wait_http(
        &e,
        std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, hp)),
        "hello-web",
    );
    // port and inspect output (docker's, with the `[::]` side)
    assert_eq!(
        e.b.ok(&["port", "web"]),
        format!("80/tcp -> 0.0.0.0:{hp}\n80/tcp -> [::]:{hp}\n")
    );
    assert_eq!(
        e.b.ok(&["port", "web", "80"]),
        format!("0.0.0.0:{hp}\n[::]:{hp}\n")
    );
    let (code, msg) = e.b.fails(&["port", "web", "81/tcp"]);
    assert_eq!(code, 1);
    assert!(
        msg.contains("No public port '81/tcp' published for web"),
        "{msg}"
    );
    assert_eq!(
        e.inspect("web", "{{json .NetworkSettings.Ports}}"),
        format!("{{\"80/tcp\":[{{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"{hp}\"}},{{\"HostIp\":\"::\",\"HostPort\":\"{hp}\"}}]}}")
    );
    assert_eq!(
        e.inspect("web", "{{json .HostConfig.PortBindings}}"),
        format!("{{\"80/tcp\":[{{\"HostIp\":\"\",\"HostPort\":\"{hp}\"}}]}}")
    );
    // A second container cannot take the same host port; the error names it.
    let o = e.run(&["run", "-d", "-p", &spec, &e.image, "sleep", "100"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(
        err(&o).contains(&format!("{hp}")) && err(&o).contains("port is already allocated"),
        "{}",
        err(&o)
    );
    // Rules go with the container.
    e.b.ok(&["stop", "-t", "1", "web"]);
    assert!(http_get(format!("127.0.0.1:{hp}")).is_none());
    assert_eq!(e.b.ok(&["port", "web"]), "");
    // Restart re-attaches and republishes.
    e.b.ok(&["start", "web"]);
    wait_http(&e, format!("127.0.0.1:{hp}").as_str(), "hello-web");
}

#[test]
fn host_port_taken_by_a_host_process_is_an_error_naming_it() {
    let e = Env::new();
    let l = TcpListener::bind("0.0.0.0:0").unwrap();
    let hp = l.local_addr().unwrap().port();
    let o = e.run(&[
        "run",
        "-d",
        "--name",
        "xx",
        "-p",
        &format!("{hp}:80"),
        &e.image,
        "sleep",
        "100",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(
        err(&o).contains(&format!(
            "Bind for 0.0.0.0:{hp} failed: port is already allocated"
        )),
        "{}",
        err(&o)
    );
    drop(l);
}

/// UDP datagrams received by the container's namespace for a port nothing
/// listens on (busybox has no UDP server here): `Udp: NoPorts` of its
/// /proc/net/snmp, which is per network namespace.
fn udp_noports(e: &Env, c: &str) -> u64 {
    let snmp = e.b.ok(&["exec", c, "cat", "/proc/net/snmp"]);
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (h, v) = (udp.next().unwrap(), udp.next().unwrap());
    let i = h.split_whitespace().position(|x| x == "NoPorts").unwrap();
    v.split_whitespace().nth(i).unwrap().parse().unwrap()
}

#[test]
fn udp_port_and_loopback_binding() {
    let e = Env::new();
    let hp = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "udp1",
        "-p",
        &format!("127.0.0.1:{hp}:5353/udp"),
        &e.image,
        "sleep",
        "1000",
    ]);
    assert_eq!(
        e.b.ok(&["port", "udp1"]),
        format!("5353/udp -> 127.0.0.1:{hp}\n")
    );
    let before = udp_noports(&e, "udp1");
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        s.send_to(b"ping-udp\n", format!("127.0.0.1:{hp}")).unwrap();
    }
    e.wait_for("udp datagrams in the container", || {
        udp_noports(&e, "udp1") >= before + 3
    });
    // Bound to 127.0.0.1 only: the host address does not forward it.
    let ha = host_addr();
    let now = udp_noports(&e, "udp1");
    s.send_to(b"x", format!("{ha}:{hp}")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(udp_noports(&e, "udp1"), now);
}

#[test]
fn publish_all_uses_image_expose() {
    let e = Env::with(ImageBuilder::new().expose("80/tcp"));
    e.b.ok(&[
        "run", "-d", "--name", "pa", "-P", &e.image, "sh", "-c", HTTPD, "hello-P",
    ]);
    let line = e.b.ok(&["port", "pa", "80/tcp"]);
    let hp = line.trim().rsplit(':').next().unwrap().to_string();
    assert!(hp.parse::<u16>().unwrap() > 0, "{line}");
    wait_http(&e, format!("127.0.0.1:{hp}").as_str(), "hello-P");
    assert_eq!(e.inspect("pa", "{{.HostConfig.PublishAllPorts}}"), "true");
    assert_eq!(
        e.inspect("pa", "{{json .Config.ExposedPorts}}"),
        "{\"80/tcp\":{}}"
    );
}

struct Net<'a>(&'a Env, &'static str);

impl Drop for Net<'_> {
    fn drop(&mut self) {
        // Containers first (Env's Drop would come too late for network rm).
        let ids = self.0.b.cmd(&["ps", "-aq"]);
        for id in out(&ids).lines() {
            let _ = self.0.b.cmd(&["rm", "-f", id]);
        }
        let _ = self.0.b.cmd(&["network", "rm", self.1]);
    }
}

fn net<'a>(e: &'a Env, name: &'static str, args: &[&str]) -> Net<'a> {
    let mut a = vec!["network", "create"];
    a.extend_from_slice(args);
    a.push(name);
    let id = e.b.ok(&a);
    assert_eq!(id.trim().len(), 64, "{id}");
    Net(e, name)
}

#[test]
fn user_networks_are_isolated_and_internal_has_no_egress() {
    let e = Env::new();
    let _n1 = net(&e, "n1", &["--subnet", "10.77.1.0/24"]);
    let _n2 = net(&e, "n2", &["--subnet", "10.77.2.0/24"]);
    let _n3 = net(&e, "n3", &["--subnet", "10.77.3.0/24", "--internal"]);
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "s1",
        "--network",
        "n1",
        "--ip",
        "10.77.1.50",
        &e.image,
        "sh",
        "-c",
        HTTPD,
        "s1",
    ]);
    assert_eq!(ip_of(&e, "s1", "n1"), "10.77.1.50");
    let o = get_from(&e, &["--network", "n1"], "10.77.1.50", 80);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "s1\n");
    get_fails(&e, &["--network", "n2"], "10.77.1.50", 80);
    get_fails(&e, &["--network", "n3"], "10.77.1.50", 80);
    // Internal: no default route, no host reachable, no -p.
    let o = e.run(&["run", "--rm", "--network", "n3", &e.image, "ip", "route"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!out(&o).contains("default"), "{}", out(&o));
    let (code, msg) = e.b.fails(&[
        "run",
        "--rm",
        "--network",
        "n3",
        "-p",
        "80",
        &e.image,
        "true",
    ]);
    assert_eq!(code, 125, "{msg}");
    assert!(msg.contains("internal"), "{msg}");
    // On a user network resolv.conf points at the network's gateway.
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        "n1",
        &e.image,
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(out(&o).starts_with("nameserver 10.77.1.1\n"), "{}", out(&o));
    // inspect network with its container
    let v: serde_json::Value =
        serde_json::from_str(&e.b.ok(&["network", "inspect", "n1"])).unwrap();
    let n = &v[0];
    assert_eq!(n["Name"], "n1");
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.77.1.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.77.1.1");
    let cs = n["Containers"].as_object().unwrap();
    assert_eq!(cs.len(), 1);
    let c = cs.values().next().unwrap();
    assert_eq!(c["Name"], "s1");
    assert_eq!(c["IPv4Address"], "10.77.1.50/24");
    assert_eq!(
        e.b.ok(&["network", "inspect", "-f", "{{.Internal}}", "n3"]),
        "true\n"
    );
    // rm refused while in use
    let (code, msg) = e.b.fails(&["network", "rm", "n1"]);
    assert_eq!(code, 1);
    assert!(msg.contains("active endpoints"), "{msg}");
    e.b.ok(&["rm", "-f", "s1"]);
    assert_eq!(e.b.ok(&["network", "rm", "n1"]), "n1\n");
}

#[test]
fn network_ls_create_errors_and_prune() {
    let e = Env::new();
    let _n = net(
        &e,
        "lsnet",
        &[
            "--subnet",
            "10.77.4.0/24",
            "--label",
            "team=a",
            "-o",
            "com.docker.network.driver.mtu=1400",
        ],
    );
    let names = e.b.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(names, "bridge\nhost\nlsnet\nnone\n");
    let t = e.b.ok(&["network", "ls"]);
    assert!(
        t.starts_with("NETWORK ID     NAME      DRIVER    SCOPE\n"),
        "{t}"
    );
    assert_eq!(
        e.b.ok(&["network", "ls", "-q", "-f", "name=lsnet"])
            .trim()
            .len(),
        12
    );
    assert_eq!(
        e.b.ok(&[
            "network",
            "ls",
            "-f",
            "label=team=a",
            "--format",
            "{{.Name}}"
        ]),
        "lsnet\n"
    );
    assert_eq!(
        e.b.ok(&[
            "network",
            "ls",
            "-f",
            "type=custom",
            "--format",
            "{{.Name}} {{.Driver}}"
        ]),
        "lsnet bridge\n"
    );
    let (code, msg) =
        e.b.fails(&["network", "create", "--subnet", "10.77.5.0/24", "lsnet"]);
    assert_eq!(code, 1);
    assert!(
        msg.contains("network with name lsnet already exists"),
        "{msg}"
    );
    let (_, msg) =
        e.b.fails(&["network", "create", "--subnet", "10.77.4.128/25", "other"]);
    assert!(msg.contains("overlaps"), "{msg}");
    let (_, msg) = e.b.fails(&["network", "rm", "bridge"]);
    assert!(
        msg.contains("bridge is a pre-defined network and cannot be removed"),
        "{msg}"
    );
    let (code, msg) = e.b.fails(&["network", "inspect", "nope"]);
    assert_eq!(code, 1);
    assert!(msg.contains("No such network: nope"), "{msg}");
    let (_, msg) =
        e.b.fails(&["run", "--rm", "--network", "nope", &e.image, "true"]);
    assert!(msg.contains("network nope not found"), "{msg}");
    // mtu option reaches the bridge and the container
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        "lsnet",
        &e.image,
        "cat",
        "/sys/class/net/eth0/mtu",
    ]);
    assert_eq!(out(&o), "1400\n", "{}", err(&o));
    // An automatic subnet comes from this test's pool.
    e.b.ok(&["network", "create", "auto1"]);
    let sub = e.b.ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Subnet}}",
        "auto1",
    ]);
    assert!(
        sub.starts_with(&format!("10.79.{}.", e.b.net.slot)),
        "{sub}"
    );
    let p = e.b.ok(&["network", "prune", "-f"]);
    assert_eq!(p, "Deleted Networks:\nauto1\nlsnet\n");
    assert_eq!(
        e.b.ok(&["network", "ls", "--format", "{{.Name}}"]),
        "bridge\nhost\nnone\n"
    );
}

#[test]
fn connect_and_disconnect_a_running_container() {
    let e = Env::new();
    let _a = net(&e, "ca", &["--subnet", "10.77.6.0/24"]);
    let _b = net(&e, "cb", &["--subnet", "10.77.7.0/24"]);
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "srvb",
        "--network",
        "cb",
        "--ip",
        "10.77.7.10",
        &e.image,
        "sh",
        "-c",
        HTTPD,
        "on-b",
    ]);
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "ca",
        &e.image,
        "sleep",
        "1000",
    ]);
    let o = e.run(&["exec", "cli", "sh", "-c", &get("10.77.7.10", 80)]);
    assert_eq!(out(&o), "");
    e.b.ok(&[
        "network",
        "connect",
        "--ip",
        "10.77.7.20",
        "--alias",
        "c2",
        "cb",
        "cli",
    ]);
    assert_eq!(ip_of(&e, "cli", "cb"), "10.77.7.20");
    assert_eq!(
        e.b.ok(&["ps", "-f", "name=cli", "--format", "{{.Networks}}"]),
        "ca,cb\n"
    );
    assert_eq!(
        e.inspect(
            "cli",
            "{{json (index .NetworkSettings.Networks \"cb\").Aliases}}"
        ),
        "[\"c2\"]"
    );
    let o = e.run(&["exec", "cli", "sh", "-c", &get_retry("10.77.7.10", 80)]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "on-b\n");
    let (code, msg) = e.b.fails(&["network", "connect", "cb", "cli"]);
    assert_eq!(code, 1);
    assert!(msg.contains("already exists in network cb"), "{msg}");
    e.b.ok(&["network", "disconnect", "cb", "cli"]);
    let o = e.run(&["exec", "cli", "ls", "/sys/class/net"]);
    assert!(!out(&o).contains("eth1"), "{}", out(&o));
    assert_eq!(e.inspect("cli", "{{len .NetworkSettings.Networks}}"), "1");
    let (_, msg) = e.b.fails(&["network", "disconnect", "cb", "cli"]);
    assert!(msg.contains("is not connected to network cb"), "{msg}");
    // Connect a stopped container: attached at its next start.
    e.b.ok(&["stop", "-t", "0", "cli"]);
    e.b.ok(&["network", "connect", "cb", "cli"]);
    e.b.ok(&["start", "cli"]);
    let o = e.run(&["exec", "cli", "sh", "-c", &get_retry("10.77.7.10", 80)]);
    assert!(o.status.success(), "{}", err(&o));
}

#[test]
fn several_networks_link_and_container_mode() {
    let e = Env::new();
    let _m = net(&e, "m1", &["--subnet", "10.77.8.0/24"]);
    e.b.ok(&[
        "run", "-d", "--name", "srv", &e.image, "sh", "-c", HTTPD, "linked",
    ]);
    let ip = ip_of(&e, "srv", "bridge");
    // --link: hosts entry on the default bridge
    let o = e.run(&[
        "run",
        "--rm",
        "--link",
        "srv:web",
        &e.image,
        "sh",
        "-c",
        &format!("grep web /etc/hosts; {}", get_retry("web", 80)),
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), format!("{ip}\tweb srv\nlinked\n"));
    // container:NAME shares the namespace
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        "container:srv",
        &e.image,
        "sh",
        "-c",
        &get_retry("127.0.0.1", 80),
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "linked\n");
    // two networks: eth0 and eth1, --mac-address on the first
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        "m1",
        "--network",
        "bridge",
        "--mac-address",
        "92:d0:c6:0a:29:33",
        &e.image,
        "sh",
        "-c",
        "cat /sys/class/net/eth0/address; ls /sys/class/net",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "92:d0:c6:0a:29:33\neth0\neth1\nlo\n");
    // flag conflicts, docker's texts
    let (_, msg) =
        e.b.fails(&["run", "--rm", "--ip", "10.78.0.9", &e.image, "true"]);
    assert!(
        msg.contains("user specified IP address is supported on user defined networks only"),
        "{msg}"
    );
    let (_, msg) = e.b.fails(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--network",
        "m1",
        &e.image,
        "true",
    ]);
    assert!(msg.contains("conflicting options"), "{msg}");
    let (_, msg) =
        e.b.fails(&["run", "--rm", "-p", "80:80:80:80", &e.image, "true"]);
    assert!(msg.contains("Invalid"), "{msg}");
}

fn nft_table(e: &Env) -> String {
    let o = std::process::Command::new("nft")
        .args(["list", "table", "inet", &e.b.net.table])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn bridge_ports(bridge: &str) -> String {
    let o = std::process::Command::new("ip")
        .args(["-br", "link", "show", "master", bridge])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn netns_handles(e: &Env) -> Vec<String> {
    std::fs::read_dir(e.b.root().join("run/netns"))
        .map(|rd| {
            rd.flatten()
                .map(|d| d.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn thirty_concurrent_runs_get_distinct_addresses_and_leave_nothing() {
    let e = Env::new();
    let _n = net(
        &e,
        "conc",
        &[
            "--subnet",
            "10.77.10.0/24",
            "-o",
            "com.docker.network.bridge.name=bconc",
        ],
    );
    let ids: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    (0..10)
                        .map(|_| {
                            e.b.ok(&[
                                "run",
                                "-d",
                                "--network",
                                "conc",
                                "-p",
                                "80",
                                &e.image,
                                "sleep",
                                "1000",
                            ])
                            .trim()
                            .to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(ids.len(), 30);
    let mut ips: Vec<String> = ids.iter().map(|id| ip_of(&e, id, "conc")).collect();
    assert!(ips.iter().all(|ip| ip.starts_with("10.77.10.")), "{ips:?}");
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 30, "{ips:?}");
    let v: serde_json::Value =
        serde_json::from_str(&e.b.ok(&["network", "inspect", "conc"])).unwrap();
    assert_eq!(v[0]["Containers"].as_object().unwrap().len(), 30);
    assert_eq!(bridge_ports("bconc").lines().count(), 30);
    assert_eq!(
        // Each container's rules sit in its own chain behind a jump (also
        // tagged): count the DNAT rules themselves.
        nft_table(&e)
            .lines()
            .filter(|l| l.contains("dnat ip to") && l.contains("ctr:"))
            .count(),
        30,
        "one DNAT rule per published port"
    );
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.iter().map(String::as_str));
    e.b.ok(&rm);
    let v: serde_json::Value =
        serde_json::from_str(&e.b.ok(&["network", "inspect", "conc"])).unwrap();
    assert!(
        v[0]["Containers"].as_object().unwrap().is_empty(),
        "leases left: {v}"
    );
    assert!(!nft_table(&e).contains("ctr:"), "{}", nft_table(&e));
    assert!(netns_handles(&e).is_empty(), "{:?}", netns_handles(&e));
    // veths go with their namespaces, which the kernel frees in the background.
    e.wait_for("veths to go", || bridge_ports("bconc").is_empty());
}

fn kill_monitor(e: &Env, id: &str) {
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.b.root().join("containers").join(id).join("state.json")).unwrap(),
    )
    .unwrap();
    let pid = st["MonitorPid"].as_i64().unwrap() as i32;
    assert!(pid > 0);
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

#[test]
fn killed_monitor_leftovers_are_cleaned_by_prune() {
    let e = Env::new();
    let _n = net(&e, "kn", &["--subnet", "10.77.11.0/24"]);
    let a =
        e.b.ok(&[
            "run",
            "-d",
            "--network",
            "kn",
            "-p",
            "80",
            &e.image,
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let b =
        e.b.ok(&["run", "-d", "-p", "80", &e.image, "sleep", "1000"])
            .trim()
            .to_string();
    kill_monitor(&e, &a);
    kill_monitor(&e, &b);
    assert_eq!(e.inspect(&a, "{{.State.Status}}"), "exited");
    assert!(nft_table(&e).contains(&format!("ctr:{a}")));
    assert_eq!(netns_handles(&e).len(), 2);
    // network prune: the dead container's lease, rules and namespace go,
    // then its network (now unused) too.
    assert_eq!(
        e.b.ok(&["network", "prune", "-f"]),
        "Deleted Networks:\nkn\n"
    );
    let t = nft_table(&e);
    assert!(
        !t.contains(&format!("ctr:{a}")) && !t.contains(&format!("ctr:{b}")),
        "{t}"
    );
    assert!(netns_handles(&e).is_empty(), "{:?}", netns_handles(&e));
    // container prune removes the containers (and their processes).
    let c =
        e.b.ok(&["run", "-d", "-p", "80", &e.image, "sleep", "1000"])
            .trim()
            .to_string();
    kill_monitor(&e, &c);
    assert!(nft_table(&e).contains(&format!("ctr:{c}")));
    let p = e.b.ok(&["container", "prune", "-f"]);
    for id in [&a, &b, &c] {
        assert!(p.contains(id.as_str()), "{p}");
    }
    assert!(!nft_table(&e).contains("ctr:"), "{}", nft_table(&e));
    assert!(netns_handles(&e).is_empty(), "{:?}", netns_handles(&e));
    let v: serde_json::Value =
        serde_json::from_str(&e.b.ok(&["network", "inspect", "bridge"])).unwrap();
    assert!(v[0]["Containers"].as_object().unwrap().is_empty(), "{v}");
}

#[test]
fn container_reaches_its_own_published_port() {
    let e = Env::new();
    let hp = free_port();
    let ha = host_addr();
    let script = format!("{HTTPD_BG} && {}", get_retry(&ha, hp));
    let o = e.run(&[
        "run",
        "--rm",
        "-p",
        &format!("{hp}:80"),
        &e.image,
        "sh",
        "-c",
        &script,
        "self",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "self\n");
}

/// Egress through NAT, by name (the host's resolvers on the default
/// bridge). Needs Debian's mirror, reachable from this machine; skipped
/// (with a message) when the host itself cannot reach it.
#[test]
fn egress_by_name_through_nat() {
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&("deb.debian.org", 80))
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).is_ok());
    if !reachable {
        eprintln!("skipped: deb.debian.org:80 is not reachable from this host");
        return;
    }
    let e = Env::new();
    // The write side stays open a while: this machine's HTTP proxy drops a
    // request whose client half-closes at once (busybox nc does at EOF).
    let script = "(printf 'HEAD / HTTP/1.1\\r\\nHost: deb.debian.org\\r\\nConnection: close\\r\\n\\r\\n'; sleep 5) | nc -w 10 deb.debian.org 80 | head -n 1";
    let o = e.run(&["run", "--rm", &e.image, "sh", "-c", script]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).starts_with("HTTP/1."),
        "no status line: {:?} {}",
        out(&o),
        err(&o)
    );
}

/// After a reboot berth's records remain but bridges do not; a start
/// recreates the bridge and its rules (here: the bridge deleted by hand).
#[test]
fn a_start_recreates_a_missing_bridge() {
    let e = Env::new();
    let _n = net(
        &e,
        "rb",
        &[
            "--subnet",
            "10.77.12.0/24",
            "-o",
            "com.docker.network.bridge.name=brb12",
        ],
    );
    let rules = nft_table(&e).matches("net:rb").count();
    assert!(rules > 0);
    let st = std::process::Command::new("ip")
        .args(["link", "del", "brb12"])
        .status()
        .unwrap();
    assert!(st.success());
    let hp = free_port();
    e.b.ok(&[
        "run",
        "-d",
        "--network",
        "rb",
        "-p",
        &format!("{hp}:80"),
        &e.image,
        "sh",
        "-c",
        HTTPD,
        "back",
    ]);
    wait_http(&e, format!("127.0.0.1:{hp}").as_str(), "back");
    assert_eq!(
        nft_table(&e).matches("net:rb").count(),
        rules,
        "{}",
        nft_table(&e)
    );
}

#[test]
fn link_sets_dockers_environment_variables() {
    let e = Env::new();
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "my-db",
        "-e",
        "PASS=s=cret",
        "--expose",
        "5432",
        "--expose",
        "9000-9001/tcp",
        "--expose",
        "53/udp",
        &e.image,
        "sleep",
        "1000",
    ]);
    let ip = ip_of(&e, "my-db", "bridge");
    let o = e.run(&[
        "run",
        "--rm",
        "--name",
        "app",
        "--link",
        "my-db:db-1",
        "-e",
        "DB_1_NAME=mine",
        &e.image,
        "sh",
        "-c",
        "env | grep ^DB_1_ | sort",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let got: Vec<&str> = text.lines().collect();
    let mut want = vec![
        format!("DB_1_PORT=tcp://{ip}:5432"),
        format!("DB_1_PORT_5432_TCP=tcp://{ip}:5432"),
        format!("DB_1_PORT_5432_TCP_ADDR={ip}"),
        "DB_1_PORT_5432_TCP_PORT=5432".to_string(),
        "DB_1_PORT_5432_TCP_PROTO=tcp".to_string(),
        format!("DB_1_PORT_9000_TCP=tcp://{ip}:9000"),
        format!("DB_1_PORT_9000_TCP_ADDR={ip}"),
        "DB_1_PORT_9000_TCP_PORT=9000".to_string(),
        "DB_1_PORT_9000_TCP_PROTO=tcp".to_string(),
        format!("DB_1_PORT_9000_TCP_START=tcp://{ip}:9000"),
        "DB_1_PORT_9000_TCP_PORT_START=9000".to_string(),
        format!("DB_1_PORT_9000_TCP_END=tcp://{ip}:9001"),
        "DB_1_PORT_9000_TCP_PORT_END=9001".to_string(),
        format!("DB_1_PORT_9001_TCP=tcp://{ip}:9001"),
        format!("DB_1_PORT_9001_TCP_ADDR={ip}"),
        "DB_1_PORT_9001_TCP_PORT=9001".to_string(),
        "DB_1_PORT_9001_TCP_PROTO=tcp".to_string(),
        format!("DB_1_PORT_53_UDP=udp://{ip}:53"),
        format!("DB_1_PORT_53_UDP_ADDR={ip}"),
        "DB_1_PORT_53_UDP_PORT=53".to_string(),
        "DB_1_PORT_53_UDP_PROTO=udp".to_string(),
        // the container's own -e wins over the link's value
        "DB_1_NAME=mine".to_string(),
        "DB_1_ENV_PASS=s=cret".to_string(),
    ];
    want.sort();
    assert_eq!(got, want);
    // without an override: docker's /<parent>/<alias>
    let o = e.run(&[
        "run",
        "--rm",
        "--name",
        "app2",
        "--link",
        "my-db",
        &e.image,
        "sh",
        "-c",
        "echo $MY_DB_NAME $MY_DB_PORT",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), format!("/app2/my-db tcp://{ip}:5432\n"));
    // inspect does not show them: they are not part of Config.Env
    e.b.ok(&["rm", "-f", "my-db"]);
}

#[test]
fn connect_and_disconnect_rewrite_hosts_of_a_running_container() {
    let e = Env::new();
    let _a = net(&e, "ha", &["--subnet", "10.77.12.0/24"]);
    let _b = net(&e, "hb", &["--subnet", "10.77.13.0/24"]);
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "hh",
        "--hostname",
        "hhost",
        "--network",
        "ha",
        &e.image,
        "sleep",
        "1000",
    ]);
    let a = ip_of(&e, "hh", "ha");
    let before = e.b.ok(&["exec", "hh", "cat", "/etc/hosts"]);
    assert!(before.contains(&format!("{a}\thhost\n")), "{before}");
    e.b.ok(&["network", "connect", "--ip", "10.77.13.9", "hb", "hh"]);
    // seen inside the running container, through its bind mount
    let after = e.b.ok(&["exec", "hh", "cat", "/etc/hosts"]);
    assert_eq!(after, format!("{before}10.77.13.9\thhost\n"));
    e.b.ok(&["network", "disconnect", "hb", "hh"]);
    assert_eq!(e.b.ok(&["exec", "hh", "cat", "/etc/hosts"]), before);
    // a stopped container's file is left to its next start
    e.b.ok(&["stop", "-t", "0", "hh"]);
    e.b.ok(&["network", "connect", "hb", "hh"]);
    e.b.ok(&["start", "hh"]);
    let b = ip_of(&e, "hh", "hb");
    assert!(!b.is_empty());
    e.b.ok(&["rm", "-f", "hh"]);
}

/// A host port whose next two are free too (none held).
fn three_free_ports() -> u16 {
    loop {
        let p = free_port();
        if p > 65000 {
            continue;
        }
        if (1..3).all(|i| TcpListener::bind(("0.0.0.0", p + i)).is_ok()) {
            return p;
        }
    }
}

#[test]
fn host_port_range_for_one_container_port_takes_the_first_free() {
    let e = Env::new();
    let base = three_free_ports();
    // the range's first port is a host process's
    let held = TcpListener::bind(("0.0.0.0", base)).unwrap();
    let range = format!("{base}-{}", base + 2);
    let publish = format!("{range}:80");
    for (c, text) in [("r1", "one"), ("r2", "two")] {
        e.b.ok(&[
            "run", "-d", "--name", c, "-p", &publish, &e.image, "sh", "-c", HTTPD, text,
        ]);
    }
    assert_eq!(
        e.b.ok(&["port", "r1", "80"]),
        format!("0.0.0.0:{0}\n[::]:{0}\n", base + 1)
    );
    assert_eq!(
        e.b.ok(&["port", "r2", "80"]),
        format!("0.0.0.0:{0}\n[::]:{0}\n", base + 2)
    );
    // docker keeps the range as the configured HostPort
    assert_eq!(
        e.inspect(
            "r1",
            "{{(index (index .HostConfig.PortBindings \"80/tcp\") 0).HostPort}}"
        ),
        range
    );
    wait_http(&e, format!("127.0.0.1:{}", base + 1).as_str(), "one");
    wait_http(&e, format!("127.0.0.1:{}", base + 2).as_str(), "two");
    // nothing left in the range
    let o = e.run(&[
        "run", "-d", "--name", "r3", "-p", &publish, &e.image, "sleep", "100",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(
        err(&o).contains(&format!("Bind for 0.0.0.0:{range} failed")),
        "{}",
        err(&o)
    );
    // a restart takes a port from the range again
    drop(held);
    e.b.ok(&["rm", "-f", "r3"]);
    e.b.ok(&["stop", "-t", "0", "r1"]);
    e.b.ok(&["start", "r1"]);
    assert_eq!(
        e.b.ok(&["port", "r1", "80"]),
        format!("0.0.0.0:{base}\n[::]:{base}\n")
    );
    for c in ["r1", "r2"] {
        e.b.ok(&["rm", "-f", c]);
    }
}

/// `cmd` run in the network namespace of container `c` with the host's
/// tools (busybox's `ip` shows no route metrics, and it has no `ss`).
fn in_netns(e: &Env, c: &str, cmd: &[&str]) -> String {
    let pid = e.inspect(c, "{{.State.Pid}}");
    let o = std::process::Command::new("nsenter")
        .args(["-t", pid.trim(), "-n"])
        .args(cmd)
        .output()
        .unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", err(&o));
    out(&o)
}

/// The MSS of this host's connected TCP socket to `peer`, from `ss`.
fn mss_to(peer: &str) -> u32 {
    let o = std::process::Command::new("ss")
        .args(["-Htin", "state", "established", "dst", peer])
        .output()
        .unwrap();
    let s = out(&o);
    s.split_whitespace()
        .find_map(|w| w.strip_prefix("mss:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no mss for {peer} in {s:?}"))
}

#[test]
fn network_links_carry_large_frames_while_default_routes_keep_1500() {
    let e = Env::new();
    let _j = net(&e, "jumbo", &["--subnet", "10.77.14.0/24"]);
    let _m = net(
        &e,
        "mtu9000",
        &[
            "--subnet",
            "10.77.15.0/24",
            "-o",
            "com.docker.network.driver.mtu=9000",
        ],
    );
    let hp = free_port();
    // 4 MiB and a marker: large enough for segments of every size.
    let page = "mkdir -p /www && dd if=/dev/zero bs=65536 count=64 2>/dev/null | tr '\\0' x > /www/index.html && echo $0 >> /www/index.html && exec httpd -f -p 80 -h /www";
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "big",
        "--network",
        "jumbo",
        "-p",
        &format!("{hp}:80"),
        &e.image,
        "sh",
        "-c",
        page,
        "end-of-page",
    ]);
    assert_eq!(
        e.b.ok(&["exec", "big", "cat", "/sys/class/net/eth0/mtu"]),
        "65535\n"
    );
    let default = in_netns(&e, "big", &["ip", "-4", "route", "show", "default"]);
    assert!(
        default.contains("via 10.77.14.1") && default.contains("mtu 1500"),
        "{default}"
    );
    let subnet = in_netns(&e, "big", &["ip", "-4", "route", "show", "10.77.14.0/24"]);
    assert!(!subnet.contains("mtu"), "{subnet}");
    // BIG TCP on the bridge and the host ends (the host's traffic into
    // containers); the container's end keeps 64 KiB, since what it sends
    // out is forwarded to a NIC that would have to cut larger segments in
    // software.
    let eth0 = in_netns(&e, "big", &["ip", "-d", "link", "show", "eth0"]);
    assert!(eth0.contains("gso_max_size 65536 "), "{eth0}");
    let id = e.b.ok(&["network", "inspect", "-f", "{{.Id}}", "jumbo"]);
    let br = format!("br-{}", &id[..12]);
    let ip_d = |args: &[&str]| {
        let o = std::process::Command::new("ip")
            .args(["-d", "-o", "link", "show"])
            .args(args)
            .output()
            .unwrap();
        out(&o)
    };
    let ports = ip_d(&["master", &br]);
    assert_eq!(ports.lines().count(), 1, "{ports}");
    assert!(ports.contains("gso_max_size 196608 "), "{ports}");
    let bridge = ip_d(&[&br]);
    assert!(bridge.contains("gso_max_size 196608 "), "{bridge}");
    // A user-set MTU is the links' MTU, as docker's, with no route MTU.
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "m9",
        "--network",
        "mtu9000",
        &e.image,
        "sleep",
        "100",
    ]);
    assert_eq!(
        e.b.ok(&["exec", "m9", "cat", "/sys/class/net/eth0/mtu"]),
        "9000\n"
    );
    let default = in_netns(&e, "m9", &["ip", "-4", "route", "show", "default"]);
    assert!(!default.contains("mtu"), "{default}");

    // The whole page arrives through the published port on loopback and on
    // the host's address, and from another container on the network.
    let ha = host_addr();
    for addr in [format!("127.0.0.1:{hp}"), format!("{ha}:{hp}")] {
        wait_http(&e, addr.as_str(), "end-of-page");
        let body = http_get(addr.as_str()).unwrap();
        assert!(
            body.ends_with(&format!("{}end-of-page\n", "x".repeat(100))),
            "{addr}"
        );
        assert!(body.len() > 4 << 20, "{addr}: {} bytes", body.len());
    }
    let ip = ip_of(&e, "big", "jumbo");
    let o = e.run(&[
        "run",
        "--rm",
        "--network",
        "jumbo",
        &e.image,
        "sh",
        "-c",
        &format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 80 | wc -c"),
    ]);
    let n: usize = out(&o).trim().parse().unwrap_or(0);
    assert!(n > 4 << 20, "{n} bytes; {}", err(&o));

    // The host's connections take the network's frame size, also those to
    // its own address: they reach the container from the gateway, and the
    // container answers in large segments (1460 would mean the default
    // route's 1500).
    for addr in [format!("127.0.0.1:{hp}"), format!("{ha}:{hp}")] {
        let _c = TcpStream::connect(&addr).unwrap();
        let mss = mss_to(&addr);
        assert!(mss > 8000, "{addr}: mss {mss}");
        // httpd's socket is dual-stack: v4 peers show as [::ffff:a.b.c.d].
        let peers = in_netns(&e, "big", &["ss", "-Htn", "state", "established"])
            .replace("[::ffff:", "")
            .replace(']', "");
        assert!(peers.contains(" 10.77.14.1:"), "{addr}: {peers}");
    }
}

/// The host's connections to a published TCP port, from a process in the
/// cgroup berth's redirect programs are attached to (the slot's own in
/// tests, the root one by default), go straight to the container: their
/// local address is the network's gateway while getpeername still shows
/// the published address. Other processes keep the DNAT path. The
/// map follows the container's ports through stop, start and rm.
#[test]
fn host_connections_to_published_ports_are_redirected_at_the_socket() {
    let e = Env::new();
    let _n = net(&e, "rdr", &["--subnet", "10.77.16.0/24"]);
    let hp = free_port();
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "rdr",
        "-p",
        &format!("{hp}:80"),
        &e.image,
        "sh",
        "-c",
        "mkdir -p /www && echo redirected > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let lo = format!("127.0.0.1:{hp}");
    wait_http(&e, lo.as_str(), "redirected");
    let local_of = |addr: &str| TcpStream::connect(addr).unwrap().local_addr().unwrap();
    // Outside the cgroup: DNAT, the client's socket stays on loopback.
    assert_eq!(local_of(&lo).ip().to_string(), "127.0.0.1");
    let status = || e.b.net.redirects();
    assert!(status().is_some_and(|n| n >= 2), "{:?}", status());
    let ha = format!("{}:{hp}", host_addr());
    {
        let _in = e.b.net.cgroup.join();
        for addr in [&lo, &ha] {
            assert_redirected(addr.parse().unwrap(), "10.77.16.1", "redirected");
        }
    }
    e.b.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(status(), Some(0));
    e.b.ok(&["start", "web"]);
    assert!(status().is_some_and(|n| n >= 2));
    {
        let _in = e.b.net.cgroup.join();
        wait_http(&e, lo.as_str(), "redirected");
        assert_eq!(local_of(&lo).ip().to_string(), "10.77.16.1");
    }
    e.b.ok(&["rm", "-f", "web"]);
    // The programs stay, empty, until the root's last network goes.
    assert_eq!(status(), Some(0));
}
