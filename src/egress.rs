//! Records for the Kafka and Kinesis generic egresses.

use prost::Message;

use crate::error::Error;
use crate::proto::io::{KafkaProducerRecord, KinesisEgressRecord};

/// A record for a Kafka generic egress: `value` serialized, produced to `topic` under
/// `key` (may be empty). Send it with
/// [`Context::pack_and_send_egress`](crate::Context::pack_and_send_egress).
///
/// ```
/// # use statefun_sync::{kafka_egress_record, Context};
/// # fn f(ctx: &mut Context, user: prost_types::Duration) -> anyhow::Result<()> {
/// let record = kafka_egress_record("greetings", "alice", &user)?;
/// ctx.pack_and_send_egress("example/greets", &record)?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `topic` is empty, as in the Python SDK.
pub fn kafka_egress_record<M: Message>(
    topic: &str,
    key: &str,
    value: &M,
) -> Result<KafkaProducerRecord, Error> {
    if topic.is_empty() {
        return Err(Error::InvalidArgument {
            operation: "kafka_egress_record",
            reason: "the destination Kafka topic is empty".into(),
        });
    }
    Ok(KafkaProducerRecord {
        key: key.to_owned(),
        value_bytes: value.encode_to_vec(),
        topic: topic.to_owned(),
    })
}

/// A record for a Kinesis generic egress: `value` serialized, put to `stream` under
/// `partition_key`, with an `explicit_hash_key` (may be empty). Send it with
/// [`Context::pack_and_send_egress`](crate::Context::pack_and_send_egress).
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `stream` or `partition_key` is empty, as in the Python SDK.
pub fn kinesis_egress_record<M: Message>(
    stream: &str,
    partition_key: &str,
    explicit_hash_key: &str,
    value: &M,
) -> Result<KinesisEgressRecord, Error> {
    let invalid = |reason: &str| Error::InvalidArgument {
        operation: "kinesis_egress_record",
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
