//! `ServerBuilder::stop_on_signals`, in this test process: SIGTERM stops the server
//! gracefully, a second signal ends the wait at once. One test, because signal handlers
//! belong to the whole process (a signal raised while no server watches would end it).
#![cfg(all(unix, feature = "server"))]

mod support;

use std::net::TcpStream;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::low_level::raise;
use statefun_sync::http::Server;
use statefun_sync::testing::v2::Request;
use statefun_sync::RequestReplyHandler;
use statefun_sync::StatefulFunctions;
use support::http::{echo_request, handler, post, Client};
use support::ping;

/// Joins `server` on a thread of its own; the receiver gets a message when `join` returns.
fn joined(server: &Arc<Server>) -> mpsc::Receiver<()> {
    let (done, joined) = mpsc::channel();
    let server = Arc::clone(server);
    thread::spawn(move || {
        server.join();
        let _ = done.send(());
    });
    joined
}

fn wait_not_ready(server: &Server) {
    let started = Instant::now();
    while server.is_ready() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no shutdown began"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigterm_stops_gracefully_and_a_second_signal_stops_at_once() {
    // 1. SIGTERM: the request in flight (test/slow, 300 ms) is answered whole, the idle
    // connection is closed, new ones are refused, and join() returns.
    let server = Arc::new(
        Server::builder()
            .bind("127.0.0.1:0")
            .ready("/ready")
            .stop_on_signals()
            .start(handler())
            .unwrap(),
    );
    let addr = server.local_addr().unwrap();
    let joined_first = joined(&server);
    let mut idle = Client::connect(addr).unwrap();
    let warm = echo_request("idle", 1);
    assert_eq!(idle.post("/statefun", &warm).unwrap().status, 200);
    let slow = Request::to("test/slow", "1").invoke(ping(9)).to_bytes();
    let mut busy = Client::connect(addr).unwrap();
    busy.send(&post("/statefun", &slow)).unwrap();
    thread::sleep(Duration::from_millis(100)); // the function is now sleeping

    raise(SIGTERM).unwrap();
    wait_not_ready(&server);
    let response = busy.read_response().unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.body, handler().handle(&slow).unwrap());
    assert!(response.closes());
    assert!(idle.is_closed_by_server(Duration::from_secs(5)));
    joined_first
        .recv_timeout(Duration::from_secs(5))
        .expect("join() returned after SIGTERM");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_err());
    assert!(
        server.shutdown(),
        "the signal's shutdown saw every request answered"
    );

    // 2. A function that takes 30 s, a shutdown timeout of 60 s: SIGTERM starts the
    // shutdown, SIGINT ends its wait, and join() returns long before either.
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/stuck", |_, _| {
            thread::sleep(Duration::from_secs(30));
            Ok(())
        })
        .unwrap();
    let server = Arc::new(
        Server::builder()
            .bind("127.0.0.1:0")
            .shutdown_timeout(Duration::from_secs(60))
            .stop_on_signals()
            .start(RequestReplyHandler::v2(functions))
            .unwrap(),
    );
    let joined_second = joined(&server);
    let mut stuck = Client::to(&server);
    let request = Request::to("test/stuck", "1").invoke(ping(1)).to_bytes();
    stuck.send(&post("/statefun", &request)).unwrap();
    thread::sleep(Duration::from_millis(100)); // the function is now sleeping
    let started = Instant::now();
    raise(SIGTERM).unwrap();
    wait_not_ready(&server);
    assert!(
        joined_second
            .recv_timeout(Duration::from_millis(300))
            .is_err(),
        "join() returned while the shutdown waits for the request in flight"
    );
    raise(SIGINT).unwrap();
    joined_second
        .recv_timeout(Duration::from_secs(5))
        .expect("join() returned after the second signal");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!server.shutdown(), "the request in flight was abandoned");
}
