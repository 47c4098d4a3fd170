//! A small blocking HTTP/1.1 client for remote functions ([`LocalRuntime`]'s, and
//! [`call_remote`]): one `POST` per connection (`Connection: close`), as plain as the
//! runtime's own use of HTTP, on std's `TcpStream` with the crate's HTTP/1 codec (the
//! server's) writing the request and reading the response.
//!
//! [`LocalRuntime`]: super::LocalRuntime

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{Reply, Request};
use crate::http::codec::{encode_request, Framing, Input, ReadError, Reader, ResponseHead};
use crate::http::OCTET_STREAM;
use crate::protocol::ProtocolVersion;

/// The most a response head (status line and headers) may take.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most a response body may take: far above any real reply, low enough that a
/// runaway server cannot exhaust a test's memory.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Where a remote function is served: `http://host:port/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    url: String,
    host: String,
    port: u16,
    path: String,
}

impl Endpoint {
    /// Parses an `http://` URL. The port defaults to 80 and the path to `/`.
    pub(crate) fn parse(url: &str) -> Result<Endpoint, &'static str> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("only `http://` URLs are supported")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err("the URL has no host");
        }
        if authority.contains('@') {
            return Err("credentials in the URL are not supported");
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            // An IPv6 literal: `[::1]:8000`.
            let (host, after) = bracketed
                .split_once(']')
                .ok_or("the IPv6 host has no closing `]`")?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or("junk after the IPv6 host")?),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("the URL has no host");
        }
        let port = match port {
            None => 80,
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| "the port is not a number from 0 to 65535")?,
        };
        if path.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err("the path contains whitespace or control characters");
        }
        Ok(Endpoint {
            url: url.to_owned(),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// The URL as given.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

/// Why a remote function did not answer a batch with a reply.
///
/// The runtime treats every one of these as a failed call (it retries until the
/// function's timeout, then fails the job); [`LocalRuntime`](super::LocalRuntime) stops at
/// the first.
#[derive(Debug)]
#[non_exhaustive]
pub enum RemoteError {
    /// Connecting, sending the request or reading the response failed (refused, reset,
    /// timed out).
    Io {
        /// What the client was doing, e.g. `connecting to 127.0.0.1:8000`.
        during: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The response is not HTTP/1.x as the client reads it.
    MalformedResponse {
        /// What is wrong with it.
        reason: String,
    },
    /// The response status is not 2xx.
    Status {
        /// The status code.
        status: u16,
        /// The start of the response body, lossily decoded, for the error message.
        body: String,
    },
    /// The response's content type is not exactly `application/octet-stream`.
    ContentType {
        /// The `Content-Type` header, if there was one.
        content_type: Option<String>,
    },
    /// The response has an empty body (which only the 3.x runtime reads as an empty
    /// reply).
    EmptyBody,
    /// The body is not a serialized `FromFunction` with an invocation result.
    MalformedReply {
        /// What is wrong with it.
        reason: String,
    },
    /// The URL given to [`call_remote`](super::call_remote) is not
    /// `http://host[:port]/path`.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::Io { during, .. } => write!(f, "I/O error while {during}"),
            RemoteError::MalformedResponse { reason } => {
                write!(f, "malformed HTTP response: {reason}")
            }
            RemoteError::Status { status, body } => {
                write!(f, "the endpoint answered HTTP {status}")?;
                if !body.is_empty() {
                    write!(f, " with {body:?}")?;
                }
                Ok(())
            }
            RemoteError::ContentType {
                content_type: Some(content_type),
            } => write!(
                f,
                "the response's content type is {content_type:?}, not \
                 \"application/octet-stream\""
            ),
            RemoteError::ContentType { content_type: None } => f.write_str(
                "the response has no content type (it must be \"application/octet-stream\")",
            ),
            RemoteError::EmptyBody => f.write_str("the response body is empty"),
            RemoteError::MalformedReply { reason } => {
                write!(f, "the response body is not a reply: {reason}")
            }
            RemoteError::InvalidUrl { url, reason } => {
                write!(f, "cannot call {url:?}: {reason}")
            }
        }
    }
}

impl StdError for RemoteError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            RemoteError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A response: status, content type and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// POSTs `body` to `endpoint` as `application/octet-stream` and reads the response.
/// `timeout` bounds connecting and each read and write.
pub(crate) fn post(
    endpoint: &Endpoint,
    body: &[u8],
    timeout: Duration,
) -> Result<Response, RemoteError> {
    let authority = if endpoint.host.contains(':') {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    };
    let io = |during: String| {
        move |source| RemoteError::Io {
            during: during.clone(),
            source,
        }
    };
    let connecting = format!("connecting to {authority}");
    let addresses = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(io(connecting.clone()))?;
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    let mut connected = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => {
                connected = Some(stream);
                break;
            }
            Err(error) => last_error = error,
        }
    }
    let mut stream = connected.ok_or(RemoteError::Io {
        during: connecting,
        source: last_error,
    })?;
    let setup = io(format!("setting up the connection to {authority}"));
    stream.set_read_timeout(Some(timeout)).map_err(&setup)?;
    stream.set_write_timeout(Some(timeout)).map_err(&setup)?;
    // Latency, not throughput, matters for one small request.
    stream.set_nodelay(true).map_err(setup)?;

    let request = encode_request("POST", &endpoint.path, &authority, OCTET_STREAM, body);
    std::io::Write::write_all(&mut stream, &request)
        .map_err(io(format!("sending the request to {}", endpoint.url)))?;

    read_response(&mut Reader::new(stream, MAX_HEAD_BYTES)).map_err(|error| match error {
        Unread::Io(source) => RemoteError::Io {
            during: format!("reading the response from {}", endpoint.url),
            source,
        },
        Unread::Malformed(reason) => RemoteError::MalformedResponse { reason },
    })
}

/// POSTs a batch and checks the response as the runtime of `version` does: a 2xx status,
/// the content type exactly `application/octet-stream`, and, on 2.2, a body (the 3.x
/// runtime reads an empty body as an empty `FromFunction`). Returns the body.
pub(crate) fn post_batch(
    endpoint: &Endpoint,
    body: &[u8],
    timeout: Duration,
    version: ProtocolVersion,
) -> Result<Vec<u8>, RemoteError> {
    let response = post(endpoint, body, timeout)?;
    if !(200..300).contains(&response.status) {
        let end = response.body.len().min(200);
        return Err(RemoteError::Status {
            status: response.status,
            body: String::from_utf8_lossy(&response.body[..end]).into_owned(),
        });
    }
    if response.content_type.as_deref() != Some(OCTET_STREAM) {
        return Err(RemoteError::ContentType {
            content_type: response.content_type,
        });
    }
    if response.body.is_empty() && version == ProtocolVersion::V2 {
        return Err(RemoteError::EmptyBody);
    }
    Ok(response.body)
}

/// Parses `url` and [`post_batch`]es `body` to it: what [`call_remote`] and
/// [`v3::call_remote`](super::v3::call_remote) share.
pub(crate) fn exchange(
    url: &str,
    body: &[u8],
    timeout: Duration,
    version: ProtocolVersion,
) -> Result<Vec<u8>, RemoteError> {
    let endpoint = Endpoint::parse(url).map_err(|reason| RemoteError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    })?;
    post_batch(&endpoint, body, timeout, version)
}

/// Sends the 2.2 `request` to the function endpoint at `url` (`http://host:port/path`) as
/// the runtime would, and decodes the reply (for 3.x: [`v3::call_remote`](super::v3::call_remote)): a blocking call on a new connection, for a
/// tool or a test that talks to a running service.
///
/// The response must be what the runtime accepts: a 2xx status, exactly
/// `application/octet-stream`, a body that decodes as a `FromFunction`. `timeout` bounds
/// connecting, and each read and write.
///
/// ```
/// # #[cfg(feature = "server")] {
/// use std::time::Duration;
/// use statefun_sync::http::Server;
/// use statefun_sync::testing::{call_remote, Request};
/// use statefun_sync::{RequestReplyHandler, StatefulFunctions};
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind("example/echo", |ctx, message| Ok(ctx.send("example/sink", "1", message)?))?;
/// let server = Server::builder()
///     .bind("127.0.0.1:0")
///     .start(RequestReplyHandler::new(functions))?;
///
/// let url = format!("http://{}/statefun", server.local_addr());
/// let request = Request::to("example/echo", "a").invoke(Default::default());
/// let reply = call_remote(&url, &request, Duration::from_secs(10))?;
/// assert_eq!(reply.messages().len(), 1);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// A [`RemoteError`]: [`InvalidUrl`](RemoteError::InvalidUrl) for a `url` that is not
/// `http://host[:port]/path`, [`Io`](RemoteError::Io) when the service cannot be
/// reached, and the others when its answer is not a reply.
pub fn call_remote(url: &str, request: &Request, timeout: Duration) -> Result<Reply, RemoteError> {
    let body = exchange(url, &request.to_bytes(), timeout, ProtocolVersion::V2)?;
    Reply::decode(&body).map_err(|error| RemoteError::MalformedReply {
        reason: format!("it does not decode as a FromFunction: {error}"),
    })
}

/// Why a response could not be read.
enum Unread {
    Io(io::Error),
    Malformed(String),
}

fn malformed(reason: impl Into<String>) -> Unread {
    Unread::Malformed(reason.into())
}

/// Reads one response with the crate's codec: the head, then a body framed by
/// `Content-Length`, by chunked transfer coding, or by the end of the connection.
fn read_response(reader: &mut Reader<impl Input>) -> Result<Response, Unread> {
    let head = match reader.read_response_head() {
        Ok(head) => head,
        Err(ReadError::Closed) if reader.buffered().is_empty() => {
            return Err(malformed("the connection closed without a response"))
        }
        Err(ReadError::Closed) => {
            return Err(malformed(
                "the connection closed in the middle of the response head",
            ))
        }
        Err(error) => return Err(unread(error)),
    };
    let ResponseHead {
        status,
        content_type,
        framing,
    } = head;
    if let Framing::Length(length) = framing {
        if length > MAX_BODY_BYTES as u64 {
            return Err(malformed(format!(
                "the body of {length} bytes is longer than {MAX_BODY_BYTES} bytes"
            )));
        }
    }
    let body = match reader.read_body(framing, MAX_BODY_BYTES, None) {
        Ok(body) => body,
        Err(ReadError::Closed) => {
            return Err(malformed(match framing {
                Framing::Length(length) => {
                    format!("the connection closed before the {length} body bytes were read")
                }
                _ => "the connection closed in the middle of the chunked body".to_owned(),
            }))
        }
        Err(error) => return Err(unread(error)),
    };
    Ok(Response {
        status,
        content_type,
        body,
    })
}

/// What the codec could not read, said of a response.
fn unread(error: ReadError) -> Unread {
    use crate::http::endpoint::Refusal;
    match error {
        ReadError::Io(error) => Unread::Io(error),
        ReadError::Closed => malformed("the connection closed in the middle of the response"),
        ReadError::Refused(refusal) => malformed(match refusal {
            Refusal::HeadTooLarge { max } => {
                format!("the response head is longer than {max} bytes")
            }
            Refusal::TooManyHeaders { max } => {
                format!("bad response head: more than {max} headers")
            }
            Refusal::MalformedHead(error) => format!("bad response head: {error}"),
            Refusal::BadContentLength => "bad Content-Length: not a number".to_owned(),
            Refusal::BadFraming(what) => format!("bad chunked body: {what}"),
            Refusal::BodyTooLarge { .. } => {
                format!("the body is longer than {MAX_BODY_BYTES} bytes")
            }
            Refusal::TrailersTooLarge { max } => {
                format!("the trailer fields are longer than {max} bytes")
            }
            other => other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_host_port_and_path() {
        let cases = [
            (
                "http://127.0.0.1:8000/statefun",
                ("127.0.0.1", 8000, "/statefun"),
            ),
            ("http://localhost/", ("localhost", 80, "/")),
            ("http://localhost", ("localhost", 80, "/")),
            ("http://[::1]:9000/a/b", ("::1", 9000, "/a/b")),
        ];
        for (url, (host, port, path)) in cases {
            let endpoint = Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                (
                    endpoint.host.as_str(),
                    endpoint.port,
                    endpoint.path.as_str()
                ),
                (host, port, path),
                "url {url:?}"
            );
        }
    }

    #[test]
    fn bad_endpoints_are_refused_with_a_reason() {
        for url in [
            "https://h/x",
            "ftp://h",
            "http://",
            "http://:80/",
            "http://h:port/",
            "http://h:70000/",
            "http://[::1/",
            "http://u@h/",
            "http://h/a b",
        ] {
            assert!(Endpoint::parse(url).is_err(), "url {url:?}");
        }
    }

    fn read(bytes: &[u8]) -> Result<Response, String> {
        read_response(&mut Reader::new(bytes, MAX_HEAD_BYTES)).map_err(|e| match e {
            Unread::Io(e) => e.to_string(),
            Unread::Malformed(reason) => reason,
        })
    }

    #[test]
    fn bodies_are_framed_by_length_chunks_or_close() {
        let cases: [(&[u8], &[u8]); 4] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef",
                b"abc",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1;x=y\r\nc\r\n0\r\n\r\n",
                b"abc",
            ),
            (b"HTTP/1.0 200 OK\r\n\r\nabc", b"abc"),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
                b"z",
            ),
        ];
        for (input, expected) in cases {
            let response = read(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(response.status, 200, "{input:?}");
            assert_eq!(response.body, expected, "{input:?}");
        }
    }

    #[test]
    fn truncated_or_bad_responses_are_errors_not_panics() {
        for input in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert!(read(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn the_content_type_is_read() {
        let response = read(
            b"HTTP/1.1 500 Internal\r\ncontent-type: text/plain\r\nContent-Length: 2\r\n\r\nno",
        )
        .unwrap();
        assert_eq!(response.status, 500);
        assert_eq!(response.content_type.as_deref(), Some("text/plain"));
    }
}
