//! The logger's own Prometheus metrics (the consumer loop's are in `caas-kafka`). Labels are
//! bounded: outcomes, topics, error kinds.

use std::sync::LazyLock;

use prometheus::{register_histogram, register_int_counter_vec, Histogram, IntCounterVec};

/// Every metric of the logger.
pub struct LoggerMetrics {
    /// `caas_logger_events_total{outcome}`: `stored`, `duplicate` (already stored, skipped),
    /// `erased` (customer erased after the event was recorded, skipped).
    pub events: IntCounterVec,
    /// `caas_logger_rejected_total{topic, kind}`: records sent to the DLQ, by decode error kind
    /// or `contract`.
    pub rejected: IntCounterVec,
    /// `caas_logger_batch_failures_total{kind}`: batches whose transaction failed
    /// (`transient`: write conflict and the like), retried.
    pub batch_failures: IntCounterVec,
    /// `caas_logger_persist_duration_seconds`: one batch transaction, load to commit.
    pub persist_duration: Histogram,
    /// `caas_logger_announcements_total{outcome}`: announcements of committed seqs on Redis
    /// (see [`crate::announce`]): `published`, `failed` (Redis refused or did not answer) or
    /// `dropped` (the publisher's queue was full).
    pub announcements: IntCounterVec,
}

/// The metrics, registered on first use.
pub fn metrics() -> &'static LoggerMetrics {
    static METRICS: LazyLock<LoggerMetrics> = LazyLock::new(|| LoggerMetrics {
        events: register_int_counter_vec!(
            "caas_logger_events_total",
            "Events handled by outcome: stored, duplicate, erased.",
            &["outcome"]
        )
        .expect("register caas_logger_events_total"),
        rejected: register_int_counter_vec!(
            "caas_logger_rejected_total",
            "Records dead-lettered by the logger, by topic and reason kind.",
            &["topic", "kind"]
        )
        .expect("register caas_logger_rejected_total"),
        batch_failures: register_int_counter_vec!(
            "caas_logger_batch_failures_total",
            "Batch transactions that failed and were retried.",
            &["kind"]
        )
        .expect("register caas_logger_batch_failures_total"),
        persist_duration: register_histogram!(
            "caas_logger_persist_duration_seconds",
            "Duration of one batch transaction.",
            vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
        )
        .expect("register caas_logger_persist_duration_seconds"),
        announcements: register_int_counter_vec!(
            "caas_logger_announcements_total",
            "Announcements of committed seqs on Redis, by outcome: published, failed, dropped.",
            &["outcome"]
        )
        .expect("register caas_logger_announcements_total"),
    });
    &METRICS
}
