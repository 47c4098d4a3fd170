//! The one raw HTTP/1.1 test client, over `std::net::TcpStream` by default, or over any
//! other [`Transport`] (a Unix socket, TLS over either: see `support::tls`); the requests
//! the HTTP tests write; the functions they serve; and a tiny_http server that stops by
//! itself.
//!
//! The client is raw on purpose: a test writes exactly the bytes it means (half a
//! request, one byte at a time, a broken framing) through [`Client::send`] or straight
//! into the public [`Client::stream`], and reads replies through [`Client::read_response`]
//! (a well-formed response, or an error) or [`Client::read_outcome`] (a whole response,
//! a connection closed before one, or part of one: what a hostile-input test tells
//! apart).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use statefun_sync::testing::v2::Request;
use statefun_sync::{RequestReplyHandler, StatefulFunctions};

use super::ping;

/// How long the client waits for any one read or write: generous, so that a slow machine
/// does not fail a test; tests that are about time measure it themselves.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// The values of every header called `name` (any case), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
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

/// What came back for one request, as [`Client::read_outcome`] tells it.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// A whole response.
    Reply {
        status: u16,
        body: Vec<u8>,
        closes: bool,
    },
    /// The connection closed (or failed) before the first byte of a response.
    Closed,
    /// The connection closed (or failed) after part of a response: never acceptable.
    Partial(Vec<u8>),
}

/// What a [`Client`] runs over: a byte stream whose reads a timeout bounds.
pub trait Transport: Read + Write {
    /// As `TcpStream::set_read_timeout`.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

#[cfg(unix)]
impl Transport for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
}

/// One client connection, with a read buffer that keeps bytes of later responses; over
/// TCP unless made with [`Client::over`].
pub struct Client<S = TcpStream> {
    /// The socket, for raw control: partial or slow writes, `try_clone`, reading a few
    /// bytes by hand. Reads straight from it bypass the buffer, so make them before the
    /// first `read_*` call, or when every response read so far was read whole.
    pub stream: S,
    buf: Vec<u8>,
}

/// A client of a server a test started, on TCP (every one but the Unix socket's).
#[cfg(feature = "server")]
impl Client {
    /// Connects to `server` as [`Client::connect`] does; panics if it cannot, or if the
    /// server listens on a Unix socket.
    #[track_caller]
    pub fn to(server: &statefun_sync::http::Server) -> Client {
        let addr = server.local_addr().expect("the server listens on TCP");
        Client::connect(addr).unwrap_or_else(|err| panic!("cannot connect to {addr}: {err}"))
    }
}

impl Client {
    /// Connects, with [`CLIENT_TIMEOUT`] for reads and writes and Nagle's algorithm off
    /// (each `send` leaves at once).
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT)?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Client::over(stream))
    }
}

#[cfg(unix)]
impl Client<UnixStream> {
    /// Connects to the Unix socket at `path`, with [`CLIENT_TIMEOUT`] for reads and writes.
    pub fn connect_unix(path: &std::path::Path) -> io::Result<Client<UnixStream>> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        Ok(Client::over(stream))
    }
}

impl<S: Transport> Client<S> {
    /// A client over `stream`, connected and with its timeouts set.
    pub fn over(stream: S) -> Client<S> {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// POSTs `body` to `path` as the runtime does, and reads the response.
    pub fn post(&mut self, path: &str, body: &[u8]) -> io::Result<HttpResponse> {
        self.send(&post(path, body))?;
        self.read_response()
    }

    /// Reads one response (after any `100 Continue`): its head, then a body framed by
    /// `Content-Length`, chunks, or the end of the stream. Bytes after it stay buffered
    /// for the next call (pipelining).
    pub fn read_response(&mut self) -> io::Result<HttpResponse> {
        self.next_response().map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the connection closed before a complete response ({} bytes of it)",
                    self.buf.len()
                ),
            ),
            _ => e,
        })
    }

    /// Reads one response, strictly: a whole response framed by `Content-Length` and
    /// nothing after it, or [`Outcome::Closed`] if the connection ends (or a read fails)
    /// before its first byte, or [`Outcome::Partial`] with the bytes received if it ends
    /// inside one.
    ///
    /// # Panics
    ///
    /// If the bytes are not an HTTP/1.1 response, if it has no `Content-Length`, or if
    /// more bytes than the one response arrived.
    pub fn read_outcome(&mut self) -> Outcome {
        match self.next_response() {
            Ok(response) => {
                assert!(
                    response.header("Content-Length").is_some(),
                    "no Content-Length in {response:?}"
                );
                assert!(self.buf.is_empty(), "bytes beyond one response");
                Outcome::Reply {
                    closes: response.closes(),
                    status: response.status,
                    body: response.body,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                panic!(
                    "not an HTTP response: {e}: {:?}",
                    String::from_utf8_lossy(&self.buf)
                )
            }
            Err(_) if self.buf.is_empty() => Outcome::Closed,
            Err(_) => Outcome::Partial(std::mem::take(&mut self.buf)),
        }
    }

    /// The next final response. On an error, the buffer holds every byte received of the
    /// response it was reading (an interim `100 Continue` before it is dropped).
    fn next_response(&mut self) -> io::Result<HttpResponse> {
        let mut at_eof = false;
        loop {
            if let Some((response, used)) = parse(&self.buf, at_eof)? {
                self.buf.drain(..used);
                if response.status == 100 {
                    continue;
                }
                return Ok(response);
            }
            if at_eof {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            at_eof = self.fill()? == 0;
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
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

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// The response at the start of `buf` and its length in bytes, or `None` while it is
/// incomplete. `at_eof`: the stream has ended, which ends a body framed by neither
/// `Content-Length` nor chunks.
fn parse(buf: &[u8], at_eof: bool) -> io::Result<Option<(HttpResponse, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = head.parse(buf).map_err(invalid)? else {
        return Ok(None);
    };
    let mut response = HttpResponse {
        status: head.code.unwrap_or(0),
        headers: head
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    };
    if response.status / 100 == 1 {
        return Ok(Some((response, head_len)));
    }
    let rest = &buf[head_len..];
    if let Some(length) = response.header("Content-Length") {
        let length: usize = length.trim().parse().map_err(invalid)?;
        if rest.len() < length {
            return Ok(None);
        }
        response.body = rest[..length].to_vec();
        return Ok(Some((response, head_len + length)));
    }
    let chunked = response
        .header("Transfer-Encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if !chunked {
        if !at_eof {
            return Ok(None);
        }
        response.body = rest.to_vec();
        return Ok(Some((response, buf.len())));
    }
    let mut at = 0;
    loop {
        let httparse::Status::Complete((size_len, size)) =
            httparse::parse_chunk_size(&rest[at..]).map_err(|_| invalid("a bad chunk size"))?
        else {
            return Ok(None);
        };
        at += size_len;
        if size == 0 {
            // The trailer section, up to its empty line.
            let mut trailers = [httparse::EMPTY_HEADER; 16];
            return match httparse::parse_headers(&rest[at..], &mut trailers).map_err(invalid)? {
                httparse::Status::Complete((len, _)) => Ok(Some((response, head_len + at + len))),
                httparse::Status::Partial => Ok(None),
            };
        }
        let size = usize::try_from(size).map_err(invalid)?;
        let Some(chunk) = rest.get(at..at + size + 2) else {
            return Ok(None);
        };
        if !chunk.ends_with(b"\r\n") {
            return Err(invalid("a chunk without its CRLF"));
        }
        response.body.extend_from_slice(&chunk[..size]);
        at += size + 2;
    }
}

/// Opens `count` keep-alive connections at once, each sending one request, and holds
/// them all open, as the runtime's connection pool does. Returns how many got their
/// reply within `deadline` of the burst's start, and how many of those then answered a
/// second request on the same connection.
///
/// It holds `count` client sockets, and the server as many: call
/// [`raise_fd_limit`](super::raise_fd_limit) first.
pub fn burst(addr: SocketAddr, count: usize, deadline: Duration) -> (usize, usize) {
    burst_with(count, deadline, move || Client::connect(addr))
}

/// [`burst`] over the connections `connect` opens (a TLS handshake, a Unix socket): the
/// time to connect counts in the deadline.
pub fn burst_with<S, F>(count: usize, deadline: Duration, connect: F) -> (usize, usize)
where
    S: Transport,
    F: Fn() -> io::Result<Client<S>> + Clone + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(count));
    let threads: Vec<_> = (0..count)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let connect = connect.clone();
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let request = echo_request(&format!("burst-{i}"), 1);
                    barrier.wait();
                    let started = Instant::now();
                    let mut client = connect().ok();
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

// ---------------------------------------------------------------------------------------
// Requests.
// ---------------------------------------------------------------------------------------

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

/// Checks that `path` on the server at `addr` refuses a body over its limit of `limit`
/// bytes with a 413 and closes the connection, announced by `Content-Length` and sent
/// chunked (with chunk extensions and a trailer when `extras`).
pub fn assert_body_over_limit_is_413(
    addr: std::net::SocketAddr,
    path: &str,
    limit: usize,
    extras: bool,
) {
    assert_body_over_limit_is_413_with(|| Client::connect(addr), path, limit, extras);
}

/// [`assert_body_over_limit_is_413`] over the connections `connect` opens.
pub fn assert_body_over_limit_is_413_with<S: Transport>(
    connect: impl Fn() -> io::Result<Client<S>>,
    path: &str,
    limit: usize,
    extras: bool,
) {
    let big = vec![7u8; 5 * limit];

    let mut by_length = connect().unwrap();
    let response = by_length.post(path, &big).unwrap();
    assert_eq!(response.status, 413, "{}", response.text());
    assert!(
        response
            .text()
            .contains(&format!("over the limit of {limit} bytes")),
        "{}",
        response.text()
    );
    assert!(response.closes());

    let mut by_chunks = connect().unwrap();
    by_chunks
        .send(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    by_chunks.send(&chunked(&big, 600, extras)).unwrap();
    let response = by_chunks.read_response().unwrap();
    assert_eq!(response.status, 413, "{}", response.text());
    assert!(response.closes());
}

/// Checks that `response` is the 200 `handler()` gives `request`: the handler's reply
/// body, exactly, as `application/octet-stream`.
pub fn assert_reply(response: &HttpResponse, request: &[u8]) {
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(response.body, handler().handle(request).unwrap());
}

/// Sends every request of [`error_cases`] on `client`'s one connection, as
/// `tests/http_server.rs` does over TCP: each gets its status and a bounded text body
/// naming the problem (a 405 its `Allow`), and the connection then serves a good request.
pub fn assert_every_error_case<S: Transport>(client: &mut Client<S>) {
    for (what, request, status, names) in error_cases() {
        client.send(&request).unwrap();
        let response = client.read_response().unwrap();

        assert_eq!(response.status, status, "{what}: {}", response.text());
        assert_eq!(
            response.header("Content-Type"),
            Some("text/plain; charset=utf-8"),
            "{what}"
        );
        assert!(response.body.len() <= 1024, "{what}");
        assert!(
            response.text().contains(names),
            "{what}: {}",
            response.text()
        );
        if status == 405 {
            assert_eq!(response.header("Allow"), Some("POST"), "{what}");
        }
        assert!(!response.closes(), "{what}");
        // The same connection still serves.
        let good = echo_request("after", 2);
        assert_reply(&client.post("/statefun", &good).unwrap(), &good);
    }
}

/// Sends a batch to `test/slow` (a function that sleeps) on `busy`, shuts `server` down
/// while it runs, and checks what a graceful stop promises, over any transport: the
/// request in flight is answered whole, with `Connection: close`, and the shutdown
/// finishes in time.
#[cfg(feature = "server")]
pub fn assert_shutdown_answers_the_request_in_flight<S: Transport>(
    server: &Arc<statefun_sync::http::Server>,
    busy: &mut Client<S>,
) {
    let slow = Request::to("test/slow", "1").invoke(ping(9)).to_bytes();
    busy.send(&post("/statefun", &slow)).unwrap();
    thread::sleep(Duration::from_millis(100)); // the function is now sleeping
    let stopper = {
        let server = Arc::clone(server);
        thread::spawn(move || server.shutdown())
    };

    let response = busy.read_response().unwrap();
    assert_reply(&response, &slow);
    assert!(response.closes());
    assert!(stopper.join().unwrap(), "every connection finished in time");
}

/// The value of the sample `series` (name and labels, as rendered) in the Prometheus
/// text `text`.
///
/// # Panics
///
/// If `text` has no such sample.
pub fn metric_value(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|line| {
            line.strip_prefix(series)
                .is_some_and(|v| v.starts_with(' '))
        })
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"));
    line[series.len() + 1..].trim().parse().unwrap()
}

/// Scrapes `GET path` on the server at `addr` until the sample `series` is `expected`,
/// for up to [`CLIENT_TIMEOUT`]: a test waits so for the server to reach a state it cannot
/// see otherwise (requests in flight, waiting for a worker).
///
/// # Panics
///
/// If the sample never has that value by then.
pub fn wait_for_metric(addr: SocketAddr, path: &str, series: &str, expected: f64) {
    let started = Instant::now();
    let mut client = Client::connect(addr).unwrap();
    let scrape = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    loop {
        client.send(scrape.as_bytes()).unwrap();
        let text = client.read_response().unwrap().text();
        let value = metric_value(&text, series);
        if value == expected {
            return;
        }
        assert!(
            started.elapsed() < CLIENT_TIMEOUT,
            "{series} is {value}, not {expected}, after {CLIENT_TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
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

// ---------------------------------------------------------------------------------------
// What the HTTP tests serve.
// ---------------------------------------------------------------------------------------

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
    RequestReplyHandler::v2(functions())
}

/// [`handler`]'s functions, and `test/gate`, which runs until the test opens the
/// [`Gate`]: a batch that holds a worker (and its body's memory) for as long as a test
/// needs.
pub fn gated_handler() -> (RequestReplyHandler, Gate) {
    let (entered, has_entered) = mpsc::channel();
    let (open, wait_for_open) = mpsc::channel::<()>();
    let wait_for_open = Mutex::new(wait_for_open);
    let mut functions = functions();
    functions
        .bind("test/gate", move |_, _| {
            entered.send(()).unwrap();
            // Ends when the gate opens, or when the test is over and drops it.
            let _ = wait_for_open.lock().unwrap().recv();
            Ok(())
        })
        .unwrap();
    let gate = Gate {
        has_entered,
        open: Mutex::new(Some(open)),
    };
    (RequestReplyHandler::v2(functions), gate)
}

/// A batch for `test/gate`, of the same length as `echo_request` with a one-byte id.
pub fn gate_request() -> Vec<u8> {
    Request::to("test/gate", "1").invoke(ping(1)).to_bytes()
}

/// Holds `test/gate`'s batches (see [`gated_handler`]) until opened.
pub struct Gate {
    has_entered: Receiver<()>,
    open: Mutex<Option<Sender<()>>>,
}

impl Gate {
    /// Waits (up to [`CLIENT_TIMEOUT`]) until a batch runs `test/gate`.
    ///
    /// # Panics
    ///
    /// If none does by then.
    pub fn wait_entered(&self) {
        self.has_entered
            .recv_timeout(CLIENT_TIMEOUT)
            .expect("a batch for test/gate runs");
    }

    /// Lets every batch in `test/gate`, and every later one, finish.
    pub fn open(&self) {
        self.open.lock().unwrap().take();
    }
}

/// [`handler`]'s functions, to bind more beside them.
pub fn functions() -> StatefulFunctions {
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
    functions
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

/// A tiny_http server answering with the crate's tiny_http adapter on `threads` threads,
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
                            let _ = statefun_sync::http::tiny_http::answer(&handler, request);
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
