//! What the fuzz targets share: a registry whose functions run a script taken from the
//! fuzzed message bytes (so the fuzzer drives every `Context` operation), a model of what
//! the script did, and the properties every answer of `handle()` must have.
//!
//! The script is the argument's `value` bytes, read front to back. Each operation is one
//! byte: the low four bits choose the operation, the high bit says whether an error from
//! it is passed up with `?` (ending the batch) or ignored. Operands (names, ids, type
//! URLs, delays) follow as further bytes; a script that runs out of bytes just ends.
//!
//! The items at the root serve the 2.2 targets; [`v3`] is the same kit for a handler built
//! with `RequestReplyHandler::v3` and the typed API.

mod script;
pub mod v3;

use std::cell::RefCell;
use std::sync::{Once, OnceLock};

use prost::Message;
use prost_types::Any;
use script::{last_write, Script, Step, SCRIPTED_PANIC};
use statefun_sync::proto::polyglot::{from_function, FromFunction};
use statefun_sync::testing::v2::Reply;
use statefun_sync::testing::StateChange;
use statefun_sync::{
    kafka_record_v2, kinesis_record_v2, pack, unpack, Context, Error, RequestReplyHandler,
    StatefulFunctions,
};

/// Takes the message as an `Any` and runs its script.
pub const ALL: &str = "fuzz/all";
/// Takes a `google.protobuf.Duration`, runs a script of its `seconds` bytes.
pub const TYPED: &str = "fuzz/typed";
/// As [`ALL`], but declares the states `a` and `b`.
pub const DECLARED: &str = "fuzz/declared";

/// The state names a script uses most (`missing` is never carried by the seeds).
pub const STATE_NAMES: [&str; 4] = ["a", "b", "c", "missing"];

/// Error chains longer than this are a finding: an error must never carry megabytes of
/// request text.
pub const MAX_CHAIN: usize = 2048;

/// What the script did during one `handle()` call, for the checks afterwards.
#[derive(Debug, Default)]
pub struct Model {
    /// Messages sent with `send`/`reply`, raw or packed, that succeeded.
    pub messages: usize,
    /// Delayed messages that succeeded.
    pub delayed: usize,
    /// Egress messages that succeeded.
    pub egresses: usize,
    /// The last successful write to each state: `Some(value)` set, `None` deleted.
    pub written: Vec<(String, Option<Any>)>,
    /// The status the batch must fail with, once a function passed an error up or panicked.
    pub failure: Option<u16>,
    /// A property broken inside a function (checked outside, where a panic is not caught).
    pub violation: Option<String>,
    /// How many invocations ran.
    pub invocations: usize,
}

thread_local! {
    static MODEL: RefCell<Model> = RefCell::new(Model::default());
}

/// Forgets the previous input's model.
pub fn reset() {
    MODEL.with(|m| *m.borrow_mut() = Model::default());
}

/// The model of the input just handled.
pub fn take() -> Model {
    MODEL.with(|m| std::mem::take(&mut *m.borrow_mut()))
}

fn with_model<T>(f: impl FnOnce(&mut Model) -> T) -> T {
    MODEL.with(|m| f(&mut m.borrow_mut()))
}

/// libFuzzer's panic hook aborts on every panic, even one that `handle()` catches. Keep
/// that for every panic but the script's own.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if message.is_some_and(|m| m.starts_with(SCRIPTED_PANIC)) {
                return;
            }
            fuzzer_hook(info);
        }));
    });
}

/// The handler every target uses, built once.
pub fn handler() -> &'static RequestReplyHandler {
    static HANDLER: OnceLock<RequestReplyHandler> = OnceLock::new();
    HANDLER.get_or_init(new_handler)
}

/// A new handler with the scripted functions: `fuzz/all`, `fuzz/typed`, `fuzz/declared`.
pub fn new_handler() -> RequestReplyHandler {
    {
        let mut functions = StatefulFunctions::new();
        functions
            .bind(ALL, |ctx, message: Any| run_script(ctx, &message.value))
            .expect("valid typename");
        functions
            .bind_typed(TYPED, |ctx, message: prost_types::Duration| {
                run_script(ctx, &message.seconds.to_le_bytes())
            })
            .expect("valid typename");
        functions
            .bind(DECLARED, |ctx, message: Any| {
                run_script(ctx, &message.value)
            })
            .expect("valid typename")
            .state("a")
            .state("b");
        RequestReplyHandler::v2(functions)
    }
}

/// The typenames a 2.2 script sends to, before text (see [`Script::typename`]).
const TYPENAMES: [&str; 5] = [ALL, "fuzz/other", "nonamespace", "/noname", "fuzz/"];

/// The step of a short delay, in nanoseconds (see [`Script::delay`]).
const NANOS_STEP: u64 = 1;

/// A `google.protobuf.Duration` of a byte of seconds.
fn duration_message(s: &mut Script<'_>) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::from(s.byte_or_zero()),
        nanos: 0,
    }
}

/// What an effect counts as, when it succeeds.
enum Counted {
    Nothing,
    Message,
    Delayed,
    Egress,
    Written(String, Option<Any>),
}

fn run_script(ctx: &mut Context<'_>, script: &[u8]) -> anyhow::Result<()> {
    with_model(|m| m.invocations += 1);
    script::run(
        script,
        |s, op| operation(ctx, s, op),
        |counted| {
            with_model(|m| match counted {
                Counted::Nothing => {}
                Counted::Message => m.messages += 1,
                Counted::Delayed => m.delayed += 1,
                Counted::Egress => m.egresses += 1,
                Counted::Written(name, value) => last_write(&mut m.written, name, value),
            })
        },
        |status| with_model(|m| m.failure = Some(status)),
    )
}

/// Runs one operation of a script, `op` (its low four bits) with its operands from `s`.
fn operation(ctx: &mut Context<'_>, s: &mut Script<'_>, op: u8) -> Step<Counted> {
    Step::Done(match op {
        0 => {
            let (t, id, any) = (s.typename(&TYPENAMES), s.id(), s.any());
            ctx.send(&t, &id, any).map(|()| Counted::Message)
        }
        1 => {
            let (t, id, m) = (s.typename(&TYPENAMES), s.id(), duration_message(s));
            ctx.send(&t, &id, pack(&m)).map(|()| Counted::Message)
        }
        2 => ctx.reply(s.any()).map(|()| Counted::Message),
        3 => ctx
            .reply(pack(&duration_message(s)))
            .map(|()| Counted::Message),
        4 => {
            let (d, t, id, any) = (s.delay(NANOS_STEP), s.typename(&TYPENAMES), s.id(), s.any());
            ctx.send_after(d, &t, &id, any).map(|()| Counted::Delayed)
        }
        5 => {
            let (d, t, id, m) = (
                s.delay(NANOS_STEP),
                s.typename(&TYPENAMES),
                s.id(),
                duration_message(s),
            );
            ctx.send_after(d, &t, &id, pack(&m))
                .map(|()| Counted::Delayed)
        }
        6 => {
            let (t, any) = (s.typename(&TYPENAMES), s.any());
            ctx.send_egress(&t, any).map(|()| Counted::Egress)
        }
        7 => {
            let (t, topic, key, m) = (
                s.typename(&TYPENAMES),
                s.text(),
                s.text(),
                duration_message(s),
            );
            kafka_record_v2(&topic, &key, &m)
                .and_then(|record| ctx.send_egress(&t, pack(&record)))
                .map(|()| Counted::Egress)
        }
        8 => {
            let (t, stream, key, hash) = (s.typename(&TYPENAMES), s.text(), s.text(), s.text());
            let m = duration_message(s);
            kinesis_record_v2(&stream, &key, &hash, &m)
                .and_then(|record| ctx.send_egress(&t, pack(&record)))
                .map(|()| Counted::Egress)
        }
        9 => {
            let name = s.state_name(&STATE_NAMES);
            ctx.get_state(&name).map(|value| {
                check_read(&name, value.as_ref());
                Counted::Nothing
            })
        }
        10 => {
            let name = s.state_name(&STATE_NAMES);
            ctx.get_state(&name).map(|value| {
                // `unpack` judges the type; its error is the function's to raise or not.
                if let Some(any) = value {
                    let _ = unpack::<prost_types::Duration>(&any);
                }
                Counted::Nothing
            })
        }
        11 => {
            let (name, any) = (s.state_name(&STATE_NAMES), s.any());
            ctx.set_state(&name, any.clone())
                .map(|()| Counted::Written(name, Some(any)))
        }
        12 => {
            let (name, m) = (s.state_name(&STATE_NAMES), duration_message(s));
            ctx.set_state(&name, pack(&m))
                .map(|()| Counted::Written(name, Some(statefun_sync::pack(&m))))
        }
        13 => {
            let name = s.state_name(&STATE_NAMES);
            ctx.remove_state(&name)
                .map(|()| Counted::Written(name, None))
        }
        14 => return Step::Fail,
        15 => return Step::Panic,
        _ => Ok(Counted::Nothing),
    })
}

/// A read of a state written earlier in the batch must see that write.
fn check_read(name: &str, value: Option<&Any>) {
    with_model(|m| {
        if let Some((_, written)) = m.written.iter().find(|(n, _)| n == name) {
            if written.as_ref() != value {
                m.violation = Some(format!(
                    "state {name:?} read {value:?} after the batch wrote {written:?}"
                ));
            }
        }
    });
}

/// The properties of one `handle()` answer, given what the script did. Panics (the
/// fuzzer's finding) when one does not hold.
///
/// - `Ok`: the reply decodes as a `FromFunction` with an invocation result, and as a
///   [`Reply`]; it carries exactly as many messages, delayed messages and egress messages
///   as the script sent; one mutation per written state, with the last written value,
///   and none for any other state; and no function failed.
/// - `Err`: status 400, 404, 413 or 500 (the script's own failure's status when it failed);
///   a non-empty message of at most [`MAX_CHAIN`] bytes with no control characters.
pub fn check(result: &Result<Vec<u8>, Error>, model: &Model) {
    if let Some(violation) = &model.violation {
        panic!("inside the function: {violation}");
    }
    match result {
        Ok(reply) => {
            assert_eq!(
                model.failure, None,
                "the batch failed but handle() returned Ok"
            );
            let decoded = FromFunction::decode(reply.as_slice())
                .unwrap_or_else(|e| panic!("an Ok reply does not decode: {e}"));
            assert!(
                matches!(
                    decoded.response,
                    Some(from_function::Response::InvocationResult(_))
                ),
                "an Ok reply has no invocation result: {decoded:?}"
            );
            let reply = Reply::decode(reply).expect("an Ok reply decodes as a Reply");
            assert_eq!(reply.messages().len(), model.messages, "messages");
            assert_eq!(reply.delayed_messages().count(), model.delayed, "delayed");
            assert_eq!(reply.egresses().len(), model.egresses, "egresses");
            let changes = reply.state_changes();
            for (i, (name, _)) in changes.iter().enumerate() {
                assert!(
                    changes[..i].iter().all(|(earlier, _)| earlier != name),
                    "two mutations for state {name:?}: {changes:?}"
                );
            }
            assert_eq!(
                changes.len(),
                model.written.len(),
                "{changes:?} vs {model:?}"
            );
            for (name, written) in &model.written {
                let expected = match written {
                    Some(any) => StateChange::Modified(any.clone()),
                    None => StateChange::Deleted,
                };
                assert_eq!(reply.state_change(name), Some(&expected), "state {name:?}");
            }
        }
        Err(err) => check_error(err, model.failure),
    }
}

/// The properties of an error, see [`check`].
pub fn check_error(err: &Error, expected_status: Option<u16>) {
    let status = err.status();
    assert!(
        matches!(status, 400 | 404 | 413 | 500),
        "status {status} for {err:?}"
    );
    if let Some(expected) = expected_status {
        assert_eq!(status, expected, "{err:?}");
    }
    check_text(&err.report());
}

/// Findings reported in `/work/notes/FUZZ_FINDINGS.md` and not fixed yet in `src/`: the
/// text from each marker on is left out of [`check_text`], so the fuzzer goes on looking
/// for other problems. Set `STATEFUN_FUZZ_STRICT=1` to check them too; remove an entry
/// once its fix has landed.
///
/// F1 (`unpack_state` quoted the state's type URL raw) and F2 (`send` quoted a
/// function-supplied typename raw) were here until fixed in 163d4dc. (F4, a panic on a
/// request target with a multi-byte character at byte 7 or 8, was skipped by the HTTP
/// targets until fixed in 06665d9.)
const KNOWN_FINDINGS: &[(&str, &str)] = &[];

/// Whether `STATEFUN_FUZZ_STRICT` is set: known findings are checked too.
pub fn strict() -> bool {
    std::env::var_os("STATEFUN_FUZZ_STRICT").is_some()
}

/// An error text: non-empty, bounded, no control characters.
pub fn check_text(text: &str) {
    let mut text = text;
    if !strict() {
        for (_, marker) in KNOWN_FINDINGS {
            if let Some(at) = text.find(marker) {
                text = &text[..at];
            }
        }
    }
    assert!(!text.is_empty(), "an empty error message");
    assert!(
        text.len() <= MAX_CHAIN,
        "an error message of {} bytes: {}...",
        text.len(),
        &text[..text.floor_char_boundary_compat(200)]
    );
    assert!(
        !text.chars().any(char::is_control),
        "an error message with a raw control character: {text:?}"
    );
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, at: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, at: usize) -> usize {
        let mut at = at.min(self.len());
        while !self.is_char_boundary(at) {
            at -= 1;
        }
        at
    }
}
