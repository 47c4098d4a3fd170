//! Hostile input on the 3.x protocol: the 3.x rows of SECURITY.md's table. Each test sends
//! bytes no honest runtime sends to `RequestReplyHandler::v3(..).handle` (and, for the last
//! one, to the crate's own HTTP server), and asserts the exact error variant, its HTTP
//! status (`Error::status()`), that nothing ran where nothing may run, and that error texts
//! stay short. Requests are built with prost (`proto::reqreply`), independently of the
//! crate's decoder; the fuzz targets `handle_bytes3` and `handle_structured3` look for
//! what these miss.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
#[cfg(feature = "server")]
use statefun_sync::http::Server;
use statefun_sync::proto::reqreply::{
    from_function, to_function, Address, FromFunction, ToFunction, TypedValue,
};
use statefun_sync::{Context, Error, Message, RequestReplyHandler, StatefulFunctions, ValueSpec};
use support::hostile::{
    assert_malformed, assert_short, assert_too_many_invocations, assert_too_many_states, claim,
    deep_groups, error_for, field, nested_groups, varint, with_invalid_utf8,
};

const INT: &str = "io.statefun.types/int";
const STRING: &str = "io.statefun.types/string";

static SEEN: ValueSpec<i32> = ValueSpec::named("seen");
static TOKEN: ValueSpec<String> = ValueSpec::named("token");

/// `test/count` declares `seen` (an int), reads it, adds one and replies with the count to
/// the caller; `test/token` declares `token` (a string), takes a string message and uses
/// it as a cancellation token (`send_after_cancellable`, then `cancel_delayed_message`);
/// `test/text` takes a string and sends it to the egress `test/out`. All count their calls.
fn handler() -> (RequestReplyHandler, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut functions = StatefulFunctions::new();
    let counter = calls.clone();
    functions
        .bind_message("test/count", move |ctx: &mut Context, _: Message| {
            counter.fetch_add(1, Ordering::SeqCst);
            let seen = ctx.get(&SEEN)?.unwrap_or(0) + 1;
            ctx.set(&SEEN, &seen)?;
            if let Some(caller) = ctx.caller() {
                ctx.send_to(caller, &seen)?;
            }
            Ok(())
        })
        .unwrap()
        .state(&SEEN);
    let counter = calls.clone();
    functions
        .bind_message("test/token", move |ctx: &mut Context, message: Message| {
            counter.fetch_add(1, Ordering::SeqCst);
            let token: String = message.get()?.unwrap_or_default();
            ctx.send_after_cancellable(Duration::from_secs(1), "test/count", "1", &1i32, &token)?;
            ctx.cancel_delayed_message(&token)?;
            ctx.set(&TOKEN, &token)?;
            Ok(())
        })
        .unwrap()
        .state(&TOKEN);
    let counter = calls.clone();
    functions
        .bind_message("test/text", move |ctx: &mut Context, message: Message| {
            counter.fetch_add(1, Ordering::SeqCst);
            let text: String = message.get()?.unwrap_or_default();
            ctx.send_egress("test/out", &text)?;
            Ok(())
        })
        .unwrap();
    (RequestReplyHandler::v3(functions).unwrap(), calls)
}

fn address(namespace: &str, name: &str, id: &str) -> Address {
    Address {
        namespace: namespace.into(),
        r#type: name.into(),
        id: id.into(),
    }
}

fn typed(typename: &str, value: Vec<u8>) -> TypedValue {
    TypedValue {
        typename: typename.into(),
        has_value: true,
        value: value.into(),
    }
}

fn int(value: i32) -> TypedValue {
    let mut bytes = vec![0x0d];
    bytes.extend_from_slice(&value.to_le_bytes());
    typed(INT, bytes)
}

/// A `StringWrapper` holding `text`, as an `io.statefun.types/string`.
fn string(text: &str) -> TypedValue {
    let mut bytes = vec![0x0a];
    bytes.extend(varint(text.len() as u64));
    bytes.extend_from_slice(text.as_bytes());
    typed(STRING, bytes)
}

fn state(name: &str, value: Option<TypedValue>) -> to_function::PersistedValue {
    to_function::PersistedValue {
        state_name: name.into(),
        state_value: value,
    }
}

fn invocation(caller: Option<Address>, argument: TypedValue) -> to_function::Invocation {
    to_function::Invocation {
        caller,
        argument: Some(argument),
    }
}

fn request(
    target: Address,
    states: Vec<to_function::PersistedValue>,
    invocations: Vec<to_function::Invocation>,
) -> Vec<u8> {
    ToFunction {
        request: Some(to_function::Request::Invocation(
            to_function::InvocationBatchRequest {
                target: Some(target),
                state: states,
                invocations,
            },
        )),
    }
    .encode_to_vec()
}

/// `test/count/1` with `seen` = 1, invoked once from `test/caller/c`.
fn count_request() -> Vec<u8> {
    request(
        address("test", "count", "1"),
        vec![state("seen", Some(int(1)))],
        vec![invocation(Some(address("test", "caller", "c")), int(0))],
    )
}

fn decode_reply(reply: &[u8]) -> from_function::Response {
    FromFunction::decode(reply)
        .expect("a 3.x FromFunction")
        .response
        .expect("a response")
}

/// `ToFunction { invocation: <batch> }` around the raw bytes of a batch, with the target
/// `test/count/1` first.
fn to_function(batch_rest: &[u8]) -> Vec<u8> {
    let mut batch = field(1, &address("test", "count", "1").encode_to_vec());
    batch.extend_from_slice(batch_rest);
    field(100, &batch)
}

#[test]
fn a_huge_length_prefix_is_refused_without_allocating_it() {
    let (handler, calls) = handler();
    let huge = 1u64 << 40; // 1 TiB: an allocation of this size would abort the test
    let seen = field(1, b"seen");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("the batch", claim(100, huge), "ToFunction.invocation"),
        (
            "a state",
            to_function(&claim(2, huge)),
            "ToFunction.invocation.state[0]",
        ),
        (
            "a state's TypedValue",
            to_function(&field(2, &[seen.clone(), claim(2, huge)].concat())),
            "ToFunction.invocation.state[0]",
        ),
        (
            "the typename in a state's TypedValue",
            to_function(&field(
                2,
                &[seen.clone(), field(2, &claim(1, huge))].concat(),
            )),
            "ToFunction.invocation.state[0].state_value",
        ),
        (
            "the value in a state's TypedValue",
            to_function(&field(
                2,
                &[seen.clone(), field(2, &claim(3, huge))].concat(),
            )),
            "ToFunction.invocation.state[0].state_value",
        ),
        (
            "an invocation",
            to_function(&claim(3, huge)),
            "ToFunction.invocation.invocations[0]",
        ),
        (
            "an argument's TypedValue",
            to_function(&field(3, &claim(2, huge))),
            "ToFunction.invocation.invocations[0]",
        ),
        (
            "the value in an argument",
            to_function(&field(3, &field(2, &claim(3, huge)))),
            "ToFunction.invocation.invocations[0]",
        ),
    ];
    for (what, body, field) in cases {
        assert_malformed(&error_for(&handler, &body), field, what);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing ran");
}

#[test]
fn groups_nested_past_the_limit_in_a_typed_value_are_malformed_400() {
    let (handler, calls) = handler();
    let groups = deep_groups();
    // In a state's TypedValue (the crate's own reader) ...
    let in_state = to_function(&field(
        2,
        &[
            field(1, b"seen"),
            field(2, &[field(1, INT.as_bytes()), groups.clone()].concat()),
        ]
        .concat(),
    ));
    let err = error_for(&handler, &in_state);
    assert_malformed(
        &err,
        "ToFunction.invocation.state[0].state_value",
        "in a state",
    );
    assert!(
        err.report().contains("nested too deeply"),
        "{}",
        err.report()
    );
    // ... in an argument's TypedValue and in a caller (prost's, with its recursion limit).
    let in_argument = to_function(&field(3, &field(2, &groups)));
    let in_caller = to_function(&field(3, &field(1, &groups)));
    for (what, body) in [("in an argument", in_argument), ("in a caller", in_caller)] {
        let err = error_for(&handler, &body);
        assert_malformed(&err, "ToFunction.invocation.invocations[0]", what);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing ran");

    // Within the limit, unknown groups in a state's TypedValue are skipped.
    let shallow = nested_groups(50);
    let mut value = int(41).encode_to_vec();
    value.extend(shallow);
    let body = to_function(
        &[
            field(2, &[field(1, b"seen"), field(2, &value)].concat()),
            field(3, &invocation(None, int(0)).encode_to_vec()),
        ]
        .concat(),
    );
    let reply = decode_reply(&handler.handle(&body).unwrap());
    let from_function::Response::InvocationResult(result) = reply else {
        panic!("{reply:?}");
    };
    assert_eq!(result.state_mutations[0].state_value, Some(int(42)));
}

#[test]
fn invalid_utf8_in_a_string_field_is_malformed_400_naming_the_field() {
    let (handler, calls) = handler();
    let body = request(
        address("ns-t", "count", "id-t"),
        vec![
            state("name-s", Some(typed("type-s/x", vec![]))),
            state("seen", None),
        ],
        vec![invocation(
            Some(address("ns-c", "type-c", "id-c")),
            typed("type-a/x", vec![]),
        )],
    );
    let cases = [
        (
            "ns-t",
            "ToFunction.invocation.target",
            "the target's namespace",
        ),
        ("id-t", "ToFunction.invocation.target", "the target's id"),
        (
            "name-s",
            "ToFunction.invocation.state[0].state_name",
            "a state name",
        ),
        (
            "type-s",
            "ToFunction.invocation.state[0].state_value",
            "a state's typename",
        ),
        (
            "ns-c",
            "ToFunction.invocation.invocations[0]",
            "the caller's namespace",
        ),
        (
            "type-c",
            "ToFunction.invocation.invocations[0]",
            "the caller's type",
        ),
        (
            "id-c",
            "ToFunction.invocation.invocations[0]",
            "the caller's id",
        ),
        (
            "type-a",
            "ToFunction.invocation.invocations[0]",
            "the argument's typename",
        ),
    ];
    for (marker, field, what) in cases {
        let err = error_for(&handler, &with_invalid_utf8(&body, marker));
        assert_malformed(&err, field, what);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing ran");
}

#[test]
fn a_typed_value_field_with_the_wrong_wire_type_is_malformed_400() {
    let (handler, calls) = handler();
    let seen = field(1, b"seen");
    // A TypedValue's typename (1) as a varint, has_value (2) as bytes, value (3) as fixed32.
    let wrong: [(&str, Vec<u8>); 3] = [
        ("typename as a varint", vec![0x08, 0x01]),
        ("has_value as bytes", field(2, b"x")),
        ("value as fixed32", vec![0x1d, 1, 2, 3, 4]),
    ];
    for (what, typed_value) in wrong {
        let in_state = to_function(&field(2, &[seen.clone(), field(2, &typed_value)].concat()));
        let err = error_for(&handler, &in_state);
        assert_malformed(&err, "ToFunction.invocation.state[0].state_value", what);

        let in_argument =
            to_function(&[field(2, &seen), field(3, &field(2, &typed_value))].concat());
        let err = error_for(&handler, &in_argument);
        assert_malformed(&err, "ToFunction.invocation.invocations[0]", what);
    }
    // The state value itself as a varint instead of a message.
    let err = error_for(
        &handler,
        &to_function(&field(2, &[seen, vec![0x10, 1]].concat())),
    );
    assert_malformed(
        &err,
        "ToFunction.invocation.state[0]",
        "state_value as a varint",
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing ran");
}

#[test]
fn more_states_than_max_states_or_invocations_than_max_invocations_are_413() {
    let (handler, calls) = handler();
    let handler = handler.max_states(10).max_invocations(10);
    let mut states: Vec<_> = (0..10).map(|i| state(&format!("s{i}"), None)).collect();
    states[0] = state("seen", Some(int(1)));
    let one = vec![invocation(None, int(0))];
    // 10 distinct states are accepted, however often one repeats.
    let mut repeated = states.clone();
    repeated.extend(std::iter::repeat_n(state("s1", Some(int(5))), 1000));
    assert!(handler
        .handle(&request(
            address("test", "count", "1"),
            repeated,
            one.clone()
        ))
        .is_ok());
    assert_eq!(calls.swap(0, Ordering::SeqCst), 1);

    let mut eleven = states.clone();
    eleven.push(state("s10", None));
    let err = error_for(
        &handler,
        &request(address("test", "count", "1"), eleven, one),
    );
    assert_too_many_states(&err, 10);

    let invocations = vec![invocation(None, int(0)); 11];
    let err = error_for(
        &handler,
        &request(address("test", "count", "1"), states, invocations),
    );
    assert_too_many_invocations(&err, 10);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "refused before anything ran"
    );
}

#[test]
fn one_state_over_the_default_limit_is_413_even_when_the_handshake_would_answer() {
    let (handler, calls) = handler();
    // `seen` is missing: without the limit, this would be a handshake reply.
    let states: Vec<_> = (0..=RequestReplyHandler::DEFAULT_MAX_STATES)
        .map(|i| state(&format!("u{i}"), None))
        .collect();
    let body = request(
        address("test", "count", "1"),
        states,
        vec![invocation(None, int(0))],
    );
    let err = error_for(&handler, &body);
    assert_too_many_states(&err, RequestReplyHandler::DEFAULT_MAX_STATES);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_handshake_asked_for_by_a_request_with_a_hundred_thousand_unknown_states_is_bounded() {
    let (handler, calls) = handler();
    // Every state but the declared one: the largest request under the default limit.
    let unknown = RequestReplyHandler::DEFAULT_MAX_STATES - 1;
    let states: Vec<_> = (0..unknown)
        .map(|i| state(&format!("u{i}"), Some(int(i as i32))))
        .collect();
    let body = request(
        address("test", "count", "1"),
        states,
        vec![invocation(Some(address("test", "caller", "c")), int(0)); 1000],
    );

    let started = Instant::now();
    let reply = handler.handle(&body).unwrap();
    let elapsed = started.elapsed();

    // Linear work: a quadratic state lookup took ~50 s for 100,000 states (finding F3).
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let from_function::Response::IncompleteInvocationContext(context) = decode_reply(&reply) else {
        panic!("not a handshake");
    };
    let names: Vec<_> = context
        .missing_values
        .iter()
        .map(|s| &s.state_name)
        .collect();
    assert_eq!(
        names,
        ["seen"],
        "only the declared state, none of the unknown ones"
    );
    assert!(reply.len() < 100, "{} bytes", reply.len());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "nothing ran before the handshake"
    );
}

#[test]
fn a_token_or_typename_of_megabytes_is_carried_or_refused_with_a_short_error() {
    let (handler, calls) = handler();
    let megabytes = "t".repeat(4 << 20);
    let caller = Some(address("test", "caller", "c"));

    // A 4 MiB cancellation token from the request: the function's own data, sent as is.
    let body = request(
        address("test", "token", "1"),
        vec![state("token", None)],
        vec![invocation(caller.clone(), string(&megabytes))],
    );
    let from_function::Response::InvocationResult(result) =
        decode_reply(&handler.handle(&body).unwrap())
    else {
        panic!("not an invocation result");
    };
    let [sent, cancelled] = &result.delayed_invocations[..] else {
        panic!("{} delayed invocations", result.delayed_invocations.len());
    };
    assert_eq!(sent.cancellation_token.len(), megabytes.len());
    assert!(cancelled.is_cancellation_request && cancelled.cancellation_token == megabytes);

    // An empty token: the function's error (it passed up InvalidArgument), a 500.
    let body = request(
        address("test", "token", "1"),
        vec![state("token", None)],
        vec![invocation(caller.clone(), string(""))],
    );
    let err = error_for(&handler, &body);
    assert!(
        matches!(err, Error::FunctionFailed { invocation: 0, .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), 500);
    assert!(err.report().contains("token is empty"), "{}", err.report());

    // A 4 MiB typename: of an argument (UnexpectedMessageType), of a state value read with
    // `get` (UnreadableState), of the target (UnknownFunctionType). Each error quotes it
    // cut short, without control characters.
    let long_typename = format!("x\r\n/{megabytes}");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "an argument's typename",
            request(
                address("test", "text", "1"),
                vec![],
                vec![invocation(caller.clone(), typed(&long_typename, vec![]))],
            ),
            400,
        ),
        (
            "a state's typename",
            request(
                address("test", "count", "1"),
                vec![state("seen", Some(typed(&long_typename, vec![1])))],
                vec![invocation(caller.clone(), int(0))],
            ),
            400,
        ),
        (
            "the target's type",
            request(address("test", &long_typename, "1"), vec![], vec![]),
            404,
        ),
    ];
    for (what, body, status) in cases {
        let err = error_for(&handler, &body);
        let expected = match status {
            404 => matches!(err, Error::UnknownFunctionType { .. }),
            _ if what.contains("argument") => matches!(err, Error::UnexpectedMessageType { .. }),
            _ => matches!(err, Error::UnreadableState { .. }),
        };
        assert!(expected, "{what}: {err:?}");
        assert_eq!(err.status(), status, "{what}");
        assert_short(&err, what);
    }
    // The token function twice; the argument's and the state's typename each reached a
    // function (whose read failed); the unknown target ran nothing.
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[test]
fn a_state_without_a_value_but_with_megabytes_of_bytes_reads_as_no_value() {
    let (handler, calls) = handler();
    let no_value = TypedValue {
        typename: INT.into(),
        has_value: false,
        value: vec![0x0d; 4 << 20].into(),
    };
    let body = request(
        address("test", "count", "1"),
        vec![state("seen", Some(no_value))],
        vec![invocation(Some(address("test", "caller", "c")), int(0))],
    );

    let reply = handler.handle(&body).unwrap();

    // Present (no handshake), read as no value (the count starts at 1), never echoed.
    assert!(reply.len() < 200, "{} bytes", reply.len());
    let from_function::Response::InvocationResult(result) = decode_reply(&reply) else {
        panic!("not an invocation result");
    };
    assert_eq!(result.state_mutations[0].state_value, Some(int(1)));
    assert_eq!(result.outgoing_messages[0].argument, Some(int(1)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Sends `body` to the server on a connection of its own; the status and body of the
/// response.
#[cfg(feature = "server")]
fn post(server: &Server, body: &[u8]) -> (u16, Vec<u8>) {
    let response = support::http::Client::connect(server.local_addr().unwrap())
        .and_then(|mut client| client.post("/statefun", body))
        .expect("a response");
    (response.status, response.body)
}

#[cfg(feature = "server")]
#[test]
fn over_http_each_hostile_body_gets_the_status_handle_gives_with_a_short_text_body() {
    let (reference, _) = handler();
    let (handler, _) = handler();
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .start(handler)
        .expect("a server on loopback");
    let long_typename = format!("x\r\n/{}", "t".repeat(1 << 20));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("a huge length prefix", claim(100, 1 << 40), 400),
        (
            "deeply nested groups in a state",
            to_function(&field(
                2,
                &[field(1, b"seen"), field(2, &deep_groups())].concat(),
            )),
            400,
        ),
        (
            "invalid UTF-8 in a state name",
            with_invalid_utf8(&count_request(), "seen"),
            400,
        ),
        (
            "a TypedValue field of the wrong wire type",
            to_function(&field(
                2,
                &[field(1, b"seen"), field(2, &[0x08, 0x01])].concat(),
            )),
            400,
        ),
        (
            "a typename of a megabyte",
            request(
                address("test", "text", "1"),
                vec![],
                vec![invocation(None, typed(&long_typename, vec![]))],
            ),
            400,
        ),
        (
            "an empty cancellation token",
            request(
                address("test", "token", "1"),
                vec![state("token", None)],
                vec![invocation(None, string(""))],
            ),
            500,
        ),
    ];
    for (what, body, status) in cases {
        assert_eq!(
            error_for(&reference, &body).status(),
            status,
            "{what}: handle()"
        );
        let (got, text) = post(&server, &body);
        assert_eq!(got, status, "{what}: {}", String::from_utf8_lossy(&text));
        assert!(text.len() <= 1024, "{what}: {} bytes", text.len());
        let text = String::from_utf8(text).expect("UTF-8 text");
        assert!(
            !text.trim_end().chars().any(char::is_control),
            "{what}: {text:?}"
        );
    }
    // The handshake over HTTP: a 200 with the IncompleteInvocationContext.
    let handshake = request(
        address("test", "count", "1"),
        vec![],
        vec![invocation(None, int(0))],
    );
    let (status, body) = post(&server, &handshake);
    assert_eq!(status, 200);
    assert!(matches!(
        decode_reply(&body),
        from_function::Response::IncompleteInvocationContext(_)
    ));
    assert!(server.shutdown());
}
