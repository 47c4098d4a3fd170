//! The crate's server over TLS and mutual TLS (`ServerBuilder::tls`), over real loopback
//! connections, with certificates made at test time and a rustls client
//! (`support::tls`) under the raw HTTP client of `support::http`.

#![cfg(all(feature = "server", feature = "tls"))]

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use statefun_sync::http::{Server, ServerBuilder};
use statefun_sync::testing::v2::Request;
use statefun_sync::{RequestReplyHandler, StatefulFunctions};
use support::http::{
    assert_body_over_limit_is_413_with, assert_every_error_case, assert_reply,
    assert_shutdown_answers_the_request_in_flight, burst_with, echo_request, handler, post, Client,
    HttpResponse,
};
use support::tls::{self, client_hello, connect, peer_cert, replace_file, replace_files, Pki};
use support::{ping, raise_fd_limit};

/// Longer than any close these tests wait for should take (a read timeout of 300 ms),
/// short enough that a server which never closes fails the test quickly.
const CLOSED_WITHIN: Duration = Duration::from_secs(5);

fn start(builder: ServerBuilder) -> Server {
    builder.bind("127.0.0.1:0").start(handler()).unwrap()
}

/// A handler whose one function, `test/count`, counts its calls (and replies as
/// `test/echo` does): whether a request ever reached the functions.
fn counting() -> (RequestReplyHandler, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut functions = StatefulFunctions::new();
    let counter = Arc::clone(&calls);
    functions
        .bind("test/count", move |ctx, message| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(ctx.send("test/sink", "count", message)?)
        })
        .unwrap();
    (RequestReplyHandler::v2(functions), calls)
}

fn count_request() -> Vec<u8> {
    Request::to("test/count", "1").invoke(ping(1)).to_bytes()
}

/// A server with `tls` serving [`counting`], and its call counter.
fn start_counting(tls: statefun_sync::http::TlsConfig) -> (Server, Arc<AtomicUsize>) {
    let (handler, calls) = counting();
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .tls(tls)
        .start(handler)
        .unwrap();
    (server, calls)
}

/// Connects with `config` and POSTs `request`: the response, or the error that ended the
/// handshake or the exchange.
fn attempt(
    server: &Server,
    config: &Arc<rustls::ClientConfig>,
    request: &[u8],
) -> io::Result<HttpResponse> {
    connect(server.local_addr().unwrap(), config)?.post("/statefun", request)
}

#[track_caller]
fn assert_refused(outcome: io::Result<HttpResponse>, what: &str) {
    match outcome {
        Ok(response) => panic!("{what}: served, {} {}", response.status, response.text()),
        // rustls' alert (unknown CA, certificate required), or the connection closed
        // after it.
        Err(err) => eprintln!("{what}: refused as expected: {err}"),
    }
}

/// Reads what the server sends on `stream` until it closes the connection, for at most
/// `within`: the bytes, or `None` if the connection is still open then.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut received = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            // A reset: closed as well.
            Err(_) => return Some(received),
        }
    }
}

/// Whether `server` has no connection open within [`CLOSED_WITHIN`]: no thread is left
/// holding one.
fn all_connections_end(server: &Server) -> bool {
    let deadline = Instant::now() + CLOSED_WITHIN;
    while server.connections() > 0 {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Whether `bytes` (what a server sent a client that spoke no TLS, or broken TLS) hold
/// nothing of an HTTP response: nothing, or a TLS alert record.
fn no_http_in(bytes: &[u8]) -> bool {
    bytes.is_empty() || (bytes[0] == 0x15 && !bytes.windows(5).any(|w| w == b"HTTP/"))
}

// ---------------------------------------------------------------------------------------
// HTTP over TLS: the table, keep-alive, the versions, the burst.
// ---------------------------------------------------------------------------------------

#[test]
fn over_tls_every_status_of_the_table_is_answered_and_the_connection_keeps_serving() {
    let pki = Pki::new();
    let server = start(Server::builder().tls(pki.tls()));
    let mut client = connect(server.local_addr().unwrap(), &pki.client(None)).unwrap();

    assert_every_error_case(&mut client);
}

#[test]
fn over_tls_a_body_over_the_limit_is_a_413_and_a_stalled_request_a_408() {
    let pki = Pki::new();
    let server = start(
        Server::builder()
            .tls(pki.tls())
            .max_body_size(1000)
            .read_timeout(Duration::from_millis(300)),
    );
    let config = pki.client(None);
    assert_body_over_limit_is_413_with(
        || connect(server.local_addr().unwrap(), &config),
        "/statefun",
        1000,
        true,
    );

    let mut stalled = connect(server.local_addr().unwrap(), &config).unwrap();
    stalled
        .send(b"POST /statefun HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let response = stalled.read_response().unwrap();
    assert_eq!(response.status, 408, "{}", response.text());
    assert!(response.closes());
}

#[test]
fn one_tls_connection_serves_many_requests_kept_alive() {
    let pki = Pki::new();
    let server = start(Server::builder().tls(pki.tls()));
    let mut client = connect(server.local_addr().unwrap(), &pki.client(None)).unwrap();

    for n in 0..20 {
        let request = echo_request("kept", n);
        let response = client.post("/statefun", &request).unwrap();
        assert_reply(&response, &request);
        assert!(!response.closes(), "request {n}");
    }
    assert_eq!(server.connections(), 1);
    // Pipelined: three requests in one write, three replies in order.
    let requests: Vec<_> = (0..3).map(|n| echo_request("piped", n)).collect();
    let wire: Vec<u8> = requests.iter().flat_map(|r| post("/statefun", r)).collect();
    client.send(&wire).unwrap();
    for request in &requests {
        assert_reply(&client.read_response().unwrap(), request);
    }
}

#[test]
fn tls_1_3_and_tls_1_2_are_both_served() {
    let pki = Pki::new();
    let server = start(Server::builder().tls(pki.tls()));
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = Arc::new(pki.client_config(None, &[version]));
        let mut client = connect(server.local_addr().unwrap(), &config).unwrap();
        let request = echo_request("version", 1);

        assert_reply(&client.post("/statefun", &request).unwrap(), &request);
        assert_eq!(client.stream.conn.protocol_version(), Some(version.version));
        assert_eq!(client.stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    }
}

#[test]
fn a_client_that_comes_back_resumes_its_session() {
    let pki = Pki::new();
    let server = start(Server::builder().tls(pki.tls()));
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut config = pki.client_config(None, &[version]);
        config.resumption = rustls::client::Resumption::in_memory_sessions(16);
        let config = Arc::new(config);
        let request = echo_request("resumed", 1);

        let mut first = connect(server.local_addr().unwrap(), &config).unwrap();
        // A TLS 1.3 ticket comes after the handshake: read the reply to receive it.
        assert_reply(&first.post("/statefun", &request).unwrap(), &request);
        let mut second = connect(server.local_addr().unwrap(), &config).unwrap();
        assert_reply(&second.post("/statefun", &request).unwrap(), &request);

        assert_eq!(
            first.stream.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Full),
            "{version:?}"
        );
        assert_eq!(
            second.stream.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed),
            "{version:?}"
        );
    }
}

#[test]
fn a_burst_of_256_new_keep_alive_tls_connections_is_answered_within_2_s_and_reused() {
    // Both ends of 256 connections, and some to spare.
    if !raise_fd_limit(2 * 256 + 64) {
        return;
    }
    let pki = Pki::new();
    // Mutual TLS, a full handshake each: the runtime's case, and the costliest.
    let server = start(Server::builder().tls(pki.mutual_tls()));
    let addr = server.local_addr().unwrap();
    let config = pki.client(Some(&pki.client));

    let (answered, reused) =
        burst_with(256, Duration::from_secs(2), move || connect(addr, &config));

    assert_eq!(answered, 256, "connections answered within 2 s");
    assert_eq!(reused, 256, "connections answered again");
}

// ---------------------------------------------------------------------------------------
// Mutual TLS.
// ---------------------------------------------------------------------------------------

#[test]
fn mutual_tls_serves_a_client_with_a_certificate_of_the_ca() {
    let pki = Pki::new();
    let (server, calls) = start_counting(pki.mutual_tls());
    let request = count_request();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = Arc::new(pki.client_config(Some(&pki.client), &[version]));
        let mut client = connect(server.local_addr().unwrap(), &config).unwrap();

        for _ in 0..2 {
            let response = client.post("/statefun", &request).unwrap();
            assert_eq!(response.status, 200, "{version:?}: {}", response.text());
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate_or_with_another_cas_unseen() {
    let pki = Pki::new();
    let (server, calls) = start_counting(pki.mutual_tls());
    let request = count_request();
    // TLS 1.3 refuses after the client's side of the handshake is done (at its first
    // read); TLS 1.2 within the handshake.
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        for (what, identity) in [
            ("no certificate", None),
            ("another CA's certificate", Some(&pki.stranger)),
        ] {
            let config = Arc::new(pki.client_config(identity, &[version]));
            assert_refused(
                attempt(&server, &config, &request),
                &format!("{what}, {version:?}"),
            );
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler saw a request");

    // The same server serves the right client: the refusals were the certificates'.
    let response = attempt(&server, &pki.client(Some(&pki.client)), &request).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn over_tls_1_2_each_refusal_is_the_servers_alert_within_the_handshake() {
    use rustls::AlertDescription::{BadCertificate, CertificateRequired, UnknownCA};
    let pki = Pki::new();
    let (server, calls) = start_counting(pki.mutual_tls().client_names(["flink.example"]));
    for (what, identity, alert) in [
        ("no certificate", None, CertificateRequired),
        ("another CA's certificate", Some(&pki.stranger), UnknownCA),
        ("a name not listed", Some(&pki.intruder), BadCertificate),
    ] {
        let config = Arc::new(pki.client_config(identity, &[&rustls::version::TLS12]));

        let err = connect(server.local_addr().unwrap(), &config)
            .err()
            .unwrap_or_else(|| panic!("{what}: the handshake completed"));

        assert!(
            matches!(tls::tls_error(&err), Some(rustls::Error::AlertReceived(a)) if *a == alert),
            "{what}: {err:?}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn plain_http_sent_to_the_tls_port_is_closed_and_never_reaches_the_handler() {
    let pki = Pki::new();
    let (server, calls) = start_counting(pki.mutual_tls());
    let mut plain = Client::to(&server);
    plain.send(&post("/statefun", &count_request())).unwrap();

    let received =
        read_until_closed(&mut plain.stream, CLOSED_WITHIN).expect("the connection closed");

    assert!(no_http_in(&received), "{received:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler saw a request");
    // Without mutual TLS too.
    let (server, calls) = start_counting(pki.tls());
    let mut plain = Client::to(&server);
    plain.send(&post("/statefun", &count_request())).unwrap();
    let received =
        read_until_closed(&mut plain.stream, CLOSED_WITHIN).expect("the connection closed");
    assert!(no_http_in(&received), "{received:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler saw a request");
}

#[test]
fn client_names_admit_a_certificate_for_a_listed_name_and_refuse_the_cas_others() {
    let pki = Pki::new();
    let (server, calls) =
        start_counting(pki.mutual_tls().client_names(["flink.example", "10.0.0.1"]));
    let request = count_request();

    assert_refused(
        attempt(&server, &pki.client(Some(&pki.intruder)), &request),
        "intruder.example",
    );
    assert_refused(
        attempt(&server, &pki.client(Some(&pki.stranger)), &request),
        "flink.example of another CA",
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler saw a request");
    let response = attempt(&server, &pki.client(Some(&pki.client)), &request).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A certificate's wildcard name covers a listed name, as a server certificate's does.
    let wildcard = pki.issue_client("wildcard", &["*.flink.example"]);
    let (server, calls) = start_counting(pki.mutual_tls().client_names(["tm-1.flink.example"]));
    let response = attempt(&server, &pki.client(Some(&wildcard)), &request).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_refused(
        attempt(&server, &pki.client(Some(&pki.client)), &request),
        "flink.example, for tm-1.flink.example",
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_client_name_that_is_no_name_and_unreadable_files_are_errors_of_start() {
    let pki = Pki::new();
    let start = |tls| {
        Server::builder()
            .bind("127.0.0.1:0")
            .tls(tls)
            .start(handler())
    };

    let err = start(pki.mutual_tls().client_names(["not a name!"])).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("not a name!"), "{err}");

    let missing = pki.dir.join("missing.pem");
    let err = start(statefun_sync::http::TlsConfig::new(
        &missing,
        &pki.server.key,
    ))
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    // Another certificate's key.
    let err = start(statefun_sync::http::TlsConfig::new(
        &pki.server.cert,
        &pki.client.key,
    ))
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");

    // A CA bundle that holds no certificate.
    let err = start(pki.tls().client_ca(&pki.server.key)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
}

// ---------------------------------------------------------------------------------------
// The handshake under the read timeout.
// ---------------------------------------------------------------------------------------

/// A TLS server whose only way to close a connection that does not complete its
/// handshake is the read timeout, 300 ms (the idle timeout is an hour).
fn start_short(pki: &Pki) -> (Server, Arc<AtomicUsize>) {
    let (handler, calls) = counting();
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .tls(pki.mutual_tls())
        .read_timeout(Duration::from_millis(300))
        .idle_timeout(Duration::from_secs(3600))
        .start(handler)
        .unwrap();
    (server, calls)
}

#[test]
fn a_client_that_connects_and_says_nothing_is_closed_by_the_read_timeout() {
    let pki = Pki::new();
    let (server, _) = start_short(&pki);
    let mut silent = TcpStream::connect(server.local_addr().unwrap()).unwrap();

    let received = read_until_closed(&mut silent, CLOSED_WITHIN);

    assert_eq!(received, Some(Vec::new()), "closed, without a byte");
    assert!(all_connections_end(&server), "{}", server.connections());
}

#[test]
fn a_client_that_stalls_after_half_a_client_hello_is_closed_by_the_read_timeout() {
    let pki = Pki::new();
    let (server, calls) = start_short(&pki);
    let hello = client_hello(&pki.client(Some(&pki.client)));
    let mut stalled = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    stalled.write_all(&hello[..hello.len() / 2]).unwrap();

    let received = read_until_closed(&mut stalled, CLOSED_WITHIN);

    assert!(received.is_some(), "still open after {CLOSED_WITHIN:?}");
    assert!(all_connections_end(&server), "{}", server.connections());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_client_that_trickles_its_client_hello_is_closed_by_the_read_timeout() {
    let pki = Pki::new();
    let (server, _) = start_short(&pki);
    let hello = client_hello(&pki.client(Some(&pki.client)));
    let mut reader = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    reader.set_nodelay(true).unwrap();
    let mut writer = reader.try_clone().unwrap();
    // One byte every 50 ms: each read of the server's gets a byte well within its
    // timeout, and the whole hello would take seconds (its length times 50 ms).
    assert!(hello.len() > 100, "{}", hello.len());
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            for byte in hello {
                if stop.load(Ordering::SeqCst) || writer.write_all(&[byte]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let received = read_until_closed(&mut reader, Duration::from_secs(3));

    stop.store(true, Ordering::SeqCst);
    trickle.join().unwrap();
    assert!(
        received.is_some(),
        "still open after 3 s of a byte every 50 ms"
    );
}

#[test]
fn a_client_that_sends_garbage_instead_of_a_client_hello_is_closed() {
    let pki = Pki::new();
    let (server, calls) = start_short(&pki);

    // Not a TLS record at all: refused at once, with an alert at most.
    let mut garbage = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    garbage
        .write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(64))
        .unwrap();
    let received = read_until_closed(&mut garbage, CLOSED_WITHIN).expect("closed");
    assert!(no_http_in(&received), "{received:?}");

    // A handshake record's header announcing 16 KiB, then a little garbage: the server
    // waits for the rest of the record, until its read timeout.
    let mut header = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    let mut bytes = vec![0x16, 0x03, 0x01, 0x40, 0x00];
    bytes.extend_from_slice(&[0x5a; 100]);
    header.write_all(&bytes).unwrap();
    let received = read_until_closed(&mut header, CLOSED_WITHIN).expect("closed");
    assert!(no_http_in(&received), "{received:?}");

    assert!(all_connections_end(&server), "{}", server.connections());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // And the server still serves.
    let response = attempt(&server, &pki.client(Some(&pki.client)), &count_request()).unwrap();
    assert_eq!(response.status, 200);
}

// ---------------------------------------------------------------------------------------
// Rotation.
// ---------------------------------------------------------------------------------------

#[test]
fn a_new_connection_gets_the_renewed_certificate_and_an_open_one_keeps_working() {
    let pki = Pki::new();
    let server = start(Server::builder().tls(pki.mutual_tls().reload_check(Duration::ZERO)));
    let config = pki.client(Some(&pki.client));
    let request = echo_request("rotation", 1);
    let mut before = connect(server.local_addr().unwrap(), &config).unwrap();
    assert_reply(&before.post("/statefun", &request).unwrap(), &request);
    assert_eq!(peer_cert(&before), pki.server.der);

    let renewed = pki.issue_server("renewed");
    assert_ne!(renewed.der, pki.server.der);
    replace_files(&renewed, &pki.server.cert, &pki.server.key);

    let mut after = connect(server.local_addr().unwrap(), &config).unwrap();
    assert_eq!(peer_cert(&after), renewed.der, "the renewed certificate");
    assert_reply(&after.post("/statefun", &request).unwrap(), &request);
    // The connection opened before goes on, with its certificate.
    let again = echo_request("rotation", 2);
    assert_reply(&before.post("/statefun", &again).unwrap(), &again);
    assert_eq!(peer_cert(&before), pki.server.der);
}

#[test]
fn a_renewal_that_does_not_load_keeps_the_previous_certificate_until_one_does() {
    let pki = Pki::new();
    let server = start(Server::builder().tls(pki.tls().reload_check(Duration::ZERO)));
    let config = pki.client(None);
    let request = echo_request("broken", 1);
    let serves_with = |expected: &rustls::pki_types::CertificateDer<'_>, what: &str| {
        let mut client = connect(server.local_addr().unwrap(), &config)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(&peer_cert(&client), expected, "{what}");
        assert_reply(&client.post("/statefun", &request).unwrap(), &request);
    };
    serves_with(&pki.server.der, "at start");

    // A certificate renewed before its key: they do not match.
    let renewed = pki.issue_server("renewed");
    replace_file(&pki.server.cert, &std::fs::read(&renewed.cert).unwrap());
    serves_with(&pki.server.der, "the new certificate with the old key");

    // A half-written certificate file.
    let pem = std::fs::read(&renewed.cert).unwrap();
    replace_file(&pki.server.cert, &pem[..pem.len() / 2]);
    serves_with(&pki.server.der, "half a certificate");

    // An empty key file.
    replace_files(&renewed, &pki.server.cert, &pki.server.key);
    replace_file(&pki.server.key, b"");
    serves_with(&pki.server.der, "an empty key file");

    // Both files renewed at last.
    replace_file(&pki.server.key, &std::fs::read(&renewed.key).unwrap());
    serves_with(&renewed.der, "both renewed");
}

#[cfg(unix)]
#[test]
fn a_reload_stuck_reading_the_files_keeps_no_other_handshake_waiting() {
    let pki = Pki::new();
    let server = start(Server::builder().tls(pki.tls().reload_check(Duration::ZERO)));
    let addr = server.local_addr().unwrap();
    let config = pki.client(None);
    let pem = std::fs::read(&pki.server.cert).unwrap();
    // The certificate renewed as a FIFO that nobody writes yet: whoever loads it waits, as
    // on a hung network file system.
    let fifo = pki.server.cert.with_extension("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", fifo.display());
    std::fs::rename(&fifo, &pki.server.cert).unwrap();

    // The first of these connections to arrive loads the files, and waits; the others
    // must be served meanwhile, with the certificate loaded before.
    let (done, results) = std::sync::mpsc::channel();
    for n in 0..3 {
        let (config, done) = (Arc::clone(&config), done.clone());
        thread::spawn(move || {
            let request = echo_request("reload", n);
            let outcome = connect(addr, &config)
                .and_then(|mut client| client.post("/statefun", &request))
                .map(|response| (response, request));
            let _ = done.send(outcome);
        });
    }
    let served: Vec<_> = (0..2)
        .map_while(|_| results.recv_timeout(Duration::from_secs(10)).ok())
        .collect();
    // Lets the stuck reload go on (before asserting, so that no thread stays stuck).
    let writer = thread::spawn({
        let path = pki.server.cert.clone();
        move || std::fs::write(path, pem)
    });

    assert_eq!(served.len(), 2, "connections served while a reload waited");
    for outcome in served {
        let (response, request) = outcome.unwrap();
        assert_reply(&response, &request);
    }
    writer.join().unwrap().unwrap();
    let (response, request) = results
        .recv_timeout(Duration::from_secs(10))
        .expect("the connection that reloaded is served once the files load")
        .unwrap();
    assert_reply(&response, &request);
}

// ---------------------------------------------------------------------------------------
// Shutdown.
// ---------------------------------------------------------------------------------------

#[test]
fn shutdown_over_tls_lets_the_request_in_flight_finish_and_closes_idle_ones() {
    let pki = Pki::new();
    let server = Arc::new(start(Server::builder().tls(pki.mutual_tls())));
    let addr = server.local_addr().unwrap();
    let config = pki.client(Some(&pki.client));
    let mut idle = connect(addr, &config).unwrap();
    let warm = echo_request("idle", 1);
    assert_reply(&idle.post("/statefun", &warm).unwrap(), &warm);

    let mut busy = connect(addr, &config).unwrap();
    assert_shutdown_answers_the_request_in_flight(&server, &mut busy);
    assert!(idle.is_closed_by_server(CLOSED_WITHIN));
    assert!(TcpStream::connect_timeout(&addr, CLOSED_WITHIN).is_err());
}

#[test]
fn url_says_https() {
    let pki = Pki::new();
    let server = start(Server::builder().tls(pki.tls()));
    assert_eq!(
        server.url(),
        format!("https://{}/statefun", server.local_addr().unwrap())
    );
    let plain = start(Server::builder());
    assert_eq!(
        plain.url(),
        format!("http://{}/statefun", plain.local_addr().unwrap())
    );
}
