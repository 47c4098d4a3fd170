//! The wire protocols, behind the registry and the context.
//!
//! Everything above this module speaks to a protocol version through one interface, the
//! [`Protocol`] trait: the handler decodes a request into a version-neutral [`Batch`],
//! runs it through a [`Context`](crate::Context), and the context hands what the functions
//! did to the protocol, which encodes it on its own wire format as it happens (an
//! outgoing message costs no allocation of its own that way).
//!
//! The outer messages of a request and a reply have the same fields on every version, so
//! [`request`] decodes and [`reply`] encodes them once, generic over the one thing that
//! differs, the message a value travels in ([`ValueFormat`]). A version is a file of its
//! own: [`v2`] (Stateful Functions 2.2, values in `Any`) and [`v3`] (3.x, values in
//! `TypedValue`, with the state handshake and cancellation), over the wire primitives of
//! [`crate::wire`].

mod reply;
mod request;
mod v2;
mod v3;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use prost_types::Any;

use crate::address::Address;
use crate::error::Error;
use crate::state_spec::StateSpec;
use crate::types::EncodeError;

pub(crate) use crate::message::Payload;
pub(crate) use crate::wire::WireError;
pub(crate) use v2::V2;
pub(crate) use v3::V3;

/// The version of the request-reply protocol a handler speaks, chosen when it is built:
/// a 2.2 deployment and a 3.x deployment are different runtimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtocolVersion {
    /// Stateful Functions 2.2: values in `google.protobuf.Any`, states declared in
    /// `module.yaml`.
    V2,
    /// Stateful Functions 3.0 to 3.3: values in `TypedValue`, states declared by the
    /// functions through the handshake, cancellable delayed messages.
    V3,
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolVersion::V2 => "2.2",
            ProtocolVersion::V3 => "3.x",
        })
    }
}

/// A version of the request-reply protocol: how a request decodes, and how what a batch
/// did encodes into the reply.
pub(crate) trait Protocol: fmt::Debug + Send + Sync {
    /// Which version this is.
    fn version(&self) -> ProtocolVersion;

    /// Decodes a request body, borrowing state values and arguments from it where it
    /// can. A batch over `limits` is refused while decoding.
    fn decode_request<'a>(&self, body: &'a [u8], limits: Limits) -> Result<Batch<'a>, Refused>;

    /// What to do when a request lacks states the function declares (`missing`, in
    /// declaration order, at least one): the reply that asks for them (3.x's
    /// handshake), or the error (2.2, whose states come from `module.yaml`).
    fn missing_states(
        &self,
        target: Address,
        missing: &mut dyn Iterator<Item = &StateSpec>,
    ) -> Result<Vec<u8>, Error>;

    /// Records a message to `target`; nothing when its value cannot be encoded.
    fn message(
        &self,
        effects: &mut Effects,
        target: AddressRef<'_>,
        payload: &dyn Payload,
    ) -> Result<(), EncodeError>;

    /// Records a delayed message, or says why it cannot.
    fn delayed(&self, effects: &mut Effects, delayed: Delayed<'_>) -> Result<(), DelayedError>;

    /// Records the cancellation of the delayed message sent with `token`, or says why
    /// this version cannot.
    fn cancel_delayed(&self, effects: &mut Effects, token: &str) -> Result<(), &'static str>;

    /// Records a message to the egress `namespace/name`; nothing when its value cannot be
    /// encoded.
    fn egress(
        &self,
        effects: &mut Effects,
        namespace: &str,
        name: &str,
        payload: &dyn Payload,
    ) -> Result<(), EncodeError>;

    /// Appends `payload` as a state value is stored on the wire; nothing when its value
    /// cannot be encoded.
    fn put_state_value(&self, buf: &mut Vec<u8>, payload: &dyn Payload) -> Result<(), EncodeError>;

    /// A state value as the wire stores it, as an `Any`: what
    /// [`Context::get_state`](crate::Context::get_state) returns.
    fn state_value_any(&self, stored: &[u8]) -> Result<Any, crate::types::DecodeError>;

    /// The type and the value bytes of a state value as the wire stores it, borrowed.
    fn state_value_parts<'v>(&self, stored: &'v [u8]) -> Result<(&'v str, &'v [u8]), WireError>;

    /// The reply to a batch that ran: its state mutations, then its effects.
    fn encode_reply(&self, mutations: Mutations<'_, '_>, effects: &Effects) -> Vec<u8>;
}

/// How a version wraps a value in its messages (2.2: `google.protobuf.Any`; 3.x:
/// `TypedValue`): the one thing [`request`] and [`reply`] are generic over.
pub(crate) trait ValueFormat {
    /// Whether a caller address with all three fields empty means no caller.
    const EMPTY_CALLER_IS_NONE: bool;

    /// Whether a state's value is a message (3.x's `TypedValue`), whose occurrences
    /// merge, rather than `bytes` (2.2), of which the last occurrence counts.
    const STATE_VALUE_IS_A_MESSAGE: bool;

    /// A state's value as the request carries it, checked as far as the version checks
    /// it while decoding; empty when the state has no value.
    fn state_value(bytes: &[u8]) -> Result<&[u8], WireError>;

    /// The type and bytes of an argument of the plain shape (each field at most once,
    /// nothing else), borrowed, the bytes `None` when a 3.x value has none; `None` for any
    /// other shape, which [`decode_invocation`](Self::decode_invocation) decodes.
    fn plain_parts(bytes: &[u8]) -> Option<(&str, Option<&[u8]>)>;

    /// Decodes an invocation that is not of the plain shape, with prost: its caller and
    /// its argument.
    fn decode_invocation(
        bytes: &[u8],
    ) -> Result<
        (
            Option<crate::proto::polyglot::Address>,
            RawArgument<'static>,
        ),
        prost::DecodeError,
    >;

    /// The size of a value message (without key and length) whose type is `type_len`
    /// bytes long and whose value is `value_len` bytes long, or which has no value (3.x's
    /// `has_value` false; 2.2 has no such thing, and the context refuses it).
    fn message_len(type_len: usize, has_value: bool, value_len: usize) -> usize;

    /// Appends the fields of `payload`'s value message that come before the value's
    /// bytes (`value_len` of them, or none when `has_value` is false; its type is
    /// `type_len` long), the value's key and length last; the value message's fields are
    /// in field-number order with the value last in every version, so what comes after
    /// is the value itself (see `reply::put_ending_in_value`).
    fn put_head(
        buf: &mut Vec<u8>,
        payload: &dyn Payload,
        type_len: usize,
        has_value: bool,
        value_len: usize,
    );

    /// The type and the bytes of a stored value, borrowed.
    fn stored_parts(stored: &[u8]) -> Result<(&str, &[u8]), WireError>;
}

/// A delayed message to record.
#[derive(Clone, Copy)]
pub(crate) struct Delayed<'a> {
    /// The delay asked for, and in whole milliseconds (rounded down).
    pub(crate) delay: std::time::Duration,
    pub(crate) delay_ms: i64,
    pub(crate) target: AddressRef<'a>,
    pub(crate) payload: &'a dyn Payload,
    /// The cancellation token, if the message can be cancelled.
    pub(crate) token: Option<&'a str>,
}

/// Why a delayed message was not recorded.
#[derive(Debug)]
pub(crate) enum DelayedError {
    /// This version cannot send it, and why (a zero delay on 2.2, an empty token).
    Invalid(&'static str),
    /// Its value could not be encoded.
    Unencodable(EncodeError),
}

/// A request refused, with its target when the protocol read it before a problem it
/// found while decoding: the HTTP fronts name the target in their log line without
/// decoding the body again (an error after decoding names it itself, [`Error::address`]).
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) error: Error,
    pub(crate) target: Option<Box<Address>>,
}

/// How much one request may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_invocations: usize,
    pub(crate) max_states: usize,
}

impl Limits {
    /// No limit, for tests of the decoding itself.
    #[cfg(test)]
    pub(crate) const NONE: Limits = Limits {
        max_invocations: usize::MAX,
        max_states: usize::MAX,
    };
}

/// One request: the target address, its states and its invocations.
#[derive(Debug)]
pub(crate) struct Batch<'a> {
    pub(crate) target: Address,
    pub(crate) states: States<'a>,
    pub(crate) invocations: Vec<Invocation<'a>>,
}

/// The states of a request, in request order, found by name.
///
/// A name that occurs twice keeps its first position and its last value, as the Python
/// SDK's dict does.
#[derive(Debug, Default)]
pub(crate) struct States<'a> {
    list: Vec<RawState<'a>>,
    /// Built once there are more than [`States::SCAN_MAX`] states. A scan is fastest for
    /// the few states a function usually has; the map keeps a request with thousands of
    /// states (a hostile one, say) linear instead of quadratic.
    index: Option<HashMap<&'a str, usize>>,
    /// Values owned because they had to be merged from several occurrences on the wire
    /// (3.x), by position, so that replacing or finding one costs O(1) however many there
    /// are (a list searched on every repeat made a hostile request quadratic); empty for
    /// every request a runtime sends, and no longer than the last position that has one.
    merged: Vec<Option<Vec<u8>>>,
}

impl<'a> States<'a> {
    const SCAN_MAX: usize = 16;

    /// Where the state `name` is, in request order.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self.list.iter().position(|s| s.name == name),
        }
    }

    /// Adds a state, or replaces the value of an earlier one with the same name; `merged`
    /// is its value when it had to be merged (see `request::decode_state`). Returns
    /// `false`, and changes nothing, when the name is new and there are `max` states
    /// already.
    ///
    /// The name is looked up once, for the limit and the insertion both: a request may
    /// repeat a name millions of times, and a lookup for the limit alone cost each repeat
    /// a second hash of its name once the request had `max` states.
    #[must_use]
    pub(crate) fn insert(
        &mut self,
        state: RawState<'a>,
        merged: Option<Vec<u8>>,
        max: usize,
    ) -> bool {
        if let Some(at) = self.position(state.name) {
            self.list[at].value = state.value;
            match merged {
                Some(bytes) => self.keep_merged(at, bytes),
                // The value replaces a merged one the name had, if any.
                None => {
                    if let Some(slot) = self.merged.get_mut(at) {
                        *slot = None;
                    }
                }
            }
            return true;
        }
        if self.list.len() >= max {
            return false;
        }
        self.list.push(state);
        let len = self.list.len();
        if let Some(bytes) = merged {
            self.keep_merged(len - 1, bytes);
        }
        match &mut self.index {
            Some(index) => {
                index.insert(state.name, len - 1);
            }
            None if len > Self::SCAN_MAX => {
                self.index = Some(
                    self.list
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (s.name, i))
                        .collect(),
                );
            }
            None => {}
        }
        true
    }

    /// The states, in request order.
    pub(crate) fn as_slice(&self) -> &[RawState<'a>] {
        &self.list
    }

    /// The bytes of all the values, as the request carried them.
    #[cfg(feature = "metrics")]
    pub(crate) fn value_bytes(&self) -> usize {
        (0..self.list.len()).map(|at| self.value(at).len()).sum()
    }

    /// The value of the state at `at`, as the request carried it: empty when it has none.
    #[inline]
    pub(crate) fn value(&self, at: usize) -> &[u8] {
        match self.merged.get(at) {
            Some(Some(bytes)) => bytes,
            _ => self.list[at].value,
        }
    }

    /// Keeps `bytes` as the merged value of the state at `at`. Only `insert`'s paths with a
    /// merged value call it, so that a request without one (every request a runtime sends)
    /// pays for neither the call nor the `Option` it was passed in (a call for every state
    /// cost `w3_bigstate`, ten states, 1.3 %).
    fn keep_merged(&mut self, at: usize, bytes: Vec<u8>) {
        if self.merged.len() <= at {
            self.merged.resize_with(at + 1, || None);
        }
        self.merged[at] = Some(bytes);
    }
}

/// A state as the request carries it: a serialized `Any`, borrowed from the request body
/// and never copied unless the function reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawState<'a> {
    pub(crate) name: &'a str,
    /// Empty when the state has no value.
    pub(crate) value: &'a [u8],
}

/// One message for the target.
#[derive(Debug)]
pub(crate) struct Invocation<'a> {
    pub(crate) caller: Caller,
    pub(crate) argument: RawArgument<'a>,
}

/// Who sent an invocation.
#[derive(Debug)]
pub(crate) enum Caller {
    /// The caller of the invocation before: a batch from one caller decodes it once.
    Unchanged,
    /// This caller; `None` for a message from an ingress.
    Is(Option<Address>),
}

/// An invocation's argument: its typename (on 2.2, its `Any`'s type URL) and its bytes,
/// `None` when a 3.x `TypedValue` has no value (2.2's `Any` always has one). Borrowed from
/// the request body in the common case, owned when prost decoded it (see
/// `request::decode_invocation`).
#[derive(Debug, Clone)]
pub(crate) struct RawArgument<'a> {
    pub(crate) typename: Cow<'a, str>,
    pub(crate) value: Option<Cow<'a, [u8]>>,
}

impl RawArgument<'_> {
    pub(crate) fn typename(&self) -> &str {
        &self.typename
    }

    pub(crate) fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The argument as an `Any`, for functions bound to take one: a value without bytes
    /// is empty bytes there.
    pub(crate) fn to_any(&self) -> Any {
        Any {
            type_url: self.typename.clone().into_owned(),
            value: self.value().unwrap_or_default().to_vec(),
        }
    }
}

/// What a batch sent, in the order the functions sent it, each already encoded by the
/// protocol as an element of the reply's repeated field (key, length, message): the
/// reply is these bytes behind the state mutations, so no owned address or value is
/// built for an outgoing message. State changes stay in the [`Context`](crate::Context)
/// until the batch ends, and become [`Mutations`].
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Messages to functions.
    pub(crate) messages: Vec<u8>,
    /// Messages to functions after a delay.
    pub(crate) delayed: Vec<u8>,
    /// Messages to egresses.
    pub(crate) egresses: Vec<u8>,
}

/// What a batch did to one state of the request.
#[derive(Debug, Default)]
pub(crate) enum Change {
    #[default]
    Unchanged,
    /// Set by a function: the value as the wire stores it, reused by the next set of the
    /// same state.
    Set(Vec<u8>),
    Deleted,
}

/// The changed states of a batch, in the request's state order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mutations<'s, 'a> {
    pub(crate) states: &'s [RawState<'a>],
    /// By position in `states`; empty when nothing changed.
    pub(crate) changes: &'s [Change],
}

impl<'s> Mutations<'s, '_> {
    pub(crate) fn iter(self) -> impl Iterator<Item = Mutation<'s>> + Clone {
        self.states
            .iter()
            .zip(self.changes)
            .filter_map(|(state, change)| {
                let value = match change {
                    Change::Unchanged => return None,
                    Change::Set(bytes) => Some(bytes.as_slice()),
                    Change::Deleted => None,
                };
                Some(Mutation {
                    name: state.name,
                    value,
                })
            })
    }
}

/// A changed state, borrowed from the context when the reply is encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mutation<'a> {
    pub(crate) name: &'a str,
    /// The new value as the wire stores it; `None` deletes the state.
    pub(crate) value: Option<&'a [u8]>,
}

/// An address to encode, borrowed from wherever its parts are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddressRef<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
    pub(crate) id: &'a str,
}

impl<'a> From<&'a Address> for AddressRef<'a> {
    fn from(address: &'a Address) -> Self {
        AddressRef {
            namespace: address.namespace(),
            name: address.name(),
            id: address.id(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state<'a>(name: &'a str, value: &'a [u8]) -> RawState<'a> {
        RawState { name, value }
    }

    /// Inserts with no limit.
    fn insert<'a>(states: &mut States<'a>, state: RawState<'a>, merged: Option<Vec<u8>>) {
        assert!(states.insert(state, merged, usize::MAX));
    }

    #[test]
    fn a_repeated_name_keeps_its_position_and_its_last_value_merged_or_not() {
        let mut states = States::default();
        insert(&mut states, state("a", b"a1"), Some(b"a-merged".to_vec()));
        insert(&mut states, state("b", b"b1"), None);
        insert(&mut states, state("c", b"c1"), Some(b"c-merged".to_vec()));
        assert_eq!(states.value(0), b"a-merged");
        assert_eq!(states.value(1), b"b1");
        assert_eq!(states.value(2), b"c-merged");

        // A plain repeat forgets the merged value; a merged repeat replaces a plain one.
        insert(&mut states, state("a", b"a2"), None);
        insert(&mut states, state("b", b"b2"), Some(b"b-merged".to_vec()));
        assert_eq!(states.as_slice().len(), 3);
        assert_eq!(states.value(0), b"a2");
        assert_eq!(states.value(1), b"b-merged");
        assert_eq!(states.value(2), b"c-merged");

        // Past the scan limit the index finds them the same way.
        for i in 0..40 {
            let name: &'static str = Box::leak(format!("s{i}").into_boxed_str());
            insert(
                &mut states,
                state(name, b"v"),
                (i % 2 == 0).then(|| vec![i as u8]),
            );
        }
        insert(&mut states, state("s10", b"plain"), None);
        assert_eq!(states.position("s10"), Some(13));
        assert_eq!(states.value(13), b"plain");
        assert_eq!(states.value(14), b"v");
        assert_eq!(states.value(15), [12u8]);
    }

    #[test]
    fn a_new_name_is_refused_at_the_limit_and_a_repeated_one_is_not() {
        let mut states = States::default();
        for name in ["a", "b"] {
            assert!(states.insert(state(name, b"1"), None, 2), "{name}");
        }
        assert!(!states.insert(state("c", b"1"), None, 2), "a third name");
        assert!(states.insert(state("a", b"2"), Some(b"merged".to_vec()), 2));
        assert_eq!(states.as_slice().len(), 2);
        assert_eq!(states.position("c"), None);
        assert_eq!(states.value(0), b"merged");
    }

    #[cfg(feature = "metrics")]
    #[test]
    fn value_bytes_count_the_value_each_state_ends_with() {
        let mut states = States::default();
        insert(&mut states, state("a", b"12345"), None);
        insert(&mut states, state("b", b""), None);
        assert_eq!(states.value_bytes(), 5);

        // A second occurrence replaces the value: the last one counts, once.
        insert(&mut states, state("a", b"12"), None);
        assert_eq!(states.value_bytes(), 2);

        // A value merged from occurrences (3.x) counts as merged.
        insert(&mut states, state("b", b"x"), Some(b"merged".to_vec()));
        assert_eq!(states.value_bytes(), 2 + 6);
    }
}
