//! Message types and helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use prost_types::Any;
use statefun_sync::testing::Reply;
use statefun_sync::{Address, Error, RequestReplyHandler, StatefulFunctions};

/// The Python SDK test suite's `LoginEvent` (package `k8s.demo`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LoginEvent {
    #[prost(string, tag = "1")]
    pub user_name: String,
}

impl prost::Name for LoginEvent {
    const NAME: &'static str = "LoginEvent";
    const PACKAGE: &'static str = "k8s.demo";
}

/// The Python SDK test suite's `SeenCount` (package `k8s.demo`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SeenCount {
    #[prost(int64, tag = "1")]
    pub seen: i64,
}

impl prost::Name for SeenCount {
    const NAME: &'static str = "SeenCount";
    const PACKAGE: &'static str = "k8s.demo";
}

/// A second message type, for union and mismatch tests.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Admin {
    #[prost(string, tag = "1")]
    pub name: String,
}

impl prost::Name for Admin {
    const NAME: &'static str = "Admin";
    const PACKAGE: &'static str = "k8s.demo";
}

/// A one-byte `Any` that no typed function accepts.
pub fn ping(n: u8) -> Any {
    Any {
        type_url: "type.googleapis.com/test.Ping".into(),
        value: vec![n],
    }
}

pub fn caller() -> Address {
    Address::new("org.foo", "greeter-java", "0")
}

/// A handler with one function bound under `typename`.
pub fn handler_for<F>(typename: &str, function: F) -> RequestReplyHandler
where
    F: Fn(&mut statefun_sync::Context<'_>, Any) -> anyhow::Result<()> + Send + Sync + 'static,
{
    let mut functions = StatefulFunctions::new();
    functions.bind(typename, function).unwrap();
    RequestReplyHandler::new(functions)
}

/// Runs `request` and decodes the reply, failing the test on an error.
pub fn run(handler: &RequestReplyHandler, request: &[u8]) -> Reply {
    let bytes = handler
        .handle(request)
        .unwrap_or_else(|e| panic!("{}", e.report()));
    Reply::decode(&bytes).unwrap()
}

/// Runs `request`, expecting an error.
pub fn run_err(handler: &RequestReplyHandler, request: &[u8]) -> Error {
    match handler.handle(request) {
        Ok(reply) => panic!(
            "expected an error, got a reply: {:?}",
            Reply::decode(&reply)
        ),
        Err(e) => e,
    }
}
