//! Decoding a request, `ToFunction`, the same in every version: its outer messages
//! (batch, state, invocation, address) have the same fields on every version, and only the
//! message a value travels in differs ([`ValueFormat`]: 2.2's `Any`, 3.x's `TypedValue`).

use std::borrow::Cow;

use super::{
    Batch, Caller, Invocation, Limits, RawArgument, RawState, Refused, States, ValueFormat,
};
use crate::address::Address;
use crate::error::Error;
use crate::wire::{Reader, WireError, WireType};

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
///
/// A batch with more invocations or more states than `limits` allows is refused as soon
/// as the first one too many is reached, before anything else is decoded.
pub(crate) fn decode_request<F: ValueFormat>(
    body: &[u8],
    limits: Limits,
) -> Result<Batch<'_>, Refused> {
    let mut parts = BatchParts {
        limits,
        target: None,
        states: States::default(),
        states_seen: 0,
        invocations: Vec::new(),
        last_caller: None,
    };
    match parts.decode_to_function::<F>(body) {
        Ok(true) => Ok(Batch {
            target: parts.target.unwrap_or_default().to_address(),
            states: parts.states,
            invocations: parts.invocations,
        }),
        Ok(false) => Err(Refused {
            error: Error::NoInvocation,
            target: None,
        }),
        Err(error) => Err(Refused {
            error,
            target: parts.target.map(|target| Box::new(target.to_address())),
        }),
    }
}

/// What the `InvocationBatchRequest`s of one `ToFunction` decoded to so far (a
/// `ToFunction` may carry several, which merge).
struct BatchParts<'a> {
    limits: Limits,
    target: Option<AddressParts<'a>>,
    states: States<'a>,
    /// States on the wire so far, repeated names included: the index errors name.
    states_seen: usize,
    invocations: Vec<Invocation<'a>>,
    last_caller: LastCaller<'a>,
}

impl<'a> BatchParts<'a> {
    /// Decodes the `ToFunction` in `body`; whether it carried a batch.
    fn decode_to_function<F: ValueFormat>(&mut self, body: &'a [u8]) -> Result<bool, Error> {
        let mut reader = Reader::new(body);
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
            self.decode_batch::<F>(batch)?;
        }
        Ok(seen_batch)
    }

    fn decode_batch<F: ValueFormat>(&mut self, body: &'a [u8]) -> Result<(), Error> {
        let BatchParts {
            limits,
            target,
            states,
            states_seen,
            invocations,
            last_caller,
        } = self;
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
                    let index = *states_seen;
                    *states_seen += 1;
                    let field = || format!("ToFunction.invocation.state[{index}]");
                    let bytes = length_delimited_at(&mut reader, wire_type)
                        .map_err(|source| malformed_at(field(), source))?;
                    let (state, merged) = decode_state::<F>(bytes, field)?;
                    if !states.insert(state, merged, limits.max_states) {
                        return Err(Error::TooManyStates {
                            limit: limits.max_states,
                        });
                    }
                }
                BATCH_INVOCATIONS => {
                    let index = invocations.len();
                    if index == limits.max_invocations {
                        return Err(Error::TooManyInvocations {
                            limit: limits.max_invocations,
                        });
                    }
                    let field = || format!("ToFunction.invocation.invocations[{index}]");
                    let bytes = length_delimited_at(&mut reader, wire_type)
                        .map_err(|source| malformed_at(field(), source))?;
                    let invocation = decode_invocation::<F>(bytes, last_caller)
                        .map_err(|source| malformed_at(field(), source))?;
                    invocations.push(invocation);
                }
                _ => reader
                    .skip(tag, wire_type)
                    .map_err(malformed("ToFunction.invocation"))?,
            }
        }
        Ok(())
    }
}

/// The serialized caller of the invocation decoded last (`Some(None)`: it had none), or
/// `None` when it is not known.
type LastCaller<'a> = Option<Option<&'a [u8]>>;

/// Decodes one `ToFunction.Invocation`.
///
/// The shape the runtime sends (a caller and an argument, each once, nothing else) is
/// read in place: the argument stays borrowed from the body, and a caller with the same
/// bytes as the previous invocation's is not decoded again. Any other shape goes to
/// prost, so merged fields, unknown fields and errors are exactly prost's.
pub(crate) fn decode_invocation<'a, F: ValueFormat>(
    bytes: &'a [u8],
    last_caller: &mut LastCaller<'a>,
) -> Result<Invocation<'a>, prost::DecodeError> {
    if let Some(invocation) = decode_plain_invocation::<F>(bytes, last_caller) {
        return Ok(invocation);
    }
    *last_caller = None;
    let (caller, argument) = F::decode_invocation(bytes)?;
    Ok(Invocation {
        caller: Caller::Is(caller.and_then(|caller| {
            caller_address::<F>(AddressParts {
                namespace: &caller.namespace,
                name: &caller.r#type,
                id: &caller.id,
            })
        })),
        argument,
    })
}

/// An invocation of the plain shape, or `None` (and `last_caller` untouched) for prost.
fn decode_plain_invocation<'a, F: ValueFormat>(
    bytes: &'a [u8],
    last_caller: &mut LastCaller<'a>,
) -> Option<Invocation<'a>> {
    let mut reader = Reader::new(bytes);
    let (mut caller, mut argument) = (None, None);
    while !reader.is_empty() {
        match reader.key().ok()? {
            (1, WireType::LengthDelimited) if caller.is_none() => {
                caller = Some(reader.bytes().ok()?);
            }
            (2, WireType::LengthDelimited) if argument.is_none() => {
                argument = Some(reader.bytes().ok()?);
            }
            _ => return None,
        }
    }
    // No argument at all reads as an empty one: on 3.x a `TypedValue` without a value.
    let (typename, value) = F::plain_parts(argument.unwrap_or_default())?;
    let changed = if *last_caller == Some(caller) {
        Caller::Unchanged
    } else {
        Caller::Is(match caller {
            Some(bytes) => {
                let mut parts = AddressParts::default();
                parts.merge(bytes).ok()?;
                caller_address::<F>(parts)
            }
            None => None,
        })
    };
    *last_caller = Some(caller);
    Some(Invocation {
        caller: changed,
        argument: RawArgument {
            typename: Cow::Borrowed(typename),
            value: value.map(Cow::Borrowed),
        },
    })
}

/// Decodes one `PersistedValue`; `field` names it, for errors only.
///
/// A `state_value` that occurs more than once is the last one on 2.2 (a `bytes` field),
/// and on 3.x the merge of all (a `TypedValue` message: field by field, the last
/// occurrence wins), as protobuf reads it. The merged value is returned owned, as
/// `MergedValue`: no runtime sends such a request, so only this rare case allocates.
fn decode_state<'a, F: ValueFormat>(
    body: &'a [u8],
    field: impl Fn() -> String,
) -> Result<(RawState<'a>, MergedValue), Error> {
    let mut reader = Reader::new(body);
    let mut state = RawState {
        name: "",
        value: &[],
    };
    // The (last) `state_value` as it is on the wire, and, on 3.x, the concatenation of
    // every occurrence once there is a second: protobuf merges concatenated messages.
    let mut raw: Option<&'a [u8]> = None;
    let mut merged: Option<Vec<u8>> = None;
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
                let bytes = length_delimited_at(&mut reader, wire_type)
                    .map_err(|source| malformed_at(format!("{}.state_value", field()), source))?;
                if let (true, Some(previous)) = (F::STATE_VALUE_IS_A_MESSAGE, raw) {
                    merged
                        .get_or_insert_with(|| previous.to_vec())
                        .extend_from_slice(bytes);
                }
                raw = Some(bytes);
            }
            _ => reader
                .skip(tag, wire_type)
                .map_err(|source| malformed_at(field(), source))?,
        }
    }
    let value_error = |source| malformed_at(format!("{}.state_value", field()), source);
    if let Some(merged) = merged {
        let has_value = !F::state_value(&merged).map_err(value_error)?.is_empty();
        return Ok((state, has_value.then_some(merged)));
    }
    if let Some(raw) = raw {
        state.value = F::state_value(raw).map_err(value_error)?;
    }
    Ok((state, None))
}

/// A state value merged from several occurrences (3.x), `None` in every other case.
type MergedValue = Option<Vec<u8>>;

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

pub(crate) fn malformed_at<E>(field: String, source: E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    Error::MalformedRequest {
        field,
        source: Box::new(source),
    }
}

/// A caller as the version reads it: 3.x counts an address with all three fields empty
/// as no caller.
fn caller_address<F: ValueFormat>(address: AddressParts<'_>) -> Option<Address> {
    let empty = address.namespace.is_empty() && address.name.is_empty() && address.id.is_empty();
    if F::EMPTY_CALLER_IS_NONE && empty {
        None
    } else {
        Some(address.to_address())
    }
}

/// The fields of an `Address` message (`namespace` = 1, `type` = 2, `id` = 3; the same on
/// 2.2 and 3.x), borrowed
/// from the request, so that an [`Address`] is built with one allocation per part it
/// keeps, not one per field decoded.
#[derive(Debug, Default, Clone, Copy)]
struct AddressParts<'a> {
    namespace: &'a str,
    name: &'a str,
    id: &'a str,
}

impl<'a> AddressParts<'a> {
    /// Reads an `Address` message into these parts as protobuf merges one: a field's
    /// last occurrence wins, unknown fields are skipped, a known field of another wire
    /// type or a string that is not UTF-8 is an error.
    fn merge(&mut self, bytes: &'a [u8]) -> Result<(), WireError> {
        let mut reader = Reader::new(bytes);
        while !reader.is_empty() {
            let (tag, wire_type) = reader.key()?;
            let part = match tag {
                1 => &mut self.namespace,
                2 => &mut self.name,
                3 => &mut self.id,
                _ => {
                    reader.skip(tag, wire_type)?;
                    continue;
                }
            };
            let bytes = length_delimited_at(&mut reader, wire_type)?;
            *part = std::str::from_utf8(bytes)
                .map_err(|_| WireError("invalid UTF-8 in a string field"))?;
        }
        Ok(())
    }

    fn to_address(self) -> Address {
        Address::from_wire(self.namespace, self.name, self.id)
    }
}
