//! Automatic subnet choice: docker's default pools, minus every network the
//! host already uses and every other berth network.

use ipnet::{Ipv4Net, Ipv6Net};

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

/// docker >= 27 without a v6 pool in its config: /64s of a ULA /48
/// whose 40-bit global id is derived from the host (docker uses its engine
/// id; berth has none, so a hash of `seed`: the machine id and state dir).
pub fn default_pools6(seed: &str) -> Vec<(Ipv6Net, u8)> {
    // FNV-1a 64: stable across versions, no extra dependency.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    let g = h.to_be_bytes();
    let mut o = [0u8; 16];
    o[0] = 0xfd;
    o[1..6].copy_from_slice(&g[..5]);
    Ipv6Net::new(o.into(), 48)
        .map(|n| vec![(n, 64)])
        .unwrap_or_default()
}

pub fn overlaps6(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Candidates looked at per pool: a /48 split into /64s has 65536; a
/// wider pool is not walked to its end.
const MAX_CANDIDATES6: usize = 1 << 16;

/// First v6 subnet of the pools that overlaps nothing in `taken`.
pub fn choose6(pools: &[(Ipv6Net, u8)], taken: &[Ipv6Net]) -> Result<Ipv6Net> {
    for (base, size) in pools {
        let Ok(subnets) = base.subnets(*size) else {
            continue;
        };
        if let Some(s) = subnets
            .take(MAX_CANDIDATES6)
            .find(|s| !taken.iter().any(|t| overlaps6(s, t)))
        {
            return Ok(s);
        }
    }
    Err(Error::PoolExhausted6)
}

/// Refuses an explicit v6 `--subnet` that overlaps a taken one.
pub fn check_free6(subnet: &Ipv6Net, taken: &[Ipv6Net]) -> Result<()> {
    match taken.iter().find(|t| overlaps6(subnet, t)) {
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
    fn default_v6_pool_is_a_ula_48_per_state_dir() {
        let mut a = crate::types::NetEnv::new("/var/lib/berth");
        let p = a.effective_pools6();
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].0.prefix_len(), p[0].1), (48, 64));
        assert_eq!(p[0].0.addr().segments()[0] >> 8, 0xfd);
        assert_ne!(crate::types::NetEnv::new("/other").effective_pools6(), p);
        a.pools6 = vec![("fdb7:1::/56".parse().unwrap(), 64)];
        assert_eq!(a.effective_pools6(), a.pools6);
    }

    #[test]
    fn v6_pools() {
        let d = default_pools6("a");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0.prefix_len(), 48);
        assert_eq!(d[0].0.addr().octets()[0], 0xfd);
        assert_eq!(default_pools6("a"), d);
        assert_ne!(default_pools6("b"), d);
        let pools = vec![("fd00::/62".parse().unwrap(), 64)];
        // the host's fd00::/64 is taken: the next /64
        let taken: Vec<Ipv6Net> = vec!["fd00::/64".parse().unwrap()];
        assert_eq!(
            choose6(&pools, &taken).unwrap().to_string(),
            "fd00:0:0:1::/64"
        );
        let all: Vec<Ipv6Net> = vec!["fd00::/60".parse().unwrap()];
        assert!(matches!(choose6(&pools, &all), Err(Error::PoolExhausted6)));
        assert!(check_free6(&"fd00::/48".parse().unwrap(), &taken).is_err());
        assert!(check_free6(&"fd01::/64".parse().unwrap(), &taken).is_ok());
    }

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
