//! Sender worker: the only service that talks to the providers' send APIs, with window rules,
//! rate limits, retries and idempotency.
//!
//! It consumes `outbound.commands.v1` and publishes one `outbound.results.v1` record per
//! command: accepted (with the provider's message id) or failed (code, reason, retryable).
//!
//! - [`domain`]: the pure decisions (window, provider payloads, answer classification,
//!   backoff, token bucket, ledger take-over), unit-tested without I/O.
//! - [`pipeline`]: one command from record to result; [`inbound`]: the customers' last
//!   message times for the window.
//! - Edges: [`ledger`] (MongoDB idempotency ledger), [`state`] (Redis: window times, token
//!   buckets, rate-limit pauses, instance liveness), [`provider`] (HTTP), [`metrics`].
//!
//! `run` is the whole service: `main` only reads the configuration and hands it over with the
//! shutdown token, so tests start the very same service in-process. The README states the
//! guarantees (at most once per command; the WhatsApp crash window) and every variable.

mod config;
pub mod domain;
pub mod inbound;
pub mod ledger;
pub mod metrics;
pub mod pipeline;
pub mod provider;
pub mod state;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caas_events::{topics, Codec};
use caas_kafka::{
    run_batch_consumer, run_consumer, BatchConfig, ClientError, ConsumerConfig, KafkaConfig,
    Producer,
};
use caas_runtime::probe::Part;
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::{ops, probe, OpsServer, Readiness};

pub use config::{Config, Endpoints, Tenants, Tokens, UnknownTenants, MAX_POLL_INTERVAL};

/// The service's name in logs and metrics.
pub const SERVICE: &str = "sender";

/// What this service depends on; `/ready` checks each of them.
pub const DEPENDENCIES: &[Part] = &[Part::Kafka, Part::Registry, Part::Redis, Part::MongoDb];

/// How often the consumer-lag gauge is refreshed. The measurement is a blocking round of
/// watermark requests (one per partition, seconds on a busy host) that the consumer waits for
/// when it stops; a long interval keeps it from delaying most shutdowns.
const LAG_REFRESH: Duration = Duration::from_secs(30);

/// The most commands handed to the pipeline at once (split there by conversation).
const BATCH_RECORDS: usize = 256;

/// How long a batch keeps collecting after its first command: short, replies are waited for.
const BATCH_WAIT: Duration = Duration::from_millis(10);

/// Run the service until `shutdown` is cancelled. `on_bound` learns the HTTP address (port 0
/// in tests). Unreachable dependencies do not stop it: `/ready` says 503 and the workers start
/// once Redis answers.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    // Our own token: a fatal worker error stops the ops server too, without touching the
    // caller's token.
    let stop = shutdown.child_token();
    let readiness = Readiness::new(SERVICE);
    probe::register_checks(&readiness, &config.common, DEPENDENCIES);
    let (bound, server) =
        OpsServer::serve(config.http_addr, ops::router(readiness), stop.clone()).await?;
    on_bound(bound);
    tracing::info!(service = SERVICE, address = %bound, "service started");
    let outcome = workers(config, stop.clone()).await;
    if let Err(error) = &outcome {
        tracing::error!(error = %error, "sender workers failed; stopping");
    }
    stop.cancel();
    server.await??;
    tracing::info!(service = SERVICE, "service stopped");
    outcome
}

/// Connect to Redis (retrying until it answers or shutdown), then run the consumers.
async fn workers(config: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let mut delay = Duration::from_millis(500);
    let connection = loop {
        match probe::redis_connection(config.common.redis_url.expose()).await {
            Ok(connection) => break connection,
            Err(error) => {
                tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "redis unreachable; the sender waits for it");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    };
    let redis = state::RedisState::new(connection);
    let mongo = probe::mongodb_client(&config.common.mongodb_uri, Duration::from_secs(5))
        .await
        .map_err(|error| anyhow::anyhow!("CAAS_MONGODB_URI: {error}"))?;
    let database = mongo.database(&config.common.mongodb_database);
    let ledger = ledger::Ledger::new(&database, config.ledger_retention);
    {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            if let Err(error) = ledger.ensure_indexes().await {
                tracing::warn!(error = %error, "cannot create the ledger's TTL index; old entries stay until removed");
            }
        });
    }
    let codec = Codec::new(config.common.schema_registry_url.clone())?;
    let kafka = KafkaConfig::new(config.common.kafka_bootstrap.clone())
        .with_client_id("caas-sender")
        // Authentication (CAAS_KAFKA_SECURITY_PROTOCOL, CAAS_KAFKA_SASL_*), none by default.
        .with_properties(config.common.kafka_properties());
    let producer = Producer::new(&kafka)?;
    let instance_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    tracing::info!(instance = %instance_id, "sender instance");

    // Liveness: other instances take over this one's unfinished commands only once it stops
    // beating.
    let heartbeat = {
        let redis = redis.clone();
        let instance_id = instance_id.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = redis.heartbeat(&instance_id).await {
                    tracing::warn!(error = %error, "liveness heartbeat failed (redis)");
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(state::LIVENESS_TTL / 5) => {}
                }
            }
        })
    };

    let pipeline = Arc::new(pipeline::Pipeline {
        config: config.clone(),
        codec: codec.clone(),
        producer: producer.clone(),
        redis: redis.clone(),
        ledger,
        conversations: database.collection("conversations"),
        providers: provider::Providers::new(
            &config.whatsapp_base_url,
            &config.whatsapp_api_version,
            &config.rbm_base_url,
            config.request_timeout,
        ),
        instance_id: instance_id.clone(),
        active: Mutex::new(HashSet::new()),
        shutdown: stop.clone(),
    });
    let tracker = Arc::new(inbound::WindowTracker {
        codec,
        redis: redis.clone(),
        only_tenants: (config.unknown_tenants == UnknownTenants::Skip)
            .then(|| config.tenants.clone()),
    });

    let mut consumers = tokio::task::JoinSet::new();
    {
        let mut consumer = ConsumerConfig::new(
            kafka.clone(),
            config.group_id.clone(),
            [topics::OUTBOUND_COMMANDS],
        );
        // HAZARD (max.poll.interval.ms): the loop does not poll while a batch is handled; a
        // batch starts no command after CAAS_SENDER_COMMAND_DEADLINE_MS and a command ends
        // within it too, validated against half of this interval.
        consumer.max_poll_interval = MAX_POLL_INTERVAL;
        consumer.session_timeout = config.session_timeout;
        consumer.lag_refresh_interval = LAG_REFRESH;
        let batch = BatchConfig::new(BATCH_RECORDS, BATCH_WAIT);
        let pipeline = pipeline.clone();
        let producer = producer.clone();
        let stop = stop.clone();
        // One group member per process handles many conversations at once (several members
        // in one process would rebalance against each other on every start and stop).
        consumers.spawn(async move {
            loop {
                let outcome = run_batch_consumer(
                    consumer.clone(),
                    batch,
                    pipeline.clone(),
                    producer.clone(),
                    stop.clone(),
                )
                .await;
                match outcome {
                    // A store stayed down through every retry: nothing was stored, the batch
                    // comes again; start over after a pause rather than give up the process.
                    Err(ClientError::RetriesExhausted { reason, .. }) if !stop.is_cancelled() => {
                        tracing::warn!(
                            reason,
                            "a batch kept failing; restarting the command consumer in 5 s"
                        );
                        tokio::select! {
                            _ = stop.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                        }
                    }
                    other => return other,
                }
            }
        });
    }
    let mut window_consumer = ConsumerConfig::new(
        kafka.clone(),
        format!("{}-window", config.group_id),
        [topics::INBOUND_MESSAGES],
    );
    window_consumer.session_timeout = config.session_timeout;
    window_consumer.lag_refresh_interval = LAG_REFRESH;
    consumers.spawn(run_consumer(
        window_consumer,
        tracker,
        producer.clone(),
        stop.clone(),
    ));

    let mut outcome = Ok(());
    while let Some(joined) = consumers.join_next().await {
        let failure = match joined {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(anyhow::Error::from(error)),
            Err(error) => Some(anyhow::anyhow!("a consumer task failed: {error}")),
        };
        if let Some(error) = failure {
            // One consumer died: stop the others, so the process restarts as a whole.
            stop.cancel();
            if outcome.is_ok() {
                outcome = Err(error);
            }
        }
    }
    stop.cancel();
    let _ = heartbeat.await;
    if let Err(error) = producer.flush(Duration::from_secs(5)).await {
        tracing::warn!(error = %error, "results still queued at shutdown");
    }
    if let Err(error) = redis.forget(&instance_id).await {
        tracing::warn!(error = %error, "cannot withdraw the liveness key; others wait for it to lapse");
    }
    outcome
}
