//! Campaign worker: throttled, resumable bulk template sends that respect opt-outs.
//!
//! `run` is the whole service: `main` only reads the configuration and hands it over with the
//! shutdown token, so tests start the very same service in-process.

use std::net::SocketAddr;

use caas_runtime::probe::Part;
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::{CommonConfig, ConfigError, Env};

/// The service's name in logs and metrics.
pub const SERVICE: &str = "campaign";

/// What this service depends on; `/ready` checks each of them.
pub const DEPENDENCIES: &[Part] = &[Part::Kafka, Part::Registry, Part::MongoDb];

/// Configuration of the campaign service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every CAAS process.
    pub common: CommonConfig,
    /// `CAAS_CAMPAIGN_OPS_ADDR`: where `/health`, `/ready` and `/metrics` are served (default `127.0.0.1:9104`).
    pub http_addr: SocketAddr,
}

impl Config {
    /// Read the configuration; the error names the variable that is wrong.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env(env)?,
            http_addr: env.socket_addr("CAAS_CAMPAIGN_OPS_ADDR", "127.0.0.1:9104")?,
        })
    }
}

/// Run the service until `shutdown` is cancelled. `on_bound` learns the HTTP address (port 0
/// in tests).
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    caas_runtime::ops::serve_until_shutdown(
        SERVICE,
        &config.common,
        config.http_addr,
        DEPENDENCIES,
        shutdown,
        on_bound,
    )
    .await?;
    Ok(())
}
