//! Certificates and keys made with the `openssl` CLI for TLS registries and
//! the token server.

use super::proc::run;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and a server certificate for 127.0.0.1 / localhost signed by it.
pub struct ServerPki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// `openssl req -x509` for a new 2048-bit RSA key and a 2-day certificate.
fn self_signed(subject: &str, key: &Path, cert: &Path) -> Command {
    let mut c = Command::new("openssl");
    c.args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
    ])
    .arg(subject)
    .arg("-keyout")
    .arg(key)
    .arg("-out")
    .arg(cert);
    c
}

pub fn make_server_pki(dir: &Path) -> ServerPki {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = dir.join("ca.key");
    let ca_cert = dir.join("ca.crt");
    let server_key = dir.join("server.key");
    let server_csr = dir.join("server.csr");
    let server_cert = dir.join("server.crt");
    let ext = dir.join("server.ext");
    run(self_signed("/CN=berth-test-ca", &ca_key, &ca_cert).args([
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&server_key)
        .arg("-out")
        .arg(&server_csr));
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-sha256", "-CAcreateserial"])
        .arg("-in")
        .arg(&server_csr)
        .arg("-CA")
        .arg(&ca_cert)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-out")
        .arg(&server_cert)
        .arg("-extfile")
        .arg(&ext));
    ServerPki {
        ca_cert,
        ca_key,
        server_cert,
        server_key,
    }
}

/// A self-signed RSA certificate whose key signs tokens (RS256). The
/// certificate is both the registry's `rootcertbundle` and the token's `x5c`.
pub struct SigningKey {
    pub key: PathBuf,
    pub cert: PathBuf,
    /// DER of the certificate, for the JWT `x5c` header.
    pub cert_der: Vec<u8>,
}

pub fn make_signing_key(dir: &Path) -> SigningKey {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join("token.key");
    let cert = dir.join("token.crt");
    let der = dir.join("token.der");
    run(&mut self_signed("/CN=berth-test-token-issuer", &key, &cert));
    run(Command::new("openssl")
        .args(["x509", "-outform", "DER"])
        .arg("-in")
        .arg(&cert)
        .arg("-out")
        .arg(&der));
    let cert_der = std::fs::read(&der).unwrap();
    SigningKey {
        key,
        cert,
        cert_der,
    }
}

/// RS256 signature (PKCS#1 v1.5 over SHA-256) of `data`.
pub fn sign_rs256(key: &Path, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn openssl dgst");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl dgst -sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
