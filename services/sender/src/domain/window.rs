//! The WhatsApp customer-service window: free-form messages only within 24 hours of the
//! customer's last message; after that only templates. RBM has no such rule.

use caas_events::model::{Channel, Content};

/// How long the window stays open after the customer's last message.
pub const WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Whether `content` on `channel` needs an open window.
pub fn needs_window(channel: Channel, content: &Content) -> bool {
    channel == Channel::Whatsapp && !matches!(content, Content::Template(_))
}

/// The state of the window at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Free-form messages may be sent until `closes_at` (epoch ms).
    Open {
        /// When the window closes.
        closes_at: i64,
    },
    /// Only templates may be sent.
    Closed {
        /// The customer's last message, if they ever wrote.
        last_inbound_at: Option<i64>,
    },
}

/// The window given the customer's last inbound message time (epoch ms).
pub fn window(last_inbound_at: Option<i64>, now: i64) -> Window {
    match last_inbound_at {
        Some(last) if now < last + WINDOW_MS => Window::Open {
            closes_at: last + WINDOW_MS,
        },
        last_inbound_at => Window::Closed { last_inbound_at },
    }
}

/// The reason an operator reads when a free-form command was refused.
pub fn closed_reason(last_inbound_at: Option<i64>, now: i64) -> String {
    match last_inbound_at {
        None => "the 24-hour customer-service window is closed: the customer has not written \
                 to this number yet; only an approved template can start the conversation"
            .to_string(),
        Some(last) => format!(
            "the 24-hour customer-service window is closed: the customer last wrote {} hours \
             ago; only an approved template can be sent until they write again",
            (now - last) / 3_600_000
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_events::model::{Template, Text};

    const NOW: i64 = 1_800_000_000_000;

    fn text() -> Content {
        Content::Text(Text {
            body: "hi".into(),
            preview_url: false,
        })
    }

    fn template() -> Content {
        Content::Template(Template {
            name: "welcome".into(),
            language: "en".into(),
            parameters: vec![],
            header_media: None,
        })
    }

    #[test]
    fn only_whatsapp_free_form_needs_the_window() {
        assert!(needs_window(Channel::Whatsapp, &text()));
        assert!(!needs_window(Channel::Whatsapp, &template()));
        assert!(!needs_window(Channel::Rcs, &text()));
    }

    #[test]
    fn the_window_is_open_for_exactly_24_hours() {
        assert_eq!(
            window(Some(NOW - 1000), NOW),
            Window::Open {
                closes_at: NOW - 1000 + WINDOW_MS
            }
        );
        assert_eq!(
            window(Some(NOW - WINDOW_MS + 1), NOW),
            Window::Open { closes_at: NOW + 1 }
        );
        assert_eq!(
            window(Some(NOW - WINDOW_MS), NOW),
            Window::Closed {
                last_inbound_at: Some(NOW - WINDOW_MS)
            }
        );
        assert_eq!(
            window(None, NOW),
            Window::Closed {
                last_inbound_at: None
            }
        );
    }

    #[test]
    fn the_reason_tells_the_operator_what_to_do() {
        assert!(closed_reason(None, NOW).contains("template"));
        let reason = closed_reason(Some(NOW - 30 * 3_600_000), NOW);
        assert!(reason.contains("30 hours"), "{reason}");
    }
}
