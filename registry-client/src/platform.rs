//! Platforms (`os/arch[/variant]`) and picking a manifest from an index the
//! way containerd's default matcher does.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex};

use crate::error::Error;

/// Annotation buildkit puts on attestation manifests inside an index.
const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";

/// A target platform in Go's GOOS/GOARCH vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// The platform this binary runs on.
    pub fn host() -> Platform {
        let (arch, variant) = host_arch(std::env::consts::ARCH);
        Platform::new(std::env::consts::OS, arch, variant)
    }

    /// Canonical form: lowercase, GOARCH names, arm variants filled in
    /// (`arm64` means `v8`, `arm` means `v7`), so equal platforms compare equal.
    pub fn normalized(&self) -> Platform {
        let os = self.os.to_lowercase();
        let os = if os == "macos" { "darwin".into() } else { os };
        let variant = self
            .variant
            .as_deref()
            .map(str::to_lowercase)
            .filter(|v| !v.is_empty());
        let arch = self.architecture.to_lowercase();
        let (arch, variant): (&str, Option<String>) = match arch.as_str() {
            "i386" | "i686" | "x86" => ("386", variant),
            "x86_64" | "x86-64" | "amd64" => ("amd64", variant.filter(|v| v != "v1")),
            "aarch64" | "arm64" => {
                let v = match variant.as_deref() {
                    None | Some("8") | Some("v8") | Some("v8.0") => "v8".to_string(),
                    Some("9") | Some("9.0") | Some("v9.0") => "v9".to_string(),
                    Some(other) => other.to_string(),
                };
                ("arm64", Some(v))
            }
            "armhf" => ("arm", Some("v7".to_string())),
            "armel" => ("arm", Some("v6".to_string())),
            "arm" => {
                let v = match variant.as_deref() {
                    None | Some("7") => "v7".to_string(),
                    Some(n @ ("5" | "6" | "8")) => format!("v{n}"),
                    Some(other) => other.to_string(),
                };
                ("arm", Some(v))
            }
            other => (other, variant),
        };
        Platform {
            os,
            architecture: arch.to_string(),
            variant,
        }
    }

    /// Picks the manifest for this platform from an index: an exact match
    /// first, then the best compatible older variant (an arm/v7 host runs
    /// v6 and v5 images), skipping attestation manifests.
    pub fn select<'a>(&self, index: &'a ImageIndex) -> Option<&'a Descriptor> {
        let want = self.normalized();
        index
            .manifests()
            .iter()
            .filter(|d| !is_attestation(d))
            .filter_map(|d| {
                let p = d.platform().as_ref()?;
                let have = Platform::new(
                    &p.os().to_string(),
                    &p.architecture().to_string(),
                    p.variant().as_deref(),
                )
                .normalized();
                if have.os == "unknown" || have.architecture == "unknown" {
                    return None;
                }
                want.rank(&have).map(|rank| (rank, d))
            })
            // min_by_key keeps the first of equal ranks: index order breaks ties.
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, d)| d)
    }

    /// Lower is better; None means incompatible. Both sides normalised.
    fn rank(&self, have: &Platform) -> Option<u32> {
        if self.os != have.os || self.architecture != have.architecture {
            return None;
        }
        if self.variant == have.variant {
            return Some(0);
        }
        let want_v = self.variant.as_deref().and_then(variant_number);
        let have_v = have.variant.as_deref().and_then(variant_number);
        match (self.architecture.as_str(), want_v, have_v) {
            ("arm" | "arm64", Some(w), Some(h)) if h < w => Some(1 + (w - h)),
            // amd64 microarchitecture levels: v1 (no variant) runs anywhere.
            ("amd64", Some(_), None) => Some(10),
            ("amd64", Some(w), Some(h)) if h < w => Some(1 + (w - h)),
            // A host that asked for no particular variant takes any.
            (arch, None, _) if arch != "arm" && arch != "arm64" => Some(20),
            _ => None,
        }
    }
}

fn variant_number(v: &str) -> Option<u32> {
    v.strip_prefix('v')?.split('.').next()?.parse().ok()
}

fn is_attestation(d: &Descriptor) -> bool {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REFERENCE_TYPE_ANNOTATION))
        .is_some_and(|v| v == "attestation-manifest")
}

/// Rust's `std::env::consts::ARCH` to GOARCH (+ variant).
fn host_arch(rust_arch: &str) -> (&str, Option<&'static str>) {
    match rust_arch {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "powerpc" => ("ppc", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        "loongarch64" => ("loong64", None),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
        "mips64" => ("mips64", None),
        "mips" if cfg!(target_endian = "little") => ("mipsle", None),
        "mips" => ("mips", None),
        "sparc64" => ("sparc64", None),
        "wasm32" => ("wasm", None),
        other => (other, None),
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;

    /// `os/arch[/variant]`; a single word is an OS (host arch) or an
    /// architecture (host OS), as containerd's `platforms.Parse` allows.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| Error::InvalidPlatform {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if parts.iter().any(|p| !valid(p)) {
            return Err(bad(
                "expected os/arch[/variant] made of letters, digits, '_', '-' and '.'",
            ));
        }
        let p = match parts.as_slice() {
            [one] => {
                let host = Platform::host();
                if is_known_os(&one.to_lowercase()) {
                    Platform::new(one, &host.architecture, host.variant.as_deref())
                } else {
                    Platform::new(&host.os, one, None)
                }
            }
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => {
                return Err(bad(
                    "too many '/' separated parts, expected os/arch[/variant]",
                ))
            }
        };
        Ok(p.normalized())
    }
}

fn is_known_os(os: &str) -> bool {
    matches!(
        os,
        "linux"
            | "windows"
            | "darwin"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "solaris"
            | "illumos"
            | "aix"
            | "plan9"
            | "dragonfly"
            | "android"
            | "ios"
            | "js"
            | "wasip1"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, &str, Option<&str>, bool)]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant, attestation))| {
                let mut platform = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    platform["variant"] = serde_json::json!(v);
                }
                let mut d = serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{:064x}", i),
                    "size": 100 + i,
                    "platform": platform,
                });
                if *attestation {
                    d["annotations"] =
                        serde_json::json!({"vnd.docker.reference.type": "attestation-manifest"});
                }
                d
            })
            .collect();
        serde_json::from_value(serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap()
    }

    fn pick(want: &str, idx: &ImageIndex) -> Option<u64> {
        want.parse::<Platform>()
            .unwrap()
            .select(idx)
            .map(|d| d.size() - 100)
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(
            "linux/amd64".parse::<Platform>().unwrap(),
            Platform::new("linux", "amd64", None)
        );
        assert_eq!(
            "linux/arm64/v8".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            "linux/arm64".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            "linux/aarch64".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            "linux/arm".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            "linux/armhf".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            "linux/arm/6".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            "Linux/X86_64".parse::<Platform>().unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!("linux".parse::<Platform>().unwrap().os, "linux");
        assert_eq!("arm64".parse::<Platform>().unwrap().architecture, "arm64");
        for bad in [
            "",
            "/",
            "linux/",
            "linux/amd64/v1/x",
            "linux amd64",
            "linux//v7",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_uses_goarch_names() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        assert!(!h.architecture.contains('_'), "{h}");
        assert_eq!(host_arch("aarch64"), ("arm64", Some("v8")));
        assert_eq!(host_arch("x86_64"), ("amd64", None));
        assert_eq!(host_arch("arm"), ("arm", Some("v7")));
    }

    #[test]
    fn selects_exact_platform() {
        let idx = index(&[
            ("linux", "amd64", None, false),
            ("linux", "arm64", Some("v8"), false),
            ("linux", "arm", Some("v7"), false),
            ("linux", "arm", Some("v6"), false),
            ("unknown", "unknown", None, true),
        ]);
        assert_eq!(pick("linux/amd64", &idx), Some(0));
        assert_eq!(pick("linux/arm64", &idx), Some(1));
        assert_eq!(pick("linux/arm64/v8", &idx), Some(1));
        assert_eq!(pick("linux/arm/v7", &idx), Some(2));
        assert_eq!(pick("linux/arm/v6", &idx), Some(3));
        assert_eq!(pick("linux/arm/v5", &idx), None);
        assert_eq!(pick("linux/s390x", &idx), None);
        assert_eq!(pick("windows/amd64", &idx), None);
    }

    #[test]
    fn arm64_without_variant_means_v8() {
        let idx = index(&[
            ("linux", "amd64", None, false),
            ("linux", "arm64", None, false),
        ]);
        assert_eq!(pick("linux/arm64/v8", &idx), Some(1));
        assert_eq!(pick("linux/arm64", &idx), Some(1));
    }

    #[test]
    fn prefers_exact_variant_then_best_older() {
        let idx = index(&[
            ("linux", "arm", Some("v5"), false),
            ("linux", "arm", Some("v6"), false),
            ("linux", "arm", Some("v7"), false),
        ]);
        assert_eq!(pick("linux/arm/v7", &idx), Some(2));
        let idx = index(&[
            ("linux", "arm", Some("v5"), false),
            ("linux", "arm", Some("v6"), false),
        ]);
        assert_eq!(pick("linux/arm/v7", &idx), Some(1));
        let idx = index(&[("linux", "arm", Some("v8"), false)]);
        assert_eq!(
            pick("linux/arm/v7", &idx),
            None,
            "newer variant must not be chosen"
        );
    }

    #[test]
    fn ignores_attestations_and_unknown() {
        let idx = index(&[
            ("unknown", "unknown", None, false),
            ("linux", "amd64", None, true),
            ("linux", "amd64", None, false),
        ]);
        assert_eq!(pick("linux/amd64", &idx), Some(2));
    }

    #[test]
    fn first_of_equal_matches_wins() {
        let idx = index(&[
            ("linux", "amd64", None, false),
            ("linux", "amd64", None, false),
        ]);
        assert_eq!(pick("linux/amd64", &idx), Some(0));
    }

    #[test]
    fn amd64_levels() {
        let idx = index(&[
            ("linux", "amd64", Some("v3"), false),
            ("linux", "amd64", None, false),
        ]);
        assert_eq!(pick("linux/amd64", &idx), Some(1));
        assert_eq!(pick("linux/amd64/v3", &idx), Some(0));
        assert_eq!(pick("linux/amd64/v2", &idx), Some(1));
    }
}
