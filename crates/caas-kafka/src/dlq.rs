//! Dead-letter records: a record a consumer could not process is produced to `<topic>.dlq`
//! with its original key, payload and headers, plus headers that say why, so it can be inspected
//! and replayed after a fix. Pure: the clock is a parameter.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::record::{OutboundRecord, Record};

/// The suffix of every dead-letter topic.
pub const DLQ_SUFFIX: &str = ".dlq";

/// The consumer group whose commits on a DLQ record how far it was replayed (`caasctl dlq
/// replay`'s default group; `caas_kafka_dlq_pending_records` counts from there).
pub const REPLAY_GROUP: &str = "caasctl-dlq-replay";

/// Header names added to dead-lettered records.
pub mod headers {
    /// Why the record failed (the handler's reason, UTF-8, at most 4 KiB).
    pub const ERROR: &str = "caas.error";
    /// The topic the record was consumed from.
    pub const ORIGINAL_TOPIC: &str = "caas.original.topic";
    /// Its partition there (decimal).
    pub const ORIGINAL_PARTITION: &str = "caas.original.partition";
    /// Its offset there (decimal).
    pub const ORIGINAL_OFFSET: &str = "caas.original.offset";
    /// How many times the handler was called for it (decimal).
    pub const ATTEMPTS: &str = "caas.attempts";
    /// When it was dead-lettered (RFC 3339, UTC, milliseconds).
    pub const FAILED_AT: &str = "caas.failed_at";
    /// The consumer group that gave up: several services consume one topic and share its DLQ.
    pub const CONSUMER_GROUP: &str = "caas.consumer.group";

    /// Every header this module sets.
    pub const ALL: [&str; 7] = [
        ERROR,
        ORIGINAL_TOPIC,
        ORIGINAL_PARTITION,
        ORIGINAL_OFFSET,
        ATTEMPTS,
        FAILED_AT,
        CONSUMER_GROUP,
    ];
}

const MAX_REASON_BYTES: usize = 4096;

/// The dead-letter topic of `topic`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}{DLQ_SUFFIX}")
}

/// Why a record is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure<'a> {
    /// The reason for the `caas.error` header.
    pub reason: &'a str,
    /// How many times the handler was called.
    pub attempts: u32,
    /// The consumer group giving up on it.
    pub group_id: &'a str,
    /// When it gave up.
    pub failed_at: SystemTime,
}

/// The record to produce to `<topic>.dlq`: the original key and payload, the original headers
/// (minus any earlier `caas.*` failure headers, so a replayed-and-failed-again record carries
/// one set), then the failure headers.
pub fn dead_letter(record: &Record, failure: &Failure<'_>) -> OutboundRecord {
    let mut dlq_headers: Vec<(String, Vec<u8>)> = record
        .headers
        .iter()
        .filter(|(name, _)| !headers::ALL.contains(&name.as_str()))
        .cloned()
        .collect();
    dlq_headers.extend([
        (
            headers::ERROR.to_string(),
            truncate_utf8(failure.reason, MAX_REASON_BYTES)
                .as_bytes()
                .to_vec(),
        ),
        (
            headers::ORIGINAL_TOPIC.to_string(),
            record.topic.as_bytes().to_vec(),
        ),
        (
            headers::ORIGINAL_PARTITION.to_string(),
            record.partition.to_string().into_bytes(),
        ),
        (
            headers::ORIGINAL_OFFSET.to_string(),
            record.offset.to_string().into_bytes(),
        ),
        (
            headers::ATTEMPTS.to_string(),
            failure.attempts.to_string().into_bytes(),
        ),
        (
            headers::FAILED_AT.to_string(),
            rfc3339_millis(failure.failed_at).into_bytes(),
        ),
        (
            headers::CONSUMER_GROUP.to_string(),
            failure.group_id.as_bytes().to_vec(),
        ),
    ]);
    OutboundRecord {
        topic: dlq_topic(&record.topic),
        key: record.key.clone(),
        payload: record.payload.clone(),
        headers: dlq_headers,
    }
}

fn truncate_utf8(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC (times before 1970 print as the epoch).
pub fn rfc3339_millis(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let total_seconds = since_epoch.as_secs();
    let days = (total_seconds / 86_400) as i64;
    let seconds_of_day = total_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record() -> Record {
        Record {
            topic: "inbound.messages.v1".to_string(),
            partition: 1,
            offset: 42,
            key: Some("acme:whatsapp:49151".to_string()),
            payload: Some(vec![0xde, 0xad]),
            headers: vec![
                ("traceparent".to_string(), b"00-abc".to_vec()),
                (headers::ERROR.to_string(), b"an older failure".to_vec()),
            ],
            timestamp_ms: Some(1),
        }
    }

    fn header<'a>(outbound: &'a OutboundRecord, name: &str) -> Vec<&'a [u8]> {
        outbound
            .headers
            .iter()
            .filter(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_slice())
            .collect()
    }

    #[test]
    fn a_dead_letter_keeps_the_original_and_says_why() {
        let failed_at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let outbound = dead_letter(
            &record(),
            &Failure {
                reason: "not avro: magic byte 7",
                attempts: 3,
                group_id: "caas-logger",
                failed_at,
            },
        );
        assert_eq!(outbound.topic, "inbound.messages.v1.dlq");
        assert_eq!(outbound.key.as_deref(), Some("acme:whatsapp:49151"));
        assert_eq!(outbound.payload, Some(vec![0xde, 0xad]));
        assert_eq!(header(&outbound, "traceparent"), vec![b"00-abc".as_slice()]);
        assert_eq!(
            header(&outbound, headers::ERROR),
            vec![b"not avro: magic byte 7".as_slice()]
        );
        assert_eq!(
            header(&outbound, headers::ORIGINAL_TOPIC),
            vec![b"inbound.messages.v1".as_slice()]
        );
        assert_eq!(
            header(&outbound, headers::ORIGINAL_PARTITION),
            vec![b"1".as_slice()]
        );
        assert_eq!(
            header(&outbound, headers::ORIGINAL_OFFSET),
            vec![b"42".as_slice()]
        );
        assert_eq!(header(&outbound, headers::ATTEMPTS), vec![b"3".as_slice()]);
        assert_eq!(
            header(&outbound, headers::FAILED_AT),
            vec![b"2023-11-14T22:13:20.123Z".as_slice()]
        );
        assert_eq!(
            header(&outbound, headers::CONSUMER_GROUP),
            vec![b"caas-logger".as_slice()]
        );
    }

    #[test]
    fn tombstones_and_keyless_records_stay_so() {
        let mut tombstone = record();
        tombstone.key = None;
        tombstone.payload = None;
        let outbound = dead_letter(
            &tombstone,
            &Failure {
                reason: "r",
                attempts: 1,
                group_id: "g",
                failed_at: UNIX_EPOCH,
            },
        );
        assert_eq!(outbound.key, None);
        assert_eq!(outbound.payload, None);
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let reason = "é".repeat(3000);
        let cut = truncate_utf8(&reason, MAX_REASON_BYTES);
        assert!(cut.len() <= MAX_REASON_BYTES);
        assert_eq!(cut.len() % 2, 0);
        assert_eq!(truncate_utf8("short", MAX_REASON_BYTES), "short");
    }

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661);
        assert_eq!(rfc3339_millis(leap_day), "2000-02-29T01:01:01.000Z");
        let end_of_year = UNIX_EPOCH + Duration::from_millis(1_735_689_599_999);
        assert_eq!(rfc3339_millis(end_of_year), "2024-12-31T23:59:59.999Z");
        let before_epoch = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339_millis(before_epoch), "1970-01-01T00:00:00.000Z");
    }
}
