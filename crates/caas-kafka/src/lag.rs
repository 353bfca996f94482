//! Consumer lag per owned partition: the high watermark minus the group's committed offset (the
//! number ops see in `kafka-consumer-groups --describe`), refreshed on a timer by a task of its
//! own, so the gauge keeps moving even while a slow handler holds the loop.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::Offset;
use tokio_util::sync::CancellationToken;

use crate::config::OffsetReset;
use crate::context::LoopContext;
use crate::metrics::metrics;

/// The lag of one partition, given its committed offset (`None` when the group never
/// committed), its low and high watermarks and where the group starts without a commit.
pub fn partition_lag(committed: Option<i64>, low: i64, high: i64, reset: OffsetReset) -> i64 {
    let position = match (committed, reset) {
        (Some(offset), _) => offset,
        (None, OffsetReset::Earliest) => low,
        (None, OffsetReset::Latest) => high,
    };
    // Below the low watermark retention deleted the records; they cannot be consumed anymore.
    (high - position.max(low)).max(0)
}

/// One measured partition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionLag {
    topic: String,
    partition: i32,
    lag: i64,
}

/// Refresh the lag gauge every `interval` until `stop` is cancelled, then remove this
/// consumer's series (another member owns those partitions now and reports them).
pub(crate) async fn watch(
    consumer: Arc<StreamConsumer<LoopContext>>,
    group_id: String,
    reset: OffsetReset,
    interval: Duration,
    stop: CancellationToken,
) {
    let gauge = &metrics().consumer_lag;
    let mut reported: HashSet<(String, String)> = HashSet::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let measuring = consumer.clone();
        let request_timeout = interval.clamp(Duration::from_secs(1), Duration::from_secs(5));
        let measured =
            tokio::task::spawn_blocking(move || measure(&measuring, reset, request_timeout)).await;
        let lags = match measured {
            Ok(Ok(lags)) => lags,
            Ok(Err(error)) => {
                tracing::debug!(group = %group_id, error = %error, "consumer lag not measured");
                continue;
            }
            Err(error) => {
                tracing::warn!(group = %group_id, error = %error, "consumer lag task failed");
                continue;
            }
        };
        let mut current = HashSet::new();
        for lag in lags {
            let partition = lag.partition.to_string();
            gauge
                .with_label_values(&[&lag.topic, &partition, &group_id])
                .set(lag.lag);
            current.insert((lag.topic, partition));
        }
        for (topic, partition) in reported.difference(&current) {
            let _ = gauge.remove_label_values(&[topic, partition, &group_id]);
        }
        reported = current;
    }
    for (topic, partition) in &reported {
        let _ = gauge.remove_label_values(&[topic, partition, &group_id]);
    }
}

/// Blocking: asks the coordinator for committed offsets and each partition leader for its
/// watermarks.
fn measure(
    consumer: &StreamConsumer<LoopContext>,
    reset: OffsetReset,
    timeout: Duration,
) -> KafkaResult<Vec<PartitionLag>> {
    let assignment = consumer.assignment()?;
    if assignment.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = consumer.committed_offsets(assignment, timeout)?;
    let mut lags = Vec::with_capacity(committed.count());
    for element in committed.elements() {
        let (low, high) =
            consumer.fetch_watermarks(element.topic(), element.partition(), timeout)?;
        let committed_offset = match element.offset() {
            Offset::Offset(offset) if offset >= 0 => Some(offset),
            _ => None,
        };
        lags.push(PartitionLag {
            topic: element.topic().to_string(),
            partition: element.partition(),
            lag: partition_lag(committed_offset, low, high, reset),
        });
    }
    Ok(lags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_distance_from_the_commit_to_the_high_watermark() {
        assert_eq!(partition_lag(Some(7), 0, 10, OffsetReset::Earliest), 3);
        assert_eq!(partition_lag(Some(10), 0, 10, OffsetReset::Earliest), 0);
    }

    #[test]
    fn without_a_commit_the_reset_policy_decides_the_start() {
        assert_eq!(partition_lag(None, 4, 10, OffsetReset::Earliest), 6);
        assert_eq!(partition_lag(None, 4, 10, OffsetReset::Latest), 0);
    }

    #[test]
    fn records_deleted_by_retention_are_not_lag_and_lag_is_never_negative() {
        assert_eq!(partition_lag(Some(2), 5, 10, OffsetReset::Earliest), 5);
        assert_eq!(partition_lag(Some(12), 0, 10, OffsetReset::Earliest), 0);
    }
}
