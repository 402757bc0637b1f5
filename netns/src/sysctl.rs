//! The two sysctls bridge networking needs: forwarding, and loopback-sourced
//! packets routed to a bridge (published ports reached via 127.0.0.1).

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

fn set_one(path: &Path) -> Result<()> {
    if fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    fs::write(path, "1").map_err(|source| Error::Sysctl {
        path: path.to_path_buf(),
        source,
    })
}

/// `net.ipv4.ip_forward=1`, as docker sets when it creates a network.
pub fn enable_ip_forward() -> Result<()> {
    set_one(Path::new("/proc/sys/net/ipv4/ip_forward"))
}

/// `net.ipv6.conf.all.forwarding=1`, as docker sets for IPv6 networks.
/// (This stops the host from accepting router advertisements on
/// interfaces whose `accept_ra` is 1; docker has the same effect.)
pub fn enable_ipv6_forward() -> Result<()> {
    set_one(Path::new("/proc/sys/net/ipv6/conf/all/forwarding"))
}

fn set_value(path: &Path, v: &str) -> Result<()> {
    if fs::read_to_string(path).is_ok_and(|cur| cur.trim() == v) {
        return Ok(());
    }
    fs::write(path, v).map_err(|source| Error::Sysctl {
        path: path.to_path_buf(),
        source,
    })
}

/// Inside a container's namespace (the caller runs this on a thread that
/// joined it, so `/proc/sys/net` is that namespace's): IPv6 on for a
/// dual-stack interface, off for a v4-only one, as docker does, so a
/// v4-only interface gets no stray link-local address.
pub fn container_ipv6(ifname: &str, enabled: bool) -> Result<()> {
    let conf = Path::new("/proc/sys/net/ipv6/conf");
    // A kernel booted with ipv6.disable=1 has no v6 at all: nothing to
    // turn off (a dual-stack network fails below, naming the path).
    if !enabled && !conf.exists() {
        return Ok(());
    }
    if enabled {
        set_value(&conf.join("all/disable_ipv6"), "0")?;
        set_value(&conf.join(ifname).join("disable_ipv6"), "0")
    } else {
        set_value(&conf.join(ifname).join("disable_ipv6"), "1")
    }
}

/// Hairpin mode on a bridge port (docker sets it too when it DNATs in the
/// kernel): a container reaching its own published port sends a SYN that
/// DNAT turns back to itself; with `br_netfilter` loaded (as on this
/// machine and on most docker hosts) that frame is bridged back out of the
/// port it came in on, which the bridge does only in hairpin mode.
pub fn enable_hairpin(port: &str) -> Result<()> {
    set_one(
        &Path::new("/sys/class/net")
            .join(port)
            .join("brport/hairpin_mode"),
    )
}

/// `net.ipv4.conf.<bridge>.route_localnet=1`.
pub fn enable_route_localnet(bridge: &str) -> Result<()> {
    set_one(
        &Path::new("/proc/sys/net/ipv4/conf")
            .join(bridge)
            .join("route_localnet"),
    )
}
