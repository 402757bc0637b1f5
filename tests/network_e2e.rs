//! End-to-end tests of bridge networks: real bridges, veths and nft rules,
//! busybox containers. Each test has its own --root, nft table, default
//! bridge and subnets (tests/common/netcfg.rs; explicit `--subnet`s are
//! 10.77.<n>.0/24 slices, one n per test) and removes everything it made
//! (containers, networks, bridges, table) also on failure, through the
//! `Env` / `Berth` guards.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::ctr::{err, out, Env};
use common::image::ImageBuilder;

fn ip_of(e: &Env, c: &str, net: &str) -> String {
    e.inspect(
        c,
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
    )
}

/// HTTP GET over TCP with a short timeout; the body or None.
fn http_get(addr: &str) -> Option<String> {
    let sa: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut b = String::new();
    s.read_to_string(&mut b).ok()?;
    Some(b)
}

fn wait_http(e: &Env, addr: &str, want: &str) {
    e.wait_for(&format!("http on {addr}"), || {
        http_get(addr).is_some_and(|b| b.contains(want))
    });
}

/// busybox httpd serving `text` on port 80.
const HTTPD: &str = "mkdir -p /www && echo $0 > /www/index.html && exec httpd -f -p 80 -h /www";

fn links() -> String {
    String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["-br", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned()
}

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
    let o = e.run(&[
        "run", "--rm", &e.image, "sh", "-c",
        &format!("for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://{ip}/index.html && exit 0; sleep 0.3; done; exit 1"),
    ]);
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
