//! Webhooks back to CAAS, shaped and signed like Meta's and Google's.
//!
//! - WhatsApp: the `whatsapp_business_account` envelope, `X-Hub-Signature-256:
//!   sha256=<hex HMAC-SHA256(app secret, body)>`. Like Meta, the body escapes non-ASCII
//!   characters (`ä` travels as `\u00e4`), so receivers must hash the bytes they got.
//! - RBM: a Pub/Sub push `{"message":{"data":<base64 JSON>,...},"subscription":...}`,
//!   `X-Goog-Signature: base64(HMAC-SHA512(client token, decoded data))`.
//!
//! The payload builders and signers are pure; [`Dispatcher`] posts with retries (Meta and
//! Google retry for days; the simulator a few times with backoff) and logs each delivery.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::clock::{now_millis, rfc3339_millis};
use crate::records::{Log, WebhookRecord};

/// The WhatsApp Business Account id the simulator reports in `entry[].id`.
pub const WABA_ID: &str = "102290129340398";

/// What a customer sends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerContent {
    /// A text message.
    Text(String),
    /// A tap on a reply button (WhatsApp `interactive.button_reply`, RCS suggestion).
    Button {
        /// The button's id (our `InteractiveOption::id`).
        id: String,
        /// Its visible title.
        title: String,
    },
    /// A choice from a list menu (WhatsApp `interactive.list_reply`, RCS suggestion).
    List {
        /// The row's id.
        id: String,
        /// Its visible title.
        title: String,
    },
}

/// The signatures Meta and Google put on webhooks, as ingest verifies them (one implementation).
pub use caas_ingest::signature::{rbm_signature, whatsapp_signature};

/// JSON text with every non-ASCII character escaped as `\uXXXX` (surrogate pairs above the
/// BMP), as Meta sends it. Valid because non-ASCII can only occur inside JSON strings.
pub fn to_ascii_json(value: &Value) -> Vec<u8> {
    let text = value.to_string();
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if character.is_ascii() {
            escaped.push(character);
        } else {
            let mut units = [0u16; 2];
            for unit in character.encode_utf16(&mut units) {
                escaped.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    escaped.into_bytes()
}

fn display_number(phone_number_id: &str) -> String {
    let tail: String = phone_number_id
        .chars()
        .rev()
        .take(7)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("1555{tail:0>7}")
}

fn whatsapp_envelope(phone_number_id: &str, value_fields: Value) -> Value {
    let mut value = json!({
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_number(phone_number_id),
            "phone_number_id": phone_number_id,
        },
    });
    if let (Some(target), Some(fields)) = (value.as_object_mut(), value_fields.as_object()) {
        target.extend(fields.clone());
    }
    json!({
        "object": "whatsapp_business_account",
        "entry": [ { "id": WABA_ID, "changes": [ { "field": "messages", "value": value } ] } ],
    })
}

/// A status of a message we were sent, as a complete webhook body.
pub fn whatsapp_status(
    phone_number_id: &str,
    recipient: &str,
    message_id: &str,
    status: &str,
    at_millis: i64,
    callback_data: Option<&str>,
) -> Value {
    let mut entry = json!({
        "id": message_id,
        "status": status,
        "timestamp": (at_millis / 1000).to_string(),
        "recipient_id": recipient.trim_start_matches('+'),
    });
    if status == "failed" {
        entry["errors"] = json!([{
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": { "details": "Message Undeliverable (simulated failing number)." },
        }]);
    } else {
        entry["conversation"] = json!({
            "id": format!("conv-{}", recipient.trim_start_matches('+')),
            "expiration_timestamp": ((at_millis / 1000) + 86_400).to_string(),
            "origin": { "type": "service" },
        });
        entry["pricing"] =
            json!({ "billable": true, "pricing_model": "PMP", "category": "service" });
    }
    if let Some(data) = callback_data {
        entry["biz_opaque_callback_data"] = json!(data);
    }
    whatsapp_envelope(phone_number_id, json!({ "statuses": [entry] }))
}

/// A customer's message, as a complete webhook body.
pub fn whatsapp_message(
    phone_number_id: &str,
    from: &str,
    name: &str,
    message_id: &str,
    at_millis: i64,
    content: &CustomerContent,
) -> Value {
    let from = from.trim_start_matches('+');
    let mut message = json!({
        "from": from,
        "id": message_id,
        "timestamp": (at_millis / 1000).to_string(),
    });
    match content {
        CustomerContent::Text(body) => {
            message["type"] = json!("text");
            message["text"] = json!({ "body": body });
        }
        CustomerContent::Button { id, title } => {
            message["type"] = json!("interactive");
            message["interactive"] =
                json!({ "type": "button_reply", "button_reply": { "id": id, "title": title } });
        }
        CustomerContent::List { id, title } => {
            message["type"] = json!("interactive");
            message["interactive"] =
                json!({ "type": "list_reply", "list_reply": { "id": id, "title": title } });
        }
    }
    whatsapp_envelope(
        phone_number_id,
        json!({
            "contacts": [ { "profile": { "name": name }, "wa_id": from } ],
            "messages": [ message ],
        }),
    )
}

fn e164(number: &str) -> String {
    format!("+{}", number.trim_start_matches('+'))
}

/// An RBM user event (`DELIVERED`, `READ`) about one of our messages: the decoded `data`.
pub fn rbm_event(
    agent_id: &str,
    msisdn: &str,
    event_type: &str,
    message_id: &str,
    at_millis: i64,
) -> Value {
    json!({
        "senderPhoneNumber": e164(msisdn),
        "eventType": event_type,
        "eventId": format!("Mx{}", uuid::Uuid::new_v4().simple()),
        "messageId": message_id,
        "sendTime": rfc3339_millis(at_millis),
        "agentId": agent_id,
    })
}

/// An RBM user message: the decoded `data`.
pub fn rbm_message(
    agent_id: &str,
    msisdn: &str,
    message_id: &str,
    at_millis: i64,
    content: &CustomerContent,
) -> Value {
    let mut data = json!({
        "senderPhoneNumber": e164(msisdn),
        "messageId": message_id,
        "sendTime": rfc3339_millis(at_millis),
        "agentId": agent_id,
    });
    match content {
        CustomerContent::Text(text) => data["text"] = json!(text),
        CustomerContent::Button { id, title } | CustomerContent::List { id, title } => {
            data["suggestionResponse"] =
                json!({ "postbackData": id, "text": title, "type": "REPLY" });
        }
    }
    data
}

/// The Pub/Sub push envelope around encoded `data`.
pub fn pubsub_envelope(agent_id: &str, data: &[u8], at_millis: i64) -> Value {
    json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "messageId": fastrand::u64(1_000_000_000_000..9_999_999_999_999).to_string(),
            "publishTime": rfc3339_millis(at_millis),
            "attributes": { "product": "RBM", "agent_id": agent_id },
        },
        "subscription": format!("projects/rbm-{agent_id}/subscriptions/rbm-agent-subscription"),
    })
}

/// Where webhooks go and how they are signed.
#[derive(Clone)]
pub struct Dispatcher {
    client: reqwest::Client,
    whatsapp_url: Option<String>,
    rcs_url: Option<String>,
    whatsapp_app_secret: caas_runtime::Secret,
    rbm_client_token: caas_runtime::Secret,
    retries: u32,
    log: Arc<Log<WebhookRecord>>,
    shutdown: CancellationToken,
}

/// The answer to one webhook delivery (after retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The last HTTP status; `None` when the receiver was unreachable.
    pub http_status: Option<u16>,
    /// How many attempts were made.
    pub attempts: u32,
}

impl Delivered {
    /// Whether the receiver answered 2xx.
    pub fn ok(&self) -> bool {
        self.http_status
            .is_some_and(|status| (200..300).contains(&status))
    }
}

/// What one webhook is about, for the log.
pub struct About<'a> {
    /// `status` or `message`.
    pub kind: &'a str,
    /// The message it concerns.
    pub provider_message_id: &'a str,
    /// The status, for status webhooks.
    pub status: Option<&'a str>,
}

impl Dispatcher {
    /// A dispatcher posting to the given URLs (`None`: that channel's webhooks are dropped).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        whatsapp_url: Option<String>,
        rcs_url: Option<String>,
        whatsapp_app_secret: caas_runtime::Secret,
        rbm_client_token: caas_runtime::Secret,
        retries: u32,
        log: Arc<Log<WebhookRecord>>,
        shutdown: CancellationToken,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a plain HTTP client builds");
        Self {
            client,
            whatsapp_url,
            rcs_url,
            whatsapp_app_secret,
            rbm_client_token,
            retries,
            log,
            shutdown,
        }
    }

    /// The token cancelled when the simulator stops; scheduled webhooks give up on it.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Post a WhatsApp webhook body, signed, with retries.
    pub async fn post_whatsapp(&self, body: &Value, about: About<'_>) -> Delivered {
        let Some(url) = &self.whatsapp_url else {
            return Delivered {
                http_status: None,
                attempts: 0,
            };
        };
        let bytes = to_ascii_json(body);
        let signature = whatsapp_signature(self.whatsapp_app_secret.expose().as_bytes(), &bytes);
        let delivered = self
            .post_with_retries(url, bytes, ("x-hub-signature-256", signature))
            .await;
        self.remember("whatsapp", about, &delivered);
        delivered
    }

    /// Post an RBM Pub/Sub push around `data`, signed over the decoded data, with retries.
    pub async fn post_rcs(&self, agent_id: &str, data: &Value, about: About<'_>) -> Delivered {
        let Some(url) = &self.rcs_url else {
            return Delivered {
                http_status: None,
                attempts: 0,
            };
        };
        let data_bytes = data.to_string().into_bytes();
        let signature = rbm_signature(self.rbm_client_token.expose().as_bytes(), &data_bytes);
        let envelope = pubsub_envelope(agent_id, &data_bytes, now_millis());
        let delivered = self
            .post_with_retries(
                url,
                envelope.to_string().into_bytes(),
                ("x-goog-signature", signature),
            )
            .await;
        self.remember("rcs", about, &delivered);
        delivered
    }

    fn remember(&self, channel: &str, about: About<'_>, delivered: &Delivered) {
        if !delivered.ok() {
            tracing::warn!(
                channel,
                kind = about.kind,
                http_status = ?delivered.http_status,
                attempts = delivered.attempts,
                "webhook not accepted by the receiver"
            );
        }
        self.log.push(WebhookRecord {
            sent_at: now_millis(),
            channel: channel.to_string(),
            kind: about.kind.to_string(),
            provider_message_id: about.provider_message_id.to_string(),
            status: about.status.map(str::to_string),
            http_status: delivered.http_status,
            attempts: delivered.attempts,
        });
    }

    async fn post_with_retries(
        &self,
        url: &str,
        body: Vec<u8>,
        signature: (&str, String),
    ) -> Delivered {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let response = self
                .client
                .post(url)
                .header("content-type", "application/json")
                .header(signature.0, &signature.1)
                .body(body.clone())
                .send()
                .await;
            let last_status = match response {
                Ok(response) => Some(response.status().as_u16()),
                Err(error) => {
                    tracing::debug!(url, error = %error, "webhook receiver unreachable");
                    None
                }
            };
            let delivered = Delivered {
                http_status: last_status,
                attempts,
            };
            if delivered.ok() || attempts > self.retries {
                return delivered;
            }
            // Like the providers: back off and try again (they go on for days).
            let delay = Duration::from_millis(300 * 2u64.pow(attempts.min(6) - 1));
            tokio::select! {
                _ = self.shutdown.cancelled() => return delivered,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_is_escaped_like_meta_does() {
        let bytes = to_ascii_json(&json!({"name": "Jürgen 😀"}));
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text, r#"{"name":"J\u00fcrgen \ud83d\ude00"}"#);
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back["name"], json!("Jürgen 😀"));
    }

    #[test]
    fn status_and_message_payloads_have_the_provider_shapes() {
        let status = whatsapp_status(
            "100000000000001",
            "4915112345678",
            "wamid.A",
            "delivered",
            1_739_321_100_000,
            Some("cb"),
        );
        let entry = &status["entry"][0]["changes"][0]["value"];
        assert_eq!(
            entry["metadata"]["phone_number_id"],
            json!("100000000000001")
        );
        assert_eq!(entry["statuses"][0]["status"], json!("delivered"));
        assert_eq!(entry["statuses"][0]["timestamp"], json!("1739321100"));
        assert_eq!(
            entry["statuses"][0]["biz_opaque_callback_data"],
            json!("cb")
        );
        let failed = whatsapp_status("1", "2", "wamid.B", "failed", 0, None);
        assert_eq!(
            failed["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]["code"],
            json!(131026)
        );
        let message = whatsapp_message(
            "1",
            "+4915112345678",
            "Kim",
            "wamid.C",
            0,
            &CustomerContent::Button {
                id: "talk".into(),
                title: "Talk".into(),
            },
        );
        let value = &message["entry"][0]["changes"][0]["value"];
        assert_eq!(value["messages"][0]["from"], json!("4915112345678"));
        assert_eq!(
            value["messages"][0]["interactive"]["button_reply"]["id"],
            json!("talk")
        );
        assert_eq!(value["contacts"][0]["wa_id"], json!("4915112345678"));
        let event = rbm_event("demo-agent", "4915112345678", "READ", "m-1", 0);
        assert_eq!(event["senderPhoneNumber"], json!("+4915112345678"));
        assert_eq!(event["messageId"], json!("m-1"));
        let reply = rbm_message(
            "demo-agent",
            "+49151",
            "m-2",
            0,
            &CustomerContent::List {
                id: "r".into(),
                title: "R".into(),
            },
        );
        assert_eq!(reply["suggestionResponse"]["postbackData"], json!("r"));
        let envelope = pubsub_envelope("demo-agent", b"{}", 0);
        assert_eq!(envelope["message"]["data"], json!("e30="));
    }
}
