//! The chatbot's configuration, read from `CAAS_*` variables with defaults for the local
//! stack; a bad value fails start-up with a message naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use caas_runtime::{CommonConfig, ConfigError, Env};

/// Configuration of the chatbot service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every CAAS process.
    pub common: CommonConfig,
    /// `CAAS_CHATBOT_OPS_ADDR`: where `/health`, `/ready`, `/metrics` and `/flows` are served
    /// (default `127.0.0.1:9103`).
    pub http_addr: SocketAddr,
    /// `CAAS_CHATBOT_GROUP_ID`: consumer group of `inbound.messages.v1` and
    /// `conversation.events.v1` (default `caas-chatbot`).
    pub group_id: String,
    /// `CAAS_CHATBOT_FLOWS_DIR`: the directory of flow files, one per tenant (`*.yaml`,
    /// `*.yml`, `*.json`; default `services/chatbot/flows`, relative to the working directory).
    pub flows_dir: PathBuf,
    /// `CAAS_CHATBOT_RELOAD_MS`: how often the flow directory is checked for changes
    /// (default 2000).
    pub reload_interval: Duration,
    /// `CAAS_CHATBOT_TICK_MS`: how often due timeouts of waiting steps are looked for
    /// (default 1000).
    pub tick_interval: Duration,
    /// `CAAS_CHATBOT_SESSION_TTL_HOURS`: how long an untouched session is kept in Redis
    /// (default 720, 30 days; a flow's `idle_expiry` restarts it much earlier).
    pub session_ttl: Duration,
}

impl Config {
    /// Read the configuration; the error names the variable that is wrong.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let positive = |variable: &str, default_ms: u64| -> Result<Duration, ConfigError> {
            let value = env.millis(variable, default_ms)?;
            if value < Duration::from_millis(10) {
                return Err(ConfigError::Invalid {
                    variable: variable.to_string(),
                    value: value.as_millis().to_string(),
                    reason: "too short".to_string(),
                    expected: "at least 10 milliseconds".to_string(),
                });
            }
            Ok(value)
        };
        let ttl_hours = env.parse::<u64>(
            "CAAS_CHATBOT_SESSION_TTL_HOURS",
            720,
            "a whole number of hours, at least 1",
        )?;
        if ttl_hours == 0 {
            return Err(ConfigError::Invalid {
                variable: "CAAS_CHATBOT_SESSION_TTL_HOURS".to_string(),
                value: "0".to_string(),
                reason: "sessions would vanish at once".to_string(),
                expected: "a whole number of hours, at least 1".to_string(),
            });
        }
        Ok(Self {
            common: CommonConfig::from_env(env)?,
            http_addr: env.socket_addr("CAAS_CHATBOT_OPS_ADDR", "127.0.0.1:9103")?,
            group_id: env.string("CAAS_CHATBOT_GROUP_ID", "caas-chatbot"),
            flows_dir: PathBuf::from(
                env.string("CAAS_CHATBOT_FLOWS_DIR", "services/chatbot/flows"),
            ),
            reload_interval: positive("CAAS_CHATBOT_RELOAD_MS", 2_000)?,
            tick_interval: positive("CAAS_CHATBOT_TICK_MS", 1_000)?,
            session_ttl: Duration::from_secs(ttl_hours * 3600),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_the_local_stack() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.http_addr.port(), 9103);
        assert_eq!(config.flows_dir, PathBuf::from("services/chatbot/flows"));
        assert_eq!(config.group_id, "caas-chatbot");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("CAAS_CHATBOT_RELOAD_MS", "often"),
            ("CAAS_CHATBOT_TICK_MS", "1"),
            ("CAAS_CHATBOT_SESSION_TTL_HOURS", "0"),
        ] {
            let error = Config::from_env(&Env::from_pairs([(variable, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{error}");
        }
    }
}
