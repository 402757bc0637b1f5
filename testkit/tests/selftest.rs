//! Proofs of the pieces testkit gained for registry-client's tests (Range
//! stripping, 503s, fault combinations, the programmable server, refresh
//! token grants, raw images), using only testkit's own HTTP client and a
//! real docker-registry. The older pieces are proved by the root package's
//! `tests/harness_selftest.rs`.

use base64::Engine as _;
use testkit::http::{get, request, Response};
use testkit::image::{digest_of, Blob};
use testkit::proxy::{Fault, Proxy};
use testkit::push::{push_blob, push_manifest};
use testkit::raw::{blob, find, make_image, pseudo_random, with_marker};
use testkit::registry::Registry;
use testkit::server::Server;
use testkit::token_server::{TokenOpts, TokenServer};

/// Seeds a plain registry with one raw blob under `repo`; returns its path.
fn seeded_blob(reg: &Registry, repo: &str, bytes: Vec<u8>) -> (String, Blob) {
    let b = Blob::new("application/octet-stream", bytes);
    push_blob(&reg.seed_host, repo, &b).unwrap();
    (format!("/v2/{repo}/blobs/{}", b.digest), b)
}

#[test]
fn strip_range_makes_the_upstream_send_the_whole_blob() {
    let reg = Registry::plain();
    let (path, b) = seeded_blob(&reg, "strip/a", pseudo_random(50_000, 1));
    let range = [("Range", "bytes=10000-")];

    let direct = request(&reg.host, "GET", &path, &range, &[]).unwrap();
    assert_eq!(direct.status, 206);
    assert_eq!(direct.body, b.bytes[10_000..]);

    let px = Proxy::start(&reg.host, vec![Fault::strip_range("/blobs/")]);
    let via = request(&px.host, "GET", &path, &range, &[]).unwrap();
    assert_eq!(via.status, 200, "{}", px.dump());
    assert_eq!(via.body, b.bytes);
    // A request without Range is not counted as stripped.
    let plain = request(&px.host, "GET", &path, &[], &[]).unwrap();
    assert_eq!(plain.body, b.bytes);
    let recs = px.requests();
    assert_eq!(recs[0].range.as_deref(), Some("bytes=10000-"));
    assert_eq!(px.faulted("strip range"), 1, "{}", px.dump());
    assert_eq!(px.range_requests(), 1);
}

#[test]
fn strip_range_combines_with_a_drop_on_the_same_request() {
    let reg = Registry::plain();
    let (path, b) = seeded_blob(&reg, "strip/b", pseudo_random(200_000, 2));
    let px = Proxy::start(
        &reg.host,
        vec![Fault::strip_range(""), Fault::drop_body(b.hex(), 4096, 1)],
    );
    let cut = request(&px.host, "GET", &path, &[("Range", "bytes=100-")], &[]);
    assert!(cut.is_err(), "a cut body must not read as complete");
    let rec = &px.requests()[0];
    assert_eq!(rec.status, 200, "Range reached the registry: {}", px.dump());
    assert_eq!(rec.fault.as_deref(), Some("strip range, drop after 4096"));
    assert_eq!(px.faulted("drop"), 1);
    assert_eq!(px.faulted("strip"), 1);
    // The drop was used up; the strip goes on.
    let whole = request(&px.host, "GET", &path, &[("Range", "bytes=100-")], &[]).unwrap();
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, b.bytes);
}

#[test]
fn unavailable_answers_503_with_retry_after_then_forwards() {
    let reg = Registry::plain();
    let px = Proxy::start(&reg.host, vec![Fault::unavailable("", 2)]);
    for _ in 0..2 {
        let r = get(&px.host, "/v2/").unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("0"));
    }
    assert_eq!(get(&px.host, "/v2/").unwrap().status, 200);
    assert_eq!(px.faulted("status 503"), 2, "{}", px.dump());
    assert_eq!(px.requests().len(), 3);
}

#[test]
fn corrupt_by_offset_flips_that_byte_on_every_matching_get() {
    let marker = b"<<MARK>>";
    let reg = Registry::plain();
    let bytes = with_marker(pseudo_random(30_000, 3), marker, 20_000);
    let at = find(&bytes, marker).unwrap();
    assert_eq!(at, 20_000);
    let (path, b) = seeded_blob(&reg, "corrupt/a", bytes);
    let px = Proxy::start(&reg.host, vec![Fault::corrupt(b.hex(), at, usize::MAX)]);
    for _ in 0..3 {
        let r = request(&px.host, "GET", &path, &[], &[]).unwrap();
        assert_eq!(r.body.len(), b.bytes.len());
        assert_eq!(r.body[at], b.bytes[at] ^ 0xff);
        assert_eq!(r.body[..at], b.bytes[..at]);
        assert_eq!(r.body[at + 1..], b.bytes[at + 1..]);
    }
    assert_eq!(px.faulted("corrupt"), 3);
}

#[test]
fn server_answers_with_its_handler_and_logs_requests() {
    let srv = Server::start(|req| {
        if req.path() == "/redirect" {
            Response::new(307, "").with_header("Location", "http://127.0.0.1:1/elsewhere")
        } else {
            Response::new(
                200,
                format!("{} {} {}", req.method, req.target, req.body.len()),
            )
            .with_header("X-Seen", req.header("x-test").unwrap_or("none"))
        }
    });
    let r = request(&srv.host, "PUT", "/a?b=c", &[("X-Test", "yes")], b"hello").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "PUT /a?b=c 5");
    assert_eq!(r.header("x-seen"), Some("yes"));
    let r = get(&srv.host, "/redirect").unwrap();
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("http://127.0.0.1:1/elsewhere"));
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, b"hello");
    assert_eq!(reqs[0].header("x-test"), Some("yes"));
    assert_eq!(reqs[1].header("x-test"), None);
}

/// The claims of a JWT (not verified: the registry does that).
fn claims(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

#[test]
fn token_server_grants_refresh_tokens_and_logs_each_flow() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TokenServer::start(
        dir.path(),
        TokenOpts {
            refresh_tokens: vec![("r-1".into(), "user".into())],
            ..TokenOpts::default()
        },
    );
    let host = format!("127.0.0.1:{}", ts.port);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];

    let ok = request(
        &host,
        "POST",
        "/token",
        &form,
        b"grant_type=refresh_token&refresh_token=r-1&service=svc&scope=repository%3Aa%2Fb%3Apull%2Cpush",
    )
    .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    let body: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
    let c = claims(body["token"].as_str().unwrap());
    assert_eq!(c["sub"], "user");
    assert_eq!(c["aud"], "svc");
    assert_eq!(
        c["access"],
        serde_json::json!([{"type": "repository", "name": "a/b", "actions": ["pull", "push"]}])
    );

    let stale = request(
        &host,
        "POST",
        "/token",
        &form,
        b"grant_type=refresh_token&refresh_token=nope&service=svc",
    )
    .unwrap();
    assert_eq!(stale.status, 401);

    let basic = request(
        &host,
        "GET",
        "/token?service=svc&account=user&scope=repository:a/b:pull",
        &[(
            "Authorization",
            &testkit::http::basic_header("user", "pass"),
        )],
        &[],
    )
    .unwrap();
    assert_eq!(basic.status, 200);
    let anon = get(&host, "/token?service=svc&scope=repository:a/b:pull").unwrap();
    assert_eq!(anon.status, 200);

    let log = ts.requests();
    let flows: Vec<(&str, bool, u16, Option<&str>)> = log
        .iter()
        .map(|q| {
            (
                q.method.as_str(),
                q.authenticated(),
                q.status,
                q.account.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        flows,
        vec![
            ("POST", true, 200, None),
            ("POST", false, 401, None),
            ("GET", true, 200, Some("user")),
            ("GET", false, 200, None),
        ]
    );
    assert!(log.iter().all(|q| q.service == "svc"));
    // Anonymous callers get nothing outside the public prefixes.
    assert_eq!(log[3].granted, vec![("repository:a/b:pull".into(), vec![])]);
    assert_eq!(ts.issued(), 3);
}

#[test]
fn raw_image_is_consistent_and_a_registry_accepts_it() {
    assert_eq!(pseudo_random(1000, 5), pseudo_random(1000, 5));
    assert_ne!(pseudo_random(1000, 5), pseudo_random(1000, 6));

    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), pseudo_random(10_000, 7), "note-1");
    for b in [&img.config, &img.layer] {
        assert_eq!(b.digest, digest_of(&b.bytes));
        assert_eq!(std::fs::read(&b.path).unwrap(), b.bytes);
        assert_eq!(b.path, dir.path().join(b.hex()));
    }
    assert_eq!(img.manifest_digest, digest_of(&img.manifest));
    let m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    assert_eq!(m["config"]["digest"], img.config.digest.as_str());
    assert_eq!(m["layers"][0]["digest"], img.layer.digest.as_str());
    assert_eq!(m["layers"][0]["size"], 10_000);
    assert_eq!(m["annotations"]["note"], "note-1");
    let other = make_image(dir.path(), img.layer.bytes.clone(), "note-2");
    assert_eq!(other.layer.digest, img.layer.digest);
    assert_ne!(other.config.digest, img.config.digest);
    assert_ne!(other.manifest_digest, img.manifest_digest);

    let written = blob(dir.path(), b"abc".to_vec());
    assert_eq!(written.size(), 3);

    let reg = Registry::plain();
    for b in [&img.config, &img.layer] {
        push_blob(&reg.host, "raw/x", &Blob::new("", b.bytes.clone())).unwrap();
    }
    let media = m["mediaType"].as_str().unwrap();
    let pushed = push_manifest(
        &reg.host,
        "raw/x",
        "1",
        &Blob::new(media, img.manifest.clone()),
    )
    .unwrap();
    assert_eq!(pushed, img.manifest_digest);
    let back = request(
        &reg.host,
        "GET",
        "/v2/raw/x/manifests/1",
        &[("Accept", media)],
        &[],
    )
    .unwrap();
    assert_eq!(back.body, img.manifest);
}
