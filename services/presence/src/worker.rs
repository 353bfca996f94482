//! The I/O around the decision core: the Kafka handler for input signals and the expiry
//! scanner, both writing state with compare-and-set and publishing updates.
//!
//! Order: within this process, the state write and the hand-over of its updates to the
//! producer happen under one lock, so updates about an entity reach `presence.updates.v1` in
//! the order of the state changes (an expiry racing a heartbeat cannot publish "offline" after
//! "online"). Acknowledgements are awaited outside the lock.
//!
//! At least once: an input record is acknowledged (offset stored) only after its updates were;
//! if publishing fails, the record is retried and the core publishes the same update again
//! (same update id). A claimed deadline is removed only after its update was acknowledged;
//! otherwise its lease runs out and the next scan reports it again.

use caas_runtime::clock::now_millis as now_ms;
use std::sync::Arc;
use std::time::Duration;

use caas_events::model::{InboundStatus, PresenceEvent, PresenceSubject, PresenceUpdate};
use caas_events::{topics, Codec, DecodeError};
use caas_kafka::{Handler, HandlerError, OutboundRecord, PendingDelivery, Producer, Record};
use tokio::sync::Mutex;

use crate::domain::{self, DeadlineChange, Decision, Settings, Signal, SignalKind};
use crate::keys;
use crate::metrics::metrics;
use crate::signal::{self, Routed};
use crate::store::StateStore;

/// How long a claimed deadline is reserved for the scanner that claimed it.
const LEASE_MS: i64 = 10_000;
/// Most deadlines handled per scan.
const SCAN_LIMIT: usize = 500;
/// Compare-and-set attempts before the record is retried by the consumer loop.
const CAS_ATTEMPTS: usize = 8;

/// Shared by the handler and the scanner.
pub struct Presence {
    /// Redis state.
    pub store: StateStore,
    /// Publishes updates.
    pub producer: Producer,
    /// Encodes updates, decodes inputs.
    pub codec: Codec,
    /// Decision settings.
    pub settings: Settings,
    /// Consumed topic names (with prefix) → catalogue names.
    pub statuses_topic: String,
    /// The presence events topic consumed (with prefix).
    pub events_topic: String,
    /// Where updates go (with prefix).
    pub updates_topic: String,
    /// Orders state changes and their updates within this process.
    pub order: Mutex<()>,
}

/// Why handling failed.
#[derive(Debug)]
enum Failure {
    Retry(String),
}

impl From<Failure> for HandlerError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Retry(reason) => HandlerError::Retryable(reason),
        }
    }
}

impl Presence {
    async fn encode(&self, updates: &[PresenceUpdate]) -> Result<Vec<OutboundRecord>, Failure> {
        let mut records = Vec::with_capacity(updates.len());
        for update in updates {
            let payload = self.codec.encode(update).await.map_err(|error| {
                Failure::Retry(format!("cannot encode a presence update: {error}"))
            })?;
            let mut record = OutboundRecord::new(
                self.updates_topic.as_str(),
                update.conversation_key.as_str(),
                payload,
            );
            if let Some(traceparent) = update
                .trace_parent
                .as_deref()
                .and_then(|value| caas_kafka::TraceParent::parse(value).ok())
            {
                record = record.with_traceparent(&traceparent.child());
            }
            records.push(record);
        }
        Ok(records)
    }

    /// Write `decision` and hand its updates to the producer, in one ordered step. Returns
    /// `None` when the entity changed meanwhile.
    async fn commit(
        &self,
        entity_key: &str,
        expected_raw: &str,
        decision: &Decision,
        deadline_override: Option<DeadlineChange>,
        records: Vec<OutboundRecord>,
    ) -> Result<Option<Vec<PendingDelivery>>, Failure> {
        let _order = self.order.lock().await;
        let written = self
            .store
            .apply(entity_key, expected_raw, decision, deadline_override)
            .await
            .map_err(|error| Failure::Retry(format!("redis: {error}")))?;
        if !written {
            return Ok(None);
        }
        let mut pending = Vec::with_capacity(records.len());
        for record in records {
            pending.push(
                self.producer.enqueue(record).await.map_err(|error| {
                    Failure::Retry(format!("cannot publish an update: {error}"))
                })?,
            );
        }
        Ok(Some(pending))
    }

    async fn acknowledged(pending: Vec<PendingDelivery>) -> Result<usize, Failure> {
        let count = pending.len();
        for delivery in pending {
            delivery
                .acknowledged()
                .await
                .map_err(|error| Failure::Retry(format!("update not acknowledged: {error}")))?;
        }
        Ok(count)
    }

    /// Apply one signal to its entity, retrying the compare-and-set.
    async fn apply_signal(&self, entity_key: &str, signal: &Signal) -> Result<(), Failure> {
        for _ in 0..CAS_ATTEMPTS {
            let loaded = self
                .store
                .load(entity_key)
                .await
                .map_err(|error| Failure::Retry(format!("redis: {error}")))?;
            let decision = domain::decide(signal, loaded.state, now_ms(), &self.settings);
            let records = self.encode(&decision.updates).await?;
            match self
                .commit(entity_key, &loaded.raw, &decision, None, records)
                .await?
            {
                Some(pending) => {
                    let published = Self::acknowledged(pending).await?;
                    metrics()
                        .updates
                        .with_label_values(&["signal"])
                        .inc_by(published as u64);
                    return Ok(());
                }
                None => {
                    metrics().conflicts.inc();
                    continue;
                }
            }
        }
        Err(Failure::Retry(format!(
            "presence state {entity_key} kept changing during {CAS_ATTEMPTS} attempts"
        )))
    }

    async fn handle_routed(&self, routed: Routed) -> Result<(), Failure> {
        self.apply_signal(&routed.entity_key, &routed.signal)
            .await?;
        if let Some(subject_entity) = &routed.touches {
            let seen = Signal {
                update_key: match routed.signal.subject {
                    PresenceSubject::Operator => caas_events::keys::operator_key(
                        &routed.signal.tenant_id,
                        &routed.signal.subject_id,
                    ),
                    PresenceSubject::Customer => routed.signal.update_key.clone(),
                },
                channel: match routed.signal.subject {
                    PresenceSubject::Operator => None,
                    PresenceSubject::Customer => routed.signal.channel,
                },
                kind: SignalKind::Seen,
                ..routed.signal.clone()
            };
            self.apply_signal(subject_entity, &seen).await?;
        }
        Ok(())
    }

    /// One pass of the expiry scanner; returns how many deadlines were handled.
    pub async fn scan_once(&self) -> Result<usize, String> {
        let now = now_ms();
        let due = self
            .store
            .claim_due(now, LEASE_MS, SCAN_LIMIT)
            .await
            .map_err(|error| format!("redis: {error}"))?;
        let lease = now + LEASE_MS;
        let count = due.len();
        for (member, scheduled) in due {
            if let Err(Failure::Retry(reason)) =
                self.expire_one(&member, scheduled, now, lease).await
            {
                // The lease runs out and a later scan tries again.
                tracing::warn!(member, error = %reason, "expiry not completed; it will be retried");
            }
        }
        Ok(count)
    }

    async fn expire_one(
        &self,
        member: &str,
        scheduled: i64,
        now: i64,
        lease: i64,
    ) -> Result<(), Failure> {
        let redis_error = |error: redis::RedisError| Failure::Retry(format!("redis: {error}"));
        let Some((activity, entity_key)) = keys::parse_deadline_member(member) else {
            self.store
                .release(member, lease)
                .await
                .map_err(redis_error)?;
            return Ok(());
        };
        let loaded = self.store.load(entity_key).await.map_err(redis_error)?;
        let Some(state) = loaded.state.clone() else {
            self.store
                .release(member, lease)
                .await
                .map_err(redis_error)?;
            return Ok(());
        };
        let decision = domain::expire(state, activity, scheduled, now);
        let records = self.encode(&decision.updates).await?;
        // Keep the lease on the deadline until the update is confirmed, unless the activity
        // was renewed (then its new deadline replaces the lease).
        let deadline_override = match decision.deadline {
            Some((_, DeadlineChange::Set(at))) => Some(DeadlineChange::Set(at)),
            _ => Some(DeadlineChange::Keep),
        };
        let Some(pending) = self
            .commit(
                entity_key,
                &loaded.raw,
                &decision,
                deadline_override,
                records,
            )
            .await?
        else {
            // Changed meanwhile (a heartbeat): the lease runs out and the next scan decides.
            return Ok(());
        };
        let published = Self::acknowledged(pending).await?;
        metrics()
            .updates
            .with_label_values(&["expiry"])
            .inc_by(published as u64);
        if matches!(decision.deadline, Some((_, DeadlineChange::Clear)) | None) {
            self.store
                .release(member, lease)
                .await
                .map_err(redis_error)?;
        }
        Ok(())
    }

    /// Run the scanner every `interval` until `shutdown`.
    pub async fn scan_until(
        self: Arc<Self>,
        interval: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match self.scan_once().await {
                Ok(handled) if handled > 0 => tracing::debug!(handled, "expiry scan"),
                Ok(_) => {}
                Err(error) => tracing::warn!(error, "expiry scan failed"),
            }
        }
    }
}

/// The Kafka handler of presence inputs.
pub struct PresenceHandler(pub Arc<Presence>);

fn poison_or_retry(error: DecodeError) -> HandlerError {
    if error.is_poison() {
        metrics().rejected.with_label_values(&[error.kind()]).inc();
        HandlerError::poison(format!("{error} ({})", error.kind()))
    } else {
        HandlerError::retryable(error)
    }
}

impl Handler for PresenceHandler {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let presence = &self.0;
        let Some(bytes) = record.payload.as_deref() else {
            return Err(HandlerError::poison("tombstone: the record has no value"));
        };
        let routed = if record.topic == presence.events_topic {
            let event: PresenceEvent = presence
                .codec
                .decode(bytes)
                .await
                .map_err(poison_or_retry)?;
            signal::from_presence_event(&event)
        } else if record.topic == presence.statuses_topic {
            let status: InboundStatus = presence
                .codec
                .decode(bytes)
                .await
                .map_err(poison_or_retry)?;
            signal::from_status(&status)
        } else {
            Err(format!(
                "topic {} is not one presence consumes",
                record.topic
            ))
        };
        let routed = routed.map_err(|reason| {
            metrics().rejected.with_label_values(&["contract"]).inc();
            HandlerError::poison(reason)
        })?;
        let Some(routed) = routed else {
            metrics().signals.with_label_values(&["ignored"]).inc();
            return Ok(());
        };
        metrics().signals.with_label_values(&["applied"]).inc();
        presence
            .handle_routed(routed)
            .await
            .map_err(HandlerError::from)
    }
}

/// The catalogue names of the consumed topics.
pub fn input_topics() -> [&'static str; 2] {
    [topics::PRESENCE_EVENTS, topics::INBOUND_STATUSES]
}
