//! A programmable HTTP/1.1 server on a loopback port: one handler answers
//! every request. For behaviour a real registry cannot be made to show
//! (redirects to a storage host, tag pagination, odd answers).

use crate::accept::AcceptLoop;
use crate::http::{read_request, write_response, Request, Response};
use std::io::BufReader;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    log: Mutex<Vec<Request>>,
}

pub struct Server {
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub port: u16,
    shared: Arc<Shared>,
    // Held for its Drop: stops and joins the accept loop.
    _accept: AcceptLoop,
}

impl Server {
    /// Serves each request on its own connection (`Connection: close`).
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            log: Mutex::new(Vec::new()),
        });
        let accept = AcceptLoop::start("test HTTP server", shared.clone(), serve);
        let port = accept.port;
        Server {
            host: format!("127.0.0.1:{port}"),
            port,
            shared,
            _accept: accept,
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut w) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(conn);
    let Ok(Some(req)) = read_request(&mut r) else {
        return;
    };
    shared.log.lock().unwrap().push(req.clone());
    let resp = (shared.handler)(&req);
    let headers: Vec<(&str, String)> = resp
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let _ = write_response(&mut w, resp.status, &headers, &resp.body);
}
