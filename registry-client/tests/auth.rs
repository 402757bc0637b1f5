//! Authentication against a real docker-registry: htpasswd (Basic) and
//! token auth with testkit's token server signing RS256 JWTs.

mod drive;

use std::sync::Arc;

use drive::{collect, dg, push_image};
use registry_client::auth::StaticCredentials;
use registry_client::{Client, ClientConfig, Credentials, Error, Reference};
use testkit::raw::{make_image, pseudo_random};
use testkit::registry::{Registry, RegistryOpts};
use testkit::token_server::{TokenOpts, TokenServer};

fn client_with(registry: &str, creds: Option<Credentials>) -> Client {
    Client::new(ClientConfig {
        certs_dirs: Vec::new(),
        max_retries: 0,
        credentials: creds.map(|credentials| {
            Arc::new(StaticCredentials {
                registry: registry.to_string(),
                credentials,
            }) as Arc<dyn registry_client::CredentialSource>
        }),
        ..Default::default()
    })
}

fn basic(u: &str, p: &str) -> Option<Credentials> {
    Some(Credentials::Basic {
        username: u.into(),
        password: p.into(),
    })
}

fn reference(host: &str, repo_tag: &str) -> Reference {
    format!("{host}/{repo_tag}").parse().unwrap()
}

#[tokio::test]
async fn htpasswd_basic_auth() {
    let reg = Registry::start(RegistryOpts::htpasswd("alice", "wonder"));
    let host = reg.host.clone();
    let dir = tempfile::tempdir().unwrap();
    let r = reference(&host, "private/app:1");
    let img = make_image(dir.path(), pseudo_random(20_000, 11), "basic");

    let good = client_with(&host, basic("alice", "wonder"));
    good.check_login(&host).await.unwrap();
    push_image(&good, &r, &img).await;
    assert_eq!(
        good.fetch_manifest(&r).await.unwrap().digest,
        dg(&img.manifest_digest)
    );
    assert!(
        collect(&good, &r, &img.layer.digest, Some(20_000))
            .await
            .unwrap()
            == img.layer.bytes
    );

    let wrong = client_with(&host, basic("alice", "nope"));
    let err = wrong.check_login(&host).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().starts_with("unauthorized: "), "{err}");

    let anonymous = client_with(&host, None);
    let err = anonymous.fetch_manifest(&r).await.unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("pull access denied for {host}/private/app")),
        "{err}"
    );
    let err = anonymous
        .push_blob(&r, &dg(&img.layer.digest), 20_000, &img.layer.path)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
}

/// A token-auth registry: user bob/builder, identity token `refresh-123`
/// for bob, and anonymous callers get tokens that grant nothing.
fn token_registry() -> Registry {
    Registry::start(RegistryOpts::token(TokenOpts {
        users: vec![("bob".into(), "builder".into())],
        public_prefixes: Vec::new(),
        refresh_tokens: vec![("refresh-123".into(), "bob".into())],
        ..TokenOpts::default()
    }))
}

fn token_server(reg: &Registry) -> &TokenServer {
    reg.token.as_ref().expect("a token-auth registry")
}

#[tokio::test]
async fn bearer_token_flow_with_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let reg = token_registry();
    let ts = token_server(&reg);
    let host = reg.host.clone();
    let c = client_with(&host, basic("bob", "builder"));
    let r = reference(&host, "team/app:1");
    let img = make_image(dir.path(), pseudo_random(30_000, 12), "token");
    push_image(&c, &r, &img).await;

    let reqs = ts.requests();
    assert!(!reqs.is_empty());
    assert!(
        reqs.iter().all(|q| q.authenticated() && q.method == "GET"),
        "{reqs:?}"
    );
    assert!(reqs
        .iter()
        .all(|q| q.service == testkit::token_server::SERVICE));
    assert!(reqs.iter().all(|q| q.account.as_deref() == Some("bob")));
    assert!(
        reqs.iter().any(|q| q
            .scopes
            .contains(&"repository:team/app:pull,push".to_string())),
        "{reqs:?}"
    );

    // Pulls reuse the push token (it covers pull): no new token requests.
    let before = ts.requests().len();
    assert_eq!(
        c.fetch_manifest(&r).await.unwrap().digest,
        dg(&img.manifest_digest)
    );
    assert!(
        collect(&c, &r, &img.layer.digest, Some(30_000))
            .await
            .unwrap()
            == img.layer.bytes
    );
    assert!(collect(&c, &r, &img.config.digest, None).await.unwrap() == img.config.bytes);
    assert_eq!(ts.requests().len(), before, "token was not reused");

    // Cross-repository mount asks for push on the target and pull on the source.
    let dst = reference(&host, "team/other:1");
    assert!(c
        .mount_blob(&dst, &dg(&img.layer.digest), "team/app")
        .await
        .unwrap());
    let last = ts.requests().last().cloned().unwrap();
    assert!(
        last.scopes
            .contains(&"repository:team/other:pull,push".to_string()),
        "{last:?}"
    );
    assert!(
        last.scopes
            .contains(&"repository:team/app:pull".to_string()),
        "{last:?}"
    );
    assert_eq!(
        c.blob_exists(&dst, &dg(&img.layer.digest)).await.unwrap(),
        Some(30_000)
    );
}

#[tokio::test]
async fn bearer_login_and_denials() {
    let reg = token_registry();
    let ts = token_server(&reg);
    let host = reg.host.clone();
    client_with(&host, basic("bob", "builder"))
        .check_login(&host)
        .await
        .unwrap();

    let err = client_with(&host, basic("bob", "wrong"))
        .check_login(&host)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unauthorized: incorrect username or password"
    );

    // Anonymous: the token server hands out a token that grants nothing.
    let err = client_with(&host, None)
        .fetch_manifest(&reference(&host, "team/app:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err}");
    assert!(ts.requests().iter().any(|q| !q.authenticated()));
}

#[tokio::test]
async fn identity_token_uses_oauth_refresh_grant() {
    let dir = tempfile::tempdir().unwrap();
    let reg = token_registry();
    let ts = token_server(&reg);
    let host = reg.host.clone();
    let c = client_with(
        &host,
        Some(Credentials::IdentityToken("refresh-123".into())),
    );
    c.check_login(&host).await.unwrap();
    let r = reference(&host, "oauth/app:1");
    let img = make_image(dir.path(), pseudo_random(1_000, 13), "oauth");
    push_image(&c, &r, &img).await;
    assert_eq!(
        c.fetch_manifest(&r).await.unwrap().digest,
        dg(&img.manifest_digest)
    );
    let reqs = ts.requests();
    assert!(
        reqs.iter().all(|q| q.method == "POST" && q.authenticated()),
        "{reqs:?}"
    );

    let bad = client_with(&host, Some(Credentials::IdentityToken("stale".into())));
    let err = bad.check_login(&host).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn docker_config_credentials_drive_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let reg = token_registry();
    let host = reg.host.clone();
    let mut cfg =
        registry_client::DockerConfig::load_from(dir.path().join("docker/config.json")).unwrap();
    cfg.login_store(&host, "bob", "builder").unwrap();
    let reloaded =
        registry_client::DockerConfig::load_from(dir.path().join("docker/config.json")).unwrap();
    let c = Client::new(ClientConfig {
        certs_dirs: Vec::new(),
        credentials: Some(Arc::new(reloaded)),
        ..Default::default()
    });
    c.check_login(&host).await.unwrap();
    let r = reference(&host, "cfg/app:1");
    let img = make_image(dir.path(), pseudo_random(2_000, 14), "cfg");
    push_image(&c, &r, &img).await;
    assert_eq!(c.list_tags(&r).await.unwrap(), vec!["1"]);
}

#[tokio::test]
async fn parallel_requests_share_one_token_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let reg = token_registry();
    let ts = token_server(&reg);
    let host = reg.host.clone();
    let pusher = client_with(&host, basic("bob", "builder"));
    let r = reference(&host, "par/app:1");
    let img = make_image(dir.path(), pseudo_random(8_000, 15), "parallel");
    push_image(&pusher, &r, &img).await;

    // A fresh client learns the challenge from `login` (a scope-less
    // token); then eight parallel pulls need one pull token between them.
    let c = client_with(&host, basic("bob", "builder"));
    c.check_login(&host).await.unwrap();
    let before = ts.requests().len();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, r, d) = (c.clone(), r.clone(), img.layer.digest.clone());
        tasks.push(tokio::spawn(async move {
            collect(&c, &r, &d, Some(8_000)).await.unwrap()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap() == img.layer.bytes);
    }
    assert_eq!(
        ts.requests().len() - before,
        1,
        "one token fetch shared by parallel requests"
    );
}
