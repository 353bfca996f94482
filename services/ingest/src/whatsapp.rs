//! WhatsApp Cloud API webhooks → events. Pure: bytes in, a [`Batch`] or a [`ParseError`] out.
//!
//! Every `entry[]`, every `changes[]`, every `messages[]` and `statuses[]` is read; `contacts[]`
//! gives the customer's profile name. Changes of another `field` than `messages` (template
//! status updates, account updates, ...) are skipped, as are changes for a `phone_number_id`
//! that maps to no tenant.
//!
//! Strictness is split on purpose:
//! - the envelope and the identity of each message and status (`from`, `id`, `timestamp`,
//!   `type`; `id`, `status`, `timestamp`, `recipient_id`) must be as Meta documents them, or the
//!   whole request is refused with 400 and nothing is produced;
//! - the type-specific part of a message is read leniently: a known type whose part does not
//!   match what we model, and any type we don't know, becomes `Unsupported` with the message's
//!   JSON kept verbatim and the reason, so nothing a customer sent is ever dropped.

use std::collections::HashMap;

use caas_events::keys::{conversation_key, deterministic_event_id};
use caas_events::model::{
    Channel, ContactCard, ContactEmail, ContactPhone, Contacts, Content, InboundMessage,
    InboundStatus, InteractiveReply, InteractiveReplyKind, Location, Media, MediaKind,
    MessageStatus, Pricing, ProviderConversation, ProviderError, Reaction, ReplyContext, Text,
    Unsupported,
};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ParseError;
use crate::events::{Batch, IngestEvent, Skipped, Stamp, SOURCE, UNKNOWN_TENANT};
use crate::tenants::Tenants;
use crate::timestamp;

/// The `object` of every WhatsApp Business webhook.
pub const OBJECT: &str = "whatsapp_business_account";

/// Parses a webhook body (the exact bytes received, already authenticated) and maps every
/// message and status to an event of its tenant.
pub fn parse(body: &[u8], tenants: &Tenants, stamp: &Stamp) -> Result<Batch, ParseError> {
    let notification: Notification<'_> =
        serde_json::from_slice(body).map_err(|error| ParseError::from_json("body", &error))?;
    if notification.object != OBJECT {
        return Err(ParseError::shape(
            "object",
            format!(
                "is {:?}; this endpoint takes WhatsApp Business webhooks ({OBJECT:?})",
                notification.object
            ),
        ));
    }
    let mut batch = Batch::default();
    for (entry_index, entry) in notification.entry.iter().enumerate() {
        for (change_index, change) in entry.changes.iter().enumerate() {
            let path = format!("entry[{entry_index}].changes[{change_index}].value");
            if change.field != "messages" {
                batch.skipped.push(Skipped {
                    reason: "other_field",
                    detail: format!("{path}: field {:?}", change.field),
                });
                continue;
            }
            map_change(change.value, &path, tenants, stamp, &mut batch)?;
        }
    }
    Ok(batch)
}

fn map_change(
    raw_value: &RawValue,
    path: &str,
    tenants: &Tenants,
    stamp: &Stamp,
    batch: &mut Batch,
) -> Result<(), ParseError> {
    let value: MessagesValue<'_> = serde_json::from_str(raw_value.get())
        .map_err(|error| ParseError::from_json(path, &error))?;
    let phone_number_id = value.metadata.phone_number_id.as_str();
    let Some(tenant_id) = tenants.by_phone_number_id(phone_number_id) else {
        batch.skipped.push(Skipped {
            reason: UNKNOWN_TENANT,
            detail: format!("phone_number_id {phone_number_id}"),
        });
        return Ok(());
    };
    let names: HashMap<&str, &str> = value
        .contacts
        .iter()
        .filter_map(|contact| {
            let name = contact.profile.as_ref()?.name.as_deref()?;
            Some((contact.wa_id.as_deref().unwrap_or_default(), name))
        })
        .collect();
    for (index, raw) in value.messages.iter().enumerate() {
        let message_path = format!("{path}.messages[{index}]");
        let message = map_message(
            raw,
            &message_path,
            tenant_id,
            phone_number_id,
            &names,
            stamp,
        )?;
        batch.events.push(IngestEvent::Message(message));
    }
    for (index, raw) in value.statuses.iter().enumerate() {
        let status_path = format!("{path}.statuses[{index}]");
        match map_status(raw, &status_path, tenant_id, phone_number_id, stamp)? {
            Some(status) => batch.events.push(IngestEvent::Status(status)),
            None => batch.skipped.push(Skipped {
                reason: "unknown_status",
                detail: status_path,
            }),
        }
    }
    Ok(())
}

fn map_message(
    raw: &RawValue,
    path: &str,
    tenant_id: &str,
    phone_number_id: &str,
    names: &HashMap<&str, &str>,
    stamp: &Stamp,
) -> Result<InboundMessage, ParseError> {
    let head: MessageHead =
        serde_json::from_str(raw.get()).map_err(|error| ParseError::from_json(path, &error))?;
    if head.id.is_empty() || head.from.is_empty() {
        return Err(ParseError::shape(path, "`id` and `from` must not be empty"));
    }
    let occurred_at = timestamp::unix_seconds_to_millis(head.timestamp.0)
        .map_err(|reason| ParseError::shape(format!("{path}.timestamp"), reason))?;
    let display_name = names
        .get(head.from.as_str())
        .or_else(|| (names.len() == 1).then(|| names.values().next()).flatten())
        .map(|name| name.to_string());
    let reply_to = head.context.and_then(|context| {
        context.id.map(|id| ReplyContext {
            provider_message_id: id,
            from: context.from,
        })
    });
    Ok(InboundMessage {
        event_id: deterministic_event_id(&["whatsapp", "message", &head.id]),
        tenant_id: tenant_id.to_string(),
        conversation_key: conversation_key(tenant_id, Channel::Whatsapp, &head.from),
        channel: Channel::Whatsapp,
        occurred_at,
        recorded_at: stamp.recorded_at,
        source: SOURCE.to_string(),
        trace_parent: stamp.trace_parent.clone(),
        content: content_of(&head.kind, raw),
        provider_message_id: head.id,
        customer_id: head.from,
        customer_display_name: display_name,
        business_id: Some(phone_number_id.to_string()),
        reply_to,
    })
}

/// The content of a message of type `kind`; never fails (see the module docs).
fn content_of(kind: &str, raw: &RawValue) -> Content {
    let unsupported = |reason: String| {
        Content::Unsupported(Unsupported {
            provider_type: kind.to_string(),
            raw_json: raw.get().to_string(),
            reason: Some(reason),
        })
    };
    let parts = match serde_json::from_str(raw.get()) {
        Ok(fields) => Parts { fields },
        Err(error) => {
            return unsupported(format!(
                "the {kind} message is not of the documented shape: {error}"
            ))
        }
    };
    // The part named after the type, parsed into `T`; a mismatch keeps the message unsupported.
    fn part<T: for<'de> Deserialize<'de>>(parts: &Parts, kind: &str) -> Result<T, String> {
        let raw = parts
            .fields
            .get(kind)
            .ok_or_else(|| format!("the {kind} message has no `{kind}` object"))?;
        serde_json::from_str(raw.get())
            .map_err(|error| format!("the `{kind}` object is not of the documented shape: {error}"))
    }
    let mapped = match kind {
        "text" => part::<WaText>(&parts, kind).map(|text| {
            Content::Text(Text {
                body: text.body,
                preview_url: false,
            })
        }),
        "image" | "audio" | "video" | "document" | "sticker" => {
            let media_kind = match kind {
                "image" => MediaKind::Image,
                "audio" => MediaKind::Audio,
                "video" => MediaKind::Video,
                "document" => MediaKind::Document,
                _ => MediaKind::Sticker,
            };
            part::<WaMedia>(&parts, kind).map(|media| {
                Content::Media(Media {
                    kind: media_kind,
                    id: media.id,
                    link: None,
                    mime_type: media.mime_type,
                    caption: media.caption,
                    filename: media.filename,
                    sha256: media.sha256,
                    voice: media.voice.unwrap_or(false),
                    size_bytes: None,
                })
            })
        }
        "location" => part::<WaLocation>(&parts, kind).map(|location| {
            Content::Location(Location {
                latitude: location.latitude,
                longitude: location.longitude,
                name: location.name,
                address: location.address,
            })
        }),
        "contacts" => part::<Vec<WaContactCard>>(&parts, kind).map(|cards| {
            Content::Contacts(Contacts {
                cards: cards.into_iter().map(contact_card).collect(),
            })
        }),
        "interactive" => part::<WaInteractive>(&parts, kind).and_then(interactive_reply),
        "button" => part::<WaButton>(&parts, kind).and_then(|button| {
            let title = button.text.unwrap_or_default();
            let id = button.payload.unwrap_or_else(|| title.clone());
            if id.is_empty() {
                return Err("the `button` object has neither `payload` nor `text`".to_string());
            }
            Ok(Content::InteractiveReply(InteractiveReply {
                kind: InteractiveReplyKind::Button,
                id,
                title,
                description: None,
            }))
        }),
        "reaction" => part::<WaReaction>(&parts, kind).map(|reaction| {
            Content::Reaction(Reaction {
                message_id: reaction.message_id,
                emoji: reaction.emoji.filter(|emoji| !emoji.is_empty()),
            })
        }),
        "order" => Err("order messages are not modelled; the raw JSON is kept".to_string()),
        "system" => {
            let detail = part::<WaSystem>(&parts, kind)
                .map(|system| {
                    format!(
                        "system message {}: {}",
                        system.kind.unwrap_or_default(),
                        system.body.unwrap_or_default()
                    )
                })
                .unwrap_or_else(|error| error);
            Err(detail)
        }
        "unsupported" => Err(match parts.first_error_title() {
            Some(title) => format!("WhatsApp could not deliver this message type: {title}"),
            None => "WhatsApp could not deliver this message type".to_string(),
        }),
        other => Err(format!(
            "unknown WhatsApp message type {other:?}; the raw JSON is kept"
        )),
    };
    mapped.unwrap_or_else(unsupported)
}

fn interactive_reply(interactive: WaInteractive) -> Result<Content, String> {
    let reply = match interactive.kind.as_str() {
        "button_reply" => interactive.button_reply.map(|reply| InteractiveReply {
            kind: InteractiveReplyKind::Button,
            id: reply.id,
            title: reply.title,
            description: None,
        }),
        "list_reply" => interactive.list_reply.map(|reply| InteractiveReply {
            kind: InteractiveReplyKind::List,
            id: reply.id,
            title: reply.title,
            description: reply.description,
        }),
        other => {
            return Err(format!(
                "interactive replies of type {other:?} are not modelled; the raw JSON is kept"
            ))
        }
    };
    reply.map(Content::InteractiveReply).ok_or_else(|| {
        format!(
            "the interactive {} has no `{}` object",
            interactive.kind, interactive.kind
        )
    })
}

fn contact_card(card: WaContactCard) -> ContactCard {
    let name = card.name.unwrap_or_default();
    let formatted_name = name.formatted_name.unwrap_or_else(|| {
        [name.first_name.as_deref(), name.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    });
    ContactCard {
        formatted_name,
        given_name: name.first_name,
        family_name: name.last_name,
        organization: card.org.and_then(|org| org.company),
        phones: card
            .phones
            .into_iter()
            .filter_map(|phone| {
                Some(ContactPhone {
                    number: phone.phone.or_else(|| phone.wa_id.clone())?,
                    wa_id: phone.wa_id,
                    label: phone.kind,
                })
            })
            .collect(),
        emails: card
            .emails
            .into_iter()
            .filter_map(|email| {
                Some(ContactEmail {
                    address: email.email?,
                    label: email.kind,
                })
            })
            .collect(),
    }
}

/// A status, or `None` for a status value we do not carry (Meta adds some over time).
fn map_status(
    raw: &RawValue,
    path: &str,
    tenant_id: &str,
    phone_number_id: &str,
    stamp: &Stamp,
) -> Result<Option<InboundStatus>, ParseError> {
    let status: WaStatus =
        serde_json::from_str(raw.get()).map_err(|error| ParseError::from_json(path, &error))?;
    if status.id.is_empty() || status.recipient_id.is_empty() {
        return Err(ParseError::shape(
            path,
            "`id` and `recipient_id` must not be empty",
        ));
    }
    let value = match status.status.as_str() {
        "sent" => MessageStatus::Sent,
        "delivered" => MessageStatus::Delivered,
        "read" => MessageStatus::Read,
        "failed" => MessageStatus::Failed,
        _ => return Ok(None),
    };
    let occurred_at = timestamp::unix_seconds_to_millis(status.timestamp.0)
        .map_err(|reason| ParseError::shape(format!("{path}.timestamp"), reason))?;
    let conversation = match status.conversation {
        Some(WaConversation {
            id: Some(id),
            expiration_timestamp,
            origin,
        }) => Some(ProviderConversation {
            id,
            origin_type: origin.and_then(|origin| origin.kind),
            expires_at: match expiration_timestamp {
                Some(seconds) => Some(timestamp::unix_seconds_to_millis(seconds.0).map_err(
                    |reason| {
                        ParseError::shape(
                            format!("{path}.conversation.expiration_timestamp"),
                            reason,
                        )
                    },
                )?),
                None => None,
            },
        }),
        _ => None,
    };
    Ok(Some(InboundStatus {
        event_id: deterministic_event_id(&["whatsapp", "status", &status.id, &status.status]),
        tenant_id: tenant_id.to_string(),
        conversation_key: conversation_key(tenant_id, Channel::Whatsapp, &status.recipient_id),
        channel: Channel::Whatsapp,
        occurred_at,
        recorded_at: stamp.recorded_at,
        source: SOURCE.to_string(),
        trace_parent: stamp.trace_parent.clone(),
        provider_message_id: status.id,
        status: value,
        recipient_id: status.recipient_id,
        business_id: Some(phone_number_id.to_string()),
        errors: status.errors.into_iter().map(provider_error).collect(),
        conversation,
        pricing: status.pricing.map(|pricing| Pricing {
            // Newer API versions drop `billable` (deprecated); absent means we cannot tell,
            // and the conservative reading for cost reports is "billable".
            billable: pricing.billable.unwrap_or(true),
            pricing_model: pricing.pricing_model,
            category: pricing.category,
        }),
        biz_opaque_callback_data: status.biz_opaque_callback_data,
    }))
}

fn provider_error(error: WaError) -> ProviderError {
    ProviderError {
        code: match error.code {
            Some(serde_json::Value::String(code)) => code,
            Some(serde_json::Value::Number(code)) => code.to_string(),
            _ => String::new(),
        },
        title: error.title.unwrap_or_default(),
        message: error.message,
        details: error.error_data.and_then(|data| data.details),
    }
}

// ---------------------------------------------------------------- the provider's shapes ------

#[derive(Deserialize)]
struct Notification<'a> {
    object: String,
    #[serde(borrow)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    changes: Vec<Change<'a>>,
}

#[derive(Deserialize)]
struct Change<'a> {
    field: String,
    #[serde(borrow)]
    value: &'a RawValue,
}

#[derive(Deserialize)]
struct MessagesValue<'a> {
    metadata: Metadata,
    #[serde(default)]
    contacts: Vec<WaContact>,
    #[serde(default, borrow)]
    messages: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    statuses: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Deserialize)]
struct WaContact {
    wa_id: Option<String>,
    profile: Option<WaProfile>,
}

#[derive(Deserialize)]
struct WaProfile {
    name: Option<String>,
}

#[derive(Deserialize)]
struct MessageHead {
    from: String,
    id: String,
    timestamp: UnixSeconds,
    #[serde(rename = "type")]
    kind: String,
    context: Option<WaContext>,
}

#[derive(Deserialize)]
struct WaContext {
    from: Option<String>,
    id: Option<String>,
}

/// The top-level fields of a message, each kept raw until its type says how to read it.
struct Parts<'a> {
    fields: HashMap<String, &'a RawValue>,
}

impl Parts<'_> {
    fn first_error_title(&self) -> Option<String> {
        let errors: Vec<WaError> = serde_json::from_str(self.fields.get("errors")?.get()).ok()?;
        let first = errors.into_iter().next()?;
        first
            .title
            .or(first.message)
            .or_else(|| first.error_data.and_then(|data| data.details))
    }
}

#[derive(Deserialize)]
struct WaText {
    body: String,
}

#[derive(Deserialize)]
struct WaMedia {
    id: Option<String>,
    mime_type: Option<String>,
    sha256: Option<String>,
    caption: Option<String>,
    filename: Option<String>,
    voice: Option<bool>,
}

#[derive(Deserialize)]
struct WaLocation {
    latitude: f64,
    longitude: f64,
    name: Option<String>,
    address: Option<String>,
}

#[derive(Deserialize)]
struct WaContactCard {
    name: Option<WaContactName>,
    #[serde(default)]
    phones: Vec<WaContactPhone>,
    #[serde(default)]
    emails: Vec<WaContactEmail>,
    org: Option<WaContactOrg>,
}

#[derive(Deserialize, Default)]
struct WaContactName {
    formatted_name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct WaContactPhone {
    phone: Option<String>,
    wa_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct WaContactEmail {
    email: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct WaContactOrg {
    company: Option<String>,
}

#[derive(Deserialize)]
struct WaInteractive {
    #[serde(rename = "type")]
    kind: String,
    button_reply: Option<WaButtonReply>,
    list_reply: Option<WaListReply>,
}

#[derive(Deserialize)]
struct WaButtonReply {
    id: String,
    title: String,
}

#[derive(Deserialize)]
struct WaListReply {
    id: String,
    title: String,
    description: Option<String>,
}

#[derive(Deserialize)]
struct WaButton {
    payload: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct WaReaction {
    message_id: String,
    emoji: Option<String>,
}

#[derive(Deserialize)]
struct WaSystem {
    body: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct WaStatus {
    id: String,
    status: String,
    timestamp: UnixSeconds,
    recipient_id: String,
    conversation: Option<WaConversation>,
    pricing: Option<WaPricing>,
    #[serde(default)]
    errors: Vec<WaError>,
    biz_opaque_callback_data: Option<String>,
}

#[derive(Deserialize)]
struct WaConversation {
    id: Option<String>,
    expiration_timestamp: Option<UnixSeconds>,
    origin: Option<WaOrigin>,
}

#[derive(Deserialize)]
struct WaOrigin {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct WaPricing {
    billable: Option<bool>,
    pricing_model: Option<String>,
    category: Option<String>,
}

#[derive(Deserialize)]
struct WaError {
    code: Option<serde_json::Value>,
    title: Option<String>,
    message: Option<String>,
    error_data: Option<WaErrorData>,
}

#[derive(Deserialize)]
struct WaErrorData {
    details: Option<String>,
}

/// Unix seconds, sent as a string of digits (as documented) or, leniently, as a number.
struct UnixSeconds(i64);

impl<'de> Deserialize<'de> for UnixSeconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;
        impl Visitor<'_> for SecondsVisitor {
            type Value = UnixSeconds;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a string of Unix seconds such as \"1739321024\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<UnixSeconds, E> {
                timestamp::parse_unix_seconds(text)
                    .map(UnixSeconds)
                    .map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<UnixSeconds, E> {
                i64::try_from(seconds)
                    .map(UnixSeconds)
                    .map_err(|_| E::custom("Unix seconds out of range"))
            }

            fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<UnixSeconds, E> {
                if seconds < 0 {
                    return Err(E::custom("Unix seconds must not be negative"));
                }
                Ok(UnixSeconds(seconds))
            }
        }
        deserializer.deserialize_any(SecondsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use caas_events::model::{InteractiveReplyKind, MediaKind};
    use proptest::prelude::*;

    use super::*;
    use crate::tenants::DEFAULT_TENANTS;

    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const CUSTOMER: &str = "4915112345678";

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    fn stamp() -> Stamp {
        Stamp {
            recorded_at: 1_739_321_025_000,
            trace_parent: Some(TRACE.to_string()),
        }
    }

    fn parse_fixture(name: &str) -> Batch {
        let tenants = Tenants::parse(DEFAULT_TENANTS).unwrap();
        parse(&fixture(name), &tenants, &stamp()).unwrap_or_else(|error| panic!("{name}: {error}"))
    }

    fn only_message(name: &str) -> InboundMessage {
        let batch = parse_fixture(name);
        assert!(batch.skipped.is_empty(), "{name}: {:?}", batch.skipped);
        match batch.events.as_slice() {
            [IngestEvent::Message(message)] => message.clone(),
            other => panic!("{name}: expected one message, got {other:?}"),
        }
    }

    fn only_status(name: &str) -> InboundStatus {
        match parse_fixture(name).events.as_slice() {
            [IngestEvent::Status(status)] => status.clone(),
            other => panic!("{name}: expected one status, got {other:?}"),
        }
    }

    fn wamid(number: u32) -> String {
        format!("wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFIXTURE{number:02}")
    }

    fn media(name: &str) -> Media {
        match only_message(name).content {
            Content::Media(media) => media,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn unsupported(name: &str) -> Unsupported {
        match only_message(name).content {
            Content::Unsupported(unsupported) => unsupported,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn a_text_message_becomes_a_complete_inbound_message() {
        let message = only_message("whatsapp_text");
        assert_eq!(
            message,
            InboundMessage {
                event_id: deterministic_event_id(&["whatsapp", "message", &wamid(1)]),
                tenant_id: "demo".into(),
                conversation_key: "demo:whatsapp:4915112345678".into(),
                channel: Channel::Whatsapp,
                occurred_at: 1_739_321_024_000,
                recorded_at: 1_739_321_025_000,
                source: "ingest".into(),
                trace_parent: Some(TRACE.into()),
                provider_message_id: wamid(1),
                customer_id: CUSTOMER.into(),
                customer_display_name: Some("Jürgen Järvi".into()),
                business_id: Some("100000000000001".into()),
                reply_to: None,
                content: Content::Text(Text {
                    body: "Grüße aus Köln! Ich hätte gern Auskunft.".into(),
                    preview_url: false,
                }),
            }
        );
    }

    #[test]
    fn media_messages_keep_id_type_hash_caption_and_file_name() {
        let image = media("whatsapp_image");
        assert_eq!(image.kind, MediaKind::Image);
        assert_eq!(image.id.as_deref(), Some("1479537139650973"));
        assert_eq!(image.mime_type.as_deref(), Some("image/jpeg"));
        assert_eq!(image.caption.as_deref(), Some("Mein Zählerstand"));
        assert_eq!(
            image.sha256.as_deref(),
            Some("ZT8x8pS5/Vg2bFFa/4M3JxeMPf2D9wKoD2yJPyn6rOc=")
        );
        assert_eq!((image.link, image.voice), (None, false));

        let audio = media("whatsapp_audio");
        assert_eq!(audio.kind, MediaKind::Audio);
        assert!(audio.voice, "a voice note");
        assert_eq!(audio.mime_type.as_deref(), Some("audio/ogg; codecs=opus"));

        let video = media("whatsapp_video");
        assert_eq!(
            (video.kind, video.caption.as_deref()),
            (MediaKind::Video, Some("Unboxing"))
        );

        let document = media("whatsapp_document");
        assert_eq!(document.kind, MediaKind::Document);
        assert_eq!(document.filename.as_deref(), Some("rechnung-2025-03.pdf"));
        assert_eq!(document.caption.as_deref(), Some("Rechnung März"));

        let sticker = media("whatsapp_sticker");
        assert_eq!(sticker.kind, MediaKind::Sticker);
        assert_eq!(sticker.mime_type.as_deref(), Some("image/webp"));
    }

    #[test]
    fn a_location_keeps_coordinates_name_and_address() {
        let Content::Location(location) = only_message("whatsapp_location").content else {
            panic!("not a location");
        };
        assert_eq!((location.latitude, location.longitude), (50.9413, 6.9583));
        assert_eq!(location.name.as_deref(), Some("Kölner Dom"));
        assert_eq!(
            location.address.as_deref(),
            Some("Domkloster 4, 50667 Köln")
        );
    }

    #[test]
    fn contact_cards_keep_names_phones_emails_and_company() {
        let Content::Contacts(contacts) = only_message("whatsapp_contacts").content else {
            panic!("not contacts");
        };
        assert_eq!(
            contacts.cards,
            [ContactCard {
                formatted_name: "Anna Schmidt".into(),
                given_name: Some("Anna".into()),
                family_name: Some("Schmidt".into()),
                organization: Some("Example GmbH".into()),
                phones: vec![
                    ContactPhone {
                        number: "+49 30 1234567".into(),
                        wa_id: Some("49301234567".into()),
                        label: Some("WORK".into()),
                    },
                    ContactPhone {
                        number: "+49 170 7654321".into(),
                        wa_id: None,
                        label: Some("CELL".into()),
                    },
                ],
                emails: vec![ContactEmail {
                    address: "anna.schmidt@example.com".into(),
                    label: Some("WORK".into()),
                }],
            }]
        );
    }

    #[test]
    fn interactive_replies_and_template_buttons_become_replies_with_context() {
        let button = only_message("whatsapp_interactive_button_reply");
        assert_eq!(
            button.content,
            Content::InteractiveReply(InteractiveReply {
                kind: InteractiveReplyKind::Button,
                id: "confirm-appointment".into(),
                title: "Ja, bestätigen".into(),
                description: None,
            })
        );
        assert_eq!(
            button.reply_to,
            Some(ReplyContext {
                provider_message_id:
                    "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjQxQjVBMTJCRkI3NTYzNjQ2AA==".into(),
                from: Some("15550000001".into()),
            })
        );
        let list = only_message("whatsapp_interactive_list_reply");
        assert_eq!(
            list.content,
            Content::InteractiveReply(InteractiveReply {
                kind: InteractiveReplyKind::List,
                id: "slot-2025-02-14-10".into(),
                title: "Fr 14.02. 10:00".into(),
                description: Some("Filiale Köln Mitte".into()),
            })
        );
        let template_button = only_message("whatsapp_button");
        assert_eq!(
            template_button.content,
            Content::InteractiveReply(InteractiveReply {
                kind: InteractiveReplyKind::Button,
                id: "STOP_PROMOTIONS".into(),
                title: "Keine Werbung mehr".into(),
                description: None,
            })
        );
        assert!(template_button.reply_to.is_some());
    }

    #[test]
    fn reactions_and_their_removal() {
        let reacted_to = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjQxQjVBMTJCRkI3NTYzNjQ5AA==";
        assert_eq!(
            only_message("whatsapp_reaction").content,
            Content::Reaction(Reaction {
                message_id: reacted_to.into(),
                emoji: Some("👍".into()),
            })
        );
        assert_eq!(
            only_message("whatsapp_reaction_removed").content,
            Content::Reaction(Reaction {
                message_id: reacted_to.into(),
                emoji: None,
            })
        );
    }

    #[test]
    fn order_system_unsupported_and_unknown_types_are_kept_verbatim() {
        for (name, provider_type, reason) in [
            ("whatsapp_order", "order", "order messages are not modelled"),
            ("whatsapp_system", "system", "user_changed_number"),
            (
                "whatsapp_unsupported",
                "unsupported",
                "Message type unknown",
            ),
            (
                "whatsapp_unknown_type",
                "request_welcome",
                "unknown WhatsApp message type",
            ),
        ] {
            let kept = unsupported(name);
            assert_eq!(kept.provider_type, provider_type);
            assert!(
                kept.reason.as_deref().unwrap_or_default().contains(reason),
                "{name}: {kept:?}"
            );
            // The raw JSON is the message object exactly as it was in the body.
            let body: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
            let original = &body["entry"][0]["changes"][0]["value"]["messages"][0];
            let kept_json: serde_json::Value = serde_json::from_str(&kept.raw_json).unwrap();
            assert_eq!(&kept_json, original, "{name}");
            let body_text = String::from_utf8(fixture(name)).unwrap();
            assert!(
                body_text.contains(&kept.raw_json),
                "{name}: raw JSON is a verbatim slice"
            );
        }
    }

    #[test]
    fn a_known_type_of_an_unexpected_shape_is_kept_not_refused() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"100000000000001"},"messages":[{"from":"1","id":"wamid.x","timestamp":"1","type":"image","image":"not-an-object"}]}}]}]}"#;
        let batch = parse(body, &Tenants::parse(DEFAULT_TENANTS).unwrap(), &stamp()).unwrap();
        let [IngestEvent::Message(message)] = batch.events.as_slice() else {
            panic!("{batch:?}");
        };
        let Content::Unsupported(kept) = &message.content else {
            panic!("{message:?}");
        };
        assert_eq!(kept.provider_type, "image");
        assert!(
            kept.reason.as_deref().unwrap().contains("`image` object"),
            "{kept:?}"
        );
    }

    #[test]
    fn statuses_carry_errors_conversation_pricing_and_callback_data() {
        let sent = only_status("whatsapp_status_sent");
        let sent_id = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYFIXTURE21";
        assert_eq!(
            sent,
            InboundStatus {
                event_id: deterministic_event_id(&["whatsapp", "status", sent_id, "sent"]),
                tenant_id: "demo".into(),
                conversation_key: "demo:whatsapp:4915112345678".into(),
                channel: Channel::Whatsapp,
                occurred_at: 1_739_321_100_000,
                recorded_at: 1_739_321_025_000,
                source: "ingest".into(),
                trace_parent: Some(TRACE.into()),
                provider_message_id: sent_id.into(),
                status: MessageStatus::Sent,
                recipient_id: CUSTOMER.into(),
                business_id: Some("100000000000001".into()),
                errors: vec![],
                conversation: Some(ProviderConversation {
                    id: "4a4f2d0c9e4e3c0c1d35f1f2bcab7c11".into(),
                    origin_type: Some("service".into()),
                    expires_at: Some(1_739_407_500_000),
                }),
                pricing: Some(Pricing {
                    billable: true,
                    pricing_model: Some("CBP".into()),
                    category: Some("service".into()),
                }),
                biz_opaque_callback_data: Some("campaign=spring-sale;recipient=17".into()),
            }
        );
        let delivered = only_status("whatsapp_status_delivered");
        assert_eq!(delivered.status, MessageStatus::Delivered);
        assert_eq!(delivered.conversation.unwrap().expires_at, None);
        assert_ne!(
            delivered.event_id, sent.event_id,
            "one event per status value"
        );
        let read = only_status("whatsapp_status_read");
        assert_eq!(
            (read.status, read.conversation, read.pricing),
            (MessageStatus::Read, None, None)
        );
        let failed = only_status("whatsapp_status_failed");
        assert_eq!(failed.status, MessageStatus::Failed);
        assert_eq!(
            failed.errors,
            [ProviderError {
                code: "131047".into(),
                title: "Re-engagement message".into(),
                message: Some("Re-engagement message".into()),
                details: Some(
                    "Message failed to send because more than 24 hours have passed since the customer last replied to this number."
                        .into()
                ),
            }]
        );
    }

    #[test]
    fn a_batch_yields_every_message_and_status_of_every_entry_and_change() {
        let batch = parse_fixture("whatsapp_batch");
        let summary: Vec<(&str, &str, &str)> = batch
            .events
            .iter()
            .map(|event| match event {
                IngestEvent::Message(message) => (
                    "message",
                    message.provider_message_id.as_str(),
                    message.conversation_key.as_str(),
                ),
                IngestEvent::Status(status) => (
                    event.kind(),
                    status.provider_message_id.as_str(),
                    status.conversation_key.as_str(),
                ),
                IngestEvent::Presence(_) | IngestEvent::Conversation(_) => unreachable!(),
            })
            .collect();
        let status_id =
            |number: u32| format!("wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYFIXTURE{number:02}");
        let ids = [
            wamid(31),
            wamid(32),
            wamid(33),
            status_id(34),
            status_id(35),
            status_id(36),
            status_id(37),
        ];
        assert_eq!(
            summary,
            [
                ("message", ids[0].as_str(), "demo:whatsapp:4915112345678"),
                ("message", ids[1].as_str(), "demo:whatsapp:4917612345678"),
                ("message", ids[2].as_str(), "demo:whatsapp:4915112345678"),
                ("delivered", ids[3].as_str(), "demo:whatsapp:4915112345678"),
                ("read", ids[4].as_str(), "demo:whatsapp:4915112345678"),
                ("sent", ids[5].as_str(), "demo:whatsapp:4915112345678"),
                ("failed", ids[6].as_str(), "demo:whatsapp:4915112345678"),
            ]
        );
        let IngestEvent::Message(from_mia) = &batch.events[1] else {
            unreachable!()
        };
        assert_eq!(from_mia.customer_display_name.as_deref(), Some("Mia"));
        let reasons: Vec<&str> = batch.skipped.iter().map(|skipped| skipped.reason).collect();
        assert_eq!(reasons, ["other_field", UNKNOWN_TENANT]);
        assert_eq!(batch.unknown_tenants(), 1);
    }

    #[test]
    fn the_same_body_twice_gives_the_same_event_ids() {
        let ids = |batch: Batch| -> Vec<String> {
            batch
                .events
                .iter()
                .map(|event| event.event_id().to_string())
                .collect()
        };
        assert_eq!(
            ids(parse_fixture("whatsapp_batch")),
            ids(parse_fixture("whatsapp_batch"))
        );
    }

    #[test]
    fn an_unknown_number_produces_nothing() {
        let batch = parse_fixture("whatsapp_unknown_number");
        assert!(batch.events.is_empty());
        assert_eq!(batch.unknown_tenants(), 1);
        assert_eq!(batch.skipped[0].detail, "phone_number_id 999999999999999");
    }

    #[test]
    fn an_unknown_status_value_is_skipped() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"100000000000001"},"statuses":[{"id":"wamid.s","status":"deleted","timestamp":"1","recipient_id":"1"}]}}]}]}"#;
        let batch = parse(body, &Tenants::parse(DEFAULT_TENANTS).unwrap(), &stamp()).unwrap();
        assert!(batch.events.is_empty());
        assert_eq!(batch.skipped[0].reason, "unknown_status");
    }

    #[test]
    fn bodies_that_are_not_notifications_say_what_is_wrong() {
        let tenants = Tenants::parse(DEFAULT_TENANTS).unwrap();
        let cases: [(&[u8], &str, &str); 8] = [
            (b"{\"object\":", "invalid_json", "not valid JSON"),
            (b"\xff\xfe", "invalid_json", "not valid JSON"),
            (b"[]", "invalid_payload", "body"),
            (b"{}", "invalid_payload", "missing field `object`"),
            (br#"{"object":"page","entry":[]}"#, "invalid_payload", "\"page\""),
            (br#"{"object":"whatsapp_business_account","entry":{}}"#, "invalid_payload", "body"),
            (
                br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"100000000000001"},"messages":[{"from":"1","timestamp":"1","type":"text"}]}}]}]}"#,
                "invalid_payload",
                "entry[0].changes[0].value.messages[0]: missing field `id`",
            ),
            (
                br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"100000000000001"},"statuses":[{"id":"w","status":"read","timestamp":"yesterday","recipient_id":"1"}]}}]}]}"#,
                "invalid_payload",
                "statuses[0]",
            ),
        ];
        for (body, code, expected) in cases {
            let error = parse(body, &tenants, &stamp()).unwrap_err();
            assert_eq!(error.code(), code, "{error}");
            assert!(
                error.to_string().contains(expected),
                "{:?}: {error}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_absurd_timestamp_is_refused_not_overflowed() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"100000000000001"},"messages":[{"from":"1","id":"w","timestamp":"9223372036854775807","type":"text","text":{"body":"x"}}]}}]}]}"#;
        let error = parse(body, &Tenants::parse(DEFAULT_TENANTS).unwrap(), &stamp()).unwrap_err();
        assert!(error.to_string().contains("timestamp"), "{error}");
    }

    /// Any JSON value, a few levels deep, with the keys WhatsApp uses so the parser gets past
    /// its first checks now and then.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let key = prop::sample::select(vec![
            "object",
            "entry",
            "changes",
            "field",
            "value",
            "metadata",
            "phone_number_id",
            "messages",
            "statuses",
            "contacts",
            "from",
            "id",
            "timestamp",
            "type",
            "text",
            "body",
            "image",
            "interactive",
            "button_reply",
            "status",
            "recipient_id",
            "errors",
            "conversation",
            "expiration_timestamp",
            "pricing",
            "x",
        ]);
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            prop::sample::select(vec![
                "whatsapp_business_account",
                "messages",
                "100000000000001",
                "1739321024",
                "text",
                "image",
                "button_reply",
                "list_reply",
                "read",
                "failed",
                "",
            ])
            .prop_map(serde_json::Value::from),
            ".{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(6, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(|pairs| {
                    serde_json::Value::Object(
                        pairs
                            .into_iter()
                            .map(|(key, value)| (key.to_string(), value))
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes, &Tenants::parse(DEFAULT_TENANTS).unwrap(), &stamp());
        }

        #[test]
        fn never_panics_on_arbitrary_json(value in json_value()) {
            let body = serde_json::to_vec(&value).unwrap();
            let _ = parse(&body, &Tenants::parse(DEFAULT_TENANTS).unwrap(), &stamp());
        }

        #[test]
        fn never_panics_on_mutated_fixtures(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut body = fixture("whatsapp_batch");
            let index = position.index(body.len());
            body[index] = byte;
            let _ = parse(&body, &Tenants::parse(DEFAULT_TENANTS).unwrap(), &stamp());
        }
    }
}
