//! A fault proxy: a TCP proxy in front of a real S3 server that breaks chosen requests the way a
//! store or a network on a bad day does, driven by the test. It is not a stand-in for the store:
//! every request it lets through (and every one it breaks after the fact) is answered by the real
//! server behind it.
//!
//! It reads each HTTP/1.1 request (request line, headers, a `Content-Length` or chunked body),
//! sends it to the server on a fresh connection with `Connection: close`, reads the whole answer,
//! then writes it back, or breaks it, and closes the client's connection (so one connection is
//! one request, which keeps the bookkeeping exact). Faults:
//!
//! | [`Fault`] | what the client sees |
//! |---|---|
//! | `Refuse` | the connection is accepted and reset at once, before any request is read |
//! | `StallBeforeResponse` | the request is read, then nothing, ever (until the proxy is dropped) |
//! | `StallMidBody(n)` | headers and `n` body bytes, then nothing |
//! | `ResetMidBody(n)` | headers and `n` body bytes, then a TCP reset |
//! | `CloseEarly(n)` | headers (the full `Content-Length`) and `n` body bytes, then a clean close |
//! | `SlowDown` | `503 SlowDown` with an S3 error document; the server never sees the request |
//! | `FlipByte(n)` | the answer with body byte `n` inverted |
//! | `Bandwidth(bps)` | the answer, written at about `bps` bytes per second |
//!
//! A [`Rule`] picks the requests a fault applies to: by method and a substring of the request
//! target (the key), and the Nth matching request, the first N, or all.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a request is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Refuse,
    StallBeforeResponse,
    StallMidBody(usize),
    ResetMidBody(usize),
    CloseEarly(usize),
    SlowDown,
    FlipByte(usize),
    Bandwidth(usize),
}

/// Which requests a fault applies to.
#[derive(Clone, Debug)]
pub struct Rule {
    fault: Fault,
    method: Option<String>,
    target: Option<String>,
    not_target: Option<String>,
    which: Which,
    matched: usize,
}

#[derive(Clone, Copy, Debug)]
enum Which {
    All,
    Nth(usize),
    FirstN(usize),
    From(usize),
}

impl Rule {
    /// `fault` on every request (narrow it with the methods below).
    pub fn new(fault: Fault) -> Rule {
        Rule {
            fault,
            method: None,
            target: None,
            not_target: None,
            which: Which::All,
            matched: 0,
        }
    }

    /// Only requests with this method (`GET`, `PUT`, `POST`, `DELETE`, `HEAD`).
    pub fn method(mut self, method: &str) -> Rule {
        self.method = Some(method.to_string());
        self
    }

    /// Only requests whose target (path and query) contains `part`: a key, a `list-type=2`.
    pub fn target(mut self, part: &str) -> Rule {
        self.target = Some(part.to_string());
        self
    }

    /// Only requests whose target does not contain `part` (`list-type`: not a listing).
    pub fn not_target(mut self, part: &str) -> Rule {
        self.not_target = Some(part.to_string());
        self
    }

    /// Only the `n`th matching request (1 is the first).
    pub fn nth(mut self, n: usize) -> Rule {
        self.which = Which::Nth(n);
        self
    }

    /// Every matching request from the `n`th on: a fault that starts in the middle of a run and
    /// lasts.
    pub fn from(mut self, n: usize) -> Rule {
        self.which = Which::From(n);
        self
    }

    /// Only the first `n` matching requests.
    pub fn first(mut self, n: usize) -> Rule {
        self.which = Which::FirstN(n);
        self
    }

    fn matches(&mut self, method: &str, target: &str) -> bool {
        if self.method.as_deref().is_some_and(|m| m != method)
            || self.target.as_deref().is_some_and(|t| !target.contains(t))
            || self
                .not_target
                .as_deref()
                .is_some_and(|t| target.contains(t))
        {
            return false;
        }
        self.matched += 1;
        match self.which {
            Which::All => true,
            Which::Nth(n) => self.matched == n,
            Which::FirstN(n) => self.matched <= n,
            Which::From(n) => self.matched >= n,
        }
    }
}

/// One request the proxy saw: method, target, and the fault it met (`None`: passed through).
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub fault: Option<Fault>,
    pub status: Option<u16>,
}

struct Shared {
    upstream: SocketAddr,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
}

/// A running proxy; stopped (its held connections closed) on drop.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = Arc::clone(&s);
                std::thread::spawn(move || serve(&s, conn));
            }
        });
        FaultProxy { port, shared }
    }

    /// `http://127.0.0.1:PORT`: give it to openova as the endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Adds a rule; the first rule that matches a request decides its fault.
    pub fn add(&self, rule: Rule) -> &FaultProxy {
        self.shared.rules.lock().unwrap().push(rule);
        self
    }

    /// Removes every rule: requests pass through again.
    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How many requests met `fault`.
    pub fn count(&self, fault: Fault) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.fault == Some(fault))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(s: &Shared, client: TcpStream) {
    if s.stop.load(Ordering::Acquire) {
        return;
    }
    // A Refuse rule applies to connections: decided before anything is read.
    {
        let mut rules = s.rules.lock().unwrap();
        let refused = rules
            .iter_mut()
            .filter(|r| r.fault == Fault::Refuse)
            .any(|r| r.matches("", ""));
        if refused {
            drop(rules);
            s.seen.lock().unwrap().push(Seen {
                method: String::new(),
                target: String::new(),
                fault: Some(Fault::Refuse),
                status: None,
            });
            reset(client);
            return;
        }
    }
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(client.try_clone().expect("clone the client socket"));
    let Some((method, target, head, body)) = read_request(&mut reader) else {
        return;
    };
    let fault = s
        .rules
        .lock()
        .unwrap()
        .iter_mut()
        .filter(|r| r.fault != Fault::Refuse)
        .find_map(|r| r.matches(&method, &target).then_some(r.fault));
    let mut seen = Seen {
        method: method.clone(),
        target,
        fault,
        status: None,
    };
    let mut client = client;
    match fault {
        Some(Fault::SlowDown) => {
            let doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                <Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>";
            let body = if method == "HEAD" { "" } else { doc };
            let answer = format!(
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            seen.status = Some(503);
            s.seen.lock().unwrap().push(seen);
            let _ = client.write_all(answer.as_bytes());
            let _ = client.shutdown(Shutdown::Write);
            return;
        }
        Some(Fault::StallBeforeResponse) => {
            s.seen.lock().unwrap().push(seen);
            hold(s, client);
            return;
        }
        _ => {}
    }
    let Some(answer) = forward(s.upstream, &head, &body) else {
        s.seen.lock().unwrap().push(seen);
        reset(client);
        return;
    };
    let split = find(&answer, b"\r\n\r\n").map_or(answer.len(), |i| i + 4);
    let (resp_head, resp_body) = answer.split_at(split);
    seen.status = std::str::from_utf8(resp_head)
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .and_then(|c| c.parse().ok());
    s.seen.lock().unwrap().push(seen);
    let _ = client.write_all(resp_head);
    match fault {
        Some(Fault::StallMidBody(n)) => {
            let _ = client.write_all(&resp_body[..n.min(resp_body.len())]);
            let _ = client.flush();
            hold(s, client);
        }
        Some(Fault::ResetMidBody(n)) => {
            let _ = client.write_all(&resp_body[..n.min(resp_body.len())]);
            let _ = client.flush();
            std::thread::sleep(Duration::from_millis(50));
            reset(client);
        }
        Some(Fault::CloseEarly(n)) => {
            let _ = client.write_all(&resp_body[..n.min(resp_body.len())]);
            let _ = client.shutdown(Shutdown::Both);
        }
        Some(Fault::FlipByte(n)) => {
            let mut body = resp_body.to_vec();
            if let Some(b) = body.get_mut(n) {
                *b = !*b;
            }
            let _ = client.write_all(&body);
            let _ = client.shutdown(Shutdown::Write);
        }
        Some(Fault::Bandwidth(bps)) => {
            let slice = (bps / 10).max(1);
            for part in resp_body.chunks(slice) {
                if client.write_all(part).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = client.shutdown(Shutdown::Write);
        }
        _ => {
            let _ = client.write_all(resp_body);
            let _ = client.shutdown(Shutdown::Write);
        }
    }
}

/// Keeps the connection open and silent until the proxy is dropped.
fn hold(s: &Shared, client: TcpStream) {
    while !s.stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(client);
}

/// Closes with a TCP reset (SO_LINGER 0), as a dropped connection looks to the client.
fn reset(client: TcpStream) {
    let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
    drop(client);
}

/// The request line's method and target, the raw head (with `Connection: close` forced), and
/// the body.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>, Vec<u8>)> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut head = line.clone().into_bytes();
    let (mut length, mut chunked) = (0usize, false);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        if h == "\r\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        head.extend_from_slice(h.as_bytes());
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut body = Vec::new();
    if chunked {
        // Kept in its chunked framing: the server reads it as sent.
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            body.extend_from_slice(size.as_bytes());
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
            if n == 0 {
                break;
            }
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body).ok()?;
    }
    Some((method, target, head, body))
}

/// The server's whole answer (it closes the connection after it).
fn forward(upstream: SocketAddr, head: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let mut server = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)).ok()?;
    server
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    server.write_all(head).ok()?;
    server.write_all(body).ok()?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).ok()?;
    (!answer.is_empty()).then_some(answer)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
