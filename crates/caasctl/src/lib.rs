//! The library behind `caasctl`: the topic catalogue and everything generated or applied from
//! it, as functions tests call directly (no subprocess).
//!
//! - [`catalogue`]: load and validate `topics/catalogue.yaml` and its value schemas.
//! - [`topics`]: `topics apply` (a pure plan, then rdkafka's AdminClient) and `topics docs`.
//! - [`docs`]: render `topics/README.md` and `topics/asyncapi.yaml`; detect stale copies.
//! - [`schemas`]: `schemas apply` and `schemas check` against git history or the registry.
//! - [`compat`]: the local FULL compatibility check with explanations (pure).
//! - [`dlq`]: `dlq list` and `dlq replay` (exactly-once moves back to the original topic).
//! - [`registry`]: the Confluent-compatible registry API calls we need.
//! - [`kafka`]: the Kafka client settings every command shares (bootstrap, authentication).

pub mod catalogue;
pub mod compat;
pub mod dlq;
pub mod docs;
pub mod kafka;
pub mod registry;
pub mod schemas;
pub mod topics;
