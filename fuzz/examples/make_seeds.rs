//! Writes the seed corpus of the fuzz targets: `cargo run --example make_seeds` in `fuzz/`.
//!
//! Seeds are the bench workloads (small ones; `w3_bigstate` is 590 KB) and requests built
//! the way the tests build them, addressed to the fuzz registry's functions with scripts that use every
//! operation.

use std::fs;
use std::path::Path;

use prost_types::Any;
use statefun_sync::testing::Request;
use statefun_sync::{pack, Address};
use statefun_sync_fuzz::{ALL, DECLARED, TYPED};

fn script(bytes: &[u8]) -> Any {
    Any {
        type_url: "fuzz/script".into(),
        value: bytes.to_vec(),
    }
}

/// Every operation once, passing errors up (ops 0..=13), with valid operands.
fn every_operation() -> Vec<u8> {
    vec![
        0, 0, 1, 2, b'u', b'1', 1, b'v', // send fuzz/all/1 Any{"u1", "v"}
        1, 1, 1, 5, // pack_and_send fuzz/other/1 Duration{5}
        2, 1, b'u', 0, // reply Any{"u", ""}
        3, 7, // pack_and_reply Duration{7}
        4, 3, 2, 0, 1, 0, 0, // send_after 2 s fuzz/all/1 Any::default
        5, 3, 1, 1, 1, 9, // pack_and_send_after 1 s fuzz/other/1 Duration{9}
        6, 1, 0, 0, // send_egress fuzz/other Any::default
        7, 1, 1, b't', 1, b'k', 3, // kafka topic "t" key "k"
        8, 1, 1, b's', 1, b'p', 0, 4, // kinesis stream "s" key "p"
        9, 0, // get_state a
        10, 1, // unpack_state b
        11, 0, 1, b'x', 1, b'y', // set_state a Any{"x", "y"}
        9, 0, // get_state a: sees the write
        12, 1, 42, // pack_and_set_state b Duration{42}
        13, 2, // delete_state c
        0x89, 3, // get_state missing, error ignored
        0x80, 2, 0, 0, 0, // send with an empty id, error ignored
        0x84, 0, 0, 1, 0, 0, // send_after with a zero delay, error ignored
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn main() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workloads = fuzz.join("../benches/workloads");
    let caller = Address::new("fuzz", "caller", "c1");
    let states = |r: Request| {
        r.with_state("a", None)
            .with_packed_state(
                "b",
                &prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                },
            )
            .with_state("c", Some(script(b"c")))
    };
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for w in ["w1_greet", "w2_batch100", "w4_fanout"] {
        seeds.push((
            w.into(),
            fs::read(workloads.join(format!("{w}.bin"))).unwrap(),
        ));
    }
    seeds.push((
        "all_every_op".into(),
        states(Request::to(ALL, "1"))
            .invoke_from(caller.clone(), script(&every_operation()))
            .invoke(script(&[9, 0, 10, 1, 13, 0, 0x82, 0]))
            .to_bytes(),
    ));
    seeds.push((
        "all_fail".into(),
        states(Request::to(ALL, "1"))
            .invoke(script(&[11, 0, 0, 0, 14, 1]))
            .to_bytes(),
    ));
    seeds.push((
        "all_panic".into(),
        states(Request::to(ALL, "1"))
            .invoke(script(&[0, 0, 1, 0, 0, 15, 2]))
            .to_bytes(),
    ));
    seeds.push((
        "all_unknown_state".into(),
        Request::to(ALL, "1")
            .invoke(script(&[11, 3, 0, 0]))
            .to_bytes(),
    ));
    seeds.push((
        "typed".into(),
        states(Request::to(TYPED, "1"))
            .pack_and_invoke_from(
                caller.clone(),
                &prost_types::Duration {
                    seconds: 0x0b03,
                    nanos: 0,
                },
            )
            .invoke(script(b"not a duration"))
            .to_bytes(),
    ));
    seeds.push((
        "declared".into(),
        states(Request::to(DECLARED, "1"))
            .invoke(script(&every_operation()))
            .to_bytes(),
    ));
    seeds.push((
        "declared_missing".into(),
        Request::to(DECLARED, "1")
            .with_state("a", None)
            .invoke(script(&[]))
            .to_bytes(),
    ));
    seeds.push((
        "state_of_another_type".into(),
        Request::to(ALL, "1")
            .with_state("a", Some(pack(&prost_types::Timestamp::default())))
            .invoke(script(&[10, 0]))
            .to_bytes(),
    ));
    seeds.push(("empty".into(), Vec::new()));

    for (name, bytes) in &seeds {
        write(&fuzz.join("corpus/handle_bytes"), name, bytes);
    }
    // The structured targets read any bytes; the same requests make varied first inputs.
    for (name, bytes) in seeds
        .iter()
        .filter(|(n, _)| n.starts_with("all") || n == "typed")
    {
        write(&fuzz.join("corpus/request_roundtrip"), name, bytes);
    }
    for (name, bytes) in seeds
        .iter()
        .filter(|(n, _)| n == "all_every_op" || n == "w1_greet")
    {
        write(&fuzz.join("corpus/http_endpoint"), name, bytes);
    }
    // The `seed-fuzzed-*` files (http_connection, request_roundtrip) are inputs picked from
    // fuzzing runs, not written here.
}
