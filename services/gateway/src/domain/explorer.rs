//! The event explorer's rules, without I/O: what an admin's search may ask for (validated
//! against the caller's tenant and bounded in time), the page cursor, and the one-line summary
//! of a stored event shown in the list and in the live tail.
//!
//! The search runs on the logger's `events` collection (see `crate::explorer`). It is always
//! scoped to the caller's tenant; a conversation filter must be a conversation of that tenant.
//! Free text is a case-insensitive substring match (an escaped regex) over the fields listed in
//! [`TEXT_FIELDS`]; a regex cannot use an index, so it only runs inside a bounded time range
//! (at most [`MAX_TEXT_RANGE_MS`]) that the `tenant_time` index narrows first.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::rooms::{self, KeyError};

/// The `type` values the logger stores.
pub const EVENT_TYPES: [&str; 10] = [
    "inbound_message",
    "inbound_status",
    "outbound_command",
    "outbound_result",
    "conversation_event",
    "presence_event",
    "presence_update",
    "campaign_command",
    "campaign_event",
    "customer_erased",
];

/// The time range when none is given: the last 24 hours.
pub const DEFAULT_RANGE_MS: i64 = 24 * 3600 * 1000;
/// The widest time range of a search without free text.
pub const MAX_RANGE_MS: i64 = 31 * 24 * 3600 * 1000;
/// The widest time range of a free-text search (the regex scans every event in it).
pub const MAX_TEXT_RANGE_MS: i64 = 7 * 24 * 3600 * 1000;
/// Page size when none is given, and the largest.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page.
pub const MAX_LIMIT: u32 = 200;
/// Longest free text.
pub const MAX_TEXT_CHARS: usize = 200;

/// The fields free text is looked for in: ids, keys, and the human-readable parts of every
/// event type's payload (message text, captions, button titles, names, statuses, reasons).
pub const TEXT_FIELDS: [&str; 27] = [
    "_id",
    "conversation_key",
    "payload.content.text.body",
    "payload.content.media.caption",
    "payload.content.media.filename",
    "payload.content.interactive_reply.id",
    "payload.content.interactive_reply.title",
    "payload.content.interactive.body",
    "payload.content.template.name",
    "payload.content.location.name",
    "payload.content.location.address",
    "payload.content.reaction.emoji",
    "payload.customer_display_name",
    "payload.customer_id",
    "payload.provider_message_id",
    "payload.command_id",
    "payload.campaign_id",
    "payload.operator_id",
    "payload.actor_operator_id",
    "payload.assignee_operator_id",
    "payload.status",
    "payload.kind",
    "payload.outcome",
    "payload.reason",
    "payload.error.reason",
    "payload.errors.title",
    "payload.source",
];

/// The query string of `GET /api/v1/events`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchParams {
    /// Only this conversation (or campaign / operator key) of the caller's tenant.
    pub conversation_key: Option<String>,
    /// Event types, comma-separated.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// From this moment (epoch ms, inclusive); default `to` minus 24 hours.
    pub from: Option<i64>,
    /// Until this moment (epoch ms, exclusive); default now.
    pub to: Option<i64>,
    /// Free text.
    pub q: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `next_before` of the previous page.
    pub before: Option<String>,
}

/// A validated search, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Always the caller's tenant.
    pub tenant: String,
    /// One key of that tenant.
    pub conversation_key: Option<String>,
    /// Empty: every type.
    pub types: Vec<String>,
    /// Epoch ms, inclusive.
    pub from: i64,
    /// Epoch ms, exclusive.
    pub to: i64,
    /// Free text, as typed (trimmed).
    pub text: Option<String>,
    /// Page size.
    pub limit: u32,
    /// Continue after this `(occurred_at, id)`, exclusive.
    pub before: Option<(i64, String)>,
}

/// Why a search was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// A malformed or too broad search; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// A conversation of another tenant.
    #[error("{0}")]
    OtherTenant(String),
}

/// Validate `params` for an admin of `tenant` at `now` (epoch ms).
pub fn parse_search(tenant: &str, params: SearchParams, now: i64) -> Result<Search, SearchError> {
    let conversation_key = match params.conversation_key.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(key) => {
            check_key(tenant, key)?;
            Some(key.to_string())
        }
    };
    let mut types = Vec::new();
    for name in params
        .event_type
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        if !EVENT_TYPES.contains(&name) {
            return Err(SearchError::Invalid(format!(
                "type {name:?} is not one of {}",
                EVENT_TYPES.join(", ")
            )));
        }
        if !types.iter().any(|known| known == name) {
            types.push(name.to_string());
        }
    }
    let to = params.to.unwrap_or(now);
    let from = params.from.unwrap_or(to - DEFAULT_RANGE_MS);
    if from >= to {
        return Err(SearchError::Invalid(format!(
            "from ({from}) must be before to ({to}); both are epoch milliseconds"
        )));
    }
    let text = params
        .q
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty());
    if let Some(text) = &text {
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(SearchError::Invalid(format!(
                "q is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        if to - from > MAX_TEXT_RANGE_MS {
            return Err(SearchError::Invalid(
                "a free-text search covers at most 7 days; narrow from/to".to_string(),
            ));
        }
    }
    if to - from > MAX_RANGE_MS {
        return Err(SearchError::Invalid(
            "a search covers at most 31 days; narrow from/to".to_string(),
        ));
    }
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(SearchError::Invalid(format!(
            "limit must be 1 to {MAX_LIMIT}, got {limit}"
        )));
    }
    let before = match params.before.as_deref() {
        None | Some("") => None,
        Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| {
            SearchError::Invalid("invalid before: pass the next_before of a previous page".into())
        })?),
    };
    Ok(Search {
        tenant: tenant.to_string(),
        conversation_key,
        types,
        from,
        to,
        text,
        limit,
        before,
    })
}

/// Keys of every kind (conversation, campaign, operator) start with `<tenant>:`.
fn check_key(tenant: &str, key: &str) -> Result<(), SearchError> {
    match rooms::check_conversation_key(tenant, key) {
        Ok(_) => Ok(()),
        Err(error @ KeyError::OtherTenant(_)) => Err(SearchError::OtherTenant(error.to_string())),
        // Campaign and operator keys are not conversation keys but are valid filters.
        Err(KeyError::Malformed(_)) if key.starts_with(&format!("{tenant}:")) => Ok(()),
        Err(error) => Err(SearchError::Invalid(error.to_string())),
    }
}

/// The page cursor: `<occurred_at ms>:<event id>` of the last event of a page.
pub fn encode_cursor(occurred_at: i64, id: &str) -> String {
    format!("{occurred_at}:{id}")
}

/// The `(occurred_at, id)` of a cursor, `None` when malformed.
pub fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let (at, id) = cursor.split_once(':')?;
    let at = at.parse().ok()?;
    (!id.is_empty()).then(|| (at, id.to_string()))
}

/// `text` as a regex that matches it literally.
pub fn escape_regex(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() * 2);
    for character in text.chars() {
        if "\\^$.|?*+()[]{}/-".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// A one-line description of a stored event's payload for the list.
pub fn summarize(event_type: &str, payload: &Value) -> String {
    let text = |path: &[&str]| -> Option<String> {
        let mut node = payload;
        for part in path {
            node = node.get(part)?;
        }
        node.as_str().map(str::to_string)
    };
    let content = || -> String {
        let Some(content) = payload.get("content").and_then(Value::as_object) else {
            return String::new();
        };
        let Some((kind, body)) = content.iter().next() else {
            return String::new();
        };
        let detail = ["body", "title", "caption", "name", "emoji"]
            .iter()
            .find_map(|field| body.get(*field).and_then(Value::as_str));
        match detail {
            Some(detail) => format!("{kind}: {detail}"),
            None => kind.clone(),
        }
    };
    let parts: Vec<String> = match event_type {
        "inbound_message" => vec![
            text(&["customer_display_name"]).unwrap_or_default(),
            content(),
        ],
        "outbound_command" => vec![
            text(&["origin"]).unwrap_or_default(),
            format!("to {}", text(&["to"]).unwrap_or_default()),
            content(),
        ],
        "inbound_status" => vec![
            text(&["status"]).unwrap_or_default(),
            text(&["provider_message_id"]).unwrap_or_default(),
        ],
        "outbound_result" => vec![
            text(&["outcome"]).unwrap_or_default(),
            text(&["provider_message_id"])
                .or_else(|| text(&["error", "reason"]))
                .unwrap_or_default(),
        ],
        "conversation_event" => vec![
            text(&["kind"]).unwrap_or_default(),
            text(&["assignee_operator_id"])
                .or_else(|| text(&["actor_operator_id"]))
                .unwrap_or_default(),
            text(&["reason"]).unwrap_or_default(),
        ],
        "presence_event" | "presence_update" => vec![
            text(&["kind"]).unwrap_or_default(),
            text(&["subject"]).unwrap_or_default(),
            text(&["subject_id"]).unwrap_or_default(),
        ],
        "campaign_command" => vec![
            text(&["campaign_id"]).unwrap_or_default(),
            payload
                .get("action")
                .and_then(Value::as_object)
                .and_then(|action| action.keys().next().cloned())
                .unwrap_or_default(),
        ],
        "campaign_event" => vec![
            text(&["campaign_id"]).unwrap_or_default(),
            text(&["kind"]).unwrap_or_default(),
            payload
                .get("counts")
                .map(|counts| format!("{}/{} sent", counts["sent"], counts["audience"]))
                .unwrap_or_default(),
        ],
        _ => vec![],
    };
    let summary = parts
        .into_iter()
        .filter(|part| !part.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" · ");
    summary.chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000_000;

    fn params() -> SearchParams {
        SearchParams::default()
    }

    #[test]
    fn a_search_is_the_callers_tenant_for_the_last_day_by_default() {
        let search = parse_search("acme", params(), NOW).unwrap();
        assert_eq!(search.tenant, "acme");
        assert_eq!((search.from, search.to), (NOW - DEFAULT_RANGE_MS, NOW));
        assert_eq!(search.limit, DEFAULT_LIMIT);
        assert!(search.types.is_empty() && search.text.is_none());
    }

    #[test]
    fn another_tenants_conversation_is_refused() {
        let refused = parse_search(
            "acme",
            SearchParams {
                conversation_key: Some("other:whatsapp:49151".into()),
                ..params()
            },
            NOW,
        )
        .unwrap_err();
        assert!(matches!(refused, SearchError::OtherTenant(_)), "{refused}");
        let own = parse_search(
            "acme",
            SearchParams {
                conversation_key: Some("acme:campaign:spring".into()),
                ..params()
            },
            NOW,
        )
        .unwrap();
        assert_eq!(
            own.conversation_key.as_deref(),
            Some("acme:campaign:spring")
        );
    }

    #[test]
    fn types_ranges_text_and_limits_are_checked() {
        let search = |params: SearchParams| parse_search("acme", params, NOW);
        let types = search(SearchParams {
            event_type: Some("inbound_message, inbound_status,inbound_message".into()),
            ..params()
        })
        .unwrap();
        assert_eq!(types.types, ["inbound_message", "inbound_status"]);
        assert!(search(SearchParams {
            event_type: Some("inbound".into()),
            ..params()
        })
        .unwrap_err()
        .to_string()
        .contains("not one of"));
        assert!(search(SearchParams {
            from: Some(NOW),
            to: Some(NOW - 1),
            ..params()
        })
        .is_err());
        let week_and_a_bit = SearchParams {
            from: Some(NOW - MAX_TEXT_RANGE_MS - 1),
            to: Some(NOW),
            ..params()
        };
        assert!(search(week_and_a_bit.clone()).is_ok());
        assert!(search(SearchParams {
            q: Some("hello".into()),
            ..week_and_a_bit
        })
        .unwrap_err()
        .to_string()
        .contains("7 days"));
        assert!(search(SearchParams {
            from: Some(NOW - MAX_RANGE_MS - 1),
            ..params()
        })
        .is_err());
        assert!(search(SearchParams {
            limit: Some(0),
            ..params()
        })
        .is_err());
        assert!(search(SearchParams {
            q: Some("   ".into()),
            ..params()
        })
        .unwrap()
        .text
        .is_none());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode_cursor(NOW, "in:whatsapp:wamid.1:2");
        assert_eq!(
            decode_cursor(&cursor),
            Some((NOW, "in:whatsapp:wamid.1:2".to_string()))
        );
        assert!(parse_search(
            "acme",
            SearchParams {
                before: Some("yesterday".into()),
                ..params()
            },
            NOW
        )
        .is_err());
    }

    #[test]
    fn free_text_is_matched_literally() {
        assert_eq!(escape_regex("a.b*(c)"), "a\\.b\\*\\(c\\)");
        assert_eq!(escape_regex("Grüße 😀"), "Grüße 😀");
    }

    #[test]
    fn summaries_say_what_happened() {
        let inbound = json!({ "customer_display_name": "Ada", "content": { "text": { "body": "Where is my order?" } } });
        assert_eq!(
            summarize("inbound_message", &inbound),
            "Ada · text: Where is my order?"
        );
        let status = json!({ "status": "read", "provider_message_id": "wamid.1" });
        assert_eq!(summarize("inbound_status", &status), "read · wamid.1");
        let handoff = json!({ "kind": "handoff", "actor_operator_id": null, "assignee_operator_id": null, "reason": "flow" });
        assert_eq!(summarize("conversation_event", &handoff), "handoff · flow");
        let progress = json!({ "campaign_id": "c1", "kind": "progress", "counts": { "sent": 3, "audience": 4 } });
        assert_eq!(
            summarize("campaign_event", &progress),
            "c1 · progress · 3/4 sent"
        );
        assert_eq!(summarize("unknown", &json!({})), "");
    }
}
