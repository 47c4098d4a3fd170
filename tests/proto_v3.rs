//! The Stateful Functions 3.x protocol messages under `statefun_sync::proto`: the exact
//! bytes of the built-in types (PROTOCOL3.md, "Built-in types"), a round trip of the
//! request and of both kinds of reply, and the type names the runtime expects.

use prost::bytes::Bytes;
use prost::{Message, Name};
use statefun_sync::proto::egress::{KafkaProducerRecord, KinesisEgressRecord};
use statefun_sync::proto::reqreply::from_function::{
    self, expiration_spec::ExpireMode, persisted_value_mutation::MutationType, DelayedInvocation,
    EgressMessage, ExpirationSpec, IncompleteInvocationContext, InvocationResponse,
    PersistedValueMutation, PersistedValueSpec,
};
use statefun_sync::proto::reqreply::to_function::{self, InvocationBatchRequest, PersistedValue};
use statefun_sync::proto::reqreply::{Address, FromFunction, ToFunction, TypedValue};
use statefun_sync::proto::types::{
    BooleanWrapper, DoubleWrapper, FloatWrapper, IntWrapper, LongWrapper, StringWrapper,
};

/// Parses `"0d 05 00"` into bytes.
fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("a hex byte"))
        .collect()
}

#[test]
fn built_in_types_encode_to_the_bytes_of_the_protocol_table() {
    let cases: [(&str, Vec<u8>, &str); 10] = [
        (
            "int 5",
            IntWrapper { value: 5 }.encode_to_vec(),
            "0d 05 00 00 00",
        ),
        (
            "int -1",
            IntWrapper { value: -1 }.encode_to_vec(),
            "0d ff ff ff ff",
        ),
        (
            "long 5",
            LongWrapper { value: 5 }.encode_to_vec(),
            "09 05 00 00 00 00 00 00 00",
        ),
        (
            "float 0.1",
            FloatWrapper { value: 0.1 }.encode_to_vec(),
            "0d cd cc cc 3d",
        ),
        (
            "double 1.0",
            DoubleWrapper { value: 1.0 }.encode_to_vec(),
            "09 00 00 00 00 00 00 f0 3f",
        ),
        (
            "string x",
            StringWrapper { value: "x".into() }.encode_to_vec(),
            "0a 01 78",
        ),
        (
            "bool true",
            BooleanWrapper { value: true }.encode_to_vec(),
            "08 01",
        ),
        (
            "bool false",
            BooleanWrapper { value: false }.encode_to_vec(),
            "",
        ),
        ("int 0", IntWrapper { value: 0 }.encode_to_vec(), ""),
        ("string empty", StringWrapper::default().encode_to_vec(), ""),
    ];
    for (what, encoded, expected) in cases {
        assert_eq!(encoded, hex(expected), "{what}");
    }
}

#[test]
fn built_in_types_decode_the_bytes_of_the_protocol_table() {
    assert_eq!(
        IntWrapper::decode(&hex("0d ff ff ff ff")[..])
            .unwrap()
            .value,
        -1
    );
    assert_eq!(
        LongWrapper::decode(&hex("09 05 00 00 00 00 00 00 00")[..])
            .unwrap()
            .value,
        5
    );
    assert_eq!(
        FloatWrapper::decode(&hex("0d cd cc cc 3d")[..])
            .unwrap()
            .value,
        0.1
    );
    assert_eq!(
        DoubleWrapper::decode(&hex("09 00 00 00 00 00 00 f0 3f")[..])
            .unwrap()
            .value,
        1.0
    );
    assert_eq!(
        StringWrapper::decode(&hex("0a 01 78")[..]).unwrap().value,
        "x"
    );
    assert!(BooleanWrapper::decode(&hex("08 01")[..]).unwrap().value);
    assert!(!BooleanWrapper::decode(&[][..]).unwrap().value);
}

fn address(namespace: &str, r#type: &str, id: &str) -> Address {
    Address {
        namespace: namespace.into(),
        r#type: r#type.into(),
        id: id.into(),
    }
}

fn int_value(value: i32) -> TypedValue {
    TypedValue {
        typename: "io.statefun.types/int".into(),
        has_value: true,
        value: IntWrapper { value }.encode_to_vec().into(),
    }
}

#[test]
fn a_typed_value_round_trips_and_its_bytes_are_sliced_from_the_buffer() {
    let value = int_value(5);
    let buffer = Bytes::from(value.encode_to_vec());
    let decoded = TypedValue::decode(buffer.clone()).unwrap();
    assert_eq!(decoded, value);
    // `value` is `Bytes`, so decoding from a `Bytes` buffer slices instead of copying.
    let start = buffer.as_ptr() as usize;
    let inner = decoded.value.as_ptr() as usize;
    assert!(inner >= start && inner + decoded.value.len() <= start + buffer.len());
}

#[test]
fn a_request_round_trips() {
    let request = ToFunction {
        request: Some(to_function::Request::Invocation(InvocationBatchRequest {
            target: Some(address("example", "greeter", "alice")),
            state: vec![
                PersistedValue {
                    state_name: "seen".into(),
                    state_value: Some(int_value(3)),
                },
                PersistedValue {
                    state_name: "absent".into(),
                    state_value: None,
                },
            ],
            invocations: vec![
                to_function::Invocation {
                    caller: Some(address("example", "caller", "bob")),
                    argument: Some(int_value(1)),
                },
                to_function::Invocation {
                    caller: None,
                    argument: Some(int_value(2)),
                },
            ],
        })),
    };
    let bytes = request.encode_to_vec();
    assert_eq!(ToFunction::decode(Bytes::from(bytes)).unwrap(), request);
}

#[test]
fn an_incomplete_invocation_context_round_trips() {
    let reply = FromFunction {
        response: Some(from_function::Response::IncompleteInvocationContext(
            IncompleteInvocationContext {
                missing_values: vec![
                    PersistedValueSpec {
                        state_name: "seen".into(),
                        expiration_spec: Some(ExpirationSpec {
                            mode: ExpireMode::AfterInvoke as i32,
                            expire_after_millis: 60_000,
                        }),
                        type_typename: "io.statefun.types/int".into(),
                    },
                    PersistedValueSpec {
                        state_name: "name".into(),
                        expiration_spec: Some(ExpirationSpec {
                            mode: ExpireMode::None as i32,
                            expire_after_millis: 0,
                        }),
                        type_typename: "io.statefun.types/string".into(),
                    },
                ],
            },
        )),
    };
    let bytes = reply.encode_to_vec();
    // Field 101 of the oneof, length-delimited: the tag is the varint `aa 06`.
    assert_eq!(&bytes[..2], &[0xaa, 0x06]);
    let decoded = FromFunction::decode(&bytes[..]).unwrap();
    assert_eq!(decoded, reply);
    let Some(from_function::Response::IncompleteInvocationContext(context)) = decoded.response
    else {
        panic!("not an incomplete invocation context: {decoded:?}");
    };
    let mode = context.missing_values[0].expiration_spec.unwrap().mode();
    assert_eq!(mode, ExpireMode::AfterInvoke);
    assert_eq!(ExpireMode::AfterWrite as i32, 1);
    assert_eq!(ExpireMode::AfterInvoke.as_str_name(), "AFTER_INVOKE");
}

#[test]
fn an_invocation_response_round_trips() {
    let record = KafkaProducerRecord {
        key: "k".into(),
        value_bytes: b"v".to_vec(),
        topic: "out".into(),
    };
    let reply = FromFunction {
        response: Some(from_function::Response::InvocationResult(
            InvocationResponse {
                state_mutations: vec![
                    PersistedValueMutation {
                        mutation_type: MutationType::Modify as i32,
                        state_name: "seen".into(),
                        state_value: Some(int_value(4)),
                    },
                    PersistedValueMutation {
                        mutation_type: MutationType::Delete as i32,
                        state_name: "name".into(),
                        state_value: None,
                    },
                ],
                outgoing_messages: vec![from_function::Invocation {
                    target: Some(address("example", "caller", "bob")),
                    argument: Some(int_value(1)),
                }],
                delayed_invocations: vec![
                    DelayedInvocation {
                        delay_in_ms: 1001,
                        target: Some(address("example", "greeter", "alice")),
                        argument: Some(int_value(2)),
                        is_cancellation_request: false,
                        cancellation_token: "t".into(),
                    },
                    DelayedInvocation {
                        is_cancellation_request: true,
                        cancellation_token: "t".into(),
                        ..Default::default()
                    },
                ],
                outgoing_egresses: vec![EgressMessage {
                    egress_namespace: "example".into(),
                    egress_type: "out".into(),
                    argument: Some(TypedValue {
                        typename: KafkaProducerRecord::type_url(),
                        has_value: true,
                        value: record.encode_to_vec().into(),
                    }),
                }],
            },
        )),
    };
    let bytes = reply.encode_to_vec();
    assert_eq!(FromFunction::decode(&bytes[..]).unwrap(), reply);
    assert_eq!(MutationType::Delete as i32, 0);
    assert_eq!(MutationType::Modify as i32, 1);
}

#[test]
fn an_empty_reply_is_an_empty_body() {
    assert!(FromFunction::default().encode_to_vec().is_empty());
    assert_eq!(FromFunction::decode(&[][..]).unwrap().response, None);
}

#[test]
fn the_type_names_are_those_of_the_3x_packages() {
    let names = [
        (Address::full_name(), "io.statefun.sdk.reqreply.Address"),
        (
            TypedValue::full_name(),
            "io.statefun.sdk.reqreply.TypedValue",
        ),
        (
            ToFunction::full_name(),
            "io.statefun.sdk.reqreply.ToFunction",
        ),
        (
            PersistedValue::full_name(),
            "io.statefun.sdk.reqreply.ToFunction.PersistedValue",
        ),
        (
            InvocationBatchRequest::full_name(),
            "io.statefun.sdk.reqreply.ToFunction.InvocationBatchRequest",
        ),
        (
            FromFunction::full_name(),
            "io.statefun.sdk.reqreply.FromFunction",
        ),
        (
            PersistedValueSpec::full_name(),
            "io.statefun.sdk.reqreply.FromFunction.PersistedValueSpec",
        ),
        (
            IncompleteInvocationContext::full_name(),
            "io.statefun.sdk.reqreply.FromFunction.IncompleteInvocationContext",
        ),
        (IntWrapper::full_name(), "io.statefun.sdk.types.IntWrapper"),
        (
            LongWrapper::full_name(),
            "io.statefun.sdk.types.LongWrapper",
        ),
        (
            FloatWrapper::full_name(),
            "io.statefun.sdk.types.FloatWrapper",
        ),
        (
            DoubleWrapper::full_name(),
            "io.statefun.sdk.types.DoubleWrapper",
        ),
        (
            StringWrapper::full_name(),
            "io.statefun.sdk.types.StringWrapper",
        ),
        (
            BooleanWrapper::full_name(),
            "io.statefun.sdk.types.BooleanWrapper",
        ),
        (
            KafkaProducerRecord::full_name(),
            "io.statefun.sdk.egress.KafkaProducerRecord",
        ),
        (
            KinesisEgressRecord::full_name(),
            "io.statefun.sdk.egress.KinesisEgressRecord",
        ),
    ];
    for (name, expected) in names {
        assert_eq!(name, expected);
    }
    // The egress typenames of PROTOCOL3.md, "Egress".
    assert_eq!(
        KafkaProducerRecord::type_url(),
        "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
    );
    assert_eq!(
        KinesisEgressRecord::type_url(),
        "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord"
    );
}

#[test]
fn the_egress_records_have_the_field_numbers_of_the_protocol() {
    let record = KinesisEgressRecord {
        partition_key: "p".into(),
        value_bytes: vec![1],
        stream: "s".into(),
        explicit_hash_key: "h".into(),
    };
    assert_eq!(
        record.encode_to_vec(),
        hex("0a 01 70 12 01 01 1a 01 73 22 01 68")
    );
    let record = KafkaProducerRecord {
        key: "k".into(),
        value_bytes: vec![1],
        topic: "t".into(),
    };
    assert_eq!(record.encode_to_vec(), hex("0a 01 6b 12 01 01 1a 01 74"));
}
