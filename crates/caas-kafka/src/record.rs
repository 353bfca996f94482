//! Owned records: what a handler receives ([`Record`]) and what a producer sends
//! ([`OutboundRecord`]).
//!
//! rdkafka's `BorrowedMessage` borrows the consumer; it is copied into a [`Record`] at the edge
//! so handler logic never imports rdkafka and tests build records by hand.

use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

use crate::traceparent::{TraceParent, TRACEPARENT_HEADER};

/// A consumed record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The topic it was read from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// The key; CAAS keys are UTF-8 strings (the conversation key). A key that is not valid
    /// UTF-8 breaks the contract and is converted lossily.
    pub key: Option<String>,
    /// The value; `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
    /// Headers in order; a header without a value has an empty one.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record timestamp in milliseconds since the epoch, when the broker gave one.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// Copy any rdkafka message (borrowed from a consumer, or owned in tests).
    pub fn from_message<M: Message>(message: &M) -> Self {
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        (
                            header.key.to_string(),
                            header.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            key: message
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned()),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: message.timestamp().to_millis(),
        }
    }

    /// The value of the last header named `name` (Kafka allows repeats; the last one wins).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
    }

    /// The header as UTF-8 text, if present and valid.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The W3C trace context carried in the `traceparent` header, if present and well formed.
    pub fn traceparent(&self) -> Option<TraceParent> {
        self.header_str(TRACEPARENT_HEADER)
            .and_then(|value| TraceParent::parse(value).ok())
    }
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecord {
    /// Destination topic (from the catalogue).
    pub topic: String,
    /// Partitioning key: the conversation key, so one conversation stays in order.
    pub key: Option<String>,
    /// The value; `None` produces a tombstone.
    pub payload: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutboundRecord {
    /// The bytes it carries: key, value and headers (the broker adds a little framing).
    pub fn size_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, String::len)
            + self.payload.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>()
    }

    /// A keyed record.
    pub fn new(
        topic: impl Into<String>,
        key: impl Into<String>,
        payload: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            topic: topic.into(),
            key: Some(key.into()),
            payload: Some(payload.into()),
            headers: Vec::new(),
        }
    }

    /// Add a header (an existing header of the same name is kept; readers take the last).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the `traceparent` header, replacing any previous one, so the trace continues in the
    /// consumers.
    pub fn with_traceparent(mut self, traceparent: &TraceParent) -> Self {
        self.headers.retain(|(name, _)| name != TRACEPARENT_HEADER);
        self.headers.push((
            TRACEPARENT_HEADER.to_string(),
            traceparent.to_string().into_bytes(),
        ));
        self
    }

    pub(crate) fn rdkafka_headers(&self) -> OwnedHeaders {
        self.headers.iter().fold(
            OwnedHeaders::new_with_capacity(self.headers.len()),
            |headers, (name, value)| {
                headers.insert(Header {
                    key: name,
                    value: Some(value.as_slice()),
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{OwnedMessage, Timestamp};

    fn message_with(key: Option<Vec<u8>>, headers: Option<OwnedHeaders>) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"payload".to_vec()),
            key,
            "inbound.messages.v1".to_string(),
            Timestamp::CreateTime(1_700_000_000_000),
            2,
            41,
            headers,
        )
    }

    #[test]
    fn a_message_is_copied_with_everything_a_handler_needs() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "a",
                value: Some(b"1".as_slice()),
            })
            .insert(Header::<&[u8]> {
                key: "empty",
                value: None,
            })
            .insert(Header {
                key: "a",
                value: Some(b"2".as_slice()),
            });
        let record = Record::from_message(&message_with(
            Some(b"acme:whatsapp:49151".to_vec()),
            Some(headers),
        ));
        assert_eq!(record.topic, "inbound.messages.v1");
        assert_eq!((record.partition, record.offset), (2, 41));
        assert_eq!(record.key.as_deref(), Some("acme:whatsapp:49151"));
        assert_eq!(record.payload.as_deref(), Some(b"payload".as_slice()));
        assert_eq!(record.timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(
            record.headers,
            vec![
                ("a".to_string(), b"1".to_vec()),
                ("empty".to_string(), Vec::new()),
                ("a".to_string(), b"2".to_vec()),
            ]
        );
        assert_eq!(record.header("a"), Some(b"2".as_slice()));
        assert_eq!(record.header_str("empty"), Some(""));
        assert_eq!(record.header("missing"), None);
    }

    #[test]
    fn keyless_and_headerless_messages_convert() {
        let record = Record::from_message(&message_with(None, None));
        assert_eq!(record.key, None);
        assert!(record.headers.is_empty());
        assert_eq!(record.traceparent(), None);
    }

    #[test]
    fn a_non_utf8_key_is_converted_lossily_not_dropped() {
        let record = Record::from_message(&message_with(Some(vec![b'k', 0xff]), None));
        assert_eq!(record.key.as_deref(), Some("k\u{fffd}"));
    }

    #[test]
    fn the_traceparent_travels_through_headers() {
        let traceparent =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let outbound = OutboundRecord::new("t", "k", b"v".to_vec())
            .with_header("traceparent", "garbage")
            .with_traceparent(&traceparent);
        assert_eq!(
            outbound
                .headers
                .iter()
                .filter(|(name, _)| name == "traceparent")
                .count(),
            1
        );
        let consumed = Record {
            topic: "t".to_string(),
            partition: 0,
            offset: 0,
            key: outbound.key.clone(),
            payload: outbound.payload.clone(),
            headers: outbound.headers.clone(),
            timestamp_ms: None,
        };
        assert_eq!(consumed.traceparent(), Some(traceparent));
    }

    #[test]
    fn outbound_headers_become_rdkafka_headers_in_order() {
        let outbound = OutboundRecord::new("t", "k", b"v".to_vec())
            .with_header("x", "1")
            .with_header("y", vec![0u8, 1]);
        let headers = outbound.rdkafka_headers();
        let pairs: Vec<(String, Option<Vec<u8>>)> = headers
            .iter()
            .map(|header| (header.key.to_string(), header.value.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("x".to_string(), Some(b"1".to_vec())),
                ("y".to_string(), Some(vec![0, 1])),
            ]
        );
    }
}
