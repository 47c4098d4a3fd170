//! Helpers for testing functions: build a request, run it, read the reply.
//!
//! ```
//! use prost_types::Any;
//! use statefun_sync::testing::{Reply, Request, StateChange};
//! use statefun_sync::{Address, RequestReplyHandler, StatefulFunctions};
//!
//! let mut functions = StatefulFunctions::new();
//! functions.bind("example/remember", |ctx, message: Any| {
//!     ctx.set_state("last", message)?;
//!     Ok(())
//! })?;
//! let handler = RequestReplyHandler::new(functions);
//!
//! let ping = |n: u8| Any { type_url: "example/Ping".into(), value: vec![n] };
//! let request = Request::to("example/remember", "alice")
//!     .with_state("last", None)
//!     .invoke(ping(1))
//!     .invoke_from(Address::new("example", "caller", "c1"), ping(2))
//!     .to_bytes();
//! let reply = Reply::decode(&handler.handle(&request)?)?;
//!
//! assert_eq!(reply.state_changes().len(), 1);
//! assert_eq!(reply.modified("last"), Some(ping(2)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use prost::{Message, Name};
use prost_types::Any;

use crate::address::Address;
use crate::message::pack;
use crate::proto::{self, from_function, to_function};

/// Builds a request (a serialized `ToFunction`) the way the runtime would send it.
#[derive(Debug, Clone)]
pub struct Request {
    batch: to_function::InvocationBatchRequest,
}

impl Request {
    /// A batch for the instance `id` of `typename` (`namespace/name`, split at the last
    /// `/`). The typename is not checked, so a test can build a request for a malformed
    /// one.
    pub fn to(typename: &str, id: &str) -> Self {
        let (namespace, name) = typename.rsplit_once('/').unwrap_or(("", typename));
        Request::to_address(&Address::new(namespace, name, id))
    }

    /// A batch for `target`.
    pub fn to_address(target: &Address) -> Self {
        Request {
            batch: to_function::InvocationBatchRequest {
                target: Some(proto_address(target)),
                ..Default::default()
            },
        }
    }

    /// Adds the state `name` with `value` (`None`: declared, but without a value).
    pub fn with_state(self, name: &str, value: Option<Any>) -> Self {
        let bytes = value.map(|any| any.encode_to_vec()).unwrap_or_default();
        self.with_state_bytes(name, bytes)
    }

    /// Adds the state `name` holding `message` packed into an `Any`.
    pub fn with_packed_state<M: Message + Name>(self, name: &str, message: &M) -> Self {
        self.with_state(name, Some(pack(message)))
    }

    /// Adds the state `name` with raw bytes as its value (normally a serialized `Any`; empty
    /// for no value), to test what a function does with bytes it cannot read.
    pub fn with_state_bytes(mut self, name: &str, bytes: impl Into<prost::bytes::Bytes>) -> Self {
        self.batch.state.push(to_function::PersistedValue {
            state_name: name.to_owned(),
            state_value: bytes.into(),
        });
        self
    }

    /// Adds an invocation without a caller, as from an ingress.
    pub fn invoke(mut self, argument: Any) -> Self {
        self.batch.invocations.push(to_function::Invocation {
            caller: None,
            argument: Some(argument),
        });
        self
    }

    /// Adds an invocation sent by `caller`.
    pub fn invoke_from(mut self, caller: Address, argument: Any) -> Self {
        self.batch.invocations.push(to_function::Invocation {
            caller: Some(proto_address(&caller)),
            argument: Some(argument),
        });
        self
    }

    /// Adds an invocation without a caller whose argument is `message` packed into an `Any`.
    pub fn pack_and_invoke<M: Message + Name>(self, message: &M) -> Self {
        self.invoke(pack(message))
    }

    /// Adds an invocation sent by `caller` whose argument is `message` packed into an `Any`.
    pub fn pack_and_invoke_from<M: Message + Name>(self, caller: Address, message: &M) -> Self {
        self.invoke_from(caller, pack(message))
    }

    /// The request as the protocol's message.
    pub fn to_proto(&self) -> proto::ToFunction {
        proto::ToFunction {
            request: Some(to_function::Request::Invocation(self.batch.clone())),
        }
    }

    /// The request body.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }
}

fn proto_address(address: &Address) -> proto::Address {
    proto::Address {
        namespace: address.namespace().to_owned(),
        r#type: address.name().to_owned(),
        id: address.id().to_owned(),
    }
}

fn from_proto_address(address: Option<proto::Address>) -> Address {
    let address = address.unwrap_or_default();
    Address::new(address.namespace, address.r#type, address.id)
}

/// A reply (a serialized `FromFunction`), decoded into what is easy to assert on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    state_changes: Vec<(String, StateChange)>,
    messages: Vec<Sent>,
    delayed: Vec<SentAfter>,
    egresses: Vec<Emitted>,
}

/// What a reply does to one state.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    /// `MODIFY`: the state's new value.
    Modified(Any),
    /// `DELETE`.
    Deleted,
}

/// A message sent to a function.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The receiving function instance.
    pub target: Address,
    /// The message.
    pub argument: Any,
}

/// A message sent to a function after a delay.
#[derive(Debug, Clone, PartialEq)]
pub struct SentAfter {
    /// The delay, in whole milliseconds as on the wire.
    pub delay: Duration,
    /// The receiving function instance.
    pub target: Address,
    /// The message.
    pub argument: Any,
}

/// A message sent to an egress.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// The egress, `namespace/name`.
    pub egress: String,
    /// The message.
    pub argument: Any,
}

impl Reply {
    /// Decodes a reply body.
    ///
    /// # Errors
    ///
    /// The [`prost::DecodeError`] if `bytes` are not a `FromFunction`, or if a mutation has
    /// a `MODIFY` value that is not a serialized `Any`.
    pub fn decode(bytes: &[u8]) -> Result<Reply, prost::DecodeError> {
        let from_function = proto::FromFunction::decode(bytes)?;
        let Some(from_function::Response::InvocationResult(response)) = from_function.response
        else {
            return Ok(Reply::default());
        };
        let mut reply = Reply::default();
        for mutation in response.state_mutations {
            let change = if mutation.mutation_type
                == from_function::persisted_value_mutation::MutationType::Modify as i32
            {
                StateChange::Modified(Any::decode(mutation.state_value)?)
            } else {
                StateChange::Deleted
            };
            reply.state_changes.push((mutation.state_name, change));
        }
        reply.messages = response
            .outgoing_messages
            .into_iter()
            .map(|m| Sent {
                target: from_proto_address(m.target),
                argument: m.argument.unwrap_or_default(),
            })
            .collect();
        reply.delayed = response
            .delayed_invocations
            .into_iter()
            .map(|d| SentAfter {
                delay: Duration::from_millis(d.delay_in_ms.max(0) as u64),
                target: from_proto_address(d.target),
                argument: d.argument.unwrap_or_default(),
            })
            .collect();
        reply.egresses = response
            .outgoing_egresses
            .into_iter()
            .map(|e| Emitted {
                egress: format!("{}/{}", e.egress_namespace, e.egress_type),
                argument: e.argument.unwrap_or_default(),
            })
            .collect();
        Ok(reply)
    }

    /// Every state mutation, in the reply's order.
    pub fn state_changes(&self) -> &[(String, StateChange)] {
        &self.state_changes
    }

    /// The new value of the state `name`, if the reply modifies it.
    pub fn modified(&self, name: &str) -> Option<Any> {
        self.state_changes
            .iter()
            .find_map(|(n, change)| match change {
                StateChange::Modified(any) if n == name => Some(any.clone()),
                _ => None,
            })
    }

    /// Whether the reply deletes the state `name`.
    pub fn deleted(&self, name: &str) -> bool {
        self.state_changes
            .iter()
            .any(|(n, change)| n == name && *change == StateChange::Deleted)
    }

    /// The messages sent to functions, in order.
    pub fn messages(&self) -> &[Sent] {
        &self.messages
    }

    /// The delayed messages, in order.
    pub fn delayed_messages(&self) -> &[SentAfter] {
        &self.delayed
    }

    /// The egress messages, in order.
    pub fn egresses(&self) -> &[Emitted] {
        &self.egresses
    }
}
