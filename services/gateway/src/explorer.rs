//! The event explorer's edges: searches on the logger's `events` collection and the live tail
//! of newly stored events for admins (the rules are in [`crate::domain::explorer`]).
//!
//! **Search.** `{tenant_id, occurred_at (range), [type], [conversation_key], [$or of escaped,
//! case-insensitive regexes over the text fields]}`, newest first (`occurred_at`, then `_id`),
//! one page at a time. The `tenant_time` index (`{tenant_id, occurred_at: -1, _id: -1}`)
//! bounds the scan to the tenant's time range; `conversation_time` (`{conversation_key,
//! occurred_at: -1, _id: -1}`) serves a conversation filter ([`ensure_indexes`]). The regex
//! cannot use an index, so free text only runs inside a range of at most 7 days, and every
//! search has a server-side time limit ([`SEARCH_TIME_LIMIT`]): a search too broad for it is
//! refused with advice rather than left running.
//!
//! **Live tail.** Each gateway instance watches a MongoDB change stream of inserts into
//! `events` while at least one of its own sockets subscribed, and emits each stored event of a
//! subscribed tenant to that tenant's explorer room **on this instance only** (every instance
//! tails for its own sockets, so nothing goes through the Redis adapter and nothing is
//! delivered twice). The tail shows what the logger committed (transactions become visible to
//! change streams only once committed); what happened while a client was not subscribed is the
//! search's job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use mongodb::bson::{doc, Bson, DateTime, Document};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::explorer::{self, Search, TEXT_FIELDS};
use crate::domain::rooms;
use crate::metrics::metrics;
use crate::realtime::Io;

/// The logger's collection of every processed event.
const EVENTS: &str = caas_logger::domain::docs::EVENTS;
/// How long MongoDB may work on one search page.
pub const SEARCH_TIME_LIMIT: Duration = Duration::from_secs(10);
/// The server event of the live tail.
pub const TAIL_EVENT: &str = "explorer.event";

/// Why a search or a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum ExplorerError {
    /// The search ran into [`SEARCH_TIME_LIMIT`].
    #[error("the search took longer than {} s; narrow the time range or add a type or conversation filter", SEARCH_TIME_LIMIT.as_secs())]
    TooBroad,
    /// MongoDB failed or did not answer.
    #[error("the event store is unavailable, try again: {0}")]
    Unavailable(String),
}

impl From<mongodb::error::Error> for ExplorerError {
    fn from(error: mongodb::error::Error) -> Self {
        // 50 MaxTimeMSExpired
        if matches!(*error.kind, mongodb::error::ErrorKind::Command(ref command) if command.code == 50)
        {
            ExplorerError::TooBroad
        } else {
            ExplorerError::Unavailable(error.to_string())
        }
    }
}

/// Up to this many stored events the gateway creates the explorer's indexes itself at
/// start-up; beyond it the build is left to ops (see [`ensure_indexes`]).
pub const AUTO_INDEX_MAX_EVENTS: u64 = 100_000;

/// The explorer's indexes on `events`: a tenant's events in a time range, newest first
/// (`tenant_time`), and the same within one key (`conversation_time`).
pub fn index_specs() -> Vec<Document> {
    vec![
        doc! { "key": { "tenant_id": 1, "occurred_at": -1, "_id": -1 }, "name": "tenant_time" },
        doc! {
            "key": { "conversation_key": 1, "occurred_at": -1, "_id": -1 },
            "name": "conversation_time",
        },
    ]
}

/// Create the explorer's indexes (idempotent) when `events` is small enough to index at once;
/// otherwise log the command for ops. Building an index over a large collection is an
/// operation to plan: real MongoDB builds online but it still costs I/O, and the local
/// MongoDB-wire server barely answered anything else for many minutes while it built these
/// over ~450k events. Without them searches still work, bounded by their time range and the
/// 10 s limit. Retries until MongoDB answers; never blocks start-up.
pub async fn ensure_indexes(database: mongodb::Database, stop: CancellationToken) {
    loop {
        let outcome = async {
            let events = database
                .collection::<Document>(EVENTS)
                .estimated_document_count()
                .await?;
            if events > AUTO_INDEX_MAX_EVENTS {
                let existing = database
                    .collection::<Document>(EVENTS)
                    .list_index_names()
                    .await?;
                if !existing.iter().any(|name| name == "tenant_time") {
                    tracing::warn!(
                        events,
                        command = %doc! { "createIndexes": EVENTS, "indexes": index_specs() },
                        "the event explorer's indexes are missing and events is large; run this command in a maintenance window (searches scan their time range until then)"
                    );
                }
                return Ok::<(), mongodb::error::Error>(());
            }
            database
                .run_command(doc! { "createIndexes": EVENTS, "indexes": index_specs() })
                .await?;
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => return,
            Err(error) => {
                tracing::debug!(error = %error, "cannot check the explorer's indexes yet; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                }
            }
        }
    }
}

/// One page of a search.
pub struct Page {
    /// Event summaries, newest first.
    pub events: Vec<Value>,
    /// Pass as `before` for the next page; `None` on the last one.
    pub next_before: Option<String>,
}

/// The MongoDB filter of a search.
pub fn search_filter(search: &Search) -> Document {
    let mut clauses = vec![
        doc! { "tenant_id": &search.tenant },
        doc! { "occurred_at": {
            "$gte": DateTime::from_millis(search.from),
            "$lt": DateTime::from_millis(search.to),
        } },
    ];
    if let Some(key) = &search.conversation_key {
        clauses.push(doc! { "conversation_key": key });
    }
    if !search.types.is_empty() {
        clauses.push(doc! { "type": { "$in": &search.types } });
    }
    if let Some((at, id)) = &search.before {
        let at = DateTime::from_millis(*at);
        clauses.push(doc! { "$or": [
            { "occurred_at": { "$lt": at } },
            { "occurred_at": at, "_id": { "$lt": id } },
        ] });
    }
    if let Some(text) = &search.text {
        let pattern = explorer::escape_regex(text);
        let any_field: Vec<Document> = TEXT_FIELDS
            .iter()
            .map(|field| doc! { *field: { "$regex": &pattern, "$options": "i" } })
            .collect();
        clauses.push(doc! { "$or": any_field });
    }
    doc! { "$and": clauses }
}

/// Run one page of `search` on `database`.
pub async fn search(database: &mongodb::Database, search: &Search) -> Result<Page, ExplorerError> {
    let limit = search.limit as usize;
    let query = async {
        database
            .collection::<Document>(EVENTS)
            .find(search_filter(search))
            .sort(doc! { "occurred_at": -1, "_id": -1 })
            .limit(limit as i64 + 1)
            .max_time(SEARCH_TIME_LIMIT)
            .await?
            .try_collect::<Vec<Document>>()
            .await
    };
    // The server's own limit ends a broad search; this one covers an unreachable server.
    let documents = tokio::time::timeout(SEARCH_TIME_LIMIT + Duration::from_secs(5), query)
        .await
        .map_err(|_| ExplorerError::TooBroad)??;
    let more = documents.len() > limit;
    let events: Vec<Value> = documents
        .into_iter()
        .take(limit)
        .map(|document| event_json(document, false))
        .collect();
    let next_before = more.then(|| events.last()).flatten().and_then(|last| {
        Some(explorer::encode_cursor(
            last["occurred_at"].as_i64()?,
            last["id"].as_str()?,
        ))
    });
    Ok(Page {
        events,
        next_before,
    })
}

/// One stored event of `tenant` with its whole payload; `None` when there is none (or it is
/// another tenant's: the same answer, so ids of other tenants cannot be probed).
pub async fn event(
    database: &mongodb::Database,
    tenant: &str,
    id: &str,
) -> Result<Option<Value>, ExplorerError> {
    let found = tokio::time::timeout(
        Duration::from_secs(5),
        database
            .collection::<Document>(EVENTS)
            .find_one(doc! { "_id": id, "tenant_id": tenant }),
    )
    .await
    .map_err(|_| ExplorerError::Unavailable("mongodb did not answer within 5 s".into()))??;
    Ok(found.map(|document| event_json(document, true)))
}

/// A stored event as JSON: times in epoch milliseconds, a one-line `summary`, and the payload
/// when `with_payload` (the list leaves it out; one click fetches it).
pub fn event_json(mut document: Document, with_payload: bool) -> Value {
    let millis = |document: &Document, field: &str| {
        document
            .get_datetime(field)
            .ok()
            .map(|at| at.timestamp_millis())
    };
    let payload = match document.remove("payload") {
        Some(Bson::Document(payload)) => Bson::Document(payload).into_relaxed_extjson(),
        _ => Value::Null,
    };
    let text = |field: &str| document.get_str(field).ok().map(str::to_string);
    let event_type = text("type").unwrap_or_default();
    let mut value = json!({
        "id": text("_id"),
        "type": event_type,
        "tenant_id": text("tenant_id"),
        "conversation_key": text("conversation_key"),
        "topic": text("topic"),
        "partition": document.get("partition").and_then(Bson::as_i32),
        "offset": document.get("offset").and_then(Bson::as_i64),
        "seq": document.get("seq").and_then(|seq| seq.as_i64().or(seq.as_i32().map(i64::from))),
        "message_id": text("message_id"),
        "source": payload.get("source").cloned().unwrap_or(Value::Null),
        "occurred_at": millis(&document, "occurred_at"),
        "recorded_at": millis(&document, "recorded_at"),
        "stored_at": millis(&document, "stored_at"),
        "summary": explorer::summarize(&event_type, &payload),
    });
    if with_payload {
        value["payload"] = payload;
    }
    value
}

/// Which tenants' explorer rooms have subscribers on this instance, and how many.
#[derive(Clone, Default)]
pub struct Subscribers {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    changed: Arc<Notify>,
}

impl Subscribers {
    /// One more socket of `tenant` tails.
    pub fn add(&self, tenant: &str) {
        *self.lock().entry(tenant.to_string()).or_default() += 1;
        self.changed.notify_waiters();
    }

    /// One socket of `tenant` stopped tailing.
    pub fn remove(&self, tenant: &str) {
        let mut counts = self.lock();
        if let Some(count) = counts.get_mut(tenant) {
            *count -= 1;
            if *count == 0 {
                counts.remove(tenant);
            }
        }
    }

    fn watches(&self, tenant: &str) -> bool {
        self.lock().contains_key(tenant)
    }

    fn any(&self) -> bool {
        !self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Tail the stored events for this instance's subscribers until `stop`: a change stream while
/// anyone subscribes, none otherwise; reopened after errors.
pub async fn tail(
    io: Io,
    database: mongodb::Database,
    subscribers: Subscribers,
    stop: CancellationToken,
) {
    loop {
        // Wait for a first subscriber (re-checked every second: a notification may race).
        while !subscribers.any() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = subscribers.changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        let opened = database
            .collection::<Document>(EVENTS)
            .watch()
            .pipeline([doc! { "$match": { "operationType": "insert" } }])
            .await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(error = %error, "cannot open the events change stream; retrying in 2 s");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        tracing::debug!("events change stream opened for the explorer's live tail");
        while subscribers.any() {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = tokio::time::timeout(Duration::from_secs(1), stream.next()) => next,
            };
            let change = match next {
                Err(_) => continue,
                Ok(None) => break,
                Ok(Some(Err(error))) => {
                    tracing::warn!(error = %error, "events change stream failed; reopening");
                    break;
                }
                Ok(Some(Ok(change))) => change,
            };
            let Some(document) = change.full_document else {
                continue;
            };
            let Ok(tenant) = document.get_str("tenant_id").map(str::to_string) else {
                continue;
            };
            if !subscribers.watches(&tenant) {
                continue;
            }
            let summary = event_json(document, false);
            let emitted = io
                .local()
                .to(rooms::explorer(&tenant))
                .emit(TAIL_EVENT, &summary)
                .await;
            let scope = if emitted.is_ok() { "local" } else { "failed" };
            metrics()
                .emits
                .with_label_values(&[TAIL_EVENT, scope])
                .inc();
        }
    }
}
