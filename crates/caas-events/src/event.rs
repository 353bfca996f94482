//! The [`Event`] trait that binds each Rust type to its topic and schema.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::binding::SchemaBinding;
use crate::model::{
    CampaignCommand, CampaignEvent, ConversationEvent, InboundMessage, InboundStatus,
    OutboundCommand, OutboundResult, PresenceEvent, PresenceUpdate,
};
use crate::topics;

/// A record type of one CAAS topic.
///
/// Implemented for the nine types in [`crate::model`]; each is the value type of exactly one
/// topic. The schema is embedded at compile time from `schemas/<SCHEMA_FILE>` and parsed once.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The topic whose record values are of this type.
    const TOPIC: &'static str;
    /// The schema's file name in `schemas/`.
    const SCHEMA_FILE: &'static str;
    /// The schema, exactly as in the file (docs included); this is what gets registered.
    const SCHEMA_JSON: &'static str;
    /// The full name of the Avro record, e.g. `caas.v1.InboundMessage`.
    const RECORD_NAME: &'static str;

    /// The Kafka record key: the envelope's `conversation_key` (a conversation, campaign or
    /// operator key, see [`crate::keys`]).
    fn key(&self) -> &str;

    /// The envelope's `event_id`, on which consumers de-duplicate.
    fn event_id(&self) -> &str;

    /// The envelope's `tenant_id`.
    fn tenant_id(&self) -> &str;

    /// The envelope's `occurred_at`, epoch milliseconds.
    fn occurred_at(&self) -> i64;

    /// The envelope's `trace_parent` (W3C), if any.
    fn trace_parent(&self) -> Option<&str>;

    /// The parsed schema with its cached reader and writer; built on first use.
    fn binding() -> &'static SchemaBinding;

    /// The parsed schema.
    fn schema() -> &'static apache_avro::Schema {
        Self::binding().schema()
    }
}

/// A topic's contract as plain data, for tooling (`caasctl schemas apply`, docs generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contract {
    /// The topic.
    pub topic: &'static str,
    /// The schema's file name in `schemas/`.
    pub schema_file: &'static str,
    /// The schema text.
    pub schema_json: &'static str,
    /// The full Avro record name.
    pub record_name: &'static str,
}

impl Contract {
    /// The contract of an event type.
    pub const fn of<E: Event>() -> Self {
        Self {
            topic: E::TOPIC,
            schema_file: E::SCHEMA_FILE,
            schema_json: E::SCHEMA_JSON,
            record_name: E::RECORD_NAME,
        }
    }

    /// The registry subject of the topic's values (`<topic>-value`).
    pub fn subject(&self) -> String {
        topics::value_subject(self.topic)
    }
}

/// Every topic's contract, in the order of [`topics::ALL`].
pub const CONTRACTS: [Contract; 9] = [
    Contract::of::<InboundMessage>(),
    Contract::of::<InboundStatus>(),
    Contract::of::<OutboundCommand>(),
    Contract::of::<OutboundResult>(),
    Contract::of::<ConversationEvent>(),
    Contract::of::<PresenceEvent>(),
    Contract::of::<PresenceUpdate>(),
    Contract::of::<CampaignCommand>(),
    Contract::of::<CampaignEvent>(),
];

/// Implements [`Event`] for a type whose envelope fields are named as in every schema.
macro_rules! impl_event {
    ($event:ty, topic: $topic:expr, record: $record:literal) => {
        impl Event for $event {
            const TOPIC: &'static str = $topic;
            const SCHEMA_FILE: &'static str = concat!($record, ".avsc");
            const SCHEMA_JSON: &'static str = include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../schemas/",
                $record,
                ".avsc"
            ));
            const RECORD_NAME: &'static str = $record;

            fn key(&self) -> &str {
                &self.conversation_key
            }

            fn event_id(&self) -> &str {
                &self.event_id
            }

            fn tenant_id(&self) -> &str {
                &self.tenant_id
            }

            fn occurred_at(&self) -> i64 {
                self.occurred_at
            }

            fn trace_parent(&self) -> Option<&str> {
                self.trace_parent.as_deref()
            }

            fn binding() -> &'static SchemaBinding {
                // Two cells: the binding borrows the parsed schema for 'static.
                static SCHEMA: std::sync::OnceLock<apache_avro::Schema> =
                    std::sync::OnceLock::new();
                static BINDING: std::sync::OnceLock<SchemaBinding> = std::sync::OnceLock::new();
                BINDING.get_or_init(|| {
                    let schema = SCHEMA.get_or_init(|| {
                        crate::binding::parse_embedded(Self::SCHEMA_FILE, Self::SCHEMA_JSON)
                    });
                    SchemaBinding::new(schema)
                })
            }
        }
    };
}

impl_event!(InboundMessage, topic: topics::INBOUND_MESSAGES, record: "caas.v1.InboundMessage");
impl_event!(InboundStatus, topic: topics::INBOUND_STATUSES, record: "caas.v1.InboundStatus");
impl_event!(OutboundCommand, topic: topics::OUTBOUND_COMMANDS, record: "caas.v1.OutboundCommand");
impl_event!(OutboundResult, topic: topics::OUTBOUND_RESULTS, record: "caas.v1.OutboundResult");
impl_event!(ConversationEvent, topic: topics::CONVERSATION_EVENTS, record: "caas.v1.ConversationEvent");
impl_event!(PresenceEvent, topic: topics::PRESENCE_EVENTS, record: "caas.v1.PresenceEvent");
impl_event!(PresenceUpdate, topic: topics::PRESENCE_UPDATES, record: "caas.v1.PresenceUpdate");
impl_event!(CampaignCommand, topic: topics::CAMPAIGN_COMMANDS, record: "caas.v1.CampaignCommand");
impl_event!(CampaignEvent, topic: topics::CAMPAIGN_EVENTS, record: "caas.v1.CampaignEvent");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contracts_follow_topic_order() {
        let contract_topics: Vec<&str> = CONTRACTS.iter().map(|contract| contract.topic).collect();
        assert_eq!(contract_topics, topics::ALL);
    }

    #[test]
    fn every_embedded_schema_parses_to_its_record() {
        for (name, schema) in [
            (InboundMessage::RECORD_NAME, InboundMessage::schema()),
            (InboundStatus::RECORD_NAME, InboundStatus::schema()),
            (OutboundCommand::RECORD_NAME, OutboundCommand::schema()),
            (OutboundResult::RECORD_NAME, OutboundResult::schema()),
            (ConversationEvent::RECORD_NAME, ConversationEvent::schema()),
            (PresenceEvent::RECORD_NAME, PresenceEvent::schema()),
            (PresenceUpdate::RECORD_NAME, PresenceUpdate::schema()),
            (CampaignCommand::RECORD_NAME, CampaignCommand::schema()),
            (CampaignEvent::RECORD_NAME, CampaignEvent::schema()),
        ] {
            match schema {
                apache_avro::Schema::Record(record) => assert_eq!(record.name.fullname(None), name),
                other => panic!("{name} is not a record schema: {other:?}"),
            }
        }
    }
}
