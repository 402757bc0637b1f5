//! Runs Debian's CNCF distribution (`/usr/bin/docker-registry`) on a free
//! loopback port with its storage in a temp dir.
//!
//! Every registry also gets a plain-HTTP, unauthenticated sibling process
//! serving the SAME storage directory (`seed_host`). Fixtures are pushed
//! through it with our own HTTP client, so TLS and auth modes need no
//! credentials for seeding and never rely on the code under test.

use super::image::Artifact;
use super::pki::{make_server_pki, ServerPki};
use super::proc::{die_with_parent, free_port, ChildGuard};
use super::push::push_artifact;
use super::token_server::{TokenOpts, TokenServer, ISSUER, SERVICE};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Htpasswd { user: String, pass: String },
    Token(TokenOpts),
}

#[derive(Clone, Debug)]
pub struct RegistryOpts {
    pub tls: bool,
    pub auth: Auth,
}

impl RegistryOpts {
    pub fn plain() -> Self {
        RegistryOpts {
            tls: false,
            auth: Auth::None,
        }
    }
    pub fn htpasswd(user: &str, pass: &str) -> Self {
        RegistryOpts {
            tls: false,
            auth: Auth::Htpasswd {
                user: user.into(),
                pass: pass.into(),
            },
        }
    }
    pub fn tls() -> Self {
        RegistryOpts {
            tls: true,
            auth: Auth::None,
        }
    }
    pub fn token(opts: TokenOpts) -> Self {
        RegistryOpts {
            tls: false,
            auth: Auth::Token(opts),
        }
    }
}

pub struct Registry {
    /// `127.0.0.1:PORT` of the registry under test.
    pub host: String,
    pub port: u16,
    /// `127.0.0.1:PORT` of the unauthenticated plain sibling (same storage).
    pub seed_host: String,
    pub dir: tempfile::TempDir,
    pub pki: Option<ServerPki>,
    pub token: Option<TokenServer>,
    main: ChildGuard,
    seed: Option<ChildGuard>,
    log: PathBuf,
    seed_log: PathBuf,
}

impl Registry {
    pub fn start(opts: RegistryOpts) -> Registry {
        let dir = super::proc::owned_temp_dir("registry");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let pki = opts.tls.then(|| make_server_pki(&dir.path().join("pki")));
        let mut auth_yaml = String::new();
        let mut token = None;
        match &opts.auth {
            Auth::None => {}
            Auth::Htpasswd { user, pass } => {
                let out = super::proc::run(Command::new("htpasswd").args(["-Bbn", user, pass]));
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, out.trim_end().to_string() + "\n").unwrap();
                auth_yaml = format!(
                    "auth:\n  htpasswd:\n    realm: berth-test-realm\n    path: {}\n",
                    path.display()
                );
            }
            Auth::Token(topts) => {
                let ts = TokenServer::start(&dir.path().join("token"), topts.clone());
                auth_yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    ts.realm(),
                    ts.cert_path().display()
                );
                token = Some(ts);
            }
        }
        let tls_yaml = match &pki {
            Some(p) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                p.server_cert.display(),
                p.server_key.display()
            ),
            None => String::new(),
        };
        let log = dir.path().join("registry.log");
        let (main, port) = spawn_retrying(
            dir.path(),
            "main",
            &storage,
            &tls_yaml,
            &auth_yaml,
            &log,
            pki.is_some(),
        );
        let seed_log = dir.path().join("seed.log");
        let (seed, seed_port) = if pki.is_none() && matches!(opts.auth, Auth::None) {
            (None, port)
        } else {
            let (g, p) = spawn_retrying(dir.path(), "seed", &storage, "", "", &seed_log, false);
            (Some(g), p)
        };
        Registry {
            host: format!("127.0.0.1:{port}"),
            port,
            seed_host: format!("127.0.0.1:{seed_port}"),
            dir,
            pki,
            token,
            main,
            seed,
            log,
            seed_log,
        }
    }

    pub fn plain() -> Registry {
        Registry::start(RegistryOpts::plain())
    }

    /// Push an image or index as `repo:tag` through the plain sibling.
    /// Returns the digest of the top-level manifest.
    pub fn push(&self, repo: &str, tag: &str, artifact: &Artifact) -> String {
        push_artifact(&self.seed_host, repo, tag, artifact)
            .unwrap_or_else(|e| panic!("seeding {repo}:{tag} failed: {e}\n{}", self.logs()))
    }

    /// `repo:tag` reference on the registry under test.
    pub fn reference(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host)
    }

    pub fn ca_cert(&self) -> Option<&Path> {
        self.pki.as_ref().map(|p| p.ca_cert.as_path())
    }

    /// A docker-style certs directory: `<dir>/127.0.0.1:PORT/ca.crt`.
    /// Returns `<dir>` (for `BERTH_CERTS_D`), empty for a non-TLS registry.
    pub fn certs_d(&self) -> PathBuf {
        let d = self.dir.path().join("certs.d");
        let host_dir = d.join(&self.host);
        std::fs::create_dir_all(&host_dir).unwrap();
        if let Some(ca) = self.ca_cert() {
            std::fs::copy(ca, host_dir.join("ca.crt")).unwrap();
        }
        d
    }

    /// The last lines of both registry logs.
    pub fn logs(&self) -> String {
        let tail = |p: &Path| {
            let s = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        let main = tail(&self.log);
        let seed = tail(&self.seed_log);
        format!("--- registry log ---\n{main}\n--- seed registry log ---\n{seed}")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.main.kill();
        if let Some(s) = self.seed.as_mut() {
            s.kill();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

fn config_yaml(port: u16, storage: &Path, tls_yaml: &str, auth_yaml: &str) -> String {
    format!(
        "version: 0.1\n\
log:\n  level: info\n  accesslog:\n    disabled: false\n\
storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
http:\n  addr: 127.0.0.1:{port}\n  secret: berth-test-secret\n{tls_yaml}\
health:\n  storagedriver:\n    enabled: false\n\
{auth_yaml}",
        storage.display()
    )
}

/// Start a registry on a free port; another test may take the port between
/// our probe and the registry's bind, so retry a few times.
#[allow(clippy::too_many_arguments)]
fn spawn_retrying(
    dir: &Path,
    name: &str,
    storage: &Path,
    tls_yaml: &str,
    auth_yaml: &str,
    log: &Path,
    tls: bool,
) -> (ChildGuard, u16) {
    let mut last_log = String::new();
    for attempt in 0..8 {
        let port = free_port();
        let cfg = dir.join(format!("{name}-config.yml"));
        std::fs::write(&cfg, config_yaml(port, storage, tls_yaml, auth_yaml)).unwrap();
        let logf = std::fs::File::create(log).unwrap();
        let mut cmd = Command::new(REGISTRY_BIN);
        cmd.arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN}: {e}"));
        let mut guard = ChildGuard::new(&format!("docker-registry {name}"), child);
        if wait_ready(&mut guard, port, tls) {
            return (guard, port);
        }
        guard.kill();
        last_log = std::fs::read_to_string(log).unwrap_or_default();
        eprintln!("registry {name} attempt {attempt} on port {port} failed to start; retrying");
    }
    panic!("docker-registry {name} did not start:\n{last_log}");
}

fn wait_ready(guard: &mut ChildGuard, port: u16, tls: bool) -> bool {
    let host = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if guard.exited().is_some() {
            return false;
        }
        if tls {
            // A TLS listener: any TCP accept means it is serving.
            if std::net::TcpStream::connect(&host).is_ok() {
                return guard.exited().is_none();
            }
        } else if let Ok(r) = super::http::get(&host, "/v2/") {
            // 200 (open) or 401 (auth) both mean the API is up; anything
            // else is some other program that grabbed the port.
            return (r.status == 200 || r.status == 401) && guard.exited().is_none();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
