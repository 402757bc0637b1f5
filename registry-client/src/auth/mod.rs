//! Credentials: where they come from (docker's `config.json`, credential
//! helpers) and how registries ask for them (`WWW-Authenticate`).

mod challenge;
mod docker_config;
mod helper;

pub use challenge::{parse_www_authenticate, Challenge};
pub use docker_config::DockerConfig;
pub use helper::CredentialHelper;

use crate::error::Error;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`).
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    // Never print secrets, not even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(<redacted>)"),
        }
    }
}

/// Something that can look up credentials for a registry host
/// (`docker.io`, `localhost:5000`, ...).
pub trait CredentialSource: Send + Sync {
    fn get(&self, registry_host: &str) -> Result<Option<Credentials>, Error>;
}

/// A fixed set of credentials for one registry; handy for `login` checks.
#[derive(Clone, Debug)]
pub struct StaticCredentials {
    pub registry: String,
    pub credentials: Credentials,
}

impl CredentialSource for StaticCredentials {
    fn get(&self, registry_host: &str) -> Result<Option<Credentials>, Error> {
        let want = crate::reference::normalize_registry(registry_host);
        if crate::reference::normalize_registry(&self.registry) == want {
            Ok(Some(self.credentials.clone()))
        } else {
            Ok(None)
        }
    }
}
