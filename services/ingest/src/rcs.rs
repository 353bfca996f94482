//! RCS Business Messaging webhooks → events. Pure: bytes in, a [`Request`] / [`Batch`] or a
//! [`ParseError`] out.
//!
//! One endpoint receives two kinds of body:
//! - the set-up handshake `{"clientToken": "...", "secret": "..."}`, answered with the secret
//!   when the client token is ours;
//! - a Pub/Sub push `{"message": {"data": "<base64 JSON>", "messageId", "publishTime",
//!   "attributes"}, "subscription"}`, whose decoded `data` is signed (`X-Goog-Signature`) and is
//!   either a user message or a user event.
//!
//! User messages (`text`, `userFile`, `location`, `suggestionResponse`) become
//! `inbound.messages.v1` events (anything else is kept as `Unsupported` with the raw JSON);
//! `DELIVERED` / `READ` become `inbound.statuses.v1`; `IS_TYPING` becomes `presence.events.v1`;
//! `UNSUBSCRIBE` / `SUBSCRIBE` become `conversation.events.v1` events of kind `opted_out` /
//! `opted_in` (the campaign service records them in its consent ledger); other event types are
//! skipped and counted.

use caas_events::keys::{conversation_key, deterministic_event_id};
use caas_events::model::{
    Channel, Content, ConversationEvent, ConversationEventKind, InboundMessage, InboundStatus,
    InteractiveReply, InteractiveReplyKind, Location, Media, MediaKind, MessageStatus,
    PresenceEvent, PresenceKind, PresenceSubject, Text, Unsupported,
};
use serde::Deserialize;

use crate::error::ParseError;
use crate::events::{Batch, IngestEvent, Skipped, Stamp, SOURCE, UNKNOWN_TENANT};
use crate::signature::decode_base64;
use crate::tenants::Tenants;
use crate::timestamp;

/// What a body posted to the RBM endpoint asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The set-up handshake.
    Handshake {
        /// The token Google claims we configured; must equal ours.
        client_token: String,
        /// What to answer (as plain text) when it does.
        secret: String,
    },
    /// A Pub/Sub push; `data` still has to be authenticated, then read with [`parse_data`].
    Push {
        /// The base64-decoded `message.data`: the bytes the signature covers.
        data: Vec<u8>,
        /// Pub/Sub's id of the push (for logs; not an event id, a redelivery may change it).
        pubsub_message_id: Option<String>,
    },
}

/// Reads the outer body: a handshake or a push envelope (with `data` decoded).
pub fn parse_request(body: &[u8]) -> Result<Request, ParseError> {
    let outer: Outer =
        serde_json::from_slice(body).map_err(|error| ParseError::from_json("body", &error))?;
    if let Some(message) = outer.message {
        let encoded = message
            .data
            .ok_or_else(|| ParseError::shape("message", "the Pub/Sub message has no `data`"))?;
        let data = decode_base64(encoded.trim().as_bytes()).ok_or_else(|| {
            ParseError::shape("message.data", "is not base64 (standard alphabet)")
        })?;
        return Ok(Request::Push {
            data,
            pubsub_message_id: message.message_id,
        });
    }
    match (outer.client_token, outer.secret) {
        (Some(client_token), Some(secret)) => Ok(Request::Handshake {
            client_token,
            secret,
        }),
        _ => Err(ParseError::shape(
            "body",
            "neither a Pub/Sub push (`message.data`) nor the set-up handshake (`clientToken` and `secret`)",
        )),
    }
}

/// Reads the decoded (and authenticated) `message.data` and maps it to an event of its tenant.
pub fn parse_data(data: &[u8], tenants: &Tenants, stamp: &Stamp) -> Result<Batch, ParseError> {
    let path = "message.data";
    let payload: Payload =
        serde_json::from_slice(data).map_err(|error| ParseError::from_json(path, &error))?;
    if payload.sender_phone_number.is_empty() {
        return Err(ParseError::shape(path, "`senderPhoneNumber` is empty"));
    }
    let agent_id = payload
        .agent_id
        .as_deref()
        .filter(|agent_id| !agent_id.is_empty())
        .ok_or_else(|| ParseError::shape(path, "missing field `agentId`"))?;
    let occurred_at = timestamp::rfc3339_to_millis(&payload.send_time)
        .map_err(|reason| ParseError::shape(format!("{path}.sendTime"), reason))?;
    let mut batch = Batch::default();
    let Some(tenant_id) = tenants.by_agent_id(agent_id) else {
        batch.skipped.push(Skipped {
            reason: UNKNOWN_TENANT,
            detail: format!("agentId {agent_id}"),
        });
        return Ok(batch);
    };
    let sender = payload.sender_phone_number.as_str();
    let key = conversation_key(tenant_id, Channel::Rcs, sender);
    if let Some(event_type) = payload.event_type.as_deref() {
        let event_id = payload
            .event_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ParseError::shape(path, "a user event needs an `eventId`"))?;
        let id = deterministic_event_id(&["rcs", "event", event_id, sender]);
        let status = match event_type {
            "DELIVERED" => MessageStatus::Delivered,
            "READ" => MessageStatus::Read,
            "IS_TYPING" => {
                batch.events.push(IngestEvent::Presence(PresenceEvent {
                    event_id: id,
                    tenant_id: tenant_id.to_string(),
                    conversation_key: key,
                    channel: Some(Channel::Rcs),
                    occurred_at,
                    recorded_at: stamp.recorded_at,
                    source: SOURCE.to_string(),
                    trace_parent: stamp.trace_parent.clone(),
                    kind: PresenceKind::Typing,
                    subject: PresenceSubject::Customer,
                    subject_id: sender.to_string(),
                    provider_message_id: None,
                    // RBM never says when typing stops; the presence service applies its TTL.
                    expires_at: None,
                }));
                return Ok(batch);
            }
            "UNSUBSCRIBE" | "SUBSCRIBE" => {
                let kind = if event_type == "UNSUBSCRIBE" {
                    ConversationEventKind::OptedOut
                } else {
                    ConversationEventKind::OptedIn
                };
                batch
                    .events
                    .push(IngestEvent::Conversation(ConversationEvent {
                        event_id: id,
                        tenant_id: tenant_id.to_string(),
                        conversation_key: key,
                        channel: Channel::Rcs,
                        occurred_at,
                        recorded_at: stamp.recorded_at,
                        source: SOURCE.to_string(),
                        trace_parent: stamp.trace_parent.clone(),
                        kind,
                        actor_operator_id: None,
                        assignee_operator_id: None,
                        previous_assignee_operator_id: None,
                        reason: Some(format!("RBM {event_type} user event")),
                    }));
                return Ok(batch);
            }
            other => {
                batch.skipped.push(Skipped {
                    reason: "unknown_event_type",
                    detail: format!("eventType {other}"),
                });
                return Ok(batch);
            }
        };
        let message_id = payload
            .message_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                ParseError::shape(
                    path,
                    format!("a {event_type} event needs the `messageId` it is about"),
                )
            })?;
        batch.events.push(IngestEvent::Status(InboundStatus {
            event_id: id,
            tenant_id: tenant_id.to_string(),
            conversation_key: key,
            channel: Channel::Rcs,
            occurred_at,
            recorded_at: stamp.recorded_at,
            source: SOURCE.to_string(),
            trace_parent: stamp.trace_parent.clone(),
            provider_message_id: message_id,
            status,
            recipient_id: sender.to_string(),
            business_id: Some(agent_id.to_string()),
            errors: Vec::new(),
            conversation: None,
            pricing: None,
            biz_opaque_callback_data: None,
        }));
        return Ok(batch);
    }
    let message_id = payload
        .message_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            ParseError::shape(
                path,
                "neither a user message (`messageId`) nor a user event (`eventType`)",
            )
        })?;
    let content = content_of(&payload, data);
    batch.events.push(IngestEvent::Message(InboundMessage {
        event_id: deterministic_event_id(&["rcs", "message", message_id, sender]),
        tenant_id: tenant_id.to_string(),
        conversation_key: key,
        channel: Channel::Rcs,
        occurred_at,
        recorded_at: stamp.recorded_at,
        source: SOURCE.to_string(),
        trace_parent: stamp.trace_parent.clone(),
        provider_message_id: message_id.to_string(),
        customer_id: sender.to_string(),
        customer_display_name: None,
        business_id: Some(agent_id.to_string()),
        reply_to: None,
        content,
    }));
    Ok(batch)
}

fn content_of(payload: &Payload, data: &[u8]) -> Content {
    let unsupported = |provider_type: &str, reason: String| {
        Content::Unsupported(Unsupported {
            provider_type: provider_type.to_string(),
            raw_json: String::from_utf8_lossy(data).into_owned(),
            reason: Some(reason),
        })
    };
    if let Some(suggestion) = &payload.suggestion_response {
        return match serde_json::from_value::<SuggestionResponse>(suggestion.clone()) {
            Ok(response) => Content::InteractiveReply(InteractiveReply {
                kind: InteractiveReplyKind::Suggestion,
                title: response.text.clone().unwrap_or_default(),
                id: response.postback_data.or(response.text).unwrap_or_default(),
                description: None,
            }),
            Err(error) => unsupported(
                "suggestionResponse",
                format!("`suggestionResponse` is not of the documented shape: {error}"),
            ),
        };
    }
    if let Some(file) = &payload.user_file {
        return match serde_json::from_value::<UserFile>(file.clone()) {
            Ok(file) => {
                let info = file.payload.unwrap_or_default();
                let kind = media_kind(file.category.as_deref(), info.mime_type.as_deref());
                Content::Media(Media {
                    kind,
                    id: None,
                    link: info.file_uri,
                    mime_type: info.mime_type,
                    caption: None,
                    filename: info.file_name,
                    sha256: None,
                    voice: false,
                    size_bytes: info.file_size_bytes.and_then(|size| size.as_i64()),
                })
            }
            Err(error) => unsupported(
                "userFile",
                format!("`userFile` is not of the documented shape: {error}"),
            ),
        };
    }
    if let Some(location) = &payload.location {
        return match serde_json::from_value::<RcsLocation>(location.clone()) {
            Ok(location) => Content::Location(Location {
                latitude: location.latitude,
                longitude: location.longitude,
                name: None,
                address: None,
            }),
            Err(error) => unsupported(
                "location",
                format!("`location` is not of the documented shape: {error}"),
            ),
        };
    }
    if let Some(text) = &payload.text {
        return Content::Text(Text {
            body: text.clone(),
            preview_url: false,
        });
    }
    unsupported(
        "unknown",
        "a user message without text, userFile, location or suggestionResponse; the raw JSON is kept"
            .to_string(),
    )
}

/// The media kind from the file category, else from the MIME type, else a document.
fn media_kind(category: Option<&str>, mime_type: Option<&str>) -> MediaKind {
    let from_category = match category.map(str::to_ascii_uppercase).as_deref() {
        Some("IMAGE") => Some(MediaKind::Image),
        Some("VIDEO") => Some(MediaKind::Video),
        Some("AUDIO") => Some(MediaKind::Audio),
        Some("STICKER") => Some(MediaKind::Sticker),
        _ => None,
    };
    from_category.unwrap_or_else(|| match mime_type.and_then(|mime| mime.split('/').next()) {
        Some("image") => MediaKind::Image,
        Some("video") => MediaKind::Video,
        Some("audio") => MediaKind::Audio,
        _ => MediaKind::Document,
    })
}

// ---------------------------------------------------------------- the provider's shapes ------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Outer {
    client_token: Option<String>,
    secret: Option<String>,
    message: Option<PushMessage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushMessage {
    data: Option<String>,
    message_id: Option<String>,
}

/// The decoded data: a user message or a user event. The content parts stay JSON values so a
/// part of an unexpected shape is kept as unsupported instead of refusing the message.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    sender_phone_number: String,
    agent_id: Option<String>,
    message_id: Option<String>,
    event_id: Option<String>,
    event_type: Option<String>,
    send_time: String,
    text: Option<String>,
    user_file: Option<serde_json::Value>,
    location: Option<serde_json::Value>,
    suggestion_response: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SuggestionResponse {
    postback_data: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserFile {
    category: Option<String>,
    payload: Option<UserFileInfo>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UserFileInfo {
    mime_type: Option<String>,
    /// int64 in the API; JSON mappings of protobuf send it as a string or a number.
    file_size_bytes: Option<FileSize>,
    file_name: Option<String>,
    file_uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FileSize {
    Number(i64),
    Text(String),
}

impl FileSize {
    fn as_i64(&self) -> Option<i64> {
        match self {
            FileSize::Number(size) => Some(*size),
            FileSize::Text(text) => text.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct RcsLocation {
    latitude: f64,
    longitude: f64,
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use caas_events::model::PresenceSubject;
    use proptest::prelude::*;

    use super::*;
    use crate::tenants::DEFAULT_TENANTS;

    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const SENDER: &str = "+4915112345678";

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    fn stamp() -> Stamp {
        Stamp {
            recorded_at: 1_739_321_100_000,
            trace_parent: Some(TRACE.to_string()),
        }
    }

    fn parse_fixture(name: &str) -> Batch {
        let tenants = Tenants::parse(DEFAULT_TENANTS).unwrap();
        parse_data(&fixture(name), &tenants, &stamp())
            .unwrap_or_else(|error| panic!("{name}: {error}"))
    }

    fn only_event(name: &str) -> IngestEvent {
        let mut batch = parse_fixture(name);
        assert_eq!(batch.events.len(), 1, "{name}: {batch:?}");
        batch.events.remove(0)
    }

    fn only_message(name: &str) -> InboundMessage {
        match only_event(name) {
            IngestEvent::Message(message) => message,
            other => panic!("{name}: {other:?}"),
        }
    }

    /// The push envelope Google sends around `data`.
    pub(crate) fn envelope(data: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "message": {
                "attributes": {"product": "RBM", "message_type": "USER_MESSAGE"},
                "data": base64::engine::general_purpose::STANDARD.encode(data),
                "messageId": "13857373627490154",
                "publishTime": "2025-02-12T00:43:44.333Z"
            },
            "subscription": "projects/rbm-demo-agent/subscriptions/rbm-demo-agent-sub"
        }))
        .unwrap()
    }

    #[test]
    fn the_handshake_and_the_push_are_told_apart() {
        assert_eq!(
            parse_request(br#"{"clientToken":"token","secret":"s3cr3t"}"#).unwrap(),
            Request::Handshake {
                client_token: "token".into(),
                secret: "s3cr3t".into()
            }
        );
        let data = fixture("rcs_text");
        assert_eq!(
            parse_request(&envelope(&data)).unwrap(),
            Request::Push {
                data,
                pubsub_message_id: Some("13857373627490154".into())
            }
        );
    }

    #[test]
    fn envelope_problems_say_what_is_wrong() {
        for (body, expected) in [
            (&b"not json"[..], "not valid JSON"),
            (br#"{"clientToken":"only"}"#, "neither a Pub/Sub push"),
            (br#"{"message":{}}"#, "no `data`"),
            (br#"{"message":{"data":"***"}}"#, "not base64"),
            (br#"{"message":{"data":42}}"#, "invalid type"),
        ] {
            let error = parse_request(body).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn a_text_message_becomes_a_complete_inbound_message() {
        assert_eq!(
            only_message("rcs_text"),
            InboundMessage {
                event_id: deterministic_event_id(&[
                    "rcs",
                    "message",
                    "MxFIXTURE01-a1b2c3d4e5f6",
                    SENDER
                ]),
                tenant_id: "demo".into(),
                conversation_key: "demo:rcs:+4915112345678".into(),
                channel: Channel::Rcs,
                occurred_at: 1_739_321_024_123,
                recorded_at: 1_739_321_100_000,
                source: "ingest".into(),
                trace_parent: Some(TRACE.into()),
                provider_message_id: "MxFIXTURE01-a1b2c3d4e5f6".into(),
                customer_id: SENDER.into(),
                customer_display_name: None,
                business_id: Some("demo-agent".into()),
                reply_to: None,
                content: Content::Text(Text {
                    body: "Hallo, ist mein Paket unterwegs?".into(),
                    preview_url: false
                }),
            }
        );
    }

    #[test]
    fn a_user_file_becomes_media_with_its_link() {
        assert_eq!(
            only_message("rcs_user_file").content,
            Content::Media(Media {
                kind: MediaKind::Image,
                id: None,
                link: Some("https://rcs-user-content.storage.googleapis.com/7d1c9e".into()),
                mime_type: Some("image/jpeg".into()),
                caption: None,
                filename: Some("IMG_0042.jpg".into()),
                sha256: None,
                voice: false,
                size_bytes: Some(382_910),
            })
        );
        assert_eq!(media_kind(None, Some("video/mp4")), MediaKind::Video);
        assert_eq!(
            media_kind(None, Some("application/pdf")),
            MediaKind::Document
        );
        assert_eq!(media_kind(Some("audio"), None), MediaKind::Audio);
    }

    #[test]
    fn a_location_and_a_suggestion_response() {
        assert_eq!(
            only_message("rcs_location").content,
            Content::Location(Location {
                latitude: 52.520008,
                longitude: 13.404954,
                name: None,
                address: None
            })
        );
        assert_eq!(
            only_message("rcs_suggestion_response").content,
            Content::InteractiveReply(InteractiveReply {
                kind: InteractiveReplyKind::Suggestion,
                id: "track_parcel".into(),
                title: "Sendung verfolgen".into(),
                description: None,
            })
        );
    }

    #[test]
    fn delivered_and_read_become_statuses_of_the_message_they_are_about() {
        for (name, event_id, status) in [
            (
                "rcs_event_delivered",
                "MxFIXTURE05-evt-delivered",
                MessageStatus::Delivered,
            ),
            (
                "rcs_event_read",
                "MxFIXTURE06-evt-read",
                MessageStatus::Read,
            ),
        ] {
            let IngestEvent::Status(event) = only_event(name) else {
                panic!("{name}");
            };
            assert_eq!(event.status, status);
            assert_eq!(
                event.event_id,
                deterministic_event_id(&["rcs", "event", event_id, SENDER])
            );
            assert_eq!(
                event.provider_message_id,
                "4f1b2c1e-8a0e-4d7b-9f6e-2c3b1a0d9e8f"
            );
            assert_eq!(event.conversation_key, "demo:rcs:+4915112345678");
            assert_eq!(event.recipient_id, SENDER);
            assert_eq!(event.channel, Channel::Rcs);
            assert!(event.errors.is_empty());
        }
    }

    #[test]
    fn typing_becomes_a_presence_event() {
        let IngestEvent::Presence(presence) = only_event("rcs_event_is_typing") else {
            panic!("not presence");
        };
        assert_eq!(presence.kind, PresenceKind::Typing);
        assert_eq!(presence.subject, PresenceSubject::Customer);
        assert_eq!(presence.subject_id, SENDER);
        assert_eq!(presence.channel, Some(Channel::Rcs));
        assert_eq!(presence.conversation_key, "demo:rcs:+4915112345678");
        assert_eq!(presence.occurred_at, 1_739_321_280_000);
    }

    #[test]
    fn unsubscribe_and_subscribe_become_consent_changes() {
        for (name, event_id, kind, reason) in [
            (
                "rcs_event_unsubscribe",
                "MxFIXTURE08-evt-unsub",
                ConversationEventKind::OptedOut,
                "RBM UNSUBSCRIBE user event",
            ),
            (
                "rcs_event_subscribe",
                "MxFIXTURE09-evt-sub",
                ConversationEventKind::OptedIn,
                "RBM SUBSCRIBE user event",
            ),
        ] {
            let IngestEvent::Conversation(event) = only_event(name) else {
                panic!("{name}: not a conversation event");
            };
            assert_eq!(
                event,
                ConversationEvent {
                    event_id: deterministic_event_id(&["rcs", "event", event_id, SENDER]),
                    tenant_id: "demo".into(),
                    conversation_key: "demo:rcs:+4915112345678".into(),
                    channel: Channel::Rcs,
                    occurred_at: event.occurred_at,
                    recorded_at: 1_739_321_100_000,
                    source: "ingest".into(),
                    trace_parent: Some(TRACE.into()),
                    kind,
                    actor_operator_id: None,
                    assignee_operator_id: None,
                    previous_assignee_operator_id: None,
                    reason: Some(reason.into()),
                },
                "{name}"
            );
        }
        let IngestEvent::Conversation(unsubscribe) = only_event("rcs_event_unsubscribe") else {
            panic!("not a conversation event");
        };
        assert_eq!(unsubscribe.occurred_at, 1_739_321_340_000);
        assert_eq!(only_event("rcs_event_unsubscribe").kind(), "opted_out");
        assert_eq!(
            only_event("rcs_event_subscribe").topic(),
            "conversation.events.v1"
        );
    }

    #[test]
    fn other_event_types_and_unknown_agents_are_skipped() {
        let data = br#"{"senderPhoneNumber":"+1","eventType":"SOMETHING_NEW","eventId":"e","sendTime":"2025-01-01T00:00:00Z","agentId":"demo-agent"}"#;
        let other = parse_data(data, &Tenants::parse(DEFAULT_TENANTS).unwrap(), &stamp()).unwrap();
        assert!(other.events.is_empty());
        assert_eq!(other.skipped[0].reason, "unknown_event_type");
        let unknown = parse_fixture("rcs_unknown_agent");
        assert!(unknown.events.is_empty());
        assert_eq!(unknown.unknown_tenants(), 1);
    }

    #[test]
    fn a_user_message_without_known_content_is_kept_verbatim() {
        let data = br#"{"senderPhoneNumber":"+1","messageId":"m","sendTime":"2025-01-01T00:00:00Z","agentId":"demo-agent","richCardResponse":{"x":1}}"#;
        let batch = parse_data(data, &Tenants::parse(DEFAULT_TENANTS).unwrap(), &stamp()).unwrap();
        let [IngestEvent::Message(message)] = batch.events.as_slice() else {
            panic!("{batch:?}");
        };
        let Content::Unsupported(kept) = &message.content else {
            panic!("{message:?}");
        };
        assert_eq!(kept.raw_json.as_bytes(), data);
    }

    #[test]
    fn data_problems_say_what_is_wrong() {
        let tenants = Tenants::parse(DEFAULT_TENANTS).unwrap();
        for (data, expected) in [
            (&b"{"[..], "not valid JSON"),
            (br#"{"messageId":"m"}"#, "missing field `senderPhoneNumber`"),
            (br#"{"senderPhoneNumber":"+1","messageId":"m","sendTime":"2025-01-01T00:00:00Z","text":"x"}"#, "agentId"),
            (br#"{"senderPhoneNumber":"+1","messageId":"m","sendTime":"yesterday","agentId":"demo-agent","text":"x"}"#, "sendTime"),
            (br#"{"senderPhoneNumber":"+1","sendTime":"2025-01-01T00:00:00Z","agentId":"demo-agent"}"#, "neither a user message"),
            (br#"{"senderPhoneNumber":"+1","eventType":"READ","sendTime":"2025-01-01T00:00:00Z","agentId":"demo-agent"}"#, "eventId"),
            (br#"{"senderPhoneNumber":"+1","eventType":"READ","eventId":"e","sendTime":"2025-01-01T00:00:00Z","agentId":"demo-agent"}"#, "messageId"),
        ] {
            let error = parse_data(data, &tenants, &stamp()).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let tenants = Tenants::parse(DEFAULT_TENANTS).unwrap();
            let _ = parse_request(&bytes);
            let _ = parse_data(&bytes, &tenants, &stamp());
        }

        #[test]
        fn never_panics_on_arbitrary_fields(
            sender in ".{0,12}",
            send_time in prop_oneof![Just("2025-02-12T00:43:44.123Z".to_string()), ".{0,30}".prop_map(|s| s)],
            event_type in prop::option::of(prop::sample::select(vec!["DELIVERED", "READ", "IS_TYPING", "UNSUBSCRIBE", "SUBSCRIBE", "X"])),
            ids in (prop::option::of(".{0,8}"), prop::option::of(".{0,8}")),
            content in prop::option::of(prop::sample::select(vec![
                r#""text":"hi""#,
                r#""userFile":{"payload":{"fileSizeBytes":"x"}}"#,
                r#""location":{"latitude":"north"}"#,
                r#""suggestionResponse":[]"#,
            ])),
        ) {
            let mut fields = vec![
                format!("\"senderPhoneNumber\":{}", serde_json::to_string(&sender).unwrap()),
                format!("\"sendTime\":{}", serde_json::to_string(&send_time).unwrap()),
                "\"agentId\":\"demo-agent\"".to_string(),
            ];
            if let Some(event_type) = event_type {
                fields.push(format!("\"eventType\":\"{event_type}\""));
            }
            if let Some(id) = ids.0 {
                fields.push(format!("\"messageId\":{}", serde_json::to_string(&id).unwrap()));
            }
            if let Some(id) = ids.1 {
                fields.push(format!("\"eventId\":{}", serde_json::to_string(&id).unwrap()));
            }
            if let Some(content) = content {
                fields.push(content.to_string());
            }
            let data = format!("{{{}}}", fields.join(","));
            let tenants = Tenants::parse(DEFAULT_TENANTS).unwrap();
            let _ = parse_data(data.as_bytes(), &tenants, &stamp());
            let _ = parse_request(&envelope(data.as_bytes()));
        }
    }
}
