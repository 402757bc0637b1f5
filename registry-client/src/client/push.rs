//! Pushing: blob existence checks, cross-repository mounts, monolithic and
//! chunked uploads, manifest PUT.

use std::path::Path;

use bytes::Bytes;
use tokio::io::AsyncReadExt as _;

use super::config::Endpoint;
use super::response::{error_from, Action, Ctx};
use super::retry::backoff;
use super::token::{pull_scope, push_scope};
use super::Client;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;

const OCTET_STREAM: &str = "application/octet-stream";
const MAX_CHUNK_SIZE: u64 = 256 * 1024 * 1024;

fn push_ctx(r: &Reference, what: String) -> Ctx {
    Ctx {
        action: Action::Push,
        registry: r.registry.clone(),
        repository: r.familiar_name(),
        what,
    }
}

/// The upload URL from a Location header, absolute (it may be relative).
fn location(resp: &reqwest::Response, registry: &str) -> Result<reqwest::Url> {
    let loc = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Protocol {
            registry: registry.to_string(),
            detail: format!("upload answer {} has no Location header", resp.status()),
        })?;
    resp.url().join(loc).map_err(|e| Error::Protocol {
        registry: registry.to_string(),
        detail: format!("invalid upload Location {loc:?}: {e}"),
    })
}

fn check_digest_header(resp: &reqwest::Response, expected: &Digest) -> Result<()> {
    if let Some(got) = resp
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok())
    {
        if &got != expected {
            return Err(Error::DigestMismatch {
                expected: expected.to_string(),
                actual: got.to_string(),
            });
        }
    }
    Ok(())
}

async fn read_chunk(file: &mut tokio::fs::File, path: &Path, max: u64) -> Result<Bytes> {
    let mut buf = Vec::with_capacity(max as usize);
    let mut limited = file.take(max);
    limited
        .read_to_end(&mut buf)
        .await
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(Bytes::from(buf))
}

impl Client {
    /// The blob's size if the repository has it, None if not.
    pub async fn blob_exists(&self, r: &Reference, digest: &Digest) -> Result<Option<u64>> {
        let ep = Endpoint::registry(&r.registry);
        let path = format!("/v2/{}/blobs/{digest}", r.repository);
        let build = move |c: &reqwest::Client, base: &str| c.head(format!("{base}{path}"));
        let resp = self
            .request_retry(&ep, &[pull_scope(&r.repository)], &build)
            .await?;
        match resp.status().as_u16() {
            200 => Ok(Some(
                resp.headers()
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => {
                Err(error_from(resp, &push_ctx(r, format!("blob {digest} in {}", r.name()))).await)
            }
        }
    }

    /// Asks the registry to link a blob from another repository on the same
    /// registry. True when mounted; false when the registry wants an upload.
    pub async fn mount_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        from_repository: &str,
    ) -> Result<bool> {
        let ep = Endpoint::registry(&r.registry);
        let path = format!("/v2/{}/blobs/uploads/", r.repository);
        let (d, from) = (digest.to_string(), from_repository.to_string());
        let build = move |c: &reqwest::Client, base: &str| {
            c.post(format!("{base}{path}"))
                .query(&[("mount", d.as_str()), ("from", from.as_str())])
                .header(reqwest::header::CONTENT_LENGTH, "0")
        };
        let scopes = [push_scope(&r.repository), pull_scope(from_repository)];
        let resp = self.request(&ep, &scopes, &build).await?;
        match resp.status().as_u16() {
            201 => Ok(true),
            202 => {
                // The registry opened an upload instead; cancel it so it does
                // not linger until the registry's purge.
                if let Ok(url) = location(&resp, &ep.host) {
                    let build = move |c: &reqwest::Client, _: &str| c.delete(url.clone());
                    let _ = self.request(&ep, &scopes, &build).await;
                }
                Ok(false)
            }
            _ => Err(error_from(resp, &push_ctx(r, format!("repository {}", r.name()))).await),
        }
    }

    /// Uploads the file at `path` as blob `digest` (which must have `size`
    /// bytes): one PUT up to the chunk size, PATCH chunks beyond it.
    /// Transient failures restart the upload with a new session.
    pub async fn push_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        path: &Path,
    ) -> Result<()> {
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| Error::io("reading", path, e))?;
        if meta.len() != size {
            return Err(Error::SizeMismatch {
                digest: digest.to_string(),
                expected: size,
                actual: meta.len(),
            });
        }
        let config = &self.inner.config;
        let mut attempt = 0;
        loop {
            match self.push_blob_once(r, digest, size, path).await {
                Err(e) if e.is_transient() && attempt < config.max_retries => {
                    tracing::debug!(%digest, error = %e, "blob upload failed; starting over");
                    tokio::time::sleep(backoff(config, attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn push_blob_once(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        path: &Path,
    ) -> Result<()> {
        let ep = Endpoint::registry(&r.registry);
        let scopes = [push_scope(&r.repository)];
        let ctx = push_ctx(r, format!("repository {}", r.name()));
        let start = format!("/v2/{}/blobs/uploads/", r.repository);
        let build = move |c: &reqwest::Client, base: &str| {
            c.post(format!("{base}{start}"))
                .header(reqwest::header::CONTENT_LENGTH, "0")
        };
        let resp = self.request(&ep, &scopes, &build).await?;
        if resp.status().as_u16() != 202 {
            return Err(error_from(resp, &ctx).await);
        }
        let mut url = location(&resp, &ep.host)?;
        // Each chunk (or a whole monolithic blob) is held in memory: bound it.
        let chunk_size = self.inner.config.chunk_size.clamp(1, MAX_CHUNK_SIZE);
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::io("opening", path, e))?;

        let final_body = if size <= chunk_size {
            read_chunk(&mut file, path, size).await?
        } else {
            let mut offset = 0u64;
            while offset < size {
                let chunk = read_chunk(&mut file, path, chunk_size.min(size - offset)).await?;
                if chunk.is_empty() {
                    return Err(Error::SizeMismatch {
                        digest: digest.to_string(),
                        expected: size,
                        actual: offset,
                    });
                }
                let end = offset + chunk.len() as u64 - 1;
                let (u, body) = (url.clone(), chunk.clone());
                let build = move |c: &reqwest::Client, _: &str| {
                    c.patch(u.clone())
                        .header(reqwest::header::CONTENT_TYPE, OCTET_STREAM)
                        .header(reqwest::header::CONTENT_RANGE, format!("{offset}-{end}"))
                        .body(body.clone())
                };
                let resp = self.request(&ep, &scopes, &build).await?;
                if resp.status().as_u16() != 202 {
                    return Err(error_from(resp, &ctx).await);
                }
                url = location(&resp, &ep.host)?;
                offset += chunk.len() as u64;
            }
            Bytes::new()
        };
        if final_body.len() as u64 != size && size <= chunk_size {
            return Err(Error::SizeMismatch {
                digest: digest.to_string(),
                expected: size,
                actual: final_body.len() as u64,
            });
        }
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let build = move |c: &reqwest::Client, _: &str| {
            c.put(url.clone())
                .header(reqwest::header::CONTENT_TYPE, OCTET_STREAM)
                .body(final_body.clone())
        };
        let resp = self.request(&ep, &scopes, &build).await?;
        if resp.status().as_u16() != 201 {
            return Err(error_from(resp, &ctx).await);
        }
        check_digest_header(&resp, digest)
    }

    /// Uploads a manifest under the reference's digest (if set) or tag and
    /// returns its digest.
    pub async fn put_manifest(
        &self,
        r: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let digest = Digest::sha256_of(&bytes);
        if let Some(want) = &r.digest {
            if want != &digest {
                return Err(Error::DigestMismatch {
                    expected: want.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let target = match &r.digest {
            Some(d) => d.to_string(),
            None => r.tag_or_latest().to_string(),
        };
        let ep = Endpoint::registry(&r.registry);
        let path = format!("/v2/{}/manifests/{target}", r.repository);
        let media_type = media_type.to_string();
        let build = move |c: &reqwest::Client, base: &str| {
            c.put(format!("{base}{path}"))
                .header(reqwest::header::CONTENT_TYPE, media_type.clone())
                .body(bytes.clone())
        };
        let resp = self
            .request_retry(&ep, &[push_scope(&r.repository)], &build)
            .await?;
        if !resp.status().is_success() {
            return Err(error_from(resp, &push_ctx(r, format!("repository {}", r.name()))).await);
        }
        check_digest_header(&resp, &digest)?;
        Ok(digest)
    }
}
