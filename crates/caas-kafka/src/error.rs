//! The errors of this crate: one enum per operation a caller handles differently.

use std::fmt;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Creating or running a Kafka client failed; the service cannot do its job.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A configuration value cannot work; the message names the field and what would.
    #[error("invalid kafka configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field of [`crate::KafkaConfig`] or [`crate::ConsumerConfig`] at fault.
        field: &'static str,
        /// Why it was refused and what to do instead.
        reason: String,
    },
    /// librdkafka refused to create the client (a bad property, an unknown option).
    #[error("cannot create the kafka {role}: {source}")]
    Create {
        /// `producer` or `consumer`.
        role: &'static str,
        /// The rdkafka error.
        #[source]
        source: KafkaError,
    },
    /// Subscribing to the topics failed.
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        /// The topics asked for.
        topics: Vec<String>,
        /// The rdkafka error.
        #[source]
        source: KafkaError,
    },
    /// The client hit a fatal error (for example the idempotent producer was fenced) and must
    /// be recreated; restarting the process does that.
    #[error("fatal kafka error, the client must be restarted: {0}")]
    Fatal(#[source] KafkaError),
    /// A batch kept failing with retryable errors and the batch loop was configured to stop
    /// rather than dead-letter it ([`crate::ExhaustedRetries::Stop`]). Nothing of the batch was
    /// stored: a new member (or this one, restarted) gets the records again.
    #[error(
        "consumer group {group} stopped: a batch of {records} records still failed after \
         {attempts} attempts: {reason}"
    )]
    RetriesExhausted {
        /// The consumer group.
        group: String,
        /// How many records the batch held.
        records: usize,
        /// How many times the handler was called for it.
        attempts: u32,
        /// The last retryable reason.
        reason: String,
    },
}

/// A record could not be produced. [`ProduceError::is_timeout`] tells the caller to answer
/// "try again later" (HTTP 503) rather than "bad request".
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The broker did not acknowledge the record within the per-send timeout
    /// (`message.timeout.ms`); it may or may not have been written.
    #[error("kafka did not acknowledge the record to {topic} within {} ms", timeout.as_millis())]
    Timeout {
        /// The destination topic.
        topic: String,
        /// The per-send timeout that expired.
        timeout: Duration,
    },
    /// The local producer queue stayed full for the whole enqueue timeout: the broker is slow or
    /// unreachable.
    #[error(
        "the local kafka producer queue is full; {topic} is not accepting records fast enough"
    )]
    QueueFull {
        /// The destination topic.
        topic: String,
    },
    /// The broker or the client refused the record (unknown topic, record too large, ...).
    #[error("kafka refused the record to {topic}: {source}")]
    Rejected {
        /// The destination topic.
        topic: String,
        /// The rdkafka error.
        #[source]
        source: KafkaError,
    },
    /// The producer was shut down before the record's fate was known.
    #[error("the kafka producer was closed before the record to {topic} was acknowledged")]
    Closed {
        /// The destination topic.
        topic: String,
    },
    /// `flush` did not drain the queue in time; records may be lost if the process exits now.
    #[error("kafka producer flush did not finish within {} ms", timeout.as_millis())]
    FlushTimeout {
        /// The flush timeout.
        timeout: Duration,
    },
}

impl ProduceError {
    /// True when the caller should tell its client to retry later (HTTP 503): the outcome is
    /// unknown or the broker is temporarily unavailable, not the record's fault.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::QueueFull { .. } | Self::FlushTimeout { .. }
        )
    }

    /// Classify an rdkafka delivery error for `topic`.
    pub(crate) fn from_kafka(topic: &str, timeout: Duration, error: KafkaError) -> Self {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::MessageTimedOut) => Self::Timeout {
                topic: topic.to_string(),
                timeout,
            },
            Some(RDKafkaErrorCode::QueueFull) => Self::QueueFull {
                topic: topic.to_string(),
            },
            _ => Self::Rejected {
                topic: topic.to_string(),
                source: error,
            },
        }
    }

    /// A bounded metric label for this error.
    pub(crate) fn outcome_label(&self) -> &'static str {
        if self.is_timeout() {
            "timeout"
        } else {
            "error"
        }
    }
}

/// What a [`crate::Handler`] says about a record it could not process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// A transient failure (a store is down, a timeout): the same record may succeed later, so
    /// the loop retries it with backoff.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The record itself is bad (undecodable, violates the contract): retrying cannot help, so
    /// it goes to `<topic>.dlq` with this reason and the partition moves on.
    #[error("poison: {0}")]
    Poison(String),
}

impl HandlerError {
    /// A retryable error from anything printable.
    pub fn retryable(reason: impl fmt::Display) -> Self {
        Self::Retryable(reason.to_string())
    }

    /// A poison error from anything printable.
    pub fn poison(reason: impl fmt::Display) -> Self {
        Self::Poison(reason.to_string())
    }

    /// The reason, without the classification.
    pub fn reason(&self) -> &str {
        match self {
            Self::Retryable(reason) | Self::Poison(reason) => reason,
        }
    }

    /// Whether the loop should try again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::RDKafkaErrorCode;

    #[test]
    fn delivery_timeouts_are_reported_as_timeouts() {
        let timeout = Duration::from_secs(5);
        let error = ProduceError::from_kafka(
            "t",
            timeout,
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
        );
        assert!(error.is_timeout(), "{error:?}");
        assert_eq!(error.outcome_label(), "timeout");
        assert!(error.to_string().contains("5000 ms"), "{error}");
        let queue_full = ProduceError::from_kafka(
            "t",
            timeout,
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
        );
        assert!(queue_full.is_timeout());
    }

    #[test]
    fn a_refused_record_is_not_a_timeout() {
        let error = ProduceError::from_kafka(
            "t",
            Duration::from_secs(1),
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
        );
        assert!(!error.is_timeout());
        assert_eq!(error.outcome_label(), "error");
        assert!(matches!(error, ProduceError::Rejected { .. }));
    }

    #[test]
    fn handler_errors_classify_and_keep_their_reason() {
        let retryable = HandlerError::retryable("mongodb unreachable");
        assert!(retryable.is_retryable());
        assert_eq!(retryable.reason(), "mongodb unreachable");
        let poison = HandlerError::poison(format_args!("not avro: magic byte {}", 7));
        assert!(!poison.is_retryable());
        assert_eq!(poison.reason(), "not avro: magic byte 7");
        assert_eq!(poison.to_string(), "poison: not avro: magic byte 7");
    }
}
