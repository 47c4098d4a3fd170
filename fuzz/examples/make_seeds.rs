//! Writes the seed corpus of the fuzz targets: `cargo run --example make_seeds` in `fuzz/`.
//!
//! Seeds are the bench workloads (small ones; `w3_bigstate` is 590 KB) and requests built
//! the way the tests build them, addressed to the fuzz registry's functions with scripts that use every
//! operation. The 3.x targets get the 3.x workloads (`benches/workloads3`, the greeter and
//! fan-out bound in `statefun_sync_fuzz::v3` too) and 3.x requests built with prost
//! (handshake, cancellation, every operation).

use std::fs;
use std::path::Path;

use prost::Message as _;
use prost_types::Any;
use statefun_sync::proto::reqreply as v3proto;
use statefun_sync::testing::v2::Request;
use statefun_sync::{pack, Address};
use statefun_sync_fuzz::v3::{ALL as ALL3, ANY as ANY3, TYPED as TYPED3};
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
        1, 1, 1, 5, // send packed fuzz/other/1 Duration{5}
        2, 1, b'u', 0, // reply Any{"u", ""}
        3, 7, // reply packed Duration{7}
        4, 3, 2, 0, 1, 0, 0, // send_after 2 s fuzz/all/1 Any::default
        5, 3, 1, 1, 1, 9, // send_after packed 1 s fuzz/other/1 Duration{9}
        6, 1, 0, 0, // send_egress fuzz/other Any::default
        7, 1, 1, b't', 1, b'k', 3, // kafka topic "t" key "k"
        8, 1, 1, b's', 1, b'p', 0, 4, // kinesis stream "s" key "p"
        9, 0, // get_state a
        10, 1, // get_state b, unpacked
        11, 0, 1, b'x', 1, b'y', // set_state a Any{"x", "y"}
        9, 0, // get_state a: sees the write
        12, 1, 42, // set_state packed b Duration{42}
        13, 2, // remove_state c
        0x89, 3, // get_state missing, error ignored
        0x80, 2, 0, 0, 0, // send with an empty id, error ignored
        0x84, 0, 0, 1, 0, 0, // send_after with a zero delay, error ignored
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

/// Issue 21's shape, small: `request` (a serialized `ToFunction`) with 16 states `m0` ..
/// `m15` added to its batch, each carrying each of `values` as a `state_value` (2.2 keeps
/// the last; 3.x merges `TypedValue`s), then 63 repeats of the state `a` with `repeat`,
/// and a last one with `values`, which the function reads. 4267bea searched every merged
/// value on each repeat.
fn merged_then_repeated(request: &[u8], values: &[&[u8]], repeat: &[u8]) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
        prost::encoding::encode_key(
            u32::from(tag),
            prost::encoding::WireType::LengthDelimited,
            out,
        );
        prost::encoding::encode_varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }
    // `ToFunction { 100: batch }`: the batch is what follows the key and the length.
    let mut rest = &request[2..];
    let len = prost::encoding::decode_varint(&mut rest).unwrap() as usize;
    assert_eq!(len, rest.len(), "one batch, nothing after it");
    let mut batch = rest.to_vec();
    for i in 0..16 {
        let mut state = Vec::new();
        field(&mut state, 1, format!("m{i}").as_bytes());
        for value in values {
            field(&mut state, 2, value);
        }
        field(&mut batch, 2, &state);
    }
    let repeat = [repeat];
    for i in 0..64 {
        let mut state = Vec::new();
        field(&mut state, 1, b"a");
        for value in if i < 63 { &repeat[..] } else { values } {
            field(&mut state, 2, value);
        }
        field(&mut batch, 2, &state);
    }
    let mut out = Vec::new();
    field(&mut out, 100, &batch);
    out
}

fn main() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workloads = fuzz.join("../benches/workloads");
    let caller = Address::new("fuzz", "caller", "c1").unwrap();
    let states = |r: Request| {
        r.with_state("a", None)
            .with_state_value(
                "b",
                pack(&prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
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
            .invoke_from(
                caller.clone(),
                pack(&prost_types::Duration {
                    seconds: 0x0b03,
                    nanos: 0,
                }),
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
    seeds.push((
        "merged_then_repeated".into(),
        merged_then_repeated(
            &states(Request::to(ALL, "1"))
                .invoke(script(&[9, 0, 9, 1, 9, 2, 11, 0, 0, 0]))
                .to_bytes(),
            &[
                &script(b"m").encode_to_vec(),
                &script(b"merged").encode_to_vec(),
            ],
            &script(b"a").encode_to_vec(),
        ),
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
    seeds3(fuzz);
    // The `seed-fuzzed-*` files (http_connection, request_roundtrip) are inputs picked from
    // fuzzing runs, not written here.
}

/// A 3.x `TypedValue` with a value.
fn typed(typename: &str, value: &[u8]) -> Option<v3proto::TypedValue> {
    Some(v3proto::TypedValue {
        typename: typename.into(),
        has_value: true,
        value: value.to_vec().into(),
    })
}

/// A 3.x request to `fuzz3/<name>` (or any `typename`) with `states` and `invocations`.
fn request3(
    typename: &str,
    states: &[(&str, Option<v3proto::TypedValue>)],
    invocations: Vec<v3proto::to_function::Invocation>,
) -> Vec<u8> {
    use prost::Message;
    use v3proto::to_function;
    let (namespace, name) = typename.rsplit_once('/').unwrap();
    v3proto::ToFunction {
        request: Some(to_function::Request::Invocation(
            to_function::InvocationBatchRequest {
                target: Some(v3proto::Address {
                    namespace: namespace.into(),
                    r#type: name.into(),
                    id: "1".into(),
                }),
                state: states
                    .iter()
                    .map(|(name, value)| to_function::PersistedValue {
                        state_name: (*name).into(),
                        state_value: value.clone(),
                    })
                    .collect(),
                invocations,
            },
        )),
    }
    .encode_to_vec()
}

/// An invocation with a script argument, from `fuzz/caller/c1` when `from_caller`.
fn script3(from_caller: bool, script: &[u8]) -> v3proto::to_function::Invocation {
    v3proto::to_function::Invocation {
        caller: from_caller.then(|| v3proto::Address {
            namespace: "fuzz".into(),
            r#type: "caller".into(),
            id: "c1".into(),
        }),
        argument: typed("fuzz3/script", script),
    }
}

/// Every 3.x operation once, with valid operands (see `statefun_sync_fuzz::v3`).
fn every_operation3() -> Vec<u8> {
    vec![
        0, 0, 1, 1, 5, 0, 0, 0, // send fuzz3/all/1 the int 5
        1, 4, 2, b'h', b'i', // reply the string "hi"
        2, 3, 2, 0, 1, 2, 7, 0, 0, 0, // send_after 2 s fuzz3/all/1 the long 7
        3, 2, 50, 1, 1, 3, 1, 1, // send_after_cancellable 5 ms fuzz3/other/1 true, token t1
        4, 1, // cancel_delayed_message t1
        5, 5, 0, 1, b'x', 1, b'y', // send_egress com.example/app/f Any{"x", "y"}
        6, 0, 6, 1, 6, 2, // get a, b, c
        7, 0, 9, 0, 0, 0, // set a = 9
        6, 0, // get a: sees the write
        7, 1, 2, b'o', b'k', // set b = "ok"
        8, 2, // remove c
        0x89, 3, // the message as a String: UnexpectedMessageType, ignored
        10, 0, // get_state a
        0x86, 4, // get `a` as a String: UndeclaredState, ignored
        0x86, 5, // get `missing`: UndeclaredState, ignored
        0x84, 0, // cancel_delayed_message "": refused, ignored
        0x80, 2, 0, 1, 0, 0, 0, 0, // send to `nonamespace`: refused, ignored
    ]
}

fn seeds3(fuzz: &Path) {
    const INT: &str = "io.statefun.types/int";
    const LONG: &str = "io.statefun.types/long";
    const STRING: &str = "io.statefun.types/string";
    let workloads = fuzz.join("../benches/workloads3");
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    // w3_bigstate (590 KB) is left out, as in the 2.2 corpus: over -max_len.
    for w in ["h1_handshake", "w1_greet", "w2_batch100", "w4_fanout"] {
        seeds.push((
            format!("v3_{w}"),
            fs::read(workloads.join(format!("{w}.bin"))).unwrap(),
        ));
    }
    let all_states = [
        ("a", typed(INT, &[0x0d, 5, 0, 0, 0])),
        ("b", None),
        ("c", typed(LONG, &[0x09, 7, 0, 0, 0, 0, 0, 0, 0])),
    ];
    seeds.push((
        "v3_all_every_op".into(),
        request3(
            ALL3,
            &all_states,
            vec![
                script3(true, &every_operation3()),
                script3(false, &[6, 0, 6, 1, 6, 2, 8, 0]),
            ],
        ),
    ));
    seeds.push((
        "v3_all_handshake".into(),
        request3(
            ALL3,
            &[("a", None), ("other", typed(INT, &[]))],
            vec![script3(false, &[7, 0, 1, 0, 0, 0])],
        ),
    ));
    seeds.push((
        "v3_cancellation".into(),
        request3(
            ALL3,
            &all_states,
            vec![script3(
                false,
                &[
                    3, 3, 1, 0, 1, 1, 1, 0, 0, 0, 1, // send_after_cancellable 1 s, token t1
                    4, 1, // cancel t1
                    4, 2, // cancel t2 (nothing pending)
                    0x83, 0, 0, 1, 3, 0, 0, // a zero delay with an empty token: refused
                ],
            )],
        ),
    ));
    seeds.push((
        "v3_no_value_with_bytes".into(),
        request3(
            ALL3,
            &[
                (
                    "a",
                    Some(v3proto::TypedValue {
                        typename: INT.into(),
                        has_value: false,
                        value: vec![0x0d, 1, 2, 3, 4].into(),
                    }),
                ),
                ("b", typed(INT, &[0x0d, 1, 0, 0, 0])),
                ("c", None),
            ],
            vec![script3(false, &[6, 0, 0x86, 1, 10, 0, 10, 1])],
        ),
    ));
    // A StringWrapper holding the script: send fuzz3/all/1 `true`.
    let typed_script = [0x0a, 5, 0, 0, 1, 3, 1];
    seeds.push((
        "v3_typed".into(),
        request3(
            TYPED3,
            &[],
            vec![
                v3proto::to_function::Invocation {
                    caller: None,
                    argument: typed(STRING, &typed_script),
                },
                v3proto::to_function::Invocation {
                    caller: None,
                    argument: typed(STRING, &[0x0a, 3, 9, 3, 0]),
                },
            ],
        ),
    ));
    seeds.push((
        "v3_any".into(),
        request3(
            ANY3,
            &[],
            vec![script3(true, &[1, 0, 1, b'u', 0, 5, 0, 3, 1])],
        ),
    ));
    seeds.push((
        "v3_fail".into(),
        request3(
            ALL3,
            &all_states,
            vec![script3(false, &[7, 0, 1, 0, 0, 0, 13, 1])],
        ),
    ));
    seeds.push((
        "v3_panic".into(),
        request3(
            ALL3,
            &all_states,
            vec![script3(false, &[0, 0, 1, 1, 0, 0, 0, 0, 14, 2])],
        ),
    ));
    // A TypedValue in two pieces, typename and has_value in one, the value in the other,
    // which merge into the int 6: `a`'s last value, which the script reads (the repeats of
    // `a` before it are the int 8, whole).
    let typed_part = |typename: &str, has_value: bool, value: &[u8]| {
        v3proto::TypedValue {
            typename: typename.into(),
            has_value,
            value: value.to_vec().into(),
        }
        .encode_to_vec()
    };
    seeds.push((
        "v3_merged_then_repeated".into(),
        merged_then_repeated(
            &request3(
                ALL3,
                &all_states,
                vec![script3(false, &[6, 0, 6, 1, 6, 2, 10, 0, 7, 0, 9, 0, 0, 0])],
            ),
            &[
                &typed_part(INT, true, &[]),
                &typed_part("", false, &[0x0d, 6, 0, 0, 0]),
            ],
            &typed_part(INT, true, &[0x0d, 8, 0, 0, 0]),
        ),
    ));
    for (name, bytes) in &seeds {
        write(&fuzz.join("corpus/handle_bytes3"), name, bytes);
    }
    // The structured target reads any bytes; the same requests make varied first inputs.
    for (name, bytes) in seeds.iter().filter(|(n, _)| !n.contains("w2_batch100")) {
        write(&fuzz.join("corpus/handle_structured3"), name, bytes);
    }
}
