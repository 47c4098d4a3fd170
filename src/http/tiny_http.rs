//! Answers `tiny_http` requests with a handler, for services that already run tiny_http
//! (feature `tiny-http`, on by default).
//!
//! ```no_run
//! use statefun_sync::http::tiny_http as adapter;
//! use statefun_sync::{RequestReplyHandler, StatefulFunctions};
//!
//! let mut functions = StatefulFunctions::new();
//! functions.bind("example/greeter", |ctx, message| Ok(ctx.reply(message)?))?;
//! let handler = RequestReplyHandler::v2(functions);
//!
//! let server = tiny_http::Server::http("127.0.0.1:8000")?;
//! for request in server.incoming_requests() {
//!     adapter::answer(&handler, request)?;
//! }
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```
//!
//! # Not for the runtime's connection bursts
//!
//! tiny_http 0.12 hands each accepted connection to its internal task pool, and a
//! connection holds a pool thread for its whole life. The runtime keeps up to 1,024
//! keep-alive connections per task manager and opens them in bursts: when a burst
//! arrives while k pool threads are idle, tiny_http queues every new connection behind
//! those k threads, and the queued ones get no answer until another connection closes.
//! `tests/http_measure.rs` measures such bursts against the adapter and against
//! [`serve`], which answers them all; the figures are in the repository's
//! `BENCHMARKS.md`. The runtime's read timeout (10 s) then fails and retries the calls
//! left unanswered.
//!
//! tiny_http 0.12 also refuses a chunked body with chunk extensions or trailer fields
//! (the adapter answers 400); the runtime sends neither. And it has no read timeout: a
//! client that announces a body and sends it slowly, or not at all, holds a tiny_http
//! thread until it gives up (even a 413 waits for the announced body), where `serve()`
//! answers 408 after its read timeout.
//!
//! So a service whose function endpoint the runtime calls directly should use
//! [`serve`] (or [`Server`]), which gives every
//! connection its own thread. This adapter suits a service that already runs tiny_http
//! and sees few connections, or sits behind a proxy that bounds them.
#![doc = feature_links!()]

use std::io;

use ::tiny_http::{Header, Request, Response as TinyResponse};

use ::http::header;

use super::endpoint::title_case;
use super::{Endpoint, RequestHead};
use crate::handler::RequestReplyHandler;

/// Answers `request` with `handler`, with the default [`Endpoint`] (path `/statefun`,
/// bodies up to 32 MiB): reads the body, runs the batch and sends the reply, or the
/// error status the [`Endpoint`] table gives.
///
/// # Errors
///
/// The I/O error if the response cannot be written (the client went away). Every problem
/// of the request itself is answered with its status, not returned.
pub fn answer(handler: &RequestReplyHandler, request: Request) -> io::Result<()> {
    answer_with(&Endpoint::new(), handler, request)
}

/// As [`answer`], with the rules of `endpoint` (its path and body limit).
///
/// # Errors
///
/// As [`answer`].
pub fn answer_with(
    endpoint: &Endpoint,
    handler: &RequestReplyHandler,
    mut request: Request,
) -> io::Result<()> {
    let method = request.method().as_str().to_owned();
    let url = request.url().to_owned();
    let content_type = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Content-Type"))
        .map(|h| h.value.as_str().to_owned());
    let length = request.body_length();

    let mut head = RequestHead::new(&method, &url);
    if let Some(content_type) = &content_type {
        head = head.with_content_type(content_type);
    }
    if let Some(length) = length {
        head = head.with_content_length(length as u64);
    }
    let response = endpoint.respond(handler, &head, request.as_reader());

    let content_type = [(&header::CONTENT_TYPE, response.content_type())];
    let mut headers = Vec::new();
    for (name, value) in content_type.into_iter().chain(response.sendable_headers()) {
        let mut title = Vec::new();
        title_case(name, &mut title);
        // tiny_http takes ASCII values only; the crate's own (the content type, `Allow`)
        // are, and `Endpoint` answers with no others.
        if let Ok(header) = Header::from_bytes(title, value.as_bytes()) {
            headers.push(header);
        }
    }
    let status = response.status();
    let mut tiny = TinyResponse::from_data(response.into_body()).with_status_code(status);
    for header in headers {
        tiny.add_header(header);
    }
    request.respond(tiny)
}
