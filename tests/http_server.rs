//! `serve()`'s server over real loopback HTTP, with the client in `support::http`.

#![cfg(feature = "server")]

mod support;

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::Duration;

use statefun_sync::http::Server;
use statefun_sync::testing::v2::Request;
use support::http::{
    assert_body_over_limit_is_413, assert_every_error_case, assert_reply,
    assert_shutdown_answers_the_request_in_flight, burst, chunked, echo_request, gate_request,
    gated_handler, handler, post, Client,
};
use support::{ping, raise_fd_limit};

fn start() -> Server {
    start_with(Server::builder())
}

fn start_with(builder: statefun_sync::http::ServerBuilder) -> Server {
    builder.bind("127.0.0.1:0").start(handler()).unwrap()
}

#[test]
fn a_post_gets_200_exactly_octet_stream_and_the_handlers_reply() {
    let server = start();
    let mut client = Client::to(&server);
    let request = echo_request("alice", 1);

    let response = client.post("/statefun", &request).unwrap();

    assert_reply(&response, &request);
    assert!(!response.closes());
}

#[test]
fn every_error_has_its_status_a_bounded_text_body_and_the_connection_keeps_serving() {
    let server = start();
    let mut client = Client::to(&server);
    assert_every_error_case(&mut client);
}

#[test]
fn a_head_request_gets_a_405_without_a_body_and_an_absolute_target_is_served() {
    let server = start();
    let mut client = Client::to(&server);
    client
        .send(b"HEAD /statefun HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        std::io::Read::read_exact(&mut client.stream, &mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 405 "),
        "{}",
        String::from_utf8_lossy(&head)
    );

    // Had the 405 carried a body, it would be read here as the next response's head.
    let request = echo_request("absolute", 1);
    let response = client
        .post("http://localhost:8000/statefun", &request)
        .unwrap();
    assert_reply(&response, &request);
}

#[test]
fn a_panicking_function_is_a_500_and_later_requests_are_served() {
    let server = start();
    let panics = Request::to("test/panic", "1").invoke(ping(1)).to_bytes();
    for round in 0..3 {
        let mut client = Client::to(&server);
        assert_eq!(client.post("/statefun", &panics).unwrap().status, 500);
        let good = echo_request("x", round);
        assert_reply(&client.post("/statefun", &good).unwrap(), &good);
    }
}

#[test]
fn a_body_over_the_limit_is_a_413_without_reading_it_and_the_server_goes_on() {
    let server = start_with(Server::builder().max_body_size(1000));
    assert_body_over_limit_is_413(server.local_addr().unwrap(), "/statefun", 1000, true);

    let fits = echo_request("fits", 1);
    let mut client = Client::to(&server);
    assert_reply(&client.post("/statefun", &fits).unwrap(), &fits);
}

#[test]
fn a_refused_request_announcing_a_huge_body_is_answered_at_once_and_closed() {
    let server = start();
    let mut client = Client::to(&server);
    client
        .send(b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n")
        .unwrap();

    let response = client.read_response().unwrap();

    assert_eq!(response.status, 404, "{}", response.text());
    assert!(response.closes());
}

#[test]
fn a_chunked_body_with_extensions_and_trailers_is_read() {
    let server = start();
    let mut client = Client::to(&server);
    let request = Request::to("test/echo", "chunky")
        .invoke(ping(1))
        .invoke(ping(2))
        .to_bytes();
    let mut bytes =
        b"POST /statefun HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
                      Transfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    bytes.extend(chunked(&request, 5, true));

    for _ in 0..2 {
        client.send(&bytes).unwrap();
        assert_reply(&client.read_response().unwrap(), &request);
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = start();
    let mut client = Client::to(&server);
    let requests: Vec<Vec<u8>> = (0..5).map(|n| echo_request("pipe", n)).collect();
    let all: Vec<u8> = requests.iter().flat_map(|r| post("/statefun", r)).collect();

    client.send(&all).unwrap();

    for request in &requests {
        assert_reply(&client.read_response().unwrap(), request);
    }
}

#[test]
fn connection_close_and_http_1_0_close_after_the_reply() {
    let server = start();
    let request = echo_request("c", 1);
    let heads = [
        "POST /statefun HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
        "POST /statefun HTTP/1.0\r\n",
    ];
    for head in heads {
        let mut client = Client::to(&server);
        let mut bytes = format!("{head}Content-Length: {}\r\n\r\n", request.len()).into_bytes();
        bytes.extend_from_slice(&request);
        client.send(&bytes).unwrap();

        let response = client.read_response().unwrap();

        assert_reply(&response, &request);
        assert!(response.closes(), "{head:?}");
        assert!(
            client.is_closed_by_server(Duration::from_secs(10)),
            "{head:?}"
        );
    }
}

#[test]
fn http_1_0_with_keep_alive_keeps_the_connection() {
    let server = start();
    let request = echo_request("ten", 1);
    let mut bytes = format!(
        "POST /statefun HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n",
        request.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&request);
    let mut client = Client::to(&server);

    for _ in 0..2 {
        client.send(&bytes).unwrap();
        let response = client.read_response().unwrap();
        assert_reply(&response, &request);
        assert_eq!(response.header("Connection"), Some("keep-alive"));
    }
}

#[test]
fn expect_100_continue_gets_an_interim_response_before_the_body() {
    let server = start();
    let request = echo_request("curl", 1);
    let mut client = Client::to(&server);
    client
        .send(
            format!(
                "POST /statefun HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
                 Content-Length: {}\r\n\r\n",
                request.len()
            )
            .as_bytes(),
        )
        .unwrap();

    let mut interim = Vec::new();
    let mut byte = [0];
    while !interim.ends_with(b"\r\n\r\n") {
        std::io::Read::read_exact(&mut client.stream, &mut byte).unwrap();
        interim.push(byte[0]);
    }
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.send(&request).unwrap();
    assert_reply(&client.read_response().unwrap(), &request);
}

#[test]
fn ambiguous_or_broken_framing_is_refused_and_the_connection_closed() {
    let server = start();
    let cases: [(&[u8], u16); 6] = [
        (
            b"POST /statefun HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /statefun HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
        (b"POST /statefun HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (
            b"POST /statefun HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
        (b"POST /statefun HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (
            b"POST /statefun HTTP/1.1\r\nTransfer-Encoding: ,\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
    ];
    for (request, status) in cases {
        let shown = String::from_utf8_lossy(request);
        let mut client = Client::to(&server);
        client.send(request).unwrap();

        let response = client.read_response().unwrap();

        assert_eq!(response.status, status, "{shown:?}: {}", response.text());
        assert!(response.closes(), "{shown:?}");
        assert!(
            client.is_closed_by_server(Duration::from_secs(10)),
            "{shown:?}"
        );
    }
}

#[test]
fn a_request_that_stalls_gets_a_408_and_an_idle_connection_is_closed() {
    let server = start_with(
        Server::builder()
            .read_timeout(Duration::from_millis(300))
            .idle_timeout(Duration::from_millis(300)),
    );
    let mut stalled = Client::to(&server);
    stalled
        .send(b"POST /statefun HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let response = stalled.read_response().unwrap();
    assert_eq!(response.status, 408, "{}", response.text());

    let mut idle = Client::to(&server);
    let request = echo_request("idle", 1);
    assert_reply(&idle.post("/statefun", &request).unwrap(), &request);
    assert!(idle.is_closed_by_server(Duration::from_secs(10)));
}

#[test]
fn a_new_connection_that_never_speaks_is_closed_after_the_read_timeout() {
    // The idle timeout is an hour: only the read timeout can close this connection.
    let server = start_with(
        Server::builder()
            .read_timeout(Duration::from_millis(300))
            .idle_timeout(Duration::from_secs(3600)),
    );
    let mut silent = Client::to(&server);
    assert!(silent.is_closed_by_server(Duration::from_secs(10)));
}

#[test]
fn concurrent_clients_each_get_their_own_reply() {
    let server = start();
    let addr = server.local_addr().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            thread::spawn(move || {
                let handler = handler();
                let mut client = Client::connect(addr).unwrap();
                for n in 0..60u8 {
                    if n % 20 == 0 {
                        client = Client::connect(addr).unwrap();
                    }
                    let request = echo_request(&format!("client-{t}"), n);
                    let response = client.post("/statefun", &request).unwrap();
                    assert_eq!(response.status, 200);
                    assert_eq!(response.body, handler.handle(&request).unwrap());
                }
                60
            })
        })
        .collect();
    let answered: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(answered, 480);
}

#[test]
fn a_burst_of_256_new_keep_alive_connections_is_answered_within_2_s_and_reused() {
    // Both ends of 256 connections, and some to spare.
    if !raise_fd_limit(2 * 256 + 64) {
        return;
    }
    let server = start();

    let (answered, reused) = burst(server.local_addr().unwrap(), 256, Duration::from_secs(2));

    assert_eq!(answered, 256, "connections answered within 2 s");
    assert_eq!(reused, 256, "connections answered again");
}

#[test]
fn new_clients_are_answered_while_1024_idle_keep_alive_connections_are_open() {
    // Client and server ends of 1,024 connections live in this process, beside the
    // other tests' connections.
    if !raise_fd_limit(2 * 1024 + 64) {
        return;
    }
    let server = start();
    let addr = server.local_addr().unwrap();
    let request = echo_request("idle", 1);
    let mut idle = Vec::new();
    for i in 0..1024 {
        let mut client = Client::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(client.post("/statefun", &request).unwrap().status, 200);
        idle.push(client);
    }
    assert!(server.connections() >= 1024, "{}", server.connections());

    for n in 0..20 {
        let fresh = echo_request("fresh", n);
        let mut client = Client::connect(addr).unwrap();
        assert_reply(&client.post("/statefun", &fresh).unwrap(), &fresh);
    }
    // The idle ones still serve too.
    for client in idle.iter_mut().step_by(100) {
        assert_reply(&client.post("/statefun", &request).unwrap(), &request);
    }
}

#[test]
fn connections_beyond_the_cap_get_a_503_and_are_closed() {
    let server = start_with(Server::builder().max_connections(2));
    let request = echo_request("cap", 1);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = Client::to(&server);
        assert_reply(&client.post("/statefun", &request).unwrap(), &request);
        held.push(client);
    }

    let mut third = Client::to(&server);
    let response = third.read_response().unwrap();

    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.closes());
    drop(held);
    // Once the held connections close, there is room again.
    let mut answered = false;
    for _ in 0..100 {
        let mut client = Client::to(&server);
        if client
            .post("/statefun", &request)
            .is_ok_and(|r| r.status == 200)
        {
            answered = true;
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(answered);
}

#[test]
fn shutdown_lets_the_request_in_flight_finish_closes_idle_ones_and_refuses_new_ones() {
    let server = Arc::new(start());
    let addr = server.local_addr().unwrap();
    let mut idle = Client::connect(addr).unwrap();
    let warm = echo_request("idle", 1);
    assert_reply(&idle.post("/statefun", &warm).unwrap(), &warm);

    let mut busy = Client::connect(addr).unwrap();
    assert_shutdown_answers_the_request_in_flight(&server, &mut busy);
    assert!(idle.is_closed_by_server(Duration::from_secs(10)));
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_err());
}

#[test]
fn bodies_wait_for_room_under_max_body_memory() {
    let request = echo_request("memory", 1);
    // Room for one body of this size at a time (the memory is never below one body of
    // the largest size, so that is this size too).
    let server = start_with(
        Server::builder()
            .max_body_size(request.len())
            .max_body_memory(request.len()),
    );
    let wire = post("/statefun", &request);
    let (head_and_half, rest) = wire.split_at(wire.len() - request.len() / 2);

    // A holds the room: its head is in, half its body is not.
    let mut a = Client::to(&server);
    a.send(head_and_half).unwrap();
    thread::sleep(Duration::from_millis(200));
    // B must wait for the room before its body is read.
    let mut b = Client::to(&server);
    b.send(&wire).unwrap();
    b.stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0; 1];
    let early = std::io::Read::read(&mut b.stream, &mut byte);
    assert!(
        early.is_err(),
        "B was answered while A held the body memory: {early:?}"
    );

    // A completes: both are answered.
    a.send(rest).unwrap();
    assert_reply(&a.read_response().unwrap(), &request);
    b.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_reply(&b.read_response().unwrap(), &request);
}

/// Whether the server has sent `client` nothing so far (no reply, no close).
fn has_had_no_answer(client: &mut Client) -> bool {
    client
        .stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut byte = [0; 1];
    let outcome = client.stream.read(&mut byte);
    matches!(outcome, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Sends the head of a `POST /statefun` declaring `length` bytes of body, and `Expect:
/// 100-continue`, and waits for the `100 Continue`: the server has read the head (and,
/// before bodies were charged as they arrive, had charged all `length` bytes).
fn declare_body(client: &mut Client, length: usize) {
    client
        .send(
            format!(
                "POST /statefun HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
                 Content-Length: {length}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let mut interim = [0; 25];
    client.stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn slow_clients_declaring_the_largest_body_keep_no_small_request_waiting() {
    // Room for four bodies of the largest size, and four clients that declare one each
    // and then send 100 bytes of it, and no more. None of them times out during the test.
    const LARGEST: usize = 1024 * 1024;
    let server = start_with(
        Server::builder()
            .max_body_size(LARGEST)
            .max_body_memory(4 * LARGEST)
            .read_timeout(Duration::from_secs(10)),
    );
    let mut slow: Vec<Client> = (0..4)
        .map(|_| {
            let mut client = Client::to(&server);
            declare_body(&mut client, LARGEST);
            client.send(&[0; 100]).unwrap();
            client
        })
        .collect();

    let small = echo_request("small", 1);
    let mut client = Client::to(&server);
    let response = client.post("/statefun", &small).unwrap();

    assert_reply(&response, &small);
    for (i, slow) in slow.iter_mut().enumerate() {
        assert!(
            has_had_no_answer(slow),
            "slow client {i} was answered before the small request was"
        );
    }
}

#[test]
fn a_body_that_finds_no_room_by_its_read_deadline_gets_a_503_naming_max_body_memory() {
    let (handler, gate) = gated_handler();
    let gated = gate_request();
    // Room for one body: the gated batch's, held while its function runs.
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .max_body_size(gated.len())
        .max_body_memory(gated.len())
        .read_timeout(Duration::from_millis(300))
        .start(handler)
        .unwrap();
    let addr = server.local_addr().unwrap();
    let holder = thread::spawn(move || Client::connect(addr).unwrap().post("/statefun", &gated));
    gate.wait_entered();

    let request = echo_request("2", 1); // as long as the gated batch
    let mut late = Client::connect(addr).unwrap();
    late.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let response = late.post("/statefun", &request);
    gate.open();
    let response = response.expect("an answer by the read deadline");

    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.closes());
    let text = response.text();
    assert!(text.contains("max_body_memory"), "{text}");
    assert!(
        text.contains(&format!("{} bytes", gate_request().len())),
        "{text}"
    );
    assert_eq!(holder.join().unwrap().unwrap().status, 200);
    // The memory is free again.
    let mut again = Client::connect(addr).unwrap();
    assert_reply(&again.post("/statefun", &request).unwrap(), &request);
}

#[test]
fn large_bodies_that_together_exceed_max_body_memory_are_all_answered() {
    // Six bodies of the largest size with room for two, each sent in two parts: the
    // server has read every first part, each charged as it arrived, before any second
    // part comes, so the six hold parts of the memory at once and all need more. None
    // may wait for the others until its read deadline.
    let blob = |id: &str| {
        let large = prost_types::Any {
            type_url: "type.googleapis.com/test.Blob".to_owned(),
            value: vec![7; 512 * 1024],
        };
        Request::to("test/echo", id).invoke(large).to_bytes()
    };
    let largest = blob("0").len();
    let server = start_with(
        Server::builder()
            .max_body_size(largest)
            .max_body_memory(2 * largest)
            .read_timeout(Duration::from_secs(10)),
    );
    let addr = server.local_addr().unwrap();
    let first_parts_sent = Arc::new(Barrier::new(6));
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let request = blob(&i.to_string());
            let first_parts_sent = Arc::clone(&first_parts_sent);
            thread::spawn(move || {
                let wire = post("/statefun", &request);
                let (first, rest) = wire.split_at(200 * 1024);
                let mut client = Client::connect(addr).unwrap();
                client.send(first).unwrap();
                first_parts_sent.wait();
                // Time for the server to read the first parts (were it shorter, the test
                // would pass as well, but prove less).
                thread::sleep(Duration::from_millis(300));
                client.send(rest).unwrap();
                (client.read_response().unwrap(), request)
            })
        })
        .collect();
    for client in clients {
        let (response, request) = client.join().unwrap();
        assert_reply(&response, &request);
    }
}

#[cfg(feature = "metrics")]
#[test]
fn a_stop_answers_the_requests_that_only_wait_with_503_and_waits_for_the_one_running() {
    use statefun_sync::metrics::Metrics;
    use support::http::wait_for_metric;

    let (handler, gate) = gated_handler();
    let gated = gate_request();
    let size = gated.len();
    // One worker, and room for two bodies.
    let server = Arc::new(
        Server::builder()
            .bind("127.0.0.1:0")
            .workers(1)
            .max_body_size(size)
            .max_body_memory(2 * size)
            .metrics("/metrics", &Metrics::new())
            .start(handler)
            .unwrap(),
    );
    let addr = server.local_addr().unwrap();
    // The running batch holds the worker and the memory for one body.
    let mut running = Client::connect(addr).unwrap();
    running.send(&post("/statefun", &gated)).unwrap();
    gate.wait_entered();
    // Its body read, this one waits for the worker.
    let for_worker = echo_request("w", 1);
    let mut waits_for_worker = Client::connect(addr).unwrap();
    waits_for_worker
        .send(&post("/statefun", &for_worker))
        .unwrap();
    wait_for_metric(addr, "/metrics", "statefun_http_requests_waiting", 1.0);
    // No room for this body: it waits for memory.
    let mut waits_for_memory = Client::connect(addr).unwrap();
    waits_for_memory
        .send(&post("/statefun", &echo_request("m", 1)))
        .unwrap();
    // The three, and the scrape.
    wait_for_metric(addr, "/metrics", "statefun_http_requests_in_flight", 4.0);

    let stopper = {
        let server = Arc::clone(&server);
        thread::spawn(move || server.shutdown())
    };
    let mut answers = Vec::new();
    for waiting in [&mut waits_for_worker, &mut waits_for_memory] {
        waiting
            .stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        answers.push(waiting.read_response());
    }
    gate.open();

    for (answer, what) in answers.into_iter().zip(["a worker", "memory"]) {
        let response = answer.unwrap_or_else(|e| panic!("waiting for {what}: no answer: {e}"));
        assert_eq!(
            response.status,
            503,
            "waiting for {what}: {}",
            response.text()
        );
        assert!(response.closes(), "waiting for {what}");
        assert!(
            response.text().contains("shutting down"),
            "waiting for {what}: {}",
            response.text()
        );
    }
    let response = running.read_response().unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.closes());
    assert!(stopper.join().unwrap(), "every connection finished in time");
}

#[test]
fn dropping_the_server_does_not_wait_for_the_request_in_flight_which_still_gets_its_reply() {
    let (handler, gate) = gated_handler();
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .shutdown_timeout(Duration::from_secs(60))
        .start(handler)
        .unwrap();
    let addr = server.local_addr().unwrap();
    let mut running = Client::connect(addr).unwrap();
    running.send(&post("/statefun", &gate_request())).unwrap();
    gate.wait_entered();

    let (dropped, was_dropped) = mpsc::channel();
    thread::spawn(move || {
        drop(server);
        dropped.send(()).unwrap();
    });
    let dropped_in_time = was_dropped.recv_timeout(Duration::from_secs(10)).is_ok();
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_err();
    gate.open();

    assert!(dropped_in_time, "the drop waited for the request in flight");
    assert!(refused, "a new connection was accepted after the drop");
    let response = running.read_response().unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.closes());
}

#[test]
fn an_address_that_cannot_be_bound_or_parsed_is_an_error_of_start_that_names_it() {
    let taken = start();
    let addr = taken.local_addr().unwrap();

    let in_use = Server::builder().bind(addr).start(handler()).unwrap_err();
    let no_port = Server::builder()
        .bind("127.0.0.1:http")
        .start(handler())
        .unwrap_err();

    assert_eq!(in_use.kind(), io::ErrorKind::AddrInUse, "{in_use}");
    assert!(in_use.to_string().contains(&addr.to_string()), "{in_use}");
    assert!(no_port.to_string().contains("127.0.0.1:http"), "{no_port}");
}
