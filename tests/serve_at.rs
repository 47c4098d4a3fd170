//! `serve_at`, the one-line server at a path of your choice, over loopback: the functions at
//! `/` (as StateFun's own `module.yaml` files point them), the probes beside them, and a
//! graceful stop on SIGTERM. One test in a binary of its own: the signal goes to the whole
//! process.

#![cfg(all(feature = "server", unix))]

mod support;

use std::net::TcpListener;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use statefun_sync::testing::v3::{Reply, Request};
use statefun_sync::{serve_at, Context, Message, RequestReplyHandler, StatefulFunctions};
use support::http::Client;

#[test]
fn serve_at_serves_the_functions_at_the_path_given_until_sigterm() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/echo", |ctx: &mut Context, message: Message| {
            Ok(ctx.reply(message)?)
        })
        .unwrap();
    let handler = RequestReplyHandler::v3(functions).unwrap();
    // A free port: taken, read, and let go for the server.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = thread::spawn(move || serve_at(handler, addr, "/"));
    let mut client = connect(addr);
    let caller = statefun_sync::Address::new("test", "caller", "c").unwrap();
    let request = Request::to("test/echo", "1")
        .invoke_from(caller, "hi")
        .to_bytes();

    let at_root = client.post("/", &request).unwrap();
    let at_default = client.post("/statefun", &request).unwrap();
    client
        .send(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let health = client.read_response().unwrap();
    // The shell's own `kill`: no binary of its own needed.
    let pid = std::process::id();
    Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();

    assert_eq!(at_root.status, 200, "{}", at_root.text());
    let reply = Reply::decode(&at_root.body).unwrap();
    assert_eq!(reply.messages()[0].get::<String>().unwrap(), "hi");
    assert_eq!(at_default.status, 404);
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    // The stop: `serve_at` returns `Ok` once the signal arrives.
    server.join().unwrap().unwrap();
}

/// A client of the server, once it listens.
fn connect(addr: std::net::SocketAddr) -> Client {
    let start = Instant::now();
    loop {
        match Client::connect(addr) {
            Ok(client) => return client,
            Err(_) if start.elapsed() < Duration::from_secs(30) => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(err) => panic!("the server never listened on {addr}: {err}"),
        }
    }
}
