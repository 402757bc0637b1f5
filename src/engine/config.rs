//! berth's engine settings, spelled as docker's `daemon.json` spells them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

const DEFAULT_CONFIG: &str = "/etc/berth/config.json";

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BerthConfig {
    /// Registries reached over plain HTTP or with unverified TLS.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Mirrors tried first for docker.io.
    #[serde(default)]
    pub registry_mirrors: Vec<String>,
    /// Device name of the default `bridge` network (docker's `docker0`);
    /// berth creates it on first use. Default `berth0`.
    #[serde(default)]
    pub bridge: Option<String>,
    /// Gateway address and prefix of the default bridge (`"10.78.3.1/24"`);
    /// default: the first free default pool, as docker picks 172.17.0.0/16.
    #[serde(default)]
    pub bip: Option<String>,
    /// Pools for networks created without `--subnet` (docker's
    /// `[{"base": "172.80.0.0/16", "size": 24}]`). IPv6 bases
    /// (`{"base": "fd12:3456::/48", "size": 64}`) are the pools of
    /// `--ipv6` networks without an IPv6 `--subnet` (docker >= 27).
    #[serde(default)]
    pub default_address_pools: Vec<AddressPool>,
    /// docker's `ipv6`: the default `bridge` network is dual-stack.
    #[serde(default)]
    pub ipv6: bool,
    /// docker's `fixed-cidr-v6`: the default bridge's IPv6 subnet (with
    /// `ipv6`); default: one from the v6 pools.
    #[serde(default)]
    pub fixed_cidr_v6: Option<String>,
    /// The nftables table (family inet) that holds every berth rule.
    #[serde(default)]
    pub nft_table: Option<String>,
    /// Upstream DNS servers for the name resolver of user-defined networks
    /// (docker's `"dns": ["10.0.0.2"]`); default: the host's resolv.conf.
    #[serde(default)]
    pub dns: Vec<std::net::IpAddr>,
    /// How the host's own connections reach published TCP ports: `"auto"`
    /// (default) redirects them at the socket with eBPF programs on the
    /// cgroup v2 root, falling back to DNAT where that is not possible;
    /// `"off"` is DNAT only; an absolute path attaches the programs to that
    /// cgroup v2 directory, for the processes below it only.
    #[serde(default)]
    pub port_redirect: Option<String>,
}

/// One entry of `default-address-pools`.
#[derive(Debug, Clone, Deserialize)]
pub struct AddressPool {
    pub base: String,
    pub size: u8,
}

impl BerthConfig {
    /// `$BERTH_CONFIG`, else `/etc/berth/config.json`; a missing default file
    /// is an empty config, a missing explicit one is an error.
    pub fn load() -> Result<BerthConfig> {
        match std::env::var_os("BERTH_CONFIG").filter(|v| !v.is_empty()) {
            Some(p) => Self::load_from(Path::new(&p)),
            None => match std::fs::metadata(DEFAULT_CONFIG) {
                Ok(_) => Self::load_from(Path::new(DEFAULT_CONFIG)),
                Err(_) => Ok(BerthConfig::default()),
            },
        }
    }

    pub fn load_from(path: &Path) -> Result<BerthConfig> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read berth config {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "invalid berth config {}: expected JSON with \"insecure-registries\" and \"registry-mirrors\"",
                path.display()
            )
        })
    }

    /// Directories with per-registry CA certificates, first match wins:
    /// `$BERTH_CERTS_D`, `/etc/berth/certs.d`, `/etc/docker/certs.d`.
    pub fn certs_dirs() -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(d) = std::env::var_os("BERTH_CERTS_D").filter(|v| !v.is_empty()) {
            dirs.push(PathBuf::from(d));
        }
        dirs.push(PathBuf::from("/etc/berth/certs.d"));
        dirs.push(PathBuf::from("/etc/docker/certs.d"));
        dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_daemon_json_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(
            &p,
            r#"{"insecure-registries":["localhost:5000"],"registry-mirrors":["https://m.example"],"other":1}"#,
        )
        .unwrap();
        let c = BerthConfig::load_from(&p).unwrap();
        assert_eq!(c.insecure_registries, vec!["localhost:5000"]);
        assert_eq!(c.registry_mirrors, vec!["https://m.example"]);
        assert!(BerthConfig::load_from(&dir.path().join("none")).is_err());
    }
}
