//! Apache Flink Stateful Functions remote functions, served synchronously.
//!
//! A remote function lives in its own process; the Flink runtime calls it over HTTP with
//! a batch of messages for one address plus that address's state, and applies the reply:
//! the state changes and the messages to send. [`RequestReplyHandler::handle`] is that
//! call: one request body in, one reply body out. It does no I/O and needs no async
//! runtime, so it runs in a unit test, behind any blocking HTTP server, or in the crate's
//! own. This crate speaks the Stateful Functions **2.2** protocol, with the semantics of
//! the 2.2 Python SDK.
//!
//! ```
//! use prost_types::Any;
//! use statefun_sync::testing::{Reply, Request};
//! use statefun_sync::{Address, Context, RequestReplyHandler, StatefulFunctions};
//!
//! /// Counts the messages each instance has seen, and tells the caller.
//! fn greet(ctx: &mut Context, _message: Any) -> anyhow::Result<()> {
//!     // A well-known type stands in for your own generated message types.
//!     let seen = ctx.unpack_state::<prost_types::Duration>("seen")?.unwrap_or_default();
//!     let seen = prost_types::Duration { seconds: seen.seconds + 1, nanos: 0 };
//!     ctx.pack_and_set_state("seen", &seen)?;
//!     ctx.pack_and_reply(&seen)?;
//!     Ok(())
//! }
//!
//! let mut functions = StatefulFunctions::new();
//! functions.bind("example/greeter", greet)?.state("seen");
//! let handler = RequestReplyHandler::new(functions);
//!
//! // What the runtime would send: a batch of two messages for `example/greeter/alice`.
//! let caller = Address::new("example", "caller", "c1");
//! let request = Request::to("example/greeter", "alice")
//!     .with_state("seen", None)
//!     .invoke_from(caller.clone(), Any::default())
//!     .invoke_from(caller.clone(), Any::default())
//!     .to_bytes();
//!
//! let reply = Reply::decode(&handler.handle(&request)?)?;
//! assert_eq!(reply.messages().len(), 2);
//! assert_eq!(reply.messages()[1].target, caller);
//! let seen: prost_types::Duration = reply.modified("seen").unwrap().to_msg()?;
//! assert_eq!(seen.seconds, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`StatefulFunctions`] binds functions to function types (`namespace/name`), taking
//!   each message as an `Any`, as one message type, or as one of several
//!   ([`message_union!`]).
//! - [`Context`] is what a function sees and does: its address and caller, its states,
//!   and the messages it sends (to functions, after a delay, to egresses).
//! - [`RequestReplyHandler`] runs a batch; [`Error`] says what went wrong and which HTTP
//!   status that is.
//! - [`testing`] builds requests and reads replies for unit tests, and runs a whole app
//!   on a [`LocalRuntime`](testing::LocalRuntime): state, messages, timers and egresses,
//!   with no cluster.
//! - [`proto`] holds the generated protocol types.
//! - [`serve`] puts a handler behind the crate's own blocking HTTP server; [`http`] has
//!   its settings, and the rules to host a handler in any other server.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod address;
mod context;
mod egress;
mod error;
mod handler;
pub mod http;
mod message;
mod module_yaml;
pub mod proto;
mod protocol;
mod registry;
pub mod testing;

pub use address::{Address, FunctionType};
pub use context::Context;
pub use egress::{kafka_egress_record, kinesis_egress_record};
pub use error::Error;
pub use handler::RequestReplyHandler;
pub use http::serve;
#[cfg(feature = "tiny-http")]
pub use http::tiny_http_adapter;
pub use message::{pack, unpack, FromAny, UnpackError};
pub use module_yaml::ModuleYaml;
pub use registry::{Binding, Expiration, StateSpec, StatefulFunctions};

/// The prost version this crate's generated types and traits come from: name it as
/// `statefun_sync::prost` to be sure your messages implement the same [`prost::Message`]
/// and [`prost::Name`].
pub use prost;
/// The `prost-types` version of the `Any` that [`Context`] sends and receives.
pub use prost_types;

/// The README's Rust blocks, compiled and run as doctests so that it cannot show code that
/// does not build.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// What `message_union!` expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use prost::DecodeError;
    pub use prost_types::Any;
}
