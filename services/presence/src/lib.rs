//! Presence worker: typing, online, last-seen and read state with expiry in Redis, published as presence updates.
//!
//! `run` is the whole service: `main` only reads the configuration and hands it over with the
//! shutdown token, so tests start the very same service in-process.

use std::net::SocketAddr;

use caas_runtime::probe::Part;
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::{CommonConfig, ConfigError, Env};

/// The service's name in logs and metrics.
pub const SERVICE: &str = "presence";

/// What this service depends on; `/ready` checks each of them.
pub const DEPENDENCIES: &[Part] = &[Part::Kafka, Part::Registry, Part::Redis];

/// Configuration of the presence service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every CAAS process.
    pub common: CommonConfig,
    /// `CAAS_PRESENCE_OPS_ADDR`: where `/health`, `/ready` and `/metrics` are served (default `127.0.0.1:9102`).
    pub http_addr: SocketAddr,
}

impl Config {
    /// Read the configuration; the error names the variable that is wrong.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env(env)?,
            http_addr: env.socket_addr("CAAS_PRESENCE_OPS_ADDR", "127.0.0.1:9102")?,
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
