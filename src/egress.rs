//! Records for the Kafka and Kinesis generic egresses: [`kafka_record_v2`] and
//! [`kinesis_record_v2`] for Stateful Functions 2.2, [`kafka_record_v3`] and
//! [`kinesis_record_v3`] for 3.x.

use prost::Message;

use crate::error::Error;
use crate::proto::io::{KafkaProducerRecord, KinesisEgressRecord};
use crate::types::Type;

// The 2.2 records are values too, sent as `pack` would pack them (under
// `type.googleapis.com/org.apache.flink.statefun.flink.io.*`).
crate::protobuf_type!(
    crate::proto::io::KafkaProducerRecord,
    crate::proto::io::KinesisEgressRecord
);

/// A record for a Kafka generic egress of **Stateful Functions 2.2**: `value` serialized,
/// produced to `topic` under `key` (may be empty). Send it with
/// [`Context::send_egress`](crate::Context::send_egress). For 3.x use
/// [`kafka_record_v3`].
///
/// ```
/// # use statefun_sync::{kafka_record_v2, Context};
/// # fn f(ctx: &mut Context, user: prost_types::Duration) -> anyhow::Result<()> {
/// let record = kafka_record_v2("greetings", "alice", &user)?;
/// ctx.send_egress("example/greets", &record)?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `topic` is empty, as in the Python SDK.
pub fn kafka_record_v2<M: Message>(
    topic: &str,
    key: &str,
    value: &M,
) -> Result<KafkaProducerRecord, Error> {
    if topic.is_empty() {
        return Err(Error::InvalidArgument {
            operation: "kafka_record_v2",
            reason: "the destination Kafka topic is empty".into(),
        });
    }
    Ok(KafkaProducerRecord {
        key: key.to_owned(),
        value_bytes: value.encode_to_vec(),
        topic: topic.to_owned(),
    })
}

/// A record for a Kinesis generic egress of **Stateful Functions 2.2**: `value` serialized,
/// put to `stream` under `partition_key`, with an `explicit_hash_key` (may be empty). Send
/// it with [`Context::send_egress`](crate::Context::send_egress). For 3.x
/// use [`kinesis_record_v3`].
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `stream` or `partition_key` is empty, as in the Python SDK.
pub fn kinesis_record_v2<M: Message>(
    stream: &str,
    partition_key: &str,
    explicit_hash_key: &str,
    value: &M,
) -> Result<KinesisEgressRecord, Error> {
    let invalid = |reason: &str| Error::InvalidArgument {
        operation: "kinesis_record_v2",
        reason: reason.into(),
    };
    if stream.is_empty() {
        return Err(invalid("the destination Kinesis stream is empty"));
    }
    if partition_key.is_empty() {
        return Err(invalid("the partition key is empty"));
    }
    Ok(KinesisEgressRecord {
        partition_key: partition_key.to_owned(),
        value_bytes: value.encode_to_vec(),
        stream: stream.to_owned(),
        explicit_hash_key: explicit_hash_key.to_owned(),
    })
}

// ---------------------------------------------------------------------------------------
// Stateful Functions 3.x
// ---------------------------------------------------------------------------------------

// The 3.x records travel as typed values named `type.googleapis.com/io.statefun.sdk.egress.*`,
// the only argument typenames the runtime's generic Kafka and Kinesis egresses accept.
crate::protobuf_type!(
    crate::proto::egress::KafkaProducerRecord,
    crate::proto::egress::KinesisEgressRecord
);

/// The value bytes of a 3.x Kafka or Kinesis egress record ([`kafka_record_v3`],
/// [`kinesis_record_v3`]), converted as the Python SDK's `kafka_egress_message` converts them:
///
/// | from | bytes | Python 3.3.0 |
/// |---|---|---|
/// | `&[u8]`, `&[u8; N]`, `Vec<u8>` | as they are | `bytes`, `bytearray` |
/// | `&str`, `String` | UTF-8 | `str` |
/// | `i32` | 4 bytes, big-endian (Kafka's `IntegerSerializer`) | `int` |
/// | `i64` | 8 bytes, big-endian (Kafka's `LongSerializer`) | none, see below |
/// | `f64` | 8 bytes, big-endian IEEE 754 (Kafka's `DoubleSerializer`) | `float` |
/// | [`RecordValue::typed`] | the [`Type`]'s encoding | any value with `value_type=` |
///
/// Python has one integer type, `int`, and always writes it as 4 bytes
/// (`struct.pack('>i', v)`); an `int` outside the `i32` range fails there with
/// `struct.error`. So an `i32` gives Python's bytes, and an `i64` gives 8 bytes that
/// Python cannot produce: use it for a consumer that reads a Kafka `long`. An integer
/// literal without a suffix is an `i32`, as in Python. `f64` keeps every bit, so -0.0
/// and NaN come out as Python writes them (`80 00 .. 00`, `7f f8 00 .. 00`).
///
/// ```
/// use statefun_sync::RecordValue;
///
/// assert_eq!(RecordValue::from(5).as_bytes(), [0, 0, 0, 5]);
/// assert_eq!(RecordValue::from(5i64).as_bytes(), [0, 0, 0, 0, 0, 0, 0, 5]);
/// assert_eq!(RecordValue::from("é").as_bytes(), [0xc3, 0xa9]);
/// // The built-in `int` type writes its wrapper message, as Python's `value_type=IntType`.
/// assert_eq!(RecordValue::typed(&5i32)?.as_bytes(), [0x0d, 5, 0, 0, 0]);
/// # Ok::<(), statefun_sync::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RecordValue {
    bytes: Vec<u8>,
}

impl RecordValue {
    /// `value` encoded as its [`Type`] encodes it, e.g. a protobuf message serialized, or
    /// a JSON type's text (the Python SDK's `value_type=` argument).
    ///
    /// # Errors
    ///
    /// [`Error::UnencodableValue`] if the type cannot encode `value` (a JSON type's map
    /// with non-string keys, say).
    pub fn typed<T: Type>(value: &T) -> Result<Self, Error> {
        let bytes = crate::message::encoded(value, "an egress record")?;
        Ok(RecordValue { bytes })
    }

    /// The bytes the record will carry.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes the record will carry, taken out.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl From<Vec<u8>> for RecordValue {
    fn from(bytes: Vec<u8>) -> Self {
        RecordValue { bytes }
    }
}

impl From<&[u8]> for RecordValue {
    fn from(bytes: &[u8]) -> Self {
        RecordValue {
            bytes: bytes.to_vec(),
        }
    }
}

/// For byte string literals: `b"payload"`.
impl<const N: usize> From<&[u8; N]> for RecordValue {
    fn from(bytes: &[u8; N]) -> Self {
        RecordValue {
            bytes: bytes.to_vec(),
        }
    }
}

impl From<&str> for RecordValue {
    fn from(text: &str) -> Self {
        RecordValue {
            bytes: text.as_bytes().to_vec(),
        }
    }
}

impl From<String> for RecordValue {
    fn from(text: String) -> Self {
        RecordValue {
            bytes: text.into_bytes(),
        }
    }
}

/// 4 bytes, big-endian: Python's `int`.
impl From<i32> for RecordValue {
    fn from(value: i32) -> Self {
        RecordValue {
            bytes: value.to_be_bytes().to_vec(),
        }
    }
}

/// 8 bytes, big-endian: Kafka's `long`, which the Python SDK cannot write.
impl From<i64> for RecordValue {
    fn from(value: i64) -> Self {
        RecordValue {
            bytes: value.to_be_bytes().to_vec(),
        }
    }
}

/// 8 bytes, big-endian IEEE 754: Python's `float`.
impl From<f64> for RecordValue {
    fn from(value: f64) -> Self {
        RecordValue {
            bytes: value.to_be_bytes().to_vec(),
        }
    }
}

/// A record for a Kafka generic egress of **Stateful Functions 3.x**: `value` produced to
/// `topic` under `key` (empty: no key, as the runtime reads it). Send it with
/// [`Context::send_egress`](crate::Context::send_egress); it travels as a typed value
/// named `type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord`. The Python
/// SDK's `kafka_egress_message`; for 2.2 use [`kafka_record_v2`].
///
/// ```
/// use statefun_sync::{kafka_record_v3, Context, Message};
///
/// fn greet(ctx: &mut Context, message: Message) -> anyhow::Result<()> {
///     let name: String = message.get()?.unwrap_or_default();
///     let record = kafka_record_v3("greetings", &name, format!("Hello {name}!"))?;
///     ctx.send_egress("example/greets", &record)?;
///     Ok(())
/// }
/// ```
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `topic` is empty, as in the Python SDK.
pub fn kafka_record_v3(
    topic: &str,
    key: &str,
    value: impl Into<RecordValue>,
) -> Result<crate::proto::egress::KafkaProducerRecord, Error> {
    if topic.is_empty() {
        return Err(Error::InvalidArgument {
            operation: "kafka_record_v3",
            reason: "the destination Kafka topic is empty".into(),
        });
    }
    Ok(crate::proto::egress::KafkaProducerRecord {
        key: key.to_owned(),
        value_bytes: value.into().into_bytes(),
        topic: topic.to_owned(),
    })
}

/// A record for a Kinesis generic egress of **Stateful Functions 3.x**: `value` put to
/// `stream` under `partition_key`, with an `explicit_hash_key` (empty: none). Send it
/// with [`Context::send_egress`](crate::Context::send_egress); it travels as a typed value
/// named `type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord`. The Python
/// SDK's `kinesis_egress_message`; for 2.2 use [`kinesis_record_v2`].
///
/// An empty `partition_key` is accepted, as in the Python SDK 3.x (which refuses only
/// `None`); the 2.2 builder refuses it. Python's `kinesis_egress_message` converts only
/// bytes and text (or a value with its Type); the numbers of [`RecordValue`] are accepted
/// here too and give the same bytes as for Kafka.
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `stream` is empty, as in the Python SDK.
pub fn kinesis_record_v3(
    stream: &str,
    partition_key: &str,
    explicit_hash_key: &str,
    value: impl Into<RecordValue>,
) -> Result<crate::proto::egress::KinesisEgressRecord, Error> {
    if stream.is_empty() {
        return Err(Error::InvalidArgument {
            operation: "kinesis_record_v3",
            reason: "the destination Kinesis stream is empty".into(),
        });
    }
    Ok(crate::proto::egress::KinesisEgressRecord {
        partition_key: partition_key.to_owned(),
        value_bytes: value.into().into_bytes(),
        stream: stream.to_owned(),
        explicit_hash_key: explicit_hash_key.to_owned(),
    })
}
