//! The testing kit's remote client over the transports the runtime uses: `https` with
//! mutual TLS, and Unix domain sockets (`http+unix`, `https+unix`), against the crate's
//! own server, with `call_remote` (2.2 and 3.x) and `LocalRuntime`'s remote endpoints.
//! The certificates are made at test time (`support::tls::Pki`): a CA, a server
//! certificate for `localhost` and `127.0.0.1`, a client certificate, and a client
//! certificate of another CA.

#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use statefun_sync::http::{Server, ServerBuilder};
use statefun_sync::testing::{self, v3, LocalRuntime, RemoteError, RemoteOptions, RuntimeError};
use statefun_sync::{Context, Message, RequestReplyHandler, StatefulFunctions, ValueSpec};
use support::TempDir;

const TIMEOUT: Duration = Duration::from_secs(10);
const SEEN: ValueSpec<i32> = ValueSpec::named("seen");

/// 2.2: `example/echo` sends each message on to `example/sink/1`.
fn handler_v2() -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("example/echo", |ctx, message| {
            Ok(ctx.send("example/sink", "1", message)?)
        })
        .unwrap();
    RequestReplyHandler::v2(functions)
}

/// 3.x: `remote/doubler` counts its calls in `seen` and answers its caller with twice
/// the number.
fn handler_v3() -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("remote/doubler", |ctx: &mut Context, message: Message| {
            let seen = ctx.get(&SEEN)?.unwrap_or(0) + 1;
            ctx.set(&SEEN, &seen)?;
            let n = message.get::<i64>()?.unwrap_or_default();
            match ctx.caller() {
                Some(caller) => ctx.send_to(caller, &(n * 2))?,
                None => ctx.send("example/sink", "1", &(n * 2))?,
            }
            Ok(())
        })
        .unwrap()
        .state(&SEEN);
    RequestReplyHandler::v3(functions).unwrap()
}

/// Calls `url` on both protocol versions: the 2.2 echo on `v2`'s server, the 3.x
/// handshake and a call with the state on `v3`'s.
fn calls_both_versions(v2_url: &str, v3_url: &str, options: &RemoteOptions) {
    let request = testing::v2::Request::to("example/echo", "a").invoke(prost_types::Any::default());
    let reply = testing::v2::call_remote_with(v2_url, &request, options)
        .unwrap_or_else(|err| panic!("2.2 over {v2_url}: {err}: {err:?}"));
    assert_eq!(reply.messages().len(), 1, "{v2_url}");

    let first = v3::Request::to("remote/doubler", "d").invoke(&21i64);
    let handshake = v3::call_remote_with(v3_url, &first, options)
        .unwrap_or_else(|err| panic!("3.x over {v3_url}: {err}: {err:?}"));
    assert_eq!(
        handshake.missing_states().map(<[_]>::len),
        Some(1),
        "{v3_url}"
    );
    let reply = v3::call_remote_with(v3_url, &first.with_state(&SEEN, Some(&1)), options)
        .unwrap_or_else(|err| panic!("3.x over {v3_url}: {err}: {err:?}"));
    assert_eq!(reply.modified(&SEEN).unwrap(), Some(2), "{v3_url}");
    assert_eq!(reply.messages()[0].get::<i64>().unwrap(), 42, "{v3_url}");
}

/// A 3.x runtime whose `local/asker` asks `remote/doubler/d` about each ingress number
/// and emits the answers to `local/answers`; `configure` routes the doubler.
fn asker_runtime(
    configure: impl FnOnce(LocalRuntime) -> Result<LocalRuntime, RuntimeError>,
) -> LocalRuntime {
    let mut local = StatefulFunctions::new();
    local
        .bind_message("local/asker", |ctx: &mut Context, message: Message| {
            if ctx.caller().is_some() {
                ctx.send_egress("local/answers", &message.get::<i64>()?.unwrap_or_default())?;
            } else {
                ctx.send(
                    "remote/doubler",
                    "d",
                    &message.get::<i64>()?.unwrap_or_default(),
                )?;
            }
            Ok(())
        })
        .unwrap();
    configure(LocalRuntime::v3(local).unwrap()).unwrap()
}

/// Two numbers round-trip through the remote doubler, with its state kept by the runtime.
fn asks_twice(runtime: &mut LocalRuntime) {
    runtime.send("local/asker", "a", &21i64).unwrap();
    runtime
        .run()
        .unwrap_or_else(|err| panic!("{}", err.report()));
    runtime.send("local/asker", "a", &5i64).unwrap();
    runtime
        .run()
        .unwrap_or_else(|err| panic!("{}", err.report()));
    assert_eq!(
        runtime.egress_values::<i64>("local/answers").unwrap(),
        [42, 10]
    );
    assert_eq!(runtime.get("remote/doubler", "d", &SEEN).unwrap(), Some(2));
}

fn serve(builder: ServerBuilder, handler: RequestReplyHandler) -> Server {
    builder.start(handler).unwrap()
}

#[cfg(unix)]
#[test]
fn call_remote_speaks_both_versions_over_a_unix_socket() {
    let dir = TempDir::new("sf-kit");
    let v2 = serve(
        Server::builder().bind_unix(dir.join("v2.sock")),
        handler_v2(),
    );
    let v3 = serve(
        Server::builder().bind_unix(dir.join("v3.sock")),
        handler_v3(),
    );
    assert!(v2.url().starts_with("http+unix:///"), "{}", v2.url());

    calls_both_versions(&v2.url(), &v3.url(), &RemoteOptions::new(TIMEOUT));
    // `call_remote` as it was: a timeout, no other setting.
    let request = testing::v2::Request::to("example/echo", "a").invoke(prost_types::Any::default());
    assert!(testing::v2::call_remote(&v2.url(), &request, TIMEOUT).is_ok());
    v2.shutdown();
    v3.shutdown();
}

#[cfg(unix)]
#[test]
fn a_missing_socket_file_is_an_io_error_naming_the_url_and_the_socket() {
    let dir = TempDir::new("sf-kit");
    let socket = dir.join("missing.sock");
    let url = format!("http+unix://{}/statefun", socket.display());
    let request = testing::v2::Request::to("example/echo", "a").invoke(prost_types::Any::default());

    let err = testing::v2::call_remote(&url, &request, TIMEOUT).unwrap_err();

    let RemoteError::Io { during, source } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{err:?}");
    assert!(during.contains(&url), "{during}");
    assert!(during.contains(&socket.display().to_string()), "{during}");
}

#[cfg(unix)]
#[test]
fn a_local_runtime_calls_a_function_over_a_unix_socket() {
    let dir = TempDir::new("sf-kit");
    let server = serve(
        Server::builder().bind_unix(dir.join("fn.sock")),
        handler_v3(),
    );
    let url = server.url();

    let mut runtime = asker_runtime(|runtime| runtime.route_to_endpoint("remote/doubler", &url));
    asks_twice(&mut runtime);
    server.shutdown();
}

/// Everything over TLS.
#[cfg(feature = "tls")]
mod tls {
    use statefun_sync::testing::ClientTls;
    use support::tls::Pki;

    use super::*;

    /// The client's TLS: trusting the CA, with the runtime's client certificate.
    fn client(pki: &Pki) -> ClientTls {
        ClientTls::new(&pki.ca_cert)
            .unwrap()
            .identity(&pki.client.cert, &pki.client.key)
            .unwrap()
    }

    fn tcp_server(pki: &Pki, handler: RequestReplyHandler) -> Server {
        serve(
            Server::builder().bind("127.0.0.1:0").tls(pki.mutual_tls()),
            handler,
        )
    }

    fn echo_request() -> testing::v2::Request {
        testing::v2::Request::to("example/echo", "a").invoke(prost_types::Any::default())
    }

    /// The `Tls` error of a call to `url`, checked to name the URL and to say `reason`.
    fn tls_error(url: &str, options: &RemoteOptions, reason: &str) {
        let err = testing::v2::call_remote_with(url, &echo_request(), options).unwrap_err();
        assert!(
            matches!(&err, RemoteError::Tls { url: u, .. } if u == url),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(url), "{message}");
        assert!(message.contains(reason), "{message}: {err:?}");
        assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    }

    #[test]
    fn call_remote_speaks_both_versions_over_mutual_tls() {
        let pki = Pki::new();
        let v2 = tcp_server(&pki, handler_v2());
        let v3 = tcp_server(&pki, handler_v3());
        assert!(v2.url().starts_with("https://127.0.0.1:"), "{}", v2.url());

        let options = RemoteOptions::new(TIMEOUT).tls(client(&pki));
        calls_both_versions(&v2.url(), &v3.url(), &options);
        // By name rather than address: the certificate is valid for both.
        let by_name = v2.url().replace("127.0.0.1", "localhost");
        calls_both_versions(&by_name, &v3.url(), &options);
        v2.shutdown();
        v3.shutdown();
    }

    #[test]
    fn a_server_with_mutual_tls_refuses_a_client_without_a_certificate_or_from_another_ca() {
        let pki = Pki::new();
        let server = tcp_server(&pki, handler_v2());
        let url = server.url();

        let without = RemoteOptions::new(TIMEOUT).tls(ClientTls::new(&pki.ca_cert).unwrap());
        tls_error(&url, &without, "requires a client certificate");

        let other = ClientTls::new(&pki.ca_cert)
            .unwrap()
            .identity(&pki.stranger.cert, &pki.stranger.key)
            .unwrap();
        tls_error(
            &url,
            &RemoteOptions::new(TIMEOUT).tls(other),
            "refused the client certificate",
        );

        // The server still serves the right client.
        let options = RemoteOptions::new(TIMEOUT).tls(client(&pki));
        assert!(testing::v2::call_remote_with(&url, &echo_request(), &options).is_ok());
        server.shutdown();
    }

    #[test]
    fn the_client_checks_the_servers_certificate_against_its_ca_and_the_name() {
        let pki = Pki::new();
        let server = tcp_server(&pki, handler_v2());
        let url = server.url();
        let identity = |tls: ClientTls| tls.identity(&pki.client.cert, &pki.client.key).unwrap();

        let untrusting = identity(ClientTls::new(&pki.other_ca_cert).unwrap());
        let options = RemoteOptions::new(TIMEOUT).tls(untrusting);
        tls_error(&url, &options, "does not accept the server's certificate");

        let wrong_name = client(&pki).server_name("other.example");
        let options = RemoteOptions::new(TIMEOUT).tls(wrong_name);
        tls_error(&url, &options, "does not accept the server's certificate");

        let named = client(&pki).server_name("localhost");
        let options = RemoteOptions::new(TIMEOUT).tls(named);
        assert!(testing::v2::call_remote_with(&url, &echo_request(), &options).is_ok());
        server.shutdown();
    }

    #[test]
    fn https_without_tls_settings_or_to_a_plain_server_is_an_error_naming_the_url() {
        let pki = Pki::new();
        let server = tcp_server(&pki, handler_v2());
        let url = server.url();

        let err = testing::v2::call_remote(&url, &echo_request(), TIMEOUT).unwrap_err();
        assert!(
            matches!(&err, RemoteError::InvalidUrl { url: u, .. } if *u == url),
            "{err:?}"
        );
        assert!(err.to_string().contains("ClientTls"), "{err}");

        let err = LocalRuntime::v2(StatefulFunctions::new())
            .route_to_endpoint("remote/f", &url)
            .unwrap_err();
        assert!(
            matches!(err, RuntimeError::InvalidArgument { .. }),
            "{err:?}"
        );
        assert!(err.report().contains("remote_tls"), "{}", err.report());

        let plain = serve(Server::builder().bind("127.0.0.1:0"), handler_v2());
        let https = plain.url().replace("http://", "https://");
        let options = RemoteOptions::new(TIMEOUT).tls(client(&pki));
        tls_error(&https, &options, "does not speak TLS");
        plain.shutdown();
        server.shutdown();
    }

    #[test]
    fn a_bad_tls_file_is_an_error_of_client_tls_naming_it() {
        let pki = Pki::new();
        let missing = pki.dir.join("missing.crt");
        let err = ClientTls::new(&missing).unwrap_err();
        assert!(err.to_string().contains("missing.crt"), "{err}");

        // A key that is not the certificate's.
        let err = ClientTls::new(&pki.ca_cert)
            .unwrap()
            .identity(&pki.client.cert, &pki.server.key)
            .unwrap_err();
        let (cert, key) = (pki.client.cert.display(), pki.server.key.display());
        assert!(err.to_string().contains(&cert.to_string()), "{err}");
        assert!(err.to_string().contains(&key.to_string()), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn call_remote_speaks_both_versions_over_tls_on_a_unix_socket() {
        let pki = Pki::new();
        let unix = |name: &str, handler| {
            let builder = Server::builder()
                .bind_unix(pki.dir.join(name))
                .tls(pki.mutual_tls());
            serve(builder, handler)
        };
        let v2 = unix("v2.sock", handler_v2());
        let v3 = unix("v3.sock", handler_v3());
        assert!(v2.url().starts_with("https+unix:///"), "{}", v2.url());

        // The server name is `localhost`, which the certificate is valid for.
        let options = RemoteOptions::new(TIMEOUT).tls(client(&pki));
        calls_both_versions(&v2.url(), &v3.url(), &options);
        v2.shutdown();
        v3.shutdown();
    }

    #[test]
    fn a_local_runtime_calls_a_function_over_mutual_tls() {
        let pki = Pki::new();
        let server = tcp_server(&pki, handler_v3());
        let url = server.url();

        let mut runtime = asker_runtime(|runtime| {
            runtime
                .remote_tls(client(&pki))
                .route_to_endpoint("remote/doubler", &url)
        });
        asks_twice(&mut runtime);
        server.shutdown();
    }

    #[test]
    fn a_local_runtime_stops_with_the_tls_error_when_its_certificate_is_refused() {
        let pki = Pki::new();
        let server = tcp_server(&pki, handler_v3());
        let url = server.url();

        let mut runtime = asker_runtime(|runtime| {
            runtime
                .remote_tls(ClientTls::new(&pki.ca_cert).unwrap())
                .route_to_endpoint("remote/doubler", &url)
        });
        runtime.send("local/asker", "a", &21i64).unwrap();
        let err = runtime.run().unwrap_err();

        assert!(
            matches!(
                &err,
                RuntimeError::RemoteFailed {
                    source: RemoteError::Tls { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.report().contains("requires a client certificate"),
            "{}",
            err.report()
        );
        server.shutdown();
    }

    #[cfg(unix)]
    #[test]
    fn a_local_runtime_calls_a_function_over_tls_on_a_unix_socket() {
        let pki = Pki::new();
        let builder = Server::builder()
            .bind_unix(pki.dir.join("fn.sock"))
            .tls(pki.mutual_tls());
        let server = serve(builder, handler_v3());
        let url = server.url();

        let mut runtime = asker_runtime(|runtime| {
            runtime
                .remote_tls(client(&pki))
                .route_to_endpoint("remote/doubler", &url)
        });
        asks_twice(&mut runtime);
        server.shutdown();
    }
}
