//! `cargo bench --bench handler`: `handle()` against the protobuf floor on each fixed
//! workload, in the same criterion group so the two figures come from one run.
//!
//! For instruction counts (`scripts/callgrind.sh`), the same binary runs one request a
//! fixed number of times and exits, with no criterion in the way:
//!
//! ```text
//! STATEFUN_BENCH_RUN="w1_greet handle 1000" target/release/deps/handler-<hash>
//! ```
//!
//! The request is a workload name (`w1_greet`, ...; `v3_w1_greet`, ... and `v3_h1_handshake`
//! for 3.x), `batch<N>` or `state<N>[K|M]` (see
//! `workloads/functions.rs`); the mode is `handle` or `floor`. With
//! `STATEFUN_BENCH_METRICS=1` (and the feature `metrics`, on by default) the handler
//! counts in a [`Metrics`](statefun_sync::metrics::Metrics) registry, to measure what that
//! costs.

use std::hint::black_box;
use std::process::ExitCode;

use criterion::{Criterion, Throughput};
use statefun_sync::ProtocolVersion;

#[path = "workloads/functions.rs"]
mod workloads;

use workloads::Floor;

fn fixed_workloads(c: &mut Criterion) {
    for workload in workloads::all_workloads() {
        let handler = workloads::handler_for(workload.version);
        let floor = Floor::of(workload.version, workload.request, workload.expected);
        let mut group = c.benchmark_group(workload.name);
        group.throughput(Throughput::Bytes(workload.request.len() as u64));
        group.bench_function("handle", |b| {
            b.iter(|| handler.handle(black_box(workload.request)).unwrap())
        });
        group.bench_function("floor", |b| b.iter(|| black_box(&floor).run()));
        group.finish();
    }
}

/// The handler, counting in a metrics registry when `STATEFUN_BENCH_METRICS=1`.
fn measured(
    handler: statefun_sync::RequestReplyHandler,
) -> Result<statefun_sync::RequestReplyHandler, String> {
    if std::env::var("STATEFUN_BENCH_METRICS").as_deref() != Ok("1") {
        return Ok(handler);
    }
    // The registry lives as long as the handler, as in a server that renders it. Dropped
    // here, its memory would go to the allocator's free lists, from which the requests'
    // own allocations would then be served at a different cost (about 300 instructions
    // more per call on w1, none of it the counting's).
    #[cfg(feature = "metrics")]
    return Ok(handler.with_metrics(Box::leak(Box::new(statefun_sync::metrics::Metrics::new()))));
    #[cfg(not(feature = "metrics"))]
    Err("STATEFUN_BENCH_METRICS=1 needs the bench built with the feature `metrics`".into())
}

/// Runs `<request> <handle|floor> <iterations>` and exits.
fn run_iterations(spec: &str) -> Result<(), String> {
    let usage = "STATEFUN_BENCH_RUN must be `<request> <handle|floor> <iterations>`";
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let [name, mode, iterations] = parts[..] else {
        return Err(format!("{usage}, not `{spec}`"));
    };
    let iterations: u64 = iterations
        .parse()
        .map_err(|_| format!("{usage}: `{iterations}` is not a count"))?;
    let request = workloads::request(name).ok_or_else(|| format!("no request called `{name}`"))?;
    let version = workloads::all_workloads()
        .find(|w| w.name == name)
        .map_or(ProtocolVersion::V2, |w| w.version);
    let handler = measured(workloads::handler_for(version))?;
    match mode {
        "handle" => {
            for _ in 0..iterations {
                black_box(handler.handle(black_box(&request)).unwrap());
            }
        }
        "floor" => {
            let reply = handler.handle(&request).map_err(|e| e.to_string())?;
            let floor = Floor::of(version, &request, &reply);
            for _ in 0..iterations {
                black_box(black_box(&floor).run());
            }
        }
        other => return Err(format!("{usage}: unknown mode `{other}`")),
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Ok(spec) = std::env::var("STATEFUN_BENCH_RUN") {
        return match run_iterations(&spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("{message}");
                ExitCode::FAILURE
            }
        };
    }
    let mut criterion = Criterion::default().configure_from_args();
    fixed_workloads(&mut criterion);
    criterion.final_summary();
    ExitCode::SUCCESS
}
