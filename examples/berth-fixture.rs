//! Command-line front of the test harness, for scripts and benchmarks:
//!
//! ```text
//! cargo run --example berth-fixture -- oci DIR [IMAGE OPTIONS] [--tag T]
//! cargo run --example berth-fixture -- serve [IMAGE OPTIONS] [--repo R] [--tag T]
//!                                     [--tls] [--htpasswd USER:PASS] [--token] [--stdin]
//! IMAGE OPTIONS: --image busybox|big:BYTES:LAYERS|many:N|multi
//!                --media oci|docker   --compression gzip|zstd|none
//! ```
//!
//! `oci` writes an OCI image layout. `serve` starts a registry (plus token
//! server for `--token`), pushes the image, prints one JSON line with
//! `host`, `reference`, `certs_d`, `ca` and `manifest_digest`, and keeps
//! everything running until SIGTERM/SIGINT arrives (or, with `--stdin`,
//! until stdin closes); then it stops the registry and removes its files.

#[path = "../tests/common/mod.rs"]
mod common;

use common::image::{self, Artifact, Compression, ImageBuilder, Media};
use common::registry::{Registry, RegistryOpts};
use common::token_server::TokenOpts;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Opts {
    image: String,
    media: Media,
    compression: Compression,
    tag: String,
    repo: String,
    tls: bool,
    htpasswd: Option<(String, String)>,
    token: bool,
    stdin: bool,
    positional: Vec<String>,
}

fn usage(msg: &str) -> ! {
    eprintln!("berth-fixture: {msg}");
    eprintln!("usage: berth-fixture oci DIR [--image SPEC] [--media oci|docker] [--compression gzip|zstd|none] [--tag T]");
    eprintln!("       berth-fixture serve [--image SPEC] [--repo R] [--tag T] [--tls] [--htpasswd U:P] [--token] [--stdin]");
    eprintln!("SPEC: busybox | big:BYTES:LAYERS | many:N | multi");
    std::process::exit(2);
}

fn parse(args: &[String]) -> Opts {
    let mut o = Opts {
        image: "busybox".into(),
        media: Media::Oci,
        compression: Compression::Gzip,
        tag: "latest".into(),
        repo: "test/busybox".into(),
        tls: false,
        htpasswd: None,
        token: false,
        stdin: false,
        positional: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--image" => o.image = val(),
            "--media" => {
                o.media = match val().as_str() {
                    "oci" => Media::Oci,
                    "docker" => Media::Docker,
                    v => usage(&format!("unknown media {v:?}")),
                }
            }
            "--compression" => {
                o.compression = match val().as_str() {
                    "gzip" => Compression::Gzip,
                    "zstd" => Compression::Zstd,
                    "none" => Compression::None,
                    v => usage(&format!("unknown compression {v:?}")),
                }
            }
            "--tag" => o.tag = val(),
            "--repo" => o.repo = val(),
            "--tls" => o.tls = true,
            "--token" => o.token = true,
            "--stdin" => o.stdin = true,
            "--htpasswd" => {
                let v = val();
                let (u, p) = v
                    .split_once(':')
                    .unwrap_or_else(|| usage("--htpasswd takes USER:PASS"));
                o.htpasswd = Some((u.into(), p.into()));
            }
            s if s.starts_with("--") => usage(&format!("unknown flag {s}")),
            s => o.positional.push(s.into()),
        }
    }
    o
}

fn build(o: &Opts) -> Artifact {
    let parts: Vec<&str> = o.image.split(':').collect();
    let num = |s: Option<&&str>| -> u64 {
        s.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage(&format!("bad image spec {:?}", o.image)))
    };
    let b = match parts[0] {
        "busybox" => ImageBuilder::new(),
        "big" => image::big_image(num(parts.get(1)), num(parts.get(2)) as usize),
        "many" => image::many_layers(num(parts.get(1)) as usize),
        "multi" => return ImageBuilder::new().media(o.media).build_two_platforms(),
        other => usage(&format!("unknown image kind {other:?}")),
    };
    let mut b = b.media(o.media);
    for l in &mut b.layers {
        l.compression = o.compression;
    }
    b.build()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        usage("no command")
    };
    let o = parse(&args[1..]);
    match cmd.as_str() {
        "oci" => {
            let dir = o
                .positional
                .first()
                .unwrap_or_else(|| usage("oci needs DIR"));
            let art = build(&o);
            art.write_oci_layout(std::path::Path::new(dir), &o.tag);
            println!("{}", art.top().digest);
        }
        "serve" => serve(&o),
        other => usage(&format!("unknown command {other:?}")),
    }
}

fn serve(o: &Opts) {
    let opts = if o.token {
        RegistryOpts::token(TokenOpts::default())
    } else if let Some((u, p)) = &o.htpasswd {
        RegistryOpts {
            tls: o.tls,
            ..RegistryOpts::htpasswd(u, p)
        }
    } else if o.tls {
        RegistryOpts::tls()
    } else {
        RegistryOpts::plain()
    };
    let art = build(o);
    let reg = Registry::start(opts);
    let digest = reg.push(&o.repo, &o.tag, &art);
    let line = serde_json::json!({
        "host": reg.host,
        "reference": reg.reference(&o.repo, &o.tag),
        "manifest_digest": digest,
        "certs_d": if o.tls { Some(reg.certs_d()) } else { None },
        "ca": reg.ca_cert(),
        "token_realm": reg.token.as_ref().map(|t| t.realm()),
    });
    println!("{line}");
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    if o.stdin {
        std::thread::spawn(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            STOP.store(true, Ordering::SeqCst);
        });
    }
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(reg);
}
