//! MongoDB: campaigns, their recipients, uploaded audiences, the consent ledger and the
//! sending-number leases. Every write is an idempotent upsert or a conditional update keyed by
//! a deterministic id, so a redelivered record or a restarted worker changes nothing twice.
//!
//! | collection | `_id` | what |
//! |---|---|---|
//! | `campaigns` | campaign key `<tenant>:campaign:<id>` | definition, state, expansion progress, last totals |
//! | `campaign_recipients` | command id (campaign + recipient) | one recipient: number, parameters, status timeline |
//! | `campaign_audiences` | audience id | an uploaded audience: columns, row counts |
//! | `campaign_audience_rows` | `<audience id>:<line>` | one uploaded row, valid or with its error |
//! | `consents` | `<tenant>:<channel>:<customer>` | current consent and its history (the ledger) |
//! | `campaign_senders` | `<tenant>:<channel>:<business id>` | which instance sends for that number, until when |
//! | `campaign_early_statuses` | `<provider message id>:<status>` | RCS statuses that arrived before their send result |

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use caas_events::model::{CampaignCounts, Channel, SendingWindow, Template};
use futures::TryStreamExt;
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};
use serde::{Deserialize, Serialize};

use crate::domain::consent::ConsentAction;
use crate::domain::lifecycle::CampaignState;
use crate::domain::status::{self, RecipientStatus};

/// Campaign definitions and state.
pub const CAMPAIGNS: &str = "campaigns";
/// One document per recipient.
pub const RECIPIENTS: &str = "campaign_recipients";
/// Uploaded audiences.
pub const AUDIENCES: &str = "campaign_audiences";
/// Their rows.
pub const AUDIENCE_ROWS: &str = "campaign_audience_rows";
/// The consent ledger.
pub const CONSENTS: &str = "consents";
/// Sending-number leases.
pub const LEASES: &str = "campaign_senders";
/// RCS statuses that came before their send result.
pub const EARLY_STATUSES: &str = "campaign_early_statuses";

/// The most statements in one bulk `update` command.
const MAX_STATEMENTS: usize = 1000;

/// A MongoDB operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server or the connection failed; retrying later may work.
    #[error("mongodb failed to {operation}: {source}")]
    Mongo {
        /// What was being done.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: Box<mongodb::error::Error>,
    },
    /// A document could not be converted (a bug or a foreign document).
    #[error("cannot convert a {collection} document: {reason}")]
    Convert {
        /// The collection.
        collection: &'static str,
        /// What went wrong.
        reason: String,
    },
}

fn mongo(operation: &'static str) -> impl FnOnce(mongodb::error::Error) -> StoreError {
    move |source| StoreError::Mongo {
        operation,
        source: Box::new(source),
    }
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(write)) => write.code == 11000,
        ErrorKind::Command(command) => command.code == 11000,
        ErrorKind::InsertMany(insert) => {
            insert
                .write_errors
                .as_ref()
                .is_some_and(|errors| errors.iter().all(|error| error.code == 11000))
                && insert.write_concern_error.is_none()
        }
        _ => error.to_string().contains("E11000"),
    }
}

fn to_document<T: Serialize>(collection: &'static str, value: &T) -> Result<Document, StoreError> {
    bson::to_document(value).map_err(|error| StoreError::Convert {
        collection,
        reason: error.to_string(),
    })
}

fn from_document<T: for<'de> Deserialize<'de>>(
    collection: &'static str,
    document: Document,
) -> Result<T, StoreError> {
    bson::from_document(document).map_err(|error| StoreError::Convert {
        collection,
        reason: error.to_string(),
    })
}

/// How far a campaign's audience has been turned into recipients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expansion {
    /// Every row is a recipient document.
    pub done: bool,
    /// The next inline recipient (index into the create command's list).
    pub inline_next: i64,
    /// The last audience line already expanded.
    pub audience_line: i64,
    /// Rows that became recipients (before de-duplication).
    pub valid: i64,
    /// Rows that did not (reported with their lines).
    pub invalid: i64,
    /// Rows that named a number already in the campaign.
    pub duplicates: i64,
}

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignDoc {
    /// `<tenant>:campaign:<campaign id>`.
    #[serde(rename = "_id")]
    pub key: String,
    /// The tenant.
    pub tenant_id: String,
    /// The campaign id.
    pub campaign_id: String,
    /// The channel it sends on.
    pub channel: Channel,
    /// Its name.
    pub name: String,
    /// The template, parameters possibly naming audience columns as `{{column}}`.
    pub template: Template,
    /// The sending endpoint; `None` for the tenant's default.
    pub business_id: Option<String>,
    /// `<tenant>:<channel>:<business id or default>`: the pace it shares.
    pub sender_key: String,
    /// The uploaded audience.
    pub audience_id: Option<String>,
    /// Recipients given in the create command.
    #[serde(default)]
    pub inline_recipients: Vec<String>,
    /// Its rate.
    pub rate_per_minute: i32,
    /// Not before (epoch ms).
    pub start_at: Option<i64>,
    /// Not after (epoch ms).
    pub end_at: Option<i64>,
    /// Allowed hours.
    pub sending_window: Option<SendingWindow>,
    /// The timezone of the hours.
    pub timezone: String,
    /// Its state.
    pub state: CampaignState,
    /// Why it is paused, cancelled or failed.
    pub reason: Option<String>,
    /// The create command's id (a repeated create with it is a no-op).
    pub create_command_id: String,
    /// Who created it.
    pub operator_id: Option<String>,
    /// The last applied command ids (a redelivered command is not applied twice).
    #[serde(default)]
    pub commands: Vec<String>,
    /// Audience expansion progress.
    pub expansion: Expansion,
    /// When it was created (epoch ms).
    pub created_at: i64,
    /// Last change (epoch ms).
    pub updated_at: i64,
    /// When the first message went out.
    pub started_at: Option<i64>,
    /// When it completed, was cancelled or failed.
    pub completed_at: Option<i64>,
    /// A completed campaign whose statuses no longer change (or whose settle time passed).
    #[serde(default)]
    pub settled: bool,
    /// The last totals reported.
    pub counts: Option<CampaignCounts>,
    /// When they were computed.
    pub counts_at: Option<i64>,
}

/// One recipient as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientDoc {
    /// The command id (campaign + recipient); for an invalid row, campaign + line.
    #[serde(rename = "_id")]
    pub id: String,
    /// The campaign key.
    pub campaign_key: String,
    /// The tenant.
    pub tenant_id: String,
    /// The campaign id.
    pub campaign_id: String,
    /// The channel.
    pub channel: Channel,
    /// The number in the channel's form; `None` for an invalid row.
    pub to: Option<String>,
    /// Sending order.
    pub seq: i64,
    /// The audience line (or 1-based position of an inline recipient).
    pub line: i64,
    /// The number as given, for invalid rows.
    pub raw: Option<String>,
    /// Template parameter values by column.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Its status.
    pub status: RecipientStatus,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// The provider's message id, once accepted.
    pub provider_message_id: Option<String>,
    /// The customer wrote back after the message.
    #[serde(default)]
    pub replied: bool,
    /// Last change (epoch ms).
    pub updated_at: i64,
    /// When the command went out.
    pub queued_at: Option<i64>,
    /// When the provider accepted it.
    pub sent_at: Option<i64>,
    /// When it was delivered.
    pub delivered_at: Option<i64>,
    /// When it was read.
    pub read_at: Option<i64>,
    /// When it failed.
    pub failed_at: Option<i64>,
}

/// An uploaded audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceDoc {
    /// The audience id.
    #[serde(rename = "_id")]
    pub audience_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// `uploading` or `complete`.
    pub state: String,
    /// The CSV columns (or `phone` plus the JSON parameter names).
    pub columns: Vec<String>,
    /// Rows read.
    pub rows: i64,
    /// Rows with a usable number.
    pub valid: i64,
    /// Rows without.
    pub invalid: i64,
    /// Created (epoch ms).
    pub created_at: i64,
}

/// One uploaded row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceRowDoc {
    /// `<audience id>:<line>`.
    #[serde(rename = "_id")]
    pub id: String,
    /// The audience.
    pub audience_id: String,
    /// Its line.
    pub line: i64,
    /// The number as given.
    pub raw: String,
    /// The E.164 number, when valid.
    pub to: Option<String>,
    /// Why it is not usable.
    pub error: Option<String>,
    /// Parameter values.
    pub params: BTreeMap<String, String>,
}

/// One entry of a customer's consent history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEntry {
    /// The event that caused it (de-duplicates redeliveries).
    pub event_id: String,
    /// `opted_out` or `opted_in`.
    pub status: String,
    /// When the customer did it (epoch ms).
    pub occurred_at: i64,
    /// When CAAS recorded it (epoch ms).
    pub recorded_at: i64,
    /// `keyword`, `rcs_event`, or the producing component of a conversation event.
    pub source: String,
    /// The keyword, when one.
    pub keyword: Option<String>,
    /// The keyword's language.
    pub language: Option<String>,
}

/// A customer's consent on one channel of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentDoc {
    /// `<tenant>:<channel>:<customer>`.
    #[serde(rename = "_id")]
    pub key: String,
    /// The tenant.
    pub tenant_id: String,
    /// The channel.
    pub channel: String,
    /// The customer.
    pub customer_id: String,
    /// The current status.
    pub status: Option<String>,
    /// When the current status was given (epoch ms).
    pub changed_at: Option<i64>,
    /// When CAAS recorded the current status (epoch ms).
    pub recorded_at: Option<i64>,
    /// Every change, oldest first.
    #[serde(default)]
    pub history: Vec<ConsentEntry>,
}

/// One conditional status change of a recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The recipient (`_id`).
    pub id: String,
    /// Its new status (applied only from one of its predecessors).
    pub to: RecipientStatus,
    /// When it happened (epoch ms), stored as `<status>_at`.
    pub at: i64,
    /// Further fields to set (reason, provider message id).
    pub set: Document,
}

/// A status that came before the result that would tie it to a recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlyStatus {
    /// `<provider message id>:<status>`.
    #[serde(rename = "_id")]
    pub id: String,
    /// The provider's message id.
    pub provider_message_id: String,
    /// The tenant it came for.
    pub tenant_id: String,
    /// The status.
    pub status: RecipientStatus,
    /// When it happened.
    pub occurred_at: i64,
    /// Why it failed.
    pub reason: Option<String>,
    /// When it was stashed.
    pub created_at: i64,
}

/// The campaign service's database.
#[derive(Clone, Debug)]
pub struct Store {
    database: Database,
}

impl Store {
    /// A client for `uri` (no connection until the first operation); operations give up on
    /// server selection after `timeout`, so an outage is an error, not a hang.
    pub async fn connect(uri: &str, database: &str, timeout: Duration) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(uri)
            .await
            .map_err(mongo("parse the connection string"))?;
        options.app_name = Some("caas-campaign".to_string());
        options.server_selection_timeout = Some(timeout);
        options.connect_timeout = Some(timeout);
        let client = Client::with_options(options).map_err(mongo("create the client"))?;
        Ok(Self {
            database: client.database(database),
        })
    }

    /// On a database another component already has a client for.
    pub fn on(database: Database) -> Self {
        Self { database }
    }

    /// The database (tests read it directly).
    pub fn database(&self) -> &Database {
        &self.database
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.database.collection(name)
    }

    /// Create the indexes (idempotent).
    pub async fn prepare(&self) -> Result<(), StoreError> {
        let indexes = [
            (
                CAMPAIGNS,
                vec![
                    doc! { "key": { "state": 1 }, "name": "state" },
                    doc! { "key": { "sender_key": 1 }, "name": "sender" },
                    doc! { "key": { "tenant_id": 1, "created_at": -1 }, "name": "tenant_recent" },
                ],
            ),
            (
                RECIPIENTS,
                vec![
                    doc! { "key": { "campaign_key": 1, "status": 1, "seq": 1 }, "name": "campaign_status_seq" },
                    doc! { "key": { "campaign_key": 1, "seq": 1 }, "name": "campaign_seq" },
                    doc! { "key": { "tenant_id": 1, "channel": 1, "to": 1, "status": 1 }, "name": "customer" },
                    doc! { "key": { "provider_message_id": 1 }, "name": "provider_message_id",
                    "partialFilterExpression": { "provider_message_id": { "$exists": true } } },
                ],
            ),
            (
                AUDIENCE_ROWS,
                vec![doc! { "key": { "audience_id": 1, "line": 1 }, "name": "audience_line" }],
            ),
            (
                EARLY_STATUSES,
                vec![
                    doc! { "key": { "provider_message_id": 1 }, "name": "provider_message_id" },
                    doc! { "key": { "created_at": 1 }, "name": "created" },
                ],
            ),
            (
                AUDIENCES,
                vec![doc! { "key": { "tenant_id": 1, "created_at": -1 }, "name": "tenant_recent" }],
            ),
        ];
        for (collection, indexes) in indexes {
            self.database
                .run_command(doc! { "createIndexes": collection, "indexes": indexes })
                .await
                .map_err(mongo("create indexes"))?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ campaigns ------------

    /// Insert a new campaign; `false` when one with its key exists.
    pub async fn insert_campaign(&self, campaign: &CampaignDoc) -> Result<bool, StoreError> {
        let document = to_document(CAMPAIGNS, campaign)?;
        match self.collection(CAMPAIGNS).insert_one(document).await {
            Ok(_) => Ok(true),
            Err(error) if is_duplicate_key(&error) => Ok(false),
            Err(error) => Err(mongo("insert a campaign")(error)),
        }
    }

    /// A campaign by key.
    pub async fn campaign(&self, key: &str) -> Result<Option<CampaignDoc>, StoreError> {
        let found = self
            .collection(CAMPAIGNS)
            .find_one(doc! { "_id": key })
            .await
            .map_err(mongo("read a campaign"))?;
        found
            .map(|document| from_document(CAMPAIGNS, document))
            .transpose()
    }

    /// A tenant's campaigns, newest first, created before `before` (epoch ms) when given.
    pub async fn campaigns_of(
        &self,
        tenant_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<CampaignDoc>, StoreError> {
        let mut filter = doc! { "tenant_id": tenant_id };
        if let Some(before) = before {
            filter.insert("created_at", doc! { "$lt": before });
        }
        let documents: Vec<Document> = self
            .collection(CAMPAIGNS)
            .find(filter)
            .projection(doc! { "inline_recipients": 0, "commands": 0 })
            .sort(doc! { "created_at": -1 })
            .limit(limit)
            .await
            .map_err(mongo("list campaigns"))?
            .try_collect()
            .await
            .map_err(mongo("list campaigns"))?;
        documents
            .into_iter()
            .map(|document| from_document(CAMPAIGNS, document))
            .collect()
    }

    fn live_filter() -> Document {
        doc! { "$or": [
            { "state": { "$in": ["scheduled", "running", "paused"] } },
            { "state": "completed", "settled": false },
            { "state": "cancelled", "expansion.done": false },
        ] }
    }

    /// The sending numbers that have campaigns still sending or settling.
    pub async fn live_senders(&self) -> Result<Vec<String>, StoreError> {
        let values = self
            .collection(CAMPAIGNS)
            .distinct("sender_key", Self::live_filter())
            .await
            .map_err(mongo("list sending numbers"))?;
        Ok(values
            .into_iter()
            .filter_map(|value| value.as_str().map(str::to_string))
            .collect())
    }

    /// The campaigns of one sending number that are still sending or settling (without their
    /// inline recipient lists).
    pub async fn live_campaigns(&self, sender_key: &str) -> Result<Vec<CampaignDoc>, StoreError> {
        let mut filter = Self::live_filter();
        filter.insert("sender_key", sender_key);
        let documents: Vec<Document> = self
            .collection(CAMPAIGNS)
            .find(filter)
            .projection(doc! { "inline_recipients": 0, "commands": 0 })
            .await
            .map_err(mongo("read live campaigns"))?
            .try_collect()
            .await
            .map_err(mongo("read live campaigns"))?;
        documents
            .into_iter()
            .map(|document| from_document(CAMPAIGNS, document))
            .collect()
    }

    /// Inline recipients `from..from+limit` of a campaign.
    pub async fn inline_recipients(
        &self,
        key: &str,
        from: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let found = self
            .collection(CAMPAIGNS)
            .find_one(doc! { "_id": key })
            .projection(doc! { "inline_recipients": { "$slice": [from, limit] } })
            .await
            .map_err(mongo("read inline recipients"))?;
        Ok(found
            .and_then(|document| document.get_array("inline_recipients").ok().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|value| value.as_str().map(str::to_string))
            .collect())
    }

    /// Move a campaign from one of `from` to `to`, recording `command_id`; `false` when it was
    /// in none of `from` (or the command was applied before).
    pub async fn set_state(
        &self,
        key: &str,
        from: &[CampaignState],
        to: CampaignState,
        command_id: Option<&str>,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let from: Vec<&str> = from.iter().map(|state| state.as_str()).collect();
        let mut filter = doc! { "_id": key, "state": { "$in": from } };
        let mut set = doc! { "state": to.as_str(), "updated_at": now, "reason": reason };
        if !to.is_active() {
            set.insert("completed_at", now);
        }
        let mut update = doc! { "$set": set };
        if let Some(command_id) = command_id {
            filter.insert("commands", doc! { "$ne": command_id });
            update.insert(
                "$push",
                doc! { "commands": { "$each": [command_id], "$slice": -200 } },
            );
        }
        let result = self
            .collection(CAMPAIGNS)
            .update_one(filter, update)
            .await
            .map_err(mongo("change a campaign's state"))?;
        Ok(result.modified_count == 1)
    }

    /// Record when sending started (once).
    pub async fn mark_started(&self, key: &str, now: i64) -> Result<bool, StoreError> {
        let result = self
            .collection(CAMPAIGNS)
            .update_one(
                doc! { "_id": key, "started_at": Bson::Null },
                doc! { "$set": { "started_at": now, "updated_at": now } },
            )
            .await
            .map_err(mongo("mark a campaign started"))?;
        Ok(result.modified_count == 1)
    }

    /// Store expansion progress, only forward.
    pub async fn save_expansion(&self, key: &str, expansion: &Expansion) -> Result<(), StoreError> {
        let value = to_document(CAMPAIGNS, expansion)?;
        self.collection(CAMPAIGNS)
            .update_one(
                doc! { "_id": key, "expansion.done": false },
                doc! { "$set": { "expansion": value } },
            )
            .await
            .map_err(mongo("save expansion progress"))?;
        Ok(())
    }

    /// Store the latest totals (and settle the campaign when asked).
    pub async fn save_counts(
        &self,
        key: &str,
        counts: &CampaignCounts,
        now: i64,
        settled: bool,
    ) -> Result<(), StoreError> {
        let value = to_document(CAMPAIGNS, counts)?;
        let mut set = doc! { "counts": value, "counts_at": now };
        if settled {
            set.insert("settled", true);
        }
        self.collection(CAMPAIGNS)
            .update_one(doc! { "_id": key }, doc! { "$set": set })
            .await
            .map_err(mongo("save campaign totals"))?;
        Ok(())
    }

    // ------------------------------------------------------------------ audiences ------------

    /// Register an audience being uploaded.
    pub async fn insert_audience(&self, audience: &AudienceDoc) -> Result<(), StoreError> {
        self.collection(AUDIENCES)
            .insert_one(to_document(AUDIENCES, audience)?)
            .await
            .map_err(mongo("insert an audience"))?;
        Ok(())
    }

    /// Store uploaded rows (a repeated row is ignored).
    pub async fn insert_audience_rows(&self, rows: &[AudienceRowDoc]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let documents = rows
            .iter()
            .map(|row| to_document(AUDIENCE_ROWS, row))
            .collect::<Result<Vec<_>, _>>()?;
        match self
            .collection(AUDIENCE_ROWS)
            .insert_many(documents)
            .ordered(false)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(mongo("insert audience rows")(error)),
        }
    }

    /// Mark an audience complete with its counts.
    pub async fn finish_audience(&self, audience: &AudienceDoc) -> Result<(), StoreError> {
        self.collection(AUDIENCES)
            .update_one(
                doc! { "_id": &audience.audience_id },
                doc! { "$set": {
                    "state": &audience.state,
                    "columns": &audience.columns,
                    "rows": audience.rows,
                    "valid": audience.valid,
                    "invalid": audience.invalid,
                } },
            )
            .await
            .map_err(mongo("finish an audience"))?;
        Ok(())
    }

    /// An audience by id.
    pub async fn audience(&self, audience_id: &str) -> Result<Option<AudienceDoc>, StoreError> {
        self.collection(AUDIENCES)
            .find_one(doc! { "_id": audience_id })
            .await
            .map_err(mongo("read an audience"))?
            .map(|document| from_document(AUDIENCES, document))
            .transpose()
    }

    /// Rows of an audience after `line`, in line order; only the invalid ones when asked.
    pub async fn audience_rows(
        &self,
        audience_id: &str,
        after_line: i64,
        limit: i64,
        invalid_only: bool,
    ) -> Result<Vec<AudienceRowDoc>, StoreError> {
        let mut filter = doc! { "audience_id": audience_id, "line": { "$gt": after_line } };
        if invalid_only {
            filter.insert("error", doc! { "$ne": Bson::Null });
        }
        let documents: Vec<Document> = self
            .collection(AUDIENCE_ROWS)
            .find(filter)
            .sort(doc! { "line": 1 })
            .limit(limit)
            .await
            .map_err(mongo("read audience rows"))?
            .try_collect()
            .await
            .map_err(mongo("read audience rows"))?;
        documents
            .into_iter()
            .map(|document| from_document(AUDIENCE_ROWS, document))
            .collect()
    }

    // ------------------------------------------------------------------ recipients -----------

    /// Insert recipients; ones that exist (a duplicate number, a repeated chunk) are kept as
    /// they are. Returns how many were new.
    pub async fn insert_recipients(&self, recipients: &[RecipientDoc]) -> Result<u64, StoreError> {
        if recipients.is_empty() {
            return Ok(0);
        }
        let documents = recipients
            .iter()
            .map(|recipient| to_document(RECIPIENTS, recipient))
            .collect::<Result<Vec<_>, _>>()?;
        let total = documents.len() as u64;
        match self
            .collection(RECIPIENTS)
            .insert_many(documents)
            .ordered(false)
            .await
        {
            Ok(result) => Ok(result.inserted_ids.len() as u64),
            Err(error) => match error.kind.as_ref() {
                ErrorKind::InsertMany(failure) if is_duplicate_key(&error) => Ok(total
                    - failure
                        .write_errors
                        .as_ref()
                        .map_or(0, |errors| errors.len() as u64)),
                _ => Err(mongo("insert recipients")(error)),
            },
        }
    }

    /// Recipients by id.
    pub async fn recipients_by_id(&self, ids: &[String]) -> Result<Vec<RecipientDoc>, StoreError> {
        self.find_recipients(doc! { "_id": { "$in": ids } }, None, 0)
            .await
    }

    async fn find_recipients(
        &self,
        filter: Document,
        sort: Option<Document>,
        limit: i64,
    ) -> Result<Vec<RecipientDoc>, StoreError> {
        let collection = self.collection(RECIPIENTS);
        let mut find = collection.find(filter);
        if let Some(sort) = sort {
            find = find.sort(sort);
        }
        if limit > 0 {
            find = find.limit(limit);
        }
        let documents: Vec<Document> = find
            .await
            .map_err(mongo("read recipients"))?
            .try_collect()
            .await
            .map_err(mongo("read recipients"))?;
        documents
            .into_iter()
            .map(|document| from_document(RECIPIENTS, document))
            .collect()
    }

    /// The next pending recipients of a campaign after `after_seq`, in order.
    pub async fn pending(
        &self,
        campaign_key: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<RecipientDoc>, StoreError> {
        self.find_recipients(
            doc! { "campaign_key": campaign_key, "status": "pending", "seq": { "$gt": after_seq } },
            Some(doc! { "seq": 1 }),
            limit,
        )
        .await
    }

    /// A page of a campaign's recipients (optionally of one status) after `after_seq`.
    pub async fn recipients_page(
        &self,
        campaign_key: &str,
        status: Option<RecipientStatus>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<RecipientDoc>, StoreError> {
        let mut filter = doc! { "campaign_key": campaign_key, "seq": { "$gt": after_seq } };
        if let Some(status) = status {
            filter.insert("status", status.as_str());
        }
        self.find_recipients(filter, Some(doc! { "seq": 1 }), limit)
            .await
    }

    /// How many recipients of a campaign are real (not invalid rows).
    pub async fn count_valid_recipients(&self, campaign_key: &str) -> Result<u64, StoreError> {
        self.collection(RECIPIENTS)
            .count_documents(
                doc! { "campaign_key": campaign_key, "status": { "$ne": "skipped_invalid" } },
            )
            .await
            .map_err(mongo("count recipients"))
    }

    /// Whether a campaign has a recipient in `status`.
    pub async fn has_status(
        &self,
        campaign_key: &str,
        status: RecipientStatus,
    ) -> Result<bool, StoreError> {
        let found = self
            .collection(RECIPIENTS)
            .find_one(doc! { "campaign_key": campaign_key, "status": status.as_str() })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(mongo("look for recipients"))?;
        Ok(found.is_some())
    }

    /// Apply conditional status changes in bulk; returns how many applied.
    pub async fn transition(
        &self,
        transitions: &[Transition],
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut applied = 0u64;
        for chunk in transitions.chunks(MAX_STATEMENTS) {
            let statements: Vec<Document> = chunk
                .iter()
                .map(|transition| {
                    let predecessors: Vec<&str> = transition
                        .to
                        .predecessors()
                        .iter()
                        .map(|status| status.as_str())
                        .collect();
                    let mut set = transition.set.clone();
                    set.insert("status", transition.to.as_str());
                    set.insert("updated_at", now);
                    set.insert(format!("{}_at", transition.to.as_str()), transition.at);
                    doc! {
                        "q": { "_id": &transition.id, "status": { "$in": predecessors } },
                        "u": { "$set": set },
                    }
                })
                .collect();
            let reply = self
                .database
                .run_command(doc! { "update": RECIPIENTS, "updates": statements, "ordered": false })
                .await
                .map_err(mongo("update recipient statuses"))?;
            if let Ok(Bson::Array(errors)) = reply.get("writeErrors").cloned().ok_or(()) {
                if !errors.is_empty() {
                    return Err(StoreError::Convert {
                        collection: RECIPIENTS,
                        reason: format!("write errors: {errors:?}"),
                    });
                }
            }
            applied += reply
                .get("nModified")
                .and_then(|value| value.as_i32().map(i64::from).or(value.as_i64()))
                .unwrap_or(0) as u64;
        }
        Ok(applied)
    }

    /// Move these recipients from `pending` to `to` in one update (the common case of a
    /// sending step: no per-recipient fields).
    pub async fn mark_pending(
        &self,
        ids: &[String],
        to: RecipientStatus,
        at: i64,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let result = self
            .collection(RECIPIENTS)
            .update_many(
                doc! { "_id": { "$in": ids }, "status": "pending" },
                doc! { "$set": {
                    "status": to.as_str(),
                    "updated_at": at,
                    format!("{}_at", to.as_str()): at,
                } },
            )
            .await
            .map_err(mongo("mark recipients"))?;
        Ok(result.modified_count)
    }

    /// Move every pending recipient of a campaign to `to` (cancelled, expired).
    pub async fn close_pending(
        &self,
        campaign_key: &str,
        to: RecipientStatus,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let result = self
            .collection(RECIPIENTS)
            .update_many(
                doc! { "campaign_key": campaign_key, "status": "pending" },
                doc! { "$set": {
                    "status": to.as_str(),
                    "reason": reason,
                    "updated_at": now,
                    format!("{}_at", to.as_str()): now,
                } },
            )
            .await
            .map_err(mongo("close pending recipients"))?;
        Ok(result.modified_count)
    }

    /// A customer opted out: their pending recipients (any campaign) are skipped.
    pub async fn skip_customer(
        &self,
        tenant_id: &str,
        channel: Channel,
        customer_id: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let result = self
            .collection(RECIPIENTS)
            .update_many(
                doc! { "tenant_id": tenant_id, "channel": channel.as_str(), "to": customer_id, "status": "pending" },
                doc! { "$set": {
                    "status": "skipped_opted_out",
                    "reason": "the customer opted out",
                    "updated_at": now,
                    "skipped_opted_out_at": now,
                } },
            )
            .await
            .map_err(mongo("skip an opted-out customer"))?;
        Ok(result.modified_count)
    }

    /// The customer wrote back: mark the campaign messages they had received as replied.
    pub async fn mark_replied(
        &self,
        tenant_id: &str,
        channel: Channel,
        customer_id: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let result = self
            .collection(RECIPIENTS)
            .update_many(
                doc! {
                    "tenant_id": tenant_id, "channel": channel.as_str(), "to": customer_id,
                    "status": { "$in": ["sent", "delivered", "read"] },
                    "replied": { "$ne": true },
                },
                doc! { "$set": { "replied": true, "replied_at": now } },
            )
            .await
            .map_err(mongo("mark replies"))?;
        Ok(result.modified_count)
    }

    /// Recipients (id, tenant) by provider message id.
    pub async fn by_provider_message_ids(
        &self,
        provider_message_ids: &[String],
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let documents: Vec<Document> = self
            .collection(RECIPIENTS)
            .find(doc! { "provider_message_id": { "$in": provider_message_ids } })
            .projection(doc! { "_id": 1, "provider_message_id": 1, "tenant_id": 1 })
            .await
            .map_err(mongo("find recipients by provider id"))?
            .try_collect()
            .await
            .map_err(mongo("find recipients by provider id"))?;
        Ok(documents
            .into_iter()
            .filter_map(|document| {
                Some((
                    document.get_str("_id").ok()?.to_string(),
                    document.get_str("provider_message_id").ok()?.to_string(),
                    document.get_str("tenant_id").ok()?.to_string(),
                ))
            })
            .collect())
    }

    /// A campaign's totals, counted from its recipients.
    pub async fn counts(&self, campaign_key: &str) -> Result<CampaignCounts, StoreError> {
        let documents: Vec<Document> = self
            .collection(RECIPIENTS)
            .aggregate(vec![
                doc! { "$match": { "campaign_key": campaign_key } },
                doc! { "$group": {
                    "_id": "$status",
                    "count": { "$sum": 1 },
                    "replied": { "$sum": { "$cond": [ { "$eq": ["$replied", true] }, 1, 0 ] } },
                } },
            ])
            .await
            .map_err(mongo("count recipients"))?
            .try_collect()
            .await
            .map_err(mongo("count recipients"))?;
        let mut per_status = Vec::new();
        let mut replied = 0i64;
        for document in documents {
            let number = |field: &str| -> i64 {
                match document.get(field) {
                    Some(Bson::Int32(value)) => i64::from(*value),
                    Some(Bson::Int64(value)) => *value,
                    Some(Bson::Double(value)) => *value as i64,
                    _ => 0,
                }
            };
            replied += number("replied");
            if let Some(status) = document
                .get_str("_id")
                .ok()
                .and_then(RecipientStatus::parse)
            {
                per_status.push((status, number("count")));
            }
        }
        Ok(status::counts(&per_status, replied))
    }

    // ------------------------------------------------------------------ early statuses -------

    /// Keep statuses that no recipient claims yet.
    pub async fn stash_early(&self, statuses: &[EarlyStatus]) -> Result<(), StoreError> {
        for status in statuses {
            let document = to_document(EARLY_STATUSES, status)?;
            self.collection(EARLY_STATUSES)
                .replace_one(doc! { "_id": &status.id }, document)
                .upsert(true)
                .await
                .map_err(mongo("stash an early status"))?;
        }
        Ok(())
    }

    /// The stashed statuses of these provider message ids (removed once read).
    pub async fn take_early(
        &self,
        provider_message_ids: &[String],
    ) -> Result<Vec<EarlyStatus>, StoreError> {
        if provider_message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let filter = doc! { "provider_message_id": { "$in": provider_message_ids } };
        let documents: Vec<Document> = self
            .collection(EARLY_STATUSES)
            .find(filter.clone())
            .await
            .map_err(mongo("read early statuses"))?
            .try_collect()
            .await
            .map_err(mongo("read early statuses"))?;
        documents
            .into_iter()
            .map(|document| from_document(EARLY_STATUSES, document))
            .collect()
    }

    /// Forget stashed statuses once applied, or older than `before`.
    pub async fn drop_early(&self, ids: &[String], before: i64) -> Result<(), StoreError> {
        self.collection(EARLY_STATUSES)
            .delete_many(
                doc! { "$or": [ { "_id": { "$in": ids } }, { "created_at": { "$lt": before } } ] },
            )
            .await
            .map_err(mongo("drop early statuses"))?;
        Ok(())
    }

    // ------------------------------------------------------------------ consents -------------

    /// Record a consent change in the ledger: appended to the history once per event, and
    /// made current unless a later change is already recorded. Returns whether it became
    /// current.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_consent(
        &self,
        tenant_id: &str,
        channel: Channel,
        customer_id: &str,
        action: ConsentAction,
        entry: ConsentEntry,
    ) -> Result<bool, StoreError> {
        let key = consent_key(tenant_id, channel, customer_id);
        let entry_document = to_document(CONSENTS, &entry)?;
        let appended = self
            .collection(CONSENTS)
            .update_one(
                doc! { "_id": &key, "history.event_id": { "$ne": &entry.event_id } },
                doc! {
                    "$push": { "history": entry_document },
                    "$setOnInsert": {
                        "tenant_id": tenant_id,
                        "channel": channel.as_str(),
                        "customer_id": customer_id,
                    },
                },
            )
            .upsert(true)
            .await;
        match appended {
            Ok(_) => {}
            // The upsert collided with the existing document: the event is in the history.
            Err(error) if is_duplicate_key(&error) => {}
            Err(error) => return Err(mongo("append to the consent history")(error)),
        }
        let result = self
            .collection(CONSENTS)
            .update_one(
                doc! { "_id": &key, "$or": [
                    { "changed_at": { "$lt": entry.occurred_at } },
                    { "changed_at": { "$exists": false } },
                    { "changed_at": Bson::Null },
                    { "changed_at": entry.occurred_at, "status": { "$ne": action.status() } },
                ] },
                doc! { "$set": {
                    "status": action.status(),
                    "changed_at": entry.occurred_at,
                    "recorded_at": entry.recorded_at,
                } },
            )
            .await
            .map_err(mongo("update the current consent"))?;
        Ok(result.modified_count == 1)
    }

    /// A customer's consent record.
    pub async fn consent(&self, key: &str) -> Result<Option<ConsentDoc>, StoreError> {
        self.collection(CONSENTS)
            .find_one(doc! { "_id": key })
            .await
            .map_err(mongo("read a consent"))?
            .map(|document| from_document(CONSENTS, document))
            .transpose()
    }

    /// Which of these consent keys currently have `status` (`opted_out` or `opted_in`).
    pub async fn with_consent_status(
        &self,
        keys: &[String],
        status: &str,
    ) -> Result<HashSet<String>, StoreError> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let documents: Vec<Document> = self
            .collection(CONSENTS)
            .find(doc! { "_id": { "$in": keys }, "status": status })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(mongo("read consents"))?
            .try_collect()
            .await
            .map_err(mongo("read consents"))?;
        Ok(documents
            .into_iter()
            .filter_map(|document| document.get_str("_id").ok().map(str::to_string))
            .collect())
    }

    // ------------------------------------------------------------------ leases ---------------

    /// Take or renew the lease of a sending number until `until`; `false` when another
    /// instance holds it.
    pub async fn acquire_lease(
        &self,
        sender_key: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .collection(LEASES)
            .update_one(
                doc! { "_id": sender_key, "$or": [ { "owner": owner }, { "until": { "$lt": now } } ] },
                doc! { "$set": { "owner": owner, "until": until } },
            )
            .upsert(true)
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_duplicate_key(&error) => Ok(false),
            Err(error) => Err(mongo("take a sending-number lease")(error)),
        }
    }

    /// Give a lease back (so another instance may take it at once).
    pub async fn release_lease(&self, sender_key: &str, owner: &str) -> Result<(), StoreError> {
        self.collection(LEASES)
            .update_one(
                doc! { "_id": sender_key, "owner": owner },
                doc! { "$set": { "until": 0i64 } },
            )
            .await
            .map_err(mongo("release a sending-number lease"))?;
        Ok(())
    }
}

/// The consent ledger key `<tenant>:<channel>:<customer>` (the conversation key).
pub fn consent_key(tenant_id: &str, channel: Channel, customer_id: &str) -> String {
    caas_events::keys::conversation_key(tenant_id, channel, customer_id)
}
