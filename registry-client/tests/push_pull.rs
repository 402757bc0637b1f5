//! Push and pull against a real docker-registry: round trip, tags with
//! pagination, cross-repository mount, chunked upload, mirrors, errors.

mod drive;

use drive::{collect, dg, push_image};
use registry_client::{Client, ClientConfig, Error, Manifest, Reference};
use testkit::proxy::Proxy;
use testkit::raw::{make_image, pseudo_random};
use testkit::registry::{Registry, RegistryOpts};

fn client() -> Client {
    Client::new(ClientConfig {
        certs_dirs: Vec::new(),
        ..Default::default()
    })
}

fn reference(host: &str, repo_tag: &str) -> Reference {
    format!("{host}/{repo_tag}").parse().unwrap()
}

#[tokio::test]
async fn push_then_pull_round_trip() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let r = reference(&reg.host, "berth/app:v1");
    let img = make_image(dir.path(), pseudo_random(200_000, 1), "round-trip");

    assert_eq!(
        c.blob_exists(&r, &dg(&img.layer.digest)).await.unwrap(),
        None
    );
    let pushed = push_image(&c, &r, &img).await;
    assert_eq!(pushed, dg(&img.manifest_digest));
    assert_eq!(
        c.blob_exists(&r, &dg(&img.layer.digest)).await.unwrap(),
        Some(200_000)
    );

    let by_tag = c.fetch_manifest(&r).await.unwrap();
    assert_eq!(by_tag.digest, dg(&img.manifest_digest));
    assert_eq!(by_tag.bytes.as_ref(), img.manifest.as_slice());
    assert_eq!(by_tag.media_type, registry_client::manifest::OCI_MANIFEST);
    let Manifest::Image(m) = by_tag.parse().unwrap() else {
        panic!("not an image manifest")
    };
    assert_eq!(m.layers()[0].size(), 200_000);

    let by_digest = c
        .fetch_manifest(&r.with_digest(dg(&img.manifest_digest)))
        .await
        .unwrap();
    assert_eq!(by_digest.bytes, by_tag.bytes);

    let layer = collect(&c, &r, &img.layer.digest, Some(200_000))
        .await
        .unwrap();
    assert_eq!(layer, img.layer.bytes);
    let config = collect(&c, &r, &img.config.digest, None).await.unwrap();
    assert_eq!(config, img.config.bytes);
}

#[tokio::test]
async fn tags_are_listed_across_pages() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let img = make_image(dir.path(), pseudo_random(1000, 2), "tags");
    let mut want = Vec::new();
    for i in 0..5 {
        let tag = format!("t{i}");
        push_image(&c, &reference(&reg.host, &format!("tagged:{tag}")), &img).await;
        want.push(tag);
    }
    let proxy = Proxy::start(&reg.host, Vec::new());
    let r = reference(&proxy.host, "tagged");
    let mut all = c.list_tags(&r).await.unwrap();
    all.sort();
    assert_eq!(all, want);
    // distribution 2.8 ignores `n` for tags (pagination came in v3), so
    // Link-following is tested against a small paginating server in
    // tests/faults.rs.
    let mut paged = c.list_tags_paged(&r, Some(2)).await.unwrap();
    paged.sort();
    assert_eq!(paged, want);
    let missing = c
        .list_tags(&reference(&reg.host, "nothing-here"))
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing}");
}

#[tokio::test]
async fn missing_content_is_not_found() {
    let reg = Registry::plain();
    let c = client();
    let r = reference(&reg.host, "ghost:nope");
    let err = c.fetch_manifest(&r).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("manifest for {}/ghost:nope not found", reg.host)
    );
    let d = registry_client::Digest::sha256_of(b"absent");
    let err = c.fetch_blob(&r, &d, None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn cross_repository_mount() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let src = reference(&reg.host, "team/base:1");
    let dst = reference(&reg.host, "team/derived:1");
    let img = make_image(dir.path(), pseudo_random(50_000, 3), "mount");
    push_image(&c, &src, &img).await;
    let layer = dg(&img.layer.digest);
    assert_eq!(c.blob_exists(&dst, &layer).await.unwrap(), None);
    assert!(c.mount_blob(&dst, &layer, "team/base").await.unwrap());
    assert_eq!(c.blob_exists(&dst, &layer).await.unwrap(), Some(50_000));
    // A blob the source does not have: the registry asks for an upload.
    let absent = registry_client::Digest::sha256_of(b"not pushed");
    assert!(!c.mount_blob(&dst, &absent, "team/base").await.unwrap());
    let got = collect(&c, &dst, &img.layer.digest, Some(50_000))
        .await
        .unwrap();
    assert_eq!(got, img.layer.bytes);
}

#[tokio::test]
async fn chunked_upload_uses_patch() {
    let reg = Registry::plain();
    let proxy = Proxy::start(&reg.host, Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let c = Client::new(ClientConfig {
        certs_dirs: Vec::new(),
        chunk_size: 4096,
        ..Default::default()
    });
    let r = reference(&proxy.host, "chunked:1");
    let img = make_image(dir.path(), pseudo_random(4096 * 5 + 123, 4), "chunks");
    push_image(&c, &r, &img).await;
    // 6 PATCHes for the layer; the small config goes in one PUT.
    assert_eq!(
        proxy.count(|q| q.method == "PATCH" && q.target.starts_with("/v2/chunked/blobs/uploads/")),
        6,
        "{}",
        proxy.dump()
    );
    let got = collect(
        &c,
        &r,
        &img.layer.digest,
        Some(img.layer.bytes.len() as u64),
    )
    .await
    .unwrap();
    assert_eq!(got, img.layer.bytes);
}

#[tokio::test]
async fn push_rejects_size_mismatch_before_upload() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let r = reference(&reg.host, "sizes:1");
    let b = testkit::raw::blob(dir.path(), b"twelve bytes".to_vec());
    let err = c
        .push_blob(&r, &dg(&b.digest), 13, &b.path)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                expected: 13,
                actual: 12,
                ..
            }
        ),
        "{err}"
    );
    // A wrong digest is refused by the registry.
    let wrong = registry_client::Digest::sha256_of(b"other");
    assert!(c.push_blob(&r, &wrong, 12, &b.path).await.is_err());
    assert_eq!(c.blob_exists(&r, &wrong).await.unwrap(), None);
}

#[tokio::test]
async fn docker_hub_pulls_go_to_mirrors_in_order() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let direct = client();
    let img = make_image(dir.path(), pseudo_random(3000, 5), "mirror");
    // The mirror stores docker.io content under the same repository path.
    push_image(
        &direct,
        &reference(&reg.host, "library/busybox:latest"),
        &img,
    )
    .await;
    let dead = testkit::proc::free_port();
    let c = Client::new(ClientConfig {
        certs_dirs: Vec::new(),
        mirrors: vec![
            format!("http://127.0.0.1:{dead}"),
            format!("http://{}", reg.host),
        ],
        max_retries: 0,
        ..Default::default()
    });
    let r: Reference = "busybox".parse().unwrap();
    let m = c.fetch_manifest(&r).await.unwrap();
    assert_eq!(m.digest, dg(&img.manifest_digest));
    let layer = collect(&c, &r, &img.layer.digest, Some(3000))
        .await
        .unwrap();
    assert_eq!(layer, img.layer.bytes);
}

#[tokio::test]
async fn tls_registry_with_certs_d_ca() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(RegistryOpts::tls());
    // `<certs>/127.0.0.1:PORT/ca.crt`, as docker's certs.d.
    let certs = reg.certs_d();
    let c = Client::new(ClientConfig {
        certs_dirs: vec![certs.clone()],
        ..Default::default()
    });
    let r = reference(&reg.host, "secure:1");
    let img = make_image(dir.path(), pseudo_random(10_000, 6), "tls");
    push_image(&c, &r, &img).await;
    assert_eq!(
        c.fetch_manifest(&r).await.unwrap().digest,
        dg(&img.manifest_digest)
    );

    // Without the CA: loopback counts as an insecure registry, and docker
    // talks https to those without verifying the certificate.
    let unverified = client();
    assert_eq!(
        unverified.fetch_manifest(&r).await.unwrap().digest,
        dg(&img.manifest_digest)
    );

    // Treated like any other host, the registry's certificate must verify:
    // without the CA the pull fails on TLS and never falls back to http.
    let strict = Client::new(ClientConfig {
        loopback_insecure: false,
        certs_dirs: vec![],
        ..Default::default()
    });
    let err = strict.fetch_manifest(&r).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("certificate") || msg.contains("TLS") || msg.contains("tls"),
        "expected a TLS verification error, got: {msg}"
    );
    let strict_with_ca = Client::new(ClientConfig {
        loopback_insecure: false,
        certs_dirs: vec![certs],
        ..Default::default()
    });
    assert_eq!(
        strict_with_ca.fetch_manifest(&r).await.unwrap().digest,
        dg(&img.manifest_digest)
    );
}
