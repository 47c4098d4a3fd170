//! The 3.x request builder and reply reader: typed values in, typed values out, and the
//! state handshake read as the list of states a function asks for.
//!
//! ```
//! use statefun_sync::testing::v3::{Delayed, Reply, Request};
//! use statefun_sync::{Address, Context, Message, RequestReplyHandler, StatefulFunctions};
//! use std::time::Duration;
//!
//! let mut functions = StatefulFunctions::new();
//! functions.bind_message("example/timer", |ctx: &mut Context, message: Message| {
//!     let token: String = message.get()?.unwrap_or_default();
//!     ctx.cancel_delayed_message(&token)?;
//!     ctx.send_after_cancellable(Duration::from_secs(60), "example/timer", "t", &token, &token)?;
//!     Ok(())
//! })?;
//! let handler = RequestReplyHandler::v3(functions)?;
//!
//! let request = Request::to("example/timer", "t")
//!     .invoke_from(Address::new("example", "caller", "c").unwrap(), &"tick".to_string());
//! let reply = Reply::decode(&handler.handle(&request.to_bytes())?)?;
//! assert_eq!(reply.cancellations().collect::<Vec<_>>(), ["tick"]);
//! let Delayed::Send { message, cancellation_token } = &reply.delayed()[1] else {
//!     panic!("a send");
//! };
//! assert_eq!(message.delay, Duration::from_secs(60));
//! assert_eq!(cancellation_token.as_deref(), Some("tick"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use prost::Message;
use prost_types::Any;

use super::http_client::{self, RemoteError, RemoteOptions};
use super::StateChange;
use super::{
    delay_of, egress_name, read, to_any_or_panic, Effects, Emitted, ReadError, Sent, SentAfter,
};
use crate::address::{Address, FunctionType};
use crate::message::Value;
use crate::proto::reqreply::{self as proto, from_function, to_function, TypedValue};
use crate::protocol::ProtocolVersion;
use crate::state_spec::{Expiration, StateSpec};
use crate::text::Shown;
use crate::types::Type;
use crate::value_spec::ValueSpec;

/// Builds a 3.x request (a serialized `ToFunction`) the way the runtime would send it:
/// states and arguments as typed values.
///
/// ```
/// use statefun_sync::testing::v3::Request;
/// use statefun_sync::{Address, ValueSpec};
///
/// const SEEN: ValueSpec<i32> = ValueSpec::named("seen");
///
/// let body = Request::to("example/greeter", "alice")
///     .with_state(&SEEN, Some(&3))
///     .invoke_from(Address::new("example", "caller", "c").unwrap(), &"alice".to_string())
///     .invoke(&42i64)
///     .to_bytes();
/// # let _ = body;
/// ```
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
                target: Some(address_to_proto(target)),
                ..Default::default()
            },
        }
    }

    /// Adds the state of `spec` with `value`, under the spec's typename (`None`: the
    /// runtime registered it, but it has no value).
    ///
    /// # Panics
    ///
    /// If `value`'s type cannot encode it ([`Type::encode_value`] fails), as the request
    /// builders do for every value they are given.
    #[track_caller]
    pub fn with_state<T: Type>(self, spec: &ValueSpec<T>, value: Option<&T>) -> Self {
        let destination = || format!("state {}", Shown(spec.name()));
        let value = value.map(|value| typed_value(to_any_or_panic(value, destination)));
        self.with_state_raw(spec.name(), value)
    }

    /// Adds the state `name` holding `value` (an `Any` whose type URL is the typename, or
    /// `&T` for any [`Type`]), whatever the function declares: to test a state of another
    /// type than the declared one.
    ///
    /// # Panics
    ///
    /// If `value`'s type cannot encode it.
    #[track_caller]
    pub fn with_state_value<V: Value>(self, name: &str, value: V) -> Self {
        let value = to_any_or_panic(value, || format!("state {}", Shown(name)));
        self.with_state_raw(name, Some(typed_value(value)))
    }

    /// Adds the state `name` with `value` as the wire carries it: `None` leaves
    /// `state_value` out, as the runtime does for a state without a value; a
    /// `TypedValue` is sent as it is (`has_value` false, an empty typename, bytes that do
    /// not decode...).
    pub fn with_state_raw(mut self, name: &str, value: Option<TypedValue>) -> Self {
        self.batch.state.push(to_function::PersistedValue {
            state_name: name.to_owned(),
            state_value: value,
        });
        self
    }

    /// Adds an invocation without a caller, as from an ingress, whose argument is
    /// `message`: `&T` for any [`Type`] (`&5i32`, `&"x".to_string()`, `&my_message`), or
    /// an `Any` whose type URL is the typename.
    ///
    /// # Panics
    ///
    /// If `message`'s type cannot encode it.
    #[track_caller]
    pub fn invoke<V: Value>(self, message: V) -> Self {
        let argument = to_any_or_panic(message, || "an invocation".to_owned());
        self.invoke_raw(None, Some(typed_value(argument)))
    }

    /// Adds an invocation sent by `caller`, as [`invoke`](Self::invoke).
    ///
    /// # Panics
    ///
    /// If `message`'s type cannot encode it.
    #[track_caller]
    pub fn invoke_from<V: Value>(self, caller: Address, message: V) -> Self {
        let argument = to_any_or_panic(message, || "an invocation".to_owned());
        self.invoke_raw(Some(caller), Some(typed_value(argument)))
    }

    /// Adds an invocation with `argument` as the wire carries it (`None` leaves it out).
    pub fn invoke_raw(mut self, caller: Option<Address>, argument: Option<TypedValue>) -> Self {
        self.batch.invocations.push(to_function::Invocation {
            caller: caller.as_ref().map(address_to_proto),
            argument,
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

/// A state as a 3.x function declares it to the runtime in the handshake, and as the
/// runtime registers it: its name, its values' typename, and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDeclaration {
    /// The state's name.
    pub name: String,
    /// The typename of its values (`type_typename`).
    pub typename: String,
    /// When the runtime drops its value: `None` for mode `NONE` (or a mode the runtime
    /// does not know, which it reads as `NONE`).
    pub expiration: Option<Expiration>,
}

impl StateDeclaration {
    /// Reads a `PersistedValueSpec` as the runtime does.
    pub(crate) fn from_proto(spec: from_function::PersistedValueSpec) -> Self {
        use from_function::expiration_spec::ExpireMode;

        let expiration = spec.expiration_spec.and_then(|expiration| {
            // A negative duration reads as zero, which the runtime refuses (see
            // `LocalRuntime`); the reader keeps what it can.
            let after = delay_of(expiration.expire_after_millis);
            match ExpireMode::try_from(expiration.mode) {
                Ok(ExpireMode::AfterInvoke) => Some(Expiration::AfterCall(after)),
                Ok(ExpireMode::AfterWrite) => Some(Expiration::AfterWrite(after)),
                Ok(ExpireMode::None) | Err(_) => None,
            }
        });
        StateDeclaration {
            name: spec.state_name,
            typename: spec.type_typename,
            expiration,
        }
    }
}

/// What the handshake of a function declaring `spec` says of it. A zero duration is no
/// expiration, as the SDKs send it.
impl From<&StateSpec> for StateDeclaration {
    fn from(spec: &StateSpec) -> Self {
        let expiration = spec.expiration().filter(|expiration| match expiration {
            Expiration::AfterCall(after) | Expiration::AfterWrite(after) => after.as_millis() > 0,
        });
        StateDeclaration {
            name: spec.name().to_owned(),
            typename: spec.typename().unwrap_or_default().to_owned(),
            expiration,
        }
    }
}

/// What the handshake of a function declaring `spec` says of it.
impl<T: Type> From<&ValueSpec<T>> for StateDeclaration {
    fn from(spec: &ValueSpec<T>) -> Self {
        StateDeclaration::from(&StateSpec::from(spec))
    }
}

/// A delayed message, or the cancellation of one, in the order the reply carries them
/// (both share one list on the wire).
#[derive(Debug, Clone, PartialEq)]
pub enum Delayed {
    /// A message sent after a delay.
    Send {
        /// The message, its target and delay.
        message: SentAfter,
        /// The token that can cancel it; `None` when it was sent without one.
        cancellation_token: Option<String>,
    },
    /// The cancellation of the delayed message sent with `cancellation_token`.
    Cancel {
        /// The token.
        cancellation_token: String,
    },
}

/// A 3.x reply (a serialized `FromFunction`), decoded into what is easy to assert on:
/// either the result of a batch that ran (state changes, messages, delayed messages and
/// cancellations, egress messages, each readable as a [`Type`]), or the handshake that
/// asks for missing states ([`missing_states`](Self::missing_states)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    effects: Effects,
    delayed: Vec<Delayed>,
    missing: Option<Vec<StateDeclaration>>,
}

impl Reply {
    /// Decodes a reply body. An empty body (a `FromFunction` without a response) is an
    /// empty result, as the runtime reads it.
    ///
    /// # Errors
    ///
    /// The [`prost::DecodeError`] if `bytes` are not a 3.x `FromFunction`.
    pub fn decode(bytes: &[u8]) -> Result<Reply, prost::DecodeError> {
        let reply = proto::FromFunction::decode(bytes)?;
        let response = match reply.response {
            None => return Ok(Reply::default()),
            Some(from_function::Response::IncompleteInvocationContext(context)) => {
                return Ok(Reply {
                    missing: Some(
                        context
                            .missing_values
                            .into_iter()
                            .map(StateDeclaration::from_proto)
                            .collect(),
                    ),
                    ..Reply::default()
                })
            }
            Some(from_function::Response::InvocationResult(response)) => response,
        };
        let modify = from_function::persisted_value_mutation::MutationType::Modify as i32;
        let state_changes = response
            .state_mutations
            .into_iter()
            .map(|mutation| {
                let change = if mutation.mutation_type == modify {
                    // The runtime keeps a MODIFY's bytes whatever `has_value` says.
                    let value = mutation.state_value.unwrap_or_default();
                    StateChange::Modified(Any {
                        type_url: value.typename,
                        value: value.value.to_vec(),
                    })
                } else {
                    StateChange::Deleted
                };
                (mutation.state_name, change)
            })
            .collect();
        let messages = response
            .outgoing_messages
            .into_iter()
            .map(|m| {
                let (argument, has_value) = any_of(m.argument);
                Sent {
                    target: address_from_proto(m.target),
                    argument,
                    has_value,
                }
            })
            .collect();
        let delayed = response
            .delayed_invocations
            .into_iter()
            .map(|d| {
                if d.is_cancellation_request {
                    Delayed::Cancel {
                        cancellation_token: d.cancellation_token,
                    }
                } else {
                    let (argument, has_value) = any_of(d.argument);
                    Delayed::Send {
                        message: SentAfter {
                            delay: delay_of(d.delay_in_ms),
                            target: address_from_proto(d.target),
                            argument,
                            has_value,
                        },
                        cancellation_token: Some(d.cancellation_token)
                            .filter(|token| !token.is_empty()),
                    }
                }
            })
            .collect();
        let egresses = response
            .outgoing_egresses
            .into_iter()
            .map(|e| {
                let (argument, has_value) = any_of(e.argument);
                Emitted {
                    egress: egress_name(e.egress_namespace, e.egress_type),
                    argument,
                    has_value,
                }
            })
            .collect();
        Ok(Reply {
            effects: Effects {
                state_changes,
                messages,
                egresses,
            },
            delayed,
            missing: None,
        })
    }

    /// The states the function asks the runtime for, in the order it lists them, when the
    /// reply is the handshake (`incomplete_invocation_context`); `None` when the batch ran.
    pub fn missing_states(&self) -> Option<&[StateDeclaration]> {
        self.missing.as_deref()
    }

    /// Every state mutation, in the reply's order.
    pub fn state_changes(&self) -> &[(String, StateChange)] {
        &self.effects.state_changes
    }

    /// What the reply does to the state `name`: `None` if it leaves it unchanged.
    pub fn state_change(&self, name: &str) -> Option<&StateChange> {
        self.effects.state_change(name)
    }

    /// The new value of the state of `spec`, read as its type; `None` if the reply does
    /// not modify it.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the new value has another typename than the spec's, or does not
    /// decode.
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

    /// The messages sent to `target`, in order.
    pub fn messages_to<'a>(&'a self, target: &'a Address) -> impl Iterator<Item = &'a Sent> {
        self.effects.messages_to(target)
    }

    /// The delayed messages and cancellations, in order.
    pub fn delayed(&self) -> &[Delayed] {
        &self.delayed
    }

    /// The delayed messages, in order, without the cancellations.
    pub fn delayed_messages(&self) -> impl Iterator<Item = &SentAfter> + '_ {
        self.delayed.iter().filter_map(|delayed| match delayed {
            Delayed::Send { message, .. } => Some(message),
            Delayed::Cancel { .. } => None,
        })
    }

    /// The tokens of the cancellations, in order.
    pub fn cancellations(&self) -> impl Iterator<Item = &str> + '_ {
        self.delayed.iter().filter_map(|delayed| match delayed {
            Delayed::Cancel { cancellation_token } => Some(cancellation_token.as_str()),
            Delayed::Send { .. } => None,
        })
    }

    /// The egress messages, in order.
    pub fn egresses(&self) -> &[Emitted] {
        &self.effects.egresses
    }

    /// The messages sent to the egress `egress` (`namespace/name`), in order.
    pub fn egresses_to<'a>(&'a self, egress: &'a str) -> impl Iterator<Item = &'a Emitted> {
        self.effects.egresses_to(egress)
    }
}

/// Sends `request` to the 3.x function endpoint at `url` (`http://host:port/path`, or a
/// Unix socket's `http+unix:///dir/fn.sock/path`) as the runtime would, and decodes the
/// reply: the 3.x form of [`call_remote`](super::v2::call_remote), with the same checks,
/// except that an empty body is an empty result, as the 3.x runtime reads it.
///
/// # Errors
///
/// As [`call_remote`](super::v2::call_remote).
pub fn call_remote(url: &str, request: &Request, timeout: Duration) -> Result<Reply, RemoteError> {
    call_remote_with(url, request, &RemoteOptions::new(timeout))
}

/// [`call_remote`] with [`RemoteOptions`]: the 3.x form of
/// [`testing::v2::call_remote_with`](super::v2::call_remote_with), for `https` and `https+unix`
/// endpoints (feature `tls`), with a client certificate for mutual TLS.
///
/// ```no_run
/// # #[cfg(feature = "tls")] {
/// use std::time::Duration;
/// use statefun_sync::testing::v3::{call_remote_with, Request};
/// use statefun_sync::testing::{ClientTls, RemoteOptions};
///
/// let tls = ClientTls::new("tls/ca.crt")?.identity("tls/client.crt", "tls/client.key")?;
/// let options = RemoteOptions::new(Duration::from_secs(10)).tls(tls);
/// let request = Request::to("example/greeter", "alice").invoke(&"alice".to_string());
/// let reply = call_remote_with("https://localhost:8443/statefun", &request, &options)?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// As [`testing::v2::call_remote_with`](super::v2::call_remote_with).
pub fn call_remote_with(
    url: &str,
    request: &Request,
    options: &RemoteOptions,
) -> Result<Reply, RemoteError> {
    let body = http_client::exchange(url, &request.to_bytes(), options, ProtocolVersion::V3)?;
    Reply::decode(&body).map_err(|error| RemoteError::MalformedReply {
        reason: format!("it does not decode as a 3.x FromFunction: {error}"),
    })
}

/// `value` as a `TypedValue` with a value.
pub(crate) fn typed_value((value, has_value): (Any, bool)) -> TypedValue {
    TypedValue {
        typename: value.type_url,
        has_value,
        value: value.value.into(),
    }
}

/// A `TypedValue` as an `Any` whose type URL is the typename, and whether it has a value;
/// one without a value has no bytes, whatever it carries.
pub(crate) fn any_of(value: Option<TypedValue>) -> (Any, bool) {
    let value = value.unwrap_or_default();
    let any = Any {
        type_url: value.typename,
        value: if value.has_value {
            value.value.to_vec()
        } else {
            Vec::new()
        },
    };
    (any, value.has_value)
}

pub(crate) fn address_to_proto(address: &Address) -> proto::Address {
    proto::Address {
        namespace: address.namespace().to_owned(),
        r#type: address.name().to_owned(),
        id: address.id().to_owned(),
    }
}

/// An address from the wire; an absent one is all empty.
pub(crate) fn address_from_proto(address: Option<proto::Address>) -> Address {
    let address = address.unwrap_or_default();
    Address::from_wire(address.namespace, address.r#type, address.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, RequestReplyHandler, StatefulFunctions};

    const LAST: ValueSpec<String> = ValueSpec::named("last");
    const OLD: ValueSpec<i64> =
        ValueSpec::named("old").expire_after_write(Duration::from_millis(1500));
    const KEPT: ValueSpec<bool> =
        ValueSpec::named("kept").expire_after_call(Duration::from_secs(2));

    /// `example/all` keeps the message in `last`, clears `old`, and sends it on: to a
    /// function, after a second (cancellable with "t"), and to an egress; then cancels "u".
    fn handler() -> RequestReplyHandler {
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("example/all", |ctx: &mut Context, message| {
                let text: String = message.get()?.unwrap_or_default();
                ctx.set(&LAST, &text)?;
                ctx.remove(&OLD)?;
                ctx.send("example/next", "n", &text)?;
                ctx.send_after_cancellable(
                    Duration::from_secs(1),
                    "example/later",
                    "l",
                    &text,
                    "t",
                )?;
                ctx.send_egress("example/out", &text)?;
                ctx.cancel_delayed_message("u")?;
                Ok(())
            })
            .unwrap()
            .state(&LAST)
            .state(&OLD)
            .state(&KEPT);
        RequestReplyHandler::v3(functions).unwrap()
    }

    fn run(request: Request) -> Reply {
        Reply::decode(&handler().handle(&request.to_bytes()).unwrap()).unwrap()
    }

    fn full_request() -> Request {
        Request::to("example/all", "a")
            .with_state(&LAST, None)
            .with_state(&OLD, Some(&7))
            .with_state(&KEPT, Some(&true))
            .invoke(&"hi".to_string())
    }

    #[test]
    fn the_handshake_reads_as_the_missing_declarations() {
        let reply = run(Request::to("example/all", "a")
            .with_state(&OLD, None)
            .invoke(&"hi".to_string()));
        assert_eq!(
            reply.missing_states(),
            Some(
                &[
                    StateDeclaration {
                        name: "last".into(),
                        typename: "io.statefun.types/string".into(),
                        expiration: None,
                    },
                    StateDeclaration {
                        name: "kept".into(),
                        typename: "io.statefun.types/bool".into(),
                        expiration: Some(Expiration::AfterCall(Duration::from_secs(2))),
                    },
                ][..]
            )
        );
        assert_eq!(
            StateDeclaration::from(&KEPT),
            reply.missing_states().unwrap()[1]
        );
        assert!(reply.state_changes().is_empty() && reply.messages().is_empty());
        // An invocation result is no handshake.
        assert_eq!(run(full_request()).missing_states(), None);
    }

    #[test]
    fn values_read_back_as_their_types() {
        let reply = run(full_request());
        assert_eq!(reply.modified(&LAST).unwrap(), Some("hi".to_string()));
        assert!(reply.deleted("old"));
        assert_eq!(reply.modified(&OLD).unwrap(), None);
        assert_eq!(reply.state_change("kept"), None);
        let next = Address::new("example", "next", "n").unwrap();
        let sent: Vec<_> = reply.messages_to(&next).collect();
        assert_eq!(sent[0].typename(), "io.statefun.types/string");
        assert_eq!(sent[0].bytes(), b"\x0a\x02hi");
        assert_eq!(sent[0].get::<String>().unwrap(), "hi");
        let later: Vec<_> = reply.delayed_messages().collect();
        assert_eq!(later[0].get::<String>().unwrap(), "hi");
        assert_eq!(later[0].delay, Duration::from_secs(1));
        assert_eq!(
            reply.delayed()[0],
            Delayed::Send {
                message: later[0].clone(),
                cancellation_token: Some("t".into()),
            }
        );
        assert_eq!(reply.cancellations().collect::<Vec<_>>(), ["u"]);
        let out: Vec<_> = reply.egresses_to("example/out").collect();
        assert_eq!(out[0].get::<String>().unwrap(), "hi");
        assert_eq!(
            reply.state_change("last").unwrap().get::<String>().unwrap(),
            Some("hi".to_string())
        );
    }

    #[test]
    fn a_value_of_another_type_is_a_read_error_not_a_panic() {
        let reply = run(full_request());
        let err = reply.messages()[0].get::<i32>().unwrap_err();
        assert!(
            err.to_string().contains("`io.statefun.types/int`")
                && err.to_string().contains("`io.statefun.types/string`"),
            "{err}"
        );
        const LAST_AS_INT: ValueSpec<i32> = ValueSpec::named("last");
        assert!(matches!(
            reply.modified(&LAST_AS_INT),
            Err(ReadError::WrongType { .. })
        ));
    }

    #[test]
    fn raw_states_and_arguments_reach_the_function_as_given() {
        // A state of a foreign type goes on the wire as given.
        let request = Request::to("example/all", "a")
            .with_state_value("last", &5i32)
            .with_state_raw("old", None);
        let Some(to_function::Request::Invocation(batch)) = request.to_proto().request else {
            panic!("no batch");
        };
        assert_eq!(
            batch.state[0].state_value,
            Some(TypedValue {
                typename: "io.statefun.types/int".into(),
                has_value: true,
                value: b"\x0d\x05\0\0\0".to_vec().into(),
            })
        );
        assert_eq!(batch.state[1].state_value, None);
        // `has_value` false is no value, whatever its bytes; an absent argument is empty.
        let request = Request::to("example/all", "a")
            .with_state_raw(
                "last",
                Some(TypedValue {
                    typename: "io.statefun.types/string".into(),
                    has_value: false,
                    value: b"\x0a\x01x".to_vec().into(),
                }),
            )
            .with_state(&OLD, None)
            .with_state(&KEPT, None)
            .invoke_raw(None, None);
        let err = handler().handle(&request.to_bytes()).unwrap_err();
        assert!(
            matches!(err, crate::Error::UnexpectedMessageType { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn garbage_and_empty_bodies_decode_as_errors_or_empty_results() {
        assert!(Reply::decode(b"\xff\xff").is_err());
        assert_eq!(Reply::decode(b"").unwrap(), Reply::default());
    }

    #[test]
    fn declarations_of_unknown_modes_read_as_no_expiration() {
        let spec = from_function::PersistedValueSpec {
            state_name: "s".into(),
            expiration_spec: Some(from_function::ExpirationSpec {
                mode: 9,
                expire_after_millis: 5,
            }),
            type_typename: "t/x".into(),
        };
        assert_eq!(StateDeclaration::from_proto(spec).expiration, None);
        let zero = ValueSpec::<i32>::named("z").expire_after_write(Duration::ZERO);
        assert_eq!(StateDeclaration::from(&zero).expiration, None);
    }
}
