//! The registry auth flow: answer a 401's `WWW-Authenticate` challenge with
//! Basic credentials or a Bearer token from the realm, cache tokens per host
//! and scope until they expire, and send them proactively afterwards.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use super::config::Endpoint;
use super::response::{read_limited, registry_message, strip_unauthorized};
use super::retry::{backoff, is_transient_status};
use super::transport::{authority, Transport};
use super::Client;
use crate::auth::{parse_www_authenticate, Challenge, Credentials};
use crate::error::{Error, Result};

/// Tokens without `expires_in` live 60 s (the distribution token spec).
const DEFAULT_TOKEN_LIFETIME: u64 = 60;
/// Renew a little early so a token does not expire in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);
const CLIENT_ID: &str = "berth";
/// Upper bound on a cached token's life, whatever the server claims.
const MAX_TOKEN_LIFETIME: u64 = 24 * 3600;

pub(crate) fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

pub(crate) fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

/// Whether a token granted for `have` also serves `want`.
fn covers(have: &[String], want: &[String]) -> bool {
    want.iter().all(|w| {
        let Some((res, actions)) = w.rsplit_once(':') else {
            return have.contains(w);
        };
        have.iter().any(|h| match h.rsplit_once(':') {
            Some((hres, hactions)) if hres == res => {
                let granted: Vec<&str> = hactions.split(',').collect();
                actions.split(',').all(|a| granted.contains(&a))
            }
            _ => false,
        })
    })
}

fn merge_scopes(ours: &[String], theirs: &[String]) -> Vec<String> {
    let mut all = ours.to_vec();
    for s in theirs {
        if !covers(&all, std::slice::from_ref(s)) {
            all.push(s.clone());
        }
    }
    all.sort();
    all.dedup();
    all
}

struct CachedToken {
    scopes: Vec<String>,
    token: String,
    expires: Instant,
}

#[derive(Default)]
pub(crate) struct AuthCache {
    challenges: Mutex<HashMap<String, Challenge>>,
    tokens: Mutex<HashMap<String, Vec<CachedToken>>>,
    creds: Mutex<HashMap<String, Option<Credentials>>>,
    fetch_lock: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AuthCache {
    fn cached_token(&self, host: &str, scopes: &[String]) -> Option<String> {
        let now = Instant::now();
        let mut tokens = lock(&self.tokens);
        let list = tokens.get_mut(host)?;
        list.retain(|t| t.expires > now);
        list.iter()
            .find(|t| covers(&t.scopes, scopes))
            .map(|t| t.token.clone())
    }

    fn store_token(&self, host: &str, scopes: Vec<String>, token: String, lifetime: Duration) {
        let expires = Instant::now()
            + lifetime
                .saturating_sub(EXPIRY_MARGIN)
                .max(Duration::from_secs(1));
        let mut tokens = lock(&self.tokens);
        let list = tokens.entry(host.to_string()).or_default();
        list.retain(|t| t.scopes != scopes);
        list.push(CachedToken {
            scopes,
            token,
            expires,
        });
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

/// Picks the challenge to answer: Bearer if offered, else Basic.
fn pick_challenge(headers: &reqwest::header::HeaderMap) -> Option<Challenge> {
    let all: Vec<Challenge> = headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_www_authenticate)
        .collect();
    all.iter()
        .find(|c| c.scheme == "bearer")
        .or_else(|| all.iter().find(|c| c.scheme == "basic"))
        .cloned()
}

fn basic_header(username: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {b64}")
}

impl Client {
    /// The credentials for an endpoint, looked up once per client. Helpers
    /// run in a blocking thread: they are external programs.
    pub(crate) async fn credentials(&self, ep: &Endpoint) -> Result<Option<Credentials>> {
        let auth = &self.inner.auth;
        if let Some(c) = lock(&auth.creds).get(&ep.cred_name) {
            return Ok(c.clone());
        }
        let Some(source) = self.inner.config.credentials.clone() else {
            return Ok(None);
        };
        let name = ep.cred_name.clone();
        let found = tokio::task::spawn_blocking(move || source.get(&name))
            .await
            .map_err(|e| Error::Helper {
                helper: "lookup".into(),
                message: format!("credential lookup for {} failed: {e}", ep.cred_name),
            })??;
        lock(&auth.creds).insert(ep.cred_name.clone(), found.clone());
        Ok(found)
    }

    /// The Authorization header value for `scopes`, answering `challenge`.
    /// `fresh` skips the token cache (after a 401 with a cached token).
    async fn authorization(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        challenge: &Challenge,
        fresh: bool,
    ) -> Result<Option<String>> {
        match challenge.scheme.as_str() {
            "basic" => Ok(match self.credentials(ep).await? {
                Some(Credentials::Basic { username, password }) => {
                    Some(basic_header(&username, &password))
                }
                _ => None,
            }),
            "bearer" => {
                let auth = &self.inner.auth;
                if !fresh {
                    if let Some(t) = auth.cached_token(&ep.host, scopes) {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                }
                // One token fetch at a time: parallel layer pulls would
                // otherwise all ask the token server for the same token.
                let _guard = auth.fetch_lock.lock().await;
                if !fresh {
                    if let Some(t) = auth.cached_token(&ep.host, scopes) {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                }
                let creds = self.credentials(ep).await?;
                let (token, lifetime) = self
                    .fetch_token(ep, challenge, scopes, creds.as_ref())
                    .await?;
                auth.store_token(&ep.host, scopes.to_vec(), token.clone(), lifetime);
                Ok(Some(format!("Bearer {token}")))
            }
            _ => Ok(None),
        }
    }

    async fn fetch_token(
        &self,
        ep: &Endpoint,
        challenge: &Challenge,
        scopes: &[String],
        creds: Option<&Credentials>,
    ) -> Result<(String, Duration)> {
        let config = &self.inner.config;
        let protocol = |detail: String| Error::Protocol {
            registry: ep.host.clone(),
            detail,
        };
        let realm = challenge
            .param("realm")
            .ok_or_else(|| protocol("Bearer challenge without realm".into()))?;
        let realm_url = reqwest::Url::parse(realm)
            .map_err(|e| protocol(format!("invalid token realm {realm:?}: {e}")))?;
        if realm_url.scheme() != "https" && realm_url.scheme() != "http" {
            return Err(protocol(format!(
                "token realm {realm:?} is not an http(s) URL"
            )));
        }
        let realm_host = authority(&realm_url);
        let http = self.inner.transport.client_for(config, &realm_host)?;
        let service = challenge.param("service").unwrap_or("");
        let mut attempt = 0;
        loop {
            let req = match creds {
                Some(Credentials::IdentityToken(refresh)) => {
                    let scope = scopes.join(" ");
                    let mut form = vec![
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh.as_str()),
                        ("client_id", CLIENT_ID),
                    ];
                    if !service.is_empty() {
                        form.push(("service", service));
                    }
                    if !scope.is_empty() {
                        form.push(("scope", scope.as_str()));
                    }
                    http.post(realm_url.clone()).form(&form)
                }
                other => {
                    let mut url = realm_url.clone();
                    {
                        let mut q = url.query_pairs_mut();
                        if !service.is_empty() {
                            q.append_pair("service", service);
                        }
                        for s in scopes {
                            q.append_pair("scope", s);
                        }
                        if let Some(Credentials::Basic { username, .. }) = other {
                            q.append_pair("account", username);
                        }
                    }
                    let rb = http.get(url);
                    match other {
                        Some(Credentials::Basic { username, password }) => {
                            rb.basic_auth(username, Some(password))
                        }
                        _ => rb,
                    }
                }
            };
            let result = req.send().await;
            let transient = match &result {
                Ok(r) => is_transient_status(r.status()),
                Err(e) => !e.is_builder(),
            };
            if transient && attempt < config.max_retries {
                tokio::time::sleep(backoff(config, attempt)).await;
                attempt += 1;
                continue;
            }
            let resp = result.map_err(|e| Transport::map_error(config, &realm_host, &e))?;
            let status = resp.status();
            let body = read_limited(resp, 1024 * 1024).await;
            if status == reqwest::StatusCode::UNAUTHORIZED
                || status == reqwest::StatusCode::FORBIDDEN
            {
                let hint = token_error_message(&body)
                    .map(|m| strip_unauthorized(&m))
                    .unwrap_or_else(|| {
                        if creds.is_some() {
                            "incorrect username or password".into()
                        } else {
                            "authentication required".into()
                        }
                    });
                return Err(Error::Unauthorized {
                    registry: ep.cred_name.clone(),
                    hint,
                });
            }
            if !status.is_success() {
                return Err(Error::Http {
                    status: status.as_u16(),
                    url: realm.to_string(),
                    body: token_error_message(&body).unwrap_or_else(|| {
                        String::from_utf8_lossy(&body[..body.len().min(512)])
                            .trim()
                            .to_string()
                    }),
                });
            }
            let parsed: TokenResponse =
                serde_json::from_slice(&body).map_err(|source| Error::Json {
                    what: format!("token response from {realm}"),
                    source,
                })?;
            let token = if parsed.token.is_empty() {
                parsed.access_token
            } else {
                parsed.token
            };
            if token.is_empty() {
                return Err(protocol(format!("token server {realm} returned no token")));
            }
            let secs = if parsed.expires_in == 0 {
                DEFAULT_TOKEN_LIFETIME
            } else {
                parsed.expires_in.max(DEFAULT_TOKEN_LIFETIME)
            };
            return Ok((token, Duration::from_secs(secs.min(MAX_TOKEN_LIFETIME))));
        }
    }

    /// Sends one request with auth: proactively with what the host asked for
    /// before, else answering its 401 challenge and resending once.
    pub(crate) async fn request(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        build: &(dyn Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder + Send + Sync),
    ) -> Result<reqwest::Response> {
        let inner = &self.inner;
        let known = lock(&inner.auth.challenges).get(&ep.host).cloned();
        let first_auth = match &known {
            Some(ch) => self.authorization(ep, scopes, ch, false).await?,
            None => None,
        };
        let resp = inner
            .transport
            .send(&inner.config, ep, first_auth.as_deref(), build)
            .await?;
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let Some(challenge) = pick_challenge(resp.headers()) else {
            return Ok(resp);
        };
        lock(&inner.auth.challenges).insert(ep.host.clone(), challenge.clone());
        let scopes = merge_scopes(scopes, &challenge.scopes());
        let Some(auth) = self.authorization(ep, &scopes, &challenge, true).await? else {
            return Ok(resp);
        };
        if challenge.scheme == "basic" && first_auth.as_deref() == Some(auth.as_str()) {
            // The same Basic credentials were just refused.
            return Ok(resp);
        }
        drop(resp);
        inner
            .transport
            .send(&inner.config, ep, Some(&auth), build)
            .await
    }
}

/// Token servers answer errors as `{"details": ...}` (docker hub) or a
/// distribution-style error list.
fn token_error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Details {
        #[serde(default)]
        details: String,
    }
    if let Ok(d) = serde_json::from_slice::<Details>(body) {
        if !d.details.is_empty() {
            return Some(d.details);
        }
    }
    registry_message(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn scope_coverage() {
        let push = s(&["repository:a:pull,push"]);
        assert!(covers(&push, &s(&["repository:a:pull"])));
        assert!(covers(&push, &s(&["repository:a:push"])));
        assert!(!covers(&s(&["repository:a:pull"]), &push));
        assert!(!covers(&push, &s(&["repository:b:pull"])));
        assert!(covers(
            &s(&["repository:a:pull,push", "repository:b:pull"]),
            &s(&["repository:a:push", "repository:b:pull"])
        ));
        assert!(covers(&push, &[]));
        assert!(!covers(&[], &s(&["repository:a:pull"])));
        // Repository names with more path components.
        assert!(covers(
            &s(&["repository:x/y/z:pull"]),
            &s(&["repository:x/y/z:pull"])
        ));
    }

    #[test]
    fn merging_scopes() {
        let merged = merge_scopes(
            &s(&["repository:a:pull,push"]),
            &s(&["repository:a:pull", "repository:b:pull"]),
        );
        assert_eq!(merged, s(&["repository:a:pull,push", "repository:b:pull"]));
    }

    #[test]
    fn token_cache_expiry_and_reuse() {
        let cache = AuthCache::default();
        cache.store_token(
            "h",
            s(&["repository:a:pull,push"]),
            "T1".into(),
            Duration::from_secs(60),
        );
        assert_eq!(
            cache
                .cached_token("h", &s(&["repository:a:pull"]))
                .as_deref(),
            Some("T1")
        );
        assert_eq!(
            cache.cached_token("other", &s(&["repository:a:pull"])),
            None
        );
        cache.store_token(
            "h",
            s(&["repository:b:pull"]),
            "T2".into(),
            Duration::from_secs(0),
        );
        // Lifetime 0 still gives a 1 s floor: usable right away.
        assert_eq!(
            cache
                .cached_token("h", &s(&["repository:b:pull"]))
                .as_deref(),
            Some("T2")
        );
        let mut tokens = lock(&cache.tokens);
        for t in tokens.get_mut("h").unwrap() {
            t.expires = Instant::now() - Duration::from_secs(1);
        }
        drop(tokens);
        assert_eq!(cache.cached_token("h", &s(&["repository:a:pull"])), None);
    }

    #[test]
    fn picks_bearer_over_basic() {
        let mut h = reqwest::header::HeaderMap::new();
        h.append(
            reqwest::header::WWW_AUTHENTICATE,
            r#"Basic realm="r""#.parse().unwrap(),
        );
        h.append(
            reqwest::header::WWW_AUTHENTICATE,
            r#"Bearer realm="http://t/token",service="s""#.parse().unwrap(),
        );
        assert_eq!(pick_challenge(&h).unwrap().scheme, "bearer");
        let mut h = reqwest::header::HeaderMap::new();
        h.append(
            reqwest::header::WWW_AUTHENTICATE,
            r#"Basic realm="r""#.parse().unwrap(),
        );
        assert_eq!(pick_challenge(&h).unwrap().scheme, "basic");
        assert!(pick_challenge(&reqwest::header::HeaderMap::new()).is_none());
    }

    #[test]
    fn token_errors() {
        assert_eq!(
            token_error_message(br#"{"details":"incorrect username or password"}"#).unwrap(),
            "incorrect username or password"
        );
        assert_eq!(
            token_error_message(br#"{"errors":[{"code":"UNAUTHORIZED","message":"bad"}]}"#)
                .unwrap(),
            "unauthorized: bad"
        );
        assert_eq!(token_error_message(b"nope"), None);
    }
}
