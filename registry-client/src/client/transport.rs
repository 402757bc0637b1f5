//! One `reqwest::Client` per registry host (each with that host's certs.d
//! roots and client certificate), scheme choice with docker's https -> http
//! fallback for insecure registries, and mapping of transport errors.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::config::{is_loopback, ClientConfig, Endpoint};
use crate::error::{Error, Result};

pub(crate) struct Transport {
    clients: Mutex<HashMap<String, reqwest::Client>>,
    schemes: Mutex<HashMap<String, &'static str>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these maps cannot leave them inconsistent
    // (single inserts), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `host[:port]` of a URL as it appears in references.
pub(crate) fn authority(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn looks_like_tls(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    [
        "certificate",
        "tls",
        "handshake",
        "unknownissuer",
        "corrupt message",
        "invalid peer",
    ]
    .iter()
    .any(|k| d.contains(k))
}

impl Transport {
    pub fn new() -> Self {
        Transport {
            clients: Mutex::new(HashMap::new()),
            schemes: Mutex::new(HashMap::new()),
        }
    }

    /// Maps a reqwest error to a TLS or transport error naming the registry.
    pub fn map_error(config: &ClientConfig, registry: &str, e: &reqwest::Error) -> Error {
        let detail = error_chain(e);
        if looks_like_tls(&detail) {
            let certs = config
                .certs_dirs
                .first()
                .map(|d| d.join(registry).join("ca.crt").display().to_string())
                .unwrap_or_else(|| format!("/etc/docker/certs.d/{registry}/ca.crt"));
            return Error::Tls {
                registry: registry.to_string(),
                detail,
                hint: format!(
                    "if {registry} uses a private CA, put it in {certs}; if it serves plain HTTP, add it to the insecure registries"
                ),
            };
        }
        Error::Transport {
            registry: registry.to_string(),
            detail,
        }
    }

    /// The HTTP client for `host` (built on first use).
    pub fn client_for(&self, config: &ClientConfig, host: &str) -> Result<reqwest::Client> {
        if let Some(c) = lock(&self.clients).get(host) {
            return Ok(c.clone());
        }
        let client = build_client(config, host)?;
        lock(&self.clients).insert(host.to_string(), client.clone());
        Ok(client)
    }

    fn schemes_for(&self, config: &ClientConfig, ep: &Endpoint) -> Vec<&'static str> {
        if let Some(s) = &ep.scheme {
            return vec![if s == "http" { "http" } else { "https" }];
        }
        if let Some(s) = lock(&self.schemes).get(&ep.host) {
            return vec![*s];
        }
        if config.allows_plain_http(&ep.host) {
            vec!["https", "http"]
        } else {
            vec!["https"]
        }
    }

    /// The base URL (`scheme://host`) this endpoint is known to answer on,
    /// or the first one to try.
    pub fn base_url(&self, config: &ClientConfig, ep: &Endpoint) -> String {
        format!("{}://{}", self.schemes_for(config, ep)[0], ep.host)
    }

    /// Sends a request built by `build` from the base URL. `authorization`
    /// is attached only when the final URL is on the endpoint's own host, so
    /// credentials never leak to another host named in a Location header.
    pub async fn send(
        &self,
        config: &ClientConfig,
        ep: &Endpoint,
        authorization: Option<&str>,
        build: &(dyn Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder + Send + Sync),
    ) -> Result<reqwest::Response> {
        let client = self.client_for(config, &ep.host)?;
        let schemes = self.schemes_for(config, ep);
        let registry = ep.host.as_str();
        let mut https_error: Option<Error> = None;
        for (i, scheme) in schemes.iter().enumerate() {
            let base = format!("{scheme}://{}", ep.host);
            let mut req = build(&client, &base)
                .build()
                .map_err(|e| Transport::map_error(config, registry, &e))?;
            if let Some(a) = authorization {
                if authority(req.url()) == ep.host {
                    if let Ok(v) = reqwest::header::HeaderValue::from_str(a) {
                        req.headers_mut().insert(reqwest::header::AUTHORIZATION, v);
                    }
                }
            }
            match client.execute(req).await {
                Ok(resp)
                    if https_error.is_some()
                        && resp.status() == reqwest::StatusCode::BAD_REQUEST =>
                {
                    // Plain HTTP to a TLS-only server: Go answers "Client sent
                    // an HTTP request to an HTTPS server". The https error is
                    // the one that explains the problem.
                    let url = resp.url().to_string();
                    let body = super::response::read_limited(resp, 4096).await;
                    let text = String::from_utf8_lossy(&body).trim().to_string();
                    if text.contains("HTTPS server") {
                        return Err(https_error.take().unwrap_or_else(|| Error::Transport {
                            registry: registry.to_string(),
                            detail: text,
                        }));
                    }
                    return Err(Error::Http {
                        status: 400,
                        url,
                        body: text,
                    });
                }
                Ok(resp) => {
                    if ep.scheme.is_none() {
                        lock(&self.schemes).insert(ep.host.clone(), scheme);
                    }
                    return Ok(resp);
                }
                Err(e)
                    if i + 1 < schemes.len()
                        && (e.is_connect() || looks_like_tls(&error_chain(&e))) =>
                {
                    tracing::debug!(host = registry, error = %error_chain(&e), "https failed, trying plain http");
                    https_error = Some(Transport::map_error(config, registry, &e));
                    continue;
                }
                Err(e) => return Err(Transport::map_error(config, registry, &e)),
            }
        }
        Err(Error::Transport {
            registry: registry.to_string(),
            detail: "no usable scheme".into(),
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("reading", path, e))
}

fn tls_config_error(host: &str, detail: String) -> Error {
    Error::Tls {
        registry: host.to_string(),
        detail,
        hint: "fix or remove the files in the registry's certs.d directory".into(),
    }
}

/// Builds the client for one host, adding certs.d material for it.
fn build_client(config: &ClientConfig, host: &str) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(config.user_agent.clone())
        .connect_timeout(Duration::from_secs(30))
        // A stalled body errors out so the blob stream can resume it.
        .read_timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(90));
    if is_loopback(host) {
        b = b.no_proxy();
    }
    if config.allows_plain_http(host) {
        // docker's rule for insecure registries (loopback included): https
        // is tried without certificate verification before plain http.
        b = b.danger_accept_invalid_certs(true);
    }
    for dir in &config.certs_dirs {
        let d = dir.join(host);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut names: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        names.sort();
        for path in &names {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            match ext {
                "crt" => {
                    let certs = reqwest::Certificate::from_pem_bundle(&read(path)?)
                        .map_err(|e| tls_config_error(host, format!("{}: {e}", path.display())))?;
                    for c in certs {
                        b = b.add_root_certificate(c);
                    }
                }
                "cert" => {
                    let key = path.with_extension("key");
                    if !key.exists() {
                        return Err(tls_config_error(
                            host,
                            format!(
                                "missing key certificate for client certificate {}",
                                path.display()
                            ),
                        ));
                    }
                    let mut pem = read(path)?;
                    pem.push(b'\n');
                    pem.extend(read(&key)?);
                    let id = reqwest::Identity::from_pem(&pem)
                        .map_err(|e| tls_config_error(host, format!("{}: {e}", path.display())))?;
                    b = b.identity(id);
                }
                "key" if !path.with_extension("cert").exists() => {
                    return Err(tls_config_error(
                        host,
                        format!("missing client certificate for key {}", path.display()),
                    ));
                }
                _ => {}
            }
        }
    }
    b.build()
        .map_err(|e| tls_config_error(host, error_chain(&e)))
}
