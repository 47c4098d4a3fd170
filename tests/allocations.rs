//! Handling `w3_bigstate` (576 KiB of state the greeter never touches) allocates less
//! than 16 KiB in total: unchanged state is copied neither when the request is decoded
//! nor into the reply.
//!
//! A counting global allocator measures it. It counts only on the thread that asked for
//! it, so the test harness's own threads do not disturb the figures.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use statefun_sync::http::Endpoint;
use support::workloads;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

fn record(bytes: usize) {
    // `try_with`: the thread-locals may be gone while a thread shuts down.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
            BYTES.with(|b| b.set(b.get() + bytes));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// const-initialized thread-locals without destructors, so counting never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A growing reallocation counts in full, as if it copied into a new block.
        record(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The number of allocations and the total bytes they asked for while `f` ran.
fn allocations_of<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    ALLOCATIONS.with(|n| n.set(0));
    BYTES.with(|b| b.set(0));
    COUNTING.with(|c| c.set(true));
    let result = f();
    COUNTING.with(|c| c.set(false));
    (result, ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get))
}

#[test]
fn handling_w3_bigstate_allocates_less_than_16_kib() {
    let handler = workloads::handler();
    let workload = workloads::WORKLOADS[2];
    assert_eq!(workload.name, "w3_bigstate");

    let (reply, allocations, bytes) = allocations_of(|| handler.handle(workload.request));

    assert_eq!(reply.unwrap(), workload.expected);
    println!(
        "w3_bigstate ({} B request): {allocations} allocations, {bytes} B in total",
        workload.request.len()
    );
    assert!(
        bytes < 16 * 1024,
        "handle() allocated {bytes} B in {allocations} allocations for a {} B request",
        workload.request.len()
    );
}

#[test]
fn handling_w3_bigstate_in_3x_form_allocates_less_than_16_kib() {
    let handler = workloads::handler3();
    let workload = workloads::WORKLOADS3[2];
    assert_eq!(workload.name, "v3_w3_bigstate");

    let (reply, allocations, bytes) = allocations_of(|| handler.handle(workload.request));

    assert_eq!(reply.unwrap(), workload.expected);
    println!(
        "v3_w3_bigstate ({} B request): {allocations} allocations, {bytes} B in total",
        workload.request.len()
    );
    assert!(
        bytes < 16 * 1024,
        "handle() allocated {bytes} B in {allocations} allocations for a {} B request",
        workload.request.len()
    );
}

// The counter itself: copying one untouched state (64 KiB) would be seen.
#[test]
fn the_counter_sees_a_copy_of_one_state() {
    let workload = workloads::WORKLOADS[2];

    let (copy, allocations, bytes) = allocations_of(|| workload.request[..64 * 1024].to_vec());

    assert_eq!(copy.len(), 64 * 1024);
    assert_eq!(allocations, 1);
    assert!(bytes >= 64 * 1024, "{bytes} B");
}

// The greeter's own allocations per invocation are three: the decoded name, and the
// formatted greeting (`format!` grows its first guess once). Everything the SDK does per
// invocation (argument, caller, state write, outgoing message) reuses or borrows, apart
// from buffers that grow by doubling.
#[test]
fn a_batch_allocates_no_more_per_invocation_than_the_function_does() {
    let handler = workloads::handler();
    let (small, large) = (
        workloads::batch_request(100),
        workloads::batch_request(1000),
    );

    let (_, allocations_100, bytes_100) = allocations_of(|| handler.handle(&small));
    let (_, allocations_1000, bytes_1000) = allocations_of(|| handler.handle(&large));

    println!(
        "batch of 100: {allocations_100} allocations ({bytes_100} B); \
         batch of 1,000: {allocations_1000} allocations ({bytes_1000} B)"
    );
    let per_invocation = (allocations_1000 - allocations_100) as f64 / 900.0;
    assert!(
        per_invocation <= 3.05,
        "{per_invocation:.2} allocations per invocation ({allocations_100} for 100, {allocations_1000} for 1,000)"
    );
}

// The HTTP rules around a batch (the reply's status, content type and headers) add no
// allocation to the handler's own: the crate's responses use static header values.
#[test]
fn the_endpoint_adds_no_allocation_to_a_reply() {
    let handler = workloads::handler();
    let endpoint = Endpoint::new();
    let workload = workloads::WORKLOADS[2];

    let (_, handle_allocations, handle_bytes) = allocations_of(|| handler.handle(workload.request));
    let (response, allocations, bytes) =
        allocations_of(|| endpoint.handle_body(&handler, workload.request));

    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), workload.expected);
    assert_eq!(
        (allocations, bytes),
        (handle_allocations, handle_bytes),
        "Endpoint::handle_body against handle()"
    );
}
