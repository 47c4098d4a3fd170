//! The connection layer of the crate's own server (`http::Server`): bytes as they arrive
//! on a connection, in pieces, built from well-formed requests (Content-Length or chunked
//! bodies, keep-alive, `Expect: 100-continue`, pipelined), raw bytes, and both cut at
//! arbitrary points.
//!
//! The server has no entry point that takes a byte stream without a socket, so this
//! target runs one server on loopback for the whole fuzzing session and sends each input
//! on a new connection: every piece in its own write (`TCP_NODELAY`), then the end of
//! the stream, then it reads until the server closes.
//!
//! Properties: no panic on any server thread (libFuzzer's hook aborts on one); the server
//! answers and closes within 5 s (no hang: the client has sent everything); what it sends
//! is a sequence of complete HTTP/1.1 responses (`100 Continue` interim responses aside)
//! with a known status and an exact `Content-Length`; a 200 carries a `FromFunction`, an
//! error a short `text/plain` body that quotes nothing raw; nothing follows a response
//! that says `Connection: close`.
#![no_main]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use statefun_sync::http::Server;
use statefun_sync::proto::polyglot::FromFunction;
use statefun_sync_fuzz::{check_text, install_panic_hook, new_handler};

/// Small, so the fuzzer reaches the limit.
const LIMIT: usize = 1024;

fn server() -> SocketAddr {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            Server::builder()
                .bind("127.0.0.1:0")
                .max_body_size(LIMIT)
                .workers(2)
                .read_timeout(Duration::from_secs(2))
                .idle_timeout(Duration::from_secs(2))
                .start(new_handler())
                .expect("the server starts on loopback")
        })
        .local_addr()
        .expect("bound to TCP")
}

#[derive(Arbitrary, Debug)]
enum Method {
    Post,
    Get,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Target {
    Served,
    WithQuery(String),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Header {
    ContentType(String),
    OctetStream,
    ContentLength(u64),
    TransferEncoding(String),
    Close,
    KeepAlive,
    ExpectContinue,
    Other(String, String),
}

#[derive(Arbitrary, Debug)]
enum Body {
    None,
    /// With a `Content-Length` of its own length.
    Sized(Vec<u8>),
    /// Chunked, in chunks of these bytes, with chunk extensions and a trailer if set.
    Chunked(Vec<Vec<u8>>, bool),
}

#[derive(Arbitrary, Debug)]
enum Piece {
    Request {
        method: Method,
        target: Target,
        http10: bool,
        headers: Vec<Header>,
        body: Body,
    },
    /// A request whose body is a script for `fuzz/all` (so the handler answers 200).
    Script(Vec<u8>),
    Raw(Vec<u8>),
    /// Cut the bytes so far into a separate write.
    Cut,
    /// Cut what is being sent at this many bytes from the end.
    CutBack(u8),
}

fn request_bytes(piece: &Piece, out: &mut Vec<u8>) {
    match piece {
        Piece::Request {
            method,
            target,
            http10,
            headers,
            body,
        } => {
            let method = match method {
                Method::Post => "POST",
                Method::Get => "GET",
                Method::Other(m) => m,
            };
            let target = match target {
                Target::Served => "/statefun".to_owned(),
                Target::WithQuery(q) => format!("/statefun?{q}"),
                Target::Other(t) => t.clone(),
            };
            let version = if *http10 { "1.0" } else { "1.1" };
            out.extend_from_slice(format!("{method} {target} HTTP/{version}\r\n").as_bytes());
            for header in headers {
                let line = match header {
                    Header::ContentType(c) => format!("Content-Type: {c}"),
                    Header::OctetStream => "Content-Type: application/octet-stream".into(),
                    Header::ContentLength(n) => format!("Content-Length: {n}"),
                    Header::TransferEncoding(t) => format!("Transfer-Encoding: {t}"),
                    Header::Close => "Connection: close".into(),
                    Header::KeepAlive => "Connection: keep-alive".into(),
                    Header::ExpectContinue => "Expect: 100-continue".into(),
                    Header::Other(n, v) => format!("{n}: {v}"),
                };
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            match body {
                Body::None => out.extend_from_slice(b"\r\n"),
                Body::Sized(bytes) => {
                    out.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", bytes.len()).as_bytes(),
                    );
                    out.extend_from_slice(bytes);
                }
                Body::Chunked(chunks, extras) => {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                        let ext = if *extras { ";a=b" } else { "" };
                        out.extend_from_slice(format!("{:x}{ext}\r\n", chunk.len()).as_bytes());
                        out.extend_from_slice(chunk);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n");
                    if *extras {
                        out.extend_from_slice(b"X-Trailer: 1\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        Piece::Script(script) => {
            let body = statefun_sync::testing::v2::Request::to(statefun_sync_fuzz::ALL, "1")
                .with_state("a", None)
                .invoke_from(
                    statefun_sync::Address::new("fuzz", "caller", "1").unwrap(),
                    prost_types::Any {
                        type_url: "fuzz/script".into(),
                        value: script.clone(),
                    },
                )
                .to_bytes();
            out.extend_from_slice(
                format!(
                    "POST /statefun HTTP/1.1\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(&body);
        }
        Piece::Raw(bytes) => out.extend_from_slice(bytes),
        Piece::Cut | Piece::CutBack(_) => {}
    }
}

fuzz_target!(|pieces: Vec<Piece>| {
    install_panic_hook();
    // The writes: the bytes between cuts.
    let mut writes: Vec<Vec<u8>> = vec![Vec::new()];
    for piece in &pieces {
        match piece {
            Piece::Cut => writes.push(Vec::new()),
            Piece::CutBack(n) => {
                let last = writes.last_mut().expect("never empty");
                let at = last.len().saturating_sub(usize::from(*n));
                let tail = last.split_off(at);
                writes.push(tail);
            }
            _ => request_bytes(piece, writes.last_mut().expect("never empty")),
        }
    }
    if writes.iter().map(Vec::len).sum::<usize>() > 64 * 1024 {
        return;
    }

    let mut stream = TcpStream::connect(server()).expect("connect to the server");
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for write in writes.iter().filter(|w| !w.is_empty()) {
        // The server may close early (after an error): then the rest is not sent.
        if stream.write_all(write).is_err() {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    let mut received = Vec::new();
    let mut reset = false;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!(
                    "the server neither answered nor closed within 5 s; received {:?}",
                    String::from_utf8_lossy(&received)
                )
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // The server closed with unread input (a refused request's body): the kernel
            // may reset the connection. What arrived before must still be whole.
            Err(_) => {
                reset = true;
                break;
            }
        }
    }
    check_responses(&received, reset);
});

/// Checks that `bytes` are whole HTTP responses; with `reset`, the last may be cut.
fn check_responses(mut bytes: &[u8], reset: bool) {
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(bytes) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if reset => return,
            other => panic!(
                "not an HTTP response ({other:?}): {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ),
        };
        let status = response.code.expect("complete");
        assert_eq!(response.version, Some(1), "HTTP/1.1");
        assert!(
            [100, 200, 400, 404, 405, 408, 413, 415, 431, 500, 501, 503].contains(&status),
            "status {status}"
        );
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| std::str::from_utf8(h.value).expect("ASCII header"))
        };
        if status == 100 {
            bytes = &bytes[head_len..];
            continue;
        }
        let length: usize = header("Content-Length")
            .expect("every response has a Content-Length")
            .parse()
            .expect("a number");
        let closes = header("Connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let content_type = header("Content-Type").expect("a Content-Type").to_owned();
        let rest = &bytes[head_len..];
        // The reply to a HEAD has the Content-Length of the body it does not carry.
        let head_reply = status == 405 && (rest.is_empty() || rest.starts_with(b"HTTP/1."));
        let body_len = if head_reply { 0 } else { length };
        if rest.len() < body_len {
            assert!(
                reset,
                "a response cut short: {length} bytes announced, {} sent",
                rest.len()
            );
            return;
        }
        let body = &rest[..body_len];
        if status == 200 {
            assert_eq!(content_type, "application/octet-stream");
            FromFunction::decode(body).expect("a 200 carries a FromFunction");
        } else {
            assert_eq!(content_type, "text/plain; charset=utf-8", "status {status}");
            assert!(length <= 1024, "an error body of {length} bytes");
            if !head_reply {
                let text = std::str::from_utf8(body).expect("an error body is UTF-8");
                let text = text.strip_suffix('\n').expect("ends with a newline");
                check_text(text);
            }
        }
        bytes = &rest[body_len..];
        if closes {
            assert!(
                bytes.is_empty(),
                "bytes after `Connection: close`: {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            );
        }
    }
}
