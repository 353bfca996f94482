//! MongoDB: the collections, their indexes and retention, and the one write path.
//!
//! [`Store::persist`] writes one batch in **one multi-document transaction**: load what the
//! batch touches ([`plan::needs`]), compute the writes with the pure [`plan::plan`], replace
//! the conversations, messages and orphan statuses it changed, insert its new events, commit.
//! Either all of a batch's effects are durable or none is, so:
//!
//! - an event found in `events` had all its effects committed with it: a redelivered event is
//!   skipped, and the conversation's `seq` is never bumped twice for it;
//! - a crash (or SIGKILL) at any point before the commit leaves nothing behind: the records
//!   come again (their offsets were not stored) and are planned from the same state;
//! - two members writing the same conversation at once (the overlap after a rebalance) touch
//!   the same documents: the second transaction fails with a write conflict (a
//!   `TransientTransactionError`), and its retry sees the first one's events as stored.
//!
//! This needs a replica set (production runs one; the local MongoDB-wire server advertises
//! one). Writes are unordered bulk commands inside the transaction; reads use snapshot read
//! concern and the commit uses majority write concern.

use std::collections::HashSet;
use std::time::Duration;

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::options::{ClientOptions, ReadConcern, WriteConcern};
use mongodb::{Client, ClientSession, Database};
use serde::Serialize;

use crate::announce::Announcement;
use crate::config::Retention;
use crate::domain::docs::{
    ConversationDoc, MessageDoc, OrphanStatusDoc, CONVERSATIONS, EVENTS, MESSAGES, ORPHAN_STATUSES,
};
use crate::domain::event::Incoming;
use crate::domain::plan::{self, Plan, Snapshot};
use crate::error::StoreError;

/// How long one batch's transaction may take, from its session to its commit. A healthy
/// 1,000-record batch takes well under a second; this only catches calls that never return
/// (seen on a MongoDB-wire server that stopped answering mid-transaction).
pub const BATCH_DEADLINE: Duration = Duration::from_secs(60);

/// The `type` of the record an erasure leaves in `events`.
pub const ERASURE_TYPE: &str = "customer_erased";

/// Largest write command we build (MongoDB accepts 16 MiB documents; stay well below).
const MAX_COMMAND_BYTES: usize = 8 * 1024 * 1024;
/// Most statements per write command.
const MAX_STATEMENTS: usize = 1000;
/// The name of every retention TTL index.
const RETENTION_INDEX: &str = "retention";

/// What one persisted batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistReport {
    /// Events inserted.
    pub stored: usize,
    /// Events skipped as already stored.
    pub duplicates: usize,
    /// Events skipped because their customer was erased.
    pub erased: usize,
    /// Conversations written.
    pub conversations: usize,
    /// Messages written.
    pub messages: usize,
    /// What the committed batch announces: its inserted events that have a `seq`.
    pub announcement: Announcement,
}

/// The logger's database.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    database: Database,
    batch_deadline: Duration,
}

impl Store {
    /// A client for `uri` (no connection is made until the first operation). Operations give up
    /// on server selection after `server_selection_timeout`, so a MongoDB outage shows as a
    /// retryable error, not a hang.
    pub async fn connect(
        uri: &str,
        database: &str,
        server_selection_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(uri)
            .await
            .map_err(StoreError::mongo("parse the connection string"))?;
        options.app_name = Some("caas-logger".to_string());
        options.server_selection_timeout = Some(server_selection_timeout);
        options.connect_timeout = Some(server_selection_timeout);
        let client =
            Client::with_options(options).map_err(StoreError::mongo("create the client"))?;
        let database = client.database(database);
        Ok(Self {
            client,
            database,
            batch_deadline: BATCH_DEADLINE,
        })
    }

    /// The same store with another time limit per batch (tests use a short one).
    pub fn with_batch_deadline(mut self, deadline: Duration) -> Self {
        self.batch_deadline = deadline;
        self
    }

    /// The database, for the data-rights functions and tests.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Create the indexes (idempotent) and apply the retention TTLs.
    pub async fn prepare(&self, retention: &Retention) -> Result<(), StoreError> {
        self.create_indexes(
            EVENTS,
            vec![
                // The gateway's "what did I miss" query; unique as a last line of defence
                // against two events with one number.
                doc! {
                    "key": { "conversation_key": 1, "seq": 1 },
                    "name": "conversation_seq",
                    "unique": true,
                    "partialFilterExpression": { "seq": { "$exists": true } },
                },
                doc! { "key": { "tenant_id": 1, "customer_ids": 1 }, "name": "tenant_customer" },
                doc! {
                    "key": { "subject_hash": 1 },
                    "name": "erasure_subject",
                    "partialFilterExpression": { "subject_hash": { "$exists": true } },
                },
            ],
        )
        .await?;
        self.create_indexes(
            MESSAGES,
            vec![
                doc! { "key": { "conversation_key": 1, "seq": 1 }, "name": "conversation_seq" },
                doc! { "key": { "provider_message_id": 1 }, "name": "provider_message_id" },
            ],
        )
        .await?;
        self.create_indexes(
            CONVERSATIONS,
            vec![
                doc! { "key": { "tenant_id": 1, "customer_id": 1 }, "name": "tenant_customer" },
                doc! { "key": { "tenant_id": 1, "updated_at": -1 }, "name": "tenant_recent" },
            ],
        )
        .await?;
        self.create_indexes(
            ORPHAN_STATUSES,
            vec![doc! { "key": { "conversation_key": 1 }, "name": "conversation" }],
        )
        .await?;
        self.apply_retention(EVENTS, "stored_at", retention.events)
            .await?;
        self.apply_retention(MESSAGES, "updated_at", retention.messages)
            .await?;
        self.apply_retention(CONVERSATIONS, "updated_at", retention.conversations)
            .await?;
        self.apply_retention(ORPHAN_STATUSES, "updated_at", retention.orphan_statuses)
            .await?;
        Ok(())
    }

    async fn create_indexes(
        &self,
        collection: &str,
        indexes: Vec<Document>,
    ) -> Result<(), StoreError> {
        self.database
            .run_command(doc! { "createIndexes": collection, "indexes": indexes })
            .await
            .map_err(StoreError::mongo("create indexes"))?;
        Ok(())
    }

    /// A TTL index named `retention` on `field`; changed in place when the age changes, dropped
    /// when retention is off.
    async fn apply_retention(
        &self,
        collection: &str,
        field: &str,
        age: Option<Duration>,
    ) -> Result<(), StoreError> {
        let Some(age) = age else {
            let dropped = self
                .database
                .run_command(doc! { "dropIndexes": collection, "index": RETENTION_INDEX })
                .await;
            return match dropped {
                Ok(_) => {
                    tracing::info!(
                        collection,
                        "retention index dropped; documents are kept forever"
                    );
                    Ok(())
                }
                // 27 IndexNotFound, 26 NamespaceNotFound: nothing to drop.
                Err(error) if matches!(command_code(&error), Some(26 | 27)) => Ok(()),
                Err(error) => Err(StoreError::mongo("drop a retention index")(error)),
            };
        };
        let seconds = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        let created = self
            .database
            .run_command(doc! {
                "createIndexes": collection,
                "indexes": [{
                    "key": { field: 1 },
                    "name": RETENTION_INDEX,
                    "expireAfterSeconds": seconds,
                }],
            })
            .await;
        match created {
            Ok(_) => Ok(()),
            // 85 IndexOptionsConflict: same index, another age. collMod changes it in place.
            Err(error) if command_code(&error) == Some(85) => {
                self.database
                    .run_command(doc! {
                        "collMod": collection,
                        "index": { "name": RETENTION_INDEX, "expireAfterSeconds": seconds },
                    })
                    .await
                    .map_err(StoreError::mongo("change a retention index"))?;
                tracing::info!(collection, seconds, "retention changed");
                Ok(())
            }
            Err(error) => Err(StoreError::mongo("create a retention index")(error)),
        }
    }

    /// Persist one batch in one transaction (see the module docs), giving up after
    /// [`BATCH_DEADLINE`] (unless [`Store::with_batch_deadline`] set another): a call the server never answers fails the batch (which is retried)
    /// instead of stalling this member, and its partitions with it, until a human looks.
    pub async fn persist(
        &self,
        incoming: &[Incoming],
        now_ms: i64,
    ) -> Result<PersistReport, StoreError> {
        // Dropping the unfinished future drops its session, and the driver aborts a
        // transaction still in progress on a dropped session.
        let deadline = self.batch_deadline;
        tokio::time::timeout(deadline, self.persist_in_transaction(incoming, now_ms))
            .await
            .unwrap_or(Err(StoreError::Deadline {
                operation: "persist a batch",
                after: deadline,
            }))
    }

    async fn persist_in_transaction(
        &self,
        incoming: &[Incoming],
        now_ms: i64,
    ) -> Result<PersistReport, StoreError> {
        let needs = plan::needs(incoming);
        let mut session = self
            .client
            .start_session()
            .await
            .map_err(StoreError::mongo("start a session"))?;
        session
            .start_transaction()
            .read_concern(ReadConcern::snapshot())
            .write_concern(WriteConcern::majority())
            .await
            .map_err(StoreError::mongo("start a transaction"))?;
        let started = std::time::Instant::now();
        let outcome = async {
            let snapshot = self.load(&needs, &mut session).await?;
            let loaded = started.elapsed();
            let plan = plan::plan(incoming, snapshot, now_ms);
            let planned = started.elapsed();
            self.write(&plan, &mut session).await?;
            tracing::debug!(
                records = incoming.len(),
                load_ms = loaded.as_millis() as u64,
                plan_ms = (planned - loaded).as_millis() as u64,
                write_ms = (started.elapsed() - planned).as_millis() as u64,
                "batch transaction prepared"
            );
            Ok::<Plan, StoreError>(plan)
        }
        .await;
        let plan = match outcome {
            Ok(plan) => plan,
            Err(error) => {
                if let Err(abort_error) = session.abort_transaction().await {
                    tracing::debug!(error = %abort_error, "abort after a failed batch failed too");
                }
                return Err(error);
            }
        };
        let before_commit = started.elapsed();
        commit(&mut session).await?;
        tracing::debug!(
            commit_ms = (started.elapsed() - before_commit).as_millis() as u64,
            "batch committed"
        );
        Ok(PersistReport {
            stored: plan.events.len(),
            duplicates: plan.duplicates,
            erased: plan.erased,
            conversations: plan.conversations.len(),
            messages: plan.messages.len(),
            announcement: Announcement::of_inserted(&plan.events),
        })
    }

    async fn load(
        &self,
        needs: &plan::Needs,
        session: &mut ClientSession,
    ) -> Result<Snapshot, StoreError> {
        let mut snapshot = Snapshot::default();
        let events = self.database.collection::<Document>(EVENTS);
        let stored = find_all(
            &events,
            doc! { "_id": { "$in": &needs.event_ids } },
            Some(doc! { "_id": 1 }),
            session,
            "load stored event ids",
        )
        .await?;
        snapshot.stored_event_ids = stored
            .iter()
            .filter_map(|document| document.get_str("_id").ok().map(str::to_string))
            .collect::<HashSet<_>>();
        if !needs.subject_hashes.is_empty() {
            let erasures = find_all(
                &events,
                doc! { "type": ERASURE_TYPE, "subject_hash": { "$in": &needs.subject_hashes } },
                Some(doc! { "subject_hash": 1, "erased_at": 1 }),
                session,
                "load erasures",
            )
            .await?;
            for erasure in erasures {
                if let (Ok(subject), Ok(at)) = (
                    erasure.get_str("subject_hash"),
                    erasure.get_datetime("erased_at"),
                ) {
                    let entry = snapshot
                        .erasures
                        .entry(subject.to_string())
                        .or_insert(i64::MIN);
                    *entry = (*entry).max(at.timestamp_millis());
                }
            }
        }
        if !needs.conversation_keys.is_empty() {
            let found = find_all(
                &self.database.collection::<Document>(CONVERSATIONS),
                doc! { "_id": { "$in": &needs.conversation_keys } },
                None,
                session,
                "load conversations",
            )
            .await?;
            for document in found {
                let conversation: ConversationDoc = decode(CONVERSATIONS, document)?;
                snapshot
                    .conversations
                    .insert(conversation.key.clone(), conversation);
            }
        }
        if !needs.message_ids.is_empty() || !needs.provider_message_ids.is_empty() {
            let found = find_all(
                &self.database.collection::<Document>(MESSAGES),
                doc! { "$or": [
                    { "_id": { "$in": &needs.message_ids } },
                    { "provider_message_id": { "$in": &needs.provider_message_ids }, "direction": "outbound" },
                ] },
                None,
                session,
                "load messages",
            )
            .await?;
            for document in found {
                let message: MessageDoc = decode(MESSAGES, document)?;
                snapshot.messages.insert(message.id.clone(), message);
            }
        }
        if !needs.orphan_ids.is_empty() {
            let found = find_all(
                &self.database.collection::<Document>(ORPHAN_STATUSES),
                doc! { "_id": { "$in": &needs.orphan_ids } },
                None,
                session,
                "load orphan statuses",
            )
            .await?;
            for document in found {
                let orphan: OrphanStatusDoc = decode(ORPHAN_STATUSES, document)?;
                snapshot.orphans.insert(orphan.id.clone(), orphan);
            }
        }
        Ok(snapshot)
    }

    async fn write(&self, plan: &Plan, session: &mut ClientSession) -> Result<(), StoreError> {
        self.replace_all(CONVERSATIONS, &plan.conversations, |doc| &doc.key, session)
            .await?;
        self.replace_all(MESSAGES, &plan.messages, |doc| &doc.id, session)
            .await?;
        self.replace_all(ORPHAN_STATUSES, &plan.orphans, |doc| &doc.id, session)
            .await?;
        if !plan.orphans_to_delete.is_empty() {
            let reply = self
                .database
                .run_command(doc! {
                    "delete": ORPHAN_STATUSES,
                    "deletes": [{ "q": { "_id": { "$in": &plan.orphans_to_delete } }, "limit": 0 }],
                    "ordered": false,
                })
                .session(&mut *session)
                .await
                .map_err(StoreError::mongo("delete merged orphan statuses"))?;
            check_write_reply("delete merged orphan statuses", &reply)?;
        }
        if !plan.events.is_empty() {
            let documents = plan
                .events
                .iter()
                .map(|event| {
                    mongodb::bson::to_document(event).map_err(|source| StoreError::Encode {
                        collection: EVENTS,
                        source: Box::new(source),
                    })
                })
                .collect::<Result<Vec<Document>, _>>()?;
            self.database
                .collection::<Document>(EVENTS)
                .insert_many(documents)
                .ordered(false)
                .session(&mut *session)
                .await
                .map_err(StoreError::mongo("insert events"))?;
        }
        Ok(())
    }

    /// Replace (or insert) every document, in unordered bulk `update` commands.
    async fn replace_all<T: Serialize>(
        &self,
        collection: &'static str,
        documents: &[T],
        id: impl Fn(&T) -> &str,
        session: &mut ClientSession,
    ) -> Result<(), StoreError> {
        let mut statements: Vec<Document> = Vec::new();
        let mut bytes = 0usize;
        for document in documents {
            let encoded =
                mongodb::bson::to_document(document).map_err(|source| StoreError::Encode {
                    collection,
                    source: Box::new(source),
                })?;
            let statement = doc! { "q": { "_id": id(document) }, "u": encoded, "upsert": true };
            let size = mongodb::bson::to_vec(&statement)
                .map(|encoded| encoded.len())
                .unwrap_or(MAX_COMMAND_BYTES / 2);
            if !statements.is_empty()
                && (statements.len() >= MAX_STATEMENTS || bytes + size > MAX_COMMAND_BYTES)
            {
                self.update_command(collection, std::mem::take(&mut statements), session)
                    .await?;
                bytes = 0;
            }
            bytes += size;
            statements.push(statement);
        }
        if !statements.is_empty() {
            self.update_command(collection, statements, session).await?;
        }
        Ok(())
    }

    async fn update_command(
        &self,
        collection: &'static str,
        statements: Vec<Document>,
        session: &mut ClientSession,
    ) -> Result<(), StoreError> {
        let reply = self
            .database
            .run_command(doc! { "update": collection, "updates": statements, "ordered": false })
            .session(&mut *session)
            .await
            .map_err(StoreError::mongo("replace documents"))?;
        check_write_reply("replace documents", &reply)
    }
}

/// Commit, retrying the commit alone while its outcome is unknown (the server may have
/// committed; committing again is safe). Any other error fails the batch, which is retried.
async fn commit(session: &mut ClientSession) -> Result<(), StoreError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match session.commit_transaction().await {
            Ok(()) => return Ok(()),
            Err(error)
                if error.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                    && !error.contains_label(TRANSIENT_TRANSACTION_ERROR)
                    && attempts < 4 =>
            {
                tracing::warn!(error = %error, attempts, "commit outcome unknown; committing again");
            }
            Err(error) => return Err(StoreError::mongo("commit the batch")(error)),
        }
    }
}

async fn find_all(
    collection: &mongodb::Collection<Document>,
    filter: Document,
    projection: Option<Document>,
    session: &mut ClientSession,
    operation: &'static str,
) -> Result<Vec<Document>, StoreError> {
    let mut cursor = collection
        .find(filter)
        .with_options(
            mongodb::options::FindOptions::builder()
                .projection(projection)
                .build(),
        )
        .session(&mut *session)
        .await
        .map_err(StoreError::mongo(operation))?;
    cursor
        .stream(session)
        .try_collect()
        .await
        .map_err(StoreError::mongo(operation))
}

fn decode<T: serde::de::DeserializeOwned>(
    collection: &'static str,
    document: Document,
) -> Result<T, StoreError> {
    mongodb::bson::from_document(document).map_err(|source| StoreError::Corrupt {
        collection,
        source: Box::new(source),
    })
}

fn check_write_reply(operation: &'static str, reply: &Document) -> Result<(), StoreError> {
    match reply.get("writeErrors") {
        Some(Bson::Array(errors)) if !errors.is_empty() => Err(StoreError::WriteErrors {
            operation,
            details: Bson::Array(errors.clone())
                .into_relaxed_extjson()
                .to_string(),
        }),
        _ => Ok(()),
    }
}

/// The server's error code of a failed command.
pub(crate) fn command_code(error: &mongodb::error::Error) -> Option<i32> {
    match error.kind.as_ref() {
        ErrorKind::Command(command) => Some(command.code),
        _ => None,
    }
}

/// Whether retrying the whole batch is the cure (a write conflict, a primary change, a
/// network blip) — informational: every store error is retried.
pub fn is_transient(error: &StoreError) -> bool {
    match error {
        StoreError::Mongo { source, .. } => source.contains_label(TRANSIENT_TRANSACTION_ERROR),
        _ => false,
    }
}
