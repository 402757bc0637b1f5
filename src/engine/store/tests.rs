//! Store-level tests: one-pass ingest, verification, cleanup, locking, GC.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::Utc;

use super::testutil::TarMaker;
use super::*;

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(Paths::new(Some(dir.path().join("root")))).unwrap();
    Env { _dir: dir, store }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zstd(b: &[u8]) -> Vec<u8> {
    zstd::encode_all(b, 3).unwrap()
}

fn sample_tar() -> Vec<u8> {
    TarMaker::new()
        .dir("etc", 0o755)
        .file("etc/hostname", b"berth\n")
        .file("bin/sh", &[0x7f; 10_000])
        .hardlink("bin/ash", "bin/sh")
        .symlink("bin/ls", "busybox")
        .finish()
}

struct Layer {
    compressed: Vec<u8>,
    desc: LayerSource,
    diff_id: Digest,
}

fn layer(tar: &[u8], compress: fn(&[u8]) -> Vec<u8>, media_type: &str) -> Layer {
    let compressed = compress(tar);
    Layer {
        desc: LayerSource {
            digest: Digest::sha256_of(&compressed),
            size: Some(compressed.len() as u64),
            media_type: media_type.to_string(),
        },
        diff_id: Digest::sha256_of(tar),
        compressed,
    }
}

fn ingest(s: &Store, l: &Layer, parent: Option<&Digest>) -> Result<LayerInfo, StoreError> {
    let chain = chain_id(parent, &l.diff_id);
    let _lock = s.layers.lock(&chain)?;
    s.layers.ingest(
        &l.compressed[..],
        &l.desc,
        &l.diff_id,
        &chain,
        parent,
        &s.blobs,
        &mut |_| {},
    )
}

/// Nothing but the lock files is left anywhere in the store.
fn assert_clean(s: &Store) {
    assert_eq!(
        std::fs::read_dir(s.paths.layers_dir()).unwrap().count(),
        0,
        "layers/"
    );
    assert_eq!(
        std::fs::read_dir(s.paths.blobs_dir()).unwrap().count(),
        0,
        "blobs/"
    );
    assert_eq!(
        std::fs::read_dir(s.paths.tmp_dir()).unwrap().count(),
        0,
        "tmp/"
    );
}

#[test]
fn chain_ids_follow_the_spec() {
    let a = Digest::sha256_of(b"a");
    let b = Digest::sha256_of(b"b");
    assert_eq!(chain_id(None, &a), a);
    let want = Digest::sha256_of(format!("{a} {b}").as_bytes());
    assert_eq!(chain_id(Some(&a), &b), want);
}

#[test]
fn ingest_gzip_zstd_plain() {
    let e = env();
    let s = &e.store;
    let tar = sample_tar();
    let cases = [
        layer(&tar, gzip, "application/vnd.oci.image.layer.v1.tar+gzip"),
        layer(&tar, zstd, "application/vnd.oci.image.layer.v1.tar+zstd"),
        layer(
            &tar,
            |b| b.to_vec(),
            "application/vnd.oci.image.layer.v1.tar",
        ),
        // Labelled plain but compressed, as some registries serve them.
        layer(&tar, gzip, "application/vnd.docker.image.rootfs.diff.tar"),
    ];
    for (i, l) in cases.iter().enumerate() {
        // Distinct chains so each case really unpacks.
        let parent = Digest::sha256_of(format!("parent-{i}").as_bytes());
        let chain = chain_id(Some(&parent), &l.diff_id);
        let mut last = 0;
        let info = {
            let _lock = s.layers.lock(&chain).unwrap();
            s.layers
                .ingest(
                    &l.compressed[..],
                    &l.desc,
                    &l.diff_id,
                    &chain,
                    Some(&parent),
                    &s.blobs,
                    &mut |n| last = n,
                )
                .unwrap()
        };
        assert_eq!(last, l.compressed.len() as u64);
        assert_eq!(info.chain_id, chain);
        assert_eq!(info.size, 6 + 10_000);
        assert_eq!(info.compressed_size, l.compressed.len() as u64);
        assert!(s.layers.has(&chain));
        assert_eq!(s.layers.info(&chain).unwrap(), info);
        let diff = s.layers.diff_path(&chain);
        assert_eq!(
            std::fs::read(diff.join("etc/hostname")).unwrap(),
            b"berth\n"
        );
        assert_eq!(
            std::fs::read_link(diff.join("bin/ls")).unwrap().to_str(),
            Some("busybox")
        );
        assert_eq!(s.blobs.read(&l.desc.digest).unwrap(), l.compressed);
    }
    assert_eq!(s.layers.list().unwrap().len(), 4);
    assert_eq!(std::fs::read_dir(s.paths.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn trailing_zero_blocks_count_in_diff_id() {
    let e = env();
    let mut tar = sample_tar();
    tar.extend_from_slice(&[0u8; 8192]);
    let l = layer(&tar, gzip, "application/vnd.oci.image.layer.v1.tar+gzip");
    ingest(&e.store, &l, None).unwrap();
}

#[test]
fn diff_id_mismatch_leaves_nothing() {
    let e = env();
    let mut l = layer(
        &sample_tar(),
        gzip,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    l.diff_id = Digest::sha256_of(b"something else");
    let err = ingest(&e.store, &l, None).unwrap_err();
    assert!(matches!(err, StoreError::DiffIdMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&l.desc.digest.to_string()));
    assert_clean(&e.store);
}

#[test]
fn blob_digest_or_size_mismatch_leaves_nothing() {
    let e = env();
    let mut l = layer(
        &sample_tar(),
        gzip,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    l.desc.digest = Digest::sha256_of(b"not this");
    let err = ingest(&e.store, &l, None).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert_clean(&e.store);

    let mut l = layer(
        &sample_tar(),
        gzip,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    l.desc.size = Some(1);
    let err = ingest(&e.store, &l, None).unwrap_err();
    assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err}");
    assert_clean(&e.store);
}

#[test]
fn corrupt_compressed_stream_is_reported() {
    let e = env();
    let mut l = layer(
        &sample_tar(),
        gzip,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    let n = l.compressed.len();
    l.compressed[n / 2] ^= 0xff;
    l.desc.digest = Digest::sha256_of(&l.compressed);
    let err = ingest(&e.store, &l, None).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Decompress { .. }
                | StoreError::Archive { .. }
                | StoreError::DiffIdMismatch { .. }
        ),
        "{err}"
    );
    assert_clean(&e.store);
}

#[test]
fn hostile_layer_names_layer_and_entry_and_leaves_nothing() {
    let e = env();
    let tar = TarMaker::new()
        .file("ok", b"1")
        .symlink("a", "/")
        .file("a/etc/evil", b"x")
        .finish();
    let l = layer(&tar, gzip, "application/vnd.oci.image.layer.v1.tar+gzip");
    let err = ingest(&e.store, &l, None).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Entry { .. }), "{msg}");
    assert!(
        msg.contains("a/etc/evil") && msg.contains(&l.desc.digest.to_string()),
        "{msg}"
    );
    assert!(!std::path::Path::new("/etc/evil").exists());
    assert_clean(&e.store);
}

#[test]
fn decompression_bomb_hits_the_cap() {
    let e = env();
    let s = Store {
        layers: e.store.layers.clone().with_max_bytes(1 << 20),
        ..e.store.clone()
    };
    let tar = TarMaker::new().file("zeros", &vec![0u8; 8 << 20]).finish();
    let l = layer(&tar, gzip, "application/vnd.oci.image.layer.v1.tar+gzip");
    assert!(l.compressed.len() < 100_000);
    let err = ingest(&s, &l, None).unwrap_err();
    assert!(matches!(err, StoreError::LayerTooLarge { .. }), "{err}");
    assert_clean(&s);
}

#[test]
fn unsupported_media_type_is_refused() {
    let e = env();
    let l = layer(
        &sample_tar(),
        gzip,
        "application/vnd.oci.image.layer.v1.tar+encrypted",
    );
    let err = ingest(&e.store, &l, None).unwrap_err();
    assert!(
        matches!(err, StoreError::UnsupportedMediaType { .. }),
        "{err}"
    );
    assert_clean(&e.store);
}

#[test]
fn ingest_from_stored_blob() {
    let e = env();
    let s = &e.store;
    let l = layer(
        &sample_tar(),
        zstd,
        "application/vnd.oci.image.layer.v1.tar+zstd",
    );
    let info = ingest(s, &l, None).unwrap();
    {
        let _lock = s.layers.lock(&info.chain_id).unwrap();
        s.layers.remove(&info.chain_id).unwrap();
    }
    assert!(!s.layers.has(&info.chain_id));
    let again = s
        .layers
        .ingest_from_blob(&l.desc, &l.diff_id, &info.chain_id, None, &s.blobs)
        .unwrap();
    assert_eq!(again, info);
    // A blob that rotted on disk is caught.
    let _lock = s.layers.lock(&info.chain_id).unwrap();
    s.layers.remove(&info.chain_id).unwrap();
    let mut bytes = std::fs::read(s.blobs.path(&l.desc.digest)).unwrap();
    bytes.push(0);
    std::fs::write(s.blobs.path(&l.desc.digest), bytes).unwrap();
    let err = s
        .layers
        .ingest_from_blob(&l.desc, &l.diff_id, &info.chain_id, None, &s.blobs)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::DigestMismatch { .. }
                | StoreError::SizeMismatch { .. }
                | StoreError::Decompress { .. }
        ),
        "{err}"
    );
}

#[test]
fn concurrent_ingest_of_one_chain_unpacks_once() {
    let e = env();
    let s = Arc::new(e.store.clone());
    let l = Arc::new(layer(
        &sample_tar(),
        gzip,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ));
    let unpacked = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (s, l, unpacked) = (s.clone(), l.clone(), unpacked.clone());
            std::thread::spawn(move || {
                let chain = chain_id(None, &l.diff_id);
                let _lock = s.layers.lock(&chain).unwrap();
                if s.layers.has(&chain) {
                    return s.layers.info(&chain).unwrap();
                }
                unpacked.fetch_add(1, Ordering::SeqCst);
                s.layers
                    .ingest(
                        &l.compressed[..],
                        &l.desc,
                        &l.diff_id,
                        &chain,
                        None,
                        &s.blobs,
                        &mut |_| {},
                    )
                    .unwrap()
            })
        })
        .collect();
    let infos: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(infos.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(unpacked.load(Ordering::SeqCst), 1);
    let names: Vec<_> = std::fs::read_dir(s.paths.layers_dir()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn open_sweeps_abandoned_temps_but_not_live_ones() {
    let e = env();
    let layers = e.store.paths.layers_dir();
    let dead = layers.join(".tmp-dead");
    std::fs::create_dir_all(dead.join("diff/usr/bin")).unwrap();
    std::fs::write(dead.join("diff/usr/bin/x"), b"x").unwrap();
    let live = layers.join(".tmp-live");
    std::fs::create_dir(&live).unwrap();
    let held =
        crate::engine::fsutil::FileLock::try_file(std::fs::File::open(&live).unwrap(), &live)
            .unwrap()
            .unwrap();
    let dead_blob = e.store.paths.tmp_dir().join("blob-dead");
    std::fs::write(&dead_blob, b"partial").unwrap();

    let again = Store::open(e.store.paths.clone()).unwrap();
    assert!(!dead.exists());
    assert!(live.exists());
    assert!(!dead_blob.exists());
    drop(held);
    assert_eq!(again.layers.sweep_incomplete().unwrap(), 1);
    assert!(!live.exists());
}

/// A child process killed mid-unpack leaves a `.tmp-*` that the next open sweeps.
#[test]
fn killed_ingest_is_swept() {
    let e = env();
    let layers = e.store.paths.layers_dir();
    // The child holds the flock like a writer would, then dies without cleanup.
    let tmp = layers.join(".tmp-crashed");
    std::fs::create_dir_all(tmp.join("diff")).unwrap();
    let status = std::process::Command::new("flock")
        .arg(&tmp)
        .arg("sh")
        .arg("-c")
        .arg("kill -9 $$")
        .status()
        .unwrap();
    assert!(!status.success());
    Store::open(e.store.paths.clone()).unwrap();
    assert!(!tmp.exists());
}

fn record_for(infos: &[(LayerInfo, &Layer)], seed: &str) -> ImageRecord {
    ImageRecord {
        id: Digest::sha256_of(seed.as_bytes()),
        manifest_digest: Digest::sha256_of(format!("{seed}-m").as_bytes()),
        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        repo_digests: vec![],
        layers: infos
            .iter()
            .map(|(i, l)| LayerRef {
                digest: l.desc.digest.clone(),
                diff_id: i.diff_id.clone(),
                chain_id: i.chain_id.clone(),
                size: i.compressed_size,
                media_type: l.desc.media_type.clone(),
            })
            .collect(),
        config_size: 1,
        created: None,
        pulled_at: Utc::now(),
    }
}

#[test]
fn gc_removes_only_unreferenced_layers_and_blobs() {
    let e = env();
    let s = &e.store;
    let base = layer(
        &sample_tar(),
        gzip,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    let top_a = layer(
        &TarMaker::new().file("a", b"a").finish(),
        gzip,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    let top_b = layer(
        &TarMaker::new().file("b", b"b").finish(),
        gzip,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    let base_i = ingest(s, &base, None).unwrap();
    let a_i = ingest(s, &top_a, Some(&base_i.chain_id)).unwrap();
    let b_i = ingest(s, &top_b, Some(&base_i.chain_id)).unwrap();
    let img_a = record_for(&[(base_i.clone(), &base), (a_i.clone(), &top_a)], "A");
    let img_b = record_for(&[(base_i.clone(), &base), (b_i.clone(), &top_b)], "B");
    let (ida, idb) = (img_a.id.clone(), img_b.id.clone());
    ImageIndex::update(&s.paths, |idx| {
        idx.put_image(img_a);
        idx.put_image(img_b);
        Ok(())
    })
    .unwrap();
    assert_eq!(s.gc().unwrap(), GcReport::default());

    ImageIndex::update(&s.paths, |idx| {
        assert_eq!(idx.images_using_chain(&base_i.chain_id).len(), 2);
        idx.remove_image(&idb);
        Ok(())
    })
    .unwrap();
    // A layer whose lock is held (a pull in progress) survives this round.
    let held = s.layers.lock(&b_i.chain_id).unwrap();
    let r = s.gc().unwrap();
    assert!(r.layers.is_empty());
    assert_eq!(r.blobs, vec![top_b.desc.digest.clone()]);
    drop(held);
    let r = s.gc().unwrap();
    assert_eq!(r.layers, vec![b_i.chain_id.clone()]);
    assert!(s.layers.has(&base_i.chain_id) && s.layers.has(&a_i.chain_id));

    ImageIndex::update(&s.paths, |idx| {
        idx.remove_image(&ida);
        Ok(())
    })
    .unwrap();
    let r = s.gc().unwrap();
    assert_eq!(r.layers.len(), 2);
    assert_eq!(r.blobs.len(), 2);
    assert_clean(s);
}

/// Two pulls that share layers and reach them in opposite orders each end
/// up holding one and asking for the other: with exclusive locks held until
/// the record is written they deadlocked (seen in CI); claims do not.
#[test]
fn claims_in_opposite_orders_do_not_deadlock_and_keep_gc_off() {
    let e = env();
    let s = &e.store;
    let a = ingest(
        s,
        &layer(
            &sample_tar(),
            gzip,
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        None,
    )
    .unwrap()
    .chain_id;
    let other = TarMaker::new().file("b", b"b").finish();
    let b = ingest(
        s,
        &layer(&other, gzip, "application/vnd.oci.image.layer.v1.tar+gzip"),
        None,
    )
    .unwrap()
    .chain_id;
    let (tx, rx) = std::sync::mpsc::channel();
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let mut threads = Vec::new();
    for (first, second) in [(a.clone(), b.clone()), (b.clone(), a.clone())] {
        let (layers, tx, barrier) = (s.layers.clone(), tx.clone(), barrier.clone());
        threads.push(std::thread::spawn(move || {
            let one = layers.claim(&first).unwrap();
            barrier.wait();
            let two = layers.claim(&second).unwrap();
            let present =
                matches!(one, LayerClaim::Present(_)) && matches!(two, LayerClaim::Present(_));
            barrier.wait();
            tx.send(present).unwrap();
        }));
    }
    for _ in 0..2 {
        let present = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("two claims of present layers deadlocked");
        assert!(present);
    }
    for t in threads {
        t.join().unwrap();
    }
    // While a claim is held GC may not take the layer.
    let held = s.layers.claim(&a).unwrap();
    assert!(s.layers.try_lock(&a).unwrap().is_none());
    drop(held);
    assert!(s.layers.try_lock(&a).unwrap().is_some());
    // A missing layer is claimed exclusively, for its ingest.
    let missing = chain_id(None, &Digest::sha256_of(b"nothing"));
    assert!(matches!(
        s.layers.claim(&missing).unwrap(),
        LayerClaim::Missing(_)
    ));
}
