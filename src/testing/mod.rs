//! Helpers for testing functions: build a request, run it, read the reply; or run a
//! whole app on a [`LocalRuntime`]. Both protocol versions are covered: [`v2::Request`]
//! and [`v2::Reply`] speak 2.2, [`v3::Request`] and [`v3::Reply`] speak 3.x, and one
//! [`LocalRuntime`] runs either ([`LocalRuntime::v2`] for 2.2, [`LocalRuntime::v3`] for
//! 3.x). The guide's [testing](crate::guide::testing) and
//! [local runtime](crate::guide::local_runtime) chapters put them to work on a whole app.
//!
//! Feature `testing`, off by default: turn it on in `[dev-dependencies]`
//! (`statefun-sync = { ..., features = ["testing"] }`), so that tests have it and a
//! production build does not compile it.
//!
//! # Testing a function
//!
//! [`v2::Request`] builds the bytes the runtime would send for one batch, and [`v2::Reply`]
//! decodes what the function answered: state changes by state name, messages, delayed
//! messages and egress messages, each argument unpackable into its message type.
//!
//! ```
//! use prost_types::Any;
//! use statefun_sync::testing::{StateChange, v2::{Reply, Request}};
//! use statefun_sync::{Address, RequestReplyHandler, StatefulFunctions};
//!
//! let mut functions = StatefulFunctions::new();
//! functions.bind("example/remember", |ctx, message: Any| {
//!     ctx.set_state("last", message)?;
//!     Ok(())
//! })?;
//! let handler = RequestReplyHandler::v2(functions);
//!
//! let ping = |n: u8| Any { type_url: "example/Ping".into(), value: vec![n] };
//! let request = Request::to("example/remember", "alice")
//!     .with_state("last", None)
//!     .invoke(ping(1))
//!     .invoke_from(Address::new("example", "caller", "c1").unwrap(), ping(2))
//!     .to_bytes();
//! let reply = Reply::decode(&handler.handle(&request)?)?;
//!
//! assert_eq!(reply.state_changes().len(), 1);
//! assert_eq!(reply.state_change("last"), Some(&StateChange::Modified(ping(2))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Testing a 3.x function
//!
//! [`v3::Request`] takes typed values: states through their [`ValueSpec`](crate::ValueSpec)
//! and arguments of any [`Type`]. [`v3::Reply`] reads them back the
//! same way ([`Sent::get`], [`v3::Reply::modified`]), and reads the state handshake as the
//! list of states the function asks for ([`v3::Reply::missing_states`]).
//!
//! ```
//! use statefun_sync::testing::v3::{Reply, Request, StateDeclaration};
//! use statefun_sync::{Address, Context, Message, RequestReplyHandler, StatefulFunctions, ValueSpec};
//!
//! const SEEN: ValueSpec<i32> = ValueSpec::named("seen");
//!
//! let mut functions = StatefulFunctions::new();
//! functions
//!     .bind_message("example/greeter", |ctx: &mut Context, message: Message| {
//!         let seen = ctx.get(&SEEN)?.unwrap_or(0) + 1;
//!         ctx.set(&SEEN, &seen)?;
//!         let name: String = message.get()?.unwrap_or_default();
//!         ctx.send("example/printer", &name, &format!("hello {name} #{seen}"))?;
//!         Ok(())
//!     })?
//!     .state(&SEEN);
//! let handler = RequestReplyHandler::v3(functions)?;
//!
//! // Without its state, the function answers with the handshake.
//! let request = Request::to("example/greeter", "alice").invoke(&"alice".to_string());
//! let reply = Reply::decode(&handler.handle(&request.to_bytes())?)?;
//! assert_eq!(reply.missing_states(), Some(&[StateDeclaration::from(&SEEN)][..]));
//!
//! // With it, the function runs.
//! let request = request.with_state(&SEEN, Some(&1));
//! let reply = Reply::decode(&handler.handle(&request.to_bytes())?)?;
//! assert_eq!(reply.modified(&SEEN)?, Some(2));
//! assert_eq!(reply.messages()[0].get::<String>()?, "hello alice #2");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Calling a served function
//!
//! [`v2::call_remote`] and [`v3::call_remote`] send a request to a running service as
//! the runtime would, over the transports the runtime uses: `http://host:port/path`, a Unix
//! socket's `http+unix:///dir/fn.sock/path`, and with feature `tls` `https://…` and
//! `https+unix://…`, for which [`v2::call_remote_with`] takes the client's TLS settings (the
//! CA to trust and, for mutual TLS, a client certificate) in [`RemoteOptions`]. A
//! [`LocalRuntime`] routes a function type to such an endpoint with
//! [`route_to_endpoint`](LocalRuntime::route_to_endpoint).
//!
//! # Running an app locally
//!
//! [`LocalRuntime`] stands in for the Flink runtime: it keeps every address's state,
//! routes messages between functions in batches, delivers delayed messages on a virtual
//! clock, and records what reaches the egresses. It drives the functions through the
//! same request and reply bytes as production, so what passes here passes there. On
//! 3.x it also does the state handshake, cancels delayed messages by token, and expires
//! states on the virtual clock.
//!
//! ```
//! use std::time::Duration;
//! use statefun_sync::testing::LocalRuntime;
//! use statefun_sync::{StatefulFunctions, ValueSpec};
//!
//! const SEEN: ValueSpec<prost_types::Duration> = ValueSpec::named("seen");
//!
//! // Counts the pings of each user; after the third, says so to an egress in 30 minutes.
//! let mut functions = StatefulFunctions::new();
//! functions
//!     .bind_typed("example/counter", |ctx, _ping: prost_types::Duration| {
//!         let seen = ctx.get(&SEEN)?.unwrap_or_default();
//!         let seen = prost_types::Duration { seconds: seen.seconds + 1, nanos: 0 };
//!         ctx.set(&SEEN, &seen)?;
//!         if seen.seconds == 3 {
//!             let id = ctx.address().id().to_owned();
//!             ctx.send_after(Duration::from_secs(1800), "example/reporter", &id, &seen)?;
//!         }
//!         Ok(())
//!     })?
//!     .state(&SEEN);
//! functions.bind("example/reporter", |ctx, message| {
//!     ctx.send_egress("example/out", message)?;
//!     Ok(())
//! })?;
//!
//! let mut runtime = LocalRuntime::v2(functions);
//! for _ in 0..3 {
//!     runtime.send("example/counter", "alice", &prost_types::Duration::default())?;
//! }
//! runtime.run()?;
//! let seen = runtime.get("example/counter", "alice", &SEEN)?;
//! assert_eq!(seen.unwrap().seconds, 3);
//! assert!(runtime.egress("example/out").is_empty());
//!
//! runtime.advance(Duration::from_secs(1800))?; // no real time passes
//! assert_eq!(runtime.egress("example/out").len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same app on 3.x, with a typed state that expires after a day without a call:
//!
//! ```
//! use std::time::Duration;
//! use statefun_sync::testing::LocalRuntime;
//! use statefun_sync::{Context, Message, StatefulFunctions, ValueSpec};
//!
//! const SEEN: ValueSpec<i64> = ValueSpec::named("seen").expire_after_call(Duration::from_secs(86_400));
//!
//! let mut functions = StatefulFunctions::new();
//! functions
//!     .bind_message("example/counter", |ctx: &mut Context, _: Message| {
//!         let seen = ctx.get(&SEEN)?.unwrap_or(0) + 1;
//!         ctx.set(&SEEN, &seen)?;
//!         if seen == 3 {
//!             let id = ctx.address().id().to_owned();
//!             ctx.send_after(Duration::from_secs(1800), "example/reporter", &id, &seen)?;
//!         }
//!         Ok(())
//!     })?
//!     .state(&SEEN);
//! functions.bind_message("example/reporter", |ctx: &mut Context, message: Message| {
//!     Ok(ctx.send_egress("example/out", message)?)
//! })?;
//!
//! let mut runtime = LocalRuntime::v3(functions)?;
//! for _ in 0..3 {
//!     runtime.send("example/counter", "alice", &"ping".to_string())?;
//! }
//! runtime.run()?;
//! assert_eq!(runtime.get("example/counter", "alice", &SEEN)?, Some(3));
//!
//! runtime.advance(Duration::from_secs(1800))?;
//! assert_eq!(runtime.egress_values::<i64>("example/out")?, [3]);
//! runtime.advance(Duration::from_secs(86_400))?; // a day without a call: expired
//! assert_eq!(runtime.get("example/counter", "alice", &SEEN)?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod egress;
mod http_client;
mod local;
pub mod v2;
pub mod v3;

pub use egress::{read_kafka_record_v2, read_kinesis_record_v2, KafkaRecord, KinesisRecord};
#[cfg(feature = "tls")]
pub use http_client::ClientTls;
pub use http_client::{RemoteError, RemoteOptions};
pub use local::{BatchRecord, Envelope, LocalRuntime, RuntimeError};

pub(crate) use v2::invocation_result;

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use prost::{Message, Name};
use prost_types::Any;

use crate::address::Address;
use crate::error::Error;
use crate::message::{type_of, unencodable, unpack, Payload, UnpackError, Value};
use crate::text::Shown;
use crate::types::{DecodeError, Type};

/// What a reply does to one state.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    /// `MODIFY`: the state's new value (on 3.x, its typename as the type URL).
    Modified(Any),
    /// `DELETE`.
    Deleted,
}

/// A message sent to a function.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The receiving function instance.
    pub target: Address,
    /// The message (on 3.x, its typename as the type URL).
    pub argument: Any,
    /// Whether the message has a value: `false` for a 3.x `TypedValue` with `has_value`
    /// false (then `argument` has no bytes); always `true` on 2.2.
    pub has_value: bool,
}

/// A message sent to a function after a delay.
#[derive(Debug, Clone, PartialEq)]
pub struct SentAfter {
    /// The delay, in whole milliseconds as on the wire (a negative one reads as zero).
    pub delay: Duration,
    /// The receiving function instance.
    pub target: Address,
    /// The message (on 3.x, its typename as the type URL).
    pub argument: Any,
    /// Whether the message has a value, as [`Sent::has_value`].
    pub has_value: bool,
}

/// A message sent to an egress.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// The egress, `namespace/name`.
    pub egress: String,
    /// The message (on 3.x, its typename as the type URL).
    pub argument: Any,
    /// Whether the message has a value, as [`Sent::has_value`].
    pub has_value: bool,
}

/// Why a value could not be read as a [`Type`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The value has another typename than the type asked for.
    WrongType {
        /// The typename of the type asked for.
        expected: String,
        /// The value's typename.
        actual: String,
    },
    /// The message carries a typename and no value (3.x).
    NoValue {
        /// The message's typename.
        typename: String,
    },
    /// The value has the typename asked for, but its bytes do not decode.
    Malformed {
        /// The value's typename.
        typename: String,
        /// What the type's decoder said.
        source: DecodeError,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::WrongType { expected, actual } => write!(
                f,
                "expected a value of type {}, found one of type {}",
                Shown(expected),
                Shown(actual)
            ),
            ReadError::NoValue { typename } => {
                write!(f, "a message of type {} has no value", Shown(typename))
            }
            ReadError::Malformed { typename, .. } => {
                write!(f, "a value of type {} does not decode", Shown(typename))
            }
        }
    }
}

impl StdError for ReadError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ReadError::WrongType { .. } | ReadError::NoValue { .. } => None,
            ReadError::Malformed { source, .. } => Some(source.as_ref()),
        }
    }
}

/// Reads `value` (a typename as its type URL, and bytes) as a `T`: the one typed reader
/// of the testing kit.
pub(crate) fn read<T: Type>(value: &Any) -> Result<T, ReadError> {
    let expected = T::type_name();
    if !expected.is(&value.type_url) {
        return Err(ReadError::WrongType {
            expected: expected.to_string(),
            actual: value.type_url.clone(),
        });
    }
    T::decode_value(&value.value).map_err(|source| ReadError::Malformed {
        typename: value.type_url.clone(),
        source,
    })
}

/// A value a [`Context`](crate::Context) could send (an `Any` as it is, `&T` for any
/// [`Type`], ...) as an `Any` whose type URL is its typename, and whether it has a value
/// (a 3.x value can be a typename alone).
///
/// # Errors
///
/// [`Error::UnencodableValue`] for `destination` (e.g. ``state `seen` ``) when the
/// value's type cannot encode it.
pub(crate) fn to_any<V: Value>(
    value: V,
    destination: impl FnOnce() -> String,
) -> Result<(Any, bool), Error> {
    let payload = value.payload();
    let mut bytes = Vec::new();
    match payload.put_value(&mut bytes) {
        Ok(()) => Ok((
            Any {
                type_url: type_of(&payload),
                value: bytes,
            },
            payload.value_len_hint().is_some(),
        )),
        Err(source) => Err(unencodable(&payload, destination, source)),
    }
}

/// As [`to_any`], for the request builders, which panic on a value that cannot be
/// encoded: a test's own values are the test's to fix.
#[track_caller]
pub(crate) fn to_any_or_panic<V: Value>(
    value: V,
    destination: impl FnOnce() -> String,
) -> (Any, bool) {
    to_any(value, destination).unwrap_or_else(|error| panic!("{}", error.report()))
}

/// A delay on the wire, in milliseconds, as a `Duration` (a negative one is zero).
pub(crate) fn delay_of(millis: i64) -> Duration {
    Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// An egress's `namespace/name`.
pub(crate) fn egress_name(namespace: String, name: String) -> String {
    format!("{namespace}/{name}")
}

/// What every version's reply carries alike, found by state name, target or egress: the
/// one place the readers of both versions look things up.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Effects {
    pub(crate) state_changes: Vec<(String, StateChange)>,
    pub(crate) messages: Vec<Sent>,
    pub(crate) egresses: Vec<Emitted>,
}

impl Effects {
    pub(crate) fn state_change(&self, name: &str) -> Option<&StateChange> {
        self.state_changes
            .iter()
            .find_map(|(n, change)| (n == name).then_some(change))
    }

    pub(crate) fn modified(&self, name: &str) -> Option<&Any> {
        match self.state_change(name) {
            Some(StateChange::Modified(any)) => Some(any),
            _ => None,
        }
    }

    pub(crate) fn deleted(&self, name: &str) -> bool {
        self.state_change(name) == Some(&StateChange::Deleted)
    }

    pub(crate) fn messages_to<'a>(&'a self, target: &'a Address) -> impl Iterator<Item = &'a Sent> {
        self.messages.iter().filter(move |m| m.target == *target)
    }

    pub(crate) fn egresses_to<'a>(&'a self, egress: &'a str) -> impl Iterator<Item = &'a Emitted> {
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

    /// The new value read as a `T`, or `None` for a `DELETE`.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the new value has another typename than `T`'s, or does not decode.
    pub fn get<T: Type>(&self) -> Result<Option<T>, ReadError> {
        match self {
            StateChange::Modified(any) => read(any).map(Some),
            StateChange::Deleted => Ok(None),
        }
    }
}

/// The typed accessors of a message with an `argument`: its typename, its bytes, and the
/// value read as a [`Type`] or unpacked as a protobuf message.
macro_rules! argument_accessors {
    ($($message:ty),+) => {$(
        impl $message {
            /// The message's typename (on 2.2, its `Any`'s type URL).
            pub fn typename(&self) -> &str {
                &self.argument.type_url
            }

            /// The message's bytes, as its type encodes them (none when it has no
            /// value).
            pub fn bytes(&self) -> &[u8] {
                &self.argument.value
            }

            /// The message read as a `T`, e.g. `get::<String>()` or `get::<MyMessage>()`
            /// for a [`protobuf_type!`](crate::protobuf_type).
            ///
            /// # Errors
            ///
            /// [`ReadError`] if the message has another typename than `T`'s, no value
            /// ([`ReadError::NoValue`]), or bytes that do not decode as a `T`.
            pub fn get<T: Type>(&self) -> Result<T, ReadError> {
                if !self.has_value {
                    return Err(ReadError::NoValue {
                        typename: self.argument.type_url.clone(),
                    });
                }
                read(&self.argument)
            }

            /// The message unpacked into `M`.
            ///
            /// # Errors
            ///
            /// [`UnpackError`] if it holds another message type, or does not decode.
            pub fn unpack<M: Message + Name + Default>(&self) -> Result<M, UnpackError> {
                unpack(&self.argument)
            }
        }
    )+};
}

argument_accessors!(Sent, SentAfter, Emitted, Envelope);

impl Emitted {
    /// The 2.2 Kafka record the message carries, its value decoded as `M` (see
    /// [`read_kafka_record_v2`]). A 3.x record reads with
    /// [`get`](Self::get)`::<`[`proto::egress::KafkaProducerRecord`](crate::proto::egress::KafkaProducerRecord)`>()`.
    ///
    /// # Errors
    ///
    /// [`UnpackError`] if it is no Kafka record, or the record or its value does not
    /// decode.
    pub fn kafka_record_v2<M: Message + Name + Default>(
        &self,
    ) -> Result<KafkaRecord<M>, UnpackError> {
        read_kafka_record_v2(&self.argument)
    }

    /// The 2.2 Kinesis record the message carries, its value decoded as `M` (see
    /// [`read_kinesis_record_v2`]). A 3.x record reads with
    /// [`get`](Self::get)`::<`[`proto::egress::KinesisEgressRecord`](crate::proto::egress::KinesisEgressRecord)`>()`.
    ///
    /// # Errors
    ///
    /// [`UnpackError`] if it is no Kinesis record, or the record or its value does not
    /// decode.
    pub fn kinesis_record_v2<M: Message + Name + Default>(
        &self,
    ) -> Result<KinesisRecord<M>, UnpackError> {
        read_kinesis_record_v2(&self.argument)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_reads_name_both_typenames_or_the_decoding_failure() {
        let (five, _) = to_any(&5i32, String::new).unwrap();
        assert_eq!(five.type_url, "io.statefun.types/int");
        assert_eq!(five.value, [0x0d, 5, 0, 0, 0]);
        assert_eq!(read::<i32>(&five).unwrap(), 5);

        let err = read::<i64>(&five).unwrap_err();
        assert!(
            matches!(&err, ReadError::WrongType { expected, actual }
                if expected == "io.statefun.types/long" && actual == "io.statefun.types/int"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "expected a value of type `io.statefun.types/long`, found one of type \
             `io.statefun.types/int`"
        );

        let truncated = Any {
            type_url: "io.statefun.types/int".into(),
            value: vec![0x0d, 5],
        };
        let err = read::<i32>(&truncated).unwrap_err();
        assert!(matches!(err, ReadError::Malformed { .. }), "{err:?}");
        assert!(StdError::source(&err).is_some());
    }

    #[test]
    fn negative_delays_read_as_zero() {
        assert_eq!(delay_of(-5), Duration::ZERO);
        assert_eq!(delay_of(1500), Duration::from_millis(1500));
    }
}
