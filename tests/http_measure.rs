//! Measurements, not tests: the burst and idle-connection figures of `serve()`'s server
//! and of the tiny_http adapter, side by side. Ignored by default; run with
//!
//! ```text
//! cargo test --release --test http_measure -- --ignored --nocapture --test-threads 1
//! ```
#![cfg(all(feature = "server", feature = "tiny-http"))]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use statefun_sync::http::Server;
use support::http::{burst, echo_request, handler, Client, TinyServer};
use support::raise_fd_limit;

const RUNS: usize = 5;
/// Open files at once: both ends of the 1,024 idle connections, and some to spare.
const IDLE_FILES: u64 = 2 * 1024 + 64;
const WITHIN: Duration = Duration::from_secs(3);

/// `start` returns a fresh server's address and the server, which stops when dropped.
fn bursts(name: &str, start: &dyn Fn() -> (SocketAddr, Box<dyn std::any::Any>)) {
    for count in [16, 256] {
        let mut answered = Vec::new();
        for _ in 0..RUNS {
            let (addr, server) = start();
            answered.push(burst(addr, count, WITHIN).0);
            drop(server);
        }
        println!("{name}: bursts of {count} new keep-alive connections, answered within {WITHIN:?} over {RUNS} fresh servers: {answered:?}");
    }
}

/// Holds `idle` keep-alive connections (each answered once), then times 20 new clients.
fn idle(name: &str, addr: SocketAddr) {
    let request = echo_request("idle", 1);
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..1024 {
        let Ok(mut client) = Client::connect(addr) else {
            break;
        };
        if client
            .post("/statefun", &request)
            .is_ok_and(|r| r.status == 200)
        {
            held.push(client);
        }
    }
    let opened = started.elapsed();
    let mut slowest = Duration::ZERO;
    let mut answered = 0;
    for n in 0..20 {
        let started = Instant::now();
        let fresh = echo_request("fresh", n);
        if let Ok(mut client) = Client::connect(addr) {
            if client
                .post("/statefun", &fresh)
                .is_ok_and(|r| r.status == 200)
            {
                answered += 1;
            }
        }
        slowest = slowest.max(started.elapsed());
    }
    println!(
        "{name}: {} idle keep-alive connections opened in {opened:?}; then {answered}/20 new clients answered, slowest in {slowest:?}; RSS {}",
        held.len(),
        rss()
    );
}

/// Sequential requests on one keep-alive connection, then 8 connections at once.
fn round_trips(name: &str, addr: SocketAddr) {
    let request = echo_request("rt", 1);
    let mut client = Client::connect(addr).unwrap();
    let started = Instant::now();
    for _ in 0..5000 {
        assert_eq!(client.post("/statefun", &request).unwrap().status, 200);
    }
    let one = started.elapsed() / 5000;
    let started = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(addr).unwrap();
                for _ in 0..2000 {
                    assert_eq!(client.post("/statefun", &request).unwrap().status, 200);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let per_second = 16_000.0 / started.elapsed().as_secs_f64();
    println!("{name}: one keep-alive connection: {one:?} per request; 8 connections: {per_second:.0} requests/s");
}

fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .map(|l| l[6..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn measure_serve() {
    if !raise_fd_limit(IDLE_FILES) {
        return;
    }
    bursts("serve()", &|| {
        let server = Server::builder()
            .bind("127.0.0.1:0")
            .start(handler())
            .unwrap();
        (server.local_addr().unwrap(), Box::new(server))
    });
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .start(handler())
        .unwrap();
    round_trips("serve()", server.local_addr().unwrap());
    idle("serve()", server.local_addr().unwrap());
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn measure_tiny_http_adapter() {
    if !raise_fd_limit(IDLE_FILES) {
        return;
    }
    bursts("tiny_http adapter (4 recv threads)", &|| {
        let server = TinyServer::start(handler(), 4);
        (server.addr, Box::new(server))
    });
    let server = TinyServer::start(handler(), 4);
    round_trips("tiny_http adapter (4 recv threads)", server.addr);
    idle("tiny_http adapter (4 recv threads)", server.addr);
}
