//! A fault-injecting HTTP proxy (std threads) in front of a plain-HTTP
//! registry. It understands just enough HTTP/1.1 to count requests per path
//! and to break chosen responses: a status instead of the answer, a dropped
//! connection part-way through a body, one flipped byte, or a `Range`
//! request header hidden from the upstream (a server that ignores Range).

use super::http::{read_headers, read_request, write_response, Request};
use crate::accept::AcceptLoop;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer `status` (with `Retry-After` if given) instead of forwarding,
    /// to the first `times` requests whose method matches (None = any) and
    /// whose path contains `path_contains`.
    Status {
        method: Option<String>,
        path_contains: String,
        status: u16,
        retry_after: Option<u32>,
        times: usize,
    },
    /// Forward the head and `after_bytes` of the body, then cut the
    /// connection, on the first `times` matching GETs.
    DropBody {
        path_contains: String,
        after_bytes: usize,
        times: usize,
    },
    /// Flip the body byte at `offset` on the first `times` matching GETs.
    Corrupt {
        path_contains: String,
        offset: usize,
        times: usize,
    },
    /// Remove the `Range` header from the first `times` matching GETs
    /// before forwarding, so the upstream answers 200 with the whole body.
    /// Unlike the others this fault does not end the search: a later fault
    /// in the list can still shape the same response.
    StripRange { path_contains: String, times: usize },
}

impl Fault {
    pub fn status(path_contains: &str, status: u16, times: usize) -> Fault {
        Fault::Status {
            method: None,
            path_contains: path_contains.into(),
            status,
            retry_after: None,
            times,
        }
    }
    /// 429 with `Retry-After: 0`.
    pub fn too_many(path_contains: &str, times: usize) -> Fault {
        Fault::Status {
            method: None,
            path_contains: path_contains.into(),
            status: 429,
            retry_after: Some(0),
            times,
        }
    }
    pub fn drop_blob_body(after_bytes: usize, times: usize) -> Fault {
        Fault::DropBody {
            path_contains: "/blobs/sha256:".into(),
            after_bytes,
            times,
        }
    }
    pub fn corrupt_blob(path_contains: &str, offset: usize) -> Fault {
        Fault::Corrupt {
            path_contains: path_contains.into(),
            offset,
            times: 1,
        }
    }
    /// 503 with `Retry-After: 0`.
    pub fn unavailable(path_contains: &str, times: usize) -> Fault {
        Fault::Status {
            method: None,
            path_contains: path_contains.into(),
            status: 503,
            retry_after: Some(0),
            times,
        }
    }
    /// Cut the first `times` matching GETs after `after_bytes` of body.
    pub fn drop_body(path_contains: &str, after_bytes: usize, times: usize) -> Fault {
        Fault::DropBody {
            path_contains: path_contains.into(),
            after_bytes,
            times,
        }
    }
    /// Flip the body byte at `offset` of the first `times` matching GETs.
    pub fn corrupt(path_contains: &str, offset: usize, times: usize) -> Fault {
        Fault::Corrupt {
            path_contains: path_contains.into(),
            offset,
            times,
        }
    }
    /// Hide `Range` from the upstream on every matching GET.
    pub fn strip_range(path_contains: &str) -> Fault {
        Fault::StripRange {
            path_contains: path_contains.into(),
            times: usize::MAX,
        }
    }
    fn times_mut(&mut self) -> &mut usize {
        match self {
            Fault::Status { times, .. }
            | Fault::DropBody { times, .. }
            | Fault::Corrupt { times, .. }
            | Fault::StripRange { times, .. } => times,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Record {
    pub method: String,
    /// Path and query as the client sent them.
    pub target: String,
    pub range: Option<String>,
    /// Status sent to the client (0 if the upstream could not be reached).
    pub status: u16,
    /// Which fault, if any, shaped this answer.
    pub fault: Option<String>,
}

impl Record {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub fn is_manifest_get(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD") && self.path().contains("/manifests/")
    }
    pub fn is_blob_get(&self) -> bool {
        self.method == "GET" && self.path().contains("/blobs/sha256:")
    }
}

struct Shared {
    upstream: String,
    faults: Mutex<Vec<Fault>>,
    log: Mutex<Vec<Record>>,
}

pub struct Proxy {
    pub host: String,
    pub port: u16,
    shared: Arc<Shared>,
    // Held for its Drop: stops and joins the accept loop.
    _accept: AcceptLoop,
}

enum Action {
    Forward,
    Status(u16, Option<u32>, String),
    Drop(usize, String),
    Corrupt(usize, String),
}

impl Proxy {
    pub fn start(upstream: &str, faults: Vec<Fault>) -> Proxy {
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            faults: Mutex::new(faults),
            log: Mutex::new(Vec::new()),
        });
        let accept = AcceptLoop::start("proxy", shared.clone(), serve);
        let port = accept.port;
        Proxy {
            host: format!("127.0.0.1:{port}"),
            port,
            shared,
            _accept: accept,
        }
    }

    pub fn set_faults(&self, faults: Vec<Fault>) {
        *self.shared.faults.lock().unwrap() = faults;
    }

    pub fn requests(&self) -> Vec<Record> {
        self.shared.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.shared.log.lock().unwrap().clear();
    }

    pub fn count(&self, f: impl Fn(&Record) -> bool) -> usize {
        self.requests().iter().filter(|r| f(r)).count()
    }

    pub fn manifest_requests(&self) -> usize {
        self.count(Record::is_manifest_get)
    }

    pub fn blob_requests(&self) -> usize {
        self.count(Record::is_blob_get)
    }

    pub fn range_requests(&self) -> usize {
        self.count(|r| r.is_blob_get() && r.range.is_some())
    }

    /// Answers shaped by a fault whose name contains `kind`: "status",
    /// "drop", "corrupt" or "strip range".
    pub fn faulted(&self, kind: &str) -> usize {
        self.count(|r| r.fault.as_deref().is_some_and(|f| f.contains(kind)))
    }

    /// All records as text, for assertion messages.
    pub fn dump(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                format!(
                    "{} {} range={:?} -> {} {}\n",
                    r.method,
                    r.target,
                    r.range,
                    r.status,
                    r.fault.clone().unwrap_or_default()
                )
            })
            .collect()
    }
}

/// The action for `req`, and whether to hide its Range header.
fn decide(req: &Request, shared: &Shared) -> (bool, Action) {
    let mut faults = shared.faults.lock().unwrap();
    let path = req.path().to_string();
    let mut strip = false;
    for f in faults.iter_mut() {
        if *f.times_mut() == 0 {
            continue;
        }
        let action = match f {
            Fault::StripRange { path_contains, .. }
                if !strip
                    && req.method == "GET"
                    && req.header("range").is_some()
                    && path.contains(path_contains.as_str()) =>
            {
                strip = true;
                *f.times_mut() -= 1;
                continue;
            }
            Fault::Status {
                method,
                path_contains,
                status,
                retry_after,
                ..
            } if path.contains(path_contains.as_str())
                && method.as_deref().map(|m| m == req.method).unwrap_or(true) =>
            {
                Action::Status(*status, *retry_after, format!("status {status}"))
            }
            Fault::DropBody {
                path_contains,
                after_bytes,
                ..
            } if req.method == "GET" && path.contains(path_contains.as_str()) => {
                Action::Drop(*after_bytes, format!("drop after {after_bytes}"))
            }
            Fault::Corrupt {
                path_contains,
                offset,
                ..
            } if req.method == "GET" && path.contains(path_contains.as_str()) => {
                Action::Corrupt(*offset, format!("corrupt byte {offset}"))
            }
            _ => continue,
        };
        *f.times_mut() -= 1;
        return (strip, action);
    }
    (strip, Action::Forward)
}

fn serve(conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
    let mut client_w = match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut client_r = BufReader::new(conn);
    loop {
        let req = match read_request(&mut client_r) {
            Ok(Some(r)) => r,
            _ => return,
        };
        let mut rec = Record {
            method: req.method.clone(),
            target: req.target.clone(),
            range: req.header("range").map(str::to_string),
            status: 0,
            fault: None,
        };
        let (strip, action) = decide(&req, shared);
        if strip {
            rec.fault = Some("strip range".into());
        }
        let keep = match action {
            Action::Status(status, retry_after, name) => {
                rec.status = status;
                rec.fault = Some(name);
                shared.log.lock().unwrap().push(rec);
                let mut h = vec![("Content-Type", "application/json".to_string())];
                if let Some(s) = retry_after {
                    h.push(("Retry-After", s.to_string()));
                }
                let body = format!(
                    r#"{{"errors":[{{"code":"UNAVAILABLE","message":"injected {status}","detail":null}}]}}"#
                );
                let _ = write_response(&mut client_w, status, &h, body.as_bytes());
                false
            }
            action => forward(&req, action, strip, &mut rec, &mut client_w, shared),
        };
        if !keep {
            let _ = client_w.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Forward one request; returns whether the client connection may be reused.
fn forward(
    req: &Request,
    action: Action,
    strip_range: bool,
    rec: &mut Record,
    client: &mut TcpStream,
    shared: &Shared,
) -> bool {
    let mut name_fault = |name: &str| {
        rec.fault = Some(match rec.fault.take() {
            Some(f) => format!("{f}, {name}"),
            None => name.to_string(),
        })
    };
    let (drop_after, corrupt_at) = match &action {
        Action::Drop(n, name) => {
            name_fault(name);
            (Some(*n), None)
        }
        Action::Corrupt(n, name) => {
            name_fault(name);
            (None, Some(*n))
        }
        _ => (None, None),
    };
    let up = match TcpStream::connect(&shared.upstream) {
        Ok(u) => u,
        Err(_) => {
            rec.status = 502;
            shared.log.lock().unwrap().push(rec.clone());
            let _ = write_response(client, 502, &[], b"upstream unreachable");
            return false;
        }
    };
    let _ = up.set_read_timeout(Some(Duration::from_secs(120)));
    let mut up_w = up.try_clone().unwrap();
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        let lk = k.to_ascii_lowercase();
        if lk == "connection"
            || lk == "transfer-encoding"
            || lk == "content-length"
            || lk == "keep-alive"
            || (strip_range && lk == "range")
        {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !req.body.is_empty() || matches!(req.method.as_str(), "PUT" | "POST" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    if up_w.write_all(head.as_bytes()).is_err() || up_w.write_all(&req.body).is_err() {
        rec.status = 502;
        shared.log.lock().unwrap().push(rec.clone());
        let _ = write_response(client, 502, &[], b"upstream write failed");
        return false;
    }
    let mut up_r = BufReader::new(up);
    let mut status_line = String::new();
    if up_r.read_line(&mut status_line).unwrap_or(0) == 0 {
        rec.status = 502;
        shared.log.lock().unwrap().push(rec.clone());
        let _ = write_response(client, 502, &[], b"upstream closed");
        return false;
    }
    let headers = match read_headers(&mut up_r) {
        Ok(h) => h,
        Err(_) => return false,
    };
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    rec.status = status;
    shared.log.lock().unwrap().push(rec.clone());
    let content_length: Option<u64> =
        super::http::header_value(&headers, "content-length").and_then(|v| v.parse().ok());
    let no_body =
        req.method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    // With a known length the client connection can stay open; otherwise
    // the body ends at EOF and so must the client connection.
    let reusable = no_body || content_length.is_some();
    let mut out = status_line.clone();
    for (k, v) in &headers {
        if k.eq_ignore_ascii_case("connection") {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !reusable {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    if client.write_all(out.as_bytes()).is_err() {
        return false;
    }
    if no_body {
        return true;
    }
    let limit = content_length.unwrap_or(u64::MAX);
    let mut sent: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while sent < limit {
        let want = ((limit - sent).min(buf.len() as u64)) as usize;
        let n = match up_r.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &mut buf[..n];
        if let Some(off) = corrupt_at {
            let off = off as u64;
            if off >= sent && off < sent + n as u64 {
                chunk[(off - sent) as usize] ^= 0xff;
            }
        }
        if let Some(after) = drop_after {
            let after = after as u64;
            if sent + n as u64 >= after {
                let k = (after - sent) as usize;
                let _ = client.write_all(&chunk[..k]);
                let _ = client.flush();
                // Give the bytes a moment to leave before the cut.
                std::thread::sleep(Duration::from_millis(20));
                let _ = client.shutdown(Shutdown::Both);
                return false;
            }
        }
        chunk = &mut chunk[..];
        if client.write_all(chunk).is_err() {
            return false;
        }
        sent += n as u64;
    }
    let _ = client.flush();
    reusable && sent == limit
}
