//! The crate's own blocking HTTP/1.1 server: one thread per connection, a cap on
//! connections, a cap on concurrent handler calls.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{error, info, warn};

use super::adapter::{body_error, reason_phrase, Endpoint, RequestHead, Response};
use crate::handler::RequestReplyHandler;

/// A request head (request line and headers) longer than this is refused with 431.
const MAX_HEAD: usize = 16 * 1024;
/// The most headers a request may have (431 beyond).
const MAX_HEADERS: usize = 64;
/// A chunk-size line longer than this is bad framing (400).
const MAX_CHUNK_LINE: usize = 1024;
/// How long a connection that is closed after an error keeps reading what the client
/// still sends, so the kernel does not answer it with a reset that destroys the reply.
const LINGER: Duration = Duration::from_secs(2);
/// How much it reads meanwhile, at most.
const MAX_LINGER_BYTES: usize = 1024 * 1024;

/// Serves `handler` at `http://<addr>/statefun` with the default settings of
/// [`ServerBuilder`], on the calling thread, forever.
///
/// ```no_run
/// use statefun_sync::{serve, RequestReplyHandler, StatefulFunctions};
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind("example/greeter", |ctx, message| Ok(ctx.reply(message)?))?;
/// serve(RequestReplyHandler::new(functions), "0.0.0.0:8000")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Use [`Server::builder`] to choose the path, the limits and the timeouts, or to shut
/// the server down.
///
/// # Errors
///
/// The I/O error if `addr` does not resolve or cannot be bound (in use, not an address
/// of this host, a privileged port). Once it listens, it does not return: errors of
/// single connections are logged, never fatal.
pub fn serve(
    handler: impl Into<Arc<RequestReplyHandler>>,
    addr: impl ToSocketAddrs,
) -> io::Result<()> {
    let server = Server::builder().bind(addr).start(handler)?;
    info!(
        "serving Stateful Functions at http://{}{}",
        server.local_addr(),
        server.path()
    );
    server.join();
    Ok(())
}

/// A running server, from [`ServerBuilder::start`]. Dropping it shuts it down (see
/// [`shutdown`](Server::shutdown)); [`join`](Server::join) waits for that instead.
///
/// # How it serves
///
/// The accept loop runs on its own thread and gives each connection a thread of its
/// own, up to [`max_connections`](ServerBuilder::max_connections) (default 2,048, twice
/// the runtime's connection pool per task manager); beyond it, a new connection
/// gets `503 Service Unavailable` with `Connection: close`, which the runtime retries.
/// A semaphore lets at most [`workers`](ServerBuilder::workers) handler calls run at
/// once; the other connection threads wait in `read()` (idle keep-alive connections)
/// or for a permit, costing a parked thread with a small stack each.
///
/// This is the design because the runtime opens its pooled connections in bursts and
/// then keeps them idle: a pool of a few threads that each own a connection (tiny_http
/// 0.12) leaves the burst's other connections unanswered, and a poller needs either
/// `unsafe` system calls or a dependency. Measured on a 2-core machine
/// (`tests/http_measure.rs`), a fresh server answered every connection of bursts of 16
/// and of 256 new keep-alive connections (one request each, all held open) within 3 s,
/// in each of 5 runs, where tiny_http 0.12 answered as few as 4 of 16; with 1,024 idle
/// keep-alive connections open, new clients were answered within milliseconds, and the
/// whole test process (server and client) used about 32 MB of resident memory: a thread
/// is created in tens of microseconds, and an idle one costs a few KiB. A request on a
/// keep-alive connection took about 20 µs there, twice as fast as through tiny_http.
///
/// Functions run on the connection threads, whose stack is
/// [`stack_size`](ServerBuilder::stack_size) (default 512 KiB): raise it for functions
/// with deep recursion or large values on the stack.
///
/// HTTP/1.1 and HTTP/1.0 requests are served, with keep-alive (HTTP/1.0 only when the
/// request asks for it), `Connection: close`, sequential pipelined requests,
/// `Content-Length` and chunked bodies (chunk extensions and trailers are read and
/// ignored), and `Expect: 100-continue`. A request with both `Content-Length` and
/// `Transfer-Encoding`, a transfer coding other than `chunked` (501), or broken chunked
/// framing is refused and its connection closed, so no request can be smuggled past
/// the framing.
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

/// Configures and starts a [`Server`]; from [`Server::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use statefun_sync::http::Server;
/// use statefun_sync::{RequestReplyHandler, StatefulFunctions};
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind("example/greeter", |ctx, message| Ok(ctx.reply(message)?))?;
/// let server = Server::builder()
///     .bind("127.0.0.1:8000")
///     .path("/statefun")
///     .workers(8)
///     .max_connections(1024)
///     .max_body_size(32 * 1024 * 1024)
///     .read_timeout(Duration::from_secs(30))
///     .start(RequestReplyHandler::new(functions))?;
/// println!("listening on {}", server.local_addr());
/// server.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ServerBuilder {
    addrs: io::Result<Vec<SocketAddr>>,
    endpoint: Endpoint,
    workers: usize,
    max_connections: usize,
    max_body_memory: usize,
    read_timeout: Duration,
    idle_timeout: Duration,
    shutdown_timeout: Duration,
    stack_size: usize,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            addrs: Ok(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 8000))]),
            endpoint: Endpoint::new(),
            workers: thread::available_parallelism().map_or(4, NonZeroUsize::get) * 2,
            max_connections: 2048,
            max_body_memory: 256 * 1024 * 1024,
            read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(10),
            stack_size: 512 * 1024,
        }
    }
}

impl ServerBuilder {
    /// Listens on `addr` (default `127.0.0.1:8000`; `0.0.0.0:8000` for every interface,
    /// port 0 for any free port). The first address it resolves to that binds is used.
    /// A resolution error is returned by [`start`](Self::start).
    pub fn bind(mut self, addr: impl ToSocketAddrs) -> Self {
        self.addrs = addr.to_socket_addrs().map(Iterator::collect);
        self
    }

    /// Serves the functions at `path` (default `/statefun`); other paths get 404.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.with_path(path);
        self
    }

    /// The most handler calls that run at once (default: twice the available
    /// parallelism). Raise it for functions that wait on I/O. At least 1.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The most open connections (default 2,048); a connection beyond it is answered
    /// with 503 and closed. At least 1.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// The largest request body accepted (default 32 MiB); a larger one gets 413.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.endpoint = self.endpoint.with_max_body_size(bytes);
        self
    }

    /// How many bytes of request bodies all connections together may hold in memory
    /// (default 256 MiB). A request whose body would go over waits, before reading it,
    /// until earlier ones are answered; its `Content-Length` counts (a chunked body counts
    /// as [`max_body_size`](Self::max_body_size)). Without it, every connection could hold
    /// a body of the largest size at once: 2,048 times 32 MiB by default. One body of the
    /// largest size is always let through, whatever this is set to.
    pub fn max_body_memory(mut self, bytes: usize) -> Self {
        self.max_body_memory = bytes;
        self
    }

    /// How long a request may take to arrive, head and body, once its first byte has
    /// (default 30 s); a slower one gets 408 and its connection is closed. It also bounds
    /// the writing of a reply, as a whole. At least 1 ms.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a keep-alive connection may wait for its next request (default 60 s)
    /// before it is closed. The runtime's connection pool keeps idle connections longer,
    /// and that is safe: a request sent on a connection the server has just closed fails
    /// at once, and the runtime's HTTP client (OkHttp) and its retry loop send it again
    /// on a new connection. A new connection waits for its first request no longer than
    /// the [`read_timeout`](Self::read_timeout), so that sockets which never speak cannot
    /// hold every connection slot. At least 1 ms.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long [`Server::shutdown`] waits for requests in flight (default 10 s, the
    /// runtime's read timeout: it has given up on a request that takes longer).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The stack size of connection threads, on which functions run (default 512 KiB).
    /// Memory is committed as a stack grows, so a large value costs address space, not
    /// memory.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Binds and starts serving `handler` on a background thread.
    ///
    /// # Errors
    ///
    /// The I/O error if the address did not resolve or cannot be bound, or if the
    /// accept thread cannot be created.
    pub fn start(self, handler: impl Into<Arc<RequestReplyHandler>>) -> io::Result<Server> {
        let listener = TcpListener::bind(&self.addrs?[..])?;
        let local_addr = listener.local_addr()?;
        let body_memory = self.max_body_memory.max(self.endpoint.max_body_size());
        let shared = Arc::new(Shared {
            handler: handler.into(),
            endpoint: self.endpoint,
            read_timeout: self.read_timeout,
            idle_timeout: self.idle_timeout,
            shutdown_timeout: self.shutdown_timeout,
            stack_size: self.stack_size,
            max_connections: self.max_connections,
            stopping: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            permits: Semaphore::new(self.workers),
            body_memory: Semaphore::new(body_memory),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("statefun-accept".into())
                .spawn(move || accept_loop(&shared, listener))?
        };
        Ok(Server {
            shared,
            local_addr,
            acceptor: Mutex::new(Some(acceptor)),
        })
    }
}

impl Server {
    /// A builder with the defaults: `127.0.0.1:8000`, path `/statefun`, 2,048
    /// connections, 32 MiB bodies, 30 s read and 60 s idle timeouts.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The address the server listens on (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The path the functions are served at.
    pub fn path(&self) -> &str {
        self.shared.endpoint.path()
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        lock(&self.shared.state).connections.len()
    }

    /// Stops the server: stops accepting (new connections are refused once this
    /// returns), closes idle keep-alive connections, lets requests in flight finish and
    /// send their reply (with `Connection: close`), and waits for them up to
    /// [`shutdown_timeout`](ServerBuilder::shutdown_timeout).
    ///
    /// Returns whether every connection finished in time; connections still busy after
    /// the timeout are left to finish on their own. Calling it again returns at once.
    pub fn shutdown(&self) -> bool {
        let shared = &self.shared;
        let deadline = Instant::now() + shared.shutdown_timeout;
        {
            let mut state = lock(&shared.state);
            if state.finished {
                return state.connections.is_empty();
            }
            state.stopping = true;
            shared.stopping.store(true, Ordering::SeqCst);
            for tracked in state.connections.values().filter(|t| !t.busy) {
                // Wakes the thread blocked in read() with an end of stream.
                let _ = tracked.stream.shutdown(Shutdown::Both);
            }
        }
        // Wakes the accept loop, blocked in accept(), so it sees the flag.
        let _ = TcpStream::connect_timeout(&wake_address(self.local_addr), Duration::from_secs(1));
        let mut state = lock(&shared.state);
        while !(state.acceptor_done && state.connections.is_empty()) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let all_done = state.connections.is_empty();
        if !all_done {
            warn!(
                "shutdown: {} connections still busy after {:?}",
                state.connections.len(),
                shared.shutdown_timeout
            );
        }
        let acceptor_done = state.acceptor_done;
        state.finished = true;
        shared.changed.notify_all();
        drop(state);
        if acceptor_done {
            if let Some(acceptor) = lock(&self.acceptor).take() {
                let _ = acceptor.join();
            }
        }
        all_done
    }

    /// Blocks until the server has been shut down, from another thread (share the
    /// server in an `Arc`); forever if it never is.
    pub fn join(&self) {
        let mut state = lock(&self.shared.state);
        while !state.finished {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("path", &self.path())
            .field("connections", &self.connections())
            .finish()
    }
}

/// Where to connect to wake an accept() on `local`: the same port on loopback when
/// bound to every interface.
fn wake_address(local: SocketAddr) -> SocketAddr {
    match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, local.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, local.port()))
        }
        _ => local,
    }
}

struct Shared {
    handler: Arc<RequestReplyHandler>,
    endpoint: Endpoint,
    read_timeout: Duration,
    idle_timeout: Duration,
    shutdown_timeout: Duration,
    stack_size: usize,
    max_connections: usize,
    /// Mirrors `State::stopping`, read without the lock when writing a reply.
    stopping: AtomicBool,
    state: Mutex<State>,
    /// Signalled when a connection closes, the accept loop stops, or shutdown finishes.
    changed: Condvar,
    permits: Semaphore,
    /// Bytes of request bodies held at once, across connections.
    body_memory: Semaphore,
}

#[derive(Default)]
struct State {
    stopping: bool,
    acceptor_done: bool,
    finished: bool,
    next_id: u64,
    connections: HashMap<u64, Tracked>,
}

/// An open connection, as the shutdown sees it.
struct Tracked {
    /// A handle to the same socket, to close it from the shutdown.
    stream: TcpStream,
    /// Between the first byte of a request and the end of its reply.
    busy: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover anyway rather than cascade.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Marks a connection busy or idle; `false` when the server is stopping, and the
    /// connection should close.
    fn set_busy(&self, id: u64, busy: bool) -> bool {
        let mut state = lock(&self.state);
        if let Some(tracked) = state.connections.get_mut(&id) {
            tracked.busy = busy;
        }
        !state.stopping
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// Counts units of something bounded (handler calls running, bytes of bodies held) and
/// makes callers wait beyond the capacity.
struct Semaphore {
    capacity: usize,
    available: Mutex<usize>,
    freed: Condvar,
}

struct Permit<'a> {
    semaphore: &'a Semaphore,
    units: usize,
}

impl Semaphore {
    fn new(capacity: usize) -> Self {
        Semaphore {
            capacity,
            available: Mutex::new(capacity),
            freed: Condvar::new(),
        }
    }

    /// Waits until `units` are free and takes them; more than the capacity counts as
    /// all of it, so no request waits forever.
    fn acquire(&self, units: usize) -> Permit<'_> {
        let units = units.min(self.capacity);
        let mut available = lock(&self.available);
        while *available < units {
            available = self
                .freed
                .wait(available)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *available -= units;
        Permit {
            semaphore: self,
            units,
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.units == 0 {
            return;
        }
        *lock(&self.semaphore.available) += self.units;
        // Waiters may want different amounts: each checks whether its own fits now.
        self.semaphore.freed.notify_all();
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if shared.is_stopping() {
                    break;
                }
                admit(shared, stream);
            }
            Err(_) if shared.is_stopping() => break,
            Err(err) => match err.kind() {
                io::ErrorKind::Interrupted
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset => {}
                _ => {
                    // Typically out of file descriptors: back off instead of spinning.
                    error!("accepting a connection failed: {err}; retrying in 100 ms");
                    thread::sleep(Duration::from_millis(100));
                }
            },
        }
    }
    drop(listener);
    lock(&shared.state).acceptor_done = true;
    shared.changed.notify_all();
}

/// Gives a new connection its thread, or refuses it with 503.
fn admit(shared: &Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let handle = match stream.try_clone() {
        Ok(handle) => handle,
        Err(err) => {
            error!("cannot track a new connection: {err}");
            return refuse(stream, "the server cannot take a new connection now");
        }
    };
    let id = {
        let mut state = lock(&shared.state);
        if state.stopping {
            // Shutdown has closed the others: this one is not served either.
            return;
        }
        if state.connections.len() >= shared.max_connections {
            drop(state);
            warn!(
                "refused a connection: {} connections are open, the limit",
                shared.max_connections
            );
            return refuse(stream, "too many connections are open");
        }
        let id = state.next_id;
        state.next_id += 1;
        state.connections.insert(
            id,
            Tracked {
                stream: handle,
                busy: false,
            },
        );
        id
    };
    let for_thread = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("statefun-http".into())
        .stack_size(shared.stack_size)
        .spawn(move || {
            let _registered = Registered(&for_thread, id);
            serve_connection(&for_thread, id, stream);
        });
    if let Err(err) = spawned {
        // The closure, and with it the connection, is dropped: the client sees it close.
        error!("cannot start a thread for a new connection: {err}");
        lock(&shared.state).connections.remove(&id);
        shared.changed.notify_all();
    }
}

/// Removes a connection from the tracked ones when its thread ends, however it ends.
struct Registered<'a>(&'a Shared, u64);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).connections.remove(&self.1);
        self.0.changed.notify_all();
    }
}

/// Answers a connection the server will not serve with 503 and closes it, without
/// waiting for its request.
fn refuse(mut stream: TcpStream, message: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(&encode(&Response::error(503, message), Connection::Close));
    let _ = stream.shutdown(Shutdown::Write);
}

/// What the reply says about the connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Connection {
    /// HTTP/1.1 default: nothing to say.
    KeepAlive,
    /// HTTP/1.0 that asked for keep-alive: `Connection: keep-alive`.
    KeepAlive10,
    /// `Connection: close`.
    Close,
}

/// The whole reply, head and body, in one buffer for one write.
fn encode(response: &Response, connection: Connection) -> Vec<u8> {
    encode_with(response, connection, true)
}

/// As `encode`, without the body for the reply to a `HEAD` (whose `Content-Length` is
/// still the body's).
fn encode_with(response: &Response, connection: Connection, with_body: bool) -> Vec<u8> {
    let body = response.body();
    let mut out = Vec::with_capacity(200 + body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        response.status(),
        reason_phrase(response.status()),
        response.content_type(),
        body.len()
    );
    for (name, value) in response.headers() {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    match connection {
        Connection::KeepAlive => {}
        Connection::KeepAlive10 => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Connection::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

/// Why a request ended without a normal reply.
enum Failure {
    /// The client closed the connection, or it broke: nothing to answer.
    Closed,
    /// The request did not arrive within the read timeout: 408, then close.
    TimedOut,
    /// Answer this, then close (unread input may follow).
    Refuse(Response),
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::TimedOut,
            _ => Failure::Closed,
        }
    }
}

/// How a request's body is delimited.
enum Framing {
    Empty,
    Length(u64),
    Chunked,
}

/// What the server needs from a request head.
struct Head {
    method: String,
    target: String,
    http10: bool,
    content_type: Option<String>,
    framing: Framing,
    /// The client asked to close after this request (or, for HTTP/1.0, did not ask to
    /// keep the connection).
    close: bool,
    expect_continue: bool,
}

/// A connection's socket with its read buffer, which keeps the bytes of pipelined
/// requests that arrived with the current one.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            buf: vec![0; 4096],
            start: 0,
            end: 0,
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes into the buffer, growing it up to `MAX_HEAD`; `Ok(0)` at the end
    /// of the stream. `deadline` bounds the wait (`None`: the socket's timeout).
    fn fill(&mut self, deadline: Option<Instant>) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < MAX_HEAD {
                let len = (self.buf.len() * 2).min(MAX_HEAD);
                self.buf.resize(len, 0);
            } else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
        }
        set_deadline(&self.stream, deadline)?;
        let n = self.stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    fn read_head(&mut self, deadline: Instant) -> Result<Head, Failure> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(&self.buf[self.start..self.end]) {
                Ok(httparse::Status::Complete(len)) => {
                    let head = interpret(&request)?;
                    self.start += len;
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(Failure::Refuse(Response::error(
                        431,
                        &format!("the request has more than {MAX_HEADERS} headers"),
                    )))
                }
                Err(err) => {
                    return Err(Failure::Refuse(Response::error(
                        400,
                        &format!("malformed request head: {err}"),
                    )))
                }
            }
            if self.end - self.start >= MAX_HEAD {
                return Err(Failure::Refuse(Response::error(
                    431,
                    &format!("the request head is longer than {MAX_HEAD} bytes"),
                )));
            }
            if self.fill(Some(deadline))? == 0 {
                return Err(Failure::Closed);
            }
        }
    }

    /// Appends exactly `n` bytes of body to `body`: the buffered ones first, then
    /// straight from the socket.
    fn read_exact_into(
        &mut self,
        body: &mut Vec<u8>,
        n: usize,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let from_buffer = n.min(self.end - self.start);
        body.extend_from_slice(&self.buf[self.start..self.start + from_buffer]);
        self.start += from_buffer;
        let target = body.len() + (n - from_buffer);
        while body.len() < target {
            let old = body.len();
            body.resize(old + (target - old).min(64 * 1024), 0);
            set_deadline(&self.stream, Some(deadline))?;
            match self.stream.read(&mut body[old..]) {
                Ok(0) => {
                    body.truncate(old);
                    return Err(Failure::Closed);
                }
                Ok(read) => body.truncate(old + read),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => body.truncate(old),
                Err(err) => {
                    body.truncate(old);
                    return Err(err.into());
                }
            }
        }
        Ok(())
    }

    /// One line (without its CRLF or LF), at most `max` bytes; `Ok(None)` at the end of
    /// the stream.
    fn read_line(&mut self, max: usize, deadline: Instant) -> Result<Vec<u8>, Failure> {
        loop {
            if let Some(at) = self.buffered().iter().position(|&b| b == b'\n') {
                let mut line = self.buffered()[..at].to_vec();
                self.start += at + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.end - self.start > max {
                return Err(bad_chunk("a chunk line is too long"));
            }
            match self.fill(Some(deadline)) {
                Ok(0) => return Err(Failure::Closed),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                    return Err(bad_chunk("a chunk line is too long"))
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    fn read_chunked(
        &mut self,
        limit: usize,
        endpoint: &Endpoint,
        deadline: Instant,
    ) -> Result<Vec<u8>, Failure> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(MAX_CHUNK_LINE, deadline)?;
            let size = chunk_size(&line)
                .ok_or_else(|| bad_chunk("a chunk size is not a hexadecimal number"))?;
            if size == 0 {
                break;
            }
            if size > (limit - body.len()) as u64 {
                return Err(Failure::Refuse(
                    endpoint.too_large(&format!("more than {limit} bytes, chunked")),
                ));
            }
            self.read_exact_into(&mut body, size as usize, deadline)?;
            if !self.read_line(MAX_CHUNK_LINE, deadline)?.is_empty() {
                return Err(bad_chunk("a chunk is longer than its size"));
            }
        }
        // Trailer fields, ignored, up to the empty line.
        let mut trailers = 0;
        loop {
            let line = self.read_line(MAX_HEAD, deadline)?;
            if line.is_empty() {
                return Ok(body);
            }
            trailers += line.len();
            if trailers > MAX_HEAD {
                return Err(Failure::Refuse(Response::error(
                    431,
                    &format!("the trailer fields are longer than {MAX_HEAD} bytes"),
                )));
            }
        }
    }

    fn read_body(
        &mut self,
        head: &Head,
        endpoint: &Endpoint,
        deadline: Instant,
    ) -> Result<Vec<u8>, Failure> {
        match head.framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => {
                // check_head has refused a length over the limit.
                let n = n as usize;
                let mut body = Vec::with_capacity(n.min(1024 * 1024));
                self.read_exact_into(&mut body, n, deadline)?;
                Ok(body)
            }
            Framing::Chunked => self.read_chunked(endpoint.max_body_size(), endpoint, deadline),
        }
    }

    fn send(&mut self, response: &Response, connection: Connection) -> io::Result<()> {
        self.stream.write_all(&encode(response, connection))
    }

    /// Closes after an error with input possibly still coming: reads (and drops) it for a
    /// while, so the client reads the reply instead of a connection reset.
    fn linger_close(mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let until = Instant::now() + LINGER;
        let mut drained = 0;
        let mut scratch = [0; 8192];
        while drained < MAX_LINGER_BYTES {
            if set_deadline(&self.stream, Some(until)).is_err() {
                break;
            }
            match self.stream.read(&mut scratch) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    }
}

fn bad_chunk(what: &str) -> Failure {
    Failure::Refuse(body_error(&io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad chunked framing: {what}"),
    )))
}

/// The size of a chunk from its size line: hexadecimal digits, then optional
/// whitespace and extensions (`;name=value`), which are ignored.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return None;
    }
    let rest = &line[digits..];
    let rest = &rest[rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()..];
    if !rest.is_empty() && rest[0] != b';' {
        return None;
    }
    let text = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// Sets the socket's read timeout to what is left until `deadline`.
fn set_deadline(stream: &TcpStream, deadline: Option<Instant>) -> io::Result<()> {
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
    }
    Ok(())
}

/// Reads what the server needs from a parsed head, refusing framing it cannot trust.
fn interpret(request: &httparse::Request<'_, '_>) -> Result<Head, Failure> {
    let bad = |status: u16, message: &str| Failure::Refuse(Response::error(status, message));
    let http10 = request.version == Some(0);
    let mut content_length: Option<u64> = None;
    let mut codings: Vec<String> = Vec::new();
    let mut transfer_encoding = false;
    let mut content_type = None;
    let mut close = false;
    let mut keep_alive = false;
    let mut expect_continue = false;
    for header in request.headers.iter() {
        let value = String::from_utf8_lossy(header.value);
        let value = value.trim();
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse::<u64>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| bad(400, "Content-Length is not a number"))?;
            if content_length.is_some_and(|other| other != length) {
                return Err(bad(
                    400,
                    "the request has two different Content-Length headers",
                ));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            codings.extend(
                value
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty()),
            );
        } else if name.eq_ignore_ascii_case("content-type") {
            if content_type.is_none() {
                content_type = Some(value.to_owned());
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue |= value.eq_ignore_ascii_case("100-continue");
        }
    }
    if transfer_encoding && codings.is_empty() {
        // RFC 9112 requires a coding; a proxy in front might frame such a request by
        // something else than its Content-Length, so neither side can be trusted.
        return Err(bad(400, "Transfer-Encoding names no transfer coding"));
    }
    let framing =
        if !codings.is_empty() {
            if content_length.is_some() {
                return Err(bad(
                    400,
                    "the request has both Content-Length and Transfer-Encoding",
                ));
            }
            match codings.iter().position(|c| c != "chunked") {
                None if codings.len() == 1 => Framing::Chunked,
                Some(at) if codings.last().map(String::as_str) == Some("chunked") => {
                    return Err(bad(
                        501,
                        &format!(
                            "transfer coding {} is not supported; send the body chunked only",
                            crate::error::Shown(&codings[at])
                        ),
                    ))
                }
                _ => return Err(bad(
                    400,
                    "Transfer-Encoding does not end with `chunked` exactly once, so the body's \
                     length is unknown",
                )),
            }
        } else {
            match content_length {
                Some(0) | None => Framing::Empty,
                Some(n) => Framing::Length(n),
            }
        };
    Ok(Head {
        method: request.method.unwrap_or_default().to_owned(),
        target: request.path.unwrap_or_default().to_owned(),
        http10,
        content_type,
        framing,
        close: close || (http10 && !keep_alive),
        expect_continue,
    })
}

/// What to do with the connection after a request.
enum Next {
    KeepAlive,
    Close,
    LingerClose,
}

fn serve_connection(shared: &Shared, id: u64, stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(shared.read_timeout));
    let mut conn = Conn::new(stream);
    // A new connection gets no longer than a request would to send its first byte: 2,048
    // sockets that never speak must not hold every slot for the whole idle timeout.
    let mut wait = shared.idle_timeout.min(shared.read_timeout);
    loop {
        if conn.buffered().is_empty() {
            // Idle: wait for the next request's first byte.
            if conn.stream.set_read_timeout(Some(wait)).is_err() {
                return;
            }
            match conn.fill(None) {
                Ok(n) if n > 0 => {}
                _ => return, // closed by the client, idle for too long, or shut down
            }
        }
        if !shared.set_busy(id, true) {
            return;
        }
        let deadline = Instant::now() + shared.read_timeout;
        match exchange(shared, &mut conn, deadline) {
            Next::KeepAlive => {}
            Next::Close => {
                let _ = conn.stream.shutdown(Shutdown::Write);
                return;
            }
            Next::LingerClose => return conn.linger_close(),
        }
        if !shared.set_busy(id, false) {
            return;
        }
        wait = shared.idle_timeout;
    }
}

/// Reads one request and answers it.
fn exchange(shared: &Shared, conn: &mut Conn, deadline: Instant) -> Next {
    let head = match conn.read_head(deadline) {
        Ok(head) => head,
        Err(failure) => return fail(conn, failure, "request head"),
    };
    let mut request = RequestHead::new(&head.method, &head.target);
    if let Some(content_type) = &head.content_type {
        request = request.content_type(content_type);
    }
    if let Framing::Length(n) = head.framing {
        request = request.content_length(n);
    }
    let endpoint = &shared.endpoint;
    // What the body may hold in memory (see `max_body_memory`); taken only once the head
    // is accepted or the body is to be drained, and held until the body is dropped.
    let body_units = match head.framing {
        Framing::Empty => 0,
        Framing::Length(n) => usize::try_from(n).unwrap_or(usize::MAX),
        Framing::Chunked => endpoint.max_body_size(),
    };
    if let Some(refusal) = endpoint.check_head(&request) {
        let drain = match head.framing {
            Framing::Empty => true,
            // A small body is read and dropped, so the connection stays usable, unless
            // the client waits for a 100 Continue before sending it.
            Framing::Length(n) => n <= endpoint.max_body_size() as u64 && !head.expect_continue,
            Framing::Chunked => false,
        };
        if !drain {
            let _ = conn.send(&refusal, Connection::Close);
            return Next::LingerClose;
        }
        let _body_memory = shared.body_memory.acquire(body_units);
        return match conn.read_body(&head, endpoint, deadline) {
            Ok(_) => reply(conn, &refusal, &head, shared),
            Err(failure) => fail(conn, failure, "request body"),
        };
    }
    let _body_memory = shared.body_memory.acquire(body_units);
    if head.expect_continue && !head.http10 && !matches!(head.framing, Framing::Empty) {
        if let Err(err) = conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n") {
            return fail(conn, err.into(), "interim reply");
        }
    }
    let body = match conn.read_body(&head, endpoint, deadline) {
        Ok(body) => body,
        Err(failure) => return fail(conn, failure, "request body"),
    };
    let response = {
        let _permit = shared.permits.acquire(1);
        endpoint.handle_body(&shared.handler, &body)
    };
    reply(conn, &response, &head, shared)
}

/// Writes all of `bytes` by `deadline`: the socket's write timeout bounds each write
/// call, so a client reading one byte at a time would otherwise hold the connection for
/// as long as it likes.
fn write_all_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn reply(conn: &mut Conn, response: &Response, head: &Head, shared: &Shared) -> Next {
    let connection = if head.close || shared.is_stopping() {
        Connection::Close
    } else if head.http10 {
        Connection::KeepAlive10
    } else {
        Connection::KeepAlive
    };
    let bytes = encode_with(
        response,
        connection,
        !head.method.eq_ignore_ascii_case("HEAD"),
    );
    match write_all_by(
        &mut conn.stream,
        &bytes,
        Instant::now() + shared.read_timeout,
    ) {
        Ok(()) if connection == Connection::Close => Next::Close,
        Ok(()) => Next::KeepAlive,
        Err(err) => {
            warn!("writing a {} reply failed: {err}", response.status());
            Next::Close
        }
    }
}

fn fail(conn: &mut Conn, failure: Failure, reading: &str) -> Next {
    let refusal = match failure {
        Failure::Closed => return Next::Close,
        Failure::TimedOut => Response::error(408, &format!("the {reading} did not arrive in time")),
        Failure::Refuse(response) => response,
    };
    warn!(
        "while reading the {reading}: {}",
        String::from_utf8_lossy(refusal.body()).trim_end()
    );
    let _ = conn.send(&refusal, Connection::Close);
    Next::LingerClose
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_hex_with_optional_extensions() {
        let cases: [(&[u8], Option<u64>); 9] = [
            (b"0", Some(0)),
            (b"1a", Some(26)),
            (b"FF", Some(255)),
            (b"10;name=value", Some(16)),
            (b"10 ; ext", Some(16)),
            (b"", None),
            (b"x1", None),
            (b"10x", None),
            (b"1000000000000000", None),
        ];
        for (line, expected) in cases {
            assert_eq!(
                chunk_size(line),
                expected,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn replies_are_one_buffer_with_exact_framing() {
        let response = Response::error(405, "no");
        let bytes = encode(&response, Connection::Close);
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nContent-Length: 27\r\n"), "{text}");
        assert!(
            text.contains("\r\nConnection: close\r\n\r\n405 Method Not Allowed: no\n"),
            "{text}"
        );
    }
}
