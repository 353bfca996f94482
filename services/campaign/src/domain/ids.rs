//! Deterministic ids: the same input always yields the same id, so a retry, a redelivery or a
//! restart re-produces the very same command or event, which consumers de-duplicate.

use caas_events::keys::deterministic_event_id;
use caas_events::model::Channel;

/// The send command id of one recipient of one campaign; also the recipient's `_id` and the
/// `event_id` of its command.
pub fn command_id(tenant_id: &str, campaign_id: &str, channel: Channel, to: &str) -> String {
    deterministic_event_id(&["campaign", tenant_id, campaign_id, channel.as_str(), to])
}

/// The `_id` of an audience row that could not become a recipient.
pub fn invalid_row_id(tenant_id: &str, campaign_id: &str, line: u64) -> String {
    deterministic_event_id(&[
        "campaign-invalid",
        tenant_id,
        campaign_id,
        &line.to_string(),
    ])
}

/// The id of a campaign event caused by a command (`created`, `paused`, `rejected`, ...).
pub fn command_event_id(command_id: &str, kind: &str) -> String {
    deterministic_event_id(&["campaign-event", command_id, kind])
}

/// The id of a once-per-campaign event (`started`, `completed`).
pub fn lifecycle_event_id(campaign_key: &str, kind: &str) -> String {
    deterministic_event_id(&["campaign-lifecycle", campaign_key, kind])
}

/// The id of the confirmation sent for a consent change caused by inbound event `event_id`.
pub fn confirmation_command_id(event_id: &str) -> String {
    deterministic_event_id(&["consent-confirmation", event_id])
}

/// The id of the `opted_out` / `opted_in` conversation event for inbound event `event_id`.
pub fn consent_event_id(event_id: &str) -> String {
    deterministic_event_id(&["consent-change", event_id])
}

/// The callback data of a campaign send; comes back on WhatsApp statuses.
pub fn callback_data(campaign_id: &str, command_id: &str) -> String {
    format!("{CALLBACK_PREFIX}{campaign_id}:{command_id}")
}

/// What every campaign callback data starts with.
pub const CALLBACK_PREFIX: &str = "caas-campaign:";

/// The campaign id and command id in a callback data of ours.
pub fn parse_callback_data(data: &str) -> Option<(&str, &str)> {
    let rest = data.strip_prefix(CALLBACK_PREFIX)?;
    let (campaign_id, command_id) = rest.rsplit_once(':')?;
    (!campaign_id.is_empty() && !command_id.is_empty()).then_some((campaign_id, command_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let id = command_id("acme", "c1", Channel::Whatsapp, "4915112345678");
        assert_eq!(
            id,
            command_id("acme", "c1", Channel::Whatsapp, "4915112345678")
        );
        assert_ne!(
            id,
            command_id("acme", "c2", Channel::Whatsapp, "4915112345678")
        );
        assert_ne!(id, command_id("acme", "c1", Channel::Rcs, "4915112345678"));
        assert_ne!(
            command_event_id("x", "paused"),
            command_event_id("x", "resumed")
        );
    }

    #[test]
    fn callback_data_round_trips() {
        let data = callback_data("black-friday", "0b7c");
        assert_eq!(parse_callback_data(&data), Some(("black-friday", "0b7c")));
        assert_eq!(parse_callback_data("something else"), None);
        assert_eq!(parse_callback_data("caas-campaign:nocolon"), None);
    }
}
