//! The server-neutral rules of a function endpoint, and the one place where an outcome
//! becomes an HTTP status and a reason phrase: [`Error::status`] for the handler's
//! errors, [`Refusal`] for what the codec, the server and the checks of a request head
//! refuse.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use ::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use log::{debug, error, log_enabled, warn, Level};

use crate::address::Address;
use crate::error::Error;
use crate::handler::RequestReplyHandler;
use crate::protocol::Refused;
use crate::text::{cut_with_ellipsis, Shown};

/// The content type of every request and reply body of the protocol.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The content type of error bodies and of [`Response::text`]. This and
/// [`octet_stream`] are functions, not `const`s, because a `HeaderValue` holds an
/// atomic (clippy warns of such a `const`); `HeaderValue::from_static` only wraps the
/// static bytes, so no response of the crate's allocates for its content type.
fn text_plain() -> HeaderValue {
    HeaderValue::from_static("text/plain; charset=utf-8")
}

/// [`OCTET_STREAM`], the content type of a reply, as a header value.
fn octet_stream() -> HeaderValue {
    HeaderValue::from_static(OCTET_STREAM)
}

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
/// Every front (the crate's [`Server`], the [`tiny_http`][`http::tiny_http`] adapter, your
/// own server through this type)
/// answers by the crate's one
/// [table of requests and statuses](crate::guide::serving#serving-over-http); a batch the
/// handler refuses takes the status of its error, from the
/// [table of errors](crate::guide::errors) ([`Error::status`]). The statuses
/// are decided in this module and nowhere else.
///
/// The runtime retries 5xx answers and fails the job at once on other 4xx ones. Error
/// bodies are `text/plain`, at most 1 KiB, and name what was wrong (request text in them
/// is escaped and shortened, never echoed raw). Every error is logged as one line
/// through [`log`] (level `error` for 5xx, `warn` for 4xx), a handler's error with the
/// function type and address it failed for; each answered batch as one line at level
/// `debug`, with its function type, id, invocations, states changed, sizes and time.
///
/// ```
/// use statefun_sync::http::{Endpoint, RequestHead};
/// use statefun_sync::testing::v2::{Reply, Request};
/// use statefun_sync::{RequestReplyHandler, StatefulFunctions};
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind("example/echo", |_, _| Ok(()))?;
/// let handler = RequestReplyHandler::v2(functions);
/// let endpoint = Endpoint::new();
///
/// // What a server hands over: the request line, one header and the body.
/// let body = Request::to("example/echo", "1").invoke(prost_types::Any::default()).to_bytes();
/// let head = RequestHead::new("POST", "/statefun").with_content_type("application/octet-stream");
/// let response = endpoint.respond(&handler, &head, &body[..]);
///
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.content_type(), "application/octet-stream");
/// Reply::decode(response.body())?;
///
/// let get = endpoint.respond(&handler, &RequestHead::new("GET", "/statefun"), &b""[..]);
/// assert_eq!(get.status(), 405);
/// assert_eq!(get.headers()["allow"], "POST");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc = feature_links!()]
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

impl Error {
    /// The HTTP status for this error.
    ///
    /// The 2.2 runtime retries 5xx answers until the function's timeout and fails the
    /// job at once on other 4xx, so the status is a decision: 4xx for what the request
    /// carries, which no retry fixes, 5xx for what might pass on a retry. Each error's
    /// status is in the guide's [table of errors](crate::guide::errors).
    ///
    /// A [`FunctionFailed`](Error::FunctionFailed) whose cause is one of the 400 errors
    /// (a function passed it up with `?` and its own `.context(...)`) is a 400 too. The
    /// statuses of the HTTP layer itself are in the guide's
    /// [table of requests and statuses](crate::guide::serving#serving-over-http).
    pub fn status(&self) -> u16 {
        match self {
            Error::MalformedRequest { .. }
            | Error::NoInvocation
            | Error::MissingDeclaredState { .. } => 400,
            error if error.is_caused_by_request_data() => 400,
            Error::UnknownFunctionType { .. } => 404,
            Error::TooManyInvocations { .. } | Error::TooManyStates { .. } => 413,
            Error::FunctionFailed { source, .. } => {
                let caused_by_data = source
                    .chain()
                    .filter_map(|cause| cause.downcast_ref::<Error>())
                    .any(Error::is_caused_by_request_data);
                if caused_by_data {
                    400
                } else {
                    500
                }
            }
            _ => 500,
        }
    }
}

/// What a request handler needs from a request's head: the method, the request target
/// (the path, with a query string if any), the `Content-Type` header and, when the
/// server knows it, the body's length.
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
    pub fn with_content_type(mut self, content_type: &'a str) -> Self {
        self.content_type = Some(content_type);
        self
    }

    /// Sets the body's length, from `Content-Length`: a body declared longer than the
    /// limit is refused with 413 before any of it is read.
    pub fn with_content_length(mut self, length: u64) -> Self {
        self.content_length = Some(length);
        self
    }

    /// The method, as sent (e.g. `POST`).
    #[inline]
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request target, as sent (e.g. `/statefun?x=1`).
    #[inline]
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The value of the `Content-Type` header, if there was one.
    #[inline]
    pub fn content_type(&self) -> Option<&'a str> {
        self.content_type
    }

    /// The body's declared length, if known.
    #[inline]
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The path: the request target without its query string, and without the scheme
    /// and authority of an absolute-form target (`http://host:8000/statefun`).
    pub fn path(&self) -> &'a str {
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
/// runtime needs is here. [`Endpoint`] makes them for the functions; [`Response::new`]
/// and [`Response::text`] make them for a route of your own
/// ([`ServerBuilder::route`]).
///
/// Header names and values are the [`http`](https://docs.rs/http) crate's
/// [`HeaderName`] and [`HeaderValue`] (re-exported as [`http::header`]), as in ureq,
/// hyper and axum: one that holds a line break or any other byte that HTTP forbids
/// cannot be made, so a value computed at run time (a `Location`, a `Retry-After`)
/// cannot split the response head. Making one from text is where that fails:
/// `HeaderValue::try_from(text)` returns an error.
#[doc = feature_links!()]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    content_type: HeaderValue,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Response {
    /// A response with `status`, `content_type` and `body`.
    ///
    /// `status` is a final status, 200 to 599; any other is sent as 500.
    ///
    /// ```
    /// use statefun_sync::http::header::HeaderValue;
    /// use statefun_sync::http::Response;
    ///
    /// let content_type = HeaderValue::from_static("text/plain; version=0.0.4");
    /// let metrics = Response::new(200, content_type, "requests_total 3\n");
    /// assert_eq!(metrics.status(), 200);
    /// assert_eq!(metrics.content_type(), "text/plain; version=0.0.4");
    /// assert_eq!(metrics.body(), b"requests_total 3\n");
    /// ```
    pub fn new(status: u16, content_type: HeaderValue, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status: if (200..600).contains(&status) {
                status
            } else {
                500
            },
            content_type,
            // `HeaderMap::new` does not allocate: a response without headers costs none.
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    /// A `text/plain; charset=utf-8` response, e.g. `Response::text(200, "ok\n")`.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Response::new(status, text_plain(), text.into())
    }

    /// Sends the header `name: value` too, after those added before; adding a name
    /// again sends it again (two `Allow` lines, say), as [`HeaderMap::append`] does.
    ///
    /// The server frames the response itself: a `Content-Type` (that is `new`'s),
    /// `Content-Length`, `Transfer-Encoding` or `Connection` header here is not sent.
    /// Names go out title-cased (`Retry-After`), whatever their case here: HTTP/1
    /// compares them without regard to case. The guide's
    /// [routes of your own](crate::guide::serving) compute a `Retry-After` and a
    /// `Location`.
    ///
    /// ```
    /// use statefun_sync::http::header::{self, HeaderValue};
    /// use statefun_sync::http::Response;
    ///
    /// let seconds: u64 = 30; // computed at run time
    /// let busy = Response::text(503, "busy, try again\n")
    ///     .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
    ///     .with_header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    /// assert_eq!(busy.headers()[header::RETRY_AFTER], "30");
    ///
    /// // A value from run-time text is checked where it is made: a line break cannot
    /// // smuggle a second header into the response.
    /// let job = "7\r\nSet-Cookie: admin=1";
    /// assert!(HeaderValue::try_from(format!("/jobs/{job}")).is_err());
    /// ```
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The reply to a batch: 200, `application/octet-stream`.
    fn reply(body: Vec<u8>) -> Self {
        Response::new(200, octet_stream(), body)
    }

    /// An error: `text/plain`, the status line's reason and `message`, cut to 1 KiB.
    fn error(status: u16, message: &str) -> Self {
        let mut body = format!("{status} {}: ", reason_phrase(status));
        body.push_str(message);
        cut_with_ellipsis(&mut body, MAX_ERROR_BODY - 1);
        body.push('\n');
        Response::text(status, body)
    }

    /// The status code.
    #[inline]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The status line's reason phrase, e.g. `Not Found`.
    #[inline]
    pub fn reason(&self) -> &'static str {
        reason_phrase(self.status)
    }

    /// The value of the `Content-Type` header: exactly `application/octet-stream` for a
    /// reply, `text/plain; charset=utf-8` for an error. It compares with a `&str`.
    #[inline]
    pub fn content_type(&self) -> &HeaderValue {
        &self.content_type
    }

    /// Headers to send besides `Content-Type` and the framing: `Allow` with a 405, and
    /// those a route added ([`with_header`](Self::with_header)).
    #[inline]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers a front sends besides `Content-Type` and the framing: those of
    /// [`headers`](Self::headers), in order, but for framing headers and values that
    /// fail [`is_sendable`]. Every front writes these and only these.
    // Written only by the fronts: the crate's server and the tiny_http adapter.
    #[cfg_attr(not(any(feature = "server", feature = "tiny-http")), allow(dead_code))]
    pub(crate) fn sendable_headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.headers.iter().filter(|(name, value)| {
            let framing = [
                header::CONTENT_TYPE,
                header::CONTENT_LENGTH,
                header::TRANSFER_ENCODING,
                header::CONNECTION,
            ];
            !framing.contains(name) && is_sendable(value)
        })
    }

    /// The body: the serialized `FromFunction`, or the error's text.
    #[inline]
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

/// Whether a header value may go out: no CR, LF or NUL to split the head with. Every
/// safe way of making a [`HeaderValue`] refuses those bytes already; only the `unsafe`
/// `HeaderValue::from_maybe_shared_unchecked`, whose safety contract asks for UTF-8
/// alone, can make one with a line break, and this keeps even that off the wire.
// Written only by the fronts: the crate's server and the tiny_http adapter.
#[cfg_attr(not(any(feature = "server", feature = "tiny-http")), allow(dead_code))]
#[inline]
pub(crate) fn is_sendable(value: &HeaderValue) -> bool {
    !value
        .as_bytes()
        .iter()
        .any(|&b| b == b'\r' || b == b'\n' || b == 0)
}

/// Appends a header name title-cased (`retry-after` as `Retry-After`): a
/// [`HeaderName`] keeps names in lower case, and the crate's own headers have always
/// gone out as `Content-Type` and `Allow`.
// Written only by the fronts: the crate's server and the tiny_http adapter.
#[cfg_attr(not(any(feature = "server", feature = "tiny-http")), allow(dead_code))]
pub(crate) fn title_case(name: &HeaderName, out: &mut Vec<u8>) {
    let mut word_start = true;
    for b in name.as_str().bytes() {
        out.push(if word_start {
            b.to_ascii_uppercase()
        } else {
            b
        });
        word_start = b == b'-';
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
    #[inline]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The body limit, in bytes.
    #[inline]
    pub fn max_body_size(&self) -> usize {
        self.max_body_size
    }

    /// Answers one request: checks its head, reads at most
    /// [`with_max_body_size`](Self::with_max_body_size) + 1 bytes of `body`, and runs the handler.
    ///
    /// Never fails and never panics: every problem, including an I/O error while reading
    /// `body` and a panic in a function, becomes an error [`Response`] with the status in
    /// the guide's [table](crate::guide::serving#serving-over-http) (an unreadable body is
    /// a 400).
    pub fn respond(
        &self,
        handler: &RequestReplyHandler,
        head: &RequestHead<'_>,
        body: impl Read,
    ) -> Response {
        let started = timer();
        if let Some(refusal) = self.check_head(head) {
            return refusal;
        }
        let body = match self.read_body(body) {
            Ok(body) => body,
            Err(response) => return response,
        };
        self.finish(handler, &body, started).0
    }

    /// As [`respond`](Self::respond), for a body already in memory (its length is
    /// checked against the limit).
    pub fn respond_bytes(
        &self,
        handler: &RequestReplyHandler,
        head: &RequestHead<'_>,
        body: &[u8],
    ) -> Response {
        let started = timer();
        let head = head.with_content_length(body.len() as u64);
        if let Some(refusal) = self.check_head(&head) {
            return refusal;
        }
        self.finish(handler, body, started).0
    }

    /// The checks that need no body: path (404), method (405), content type (415) and a
    /// declared length over the limit (413). `None` when the request may go on; a server
    /// that reads the body itself calls this first, so it can refuse before reading
    /// (and answer `Expect: 100-continue` only when it will read).
    pub fn check_head(&self, head: &RequestHead<'_>) -> Option<Response> {
        let path = head.path();
        let refusal = if path != self.path {
            Refusal::NoSuchPath {
                path: path.to_owned(),
                served: self.path.clone(),
            }
        } else if !head.method.eq_ignore_ascii_case("POST") {
            Refusal::MethodNotAllowed {
                method: head.method.to_owned(),
                allow: Cow::Borrowed(&["POST"]),
            }
        } else if let Some(content_type) = head.content_type.filter(|c| !is_octet_stream(c)) {
            Refusal::UnsupportedContentType(content_type.to_owned())
        } else {
            self.check_length(head)?
        };
        Some(self.refuse(head, refusal))
    }

    /// The 413 for a declared length over the limit, as a refusal.
    pub(crate) fn check_length(&self, head: &RequestHead<'_>) -> Option<Refusal> {
        let length = head
            .content_length
            .filter(|&n| n > self.max_body_size as u64)?;
        Some(self.too_large(BodySize::Declared(length)))
    }

    /// The 413 for a body of `size`.
    pub(crate) fn too_large(&self, size: BodySize) -> Refusal {
        Refusal::BodyTooLarge {
            size,
            limit: self.max_body_size,
        }
    }

    /// The response to a request refused before its handler ran, logged at `warn`.
    pub(crate) fn refuse(&self, head: &RequestHead<'_>, refusal: Refusal) -> Response {
        let response = refusal.response();
        warn!(
            "{} {}: {}",
            Shown(head.method),
            Shown(head.path()),
            error_text(&response)
        );
        response
    }

    /// Reads the body, at most the limit + 1 bytes of it.
    fn read_body(&self, body: impl Read) -> Result<Vec<u8>, Response> {
        let mut bytes = Vec::new();
        let limit = self.max_body_size as u64;
        let refusal = match body.take(limit.saturating_add(1)).read_to_end(&mut bytes) {
            Ok(_) if bytes.len() as u64 > limit => self.too_large(BodySize::Over),
            Ok(_) => return Ok(bytes),
            Err(err) => Refusal::UnreadableBody(err),
        };
        // The head passed `check_head`, so the method is POST and the path the served one.
        let response = refusal.response();
        warn!("POST {}: {}", Shown(&self.path), error_text(&response));
        Err(response)
    }

    /// Runs the handler on a complete body, which the server has checked against
    /// [`check_head`](Self::check_head) and the limit. Never panics: a panic anywhere in
    /// the handler is a 500.
    pub fn handle_body(&self, handler: &RequestReplyHandler, body: &[u8]) -> Response {
        self.finish(handler, body, timer()).0
    }

    /// As [`handle_body`](Self::handle_body), with the invocations the batch ran: `None`
    /// when it ran none to a reply (a handshake, an error).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn handle_batch(
        &self,
        handler: &RequestReplyHandler,
        body: &[u8],
    ) -> (Response, Option<usize>) {
        self.finish(handler, body, timer())
    }

    /// Runs the handler and logs the request's one line: at `debug` for a reply (the
    /// function type, the id, the invocations, the states changed, the sizes and the
    /// time), at `warn` (4xx) or `error` (5xx) for a failure, naming the function type,
    /// the address and the error. Returns the response, and the invocations of a batch
    /// run to a reply.
    fn finish(
        &self,
        handler: &RequestReplyHandler,
        body: &[u8],
        started: Option<Instant>,
    ) -> (Response, Option<usize>) {
        // AssertUnwindSafe: the handler is immutable (functions are `Fn + Sync`), so a
        // panic cannot leave it half-updated; the core catches function panics itself and
        // this only guards against a bug elsewhere taking a server thread down.
        let outcome = catch_unwind(AssertUnwindSafe(|| handler.run(body)));
        match outcome {
            Ok(Ok(answered)) => {
                let response = Response::reply(answered.reply);
                if let Some(summary) = answered.summary {
                    debug!(
                        "POST {} {} for {summary}, {} bytes in, {} bytes out, {:?}",
                        Shown(&self.path),
                        response.status,
                        body.len(),
                        response.body.len(),
                        started.unwrap_or(summary.started).elapsed()
                    );
                }
                (response, answered.invocations)
            }
            Ok(Err(Refused { error: err, target })) => {
                let status = err.status();
                let report = err.report();
                let level = if status >= 500 {
                    Level::Error
                } else {
                    Level::Warn
                };
                let target = Target(err.address().or(target.as_deref()));
                log::log!(
                    level,
                    "POST {} {status} for function type {}, address {}: {report}",
                    Shown(&self.path),
                    target.function_type(),
                    target.address()
                );
                (Response::error(status, &report), None)
            }
            Err(_) => {
                let target = Target(None);
                error!(
                    "POST {} 500 for function type {}, address {}: the handler panicked",
                    Shown(&self.path),
                    target.function_type(),
                    target.address()
                );
                (Refusal::Panicked.response(), None)
            }
        }
    }
}

/// The start of a request, when its timing is logged.
#[inline]
pub(crate) fn timer() -> Option<Instant> {
    log_enabled!(Level::Debug).then(Instant::now)
}

/// The function type and address an error names, for a log line.
struct Target<'a>(Option<&'a Address>);

impl Target<'_> {
    fn function_type(&self) -> String {
        match self.0 {
            Some(address) => Shown(address.function_type().as_str()).to_string(),
            None => "(unknown)".to_owned(),
        }
    }

    fn address(&self) -> String {
        match self.0 {
            Some(address) => Shown(&address.to_string()).to_string(),
            None => "(unknown)".to_owned(),
        }
    }
}

/// How big a refused body was said or found to be.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodySize {
    /// Its `Content-Length`.
    Declared(u64),
    /// More than the limit, read so far.
    Over,
    /// More than the limit, in chunks (the codec's finding: none without it).
    #[cfg_attr(not(any(feature = "server", feature = "testing")), allow(dead_code))]
    OverChunked,
}

/// Why a request is refused before its handler ran, or instead of it: what the HTTP/1
/// codec, the server and [`Endpoint::check_head`] report. [`Refusal::status`] is the
/// one table from such an outcome to its status.
#[derive(Debug)]
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) enum Refusal {
    /// A path that nothing is served at.
    NoSuchPath { path: String, served: String },
    /// A method that the path does not take; `allow` are the methods it takes, each
    /// sent as an `Allow` header.
    MethodNotAllowed {
        method: String,
        allow: Cow<'static, [&'static str]>,
    },
    /// A `Content-Type` other than `application/octet-stream`.
    UnsupportedContentType(String),
    /// A body over the limit.
    BodyTooLarge { size: BodySize, limit: usize },
    /// A request head longer than `max` bytes.
    HeadTooLarge { max: usize },
    /// More than `max` headers.
    TooManyHeaders { max: usize },
    /// Trailer fields longer than `max` bytes.
    TrailersTooLarge { max: usize },
    /// A head httparse cannot parse.
    MalformedHead(httparse::Error),
    /// A `Content-Length` that is not a number.
    BadContentLength,
    /// Two different `Content-Length` headers.
    ConflictingContentLengths,
    /// A `Transfer-Encoding` header without a coding.
    NoTransferCoding,
    /// Both `Content-Length` and `Transfer-Encoding`.
    LengthAndTransferEncoding,
    /// Codings whose last is not `chunked`, or `chunked` twice: the length is unknown.
    UnknownBodyLength,
    /// A transfer coding before `chunked`, which the server does not decode.
    UnsupportedTransferCoding(String),
    /// Chunked framing that breaks the rules, and how.
    BadFraming(&'static str),
    /// A body that could not be read (a reset, a read error of the body's reader).
    UnreadableBody(io::Error),
    /// The request (`what`: its head, its body) did not arrive within the read timeout.
    TimedOut(&'static str),
    /// A connection beyond the server's limit.
    TooManyConnections,
    /// A connection the server cannot track or give a thread now.
    NoNewConnection,
    /// No room for the body under the server's memory for bodies (`max_body_memory`,
    /// `budget` bytes) by the request's read deadline: other bodies hold it.
    NoBodyMemory { budget: usize },
    /// The server began to stop while the request waited (for memory for its body, for
    /// a worker).
    ShuttingDown,
    /// The handler of the request panicked.
    Panicked,
}

impl Refusal {
    /// The status this refusal is answered with.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Refusal::MalformedHead(_)
            | Refusal::BadContentLength
            | Refusal::ConflictingContentLengths
            | Refusal::NoTransferCoding
            | Refusal::LengthAndTransferEncoding
            | Refusal::UnknownBodyLength
            | Refusal::BadFraming(_)
            | Refusal::UnreadableBody(_) => 400,
            Refusal::NoSuchPath { .. } => 404,
            Refusal::MethodNotAllowed { .. } => 405,
            Refusal::TimedOut(_) => 408,
            Refusal::BodyTooLarge { .. } => 413,
            Refusal::UnsupportedContentType(_) => 415,
            Refusal::HeadTooLarge { .. }
            | Refusal::TooManyHeaders { .. }
            | Refusal::TrailersTooLarge { .. } => 431,
            Refusal::Panicked => 500,
            Refusal::UnsupportedTransferCoding(_) => 501,
            Refusal::TooManyConnections
            | Refusal::NoNewConnection
            | Refusal::NoBodyMemory { .. }
            | Refusal::ShuttingDown => 503,
        }
    }

    /// The error response: its status, the text below, and `Allow` with a 405.
    pub(crate) fn response(self) -> Response {
        let mut response = Response::error(self.status(), &self.to_string());
        if let Refusal::MethodNotAllowed { allow, .. } = self {
            for method in allow.iter() {
                // A method is an HTTP token (a route's is checked when the server
                // starts), and every token is a valid header value.
                if let Ok(value) = HeaderValue::from_str(method) {
                    response.headers.append(header::ALLOW, value);
                }
            }
        }
        response
    }
}

/// What the error body says after its status line.
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoSuchPath { path, served } => write!(
                f,
                "no function endpoint at {} (the functions are served at {})",
                Shown(path),
                Shown(served)
            ),
            Refusal::MethodNotAllowed { method, allow } => {
                write!(f, "method {} is not allowed here: use ", Shown(method))?;
                for (i, allowed) in allow.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    f.write_str(allowed)?;
                }
                Ok(())
            }
            Refusal::UnsupportedContentType(content_type) => write!(
                f,
                "content type {} is not accepted: send application/octet-stream",
                Shown(content_type)
            ),
            Refusal::BodyTooLarge { size, limit } => {
                f.write_str("the request body (")?;
                match size {
                    BodySize::Declared(length) => write!(f, "{length} bytes")?,
                    BodySize::Over => write!(f, "more than {limit} bytes")?,
                    BodySize::OverChunked => write!(f, "more than {limit} bytes, chunked")?,
                }
                write!(f, ") is over the limit of {limit} bytes")
            }
            Refusal::HeadTooLarge { max } => {
                write!(f, "the request head is longer than {max} bytes")
            }
            Refusal::TooManyHeaders { max } => write!(f, "the request has more than {max} headers"),
            Refusal::TrailersTooLarge { max } => {
                write!(f, "the trailer fields are longer than {max} bytes")
            }
            Refusal::MalformedHead(err) => write!(f, "malformed request head: {err}"),
            Refusal::BadContentLength => f.write_str("Content-Length is not a number"),
            Refusal::ConflictingContentLengths => {
                f.write_str("the request has two different Content-Length headers")
            }
            Refusal::NoTransferCoding => f.write_str("Transfer-Encoding names no transfer coding"),
            Refusal::LengthAndTransferEncoding => {
                f.write_str("the request has both Content-Length and Transfer-Encoding")
            }
            Refusal::UnknownBodyLength => f.write_str(
                "Transfer-Encoding does not end with `chunked` exactly once, so the body's \
                 length is unknown",
            ),
            Refusal::UnsupportedTransferCoding(coding) => write!(
                f,
                "transfer coding {} is not supported; send the body chunked only",
                Shown(coding)
            ),
            Refusal::BadFraming(what) => {
                write!(
                    f,
                    "cannot read the request body: bad chunked framing: {what}"
                )
            }
            Refusal::UnreadableBody(err) => write!(f, "cannot read the request body: {err}"),
            Refusal::TimedOut(what) => write!(f, "the {what} did not arrive in time"),
            Refusal::TooManyConnections => f.write_str("too many connections are open"),
            Refusal::NoNewConnection => f.write_str("the server cannot take a new connection now"),
            Refusal::NoBodyMemory { budget } => write!(
                f,
                "no room for the request body: the bodies of other requests hold the \
                 server's memory for bodies ({budget} bytes, max_body_memory) past this \
                 request's read timeout; send it again"
            ),
            Refusal::ShuttingDown => f.write_str(
                "the server is shutting down: send the request again (to another server)",
            ),
            Refusal::Panicked => f.write_str("the handler panicked"),
        }
    }
}

/// An error response's text, for its log line.
pub(crate) fn error_text(response: &Response) -> String {
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

/// The reason phrase of a status: those this crate sends, and the common ones a route
/// of a user's may send.
#[inline]
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
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

    #[test]
    fn every_refusal_has_a_known_reason_phrase_and_says_what_was_wrong() {
        let refusals = [
            Refusal::NoSuchPath {
                path: "/x".into(),
                served: "/statefun".into(),
            },
            Refusal::MethodNotAllowed {
                method: "GET".into(),
                allow: Cow::Borrowed(&["POST"]),
            },
            Refusal::UnsupportedContentType("a/b".into()),
            Refusal::BodyTooLarge {
                size: BodySize::OverChunked,
                limit: 10,
            },
            Refusal::HeadTooLarge { max: 1 },
            Refusal::TooManyHeaders { max: 1 },
            Refusal::TrailersTooLarge { max: 1 },
            Refusal::BadContentLength,
            Refusal::ConflictingContentLengths,
            Refusal::NoTransferCoding,
            Refusal::LengthAndTransferEncoding,
            Refusal::UnknownBodyLength,
            Refusal::UnsupportedTransferCoding("gzip".into()),
            Refusal::BadFraming("x"),
            Refusal::UnreadableBody(io::ErrorKind::ConnectionReset.into()),
            Refusal::TimedOut("request head"),
            Refusal::TooManyConnections,
            Refusal::NoNewConnection,
            Refusal::Panicked,
        ];
        for refusal in refusals {
            let text = refusal.to_string();
            let response = refusal.response();
            assert_ne!(response.reason(), "Unknown", "{text}");
            let body = String::from_utf8(response.body).unwrap();
            assert_eq!(
                body,
                format!(
                    "{} {}: {text}\n",
                    response.status,
                    reason_phrase(response.status)
                )
            );
        }
        let not_allowed = Refusal::MethodNotAllowed {
            method: "PUT".into(),
            allow: Cow::Borrowed(&["GET", "HEAD"]),
        }
        .response();
        assert!(not_allowed.body.ends_with(b"use GET or HEAD\n"));
        let allow: Vec<_> = not_allowed
            .headers()
            .get_all(header::ALLOW)
            .iter()
            .collect();
        assert_eq!(allow, ["GET", "HEAD"]);
    }

    #[test]
    fn a_status_that_is_not_final_is_sent_as_500() {
        assert_eq!(Response::text(99, "x").status(), 500);
        assert_eq!(Response::text(101, "x").status(), 500);
        assert_eq!(Response::text(204, "").status(), 204);
    }
}
