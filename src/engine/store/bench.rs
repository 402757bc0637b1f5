//! Release-mode throughput check of `LayerStore::ingest` on a real layer;
//! run through scripts/bench-unpack.sh, which builds the layer and prints
//! the comparison with `gzip -dc | tar -x`.

use std::time::Instant;

use super::*;

#[test]
#[ignore = "benchmark: needs BERTH_BENCH_LAYER, run via scripts/bench-unpack.sh"]
fn bench_ingest_layer() {
    let Some(path) = std::env::var_os("BERTH_BENCH_LAYER") else {
        panic!("set BERTH_BENCH_LAYER to a .tar.gz layer");
    };
    let diff_id: Digest = std::env::var("BERTH_BENCH_DIFF_ID")
        .unwrap()
        .parse()
        .unwrap();
    let bytes_on_disk = std::fs::metadata(&path).unwrap().len();
    let digest: Digest = std::env::var("BERTH_BENCH_DIGEST")
        .unwrap()
        .parse()
        .unwrap();
    let dir =
        tempfile::tempdir_in(std::env::var_os("BERTH_BENCH_DIR").unwrap_or("/var/tmp".into()))
            .unwrap();
    let store = Store::open(Paths::new(Some(dir.path().join("root")))).unwrap();
    let desc = LayerSource {
        digest,
        size: Some(bytes_on_disk),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    };
    let file = std::fs::File::open(&path).unwrap();
    let chain = chain_id(None, &diff_id);
    let start = Instant::now();
    let info = {
        let _lock = store.layers.lock(&chain).unwrap();
        store
            .layers
            .ingest(
                file,
                &desc,
                &diff_id,
                &chain,
                None,
                &store.blobs,
                &mut |_| {},
            )
            .unwrap()
    };
    let secs = start.elapsed().as_secs_f64();
    assert!(store.layers.has(&chain));
    println!(
        "berth ingest: {:.2} s, {:.0} MB/s compressed, {:.0} MB/s unpacked ({} files bytes)",
        secs,
        bytes_on_disk as f64 / secs / 1e6,
        info.size as f64 / secs / 1e6,
        info.size
    );
}

#[test]
#[ignore = "benchmark: needs BERTH_BENCH_LAYER"]
/// The unpacker alone on an in-memory tar, then one syncfs.
fn bench_unpack_only() {
    use std::io::Read;
    let path = std::env::var_os("BERTH_BENCH_LAYER").unwrap();
    let data = std::fs::read(&path).unwrap();
    let mut tar = Vec::new();
    flate2::bufread::MultiGzDecoder::new(&data[..])
        .read_to_end(&mut tar)
        .unwrap();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let t = Instant::now();
    let stats = unpack::unpack(&tar[..], dir.path(), &unpack::UnpackOptions::default()).unwrap();
    let up = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let f = std::fs::File::open(dir.path()).unwrap();
    rustix::fs::syncfs(&f).unwrap();
    println!(
        "unpack {:.2} s ({} entries, {:.0} MB/s), syncfs {:.2} s",
        up,
        stats.entries,
        tar.len() as f64 / up / 1e6,
        t.elapsed().as_secs_f64()
    );
}
