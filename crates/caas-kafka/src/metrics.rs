//! Prometheus metrics of the Kafka plumbing, registered once in the default registry (served by
//! `caas_runtime`'s `/metrics`). Labels are bounded: topic, partition, consumer group, outcome,
//! reason class; never a key or anything derived from a payload.

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge_vec, HistogramVec,
    IntCounterVec, IntGaugeVec,
};

/// Latency buckets in seconds, from 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Batch size buckets, in records.
const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
];

/// Outcome label values of [`KafkaMetrics::records_processed`].
pub mod outcome {
    /// The handler succeeded; the offset was stored.
    pub const OK: &str = "ok";
    /// The handler returned a retryable error and a retry was scheduled; counted per retry.
    pub const RETRY: &str = "retry";
    /// The record was produced to the DLQ; the offset was stored.
    pub const DLQ: &str = "dlq";
}

/// Every metric of this crate.
pub struct KafkaMetrics {
    /// `caas_kafka_records_processed_total{topic, group, outcome}`.
    pub records_processed: IntCounterVec,
    /// `caas_kafka_handler_duration_seconds{topic, group}`: one observation per handler call.
    pub handler_duration: HistogramVec,
    /// `caas_kafka_dlq_records_total{topic, group, reason}` with reason `poison`,
    /// `retries_exhausted` or `panic`.
    pub dlq_records: IntCounterVec,
    /// `caas_kafka_consumer_lag_records{topic, partition, group}`: high watermark minus the group's
    /// committed offset, for the partitions this process owns.
    pub consumer_lag: IntGaugeVec,
    /// `caas_kafka_dlq_pending_records{topic}`: records of a dead-letter topic the replay group
    /// has not replayed yet (see [`crate::dlq_depth`]).
    pub dlq_pending: IntGaugeVec,
    /// `caas_kafka_produced_total{topic, outcome}` with outcome `ok`, `timeout` or `error`.
    pub produced: IntCounterVec,
    /// `caas_kafka_produce_duration_seconds{topic}`: from enqueue to broker ack.
    pub produce_duration: HistogramVec,
    /// `caas_kafka_consumer_errors_total{group, kind}`: consume, offset store and commit errors.
    pub consumer_errors: IntCounterVec,
    /// `caas_kafka_batch_records{group}`: records per batch handed to a
    /// [`crate::BatchHandler`].
    pub batch_records: HistogramVec,
    /// `caas_kafka_batch_duration_seconds{group}`: one observation per batch handler call.
    pub batch_duration: HistogramVec,
}

/// The metrics, registered on first use.
pub fn metrics() -> &'static KafkaMetrics {
    static METRICS: LazyLock<KafkaMetrics> = LazyLock::new(|| KafkaMetrics {
        records_processed: register_int_counter_vec!(
            "caas_kafka_records_processed_total",
            "Consumed records by outcome: ok, retry (per scheduled retry), dlq.",
            &["topic", "group", "outcome"]
        )
        .expect("register caas_kafka_records_processed_total"),
        handler_duration: register_histogram_vec!(
            "caas_kafka_handler_duration_seconds",
            "Duration of one handler call.",
            &["topic", "group"],
            LATENCY_BUCKETS.to_vec()
        )
        .expect("register caas_kafka_handler_duration_seconds"),
        dlq_records: register_int_counter_vec!(
            "caas_kafka_dlq_records_total",
            "Records produced to a dead-letter topic, by reason class.",
            &["topic", "group", "reason"]
        )
        .expect("register caas_kafka_dlq_records_total"),
        consumer_lag: register_int_gauge_vec!(
            "caas_kafka_consumer_lag_records",
            "High watermark minus committed offset per owned partition.",
            &["topic", "partition", "group"]
        )
        .expect("register caas_kafka_consumer_lag_records"),
        dlq_pending: register_int_gauge_vec!(
            "caas_kafka_dlq_pending_records",
            "Records of a dead-letter topic not replayed yet (past the replay group's commit).",
            &["topic"]
        )
        .expect("register caas_kafka_dlq_pending_records"),
        produced: register_int_counter_vec!(
            "caas_kafka_produced_total",
            "Produce attempts by outcome: ok, timeout, error.",
            &["topic", "outcome"]
        )
        .expect("register caas_kafka_produced_total"),
        produce_duration: register_histogram_vec!(
            "caas_kafka_produce_duration_seconds",
            "Time from enqueue to broker acknowledgement.",
            &["topic"],
            LATENCY_BUCKETS.to_vec()
        )
        .expect("register caas_kafka_produce_duration_seconds"),
        consumer_errors: register_int_counter_vec!(
            "caas_kafka_consumer_errors_total",
            "Consumer-side errors: consume, store, commit.",
            &["group", "kind"]
        )
        .expect("register caas_kafka_consumer_errors_total"),
        batch_records: register_histogram_vec!(
            "caas_kafka_batch_records",
            "Records per batch handed to a batch handler.",
            &["group"],
            BATCH_SIZE_BUCKETS.to_vec()
        )
        .expect("register caas_kafka_batch_records"),
        batch_duration: register_histogram_vec!(
            "caas_kafka_batch_duration_seconds",
            "Duration of one batch handler call.",
            &["group"],
            LATENCY_BUCKETS.to_vec()
        )
        .expect("register caas_kafka_batch_duration_seconds"),
    });
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_register_once_and_show_in_the_default_registry() {
        metrics()
            .records_processed
            .with_label_values(&["unit.test", "g", outcome::OK])
            .inc();
        let again = metrics();
        assert_eq!(
            again
                .records_processed
                .with_label_values(&["unit.test", "g", outcome::OK])
                .get(),
            1
        );
        let names: Vec<String> = prometheus::gather()
            .iter()
            .map(|family| family.name().to_string())
            .collect();
        assert!(names.contains(&"caas_kafka_records_processed_total".to_string()));
    }
}
