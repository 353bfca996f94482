//! Provider requests built from an outbound command.
//!
//! WhatsApp: the Cloud API message body (`text`, `template` with header/body/button
//! parameters and a media header, `interactive` buttons or list, media by `id` or `link`,
//! `location`, `reaction`, `contacts`; `context.message_id` for a quoted reply;
//! `biz_opaque_callback_data`). RBM: an AgentMessage (`text`, `contentInfo` for media by link,
//! suggested replies for interactive content, a view-location action for a location).
//!
//! Content a channel cannot carry is refused here with a reason, before any provider call.

use caas_events::model::{
    Contacts, Content, Interactive, InteractiveKind, Media, MediaKind, OutboundCommand, Template,
    TemplateComponent,
};
use serde_json::{json, Map, Value};

/// Why a command's content cannot be sent on its channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsendable(pub String);

fn media_kind(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image",
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
        MediaKind::Document => "document",
        MediaKind::Sticker => "sticker",
    }
}

fn whatsapp_media(media: &Media) -> Result<Value, Unsendable> {
    let mut object = Map::new();
    match (&media.id, &media.link) {
        (Some(id), _) => {
            object.insert("id".into(), json!(id));
        }
        (None, Some(link)) => {
            object.insert("link".into(), json!(link));
        }
        (None, None) => {
            return Err(Unsendable(
                "media needs an id or a link to be sent".to_string(),
            ))
        }
    }
    if let Some(caption) = &media.caption {
        if !matches!(media.kind, MediaKind::Audio | MediaKind::Sticker) {
            object.insert("caption".into(), json!(caption));
        }
    }
    if media.kind == MediaKind::Document {
        if let Some(filename) = &media.filename {
            object.insert("filename".into(), json!(filename));
        }
    }
    Ok(Value::Object(object))
}

fn whatsapp_template(template: &Template) -> Result<Value, Unsendable> {
    let mut components = Vec::new();
    let mut header_parameters: Vec<Value> = Vec::new();
    if let Some(media) = &template.header_media {
        let kind = media_kind(media.kind);
        header_parameters.push(json!({ "type": kind, kind: whatsapp_media(media)? }));
    }
    let texts = |component: TemplateComponent| -> Vec<Value> {
        template
            .parameters
            .iter()
            .filter(|parameter| parameter.component == component)
            .map(|parameter| json!({ "type": "text", "text": parameter.text }))
            .collect()
    };
    header_parameters.extend(texts(TemplateComponent::Header));
    if !header_parameters.is_empty() {
        components.push(json!({ "type": "header", "parameters": header_parameters }));
    }
    let body_parameters = texts(TemplateComponent::Body);
    if !body_parameters.is_empty() {
        components.push(json!({ "type": "body", "parameters": body_parameters }));
    }
    // Button parameters are quick-reply payloads, one component per button index.
    let mut buttons: Vec<(i32, &str)> = Vec::new();
    for parameter in &template.parameters {
        if parameter.component == TemplateComponent::Button {
            let index = parameter.button_index.ok_or_else(|| {
                Unsendable("a template button parameter needs its button_index".to_string())
            })?;
            buttons.push((index, parameter.text.as_str()));
        }
    }
    buttons.sort_by_key(|(index, _)| *index);
    for (index, payload) in buttons {
        components.push(json!({
            "type": "button",
            "sub_type": "quick_reply",
            "index": index.to_string(),
            "parameters": [ { "type": "payload", "payload": payload } ],
        }));
    }
    let mut object = json!({ "name": template.name, "language": { "code": template.language } });
    if !components.is_empty() {
        object["components"] = json!(components);
    }
    Ok(object)
}

fn whatsapp_interactive(interactive: &Interactive) -> Value {
    let as_list = match interactive.kind {
        InteractiveKind::Buttons => false,
        InteractiveKind::List => true,
        // Suggestions are an RCS idea: up to three become buttons, more a list.
        InteractiveKind::Suggestions => interactive.options.len() > 3,
    };
    let mut object = if as_list {
        let rows: Vec<Value> = interactive
            .options
            .iter()
            .map(|option| {
                let mut row = json!({ "id": option.id, "title": option.title });
                if let Some(description) = &option.description {
                    row["description"] = json!(description);
                }
                row
            })
            .collect();
        json!({
            "type": "list",
            "body": { "text": interactive.body },
            "action": {
                "button": interactive.button_label.clone().unwrap_or_else(|| "Options".to_string()),
                "sections": [ { "title": interactive.header.clone().unwrap_or_else(|| "Options".to_string()), "rows": rows } ],
            },
        })
    } else {
        let buttons: Vec<Value> = interactive
            .options
            .iter()
            .map(|option| json!({ "type": "reply", "reply": { "id": option.id, "title": option.title } }))
            .collect();
        json!({
            "type": "button",
            "body": { "text": interactive.body },
            "action": { "buttons": buttons },
        })
    };
    if let Some(header) = &interactive.header {
        object["header"] = json!({ "type": "text", "text": header });
    }
    if let Some(footer) = &interactive.footer {
        object["footer"] = json!({ "text": footer });
    }
    object
}

fn whatsapp_contacts(contacts: &Contacts) -> Value {
    let cards: Vec<Value> = contacts
        .cards
        .iter()
        .map(|card| {
            let mut name = json!({ "formatted_name": card.formatted_name });
            if let Some(given) = &card.given_name {
                name["first_name"] = json!(given);
            }
            if let Some(family) = &card.family_name {
                name["last_name"] = json!(family);
            }
            let phones: Vec<Value> = card
                .phones
                .iter()
                .map(|phone| {
                    let mut entry = json!({ "phone": phone.number });
                    if let Some(wa_id) = &phone.wa_id {
                        entry["wa_id"] = json!(wa_id);
                    }
                    if let Some(label) = &phone.label {
                        entry["type"] = json!(label);
                    }
                    entry
                })
                .collect();
            let emails: Vec<Value> = card
                .emails
                .iter()
                .map(|email| {
                    let mut entry = json!({ "email": email.address });
                    if let Some(label) = &email.label {
                        entry["type"] = json!(label);
                    }
                    entry
                })
                .collect();
            let mut object = json!({ "name": name, "phones": phones, "emails": emails });
            if let Some(organization) = &card.organization {
                object["org"] = json!({ "company": organization });
            }
            object
        })
        .collect();
    json!(cards)
}

/// The WhatsApp Cloud API body for `command`.
pub fn whatsapp_body(command: &OutboundCommand) -> Result<Value, Unsendable> {
    let (kind, payload) = match &command.content {
        Content::Text(text) => (
            "text",
            json!({ "body": text.body, "preview_url": text.preview_url }),
        ),
        Content::Media(media) => (media_kind(media.kind), whatsapp_media(media)?),
        Content::Location(location) => {
            let mut object =
                json!({ "latitude": location.latitude, "longitude": location.longitude });
            if let Some(name) = &location.name {
                object["name"] = json!(name);
            }
            if let Some(address) = &location.address {
                object["address"] = json!(address);
            }
            ("location", object)
        }
        Content::Contacts(contacts) => ("contacts", whatsapp_contacts(contacts)),
        Content::Reaction(reaction) => (
            "reaction",
            json!({ "message_id": reaction.message_id, "emoji": reaction.emoji.clone().unwrap_or_default() }),
        ),
        Content::Template(template) => ("template", whatsapp_template(template)?),
        Content::Interactive(interactive) => ("interactive", whatsapp_interactive(interactive)),
        Content::InteractiveReply(_) => {
            return Err(Unsendable(
                "an interactive reply is what a customer sends; a business cannot send one"
                    .to_string(),
            ))
        }
        Content::Unsupported(unsupported) => {
            return Err(Unsendable(format!(
                "content of provider type {:?} is not modelled and cannot be sent",
                unsupported.provider_type
            )))
        }
    };
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": command.to.trim_start_matches('+'),
        "type": kind,
    });
    body[kind] = payload;
    if let Some(reply_to) = &command.reply_to {
        body["context"] = json!({ "message_id": reply_to });
    }
    if let Some(callback_data) = &command.callback_data {
        body["biz_opaque_callback_data"] = json!(callback_data);
    }
    Ok(body)
}

/// The RBM AgentMessage for `command`.
pub fn rbm_body(command: &OutboundCommand) -> Result<Value, Unsendable> {
    let content = match &command.content {
        Content::Text(text) => json!({ "text": text.body }),
        Content::Media(media) => {
            match &media.link {
                Some(link) => json!({ "contentInfo": { "fileUrl": link, "forceRefresh": false } }),
                None => return Err(Unsendable(
                    "RCS sends media by URL only; this media has a WhatsApp media id but no link"
                        .to_string(),
                )),
            }
        }
        Content::Interactive(interactive) => {
            let mut text = interactive.body.clone();
            if let Some(header) = &interactive.header {
                text = format!("{header}\n\n{text}");
            }
            if let Some(footer) = &interactive.footer {
                text = format!("{text}\n\n{footer}");
            }
            let suggestions: Vec<Value> = interactive
                .options
                .iter()
                .map(|option| json!({ "reply": { "text": option.title, "postbackData": option.id } }))
                .collect();
            if suggestions.len() > 11 {
                return Err(Unsendable(format!(
                    "RCS allows at most 11 suggestions, this message has {}",
                    suggestions.len()
                )));
            }
            json!({ "text": text, "suggestions": suggestions })
        }
        Content::Location(location) => {
            let label = location
                .name
                .clone()
                .unwrap_or_else(|| "Location".to_string());
            let text = match &location.address {
                Some(address) => format!("{label}\n{address}"),
                None => label.clone(),
            };
            json!({
                "text": text,
                "suggestions": [ { "action": {
                    "text": "View location",
                    "postbackData": "view_location",
                    "viewLocationAction": {
                        "latLong": { "latitude": location.latitude, "longitude": location.longitude },
                        "label": label,
                    },
                } } ],
            })
        }
        Content::Template(_) => {
            return Err(Unsendable(
                "RCS has no message templates; send text or interactive content on RCS".to_string(),
            ))
        }
        Content::Reaction(_) | Content::Contacts(_) => {
            return Err(Unsendable(
                "reactions and contact cards cannot be sent over RCS Business Messaging"
                    .to_string(),
            ))
        }
        Content::InteractiveReply(_) => {
            return Err(Unsendable(
                "an interactive reply is what a customer sends; a business cannot send one"
                    .to_string(),
            ))
        }
        Content::Unsupported(unsupported) => {
            return Err(Unsendable(format!(
                "content of provider type {:?} is not modelled and cannot be sent",
                unsupported.provider_type
            )))
        }
    };
    Ok(json!({ "contentMessage": content }))
}

/// RBM `messageId` of a command: a UUID derived from the command id, so every attempt, by any
/// instance, after any crash, uses the same id and RBM delivers the message at most once.
pub fn rbm_message_id(command_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("caas-sender:{command_id}").as_bytes(),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_events::model::{
        Channel, InteractiveOption, Location, Origin, TemplateParameter, Text,
    };

    fn command(content: Content) -> OutboundCommand {
        OutboundCommand {
            event_id: "e".into(),
            tenant_id: "demo".into(),
            conversation_key: "demo:whatsapp:4915112345678".into(),
            channel: Channel::Whatsapp,
            occurred_at: 0,
            recorded_at: 0,
            source: "test".into(),
            trace_parent: None,
            command_id: "c-1".into(),
            to: "+4915112345678".into(),
            content,
            origin: Origin::Bot,
            campaign_id: None,
            reply_to: Some("wamid.Q".into()),
            operator_id: None,
            business_id: None,
            callback_data: Some("cb".into()),
        }
    }

    fn options(count: usize) -> Vec<InteractiveOption> {
        (0..count)
            .map(|index| InteractiveOption {
                id: format!("o{index}"),
                title: format!("Option {index}"),
                description: None,
            })
            .collect()
    }

    fn interactive(kind: InteractiveKind, count: usize) -> Content {
        Content::Interactive(Interactive {
            kind,
            body: "Pick one".into(),
            header: Some("Menu".into()),
            footer: None,
            button_label: None,
            options: options(count),
        })
    }

    #[test]
    fn text_carries_reply_context_and_callback_data() {
        let body = whatsapp_body(&command(Content::Text(Text {
            body: "hi".into(),
            preview_url: false,
        })))
        .unwrap();
        assert_eq!(body["to"], json!("4915112345678"));
        assert_eq!(body["type"], json!("text"));
        assert_eq!(body["text"]["body"], json!("hi"));
        assert_eq!(body["context"]["message_id"], json!("wamid.Q"));
        assert_eq!(body["biz_opaque_callback_data"], json!("cb"));
    }

    #[test]
    fn templates_group_parameters_by_component() {
        let template = Template {
            name: "order_update".into(),
            language: "de".into(),
            parameters: vec![
                TemplateParameter {
                    component: TemplateComponent::Body,
                    button_index: None,
                    text: "Kim".into(),
                },
                TemplateParameter {
                    component: TemplateComponent::Button,
                    button_index: Some(1),
                    text: "track".into(),
                },
                TemplateParameter {
                    component: TemplateComponent::Body,
                    button_index: None,
                    text: "42".into(),
                },
            ],
            header_media: None,
        };
        let body = whatsapp_body(&command(Content::Template(template))).unwrap();
        let components = body["template"]["components"].as_array().unwrap();
        assert_eq!(body["template"]["language"]["code"], json!("de"));
        assert_eq!(components[0]["parameters"].as_array().unwrap().len(), 2);
        assert_eq!(components[1]["index"], json!("1"));
        assert_eq!(components[1]["parameters"][0]["payload"], json!("track"));
    }

    #[test]
    fn interactive_becomes_buttons_or_a_list() {
        let buttons = whatsapp_body(&command(interactive(InteractiveKind::Buttons, 3))).unwrap();
        assert_eq!(buttons["interactive"]["type"], json!("button"));
        assert_eq!(
            buttons["interactive"]["action"]["buttons"][2]["reply"]["id"],
            json!("o2")
        );
        assert_eq!(buttons["interactive"]["header"]["text"], json!("Menu"));
        let list = whatsapp_body(&command(interactive(InteractiveKind::Suggestions, 5))).unwrap();
        assert_eq!(list["interactive"]["type"], json!("list"));
        assert_eq!(
            list["interactive"]["action"]["sections"][0]["rows"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
    }

    #[test]
    fn rbm_gets_suggestions_and_refuses_templates() {
        let body = rbm_body(&command(interactive(InteractiveKind::Buttons, 2))).unwrap();
        assert_eq!(
            body["contentMessage"]["suggestions"][1]["reply"]["postbackData"],
            json!("o1")
        );
        assert!(body["contentMessage"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Menu"));
        let template = Content::Template(Template {
            name: "t".into(),
            language: "en".into(),
            parameters: vec![],
            header_media: None,
        });
        assert!(rbm_body(&command(template))
            .unwrap_err()
            .0
            .contains("templates"));
        let location = Content::Location(Location {
            latitude: 52.5,
            longitude: 13.4,
            name: Some("Shop".into()),
            address: None,
        });
        let body = rbm_body(&command(location)).unwrap();
        assert_eq!(
            body["contentMessage"]["suggestions"][0]["action"]["viewLocationAction"]["latLong"]
                ["latitude"],
            json!(52.5)
        );
    }

    #[test]
    fn media_needs_a_locator_and_rcs_needs_a_link() {
        let media = Media {
            kind: MediaKind::Image,
            id: Some("media-1".into()),
            link: None,
            mime_type: None,
            caption: Some("look".into()),
            filename: None,
            sha256: None,
            voice: false,
            size_bytes: None,
        };
        let body = whatsapp_body(&command(Content::Media(media.clone()))).unwrap();
        assert_eq!(body["image"]["id"], json!("media-1"));
        assert_eq!(body["image"]["caption"], json!("look"));
        assert!(rbm_body(&command(Content::Media(media))).is_err());
    }

    #[test]
    fn rbm_message_ids_are_stable_uuids_per_command() {
        assert_eq!(rbm_message_id("c-1"), rbm_message_id("c-1"));
        assert_ne!(rbm_message_id("c-1"), rbm_message_id("c-2"));
        assert!(uuid::Uuid::parse_str(&rbm_message_id("c-1")).is_ok());
    }
}
