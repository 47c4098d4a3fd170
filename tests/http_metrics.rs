//! `GET /metrics` on the crate's server (feature `metrics`), scraped over loopback HTTP:
//! the exact counters after a known sequence of requests, and scrapes that do not hold up
//! a burst of batches. Part of `cargo test` (`metrics` is a default feature).
#![cfg(all(feature = "server", feature = "metrics"))]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use statefun_sync::http::Server;
use statefun_sync::metrics::Metrics;
use statefun_sync::prost::Message as _;
use statefun_sync::proto::reqreply::TypedValue;
use statefun_sync::proto::types::IntWrapper;
use statefun_sync::testing::{v2::Request, v3};
use statefun_sync::{Context, Message, RequestReplyHandler, StatefulFunctions, ValueSpec};
use support::http::{burst, echo_request, handler, metric_value, post, Client};
use support::ping;

/// Sends `request` on a connection of its own with `Connection: close` and reads the
/// whole reply: its status, and its size in bytes as the server wrote it.
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, usize) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let status = std::str::from_utf8(&reply[9..12]).unwrap().parse().unwrap();
    (status, reply.len())
}

/// `post()` with `Connection: close`.
fn post_close(path: &str, body: &[u8]) -> Vec<u8> {
    let request = post(path, body);
    let at = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    let mut with_close = request[..at].to_vec();
    with_close.extend_from_slice(b"Connection: close\r\n");
    with_close.extend_from_slice(&request[at..]);
    with_close
}

const SEEN: ValueSpec<i32> = ValueSpec::named("seen");

/// A 3.x handler: `ex/count` declares the state `seen`.
fn handler3(metrics: &Metrics) -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("ex/count", |ctx: &mut Context, _: Message| {
            let seen = ctx.get(&SEEN)?.unwrap_or(0);
            Ok(ctx.set(&SEEN, &(seen + 1))?)
        })
        .unwrap()
        .state(&SEEN);
    RequestReplyHandler::v3(functions)
        .unwrap()
        .with_metrics(metrics)
}

fn wait_for_no_connections(server: &Server) {
    let until = Instant::now() + Duration::from_secs(10);
    while server.connections() > 0 {
        assert!(Instant::now() < until, "connections stay open");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_scrape_counts_each_request_of_a_known_sequence_exactly() {
    let metrics = Metrics::new();
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .metrics("/metrics", &metrics)
        .start(handler().with_metrics(&metrics))
        .unwrap();
    // 3.x on a second server without the route: its batches count in the same registry,
    // its HTTP requests do not.
    let server3 = Server::builder()
        .bind("127.0.0.1:0")
        .start(handler3(&metrics))
        .unwrap();
    let addr = server.local_addr().unwrap();

    let two = Request::to("test/echo", "a")
        .invoke(ping(1))
        .invoke(ping(2))
        .to_bytes();
    // `test/stateful` sets `seen` to each message: it reads `ping(7)` and writes `ping(2)`.
    let stateful = Request::to("test/stateful", "s")
        .with_state("seen", Some(ping(7)))
        .invoke(ping(1))
        .invoke(ping(2))
        .to_bytes();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (two, 200),
        (echo_request("b", 3), 200),
        (stateful, 200),
        (
            Request::to("test/nobody", "x").invoke(ping(1)).to_bytes(),
            404,
        ),
        (
            Request::to("stranger/x", "y").invoke(ping(1)).to_bytes(),
            404,
        ),
        (
            Request::to("test/fail", "f").invoke(ping(1)).to_bytes(),
            500,
        ),
        (
            Request::to("test/panic", "p").invoke(ping(1)).to_bytes(),
            500,
        ),
        (b"\xff\xff\xff".to_vec(), 400),
    ];
    let (mut received, mut sent) = (0, 0);
    for (body, status) in &cases {
        let request = post_close("/statefun", body);
        let (got, size) = exchange(addr, &request);
        assert_eq!(got, *status);
        received += request.len();
        sent += size;
    }
    // 3.x: a request without the declared state gets the handshake, then one with it.
    let handshake = v3::Request::to("ex/count", "c").invoke(&1_i32).to_bytes();
    let with_state = v3::Request::to("ex/count", "c")
        .with_state(&SEEN, Some(&4))
        .invoke(&1_i32)
        .to_bytes();
    for body in [handshake, with_state] {
        let (got, _) = exchange(
            server3.local_addr().unwrap(),
            &post_close("/statefun", &body),
        );
        assert_eq!(got, 200);
    }
    wait_for_no_connections(&server);

    let scrape = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(scrape).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8(reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{reply}"
    );
    let text = &reply[reply.find("\r\n\r\n").unwrap() + 4..];

    let f = |name: &str, function_type: &str| {
        metric_value(
            text,
            &format!("{name}{{function_type=\"{function_type}\"}}"),
        )
    };
    let error = |function_type: &str, kind: &str, status: u16| {
        metric_value(
            text,
            &format!(
                "statefun_function_errors_total{{function_type=\"{function_type}\",kind=\"{kind}\",status=\"{status}\"}}"
            ),
        )
    };
    // Every bound type has its series from the start, at zero.
    for (function_type, batches, invocations) in [
        ("test/echo", 2.0, 3.0),
        ("test/stateful", 1.0, 2.0),
        ("test/fail", 0.0, 0.0),
        ("ex/count", 1.0, 1.0),
    ] {
        assert_eq!(f("statefun_function_batches_total", function_type), batches);
        assert_eq!(
            f("statefun_function_invocations_total", function_type),
            invocations
        );
        assert_eq!(
            f("statefun_function_batch_size_count", function_type),
            batches
        );
        assert_eq!(
            f("statefun_function_batch_size_sum", function_type),
            invocations
        );
        assert_eq!(
            f("statefun_function_handle_seconds_count", function_type),
            batches
        );
    }
    assert_eq!(
        metric_value(
            text,
            "statefun_function_batch_size_bucket{le=\"1.0\",function_type=\"test/echo\"}"
        ),
        1.0
    );
    // State bytes, as the wire carries the values: on 2.2 the serialized `Any` (34
    // bytes for a `ping`), on 3.x the serialized `TypedValue` (32 bytes for an `int`:
    // its typename, `has_value`, and the value); the handshake reads and writes none.
    let any_len = ping(7).encoded_len() as f64;
    let int_len = |value: i32| {
        TypedValue {
            typename: "io.statefun.types/int".into(),
            has_value: true,
            value: IntWrapper { value }.encode_to_vec().into(),
        }
        .encoded_len() as f64
    };
    assert_eq!((any_len, int_len(4)), (34.0, 32.0));
    let bytes = |function_type: &str| {
        (
            f("statefun_function_state_read_bytes_total", function_type),
            f("statefun_function_state_written_bytes_total", function_type),
        )
    };
    assert_eq!(bytes("test/stateful"), (any_len, any_len));
    assert_eq!(bytes("ex/count"), (int_len(4), int_len(5)));
    // Neither `test/echo`'s requests nor its replies carry states.
    assert_eq!(bytes("test/echo"), (0.0, 0.0));
    assert_eq!(f("statefun_function_handshakes_total", "ex/count"), 1.0);
    assert_eq!(f("statefun_function_handshakes_total", "test/echo"), 0.0);
    assert_eq!(error("unknown", "UnknownFunctionType", 404), 2.0);
    assert_eq!(error("unknown", "MalformedRequest", 400), 1.0);
    assert_eq!(error("test/fail", "FunctionFailed", 500), 1.0);
    assert_eq!(error("test/panic", "FunctionPanicked", 500), 1.0);
    assert_eq!(f("statefun_function_panics_total", "test/panic"), 1.0);
    assert_eq!(f("statefun_function_panics_total", "test/fail"), 0.0);
    assert_eq!(text.matches("statefun_function_errors_total{").count(), 4);
    // A stranger's typenames make no series of their own.
    assert!(
        !text.contains("stranger") && !text.contains("nobody"),
        "{text}"
    );

    let http = |series: &str| metric_value(text, series);
    assert_eq!(http("statefun_http_requests_total{status=\"200\"}"), 3.0);
    assert_eq!(http("statefun_http_requests_total{status=\"404\"}"), 2.0);
    assert_eq!(http("statefun_http_requests_total{status=\"500\"}"), 2.0);
    assert_eq!(http("statefun_http_requests_total{status=\"400\"}"), 1.0);
    // The scrape itself is the one connection and the one request in flight; its head
    // is read, its reply not yet written.
    assert_eq!(http("statefun_http_connections"), 1.0);
    assert_eq!(http("statefun_http_requests_in_flight"), 1.0);
    assert_eq!(http("statefun_http_requests_waiting"), 0.0);
    assert_eq!(
        http("statefun_http_received_bytes_total"),
        (received + scrape.len()) as f64
    );
    assert_eq!(http("statefun_http_sent_bytes_total"), sent as f64);
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn scraping_during_a_burst_does_not_delay_or_refuse_batches() {
    if !support::raise_fd_limit(2 * 256 + 64) {
        return;
    }
    let metrics = Metrics::new();
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .metrics("/metrics", &metrics)
        .start(handler().with_metrics(&metrics))
        .unwrap();
    let addr = server.local_addr().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicUsize::new(0));
    let scraper = {
        let (done, scrapes) = (Arc::clone(&done), Arc::clone(&scrapes));
        thread::spawn(move || {
            let mut client = Client::connect(addr).unwrap();
            while !done.load(Ordering::SeqCst) {
                client
                    .send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                let response = client.read_response().unwrap();
                assert_eq!(response.status, 200);
                assert!(response.text().contains("statefun_function_batches_total"));
                scrapes.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let (answered, reused) = burst(addr, 256, Duration::from_secs(2));
    done.store(true, Ordering::SeqCst);
    scraper.join().unwrap();
    assert_eq!((answered, reused), (256, 256));
    assert!(scrapes.load(Ordering::SeqCst) > 0);
    // A response is counted once written: the shutdown waits for the last ones.
    assert!(server.shutdown());
    let text = metrics.render();
    assert_eq!(
        metric_value(
            &text,
            "statefun_function_batches_total{function_type=\"test/echo\"}"
        ),
        512.0
    );
    assert_eq!(
        metric_value(&text, "statefun_http_requests_total{status=\"200\"}") as usize,
        512 + scrapes.load(Ordering::SeqCst)
    );
}
