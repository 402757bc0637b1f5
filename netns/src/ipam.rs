//! Address allocation inside one network's subnet. The caller holds the
//! network's lock; this module is pure logic over the set of leased addresses.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::{Error, Result};

/// Addresses a container may get: inside `ip_range` (or the subnet), never
/// the subnet's network or broadcast address, never the gateway.
fn usable(subnet: Ipv4Net, gateway: Ipv4Addr, ip: Ipv4Addr) -> bool {
    subnet.contains(&ip)
        && ip != gateway
        && (subnet.prefix_len() >= 31 || (ip != subnet.network() && ip != subnet.broadcast()))
}

/// Picks the lowest free address of `range` (docker hands them out in order).
pub fn allocate(
    network: &str,
    subnet: Ipv4Net,
    range: Option<Ipv4Net>,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    let range = range.unwrap_or(subnet);
    let (start, end) = (u32::from(range.network()), u32::from(range.broadcast()));
    for n in start..=end {
        let ip = Ipv4Addr::from(n);
        if usable(subnet, gateway, ip) && !used.contains(&ip) {
            return Ok(ip);
        }
    }
    Err(Error::AddressesExhausted {
        network: network.to_string(),
        range: range.to_string(),
    })
}

/// Validates a static `--ip` request. Like docker, a static address may lie
/// outside `ip_range` but must be inside the subnet.
pub fn request(
    network: &str,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
    ip: Ipv4Addr,
) -> Result<Ipv4Addr> {
    if !usable(subnet, gateway, ip) {
        return Err(Error::AddressOutOfRange {
            network: network.to_string(),
            ip,
            subnet: subnet.to_string(),
        });
    }
    if used.contains(&ip) {
        return Err(Error::AddressInUse {
            network: network.to_string(),
            ip,
        });
    }
    Ok(ip)
}

/// v6 addresses a container may get: inside the subnet, never the
/// subnet-router anycast address (the network address) or the gateway.
/// There is no broadcast in v6.
fn usable6(subnet: Ipv6Net, gateway: Ipv6Addr, ip: Ipv6Addr) -> bool {
    subnet.contains(&ip) && ip != gateway && (subnet.prefix_len() >= 127 || ip != subnet.network())
}

/// The lowest free v6 address of `range` (or the subnet), as docker hands
/// them out (`::2`, `::3`, ...). Bounded by the number of used addresses,
/// so a /64 is never walked.
pub fn allocate6(
    network: &str,
    subnet: Ipv6Net,
    range: Option<Ipv6Net>,
    gateway: Ipv6Addr,
    used: &BTreeSet<Ipv6Addr>,
) -> Result<Ipv6Addr> {
    let range = range.unwrap_or(subnet);
    let (start, end) = (u128::from(range.network()), u128::from(range.broadcast()));
    // At most used + 3 candidates can be refused (network, gateway, used).
    for n in (start..=end).take(used.len() + 3) {
        let ip = Ipv6Addr::from(n);
        if usable6(subnet, gateway, ip) && !used.contains(&ip) {
            return Ok(ip);
        }
    }
    Err(Error::AddressesExhausted {
        network: network.to_string(),
        range: range.to_string(),
    })
}

/// Validates a static `--ip6` request (inside the subnet, free).
pub fn request6(
    network: &str,
    subnet: Ipv6Net,
    gateway: Ipv6Addr,
    used: &BTreeSet<Ipv6Addr>,
    ip: Ipv6Addr,
) -> Result<Ipv6Addr> {
    if !usable6(subnet, gateway, ip) {
        return Err(Error::InvalidConfig {
            what: "IPv6 address",
            value: ip.to_string(),
            why: format!("not a usable address of network {network}'s subnet {subnet}"),
        });
    }
    if used.contains(&ip) {
        return Err(Error::InvalidConfig {
            what: "IPv6 address",
            value: ip.to_string(),
            why: format!("Address already in use on network {network}"),
        });
    }
    Ok(ip)
}

/// Docker's MAC for an address: 02:42 followed by the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn skips_network_gateway_broadcast_and_used() {
        let subnet = net("10.123.9.0/30");
        let gw = Ipv4Addr::new(10, 123, 9, 1);
        let mut used = BTreeSet::new();
        assert_eq!(
            allocate("n", subnet, None, gw, &used).unwrap(),
            Ipv4Addr::new(10, 123, 9, 2)
        );
        used.insert(Ipv4Addr::new(10, 123, 9, 2));
        assert!(matches!(
            allocate("n", subnet, None, gw, &used),
            Err(Error::AddressesExhausted { .. })
        ));
    }

    #[test]
    fn ip_range_and_static_requests() {
        let subnet = net("10.123.9.0/24");
        let gw = Ipv4Addr::new(10, 123, 9, 1);
        let used = BTreeSet::from([Ipv4Addr::new(10, 123, 9, 128)]);
        let got = allocate("n", subnet, Some(net("10.123.9.128/25")), gw, &used).unwrap();
        assert_eq!(got, Ipv4Addr::new(10, 123, 9, 129));
        assert!(matches!(
            request("n", subnet, gw, &used, Ipv4Addr::new(10, 123, 9, 128)),
            Err(Error::AddressInUse { .. })
        ));
        assert!(matches!(
            request("n", subnet, gw, &used, gw),
            Err(Error::AddressOutOfRange { .. })
        ));
        assert!(matches!(
            request("n", subnet, gw, &used, Ipv4Addr::new(10, 123, 9, 255)),
            Err(Error::AddressOutOfRange { .. })
        ));
        assert!(request("n", subnet, gw, &used, Ipv4Addr::new(10, 123, 9, 7)).is_ok());
    }

    #[test]
    fn v6_allocation_in_order_skipping_gateway_and_used() {
        let subnet: Ipv6Net = "fd12:3456::/64".parse().unwrap();
        let gw: Ipv6Addr = "fd12:3456::1".parse().unwrap();
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let mut used = BTreeSet::new();
        assert_eq!(
            allocate6("n", subnet, None, gw, &used).unwrap(),
            a("fd12:3456::2")
        );
        used.insert(a("fd12:3456::2"));
        used.insert(a("fd12:3456::3"));
        assert_eq!(
            allocate6("n", subnet, None, gw, &used).unwrap(),
            a("fd12:3456::4")
        );
        let range: Ipv6Net = "fd12:3456::80/126".parse().unwrap();
        assert_eq!(
            allocate6("n", subnet, Some(range), gw, &used).unwrap(),
            a("fd12:3456::80")
        );
        let tiny: Ipv6Net = "fd12:3456::/126".parse().unwrap();
        let full = BTreeSet::from([a("fd12:3456::2"), a("fd12:3456::3")]);
        assert!(matches!(
            allocate6("n", tiny, None, gw, &full),
            Err(Error::AddressesExhausted { .. })
        ));
        assert!(request6("n", subnet, gw, &used, a("fd12:3456::2")).is_err());
        assert!(request6("n", subnet, gw, &used, gw).is_err());
        assert!(request6("n", subnet, gw, &used, a("fd12:3456::")).is_err());
        assert!(request6("n", subnet, gw, &used, a("fd12:3457::5")).is_err());
        assert!(request6("n", subnet, gw, &used, a("fd12:3456::abcd")).is_ok());
    }

    #[test]
    fn docker_mac() {
        assert_eq!(
            mac_for(Ipv4Addr::new(172, 17, 0, 2)),
            [0x02, 0x42, 172, 17, 0, 2]
        );
    }
}
