//! The crate's own blocking HTTP/1.1 server (feature `server`): one thread per
//! connection, a cap on connections, a cap on concurrent handler calls.
//!
//! Here: the builder and the lifecycle ([`serve`], [`Server`], [`ServerBuilder`]): the
//! probes, readiness and the graceful shutdown; the accept and connection loops are in
//! `connection`, the semaphore in `semaphore`, the batches queued for a worker in
//! `queue`, the budget of body memory in `body_memory`, the extra routes in `routes`,
//! SIGTERM and SIGINT in `signals`, what it listens on in `transport`, the pace of replies
//! that grows the runtime's batches in `batching`, and the HTTP/1 codec in `http::codec`.

mod batching;
mod body_memory;
mod connection;
mod queue;
mod routes;
mod semaphore;
#[cfg(unix)]
mod signals;
mod transport;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{info, warn};

use super::endpoint::{Endpoint, RequestHead, Response};
use crate::handler::RequestReplyHandler;
use crate::http::socket::Socket;
pub use batching::BatchGrowth;
use body_memory::BodyMemory;
use routes::Routes;
use semaphore::Semaphore;
use transport::Listener;
pub use transport::{BindAddr, ListenAddr};

/// Serves `handler` at `http://<addr>/statefun` with the default settings of
/// [`ServerBuilder`], plus the probes `GET /health` and `GET /ready`, on the calling
/// thread, until SIGTERM or SIGINT.
///
/// ```no_run
/// use statefun_sync::{serve, RequestReplyHandler, StatefulFunctions};
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind("example/greeter", |ctx, message| Ok(ctx.reply(message)?))?;
/// serve(RequestReplyHandler::v2(functions), "0.0.0.0:8000")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// It is the production one-liner: the same as
///
/// ```no_run
/// # use statefun_sync::{http::Server, RequestReplyHandler, StatefulFunctions};
/// # let handler = RequestReplyHandler::v2(StatefulFunctions::new());
/// let server = Server::builder()
///     .bind("0.0.0.0:8000")
///     .health("/health")
///     .ready("/ready")
///     .stop_on_signals()
///     .start(handler)?;
/// server.join();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// On the first SIGTERM or SIGINT it stops gracefully (see [`Server::shutdown`]):
/// `/ready` answers 503, no new connection is accepted, idle keep-alive connections are
/// closed, and every request in flight gets its whole reply; then it returns `Ok(())`,
/// within the [`shutdown_timeout`](ServerBuilder::shutdown_timeout) (10 s). A second
/// signal makes it return at once, abandoning the requests still running.
///
/// Use [`Server::builder`] to choose the path, the limits and the timeouts, to serve
/// other routes beside the functions, or to handle signals yourself. The guide's
/// [serving](crate::guide::serving) chapter has the examples that run it, and every status
/// it answers.
///
/// # Errors
///
/// The I/O error, naming `addr`, if it does not resolve or cannot be bound (in use, not
/// an address of this host, a privileged port), or if the signal handlers cannot be
/// installed. Once it listens, it returns only on a signal: errors of single connections
/// are logged, never fatal.
///
/// Signals are caught on Unix only; elsewhere it serves until the process ends.
pub fn serve(
    handler: impl Into<Arc<RequestReplyHandler>>,
    addr: impl Into<BindAddr>,
) -> io::Result<()> {
    serve_with(Server::builder(), handler, addr)
}

/// What [`serve`] and [`serve_at`] do, from `builder`.
fn serve_with(
    builder: ServerBuilder,
    handler: impl Into<Arc<RequestReplyHandler>>,
    addr: impl Into<BindAddr>,
) -> io::Result<()> {
    let builder = builder.bind(addr).health("/health").ready("/ready");
    #[cfg(unix)]
    let builder = builder.stop_on_signals();
    let server = builder.start(handler)?;
    info!(
        "serving Stateful Functions at {}, and GET /health and /ready",
        server.url()
    );
    server.join();
    Ok(())
}

/// As [`serve`], at `path` instead of `/statefun`: `serve_at(handler, "0.0.0.0:8000", "/")`
/// serves the functions at the root, as StateFun's own `module.yaml` files point them.
///
/// ```no_run
/// use statefun_sync::{serve_at, RequestReplyHandler, StatefulFunctions};
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind("example/greeter", |ctx, message| Ok(ctx.reply(message)?))?;
/// serve_at(RequestReplyHandler::v2(functions), "0.0.0.0:8000", "/")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// As [`serve`].
pub fn serve_at(
    handler: impl Into<Arc<RequestReplyHandler>>,
    addr: impl Into<BindAddr>,
    path: &str,
) -> io::Result<()> {
    serve_with(Server::builder().path(path), handler, addr)
}

/// A running server, from [`ServerBuilder::start`]. [`shutdown`](Server::shutdown)
/// stops it gracefully and waits for the requests in flight; [`join`](Server::join)
/// waits for a stop started elsewhere (a signal). Dropping it stops it without waiting
/// (see [`Drop`](Server#impl-Drop-for-Server)).
///
/// # How it serves
///
/// The accept loop runs on its own thread and gives each connection a thread of its
/// own, up to [`max_connections`](ServerBuilder::max_connections) (default 2,048, twice
/// the runtime's connection pool per task manager); beyond it, a new connection
/// gets `503 Service Unavailable` with `Connection: close`, which the runtime retries.
/// A semaphore lets at most [`workers`](ServerBuilder::workers) handler calls run at
/// once; the other connection threads wait in `read()`, idle keep-alive connections and
/// those whose batch is queued for a worker alike (over TLS, a thread whose batch waits
/// for a worker parks until its turn, in arrival order), costing a parked thread with a
/// small stack each. The queued bodies count in
/// [`max_body_memory`](ServerBuilder::max_body_memory).
///
/// This is the design because the runtime opens its pooled connections in bursts and
/// then keeps them idle: a pool of a few threads that each own a connection (tiny_http
/// 0.12) leaves the burst's other connections unanswered, and a poller needs either
/// `unsafe` system calls or a dependency. A thread is cheap to create, and an idle one
/// costs a parked thread's few KiB, so bursts of new keep-alive connections are answered
/// at once and many idle ones cost little memory. `tests/http_measure.rs` measures the
/// bursts and the idle connections, beside the tiny_http adapter; the figures are in
/// the repository's `BENCHMARKS.md`, the limits and what each refusal answers in its
/// `SECURITY.md`.
///
/// Functions run on the connection threads, whose stack is
/// [`stack_size`](ServerBuilder::stack_size) (default 512 KiB): raise it for functions
/// with deep recursion or large values on the stack.
///
/// It listens on a TCP port ([`bind`](ServerBuilder::bind)) or a Unix domain socket
/// ([`bind_unix`](ServerBuilder::bind_unix)), and speaks plain HTTP or, with feature
/// `tls`, TLS and mutual TLS (`ServerBuilder::tls`): each connection's handshake runs on
/// its own thread, so a burst of TLS connections is answered as a plain one is.
///
/// HTTP/1.1 and HTTP/1.0 requests are served, with keep-alive (HTTP/1.0 only when the
/// request asks for it), `Connection: close`, sequential pipelined requests,
/// `Content-Length` and chunked bodies (chunk extensions and trailers are read and
/// ignored), and `Expect: 100-continue`. A request with both `Content-Length` and
/// `Transfer-Encoding`, a transfer coding other than `chunked` (501), or broken chunked
/// framing is refused and its connection closed, so no request can be smuggled past
/// the framing. Every status it answers with is in the guide's
/// [table of requests and statuses](crate::guide::serving#serving-over-http); how to
/// listen over TLS or a Unix socket is in [`guide::security`](crate::guide::security), and
/// the probes and the graceful stop in Kubernetes in
/// [`guide::deployment`](crate::guide::deployment).
pub struct Server {
    shared: Arc<Shared>,
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
///     .start(RequestReplyHandler::v2(functions))?;
/// println!("serving {}", server.url());
/// server.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ServerBuilder {
    listen: Listen,
    unix_mode: u32,
    #[cfg(feature = "tls")]
    tls: Option<crate::http::TlsConfig>,
    endpoint: Endpoint,
    workers: usize,
    max_connections: usize,
    max_body_memory: usize,
    read_timeout: Duration,
    idle_timeout: Duration,
    shutdown_timeout: Duration,
    stack_size: usize,
    routes: Routes,
    /// Shared with the `/ready` route, when there is one.
    ready: Arc<AtomicBool>,
    #[cfg_attr(not(unix), allow(dead_code))]
    stop_on_signals: bool,
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::Metrics>,
    batching: Option<BatchGrowth>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            listen: Listen::Tcp(BindAddr::from((Ipv4Addr::LOCALHOST, 8000))),
            unix_mode: 0o660,
            #[cfg(feature = "tls")]
            tls: None,
            endpoint: Endpoint::new(),
            workers: thread::available_parallelism().map_or(4, NonZeroUsize::get) * 2,
            max_connections: 2048,
            max_body_memory: 256 * 1024 * 1024,
            read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(10),
            stack_size: 512 * 1024,
            routes: Routes::default(),
            ready: Arc::new(AtomicBool::new(false)),
            stop_on_signals: false,
            #[cfg(feature = "metrics")]
            metrics: None,
            batching: None,
        }
    }
}

impl ServerBuilder {
    /// Listens on `addr` (default `127.0.0.1:8000`; `0.0.0.0:8000` for every interface,
    /// port 0 for any free port): a `"host:port"` string, a `(host, port)` pair, a
    /// [`SocketAddr`] or a list of them (see [`BindAddr`]).
    ///
    /// A host name is resolved by [`start`](Self::start), not here, and the first address
    /// it resolves to that binds is used; a name that does not resolve, or an address that
    /// cannot be bound, is an error of `start` that names `addr`.
    pub fn bind(mut self, addr: impl Into<BindAddr>) -> Self {
        self.listen = Listen::Tcp(addr.into());
        self
    }

    /// Listens on a Unix domain socket at `path` instead of a TCP port (Unix only), for a
    /// function that runs beside the runtime (a sidecar) and needs no port at all. The
    /// runtime calls it at `http+unix://<path>/statefun` (`https+unix` with
    /// [`tls`][`ServerBuilder::tls`]), and finds where the socket's path ends by a file name ending
    /// in `.sock`: name it so, e.g. `/run/statefun/functions.sock`.
    ///
    /// [`start`](Self::start) removes a socket file left by a server that did not stop
    /// cleanly, refuses to start when a server is live on it (`AddrInUse`) or when the
    /// path is a file that is not a socket (`AlreadyExists`), and sets the file's mode
    /// ([`unix_mode`](Self::unix_mode)); the shutdown removes the file. Every limit,
    /// timeout and status is the TCP server's.
    #[doc = feature_links!()]
    pub fn bind_unix(mut self, path: impl Into<PathBuf>) -> Self {
        self.listen = Listen::Unix(path.into());
        self
    }

    /// The permissions of the socket file of [`bind_unix`](Self::bind_unix) (default
    /// `0o660`: owner and group may connect, no one else). Connecting takes write
    /// permission on the file.
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.unix_mode = mode;
        self
    }

    /// Serves over TLS (feature `tls`): TLS 1.3 and 1.2 with the certificate and key of
    /// `config`, and mutual TLS when it has a [`client_ca`](crate::http::TlsConfig::client_ca).
    /// The files are read by [`start`](Self::start), and again when they change (see
    /// [`TlsConfig`](crate::http::TlsConfig#certificate-rotation)).
    ///
    /// Each connection's handshake runs on its own thread, within the
    /// [`read_timeout`](Self::read_timeout): a client that stalls it, or sends anything
    /// but a TLS handshake (plain HTTP included), is closed by then and never reaches
    /// the functions. A connection beyond [`max_connections`](Self::max_connections) is
    /// closed without the 503 a plain server sends (that reply would take a handshake);
    /// the runtime retries it as it retries a 503.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: crate::http::TlsConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Serves the functions at `path` (default `/statefun`); other paths get 404.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.with_path(path);
        self
    }

    /// The most handler calls that run at once (default: twice the available
    /// parallelism). Raise it for functions that wait on I/O. At least 1.
    ///
    /// Lowering it is the way to bound what the functions may use at once (a database's
    /// connections, a single-threaded resource: `workers(1)` runs one batch at a time),
    /// and it stays cheap however many connections wait. A batch that finds a worker free,
    /// with none queued, runs at once on its connection's thread, with no system call for
    /// its permit. One that finds every worker busy is queued, in arrival order, and its
    /// connection's thread goes back to reading its socket; worker threads (at most
    /// `workers` of them, started when first needed) run the queued batches back to back
    /// and write each reply on its connection (for 20 ms at most: a thread of its own
    /// finishes a reply whose client does not take it), so that under load no thread is
    /// woken to hand a worker over (the guide's
    /// [performance](crate::guide::performance#worker-permits) chapter; the measurements
    /// are in the repository's `BENCHMARKS.md`, "Worker permits"). A connection has at most one batch queued or running, and reads no
    /// further request before its reply is written, so a pipelining client gets its
    /// replies in order. Over TLS, and with [`grow_batches`](Self::grow_batches), a batch
    /// waits for its worker on its own connection's thread instead, also in arrival order
    /// (the TLS session, and the held reply, stay with that thread).
    ///
    /// A batch whose body has arrived waits for a worker, with no deadline of its own (the
    /// runtime's timeout bounds it; the connection's idle timeout does not run meanwhile),
    /// holding its body's memory. Once the server stops
    /// ([`Server::shutdown`], a signal, a drop), a batch that would wait for a worker is
    /// answered `503` with `Connection: close` instead, and never runs: the runtime sends
    /// it again, to a server that is not stopping, and the stop waits only for the
    /// batches already running.
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
    /// (default 256 MiB). Without it, every connection could hold a body of the largest
    /// size at once: 2,048 times 32 MiB by default. It is never less than one body of the
    /// largest size ([`max_body_size`](Self::max_body_size)), which is always let through.
    ///
    /// A body is charged as its buffer grows while its bytes arrive, not at its declared
    /// `Content-Length`: a client that declares 32 MiB and sends slowly holds what it has
    /// sent (and at most as much again, as the buffer doubles), so slow clients cannot
    /// hold the memory that other requests need. Growth comes step by step while that
    /// leaves one largest body's worth free; past that, a body takes all it may still
    /// need at once (the rest of its `Content-Length`; a chunked body, the rest of
    /// `max_body_size`), waiting for it if it must, and then needs nothing more. So bodies
    /// that each hold part of the memory never wait for each other: one of them can
    /// always finish.
    ///
    /// A body waits for room no later than its request's read deadline
    /// ([`read_timeout`](Self::read_timeout) after its first byte); then it is answered
    /// `503 Service Unavailable` with `Connection: close`, whose text names this limit,
    /// and the runtime sends it again. A request waiting for room when the server stops is
    /// answered 503 at once, so the stop does not wait for it.
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
    /// runtime's read timeout: it has given up on a request that takes longer). Give the
    /// process more than this to stop before it is killed (Kubernetes:
    /// `terminationGracePeriodSeconds`, 30 s by default). Dropping a [`Server`] does not
    /// wait at all.
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

    /// Serves `handler` for `method` requests to `path`, beside the functions: a
    /// health check, metrics, anything small a service needs next to its functions.
    ///
    /// ```no_run
    /// use statefun_sync::http::{Response, Server};
    /// use statefun_sync::{RequestReplyHandler, StatefulFunctions};
    ///
    /// # let functions = StatefulFunctions::new();
    /// let server = Server::builder()
    ///     .bind("0.0.0.0:8000")
    ///     .route("GET", "/health", |_, _| Response::text(200, "ok\n"))
    ///     .start(RequestReplyHandler::v2(functions))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// The handler gets the request's head (its [`path`](RequestHead::path) has no
    /// query string; the [`target`](RequestHead::target) keeps it) and its whole body,
    /// and returns the [`Response`] to send ([`Response::text`], [`Response::new`]).
    /// A route's requests go through the head and body limits,
    /// [`max_body_size`](Self::max_body_size) (413 beyond it), the read timeout,
    /// keep-alive and `Connection: close`, as a function's do; a panic in the handler is a
    /// 500. They take no worker permit ([`workers`](Self::workers)), so a health check
    /// answers while batches hold every worker: keep route handlers short.
    ///
    /// `path` is matched exactly, `method` without regard to case (as the functions'
    /// `POST`); a `GET` route answers `HEAD` too, with the `GET` reply's headers and no
    /// body. Another method on a route's path gets 405 with the route's methods in
    /// `Allow`; any path without a route is the functions' (404 unless it is theirs). A
    /// route on the functions' path takes its method there; adding a route with the
    /// method and path of an earlier one replaces it.
    ///
    /// A `method` that is not an HTTP token, or a `path` that does not start with `/`, is
    /// an error of [`start`](Self::start).
    pub fn route<F>(mut self, method: &'static str, path: impl Into<String>, handler: F) -> Self
    where
        F: Fn(&RequestHead<'_>, &[u8]) -> Response + Send + Sync + 'static,
    {
        self.routes.add(method, path.into(), Box::new(handler));
        self
    }

    /// Serves a liveness probe at `GET path` (`HEAD` too), e.g. `/health`: `200 ok`
    /// whenever the server answers at all, also while it shuts down.
    ///
    /// Like every [`route`](Self::route), it takes no worker permit, so it answers while
    /// batches hold every worker: an orchestrator does not restart a server that is only
    /// busy.
    ///
    /// ```no_run
    /// # use statefun_sync::{http::Server, RequestReplyHandler, StatefulFunctions};
    /// # let handler = RequestReplyHandler::v2(StatefulFunctions::new());
    /// let server = Server::builder()
    ///     .bind("0.0.0.0:8000")
    ///     .health("/health")
    ///     .ready("/ready")
    ///     .start(handler)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A `path` that does not start with `/` is an error of [`start`](Self::start).
    pub fn health(self, path: impl Into<String>) -> Self {
        self.route("GET", path, |_, _| Response::text(200, "ok\n"))
    }

    /// Serves a readiness probe at `GET path` (`HEAD` too), e.g. `/ready`: `200 ready`
    /// once the server is serving, `503 shutting down` from the moment its shutdown
    /// starts ([`Server::shutdown`], or a signal with
    /// [`stop_on_signals`](Self::stop_on_signals)), so that an orchestrator sends no new
    /// work to a server that is stopping. [`Server::is_ready`] tells the same.
    ///
    /// It takes no worker permit, as [`health`](Self::health). A `path` that does not
    /// start with `/` is an error of [`start`](Self::start).
    pub fn ready(self, path: impl Into<String>) -> Self {
        let ready = Arc::clone(&self.ready);
        self.route("GET", path, move |_, _| {
            if ready.load(Ordering::SeqCst) {
                Response::text(200, "ready\n")
            } else {
                Response::text(503, "shutting down\n")
            }
        })
    }

    /// Serves `metrics` at `GET path` (`HEAD` too), e.g. `/metrics`, in the Prometheus
    /// text format, and counts the server's requests, connections and bytes in it
    /// (feature `metrics`; the names are in [`metrics`](crate::metrics)). Give the same
    /// [`Metrics`](crate::metrics::Metrics) to
    /// [`RequestReplyHandler::with_metrics`] for the per-function-type series.
    ///
    /// ```no_run
    /// use statefun_sync::http::Server;
    /// use statefun_sync::metrics::Metrics;
    /// use statefun_sync::{RequestReplyHandler, StatefulFunctions};
    ///
    /// let metrics = Metrics::new();
    /// let handler = RequestReplyHandler::v2(StatefulFunctions::new()).with_metrics(&metrics);
    /// let server = Server::builder()
    ///     .bind("0.0.0.0:8000")
    ///     .metrics("/metrics", &metrics)
    ///     .start(handler)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Like every [`route`](Self::route), it takes no worker permit: a scrape answers
    /// while batches hold every worker, and waits for none. A `path` that does not start
    /// with `/` is an error of [`start`](Self::start).
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, path: impl Into<String>, metrics: &crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        let metrics = metrics.clone();
        self.route("GET", path, move |_, _| {
            let content_type =
                ::http::HeaderValue::from_static(crate::metrics::Metrics::CONTENT_TYPE);
            Response::new(200, content_type, metrics.render())
        })
    }

    /// Trades a bounded added latency for fewer, larger batches from the runtime, when it
    /// sends many small ones (off by default): replies leave at a pace, each held at most
    /// `max_hold` (a [`Duration`], or a [`BatchGrowth`] to tune the rule).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use statefun_sync::http::Server;
    /// # use statefun_sync::{RequestReplyHandler, StatefulFunctions};
    /// # let handler = RequestReplyHandler::v2(StatefulFunctions::new());
    ///
    /// let server = Server::builder()
    ///     .bind("0.0.0.0:8000")
    ///     .grow_batches(Duration::from_millis(500))
    ///     .start(handler)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// The runtime keeps one request in flight per address and sends the messages that
    /// arrive meanwhile as the next batch. Every request costs it a fixed amount of CPU
    /// (about 150 µs on StateFun 3.3: its HTTP client, protobuf, the state backend's reads
    /// and writes of the request's state), so a function that answers in microseconds gets
    /// batches of one or two and the runtime spends most of its CPU on requests. With this
    /// option the server lets replies leave at most `max(min_pace, invocations per second
    /// / target_batch)` per second (by default one per 16 invocations served, and never
    /// fewer than 200 per second). Under that rate nothing is held: an idle or lightly
    /// loaded function sees no added latency. Beyond it, a reply waits for its turn, in the
    /// order the replies were made, never longer than `max_hold`; the runtime meanwhile
    /// queues each address's messages, and its batches grow to about `target_batch`.
    ///
    /// - A reply is held after its batch ran and its worker was released: a held reply
    ///   takes no worker and no body memory, only its connection's thread.
    /// - A reply is never changed, only delayed. Replies per address are never reordered:
    ///   the runtime sends an address's next batch only once it has the reply to the one
    ///   before, and held replies leave in the order they were made anyway.
    /// - Handshake replies (3.x), errors and the server's own [`route`](Self::route)s are
    ///   never held.
    /// - A stop ([`Server::shutdown`], a signal, a drop) lets every held reply leave at
    ///   once.
    /// - `statefun_http_batching_hold_seconds`, `statefun_http_batching_held_batch_size`
    ///   and `statefun_http_batching_pace` ([`metrics`][`ServerBuilder::metrics`]) show what
    ///   it does.
    ///
    /// Keep `max_hold` well under the function's timeouts in `module.yaml`, in which a
    /// held reply counts (the okhttp transport's read timeout, 10 s by default, and 2.2's
    /// `readTimeout`; the call timeout, 1 min, 2 min on the netty transport).
    ///
    /// It works the same with the 2.2 and the 3.x runtimes. How long `max_hold` must be for
    /// batches to reach the target depends on how many addresses are busy at once: each
    /// address's turn comes about every `addresses / pace` seconds. The figures measured
    /// on a real StateFun job, and when to turn it on, are in the guide's
    /// [Batching and the runtime's cost](crate::guide::performance#batching-and-the-runtimes-cost).
    /// Only this server paces replies; the [`tiny_http`][`http::tiny_http`] adapter and
    /// [`Endpoint`] in a server of your own answer at once.
    #[doc = feature_links!()]
    pub fn grow_batches(mut self, growth: impl Into<BatchGrowth>) -> Self {
        self.batching = Some(growth.into());
        self
    }

    /// Stops the server gracefully on SIGTERM or SIGINT (Unix only): the first signal
    /// starts [`Server::shutdown`] on a thread of its own (the readiness probe answers
    /// 503, no new connection is accepted, idle connections are closed, requests in
    /// flight get their whole reply), and [`Server::join`] returns once it is done, within
    /// the [`shutdown_timeout`](Self::shutdown_timeout). A second signal ends the wait at
    /// once: `join()` returns and the requests still running are abandoned (they finish,
    /// or die with the process).
    ///
    /// Without it (the default of the builder; [`serve`] sets it) the server installs no
    /// signal handler: handle signals yourself and call [`Server::shutdown`]. The handlers
    /// are installed by [`start`](Self::start) and removed when the server has shut down;
    /// while they are installed, SIGTERM and SIGINT no longer end the process by
    /// themselves, so install them in one running server at a time. The guide's
    /// [deployment](crate::guide::deployment) chapter puts this, the probes and a pod's
    /// `terminationGracePeriodSeconds` together.
    #[cfg(unix)]
    pub fn stop_on_signals(mut self) -> Self {
        self.stop_on_signals = true;
        self
    }

    /// Binds and starts serving `handler` on a background thread.
    ///
    /// # Errors
    ///
    /// The I/O error, naming the address, if it does not resolve or cannot be bound
    /// ([`bind`](Self::bind)); the error of [`bind_unix`](Self::bind_unix)'s socket file; if a
    /// [`route`](Self::route) (or a probe's path) is invalid (`InvalidInput`), if the
    /// accept thread cannot be created, or, with
    /// [`stop_on_signals`](Self::stop_on_signals), if the signal handlers cannot be
    /// installed or their thread created (nothing is left serving then).
    pub fn start(self, handler: impl Into<Arc<RequestReplyHandler>>) -> io::Result<Server> {
        self.routes.check()?;
        #[cfg(feature = "tls")]
        let tls = self
            .tls
            .map(crate::http::tls::acceptor::Acceptor::new)
            .transpose()?;
        let (listener, listen_addr, socket_file) = bind(self.listen, self.unix_mode)?;
        let body_memory = BodyMemory::new(self.max_body_memory, self.endpoint.max_body_size());
        // A TLS session's state lives with its connection's thread, and the pacer holds
        // replies on it: those batches wait for a permit on their own thread.
        #[cfg(feature = "tls")]
        let queued = tls.is_none() && self.batching.is_none();
        #[cfg(not(feature = "tls"))]
        let queued = self.batching.is_none();
        let shared = Arc::new(Shared {
            handler: handler.into(),
            endpoint: self.endpoint,
            routes: self.routes,
            listen_addr,
            #[cfg(unix)]
            socket_file,
            #[cfg(feature = "tls")]
            tls,
            read_timeout: self.read_timeout,
            idle_timeout: self.idle_timeout,
            shutdown_timeout: self.shutdown_timeout,
            stack_size: self.stack_size,
            max_connections: self.max_connections,
            stopping: AtomicBool::new(false),
            ready: self.ready,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            permits: Semaphore::new(self.workers),
            jobs: queued.then(|| queue::Jobs::new(self.workers)),
            body_memory,
            acceptor: Mutex::new(None),
            #[cfg(unix)]
            signals: Mutex::new(None),
            #[cfg(feature = "metrics")]
            metrics: self.metrics,
            pacer: self.batching.map(batching::Pacer::new),
        });
        // Signals first: if they cannot be caught, nothing has started yet.
        #[cfg(unix)]
        let signals = if self.stop_on_signals {
            Some(signals::Watch::new()?)
        } else {
            None
        };
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("statefun-accept".into())
                .spawn(move || connection::accept_loop(&shared, listener))?
        };
        *lock(&shared.acceptor) = Some(acceptor);
        shared.ready.store(true, Ordering::SeqCst);
        let server = Server { shared };
        #[cfg(unix)]
        if let Some(signals) = signals {
            if let Err(err) = signals.spawn(&server.shared) {
                server.shutdown();
                return Err(err);
            }
        }
        Ok(server)
    }
}

impl Server {
    /// A builder with the defaults: `127.0.0.1:8000`, path `/statefun`, 2,048
    /// connections, 32 MiB bodies, 30 s read and 60 s idle timeouts.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The TCP address the server listens on (with the actual port when bound to port
    /// 0), as `TcpListener::local_addr` tells it; `None` on a Unix socket
    /// ([`bind_unix`](ServerBuilder::bind_unix)), which has no TCP address.
    /// [`listen_addr`](Self::listen_addr) tells either, and [`url`](Self::url) is what
    /// the runtime calls.
    ///
    /// ```no_run
    /// # use statefun_sync::{http::Server, RequestReplyHandler, StatefulFunctions};
    /// # let handler = RequestReplyHandler::v2(StatefulFunctions::new());
    /// let server = Server::builder().bind("127.0.0.1:0").start(handler)?;
    /// let port = server.local_addr().map(|addr| addr.port());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.shared.listen_addr {
            ListenAddr::Tcp(addr) => Some(*addr),
            ListenAddr::Unix(_) => None,
        }
    }

    /// Where the server listens: a TCP address or a Unix socket's path.
    pub fn listen_addr(&self) -> &ListenAddr {
        &self.shared.listen_addr
    }

    /// The URL of the functions, as the runtime's module.yaml names it:
    /// `http://127.0.0.1:8000/statefun`, `https://…` over TLS,
    /// `http+unix:///run/functions.sock/statefun` on a Unix socket.
    pub fn url(&self) -> String {
        self.shared
            .listen_addr
            .url(self.path(), self.shared.is_tls())
    }

    /// The path the functions are served at.
    pub fn path(&self) -> &str {
        self.shared.endpoint.path()
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        lock(&self.shared.state).connections.len()
    }

    /// Whether the server is serving and not shutting down: what the readiness probe
    /// ([`ServerBuilder::ready`]) answers. `false` from the moment a shutdown starts.
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::SeqCst)
    }

    /// Stops the server: marks it not ready (the readiness probe answers 503), stops
    /// accepting (new connections are refused once this returns), closes idle keep-alive
    /// connections, lets requests in flight finish and send their whole reply (with
    /// `Connection: close`), and waits for them up to
    /// [`shutdown_timeout`](ServerBuilder::shutdown_timeout).
    ///
    /// Requests that only wait are not waited for: one waiting for memory for its body
    /// ([`max_body_memory`](ServerBuilder::max_body_memory)) or for a worker
    /// ([`workers`](ServerBuilder::workers)) is answered `503 Service Unavailable` with
    /// `Connection: close` at once, and its batch never runs; the runtime sends it again,
    /// to a server that is not stopping. The stop waits for the requests that are being
    /// read or run.
    ///
    /// A client sees each of its requests either answered whole, or its connection closed
    /// before any byte of the reply (a request sent on an idle connection as it is
    /// closed), which the runtime retries on a new connection.
    ///
    /// Returns whether every connection finished in time; connections still busy after
    /// the timeout (or after a second signal, with
    /// [`stop_on_signals`](ServerBuilder::stop_on_signals)) are left to finish on their
    /// own. Calling it again, or while another thread is in it, waits for the first call
    /// to end and returns what it saw.
    pub fn shutdown(&self) -> bool {
        self.shared.shutdown()
    }

    /// Blocks until the server has been shut down, from another thread (share the
    /// server in an `Arc`) or by a signal
    /// ([`stop_on_signals`](ServerBuilder::stop_on_signals)); forever if it never is.
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

/// Dropping a server stops it without waiting for the requests in flight: as
/// [`shutdown`](Server::shutdown) does, it marks the server not ready, closes idle
/// connections, answers the requests that only wait (for body memory, for a worker) with
/// 503, and stops accepting (the address, or the Unix socket's file, is free once the
/// drop returns), but it does not wait for the requests that are running. They finish on
/// their own threads and send their whole reply with `Connection: close`, unless the
/// process ends first. To wait for them, call [`shutdown`](Server::shutdown) before the
/// drop.
impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop_without_waiting();
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listen_addr", &self.listen_addr())
            .field("path", &self.path())
            .field("connections", &self.connections())
            .field("ready", &self.is_ready())
            .finish()
    }
}

/// What a builder listens on.
#[derive(Debug)]
enum Listen {
    Tcp(BindAddr),
    Unix(PathBuf),
}

/// The socket of `listen`; on a Unix socket, its file too.
fn bind(
    listen: Listen,
    unix_mode: u32,
) -> io::Result<(Listener, ListenAddr, Option<transport::SocketFileOf>)> {
    match listen {
        Listen::Tcp(addr) => {
            let listener = TcpListener::bind(&addr.resolve()?[..]).map_err(|err| {
                io::Error::new(err.kind(), format!("cannot listen on {addr}: {err}"))
            })?;
            let addr = listener.local_addr()?;
            Ok((Listener::Tcp(listener), ListenAddr::Tcp(addr), None))
        }
        #[cfg(unix)]
        Listen::Unix(path) => {
            let (listener, file) = transport::SocketFile::bind(&path, unix_mode)?;
            Ok((Listener::Unix(listener), ListenAddr::Unix(path), Some(file)))
        }
        #[cfg(not(unix))]
        Listen::Unix(path) => {
            let _ = unix_mode;
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{}: Unix domain sockets are served on Unix only",
                    path.display()
                ),
            ))
        }
    }
}

struct Shared {
    handler: Arc<RequestReplyHandler>,
    endpoint: Endpoint,
    routes: Routes,
    listen_addr: ListenAddr,
    /// The Unix socket's file, removed once the server stops accepting.
    #[cfg(unix)]
    socket_file: Option<transport::SocketFile>,
    /// The TLS configuration new connections get ([`ServerBuilder::tls`]).
    #[cfg(feature = "tls")]
    tls: Option<crate::http::tls::acceptor::Acceptor>,
    read_timeout: Duration,
    idle_timeout: Duration,
    shutdown_timeout: Duration,
    stack_size: usize,
    max_connections: usize,
    /// Mirrors `State::stopping`, read without the lock when writing a reply.
    stopping: AtomicBool,
    /// Serving and not stopping: what `/ready` answers.
    ready: Arc<AtomicBool>,
    state: Mutex<State>,
    /// Signalled when a connection closes, the accept loop stops, or shutdown finishes.
    changed: Condvar,
    permits: Semaphore,
    /// Batches waiting for a worker, and the threads that run them (`queue`); `None` over
    /// TLS and with [`ServerBuilder::grow_batches`], where a batch waits on its own thread.
    jobs: Option<queue::Jobs>,
    /// Bytes of request bodies held at once, across connections.
    body_memory: BodyMemory,
    /// The accept thread, joined by the shutdown once it has ended.
    acceptor: Mutex<Option<JoinHandle<()>>>,
    /// The signal watch ([`ServerBuilder::stop_on_signals`]), closed by the shutdown.
    #[cfg(unix)]
    signals: Mutex<Option<signal_hook::iterator::Handle>>,
    /// Where the server counts its requests ([`ServerBuilder::metrics`]).
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::Metrics>,
    /// The pace of replies ([`ServerBuilder::grow_batches`]).
    pacer: Option<batching::Pacer>,
}

#[derive(Default)]
struct State {
    /// The stop has begun ([`Shared::begin_stop`]).
    stopping: bool,
    acceptor_done: bool,
    /// The accept loop could not be woken: it ends with the process.
    acceptor_stranded: bool,
    /// A second signal: the shutdown stops waiting.
    forced: bool,
    /// A [`Server::shutdown`] call waits, or has waited, for the connections.
    waited: bool,
    /// That call has finished waiting.
    finished: bool,
    next_id: u64,
    connections: HashMap<u64, Tracked>,
}

impl State {
    /// Whether the accept loop has ended, or never will.
    fn acceptor_ended(&self) -> bool {
        self.acceptor_done || self.acceptor_stranded
    }
}

/// An open connection, as the shutdown sees it.
struct Tracked {
    /// A handle to the same socket, to close it from the shutdown (and, shared with the
    /// connection's thread, to answer its queued batches from a worker thread).
    stream: Arc<Socket>,
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

    /// The server's series, when it has metrics.
    #[cfg(feature = "metrics")]
    fn metrics(&self) -> Option<&crate::metrics::ServerMetrics> {
        self.metrics.as_ref().map(crate::metrics::Metrics::server)
    }

    /// Whether connections speak TLS.
    fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Starts the stop, once, and returns without waiting: marks the server not ready,
    /// closes idle connections, answers the requests that only wait (for body memory, for
    /// a worker) with 503, and wakes the accept loop so that it ends.
    fn begin_stop(&self) {
        {
            let mut state = lock(&self.state);
            if state.stopping {
                return;
            }
            self.ready.store(false, Ordering::SeqCst);
            state.stopping = true;
            self.stopping.store(true, Ordering::SeqCst);
            for tracked in state.connections.values().filter(|t| !t.busy) {
                // Wakes the thread blocked in read() with an end of stream.
                let _ = tracked.stream.shutdown(Shutdown::Both);
            }
        }
        // A request that waits has not started: it would hold up the stop for as long as
        // the requests ahead of it take, and the runtime can send it elsewhere.
        self.permits.stop_waits();
        if let Some(jobs) = &self.jobs {
            jobs.stop(self);
        }
        self.body_memory.stop_waits();
        // A held reply is whole: it leaves now, so the stop does not wait for its turn.
        if let Some(pacer) = &self.pacer {
            pacer.stop();
        }
        // Wakes the accept loop, blocked in accept(), so it sees the flag.
        #[cfg(unix)]
        let file = self.socket_file.as_ref();
        #[cfg(not(unix))]
        let file = None;
        if !transport::wake(&self.listen_addr, file) {
            // Nothing can reach the listener (its socket file removed): its thread is not
            // waited for, and stays blocked in accept() until the process ends.
            lock(&self.state).acceptor_stranded = true;
            self.changed.notify_all();
        }
    }

    /// [`Server::shutdown`].
    fn shutdown(&self) -> bool {
        let deadline = Instant::now() + self.shutdown_timeout;
        self.begin_stop();
        let mut state = lock(&self.state);
        if state.waited {
            // Another call is under way, or done: wait for it, report what it saw.
            while !state.finished {
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            return state.connections.is_empty();
        }
        state.waited = true;
        while !(state.forced || (state.acceptor_ended() && state.connections.is_empty())) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let all_done = state.connections.is_empty();
        if !all_done {
            let why = if state.forced {
                "after a second signal".to_owned()
            } else {
                format!("after {:?}", self.shutdown_timeout)
            };
            warn!(
                "shutdown: {} connections still busy {why}, left to finish on their own",
                state.connections.len(),
            );
        }
        state.finished = true;
        self.changed.notify_all();
        drop(state);
        self.release_threads();
        all_done
    }

    /// What dropping the [`Server`] does: starts the stop, and waits only for the accept
    /// loop to end (at once, once woken), so that the address is free again when the drop
    /// returns. Requests in flight finish on their own threads.
    fn stop_without_waiting(&self) {
        self.begin_stop();
        let mut state = lock(&self.state);
        while !state.acceptor_ended() {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(state);
        self.release_threads();
    }

    /// Ends the signal watch, so that its thread ends and its handlers are removed, and
    /// joins the accept thread if it has ended.
    fn release_threads(&self) {
        #[cfg(unix)]
        if let Some(handle) = lock(&self.signals).take() {
            handle.close();
        }
        if lock(&self.state).acceptor_done {
            if let Some(acceptor) = lock(&self.acceptor).take() {
                let _ = acceptor.join();
            }
        }
    }

    /// Ends the wait of a shutdown under way at once (a second signal).
    #[cfg(unix)]
    fn force(&self) {
        lock(&self.state).forced = true;
        self.changed.notify_all();
    }

    /// Whether the shutdown has finished.
    #[cfg(unix)]
    fn is_finished(&self) -> bool {
        lock(&self.state).finished
    }
}
