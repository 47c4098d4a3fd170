//! What the crate logs per request, captured by a logger of the test's own: one `debug`
//! line for each answered batch, one `warn` (4xx) or `error` (5xx) line for each failed
//! one, never two lines for one request. One test, because the logger is the process's.
#![cfg(feature = "server")]

mod support;

use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};
use statefun_sync::http::Server;
use statefun_sync::testing::v2::Request;
use support::http::{error_cases, handler, post, Client};
use support::ping;

/// The crate's log records, as (level, message).
static RECORDS: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        if record.target().starts_with("statefun_sync") {
            let line = (record.level(), record.args().to_string());
            RECORDS.lock().unwrap().push(line);
        }
    }

    fn flush(&self) {}
}

/// The records since the last call.
fn take() -> Vec<(Level, String)> {
    std::mem::take(&mut *RECORDS.lock().unwrap())
}

#[test]
fn each_request_logs_one_line_debug_when_answered_warn_or_error_when_it_fails() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(LevelFilter::Debug);
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .start(handler())
        .unwrap();
    take();

    // An answered batch: one debug line with the type, the id, the invocations, the
    // states changed, the sizes and the time.
    let request = Request::to("test/stateful", "alice")
        .with_state("seen", None)
        .invoke(ping(1))
        .invoke(ping(2))
        .to_bytes();
    let mut client = Client::to(&server);
    let response = client.post("/statefun", &request).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let records = take();
    assert_eq!(records.len(), 1, "{records:#?}");
    let (level, line) = &records[0];
    assert_eq!(*level, Level::Debug);
    let expected = format!(
        "POST `/statefun` 200 for function type `test/stateful`, id `alice`: 2 invocations, \
         1 states changed, {} bytes in, {} bytes out, ",
        request.len(),
        response.body.len()
    );
    assert!(line.starts_with(&expected), "{line}");
    assert!(line.ends_with('s'), "a duration ends the line: {line}");

    // handle() on its own logs the same line, without the HTTP part.
    handler().handle(&request).unwrap();
    let records = take();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert!(
        records[0].1.starts_with(
            "function type `test/stateful`, id `alice`: 2 invocations, 1 states changed, "
        ),
        "{records:?}"
    );

    // With metrics, the handler reads the clock whatever the level: the same one line at
    // debug, none above it.
    #[cfg(feature = "metrics")]
    {
        let measured = handler().with_metrics(&statefun_sync::metrics::Metrics::new());
        measured.handle(&request).unwrap();
        let records = take();
        assert_eq!(records.len(), 1, "{records:#?}");
        assert!(
            records[0]
                .1
                .starts_with("function type `test/stateful`, id `alice`: "),
            "{records:?}"
        );
        log::set_max_level(LevelFilter::Info);
        measured.handle(&request).unwrap();
        log::set_max_level(LevelFilter::Debug);
        assert_eq!(take(), []);
    }

    // Each failure: one line, `warn` for a 4xx, `error` for a 5xx; a batch that named
    // its target names its function type and address.
    for (what, bytes, status, _) in error_cases() {
        let mut client = Client::to(&server);
        client.send(&bytes).unwrap();
        assert_eq!(client.read_response().unwrap().status, status, "{what}");
        let records = take();
        assert_eq!(records.len(), 1, "{what}: {records:#?}");
        let (level, line) = &records[0];
        let expected = if status >= 500 {
            Level::Error
        } else {
            Level::Warn
        };
        assert_eq!(*level, expected, "{what}: {line}");
        assert!(line.contains(&status.to_string()), "{what}: {line}");
    }
    let failing = [
        ("test/fail", 500, Level::Error, "the database is down"),
        ("test/panic", 500, Level::Error, "a bug in the function"),
        ("test/nobody", 404, Level::Warn, "no function"),
        ("test/stateful", 400, Level::Warn, "`seen`"),
    ];
    for (function_type, status, level, cause) in failing {
        let request = Request::to(function_type, "bob").invoke(ping(1)).to_bytes();
        let mut client = Client::to(&server);
        client.send(&post("/statefun", &request)).unwrap();
        assert_eq!(client.read_response().unwrap().status, status);
        let records = take();
        assert_eq!(records.len(), 1, "{function_type}: {records:#?}");
        let line = &records[0].1;
        assert_eq!(records[0].0, level, "{line}");
        let names = format!(
            "POST `/statefun` {status} for function type `{function_type}`, address \
             `{function_type}/bob`: "
        );
        assert!(line.starts_with(&names), "{line}");
        assert!(line.contains(cause), "{line}");
    }
}
