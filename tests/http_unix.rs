//! The crate's server on a Unix domain socket (`ServerBuilder::bind_unix`): the HTTP
//! table, limits and timeouts as over TCP, the socket file's life (stale, live, not a
//! socket, its mode, removed at the end), TLS over it, and the URLs the runtime is given.

#![cfg(all(unix, feature = "server"))]

mod support;

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use statefun_sync::http::{ListenAddr, Server, ServerBuilder};
use support::http::{
    assert_body_over_limit_is_413_with, assert_every_error_case, assert_reply,
    assert_shutdown_answers_the_request_in_flight, echo_request, handler, post, Client,
};
use support::TempDir;

fn start(builder: ServerBuilder, socket: &Path) -> Server {
    builder.bind_unix(socket).start(handler()).unwrap()
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Whether the server on `socket` answers a request.
fn serves(socket: &Path) -> bool {
    let request = echo_request("serves", 1);
    Client::connect_unix(socket)
        .and_then(|mut client| client.post("/statefun", &request))
        .is_ok_and(|response| response.status == 200)
}

#[test]
fn over_a_unix_socket_every_status_of_the_table_is_answered_on_one_connection() {
    let dir = TempDir::new("statefun-unix");
    let socket = dir.join("functions.sock");
    let _server = start(Server::builder(), &socket);
    let mut client = Client::connect_unix(&socket).unwrap();

    let request = echo_request("unix", 1);
    assert_reply(&client.post("/statefun", &request).unwrap(), &request);
    assert_every_error_case(&mut client);
}

#[test]
fn over_a_unix_socket_a_connection_is_kept_alive_across_requests() {
    let dir = TempDir::new("statefun-unix");
    let socket = dir.join("functions.sock");
    let server = start(Server::builder(), &socket);
    let mut client = Client::connect_unix(&socket).unwrap();

    for n in 0..20 {
        let request = echo_request("kept", n);
        let response = client.post("/statefun", &request).unwrap();
        assert_reply(&response, &request);
        assert!(!response.closes(), "request {n}");
    }
    assert_eq!(server.connections(), 1);
}

#[test]
fn over_a_unix_socket_the_limits_and_timeouts_hold() {
    let dir = TempDir::new("statefun-unix");
    let socket = dir.join("functions.sock");
    let server = start(
        Server::builder()
            .max_body_size(1000)
            .read_timeout(Duration::from_millis(300))
            .idle_timeout(Duration::from_millis(300)),
        &socket,
    );
    assert_body_over_limit_is_413_with(|| Client::connect_unix(&socket), "/statefun", 1000, true);

    // A request that stalls: 408.
    let mut stalled = Client::connect_unix(&socket).unwrap();
    stalled
        .send(b"POST /statefun HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let response = stalled.read_response().unwrap();
    assert_eq!(response.status, 408, "{}", response.text());

    // An idle connection, and one that never speaks: closed.
    let mut idle = Client::connect_unix(&socket).unwrap();
    let request = echo_request("idle", 1);
    assert_reply(&idle.post("/statefun", &request).unwrap(), &request);
    assert!(idle.is_closed_by_server(Duration::from_secs(10)));
    let mut silent = Client::connect_unix(&socket).unwrap();
    assert!(silent.is_closed_by_server(Duration::from_secs(10)));
    drop(server);
}

#[test]
fn over_a_unix_socket_connections_beyond_the_cap_get_a_503() {
    let dir = TempDir::new("statefun-unix");
    let socket = dir.join("functions.sock");
    let server = start(Server::builder().max_connections(2), &socket);
    let request = echo_request("cap", 1);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = Client::connect_unix(&socket).unwrap();
        assert_reply(&client.post("/statefun", &request).unwrap(), &request);
        held.push(client);
    }
    assert_eq!(server.connections(), 2);

    let mut third = Client::connect_unix(&socket).unwrap();
    let response = third.read_response().unwrap();

    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.closes());
}

#[test]
fn a_stale_socket_file_is_removed_at_start() {
    let dir = TempDir::new("statefun-unix");
    let socket = dir.join("functions.sock");
    // A server that did not stop cleanly: its file stays, nobody listens on it.
    drop(UnixListener::bind(&socket).unwrap());
    assert!(std::fs::symlink_metadata(&socket)
        .unwrap()
        .file_type()
        .is_socket());
    assert!(UnixStream::connect(&socket).is_err());

    let _server = start(Server::builder(), &socket);

    assert!(serves(&socket));
}

#[test]
fn a_live_server_on_the_path_makes_start_fail_with_addr_in_use_and_keeps_serving() {
    let dir = TempDir::new("statefun-unix");
    let socket = dir.join("functions.sock");
    let _live = start(Server::builder(), &socket);

    let err = Server::builder()
        .bind_unix(&socket)
        .start(handler())
        .unwrap_err();

    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains("functions.sock"), "{err}");
    // The failed start removed nothing: the live server still serves there.
    assert!(serves(&socket));
}

#[test]
fn a_file_that_is_not_a_socket_makes_start_fail_with_already_exists_and_is_kept() {
    let dir = TempDir::new("statefun-unix");
    let path = dir.join("functions.sock");
    std::fs::write(&path, b"someone's data").unwrap();

    let err = Server::builder()
        .bind_unix(&path)
        .start(handler())
        .unwrap_err();

    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("functions.sock"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"someone's data");
}

#[test]
fn the_socket_file_is_owner_and_group_only_by_default_or_what_unix_mode_sets() {
    let dir = TempDir::new("statefun-unix");
    let default = dir.join("default.sock");
    let _a = start(Server::builder(), &default);
    assert_eq!(mode_of(&default), 0o660, "{:o}", mode_of(&default));

    for mode in [0o600, 0o666] {
        let socket = dir.join(&format!("{mode:o}.sock"));
        let _server = start(Server::builder().unix_mode(mode), &socket);
        assert_eq!(mode_of(&socket), mode, "{:o}", mode_of(&socket));
        assert!(serves(&socket));
    }
}

#[test]
fn the_socket_file_is_removed_on_shutdown_and_on_drop() {
    let dir = TempDir::new("statefun-unix");
    let socket = dir.join("functions.sock");
    let server = start(Server::builder(), &socket);
    assert!(serves(&socket));

    assert!(server.shutdown());

    assert!(!socket.exists(), "{} is left", socket.display());
    drop(server);

    let dropped = dir.join("dropped.sock");
    drop(start(Server::builder(), &dropped));
    assert!(!dropped.exists(), "{} is left", dropped.display());
}

#[test]
fn shutdown_leaves_a_file_that_replaced_the_servers_own() {
    let dir = TempDir::new("statefun-unix");
    let socket = dir.join("functions.sock");
    let server = Arc::new(start(Server::builder(), &socket));
    // A second name for the server's socket: the only way to reach it once the path is
    // taken over, to wake its accept loop (see `shutdown_ends_promptly_...` below).
    let own = dir.join("own.sock");
    std::fs::hard_link(&socket, &own).unwrap();
    // Another process took the path over (a new server, started before this one stopped).
    std::fs::remove_file(&socket).unwrap();
    let other = UnixListener::bind(&socket).unwrap();

    let stopper = {
        let server = Arc::clone(&server);
        thread::spawn(move || server.shutdown())
    };
    while !stopper.is_finished() {
        let _ = UnixStream::connect(&own);
        thread::sleep(Duration::from_millis(20));
    }

    assert!(stopper.join().unwrap());
    let meta = std::fs::symlink_metadata(&socket).expect("the other server's file is kept");
    assert!(meta.file_type().is_socket());
    drop(other);
}

/// `Server::shutdown` wakes its accept loop by connecting to the socket's path; once the
/// file is gone, nothing can reach the loop, and the shutdown does not wait for it (it
/// used to wait its whole timeout).
#[test]
fn shutdown_ends_promptly_after_the_socket_file_is_removed() {
    let dir = TempDir::new("statefun-unix");
    let socket = dir.join("functions.sock");
    let server = start(
        Server::builder().shutdown_timeout(Duration::from_secs(5)),
        &socket,
    );
    std::fs::remove_file(&socket).unwrap();

    let started = std::time::Instant::now();
    server.shutdown();

    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[test]
fn shutdown_over_a_unix_socket_lets_the_request_in_flight_finish() {
    let dir = TempDir::new("statefun-unix");
    let socket = dir.join("functions.sock");
    let server = Arc::new(start(Server::builder(), &socket));
    let mut busy = Client::connect_unix(&socket).unwrap();
    assert_shutdown_answers_the_request_in_flight(&server, &mut busy);
    assert!(UnixStream::connect(&socket).is_err());
}

#[test]
fn the_url_and_listen_addr_name_the_socket() {
    let dir = TempDir::new("statefun-unix");
    let socket = dir.join("functions.sock");
    let server = start(Server::builder().path("/fns"), &socket);

    assert_eq!(
        server.url(),
        format!("http+unix://{}/fns", socket.display())
    );
    assert_eq!(server.listen_addr(), &ListenAddr::Unix(socket.clone()));
    assert_eq!(
        server.listen_addr().to_string(),
        format!("unix:{}", socket.display())
    );
    assert_eq!(server.local_addr(), None);

    let tcp = Server::builder()
        .bind("127.0.0.1:0")
        .start(handler())
        .unwrap();
    assert_eq!(
        tcp.listen_addr(),
        &ListenAddr::Tcp(tcp.local_addr().unwrap()),
        "{}",
        tcp.listen_addr()
    );
    assert_eq!(
        tcp.url(),
        format!("http://{}/statefun", tcp.local_addr().unwrap())
    );
}

#[cfg(feature = "tls")]
#[test]
fn tls_over_a_unix_socket_serves_with_mutual_tls_and_says_https_unix() {
    use support::tls::{connect_unix, peer_cert, Pki};
    let pki = Pki::new();
    let socket = pki.dir.join("functions.sock");
    let server = start(Server::builder().tls(pki.mutual_tls()), &socket);
    assert_eq!(
        server.url(),
        format!("https+unix://{}/statefun", socket.display())
    );

    let mut client = connect_unix(&socket, &pki.client(Some(&pki.client))).unwrap();
    assert_eq!(peer_cert(&client), pki.server.der);
    let request = echo_request("https+unix", 1);
    assert_reply(&client.post("/statefun", &request).unwrap(), &request);
    assert_every_error_case(&mut client);

    // Refused without a certificate, as over TCP.
    let refused = connect_unix(&socket, &pki.client(None))
        .and_then(|mut client| client.post("/statefun", &request));
    assert!(refused.is_err(), "{refused:?}");
    // And plain HTTP on the socket gets no HTTP back.
    let mut plain = Client::connect_unix(&socket).unwrap();
    plain.send(&post("/statefun", &request)).unwrap();
    assert!(plain.read_response().is_err());
}
