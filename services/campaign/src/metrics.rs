//! Prometheus metrics of the campaign service, in the default registry. Labels are bounded:
//! actions, outcomes, kinds, never a tenant, campaign or number.

use std::sync::OnceLock;

use prometheus::{register_int_counter_vec, IntCounterVec};

/// The service's metrics.
pub struct Metrics {
    /// Campaign commands by `action` and `outcome` (applied, rejected).
    pub commands: IntCounterVec,
    /// Send commands produced, by `channel`.
    pub emitted: IntCounterVec,
    /// Recipients skipped at send time, by `reason` (opted_out, no_opt_in, invalid).
    pub skipped: IntCounterVec,
    /// Recipient status changes applied, by `kind` (result, status).
    pub tracking: IntCounterVec,
    /// Consent changes recorded, by `status` and `source`.
    pub consent: IntCounterVec,
    /// API requests by `route` and `status`.
    pub api: IntCounterVec,
}

/// The metrics, registered on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        commands: register_int_counter_vec!(
            "caas_campaign_commands_total",
            "Campaign commands handled, by action and outcome.",
            &["action", "outcome"]
        )
        .expect("metric registers"),
        emitted: register_int_counter_vec!(
            "caas_campaign_sends_emitted_total",
            "Send commands produced to outbound.commands.v1 by campaigns.",
            &["channel"]
        )
        .expect("metric registers"),
        skipped: register_int_counter_vec!(
            "caas_campaign_recipients_skipped_total",
            "Recipients skipped right before sending, by reason.",
            &["reason"]
        )
        .expect("metric registers"),
        tracking: register_int_counter_vec!(
            "caas_campaign_status_updates_total",
            "Recipient status changes applied from results and provider statuses.",
            &["kind"]
        )
        .expect("metric registers"),
        consent: register_int_counter_vec!(
            "caas_campaign_consent_changes_total",
            "Consent changes recorded in the ledger, by status and source.",
            &["status", "source"]
        )
        .expect("metric registers"),
        api: register_int_counter_vec!(
            "caas_campaign_api_requests_total",
            "Campaign API requests by route and status.",
            &["route", "status"]
        )
        .expect("metric registers"),
    })
}
