//! The `caas-chatbot` binary: read the configuration, start telemetry, run until SIGINT/SIGTERM.

use caas_runtime::{shutdown_token, telemetry, Env};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = caas_chatbot::Config::from_env(&Env::from_process())?;
    telemetry::init(caas_chatbot::SERVICE, &config.common);
    caas_chatbot::run(config, shutdown_token(), |_| {}).await
}
