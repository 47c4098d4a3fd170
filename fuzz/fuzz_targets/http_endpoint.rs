//! The server-neutral HTTP adapter, `http::Endpoint`, on an arbitrary method, request
//! target, content type, declared length and body, through `respond` (a streamed body),
//! `respond_bytes` and `check_head`.
//!
//! Properties: no panic; the status is the one the documented table gives for the head
//! (path 404, then method 405, then content type 415, then declared length 413), else the
//! handler's answer for the body (413 over the limit); a 200 carries exactly
//! `handle(body)` as `application/octet-stream`; an error body is `text/plain`, starts
//! with its status line, is at most 1 KiB, and quotes nothing raw (no control characters
//! but its final newline); a 405 says `Allow: POST`; `respond` and `respond_bytes` agree.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use statefun_sync::http::{Endpoint, RequestHead};
use statefun_sync_fuzz::{check_text, handler, install_panic_hook, reset, take};

/// Small, so the fuzzer reaches the limit.
const LIMIT: usize = 512;

#[derive(Arbitrary, Debug)]
enum MethodIn {
    Post,
    Lower,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum TargetIn {
    Served { query: Option<String> },
    Absolute { authority: String, path: String },
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum ContentTypeIn {
    None,
    OctetStream,
    WithParameters(String),
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: MethodIn,
    target: TargetIn,
    content_type: ContentTypeIn,
    /// `Some`: the declared length is the body's, or this, when `lie` is set.
    declared: Option<(bool, u64)>,
    body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    install_panic_hook();
    let endpoint = Endpoint::new().with_max_body_size(LIMIT);
    let method = match &input.method {
        MethodIn::Post => "POST".to_owned(),
        MethodIn::Lower => "post".to_owned(),
        MethodIn::Other(m) => m.clone(),
    };
    let target = match &input.target {
        TargetIn::Served { query: None } => "/statefun".to_owned(),
        TargetIn::Served { query: Some(q) } => format!("/statefun?{q}"),
        TargetIn::Absolute { authority, path } => format!("http://{authority}{path}"),
        TargetIn::Other(t) => t.clone(),
    };
    let content_type = match &input.content_type {
        ContentTypeIn::None => None,
        ContentTypeIn::OctetStream => Some("application/octet-stream".to_owned()),
        ContentTypeIn::WithParameters(p) => Some(format!("Application/Octet-Stream; {p}")),
        ContentTypeIn::Other(c) => Some(c.clone()),
    };
    let mut head = RequestHead::new(&method, &target);
    if let Some(c) = &content_type {
        head = head.with_content_type(c);
    }
    let declared = input
        .declared
        .map(|(lie, n)| if lie { n } else { input.body.len() as u64 });
    if let Some(n) = declared {
        head = head.with_content_length(n);
    }

    let refusal = endpoint.check_head(&head);
    reset();
    let streamed = endpoint.respond(handler(), &head, &input.body[..]);
    let model = take();
    let in_memory = endpoint.respond_bytes(handler(), &head, &input.body);

    // The oracle for the head, from the documented table.
    let path = path_of(&target);
    let expected_head = if path != "/statefun" {
        Some(404)
    } else if !method.eq_ignore_ascii_case("POST") {
        Some(405)
    } else if content_type.as_deref().is_some_and(|c| !is_octet_stream(c)) {
        Some(415)
    } else if declared.is_some_and(|n| n > LIMIT as u64) {
        Some(413)
    } else {
        None
    };
    assert_eq!(
        refusal.as_ref().map(|r| r.status()),
        expected_head,
        "check_head for {method:?} {target:?} {content_type:?} {declared:?}"
    );
    let expected = match expected_head {
        Some(status) => status,
        None if input.body.len() > LIMIT => 413,
        None => match handler().handle(&input.body) {
            Ok(_) => 200,
            Err(err) => err.status(),
        },
    };
    assert_eq!(streamed.status(), expected, "respond: {streamed:?}");
    if expected_head.is_none() && input.body.len() <= LIMIT && model.failure.is_none() {
        // A body the handler answered the same way both times.
        assert_eq!(streamed, in_memory, "respond and respond_bytes differ");
    }
    for response in [&streamed, &in_memory] {
        if response.status() == 200 {
            assert_eq!(response.content_type(), "application/octet-stream");
            assert_eq!(response.body(), handler().handle(&input.body).unwrap());
            continue;
        }
        assert_eq!(response.content_type(), "text/plain; charset=utf-8");
        let body = response.body();
        assert!(body.len() <= 1024, "an error body of {} bytes", body.len());
        let text = std::str::from_utf8(body).expect("an error body is UTF-8");
        assert!(
            text.starts_with(&format!("{} {}: ", response.status(), response.reason())),
            "{text:?}"
        );
        let text = text
            .strip_suffix('\n')
            .expect("an error body ends with a newline");
        check_text(text);
        if response.status() == 405 {
            let allow: Vec<_> = response.headers().get_all("allow").iter().collect();
            assert_eq!(allow, ["POST"]);
        }
    }
});

/// The path of a request target, as the adapter documents it: without the scheme and
/// authority of an absolute form, without the query string or fragment.
fn path_of(target: &str) -> &str {
    let lower = target.to_ascii_lowercase();
    let mut rest = target;
    for scheme in ["http://", "https://"] {
        if lower.starts_with(scheme) {
            let after = &target[scheme.len()..];
            rest = after.find('/').map_or("/", |at| &after[at..]);
            break;
        }
    }
    rest.split(['?', '#']).next().unwrap_or("")
}

fn is_octet_stream(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    media_type.is_empty() || media_type.eq_ignore_ascii_case("application/octet-stream")
}
