//! Data rights: export everything stored about one customer of one tenant, and erase it.
//!
//! Both are library functions (the gateway's API calls them) and `caas-logger` commands (ops
//! runs them). "About the customer" means: their conversations (both channels), every message
//! and orphan status in them, every event whose `customer_ids` names them (their conversations'
//! events, and campaign commands listing them as recipients), and their presence state in
//! Redis. Erasure also deletes ingest's de-duplication keys of their events.
//!
//! An erasure is recorded in `events` as a `customer_erased` document that names the customer
//! only by a hash ([`crate::domain::plan::subject_hash`]) and is never expired. It is written
//! **first**: from then on the logger drops any event about that customer recorded before the
//! erasure, so a Kafka replay (topics keep 7 days) or a lagging consumer cannot bring the data
//! back. Events recorded after the erasure (the customer writes again) are stored as usual.

use std::pin::Pin;

use futures::stream::{self, Stream, StreamExt};
use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb::Database;
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use caas_events::keys::conversation_key;
use caas_events::model::Channel;

use crate::domain::docs::{CONVERSATIONS, EVENTS, MESSAGES, ORPHAN_STATUSES};
use crate::domain::plan::subject_hash;
use crate::error::DataRightsError;
use crate::store::ERASURE_TYPE;

/// The prefix of ingest's de-duplication keys (`services/ingest/src/dedupe.rs`,
/// `record_key`): `caas:ingest:dedupe:<event id>`.
pub const INGEST_DEDUPE_PREFIX: &str = "caas:ingest:dedupe:";

/// One customer of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    tenant_id: String,
    customer_id: String,
}

impl Customer {
    /// Validate the identifiers (non-empty; a tenant id has no `:`).
    pub fn new(tenant_id: &str, customer_id: &str) -> Result<Self, DataRightsError> {
        let tenant_id = tenant_id.trim();
        let customer_id = customer_id.trim();
        if tenant_id.is_empty() || tenant_id.contains(':') {
            return Err(DataRightsError::InvalidRequest(format!(
                "tenant {tenant_id:?} must be non-empty and without ':'"
            )));
        }
        if customer_id.is_empty() {
            return Err(DataRightsError::InvalidRequest(
                "customer must be non-empty".to_string(),
            ));
        }
        Ok(Self {
            tenant_id: tenant_id.to_string(),
            customer_id: customer_id.to_string(),
        })
    }

    /// The tenant.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The customer.
    pub fn customer_id(&self) -> &str {
        &self.customer_id
    }

    /// The customer's conversation keys on every channel.
    pub fn conversation_keys(&self) -> Vec<String> {
        [Channel::Whatsapp, Channel::Rcs]
            .into_iter()
            .map(|channel| conversation_key(&self.tenant_id, channel, &self.customer_id))
            .collect()
    }
}

/// One line of an export: where it comes from and the stored document, as relaxed extended
/// JSON (dates as `{"$date": "..."}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportLine {
    /// `mongodb.conversations`, `mongodb.messages`, `mongodb.orphan_statuses`,
    /// `mongodb.events` or `redis`.
    pub source: String,
    /// The document (for Redis: `{"key": ..., "value": ...}`).
    pub document: serde_json::Value,
}

/// A stream of export lines.
pub type ExportStream = Pin<Box<dyn Stream<Item = Result<ExportLine, DataRightsError>> + Send>>;

fn line(source: &'static str, document: Document) -> ExportLine {
    ExportLine {
        source: source.to_string(),
        document: Bson::Document(document).into_relaxed_extjson(),
    }
}

/// Everything stored about `customer`, streamed with cursors (nothing is collected in memory
/// but the Redis state): Redis presence state, conversations, messages (by conversation and
/// `seq`), orphan statuses, events.
pub async fn export_customer(
    database: &Database,
    redis: &mut redis::aio::ConnectionManager,
    customer: &Customer,
) -> Result<ExportStream, DataRightsError> {
    let keys = customer.conversation_keys();
    let presence =
        caas_presence::store::customer_state(redis, &customer.tenant_id, &customer.customer_id)
            .await
            .map_err(|error| DataRightsError::Redis {
                operation: "read presence state",
                reason: error.to_string(),
            })?;
    let presence_lines = presence.into_iter().map(|(key, value)| {
        let value = serde_json::from_str(&value).unwrap_or(serde_json::Value::String(value));
        Ok(ExportLine {
            source: "redis".to_string(),
            document: serde_json::json!({ "key": key, "value": value }),
        })
    });
    let conversations = database
        .collection::<Document>(CONVERSATIONS)
        .find(doc! { "_id": { "$in": &keys } })
        .sort(doc! { "_id": 1 })
        .await
        .map_err(DataRightsError::mongo("export conversations"))?;
    let messages = database
        .collection::<Document>(MESSAGES)
        .find(doc! { "conversation_key": { "$in": &keys } })
        .sort(doc! { "conversation_key": 1, "seq": 1 })
        .await
        .map_err(DataRightsError::mongo("export messages"))?;
    let orphans = database
        .collection::<Document>(ORPHAN_STATUSES)
        .find(doc! { "conversation_key": { "$in": &keys } })
        .await
        .map_err(DataRightsError::mongo("export orphan statuses"))?;
    let events = database
        .collection::<Document>(EVENTS)
        .find(doc! { "tenant_id": &customer.tenant_id, "customer_ids": &customer.customer_id })
        .await
        .map_err(DataRightsError::mongo("export events"))?;
    let mongo_line = |source: &'static str, operation: &'static str| {
        move |document: Result<Document, mongodb::error::Error>| {
            document
                .map(|document| line(source, document))
                .map_err(DataRightsError::mongo(operation))
        }
    };
    let stream = stream::iter(presence_lines)
        .chain(conversations.map(mongo_line("mongodb.conversations", "export conversations")))
        .chain(messages.map(mongo_line("mongodb.messages", "export messages")))
        .chain(orphans.map(mongo_line(
            "mongodb.orphan_statuses",
            "export orphan statuses",
        )))
        .chain(events.map(mongo_line("mongodb.events", "export events")));
    Ok(Box::pin(stream))
}

/// Write an export as JSON lines; returns the number of lines.
pub async fn write_json_lines(
    mut export: ExportStream,
    writer: &mut (impl AsyncWrite + Unpin),
) -> Result<u64, DataRightsError> {
    let mut lines = 0u64;
    while let Some(line) = export.next().await {
        let mut text = serde_json::to_string(&line?).map_err(std::io::Error::other)?;
        text.push('\n');
        writer.write_all(text.as_bytes()).await?;
        lines += 1;
    }
    writer.flush().await?;
    Ok(lines)
}

/// What an erasure deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    /// The `_id` of the `customer_erased` record in `events`.
    pub erasure_id: String,
    /// Events deleted.
    pub events: u64,
    /// Campaign events that listed the customer among others, with the customer removed.
    pub events_redacted: u64,
    /// Messages deleted.
    pub messages: u64,
    /// Conversations deleted.
    pub conversations: u64,
    /// Orphan statuses deleted.
    pub orphan_statuses: u64,
    /// Presence keys deleted.
    pub presence_keys: usize,
    /// Ingest de-duplication keys deleted.
    pub dedupe_keys: usize,
}

/// Erase everything stored about `customer` (see the module docs); `requested_by` says who
/// asked (an operator id, `ops`), for the record. Idempotent: running it again finishes an
/// interrupted erasure and records another erasure.
pub async fn erase_customer(
    database: &Database,
    redis: &mut redis::aio::ConnectionManager,
    customer: &Customer,
    requested_by: &str,
) -> Result<ErasureReport, DataRightsError> {
    let keys = customer.conversation_keys();
    let events = database.collection::<Document>(EVENTS);
    let erasure_id = uuid::Uuid::new_v4().to_string();
    let erased_at = DateTime::now();
    events
        .insert_one(doc! {
            "_id": &erasure_id,
            "type": ERASURE_TYPE,
            "tenant_id": &customer.tenant_id,
            "subject_hash": subject_hash(&customer.tenant_id, &customer.customer_id),
            "erased_at": erased_at,
            "requested_by": requested_by,
            "status": "in_progress",
        })
        .await
        .map_err(DataRightsError::mongo("record the erasure"))?;
    let mut report = ErasureReport {
        erasure_id: erasure_id.clone(),
        ..ErasureReport::default()
    };

    // Ingest's dedupe keys are named by event id: read the ids before deleting the events.
    let mut ids = events
        .find(doc! { "conversation_key": { "$in": &keys } })
        .projection(doc! { "_id": 1 })
        .await
        .map_err(DataRightsError::mongo("list the customer's events"))?;
    let mut chunk: Vec<String> = Vec::new();
    while let Some(document) = ids.next().await {
        let document = document.map_err(DataRightsError::mongo("list the customer's events"))?;
        if let Ok(id) = document.get_str("_id") {
            chunk.push(format!("{INGEST_DEDUPE_PREFIX}{id}"));
        }
        if chunk.len() >= 500 {
            report.dedupe_keys += delete_keys(redis, std::mem::take(&mut chunk)).await?;
        }
    }
    report.dedupe_keys += delete_keys(redis, chunk).await?;

    report.events = events
        .delete_many(doc! { "conversation_key": { "$in": &keys } })
        .await
        .map_err(DataRightsError::mongo("delete events"))?
        .deleted_count;
    report.events_redacted = events
        .update_many(
            doc! { "tenant_id": &customer.tenant_id, "customer_ids": &customer.customer_id },
            doc! { "$pull": {
                "customer_ids": &customer.customer_id,
                "payload.action.create.recipients": &customer.customer_id,
            } },
        )
        .await
        .map_err(DataRightsError::mongo("redact campaign events"))?
        .modified_count;
    report.messages = database
        .collection::<Document>(MESSAGES)
        .delete_many(doc! { "conversation_key": { "$in": &keys } })
        .await
        .map_err(DataRightsError::mongo("delete messages"))?
        .deleted_count;
    report.orphan_statuses = database
        .collection::<Document>(ORPHAN_STATUSES)
        .delete_many(doc! { "conversation_key": { "$in": &keys } })
        .await
        .map_err(DataRightsError::mongo("delete orphan statuses"))?
        .deleted_count;
    report.conversations = database
        .collection::<Document>(CONVERSATIONS)
        .delete_many(doc! { "_id": { "$in": &keys } })
        .await
        .map_err(DataRightsError::mongo("delete conversations"))?
        .deleted_count;
    report.presence_keys =
        caas_presence::store::erase_customer(redis, &customer.tenant_id, &customer.customer_id)
            .await
            .map_err(|error| DataRightsError::Redis {
                operation: "delete presence state",
                reason: error.to_string(),
            })?;

    let counts = mongodb::bson::to_document(&report).unwrap_or_default();
    events
        .update_one(
            doc! { "_id": &erasure_id },
            doc! { "$set": { "status": "completed", "completed_at": DateTime::now(), "counts": counts } },
        )
        .await
        .map_err(DataRightsError::mongo("complete the erasure record"))?;
    tracing::info!(
        erasure_id,
        tenant = %customer.tenant_id,
        events = report.events,
        messages = report.messages,
        conversations = report.conversations,
        "customer erased"
    );
    Ok(report)
}

async fn delete_keys(
    redis: &mut redis::aio::ConnectionManager,
    keys: Vec<String>,
) -> Result<usize, DataRightsError> {
    if keys.is_empty() {
        return Ok(0);
    }
    redis::cmd("DEL")
        .arg(&keys)
        .query_async(redis)
        .await
        .map_err(|error| DataRightsError::Redis {
            operation: "delete de-duplication keys",
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_are_validated_and_span_both_channels() {
        let customer = Customer::new("acme", "4915112345678").unwrap();
        assert_eq!(
            customer.conversation_keys(),
            vec!["acme:whatsapp:4915112345678", "acme:rcs:4915112345678"]
        );
        assert!(Customer::new("a:b", "1").is_err());
        assert!(Customer::new("acme", " ").is_err());
    }

    #[test]
    fn the_dedupe_prefix_matches_ingest() {
        let source =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingest/src/dedupe.rs");
        let text = std::fs::read_to_string(&source).expect("services/ingest/src/dedupe.rs exists");
        assert!(
            text.contains(&format!("\"{INGEST_DEDUPE_PREFIX}{{event_id}}\"")),
            "ingest's record_key no longer builds {INGEST_DEDUPE_PREFIX}<event id>; update INGEST_DEDUPE_PREFIX"
        );
    }
}
