//! Campaign service: bulk template sends that are throttled per sending number, resumable after
//! a crash, and respectful of opt-outs; its REST API; and the consent ledger.
//!
//! `run` is the whole service: `main` only reads the configuration and hands it over with the
//! shutdown token, so tests start the very same service in-process. It runs:
//!
//! - [`commands`]: `campaign.commands.v1` → campaigns in MongoDB, lifecycle events;
//! - [`emitter`]: per sending number (leased to one instance), audiences expanded into
//!   recipients and send commands produced to `outbound.commands.v1` at the campaign's rate,
//!   inside its sending hours, consent checked right before each send; totals on
//!   `campaign.events.v1`;
//! - [`tracking`]: `outbound.results.v1` and `inbound.statuses.v1` → recipient statuses;
//! - [`consent`]: STOP / START keywords on `inbound.messages.v1` and `opted_out` / `opted_in`
//!   on `conversation.events.v1` → the `consents` ledger, confirmations to the customer;
//! - [`api`]: the REST API, served here behind [`auth::bearer`] and mountable in the gateway
//!   behind its own authentication ([`api_router`] with a [`Caller`] extension).
//!
//! The pure decisions (schedule, rate, statuses, CSV, keywords) are in [`domain`].

pub mod api;
pub mod auth;
pub mod commands;
mod config;
pub mod consent;
pub mod context;
pub mod domain;
pub mod emitter;
pub mod metrics;
pub mod publish;
pub mod store;
pub mod tracking;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use caas_events::{topics, Codec};
use caas_kafka::{
    run_batch_consumer, run_consumer, BatchConfig, ClientError, ConsumerConfig, KafkaConfig,
    Producer,
};
use caas_runtime::probe::{self, Part};
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::{ops, OpsServer, Readiness};

pub use api::{api_router, ApiState};
pub use auth::{Caller, CallerRole};
pub use config::Config;

/// The service's name in logs and metrics.
pub const SERVICE: &str = "campaign";

/// What this service depends on; `/ready` checks each of them.
pub const DEPENDENCIES: &[Part] = &[Part::Kafka, Part::Registry, Part::MongoDb];

/// Run the service until `shutdown` is cancelled. `on_bound` learns the HTTP address (port 0
/// in tests). Unreachable dependencies do not stop it: `/ready` says 503 and the workers keep
/// retrying until they answer.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let stop = shutdown.child_token();
    let readiness = Readiness::new(SERVICE);
    probe::register_checks(&readiness, &config.common, DEPENDENCIES);
    let store = store::Store::connect(
        &config.common.mongodb_uri,
        &config.common.mongodb_database,
        Duration::from_secs(3),
    )
    .await?;
    let kafka = KafkaConfig::new(config.common.kafka_bootstrap.clone())
        .with_client_id("caas-campaign")
        // Authentication (CAAS_KAFKA_SECURITY_PROTOCOL, CAAS_KAFKA_SASL_*), none by default.
        .with_properties(config.common.kafka_properties());
    let producer = Producer::new(&kafka)?;
    let codec = Codec::new(config.common.schema_registry_url.clone())?;
    let publisher = publish::Publisher::new(producer.clone(), codec.clone());
    let api = api_router(ApiState::new(
        store.clone(),
        publisher.clone(),
        config.max_audience_rows,
    ))
    .layer(axum::middleware::from_fn_with_state(
        config.jwt_secret.clone(),
        auth::bearer,
    ));
    let router = ops::router(readiness).merge(api);
    let (bound, server) = OpsServer::serve(config.http_addr, router, stop.clone()).await?;
    on_bound(bound);
    tracing::info!(service = SERVICE, address = %bound, instance = %config.instance_id, "service started");
    let (wake, _) = tokio::sync::watch::channel(0u64);
    let grace = config.common.shutdown_grace;
    let context = Arc::new(context::Context {
        config,
        store,
        publisher,
        codec,
        wake,
    });
    workers(context, kafka, stop.clone()).await;
    stop.cancel();
    server.await??;
    if let Err(error) = producer.flush(grace.min(Duration::from_secs(5))).await {
        tracing::warn!(error = %error, "producer flush incomplete");
    }
    tracing::info!(service = SERVICE, "service stopped");
    Ok(())
}

/// Run a consumer loop again (after a pause) whenever it stops with an error, until `stop`.
async fn supervise<F, Fut>(name: &'static str, stop: CancellationToken, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ClientError>>,
{
    loop {
        match start().await {
            Ok(()) if stop.is_cancelled() => return,
            Ok(()) => tracing::warn!(consumer = name, "consumer loop ended; restarting"),
            Err(error) => {
                tracing::error!(consumer = name, error = %error, "consumer loop failed; restarting")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

async fn workers(context: Arc<context::Context>, kafka: KafkaConfig, stop: CancellationToken) {
    // Indexes first; MongoDB may be down at start-up: wait for it (ready says 503 meanwhile).
    let mut logged = false;
    loop {
        match context.store.prepare().await {
            Ok(()) => break,
            Err(error) => {
                if !logged {
                    tracing::warn!(error = %error, "mongodb not usable yet; retrying");
                    logged = true;
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
    let prefix = context.config.group_prefix.clone();
    let session_timeout = context.config.session_timeout;
    let dlq = context.publisher.producer().clone();
    let commands = {
        let (context, kafka, dlq, stop, group) = (
            context.clone(),
            kafka.clone(),
            dlq.clone(),
            stop.clone(),
            format!("{prefix}.commands"),
        );
        supervise("commands", stop.clone(), move || {
            let mut config =
                ConsumerConfig::new(kafka.clone(), group.clone(), [topics::CAMPAIGN_COMMANDS]);
            config.session_timeout = session_timeout;
            run_consumer(
                config,
                commands::CommandHandler::new(context.clone()),
                dlq.clone(),
                stop.clone(),
            )
        })
    };
    let tracking = {
        let (context, kafka, dlq, stop, group) = (
            context.clone(),
            kafka.clone(),
            dlq.clone(),
            stop.clone(),
            format!("{prefix}.tracking"),
        );
        supervise("tracking", stop.clone(), move || {
            let mut config = ConsumerConfig::new(
                kafka.clone(),
                group.clone(),
                [topics::OUTBOUND_RESULTS, topics::INBOUND_STATUSES],
            );
            config.session_timeout = session_timeout;
            run_batch_consumer(
                config,
                BatchConfig::new(500, Duration::from_millis(100)),
                tracking::TrackingHandler::new(context.clone()),
                dlq.clone(),
                stop.clone(),
            )
        })
    };
    let consent = {
        let (context, kafka, dlq, stop, group) = (
            context.clone(),
            kafka.clone(),
            dlq.clone(),
            stop.clone(),
            format!("{prefix}.consent"),
        );
        supervise("consent", stop.clone(), move || {
            let mut config = ConsumerConfig::new(
                kafka.clone(),
                group.clone(),
                [topics::INBOUND_MESSAGES, topics::CONVERSATION_EVENTS],
            );
            config.session_timeout = session_timeout;
            run_consumer(
                config,
                consent::ConsentHandler::new(context.clone()),
                dlq.clone(),
                stop.clone(),
            )
        })
    };
    let emitter = emitter::run(context.clone(), stop.clone());
    tokio::join!(commands, tracking, consent, emitter);
}
