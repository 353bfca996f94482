//! Wiring: build the dependencies, serve HTTP until shutdown, drain.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use caas_events::Codec;
use caas_kafka::{KafkaConfig, Producer};
use caas_runtime::probe::{self, Part};
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::Readiness;

use crate::dedupe::RedisDedupe;
use crate::http::{self, AppState, Credentials};
use crate::pipeline::{DedupeSettings, Pipeline};
use crate::publish::KafkaSink;
use crate::ratelimit;
use crate::{Config, SERVICE};

/// What this service depends on; `/ready` checks each of them.
pub const DEPENDENCIES: &[Part] = &[Part::Kafka, Part::Registry, Part::Redis];

/// Run the service until `shutdown` is cancelled. `on_bound` learns the HTTP address (port 0
/// in tests).
///
/// Start-up never waits for a dependency: the producer connects lazily, Redis and the schema
/// ids are resolved in the background, and `/ready` says what is missing. A webhook that
/// arrives while Kafka or the registry is down is answered 503, so the provider retries.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let readiness = Readiness::new(SERVICE);
    probe::register_checks(&readiness, &config.common, DEPENDENCIES);

    let mut kafka = KafkaConfig::new(config.common.kafka_bootstrap.clone())
        .with_client_id("caas-ingest")
        // Authentication (CAAS_KAFKA_SECURITY_PROTOCOL, CAAS_KAFKA_SASL_*), none by default.
        .with_properties(config.common.kafka_properties());
    kafka.send_timeout = config.produce_timeout;
    kafka.linger = config.produce_linger;
    let producer = Producer::new(&kafka).context("cannot create the kafka producer")?;
    let codec = Codec::new(config.common.schema_registry_url.clone())
        .context("cannot create the schema registry client")?;
    let sink = KafkaSink::new(producer.clone(), codec);
    sink.warm_up(shutdown.clone());
    let dedupe = RedisDedupe::connect_in_background(&config.common.redis_url, shutdown.clone());

    let state = Arc::new(AppState {
        pipeline: Pipeline::new(
            sink,
            dedupe,
            DedupeSettings::for_produce_timeout(config.produce_timeout, config.dedupe_ttl),
        ),
        tenants: config.tenants.clone(),
        credentials: Credentials {
            whatsapp_app_secret: config.whatsapp_app_secret.clone(),
            whatsapp_verify_token: config.whatsapp_verify_token.clone(),
            rbm_client_token: config.rbm_client_token.clone(),
        },
        now_millis: caas_runtime::clock::now_millis,
    });
    for (variable, secret) in [
        ("CAAS_WHATSAPP_APP_SECRET", &config.whatsapp_app_secret),
        ("CAAS_WHATSAPP_VERIFY_TOKEN", &config.whatsapp_verify_token),
        ("CAAS_RBM_CLIENT_TOKEN", &config.rbm_client_token),
    ] {
        if secret.expose().is_empty() {
            tracing::warn!(
                variable,
                "not set: the matching webhook requests will be refused"
            );
        }
    }
    let mut webhook_routes = http::router(Arc::clone(&state), config.max_body_bytes);
    if let Some(limiter) = ratelimit::source_limiter(
        config.rate_per_source,
        config.rate_burst_per_source,
        caas_runtime::clock::now_millis,
    ) {
        webhook_routes = webhook_routes.layer(axum::middleware::from_fn_with_state(
            limiter,
            ratelimit::limit,
        ));
    }
    let app = caas_runtime::ops::router(readiness).merge(webhook_routes);

    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} (CAAS_INGEST_ADDR)", config.http_addr))?;
    let bound = listener.local_addr()?;
    on_bound(bound);
    let (whatsapp_numbers, rbm_agents) = config.tenants.counts();
    tracing::info!(
        service = SERVICE,
        address = %bound,
        whatsapp_numbers,
        rbm_agents,
        "service started"
    );

    // In-flight webhooks finish (each is bounded by the produce timeout and the in-flight
    // wait); the grace period bounds the whole drain.
    let drain_signal = shutdown.clone();
    // With the peer's address, which the rate limit per source keys on.
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { drain_signal.cancelled().await });
    let grace = config.common.shutdown_grace;
    let drained = tokio::select! {
        outcome = server => Some(outcome),
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => None,
    };
    match drained {
        Some(outcome) => outcome.context("http server failed")?,
        None => tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "in-flight webhooks did not finish within the grace period"
        ),
    }
    // The de-dup marks of answered webhooks (each call is bounded by the store's timeout).
    state.pipeline.settled().await;
    if let Err(error) = producer.flush(std::time::Duration::from_secs(5)).await {
        tracing::warn!(error = %error, "kafka producer not fully flushed");
    }
    tracing::info!(service = SERVICE, "service stopped");
    Ok(())
}
