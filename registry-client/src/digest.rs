//! Content digests (`sha256:<hex>`) and an incremental verifier.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::Error;

/// A validated `sha256:<64 lowercase hex>` content digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

const PREFIX: &str = "sha256:";

impl Digest {
    /// The hex part, without `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// The algorithm name; always `sha256` today.
    pub fn algorithm(&self) -> &str {
        "sha256"
    }

    /// The digest of `bytes`.
    pub fn sha256_of(bytes: impl AsRef<[u8]>) -> Digest {
        Digest(format!(
            "{PREFIX}{}",
            hex::encode(Sha256::digest(bytes.as_ref()))
        ))
    }

    /// Builds a digest from a 64-char lowercase hex string.
    pub fn from_hex(hex: &str) -> Result<Digest, Error> {
        format!("{PREFIX}{hex}").parse()
    }

    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| Error::InvalidDigest {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let Some((algo, hex)) = s.split_once(':') else {
            return Err(bad("missing algorithm prefix, expected sha256:<hex>"));
        };
        if algo != "sha256" {
            if is_valid_algorithm(algo) {
                return Err(bad("unsupported digest algorithm, only sha256 is accepted"));
            }
            return Err(bad("invalid digest algorithm"));
        }
        if hex.len() != 64 {
            return Err(bad("sha256 digest must have 64 hex characters"));
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("digest must be lowercase hex"));
        }
        Ok(Digest(s.to_string()))
    }
}

/// The OCI grammar for algorithm names: `[a-z0-9]+([+._-][a-z0-9]+)*`.
fn is_valid_algorithm(algo: &str) -> bool {
    !algo.is_empty()
        && algo.split(['+', '.', '_', '-']).all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Hashes content as it streams past and counts its bytes.
#[derive(Clone, Default)]
pub struct DigestVerifier {
    hasher: Sha256,
    len: u64,
}

impl DigestVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything seen.
    pub fn finish(self) -> Digest {
        Digest(format!("{PREFIX}{}", hex::encode(self.hasher.finalize())))
    }

    /// Checks the content against an expected digest and, if given, size.
    pub fn verify(self, expected: &Digest, size: Option<u64>) -> Result<(), Error> {
        let len = self.len;
        if let Some(size) = size {
            if size != len {
                return Err(Error::SizeMismatch {
                    digest: expected.to_string(),
                    expected: size,
                    actual: len,
                });
            }
        }
        let actual = self.finish();
        if &actual != expected {
            return Err(Error::DigestMismatch {
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256_of_empty() {
        assert_eq!(Digest::sha256_of(b"").to_string(), EMPTY);
    }

    #[test]
    fn parse_valid() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.hex(), &EMPTY[7..]);
        assert_eq!(d.algorithm(), "sha256");
        assert_eq!(Digest::from_hex(d.hex()).unwrap(), d);
    }

    #[test]
    fn parse_rejects() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            &EMPTY.to_uppercase(),
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
            " sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} accepted");
        }
        let err = "sha512:00".parse::<Digest>().unwrap_err().to_string();
        assert!(err.contains("unsupported digest algorithm"), "{err}");
    }

    #[test]
    fn verifier_incremental() {
        let mut v = DigestVerifier::new();
        v.update(b"hello ");
        v.update(b"world");
        assert_eq!(v.len(), 11);
        let expected = Digest::sha256_of(b"hello world");
        v.clone().verify(&expected, Some(11)).unwrap();
        assert!(matches!(
            v.clone().verify(&expected, Some(12)),
            Err(Error::SizeMismatch {
                expected: 12,
                actual: 11,
                ..
            })
        ));
        let other = Digest::sha256_of(b"x");
        assert!(matches!(
            v.clone().verify(&other, None),
            Err(Error::DigestMismatch { .. })
        ));
        assert_eq!(v.finish(), expected);
    }

    #[test]
    fn serde_roundtrip() {
        let d: Digest = serde_json::from_str(&format!("\"{EMPTY}\"")).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{EMPTY}\""));
        assert!(serde_json::from_str::<Digest>("\"sha256:1\"").is_err());
    }
}
