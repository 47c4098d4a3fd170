//! The Stateful Functions 2.2 request-reply protocol: `ToFunction` in, `FromFunction` out,
//! values in `google.protobuf.Any`.

use std::borrow::Cow;

use prost::Message;
use prost_types::Any;

use super::{
    reply, request, AddressRef, Batch, Delayed, DelayedError, Effects, Limits, Mutations, Payload,
    Protocol, ProtocolVersion, RawArgument, Refused, ValueFormat,
};
use crate::address::Address;
use crate::error::Error;
use crate::proto::polyglot::to_function;
use crate::state_spec::StateSpec;
use crate::types::EncodeError;
use crate::wire::{len_field_len, put_len_key, Reader, WireError, WireType};

/// The Stateful Functions 2.2 protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct V2;

const NO_CANCELLATION: &str =
    "cancelling delayed messages needs the Stateful Functions 3.x protocol; this handler speaks 2.2";

/// 2.2 values: a `google.protobuf.Any` (`type_url` = 1, `value` = 2); a state without a
/// value is empty bytes.
pub(crate) struct AnyValue;

impl ValueFormat for AnyValue {
    const EMPTY_CALLER_IS_NONE: bool = false;
    const STATE_VALUE_IS_A_MESSAGE: bool = false;

    /// A state value is kept as the bytes of its `Any`, read only if a function reads it.
    fn state_value(bytes: &[u8]) -> Result<&[u8], WireError> {
        Ok(bytes)
    }

    /// The fields of an `Any` that has each at most once and nothing else, borrowed.
    fn plain_parts(bytes: &[u8]) -> Option<(&str, Option<&[u8]>)> {
        let mut reader = Reader::new(bytes);
        let (mut type_url, mut value) = (None, None);
        while !reader.is_empty() {
            match reader.key().ok()? {
                (1, WireType::LengthDelimited) if type_url.is_none() => {
                    type_url = Some(std::str::from_utf8(reader.bytes().ok()?).ok()?);
                }
                (2, WireType::LengthDelimited) if value.is_none() => {
                    value = Some(reader.bytes().ok()?);
                }
                _ => return None,
            }
        }
        Some((type_url.unwrap_or(""), Some(value.unwrap_or(&[]))))
    }

    fn decode_invocation(
        bytes: &[u8],
    ) -> Result<
        (
            Option<crate::proto::polyglot::Address>,
            RawArgument<'static>,
        ),
        prost::DecodeError,
    > {
        let invocation = to_function::Invocation::decode(bytes)?;
        let argument = invocation.argument.unwrap_or_default();
        Ok((
            invocation.caller,
            RawArgument {
                typename: Cow::Owned(argument.type_url),
                value: Some(Cow::Owned(argument.value)),
            },
        ))
    }

    /// The size of `payload` as an `Any` message (without key and length).
    /// An `Any` has no presence: the context refuses a value without one on 2.2.
    fn message_len(type_len: usize, _has_value: bool, value_len: usize) -> usize {
        let type_url = if type_len == 0 {
            0
        } else {
            len_field_len(1, type_len)
        };
        let value = if value_len == 0 {
            0
        } else {
            len_field_len(2, value_len)
        };
        type_url + value
    }

    /// The `Any`'s `type_url`, then the key and length of its `value`; empty fields are
    /// left out, as prost leaves out proto3 defaults.
    fn put_head(
        buf: &mut Vec<u8>,
        payload: &dyn Payload,
        type_len: usize,
        _has_value: bool,
        value_len: usize,
    ) {
        if type_len > 0 {
            put_len_key(buf, 1, type_len);
            payload.put_type(buf);
        }
        if value_len > 0 {
            put_len_key(buf, 2, value_len);
        }
    }

    /// The type URL and value of a serialized `Any`, borrowed: reading a state into a
    /// message type then copies nothing but the message's own fields.
    fn stored_parts(stored: &[u8]) -> Result<(&str, &[u8]), WireError> {
        let mut reader = Reader::new(stored);
        let (mut type_url, mut value): (&str, &[u8]) = ("", &[]);
        while !reader.is_empty() {
            match reader.key()? {
                (1, WireType::LengthDelimited) => {
                    type_url = std::str::from_utf8(reader.bytes()?)
                        .map_err(|_| WireError("the type URL is not valid UTF-8"))?;
                }
                (2, WireType::LengthDelimited) => value = reader.bytes()?,
                (1 | 2, _) => return Err(WireError("an Any field has the wrong wire type")),
                (tag, wire_type) => reader.skip(tag, wire_type)?,
            }
        }
        Ok((type_url, value))
    }
}

impl Protocol for V2 {
    fn version(&self) -> ProtocolVersion {
        ProtocolVersion::V2
    }

    fn decode_request<'a>(&self, body: &'a [u8], limits: Limits) -> Result<Batch<'a>, Refused> {
        request::decode_request::<AnyValue>(body, limits)
    }

    /// 2.2 has no handshake: the states come from `module.yaml`, and a request without
    /// one the function declares fails, naming the first.
    fn missing_states(
        &self,
        target: Address,
        missing: &mut dyn Iterator<Item = &StateSpec>,
    ) -> Result<Vec<u8>, Error> {
        let state = missing
            .next()
            .map(|s| s.name().to_owned())
            .unwrap_or_default();
        Err(Error::MissingDeclaredState {
            address: Box::new(target),
            state,
        })
    }

    fn message(
        &self,
        effects: &mut Effects,
        target: AddressRef<'_>,
        payload: &dyn Payload,
    ) -> Result<(), EncodeError> {
        reply::message::<AnyValue>(effects, target, payload)
    }

    /// A zero delay is a "missing delay" in 2.2's Python SDK, and 2.2 knows no
    /// cancellation tokens.
    fn delayed(&self, effects: &mut Effects, delayed: Delayed<'_>) -> Result<(), DelayedError> {
        if delayed.delay.is_zero() {
            return Err(DelayedError::Invalid(
                "the delay is zero; send the message without a delay instead",
            ));
        }
        if delayed.token.is_some() {
            return Err(DelayedError::Invalid(NO_CANCELLATION));
        }
        let Delayed {
            delay_ms,
            target,
            payload,
            ..
        } = delayed;
        reply::delayed::<AnyValue>(effects, delay_ms, target, payload, "")
            .map_err(DelayedError::Unencodable)
    }

    fn cancel_delayed(&self, _effects: &mut Effects, _token: &str) -> Result<(), &'static str> {
        Err(NO_CANCELLATION)
    }

    fn egress(
        &self,
        effects: &mut Effects,
        namespace: &str,
        name: &str,
        payload: &dyn Payload,
    ) -> Result<(), EncodeError> {
        reply::egress::<AnyValue>(effects, namespace, name, payload)
    }

    fn put_state_value(&self, buf: &mut Vec<u8>, payload: &dyn Payload) -> Result<(), EncodeError> {
        reply::put_ending_in_value::<AnyValue>(
            buf,
            payload,
            #[inline(always)]
            |buf, len| buf.reserve(len),
        )
    }

    /// A stored value is a serialized `Any`, decoded as prost decodes it.
    fn state_value_any(&self, stored: &[u8]) -> Result<Any, crate::types::DecodeError> {
        Ok(Any::decode(stored)?)
    }

    fn state_value_parts<'v>(&self, stored: &'v [u8]) -> Result<(&'v str, &'v [u8]), WireError> {
        AnyValue::stored_parts(stored)
    }

    fn encode_reply(&self, mutations: Mutations<'_, '_>, effects: &Effects) -> Vec<u8> {
        reply::encode_reply(mutations.iter(), effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::polyglot as proto;
    use crate::protocol::{Caller, Mutation};

    fn decode_request(body: &[u8], limits: Limits) -> Result<Batch<'_>, Refused> {
        request::decode_request::<AnyValue>(body, limits)
    }

    fn decode_invocation<'a>(
        bytes: &'a [u8],
        last_caller: &mut Option<Option<&'a [u8]>>,
    ) -> Result<crate::protocol::Invocation<'a>, prost::DecodeError> {
        request::decode_invocation::<AnyValue>(bytes, last_caller)
    }

    use reply::encode_reply;

    /// The error of a request that does not decode, without its target.
    fn decode(body: &[u8], limits: Limits) -> Result<Batch<'_>, Error> {
        decode_request(body, limits).map_err(|refused| refused.error)
    }

    #[test]
    fn a_request_refused_while_decoding_keeps_the_target_read_before() {
        let body = request(to_function::InvocationBatchRequest {
            target: Some(proto::Address {
                namespace: "ns".into(),
                r#type: "t".into(),
                id: "1".into(),
            }),
            invocations: vec![Default::default(); 3],
            ..Default::default()
        });
        let limits = Limits {
            max_invocations: 2,
            ..Limits::NONE
        };
        let refused = decode_request(&body, limits).unwrap_err();
        assert!(matches!(
            refused.error,
            Error::TooManyInvocations { limit: 2 }
        ));
        assert_eq!(
            refused.target.as_deref(),
            Some(&Address::from_wire("ns", "t", "1"))
        );
        assert!(decode_request(&[], limits).unwrap_err().target.is_none());
    }

    fn request(batch: to_function::InvocationBatchRequest) -> Vec<u8> {
        proto::ToFunction {
            request: Some(to_function::Request::Invocation(batch)),
        }
        .encode_to_vec()
    }

    fn state(name: &str, value: &'static [u8]) -> to_function::PersistedValue {
        to_function::PersistedValue {
            state_name: name.into(),
            state_value: prost::bytes::Bytes::from_static(value),
        }
    }

    #[test]
    fn state_values_are_borrowed_from_the_body() {
        let body = request(to_function::InvocationBatchRequest {
            target: Some(proto::Address {
                namespace: "ns".into(),
                r#type: "t".into(),
                id: "1".into(),
            }),
            state: vec![state("big", &[7; 1000])],
            invocations: vec![Default::default()],
        });
        let batch = decode(&body, Limits::NONE).unwrap();
        let value = batch.states.as_slice()[0].value;
        assert_eq!(value, &[7; 1000][..]);
        assert!(
            body.as_ptr_range().contains(&value.as_ptr()),
            "value was copied"
        );
        assert_eq!(batch.target, Address::from_wire("ns", "t", "1"));
        assert_eq!(batch.invocations.len(), 1);
        assert!(matches!(batch.invocations[0].caller, Caller::Is(None)));
        assert_eq!(batch.invocations[0].argument.typename(), "");
        assert_eq!(batch.invocations[0].argument.value(), Some(&b""[..]));
    }

    /// Invocations read in place decode to what prost decodes, whatever their shape, and
    /// fail where prost fails, with prost's error.
    #[test]
    fn invocations_decode_as_prost_decodes_them() {
        let caller = |id: &str| proto::Address {
            namespace: "ns".into(),
            r#type: "caller".into(),
            id: id.into(),
        };
        let encode = |caller: Option<proto::Address>, argument: Option<Any>| {
            to_function::Invocation { caller, argument }.encode_to_vec()
        };
        let any = Any {
            type_url: "t/x".into(),
            value: b"v".to_vec(),
        };
        let plain = encode(Some(caller("a")), Some(any.clone()));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("plain", plain.clone()),
            ("no caller", encode(None, Some(any.clone()))),
            ("no argument", encode(Some(caller("a")), None)),
            ("empty", Vec::new()),
            (
                "empty caller and Any",
                encode(Some(Default::default()), Some(Default::default())),
            ),
            // Two caller fields merge: `b` replaces the id.
            (
                "caller twice",
                [plain.clone(), encode(Some(caller("b")), None)].concat(),
            ),
            (
                "argument twice",
                [plain.clone(), encode(None, Some(any.clone()))].concat(),
            ),
            ("unknown field", [plain.clone(), vec![0x18, 0x01]].concat()),
            // Any { type_url: 0xff } is not UTF-8.
            ("invalid type URL", vec![0x12, 0x03, 0x0a, 0x01, 0xff]),
            ("truncated", plain[..plain.len() - 1].to_vec()),
            ("wrong wire type", vec![0x10, 0x01]),
        ];
        for (name, bytes) in cases {
            let expected = to_function::Invocation::decode(&bytes[..]);
            match (decode_invocation(&bytes, &mut None), expected) {
                (Ok(got), Ok(expected)) => {
                    let Caller::Is(got_caller) = got.caller else {
                        panic!("{name}: the first invocation's caller is decoded");
                    };
                    let expected_caller = expected.caller.map(Address::from);
                    assert_eq!(got_caller, expected_caller, "{name}");
                    assert_eq!(
                        got.argument.to_any(),
                        expected.argument.unwrap_or_default(),
                        "{name}"
                    );
                }
                (Err(got), Err(expected)) => assert_eq!(got, expected, "{name}"),
                (got, expected) => panic!("{name}: {got:?}, prost: {expected:?}"),
            }
        }
    }

    #[test]
    fn a_caller_is_decoded_once_for_consecutive_invocations() {
        let invocation = |id: &str| {
            to_function::Invocation {
                caller: Some(proto::Address {
                    namespace: "ns".into(),
                    r#type: "caller".into(),
                    id: id.into(),
                }),
                argument: None,
            }
            .encode_to_vec()
        };
        let (a, b) = (invocation("a"), invocation("b"));
        let mut last = None;
        let callers: Vec<Caller> = [&a, &a, &b, &a]
            .into_iter()
            .map(|bytes| decode_invocation(bytes, &mut last).unwrap().caller)
            .collect();
        assert!(
            matches!(
                &callers[..],
                [Caller::Is(Some(x)), Caller::Unchanged, Caller::Is(Some(y)), Caller::Is(Some(z))]
                    if x.id() == "a" && y.id() == "b" && z.id() == "a"
            ),
            "{callers:?}"
        );
    }

    #[test]
    fn a_repeated_state_name_keeps_its_first_position_and_last_value() {
        let body = request(to_function::InvocationBatchRequest {
            state: vec![state("a", b"1"), state("b", b"2"), state("a", b"3")],
            ..Default::default()
        });
        let batch = decode(&body, Limits::NONE).unwrap();
        let states: Vec<_> = batch
            .states
            .as_slice()
            .iter()
            .map(|s| (s.name, s.value))
            .collect();
        assert_eq!(states, [("a", &b"3"[..]), ("b", &b"2"[..])]);
    }

    #[test]
    fn many_states_keep_first_position_and_last_value() {
        let names: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
        let mut request_states: Vec<_> = names.iter().map(|n| state(n, b"old")).collect();
        request_states.push(state("s3", b"new"));
        request_states.push(state("s90", b"new"));
        let body = request(to_function::InvocationBatchRequest {
            state: request_states,
            ..Default::default()
        });
        let batch = decode(&body, Limits::NONE).unwrap();
        let states = batch.states.as_slice();
        assert_eq!(states.len(), 100);
        assert_eq!((states[3].name, states[3].value), ("s3", &b"new"[..]));
        assert_eq!((states[90].name, states[90].value), ("s90", &b"new"[..]));
        assert_eq!(states[4].value, b"old");
        assert_eq!(batch.states.position("s99"), Some(99));
        assert_eq!(batch.states.position("s100"), None);
    }

    #[test]
    fn two_batch_fields_merge() {
        let first = request(to_function::InvocationBatchRequest {
            target: Some(proto::Address {
                namespace: "ns".into(),
                ..Default::default()
            }),
            state: vec![state("a", b"1")],
            invocations: vec![Default::default()],
        });
        let second = request(to_function::InvocationBatchRequest {
            target: Some(proto::Address {
                r#type: "t".into(),
                ..Default::default()
            }),
            state: vec![state("b", b"2")],
            invocations: vec![Default::default()],
        });
        let body = [first, second].concat();
        let batch = decode(&body, Limits::NONE).unwrap();
        assert_eq!(batch.target, Address::from_wire("ns", "t", ""));
        assert_eq!(batch.states.as_slice().len(), 2);
        assert_eq!(batch.invocations.len(), 2);
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        let good = request(to_function::InvocationBatchRequest {
            state: vec![state("seen", b"xyz")],
            invocations: vec![Default::default()],
            ..Default::default()
        });
        let cases: [(&[u8], &str); 4] = [
            (&good[..good.len() - 1], "ToFunction.invocation"),
            (
                &[0xa2, 0x06, 0x04, 0x12, 0x02, 0x0a, 0x05],
                "ToFunction.invocation.state[0]",
            ),
            (
                &[0xa2, 0x06, 0x04, 0x12, 0x02, 0x0a, 0x00, 0x0a, 0x01, 0xff][..6],
                "ToFunction.invocation",
            ),
            (&[0xa0, 0x06, 0x01], "ToFunction.invocation"),
        ];
        for (body, field) in cases {
            match decode(body, Limits::NONE) {
                Err(Error::MalformedRequest { field: f, .. }) => {
                    assert!(f.starts_with(field), "body {body:02x?}: field {f}")
                }
                other => panic!("body {body:02x?}: {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_utf8_in_a_state_name_is_malformed() {
        // ToFunction{invocation{state{state_name: 0xff}}}
        let body = [0xa2, 0x06, 0x05, 0x12, 0x03, 0x0a, 0x01, 0xff];
        let err = decode(&body, Limits::NONE).unwrap_err();
        assert!(err.to_string().contains("state[0].state_name"), "{err}");
    }

    #[test]
    fn invocations_past_the_limit_are_refused_while_decoding() {
        let batch = |n| {
            request(to_function::InvocationBatchRequest {
                invocations: vec![Default::default(); n],
                ..Default::default()
            })
        };
        let limits = Limits {
            max_invocations: 3,
            ..Limits::NONE
        };
        assert_eq!(decode(&batch(3), limits).unwrap().invocations.len(), 3);
        assert!(matches!(
            decode(&batch(4), limits),
            Err(Error::TooManyInvocations { limit: 3 })
        ));
    }

    #[test]
    fn distinct_states_past_the_limit_are_refused_while_decoding() {
        let limits = Limits {
            max_states: 2,
            ..Limits::NONE
        };
        let with_states = |names: &[&str]| {
            request(to_function::InvocationBatchRequest {
                state: names.iter().map(|n| state(n, b"v")).collect(),
                ..Default::default()
            })
        };
        // A repeated name is no new state.
        let body = with_states(&["a", "b", "a", "b"]);
        let batch = decode(&body, limits).unwrap();
        assert_eq!(batch.states.as_slice().len(), 2);
        assert!(matches!(
            decode(&with_states(&["a", "b", "c"]), limits),
            Err(Error::TooManyStates { limit: 2 })
        ));
    }

    #[test]
    fn a_malformed_state_is_named_by_its_place_on_the_wire() {
        // states `a`, `a`, then one whose name is not UTF-8
        let mut body = request(to_function::InvocationBatchRequest {
            state: vec![state("a", b""), state("a", b""), state("x", b"")],
            ..Default::default()
        });
        let at = body.iter().rposition(|&b| b == b'x').unwrap();
        body[at] = 0xff;
        let err = decode(&body, Limits::NONE).unwrap_err();
        assert!(err.to_string().contains("state[2].state_name"), "{err}");
    }

    #[test]
    fn a_body_without_a_batch_is_no_invocation() {
        for body in [&[][..], &[0x08, 0x01]] {
            assert!(
                matches!(decode(body, Limits::NONE), Err(Error::NoInvocation)),
                "{body:?}"
            );
        }
    }

    /// The reply encoder writes what prost writes for the same reply, byte for byte,
    /// including empty strings, empty `Any`s, deletions and delays of every size.
    #[test]
    fn the_reply_encoder_writes_what_prost_writes() {
        use crate::message::Typed;
        use proto::from_function::{self as ff, persisted_value_mutation::MutationType};

        let addr = |namespace: &'static str, name: &'static str, id: &'static str| {
            (
                AddressRef {
                    namespace,
                    name,
                    id,
                },
                proto::Address {
                    namespace: namespace.into(),
                    r#type: name.into(),
                    id: id.into(),
                },
            )
        };
        let any = |type_url: &str, value: &[u8]| Any {
            type_url: type_url.into(),
            value: value.into(),
        };
        let duration = prost_types::Duration {
            seconds: 3,
            nanos: 0,
        };
        let empty_duration = prost_types::Duration::default();
        let long_value = vec![7u8; 300];

        let mut effects = Effects::default();
        let mut expected = ff::InvocationResponse::default();
        for (target, argument) in [
            (addr("ns", "f", "1"), any("t/x", b"ab")),
            (addr("", "", ""), any("", b"")),
            (addr("ns", "", "id"), any("", &long_value)),
        ] {
            V2.message(&mut effects, target.0, &argument).unwrap();
            expected.outgoing_messages.push(ff::Invocation {
                target: Some(target.1),
                argument: Some(argument),
            });
        }
        for message in [&duration, &empty_duration] {
            let (target, proto_target) = addr("ns", "f", "2");
            V2.message(&mut effects, target, &Typed(Some(message)))
                .unwrap();
            expected.outgoing_messages.push(ff::Invocation {
                target: Some(proto_target),
                argument: Some(crate::pack(message)),
            });
        }
        for delay_ms in [1, 300, i64::MAX, -1, 0] {
            let (target, proto_target) = addr("ns", "f", "3");
            reply::delayed::<AnyValue>(&mut effects, delay_ms, target, &Typed(Some(&duration)), "")
                .unwrap();
            expected.delayed_invocations.push(ff::DelayedInvocation {
                delay_in_ms: delay_ms,
                target: Some(proto_target),
                argument: Some(crate::pack(&duration)),
            });
        }
        for (namespace, name, argument) in [("e", "out", any("t/y", b"z")), ("", "", any("", b""))]
        {
            V2.egress(&mut effects, namespace, name, &argument).unwrap();
            expected.outgoing_egresses.push(ff::EgressMessage {
                egress_namespace: namespace.into(),
                egress_type: name.into(),
                argument: Some(argument),
            });
        }
        let set = crate::pack(&duration).encode_to_vec();
        let mutations = [
            Mutation {
                name: "a",
                value: Some(&set),
            },
            Mutation {
                name: "b",
                value: None,
            },
            Mutation {
                name: "",
                value: Some(&[]),
            },
            Mutation {
                name: "d",
                value: Some(&long_value),
            },
        ];
        for m in mutations {
            let kind = if m.value.is_some() {
                MutationType::Modify
            } else {
                MutationType::Delete
            };
            expected.state_mutations.push(ff::PersistedValueMutation {
                mutation_type: kind as i32,
                state_name: m.name.into(),
                state_value: m.value.unwrap_or_default().to_vec().into(),
            });
        }
        let expected = proto::FromFunction {
            response: Some(ff::Response::InvocationResult(expected)),
        };

        let reply = encode_reply(mutations.into_iter(), &effects);

        assert_eq!(reply, expected.encode_to_vec());
        assert_eq!(
            reply.capacity(),
            reply.len(),
            "the reply is allocated once, exactly"
        );
    }

    #[test]
    fn an_empty_reply_still_carries_an_invocation_result() {
        assert_eq!(
            encode_reply(std::iter::empty(), &Effects::default()),
            [0xa2, 0x06, 0x00]
        );
    }
}
