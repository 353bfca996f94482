//! Read-only access to what the logger keeps in MongoDB (database `caas`): the `events`
//! collection (for each event's conversation `seq`), `conversations` and `messages`.
//!
//! The logger owns these documents and their shape; the gateway never writes them. They are
//! read into the logger's own document types ([`caas_logger::domain::docs`]), so a change of
//! that contract breaks this crate's build rather than its answers; the mappings to the views
//! operators see are pure functions ([`conversation_from_document`], [`message_from_document`]).

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ClientOptions;

use caas_logger::domain::docs::{self, ConversationDoc, ConversationState, MessageDoc, Mode};

use crate::domain::views::{
    ConversationView, DeliveryStatus, Direction, LastMessage, MessageError, MessageView,
};

/// Field names of the logger's documents used in queries (the documents themselves are read
/// into the logger's own types, [`caas_logger::domain::docs`]).
pub mod fields {
    pub use caas_logger::domain::docs::{CONVERSATIONS, EVENTS, MESSAGES};
    /// The conversation sequence (on events, messages and conversations).
    pub const SEQ: &str = "seq";
    /// A message's conversation.
    pub const CONVERSATION_KEY: &str = "conversation_key";
    /// A conversation's tenant.
    pub const TENANT_ID: &str = "tenant_id";
    /// A conversation's mode (`bot` | `human`).
    pub const MODE: &str = "mode";
    /// A conversation's assignee.
    pub const ASSIGNEE: &str = "assignee";
    /// A conversation's unread count.
    pub const UNREAD_COUNT: &str = "unread_count";
    /// When the logger last changed a conversation: the list's sort key.
    pub const LAST_ACTIVITY_AT: &str = "updated_at";
    /// On an event: the `messages` document it changed.
    pub const MESSAGE_ID: &str = "message_id";
}

/// Reading from MongoDB failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The driver reported an error (server unreachable, query refused, ...).
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// No answer within the query timeout.
    #[error("mongodb did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// A pagination cursor that this gateway did not issue.
    #[error("invalid cursor: pass the next_cursor of a previous page")]
    BadCursor,
}

/// Filters of the conversation list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    /// `bot` or `human`.
    pub mode: Option<String>,
    /// An operator id; `Some(None)` means "unassigned".
    pub assignee: Option<Option<String>>,
    /// Only conversations with unread customer messages.
    pub unread_only: bool,
}

/// One page of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationPage {
    /// The conversations, newest activity first.
    pub conversations: Vec<ConversationView>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A handle on the logger's database. Cheap to clone; connects lazily.
#[derive(Clone, Debug)]
pub struct Store {
    database: mongodb::Database,
    timeout: Duration,
}

impl Store {
    /// A store on `database` at `uri`; does not connect until the first query.
    pub async fn new(uri: &str, database: &str) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(uri).await?;
        let timeout = Duration::from_secs(2);
        options.server_selection_timeout = Some(timeout);
        options.connect_timeout = Some(timeout);
        options.app_name = Some("caas-gateway".to_string());
        let client = mongodb::Client::with_options(options)?;
        Ok(Self {
            database: client.database(database),
            timeout: Duration::from_secs(3),
        })
    }

    fn collection(&self, name: &str) -> mongodb::Collection<Document> {
        self.database.collection(name)
    }

    async fn bounded<T>(
        &self,
        query: impl std::future::IntoFuture<Output = Result<T, mongodb::error::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, query.into_future()).await {
            Ok(outcome) => Ok(outcome?),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    /// The `seq` the logger assigned to event `event_id` and the id of the message the event
    /// changed; `None` while the logger has not processed the event.
    pub async fn event_seq(
        &self,
        event_id: &str,
    ) -> Result<Option<(i64, Option<String>)>, StoreError> {
        let found = self
            .bounded(
                self.collection(fields::EVENTS)
                    .find_one(doc! { "_id": event_id })
                    .projection(doc! { fields::SEQ: 1, fields::MESSAGE_ID: 1 }),
            )
            .await?;
        Ok(found.and_then(|document| {
            let seq = integer(document.get(fields::SEQ))?;
            let message_id = document
                .get_str(fields::MESSAGE_ID)
                .ok()
                .map(str::to_string);
            Some((seq, message_id))
        }))
    }

    /// [`Store::event_seq`] for many events at once: those the logger stored, by event id.
    pub async fn event_seqs(
        &self,
        event_ids: &[&str],
    ) -> Result<HashMap<String, (i64, Option<String>)>, StoreError> {
        let documents: Vec<Document> = self
            .bounded(async {
                self.collection(fields::EVENTS)
                    .find(doc! { "_id": { "$in": event_ids } })
                    .projection(doc! { fields::SEQ: 1, fields::MESSAGE_ID: 1 })
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        Ok(documents
            .into_iter()
            .filter_map(|document| {
                let id = document.get_str("_id").ok()?.to_string();
                let seq = integer(document.get(fields::SEQ))?;
                let message_id = document
                    .get_str(fields::MESSAGE_ID)
                    .ok()
                    .map(str::to_string);
                Some((id, (seq, message_id)))
            })
            .collect())
    }

    /// Several conversations at once, by key (those the logger has).
    pub async fn conversations_by_key(
        &self,
        keys: &[&str],
    ) -> Result<HashMap<String, ConversationView>, StoreError> {
        let documents: Vec<Document> = self
            .bounded(async {
                self.collection(fields::CONVERSATIONS)
                    .find(doc! { "_id": { "$in": keys } })
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        Ok(documents
            .iter()
            .filter_map(conversation_from_document)
            .map(|conversation| (conversation.conversation_key.clone(), conversation))
            .collect())
    }

    /// The conversation `conversation_key` as the logger keeps it.
    pub async fn conversation(
        &self,
        conversation_key: &str,
    ) -> Result<Option<ConversationView>, StoreError> {
        let found = self
            .bounded(
                self.collection(fields::CONVERSATIONS)
                    .find_one(doc! { "_id": conversation_key }),
            )
            .await?;
        Ok(found.and_then(|document| conversation_from_document(&document)))
    }

    /// One page of `tenant`'s conversations, newest activity first.
    pub async fn conversations(
        &self,
        tenant: &str,
        filter: &ConversationFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ConversationPage, StoreError> {
        // (tenant_id, updated_at desc) is the logger's `tenant_recent` index.
        let mut clauses = vec![doc! { fields::TENANT_ID: tenant }];
        if let Some(mode) = &filter.mode {
            clauses.push(doc! { fields::MODE: mode });
        }
        match &filter.assignee {
            Some(Some(assignee)) => clauses.push(doc! { fields::ASSIGNEE: assignee }),
            Some(None) => clauses.push(doc! { fields::ASSIGNEE: Bson::Null }),
            None => {}
        }
        if filter.unread_only {
            clauses.push(doc! { fields::UNREAD_COUNT: { "$gt": 0 } });
        }
        if let Some(cursor) = cursor {
            let (activity, key) = decode_cursor(cursor)?;
            // Descending activity, ascending key among equals; missing activity sorts last.
            clauses.push(doc! { "$or": [
                { fields::LAST_ACTIVITY_AT: { "$lt": activity.clone() } },
                { fields::LAST_ACTIVITY_AT: activity, "_id": { "$gt": key } },
            ]});
        }
        let limit = limit.clamp(1, 200);
        let documents: Vec<Document> = self
            .bounded(async {
                self.collection(fields::CONVERSATIONS)
                    .find(doc! { "$and": clauses })
                    .sort(doc! { fields::LAST_ACTIVITY_AT: -1, "_id": 1 })
                    .limit(i64::from(limit) + 1)
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        let has_more = documents.len() > limit as usize;
        let page: Vec<&Document> = documents.iter().take(limit as usize).collect();
        let next_cursor = match (has_more, page.last()) {
            (true, Some(last)) => Some(encode_cursor(
                last.get(fields::LAST_ACTIVITY_AT)
                    .cloned()
                    .unwrap_or(Bson::Null),
                last.get_str("_id").unwrap_or_default(),
            )),
            _ => None,
        };
        Ok(ConversationPage {
            conversations: page
                .into_iter()
                .filter_map(conversation_from_document)
                .collect(),
            next_cursor,
        })
    }

    /// Messages of a conversation whose latest change has `seq > after_seq`, in `seq` order:
    /// new messages and messages whose status moved since.
    pub async fn messages_after(
        &self,
        conversation_key: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<(Vec<MessageView>, bool), StoreError> {
        let limit = limit.clamp(1, 500);
        let documents: Vec<Document> = self
            .bounded(async {
                self.collection(fields::MESSAGES)
                    .find(doc! {
                        fields::CONVERSATION_KEY: conversation_key,
                        fields::SEQ: { "$gt": after_seq },
                    })
                    .sort(doc! { fields::SEQ: 1 })
                    .limit(i64::from(limit) + 1)
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        let has_more = documents.len() > limit as usize;
        Ok((
            documents
                .iter()
                .take(limit as usize)
                .filter_map(message_from_document)
                .collect(),
            has_more,
        ))
    }

    /// The logger's database (data-rights requests run the logger's own functions on it).
    pub fn database(&self) -> &mongodb::Database {
        &self.database
    }

    /// Ask the server something (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(self.database.run_command(doc! { "ping": 1 }))
            .await
            .map(|_| ())
    }
}

fn encode_cursor(activity: Bson, key: &str) -> String {
    let value = serde_json::json!({ "a": activity.into_relaxed_extjson(), "k": key });
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn decode_cursor(cursor: &str) -> Result<(Bson, String), StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
    let key = value["k"]
        .as_str()
        .ok_or(StoreError::BadCursor)?
        .to_string();
    let activity = Bson::try_from(value["a"].clone()).map_err(|_| StoreError::BadCursor)?;
    Ok((activity, key))
}

/// An integer field (Int32 or Int64).
fn integer(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int64(number) => Some(*number),
        Bson::Int32(number) => Some(i64::from(*number)),
        _ => None,
    }
}

/// Map a `conversations` document to the list view; `None` (with a warning) when it does not
/// have the logger's shape.
pub fn conversation_from_document(document: &Document) -> Option<ConversationView> {
    let stored: ConversationDoc = match mongodb::bson::from_document(document.clone()) {
        Ok(stored) => stored,
        Err(error) => {
            tracing::warn!(error = %error, "unreadable conversations document");
            return None;
        }
    };
    let last_message = stored.last_message.as_ref().map(|last| LastMessage {
        preview: last.preview.clone().unwrap_or_default(),
        direction: direction(last.direction),
        occurred_at: last.at.timestamp_millis(),
    });
    Some(ConversationView {
        seq: Some(stored.seq),
        tenant_id: stored.tenant_id,
        channel: stored.channel,
        customer_id: stored.customer_id,
        customer_name: stored.customer_display_name,
        mode: match stored.mode {
            Mode::Bot => "bot",
            Mode::Human => "human",
        }
        .to_string(),
        assignee: stored.assignee,
        closed: stored.state == ConversationState::Closed,
        opted_out: stored.opted_out,
        unread_count: stored.unread_count,
        last_message,
        last_inbound_at: stored.last_inbound_at.map(|at| at.timestamp_millis()),
        last_activity_at: Some(stored.updated_at.timestamp_millis()),
        conversation_key: stored.key,
    })
}

fn direction(stored: docs::Direction) -> Direction {
    match stored {
        docs::Direction::Inbound => Direction::Inbound,
        docs::Direction::Outbound => Direction::Outbound,
    }
}

/// Map a `messages` document to the thread view; `None` (with a warning) when it does not have
/// the logger's shape.
pub fn message_from_document(document: &Document) -> Option<MessageView> {
    let stored: MessageDoc = match mongodb::bson::from_document(document.clone()) {
        Ok(stored) => stored,
        Err(error) => {
            tracing::warn!(error = %error, "unreadable messages document");
            return None;
        }
    };
    let direction = direction(stored.direction);
    let content = stored
        .content
        .map(|content| Bson::Document(content).into_relaxed_extjson())
        .unwrap_or(serde_json::Value::Null);
    Some(MessageView {
        id: stored.id,
        conversation_key: stored.conversation_key,
        seq: Some(stored.seq),
        direction,
        origin: stored.origin.unwrap_or_else(|| match direction {
            Direction::Inbound => "customer".to_string(),
            Direction::Outbound => "unknown".to_string(),
        }),
        operator_id: stored.operator_id,
        command_id: stored.command_id,
        provider_message_id: stored.provider_message_id,
        status: DeliveryStatus::parse(&stored.status).unwrap_or(match direction {
            Direction::Inbound => DeliveryStatus::Received,
            Direction::Outbound => DeliveryStatus::Queued,
        }),
        content,
        preview: stored.preview.unwrap_or_default(),
        occurred_at: stored
            .created_at
            .unwrap_or(stored.updated_at)
            .timestamp_millis(),
        error: stored.error.map(|error| MessageError {
            code: error.code,
            reason: error.detail.unwrap_or(error.title),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_logger::domain::docs::{LastMessage as StoredLastMessage, MessageDoc};
    use caas_logger::domain::status::{DeliveryStatus as StoredStatus, StatusObservation};
    use mongodb::bson::DateTime;

    #[test]
    fn a_logger_conversation_becomes_a_list_entry() {
        let mut stored = ConversationDoc::new(
            "acme:whatsapp:49151",
            "acme",
            "whatsapp",
            "49151",
            DateTime::from_millis(500),
        );
        stored.customer_display_name = Some("Kim".into());
        stored.mode = Mode::Human;
        stored.assignee = Some("op-1".into());
        stored.unread_count = 2;
        stored.seq = 5;
        stored.last_inbound_at = Some(DateTime::from_millis(1_000));
        stored.updated_at = DateTime::from_millis(1_200);
        stored.last_message = Some(StoredLastMessage {
            message_id: "in:whatsapp:wamid.1".into(),
            direction: docs::Direction::Inbound,
            content_type: Some("text".into()),
            preview: Some("hello".into()),
            at: DateTime::from_millis(1_000),
            seq: 5,
        });
        let document = mongodb::bson::to_document(&stored).unwrap();
        let view = conversation_from_document(&document).unwrap();
        assert_eq!(view.conversation_key, "acme:whatsapp:49151");
        assert_eq!(view.channel, "whatsapp");
        assert_eq!(view.customer_name.as_deref(), Some("Kim"));
        assert_eq!(view.mode, "human");
        assert_eq!(view.assignee.as_deref(), Some("op-1"));
        assert_eq!(view.unread_count, 2);
        assert_eq!(view.last_inbound_at, Some(1_000));
        assert_eq!(view.last_activity_at, Some(1_200));
        assert_eq!(view.seq, Some(5));
        assert!(!view.closed);
        assert_eq!(view.last_message.unwrap().preview, "hello");
        assert!(conversation_from_document(&doc! { "_id": "not-a-conversation" }).is_none());
    }

    #[test]
    fn a_logger_message_becomes_a_thread_entry() {
        let mut stored = MessageDoc::empty(
            "out:acme:cmd-1".into(),
            docs::Direction::Outbound,
            "acme",
            "acme:whatsapp:49151",
            "whatsapp",
            "49151",
            DateTime::from_millis(2_000),
        );
        stored.command_id = Some("cmd-1".into());
        stored.origin = Some("operator".into());
        stored.operator_id = Some("op-1".into());
        stored.provider_message_id = Some("wamid.1".into());
        stored.preview = Some("hi".into());
        stored.content = Some(doc! { "text": { "body": "hi", "preview_url": false } });
        stored.created_at = Some(DateTime::from_millis(2_000));
        stored.seq = 9;
        stored.observe(StatusObservation {
            status: StoredStatus::Delivered,
            at: 2_500,
            event_id: "s-1".into(),
            error: None,
        });
        let document = mongodb::bson::to_document(&stored).unwrap();
        let view = message_from_document(&document).unwrap();
        assert_eq!(view.id, "out:acme:cmd-1");
        assert_eq!(view.direction, Direction::Outbound);
        assert_eq!(view.status, DeliveryStatus::Delivered);
        assert_eq!(view.origin, "operator");
        assert_eq!(view.preview, "hi");
        assert_eq!(view.content["text"]["body"], "hi");
        assert_eq!(view.seq, Some(9));
        assert_eq!(view.occurred_at, 2_000);
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode_cursor(Bson::DateTime(DateTime::from_millis(5)), "acme:rcs:1");
        let (activity, key) = decode_cursor(&cursor).unwrap();
        assert_eq!(activity, Bson::DateTime(DateTime::from_millis(5)));
        assert_eq!(key, "acme:rcs:1");
        assert!(matches!(decode_cursor("%%%"), Err(StoreError::BadCursor)));
    }
}
