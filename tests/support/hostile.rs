//! What the hostile-input tests of both protocols (`hostile_input.rs`, `hostile_input3.rs`)
//! share: raw protobuf encoders for bodies no honest runtime sends (huge length prefixes,
//! deeply nested groups, invalid UTF-8), and the assertions on the errors they get.

use statefun_sync::{Error, RequestReplyHandler};

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
