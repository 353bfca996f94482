//! The `caas-sender` binary: read the configuration, start telemetry, run until SIGINT/SIGTERM.

use caas_runtime::{shutdown_token, telemetry, Env};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = caas_sender::Config::from_env(&Env::from_process())?;
    telemetry::init(caas_sender::SERVICE, &config.common);
    caas_sender::run(config, shutdown_token(), |_| {}).await
}
