//! What the logger announced it committed: event id → (`seq`, changed message), heard on
//! Redis pub/sub and kept in memory briefly, so a batch waiting for its `seq`s is woken the
//! moment the logger's transaction commits instead of at its next MongoDB poll.
//!
//! The logger publishes one message per committed batch on
//! `<CAAS_LOGGER_ANNOUNCE_PREFIX>:<CAAS_MONGODB_DATABASE>` ([`caas_logger::announce`]). One
//! subscriber task per gateway instance ([`Announced::listen`]) records every announcement in
//! a bounded map ([`AnnouncedSeqs`]: [`RETENTION`], [`CAPACITY`]) and bumps a
//! [`tokio::sync::watch`] counter that wakes the waiters ([`crate::seq_wait`]).
//!
//! Announcements are a shortcut, never the authority: pub/sub keeps nothing for a subscriber
//! that was disconnected, and the logger drops them when Redis is slow. The waiters still read
//! `events` (once at the start, then now and then), so with Redis down, or a logger that does
//! not announce, everything works as by polling alone. When the subscription drops, the task
//! reconnects with backoff (100 ms doubling to 5 s) and pings the quiet connection every 15 s
//! so a dead one is noticed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caas_logger::announce::Announcement;
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::Secret;
use futures::StreamExt;
use tokio::sync::watch;

use crate::metrics::metrics;

/// How long an announced `seq` is kept: long enough for a gateway that lags the logger by
/// seconds to still find it, short enough to stay small.
pub const RETENTION: Duration = Duration::from_secs(30);

/// The most announced events kept (about 100 bytes each); the oldest go first. A logger at
/// 3,000 events/s announces about 90,000 in [`RETENTION`].
pub const CAPACITY: usize = 100_000;

/// How recent the last announcement must be for announcements to count as flowing: while they
/// do, the waiters poll MongoDB seldom; otherwise (Redis down, a logger that does not
/// announce, an idle logger) they poll as they did without announcements.
pub const FLOWING_WITHIN: Duration = Duration::from_secs(5);

/// How long connecting or subscribing may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The first pause after losing Redis; doubles up to [`RECONNECT_MAX`].
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// How often a quiet subscription is pinged to find out it died.
const PING_EVERY: Duration = Duration::from_secs(15);

/// The `seq` of an event and the message it changed, as `Store::event_seqs` returns them.
pub type SeqAndMessage = (i64, Option<String>);

/// The announced events, bounded by age and count. Pure: the clock is passed in.
#[derive(Debug)]
pub struct AnnouncedSeqs {
    /// Event id → what the logger stored, and when it was heard.
    entries: HashMap<String, (SeqAndMessage, Instant)>,
    /// Event ids in the order heard, to expire the oldest first. An id heard twice is listed
    /// twice; only the listing that matches its entry's time removes it.
    order: VecDeque<(Instant, String)>,
    /// When the last announcement was heard.
    last_heard: Option<Instant>,
    retention: Duration,
    capacity: usize,
}

impl AnnouncedSeqs {
    /// An empty map keeping entries for `retention`, at most `capacity` of them.
    pub fn new(retention: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            last_heard: None,
            retention,
            capacity: capacity.max(1),
        }
    }

    /// Record an announcement heard at `now`.
    pub fn record(&mut self, announcement: Announcement, now: Instant) {
        self.last_heard = Some(now);
        for event in announcement.events {
            self.order.push_back((now, event.id.clone()));
            self.entries
                .insert(event.id, ((event.seq, event.message_id), now));
        }
        self.expire(now);
    }

    /// What was announced for `event_id`, if it is still kept at `now`.
    pub fn get(&self, event_id: &str, now: Instant) -> Option<&SeqAndMessage> {
        self.entries
            .get(event_id)
            .filter(|(_, heard)| now.saturating_duration_since(*heard) < self.retention)
            .map(|(found, _)| found)
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether an announcement was heard within [`FLOWING_WITHIN`] of `now`.
    pub fn flowing(&self, now: Instant) -> bool {
        self.last_heard
            .is_some_and(|heard| now.saturating_duration_since(heard) < FLOWING_WITHIN)
    }

    /// Drop the entries older than the retention, then the oldest beyond the capacity.
    fn expire(&mut self, now: Instant) {
        while let Some((heard, _)) = self.order.front() {
            let expired = now.saturating_duration_since(*heard) >= self.retention;
            if !expired && self.order.len() <= self.capacity {
                break;
            }
            let Some((heard, event_id)) = self.order.pop_front() else {
                break;
            };
            // A later announcement of the same event has its own listing.
            if self
                .entries
                .get(&event_id)
                .is_some_and(|(_, entry_heard)| *entry_heard == heard)
            {
                self.entries.remove(&event_id);
            }
        }
    }
}

/// The announcements this instance heard, shared by the subscriber task and the waiters.
#[derive(Clone)]
pub struct Announced {
    inner: Arc<Inner>,
}

struct Inner {
    seqs: Mutex<AnnouncedSeqs>,
    /// Counts the announcements recorded; waiters wait for it to change.
    heard: watch::Sender<u64>,
}

impl Default for Announced {
    fn default() -> Self {
        Self::new(RETENTION, CAPACITY)
    }
}

impl Announced {
    /// An empty set, filled by [`Announced::record`] (tests) or [`Announced::listen`].
    pub fn new(retention: Duration, capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                seqs: Mutex::new(AnnouncedSeqs::new(retention, capacity)),
                heard: watch::Sender::new(0),
            }),
        }
    }

    /// A set filled by a task listening on `channel` of the Redis at `redis_url` until `stop`.
    /// Starts at once without waiting for Redis. Must be called inside a Tokio runtime.
    pub fn listen(redis_url: Secret, channel: String, stop: CancellationToken) -> Self {
        let announced = Self::default();
        tokio::spawn(subscribe(redis_url, channel, announced.clone(), stop));
        announced
    }

    /// What `config` asks for: listening on the logger's channel for the gateway's database
    /// until `stop`, or (`CAAS_LOGGER_ANNOUNCE_PREFIX=off`) an empty set that never hears
    /// anything.
    pub fn for_config(config: &crate::Config, stop: CancellationToken) -> Self {
        match &config.announce_prefix {
            Some(prefix) => Self::listen(
                config.common.redis_url.clone(),
                caas_logger::announce::channel(prefix, &config.common.mongodb_database),
                stop,
            ),
            None => {
                tracing::info!(
                    "CAAS_LOGGER_ANNOUNCE_PREFIX is off: polling mongodb for the logger's seqs"
                );
                Self::default()
            }
        }
    }

    /// Record an announcement and wake the waiters.
    pub fn record(&self, announcement: Announcement) {
        self.seqs().record(announcement, Instant::now());
        self.inner.heard.send_modify(|heard| *heard += 1);
    }

    /// A receiver that sees every [`Announced::record`] made after this call. Take it before
    /// looking at what is known, so nothing recorded in between is missed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.heard.subscribe()
    }

    /// Copy into `found` what was announced for those of `event_ids` not in it yet; returns
    /// how many were added.
    pub fn collect_into<'a>(
        &self,
        event_ids: impl IntoIterator<Item = &'a str>,
        found: &mut HashMap<String, SeqAndMessage>,
    ) -> usize {
        let now = Instant::now();
        let seqs = self.seqs();
        let mut added = 0;
        for event_id in event_ids {
            if found.contains_key(event_id) {
                continue;
            }
            if let Some(announced) = seqs.get(event_id, now) {
                found.insert(event_id.to_string(), announced.clone());
                added += 1;
            }
        }
        added
    }

    /// Whether announcements are arriving (one within [`FLOWING_WITHIN`]).
    pub fn flowing(&self) -> bool {
        self.seqs().flowing(Instant::now())
    }

    fn seqs(&self) -> std::sync::MutexGuard<'_, AnnouncedSeqs> {
        self.inner
            .seqs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why a subscription ended.
enum Ended {
    /// `stop` was cancelled.
    Stopped,
    /// Redis went away or never answered; try again.
    Lost(String),
}

/// Keep a subscription to `channel` until `stop`, reconnecting with backoff.
async fn subscribe(
    redis_url: Secret,
    channel: String,
    announced: Announced,
    stop: CancellationToken,
) {
    let client = match redis::Client::open(redis_url.expose()) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(
                variable = "CAAS_REDIS_URL",
                error = %error,
                "invalid redis url: not listening to the logger's announcements (polling mongodb for seqs)"
            );
            return;
        }
    };
    let mut pause = RECONNECT_MIN;
    let mut lost = false;
    loop {
        let ended = tokio::select! {
            () = stop.cancelled() => Ended::Stopped,
            ended = listen_once(&client, &channel, &announced, &mut pause, &mut lost) => ended,
        };
        let Ended::Lost(reason) = ended else {
            return;
        };
        if !lost {
            lost = true;
            tracing::warn!(
                channel,
                reason,
                "not hearing the logger's announcements; polling mongodb for seqs until redis is back"
            );
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(RECONNECT_MAX);
    }
}

/// One connection's subscription, until it fails. Resets `pause` and `lost` once subscribed.
async fn listen_once(
    client: &redis::Client,
    channel: &str,
    announced: &Announced,
    pause: &mut Duration,
    lost: &mut bool,
) -> Ended {
    let mut pubsub = match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(error)) => return Ended::Lost(error.to_string()),
        Err(_) => return Ended::Lost("connecting timed out".to_string()),
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, pubsub.subscribe(channel)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Ended::Lost(error.to_string()),
        Err(_) => return Ended::Lost("subscribing timed out".to_string()),
    }
    if std::mem::take(lost) {
        tracing::info!(channel, "hearing the logger's announcements again");
    } else {
        tracing::debug!(channel, "listening to the logger's announcements");
    }
    *pause = RECONNECT_MIN;
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Ended::Lost("the connection closed".to_string());
                };
                ping.reset();
                match Announcement::from_json(message.get_payload_bytes()) {
                    Ok(announcement) => {
                        metrics().seq_announcements.with_label_values(&["received"]).inc();
                        announced.record(announcement);
                    }
                    Err(error) => {
                        metrics().seq_announcements.with_label_values(&["unreadable"]).inc();
                        tracing::warn!(channel, error = %error, "unreadable announcement from the logger; ignored");
                    }
                }
            }
            _ = ping.tick() => {
                let answered =
                    tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>()).await;
                match answered {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return Ended::Lost(error.to_string()),
                    Err(_) => return Ended::Lost("ping unanswered".to_string()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_logger::announce::SequencedEvent;

    fn announcement(events: &[(&str, i64)]) -> Announcement {
        Announcement {
            events: events
                .iter()
                .map(|(id, seq)| SequencedEvent {
                    id: id.to_string(),
                    seq: *seq,
                    message_id: Some(format!("m-{id}")),
                })
                .collect(),
        }
    }

    #[test]
    fn announced_seqs_are_kept_for_the_retention_only() {
        let start = Instant::now();
        let mut seqs = AnnouncedSeqs::new(Duration::from_secs(30), 100);
        seqs.record(announcement(&[("a", 1), ("b", 2)]), start);
        assert_eq!(
            seqs.get("a", start + Duration::from_secs(29)),
            Some(&(1, Some("m-a".to_string())))
        );
        assert_eq!(seqs.get("a", start + Duration::from_secs(30)), None);
        seqs.record(announcement(&[("c", 3)]), start + Duration::from_secs(31));
        assert_eq!(seqs.len(), 1, "a and b expired when c came");
        assert!(seqs.get("c", start + Duration::from_secs(31)).is_some());
    }

    #[test]
    fn the_oldest_go_first_beyond_the_capacity() {
        let start = Instant::now();
        let mut seqs = AnnouncedSeqs::new(Duration::from_secs(30), 3);
        seqs.record(announcement(&[("a", 1), ("b", 1), ("c", 1)]), start);
        seqs.record(
            announcement(&[("d", 1), ("e", 1)]),
            start + Duration::from_millis(1),
        );
        let now = start + Duration::from_millis(2);
        assert_eq!(seqs.len(), 3);
        assert!(seqs.get("a", now).is_none() && seqs.get("b", now).is_none());
        assert!(["c", "d", "e"].iter().all(|id| seqs.get(id, now).is_some()));
    }

    #[test]
    fn an_event_announced_again_is_kept_from_its_last_announcement() {
        let start = Instant::now();
        let mut seqs = AnnouncedSeqs::new(Duration::from_secs(30), 100);
        seqs.record(announcement(&[("a", 1)]), start);
        seqs.record(announcement(&[("a", 1)]), start + Duration::from_secs(20));
        seqs.record(announcement(&[("b", 2)]), start + Duration::from_secs(40));
        assert!(seqs.get("a", start + Duration::from_secs(40)).is_some());
    }

    #[test]
    fn announcements_flow_while_recent() {
        let start = Instant::now();
        let mut seqs = AnnouncedSeqs::new(Duration::from_secs(30), 100);
        assert!(!seqs.flowing(start));
        seqs.record(Announcement::default(), start);
        assert!(seqs.flowing(start + Duration::from_secs(1)));
        assert!(!seqs.flowing(start + FLOWING_WITHIN));
    }

    #[tokio::test]
    async fn recording_wakes_the_waiters_and_fills_what_they_miss() {
        let announced = Announced::default();
        let mut changes = announced.changes();
        let mut found = HashMap::new();
        assert_eq!(announced.collect_into(["a", "b"], &mut found), 0);
        announced.record(announcement(&[("a", 4)]));
        changes.changed().await.unwrap();
        assert_eq!(announced.collect_into(["a", "b"], &mut found), 1);
        assert_eq!(found["a"], (4, Some("m-a".to_string())));
        assert_eq!(
            announced.collect_into(["a"], &mut found),
            0,
            "known already"
        );
    }
}
