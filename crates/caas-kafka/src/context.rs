//! rdkafka client contexts: librdkafka's logs and errors go to `tracing` (not the `log` crate,
//! which our subscribers do not read), and the consumer's rebalance and commit callbacks log and
//! commit.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::TopicPartitionList;

use crate::metrics::metrics;

/// Routes librdkafka's own logs and errors to `tracing`.
#[derive(Debug, Clone, Default)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_to_tracing(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(error = %error, reason, "kafka client error");
    }
}

fn log_to_tracing(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(facility, message, "librdkafka"),
        RDKafkaLogLevel::Warning => tracing::warn!(facility, message, "librdkafka"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(facility, message, "librdkafka")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(facility, message, "librdkafka"),
    }
}

/// The consumer loop's context: logs every rebalance and commits stored offsets before
/// partitions are taken away.
#[derive(Debug, Clone)]
pub struct LoopContext {
    /// The consumer group, for log fields and metric labels.
    pub group_id: String,
}

impl ClientContext for LoopContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_to_tracing(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(group = %self.group_id, error = %error, reason, "kafka consumer error");
    }
}

impl ConsumerContext for LoopContext {
    // Rebalance callbacks run inside `recv()`, i.e. between two records of the sequential loop:
    // no handler is running for a revoked partition when it is revoked, so every offset that
    // can be stored for it already is. With cooperative-sticky only the moving partitions are
    // listed, and the others keep flowing.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => tracing::info!(
                group = %self.group_id,
                partitions = %describe(partitions),
                "partitions assigned"
            ),
            Rebalance::Revoke(partitions) => {
                tracing::info!(
                    group = %self.group_id,
                    partitions = %describe(partitions),
                    "partitions revoked; committing stored offsets"
                );
                // Commit now, so the next owner starts right after the last record we finished
                // rather than after the last auto-commit (fewer redeliveries).
                if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
                    if !is_nothing_to_commit(&error) {
                        metrics()
                            .consumer_errors
                            .with_label_values(&[&self.group_id, "commit"])
                            .inc();
                        tracing::warn!(
                            group = %self.group_id,
                            error = %error,
                            "commit on revoke failed; the next owner may see some records again"
                        );
                    }
                }
            }
            Rebalance::Error(error) => tracing::warn!(
                group = %self.group_id,
                error = %error,
                "rebalance error"
            ),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(
                group = %self.group_id,
                offsets = %describe(offsets),
                "offsets committed"
            ),
            Err(error) if is_nothing_to_commit(&error) => {}
            Err(error) => {
                metrics()
                    .consumer_errors
                    .with_label_values(&[&self.group_id, "commit"])
                    .inc();
                tracing::warn!(
                    group = %self.group_id,
                    error = %error,
                    "offset commit failed; it is retried on the next commit"
                );
            }
        }
    }
}

/// `NoOffset`: nothing was stored since the last commit. Not an error for us.
pub(crate) fn is_nothing_to_commit(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset)
}

/// `topic[partition]@offset, ...` for logs.
fn describe(partitions: &TopicPartitionList) -> String {
    partitions
        .elements()
        .iter()
        .map(|element| match element.offset().to_raw() {
            Some(offset) if offset >= 0 => {
                format!("{}[{}]@{}", element.topic(), element.partition(), offset)
            }
            _ => format!("{}[{}]", element.topic(), element.partition()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
