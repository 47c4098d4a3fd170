//! `ServerBuilder::workers` over real loopback: batches that find no worker free are
//! queued and run by worker threads, and every connection still gets its replies whole,
//! in order, and closed when it asks.
//!
//! `test/gate` (support::http::gated_handler) holds the one worker for as long as a test
//! needs, so that the batches sent meanwhile queue; `statefun_http_requests_waiting` tells
//! when they have.

#![cfg(all(feature = "server", feature = "metrics"))]

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use statefun_sync::http::Server;
use statefun_sync::metrics::Metrics;
use statefun_sync::testing::v2::Request;
use statefun_sync::RequestReplyHandler;
use support::http::{
    assert_reply, echo_request, functions, gate_request, gated_handler, handler, post,
    wait_for_metric, Client, Gate,
};
use support::ping;

const WAITING: &str = "statefun_http_requests_waiting";

/// A server of `handler` at `workers(1)`, with `/metrics`.
fn one_worker(handler: RequestReplyHandler) -> Server {
    Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .metrics("/metrics", &Metrics::new())
        .start(handler)
        .unwrap()
}

/// A connection whose `test/gate` batch holds the one worker until the gate opens.
fn hold_the_worker(addr: SocketAddr, gate: &Gate) -> Client {
    let mut running = Client::connect(addr).unwrap();
    running.send(&post("/statefun", &gate_request())).unwrap();
    gate.wait_entered();
    running
}

// Half the connections send one request at a time, the other half pipeline all of theirs
// in one write: each reply is the handler's reply to that connection's request, in order.
// (It passes without the queue too; it checks the queue keeps what waiting in place kept.)
#[test]
fn at_one_worker_many_connections_each_get_their_own_replies_in_order() {
    const CONNECTIONS: usize = 48;
    const REQUESTS: u8 = 12;
    let server = Arc::new(one_worker(handler()));
    let addr = server.local_addr().unwrap();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            thread::spawn(move || {
                let mut client = Client::connect(addr).unwrap();
                let requests: Vec<_> = (0..REQUESTS)
                    .map(|i| echo_request(&format!("c{c}"), i))
                    .collect();
                if c % 2 == 0 {
                    for request in &requests {
                        let response = client.post("/statefun", request).unwrap();
                        assert_reply(&response, request);
                    }
                } else {
                    let wire: Vec<u8> =
                        requests.iter().flat_map(|r| post("/statefun", r)).collect();
                    client.send(&wire).unwrap();
                    for request in &requests {
                        assert_reply(&client.read_response().unwrap(), request);
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
}

// The connection's thread reads no next request while its batch is queued: the first of
// the three waits, the two behind it stay unread (one waiting, not three), and the
// replies come in the order of the requests.
#[test]
fn a_pipelining_client_whose_batch_is_queued_gets_its_replies_in_order() {
    let (handler, gate) = gated_handler();
    let server = one_worker(handler);
    let addr = server.local_addr().unwrap();
    let mut running = hold_the_worker(addr, &gate);
    let requests: Vec<_> = (1..=3).map(|i| echo_request("p", i)).collect();
    let mut pipelining = Client::connect(addr).unwrap();
    let wire: Vec<u8> = requests.iter().flat_map(|r| post("/statefun", r)).collect();
    pipelining.send(&wire).unwrap();

    wait_for_metric(addr, "/metrics", WAITING, 1.0);
    thread::sleep(Duration::from_millis(100));
    wait_for_metric(addr, "/metrics", WAITING, 1.0);
    gate.open();

    assert_eq!(running.read_response().unwrap().status, 200);
    for request in &requests {
        let response = pipelining.read_response().unwrap();
        assert_reply(&response, request);
        assert!(!response.closes());
    }
}

// The stop answers the batches that only wait at once, before the running one ends.
#[test]
fn a_stop_answers_every_queued_batch_503_at_once_and_the_running_one_finishes() {
    let (handler, gate) = gated_handler();
    let server = Arc::new(one_worker(handler));
    let addr = server.local_addr().unwrap();
    let mut running = hold_the_worker(addr, &gate);
    let mut queued: Vec<_> = (0..6)
        .map(|i| {
            let mut client = Client::connect(addr).unwrap();
            client
                .send(&post("/statefun", &echo_request("q", i)))
                .unwrap();
            client
        })
        .collect();
    wait_for_metric(addr, "/metrics", WAITING, 6.0);

    let stopper = {
        let server = Arc::clone(&server);
        thread::spawn(move || server.shutdown())
    };
    for client in &mut queued {
        let response = client.read_response().unwrap();
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(response.closes());
        assert!(
            response.text().contains("shutting down"),
            "{}",
            response.text()
        );
        let mut byte = [0];
        assert_eq!(client.stream.read(&mut byte).unwrap(), 0, "closed after it");
    }
    gate.open();

    let response = running.read_response().unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.closes());
    assert!(stopper.join().unwrap(), "every connection finished in time");
}

// The worker that answers a queued `Connection: close` request closes the connection:
// without the socket's shutdown, the connection's thread would keep it open in `read()`
// and the client would wait for the end of the stream until its timeout.
#[test]
fn a_queued_request_with_connection_close_is_answered_and_its_connection_closed() {
    let (handler, gate) = gated_handler();
    let server = one_worker(handler);
    let addr = server.local_addr().unwrap();
    let mut running = hold_the_worker(addr, &gate);
    let request = echo_request("c", 1);
    let mut wire = format!(
        "POST /statefun HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        request.len()
    )
    .into_bytes();
    wire.extend_from_slice(&request);
    let mut closing = Client::connect(addr).unwrap();
    closing.send(&wire).unwrap();
    wait_for_metric(addr, "/metrics", WAITING, 1.0);
    gate.open();

    assert_eq!(running.read_response().unwrap().status, 200);
    let response = closing.read_response().unwrap();
    assert_reply(&response, &request);
    assert!(response.closes());
    closing
        .stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0];
    assert_eq!(
        closing.stream.read(&mut byte).unwrap(),
        0,
        "closed after it"
    );
    // The connection is gone from the server's count too (the scrape's own is left).
    wait_for_metric(addr, "/metrics", "statefun_http_connections", 2.0);
}

// The mechanism itself: a batch that finds the worker free runs on its connection's
// thread, as before; the ones that find it busy run on a worker thread, while their
// connections' threads are back in `read()`. Without the queue all ran on
// `statefun-http` threads, the waiting ones after a park and a wake each.
#[test]
fn batches_that_wait_for_a_worker_run_on_worker_threads() {
    let (tell, ran_on) = mpsc::channel();
    let tell = Mutex::new(tell);
    let (entered, has_entered) = mpsc::channel();
    let (open, wait_for_open) = mpsc::channel::<()>();
    let wait_for_open = Mutex::new(wait_for_open);
    let mut functions = functions();
    functions
        .bind("test/where", move |_, _| {
            let name = thread::current().name().unwrap_or("").to_owned();
            tell.lock().unwrap().send(name).unwrap();
            Ok(())
        })
        .unwrap();
    functions
        .bind("test/hold", move |_, _| {
            entered.send(()).unwrap();
            let _ = wait_for_open.lock().unwrap().recv();
            Ok(())
        })
        .unwrap();
    let server = one_worker(RequestReplyHandler::v2(functions));
    let addr = server.local_addr().unwrap();
    let where_request = |i| Request::to("test/where", "w").invoke(ping(i)).to_bytes();

    let mut alone = Client::connect(addr).unwrap();
    assert_eq!(
        alone.post("/statefun", &where_request(0)).unwrap().status,
        200
    );
    assert_eq!(
        ran_on.recv().unwrap(),
        "statefun-http",
        "a free worker: on its own thread"
    );

    let mut running = Client::connect(addr).unwrap();
    let hold = Request::to("test/hold", "h").invoke(ping(0)).to_bytes();
    running.send(&post("/statefun", &hold)).unwrap();
    has_entered.recv().unwrap();
    let mut queued: Vec<_> = (1..=4)
        .map(|i| {
            let mut client = Client::connect(addr).unwrap();
            client.send(&post("/statefun", &where_request(i))).unwrap();
            client
        })
        .collect();
    wait_for_metric(addr, "/metrics", WAITING, 4.0);
    drop(open);

    assert_eq!(running.read_response().unwrap().status, 200);
    for client in &mut queued {
        assert_eq!(client.read_response().unwrap().status, 200);
    }
    let names: Vec<String> = ran_on.try_iter().collect();
    assert_eq!(names, ["statefun-worker"; 4], "the queued batches");
}

// A client that does not read its reply holds no worker: the worker writes a reply for a
// moment, then leaves the rest to a thread of its own and runs the next batch. Without
// that, the fast client's batch would wait for the slow one's write, until the read
// timeout (30 s).
#[test]
fn a_client_that_does_not_read_its_reply_holds_up_no_other_batch() {
    let (handler, gate) = gated_handler();
    let server = one_worker(handler);
    let addr = server.local_addr().unwrap();
    let running = hold_the_worker(addr, &gate);
    // 16 MiB echoed back: more than loopback's socket buffers hold.
    let big = prost_types::Any {
        type_url: "test/Big".into(),
        value: vec![7; 16 << 20],
    };
    let slow_request = Request::to("test/echo", "slow").invoke(big).to_bytes();
    let mut slow = Client::connect(addr).unwrap();
    slow.send(&post("/statefun", &slow_request)).unwrap();
    wait_for_metric(addr, "/metrics", WAITING, 1.0);
    let fast_request = echo_request("fast", 1);
    let mut fast = Client::connect(addr).unwrap();
    fast.send(&post("/statefun", &fast_request)).unwrap();
    wait_for_metric(addr, "/metrics", WAITING, 2.0);

    let opened = std::time::Instant::now();
    gate.open();
    let response = fast.read_response().unwrap();
    assert_reply(&response, &fast_request);
    assert!(
        opened.elapsed() < Duration::from_secs(10),
        "the fast batch waited {:?} behind a reply nobody read",
        opened.elapsed()
    );
    // The slow reply, finished on its own thread, is whole.
    assert_reply(&slow.read_response().unwrap(), &slow_request);
    drop(running);
}
