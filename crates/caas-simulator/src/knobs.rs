//! The knobs of one simulator run: injected faults and the timing of status webhooks.
//!
//! They start from the configuration and can be replaced at run time with `PUT /_sim/knobs`,
//! so a test sets the faults it needs without restarting anything. The decision of what to
//! inject for one request is a pure function of the knobs and random rolls ([`decide`]).

use serde::{Deserialize, Serialize};

/// Faults and timings; every field has a default, so a `PUT` names only what it changes
/// from the defaults (not from the current values: a `PUT` replaces the whole set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Added to every send request before it is answered, in milliseconds.
    pub latency_ms: u64,
    /// Up to this much more latency, uniformly at random, in milliseconds.
    pub latency_jitter_ms: u64,
    /// Share of send requests (0..=1) answered with a server error (WhatsApp 500 code 1 or
    /// 503 code 2; RBM 500 INTERNAL or 503 UNAVAILABLE). Nothing is sent.
    pub error_rate: f64,
    /// Share of send requests (0..=1) answered as rate limited (WhatsApp HTTP 429 code
    /// 130429; RBM 429 RESOURCE_EXHAUSTED). Nothing is sent.
    pub rate_limit_rate: f64,
    /// A hard throughput limit per sending number / agent (requests per rolling second);
    /// requests above it are answered as rate limited. `None`: no limit.
    pub max_per_second: Option<u32>,
    /// Recipients that always fail: WhatsApp accepts the send and then reports a `failed`
    /// status (error 131026, undeliverable); RBM answers 404 NOT_FOUND (not RCS-capable).
    pub failing_numbers: Vec<String>,
    /// Delay of the WhatsApp `sent` status after the send was accepted, in milliseconds.
    pub sent_after_ms: u64,
    /// Delay of the `delivered` status (RBM `DELIVERED` event), in milliseconds.
    pub delivered_after_ms: u64,
    /// Delay of the `read` status (RBM `READ` event), in milliseconds.
    pub read_after_ms: u64,
    /// Share of delivered messages (0..=1) that the customer reads.
    pub read_rate: f64,
    /// Whether status webhooks are sent at all.
    pub status_webhooks: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            latency_jitter_ms: 0,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            max_per_second: None,
            failing_numbers: Vec::new(),
            sent_after_ms: 200,
            delivered_after_ms: 1_000,
            read_after_ms: 3_000,
            read_rate: 1.0,
            status_webhooks: true,
        }
    }
}

impl Knobs {
    /// Check the knobs; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (field, rate) in [
            ("error_rate", self.error_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("read_rate", self.read_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{field} must be between 0 and 1, got {rate}"));
            }
        }
        if self.error_rate + self.rate_limit_rate > 1.0 {
            return Err(format!(
                "error_rate + rate_limit_rate must not exceed 1, got {}",
                self.error_rate + self.rate_limit_rate
            ));
        }
        if self.max_per_second == Some(0) {
            return Err("max_per_second must be at least 1 (or null for no limit)".to_string());
        }
        if !(self.sent_after_ms <= self.delivered_after_ms
            && self.delivered_after_ms <= self.read_after_ms)
        {
            return Err(
                "the status timeline must be ordered: sent_after_ms <= delivered_after_ms <= read_after_ms"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// Whether `number` always fails (compared without a leading `+`).
    pub fn is_failing(&self, number: &str) -> bool {
        let bare = number.trim_start_matches('+');
        self.failing_numbers
            .iter()
            .any(|failing| failing.trim_start_matches('+') == bare)
    }
}

/// What to do with one send request before looking at its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Answer normally.
    Nothing,
    /// Answer with a server error; `unavailable` picks 503 over 500.
    ServerError {
        /// 503 (service unavailable) rather than 500.
        unavailable: bool,
    },
    /// Answer as rate limited.
    RateLimited,
}

/// The fault for one request, from the knobs and a uniform roll in `0..1`; `over_limit` says
/// whether the sender's rolling-second throughput limit is exceeded.
pub fn decide(knobs: &Knobs, roll: f64, over_limit: bool) -> Injected {
    if over_limit {
        return Injected::RateLimited;
    }
    if roll < knobs.rate_limit_rate {
        return Injected::RateLimited;
    }
    if roll < knobs.rate_limit_rate + knobs.error_rate {
        let unavailable = roll - knobs.rate_limit_rate < knobs.error_rate / 2.0;
        return Injected::ServerError { unavailable };
    }
    Injected::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_inject_nothing() {
        let knobs = Knobs::default();
        knobs.validate().unwrap();
        assert_eq!(decide(&knobs, 0.0, false), Injected::Nothing);
        assert_eq!(decide(&knobs, 0.0, true), Injected::RateLimited);
    }

    #[test]
    fn rolls_split_between_rate_limits_and_errors() {
        let knobs = Knobs {
            rate_limit_rate: 0.2,
            error_rate: 0.3,
            ..Knobs::default()
        };
        assert_eq!(decide(&knobs, 0.1, false), Injected::RateLimited);
        assert_eq!(
            decide(&knobs, 0.25, false),
            Injected::ServerError { unavailable: true }
        );
        assert_eq!(
            decide(&knobs, 0.45, false),
            Injected::ServerError { unavailable: false }
        );
        assert_eq!(decide(&knobs, 0.5, false), Injected::Nothing);
    }

    #[test]
    fn invalid_knobs_name_the_field() {
        let knobs = Knobs {
            error_rate: 1.5,
            ..Knobs::default()
        };
        assert!(knobs.validate().unwrap_err().contains("error_rate"));
        let knobs = Knobs {
            read_after_ms: 10,
            ..Knobs::default()
        };
        assert!(knobs.validate().unwrap_err().contains("ordered"));
    }

    #[test]
    fn failing_numbers_match_with_or_without_plus() {
        let knobs = Knobs {
            failing_numbers: vec!["+4915100000000".to_string()],
            ..Knobs::default()
        };
        assert!(knobs.is_failing("4915100000000"));
        assert!(knobs.is_failing("+4915100000000"));
        assert!(!knobs.is_failing("4915100000001"));
    }

    #[test]
    fn a_partial_put_body_keeps_the_other_defaults() {
        let knobs: Knobs = serde_json::from_str(r#"{"error_rate":0.1}"#).unwrap();
        assert_eq!(knobs.error_rate, 0.1);
        assert_eq!(knobs.read_rate, 1.0);
        assert!(serde_json::from_str::<Knobs>(r#"{"eror_rate":0.1}"#).is_err());
    }
}
