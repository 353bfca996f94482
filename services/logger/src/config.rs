//! The logger's configuration, from `CAAS_*` variables (see the README for the list).

use std::net::SocketAddr;
use std::time::Duration;

use caas_events::topics;
use caas_runtime::{CommonConfig, ConfigError, Env};

/// The topics the logger consumes by default: every event topic except the raw presence
/// signals (`presence.events.v1`: typing and heartbeats, worthless after seconds; the derived
/// `presence.updates.v1` is stored instead).
pub const DEFAULT_TOPICS: [&str; 8] = [
    topics::INBOUND_MESSAGES,
    topics::INBOUND_STATUSES,
    topics::OUTBOUND_COMMANDS,
    topics::OUTBOUND_RESULTS,
    topics::CONVERSATION_EVENTS,
    topics::PRESENCE_UPDATES,
    topics::CAMPAIGN_COMMANDS,
    topics::CAMPAIGN_EVENTS,
];

/// How long each collection keeps a document after its last change; `None` keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `events`, counted from `stored_at`.
    pub events: Option<Duration>,
    /// `messages`, counted from `updated_at`.
    pub messages: Option<Duration>,
    /// `conversations`, counted from `updated_at`.
    pub conversations: Option<Duration>,
    /// `orphan_statuses` (statuses no message ever claimed), counted from `updated_at`.
    pub orphan_statuses: Option<Duration>,
}

impl Default for Retention {
    /// Keep history forever; drop unclaimed statuses after 7 days.
    fn default() -> Self {
        Self {
            events: None,
            messages: None,
            conversations: None,
            orphan_statuses: Some(Duration::from_secs(7 * 86_400)),
        }
    }
}

/// Configuration of the logger service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every CAAS process.
    pub common: CommonConfig,
    /// `CAAS_LOGGER_OPS_ADDR`: where `/health`, `/ready` and `/metrics` are served (default `127.0.0.1:9101`).
    pub http_addr: SocketAddr,
    /// `CAAS_LOGGER_GROUP_ID`: the consumer group (default `caas-logger`); every instance of
    /// the logger shares it.
    pub group_id: String,
    /// `CAAS_LOGGER_TOPIC_PREFIX`: prepended to every topic name consumed (default empty). For
    /// tests and shared clusters that namespace their topics; the DLQs follow
    /// (`<prefix><topic>.dlq`).
    pub topic_prefix: String,
    /// `CAAS_LOGGER_TOPICS`: comma-separated catalogue topic names to consume (default: every
    /// event topic except `presence.events.v1`).
    pub topics: Vec<String>,
    /// `CAAS_LOGGER_BATCH_MAX_RECORDS`: the most records written in one MongoDB transaction
    /// (default 1000).
    pub batch_max_records: usize,
    /// `CAAS_LOGGER_BATCH_MAX_WAIT_MS`: how long a batch keeps collecting after its first record
    /// (default 20: it is added to every event's way to the operators, who wait for its `seq`;
    /// under load batches fill by size long before).
    pub batch_max_wait: Duration,
    /// `CAAS_LOGGER_SESSION_TIMEOUT_MS`: how long the group waits for a silent (crashed)
    /// instance before giving its partitions to the others (default 45000; the broker accepts
    /// 6000 and up by default). Shorter means faster take-over after a crash.
    pub session_timeout: Duration,
    /// `CAAS_LOGGER_EVENTS_RETENTION_DAYS`, `CAAS_LOGGER_MESSAGES_RETENTION_DAYS`,
    /// `CAAS_LOGGER_CONVERSATIONS_RETENTION_DAYS`, `CAAS_LOGGER_ORPHAN_STATUSES_RETENTION_DAYS`:
    /// maximum age per collection in days, enforced by TTL indexes; 0 keeps forever (defaults
    /// 0, 0, 0 and 7).
    pub retention: Retention,
    /// `CAAS_LOGGER_ANNOUNCE_PREFIX`: after each committed batch the logger announces the
    /// `seq`s it assigned on the Redis (`CAAS_REDIS_URL`) channel `<prefix>:<database>`
    /// (default prefix `caas:logger:sequenced`; the gateway reads the same variable). `off`
    /// turns announcing off ([`None`]). Best effort: Redis being down never holds a batch up.
    pub announce_prefix: Option<String>,
}

fn days(env: &Env, variable: &str, default_days: u64) -> Result<Option<Duration>, ConfigError> {
    let value = env.parse::<u64>(
        variable,
        default_days,
        "a whole number of days, 0 to keep forever",
    )?;
    if value > 36_500 {
        return Err(ConfigError::Invalid {
            variable: variable.to_string(),
            value: value.to_string(),
            reason: "more than 100 years".to_string(),
            expected: "a whole number of days up to 36500, 0 to keep forever".to_string(),
        });
    }
    Ok((value > 0).then(|| Duration::from_secs(value * 86_400)))
}

impl Config {
    /// Read the configuration; the error names the variable that is wrong.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let topics_raw = env.string("CAAS_LOGGER_TOPICS", &DEFAULT_TOPICS.join(","));
        let mut selected = Vec::new();
        for name in topics_raw
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            if !topics::ALL.contains(&name) {
                return Err(ConfigError::Invalid {
                    variable: "CAAS_LOGGER_TOPICS".to_string(),
                    value: topics_raw.clone(),
                    reason: format!("{name:?} is not a catalogue topic"),
                    expected: topics::ALL.join(" | "),
                });
            }
            if !selected.contains(&name.to_string()) {
                selected.push(name.to_string());
            }
        }
        if selected.is_empty() {
            return Err(ConfigError::Invalid {
                variable: "CAAS_LOGGER_TOPICS".to_string(),
                value: topics_raw,
                reason: "no topic".to_string(),
                expected: "a comma-separated list of catalogue topics".to_string(),
            });
        }
        let batch_max_records = env.parse::<usize>(
            "CAAS_LOGGER_BATCH_MAX_RECORDS",
            1000,
            "a number of records from 1 to 10000",
        )?;
        if !(1..=10_000).contains(&batch_max_records) {
            return Err(ConfigError::Invalid {
                variable: "CAAS_LOGGER_BATCH_MAX_RECORDS".to_string(),
                value: batch_max_records.to_string(),
                reason: "out of range".to_string(),
                expected: "a number of records from 1 to 10000".to_string(),
            });
        }
        let batch_max_wait = env.millis("CAAS_LOGGER_BATCH_MAX_WAIT_MS", 20)?;
        if batch_max_wait > Duration::from_secs(10) {
            return Err(ConfigError::Invalid {
                variable: "CAAS_LOGGER_BATCH_MAX_WAIT_MS".to_string(),
                value: batch_max_wait.as_millis().to_string(),
                reason: "longer than 10 s".to_string(),
                expected: "milliseconds from 0 to 10000".to_string(),
            });
        }
        let session_timeout = env.millis("CAAS_LOGGER_SESSION_TIMEOUT_MS", 45_000)?;
        if session_timeout < Duration::from_secs(1) || session_timeout > Duration::from_secs(300) {
            return Err(ConfigError::Invalid {
                variable: "CAAS_LOGGER_SESSION_TIMEOUT_MS".to_string(),
                value: session_timeout.as_millis().to_string(),
                reason: "out of range".to_string(),
                expected: "milliseconds from 1000 to 300000 (the broker's group.min/max.session.timeout.ms apply)".to_string(),
            });
        }
        let retention = Retention {
            events: days(env, "CAAS_LOGGER_EVENTS_RETENTION_DAYS", 0)?,
            messages: days(env, "CAAS_LOGGER_MESSAGES_RETENTION_DAYS", 0)?,
            conversations: days(env, "CAAS_LOGGER_CONVERSATIONS_RETENTION_DAYS", 0)?,
            orphan_statuses: days(env, "CAAS_LOGGER_ORPHAN_STATUSES_RETENTION_DAYS", 7)?,
        };
        // A conversation that expired while its events or messages live on would restart its
        // sequence at 1 next time and collide with the old numbers.
        if let Some(conversations) = retention.conversations {
            let outlived = [retention.events, retention.messages]
                .iter()
                .any(|other| other.is_none_or(|other| other > conversations));
            if outlived {
                return Err(ConfigError::Invalid {
                    variable: "CAAS_LOGGER_CONVERSATIONS_RETENTION_DAYS".to_string(),
                    value: (conversations.as_secs() / 86_400).to_string(),
                    reason: "conversations would expire before their events or messages, and \
                             their sequence numbers would restart"
                        .to_string(),
                    expected: "0, or at least CAAS_LOGGER_EVENTS_RETENTION_DAYS and \
                               CAAS_LOGGER_MESSAGES_RETENTION_DAYS (both non-zero)"
                        .to_string(),
                });
            }
        }
        Ok(Self {
            common: CommonConfig::from_env(env)?,
            http_addr: env.socket_addr("CAAS_LOGGER_OPS_ADDR", "127.0.0.1:9101")?,
            group_id: env.string("CAAS_LOGGER_GROUP_ID", "caas-logger"),
            topic_prefix: env.string("CAAS_LOGGER_TOPIC_PREFIX", ""),
            topics: selected,
            batch_max_records,
            batch_max_wait,
            session_timeout,
            retention,
            announce_prefix: crate::announce::prefix_from_env(env),
        })
    }

    /// The topic names subscribed to: the prefix plus each catalogue name.
    pub fn subscribed_topics(&self) -> Vec<String> {
        self.topics
            .iter()
            .map(|topic| format!("{}{topic}", self.topic_prefix))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_consume_every_event_topic_but_raw_presence() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.topics.len(), 8);
        assert!(!config.topics.contains(&topics::PRESENCE_EVENTS.to_string()));
        assert_eq!(config.group_id, "caas-logger");
        assert_eq!(config.batch_max_records, 1000);
        assert_eq!(config.batch_max_wait, Duration::from_millis(20));
        assert_eq!(config.retention, Retention::default());
        assert_eq!(
            config.announce_prefix.as_deref(),
            Some("caas:logger:sequenced")
        );
        let off = Env::from_pairs([("CAAS_LOGGER_ANNOUNCE_PREFIX", "off")]);
        assert_eq!(Config::from_env(&off).unwrap().announce_prefix, None);
    }

    #[test]
    fn a_prefix_applies_to_every_topic() {
        let env = Env::from_pairs([
            ("CAAS_LOGGER_TOPIC_PREFIX", "test-1."),
            (
                "CAAS_LOGGER_TOPICS",
                "inbound.messages.v1, inbound.statuses.v1",
            ),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(
            config.subscribed_topics(),
            vec!["test-1.inbound.messages.v1", "test-1.inbound.statuses.v1"]
        );
    }

    #[test]
    fn unknown_topics_and_bad_sizes_name_their_variable() {
        for (variable, value) in [
            ("CAAS_LOGGER_TOPICS", "inbound.messages.v2"),
            ("CAAS_LOGGER_BATCH_MAX_RECORDS", "0"),
            ("CAAS_LOGGER_BATCH_MAX_WAIT_MS", "60000"),
            ("CAAS_LOGGER_EVENTS_RETENTION_DAYS", "soon"),
        ] {
            let message = Config::from_env(&Env::from_pairs([(variable, value)]))
                .unwrap_err()
                .to_string();
            assert!(message.contains(variable), "{message}");
        }
    }

    #[test]
    fn conversations_may_not_expire_before_their_events() {
        let env = Env::from_pairs([
            ("CAAS_LOGGER_CONVERSATIONS_RETENTION_DAYS", "30"),
            ("CAAS_LOGGER_EVENTS_RETENTION_DAYS", "90"),
            ("CAAS_LOGGER_MESSAGES_RETENTION_DAYS", "30"),
        ]);
        let message = Config::from_env(&env).unwrap_err().to_string();
        assert!(
            message.contains("CAAS_LOGGER_CONVERSATIONS_RETENTION_DAYS"),
            "{message}"
        );
        let fine = Env::from_pairs([
            ("CAAS_LOGGER_CONVERSATIONS_RETENTION_DAYS", "90"),
            ("CAAS_LOGGER_EVENTS_RETENTION_DAYS", "90"),
            ("CAAS_LOGGER_MESSAGES_RETENTION_DAYS", "30"),
        ]);
        let retention = Config::from_env(&fine).unwrap().retention;
        assert_eq!(retention.events, Some(Duration::from_secs(90 * 86_400)));
    }
}
