//! Push and pull against a real docker-registry: round trip, tags with
//! pagination, cross-repository mount, chunked upload, mirrors, errors.

mod common;

use common::image::{collect, make_image, push_image};
use common::proxy::{Mode, Proxy};
use common::pseudo_random;
use common::registry::{make_tls_ca, Auth, Registry};
use registry_client::{Client, ClientConfig, Error, Manifest, Reference};

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
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let r = reference(&reg.host(), "berth/app:v1");
    let img = make_image(dir.path(), pseudo_random(200_000, 1), "round-trip");

    assert_eq!(c.blob_exists(&r, &img.layer.digest).await.unwrap(), None);
    let pushed = push_image(&c, &r, &img).await;
    assert_eq!(pushed, img.manifest_digest);
    assert_eq!(
        c.blob_exists(&r, &img.layer.digest).await.unwrap(),
        Some(200_000)
    );

    let by_tag = c.fetch_manifest(&r).await.unwrap();
    assert_eq!(by_tag.digest, img.manifest_digest);
    assert_eq!(by_tag.bytes.as_ref(), img.manifest.as_slice());
    assert_eq!(by_tag.media_type, registry_client::manifest::OCI_MANIFEST);
    let Manifest::Image(m) = by_tag.parse().unwrap() else {
        panic!("not an image manifest")
    };
    assert_eq!(m.layers()[0].size(), 200_000);

    let by_digest = c
        .fetch_manifest(&r.with_digest(img.manifest_digest.clone()))
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
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let img = make_image(dir.path(), pseudo_random(1000, 2), "tags");
    let mut want = Vec::new();
    for i in 0..5 {
        let tag = format!("t{i}");
        push_image(&c, &reference(&reg.host(), &format!("tagged:{tag}")), &img).await;
        want.push(tag);
    }
    let proxy = Proxy::start(reg.port, Mode::Pass);
    let r = reference(&proxy.host(), "tagged");
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
        .list_tags(&reference(&reg.host(), "nothing-here"))
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing}");
}

#[tokio::test]
async fn missing_content_is_not_found() {
    let reg = Registry::start(Auth::None);
    let c = client();
    let r = reference(&reg.host(), "ghost:nope");
    let err = c.fetch_manifest(&r).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("manifest for {}/ghost:nope not found", reg.host())
    );
    let d = registry_client::Digest::sha256_of(b"absent");
    let err = c.fetch_blob(&r, &d, None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn cross_repository_mount() {
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let src = reference(&reg.host(), "team/base:1");
    let dst = reference(&reg.host(), "team/derived:1");
    let img = make_image(dir.path(), pseudo_random(50_000, 3), "mount");
    push_image(&c, &src, &img).await;
    assert_eq!(c.blob_exists(&dst, &img.layer.digest).await.unwrap(), None);
    assert!(c
        .mount_blob(&dst, &img.layer.digest, "team/base")
        .await
        .unwrap());
    assert_eq!(
        c.blob_exists(&dst, &img.layer.digest).await.unwrap(),
        Some(50_000)
    );
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
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(reg.port, Mode::Pass);
    let dir = tempfile::tempdir().unwrap();
    let c = Client::new(ClientConfig {
        certs_dirs: Vec::new(),
        chunk_size: 4096,
        ..Default::default()
    });
    let r = reference(&proxy.host(), "chunked:1");
    let img = make_image(dir.path(), pseudo_random(4096 * 5 + 123, 4), "chunks");
    push_image(&c, &r, &img).await;
    // 6 PATCHes for the layer; the small config goes in one PUT.
    assert_eq!(
        proxy
            .stats
            .lock()
            .unwrap()
            .count("PATCH /v2/chunked/blobs/uploads/"),
        6
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
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let r = reference(&reg.host(), "sizes:1");
    let b = common::image::blob(dir.path(), b"twelve bytes".to_vec());
    let err = c.push_blob(&r, &b.digest, 13, &b.path).await.unwrap_err();
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
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let direct = client();
    let img = make_image(dir.path(), pseudo_random(3000, 5), "mirror");
    // The mirror stores docker.io content under the same repository path.
    push_image(
        &direct,
        &reference(&reg.host(), "library/busybox:latest"),
        &img,
    )
    .await;
    let dead = common::free_port();
    let c = Client::new(ClientConfig {
        certs_dirs: Vec::new(),
        mirrors: vec![
            format!("http://127.0.0.1:{dead}"),
            format!("http://{}", reg.host()),
        ],
        max_retries: 0,
        ..Default::default()
    });
    let r: Reference = "busybox".parse().unwrap();
    let m = c.fetch_manifest(&r).await.unwrap();
    assert_eq!(m.digest, img.manifest_digest);
    let layer = collect(&c, &r, &img.layer.digest, Some(3000))
        .await
        .unwrap();
    assert_eq!(layer, img.layer.bytes);
}

#[tokio::test]
async fn tls_registry_with_certs_d_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_tls_ca(dir.path());
    let reg = Registry::start(Auth::Tls {
        cert: ca.server_cert.clone(),
        key: ca.server_key.clone(),
    });
    let certs = dir.path().join("certs.d");
    std::fs::create_dir_all(certs.join(reg.host())).unwrap();
    std::fs::copy(&ca.ca_cert, certs.join(reg.host()).join("ca.crt")).unwrap();
    let c = Client::new(ClientConfig {
        certs_dirs: vec![certs],
        ..Default::default()
    });
    let r = reference(&reg.host(), "secure:1");
    let img = make_image(dir.path(), pseudo_random(10_000, 6), "tls");
    push_image(&c, &r, &img).await;
    assert_eq!(
        c.fetch_manifest(&r).await.unwrap().digest,
        img.manifest_digest
    );

    // Without the CA the https attempt fails; loopback then tries plain
    // http, which this TLS-only registry refuses.
    let plain = client();
    assert!(plain.fetch_manifest(&r).await.is_err());
}
