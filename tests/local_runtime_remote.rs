//! `LocalRuntime` routing function types to HTTP endpoints: the crate's own server and the
//! tiny_http adapter serving Rust functions, and a scripted endpoint for what a remote
//! function can get wrong.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use prost::Message;
use statefun_sync::proto::polyglot::{self as proto, from_function, to_function};
use statefun_sync::testing::{LocalRuntime, RemoteError, RuntimeError};
use statefun_sync::{pack, unpack, Address, StatefulFunctions, ValueSpec};
use support::scripted::{http_response, scripted_endpoint};

#[derive(Clone, PartialEq, prost::Message)]
struct Count {
    #[prost(int64, tag = "1")]
    n: i64,
}

impl prost::Name for Count {
    const NAME: &'static str = "Count";
    const PACKAGE: &'static str = "test";
}

statefun_sync::protobuf_type!(Count);

fn count(n: i64) -> Count {
    Count { n }
}

/// A function served over HTTP, by the crate's server or by the tiny_http adapter, beside
/// a local one.
#[cfg(any(feature = "server", feature = "tiny-http"))]
mod behind_a_server {
    use std::thread;

    use prost_types::Any;
    use statefun_sync::{Context, RequestReplyHandler};

    use super::*;

    /// Served remotely: `remote/doubler` replies with twice the number, counting its calls
    /// in state `calls`.
    fn doubler_handler() -> RequestReplyHandler {
        let mut functions = StatefulFunctions::new();
        functions
            .bind_typed("remote/doubler", |ctx: &mut Context, message: Count| {
                let calls = ctx
                    .get_state("calls")?
                    .as_ref()
                    .map(unpack::<Count>)
                    .transpose()?
                    .unwrap_or_default()
                    .n
                    + 1;
                ctx.set_state("calls", pack(&count(calls)))?;
                ctx.reply(pack(&count(message.n * 2)))?;
                Ok(())
            })
            .unwrap()
            .state("calls");
        RequestReplyHandler::v2(functions)
    }

    /// In process: `local/asker` asks `remote/doubler/d` about each ingress number and
    /// emits the answers to `local/answers`.
    fn asker_runtime(endpoint: &str) -> LocalRuntime {
        let mut functions = StatefulFunctions::new();
        functions
            .bind("local/asker", |ctx: &mut Context, message: Any| {
                if ctx.caller().is_some() {
                    ctx.send_egress("local/answers", message)?;
                } else {
                    ctx.send("remote/doubler", "d", message)?;
                }
                Ok(())
            })
            .unwrap();
        LocalRuntime::v2(functions)
            .route_to_endpoint("remote/doubler", endpoint)
            .unwrap()
            .declare_states("remote/doubler", ["calls"])
            .unwrap()
    }

    fn ask_twice(runtime: &mut LocalRuntime) {
        runtime.send("local/asker", "a", pack(&count(21))).unwrap();
        runtime.run().unwrap();
        runtime.send("local/asker", "a", pack(&count(5))).unwrap();
        runtime.run().unwrap();
    }

    #[cfg(feature = "server")]
    #[test]
    fn a_function_behind_the_crates_server_runs_next_to_a_local_one() {
        let server = statefun_sync::http::Server::builder()
            .bind("127.0.0.1:0")
            .start(doubler_handler())
            .unwrap();
        let url = server.url();
        let mut runtime = asker_runtime(&url);

        ask_twice(&mut runtime);

        assert_eq!(
            runtime.egress_values::<Count>("local/answers").unwrap(),
            [count(42), count(10)]
        );
        // The runtime keeps the remote function's state and sends it back each time.
        assert_eq!(
            runtime
                .get("remote/doubler", "d", &ValueSpec::<Count>::named("calls"))
                .unwrap(),
            Some(count(2))
        );
        server.shutdown();
    }

    #[cfg(feature = "tiny-http")]
    #[test]
    fn a_function_behind_the_tiny_http_adapter_runs_next_to_a_local_one() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let serving = thread::spawn(move || {
            let handler = doubler_handler();
            // Two batches, then it stops; a bounded wait keeps a failing test from hanging.
            for _ in 0..2 {
                match server.recv_timeout(Duration::from_secs(10)) {
                    Ok(Some(request)) => {
                        statefun_sync::http::tiny_http::answer(&handler, request).unwrap()
                    }
                    _ => return,
                }
            }
        });
        let mut runtime = asker_runtime(&format!("http://{addr}/statefun"));

        ask_twice(&mut runtime);

        assert_eq!(
            runtime.egress_values::<Count>("local/answers").unwrap(),
            [count(42), count(10)]
        );
        serving.join().unwrap();
    }
}

fn reply_bytes(response: from_function::InvocationResponse) -> Vec<u8> {
    proto::FromFunction {
        response: Some(from_function::Response::InvocationResult(response)),
    }
    .encode_to_vec()
}

/// A runtime with only `remote/f` (states `a` and `b`), routed to `url`.
fn remote_only(url: &str) -> LocalRuntime {
    LocalRuntime::v2(StatefulFunctions::new())
        .route_to_endpoint("remote/f", url)
        .unwrap()
        .declare_states("remote/f", ["a", "b"])
        .unwrap()
}

#[test]
fn the_request_is_a_to_function_with_every_declared_state_and_the_batch() {
    let (url, received) = scripted_endpoint(vec![http_response(
        "200 OK",
        "application/octet-stream",
        &reply_bytes(Default::default()),
    )]);
    let mut runtime = remote_only(&url);
    runtime
        .set_state("remote/f", "x", "b", Some(pack(&count(7))))
        .unwrap();
    runtime.send("remote/f", "x", pack(&count(1))).unwrap();
    runtime.send("remote/f", "x", pack(&count(2))).unwrap();

    runtime.run().unwrap();

    let request = proto::ToFunction::decode(received.recv().unwrap().as_slice()).unwrap();
    let Some(to_function::Request::Invocation(batch)) = request.request else {
        panic!("no batch in {request:?}");
    };
    let target = batch.target.unwrap();
    assert_eq!(
        (
            target.namespace.as_str(),
            target.r#type.as_str(),
            target.id.as_str()
        ),
        ("remote", "f", "x")
    );
    let states: Vec<_> = batch
        .state
        .iter()
        .map(|s| (s.state_name.as_str(), s.state_value.to_vec()))
        .collect();
    assert_eq!(
        states,
        [("a", vec![]), ("b", pack(&count(7)).encode_to_vec())]
    );
    let arguments: Vec<_> = batch
        .invocations
        .iter()
        .map(|i| (i.caller.is_none(), i.argument.clone().unwrap()))
        .collect();
    assert_eq!(
        arguments,
        [(true, pack(&count(1))), (true, pack(&count(2)))]
    );
}

#[test]
fn a_remote_reply_is_applied_as_the_runtime_does() {
    let modify = from_function::persisted_value_mutation::MutationType::Modify as i32;
    let reply = from_function::InvocationResponse {
        state_mutations: vec![from_function::PersistedValueMutation {
            mutation_type: modify,
            state_name: "a".into(),
            state_value: pack(&count(3)).encode_to_vec().into(),
        }],
        outgoing_egresses: vec![from_function::EgressMessage {
            egress_namespace: "remote".into(),
            egress_type: "out".into(),
            argument: Some(pack(&count(4))),
        }],
        delayed_invocations: vec![from_function::DelayedInvocation {
            delay_in_ms: 1500,
            target: Some(proto::Address {
                namespace: "remote".into(),
                r#type: "g".into(),
                id: "y".into(),
            }),
            argument: Some(pack(&count(5))),
        }],
        ..Default::default()
    };
    let (url, _received) = scripted_endpoint(vec![http_response(
        "200 OK",
        "application/octet-stream",
        &reply_bytes(reply),
    )]);
    let mut runtime = remote_only(&url);
    runtime.send("remote/f", "x", pack(&count(1))).unwrap();

    runtime.run().unwrap();

    assert_eq!(
        runtime
            .get("remote/f", "x", &ValueSpec::<Count>::named("a"))
            .unwrap(),
        Some(count(3))
    );
    assert_eq!(
        runtime.egress_values::<Count>("remote/out").unwrap(),
        [count(4)]
    );
    let delayed: Vec<_> = runtime.pending_delayed().collect();
    assert_eq!(
        delayed,
        [(
            Duration::from_millis(1500),
            &Address::new("remote", "g", "y").unwrap()
        )]
    );
}

/// Runs one message for `remote/f/x` against an endpoint answering `response`, and
/// returns the error, after checking that the runtime stopped and applied nothing.
fn failure(response: Vec<u8>) -> RuntimeError {
    let (url, _received) = scripted_endpoint(vec![response]);
    let mut runtime = remote_only(&url);
    runtime.send("remote/f", "x", pack(&count(1))).unwrap();
    let err = runtime.run().unwrap_err();
    assert!(runtime.state("remote/f", "x", "a").unwrap().is_none());
    assert_eq!(
        runtime.pending_messages(),
        1,
        "the failed batch stays pending"
    );
    assert!(matches!(runtime.run(), Err(RuntimeError::Stopped { .. })));
    err
}

fn remote_source(err: &RuntimeError) -> &RemoteError {
    match err {
        RuntimeError::RemoteFailed {
            address,
            message,
            endpoint,
            source,
        } => {
            assert_eq!(address.to_string(), "remote/f/x");
            assert_eq!(message.unpack::<Count>().unwrap(), count(1));
            assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
            source
        }
        other => panic!("expected RemoteFailed, got {other:?}"),
    }
}

#[test]
fn an_error_status_fails_the_batch_and_quotes_the_body() {
    let err = failure(http_response(
        "500 Internal Server Error",
        "text/plain",
        b"boom",
    ));
    assert!(
        matches!(remote_source(&err), RemoteError::Status { status: 500, body } if body == "boom"),
        "{err:?}"
    );
    assert!(
        err.report().contains("HTTP 500 with \"boom\""),
        "{}",
        err.report()
    );
}

#[test]
fn a_reply_that_is_not_octet_stream_fails_the_batch() {
    let body = reply_bytes(Default::default());
    let err = failure(http_response("200 OK", "application/x-protobuf", &body));
    assert!(
        matches!(remote_source(&err), RemoteError::ContentType { content_type: Some(t) } if t == "application/x-protobuf"),
        "{err:?}"
    );
}

#[test]
fn an_empty_reply_fails_the_batch() {
    let err = failure(http_response("200 OK", "application/octet-stream", b""));
    assert!(
        matches!(remote_source(&err), RemoteError::EmptyBody),
        "{err:?}"
    );
}

#[test]
fn a_body_that_is_not_a_from_function_fails_the_batch() {
    let err = failure(http_response(
        "200 OK",
        "application/octet-stream",
        b"\xff\xff",
    ));
    assert!(
        matches!(remote_source(&err), RemoteError::MalformedReply { .. }),
        "{err:?}"
    );
}

#[test]
fn a_mutation_of_an_undeclared_state_fails_the_batch() {
    let reply = from_function::InvocationResponse {
        state_mutations: vec![from_function::PersistedValueMutation {
            mutation_type: 1,
            state_name: "secret".into(),
            state_value: pack(&count(3)).encode_to_vec().into(),
        }],
        ..Default::default()
    };
    let err = failure(http_response(
        "200 OK",
        "application/octet-stream",
        &reply_bytes(reply),
    ));
    assert!(
        matches!(&err, RuntimeError::UndeclaredStateMutation { state, .. } if state == "secret"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("`remote/f` does not declare"),
        "{err}"
    );
}

#[test]
fn an_endpoint_that_refuses_connections_fails_the_batch() {
    // A port that was free a moment ago, with nothing listening now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut runtime = remote_only(&format!("http://127.0.0.1:{port}/statefun"));
    runtime.send("remote/f", "x", pack(&count(1))).unwrap();

    let err = runtime.run().unwrap_err();

    assert!(
        matches!(remote_source(&err), RemoteError::Io { .. }),
        "{err:?}"
    );
    assert!(
        err.report().contains("connecting to 127.0.0.1"),
        "{}",
        err.report()
    );
}
