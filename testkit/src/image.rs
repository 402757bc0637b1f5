//! Offline OCI / Docker image maker built on Debian's busybox-static.
//!
//! Tar entries are written with hand-made headers: names and link targets go
//! into the header bytes unchecked (long ones via PAX records), so the same
//! writer makes both honest layers and hostile ones (`../x`, `/abs`, ...).

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

pub const BUSYBOX: &str = "/bin/busybox";
/// Fixed mtime so images are byte-for-byte reproducible.
pub const MTIME: u64 = 1_700_000_000;
pub const CREATED: &str = "2024-01-01T00:00:00Z";

pub const APPLETS: &[&str] = &[
    "sh",
    "ash",
    "ls",
    "cat",
    "echo",
    "sleep",
    "true",
    "false",
    "id",
    "env",
    "wget",
    "nc",
    "httpd",
    "ps",
    "top",
    "mkdir",
    "rm",
    "rmdir",
    "cp",
    "mv",
    "touch",
    "chmod",
    "chown",
    "stat",
    "grep",
    "sed",
    "awk",
    "head",
    "tail",
    "wc",
    "sort",
    "uniq",
    "uname",
    "hostname",
    "ip",
    "ifconfig",
    "route",
    "netstat",
    "ping",
    "nslookup",
    "mount",
    "umount",
    "kill",
    "test",
    "[",
    "printf",
    "pwd",
    "readlink",
    "ln",
    "find",
    "xargs",
    "tr",
    "cut",
    "date",
    "df",
    "du",
    "free",
    "whoami",
    "sha256sum",
    "md5sum",
    "tee",
    "yes",
    "seq",
    "timeout",
    "dd",
    "tar",
    "gzip",
    "gunzip",
    "vi",
    "mkfifo",
    "mknod",
    "basename",
    "dirname",
    "sync",
    "usleep",
    "expr",
    "od",
    "hexdump",
    "cmp",
    "diff",
    "uptime",
    "nproc",
    "setsid",
    "nsenter",
    "unshare",
    "chroot",
    "getopt",
    "pidof",
    "killall",
    "which",
    "more",
    "less",
    "base64",
    "realpath",
    "truncate",
    "ln",
    "groups",
    "su",
    "login",
    "watch",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    Oci,
    Docker,
}

impl Media {
    pub fn manifest(self) -> &'static str {
        match self {
            Media::Oci => "application/vnd.oci.image.manifest.v1+json",
            Media::Docker => "application/vnd.docker.distribution.manifest.v2+json",
        }
    }
    pub fn index(self) -> &'static str {
        match self {
            Media::Oci => "application/vnd.oci.image.index.v1+json",
            Media::Docker => "application/vnd.docker.distribution.manifest.list.v2+json",
        }
    }
    pub fn config(self) -> &'static str {
        match self {
            Media::Oci => "application/vnd.oci.image.config.v1+json",
            Media::Docker => "application/vnd.docker.container.image.v1+json",
        }
    }
    pub fn layer(self, c: Compression) -> &'static str {
        match (self, c) {
            (Media::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (Media::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (_, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (Media::Docker, Compression::Gzip) => {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
            (Media::Docker, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
        }
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub fn digest_of(b: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(b))
}

/// ChainIDs (`sha256:...`) for a list of diff_ids.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => digest_of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

// ---------------------------------------------------------------- entries

#[derive(Clone, Debug)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Fifo,
    CharDev(u32, u32),
    BlockDev(u32, u32),
    /// A complete hand-made header, written as is (checksum included), and
    /// its data.
    RawHeader(Box<tar::Header>, Vec<u8>),
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Extra PAX records written before this entry.
    pub pax: Vec<(String, Vec<u8>)>,
}

impl Entry {
    fn new(path: impl AsRef<[u8]>, kind: Kind, mode: u32) -> Entry {
        Entry {
            path: path.as_ref().to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: MTIME,
            xattrs: Vec::new(),
            pax: Vec::new(),
        }
    }
    pub fn file(path: impl AsRef<[u8]>, content: impl AsRef<[u8]>) -> Entry {
        Entry::new(path, Kind::File(content.as_ref().to_vec()), 0o644)
    }
    pub fn dir(path: impl AsRef<[u8]>) -> Entry {
        Entry::new(path, Kind::Dir, 0o755)
    }
    pub fn symlink(path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Entry {
        Entry::new(path, Kind::Symlink(target.as_ref().to_vec()), 0o777)
    }
    pub fn hardlink(path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Entry {
        Entry::new(path, Kind::Hardlink(target.as_ref().to_vec()), 0o644)
    }
    pub fn fifo(path: impl AsRef<[u8]>) -> Entry {
        Entry::new(path, Kind::Fifo, 0o644)
    }
    pub fn chardev(path: impl AsRef<[u8]>, major: u32, minor: u32) -> Entry {
        Entry::new(path, Kind::CharDev(major, minor), 0o666)
    }
    pub fn blockdev(path: impl AsRef<[u8]>, major: u32, minor: u32) -> Entry {
        Entry::new(path, Kind::BlockDev(major, minor), 0o660)
    }
    /// `dir/.wh.name`: deletes `dir/name` from lower layers.
    pub fn whiteout(path_of_deleted: &str) -> Entry {
        let (dir, name) = match path_of_deleted.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path_of_deleted),
        };
        Entry::file(format!("{dir}.wh.{name}"), b"")
    }
    /// `dir/.wh..wh..opq`: hides everything below `dir` from lower layers.
    pub fn opaque(dir: &str) -> Entry {
        Entry::file(format!("{}/.wh..wh..opq", dir.trim_end_matches('/')), b"")
    }
    pub fn raw_header(header: tar::Header, data: impl AsRef<[u8]>) -> Entry {
        Entry::new(
            b"",
            Kind::RawHeader(Box::new(header), data.as_ref().to_vec()),
            0,
        )
    }
    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, t: u64) -> Entry {
        self.mtime = t;
        self
    }
    pub fn xattr(mut self, key: &str, value: impl AsRef<[u8]>) -> Entry {
        self.xattrs.push((key.to_string(), value.as_ref().to_vec()));
        self
    }
    pub fn pax(mut self, key: &str, value: impl AsRef<[u8]>) -> Entry {
        self.pax.push((key.to_string(), value.as_ref().to_vec()));
        self
    }
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let base = key.len() + value.len() + 3;
    let mut len = base + base.to_string().len();
    if len.to_string().len() + base != len {
        len = base + len.to_string().len();
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

fn put_bytes(field: &mut [u8], v: &[u8]) {
    let n = v.len().min(field.len());
    field[..n].copy_from_slice(&v[..n]);
    for b in &mut field[n..] {
        *b = 0;
    }
}

/// Append one entry, unchecked, to a tar stream.
pub fn write_entry<W: Write>(w: &mut W, e: &Entry) -> std::io::Result<()> {
    if let Kind::RawHeader(h, data) = &e.kind {
        w.write_all(h.as_bytes())?;
        write_padded(w, data)?;
        return Ok(());
    }
    let link: &[u8] = match &e.kind {
        Kind::Symlink(t) | Kind::Hardlink(t) => t,
        _ => b"",
    };
    let mut records = Vec::new();
    if e.path.len() > 100 {
        records.extend(pax_record("path", &e.path));
    }
    if link.len() > 100 {
        records.extend(pax_record("linkpath", link));
    }
    for (k, v) in &e.xattrs {
        records.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
    }
    for (k, v) in &e.pax {
        records.extend(pax_record(k, v));
    }
    if !records.is_empty() {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        put_bytes(&mut h.as_old_mut().name, b"PaxHeaders.0/entry");
        h.set_mode(0o644);
        h.set_size(records.len() as u64);
        h.set_mtime(e.mtime);
        h.set_cksum();
        w.write_all(h.as_bytes())?;
        write_padded(w, &records)?;
    }
    let mut h = tar::Header::new_ustar();
    let (typ, data): (tar::EntryType, &[u8]) = match &e.kind {
        Kind::File(c) => (tar::EntryType::Regular, c),
        Kind::Dir => (tar::EntryType::Directory, b""),
        Kind::Symlink(_) => (tar::EntryType::Symlink, b""),
        Kind::Hardlink(_) => (tar::EntryType::Link, b""),
        Kind::Fifo => (tar::EntryType::Fifo, b""),
        Kind::CharDev(..) => (tar::EntryType::Char, b""),
        Kind::BlockDev(..) => (tar::EntryType::Block, b""),
        Kind::RawHeader(..) => unreachable!(),
    };
    h.set_entry_type(typ);
    put_bytes(&mut h.as_old_mut().name, &e.path);
    put_bytes(&mut h.as_old_mut().linkname, link);
    h.set_mode(e.mode);
    h.set_uid(e.uid);
    h.set_gid(e.gid);
    h.set_mtime(e.mtime);
    h.set_size(data.len() as u64);
    if let Kind::CharDev(ma, mi) | Kind::BlockDev(ma, mi) = e.kind {
        h.set_device_major(ma)?;
        h.set_device_minor(mi)?;
    }
    if e.uid == 0 {
        h.set_username("root")?;
    }
    if e.gid == 0 {
        h.set_groupname("root")?;
    }
    h.set_cksum();
    w.write_all(h.as_bytes())?;
    write_padded(w, data)
}

fn write_padded<W: Write>(w: &mut W, data: &[u8]) -> std::io::Result<()> {
    w.write_all(data)?;
    let pad = (512 - data.len() % 512) % 512;
    w.write_all(&vec![0u8; pad])
}

// ---------------------------------------------------------------- layers

#[derive(Clone, Debug)]
pub struct Layer {
    pub entries: Vec<Entry>,
    pub compression: Compression,
    pub comment: String,
    /// If set, the layer is one file `bomb` of this many zero bytes,
    /// streamed (never held in memory).
    pub bomb: Option<u64>,
    /// Leave out the two zero blocks that end a tar.
    pub no_trailer: bool,
}

/// Hostile layers are ordinary layers whose entries carry unchecked names or
/// hand-made headers; the alias says what the test means.
pub type RawLayer = Layer;

impl Default for Layer {
    fn default() -> Self {
        Layer::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            entries: Vec::new(),
            compression: Compression::Gzip,
            comment: String::new(),
            bomb: None,
            no_trailer: false,
        }
    }
    // A builder step, not arithmetic; tests call it by this name.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, e: Entry) -> Layer {
        self.entries.push(e);
        self
    }
    pub fn file(self, path: &str, content: impl AsRef<[u8]>) -> Layer {
        self.add(Entry::file(path, content))
    }
    pub fn dir(self, path: &str) -> Layer {
        self.add(Entry::dir(path))
    }
    pub fn symlink(self, path: &str, target: &str) -> Layer {
        self.add(Entry::symlink(path, target))
    }
    pub fn hardlink(self, path: &str, target: &str) -> Layer {
        self.add(Entry::hardlink(path, target))
    }
    pub fn whiteout(self, path: &str) -> Layer {
        self.add(Entry::whiteout(path))
    }
    pub fn opaque(self, dir: &str) -> Layer {
        self.add(Entry::opaque(dir))
    }
    pub fn compression(mut self, c: Compression) -> Layer {
        self.compression = c;
        self
    }
    pub fn comment(mut self, c: &str) -> Layer {
        self.comment = c.to_string();
        self
    }
    /// A decompression bomb: `size` zero bytes in one file.
    pub fn bomb(size: u64) -> Layer {
        Layer {
            bomb: Some(size),
            compression: Compression::Zstd,
            ..Layer::new()
        }
    }

    /// Uncompressed tar bytes (not for bombs).
    pub fn tar_bytes(&self) -> Vec<u8> {
        assert!(self.bomb.is_none(), "a bomb layer is never materialised");
        let mut out = Vec::new();
        for e in &self.entries {
            write_entry(&mut out, e).unwrap();
        }
        if !self.no_trailer {
            out.extend_from_slice(&[0u8; 1024]);
        }
        out
    }

    pub fn build(&self, media: Media) -> BuiltLayer {
        if let Some(size) = self.bomb {
            return build_bomb(size, self.compression, media);
        }
        let tar = self.tar_bytes();
        let diff_id = digest_of(&tar);
        let bytes = compress(&tar, self.compression);
        BuiltLayer {
            blob: Blob::new(media.layer(self.compression), bytes),
            diff_id,
            compression: self.compression,
            tar: Some(tar),
        }
    }
}

pub fn compress(data: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

/// Writes into a compressor and a hasher at once.
struct Tee<W: Write> {
    inner: W,
    hash: Sha256,
}
impl<W: Write> Write for Tee<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.hash.update(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn build_bomb(size: u64, c: Compression, media: Media) -> BuiltLayer {
    fn feed<W: Write>(w: &mut W, size: u64) {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_path("bomb").unwrap();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(size);
        h.set_cksum();
        w.write_all(h.as_bytes()).unwrap();
        let zeros = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            w.write_all(&zeros[..n]).unwrap();
            left -= n as u64;
        }
        let pad = ((512 - size % 512) % 512) as usize;
        w.write_all(&vec![0u8; pad + 1024]).unwrap();
    }
    let (bytes, hash) = match c {
        Compression::Gzip => {
            let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            let mut t = Tee {
                inner: enc,
                hash: Sha256::new(),
            };
            feed(&mut t, size);
            (t.inner.finish().unwrap(), t.hash)
        }
        Compression::Zstd => {
            let enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
            let mut t = Tee {
                inner: enc,
                hash: Sha256::new(),
            };
            feed(&mut t, size);
            (t.inner.finish().unwrap(), t.hash)
        }
        Compression::None => panic!("an uncompressed bomb is just a big layer"),
    };
    BuiltLayer {
        blob: Blob::new(media.layer(c), bytes),
        diff_id: format!("sha256:{}", hex::encode(hash.finalize())),
        compression: c,
        tar: None,
    }
}

// ---------------------------------------------------------------- blobs

#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: digest_of(&bytes),
            bytes,
        }
    }
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

#[derive(Clone, Debug)]
pub struct BuiltLayer {
    /// The compressed blob as stored in the registry.
    pub blob: Blob,
    pub diff_id: String,
    pub compression: Compression,
    /// Uncompressed tar (None for bombs).
    pub tar: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub config: Blob,
    pub manifest: Blob,
    pub layers: Vec<BuiltLayer>,
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
    pub media: Media,
}

impl BuiltImage {
    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }
    pub fn chain_ids(&self) -> Vec<String> {
        chain_ids(&self.diff_ids())
    }
    /// Chain IDs without the `sha256:` prefix (names of `layers/<hex>`).
    pub fn chain_hexes(&self) -> Vec<String> {
        self.chain_ids()
            .into_iter()
            .map(|c| c.trim_start_matches("sha256:").to_string())
            .collect()
    }
    /// Image ID as docker prints it: the config digest.
    pub fn id(&self) -> &str {
        &self.config.digest
    }
    pub fn config_json(&self) -> Value {
        serde_json::from_slice(&self.config.bytes).unwrap()
    }
}

#[derive(Clone, Debug)]
pub struct BuiltIndex {
    pub index: Blob,
    pub images: Vec<BuiltImage>,
}

#[derive(Clone, Debug)]
pub enum Artifact {
    Image(BuiltImage),
    Index(BuiltIndex),
}

impl Artifact {
    pub fn images(&self) -> Vec<&BuiltImage> {
        match self {
            Artifact::Image(i) => vec![i],
            Artifact::Index(x) => x.images.iter().collect(),
        }
    }
    /// The manifest or index a tag points at.
    pub fn top(&self) -> &Blob {
        match self {
            Artifact::Image(i) => &i.manifest,
            Artifact::Index(x) => &x.index,
        }
    }
    pub fn image(&self) -> &BuiltImage {
        self.images()[0]
    }
    /// The image for `arch` (e.g. "arm64").
    pub fn for_arch(&self, arch: &str) -> &BuiltImage {
        self.images()
            .into_iter()
            .find(|i| i.arch == arch)
            .unwrap_or_else(|| panic!("no {arch} image"))
    }
    /// Every blob once (configs, layers, manifests, index).
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut out: Vec<&Blob> = Vec::new();
        for img in self.images() {
            for l in &img.layers {
                out.push(&l.blob);
            }
            out.push(&img.config);
            out.push(&img.manifest);
        }
        if let Artifact::Index(x) = self {
            out.push(&x.index);
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|b| seen.insert(b.digest.clone()));
        out
    }

    /// Write an OCI image layout (`oci-layout`, `index.json`,
    /// `blobs/sha256/`) with the top manifest tagged `tag`.
    pub fn write_oci_layout(&self, dir: &Path, tag: &str) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        for b in self.blobs() {
            std::fs::write(blobs.join(b.hex()), &b.bytes).unwrap();
        }
        let top = self.top();
        let mut desc = top.descriptor();
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        let index =
            json!({"schemaVersion": 2, "mediaType": Media::Oci.index(), "manifests": [desc]});
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }
}

// ---------------------------------------------------------------- base rootfs

fn busybox_bytes() -> &'static [u8] {
    static B: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    B.get_or_init(|| {
        std::fs::read(BUSYBOX).expect("busybox-static must be installed at /bin/busybox")
    })
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const GROUP: &str = "root:x:0:\napp:x:1000:\nnobody:x:65534:\n";

/// The minimal busybox rootfs entries (layer 1 of every default image).
pub fn base_entries() -> Vec<Entry> {
    let mut v = vec![
        Entry::dir("bin"),
        Entry::dir("dev"),
        Entry::dir("etc"),
        Entry::dir("home"),
        Entry::dir("home/app").owner(1000, 1000),
        Entry::dir("proc"),
        Entry::dir("root").mode(0o700),
        Entry::dir("sys"),
        Entry::dir("tmp").mode(0o1777),
        Entry::dir("usr"),
        Entry::dir("usr/bin"),
        Entry::dir("var"),
        Entry::dir("var/tmp").mode(0o1777),
        Entry::file("bin/busybox", busybox_bytes()).mode(0o755),
        Entry::file("etc/passwd", PASSWD),
        Entry::file("etc/group", GROUP),
        Entry::file("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
        Entry::file(
            "etc/os-release",
            "NAME=\"berth test busybox\"\nID=berth-test\n",
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    for a in APPLETS {
        if seen.insert(*a) {
            v.push(Entry::symlink(format!("bin/{a}"), "busybox"));
        }
    }
    v
}

pub fn base_layer() -> Layer {
    Layer {
        entries: base_entries(),
        comment: "busybox rootfs".into(),
        ..Layer::new()
    }
}

// ---------------------------------------------------------------- image builder

#[derive(Clone, Debug)]
pub struct ImageBuilder {
    pub media: Media,
    pub layers: Vec<Layer>,
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: Vec<(String, String)>,
    pub exposed: Vec<String>,
    pub volumes: Vec<String>,
    /// History entries that made no layer (ENV, CMD ...), appended last.
    pub empty_history: Vec<String>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        ImageBuilder::new()
    }
}

impl ImageBuilder {
    /// Busybox base layer (gzip), OCI media types, linux/amd64, `Cmd ["sh"]`.
    pub fn new() -> ImageBuilder {
        ImageBuilder {
            media: Media::Oci,
            layers: vec![base_layer()],
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cmd: Some(vec!["sh".into()]),
            entrypoint: None,
            workdir: None,
            user: None,
            labels: Vec::new(),
            exposed: Vec::new(),
            volumes: Vec::new(),
            empty_history: Vec::new(),
        }
    }
    /// No layers at all; add them yourself.
    pub fn empty() -> ImageBuilder {
        ImageBuilder {
            layers: Vec::new(),
            ..ImageBuilder::new()
        }
    }
    pub fn media(mut self, m: Media) -> Self {
        self.media = m;
        self
    }
    pub fn base_compression(mut self, c: Compression) -> Self {
        if let Some(l) = self.layers.first_mut() {
            l.compression = c;
        }
        self
    }
    pub fn layer(mut self, l: Layer) -> Self {
        self.layers.push(l);
        self
    }
    pub fn platform(mut self, os: &str, arch: &str, variant: Option<&str>) -> Self {
        self.os = os.into();
        self.arch = arch.into();
        self.variant = variant.map(str::to_string);
        self
    }
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.into());
        self
    }
    pub fn cmd(mut self, c: &[&str]) -> Self {
        self.cmd = Some(c.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn entrypoint(mut self, c: &[&str]) -> Self {
        self.entrypoint = Some(c.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn workdir(mut self, d: &str) -> Self {
        self.workdir = Some(d.into());
        self
    }
    pub fn user(mut self, u: &str) -> Self {
        self.user = Some(u.into());
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.push((k.into(), v.into()));
        self
    }
    pub fn expose(mut self, p: &str) -> Self {
        self.exposed.push(p.into());
        self
    }
    pub fn volume(mut self, p: &str) -> Self {
        self.volumes.push(p.into());
        self
    }
    pub fn history(mut self, created_by: &str) -> Self {
        self.empty_history.push(created_by.into());
        self
    }

    fn config_value(&self, diff_ids: &[String]) -> Value {
        let mut cfg = json!({"Env": self.env});
        if let Some(c) = &self.cmd {
            cfg["Cmd"] = json!(c);
        }
        if let Some(e) = &self.entrypoint {
            cfg["Entrypoint"] = json!(e);
        }
        if let Some(w) = &self.workdir {
            cfg["WorkingDir"] = json!(w);
        }
        if let Some(u) = &self.user {
            cfg["User"] = json!(u);
        }
        if !self.labels.is_empty() {
            let m: serde_json::Map<String, Value> = self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            cfg["Labels"] = Value::Object(m);
        }
        if !self.exposed.is_empty() {
            let m: serde_json::Map<String, Value> = self
                .exposed
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            cfg["ExposedPorts"] = Value::Object(m);
        }
        if !self.volumes.is_empty() {
            let m: serde_json::Map<String, Value> = self
                .volumes
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            cfg["Volumes"] = Value::Object(m);
        }
        let mut history: Vec<Value> = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let by = if l.comment.is_empty() {
                    format!("berth-test layer {i}")
                } else {
                    l.comment.clone()
                };
                json!({"created": CREATED, "created_by": by})
            })
            .collect();
        for h in &self.empty_history {
            history.push(json!({"created": CREATED, "created_by": h, "empty_layer": true}));
        }
        let mut v = json!({
            "created": CREATED,
            "architecture": self.arch,
            "os": self.os,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        if let Some(var) = &self.variant {
            v["variant"] = json!(var);
        }
        v
    }

    pub fn build_image(&self) -> BuiltImage {
        let layers = build_layers(&self.layers, self.media);
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let config = Blob::new(
            self.media.config(),
            serde_json::to_vec(&self.config_value(&diff_ids)).unwrap(),
        );
        let manifest_v = json!({
            "schemaVersion": 2,
            "mediaType": self.media.manifest(),
            "config": config.descriptor(),
            "layers": layers.iter().map(|l| l.blob.descriptor()).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(
            self.media.manifest(),
            serde_json::to_vec(&manifest_v).unwrap(),
        );
        BuiltImage {
            config,
            manifest,
            layers,
            os: self.os.clone(),
            arch: self.arch.clone(),
            variant: self.variant.clone(),
            media: self.media,
        }
    }

    pub fn build(&self) -> Artifact {
        Artifact::Image(self.build_image())
    }

    /// An index (or Docker manifest list) for linux/amd64 and linux/arm64/v8.
    /// Both reuse the same layer bytes; the arm64 config differs in
    /// architecture, variant, a label and an env var so tests can tell them
    /// apart.
    pub fn build_two_platforms(&self) -> Artifact {
        let amd = self
            .clone()
            .platform("linux", "amd64", None)
            .label("org.berth.test.platform", "linux/amd64")
            .env("BERTH_TEST_ARCH=amd64");
        let arm = self
            .clone()
            .platform("linux", "arm64", Some("v8"))
            .label("org.berth.test.platform", "linux/arm64")
            .env("BERTH_TEST_ARCH=arm64");
        index_of(self.media, vec![amd.build_image(), arm.build_image()])
    }
}

/// Compress layers on both cores; order is kept.
fn build_layers(layers: &[Layer], media: Media) -> Vec<BuiltLayer> {
    if layers.len() < 2 {
        return layers.iter().map(|l| l.build(media)).collect();
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<BuiltLayer>>> =
        layers.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= layers.len() {
                    break;
                }
                let built = layers[i].build(media);
                *slots[i].lock().unwrap() = Some(built);
            });
        }
    });
    slots
        .into_iter()
        .map(|s| s.into_inner().unwrap().unwrap())
        .collect()
}

pub fn index_of(media: Media, images: Vec<BuiltImage>) -> Artifact {
    let manifests: Vec<Value> = images
        .iter()
        .map(|i| {
            let mut d = i.manifest.descriptor();
            let mut p = json!({"os": i.os, "architecture": i.arch});
            if let Some(v) = &i.variant {
                p["variant"] = json!(v);
            }
            d["platform"] = p;
            d
        })
        .collect();
    let v = json!({"schemaVersion": 2, "mediaType": media.index(), "manifests": manifests});
    Artifact::Index(BuiltIndex {
        index: Blob::new(media.index(), serde_json::to_vec(&v).unwrap()),
        images,
    })
}

// ---------------------------------------------------------------- generators

/// An image with `n` layers in total (busybox base + n-1 small layers); each
/// layer adds `layers/NNNN` and rewrites `layers/top`, so the merged view
/// shows whether layer order was kept.
pub fn many_layers(n: usize) -> ImageBuilder {
    assert!(n >= 1);
    let mut b = ImageBuilder::new();
    for i in 1..n {
        b = b.layer(
            Layer::new()
                .file(&format!("layers/{i:04}"), format!("layer {i}\n"))
                .file("layers/top", format!("{i}\n"))
                .comment(&format!("layer {i}")),
        );
    }
    b
}

/// Regular files under /usr/lib and /usr/share in a fixed (sorted) order.
fn payload_files() -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        let mut names: Vec<_> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(_) => return,
        };
        names.sort();
        for p in names {
            let md = match std::fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if md.is_dir() {
                walk(&p, out);
            } else if md.is_file() {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/usr/lib"), &mut out);
    walk(Path::new("/usr/share"), &mut out);
    out
}

/// A realistic, deterministic image of about `total_bytes` uncompressed in
/// exactly `layers` layers: the first also holds the busybox rootfs; every
/// layer is filled with host files from /usr/lib and /usr/share (under
/// `payload/`) and gzip'd at the default level. Same host, same digests.
pub fn big_image(total_bytes: u64, layers: usize) -> ImageBuilder {
    assert!(layers >= 1);
    let per_layer = total_bytes / layers as u64;
    let mut files = payload_files().into_iter();
    let mut dirs_seen = std::collections::HashSet::new();
    let mut b = ImageBuilder::empty();
    for i in 0..layers {
        let mut l = if i == 0 { base_layer() } else { Layer::new() };
        l.comment = format!("payload {i}");
        let mut size = 0u64;
        while size < per_layer {
            let Some(p) = files.next() else { break };
            let Ok(content) = std::fs::read(&p) else {
                continue;
            };
            size += content.len() as u64;
            let name = format!("payload{}", p.display());
            // Parent directories first, once per image, as real images do.
            let mut parent = String::new();
            for comp in name
                .split('/')
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .skip(1)
                .rev()
            {
                if !parent.is_empty() {
                    parent.push('/');
                }
                parent.push_str(comp);
                if dirs_seen.insert(parent.clone()) {
                    l.entries.push(Entry::dir(parent.as_str()));
                }
            }
            l.entries.push(Entry::file(name, content));
        }
        b = b.layer(l);
    }
    b
}
