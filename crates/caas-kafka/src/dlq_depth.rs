//! How many dead-lettered records still wait for a replay: `caas_kafka_dlq_pending_records`
//! per `<topic>.dlq`, the records between the replay group's committed offset
//! ([`crate::dlq::REPLAY_GROUP`], what `caasctl dlq replay` commits) and the end of the DLQ.
//! Records that retention deleted do not count. Every consumer of a topic reports the same
//! value for its DLQ (alert on `max by (topic)`); the `caas_kafka_dlq_records_total` counter
//! says when records arrive, this gauge says whether any are still there.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::{ConsumerConfig, KafkaConfig, OffsetReset};
use crate::dlq::{dlq_topic, DLQ_SUFFIX, REPLAY_GROUP};
use crate::lag::partition_lag;
use crate::metrics::metrics;

/// How often the depth is measured: dead letters are not urgent to the second.
const INTERVAL: Duration = Duration::from_secs(30);

/// Records not yet replayed, from each partition's replay commit (`None`: never replayed) and
/// its low and high watermarks.
pub fn pending_records(partitions: &[(Option<i64>, i64, i64)]) -> i64 {
    partitions
        .iter()
        .map(|&(committed, low, high)| partition_lag(committed, low, high, OffsetReset::Earliest))
        .sum()
}

/// Report the depth of the DLQs of `config.topics` until `stop` is cancelled.
pub(crate) async fn watch(config: ConsumerConfig, stop: CancellationToken) {
    let dlq_topics: Vec<String> = config
        .topics
        .iter()
        .filter(|topic| !topic.ends_with(DLQ_SUFFIX))
        .map(|topic| dlq_topic(topic))
        .collect();
    let consumer = match replay_progress_client(&config.kafka) {
        Ok(consumer) => consumer,
        Err(error) => {
            tracing::warn!(error = %error, "dlq depth not measured: cannot create a client");
            return;
        }
    };
    let consumer = std::sync::Arc::new(consumer);
    let gauge = &metrics().dlq_pending;
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        for topic in &dlq_topics {
            let measuring = consumer.clone();
            let measured_topic = topic.clone();
            let measured =
                tokio::task::spawn_blocking(move || measure(&measuring, &measured_topic)).await;
            match measured {
                Ok(Ok(Some(pending))) => gauge.with_label_values(&[topic]).set(pending),
                Ok(Ok(None)) => {}
                Ok(Err(error)) => {
                    tracing::debug!(topic = %topic, error = %error, "dlq depth not measured")
                }
                Err(error) => {
                    tracing::warn!(topic = %topic, error = %error, "dlq depth task failed")
                }
            }
        }
    }
}

/// A client that reads the replay group's commits; it never joins the group or commits.
pub fn replay_progress_client(kafka: &KafkaConfig) -> KafkaResult<BaseConsumer> {
    let mut client = rdkafka::ClientConfig::new();
    client
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", format!("{}-dlq-depth", kafka.client_id))
        .set("group.id", REPLAY_GROUP)
        .set("enable.auto.commit", "false");
    for (key, value) in &kafka.extra {
        client.set(key, value);
    }
    client.create()
}

/// Blocking: the pending records of one DLQ, or `None` when the topic does not exist.
pub fn measure(consumer: &BaseConsumer, topic: &str) -> KafkaResult<Option<i64>> {
    let timeout = Duration::from_secs(5);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let Some(found) = metadata
        .topics()
        .iter()
        .find(|entry| entry.name() == topic && entry.error().is_none())
    else {
        return Ok(None);
    };
    if found.partitions().is_empty() {
        return Ok(None);
    }
    let mut wanted = TopicPartitionList::new();
    for partition in found.partitions() {
        wanted.add_partition(topic, partition.id());
    }
    let committed = consumer.committed_offsets(wanted, timeout)?;
    let mut partitions = Vec::with_capacity(committed.count());
    for element in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(topic, element.partition(), timeout)?;
        let replayed_up_to = match element.offset() {
            Offset::Offset(offset) if offset >= 0 => Some(offset),
            _ => None,
        };
        partitions.push((replayed_up_to, low, high));
    }
    Ok(Some(pending_records(&partitions)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_is_what_the_replay_group_has_not_passed_yet() {
        // Never replayed: everything still retained; replayed to 8 of 10; fully replayed.
        assert_eq!(pending_records(&[(None, 2, 10)]), 8);
        assert_eq!(pending_records(&[(Some(8), 0, 10), (Some(4), 0, 4)]), 2);
        assert_eq!(pending_records(&[(Some(10), 0, 10)]), 0);
        assert_eq!(pending_records(&[]), 0);
    }
}
