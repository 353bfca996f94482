//! Announcing what each batch stored, so the gateway need not poll MongoDB for it.
//!
//! After a batch's transaction **committed** (durable first), the logger publishes one JSON
//! message on the Redis pub/sub channel [`channel`]`(prefix, database)`, by default
//! `caas:logger:sequenced:<CAAS_MONGODB_DATABASE>`:
//!
//! ```json
//! {"events":[{"id":"<event id>","seq":7,"message_id":"in:whatsapp:wamid.1"},{"id":"<event id>","seq":8}]}
//! ```
//!
//! one entry per event the batch inserted with a conversation `seq`, with the `messages`
//! document it changed when there is one: exactly what the gateway would read back from
//! `events`. The database is part of the channel because the announcement is a statement about
//! that database: deployments (and tests) that share a Redis but keep their documents apart
//! must not take each other's numbers.
//!
//! It is a notification, not a record: best effort and at most once. A background task
//! publishes, so a slow or absent Redis never delays a batch; when its queue is full or Redis
//! refuses, the announcement is dropped and counted
//! (`caas_logger_announcements_total{outcome}`). Readers must fall back to `events`, which
//! stays the authority (the gateway reads it at the start of every wait and every 250 ms).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::domain::docs::EventDoc;
use crate::metrics::metrics;

/// The default channel prefix (`CAAS_LOGGER_ANNOUNCE_PREFIX`).
pub const DEFAULT_PREFIX: &str = "caas:logger:sequenced";

/// The variable naming the channel prefix; the logger and the gateway both read it.
pub const PREFIX_VARIABLE: &str = "CAAS_LOGGER_ANNOUNCE_PREFIX";

/// The channel prefix from [`PREFIX_VARIABLE`] (default [`DEFAULT_PREFIX`]); `None` when it
/// is `off`.
pub fn prefix_from_env(env: &caas_runtime::Env) -> Option<String> {
    let prefix = env.string(PREFIX_VARIABLE, DEFAULT_PREFIX);
    (!prefix.eq_ignore_ascii_case("off")).then_some(prefix)
}

/// Announcements waiting for the publisher; beyond this, new ones are dropped (Redis is slow
/// or down, and the readers poll anyway).
const QUEUE_CAPACITY: usize = 64;

/// How long one publish may take before it counts as failed and the next one is tried.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// The channel the logger writing to `database` announces on: `<prefix>:<database>`.
pub fn channel(prefix: &str, database: &str) -> String {
    format!("{prefix}:{database}")
}

/// What one committed batch stored with a `seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// The events, in the batch's order.
    pub events: Vec<SequencedEvent>,
}

/// One stored event's conversation sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencedEvent {
    /// The event id (`events._id`).
    pub id: String,
    /// `events.seq`.
    pub seq: i64,
    /// `events.message_id`: the `messages` document the event changed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl Announcement {
    /// The announcement of `inserted` (a batch's new `events` documents): those with a `seq`.
    pub fn of_inserted(inserted: &[EventDoc]) -> Self {
        let events = inserted
            .iter()
            .filter_map(|event| {
                Some(SequencedEvent {
                    id: event.id.clone(),
                    seq: event.seq?,
                    message_id: event.message_id.clone(),
                })
            })
            .collect();
        Self { events }
    }

    /// The message as published.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings and integers only: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Read a published message.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Publishes announcements from a background task. Cheap to clone; [`Announcer::disabled`]
/// drops everything.
#[derive(Debug, Clone)]
pub struct Announcer {
    /// The publisher task's queue; `None` when announcing is off.
    queue: Option<mpsc::Sender<Announcement>>,
}

impl Announcer {
    /// An announcer that announces nothing (`CAAS_LOGGER_ANNOUNCE_PREFIX=off`).
    pub fn disabled() -> Self {
        Self { queue: None }
    }

    /// Publish on `channel` through the Redis at `redis_url`. Does not connect yet (Redis may
    /// be down; each publish tries again). Must be called inside a Tokio runtime: it starts
    /// the publisher task, which ends when every clone of the announcer is dropped.
    pub fn start(redis_url: &str, channel: String) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(redis_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            // Fail fast while Redis is down: the next announcement tries again.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(publish_all(connection, channel, receiver));
        Ok(Self {
            queue: Some(sender),
        })
    }

    /// Queue `announcement` for publishing; never waits. Call only after the batch committed.
    pub fn announce(&self, announcement: Announcement) {
        let Some(queue) = &self.queue else {
            return;
        };
        if announcement.events.is_empty() {
            return;
        }
        if queue.try_send(announcement).is_err() {
            metrics()
                .announcements
                .with_label_values(&["dropped"])
                .inc();
        }
    }
}

/// Publish every queued announcement, in order, until the queue closes.
async fn publish_all(
    mut connection: ConnectionManager,
    channel: String,
    mut queue: mpsc::Receiver<Announcement>,
) {
    let mut failing = false;
    while let Some(announcement) = queue.recv().await {
        let payload = announcement.to_json();
        let published = tokio::time::timeout(
            PUBLISH_TIMEOUT,
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(payload)
                .query_async::<i64>(&mut connection),
        )
        .await;
        let error = match published {
            Ok(Ok(_receivers)) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!(
                "no answer within {} ms",
                PUBLISH_TIMEOUT.as_millis()
            )),
        };
        match error {
            None => {
                metrics()
                    .announcements
                    .with_label_values(&["published"])
                    .inc();
                if failing {
                    failing = false;
                    tracing::info!(channel, "announcing committed seqs on redis again");
                }
            }
            Some(error) => {
                metrics().announcements.with_label_values(&["failed"]).inc();
                if !failing {
                    failing = true;
                    tracing::warn!(
                        channel,
                        error,
                        "cannot announce committed seqs on redis; readers fall back to polling mongodb"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_is_compact_and_round_trips() {
        let announcement = Announcement {
            events: vec![
                SequencedEvent {
                    id: "e1".to_string(),
                    seq: 7,
                    message_id: Some("in:whatsapp:m1".to_string()),
                },
                SequencedEvent {
                    id: "e2".to_string(),
                    seq: 8,
                    message_id: None,
                },
            ],
        };
        let json = announcement.to_json();
        assert_eq!(
            String::from_utf8(json.clone()).unwrap(),
            r#"{"events":[{"id":"e1","seq":7,"message_id":"in:whatsapp:m1"},{"id":"e2","seq":8}]}"#
        );
        assert_eq!(Announcement::from_json(&json).unwrap(), announcement);
    }

    #[test]
    fn the_channel_names_the_database() {
        assert_eq!(
            channel(DEFAULT_PREFIX, "caas"),
            "caas:logger:sequenced:caas"
        );
    }

    #[test]
    fn only_events_with_a_seq_are_announced() {
        let event = |id: &str, seq: Option<i64>, message_id: Option<&str>| EventDoc {
            id: id.to_string(),
            event_type: "inbound_message".to_string(),
            topic: "inbound.messages.v1".to_string(),
            partition: 0,
            offset: 0,
            key: None,
            tenant_id: "t".to_string(),
            conversation_key: "t:whatsapp:1".to_string(),
            customer_ids: Vec::new(),
            seq,
            message_id: message_id.map(str::to_string),
            occurred_at: mongodb::bson::DateTime::from_millis(0),
            recorded_at: mongodb::bson::DateTime::from_millis(0),
            stored_at: mongodb::bson::DateTime::from_millis(0),
            payload: mongodb::bson::Document::new(),
        };
        let announcement = Announcement::of_inserted(&[
            event("a", Some(3), Some("in:whatsapp:m")),
            event("presence", None, None),
            event("b", Some(4), None),
        ]);
        let announced: Vec<(&str, i64, Option<&str>)> = announcement
            .events
            .iter()
            .map(|event| (event.id.as_str(), event.seq, event.message_id.as_deref()))
            .collect();
        assert_eq!(
            announced,
            vec![("a", 3, Some("in:whatsapp:m")), ("b", 4, None)]
        );
    }
}
