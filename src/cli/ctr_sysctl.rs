//! docker's client-side check of `--sysctl` (cli/opts `ValidateSysctl`):
//! only keys of namespaces a container owns are accepted.

use anyhow::{bail, Result};

/// The IPC keys are the runtime's (runc's rule); docker's client adds no others.
use runtime::sysctl::IPC_KEYS as KEYS;
const PREFIXES: &[&str] = &["net.", "fs.mqueue."];

pub fn validate(items: &[String]) -> Result<()> {
    for s in items {
        let ok = match s.split_once('=') {
            Some((k, _)) => KEYS.contains(&k) || PREFIXES.iter().any(|p| k.starts_with(p)),
            None => false,
        };
        if !ok {
            bail!("invalid argument \"{s}\" for \"--sysctl\" flag: sysctl '{s}' is not allowed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dockers_allow_list() {
        let v = |s: &str| super::validate(&[s.to_string()]);
        assert!(v("net.ipv4.ip_forward=1").is_ok());
        assert!(v("kernel.shmmax=1").is_ok());
        assert!(v("fs.mqueue.msg_max=20").is_ok());
        assert!(v("kernel.hostname=x").is_err());
        assert!(v("vm.swappiness=1").is_err());
        assert!(v("net.ipv4.ip_forward").is_err());
    }
}
