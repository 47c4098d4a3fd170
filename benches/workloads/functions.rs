//! The benchmark functions `bench/greeter` and `bench/fanout`, exactly as the workload
//! specification (`WORKLOADS.md` of the shared benchmark set, summarized in BENCHMARKS.md)
//! defines them, the four fixed workloads, the scaling requests, and the protobuf floor;
//! and the same for the 3.x protocol (`workloads3/README.md`): the functions written with
//! the typed API, the four workloads and the handshake request in 3.x form.
//!
//! One file shared by the benches, the tests and the bench server, each of which pulls it
//! in as `mod workloads` with a `#[path]` attribute (the tests once, in `tests/support/`).

#![allow(dead_code)] // each includer uses a different part

use anyhow::Context as _;
use prost::bytes::Bytes;
use prost::Message as _;
use statefun_sync::proto::{polyglot, reqreply};
use statefun_sync::testing::v2::Request;
use statefun_sync::{
    Address, Context, Message, ProtocolVersion, RequestReplyHandler, StatefulFunctions, ValueSpec,
};

/// `bench.Greet` (`proto/bench.proto` of the reference).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Greet {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `bench.Count`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Count {
    #[prost(int64, tag = "1")]
    pub value: i64,
}

/// `bench.Blob`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Blob {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

macro_rules! bench_name {
    ($ty:ident) => {
        impl prost::Name for $ty {
            const NAME: &'static str = stringify!($ty);
            const PACKAGE: &'static str = "bench";

            fn full_name() -> String {
                concat!("bench.", stringify!($ty)).to_owned()
            }

            fn type_url() -> String {
                concat!("type.googleapis.com/bench.", stringify!($ty)).to_owned()
            }
        }
    };
}
bench_name!(Greet);
bench_name!(Count);
bench_name!(Blob);
statefun_sync::protobuf_type!(Greet, Count, Blob);

/// 2.2's `bench/greeter` state `seen`: a `bench.Count` message.
pub const SEEN_COUNT: ValueSpec<Count> = ValueSpec::named("seen");

/// `bench/greeter`: counts the greetings in state `seen` and greets the caller with the count.
pub fn greeter(ctx: &mut Context<'_>, message: Greet) -> anyhow::Result<()> {
    let count = ctx.get(&SEEN_COUNT)?.map_or(0, |seen| seen.value) + 1;
    ctx.set(&SEEN_COUNT, &Count { value: count })?;
    ctx.reply(&Greet {
        name: format!("Hello {} #{}", message.name, count),
    })?;
    Ok(())
}

/// `bench/fanout`: forwards the greeting to `bench/greeter/0` .. `99`, then emits
/// `Count{100}` to the egress `bench/out`.
pub fn fanout(ctx: &mut Context<'_>, message: Greet) -> anyhow::Result<()> {
    for i in 0..100 {
        ctx.send("bench/greeter", &i.to_string(), &message)?;
    }
    ctx.send_egress("bench/out", &Count { value: 100 })?;
    Ok(())
}

/// Both functions, bound as an application would bind them.
pub fn handler() -> RequestReplyHandler {
    handler_with_greeter(greeter)
}

/// [`handler`] with `greeter` in [`greeter`]'s place (the bench server's sleeps first),
/// bound with the state [`greeter`] reads.
pub fn handler_with_greeter<F>(greeter: F) -> RequestReplyHandler
where
    F: Fn(&mut Context<'_>, Greet) -> anyhow::Result<()> + Send + Sync + 'static,
{
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("bench/greeter", greeter)
        .expect("a valid, unbound typename")
        .state(&SEEN_COUNT);
    functions
        .bind_typed("bench/fanout", fanout)
        .expect("a valid, unbound typename");
    RequestReplyHandler::v2(functions)
}

/// 3.x's `bench/greeter` state `seen`: an `io.statefun.types/int`.
pub const SEEN: ValueSpec<i32> = ValueSpec::named("seen");

/// 3.x's `bench/greeter`: as [`greeter`], with the count in an `int` state and the
/// greeting sent to the caller (3.x has no reply; `Context::reply` sends to the caller).
pub fn greeter3(ctx: &mut Context<'_>, message: Message<'_>) -> anyhow::Result<()> {
    let greet: Greet = message.get()?.context("a greeting without a value")?;
    let count = ctx.get(&SEEN)?.unwrap_or(0) + 1;
    ctx.set(&SEEN, &count)?;
    ctx.reply(&Greet {
        name: format!("Hello {} #{}", greet.name, count),
    })?;
    Ok(())
}

/// 3.x's `bench/fanout`, as [`fanout`] with typed values.
pub fn fanout3(ctx: &mut Context<'_>, message: Message<'_>) -> anyhow::Result<()> {
    let greet: Greet = message.get()?.context("a greeting without a value")?;
    for i in 0..100 {
        ctx.send("bench/greeter", &i.to_string(), &greet)?;
    }
    ctx.send_egress("bench/out", &Count { value: 100 })?;
    Ok(())
}

/// Both 3.x functions, bound as an application would bind them.
pub fn handler3() -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("bench/greeter", greeter3)
        .expect("a valid, unbound typename")
        .state(&SEEN);
    functions
        .bind_message("bench/fanout", fanout3)
        .expect("a valid, unbound typename");
    RequestReplyHandler::v3(functions).expect("typed states")
}

/// The handler of the workloads of `version`.
pub fn handler_for(version: ProtocolVersion) -> RequestReplyHandler {
    match version {
        ProtocolVersion::V3 => handler3(),
        _ => handler(),
    }
}

/// One fixed workload: the request and the Python SDK's byte-exact reply.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub name: &'static str,
    pub version: ProtocolVersion,
    pub request: &'static [u8],
    pub expected: &'static [u8],
}

macro_rules! workload {
    ($name:literal) => {
        Workload {
            name: $name,
            version: ProtocolVersion::V2,
            request: include_bytes!(concat!($name, ".bin")),
            expected: include_bytes!(concat!($name, ".expected.bin")),
        }
    };
    (v3 $name:literal) => {
        Workload {
            name: concat!("v3_", $name),
            version: ProtocolVersion::V3,
            request: include_bytes!(concat!("../workloads3/", $name, ".bin")),
            expected: include_bytes!(concat!("../workloads3/", $name, ".expected.bin")),
        }
    };
}

/// `w1_greet`, `w2_batch100`, `w3_bigstate`, `w4_fanout`.
pub const WORKLOADS: [Workload; 4] = [
    workload!("w1_greet"),
    workload!("w2_batch100"),
    workload!("w3_bigstate"),
    workload!("w4_fanout"),
];

/// The same four in 3.x form, with the Python SDK 3.3.0's replies, and `v3_h1_handshake`:
/// a greeting without the state `seen`, answered with the handshake.
pub const WORKLOADS3: [Workload; 5] = [
    workload!(v3 "w1_greet"),
    workload!(v3 "w2_batch100"),
    workload!(v3 "w3_bigstate"),
    workload!(v3 "w4_fanout"),
    workload!(v3 "h1_handshake"),
];

/// Every fixed workload, 2.2 then 3.x.
pub fn all_workloads() -> impl Iterator<Item = Workload> {
    WORKLOADS.into_iter().chain(WORKLOADS3)
}

/// The caller of every workload invocation, `bench/caller/c1`.
pub fn caller() -> Address {
    Address::new("bench", "caller", "c1").unwrap()
}

/// A `w2`-style request: `bench/greeter/user-1` with `seen = Count{41}` and `invocations`
/// greetings `user-0`, `user-1`, ... from `bench/caller/c1`.
pub fn batch_request(invocations: usize) -> Vec<u8> {
    let mut request =
        Request::to("bench/greeter", "user-1").with_state_value("seen", &Count { value: 41 });
    for i in 0..invocations {
        request = request.invoke_from(
            caller(),
            &Greet {
                name: format!("user-{i}"),
            },
        );
    }
    request.to_bytes()
}

/// A `w3`-style request: `w1`'s greeting, with states `s1`..`s9` after `seen`, each a
/// `Blob` of `state_bytes` bytes packed into an `Any`, none of which the greeter touches.
pub fn bigstate_request(state_bytes: usize) -> Vec<u8> {
    let mut request =
        Request::to("bench/greeter", "user-1").with_state_value("seen", &Count { value: 41 });
    for k in 1..=9usize {
        // The content does not matter to the greeter; a fill keeps 16 MiB states quick to
        // build, even under callgrind.
        let data = vec![k as u8; state_bytes];
        request = request.with_state_value(&format!("s{k}"), &Blob { data });
    }
    request
        .invoke_from(
            caller(),
            &Greet {
                name: "Alice".into(),
            },
        )
        .to_bytes()
}

/// The named request: a fixed workload (`w1_greet`, ...), `batch<N>` ([`batch_request`]) or
/// `state<N>` ([`bigstate_request`], `N` bytes per untouched state, with an optional `K` or
/// `M` suffix).
pub fn request(name: &str) -> Option<Vec<u8>> {
    if let Some(w) = all_workloads().find(|w| w.name == name) {
        return Some(w.request.to_vec());
    }
    if let Some(n) = name.strip_prefix("batch") {
        return n.parse().ok().map(batch_request);
    }
    let size = name.strip_prefix("state")?;
    let (digits, unit) = match size.strip_suffix('K') {
        Some(digits) => (digits, 1 << 10),
        None => match size.strip_suffix('M') {
            Some(digits) => (digits, 1 << 20),
            None => (size, 1),
        },
    };
    digits
        .parse::<usize>()
        .ok()
        .map(|n| bigstate_request(n * unit))
}

/// The floor for one request: decoding it into the crate's generated protocol types of
/// its version (from a `Bytes` buffer, so the state values are slices, not copies) and
/// encoding the reply from prebuilt protocol types. No SDK does less.
#[derive(Debug, Clone)]
pub enum Floor {
    V2 {
        request: Bytes,
        reply: polyglot::FromFunction,
    },
    V3 {
        request: Bytes,
        reply: reqreply::FromFunction,
    },
}

impl Floor {
    /// The 2.2 floor of `request`, whose reply is `reply` (a serialized `FromFunction`).
    pub fn new(request: &[u8], reply: &[u8]) -> Floor {
        Floor::of(ProtocolVersion::V2, request, reply)
    }

    /// The floor of `request` of `version`, whose reply is `reply`.
    pub fn of(version: ProtocolVersion, request: &[u8], reply: &[u8]) -> Floor {
        let request = Bytes::copy_from_slice(request);
        match version {
            ProtocolVersion::V3 => Floor::V3 {
                request,
                reply: reqreply::FromFunction::decode(reply).expect("a FromFunction"),
            },
            _ => Floor::V2 {
                request,
                reply: polyglot::FromFunction::decode(reply).expect("a FromFunction"),
            },
        }
    }

    /// Decodes the request and encodes the reply; returns both, so that neither is
    /// optimized away (and the request is freed after the reply is encoded, as a handler
    /// frees it).
    pub fn run(&self) -> (Decoded, Vec<u8>) {
        match self {
            Floor::V2 { request, reply } => {
                let request = polyglot::ToFunction::decode(request.clone()).expect("a request");
                (Decoded::V2(request), reply.encode_to_vec())
            }
            Floor::V3 { request, reply } => {
                let request = reqreply::ToFunction::decode(request.clone()).expect("a request");
                (Decoded::V3(request), reply.encode_to_vec())
            }
        }
    }
}

/// A request the floor decoded.
#[derive(Debug)]
pub enum Decoded {
    V2(polyglot::ToFunction),
    V3(reqreply::ToFunction),
}
