//! Chatbot worker: per-tenant declarative flows that answer customers and hand over to a human.
//!
//! It consumes `inbound.messages.v1` and `conversation.events.v1` (one consumer, both topics,
//! so a conversation's messages and handling changes go through one loop), and produces bot
//! replies to `outbound.commands.v1` and handoffs to `conversation.events.v1`.
//!
//! - [`domain`]: the pure core: the flow file format and its validation, sessions, the engine
//!   (event + session + flows → replies + new session), rendering.
//! - [`flows`]: flow files on disk, reloaded when they change; invalid files are refused and
//!   the flows in force stay.
//! - [`bot`]: events in, commands out, sessions in Redis ([`store`]); the timer for waiting
//!   steps' timeouts.
//!
//! `run` is the whole service: `main` only reads the configuration and hands it over with the
//! shutdown token, so tests start the very same service in-process.

pub mod bot;
mod config;
pub mod domain;
pub mod flows;
pub mod metrics;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use caas_events::{topics, Codec};
use caas_kafka::{run_consumer, ConsumerConfig, KafkaConfig, Producer};
use caas_runtime::probe::Part;
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::{ops, probe, OpsServer, Readiness};

pub use config::Config;

/// The service's name in logs and metrics.
pub const SERVICE: &str = "chatbot";

/// What this service depends on; `/ready` checks each of them.
pub const DEPENDENCIES: &[Part] = &[Part::Kafka, Part::Registry, Part::Redis];

/// Run the service until `shutdown` is cancelled. `on_bound` learns the HTTP address (port 0
/// in tests). Besides `/health`, `/ready` and `/metrics` it serves `GET /flows`: the flows in
/// force per tenant and the files refused, with why.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let stop = shutdown.child_token();
    let registry = Arc::new(flows::FlowRegistry::new(config.flows_dir.clone()));
    let first = registry.reload();
    tracing::info!(loaded = ?first.loaded, refused = first.refused.len(), directory = %config.flows_dir.display(), "flows read");

    let readiness = Readiness::new(SERVICE);
    probe::register_checks(&readiness, &config.common, DEPENDENCIES);
    let status_registry = registry.clone();
    let router = ops::router(readiness).merge(Router::new().route(
        "/flows",
        get(move || {
            let registry = status_registry.clone();
            async move { Json(registry.status()) }
        }),
    ));
    let (bound, server) = OpsServer::serve(config.http_addr, router, stop.clone()).await?;
    on_bound(bound);
    tracing::info!(service = SERVICE, address = %bound, "service started");

    let reloader = {
        let registry = registry.clone();
        let stop = stop.clone();
        let interval = config.reload_interval;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                let registry = registry.clone();
                // File reads are blocking; keep them off the async workers.
                let _ = tokio::task::spawn_blocking(move || registry.reload()).await;
            }
        })
    };

    let outcome = workers(&config, registry, stop.clone()).await;
    if let Err(error) = &outcome {
        tracing::error!(error = %error, "chatbot workers failed; stopping");
    }
    stop.cancel();
    let _ = reloader.await;
    server.await??;
    tracing::info!(service = SERVICE, "service stopped");
    outcome
}

async fn workers(
    config: &Config,
    registry: Arc<flows::FlowRegistry>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(500);
    let connection = loop {
        match probe::redis_connection(config.common.redis_url.expose()).await {
            Ok(connection) => break connection,
            Err(error) => {
                tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "redis unreachable; the chatbot waits for it");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    };
    let kafka = KafkaConfig::new(config.common.kafka_bootstrap.clone())
        .with_client_id("caas-chatbot")
        // Authentication (CAAS_KAFKA_SECURITY_PROTOCOL, CAAS_KAFKA_SASL_*), none by default.
        .with_properties(config.common.kafka_properties());
    let producer = Producer::new(&kafka)?;
    let bot = Arc::new(bot::Bot {
        registry,
        store: store::Store::new(connection, config.session_ttl),
        codec: Codec::new(config.common.schema_registry_url.clone())?,
        producer: producer.clone(),
    });
    let timer = tokio::spawn(bot::run_timer(
        bot.clone(),
        config.tick_interval,
        stop.clone(),
    ));
    let mut consumer = ConsumerConfig::new(
        kafka,
        config.group_id.clone(),
        [topics::INBOUND_MESSAGES, topics::CONVERSATION_EVENTS],
    );
    // The lag measurement is a blocking round of watermark requests (one per partition, 24
    // here; seconds on a busy host) that the consumer waits for when it stops; a long interval
    // keeps it from delaying most shutdowns.
    consumer.lag_refresh_interval = Duration::from_secs(30);
    let outcome = run_consumer(consumer, bot, producer.clone(), stop.clone()).await;
    stop.cancel();
    let _ = timer.await;
    if let Err(error) = producer.flush(Duration::from_secs(5)).await {
        tracing::warn!(error = %error, "bot output still queued at shutdown");
    }
    outcome.map_err(anyhow::Error::from)
}
