//! Hostile input: one test per class of bad input in SECURITY.md's table, each asserting
//! the exact error variant and HTTP status that `handle()` answers, and that nothing ran
//! (or, for a function's own failure, that no partial reply escaped). The fuzz targets in
//! `fuzz/` look for what these miss; every input they found becomes a test here.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prost::Message;
use prost_types::Any;
use statefun_sync::proto::polyglot::{self as proto, to_function};
use statefun_sync::testing::v2::{Reply, Request};
use statefun_sync::testing::StateChange;
use statefun_sync::{Address, Context, Error, RequestReplyHandler, StatefulFunctions, ValueSpec};
use support::hostile::{
    assert_malformed, assert_too_many_invocations, assert_too_many_states, claim, deep_groups,
    error_for, field, nested_groups, with_invalid_utf8,
};
use support::ping;

fn caller() -> Address {
    Address::new("test", "caller", "c1").unwrap()
}

/// `test/echo` replies with each message and counts its calls; `test/typed` takes a
/// `google.protobuf.Duration`; `test/declared` declares state `seen`; `test/state` reads
/// state `seen` as a `Duration`; `test/panics` panics.
fn handler() -> (RequestReplyHandler, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut functions = StatefulFunctions::new();
    let counter = calls.clone();
    functions
        .bind("test/echo", move |ctx: &mut Context, message: Any| {
            counter.fetch_add(1, Ordering::SeqCst);
            if ctx.caller().is_some() {
                ctx.reply(message)?;
            }
            Ok(())
        })
        .unwrap();
    let counter = calls.clone();
    functions
        .bind_typed("test/typed", move |_, _: prost_types::Duration| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    let counter = calls.clone();
    functions
        .bind("test/declared", move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap()
        .state("seen");
    functions
        .bind("test/state", |ctx, _| {
            ctx.get_state("seen")?;
            Ok(())
        })
        .unwrap();
    const SEEN: ValueSpec<prost_types::Duration> = ValueSpec::named("seen");
    functions
        .bind("test/typed-state", |ctx, _| {
            ctx.get(&SEEN)?;
            Ok(())
        })
        .unwrap()
        .state(&SEEN);
    functions
        .bind("test/panics", |ctx, _| {
            ctx.send("test/echo", "1", ping(1))?;
            panic!("deliberate panic in {}", ctx.address());
        })
        .unwrap();
    (RequestReplyHandler::v2(functions), calls)
}

fn echo_request() -> Vec<u8> {
    Request::to("test/echo", "1")
        .with_state("seen", Some(ping(9)))
        .invoke_from(caller(), ping(1))
        .invoke(ping(2))
        .to_bytes()
}

/// `ToFunction { invocation: <batch> }` around the raw bytes of a batch.
fn to_function(batch: &[u8]) -> Vec<u8> {
    field(100, batch)
}

#[test]
fn an_empty_body_is_no_invocation_400() {
    let (handler, calls) = handler();
    let err = error_for(&handler, b"");
    assert!(matches!(err, Error::NoInvocation), "{err:?}");
    assert_eq!(err.status(), 400);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn every_truncation_of_a_request_is_malformed_400_and_runs_nothing() {
    let (handler, calls) = handler();
    let good = echo_request();
    for len in 1..good.len() {
        let err = error_for(&handler, &good[..len]);
        assert_malformed(
            &err,
            "ToFunction",
            &format!("first {len} of {} bytes", good.len()),
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no function ran");
}

#[test]
fn a_known_field_with_the_wrong_wire_type_is_malformed_400() {
    let (handler, _) = handler();
    let state_as_varint = to_function(&[0x10, 0x01]); // state (field 2) as a varint
    let invocation_as_fixed32 = to_function(&[0x1d, 1, 2, 3, 4]); // invocations as fixed32
    let name_as_varint = to_function(&field(2, &[0x08, 0x01])); // state_name as a varint
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "field 100 as a varint",
            &[0xa0, 0x06, 0x01],
            "ToFunction.invocation",
        ),
        (
            "state as a varint",
            &state_as_varint,
            "ToFunction.invocation.state[0]",
        ),
        (
            "invocations as fixed32",
            &invocation_as_fixed32,
            "ToFunction.invocation.invocations[0]",
        ),
        (
            "state_name as a varint",
            &name_as_varint,
            "ToFunction.invocation.state[0].state_name",
        ),
    ];
    for (what, body, field) in cases {
        assert_malformed(&error_for(&handler, body), field, what);
    }
}

#[test]
fn a_huge_length_prefix_is_refused_without_allocating_it() {
    let (handler, calls) = handler();
    let huge = 1u64 << 40; // 1 TiB: an allocation of this size would abort the test
    let batch_claim = claim(100, huge);
    let state_claim = to_function(&claim(2, huge));
    let value_claim = to_function(&field(2, &[field(1, b"s"), claim(2, huge)].concat()));
    let argument_claim = to_function(&field(3, &claim(2, huge)));
    let cases: [(&str, &[u8], &str); 4] = [
        ("the batch", &batch_claim, "ToFunction.invocation"),
        ("a state", &state_claim, "ToFunction.invocation.state[0]"),
        (
            "a state value",
            &value_claim,
            "ToFunction.invocation.state[0]",
        ),
        (
            "an invocation's argument",
            &argument_claim,
            "ToFunction.invocation.invocations[0]",
        ),
    ];
    for (what, body, field) in cases {
        assert_malformed(&error_for(&handler, body), field, what);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn deeply_nested_unknown_groups_are_malformed_400() {
    let (handler, _) = handler();
    // Field 9 (unknown) as a start-group, 10,000 deep, each closed: within the batch and
    // at the top level. The reader stops at depth 100 instead of recursing 10,000 deep.
    let groups = deep_groups();
    let nested_in_batch = to_function(&groups);
    let cases: [(&str, &[u8], &str); 2] = [
        ("in the batch", &nested_in_batch, "ToFunction.invocation"),
        ("at the top level", &groups, "ToFunction"),
    ];
    for (what, body, field) in cases {
        let err = error_for(&handler, body);
        assert_malformed(&err, field, what);
        assert!(
            err.report().contains("nested too deeply"),
            "{what}: {}",
            err.report()
        );
    }
}

#[test]
fn unknown_groups_nested_within_the_limit_are_skipped() {
    let (handler, calls) = handler();
    let mut body = echo_request();
    body.extend(nested_groups(50));

    let reply = Reply::decode(&handler.handle(&body).unwrap()).unwrap();

    assert_eq!(reply.messages().len(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn deeply_nested_messages_in_an_argument_are_malformed_400() {
    let (handler, calls) = handler();
    // Invocations are decoded by prost: an invocation whose caller (field 1, an Address)
    // holds 10,000 nested unknown groups must hit prost's recursion limit, not the stack.
    let groups = deep_groups();
    let body = to_function(&field(3, &field(1, &groups)));

    let err = error_for(&handler, &body);

    assert_malformed(
        &err,
        "ToFunction.invocation.invocations[0]",
        "nested in a caller",
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// The handler's default `max_states`: 20,000 until finding F3 (decoding was quadratic in
// the number of distinct states; 100,000 took 50 s) was fixed in 06665d9.
const DISTINCT_STATES: usize = RequestReplyHandler::DEFAULT_MAX_STATES;

#[test]
fn a_hundred_thousand_distinct_states_are_answered_and_only_the_used_one_changes() {
    let last = format!("s{}", DISTINCT_STATES - 1);
    let used = last.clone();
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/count", move |ctx, message| {
            ctx.set_state(&used, message)?;
            Ok(())
        })
        .unwrap();
    let handler = RequestReplyHandler::v2(functions);
    let mut request = Request::to("test/count", "1");
    for i in 0..DISTINCT_STATES {
        request = request.with_state(&format!("s{i}"), Some(ping(1)));
    }
    let body = request.invoke(ping(2)).to_bytes();

    let reply = Reply::decode(&handler.handle(&body).unwrap()).unwrap();

    assert_eq!(reply.state_changes().len(), 1);
    assert_eq!(
        reply.state_change(&last),
        Some(&StateChange::Modified(ping(2)))
    );
}

#[test]
fn one_state_over_the_limit_is_413_and_so_is_one_invocation_over_it() {
    let (handler, calls) = handler();
    let mut request = Request::to("test/echo", "1");
    for i in 0..=DISTINCT_STATES {
        request = request.with_state(&format!("s{i}"), None);
    }
    let err = error_for(&handler, &request.invoke(ping(1)).to_bytes());
    assert_too_many_states(&err, DISTINCT_STATES);

    let handler = handler.max_invocations(10);
    let mut request = Request::to("test/echo", "1");
    for i in 0..11 {
        request = request.invoke(ping(i));
    }
    let err = error_for(&handler, &request.to_bytes());
    assert_too_many_invocations(&err, 10);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "refused before anything ran"
    );
}

#[test]
fn the_same_state_repeated_a_hundred_thousand_times_is_one_state() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/count", |ctx, _| {
            let value = ctx.get_state("s")?;
            ctx.reply(value.unwrap_or_default())?;
            ctx.remove_state("s")?;
            Ok(())
        })
        .unwrap();
    let handler = RequestReplyHandler::v2(functions);
    let mut request = Request::to("test/count", "1");
    for i in 0..100_000u32 {
        request = request.with_state("s", Some(ping(i as u8)));
    }
    let body = request.invoke_from(caller(), ping(0)).to_bytes();

    let reply = Reply::decode(&handler.handle(&body).unwrap()).unwrap();

    // The last value wins, as in every protobuf map and the Python SDK's dict.
    assert_eq!(reply.messages()[0].argument, ping((99_999u32) as u8));
    assert_eq!(reply.state_changes().len(), 1, "one DELETE");
    assert!(reply.deleted("s"));
}

#[test]
fn a_request_without_invocations_is_no_invocation_or_an_empty_reply() {
    let (handler, calls) = handler();
    // No batch at all (only an unknown field): nothing to answer.
    let err = error_for(&handler, &[0x08, 0x01]);
    assert!(matches!(err, Error::NoInvocation), "{err:?}");
    assert_eq!(err.status(), 400);
    // A batch with a target and states but no invocation: an empty reply, nothing runs.
    let body = Request::to("test/echo", "1")
        .with_state("seen", None)
        .to_bytes();
    let reply = Reply::decode(&handler.handle(&body).unwrap()).unwrap();
    assert_eq!(reply, Reply::default());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn an_unknown_function_type_is_404() {
    let (handler, calls) = handler();
    for (typename, shown) in [("test/nobody", "test/nobody"), ("", "/"), ("test", "/test")] {
        let body = Request::to(typename, "1").invoke(ping(1)).to_bytes();
        let err = error_for(&handler, &body);
        let Error::UnknownFunctionType { address } = &err else {
            panic!("{typename:?}: {err:?}");
        };
        // The displayed form: `==` on a `FunctionType` parses the text, and `/` does not parse.
        assert_eq!(address.function_type().to_string(), shown, "{typename:?}");
        assert_eq!(err.status(), 404);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_state_not_carried_is_400_whether_used_or_declared() {
    let (handler, calls) = handler();
    // Used by the function but not carried.
    let body = Request::to("test/state", "1").invoke(ping(1)).to_bytes();
    let err = error_for(&handler, &body);
    assert!(
        matches!(&err, Error::UnknownState { state, invocation: 0, .. } if state == "seen"),
        "{err:?}"
    );
    assert_eq!(err.status(), 400);
    // Declared by the binding but not carried: refused before anything runs.
    let body = Request::to("test/declared", "1")
        .with_state("other", None)
        .invoke(ping(1))
        .to_bytes();
    let err = error_for(&handler, &body);
    assert!(
        matches!(&err, Error::MissingDeclaredState { state, .. } if state == "seen"),
        "{err:?}"
    );
    assert_eq!(err.status(), 400);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn an_argument_of_another_type_is_400_and_one_that_does_not_decode_too() {
    let (handler, calls) = handler();
    let body = Request::to("test/typed", "1")
        .invoke(&prost_types::Duration::default())
        .invoke(ping(1))
        .to_bytes();
    let err = error_for(&handler, &body);
    assert!(
        matches!(&err, Error::UnexpectedMessageType { invocation: 1, actual, expected, .. }
            if actual == "type.googleapis.com/test.Ping" && expected == &["google.protobuf.Duration"]),
        "{err:?}"
    );
    assert_eq!(err.status(), 400);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the first invocation ran");

    let broken = Any {
        type_url: "type.googleapis.com/google.protobuf.Duration".into(),
        value: vec![0x08], // field 1, varint missing
    };
    let body = Request::to("test/typed", "1").invoke(broken).to_bytes();
    let err = error_for(&handler, &body);
    assert!(
        matches!(&err, Error::MalformedArgument { invocation: 0, .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), 400);
}

/// A request whose string fields are all valid, with the one holding `marker` made
/// invalid UTF-8.
fn invalid_utf8_request(marker: &str) -> Vec<u8> {
    let body = proto::ToFunction {
        request: Some(to_function::Request::Invocation(
            to_function::InvocationBatchRequest {
                target: Some(proto::Address {
                    namespace: "test".into(),
                    r#type: "echo".into(),
                    id: "ID-t".into(),
                }),
                state: vec![to_function::PersistedValue {
                    state_name: "NAME-s".into(),
                    state_value: Default::default(),
                }],
                invocations: vec![to_function::Invocation {
                    caller: Some(proto::Address {
                        namespace: "test".into(),
                        r#type: "caller".into(),
                        id: "ID-c".into(),
                    }),
                    argument: Some(Any {
                        type_url: "URL-a".into(),
                        value: vec![],
                    }),
                }],
            },
        )),
    }
    .encode_to_vec();
    with_invalid_utf8(&body, marker)
}

#[test]
fn non_utf8_in_any_string_field_is_malformed_400_naming_the_field() {
    let (handler, calls) = handler();
    let cases = [
        ("ID-t", "ToFunction.invocation.target"),
        ("NAME-s", "ToFunction.invocation.state[0].state_name"),
        ("ID-c", "ToFunction.invocation.invocations[0]"),
        ("URL-a", "ToFunction.invocation.invocations[0]"),
    ];
    for (marker, field) in cases {
        let err = error_for(&handler, &invalid_utf8_request(marker));
        assert_malformed(&err, field, marker);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // The same request with valid text is answered: the 400s come from the bytes.
    let valid = invalid_utf8_request("ID-t");
    let mut valid = valid.clone();
    let at = valid.iter().position(|&b| b == 0xff).unwrap();
    valid[at] = b'I';
    assert!(handler.handle(&valid).is_ok());
}

#[test]
fn a_panicking_function_is_500_with_no_partial_reply_and_the_handler_stays_usable() {
    let (handler, _) = handler();
    let body = Request::to("test/panics", "p").invoke(ping(1)).to_bytes();
    for _ in 0..3 {
        let err = error_for(&handler, &body);
        assert!(
            matches!(&err, Error::FunctionPanicked { invocation: 0, message, .. }
                if message == "deliberate panic in test/panics/p"),
            "{err:?}"
        );
        assert_eq!(err.status(), 500);
        assert!(
            handler.handle(&echo_request()).is_ok(),
            "usable after a panic"
        );
    }
}

#[test]
fn error_messages_quote_request_text_escaped_and_bounded() {
    let (handler, _) = handler();
    let typename = format!("test/\r\nX-Injected: 1{}", "x".repeat(100_000));
    let body = Request::to(&typename, "1").invoke(ping(1)).to_bytes();

    let err = error_for(&handler, &body);

    assert!(matches!(err, Error::UnknownFunctionType { .. }), "{err:?}");
    let text = err.report();
    assert!(!text.contains('\r') && !text.contains('\n'), "{text:?}");
    assert!(text.len() < 1024, "{} bytes", text.len());
}

/// Finding F1 of the fuzzing (FUZZ_FINDINGS.md, fixed in 163d4dc): `unpack_state` (now a
/// typed `get`) quoted the state's type URL raw, so request bytes reached the error chain (and the HTTP error
/// body and log line) unescaped and unbounded. Found by `handle_bytes`; input minimized by
/// hand.
#[test]
fn a_state_type_url_with_control_bytes_is_escaped_in_the_error() {
    let (handler, _) = handler();
    let url = format!("type.googleapis.com/x\0\r\n{}", "y".repeat(100_000));
    let body = Request::to("test/typed-state", "1")
        .with_state(
            "seen",
            Some(Any {
                type_url: url,
                value: vec![],
            }),
        )
        .invoke(ping(1))
        .to_bytes();

    let err = error_for(&handler, &body);

    assert!(matches!(err, Error::UnreadableState { .. }), "{err:?}");
    let text = err.report();
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(text.len() < 2048, "{} bytes", text.len());
}

// ---------------------------------------------------------------------------------------
// The HTTP rows: the crate's server over loopback. The rows that tests/http_server.rs
// already covers (wrong method and path, content type, body over the limit, broken
// framing, a stalled request, 503 beyond the connection cap, shutdown with one request
// in flight) are referenced from SECURITY.md, not repeated here.
// ---------------------------------------------------------------------------------------

/// The HTTP rows need the crate's own server (the feature `server`).
#[cfg(feature = "server")]
mod over_http {
    use super::*;

    use std::io::{Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpStream};
    use std::sync::atomic::AtomicBool;
    use std::sync::{mpsc, Mutex};
    use std::thread;
    use std::time::{Duration, Instant};

    use statefun_sync::http::{Endpoint, RequestHead, Server, ServerBuilder};
    use support::http::{post, Client, Outcome};

    fn start(builder: ServerBuilder, handler: RequestReplyHandler) -> Server {
        builder.bind("127.0.0.1:0").start(handler).unwrap()
    }

    /// Waits (bounded) until the server has no open connection.
    fn wait_for_no_connections(server: &Server) -> usize {
        let until = Instant::now() + Duration::from_secs(20);
        while server.connections() > 0 && Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
        server.connections()
    }

    fn assert_echo_served(addr: SocketAddr, handler: &RequestReplyHandler) {
        let request = echo_request();
        let mut client = Client::connect(addr).unwrap();
        client.send(&post("/statefun", &request)).unwrap();
        assert_eq!(
            client.read_outcome(),
            Outcome::Reply {
                status: 200,
                body: handler.handle(&request).unwrap(),
                closes: false
            }
        );
    }

    #[test]
    fn a_client_sending_one_byte_at_a_time_gets_a_408_at_the_read_timeout() {
        // The default is 30 s (the runtime's own read timeout is 10 s).
        assert!(format!("{:?}", Server::builder()).contains("read_timeout: 30s"));
        let (handler, calls) = handler();
        let server = start(
            Server::builder().read_timeout(Duration::from_millis(500)),
            handler,
        );
        let mut client = Client::to(&server);
        let mut writer = client.stream.try_clone().unwrap();
        // A valid request, one byte every 50 ms: it would take 20 s to arrive. The timeout
        // bounds the whole request, not each read, so trickling bytes does not extend it.
        let request = post("/statefun", &echo_request());
        let stop = Arc::new(AtomicBool::new(false));
        let trickle = {
            let stop = stop.clone();
            thread::spawn(move || {
                for byte in request {
                    if stop.load(Ordering::SeqCst) || writer.write_all(&[byte]).is_err() {
                        break;
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            })
        };

        let outcome = client.read_outcome();
        stop.store(true, Ordering::SeqCst);
        trickle.join().unwrap();

        match outcome {
            Outcome::Reply { status, closes, .. } => {
                assert_eq!(status, 408);
                assert!(closes);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler never ran");
        assert_eq!(
            wait_for_no_connections(&server),
            0,
            "the connection was freed"
        );
    }

    #[test]
    fn a_client_that_disconnects_mid_body_frees_its_connection_and_the_server_goes_on() {
        let (handler, calls) = handler();
        let reference = handler_ref();
        let server = start(Server::builder(), handler);
        for cut in [1, 10, 100] {
            let request = post("/statefun", &echo_request());
            let mut client = Client::to(&server);
            client.send(&request[..request.len() - cut]).unwrap();
            drop(client);
        }
        // A chunked body cut inside a chunk.
        let mut client = Client::to(&server);
        client
            .send(b"POST /statefun HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc")
            .unwrap();
        drop(client);

        assert_eq!(wait_for_no_connections(&server), 0);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "no cut body reached the handler"
        );
        assert_echo_served(server.local_addr().unwrap(), &reference);
    }

    /// Another `handler()`, to compute the replies the server's must send.
    fn handler_ref() -> RequestReplyHandler {
        handler().0
    }

    /// `test/big` replies with `n` messages of 1 MiB each (`n` is the argument's byte);
    /// `test/gate` waits until the test opens the gate; `test/loop` spins until told to stop.
    struct Special {
        handler: RequestReplyHandler,
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
        entered: mpsc::Receiver<()>,
        stop_loop: Arc<AtomicBool>,
        echoes: Arc<AtomicUsize>,
    }

    fn special() -> Special {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (entered_tx, entered) = mpsc::channel();
        let entered_tx = Mutex::new(entered_tx);
        let stop_loop = Arc::new(AtomicBool::new(false));
        let echoes = Arc::new(AtomicUsize::new(0));
        let mut functions = StatefulFunctions::new();
        functions
            .bind("test/big", |ctx, message: Any| {
                for _ in 0..message.value[0] {
                    let big = Any {
                        type_url: "test/Big".into(),
                        value: vec![7; 1 << 20],
                    };
                    ctx.send("test/sink", "1", big)?;
                }
                Ok(())
            })
            .unwrap();
        let g = gate.clone();
        functions
            .bind("test/gate", move |ctx, message| {
                entered_tx.lock().unwrap().send(()).unwrap();
                let (open, changed) = &*g;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = changed.wait(open).unwrap();
                }
                ctx.reply(message)?;
                Ok(())
            })
            .unwrap();
        let stop = stop_loop.clone();
        functions
            .bind("test/loop", move |_, _| {
                while !stop.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                    thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            })
            .unwrap();
        let counter = echoes.clone();
        functions
            .bind("test/echo", move |ctx, message| {
                counter.fetch_add(1, Ordering::SeqCst);
                ctx.reply(message)?;
                Ok(())
            })
            .unwrap();
        Special {
            handler: RequestReplyHandler::v2(functions),
            gate,
            entered,
            stop_loop,
            echoes,
        }
    }

    #[test]
    fn a_client_that_disconnects_mid_reply_frees_its_connection_and_the_server_goes_on() {
        let special = special();
        let server = start(Server::builder(), special.handler);
        // Each reply is 32 MiB; the client reads a few bytes of the first one, or none, and
        // closes with its requests pipelined behind.
        let big = post(
            "/statefun",
            &Request::to("test/big", "1").invoke(ping(32)).to_bytes(),
        );
        for read_first in [0usize, 100] {
            let mut client = Client::to(&server);
            for _ in 0..3 {
                client.send(&big).unwrap();
            }
            let mut first = vec![0; read_first];
            client.stream.read_exact(&mut first).unwrap();
            drop(client);
        }

        assert_eq!(wait_for_no_connections(&server), 0);
        let echo = Request::to("test/echo", "1")
            .invoke_from(caller(), ping(1))
            .to_bytes();
        let mut client = Client::to(&server);
        client.send(&post("/statefun", &echo)).unwrap();
        assert!(
            matches!(client.read_outcome(), Outcome::Reply { status: 200, .. }),
            "served after the disconnects"
        );
    }

    #[test]
    fn more_connections_than_workers_wait_for_a_worker_and_are_all_answered() {
        let special = special();
        let server = start(Server::builder().workers(1), special.handler);
        let addr = server.local_addr().unwrap();
        // The gate function takes the one worker and holds it.
        let gated = Request::to("test/gate", "1")
            .invoke_from(caller(), ping(1))
            .to_bytes();
        let mut holder = Client::connect(addr).unwrap();
        holder.send(&post("/statefun", &gated)).unwrap();
        special
            .entered
            .recv_timeout(Duration::from_secs(10))
            .unwrap();
        // Eight more connections send requests meanwhile: they are accepted, not refused.
        let clients: Vec<_> = (0..8u8)
            .map(|n| {
                let request = Request::to("test/echo", "1")
                    .invoke_from(caller(), ping(n))
                    .to_bytes();
                let mut client = Client::connect(addr).unwrap();
                client.send(&post("/statefun", &request)).unwrap();
                (client, n)
            })
            .collect();
        thread::sleep(Duration::from_millis(200));
        assert_eq!(
            special.echoes.load(Ordering::SeqCst),
            0,
            "no handler call ran beside the one holding the only worker"
        );

        *special.gate.0.lock().unwrap() = true;
        special.gate.1.notify_all();

        assert!(matches!(
            holder.read_outcome(),
            Outcome::Reply { status: 200, .. }
        ));
        for (mut client, n) in clients {
            match client.read_outcome() {
                Outcome::Reply {
                    status: 200, body, ..
                } => {
                    let reply = Reply::decode(&body).unwrap();
                    assert_eq!(reply.messages()[0].argument, ping(n));
                }
                other => panic!("client {n}: {other:?}"),
            }
        }
        assert_eq!(special.echoes.load(Ordering::SeqCst), 8);
    }

    #[test]
    fn shutdown_under_load_finishes_every_request_with_a_whole_reply_and_refuses_new_ones() {
        let reference = handler_ref();
        let (handler, calls) = handler();
        let server = Arc::new(start(
            Server::builder().shutdown_timeout(Duration::from_secs(20)),
            handler,
        ));
        let addr = server.local_addr().unwrap();
        let answered = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..4)
            .map(|t| {
                let answered = answered.clone();
                thread::spawn(move || {
                    let reference = handler_ref();
                    let (mut whole, mut closed) = (0usize, 0usize);
                    let mut client: Option<Client> = None;
                    for n in 0..100_000u32 {
                        if client.is_none() || n % 10 == t {
                            // A new connection every tenth request; keep-alive otherwise.
                            match Client::connect(addr) {
                                Ok(s) => client = Some(s),
                                Err(_) => break, // refused: the server has stopped
                            }
                        }
                        let s = client.as_mut().unwrap();
                        let request = Request::to("test/echo", &format!("{t}-{n}"))
                            .invoke_from(caller(), ping(n as u8))
                            .to_bytes();
                        if s.send(&post("/statefun", &request)).is_err() {
                            closed += 1;
                            client = None;
                            continue;
                        }
                        match s.read_outcome() {
                            Outcome::Reply {
                                status,
                                body,
                                closes,
                            } => {
                                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                                assert_eq!(body, reference.handle(&request).unwrap());
                                whole += 1;
                                answered.fetch_add(1, Ordering::SeqCst);
                                if closes {
                                    client = None;
                                }
                            }
                            Outcome::Closed => {
                                closed += 1;
                                client = None;
                            }
                            Outcome::Partial(bytes) => {
                                panic!("a partial reply of {} bytes", bytes.len())
                            }
                        }
                    }
                    (whole, closed)
                })
            })
            .collect();
        let until = Instant::now() + Duration::from_secs(60);
        while answered.load(Ordering::SeqCst) < 400 && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }

        let finished_in_time = server.shutdown();

        assert!(
            finished_in_time,
            "every connection finished within the shutdown timeout"
        );
        let mut total = 0;
        for client in clients {
            let (whole, _closed) = client.join().expect("no partial or wrong reply");
            total += whole;
        }
        assert!(total >= 400, "{total}");
        // Every request the handler ran got its whole reply to the client: none was run and
        // then dropped by the shutdown.
        assert_eq!(calls.load(Ordering::SeqCst), total);
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_err());
        drop(reference);
    }

    #[test]
    fn a_function_that_loops_holds_its_request_and_shutdown_still_returns_in_bounded_time() {
        let special = special();
        let stop = special.stop_loop.clone();
        let server = start(
            Server::builder().shutdown_timeout(Duration::from_millis(300)),
            special.handler,
        );
        let looping = Request::to("test/loop", "1").invoke(ping(1)).to_bytes();
        let mut client = Client::to(&server);
        client.send(&post("/statefun", &looping)).unwrap();
        thread::sleep(Duration::from_millis(100)); // the function is looping now

        // Nothing in the crate can stop a running function: shutdown gives up waiting after
        // its timeout and says so; the runtime's own timeout fails the call meanwhile.
        assert!(!server.shutdown(), "shutdown reports the busy connection");

        // When the function ends at last, its reply still arrives whole.
        stop.store(true, Ordering::SeqCst);
        match client.read_outcome() {
            Outcome::Reply { status, closes, .. } => {
                assert_eq!(status, 200);
                assert!(closes, "a reply after shutdown closes its connection");
            }
            other => panic!("{other:?}"),
        }
    }

    /// Finding F4 of the fuzzing (FUZZ_FINDINGS.md, fixed in 06665d9): the adapter sliced the
    /// request target at byte 7 or 8 to look for `http://`, which panicked inside a multi-byte
    /// character. Found by `http_endpoint`.
    #[test]
    fn a_request_target_with_a_multibyte_character_is_answered_not_a_panic() {
        let (handler, _) = handler();
        let endpoint = Endpoint::new();
        for target in ["abcdefgһ", "abcdefһ", "/statеfun"] {
            let response = endpoint.respond_bytes(&handler, &RequestHead::new("POST", target), b"");
            assert_eq!(response.status(), 404, "{target:?}");
        }
        // The same over the server: an answer, not a connection closed by a panicking thread.
        let server = start(Server::builder(), handler);
        let mut client = Client::to(&server);
        client
            .send("POST /abcdһ HTTP/1.1\r\nContent-Length: 0\r\n\r\n".as_bytes())
            .unwrap();
        assert!(
            matches!(client.read_outcome(), Outcome::Reply { status: 404, .. }),
            "answered"
        );
        let _ = client.stream.shutdown(Shutdown::Both);
    }

    #[test]
    fn every_bad_body_gets_over_http_the_status_handle_gives_with_a_short_text_body() {
        let (handler, _) = handler();
        let reference = handler_ref();
        let server = start(Server::builder(), handler);
        let good = echo_request();
        let huge = claim(100, 1 << 40);
        let groups = deep_groups();
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            ("an empty body", Vec::new(), 400),
            ("a truncated body", good[..good.len() - 3].to_vec(), 400),
            ("a wrong wire type", vec![0xa0, 0x06, 0x01], 400),
            ("a huge length prefix", huge, 400),
            ("deeply nested groups", groups, 400),
            ("no invocation batch", vec![0x08, 0x01], 400),
            (
                "an unknown function type",
                Request::to("test/nobody", "1").invoke(ping(1)).to_bytes(),
                404,
            ),
            (
                "a state not carried",
                Request::to("test/state", "1").invoke(ping(1)).to_bytes(),
                400,
            ),
            (
                "an argument of another type",
                Request::to("test/typed", "1").invoke(ping(1)).to_bytes(),
                400,
            ),
            (
                "non-UTF-8 in a state name",
                invalid_utf8_request("NAME-s"),
                400,
            ),
            (
                "a panicking function",
                Request::to("test/panics", "1").invoke(ping(1)).to_bytes(),
                500,
            ),
        ];
        let mut client = Client::to(&server);
        for (what, body, status) in cases {
            assert_eq!(
                error_for(&reference, &body).status(),
                status,
                "{what}: handle()"
            );
            client.send(&post("/statefun", &body)).unwrap();
            match client.read_outcome() {
                Outcome::Reply {
                    status: got,
                    body: text,
                    closes,
                } => {
                    assert_eq!(got, status, "{what}: {}", String::from_utf8_lossy(&text));
                    assert!(text.len() <= 1024, "{what}: {} bytes", text.len());
                    let text = String::from_utf8(text).expect("UTF-8 text");
                    assert!(
                        !text.trim_end().chars().any(char::is_control),
                        "{what}: {text:?}"
                    );
                    assert!(!closes, "{what}: the connection keeps serving");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_content_type_is_accepted_and_another_one_is_415() {
        let (handler, _) = handler();
        let reference = handler_ref();
        let server = start(Server::builder(), handler);
        let body = echo_request();
        let mut client = Client::to(&server);
        let mut without = format!(
            "POST /statefun HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        without.extend_from_slice(&body);
        client.send(&without).unwrap();
        assert_eq!(
            client.read_outcome(),
            Outcome::Reply {
                status: 200,
                body: reference.handle(&body).unwrap(),
                closes: false
            }
        );
        for content_type in ["application/json", "text/plain", "application/x-protobuf"] {
            let mut request = format!(
                "POST /statefun HTTP/1.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(&body);
            let mut client = Client::to(&server);
            client.send(&request).unwrap();
            assert!(
                matches!(client.read_outcome(), Outcome::Reply { status: 415, .. }),
                "{content_type}"
            );
        }
    }

    #[test]
    fn a_head_over_16_kib_or_with_too_many_headers_is_431_and_closed() {
        let (handler, _) = handler();
        let server = start(Server::builder(), handler);
        let long = format!(
            "POST /statefun HTTP/1.1\r\nX-Long: {}\r\n\r\n",
            "x".repeat(20 * 1024)
        );
        let mut many = String::from("POST /statefun HTTP/1.1\r\n");
        for i in 0..65 {
            many.push_str(&format!("X-{i}: {i}\r\n"));
        }
        many.push_str("\r\n");
        for (what, request) in [("a 20 KiB head", long), ("65 headers", many)] {
            let mut client = Client::to(&server);
            client.send(request.as_bytes()).unwrap();
            match client.read_outcome() {
                Outcome::Reply { status, closes, .. } => {
                    assert_eq!(status, 431, "{what}");
                    assert!(closes, "{what}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_client_reading_the_reply_one_byte_at_a_time_cannot_hold_its_connection() {
        let special = special();
        let server = start(
            Server::builder().read_timeout(Duration::from_millis(500)),
            special.handler,
        );
        // A 32 MiB reply: more than the socket buffers hold, so the server's write waits on
        // the reader. The read timeout bounds the writing of the whole reply.
        let big = post(
            "/statefun",
            &Request::to("test/big", "1").invoke(ping(32)).to_bytes(),
        );
        let mut client = Client::to(&server);
        client.send(&big).unwrap();
        let mut byte = [0u8; 1];
        client.stream.read_exact(&mut byte).unwrap(); // the reply is being written
        assert_eq!(server.connections(), 1);
        let until = Instant::now() + Duration::from_secs(20);
        while server.connections() > 0 && Instant::now() < until {
            if client.stream.read(&mut byte).unwrap_or(0) == 0 {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }

        // The client never closed its end: the server did.
        assert_eq!(wait_for_no_connections(&server), 0);
        drop(client);
    }

    #[test]
    fn a_connection_that_never_sends_a_byte_is_closed_at_the_read_timeout() {
        let (handler, _) = handler();
        let server = start(
            Server::builder()
                .read_timeout(Duration::from_millis(300))
                .idle_timeout(Duration::from_secs(600)),
            handler,
        );
        let silent: Vec<Client> = (0..5).map(|_| Client::to(&server)).collect();
        let until = Instant::now() + Duration::from_secs(10);
        while server.connections() < 5 && Instant::now() < until {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(server.connections(), 5, "all five were accepted");

        // The clients keep their ends open and say nothing; the server closes them all.
        assert_eq!(wait_for_no_connections(&server), 0);
        drop(silent);
    }
}
