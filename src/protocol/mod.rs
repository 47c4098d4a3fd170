//! The wire protocols, behind the registry and the context.
//!
//! The handler decodes a request into a protocol-neutral [`Batch`], runs it through a
//! [`Context`](crate::Context), and encodes the [`Effects`] that the context collected.
//! Only [`v2`] (Stateful Functions 2.2) exists today; a 3.x protocol goes beside it and
//! reuses everything above this module.

pub(crate) mod v2;
mod wire;

use prost_types::Any;

use crate::address::Address;

/// One request: the target address, its states and its invocations.
#[derive(Debug)]
pub(crate) struct Batch<'a> {
    pub(crate) target: Address,
    /// In request order; a name that occurs twice keeps its first position and its last
    /// value, as the Python SDK's dict does.
    pub(crate) states: Vec<RawState<'a>>,
    pub(crate) invocations: Vec<Invocation>,
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
pub(crate) struct Invocation {
    pub(crate) caller: Option<Address>,
    pub(crate) argument: Any,
}

/// What a batch did, in the order the functions did it.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub(crate) mutations: Vec<Mutation>,
    pub(crate) messages: Vec<(Address, Any)>,
    pub(crate) delayed: Vec<Delayed>,
    pub(crate) egresses: Vec<Egress>,
}

/// A changed state.
#[derive(Debug)]
pub(crate) struct Mutation {
    pub(crate) name: String,
    /// The new value, a serialized `Any`; `None` deletes the state.
    pub(crate) value: Option<Vec<u8>>,
}

/// A message to send after a delay.
#[derive(Debug)]
pub(crate) struct Delayed {
    pub(crate) delay_ms: i64,
    pub(crate) target: Address,
    pub(crate) argument: Any,
}

/// A message to an egress.
#[derive(Debug)]
pub(crate) struct Egress {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) argument: Any,
}
