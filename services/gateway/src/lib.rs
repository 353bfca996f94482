//! Realtime gateway: socket.io for operators (JWT), REST API and dashboard; fans Kafka events
//! out to rooms through the Redis adapter and turns operator actions into commands.
//!
//! - Pure core: [`auth`] (HS256 tokens), [`domain`] (rooms, what an event emits, what an
//!   operator action produces, the JSON views).
//! - Edges: [`consumer`] (the one consumer group of all instances: decode, wait for the
//!   logger's `seq`, emit), [`seq_wait`] (waiting for that `seq`), [`announced`] (the
//!   logger's announcements of the `seq`s it committed, heard on Redis), [`realtime`]
//!   (socket.io handlers and acks), [`http`] (REST API, OpenAPI, dashboard files), [`store`]
//!   (the logger's MongoDB documents), [`adapter`] (a reconnecting Redis driver for the
//!   socket.io adapter), [`progress`] (how far the logger
//!   got), [`explorer`] (the admins' event search and live tail), [`cors`] (which browser
//!   origins may call the REST API and open sockets), [`metrics`], [`Config`].
//!
//! `run` is the whole service: `main` only reads the configuration and hands it over with the
//! shutdown token, so tests start the very same service in-process. `EVENTS.md` documents the
//! socket.io contract, `openapi.yaml` the REST API.

pub mod adapter;
pub mod announced;
pub mod api_limit;
pub mod auth;
mod config;
pub mod consumer;
pub mod cors;
pub mod detach;
pub mod domain;
pub mod explorer;
pub mod http;
pub mod metrics;
pub mod progress;
pub mod realtime;
pub mod seq_wait;
mod service;
pub mod state;
pub mod store;

pub use config::{with_resp3, Config};
pub use service::{run, DEPENDENCIES};

/// The service's name in logs and metrics.
pub const SERVICE: &str = "gateway";
