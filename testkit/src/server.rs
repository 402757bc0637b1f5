//! A programmable HTTP/1.1 server on a loopback port: one handler answers
//! every request. For behaviour a real registry cannot be made to show
//! (redirects to a storage host, tag pagination, odd answers).

use crate::http::{read_request, write_response, Request, Response};
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    log: Mutex<Vec<Request>>,
    stop: AtomicBool,
}

pub struct Server {
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves each request on its own connection (`Connection: close`).
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test HTTP server");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s2 = shared.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let s3 = s2.clone();
                    std::thread::spawn(move || serve(conn, &s3));
                }
            }
        });
        Server {
            host: format!("127.0.0.1:{port}"),
            port,
            shared,
            thread: Some(thread),
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so the thread ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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
