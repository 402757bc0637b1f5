//! Image references, parsed and normalised the way docker does
//! (`busybox` -> `docker.io/library/busybox:latest`).

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::Error;

/// The registry docker uses for names without a domain.
pub const DOCKER_HUB: &str = "docker.io";
/// Where docker.io's registry API actually lives.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key docker writes docker.io credentials under in `config.json`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const DEFAULT_TAG: &str = "latest";

/// A normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, `ghcr.io`, ...
    pub registry: String,
    /// `library/busybox`, `a/b`, ...
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Docker's short name: `busybox`, `user/app`, `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                // Docker would print `a.b/c` for docker.io/a.b/c, which reads
                // back as registry `a.b`; keep the domain so the short form
                // names the same image.
                _ if split_docker_domain(&self.repository).0 != DOCKER_HUB => self.name(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }

    /// Docker's short form with tag and digest: `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// A copy with `tag` set (the digest, if any, is kept, as docker does).
    /// The tag is not validated; parse a string to validate user input.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            ..self.clone()
        }
    }

    /// A copy pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The tag, or `latest` when none was given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// The host that serves the registry API for this reference.
    pub fn api_host(&self) -> String {
        api_host(&self.registry)
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
    }
}

/// The API host of a registry name (`docker.io` -> `registry-1.docker.io`).
pub fn api_host(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API.to_string()
    } else {
        registry.to_string()
    }
}

/// Normalises what a user types after `docker login`: docker.io's aliases
/// and URLs become `docker.io`, other URLs lose scheme and path.
pub fn normalize_registry(input: &str) -> String {
    let trimmed = input
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = trimmed.split('/').next().unwrap_or(trimmed);
    match host {
        "" | DOCKER_HUB | LEGACY_DOCKER_HUB | DOCKER_HUB_API => DOCKER_HUB.to_string(),
        other => other.to_string(),
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// docker's `splitDockerDomain`: the first component is a domain only if it
/// looks like one (has `.` or `:`, is `localhost`, or has uppercase).
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    if domain == LEGACY_DOCKER_HUB {
        domain = DOCKER_HUB.to_string();
    }
    if domain == DOCKER_HUB && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_PREFIX}{remainder}");
    }
    (domain, remainder)
}

fn parse(input: &str) -> Result<Reference, Error> {
    let bad = |reason: String| Error::invalid_reference(input, reason);
    if input.is_empty() {
        return Err(bad("reference is empty".into()));
    }
    if input.len() == 64
        && input
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad(format!(
            "invalid repository name ({input}), cannot specify 64-byte hexadecimal strings"
        )));
    }
    let (domain, remainder) = split_docker_domain(input);
    let remote_name = remainder.split(':').next().unwrap_or(&remainder);
    if remote_name.to_lowercase() != remote_name {
        return Err(bad(format!(
            "repository name ({remote_name}) must be lowercase"
        )));
    }

    let (rest, digest) = match remainder.split_once('@') {
        Some((rest, d)) => {
            let digest = d.parse::<Digest>().map_err(|e| match e {
                Error::InvalidDigest { reason, .. } => {
                    bad(format!("digest ({d}) is invalid: {reason}"))
                }
                other => other,
            })?;
            (rest, Some(digest))
        }
        None => (remainder.as_str(), None),
    };
    // The domain was split off already, so a ':' left is the tag separator.
    let (path, tag) = match rest.split_once(':') {
        Some((path, tag)) => {
            validate_tag(tag).map_err(&bad)?;
            (path, Some(tag.to_string()))
        }
        None => (rest, None),
    };
    validate_domain(&domain).map_err(&bad)?;
    validate_path(path).map_err(&bad)?;
    let name_len = domain.len() + 1 + path.len();
    if name_len > NAME_TOTAL_LENGTH_MAX {
        return Err(bad(format!(
            "repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )));
    }
    let tag = if tag.is_none() && digest.is_none() {
        Some(DEFAULT_TAG.to_string())
    } else {
        tag
    };
    Ok(Reference {
        registry: domain,
        repository: path.to_string(),
        tag,
        digest,
    })
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `[\w][\w.-]{0,127}`
fn validate_tag(tag: &str) -> Result<(), String> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && is_word(b[0])
        && b[1..].iter().all(|&c| is_word(c) || c == b'.' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag ({tag}) is invalid: it must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
        ))
    }
}

/// `host[:port]` with DNS-like components, or `[ipv6][:port]`.
fn validate_domain(domain: &str) -> Result<(), String> {
    let err = || format!("registry domain ({domain}) is invalid");
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or_else(err)?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(err());
        }
        match after {
            "" => (None, None),
            p => (None, Some(p.strip_prefix(':').ok_or_else(err)?)),
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("registry port in ({domain}) must be a number"));
        }
    }
    if let Some(host) = host {
        let component_ok = |c: &str| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        };
        if !host.split('.').all(component_ok) {
            return Err(err());
        }
    }
    Ok(())
}

/// Path components per distribution's grammar:
/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`, separated by `/`.
fn validate_path(path: &str) -> Result<(), String> {
    for component in path.split('/') {
        if !path_component_ok(component) {
            return Err(format!(
                "repository name ({path}) is invalid: each path component must be lowercase letters and digits, separated by '.', '_', '__' or dashes"
            ));
        }
    }
    Ok(())
}

fn path_component_ok(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    fn p(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn normalisation() {
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "index.docker.io/library/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "docker.io/library/busybox:t",
                "docker.io/library/busybox:t",
                "busybox:t",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            (
                "docker.io/library/a/b",
                "docker.io/library/a/b:latest",
                "library/a/b:latest",
            ),
            (
                "localhost:5000/a/b:t",
                "localhost:5000/a/b:t",
                "localhost:5000/a/b:t",
            ),
            ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
            (
                "localhost:5000/x:1",
                "localhost:5000/x:1",
                "localhost:5000/x:1",
            ),
            ("ghcr.io/o/r", "ghcr.io/o/r:latest", "ghcr.io/o/r:latest"),
            (
                "127.0.0.1:5000/debian",
                "127.0.0.1:5000/debian:latest",
                "127.0.0.1:5000/debian:latest",
            ),
            (
                "[fc00::1]:5000/docker",
                "[fc00::1]:5000/docker:latest",
                "[fc00::1]:5000/docker:latest",
            ),
            (
                "192.168.0.1",
                "docker.io/library/192.168.0.1:latest",
                "192.168.0.1:latest",
            ),
            ("foo:5000", "docker.io/library/foo:5000", "foo:5000"),
            (
                "LOCALDOMAIN/debian",
                "LOCALDOMAIN/debian:latest",
                "LOCALDOMAIN/debian:latest",
            ),
            (
                "a__b/c---d/e.f_g",
                "docker.io/a__b/c---d/e.f_g:latest",
                "a__b/c---d/e.f_g:latest",
            ),
        ];
        for (input, full, familiar) in cases {
            let r = p(input);
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(
                r.to_string().parse::<Reference>().unwrap(),
                r,
                "{input} round trip"
            );
        }
    }

    #[test]
    fn digests() {
        let r = p(&format!("busybox:1@{D}"));
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.digest.as_ref().unwrap().as_str(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1@{D}"));
        let r = p(&format!("localhost:5000/x@{D}"));
        assert_eq!(r.tag, None, "no implicit latest with a digest");
        assert_eq!(r.tag_or_latest(), "latest");
        assert_eq!(r.familiar(), format!("localhost:5000/x@{D}"));
        assert_eq!(r.familiar_name(), "localhost:5000/x");
        let err = "busybox@sha256:abc"
            .parse::<Reference>()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid reference format: digest"), "{err}");
    }

    #[test]
    fn accessors() {
        let r = p("busybox");
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.familiar_name(), "busybox");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(p("localhost:5000/x").api_host(), "localhost:5000");
        let t = r.with_tag("2");
        assert_eq!(t.to_string(), "docker.io/library/busybox:2");
        let d = t.with_digest(D.parse().unwrap());
        assert_eq!(d.to_string(), format!("docker.io/library/busybox:2@{D}"));
    }

    #[test]
    fn uppercase_rejected_with_docker_message() {
        let err = "Busybox".parse::<Reference>().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        let err = "docker.io/docker/Docker"
            .parse::<Reference>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("(docker/Docker) must be lowercase"), "{err}");
        // Uppercase tags are fine.
        assert_eq!(p("busybox:LATEST").tag.as_deref(), Some("LATEST"));
    }

    #[test]
    fn invalid_vectors() {
        let long_tag = format!("busybox:{}", "a".repeat(129));
        let long_name = format!("{}/a", "a".repeat(256));
        for input in [
            "",
            " ",
            "$$$",
            "::",
            ":",
            "https://github.com/docker/docker",
            "docker://quay.io/library/foo:bar",
            "-docker",
            "-docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker///docker",
            "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "private.registry:port/namespace/test:1",
            "private.registry:5000/namespace/test:image:1",
            "private@registry:5000/test",
            "test image:1",
            "a/b:",
            "a/b:-tag",
            "a/b:.tag",
            "a/b/",
            "/a",
            "a//b",
            "a_-b",
            "a..b",
            "a___b",
            "a-/b",
            "a/b@",
            "a/b@sha256",
            &long_tag,
            &long_name,
            "[::1/x",
            "[zz]:5000/x",
        ] {
            let err = input.parse::<Reference>();
            assert!(err.is_err(), "{input:?} accepted as {:?}", err.unwrap());
            assert!(err
                .unwrap_err()
                .to_string()
                .starts_with("invalid reference format"));
        }
    }

    #[test]
    fn valid_vectors() {
        let max_tag = format!("busybox:{}", "a".repeat(128));
        for input in [
            "docker/docker",
            "library/debian",
            "debian",
            "docker.io/docker/docker",
            "docker.io/library/debian",
            "index.docker.io/docker/docker",
            "127.0.0.1:5000/docker/docker",
            "127.0.0.1:5000/library/debian",
            "192.168.0.1:80",
            "192.168.0.1:8/debian",
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "private.registry:5000/n/a/m/e/s/test:1",
            "a-b/c",
            "a.b/c",
            "a_b",
            "a__b",
            "a--------b",
            "busybox:_tag",
            "busybox:1.2-rc_3",
            &max_tag,
        ] {
            p(input);
        }
    }

    #[test]
    fn name_length_limit_counts_domain() {
        let path = "a".repeat(255 - "docker.io/library/".len());
        p(&path);
        let too_long = format!("{path}a");
        let err = too_long.parse::<Reference>().unwrap_err().to_string();
        assert!(err.contains("255 characters"), "{err}");
    }

    #[test]
    fn registry_normalisation() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry("index.docker.io"), "docker.io");
        assert_eq!(normalize_registry("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize_registry(""), "docker.io");
        assert_eq!(
            normalize_registry("http://localhost:5000/v2/"),
            "localhost:5000"
        );
        assert_eq!(normalize_registry("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn serde_as_string() {
        let r: Reference = serde_json::from_str("\"busybox\"").unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            "\"docker.io/library/busybox:latest\""
        );
    }
}
