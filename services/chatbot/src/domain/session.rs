//! A conversation's state between events, stored as JSON (in Redis by the service).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many recent event ids a session remembers, so a redelivered event changes nothing.
pub const REMEMBERED_EVENTS: usize = 32;

/// The state of one conversation with the bot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Session {
    /// Increases with every change; the store writes only over the revision it read.
    pub revision: u64,
    /// The running flow, if any.
    pub flow: Option<String>,
    /// The step the flow waits at (by id, so a reloaded file keeps running sessions).
    pub step: Option<String>,
    /// When the waiting step times out, epoch ms.
    pub deadline: Option<i64>,
    /// Answers and choices stored by steps.
    pub vars: BTreeMap<String, String>,
    /// A human handles the conversation: the bot stays silent until released.
    pub human: bool,
    /// The customer's last message (or the session's start), epoch ms.
    pub last_activity: i64,
    /// The customer's profile name, from their last message.
    pub customer_name: Option<String>,
    /// The business endpoint the customer wrote to; replies go out from it.
    pub business_id: Option<String>,
    /// The trace of the customer's last message, continued by the replies.
    pub trace_parent: Option<String>,
    /// Ids of the latest events applied (newest last).
    pub seen: Vec<String>,
}

impl Session {
    /// Whether `event_id` was applied already.
    pub fn has_seen(&self, event_id: &str) -> bool {
        self.seen.iter().any(|seen| seen == event_id)
    }

    /// Remember `event_id` (forgetting the oldest beyond [`REMEMBERED_EVENTS`]).
    pub fn remember(&mut self, event_id: &str) {
        self.seen.push(event_id.to_string());
        if self.seen.len() > REMEMBERED_EVENTS {
            let excess = self.seen.len() - REMEMBERED_EVENTS;
            self.seen.drain(..excess);
        }
    }

    /// Leave the running flow (variables stay).
    pub fn end_flow(&mut self) {
        self.flow = None;
        self.step = None;
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_bounded_number_of_events() {
        let mut session = Session::default();
        for index in 0..40 {
            session.remember(&format!("e{index}"));
        }
        assert_eq!(session.seen.len(), REMEMBERED_EVENTS);
        assert!(session.has_seen("e39"));
        assert!(!session.has_seen("e0"));
    }

    #[test]
    fn old_json_without_new_fields_still_reads() {
        let session: Session = serde_json::from_str(r#"{"revision":3,"human":true}"#).unwrap();
        assert_eq!(session.revision, 3);
        assert!(session.human);
    }
}
