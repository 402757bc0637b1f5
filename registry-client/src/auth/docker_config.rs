//! docker's `config.json`: reading credentials (`auths`, `credHelpers`,
//! `credsStore`) and storing them for `login` / `logout`.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{CredentialHelper, CredentialSource, Credentials};
use crate::error::Error;
use crate::reference::{normalize_registry, DOCKER_HUB, DOCKER_HUB_AUTH_KEY};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A loaded `config.json`. Unknown keys are kept as they are when saving.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
    helper_search_path: Option<OsString>,
}

/// The key or server URL docker uses for a registry: the v1 index URL for
/// docker.io, the host[:port] otherwise.
fn server_key(registry: &str) -> String {
    let r = normalize_registry(registry);
    if r == DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        r
    }
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
    }

    /// Loads the default config; a missing file is an empty config.
    pub fn load() -> Result<DockerConfig, Error> {
        let path = Self::default_path().ok_or_else(|| Error::Config {
            path: PathBuf::from("~/.docker/config.json"),
            detail: "neither DOCKER_CONFIG nor HOME is set".into(),
        })?;
        Self::load_from(path)
    }

    /// Loads `path`; a missing file is an empty config.
    pub fn load_from(path: impl Into<PathBuf>) -> Result<DockerConfig, Error> {
        let path = path.into();
        let doc = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(Error::Config {
                        path,
                        detail: "top level is not a JSON object".into(),
                    })
                }
                Err(e) => {
                    return Err(Error::Config {
                        path,
                        detail: format!("{e}; fix or remove the file"),
                    })
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        Ok(DockerConfig {
            path,
            doc,
            helper_search_path: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks credential helpers up in this `PATH` instead of the process's.
    pub fn set_helper_search_path(&mut self, path: Option<OsString>) {
        self.helper_search_path = path;
    }

    fn str_field(&self, key: &str) -> Option<&str> {
        self.doc
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The helper responsible for `registry`: its `credHelpers` entry, else
    /// the default `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<CredentialHelper> {
        let want = normalize_registry(registry);
        let per_registry = self
            .doc
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|m| {
                m.iter()
                    .find(|(k, _)| normalize_registry(k) == want)
                    .and_then(|(_, v)| v.as_str())
            })
            .filter(|s| !s.is_empty());
        per_registry
            .or_else(|| self.str_field("credsStore"))
            .map(|name| CredentialHelper::new(name, self.helper_search_path.clone()))
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.doc.get("auths").and_then(Value::as_object)
    }

    fn auth_entry(&self, registry: &str) -> Option<(&String, &Map<String, Value>)> {
        let want = normalize_registry(registry);
        let auths = self.auths()?;
        let exact = server_key(registry);
        auths
            .get_key_value(&exact)
            .or_else(|| auths.iter().find(|(k, _)| normalize_registry(k) == want))
            .and_then(|(k, v)| v.as_object().map(|o| (k, o)))
    }

    fn auths_credentials(&self, registry: &str) -> Result<Option<Credentials>, Error> {
        let Some((key, entry)) = self.auth_entry(registry) else {
            return Ok(None);
        };
        let get = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or("");
        let (mut username, mut password) =
            (get("username").to_string(), get("password").to_string());
        let auth = get("auth");
        if !auth.is_empty() {
            let decoded = B64.decode(auth.trim()).map_err(|e| Error::Config {
                path: self.path.clone(),
                detail: format!("auths[{key}].auth is not base64: {e}"),
            })?;
            let decoded = String::from_utf8(decoded).map_err(|_| Error::Config {
                path: self.path.clone(),
                detail: format!("auths[{key}].auth is not UTF-8"),
            })?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| Error::Config {
                path: self.path.clone(),
                detail: format!("auths[{key}].auth must encode username:password"),
            })?;
            username = u.to_string();
            password = p.to_string();
        }
        let token = get("identitytoken");
        if !token.is_empty() {
            return Ok(Some(Credentials::IdentityToken(token.to_string())));
        }
        if username.is_empty() && password.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credentials::Basic { username, password }))
    }

    /// Stores credentials after a successful `login`: in the registry's
    /// helper if one is configured (docker then keeps an empty `auths`
    /// entry), else base64 in `auths`. Rewrites the file.
    pub fn login_store(
        &mut self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<(), Error> {
        let key = server_key(registry);
        let entry = if let Some(helper) = self.helper_for(registry) {
            helper.store(&key, username, password)?;
            Map::new()
        } else {
            let mut m = Map::new();
            m.insert(
                "auth".into(),
                Value::String(B64.encode(format!("{username}:{password}"))),
            );
            m
        };
        self.remove_auth_entries(registry);
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Value::Object(a) = auths {
            a.insert(key, Value::Object(entry));
        }
        self.save()
    }

    fn remove_auth_entries(&mut self, registry: &str) -> bool {
        let want = normalize_registry(registry);
        let Some(Value::Object(auths)) = self.doc.get_mut("auths") else {
            return false;
        };
        let before = auths.len();
        auths.retain(|k, _| normalize_registry(k) != want);
        auths.len() != before
    }

    /// Forgets the credentials of `registry` (helper and `auths`). Returns
    /// false when there was nothing to forget (docker then says "Not logged
    /// in to ..."). Rewrites the file only when something changed.
    pub fn logout(&mut self, registry: &str) -> Result<bool, Error> {
        let mut removed = false;
        if let Some(helper) = self.helper_for(registry) {
            removed |= helper.erase(&server_key(registry))?;
        }
        if self.remove_auth_entries(registry) {
            removed = true;
            self.save()?;
        }
        Ok(removed)
    }

    /// Writes the config atomically: temp file (mode 0600), fsync, rename,
    /// fsync of the directory. A symlinked config is written through.
    pub fn save(&self) -> Result<(), Error> {
        let target = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io("creating directory", &dir, e))?;
        let mut bytes =
            serde_json::to_vec_pretty(&Value::Object(self.doc.clone())).map_err(|source| {
                Error::Json {
                    what: "docker config".into(),
                    source,
                }
            })?;
        bytes.push(b'\n');
        let tmp = dir.join(format!(
            ".config.json.tmp-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &target)?;
            std::fs::File::open(&dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io("writing", &target, e)
        })
    }
}

impl CredentialSource for DockerConfig {
    fn get(&self, registry_host: &str) -> Result<Option<Credentials>, Error> {
        if let Some(helper) = self.helper_for(registry_host) {
            if let Some(c) = helper.get(&server_key(registry_host))? {
                return Ok(Some(c));
            }
        }
        self.auths_credentials(registry_host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write_config(dir: &Path, json: &str) -> PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    fn basic(u: &str, p: &str) -> Option<Credentials> {
        Some(Credentials::Basic {
            username: u.into(),
            password: p.into(),
        })
    }

    #[test]
    fn reads_auths_in_all_forms() {
        let dir = tempfile::tempdir().unwrap();
        let hub = B64.encode("hubuser:hub:pass");
        let local = B64.encode("me:secret");
        let p = write_config(
            dir.path(),
            &format!(
                r#"{{"auths":{{
                "https://index.docker.io/v1/":{{"auth":"{hub}"}},
                "localhost:5000":{{"auth":"{local}"}},
                "https://ghcr.io/v2/":{{"username":"u","password":"p"}},
                "quay.io":{{"auth":"{local}","identitytoken":"refresh-me"}},
                "empty.example":{{}}
            }},"HttpHeaders":{{"X":"y"}}}}"#
            ),
        );
        let c = DockerConfig::load_from(&p).unwrap();
        assert_eq!(c.get("docker.io").unwrap(), basic("hubuser", "hub:pass"));
        assert_eq!(
            c.get("index.docker.io").unwrap(),
            basic("hubuser", "hub:pass")
        );
        assert_eq!(
            c.get("registry-1.docker.io").unwrap(),
            basic("hubuser", "hub:pass")
        );
        assert_eq!(c.get("localhost:5000").unwrap(), basic("me", "secret"));
        assert_eq!(c.get("ghcr.io").unwrap(), basic("u", "p"));
        assert_eq!(
            c.get("quay.io").unwrap(),
            Some(Credentials::IdentityToken("refresh-me".into()))
        );
        assert_eq!(c.get("empty.example").unwrap(), None);
        assert_eq!(c.get("localhost:5001").unwrap(), None);
    }

    #[test]
    fn default_path_honours_docker_config() {
        // Only this test touches DOCKER_CONFIG in this test binary.
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("DOCKER_CONFIG", dir.path());
        assert_eq!(
            DockerConfig::default_path().unwrap(),
            dir.path().join("config.json")
        );
        write_config(dir.path(), r#"{"auths":{"x.io":{"auth":"YTpi"}}}"#);
        assert_eq!(
            DockerConfig::load().unwrap().get("x.io").unwrap(),
            basic("a", "b")
        );
        std::env::remove_var("DOCKER_CONFIG");
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(
                DockerConfig::default_path().unwrap(),
                PathBuf::from(home).join(".docker/config.json")
            );
        }
    }

    #[test]
    fn missing_and_empty_files_are_empty_configs() {
        let dir = tempfile::tempdir().unwrap();
        let c = DockerConfig::load_from(dir.path().join("nope.json")).unwrap();
        assert_eq!(c.get("docker.io").unwrap(), None);
        let p = write_config(dir.path(), "  \n");
        assert_eq!(
            DockerConfig::load_from(p)
                .unwrap()
                .get("docker.io")
                .unwrap(),
            None
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_config(dir.path(), "{not json");
        assert!(matches!(
            DockerConfig::load_from(&p),
            Err(Error::Config { .. })
        ));
        let p = write_config(dir.path(), r#"{"auths":{"x.io":{"auth":"!!!"}}}"#);
        let err = DockerConfig::load_from(&p)
            .unwrap()
            .get("x.io")
            .unwrap_err()
            .to_string();
        assert!(err.contains("auths[x.io].auth is not base64"), "{err}");
        let p = write_config(
            dir.path(),
            &format!(
                r#"{{"auths":{{"x.io":{{"auth":"{}"}}}}}}"#,
                B64.encode("nocolon")
            ),
        );
        assert!(DockerConfig::load_from(&p).unwrap().get("x.io").is_err());
    }

    #[test]
    fn login_and_logout_rewrite_file_keeping_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_config(
            dir.path(),
            r#"{"auths":{"other.io":{"auth":"b3RoZXI6eA=="}},"psFormat":"table {{.ID}}","proxies":{"default":{}}}"#,
        );
        let mut c = DockerConfig::load_from(&p).unwrap();
        c.login_store("localhost:5000", "alice", "pw").unwrap();
        c.login_store("docker.io", "bob", "pw2").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let raw: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(raw["psFormat"], "table {{.ID}}");
        assert!(raw["proxies"]["default"].is_object());
        assert_eq!(
            raw["auths"]["localhost:5000"]["auth"],
            B64.encode("alice:pw")
        );
        assert_eq!(
            raw["auths"][DOCKER_HUB_AUTH_KEY]["auth"],
            B64.encode("bob:pw2")
        );
        let reread = DockerConfig::load_from(&p).unwrap();
        assert_eq!(reread.get("localhost:5000").unwrap(), basic("alice", "pw"));
        assert_eq!(reread.get("other.io").unwrap(), basic("other", "x"));

        let mut c = reread;
        assert!(c.logout("localhost:5000").unwrap());
        assert!(!c.logout("localhost:5000").unwrap());
        assert!(c.logout("https://index.docker.io/v1/").unwrap());
        let reread = DockerConfig::load_from(&p).unwrap();
        assert_eq!(reread.get("localhost:5000").unwrap(), None);
        assert_eq!(reread.get("docker.io").unwrap(), None);
        assert_eq!(reread.get("other.io").unwrap(), basic("other", "x"));
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config.json")]);
    }

    #[test]
    fn login_creates_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/.docker/config.json");
        let mut c = DockerConfig::load_from(&p).unwrap();
        c.login_store("localhost:5000", "a", "b").unwrap();
        assert_eq!(
            DockerConfig::load_from(&p)
                .unwrap()
                .get("localhost:5000")
                .unwrap(),
            basic("a", "b")
        );
    }

    /// A helper that keeps its store as one file per server URL in $STORE.
    fn install_helper(bin: &Path, name: &str, store: &Path) {
        let script = format!(
            r#"#!/bin/sh
STORE='{store}'
read_all() {{ cat; }}
case "$1" in
get)
  url=$(read_all)
  f="$STORE/$(printf %s "$url" | tr '/:' '__')"
  if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store)
  doc=$(read_all)
  url=$(printf %s "$doc" | sed 's/.*"ServerURL":"\([^"]*\)".*/\1/')
  printf %s "$doc" > "$STORE/$(printf %s "$url" | tr '/:' '__')" ;;
erase)
  url=$(read_all)
  f="$STORE/$(printf %s "$url" | tr '/:' '__')"
  if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
*) echo "unknown action $1" >&2; exit 2 ;;
esac
"#,
            store = store.display()
        );
        let p = bin.join(format!("docker-credential-{name}"));
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn search_path(bin: &Path) -> Option<OsString> {
        Some(OsString::from(format!("{}:/usr/bin:/bin", bin.display())))
    }

    #[test]
    fn creds_store_helper_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (bin, store) = (dir.path().join("bin"), dir.path().join("store"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&store).unwrap();
        install_helper(&bin, "teststore", &store);
        let p = write_config(dir.path(), r#"{"credsStore":"teststore"}"#);
        let mut c = DockerConfig::load_from(&p).unwrap();
        c.set_helper_search_path(search_path(&bin));
        assert_eq!(c.get("localhost:5000").unwrap(), None);
        c.login_store("localhost:5000", "alice", "s3cret").unwrap();
        c.login_store("docker.io", "<token>", "refresh").unwrap();
        // The secret went to the helper; config.json only has an empty entry.
        let raw: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(raw["auths"]["localhost:5000"], serde_json::json!({}));
        assert_eq!(raw["credsStore"], "teststore");
        assert!(store.join("localhost_5000").exists());
        assert_eq!(c.get("localhost:5000").unwrap(), basic("alice", "s3cret"));
        assert_eq!(
            c.get("docker.io").unwrap(),
            Some(Credentials::IdentityToken("refresh".into()))
        );
        assert!(c.logout("localhost:5000").unwrap());
        assert_eq!(c.get("localhost:5000").unwrap(), None);
        assert!(!c.logout("localhost:5000").unwrap());
    }

    #[test]
    fn cred_helpers_override_store_per_registry() {
        let dir = tempfile::tempdir().unwrap();
        let (bin, store) = (dir.path().join("bin"), dir.path().join("store"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&store).unwrap();
        install_helper(&bin, "special", &store);
        std::fs::write(
            store.join("special.example_5000"),
            r#"{"ServerURL":"special.example:5000","Username":"sp","Secret":"pw"}"#,
        )
        .unwrap();
        let p = write_config(
            dir.path(),
            r#"{"credsStore":"missing-helper","credHelpers":{"special.example:5000":"special"},"auths":{"plain.io":{"auth":"YTpi"}}}"#,
        );
        let mut c = DockerConfig::load_from(&p).unwrap();
        c.set_helper_search_path(search_path(&bin));
        assert_eq!(c.get("special.example:5000").unwrap(), basic("sp", "pw"));
        // The default store is configured but not installed: say so.
        let err = c.get("plain.io").unwrap_err().to_string();
        assert!(
            err.contains("docker-credential-missing-helper not found"),
            "{err}"
        );
    }

    #[test]
    fn helper_failure_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let p = bin.join("docker-credential-broken");
        std::fs::write(&p, "#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = write_config(dir.path(), r#"{"credsStore":"broken"}"#);
        let mut c = DockerConfig::load_from(&cfg).unwrap();
        c.set_helper_search_path(search_path(&bin));
        let err = c.get("x.io").unwrap_err().to_string();
        assert!(err.contains("keychain locked"), "{err}");
        assert!(c.login_store("x.io", "a", "b").is_err());
    }
}
