//! W3C Trace Context `traceparent` (<https://www.w3.org/TR/trace-context/>), carried in the
//! Kafka header of the same name so one trace follows a message from the webhook to the
//! dashboard.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// The Kafka header name (the same as the HTTP header).
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A parsed `traceparent`: `00-<trace id: 32 hex>-<parent id: 16 hex>-<flags: 2 hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace every span of one request shares; never zero.
    pub trace_id: u128,
    /// The span that produced this record; never zero.
    pub parent_id: u64,
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

/// Why a `traceparent` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid traceparent {value:?}: {reason}")]
pub struct TraceParentError {
    /// The value as received (at most 64 characters of it).
    pub value: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl TraceParent {
    /// Parse a header value. Version `00` must be exactly 55 characters; a higher version is
    /// accepted by its first four fields, as the specification asks.
    pub fn parse(value: &str) -> Result<Self, TraceParentError> {
        let refuse = |reason| TraceParentError {
            value: value.chars().take(64).collect(),
            reason,
        };
        let value_trimmed = value.trim();
        if value_trimmed.len() < 55 || !value_trimmed.is_ascii() {
            return Err(refuse("shorter than 55 ascii characters"));
        }
        let version = &value_trimmed[0..2];
        let version_number = parse_lower_hex(version).ok_or_else(|| refuse("bad version"))?;
        if version_number == 0xff {
            return Err(refuse("version ff is forbidden"));
        }
        if version_number == 0 && value_trimmed.len() != 55 {
            return Err(refuse("version 00 must be exactly 55 characters"));
        }
        if value_trimmed.len() > 55 && value_trimmed.as_bytes()[55] != b'-' {
            return Err(refuse("unexpected characters after the flags"));
        }
        let bytes = value_trimmed.as_bytes();
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return Err(refuse("fields must be separated by '-'"));
        }
        let trace_id =
            parse_lower_hex(&value_trimmed[3..35]).ok_or_else(|| refuse("bad trace id"))?;
        let parent_id =
            parse_lower_hex(&value_trimmed[36..52]).ok_or_else(|| refuse("bad parent id"))?;
        let flags = parse_lower_hex(&value_trimmed[53..55]).ok_or_else(|| refuse("bad flags"))?;
        if trace_id == 0 {
            return Err(refuse("the trace id is all zeros"));
        }
        if parent_id == 0 {
            return Err(refuse("the parent id is all zeros"));
        }
        Ok(Self {
            trace_id,
            parent_id: parent_id as u64,
            flags: flags as u8,
        })
    }

    /// A new sampled trace, for a request that arrived without one.
    pub fn new_root() -> Self {
        let high = u128::from(random_nonzero_u64());
        let low = u128::from(random_nonzero_u64());
        Self {
            trace_id: (high << 64) | low,
            parent_id: random_nonzero_u64(),
            flags: 0x01,
        }
    }

    /// The same trace with a new parent span id: what a service puts on the records it produces
    /// while handling one that carried `self`.
    pub fn child(&self) -> Self {
        Self {
            parent_id: random_nonzero_u64(),
            ..*self
        }
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 == 0x01
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

/// Lowercase hex only, as the specification requires.
fn parse_lower_hex(text: &str) -> Option<u128> {
    if text.is_empty()
        || !text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    {
        return None;
    }
    u128::from_str_radix(text, 16).ok()
}

fn random_nonzero_u64() -> u64 {
    loop {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u8(0x5a);
        let candidate = hasher.finish();
        if candidate != 0 {
            return candidate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specification_example_round_trips() {
        let parsed = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(parsed.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(parsed.parent_id, 0x00f067aa0ba902b7);
        assert!(parsed.sampled());
        assert_eq!(parsed.to_string(), EXAMPLE);
    }

    #[test]
    fn invalid_values_are_refused_with_a_reason() {
        let cases = [
            ("", "shorter"),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "trace id",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "all zeros",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "all zeros",
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "ff",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                "exactly 55",
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
                "separated",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
                "flags",
            ),
        ];
        for (value, expected) in cases {
            let error = TraceParent::parse(value).unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{value:?} gave {error}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn a_future_version_is_read_by_its_first_fields() {
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        let parsed = TraceParent::parse(future).unwrap();
        assert_eq!(parsed.parent_id, 0x00f067aa0ba902b7);
        assert!(parsed.to_string().starts_with("00-"));
    }

    #[test]
    fn children_keep_the_trace_and_change_the_parent() {
        let root = TraceParent::new_root();
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.parent_id, root.parent_id);
        assert_eq!(TraceParent::parse(&child.to_string()).unwrap(), child);
        assert_ne!(TraceParent::new_root().trace_id, root.trace_id);
    }
}
