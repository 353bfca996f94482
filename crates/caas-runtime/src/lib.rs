//! The runtime every CAAS process shares.
//!
//! - [`clock`]: epoch milliseconds, the one wall clock.
//! - [`config`]: typed configuration read from `CAAS_*` environment variables, with defaults that
//!   fit the local stack and start-up errors that name the offending variable.
//! - [`telemetry`]: JSON logs through `tracing`.
//! - [`jwt`]: operator tokens (HS256 JWT): verify and sign.
//! - [`ops`]: the operations HTTP surface (`/health`, `/ready`, `/metrics`) with readiness checks.
//! - [`probe`]: real readiness probes for Kafka, the schema registry, MongoDB and Redis.
//! - [`shutdown`]: a cancellation token fired by SIGINT or SIGTERM, handed to each service's `run`.

pub mod clock;
pub mod config;
pub mod jwt;
pub mod ops;
pub mod probe;
pub mod ratelimit;
pub mod shutdown;
pub mod telemetry;

pub use config::{CommonConfig, ConfigError, Env, KafkaProtocol, KafkaSecurity, Secret};
pub use ops::{OpsServer, Readiness};
pub use shutdown::shutdown_token;
