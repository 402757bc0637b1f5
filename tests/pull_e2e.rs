//! End-to-end tests of `berth pull`, `images`, `rmi`, `tag`, `image inspect`
//! and `login` against real registries, written to docker's documented
//! behaviour. Fixtures come from tests/common (never from berth itself).

mod common;

use common::berth::Berth;
use common::image::{self, Artifact, Compression, Entry, ImageBuilder, Layer, Media};
use common::proxy::{Fault, Proxy};
use common::registry::{Registry, RegistryOpts};
use common::store;
use common::token_server::TokenOpts;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

fn short(digest: &str) -> &str {
    &digest.trim_start_matches("sha256:")[..12]
}

fn simple_image() -> Artifact {
    ImageBuilder::new()
        .layer(Layer::new().file("hello.txt", "hello from layer 2\n"))
        .cmd(&["cat", "/hello.txt"])
        .label("org.example.test", "pull")
        .build()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect()
}

/// The committed chain dirs must be exactly the image's chains.
fn assert_image_layers_present(b: &Berth, img: &image::BuiltImage) {
    for c in img.chain_hexes() {
        assert!(
            store::diff_dir(b.root(), &c).is_dir(),
            "layer {c} not unpacked"
        );
    }
    store::assert_layers_consistent(b.root());
}

// ------------------------------------------------------------ output

#[test]
fn pull_prints_docker_non_tty_lines() {
    let reg = Registry::plain();
    let art = simple_image();
    reg.push("test/busybox", "1", &art);
    let b = Berth::new();
    let reference = reg.reference("test/busybox", "1");
    let out = b.ok(&["pull", &reference]);
    let l = lines(&out);
    assert_eq!(l[0], "1: Pulling from test/busybox", "{out}");
    for layer in &art.image().layers {
        let want = format!("{}: Pull complete", short(&layer.blob.digest));
        assert!(l.contains(&want.as_str()), "missing {want:?} in\n{out}");
    }
    assert!(
        l.contains(&format!("Digest: {}", art.top().digest).as_str()),
        "{out}"
    );
    assert!(
        l.contains(&format!("Status: Downloaded newer image for {reference}").as_str()),
        "{out}"
    );
    assert_eq!(*l.last().unwrap(), reference, "{out}");
    assert!(
        !out.contains('\x1b'),
        "non-TTY output must have no escape sequences:\n{out:?}"
    );
    assert_image_layers_present(&b, art.image());
}

#[test]
fn pull_quiet_prints_only_the_reference() {
    let reg = Registry::plain();
    reg.push("test/busybox", "1", &simple_image());
    let b = Berth::new();
    let reference = reg.reference("test/busybox", "1");
    let out = b.ok(&["pull", "-q", &reference]);
    assert_eq!(out.trim_end(), reference);
    let out = b.ok(&["pull", "--quiet", &reference]);
    assert_eq!(out.trim_end(), reference);
}

#[test]
fn second_pull_is_up_to_date_with_one_manifest_request() {
    let reg = Registry::plain();
    let art = simple_image();
    reg.push("test/busybox", "1", &art);
    let px = Proxy::start(&reg.host, vec![]);
    let b = Berth::new();
    let reference = format!("{}/test/busybox:1", px.host);
    b.ok(&["pull", &reference]);
    assert_eq!(
        px.blob_requests(),
        art.image().layers.len() + 1,
        "{}",
        px.dump()
    );
    px.clear();
    let out = b.ok(&["pull", &reference]);
    let l = lines(&out);
    assert!(
        l.contains(&format!("Status: Image is up to date for {reference}").as_str()),
        "{out}"
    );
    assert!(
        l.contains(&format!("Digest: {}", art.top().digest).as_str()),
        "{out}"
    );
    assert_eq!(*l.last().unwrap(), reference);
    assert!(!out.contains("Pull complete"), "{out}");
    assert_eq!(px.manifest_requests(), 1, "{}", px.dump());
    assert_eq!(px.blob_requests(), 0, "{}", px.dump());
}

#[test]
fn pull_of_missing_tag_fails_like_docker() {
    let reg = Registry::plain();
    reg.push("test/busybox", "1", &simple_image());
    let b = Berth::new();
    let (code, err) = b.fails(&["pull", &reg.reference("test/busybox", "nope")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("not found") || err.contains("manifest unknown"),
        "{err}"
    );
    let (code, err) = b.fails(&["pull", &reg.reference("test/nothere", "1")]);
    assert_eq!(code, 1, "{err}");
    assert!(store::committed_layers(b.root()).is_empty());
}

#[test]
fn pull_by_digest_and_docker_media_types() {
    let reg = Registry::plain();
    let art = ImageBuilder::new()
        .media(Media::Docker)
        .layer(
            Layer::new()
                .file("d", "docker v2s2")
                .compression(Compression::None),
        )
        .build();
    reg.push("test/docker", "v2", &art);
    let b = Berth::new();
    let by_digest = format!("{}/test/docker@{}", reg.host, art.top().digest);
    let out = b.ok(&["pull", &by_digest]);
    assert_eq!(
        lines(&out).last().copied(),
        Some(by_digest.as_str()),
        "{out}"
    );
    let id = b.ok(&["image", "inspect", "--format", "{{.Id}}", &by_digest]);
    assert_eq!(id.trim(), art.image().id());
    assert_image_layers_present(&b, art.image());
}

#[test]
fn zstd_and_uncompressed_layers_unpack() {
    let reg = Registry::plain();
    let art = ImageBuilder::new()
        .base_compression(Compression::Zstd)
        .layer(
            Layer::new()
                .file("z", "zstd layer")
                .compression(Compression::Zstd),
        )
        .layer(
            Layer::new()
                .file("u", "plain layer")
                .compression(Compression::None),
        )
        .build();
    reg.push("test/mixed", "1", &art);
    let b = Berth::new();
    b.ok(&["pull", &reg.reference("test/mixed", "1")]);
    let c = art.image().chain_hexes();
    assert_eq!(
        std::fs::read(store::diff_dir(b.root(), &c[1]).join("z")).unwrap(),
        b"zstd layer"
    );
    assert_eq!(
        std::fs::read(store::diff_dir(b.root(), &c[2]).join("u")).unwrap(),
        b"plain layer"
    );
    assert!(store::diff_dir(b.root(), &c[0])
        .join("bin/busybox")
        .is_file());
}

// ------------------------------------------------------------ images, tag, rmi, inspect

#[test]
fn images_tag_inspect_and_rmi() {
    let reg = Registry::plain();
    let art = simple_image();
    reg.push("test/busybox", "1", &art);
    let b = Berth::new();
    let reference = reg.reference("test/busybox", "1");
    let repo = format!("{}/test/busybox", reg.host);
    b.ok(&["pull", "-q", &reference]);
    let img = art.image();

    let table = b.ok(&["images"]);
    let head = table.lines().next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(head.contains(col), "{table}");
    }
    let row = table
        .lines()
        .find(|l| l.starts_with(&repo))
        .unwrap_or_else(|| panic!("{table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "1");
    assert_eq!(cols[2], short(img.id()));

    let f = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert_eq!(f.trim(), format!("{repo}:1 {}", short(img.id())));
    let q = b.ok(&["images", "-q"]);
    assert_eq!(q.trim(), short(img.id()));

    let fmt = "{{.Id}}|{{.Os}}|{{.Architecture}}|{{json .Config.Cmd}}|{{index .RepoDigests 0}}|{{json .RootFS.Layers}}|{{index .Config.Labels \"org.example.test\"}}";
    let got = b.ok(&["image", "inspect", "--format", fmt, &reference]);
    let want = format!(
        "{}|linux|amd64|[\"cat\",\"/hello.txt\"]|{repo}@{}|{}|pull",
        img.id(),
        art.top().digest,
        serde_json::to_string(&img.diff_ids()).unwrap()
    );
    assert_eq!(got.trim(), want);
    let json: serde_json::Value =
        serde_json::from_str(&b.ok(&["image", "inspect", &reference])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["RepoTags"][0], reference);

    // tag: a second name for the same ID.
    b.ok(&["tag", &reference, "mine/alias:v2"]);
    let q = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = q.lines().collect();
    names.sort();
    assert_eq!(names, vec![format!("{repo}:1").as_str(), "mine/alias:v2"]);
    let id2 = b.ok(&["image", "inspect", "--format", "{{.Id}}", "mine/alias:v2"]);
    assert_eq!(id2.trim(), img.id());

    // rmi of one name only untags.
    let out = b.ok(&["rmi", "mine/alias:v2"]);
    assert_eq!(out.trim(), "Untagged: mine/alias:v2");
    assert!(store::diff_dir(b.root(), &img.chain_hexes()[0]).is_dir());
    // rmi of the last name deletes the image and its layers.
    let out = b.ok(&["rmi", &reference]);
    assert!(out.contains(&format!("Untagged: {reference}")), "{out}");
    assert!(out.contains(&format!("Deleted: {}", img.id())), "{out}");
    assert_eq!(b.ok(&["images", "-q"]).trim(), "");
    let (code, err) = b.fails(&["image", "inspect", &reference]);
    assert_eq!(code, 1);
    assert!(err.contains("No such image"), "{err}");
    assert!(
        store::committed_layers(b.root()).is_empty(),
        "{:?}",
        store::layer_entries(b.root())
    );
    let (code, err) = b.fails(&["rmi", &reference]);
    assert_eq!(code, 1);
    assert!(err.contains("No such image"), "{err}");
}

// ------------------------------------------------------------ content on disk

#[test]
fn unpacked_layers_match_the_image() {
    let long = format!("deep/{}/{}", "d".repeat(120), "f".repeat(80));
    let content = Layer::new()
        .add(Entry::dir("data").mode(0o750).owner(1000, 1000))
        .add(
            Entry::file("data/f", "content")
                .mode(0o640)
                .owner(1000, 1001)
                .mtime(1234567)
                .xattr("user.color", "blue"),
        )
        .add(Entry::file("data/suid", "x").mode(0o4755))
        .add(Entry::symlink("data/link", "f"))
        .add(Entry::symlink("data/abs", "/etc/passwd"))
        .add(Entry::hardlink("data/hard", "data/f"))
        .add(Entry::fifo("data/fifo"))
        .add(Entry::chardev("data/null", 1, 3))
        .add(Entry::dir("with space"))
        .add(Entry::file("with space/ünïcode ✓.txt", "u"))
        .add(Entry::file(long.as_str(), "long"))
        .add(Entry::whiteout("etc/os-release"))
        .add(Entry::opaque("home"))
        .add(Entry::dir("home"))
        .add(Entry::file("home/new", "n"));
    let art = ImageBuilder::new().layer(content).build();
    let reg = Registry::plain();
    reg.push("test/content", "1", &art);
    let b = Berth::new();
    b.ok(&["pull", "-q", &reg.reference("test/content", "1")]);
    let chains = art.image().chain_hexes();
    let d = store::diff_dir(b.root(), &chains[1]);

    let m = std::fs::symlink_metadata(d.join("data")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o750, 1000, 1000));
    let f = std::fs::symlink_metadata(d.join("data/f")).unwrap();
    assert_eq!((f.mode() & 0o7777, f.uid(), f.gid()), (0o640, 1000, 1001));
    assert_eq!(f.mtime(), 1234567);
    assert_eq!(std::fs::read(d.join("data/f")).unwrap(), b"content");
    assert_eq!(
        store::xattr(&d.join("data/f"), "user.color").as_deref(),
        Some(&b"blue"[..])
    );
    assert_eq!(
        std::fs::symlink_metadata(d.join("data/suid"))
            .unwrap()
            .mode()
            & 0o7777,
        0o4755
    );
    assert_eq!(
        std::fs::read_link(d.join("data/link")).unwrap(),
        Path::new("f")
    );
    assert_eq!(
        std::fs::read_link(d.join("data/abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    let h = std::fs::symlink_metadata(d.join("data/hard")).unwrap();
    assert_eq!(h.ino(), f.ino(), "hardlink must share the inode");
    assert_eq!(f.nlink(), 2);
    assert!(std::fs::symlink_metadata(d.join("data/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let null = std::fs::symlink_metadata(d.join("data/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!((libc::major(null.rdev()), libc::minor(null.rdev())), (1, 3));
    assert_eq!(
        std::fs::read(d.join("with space/ünïcode ✓.txt")).unwrap(),
        b"u"
    );
    assert_eq!(std::fs::read(d.join(&long)).unwrap(), b"long");
    // whiteout -> 0/0 char device; opaque marker -> xattr, not a file
    let wh = std::fs::symlink_metadata(d.join("etc/os-release")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!d.join("etc/.wh.os-release").exists());
    assert_eq!(
        store::xattr(&d.join("home"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(std::fs::symlink_metadata(d.join("home/.wh..wh..opq")).is_err());
    assert_eq!(std::fs::read(d.join("home/new")).unwrap(), b"n");

    let base = store::diff_dir(b.root(), &chains[0]);
    let bb = std::fs::symlink_metadata(base.join("bin/busybox")).unwrap();
    assert_eq!(bb.mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::read_link(base.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        std::fs::symlink_metadata(base.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        std::fs::read_to_string(base.join("etc/passwd")).unwrap(),
        image::PASSWD
    );
    store::assert_layers_consistent(b.root());
}

// ------------------------------------------------------------ hostile layers

struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Outside {
        let dir = tempfile::Builder::new()
            .prefix("berth-outside-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("target"), "original").unwrap();
        Outside { dir }
    }
    /// Same path written relative with enough `..` to reach `/`.
    fn dotdot(&self, name: &str) -> String {
        format!(
            "{}{}/{name}",
            "../".repeat(40),
            self.dir
                .path()
                .display()
                .to_string()
                .trim_start_matches('/')
        )
    }
    fn abs(&self, name: &str) -> String {
        format!("{}/{name}", self.dir.path().display())
    }
    fn assert_untouched(&self) {
        let names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["target".to_string()],
            "something was written outside the root"
        );
        let t = std::fs::metadata(self.dir.path().join("target")).unwrap();
        assert_eq!(
            t.nlink(),
            1,
            "a hardlink to a file outside the root was made"
        );
        assert_eq!(
            std::fs::read(self.dir.path().join("target")).unwrap(),
            b"original"
        );
    }
}

fn assert_hostile_pull_fails(name: &str, layer: Layer, outside: &Outside, mention: &[&str]) {
    let reg = Registry::plain();
    let art = ImageBuilder::new().layer(layer).build();
    reg.push("test/hostile", name, &art);
    let b = Berth::new();
    let (code, err) = b.fails(&["pull", &reg.reference("test/hostile", name)]);
    assert_ne!(code, 0);
    let bad = &art.image().layers[1];
    let named = mention.iter().any(|m| err.contains(m))
        || err.contains(short(&bad.blob.digest))
        || err.contains(bad.blob.hex());
    assert!(
        named,
        "{name}: error should name the layer or entry ({mention:?}):\n{err}"
    );
    outside.assert_untouched();
    let bad_chain = &art.image().chain_hexes()[1];
    assert!(
        !store::committed_layers(b.root()).contains(bad_chain),
        "{name}: hostile layer was committed"
    );
    let imgs = b.ok(&["images", "-q"]);
    assert_eq!(
        imgs.trim(),
        "",
        "{name}: image recorded after a failed pull"
    );
}

#[test]
fn hostile_dotdot_path_is_refused() {
    let o = Outside::new();
    // A long `..` chain goes through a PAX path record.
    let p = o.dotdot("pwned");
    let layer = Layer::new().add(Entry::file(p.as_str(), "pwned"));
    assert_hostile_pull_fails("dotdot", layer, &o, &["..", "pwned"]);
}

#[test]
fn hostile_short_dotdot_in_plain_header_is_refused() {
    let o = Outside::new();
    let mut h = tar::Header::new_ustar();
    let name = b"../../../../escape-berth-test";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(image::MTIME);
    h.set_size(5);
    h.set_cksum();
    let layer = Layer::new().add(Entry::raw_header(h, "pwned"));
    assert_hostile_pull_fails("dotdot-raw", layer, &o, &["escape-berth-test", ".."]);
}

#[test]
fn hostile_absolute_path_is_refused_or_contained() {
    // docs/architecture.md says berth rejects absolute names; docker
    // (containerd's archive code) instead joins them under the root. Both
    // are safe: what must never happen is a write outside the root.
    let o = Outside::new();
    let abs = o.abs("pwned");
    let reg = Registry::plain();
    let art = ImageBuilder::new()
        .layer(Layer::new().add(Entry::file(abs.as_str(), "pwned")))
        .build();
    reg.push("test/hostile", "abs", &art);
    let b = Berth::new();
    let out = b.cmd(&["pull", &reg.reference("test/hostile", "abs")]);
    o.assert_untouched();
    if out.status.success() {
        let inside = store::diff_dir(b.root(), &art.image().chain_hexes()[1])
            .join(abs.trim_start_matches('/'));
        assert_eq!(
            std::fs::read(&inside).ok().as_deref(),
            Some(&b"pwned"[..]),
            "absolute entry not contained under the layer"
        );
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("pwned") || err.contains(short(&art.image().layers[1].blob.digest)),
            "{err}"
        );
        assert_eq!(b.ok(&["images", "-q"]).trim(), "");
    }
}

#[test]
fn hostile_entry_below_symlink_is_refused() {
    let o = Outside::new();
    let layer = Layer::new()
        .add(Entry::symlink("evil", o.dir.path().to_str().unwrap()))
        .add(Entry::file("evil/pwned", "pwned"));
    assert_hostile_pull_fails("below-symlink", layer, &o, &["evil"]);
}

#[test]
fn hostile_relative_symlink_escape_is_refused() {
    let o = Outside::new();
    let rel = format!(
        "{}{}",
        "../".repeat(40),
        o.dir.path().display().to_string().trim_start_matches('/')
    );
    let layer = Layer::new()
        .add(Entry::symlink("evil2", rel.as_str()))
        .add(Entry::file("evil2/pwned", "pwned"));
    assert_hostile_pull_fails("rel-symlink", layer, &o, &["evil2"]);
}

#[test]
fn hostile_hardlink_outside_is_refused() {
    let o = Outside::new();
    let layer = Layer::new().add(Entry::hardlink("hl", o.dotdot("target").as_str()));
    assert_hostile_pull_fails("hardlink", layer, &o, &["hl", "target"]);
}

#[test]
fn hostile_hardlink_through_symlink_is_refused() {
    let o = Outside::new();
    let layer = Layer::new()
        .add(Entry::symlink("outdir", o.dir.path().to_str().unwrap()))
        .add(Entry::hardlink("hl2", "outdir/target"));
    assert_hostile_pull_fails("hardlink-symlink", layer, &o, &["hl2", "outdir"]);
}

#[test]
fn hostile_trusted_overlay_xattr_is_refused() {
    let o = Outside::new();
    let layer = Layer::new()
        .add(Entry::dir("d").xattr("trusted.overlay.opaque", "y"))
        .add(Entry::file("d/f", "x").xattr("trusted.overlay.redirect", "/etc"));
    assert_hostile_pull_fails("overlay-xattr", layer, &o, &["trusted.overlay"]);
}

#[test]
fn decompression_bomb_is_capped() {
    let o = Outside::new();
    let reg = Registry::plain();
    let art = ImageBuilder::new().layer(Layer::bomb(512 << 20)).build();
    reg.push("test/hostile", "bomb", &art);
    let mut b = Berth::new();
    // berth's knob for the per-layer unpacked-size cap (default 64 GiB);
    // a small cap keeps the bomb cheap to build.
    b.env("BERTH_MAX_LAYER_BYTES", (64u64 << 20).to_string());
    let (code, err) = b.fails(&["pull", &reg.reference("test/hostile", "bomb")]);
    assert_ne!(code, 0);
    assert!(err.contains("exceeds") || err.contains("limit"), "{err}");
    o.assert_untouched();
    assert!(!store::committed_layers(b.root()).contains(&art.image().chain_hexes()[1]));
    // Nothing of the bomb stays on disk: the store is far below its size.
    let used: u64 = store::walk(b.root())
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(b.root().join(p)).ok())
        .map(|m| m.len())
        .sum();
    assert!(
        used < 64 << 20,
        "store holds {used} bytes after a refused bomb"
    );
}

// ------------------------------------------------------------ platforms

#[test]
fn platform_flag_selects_the_manifest() {
    let reg = Registry::plain();
    let art = ImageBuilder::new().build_two_platforms();
    reg.push("test/multi", "1", &art);
    let reference = reg.reference("test/multi", "1");
    let fmt = "{{.Id}} {{.Architecture}}";

    let b = Berth::new();
    b.ok(&["pull", "-q", &reference]);
    let got = b.ok(&["image", "inspect", "--format", fmt, &reference]);
    assert_eq!(got.trim(), format!("{} amd64", art.for_arch("amd64").id()));
    let fmt = "{{.Id}} {{.Architecture}} {{.Variant}}";

    let b = Berth::new();
    let out = b.ok(&["pull", "--platform", "linux/arm64", &reference]);
    assert!(
        out.contains(&format!("Digest: {}", art.top().digest)),
        "{out}"
    );
    let got = b.ok(&["image", "inspect", "--format", fmt, &reference]);
    assert_eq!(
        got.trim(),
        format!("{} arm64 v8", art.for_arch("arm64").id())
    );

    let b = Berth::new();
    let (code, err) = b.fails(&["pull", "--platform", "linux/s390x", &reference]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no matching manifest") || err.contains("linux/s390x"),
        "{err}"
    );
}

// ------------------------------------------------------------ auth and TLS

#[test]
fn htpasswd_login_then_pull() {
    let reg = Registry::start(RegistryOpts::htpasswd("user", "pass"));
    reg.push("test/private", "1", &simple_image());
    let b = Berth::new();
    let reference = reg.reference("test/private", "1");
    let (code, err) = b.fails(&["pull", &reference]);
    assert_eq!(code, 1);
    assert!(
        err.to_lowercase().contains("unauthorized") || err.contains("no basic auth credentials"),
        "{err}"
    );
    let (_, err) = {
        let out = b.cmd_stdin(
            &["login", "-u", "user", "--password-stdin", &reg.host],
            b"wrong\n",
        );
        assert!(!out.status.success());
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(
        err.to_lowercase().contains("unauthorized") || err.contains("incorrect"),
        "{err}"
    );
    let out = b.ok_stdin(
        &["login", "-u", "user", "--password-stdin", &reg.host],
        b"pass\n",
    );
    assert!(out.contains("Login Succeeded"), "{out}");
    // Credentials land in the private DOCKER_CONFIG, docker's format.
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.docker_config.path().join("config.json")).unwrap())
            .unwrap();
    assert!(cfg["auths"][&reg.host]["auth"].is_string(), "{cfg}");
    b.ok(&["pull", &reference]);
    let out = b.ok(&["logout", &reg.host]);
    assert!(
        out.contains(&format!("Removing login credentials for {}", reg.host)),
        "{out}"
    );
}

#[test]
fn token_auth_pull_reuses_tokens() {
    let reg = Registry::start(RegistryOpts::token(TokenOpts::default()));
    let ts = reg.token.as_ref().unwrap();
    let art = ImageBuilder::new()
        .layer(Layer::new().file("a", "1"))
        .layer(Layer::new().file("b", "2"))
        .layer(Layer::new().file("c", "3"))
        .build();
    reg.push("public/busybox", "1", &art);
    reg.push("private/busybox", "1", &art);
    let b = Berth::new();

    // Anonymous pull of a public repository: one token for all requests.
    let before = ts.issued();
    b.ok(&["pull", &reg.reference("public/busybox", "1")]);
    let used = ts.issued() - before;
    assert!(
        (1..=2).contains(&used),
        "anonymous pull took {used} tokens: {:?}",
        ts.requests()
    );

    let b = Berth::new();
    let (code, err) = b.fails(&["pull", &reg.reference("private/busybox", "1")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("denied") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
    b.ok_stdin(
        &["login", "-u", "user", "--password-stdin", &reg.host],
        b"pass\n",
    );
    let before = ts.issued();
    b.ok(&["pull", &reg.reference("private/busybox", "1")]);
    let used = ts.issued() - before;
    assert!(
        (1..=2).contains(&used),
        "pull of 4 layers took {used} tokens: {:?}",
        ts.requests()
    );
    let last = ts.requests().last().cloned().unwrap();
    assert_eq!(last.user.as_deref(), Some("user"));
    assert!(
        last.scopes
            .iter()
            .any(|s| s == "repository:private/busybox:pull"),
        "{last:?}"
    );
}

#[test]
fn tls_registry_with_ca_in_certs_dir() {
    // Docker treats 127.0.0.0/8 as an insecure registry (TLS without
    // verification, then plain HTTP), so a pull without the CA proves
    // nothing either way; this test asserts that the CA from the certs dir
    // gives a verified TLS pull.
    let reg = Registry::start(RegistryOpts::tls());
    let art = simple_image();
    reg.push("test/tls", "1", &art);
    let reference = reg.reference("test/tls", "1");
    let mut b = Berth::new();
    b.env("BERTH_CERTS_D", reg.certs_d().to_string_lossy());
    let out = b.ok(&["pull", &reference]);
    assert!(
        out.contains(&format!("Digest: {}", art.top().digest)),
        "{out}"
    );
    assert_image_layers_present(&b, art.image());
}

// ------------------------------------------------------------ faults

#[test]
fn server_errors_and_throttling_are_retried() {
    let reg = Registry::plain();
    let art = simple_image();
    reg.push("test/busybox", "1", &art);
    let px = Proxy::start(
        &reg.host,
        vec![
            Fault::Status {
                method: Some("GET".into()),
                path_contains: "/blobs/sha256:".into(),
                status: 500,
                retry_after: None,
                times: 2,
            },
            Fault::too_many("/blobs/sha256:", 2),
        ],
    );
    let b = Berth::new();
    b.ok(&["pull", &format!("{}/test/busybox:1", px.host)]);
    let blobs = art.image().layers.len() + 1;
    assert!(px.blob_requests() >= blobs + 4, "{}", px.dump());
    assert_image_layers_present(&b, art.image());
}

#[test]
fn dropped_blob_connection_resumes_with_range() {
    let reg = Registry::plain();
    let art = simple_image();
    reg.push("test/busybox", "1", &art);
    let base = &art.image().layers[0].blob;
    assert!(base.size() > 300_000);
    let px = Proxy::start(
        &reg.host,
        vec![Fault::DropBody {
            path_contains: base.digest.clone(),
            after_bytes: 200_000,
            times: 1,
        }],
    );
    let b = Berth::new();
    b.ok(&["pull", &format!("{}/test/busybox:1", px.host)]);
    let ranges: Vec<_> = px
        .requests()
        .into_iter()
        .filter(|r| r.is_blob_get() && r.range.is_some())
        .collect();
    assert!(
        !ranges.is_empty(),
        "no Range request after a cut:\n{}",
        px.dump()
    );
    assert!(
        ranges[0].range.as_deref().unwrap().starts_with("bytes="),
        "{:?}",
        ranges[0]
    );
    assert_image_layers_present(&b, art.image());
    assert_eq!(
        std::fs::read(store::blob_path(b.root(), &base.digest))
            .ok()
            .map(|v| image::digest_of(&v)),
        Some(base.digest.clone())
    );
}

fn assert_corrupt_blob_rejected(compression: Compression, wanted: &[&str]) {
    let reg = Registry::plain();
    let payload: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let art = ImageBuilder::new()
        .layer(
            Layer::new()
                .file("payload", payload)
                .compression(compression),
        )
        .build();
    reg.push("test/busybox", "1", &art);
    let bad = &art.image().layers[1].blob;
    let px = Proxy::start(
        &reg.host,
        vec![Fault::Corrupt {
            path_contains: bad.digest.clone(),
            offset: 100_000,
            times: usize::MAX,
        }],
    );
    let b = Berth::new();
    let (code, err) = b.fails(&["pull", &format!("{}/test/busybox:1", px.host)]);
    assert_eq!(code, 1);
    let lower = err.to_lowercase();
    assert!(wanted.iter().any(|w| lower.contains(w)), "{err}");
    assert!(
        err.contains(short(&bad.digest)),
        "error should name the layer:\n{err}"
    );
    assert!(
        !store::blob_path(b.root(), &bad.digest).exists(),
        "corrupt blob was committed"
    );
    assert!(!store::committed_layers(b.root()).contains(&art.image().chain_hexes()[1]));
    assert_eq!(b.ok(&["images", "-q"]).trim(), "");
}

#[test]
fn corrupted_uncompressed_blob_fails_with_digest_error() {
    // No decompressor stands between the flip and the digest check.
    assert_corrupt_blob_rejected(Compression::None, &["digest"]);
}

#[test]
fn corrupted_gzip_blob_fails_and_commits_nothing() {
    // A flipped byte may break the deflate stream before the digest is known.
    assert_corrupt_blob_rejected(Compression::Gzip, &["digest", "corrupt", "checksum"]);
}

// ------------------------------------------------------------ concurrency and crashes

#[test]
fn concurrent_pulls_share_one_copy_of_each_layer() {
    let reg = Registry::plain();
    let art = image::big_image(16 << 20, 3).build();
    reg.push("test/big", "1", &art);
    let b = Berth::new();
    let reference = reg.reference("test/big", "1");
    let children: Vec<_> = (0..2)
        .map(|_| {
            b.command(&["pull", &reference])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        common::berth::check_ok(&["pull", &reference], &out);
    }
    let mut want = art.image().chain_hexes();
    want.sort();
    assert_eq!(store::committed_layers(b.root()), want);
    assert!(
        store::leftovers(b.root()).is_empty(),
        "{:?}",
        store::leftovers(b.root())
    );
    store::assert_layers_consistent(b.root());
    assert_eq!(b.ok(&["images", "-q"]).trim(), short(art.image().id()));
}

#[test]
fn pull_killed_at_random_points_recovers() {
    let reg = Registry::plain();
    let art = image::big_image(32 << 20, 4).build();
    reg.push("test/big", "1", &art);
    let b = Berth::new();
    let reference = reg.reference("test/big", "1");
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill loop seed {seed}");
    for _ in 0..10 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis((seed >> 33) % 1500);
        let mut child = b
            .command(&["pull", "-q", &reference])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        store::assert_store_consistent(b.root());
    }
    b.ok(&["pull", &reference]);
    store::assert_store_consistent(b.root());
    let mut want = art.image().chain_hexes();
    want.sort();
    assert_eq!(store::committed_layers(b.root()), want);
    assert!(
        store::leftovers(b.root()).is_empty(),
        "{:?}",
        store::leftovers(b.root())
    );
    let id = b.ok(&["image", "inspect", "--format", "{{.Id}}", &reference]);
    assert_eq!(id.trim(), art.image().id());
}

#[test]
fn image_with_120_layers_pulls() {
    let reg = Registry::plain();
    let art = image::many_layers(120).build();
    reg.push("test/many", "1", &art);
    let b = Berth::new();
    b.ok(&["pull", "-q", &reg.reference("test/many", "1")]);
    assert_eq!(store::committed_layers(b.root()).len(), 120);
    let last = art.image().chain_hexes().pop().unwrap();
    assert_eq!(
        std::fs::read_to_string(store::diff_dir(b.root(), &last).join("layers/top")).unwrap(),
        "119\n"
    );
    store::assert_layers_consistent(b.root());
}

// ------------------------------------------------------------ more docker CLI behaviour

#[test]
fn pull_without_tag_uses_latest() {
    let reg = Registry::plain();
    let art = simple_image();
    reg.push("test/busybox", "latest", &art);
    let b = Berth::new();
    let name = format!("{}/test/busybox", reg.host);
    let out = b.ok(&["pull", &name]);
    let l = lines(&out);
    assert_eq!(l[0], "Using default tag: latest", "{out}");
    assert_eq!(l[1], "latest: Pulling from test/busybox", "{out}");
    assert_eq!(*l.last().unwrap(), format!("{name}:latest"), "{out}");
    let id = b.ok(&["image", "inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(id.trim(), art.image().id());
}

#[test]
fn pull_all_tags() {
    let reg = Registry::plain();
    let one = simple_image();
    let two = ImageBuilder::new()
        .layer(Layer::new().file("two", "2"))
        .build();
    reg.push("test/busybox", "1", &one);
    reg.push("test/busybox", "2", &two);
    let b = Berth::new();
    let name = format!("{}/test/busybox", reg.host);
    let out = b.ok(&["pull", "--all-tags", &name]);
    assert!(out.contains("Pulling from test/busybox"), "{out}");
    let got = b.ok(&["images", "--format", "{{.Tag}} {{.ID}}", &name]);
    let mut rows: Vec<&str> = got.lines().collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            format!("1 {}", short(one.image().id())).as_str(),
            format!("2 {}", short(two.image().id())).as_str()
        ]
    );
}

#[test]
fn image_subcommand_aliases() {
    let reg = Registry::plain();
    let art = simple_image();
    reg.push("test/busybox", "1", &art);
    let b = Berth::new();
    let reference = reg.reference("test/busybox", "1");
    assert_eq!(b.ok(&["image", "pull", "-q", &reference]).trim(), reference);
    b.ok(&["image", "tag", &reference, "alias:1"]);
    let ls = b.ok(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(ls.lines().any(|l| l == "alias:1"), "{ls}");
    // `images REPO` filters by repository.
    let only = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}", "alias"]);
    assert_eq!(only.trim(), "alias:1");
    let out = b.ok(&["image", "rm", "alias:1"]);
    assert_eq!(out.trim(), "Untagged: alias:1");
}

#[test]
fn rmi_by_id_with_several_tags_needs_force() {
    let reg = Registry::plain();
    let art = simple_image();
    reg.push("test/busybox", "1", &art);
    let b = Berth::new();
    let reference = reg.reference("test/busybox", "1");
    b.ok(&["pull", "-q", &reference]);
    b.ok(&["tag", &reference, "other/name:2"]);
    let id = short(art.image().id()).to_string();
    let (code, err) = b.fails(&["rmi", &id]);
    assert_eq!(code, 1);
    assert!(
        err.contains("conflict") && err.contains("must be forced"),
        "{err}"
    );
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 2);
    let out = b.ok(&["rmi", "-f", &id]);
    assert!(out.contains("Untagged: other/name:2"), "{out}");
    assert!(out.contains(&format!("Untagged: {reference}")), "{out}");
    assert!(
        out.contains(&format!("Deleted: {}", art.image().id())),
        "{out}"
    );
    assert_eq!(b.ok(&["images", "-q"]).trim(), "");
}

#[test]
fn shared_base_layer_already_exists() {
    let reg = Registry::plain();
    let a = ImageBuilder::new()
        .layer(Layer::new().file("a", "a"))
        .build();
    let b_img = ImageBuilder::new()
        .layer(Layer::new().file("b", "b"))
        .build();
    reg.push("test/a", "1", &a);
    reg.push("test/b", "1", &b_img);
    let px = Proxy::start(&reg.host, vec![]);
    let b = Berth::new();
    b.ok(&["pull", &format!("{}/test/a:1", px.host)]);
    px.clear();
    let out = b.ok(&["pull", &format!("{}/test/b:1", px.host)]);
    let base = &b_img.image().layers[0].blob;
    let top = &b_img.image().layers[1].blob;
    assert!(
        out.contains(&format!("{}: Already exists", short(&base.digest))),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}: Pull complete", short(&top.digest))),
        "{out}"
    );
    // The shared layer is not downloaded again.
    assert_eq!(
        px.count(|r| r.is_blob_get() && r.path().ends_with(&base.digest)),
        0,
        "{}",
        px.dump()
    );
    assert_eq!(store::committed_layers(b.root()).len(), 3);
}

#[test]
fn inspect_reports_the_image_config() {
    let reg = Registry::plain();
    let art = ImageBuilder::new()
        .env("GREETING=hello world")
        .entrypoint(&["/bin/sh", "-c"])
        .cmd(&["echo $GREETING"])
        .workdir("/srv")
        .user("app")
        .label("a.b", "c")
        .expose("8080/tcp")
        .volume("/data")
        .history("ENV GREETING=hello world")
        .layer(Layer::new().dir("srv").comment("RUN mkdir /srv"))
        .build();
    reg.push("test/cfg", "1", &art);
    let b = Berth::new();
    let reference = reg.reference("test/cfg", "1");
    b.ok(&["pull", "-q", &reference]);
    let v: serde_json::Value =
        serde_json::from_str(&b.ok(&["image", "inspect", &reference])).unwrap();
    let want = art.image().config_json();
    let c = &v[0]["Config"];
    for k in [
        "Env",
        "Entrypoint",
        "Cmd",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
        "Volumes",
    ] {
        assert_eq!(c[k], want["config"][k], "Config.{k} in {v}");
    }
    assert_eq!(v[0]["Id"], art.image().id());
    assert_eq!(v[0]["Os"], "linux");
    assert_eq!(v[0]["Architecture"], "amd64");
    assert_eq!(v[0]["RootFS"]["Type"], "layers");
    assert_eq!(
        v[0]["RootFS"]["Layers"],
        serde_json::json!(art.image().diff_ids())
    );
    let created = v[0]["Created"].as_str().unwrap();
    assert!(created.starts_with("2024-01-01T00:00:00"), "{created}");

    // history: newest first, empty layers included, untruncated with --no-trunc
    let h = b.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        &reference,
    ]);
    let got: Vec<&str> = h.lines().collect();
    assert_eq!(
        got,
        vec![
            "ENV GREETING=hello world",
            "RUN mkdir /srv",
            "busybox rootfs"
        ],
        "{h}"
    );
}
