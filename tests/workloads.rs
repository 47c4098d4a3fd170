//! The benchmark functions answer the four fixed workloads with exactly the bytes the
//! Python SDK 2.2.2 answers them with, and their 3.x forms (and the handshake request)
//! with exactly the bytes the Python SDK 3.3.0 answers them with, so the benches measure
//! the same work as the reference. (Python 3.3.0's encoding is canonical, fields in
//! field-number order and defaults left out, as `benches/workloads3/README.md` checks, so
//! byte identity is the comparison.)

mod support;

use statefun_sync::testing::v2::Reply;
use statefun_sync::testing::StateChange;
use support::workloads::{self, Count, Greet, WORKLOADS};

#[test]
fn every_workload_reply_is_byte_identical_to_the_python_sdk_reply() {
    let handler = workloads::handler();
    for workload in WORKLOADS {
        let reply = handler.handle(workload.request).unwrap();
        assert!(
            reply == workload.expected,
            "{}: reply of {} B differs from the expected {} B",
            workload.name,
            reply.len(),
            workload.expected.len()
        );
    }
}

#[test]
fn every_3x_workload_reply_is_byte_identical_to_the_python_sdk_3_reply() {
    let handler = workloads::handler3();
    for workload in workloads::WORKLOADS3 {
        let reply = handler.handle(workload.request).unwrap();
        assert!(
            reply == workload.expected,
            "{}: reply of {} B differs from the expected {} B:\n{reply:02x?}\n{:02x?}",
            workload.name,
            reply.len(),
            workload.expected.len(),
            workload.expected
        );
    }
}

// Guards the scaling benches: their generated requests are answered as WORKLOADS.md says.
#[test]
fn generated_batches_count_on_from_the_seen_state() {
    let handler = workloads::handler();
    let reply = Reply::decode(&handler.handle(&workloads::batch_request(3)).unwrap()).unwrap();

    let Some(StateChange::Modified(seen)) = reply.state_change("seen") else {
        panic!("seen is modified");
    };
    let seen: Count = seen.to_msg().unwrap();
    assert_eq!(seen.value, 44);
    let greetings: Vec<String> = reply
        .messages()
        .iter()
        .map(|m| m.argument.to_msg::<Greet>().unwrap().name)
        .collect();
    assert_eq!(
        greetings,
        ["Hello user-0 #42", "Hello user-1 #43", "Hello user-2 #44"]
    );
}

#[test]
fn a_generated_bigstate_request_changes_only_seen() {
    let handler = workloads::handler();
    let request = workloads::bigstate_request(1 << 10);

    let reply = handler.handle(&request).unwrap();

    assert_eq!(reply, WORKLOADS[2].expected);
}
