//! Proves the shared harness against independent tools (skopeo, the tar
//! crate, plain HTTP), so a failing berth test can be trusted to be berth's
//! fault.

mod common;

use common::http::{basic_header, request};
use common::image::{self, Compression, Entry, ImageBuilder, Layer, Media};
use common::proxy::{Fault, Proxy};
use common::registry::{Registry, RegistryOpts};
use common::token_server::TokenOpts;
use serde_json::Value;
use std::io::Read;
use std::process::Command;

struct Skopeo {
    auth: tempfile::TempDir,
}

impl Skopeo {
    fn new() -> Skopeo {
        Skopeo {
            auth: tempfile::tempdir().unwrap(),
        }
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("skopeo")
            .args(args)
            .env("REGISTRY_AUTH_FILE", self.auth.path().join("auth.json"))
            .output()
            .expect("skopeo is installed")
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "skopeo {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn inspect(&self, extra: &[&str], reference: &str) -> Value {
        let r = format!("docker://{reference}");
        let mut args = vec!["inspect"];
        args.extend_from_slice(extra);
        args.push(&r);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }
    /// `skopeo copy` to a dir: verifies every blob digest on the way.
    fn copy_to_dir(&self, extra: &[&str], reference: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let src = format!("docker://{reference}");
        let dst = format!("dir:{}", d.path().display());
        let mut args = vec!["copy", "--insecure-policy"];
        args.extend_from_slice(extra);
        args.push(&src);
        args.push(&dst);
        self.ok(&args);
        d
    }
}

fn assert_image_matches(v: &Value, img: &image::BuiltImage) {
    assert_eq!(v["Digest"].as_str().unwrap(), img.manifest.digest, "{v}");
    let layers: Vec<&str> = v["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let want: Vec<&str> = img.layers.iter().map(|l| l.blob.digest.as_str()).collect();
    assert_eq!(layers, want);
}

#[test]
fn plain_registry_serves_built_image() {
    let reg = Registry::plain();
    let art = ImageBuilder::new()
        .layer(Layer::new().file("hello.txt", "hi\n"))
        .cmd(&["cat", "/hello.txt"])
        .build();
    let digest = reg.push("test/busybox", "1", &art);
    assert_eq!(digest, art.top().digest);
    let sk = Skopeo::new();
    let v = sk.inspect(&["--tls-verify=false"], &reg.reference("test/busybox", "1"));
    assert_image_matches(&v, art.image());
    assert_eq!(v["Architecture"], "amd64");
    let d = sk.copy_to_dir(
        &["--src-tls-verify=false"],
        &reg.reference("test/busybox", "1"),
    );
    // dir: keeps the layer blobs by hex digest.
    for l in &art.image().layers {
        let got = std::fs::read(d.path().join(l.blob.hex())).unwrap();
        assert_eq!(got, l.blob.bytes);
    }
}

#[test]
fn base_layer_has_busybox_rootfs() {
    let l = image::base_layer().build(Media::Oci);
    let tar = l.tar.clone().unwrap();
    let mut ar = tar::Archive::new(&tar[..]);
    let mut seen = std::collections::HashMap::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        seen.insert(
            p,
            (
                e.header().entry_type(),
                e.header().mode().unwrap(),
                e.header().uid().unwrap(),
            ),
        );
    }
    assert_eq!(seen["bin/busybox"].0, tar::EntryType::Regular);
    assert_eq!(seen["bin/busybox"].1, 0o755);
    for a in [
        "bin/sh",
        "bin/ls",
        "bin/wget",
        "bin/nc",
        "bin/httpd",
        "bin/top",
    ] {
        assert_eq!(seen[a].0, tar::EntryType::Symlink, "{a}");
    }
    assert_eq!(seen["tmp"].1, 0o1777);
    assert_eq!(seen["home/app"].2, 1000);
    assert!(image::PASSWD.contains("app:x:1000:1000"));
    // gzip round trip gives the diff_id
    let mut dec = Vec::new();
    flate2::read::GzDecoder::new(&l.blob.bytes[..])
        .read_to_end(&mut dec)
        .unwrap();
    assert_eq!(image::digest_of(&dec), l.diff_id);
}

#[test]
fn dsl_entries_round_trip_through_tar_crate() {
    let long = format!("deep/{}/file-{}", "d".repeat(120), "x".repeat(60));
    let l = Layer::new()
        .add(Entry::dir("data").mode(0o750).owner(1000, 1000))
        .add(
            Entry::file("data/f", "content")
                .mode(0o640)
                .owner(1000, 1001)
                .mtime(1234567)
                .xattr("user.color", "blue"),
        )
        .add(Entry::symlink("data/link", "f"))
        .add(Entry::hardlink("data/hard", "data/f"))
        .add(Entry::fifo("data/fifo"))
        .add(Entry::chardev("data/null", 1, 3))
        .add(Entry::whiteout("etc/gone"))
        .add(Entry::opaque("var"))
        .add(Entry::file("with space/ünïcode ✓.txt", "u"))
        .add(Entry::file(long.as_str(), "long"))
        .add(Entry::symlink("longlink", long.as_str()));
    let tar = l.tar_bytes();
    let mut ar = tar::Archive::new(&tar[..]);
    let mut got = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let h = e.header().clone();
        let mut xattrs = Vec::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                xattrs.push((x.key().unwrap().to_string(), x.value_bytes().to_vec()));
            }
        }
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        got.push((p, h, link, xattrs, content));
    }
    let find = |p: &str| {
        got.iter()
            .find(|g| g.0 == p)
            .unwrap_or_else(|| panic!("{p} missing"))
    };
    let f = find("data/f");
    assert_eq!(f.1.mode().unwrap(), 0o640);
    assert_eq!((f.1.uid().unwrap(), f.1.gid().unwrap()), (1000, 1001));
    assert_eq!(f.1.mtime().unwrap(), 1234567);
    assert_eq!(
        f.3,
        vec![("SCHILY.xattr.user.color".to_string(), b"blue".to_vec())]
    );
    assert_eq!(f.4, b"content");
    assert_eq!(find("data/link").2.as_deref(), Some("f"));
    assert_eq!(find("data/hard").1.entry_type(), tar::EntryType::Link);
    assert_eq!(find("data/fifo").1.entry_type(), tar::EntryType::Fifo);
    let null = find("data/null");
    assert_eq!(null.1.entry_type(), tar::EntryType::Char);
    assert_eq!(null.1.device_major().unwrap(), Some(1));
    assert_eq!(null.1.device_minor().unwrap(), Some(3));
    find("etc/.wh.gone");
    find("var/.wh..wh..opq");
    assert_eq!(find("with space/ünïcode ✓.txt").4, b"u");
    assert_eq!(find(&long).4, b"long");
    assert_eq!(find("longlink").2.as_deref(), Some(long.as_str()));
}

#[test]
fn raw_layer_keeps_hostile_names() {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..9].copy_from_slice(b"../escape");
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    let l = Layer::new()
        .add(Entry::raw_header(h, "bad"))
        .add(Entry::file("/abs/file", "x"))
        .add(Entry::symlink("lnk", "/etc"))
        .add(Entry::file("lnk/passwd", "pwned"))
        .add(Entry::hardlink("hl", "../../etc/shadow"))
        .add(Entry::file("x", "y").xattr("trusted.overlay.opaque", "y"));
    let tar = l.tar_bytes();
    let mut ar = tar::Archive::new(&tar[..]);
    let names: Vec<Vec<u8>> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path_bytes().into_owned())
        .collect();
    assert_eq!(names[0], b"../escape");
    assert_eq!(names[1], b"/abs/file");
    assert_eq!(names[3], b"lnk/passwd");
    let mut ar = tar::Archive::new(&tar[..]);
    let hl = ar.entries().unwrap().nth(4).unwrap().unwrap();
    assert_eq!(&*hl.link_name_bytes().unwrap(), b"../../etc/shadow");
}

#[test]
fn bomb_layer_is_small_and_its_diff_id_is_right() {
    let size = 64 << 20;
    let l = Layer::bomb(size).build(Media::Oci);
    assert!(
        l.blob.bytes.len() < 1 << 20,
        "bomb blob is {} bytes",
        l.blob.bytes.len()
    );
    let mut dec = zstd::Decoder::new(&l.blob.bytes[..]).unwrap();
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    let n = std::io::copy(&mut dec, &mut h).unwrap();
    assert!(n > size);
    assert_eq!(
        format!("sha256:{}", hex::encode(sha2::Digest::finalize(h))),
        l.diff_id
    );
}

#[test]
fn htpasswd_registry_requires_credentials() {
    let reg = Registry::start(RegistryOpts::htpasswd("user", "pass"));
    let art = ImageBuilder::new().build();
    reg.push("test/private", "1", &art);
    let r = request(&reg.host, "GET", "/v2/", &[], &[]).unwrap();
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    let sk = Skopeo::new();
    let reference = format!("docker://{}", reg.reference("test/private", "1"));
    let denied = sk.run(&["inspect", "--tls-verify=false", &reference]);
    assert!(!denied.status.success());
    let denied = sk.run(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "user:wrong",
        &reference,
    ]);
    assert!(!denied.status.success());
    let v = sk.inspect(
        &["--tls-verify=false", "--creds", "user:pass"],
        &reg.reference("test/private", "1"),
    );
    assert_image_matches(&v, art.image());
    sk.copy_to_dir(
        &["--src-tls-verify=false", "--src-creds", "user:pass"],
        &reg.reference("test/private", "1"),
    );
}

#[test]
fn tls_registry_verifies_with_ca_from_certs_dir() {
    let reg = Registry::start(RegistryOpts::tls());
    let art = ImageBuilder::new().build();
    reg.push("test/tls", "1", &art);
    let certs = reg.certs_d();
    let host_dir = certs.join(&reg.host);
    assert!(host_dir.join("ca.crt").exists());
    let sk = Skopeo::new();
    let reference = format!("docker://{}", reg.reference("test/tls", "1"));
    // Without the CA, verification must fail: the cert is really checked.
    let denied = sk.run(&[
        "inspect",
        "--cert-dir",
        "/nonexistent-berth-certs",
        &reference,
    ]);
    assert!(!denied.status.success());
    let hd = host_dir.to_string_lossy().into_owned();
    let v = sk.inspect(&["--cert-dir", &hd], &reg.reference("test/tls", "1"));
    assert_image_matches(&v, art.image());
    sk.copy_to_dir(&["--src-cert-dir", &hd], &reg.reference("test/tls", "1"));
}

#[test]
fn token_registry_grants_scopes_and_counts_tokens() {
    let reg = Registry::start(RegistryOpts::token(TokenOpts::default()));
    let ts = reg.token.as_ref().unwrap();
    let art = ImageBuilder::new().build();
    reg.push("public/busybox", "1", &art);
    reg.push("private/busybox", "1", &art);
    let r = request(&reg.host, "GET", "/v2/", &[], &[]).unwrap();
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap().to_string();
    assert!(challenge.contains(&ts.realm()), "{challenge}");

    let sk = Skopeo::new();
    // Anonymous pull of a public repository works.
    let v = sk.inspect(
        &["--tls-verify=false", "--no-creds"],
        &reg.reference("public/busybox", "1"),
    );
    assert_image_matches(&v, art.image());
    // Anonymous pull of a private one does not; with credentials it does.
    let denied = sk.run(&[
        "inspect",
        "--tls-verify=false",
        "--no-creds",
        &format!("docker://{}", reg.reference("private/busybox", "1")),
    ]);
    assert!(!denied.status.success());
    let before = ts.issued();
    let v = sk.inspect(
        &["--tls-verify=false", "--creds", "user:pass"],
        &reg.reference("private/busybox", "1"),
    );
    assert_image_matches(&v, art.image());
    assert!(ts.issued() > before);
    // Wrong credentials: the token server answers 401.
    let bad = request(
        &format!("127.0.0.1:{}", ts.port),
        "GET",
        "/token?service=x&scope=repository:private/busybox:pull",
        &[("Authorization", &basic_header("user", "nope"))],
        &[],
    )
    .unwrap();
    assert_eq!(bad.status, 401);

    // Anonymous push is refused by the registry even with a token.
    let tok = request(
        &format!("127.0.0.1:{}", ts.port),
        "GET",
        &format!(
            "/token?service={}&scope=repository:public/busybox:pull,push",
            common::token_server::SERVICE
        ),
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(tok.status, 200);
    let t: Value = serde_json::from_slice(&tok.body).unwrap();
    let bearer = format!("Bearer {}", t["token"].as_str().unwrap());
    let up = request(
        &reg.host,
        "POST",
        "/v2/public/busybox/blobs/uploads/",
        &[("Authorization", &bearer)],
        &[],
    )
    .unwrap();
    assert_eq!(up.status, 401, "{}", up.text());
    // ...but that token does pull.
    let m = request(
        &reg.host,
        "GET",
        "/v2/public/busybox/manifests/1",
        &[
            ("Authorization", &bearer),
            ("Accept", Media::Oci.manifest()),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(m.status, 200, "{}", m.text());
    assert_eq!(m.body, art.top().bytes);
    let last = ts.requests().last().cloned().unwrap();
    assert_eq!(last.granted[0].1, vec!["pull".to_string()]);
}

#[test]
fn index_with_two_platforms_is_valid() {
    for media in [Media::Oci, Media::Docker] {
        let reg = Registry::plain();
        let art = ImageBuilder::new().media(media).build_two_platforms();
        reg.push("test/multi", "1", &art);
        let sk = Skopeo::new();
        let raw = sk.ok(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}", reg.reference("test/multi", "1")),
        ]);
        let idx: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(idx["mediaType"], media.index());
        assert_eq!(idx["manifests"].as_array().unwrap().len(), 2);
        let amd = sk.inspect(
            &["--tls-verify=false", "--override-arch", "amd64"],
            &reg.reference("test/multi", "1"),
        );
        let arm = sk.inspect(
            &[
                "--tls-verify=false",
                "--override-arch",
                "arm64",
                "--override-variant",
                "v8",
            ],
            &reg.reference("test/multi", "1"),
        );
        assert_eq!(amd["Architecture"], "amd64");
        assert_eq!(arm["Architecture"], "arm64");
        // skopeo reports the digest of what the tag names: the index.
        assert_eq!(amd["Digest"].as_str().unwrap(), art.top().digest);
        assert_eq!(amd["Labels"]["org.berth.test.platform"], "linux/amd64");
        assert_eq!(arm["Labels"]["org.berth.test.platform"], "linux/arm64");
        assert!(art.for_arch("arm64").config_json()["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("BERTH_TEST_ARCH=arm64")));
        assert_ne!(
            art.for_arch("amd64").config.digest,
            art.for_arch("arm64").config.digest
        );
        assert_eq!(
            art.for_arch("amd64").layers[0].blob.digest,
            art.for_arch("arm64").layers[0].blob.digest
        );
        sk.copy_to_dir(
            &["--src-tls-verify=false", "--override-arch", "arm64"],
            &reg.reference("test/multi", "1"),
        );
    }
}

#[test]
fn zstd_uncompressed_and_docker_media_types_are_accepted() {
    let reg = Registry::plain();
    let sk = Skopeo::new();
    // Docker v2s2 has no zstd layer type; skopeo rightly refuses the mix.
    for (i, media) in [Media::Oci, Media::Docker].into_iter().enumerate() {
        let zstd_or_gzip = if media == Media::Oci {
            Compression::Zstd
        } else {
            Compression::Gzip
        };
        let art = ImageBuilder::new()
            .media(media)
            .base_compression(zstd_or_gzip)
            .layer(Layer::new().file("a", "zstd").compression(zstd_or_gzip))
            .layer(
                Layer::new()
                    .file("b", "none")
                    .compression(Compression::None),
            )
            .layer(Layer::new().file("c", "gzip"))
            .build();
        let tag = format!("{i}");
        reg.push("test/mixed", &tag, &art);
        let v = sk.inspect(&["--tls-verify=false"], &reg.reference("test/mixed", &tag));
        assert_image_matches(&v, art.image());
        let d = sk.copy_to_dir(
            &["--src-tls-verify=false"],
            &reg.reference("test/mixed", &tag),
        );
        let layer = &art.image().layers[1];
        assert_eq!(
            std::fs::read(d.path().join(layer.blob.hex())).unwrap(),
            layer.blob.bytes
        );
        if media == Media::Oci {
            assert_eq!(
                zstd::decode_all(&layer.blob.bytes[..]).unwrap(),
                layer.tar.clone().unwrap()
            );
        }
        let raw = &art.image().layers[2];
        assert_eq!(raw.blob.bytes, raw.tar.clone().unwrap());
    }
}

#[test]
fn oci_layout_is_readable_by_skopeo() {
    let art = ImageBuilder::new()
        .layer(Layer::new().file("x", "y"))
        .build();
    let d = tempfile::tempdir().unwrap();
    art.write_oci_layout(d.path(), "v1");
    let sk = Skopeo::new();
    let out = sk.ok(&["inspect", &format!("oci:{}:v1", d.path().display())]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"].as_str().unwrap(), art.top().digest);
}

#[test]
fn proxy_counts_and_injects_faults() {
    let reg = Registry::plain();
    let art = ImageBuilder::new().build();
    reg.push("test/p", "1", &art);
    let layer = &art.image().layers[0].blob;
    let blob_path = format!("/v2/test/p/blobs/{}", layer.digest);

    let px = Proxy::start(
        &reg.host,
        vec![
            Fault::status("/manifests/", 500, 1),
            Fault::too_many("/manifests/", 1),
        ],
    );
    let accept = [("Accept", Media::Oci.manifest())];
    let r1 = request(&px.host, "GET", "/v2/test/p/manifests/1", &accept, &[]).unwrap();
    assert_eq!(r1.status, 500);
    let r2 = request(&px.host, "GET", "/v2/test/p/manifests/1", &accept, &[]).unwrap();
    assert_eq!(r2.status, 429);
    assert_eq!(r2.header("retry-after"), Some("0"));
    let r3 = request(&px.host, "GET", "/v2/test/p/manifests/1", &accept, &[]).unwrap();
    assert_eq!(r3.status, 200);
    assert_eq!(r3.body, art.top().bytes);
    assert_eq!(px.manifest_requests(), 3);

    // Drop after 1000 body bytes, once; then a Range request resumes.
    px.set_faults(vec![Fault::drop_blob_body(1000, 1)]);
    let cut = request(&px.host, "GET", &blob_path, &[], &[]);
    match cut {
        Ok(r) => panic!(
            "a cut body must not read as complete: got {} bytes",
            r.body.len()
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}"),
    }
    let rest = request(
        &px.host,
        "GET",
        &blob_path,
        &[("Range", "bytes=1000-")],
        &[],
    )
    .unwrap();
    assert_eq!(rest.status, 206);
    assert_eq!(rest.body, layer.bytes[1000..]);
    assert_eq!(px.range_requests(), 1);

    // Corrupt one byte, once.
    px.set_faults(vec![Fault::corrupt_blob("/blobs/", 5)]);
    let bad = request(&px.host, "GET", &blob_path, &[], &[]).unwrap();
    assert_eq!(bad.body.len(), layer.bytes.len());
    assert_ne!(image::digest_of(&bad.body), layer.digest);
    assert_eq!(bad.body[5], layer.bytes[5] ^ 0xff);
    let good = request(&px.host, "GET", &blob_path, &[], &[]).unwrap();
    assert_eq!(image::digest_of(&good.body), layer.digest);
    assert_eq!(px.blob_requests(), 4, "{}", px.dump());

    // skopeo through the proxy sees a clean image when no fault is armed.
    let sk = Skopeo::new();
    sk.copy_to_dir(
        &["--src-tls-verify=false"],
        &format!("{}/test/p:1", px.host),
    );
    assert!(px.blob_requests() >= 5);
}

#[test]
fn big_image_generator_is_deterministic() {
    let a = image::big_image(24 << 20, 3).build();
    let b = image::big_image(24 << 20, 3).build();
    assert_eq!(a.top().digest, b.top().digest);
    let img = a.image();
    assert_eq!(img.layers.len(), 3);
    let total: usize = img
        .layers
        .iter()
        .map(|l| l.tar.as_ref().unwrap().len())
        .sum();
    assert!(total >= 24 << 20, "only {total} bytes");
    let reg = Registry::plain();
    reg.push("test/big", "1", &a);
    let sk = Skopeo::new();
    let v = sk.inspect(&["--tls-verify=false"], &reg.reference("test/big", "1"));
    assert_image_matches(&v, img);
}

#[test]
fn many_layers_generator_makes_distinct_layers() {
    let a = image::many_layers(120).build();
    let img = a.image();
    assert_eq!(img.layers.len(), 120);
    let distinct: std::collections::HashSet<_> = img.diff_ids().into_iter().collect();
    assert_eq!(distinct.len(), 120);
    let chains = img.chain_hexes();
    assert_eq!(
        chains[0],
        img.layers[0].diff_id.trim_start_matches("sha256:")
    );
    let reg = Registry::plain();
    reg.push("test/many", "1", &a);
    let sk = Skopeo::new();
    let v = sk.inspect(&["--tls-verify=false"], &reg.reference("test/many", "1"));
    assert_image_matches(&v, img);
}

#[test]
fn registry_processes_end_with_their_guard() {
    let (pid, seed_pid);
    {
        let reg = Registry::start(RegistryOpts::htpasswd("u", "p"));
        pid = reg_pid(&reg.host);
        seed_pid = reg_pid(&reg.seed_host);
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
    for p in [pid, seed_pid] {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "registry {p} survived its guard"
        );
    }
}

/// The pid of the docker-registry listening on host:port (from /proc).
fn reg_pid(host: &str) -> u32 {
    let port: u16 = host.rsplit(':').next().unwrap().parse().unwrap();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let inode = tcp
        .lines()
        .skip(1)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let lport = u16::from_str_radix(f[1].rsplit(':').next().unwrap(), 16).unwrap();
            (lport == port && f[3] == "0A").then(|| f[9].to_string())
        })
        .expect("listening socket");
    let needle = format!("socket:[{inode}]");
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                if std::fs::read_link(fd.path())
                    .map(|l| l.to_string_lossy() == needle)
                    .unwrap_or(false)
                {
                    return pid;
                }
            }
        }
    }
    panic!("no process owns {needle}");
}
