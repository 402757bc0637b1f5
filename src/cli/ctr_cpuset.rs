//! docker's checks of `--cpuset-cpus` and `--cpus` against the CPUs this
//! machine has, with its texts (the kernel would only say ERANGE).

use std::collections::BTreeSet;

use anyhow::{bail, Result};

/// "0-2,4" -> {0,1,2,4}; None when malformed.
fn parse_list(s: &str) -> Option<BTreeSet<u32>> {
    let mut set = BTreeSet::new();
    for part in s.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b || b - a > 1 << 16 {
                    return None;
                }
                set.extend(a..=b);
            }
            None => {
                set.insert(part.parse().ok()?);
            }
        }
    }
    Some(set)
}

fn online() -> Option<String> {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn check(cpuset: &str, nano_cpus: i64) -> Result<()> {
    let avail_text = online();
    let avail = avail_text.as_deref().and_then(parse_list);
    if !cpuset.is_empty() {
        let Some(want) = parse_list(cpuset) else {
            bail!("Error response from daemon: Invalid value {cpuset} for cpuset cpus");
        };
        if let (Some(avail), Some(text)) = (&avail, &avail_text) {
            if !want.is_subset(avail) {
                bail!("Error response from daemon: Requested CPUs are not available - requested {cpuset}, available: {text}");
            }
        }
    }
    if let Some(n) = avail.map(|a| a.len() as i64) {
        if nano_cpus > n * 1_000_000_000 {
            bail!("Error response from daemon: Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_limits() {
        assert_eq!(parse_list("0-2,4").unwrap().len(), 4);
        assert!(parse_list("1-x").is_none());
        assert!(parse_list("3-1").is_none());
        assert!(check("0", 0).is_ok());
        assert!(check("a", 0)
            .unwrap_err()
            .to_string()
            .ends_with("Invalid value a for cpuset cpus"));
        assert!(check("9999", 0)
            .unwrap_err()
            .to_string()
            .contains("Requested CPUs are not available - requested 9999, available: "));
        assert!(check("", 100_000 * 1_000_000_000)
            .unwrap_err()
            .to_string()
            .contains("CPUs available"));
    }
}
