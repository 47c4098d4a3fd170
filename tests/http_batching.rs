//! `ServerBuilder::grow_batches` over loopback, against a client that behaves like the
//! runtime: one request in flight per address, the messages that arrive meanwhile queued
//! and sent as that address's next batch. Under a load of many small batches the pace
//! makes them larger; at a low rate nothing is held; no reply waits past the ceiling; and
//! every reply is the handler's own, in order per address.

#![cfg(all(feature = "server", feature = "metrics"))]

mod support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use statefun_sync::http::{BatchGrowth, Server};
use statefun_sync::metrics::Metrics;
use statefun_sync::testing::v3;
use statefun_sync::{Address, Context, Message, RequestReplyHandler, StatefulFunctions, ValueSpec};
use support::http::{metric_value, Client};

const SEEN: ValueSpec<i32> = ValueSpec::named("seen");

/// `test/counter`: counts its messages in `seen` and sends each message's number back to
/// its caller, so a reply shows which messages ran, in which order, after which count.
fn handler() -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/counter", |ctx: &mut Context, message: Message| {
            let seen = ctx.get(&SEEN)?.unwrap_or(0) + 1;
            ctx.set(&SEEN, &seen)?;
            let number: i32 = message.get()?.unwrap_or(-1);
            ctx.reply(&number)?;
            Ok(())
        })
        .unwrap()
        .state(&SEEN);
    RequestReplyHandler::v3(functions).unwrap()
}

fn caller() -> Address {
    Address::new("test", "caller", "c").unwrap()
}

/// A server of `handler()` with metrics, pacing as `growth` says (`None`: off).
fn start(growth: Option<BatchGrowth>) -> (Server, Metrics) {
    let metrics = Metrics::new();
    let builder = Server::builder()
        .bind("127.0.0.1:0")
        .metrics("/metrics", &metrics);
    let builder = match growth {
        Some(growth) => builder.grow_batches(growth),
        None => builder,
    };
    let server = builder.start(handler().with_metrics(&metrics)).unwrap();
    (server, metrics)
}

/// The request for address `id` with state `seen` and the messages `numbers`.
fn batch(id: &str, seen: i32, numbers: &[i32]) -> Vec<u8> {
    let mut request = v3::Request::to("test/counter", id).with_state(&SEEN, Some(&seen));
    for number in numbers {
        request = request.invoke_from(caller(), number);
    }
    request.to_bytes()
}

/// What a runtime-like run saw.
#[derive(Debug, Default)]
struct Run {
    /// Requests sent, and the invocations they carried.
    requests: usize,
    invocations: usize,
    /// The longest time from a request to its reply.
    slowest: Duration,
}

impl Run {
    fn mean_batch(&self) -> f64 {
        self.invocations as f64 / self.requests as f64
    }
}

/// The messages waiting per address, as the runtime queues them while a request for the
/// address is in flight.
struct Queues {
    waiting: Mutex<(Vec<VecDeque<i32>>, bool)>,
    arrived: Condvar,
}

/// Sends `per_ms` messages every millisecond for `duration`, round robin over `addresses`
/// addresses, numbered per address from 1, to the server at `addr`, as the runtime does:
/// each address has one connection and at most one request in flight, and sends all the
/// messages that arrived meanwhile as its next batch. Checks every reply against the
/// handler run locally on the same bytes, and that each address's messages run once, in
/// order, with the count carried from reply to request.
fn run_like_the_runtime(
    addr: SocketAddr,
    addresses: usize,
    per_ms: usize,
    duration: Duration,
) -> Run {
    let queues = Arc::new(Queues {
        waiting: Mutex::new((vec![VecDeque::new(); addresses], false)),
        arrived: Condvar::new(),
    });
    let sent = Arc::new(Mutex::new(Run::default()));
    let workers: Vec<_> = (0..addresses)
        .map(|a| {
            let (queues, sent) = (Arc::clone(&queues), Arc::clone(&sent));
            thread::spawn(move || {
                let local = handler();
                let id = format!("a{a}");
                let mut client = Client::connect(addr).unwrap();
                let mut seen = 0;
                loop {
                    let numbers: Vec<i32> = {
                        let mut waiting = queues.waiting.lock().unwrap();
                        while waiting.0[a].is_empty() && !waiting.1 {
                            waiting = queues.arrived.wait(waiting).unwrap();
                        }
                        if waiting.0[a].is_empty() {
                            return;
                        }
                        waiting.0[a].drain(..).collect()
                    };
                    let request = batch(&id, seen, &numbers);
                    let posted = Instant::now();
                    let response = client.post("/statefun", &request).unwrap();
                    let took = posted.elapsed();
                    assert_eq!(response.status, 200, "{}", response.text());
                    assert_eq!(
                        response.body,
                        local.handle(&request).unwrap(),
                        "the reply of {id} is not the handler's own"
                    );
                    let reply = v3::Reply::decode(&response.body).unwrap();
                    let answered: Vec<i32> = reply
                        .messages()
                        .iter()
                        .map(|m| m.get::<i32>().unwrap())
                        .collect();
                    assert_eq!(answered, numbers, "{id}: the messages that ran");
                    let expected_first = seen + 1;
                    assert_eq!(
                        numbers[0], expected_first,
                        "{id}: a message lost or reordered"
                    );
                    seen = reply.modified(&SEEN).unwrap().unwrap();
                    assert_eq!(seen, numbers[numbers.len() - 1], "{id}: the count");
                    let mut sent = sent.lock().unwrap();
                    sent.requests += 1;
                    sent.invocations += numbers.len();
                    sent.slowest = sent.slowest.max(took);
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut next = vec![1; addresses];
    let mut a = 0;
    let mut tick = started;
    while tick.duration_since(started) < duration {
        {
            let mut waiting = queues.waiting.lock().unwrap();
            for _ in 0..per_ms {
                waiting.0[a].push_back(next[a]);
                next[a] += 1;
                a = (a + 1) % addresses;
            }
        }
        // Every address with messages may be waiting for them.
        queues.arrived.notify_all();
        tick += Duration::from_millis(1);
        thread::sleep(tick.saturating_duration_since(Instant::now()));
    }
    queues.waiting.lock().unwrap().1 = true;
    queues.arrived.notify_all();
    for worker in workers {
        worker.join().unwrap();
    }
    let run = std::mem::take(&mut *sent.lock().unwrap());
    let produced: i32 = next.iter().map(|n| n - 1).sum();
    assert_eq!(run.invocations, produced as usize, "every message ran once");
    run
}

#[test]
fn under_many_small_batches_the_pace_grows_them_and_no_reply_waits_past_the_ceiling() {
    // 32 addresses, 8,000 messages per second: answered at once, the batches stay at one
    // or two messages. Paced at 8,000 / 16 = 500 replies per second, each address's turn
    // comes about every 64 ms, and its batch grows toward 16.
    let (addresses, per_ms, duration) = (32, 8, Duration::from_secs(3));
    let max_hold = Duration::from_millis(200);

    let (server, _) = start(None);
    let unpaced = run_like_the_runtime(server.local_addr().unwrap(), addresses, per_ms, duration);
    drop(server);

    let (server, metrics) = start(Some(BatchGrowth::new(max_hold)));
    let paced = run_like_the_runtime(server.local_addr().unwrap(), addresses, per_ms, duration);
    let text = metrics.render();
    eprintln!(
        "unpaced: {unpaced:?}, mean batch {:.1}; paced: {paced:?}, mean batch {:.1}",
        unpaced.mean_batch(),
        paced.mean_batch()
    );

    assert!(
        paced.mean_batch() >= 6.0 && paced.mean_batch() >= 2.5 * unpaced.mean_batch(),
        "paced {paced:?} (mean {:.1}), unpaced {unpaced:?} (mean {:.1})",
        paced.mean_batch(),
        unpaced.mean_batch()
    );
    // The ceiling: no hold beyond it (and what the client waited in all is the hold, the
    // handler and the loopback, which a loaded machine can stretch).
    let held = metric_value(&text, "statefun_http_batching_hold_seconds_count");
    assert!(held > 0.0, "{text}");
    let within = metric_value(
        &text,
        "statefun_http_batching_hold_seconds_bucket{le=\"0.4096\"}",
    );
    assert_eq!(within, held, "holds past twice the ceiling:\n{text}");
    let mean_hold = metric_value(&text, "statefun_http_batching_hold_seconds_sum") / held;
    assert!(
        mean_hold <= max_hold.as_secs_f64() * 1.05,
        "mean hold {mean_hold} s"
    );
    assert!(paced.slowest < Duration::from_secs(5), "{paced:?}");
    // The held batches are the paced ones: counted with their sizes.
    let held_batches = metric_value(&text, "statefun_http_batching_held_batch_size_count");
    assert_eq!(held_batches, held);
    let pace = metric_value(&text, "statefun_http_batching_pace");
    assert!(
        pace >= 200.0,
        "the pace never falls under its minimum: {pace}"
    );
}

/// The median of `samples`.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `count` requests of one message each to one address, `gap` apart, on one keep-alive
/// connection: each one's time from request to reply.
fn single_requests(addr: SocketAddr, count: i32, gap: Duration) -> Vec<Duration> {
    let mut client = Client::connect(addr).unwrap();
    (1..=count)
        .map(|n| {
            let request = batch("low", n - 1, &[n]);
            let posted = Instant::now();
            let response = client.post("/statefun", &request).unwrap();
            let took = posted.elapsed();
            assert_eq!(response.status, 200);
            thread::sleep(gap);
            took
        })
        .collect()
}

#[test]
fn at_a_low_rate_nothing_is_held() {
    // 100 requests per second at most: under the minimum pace of 200.
    let gap = Duration::from_millis(10);
    let (server, _) = start(None);
    let before = median(single_requests(server.local_addr().unwrap(), 300, gap));
    drop(server);
    let (server, metrics) = start(Some(BatchGrowth::new(Duration::from_secs(1))));
    let after = median(single_requests(server.local_addr().unwrap(), 300, gap));
    let text = metrics.render();

    assert_eq!(
        metric_value(&text, "statefun_http_batching_hold_seconds_count"),
        0.0,
        "{text}"
    );
    // Nothing held, so the median is the unpaced one's, give or take the machine's noise.
    assert!(
        after < before + Duration::from_millis(2),
        "p50 {after:?} paced, {before:?} unpaced"
    );
}

/// A pace of one reply per second: after the burst (a second's worth, and the one due
/// now), every reply waits for its turn, or for `max_hold`.
fn slow(max_hold: Duration) -> BatchGrowth {
    BatchGrowth::new(max_hold)
        .with_min_pace(1)
        .with_target_batch(u32::MAX)
}

/// Sends address `x` the two batches whose replies the burst of a [`slow`] pace lets
/// through at once, and checks they are answered: after them every reply waits its turn.
fn pass_the_burst(client: &mut Client) {
    for n in 1..=2 {
        let response = client.post("/statefun", &batch("x", n - 1, &[n])).unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
    }
}

#[test]
fn a_reply_is_held_no_longer_than_the_ceiling() {
    let max_hold = Duration::from_millis(50);
    let (server, metrics) = start(Some(slow(max_hold)));
    let times = single_requests(server.local_addr().unwrap(), 12, Duration::ZERO);
    let text = metrics.render();

    assert!(times[..2].iter().all(|t| *t < max_hold), "{times:?}");
    // Beyond the burst each reply would wait a second for its turn: it leaves at the
    // ceiling instead.
    for took in &times[2..] {
        assert!(*took >= max_hold, "{times:?}");
        assert!(*took < Duration::from_secs(1), "{times:?}");
    }
    assert_eq!(
        metric_value(&text, "statefun_http_batching_hold_seconds_count"),
        10.0
    );
    let within = metric_value(
        &text,
        "statefun_http_batching_hold_seconds_bucket{le=\"0.1024\"}",
    );
    assert_eq!(within, 10.0, "{text}");
}

#[test]
fn handshakes_errors_and_routes_are_not_held() {
    let (server, metrics) = start(Some(slow(Duration::from_secs(60))));
    let mut client = Client::to(&server);
    // The burst: two replies pass; from now on every batch's reply would wait.
    pass_the_burst(&mut client);
    let started = Instant::now();
    let handshake = v3::Request::to("test/counter", "x")
        .invoke_from(caller(), &1i32)
        .to_bytes();
    let response = client.post("/statefun", &handshake).unwrap();
    assert!(v3::Reply::decode(&response.body)
        .unwrap()
        .missing_states()
        .is_some());
    assert_eq!(client.post("/statefun", &[0xff]).unwrap().status, 400);
    let unknown = v3::Request::to("test/nobody", "1").invoke(&1i32).to_bytes();
    assert_eq!(client.post("/statefun", &unknown).unwrap().status, 404);
    let scrape = client
        .send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .and_then(|()| client.read_response())
        .unwrap();
    assert_eq!(scrape.status, 200);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        metric_value(
            &metrics.render(),
            "statefun_http_batching_hold_seconds_count"
        ),
        0.0
    );
}

#[test]
fn a_stop_lets_a_held_reply_leave_at_once() {
    let (server, _) = start(Some(slow(Duration::from_secs(60))));
    let addr = server.local_addr().unwrap();
    let mut client = Client::connect(addr).unwrap();
    pass_the_burst(&mut client);
    // Measured from before the thread starts, so that the held reply's wait counts the
    // whole 200 ms before the stop, however late the thread gets to post.
    let posted = Instant::now();
    let held = thread::spawn(move || {
        let response = client.post("/statefun", &batch("x", 2, &[3])).unwrap();
        (response, posted.elapsed())
    });
    thread::sleep(Duration::from_millis(200));
    let stopped = Instant::now();
    assert!(server.shutdown(), "the held request finished in time");
    assert!(stopped.elapsed() < Duration::from_secs(10));

    let (response, took) = held.join().unwrap();
    assert_eq!(response.status, 200);
    assert!(
        response.closes(),
        "the reply after the stop closes the connection"
    );
    let reply = v3::Reply::decode(&response.body).unwrap();
    assert_eq!(reply.modified(&SEEN).unwrap(), Some(3));
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

#[test]
fn a_held_reply_takes_no_worker() {
    // One worker, a pace of one reply per second: the third reply is held for its turn, a
    // second after it was made. If it kept the worker meanwhile, the handshake below would
    // wait for that second, and come back after the held reply.
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .grow_batches(slow(Duration::from_secs(60)))
        .start(handler())
        .unwrap();
    let addr = server.local_addr().unwrap();
    let mut client = Client::connect(addr).unwrap();
    pass_the_burst(&mut client);
    let held = thread::spawn(move || client.post("/statefun", &batch("x", 2, &[3])).unwrap());
    thread::sleep(Duration::from_millis(50));
    assert!(!held.is_finished(), "the third reply is held");

    let handshake = v3::Request::to("test/counter", "y")
        .invoke_from(caller(), &1i32)
        .to_bytes();
    let response = Client::connect(addr)
        .unwrap()
        .post("/statefun", &handshake)
        .unwrap();
    assert!(v3::Reply::decode(&response.body)
        .unwrap()
        .missing_states()
        .is_some());
    assert!(
        !held.is_finished(),
        "the handshake came back while the reply was held"
    );

    server.shutdown();
    assert_eq!(held.join().unwrap().status, 200);
}

/// The pace is the server's, not the protocol's: a 2.2 handler's replies are held the
/// same way, and leave unchanged.
#[test]
fn a_2_2_reply_is_held_as_a_3x_one_and_leaves_unchanged() {
    // `test/echo` (2.2) replies with the message it got.
    let echo = || {
        let mut functions = StatefulFunctions::new();
        functions
            .bind(
                "test/echo",
                |ctx: &mut Context, message: prost_types::Any| Ok(ctx.reply(message)?),
            )
            .unwrap();
        RequestReplyHandler::v2(functions)
    };
    let handler = echo();
    let metrics = Metrics::new();
    let max_hold = Duration::from_millis(50);
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .metrics("/metrics", &metrics)
        .grow_batches(slow(max_hold))
        .start(echo().with_metrics(&metrics))
        .unwrap();
    let mut client = Client::to(&server);
    let mut took = Vec::new();
    for n in 0..4u8 {
        let request = statefun_sync::testing::v2::Request::to("test/echo", "1")
            .invoke_from(
                caller(),
                prost_types::Any {
                    type_url: "type.googleapis.com/test.N".into(),
                    value: vec![n],
                },
            )
            .to_bytes();
        let start = Instant::now();
        let response = client.post("/statefun", &request).unwrap();
        took.push(start.elapsed());
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.body, handler.handle(&request).unwrap());
    }

    // The burst passes; the rest are held until the ceiling.
    assert!(took[2..].iter().all(|t| *t >= max_hold), "{took:?}");
    assert_eq!(
        metric_value(
            &metrics.render(),
            "statefun_http_batching_hold_seconds_count"
        ),
        2.0
    );
}
