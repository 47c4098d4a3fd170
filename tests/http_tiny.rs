//! The tiny_http adapter over real loopback HTTP: the same rules as `serve()`.
#![cfg(feature = "tiny-http")]

mod support;

use std::thread;

use support::http::{
    chunked, echo_request, error_cases, handler, post, Client, HttpResponse, TinyServer,
};

fn expected(request: &[u8]) -> Vec<u8> {
    handler().handle(request).unwrap()
}

fn assert_reply(response: &HttpResponse, request: &[u8]) {
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(response.body, expected(request));
}

#[test]
fn a_post_gets_200_exactly_octet_stream_and_the_handlers_reply() {
    let server = TinyServer::start(handler(), 2);
    let mut client = Client::connect(server.addr).unwrap();
    let request = echo_request("alice", 1);

    assert_reply(&client.post("/statefun", &request).unwrap(), &request);
}

#[test]
fn every_error_has_its_status_and_a_text_body_and_the_server_keeps_serving() {
    let server = TinyServer::start(handler(), 2);
    let cases = error_cases();
    let mut client = Client::connect(server.addr).unwrap();
    for (what, request, status, names) in cases {
        client.send(&request).unwrap();
        let response = client.read_response().unwrap();

        assert_eq!(response.status, status, "{what}: {}", response.text());
        assert!(
            response
                .header("Content-Type")
                .is_some_and(|c| c.starts_with("text/plain")),
            "{what}"
        );
        assert!(
            response.text().contains(names),
            "{what}: {}",
            response.text()
        );
        if status == 405 {
            assert_eq!(response.header("Allow"), Some("POST"), "{what}");
        }
        let good = echo_request("after", 2);
        assert_reply(&client.post("/statefun", &good).unwrap(), &good);
    }
}

#[test]
fn a_body_over_the_limit_is_a_413() {
    let server = TinyServer::start(handler(), 2);
    let mut client = Client::connect(server.addr).unwrap();
    let big = vec![0u8; statefun_sync::http::DEFAULT_MAX_BODY_SIZE + 1];

    let response = client.post("/statefun", &big).unwrap();

    assert_eq!(response.status, 413, "{}", response.text());
}

#[test]
fn chunked_and_pipelined_requests_are_answered_in_order() {
    let server = TinyServer::start(handler(), 2);
    let mut client = Client::connect(server.addr).unwrap();
    let first = echo_request("pipe", 1);
    let second = echo_request("pipe", 2);
    let mut bytes =
        b"POST /statefun HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    bytes.extend(chunked(&first, 7, false));
    bytes.extend(post("/statefun", &second));

    client.send(&bytes).unwrap();

    assert_reply(&client.read_response().unwrap(), &first);
    assert_reply(&client.read_response().unwrap(), &second);
}

#[test]
fn concurrent_clients_each_get_their_own_reply() {
    let server = TinyServer::start(handler(), 4);
    let addr = server.addr;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            thread::spawn(move || {
                let mut client = Client::connect(addr).unwrap();
                for n in 0..50u8 {
                    let request = echo_request(&format!("client-{t}"), n);
                    assert_reply(&client.post("/statefun", &request).unwrap(), &request);
                }
                50
            })
        })
        .collect();
    let answered: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(answered, 200);
}
