//! Batches that wait for a worker without a thread waiting with them
//! ([`workers`](super::ServerBuilder::workers)).
//!
//! A connection thread whose batch finds no worker free, or others already queued, does
//! not park for a permit: it queues the batch as a [`Job`] (the body, the connection to
//! answer on, what the reply's `Connection` header depends on, the body's memory) and goes
//! back to reading its socket, as after a reply. Drainer threads, at most one per worker,
//! each take a permit and run the queued jobs back to back in arrival order, writing each
//! reply on its connection. Under load the queue is never empty, so no thread is woken to
//! hand a permit over: per batch, the connection thread wakes once (its socket) and the
//! drainer runs the batch, where a parked waiter woke twice (its socket, its permit). A
//! batch that finds a permit free and nobody queued runs on its own thread as before.
//!
//! Order: a connection has at most one job queued or running, and its thread reads no
//! further request before that job's reply is written ([`Conn::wait_done`]), so the
//! replies of a pipelining client keep their order. Jobs are taken first come, first
//! served, and a drainer has no connection of its own, so none is starved.
//!
//! Only servers whose connections can be written from another thread use it (plain TCP
//! and Unix sockets); over TLS (the session's state lives with the connection's thread)
//! and with [`grow_batches`](super::ServerBuilder::grow_batches) (the pacer holds each
//! reply on its connection's thread) a batch waits for its permit on its own thread.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use log::{error, warn};

use super::connection::{is_timeout, sent};
use super::{lock, Shared};
use crate::http::codec::{encode_response, Connection};
use crate::http::endpoint::{Refusal, Response};
use crate::http::socket::{time_left, Socket};

/// The queue of jobs and its drainers.
pub(super) struct Jobs {
    state: Mutex<State>,
    /// At most as many drainers as workers: more could only wait for a permit.
    most_drainers: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Drainers parked for want of a job, each woken by the job it is given.
    idle: Vec<Thread>,
    drainers: usize,
    /// The server stops: nothing is queued any more.
    stopped: bool,
}

/// A connection, as its jobs see it: its socket, to write the reply on and to close it,
/// and whether a job of it is outstanding.
pub(super) struct Conn {
    id: u64,
    socket: Arc<Socket>,
    /// The connection's thread, unparked when a job ends while it waits for it.
    thread: Thread,
    /// [`NONE`], [`QUEUED`] or [`WAITED`].
    job: AtomicU8,
    /// A job's reply closed the connection (`Connection: close`, or a failed write).
    closed: AtomicBool,
}

/// No job outstanding.
const NONE: u8 = 0;
/// A job is queued or running.
const QUEUED: u8 = 1;
/// A job is queued or running, and the connection's thread is parked until it ends.
const WAITED: u8 = 2;

/// A batch whose body has arrived, waiting for a worker.
pub(super) struct Job {
    conn: Arc<Conn>,
    body: Vec<u8>,
    /// Bytes of the body memory budget it holds, given back when it ends.
    body_memory: usize,
    /// The request asked to close after it (or was HTTP/1.0 without keep-alive).
    close: bool,
    http10: bool,
}

impl Conn {
    pub(super) fn new(id: u64, socket: Arc<Socket>) -> Self {
        Conn {
            id,
            socket,
            thread: thread::current(),
            job: AtomicU8::new(NONE),
            closed: AtomicBool::new(false),
        }
    }

    /// Whether a job of this connection is queued or running.
    pub(super) fn has_job(&self) -> bool {
        self.job.load(Ordering::Acquire) != NONE
    }

    /// Whether a job's reply closed the connection.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Parks the connection's thread until its job, if any, has written its reply.
    pub(super) fn wait_done(&self) {
        if self
            .job
            .compare_exchange(QUEUED, WAITED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // NONE: done already (WAITED is only ever set here, by this thread).
            return;
        }
        // An unpark before the park is not lost; a park may return for no reason.
        while self.job.load(Ordering::Acquire) != NONE {
            thread::park();
        }
    }

    /// Ends the job: with `close`, shuts the socket down both ways first, so that the
    /// connection's thread, blocked in `read()`, sees the end of the stream. Wakes the
    /// thread only if it waits for the job.
    fn done(&self, close: bool) {
        if close {
            self.closed.store(true, Ordering::Release);
            let _ = self.socket.shutdown(Shutdown::Both);
        }
        // Release: the thread that sees NONE sees the reply written and `closed`.
        if self.job.swap(NONE, Ordering::AcqRel) == WAITED {
            self.thread.unpark();
        }
    }
}

impl Job {
    pub(super) fn new(
        conn: &Arc<Conn>,
        body: Vec<u8>,
        body_memory: usize,
        close: bool,
        http10: bool,
    ) -> Self {
        Job {
            conn: Arc::clone(conn),
            body,
            body_memory,
            close,
            http10,
        }
    }

    /// Writes `response` on the job's connection by `deadline`, counts it, and ends the
    /// job; the connection stays open only for a keep-alive reply written whole while the
    /// server is not stopping.
    fn answer(self, shared: &Shared, response: &Response, close: bool, deadline: Instant) {
        let (bytes, close) = self.encode(shared, response, close);
        let mut written = 0;
        let result = write_from(&self.conn.socket, &bytes, &mut written, deadline);
        self.finish(shared, response.status(), bytes.len(), result, close);
    }

    /// As [`answer`](Self::answer), from a worker thread: it writes for
    /// [`WORKER_WRITE`] at most, and a reply its client has not taken by then is finished
    /// on a thread of its own, by the usual deadline, so that a client that does not read
    /// holds neither the worker nor the batches queued behind it.
    fn answer_from_worker(self, shared: &Arc<Shared>, response: &Response) {
        let started = Instant::now();
        let (bytes, close) = self.encode(shared, response, false);
        let status = response.status();
        let mut written = 0;
        match write_from(
            &self.conn.socket,
            &bytes,
            &mut written,
            started + WORKER_WRITE,
        ) {
            Err(err) if is_timeout(&err) => {}
            result => return self.finish(shared, status, bytes.len(), result, close),
        }
        let rest = Slow {
            job: self,
            bytes,
            written,
            status,
            close,
            deadline: started + shared.read_timeout,
        };
        // Taken by whichever thread finishes it: the new one, or this one if none starts
        // (a failed spawn drops its closure, and the connection would never be answered).
        let rest = Arc::new(Mutex::new(Some(rest)));
        let (for_writer, for_thread) = (Arc::clone(&rest), Arc::clone(shared));
        let spawned = thread::Builder::new()
            .name("statefun-writer".into())
            .stack_size(shared.stack_size)
            .spawn(move || Slow::finish(&for_writer, &for_thread));
        if let Err(err) = spawned {
            warn!("cannot start a thread to finish a slow reply: {err}; finishing it here");
            Slow::finish(&rest, shared);
        }
    }

    /// The reply's bytes, and whether it closes the connection.
    fn encode(&self, shared: &Shared, response: &Response, close: bool) -> (Vec<u8>, bool) {
        let connection = if close || self.close || shared.is_stopping() {
            Connection::Close
        } else if self.http10 {
            Connection::KeepAlive10
        } else {
            Connection::KeepAlive
        };
        let bytes = encode_response(response, connection, true);
        (bytes, connection == Connection::Close)
    }

    /// Counts the reply written (or not: then the connection closes), gives back what the
    /// batch held, and ends the job.
    fn finish(
        self,
        shared: &Shared,
        status: u16,
        len: usize,
        written: io::Result<()>,
        mut close: bool,
    ) {
        match written {
            Ok(()) => sent(shared, status, len),
            Err(err) => {
                warn!("writing a {status} reply failed: {err}");
                close = true;
            }
        }
        // The request's time in flight ends with its reply, as on its own thread.
        #[cfg(feature = "metrics")]
        if let Some(metrics) = shared.metrics() {
            metrics.in_flight.dec();
        }
        drop(self.body);
        shared.body_memory.give_back(self.body_memory);
        // Idle before the job ends: the thread marks itself busy again for its next
        // request, and that must come after this. A stop that began meanwhile did not
        // close this busy connection: it is closed here instead.
        if !close && !shared.set_busy(self.conn.id, false) {
            close = true;
        }
        self.conn.done(close);
    }
}

/// A reply a worker began and a thread of its own finishes: what is left of its bytes, by
/// the usual deadline.
struct Slow {
    job: Job,
    bytes: Vec<u8>,
    written: usize,
    status: u16,
    close: bool,
    deadline: Instant,
}

impl Slow {
    /// Writes the rest of the reply and ends the job, unless another thread took it.
    fn finish(slot: &Mutex<Option<Slow>>, shared: &Shared) {
        let Some(mut slow) = lock(slot).take() else {
            return;
        };
        let result = write_from(
            &slow.job.conn.socket,
            &slow.bytes,
            &mut slow.written,
            slow.deadline,
        );
        (slow.job).finish(shared, slow.status, slow.bytes.len(), result, slow.close);
    }
}

/// How long a worker thread spends writing one reply (see [`Job::answer_from_worker`]):
/// long enough for any reply a reading client takes from its socket buffer, short enough
/// that a client that does not read costs the queue little.
const WORKER_WRITE: Duration = Duration::from_millis(20);

/// Writes `bytes` from `*written` on, by `deadline`, counting in `*written` what went.
fn write_from(
    mut socket: &Socket,
    bytes: &[u8],
    written: &mut usize,
    deadline: Instant,
) -> io::Result<()> {
    while *written < bytes.len() {
        socket.set_write_timeout(Some(time_left(deadline)?))?;
        match socket.write(&bytes[*written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *written += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

impl Jobs {
    pub(super) fn new(workers: usize) -> Self {
        Jobs {
            state: Mutex::new(State::default()),
            most_drainers: workers,
        }
    }

    /// Whether a batch may run on its own thread: nothing is queued. Its permit is taken
    /// with [`Semaphore::try_acquire_leaving`](super::semaphore::Semaphore::try_acquire_leaving)
    /// under this lock, so that it cannot pass a job queued meanwhile.
    pub(super) fn run_inline<R>(&self, take: impl FnOnce() -> Option<R>) -> Option<R> {
        let state = lock(&self.state);
        if state.queue.is_empty() {
            take()
        } else {
            None
        }
    }

    /// Queues `job` for a drainer: an idle one is woken, or, when none is and there are
    /// fewer than workers, a new one starts. If the server has begun to stop, the job is
    /// answered 503 at once, as the stop answers the queued ones. If no drainer can be
    /// started and none exists, the calling thread drains the queue itself until it is
    /// empty, its own job with the others.
    pub(super) fn push(&self, shared: &Arc<Shared>, job: Job) {
        let mut state = lock(&self.state);
        if state.stopped {
            drop(state);
            let deadline = Instant::now() + shared.read_timeout;
            return job.answer(shared, &Refusal::ShuttingDown.response(), true, deadline);
        }
        job.conn.job.store(QUEUED, Ordering::Release);
        state.queue.push_back(job);
        #[cfg(feature = "metrics")]
        if let Some(metrics) = shared.metrics() {
            metrics.waiting.inc();
        }
        if let Some(idle) = state.idle.pop() {
            drop(state);
            idle.unpark();
            return;
        }
        if state.drainers >= self.most_drainers {
            // Every drainer is running: the job's turn comes with no one woken.
            return;
        }
        state.drainers += 1;
        drop(state);
        let for_thread = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("statefun-worker".into())
            .stack_size(shared.stack_size)
            .spawn(move || drain(&for_thread, true));
        if let Err(err) = spawned {
            error!("cannot start a worker thread: {err}; running queued batches on a connection's");
            // Counted as a drainer meanwhile, so that the jobs pushed while it drains
            // count on it; it leaves under the same lock that finds the queue empty.
            drain(shared, false);
        }
    }

    /// The next job; while there is none, parks the drainer (`park`) or has it leave.
    /// `None` once the server stops, or when it leaves.
    fn next(&self, park: bool) -> Option<Job> {
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.queue.pop_front() {
                return Some(job);
            }
            if state.stopped || !park {
                state.drainers -= 1;
                return None;
            }
            let me = thread::current();
            state.idle.push(me.clone());
            drop(state);
            thread::park();
            state = lock(&self.state);
            // Unparked by a push (which took it off `idle`), by the stop, or for no
            // reason: off the list either way, and look again.
            if let Some(at) = state.idle.iter().position(|t| t.id() == me.id()) {
                state.idle.swap_remove(at);
            }
        }
    }

    /// The server stops: every queued job is answered 503 with `Connection: close` at
    /// once, never run, and the idle drainers end; running jobs finish.
    pub(super) fn stop(&self, shared: &Shared) {
        let (queued, idle) = {
            let mut state = lock(&self.state);
            state.stopped = true;
            (
                std::mem::take(&mut state.queue),
                std::mem::take(&mut state.idle),
            )
        };
        for thread in idle {
            thread.unpark();
        }
        if !queued.is_empty() {
            warn!(
                "stopping: {} batches waiting for a worker answered 503",
                queued.len()
            );
        }
        let refusal = Refusal::ShuttingDown.response();
        // A short deadline, as for a refused connection: the stop does not wait on a
        // client that does not read.
        let deadline = Instant::now() + Duration::from_millis(200);
        for job in queued {
            unqueued(shared);
            job.answer(shared, &refusal, true, deadline);
        }
    }
}

/// A drainer: takes a permit for each job, in arrival order, runs it and answers it;
/// parks while there is none (`park`), or leaves.
fn drain(shared: &Arc<Shared>, park: bool) {
    let jobs = shared
        .jobs
        .as_ref()
        .expect("drainers run only with a queue");
    while let Some(job) = jobs.next(park) {
        let permit = shared.permits.acquire_until(1, None);
        unqueued(shared);
        match permit {
            Ok(permit) => {
                let (response, _) = shared.endpoint.handle_batch(&shared.handler, &job.body);
                drop(permit);
                job.answer_from_worker(shared, &response);
            }
            // The server stops: the batch has not started, and goes to another server.
            Err(_) => {
                let deadline = Instant::now() + shared.read_timeout;
                job.answer(shared, &Refusal::ShuttingDown.response(), true, deadline);
            }
        }
    }
}

/// A job has left the queue: it no longer counts as waiting for a worker.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
fn unqueued(shared: &Shared) {
    #[cfg(feature = "metrics")]
    if let Some(metrics) = shared.metrics() {
        metrics.waiting.dec();
    }
}
