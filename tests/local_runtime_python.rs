//! `LocalRuntime` driving a function of the Python SDK 2.2.2 over HTTP next to a Rust
//! function, messages flowing both ways: the local runtime is a stand-in for the Flink
//! runtime, not only for this crate.
//!
//! The Python side is `tests/local_runtime/python_app.py`, run with the interpreter from
//! `support::python` (the SDK installed in a test virtualenv, or `$STATEFUN_PYTHON`).

mod support;

use std::time::Duration;

use prost_types::Any;
use statefun_sync::proto::io::KafkaProducerRecord;
use statefun_sync::testing::{LocalRuntime, RemoteError, RuntimeError};
use statefun_sync::{pack, unpack};
use statefun_sync::{Context, StatefulFunctions, ValueSpec};
use support::python::{python, PythonApp};

/// `google.protobuf.StringValue`, which the Python side uses from `wrappers_pb2`.
#[derive(Clone, PartialEq, prost::Message)]
struct StringValue {
    #[prost(string, tag = "1")]
    value: String,
}

impl prost::Name for StringValue {
    const NAME: &'static str = "StringValue";
    const PACKAGE: &'static str = "google.protobuf";
}

/// `google.protobuf.Int64Value`, the Python function's state.
#[derive(Clone, PartialEq, prost::Message)]
struct Int64Value {
    #[prost(int64, tag = "1")]
    value: i64,
}

impl prost::Name for Int64Value {
    const NAME: &'static str = "Int64Value";
    const PACKAGE: &'static str = "google.protobuf";
}

statefun_sync::protobuf_type!(Int64Value, StringValue);

fn string(value: &str) -> StringValue {
    StringValue {
        value: value.into(),
    }
}

/// `tests/local_runtime/python_app.py`, running.
fn start_python_app() -> PythonApp {
    PythonApp::script(&python(), "tests/local_runtime/python_app.py")
}

/// `rust/visitor/<name>` (in process) greets `py/greeter/<name>` (Python, over HTTP) for
/// each ingress message, and emits whatever comes back to `rust/heard`.
fn runtime(python: &PythonApp) -> LocalRuntime {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("rust/visitor", |ctx: &mut Context, message: Any| {
            match ctx.caller() {
                None => {
                    let id = ctx.address().id().to_owned();
                    ctx.send("py/greeter", &id, message)?;
                }
                Some(_) => ctx.send_egress("rust/heard", message)?,
            }
            Ok(())
        })
        .unwrap();
    LocalRuntime::v2(functions)
        .route_to_endpoint("py/greeter", &python.url())
        .unwrap()
        .declare_states("py/greeter", ["seen"])
        .unwrap()
}

fn heard(runtime: &LocalRuntime) -> Vec<String> {
    runtime
        .egress_values::<StringValue>("rust/heard")
        .unwrap()
        .into_iter()
        .map(|s| s.value)
        .collect()
}

#[test]
fn the_python_sdk_and_a_rust_function_message_each_other() {
    let python = start_python_app();
    let mut runtime = runtime(&python);
    runtime
        .send("rust/visitor", "alice", pack(&string("alice")))
        .unwrap();
    runtime
        .send("rust/visitor", "alice", pack(&string("alice")))
        .unwrap();
    runtime
        .send("rust/visitor", "bob", pack(&string("bob")))
        .unwrap();

    runtime.run().unwrap();

    // Rust to Python and back; alice's two messages went to Python in one batch.
    assert_eq!(
        heard(&runtime),
        ["hello alice #1", "hello alice #2", "hello bob #1"]
    );
    let to_python: Vec<_> = runtime
        .history()
        .iter()
        .filter(|b| b.target.namespace() == "py")
        .map(|b| (b.target.id().to_owned(), b.size))
        .collect();
    assert_eq!(to_python, [("alice".to_owned(), 2), ("bob".to_owned(), 1)]);
    // The Python function's state, kept by the local runtime.
    let seen: Option<Int64Value> = runtime
        .get("py/greeter", "alice", &ValueSpec::named("seen"))
        .unwrap();
    assert_eq!(seen.unwrap().value, 2);
    // The Python function's egress.
    let records = runtime
        .egress_values::<KafkaProducerRecord>("py/greetings")
        .unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(
        (records[2].topic.as_str(), records[2].key.as_str()),
        ("greetings", "bob")
    );
    let value: StringValue = prost::Message::decode(records[2].value_bytes.as_slice()).unwrap();
    assert_eq!(value.value, "hello bob #1");

    // The Python function's delayed messages, on the virtual clock.
    runtime.advance(Duration::from_secs(59)).unwrap();
    assert_eq!(heard(&runtime).len(), 3);
    runtime.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(
        heard(&runtime)[3..],
        [
            "reminder for alice",
            "reminder for alice",
            "reminder for bob"
        ]
    );

    // State carried back to Python on the next batch.
    runtime
        .send("rust/visitor", "bob", pack(&string("bob")))
        .unwrap();
    runtime.run().unwrap();
    assert_eq!(heard(&runtime).last().unwrap(), "hello bob #2");
}

#[test]
fn a_python_function_error_stops_the_runtime_naming_the_address() {
    let python = start_python_app();
    let mut runtime = runtime(&python);
    runtime
        .send("rust/visitor", "x", pack(&string("fail")))
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
    assert_eq!(
        unpack::<StringValue>(&message.argument).unwrap(),
        string("fail")
    );
    assert!(
        matches!(source, RemoteError::Status { status: 500, body } if body.contains("asked to fail")),
        "{source:?}"
    );
    assert!(heard(&runtime).is_empty());
    assert!(matches!(runtime.run(), Err(RuntimeError::Stopped { .. })));
}
