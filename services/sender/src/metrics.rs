//! The sender's Prometheus metrics (default registry, served on `/metrics`). Labels are
//! bounded: channel, outcome, answer class; never a number, tenant or command id.

use std::sync::OnceLock;

use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounterVec};

/// The sender's metrics.
pub struct Metrics {
    /// Commands finished, by channel and outcome (`accepted`, `failed`, `republished`,
    /// `skipped`).
    pub commands: IntCounterVec,
    /// Provider calls, by channel and answer (`accepted`, `rate_limited`, `transient`,
    /// `permanent`, `unknown`).
    pub provider_calls: IntCounterVec,
    /// Provider call latency, by channel.
    pub provider_seconds: HistogramVec,
    /// Time waiting for a token of the sending number's bucket, by channel.
    pub rate_wait_seconds: HistogramVec,
    /// Inbound messages recorded for the window, by channel.
    pub inbound_recorded: IntCounterVec,
}

/// The metrics, registered on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        commands: register_int_counter_vec!(
            "caas_sender_commands_total",
            "Outbound commands finished by the sender, by channel and outcome.",
            &["channel", "outcome"]
        )
        .expect("metric registers once"),
        provider_calls: register_int_counter_vec!(
            "caas_sender_provider_calls_total",
            "Provider send calls, by channel and answer class.",
            &["channel", "answer"]
        )
        .expect("metric registers once"),
        provider_seconds: register_histogram_vec!(
            "caas_sender_provider_call_duration_seconds",
            "Latency of provider send calls.",
            &["channel"],
            vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
        )
        .expect("metric registers once"),
        rate_wait_seconds: register_histogram_vec!(
            "caas_sender_rate_wait_seconds",
            "Time a send waited for its sending number's token bucket or a rate-limit pause.",
            &["channel"],
            vec![0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
        )
        .expect("metric registers once"),
        inbound_recorded: register_int_counter_vec!(
            "caas_sender_inbound_recorded_total",
            "Customer messages recorded for the 24-hour window, by channel.",
            &["channel"]
        )
        .expect("metric registers once"),
    })
}
