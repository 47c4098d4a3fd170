//! `LocalRuntime` speaking 3.x: the state handshake and the re-sent batch, a state that
//! changes its type, cancellation by token, expiration on the virtual clock, typed state
//! read-back, and remote endpoints (the crate's server, and a scripted endpoint that
//! checks the bytes on the wire and says what an SDK should not).

mod support;

use std::sync::mpsc;
use std::time::Duration;

use prost::Message as _;
use prost_types::Any;
use statefun_sync::proto::egress::KafkaProducerRecord;
use statefun_sync::proto::reqreply::{self as proto, from_function, to_function, TypedValue};
use statefun_sync::testing::v3::StateDeclaration;
use statefun_sync::testing::{LocalRuntime, RemoteError, RuntimeError};
use statefun_sync::{
    Context, Error, Expiration, Message, ProtocolVersion, RequestReplyHandler, StatefulFunctions,
    ValueSpec,
};
use support::scripted::{http_response, scripted_endpoint};

const SEEN: ValueSpec<i32> = ValueSpec::named("seen");
const NAME: ValueSpec<String> = ValueSpec::named("name");

/// `test/counter` counts its messages in `seen` and emits the count to `test/out`; it
/// also declares `name`, which it never uses.
fn counter() -> StatefulFunctions {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/counter", |ctx: &mut Context, _: Message| {
            let seen = ctx.get(&SEEN)?.unwrap_or(0) + 1;
            ctx.set(&SEEN, &seen)?;
            ctx.send_egress("test/out", &seen)?;
            Ok(())
        })
        .unwrap()
        .state(&SEEN)
        .state(&NAME);
    functions
}

fn sizes(runtime: &LocalRuntime) -> Vec<(String, usize)> {
    runtime
        .history()
        .iter()
        .map(|b| (b.target.id().to_owned(), b.size))
        .collect()
}

#[test]
fn the_first_batch_of_a_type_is_sent_twice_once_without_states_then_with_them() {
    let mut runtime = LocalRuntime::v3(counter()).unwrap();
    assert_eq!(runtime.protocol_version(), ProtocolVersion::V3);
    assert!(runtime.registered_states("test/counter").is_empty());
    runtime.send("test/counter", "a", &"x".to_string()).unwrap();
    runtime.send("test/counter", "a", &"y".to_string()).unwrap();

    assert_eq!(runtime.run().unwrap(), 1, "one batch, sent twice");

    assert_eq!(sizes(&runtime), [("a".into(), 2), ("a".into(), 2)]);
    assert_eq!(
        runtime.registered_states("test/counter"),
        [StateDeclaration::from(&SEEN), StateDeclaration::from(&NAME)]
    );
    assert_eq!(runtime.get("test/counter", "a", &SEEN).unwrap(), Some(2));
    assert_eq!(runtime.egress_values::<i32>("test/out").unwrap(), [1, 2]);

    // The states are registered for the type: another address needs no handshake.
    runtime.send("test/counter", "b", &"z".to_string()).unwrap();
    runtime.run().unwrap();
    assert_eq!(sizes(&runtime)[2..], [("b".into(), 1)]);
    assert_eq!(runtime.get("test/counter", "b", &SEEN).unwrap(), Some(1));
    assert_eq!(runtime.get("test/counter", "a", &NAME).unwrap(), None);
}

#[test]
fn a_handler_built_beforehand_gives_its_version() {
    let runtime = LocalRuntime::from_handler(RequestReplyHandler::v3(counter()).unwrap());
    assert_eq!(runtime.protocol_version(), ProtocolVersion::V3);
    let runtime = LocalRuntime::from_handler(RequestReplyHandler::v2(StatefulFunctions::new()));
    assert_eq!(runtime.protocol_version(), ProtocolVersion::V2);
}

#[test]
fn untyped_states_and_yaml_declarations_are_refused_on_3x() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/untyped", |_, _| Ok(()))
        .unwrap()
        .state("seen");
    assert!(matches!(
        LocalRuntime::v3(functions),
        Err(Error::UntypedState { .. })
    ));
    let err = LocalRuntime::v3(counter())
        .unwrap()
        .declare_states("test/counter", ["seen"])
        .unwrap_err();
    assert!(
        err.report().contains("through the handshake"),
        "{}",
        err.report()
    );
}

#[test]
fn typed_state_reads_back_and_can_be_set_to_start_from() {
    let mut runtime = LocalRuntime::v3(counter()).unwrap();
    // Set before any run: registered as the binding declares it, so no handshake for it.
    runtime.set("test/counter", "a", &SEEN, &41).unwrap();
    runtime
        .set("test/counter", "a", &NAME, &"ann".into())
        .unwrap();
    runtime.send("test/counter", "a", &"x".to_string()).unwrap();
    runtime.run().unwrap();
    assert_eq!(runtime.history().len(), 1);
    assert_eq!(runtime.get("test/counter", "a", &SEEN).unwrap(), Some(42));
    assert_eq!(
        runtime.get("test/counter", "a", &NAME).unwrap(),
        Some("ann".to_string())
    );
    let raw = runtime.state("test/counter", "a", "seen").unwrap().unwrap();
    assert_eq!(raw.type_url, "io.statefun.types/int");
    assert_eq!(raw.value, [0x0d, 42, 0, 0, 0]);

    // Read as another type: an error naming both types, not a panic.
    const SEEN_AS_LONG: ValueSpec<i64> = ValueSpec::named("seen");
    let err = runtime.get("test/counter", "a", &SEEN_AS_LONG).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::UnreadableTypedState { state, .. } if state == "seen"),
        "{err:?}"
    );
    assert!(
        err.report().contains("`io.statefun.types/long`")
            && err.report().contains("`io.statefun.types/int`"),
        "{}",
        err.report()
    );
    // Set as another type: refused.
    let err = runtime
        .set("test/counter", "a", &SEEN_AS_LONG, &1)
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::StateTypeMismatch { registered, found, .. }
            if registered == "io.statefun.types/int" && found == "io.statefun.types/long"),
        "{err:?}"
    );
    // Cleared, and unknown.
    runtime
        .set_state("test/counter", "a", "seen", None)
        .unwrap();
    assert_eq!(runtime.get("test/counter", "a", &SEEN).unwrap(), None);
    assert!(matches!(
        runtime.state("test/counter", "a", "nope"),
        Err(RuntimeError::UnknownState { .. })
    ));
}

#[test]
fn a_modify_of_another_type_than_the_registered_one_fails_the_batch() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/liar", |ctx: &mut Context, _: Message| {
            // The untyped API lets a function write any typename into a typed state.
            ctx.set_state(
                "seen",
                Any {
                    type_url: "io.statefun.types/long".into(),
                    value: vec![0x09, 5, 0, 0, 0, 0, 0, 0, 0],
                },
            )?;
            ctx.send_egress("test/out", &1)?;
            Ok(())
        })
        .unwrap()
        .state(&SEEN);
    let mut runtime = LocalRuntime::v3(functions).unwrap();
    runtime.send("test/liar", "a", &0).unwrap();

    let err = runtime.run().unwrap_err();

    match &err {
        RuntimeError::StateTypeMismatch {
            address,
            state,
            registered,
            found,
        } => {
            assert_eq!(address.to_string(), "test/liar/a");
            assert_eq!(state, "seen");
            assert_eq!(registered, "io.statefun.types/int");
            assert_eq!(found, "io.statefun.types/long");
        }
        other => panic!("expected StateTypeMismatch, got {other:?}"),
    }
    assert!(err.report().contains("`test/liar`"), "{}", err.report());
    // Not applied, and the runtime stopped.
    assert_eq!(runtime.get("test/liar", "a", &SEEN).unwrap(), None);
    assert!(runtime.egress("test/out").is_empty());
    assert_eq!(runtime.pending_messages(), 1);
    assert!(matches!(runtime.run(), Err(RuntimeError::Stopped { .. })));
}

/// `test/timer` takes commands: `arm:<token>` sends its id to `test/sink` in 60 s,
/// cancellable with the token; `disarm:<token>` cancels it. `test/sink` emits what it
/// gets to `test/fired`. `test/canceller` cancels the token it is sent.
fn timers() -> LocalRuntime {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/timer", |ctx: &mut Context, message: Message| {
            let command: String = message.get()?.unwrap_or_default();
            let id = ctx.address().id().to_owned();
            for step in command.split(',') {
                match step.split_once(':') {
                    Some(("arm", token)) => ctx.send_after_cancellable(
                        Duration::from_secs(60),
                        "test/sink",
                        &id,
                        &token.to_string(),
                        token,
                    )?,
                    Some(("disarm", token)) => ctx.cancel_delayed_message(token)?,
                    _ => anyhow::bail!("unknown command {step:?}"),
                }
            }
            Ok(())
        })
        .unwrap();
    functions
        .bind_message("test/sink", |ctx: &mut Context, message: Message| {
            Ok(ctx.send_egress("test/fired", &message.get::<String>()?.unwrap_or_default())?)
        })
        .unwrap();
    functions
        .bind_message("test/canceller", |ctx: &mut Context, message: Message| {
            Ok(ctx.cancel_delayed_message(&message.get::<String>()?.unwrap_or_default())?)
        })
        .unwrap();
    LocalRuntime::v3(functions).unwrap()
}

fn command(runtime: &mut LocalRuntime, typename: &str, id: &str, command: &str) {
    runtime.send(typename, id, &command.to_string()).unwrap();
    runtime.run().unwrap();
}

fn fired(runtime: &LocalRuntime) -> Vec<String> {
    runtime.egress_values::<String>("test/fired").unwrap()
}

#[test]
fn a_cancelled_delayed_message_never_arrives() {
    let mut runtime = timers();
    command(&mut runtime, "test/timer", "x", "arm:t1,arm:t2");
    assert_eq!(runtime.pending_delayed().count(), 2);

    command(&mut runtime, "test/timer", "x", "disarm:t1");

    assert_eq!(runtime.pending_delayed().count(), 1);
    runtime.advance(Duration::from_secs(60)).unwrap();
    assert_eq!(fired(&runtime), ["t2"]);
    // Cancelling a delivered message does nothing; its token is free again.
    command(&mut runtime, "test/timer", "x", "disarm:t2,arm:t2");
    runtime.advance(Duration::from_secs(60)).unwrap();
    assert_eq!(fired(&runtime), ["t2", "t2"]);
}

#[test]
fn a_message_sent_and_cancelled_in_one_batch_frees_its_token_at_once() {
    let mut runtime = timers();
    command(&mut runtime, "test/timer", "x", "arm:t,disarm:t,arm:t");
    assert_eq!(runtime.pending_delayed().count(), 1);
    runtime.advance(Duration::from_secs(60)).unwrap();
    assert_eq!(fired(&runtime), ["t"]);
}

#[test]
fn tokens_are_scoped_by_the_id_of_the_address_as_the_runtime_keys_them() {
    let mut runtime = timers();
    command(&mut runtime, "test/timer", "x", "arm:t");
    command(&mut runtime, "test/timer", "y", "arm:t");
    // Another function type with the id "x" shares x's tokens (the runtime keys its
    // state by id); the id "z" has none.
    command(&mut runtime, "test/canceller", "x", "t");
    command(&mut runtime, "test/canceller", "z", "t");
    runtime.advance(Duration::from_secs(60)).unwrap();
    assert_eq!(fired(&runtime), ["t"]);
    let targets: Vec<_> = runtime
        .history()
        .iter()
        .filter(|b| b.target.name() == "sink")
        .map(|b| b.target.id().to_owned())
        .collect();
    assert_eq!(targets, ["y"]);
}

#[test]
fn a_second_message_with_a_pending_token_fails_the_batch() {
    let mut runtime = timers();
    command(&mut runtime, "test/timer", "x", "arm:t");
    runtime
        .send("test/timer", "x", &"arm:t".to_string())
        .unwrap();

    let err = runtime.run().unwrap_err();

    assert!(
        matches!(&err, RuntimeError::RejectedReply { address, reason }
            if address.to_string() == "test/timer/x" && reason.contains("`t`")),
        "{err:?}"
    );
    assert_eq!(runtime.pending_delayed().count(), 1, "not applied");
}

const VISITS: ValueSpec<i32> =
    ValueSpec::named("visits").expire_after_call(Duration::from_secs(60));
const LAST: ValueSpec<String> =
    ValueSpec::named("last").expire_after_write(Duration::from_secs(60));

/// `test/visits`: "write" counts in `visits` and writes `last`; "look" writes nothing
/// and emits what it sees to `test/seen`.
fn expiring() -> LocalRuntime {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/visits", |ctx: &mut Context, message: Message| {
            if message.get::<String>()?.as_deref() == Some("write") {
                let visits = ctx.get(&VISITS)?.unwrap_or(0) + 1;
                ctx.set(&VISITS, &visits)?;
                ctx.set(&LAST, &format!("visit {visits}"))?;
            } else {
                let seen = format!("{:?} {:?}", ctx.get(&VISITS)?, ctx.get(&LAST)?);
                ctx.send_egress("test/seen", &seen)?;
            }
            Ok(())
        })
        .unwrap()
        .state(&VISITS)
        .state(&LAST);
    LocalRuntime::v3(functions).unwrap()
}

#[test]
fn states_expire_after_call_or_after_write_on_the_virtual_clock() {
    let mut runtime = expiring();
    assert_eq!(runtime.registered_states("test/visits"), []);
    command(&mut runtime, "test/visits", "a", "write");
    assert_eq!(
        runtime.registered_states("test/visits")[0].expiration,
        Some(Expiration::AfterCall(Duration::from_secs(60)))
    );

    // At 59 s a call that only reads: both are alive, and the call renews `visits`.
    runtime.advance(Duration::from_secs(59)).unwrap();
    command(&mut runtime, "test/visits", "a", "look");
    // At 60 s `last`, written at 0 s, is gone; `visits`, last called at 59 s, is not.
    runtime.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(runtime.get("test/visits", "a", &LAST).unwrap(), None);
    assert_eq!(runtime.get("test/visits", "a", &VISITS).unwrap(), Some(1));
    // Reading it here is no call: at 119 s, 60 s after the last call, it is gone too.
    runtime.advance(Duration::from_secs(58)).unwrap();
    assert_eq!(runtime.get("test/visits", "a", &VISITS).unwrap(), Some(1));
    runtime.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(runtime.get("test/visits", "a", &VISITS).unwrap(), None);
    // The function sees what the runtime sees.
    command(&mut runtime, "test/visits", "a", "look");
    command(&mut runtime, "test/visits", "a", "write");
    assert_eq!(
        runtime.egress_values::<String>("test/seen").unwrap(),
        [
            "Some(1) Some(\"visit 1\")".to_string(),
            "None None".to_string()
        ]
    );
    assert_eq!(runtime.get("test/visits", "a", &VISITS).unwrap(), Some(1));
}

#[test]
fn kafka_records_of_3x_read_back_as_their_message_type() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/producer", |ctx: &mut Context, message: Message| {
            let text: String = message.get()?.unwrap_or_default();
            let record = KafkaProducerRecord {
                key: ctx.address().id().to_owned(),
                value_bytes: text.into_bytes(),
                topic: "greetings".into(),
            };
            Ok(ctx.send_egress("test/kafka", &record)?)
        })
        .unwrap();
    let mut runtime = LocalRuntime::v3(functions).unwrap();
    runtime
        .send("test/producer", "k", &"hi".to_string())
        .unwrap();
    runtime.run().unwrap();
    let records = runtime
        .egress_values::<KafkaProducerRecord>("test/kafka")
        .unwrap();
    assert_eq!(
        records,
        [KafkaProducerRecord {
            key: "k".into(),
            value_bytes: b"hi".to_vec(),
            topic: "greetings".into(),
        }]
    );
    assert!(runtime.egress_values::<String>("test/kafka").is_err());
}

// ---------------------------------------------------------------------------------------
// Remote endpoints
// ---------------------------------------------------------------------------------------

/// A 3.x function behind the crate's own server, next to a local one.
#[cfg(feature = "server")]
#[test]
fn a_3x_function_behind_the_crates_server_does_the_handshake_over_http() {
    let mut remote = StatefulFunctions::new();
    remote
        .bind_message("remote/doubler", |ctx: &mut Context, message: Message| {
            let calls = ctx.get(&SEEN)?.unwrap_or(0) + 1;
            ctx.set(&SEEN, &calls)?;
            let caller = ctx.caller().expect("a caller");
            ctx.send_to(caller, &(message.get::<i64>()?.unwrap_or_default() * 2))?;
            Ok(())
        })
        .unwrap()
        .state(&SEEN);
    let server = statefun_sync::http::Server::builder()
        .bind("127.0.0.1:0")
        .start(RequestReplyHandler::v3(remote).unwrap())
        .unwrap();
    let url = server.url();

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
    let mut runtime = LocalRuntime::v3(local)
        .unwrap()
        .route_to_endpoint("remote/doubler", &url)
        .unwrap();
    runtime.send("local/asker", "a", &21i64).unwrap();
    runtime.run().unwrap();
    runtime.send("local/asker", "a", &5i64).unwrap();
    runtime.run().unwrap();

    assert_eq!(
        runtime.egress_values::<i64>("local/answers").unwrap(),
        [42, 10]
    );
    assert_eq!(runtime.get("remote/doubler", "d", &SEEN).unwrap(), Some(2));
    assert_eq!(
        runtime.registered_states("remote/doubler"),
        [StateDeclaration::from(&SEEN)]
    );
    let to_remote = runtime
        .history()
        .iter()
        .filter(|b| b.target.namespace() == "remote")
        .count();
    assert_eq!(
        to_remote, 3,
        "the handshake, the re-sent batch, the second batch"
    );
    server.shutdown();
}

/// An endpoint that answers its requests, one connection each, with `replies` in turn
/// (3.x `FromFunction` bodies, 200 and octet-stream), and hands back each request body.
/// It gives up after 10 seconds without a client.
fn scripted(replies: Vec<Vec<u8>>) -> (String, mpsc::Receiver<Vec<u8>>) {
    let responses = replies
        .iter()
        .map(|reply| http_response("200 OK", "application/octet-stream", reply))
        .collect();
    scripted_endpoint(responses)
}

fn handshake(specs: &[(&str, &str)]) -> Vec<u8> {
    let missing_values = specs
        .iter()
        .map(|(name, typename)| from_function::PersistedValueSpec {
            state_name: (*name).into(),
            expiration_spec: Some(from_function::ExpirationSpec::default()),
            type_typename: (*typename).into(),
        })
        .collect();
    proto::FromFunction {
        response: Some(from_function::Response::IncompleteInvocationContext(
            from_function::IncompleteInvocationContext { missing_values },
        )),
    }
    .encode_to_vec()
}

fn result(response: from_function::InvocationResponse) -> Vec<u8> {
    proto::FromFunction {
        response: Some(from_function::Response::InvocationResult(response)),
    }
    .encode_to_vec()
}

fn typed(typename: &str, value: &[u8]) -> TypedValue {
    TypedValue {
        typename: typename.into(),
        has_value: true,
        value: value.to_vec().into(),
    }
}

fn modify(name: &str, value: TypedValue) -> from_function::PersistedValueMutation {
    from_function::PersistedValueMutation {
        mutation_type: from_function::persisted_value_mutation::MutationType::Modify as i32,
        state_name: name.into(),
        state_value: Some(value),
    }
}

fn batch_of(body: &[u8]) -> to_function::InvocationBatchRequest {
    match proto::ToFunction::decode(body).unwrap().request {
        Some(to_function::Request::Invocation(batch)) => batch,
        None => panic!("no batch"),
    }
}

fn remote(url: &str) -> LocalRuntime {
    LocalRuntime::v3(StatefulFunctions::new())
        .unwrap()
        .route_to_endpoint("remote/f", url)
        .unwrap()
}

const INT: &str = "io.statefun.types/int";

#[test]
fn on_the_wire_the_retry_carries_the_registered_states_absent_values_as_none() {
    let (url, received) = scripted(vec![
        handshake(&[("seen", INT), ("name", "io.statefun.types/string")]),
        result(from_function::InvocationResponse {
            state_mutations: vec![modify("seen", typed(INT, &[0x0d, 7, 0, 0, 0]))],
            ..Default::default()
        }),
        // An empty body: no effects, as the 3.x runtime reads it.
        Vec::new(),
    ]);
    let mut runtime = remote(&url);
    runtime.send("remote/f", "x", &1).unwrap();
    runtime.send("remote/f", "x", &2).unwrap();
    runtime.run().unwrap();

    let first = batch_of(&received.recv().unwrap());
    assert!(first.state.is_empty(), "{first:?}");
    let retry = batch_of(&received.recv().unwrap());
    assert_eq!(retry.invocations, first.invocations);
    assert_eq!(
        retry.invocations[1].argument,
        Some(typed(INT, &[0x0d, 2, 0, 0, 0]))
    );
    let states: Vec<_> = retry
        .state
        .iter()
        .map(|s| (s.state_name.as_str(), s.state_value.clone()))
        .collect();
    assert_eq!(states, [("seen", None), ("name", None)]);
    assert_eq!(runtime.get("remote/f", "x", &SEEN).unwrap(), Some(7));

    // The next batch carries the value, typed with the registered typename.
    runtime.send("remote/f", "x", &3).unwrap();
    runtime.run().unwrap();
    let next = batch_of(&received.recv().unwrap());
    assert_eq!(
        next.state[0].state_value,
        Some(typed(INT, &[0x0d, 7, 0, 0, 0]))
    );
    assert_eq!(next.state[1].state_value, None);
    assert_eq!(next.target.unwrap().id, "x");
}

#[test]
fn a_handshake_that_changes_a_states_type_fails_naming_type_state_and_both_typenames() {
    let (url, _received) = scripted(vec![
        handshake(&[("seen", INT)]),
        result(Default::default()),
        handshake(&[("seen", "io.statefun.types/long"), ("name", INT)]),
    ]);
    let mut runtime = remote(&url);
    runtime.send("remote/f", "x", &1).unwrap();
    runtime.run().unwrap();
    runtime.send("remote/f", "x", &2).unwrap();

    let err = runtime.run().unwrap_err();

    match &err {
        RuntimeError::StateTypeChanged {
            address,
            state,
            registered,
            declared,
        } => {
            assert_eq!(address.to_string(), "remote/f/x");
            assert_eq!(state, "seen");
            assert_eq!(registered, INT);
            assert_eq!(declared, "io.statefun.types/long");
        }
        other => panic!("expected StateTypeChanged, got {other:?}"),
    }
    let report = err.report();
    for part in [
        "`remote/f`",
        "`seen`",
        "`io.statefun.types/int`",
        "`io.statefun.types/long`",
    ] {
        assert!(report.contains(part), "{part} in {report}");
    }
    // Nothing of that handshake was registered.
    assert_eq!(runtime.registered_states("remote/f").len(), 1);
    assert!(matches!(runtime.run(), Err(RuntimeError::Stopped { .. })));
}

/// Runs one message for `remote/f/x` against an endpoint answering `reply` once
/// registered (`seen` is registered by a first handshake), and returns the error.
fn rejected(reply: from_function::InvocationResponse) -> RuntimeError {
    let (url, _received) = scripted(vec![handshake(&[("seen", INT)]), result(reply)]);
    let mut runtime = remote(&url);
    runtime.send("remote/f", "x", &1).unwrap();
    let err = runtime.run().unwrap_err();
    assert_eq!(
        runtime.pending_messages(),
        1,
        "the failed batch stays pending"
    );
    assert_eq!(runtime.pending_delayed().count(), 0, "nothing applied");
    assert_eq!(runtime.get("remote/f", "x", &SEEN).unwrap(), None);
    err
}

#[test]
fn what_the_runtime_refuses_in_a_reply_fails_the_batch() {
    let target = Some(proto::Address {
        namespace: "remote".into(),
        r#type: "f".into(),
        id: "x".into(),
    });
    let cases = [
        (
            from_function::DelayedInvocation {
                is_cancellation_request: true,
                ..Default::default()
            },
            "empty token",
        ),
        (
            from_function::DelayedInvocation {
                delay_in_ms: -5,
                target: target.clone(),
                argument: Some(typed(INT, &[])),
                ..Default::default()
            },
            "negative delay -5 ms",
        ),
    ];
    for (delayed, expected) in cases {
        let err = rejected(from_function::InvocationResponse {
            // A valid change first: the reply is refused as a whole.
            state_mutations: vec![modify("seen", typed(INT, &[0x0d, 1, 0, 0, 0]))],
            delayed_invocations: vec![delayed],
            ..Default::default()
        });
        assert!(
            matches!(&err, RuntimeError::RejectedReply { reason, .. } if reason.contains(expected)),
            "{expected}: {err:?}"
        );
    }
    let err = rejected(from_function::InvocationResponse {
        state_mutations: vec![modify("secret", typed(INT, &[]))],
        ..Default::default()
    });
    assert!(
        matches!(&err, RuntimeError::UndeclaredStateMutation { state, .. } if state == "secret"),
        "{err:?}"
    );
    let err = rejected(from_function::InvocationResponse {
        state_mutations: vec![modify("seen", typed("", &[]))],
        ..Default::default()
    });
    assert!(
        matches!(&err, RuntimeError::StateTypeMismatch { found, .. } if found == "io.statefun.types/unset"),
        "{err:?}"
    );
}

#[test]
fn a_handshake_that_asks_for_nothing_new_fails_instead_of_looping() {
    let (url, _received) = scripted(vec![
        handshake(&[("seen", INT)]),
        handshake(&[("seen", INT)]),
    ]);
    let mut runtime = remote(&url);
    runtime.send("remote/f", "x", &1).unwrap();
    let err = runtime.run().unwrap_err();
    assert!(
        matches!(&err, RuntimeError::RejectedReply { reason, .. } if reason.contains("forever")),
        "{err:?}"
    );
}

#[test]
fn a_remote_reply_that_is_no_3x_from_function_fails_the_batch() {
    let (url, _received) = scripted(vec![b"\xff\xff".to_vec()]);
    let mut runtime = remote(&url);
    runtime.send("remote/f", "x", &1).unwrap();
    let err = runtime.run().unwrap_err();
    assert!(
        matches!(
            &err,
            RuntimeError::RemoteFailed {
                source: RemoteError::MalformedReply { .. },
                ..
            }
        ),
        "{err:?}"
    );
}
