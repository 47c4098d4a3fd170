//! Encoding a reply, `FromFunction`, the same in every version: its outer messages
//! (response, mutation, invocation, delayed invocation, egress message, address) have
//! the same fields on every version, and only the message a value travels in differs
//! ([`ValueFormat`]). Each writer writes what prost writes: fields in field-number order,
//! proto3 defaults left out.

use super::wire::{
    bytes_field_len, len_field_len, put_bytes_field, put_len_key, put_varint, varint_len,
};
use super::{AddressRef, Effects, Mutation, Payload, ValueFormat};

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

/// Records a message to `target`: an `Invocation`.
pub(crate) fn message<F: ValueFormat>(
    effects: &mut Effects,
    target: AddressRef<'_>,
    payload: &dyn Payload,
) {
    let (target_len, argument_len) = (address_len(target), F::value_len(payload));
    let len = len_field_len(1, target_len) + len_field_len(2, argument_len);
    let buf = &mut effects.messages;
    // Once per message, not once per field: growth by single pushes would reallocate a
    // young buffer several times.
    buf.reserve(len_field_len(RESPONSE_MESSAGES, len));
    put_len_key(buf, RESPONSE_MESSAGES, len);
    put_address(buf, 1, target, target_len);
    put_len_key(buf, 2, argument_len);
    F::put_value(buf, payload);
}

/// Records a message to `target` after `delay_ms`: a `DelayedInvocation`, with a
/// cancellation token unless `token` is empty (3.x only; 2.2 passes "").
pub(crate) fn delayed<F: ValueFormat>(
    effects: &mut Effects,
    delay_ms: i64,
    target: AddressRef<'_>,
    payload: &dyn Payload,
    token: &str,
) {
    let (target_len, argument_len) = (address_len(target), F::value_len(payload));
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
    let buf = &mut effects.delayed;
    buf.reserve(len_field_len(RESPONSE_DELAYED, len));
    put_len_key(buf, RESPONSE_DELAYED, len);
    if delay_ms != 0 {
        buf.push(1 << 3); // `delay_in_ms`, a varint
        put_varint(buf, delay_ms as u64);
    }
    put_address(buf, 2, target, target_len);
    put_len_key(buf, 3, argument_len);
    F::put_value(buf, payload);
    put_bytes_field(buf, DELAYED_TOKEN, token.as_bytes());
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
) {
    let argument_len = F::value_len(payload);
    let len = bytes_field_len(1, namespace.as_bytes())
        + bytes_field_len(2, name.as_bytes())
        + len_field_len(3, argument_len);
    let buf = &mut effects.egresses;
    buf.reserve(len_field_len(RESPONSE_EGRESSES, len));
    put_len_key(buf, RESPONSE_EGRESSES, len);
    put_bytes_field(buf, 1, namespace.as_bytes());
    put_bytes_field(buf, 2, name.as_bytes());
    put_len_key(buf, 3, argument_len);
    F::put_value(buf, payload);
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
