//! The WhatsApp Cloud API send endpoint, as far as a sender can tell: request validation and
//! the response and error shapes of `POST /{version}/{phone_number_id}/messages`. Pure: no I/O.
//!
//! Limits follow Meta's reference: text up to 4096 characters, 1–3 reply buttons with titles
//! up to 20 characters and unique ids, lists with a button label up to 20 characters, 1–10
//! sections and 1–10 rows in all (row titles up to 24, descriptions up to 72), media by exactly
//! one of `id` and `link`, captions up to 1024.

use base64::Engine as _;
use serde_json::{json, Value};

/// A Graph API error answer: `{"error":{"message","type","code","error_subcode","error_data",
/// "fbtrace_id"}}` with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    /// The HTTP status.
    pub http_status: u16,
    /// Graph error code, e.g. 131009.
    pub code: u32,
    /// Graph error subcode, when Meta sends one.
    pub subcode: Option<u32>,
    /// Short message, e.g. `(#131009) Parameter value is not valid`.
    pub message: String,
    /// Graph error type, e.g. `OAuthException`.
    pub kind: &'static str,
    /// `error_data.details`: what exactly was wrong.
    pub details: String,
}

impl GraphError {
    fn new(http_status: u16, code: u32, title: &str, details: impl Into<String>) -> Self {
        Self {
            http_status,
            code,
            subcode: None,
            message: format!("(#{code}) {title}"),
            kind: "OAuthException",
            details: details.into(),
        }
    }

    /// A required parameter is missing (131008).
    pub fn missing(details: impl Into<String>) -> Self {
        Self::new(400, 131_008, "Required parameter is missing", details)
    }

    /// A parameter has a value the API does not accept (131009).
    pub fn invalid(details: impl Into<String>) -> Self {
        Self::new(400, 131_009, "Parameter value is not valid", details)
    }

    /// The body is not JSON or not an object (100).
    pub fn bad_request(details: impl Into<String>) -> Self {
        Self::new(400, 100, "Invalid parameter", details)
    }

    /// No or an empty Bearer token (190).
    pub fn unauthorized() -> Self {
        let mut error = Self::new(
            401,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            "send `Authorization: Bearer <access token>`",
        );
        error.message = "Invalid OAuth access token - Cannot parse access token".to_string();
        error
    }

    /// Throughput reached (HTTP 429, 130429).
    pub fn rate_limited() -> Self {
        Self::new(
            429,
            130_429,
            "Rate limit hit",
            "Cloud API message throughput has been reached.",
        )
    }

    /// An unknown server error (HTTP 500, code 1) or a temporary outage (HTTP 503, code 2).
    pub fn server_error(unavailable: bool) -> Self {
        if unavailable {
            let mut error = Self::new(
                503,
                2,
                "Service temporarily unavailable",
                "simulated outage; try again later",
            );
            error.kind = "OAuthException";
            error
        } else {
            Self::new(
                500,
                1,
                "An unknown error occurred",
                "simulated server error; try again later",
            )
        }
    }

    /// The JSON body Meta sends.
    pub fn body(&self) -> Value {
        let mut error = json!({
            "message": self.message,
            "type": self.kind,
            "code": self.code,
            "error_data": { "messaging_product": "whatsapp", "details": self.details },
            "fbtrace_id": fbtrace_id(),
        });
        if let Some(subcode) = self.subcode {
            error["error_subcode"] = json!(subcode);
        }
        json!({ "error": error })
    }
}

fn fbtrace_id() -> String {
    let bytes: [u8; 12] = std::array::from_fn(|_| fastrand::u8(..));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A send request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSend {
    /// The recipient as given (`to`).
    pub to: String,
    /// The recipient's WhatsApp id (digits only).
    pub wa_id: String,
    /// The message type (`text`, `template`, `interactive`, ...).
    pub kind: String,
    /// `biz_opaque_callback_data`, echoed on statuses.
    pub callback_data: Option<String>,
}

/// Validate a send request body.
pub fn validate(body: &Value) -> Result<ValidSend, GraphError> {
    let object = body
        .as_object()
        .ok_or_else(|| GraphError::bad_request("the request body must be a JSON object"))?;
    match object.get("messaging_product").and_then(Value::as_str) {
        Some("whatsapp") => {}
        Some(other) => {
            return Err(GraphError::invalid(format!(
                "messaging_product must be \"whatsapp\", got {other:?}"
            )))
        }
        None => return Err(GraphError::missing("messaging_product is required")),
    }
    if let Some(recipient_type) = object.get("recipient_type") {
        if recipient_type.as_str() != Some("individual") {
            return Err(GraphError::invalid("recipient_type must be \"individual\""));
        }
    }
    let to = required_str(body, "to")?;
    let wa_id: String = to.trim_start_matches('+').to_string();
    if wa_id.len() < 6 || wa_id.len() > 15 || !wa_id.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(GraphError::invalid(format!(
            "to must be a phone number of 6 to 15 digits, got {to:?}"
        )));
    }
    let kind = match object.get("type") {
        None => "text".to_string(),
        Some(kind) => kind
            .as_str()
            .ok_or_else(|| GraphError::invalid("type must be a string"))?
            .to_string(),
    };
    let payload = object
        .get(kind.as_str())
        .ok_or_else(|| GraphError::missing(format!("a {kind} message needs a `{kind}` object")))?;
    match kind.as_str() {
        "text" => validate_text(payload)?,
        "template" => validate_template(payload)?,
        "interactive" => validate_interactive(payload)?,
        "image" | "audio" | "video" | "document" | "sticker" => validate_media(&kind, payload)?,
        "location" => validate_location(payload)?,
        "reaction" => {
            required_str(payload, "message_id").map_err(|error| prefix(error, "reaction."))?;
            if !payload.get("emoji").is_some_and(Value::is_string) {
                return Err(GraphError::missing(
                    "reaction.emoji is required (\"\" removes)",
                ));
            }
        }
        "contacts" => {
            let cards = payload
                .as_array()
                .filter(|cards| !cards.is_empty())
                .ok_or_else(|| GraphError::invalid("contacts must be a non-empty array"))?;
            for (index, card) in cards.iter().enumerate() {
                if card
                    .pointer("/name/formatted_name")
                    .and_then(Value::as_str)
                    .is_none()
                {
                    return Err(GraphError::missing(format!(
                        "contacts[{index}].name.formatted_name is required"
                    )));
                }
            }
        }
        other => {
            return Err(GraphError::invalid(format!(
                "type {other:?} is not one of text, template, interactive, image, audio, video, \
                 document, sticker, location, reaction, contacts"
            )))
        }
    }
    if let Some(context) = object.get("context") {
        required_str(context, "message_id").map_err(|error| prefix(error, "context."))?;
    }
    let callback_data = object
        .get("biz_opaque_callback_data")
        .and_then(Value::as_str)
        .map(str::to_string);
    if callback_data.as_ref().is_some_and(|data| data.len() > 512) {
        return Err(GraphError::invalid(
            "biz_opaque_callback_data is limited to 512 characters",
        ));
    }
    Ok(ValidSend {
        to: to.to_string(),
        wa_id,
        kind,
        callback_data,
    })
}

fn prefix(mut error: GraphError, path: &str) -> GraphError {
    error.details = format!("{path}{}", error.details);
    error
}

fn required_str<'a>(value: &'a Value, field: &str) -> Result<&'a str, GraphError> {
    match value.get(field) {
        None | Some(Value::Null) => Err(GraphError::missing(format!("{field} is required"))),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text),
        Some(_) => Err(GraphError::invalid(format!(
            "{field} must be a non-empty string"
        ))),
    }
}

fn check_length(path: &str, text: &str, max: usize) -> Result<(), GraphError> {
    let length = text.chars().count();
    if length == 0 || length > max {
        return Err(GraphError::invalid(format!(
            "{path} must have 1 to {max} characters, got {length}"
        )));
    }
    Ok(())
}

fn validate_text(text: &Value) -> Result<(), GraphError> {
    let body = required_str(text, "body").map_err(|error| prefix(error, "text."))?;
    check_length("text.body", body, 4096)?;
    if text
        .get("preview_url")
        .is_some_and(|preview| !preview.is_boolean())
    {
        return Err(GraphError::invalid("text.preview_url must be a boolean"));
    }
    Ok(())
}

fn validate_template(template: &Value) -> Result<(), GraphError> {
    required_str(template, "name").map_err(|error| prefix(error, "template."))?;
    let language = template
        .get("language")
        .ok_or_else(|| GraphError::missing("template.language is required"))?;
    required_str(language, "code").map_err(|error| prefix(error, "template.language."))?;
    if let Some(components) = template.get("components") {
        let components = components
            .as_array()
            .ok_or_else(|| GraphError::invalid("template.components must be an array"))?;
        for (index, component) in components.iter().enumerate() {
            let kind = required_str(component, "type")
                .map_err(|error| prefix(error, &format!("template.components[{index}].")))?;
            match kind {
                "header" | "body" => {}
                "button" => {
                    required_str(component, "sub_type").map_err(|error| {
                        prefix(error, &format!("template.components[{index}]."))
                    })?;
                    if component.get("index").is_none() {
                        return Err(GraphError::missing(format!(
                            "template.components[{index}].index is required for a button"
                        )));
                    }
                }
                other => {
                    return Err(GraphError::invalid(format!(
                        "template.components[{index}].type {other:?} is not header, body or button"
                    )))
                }
            }
            if let Some(parameters) = component.get("parameters") {
                if !parameters.is_array() {
                    return Err(GraphError::invalid(format!(
                        "template.components[{index}].parameters must be an array"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn validate_interactive(interactive: &Value) -> Result<(), GraphError> {
    let kind = required_str(interactive, "type").map_err(|error| prefix(error, "interactive."))?;
    let body = interactive
        .get("body")
        .ok_or_else(|| GraphError::missing("interactive.body is required"))?;
    let body_text =
        required_str(body, "text").map_err(|error| prefix(error, "interactive.body."))?;
    check_length("interactive.body.text", body_text, 1024)?;
    if let Some(header) = interactive.get("header") {
        if header.get("type").and_then(Value::as_str) == Some("text") {
            let text = required_str(header, "text")
                .map_err(|error| prefix(error, "interactive.header."))?;
            check_length("interactive.header.text", text, 60)?;
        }
    }
    if let Some(footer) = interactive.get("footer") {
        let text =
            required_str(footer, "text").map_err(|error| prefix(error, "interactive.footer."))?;
        check_length("interactive.footer.text", text, 60)?;
    }
    let action = interactive
        .get("action")
        .ok_or_else(|| GraphError::missing("interactive.action is required"))?;
    match kind {
        "button" => {
            let buttons = action
                .get("buttons")
                .and_then(Value::as_array)
                .ok_or_else(|| GraphError::missing("interactive.action.buttons is required"))?;
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(GraphError::invalid(format!(
                    "interactive.action.buttons must have 1 to 3 buttons, got {}",
                    buttons.len()
                )));
            }
            let mut ids = std::collections::HashSet::new();
            for (index, button) in buttons.iter().enumerate() {
                let path = format!("interactive.action.buttons[{index}]");
                if button.get("type").and_then(Value::as_str) != Some("reply") {
                    return Err(GraphError::invalid(format!(
                        "{path}.type must be \"reply\""
                    )));
                }
                let reply = button
                    .get("reply")
                    .ok_or_else(|| GraphError::missing(format!("{path}.reply is required")))?;
                let id = required_str(reply, "id")
                    .map_err(|error| prefix(error, &format!("{path}.reply.")))?;
                check_length(&format!("{path}.reply.id"), id, 256)?;
                let title = required_str(reply, "title")
                    .map_err(|error| prefix(error, &format!("{path}.reply.")))?;
                check_length(&format!("{path}.reply.title"), title, 20)?;
                if !ids.insert(id.to_string()) {
                    return Err(GraphError::invalid(format!(
                        "{path}.reply.id {id:?} is used twice; button ids must be unique"
                    )));
                }
            }
        }
        "list" => {
            let label = required_str(action, "button")
                .map_err(|error| prefix(error, "interactive.action."))?;
            check_length("interactive.action.button", label, 20)?;
            let sections = action
                .get("sections")
                .and_then(Value::as_array)
                .ok_or_else(|| GraphError::missing("interactive.action.sections is required"))?;
            if sections.is_empty() || sections.len() > 10 {
                return Err(GraphError::invalid(
                    "interactive.action.sections must have 1 to 10 sections",
                ));
            }
            let mut rows_in_all = 0;
            let mut ids = std::collections::HashSet::new();
            for (section_index, section) in sections.iter().enumerate() {
                let rows = section
                    .get("rows")
                    .and_then(Value::as_array)
                    .ok_or_else(|| {
                        GraphError::missing(format!(
                            "interactive.action.sections[{section_index}].rows is required"
                        ))
                    })?;
                for (row_index, row) in rows.iter().enumerate() {
                    let path =
                        format!("interactive.action.sections[{section_index}].rows[{row_index}]");
                    let id = required_str(row, "id")
                        .map_err(|error| prefix(error, &format!("{path}.")))?;
                    check_length(&format!("{path}.id"), id, 200)?;
                    let title = required_str(row, "title")
                        .map_err(|error| prefix(error, &format!("{path}.")))?;
                    check_length(&format!("{path}.title"), title, 24)?;
                    if let Some(description) = row.get("description").and_then(Value::as_str) {
                        check_length(&format!("{path}.description"), description, 72)?;
                    }
                    if !ids.insert(id.to_string()) {
                        return Err(GraphError::invalid(format!(
                            "{path}.id {id:?} is used twice; row ids must be unique"
                        )));
                    }
                }
                rows_in_all += rows.len();
            }
            if rows_in_all == 0 || rows_in_all > 10 {
                return Err(GraphError::invalid(format!(
                    "a list must have 1 to 10 rows in all, got {rows_in_all}"
                )));
            }
        }
        other => {
            return Err(GraphError::invalid(format!(
                "interactive.type {other:?} is not supported by the simulator (button, list)"
            )))
        }
    }
    Ok(())
}

fn validate_media(kind: &str, media: &Value) -> Result<(), GraphError> {
    let has_id = media.get("id").is_some_and(Value::is_string);
    let has_link = media.get("link").is_some_and(Value::is_string);
    if has_id == has_link {
        return Err(GraphError::invalid(format!(
            "{kind} needs exactly one of id and link"
        )));
    }
    if let Some(link) = media.get("link").and_then(Value::as_str) {
        if !(link.starts_with("https://") || link.starts_with("http://")) {
            return Err(GraphError::invalid(format!(
                "{kind}.link must be an http(s) URL"
            )));
        }
    }
    if let Some(caption) = media.get("caption").and_then(Value::as_str) {
        if matches!(kind, "audio" | "sticker") {
            return Err(GraphError::invalid(format!("{kind} cannot have a caption")));
        }
        check_length(&format!("{kind}.caption"), caption, 1024)?;
    }
    Ok(())
}

fn validate_location(location: &Value) -> Result<(), GraphError> {
    for (field, limit) in [("latitude", 90.0), ("longitude", 180.0)] {
        let value = location
            .get(field)
            .and_then(Value::as_f64)
            .ok_or_else(|| GraphError::missing(format!("location.{field} must be a number")))?;
        if !(-limit..=limit).contains(&value) {
            return Err(GraphError::invalid(format!(
                "location.{field} must be between -{limit} and {limit}"
            )));
        }
    }
    Ok(())
}

/// A new WhatsApp message id: `wamid.` and base64 of random bytes, like Meta's.
pub fn new_message_id() -> String {
    let bytes: [u8; 24] = std::array::from_fn(|_| fastrand::u8(..));
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The success answer: `{"messaging_product":"whatsapp","contacts":[...],"messages":[{"id"}]}`.
pub fn accepted_body(send: &ValidSend, message_id: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "contacts": [ { "input": send.to, "wa_id": send.wa_id } ],
        "messages": [ { "id": message_id, "message_status": "accepted" } ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(to: &str, body: &str) -> Value {
        json!({"messaging_product":"whatsapp","to":to,"type":"text","text":{"body":body}})
    }

    #[test]
    fn a_text_message_is_accepted_with_meta_shapes() {
        let send = validate(&text("4915112345678", "hello")).unwrap();
        assert_eq!(send.wa_id, "4915112345678");
        let id = new_message_id();
        assert!(id.starts_with("wamid."));
        let body = accepted_body(&send, &id);
        assert_eq!(body["messages"][0]["id"], json!(id));
        assert_eq!(body["contacts"][0]["wa_id"], json!("4915112345678"));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            (json!([]), 100, "JSON object"),
            (json!({"to":"491511"}), 131_008, "messaging_product"),
            (
                json!({"messaging_product":"whatsapp","type":"text","text":{"body":"x"}}),
                131_008,
                "to is required",
            ),
            (text("12ab", "x"), 131_009, "6 to 15 digits"),
            (text("4915112345678", ""), 131_009, "text.body"),
            (text("4915112345678", &"x".repeat(4097)), 131_009, "4096"),
            (
                json!({"messaging_product":"whatsapp","to":"4915112345678","type":"image","image":{}}),
                131_009,
                "exactly one of id and link",
            ),
            (
                json!({"messaging_product":"whatsapp","to":"4915112345678","type":"fax","fax":{}}),
                131_009,
                "fax",
            ),
            (
                json!({"messaging_product":"whatsapp","to":"4915112345678","type":"template","template":{"name":"t"}}),
                131_008,
                "template.language",
            ),
        ];
        for (body, code, needle) in cases {
            let error = validate(&body).unwrap_err();
            assert_eq!(error.code, code, "{body}: {error:?}");
            assert!(error.details.contains(needle), "{body}: {error:?}");
            assert_eq!(error.body()["error"]["code"], json!(code));
            assert!(error.body()["error"]["fbtrace_id"].is_string());
        }
    }

    #[test]
    fn interactive_limits_are_enforced() {
        let buttons = |count: usize, title: &str| {
            let buttons: Vec<Value> = (0..count)
                .map(|index| json!({"type":"reply","reply":{"id":format!("b{index}"),"title":title}}))
                .collect();
            json!({"messaging_product":"whatsapp","to":"4915112345678","type":"interactive",
                "interactive":{"type":"button","body":{"text":"Pick"},"action":{"buttons":buttons}}})
        };
        validate(&buttons(3, "ok")).unwrap();
        assert!(validate(&buttons(4, "ok"))
            .unwrap_err()
            .details
            .contains("1 to 3"));
        assert!(validate(&buttons(1, &"t".repeat(21)))
            .unwrap_err()
            .details
            .contains("title"));
        let rows: Vec<Value> = (0..11)
            .map(|index| json!({"id":format!("r{index}"),"title":"row"}))
            .collect();
        let list = json!({"messaging_product":"whatsapp","to":"4915112345678","type":"interactive",
            "interactive":{"type":"list","body":{"text":"Pick"},"action":{"button":"Menu","sections":[{"title":"s","rows":rows}]}}});
        assert!(validate(&list)
            .unwrap_err()
            .details
            .contains("1 to 10 rows"));
    }

    #[test]
    fn templates_and_media_with_links_pass() {
        validate(
            &json!({"messaging_product":"whatsapp","to":"4915112345678","type":"template",
            "template":{"name":"order_update","language":{"code":"en_US"},
            "components":[{"type":"body","parameters":[{"type":"text","text":"42"}]}]}}),
        )
        .unwrap();
        validate(
            &json!({"messaging_product":"whatsapp","to":"4915112345678","type":"document",
            "document":{"link":"https://example.com/a.pdf","filename":"a.pdf"},
            "context":{"message_id":"wamid.X"}}),
        )
        .unwrap();
    }

    #[test]
    fn rate_limit_and_server_errors_have_graph_codes() {
        assert_eq!(GraphError::rate_limited().http_status, 429);
        assert_eq!(GraphError::rate_limited().code, 130_429);
        assert_eq!(GraphError::server_error(true).http_status, 503);
        assert_eq!(GraphError::server_error(false).code, 1);
        assert_eq!(GraphError::unauthorized().code, 190);
    }
}
