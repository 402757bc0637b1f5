//! OCI distribution client for berth: image references, digests, platforms,
//! manifests, credentials, and an HTTP client that pulls and pushes with
//! docker's authentication, retries and verification.

pub mod auth;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod platform;
pub mod reference;

pub use auth::{CredentialSource, Credentials, DockerConfig};
pub use digest::{Digest, DigestVerifier};
pub use error::{Error, Result};
pub use manifest::Manifest;
pub use platform::Platform;
pub use reference::Reference;
pub mod client;

pub use client::{BlobStream, Client, ClientConfig, FetchedManifest};
