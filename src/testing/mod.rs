//! Helpers for testing functions: build a request, run it, read the reply; or run a
//! whole app on a [`LocalRuntime`].
//!
//! # Testing a function
//!
//! [`Request`] builds the bytes the runtime would send for one batch, and [`Reply`]
//! decodes what the function answered: state changes by state name, messages, delayed
//! messages and egress messages, each argument unpackable into its message type.
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
//!
//! # Running an app locally
//!
//! [`LocalRuntime`] stands in for the Flink runtime: it keeps every address's state,
//! routes messages between functions in batches, delivers delayed messages on a virtual
//! clock, and records what reaches the egresses. It drives the functions through the
//! same request and reply bytes as production, so what passes here passes there.
//!
//! ```
//! use std::time::Duration;
//! use statefun_sync::testing::LocalRuntime;
//! use statefun_sync::StatefulFunctions;
//!
//! // Counts the pings of each user; after the third, says so to an egress in 30 minutes.
//! let mut functions = StatefulFunctions::new();
//! functions
//!     .bind_typed("example/counter", |ctx, _ping: prost_types::Duration| {
//!         let seen = ctx.unpack_state::<prost_types::Duration>("seen")?.unwrap_or_default();
//!         let seen = prost_types::Duration { seconds: seen.seconds + 1, nanos: 0 };
//!         ctx.pack_and_set_state("seen", &seen)?;
//!         if seen.seconds == 3 {
//!             let id = ctx.address().id().to_owned();
//!             ctx.pack_and_send_after(Duration::from_secs(1800), "example/reporter", &id, &seen)?;
//!         }
//!         Ok(())
//!     })?
//!     .state("seen");
//! functions.bind("example/reporter", |ctx, message| {
//!     ctx.send_egress("example/out", message)?;
//!     Ok(())
//! })?;
//!
//! let mut runtime = LocalRuntime::new(functions);
//! for _ in 0..3 {
//!     runtime.pack_and_send("example/counter", "alice", &prost_types::Duration::default())?;
//! }
//! runtime.run()?;
//! let seen: Option<prost_types::Duration> =
//!     runtime.unpack_state("example/counter", "alice", "seen")?;
//! assert_eq!(seen.unwrap().seconds, 3);
//! assert!(runtime.egress("example/out").is_empty());
//!
//! runtime.advance(Duration::from_secs(1800))?; // no real time passes
//! assert_eq!(runtime.egress("example/out").len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod egress;
mod http_client;
mod local;

pub use egress::{read_kafka_record, read_kinesis_record, KafkaRecord, KinesisRecord};
pub use http_client::{call_remote, RemoteError};
pub use local::{BatchRecord, Envelope, LocalRuntime, RuntimeError};

use std::time::Duration;

use prost::{Message, Name};
use prost_types::Any;

use crate::address::{Address, FunctionType};
use crate::message::{pack, unpack, UnpackError};
use crate::proto::polyglot::{self as proto, from_function, to_function};

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
        let (namespace, name) = FunctionType::split_unchecked(typename);
        Request::to_address(&Address::new(namespace, name, id))
    }

    /// A batch for `target`.
    pub fn to_address(target: &Address) -> Self {
        Request {
            batch: to_function::InvocationBatchRequest {
                target: Some(target.into()),
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
            caller: Some((&caller).into()),
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

/// The invocation result of a serialized `FromFunction`, `None` when it carries none: the
/// one reply decoder of the testing kit.
pub(crate) fn invocation_result(
    bytes: &[u8],
) -> Result<Option<from_function::InvocationResponse>, prost::DecodeError> {
    let reply = proto::FromFunction::decode(bytes)?;
    Ok(reply
        .response
        .map(|from_function::Response::InvocationResult(response)| response))
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
        let Some(response) = invocation_result(bytes)? else {
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
                target: m.target.unwrap_or_default().into(),
                argument: m.argument.unwrap_or_default(),
            })
            .collect();
        reply.delayed = response
            .delayed_invocations
            .into_iter()
            .map(|d| SentAfter {
                delay: Duration::from_millis(d.delay_in_ms.max(0) as u64),
                target: d.target.unwrap_or_default().into(),
                argument: d.argument.unwrap_or_default(),
            })
            .collect();
        reply.egresses = response
            .outgoing_egresses
            .into_iter()
            .map(|e| Emitted {
                egress: FunctionType::new(e.egress_namespace, e.egress_type).to_string(),
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

    /// What the reply does to the state `name`: `None` if it leaves it unchanged.
    pub fn state_change(&self, name: &str) -> Option<&StateChange> {
        self.state_changes
            .iter()
            .find_map(|(n, change)| (n == name).then_some(change))
    }

    /// The new value of the state `name` unpacked into `M`, or `None` if the reply does
    /// not modify it.
    ///
    /// # Errors
    ///
    /// [`UnpackError`] if the new value holds another message type, or does not decode.
    pub fn modified_as<M: Message + Name + Default>(
        &self,
        name: &str,
    ) -> Result<Option<M>, UnpackError> {
        self.modified(name).map(|any| unpack(&any)).transpose()
    }

    /// The messages sent to `target`, in order.
    pub fn messages_to<'a>(&'a self, target: &'a Address) -> impl Iterator<Item = &'a Sent> {
        self.messages.iter().filter(move |m| m.target == *target)
    }

    /// The messages sent to the egress `egress` (`namespace/name`), in order.
    pub fn egresses_to<'a>(&'a self, egress: &'a str) -> impl Iterator<Item = &'a Emitted> {
        self.egresses.iter().filter(move |e| e.egress == egress)
    }
}

impl StateChange {
    /// The new value unpacked into `M`, or `None` for a `DELETE`.
    ///
    /// # Errors
    ///
    /// [`UnpackError`] if the new value holds another message type, or does not decode.
    pub fn unpack<M: Message + Name + Default>(&self) -> Result<Option<M>, UnpackError> {
        match self {
            StateChange::Modified(any) => unpack(any).map(Some),
            StateChange::Deleted => Ok(None),
        }
    }
}

impl Sent {
    /// The message unpacked into `M`.
    ///
    /// # Errors
    ///
    /// [`UnpackError`] if it holds another message type, or does not decode.
    pub fn unpack<M: Message + Name + Default>(&self) -> Result<M, UnpackError> {
        unpack(&self.argument)
    }
}

impl SentAfter {
    /// The message unpacked into `M`.
    ///
    /// # Errors
    ///
    /// [`UnpackError`] if it holds another message type, or does not decode.
    pub fn unpack<M: Message + Name + Default>(&self) -> Result<M, UnpackError> {
        unpack(&self.argument)
    }
}

impl Emitted {
    /// The message unpacked into `M`.
    ///
    /// # Errors
    ///
    /// [`UnpackError`] if it holds another message type, or does not decode.
    pub fn unpack<M: Message + Name + Default>(&self) -> Result<M, UnpackError> {
        unpack(&self.argument)
    }

    /// The Kafka record the message carries, its value decoded as `M` (see
    /// [`read_kafka_record`]).
    ///
    /// # Errors
    ///
    /// [`UnpackError`] if it is no Kafka record, or the record or its value does not
    /// decode.
    pub fn kafka_record<M: Message + Name + Default>(&self) -> Result<KafkaRecord<M>, UnpackError> {
        read_kafka_record(&self.argument)
    }

    /// The Kinesis record the message carries, its value decoded as `M` (see
    /// [`read_kinesis_record`]).
    ///
    /// # Errors
    ///
    /// [`UnpackError`] if it is no Kinesis record, or the record or its value does not
    /// decode.
    pub fn kinesis_record<M: Message + Name + Default>(
        &self,
    ) -> Result<KinesisRecord<M>, UnpackError> {
        read_kinesis_record(&self.argument)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, RequestReplyHandler, StatefulFunctions};

    // A well-known type stands in for a user's message type.
    fn seconds(seconds: i64) -> prost_types::Duration {
        prost_types::Duration { seconds, nanos: 0 }
    }

    /// `example/all` keeps the message in "last", clears "old", and sends it on: to a
    /// function, after a second, and to an egress.
    fn handler() -> RequestReplyHandler {
        let mut functions = StatefulFunctions::new();
        functions
            .bind("example/all", |ctx: &mut Context, message: Any| {
                ctx.set_state("last", message.clone())?;
                ctx.delete_state("old")?;
                ctx.send("example/next", "n", message.clone())?;
                ctx.send_after(
                    Duration::from_secs(1),
                    "example/later",
                    "l",
                    message.clone(),
                )?;
                ctx.send_egress("example/out", message)?;
                Ok(())
            })
            .unwrap();
        RequestReplyHandler::new(functions)
    }

    fn reply() -> Reply {
        let request = Request::to("example/all", "a")
            .with_state("last", None)
            .with_packed_state("old", &seconds(1))
            .with_state("kept", None)
            .pack_and_invoke(&seconds(7))
            .to_bytes();
        Reply::decode(&handler().handle(&request).unwrap()).unwrap()
    }

    #[test]
    fn every_argument_unpacks_into_its_message_type() {
        let reply = reply();
        assert_eq!(
            reply.messages()[0].unpack::<prost_types::Duration>(),
            Ok(seconds(7))
        );
        assert_eq!(
            reply.delayed_messages()[0].unpack::<prost_types::Duration>(),
            Ok(seconds(7))
        );
        assert_eq!(
            reply.egresses()[0].unpack::<prost_types::Duration>(),
            Ok(seconds(7))
        );
    }

    #[test]
    fn unpacking_into_another_type_names_both_types() {
        let err = reply().messages()[0]
            .unpack::<prost_types::Timestamp>()
            .unwrap_err();
        assert_eq!(
            err,
            UnpackError::WrongType {
                expected: "google.protobuf.Timestamp".into(),
                actual: "type.googleapis.com/google.protobuf.Duration".into(),
            }
        );
        assert!(
            err.to_string().contains("google.protobuf.Timestamp"),
            "{err}"
        );
    }

    #[test]
    fn undecodable_bytes_are_a_malformed_error_not_a_panic() {
        let any = Any {
            type_url: "type.googleapis.com/google.protobuf.Duration".into(),
            value: vec![0xff],
        };
        let err = unpack::<prost_types::Duration>(&any).unwrap_err();
        assert!(matches!(err, UnpackError::Malformed { .. }), "{err:?}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn mutations_are_found_by_state_name() {
        let reply = reply();
        assert_eq!(
            reply.modified_as::<prost_types::Duration>("last"),
            Ok(Some(seconds(7)))
        );
        assert_eq!(reply.state_change("old"), Some(&StateChange::Deleted));
        assert_eq!(
            reply.state_change("kept"),
            None,
            "unchanged states are not in a reply"
        );
        assert_eq!(reply.modified_as::<prost_types::Duration>("old"), Ok(None));
        assert!(reply.modified_as::<prost_types::Timestamp>("last").is_err());
        assert_eq!(
            reply
                .state_change("last")
                .unwrap()
                .unpack::<prost_types::Duration>(),
            Ok(Some(seconds(7)))
        );
        assert_eq!(
            StateChange::Deleted.unpack::<prost_types::Duration>(),
            Ok(None)
        );
    }

    #[test]
    fn messages_and_egresses_are_filtered_by_target() {
        let reply = reply();
        let next = Address::new("example", "next", "n");
        assert_eq!(reply.messages_to(&next).count(), 1);
        assert_eq!(
            reply
                .messages_to(&Address::new("example", "next", "x"))
                .count(),
            0
        );
        assert_eq!(reply.egresses_to("example/out").count(), 1);
        assert_eq!(reply.egresses_to("example/other").count(), 0);
    }
}
