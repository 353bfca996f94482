//! The presence worker's Prometheus metrics (the consumer loop's are in `caas-kafka`).

use std::sync::LazyLock;

use prometheus::{register_int_counter, register_int_counter_vec, IntCounter, IntCounterVec};

/// Every metric of the presence worker.
pub struct PresenceMetrics {
    /// `caas_presence_signals_total{outcome}`: `applied` or `ignored` (statuses other than
    /// read, unknown kinds).
    pub signals: IntCounterVec,
    /// `caas_presence_updates_total{cause}`: updates published, by `signal` or `expiry`.
    pub updates: IntCounterVec,
    /// `caas_presence_rejected_total{kind}`: records dead-lettered, by decode error kind or
    /// `contract`.
    pub rejected: IntCounterVec,
    /// `caas_presence_conflicts_total`: compare-and-set retries (two writers on one entity).
    pub conflicts: IntCounter,
}

/// The metrics, registered on first use.
pub fn metrics() -> &'static PresenceMetrics {
    static METRICS: LazyLock<PresenceMetrics> = LazyLock::new(|| PresenceMetrics {
        signals: register_int_counter_vec!(
            "caas_presence_signals_total",
            "Input signals by outcome: applied, ignored.",
            &["outcome"]
        )
        .expect("register caas_presence_signals_total"),
        updates: register_int_counter_vec!(
            "caas_presence_updates_total",
            "Presence updates published, by cause: signal, expiry.",
            &["cause"]
        )
        .expect("register caas_presence_updates_total"),
        rejected: register_int_counter_vec!(
            "caas_presence_rejected_total",
            "Records dead-lettered by presence, by reason kind.",
            &["kind"]
        )
        .expect("register caas_presence_rejected_total"),
        conflicts: register_int_counter!(
            "caas_presence_conflicts_total",
            "Compare-and-set retries on presence state."
        )
        .expect("register caas_presence_conflicts_total"),
    });
    &METRICS
}
