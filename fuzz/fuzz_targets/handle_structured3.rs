//! `handle()` of a 3.x handler on structured requests, built with prost from arbitrary
//! targets, states (absent, `has_value = false` with bytes, built-in values, any typename
//! and bytes) and invocations (with and without callers, scripts, typed and raw
//! arguments), so that most inputs reach the functions' scripts.
//!
//! Properties: everything `statefun_sync_fuzz::v3::check` checks, plus what the protocol
//! promises for a well-formed request: it is never a `MalformedRequest` unless the batch
//! has no target (absent or all-empty) or an empty id with invocations (the refusals the
//! Python SDK makes too); a target not bound is a 404; the handshake comes exactly when a
//! declared state is missing.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use statefun_sync::proto::reqreply::{to_function, Address, ToFunction, TypedValue};
use statefun_sync::types::Type;
use statefun_sync::Error;
use statefun_sync_fuzz::install_panic_hook;
use statefun_sync_fuzz::v3::{
    check, handler, prepare, take, ALL, ANY, BOUND, FANOUT, GREETER, STATE_NAMES, TYPED,
};

#[derive(Arbitrary, Debug)]
enum TargetIn {
    Bound(u8),
    None,
    Empty,
    Other(String, String),
}

#[derive(Arbitrary, Debug)]
enum NameIn {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum ValueIn {
    Absent,
    /// `has_value = false`, whatever the other fields say.
    NoValue(String, Vec<u8>),
    Int(i32),
    Long(i64),
    Str(String),
    Bool(bool),
    Raw(String, Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum ArgumentIn {
    None,
    /// A script, under a typename of no built-in type.
    Script(Vec<u8>),
    /// A script as an `io.statefun.types/string` (what `fuzz3/typed` takes).
    Text(String),
    Value(ValueIn),
}

#[derive(Arbitrary, Debug)]
struct InvocationIn {
    caller: Option<(String, String, String)>,
    argument: ArgumentIn,
}

#[derive(Arbitrary, Debug)]
struct Input {
    target: TargetIn,
    id: String,
    states: Vec<(NameIn, ValueIn)>,
    invocations: Vec<InvocationIn>,
}

fn typed<T: Type>(value: &T) -> Option<TypedValue> {
    let mut bytes = Vec::new();
    value
        .encode_value(&mut bytes)
        .expect("the fuzz values encode");
    Some(TypedValue {
        typename: T::type_name().to_string(),
        has_value: true,
        value: bytes.into(),
    })
}

fn value(input: &ValueIn) -> Option<TypedValue> {
    match input {
        ValueIn::Absent => None,
        ValueIn::NoValue(typename, bytes) => Some(TypedValue {
            typename: typename.clone(),
            has_value: false,
            value: bytes.clone().into(),
        }),
        ValueIn::Int(v) => typed(v),
        ValueIn::Long(v) => typed(v),
        ValueIn::Str(v) => typed(v),
        ValueIn::Bool(v) => typed(v),
        ValueIn::Raw(typename, bytes) => Some(TypedValue {
            typename: typename.clone(),
            has_value: true,
            value: bytes.clone().into(),
        }),
    }
}

fn address(namespace: &str, name: &str, id: &str) -> Address {
    Address {
        namespace: namespace.into(),
        r#type: name.into(),
        id: id.into(),
    }
}

fuzz_target!(|input: Input| {
    install_panic_hook();
    let target = match &input.target {
        TargetIn::Bound(i) => {
            let typename = [ALL, TYPED, ANY, GREETER, FANOUT][usize::from(*i) % 5];
            let (namespace, name) = typename.split_once('/').expect("a typename");
            Some(address(namespace, name, &input.id))
        }
        TargetIn::None => None,
        TargetIn::Empty => Some(Address::default()),
        TargetIn::Other(namespace, name) => Some(address(namespace, name, &input.id)),
    };
    let state = input
        .states
        .iter()
        .map(|(name, v)| to_function::PersistedValue {
            state_name: match name {
                NameIn::Known(i) => STATE_NAMES[usize::from(*i) % STATE_NAMES.len()].into(),
                NameIn::Other(name) => name.clone(),
            },
            state_value: value(v),
        })
        .collect();
    let invocations = input
        .invocations
        .iter()
        .map(|invocation| to_function::Invocation {
            caller: invocation
                .caller
                .as_ref()
                .map(|(namespace, name, id)| address(namespace, name, id)),
            argument: match &invocation.argument {
                ArgumentIn::None => None,
                ArgumentIn::Script(script) => Some(TypedValue {
                    typename: "fuzz3/script".into(),
                    has_value: true,
                    value: script.clone().into(),
                }),
                ArgumentIn::Text(text) => typed(text),
                ArgumentIn::Value(v) => value(v),
            },
        })
        .collect();
    let body = ToFunction {
        request: Some(to_function::Request::Invocation(
            to_function::InvocationBatchRequest {
                target: target.clone(),
                state,
                invocations,
            },
        )),
    }
    .encode_to_vec();

    prepare(&body);
    let result = handler().handle(&body);
    let model = take();
    assert!(model.request.is_some(), "prost decodes what prost encoded");
    check(&result, &model);

    let target = target.unwrap_or_default();
    let no_target = target.namespace.is_empty() && target.r#type.is_empty() && target.id.is_empty();
    let empty_id = target.id.is_empty() && !input.invocations.is_empty();
    match &result {
        Err(Error::MalformedRequest { field, .. }) => assert!(
            (no_target && field == "ToFunction.invocation.target")
                || (!no_target && empty_id && field == "ToFunction.invocation.target.id"),
            "a well-formed request refused at {field}: {result:?}"
        ),
        Err(Error::NoInvocation) => panic!("a batch read as no batch"),
        _ => assert!(!no_target && !empty_id, "accepted {target:?}: {result:?}"),
    }
    let bound = BOUND.contains(&format!("{}/{}", target.namespace, target.r#type).as_str());
    if !no_target && !empty_id {
        assert_eq!(
            matches!(result, Err(Error::UnknownFunctionType { .. })),
            !bound,
            "bound: {bound}, {result:?}"
        );
    }
});
