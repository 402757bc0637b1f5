//! docker-credential-* helpers: `get`, `store` and `erase` with the
//! server URL or a JSON document on stdin.

use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::Credentials;
use crate::error::Error;

/// What the helpers print when they have nothing for a server.
const NOT_FOUND: &str = "credentials not found in native keychain";
/// docker's marker for an identity token stored in a helper.
const TOKEN_USERNAME: &str = "<token>";

#[derive(Serialize, Deserialize)]
struct HelperCreds {
    #[serde(rename = "ServerURL", default)]
    server_url: String,
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// One `docker-credential-<name>` program.
#[derive(Clone, Debug)]
pub struct CredentialHelper {
    pub name: String,
    /// Replaces `PATH` for finding the program (tests, sandboxes).
    pub search_path: Option<OsString>,
}

impl CredentialHelper {
    pub fn new(name: &str, search_path: Option<OsString>) -> Self {
        CredentialHelper {
            name: name.to_string(),
            search_path,
        }
    }

    fn run(&self, action: &str, input: &[u8]) -> Result<(bool, String), Error> {
        let program = format!("docker-credential-{}", self.name);
        let mut cmd = Command::new(&program);
        cmd.arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = &self.search_path {
            cmd.env("PATH", path);
        }
        let err = |message: String| Error::Helper {
            helper: self.name.clone(),
            message,
        };
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                err(format!(
                    "{program} not found in PATH; install it or remove it from config.json"
                ))
            } else {
                err(format!("cannot start {program}: {e}"))
            }
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading its stdin is not an error
            // by itself; its exit status says what happened.
            let _ = stdin.write_all(input);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| err(format!("waiting for {program}: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            Ok((true, stdout))
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let msg = if stdout.is_empty() { stderr } else { stdout };
            Ok((false, msg))
        }
    }

    /// Credentials for `server_url`, or None if the helper has none.
    pub fn get(&self, server_url: &str) -> Result<Option<Credentials>, Error> {
        let (ok, out) = self.run("get", server_url.as_bytes())?;
        if !ok {
            if out.contains(NOT_FOUND) {
                return Ok(None);
            }
            return Err(Error::Helper {
                helper: self.name.clone(),
                message: format!("get {server_url}: {out}"),
            });
        }
        let c: HelperCreds = serde_json::from_str(&out).map_err(|e| Error::Helper {
            helper: self.name.clone(),
            message: format!("get {server_url}: invalid JSON answer: {e}"),
        })?;
        if c.username.is_empty() && c.secret.is_empty() {
            return Ok(None);
        }
        if c.username == TOKEN_USERNAME {
            return Ok(Some(Credentials::IdentityToken(c.secret)));
        }
        Ok(Some(Credentials::Basic {
            username: c.username,
            password: c.secret,
        }))
    }

    pub fn store(&self, server_url: &str, username: &str, secret: &str) -> Result<(), Error> {
        let doc = HelperCreds {
            server_url: server_url.to_string(),
            username: username.to_string(),
            secret: secret.to_string(),
        };
        let input = serde_json::to_vec(&doc).map_err(|source| Error::Json {
            what: "credential helper input".into(),
            source,
        })?;
        let (ok, out) = self.run("store", &input)?;
        if ok {
            Ok(())
        } else {
            Err(Error::Helper {
                helper: self.name.clone(),
                message: format!("store {server_url}: {out}"),
            })
        }
    }

    /// Returns false when the helper had nothing stored.
    pub fn erase(&self, server_url: &str) -> Result<bool, Error> {
        let (ok, out) = self.run("erase", server_url.as_bytes())?;
        if ok {
            Ok(true)
        } else if out.contains(NOT_FOUND) {
            Ok(false)
        } else {
            Err(Error::Helper {
                helper: self.name.clone(),
                message: format!("erase {server_url}: {out}"),
            })
        }
    }
}
