//! The benchmark functions `bench/greeter` and `bench/fanout`, exactly as the workload
//! specification (`WORKLOADS.md` of the shared benchmark set, summarized in BENCHMARKS.md)
//! defines them, the four fixed workloads, the scaling requests, and the protobuf floor.
//!
//! One file shared by the benches, the tests and the bench server, each of which pulls it
//! in as `mod workloads` with a `#[path]` attribute (the tests once, in `tests/support/`).

#![allow(dead_code)] // each includer uses a different part

use prost::bytes::Bytes;
use prost::Message;
use statefun_sync::proto::polyglot::{FromFunction, ToFunction};
use statefun_sync::testing::Request;
use statefun_sync::{Address, Context, RequestReplyHandler, StatefulFunctions};

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

/// `bench/greeter`: counts the greetings in state `seen` and greets the caller with the count.
pub fn greeter(ctx: &mut Context<'_>, message: Greet) -> anyhow::Result<()> {
    let count = ctx
        .unpack_state::<Count>("seen")?
        .map_or(0, |seen| seen.value)
        + 1;
    ctx.pack_and_set_state("seen", &Count { value: count })?;
    ctx.pack_and_reply(&Greet {
        name: format!("Hello {} #{}", message.name, count),
    })?;
    Ok(())
}

/// `bench/fanout`: forwards the greeting to `bench/greeter/0` .. `99`, then emits
/// `Count{100}` to the egress `bench/out`.
pub fn fanout(ctx: &mut Context<'_>, message: Greet) -> anyhow::Result<()> {
    for i in 0..100 {
        ctx.pack_and_send("bench/greeter", &i.to_string(), &message)?;
    }
    ctx.pack_and_send_egress("bench/out", &Count { value: 100 })?;
    Ok(())
}

/// Both functions, bound as an application would bind them.
pub fn handler() -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("bench/greeter", greeter)
        .expect("a valid, unbound typename")
        .state("seen");
    functions
        .bind_typed("bench/fanout", fanout)
        .expect("a valid, unbound typename");
    RequestReplyHandler::new(functions)
}

/// One fixed workload: the request and the Python SDK's byte-exact reply.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub name: &'static str,
    pub request: &'static [u8],
    pub expected: &'static [u8],
}

macro_rules! workload {
    ($name:literal) => {
        Workload {
            name: $name,
            request: include_bytes!(concat!($name, ".bin")),
            expected: include_bytes!(concat!($name, ".expected.bin")),
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

/// The caller of every workload invocation, `bench/caller/c1`.
pub fn caller() -> Address {
    Address::new("bench", "caller", "c1")
}

/// A `w2`-style request: `bench/greeter/user-1` with `seen = Count{41}` and `invocations`
/// greetings `user-0`, `user-1`, ... from `bench/caller/c1`.
pub fn batch_request(invocations: usize) -> Vec<u8> {
    let mut request =
        Request::to("bench/greeter", "user-1").with_packed_state("seen", &Count { value: 41 });
    for i in 0..invocations {
        request = request.pack_and_invoke_from(
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
        Request::to("bench/greeter", "user-1").with_packed_state("seen", &Count { value: 41 });
    for k in 1..=9usize {
        // The content does not matter to the greeter; a fill keeps 16 MiB states quick to
        // build, even under callgrind.
        let data = vec![k as u8; state_bytes];
        request = request.with_packed_state(&format!("s{k}"), &Blob { data });
    }
    request
        .pack_and_invoke_from(
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
    if let Some(w) = WORKLOADS.iter().find(|w| w.name == name) {
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

/// The floor for one request: decoding it into the crate's generated protocol types
/// (from a `Bytes` buffer, so the state values are slices, not copies) and encoding the
/// reply from prebuilt protocol types. No SDK does less.
#[derive(Debug, Clone)]
pub struct Floor {
    request: Bytes,
    reply: FromFunction,
}

impl Floor {
    /// The floor of `request`, whose reply is `reply` (a serialized `FromFunction`).
    pub fn new(request: &[u8], reply: &[u8]) -> Floor {
        Floor {
            request: Bytes::copy_from_slice(request),
            reply: FromFunction::decode(reply).expect("the reply is a FromFunction"),
        }
    }

    /// Decodes the request and encodes the reply; returns both, so that neither is
    /// optimized away.
    pub fn run(&self) -> (ToFunction, Vec<u8>) {
        let request = ToFunction::decode(self.request.clone()).expect("a valid request");
        (request, self.reply.encode_to_vec())
    }
}
