//! `cargo bench --bench complexity`: `handle()` on each request shape of
//! `workloads/shapes.rs` (issue 21) at 1 MiB, on 2.2 and 3.x, per byte (criterion).
//!
//! Whether a shape's cost grows linearly with the request is what `scripts/complexity.sh`
//! measures, with this binary in its one-shape mode, which builds one request and runs
//! `handle()` on it a fixed number of times, with no criterion in the way:
//!
//! ```text
//! STATEFUN_BENCH_SHAPE="merged_then_repeated 3.x 32M 3" target/release/deps/complexity-<hash>
//! ```
//!
//! The arguments are the shape, the protocol (`2.2` or `3.x`), the request's size (bytes,
//! with an optional `K` or `M` suffix for KiB and MiB) and the iterations. It checks the
//! first reply, then prints one line: the shape, the protocol, the request's bytes, its
//! distinct states and its invocations, whether the handler's `max_invocations` was
//! raised to hold them, and the fastest and the median time of one `handle()` in
//! nanoseconds. Under callgrind, `--toggle-collect` on `RequestReplyHandler::handle`
//! counts the instructions of the calls alone, without building the request. With
//! `STATEFUN_BENCH_METRICS=1` (and the feature `metrics`, on by default) the handler
//! counts in a [`Metrics`](statefun_sync::metrics::Metrics) registry.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use statefun_sync::{ProtocolVersion, RequestReplyHandler};

#[path = "workloads/shapes.rs"]
mod shapes;

use shapes::{Shape, Shaped};

/// The size of the criterion benches' requests.
const CRITERION_SIZE: usize = 1 << 20;

fn shapes_at_one_mib(c: &mut Criterion) {
    for shape in Shape::ALL {
        let mut group = c.benchmark_group(shape.name());
        for version in [ProtocolVersion::V2, ProtocolVersion::V3] {
            let shaped = shape.build(version, CRITERION_SIZE);
            let handler = handler(&shaped).expect("a handler");
            shaped
                .check_reply(&handler.handle(&shaped.body).expect("a reply"))
                .expect("the reply the function makes");
            group.throughput(Throughput::Bytes(shaped.body.len() as u64));
            group.bench_function(version.to_string(), |b| {
                b.iter(|| handler.handle(black_box(&shaped.body)).unwrap())
            });
        }
        group.finish();
    }
}

/// Whether a handler with the default limits would refuse `shaped` for its invocations.
fn needs_raised_limits(shaped: &Shaped) -> bool {
    shaped.invocations > RequestReplyHandler::DEFAULT_MAX_INVOCATIONS
}

/// The handler of `shaped`, counting in a metrics registry when
/// `STATEFUN_BENCH_METRICS=1`.
fn handler(shaped: &Shaped) -> Result<RequestReplyHandler, String> {
    let handler = shaped.handler(needs_raised_limits(shaped));
    if std::env::var("STATEFUN_BENCH_METRICS").as_deref() != Ok("1") {
        return Ok(handler);
    }
    // The registry lives as long as the process, as in a server that renders it (see
    // benches/handler.rs).
    #[cfg(feature = "metrics")]
    return Ok(handler.with_metrics(Box::leak(Box::new(statefun_sync::metrics::Metrics::new()))));
    #[cfg(not(feature = "metrics"))]
    Err("STATEFUN_BENCH_METRICS=1 needs the bench built with the feature `metrics`".into())
}

fn parse_size(size: &str) -> Option<usize> {
    let (digits, unit) = if let Some(digits) = size.strip_suffix('M') {
        (digits, 1 << 20)
    } else if let Some(digits) = size.strip_suffix('K') {
        (digits, 1 << 10)
    } else {
        (size, 1)
    };
    digits.parse::<usize>().ok().map(|n| n * unit)
}

/// Runs `<shape> <2.2|3.x> <size> <iterations>` and prints its line.
fn run_shape(spec: &str) -> Result<(), String> {
    let usage = "STATEFUN_BENCH_SHAPE must be `<shape> <2.2|3.x> <size>[K|M] <iterations>`";
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let [name, version, size, iterations] = parts[..] else {
        return Err(format!("{usage}, not `{spec}`"));
    };
    let shape = Shape::named(name).ok_or_else(|| {
        let names: Vec<_> = Shape::ALL.iter().map(|s| s.name()).collect();
        format!("no shape called `{name}`; the shapes: {}", names.join(", "))
    })?;
    let version = match version {
        "2.2" => ProtocolVersion::V2,
        "3.x" => ProtocolVersion::V3,
        other => return Err(format!("{usage}: `{other}` is not 2.2 or 3.x")),
    };
    let size = parse_size(size).ok_or_else(|| format!("{usage}: `{size}` is not a size"))?;
    let iterations: usize = iterations
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{usage}: `{iterations}` is not a count"))?;

    let shaped = shape.build(version, size);
    let handler = handler(&shaped)?;
    let mut times = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let started = Instant::now();
        let reply = handler.handle(black_box(&shaped.body));
        times.push(started.elapsed().as_nanos());
        let reply = reply.map_err(|e| format!("{name} {version} {size}: {e:#}"))?;
        if i == 0 {
            shaped
                .check_reply(&reply)
                .map_err(|e| format!("{name} {version} {size}: {e}"))?;
        }
    }
    times.sort_unstable();
    println!(
        "{name} {version} {} {} {} {} {} {}",
        shaped.body.len(),
        shaped.states.len(),
        shaped.invocations,
        if needs_raised_limits(&shaped) {
            "raised"
        } else {
            "default"
        },
        times[0],
        times[times.len() / 2],
    );
    Ok(())
}

fn main() -> ExitCode {
    if let Ok(spec) = std::env::var("STATEFUN_BENCH_SHAPE") {
        return match run_shape(&spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("{message}");
                ExitCode::FAILURE
            }
        };
    }
    let mut criterion = Criterion::default().configure_from_args();
    shapes_at_one_mib(&mut criterion);
    criterion.final_summary();
    ExitCode::SUCCESS
}
