//! The Kafka side of the fan-out: every gateway instance is a member of one consumer group
//! (`CAAS_GATEWAY_CONSUMER_GROUP`), so each record is handled by exactly one instance, which
//! emits it through the Redis adapter to the matching sockets of every instance.
//!
//! Records come in batches (caas-kafka's batch loop: up to [`BATCH_MAX_RECORDS`], collected
//! for at most [`BATCH_MAX_WAIT`] after the first). For each batch: decode every record
//! (undecodable → DLQ, as everywhere), wait for the conversation `seq` the logger assigned to
//! each event ([`crate::seq_wait`]: woken by the logger's announcement on Redis the moment it
//! commits, with MongoDB `events` read at the start and now and then as the fallback and the
//! authority), decide the emits ([`crate::domain::fanout`]) and emit them in batch order,
//! which keeps the order of every partition and so of every conversation. An event the logger
//! has not stored within `CAAS_GATEWAY_SEQ_WAIT_MS` goes out with `"seq": null`.
//!
//! **Emitting.** An emit publishes to Redis first, then delivers locally. If Redis does not
//! take it (after two quick retries) the event is delivered to this instance's sockets only
//! and counted as `scope="local"`; operators on other instances catch up through the REST API.
//! An emit never fails a record: the durable history is the logger's, the fan-out is a
//! notification of it. Only a server that is shutting down fails the batch (retryable), so
//! its records are redelivered to the instance that takes over.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use caas_events::model::{
    CampaignEvent, ConversationEvent, InboundMessage, InboundStatus, OutboundCommand,
    OutboundResult, PresenceUpdate,
};
use caas_events::{topics, Codec, DecodeError, Event};
use caas_kafka::{BatchHandler, HandlerError, Record, RecordOutcome};
use socketioxide::BroadcastError;

use crate::announced::Announced;
use crate::domain::fanout::{self, Emission, Enrichment, Incoming};
use crate::metrics::metrics;
use crate::progress::LoggerProgress;
use crate::realtime::Io;
use crate::seq_wait::{Awaited, SeqWaiter};
use crate::store::Store;

/// The most records handled at once.
pub const BATCH_MAX_RECORDS: usize = 500;

/// How long a batch keeps collecting after its first record: the latency it adds.
pub const BATCH_MAX_WAIT: Duration = Duration::from_millis(10);

/// The consumer group's batch handler.
pub struct FanoutHandler {
    io: Io,
    codec: Codec,
    /// The conversation snapshots sent with conversation changes.
    store: Store,
    /// Waits for the logger's `seq`s.
    seqs: SeqWaiter,
}

impl FanoutHandler {
    /// A handler emitting through `io`; it waits up to `seq_wait` a batch for the logger's
    /// `seq`s, woken by what `announced` hears.
    pub fn new(
        io: Io,
        codec: Codec,
        store: Store,
        progress: LoggerProgress,
        announced: Announced,
        seq_wait: Duration,
    ) -> Self {
        let seqs = SeqWaiter::new(store.clone(), progress, announced, seq_wait);
        Self {
            io,
            codec,
            store,
            seqs,
        }
    }

    /// What the logger knows about every decoded record of the batch, in batch order.
    async fn enrich(&self, batch: &[(&Record, Incoming)]) -> Vec<Enrichment> {
        let awaited: Vec<Awaited<'_>> = batch
            .iter()
            .filter(|(_, incoming)| incoming.has_seq())
            .map(|(record, incoming)| Awaited {
                event_id: incoming.event_id(),
                topic: &record.topic,
                partition: record.partition,
                offset: record.offset,
            })
            .collect();
        let sequenced = self.seqs.wait(&awaited).await;
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
