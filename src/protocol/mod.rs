//! The wire protocols, behind the registry and the context.
//!
//! The handler decodes a request into a protocol-neutral [`Batch`], runs it through a
//! [`Context`](crate::Context), and encodes the [`Effects`] that the context collected.
//! Only [`v2`] (Stateful Functions 2.2) exists today. The effects are encoded as they
//! happen, in the 2.2 wire format (an outgoing message costs no allocation of its own
//! that way), so a 3.x protocol goes beside [`v2`] with its own `Effects` and reuses
//! everything else above this module.

pub(crate) mod v2;
mod wire;

use prost_types::Any;

use std::collections::HashMap;

use crate::address::Address;

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

    /// Adds a state, or replaces the value of an earlier one with the same name.
    pub(crate) fn insert(&mut self, state: RawState<'a>) {
        if let Some(at) = self.position(state.name) {
            self.list[at].value = state.value;
            return;
        }
        self.list.push(state);
        let len = self.list.len();
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
    }

    /// The states, in request order.
    pub(crate) fn as_slice(&self) -> &[RawState<'a>] {
        &self.list
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

/// An invocation's argument, a `google.protobuf.Any`: borrowed from the request body in
/// the common case, decoded by prost in the others (see `v2::decode_invocation`).
#[derive(Debug)]
pub(crate) enum RawArgument<'a> {
    Borrowed { type_url: &'a str, value: &'a [u8] },
    Owned(Any),
}

impl RawArgument<'_> {
    pub(crate) fn type_url(&self) -> &str {
        match self {
            RawArgument::Borrowed { type_url, .. } => type_url,
            RawArgument::Owned(any) => &any.type_url,
        }
    }

    pub(crate) fn value(&self) -> &[u8] {
        match self {
            RawArgument::Borrowed { value, .. } => value,
            RawArgument::Owned(any) => &any.value,
        }
    }

    /// The argument as an owned `Any`, for functions bound to take one.
    pub(crate) fn into_any(self) -> Any {
        match self {
            RawArgument::Borrowed { type_url, value } => Any {
                type_url: type_url.to_owned(),
                value: value.to_vec(),
            },
            RawArgument::Owned(any) => any,
        }
    }
}

/// What a batch did, in the order the functions did it: the messages, delayed messages
/// and egress messages, each already encoded as the reply's repeated field (see
/// [`v2::Effects`]). State changes stay in the [`Context`](crate::Context) until the
/// batch ends, and become [`Mutation`]s.
pub(crate) use v2::Effects;

/// A changed state, borrowed from the context when the reply is encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mutation<'a> {
    pub(crate) name: &'a str,
    /// The new value, a serialized `Any`; `None` deletes the state.
    pub(crate) value: Option<&'a [u8]>,
}
