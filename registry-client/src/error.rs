//! Typed errors of the registry client. Messages follow docker's wording where
//! docker has one, so the CLI can print them as they are.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while talking to a registry or reading
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference such as `busybox:latest` could not be parsed.
    #[error("invalid reference format: {reason}")]
    InvalidReference { input: String, reason: String },

    /// A digest string is malformed or uses an unsupported algorithm.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest { input: String, reason: String },

    /// A platform string such as `linux/arm64/v8` could not be parsed.
    #[error("invalid platform {input:?}: {reason}")]
    InvalidPlatform { input: String, reason: String },

    /// The registry does not have the manifest, blob or repository.
    #[error("{what} not found")]
    NotFound { what: String },

    /// The registry rejected the credentials (or wants some and has none).
    #[error("unauthorized: {hint}")]
    Unauthorized { registry: String, hint: String },

    /// The registry refused access to a repository.
    #[error("{action} access denied for {repository}, repository does not exist or may require 'docker login': {message}")]
    Denied {
        action: String,
        repository: String,
        message: String,
    },

    /// Content did not hash to the digest it was fetched by.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },

    /// Content was shorter or longer than its descriptor said.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },

    /// The registry answered with an unexpected HTTP status.
    #[error("unexpected HTTP status {status} from {url}: {body}")]
    Http {
        status: u16,
        url: String,
        body: String,
    },

    /// The connection failed (DNS, refused, reset, timeout).
    #[error("cannot reach registry {registry}: {detail}")]
    Transport { registry: String, detail: String },

    /// TLS handshake failed: usually an unknown CA or a plain-HTTP registry.
    #[error("TLS error talking to {registry}: {detail} ({hint})")]
    Tls {
        registry: String,
        detail: String,
        hint: String,
    },

    /// A manifest had a media type this client does not handle.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),

    /// A Docker schema 1 manifest, which is deprecated and unsigned.
    #[error("schema1 manifests are not supported; repush the image with a current client")]
    Schema1,

    /// The registry answered with something that violates the protocol.
    #[error("invalid response from {registry}: {detail}")]
    Protocol { registry: String, detail: String },

    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON document could not be parsed.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// docker's config.json exists but cannot be used.
    #[error("invalid docker config {}: {detail}", path.display())]
    Config { path: PathBuf, detail: String },

    /// A docker-credential helper failed.
    #[error("credential helper docker-credential-{helper}: {message}")]
    Helper { helper: String, message: String },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid_reference(input: &str, reason: impl Into<String>) -> Self {
        Error::InvalidReference {
            input: input.to_string(),
            reason: reason.into(),
        }
    }

    /// True when retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Http { status, .. } => *status == 429 || (*status >= 500 && *status != 501),
            _ => false,
        }
    }
}
