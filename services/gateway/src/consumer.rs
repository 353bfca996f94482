//! The Kafka side of the fan-out: every gateway instance is a member of one consumer group
//! (`CAAS_GATEWAY_CONSUMER_GROUP`), so each record is handled by exactly one instance, which
//! emits it through the Redis adapter to the matching sockets of every instance.
//!
//! For each record: decode it (undecodable → DLQ, as everywhere), look up the conversation
//! `seq` the logger assigned to it, decide the emits ([`crate::domain::fanout`]), emit.
//!
//! **Waiting for `seq`.** The logger consumes the same topics in its own group and is the only
//! authority for a conversation's sequence. The gateway reads the logger's `events` document
//! for the record's event id, retrying with backoff (20 ms doubling to 250 ms) for at most
//! `CAAS_GATEWAY_SEQ_WAIT_MS` (3 s). When the logger has not written it by then, the event is
//! emitted with `"seq": null` rather than stalling the partition: clients treat such events as
//! unsequenced and fetch the thread by `after_seq` on their next sequenced event or reconnect.
//! After three lookups in a row that ran out of time (the logger is down or far behind), the
//! gateway waits a tenth of that per record until a lookup succeeds again, so a missing logger
//! costs operators the `seq`, never their live updates, and a logger that is back (its batches
//! take ~100 ms) is found again.
//!
//! **Emitting.** An emit publishes to Redis first, then delivers locally. If Redis does not
//! take it (after two quick retries) the event is delivered to this instance's sockets only
//! and counted as `scope="local"`; operators on other instances catch up through the REST API.
//! An emit never fails the record: the durable history is the logger's, the fan-out is a
//! notification of it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use caas_events::model::{
    CampaignEvent, ConversationEvent, InboundMessage, InboundStatus, OutboundCommand,
    OutboundResult, PresenceUpdate,
};
use caas_events::{topics, Codec, DecodeError, Event};
use caas_kafka::{Handler, HandlerError, Record};
use socketioxide::BroadcastError;

use crate::domain::fanout::{self, Emission, Enrichment, Incoming};
use crate::metrics::metrics;
use crate::realtime::Io;
use crate::store::Store;

/// Lookups in a row that ran out of time before the gateway stops waiting for `seq`.
const MISSES_BEFORE_DEGRADED: u32 = 3;

/// The consumer group's record handler.
pub struct FanoutHandler {
    io: Io,
    codec: Codec,
    store: Store,
    seq_wait: Duration,
    /// Consecutive `seq` lookups that ran out of time.
    misses: AtomicU32,
}

impl FanoutHandler {
    /// A handler emitting through `io`.
    pub fn new(io: Io, codec: Codec, store: Store, seq_wait: Duration) -> Self {
        Self {
            io,
            codec,
            store,
            seq_wait,
            misses: AtomicU32::new(0),
        }
    }

    async fn enrich(&self, incoming: &Incoming) -> Enrichment {
        if !incoming.has_seq() {
            return Enrichment::default();
        }
        let Some((seq, message_id)) = self.wait_for_seq(incoming.event_id()).await else {
            return Enrichment::default();
        };
        let key = incoming.conversation_key();
        let conversation = if incoming.changes_conversation() {
            match self.store.conversation(key).await {
                // A snapshot older than the event would undo it on the client.
                Ok(Some(snapshot)) if snapshot.seq.is_some_and(|at| at >= seq) => Some(snapshot),
                Ok(_) => None,
                Err(error) => {
                    tracing::warn!(error = %error, "cannot read the conversation snapshot");
                    None
                }
            }
        } else {
            None
        };
        Enrichment {
            seq: Some(seq),
            conversation,
            message_id,
        }
    }

    async fn wait_for_seq(&self, event_id: &str) -> Option<(i64, Option<String>)> {
        let budget = if self.misses.load(Ordering::Relaxed) >= MISSES_BEFORE_DEGRADED {
            self.seq_wait / 10
        } else {
            self.seq_wait
        };
        let deadline = Instant::now() + budget;
        let mut delay = Duration::from_millis(20);
        let mut failed = false;
        loop {
            match self.store.event_seq(event_id).await {
                Ok(Some(found)) => {
                    self.misses.store(0, Ordering::Relaxed);
                    metrics().seq_lookups.with_label_values(&["found"]).inc();
                    return Some(found);
                }
                Ok(None) => {}
                Err(error) => {
                    if !failed {
                        tracing::warn!(error = %error, "cannot look up the event's seq");
                    }
                    failed = true;
                }
            }
            if Instant::now() + delay > deadline {
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
        }
        let misses = self.misses.fetch_add(1, Ordering::Relaxed) + 1;
        if misses == MISSES_BEFORE_DEGRADED {
            tracing::warn!(
                wait_ms = self.seq_wait.as_millis() as u64,
                "the logger has not assigned seq to {MISSES_BEFORE_DEGRADED} events in a row; waiting less until it does again"
            );
        }
        let outcome = if failed { "error" } else { "missing" };
        metrics().seq_lookups.with_label_values(&[outcome]).inc();
        None
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
            // shutdown; the record then stays unstored and is redelivered to another member.
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

impl Handler for FanoutHandler {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let Some(payload) = record.payload.as_deref() else {
            return Ok(());
        };
        let incoming = decode(&self.codec, &record.topic, payload).await?;
        let enrichment = self.enrich(&incoming).await;
        for emission in fanout::emissions(&incoming, &enrichment) {
            self.emit(&emission, record.timestamp_ms).await?;
        }
        Ok(())
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
