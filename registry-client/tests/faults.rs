//! Fault handling against a real docker-registry behind a fault-injecting
//! proxy: corrupted bytes, dropped connections, servers that ignore Range,
//! 503s; plus Link pagination, which distribution 2.8 does not implement
//! for tags, against a small paginating server.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::{Response, Server};

use common::image::{collect, make_image, push_image};
use common::proxy::{Mode, Proxy};
use common::pseudo_random;
use common::registry::{Auth, Registry};
use registry_client::{Client, ClientConfig, Error, Reference};

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
    let mut v = pseudo_random(len, 42);
    v[at..at + MARKER.len()].copy_from_slice(MARKER);
    v
}

#[tokio::test]
async fn corrupted_blob_ends_with_digest_mismatch() {
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let r = reference(&reg.host(), "corrupt:1");
    // The marker repeated, so some read surely holds a whole one.
    let layer: Vec<u8> = MARKER.iter().copied().cycle().take(64 * 1024).collect();
    let img = make_image(dir.path(), layer, "corrupt");
    push_image(&client(0), &r, &img).await;

    let proxy = Proxy::start(
        reg.port,
        Mode::Corrupt {
            marker: MARKER.to_vec(),
        },
    );
    let c = client(2);
    let via = reference(&proxy.host(), "corrupt:1");
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
            assert_eq!(expected, img.layer.digest.to_string());
            assert_ne!(actual, expected);
        }
        other => panic!("expected a digest mismatch, got {other}"),
    }
}

#[tokio::test]
async fn corrupted_manifest_is_refused() {
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let r = reference(&reg.host(), "badman:1");
    let img = make_image(
        dir.path(),
        pseudo_random(100, 7),
        std::str::from_utf8(MARKER).unwrap(),
    );
    push_image(&client(0), &r, &img).await;
    let proxy = Proxy::start(
        reg.port,
        Mode::Corrupt {
            marker: MARKER.to_vec(),
        },
    );
    let c = client(0);
    // By digest: the bytes do not hash to what was asked for.
    let by_digest = reference(&proxy.host(), "badman:1").with_digest(img.manifest_digest.clone());
    let err = c.fetch_manifest(&by_digest).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    // By tag: the registry's Docker-Content-Digest does not match the bytes.
    let err = c
        .fetch_manifest(&reference(&proxy.host(), "badman:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
}

#[tokio::test]
async fn dropped_connection_resumes_with_range() {
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let len = 3 * 1024 * 1024;
    let img = make_image(dir.path(), layer_with_marker(len, 1024 * 1024), "resume");
    push_image(&client(0), &reference(&reg.host(), "resume:1"), &img).await;

    let proxy = Proxy::start(
        reg.port,
        Mode::Drop {
            marker: MARKER.to_vec(),
            times: 1,
        },
    );
    let c = client(3);
    let r = reference(&proxy.host(), "resume:1");
    let got = collect(&c, &r, &img.layer.digest, Some(len as u64))
        .await
        .unwrap();
    assert_eq!(got.len(), len);
    assert!(got == img.layer.bytes);
    let stats = proxy.stats.lock().unwrap();
    assert_eq!(stats.drops, 1);
    assert_eq!(
        stats.count("range: bytes="),
        1,
        "the second request resumes"
    );
}

#[tokio::test]
async fn server_ignoring_range_restarts_and_skips() {
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let len = 2 * 1024 * 1024;
    let img = make_image(dir.path(), layer_with_marker(len, 700 * 1024), "restart");
    push_image(&client(0), &reference(&reg.host(), "restart:1"), &img).await;

    // Drops the first transfer; hides Range so the retry gets a full 200.
    let drop = Proxy::start(reg.port, Mode::StripRange);
    let outer = Proxy::start(
        drop.port,
        Mode::Drop {
            marker: MARKER.to_vec(),
            times: 1,
        },
    );
    let c = client(3);
    let r = reference(&outer.host(), "restart:1");
    let got = collect(&c, &r, &img.layer.digest, Some(len as u64))
        .await
        .unwrap();
    assert!(got == img.layer.bytes);
    assert_eq!(outer.stats.lock().unwrap().drops, 1);
    assert_eq!(drop.stats.lock().unwrap().count("range: bytes="), 1);
}

#[tokio::test]
async fn repeated_drops_exhaust_retries() {
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let len = 512 * 1024;
    let img = make_image(dir.path(), layer_with_marker(len, 0), "exhaust");
    push_image(&client(0), &reference(&reg.host(), "exhaust:1"), &img).await;
    // The marker is at the start, so each (re)started transfer is cut with
    // no progress; two retries allowed, so three cuts end the stream.
    let drop = Proxy::start(reg.port, Mode::StripRange);
    let proxy = Proxy::start(
        drop.port,
        Mode::Drop {
            marker: MARKER.to_vec(),
            times: 100,
        },
    );
    let err = collect(
        &client(2),
        &reference(&proxy.host(), "exhaust:1"),
        &img.layer.digest,
        Some(len as u64),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Transport { .. } | Error::SizeMismatch { .. }),
        "{err}"
    );
    assert_eq!(proxy.stats.lock().unwrap().drops, 3);
}

#[tokio::test]
async fn wrong_expected_size_is_reported() {
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let r = reference(&reg.host(), "size:1");
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
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), pseudo_random(5_000, 9), "503");
    push_image(&client(0), &reference(&reg.host(), "flaky:1"), &img).await;
    let proxy = Proxy::start(reg.port, Mode::Fail503 { times: 2 });
    let r = reference(&proxy.host(), "flaky:1");
    let m = client(3).fetch_manifest(&r).await.unwrap();
    assert_eq!(m.digest, img.manifest_digest);
    assert_eq!(proxy.stats.lock().unwrap().failures, 2);

    let proxy = Proxy::start(reg.port, Mode::Fail503 { times: 2 });
    let r = reference(&proxy.host(), "flaky:1");
    let got = collect(&client(3), &r, &img.layer.digest, Some(5_000))
        .await
        .unwrap();
    assert!(got == img.layer.bytes);

    let proxy = Proxy::start(reg.port, Mode::Fail503 { times: 10 });
    let err = client(1)
        .fetch_manifest(&reference(&proxy.host(), "flaky:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Http { status: 503, .. }), "{err}");
}

#[tokio::test]
async fn tag_pagination_follows_link_headers() {
    let server = Server::start(|req| {
        let ok = |body: &str, headers: Vec<(String, String)>| Response {
            status: "200 OK",
            headers,
            body: body.as_bytes().to_vec(),
        };
        if req.target.contains("last=b") {
            ok(r#"{"name":"p","tags":["c"]}"#, vec![])
        } else {
            ok(
                r#"{"name":"p","tags":["a","b"]}"#,
                vec![(
                    "Link".into(),
                    r#"</v2/p/tags/list?last=b&n=2>; rel="next""#.into(),
                )],
            )
        }
    });
    let r = reference(&format!("127.0.0.1:{}", server.port), "p");
    let tags = client(0).list_tags_paged(&r, Some(2)).await.unwrap();
    assert_eq!(tags, vec!["a", "b", "c"]);
}

/// Registries redirect blob GETs to storage hosts; the credentials for the
/// registry must not follow the redirect there.
#[tokio::test]
async fn redirect_to_storage_drops_authorization() {
    let blob = pseudo_random(40_000, 21);
    let digest = registry_client::Digest::sha256_of(&blob);
    let seen_auth: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let seen = seen_auth.clone();
    let body = blob.clone();
    let storage = Server::start(move |req| {
        seen.lock()
            .unwrap()
            .push(req.headers.get("authorization").cloned());
        Response {
            status: "200 OK",
            headers: vec![],
            body: body.clone(),
        }
    });
    let storage_port = storage.port;
    let registry = Server::start(move |req| {
        if req.headers.get("authorization").map(String::as_str) != Some("Basic dTpw") {
            return Response {
                status: "401 Unauthorized",
                headers: vec![("WWW-Authenticate".into(), r#"Basic realm="test""#.into())],
                body: vec![],
            };
        }
        Response {
            status: "307 Temporary Redirect",
            headers: vec![(
                "Location".into(),
                format!("http://127.0.0.1:{storage_port}/data{}", req.target),
            )],
            body: vec![],
        }
    });
    let host = format!("127.0.0.1:{}", registry.port);
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
    let got = collect(&c, &reference(&host, "r"), &digest, Some(40_000))
        .await
        .unwrap();
    assert!(got == blob);
    let seen = seen_auth.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0], None, "Authorization leaked to the storage host");
}
