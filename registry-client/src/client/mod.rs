//! The registry HTTP client: manifests, blobs, tags, push and login checks,
//! over one shared connection pool per host with cached auth.

mod blob;
mod config;
mod push;
mod response;
mod retry;
mod token;
mod transport;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;

pub use blob::BlobStream;
pub use config::{ClientConfig, DEFAULT_CHUNK_SIZE};

use config::Endpoint;
use response::{error_from, Action, Ctx};
use retry::{backoff, is_transient_status, retry_after};
use token::{pull_scope, AuthCache};
use transport::Transport;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{self, Manifest};
use crate::reference::{normalize_registry, Reference};

/// A registry client. Cloning is cheap; clones share connections and tokens.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    transport: Transport,
    auth: AuthCache,
}

/// A manifest as fetched: its exact bytes (which its digest covers), media
/// type and verified digest.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl FetchedManifest {
    pub fn parse(&self) -> Result<Manifest> {
        Manifest::parse(&self.bytes, &self.media_type)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Client {
    pub fn new(config: ClientConfig) -> Client {
        Client {
            inner: Arc::new(Inner {
                config,
                transport: Transport::new(),
                auth: AuthCache::default(),
            }),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// `request` with retries of transient failures (idempotent requests only).
    pub(crate) async fn request_retry(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        build: &(dyn Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder + Send + Sync),
    ) -> Result<reqwest::Response> {
        let config = &self.inner.config;
        let mut attempt = 0;
        loop {
            match self.request(ep, scopes, build).await {
                Ok(resp) if is_transient_status(resp.status()) && attempt < config.max_retries => {
                    let delay =
                        retry_after(resp.headers()).unwrap_or_else(|| backoff(config, attempt));
                    tracing::debug!(host = %ep.host, status = %resp.status(), ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) if e.is_transient() && attempt < config.max_retries => {
                    let delay = backoff(config, attempt);
                    tracing::debug!(host = %ep.host, error = %e, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
            attempt += 1;
        }
    }

    /// Fetches the manifest by digest if the reference has one, else by tag.
    /// The digest is always computed from the bytes and checked against the
    /// requested digest and the registry's `Docker-Content-Digest`.
    pub async fn fetch_manifest(&self, r: &Reference) -> Result<FetchedManifest> {
        let endpoints = self.inner.config.pull_endpoints(&r.registry);
        let mut last = None;
        for ep in &endpoints {
            match self.fetch_manifest_from(ep, r).await {
                Ok(m) => return Ok(m),
                Err(e) if ep.is_mirror => {
                    tracing::debug!(mirror = %ep.host, error = %e, "mirror failed; trying next endpoint");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::NotFound {
            what: format!("manifest for {r}"),
        }))
    }

    async fn fetch_manifest_from(&self, ep: &Endpoint, r: &Reference) -> Result<FetchedManifest> {
        let target = match &r.digest {
            Some(d) => d.to_string(),
            None => r.tag_or_latest().to_string(),
        };
        let path = format!("/v2/{}/manifests/{target}", r.repository);
        let accept = manifest::ACCEPT.join(", ");
        let build = move |c: &reqwest::Client, base: &str| {
            c.get(format!("{base}{path}"))
                .header(reqwest::header::ACCEPT, accept.clone())
        };
        let resp = self
            .request_retry(ep, &[pull_scope(&r.repository)], &build)
            .await?;
        if !resp.status().is_success() {
            let ctx = Ctx {
                action: Action::Pull,
                registry: r.registry.clone(),
                repository: r.familiar_name(),
                what: format!("manifest for {r}"),
            };
            return Err(error_from(resp, &ctx).await);
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let header_digest = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_manifest_body(resp, &ep.host).await?;
        let digest = Digest::sha256_of(&bytes);
        if let Some(want) = &r.digest {
            if want != &digest {
                return Err(Error::DigestMismatch {
                    expected: want.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        // Only sha256 digests can be checked; others are ignored, as the
        // header is advisory.
        if let Some(Ok(claimed)) = header_digest.as_deref().map(str::parse::<Digest>) {
            if claimed != digest {
                return Err(Error::DigestMismatch {
                    expected: claimed.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let media_type = manifest::detect_media_type(&bytes, &content_type)
            .unwrap_or_else(|_| manifest::essence(&content_type));
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// All tags of the repository, following `Link` pagination.
    pub async fn list_tags(&self, r: &Reference) -> Result<Vec<String>> {
        self.list_tags_paged(r, None).await
    }

    /// `list_tags` asking for pages of `page_size` tags (`?n=`).
    pub async fn list_tags_paged(
        &self,
        r: &Reference,
        page_size: Option<u32>,
    ) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let ep = Endpoint::registry(&r.registry);
        let scopes = [pull_scope(&r.repository)];
        let base = self.inner.transport.base_url(&self.inner.config, &ep);
        let first = match page_size {
            Some(n) => format!("/v2/{}/tags/list?n={n}", r.repository),
            None => format!("/v2/{}/tags/list", r.repository),
        };
        let mut next: Option<String> = Some(first);
        let mut tags = Vec::new();
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(Error::Protocol {
                    registry: r.registry.clone(),
                    detail: "tag list pagination does not end".into(),
                });
            }
            let p = path.clone();
            let build = move |c: &reqwest::Client, base: &str| {
                if p.starts_with("http://") || p.starts_with("https://") {
                    c.get(p.clone())
                } else {
                    c.get(format!("{base}{p}"))
                }
            };
            let resp = self.request_retry(&ep, &scopes, &build).await?;
            if !resp.status().is_success() {
                let ctx = Ctx {
                    action: Action::Pull,
                    registry: r.registry.clone(),
                    repository: r.familiar_name(),
                    what: format!("repository {}", r.name()),
                };
                return Err(error_from(resp, &ctx).await);
            }
            next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .map(|l| match resp.url().join(&l) {
                    Ok(u) => u.to_string(),
                    Err(_) => format!("{base}{l}"),
                });
            let body = response::read_limited(resp, 16 * 1024 * 1024).await;
            let page: TagList = serde_json::from_slice(&body).map_err(|source| Error::Json {
                what: format!("tag list of {}", r.name()),
                source,
            })?;
            tags.extend(page.tags.unwrap_or_default());
        }
        Ok(tags)
    }

    /// Checks credentials against `GET /v2/` of a registry, completing the
    /// token flow; what `docker login` does before storing them.
    pub async fn check_login(&self, registry: &str) -> Result<()> {
        let registry = normalize_registry(registry);
        let ep = Endpoint::registry(&registry);
        let build = |c: &reqwest::Client, base: &str| c.get(format!("{base}/v2/"));
        let resp = self.request_retry(&ep, &[], &build).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        let ctx = Ctx {
            action: Action::Login,
            registry: registry.clone(),
            repository: String::new(),
            what: format!("registry API at {}", ep.host),
        };
        Err(error_from(resp, &ctx).await)
    }
}

/// The target of `rel="next"` in a Link header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

async fn read_manifest_body(resp: reqwest::Response, registry: &str) -> Result<Bytes> {
    let too_big = || Error::Protocol {
        registry: registry.to_string(),
        detail: format!("manifest larger than {} bytes", manifest::MAX_MANIFEST_SIZE),
    };
    if resp
        .content_length()
        .is_some_and(|n| n > manifest::MAX_MANIFEST_SIZE as u64)
    {
        return Err(too_big());
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Transport {
            registry: registry.to_string(),
            detail: format!("reading manifest: {e}"),
        })?;
        if out.len() + chunk.len() > manifest::MAX_MANIFEST_SIZE {
            return Err(too_big());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header() {
        assert_eq!(
            next_link(r#"</v2/x/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/x/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<https://a/prev>; rel="prev", <https://a/next>; rel=next"#).as_deref(),
            Some("https://a/next")
        );
        assert_eq!(next_link("garbage"), None);
        assert_eq!(next_link(r#"<x>; rel="prev""#), None);
    }
}
