//! The `testing::v2::Request` builder and the `testing::v2::Reply` reader, on structured input.
//!
//! 1. Build a request with the builder (target, states, invocations with and without a
//!    caller, packed or raw arguments), run it, and check what the protocol promises: the
//!    builder's bytes always decode (never a 400 for a malformed request); a target that
//!    is not bound is a 404 and nothing runs; a declared state the request lacks is a 400
//!    and nothing runs; an `Ok` ran every invocation once and mutates only states the
//!    request carried, once each, with the last value written; plus everything
//!    `statefun_sync_fuzz::check` checks.
//! 2. Encode an arbitrary `FromFunction` and read it back with `Reply::decode`: every
//!    mutation, message, delayed message and egress message arrives, in order.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use prost_types::Any;
use statefun_sync::proto::polyglot::{self as proto, from_function};
use statefun_sync::testing::{StateChange, v2::{Reply, Request}};
use statefun_sync::{Address, Error};
use statefun_sync_fuzz::{
    check, handler, install_panic_hook, reset, take, ALL, DECLARED, STATE_NAMES, TYPED,
};

#[derive(Arbitrary, Debug)]
enum TargetIn {
    All,
    Typed,
    Declared,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum NameIn {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum StateIn {
    Empty,
    Packed(i64),
    Any { type_url: String, value: Vec<u8> },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum ArgumentIn {
    /// The script for `fuzz/all` and `fuzz/declared`.
    Script(Vec<u8>),
    /// What `fuzz/typed` takes; `seconds` is its script.
    Duration(i64),
    Any {
        type_url: String,
        value: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
struct InvocationIn {
    caller: Option<(String, String, String)>,
    argument: ArgumentIn,
}

#[derive(Arbitrary, Debug)]
struct RequestIn {
    target: TargetIn,
    id: String,
    states: Vec<(NameIn, StateIn)>,
    invocations: Vec<InvocationIn>,
}

#[derive(Arbitrary, Debug)]
struct AnyIn {
    type_url: String,
    value: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct AddressIn(String, String, String);

#[derive(Arbitrary, Debug)]
struct ReplyIn {
    mutations: Vec<(String, Option<AnyIn>)>,
    messages: Vec<(Option<AddressIn>, Option<AnyIn>)>,
    delayed: Vec<(i64, Option<AddressIn>, Option<AnyIn>)>,
    egresses: Vec<(String, String, Option<AnyIn>)>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    request: RequestIn,
    reply: ReplyIn,
}

fuzz_target!(|input: Input| {
    install_panic_hook();
    request_round_trip(&input.request);
    reply_round_trip(&input.reply);
});

fn name(name: &NameIn) -> String {
    match name {
        NameIn::Known(i) => STATE_NAMES[usize::from(*i) % STATE_NAMES.len()].to_owned(),
        NameIn::Other(name) => name.clone(),
    }
}

fn request_round_trip(input: &RequestIn) {
    let typename = match &input.target {
        TargetIn::All => ALL.to_owned(),
        TargetIn::Typed => TYPED.to_owned(),
        TargetIn::Declared => DECLARED.to_owned(),
        TargetIn::Other(typename) => typename.clone(),
    };
    let mut request = Request::to(&typename, &input.id);
    let mut carried: Vec<String> = Vec::new();
    for (state_name, state) in &input.states {
        let state_name = name(state_name);
        request = match state {
            StateIn::Empty => request.with_state(&state_name, None),
            StateIn::Packed(seconds) => request.with_state_value(
                &state_name,
                &prost_types::Duration {
                    seconds: *seconds,
                    nanos: 0,
                },
            ),
            StateIn::Any { type_url, value } => request.with_state(
                &state_name,
                Some(Any {
                    type_url: type_url.clone(),
                    value: value.clone(),
                }),
            ),
            StateIn::Raw(bytes) => request.with_state_bytes(&state_name, bytes.clone()),
        };
        if !carried.contains(&state_name) {
            carried.push(state_name);
        }
    }
    for invocation in &input.invocations {
        let argument = match &invocation.argument {
            ArgumentIn::Script(script) => Any {
                type_url: "fuzz/script".into(),
                value: script.clone(),
            },
            ArgumentIn::Duration(seconds) => statefun_sync::pack(&prost_types::Duration {
                seconds: *seconds,
                nanos: 0,
            }),
            ArgumentIn::Any { type_url, value } => Any {
                type_url: type_url.clone(),
                value: value.clone(),
            },
        };
        request = match &invocation.caller {
            Some((namespace, name, id)) => {
                request.invoke_from(wire_address(namespace, name, id), argument)
            }
            None => request.invoke(argument),
        };
    }
    let bytes = request.to_bytes();
    assert_eq!(
        bytes,
        request.to_proto().encode_to_vec(),
        "to_bytes is to_proto"
    );

    reset();
    let result = handler().handle(&bytes);
    let model = take();
    check(&result, &model);

    // `Request::to` splits at the last `/`, as the handler will see the target.
    let (namespace, name) = typename.rsplit_once('/').unwrap_or(("", &typename));
    let target = format!("{namespace}/{name}");
    let bound = [ALL, TYPED, DECLARED].contains(&target.as_str());
    let lacks_declared = target == DECLARED
        && !(carried.iter().any(|n| n == "a") && carried.iter().any(|n| n == "b"));
    match &result {
        Ok(reply) => {
            assert!(bound, "Ok for the unbound target {target:?}");
            assert!(
                !lacks_declared,
                "Ok without the declared states: {carried:?}"
            );
            assert_eq!(
                model.invocations,
                input.invocations.len(),
                "invocations run"
            );
            let reply = Reply::decode(reply).expect("checked");
            for (state, _) in reply.state_changes() {
                assert!(
                    carried.contains(state),
                    "a mutation of {state:?}, not carried"
                );
            }
        }
        Err(err) => match err {
            Error::MalformedRequest { .. } | Error::NoInvocation => {
                panic!("the builder's bytes do not decode: {err:?}")
            }
            Error::UnknownFunctionType { .. } => {
                assert!(!bound, "404 for the bound target {target:?}");
                assert_eq!(model.invocations, 0, "a function ran");
            }
            Error::MissingDeclaredState { state, .. } => {
                assert!(lacks_declared, "missing {state:?}, carried {carried:?}");
                assert!(!carried.contains(state), "{state:?} was carried");
                assert_eq!(model.invocations, 0, "a function ran");
            }
            Error::UnknownState { state, .. } => {
                assert!(!carried.contains(state), "{state:?} was carried: {err:?}");
            }
            _ => assert!(bound, "{err:?} for the unbound target {target:?}"),
        },
    }
}

fn any(input: &Option<AnyIn>) -> Option<Any> {
    input.as_ref().map(|a| Any {
        type_url: a.type_url.clone(),
        value: a.value.clone(),
    })
}

fn address(input: &Option<AddressIn>) -> Option<proto::Address> {
    input.as_ref().map(|a| proto::Address {
        namespace: a.0.clone(),
        r#type: a.1.clone(),
        id: a.2.clone(),
    })
}

fn reply_round_trip(input: &ReplyIn) {
    use from_function::persisted_value_mutation::MutationType;
    let response = from_function::InvocationResponse {
        state_mutations: input
            .mutations
            .iter()
            .map(|(name, value)| from_function::PersistedValueMutation {
                mutation_type: if value.is_some() {
                    MutationType::Modify
                } else {
                    MutationType::Delete
                } as i32,
                state_name: name.clone(),
                state_value: any(value)
                    .map(|a| a.encode_to_vec())
                    .unwrap_or_default()
                    .into(),
            })
            .collect(),
        outgoing_messages: input
            .messages
            .iter()
            .map(|(target, argument)| from_function::Invocation {
                target: address(target),
                argument: any(argument),
            })
            .collect(),
        delayed_invocations: input
            .delayed
            .iter()
            .map(
                |(delay, target, argument)| from_function::DelayedInvocation {
                    delay_in_ms: *delay,
                    target: address(target),
                    argument: any(argument),
                },
            )
            .collect(),
        outgoing_egresses: input
            .egresses
            .iter()
            .map(|(namespace, name, argument)| from_function::EgressMessage {
                egress_namespace: namespace.clone(),
                egress_type: name.clone(),
                argument: any(argument),
            })
            .collect(),
    };
    let bytes = proto::FromFunction {
        response: Some(from_function::Response::InvocationResult(response)),
    }
    .encode_to_vec();
    let reply = Reply::decode(&bytes).expect("an encoded FromFunction decodes");

    let changes = reply.state_changes();
    assert_eq!(changes.len(), input.mutations.len());
    for ((name, change), (in_name, in_value)) in changes.iter().zip(&input.mutations) {
        assert_eq!(name, in_name);
        let expected = match any(in_value) {
            Some(a) => StateChange::Modified(a),
            None => StateChange::Deleted,
        };
        assert_eq!(*change, expected, "state {name:?}");
    }
    let to_address = |a: &Option<AddressIn>| {
        a.as_ref()
            .map(|a| wire_address(&a.0, &a.1, &a.2))
            .unwrap_or_default()
    };
    assert_eq!(reply.messages().len(), input.messages.len());
    for (sent, (target, argument)) in reply.messages().iter().zip(&input.messages) {
        assert_eq!(sent.target, to_address(target));
        assert_eq!(sent.argument, any(argument).unwrap_or_default());
    }
    assert_eq!(reply.delayed_messages().count(), input.delayed.len());
    for (sent, (delay, target, argument)) in reply.delayed_messages().zip(&input.delayed) {
        assert_eq!(sent.delay.as_millis(), u128::from((*delay).max(0) as u64));
        assert_eq!(sent.target, to_address(target));
        assert_eq!(sent.argument, any(argument).unwrap_or_default());
    }
    assert_eq!(reply.egresses().len(), input.egresses.len());
    for (emitted, (namespace, name, argument)) in reply.egresses().iter().zip(&input.egresses) {
        assert_eq!(emitted.egress, format!("{namespace}/{name}"));
        assert_eq!(emitted.argument, any(argument).unwrap_or_default());
    }
}

/// An address as the runtime may send it: any parts, unchecked.
fn wire_address(namespace: &str, name: &str, id: &str) -> Address {
    Address::from(proto::Address {
        namespace: namespace.to_owned(),
        r#type: name.to_owned(),
        id: id.to_owned(),
    })
}
