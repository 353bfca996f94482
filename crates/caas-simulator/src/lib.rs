//! The provider simulator: a fake WhatsApp Cloud API and RBM API, so CAAS runs end to end
//! offline (local runs, tests, load tests).
//!
//! - Send endpoints with the providers' validation and answers: [`whatsapp`]
//!   (`POST /{version}/{phone_number_id}/messages`) and [`rbm`]
//!   (`POST /v1/phones/{msisdn}/agentMessages?messageId=&agentId=`).
//! - Every request is recorded ([`records`]) and can be queried with `GET /_sim/requests`.
//! - Accepted messages get signed status webhooks back (sent → delivered → read, or failed)
//!   with realistic, jittered delays ([`webhooks`]).
//! - Faults per run ([`knobs`]): latency, server errors, rate-limit answers, a throughput limit,
//!   numbers that always fail; changed at run time with `PUT /_sim/knobs`.
//! - It plays customers ([`customers`]): signed inbound webhooks at a given rate, through
//!   `POST /_sim/customers/send` or the `customers` subcommand.
//!
//! `run` is the whole server, so tests start it in-process on port 0.

pub mod clock;
mod config;
pub mod customers;
mod http;
pub mod knobs;
pub mod rbm;
pub mod records;
pub mod webhooks;
pub mod whatsapp;

use std::net::SocketAddr;
use std::sync::Arc;

use caas_runtime::shutdown::CancellationToken;
use caas_runtime::{OpsServer, Readiness};

pub use config::Config;
pub use http::Simulator;

/// The simulator's name in logs.
pub const SERVICE: &str = "simulator";

/// The webhook dispatcher a configuration describes.
pub fn dispatcher(
    config: &Config,
    log: Arc<records::Log<records::WebhookRecord>>,
    shutdown: CancellationToken,
) -> webhooks::Dispatcher {
    webhooks::Dispatcher::new(
        config.whatsapp_webhook_url.clone(),
        config.rcs_webhook_url.clone(),
        config.whatsapp_app_secret.clone(),
        config.rbm_client_token.clone(),
        config.webhook_retries,
        log,
        shutdown,
    )
}

/// Serve until `shutdown` is cancelled. `on_bound` learns the address (port 0 in tests).
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let webhook_log = Arc::new(records::Log::new(config.max_records));
    let dispatcher = dispatcher(&config, webhook_log.clone(), shutdown.clone());
    let simulator = Arc::new(Simulator::new(
        config.knobs.clone(),
        config.max_records,
        dispatcher,
        webhook_log,
    ));
    let router = http::router(simulator).merge(caas_runtime::ops::router(Readiness::new(SERVICE)));
    let (bound, server) = OpsServer::serve(config.http_addr, router, shutdown.clone()).await?;
    on_bound(bound);
    tracing::info!(
        address = %bound,
        whatsapp_webhooks = config.whatsapp_webhook_url.as_deref().unwrap_or("off"),
        rcs_webhooks = config.rcs_webhook_url.as_deref().unwrap_or("off"),
        "provider simulator started"
    );
    server.await??;
    tracing::info!("provider simulator stopped");
    Ok(())
}
