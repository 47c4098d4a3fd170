//! A small HTTP/1.1 client over `std::net::TcpStream`, the functions the HTTP tests serve,
//! and a tiny_http server that stops by itself.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use prost_types::Any;
use statefun_sync::testing::Request;
use statefun_sync::{RequestReplyHandler, StatefulFunctions};

/// How long the client waits for any one read: generous, so that a slow machine does not
/// fail a test; tests that are about time measure it themselves.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A response as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of the first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the server said it closes the connection.
    pub fn closes(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// One client connection, with a read buffer that keeps bytes of later responses.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT)?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// POSTs `body` to `path` as the runtime does, and reads the response.
    pub fn post(&mut self, path: &str, body: &[u8]) -> io::Result<HttpResponse> {
        self.send(&post(path, body))?;
        self.read_response()
    }

    /// Reads one response: its head, then a body framed by `Content-Length`, chunks, or
    /// the end of the stream.
    pub fn read_response(&mut self) -> io::Result<HttpResponse> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let parsed = response
                .parse(&self.buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if let httparse::Status::Complete(len) = parsed {
                let status = response.code.unwrap_or(0);
                let headers: Vec<(String, String)> = response
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                self.buf.drain(..len);
                let mut head = HttpResponse {
                    status,
                    headers,
                    body: Vec::new(),
                };
                if status == 100 {
                    continue;
                }
                head.body = self.read_body(&head)?;
                return Ok(head);
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the connection closed before a complete response head ({} bytes)",
                        self.buf.len()
                    ),
                ));
            }
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn read_body(&mut self, head: &HttpResponse) -> io::Result<Vec<u8>> {
        if let Some(length) = head.header("Content-Length") {
            let length: usize = length
                .trim()
                .parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            while self.buf.len() < length {
                if self.fill()? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            return Ok(self.buf.drain(..length).collect());
        }
        if head
            .header("Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            let mut body = Vec::new();
            loop {
                let line = self.line()?;
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if size == 0 {
                    while !self.line()?.is_empty() {}
                    return Ok(body);
                }
                while self.buf.len() < size + 2 {
                    if self.fill()? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
            }
        }
        while self.fill()? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Whether the server has closed the connection: a read returns the end of the stream
    /// (or a reset) within `wait`.
    pub fn is_closed_by_server(&mut self, wait: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(wait));
        let mut byte = [0; 1];
        let closed = match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        };
        let _ = self.stream.set_read_timeout(Some(CLIENT_TIMEOUT));
        closed
    }
}

/// Opens `count` keep-alive connections at once, each sending one request, and holds
/// them all open, as the runtime's connection pool does. Returns how many got their
/// reply within `deadline` of the burst's start, and how many of those then answered a
/// second request on the same connection.
pub fn burst(addr: SocketAddr, count: usize, deadline: Duration) -> (usize, usize) {
    let barrier = Arc::new(Barrier::new(count));
    let threads: Vec<_> = (0..count)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let request = echo_request(&format!("burst-{i}"), 1);
                    barrier.wait();
                    let started = Instant::now();
                    let mut client = Client::connect(addr).ok();
                    let in_time = client.as_mut().is_some_and(|client| {
                        // Only the first request is timed: wait no longer than the deadline.
                        let left = deadline.saturating_sub(started.elapsed());
                        client
                            .stream
                            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                            .is_ok()
                            && client
                                .post("/statefun", &request)
                                .is_ok_and(|r| r.status == 200)
                            && started.elapsed() <= deadline
                    });
                    // Every connection stays open until all have been answered or given up.
                    barrier.wait();
                    let again = in_time
                        && client.as_mut().is_some_and(|client| {
                            let _ = client.stream.set_read_timeout(Some(CLIENT_TIMEOUT));
                            client
                                .post("/statefun", &request)
                                .is_ok_and(|r| r.status == 200 && !r.closes())
                        });
                    barrier.wait();
                    (in_time, again)
                })
                .unwrap()
        })
        .collect();
    let results: Vec<(bool, bool)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    (
        results.iter().filter(|r| r.0).count(),
        results.iter().filter(|r| r.1).count(),
    )
}

/// A `POST` as the runtime sends it: `Content-Type: application/octet-stream` and
/// `Content-Length`.
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// `body` in chunked framing, in chunks of `size` bytes; with `extras`, an extension on
/// the first chunk and a trailer field.
pub fn chunked(body: &[u8], size: usize, extras: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, chunk) in body.chunks(size).enumerate() {
        let ext = if i == 0 && extras { ";name=value" } else { "" };
        bytes.extend_from_slice(format!("{:x}{ext}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(if extras {
        &b"0\r\nX-Trailer: yes\r\n\r\n"[..]
    } else {
        &b"0\r\n\r\n"[..]
    });
    bytes
}

/// A one-byte `Any` that the untyped test functions accept.
pub fn ping(n: u8) -> Any {
    Any {
        type_url: "type.googleapis.com/test.Ping".into(),
        value: vec![n],
    }
}

/// A request for `test/echo/<id>` carrying `ping(n)`; its reply differs per `n` and `id`.
pub fn echo_request(id: &str, n: u8) -> Vec<u8> {
    Request::to("test/echo", id).invoke(ping(n)).to_bytes()
}

/// The functions the HTTP tests serve:
/// - `test/echo` sends its message on to `test/sink/<its id>`;
/// - `test/stateful` declares the state `seen`;
/// - `test/typed` accepts only `google.protobuf.Duration`;
/// - `test/fail` returns an error, `test/panic` panics;
/// - `test/slow` sleeps for 300 ms, then echoes.
pub fn handler() -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/echo", |ctx, message| {
            let id = ctx.address().id().to_owned();
            Ok(ctx.send("test/sink", &id, message)?)
        })
        .unwrap();
    functions
        .bind("test/stateful", |ctx, message| {
            Ok(ctx.set_state("seen", message)?)
        })
        .unwrap()
        .state("seen");
    functions
        .bind_typed("test/typed", |_, _: prost_types::Duration| Ok(()))
        .unwrap();
    functions
        .bind("test/fail", |_, _| {
            Err(anyhow::anyhow!("the database is down"))
        })
        .unwrap();
    functions
        .bind("test/panic", |_, _| panic!("a bug in the function"))
        .unwrap();
    functions
        .bind("test/slow", |ctx, message| {
            thread::sleep(Duration::from_millis(300));
            Ok(ctx.send("test/sink", "slow", message)?)
        })
        .unwrap();
    RequestReplyHandler::new(functions)
}

/// A tiny_http server answering with `tiny_http_adapter::answer` on `threads` threads,
/// until dropped.
#[cfg(feature = "tiny-http")]
pub struct TinyServer {
    pub addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

#[cfg(feature = "tiny-http")]
impl TinyServer {
    pub fn start(handler: RequestReplyHandler, threads: usize) -> TinyServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().unwrap();
        let handler = Arc::new(handler);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let (server, handler, stop) =
                    (Arc::clone(&server), Arc::clone(&handler), Arc::clone(&stop));
                thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        if let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(50)) {
                            let _ = statefun_sync::tiny_http_adapter::answer(&handler, request);
                        }
                    }
                })
            })
            .collect();
        TinyServer {
            addr,
            stop,
            threads,
        }
    }
}

#[cfg(feature = "tiny-http")]
impl Drop for TinyServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Requests that each get an error from every HTTP front, for `handler()`: what the
/// request is, its bytes, the status, and a text the error body must contain.
pub fn error_cases() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    let json = b"POST /statefun HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 0\r\n\r\n"
        .to_vec();
    vec![
        (
            "not a ToFunction",
            post("/statefun", b"\xff\xff\xff"),
            400,
            "malformed request",
        ),
        (
            "a declared state missing",
            post(
                "/statefun",
                &Request::to("test/stateful", "1").invoke(ping(1)).to_bytes(),
            ),
            400,
            "`seen`",
        ),
        (
            "an argument of the wrong type",
            post(
                "/statefun",
                &Request::to("test/typed", "1").invoke(ping(1)).to_bytes(),
            ),
            400,
            "google.protobuf.Duration",
        ),
        (
            "an unknown function type",
            post(
                "/statefun",
                &Request::to("test/nobody", "1").invoke(ping(1)).to_bytes(),
            ),
            404,
            "`test/nobody`",
        ),
        (
            "an unknown path",
            post("/other", &echo_request("a", 1)),
            404,
            "`/other`",
        ),
        (
            "a GET",
            b"GET /statefun HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            405,
            "`GET`",
        ),
        ("a JSON content type", json, 415, "`application/json`"),
        (
            "a failing function",
            post(
                "/statefun",
                &Request::to("test/fail", "1").invoke(ping(1)).to_bytes(),
            ),
            500,
            "the database is down",
        ),
        (
            "a panicking function",
            post(
                "/statefun",
                &Request::to("test/panic", "1").invoke(ping(1)).to_bytes(),
            ),
            500,
            "a bug in the function",
        ),
    ]
}
