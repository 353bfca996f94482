//! Structured logs through `tracing`: JSON lines by default, human-readable on request.

use tracing_subscriber::{fmt, EnvFilter};

use crate::CommonConfig;

/// Install the global subscriber. Safe to call twice (the second call is ignored), which keeps
/// in-process tests that start several services simple.
pub fn init(service: &'static str, config: &CommonConfig) {
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let result = if config.log_format == "pretty" {
        fmt().with_env_filter(filter).with_target(false).try_init()
    } else {
        fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_env_filter(filter)
            .try_init()
    };
    if result.is_ok() {
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            "telemetry ready"
        );
    }
}
