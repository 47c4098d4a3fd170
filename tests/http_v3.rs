//! One HTTP stack serves either protocol: a 3.x handler behind the crate's server, the
//! server-neutral `Endpoint` and the tiny_http adapter, over real loopback HTTP where
//! there is a server. The reply is the handler's own, and the statuses follow the same
//! rules as on 2.2.

#![cfg(feature = "server")]

mod support;

use std::sync::Arc;

use statefun_sync::http::{Endpoint, Server};
use statefun_sync::testing::v3;
use statefun_sync::{Address, Context, Message, RequestReplyHandler, StatefulFunctions, ValueSpec};
use support::http::Client;

const SEEN: ValueSpec<i32> = ValueSpec::named("seen");

/// A 3.x counter: counts in `seen` and tells the caller the count.
fn handler() -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/counter", |ctx: &mut Context, _: Message| {
            let seen = ctx.get(&SEEN)?.unwrap_or(0) + 1;
            ctx.set(&SEEN, &seen)?;
            ctx.reply(&seen)?;
            Ok(())
        })
        .unwrap()
        .state(&SEEN);
    RequestReplyHandler::v3(functions).unwrap()
}

fn caller() -> Address {
    Address::new("test", "caller", "c").unwrap()
}

/// The request the runtime sends first (no state), and the one after the handshake.
fn requests() -> (Vec<u8>, Vec<u8>) {
    let first = v3::Request::to("test/counter", "1")
        .invoke_from(caller(), &"hi".to_string())
        .to_bytes();
    let second = v3::Request::to("test/counter", "1")
        .with_state(&SEEN, Some(&41))
        .invoke_from(caller(), &"hi".to_string())
        .to_bytes();
    (first, second)
}

/// The handshake, then the count, through `post`.
fn assert_speaks_3x(mut post: impl FnMut(&[u8]) -> (u16, Vec<u8>)) {
    let (first, second) = requests();

    let (status, body) = post(&first);
    assert_eq!(status, 200);
    let handshake = v3::Reply::decode(&body).unwrap();
    let missing = handshake.missing_states().expect("the handshake");
    assert_eq!(missing.len(), 1);
    assert_eq!(
        (missing[0].name.as_str(), missing[0].typename.as_str()),
        ("seen", "io.statefun.types/int")
    );

    let (status, body) = post(&second);
    assert_eq!(status, 200);
    let reply = v3::Reply::decode(&body).unwrap();
    assert_eq!(reply.modified(&SEEN).unwrap(), Some(42));
    assert_eq!(reply.messages()[0].get::<i32>().unwrap(), 42);

    // A request that is no batch is a 400; an unknown function type a 404.
    assert_eq!(post(&[0xff]).0, 400);
    let unknown = v3::Request::to("test/nobody", "1").invoke(&1i32).to_bytes();
    assert_eq!(post(&unknown).0, 404);
}

#[test]
fn the_crates_server_serves_a_3x_handler() {
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .start(handler())
        .unwrap();
    let mut client = Client::to(&server);

    assert_speaks_3x(|body| {
        let response = client.post("/statefun", body).unwrap();
        (response.status, response.body)
    });
}

#[test]
fn the_server_neutral_endpoint_serves_a_3x_handler() {
    let endpoint = Endpoint::new();
    let handler = handler();

    assert_speaks_3x(|body| {
        let response = endpoint.handle_body(&handler, body);
        (response.status(), response.body().to_vec())
    });
}

#[cfg(feature = "tiny-http")]
#[test]
fn the_tiny_http_adapter_serves_a_3x_handler() {
    let server = support::http::TinyServer::start(handler(), 1);
    let mut client = Client::connect(server.addr).unwrap();

    assert_speaks_3x(|body| {
        let response = client.post("/statefun", body).unwrap();
        (response.status, response.body)
    });
}

#[test]
fn serve_serves_a_3x_handler() {
    // `serve` blocks, and says its address only in a log line: it gets a port that was
    // free a moment ago, and the client retries until it listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let handler = Arc::new(handler());
    let serving = addr.clone();
    // The thread runs until the test process ends: `serve` has no stop.
    std::thread::spawn(move || statefun_sync::serve(handler, serving.as_str()));
    let mut client = (0..200)
        .find_map(|_| {
            let client = Client::connect(addr.parse().unwrap()).ok();
            if client.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            client
        })
        .expect("serve() listens");

    assert_speaks_3x(|body| {
        let response = client.post("/statefun", body).unwrap();
        (response.status, response.body)
    });
}
