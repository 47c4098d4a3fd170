//! A small blocking HTTP/1.1 client for [`LocalRuntime`](super::LocalRuntime)'s remote
//! functions: one `POST` per connection (`Connection: close`), as plain as the runtime's
//! own use of HTTP, on std's `TcpStream` with `httparse` reading the response head.

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The most a response head (status line and headers) may take.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most a response body may take: far above any real reply, low enough that a
/// runaway server cannot exhaust a test's memory.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The most headers a response may have.
const MAX_HEADERS: usize = 64;

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
    /// The response has an empty body.
    EmptyBody,
    /// The body is not a serialized `FromFunction` with an invocation result.
    MalformedReply {
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

    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        endpoint.path,
        body.len()
    );
    let sending = io(format!("sending the request to {}", endpoint.url));
    stream.write_all(head.as_bytes()).map_err(&sending)?;
    stream.write_all(body).map_err(&sending)?;
    stream.flush().map_err(sending)?;

    read_response(&mut stream).map_err(|error| match error {
        ReadError::Io(source) => RemoteError::Io {
            during: format!("reading the response from {}", endpoint.url),
            source,
        },
        ReadError::Malformed(reason) => RemoteError::MalformedResponse { reason },
    })
}

enum ReadError {
    Io(io::Error),
    Malformed(String),
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> Self {
        ReadError::Io(error)
    }
}

fn malformed(reason: impl Into<String>) -> ReadError {
    ReadError::Malformed(reason.into())
}

/// Reads one response from `stream`: the head with `httparse`, then a body framed by
/// `Content-Length`, by chunked transfer coding, or by the end of the connection.
fn read_response(stream: &mut impl Read) -> Result<Response, ReadError> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let (status, content_type, framing, head_len) = loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buffer) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.unwrap_or_default();
                if (100..200).contains(&status) {
                    // An interim response (e.g. `100 Continue`): drop it, read the next.
                    buffer.drain(..head_len);
                    continue;
                }
                let (content_type, framing) = head_fields(response.headers)?;
                break (status, content_type, framing, head_len);
            }
            Ok(httparse::Status::Partial) => {
                if buffer.len() > MAX_HEAD_BYTES {
                    return Err(malformed(format!(
                        "the response head is longer than {MAX_HEAD_BYTES} bytes"
                    )));
                }
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(malformed(if buffer.is_empty() {
                        "the connection closed without a response".to_owned()
                    } else {
                        "the connection closed in the middle of the response head".to_owned()
                    }));
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            Err(error) => return Err(malformed(format!("bad response head: {error}"))),
        }
    };
    buffer.drain(..head_len);
    let body = match framing {
        Framing::Length(length) => {
            if length > MAX_BODY_BYTES as u64 {
                return Err(malformed(format!(
                    "the body of {length} bytes is longer than {MAX_BODY_BYTES} bytes"
                )));
            }
            let length = length as usize;
            while buffer.len() < length {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(malformed(format!(
                        "the connection closed after {} of {length} body bytes",
                        buffer.len()
                    )));
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            buffer.truncate(length);
            buffer
        }
        Framing::Chunked => {
            read_to_end_bounded(stream, &mut buffer)?;
            decode_chunked(&buffer)?
        }
        Framing::UntilClose => {
            read_to_end_bounded(stream, &mut buffer)?;
            buffer
        }
    };
    Ok(Response {
        status,
        content_type,
        body,
    })
}

enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

fn head_fields(headers: &[httparse::Header<'_>]) -> Result<(Option<String>, Framing), ReadError> {
    let mut content_type = None;
    let mut framing = Framing::UntilClose;
    for header in headers {
        let value = || String::from_utf8_lossy(header.value).trim().to_owned();
        if header.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value());
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if value().to_ascii_lowercase().ends_with("chunked") {
                framing = Framing::Chunked;
            }
        } else if header.name.eq_ignore_ascii_case("content-length")
            && !matches!(framing, Framing::Chunked)
        {
            let length = value()
                .parse::<u64>()
                .map_err(|_| malformed(format!("bad Content-Length {:?}", value())))?;
            framing = Framing::Length(length);
        }
    }
    Ok((content_type, framing))
}

fn read_to_end_bounded(stream: &mut impl Read, buffer: &mut Vec<u8>) -> Result<(), ReadError> {
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
        if buffer.len() > MAX_BODY_BYTES {
            return Err(malformed(format!(
                "the body is longer than {MAX_BODY_BYTES} bytes"
            )));
        }
    }
}

/// Decodes a complete chunked body (RFC 9112 section 7.1); trailers are ignored.
fn decode_chunked(mut input: &[u8]) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(input) {
            Ok(httparse::Status::Complete(parsed)) => parsed,
            Ok(httparse::Status::Partial) => {
                return Err(malformed("the chunked body ends inside a chunk size"))
            }
            Err(_) => return Err(malformed("bad chunk size in the chunked body")),
        };
        input = &input[size_len..];
        if size == 0 {
            return Ok(body);
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|size| size.saturating_add(2) <= input.len())
            .ok_or_else(|| malformed("the chunked body ends inside a chunk"))?;
        body.extend_from_slice(&input[..size]);
        if &input[size..size + 2] != b"\r\n" {
            return Err(malformed("a chunk is not followed by CRLF"));
        }
        input = &input[size + 2..];
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
        read_response(&mut &bytes[..]).map_err(|e| match e {
            ReadError::Io(e) => e.to_string(),
            ReadError::Malformed(reason) => reason,
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
