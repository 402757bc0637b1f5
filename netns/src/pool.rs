//! Automatic subnet choice: docker's default pools, minus every network the
//! host already uses and every other berth network.

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// Docker's defaults: 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/20
/// … 192.168.240.0/20.
pub fn default_pools() -> Vec<Ipv4Net> {
    let mut v: Vec<Ipv4Net> = (17..=31)
        .filter_map(|b| Ipv4Net::new([172, b, 0, 0].into(), 16).ok())
        .collect();
    v.extend((0..16).filter_map(|i| Ipv4Net::new([192, 168, i * 16, 0].into(), 20).ok()));
    v
}

/// Networks no berth subnet may ever overlap (this project's lab networks).
pub fn reserved() -> Vec<Ipv4Net> {
    ["192.0.2.0/24", "10.255.255.0/24"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// First pool that overlaps nothing in `taken`.
pub fn choose(pools: &[Ipv4Net], taken: &[Ipv4Net]) -> Result<Ipv4Net> {
    pools
        .iter()
        .find(|p| {
            !taken
                .iter()
                .chain(reserved().iter())
                .any(|t| overlaps(p, t))
        })
        .copied()
        .ok_or(Error::PoolExhausted)
}

/// Refuses an explicit `--subnet` that overlaps a taken one.
pub fn check_free(subnet: &Ipv4Net, taken: &[Ipv4Net]) -> Result<()> {
    match taken
        .iter()
        .chain(reserved().iter())
        .find(|t| overlaps(subnet, t))
    {
        Some(t) => Err(Error::SubnetOverlap {
            subnet: subnet.to_string(),
            other: t.to_string(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_taken_and_reserved() {
        let pools = default_pools();
        assert_eq!(pools[0].to_string(), "172.17.0.0/16");
        assert_eq!(pools[15].to_string(), "192.168.0.0/20");
        let taken: Vec<Ipv4Net> = vec![
            "172.17.0.1/32".parse().unwrap(),
            "172.16.0.0/12".parse().unwrap(),
        ];
        assert_eq!(
            choose(&pools, &taken).unwrap().to_string(),
            "192.168.0.0/20"
        );
        let p: Vec<Ipv4Net> = vec![
            "192.0.2.0/25".parse().unwrap(),
            "10.123.7.0/24".parse().unwrap(),
        ];
        assert_eq!(choose(&p, &[]).unwrap().to_string(), "10.123.7.0/24");
        assert!(check_free(&"10.255.0.0/16".parse().unwrap(), &[]).is_err());
    }
}
