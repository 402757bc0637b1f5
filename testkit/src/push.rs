//! Seeds a registry over plain HTTP with our own client: monolithic blob
//! uploads (POST then PUT ?digest=) and manifest PUTs.

use super::http::{percent_encode, request};
use super::image::{Artifact, Blob};

pub fn push_blob(host: &str, repo: &str, blob: &Blob) -> Result<(), String> {
    let head = request(
        host,
        "HEAD",
        &format!("/v2/{repo}/blobs/{}", blob.digest),
        &[],
        &[],
    )
    .map_err(|e| format!("HEAD blob {}: {e}", blob.digest))?;
    if head.status == 200 {
        return Ok(());
    }
    let start = request(
        host,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        &[],
    )
    .map_err(|e| format!("POST upload: {e}"))?;
    if start.status != 202 {
        return Err(format!(
            "POST upload: status {} {}",
            start.status,
            start.text()
        ));
    }
    let loc = start
        .header("location")
        .ok_or("upload start without Location")?
        .to_string();
    // The Location may be absolute; keep only path and query.
    let path = match loc.find("://") {
        Some(i) => {
            let rest = &loc[i + 3..];
            rest.find('/')
                .map(|j| rest[j..].to_string())
                .unwrap_or_default()
        }
        None => loc,
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    let put_path = format!("{path}{sep}digest={}", percent_encode(&blob.digest));
    let put = request(
        host,
        "PUT",
        &put_path,
        &[("Content-Type", "application/octet-stream")],
        &blob.bytes,
    )
    .map_err(|e| format!("PUT blob {}: {e}", blob.digest))?;
    if put.status != 201 {
        return Err(format!(
            "PUT blob {}: status {} {}",
            blob.digest,
            put.status,
            put.text()
        ));
    }
    Ok(())
}

pub fn push_manifest(host: &str, repo: &str, reference: &str, m: &Blob) -> Result<String, String> {
    let r = request(
        host,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", m.media_type.as_str())],
        &m.bytes,
    )
    .map_err(|e| format!("PUT manifest {reference}: {e}"))?;
    if r.status != 201 {
        return Err(format!(
            "PUT manifest {reference}: status {} {}",
            r.status,
            r.text()
        ));
    }
    Ok(r.header("docker-content-digest")
        .unwrap_or(&m.digest)
        .to_string())
}

/// Push every blob, the child manifests (by digest) of an index, then the
/// top manifest under `tag`. Returns the top manifest digest.
pub fn push_artifact(host: &str, repo: &str, tag: &str, a: &Artifact) -> Result<String, String> {
    for img in a.images() {
        for l in &img.layers {
            push_blob(host, repo, &l.blob)?;
        }
        push_blob(host, repo, &img.config)?;
        if matches!(a, Artifact::Index(_)) {
            push_manifest(host, repo, &img.manifest.digest, &img.manifest)?;
        }
    }
    push_manifest(host, repo, tag, a.top())
}
