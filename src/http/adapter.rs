//! The server-neutral adapter: the HTTP rules, with plain data in and out.

use std::io::{self, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use log::{debug, error, log_enabled, warn, Level};

use crate::error::Shown;
use crate::handler::RequestReplyHandler;

/// The content type of every request and reply body of the protocol.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The content type of error bodies.
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Error bodies are cut to this many bytes, so an error never answers with megabytes.
const MAX_ERROR_BODY: usize = 1024;

/// The default request path, as in the Python SDK's examples and `module.yaml` files.
pub const DEFAULT_PATH: &str = "/statefun";

/// The default limit on a request body: 32 MiB. A batch of 1,000 messages of a few KiB
/// each, with its state, fits comfortably.
pub const DEFAULT_MAX_BODY_SIZE: usize = 32 * 1024 * 1024;

/// The HTTP rules of a Stateful Functions endpoint, for any blocking HTTP server: give it
/// the method, path, content type and body of a request, and send back the
/// [`Response`] it returns.
///
/// | request | status |
/// |---|---|
/// | `POST` to the path, a batch the handler answers | 200, `Content-Type: application/octet-stream`, the reply |
/// | a body that is not a batch, a state `module.yaml` does not declare, an argument of the wrong type | 400 |
/// | an unknown function type, or another path | 404 |
/// | another method on the path | 405, with `Allow: POST` |
/// | a body over [`with_max_body_size`](Self::with_max_body_size), or a batch over the handler's [`max_invocations`](crate::RequestReplyHandler::max_invocations) or [`max_states`](crate::RequestReplyHandler::max_states) | 413 |
/// | a `Content-Type` other than `application/octet-stream` (case and parameters are ignored; a request without one is accepted, as the body's meaning does not depend on it) | 415 |
/// | a function that failed or panicked | 500 |
///
/// Handler errors take their status from [`Error::status`](crate::Error::status): the
/// runtime retries 5xx answers and fails the job at once on other 4xx ones. Error bodies
/// are `text/plain`, at most 1 KiB, and name what was wrong (request text in them is
/// escaped and shortened, never echoed raw). Every error is logged as one line through
/// [`log`] (level `error` for 5xx, `warn` for 4xx) with the function type and address
/// when the request names them; each request's timing is logged at level `debug`.
///
/// ```
/// use statefun_sync::http::{Endpoint, RequestHead};
/// use statefun_sync::testing::{Reply, Request};
/// use statefun_sync::{RequestReplyHandler, StatefulFunctions};
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind("example/echo", |_, _| Ok(()))?;
/// let handler = RequestReplyHandler::new(functions);
/// let endpoint = Endpoint::new();
///
/// // What a server hands over: the request line, one header and the body.
/// let body = Request::to("example/echo", "1").invoke(Default::default()).to_bytes();
/// let head = RequestHead::new("POST", "/statefun").content_type("application/octet-stream");
/// let response = endpoint.respond(&handler, &head, &body[..]);
///
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.content_type(), "application/octet-stream");
/// Reply::decode(response.body())?;
///
/// let get = endpoint.respond(&handler, &RequestHead::new("GET", "/statefun"), &b""[..]);
/// assert_eq!(get.status(), 405);
/// assert_eq!(get.headers(), &[("Allow", "POST")]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Endpoint {
    path: String,
    max_body_size: usize,
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint {
            path: DEFAULT_PATH.to_owned(),
            max_body_size: DEFAULT_MAX_BODY_SIZE,
        }
    }
}

/// What the adapter needs from a request's head: the method, the path (the request
/// target; a query string is ignored), the `Content-Type` header and, when the server
/// knows it, the body's length.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    method: &'a str,
    target: &'a str,
    content_type: Option<&'a str>,
    content_length: Option<u64>,
}

impl<'a> RequestHead<'a> {
    /// A request with `method` (e.g. `POST`) for `target` (e.g. `/statefun`, or
    /// `/statefun?x=1`), without a content type or a known length.
    pub fn new(method: &'a str, target: &'a str) -> Self {
        RequestHead {
            method,
            target,
            content_type: None,
            content_length: None,
        }
    }

    /// Sets the value of the `Content-Type` header.
    pub fn content_type(mut self, content_type: &'a str) -> Self {
        self.content_type = Some(content_type);
        self
    }

    /// Sets the body's length, from `Content-Length`: a body declared longer than the
    /// limit is refused with 413 before any of it is read.
    pub fn content_length(mut self, length: u64) -> Self {
        self.content_length = Some(length);
        self
    }

    /// The path: the request target without its query string, and without the scheme
    /// and authority of an absolute-form target (`http://host:8000/statefun`).
    fn path(&self) -> &'a str {
        let mut target = self.target;
        for scheme in ["http://", "https://"] {
            // Compared as bytes: slicing the `str` at the scheme's length could cut a
            // multi-byte character in two (and panic). The scheme is ASCII, so once it
            // matches, the cut after it is a character boundary.
            let prefix = target.as_bytes().get(..scheme.len());
            if prefix.is_some_and(|p| p.eq_ignore_ascii_case(scheme.as_bytes())) {
                let rest = &target[scheme.len()..];
                target = rest.find('/').map_or("/", |at| &rest[at..]);
                break;
            }
        }
        target.split(['?', '#']).next().unwrap_or("")
    }
}

/// What to send back: a status, a content type, extra headers and a body.
///
/// The server adds the framing (`Content-Length`, `Connection`); everything else the
/// runtime needs is here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    content_type: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
}

impl Response {
    /// The reply to a batch: 200, `application/octet-stream`.
    fn reply(body: Vec<u8>) -> Self {
        Response {
            status: 200,
            content_type: OCTET_STREAM,
            headers: &[],
            body,
        }
    }

    /// An error: `text/plain`, the status line's reason and `message`, cut to 1 KiB.
    pub(crate) fn error(status: u16, message: &str) -> Self {
        let mut body = format!("{status} {}: ", reason_phrase(status));
        body.push_str(message);
        if body.len() > MAX_ERROR_BODY - 1 {
            let mut cut = MAX_ERROR_BODY - 4;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
            body.push_str("...");
        }
        body.push('\n');
        Response {
            status,
            content_type: TEXT_PLAIN,
            headers: &[],
            body: body.into_bytes(),
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The status line's reason phrase, e.g. `Not Found`.
    pub fn reason(&self) -> &'static str {
        reason_phrase(self.status)
    }

    /// The value of the `Content-Type` header: exactly `application/octet-stream` for a
    /// reply, `text/plain; charset=utf-8` for an error.
    pub fn content_type(&self) -> &'static str {
        self.content_type
    }

    /// Headers to send besides `Content-Type` and the framing: `Allow: POST` with a 405.
    pub fn headers(&self) -> &'static [(&'static str, &'static str)] {
        self.headers
    }

    /// The body: the serialized `FromFunction`, or the error's text.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body, taken out.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Endpoint {
    /// The rules with their defaults: path `/statefun`, bodies up to 32 MiB.
    pub fn new() -> Self {
        Endpoint::default()
    }

    /// Serves the handler at `path` (default `/statefun`) instead; it should start with
    /// `/`. Requests for any other path get 404.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Refuses request bodies longer than `bytes` (default 32 MiB) with 413.
    pub fn with_max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// The path served.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The body limit, in bytes.
    pub fn max_body_size(&self) -> usize {
        self.max_body_size
    }

    /// Answers one request: checks its head, reads at most
    /// [`with_max_body_size`](Self::with_max_body_size) + 1 bytes of `body`, and runs the handler.
    ///
    /// Never fails and never panics: every problem, including an I/O error while reading
    /// `body` and a panic in a function, becomes an error [`Response`] with the status in
    /// the table above (an unreadable body is a 400).
    pub fn respond(
        &self,
        handler: &RequestReplyHandler,
        head: &RequestHead<'_>,
        body: impl Read,
    ) -> Response {
        let started = Instant::now();
        if let Some(refusal) = self.check_head(head) {
            return refusal;
        }
        let body = match self.read_body(body) {
            Ok(body) => body,
            Err(response) => return response,
        };
        self.finish(handler, head, &body, started)
    }

    /// As [`respond`](Self::respond), for a body already in memory (its length is
    /// checked against the limit).
    pub fn respond_bytes(
        &self,
        handler: &RequestReplyHandler,
        head: &RequestHead<'_>,
        body: &[u8],
    ) -> Response {
        let started = Instant::now();
        let head = head.content_length(body.len() as u64);
        if let Some(refusal) = self.check_head(&head) {
            return refusal;
        }
        self.finish(handler, &head, body, started)
    }

    /// The checks that need no body: path (404), method (405), content type (415) and a
    /// declared length over the limit (413). `None` when the request may go on; a server
    /// that reads the body itself calls this first, so it can refuse before reading
    /// (and answer `Expect: 100-continue` only when it will read).
    pub fn check_head(&self, head: &RequestHead<'_>) -> Option<Response> {
        let path = head.path();
        let refusal = if path != self.path {
            Response::error(
                404,
                &format!(
                    "no function endpoint at {} (the functions are served at {})",
                    Shown(path),
                    Shown(&self.path)
                ),
            )
        } else if !head.method.eq_ignore_ascii_case("POST") {
            Response {
                headers: &[("Allow", "POST")],
                ..Response::error(
                    405,
                    &format!(
                        "method {} is not allowed here: use POST",
                        Shown(head.method)
                    ),
                )
            }
        } else if let Some(content_type) = head.content_type.filter(|c| !is_octet_stream(c)) {
            Response::error(
                415,
                &format!(
                    "content type {} is not accepted: send application/octet-stream",
                    Shown(content_type)
                ),
            )
        } else if let Some(length) = head
            .content_length
            .filter(|&n| n > self.max_body_size as u64)
        {
            self.too_large(&format!("{length} bytes"))
        } else {
            return None;
        };
        warn!(
            "{} {}: {}",
            Shown(head.method),
            Shown(path),
            error_text(&refusal)
        );
        Some(refusal)
    }

    /// The 413 for a body of `size` (e.g. `40000000 bytes`, `more than 1024 bytes`).
    pub(crate) fn too_large(&self, size: &str) -> Response {
        Response::error(
            413,
            &format!(
                "the request body ({size}) is over the limit of {} bytes",
                self.max_body_size
            ),
        )
    }

    /// Reads the body, at most the limit + 1 bytes of it.
    fn read_body(&self, body: impl Read) -> Result<Vec<u8>, Response> {
        let mut bytes = Vec::new();
        let limit = self.max_body_size as u64;
        match body.take(limit.saturating_add(1)).read_to_end(&mut bytes) {
            Ok(_) if bytes.len() as u64 > limit => {
                let refusal = self.too_large(&format!("more than {limit} bytes"));
                warn!("POST {}: {}", Shown(&self.path), error_text(&refusal));
                Err(refusal)
            }
            Ok(_) => Ok(bytes),
            Err(err) => {
                let refusal = body_error(&err);
                warn!("POST {}: {}", Shown(&self.path), error_text(&refusal));
                Err(refusal)
            }
        }
    }

    /// Runs the handler on a complete body, which the server has checked against
    /// [`check_head`](Self::check_head) and the limit. Never panics: a panic anywhere in
    /// the handler is a 500.
    pub fn handle_body(&self, handler: &RequestReplyHandler, body: &[u8]) -> Response {
        self.finish(
            handler,
            &RequestHead::new("POST", &self.path),
            body,
            Instant::now(),
        )
    }

    fn finish(
        &self,
        handler: &RequestReplyHandler,
        head: &RequestHead<'_>,
        body: &[u8],
        started: Instant,
    ) -> Response {
        // AssertUnwindSafe: the handler is immutable (functions are `Fn + Sync`), so a
        // panic cannot leave it half-updated; the core catches function panics itself and
        // this only guards against a bug elsewhere taking a server thread down.
        let outcome = catch_unwind(AssertUnwindSafe(|| handler.handle(body)));
        let response = match outcome {
            Ok(Ok(reply)) => Response::reply(reply),
            Ok(Err(err)) => {
                let status = err.status();
                let chain = err.report();
                let target = Target::of(body);
                let level = if status >= 500 {
                    Level::Error
                } else {
                    Level::Warn
                };
                log::log!(
                    level,
                    "POST {} {status} for function type {}, address {}: {chain}",
                    Shown(head.path()),
                    target.function_type(),
                    target.address()
                );
                Response::error(status, &chain)
            }
            Err(_) => {
                let target = Target::of(body);
                error!(
                    "POST {} 500 for function type {}, address {}: the handler panicked",
                    Shown(head.path()),
                    target.function_type(),
                    target.address()
                );
                Response::error(500, "the handler panicked")
            }
        };
        if log_enabled!(Level::Debug) {
            let target = Target::of(body);
            debug!(
                "POST {} {} {}: {} bytes in, {} bytes out, {:?}",
                Shown(head.path()),
                target.address(),
                response.status,
                body.len(),
                response.body.len(),
                started.elapsed()
            );
        }
        response
    }
}

/// The 400 for a body that could not be read (a timeout, a connection reset, bad
/// chunked framing).
pub(crate) fn body_error(err: &io::Error) -> Response {
    Response::error(400, &format!("cannot read the request body: {err}"))
}

fn error_text(response: &Response) -> String {
    String::from_utf8_lossy(&response.body)
        .trim_end()
        .to_owned()
}

/// Whether a `Content-Type` value is `application/octet-stream`, ignoring case,
/// whitespace and parameters.
fn is_octet_stream(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    media_type.is_empty() || media_type.eq_ignore_ascii_case(OCTET_STREAM)
}

/// The reason phrase for the statuses this crate sends.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The target address of a request, decoded for a log line without the rest of the
/// batch: prost skips the states and invocations.
#[derive(Clone, PartialEq, prost::Message)]
struct TargetOnly {
    #[prost(message, optional, tag = "100")]
    invocation: Option<BatchTarget>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BatchTarget {
    #[prost(message, optional, tag = "1")]
    target: Option<crate::proto::Address>,
}

struct Target(Option<crate::proto::Address>);

impl Target {
    fn of(body: &[u8]) -> Target {
        Target(
            <TargetOnly as prost::Message>::decode(body)
                .ok()
                .and_then(|t| t.invocation)
                .and_then(|b| b.target),
        )
    }

    fn function_type(&self) -> String {
        match &self.0 {
            Some(a) => Shown(&format!("{}/{}", a.namespace, a.r#type)).to_string(),
            None => "(unknown)".to_owned(),
        }
    }

    fn address(&self) -> String {
        match &self.0 {
            Some(a) => Shown(&format!("{}/{}/{}", a.namespace, a.r#type, a.id)).to_string(),
            None => "(unknown)".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_drop_the_query_and_an_absolute_form_prefix() {
        let cases = [
            ("/statefun", "/statefun"),
            ("/statefun?x=1", "/statefun"),
            ("http://host:8000/statefun", "/statefun"),
            ("HTTPS://host/statefun#f", "/statefun"),
            ("http://host", "/"),
            ("abcdefgh\u{4bb}", "abcdefgh\u{4bb}"),
            ("/state\u{e9}", "/state\u{e9}"),
            ("http:/\u{e9}", "http:/\u{e9}"),
        ];
        for (target, expected) in cases {
            assert_eq!(
                RequestHead::new("POST", target).path(),
                expected,
                "{target:?}"
            );
        }
    }

    #[test]
    fn content_types_are_compared_without_parameters_or_case() {
        let cases = [
            ("application/octet-stream", true),
            ("Application/Octet-Stream", true),
            (" application/octet-stream ; charset=binary", true),
            ("", true),
            ("application/json", false),
            ("application/octet-streamx", false),
            ("text/plain; application/octet-stream", false),
        ];
        for (content_type, expected) in cases {
            assert_eq!(is_octet_stream(content_type), expected, "{content_type:?}");
        }
    }

    #[test]
    fn error_bodies_are_cut_to_one_kib() {
        let response = Response::error(400, &"é".repeat(5000));
        assert!(
            response.body.len() <= MAX_ERROR_BODY,
            "{}",
            response.body.len()
        );
        assert!(std::str::from_utf8(&response.body).is_ok());
        assert!(response.body.starts_with(b"400 Bad Request: "));
    }

    #[test]
    fn the_query_string_is_not_part_of_the_path() {
        assert_eq!(
            RequestHead::new("POST", "/statefun?a=b").path(),
            "/statefun"
        );
        assert_eq!(RequestHead::new("POST", "/statefun").path(), "/statefun");
        assert_eq!(
            RequestHead::new("POST", "http://functions:8000/statefun?x").path(),
            "/statefun"
        );
        assert_eq!(RequestHead::new("POST", "HTTP://functions").path(), "/");
    }
}
