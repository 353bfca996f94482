//! Prometheus metrics of the ingest service, registered once in the default registry (served by
//! `/metrics`). Labels are bounded: provider (`whatsapp`, `rcs`), outcome, event type, kind,
//! reason. Never a phone number, tenant endpoint or id.

use std::sync::LazyLock;

use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounterVec};

/// Latency buckets in seconds, from 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric of the service.
pub struct IngestMetrics {
    /// `caas_ingest_requests_total{provider, outcome}`; outcome is one of `ok`, `handshake`,
    /// `bad_request`, `unauthorized`, `forbidden`, `too_large`, `unavailable`,
    /// `not_configured`.
    pub requests: IntCounterVec,
    /// `caas_ingest_events_produced_total{provider, type, kind}`: events Kafka acknowledged;
    /// type is `message`, `status` or `presence`, kind the content kind, status or presence
    /// kind.
    pub events_produced: IntCounterVec,
    /// `caas_ingest_signature_failures_total{provider, reason}`; reason `missing`,
    /// `malformed`, `mismatch`.
    pub signature_failures: IntCounterVec,
    /// `caas_ingest_produce_duration_seconds{provider}`: from the first produce of a request
    /// until Kafka acknowledged all its events (or one failed).
    pub produce_duration: HistogramVec,
    /// `caas_ingest_skipped_total{provider, reason}`: parts of webhooks deliberately not
    /// produced: `unknown_tenant`, `unknown_status`, `unknown_event_type`, `other_field`.
    pub skipped: IntCounterVec,
    /// `caas_ingest_duplicates_total{provider}`: events not produced again because Redis says
    /// they already were (or because the same id appeared twice in one request).
    pub duplicates: IntCounterVec,
    /// `caas_ingest_dedupe_errors_total{operation}`: Redis calls that failed (`claim`,
    /// `mark_done`, `release`); the events were produced all the same.
    pub dedupe_errors: IntCounterVec,
}

/// The metrics, registered on first use.
pub fn metrics() -> &'static IngestMetrics {
    static METRICS: LazyLock<IngestMetrics> = LazyLock::new(|| IngestMetrics {
        requests: register_int_counter_vec!(
            "caas_ingest_requests_total",
            "Webhook requests by provider and outcome.",
            &["provider", "outcome"]
        )
        .expect("register caas_ingest_requests_total"),
        events_produced: register_int_counter_vec!(
            "caas_ingest_events_produced_total",
            "Events acknowledged by Kafka, by provider, event type and kind.",
            &["provider", "type", "kind"]
        )
        .expect("register caas_ingest_events_produced_total"),
        signature_failures: register_int_counter_vec!(
            "caas_ingest_signature_failures_total",
            "Webhooks refused because their signature is missing, malformed or wrong.",
            &["provider", "reason"]
        )
        .expect("register caas_ingest_signature_failures_total"),
        produce_duration: register_histogram_vec!(
            "caas_ingest_produce_duration_seconds",
            "Time for Kafka to acknowledge every event of one webhook.",
            &["provider"],
            LATENCY_BUCKETS.to_vec()
        )
        .expect("register caas_ingest_produce_duration_seconds"),
        skipped: register_int_counter_vec!(
            "caas_ingest_skipped_total",
            "Parts of webhooks deliberately not produced, by reason.",
            &["provider", "reason"]
        )
        .expect("register caas_ingest_skipped_total"),
        duplicates: register_int_counter_vec!(
            "caas_ingest_duplicates_total",
            "Events not produced again because they already were.",
            &["provider"]
        )
        .expect("register caas_ingest_duplicates_total"),
        dedupe_errors: register_int_counter_vec!(
            "caas_ingest_dedupe_errors_total",
            "Failed Redis de-duplication calls (events are produced anyway).",
            &["operation"]
        )
        .expect("register caas_ingest_dedupe_errors_total"),
    });
    &METRICS
}
