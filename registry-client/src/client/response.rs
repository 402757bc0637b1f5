//! Turning a registry's error answer into a typed error with docker's
//! wording (`manifest unknown: manifest unknown`, `pull access denied ...`).

use futures_util::StreamExt as _;
use serde::Deserialize;

use crate::error::Error;

const MAX_ERROR_BODY: usize = 64 * 1024;

/// What the failed request was doing, for the error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Pull,
    Push,
    Login,
}

pub(crate) struct Ctx {
    pub action: Action,
    pub registry: String,
    /// Familiar repository name, as docker prints it.
    pub repository: String,
    /// For NotFound: `manifest for docker.io/library/x:latest`.
    pub what: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// docker's rendering of a distribution error list: `code words: message`.
pub(crate) fn registry_message(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let parts: Vec<String> = parsed
        .errors
        .iter()
        .map(|e| {
            let code = e.code.to_ascii_lowercase().replace('_', " ");
            match (code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{code}: {}", e.message),
                (false, true) => code,
                _ => e.message.clone(),
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn codes(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.errors.into_iter().map(|e| e.code).collect())
        .unwrap_or_default()
}

/// Reads at most 64 KiB of a body: error pages can be anything.
pub(crate) async fn read_limited(resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    out
}

/// The error for a response whose status the caller did not expect.
pub(crate) async fn error_from(resp: reqwest::Response, ctx: &Ctx) -> Error {
    let status = resp.status().as_u16();
    let url = resp.url().to_string();
    let body = read_limited(resp, MAX_ERROR_BODY).await;
    error_from_parts(status, &url, &body, ctx)
}

/// Error::Unauthorized prints "unauthorized: " itself.
pub(crate) fn strip_unauthorized(m: &str) -> String {
    m.strip_prefix("unauthorized: ").unwrap_or(m).to_string()
}

pub(crate) fn error_from_parts(status: u16, url: &str, body: &[u8], ctx: &Ctx) -> Error {
    let message = registry_message(body);
    let codes = codes(body);
    let has = |c: &str| codes.iter().any(|x| x == c);
    if status == 404
        || has("MANIFEST_UNKNOWN")
        || has("BLOB_UNKNOWN")
        || (has("NAME_UNKNOWN") && ctx.action != Action::Push)
    {
        return Error::NotFound {
            what: ctx.what.clone(),
        };
    }
    match (status, ctx.action) {
        (401, Action::Login) | (401, Action::Push) => Error::Unauthorized {
            registry: ctx.registry.clone(),
            hint: message.map(|m| strip_unauthorized(&m)).unwrap_or_else(|| {
                if ctx.action == Action::Login {
                    "incorrect username or password".into()
                } else {
                    format!(
                        "authentication required; run 'docker login {}'",
                        ctx.registry
                    )
                }
            }),
        },
        (401 | 403, _) => Error::Denied {
            action: match ctx.action {
                Action::Push => "push",
                _ => "pull",
            }
            .to_string(),
            repository: ctx.repository.clone(),
            message: message
                .unwrap_or_else(|| "denied: requested access to the resource is denied".into()),
        },
        _ => Error::Http {
            status,
            url: url.to_string(),
            body: message.unwrap_or_else(|| {
                String::from_utf8_lossy(&body[..body.len().min(512)])
                    .trim()
                    .to_string()
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(action: Action) -> Ctx {
        Ctx {
            action,
            registry: "localhost:5000".into(),
            repository: "localhost:5000/x".into(),
            what: "manifest for localhost:5000/x:latest".into(),
        }
    }

    #[test]
    fn docker_style_messages() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#;
        assert_eq!(
            registry_message(body).unwrap(),
            "manifest unknown: manifest unknown"
        );
        let e = error_from_parts(404, "u", body, &ctx(Action::Pull));
        assert_eq!(
            e.to_string(),
            "manifest for localhost:5000/x:latest not found"
        );
        let denied = br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        let e = error_from_parts(401, "u", denied, &ctx(Action::Pull));
        assert_eq!(
            e.to_string(),
            "pull access denied for localhost:5000/x, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
        );
        let unauth = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        assert_eq!(
            error_from_parts(401, "u", unauth, &ctx(Action::Push)).to_string(),
            "unauthorized: authentication required"
        );
        assert_eq!(
            error_from_parts(401, "u", b"", &ctx(Action::Login)).to_string(),
            "unauthorized: incorrect username or password"
        );
        let e = error_from_parts(
            500,
            "http://x/v2/",
            b"<html>oops</html>",
            &ctx(Action::Pull),
        );
        assert!(matches!(e, Error::Http { status: 500, .. }));
        assert!(e.is_transient());
    }
}
