//! Reading back the Kafka and Kinesis egress records that
//! [`kafka_record_v2`](crate::kafka_record_v2) and
//! [`kinesis_record_v2`](crate::kinesis_record_v2) build, with their values
//! decoded.

use prost::{Message, Name};
use prost_types::Any;

use crate::message::{unpack, UnpackError};
use crate::proto::io::{KafkaProducerRecord, KinesisEgressRecord};

/// A Kafka egress record, read back: where it goes, and its value decoded as `M`.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaRecord<M> {
    /// The topic.
    pub topic: String,
    /// The record's key; empty when it has none.
    pub key: String,
    /// The value.
    pub value: M,
}

/// A Kinesis egress record, read back: where it goes, and its value decoded as `M`.
#[derive(Debug, Clone, PartialEq)]
pub struct KinesisRecord<M> {
    /// The stream.
    pub stream: String,
    /// The partition key.
    pub partition_key: String,
    /// The explicit hash key; empty when it has none.
    pub explicit_hash_key: String,
    /// The value.
    pub value: M,
}

/// Reads the Kafka record that an egress message carries, decoding its value as `M`.
///
/// ```
/// use statefun_sync::testing::read_kafka_record_v2;
/// use statefun_sync::{kafka_record_v2, pack};
///
/// let seen = prost_types::Duration { seconds: 3, nanos: 0 };
/// let sent = pack(&kafka_record_v2("greetings", "alice", &seen)?);
///
/// let record = read_kafka_record_v2::<prost_types::Duration>(&sent)?;
/// assert_eq!((record.topic.as_str(), record.key.as_str()), ("greetings", "alice"));
/// assert_eq!(record.value, seen);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`UnpackError`] if `any` holds no `KafkaProducerRecord`, or if the record or its
/// value does not decode.
pub fn read_kafka_record_v2<M: Message + Name + Default>(
    any: &Any,
) -> Result<KafkaRecord<M>, UnpackError> {
    let record: KafkaProducerRecord = unpack(any)?;
    Ok(KafkaRecord {
        value: decode_value(&record.value_bytes)?,
        topic: record.topic,
        key: record.key,
    })
}

/// Reads the Kinesis record that an egress message carries, decoding its value as `M`.
///
/// # Errors
///
/// [`UnpackError`] if `any` holds no `KinesisEgressRecord`, or if the record or its
/// value does not decode.
pub fn read_kinesis_record_v2<M: Message + Name + Default>(
    any: &Any,
) -> Result<KinesisRecord<M>, UnpackError> {
    let record: KinesisEgressRecord = unpack(any)?;
    Ok(KinesisRecord {
        value: decode_value(&record.value_bytes)?,
        stream: record.stream,
        partition_key: record.partition_key,
        explicit_hash_key: record.explicit_hash_key,
    })
}

/// A record's value: the message itself, serialized, with no type URL around it.
fn decode_value<M: Message + Name + Default>(bytes: &[u8]) -> Result<M, UnpackError> {
    M::decode(bytes).map_err(|source| UnpackError::Malformed {
        type_url: M::type_url(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{kafka_record_v2, kinesis_record_v2, pack};

    fn seconds(seconds: i64) -> prost_types::Duration {
        prost_types::Duration { seconds, nanos: 0 }
    }

    #[test]
    fn kinesis_records_read_back_with_their_value() {
        let sent = pack(&kinesis_record_v2("stream", "pk", "hash", &seconds(7)).unwrap());
        let record = read_kinesis_record_v2::<prost_types::Duration>(&sent).unwrap();
        assert_eq!(
            record,
            KinesisRecord {
                stream: "stream".into(),
                partition_key: "pk".into(),
                explicit_hash_key: "hash".into(),
                value: seconds(7),
            }
        );
    }

    #[test]
    fn a_record_of_the_other_kind_or_a_bad_value_is_an_unpack_error() {
        let kafka = pack(&kafka_record_v2("t", "k", &seconds(1)).unwrap());
        assert!(matches!(
            read_kinesis_record_v2::<prost_types::Duration>(&kafka),
            Err(UnpackError::WrongType { .. })
        ));
        let bad_value = pack(&KafkaProducerRecord {
            topic: "t".into(),
            key: String::new(),
            value_bytes: vec![0xff],
        });
        assert!(matches!(
            read_kafka_record_v2::<prost_types::Duration>(&bad_value),
            Err(UnpackError::Malformed { .. })
        ));
    }
}
