//! The 3.x testing kit: `testing::v3::Request` in (typed values, raw ones), a handler in
//! between, `testing::v3::Reply` out (typed values, the handshake as a list of
//! declarations), and `testing::v3::call_remote` over HTTP.

use std::time::Duration;

use prost_types::Any;
use statefun_sync::proto::egress::KafkaProducerRecord;
use statefun_sync::proto::reqreply::TypedValue;
use statefun_sync::testing::v3::{Delayed, Reply, Request, StateDeclaration};
use statefun_sync::testing::{ReadError, StateChange};
use statefun_sync::{
    Address, Context, Error, Expiration, Message, RequestReplyHandler, StatefulFunctions, ValueSpec,
};

const SEEN: ValueSpec<i32> = ValueSpec::named("seen").expire_after_call(Duration::from_secs(3600));
const NAME: ValueSpec<String> =
    ValueSpec::named("name").expire_after_write(Duration::from_millis(1500));
const FLAG: ValueSpec<bool> = ValueSpec::named("flag");

/// `example/greeter` counts in `seen`, keeps the caller's name in `name`, clears `flag`,
/// answers the caller, sends itself a reminder in a minute (token = the id), cancels
/// the token "old", and emits a Kafka record.
fn handler() -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("example/greeter", |ctx: &mut Context, message: Message| {
            let name: String = message.get()?.unwrap_or_default();
            let seen = ctx.get(&SEEN)?.unwrap_or(0) + 1;
            ctx.set(&SEEN, &seen)?;
            ctx.set(&NAME, &name)?;
            ctx.remove(&FLAG)?;
            let caller = ctx.caller().expect("a caller");
            ctx.send_to(caller, &format!("hello {name} #{seen}"))?;
            let id = ctx.address().id();
            ctx.send_after_cancellable(Duration::from_secs(60), "example/greeter", id, &name, id)?;
            ctx.cancel_delayed_message("old")?;
            let record = KafkaProducerRecord {
                key: id.to_owned(),
                value_bytes: name.into_bytes(),
                topic: "greetings".into(),
            };
            ctx.send_egress("example/out", &record)?;
            Ok(())
        })
        .unwrap()
        .state(&SEEN)
        .state(&NAME)
        .state(&FLAG);
    RequestReplyHandler::v3(functions).unwrap()
}

fn caller() -> Address {
    Address::new("example", "caller", "c1").unwrap()
}

fn run(request: &Request) -> Reply {
    let body = handler()
        .handle(&request.to_bytes())
        .unwrap_or_else(|e| panic!("{}", e.report()));
    Reply::decode(&body).unwrap()
}

fn full(seen: Option<i32>) -> Request {
    Request::to("example/greeter", "alice")
        .with_state(&SEEN, seen.as_ref())
        .with_state(&NAME, None)
        .with_state(&FLAG, Some(&true))
        .invoke_from(caller(), &"alice".to_string())
}

#[test]
fn the_handshake_reads_as_the_declarations_of_the_missing_states() {
    let reply = run(&Request::to("example/greeter", "alice")
        .with_state(&NAME, None)
        .invoke_from(caller(), &"alice".to_string()));

    assert_eq!(
        reply.missing_states(),
        Some(
            &[
                StateDeclaration {
                    name: "seen".into(),
                    typename: "io.statefun.types/int".into(),
                    expiration: Some(Expiration::AfterCall(Duration::from_secs(3600))),
                },
                StateDeclaration {
                    name: "flag".into(),
                    typename: "io.statefun.types/bool".into(),
                    expiration: None,
                },
            ][..]
        )
    );
    // Nothing ran.
    assert!(reply.messages().is_empty() && reply.state_changes().is_empty());

    let all = run(&Request::to("example/greeter", "alice").invoke_from(caller(), &"a".to_string()));
    let declared: Vec<_> = [
        StateDeclaration::from(&SEEN),
        StateDeclaration::from(&NAME),
        StateDeclaration::from(&FLAG),
    ]
    .to_vec();
    assert_eq!(all.missing_states(), Some(&declared[..]));
    assert_eq!(
        declared[1].expiration,
        Some(Expiration::AfterWrite(Duration::from_millis(1500)))
    );
}

#[test]
fn typed_states_go_in_and_come_out_through_their_specs() {
    let reply = run(&full(Some(41)));

    assert_eq!(reply.missing_states(), None);
    assert_eq!(reply.modified(&SEEN).unwrap(), Some(42));
    assert_eq!(reply.modified(&NAME).unwrap(), Some("alice".to_string()));
    assert!(reply.deleted("flag"));
    assert_eq!(reply.state_change("flag"), Some(&StateChange::Deleted));
    assert_eq!(
        reply.state_change("seen").unwrap().get::<i32>().unwrap(),
        Some(42)
    );
    // The mutation as the wire carries it.
    let StateChange::Modified(raw) = reply.state_change("seen").unwrap() else {
        panic!("a MODIFY");
    };
    assert_eq!(
        raw,
        &Any {
            type_url: "io.statefun.types/int".into(),
            value: vec![0x0d, 42, 0, 0, 0],
        }
    );
}

#[test]
fn messages_delays_cancellations_and_egress_read_as_typed_values() {
    let reply = run(&full(None));

    let caller = caller();
    let answers: Vec<_> = reply.messages_to(&caller).collect();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].typename(), "io.statefun.types/string");
    assert_eq!(answers[0].get::<String>().unwrap(), "hello alice #1");

    let [Delayed::Send {
        message,
        cancellation_token,
    }, Delayed::Cancel {
        cancellation_token: cancelled,
    }] = reply.delayed()
    else {
        panic!("a send, then a cancellation: {:?}", reply.delayed());
    };
    assert_eq!(message.delay, Duration::from_secs(60));
    assert_eq!(
        message.target,
        Address::new("example", "greeter", "alice").unwrap()
    );
    assert_eq!(message.get::<String>().unwrap(), "alice");
    assert_eq!(cancellation_token.as_deref(), Some("alice"));
    assert_eq!(cancelled, "old");
    assert_eq!(reply.delayed_messages().count(), 1);
    assert_eq!(reply.cancellations().collect::<Vec<_>>(), ["old"]);

    let record = reply.egresses_to("example/out").next().unwrap();
    assert_eq!(
        record.typename(),
        "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
    );
    let record = record.get::<KafkaProducerRecord>().unwrap();
    assert_eq!(
        (
            record.topic.as_str(),
            record.key.as_str(),
            &record.value_bytes[..]
        ),
        ("greetings", "alice", &b"alice"[..])
    );
}

#[test]
fn raw_values_reach_the_function_as_given() {
    // A state of a foreign type, by typename and bytes: the read fails (400), as in the
    // Python SDK.
    let request = Request::to("example/greeter", "alice")
        .with_state_value(
            "seen",
            Any {
                type_url: "io.statefun.types/long".into(),
                value: vec![0x09, 1, 0, 0, 0, 0, 0, 0, 0],
            },
        )
        .with_state(&NAME, None)
        .with_state(&FLAG, None)
        .invoke_from(caller(), &"alice".to_string());
    let err = handler().handle(&request.to_bytes()).unwrap_err();
    assert!(matches!(err, Error::UnreadableState { .. }), "{err:?}");

    // `has_value` false is no value, whatever its bytes.
    let request = Request::to("example/greeter", "alice")
        .with_state_raw(
            "seen",
            Some(TypedValue {
                typename: "io.statefun.types/int".into(),
                has_value: false,
                value: vec![0x0d, 9, 0, 0, 0].into(),
            }),
        )
        .with_state(&NAME, None)
        .with_state(&FLAG, None)
        .invoke_raw(
            Some(caller()),
            Some(TypedValue {
                typename: "io.statefun.types/string".into(),
                has_value: true,
                value: b"\x0a\x01b".to_vec().into(),
            }),
        );
    assert_eq!(run(&request).modified(&SEEN).unwrap(), Some(1));

    // An argument of another type.
    let request = Request::to("example/greeter", "alice")
        .with_state(&SEEN, None)
        .with_state(&NAME, None)
        .with_state(&FLAG, None)
        .invoke_from(caller(), &7i64);
    let err = handler().handle(&request.to_bytes()).unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedMessageType { .. }),
        "{err:?}"
    );
}

#[test]
fn what_does_not_decode_is_an_error_not_a_panic() {
    assert!(Reply::decode(b"\xff\xff\xff").is_err());
    let mut body = handler().handle(&full(None).to_bytes()).unwrap();
    body.truncate(body.len() - 3);
    assert!(Reply::decode(&body).is_err());

    let reply = run(&full(None));
    let err = reply.messages()[0].get::<i32>().unwrap_err();
    assert!(matches!(err, ReadError::WrongType { .. }), "{err:?}");
    const SEEN_AS_TEXT: ValueSpec<String> = ValueSpec::named("seen");
    assert!(reply.modified(&SEEN_AS_TEXT).is_err());

    // A value of the right typename whose bytes do not decode.
    let reply = Reply::decode(&handler().handle(&full(None).to_bytes()).unwrap()).unwrap();
    let mut bad = reply.messages()[0].clone();
    bad.argument.value = vec![0x0a, 9, b'x'];
    let err = bad.get::<String>().unwrap_err();
    assert!(matches!(err, ReadError::Malformed { .. }), "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
}

#[cfg(feature = "server")]
#[test]
fn call_remote_speaks_3x_to_a_served_function() {
    use statefun_sync::testing::v3::call_remote;

    let server = statefun_sync::http::Server::builder()
        .bind("127.0.0.1:0")
        .start(handler())
        .unwrap();
    let url = server.url();
    let timeout = Duration::from_secs(10);

    let first = Request::to("example/greeter", "bob").invoke_from(caller(), &"bob".to_string());
    let handshake = call_remote(&url, &first, timeout).unwrap();
    assert_eq!(handshake.missing_states().map(<[_]>::len), Some(3));

    let reply = call_remote(&url, &full(Some(1)), timeout).unwrap();
    assert_eq!(reply.modified(&SEEN).unwrap(), Some(2));
    assert!(call_remote("ftp://x", &first, timeout).is_err());
    server.shutdown();
}
