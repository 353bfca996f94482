//! The documented contracts match the code: every socket.io event is in `EVENTS.md`, every
//! REST route in `openapi.yaml` (which must parse), and the dashboard bundle is embedded.

use caas_gateway::domain::fanout::ServerEvent;
use caas_gateway::realtime::CLIENT_EVENTS;

const EVENTS_MD: &str = include_str!("../EVENTS.md");

#[test]
fn every_socket_event_is_documented() {
    for event in CLIENT_EVENTS {
        assert!(
            EVENTS_MD.contains(&format!("`{event}`")),
            "EVENTS.md does not document the client event {event}"
        );
    }
    for event in [
        ServerEvent::MessageNew,
        ServerEvent::MessageStatus,
        ServerEvent::ConversationUpdated,
        ServerEvent::PresenceUpdated,
        ServerEvent::Typing,
        ServerEvent::CampaignProgress,
    ] {
        assert!(
            EVENTS_MD.contains(&format!("### `{}`", event.name())),
            "EVENTS.md has no section for the server event {}",
            event.name()
        );
    }
    for extra in [
        "session",
        "session.expired",
        caas_gateway::explorer::TAIL_EVENT,
    ] {
        assert!(EVENTS_MD.contains(&format!("### `{extra}`")), "{extra}");
    }
}

#[test]
fn the_openapi_document_parses_and_lists_every_route() {
    let document: serde_yaml::Value =
        serde_yaml::from_str(caas_gateway::http::OPENAPI).expect("openapi.yaml is YAML");
    assert_eq!(document["openapi"].as_str(), Some("3.1.0"));
    let paths = document["paths"].as_mapping().expect("paths");
    for route in [
        "/api/v1/me",
        "/api/v1/conversations",
        "/api/v1/conversations/{key}",
        "/api/v1/conversations/{key}/messages",
        "/api/v1/customers/{customer}/export",
        "/api/v1/customers/{customer}",
        "/api/v1/audiences",
        "/api/v1/audiences/{audience_id}",
        "/api/v1/audiences/{audience_id}/errors",
        "/api/v1/campaigns",
        "/api/v1/campaigns/{campaign_id}",
        "/api/v1/campaigns/{campaign_id}/pause",
        "/api/v1/campaigns/{campaign_id}/resume",
        "/api/v1/campaigns/{campaign_id}/cancel",
        "/api/v1/campaigns/{campaign_id}/recipients",
        "/api/v1/consents/{channel}/{customer_id}",
        "/api/v1/events",
        "/api/v1/events/{id}",
        "/openapi.yaml",
    ] {
        assert!(
            paths.contains_key(serde_yaml::Value::String(route.to_string())),
            "openapi.yaml lacks {route}"
        );
    }
    // Every $ref points at a defined component.
    let text = caas_gateway::http::OPENAPI;
    for reference in text.split("$ref: \"#/components/").skip(1) {
        let path = reference.split('"').next().unwrap();
        let mut node = &document["components"];
        for part in path.split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "dangling $ref #/components/{path}");
    }
}
