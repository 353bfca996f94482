//! Read-only access to what the logger keeps in MongoDB (database `caas`): the `events`
//! collection (for each event's conversation `seq`), `conversations` and `messages`.
//!
//! The logger owns these documents and their shape; the gateway never writes them. Every
//! field name the gateway relies on is in [`fields`], and the document → view mappings are
//! pure functions ([`conversation_from_document`], [`message_from_document`]) tested with
//! documents written the way the logger writes them.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ClientOptions;

use crate::domain::views::{
    ConversationView, DeliveryStatus, Direction, LastMessage, MessageError, MessageView,
};

/// Field and collection names of the logger's documents.
pub mod fields {
    /// Collection: one document per processed event, `_id` = event id.
    pub const EVENTS: &str = "events";
    /// Collection: one document per message.
    pub const MESSAGES: &str = "messages";
    /// Collection: one document per conversation, `_id` = conversation key.
    pub const CONVERSATIONS: &str = "conversations";
    /// The conversation sequence (on events, messages and conversations).
    pub const SEQ: &str = "seq";
    /// A message's conversation.
    pub const CONVERSATION_KEY: &str = "conversation_key";
    /// A message's provider id.
    pub const PROVIDER_MESSAGE_ID: &str = "provider_message_id";
    /// A conversation's mode (`bot` | `human`).
    pub const MODE: &str = "mode";
    /// A conversation's assignee.
    pub const ASSIGNEE: &str = "assignee";
    /// A conversation's unread count.
    pub const UNREAD_COUNT: &str = "unread_count";
    /// A conversation's newest activity: the list's sort key.
    pub const LAST_ACTIVITY_AT: &str = "last_activity_at";
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

    /// The `seq` the logger assigned to event `event_id`; `None` while it has not processed it.
    pub async fn event_seq(&self, event_id: &str) -> Result<Option<i64>, StoreError> {
        let found = self
            .bounded(
                self.collection(fields::EVENTS)
                    .find_one(doc! { "_id": event_id })
                    .projection(doc! { fields::SEQ: 1 }),
            )
            .await?;
        Ok(found.and_then(|document| integer(document.get(fields::SEQ))))
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

    /// The id of the message with provider id `provider_message_id` in a conversation.
    pub async fn message_id_by_provider_id(
        &self,
        conversation_key: &str,
        provider_message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let found = self
            .bounded(
                self.collection(fields::MESSAGES).find_one(doc! {
                    fields::CONVERSATION_KEY: conversation_key,
                    fields::PROVIDER_MESSAGE_ID: provider_message_id,
                }),
            )
            .await?;
        Ok(found
            .and_then(|document| message_from_document(&document))
            .map(|message| message.id))
    }

    /// One page of `tenant`'s conversations, newest activity first.
    pub async fn conversations(
        &self,
        tenant: &str,
        filter: &ConversationFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ConversationPage, StoreError> {
        let mut clauses = vec![doc! { "_id": { "$regex": format!("^{}:", regex_escape(tenant)) } }];
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

    /// Ask the server something (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(self.database.run_command(doc! { "ping": 1 }))
            .await
            .map(|_| ())
    }
}

fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if "\\^$.|?*+()[]{}".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
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
    let key = value["k"].as_str().ok_or(StoreError::BadCursor)?.to_string();
    let activity = Bson::try_from(value["a"].clone()).map_err(|_| StoreError::BadCursor)?;
    Ok((activity, key))
}

/// An integer field (the logger may write Int32 or Int64).
fn integer(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int64(number) => Some(*number),
        Bson::Int32(number) => Some(i64::from(*number)),
        Bson::Double(number) => Some(*number as i64),
        _ => None,
    }
}

/// A timestamp field as epoch milliseconds (a BSON date or a number of milliseconds).
fn millis(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::DateTime(date) => Some(date.timestamp_millis()),
        other => integer(Some(other)),
    }
}

fn string(document: &Document, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| document.get_str(name).ok())
        .map(str::to_string)
}

fn first<'a>(document: &'a Document, names: &[&str]) -> Option<&'a Bson> {
    names.iter().find_map(|name| document.get(name))
}

/// Map a `conversations` document to the list view; `None` when it has no usable key.
pub fn conversation_from_document(document: &Document) -> Option<ConversationView> {
    let conversation_key = string(document, &["_id", "conversation_key"])?;
    let parsed = caas_events::keys::parse_conversation_key(&conversation_key)?;
    let last_message = first(document, &["last_message"])
        .and_then(Bson::as_document)
        .map(|last| LastMessage {
            preview: string(last, &["preview", "text"]).unwrap_or_default(),
            direction: match last.get_str("direction") {
                Ok("outbound") => Direction::Outbound,
                _ => Direction::Inbound,
            },
            occurred_at: millis(first(last, &["occurred_at", "at"])).unwrap_or_default(),
        });
    let closed = match first(document, &["closed", "status"]) {
        Some(Bson::Boolean(closed)) => *closed,
        Some(Bson::String(status)) => status == "closed",
        _ => false,
    };
    Some(ConversationView {
        tenant_id: string(document, &["tenant_id", "tenant"])
            .unwrap_or_else(|| parsed.tenant_id.to_string()),
        channel: parsed.channel.as_str().to_string(),
        customer_id: string(document, &["customer_id", "customer"])
            .unwrap_or_else(|| parsed.customer_id.to_string()),
        customer_name: string(document, &["customer_name", "customer_display_name"]),
        mode: string(document, &[fields::MODE]).unwrap_or_else(|| "bot".to_string()),
        assignee: string(document, &[fields::ASSIGNEE, "assignee_operator_id"]),
        closed,
        unread_count: integer(first(document, &[fields::UNREAD_COUNT, "unread"])).unwrap_or(0),
        last_inbound_at: millis(first(document, &["last_inbound_at"])),
        last_activity_at: millis(first(document, &[fields::LAST_ACTIVITY_AT, "updated_at"]))
            .or(last_message.as_ref().map(|last| last.occurred_at)),
        last_message,
        seq: integer(document.get(fields::SEQ)),
        conversation_key,
    })
}

/// Map a `messages` document to the thread view; `None` when it has no id or conversation.
pub fn message_from_document(document: &Document) -> Option<MessageView> {
    let conversation_key = string(document, &[fields::CONVERSATION_KEY])?;
    let command_id = string(document, &["command_id"]);
    let direction = match document.get_str("direction") {
        Ok("outbound") => Direction::Outbound,
        Ok(_) => Direction::Inbound,
        Err(_) if command_id.is_some() => Direction::Outbound,
        Err(_) => Direction::Inbound,
    };
    let id = match direction {
        Direction::Outbound => command_id.clone().or_else(|| string(document, &["_id"])),
        Direction::Inbound => string(document, &["event_id", "_id"]),
    }?;
    let content_json = document
        .get("content")
        .cloned()
        .map(Bson::into_relaxed_extjson)
        .unwrap_or(serde_json::Value::Null);
    let content = serde_json::from_value::<caas_events::model::Content>(content_json.clone()).ok();
    let preview = content
        .as_ref()
        .map(crate::domain::views::preview)
        .or_else(|| string(document, &["preview", "text"]))
        .unwrap_or_default();
    let status = document
        .get_str("status")
        .ok()
        .and_then(DeliveryStatus::parse)
        .unwrap_or(match direction {
            Direction::Inbound => DeliveryStatus::Received,
            Direction::Outbound => DeliveryStatus::Pending,
        });
    let error = first(document, &["error"])
        .and_then(Bson::as_document)
        .map(|error| MessageError {
            code: string(error, &["code"]).unwrap_or_else(|| "unknown".to_string()),
            reason: string(error, &["reason", "message", "title"]).unwrap_or_default(),
        });
    Some(MessageView {
        id,
        seq: integer(document.get(fields::SEQ)),
        direction,
        origin: string(document, &["origin"]).unwrap_or_else(|| match direction {
            Direction::Inbound => "customer".to_string(),
            Direction::Outbound => "bot".to_string(),
        }),
        operator_id: string(document, &["operator_id"]),
        command_id,
        provider_message_id: string(document, &[fields::PROVIDER_MESSAGE_ID]),
        status,
        content: content_json,
        preview,
        occurred_at: millis(first(document, &["occurred_at", "created_at"])).unwrap_or_default(),
        error,
        conversation_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::DateTime;

    #[test]
    fn a_conversation_document_becomes_a_list_entry() {
        let document = doc! {
            "_id": "acme:whatsapp:49151",
            "tenant_id": "acme",
            "customer_id": "49151",
            "customer_name": "Kim",
            "mode": "human",
            "assignee": "op-1",
            "unread_count": 2_i32,
            "last_inbound_at": DateTime::from_millis(1_000),
            "last_message": { "preview": "hello", "direction": "inbound", "occurred_at": DateTime::from_millis(1_000) },
            "seq": 5_i64,
        };
        let view = conversation_from_document(&document).unwrap();
        assert_eq!(view.conversation_key, "acme:whatsapp:49151");
        assert_eq!(view.channel, "whatsapp");
        assert_eq!(view.mode, "human");
        assert_eq!(view.assignee.as_deref(), Some("op-1"));
        assert_eq!(view.unread_count, 2);
        assert_eq!(view.last_inbound_at, Some(1_000));
        assert_eq!(view.last_activity_at, Some(1_000));
        assert_eq!(view.seq, Some(5));
        assert_eq!(view.last_message.unwrap().preview, "hello");
        assert!(conversation_from_document(&doc! { "_id": "not-a-key" }).is_none());
    }

    #[test]
    fn a_message_document_becomes_a_thread_entry() {
        let document = doc! {
            "_id": "m-1",
            "conversation_key": "acme:whatsapp:49151",
            "direction": "outbound",
            "command_id": "cmd-1",
            "origin": "operator",
            "operator_id": "op-1",
            "provider_message_id": "wamid.1",
            "status": "delivered",
            "content": { "text": { "body": "hi", "preview_url": false } },
            "occurred_at": 2_000_i64,
            "seq": 9_i64,
        };
        let view = message_from_document(&document).unwrap();
        assert_eq!(view.id, "cmd-1");
        assert_eq!(view.direction, Direction::Outbound);
        assert_eq!(view.status, DeliveryStatus::Delivered);
        assert_eq!(view.preview, "hi");
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
        assert_eq!(regex_escape("a.b"), "a\\.b");
    }
}
