//! Measurement, not a test of correctness: push and pull one large blob
//! through a local docker-registry and print the rates. Ignored by default:
//! `cargo test --release -p registry-client --test throughput -- --ignored --nocapture`

mod drive;

use std::time::Instant;

use drive::{collect, dg};
use registry_client::{Client, ClientConfig, Reference};
use testkit::raw::{blob, pseudo_random};
use testkit::registry::Registry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn blob_push_and_pull_rates() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let size = 256 * 1024 * 1024;
    let b = blob(dir.path(), pseudo_random(size, 99));
    let c = Client::new(ClientConfig {
        certs_dirs: Vec::new(),
        ..Default::default()
    });
    let r: Reference = format!("{}/bench:1", reg.host).parse().unwrap();
    let t = Instant::now();
    c.push_blob(&r, &dg(&b.digest), size as u64, &b.path)
        .await
        .unwrap();
    let push = t.elapsed();
    let t = Instant::now();
    let got = collect(&c, &r, &b.digest, Some(size as u64)).await.unwrap();
    let pull = t.elapsed();
    assert_eq!(got.len(), size);
    let mib = size as f64 / (1024.0 * 1024.0);
    println!(
        "256 MiB blob: push (16 MiB chunks) {:.2}s = {:.0} MiB/s; pull+sha256 verify {:.2}s = {:.0} MiB/s",
        push.as_secs_f64(),
        mib / push.as_secs_f64(),
        pull.as_secs_f64(),
        mib / pull.as_secs_f64()
    );
}
