//! The two steps every integration test takes through the client under
//! test: push a `testkit::raw` image and collect a blob stream. All
//! fixtures (registries, proxies, servers, content) come from `testkit`.
#![allow(dead_code)]

use bytes::Bytes;
use futures_util::StreamExt as _;
use registry_client::manifest::OCI_MANIFEST;
use registry_client::{Client, Digest, Reference};
use testkit::raw::RawImage;

/// A testkit digest (`sha256:<hex>`) as the client's type.
pub fn dg(s: &str) -> Digest {
    s.parse()
        .unwrap_or_else(|e| panic!("testkit made a bad digest {s}: {e}"))
}

/// Pushes blobs (skipping those present) and the manifest under r's tag.
pub async fn push_image(client: &Client, r: &Reference, img: &RawImage) -> Digest {
    for b in [&img.config, &img.layer] {
        let d = dg(&b.digest);
        if client.blob_exists(r, &d).await.unwrap().is_none() {
            client
                .push_blob(r, &d, b.bytes.len() as u64, &b.path)
                .await
                .unwrap();
        }
    }
    client
        .put_manifest(r, OCI_MANIFEST, Bytes::from(img.manifest.clone()))
        .await
        .unwrap()
}

/// Collects a blob stream; the error, if the stream ended with one.
pub async fn collect(
    client: &Client,
    r: &Reference,
    d: &str,
    size: Option<u64>,
) -> Result<Vec<u8>, registry_client::Error> {
    let mut s = client.fetch_blob(r, &dg(d), size).await?;
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.extend_from_slice(&item?);
    }
    Ok(out)
}
