//! The Stateful Functions 3.x request-reply protocol (runtimes 3.0 to 3.3): values in
//! `TypedValue`, states declared by the function through the missing-state handshake,
//! and cancellable delayed messages.

use std::borrow::Cow;
use std::time::Duration;

use prost::Message;
use prost_types::Any;

use super::{
    reply, request, AddressRef, Batch, Delayed, DelayedError, Effects, Limits, Mutations, Payload,
    Protocol, ProtocolVersion, RawArgument, Refused, ValueFormat,
};
use crate::address::Address;
use crate::error::Error;
use crate::proto::polyglot;
use crate::proto::reqreply::{from_function, to_function, FromFunction};
use crate::state_spec::{Expiration, StateSpec};
use crate::types::EncodeError;
use crate::wire::{len_field_len, put_len_key, Reader, WireError, WireType};

/// The Stateful Functions 3.x protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct V3;

const EMPTY_TOKEN: &str = "the cancellation token is empty; the runtime rejects an empty token \
                           (send without a token when there is nothing to cancel)";

/// 3.x values: a `TypedValue` (`typename` = 1, `has_value` = 2, `value` = 3).
pub(crate) struct TypedValue;

/// The fields of a `TypedValue`, borrowed.
struct TypedParts<'a> {
    typename: &'a str,
    has_value: bool,
    value: &'a [u8],
}

impl TypedParts<'_> {
    /// Reads a `TypedValue` as protobuf does: the last occurrence of a field wins, unknown
    /// fields are skipped, and a known field of another wire type is an error (prost's
    /// rule). `plain` refuses any field twice and anything unknown, for the fast path of
    /// arguments, whose other shapes go to prost.
    fn read(bytes: &[u8], plain: bool) -> Result<TypedParts<'_>, WireError> {
        let mut reader = Reader::new(bytes);
        let mut parts = TypedParts {
            typename: "",
            has_value: false,
            value: &[],
        };
        let mut seen = [false; 3];
        while !reader.is_empty() {
            let (tag, wire_type) = reader.key()?;
            if plain {
                if !(1..=3).contains(&tag) || seen[tag as usize - 1] {
                    return Err(WireError("not the plain shape"));
                }
                seen[tag as usize - 1] = true;
            }
            match (tag, wire_type) {
                (1, WireType::LengthDelimited) => {
                    parts.typename = std::str::from_utf8(reader.bytes()?)
                        .map_err(|_| WireError("the typename is not valid UTF-8"))?;
                }
                (2, WireType::Varint) => parts.has_value = reader.varint()? != 0,
                (3, WireType::LengthDelimited) => parts.value = reader.bytes()?,
                (1..=3, _) => return Err(WireError("a TypedValue field has the wrong wire type")),
                (tag, wire_type) => reader.skip(tag, wire_type)?,
            }
        }
        Ok(parts)
    }
}

impl ValueFormat for TypedValue {
    const EMPTY_CALLER_IS_NONE: bool = true;
    const STATE_VALUE_IS_A_MESSAGE: bool = true;

    /// A state value is kept as the bytes of its `TypedValue`, checked here (a string
    /// that is not UTF-8 fails the request, as in the Python SDK) and read only if a
    /// function reads it; one without a value (`has_value` false) becomes empty bytes.
    fn state_value(bytes: &[u8]) -> Result<&[u8], WireError> {
        let parts = TypedParts::read(bytes, false)?;
        Ok(if parts.has_value { bytes } else { &[] })
    }

    fn plain_parts(bytes: &[u8]) -> Option<(&str, Option<&[u8]>)> {
        let parts = TypedParts::read(bytes, true).ok()?;
        Some((parts.typename, parts.has_value.then_some(parts.value)))
    }

    fn decode_invocation(
        bytes: &[u8],
    ) -> Result<(Option<polyglot::Address>, RawArgument<'static>), prost::DecodeError> {
        let invocation = to_function::Invocation::decode(bytes)?;
        let caller = invocation.caller.map(|a| polyglot::Address {
            namespace: a.namespace,
            r#type: a.r#type,
            id: a.id,
        });
        let argument = invocation.argument.unwrap_or_default();
        let value = argument
            .has_value
            .then(|| Cow::Owned(argument.value.to_vec()));
        Ok((
            caller,
            RawArgument {
                typename: Cow::Owned(argument.typename),
                value,
            },
        ))
    }

    /// The size of `payload` as a `TypedValue` with a value (without key and length).
    fn message_len(type_len: usize, has_value: bool, value_len: usize) -> usize {
        let typename = if type_len == 0 {
            0
        } else {
            len_field_len(1, type_len)
        };
        let value = if value_len == 0 {
            0
        } else {
            len_field_len(3, value_len)
        };
        typename + if has_value { 2 } else { 0 } + value
    }

    /// The `TypedValue`'s `typename` and `has_value` (when set), then the key and length
    /// of its `value`; empty fields are left out, as every SDK writes it.
    fn put_head(
        buf: &mut Vec<u8>,
        payload: &dyn Payload,
        type_len: usize,
        has_value: bool,
        value_len: usize,
    ) {
        if type_len > 0 {
            put_len_key(buf, 1, type_len);
            payload.put_type(buf);
        }
        if has_value {
            buf.extend_from_slice(&[2 << 3, 1]); // `has_value` = true
        }
        if value_len > 0 {
            put_len_key(buf, 3, value_len);
        }
    }

    fn stored_parts(stored: &[u8]) -> Result<(&str, &[u8]), WireError> {
        let parts = TypedParts::read(stored, false)?;
        Ok((parts.typename, parts.value))
    }
}

impl Protocol for V3 {
    fn version(&self) -> ProtocolVersion {
        ProtocolVersion::V3
    }

    /// Decodes as every version does, then refuses what the 3.x SDKs cannot run: a batch
    /// without a target, and invocations for an empty id (the Python SDK fails on both).
    fn decode_request<'a>(&self, body: &'a [u8], limits: Limits) -> Result<Batch<'a>, Refused> {
        let batch = request::decode_request::<TypedValue>(body, limits)?;
        let target = &batch.target;
        let problem = if target.namespace().is_empty()
            && target.name().is_empty()
            && target.id().is_empty()
        {
            Some((
                "ToFunction.invocation.target",
                "the batch has no target address",
            ))
        } else if target.id().is_empty() && !batch.invocations.is_empty() {
            Some((
                "ToFunction.invocation.target.id",
                "the target's id is empty, and the batch has invocations for it",
            ))
        } else {
            None
        };
        match problem {
            None => Ok(batch),
            Some((field, reason)) => Err(Refused {
                error: request::malformed_at(field.to_owned(), WireError(reason)),
                target: Some(Box::new(batch.target)),
            }),
        }
    }

    /// The handshake: the reply asks the runtime for the missing states, with one
    /// `PersistedValueSpec` each, in declaration order, and the runtime sends the batch
    /// again with them. `expiration_spec` is always set, as the Python SDK sets it.
    fn missing_states(
        &self,
        _target: Address,
        missing: &mut dyn Iterator<Item = &StateSpec>,
    ) -> Result<Vec<u8>, Error> {
        use from_function::expiration_spec::ExpireMode;

        let missing_values = missing
            .map(|spec| {
                let (mode, after) = match spec.expiration() {
                    None => (ExpireMode::None, Duration::ZERO),
                    Some(Expiration::AfterCall(after)) => (ExpireMode::AfterInvoke, after),
                    Some(Expiration::AfterWrite(after)) => (ExpireMode::AfterWrite, after),
                };
                let millis = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
                // A zero duration is no expiration, as in the SDKs.
                let mode = if millis == 0 { ExpireMode::None } else { mode };
                from_function::PersistedValueSpec {
                    state_name: spec.name().to_owned(),
                    expiration_spec: Some(from_function::ExpirationSpec {
                        mode: mode as i32,
                        expire_after_millis: millis,
                    }),
                    type_typename: spec.typename().unwrap_or_default().to_owned(),
                }
            })
            .collect();
        let reply = FromFunction {
            response: Some(from_function::Response::IncompleteInvocationContext(
                from_function::IncompleteInvocationContext { missing_values },
            )),
        };
        Ok(reply.encode_to_vec())
    }

    fn message(
        &self,
        effects: &mut Effects,
        target: AddressRef<'_>,
        payload: &dyn Payload,
    ) -> Result<(), EncodeError> {
        reply::message::<TypedValue>(effects, target, payload)
    }

    fn delayed(&self, effects: &mut Effects, delayed: Delayed<'_>) -> Result<(), DelayedError> {
        let Delayed {
            delay_ms,
            target,
            payload,
            token,
            ..
        } = delayed;
        if token == Some("") {
            return Err(DelayedError::Invalid(EMPTY_TOKEN));
        }
        let token = token.unwrap_or_default();
        reply::delayed::<TypedValue>(effects, delay_ms, target, payload, token)
            .map_err(DelayedError::Unencodable)
    }

    fn cancel_delayed(&self, effects: &mut Effects, token: &str) -> Result<(), &'static str> {
        if token.is_empty() {
            return Err(EMPTY_TOKEN);
        }
        reply::cancellation(effects, token);
        Ok(())
    }

    fn egress(
        &self,
        effects: &mut Effects,
        namespace: &str,
        name: &str,
        payload: &dyn Payload,
    ) -> Result<(), EncodeError> {
        reply::egress::<TypedValue>(effects, namespace, name, payload)
    }

    fn put_state_value(&self, buf: &mut Vec<u8>, payload: &dyn Payload) -> Result<(), EncodeError> {
        reply::put_ending_in_value::<TypedValue>(
            buf,
            payload,
            #[inline(always)]
            |buf, len| buf.reserve(len),
        )
    }

    /// A stored value as an `Any`: its typename as the type URL.
    fn state_value_any(&self, stored: &[u8]) -> Result<Any, crate::types::DecodeError> {
        let parts = TypedParts::read(stored, false)?;
        Ok(Any {
            type_url: parts.typename.to_owned(),
            value: parts.value.to_vec(),
        })
    }

    fn state_value_parts<'v>(&self, stored: &'v [u8]) -> Result<(&'v str, &'v [u8]), WireError> {
        TypedValue::stored_parts(stored)
    }

    fn encode_reply(&self, mutations: Mutations<'_, '_>, effects: &Effects) -> Vec<u8> {
        reply::encode_reply(mutations.iter(), effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Typed;
    use crate::proto::reqreply::{self as proto, TypedValue as ProtoTypedValue};
    use crate::protocol::{Caller, Mutation};

    fn typed(typename: &str, has_value: bool, value: &'static [u8]) -> ProtoTypedValue {
        ProtoTypedValue {
            typename: typename.into(),
            has_value,
            value: prost::bytes::Bytes::from_static(value),
        }
    }

    fn address(namespace: &str, name: &str, id: &str) -> proto::Address {
        proto::Address {
            namespace: namespace.into(),
            r#type: name.into(),
            id: id.into(),
        }
    }

    fn request(batch: to_function::InvocationBatchRequest) -> Vec<u8> {
        proto::ToFunction {
            request: Some(to_function::Request::Invocation(batch)),
        }
        .encode_to_vec()
    }

    fn decode(body: &[u8]) -> Result<Batch<'_>, Error> {
        V3.decode_request(body, Limits::NONE)
            .map_err(|refused| refused.error)
    }

    #[test]
    fn states_without_a_value_read_as_empty_whatever_their_bytes() {
        let body = request(to_function::InvocationBatchRequest {
            target: Some(address("ns", "f", "1")),
            state: vec![
                to_function::PersistedValue {
                    state_name: "absent".into(),
                    state_value: None,
                },
                to_function::PersistedValue {
                    state_name: "unset".into(),
                    state_value: Some(typed("io.statefun.types/int", false, b"\x0d\x05\0\0\0")),
                },
                to_function::PersistedValue {
                    state_name: "zero".into(),
                    state_value: Some(typed("io.statefun.types/int", true, b"")),
                },
            ],
            invocations: vec![],
        });
        let batch = decode(&body).unwrap();
        let states = batch.states.as_slice();
        assert!(states[0].value.is_empty());
        assert!(states[1].value.is_empty());
        assert_eq!(
            V3.state_value_parts(states[2].value).unwrap(),
            ("io.statefun.types/int", &b""[..])
        );
    }

    /// A `state_value` twice merges field by field, as protobuf (and the Python SDK)
    /// reads it: the second's value with the first's typename and `has_value`.
    #[test]
    fn a_state_value_that_occurs_twice_merges() {
        let first = to_function::PersistedValue {
            state_name: "a".into(),
            state_value: Some(typed("io.statefun.types/int", true, b"\x0d\x05\0\0\0")),
        }
        .encode_to_vec();
        let second = to_function::PersistedValue {
            state_name: String::new(),
            state_value: Some(typed("", false, b"\x0d\x07\0\0\0")),
        }
        .encode_to_vec();
        let both = [first.clone(), second[..].to_vec()].concat();
        let unset = to_function::PersistedValue {
            state_name: "b".into(),
            state_value: Some(typed("t/x", false, b"")),
        }
        .encode_to_vec();
        let unset_twice = [unset.clone(), unset].concat();
        // ToFunction{invocation{target: ns/f/"", state: both, state: unset_twice}}
        let field = |tag: u8, bytes: &[u8]| {
            let mut out = vec![tag];
            crate::wire::put_varint(&mut out, bytes.len() as u64);
            out.extend_from_slice(bytes);
            out
        };
        let target = address("ns", "f", "").encode_to_vec();
        let batch = [
            field(0x0a, &target),
            field(0x12, &both),
            field(0x12, &unset_twice),
        ]
        .concat();
        let body = [vec![0xa2, 0x06], field(0, &batch)[1..].to_vec()].concat();

        let batch = decode(&body).unwrap();

        let at = batch.states.position("a").unwrap();
        assert_eq!(
            V3.state_value_parts(batch.states.value(at)).unwrap(),
            ("io.statefun.types/int", &b"\x0d\x07\0\0\0"[..])
        );
        let unset = batch.states.position("b").unwrap();
        assert!(batch.states.value(unset).is_empty());
    }

    #[test]
    fn arguments_are_borrowed_and_callers_all_empty_are_none() {
        let body = request(to_function::InvocationBatchRequest {
            target: Some(address("ns", "f", "1")),
            state: vec![],
            invocations: vec![
                to_function::Invocation {
                    caller: Some(address("", "", "")),
                    argument: Some(typed("io.statefun.types/string", true, b"\x0a\x01x")),
                },
                to_function::Invocation {
                    caller: Some(address("ns", "c", "2")),
                    argument: Some(typed("t/x", false, b"ignored")),
                },
            ],
        });
        let batch = decode(&body).unwrap();
        let [first, second] = &batch.invocations[..] else {
            panic!("two invocations");
        };
        assert!(matches!(first.caller, Caller::Is(None)));
        assert_eq!(first.argument.typename(), "io.statefun.types/string");
        let value = first.argument.value().unwrap();
        assert_eq!(value, b"\x0a\x01x");
        assert!(body.as_ptr_range().contains(&value.as_ptr()));
        assert!(matches!(&second.caller, Caller::Is(Some(a)) if a.id() == "2"));
        assert_eq!(second.argument.value(), None, "has_value false is no value");
    }

    #[test]
    fn arguments_of_other_shapes_decode_as_prost_decodes_them() {
        let invocation = to_function::Invocation {
            caller: None,
            argument: Some(typed("t/x", true, b"v")),
        }
        .encode_to_vec();
        // the argument twice: prost merges the two TypedValues
        let twice = [
            invocation.clone(),
            to_function::Invocation {
                caller: None,
                argument: Some(typed("", false, b"w")),
            }
            .encode_to_vec(),
        ]
        .concat();
        let got = request::decode_invocation::<TypedValue>(&twice, &mut None).unwrap();
        assert_eq!(got.argument.typename(), "t/x");
        assert_eq!(got.argument.value(), Some(&b"w"[..]));
        // the wrong wire type for has_value
        let bad = [0x12, 0x02, 0x12, 0x00];
        assert!(request::decode_invocation::<TypedValue>(&bad, &mut None).is_err());
    }

    #[test]
    fn a_state_value_that_does_not_decode_names_the_state() {
        let body = request(to_function::InvocationBatchRequest {
            target: Some(address("ns", "f", "1")),
            state: vec![to_function::PersistedValue {
                state_name: "s".into(),
                state_value: Some(ProtoTypedValue {
                    typename: "x".into(),
                    ..Default::default()
                }),
            }],
            invocations: vec![],
        });
        let mut body = body;
        let at = body.iter().rposition(|&b| b == b'x').unwrap();
        body[at] = 0xff;
        let err = decode(&body).unwrap_err().to_string();
        assert!(err.contains("state[0].state_value"), "{err}");
    }

    #[test]
    fn a_batch_without_target_or_with_an_empty_id_is_refused() {
        let with = |target: Option<proto::Address>, invocations: usize| {
            request(to_function::InvocationBatchRequest {
                target,
                state: vec![],
                invocations: vec![Default::default(); invocations],
            })
        };
        for (body, field) in [
            (with(None, 1), "ToFunction.invocation.target"),
            (
                with(Some(address("", "", "")), 0),
                "ToFunction.invocation.target",
            ),
            (
                with(Some(address("ns", "f", "")), 1),
                "ToFunction.invocation.target.id",
            ),
        ] {
            match decode(&body) {
                Err(Error::MalformedRequest { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
        assert!(decode(&with(Some(address("ns", "f", "")), 0)).is_ok());
    }

    /// Every writer writes what prost writes for the 3.x messages, byte for byte.
    #[test]
    fn the_reply_encoder_writes_what_prost_writes() {
        use from_function as ff;

        let target = AddressRef {
            namespace: "ns",
            name: "f",
            id: "1",
        };
        let mut effects = Effects::default();
        let mut expected = ff::InvocationResponse::default();
        let any = Any {
            type_url: "t/x".into(),
            value: b"ab".to_vec(),
        };
        V3.message(&mut effects, target, &any).unwrap();
        V3.message(&mut effects, target, &Typed(Some(&0i32)))
            .unwrap();
        expected.outgoing_messages = vec![
            ff::Invocation {
                target: Some(address("ns", "f", "1")),
                argument: Some(typed("t/x", true, b"ab")),
            },
            ff::Invocation {
                target: Some(address("ns", "f", "1")),
                argument: Some(typed("io.statefun.types/int", true, b"")),
            },
        ];
        let five = Typed(Some(&5i64));
        for (delay_ms, token) in [(1000i64, None), (0, Some("t1")), (-5, None)] {
            V3.delayed(
                &mut effects,
                Delayed {
                    delay: Duration::from_millis(delay_ms.unsigned_abs()),
                    delay_ms,
                    target,
                    payload: &five,
                    token,
                },
            )
            .unwrap();
            expected.delayed_invocations.push(ff::DelayedInvocation {
                delay_in_ms: delay_ms,
                target: Some(address("ns", "f", "1")),
                argument: Some(typed(
                    "io.statefun.types/long",
                    true,
                    b"\x09\x05\0\0\0\0\0\0\0",
                )),
                is_cancellation_request: false,
                cancellation_token: token.unwrap_or_default().into(),
            });
        }
        V3.cancel_delayed(&mut effects, "t1").unwrap();
        expected.delayed_invocations.push(ff::DelayedInvocation {
            is_cancellation_request: true,
            cancellation_token: "t1".into(),
            ..Default::default()
        });
        V3.egress(&mut effects, "e", "out", &any).unwrap();
        expected.outgoing_egresses.push(ff::EgressMessage {
            egress_namespace: "e".into(),
            egress_type: "out".into(),
            argument: Some(typed("t/x", true, b"ab")),
        });
        let mut stored = Vec::new();
        V3.put_state_value(&mut stored, &Typed(Some(&"x".to_string())))
            .unwrap();
        let mutations = [
            Mutation {
                name: "a",
                value: Some(&stored),
            },
            Mutation {
                name: "b",
                value: None,
            },
        ];
        expected.state_mutations = vec![
            ff::PersistedValueMutation {
                mutation_type: ff::persisted_value_mutation::MutationType::Modify as i32,
                state_name: "a".into(),
                state_value: Some(typed("io.statefun.types/string", true, b"\x0a\x01x")),
            },
            ff::PersistedValueMutation {
                mutation_type: ff::persisted_value_mutation::MutationType::Delete as i32,
                state_name: "b".into(),
                state_value: None,
            },
        ];
        let reply = reply::encode_reply(mutations.into_iter(), &effects);
        let expected = FromFunction {
            response: Some(ff::Response::InvocationResult(expected)),
        };
        assert_eq!(reply, expected.encode_to_vec());
    }

    #[test]
    fn empty_tokens_are_refused() {
        let mut effects = Effects::default();
        assert!(V3.cancel_delayed(&mut effects, "").is_err());
        assert!(effects.delayed.is_empty());
    }

    #[test]
    fn the_handshake_lists_the_missing_specs_in_order() {
        let specs = [
            StateSpec::new("a").typed(crate::types::TypeName::new("io.statefun.types/int")),
            StateSpec::new("b")
                .typed(crate::types::TypeName::new("t/x"))
                .expire_after_write(Duration::from_millis(1500)),
            StateSpec::new("c")
                .typed(crate::types::TypeName::new("t/y"))
                .expire_after_call(Duration::ZERO),
        ];
        let reply = V3
            .missing_states(Address::from_wire("ns", "f", "1"), &mut specs.iter())
            .unwrap();
        let decoded = FromFunction::decode(&reply[..]).unwrap();
        let Some(from_function::Response::IncompleteInvocationContext(context)) = decoded.response
        else {
            panic!("{decoded:?}");
        };
        let got: Vec<_> = context
            .missing_values
            .iter()
            .map(|s| {
                let e = s.expiration_spec.unwrap();
                (
                    s.state_name.as_str(),
                    s.type_typename.as_str(),
                    e.mode,
                    e.expire_after_millis,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", "io.statefun.types/int", 0, 0),
                ("b", "t/x", 1, 1500),
                ("c", "t/y", 0, 0),
            ]
        );
        // `expiration_spec` is written even when empty, as the Python SDK writes it.
        assert_eq!(&reply[..2], [0xaa, 0x06]);
        assert!(reply.windows(2).any(|w| w == [0x12, 0x00]));
    }
}
