//! The accept loop (a thread per connection, 503 beyond the limit) and the connection
//! loop (requests read, checked, answered, on one keep-alive connection).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use log::{error, warn};

use super::queue::{Conn, Job};
use super::semaphore::Permit;
use super::transport::Listener;
use super::{lock, Shared, Tracked};
use crate::http::codec::{
    self, encode_response, Connection, Framing, Head, ReadError, Reader, MAX_REQUEST_HEAD,
};
use crate::http::endpoint::{error_text, Refusal, Response};
use crate::http::socket::{time_left, Socket};
use crate::http::stream::Stream;

/// How long a connection that is closed after an error keeps reading what the client
/// still sends, so the kernel does not answer it with a reset that destroys the reply.
const LINGER: Duration = Duration::from_secs(2);
/// How much it reads meanwhile, at most.
const MAX_LINGER_BYTES: usize = 1024 * 1024;

pub(super) fn accept_loop(shared: &Arc<Shared>, listener: Listener) {
    let _ended = AcceptorEnded(shared);
    loop {
        match listener.accept() {
            Ok(stream) => {
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
    #[cfg(unix)]
    if let Some(file) = &shared.socket_file {
        file.remove();
    }
}

/// Tells the shutdown (and a drop, which waits for nothing else) that the accept loop has
/// ended, however it ends.
struct AcceptorEnded<'a>(&'a Shared);

impl Drop for AcceptorEnded<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).acceptor_done = true;
        self.0.changed.notify_all();
    }
}

/// Gives a new connection its thread, or refuses it with 503.
fn admit(shared: &Arc<Shared>, stream: Socket) {
    let handle = match stream.try_clone() {
        Ok(handle) => Arc::new(handle),
        Err(err) => {
            error!("cannot track a new connection: {err}");
            return refuse(shared, stream, Refusal::NoNewConnection);
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
            return refuse(shared, stream, Refusal::TooManyConnections);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.connections.insert(
            id,
            Tracked {
                stream: Arc::clone(&handle),
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
            #[cfg(feature = "metrics")]
            if let Some(metrics) = for_thread.metrics() {
                metrics.connections.inc();
            }
            let _registered = Registered(&for_thread, id);
            serve_connection(&for_thread, id, stream, handle);
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
        #[cfg(feature = "metrics")]
        if let Some(metrics) = self.0.metrics() {
            metrics.connections.dec();
        }
        lock(&self.0.state).connections.remove(&self.1);
        self.0.changed.notify_all();
    }
}

/// Answers a connection the server will not serve with 503 and closes it, without
/// waiting for its request. Over TLS it only closes it: a reply would take a handshake,
/// on the accept loop's thread; the client sees the connection close and retries.
fn refuse(shared: &Shared, mut stream: Socket, refusal: Refusal) {
    if shared.is_tls() {
        return;
    }
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let response = refusal.response();
    let bytes = encode_response(&response, Connection::Close, true);
    if stream.write_all(&bytes).is_ok() {
        sent(shared, response.status(), bytes.len());
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// What to do with the connection after a request.
enum Next {
    KeepAlive,
    Close,
    LingerClose,
    /// The batch is queued for a worker (`queue`), which answers it and marks the
    /// connection idle, or closes it.
    Queued,
}

/// Serves one connection. `handle` is another handle to its socket, which the server's
/// shutdown closes, and a worker thread answers this connection's queued batches on.
fn serve_connection(shared: &Arc<Shared>, id: u64, socket: Socket, handle: Arc<Socket>) {
    let _ = socket.set_write_timeout(Some(shared.read_timeout));
    let Some(stream) = secure(shared, socket) else {
        return;
    };
    let me = shared
        .jobs
        .is_some()
        .then(|| Arc::new(Conn::new(id, handle)));
    // Returns once a queued batch has been answered: the connection's thread ends only
    // after its reply, so the shutdown waits for it, and reads no next request before it,
    // so replies keep their order.
    let done = || {
        if let Some(me) = &me {
            me.wait_done();
        }
    };
    let mut conn = Reader::new(stream, MAX_REQUEST_HEAD);
    // A new connection gets no longer than a request would to send its first byte: 2,048
    // sockets that never speak must not hold every slot for the whole idle timeout.
    let mut wait = shared.idle_timeout.min(shared.read_timeout);
    loop {
        if conn.buffered().is_empty() {
            // Idle, or its batch queued: wait for the next request's first byte.
            let queued = me.as_ref().is_some_and(|me| me.has_job());
            if conn.stream().socket().set_read_timeout(Some(wait)).is_err() {
                return done();
            }
            match conn.fill(None) {
                Ok(n) if n > 0 => {}
                // Not idle while its batch waited or ran: the idle time starts again.
                Err(err) if queued && is_timeout(&err) => continue,
                _ => return done(), // closed by the client, idle for too long, or shut down
            }
        }
        if let Some(me) = &me {
            me.wait_done();
            if me.is_closed() {
                return;
            }
        }
        if !shared.set_busy(id, true) {
            return;
        }
        let deadline = Instant::now() + shared.read_timeout;
        match exchange(shared, me.as_ref(), &mut conn, deadline) {
            Next::Queued => {
                // Busy until the worker has answered: it marks the connection idle.
                wait = shared.idle_timeout;
                continue;
            }
            Next::KeepAlive => {}
            Next::Close => return conn.stream_mut().close_write(),
            Next::LingerClose => return linger_close(conn.stream_mut()),
        }
        if !shared.set_busy(id, false) {
            return;
        }
        wait = shared.idle_timeout;
    }
}

/// Whether a read or write ended at its deadline (the socket's timeout, or none left).
pub(super) fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads one request and answers it: with a route's handler, or the functions'; or
/// queues its batch for a worker (`me`: the connection, on a server with a queue).
fn exchange(
    shared: &Arc<Shared>,
    me: Option<&Arc<Conn>>,
    conn: &mut Reader<Stream>,
    deadline: Instant,
) -> Next {
    let head = match conn.read_request_head(deadline) {
        Ok(head) => head,
        Err(err) => return fail(shared, conn, err, "request head"),
    };
    #[cfg(feature = "metrics")]
    let _in_flight = shared
        .metrics()
        .map(|metrics| InFlight::new(metrics, head.size));
    let request = head.request();
    let endpoint = &shared.endpoint;
    let limit = endpoint.max_body_size();
    // The body's memory (see `max_body_memory`), charged as its buffer grows while it is
    // read, and held until the body is dropped with this exchange.
    let most = match head.framing {
        Framing::Empty | Framing::UntilClose => 0,
        Framing::Length(n) => usize::try_from(n).unwrap_or(usize::MAX),
        Framing::Chunked => limit,
    };
    let mut body_memory = shared.body_memory.charge(most, deadline);
    let (route, refusal) = match shared.routes.find(&request, endpoint.path()) {
        Ok(None) => (None, endpoint.check_head(&request)),
        Ok(Some(route)) => {
            let too_large = endpoint.check_length(&request);
            (Some(route), too_large.map(|r| endpoint.refuse(&request, r)))
        }
        Err(refusal) => (None, Some(endpoint.refuse(&request, refusal))),
    };
    if let Some(refusal) = refusal {
        let drain = match head.framing {
            Framing::Empty => true,
            // A small body is read and dropped, so the connection stays usable, unless
            // the client waits for a 100 Continue before sending it.
            Framing::Length(n) => n <= limit as u64 && !head.expect_continue,
            Framing::Chunked | Framing::UntilClose => false,
        };
        if !drain {
            let bytes = encode_response(&refusal, Connection::Close, true);
            if conn.stream_mut().write_all(&bytes).is_ok() {
                sent(shared, refusal.status(), bytes.len());
            }
            return Next::LingerClose;
        }
        return match conn.read_body_within(head.framing, limit, Some(deadline), &mut body_memory) {
            Ok(body) => {
                received(shared, body.len());
                reply(conn, &refusal, &head, shared)
            }
            Err(err) => fail(shared, conn, err, "request body"),
        };
    }
    if head.expect_continue && !head.http10 && head.framing != Framing::Empty {
        if let Err(err) = conn.stream_mut().write_all(codec::CONTINUE) {
            return fail(shared, conn, err.into(), "interim reply");
        }
    }
    let body = match conn.read_body_within(head.framing, limit, Some(deadline), &mut body_memory) {
        Ok(body) => body,
        Err(err) => return fail(shared, conn, err, "request body"),
    };
    received(shared, body.len());
    let (response, invocations) = match route {
        // A route of the service's own (a health check, metrics) takes no worker permit:
        // it answers even while batches hold every worker, so an orchestrator's probe
        // does not fail on a server that is only busy.
        Some(route) => (route.respond(&request, &body), None),
        None => match (&shared.jobs, me) {
            (Some(jobs), Some(me)) if !shared.is_stopping() => {
                // A free permit, with nothing queued, is taken at once, as without a queue.
                match jobs.run_inline(|| shared.permits.try_acquire_leaving(1, 0)) {
                    Some(_permit) => endpoint.handle_batch(&shared.handler, &body),
                    None => {
                        // The worker that answers it ends its time in flight.
                        #[cfg(feature = "metrics")]
                        std::mem::forget(_in_flight);
                        let bytes = body_memory.into_bytes();
                        jobs.push(shared, Job::new(me, body, bytes, head.close, head.http10));
                        return Next::Queued;
                    }
                }
            }
            _ => match acquire_worker(shared) {
                Some(_permit) => endpoint.handle_batch(&shared.handler, &body),
                // The server is stopping: a batch that has not started goes to another
                // server rather than hold up the stop (`Server::shutdown`).
                None => (endpoint.refuse(&request, Refusal::ShuttingDown), None),
            },
        },
    };
    if let (Some(pacer), Some(invocations)) = (&shared.pacer, invocations) {
        // The worker is free again; the body and its memory go before the reply waits.
        drop((body, body_memory));
        super::batching::hold(shared, pacer, invocations);
    }
    reply(conn, &response, &head, shared)
}

/// Writes all of `bytes` by `deadline`: the socket's write timeout bounds each write
/// call, so a client reading one byte at a time would otherwise hold the connection for
/// as long as it likes.
fn write_all_by(stream: &mut Stream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        stream
            .socket()
            .set_write_timeout(Some(time_left(deadline)?))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn reply(conn: &mut Reader<Stream>, response: &Response, head: &Head, shared: &Shared) -> Next {
    let connection = if head.close || shared.is_stopping() {
        Connection::Close
    } else if head.http10 {
        Connection::KeepAlive10
    } else {
        Connection::KeepAlive
    };
    let bytes = encode_response(response, connection, !head.is_head());
    match write_all_by(
        conn.stream_mut(),
        &bytes,
        Instant::now() + shared.read_timeout,
    ) {
        Ok(()) if connection == Connection::Close => {
            sent(shared, response.status(), bytes.len());
            Next::Close
        }
        Ok(()) => {
            sent(shared, response.status(), bytes.len());
            Next::KeepAlive
        }
        Err(err) => {
            warn!("writing a {} reply failed: {err}", response.status());
            Next::Close
        }
    }
}

/// Answers a request that could not be read whole, when there is someone to answer:
/// the refusal, or 408 for a timeout, then the connection closes.
fn fail(shared: &Shared, conn: &mut Reader<Stream>, err: ReadError, reading: &'static str) -> Next {
    let refusal = match err {
        ReadError::Refused(refusal) => refusal,
        err if err.is_timeout() => Refusal::TimedOut(reading),
        // The client closed the connection, or it broke: nothing to answer.
        ReadError::Closed | ReadError::Io(_) => return Next::Close,
    };
    let response = refusal.response();
    warn!("while reading the {reading}: {}", error_text(&response));
    let bytes = encode_response(&response, Connection::Close, true);
    if conn.stream_mut().write_all(&bytes).is_ok() {
        sent(shared, response.status(), bytes.len());
    }
    Next::LingerClose
}

/// A worker permit for a batch, counted as waiting while it waits for one; `None` when
/// the server is stopping and none is free.
fn acquire_worker(shared: &Shared) -> Option<Permit<'_>> {
    #[cfg(feature = "metrics")]
    if let Some(metrics) = shared.metrics() {
        metrics.waiting.inc();
        let permit = shared.permits.acquire_until(1, None);
        metrics.waiting.dec();
        return permit.ok();
    }
    shared.permits.acquire_until(1, None).ok()
}

/// Counts a response of `bytes` bytes with `status` (feature `metrics`).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(super) fn sent(shared: &Shared, status: u16, bytes: usize) {
    #[cfg(feature = "metrics")]
    if let Some(metrics) = shared.metrics() {
        metrics.sent(status, bytes);
    }
}

/// Counts `bytes` bytes of a request body read (feature `metrics`).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
fn received(shared: &Shared, bytes: usize) {
    #[cfg(feature = "metrics")]
    if let Some(metrics) = shared.metrics() {
        metrics.received_bytes.inc_by(bytes as u64);
    }
}

/// A request counted in flight from its head to the end of its reply.
#[cfg(feature = "metrics")]
struct InFlight<'a>(&'a crate::metrics::ServerMetrics);

#[cfg(feature = "metrics")]
impl<'a> InFlight<'a> {
    fn new(metrics: &'a crate::metrics::ServerMetrics, head_size: usize) -> Self {
        metrics.received_bytes.inc_by(head_size as u64);
        metrics.in_flight.inc();
        InFlight(metrics)
    }
}

#[cfg(feature = "metrics")]
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// Closes after an error with input possibly still coming: reads (and drops) it for a
/// while, so the client reads the reply instead of a connection reset.
fn linger_close(stream: &mut Stream) {
    stream.close_write();
    let until = Instant::now() + LINGER;
    let mut drained = 0;
    let mut scratch = [0; 8192];
    while drained < MAX_LINGER_BYTES {
        if stream.set_deadline(until).is_err() {
            break;
        }
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// The connection's stream: the socket itself, or, on a TLS server, the socket once the
/// TLS handshake has succeeded within the read timeout; `None` when it failed (the peer
/// has had rustls' alert, the connection closes, the handler sees nothing).
#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
fn secure(shared: &Shared, socket: Socket) -> Option<Stream> {
    #[cfg(feature = "tls")]
    if let Some(acceptor) = &shared.tls {
        use crate::http::tls::stream::TlsStream;
        let deadline = Instant::now() + shared.read_timeout;
        let handshake = acceptor
            .connection()
            .and_then(|conn| TlsStream::handshake(conn, socket, deadline));
        return match handshake {
            Ok(tls) => Some(Stream::Tls(Box::new(tls))),
            Err(err) => {
                match err.kind() {
                    // A client refused (its certificate), or one that speaks no TLS.
                    io::ErrorKind::InvalidData => warn!("TLS handshake refused: {err}"),
                    // Gone, or too slow: nothing the server did.
                    _ => log::debug!("TLS handshake not completed: {err}"),
                }
                None
            }
        };
    }
    Some(Stream::Plain(socket))
}
