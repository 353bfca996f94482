//! Sample events and proptest strategies shared by the tests and the benches.

#![allow(dead_code)] // each test binary uses a different part

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use caas_events::keys;
use caas_events::model::*;
use caas_events::{wire, Event, WriterSchema};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

// ---------------------------------------------------------------- wire helpers

/// The schema id [`from_newer_writer`] registers its schema under.
pub const NEWER_ID: u32 = 99;

/// Frames an Avro body under `id`.
pub fn framed(id: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![wire::MAGIC_BYTE];
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// The event as a generic Avro value of its own schema.
pub fn to_generic<E: Event>(event: &E) -> Value {
    let body = wire::encode_body(event).expect("encodes");
    GenericDatumReader::builder(E::schema())
        .build()
        .expect("reader")
        .read_value(&mut &body[..])
        .expect("own bytes decode generically")
}

pub fn write_generic(schema: &Schema, value: Value) -> Vec<u8> {
    GenericDatumWriter::builder(schema)
        .build()
        .expect("writer")
        .write_value_to_vec(value)
        .expect("value fits the schema")
}

/// A record as a newer producer would write it: the schema gained an optional field at the end.
pub fn from_newer_writer<E: Event>(event: &E) -> (WriterSchema, Vec<u8>) {
    let mut schema_json: serde_json::Value =
        serde_json::from_str(E::SCHEMA_JSON).expect("schema is JSON");
    schema_json["fields"]
        .as_array_mut()
        .expect("record fields")
        .push(serde_json::json!({
            "name": "added_later",
            "type": ["null", "string"],
            "default": null,
            "doc": "A field a newer schema version added."
        }));
    let newer = Schema::parse(&schema_json).expect("newer schema parses");
    let Value::Record(mut fields) = to_generic(event) else {
        panic!("{} is not a record", E::RECORD_NAME);
    };
    fields.push((
        "added_later".to_string(),
        Value::Union(1, Box::new(Value::String("from the future".into()))),
    ));
    let body = write_generic(&newer, Value::Record(fields));
    (WriterSchema::new(NEWER_ID, newer), framed(NEWER_ID, &body))
}

// ---------------------------------------------------------------- fixed samples

/// One content value of every variant, in union order.
pub fn every_content() -> Vec<Content> {
    let media = Media {
        kind: MediaKind::Audio,
        id: Some("1234567890".into()),
        link: None,
        mime_type: Some("audio/ogg; codecs=opus".into()),
        caption: None,
        filename: None,
        sha256: Some("c0ffee".into()),
        voice: true,
        size_bytes: Some(4096),
    };
    vec![
        Content::Text(Text {
            body: "Hallo, ich hätte gern Hilfe 👋".into(),
            preview_url: false,
        }),
        Content::Media(media.clone()),
        Content::Location(Location {
            latitude: 52.520_008,
            longitude: 13.404_954,
            name: Some("Berlin".into()),
            address: None,
        }),
        Content::Contacts(Contacts {
            cards: vec![ContactCard {
                formatted_name: "Kim Example".into(),
                given_name: Some("Kim".into()),
                family_name: Some("Example".into()),
                organization: None,
                phones: vec![ContactPhone {
                    number: "+49 151 12345678".into(),
                    wa_id: Some("4915112345678".into()),
                    label: Some("CELL".into()),
                }],
                emails: vec![ContactEmail {
                    address: "kim@example.com".into(),
                    label: None,
                }],
            }],
        }),
        Content::InteractiveReply(InteractiveReply {
            kind: InteractiveReplyKind::Suggestion,
            id: "postback-yes".into(),
            title: "Yes".into(),
            description: None,
        }),
        Content::Reaction(Reaction {
            message_id: "wamid.reacted".into(),
            emoji: None,
        }),
        Content::Template(Template {
            name: "order_update".into(),
            language: "en_US".into(),
            parameters: vec![
                TemplateParameter {
                    component: TemplateComponent::Body,
                    button_index: None,
                    text: "A-1234".into(),
                },
                TemplateParameter {
                    component: TemplateComponent::Button,
                    button_index: Some(0),
                    text: "track/A-1234".into(),
                },
            ],
            header_media: Some(Media {
                kind: MediaKind::Image,
                id: None,
                link: Some("https://example.com/banner.png".into()),
                voice: false,
                size_bytes: None,
                mime_type: None,
                caption: None,
                filename: None,
                sha256: None,
            }),
        }),
        Content::Interactive(Interactive {
            kind: InteractiveKind::List,
            body: "What do you need?".into(),
            header: None,
            footer: Some("Reply any time".into()),
            button_label: Some("Options".into()),
            options: vec![InteractiveOption {
                id: "billing".into(),
                title: "Billing".into(),
                description: Some("Invoices and payments".into()),
            }],
        }),
        Content::Unsupported(Unsupported {
            provider_type: "order".into(),
            raw_json: r#"{"type":"order","order":{"catalog_id":"1"}}"#.into(),
            reason: None,
        }),
    ]
}

const TENANT: &str = "acme";
const CUSTOMER: &str = "4915112345678";

fn conversation() -> String {
    keys::conversation_key(TENANT, Channel::Whatsapp, CUSTOMER)
}

pub fn inbound_message(content: Content) -> InboundMessage {
    InboundMessage {
        event_id: keys::deterministic_event_id(&["whatsapp", "message", "wamid.HBgN"]),
        tenant_id: TENANT.into(),
        conversation_key: conversation(),
        channel: Channel::Whatsapp,
        occurred_at: 1_739_321_024_000,
        recorded_at: 1_739_321_024_250,
        source: "ingest".into(),
        trace_parent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        provider_message_id: "wamid.HBgN".into(),
        customer_id: CUSTOMER.into(),
        customer_display_name: Some("Kim".into()),
        business_id: Some("106540352242922".into()),
        reply_to: Some(ReplyContext {
            provider_message_id: "wamid.earlier".into(),
            from: Some("15550001111".into()),
        }),
        content,
    }
}

pub fn inbound_text() -> InboundMessage {
    inbound_message(Content::Text(Text {
        body: "Hi, where is my order A-1234?".into(),
        preview_url: false,
    }))
}

pub fn inbound_status() -> InboundStatus {
    InboundStatus {
        event_id: keys::deterministic_event_id(&["whatsapp", "status", "wamid.sent", "failed"]),
        tenant_id: TENANT.into(),
        conversation_key: conversation(),
        channel: Channel::Whatsapp,
        occurred_at: 1_739_321_030_000,
        recorded_at: 1_739_321_030_100,
        source: "ingest".into(),
        trace_parent: None,
        provider_message_id: "wamid.sent".into(),
        status: MessageStatus::Failed,
        recipient_id: CUSTOMER.into(),
        business_id: None,
        errors: vec![ProviderError {
            code: "131047".into(),
            title: "Re-engagement message".into(),
            message: Some("More than 24 hours have passed".into()),
            details: None,
        }],
        conversation: Some(ProviderConversation {
            id: "conv-1".into(),
            origin_type: Some("service".into()),
            expires_at: Some(1_739_407_430_000),
        }),
        pricing: Some(Pricing {
            billable: true,
            pricing_model: Some("CBP".into()),
            category: Some("service".into()),
        }),
        biz_opaque_callback_data: Some("campaign:c1".into()),
    }
}

pub fn outbound_command(content: Content) -> OutboundCommand {
    OutboundCommand {
        event_id: "9f1c2a4e-3b7d-4d0e-8a51-1f3a7c9e2b10".into(),
        tenant_id: TENANT.into(),
        conversation_key: conversation(),
        channel: Channel::Whatsapp,
        occurred_at: 1_739_321_025_000,
        recorded_at: 1_739_321_025_010,
        source: "gateway".into(),
        trace_parent: None,
        command_id: "cmd-0001".into(),
        to: CUSTOMER.into(),
        content,
        origin: Origin::Operator,
        campaign_id: None,
        reply_to: Some("wamid.HBgN".into()),
        operator_id: Some("op-7".into()),
        business_id: None,
        callback_data: None,
    }
}

pub fn outbound_text() -> OutboundCommand {
    outbound_command(Content::Text(Text {
        body: "Your order ships today.".into(),
        preview_url: true,
    }))
}

pub fn outbound_result() -> OutboundResult {
    OutboundResult {
        event_id: "res-cmd-0001".into(),
        tenant_id: TENANT.into(),
        conversation_key: conversation(),
        channel: Channel::Whatsapp,
        occurred_at: 1_739_321_025_300,
        recorded_at: 1_739_321_025_310,
        source: "sender".into(),
        trace_parent: None,
        command_id: "cmd-0001".into(),
        outcome: SendOutcome::Failed,
        provider_message_id: None,
        error: Some(SendError {
            code: "130429".into(),
            reason: "throughput limit reached".into(),
            retryable: true,
        }),
        origin: Origin::Operator,
        campaign_id: None,
        attempts: 3,
    }
}

pub fn conversation_event() -> ConversationEvent {
    ConversationEvent {
        event_id: "conv-evt-1".into(),
        tenant_id: TENANT.into(),
        conversation_key: conversation(),
        channel: Channel::Whatsapp,
        occurred_at: 1_739_321_026_000,
        recorded_at: 1_739_321_026_001,
        source: "gateway".into(),
        trace_parent: None,
        kind: ConversationEventKind::Assigned,
        actor_operator_id: Some("op-1".into()),
        assignee_operator_id: Some("op-7".into()),
        previous_assignee_operator_id: None,
        reason: Some("customer asked for a human".into()),
    }
}

pub fn presence_event() -> PresenceEvent {
    PresenceEvent {
        event_id: "presence-1".into(),
        tenant_id: TENANT.into(),
        conversation_key: keys::operator_key(TENANT, "op-7"),
        channel: None,
        occurred_at: 1_739_321_027_000,
        recorded_at: 1_739_321_027_001,
        source: "gateway".into(),
        trace_parent: None,
        kind: PresenceKind::Online,
        subject: PresenceSubject::Operator,
        subject_id: "op-7".into(),
        provider_message_id: None,
        expires_at: Some(1_739_321_057_000),
    }
}

pub fn presence_update() -> PresenceUpdate {
    PresenceUpdate {
        event_id: "presence-update-1".into(),
        tenant_id: TENANT.into(),
        conversation_key: conversation(),
        channel: Some(Channel::Whatsapp),
        occurred_at: 1_739_321_028_000,
        recorded_at: 1_739_321_028_002,
        source: "presence".into(),
        trace_parent: None,
        kind: PresenceKind::Typing,
        subject: PresenceSubject::Customer,
        subject_id: CUSTOMER.into(),
        active: true,
        last_seen_at: Some(1_739_321_028_000),
        read_provider_message_id: None,
        expires_at: Some(1_739_321_053_000),
    }
}

pub fn campaign_command() -> CampaignCommand {
    let template = match &every_content()[6] {
        Content::Template(template) => template.clone(),
        other => panic!("sample 6 is not a template: {other:?}"),
    };
    CampaignCommand {
        event_id: "campaign-cmd-1".into(),
        tenant_id: TENANT.into(),
        conversation_key: keys::campaign_key(TENANT, "spring-sale"),
        channel: Channel::Whatsapp,
        occurred_at: 1_739_321_029_000,
        recorded_at: 1_739_321_029_001,
        source: "gateway".into(),
        trace_parent: None,
        command_id: "campaign-cmd-1".into(),
        campaign_id: "spring-sale".into(),
        operator_id: Some("op-1".into()),
        action: CampaignAction::Create(Box::new(CreateCampaign {
            name: "Spring sale".into(),
            template,
            business_id: None,
            audience_id: Some("newsletter-de".into()),
            recipients: vec![CUSTOMER.into()],
            rate_per_minute: 600,
            start_at: Some(1_739_400_000_000),
            end_at: None,
            sending_window: Some(SendingWindow {
                start_minute: 9 * 60,
                end_minute: 20 * 60,
                days: vec![Weekday::Monday, Weekday::Friday],
            }),
            timezone: "Europe/Berlin".into(),
        })),
    }
}

pub fn campaign_event() -> CampaignEvent {
    CampaignEvent {
        event_id: "campaign-evt-1".into(),
        tenant_id: TENANT.into(),
        conversation_key: keys::campaign_key(TENANT, "spring-sale"),
        channel: Channel::Whatsapp,
        occurred_at: 1_739_321_031_000,
        recorded_at: 1_739_321_031_001,
        source: "campaign".into(),
        trace_parent: None,
        campaign_id: "spring-sale".into(),
        kind: CampaignEventKind::Progress,
        command_id: None,
        counts: CampaignCounts {
            audience: 1000,
            queued: 400,
            sent: 600,
            delivered: 550,
            read: 300,
            failed: 3,
            skipped: 2,
            replied: 40,
        },
        reason: None,
    }
}

// ---------------------------------------------------------------- strategies

/// Any text, including non-ASCII and the empty string.
pub fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

pub fn opt_text() -> impl Strategy<Value = Option<String>> {
    option::of(text())
}

pub fn millis() -> impl Strategy<Value = i64> {
    any::<i64>()
}

pub fn channel() -> impl Strategy<Value = Channel> {
    prop_oneof![Just(Channel::Whatsapp), Just(Channel::Rcs)]
}

/// The envelope fields, generated together.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub event_id: String,
    pub tenant_id: String,
    pub conversation_key: String,
    pub channel: Channel,
    pub occurred_at: i64,
    pub recorded_at: i64,
    pub source: String,
    pub trace_parent: Option<String>,
}

pub fn envelope() -> impl Strategy<Value = Envelope> {
    (
        text(),
        text(),
        text(),
        channel(),
        millis(),
        millis(),
        text(),
        opt_text(),
    )
        .prop_map(
            |(
                event_id,
                tenant_id,
                conversation_key,
                channel,
                occurred_at,
                recorded_at,
                source,
                trace_parent,
            )| Envelope {
                event_id,
                tenant_id,
                conversation_key,
                channel,
                occurred_at,
                recorded_at,
                source,
                trace_parent,
            },
        )
}

fn finite_f64() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("NaN never equals itself", |value| !value.is_nan())
}

pub fn media() -> impl Strategy<Value = Media> {
    (
        prop_oneof![
            Just(MediaKind::Image),
            Just(MediaKind::Audio),
            Just(MediaKind::Video),
            Just(MediaKind::Document),
            Just(MediaKind::Sticker),
        ],
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        any::<bool>(),
        option::of(any::<i64>()),
    )
        .prop_map(
            |(kind, id, link, mime_type, caption, filename, sha256, voice, size_bytes)| Media {
                kind,
                id,
                link,
                mime_type,
                caption,
                filename,
                sha256,
                voice,
                size_bytes,
            },
        )
}

pub fn template() -> impl Strategy<Value = Template> {
    let parameter = (
        prop_oneof![
            Just(TemplateComponent::Header),
            Just(TemplateComponent::Body),
            Just(TemplateComponent::Button),
        ],
        option::of(any::<i32>()),
        text(),
    )
        .prop_map(|(component, button_index, text)| TemplateParameter {
            component,
            button_index,
            text,
        });
    (text(), text(), vec(parameter, 0..4), option::of(media())).prop_map(
        |(name, language, parameters, header_media)| Template {
            name,
            language,
            parameters,
            header_media,
        },
    )
}

pub fn content() -> impl Strategy<Value = Content> {
    let text_content = (text(), any::<bool>())
        .prop_map(|(body, preview_url)| Content::Text(Text { body, preview_url }));
    let location = (finite_f64(), finite_f64(), opt_text(), opt_text()).prop_map(
        |(latitude, longitude, name, address)| {
            Content::Location(Location {
                latitude,
                longitude,
                name,
                address,
            })
        },
    );
    let phone = (text(), opt_text(), opt_text()).prop_map(|(number, wa_id, label)| ContactPhone {
        number,
        wa_id,
        label,
    });
    let email = (text(), opt_text()).prop_map(|(address, label)| ContactEmail { address, label });
    let card = (
        text(),
        opt_text(),
        opt_text(),
        opt_text(),
        vec(phone, 0..3),
        vec(email, 0..3),
    )
        .prop_map(
            |(formatted_name, given_name, family_name, organization, phones, emails)| ContactCard {
                formatted_name,
                given_name,
                family_name,
                organization,
                phones,
                emails,
            },
        );
    let contacts = vec(card, 0..3).prop_map(|cards| Content::Contacts(Contacts { cards }));
    let reply = (
        prop_oneof![
            Just(InteractiveReplyKind::Button),
            Just(InteractiveReplyKind::List),
            Just(InteractiveReplyKind::Suggestion),
        ],
        text(),
        text(),
        opt_text(),
    )
        .prop_map(|(kind, id, title, description)| {
            Content::InteractiveReply(InteractiveReply {
                kind,
                id,
                title,
                description,
            })
        });
    let reaction = (text(), opt_text())
        .prop_map(|(message_id, emoji)| Content::Reaction(Reaction { message_id, emoji }));
    let option =
        (text(), text(), opt_text()).prop_map(|(id, title, description)| InteractiveOption {
            id,
            title,
            description,
        });
    let interactive = (
        prop_oneof![
            Just(InteractiveKind::Buttons),
            Just(InteractiveKind::List),
            Just(InteractiveKind::Suggestions),
        ],
        text(),
        opt_text(),
        opt_text(),
        opt_text(),
        vec(option, 0..4),
    )
        .prop_map(|(kind, body, header, footer, button_label, options)| {
            Content::Interactive(Interactive {
                kind,
                body,
                header,
                footer,
                button_label,
                options,
            })
        });
    let unsupported = (text(), text(), opt_text()).prop_map(|(provider_type, raw_json, reason)| {
        Content::Unsupported(Unsupported {
            provider_type,
            raw_json,
            reason,
        })
    });
    prop_oneof![
        text_content,
        media().prop_map(Content::Media),
        location,
        contacts,
        reply,
        reaction,
        template().prop_map(Content::Template),
        interactive,
        unsupported,
    ]
}

pub fn inbound_message_strategy() -> impl Strategy<Value = InboundMessage> {
    let reply_to = option::of(
        (text(), opt_text()).prop_map(|(provider_message_id, from)| ReplyContext {
            provider_message_id,
            from,
        }),
    );
    (
        envelope(),
        text(),
        text(),
        opt_text(),
        opt_text(),
        reply_to,
        content(),
    )
        .prop_map(
            |(
                envelope,
                provider_message_id,
                customer_id,
                customer_display_name,
                business_id,
                reply_to,
                content,
            )| InboundMessage {
                event_id: envelope.event_id,
                tenant_id: envelope.tenant_id,
                conversation_key: envelope.conversation_key,
                channel: envelope.channel,
                occurred_at: envelope.occurred_at,
                recorded_at: envelope.recorded_at,
                source: envelope.source,
                trace_parent: envelope.trace_parent,
                provider_message_id,
                customer_id,
                customer_display_name,
                business_id,
                reply_to,
                content,
            },
        )
}

pub fn inbound_status_strategy() -> impl Strategy<Value = InboundStatus> {
    let error =
        (text(), text(), opt_text(), opt_text()).prop_map(|(code, title, message, details)| {
            ProviderError {
                code,
                title,
                message,
                details,
            }
        });
    let conversation = option::of((text(), opt_text(), option::of(millis())).prop_map(
        |(id, origin_type, expires_at)| ProviderConversation {
            id,
            origin_type,
            expires_at,
        },
    ));
    let pricing = option::of((any::<bool>(), opt_text(), opt_text()).prop_map(
        |(billable, pricing_model, category)| Pricing {
            billable,
            pricing_model,
            category,
        },
    ));
    (
        envelope(),
        text(),
        prop_oneof![
            Just(MessageStatus::Sent),
            Just(MessageStatus::Delivered),
            Just(MessageStatus::Read),
            Just(MessageStatus::Failed),
        ],
        text(),
        opt_text(),
        vec(error, 0..3),
        conversation,
        pricing,
        opt_text(),
    )
        .prop_map(
            |(
                envelope,
                provider_message_id,
                status,
                recipient_id,
                business_id,
                errors,
                conversation,
                pricing,
                biz_opaque_callback_data,
            )| InboundStatus {
                event_id: envelope.event_id,
                tenant_id: envelope.tenant_id,
                conversation_key: envelope.conversation_key,
                channel: envelope.channel,
                occurred_at: envelope.occurred_at,
                recorded_at: envelope.recorded_at,
                source: envelope.source,
                trace_parent: envelope.trace_parent,
                provider_message_id,
                status,
                recipient_id,
                business_id,
                errors,
                conversation,
                pricing,
                biz_opaque_callback_data,
            },
        )
}

pub fn origin() -> impl Strategy<Value = Origin> {
    prop_oneof![
        Just(Origin::Bot),
        Just(Origin::Campaign),
        Just(Origin::Operator),
        Just(Origin::Integrator),
    ]
}

pub fn outbound_command_strategy() -> impl Strategy<Value = OutboundCommand> {
    (
        envelope(),
        text(),
        text(),
        content(),
        origin(),
        (opt_text(), opt_text(), opt_text(), opt_text(), opt_text()),
    )
        .prop_map(
            |(
                envelope,
                command_id,
                to,
                content,
                origin,
                (campaign_id, reply_to, operator_id, business_id, callback_data),
            )| OutboundCommand {
                event_id: envelope.event_id,
                tenant_id: envelope.tenant_id,
                conversation_key: envelope.conversation_key,
                channel: envelope.channel,
                occurred_at: envelope.occurred_at,
                recorded_at: envelope.recorded_at,
                source: envelope.source,
                trace_parent: envelope.trace_parent,
                command_id,
                to,
                content,
                origin,
                campaign_id,
                reply_to,
                operator_id,
                business_id,
                callback_data,
            },
        )
}

pub fn outbound_result_strategy() -> impl Strategy<Value = OutboundResult> {
    let error = option::of((text(), text(), any::<bool>()).prop_map(
        |(code, reason, retryable)| SendError {
            code,
            reason,
            retryable,
        },
    ));
    (
        envelope(),
        text(),
        prop_oneof![Just(SendOutcome::Accepted), Just(SendOutcome::Failed)],
        opt_text(),
        error,
        origin(),
        opt_text(),
        any::<i32>(),
    )
        .prop_map(
            |(
                envelope,
                command_id,
                outcome,
                provider_message_id,
                error,
                origin,
                campaign_id,
                attempts,
            )| OutboundResult {
                event_id: envelope.event_id,
                tenant_id: envelope.tenant_id,
                conversation_key: envelope.conversation_key,
                channel: envelope.channel,
                occurred_at: envelope.occurred_at,
                recorded_at: envelope.recorded_at,
                source: envelope.source,
                trace_parent: envelope.trace_parent,
                command_id,
                outcome,
                provider_message_id,
                error,
                origin,
                campaign_id,
                attempts,
            },
        )
}

pub fn conversation_event_strategy() -> impl Strategy<Value = ConversationEvent> {
    (
        envelope(),
        prop_oneof![
            Just(ConversationEventKind::HandoffToHuman),
            Just(ConversationEventKind::Assigned),
            Just(ConversationEventKind::Unassigned),
            Just(ConversationEventKind::ReleasedToBot),
            Just(ConversationEventKind::Closed),
            Just(ConversationEventKind::Reopened),
            Just(ConversationEventKind::Unknown),
            Just(ConversationEventKind::OptedOut),
            Just(ConversationEventKind::OptedIn),
        ],
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
    )
        .prop_map(
            |(
                envelope,
                kind,
                actor_operator_id,
                assignee_operator_id,
                previous_assignee_operator_id,
                reason,
            )| ConversationEvent {
                event_id: envelope.event_id,
                tenant_id: envelope.tenant_id,
                conversation_key: envelope.conversation_key,
                channel: envelope.channel,
                occurred_at: envelope.occurred_at,
                recorded_at: envelope.recorded_at,
                source: envelope.source,
                trace_parent: envelope.trace_parent,
                kind,
                actor_operator_id,
                assignee_operator_id,
                previous_assignee_operator_id,
                reason,
            },
        )
}

pub fn presence_kind() -> impl Strategy<Value = PresenceKind> {
    prop_oneof![
        Just(PresenceKind::Typing),
        Just(PresenceKind::Online),
        Just(PresenceKind::Offline),
        Just(PresenceKind::Read),
        Just(PresenceKind::LastSeen),
        Just(PresenceKind::Unknown),
    ]
}

pub fn presence_subject() -> impl Strategy<Value = PresenceSubject> {
    prop_oneof![
        Just(PresenceSubject::Customer),
        Just(PresenceSubject::Operator)
    ]
}

pub fn presence_event_strategy() -> impl Strategy<Value = PresenceEvent> {
    (
        envelope(),
        option::of(channel()),
        presence_kind(),
        presence_subject(),
        text(),
        opt_text(),
        option::of(millis()),
    )
        .prop_map(
            |(envelope, channel, kind, subject, subject_id, provider_message_id, expires_at)| {
                PresenceEvent {
                    event_id: envelope.event_id,
                    tenant_id: envelope.tenant_id,
                    conversation_key: envelope.conversation_key,
                    channel,
                    occurred_at: envelope.occurred_at,
                    recorded_at: envelope.recorded_at,
                    source: envelope.source,
                    trace_parent: envelope.trace_parent,
                    kind,
                    subject,
                    subject_id,
                    provider_message_id,
                    expires_at,
                }
            },
        )
}

pub fn presence_update_strategy() -> impl Strategy<Value = PresenceUpdate> {
    (
        envelope(),
        option::of(channel()),
        presence_kind(),
        presence_subject(),
        text(),
        any::<bool>(),
        option::of(millis()),
        opt_text(),
        option::of(millis()),
    )
        .prop_map(
            |(
                envelope,
                channel,
                kind,
                subject,
                subject_id,
                active,
                last_seen_at,
                read_provider_message_id,
                expires_at,
            )| PresenceUpdate {
                event_id: envelope.event_id,
                tenant_id: envelope.tenant_id,
                conversation_key: envelope.conversation_key,
                channel,
                occurred_at: envelope.occurred_at,
                recorded_at: envelope.recorded_at,
                source: envelope.source,
                trace_parent: envelope.trace_parent,
                kind,
                subject,
                subject_id,
                active,
                last_seen_at,
                read_provider_message_id,
                expires_at,
            },
        )
}

pub fn campaign_action() -> impl Strategy<Value = CampaignAction> {
    let weekday = prop_oneof![
        Just(Weekday::Monday),
        Just(Weekday::Tuesday),
        Just(Weekday::Wednesday),
        Just(Weekday::Thursday),
        Just(Weekday::Friday),
        Just(Weekday::Saturday),
        Just(Weekday::Sunday),
    ];
    let window = option::of((any::<i32>(), any::<i32>(), vec(weekday, 0..7)).prop_map(
        |(start_minute, end_minute, days)| SendingWindow {
            start_minute,
            end_minute,
            days,
        },
    ));
    let create = (
        text(),
        template(),
        opt_text(),
        opt_text(),
        vec(text(), 0..4),
        any::<i32>(),
        option::of(millis()),
        option::of(millis()),
        window,
        text(),
    )
        .prop_map(
            |(
                name,
                template,
                business_id,
                audience_id,
                recipients,
                rate_per_minute,
                start_at,
                end_at,
                sending_window,
                timezone,
            )| {
                CampaignAction::Create(Box::new(CreateCampaign {
                    name,
                    template,
                    business_id,
                    audience_id,
                    recipients,
                    rate_per_minute,
                    start_at,
                    end_at,
                    sending_window,
                    timezone,
                }))
            },
        );
    prop_oneof![
        create,
        opt_text().prop_map(|reason| CampaignAction::Pause(PauseCampaign { reason })),
        opt_text().prop_map(|reason| CampaignAction::Resume(ResumeCampaign { reason })),
        opt_text().prop_map(|reason| CampaignAction::Cancel(CancelCampaign { reason })),
    ]
}

pub fn campaign_command_strategy() -> impl Strategy<Value = CampaignCommand> {
    (envelope(), text(), text(), opt_text(), campaign_action()).prop_map(
        |(envelope, command_id, campaign_id, operator_id, action)| CampaignCommand {
            event_id: envelope.event_id,
            tenant_id: envelope.tenant_id,
            conversation_key: envelope.conversation_key,
            channel: envelope.channel,
            occurred_at: envelope.occurred_at,
            recorded_at: envelope.recorded_at,
            source: envelope.source,
            trace_parent: envelope.trace_parent,
            command_id,
            campaign_id,
            operator_id,
            action,
        },
    )
}

pub fn campaign_event_strategy() -> impl Strategy<Value = CampaignEvent> {
    let kind = prop_oneof![
        Just(CampaignEventKind::Created),
        Just(CampaignEventKind::Scheduled),
        Just(CampaignEventKind::Started),
        Just(CampaignEventKind::Progress),
        Just(CampaignEventKind::Paused),
        Just(CampaignEventKind::Resumed),
        Just(CampaignEventKind::Cancelled),
        Just(CampaignEventKind::Completed),
        Just(CampaignEventKind::Failed),
        Just(CampaignEventKind::Rejected),
        Just(CampaignEventKind::Unknown),
    ];
    let counts = (
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(
            |(audience, queued, sent, delivered, read, failed, skipped, replied)| CampaignCounts {
                audience,
                queued,
                sent,
                delivered,
                read,
                failed,
                skipped,
                replied,
            },
        );
    (envelope(), text(), kind, opt_text(), counts, opt_text()).prop_map(
        |(envelope, campaign_id, kind, command_id, counts, reason)| CampaignEvent {
            event_id: envelope.event_id,
            tenant_id: envelope.tenant_id,
            conversation_key: envelope.conversation_key,
            channel: envelope.channel,
            occurred_at: envelope.occurred_at,
            recorded_at: envelope.recorded_at,
            source: envelope.source,
            trace_parent: envelope.trace_parent,
            campaign_id,
            kind,
            command_id,
            counts,
            reason,
        },
    )
}
