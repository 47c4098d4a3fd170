//! A value that cannot be encoded is an error that names the state or the target and the
//! type, never an empty, partial or corrupt value in the reply: a JSON map with non-string
//! keys, a hand-written `Type` that gives up halfway, and a `Serialize` that says something
//! else at every call, on both protocols, through `Context`, the egress records and the
//! testing kit.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message as _;
use prost_types::Any;
use statefun_sync::proto::{polyglot, reqreply};
use statefun_sync::testing::{
    v2::{Reply, Request},
    v3, LocalRuntime, RuntimeError, StateChange,
};
use statefun_sync::types::{DecodeError, EncodeError, Type, TypeName};
use statefun_sync::{
    kafka_record_v3, Address, Context, Error, Message, RecordValue, RequestReplyHandler,
    StatefulFunctions, ValueSpec,
};

/// Scores by (round, player): serde_json refuses a map whose keys are not strings.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Scores(BTreeMap<(u32, u32), u32>);
statefun_sync::json_type!(Scores => "test/Scores");

fn scores() -> Scores {
    Scores(BTreeMap::from([((1, 7), 30)]))
}

/// A hand-written type that writes `text`, then gives up when `fail` is set: what the
/// reply must never carry is the half it wrote.
#[derive(Debug, PartialEq)]
struct Flaky {
    text: String,
    fail: bool,
}

impl Type for Flaky {
    fn type_name() -> TypeName {
        TypeName::new("test/Flaky")
    }
    fn encode_value(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        buf.extend_from_slice(self.text.as_bytes());
        if self.fail {
            return Err("the encoder gave up".into());
        }
        Ok(())
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Flaky {
            text: String::from_utf8(bytes.to_vec())?,
            fail: false,
        })
    }
}

fn good(text: &str) -> Flaky {
    Flaky {
        text: text.into(),
        fail: false,
    }
}

fn failing() -> Flaky {
    Flaky {
        text: "half a value".into(),
        fail: true,
    }
}

/// A hand-written type whose length hint is wrong, by `by` bytes either way: the reply
/// must give the value the length it was encoded to.
#[derive(Debug, PartialEq)]
struct Liar {
    text: String,
    by: isize,
}

impl Type for Liar {
    fn type_name() -> TypeName {
        TypeName::new("test/Liar")
    }
    fn encode_value(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        buf.extend_from_slice(self.text.as_bytes());
        Ok(())
    }
    fn encoded_len_hint(&self) -> usize {
        self.text.len().saturating_add_signed(self.by)
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Liar {
            text: String::from_utf8(bytes.to_vec())?,
            by: 0,
        })
    }
}

/// A `Serialize` that says something longer at every call (as one over a `HashMap`, a
/// clock or a counter may): a length taken from one call and bytes from another would
/// corrupt the reply.
#[derive(Debug, Default)]
struct Shifting {
    calls: Cell<usize>,
}

impl serde::Serialize for Shifting {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let calls = self.calls.get();
        self.calls.set(calls + 1);
        serializer.serialize_str(&"x".repeat(100 * calls))
    }
}

impl<'de> serde::Deserialize<'de> for Shifting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Shifting {
            calls: Cell::new(text.len() / 100),
        })
    }
}
statefun_sync::json_type!(Shifting => "test/Shifting");

const SCORES: ValueSpec<Scores> = ValueSpec::named("scores");
const FLAKY: ValueSpec<Flaky> = ValueSpec::named("flaky");
const SHIFTING: ValueSpec<Shifting> = ValueSpec::named("shifting");

fn caller() -> Address {
    Address::from_typename("test/caller", "c").unwrap()
}

fn handler_for(
    protocol: &str,
    function: impl Fn(&mut Context, Message) -> anyhow::Result<()> + Send + Sync + 'static,
) -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/f", function)
        .unwrap()
        .state(&SCORES)
        .state(&FLAKY)
        .state(&SHIFTING);
    match protocol {
        "2.2" => RequestReplyHandler::v2(functions),
        _ => RequestReplyHandler::v3(functions).unwrap(),
    }
}

/// One request for `test/f` in each protocol, from `caller()`, with every state and an
/// empty value in `flaky`... on 2.2 as `Any`s, on 3.x as typed values.
fn request(protocol: &str) -> Vec<u8> {
    match protocol {
        "2.2" => Request::to("test/f", "1")
            .with_state("scores", None)
            .with_state("flaky", None)
            .with_state("shifting", None)
            .invoke_from(caller(), Any::default())
            .to_bytes(),
        _ => v3::Request::to("test/f", "1")
            .with_state(&SCORES, None)
            .with_state(&FLAKY, None)
            .with_state(&SHIFTING, None)
            .invoke_from(caller(), &5i32)
            .to_bytes(),
    }
}

#[test]
fn a_json_map_with_non_string_keys_fails_the_batch_naming_the_state_and_the_type() {
    for protocol in ["2.2", "3.x"] {
        let handler = handler_for(protocol, |ctx, _| {
            ctx.set(&SCORES, &scores())?;
            Ok(())
        });

        let err = handler.handle(&request(protocol)).unwrap_err();

        assert_eq!(err.status(), 500, "{protocol}: {err:?}");
        let report = err.report();
        assert!(
            report.contains("cannot encode a value of type `test/Scores` for state `scores`")
                && report.contains("key must be a string"),
            "{protocol}: {report}"
        );
        assert!(matches!(err, Error::FunctionFailed { .. }), "{err:?}");
    }
}

#[test]
fn every_context_call_refuses_an_unencodable_value_and_records_nothing_of_it() {
    for protocol in ["2.2", "3.x"] {
        let handler = handler_for(protocol, |ctx, _| {
            ctx.set(&FLAKY, &good("first"))?;
            let refusals = [
                ctx.set(&FLAKY, &failing()),
                ctx.set(&SCORES, &scores()),
                ctx.send("test/g", "2", &failing()),
                ctx.reply(&failing()),
                ctx.send_after(Duration::from_secs(1), "test/g", "3", &failing()),
                ctx.send_egress("test/out", &scores()),
            ];
            let destinations = [
                "for state `flaky`",
                "for state `scores`",
                "for a message to `test/g/2`",
                "for a reply to `test/caller/c`",
                "for a delayed message to `test/g/3`",
                "for the egress `test/out`",
            ];
            for (refused, destination) in refusals.into_iter().zip(destinations) {
                let err = refused.expect_err(destination);
                assert!(matches!(err, Error::UnencodableValue { .. }), "{err:?}");
                let text = err.to_string();
                assert!(text.ends_with(destination), "{text}");
                assert_eq!(err.address(), None);
            }
            // What the function does next goes out as usual, and nothing else.
            ctx.send("test/g", "4", &good("after"))?;
            Ok(())
        });

        let body = handler.handle(&request(protocol)).unwrap();

        // The whole reply decodes, and holds only what succeeded: the state as the first
        // set left it, and the one message sent after the refusals.
        assert_decodes_whole(protocol, &body);
        let Carried {
            changes,
            messages,
            delayed,
            egresses,
        } = carried(protocol, &body);
        if protocol == "3.x" {
            let reply = v3::Reply::decode(&body).unwrap();
            assert_eq!(reply.modified(&FLAKY).unwrap(), Some(good("first")));
        }
        let first = Any {
            type_url: "test/Flaky".into(),
            value: b"first".to_vec(),
        };
        assert_eq!(
            changes,
            [("flaky".to_owned(), StateChange::Modified(first))],
            "{protocol}"
        );
        assert_eq!(messages.len(), 1, "{protocol}: {messages:?}");
        assert_eq!(messages[0].target.to_string(), "test/g/4");
        assert_eq!(messages[0].argument.value, b"after");
        assert_eq!((delayed.len(), egresses.len()), (0, 0), "{protocol}");
    }
}

#[test]
fn a_serialize_that_changes_between_calls_is_sent_as_encoded_once() {
    for protocol in ["2.2", "3.x"] {
        let handler = handler_for(protocol, |ctx, _| {
            ctx.set(&SHIFTING, &Shifting::default())?;
            ctx.send("test/g", "2", &Shifting::default())?;
            ctx.send_egress("test/out", &Shifting::default())?;
            Ok(())
        });

        let body = handler.handle(&request(protocol)).unwrap();

        // A value is encoded once, and its length is the length encoded: the first call
        // of each says `""`, which every length in the reply agrees with.
        assert_decodes_whole(protocol, &body);
        let carried = carried(protocol, &body);
        if protocol == "3.x" {
            let reply = v3::Reply::decode(&body).unwrap();
            assert_eq!(reply.modified(&SHIFTING).unwrap().unwrap().calls.get(), 0);
        }
        let values = [
            carried.modified("shifting").value,
            carried.messages[0].argument.value.clone(),
            carried.egresses[0].value.clone(),
        ];
        for value in values {
            assert_eq!(value, b"\"\"", "{protocol}");
        }
    }
}

#[test]
fn a_wrong_length_hint_costs_a_copy_never_a_corrupt_reply() {
    const LIAR: ValueSpec<Liar> = ValueSpec::named("liar");
    for protocol in ["2.2", "3.x"] {
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("test/f", |ctx: &mut Context, _: Message| {
                // Short and long hints, around lengths whose varints differ in size.
                for (len, by) in [(5, 100), (200, -190), (127, 1), (128, -1), (3, -3)] {
                    let liar = Liar {
                        text: "x".repeat(len),
                        by,
                    };
                    ctx.set(&LIAR, &liar)?;
                    ctx.send("test/g", &len.to_string(), &liar)?;
                    ctx.send_after(Duration::from_millis(5), "test/g", "d", &liar)?;
                    ctx.send_egress("test/out", &liar)?;
                }
                Ok(())
            })
            .unwrap()
            .state(&LIAR);
        let (handler, body) = match protocol {
            "2.2" => (
                RequestReplyHandler::v2(functions),
                Request::to("test/f", "1")
                    .with_state("liar", None)
                    .invoke(Any::default())
                    .to_bytes(),
            ),
            _ => (
                RequestReplyHandler::v3(functions).unwrap(),
                v3::Request::to("test/f", "1")
                    .with_state(&LIAR, None)
                    .invoke(&1i32)
                    .to_bytes(),
            ),
        };

        let body = handler.handle(&body).unwrap();

        assert_decodes_whole(protocol, &body);
        let lens = [5, 200, 127, 128, 3];
        let carried = carried(protocol, &body);
        let state = carried.modified("liar");
        let messages: Vec<Any> = carried
            .messages
            .iter()
            .map(|m| m.argument.clone())
            .collect();
        let (delayed, egresses) = (carried.delayed, carried.egresses);
        assert_eq!(state.value, b"xxx", "{protocol}");
        for sent in [messages, delayed, egresses] {
            let got: Vec<usize> = sent.iter().map(|any| any.value.len()).collect();
            assert_eq!(got, lens, "{protocol}");
            assert!(sent.iter().all(|any| any.value.iter().all(|&b| b == b'x')));
        }
    }
}

#[test]
fn a_typed_egress_record_value_that_cannot_be_encoded_is_an_error() {
    let err = RecordValue::typed(&scores()).unwrap_err();

    assert!(
        err.report()
            .starts_with("cannot encode a value of type `test/Scores` for an egress record: "),
        "{}",
        err.report()
    );
    // A value that encodes makes a record as before.
    let record = kafka_record_v3("t", "k", RecordValue::typed(&good("v")).unwrap()).unwrap();
    assert_eq!(record.value_bytes, b"v");
}

#[test]
#[should_panic(expected = "cannot encode a value of type `test/Flaky` for state `flaky`")]
fn the_testing_kits_request_builder_panics_on_a_value_it_cannot_encode() {
    let _ = v3::Request::to("test/f", "1").with_state(&FLAKY, Some(&failing()));
}

#[test]
fn the_local_runtime_refuses_a_value_it_cannot_encode() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/f", |_: &mut Context, _: Message| Ok(()))
        .unwrap()
        .state(&FLAKY);
    let mut runtime = LocalRuntime::v3(functions).unwrap();

    let set = runtime.set("test/f", "1", &FLAKY, &failing()).unwrap_err();
    let send = runtime.send("test/f", "1", &failing()).unwrap_err();

    for (err, destination) in [
        (set, "for state `flaky`"),
        (send, "for a message to `test/f/1`"),
    ] {
        assert!(
            matches!(err, RuntimeError::InvalidArgument { .. }),
            "{err:?}"
        );
        let text = chain(&err);
        assert!(
            text.contains(&format!(
                "cannot encode a value of type `test/Flaky` {destination}"
            )),
            "{text}"
        );
    }
}

/// An error and its causes, joined with `: `.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// Checks that `body` decodes whole as the protocol's `FromFunction`, with prost.
fn assert_decodes_whole(protocol: &str, body: &[u8]) {
    let decoded = match protocol {
        "2.2" => polyglot::FromFunction::decode(body).map(drop),
        _ => reqreply::FromFunction::decode(body).map(drop),
    };
    assert!(decoded.is_ok(), "{protocol}: {decoded:?}");
}

/// What a reply of either protocol carries, read with its testing kit: the state changes,
/// and the arguments of the messages, delayed messages and egress messages, in order.
struct Carried {
    changes: Vec<(String, StateChange)>,
    messages: Vec<statefun_sync::testing::Sent>,
    delayed: Vec<Any>,
    egresses: Vec<Any>,
}

fn carried(protocol: &str, body: &[u8]) -> Carried {
    // The two replies read alike, but are two types.
    macro_rules! carried_by {
        ($reply:expr) => {{
            let reply = $reply.unwrap();
            Carried {
                changes: reply.state_changes().to_vec(),
                messages: reply.messages().to_vec(),
                delayed: reply
                    .delayed_messages()
                    .map(|d| d.argument.clone())
                    .collect(),
                egresses: reply
                    .egresses()
                    .iter()
                    .map(|e| e.argument.clone())
                    .collect(),
            }
        }};
    }
    if protocol == "2.2" {
        carried_by!(Reply::decode(body))
    } else {
        carried_by!(v3::Reply::decode(body))
    }
}

impl Carried {
    /// The new value of the state `name`, as an `Any` whose type URL is its typename.
    fn modified(&self, name: &str) -> Any {
        match self.changes.iter().find(|(n, _)| n == name) {
            Some((_, StateChange::Modified(any))) => any.clone(),
            other => panic!("state {name} is not modified: {other:?}"),
        }
    }
}
