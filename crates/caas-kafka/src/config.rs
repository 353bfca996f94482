//! Plain configuration structs. Services fill them from their own typed config (for example
//! `caas_runtime::CommonConfig::kafka_bootstrap`); this crate reads no environment variables.
//!
//! The librdkafka properties are computed by pure functions ([`KafkaConfig::producer_properties`],
//! [`ConsumerConfig::consumer_properties`]) so the settings that carry our delivery guarantees
//! are unit-tested.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::error::ClientError;
use crate::retry::Backoff;

/// How to reach the cluster and identify this process; shared by producers and consumers.
#[derive(Clone)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` bootstrap servers, e.g. `127.0.0.1:9092`.
    pub bootstrap_servers: String,
    /// `client.id`, shown in broker logs and quotas; use the service name.
    pub client_id: String,
    /// How long the broker may take to acknowledge one record (`message.timeout.ms`): a send
    /// that is not acked by then fails with [`crate::ProduceError::Timeout`], so an HTTP
    /// front-end can answer 503 instead of hanging.
    pub send_timeout: Duration,
    /// How long the producer batches records before sending (`linger.ms`): a few ms buys large
    /// batches at a latency cost the webhook caller does not notice.
    pub linger: Duration,
    /// Extra librdkafka properties applied last (security settings such as
    /// `security.protocol`, `sasl.*`). Values of keys that look secret are redacted in `Debug`.
    pub extra: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Defaults that fit the local stack: client id `caas`, 5 s send timeout, 5 ms linger.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            client_id: "caas".to_string(),
            send_timeout: Duration::from_secs(5),
            linger: Duration::from_millis(5),
            extra: BTreeMap::new(),
        }
    }

    /// The same settings with another `client.id`.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Add librdkafka properties (e.g. the authentication settings of
    /// `caas_runtime::config::CommonConfig::kafka_properties`) to [`Self::extra`].
    pub fn with_properties(mut self, properties: BTreeMap<String, String>) -> Self {
        self.extra.extend(properties);
        self
    }

    fn validate(&self) -> Result<(), ClientError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(ClientError::InvalidConfig {
                field: "bootstrap_servers",
                reason: "empty; set host:port of at least one broker, e.g. 127.0.0.1:9092"
                    .to_string(),
            });
        }
        if self.send_timeout <= self.linger {
            return Err(ClientError::InvalidConfig {
                field: "send_timeout",
                reason: format!(
                    "{} ms is not longer than linger ({} ms); records would time out while batching",
                    self.send_timeout.as_millis(),
                    self.linger.as_millis()
                ),
            });
        }
        Ok(())
    }

    fn common_properties(&self) -> Vec<(String, String)> {
        vec![
            property("bootstrap.servers", &self.bootstrap_servers),
            property("client.id", &self.client_id),
        ]
    }

    /// librdkafka properties of the producer: idempotent, `acks=all`, lz4, small linger.
    pub fn producer_properties(&self) -> Result<Vec<(String, String)>, ClientError> {
        self.validate()?;
        let send_timeout_ms = self.send_timeout.as_millis().max(1);
        let mut properties = self.common_properties();
        properties.extend([
            // Idempotence gives exactly-once per partition for librdkafka's internal retries
            // and keeps order with up to 5 requests in flight; it requires acks=all.
            property("enable.idempotence", "true"),
            property("acks", "all"),
            property("compression.type", "lz4"),
            // The Java client's partitioner (murmur2), so a conversation key lands on the same
            // partition whether we or an integrator's Java/Python client produced it.
            property("partitioner", "murmur2_random"),
            property("linger.ms", &self.linger.as_millis().to_string()),
            property("message.timeout.ms", &send_timeout_ms.to_string()),
            // A request may not outlive the record it carries.
            property(
                "request.timeout.ms",
                &send_timeout_ms.min(30_000).to_string(),
            ),
        ]);
        properties.extend(
            self.extra
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
        Ok(properties)
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extra: BTreeMap<&str, &str> = self
            .extra
            .iter()
            .map(|(key, value)| {
                let shown = if looks_secret(key) {
                    "***"
                } else {
                    value.as_str()
                };
                (key.as_str(), shown)
            })
            .collect();
        formatter
            .debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field("send_timeout", &self.send_timeout)
            .field("linger", &self.linger)
            .field("extra", &extra)
            .finish()
    }
}

fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", "key"]
        .iter()
        .any(|marker| key.contains(marker))
        && !key.ends_with(".location")
}

/// Where a consumer group without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// From the oldest retained record: a new worker processes the history (the default;
    /// handlers are idempotent, so this is safe).
    Earliest,
    /// Only records produced after the group first joined.
    Latest,
}

/// What one consumer loop consumes and how it treats failures.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Cluster connection.
    pub kafka: KafkaConfig,
    /// The consumer group: one per service, so each service scales and lags on its own.
    pub group_id: String,
    /// Topics to subscribe to (names from the catalogue, never literals in service code).
    pub topics: Vec<String>,
    /// Retries after the first failed attempt of a [`crate::HandlerError::Retryable`] record;
    /// once exhausted the record goes to the DLQ (see [`crate::run_consumer`]).
    pub max_retries: u32,
    /// Delay before the first retry; doubled on each further retry, plus jitter.
    pub backoff_base: Duration,
    /// Upper bound of one retry delay.
    pub backoff_max: Duration,
    /// `max.poll.interval.ms`. HAZARD: the loop handles records one at a time between polls,
    /// so one record's handler time plus all its retry delays must stay well below this, or
    /// librdkafka leaves the group, the partitions move to another member and this member's
    /// offset stores fail (the record is then redelivered there: safe, but a duplicate). The
    /// retry budget is checked against half of it at start-up.
    pub max_poll_interval: Duration,
    /// `session.timeout.ms`: how long the group waits for a silent (crashed) member before
    /// giving its partitions to others.
    pub session_timeout: Duration,
    /// `auto.commit.interval.ms`: how often stored offsets are committed in the background.
    /// Shorter means fewer redeliveries after a crash.
    pub auto_commit_interval: Duration,
    /// Where a group without committed offsets starts.
    pub offset_reset: OffsetReset,
    /// How often the consumer-lag gauge is refreshed.
    pub lag_refresh_interval: Duration,
}

impl ConsumerConfig {
    /// Defaults: 5 retries from 200 ms doubling up to 10 s, 5 min poll interval, 45 s session,
    /// commits every second, earliest, lag every 5 s.
    pub fn new(
        kafka: KafkaConfig,
        group_id: impl Into<String>,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            kafka,
            group_id: group_id.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            max_retries: 5,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            max_poll_interval: Duration::from_secs(300),
            session_timeout: Duration::from_secs(45),
            auto_commit_interval: Duration::from_secs(1),
            offset_reset: OffsetReset::Earliest,
            lag_refresh_interval: Duration::from_secs(5),
        }
    }

    /// The retry schedule.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: self.backoff_base,
            max: self.backoff_max,
        }
    }

    /// Check the settings that would break the guarantees; the error names the field.
    pub fn validate(&self) -> Result<(), ClientError> {
        self.kafka.validate()?;
        if self.group_id.trim().is_empty() {
            return Err(ClientError::InvalidConfig {
                field: "group_id",
                reason: "empty; use the service name, e.g. caas-logger".to_string(),
            });
        }
        if self.topics.is_empty() || self.topics.iter().any(|topic| topic.trim().is_empty()) {
            return Err(ClientError::InvalidConfig {
                field: "topics",
                reason: format!(
                    "need at least one non-empty topic name, got {:?}",
                    self.topics
                ),
            });
        }
        if let Some(topic) = self.topics.iter().find(|topic| topic.ends_with(".dlq")) {
            return Err(ClientError::InvalidConfig {
                field: "topics",
                reason: format!(
                    "{topic} is a dead-letter topic; consuming it with a dead-lettering loop \
                     would write to {topic}.dlq; replay DLQs with a dedicated tool"
                ),
            });
        }
        if self.backoff_base.is_zero() || self.backoff_max < self.backoff_base {
            return Err(ClientError::InvalidConfig {
                field: "backoff_base",
                reason: format!(
                    "need 0 < backoff_base ({:?}) <= backoff_max ({:?})",
                    self.backoff_base, self.backoff_max
                ),
            });
        }
        let retry_budget = self.backoff().worst_case_total(self.max_retries);
        if retry_budget >= self.max_poll_interval / 2 {
            return Err(ClientError::InvalidConfig {
                field: "max_retries",
                reason: format!(
                    "{} retries may sleep up to {} ms, not under half of max_poll_interval \
                     ({} ms); the consumer would be thrown out of its group while retrying; \
                     lower max_retries or backoff_max",
                    self.max_retries,
                    retry_budget.as_millis(),
                    self.max_poll_interval.as_millis()
                ),
            });
        }
        Ok(())
    }

    /// librdkafka properties of the consumer: at-least-once (offsets stored by the loop only
    /// after the handler or the DLQ produce succeeded; auto-commit commits only what was
    /// stored), cooperative rebalancing.
    pub fn consumer_properties(&self) -> Result<Vec<(String, String)>, ClientError> {
        self.validate()?;
        let mut properties = self.kafka.common_properties();
        properties.extend([
            property("group.id", &self.group_id),
            property("enable.auto.commit", "true"),
            property("enable.auto.offset.store", "false"),
            property(
                "auto.commit.interval.ms",
                &self.auto_commit_interval.as_millis().to_string(),
            ),
            property(
                "auto.offset.reset",
                match self.offset_reset {
                    OffsetReset::Earliest => "earliest",
                    OffsetReset::Latest => "latest",
                },
            ),
            // Incremental rebalancing: members keep the partitions they still own while the
            // group changes, instead of every member stopping for every join or leave.
            property("partition.assignment.strategy", "cooperative-sticky"),
            property(
                "max.poll.interval.ms",
                &self.max_poll_interval.as_millis().to_string(),
            ),
            property(
                "session.timeout.ms",
                &self.session_timeout.as_millis().to_string(),
            ),
            property("enable.partition.eof", "false"),
        ]);
        properties.extend(
            self.kafka
                .extra
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
        Ok(properties)
    }
}

fn property(key: &str, value: &str) -> (String, String) {
    (key.to_string(), value.to_string())
}

/// An rdkafka `ClientConfig` from computed properties.
pub(crate) fn client_config(properties: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(properties: &'a [(String, String)], key: &str) -> Option<&'a str> {
        properties
            .iter()
            .rev()
            .find(|(candidate, _)| candidate == key)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn the_producer_is_idempotent_acks_all_lz4_and_bounded_in_time() {
        let properties = KafkaConfig::new("127.0.0.1:9092")
            .producer_properties()
            .unwrap();
        assert_eq!(lookup(&properties, "enable.idempotence"), Some("true"));
        assert_eq!(lookup(&properties, "acks"), Some("all"));
        assert_eq!(lookup(&properties, "compression.type"), Some("lz4"));
        assert_eq!(lookup(&properties, "partitioner"), Some("murmur2_random"));
        assert_eq!(lookup(&properties, "linger.ms"), Some("5"));
        assert_eq!(lookup(&properties, "message.timeout.ms"), Some("5000"));
        assert_eq!(lookup(&properties, "request.timeout.ms"), Some("5000"));
    }

    #[test]
    fn the_consumer_stores_offsets_itself_and_rebalances_cooperatively() {
        let config = ConsumerConfig::new(KafkaConfig::new("b:9092"), "caas-logger", ["t.v1"]);
        let properties = config.consumer_properties().unwrap();
        assert_eq!(
            lookup(&properties, "enable.auto.offset.store"),
            Some("false")
        );
        assert_eq!(lookup(&properties, "enable.auto.commit"), Some("true"));
        assert_eq!(
            lookup(&properties, "partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        assert_eq!(lookup(&properties, "group.id"), Some("caas-logger"));
        assert_eq!(lookup(&properties, "auto.offset.reset"), Some("earliest"));
    }

    #[test]
    fn extra_properties_override_and_secrets_stay_out_of_debug() {
        let mut kafka = KafkaConfig::new("b:9092");
        kafka
            .extra
            .insert("sasl.password".to_string(), "hunter2".to_string());
        kafka
            .extra
            .insert("security.protocol".to_string(), "SASL_SSL".to_string());
        kafka
            .extra
            .insert("ssl.key.location".to_string(), "/etc/k.pem".to_string());
        let properties = kafka.producer_properties().unwrap();
        assert_eq!(lookup(&properties, "sasl.password"), Some("hunter2"));
        let shown = format!("{kafka:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("SASL_SSL"), "{shown}");
        assert!(shown.contains("/etc/k.pem"), "{shown}");
    }

    #[test]
    fn a_retry_budget_longer_than_the_poll_interval_is_refused() {
        let mut config = ConsumerConfig::new(KafkaConfig::new("b:9092"), "g", ["t"]);
        config.max_retries = 100;
        config.backoff_max = Duration::from_secs(30);
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("max_retries"), "{message}");
        assert!(message.contains("max_poll_interval"), "{message}");
    }

    #[test]
    fn empty_names_and_dlq_subscriptions_are_refused_with_the_field() {
        let empty_group = ConsumerConfig::new(KafkaConfig::new("b:9092"), " ", ["t"]);
        assert!(empty_group
            .validate()
            .unwrap_err()
            .to_string()
            .contains("group_id"));
        let no_topics = ConsumerConfig::new(KafkaConfig::new("b:9092"), "g", Vec::<String>::new());
        assert!(no_topics
            .validate()
            .unwrap_err()
            .to_string()
            .contains("topics"));
        let dlq = ConsumerConfig::new(KafkaConfig::new("b:9092"), "g", ["t.dlq"]);
        assert!(dlq
            .validate()
            .unwrap_err()
            .to_string()
            .contains("dead-letter"));
        let no_bootstrap = ConsumerConfig::new(KafkaConfig::new(""), "g", ["t"]);
        assert!(no_bootstrap
            .validate()
            .unwrap_err()
            .to_string()
            .contains("bootstrap_servers"));
    }

    #[test]
    fn the_defaults_are_valid() {
        ConsumerConfig::new(KafkaConfig::new("b:9092"), "g", ["t"])
            .validate()
            .unwrap();
    }
}
