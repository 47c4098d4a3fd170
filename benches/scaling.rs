//! `cargo bench --bench scaling`: how `handle()` and the floor grow with the batch size
//! (`w2`-style batches of 1 to 1,000 greetings; the cost per invocation should stay flat)
//! and with the size of state the function does not touch (`w3`-style requests whose nine
//! untouched states are 1 KiB to 16 MiB each; the cost should stay flat beyond the floor's
//! own decode).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "workloads/functions.rs"]
mod workloads;

use workloads::Floor;

fn batch_size(c: &mut Criterion) {
    let handler = workloads::handler();
    let mut group = c.benchmark_group("batch");
    for invocations in [1, 10, 100, 1000] {
        let request = workloads::batch_request(invocations);
        let floor = Floor::new(&request, &handler.handle(&request).unwrap());
        group.throughput(Throughput::Elements(invocations as u64));
        group.bench_with_input(BenchmarkId::new("handle", invocations), &request, |b, r| {
            b.iter(|| handler.handle(black_box(r)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("floor", invocations), &floor, |b, f| {
            b.iter(|| black_box(f).run())
        });
    }
    group.finish();
}

fn untouched_state(c: &mut Criterion) {
    let handler = workloads::handler();
    let mut group = c.benchmark_group("untouched_state");
    for (label, bytes) in [
        ("1K", 1 << 10),
        ("64K", 64 << 10),
        ("1M", 1 << 20),
        ("16M", 16 << 20),
    ] {
        let request = workloads::bigstate_request(bytes);
        let floor = Floor::new(&request, &handler.handle(&request).unwrap());
        group.bench_with_input(BenchmarkId::new("handle", label), &request, |b, r| {
            b.iter(|| handler.handle(black_box(r)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("floor", label), &floor, |b, f| {
            b.iter(|| black_box(f).run())
        });
    }
    group.finish();
}

criterion_group!(benches, batch_size, untouched_state);
criterion_main!(benches);
