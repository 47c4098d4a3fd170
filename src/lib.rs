#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

// First: the macros that the docs of later modules use for links behind a feature.
#[macro_use]
mod doc_links;

mod address;
mod context;
mod egress;
mod error;
pub mod guide;
mod handler;
pub mod http;
mod message;
#[cfg(feature = "metrics")]
pub mod metrics;
mod module_yaml;
pub mod proto;
mod protocol;
mod registry;
mod state_spec;
#[cfg(feature = "testing")]
pub mod testing;
mod text;
pub mod types;
mod value_spec;
mod wire;

pub use address::{Address, FunctionType, InvalidTypename};
pub use context::Context;
pub use egress::{
    kafka_record_v2, kafka_record_v3, kinesis_record_v2, kinesis_record_v3, RecordValue,
};
pub use error::Error;
pub use handler::RequestReplyHandler;
#[cfg(feature = "server")]
pub use http::server::{serve, serve_at};
pub use message::{pack, unpack, FromAny, Message, RawValue, UnpackError, Value};
pub use module_yaml::{
    DeliverySemantic, KafkaEgress, KafkaIngress, ModuleYamlV2, ModuleYamlV3, StartupPosition,
    Transport,
};
pub use protocol::ProtocolVersion;
pub use registry::{Binding, StatefulFunctions};
pub use state_spec::{DeclaredState, Expiration, StateSpec};
pub use value_spec::ValueSpec;

/// The prost version this crate's generated types and traits come from: name it as
/// `statefun_sync::prost` to be sure your messages implement the same [`prost::Message`]
/// and [`prost::Name`].
pub use prost;
/// The `prost-types` version of the `Any` that [`Context`] sends and receives.
pub use prost_types;

/// What `message_union!` expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use prost::DecodeError;
    pub use prost_types::Any;
}
