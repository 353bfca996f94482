//! What the simulator received: every send request with its answer, kept in memory (bounded)
//! for tests to query with `GET /_sim/requests`, and every webhook it sent back
//! (`GET /_sim/webhooks`).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which provider API a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// WhatsApp Cloud API.
    Whatsapp,
    /// RCS Business Messaging.
    Rbm,
}

/// How the simulator answered a send request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Accepted: the message counts as sent to the customer.
    Accepted,
    /// RBM: a `messageId` seen before (409); nothing sent again.
    Duplicate,
    /// Refused by validation or a failing number; nothing sent.
    Rejected,
    /// Answered as rate limited (injected or over `max_per_second`); nothing sent.
    RateLimited,
    /// Answered with an injected server error; nothing sent.
    ServerError,
    /// No usable Bearer token; nothing sent.
    Unauthorized,
}

/// One send request and the simulator's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Position in arrival order, from 1.
    pub seq: u64,
    /// When it arrived, epoch milliseconds.
    pub received_at: i64,
    /// Which API.
    pub api: Api,
    /// The sending endpoint: WhatsApp `phone_number_id` or RBM `agentId`.
    pub sender: String,
    /// The recipient (`to` or the path's phone number).
    pub to: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The answer in one word.
    pub outcome: Outcome,
    /// The provider message id: the `wamid` given out, or the RBM `messageId`.
    pub provider_message_id: Option<String>,
    /// The provider's error code when refused (Graph code or Google status).
    pub error_code: Option<String>,
    /// The request body as received (`null` if it was not JSON).
    pub body: Value,
}

/// Filters of `GET /_sim/requests`; every given field must match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RequestQuery {
    /// Only this API.
    pub api: Option<Api>,
    /// Only this sending endpoint.
    pub sender: Option<String>,
    /// Only this recipient.
    pub to: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only records after this sequence number.
    pub after_seq: Option<u64>,
}

impl RequestQuery {
    fn matches(&self, record: &RequestRecord) -> bool {
        self.api.is_none_or(|api| api == record.api)
            && self
                .sender
                .as_ref()
                .is_none_or(|sender| *sender == record.sender)
            && self
                .to
                .as_ref()
                .is_none_or(|to| to.trim_start_matches('+') == record.to.trim_start_matches('+'))
            && self.outcome.is_none_or(|outcome| outcome == record.outcome)
            && self.after_seq.is_none_or(|after| record.seq > after)
    }
}

/// One webhook the simulator sent (or tried to).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookRecord {
    /// When the last attempt finished, epoch milliseconds.
    pub sent_at: i64,
    /// `whatsapp` or `rcs`.
    pub channel: String,
    /// `status` (a status of a message we were sent) or `message` (a customer's message).
    pub kind: String,
    /// The message the webhook is about (wamid or RBM message id).
    pub provider_message_id: String,
    /// For statuses: `sent`, `delivered`, `read`, `failed` (RBM: `DELIVERED`, `READ`).
    pub status: Option<String>,
    /// The HTTP status of the last attempt; `None` if the receiver was unreachable.
    pub http_status: Option<u16>,
    /// How many attempts were made.
    pub attempts: u32,
}

/// A bounded, append-only log; the oldest entries go first when it is full.
#[derive(Debug)]
pub struct Log<T> {
    entries: Mutex<VecDeque<T>>,
    capacity: usize,
}

impl<T: Clone> Log<T> {
    /// An empty log keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<T>> {
        // A panic while holding the lock cannot leave the deque half-updated.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Append, dropping the oldest entry when full.
    pub fn push(&self, entry: T) {
        let mut entries = self.lock();
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Append with a value computed under the lock (for sequence numbers in arrival order).
    pub fn push_with(&self, make: impl FnOnce() -> T) {
        let mut entries = self.lock();
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(make());
    }

    /// The entries that pass `keep`, oldest first.
    pub fn filtered(&self, keep: impl Fn(&T) -> bool) -> Vec<T> {
        self.lock()
            .iter()
            .filter(|entry| keep(entry))
            .cloned()
            .collect()
    }

    /// Forget everything.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

impl Log<RequestRecord> {
    /// The records matching `query`, oldest first.
    pub fn query(&self, query: &RequestQuery) -> Vec<RequestRecord> {
        self.filtered(|record| query.matches(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, to: &str, outcome: Outcome) -> RequestRecord {
        RequestRecord {
            seq,
            received_at: 0,
            api: Api::Whatsapp,
            sender: "1".to_string(),
            to: to.to_string(),
            status: 200,
            outcome,
            provider_message_id: None,
            error_code: None,
            body: Value::Null,
        }
    }

    #[test]
    fn queries_filter_and_the_log_is_bounded() {
        let log = Log::new(3);
        for seq in 1..=4 {
            log.push(record(
                seq,
                if seq % 2 == 0 { "+49" } else { "50" },
                Outcome::Accepted,
            ));
        }
        assert_eq!(log.query(&RequestQuery::default()).len(), 3);
        let to_49 = RequestQuery {
            to: Some("49".to_string()),
            ..RequestQuery::default()
        };
        assert_eq!(
            log.query(&to_49).iter().map(|r| r.seq).collect::<Vec<_>>(),
            [2, 4]
        );
        let after = RequestQuery {
            after_seq: Some(3),
            ..RequestQuery::default()
        };
        assert_eq!(log.query(&after).len(), 1);
        let rejected = RequestQuery {
            outcome: Some(Outcome::Rejected),
            ..RequestQuery::default()
        };
        assert!(log.query(&rejected).is_empty());
    }
}
