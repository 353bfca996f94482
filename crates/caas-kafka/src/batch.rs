//! The at-least-once batch consumer loop, for handlers that write in bulk.
//!
//! Same guarantees as [`crate::run_consumer`], one batch at a time instead of one record:
//!
//! 1. the loop waits for a record, then keeps polling until it holds
//!    [`BatchConfig::max_records`] records or [`BatchConfig::max_wait`] has passed since the
//!    first one (or shutdown was requested);
//! 2. the [`BatchHandler`] gets the whole batch, in poll order (so records of one partition
//!    stay in offset order), and answers one [`RecordOutcome`] per record: done, or poison with
//!    a reason;
//! 3. poison records are produced to `<topic>.dlq` (headers as in [`crate::dlq`]); once every
//!    one of them is acknowledged, the offsets of the whole batch are stored (the highest
//!    offset per partition);
//! 4. a [`HandlerError::Retryable`] for the batch retries the **whole batch** after a jittered
//!    exponential backoff, at most [`crate::ConsumerConfig::max_retries`] times; then
//!    [`BatchConfig::on_retries_exhausted`] decides: stop the loop without storing anything
//!    ([`ExhaustedRetries::Stop`], the caller restarts it later and the records come again), or
//!    dead-letter the batch ([`ExhaustedRetries::DeadLetter`]);
//! 5. a panic in the handler, a [`HandlerError::Poison`] for the batch as a whole, or a number
//!    of outcomes that does not match the number of records is a handler bug triggered by some
//!    record of the batch: the loop **isolates** it by handing the records over one at a time,
//!    so only the culprit ends in the DLQ.
//!
//! Handlers must be idempotent: a crash after the handler's writes but before the offsets were
//! committed redelivers the batch (possibly cut differently), and a batch is retried whole.
//!
//! HAZARD (max.poll.interval.ms): the loop does not poll while the handler runs or waits for a
//! retry, so `max_wait` plus the handler's time plus every retry delay must stay below
//! `max.poll.interval.ms`; the configured budget is checked against half of it at start-up.
//!
//! HAZARD (rebalance): a partition can be revoked while its records sit in the batch in hand
//! (revocations happen inside a poll). Its stored offsets are committed on revocation, the new
//! owner starts after them and handles those records too, and this member's later offset
//! store for the partition fails harmlessly. Both members may then write the same records at
//! the same time: idempotent handlers must also be safe under that overlap.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::ConsumerConfig;
use crate::consumer::{commit_and_close, panic_message, subscribed_consumer, Watchers};
use crate::context::LoopContext;
use crate::dlq::{dead_letter, Failure};
use crate::error::{ClientError, HandlerError};
use crate::metrics::{metrics, outcome};
use crate::producer::Producer;
use crate::record::{OutboundRecord, Record};
use crate::retry::jitter_unit;

/// What the handler says about one record of a batch it handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Its side effects are durable; its offset may be stored.
    Done,
    /// The record itself is bad (undecodable, violates the contract): it goes to `<topic>.dlq`
    /// with this reason, and the rest of the batch is unaffected.
    Poison(String),
}

impl RecordOutcome {
    /// A poison outcome from anything printable.
    pub fn poison(reason: impl std::fmt::Display) -> Self {
        Self::Poison(reason.to_string())
    }
}

/// Processes batches of records. Implementations must be idempotent (a batch can be delivered
/// more than once, cut differently) and answer exactly one outcome per record, in order.
///
/// Return `Err(`[`HandlerError::Retryable`]`)` when nothing of the batch could be made durable
/// for a transient reason (a store is down, a write conflict): the whole batch is retried.
///
/// Implement it with `async fn handle_batch(&self, records: &[Record]) -> Result<Vec<RecordOutcome>, HandlerError>`;
/// the future must be `Send`.
pub trait BatchHandler: Send + Sync + 'static {
    /// Handle one batch.
    fn handle_batch(
        &self,
        records: &[Record],
    ) -> impl Future<Output = Result<Vec<RecordOutcome>, HandlerError>> + Send;
}

impl<H: BatchHandler> BatchHandler for Arc<H> {
    fn handle_batch(
        &self,
        records: &[Record],
    ) -> impl Future<Output = Result<Vec<RecordOutcome>, HandlerError>> + Send {
        self.as_ref().handle_batch(records)
    }
}

/// What happens to a batch that still fails with retryable errors after every retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExhaustedRetries {
    /// Stop the loop with [`ClientError::RetriesExhausted`], storing nothing: the records are
    /// delivered again to whoever consumes the partitions next (typically this service after it
    /// restarted its loop). Right when the failure is the store, not the records: a database
    /// outage must not move good records to the DLQ.
    Stop,
    /// Dead-letter every record of the batch with the last reason and move on, as the record
    /// loop does.
    DeadLetter,
}

/// How records are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// The most records handed to the handler at once.
    pub max_records: usize,
    /// How long to keep collecting after the first record of a batch arrived.
    pub max_wait: Duration,
    /// What to do with a batch that outlived its retries.
    pub on_retries_exhausted: ExhaustedRetries,
}

impl BatchConfig {
    /// Up to `max_records` records or `max_wait`; stop when retries are exhausted.
    pub fn new(max_records: usize, max_wait: Duration) -> Self {
        Self {
            max_records,
            max_wait,
            on_retries_exhausted: ExhaustedRetries::Stop,
        }
    }

    /// Check the settings against the consumer's; the error names the field.
    pub fn validate(&self, consumer: &ConsumerConfig) -> Result<(), ClientError> {
        if self.max_records == 0 {
            return Err(ClientError::InvalidConfig {
                field: "max_records",
                reason: "must be at least 1".to_string(),
            });
        }
        let budget = self.max_wait + consumer.backoff().worst_case_total(consumer.max_retries);
        if budget >= consumer.max_poll_interval / 2 {
            return Err(ClientError::InvalidConfig {
                field: "max_wait",
                reason: format!(
                    "max_wait ({} ms) plus {} retries (up to {} ms) is not under half of \
                     max_poll_interval ({} ms); the member would be thrown out of its group; \
                     lower max_wait, max_retries or backoff_max",
                    self.max_wait.as_millis(),
                    consumer.max_retries,
                    consumer
                        .backoff()
                        .worst_case_total(consumer.max_retries)
                        .as_millis(),
                    consumer.max_poll_interval.as_millis()
                ),
            });
        }
        Ok(())
    }
}

/// Run a consumer group member that hands records to `handler` in batches, until `shutdown`
/// is cancelled (see the module docs for the guarantees).
///
/// On shutdown the loop stops collecting, handles the batch in hand (a batch waiting for a
/// retry is left unstored), commits the stored offsets, leaves the group and returns `Ok`.
/// Errors: the consumer cannot be created, a fatal Kafka error, or
/// [`ClientError::RetriesExhausted`] with [`ExhaustedRetries::Stop`].
pub async fn run_batch_consumer<H: BatchHandler>(
    config: ConsumerConfig,
    batch: BatchConfig,
    handler: H,
    dlq: Producer,
    shutdown: CancellationToken,
) -> Result<(), ClientError> {
    batch.validate(&config)?;
    let consumer = subscribed_consumer(&config)?;

    let watchers = Watchers::start(&consumer, &config);

    let worker = BatchWorker {
        consumer: &consumer,
        handler: &handler,
        dlq: &dlq,
        config: &config,
        batch: &batch,
        shutdown: &shutdown,
    };
    let outcome = worker.run().await;

    watchers.stop().await;
    commit_and_close(consumer, config.group_id.clone()).await;
    tracing::info!(group = %config.group_id, "batch consumer stopped");
    outcome
}

/// Whether the loop goes on after a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Shutdown interrupted a wait; the batch's offsets were not stored.
    Stop,
    /// Retries exhausted with [`ExhaustedRetries::Stop`]: the batch size, attempts and the
    /// last reason.
    Exhausted {
        records: usize,
        attempts: u32,
        reason: String,
    },
}

/// How the attempts at one batch ended.
enum Attempted {
    /// The handler answered an outcome per record.
    Outcomes(Vec<RecordOutcome>, u32),
    /// A handler bug triggered by some record (panic, poison for the batch, wrong outcome
    /// count): reason, attempts, metric reason class.
    Bug(String, u32, &'static str),
    /// Retryable errors outlived the retries.
    Exhausted(String, u32),
    /// Shutdown during a retry wait.
    Stop,
}

struct BatchWorker<'a, H> {
    consumer: &'a StreamConsumer<LoopContext>,
    handler: &'a H,
    dlq: &'a Producer,
    config: &'a ConsumerConfig,
    batch: &'a BatchConfig,
    shutdown: &'a CancellationToken,
}

impl<H: BatchHandler> BatchWorker<'_, H> {
    async fn run(&self) -> Result<(), ClientError> {
        loop {
            let first = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(()),
                received = self.consumer.recv() => received.map(|message| Record::from_message(&message)),
            };
            let first = match first {
                Ok(record) => record,
                Err(error) => {
                    self.on_consume_error(error).await?;
                    continue;
                }
            };
            let records = self.collect(first).await?;
            match self.process(records).await {
                Flow::Continue => {}
                Flow::Stop => return Ok(()),
                Flow::Exhausted {
                    records,
                    attempts,
                    reason,
                } => {
                    return Err(ClientError::RetriesExhausted {
                        group: self.config.group_id.clone(),
                        records,
                        attempts,
                        reason,
                    })
                }
            }
        }
    }

    /// Keep polling until the batch is full, `max_wait` passed, or shutdown was requested.
    async fn collect(&self, first: Record) -> Result<Vec<Record>, ClientError> {
        let mut records = Vec::with_capacity(self.batch.max_records.min(4096));
        records.push(first);
        let deadline = tokio::time::Instant::now() + self.batch.max_wait;
        while records.len() < self.batch.max_records {
            let received = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(deadline) => break,
                received = self.consumer.recv() => received.map(|message| Record::from_message(&message)),
            };
            match received {
                Ok(record) => records.push(record),
                Err(error) => self.on_consume_error(error).await?,
            }
        }
        Ok(records)
    }

    async fn on_consume_error(&self, error: KafkaError) -> Result<(), ClientError> {
        let fatal = self.consumer.client().fatal_error();
        crate::consumer::on_consume_error(fatal, &self.config.group_id, self.shutdown, error).await
    }

    async fn process(&self, records: Vec<Record>) -> Flow {
        let span = tracing::info_span!(
            "kafka_batch",
            group = %self.config.group_id,
            records = records.len(),
        );
        self.process_in_span(records).instrument(span).await
    }

    async fn process_in_span(&self, records: Vec<Record>) -> Flow {
        metrics()
            .batch_records
            .with_label_values(&[&self.config.group_id])
            .observe(records.len() as f64);
        match self.attempt(&records).await {
            Attempted::Outcomes(outcomes, attempts) => {
                self.finish(&records, outcomes, attempts).await
            }
            Attempted::Stop => Flow::Stop,
            Attempted::Exhausted(reason, attempts) => {
                self.on_exhausted(&records, reason, attempts).await
            }
            Attempted::Bug(reason, attempts, class) if records.len() == 1 => {
                tracing::error!(
                    attempts,
                    reason,
                    "handler failed on a single record; dead-lettering it"
                );
                let failed = vec![(&records[0], reason, class)];
                self.dead_letter_then_store(&records, failed, attempts)
                    .await
            }
            Attempted::Bug(reason, _, _) => {
                tracing::error!(
                    reason,
                    "handler failed on the batch as a whole; handling its records one at a time to find the culprit"
                );
                for record in records {
                    match self.process_single(record).await {
                        Flow::Continue => {}
                        other => return other,
                    }
                }
                Flow::Continue
            }
        }
    }

    /// One record as a batch of one: no further isolation is possible.
    async fn process_single(&self, record: Record) -> Flow {
        let records = vec![record];
        match self.attempt(&records).await {
            Attempted::Outcomes(outcomes, attempts) => {
                self.finish(&records, outcomes, attempts).await
            }
            Attempted::Stop => Flow::Stop,
            Attempted::Exhausted(reason, attempts) => {
                self.on_exhausted(&records, reason, attempts).await
            }
            Attempted::Bug(reason, attempts, class) => {
                tracing::error!(
                    attempts,
                    reason,
                    "handler failed on a single record; dead-lettering it"
                );
                let failed = vec![(&records[0], reason, class)];
                self.dead_letter_then_store(&records, failed, attempts)
                    .await
            }
        }
    }

    /// Call the handler, retrying retryable errors with backoff.
    async fn attempt(&self, records: &[Record]) -> Attempted {
        let group = self.config.group_id.as_str();
        let backoff = self.config.backoff();
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let started = Instant::now();
            let result = AssertUnwindSafe(self.handler.handle_batch(records))
                .catch_unwind()
                .await;
            metrics()
                .batch_duration
                .with_label_values(&[group])
                .observe(started.elapsed().as_secs_f64());
            let reason = match result {
                Ok(Ok(outcomes)) if outcomes.len() == records.len() => {
                    return Attempted::Outcomes(outcomes, attempts)
                }
                Ok(Ok(outcomes)) => {
                    return Attempted::Bug(
                        format!(
                            "handler returned {} outcomes for {} records",
                            outcomes.len(),
                            records.len()
                        ),
                        attempts,
                        "panic",
                    )
                }
                Err(panic) => {
                    return Attempted::Bug(
                        format!("handler panicked: {}", panic_message(panic.as_ref())),
                        attempts,
                        "panic",
                    )
                }
                Ok(Err(HandlerError::Poison(reason))) => {
                    return Attempted::Bug(reason, attempts, "poison")
                }
                Ok(Err(HandlerError::Retryable(reason))) => reason,
            };
            if attempts > self.config.max_retries {
                return Attempted::Exhausted(reason, attempts);
            }
            for record in records {
                metrics()
                    .records_processed
                    .with_label_values(&[&record.topic, group, outcome::RETRY])
                    .inc();
            }
            let delay = backoff.delay(attempts, jitter_unit());
            tracing::warn!(
                attempts,
                records = records.len(),
                delay_ms = delay.as_millis() as u64,
                error = %reason,
                "retryable batch error; retrying the whole batch"
            );
            if self.wait(delay).await == Flow::Stop {
                tracing::info!(
                    attempts,
                    "shutdown during a retry wait; the batch stays unstored and will be redelivered"
                );
                return Attempted::Stop;
            }
        }
    }

    async fn on_exhausted(&self, records: &[Record], reason: String, attempts: u32) -> Flow {
        match self.batch.on_retries_exhausted {
            ExhaustedRetries::Stop => {
                tracing::error!(
                    attempts,
                    records = records.len(),
                    error = %reason,
                    "retries exhausted; stopping the consumer without storing the batch"
                );
                Flow::Exhausted {
                    records: records.len(),
                    attempts,
                    reason,
                }
            }
            ExhaustedRetries::DeadLetter => {
                let reason = format!("retries exhausted after {attempts} attempts: {reason}");
                tracing::warn!(attempts, error = %reason, "giving up; dead-lettering the batch");
                let failed = records
                    .iter()
                    .map(|record| (record, reason.clone(), "retries_exhausted"))
                    .collect();
                self.dead_letter_then_store(records, failed, attempts).await
            }
        }
    }

    /// Dead-letter the poison records, then store the batch.
    async fn finish(
        &self,
        records: &[Record],
        outcomes: Vec<RecordOutcome>,
        attempts: u32,
    ) -> Flow {
        let failed: Vec<(&Record, String, &'static str)> = records
            .iter()
            .zip(outcomes)
            .filter_map(|(record, outcome)| match outcome {
                RecordOutcome::Done => None,
                RecordOutcome::Poison(reason) => Some((record, reason, "poison")),
            })
            .collect();
        for (record, reason, _) in &failed {
            tracing::warn!(
                topic = %record.topic,
                partition = record.partition,
                offset = record.offset,
                error = %reason,
                "poison record in batch; dead-lettering it"
            );
        }
        self.dead_letter_then_store(records, failed, attempts).await
    }

    /// Produce every failed record to its DLQ, retrying until all are acknowledged (or
    /// shutdown: then nothing is stored), then store the offsets of the whole batch.
    async fn dead_letter_then_store(
        &self,
        records: &[Record],
        failed: Vec<(&Record, String, &'static str)>,
        attempts: u32,
    ) -> Flow {
        let group = self.config.group_id.as_str();
        let failed_at = SystemTime::now();
        let mut pending: Vec<(&Record, OutboundRecord, &'static str)> = failed
            .iter()
            .map(|(record, reason, class)| {
                let outbound = dead_letter(
                    record,
                    &Failure {
                        reason,
                        attempts,
                        group_id: group,
                        failed_at,
                    },
                );
                (*record, outbound, *class)
            })
            .collect();
        let backoff = self.config.backoff();
        let mut produce_attempts: u32 = 0;
        while !pending.is_empty() {
            produce_attempts += 1;
            let outbound: Vec<OutboundRecord> = pending
                .iter()
                .map(|(_, outbound, _)| outbound.clone())
                .collect();
            let results = self.dlq.send_all(outbound).await;
            let mut still_pending = Vec::new();
            for ((record, outbound, class), result) in pending.into_iter().zip(results) {
                match result {
                    Ok(delivery) => {
                        metrics()
                            .dlq_records
                            .with_label_values(&[&record.topic, group, class])
                            .inc();
                        tracing::warn!(
                            dlq_topic = %outbound.topic,
                            dlq_partition = delivery.partition,
                            dlq_offset = delivery.offset,
                            reason_class = class,
                            "record dead-lettered"
                        );
                    }
                    Err(error) => {
                        tracing::error!(
                            dlq_topic = %outbound.topic,
                            error = %error,
                            "cannot produce to the dead-letter topic; the batch stays unstored, retrying"
                        );
                        still_pending.push((record, outbound, class));
                    }
                }
            }
            pending = still_pending;
            if !pending.is_empty() {
                let delay = backoff.delay(produce_attempts, jitter_unit());
                if self.wait(delay).await == Flow::Stop {
                    return Flow::Stop;
                }
            }
        }
        let dead_lettered: Vec<(&str, i32, i64)> = failed
            .iter()
            .map(|(record, _, _)| (record.topic.as_str(), record.partition, record.offset))
            .collect();
        for record in records {
            let label = if dead_lettered.contains(&(
                record.topic.as_str(),
                record.partition,
                record.offset,
            )) {
                outcome::DLQ
            } else {
                outcome::OK
            };
            metrics()
                .records_processed
                .with_label_values(&[&record.topic, group, label])
                .inc();
        }
        self.store(records);
        Flow::Continue
    }

    /// Store the highest offset of each partition in the batch; the next (auto) commit
    /// commits it + 1.
    fn store(&self, records: &[Record]) {
        let mut highest: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for record in records {
            let entry = highest
                .entry((record.topic.as_str(), record.partition))
                .or_insert(record.offset);
            *entry = (*entry).max(record.offset);
        }
        for ((topic, partition), offset) in highest {
            if let Err(error) = self.consumer.store_offset(topic, partition, offset) {
                // Typically the partition was revoked while the batch was in hand: its new
                // owner handles those records again.
                metrics()
                    .consumer_errors
                    .with_label_values(&[&self.config.group_id, "store"])
                    .inc();
                tracing::warn!(
                    topic,
                    partition,
                    offset,
                    error = %error,
                    "cannot store the offset; the records will be redelivered to the partition's owner"
                );
            }
        }
    }

    async fn wait(&self, delay: Duration) -> Flow {
        tokio::select! {
            _ = self.shutdown.cancelled() => Flow::Stop,
            _ = tokio::time::sleep(delay) => Flow::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KafkaConfig;

    #[test]
    fn a_batch_wait_plus_retries_longer_than_the_poll_interval_is_refused() {
        let mut consumer = ConsumerConfig::new(KafkaConfig::new("b:9092"), "g", ["t"]);
        consumer.max_poll_interval = Duration::from_secs(10);
        consumer.max_retries = 1;
        consumer.backoff_base = Duration::from_millis(100);
        let batch = BatchConfig::new(100, Duration::from_secs(6));
        let message = batch.validate(&consumer).unwrap_err().to_string();
        assert!(message.contains("max_wait"), "{message}");
        BatchConfig::new(100, Duration::from_millis(100))
            .validate(&consumer)
            .unwrap();
    }

    #[test]
    fn an_empty_batch_size_is_refused() {
        let consumer = ConsumerConfig::new(KafkaConfig::new("b:9092"), "g", ["t"]);
        let message = BatchConfig::new(0, Duration::from_millis(10))
            .validate(&consumer)
            .unwrap_err()
            .to_string();
        assert!(message.contains("max_records"), "{message}");
    }
}
