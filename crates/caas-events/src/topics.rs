//! Topic names, in one place.
//!
//! `topics/catalogue.yaml` is the source of truth for partitions, retention and the rest; a test
//! checks that every topic named here is in it. Names carry the major version: a breaking change
//! is a new topic, never a new incompatible schema on an old one.

/// A customer's message, any type. Key: conversation key.
pub const INBOUND_MESSAGES: &str = "inbound.messages.v1";
/// Provider status of a message we sent. Key: conversation key.
pub const INBOUND_STATUSES: &str = "inbound.statuses.v1";
/// A request to send (from bot, campaign, operator, integrator). Key: conversation key.
pub const OUTBOUND_COMMANDS: &str = "outbound.commands.v1";
/// What the provider said to a send request. Key: conversation key.
pub const OUTBOUND_RESULTS: &str = "outbound.results.v1";
/// Handoff to human, assignment, release to bot, closed. Key: conversation key.
pub const CONVERSATION_EVENTS: &str = "conversation.events.v1";
/// Raw typing / online / read signals (short retention). Key: conversation or operator key.
pub const PRESENCE_EVENTS: &str = "presence.events.v1";
/// Derived presence state changes for fan-out. Key: as [`PRESENCE_EVENTS`].
pub const PRESENCE_UPDATES: &str = "presence.updates.v1";
/// Create, pause, resume, cancel a campaign. Key: campaign key.
pub const CAMPAIGN_COMMANDS: &str = "campaign.commands.v1";
/// Campaign progress and lifecycle. Key: campaign key.
pub const CAMPAIGN_EVENTS: &str = "campaign.events.v1";

/// Every event topic (without the DLQs), in catalogue order.
pub const ALL: [&str; 9] = [
    INBOUND_MESSAGES,
    INBOUND_STATUSES,
    OUTBOUND_COMMANDS,
    OUTBOUND_RESULTS,
    CONVERSATION_EVENTS,
    PRESENCE_EVENTS,
    PRESENCE_UPDATES,
    CAMPAIGN_COMMANDS,
    CAMPAIGN_EVENTS,
];

/// What a dead-letter topic name appends to the original topic name.
pub const DLQ_SUFFIX: &str = ".dlq";

/// The dead-letter topic of `topic`: `<topic>.dlq`.
pub fn dlq(topic: &str) -> String {
    format!("{topic}{DLQ_SUFFIX}")
}

/// The registry subject of a topic's record values: `<topic>-value` (Confluent's
/// `TopicNameStrategy`, which standard serializers use by default).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlq_appends_suffix() {
        assert_eq!(dlq(INBOUND_MESSAGES), "inbound.messages.v1.dlq");
    }

    #[test]
    fn value_subject_follows_topic_name_strategy() {
        assert_eq!(
            value_subject(OUTBOUND_COMMANDS),
            "outbound.commands.v1-value"
        );
    }

    #[test]
    fn names_are_unique_and_versioned() {
        let mut names = ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(ALL.iter().all(|name| name.ends_with(".v1")));
    }
}
