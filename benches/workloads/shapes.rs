//! Request shapes that no runtime sends but any client can, built at any size (issue 21):
//! repeated state names, merged state values, unknown fields at every level, deeply
//! nested unknown groups, many invocations and long names, on 2.2 and 3.x. The
//! complexity bench (`benches/complexity.rs`, `scripts/complexity.sh`) checks that
//! `handle()` costs as much per request byte at the body limit (32 MiB) as at 1 MiB on
//! each, and the hostile-input tests bound the time of each.
//!
//! Every request is for the function [`Shaped::typename`], which [`Shaped::handler`] binds:
//! it reads every distinct state the request carries, by name (so each is looked up and
//! its value found and copied), and writes the first with the count of those that had a
//! value ([`Shaped::check_reply`] checks it). The bytes are written by hand, field by
//! field, so that the shapes are exactly these, whatever prost would write.
//!
//! One file shared by the bench and the tests, each of which pulls it in as `mod shapes`
//! with a `#[path]` attribute (the tests once, in `tests/support/`).

#![allow(dead_code)] // each includer uses a different part

use std::sync::Arc;

use prost::Message as _;
use prost_types::Any;
use statefun_sync::proto::{polyglot, reqreply};
use statefun_sync::{Context, ProtocolVersion, RequestReplyHandler, StatefulFunctions};

/// The most distinct states a shape carries: one under the handler's default
/// `max_states`, so that no request is refused for its states. Shapes with more state
/// entries than this repeat names.
pub const MAX_DISTINCT: usize = RequestReplyHandler::DEFAULT_MAX_STATES - 1;

/// How deep the unknown groups of [`Shape::DeepGroups`] nest: the most that both the
/// crate's reader (100) and prost (100, counting the messages around the group) accept
/// wherever a group is put.
pub const GROUP_DEPTH: usize = 99;

/// A request shape. Each fills the size asked for with one kind of entry, repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Plain states whose names cycle through 1,000 names: each name repeats, no value is
    /// merged.
    Repeated,
    /// The shape of issue 21: D distinct states whose `state_value` occurs twice (on 3.x,
    /// a merged `TypedValue`), then R = 10 D plain repeats of one other name; D stops at
    /// [`MAX_DISTINCT`] and R fills the rest.
    MergedThenRepeated,
    /// States whose `state_value` occurs four times, names cycling through
    /// [`MAX_DISTINCT`] names (all distinct up to about 5 MiB, repeated beyond).
    Merged,
    /// Unknown fields (a varint, a fixed64, a bytes field, a fixed32 and a group, 26
    /// bytes) in `ToFunction`, around a one-state, one-invocation batch.
    UnknownTop,
    /// Unknown fields in the `InvocationBatchRequest`.
    UnknownBatch,
    /// States (names cycling through 1,000) with four blocks of unknown fields each.
    UnknownState,
    /// Invocations with four blocks of unknown fields each (prost decodes them).
    UnknownInvocation,
    /// States (names cycling through 1,000) whose value (`Any` or `TypedValue`) holds
    /// four blocks of unknown fields.
    UnknownStateValue,
    /// Invocations whose argument holds four blocks of unknown fields.
    UnknownArgument,
    /// Unknown groups nested [`GROUP_DEPTH`] deep: one in `ToFunction`, then, repeated,
    /// one in the batch, a state (names cycling through 10) with one in its
    /// `PersistedValue` and one in its value, and an invocation with one in it and one in
    /// its argument.
    DeepGroups,
    /// One state, then small invocations from two callers in turn, so that each caller is
    /// decoded.
    Invocations,
    /// 16 states whose names share a prefix of (size / 16) bytes.
    LongStateNames,
    /// A target whose namespace, type and id are (size / 6) bytes each, and one
    /// invocation from a caller as long.
    LongAddress,
    /// Four states and four invocations whose values' typenames are (size / 8) bytes.
    LongTypenames,
}

impl Shape {
    /// Every shape, in the order of BENCHMARKS.md's table.
    pub const ALL: [Shape; 14] = [
        Shape::Repeated,
        Shape::MergedThenRepeated,
        Shape::Merged,
        Shape::UnknownTop,
        Shape::UnknownBatch,
        Shape::UnknownState,
        Shape::UnknownInvocation,
        Shape::UnknownStateValue,
        Shape::UnknownArgument,
        Shape::DeepGroups,
        Shape::Invocations,
        Shape::LongStateNames,
        Shape::LongAddress,
        Shape::LongTypenames,
    ];

    /// The shape's name in the bench's and the script's arguments.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Repeated => "repeated",
            Shape::MergedThenRepeated => "merged_then_repeated",
            Shape::Merged => "merged",
            Shape::UnknownTop => "unknown_top",
            Shape::UnknownBatch => "unknown_batch",
            Shape::UnknownState => "unknown_state",
            Shape::UnknownInvocation => "unknown_invocation",
            Shape::UnknownStateValue => "unknown_state_value",
            Shape::UnknownArgument => "unknown_argument",
            Shape::DeepGroups => "deep_groups",
            Shape::Invocations => "invocations",
            Shape::LongStateNames => "long_state_names",
            Shape::LongAddress => "long_address",
            Shape::LongTypenames => "long_typenames",
        }
    }

    /// The shape called `name`.
    pub fn named(name: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|shape| shape.name() == name)
    }

    /// The request of this shape for `version`, as close to `size` bytes as its entries
    /// allow without going over.
    pub fn build(self, version: ProtocolVersion, size: usize) -> Shaped {
        let mut b = Builder::new(self, version, size);
        let small = b.small.clone();
        let unknown = UNKNOWN.repeat(4);
        match self {
            Shape::Repeated => {
                b.target_and_invocation();
                let names = cycle("r", 1000);
                b.fill(|b, i| b.state(&names, i, &[&small], &[]));
            }
            Shape::MergedThenRepeated => {
                b.target_and_invocation();
                // The sizes of a merged state and of a repeat, to split the size 1 : 10.
                let merged_len = len_field(&state_bytes("m00000", &[&small, &small], &[]));
                let repeat_len = len_field(&state_bytes("r", &[&small], &[]));
                let distinct = (b.room() / (merged_len + 10 * repeat_len)).min(MAX_DISTINCT);
                let names = cycle("m", distinct);
                for i in 0..distinct {
                    b.state(&names, i, &[&small, &small], &[]);
                }
                let repeated = ["r".to_owned()];
                b.fill(|b, i| b.state(&repeated, i, &[&small], &[]));
            }
            Shape::Merged => {
                b.target_and_invocation();
                let names = cycle("m", MAX_DISTINCT);
                b.fill(|b, i| b.state(&names, i, &[&small, &small, &small, &small], &[]));
            }
            Shape::UnknownTop => {
                // Half the unknown fields before the batch, half after it.
                b.target_and_invocation();
                b.state(&["s".to_owned()], 0, &[&small], &[]);
                let blocks = b.room() / UNKNOWN.len();
                b.body.extend(UNKNOWN.repeat(blocks / 2));
                put_field(&mut b.body, 100, &b.batch);
                b.body.extend(UNKNOWN.repeat(blocks - blocks / 2));
                b.batch = Vec::new();
                return b.shaped();
            }
            Shape::UnknownBatch => {
                b.target_and_invocation();
                b.state(&["s".to_owned()], 0, &[&small], &[]);
                b.fill(|b, _| b.batch.extend_from_slice(&UNKNOWN));
            }
            Shape::UnknownState => {
                b.target_and_invocation();
                let names = cycle("u", 1000);
                b.fill(|b, i| b.state(&names, i, &[&small], &unknown));
            }
            Shape::UnknownInvocation => {
                b.target();
                b.state(&["s".to_owned()], 0, &[&small], &[]);
                b.fill(|b, i| b.invocation(i, &small, &unknown));
            }
            Shape::UnknownStateValue => {
                b.target_and_invocation();
                let names = cycle("u", 1000);
                let value = [&small[..], &unknown].concat();
                b.fill(|b, i| b.state(&names, i, &[&value], &[]));
            }
            Shape::UnknownArgument => {
                b.target();
                b.state(&["s".to_owned()], 0, &[&small], &[]);
                let argument = [&small[..], &unknown].concat();
                b.fill(|b, i| b.invocation(i, &argument, &[]));
            }
            Shape::DeepGroups => {
                let groups = nested_groups(GROUP_DEPTH);
                b.body.extend_from_slice(&groups);
                b.target();
                // Few names: the function reads every state in each of the many invocations.
                let names = cycle("g", 10);
                let value = [&small[..], &groups].concat();
                b.fill(|b, i| {
                    b.batch.extend_from_slice(&groups);
                    b.state(&names, i, &[&value], &groups);
                    b.invocation(i, &value, &groups);
                });
            }
            Shape::Invocations => {
                b.target();
                b.state(&["s".to_owned()], 0, &[&small], &[]);
                b.fill(|b, i| b.invocation(i, &small, &[]));
            }
            Shape::LongStateNames => {
                b.target_and_invocation();
                // Names of one length that differ only at the end: each comparison of two
                // of them reads them whole.
                let prefix = "x".repeat((b.room() / 16).saturating_sub(16));
                let names: Vec<String> = (0..16).map(|i| format!("{prefix}{i:02}")).collect();
                for i in 0..16 {
                    b.state(&names, i, &[&small], &[]);
                }
            }
            Shape::LongAddress => {
                let len = (b.room() / 6).saturating_sub(16);
                b.namespace = "n".repeat(len);
                b.function = "t".repeat(len);
                b.id = "i".repeat(len);
                b.target();
                b.state(&["s".to_owned()], 0, &[&small], &[]);
                let caller = address(&"a".repeat(len), &"b".repeat(len), &"c".repeat(len));
                let mut invocation = Vec::new();
                put_field(&mut invocation, 1, &caller);
                put_field(&mut invocation, 2, &small);
                b.put(3, &invocation);
                b.invocations += 1;
            }
            Shape::LongTypenames => {
                b.target();
                let len = (b.room() / 8).saturating_sub(16);
                let typename = format!("{}/x", "t".repeat(len));
                let value = value(version, &typename, &[7]);
                let names = cycle("s", 4);
                for i in 0..4 {
                    b.state(&names, i, &[&value], &[]);
                }
                for i in 0..4 {
                    b.invocation(i, &value, &[]);
                }
            }
        }
        b.finish()
    }
}

/// `count` names, `<prefix>0`, `<prefix>1`, ...
fn cycle(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}

/// A request of some [`Shape`], and what its function should find in it.
#[derive(Debug, Clone)]
pub struct Shaped {
    pub shape: Shape,
    pub version: ProtocolVersion,
    /// The serialized `ToFunction`.
    pub body: Vec<u8>,
    /// The target's function type, `namespace/name`.
    pub typename: String,
    /// The distinct state names, in request order; every state has a value.
    pub states: Vec<String>,
    /// The invocations.
    pub invocations: usize,
}

impl Shaped {
    /// A handler that binds the reading function to the target's type. `limits_raised`
    /// lifts `max_invocations`, for the shapes that need more invocations than its default
    /// to fill a size; `max_states` stays at its default.
    pub fn handler(&self, limits_raised: bool) -> RequestReplyHandler {
        let names: Arc<[String]> = self.states.clone().into();
        let mut functions = StatefulFunctions::new();
        functions
            .bind(&self.typename, move |ctx: &mut Context<'_>, _: Any| {
                read_every_state_and_write_the_first(ctx, &names)
            })
            .expect("a valid typename");
        let handler = match self.version {
            ProtocolVersion::V3 => RequestReplyHandler::v3(functions).expect("no declared states"),
            _ => RequestReplyHandler::v2(functions),
        };
        if limits_raised {
            handler.max_invocations(usize::MAX)
        } else {
            handler
        }
    }

    /// Whether `reply` is what the function answers: one mutation, of the first state,
    /// to the count of states (all of them have a value).
    pub fn check_reply(&self, reply: &[u8]) -> Result<(), String> {
        let (name, typename, value) = match self.version {
            ProtocolVersion::V3 => {
                let reply = reqreply::FromFunction::decode(reply).map_err(|e| e.to_string())?;
                let Some(reqreply::from_function::Response::InvocationResult(result)) =
                    reply.response
                else {
                    return Err(format!("not an invocation result: {reply:?}"));
                };
                let [mutation] = &result.state_mutations[..] else {
                    return Err(format!("{} mutations", result.state_mutations.len()));
                };
                let value = mutation.state_value.clone().unwrap_or_default();
                (
                    mutation.state_name.clone(),
                    value.typename,
                    value.value.to_vec(),
                )
            }
            _ => {
                let reply = polyglot::FromFunction::decode(reply).map_err(|e| e.to_string())?;
                let Some(polyglot::from_function::Response::InvocationResult(result)) =
                    reply.response
                else {
                    return Err(format!("not an invocation result: {reply:?}"));
                };
                let [mutation] = &result.state_mutations[..] else {
                    return Err(format!("{} mutations", result.state_mutations.len()));
                };
                let any = Any::decode(&mutation.state_value[..]).map_err(|e| e.to_string())?;
                (mutation.state_name.clone(), any.type_url, any.value)
            }
        };
        let expected = (self.states.len() as u64).to_le_bytes();
        if name != self.states[0] || typename != COUNT || value != expected {
            return Err(format!(
                "wrote {typename} {value:?} to a state of {} bytes, expected {COUNT} {expected:?} \
                 to the first of {} states",
                name.len(),
                self.states.len()
            ));
        }
        Ok(())
    }
}

/// The type of the count the function writes.
const COUNT: &str = "bench/count";

/// The function of every shape: reads each of `names` (every state the request carries)
/// and sets the first to the count of those with a value.
fn read_every_state_and_write_the_first(
    ctx: &mut Context<'_>,
    names: &[String],
) -> anyhow::Result<()> {
    let mut valued = 0u64;
    for name in names {
        if ctx.get_state(name)?.is_some() {
            valued += 1;
        }
    }
    let count = Any {
        type_url: COUNT.into(),
        value: valued.to_le_bytes().to_vec(),
    };
    ctx.set_state(&names[0], count)?;
    Ok(())
}

/// Five unknown fields (numbers 10 to 14, unknown in every message of both protocols),
/// one of each wire type: varint 150, fixed64, bytes "abc", fixed32, and a group holding
/// a varint.
const UNKNOWN: [u8; 26] = [
    0x50, 0x96, 0x01, // 10: varint
    0x59, 1, 2, 3, 4, 5, 6, 7, 8, // 11: fixed64
    0x62, 3, b'a', b'b', b'c', // 12: bytes
    0x6d, 1, 2, 3, 4, // 13: fixed32
    0x73, 0x08, 0x01, 0x74, // 14: group { 1: varint 1 }
];

/// `depth` nested start-groups of the unknown field 9, each closed.
pub fn nested_groups(depth: usize) -> Vec<u8> {
    let mut groups = vec![0x4b; depth];
    groups.extend(std::iter::repeat_n(0x4c, depth));
    groups
}

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Appends the length-delimited field `tag` holding `payload`.
fn put_field(buf: &mut Vec<u8>, tag: u32, payload: &[u8]) {
    put_varint(buf, u64::from(tag) << 3 | 2);
    put_varint(buf, payload.len() as u64);
    buf.extend_from_slice(payload);
}

/// The size of `payload` as a length-delimited field with a one-byte key.
fn len_field(payload: &[u8]) -> usize {
    let mut len = Vec::new();
    put_varint(&mut len, payload.len() as u64);
    1 + len.len() + payload.len()
}

/// A value as the version carries it: an `Any` on 2.2, a `TypedValue` with a value on 3.x.
pub fn value(version: ProtocolVersion, typename: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_field(&mut out, 1, typename.as_bytes());
    match version {
        ProtocolVersion::V3 => {
            out.extend_from_slice(&[0x10, 1]); // has_value
            put_field(&mut out, 3, bytes);
        }
        _ => put_field(&mut out, 2, bytes),
    }
    out
}

/// An `Address`.
fn address(namespace: &str, name: &str, id: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_field(&mut out, 1, namespace.as_bytes());
    put_field(&mut out, 2, name.as_bytes());
    put_field(&mut out, 3, id.as_bytes());
    out
}

/// A `PersistedValue` named `name` with each of `values` as a `state_value`, then `rest`.
fn state_bytes(name: &str, values: &[&[u8]], rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_field(&mut out, 1, name.as_bytes());
    for value in values {
        put_field(&mut out, 2, value);
    }
    out.extend_from_slice(rest);
    out
}

/// A request being written: the `ToFunction` before its batch, and the batch.
struct Builder {
    version: ProtocolVersion,
    size: usize,
    shape: Shape,
    namespace: String,
    function: String,
    id: String,
    /// What `ToFunction` holds before the batch.
    body: Vec<u8>,
    batch: Vec<u8>,
    /// A small value (`t/x`, one byte).
    small: Vec<u8>,
    /// The distinct state names, in request order.
    names: Vec<String>,
    invocations: usize,
}

impl Builder {
    fn new(shape: Shape, version: ProtocolVersion, size: usize) -> Self {
        Builder {
            version,
            size,
            shape,
            namespace: "bench".into(),
            function: "shapes".into(),
            id: "1".into(),
            body: Vec::new(),
            batch: Vec::with_capacity(size),
            small: value(version, "t/x", &[7]),
            names: Vec::new(),
            invocations: 0,
        }
    }

    /// What is left of the size for the batch's content, with room for the keys and
    /// lengths around it.
    fn room(&self) -> usize {
        self.size
            .saturating_sub(self.body.len() + self.batch.len() + 16)
    }

    fn put(&mut self, tag: u32, payload: &[u8]) {
        put_field(&mut self.batch, tag, payload);
    }

    fn target(&mut self) {
        let target = address(&self.namespace, &self.function, &self.id);
        self.put(1, &target);
    }

    /// The target and one plain invocation. A batch's fields may come in any order: the
    /// invocation before the states leaves the batch's end to `fill`.
    fn target_and_invocation(&mut self) {
        self.target();
        let argument = self.small.clone();
        self.invocation(0, &argument, &[]);
    }

    /// An invocation from `bench/caller/c0` or `c1` (by the parity of `i`), with
    /// `argument`, then `rest`.
    fn invocation(&mut self, i: usize, argument: &[u8], rest: &[u8]) {
        let caller = address("bench", "caller", if i % 2 == 0 { "c0" } else { "c1" });
        let mut out = Vec::with_capacity(caller.len() + argument.len() + rest.len() + 8);
        put_field(&mut out, 1, &caller);
        put_field(&mut out, 2, argument);
        out.extend_from_slice(rest);
        self.put(3, &out);
        self.invocations += 1;
    }

    /// A state named `names[i % names.len()]` with each of `values` as a `state_value`,
    /// then `rest`; the first round through `names` records them.
    fn state(&mut self, names: &[String], i: usize, values: &[&[u8]], rest: &[u8]) {
        let name = &names[i % names.len()];
        self.put(2, &state_bytes(name, values, rest));
        if i < names.len() {
            self.names.push(name.clone());
        }
    }

    /// Adds entries with `entry(self, i)` for i = 0, 1, ... while the next one fits the size
    /// (each entry is assumed as long as the first).
    fn fill(&mut self, mut entry: impl FnMut(&mut Self, usize)) {
        let start = self.batch.len();
        entry(self, 0);
        let len = self.batch.len() - start;
        let mut i = 1;
        while self.room() >= len {
            entry(self, i);
            i += 1;
        }
    }

    fn finish(mut self) -> Shaped {
        put_field(&mut self.body, 100, &self.batch);
        self.batch = Vec::new();
        self.shaped()
    }

    /// The request, once `body` is the whole `ToFunction`.
    fn shaped(self) -> Shaped {
        Shaped {
            shape: self.shape,
            version: self.version,
            body: self.body,
            typename: format!("{}/{}", self.namespace, self.function),
            states: self.names,
            invocations: self.invocations,
        }
    }
}
