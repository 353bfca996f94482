//! Presence worker: typing, online, last-seen and read state with expiry in Redis, published as presence updates.
//!
//! `run` is the whole service: `main` only reads the configuration and hands it over with the
//! shutdown token, so tests start the very same service in-process.
//!
//! - [`domain`]: the pure decision core (signal + state + now → next state + updates; expiry).
//! - [`signal`]: input events → signals, with the contract checks.
//! - [`keys`]: the Redis key layout (the gateway reads who is online from it).
//! - [`store`]: Redis compare-and-set, deadline claims, and the customer export/erasure the
//!   logger's data-rights commands call.
//! - [`worker`]: the Kafka handler and the expiry scanner.

pub mod config;
pub mod domain;
pub mod keys;
pub mod metrics;
pub mod signal;
pub mod store;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use caas_events::{topics, Codec};
use caas_kafka::{run_consumer, ConsumerConfig, KafkaConfig, Producer};
use caas_runtime::probe::{self, Part};
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::{ops, OpsServer, Readiness};

pub use config::Config;

/// The service's name in logs and metrics.
pub const SERVICE: &str = "presence";

/// What this service depends on; `/ready` checks each of them.
pub const DEPENDENCIES: &[Part] = &[Part::Kafka, Part::Registry, Part::Redis];

/// Run the service until `shutdown` is cancelled. `on_bound` learns the HTTP address (port 0
/// in tests).
///
/// The ops endpoints answer at once; the worker connects to Redis in the background and starts
/// consuming once it can, so `/ready` says what is missing instead of the process failing. On
/// shutdown the worker finishes the record in hand, commits and stops within the shutdown
/// grace period.
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

    let codec = Codec::new(config.common.schema_registry_url.clone())?;
    let kafka = KafkaConfig::new(config.common.kafka_bootstrap.clone())
        .with_client_id("caas-presence")
        // Authentication (CAAS_KAFKA_SECURITY_PROTOCOL, CAAS_KAFKA_SASL_*), none by default.
        .with_properties(config.common.kafka_properties());
    let producer = Producer::new(&kafka)?;
    let grace = config.common.shutdown_grace;
    let worker = tokio::spawn(work(
        config,
        kafka,
        codec,
        producer.clone(),
        shutdown.clone(),
    ));

    shutdown.cancelled().await;
    match tokio::time::timeout(grace, worker).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(error = %error, "presence worker task failed"),
        Err(_) => tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "presence worker did not stop within the grace period"
        ),
    }
    if let Err(error) = producer.flush(Duration::from_secs(2)).await {
        tracing::warn!(error = %error, "updates may be unpublished at exit");
    }
    server.await??;
    tracing::info!(service = SERVICE, "service stopped");
    Ok(())
}

async fn work(
    config: Config,
    kafka: KafkaConfig,
    codec: Codec,
    producer: Producer,
    shutdown: CancellationToken,
) {
    let connection = loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            connected = probe::redis_connection(config.common.redis_url.expose()) => match connected {
                Ok(connection) => break connection,
                Err(error) => {
                    tracing::warn!(error, "redis unavailable; presence waits for it");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            },
        }
    };
    let prefix = &config.topic_prefix;
    let presence = Arc::new(worker::Presence {
        store: store::StateStore::new(
            connection,
            config.state_ttl.as_millis() as i64,
            &config.topic_prefix,
        ),
        producer: producer.clone(),
        codec,
        settings: config.settings(),
        statuses_topic: format!("{prefix}{}", topics::INBOUND_STATUSES),
        events_topic: format!("{prefix}{}", topics::PRESENCE_EVENTS),
        updates_topic: format!("{prefix}{}", topics::PRESENCE_UPDATES),
        order: tokio::sync::Mutex::new(()),
    });
    let scanner = tokio::spawn(
        presence
            .clone()
            .scan_until(config.scan_interval, shutdown.clone()),
    );
    let consumer_config = ConsumerConfig::new(
        kafka,
        config.group_id.clone(),
        worker::input_topics().map(|topic| format!("{prefix}{topic}")),
    );
    loop {
        let outcome = run_consumer(
            consumer_config.clone(),
            worker::PresenceHandler(presence.clone()),
            producer.clone(),
            shutdown.clone(),
        )
        .await;
        match outcome {
            Ok(()) => break,
            Err(error) => {
                tracing::error!(error = %error, "presence consumer stopped; restarting it");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    }
    let _ = scanner.await;
}
