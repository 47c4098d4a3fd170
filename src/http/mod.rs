//! Serving a [`RequestReplyHandler`](crate::RequestReplyHandler) over HTTP, the way the
//! runtime calls remote functions: one `POST` per batch.
//!
//! - [`serve`] and [`Server`] (feature `server`, on by default): the crate's own
//!   blocking HTTP/1.1 server, the one to use in production, with room for a few routes
//!   of your own ([`ServerBuilder::route`]). No async runtime; see [`Server`] for how it
//!   serves and why.
//!   It listens on a TCP port or a Unix domain socket (`ServerBuilder::bind_unix`), and
//!   speaks TLS and mutual TLS with feature `tls` (`ServerBuilder::tls`, `TlsConfig`).
//! - [`Endpoint`]: the HTTP rules alone, plain data in and out, to host the handler in
//!   any other blocking server next to its own routes.
//! - [`tiny_http`][`http::tiny_http`] (feature `tiny-http`, on by default): one call answers a
//!   `tiny_http::Request`, for services that already run tiny_http.
//!
//! Every front answers the same way, by the guide's
//! [table of requests and statuses](crate::guide::serving#serving-over-http).
//! [`guide::serving`](crate::guide::serving) shows each front at work, and an async
//! server calling the handler.
#![doc = feature_links!()]

// HTTP/1.1 on a socket, shared by the crate's server and the testing kit's client.
#[cfg(any(feature = "server", feature = "testing"))]
pub(crate) mod codec;
pub(crate) mod endpoint;
#[cfg(feature = "server")]
pub(crate) mod server;
#[cfg(any(feature = "server", feature = "testing"))]
pub(crate) mod socket;
#[cfg(any(feature = "server", feature = "testing"))]
pub(crate) mod stream;
#[cfg(feature = "tiny-http")]
pub mod tiny_http;
#[cfg(feature = "tls")]
pub(crate) mod tls;

/// Header names and values for a [`Response`]: the [`http`](https://docs.rs/http/1)
/// crate's `header` module (`HeaderName`, `HeaderValue`, `HeaderMap` and constants such
/// as `RETRY_AFTER`), the types ureq, hyper and axum use.
#[doc(no_inline)]
pub use ::http::header;
pub use endpoint::{
    Endpoint, RequestHead, Response, DEFAULT_MAX_BODY_SIZE, DEFAULT_PATH, OCTET_STREAM,
};
#[cfg(feature = "server")]
pub use server::{BatchGrowth, BindAddr, ListenAddr, Server, ServerBuilder};
#[cfg(feature = "tls")]
pub use tls::TlsConfig;
