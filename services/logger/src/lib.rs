//! Logger worker: persists every event exactly once to MongoDB and keeps the message and conversation views.
//!
//! `run` is the whole service: `main` only reads the configuration and hands it over with the
//! shutdown token, so tests start the very same service in-process.
//!
//! - [`domain`]: pure logic — the documents ([`domain::docs`]), the delivery status state
//!   machine ([`domain::status`]) and the batch planner ([`domain::plan`]) that assigns the
//!   per-conversation sequence numbers.
//! - [`store`]: MongoDB — indexes, retention TTLs, and the one transaction per batch.
//! - [`handler`]: the `caas-kafka` batch handler (decode, dead-letter, persist, announce).
//! - [`announce`]: after each commit, the `seq`s the batch assigned, on a Redis channel the
//!   gateway listens to (best effort; `events` stays the authority).
//! - [`rights`]: export and erasure of one customer's data (also `caas-logger export|erase`).
//! - [`scenario`]: deterministic mixed event streams for tests and load tools.
//!
//! The README states the storage contract the gateway builds on.

pub mod announce;
pub mod config;
pub mod domain;
pub mod error;
pub mod handler;
pub mod metrics;
pub mod rights;
pub mod scenario;
pub mod store;

use std::net::SocketAddr;
use std::time::Duration;

use caas_events::Codec;
use caas_kafka::{run_batch_consumer, BatchConfig, ConsumerConfig, KafkaConfig, Producer};
use caas_runtime::probe::{self, Part};
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::{ops, OpsServer, Readiness};

pub use config::{Config, Retention};
pub use error::{DataRightsError, StoreError};
pub use store::Store;

/// The service's name in logs and metrics.
pub const SERVICE: &str = "logger";

/// What this service depends on; `/ready` checks each of them.
pub const DEPENDENCIES: &[Part] = &[Part::Kafka, Part::Registry, Part::MongoDb];

/// How long one MongoDB operation may wait for a usable server before failing (and the batch
/// being retried).
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Run the service until `shutdown` is cancelled. `on_bound` learns the HTTP address (port 0
/// in tests).
///
/// The ops endpoints answer at once. The worker prepares MongoDB (indexes, retention) in the
/// background, retrying while it is unreachable (`/ready` says so meanwhile), then consumes.
/// When a batch still fails after its retries (MongoDB down for long), the consumer stops
/// without storing the batch and starts again after a pause: nothing goes to the DLQ for an
/// outage. On shutdown the batch in hand is finished or left unstored, offsets are committed
/// and `run` returns within the shutdown grace period.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let readiness = Readiness::new(SERVICE);
    probe::register_checks(&readiness, &config.common, DEPENDENCIES);
    let (bound, server) =
        OpsServer::serve(config.http_addr, ops::router(readiness), shutdown.clone()).await?;
    on_bound(bound);
    tracing::info!(service = SERVICE, address = %bound, "service started");

    let store = Store::connect(
        &config.common.mongodb_uri,
        &config.common.mongodb_database,
        SERVER_SELECTION_TIMEOUT,
    )
    .await?;
    let codec = Codec::new(config.common.schema_registry_url.clone())?;
    let kafka = KafkaConfig::new(config.common.kafka_bootstrap.clone())
        .with_client_id("caas-logger")
        // Authentication (CAAS_KAFKA_SECURITY_PROTOCOL, CAAS_KAFKA_SASL_*), none by default.
        .with_properties(config.common.kafka_properties());
    let producer = Producer::new(&kafka)?;
    let grace = config.common.shutdown_grace;
    let worker = tokio::spawn(work(
        config,
        kafka,
        store,
        codec,
        producer.clone(),
        shutdown.clone(),
    ));

    shutdown.cancelled().await;
    match tokio::time::timeout(grace, worker).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(error = %error, "logger worker task failed"),
        Err(_) => tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "logger worker did not stop within the grace period; its batch will be redelivered"
        ),
    }
    if let Err(error) = producer.flush(Duration::from_secs(2)).await {
        tracing::warn!(error = %error, "dead-letter records may be unsent at exit");
    }
    server.await??;
    tracing::info!(service = SERVICE, "service stopped");
    Ok(())
}

/// The consumer settings the logger runs with.
pub fn consumer_config(config: &Config, kafka: KafkaConfig) -> (ConsumerConfig, BatchConfig) {
    let mut consumer =
        ConsumerConfig::new(kafka, config.group_id.clone(), config.subscribed_topics());
    // A batch retried for about 20 s rides out a failover or a write-conflict storm; beyond
    // that the loop restarts (see `run`).
    consumer.max_retries = 8;
    consumer.backoff_base = Duration::from_millis(100);
    consumer.backoff_max = Duration::from_secs(5);
    consumer.session_timeout = config.session_timeout;
    let batch = BatchConfig::new(config.batch_max_records, config.batch_max_wait);
    (consumer, batch)
}

/// The announcer of committed `seq`s, or a disabled one (announcing is optional: the logger
/// works without Redis).
fn announcer(config: &Config) -> announce::Announcer {
    let Some(prefix) = &config.announce_prefix else {
        tracing::info!("CAAS_LOGGER_ANNOUNCE_PREFIX is off: not announcing committed seqs");
        return announce::Announcer::disabled();
    };
    let channel = announce::channel(prefix, &config.common.mongodb_database);
    match announce::Announcer::start(config.common.redis_url.expose(), channel.clone()) {
        Ok(announcer) => {
            tracing::info!(channel, "announcing committed seqs on redis");
            announcer
        }
        Err(error) => {
            tracing::error!(
                variable = "CAAS_REDIS_URL",
                error = %error,
                "invalid redis url: not announcing committed seqs (the gateway falls back to polling mongodb)"
            );
            announce::Announcer::disabled()
        }
    }
}

async fn work(
    config: Config,
    kafka: KafkaConfig,
    store: Store,
    codec: Codec,
    producer: Producer,
    shutdown: CancellationToken,
) {
    loop {
        match store.prepare(&config.retention).await {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(error = %error, "cannot prepare mongodb yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
    tracing::info!(database = %config.common.mongodb_database, "mongodb prepared");
    let handler = std::sync::Arc::new(handler::LoggerHandler {
        store,
        codec,
        topics: handler::TopicMap::new(&config.topic_prefix, &config.topics),
        announcer: announcer(&config),
    });
    let (consumer, batch) = consumer_config(&config, kafka);
    loop {
        let outcome = run_batch_consumer(
            consumer.clone(),
            batch,
            handler.clone(),
            producer.clone(),
            shutdown.clone(),
        )
        .await;
        match outcome {
            Ok(()) => break,
            Err(error) => {
                tracing::error!(error = %error, "logger consumer stopped; restarting it in 5 s");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    }
}
