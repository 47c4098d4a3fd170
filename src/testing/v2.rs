//! The 2.2 request builder and reply reader: values in `google.protobuf.Any`.

use prost::{Message, Name};
use prost_types::Any;

use super::{delay_of, egress_name, Effects, Emitted, Sent, SentAfter, StateChange};
use crate::address::{Address, FunctionType};
use crate::message::{pack, unpack, UnpackError};
use crate::proto::polyglot::{self as proto, from_function, to_function};

/// Builds a 2.2 request (a serialized `ToFunction`) the way the runtime would send it.
/// For 3.x, see [`v3::Request`](super::v3::Request).
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
        Request::to_address(&Address::from_wire(namespace, name, id))
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

/// The invocation result of a serialized 2.2 `FromFunction`, `None` when it carries none:
/// the one 2.2 reply decoder of the testing kit.
pub(crate) fn invocation_result(
    bytes: &[u8],
) -> Result<Option<from_function::InvocationResponse>, prost::DecodeError> {
    let reply = proto::FromFunction::decode(bytes)?;
    Ok(reply
        .response
        .map(|from_function::Response::InvocationResult(response)| response))
}

/// A 2.2 reply (a serialized `FromFunction`), decoded into what is easy to assert on. For
/// 3.x, see [`v3::Reply`](super::v3::Reply).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    effects: Effects,
    delayed: Vec<SentAfter>,
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
            reply
                .effects
                .state_changes
                .push((mutation.state_name, change));
        }
        reply.effects.messages = response
            .outgoing_messages
            .into_iter()
            .map(|m| Sent {
                target: m.target.unwrap_or_default().into(),
                argument: m.argument.unwrap_or_default(),
                has_value: true,
            })
            .collect();
        reply.delayed = response
            .delayed_invocations
            .into_iter()
            .map(|d| SentAfter {
                delay: delay_of(d.delay_in_ms),
                target: d.target.unwrap_or_default().into(),
                argument: d.argument.unwrap_or_default(),
                has_value: true,
            })
            .collect();
        reply.effects.egresses = response
            .outgoing_egresses
            .into_iter()
            .map(|e| Emitted {
                egress: egress_name(e.egress_namespace, e.egress_type),
                argument: e.argument.unwrap_or_default(),
                has_value: true,
            })
            .collect();
        Ok(reply)
    }

    /// Every state mutation, in the reply's order.
    pub fn state_changes(&self) -> &[(String, StateChange)] {
        &self.effects.state_changes
    }

    /// The new value of the state `name`, if the reply modifies it.
    pub fn modified(&self, name: &str) -> Option<Any> {
        self.effects.modified(name).cloned()
    }

    /// Whether the reply deletes the state `name`.
    pub fn deleted(&self, name: &str) -> bool {
        self.effects.deleted(name)
    }

    /// The messages sent to functions, in order.
    pub fn messages(&self) -> &[Sent] {
        &self.effects.messages
    }

    /// The delayed messages, in order.
    pub fn delayed_messages(&self) -> &[SentAfter] {
        &self.delayed
    }

    /// The egress messages, in order.
    pub fn egresses(&self) -> &[Emitted] {
        &self.effects.egresses
    }

    /// What the reply does to the state `name`: `None` if it leaves it unchanged.
    pub fn state_change(&self, name: &str) -> Option<&StateChange> {
        self.effects.state_change(name)
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
        self.effects.modified(name).map(unpack).transpose()
    }

    /// The messages sent to `target`, in order.
    pub fn messages_to<'a>(&'a self, target: &'a Address) -> impl Iterator<Item = &'a Sent> {
        self.effects.messages_to(target)
    }

    /// The messages sent to the egress `egress` (`namespace/name`), in order.
    pub fn egresses_to<'a>(&'a self, egress: &'a str) -> impl Iterator<Item = &'a Emitted> {
        self.effects.egresses_to(egress)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        let next = Address::new("example", "next", "n").unwrap();
        assert_eq!(reply.messages_to(&next).count(), 1);
        assert_eq!(
            reply
                .messages_to(&Address::new("example", "next", "x").unwrap())
                .count(),
            0
        );
        assert_eq!(reply.egresses_to("example/out").count(), 1);
        assert_eq!(reply.egresses_to("example/other").count(), 0);
    }
}
