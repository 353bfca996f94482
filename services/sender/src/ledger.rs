//! The idempotency ledger: one MongoDB document per command id in `sender_commands`, so a
//! command delivered twice, retried after a crash or seen by two instances during a
//! rebalance is sent at most once, and its result is published again identically.
//!
//! ```text
//! { _id: <command id>, state: pending | in_flight | accepted | failed,
//!   owner: "<instance>/<nonce>", instance: "<instance id>", attempts: <provider calls>,
//!   tenant_id, conversation_key, channel, created_at, updated_at, expire_at (TTL index),
//!   provider_message_id?, error_code?, error_reason?, error_retryable?, finished_at? }
//! ```
//!
//! Every write is conditional on the owner (or on the state not being final), so a worker that
//! lost its claim cannot overwrite the new owner, and a final state is written once.
//! MongoDB (a replica set with majority writes in production) is used rather than Redis
//! because this record is what prevents duplicates: it must survive a restart of the store.

use std::time::Duration;

use caas_events::model::{SendError, SendOutcome};
use mongodb::bson::{doc, DateTime, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use crate::domain::claim::Phase;

/// The collection name.
pub const COLLECTION: &str = "sender_commands";

/// A ledger operation failed; the command is retried.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// MongoDB refused or could not be reached.
    #[error("idempotency ledger (mongodb) unavailable: {0}")]
    Store(#[from] mongodb::error::Error),
    /// MongoDB did not answer in time.
    #[error("idempotency ledger (mongodb) did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// A document does not have the expected shape.
    #[error("ledger entry {command_id} is malformed: {reason}")]
    Malformed {
        /// The command.
        command_id: String,
        /// What is wrong.
        reason: String,
    },
}

/// A final result as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    /// Accepted or failed.
    pub outcome: SendOutcome,
    /// The provider's id, when accepted.
    pub provider_message_id: Option<String>,
    /// Why it failed.
    pub error: Option<SendError>,
    /// Provider calls made.
    pub attempts: i32,
    /// When the outcome was decided, epoch ms (the result's `occurred_at`).
    pub finished_at: i64,
}

/// A ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where it stands.
    pub phase: Phase,
    /// The worker holding it (`<instance>/<nonce>`).
    pub owner: String,
    /// The instance of that worker.
    pub instance: String,
    /// Provider calls made so far.
    pub attempts: u32,
    /// The result, once final.
    pub result: Option<Final>,
}

/// What the ledger needs to know about a command when claiming it.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// The command.
    pub command_id: &'a str,
    /// The worker claiming it.
    pub owner: &'a str,
    /// That worker's instance.
    pub instance: &'a str,
    /// For operators reading the collection.
    pub tenant_id: &'a str,
    /// For operators reading the collection.
    pub conversation_key: &'a str,
    /// For operators reading the collection.
    pub channel: &'a str,
}

/// The ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    collection: Collection<Document>,
    retention: Duration,
    timeout: Duration,
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write_error)) => write_error.code == 11000,
        _ => error.to_string().contains("E11000"),
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "pending",
        Phase::InFlight => "in_flight",
        Phase::Final => "final",
    }
}

fn final_fields(result: &Final) -> Document {
    let mut fields = doc! {
        "state": match result.outcome { SendOutcome::Accepted => "accepted", SendOutcome::Failed => "failed" },
        "attempts": result.attempts,
        "finished_at": result.finished_at,
        "updated_at": DateTime::now(),
    };
    if let Some(id) = &result.provider_message_id {
        fields.insert("provider_message_id", id);
    }
    if let Some(error) = &result.error {
        fields.insert("error_code", &error.code);
        fields.insert("error_reason", &error.reason);
        fields.insert("error_retryable", error.retryable);
    }
    fields
}

fn parse_entry(command_id: &str, document: &Document) -> Result<Entry, LedgerError> {
    let malformed = |reason: &str| LedgerError::Malformed {
        command_id: command_id.to_string(),
        reason: reason.to_string(),
    };
    let text = |field: &str| document.get_str(field).ok().map(str::to_string);
    let state = document
        .get_str("state")
        .map_err(|_| malformed("no state"))?;
    let attempts = document
        .get_i32("attempts")
        .map(i64::from)
        .or_else(|_| document.get_i64("attempts"))
        .unwrap_or(0)
        .max(0);
    let (phase, result) = match state {
        "pending" => (Phase::Pending, None),
        "in_flight" => (Phase::InFlight, None),
        "accepted" | "failed" => {
            let outcome = if state == "accepted" {
                SendOutcome::Accepted
            } else {
                SendOutcome::Failed
            };
            let error = text("error_code").map(|code| SendError {
                code,
                reason: text("error_reason").unwrap_or_default(),
                retryable: document.get_bool("error_retryable").unwrap_or(false),
            });
            let finished_at = document
                .get_i64("finished_at")
                .or_else(|_| document.get_i32("finished_at").map(i64::from))
                .unwrap_or(0);
            (
                Phase::Final,
                Some(Final {
                    outcome,
                    provider_message_id: text("provider_message_id"),
                    error,
                    attempts: attempts as i32,
                    finished_at,
                }),
            )
        }
        other => return Err(malformed(&format!("unknown state {other:?}"))),
    };
    Ok(Entry {
        phase,
        owner: text("owner").unwrap_or_default(),
        instance: text("instance").unwrap_or_default(),
        attempts: attempts as u32,
        result,
    })
}

impl Ledger {
    /// The ledger in `database`; entries expire `retention` after they were created.
    pub fn new(database: &mongodb::Database, retention: Duration) -> Self {
        Self {
            collection: database.collection(COLLECTION),
            retention,
            timeout: Duration::from_secs(10),
        }
    }

    async fn bounded<T>(
        &self,
        operation: impl std::future::IntoFuture<Output = Result<T, mongodb::error::Error>>,
    ) -> Result<T, LedgerError> {
        match tokio::time::timeout(self.timeout, operation.into_future()).await {
            Ok(result) => result.map_err(LedgerError::from),
            Err(_) => Err(LedgerError::Timeout(self.timeout)),
        }
    }

    /// Create the TTL index that forgets old entries (idempotent).
    pub async fn ensure_indexes(&self) -> Result<(), LedgerError> {
        let index = IndexModel::builder()
            .keys(doc! { "expire_at": 1 })
            .options(
                IndexOptions::builder()
                    .expire_after(Duration::ZERO)
                    .name("expire_at_ttl".to_string())
                    .build(),
            )
            .build();
        self.bounded(self.collection.create_index(index))
            .await
            .map(|_| ())
    }

    /// The entry of `command_id`, if any.
    pub async fn get(&self, command_id: &str) -> Result<Option<Entry>, LedgerError> {
        let found = self
            .bounded(self.collection.find_one(doc! { "_id": command_id }))
            .await?;
        found
            .map(|document| parse_entry(command_id, &document))
            .transpose()
    }

    fn new_document(&self, claim: &Claim<'_>) -> Document {
        let now = DateTime::now();
        let expire_at =
            DateTime::from_millis(now.timestamp_millis() + self.retention.as_millis() as i64);
        doc! {
            "_id": claim.command_id,
            "state": "pending",
            "owner": claim.owner,
            "instance": claim.instance,
            "attempts": 0,
            "tenant_id": claim.tenant_id,
            "conversation_key": claim.conversation_key,
            "channel": claim.channel,
            "created_at": now,
            "updated_at": now,
            "expire_at": expire_at,
        }
    }

    /// Claim a command nobody has seen; `false` if an entry exists already.
    pub async fn claim(&self, claim: &Claim<'_>) -> Result<bool, LedgerError> {
        let document = self.new_document(claim);
        match self.bounded(self.collection.insert_one(document)).await {
            Ok(_) => Ok(true),
            Err(LedgerError::Store(error)) if is_duplicate_key(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Record a command decided without a provider call (window closed, unsendable content);
    /// `false` if an entry exists already.
    pub async fn insert_final(
        &self,
        claim: &Claim<'_>,
        result: &Final,
    ) -> Result<bool, LedgerError> {
        let mut document = self.new_document(claim);
        document.extend(final_fields(result));
        match self.bounded(self.collection.insert_one(document)).await {
            Ok(_) => Ok(true),
            Err(LedgerError::Store(error)) if is_duplicate_key(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Move an unfinished entry from a dead owner to `owner`; `false` if someone else moved or
    /// finished it first.
    pub async fn take_over(
        &self,
        command_id: &str,
        from_owner: &str,
        owner: &str,
        instance: &str,
    ) -> Result<bool, LedgerError> {
        let updated = self
            .bounded(self.collection.update_one(
                doc! { "_id": command_id, "owner": from_owner, "state": { "$in": ["pending", "in_flight"] } },
                // The state stays: an `in_flight` marker must survive until the new owner decides.
                doc! { "$set": { "owner": owner, "instance": instance, "updated_at": DateTime::now() } },
            ))
            .await?;
        Ok(updated.matched_count == 1)
    }

    /// Record the phase (and calls made) of an entry `owner` holds; `false` if it lost it.
    pub async fn set_phase(
        &self,
        command_id: &str,
        owner: &str,
        phase: Phase,
        attempts: u32,
    ) -> Result<bool, LedgerError> {
        let updated = self
            .bounded(self.collection.update_one(
                doc! { "_id": command_id, "owner": owner, "state": { "$in": ["pending", "in_flight"] } },
                doc! { "$set": { "state": phase_name(phase), "attempts": attempts as i32, "updated_at": DateTime::now() } },
            ))
            .await?;
        Ok(updated.matched_count == 1)
    }

    /// Store the final result unless one is stored already; returns the stored one.
    pub async fn finish(&self, command_id: &str, result: &Final) -> Result<Final, LedgerError> {
        self.bounded(self.collection.update_one(
            doc! { "_id": command_id, "state": { "$in": ["pending", "in_flight"] } },
            doc! { "$set": final_fields(result) },
        ))
        .await?;
        match self.get(command_id).await? {
            Some(Entry {
                result: Some(stored),
                ..
            }) => Ok(stored),
            _ => Err(LedgerError::Malformed {
                command_id: command_id.to_string(),
                reason: "the entry vanished or is not final after finishing it".to_string(),
            }),
        }
    }

    /// Give up a claim on which no call is in flight (clean shutdown), so the next owner starts
    /// at once instead of waiting for this instance's liveness to lapse.
    pub async fn release(&self, command_id: &str, owner: &str) -> Result<(), LedgerError> {
        self.bounded(
            self.collection
                .delete_one(doc! { "_id": command_id, "owner": owner, "state": "pending" }),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_in_every_state() {
        let pending = parse_entry(
            "c",
            &doc! { "state": "pending", "owner": "i/1", "instance": "i", "attempts": 2 },
        )
        .unwrap();
        assert_eq!(
            (pending.phase, pending.attempts, pending.result),
            (Phase::Pending, 2, None)
        );
        let failed = parse_entry(
            "c",
            &doc! { "state": "failed", "owner": "i/1", "instance": "i", "attempts": 3, "finished_at": 42_i64,
                    "error_code": "whatsapp:131026", "error_reason": "undeliverable", "error_retryable": false },
        )
        .unwrap();
        let result = failed.result.unwrap();
        assert_eq!(result.outcome, SendOutcome::Failed);
        assert_eq!(result.error.unwrap().code, "whatsapp:131026");
        assert_eq!(result.finished_at, 42);
        assert!(parse_entry("c", &doc! { "state": "odd" }).is_err());
    }

    #[test]
    fn final_fields_round_trip() {
        let result = Final {
            outcome: SendOutcome::Accepted,
            provider_message_id: Some("wamid.1".into()),
            error: None,
            attempts: 1,
            finished_at: 7,
        };
        let mut document = doc! { "owner": "o", "instance": "i" };
        document.extend(final_fields(&result));
        assert_eq!(parse_entry("c", &document).unwrap().result, Some(result));
    }
}
