//! What a provider's HTTP answer means for a send.
//!
//! | answer | WhatsApp | RBM |
//! |---|---|---|
//! | accepted | 2xx with `messages[0].id` | 2xx; 409 ALREADY_EXISTS (our `messageId` was delivered before) |
//! | rate limited | HTTP 429, codes 130429, 80007, 4 (number); 131056 (business–customer pair) | 429 RESOURCE_EXHAUSTED |
//! | transient | 5xx, codes 1, 2, 131000, 131016 | 5xx |
//! | permanent | any other 4xx, e.g. 131026 undeliverable, 131047 window closed, 100 / 131009 invalid | 400, 401, 403, 404 NOT_FOUND (not RCS-capable) |
//!
//! Codes in results read `whatsapp:<graph code>` or `rbm:<status>`.

use std::time::Duration;

use serde_json::Value;

/// An HTTP answer, copied at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
    /// The `Retry-After` header in seconds, when sent.
    pub retry_after: Option<Duration>,
}

/// What is limited when a provider says "too fast".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    /// The sending number as a whole.
    Number,
    /// This business number and this customer (WhatsApp 131056).
    Pair,
}

/// The meaning of one provider answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The provider has the message.
    Accepted {
        /// The provider's message id.
        provider_message_id: String,
    },
    /// Too fast: slow down and try again.
    RateLimited {
        /// What to slow down.
        scope: RateScope,
        /// Provider code.
        code: String,
        /// Provider message.
        reason: String,
        /// The provider's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Not sent; the same request may succeed later.
    Transient {
        /// Provider code.
        code: String,
        /// What happened.
        reason: String,
    },
    /// Refused for good: retrying the same request cannot help.
    Permanent {
        /// Provider code.
        code: String,
        /// The provider's explanation.
        reason: String,
        /// Whether sending the command again *later* may succeed (e.g. after fixing a token).
        retryable: bool,
    },
    /// The request may or may not have reached the provider (a timeout after it was sent).
    Unknown {
        /// What happened.
        reason: String,
    },
}

fn graph_error(body: &str) -> (Option<i64>, String) {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let error = &parsed["error"];
    let code = error["code"].as_i64();
    let mut reason = error["message"].as_str().unwrap_or_default().to_string();
    if let Some(details) = error["error_data"]["details"].as_str() {
        if !details.is_empty() {
            reason = if reason.is_empty() {
                details.to_string()
            } else {
                format!("{reason}: {details}")
            };
        }
    }
    if reason.is_empty() {
        reason = body.chars().take(300).collect();
    }
    (code, reason)
}

/// Classify a WhatsApp Cloud API answer.
pub fn whatsapp(answer: &HttpAnswer) -> Answer {
    if (200..300).contains(&answer.status) {
        let parsed: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        return match parsed["messages"][0]["id"].as_str() {
            Some(id) if !id.is_empty() => Answer::Accepted {
                provider_message_id: id.to_string(),
            },
            // A 2xx without an id: the message may exist, but we cannot track it.
            _ => Answer::Unknown {
                reason: format!(
                    "WhatsApp answered {} without a message id: {}",
                    answer.status,
                    answer.body.chars().take(300).collect::<String>()
                ),
            },
        };
    }
    let (code, reason) = graph_error(&answer.body);
    let code_text = match code {
        Some(code) => format!("whatsapp:{code}"),
        None => format!("whatsapp:http_{}", answer.status),
    };
    match code {
        Some(131_056) => {
            return Answer::RateLimited {
                scope: RateScope::Pair,
                code: code_text,
                reason,
                retry_after: answer.retry_after,
            }
        }
        Some(130_429 | 80_007 | 4) => {
            return Answer::RateLimited {
                scope: RateScope::Number,
                code: code_text,
                reason,
                retry_after: answer.retry_after,
            }
        }
        Some(1 | 2 | 131_000 | 131_016) => {
            return Answer::Transient {
                code: code_text,
                reason,
            }
        }
        _ => {}
    }
    match answer.status {
        429 => Answer::RateLimited {
            scope: RateScope::Number,
            code: code_text,
            reason,
            retry_after: answer.retry_after,
        },
        408 | 500..=599 => Answer::Transient { code: code_text, reason },
        401 | 403 => Answer::Permanent {
            code: code_text,
            reason: format!("the WhatsApp access token was refused ({reason}); check CAAS_SENDER_WHATSAPP_TOKENS"),
            retryable: true,
        },
        _ => Answer::Permanent {
            code: code_text,
            reason,
            retryable: false,
        },
    }
}

/// Classify an RBM answer to the send of `message_id`.
pub fn rbm(answer: &HttpAnswer, message_id: &str) -> Answer {
    if (200..300).contains(&answer.status) {
        return Answer::Accepted {
            provider_message_id: message_id.to_string(),
        };
    }
    let parsed: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    let status = parsed["error"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut reason = parsed["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if reason.is_empty() {
        reason = answer.body.chars().take(300).collect();
    }
    let code = if status.is_empty() {
        format!("rbm:http_{}", answer.status)
    } else {
        format!("rbm:{status}")
    };
    match answer.status {
        // Our messageId was used before: the message was accepted by an earlier attempt.
        409 => Answer::Accepted {
            provider_message_id: message_id.to_string(),
        },
        429 => Answer::RateLimited {
            scope: RateScope::Number,
            code,
            reason,
            retry_after: answer.retry_after,
        },
        408 | 500..=599 => Answer::Transient { code, reason },
        404 => Answer::Permanent {
            code,
            reason: format!("the customer cannot be reached by RCS ({reason})"),
            retryable: false,
        },
        401 | 403 => Answer::Permanent {
            code,
            reason: format!(
                "the RBM credentials were refused ({reason}); check CAAS_SENDER_RBM_TOKEN"
            ),
            retryable: true,
        },
        _ => Answer::Permanent {
            code,
            reason,
            retryable: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> HttpAnswer {
        HttpAnswer {
            status,
            body: body.to_string(),
            retry_after: None,
        }
    }

    fn graph(status: u16, code: i64) -> HttpAnswer {
        answer(
            status,
            &format!(
                r#"{{"error":{{"message":"(#{code}) x","type":"OAuthException","code":{code},"error_data":{{"details":"d"}},"fbtrace_id":"f"}}}}"#
            ),
        )
    }

    #[test]
    fn whatsapp_answers_are_classified() {
        assert_eq!(
            whatsapp(&answer(
                200,
                r#"{"messaging_product":"whatsapp","messages":[{"id":"wamid.1"}]}"#
            )),
            Answer::Accepted {
                provider_message_id: "wamid.1".into()
            }
        );
        assert!(matches!(
            whatsapp(&answer(200, "{}")),
            Answer::Unknown { .. }
        ));
        assert!(matches!(
            whatsapp(&graph(429, 130_429)),
            Answer::RateLimited {
                scope: RateScope::Number,
                ..
            }
        ));
        assert!(matches!(
            whatsapp(&graph(400, 131_056)),
            Answer::RateLimited {
                scope: RateScope::Pair,
                ..
            }
        ));
        assert!(matches!(
            whatsapp(&graph(400, 130_429)),
            Answer::RateLimited { .. }
        ));
        assert!(matches!(
            whatsapp(&answer(429, "")),
            Answer::RateLimited { .. }
        ));
        assert!(matches!(whatsapp(&graph(500, 1)), Answer::Transient { .. }));
        assert!(matches!(whatsapp(&graph(503, 2)), Answer::Transient { .. }));
        assert!(matches!(
            whatsapp(&answer(502, "<html>bad gateway</html>")),
            Answer::Transient { .. }
        ));
        match whatsapp(&graph(400, 131_026)) {
            Answer::Permanent {
                code,
                reason,
                retryable,
            } => {
                assert_eq!(code, "whatsapp:131026");
                assert_eq!(reason, "(#131026) x: d");
                assert!(!retryable);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            whatsapp(&graph(401, 190)),
            Answer::Permanent {
                retryable: true,
                ..
            }
        ));
    }

    #[test]
    fn rbm_answers_are_classified() {
        let error = |status: u16, name: &str| {
            answer(
                status,
                &format!(r#"{{"error":{{"code":{status},"message":"m","status":"{name}"}}}}"#),
            )
        };
        assert_eq!(
            rbm(&answer(200, "{}"), "m-1"),
            Answer::Accepted {
                provider_message_id: "m-1".into()
            }
        );
        assert_eq!(
            rbm(&error(409, "ALREADY_EXISTS"), "m-1"),
            Answer::Accepted {
                provider_message_id: "m-1".into()
            }
        );
        assert!(matches!(
            rbm(&error(429, "RESOURCE_EXHAUSTED"), "m"),
            Answer::RateLimited { .. }
        ));
        assert!(matches!(
            rbm(&error(503, "UNAVAILABLE"), "m"),
            Answer::Transient { .. }
        ));
        match rbm(&error(404, "NOT_FOUND"), "m") {
            Answer::Permanent { code, .. } => assert_eq!(code, "rbm:NOT_FOUND"),
            other => panic!("{other:?}"),
        }
    }
}
