//! `caasctl probe`: real readiness questions to each part of the stack.

use std::time::Duration;

use caas_runtime::{probe, CommonConfig, Env};
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, ValueEnum)]
pub enum Part {
    /// A Kafka metadata request.
    Kafka,
    /// GET /subjects on the Confluent-compatible registry API.
    Registry,
    /// MongoDB `hello`.
    Mongodb,
    /// Redis `PING`.
    Redis,
}

#[derive(Args)]
pub struct ProbeArgs {
    /// The part to probe.
    part: Part,
    /// Kafka bootstrap servers (default: CAAS_KAFKA_BOOTSTRAP or 127.0.0.1:9092).
    #[arg(long)]
    bootstrap: Option<String>,
    /// How long to wait for an answer, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
}

pub async fn run(arguments: ProbeArgs) -> anyhow::Result<()> {
    let common = CommonConfig::from_env(&Env::from_process())?;
    let timeout = Duration::from_millis(arguments.timeout_ms);
    let outcome = match arguments.part {
        Part::Kafka => {
            let bootstrap = arguments.bootstrap.unwrap_or(common.kafka_bootstrap);
            probe::kafka(&bootstrap, &common.kafka_security, timeout)
                .await
                .map(|brokers| format!("kafka: {brokers} broker(s) at {bootstrap}"))
        }
        Part::Registry => probe::registry(&common.schema_registry_url, timeout)
            .await
            .map(|()| format!("schema registry: {}", common.schema_registry_url)),
        Part::Mongodb => match probe::mongodb_client(&common.mongodb_uri, timeout).await {
            Ok(client) => probe::mongodb(&client)
                .await
                .map(|()| "mongodb: hello answered".to_string()),
            Err(error) => Err(error),
        },
        Part::Redis => match probe::redis_connection(common.redis_url.expose()).await {
            Ok(mut connection) => probe::redis(&mut connection)
                .await
                .map(|()| "redis: PONG".to_string()),
            Err(error) => Err(error),
        },
    };
    match outcome {
        Ok(message) => {
            println!("{message}");
            Ok(())
        }
        Err(reason) => anyhow::bail!("{reason}"),
    }
}
