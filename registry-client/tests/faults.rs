//! Fault handling against a real docker-registry behind testkit's
//! fault-injecting proxy: corrupted bytes, dropped connections, servers
//! that ignore Range, 503s; plus Link pagination, which distribution 2.8
//! does not implement for tags, against testkit's programmable server.

mod drive;

use std::sync::Arc;
use std::time::Duration;

use drive::{collect, dg, push_image};
use registry_client::{Client, ClientConfig, Error, Reference};
use testkit::http::Response;
use testkit::proxy::{Fault, Proxy};
use testkit::raw::{find, make_image, pseudo_random, with_marker};
use testkit::registry::Registry;
use testkit::server::Server;

/// Marks the spot in a body where a fault strikes.
const MARKER: &[u8] = b"<<BERTH-MARKER>>";

fn client(max_retries: u32) -> Client {
    Client::new(ClientConfig {
        certs_dirs: Vec::new(),
        max_retries,
        retry_base_delay: Duration::from_millis(10),
        ..Default::default()
    })
}

fn reference(host: &str, repo_tag: &str) -> Reference {
    format!("{host}/{repo_tag}").parse().unwrap()
}

/// Random bytes with the marker at `at`.
fn layer_with_marker(len: usize, at: usize) -> Vec<u8> {
    with_marker(pseudo_random(len, 42), MARKER, at)
}

/// Cut the first `times` GETs of blob `hex` right after the marker at `at`.
fn drop_after_marker(hex: &str, at: usize, times: usize) -> Fault {
    Fault::drop_body(hex, at + MARKER.len(), times)
}

#[tokio::test]
async fn corrupted_blob_ends_with_digest_mismatch() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let r = reference(&reg.host, "corrupt:1");
    let layer: Vec<u8> = MARKER.iter().copied().cycle().take(64 * 1024).collect();
    let img = make_image(dir.path(), layer, "corrupt");
    push_image(&client(0), &r, &img).await;

    // Every transfer of the layer (retries too) has a byte flipped.
    let proxy = Proxy::start(
        &reg.host,
        vec![Fault::corrupt(img.layer.hex(), 0, usize::MAX)],
    );
    let c = client(2);
    let via = reference(&proxy.host, "corrupt:1");
    let err = collect(
        &c,
        &via,
        &img.layer.digest,
        Some(img.layer.bytes.len() as u64),
    )
    .await
    .unwrap_err();
    match err {
        Error::DigestMismatch { expected, actual } => {
            assert_eq!(expected, img.layer.digest);
            assert_ne!(actual, expected);
        }
        other => panic!("expected a digest mismatch, got {other}"),
    }
}

#[tokio::test]
async fn corrupted_manifest_is_refused() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let r = reference(&reg.host, "badman:1");
    let img = make_image(
        dir.path(),
        pseudo_random(100, 7),
        std::str::from_utf8(MARKER).unwrap(),
    );
    push_image(&client(0), &r, &img).await;
    // The marker is the manifest's annotation; flip a byte of it.
    let at = find(&img.manifest, MARKER).unwrap();
    let proxy = Proxy::start(
        &reg.host,
        vec![Fault::corrupt("/manifests/", at, usize::MAX)],
    );
    let c = client(0);
    // By digest: the bytes do not hash to what was asked for.
    let by_digest = reference(&proxy.host, "badman:1").with_digest(dg(&img.manifest_digest));
    let err = c.fetch_manifest(&by_digest).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    // By tag: the registry's Docker-Content-Digest does not match the bytes.
    let err = c
        .fetch_manifest(&reference(&proxy.host, "badman:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
}

#[tokio::test]
async fn dropped_connection_resumes_with_range() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let len = 3 * 1024 * 1024;
    let at = 1024 * 1024;
    let img = make_image(dir.path(), layer_with_marker(len, at), "resume");
    push_image(&client(0), &reference(&reg.host, "resume:1"), &img).await;

    let proxy = Proxy::start(&reg.host, vec![drop_after_marker(img.layer.hex(), at, 1)]);
    let c = client(3);
    let r = reference(&proxy.host, "resume:1");
    let got = collect(&c, &r, &img.layer.digest, Some(len as u64))
        .await
        .unwrap();
    assert_eq!(got.len(), len);
    assert!(got == img.layer.bytes);
    assert_eq!(proxy.faulted("drop"), 1, "{}", proxy.dump());
    assert_eq!(
        proxy.count(|q| q.range.is_some()),
        1,
        "the second request resumes\n{}",
        proxy.dump()
    );
}

#[tokio::test]
async fn server_ignoring_range_restarts_and_skips() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let len = 2 * 1024 * 1024;
    let at = 700 * 1024;
    let img = make_image(dir.path(), layer_with_marker(len, at), "restart");
    push_image(&client(0), &reference(&reg.host, "restart:1"), &img).await;

    // The outer proxy drops the first transfer; the inner one hides Range
    // so the retry gets a full 200.
    let strip = Proxy::start(&reg.host, vec![Fault::strip_range("/blobs/")]);
    let outer = Proxy::start(&strip.host, vec![drop_after_marker(img.layer.hex(), at, 1)]);
    let c = client(3);
    let r = reference(&outer.host, "restart:1");
    let got = collect(&c, &r, &img.layer.digest, Some(len as u64))
        .await
        .unwrap();
    assert!(got == img.layer.bytes);
    assert_eq!(outer.faulted("drop"), 1, "{}", outer.dump());
    assert_eq!(strip.count(|q| q.range.is_some()), 1, "{}", strip.dump());
}

#[tokio::test]
async fn repeated_drops_exhaust_retries() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let len = 512 * 1024;
    let img = make_image(dir.path(), layer_with_marker(len, 0), "exhaust");
    push_image(&client(0), &reference(&reg.host, "exhaust:1"), &img).await;
    // The marker is at the start, so each (re)started transfer is cut with
    // no progress; two retries allowed, so three cuts end the stream.
    let strip = Proxy::start(&reg.host, vec![Fault::strip_range("/blobs/")]);
    let proxy = Proxy::start(
        &strip.host,
        vec![drop_after_marker(img.layer.hex(), 0, 100)],
    );
    let err = collect(
        &client(2),
        &reference(&proxy.host, "exhaust:1"),
        &img.layer.digest,
        Some(len as u64),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Transport { .. } | Error::SizeMismatch { .. }),
        "{err}"
    );
    assert_eq!(proxy.faulted("drop"), 3, "{}", proxy.dump());
}

#[tokio::test]
async fn wrong_expected_size_is_reported() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let r = reference(&reg.host, "size:1");
    let img = make_image(dir.path(), pseudo_random(10_000, 8), "size");
    push_image(&client(0), &r, &img).await;
    let c = client(0);
    let err = collect(&c, &r, &img.layer.digest, Some(9_000))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                expected: 9_000,
                ..
            }
        ),
        "{err}"
    );
    let err = collect(&c, &r, &img.layer.digest, Some(11_000))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                expected: 11_000,
                actual: 10_000,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn service_unavailable_is_retried() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), pseudo_random(5_000, 9), "503");
    push_image(&client(0), &reference(&reg.host, "flaky:1"), &img).await;
    // The first requests, whatever they ask for, get 503 + Retry-After: 0.
    let proxy = Proxy::start(&reg.host, vec![Fault::unavailable("", 2)]);
    let r = reference(&proxy.host, "flaky:1");
    let m = client(3).fetch_manifest(&r).await.unwrap();
    assert_eq!(m.digest, dg(&img.manifest_digest));
    assert_eq!(proxy.faulted("status 503"), 2, "{}", proxy.dump());

    let proxy = Proxy::start(&reg.host, vec![Fault::unavailable("", 2)]);
    let r = reference(&proxy.host, "flaky:1");
    let got = collect(&client(3), &r, &img.layer.digest, Some(5_000))
        .await
        .unwrap();
    assert!(got == img.layer.bytes);

    let proxy = Proxy::start(&reg.host, vec![Fault::unavailable("", 10)]);
    let err = client(1)
        .fetch_manifest(&reference(&proxy.host, "flaky:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Http { status: 503, .. }), "{err}");
}

#[tokio::test]
async fn tag_pagination_follows_link_headers() {
    let server = Server::start(|req| {
        if req.target.contains("last=b") {
            Response::new(200, r#"{"name":"p","tags":["c"]}"#)
        } else {
            Response::new(200, r#"{"name":"p","tags":["a","b"]}"#)
                .with_header("Link", r#"</v2/p/tags/list?last=b&n=2>; rel="next""#)
        }
    });
    let r = reference(&server.host, "p");
    let tags = client(0).list_tags_paged(&r, Some(2)).await.unwrap();
    assert_eq!(tags, vec!["a", "b", "c"]);
}

/// Registries redirect blob GETs to storage hosts; the credentials for the
/// registry must not follow the redirect there.
#[tokio::test]
async fn redirect_to_storage_drops_authorization() {
    let blob = pseudo_random(40_000, 21);
    let digest = registry_client::Digest::sha256_of(&blob);
    let body = blob.clone();
    let storage = Server::start(move |_| Response::new(200, body.clone()));
    let storage_host = storage.host.clone();
    let registry = Server::start(move |req| {
        if req.header("authorization") != Some("Basic dTpw") {
            return Response::new(401, "").with_header("WWW-Authenticate", r#"Basic realm="test""#);
        }
        Response::new(307, "").with_header(
            "Location",
            format!("http://{storage_host}/data{}", req.target),
        )
    });
    let host = registry.host.clone();
    let c = Client::new(ClientConfig {
        certs_dirs: Vec::new(),
        max_retries: 0,
        credentials: Some(Arc::new(registry_client::auth::StaticCredentials {
            registry: host.clone(),
            credentials: registry_client::Credentials::Basic {
                username: "u".into(),
                password: "p".into(),
            },
        })),
        ..Default::default()
    });
    let got = collect(&c, &reference(&host, "r"), digest.as_ref(), Some(40_000))
        .await
        .unwrap();
    assert!(got == blob);
    let seen: Vec<Option<String>> = storage
        .requests()
        .iter()
        .map(|q| q.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0], None, "Authorization leaked to the storage host");
}
