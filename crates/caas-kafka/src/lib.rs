//! Kafka plumbing shared by every CAAS service: one way to produce and one way to consume.
//!
//! - [`Producer`]: idempotent, `acks=all`, lz4, small linger. [`Producer::send`] resolves only
//!   when the broker acknowledged the record, and fails within [`KafkaConfig::send_timeout`]
//!   otherwise ([`ProduceError::is_timeout`] → answer 503). [`Producer::send_all`] sends a batch
//!   concurrently; [`Producer::flush`] drains on shutdown.
//! - [`run_consumer`]: an at-least-once consumer group member. Offsets are stored only after the
//!   [`Handler`] succeeded or the record was acknowledged by its dead-letter topic
//!   (`<topic>.dlq`, see [`dlq`]); retryable errors are retried with jittered exponential
//!   backoff; cooperative-sticky rebalancing; graceful shutdown on a `CancellationToken` that
//!   commits. The module docs of [`consumer`] state the guarantees and the choices behind them.
//! - [`run_batch_consumer`]: the same guarantees for a [`BatchHandler`] that writes in bulk:
//!   up to [`BatchConfig::max_records`] records or [`BatchConfig::max_wait`] per call, one
//!   [`RecordOutcome`] per record (poison ones go to the DLQ), then the offsets of the whole
//!   batch are stored; see [`batch`].
//! - [`Record`] is an owned copy of a consumed message, so handler logic is tested by building
//!   one by hand; [`OutboundRecord`] is what is produced; [`TraceParent`] carries W3C trace
//!   context in the `traceparent` header.
//! - [`metrics`]: Prometheus counters, histograms and the consumer-lag gauge, in the default
//!   registry; [`dlq_depth`] reports how many dead letters still wait for a replay.
//!
//! Topic names come from the catalogue (`caas-events`); topics are created by `caasctl`, not
//! here.

pub mod batch;
pub mod config;
pub mod consumer;
mod context;
pub mod dlq;
pub mod dlq_depth;
pub mod error;
pub mod lag;
pub mod metrics;
pub mod producer;
pub mod record;
pub mod retry;
pub mod traceparent;

pub use batch::{run_batch_consumer, BatchConfig, BatchHandler, ExhaustedRetries, RecordOutcome};
pub use config::{ConsumerConfig, KafkaConfig, OffsetReset};
pub use consumer::{run_consumer, Handler};
pub use dlq::{dlq_topic, DLQ_SUFFIX};
pub use error::{ClientError, HandlerError, ProduceError};
pub use producer::{Delivery, PendingDelivery, Producer};
pub use record::{OutboundRecord, Record};
pub use retry::Backoff;
pub use tokio_util::sync::CancellationToken;
pub use traceparent::{TraceParent, TraceParentError, TRACEPARENT_HEADER};
