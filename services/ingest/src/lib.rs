//! Webhook receiver: verifies WhatsApp and RCS webhooks, normalises them to Avro events and
//! produces them to Kafka, answering 200 only once Kafka acknowledged.
//!
//! - Pure core, no I/O (fuzzed, benched, unit-tested with provider payloads):
//!   [`signature`] (HMACs over the exact bytes, constant-time), [`whatsapp`] and [`rcs`]
//!   (parse and map to events), [`tenants`] (provider endpoint → tenant), [`timestamp`],
//!   [`events`] (what a webhook becomes).
//! - Edge (feature `server`, on by default): [`http`] (axum handlers), [`pipeline`]
//!   (de-duplicate, produce, remember; the exactly-once argument is in its docs), [`dedupe`]
//!   (Redis records), [`publish`] (Kafka and the schema registry), [`metrics`], [`Config`].
//!
//! `run` is the whole service: `main` only reads the configuration and hands it over with the
//! shutdown token, so tests start the very same service in-process.

pub mod error;
pub mod events;
pub mod rcs;
pub mod signature;
pub mod tenants;
pub mod timestamp;
pub mod whatsapp;

#[cfg(feature = "server")]
mod config;
#[cfg(feature = "server")]
pub mod dedupe;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod pipeline;
#[cfg(feature = "server")]
pub mod publish;
#[cfg(feature = "server")]
pub mod ratelimit;
#[cfg(feature = "server")]
mod service;

#[cfg(feature = "server")]
pub use config::{Config, DEFAULT_MAX_BODY_BYTES};
#[cfg(feature = "server")]
pub use service::{run, DEPENDENCIES};

pub use error::ParseError;
pub use events::{Batch, IngestEvent, SchemaIds, Stamp};
pub use tenants::Tenants;

/// The service's name in logs and metrics.
pub const SERVICE: &str = "ingest";
