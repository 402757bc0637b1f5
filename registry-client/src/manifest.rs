//! Manifest media types and parsing of image manifests and indexes,
//! OCI and Docker v2 schema 2 alike.

use oci_spec::image::{ImageIndex, ImageManifest};

use crate::error::Error;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_NONDIST_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// What a registry may answer a manifest GET with, best first.
pub const ACCEPT: &[&str] = &[
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// Manifests larger than this are refused (containerd uses the same bound).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// How a layer blob is compressed, from its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression of a layer media type, or None if it is not a layer type.
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        OCI_LAYER_TAR | OCI_LAYER_NONDIST_TAR | DOCKER_LAYER_TAR => Some(Compression::None),
        OCI_LAYER_GZIP | OCI_LAYER_NONDIST_GZIP | DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER => {
            Some(Compression::Gzip)
        }
        OCI_LAYER_ZSTD | OCI_LAYER_NONDIST_ZSTD | DOCKER_LAYER_ZSTD => Some(Compression::Zstd),
        _ => None,
    }
}

/// True for layers that registries usually do not serve themselves
/// (they carry `urls` to fetch from instead).
pub fn is_foreign_layer(media_type: &str) -> bool {
    matches!(
        media_type,
        DOCKER_FOREIGN_LAYER
            | OCI_LAYER_NONDIST_TAR
            | OCI_LAYER_NONDIST_GZIP
            | OCI_LAYER_NONDIST_ZSTD
    )
}

/// A parsed manifest: a single image, or an index of per-platform images.
// Unboxed on purpose: callers match on the oci-spec types directly and a
// manifest is parsed a handful of times per pull.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Image,
    Index,
    Schema1,
}

fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(Kind::Image),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(Kind::Index),
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Some(Kind::Schema1),
        _ => None,
    }
}

/// The media type without parameters (`; charset=utf-8`), lowercased.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Works out the media type of a manifest document: the content type when it
/// names a manifest type, else the document's own `mediaType`, else its shape.
pub fn detect_media_type(bytes: &[u8], content_type: &str) -> Result<String, Error> {
    let ct = essence(content_type);
    if kind_of(&ct).is_some() {
        return Ok(ct);
    }
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: "manifest".into(),
        source,
    })?;
    if let Some(mt) = doc.get("mediaType").and_then(|v| v.as_str()) {
        if kind_of(mt).is_some() {
            return Ok(mt.to_string());
        }
    }
    if doc.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Ok(DOCKER_SCHEMA1.to_string());
    }
    if doc.get("manifests").is_some_and(|m| m.is_array()) {
        return Ok(OCI_INDEX.to_string());
    }
    if doc.get("layers").is_some_and(|m| m.is_array())
        || doc.get("config").is_some_and(|c| c.is_object())
    {
        return Ok(OCI_MANIFEST.to_string());
    }
    let shown = if ct.is_empty() {
        "(none)".to_string()
    } else {
        ct
    };
    Err(Error::UnsupportedMediaType(shown))
}

impl Manifest {
    /// Parses a manifest from the bytes and the Content-Type the registry sent.
    pub fn parse(bytes: &[u8], content_type: &str) -> Result<Manifest, Error> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(Error::Protocol {
                registry: String::new(),
                detail: format!(
                    "manifest of {} bytes exceeds the {MAX_MANIFEST_SIZE} byte limit",
                    bytes.len()
                ),
            });
        }
        let media_type = detect_media_type(bytes, content_type)?;
        let json_err = |source| Error::Json {
            what: format!("manifest ({media_type})"),
            source,
        };
        match kind_of(&media_type) {
            Some(Kind::Image) => {
                let m: ImageManifest = serde_json::from_slice(bytes).map_err(json_err)?;
                Ok(Manifest::Image(m))
            }
            Some(Kind::Index) => {
                let m: ImageIndex = serde_json::from_slice(bytes).map_err(json_err)?;
                Ok(Manifest::Index(m))
            }
            Some(Kind::Schema1) => Err(Error::Schema1),
            None => Err(Error::UnsupportedMediaType(media_type)),
        }
    }

    pub fn as_image(&self) -> Option<&ImageManifest> {
        match self {
            Manifest::Image(m) => Some(m),
            Manifest::Index(_) => None,
        }
    }

    pub fn as_index(&self) -> Option<&ImageIndex> {
        match self {
            Manifest::Index(i) => Some(i),
            Manifest::Image(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn docker_manifest() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"{DOCKER_CONFIG}","size":7023,"digest":"{H}"}},
            "layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","size":32654,"digest":"{H}"}},
                      {{"mediaType":"{DOCKER_FOREIGN_LAYER}","size":1,"digest":"{H}","urls":["https://example.com/x"]}}]}}"#
        )
    }

    fn docker_list() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","size":7143,"digest":"{H}","platform":{{"architecture":"ppc64le","os":"linux"}}}},
            {{"mediaType":"{DOCKER_MANIFEST}","size":7682,"digest":"{H}","platform":{{"architecture":"amd64","os":"linux","features":["sse4"]}}}}]}}"#
        )
    }

    #[test]
    fn docker_v2s2_manifest() {
        let m = Manifest::parse(docker_manifest().as_bytes(), DOCKER_MANIFEST).unwrap();
        let img = m.as_image().unwrap();
        assert_eq!(img.layers().len(), 2);
        assert_eq!(img.config().size(), 7023);
        assert_eq!(img.layers()[0].media_type().to_string(), DOCKER_LAYER_GZIP);
        assert_eq!(
            layer_compression(DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert!(is_foreign_layer(img.layers()[1].media_type().as_ref()));
    }

    #[test]
    fn docker_manifest_list() {
        let m = Manifest::parse(
            docker_list().as_bytes(),
            &format!("{DOCKER_MANIFEST_LIST}; charset=utf-8"),
        )
        .unwrap();
        let idx = m.as_index().unwrap();
        assert_eq!(idx.manifests().len(), 2);
        assert!(m.as_image().is_none());
    }

    #[test]
    fn oci_types() {
        let idx = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        assert!(matches!(
            Manifest::parse(idx.as_bytes(), OCI_INDEX).unwrap(),
            Manifest::Index(_)
        ));
        let man = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","size":2,"digest":"{H}"}},"layers":[{{"mediaType":"{OCI_LAYER_ZSTD}","size":3,"digest":"{H}"}}]}}"#
        );
        let m = Manifest::parse(man.as_bytes(), OCI_MANIFEST).unwrap();
        assert_eq!(
            layer_compression(m.as_image().unwrap().layers()[0].media_type().as_ref()),
            Some(Compression::Zstd)
        );
    }

    #[test]
    fn sniffs_when_content_type_is_vague() {
        for ct in [
            "",
            "application/json",
            "text/plain",
            "application/octet-stream",
        ] {
            assert!(
                matches!(
                    Manifest::parse(docker_manifest().as_bytes(), ct).unwrap(),
                    Manifest::Image(_)
                ),
                "{ct}"
            );
            assert!(
                matches!(
                    Manifest::parse(docker_list().as_bytes(), ct).unwrap(),
                    Manifest::Index(_)
                ),
                "{ct}"
            );
        }
        // No mediaType field at all: shape decides.
        let bare_index = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            detect_media_type(bare_index.as_bytes(), "application/json").unwrap(),
            OCI_INDEX
        );
        let bare_image = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","size":2,"digest":"{H}"}},"layers":[]}}"#
        );
        assert_eq!(
            detect_media_type(bare_image.as_bytes(), "").unwrap(),
            OCI_MANIFEST
        );
    }

    #[test]
    fn schema1_rejected_clearly() {
        let s1 = r#"{"schemaVersion":1,"name":"x","tag":"latest","fsLayers":[]}"#;
        for ct in [
            DOCKER_SCHEMA1_SIGNED,
            DOCKER_SCHEMA1,
            "application/json",
            "",
        ] {
            let err = Manifest::parse(s1.as_bytes(), ct).unwrap_err();
            assert!(matches!(err, Error::Schema1), "{ct}");
            assert_eq!(
                err.to_string(),
                "schema1 manifests are not supported; repush the image with a current client"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            Manifest::parse(b"{}", "application/json"),
            Err(Error::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            Manifest::parse(b"not json", ""),
            Err(Error::Json { .. })
        ));
        assert!(matches!(
            Manifest::parse(b"[]", ""),
            Err(Error::UnsupportedMediaType(_))
        ));
        // A manifest type with a body that does not fit it.
        assert!(matches!(
            Manifest::parse(b"{\"layers\":5}", OCI_MANIFEST),
            Err(Error::Json { .. })
        ));
        let big = vec![b' '; MAX_MANIFEST_SIZE + 1];
        assert!(Manifest::parse(&big, OCI_MANIFEST).is_err());
    }
}
