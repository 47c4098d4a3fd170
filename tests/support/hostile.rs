//! What the hostile-input tests of both protocols (`hostile_input.rs`, `hostile_input3.rs`,
//! `hostile_shapes.rs`) share: raw protobuf encoders for bodies no honest runtime sends (huge length prefixes,
//! deeply nested groups, invalid UTF-8), the assertions on the errors they get, and the
//! bound on the time of the request shapes of [`shapes`](super::shapes) (issue 21).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use statefun_sync::{Error, ProtocolVersion, RequestReplyHandler};

use super::shapes::{Shape, Shaped};

/// The error `handle()` returns for `body`; panics if it returned a reply.
pub fn error_for(handler: &RequestReplyHandler, body: &[u8]) -> Error {
    match handler.handle(body) {
        Ok(reply) => panic!("expected an error, got a reply of {} bytes", reply.len()),
        Err(err) => err,
    }
}

/// `err` is a `MalformedRequest` at a field starting with `field_prefix`, a 400, with a
/// short report.
pub fn assert_malformed(err: &Error, field_prefix: &str, what: &str) {
    match err {
        Error::MalformedRequest { field, .. } => {
            assert!(field.starts_with(field_prefix), "{what}: field {field}")
        }
        other => panic!("{what}: expected MalformedRequest, got {other:?}"),
    }
    assert_eq!(err.status(), 400, "{what}");
    assert_short(err, what);
}

/// The report is what goes into the HTTP error body and the log line: bounded, escaped.
pub fn assert_short(err: &Error, what: &str) {
    let report = err.report();
    assert!(
        report.len() <= Error::MAX_REPORT_LEN,
        "{what}: {} bytes",
        report.len()
    );
    assert!(!report.chars().any(char::is_control), "{what}: {report:?}");
}

/// `err` is `TooManyStates` with the limit `limit`, a 413.
pub fn assert_too_many_states(err: &Error, limit: usize) {
    assert!(
        matches!(err, Error::TooManyStates { limit: l } if *l == limit),
        "{err:?}"
    );
    assert_eq!(err.status(), 413);
}

/// `err` is `TooManyInvocations` with the limit `limit`, a 413.
pub fn assert_too_many_invocations(err: &Error, limit: usize) {
    assert!(
        matches!(err, Error::TooManyInvocations { limit: l } if *l == limit),
        "{err:?}"
    );
    assert_eq!(err.status(), 413);
}

/// A varint, as protobuf encodes it.
pub fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

/// A length-delimited field `tag` holding `payload`.
pub fn field(tag: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = varint(u64::from(tag) << 3 | 2);
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

/// A length-delimited field `tag` that claims `claim` bytes and holds none.
pub fn claim(tag: u32, claim: u64) -> Vec<u8> {
    let mut out = varint(u64::from(tag) << 3 | 2);
    out.extend(varint(claim));
    out
}

/// `depth` nested start-groups of the unknown field 9, each closed.
pub fn nested_groups(depth: usize) -> Vec<u8> {
    let mut groups = vec![0x4b; depth];
    groups.extend(std::iter::repeat_n(0x4c, depth));
    groups
}

/// 10,000 nested start-groups of the unknown field 9, each closed: far past any reader's
/// nesting limit.
pub fn deep_groups() -> Vec<u8> {
    nested_groups(10_000)
}

/// `body` with the first byte of the first occurrence of `marker` (valid text) replaced by
/// `0xff`, which is never valid UTF-8.
pub fn with_invalid_utf8(body: &[u8], marker: &str) -> Vec<u8> {
    let mut body = body.to_vec();
    let at = body
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .unwrap_or_else(|| panic!("{marker:?} in the body"));
    body[at] = 0xff;
    body
}

/// How long `handle()` may take on a request of a [`Shape`] of a few MiB: some six times
/// what a debug build took for the slowest of the tests' shapes at 8 MiB on two cores that
/// other builds kept busy (2.6 s), and some six times less than the quadratic decoding of
/// 4267bea (issue 21) took for the merged ones there (82 to 113 s).
pub const SHAPE_BOUND: Duration = Duration::from_secs(15);

/// `handler.handle(body)`, run in a thread of its own, and how long it took; a panic
/// naming `what` once `bound` has passed without a result. The thread of a request that
/// takes longer is left to finish on its own: the test fails at the bound, without
/// waiting for it.
pub fn handle_within(
    handler: RequestReplyHandler,
    body: Vec<u8>,
    bound: Duration,
    what: &str,
) -> (Result<Vec<u8>, Error>, Duration) {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let reply = handler.handle(&body);
        let _ = done.send((reply, started.elapsed()));
    });
    match result.recv_timeout(bound) {
        Ok(answered) => answered,
        Err(_) => panic!("{what}: handle() took more than {bound:?}"),
    }
}

/// Builds the request of `shape` for `version` at about `size` bytes, and asserts that
/// `handle()` answers it within [`SHAPE_BOUND`] with the reply its function makes (every
/// state read, the first one written). Returns the request, for more checks.
pub fn assert_answered_in_time(shape: Shape, version: ProtocolVersion, size: usize) -> Shaped {
    let shaped = shape.build(version, size);
    let what = format!(
        "{} on {version}, {} bytes, {} states, {} invocations",
        shape.name(),
        shaped.body.len(),
        shaped.states.len(),
        shaped.invocations
    );
    let (reply, took) = handle_within(
        shaped.handler(false),
        shaped.body.clone(),
        SHAPE_BOUND,
        &what,
    );
    let reply = reply.unwrap_or_else(|e| panic!("{what}: {}", e.report()));
    shaped
        .check_reply(&reply)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!("{what}: answered in {took:?}");
    shaped
}
