//! Differential test: this crate against the real Python SDK (`apache-flink-statefun==2.2.2`).
//!
//! A seeded generator builds a thousand requests (about 20,000 invocations); each runs through the Python SDK's
//! `RequestReplyHandler` (one Python process for all of them, `tests/differential/
//! reference.py`) and through [`RequestReplyHandler::handle`], and the two replies are
//! compared after parsing: mutations as a set keyed by state name, messages, delayed
//! messages and egress messages in order, every `Any` by type URL and decoded content. An
//! error must meet an error; a Python reply of zero bytes (it leaves `invocation_result`
//! unset when a batch did nothing) equals an empty `invocation_result`.
//!
//! The functions on both sides are one generic interpreter each: every message is a
//! script, a `google.protobuf.Value` holding a list of operations (`["send", typename,
//! id, any]`, `["set", state, any]`, `["get", state]`, ...; [`run_script`] lists them
//! all), which each side performs with its own SDK's API, as a user would. Reads are made
//! observable by sending what was read to `probe/out`.
//!
//! What the generator covers: batches of 1 to 100 invocations; states present with a
//! value, present without one, duplicated, unreadable, and absent (touching one is an
//! error); callers present and absent (replying without one is an error); every context
//! operation in both its `Any` and its `pack_and_` form; three function bindings (untyped,
//! one message type, a union of two); scripts and state values under other type URL
//! prefixes, state values encoded out of field order with unknown fields, invocations
//! without an argument; and error cases: every argument check of the Python SDK, a
//! failing and a panicking function (checked to be what stopped the batch on both sides),
//! unknown function types, a missing target, messages of the wrong type or that do not
//! decode, requests cut short (outside and inside the batch, between and within fields),
//! random bytes, and two requests concatenated (protobuf merges them). Every operation and
//! every way of failing is checked to have been generated.
//!
//! Deliberate differences, kept out of the generator:
//! - `unpack_state` of a state holding another message type: the crate errors, the
//!   Python SDK hands back an empty message.
//! - Delays the Python SDK computes wrongly: it sends `int(delay.total_seconds() *
//!   1000.0)`, and the float product truncates some whole-millisecond delays one
//!   millisecond short (`timedelta(milliseconds=1001)` goes out as 1000 ms); the crate
//!   sends the exact `Duration::as_millis`. Only delays the float arithmetic gets right
//!   are generated ([`python_delay_is_exact`]).
//! - Empty `google.protobuf.Struct` and `ListValue` messages as the message of a
//!   `pack_and_*` operation or of an egress record: Python's `if not message` finds them
//!   falsy ("missing message"); the crate sends them. The scripts pack `Value`s, which
//!   are always truthy.
//! - Requests the runtime never sends: callers whose type contains `/` or whose namespace
//!   or id is empty (the Python SDK re-parses `caller.typename()` when replying, so it
//!   replies to namespace `a/b` type `c` for caller `a`,`b/c`, and fails on the others; the
//!   crate replies to the caller's address as it came), state bytes with a known field of
//!   the wrong wire type (Python's parser keeps it as an unknown field, prost refuses it).
//!
//! Environment: `DIFF_SEED` (default fixed) and `DIFF_CASES` (default 1000) choose the
//! requests; the Python interpreter comes from `support::python` (`STATEFUN_PYTHON`, or
//! a virtualenv built once under the target directory). A failing request is saved under
//! `<CARGO_TARGET_TMPDIR>/differential-failures/` to replay.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use prost::Message;
use prost_types::{Any, Value};
use statefun_sync::proto::io::{KafkaProducerRecord, KinesisEgressRecord};
use statefun_sync::proto::polyglot::{self as proto, from_function, to_function};
use statefun_sync::{
    kafka_record_v2, kinesis_record_v2, message_union, pack, unpack, Context, FromAny,
    RequestReplyHandler, StatefulFunctions,
};
use support::differential::{
    self as diff, env_number, hex, items, list, n, number, python_delay_is_exact, python_delay_ms,
    s, show_value, text, unhex, PbValue, Rng, Target, DELIBERATE_PANIC, FAILURE_MESSAGE,
};

const DEFAULT_SEED: u64 = 0x5EED_0222;
const DEFAULT_CASES: usize = 1000;

/// Where "get", "unpack", "address" and "caller" report what they saw.
const PROBE: &str = "probe/out";
/// Sent by "get" and "unpack" for a state without a value.
const NONE_TYPE_URL: &str = "probe/None";

/// Every operation a script can hold ("fail" and "panic" only ever fail).
const ALL_OPERATIONS: &[&str] = &[
    "send",
    "pack_send",
    "reply",
    "pack_reply",
    "send_after",
    "pack_send_after",
    "egress",
    "pack_egress",
    "kafka",
    "kinesis",
    "set",
    "pack_set",
    "delete",
    "get",
    "unpack",
    "address",
    "caller",
];
/// How many ways `Generator::failing_invocation` has to make an invocation fail.
const FAILURE_KINDS: usize = 20;

const UNTYPED: &str = "diff/untyped";
/// Bound to the same function as `UNTYPED`: a namespace with a `/` (`diff/nested`).
const NESTED: &str = "diff/nested/fn";
const TYPED: &str = "diff/typed";
const UNION: &str = "diff/union";

#[test]
fn replies_match_the_python_sdk() {
    let seed = env_number("DIFF_SEED").unwrap_or(DEFAULT_SEED);
    let count = env_number("DIFF_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    let mut generator = Generator::new(seed);
    let cases: Vec<Case> = (0..count).map(|_| generator.case()).collect();

    let started = Instant::now();
    let python_outcomes = run_python(&cases);
    let python_time = started.elapsed();

    let started = Instant::now();
    diff::quiet_deliberate_panics();
    let handler = rust_handler();
    let rust_outcomes: Vec<Outcome> = cases
        .iter()
        .map(|case| match handler.handle(&case.bytes) {
            Ok(reply) => Outcome::from_reply(&reply),
            Err(error) => Outcome::Error(error.report()),
        })
        .collect();
    let rust_time = started.elapsed();

    let mut stats = BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    let mut identical = 0;
    for (index, case) in cases.iter().enumerate() {
        let (python, rust) = (&python_outcomes[index], &rust_outcomes[index]);
        let both = match (python, rust) {
            (Outcome::Error(_), Outcome::Error(_)) => "error",
            (Outcome::Reply(..), Outcome::Reply(..)) => "reply",
            _ => "mismatch",
        };
        *stats.entry(format!("{} -> {both}", case.kind)).or_default() += 1;
        if let (Outcome::Reply(_, p), Outcome::Reply(_, r)) = (python, rust) {
            identical += usize::from(p == r);
        }
        let mut problems = compare(python, rust);
        let expected = match case.expect {
            Expect::Reply => {
                matches!(python, Outcome::Reply(..)) && matches!(rust, Outcome::Reply(..))
            }
            Expect::Error => {
                matches!(python, Outcome::Error(_)) && matches!(rust, Outcome::Error(_))
            }
            Expect::Either => true,
        };
        // A deliberate failure must be the one that stopped the batch, on both sides.
        problems.extend(diff::deliberate_failure_problem(
            &case.note,
            python.error(),
            rust.error(),
        ));
        if !expected {
            problems.push(format!(
                "the generator built this case to end in {:?} on both sides",
                case.expect
            ));
        }
        if !problems.is_empty() {
            failures.push(report(seed, index, case, python, rust, &problems));
        }
    }

    diff::print_summary("differential", seed, &cases, python_time, rust_time, &stats);
    // Information only: parsed equality is the contract (Python writes no bytes for a
    // batch that did nothing, and may order map entries differently).
    println!("  byte-identical replies: {identical}");
    println!(
        "  operations in scripts that succeed: {:?}",
        generator.valid_ops
    );
    println!("  ways of failing: {:?}", generator.failure_kinds);
    if count >= DEFAULT_CASES {
        // The generator does what this file says it does: every operation, every failure.
        for op in ALL_OPERATIONS {
            assert!(
                generator.valid_ops.contains_key(*op),
                "no successful {op:?} generated"
            );
        }
        for kind in 0..FAILURE_KINDS {
            assert!(
                generator.failure_kinds.contains_key(&kind),
                "no failure of kind {kind}"
            );
        }
    }
    diff::assert_no_failures(&failures, count, seed);
}

/// The generator's own arithmetic for the Python SDK's delay, checked against the SDK so
/// that excluding the delays it gets wrong excludes exactly those.
#[test]
fn the_python_delay_model_matches_the_python_sdk() {
    let delays_us = [
        1u64,
        999,
        1_000,
        1_001_000,
        1_003_000,
        1_500,
        2_000_000,
        86_400_000_123,
    ];
    let program = diff::python_delay_program(&delays_us);
    let python: Vec<u64> = diff::python_output(&support::python::python(), &program)
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect();
    let model: Vec<u64> = delays_us.iter().map(|&us| python_delay_ms(us)).collect();
    assert_eq!(python, model);
    // The difference the generator avoids is real: 1001 ms goes out as 1000 ms.
    assert_eq!(python_delay_ms(1_001_000), 1_000);
    assert!(!python_delay_is_exact(1_001_000));
    assert!(python_delay_is_exact(1_000_000));
}

// ------------------------------------------------------------------------------------
// The Rust functions: one interpreter of the scripts, bound three ways.
// ------------------------------------------------------------------------------------

message_union! {
    /// What `diff/union` accepts: a script, or a string it sends to `probe/strings`.
    enum ScriptOrText {
        Script(PbValue),
        Text(String),
    }
}

fn rust_handler() -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions.bind(UNTYPED, untyped).expect("binds");
    functions.bind(NESTED, untyped).expect("binds");
    functions.bind_typed(TYPED, typed).expect("binds");
    functions.bind_typed(UNION, union).expect("binds");
    RequestReplyHandler::v2(functions)
}

/// `diff/untyped`: takes any message; runs it if it is a script, else does nothing.
fn untyped(ctx: &mut Context<'_>, message: Any) -> anyhow::Result<()> {
    match PbValue::from_any(&message) {
        Some(script) => run_script(ctx, &script?.0),
        None => Ok(()),
    }
}

/// `diff/typed`: takes only scripts.
fn typed(ctx: &mut Context<'_>, script: PbValue) -> anyhow::Result<()> {
    run_script(ctx, &script.0)
}

/// `diff/union`: runs scripts, and sends strings to the egress `probe/strings`.
fn union(ctx: &mut Context<'_>, message: ScriptOrText) -> anyhow::Result<()> {
    match message {
        ScriptOrText::Script(script) => run_script(ctx, &script.0),
        ScriptOrText::Text(text) => Ok(ctx.send_egress("probe/strings", pack(&text))?),
    }
}

/// Performs a script's operations; `reference.py` has the Python twin.
fn run_script(ctx: &mut Context<'_>, script: &Value) -> anyhow::Result<()> {
    for op in items(script) {
        let op = items(op);
        let s = |i: usize| text(&op[i]);
        let delay = |i: usize| Duration::from_micros(number(&op[i]) as u64);
        match s(0) {
            "send" => ctx.send(s(1), s(2), any_of(&op[3])?)?,
            "pack_send" => ctx.send(s(1), s(2), pack(&pb(&op[3])))?,
            "reply" => ctx.reply(any_of(&op[1])?)?,
            "pack_reply" => ctx.reply(pack(&pb(&op[1])))?,
            "send_after" => ctx.send_after(delay(1), s(2), s(3), any_of(&op[4])?)?,
            "pack_send_after" => ctx.send_after(delay(1), s(2), s(3), pack(&pb(&op[4])))?,
            "egress" => ctx.send_egress(s(1), any_of(&op[2])?)?,
            "pack_egress" => ctx.send_egress(s(1), pack(&pb(&op[2])))?,
            "kafka" => {
                let record = kafka_record_v2(s(2), s(3), &pb(&op[4]))?;
                ctx.send_egress(s(1), pack(&record))?;
            }
            "kinesis" => {
                let record = kinesis_record_v2(s(2), s(3), s(4), &pb(&op[5]))?;
                ctx.send_egress(s(1), pack(&record))?;
            }
            "set" => ctx.set_state(s(1), any_of(&op[2])?)?,
            "pack_set" => ctx.set_state(s(1), pack(&pb(&op[2])))?,
            "delete" => ctx.remove_state(s(1))?,
            "get" => {
                let value = ctx.get_state(s(1))?;
                ctx.send(PROBE, "get", value.unwrap_or_else(none_marker))?;
            }
            "unpack" => match ctx
                .get_state(s(1))?
                .as_ref()
                .map(unpack::<PbValue>)
                .transpose()?
            {
                Some(value) => ctx.send(PROBE, "unpack", pack(&value))?,
                None => ctx.send(PROBE, "unpack", none_marker())?,
            },
            "address" => {
                let address = ctx.address().to_string();
                ctx.send(PROBE, "address", pack(&address))?;
            }
            "caller" => {
                // The Python SDK's caller from an ingress is an address of empty strings.
                let caller = ctx.caller().map_or("//".to_owned(), |c| c.to_string());
                ctx.send(PROBE, "caller", pack(&caller))?;
            }
            "fail" => anyhow::bail!("{}", s(1)),
            "panic" => std::panic::panic_any(DELIBERATE_PANIC),
            other => anyhow::bail!("the test sent an unknown operation {other:?}"),
        }
    }
    Ok(())
}

fn pb(value: &Value) -> PbValue {
    PbValue(value.clone())
}

fn none_marker() -> Any {
    Any {
        type_url: NONE_TYPE_URL.to_owned(),
        value: Vec::new(),
    }
}

/// An `Any`, written in a script as `[type_url, hex of the value bytes]`.
fn any_of(value: &Value) -> anyhow::Result<Any> {
    let parts = items(value);
    let (type_url, hex) = match parts {
        [type_url, hex] => (text(type_url), text(hex)),
        _ => anyhow::bail!("an Any in a script is [type_url, hex]"),
    };
    let value = unhex(hex)?;
    Ok(Any {
        type_url: type_url.to_owned(),
        value,
    })
}

// ------------------------------------------------------------------------------------
// The generator.
// ------------------------------------------------------------------------------------

/// One generated request.
type Case = diff::Case<Expect>;

/// What the generator built a case to do on both sides.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Reply,
    Error,
    /// Truncated and random bytes: whatever the parsers make of them, as long as both agree.
    Either,
}

/// What a state holds, as far as the generator knows while it writes a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Held {
    Nothing,
    /// An `Any` holding a valid `google.protobuf.Value`.
    Value,
    /// An `Any` holding something else (unpacking it is a deliberate difference).
    Other,
    /// Bytes that are no `Any`: reading them is an error.
    Unreadable,
}

const FUNCTION_TYPES: &[&str] = &[
    "example/greeter",
    "com.example.app/counter",
    "org/apache/flink/fn",
    "x/y",
];
const EGRESS_TYPES: &[&str] = &["example/out", "com.example/kafka-egress", "a/b/c"];
const BAD_TYPENAMES: &[&str] = &["", "no-slash", "/name", "namespace/"];
const IDS: &[&str] = &["alice", "bob", "42", "user 7", "ünïcødé", "a/b", "0"];
const STATE_NAMES: &[&str] = &["count", "seen", "profile", "a.b-c", "ünï", ""];
const UNDECLARED_STATE: &str = "undeclared";
/// The numbers of generated `Value`s, beside a random whole one.
const NUMBERS: &[f64] = &[0.0, -0.0, 1.0, -1.5, 42.0, 1e300, std::f64::consts::PI];
const WORDS: &[&str] = &[
    "",
    "hello",
    "héllo ✓",
    "with \"quotes\"",
    "x",
    "long long long text",
];
const BLOB_TYPE_URLS: &[&str] = &[
    "type.googleapis.com/example.Ping",
    "example.com/types/x.Blob",
    "custom",
    "",
];
/// State values that are no `Any`, which both parsers refuse: a stray byte, a truncated
/// field, a truncated key.
const UNREADABLE_STATES: &[&[u8]] = &[&[0xff], &[0x0a, 0x05, b'a'], &[0x12]];

struct Generator {
    rng: Rng,
    /// How often each operation went into a script that runs without error.
    valid_ops: BTreeMap<String, usize>,
    /// How often each way of failing (see `failing_invocation`) was generated.
    failure_kinds: BTreeMap<usize, usize>,
}

/// A batch being written: its declared states and what they hold.
struct Batch {
    target: Option<proto::Address>,
    states: Vec<to_function::PersistedValue>,
    held: BTreeMap<String, Held>,
    invocations: Vec<to_function::Invocation>,
}

impl Batch {
    fn to_batch(&self) -> to_function::InvocationBatchRequest {
        to_function::InvocationBatchRequest {
            target: self.target.clone(),
            state: self.states.clone(),
            invocations: self.invocations.clone(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        proto::ToFunction {
            request: Some(to_function::Request::Invocation(self.to_batch())),
        }
        .encode_to_vec()
    }

    fn function_type(&self) -> String {
        self.target
            .as_ref()
            .map_or(String::new(), |t| format!("{}/{}", t.namespace, t.r#type))
    }
}

impl Generator {
    fn new(seed: u64) -> Self {
        Generator {
            rng: Rng(seed),
            valid_ops: BTreeMap::new(),
            failure_kinds: BTreeMap::new(),
        }
    }

    fn case(&mut self) -> Case {
        match self.rng.below(100) {
            0..=57 => {
                let batch = self.batch(true);
                self.finish("batch", String::new(), &batch, Expect::Reply)
            }
            58..=79 => {
                let target = *self.rng.pick(&[UNTYPED, UNTYPED, TYPED, UNION]);
                let (batch, note) = self.build_batch(target, true, true);
                self.finish("failing batch", note, &batch, Expect::Error)
            }
            80..=84 => {
                let batch = self.batch(true);
                let bytes = batch.encode();
                let cut = self.rng.below(bytes.len());
                Case {
                    kind: "truncated",
                    note: format!("the first {cut} of {} bytes", bytes.len()),
                    bytes: bytes[..cut].to_vec(),
                    invocations: 0,
                    expect: Expect::Either,
                }
            }
            85..=89 => {
                // The batch cut short inside an intact `ToFunction`, so that the parsers of
                // the inner messages meet the end: mostly an error, but a cut between two
                // fields leaves a valid batch of fewer states or invocations.
                let batch = self.batch(true).to_batch();
                let body = batch.encode_to_vec();
                let cut = if self.rng.percent(50) {
                    self.rng.below(body.len() + 1)
                } else {
                    // Between two fields (prost writes them in field order).
                    use prost::encoding::message::encoded_len;
                    let fields = batch.target.iter().map(|t| encoded_len(1, t));
                    let fields = fields
                        .chain(batch.state.iter().map(|s| encoded_len(2, s)))
                        .chain(batch.invocations.iter().map(|i| encoded_len(3, i)));
                    let ends: Vec<usize> = fields
                        .scan(0, |end, len| {
                            *end += len;
                            Some(*end)
                        })
                        .collect();
                    *self.rng.pick(&ends)
                };
                let mut bytes = Vec::new();
                prost::encoding::bytes::encode(100, &body[..cut].to_vec(), &mut bytes);
                Case {
                    kind: "truncated batch",
                    note: format!("the first {cut} of {} bytes of the batch", body.len()),
                    bytes,
                    invocations: 0,
                    expect: Expect::Either,
                }
            }
            90..=93 => {
                // Protobuf merges concatenated messages: the target's fields from both (the
                // second id wins), the states of both (a repeated name keeps its last value),
                // the invocations of the first then the second.
                let first = self.batch(true);
                let function_type = first.function_type();
                let (second, _) = self.build_batch(&function_type, false, false);
                let mut bytes = first.encode();
                bytes.extend(second.encode());
                Case {
                    kind: "concatenated",
                    note: String::new(),
                    bytes,
                    invocations: first.invocations.len() + second.invocations.len(),
                    expect: Expect::Reply,
                }
            }
            94..=95 => {
                let mut batch = self.batch(true);
                batch.invocations.clear();
                self.finish("no invocations", String::new(), &batch, Expect::Reply)
            }
            _ => self.malformed_request(),
        }
    }

    fn finish(&mut self, kind: &'static str, note: String, batch: &Batch, expect: Expect) -> Case {
        Case {
            kind,
            note,
            bytes: batch.encode(),
            invocations: batch.invocations.len(),
            expect,
        }
    }

    /// A batch that every function runs without error. `with_states`: whether it declares
    /// states.
    fn batch(&mut self, with_states: bool) -> Batch {
        let target = *self.rng.pick(&[UNTYPED, UNTYPED, NESTED, TYPED, UNION]);
        self.build_batch(target, with_states, false).0
    }

    /// A batch, valid but for one invocation that fails when `failing` (the Python SDK's
    /// checks, a function error, a message of the wrong type); also says which and how.
    fn build_batch(&mut self, target: &str, with_states: bool, failing: bool) -> (Batch, String) {
        let mut batch = Batch {
            target: Some(address(target, &self.id())),
            states: Vec::new(),
            held: BTreeMap::new(),
            invocations: Vec::new(),
        };
        if with_states {
            self.states(&mut batch);
        }
        let count = self.invocation_count();
        let fail_at = failing.then(|| self.rng.below(count));
        let mut note = String::new();
        for index in 0..count {
            if Some(index) == fail_at {
                let (invocation, what) = self.failing_invocation(&mut batch);
                note = format!("invocation {index}: {what}");
                batch.invocations.push(invocation);
                continue;
            }
            let caller = self.rng.percent(60).then(|| self.caller());
            let argument = self.valid_argument(&mut batch, caller.is_some());
            batch
                .invocations
                .push(to_function::Invocation { caller, argument });
        }
        (batch, note)
    }

    fn malformed_request(&mut self) -> Case {
        let mut batch = self.batch(true);
        let (note, bytes, expect) = match self.rng.below(7) {
            0 => {
                batch.target = Some(address("diff/unknown", "1"));
                (
                    "an unbound function type".to_owned(),
                    batch.encode(),
                    Expect::Error,
                )
            }
            6 => {
                // `diff/nested/fn` is namespace `diff/nested`, name `fn`: not this.
                batch.target = Some(proto::Address {
                    namespace: "diff".to_owned(),
                    r#type: "nested/fn".to_owned(),
                    id: "1".to_owned(),
                });
                (
                    "namespace `diff`, name `nested/fn`".to_owned(),
                    batch.encode(),
                    Expect::Error,
                )
            }
            1 => {
                batch.target = None;
                ("no target".to_owned(), batch.encode(), Expect::Error)
            }
            2 => {
                batch.target = Some(address("diff/", "1"));
                (
                    "a target with an empty name".to_owned(),
                    batch.encode(),
                    Expect::Error,
                )
            }
            3 => ("zero bytes".to_owned(), Vec::new(), Expect::Error),
            4 => {
                // A ToFunction with only an unknown field: no invocation batch.
                (
                    "no invocation batch".to_owned(),
                    vec![0x08, 0x01],
                    Expect::Error,
                )
            }
            _ => (
                "random bytes".to_owned(),
                self.rng.bytes(1, 40),
                Expect::Either,
            ),
        };
        Case {
            kind: "malformed request",
            note,
            bytes,
            invocations: batch.invocations.len(),
            expect,
        }
    }

    fn states(&mut self, batch: &mut Batch) {
        let count = *self.rng.pick(&[0, 1, 1, 2, 2, 3, 4, 5]);
        let mut names: Vec<&str> = STATE_NAMES.to_vec();
        for _ in 0..count {
            let name = names.remove(self.rng.below(names.len()));
            self.add_state(batch, name);
            if self.rng.percent(5) {
                // The same name again: its last value counts, as in the Python SDK's dict.
                self.add_state(batch, name);
            }
        }
    }

    fn add_state(&mut self, batch: &mut Batch, name: &str) {
        let (bytes, held) = match self.rng.below(20) {
            0..=5 => (Vec::new(), Held::Nothing),
            6..=12 => {
                let value = self.value(0);
                (self.pack_value(value).encode_to_vec(), Held::Value)
            }
            13..=15 => {
                let (any, held) = self.any();
                (any.encode_to_vec(), held)
            }
            16..=18 => {
                // An `Any` as no protobuf library writes it, but every one reads it: the
                // value before the type URL, then an unknown field.
                let (any, held) = self.any();
                let mut bytes = Vec::new();
                prost::encoding::bytes::encode(2, &any.value, &mut bytes);
                prost::encoding::string::encode(1, &any.type_url, &mut bytes);
                prost::encoding::uint64::encode(15, &1, &mut bytes);
                (bytes, held)
            }
            _ => (self.rng.pick(UNREADABLE_STATES).to_vec(), Held::Unreadable),
        };
        // An empty serialized Any is "no value" on the wire.
        let held = if bytes.is_empty() {
            Held::Nothing
        } else {
            held
        };
        batch.states.push(to_function::PersistedValue {
            state_name: name.to_owned(),
            state_value: bytes.into(),
        });
        batch.held.insert(name.to_owned(), held);
    }

    fn invocation_count(&mut self) -> usize {
        match self.rng.below(20) {
            0..=8 => self.rng.between(1, 5),
            9..=15 => self.rng.between(6, 30),
            16..=18 => self.rng.between(31, 99),
            _ => 100,
        }
    }

    /// The argument of an invocation that runs without error.
    fn valid_argument(&mut self, batch: &mut Batch, has_caller: bool) -> Option<Any> {
        let function_type = batch.function_type();
        if is_untyped(&function_type) && self.rng.percent(10) {
            // Not a script, so the function ignores it.
            return match self.rng.below(3) {
                0 => Some(pack(&self.text())),
                1 => Some(self.blob().0),
                _ => None, // no argument at all: an empty `Any`
            };
        }
        if function_type == UNION && self.rng.percent(20) {
            return Some(pack(&self.text()));
        }
        Some(self.script_argument(batch, has_caller, &function_type))
    }

    /// A script of valid operations, packed.
    fn script_argument(&mut self, batch: &mut Batch, has_caller: bool, function_type: &str) -> Any {
        if is_untyped(function_type) && self.rng.percent(5) {
            // No `Value` to the Python SDK: ignored, so its operations change no state.
            let held = batch.held.clone();
            let ops = (0..self.rng.between(1, 4))
                .map(|_| self.valid_op(batch, has_caller))
                .collect();
            batch.held = held;
            return Any {
                type_url: "google.protobuf.Value".to_owned(),
                value: PbValue(list(ops)).encode_to_vec(),
            };
        }
        let ops = (0..self.rng.between(0, 4))
            .map(|_| self.valid_op(batch, has_caller))
            .collect();
        self.pack_value(list(ops))
    }

    /// One operation that succeeds, given what the states hold; updates that.
    fn valid_op(&mut self, batch: &mut Batch, has_caller: bool) -> Value {
        let states: Vec<String> = batch.held.keys().cloned().collect();
        loop {
            let op = match self.rng.below(21) {
                0 => vec![
                    s("send"),
                    self.function_type(),
                    self.id_value(),
                    self.any_value(),
                ],
                1 => vec![
                    s("pack_send"),
                    self.function_type(),
                    self.id_value(),
                    self.value(0),
                ],
                2 if has_caller => vec![s("reply"), self.any_value()],
                3 if has_caller => vec![s("pack_reply"), self.value(0)],
                4 => vec![
                    s("send_after"),
                    n(self.delay_us() as f64),
                    self.function_type(),
                    self.id_value(),
                    self.any_value(),
                ],
                5 => vec![
                    s("pack_send_after"),
                    n(self.delay_us() as f64),
                    self.function_type(),
                    self.id_value(),
                    self.value(0),
                ],
                6 => vec![s("egress"), self.egress_type(), self.any_value()],
                7 => vec![s("pack_egress"), self.egress_type(), self.value(0)],
                8 => vec![
                    s("kafka"),
                    self.egress_type(),
                    self.rng.one_of(&["topic", "greetings", "ünï"]),
                    self.rng.one_of(&["", "key", "alice"]),
                    self.value(0),
                ],
                9 => vec![
                    s("kinesis"),
                    self.egress_type(),
                    self.rng.one_of(&["stream", "events"]),
                    self.rng.one_of(&["pk", "alice"]),
                    self.rng.one_of(&["", "1234"]),
                    self.value(0),
                ],
                10..=11 if !states.is_empty() => {
                    let state = self.rng.pick(&states).clone();
                    // An empty `Any` set here is still a value to both SDKs in this
                    // batch (it is no value only once it comes back in a request).
                    let (any, held) = self.any();
                    batch.held.insert(state.clone(), held);
                    vec![s("set"), s(&state), any_value(&any)]
                }
                12 if !states.is_empty() => {
                    let state = self.rng.pick(&states).clone();
                    batch.held.insert(state.clone(), Held::Value);
                    vec![s("pack_set"), s(&state), self.value(0)]
                }
                13 if !states.is_empty() => {
                    let state = self.rng.pick(&states).clone();
                    batch.held.insert(state.clone(), Held::Nothing);
                    vec![s("delete"), s(&state)]
                }
                14..=15 if !states.is_empty() => {
                    let state = self.rng.pick(&states).clone();
                    if batch.held[&state] == Held::Unreadable {
                        continue;
                    }
                    vec![s("get"), s(&state)]
                }
                16..=17 if !states.is_empty() => {
                    let state = self.rng.pick(&states).clone();
                    if !matches!(batch.held[&state], Held::Nothing | Held::Value) {
                        continue;
                    }
                    vec![s("unpack"), s(&state)]
                }
                18 => vec![s("address")],
                19 => vec![s("caller")],
                _ => continue,
            };
            *self.valid_ops.entry(text(&op[0]).to_owned()).or_default() += 1;
            return list(op);
        }
    }

    /// An invocation that fails, and what makes it fail.
    fn failing_invocation(&mut self, batch: &mut Batch) -> (to_function::Invocation, String) {
        let function_type = batch.function_type();
        let mut caller = self.rng.percent(60).then(|| self.caller());
        // Most failures are one operation in a script, after valid ones.
        let kind = loop {
            let kind = self.rng.below(20);
            match kind {
                2 | 3 => caller = None,                       // replies without a caller
                18 if is_untyped(&function_type) => continue, // takes every type
                _ => {}
            }
            break kind;
        };
        *self.failure_kinds.entry(kind).or_default() += 1;
        if kind >= 18 {
            let (argument, note) = if kind == 18 && self.rng.percent(30) {
                let script = list(vec![list(vec![s("address")])]);
                let any = Any {
                    type_url: "google.protobuf.Value".to_owned(),
                    value: PbValue(script).encode_to_vec(),
                };
                (Some(any), "a script under a type URL without a `/`")
            } else if kind == 18 && self.rng.percent(20) {
                (None, "no argument")
            } else if kind == 18 {
                (Some(self.blob().0), "a message of another type")
            } else {
                // A list value of five bytes, of which one is there.
                let mut any = pack(&PbValue::default());
                any.value = vec![0x32, 0x05, 0x0a];
                (Some(any), "a script whose bytes do not decode")
            };
            let invocation = to_function::Invocation { caller, argument };
            return (invocation, note.to_owned());
        }
        let has_caller = caller.is_some();
        let mut ops: Vec<Value> = (0..self.rng.between(0, 2))
            .map(|_| self.valid_op(batch, has_caller))
            .collect();
        let error_op = self.failing_op(kind, batch);
        let note = format!("fails at {}", show_value(&error_op));
        ops.push(error_op);
        ops.extend((0..self.rng.between(0, 2)).map(|_| self.valid_op(batch, has_caller)));
        let invocation = to_function::Invocation {
            caller,
            argument: Some(self.pack_value(list(ops))),
        };
        (invocation, note)
    }

    /// An operation that fails: kind 0 to 17 (2 and 3 need an invocation without a caller).
    fn failing_op(&mut self, kind: usize, batch: &Batch) -> Value {
        let bad = self.rng.one_of(BAD_TYPENAMES);
        let op = match kind {
            0 => vec![
                self.rng.one_of(&["get", "unpack", "delete"]),
                s(UNDECLARED_STATE),
            ],
            1 => {
                if self.rng.percent(50) {
                    vec![s("set"), s(UNDECLARED_STATE), self.any_value()]
                } else {
                    vec![s("pack_set"), s(UNDECLARED_STATE), self.value(0)]
                }
            }
            2 => vec![s("reply"), self.any_value()],
            3 => vec![s("pack_reply"), self.value(0)],
            4 => vec![s("send"), bad, self.id_value(), self.any_value()],
            5 => vec![s("pack_send"), bad, self.id_value(), self.value(0)],
            6 => vec![s("send"), self.function_type(), s(""), self.any_value()],
            7 => vec![s("pack_send"), self.function_type(), s(""), self.value(0)],
            8 => {
                let packed = self.rng.percent(50);
                let (delay, typename, id) = match self.rng.below(3) {
                    0 => (0.0, self.function_type(), self.id_value()),
                    1 => (self.delay_us() as f64, bad, self.id_value()),
                    _ => (self.delay_us() as f64, self.function_type(), s("")),
                };
                if packed {
                    vec![s("pack_send_after"), n(delay), typename, id, self.value(0)]
                } else {
                    vec![s("send_after"), n(delay), typename, id, self.any_value()]
                }
            }
            9 => vec![s("egress"), bad, self.any_value()],
            10 => vec![s("pack_egress"), bad, self.value(0)],
            11 => {
                let (egress, topic) = if self.rng.percent(50) {
                    (bad, s("topic"))
                } else {
                    (self.egress_type(), s(""))
                };
                vec![s("kafka"), egress, topic, s("key"), self.value(0)]
            }
            12 => {
                let (egress, stream, key) = match self.rng.below(3) {
                    0 => (bad, s("stream"), s("pk")),
                    1 => (self.egress_type(), s(""), s("pk")),
                    _ => (self.egress_type(), s("stream"), s("")),
                };
                vec![s("kinesis"), egress, stream, key, s(""), self.value(0)]
            }
            13 => vec![s("panic"), s(DELIBERATE_PANIC)],
            14 | 15 => {
                // Reading a state whose bytes are no `Any`, if one is left.
                let unreadable: Vec<&String> = batch
                    .held
                    .iter()
                    .filter(|(_, held)| **held == Held::Unreadable)
                    .map(|(name, _)| name)
                    .collect();
                if unreadable.is_empty() {
                    vec![s("fail"), s(FAILURE_MESSAGE)]
                } else {
                    let name = unreadable[self.rng.below(unreadable.len())];
                    vec![self.rng.one_of(&["get", "unpack"]), s(name)]
                }
            }
            _ => vec![s("fail"), s(FAILURE_MESSAGE)],
        };
        list(op)
    }

    // Pieces.

    fn id(&mut self) -> String {
        self.rng.id(IDS)
    }

    fn id_value(&mut self) -> Value {
        s(&self.id())
    }

    fn function_type(&mut self) -> Value {
        self.rng.one_of(FUNCTION_TYPES)
    }

    fn egress_type(&mut self) -> Value {
        self.rng.one_of(EGRESS_TYPES)
    }

    /// A caller as the runtime sends one: namespace, type (no `/`) and id all non-empty.
    fn caller(&mut self) -> proto::Address {
        let namespace = *self.rng.pick(&["example", "com.example.app", "org/apache"]);
        let name = *self.rng.pick(&["caller", "greeter", "x"]);
        proto::Address {
            namespace: namespace.to_owned(),
            r#type: name.to_owned(),
            id: self.id(),
        }
    }

    /// A delay, in microseconds, that the Python SDK turns into the right milliseconds.
    fn delay_us(&mut self) -> u64 {
        for _ in 0..100 {
            let us = match self.rng.below(4) {
                0 => self.rng.between(1, 1_000) as u64 * 1_000,
                1 => self.rng.between(1, 10_000_000) as u64 * 1_000,
                2 => self.rng.between(1, 5_000_000) as u64,
                3 if self.rng.percent(20) => self.rng.between(1, 999) as u64, // 0 ms
                _ => self.rng.between(1, 10_000) as u64 * 86_400_000_000,
            };
            if python_delay_is_exact(us) {
                return us;
            }
        }
        1_000
    }

    fn text(&mut self) -> String {
        self.rng.word(WORDS)
    }

    /// A `google.protobuf.Value` of any kind, nested at most two deep.
    fn value(&mut self, depth: usize) -> Value {
        self.rng.value(depth, NUMBERS, WORDS)
    }

    /// An `Any`: a packed `Value`, a packed string, or an opaque message.
    fn any(&mut self) -> (Any, Held) {
        match self.rng.below(3) {
            0 => {
                let value = self.value(0);
                (self.pack_value(value), Held::Value)
            }
            1 => (pack(&self.text()), Held::Other),
            _ => self.blob(),
        }
    }

    /// `value` packed into an `Any`, mostly under the usual type URL, sometimes under
    /// others that both SDKs read as a `Value` too (they match the name after the last `/`).
    fn pack_value(&mut self, value: Value) -> Any {
        let mut any = pack(&PbValue(value));
        if self.rng.percent(15) {
            let prefix = self.rng.pick(&["example.com/types/", "/"]);
            any.type_url = format!("{prefix}google.protobuf.Value");
        }
        any
    }

    fn blob(&mut self) -> (Any, Held) {
        let type_url = (*self.rng.pick(BLOB_TYPE_URLS)).to_owned();
        let value = self.rng.bytes(0, 12);
        (Any { type_url, value }, Held::Other)
    }

    fn any_value(&mut self) -> Value {
        any_value(&self.any().0)
    }
}

/// Whether the function bound to `function_type` takes every message type.
fn is_untyped(function_type: &str) -> bool {
    function_type == UNTYPED || function_type == NESTED
}

fn address(typename: &str, id: &str) -> proto::Address {
    let (namespace, name) = typename.rsplit_once('/').unwrap_or(("", typename));
    proto::Address {
        namespace: namespace.to_owned(),
        r#type: name.to_owned(),
        id: id.to_owned(),
    }
}

fn any_value(any: &Any) -> Value {
    list(vec![s(&any.type_url), s(&hex(&any.value))])
}

// ------------------------------------------------------------------------------------
// Running the Python SDK.
// ------------------------------------------------------------------------------------

/// Runs every case through the Python SDK, in one process.
fn run_python(cases: &[Case]) -> Vec<Outcome> {
    let requests = cases.iter().map(|case| case.bytes.as_slice());
    diff::run_reference(
        &support::python::python(),
        "tests/differential/reference.py",
        requests,
    )
    .into_iter()
    .map(|answer| match answer {
        Ok(reply) => Outcome::from_reply(&reply),
        Err(error) => Outcome::Error(error),
    })
    .collect()
}

// ------------------------------------------------------------------------------------
// Comparing.
// ------------------------------------------------------------------------------------

/// A reply, parsed into what is compared, or the error.
#[derive(Debug)]
enum Outcome {
    /// The parsed reply, and its bytes.
    Reply(Effects, Vec<u8>),
    /// A reply that is not a `FromFunction`: always a mismatch.
    Unparsable(String),
    Error(String),
}

/// A reply's content, with every `Any` decoded where its type is known; a delayed
/// message is its delay in milliseconds, target and argument.
type Effects = diff::Effects<Canonical, (i64, Target, Canonical)>;

/// An `Any`, decoded where the type is one the test sends, so that two encodings of one
/// message (Python and prost may order map entries differently) compare equal.
#[derive(Debug, PartialEq)]
struct Canonical {
    type_url: String,
    body: Body,
}

#[derive(Debug, PartialEq)]
enum Body {
    Value(Value),
    Text(String),
    Kafka {
        topic: String,
        key: String,
        value: Box<Body>,
    },
    Kinesis {
        stream: String,
        partition_key: String,
        explicit_hash_key: String,
        value: Box<Body>,
    },
    Bytes(Vec<u8>),
}

impl Outcome {
    fn from_reply(bytes: &[u8]) -> Outcome {
        match parse_reply(bytes) {
            Ok(effects) => Outcome::Reply(effects, bytes.to_vec()),
            Err(error) => Outcome::Unparsable(format!("{error} in {bytes:02x?}")),
        }
    }

    fn error(&self) -> Option<&str> {
        match self {
            Outcome::Error(error) => Some(error),
            _ => None,
        }
    }

    /// For the failure report.
    fn describe(&self) -> String {
        match self {
            Outcome::Error(error) => format!("error: {error}"),
            Outcome::Unparsable(error) => format!("unparsable reply: {error}"),
            Outcome::Reply(effects, _) => effects.summary(),
        }
    }
}

fn parse_reply(bytes: &[u8]) -> Result<Effects, String> {
    let reply = proto::FromFunction::decode(bytes).map_err(|e| e.to_string())?;
    let response = match reply.response {
        Some(from_function::Response::InvocationResult(response)) => response,
        None => Default::default(),
    };
    let target = |a: Option<proto::Address>| {
        let a = a.unwrap_or_default();
        Target(a.namespace, a.r#type, a.id)
    };
    let argument = |a: Option<Any>| canonical(&a.unwrap_or_default());
    let mut mutations = BTreeMap::new();
    for m in response.state_mutations {
        let value = if m.mutation_type
            == from_function::persisted_value_mutation::MutationType::Modify as i32
        {
            let any =
                Any::decode(m.state_value).map_err(|e| format!("state {}: {e}", m.state_name))?;
            Some(canonical(&any))
        } else if m.state_value.is_empty() {
            None
        } else {
            return Err(format!("DELETE of {} carries a value", m.state_name));
        };
        if mutations.insert(m.state_name.clone(), value).is_some() {
            return Err(format!("two mutations of {}", m.state_name));
        }
    }
    Ok(Effects {
        mutations,
        messages: response
            .outgoing_messages
            .into_iter()
            .map(|m| (target(m.target), argument(m.argument)))
            .collect(),
        delayed: response
            .delayed_invocations
            .into_iter()
            .map(|d| (d.delay_in_ms, target(d.target), argument(d.argument)))
            .collect(),
        egresses: response
            .outgoing_egresses
            .into_iter()
            .map(|e| {
                let egress = Target(e.egress_namespace, e.egress_type, String::new());
                (egress, argument(e.argument))
            })
            .collect(),
    })
}

fn canonical(any: &Any) -> Canonical {
    let full_name = any.type_url.rsplit('/').next().unwrap_or_default();
    Canonical {
        type_url: any.type_url.clone(),
        body: decode_body(full_name, &any.value),
    }
}

fn decode_body(full_name: &str, bytes: &[u8]) -> Body {
    let decoded = match full_name {
        "google.protobuf.Value" => Value::decode(bytes).ok().map(Body::Value),
        "google.protobuf.StringValue" => String::decode(bytes).ok().map(Body::Text),
        "org.apache.flink.statefun.flink.io.KafkaProducerRecord" => {
            KafkaProducerRecord::decode(bytes)
                .ok()
                .map(|r| Body::Kafka {
                    topic: r.topic,
                    key: r.key,
                    value: Box::new(decode_body("google.protobuf.Value", &r.value_bytes)),
                })
        }
        "org.apache.flink.statefun.flink.io.KinesisEgressRecord" => {
            KinesisEgressRecord::decode(bytes)
                .ok()
                .map(|r| Body::Kinesis {
                    stream: r.stream,
                    partition_key: r.partition_key,
                    explicit_hash_key: r.explicit_hash_key,
                    value: Box::new(decode_body("google.protobuf.Value", &r.value_bytes)),
                })
        }
        _ => None,
    };
    decoded.unwrap_or_else(|| Body::Bytes(bytes.to_vec()))
}

/// The differences between the two outcomes, readable; empty when they agree.
fn compare(python: &Outcome, rust: &Outcome) -> Vec<String> {
    let (python, rust) = match (python, rust) {
        (Outcome::Error(_), Outcome::Error(_)) => return Vec::new(),
        (Outcome::Reply(python, _), Outcome::Reply(rust, _)) => (python, rust),
        _ => return vec!["one side replied, the other did not".to_owned()],
    };
    diff::compare_effects(python, rust, show, |(d, t, a)| {
        format!("after {d} ms to {t}: {}", show(a))
    })
}

fn show(any: &Canonical) -> String {
    let body = match &any.body {
        Body::Value(value) => show_value(value),
        Body::Text(text) => format!("{text:?}"),
        Body::Kafka { topic, key, value } => {
            format!("kafka(topic {topic:?}, key {key:?}, {value:?})")
        }
        Body::Kinesis {
            stream,
            partition_key,
            explicit_hash_key,
            value,
        } => format!("kinesis({stream:?}, {partition_key:?}, {explicit_hash_key:?}, {value:?})"),
        Body::Bytes(bytes) => format!("{bytes:02x?}"),
    };
    format!("{} {body}", any.type_url)
}

/// A failing case, for the panic message; its request is saved to replay.
fn report(
    seed: u64,
    index: usize,
    case: &Case,
    python: &Outcome,
    rust: &Outcome,
    problems: &[String],
) -> String {
    diff::report(
        "differential",
        seed,
        index,
        case,
        problems,
        &show_request(&case.bytes),
        [("Python", python.describe()), ("crate", rust.describe())],
    )
}

/// A request as readable text, cut short when long.
fn show_request(bytes: &[u8]) -> String {
    let Ok(request) = proto::ToFunction::decode(bytes) else {
        return format!("(does not decode) {bytes:02x?}");
    };
    let Some(to_function::Request::Invocation(batch)) = request.request else {
        return "(no invocation batch)".to_owned();
    };
    let mut text = format!("to {:?}", batch.target);
    for state in &batch.state {
        let value = match Any::decode(state.state_value.clone()) {
            Ok(any) if !state.state_value.is_empty() => show(&canonical(&any)),
            Ok(_) => "(no value)".to_owned(),
            Err(_) => format!("unreadable {:02x?}", &state.state_value[..]),
        };
        let _ = write!(text, "\n    state {:?} = {value}", state.state_name);
    }
    for (i, invocation) in batch.invocations.iter().enumerate() {
        let caller = invocation
            .caller
            .as_ref()
            .map_or("ingress".to_owned(), |c| {
                format!("{}/{}/{}", c.namespace, c.r#type, c.id)
            });
        let argument = show(&canonical(&invocation.argument.clone().unwrap_or_default()));
        let _ = write!(text, "\n    [{i}] from {caller}: {argument}");
    }
    diff::cut_short(text, 6000)
}
