//! The 2.2 request builder and reply reader: values in `google.protobuf.Any`; and
//! [`call_remote`], which sends a request to a running service.

use std::time::Duration;

use prost::Message;
use prost_types::Any;

use super::http_client::{self, RemoteError, RemoteOptions};
use super::{
    delay_of, egress_name, read, to_any_or_panic, Effects, Emitted, ReadError, Sent, SentAfter,
    StateChange,
};
use crate::address::{Address, FunctionType};
use crate::message::Value;
use crate::proto::polyglot::{self as proto, from_function, to_function};
use crate::protocol::ProtocolVersion;
use crate::text::Shown;
use crate::types::Type;
use crate::value_spec::ValueSpec;

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

    /// Adds the state `name` holding `value`: any [`Value`], as a function would store it
    /// (`&my_message` of a [`protobuf_type!`](crate::protobuf_type) type, `&5i64`, an
    /// `Any` as it is, `pack(&message)`).
    ///
    /// # Panics
    ///
    /// If `value`'s type cannot encode it, or it has no value (2.2 has no such thing).
    #[track_caller]
    pub fn with_state_value<V: Value>(self, name: &str, value: V) -> Self {
        let state = any_of_2_2(value, || format!("state {}", Shown(name)));
        self.with_state(name, Some(state))
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

    /// Adds an invocation without a caller, as from an ingress, whose argument is
    /// `message`: any [`Value`] (an `Any` as it is, `&my_message` of a
    /// [`protobuf_type!`](crate::protobuf_type) type, `pack(&message)`), as on 3.x.
    ///
    /// # Panics
    ///
    /// If `message`'s type cannot encode it, or it has no value (2.2 has no such thing).
    #[track_caller]
    pub fn invoke<V: Value>(mut self, message: V) -> Self {
        let argument = any_of_2_2(message, || "an invocation".to_owned());
        self.batch.invocations.push(to_function::Invocation {
            caller: None,
            argument: Some(argument),
        });
        self
    }

    /// Adds an invocation sent by `caller`, as [`invoke`](Self::invoke).
    ///
    /// # Panics
    ///
    /// As [`invoke`](Self::invoke).
    #[track_caller]
    pub fn invoke_from<V: Value>(mut self, caller: Address, message: V) -> Self {
        let argument = any_of_2_2(message, || "an invocation".to_owned());
        self.batch.invocations.push(to_function::Invocation {
            caller: Some((&caller).into()),
            argument: Some(argument),
        });
        self
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

    /// The new value of the state of `spec`, read as its type; `None` if the reply does
    /// not modify it. A protobuf message type reads with [`protobuf_type!`](crate::protobuf_type),
    /// whose typename is the `Any`'s type URL; a value of any other type URL reads, as it
    /// is, from [`state_change`](Self::state_change).
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the new value has another type URL than the spec's typename, or
    /// does not decode.
    pub fn modified<T: Type>(&self, spec: &ValueSpec<T>) -> Result<Option<T>, ReadError> {
        self.effects.modified(spec.name()).map(read).transpose()
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
    pub fn delayed_messages(&self) -> impl Iterator<Item = &SentAfter> + '_ {
        self.delayed.iter()
    }

    /// The egress messages, in order.
    pub fn egresses(&self) -> &[Emitted] {
        &self.effects.egresses
    }

    /// What the reply does to the state `name`: `None` if it leaves it unchanged.
    pub fn state_change(&self, name: &str) -> Option<&StateChange> {
        self.effects.state_change(name)
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

/// Sends the 2.2 `request` to the function endpoint at `url` as the runtime would, and
/// decodes the reply (for 3.x: [`v3::call_remote`](super::v3::call_remote)): a blocking
/// call on a new connection, for a tool or a test that talks to a running service.
///
/// `url` is `http://host:port/path`, or a Unix socket's `http+unix:///dir/fn.sock/path`
/// (the socket's path ends with the first component whose name ends in `.sock`, as the
/// runtime reads it). For `https` and `https+unix`, which need TLS settings, see
/// [`call_remote_with`].
///
/// The response must be what the runtime accepts: a 2xx status, exactly
/// `application/octet-stream`, a body that decodes as a `FromFunction`. `timeout` bounds
/// connecting, and each read and write.
///
/// ```
/// # #[cfg(feature = "server")] {
/// use std::time::Duration;
/// use statefun_sync::http::Server;
/// use statefun_sync::testing::v2::{call_remote, Request};
/// use statefun_sync::{RequestReplyHandler, StatefulFunctions};
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind("example/echo", |ctx, message| Ok(ctx.send("example/sink", "1", message)?))?;
/// let server = Server::builder()
///     .bind("127.0.0.1:0")
///     .start(RequestReplyHandler::v2(functions))?;
///
/// let request = Request::to("example/echo", "a").invoke(prost_types::Any::default());
/// let reply = call_remote(&server.url(), &request, Duration::from_secs(10))?;
/// assert_eq!(reply.messages().len(), 1);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Over a Unix socket, as a function served as a sidecar is called:
///
/// ```no_run
/// # use std::time::Duration;
/// # use statefun_sync::testing::v2::{call_remote, Request};
/// # let request = Request::to("example/echo", "a").invoke(prost_types::Any::default());
/// let url = "http+unix:///run/statefun/functions.sock/statefun";
/// let reply = call_remote(url, &request, Duration::from_secs(10))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// A [`RemoteError`]: [`InvalidUrl`](RemoteError::InvalidUrl) for a `url` the client
/// cannot call (not one of the forms above, or `https` without TLS settings),
/// [`Io`](RemoteError::Io) when the service cannot be reached (refused, no socket
/// file), and the others when its answer is not a reply.
pub fn call_remote(url: &str, request: &Request, timeout: Duration) -> Result<Reply, RemoteError> {
    call_remote_with(url, request, &RemoteOptions::new(timeout))
}

/// [`call_remote`] with [`RemoteOptions`]: the timeout and, with feature `tls`, the
/// client's TLS settings, for `https://host:port/path` and `https+unix://…` endpoints,
/// with a client certificate for a server that requires mutual TLS.
///
/// ```no_run
/// # #[cfg(feature = "tls")] {
/// use std::time::Duration;
/// use statefun_sync::testing::v2::{call_remote_with, Request};
/// use statefun_sync::testing::{ClientTls, RemoteOptions};
///
/// let tls = ClientTls::new("tls/ca.crt")?.identity("tls/client.crt", "tls/client.key")?;
/// let options = RemoteOptions::new(Duration::from_secs(10)).tls(tls);
/// let request = Request::to("example/greeter", "alice").invoke(prost_types::Any::default());
/// let reply = call_remote_with("https://localhost:8443/statefun", &request, &options)?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// As [`call_remote`], and [`Tls`](RemoteError::Tls) when TLS fails: the handshake, or
/// the server refusing the client's certificate (or its lack of one).
pub fn call_remote_with(
    url: &str,
    request: &Request,
    options: &RemoteOptions,
) -> Result<Reply, RemoteError> {
    let body = http_client::exchange(url, &request.to_bytes(), options, ProtocolVersion::V2)?;
    Reply::decode(&body).map_err(|error| RemoteError::MalformedReply {
        reason: format!("it does not decode as a FromFunction: {error}"),
    })
}

/// `value` as the `Any` a 2.2 request carries, for the request builder, which panics on
/// a value it cannot carry: a test's own values are the test's to fix.
#[track_caller]
fn any_of_2_2<V: Value>(value: V, destination: impl Fn() -> String) -> Any {
    let (any, has_value) = to_any_or_panic(value, &destination);
    assert!(
        has_value,
        "{}: a value without a value (typename {}) has no place on 2.2, whose `Any` always \
         carries one",
        destination(),
        any.type_url
    );
    any
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::message::{pack, unpack, UnpackError};
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
                ctx.remove_state("old")?;
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
        RequestReplyHandler::v2(functions)
    }

    fn reply() -> Reply {
        let request = Request::to("example/all", "a")
            .with_state("last", None)
            .with_state_value("old", &seconds(1))
            .with_state("kept", None)
            .invoke(&seconds(7))
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
            reply
                .delayed_messages()
                .next()
                .unwrap()
                .unpack::<prost_types::Duration>(),
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
        const LAST: ValueSpec<prost_types::Duration> = ValueSpec::named("last");
        const OLD: ValueSpec<prost_types::Duration> = ValueSpec::named("old");
        const LAST_AS_TIMESTAMP: ValueSpec<prost_types::Timestamp> = ValueSpec::named("last");
        assert_eq!(reply.modified(&LAST).unwrap(), Some(seconds(7)));
        assert_eq!(reply.state_change("old"), Some(&StateChange::Deleted));
        assert_eq!(
            reply.state_change("kept"),
            None,
            "unchanged states are not in a reply"
        );
        assert_eq!(reply.modified(&OLD).unwrap(), None);
        assert!(reply.modified(&LAST_AS_TIMESTAMP).is_err());
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

    #[test]
    fn the_request_takes_values_as_a_function_sends_them() {
        let typed = Request::to("ns/f", "1")
            .invoke(&seconds(7))
            .with_state_value("s", &seconds(1));
        let packed = Request::to("ns/f", "1")
            .invoke(pack(&seconds(7)))
            .with_state("s", Some(pack(&seconds(1))));
        assert_eq!(typed.to_bytes(), packed.to_bytes());
    }

    #[test]
    #[should_panic(expected = "has no place on 2.2")]
    fn a_value_without_a_value_has_no_place_in_a_2_2_request() {
        let _ = Request::to("ns/f", "1").invoke(None::<&i32>);
    }
}
