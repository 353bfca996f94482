//! Wiring: build the clients (all lazy), serve HTTP and socket.io, run the fan-out consumer,
//! drain on shutdown.

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use caas_events::Codec;
use caas_kafka::{
    run_batch_consumer, BatchConfig, ClientError, ConsumerConfig, KafkaConfig, Producer,
};
use caas_runtime::probe::{self, Part};
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::Readiness;
use socketioxide::SocketIo;
use socketioxide_redis::{RedisAdapterConfig, RedisAdapterCtr};

use crate::adapter::ReconnectingDriver;
use crate::consumer::{FanoutHandler, BATCH_MAX_RECORDS, BATCH_MAX_WAIT};
use crate::domain::fanout;
use crate::progress::LoggerProgress;
use crate::realtime::{self, Adapter};
use crate::state::{Publisher, Shared};
use crate::store::Store;
use crate::{api_limit, cors, http, Config, SERVICE};

/// What this service depends on; `/ready` checks each of them.
pub const DEPENDENCIES: &[Part] = &[Part::Kafka, Part::Registry, Part::Redis, Part::MongoDb];

/// Run the service until `shutdown` is cancelled. `on_bound` learns the HTTP address (port 0
/// in tests).
///
/// Start-up never waits for a dependency: Kafka, the registry, MongoDB and Redis are all
/// reached lazily, `/ready` says which one is missing, and each heals by itself when it comes
/// back (the Redis adapter re-subscribes, the consumer rejoins its group).
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let readiness = Readiness::new(SERVICE);
    probe::register_checks(&readiness, &config.common, DEPENDENCIES);
    if config.jwt_secret.expose().is_empty() {
        tracing::warn!(
            variable = "CAAS_JWT_SECRET",
            "not set: every socket.io connection and REST call will be refused"
        );
    }

    let kafka = KafkaConfig::new(config.common.kafka_bootstrap.clone())
        .with_client_id("caas-gateway")
        // Authentication (CAAS_KAFKA_SECURITY_PROTOCOL, CAAS_KAFKA_SASL_*), none by default.
        .with_properties(config.common.kafka_properties());
    let producer = Producer::new(&kafka).context("cannot create the kafka producer")?;
    let codec = Codec::new(config.common.schema_registry_url.clone())
        .context("cannot create the schema registry client (CAAS_SCHEMA_REGISTRY_URL)")?;
    let store = Store::new(&config.common.mongodb_uri, &config.common.mongodb_database)
        .await
        .context("invalid MongoDB connection string (CAAS_MONGODB_URI)")?;
    let driver = ReconnectingDriver::new(config.adapter_redis_url().expose())
        .context("invalid Redis URL (CAAS_REDIS_URL)")?;

    let shared = Arc::new(Shared {
        jwt_secret: config.jwt_secret.clone(),
        publisher: Publisher::new(producer.clone(), codec.clone()),
        store: store.clone(),
        redis_url: config.common.redis_url.clone(),
        io: std::sync::OnceLock::new(),
        explorer: crate::explorer::Subscribers::default(),
    });
    let adapter = RedisAdapterCtr::new_with_driver(
        driver,
        RedisAdapterConfig::new()
            .with_prefix(config.redis_prefix.clone())
            .with_request_timeout(Duration::from_secs(2)),
    );
    let (layer, io) = SocketIo::builder()
        .with_state(shared.clone())
        // Operators' messages are small; a small read buffer per socket keeps memory flat
        // with many connections (older tungstenite defaults gave each socket 128 KiB). It is
        // only the initial capacity: tungstenite grows it for a larger frame.
        .ws_read_buffer_size(1024)
        .max_payload(64 * 1024)
        // Packets queued per socket before emits to it fail; a burst beyond it is caught up
        // by seq.
        .max_buffer_size(1024)
        .with_adapter::<Adapter>(adapter)
        .build_layer();
    realtime::register(&io).await?;
    let _ = shared.io.set(io.clone());
    // The explorer's live tail: a change stream of stored events while admins subscribe here.
    let tail_stop = shutdown.child_token();
    tokio::spawn(crate::explorer::ensure_indexes(
        store.database().clone(),
        tail_stop.clone(),
    ));
    let tail = tokio::spawn(crate::explorer::tail(
        io.clone(),
        store.database().clone(),
        shared.explorer.clone(),
        tail_stop.clone(),
    ));

    // The campaign REST API, on this gateway's own MongoDB client, producer and codec.
    let campaigns =
        caas_campaign::ApiState::sharing(store.database().clone(), producer.clone(), codec.clone());
    let app = caas_runtime::ops::router(readiness)
        .merge(api_limit::apply(
            http::router(shared, campaigns),
            &config.api_rate_limit,
        ))
        .layer(layer)
        // Outside the socket.io layer: the parts socketioxide keeps per socket are copies.
        .layer(axum::middleware::map_request(crate::detach::detach));
    // Outside the socket.io layer, so a handshake from an origin that is not allowed is
    // refused before socketioxide sees it.
    let app = cors::apply(app, &config.allowed_origins);
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} (CAAS_GATEWAY_ADDR)", config.http_addr))?;
    let bound = listener.local_addr()?;
    on_bound(bound);
    tracing::info!(
        service = SERVICE,
        address = %bound,
        group = %config.consumer_group,
        allowed_origins = %config.allowed_origins.describe(),
        "service started"
    );

    let mut consumer_config =
        ConsumerConfig::new(kafka, config.consumer_group.clone(), fanout::TOPICS);
    consumer_config.offset_reset = config.offset_reset;
    let progress = LoggerProgress::new(
        &config.common.kafka_bootstrap,
        &config.common.kafka_security,
        &config.logger_group,
    )
    .context("cannot create the kafka client that reads the logger's progress")?;
    let announced = crate::announced::Announced::for_config(&config, shutdown.child_token());
    let handler = FanoutHandler::new(
        io.clone(),
        codec,
        store,
        progress,
        announced,
        config.seq_wait,
    );
    let consumer_stop = CancellationToken::new();
    let consumer_done = CancellationToken::new();
    let mut consumer = tokio::spawn({
        let consumer_stop = consumer_stop.clone();
        let consumer_done = consumer_done.clone();
        let producer = producer.clone();
        async move {
            let outcome = consume(consumer_config, handler, producer, consumer_stop).await;
            consumer_done.cancel();
            outcome
        }
    });

    // On shutdown: stop consuming and let the record in hand finish its emits, then disconnect
    // the sockets (their clients reconnect to another instance), then let in-flight HTTP
    // requests finish.
    let grace = config.common.shutdown_grace;
    let closing = {
        let io = io.clone();
        let shutdown = shutdown.clone();
        let consumer_stop = consumer_stop.clone();
        let consumer_done = consumer_done.clone();
        async move {
            shutdown.cancelled().await;
            consumer_stop.cancel();
            // Half the grace period for the record in hand; the rest for the connections.
            let _ = tokio::time::timeout(grace / 2, consumer_done.cancelled()).await;
            io.close().await;
        }
    };
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(closing)
        .into_future();
    let mut server = std::pin::pin!(server);
    // Everything after the shutdown signal is bounded by the grace period.
    let mut deadline = std::pin::pin!({
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        }
    });
    let mut server_outcome = None;
    let mut consumer_outcome = None;
    tokio::select! {
        outcome = &mut server => server_outcome = Some(outcome),
        joined = &mut consumer => consumer_outcome = Some(joined),
        () = &mut deadline => {}
    }
    if consumer_outcome.is_some() && server_outcome.is_none() {
        if !shutdown.is_cancelled() {
            // The consumer only ends by itself on a fatal error: this instance would serve
            // sockets that never get events, so it stops and gets restarted.
            tracing::error!("the fan-out consumer stopped; shutting the gateway down");
            shutdown.cancel();
        }
        tokio::select! {
            outcome = &mut server => server_outcome = Some(outcome),
            () = &mut deadline => {}
        }
    }
    if consumer_outcome.is_none() {
        tokio::select! {
            joined = &mut consumer => consumer_outcome = Some(joined),
            () = &mut deadline => {}
        }
    }
    tail_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), tail).await;
    if let Err(error) = producer.flush(Duration::from_secs(2)).await {
        tracing::warn!(error = %error, "kafka producer not fully flushed");
    }
    match server_outcome {
        Some(outcome) => outcome.context("http server failed")?,
        None => tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "open connections did not finish within the grace period"
        ),
    }
    match consumer_outcome {
        Some(Ok(Ok(()))) => {}
        Some(Ok(Err(error))) => return Err(error).context("the fan-out consumer failed"),
        Some(Err(join_error)) => return Err(join_error).context("the fan-out consumer panicked"),
        None => {
            consumer.abort();
            tracing::warn!("the fan-out consumer did not stop within the grace period");
        }
    }
    tracing::info!(service = SERVICE, "service stopped");
    Ok(())
}

/// Run the fan-out consumer until `stop`. A batch that kept failing (the schema registry was
/// down through every retry) stops the loop without storing anything; it starts again after a
/// pause and gets the same records, rather than taking the gateway down. Other errors are
/// fatal.
async fn consume(
    config: ConsumerConfig,
    handler: FanoutHandler,
    producer: Producer,
    stop: CancellationToken,
) -> Result<(), ClientError> {
    let handler = Arc::new(handler);
    loop {
        let outcome = run_batch_consumer(
            config.clone(),
            BatchConfig::new(BATCH_MAX_RECORDS, BATCH_MAX_WAIT),
            handler.clone(),
            producer.clone(),
            stop.clone(),
        )
        .await;
        match outcome {
            Err(ClientError::RetriesExhausted { reason, .. }) if !stop.is_cancelled() => {
                tracing::error!(
                    reason,
                    "fan-out batch kept failing; restarting the consumer in 5 s"
                );
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
            other => return other,
        }
    }
}
