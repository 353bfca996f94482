//! The at-least-once consumer loop.
//!
//! One loop per consumer group member. Records are handled one at a time, so records of one
//! partition (one conversation) are never reordered; a service scales by adding members (up to
//! the partition count). For each record:
//!
//! 1. the handler is called; `Ok` stores the offset;
//! 2. [`HandlerError::Retryable`] is retried after an exponential, jittered backoff, at most
//!    [`ConsumerConfig::max_retries`] times;
//! 3. [`HandlerError::Poison`], a panic in the handler, or a retryable error that outlived its
//!    retries sends the record to `<topic>.dlq` (original key, payload and headers plus
//!    `caas.*` headers saying why), and only once the DLQ produce is acknowledged is the offset
//!    stored. A DLQ produce that fails is retried with backoff until it succeeds or the loop
//!    is shut down; the offset is never stored without it.
//!
//! **Why retries end in the DLQ rather than in an endless paused retry:** the loop cannot poll
//! while it waits on one record, and a member that does not poll within `max.poll.interval.ms`
//! is thrown out of the group. Bounded retries keep the wait under that limit (checked at
//! start-up), the partition keeps flowing behind a record that will not succeed, and the DLQ
//! keeps the record for a replay once the cause is fixed. Nothing is dropped silently: every
//! record ends as stored-after-success or stored-after-DLQ-ack, or stays unstored and is
//! redelivered.
//!
//! librdkafka auto-commits (every [`ConsumerConfig::auto_commit_interval`]) only the offsets
//! this loop stored (`enable.auto.offset.store=false`), commits them on partition revocation and
//! once more synchronously on shutdown. A crash loses at most the stored-but-uncommitted tail,
//! which is redelivered: handlers must be idempotent by event id.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{client_config, ConsumerConfig};
use crate::context::{is_nothing_to_commit, LoopContext};
use crate::dlq::{dead_letter, Failure};
use crate::error::{ClientError, HandlerError};
use crate::metrics::{metrics, outcome};
use crate::producer::Producer;
use crate::record::Record;
use crate::retry::jitter_unit;

/// Processes one record. Implementations must be idempotent (a record can be delivered more
/// than once) and classify failures: [`HandlerError::Retryable`] when the same record may
/// succeed later, [`HandlerError::Poison`] when it never will.
///
/// Implement it with `async fn handle(&self, record: &Record) -> Result<(), HandlerError>`;
/// the future must be `Send`.
pub trait Handler: Send + Sync + 'static {
    /// Handle one record.
    fn handle(&self, record: &Record) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

impl<H: Handler> Handler for Arc<H> {
    fn handle(&self, record: &Record) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self.as_ref().handle(record)
    }
}

/// Run a consumer group member until `shutdown` is cancelled.
///
/// `dlq` produces dead-lettered records; share the service's producer. On shutdown the loop
/// stops taking records, lets the handler call in progress finish (a record waiting for a
/// retry is left unstored, so it is redelivered), commits the stored offsets synchronously,
/// leaves the group and returns. It returns an error only when the consumer cannot be created
/// or hits a fatal error.
pub async fn run_consumer<H: Handler>(
    config: ConsumerConfig,
    handler: H,
    dlq: Producer,
    shutdown: CancellationToken,
) -> Result<(), ClientError> {
    let consumer = subscribed_consumer(&config)?;

    let watchers = Watchers::start(&consumer, &config);

    let worker = Worker {
        consumer: &consumer,
        handler: &handler,
        dlq: &dlq,
        config: &config,
        shutdown: &shutdown,
    };
    let outcome = worker.run().await;

    watchers.stop().await;
    commit_and_close(consumer, config.group_id.clone()).await;
    tracing::info!(group = %config.group_id, "consumer stopped");
    outcome
}

/// What measures a group member beside its loop: its consumer lag and the depth of its
/// topics' DLQs. Shared by the record and the batch loops.
pub(crate) struct Watchers {
    stop: CancellationToken,
    lag: tokio::task::JoinHandle<()>,
    dlq_depth: tokio::task::JoinHandle<()>,
}

impl Watchers {
    pub(crate) fn start(
        consumer: &Arc<StreamConsumer<LoopContext>>,
        config: &ConsumerConfig,
    ) -> Self {
        let stop = CancellationToken::new();
        let lag = tokio::spawn(crate::lag::watch(
            consumer.clone(),
            config.group_id.clone(),
            config.offset_reset,
            config.lag_refresh_interval,
            stop.clone(),
        ));
        let dlq_depth = tokio::spawn(crate::dlq_depth::watch(config.clone(), stop.clone()));
        Self {
            stop,
            lag,
            dlq_depth,
        }
    }

    /// Stop both before the member commits and leaves.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = self.lag.await;
        // Not awaited: a measurement in flight may take seconds and has nothing to flush.
        self.dlq_depth.abort();
    }
}

/// Create the group member and subscribe it; shared by the record and the batch loops.
pub(crate) fn subscribed_consumer(
    config: &ConsumerConfig,
) -> Result<Arc<StreamConsumer<LoopContext>>, ClientError> {
    let properties = config.consumer_properties()?;
    let context = LoopContext {
        group_id: config.group_id.clone(),
    };
    let consumer: StreamConsumer<LoopContext> = client_config(&properties)
        .create_with_context(context)
        .map_err(|source| ClientError::Create {
            role: "consumer",
            source,
        })?;
    let consumer = Arc::new(consumer);
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| ClientError::Subscribe {
            topics: config.topics.clone(),
            source,
        })?;
    tracing::info!(group = %config.group_id, topics = ?config.topics, "consumer started");
    Ok(consumer)
}

/// Commit what was stored, then leave the group. Both block on the network, so they run on
/// the blocking pool.
pub(crate) async fn commit_and_close(consumer: Arc<StreamConsumer<LoopContext>>, group_id: String) {
    let closing = tokio::task::spawn_blocking(move || {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!(group = %group_id, "stored offsets committed"),
            Err(error) if is_nothing_to_commit(&error) => {}
            Err(error) => {
                metrics()
                    .consumer_errors
                    .with_label_values(&[&group_id, "commit"])
                    .inc();
                tracing::warn!(
                    group = %group_id,
                    error = %error,
                    "final offset commit failed; the next owner may see some records again"
                );
            }
        }
        // Dropping the last handle closes the consumer: it leaves the group at once instead of
        // making the others wait for the session timeout.
        drop(consumer);
    });
    if let Err(error) = closing.await {
        tracing::warn!(error = %error, "closing the consumer failed");
    }
}

/// Whether the loop goes on after a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Shutdown interrupted a retry wait; the record's offset was not stored.
    Stop,
}

struct Worker<'a, H> {
    consumer: &'a StreamConsumer<LoopContext>,
    handler: &'a H,
    dlq: &'a Producer,
    config: &'a ConsumerConfig,
    shutdown: &'a CancellationToken,
}

impl<H: Handler> Worker<'_, H> {
    async fn run(&self) -> Result<(), ClientError> {
        // HAZARD (max.poll.interval.ms): `recv()` is the poll. Everything between two calls —
        // the handler and its retry delays — must fit in `max_poll_interval`, or librdkafka
        // leaves the group, the partitions move, and the offset store for the record in hand
        // fails (it is then redelivered to the new owner). The retry budget is validated
        // against half the interval; handlers must bound their own I/O with timeouts.
        loop {
            let received = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(()),
                received = self.consumer.recv() => received.map(|message| Record::from_message(&message)),
            };
            match received {
                Ok(record) => {
                    if self.process(record).await == Flow::Stop {
                        return Ok(());
                    }
                }
                Err(error) => self.on_consume_error(error).await?,
            }
        }
    }

    async fn on_consume_error(&self, error: KafkaError) -> Result<(), ClientError> {
        let fatal = self.consumer.client().fatal_error();
        on_consume_error(fatal, &self.config.group_id, self.shutdown, error).await
    }

    async fn process(&self, record: Record) -> Flow {
        let span = tracing::info_span!(
            "kafka_record",
            topic = %record.topic,
            partition = record.partition,
            offset = record.offset,
            group = %self.config.group_id,
            trace_parent = tracing::field::Empty,
        );
        if let Some(traceparent) = record.traceparent() {
            span.record("trace_parent", tracing::field::display(traceparent));
        }
        self.process_in_span(&record).instrument(span).await
    }

    async fn process_in_span(&self, record: &Record) -> Flow {
        let group = self.config.group_id.as_str();
        let labels = [record.topic.as_str(), group];
        let backoff = self.config.backoff();
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let started = Instant::now();
            let result = AssertUnwindSafe(self.handler.handle(record))
                .catch_unwind()
                .await;
            metrics()
                .handler_duration
                .with_label_values(&labels)
                .observe(started.elapsed().as_secs_f64());
            let error = match result {
                Ok(Ok(())) => {
                    metrics()
                        .records_processed
                        .with_label_values(&[&record.topic, group, outcome::OK])
                        .inc();
                    self.store(record);
                    return Flow::Continue;
                }
                Ok(Err(error)) => error,
                Err(panic) => {
                    // A panic is a bug triggered by this record: dead-letter it rather than
                    // crash-looping on it; the DLQ keeps it for a replay after the fix.
                    let reason = format!("handler panicked: {}", panic_message(panic.as_ref()));
                    tracing::error!(
                        attempts,
                        reason,
                        "handler panicked; dead-lettering the record"
                    );
                    return self.dead_letter(record, &reason, attempts, "panic").await;
                }
            };
            match error {
                HandlerError::Poison(reason) => {
                    tracing::warn!(attempts, error = %reason, "poison record; dead-lettering it");
                    return self.dead_letter(record, &reason, attempts, "poison").await;
                }
                HandlerError::Retryable(reason) => {
                    if attempts > self.config.max_retries {
                        let reason =
                            format!("retries exhausted after {attempts} attempts: {reason}");
                        tracing::warn!(attempts, error = %reason, "giving up; dead-lettering the record");
                        return self
                            .dead_letter(record, &reason, attempts, "retries_exhausted")
                            .await;
                    }
                    metrics()
                        .records_processed
                        .with_label_values(&[&record.topic, group, outcome::RETRY])
                        .inc();
                    let delay = backoff.delay(attempts, jitter_unit());
                    tracing::warn!(
                        attempts,
                        delay_ms = delay.as_millis() as u64,
                        error = %reason,
                        "retryable handler error; retrying"
                    );
                    if self.wait(delay).await == Flow::Stop {
                        tracing::info!(
                            attempts,
                            "shutdown during a retry wait; the record stays unstored and will be redelivered"
                        );
                        return Flow::Stop;
                    }
                }
            }
        }
    }

    /// Produce the record to its DLQ; store its offset only once that is acknowledged.
    async fn dead_letter(
        &self,
        record: &Record,
        reason: &str,
        attempts: u32,
        reason_class: &str,
    ) -> Flow {
        let group = self.config.group_id.as_str();
        let outbound = dead_letter(
            record,
            &Failure {
                reason,
                attempts,
                group_id: group,
                failed_at: SystemTime::now(),
            },
        );
        let backoff = self.config.backoff();
        let mut produce_attempts: u32 = 0;
        loop {
            produce_attempts += 1;
            match self.dlq.send(outbound.clone()).await {
                Ok(delivery) => {
                    metrics()
                        .dlq_records
                        .with_label_values(&[&record.topic, group, reason_class])
                        .inc();
                    metrics()
                        .records_processed
                        .with_label_values(&[&record.topic, group, outcome::DLQ])
                        .inc();
                    tracing::warn!(
                        dlq_topic = %outbound.topic,
                        dlq_partition = delivery.partition,
                        dlq_offset = delivery.offset,
                        reason_class,
                        "record dead-lettered"
                    );
                    self.store(record);
                    return Flow::Continue;
                }
                Err(error) => {
                    let delay = backoff.delay(produce_attempts, jitter_unit());
                    tracing::error!(
                        dlq_topic = %outbound.topic,
                        error = %error,
                        delay_ms = delay.as_millis() as u64,
                        "cannot produce to the dead-letter topic; the offset stays unstored, retrying"
                    );
                    if self.wait(delay).await == Flow::Stop {
                        return Flow::Stop;
                    }
                }
            }
        }
    }

    /// Mark the record done: its offset + 1 is committed by the next (auto) commit.
    fn store(&self, record: &Record) {
        if let Err(error) =
            self.consumer
                .store_offset(&record.topic, record.partition, record.offset)
        {
            // Typically the partition was revoked meanwhile (for instance after exceeding
            // max.poll.interval.ms): its new owner will process the record again.
            metrics()
                .consumer_errors
                .with_label_values(&[&self.config.group_id, "store"])
                .inc();
            tracing::warn!(
                error = %error,
                "cannot store the offset; the record will be redelivered to the partition's owner"
            );
        }
    }

    async fn wait(&self, delay: Duration) -> Flow {
        tokio::select! {
            _ = self.shutdown.cancelled() => Flow::Stop,
            _ = tokio::time::sleep(delay) => Flow::Continue,
        }
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// What both consumer loops do with a consume error: a fatal client error ends the loop; any
/// other error is counted, logged and slept on briefly (errors such as an unknown topic repeat on
/// every poll; do not spin on them).
pub(crate) async fn on_consume_error(
    fatal: Option<(rdkafka::types::RDKafkaErrorCode, String)>,
    group_id: &str,
    shutdown: &CancellationToken,
    error: KafkaError,
) -> Result<(), ClientError> {
    if let Some((code, reason)) = fatal {
        tracing::error!(group = %group_id, ?code, reason, "fatal consumer error");
        return Err(ClientError::Fatal(error));
    }
    metrics()
        .consumer_errors
        .with_label_values(&[group_id, "consume"])
        .inc();
    tracing::warn!(group = %group_id, error = %error, "kafka consume error");
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_readable() {
        let from_str = std::panic::catch_unwind(|| panic!("static text")).unwrap_err();
        assert_eq!(panic_message(from_str.as_ref()), "static text");
        let from_string = std::panic::catch_unwind(|| panic!("formatted {}", 42)).unwrap_err();
        assert_eq!(panic_message(from_string.as_ref()), "formatted 42");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
        assert_eq!(panic_message(other.as_ref()), "a non-string panic payload");
    }
}
