//! A Docker-Hub-style token endpoint (`GET /token?service=&scope=`), issuing
//! RS256 JWTs that distribution's `auth: token:` accepts: the signing
//! certificate travels in the `x5c` header and is the registry's
//! `rootcertbundle`.
//!
//! Policy: anonymous callers get `pull` on public repositories only; valid
//! users get `pull,push` everywhere; wrong credentials get 401. Scopes that
//! are denied come back with no actions, as Docker Hub does. The OAuth2
//! POST form takes `grant_type=password` (username/password) or
//! `grant_type=refresh_token` (an identity token from `refresh_tokens`).

use super::http::{basic_credentials, parse_form, read_request, write_response, Request};
use super::pki::{make_signing_key, sign_rs256, SigningKey};
use crate::accept::AcceptLoop;
use base64::Engine;
use std::io::BufReader;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub const SERVICE: &str = "berth-test-registry";
pub const ISSUER: &str = "berth-test-issuer";

#[derive(Clone, Debug)]
pub struct TokenOpts {
    pub users: Vec<(String, String)>,
    /// Repository name prefixes that anonymous callers may pull.
    pub public_prefixes: Vec<String>,
    /// Token lifetime in seconds (`expires_in`).
    pub expires_in: u64,
    /// OAuth2 refresh tokens (docker's identity tokens) and the user each
    /// stands for.
    pub refresh_tokens: Vec<(String, String)>,
}

impl Default for TokenOpts {
    fn default() -> Self {
        TokenOpts {
            users: vec![("user".into(), "pass".into())],
            public_prefixes: vec!["public/".into()],
            expires_in: 300,
            refresh_tokens: Vec::new(),
        }
    }
}

/// What one token request asked for and got.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub user: Option<String>,
    pub scopes: Vec<String>,
    pub status: u16,
    pub granted: Vec<(String, Vec<String>)>,
    /// `GET` (Basic or anonymous) or `POST` (OAuth2 form).
    pub method: String,
    /// The `service` parameter as sent.
    pub service: String,
    /// The `account` parameter, if sent.
    pub account: Option<String>,
}

impl TokenRequest {
    /// Valid credentials (password or refresh token) were presented.
    pub fn authenticated(&self) -> bool {
        self.status == 200 && self.user.is_some()
    }
}

struct Shared {
    opts: TokenOpts,
    key: SigningKey,
    issued: AtomicUsize,
    log: Mutex<Vec<TokenRequest>>,
}

pub struct TokenServer {
    pub port: u16,
    shared: Arc<Shared>,
    // Held for its Drop: stops and joins the accept loop.
    _accept: AcceptLoop,
}

impl TokenServer {
    /// `dir` receives the signing key and certificate.
    pub fn start(dir: &Path, opts: TokenOpts) -> TokenServer {
        let key = make_signing_key(dir);
        let shared = Arc::new(Shared {
            opts,
            key,
            issued: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let accept = AcceptLoop::start("token server", shared.clone(), handle);
        let port = accept.port;
        TokenServer {
            port,
            shared,
            _accept: accept,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The certificate the registry trusts (`rootcertbundle`).
    pub fn cert_path(&self) -> &Path {
        &self.shared.key.cert
    }

    /// How many tokens were issued (successful answers).
    pub fn issued(&self) -> usize {
        self.shared.issued.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.log.lock().unwrap().clone()
    }
}

fn handle(conn: TcpStream, shared: &Shared) {
    let mut w = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(conn);
    let req = match read_request(&mut r) {
        Ok(Some(req)) => req,
        _ => return,
    };
    let (status, body) = answer(&req, shared);
    let _ = write_response(
        &mut w,
        status,
        &[("Content-Type", "application/json".to_string())],
        body.as_bytes(),
    );
}

fn answer(req: &Request, shared: &Shared) -> (u16, String) {
    if req.path() != "/token" {
        return (404, r#"{"details":"not found"}"#.into());
    }
    // GET carries everything in the query; the OAuth2 POST form carries
    // username/password in the body instead of Basic auth.
    let mut params = req.query();
    let mut creds = basic_credentials(req.header("authorization"));
    let mut refresh = None;
    if req.method == "POST" {
        let form = parse_form(&String::from_utf8_lossy(&req.body));
        let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
        if let (Some(u), Some(p)) = (get("username"), get("password")) {
            creds = Some((u, p));
        }
        if get("grant_type").as_deref() == Some("refresh_token") {
            refresh = Some(get("refresh_token").unwrap_or_default());
        }
        params.extend(form);
    }
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let service = param("service").unwrap_or_default();
    let account = param("account");
    let record = |user: Option<String>, scopes: Vec<String>, status, granted| TokenRequest {
        user,
        scopes,
        status,
        granted,
        method: req.method.clone(),
        service: service.clone(),
        account: account.clone(),
    };
    let refresh_user = refresh.as_ref().map(|t| {
        shared
            .opts
            .refresh_tokens
            .iter()
            .find(|(tt, _)| tt == t)
            .map(|(_, u)| u.clone())
    });
    let user = match (&creds, refresh_user) {
        (_, Some(Some(u))) => Some(u),
        (_, Some(None)) => {
            shared
                .log
                .lock()
                .unwrap()
                .push(record(None, scopes, 401, vec![]));
            return (401, r#"{"details":"invalid refresh token"}"#.into());
        }
        (Some((u, p)), None) => {
            if shared.opts.users.iter().any(|(uu, pp)| uu == u && pp == p) {
                Some(u.clone())
            } else {
                shared
                    .log
                    .lock()
                    .unwrap()
                    .push(record(Some(u.clone()), scopes, 401, vec![]));
                return (
                    401,
                    r#"{"details":"incorrect username or password"}"#.into(),
                );
            }
        }
        (None, None) => None,
    };

    let mut access = Vec::new();
    let mut granted = Vec::new();
    for scope in &scopes {
        // repository:name:actions (name may contain ':' only for a port,
        // which repository names cannot; split from both ends).
        let mut parts = scope.splitn(2, ':');
        let typ = parts.next().unwrap_or("");
        let rest = parts.next().unwrap_or("");
        let (name, actions) = match rest.rsplit_once(':') {
            Some(x) => x,
            None => continue,
        };
        let wanted: Vec<&str> = actions.split(',').collect();
        let allowed: Vec<String> = wanted
            .iter()
            .filter(|a| {
                if typ != "repository" {
                    return false;
                }
                if user.is_some() {
                    return matches!(**a, "pull" | "push" | "delete" | "*");
                }
                **a == "pull"
                    && shared
                        .opts
                        .public_prefixes
                        .iter()
                        .any(|p| name.starts_with(p.as_str()))
            })
            .map(|a| a.to_string())
            .collect();
        granted.push((scope.clone(), allowed.clone()));
        access.push(serde_json::json!({"type": typ, "name": name, "actions": allowed}));
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let n = shared.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&shared.key.cert_der)],
    });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": user.clone().unwrap_or_default(),
        "aud": if service.is_empty() { SERVICE.to_string() } else { service.clone() },
        "exp": now + shared.opts.expires_in,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("token-{n}"),
        "access": access,
    });
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let sig = sign_rs256(&shared.key.key, signing_input.as_bytes());
    let token = format!("{signing_input}.{}", b64.encode(sig));
    shared
        .log
        .lock()
        .unwrap()
        .push(record(user, scopes, 200, granted));
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": shared.opts.expires_in,
        "issued_at": rfc3339(now),
    });
    (200, body.to_string())
}

/// UTC seconds since the epoch as RFC 3339; clients add `expires_in` to it.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}
