//! The fuzz targets' properties, run on stable with deterministic random
//! input: parsers of untrusted text never panic, and what parses round-trips.

use registry_client::auth::parse_www_authenticate;
use registry_client::manifest::{self, Manifest};
use registry_client::{Digest, Platform, Reference};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const REF_ALPHABET: &[char] = &[
    'a', 'b', 'z', '0', '9', 'A', 'Z', '.', '-', '_', '/', ':', '@', '[', ']', ' ', 'é', '\u{0}',
];
const SEEDS: &[&str] = &[
    "busybox",
    "localhost:5000/a/b:t",
    "docker.io/library/busybox:1.36",
    "[::1]:5000/x@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "a__b/c---d/e.f_g:T.1-x",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for _ in 0..(rng.next() % 4) {
        let op = rng.next() % 3;
        let pos = if chars.is_empty() {
            0
        } else {
            (rng.next() % chars.len() as u64) as usize
        };
        match op {
            0 => chars.insert(pos, *rng.pick(REF_ALPHABET)),
            1 if !chars.is_empty() => {
                chars.remove(pos);
            }
            _ if !chars.is_empty() => chars[pos] = *rng.pick(REF_ALPHABET),
            _ => {}
        }
    }
    chars.into_iter().collect()
}

#[test]
fn reference_parsing_round_trips() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut parsed = 0;
    for i in 0..50_000 {
        let s = if i % 2 == 0 {
            let seed = rng_seed(&mut rng);
            mutate(&mut rng, seed)
        } else {
            let len = rng.next() % 40;
            (0..len).map(|_| *rng.pick(REF_ALPHABET)).collect()
        };
        if let Ok(r) = s.parse::<Reference>() {
            parsed += 1;
            let again: Reference = r
                .to_string()
                .parse()
                .unwrap_or_else(|e| panic!("{s:?} -> {r} -> {e}"));
            assert_eq!(again, r, "{s:?}");
            let familiar: Reference = r
                .familiar()
                .parse()
                .unwrap_or_else(|e| panic!("{s:?} -> {} -> {e}", r.familiar()));
            assert_eq!(familiar, r, "{s:?}");
        }
        if let Ok(d) = s.parse::<Digest>() {
            assert_eq!(d.to_string(), s);
        }
        let _ = s.parse::<Platform>();
    }
    assert!(
        parsed > 1000,
        "mutations should keep many inputs valid ({parsed})"
    );
}

fn rng_seed(rng: &mut Rng) -> &'static str {
    rng.pick::<&str>(SEEDS)
}

#[test]
fn www_authenticate_never_panics() {
    let mut rng = Rng(12345);
    let alphabet = [
        'B', 'e', 'a', 'r', ' ', '=', '"', ',', '\\', 'x', '\t', ':', '/',
    ];
    for _ in 0..50_000 {
        let len = rng.next() % 60;
        let s: String = (0..len).map(|_| *rng.pick(&alphabet)).collect();
        for c in parse_www_authenticate(&s) {
            let _ = c.scopes();
        }
    }
}

#[test]
fn manifest_parsing_never_panics() {
    let mut rng = Rng(777);
    let valid = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"sha256:{}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#,
        manifest::OCI_INDEX,
        manifest::OCI_MANIFEST,
        "a".repeat(64)
    );
    let types = [
        "",
        "application/json",
        manifest::OCI_MANIFEST,
        manifest::OCI_INDEX,
        manifest::DOCKER_MANIFEST_LIST,
    ];
    for _ in 0..20_000 {
        let mut bytes = valid.clone().into_bytes();
        for _ in 0..(rng.next() % 3 + 1) {
            let pos = (rng.next() % bytes.len() as u64) as usize;
            bytes[pos] = *rng.pick(b"{}[]\":,01a ");
        }
        if let Ok(Manifest::Index(idx)) = Manifest::parse(&bytes, rng.pick::<&str>(&types)) {
            let _ = Platform::host().select(&idx);
        }
    }
}
