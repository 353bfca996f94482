//! Kafka keys and deterministic event ids.
//!
//! - Conversation key `<tenant_id>:<channel>:<customer_id>`: every event about one conversation
//!   (messages, statuses, commands, results, conversation events, presence inside it) carries it
//!   as its Kafka key, so they share a partition and keep their order.
//! - Campaign key `<tenant_id>:campaign:<campaign_id>`: the key of `campaign.commands.v1` and
//!   `campaign.events.v1`, held in the envelope's `conversation_key` field there.
//! - Operator key `<tenant_id>:operator:<operator_id>`: presence of an operator that belongs to
//!   no conversation (online, offline).
//!
//! Tenant ids must not contain `:`; customer ids may (the key splits at the first two colons).

use uuid::Uuid;

use crate::model::Channel;

/// The namespace of CAAS's UUIDv5 event ids. Never change it: ids derived from provider ids must
/// stay the same across releases, or redelivered webhooks would stop de-duplicating.
pub const EVENT_ID_NAMESPACE: Uuid = uuid::uuid!("914ba93a-6313-40b7-9204-ecf9ecdb42c1");

/// The key of one conversation: `<tenant_id>:<channel>:<customer_id>`.
pub fn conversation_key(tenant_id: &str, channel: Channel, customer_id: &str) -> String {
    format!("{tenant_id}:{}:{customer_id}", channel.as_str())
}

/// The key of one campaign: `<tenant_id>:campaign:<campaign_id>`.
pub fn campaign_key(tenant_id: &str, campaign_id: &str) -> String {
    format!("{tenant_id}:campaign:{campaign_id}")
}

/// The key of an operator's own presence: `<tenant_id>:operator:<operator_id>`.
pub fn operator_key(tenant_id: &str, operator_id: &str) -> String {
    format!("{tenant_id}:operator:{operator_id}")
}

/// The parts of a conversation key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationKey<'a> {
    /// The tenant.
    pub tenant_id: &'a str,
    /// The channel.
    pub channel: Channel,
    /// The customer's address on the channel.
    pub customer_id: &'a str,
}

/// Splits a conversation key; `None` if it is not `<tenant>:<whatsapp|rcs>:<customer>` with
/// non-empty parts (campaign and operator keys give `None`).
pub fn parse_conversation_key(key: &str) -> Option<ConversationKey<'_>> {
    let mut parts = key.splitn(3, ':');
    let tenant_id = parts.next().filter(|part| !part.is_empty())?;
    let channel = parts.next()?.parse().ok()?;
    let customer_id = parts.next().filter(|part| !part.is_empty())?;
    Some(ConversationKey {
        tenant_id,
        channel,
        customer_id,
    })
}

/// A deterministic event id: the UUIDv5 (in [`EVENT_ID_NAMESPACE`]) of the parts joined by a
/// separator that cannot occur in them ambiguously. Use the provider's ids, e.g.
/// `["whatsapp", "message", wamid]` or `["rcs", "event", event_id, sender]`, so the same webhook
/// delivered twice yields the same id.
pub fn deterministic_event_id(parts: &[&str]) -> String {
    let mut name = Vec::with_capacity(parts.iter().map(|part| part.len() + 9).sum());
    for part in parts {
        // Length-prefixing makes ["a:b", "c"] and ["a", "b:c"] different names.
        name.extend_from_slice(&(part.len() as u64).to_be_bytes());
        name.extend_from_slice(part.as_bytes());
        name.push(0);
    }
    Uuid::new_v5(&EVENT_ID_NAMESPACE, &name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_key_round_trips() {
        let key = conversation_key("acme", Channel::Whatsapp, "4915112345678");
        assert_eq!(key, "acme:whatsapp:4915112345678");
        let parsed = parse_conversation_key(&key).expect("valid key");
        assert_eq!(parsed.tenant_id, "acme");
        assert_eq!(parsed.channel, Channel::Whatsapp);
        assert_eq!(parsed.customer_id, "4915112345678");
    }

    #[test]
    fn campaign_and_operator_keys_are_not_conversation_keys() {
        assert_eq!(parse_conversation_key(&campaign_key("acme", "c1")), None);
        assert_eq!(parse_conversation_key(&operator_key("acme", "op1")), None);
        assert_eq!(parse_conversation_key("acme:rcs:"), None);
    }

    #[test]
    fn event_ids_are_deterministic_and_unambiguous() {
        let first = deterministic_event_id(&["whatsapp", "message", "wamid.1"]);
        assert_eq!(
            first,
            deterministic_event_id(&["whatsapp", "message", "wamid.1"])
        );
        assert_ne!(
            first,
            deterministic_event_id(&["whatsapp", "message", "wamid.2"])
        );
        assert_ne!(
            deterministic_event_id(&["a:b", "c"]),
            deterministic_event_id(&["a", "b:c"])
        );
    }
}
