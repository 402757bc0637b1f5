//! Blob downloads as a verified stream that survives dropped connections:
//! retries with backoff and resumes with `Range: bytes=N-` (or restarts and
//! skips what it already has when the server ignores ranges).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};

use super::config::Endpoint;
use super::response::{error_from, Action, Ctx};
use super::retry::{backoff, is_transient_status, retry_after};
use super::token::pull_scope;
use super::Client;
use crate::digest::{Digest, DigestVerifier};
use crate::error::{Error, Result};
use crate::reference::Reference;

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A blob's bytes in order. Ends cleanly only when the size and digest
/// matched; otherwise its last item is the error.
pub struct BlobStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
}

impl Stream for BlobStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobStream")
    }
}

struct State {
    client: Client,
    endpoints: Vec<Endpoint>,
    endpoint: usize,
    repository: String,
    ctx: Ctx,
    digest: Digest,
    size: Option<u64>,
    verifier: DigestVerifier,
    body: Option<Body>,
    /// Bytes to drop from the front of a restarted (200) response.
    skip: u64,
    failures: u32,
    done: bool,
}

/// Why opening or reading failed, and whether to try again.
struct Failure {
    error: Error,
    retry: bool,
    after: Option<Duration>,
}

impl State {
    fn ep(&self) -> &Endpoint {
        &self.endpoints[self.endpoint]
    }

    async fn open(&mut self) -> std::result::Result<(), Failure> {
        let offset = self.verifier.len();
        let url_path = format!("/v2/{}/blobs/{}", self.repository, self.digest);
        let scopes = [pull_scope(&self.repository)];
        let build = move |c: &reqwest::Client, base: &str| {
            let rb = c.get(format!("{base}{url_path}"));
            if offset > 0 {
                rb.header(reqwest::header::RANGE, format!("bytes={offset}-"))
            } else {
                rb
            }
        };
        let ep = self.ep().clone();
        let resp = self
            .client
            .request(&ep, &scopes, &build)
            .await
            .map_err(|error| Failure {
                retry: error.is_transient(),
                error,
                after: None,
            })?;
        let status = resp.status();
        if status == reqwest::StatusCode::PARTIAL_CONTENT && offset > 0 {
            let start = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_start);
            if start != Some(offset) {
                return Err(Failure {
                    error: Error::Protocol {
                        registry: ep.host.clone(),
                        detail: format!(
                            "asked for bytes from {offset} of {}, got Content-Range {start:?}",
                            self.digest
                        ),
                    },
                    retry: false,
                    after: None,
                });
            }
            self.skip = 0;
        } else if status == reqwest::StatusCode::OK
            || status == reqwest::StatusCode::PARTIAL_CONTENT
        {
            // A 200 to a ranged request starts over: drop what we have.
            self.skip = offset;
        } else {
            let after = retry_after(resp.headers());
            let retry = is_transient_status(status);
            let error = error_from(resp, &self.ctx).await;
            return Err(Failure {
                error,
                retry,
                after,
            });
        }
        self.body = Some(Box::pin(resp.bytes_stream()));
        Ok(())
    }

    /// Sleeps before the next attempt, or gives up with the error.
    async fn retry_or_fail(&mut self, f: Failure) -> Option<Error> {
        // A mirror that fails before sending anything is skipped for the next
        // endpoint, as docker does; once bytes arrived we stay with it.
        if self.ep().is_mirror
            && self.verifier.is_empty()
            && self.endpoint + 1 < self.endpoints.len()
        {
            tracing::debug!(mirror = %self.ep().host, error = %f.error, "mirror failed, trying next endpoint");
            self.endpoint += 1;
            return None;
        }
        let config = &self.client.inner.config;
        if !f.retry || self.failures >= config.max_retries {
            return Some(f.error);
        }
        let delay = f.after.unwrap_or_else(|| backoff(config, self.failures));
        tracing::debug!(digest = %self.digest, received = self.verifier.len(), error = %f.error, ?delay, "blob download interrupted; retrying");
        self.failures += 1;
        tokio::time::sleep(delay).await;
        None
    }

    async fn next_item(&mut self) -> Option<Result<Bytes>> {
        loop {
            if self.body.is_none() {
                if let Err(f) = self.open().await {
                    match self.retry_or_fail(f).await {
                        Some(e) => return Some(Err(e)),
                        None => continue,
                    }
                }
            }
            let body = self.body.as_mut()?;
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    if self.skip > 0 {
                        let n = (self.skip as usize).min(chunk.len());
                        let _ = chunk.split_to(n);
                        self.skip -= n as u64;
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    if let Some(size) = self.size {
                        let total = self.verifier.len() + chunk.len() as u64;
                        if total > size {
                            return Some(Err(Error::SizeMismatch {
                                digest: self.digest.to_string(),
                                expected: size,
                                actual: total,
                            }));
                        }
                    }
                    self.verifier.update(&chunk);
                    // Progress was made: a later drop gets a full retry budget.
                    self.failures = 0;
                    return Some(Ok(chunk));
                }
                Some(Err(e)) => {
                    self.body = None;
                    let ep = self.ep().host.clone();
                    let error =
                        super::transport::Transport::map_error(&self.client.inner.config, &ep, &e);
                    let f = Failure {
                        error,
                        retry: true,
                        after: None,
                    };
                    if let Some(e) = self.retry_or_fail(f).await {
                        return Some(Err(e));
                    }
                }
                None => {
                    self.body = None;
                    let received = self.verifier.len();
                    if let Some(size) = self.size.filter(|s| received < *s) {
                        // The connection ended early without an error: resume.
                        let f = Failure {
                            error: Error::SizeMismatch {
                                digest: self.digest.to_string(),
                                expected: size,
                                actual: received,
                            },
                            retry: true,
                            after: None,
                        };
                        if let Some(e) = self.retry_or_fail(f).await {
                            return Some(Err(e));
                        }
                        continue;
                    }
                    let verifier = std::mem::take(&mut self.verifier);
                    return match verifier.verify(&self.digest, self.size) {
                        Ok(()) => None,
                        Err(e) => Some(Err(e)),
                    };
                }
            }
        }
    }
}

/// `bytes 100-199/200` -> 100.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

impl Client {
    /// Streams a blob, verifying its size (when given) and digest. Pulls from
    /// docker.io go to the configured mirrors first.
    pub async fn fetch_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<BlobStream> {
        let mut state = State {
            client: self.clone(),
            endpoints: self.inner.config.pull_endpoints(&r.registry),
            endpoint: 0,
            repository: r.repository.clone(),
            ctx: Ctx {
                action: Action::Pull,
                registry: r.registry.clone(),
                repository: r.familiar_name(),
                what: format!("blob {digest} in {}", r.name()),
            },
            digest: digest.clone(),
            size,
            verifier: DigestVerifier::new(),
            body: None,
            skip: 0,
            failures: 0,
            done: false,
        };
        // Open eagerly so a missing blob or refused access shows up here,
        // before the caller starts writing anything.
        loop {
            match state.open().await {
                Ok(()) => break,
                Err(f) => {
                    if let Some(e) = state.retry_or_fail(f).await {
                        return Err(e);
                    }
                }
            }
        }
        let inner = futures_util::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            match st.next_item().await {
                Some(Ok(b)) => Some((Ok(b), st)),
                Some(Err(e)) => {
                    st.done = true;
                    st.body = None;
                    Some((Err(e), st))
                }
                None => None,
            }
        });
        Ok(BlobStream {
            inner: Box::pin(inner),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("items 1-2/3"), None);
        assert_eq!(content_range_start("bytes x-1/2"), None);
    }
}
