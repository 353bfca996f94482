//! Delivering the events of one webhook: de-duplicate, produce, remember. The webhook is
//! answered 200 only when this returns `Ok`, that is when every event of the request is on Kafka
//! (acknowledged now, or earlier by another delivery of the same webhook).
//!
//! ## Exactly once on Kafka, and never lost
//!
//! Per event id, in Redis (see [`crate::dedupe`]):
//! 1. **claim**: atomically create `claim:<token>` (short TTL) unless a record exists. A `done`
//!    record means the event is already on Kafka: counted as a duplicate, not produced.
//! 2. **produce** every claimed event of the request concurrently and wait for all acks.
//! 3. on ack, **mark** the id `done` (long TTL) in the background, so the webhook is answered
//!    without waiting for Redis (the marks still pending are awaited on shutdown:
//!    [`Pipeline::settled`]); on failure, **release** our claim (only ours) before answering
//!    503, so the provider's retry can claim it at once.
//! 4. ids claimed by a concurrent request (the provider posted the same webhook twice at
//!    once) are **waited for**: polled until `done` (then they count as delivered), or until
//!    the claim disappears (the other request failed: we claim and produce them ourselves).
//!    If neither happens within the wait, 503: the provider retries later and finds `done`.
//!
//! Waiting happens only after our own claimed events were produced, so two concurrent requests
//! with overlapping ids never wait for each other.
//!
//! When Redis is unavailable, events are produced without de-duplication: a duplicate on
//! Kafka carries the same deterministic `event_id` and consumers are idempotent on it, whereas
//! refusing the webhook would delay every customer message until Redis is back. A crash between
//! the ack and the `done` mark leaves a claim that expires after its TTL; a retry after that
//! produces again (same event id: harmless downstream). A concurrent duplicate that arrives
//! between our answer and our mark finds our claim and waits the few milliseconds until `done`.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use caas_events::EncodeError;
use caas_kafka::{ProduceError, TraceParent};

use crate::dedupe::{ClaimState, DedupeStore};
use crate::events::IngestEvent;
use crate::metrics::metrics;

/// Why one event could not be produced. Every variant is answered 503 (the provider retries):
/// an encode failure is a registry outage or a bug that a fix resolves, never the sender's
/// fault, and dropping the webhook would lose it.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The schema ids could not be resolved (registry unreachable or refusing our schema).
    #[error("cannot resolve the schema id: {reason}")]
    Registry {
        /// The registry error.
        reason: String,
    },
    /// The event could not be encoded with its schema (a bug; fixed by a release, after which
    /// the provider's retry succeeds).
    #[error("cannot encode the event: {0}")]
    Encode(#[from] EncodeError),
    /// Kafka did not acknowledge the record in time, or refused it.
    #[error("{0}")]
    Produce(#[from] ProduceError),
    /// An event of the request encodes larger than Kafka accepts. Checked before anything is
    /// produced, so none of the request's events is (a retry would be refused again).
    #[error("an event of this request is {bytes} bytes encoded, above the {limit} bytes a Kafka record may hold; none of its events was produced")]
    TooLarge {
        /// The largest encoded record (key and value).
        bytes: usize,
        /// [`crate::publish::MAX_RECORD_BYTES`].
        limit: usize,
    },
}

/// Where events go: Kafka in the service ([`crate::publish::KafkaSink`]), a recorder in tests.
pub trait EventSink: Send + Sync + 'static {
    /// Produce the events concurrently (in order per key) and wait for every acknowledgement.
    /// Results are in input order.
    fn publish(
        &self,
        events: &[&IngestEvent],
        trace_parent: &TraceParent,
    ) -> impl Future<Output = Vec<Result<(), PublishError>>> + Send;
}

/// Timing of the de-duplication protocol.
#[derive(Debug, Clone, Copy)]
pub struct DedupeSettings {
    /// Life of an in-flight claim: longer than a produce can take, short enough that a crashed
    /// request does not hold an id for long.
    pub claim_ttl: Duration,
    /// Life of a `done` record.
    pub done_ttl: Duration,
    /// How long a request waits for ids a concurrent request is producing.
    pub in_flight_wait: Duration,
    /// How often it looks again while waiting.
    pub poll_interval: Duration,
}

impl DedupeSettings {
    /// Settings derived from the produce timeout: a claim outlives a produce by 10 s; a
    /// concurrent duplicate waits as long as a produce may take, plus a second.
    pub fn for_produce_timeout(produce_timeout: Duration, done_ttl: Duration) -> Self {
        Self {
            claim_ttl: produce_timeout + Duration::from_secs(10),
            done_ttl,
            in_flight_wait: produce_timeout + Duration::from_secs(1),
            poll_interval: Duration::from_millis(25),
        }
    }
}

/// What a delivered request did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Events this request produced (Kafka acknowledged them).
    pub produced: usize,
    /// Events already on Kafka (an earlier or concurrent delivery of the same webhook).
    pub duplicates: usize,
}

/// Why a request could not be delivered; answered 503.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// Some event could not be produced.
    #[error("{failed} of {attempted} events could not be produced: {first}")]
    Publish {
        /// How many failed.
        failed: usize,
        /// How many were attempted in the failing round.
        attempted: usize,
        /// The first failure.
        first: PublishError,
    },
    /// A concurrent delivery of the same events did not finish in time.
    #[error("{pending} events are being produced by a concurrent delivery of the same webhook; retry shortly")]
    InFlightElsewhere {
        /// How many are still in flight there.
        pending: usize,
    },
}

/// The delivery machinery shared by all requests.
pub struct Pipeline<S, D> {
    sink: S,
    dedupe: D,
    settings: DedupeSettings,
    /// The `done` marks written after answering.
    marks: tokio_util::task::TaskTracker,
}

/// Whether we hold a claim on an event we produce (none when Redis is unavailable).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Claimed {
    Yes,
    Unavailable,
}

impl<S: EventSink, D: DedupeStore> Pipeline<S, D> {
    /// A pipeline over a sink and a de-duplication store.
    pub fn new(sink: S, dedupe: D, settings: DedupeSettings) -> Self {
        Self {
            sink,
            dedupe,
            settings,
            marks: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Wait until every `done` mark written after answering has been written (or failed): on
    /// shutdown, so a provider's retry after a restart finds them.
    pub async fn settled(&self) {
        self.marks.close();
        self.marks.wait().await;
        self.marks.reopen();
    }

    /// The sink (tests look at what was produced).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Deliver the events of one request; see the module docs. `provider` is a metric label.
    pub async fn deliver(
        &self,
        provider: &'static str,
        events: &[IngestEvent],
        trace_parent: &TraceParent,
    ) -> Result<Delivered, DeliverError> {
        let mut delivered = Delivered::default();
        // The same id twice in one body (a provider quirk) is produced once.
        let mut seen = HashSet::new();
        let mut pending: Vec<&IngestEvent> = Vec::with_capacity(events.len());
        for event in events {
            if seen.insert(event.event_id()) {
                pending.push(event);
            } else {
                delivered.duplicates += 1;
            }
        }
        let token = uuid::Uuid::new_v4().to_string();
        let deadline = Instant::now() + self.settings.in_flight_wait;
        loop {
            let claims = futures::future::join_all(pending.iter().map(|event| {
                self.dedupe
                    .claim(event.event_id(), &token, self.settings.claim_ttl)
            }))
            .await;
            let mut to_produce = Vec::new();
            let mut in_flight = Vec::new();
            for (event, claim) in pending.iter().copied().zip(claims) {
                match claim {
                    Ok(ClaimState::Claimed) => to_produce.push((event, Claimed::Yes)),
                    Ok(ClaimState::Done) => delivered.duplicates += 1,
                    Ok(ClaimState::InFlight) => in_flight.push(event),
                    Err(error) => {
                        metrics().dedupe_errors.with_label_values(&["claim"]).inc();
                        tracing::warn!(error = %error, "producing without de-duplication");
                        to_produce.push((event, Claimed::Unavailable));
                    }
                }
            }
            if !to_produce.is_empty() {
                delivered.produced += self
                    .produce(provider, &to_produce, &token, trace_parent)
                    .await?;
            }
            if in_flight.is_empty() {
                metrics()
                    .duplicates
                    .with_label_values(&[provider])
                    .inc_by(delivered.duplicates as u64);
                return Ok(delivered);
            }
            if Instant::now() >= deadline {
                return Err(DeliverError::InFlightElsewhere {
                    pending: in_flight.len(),
                });
            }
            tokio::time::sleep(self.settings.poll_interval).await;
            pending = in_flight;
        }
    }

    /// Produce claimed events, then mark or release their claims. Returns how many were
    /// produced, or the first failure once every claim of the round is settled.
    async fn produce(
        &self,
        provider: &'static str,
        to_produce: &[(&IngestEvent, Claimed)],
        token: &str,
        trace_parent: &TraceParent,
    ) -> Result<usize, DeliverError> {
        let events: Vec<&IngestEvent> = to_produce.iter().map(|(event, _)| *event).collect();
        let started = Instant::now();
        let results = self.sink.publish(&events, trace_parent).await;
        metrics()
            .produce_duration
            .with_label_values(&[provider])
            .observe(started.elapsed().as_secs_f64());
        // Marks are written after answering; releases before, so the retry finds the id free.
        let mut done = Vec::new();
        let mut releases = Vec::new();
        for ((event, claimed), result) in to_produce.iter().zip(&results) {
            if *claimed == Claimed::Yes {
                match result {
                    Ok(()) => done.push(event.event_id().to_string()),
                    Err(_) => releases.push(event.event_id()),
                }
            }
        }
        if !done.is_empty() {
            let dedupe = self.dedupe.clone();
            let ttl = self.settings.done_ttl;
            self.marks.spawn(async move {
                let marks = done.iter().map(|event_id| dedupe.mark_done(event_id, ttl));
                for outcome in futures::future::join_all(marks).await {
                    if let Err(error) = outcome {
                        settle_failed("mark_done", &error);
                    }
                }
            });
        }
        let released = releases
            .iter()
            .map(|event_id| self.dedupe.release(event_id, token));
        for outcome in futures::future::join_all(released).await {
            if let Err(error) = outcome {
                settle_failed("release", &error);
            }
        }
        let attempted = results.len();
        let mut produced = 0;
        let mut failures = Vec::new();
        for (event, result) in events.iter().zip(results) {
            match result {
                Ok(()) => {
                    produced += 1;
                    metrics()
                        .events_produced
                        .with_label_values(&[provider, event.event_type(), event.kind()])
                        .inc();
                }
                Err(error) => failures.push(error),
            }
        }
        let failed = failures.len();
        match failures.into_iter().next() {
            None => Ok(produced),
            Some(first) => Err(DeliverError::Publish {
                failed,
                attempted,
                first,
            }),
        }
    }
}

fn settle_failed(operation: &'static str, error: &crate::dedupe::DedupeError) {
    metrics()
        .dedupe_errors
        .with_label_values(&[operation])
        .inc();
    tracing::warn!(operation, error = %error, "de-duplication record not updated");
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use caas_events::model::{Channel, Content, InboundMessage, Text};

    use super::*;
    use crate::dedupe::MemoryDedupe;

    /// Records what it "produced"; fails while `failing` is set; can be slowed down.
    #[derive(Clone, Default)]
    struct RecordingSink {
        produced: Arc<Mutex<Vec<String>>>,
        failing: Arc<std::sync::atomic::AtomicBool>,
        delay: Duration,
    }

    impl EventSink for RecordingSink {
        async fn publish(
            &self,
            events: &[&IngestEvent],
            _trace_parent: &TraceParent,
        ) -> Vec<Result<(), PublishError>> {
            tokio::time::sleep(self.delay).await;
            events
                .iter()
                .map(|event| {
                    if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                        Err(PublishError::Produce(ProduceError::Timeout {
                            topic: event.topic().to_string(),
                            timeout: Duration::from_millis(1),
                        }))
                    } else {
                        self.produced
                            .lock()
                            .unwrap()
                            .push(event.event_id().to_string());
                        Ok(())
                    }
                })
                .collect()
        }
    }

    fn message(id: &str) -> IngestEvent {
        IngestEvent::Message(InboundMessage {
            event_id: id.to_string(),
            tenant_id: "demo".into(),
            conversation_key: "demo:whatsapp:1".into(),
            channel: Channel::Whatsapp,
            occurred_at: 0,
            recorded_at: 0,
            source: "ingest".into(),
            trace_parent: None,
            provider_message_id: id.to_string(),
            customer_id: "1".into(),
            customer_display_name: None,
            business_id: None,
            reply_to: None,
            content: Content::Text(Text {
                body: "hi".into(),
                preview_url: false,
            }),
        })
    }

    fn settings() -> DedupeSettings {
        DedupeSettings {
            claim_ttl: Duration::from_secs(5),
            done_ttl: Duration::from_secs(60),
            in_flight_wait: Duration::from_secs(2),
            poll_interval: Duration::from_millis(5),
        }
    }

    #[tokio::test]
    async fn a_redelivery_is_not_produced_again() {
        let pipeline = Pipeline::new(
            RecordingSink::default(),
            MemoryDedupe::default(),
            settings(),
        );
        let events = [message("a"), message("b"), message("a")];
        let root = TraceParent::new_root();
        let first = pipeline.deliver("whatsapp", &events, &root).await.unwrap();
        assert_eq!(
            first,
            Delivered {
                produced: 2,
                duplicates: 1
            }
        );
        let second = pipeline.deliver("whatsapp", &events, &root).await.unwrap();
        assert_eq!(
            second,
            Delivered {
                produced: 0,
                duplicates: 3
            }
        );
        assert_eq!(*pipeline.sink().produced.lock().unwrap(), ["a", "b"]);
    }

    #[tokio::test]
    async fn concurrent_deliveries_produce_each_event_once() {
        let sink = RecordingSink {
            delay: Duration::from_millis(50),
            ..RecordingSink::default()
        };
        let pipeline = Arc::new(Pipeline::new(sink, MemoryDedupe::default(), settings()));
        let events: Vec<IngestEvent> = ["a", "b", "c"].map(message).into();
        let root = TraceParent::new_root();
        let outcomes = futures::future::join_all((0..4).map(|_| {
            let pipeline = Arc::clone(&pipeline);
            let events = events.clone();
            async move { pipeline.deliver("whatsapp", &events, &root).await }
        }))
        .await;
        let produced: usize = outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every delivery succeeds").produced)
            .sum();
        assert_eq!(produced, 3);
        let mut ids = pipeline.sink().produced.lock().unwrap().clone();
        ids.sort();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_failed_produce_releases_its_claims_so_the_retry_produces() {
        let sink = RecordingSink::default();
        sink.failing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let dedupe = MemoryDedupe::default();
        let pipeline = Pipeline::new(sink, dedupe.clone(), settings());
        let events = [message("a")];
        let root = TraceParent::new_root();
        let error = pipeline
            .deliver("whatsapp", &events, &root)
            .await
            .unwrap_err();
        assert!(
            matches!(error, DeliverError::Publish { failed: 1, .. }),
            "{error}"
        );
        assert_eq!(dedupe.record("a"), None, "the claim was released");
        pipeline
            .sink()
            .failing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let retry = pipeline.deliver("whatsapp", &events, &root).await.unwrap();
        assert_eq!(retry.produced, 1);
        pipeline.settled().await;
        assert_eq!(dedupe.record("a").as_deref(), Some("done"));
    }

    /// The memory store whose `done` marks wait until the test opens the gate.
    #[derive(Clone)]
    struct GatedMarks {
        inner: MemoryDedupe,
        gate: Arc<tokio::sync::Semaphore>,
    }

    impl DedupeStore for GatedMarks {
        async fn claim(
            &self,
            event_id: &str,
            token: &str,
            ttl: Duration,
        ) -> Result<ClaimState, crate::dedupe::DedupeError> {
            self.inner.claim(event_id, token, ttl).await
        }

        async fn mark_done(
            &self,
            event_id: &str,
            ttl: Duration,
        ) -> Result<(), crate::dedupe::DedupeError> {
            let _permit = self.gate.acquire().await.expect("gate open");
            self.inner.mark_done(event_id, ttl).await
        }

        async fn release(
            &self,
            event_id: &str,
            token: &str,
        ) -> Result<(), crate::dedupe::DedupeError> {
            self.inner.release(event_id, token).await
        }
    }

    #[tokio::test]
    async fn the_answer_does_not_wait_for_the_done_mark_and_shutdown_does() {
        let store = GatedMarks {
            inner: MemoryDedupe::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
        };
        let pipeline = Pipeline::new(RecordingSink::default(), store.clone(), settings());
        let root = TraceParent::new_root();
        let delivered = tokio::time::timeout(
            Duration::from_secs(5),
            pipeline.deliver("whatsapp", &[message("a")], &root),
        )
        .await
        .expect("answered while the mark is still held back")
        .unwrap();
        assert_eq!(delivered.produced, 1);
        assert!(
            store
                .inner
                .record("a")
                .is_some_and(|r| r.starts_with("claim:")),
            "answered before the mark: the record is still our claim"
        );

        let settled = pipeline.settled();
        tokio::pin!(settled);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut settled)
                .await
                .is_err(),
            "settled() waits for the pending mark"
        );
        store.gate.add_permits(1);
        tokio::time::timeout(Duration::from_secs(5), settled)
            .await
            .expect("settled once the mark is written");
        assert_eq!(store.inner.record("a").as_deref(), Some("done"));
    }

    #[tokio::test]
    async fn without_the_store_events_are_still_produced() {
        let dedupe = MemoryDedupe::default();
        dedupe.set_available(false);
        let pipeline = Pipeline::new(RecordingSink::default(), dedupe, settings());
        let root = TraceParent::new_root();
        let outcome = pipeline
            .deliver("rcs", &[message("a")], &root)
            .await
            .unwrap();
        assert_eq!(outcome.produced, 1);
    }

    #[tokio::test]
    async fn a_claim_held_elsewhere_for_too_long_is_a_retry_later() {
        let dedupe = MemoryDedupe::default();
        dedupe
            .claim("a", "someone-else", Duration::from_secs(60))
            .await
            .unwrap();
        let pipeline = Pipeline::new(
            RecordingSink::default(),
            dedupe,
            DedupeSettings {
                in_flight_wait: Duration::from_millis(30),
                ..settings()
            },
        );
        let root = TraceParent::new_root();
        let error = pipeline
            .deliver("whatsapp", &[message("a"), message("b")], &root)
            .await
            .unwrap_err();
        assert!(
            matches!(error, DeliverError::InFlightElsewhere { pending: 1 }),
            "{error}"
        );
        assert_eq!(*pipeline.sink().produced.lock().unwrap(), ["b"]);
    }
}
