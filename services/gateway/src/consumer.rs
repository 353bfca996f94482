//! The Kafka side of the fan-out: every gateway instance is a member of one consumer group
//! (`CAAS_GATEWAY_CONSUMER_GROUP`), so each record is handled by exactly one instance, which
//! emits it through the Redis adapter to the matching sockets of every instance.
//!
//! Records come in batches (caas-kafka's batch loop: up to [`BATCH_MAX_RECORDS`], collected
//! for at most [`BATCH_MAX_WAIT`] after the first). For each batch: decode every record
//! (undecodable → DLQ, as everywhere), look up the conversation `seq` the logger assigned to
//! each event — one MongoDB query for the whole batch, repeated for the ones still missing —
//! decide the emits ([`crate::domain::fanout`]) and emit them in batch order, which keeps the
//! order of every partition and so of every conversation.
//!
//! **Waiting for `seq`.** The logger consumes the same topics in its own group and is the only
//! authority for a conversation's sequence. The gateway re-reads the logger's `events`
//! documents with backoff (20 ms doubling to 250 ms) for at most `CAAS_GATEWAY_SEQ_WAIT_MS`
//! (3 s) per batch. An event the logger has not stored by then is emitted with `"seq": null`
//! rather than stalling the partition: clients apply it and fetch the thread by `after_seq` on
//! their next sequenced event or reconnect. Some events never get a `seq` although the logger
//! is healthy (it processed and dropped them, e.g. an erased customer's): once the logger's
//! consumer group committed past the record ([`crate::progress`]), the wait for it ends at once.
//! After three batches in a row that ran out of time (the logger is down or far behind), the
//! gateway waits a tenth of that until a lookup succeeds again, so a missing logger costs
//! operators the `seq`, never their live updates.
//!
//! **Emitting.** An emit publishes to Redis first, then delivers locally. If Redis does not
//! take it (after two quick retries) the event is delivered to this instance's sockets only
//! and counted as `scope="local"`; operators on other instances catch up through the REST API.
//! An emit never fails a record: the durable history is the logger's, the fan-out is a
//! notification of it. Only a server that is shutting down fails the batch (retryable), so
//! its records are redelivered to the instance that takes over.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use caas_events::model::{
    CampaignEvent, ConversationEvent, InboundMessage, InboundStatus, OutboundCommand,
    OutboundResult, PresenceUpdate,
};
use caas_events::{topics, Codec, DecodeError, Event};
use caas_kafka::{BatchHandler, HandlerError, Record, RecordOutcome};
use socketioxide::BroadcastError;

use crate::domain::fanout::{self, Emission, Enrichment, Incoming};
use crate::metrics::metrics;
use crate::progress::LoggerProgress;
use crate::realtime::Io;
use crate::store::Store;

/// The most records handled at once.
pub const BATCH_MAX_RECORDS: usize = 500;

/// How long a batch keeps collecting after its first record: the latency it adds.
pub const BATCH_MAX_WAIT: Duration = Duration::from_millis(10);

/// Batches in a row whose wait ran out before the gateway waits less for `seq`.
const MISSES_BEFORE_DEGRADED: u32 = 3;

/// How long a lookup waits before asking whether the logger already passed a record.
const PROGRESS_CHECK_AFTER: Duration = Duration::from_millis(200);

/// The consumer group's batch handler.
pub struct FanoutHandler {
    io: Io,
    codec: Codec,
    store: Store,
    progress: LoggerProgress,
    seq_wait: Duration,
    /// Consecutive batches whose `seq` wait ran out.
    misses: AtomicU32,
}

/// What the logger stored for the events of a batch: event id → (seq, changed message).
type Sequenced = HashMap<String, (i64, Option<String>)>;

impl FanoutHandler {
    /// A handler emitting through `io`.
    pub fn new(
        io: Io,
        codec: Codec,
        store: Store,
        progress: LoggerProgress,
        seq_wait: Duration,
    ) -> Self {
        Self {
            io,
            codec,
            store,
            progress,
            seq_wait,
            misses: AtomicU32::new(0),
        }
    }

    /// The `seq` of every event of the batch that has one, waiting (bounded) for the logger.
    async fn wait_for_seqs(&self, waiting: Vec<(&Record, &Incoming)>) -> Sequenced {
        let mut found = Sequenced::new();
        if waiting.is_empty() {
            return found;
        }
        let budget = if self.misses.load(Ordering::Relaxed) >= MISSES_BEFORE_DEGRADED {
            self.seq_wait / 10
        } else {
            self.seq_wait
        };
        let started = Instant::now();
        let deadline = started + budget;
        let mut delay = Duration::from_millis(20);
        let mut skipped: HashSet<&str> = HashSet::new();
        let mut failed = false;
        loop {
            let missing: Vec<&str> = waiting
                .iter()
                .map(|(_, incoming)| incoming.event_id())
                .filter(|id| !found.contains_key(*id) && !skipped.contains(id))
                .collect();
            if missing.is_empty() {
                break;
            }
            match self.store.event_seqs(&missing).await {
                Ok(stored) => found.extend(stored),
                Err(error) => {
                    if !failed {
                        tracing::warn!(error = %error, "cannot look up the events' seq");
                    }
                    failed = true;
                }
            }
            if started.elapsed() >= PROGRESS_CHECK_AFTER {
                for (record, incoming) in &waiting {
                    let id = incoming.event_id();
                    if found.contains_key(id) || skipped.contains(id) {
                        continue;
                    }
                    if self
                        .progress
                        .passed(&record.topic, record.partition, record.offset)
                        .await
                    {
                        // The logger is done with this record and stored no seq: none will
                        // come.
                        skipped.insert(id);
                    }
                }
            }
            let still_missing = waiting
                .iter()
                .filter(|(_, incoming)| {
                    !found.contains_key(incoming.event_id())
                        && !skipped.contains(incoming.event_id())
                })
                .count();
            if still_missing == 0 || Instant::now() + delay > deadline {
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
        }

        let lookups = &metrics().seq_lookups;
        let missing = waiting.len() - found.len() - skipped.len();
        lookups
            .with_label_values(&["found"])
            .inc_by(found.len() as u64);
        lookups
            .with_label_values(&["skipped"])
            .inc_by(skipped.len() as u64);
        lookups
            .with_label_values(&[if failed { "error" } else { "missing" }])
            .inc_by(missing as u64);
        if missing == 0 {
            self.misses.store(0, Ordering::Relaxed);
        } else if found.is_empty() {
            let misses = self.misses.fetch_add(1, Ordering::Relaxed) + 1;
            if misses == MISSES_BEFORE_DEGRADED {
                tracing::warn!(
                    wait_ms = self.seq_wait.as_millis() as u64,
                    "the logger assigned no seq in {MISSES_BEFORE_DEGRADED} batches in a row; waiting less until it does again"
                );
            }
        } else {
            // Some found: the logger works; the rest were just late.
            self.misses.store(0, Ordering::Relaxed);
        }
        found
    }

    /// What the logger knows about every decoded record of the batch, in batch order.
    async fn enrich(&self, batch: &[(&Record, Incoming)]) -> Vec<Enrichment> {
        let waiting: Vec<(&Record, &Incoming)> = batch
            .iter()
            .filter(|(_, incoming)| incoming.has_seq())
            .map(|(record, incoming)| (*record, incoming))
            .collect();
        let sequenced = self.wait_for_seqs(waiting).await;
        let keys: Vec<&str> = batch
            .iter()
            .filter(|(_, incoming)| {
                incoming.changes_conversation() && sequenced.contains_key(incoming.event_id())
            })
            .map(|(_, incoming)| incoming.conversation_key())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let snapshots = if keys.is_empty() {
            HashMap::new()
        } else {
            self.store
                .conversations_by_key(&keys)
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(error = %error, "cannot read the conversation snapshots");
                    HashMap::new()
                })
        };
        batch
            .iter()
            .map(|(_, incoming)| match sequenced.get(incoming.event_id()) {
                None => Enrichment::default(),
                Some((seq, message_id)) => Enrichment {
                    seq: Some(*seq),
                    message_id: message_id.clone(),
                    // A snapshot older than the event would undo it on the client.
                    conversation: incoming
                        .changes_conversation()
                        .then(|| snapshots.get(incoming.conversation_key()))
                        .flatten()
                        .filter(|snapshot| snapshot.seq.is_some_and(|at| at >= *seq))
                        .cloned(),
                },
            })
            .collect()
    }

    async fn emit(
        &self,
        emission: &Emission,
        timestamp_ms: Option<i64>,
    ) -> Result<(), HandlerError> {
        let name = emission.event.name();
        let mut attempt: u32 = 0;
        let scope = loop {
            // `of` (unlike `to`) does not panic once the server closed its namespace on
            // shutdown; the batch then stays unstored and is redelivered to another member.
            let namespace = self
                .io
                .of("/")
                .ok_or_else(|| HandlerError::retryable("the socket.io server is closing"))?;
            let outcome = namespace
                .to(emission.rooms.clone())
                .emit(name, &emission.payload)
                .await;
            match outcome {
                Ok(()) => break "all",
                Err(BroadcastError::Adapter(error)) if attempt < 2 => {
                    attempt += 1;
                    tracing::debug!(event = name, error = %error, attempt, "adapter emit failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(BroadcastError::Adapter(error)) => {
                    tracing::warn!(event = name, error = %error, "redis unreachable; emitting to this instance's sockets only");
                    if let Some(namespace) = self.io.of("/") {
                        let _ = namespace
                            .local()
                            .to(emission.rooms.clone())
                            .emit(name, &emission.payload)
                            .await;
                    }
                    break "local";
                }
                Err(error) => {
                    // Some local sockets could not take it (full buffer, closing): they catch
                    // up by seq; the others got it.
                    tracing::debug!(event = name, error = %error, "some sockets missed an emit");
                    break "all";
                }
            }
        };
        metrics().emits.with_label_values(&[name, scope]).inc();
        if let Some(timestamp_ms) = timestamp_ms {
            let elapsed_ms = (crate::realtime::now_ms() - timestamp_ms).max(0);
            metrics()
                .fanout_latency
                .with_label_values(&[name])
                .observe(elapsed_ms as f64 / 1000.0);
        }
        Ok(())
    }
}

impl BatchHandler for FanoutHandler {
    async fn handle_batch(&self, records: &[Record]) -> Result<Vec<RecordOutcome>, HandlerError> {
        let mut outcomes = Vec::with_capacity(records.len());
        let mut decoded: Vec<(&Record, Incoming)> = Vec::with_capacity(records.len());
        for record in records {
            let Some(payload) = record.payload.as_deref() else {
                outcomes.push(RecordOutcome::Done);
                continue;
            };
            match decode(&self.codec, &record.topic, payload).await {
                Ok(incoming) => {
                    decoded.push((record, incoming));
                    outcomes.push(RecordOutcome::Done);
                }
                Err(HandlerError::Poison(reason)) => outcomes.push(RecordOutcome::Poison(reason)),
                // The registry is unreachable: the whole batch is tried again.
                Err(retryable) => return Err(retryable),
            }
        }
        let started = Instant::now();
        let enrichments = self.enrich(&decoded).await;
        tracing::debug!(
            records = records.len(),
            sequenced = enrichments
                .iter()
                .filter(|found| found.seq.is_some())
                .count(),
            lookup_ms = started.elapsed().as_millis() as u64,
            "fanning out a batch"
        );
        for ((record, incoming), enrichment) in decoded.iter().zip(&enrichments) {
            for emission in fanout::emissions(incoming, enrichment) {
                self.emit(&emission, record.timestamp_ms).await?;
            }
        }
        Ok(outcomes)
    }
}

async fn decode(codec: &Codec, topic: &str, bytes: &[u8]) -> Result<Incoming, HandlerError> {
    async fn typed<E: Event>(codec: &Codec, bytes: &[u8]) -> Result<E, HandlerError> {
        codec.decode::<E>(bytes).await.map_err(classify)
    }
    Ok(match topic {
        topics::INBOUND_MESSAGES => {
            Incoming::InboundMessage(typed::<InboundMessage>(codec, bytes).await?)
        }
        topics::INBOUND_STATUSES => {
            Incoming::InboundStatus(typed::<InboundStatus>(codec, bytes).await?)
        }
        topics::OUTBOUND_COMMANDS => {
            Incoming::OutboundCommand(typed::<OutboundCommand>(codec, bytes).await?)
        }
        topics::OUTBOUND_RESULTS => {
            Incoming::OutboundResult(typed::<OutboundResult>(codec, bytes).await?)
        }
        topics::CONVERSATION_EVENTS => {
            Incoming::Conversation(typed::<ConversationEvent>(codec, bytes).await?)
        }
        topics::PRESENCE_UPDATES => {
            Incoming::Presence(typed::<PresenceUpdate>(codec, bytes).await?)
        }
        topics::CAMPAIGN_EVENTS => Incoming::Campaign(typed::<CampaignEvent>(codec, bytes).await?),
        other => {
            return Err(HandlerError::poison(format!(
                "the gateway does not consume {other}"
            )))
        }
    })
}

fn classify(error: DecodeError) -> HandlerError {
    if error.is_poison() {
        HandlerError::poison(error)
    } else {
        HandlerError::retryable(error)
    }
}
