//! The 3.x Kafka and Kinesis egress records (`kafka_record_v3`, `kinesis_record_v3`,
//! `RecordValue`): the exact bytes of each value kind, the validation errors, and a record
//! sent through a 3.x handler as the runtime receives it.
//!
//! The expected record bytes were printed by the Python SDK 3.3.0
//! (`apache-flink-statefun==3.3.0`, `protobuf==3.20.3`), e.g.
//! `kafka_egress_message("a/b", "t", 5, key="k").typed_value.value.hex()`.

use prost::Message as _;
use statefun_sync::proto::egress::{KafkaProducerRecord, KinesisEgressRecord};
use statefun_sync::proto::reqreply::from_function::{EgressMessage, Response};
use statefun_sync::proto::reqreply::to_function::{Invocation, InvocationBatchRequest, Request};
use statefun_sync::proto::reqreply::{Address, FromFunction, ToFunction, TypedValue};
// `types::Type` stays out of scope: the records are prost messages and Types, and both
// traits have a `decode`.
use statefun_sync::types;
use statefun_sync::{
    kafka_record_v3, kinesis_record_v3, Context, Error, Message, RecordValue, RequestReplyHandler,
    StatefulFunctions,
};

/// Parses `"0d 05 00"` (spaces optional) into bytes.
fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("a hex byte"))
        .collect()
}

const KAFKA_RECORD: &str = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord";
const KINESIS_RECORD: &str = "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord";

// Topic "t", key "k": every value kind `kafka_egress_message` converts, with Python's bytes.
#[test]
fn kafka_records_hold_the_bytes_python_writes_for_each_value_kind() {
    let record = |value: RecordValue| kafka_record_v3("t", "k", value).unwrap().encode_to_vec();
    let cases: [(&str, Vec<u8>, &str); 11] = [
        // An unsuffixed integer literal is an i32, Python's 4-byte `int`.
        ("int 5", record(5.into()), "0a016b 1204 00000005 1a0174"),
        ("int -1", record((-1).into()), "0a016b 1204 ffffffff 1a0174"),
        (
            "int i32::MAX",
            record(i32::MAX.into()),
            "0a016b 1204 7fffffff 1a0174",
        ),
        (
            "float 1.0",
            record(1.0.into()),
            "0a016b 1208 3ff0000000000000 1a0174",
        ),
        (
            "float -0.0 keeps its sign",
            record((-0.0).into()),
            "0a016b 1208 8000000000000000 1a0174",
        ),
        ("str é", record("é".into()), "0a016b 1202 c3a9 1a0174"),
        (
            "String é",
            record("é".to_string().into()),
            "0a016b 1202 c3a9 1a0174",
        ),
        ("bytes [0]", record(b"\x00".into()), "0a016b 1201 00 1a0174"),
        (
            "bytes slice",
            record((&[0u8][..]).into()),
            "0a016b 1201 00 1a0174",
        ),
        ("Vec<u8>", record(vec![0u8].into()), "0a016b 1201 00 1a0174"),
        // Empty bytes are proto3's default: no field 2 at all.
        ("empty bytes", record(b"".into()), "0a016b 1a0174"),
    ];
    for (what, encoded, expected) in cases {
        assert_eq!(encoded, hex(expected), "{what}");
    }
}

#[test]
fn kafka_records_without_a_key_match_python_for_nan_and_typed_values() {
    let record = |value: RecordValue| kafka_record_v3("t", "", value).unwrap().encode_to_vec();
    // Python: kafka_egress_message("a/b", "t", float("nan"))
    assert_eq!(record(f64::NAN.into()), hex("1208 7ff8000000000000 1a0174"));
    // Python: kafka_egress_message("a/b", "t", 5, value_type=IntType)
    assert_eq!(
        record(RecordValue::typed(&5i32).unwrap()),
        hex("1205 0d05000000 1a0174")
    );
    // Python: kafka_egress_message("a/b", "t", "x", value_type=StringType)
    assert_eq!(
        record(RecordValue::typed(&"x".to_string()).unwrap()),
        hex("1203 0a0178 1a0174")
    );
}

// Python has no 8-byte integer conversion (its `int` is 4 bytes, refused outside i32), so
// these are Kafka's LongSerializer bytes, checked by hand.
#[test]
fn an_i64_value_is_eight_big_endian_bytes() {
    assert_eq!(RecordValue::from(5i64).as_bytes(), hex("0000000000000005"));
    assert_eq!(RecordValue::from(-2i64).as_bytes(), hex("fffffffffffffffe"));
    assert_eq!(
        RecordValue::from(i64::from(i32::MAX) + 1).into_bytes(),
        hex("0000000080000000")
    );
}

#[test]
fn a_typed_value_uses_the_types_own_encoding() {
    // A protobuf type: the serialized message, as Python's `make_protobuf_type`.
    let inner = KafkaProducerRecord {
        key: "k".into(),
        value_bytes: vec![1],
        topic: "t".into(),
    };
    assert_eq!(
        RecordValue::typed(&inner).unwrap().as_bytes(),
        inner.encode_to_vec().as_slice()
    );
    // The built-in wrappers: 0 is empty bytes, as every 3.x SDK writes it.
    assert_eq!(RecordValue::typed(&0i32).unwrap().as_bytes(), b"");
    assert_eq!(RecordValue::typed(&true).unwrap().as_bytes(), hex("0801"));
}

#[test]
fn kinesis_records_hold_the_bytes_python_writes() {
    // Python: kinesis_egress_message("a/b", "s", b"\x01", partition_key="p", explicit_hash_key="h")
    assert_eq!(
        kinesis_record_v3("s", "p", "h", b"\x01")
            .unwrap()
            .encode_to_vec(),
        hex("0a0170 120101 1a0173 220168")
    );
    // Python: kinesis_egress_message("a/b", "s", "v", partition_key="")
    assert_eq!(
        kinesis_record_v3("s", "", "", "v").unwrap().encode_to_vec(),
        hex("120176 1a0173")
    );
}

#[test]
fn an_empty_partition_key_is_accepted_on_3x_but_not_by_the_2_2_builder() {
    let record = kinesis_record_v3("s", "", "", "v").unwrap();
    assert_eq!(record.partition_key, "");
    assert_eq!(record.stream, "s");
    let err = statefun_sync::kinesis_record_v2("s", "", "", &prost_types::Duration::default())
        .unwrap_err();
    assert!(err.to_string().contains("partition key"), "{err}");
}

#[test]
fn a_kafka_record_without_a_topic_is_refused_naming_the_topic() {
    let err = kafka_record_v3("", "k", "v").unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                operation: "kafka_record_v3",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "`kafka_record_v3`: the destination Kafka topic is empty"
    );
}

#[test]
fn a_kinesis_record_without_a_stream_is_refused_naming_the_stream() {
    let err = kinesis_record_v3("", "p", "", "v").unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                operation: "kinesis_record_v3",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "`kinesis_record_v3`: the destination Kinesis stream is empty"
    );
}

#[test]
fn the_records_are_types_named_as_the_runtime_expects() {
    assert_eq!(
        <KafkaProducerRecord as types::Type>::type_name().to_string(),
        KAFKA_RECORD
    );
    assert_eq!(
        <KinesisEgressRecord as types::Type>::type_name().to_string(),
        KINESIS_RECORD
    );
    let record = kafka_record_v3("t", "k", 5).unwrap();
    assert_eq!(
        KafkaProducerRecord::decode(&record.encode_to_vec()[..]).unwrap(),
        record
    );
}

// `example/greeter` answers a string name with one Kafka and one Kinesis record.
fn handler() -> RequestReplyHandler {
    fn greet(ctx: &mut Context, message: Message) -> anyhow::Result<()> {
        let name: String = message.get()?.unwrap_or_default();
        let greeting = kafka_record_v3("greetings", &name, format!("Hello {name}!"))?;
        ctx.send_egress("example/greets", &greeting)?;
        ctx.send_egress(
            "example/stream",
            &kinesis_record_v3("names", &name, "", name.as_str())?,
        )?;
        Ok(())
    }
    let mut functions = StatefulFunctions::new();
    functions.bind_message("example/greeter", greet).unwrap();
    RequestReplyHandler::v3(functions).unwrap()
}

fn greet_request(name: &str) -> Vec<u8> {
    let mut argument = Vec::new();
    types::Type::encode_value(&name.to_string(), &mut argument).unwrap();
    ToFunction {
        request: Some(Request::Invocation(InvocationBatchRequest {
            target: Some(Address {
                namespace: "example".into(),
                r#type: "greeter".into(),
                id: name.into(),
            }),
            state: vec![],
            invocations: vec![Invocation {
                caller: None,
                argument: Some(TypedValue {
                    typename: <String as types::Type>::type_name().to_string(),
                    has_value: true,
                    value: argument.into(),
                }),
            }],
        })),
    }
    .encode_to_vec()
}

#[test]
fn records_sent_through_a_3x_handler_reach_the_egress_as_python_sends_them() {
    let reply = handler().handle(&greet_request("alice")).unwrap();

    let Some(Response::InvocationResult(result)) =
        FromFunction::decode(&reply[..]).unwrap().response
    else {
        panic!("not an invocation result: {reply:02x?}");
    };
    let [kafka, kinesis] = &result.outgoing_egresses[..] else {
        panic!("two egress messages expected: {result:?}");
    };
    // Python: kafka_egress_message("example/greets", "greetings", "Hello alice!", key="alice")
    assert_eq!(
        *kafka,
        EgressMessage {
            egress_namespace: "example".into(),
            egress_type: "greets".into(),
            argument: Some(TypedValue {
                typename: KAFKA_RECORD.into(),
                has_value: true,
                value: hex("0a05616c696365 120c48656c6c6f20616c69636521 1a096772656574696e6773")
                    .into(),
            }),
        }
    );
    let argument = kafka.argument.as_ref().unwrap();
    assert_eq!(
        KafkaProducerRecord::decode(&argument.value[..]).unwrap(),
        KafkaProducerRecord {
            key: "alice".into(),
            value_bytes: b"Hello alice!".to_vec(),
            topic: "greetings".into(),
        }
    );
    // Python: kinesis_egress_message("example/stream", "names", "alice", partition_key="alice")
    assert_eq!(kinesis.egress_namespace, "example");
    assert_eq!(kinesis.egress_type, "stream");
    let argument = kinesis.argument.as_ref().unwrap();
    assert_eq!(argument.typename, KINESIS_RECORD);
    assert!(argument.has_value);
    assert_eq!(
        argument.value[..],
        hex("0a05616c696365 1205616c696365 1a056e616d6573")
    );
    assert_eq!(
        KinesisEgressRecord::decode(&argument.value[..]).unwrap(),
        KinesisEgressRecord {
            partition_key: "alice".into(),
            value_bytes: b"alice".to_vec(),
            stream: "names".into(),
            explicit_hash_key: String::new(),
        }
    );
}

#[test]
fn a_record_refused_inside_a_function_fails_the_batch_naming_the_topic() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("example/greeter", |ctx: &mut Context, _: Message| {
            ctx.send_egress("example/greets", &kafka_record_v3("", "", "x")?)?;
            Ok(())
        })
        .unwrap();
    let handler = RequestReplyHandler::v3(functions).unwrap();

    let err = handler.handle(&greet_request("alice")).unwrap_err();

    assert!(
        format!("{:#}", anyhow::Error::from(err)).contains("Kafka topic is empty"),
        "the report names the topic"
    );
}
