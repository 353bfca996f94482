//! The chatbot's Prometheus metrics (default registry). Labels are bounded: topic, outcome,
//! channel; never a tenant or customer.

use std::sync::OnceLock;

use prometheus::{register_int_counter_vec, IntCounterVec};

/// The chatbot's metrics.
pub struct Metrics {
    /// Events handled, by kind (`message`, `handling`, `timeout`) and outcome (`replied`,
    /// `silent`, `duplicate`, `no_flows`).
    pub events: IntCounterVec,
    /// Replies produced as outbound commands, by channel.
    pub replies: IntCounterVec,
    /// Handoffs to a human, by channel.
    pub handoffs: IntCounterVec,
    /// Flow file reloads, by result (`loaded`, `refused`).
    pub reloads: IntCounterVec,
}

/// The metrics, registered on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        events: register_int_counter_vec!(
            "caas_chatbot_events_total",
            "Events handled by the chatbot, by kind and outcome.",
            &["kind", "outcome"]
        )
        .expect("metric registers once"),
        replies: register_int_counter_vec!(
            "caas_chatbot_replies_total",
            "Bot replies produced as outbound commands, by channel.",
            &["channel"]
        )
        .expect("metric registers once"),
        handoffs: register_int_counter_vec!(
            "caas_chatbot_handoffs_total",
            "Conversations the bot handed to a human, by channel.",
            &["channel"]
        )
        .expect("metric registers once"),
        reloads: register_int_counter_vec!(
            "caas_chatbot_flow_reloads_total",
            "Flow files loaded or refused.",
            &["result"]
        )
        .expect("metric registers once"),
    })
}
