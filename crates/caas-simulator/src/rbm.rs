//! The RBM `agentMessages.create` endpoint as a sender sees it: validation of
//! `POST /v1/phones/{msisdn}/agentMessages?messageId=&agentId=`, the echo of the created
//! AgentMessage with its `name`, and Google's error shape
//! `{"error":{"code","message","status"}}`. Pure: no I/O.
//!
//! Limits follow Google's reference: text up to 3072 characters, at most 11 suggestions, a
//! suggestion's text up to 25 characters and postback data up to 2048; exactly one of `text`,
//! `richCard`, `contentInfo` and `uploadedRbmFile`. A `messageId` the agent already used is
//! answered 409 ALREADY_EXISTS and not delivered again (Google documents that it ignores a
//! repeated id; the exact answer code is an inference).

use serde_json::{json, Value};

/// A Google API error with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbmError {
    /// The HTTP status, also the `code` field.
    pub http_status: u16,
    /// The canonical status, e.g. `INVALID_ARGUMENT`.
    pub status: &'static str,
    /// What was wrong.
    pub message: String,
}

impl RbmError {
    /// 400 INVALID_ARGUMENT.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            http_status: 400,
            status: "INVALID_ARGUMENT",
            message: message.into(),
        }
    }

    /// 401 UNAUTHENTICATED.
    pub fn unauthenticated() -> Self {
        Self {
            http_status: 401,
            status: "UNAUTHENTICATED",
            message: "Request is missing required authentication credential. Expected OAuth 2 \
                      access token (Authorization: Bearer ...)."
                .to_string(),
        }
    }

    /// 404 NOT_FOUND: the user is not reachable by RCS.
    pub fn not_found() -> Self {
        Self {
            http_status: 404,
            status: "NOT_FOUND",
            message: "Requested entity was not found.".to_string(),
        }
    }

    /// 409 ALREADY_EXISTS: this `messageId` was used before.
    pub fn already_exists() -> Self {
        Self {
            http_status: 409,
            status: "ALREADY_EXISTS",
            message: "Requested entity already exists".to_string(),
        }
    }

    /// 429 RESOURCE_EXHAUSTED.
    pub fn rate_limited() -> Self {
        Self {
            http_status: 429,
            status: "RESOURCE_EXHAUSTED",
            message: "Quota exceeded for quota metric 'Agent messages' (simulated).".to_string(),
        }
    }

    /// 500 INTERNAL or 503 UNAVAILABLE.
    pub fn server_error(unavailable: bool) -> Self {
        if unavailable {
            Self {
                http_status: 503,
                status: "UNAVAILABLE",
                message: "The service is currently unavailable (simulated).".to_string(),
            }
        } else {
            Self {
                http_status: 500,
                status: "INTERNAL",
                message: "Internal error encountered (simulated).".to_string(),
            }
        }
    }

    /// The JSON body Google sends.
    pub fn body(&self) -> Value {
        json!({ "error": { "code": self.http_status, "message": self.message, "status": self.status } })
    }
}

/// A send that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSend {
    /// The user's number, E.164 with `+`.
    pub msisdn: String,
    /// Our id of the message (the idempotency key).
    pub message_id: String,
    /// The agent.
    pub agent_id: String,
}

/// Validate the path number, the query parameters and the AgentMessage body.
pub fn validate(
    msisdn: &str,
    message_id: Option<&str>,
    agent_id: Option<&str>,
    body: &Value,
) -> Result<ValidSend, RbmError> {
    let digits = msisdn.strip_prefix('+').ok_or_else(|| {
        RbmError::invalid(format!(
            "phones/{msisdn}: the phone number must be E.164 with a leading +"
        ))
    })?;
    if digits.len() < 8 || digits.len() > 15 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(RbmError::invalid(format!(
            "phones/{msisdn}: the phone number must be + and 8 to 15 digits"
        )));
    }
    let message_id = message_id
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| RbmError::invalid("the messageId query parameter is required"))?;
    let agent_id = agent_id
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| RbmError::invalid("the agentId query parameter is required"))?;
    let content = body
        .get("contentMessage")
        .filter(|content| content.is_object())
        .ok_or_else(|| RbmError::invalid("contentMessage is required"))?;
    let kinds: Vec<&str> = ["text", "richCard", "contentInfo", "uploadedRbmFile"]
        .into_iter()
        .filter(|kind| content.get(kind).is_some())
        .collect();
    if kinds.len() != 1 {
        return Err(RbmError::invalid(format!(
            "contentMessage needs exactly one of text, richCard, contentInfo, uploadedRbmFile; got {kinds:?}"
        )));
    }
    match kinds[0] {
        "text" => {
            let text = content["text"]
                .as_str()
                .filter(|text| !text.is_empty())
                .ok_or_else(|| {
                    RbmError::invalid("contentMessage.text must be a non-empty string")
                })?;
            let length = text.chars().count();
            if length > 3072 {
                return Err(RbmError::invalid(format!(
                    "contentMessage.text is limited to 3072 characters, got {length}"
                )));
            }
        }
        "contentInfo" => {
            let url = content["contentInfo"]["fileUrl"]
                .as_str()
                .unwrap_or_default();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(RbmError::invalid(
                    "contentMessage.contentInfo.fileUrl must be an http(s) URL",
                ));
            }
        }
        _ => {}
    }
    if let Some(suggestions) = content.get("suggestions") {
        let suggestions = suggestions
            .as_array()
            .ok_or_else(|| RbmError::invalid("contentMessage.suggestions must be an array"))?;
        if suggestions.len() > 11 {
            return Err(RbmError::invalid(format!(
                "at most 11 suggestions are allowed, got {}",
                suggestions.len()
            )));
        }
        for (index, suggestion) in suggestions.iter().enumerate() {
            let path = format!("contentMessage.suggestions[{index}]");
            let inner = match (suggestion.get("reply"), suggestion.get("action")) {
                (Some(reply), None) => reply,
                (None, Some(action)) => action,
                _ => {
                    return Err(RbmError::invalid(format!(
                        "{path} needs exactly one of reply and action"
                    )))
                }
            };
            let text = inner["text"].as_str().unwrap_or_default();
            let length = text.chars().count();
            if length == 0 || length > 25 {
                return Err(RbmError::invalid(format!(
                    "{path}.text must have 1 to 25 characters, got {length}"
                )));
            }
            let postback = inner["postbackData"].as_str().unwrap_or_default();
            if postback.is_empty() || postback.len() > 2048 {
                return Err(RbmError::invalid(format!(
                    "{path}.postbackData must have 1 to 2048 characters"
                )));
            }
        }
    }
    Ok(ValidSend {
        msisdn: msisdn.to_string(),
        message_id: message_id.to_string(),
        agent_id: agent_id.to_string(),
    })
}

/// The created AgentMessage: the request echoed with `name` and `sendTime`.
pub fn accepted_body(send: &ValidSend, request: &Value, send_time: &str) -> Value {
    let mut echo = request.clone();
    echo["name"] = json!(format!(
        "phones/{}/agentMessages/{}",
        send.msisdn, send.message_id
    ));
    echo["sendTime"] = json!(send_time);
    echo
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str) -> Value {
        json!({"contentMessage":{"text":body}})
    }

    #[test]
    fn a_valid_text_is_echoed_with_its_name() {
        let send = validate(
            "+4915112345678",
            Some("m-1"),
            Some("demo-agent"),
            &text("hi"),
        )
        .unwrap();
        let echo = accepted_body(&send, &text("hi"), "2025-01-01T00:00:00.000Z");
        assert_eq!(
            echo["name"],
            json!("phones/+4915112345678/agentMessages/m-1")
        );
        assert_eq!(echo["contentMessage"]["text"], json!("hi"));
    }

    #[test]
    fn invalid_requests_say_why() {
        let cases = [
            (
                "4915112345678",
                Some("m"),
                Some("a"),
                text("x"),
                "leading +",
            ),
            ("+49151", Some("m"), Some("a"), text("x"), "8 to 15 digits"),
            ("+4915112345678", None, Some("a"), text("x"), "messageId"),
            ("+4915112345678", Some("m"), None, text("x"), "agentId"),
            (
                "+4915112345678",
                Some("m"),
                Some("a"),
                json!({}),
                "contentMessage is required",
            ),
            (
                "+4915112345678",
                Some("m"),
                Some("a"),
                json!({"contentMessage":{"text":"x","richCard":{}}}),
                "exactly one",
            ),
            (
                "+4915112345678",
                Some("m"),
                Some("a"),
                text(&"x".repeat(3073)),
                "3072",
            ),
            (
                "+4915112345678",
                Some("m"),
                Some("a"),
                json!({"contentMessage":{"text":"x","suggestions":[{"reply":{"text":"this text is far too long for a chip","postbackData":"p"}}]}}),
                "1 to 25",
            ),
        ];
        for (msisdn, message_id, agent_id, body, needle) in cases {
            let error = validate(msisdn, message_id, agent_id, &body).unwrap_err();
            assert_eq!(error.http_status, 400);
            assert!(error.message.contains(needle), "{needle}: {error:?}");
            assert_eq!(error.body()["error"]["status"], json!("INVALID_ARGUMENT"));
        }
    }
}
