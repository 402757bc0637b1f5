//! Runs the binary under test with a private `--root` and a private
//! `DOCKER_CONFIG`, so the host's images and credentials never leak in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `BERTH_BIN` if set, else the binary cargo built for this test. Examples
/// get no `CARGO_BIN_EXE_*`, so there it falls back to `target/*/berth`.
pub fn berth_bin() -> PathBuf {
    match std::env::var_os("BERTH_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => match option_env!("CARGO_BIN_EXE_berth") {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/berth")),
        },
    }
}

pub struct Berth {
    pub root: tempfile::TempDir,
    pub docker_config: tempfile::TempDir,
    pub envs: Vec<(String, String)>,
    /// Private nft table, default bridge and subnets (`BERTH_CONFIG`); a
    /// test that sets its own `BERTH_CONFIG` should start from `net.config`.
    pub net: super::netcfg::NetCfg,
}

impl Default for Berth {
    fn default() -> Self {
        Berth::new()
    }
}

impl Berth {
    pub fn new() -> Berth {
        let docker_config = tempfile::Builder::new()
            .prefix("berth-dockercfg-")
            .tempdir()
            .unwrap();
        let net = super::netcfg::NetCfg::new(docker_config.path());
        Berth {
            root: tempfile::Builder::new()
                .prefix("berth-root-")
                .tempdir()
                .unwrap(),
            envs: vec![(
                "BERTH_CONFIG".to_string(),
                net.config.to_string_lossy().into_owned(),
            )],
            docker_config,
            net,
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// An environment variable for every later command.
    pub fn env(&mut self, k: &str, v: impl AsRef<str>) -> &mut Self {
        self.envs.push((k.to_string(), v.as_ref().to_string()));
        self
    }

    /// The command, ready to run or spawn: `berth --root R ARGS...`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.arg("--root").arg(self.root.path()).args(args);
        c.env("DOCKER_CONFIG", self.docker_config.path())
            .env_remove("BERTH_ROOT")
            .env_remove("BERTH_CERTS_D")
            .env("NO_COLOR", "1");
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c.stdin(Stdio::null());
        c
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", berth_bin().display()))
    }

    pub fn cmd_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut c = self.command(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run berth: {e}"));
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        check_ok(args, &out)
    }

    pub fn ok_stdin(&self, args: &[&str], input: &[u8]) -> String {
        let out = self.cmd_stdin(args, input);
        check_ok(args, &out)
    }

    /// Run and require failure; returns (exit code, stderr).
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.cmd(args);
        if out.status.success() {
            panic!(
                "berth {} succeeded but should have failed\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

pub fn check_ok(args: &[&str], out: &Output) -> String {
    if !out.status.success() {
        panic!(
            "berth {} failed ({})\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .map(PathBuf::from)
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    v.dedup();
    v
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8)
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn unmount_all_under(dir: &Path) {
    for m in mounts_under(dir) {
        if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        unmount_all_under(self.root.path());
        self.net.teardown(self.root.path());
        if std::thread::panicking() {
            eprintln!("berth root was {}", self.root.path().display());
        }
    }
}
