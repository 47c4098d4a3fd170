//! `LocalRuntime` speaking 3.x to a function of the Python SDK 3.3.0 over HTTP, next to
//! a Rust function: built-in, protobuf and JSON typed values both ways, the Python
//! function's typed state (registered through its handshake), a delayed message and a
//! cancelled one, and a Kafka record.
//!
//! The Python side is [`PYTHON_APP`], run with the interpreter of `support::python::python3`
//! (the 3.3.0 SDK in a test virtualenv, or `$STATEFUN_PYTHON3`).

mod support;

use std::time::Duration;

use statefun_sync::proto::egress::KafkaProducerRecord;
use statefun_sync::testing::v3::StateDeclaration;
use statefun_sync::testing::{LocalRuntime, RemoteError, RuntimeError};
use statefun_sync::types::{DecodeError, EncodeError, Type, TypeName};
use statefun_sync::{Context, Message, StatefulFunctions, ValueSpec};
use support::python::{python3, PythonApp};

/// `py/greeter`, a Python SDK 3.3.0 function with the states `seen` (`IntType`) and
/// `profile` (a JSON type, `py/Profile`), over plain `http.server`:
///
/// - a string `name`: counts it in `seen`, keeps `{"name": .., "visits": ..}` in
///   `profile`, answers the caller "hello <name> #<seen>", sends the caller "nag for
///   <name>" in 30 s (token `nag-<id>`) and "reminder for <name>" in 60 s (token
///   `reminder-<id>`), and emits the greeting in a Kafka record (topic `greetings`, key
///   = its id) to `py/greetings`. "fail" makes it raise, which the server answers with 500;
/// - a JSON `py/Command` `{"cancel": "<what>"}`: cancels the token `<what>-<id>` and
///   answers the caller its `profile`;
/// - a protobuf `google.protobuf.Duration`: answers the caller its seconds × 1000 as a
///   `long`, and a `Duration` of twice its seconds.
///
/// It serves through `serve` of `tests/support/http_app.py` ([`PythonApp`]).
const PYTHON_APP: &str = r#"
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from statefun import *

from http_app import serve

COMMAND = make_json_type("py/Command")
PROFILE = make_json_type("py/Profile")
DURATION = make_protobuf_type(Duration)

functions = StatefulFunctions()


@functions.bind(typename="py/greeter",
                specs=[ValueSpec(name="seen", type=IntType), ValueSpec(name="profile", type=PROFILE)])
def greeter(context: Context, message: Message):
    caller = context.caller
    me = context.address.id

    def to_caller(**value):
        return message_builder(target_typename=caller.typename, target_id=caller.id, **value)

    if message.is_string():
        name = message.as_string()
        if name == "fail":
            raise ValueError("asked to fail")
        seen = (context.storage.seen or 0) + 1
        context.storage.seen = seen
        context.storage.profile = {"name": name, "visits": seen}
        greeting = "hello %s #%d" % (name, seen)
        context.send(to_caller(str_value=greeting))
        context.send_after(timedelta(seconds=30), to_caller(str_value="nag for " + name),
                           cancellation_token="nag-" + me)
        context.send_after(timedelta(seconds=60), to_caller(str_value="reminder for " + name),
                           cancellation_token="reminder-" + me)
        context.send_egress(kafka_egress_message(typename="py/greetings", topic="greetings",
                                                 key=me, value=greeting))
    elif message.is_type(COMMAND):
        command = message.as_type(COMMAND)
        context.cancel_delayed_message(command["cancel"] + "-" + me)
        context.send(to_caller(value=context.storage.profile, value_type=PROFILE))
    elif message.is_type(DURATION):
        seconds = message.as_type(DURATION).seconds
        context.send(to_caller(long_value=seconds * 1000))
        context.send(to_caller(value=Duration(seconds=seconds * 2), value_type=DURATION))
    else:
        raise TypeError("unexpected " + message.value_typename())


handler = RequestReplyHandler(functions)


serve(handler.handle_sync)
"#;

/// `google.protobuf.Duration`, which the Python side uses from `duration_pb2`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

impl prost::Name for ProtoDuration {
    const NAME: &'static str = "Duration";
    const PACKAGE: &'static str = "google.protobuf";
}

statefun_sync::protobuf_type!(ProtoDuration);

/// JSON text under a typename, as Python's `make_json_type` writes it
/// (`json.dumps(value, ensure_ascii=False)` in UTF-8): compared as text here, so the
/// test needs no JSON library.
macro_rules! json_text_type {
    ($($name:ident => $typename:literal),+) => {$(
        #[derive(Debug, Clone, PartialEq)]
        struct $name(String);

        impl Type for $name {
            fn type_name() -> TypeName {
                TypeName::new($typename)
            }
            fn encode_value(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
                buf.extend_from_slice(self.0.as_bytes());
                Ok(())
            }
            fn decode_value(bytes: &[u8]) -> Result<Self, DecodeError> {
                Ok($name(String::from_utf8(bytes.to_vec())?))
            }
        }
    )+};
}

json_text_type!(PyCommand => "py/Command", Profile => "py/Profile");

/// The Python function's states, as the Rust side reads them back.
const SEEN: ValueSpec<i32> = ValueSpec::named("seen");
const PROFILE: ValueSpec<Profile> = ValueSpec::named("profile");

/// [`PYTHON_APP`], running.
fn start_python_app() -> PythonApp {
    PythonApp::program(&python3(), PYTHON_APP, "the Python 3.3.0 app")
}

/// `rust/visitor/<id>` (in process) passes each ingress message on to `py/greeter/<id>`
/// (Python, over HTTP), and emits what comes back to `rust/heard`, as text.
fn runtime(python: &PythonApp) -> LocalRuntime {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("rust/visitor", |ctx: &mut Context, message: Message| {
            if ctx.caller().is_none() {
                let id = ctx.address().id().to_owned();
                ctx.send("py/greeter", &id, message.to_any())?;
                return Ok(());
            }
            let heard = if message.is::<String>() {
                message.get::<String>()?.unwrap_or_default()
            } else if message.is::<i64>() {
                format!("long {}", message.get::<i64>()?.unwrap_or_default())
            } else if message.is::<ProtoDuration>() {
                format!(
                    "duration {}",
                    message.get::<ProtoDuration>()?.unwrap_or_default().seconds
                )
            } else if message.is::<Profile>() {
                format!(
                    "profile {}",
                    message
                        .get::<Profile>()?
                        .map(|profile| profile.0)
                        .unwrap_or_default()
                )
            } else {
                anyhow::bail!("unexpected {}", message.typename());
            };
            ctx.send_egress("rust/heard", &heard)?;
            Ok(())
        })
        .unwrap();
    LocalRuntime::v3(functions)
        .unwrap()
        .route_to_endpoint("py/greeter", &python.url())
        .unwrap()
}

fn heard(runtime: &LocalRuntime) -> Vec<String> {
    runtime.egress_values::<String>("rust/heard").unwrap()
}

#[test]
fn the_python_3_sdk_and_a_rust_function_exchange_typed_values() {
    let python = start_python_app();
    let mut runtime = runtime(&python);
    runtime
        .send("rust/visitor", "alice", &"alice".to_string())
        .unwrap();
    runtime
        .send("rust/visitor", "bob", &"bob".to_string())
        .unwrap();

    runtime.run().unwrap();

    assert_eq!(heard(&runtime), ["hello alice #1", "hello bob #1"]);
    // Python's handshake registered its states, once for the type: alice's batch went
    // twice, bob's once.
    let to_python: Vec<_> = runtime
        .history()
        .iter()
        .filter(|b| b.target.namespace() == "py")
        .map(|b| b.target.id().to_owned())
        .collect();
    assert_eq!(to_python, ["alice", "alice", "bob"]);
    assert_eq!(
        runtime.registered_states("py/greeter"),
        [
            StateDeclaration::from(&SEEN),
            StateDeclaration::from(&PROFILE)
        ]
    );
    // Python's state, kept by the local runtime and read as Rust types.
    assert_eq!(runtime.get("py/greeter", "alice", &SEEN).unwrap(), Some(1));
    assert_eq!(
        runtime.get("py/greeter", "alice", &PROFILE).unwrap(),
        Some(Profile(r#"{"name": "alice", "visits": 1}"#.into()))
    );
    // Python's Kafka records.
    let records = runtime
        .egress_values::<KafkaProducerRecord>("py/greetings")
        .unwrap();
    assert_eq!(
        records
            .iter()
            .map(|r| (r.topic.as_str(), r.key.as_str(), r.value_bytes.as_slice()))
            .collect::<Vec<_>>(),
        [
            ("greetings", "alice", &b"hello alice #1"[..]),
            ("greetings", "bob", &b"hello bob #1"[..])
        ]
    );
    assert_eq!(runtime.pending_delayed().count(), 4);

    // JSON both ways: a command cancels alice's nag, and Python answers its profile.
    runtime
        .send(
            "rust/visitor",
            "alice",
            &PyCommand(r#"{"cancel": "nag"}"#.into()),
        )
        .unwrap();
    runtime.run().unwrap();
    assert_eq!(
        heard(&runtime)[2..],
        [r#"profile {"name": "alice", "visits": 1}"#]
    );
    assert_eq!(runtime.pending_delayed().count(), 3);

    // The delayed messages on the virtual clock: bob's nag, not alice's; then both
    // reminders.
    runtime.advance(Duration::from_secs(30)).unwrap();
    assert_eq!(heard(&runtime)[3..], ["nag for bob"]);
    runtime.advance(Duration::from_secs(30)).unwrap();
    assert_eq!(
        heard(&runtime)[4..],
        ["reminder for alice", "reminder for bob"]
    );

    // Protobuf in, a built-in long and protobuf out.
    runtime
        .send(
            "rust/visitor",
            "alice",
            &ProtoDuration {
                seconds: 21,
                nanos: 0,
            },
        )
        .unwrap();
    runtime.run().unwrap();
    assert_eq!(heard(&runtime)[6..], ["long 21000", "duration 42"]);

    // The state goes back to Python on the next batch; the delivered reminders freed
    // their tokens, so Python may use them again.
    runtime
        .send("rust/visitor", "alice", &"alice".to_string())
        .unwrap();
    runtime.run().unwrap();
    assert_eq!(heard(&runtime)[8..], ["hello alice #2"]);
    assert_eq!(runtime.get("py/greeter", "alice", &SEEN).unwrap(), Some(2));
}

#[test]
fn a_python_3_function_error_stops_the_runtime_naming_the_address() {
    let python = start_python_app();
    let mut runtime = runtime(&python);
    runtime
        .send("rust/visitor", "x", &"fail".to_string())
        .unwrap();

    let err = runtime.run().unwrap_err();

    let RuntimeError::RemoteFailed {
        address,
        message,
        source,
        ..
    } = &err
    else {
        panic!("expected RemoteFailed, got {err:?}");
    };
    assert_eq!(address.to_string(), "py/greeter/x");
    assert_eq!(message.get::<String>().unwrap(), "fail");
    assert!(
        matches!(source, RemoteError::Status { status: 500, body } if body.contains("asked to fail")),
        "{source:?}"
    );
    assert!(runtime.egress("rust/heard").is_empty());
    assert!(matches!(runtime.run(), Err(RuntimeError::Stopped { .. })));
}
