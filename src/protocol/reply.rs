//! Encoding a reply, `FromFunction`, the same in every version: its outer messages
//! (response, mutation, invocation, delayed invocation, egress message, address) have
//! the same fields on every version, and only the message a value travels in differs
//! ([`ValueFormat`]). Each writer writes what prost writes: fields in field-number order,
//! proto3 defaults left out.

use super::{AddressRef, Effects, Mutation, Payload, ValueFormat};
use crate::types::EncodeError;
use crate::wire::{
    bytes_field_len, len_field_len, put_bytes_field, put_len_key, put_varint, varint_len,
};

/// `FromFunction.invocation_result`
const FROM_FUNCTION_INVOCATION_RESULT: u32 = 100;
/// `InvocationResponse.state_mutations`, `.outgoing_messages`, `.delayed_invocations` and
/// `.outgoing_egresses`
const RESPONSE_MUTATIONS: u32 = 1;
const RESPONSE_MESSAGES: u32 = 2;
const RESPONSE_DELAYED: u32 = 3;
const RESPONSE_EGRESSES: u32 = 4;
/// `DelayedInvocation.is_cancellation_request` and `.cancellation_token` (3.x)
const DELAYED_IS_CANCELLATION: u32 = 10;
const DELAYED_TOKEN: u32 = 11;

/// The size of an `Address` message (without key and length).
#[inline]
fn address_len(address: AddressRef<'_>) -> usize {
    bytes_field_len(1, address.namespace.as_bytes())
        + bytes_field_len(2, address.name.as_bytes())
        + bytes_field_len(3, address.id.as_bytes())
}

/// Appends `address` as the message field `tag`, whose size is `len`.
#[inline]
fn put_address(buf: &mut Vec<u8>, tag: u32, address: AddressRef<'_>, len: usize) {
    put_len_key(buf, tag, len);
    put_bytes_field(buf, 1, address.namespace.as_bytes());
    put_bytes_field(buf, 2, address.name.as_bytes());
    put_bytes_field(buf, 3, address.id.as_bytes());
}

/// Appends something that ends with `payload`'s value message: `head(buf, len)` writes
/// what comes before the value message (the keys and lengths of the fields that enclose
/// it, and their other fields), given the value message's length `len`.
///
/// The head is written for the length the payload expects its value to have
/// ([`Payload::value_len_hint`]; `head` reserves room for the whole), then the value is
/// encoded behind it. When the value's length is not the one expected, the head is
/// written again for the length encoded: the length the reply gives a value is always
/// the length encoded, whatever the hint said. On an error `buf` is as it was: nothing
/// partial is ever recorded.
#[inline(always)]
pub(crate) fn put_ending_in_value<F: ValueFormat>(
    buf: &mut Vec<u8>,
    payload: &dyn Payload,
    head: impl Fn(&mut Vec<u8>, usize),
) -> Result<(), EncodeError> {
    let start = buf.len();
    let type_len = payload.type_len();
    let (has_value, hint) = match payload.value_len_hint() {
        Some(hint) => (true, hint),
        None => (false, 0),
    };
    head(buf, F::message_len(type_len, has_value, hint));
    F::put_head(buf, payload, type_len, has_value, hint);
    let value_start = buf.len();
    if let Err(error) = payload.put_value(buf) {
        buf.truncate(start);
        return Err(error);
    }
    if buf.len() - value_start != hint {
        rewrite_head::<F>(buf, payload, head, start, value_start);
    }
    Ok(())
}

/// Writes the head of the value at `value_start` again for the length it was encoded to,
/// in place of the one at `start` written for another. Rare: the types whose length is
/// known before they are encoded give it (every built-in type, every protobuf message, an
/// `Any`); this costs a copy of the value.
#[cold]
#[inline(never)]
fn rewrite_head<F: ValueFormat>(
    buf: &mut Vec<u8>,
    payload: &dyn Payload,
    head: impl Fn(&mut Vec<u8>, usize),
    start: usize,
    value_start: usize,
) {
    let value = buf.split_off(value_start);
    buf.truncate(start);
    let type_len = payload.type_len();
    let has_value = payload.value_len_hint().is_some();
    head(buf, F::message_len(type_len, has_value, value.len()));
    F::put_head(buf, payload, type_len, has_value, value.len());
    buf.extend_from_slice(&value);
}

/// Records a message to `target`: an `Invocation`.
pub(crate) fn message<F: ValueFormat>(
    effects: &mut Effects,
    target: AddressRef<'_>,
    payload: &dyn Payload,
) -> Result<(), EncodeError> {
    put_ending_in_value::<F>(
        &mut effects.messages,
        payload,
        #[inline(always)]
        |buf, argument_len| {
            let target_len = address_len(target);
            let len = len_field_len(1, target_len) + len_field_len(2, argument_len);
            // Once per message, not once per field: growth by single pushes would
            // reallocate a young buffer several times.
            buf.reserve(len_field_len(RESPONSE_MESSAGES, len));
            put_len_key(buf, RESPONSE_MESSAGES, len);
            put_address(buf, 1, target, target_len);
            put_len_key(buf, 2, argument_len);
        },
    )
}

/// Records a message to `target` after `delay_ms`: a `DelayedInvocation`, with a
/// cancellation token unless `token` is empty (3.x only; 2.2 passes "").
pub(crate) fn delayed<F: ValueFormat>(
    effects: &mut Effects,
    delay_ms: i64,
    target: AddressRef<'_>,
    payload: &dyn Payload,
    token: &str,
) -> Result<(), EncodeError> {
    let buf = &mut effects.delayed;
    put_ending_in_value::<F>(
        buf,
        payload,
        #[inline(always)]
        |buf, argument_len| {
            let target_len = address_len(target);
            // An int64 is a varint of its two's complement; zero is left out.
            let delay_len = if delay_ms == 0 {
                0
            } else {
                1 + varint_len(delay_ms as u64)
            };
            let len = delay_len
                + len_field_len(2, target_len)
                + len_field_len(3, argument_len)
                + bytes_field_len(DELAYED_TOKEN, token.as_bytes());
            buf.reserve(len_field_len(RESPONSE_DELAYED, len));
            put_len_key(buf, RESPONSE_DELAYED, len);
            if delay_ms != 0 {
                buf.push(1 << 3); // `delay_in_ms`, a varint
                put_varint(buf, delay_ms as u64);
            }
            put_address(buf, 2, target, target_len);
            put_len_key(buf, 3, argument_len);
        },
    )?;
    // The token (field 11) comes after the argument (field 3), as prost writes it.
    put_bytes_field(buf, DELAYED_TOKEN, token.as_bytes());
    Ok(())
}

/// Records the cancellation of the delayed message sent with `token` (3.x): a
/// `DelayedInvocation` with `is_cancellation_request` and the token, nothing else, in the
/// same list as the delayed messages.
pub(crate) fn cancellation(effects: &mut Effects, token: &str) {
    let len = 2 + bytes_field_len(DELAYED_TOKEN, token.as_bytes());
    let buf = &mut effects.delayed;
    buf.reserve(len_field_len(RESPONSE_DELAYED, len));
    put_len_key(buf, RESPONSE_DELAYED, len);
    put_varint(buf, u64::from(DELAYED_IS_CANCELLATION << 3));
    buf.push(1);
    put_bytes_field(buf, DELAYED_TOKEN, token.as_bytes());
}

/// Records a message to the egress `namespace/name`: an `EgressMessage`.
pub(crate) fn egress<F: ValueFormat>(
    effects: &mut Effects,
    namespace: &str,
    name: &str,
    payload: &dyn Payload,
) -> Result<(), EncodeError> {
    put_ending_in_value::<F>(
        &mut effects.egresses,
        payload,
        #[inline(always)]
        |buf, argument_len| {
            let len = bytes_field_len(1, namespace.as_bytes())
                + bytes_field_len(2, name.as_bytes())
                + len_field_len(3, argument_len);
            buf.reserve(len_field_len(RESPONSE_EGRESSES, len));
            put_len_key(buf, RESPONSE_EGRESSES, len);
            put_bytes_field(buf, 1, namespace.as_bytes());
            put_bytes_field(buf, 2, name.as_bytes());
            put_len_key(buf, 3, argument_len);
        },
    )
}

/// Encodes what a batch did as a serialized `FromFunction`: the state mutations, then the
/// effects, in one allocation of the exact size.
///
/// The `invocation_result` is always set, even when the batch did nothing: the runtime
/// then sees a non-empty body.
pub(crate) fn encode_reply<'a>(
    mutations: impl Iterator<Item = Mutation<'a>> + Clone,
    effects: &Effects,
) -> Vec<u8> {
    // `PersistedValueMutation`: MODIFY (1) is written, DELETE (0) is the default. A value
    // is stored as its version writes it (an `Any` or a `TypedValue`), field 3 either way.
    let mutation_len = |m: &Mutation<'_>| {
        let (kind, value) = match m.value {
            Some(value) => (2, value),
            None => (0, &[][..]),
        };
        kind + bytes_field_len(2, m.name.as_bytes()) + bytes_field_len(3, value)
    };
    let response_len = mutations
        .clone()
        .map(|m| len_field_len(RESPONSE_MUTATIONS, mutation_len(&m)))
        .sum::<usize>()
        + effects.messages.len()
        + effects.delayed.len()
        + effects.egresses.len();
    let mut reply =
        Vec::with_capacity(len_field_len(FROM_FUNCTION_INVOCATION_RESULT, response_len));
    put_len_key(&mut reply, FROM_FUNCTION_INVOCATION_RESULT, response_len);
    for m in mutations {
        put_len_key(&mut reply, RESPONSE_MUTATIONS, mutation_len(&m));
        if let Some(value) = m.value {
            reply.extend_from_slice(&[1 << 3, 1]); // `mutation_type` = MODIFY
            put_bytes_field(&mut reply, 2, m.name.as_bytes());
            put_bytes_field(&mut reply, 3, value);
        } else {
            put_bytes_field(&mut reply, 2, m.name.as_bytes());
        }
    }
    reply.extend_from_slice(&effects.messages);
    reply.extend_from_slice(&effects.delayed);
    reply.extend_from_slice(&effects.egresses);
    reply
}
