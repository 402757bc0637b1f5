//! Address allocation inside one network's subnet. The caller holds the
//! network's lock; this module is pure logic over the set of leased addresses.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

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
    fn docker_mac() {
        assert_eq!(
            mac_for(Ipv4Addr::new(172, 17, 0, 2)),
            [0x02, 0x42, 172, 17, 0, 2]
        );
    }
}
