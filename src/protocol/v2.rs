//! The Stateful Functions 2.2 request-reply protocol: `ToFunction` in, `FromFunction` out.

use prost::Message;

use super::wire::{Reader, WireError, WireType};
use super::{Batch, Effects, Invocation, RawState};
use crate::address::Address;
use crate::error::Error;
use crate::proto::{self, from_function, to_function};

/// `ToFunction.invocation`
const TO_FUNCTION_INVOCATION: u32 = 100;
/// `InvocationBatchRequest.target`, `.state` and `.invocations`
const BATCH_TARGET: u32 = 1;
const BATCH_STATE: u32 = 2;
const BATCH_INVOCATIONS: u32 = 3;
/// `PersistedValue.state_name` and `.state_value`
const STATE_NAME: u32 = 1;
const STATE_VALUE: u32 = 2;

/// Decodes a serialized `ToFunction`, borrowing the state values from `body`.
///
/// Protobuf merge rules apply as in every protobuf parser: a message field that occurs
/// twice is merged, repeated fields concatenate, a scalar's last occurrence wins, and
/// unknown fields are skipped. A known field with the wrong wire type is an error.
pub(crate) fn decode_request(body: &[u8]) -> Result<Batch<'_>, Error> {
    let mut reader = Reader::new(body);
    let mut target: Option<proto::Address> = None;
    let mut states: Vec<RawState<'_>> = Vec::new();
    let mut invocations = Vec::new();
    let mut seen_batch = false;
    while !reader.is_empty() {
        let (tag, wire_type) = reader.key().map_err(malformed("ToFunction"))?;
        if tag != TO_FUNCTION_INVOCATION {
            reader
                .skip(tag, wire_type)
                .map_err(malformed("ToFunction"))?;
            continue;
        }
        let batch = length_delimited(&mut reader, wire_type, "ToFunction.invocation")?;
        seen_batch = true;
        decode_batch(batch, &mut target, &mut states, &mut invocations)?;
    }
    if !seen_batch {
        return Err(Error::NoInvocation);
    }
    let target = target.unwrap_or_default();
    Ok(Batch {
        target: Address::new(target.namespace, target.r#type, target.id),
        states,
        invocations,
    })
}

fn decode_batch<'a>(
    body: &'a [u8],
    target: &mut Option<proto::Address>,
    states: &mut Vec<RawState<'a>>,
    invocations: &mut Vec<Invocation>,
) -> Result<(), Error> {
    let mut reader = Reader::new(body);
    while !reader.is_empty() {
        let (tag, wire_type) = reader.key().map_err(malformed("ToFunction.invocation"))?;
        match tag {
            BATCH_TARGET => {
                let field = "ToFunction.invocation.target";
                let bytes = length_delimited(&mut reader, wire_type, field)?;
                target
                    .get_or_insert_with(Default::default)
                    .merge(bytes)
                    .map_err(malformed(field))?;
            }
            BATCH_STATE => {
                // Field names are formatted only on the error path: a request carries
                // many states, and a name per state would cost an allocation each.
                let index = states.len();
                let field = || format!("ToFunction.invocation.state[{index}]");
                let bytes = length_delimited_at(&mut reader, wire_type)
                    .map_err(|source| malformed_at(field(), source))?;
                let state = decode_state(bytes, field)?;
                match states.iter_mut().find(|s| s.name == state.name) {
                    Some(earlier) => earlier.value = state.value,
                    None => states.push(state),
                }
            }
            BATCH_INVOCATIONS => {
                let index = invocations.len();
                let field = || format!("ToFunction.invocation.invocations[{index}]");
                let bytes = length_delimited_at(&mut reader, wire_type)
                    .map_err(|source| malformed_at(field(), source))?;
                let invocation = to_function::Invocation::decode(bytes)
                    .map_err(|source| malformed_at(field(), source))?;
                invocations.push(Invocation {
                    caller: invocation
                        .caller
                        .map(|c| Address::new(c.namespace, c.r#type, c.id)),
                    argument: invocation.argument.unwrap_or_default(),
                });
            }
            _ => reader
                .skip(tag, wire_type)
                .map_err(malformed("ToFunction.invocation"))?,
        }
    }
    Ok(())
}

/// Decodes one `PersistedValue`; `field` names it, for errors only.
fn decode_state<'a>(body: &'a [u8], field: impl Fn() -> String) -> Result<RawState<'a>, Error> {
    let mut reader = Reader::new(body);
    let mut state = RawState {
        name: "",
        value: &[],
    };
    while !reader.is_empty() {
        let (tag, wire_type) = reader
            .key()
            .map_err(|source| malformed_at(field(), source))?;
        match tag {
            STATE_NAME => {
                let name = || format!("{}.state_name", field());
                let bytes = length_delimited_at(&mut reader, wire_type)
                    .map_err(|source| malformed_at(name(), source))?;
                state.name = std::str::from_utf8(bytes).map_err(|_| {
                    malformed_at(name(), WireError("invalid UTF-8 in a string field"))
                })?;
            }
            STATE_VALUE => {
                state.value = length_delimited_at(&mut reader, wire_type)
                    .map_err(|source| malformed_at(format!("{}.state_value", field()), source))?;
            }
            _ => reader
                .skip(tag, wire_type)
                .map_err(|source| malformed_at(field(), source))?,
        }
    }
    Ok(state)
}

fn length_delimited<'a>(
    reader: &mut Reader<'a>,
    wire_type: WireType,
    field: &str,
) -> Result<&'a [u8], Error> {
    length_delimited_at(reader, wire_type).map_err(malformed(field))
}

fn length_delimited_at<'a>(
    reader: &mut Reader<'a>,
    wire_type: WireType,
) -> Result<&'a [u8], WireError> {
    if wire_type != WireType::LengthDelimited {
        return Err(WireError(
            "expected a length-delimited field, found another wire type",
        ));
    }
    reader.bytes()
}

fn malformed<E>(field: &str) -> impl FnOnce(E) -> Error + '_
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |source| malformed_at(field.to_owned(), source)
}

fn malformed_at<E>(field: String, source: E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    Error::MalformedRequest {
        field,
        source: Box::new(source),
    }
}

/// The type URL and value of a serialized `Any`, borrowed: reading a state into a
/// message type then copies nothing but the message's own fields.
pub(crate) fn any_parts(bytes: &[u8]) -> Result<(&str, &[u8]), WireError> {
    let mut reader = Reader::new(bytes);
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

/// Encodes what a batch did as a serialized `FromFunction`.
///
/// The `invocation_result` is always set, even when the batch did nothing: the runtime
/// then sees a non-empty body.
pub(crate) fn encode_reply(effects: Effects) -> Vec<u8> {
    let address = |address: Address| {
        let (namespace, name, id) = address.into_parts();
        Some(proto::Address {
            namespace,
            r#type: name,
            id,
        })
    };
    let response = from_function::InvocationResponse {
        state_mutations: effects
            .mutations
            .into_iter()
            .map(|m| {
                let (mutation_type, state_value) = match m.value {
                    Some(bytes) => (
                        from_function::persisted_value_mutation::MutationType::Modify,
                        bytes.into(),
                    ),
                    None => (
                        from_function::persisted_value_mutation::MutationType::Delete,
                        Default::default(),
                    ),
                };
                from_function::PersistedValueMutation {
                    mutation_type: mutation_type as i32,
                    state_name: m.name,
                    state_value,
                }
            })
            .collect(),
        outgoing_messages: effects
            .messages
            .into_iter()
            .map(|(target, argument)| from_function::Invocation {
                target: address(target),
                argument: Some(argument),
            })
            .collect(),
        delayed_invocations: effects
            .delayed
            .into_iter()
            .map(|d| from_function::DelayedInvocation {
                delay_in_ms: d.delay_ms,
                target: address(d.target),
                argument: Some(d.argument),
            })
            .collect(),
        outgoing_egresses: effects
            .egresses
            .into_iter()
            .map(|e| from_function::EgressMessage {
                egress_namespace: e.namespace,
                egress_type: e.name,
                argument: Some(e.argument),
            })
            .collect(),
    };
    proto::FromFunction {
        response: Some(from_function::Response::InvocationResult(response)),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Any;

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
        let batch = decode_request(&body).unwrap();
        let value = batch.states[0].value;
        assert_eq!(value, &[7; 1000][..]);
        assert!(
            body.as_ptr_range().contains(&value.as_ptr()),
            "value was copied"
        );
        assert_eq!(batch.target, Address::new("ns", "t", "1"));
        assert_eq!(batch.invocations.len(), 1);
        assert_eq!(batch.invocations[0].caller, None);
        assert_eq!(batch.invocations[0].argument, Any::default());
    }

    #[test]
    fn a_repeated_state_name_keeps_its_first_position_and_last_value() {
        let body = request(to_function::InvocationBatchRequest {
            state: vec![state("a", b"1"), state("b", b"2"), state("a", b"3")],
            ..Default::default()
        });
        let batch = decode_request(&body).unwrap();
        let states: Vec<_> = batch.states.iter().map(|s| (s.name, s.value)).collect();
        assert_eq!(states, [("a", &b"3"[..]), ("b", &b"2"[..])]);
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
        let batch = decode_request(&body).unwrap();
        assert_eq!(batch.target, Address::new("ns", "t", ""));
        assert_eq!(batch.states.len(), 2);
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
            match decode_request(body) {
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
        let err = decode_request(&body).unwrap_err();
        assert!(err.to_string().contains("state[0].state_name"), "{err}");
    }

    #[test]
    fn a_body_without_a_batch_is_no_invocation() {
        for body in [&[][..], &[0x08, 0x01]] {
            assert!(
                matches!(decode_request(body), Err(Error::NoInvocation)),
                "{body:?}"
            );
        }
    }

    #[test]
    fn an_empty_reply_still_carries_an_invocation_result() {
        assert_eq!(encode_reply(Effects::default()), [0xa2, 0x06, 0x00]);
    }
}
