//! Client configuration and the policies derived from it: which hosts may
//! use plain HTTP, where docker.io pulls go first (mirrors).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::CredentialSource;

/// Default size of the pieces of a chunked blob upload (and the largest
/// blob pushed with a single PUT).
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * 1024 * 1024;

/// How the client reaches registries.
#[derive(Clone)]
pub struct ClientConfig {
    /// `host[:port]` (or CIDR like `10.0.0.0/8`) that may be used over plain
    /// HTTP (and over https without certificate checks).
    pub insecure_registries: Vec<String>,
    /// Treat loopback registries as insecure, as docker always does. Off, a
    /// loopback registry gets the same TLS verification as any other.
    pub loopback_insecure: bool,
    /// Pull-through mirrors for docker.io (`https://mirror.example`,
    /// `mirror:5000`), tried in order before docker.io itself.
    pub mirrors: Vec<String>,
    /// Directories laid out like `/etc/docker/certs.d`: `<host[:port]>/ca.crt`
    /// and `*.crt` are extra roots, `*.cert` + `*.key` a client certificate.
    pub certs_dirs: Vec<PathBuf>,
    pub credentials: Option<Arc<dyn CredentialSource>>,
    pub user_agent: String,
    /// Retries of one request after a transient failure (connection drop,
    /// 5xx, 429).
    pub max_retries: u32,
    /// Chunk size for blob uploads; blobs up to this size use one PUT.
    pub chunk_size: u64,
    /// First retry delay; doubles per attempt (with jitter), capped at 30 s.
    pub retry_base_delay: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure_registries: Vec::new(),
            loopback_insecure: true,
            mirrors: Vec::new(),
            certs_dirs: vec![
                PathBuf::from("/etc/docker/certs.d"),
                PathBuf::from("/etc/containers/certs.d"),
            ],
            credentials: None,
            user_agent: format!("berth/{}", env!("CARGO_PKG_VERSION")),
            max_retries: 5,
            chunk_size: DEFAULT_CHUNK_SIZE,
            retry_base_delay: Duration::from_millis(250),
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("insecure_registries", &self.insecure_registries)
            .field("loopback_insecure", &self.loopback_insecure)
            .field("mirrors", &self.mirrors)
            .field("certs_dirs", &self.certs_dirs)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<source>"),
            )
            .field("user_agent", &self.user_agent)
            .field("max_retries", &self.max_retries)
            .field("chunk_size", &self.chunk_size)
            .finish()
    }
}

/// Splits `host[:port]` (with `[v6]` brackets) into the host part.
pub(crate) fn host_part(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    }
}

pub(crate) fn is_loopback(host_port: &str) -> bool {
    let host = host_part(host_port);
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl ClientConfig {
    /// Whether `host_port` may be spoken to over plain HTTP.
    pub fn allows_plain_http(&self, host_port: &str) -> bool {
        if self.loopback_insecure && is_loopback(host_port) {
            return true;
        }
        let host = host_part(host_port);
        self.insecure_registries.iter().any(|entry| {
            let entry = entry
                .trim()
                .trim_start_matches("http://")
                .trim_start_matches("https://");
            let entry = entry.trim_end_matches('/');
            if entry.contains('/') {
                host.parse::<IpAddr>().is_ok_and(|ip| in_cidr(ip, entry))
            } else {
                entry.eq_ignore_ascii_case(host_port)
                    || (!entry.contains(':') && entry.eq_ignore_ascii_case(host))
            }
        })
    }
}

/// One place to send requests for a registry: the registry itself or a mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host[:port]` of the API.
    pub host: String,
    /// Scheme forced by a mirror URL; None means "decide by policy".
    pub scheme: Option<String>,
    /// Name to look credentials up under (`docker.io`, `localhost:5000`).
    pub cred_name: String,
    pub is_mirror: bool,
}

impl Endpoint {
    pub fn registry(registry: &str) -> Endpoint {
        Endpoint {
            host: crate::reference::api_host(registry),
            scheme: None,
            cred_name: registry.to_string(),
            is_mirror: false,
        }
    }

    fn mirror(spec: &str) -> Option<Endpoint> {
        let spec = spec.trim();
        let (scheme, rest) = match spec.split_once("://") {
            Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
            None => (None, spec),
        };
        let host = rest.split('/').next().unwrap_or("").to_string();
        if host.is_empty()
            || scheme
                .as_deref()
                .is_some_and(|s| s != "http" && s != "https")
        {
            return None;
        }
        Some(Endpoint {
            cred_name: host.clone(),
            host,
            scheme,
            is_mirror: true,
        })
    }
}

impl ClientConfig {
    /// Where to pull `registry` content from, in order.
    pub(crate) fn pull_endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if registry == crate::reference::DOCKER_HUB {
            out.extend(self.mirrors.iter().filter_map(|m| Endpoint::mirror(m)));
        }
        out.push(Endpoint::registry(registry));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
            "a.localhost:1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:5000",
            "[fc00::1]:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn insecure_policy() {
        let c = ClientConfig {
            insecure_registries: vec![
                "reg.lan:5000".into(),
                "plain.lan".into(),
                "10.1.0.0/16".into(),
                "http://old.lan/".into(),
            ],
            ..Default::default()
        };
        assert!(c.allows_plain_http("localhost:5000"));
        assert!(c.allows_plain_http("reg.lan:5000"));
        assert!(!c.allows_plain_http("reg.lan:5001"));
        assert!(!c.allows_plain_http("reg.lan"));
        assert!(c.allows_plain_http("plain.lan"));
        assert!(c.allows_plain_http("plain.lan:8080"));
        assert!(c.allows_plain_http("10.1.2.3:5000"));
        assert!(!c.allows_plain_http("10.2.0.1:5000"));
        assert!(c.allows_plain_http("old.lan"));
        assert!(!c.allows_plain_http("docker.io"));
    }

    #[test]
    fn mirrors_only_for_docker_hub() {
        let c = ClientConfig {
            mirrors: vec![
                "https://mirror.example/".into(),
                "localhost:5001".into(),
                "ftp://bad".into(),
            ],
            ..Default::default()
        };
        let eps = c.pull_endpoints("docker.io");
        assert_eq!(eps.len(), 3);
        assert_eq!(eps[0].host, "mirror.example");
        assert_eq!(eps[0].scheme.as_deref(), Some("https"));
        assert_eq!(eps[1].host, "localhost:5001");
        assert_eq!(eps[1].scheme, None);
        assert_eq!(eps[2].host, "registry-1.docker.io");
        assert_eq!(eps[2].cred_name, "docker.io");
        assert_eq!(c.pull_endpoints("ghcr.io").len(), 1);
    }
}
