//! Routes of the crate's server beside the functions (`ServerBuilder::route`), over real
//! loopback HTTP with the test client in `support::http`.
#![cfg(feature = "server")]

mod support;

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use statefun_sync::http::header::{self, HeaderValue};
use statefun_sync::http::{Response, Server, ServerBuilder};
use statefun_sync::testing::v2::Request;
use statefun_sync::{RequestReplyHandler, StatefulFunctions};
use support::http::{
    assert_body_over_limit_is_413, chunked, echo_request, handler, Client, HttpResponse,
};

fn start(builder: ServerBuilder) -> Server {
    builder.bind("127.0.0.1:0").start(handler()).unwrap()
}

/// A server with `GET /health` and `POST /echo` (which answers with the body it got).
fn with_routes(builder: ServerBuilder) -> Server {
    start(
        builder
            .route("GET", "/health", |_, _| Response::text(200, "ok\n"))
            .route("POST", "/echo", |_, body| {
                Response::new(200, HeaderValue::from_static("application/x-echo"), body)
            }),
    )
}

fn assert_functions_serve(client: &mut Client) {
    let request = echo_request("after", 1);
    let response = client.post("/statefun", &request).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.body, handler().handle(&request).unwrap());
}

fn get(client: &mut Client, target: &str) -> HttpResponse {
    client
        .send(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    client.read_response().unwrap()
}

/// Reads a response head byte by byte: what comes after it is the next response.
fn read_head(client: &mut Client) -> String {
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        client.stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[test]
fn a_get_route_is_answered_and_the_functions_still_are() {
    let server = with_routes(Server::builder());
    let mut client = Client::to(&server);

    for target in ["/health", "/health?probe=1"] {
        let response = get(&mut client, target);
        assert_eq!(response.status, 200, "{target}: {}", response.text());
        assert_eq!(
            response.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(response.text(), "ok\n");
        assert!(!response.closes());
    }
    // The same connection serves the functions, and a route again.
    assert_functions_serve(&mut client);
    assert_eq!(get(&mut client, "/health").status, 200);
}

#[test]
fn a_route_gets_the_body_and_answers_with_its_own_content_type() {
    let server = with_routes(Server::builder());
    let mut client = Client::to(&server);

    let response = client.post("/echo", b"hello").unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("Content-Type"), Some("application/x-echo"));
    assert_eq!(response.body, b"hello");

    // A chunked body, with extensions and a trailer, arrives whole.
    let body: Vec<u8> = (0..=255).collect();
    client
        .send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    client.send(&chunked(&body, 7, true)).unwrap();
    assert_eq!(client.read_response().unwrap().body, body);
    assert_functions_serve(&mut client);
}

#[test]
fn an_unknown_path_is_still_a_404_from_the_functions() {
    let server = with_routes(Server::builder());
    let mut client = Client::to(&server);

    for target in ["/nothing", "/healthz", "/health/x"] {
        let response = get(&mut client, target);
        assert_eq!(response.status, 404, "{target}: {}", response.text());
        assert!(
            response.text().contains("no function endpoint at"),
            "{}",
            response.text()
        );
    }
    assert_functions_serve(&mut client);
}

#[test]
fn another_method_on_a_route_is_a_405_naming_the_routes_methods() {
    let server = with_routes(Server::builder());
    let mut client = Client::to(&server);

    let response = client.post("/health", b"x").unwrap();
    assert_eq!(response.status, 405, "{}", response.text());
    assert_eq!(response.headers_named("Allow"), ["GET", "HEAD"]);
    assert!(
        response.text().contains("use GET or HEAD"),
        "{}",
        response.text()
    );
    // A small body is read and dropped: the connection goes on.
    assert!(!response.closes());
    assert_functions_serve(&mut client);

    // The functions' path keeps its own rules.
    let response = get(&mut client, "/statefun");
    assert_eq!(response.status, 405);
    assert_eq!(response.header("Allow"), Some("POST"));
}

#[test]
fn a_body_over_the_limit_is_a_413_on_a_route_too() {
    let server = with_routes(Server::builder().max_body_size(1000));
    assert_body_over_limit_is_413(server.local_addr().unwrap(), "/echo", 1000, false);

    // What fits is answered.
    let mut client = Client::to(&server);
    assert_eq!(
        client.post("/echo", &[7u8; 1000]).unwrap().body,
        &[7u8; 1000]
    );
}

#[test]
fn a_route_request_that_stalls_gets_a_408() {
    let server = with_routes(Server::builder().read_timeout(Duration::from_millis(300)));
    let mut client = Client::to(&server);
    client
        .send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();

    let response = client.read_response().unwrap();

    assert_eq!(response.status, 408, "{}", response.text());
    assert!(response.closes());
}

#[test]
fn a_route_answers_while_every_worker_runs_a_function() {
    // The one worker runs `test/blocked` until the test lets it go.
    let (started, is_running) = mpsc::channel();
    let (release, wait_for_release) = mpsc::channel::<()>();
    let wait_for_release = Mutex::new(wait_for_release);
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/blocked", move |_, _| {
            started.send(()).unwrap();
            let _ = wait_for_release.lock().unwrap().recv();
            Ok(())
        })
        .unwrap();
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .route("GET", "/health", |_, _| Response::text(200, "ok\n"))
        .start(RequestReplyHandler::v2(functions))
        .unwrap();
    let addr = server.local_addr().unwrap();
    let batch = thread::spawn(move || {
        let request = Request::to("test/blocked", "1")
            .invoke(prost_types::Any::default())
            .to_bytes();
        Client::connect(addr)
            .unwrap()
            .post("/statefun", &request)
            .unwrap()
            .status
    });
    is_running.recv_timeout(Duration::from_secs(10)).unwrap();

    let mut probe = Client::connect(addr).unwrap();
    assert_eq!(get(&mut probe, "/health").status, 200);

    release.send(()).unwrap();
    assert_eq!(batch.join().unwrap(), 200);
}

#[test]
fn head_is_a_405_without_a_body_on_the_functions_and_a_get_without_its_body_on_a_route() {
    let server = with_routes(Server::builder());
    let mut client = Client::to(&server);

    client
        .send(b"HEAD /statefun HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 405 "), "{head}");

    client
        .send(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Length: 3\r\n"), "{head}");

    // Had either reply carried a body, it would be read here as the next response's head.
    assert_functions_serve(&mut client);
}

#[test]
fn a_panicking_route_is_a_500_and_the_server_goes_on() {
    let server = start(
        Server::builder()
            .route("GET", "/boom", |_, _| panic!("a bug in the route"))
            .route("GET", "/health", |_, _| Response::text(200, "ok\n")),
    );
    let mut client = Client::to(&server);
    let response = get(&mut client, "/boom");
    assert_eq!(response.status, 500, "{}", response.text());
    assert!(
        response.text().contains("the handler panicked"),
        "{}",
        response.text()
    );
    assert_eq!(get(&mut client, "/health").status, 200);
    assert_functions_serve(&mut client);
}

#[test]
fn a_route_on_the_functions_path_takes_its_method_and_a_later_route_replaces_an_earlier() {
    let server = start(
        Server::builder()
            .route("GET", "/statefun", |_, _| Response::text(200, "first\n"))
            .route("get", "/statefun", |head, _| {
                Response::text(200, format!("{} {}\n", head.method(), head.target()))
            }),
    );
    let mut client = Client::to(&server);
    assert_eq!(get(&mut client, "/statefun?x").text(), "GET /statefun?x\n");
    assert_functions_serve(&mut client);

    // Another method there is told every method the path takes, the functions' too.
    client
        .send(b"PUT /statefun HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let response = client.read_response().unwrap();
    assert_eq!(response.status, 405, "{}", response.text());
    // The route's method as it was added (`get`), the HEAD a GET route answers, and POST.
    assert_eq!(response.headers_named("Allow"), ["get", "HEAD", "POST"]);
}

#[test]
fn an_invalid_route_is_an_error_of_start() {
    for builder in [
        Server::builder().route("GE T", "/x", |_, _| Response::text(200, "")),
        Server::builder().route("", "/x", |_, _| Response::text(200, "")),
        Server::builder().route("GET", "x", |_, _| Response::text(200, "")),
    ] {
        let err = builder.bind("127.0.0.1:0").start(handler()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
    assert!(format!(
        "{:?}",
        Server::builder().route("GET", "/health", |_, _| Response::text(200, ""))
    )
    .contains("GET /health"));
}

/// The head of a `GET` to `path` announcing a 2-byte body, which is sent later: until
/// then the server counts the request as in flight, and the shutdown waits for it.
fn get_with_pending_body(client: &mut Client, path: &str) {
    client
        .send(format!("GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n").as_bytes())
        .unwrap();
}

#[test]
fn the_probes_answer_and_ready_turns_503_as_soon_as_the_shutdown_starts() {
    let server = std::sync::Arc::new(start(Server::builder().health("/health").ready("/ready")));
    let mut client = Client::to(&server);
    let health = get(&mut client, "/health");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let ready = get(&mut client, "/ready");
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));
    assert!(server.is_ready());
    client
        .send(b"HEAD /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(read_head(&mut client).starts_with("HTTP/1.1 200 OK\r\n"));
    assert_functions_serve(&mut client);

    // Two probes in flight (their bodies not yet sent) hold the shutdown open.
    let mut ready_probe = Client::to(&server);
    get_with_pending_body(&mut ready_probe, "/ready");
    let mut health_probe = Client::to(&server);
    get_with_pending_body(&mut health_probe, "/health");
    thread::sleep(Duration::from_millis(100)); // both heads are read
    let stopper = {
        let server = std::sync::Arc::clone(&server);
        thread::spawn(move || server.shutdown())
    };
    let started = std::time::Instant::now();
    while server.is_ready() {
        assert!(started.elapsed() < Duration::from_secs(5), "still ready");
        thread::sleep(Duration::from_millis(5));
    }
    // The idle connection is closed; the probes in flight are answered, and close.
    assert!(client.is_closed_by_server(Duration::from_secs(5)));
    ready_probe.send(b"..").unwrap();
    let ready = ready_probe.read_response().unwrap();
    assert_eq!(
        (ready.status, ready.text().as_str(), ready.closes()),
        (503, "shutting down\n", true)
    );
    health_probe.send(b"..").unwrap();
    let health = health_probe.read_response().unwrap();
    assert_eq!(
        (health.status, health.text().as_str(), health.closes()),
        (200, "ok\n", true)
    );
    assert!(stopper.join().unwrap(), "every connection finished in time");
    assert!(!server.is_ready());
}

#[test]
fn a_probe_path_must_start_with_a_slash() {
    let err = Server::builder()
        .bind("127.0.0.1:0")
        .ready("ready")
        .start(handler())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

// A queue that tells a client when to come back, and where its job is: both computed
// per request, as routes of a real service compute them.
#[test]
fn a_route_sends_headers_computed_at_run_time_and_the_client_sees_them() {
    let jobs = Arc::new(AtomicU64::new(0));
    let server = start(Server::builder().route("POST", "/jobs", move |_, _| {
        let job = jobs.fetch_add(1, Ordering::SeqCst) + 1;
        if job > 2 {
            let wait_seconds = 10 * job;
            return Response::text(503, "the queue is full\n")
                .with_header(header::RETRY_AFTER, HeaderValue::from(wait_seconds));
        }
        let location = HeaderValue::try_from(format!("/jobs/{job}")).unwrap();
        Response::text(201, "queued\n").with_header(header::LOCATION, location)
    }));
    let mut client = Client::to(&server);

    for job in 1..=2 {
        let response = client.post("/jobs", b"").unwrap();
        assert_eq!(response.status, 201, "{}", response.text());
        assert_eq!(
            response.header("Location"),
            Some(format!("/jobs/{job}").as_str())
        );
    }
    client
        .send(b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let head = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    // The name goes out title-cased, as the crate's own headers do.
    assert!(head.contains("\r\nRetry-After: 30\r\n"), "{head}");
    assert!(!head.contains("Location"), "{head}");
    let mut body = [0; 18];
    client.stream.read_exact(&mut body).unwrap();
    assert_eq!(&body, b"the queue is full\n");
    assert_functions_serve(&mut client);
}

/// `%XX` escapes decoded, as a route that takes a redirect target from its query would.
fn percent_decoded(text: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(decoded) if b == b'%' => {
                bytes.push(decoded);
                rest = &tail[2..];
            }
            _ => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

// A route that redirects to `?next=`: the classic header injection, a `%0D%0A` in the
// query decoded into a `Location`. The value is refused where it is made, and the
// route answers 400 instead; the injected line never reaches the client.
#[test]
fn a_line_break_in_a_computed_header_cannot_reach_the_wire() {
    let server = start(
        Server::builder()
            .route("GET", "/login", |head, _| {
                let query = head.target().split_once("?next=").map_or("/", |(_, q)| q);
                match HeaderValue::try_from(percent_decoded(query)) {
                    Ok(next) => Response::text(303, "").with_header(header::LOCATION, next),
                    Err(err) => Response::text(400, format!("bad redirect target: {err}\n")),
                }
            })
            // SAFETY: the value is valid UTF-8, all that `from_maybe_shared_unchecked`
            // asks; it skips the check for line breaks, which the server makes itself.
            .route("GET", "/unchecked", |_, _| {
                let value = unsafe {
                    HeaderValue::from_maybe_shared_unchecked(b"/home\r\nSet-Cookie: admin=1")
                };
                Response::text(200, "").with_header(header::LOCATION, value)
            }),
    );
    let mut client = Client::to(&server);

    let fine = get(&mut client, "/login?next=/home");
    assert_eq!(fine.status, 303, "{}", fine.text());
    assert_eq!(fine.header("Location"), Some("/home"));

    client
        .send(b"GET /login?next=/home%0D%0ASet-Cookie:%20admin=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert!(!head.contains("Set-Cookie"), "{head}");
    assert!(!head.contains("Location"), "{head}");
    let length: usize = head
        .split("\r\n")
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    client.stream.read_exact(&mut body).unwrap();
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with("bad redirect target: "), "{body}");

    // Made without the check: a debug build of `http` panics in the route (a 500); a
    // release build makes the value, and the server leaves the header out.
    let unchecked = get(&mut client, "/unchecked");
    assert!(
        unchecked.status == 500 || unchecked.status == 200,
        "{}",
        unchecked.status
    );
    assert_eq!(unchecked.header("Set-Cookie"), None);
    assert_eq!(unchecked.header("Location"), None);
    assert_functions_serve(&mut client);
}
