//! Real readiness probes for the parts of the stack: each asks the dependency something it can
//! only answer when it really works (a Kafka metadata request, a registry GET, a MongoDB
//! `hello`, a Redis `PING`), never just a TCP connect.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::KafkaSecurity;

/// Ask Kafka for cluster metadata, authenticated as `security` says; returns the number of
/// brokers that answered.
pub async fn kafka(
    bootstrap: &str,
    security: &KafkaSecurity,
    timeout: Duration,
) -> Result<usize, String> {
    let bootstrap = bootstrap.to_string();
    let security = security.clone();
    tokio::task::spawn_blocking(move || {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &bootstrap)
            .set("log_level", "0");
        security.apply(&mut client);
        let consumer: BaseConsumer = client
            .create()
            .map_err(|error| format!("cannot create a kafka client: {error}"))?;
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .map_err(|error| format!("kafka metadata request to {bootstrap} failed: {error}"))?;
        Ok(metadata.brokers().len())
    })
    .await
    .map_err(|error| format!("kafka probe task failed: {error}"))?
}

/// GET the registry's subject list (Confluent API); any 2xx counts as ready.
pub async fn registry(base_url: &str, timeout: Duration) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|error| error.to_string())?;
    let url = format!("{}/subjects", base_url.trim_end_matches('/'));
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|error| format!("schema registry at {url} unreachable: {error}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "schema registry at {url} answered {}",
            response.status()
        ))
    }
}

/// Run MongoDB's `hello` command.
pub async fn mongodb(client: &mongodb::Client) -> Result<(), String> {
    client
        .database("admin")
        .run_command(mongodb::bson::doc! { "hello": 1 })
        .await
        .map(|_| ())
        .map_err(|error| format!("mongodb hello failed: {error}"))
}

/// Connect a MongoDB client that fails fast (for probes and tools).
pub async fn mongodb_client(uri: &str, timeout: Duration) -> Result<mongodb::Client, String> {
    let mut options = mongodb::options::ClientOptions::parse(uri)
        .await
        .map_err(|error| format!("bad mongodb uri: {error}"))?;
    options.server_selection_timeout = Some(timeout);
    options.connect_timeout = Some(timeout);
    mongodb::Client::with_options(options).map_err(|error| error.to_string())
}

/// Send Redis `PING` on a multiplexed connection.
pub async fn redis(connection: &mut redis::aio::ConnectionManager) -> Result<(), String> {
    let reply: String = redis::cmd("PING")
        .query_async(connection)
        .await
        .map_err(|error| format!("redis PING failed: {error}"))?;
    if reply == "PONG" {
        Ok(())
    } else {
        Err(format!("redis PING answered {reply:?}"))
    }
}

/// Open a Redis connection manager (reconnects by itself after Redis restarts).
pub async fn redis_connection(url: &str) -> Result<redis::aio::ConnectionManager, String> {
    let client = redis::Client::open(url).map_err(|error| format!("bad redis url: {error}"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(|error| format!("redis unreachable: {error}"))
}

/// A part of the local stack a service depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The Kafka cluster.
    Kafka,
    /// The Confluent-compatible schema registry.
    Registry,
    /// MongoDB.
    MongoDb,
    /// Redis.
    Redis,
}

/// Register one readiness check per part a service depends on, against the common settings.
pub fn register_checks(readiness: &crate::Readiness, common: &crate::CommonConfig, parts: &[Part]) {
    let timeout = Duration::from_millis(1500);
    for part in parts {
        match part {
            Part::Kafka => {
                let bootstrap = common.kafka_bootstrap.clone();
                let security = common.kafka_security.clone();
                readiness.add_check("kafka", move || {
                    let bootstrap = bootstrap.clone();
                    let security = security.clone();
                    async move { kafka(&bootstrap, &security, timeout).await.map(|_| ()) }
                });
            }
            Part::Registry => {
                let url = common.schema_registry_url.clone();
                readiness.add_check("schema_registry", move || {
                    let url = url.clone();
                    async move { registry(&url, timeout).await }
                });
            }
            Part::MongoDb => {
                let uri = common.mongodb_uri.clone();
                let client = std::sync::Arc::new(tokio::sync::OnceCell::new());
                readiness.add_check("mongodb", move || {
                    let uri = uri.clone();
                    let client = client.clone();
                    async move {
                        let client = client
                            .get_or_try_init(|| mongodb_client(&uri, timeout))
                            .await?;
                        mongodb(client).await
                    }
                });
            }
            Part::Redis => {
                let url = common.redis_url.clone();
                readiness.add_check("redis", move || {
                    let url = url.clone();
                    async move {
                        let client = redis::Client::open(url.expose())
                            .map_err(|error| format!("bad redis url: {error}"))?;
                        let mut connection = client
                            .get_multiplexed_async_connection()
                            .await
                            .map_err(|error| format!("redis unreachable: {error}"))?;
                        let reply: String =
                            redis::cmd("PING")
                                .query_async(&mut connection)
                                .await
                                .map_err(|error| format!("redis PING failed: {error}"))?;
                        if reply == "PONG" {
                            Ok(())
                        } else {
                            Err(format!("redis PING answered {reply:?}"))
                        }
                    }
                });
            }
        }
    }
}
