//! The presence worker's configuration, from `CAAS_*` variables (see the README for the list).

use std::net::SocketAddr;
use std::time::Duration;

use caas_runtime::{CommonConfig, ConfigError, Env};

use crate::domain::Settings;

/// Configuration of the presence service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every CAAS process.
    pub common: CommonConfig,
    /// `CAAS_PRESENCE_OPS_ADDR`: where `/health`, `/ready` and `/metrics` are served (default `127.0.0.1:9102`).
    pub http_addr: SocketAddr,
    /// `CAAS_PRESENCE_GROUP_ID`: the consumer group (default `caas-presence`).
    pub group_id: String,
    /// `CAAS_PRESENCE_TOPIC_PREFIX`: prepended to the topics consumed and produced (default
    /// empty); for tests and shared clusters.
    pub topic_prefix: String,
    /// `CAAS_PRESENCE_TYPING_TTL_MS`: how long typing lasts without renewal when the signal
    /// has no `expires_at` (default 6000).
    pub typing_ttl: Duration,
    /// `CAAS_PRESENCE_ONLINE_TTL_MS`: how long online lasts after a heartbeat without
    /// `expires_at` (default 30000): the missed-heartbeat window.
    pub online_ttl: Duration,
    /// `CAAS_PRESENCE_MAX_TTL_MS`: the longest any signal may last, whatever its `expires_at`
    /// says (default 300000).
    pub max_ttl: Duration,
    /// `CAAS_PRESENCE_SCAN_INTERVAL_MS`: how often lapsed typing and online states are looked
    /// for (default 1000); an expiry is reported at most this late.
    pub scan_interval: Duration,
    /// `CAAS_PRESENCE_STATE_TTL_DAYS`: how long untouched state (last seen, last read) is kept
    /// (default 30).
    pub state_ttl: Duration,
}

fn positive_millis(env: &Env, variable: &str, default_ms: u64) -> Result<Duration, ConfigError> {
    let value = env.millis(variable, default_ms)?;
    if value.is_zero() {
        return Err(ConfigError::Invalid {
            variable: variable.to_string(),
            value: "0".to_string(),
            reason: "must be positive".to_string(),
            expected: "a positive number of milliseconds".to_string(),
        });
    }
    Ok(value)
}

impl Config {
    /// Read the configuration; the error names the variable that is wrong.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let state_ttl_days = env.parse::<u64>(
            "CAAS_PRESENCE_STATE_TTL_DAYS",
            30,
            "a whole number of days from 1 to 3650",
        )?;
        if !(1..=3650).contains(&state_ttl_days) {
            return Err(ConfigError::Invalid {
                variable: "CAAS_PRESENCE_STATE_TTL_DAYS".to_string(),
                value: state_ttl_days.to_string(),
                reason: "out of range".to_string(),
                expected: "a whole number of days from 1 to 3650".to_string(),
            });
        }
        let config = Self {
            common: CommonConfig::from_env(env)?,
            http_addr: env.socket_addr("CAAS_PRESENCE_OPS_ADDR", "127.0.0.1:9102")?,
            group_id: env.string("CAAS_PRESENCE_GROUP_ID", "caas-presence"),
            topic_prefix: env.string("CAAS_PRESENCE_TOPIC_PREFIX", ""),
            typing_ttl: positive_millis(env, "CAAS_PRESENCE_TYPING_TTL_MS", 6_000)?,
            online_ttl: positive_millis(env, "CAAS_PRESENCE_ONLINE_TTL_MS", 30_000)?,
            max_ttl: positive_millis(env, "CAAS_PRESENCE_MAX_TTL_MS", 300_000)?,
            scan_interval: positive_millis(env, "CAAS_PRESENCE_SCAN_INTERVAL_MS", 1_000)?,
            state_ttl: Duration::from_secs(state_ttl_days * 86_400),
        };
        if config.max_ttl < config.online_ttl.max(config.typing_ttl) {
            return Err(ConfigError::Invalid {
                variable: "CAAS_PRESENCE_MAX_TTL_MS".to_string(),
                value: config.max_ttl.as_millis().to_string(),
                reason: "shorter than the typing or online time to live".to_string(),
                expected: "at least CAAS_PRESENCE_ONLINE_TTL_MS and CAAS_PRESENCE_TYPING_TTL_MS"
                    .to_string(),
            });
        }
        Ok(config)
    }

    /// The decision core's settings.
    pub fn settings(&self) -> Settings {
        Settings {
            typing_ttl_ms: self.typing_ttl.as_millis() as i64,
            online_ttl_ms: self.online_ttl.as_millis() as i64,
            max_ttl_ms: self.max_ttl.as_millis() as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_the_local_stack() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.group_id, "caas-presence");
        assert_eq!(config.settings().online_ttl_ms, 30_000);
        assert_eq!(config.scan_interval, Duration::from_secs(1));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("CAAS_PRESENCE_TYPING_TTL_MS", "0"),
            ("CAAS_PRESENCE_SCAN_INTERVAL_MS", "often"),
            ("CAAS_PRESENCE_MAX_TTL_MS", "10"),
            ("CAAS_PRESENCE_STATE_TTL_DAYS", "0"),
        ] {
            let message = Config::from_env(&Env::from_pairs([(variable, value)]))
                .unwrap_err()
                .to_string();
            assert!(message.contains(variable), "{message}");
        }
    }
}
