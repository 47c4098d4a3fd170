//! Hostile input: one test per class of bad input in SECURITY.md's table, each asserting
//! the exact error variant and HTTP status that `handle()` answers, and that nothing ran
//! (or, for a function's own failure, that no partial reply escaped). The fuzz targets in
//! `fuzz/` look for what these miss; every input they found becomes a test here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prost::Message;
use prost_types::Any;
use statefun_sync::proto::{self, to_function};
use statefun_sync::testing::{Reply, Request};
use statefun_sync::{Address, Context, Error, RequestReplyHandler, StatefulFunctions};

/// A one-byte message that no typed function accepts.
fn ping(n: u8) -> Any {
    Any {
        type_url: "type.googleapis.com/test.Ping".into(),
        value: vec![n],
    }
}

fn caller() -> Address {
    Address::new("test", "caller", "c1")
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
            ctx.unpack_state::<prost_types::Duration>("seen")?;
            Ok(())
        })
        .unwrap();
    functions
        .bind("test/panics", |ctx, _| {
            ctx.send("test/echo", "1", ping(1))?;
            panic!("deliberate panic in {}", ctx.address());
        })
        .unwrap();
    (RequestReplyHandler::new(functions), calls)
}

fn echo_request() -> Vec<u8> {
    Request::to("test/echo", "1")
        .with_state("seen", Some(ping(9)))
        .invoke_from(caller(), ping(1))
        .invoke(ping(2))
        .to_bytes()
}

/// The error `handle()` returns for `body`; panics if it returned a reply.
fn error_for(handler: &RequestReplyHandler, body: &[u8]) -> Error {
    match handler.handle(body) {
        Ok(reply) => panic!("expected an error, got a reply of {} bytes", reply.len()),
        Err(err) => err,
    }
}

fn assert_malformed(err: &Error, field_prefix: &str, what: &str) {
    match err {
        Error::MalformedRequest { field, .. } => {
            assert!(field.starts_with(field_prefix), "{what}: field {field}")
        }
        other => panic!("{what}: expected MalformedRequest, got {other:?}"),
    }
    assert_eq!(err.status(), 400, "{what}");
}

/// A varint, as protobuf encodes it.
fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

/// A length-delimited field `tag` holding `payload`.
fn field(tag: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = varint(u64::from(tag) << 3 | 2);
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
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
    let claim = 1u64 << 40; // 1 TiB: an allocation of this size would abort the test
    let mut batch_claim = vec![0xa2, 0x06];
    batch_claim.extend(varint(claim));
    let mut state_claim = vec![0x12];
    state_claim.extend(varint(claim));
    let state_claim = to_function(&state_claim);
    let mut value_claim = vec![0x0a, 0x01, b's', 0x12];
    value_claim.extend(varint(claim));
    let value_claim = to_function(&field(2, &value_claim)[..]);
    let mut argument_claim = vec![0x12];
    argument_claim.extend(varint(claim));
    let argument_claim = to_function(&field(3, &argument_claim));
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
    let mut groups = vec![0x4b; 10_000];
    groups.extend(std::iter::repeat_n(0x4c, 10_000));
    let nested_in_batch = to_function(&groups);
    let cases: [(&str, &[u8], &str); 2] = [
        ("in the batch", &nested_in_batch, "ToFunction.invocation"),
        ("at the top level", &groups, "ToFunction"),
    ];
    for (what, body, field) in cases {
        let err = error_for(&handler, body);
        assert_malformed(&err, field, what);
        assert!(
            err.chain().contains("nested too deeply"),
            "{what}: {}",
            err.chain()
        );
    }
}

#[test]
fn unknown_groups_nested_within_the_limit_are_skipped() {
    let (handler, calls) = handler();
    let mut body = echo_request();
    let mut groups = vec![0x4b; 50];
    groups.extend(std::iter::repeat_n(0x4c, 50));
    body.extend(groups);

    let reply = Reply::decode(&handler.handle(&body).unwrap()).unwrap();

    assert_eq!(reply.messages().len(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn deeply_nested_messages_in_an_argument_are_malformed_400() {
    let (handler, calls) = handler();
    // Invocations are decoded by prost: an invocation whose caller (field 1, an Address)
    // holds 10,000 nested unknown groups must hit prost's recursion limit, not the stack.
    let mut groups = vec![0x4b; 10_000];
    groups.extend(std::iter::repeat_n(0x4c, 10_000));
    let body = to_function(&field(3, &field(1, &groups)));

    let err = error_for(&handler, &body);

    assert_malformed(
        &err,
        "ToFunction.invocation.invocations[0]",
        "nested in a caller",
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// 20,000 until finding F3 (decoding is quadratic in the number of distinct states) is
// fixed; then 100,000, as for the repeated state below.
const DISTINCT_STATES: usize = 20_000;

#[test]
fn twenty_thousand_distinct_states_are_answered_and_only_the_used_one_changes() {
    let last = format!("s{}", DISTINCT_STATES - 1);
    let used = last.clone();
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/count", move |ctx, message| {
            ctx.set_state(&used, message)?;
            Ok(())
        })
        .unwrap();
    let handler = RequestReplyHandler::new(functions);
    let mut request = Request::to("test/count", "1");
    for i in 0..DISTINCT_STATES {
        request = request.with_state(&format!("s{i}"), Some(ping(1)));
    }
    let body = request.invoke(ping(2)).to_bytes();

    let reply = Reply::decode(&handler.handle(&body).unwrap()).unwrap();

    assert_eq!(reply.state_changes().len(), 1);
    assert_eq!(reply.modified(&last), Some(ping(2)));
}

#[test]
fn the_same_state_repeated_a_hundred_thousand_times_is_one_state() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/count", |ctx, _| {
            let value = ctx.get_state("s")?;
            ctx.reply(value.unwrap_or_default())?;
            ctx.delete_state("s")?;
            Ok(())
        })
        .unwrap();
    let handler = RequestReplyHandler::new(functions);
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
        assert!(
            matches!(&err, Error::UnknownFunctionType { function_type } if function_type == shown),
            "{typename:?}: {err:?}"
        );
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
        .pack_and_invoke(&prost_types::Duration::default())
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

/// A request whose string fields are all valid, with one of them replaced by `0xff`.
fn with_invalid_utf8(marker: &str) -> Vec<u8> {
    let mut body = proto::ToFunction {
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
    let at = body
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("marker in body");
    body[at] = 0xff;
    body
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
        let err = error_for(&handler, &with_invalid_utf8(marker));
        assert_malformed(&err, field, marker);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // The same request with valid text is answered: the 400s come from the bytes.
    let valid = with_invalid_utf8("ID-t");
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
    let text = err.chain();
    assert!(!text.contains('\r') && !text.contains('\n'), "{text:?}");
    assert!(text.len() < 1024, "{} bytes", text.len());
}

/// Finding F1 of the fuzzing (FUZZ_FINDINGS.md): `unpack_state` quotes the state's type
/// URL raw, so request bytes reach the error chain (and the HTTP error body and log line)
/// unescaped and unbounded. Found by `handle_bytes`; input minimized by hand.
#[test]
#[ignore = "F1: src/context.rs unpack_state formats the type URL without Shown; un-ignore once fixed"]
fn a_state_type_url_with_control_bytes_is_escaped_in_the_error() {
    let (handler, _) = handler();
    let url = format!("type.googleapis.com/x\0\r\n{}", "y".repeat(100_000));
    let body = Request::to("test/state", "1")
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

    assert!(matches!(err, Error::FunctionFailed { .. }), "{err:?}");
    let text = err.chain();
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(text.len() < 2048, "{} bytes", text.len());
}
