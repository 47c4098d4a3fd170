//! The crate's one HTTP/1.1 codec, both ways: reading a request and writing a response
//! for the crate's server, writing a request and reading a response for the testing
//! kit's client.
//!
//! Heads are parsed by httparse, chunk sizes by `httparse::parse_chunk_size`; one
//! [`Framing`] says how a body is delimited, and one [`Reader`] reads heads, bodies and
//! chunks off a stream, keeping the bytes of the next message. What a message may not
//! do is reported as a [`Refusal`], which the endpoint turns into a status.

// The server uses one half, the testing kit's client the other: a build with only one of
// them leaves the other half unused.
#![cfg_attr(not(all(feature = "server", feature = "testing")), allow(dead_code))]

use std::io::{self, Read, Write};
use std::time::Instant;

use super::endpoint::{is_sendable, title_case, BodySize, Refusal, RequestHead, Response};

/// A request head (request line and headers) longer than this is refused with 431.
pub(crate) const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// The most headers a message may have (a request gets 431 beyond).
pub(crate) const MAX_HEADERS: usize = 64;
/// A chunk-size line longer than this is bad framing.
const MAX_CHUNK_LINE: usize = 1024;
/// The interim response to `Expect: 100-continue`.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// A body's buffer starts at this many bytes at most (a smaller body gets its size
/// exactly), and doubles from there as bytes arrive.
const FIRST_BODY_CAPACITY: usize = 64 * 1024;
/// The most one read of a body asks the stream for.
const BODY_READ: usize = 64 * 1024;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding; chunk extensions and trailer fields are read and ignored.
    Chunked,
    /// Up to the end of the stream: a response without a length.
    UntilClose,
}

/// Why a message could not be read whole.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The stream ended before the message did.
    Closed,
    /// A read failed, or timed out.
    Io(io::Error),
    /// The bytes break the framing rules or go over a limit.
    Refused(Refusal),
}

impl ReadError {
    /// Whether a read timed out (the socket's timeout or the deadline).
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, ReadError::Io(err)
            if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

impl From<io::Error> for ReadError {
    fn from(err: io::Error) -> Self {
        ReadError::Io(err)
    }
}

impl From<Refusal> for ReadError {
    fn from(refusal: Refusal) -> Self {
        ReadError::Refused(refusal)
    }
}

/// What a body's buffer asks before it grows: the server charges the memory to its
/// budget for bodies (`ServerBuilder::max_body_memory`), which may make it wait or
/// refuse; everywhere else it is [`Unlimited`].
pub(crate) trait BodyBudget {
    /// The body's buffer is about to hold `bytes` in all: grants them, or refuses the
    /// request (the refusal is its answer).
    fn grow_to(&mut self, bytes: usize) -> Result<(), Refusal>;
}

/// A [`BodyBudget`] that grants everything: the limit alone bounds a body.
pub(crate) struct Unlimited;

impl BodyBudget for Unlimited {
    fn grow_to(&mut self, _: usize) -> Result<(), Refusal> {
        Ok(())
    }
}

/// Makes room in `body`, a body of at most `most` bytes, for at least one more byte
/// (`body` is shorter than `most`): its capacity doubles (from [`FIRST_BODY_CAPACITY`],
/// never beyond `most`) once `budget` grants it. So the buffer holds at most twice what
/// arrived, plus the first step, whatever length a client declared; and a body that
/// arrives in many small pieces (chunks) is copied a few times, not once per piece.
fn make_room(body: &mut Vec<u8>, most: usize, budget: &mut impl BodyBudget) -> Result<(), Refusal> {
    if body.len() < body.capacity() {
        return Ok(());
    }
    let capacity = body
        .capacity()
        .saturating_mul(2)
        .max(FIRST_BODY_CAPACITY)
        .min(most);
    budget.grow_to(capacity)?;
    body.reserve_exact(capacity - body.len());
    Ok(())
}

/// A stream the codec reads from, whose reads a deadline can bound.
pub(crate) trait Input: Read {
    /// Bounds the next reads by `deadline`; `None` keeps the stream's own timeout.
    fn wait_until(&mut self, deadline: Option<Instant>) -> io::Result<()>;
}

/// Bytes already in memory, which never wait.
impl Input for &[u8] {
    fn wait_until(&mut self, _: Option<Instant>) -> io::Result<()> {
        Ok(())
    }
}

/// A stream with its read buffer, which keeps the bytes that arrived after the current
/// message (pipelined requests).
pub(crate) struct Reader<S> {
    stream: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The longest head, and the most the buffer grows to.
    max_head: usize,
}

impl<S: Input> Reader<S> {
    /// A reader of `stream` whose heads may take up to `max_head` bytes.
    pub(crate) fn new(stream: S, max_head: usize) -> Self {
        Reader {
            stream,
            buf: vec![0; 4096.min(max_head)],
            start: 0,
            end: 0,
            max_head,
        }
    }

    /// The stream.
    pub(crate) fn stream(&self) -> &S {
        &self.stream
    }

    /// The stream, to write to.
    pub(crate) fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The bytes read and not consumed yet.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes into the buffer, growing it up to the longest head; `Ok(0)` at
    /// the end of the stream. `deadline` bounds the wait (`None`: the stream's timeout).
    pub(crate) fn fill(&mut self, deadline: Option<Instant>) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < self.max_head {
                let len = (self.buf.len() * 2).min(self.max_head);
                self.buf.resize(len, 0);
            } else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
        }
        self.stream.wait_until(deadline)?;
        let n = self.stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Reads a head: `parse` returns it with its length once the buffer holds all of it,
    /// `None` while it is partial.
    fn read_head<T>(
        &mut self,
        deadline: Option<Instant>,
        mut parse: impl FnMut(&[u8]) -> Result<Option<(usize, T)>, Refusal>,
    ) -> Result<T, ReadError> {
        loop {
            if let Some((len, head)) = parse(&self.buf[self.start..self.end])? {
                self.start += len;
                return Ok(head);
            }
            if self.end - self.start >= self.max_head {
                return Err(Refusal::HeadTooLarge { max: self.max_head }.into());
            }
            if self.fill(deadline)? == 0 {
                return Err(ReadError::Closed);
            }
        }
    }

    /// Reads a request's head, by `deadline`.
    pub(crate) fn read_request_head(&mut self, deadline: Instant) -> Result<Head, ReadError> {
        self.read_head(Some(deadline), |bytes| {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(bytes) {
                Ok(httparse::Status::Complete(len)) => {
                    let mut head = interpret(&request)?;
                    head.size = len;
                    Ok(Some((len, head)))
                }
                Ok(httparse::Status::Partial) => Ok(None),
                Err(err) => Err(head_refusal(err)),
            }
        })
    }

    /// Reads a response's head, skipping interim (1xx) responses.
    pub(crate) fn read_response_head(&mut self) -> Result<ResponseHead, ReadError> {
        loop {
            let head = self.read_head(None, |bytes| {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(bytes) {
                    Ok(httparse::Status::Complete(len)) => {
                        let status = response.code.unwrap_or_default();
                        if (100..200).contains(&status) {
                            // An interim response (e.g. `100 Continue`): the next one counts.
                            return Ok(Some((len, None)));
                        }
                        Ok(Some((len, Some(response_head(status, response.headers)?))))
                    }
                    Ok(httparse::Status::Partial) => Ok(None),
                    Err(err) => Err(head_refusal(err)),
                }
            })?;
            if let Some(head) = head {
                return Ok(head);
            }
        }
    }

    /// Reads a body framed by `framing`, of at most `limit` bytes, by `deadline`.
    pub(crate) fn read_body(
        &mut self,
        framing: Framing,
        limit: usize,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, ReadError> {
        self.read_body_within(framing, limit, deadline, &mut Unlimited)
    }

    /// [`read_body`](Self::read_body), asking `budget` before the body's buffer grows.
    pub(crate) fn read_body_within(
        &mut self,
        framing: Framing,
        limit: usize,
        deadline: Option<Instant>,
        budget: &mut impl BodyBudget,
    ) -> Result<Vec<u8>, ReadError> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => {
                let too_large = || Refusal::BodyTooLarge {
                    size: BodySize::Declared(n),
                    limit,
                };
                let n = usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= limit)
                    .ok_or_else(too_large)?;
                let mut body = Vec::new();
                self.read_exact_into(&mut body, n, n, deadline, budget)?;
                Ok(body)
            }
            Framing::Chunked => self.read_chunked(limit, deadline, budget),
            Framing::UntilClose => self.read_to_end(limit, deadline, budget),
        }
    }

    /// Appends exactly `n` bytes of body to `body`, a body of at most `most` bytes in
    /// all: the buffered ones first, then straight from the stream, growing `body` as
    /// they arrive.
    fn read_exact_into(
        &mut self,
        body: &mut Vec<u8>,
        n: usize,
        most: usize,
        deadline: Option<Instant>,
        budget: &mut impl BodyBudget,
    ) -> Result<(), ReadError> {
        let target = body.len() + n;
        debug_assert!(target <= most);
        while body.len() < target {
            make_room(body, most, budget)?;
            let old = body.len();
            let want = (body.capacity() - old).min(target - old).min(BODY_READ);
            let buffered = self.end - self.start;
            if buffered > 0 {
                let take = want.min(buffered);
                body.extend_from_slice(&self.buf[self.start..self.start + take]);
                self.start += take;
                continue;
            }
            body.resize(old + want, 0);
            self.stream.wait_until(deadline)?;
            match self.stream.read(&mut body[old..]) {
                Ok(0) => {
                    body.truncate(old);
                    return Err(ReadError::Closed);
                }
                Ok(read) => body.truncate(old + read),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => body.truncate(old),
                Err(err) => {
                    body.truncate(old);
                    return Err(err.into());
                }
            }
        }
        Ok(())
    }

    /// Everything up to the end of the stream, at most `limit` bytes.
    fn read_to_end(
        &mut self,
        limit: usize,
        deadline: Option<Instant>,
        budget: &mut impl BodyBudget,
    ) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        // One byte over the limit tells that the body is over it.
        let most = limit.saturating_add(1);
        while self.start < self.end && body.len() < most {
            make_room(&mut body, most, budget)?;
            let take = (body.capacity() - body.len()).min(self.end - self.start);
            body.extend_from_slice(&self.buf[self.start..self.start + take]);
            self.start += take;
        }
        loop {
            if body.len() > limit {
                return Err(Refusal::BodyTooLarge {
                    size: BodySize::Over,
                    limit,
                }
                .into());
            }
            make_room(&mut body, most, budget)?;
            let old = body.len();
            let want = (body.capacity() - old).min(BODY_READ);
            body.resize(old + want, 0);
            self.stream.wait_until(deadline)?;
            match self.stream.read(&mut body[old..]) {
                Ok(0) => {
                    body.truncate(old);
                    return Ok(body);
                }
                Ok(read) => body.truncate(old + read),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => body.truncate(old),
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// One line, without its CRLF or LF, of at most `max` bytes.
    fn read_line(&mut self, max: usize, deadline: Option<Instant>) -> Result<Vec<u8>, ReadError> {
        const TOO_LONG: Refusal = Refusal::BadFraming("a chunk line is too long");
        loop {
            if let Some(at) = self.buffered().iter().position(|&b| b == b'\n') {
                let mut line = self.buffered()[..at].to_vec();
                self.start += at + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.end - self.start > max {
                return Err(TOO_LONG.into());
            }
            match self.fill(deadline) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::InvalidData => return Err(TOO_LONG.into()),
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// A chunked body, at most `limit` bytes, then its trailer fields (ignored).
    fn read_chunked(
        &mut self,
        limit: usize,
        deadline: Option<Instant>,
        budget: &mut impl BodyBudget,
    ) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(MAX_CHUNK_LINE, deadline)?;
            let size = chunk_size(line).ok_or(Refusal::BadFraming(
                "a chunk size is not a hexadecimal number",
            ))?;
            if size == 0 {
                break;
            }
            if size > (limit - body.len()) as u64 {
                return Err(Refusal::BodyTooLarge {
                    size: BodySize::OverChunked,
                    limit,
                }
                .into());
            }
            self.read_exact_into(&mut body, size as usize, limit, deadline, budget)?;
            if !self.read_line(MAX_CHUNK_LINE, deadline)?.is_empty() {
                return Err(Refusal::BadFraming("a chunk is longer than its size").into());
            }
        }
        // Trailer fields, ignored, up to the empty line.
        let mut trailers = 0;
        loop {
            let line = self.read_line(self.max_head, deadline)?;
            if line.is_empty() {
                return Ok(body);
            }
            trailers += line.len();
            if trailers > self.max_head {
                return Err(Refusal::TrailersTooLarge { max: self.max_head }.into());
            }
        }
    }
}

/// The size of a chunk from its size line (`line`, without its line end): hexadecimal
/// digits, then optional whitespace and extensions (`;name=value`), which are ignored.
///
/// httparse reads the size (given back its CRLF). The digits are counted first: httparse
/// reads a line without digits as size 0 and takes a 16th digit, and a chunked body has
/// always been refused for either here. The extensions are cut off before httparse sees
/// them: they are ignored whatever they hold, where httparse refuses a bare CR in one.
fn chunk_size(mut line: Vec<u8>) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if !(1..=15).contains(&digits) {
        return None;
    }
    if let Some(extensions) = line.iter().position(|&b| b == b';') {
        line.truncate(extensions);
    }
    line.extend_from_slice(b"\r\n");
    match httparse::parse_chunk_size(&line) {
        Ok(httparse::Status::Complete((used, size))) if used == line.len() => Some(size),
        _ => None,
    }
}

/// Why httparse refused a head: too many headers (431), or anything else (400).
fn head_refusal(err: httparse::Error) -> Refusal {
    match err {
        httparse::Error::TooManyHeaders => Refusal::TooManyHeaders { max: MAX_HEADERS },
        err => Refusal::MalformedHead(err),
    }
}

/// What the server needs from a request's head.
#[derive(Debug)]
pub(crate) struct Head {
    method: String,
    target: String,
    /// HTTP/1.0 (else 1.1).
    pub(crate) http10: bool,
    content_type: Option<String>,
    pub(crate) framing: Framing,
    /// The client asked to close after this request (or, for HTTP/1.0, did not ask to
    /// keep the connection).
    pub(crate) close: bool,
    pub(crate) expect_continue: bool,
    /// The head's size in bytes, request line to the blank line.
    pub(crate) size: usize,
}

impl Head {
    /// The head as the endpoint and routes see it.
    #[inline]
    pub(crate) fn request(&self) -> RequestHead<'_> {
        let mut request = RequestHead::new(&self.method, &self.target);
        if let Some(content_type) = &self.content_type {
            request = request.with_content_type(content_type);
        }
        if let Framing::Length(n) = self.framing {
            request = request.with_content_length(n);
        }
        request
    }

    /// Whether the reply goes without its body: the reply to a `HEAD`.
    #[inline]
    pub(crate) fn is_head(&self) -> bool {
        self.method.eq_ignore_ascii_case("HEAD")
    }
}

/// Reads what the server needs from a parsed head, refusing framing it cannot trust.
fn interpret(request: &httparse::Request<'_, '_>) -> Result<Head, Refusal> {
    let http10 = request.version == Some(0);
    let mut content_length: Option<u64> = None;
    let mut codings: Vec<String> = Vec::new();
    let mut transfer_encoding = false;
    let mut content_type = None;
    let mut close = false;
    let mut keep_alive = false;
    let mut expect_continue = false;
    for header in request.headers.iter() {
        let value = String::from_utf8_lossy(header.value);
        let value = value.trim();
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse::<u64>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(Refusal::BadContentLength)?;
            if content_length.is_some_and(|other| other != length) {
                return Err(Refusal::ConflictingContentLengths);
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            codings.extend(
                value
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty()),
            );
        } else if name.eq_ignore_ascii_case("content-type") {
            if content_type.is_none() {
                content_type = Some(value.to_owned());
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue |= value.eq_ignore_ascii_case("100-continue");
        }
    }
    if transfer_encoding && codings.is_empty() {
        // RFC 9112 requires a coding; a proxy in front might frame such a request by
        // something else than its Content-Length, so neither side can be trusted.
        return Err(Refusal::NoTransferCoding);
    }
    let framing = if !codings.is_empty() {
        if content_length.is_some() {
            return Err(Refusal::LengthAndTransferEncoding);
        }
        match codings.iter().position(|c| c != "chunked") {
            None if codings.len() == 1 => Framing::Chunked,
            Some(at) if codings.last().map(String::as_str) == Some("chunked") => {
                return Err(Refusal::UnsupportedTransferCoding(codings.swap_remove(at)))
            }
            _ => return Err(Refusal::UnknownBodyLength),
        }
    } else {
        match content_length {
            Some(0) | None => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    Ok(Head {
        method: request.method.unwrap_or_default().to_owned(),
        target: request.path.unwrap_or_default().to_owned(),
        http10,
        content_type,
        framing,
        close: close || (http10 && !keep_alive),
        expect_continue,
        size: 0,
    })
}

/// What the client needs from a response's head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) framing: Framing,
}

/// A response's content type and framing: chunked when its last transfer coding is,
/// else its `Content-Length`, else up to the end of the stream.
fn response_head(status: u16, headers: &[httparse::Header<'_>]) -> Result<ResponseHead, Refusal> {
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
        } else if header.name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked
        {
            let length = value()
                .parse::<u64>()
                .map_err(|_| Refusal::BadContentLength)?;
            framing = Framing::Length(length);
        }
    }
    Ok(ResponseHead {
        status,
        content_type,
        framing,
    })
}

/// What a response says about its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connection {
    /// HTTP/1.1 default: nothing to say.
    KeepAlive,
    /// HTTP/1.0 that asked for keep-alive: `Connection: keep-alive`.
    KeepAlive10,
    /// `Connection: close`.
    Close,
}

/// The whole response, head and body, in one buffer for one write; without the body for
/// the reply to a `HEAD` (whose `Content-Length` is still the body's).
pub(crate) fn encode_response(
    response: &Response,
    connection: Connection,
    with_body: bool,
) -> Vec<u8> {
    let body = response.body();
    let mut out = Vec::with_capacity(200 + body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        response.status(),
        response.reason()
    );
    if is_sendable(response.content_type()) {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(response.content_type().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n", body.len());
    for (name, value) in response.sendable_headers() {
        title_case(name, &mut out);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match connection {
        Connection::KeepAlive => {}
        Connection::KeepAlive10 => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Connection::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

/// A whole request, head and body, in one buffer for one write: `Content-Length` framing
/// and `Connection: close`.
pub(crate) fn encode_request(
    method: &str,
    target: &str,
    host: &str,
    content_type: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(200 + body.len());
    let _ = write!(
        out,
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_hex_with_optional_extensions() {
        let cases: [(&[u8], Option<u64>); 14] = [
            (b"0", Some(0)),
            (b"1c;a\rb", Some(28)),
            (b"1c;x\r\r", Some(28)),
            (b"1c ;", Some(28)),
            (b"1a", Some(26)),
            (b"FF", Some(255)),
            (b"10;name=value", Some(16)),
            (b"10 ; ext", Some(16)),
            (b"10\t", Some(16)),
            (b"", None),
            (b"x1", None),
            (b"10x", None),
            (b"1 0", None),
            (b"1000000000000000", None),
        ];
        for (line, expected) in cases {
            assert_eq!(
                chunk_size(line.to_vec()),
                expected,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn replies_are_one_buffer_with_exact_framing() {
        let response = Response::text(405, "405 Method Not Allowed: no\n");
        let bytes = encode_response(&response, Connection::Close, true);
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nContent-Length: 27\r\n"), "{text}");
        assert!(
            text.contains("\r\nConnection: close\r\n\r\n405 Method Not Allowed: no\n"),
            "{text}"
        );
    }

    #[test]
    fn framing_headers_of_a_route_are_not_sent_and_names_are_title_cased() {
        use ::http::header::{self, HeaderName, HeaderValue};
        let response = Response::text(200, "ok")
            .with_header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
            .with_header(header::CONTENT_LENGTH, HeaderValue::from_static("1"))
            .with_header(header::CONNECTION, HeaderValue::from_static("close"))
            .with_header(header::CONTENT_TYPE, HeaderValue::from_static("a/b"))
            .with_header(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            )
            .with_header(
                HeaderName::from_static("x-request-id"),
                HeaderValue::from(7),
            );
        let text =
            String::from_utf8(encode_response(&response, Connection::KeepAlive, false)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\
             Cache-Control: no-store\r\nX-Request-Id: 7\r\n\r\n"
        );
    }

    fn request(bytes: &[u8]) -> Result<(Head, Vec<u8>), ReadError> {
        let mut reader = Reader::new(bytes, MAX_REQUEST_HEAD);
        let head = reader.read_request_head(Instant::now() + std::time::Duration::from_secs(1))?;
        let body = reader.read_body(head.framing, 100, None)?;
        Ok((head, body))
    }

    /// A [`BodyBudget`] that grants everything and remembers what it was asked.
    #[derive(Default)]
    struct Asked(Vec<usize>);

    impl BodyBudget for Asked {
        fn grow_to(&mut self, bytes: usize) -> Result<(), Refusal> {
            self.0.push(bytes);
            Ok(())
        }
    }

    fn body_of(bytes: &[u8], limit: usize, budget: &mut Asked) -> Result<Vec<u8>, ReadError> {
        let mut reader = Reader::new(bytes, MAX_REQUEST_HEAD);
        let head = reader.read_request_head(Instant::now() + std::time::Duration::from_secs(1))?;
        reader.read_body_within(head.framing, limit, None, budget)
    }

    #[test]
    fn a_declared_length_is_asked_for_as_the_body_arrives() {
        let mut request = b"POST /a HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n".to_vec();
        request.extend_from_slice(&[7; 100]);
        let mut asked = Asked::default();
        assert!(matches!(
            body_of(&request, 1 << 20, &mut asked),
            Err(ReadError::Closed)
        ));
        assert_eq!(asked.0, [FIRST_BODY_CAPACITY]);

        request.resize(request.len() - 100 + (1 << 20), 7);
        let mut asked = Asked::default();
        assert_eq!(
            body_of(&request, 1 << 20, &mut asked).unwrap().len(),
            1 << 20
        );
        assert_eq!(asked.0, [64, 128, 256, 512, 1024].map(|k| k * 1024));
    }

    #[test]
    fn a_body_of_many_small_chunks_grows_its_buffer_a_few_times() {
        let mut request = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..100_000 {
            request.extend_from_slice(b"1\r\nx\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        let mut asked = Asked::default();

        let body = body_of(&request, 1 << 20, &mut asked).unwrap();

        assert_eq!(body.len(), 100_000);
        assert_eq!(asked.0, [64 * 1024, 128 * 1024]);
    }

    #[test]
    fn request_bodies_are_framed_by_length_or_chunks() {
        let (head, body) = request(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((head.framing, &body[..]), (Framing::Length(3), &b"abc"[..]));
        let (head, body) = request(
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\n1;x=y\r\nc\r\n0\r\nT: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!((head.framing, &body[..]), (Framing::Chunked, &b"abc"[..]));
        let (head, body) = request(b"GET /a HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(
            (head.framing, head.close, &body[..]),
            (Framing::Empty, true, &b""[..])
        );
    }

    #[test]
    fn broken_requests_are_refused_with_their_reason() {
        let cases: [(&[u8], u16); 9] = [
            (b"POST /a HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (
                b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (b"POST /a HTTP/1.1\r\nTransfer-Encoding: ,\r\n\r\n", 400),
            (
                b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
            ),
            (
                b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                400,
            ),
            (
                b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                400,
            ),
            (
                b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
                400,
            ),
            (
                b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n",
                413,
            ),
            (b"POST /a HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413),
        ];
        for (bytes, status) in cases {
            match request(bytes) {
                Err(ReadError::Refused(refusal)) => assert_eq!(
                    refusal.status(),
                    status,
                    "{:?}: {refusal}",
                    String::from_utf8_lossy(bytes)
                ),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
            }
        }
    }
}
