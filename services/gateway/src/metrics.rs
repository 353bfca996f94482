//! The gateway's Prometheus metrics (default registry, served on `/metrics`). Labels are
//! bounded: event names and outcomes, never tenants, operators or conversation keys.

use std::sync::OnceLock;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge, HistogramVec,
    IntCounterVec, IntGauge,
};

/// Every metric of the gateway.
pub struct Metrics {
    /// `caas_gateway_connected_sockets`: sockets connected to this instance.
    pub connected_sockets: IntGauge,
    /// `caas_gateway_connections_total{outcome}`: connection attempts by outcome
    /// (`accepted` or the auth error label).
    pub connections: IntCounterVec,
    /// `caas_gateway_emits_total{event,scope}`: server events emitted, `scope` `all`
    /// (through the adapter to every instance) or `local` (Redis was unreachable).
    pub emits: IntCounterVec,
    /// `caas_gateway_fanout_latency_seconds{event}`: from the record's Kafka timestamp to its
    /// emit.
    pub fanout_latency: HistogramVec,
    /// `caas_gateway_seq_lookups_total{outcome}`, once per awaited event: `announced` (the
    /// logger's Redis announcement brought the seq), `found` (read from MongoDB), `skipped`
    /// (the logger passed the record without a seq), `missing` (the wait ran out) or `error`
    /// (MongoDB failed and the wait ran out).
    pub seq_lookups: IntCounterVec,
    /// `caas_gateway_seq_announcements_total{outcome}`: the logger's announcements heard on
    /// Redis, `received` or `unreadable`.
    pub seq_announcements: IntCounterVec,
    /// `caas_gateway_client_events_total{event,outcome}`: operator actions by outcome
    /// (`ok`, `rejected`, `unavailable`).
    pub client_events: IntCounterVec,
    /// `caas_gateway_http_requests_total{route,status}`: REST calls.
    pub http_requests: IntCounterVec,
}

/// The metrics, registered on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        connected_sockets: register_int_gauge!(
            "caas_gateway_connected_sockets",
            "socket.io sockets connected to this gateway instance"
        )
        .expect("metric registers once"),
        connections: register_int_counter_vec!(
            "caas_gateway_connections_total",
            "socket.io connection attempts by outcome",
            &["outcome"]
        )
        .expect("metric registers once"),
        emits: register_int_counter_vec!(
            "caas_gateway_emits_total",
            "server events emitted, by event and scope (all instances or local only)",
            &["event", "scope"]
        )
        .expect("metric registers once"),
        fanout_latency: register_histogram_vec!(
            "caas_gateway_fanout_latency_seconds",
            "time from a record's Kafka timestamp to its socket.io emit",
            &["event"],
            vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
        )
        .expect("metric registers once"),
        seq_lookups: register_int_counter_vec!(
            "caas_gateway_seq_lookups_total",
            "lookups of the logger-assigned conversation seq, by outcome",
            &["outcome"]
        )
        .expect("metric registers once"),
        seq_announcements: register_int_counter_vec!(
            "caas_gateway_seq_announcements_total",
            "announcements of committed seqs heard from the logger on redis, by outcome",
            &["outcome"]
        )
        .expect("metric registers once"),
        client_events: register_int_counter_vec!(
            "caas_gateway_client_events_total",
            "operator actions received over socket.io, by event and outcome",
            &["event", "outcome"]
        )
        .expect("metric registers once"),
        http_requests: register_int_counter_vec!(
            "caas_gateway_http_requests_total",
            "REST API requests by route and status",
            &["route", "status"]
        )
        .expect("metric registers once"),
    })
}
