//! What the two differential tests share, `differential.rs` (the 2.2 protocol, against the
//! Python SDK 2.2.2) and `differential3.rs` (3.x, against 3.3.0): the seeded generator's
//! random numbers and the pieces of requests it draws from them, the scripts' values
//! (`google.protobuf.Value`), the Python reference process (framed requests on its stdin,
//! framed replies or exceptions on its stdout), comparing two replies' effects, and
//! reporting a failing case with its request saved to replay.
//!
//! What differs by protocol (the request and reply messages, their typed or `Any`
//! values, the outcomes) stays in each test; the pieces here are generic over it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

/// What the scripts' "fail" operation fails with.
pub const FAILURE_MESSAGE: &str = "the script asked for an error";
/// What the scripts' "panic" operation panics with (in Python: raises);
/// [`quiet_deliberate_panics`] keeps it off stderr.
pub const DELIBERATE_PANIC: &str = "the script asked for a panic";

/// SplitMix64: small, fast and good enough to vary requests; fully determined by the seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }

    pub fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// One of `texts`, as a script string.
    pub fn one_of(&mut self, texts: &[&str]) -> Value {
        s(texts[self.below(texts.len())])
    }

    /// An id: mostly one of `ids`, else `id-<n>`.
    pub fn id(&mut self, ids: &[&str]) -> String {
        if self.percent(70) {
            (*self.pick(ids)).to_owned()
        } else {
            format!("id-{}", self.below(1000))
        }
    }

    /// A text: mostly one of `words`, else `w<n>`.
    pub fn word(&mut self, words: &[&str]) -> String {
        if self.percent(70) {
            (*self.pick(words)).to_owned()
        } else {
            format!("w{}", self.next() % 100_000)
        }
    }

    /// `low..=high` random bytes.
    pub fn bytes(&mut self, low: usize, high: usize) -> Vec<u8> {
        (0..self.between(low, high))
            .map(|_| self.next() as u8)
            .collect()
    }

    /// A `google.protobuf.Value` of any kind, nested at most two deep: its numbers one of
    /// `numbers` or a random whole one, its texts from [`Rng::word`] with `words`.
    pub fn value(&mut self, depth: usize, numbers: &[f64], words: &[&str]) -> Value {
        let kinds = if depth >= 2 { 4 } else { 6 };
        let kind = match self.below(kinds) {
            0 => Kind::NullValue(0),
            1 => Kind::BoolValue(self.percent(50)),
            2 => {
                let random = (self.next() % 1_000_000) as f64;
                let choices: Vec<f64> = numbers.iter().copied().chain([random]).collect();
                Kind::NumberValue(*self.pick(&choices))
            }
            3 => Kind::StringValue(self.word(words)),
            4 => Kind::ListValue(ListValue {
                values: (0..self.between(0, 3))
                    .map(|_| self.value(depth + 1, numbers, words))
                    .collect(),
            }),
            _ => Kind::StructValue(Struct {
                fields: (0..self.between(0, 3))
                    .map(|_| (self.word(words), self.value(depth + 1, numbers, words)))
                    .collect(),
            }),
        };
        Value { kind: Some(kind) }
    }
}

// ------------------------------------------------------------------------------------
// The scripts' values.
// ------------------------------------------------------------------------------------

/// `google.protobuf.Value` under its protobuf name (prost-types ships it without
/// [`prost::Name`]), so that it packs and types as
/// `type.googleapis.com/google.protobuf.Value`, as the Python SDK names a `Value`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PbValue(pub Value);

impl prost::Message for PbValue {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        self.0.encode_raw(buf)
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        self.0.merge_field(tag, wire_type, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }

    fn clear(&mut self) {
        self.0.clear()
    }
}

impl prost::Name for PbValue {
    const NAME: &'static str = "Value";
    const PACKAGE: &'static str = "google.protobuf";

    fn type_url() -> String {
        "type.googleapis.com/google.protobuf.Value".to_owned()
    }
}

pub fn s(text: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(text.to_owned())),
    }
}

pub fn n(number: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(number)),
    }
}

pub fn list(values: Vec<Value>) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue { values })),
    }
}

/// The items of a list value; none for any other.
pub fn items(value: &Value) -> &[Value] {
    match &value.kind {
        Some(Kind::ListValue(list)) => &list.values,
        _ => &[],
    }
}

/// The text of a string value; `""` for any other.
pub fn text(value: &Value) -> &str {
    match &value.kind {
        Some(Kind::StringValue(text)) => text,
        _ => "",
    }
}

/// The number of a number value; 0 for any other.
pub fn number(value: &Value) -> f64 {
    match value.kind {
        Some(Kind::NumberValue(n)) => n,
        _ => 0.0,
    }
}

/// Bytes as lower-case hex, as scripts write them.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of `hex`; an error names what is not hex.
pub fn unhex(hex: &str) -> anyhow::Result<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(hex.get(i..i + 2).unwrap_or("?"), 16)?))
        .collect()
}

/// A `Value` as JSON-like text.
pub fn show_value(value: &Value) -> String {
    match &value.kind {
        None => "<unset>".to_owned(),
        Some(Kind::NullValue(_)) => "null".to_owned(),
        Some(Kind::BoolValue(b)) => b.to_string(),
        Some(Kind::NumberValue(n)) => n.to_string(),
        Some(Kind::StringValue(text)) => format!("{text:?}"),
        Some(Kind::ListValue(list)) => format!(
            "[{}]",
            list.values
                .iter()
                .map(show_value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(Kind::StructValue(fields)) => format!(
            "{{{}}}",
            fields
                .fields
                .iter()
                .map(|(k, v)| format!("{k:?}: {}", show_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

// ------------------------------------------------------------------------------------
// The environment, and the Python SDK's arithmetic.
// ------------------------------------------------------------------------------------

/// The number in the environment variable `name` (decimal, or hex after `0x`).
///
/// # Panics
///
/// If it is set to something else.
pub fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={value:?} is not a number")))
}

/// What the Python SDK sends for a delay of `us` microseconds:
/// `int(timedelta(microseconds=us).total_seconds() * 1000.0)`. `total_seconds` divides
/// the whole microseconds by 10**6, correctly rounded, as an `f64` division does for the
/// integers the generators use (below 2**53).
pub fn python_delay_ms(us: u64) -> u64 {
    ((us as f64 / 1e6) * 1000.0).trunc() as u64
}

/// Whether the Python SDK sends the delay of `us` microseconds as the crate does, in
/// whole milliseconds rounded down.
pub fn python_delay_is_exact(us: u64) -> bool {
    python_delay_ms(us) == us / 1000
}

/// The Python program that prints what `python_delay_ms` computes for `delays_us`, the
/// Python SDK's way.
pub fn python_delay_program(delays_us: &[u64]) -> String {
    format!(
        "from datetime import timedelta\nprint(' '.join(str(int(timedelta(microseconds=us)\
         .total_seconds() * 1000.0)) for us in {delays_us:?}))"
    )
}

/// Keeps the scripts' deliberate panics (hundreds of them) from printing a message and,
/// under `RUST_BACKTRACE`, a backtrace each; every other panic reports as usual.
pub fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&DELIBERATE_PANIC) {
                report(info);
            }
        }));
    });
}

// ------------------------------------------------------------------------------------
// The Python reference process.
// ------------------------------------------------------------------------------------

/// Runs every request through `reference` (a `reference.py` under `tests/`, path relative
/// to the crate) with `python`, in one process: the requests go to its stdin, each
/// preceded by its length as a 4-byte little-endian integer, and it answers each on
/// stdout in the same framing, with `0` and the reply bytes or `1` and the error it
/// raised. Returns, in order, each reply or the error's text.
///
/// # Panics
///
/// If the process cannot run, fails, or does not answer every request.
pub fn run_reference<'a>(
    python: &Path,
    reference: &str,
    requests: impl Iterator<Item = &'a [u8]>,
) -> Vec<Result<Vec<u8>, String>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(reference);
    let mut framed = Vec::new();
    let mut count = 0;
    for request in requests {
        framed.extend((request.len() as u32).to_le_bytes());
        framed.extend(request);
        count += 1;
    }
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let mut stdin = child.stdin.take().expect("piped");
    // Written from another thread, so that neither pipe fills while the other waits.
    let writer = std::thread::spawn(move || stdin.write_all(&framed));
    let mut data = Vec::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_end(&mut data)
        .expect("reads the replies");
    let output = child.wait_with_output().expect("reference.py ends");
    let written = writer.join().expect("the writer does not panic");
    assert!(
        output.status.success() && written.is_ok(),
        "{} {} failed ({}, {written:?}):\n{}",
        python.display(),
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    let mut answers = Vec::with_capacity(count);
    let mut rest = data.as_slice();
    while let Some((length, tail)) = rest.split_first_chunk::<4>() {
        let length = u32::from_le_bytes(*length) as usize;
        assert!(length <= tail.len(), "{reference} wrote a cut record");
        let (record, tail) = tail.split_at(length);
        rest = tail;
        answers.push(match record.split_first() {
            Some((0, reply)) => Ok(reply.to_vec()),
            Some((_, error)) => Err(String::from_utf8_lossy(error).into_owned()),
            None => panic!("{reference} wrote an empty record"),
        });
    }
    assert_eq!(answers.len(), count, "{reference} answered every request");
    answers
}

/// What `program` prints, run by `python`.
///
/// # Panics
///
/// If it cannot run or fails.
pub fn python_output(python: &Path, program: &str) -> String {
    let output = Command::new(python)
        .args(["-c", program])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// ------------------------------------------------------------------------------------
// Comparing.
// ------------------------------------------------------------------------------------

/// A reply's effects, with every value `C` decoded where its type is known, and delayed
/// messages `D` (their fields differ by protocol).
#[derive(Debug, PartialEq)]
pub struct Effects<C, D> {
    /// By state name: `MODIFY` with the new value, or `DELETE` (`None`).
    pub mutations: BTreeMap<String, Option<C>>,
    pub messages: Vec<(Target, C)>,
    pub delayed: Vec<D>,
    pub egresses: Vec<(Target, C)>,
}

impl<C, D> Effects<C, D> {
    /// How many of each, for a failure report.
    pub fn summary(&self) -> String {
        format!(
            "reply with {} mutations, {} messages, {} delayed, {} egress",
            self.mutations.len(),
            self.messages.len(),
            self.delayed.len(),
            self.egresses.len()
        )
    }
}

/// An address as its fields (namespace, type, id), or an egress (namespace, type, ""); a
/// missing one is all-empty. The fields, not `namespace/type/id`, which cannot tell
/// `a`,`b/c` from `a/b`,`c`.
#[derive(Debug, PartialEq)]
pub struct Target(pub String, pub String, pub String);

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "(namespace {:?}, type {:?}, id {:?})",
            self.0, self.1, self.2
        )
    }
}

/// The differences between the Python SDK's effects and the crate's, readable; empty when
/// they agree. `show` and `show_delayed` write a value and a delayed message.
pub fn compare_effects<C: PartialEq, D: PartialEq>(
    python: &Effects<C, D>,
    rust: &Effects<C, D>,
    show: impl Fn(&C) -> String,
    show_delayed: impl Fn(&D) -> String,
) -> Vec<String> {
    let mut problems = Vec::new();
    let names: std::collections::BTreeSet<&String> = python
        .mutations
        .keys()
        .chain(rust.mutations.keys())
        .collect();
    let show_mutation = |mutation: Option<&Option<C>>| match mutation {
        None => "leaves it alone".to_owned(),
        Some(None) => "deletes it".to_owned(),
        Some(Some(value)) => format!("sets {}", show(value)),
    };
    for name in names {
        let (p, r) = (python.mutations.get(name), rust.mutations.get(name));
        if p != r {
            problems.push(format!(
                "state {name:?}: Python {}, crate {}",
                show_mutation(p),
                show_mutation(r)
            ));
        }
    }
    compare_lists(
        "message",
        &python.messages,
        &rust.messages,
        &mut problems,
        |(t, a)| format!("to {t}: {}", show(a)),
    );
    compare_lists(
        "delayed message",
        &python.delayed,
        &rust.delayed,
        &mut problems,
        show_delayed,
    );
    compare_lists(
        "egress message",
        &python.egresses,
        &rust.egresses,
        &mut problems,
        |(e, a)| format!("to {e}: {}", show(a)),
    );
    problems
}

fn compare_lists<T: PartialEq>(
    what: &str,
    python: &[T],
    rust: &[T],
    problems: &mut Vec<String>,
    show: impl Fn(&T) -> String,
) {
    if python.len() != rust.len() {
        problems.push(format!(
            "{} {what}s from Python, {} from the crate",
            python.len(),
            rust.len()
        ));
    }
    let differing = python
        .iter()
        .zip(rust)
        .enumerate()
        .filter(|(_, (p, r))| p != r)
        .take(3);
    for (i, (p, r)) in differing {
        problems.push(format!(
            "{what} {i}: Python {}\n    crate  {}",
            show(p),
            show(r)
        ));
    }
}

/// When a case was built to fail with [`FAILURE_MESSAGE`] or [`DELIBERATE_PANIC`] (its
/// `note` says so) and both sides failed, that failure must be what stopped the batch on
/// both: the problem if it is not.
pub fn deliberate_failure_problem(
    note: &str,
    python_error: Option<&str>,
    rust_error: Option<&str>,
) -> Option<String> {
    let message = [FAILURE_MESSAGE, DELIBERATE_PANIC]
        .into_iter()
        .find(|message| note.contains(message))?;
    let (python, rust) = (python_error?, rust_error?);
    (!python.contains(message) || !rust.contains(message))
        .then(|| format!("the batch did not fail with {message:?}"))
}

// ------------------------------------------------------------------------------------
// Reporting.
// ------------------------------------------------------------------------------------

/// One generated request, built to end in `E` (each protocol has its own).
pub struct Case<E> {
    /// What sort of case, for the statistics and the failure report.
    pub kind: &'static str,
    /// What the generator did to make it fail, if anything.
    pub note: String,
    pub bytes: Vec<u8>,
    pub invocations: usize,
    pub expect: E,
}

/// Prints what ran: `test`'s seed, counts and times, then each statistic.
pub fn print_summary<E>(
    test: &str,
    seed: u64,
    cases: &[Case<E>],
    python_time: Duration,
    rust_time: Duration,
    stats: &BTreeMap<String, usize>,
) {
    let count = cases.len();
    let invocations: usize = cases.iter().map(|c| c.invocations).sum();
    println!(
        "{test}: seed {seed:#x}, {count} requests, {invocations} invocations; \
         Python SDK {python_time:?}, crate {rust_time:?}"
    );
    for (kind, n) in stats {
        println!("  {n:5}  {kind}");
    }
}

/// A failing case, for the panic message: its `problems`, the request as text
/// (`request`), and each side's outcome as text (`sides`). Its request is saved under
/// `<CARGO_TARGET_TMPDIR>/<test>-failures/` to replay.
pub fn report<E>(
    test: &str,
    seed: u64,
    index: usize,
    case: &Case<E>,
    problems: &[String],
    request: &str,
    sides: [(&str, String); 2],
) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}-failures"));
    let file = dir.join(format!("seed-{seed:x}-case-{index}.bin"));
    let saved = fs::create_dir_all(&dir)
        .and_then(|()| fs::write(&file, &case.bytes))
        .map_or_else(
            |e| format!("not saved: {e}"),
            |()| format!("saved as {}", file.display()),
        );
    let mut text = format!(
        "case {index} ({}{}{}), {} bytes, {saved}\n",
        case.kind,
        if case.note.is_empty() { "" } else { ": " },
        case.note,
        case.bytes.len()
    );
    for problem in problems {
        let _ = writeln!(text, "  - {problem}");
    }
    let _ = writeln!(text, "  request: {request}");
    for (side, shown) in sides {
        let _ = writeln!(text, "  {side}: {shown}");
    }
    text
}

/// Cuts `text` to about `limit` bytes (at a character boundary), marking the cut.
pub fn cut_short(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let cut = (0..=limit)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push_str(" ...");
    }
    text
}

/// Fails the test with the first `failures` (of `count` requests, from `seed`), if any.
pub fn assert_no_failures(failures: &[String], count: usize, seed: u64) {
    if !failures.is_empty() {
        let shown: Vec<&String> = failures.iter().take(8).collect();
        panic!(
            "{} of {count} requests differ from the Python SDK (seed {seed:#x}); the first {}:\n\n{}",
            failures.len(),
            shown.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n\n")
        );
    }
}
