//! The simulator's configuration, from `CAAS_*` variables with defaults for the local stack.

use std::net::SocketAddr;

use caas_runtime::{CommonConfig, ConfigError, Env, Secret};

use crate::knobs::Knobs;

/// Configuration of the provider simulator.
#[derive(Debug, Clone)]
pub struct Config {
    /// Logging settings (the simulator uses nothing else of the common settings).
    pub common: CommonConfig,
    /// `CAAS_SIMULATOR_ADDR`: where both provider APIs, `/_sim/*`, `/health` and `/ready` are
    /// served (default `127.0.0.1:8090`).
    pub http_addr: SocketAddr,
    /// `CAAS_SIMULATOR_WHATSAPP_WEBHOOK_URL`: where WhatsApp webhooks go (default ingest's
    /// `http://127.0.0.1:8080/webhooks/whatsapp`; `off` sends none).
    pub whatsapp_webhook_url: Option<String>,
    /// `CAAS_SIMULATOR_RCS_WEBHOOK_URL`: where RBM webhooks go (default
    /// `http://127.0.0.1:8080/webhooks/rcs`; `off` sends none).
    pub rcs_webhook_url: Option<String>,
    /// `CAAS_WHATSAPP_APP_SECRET`: the key WhatsApp webhooks are signed with (the one ingest
    /// verifies with).
    pub whatsapp_app_secret: Secret,
    /// `CAAS_RBM_CLIENT_TOKEN`: the key RBM webhooks are signed with.
    pub rbm_client_token: Secret,
    /// `CAAS_SIMULATOR_WEBHOOK_RETRIES`: further attempts after a webhook was not answered
    /// 2xx (default 5, backing off from 300 ms).
    pub webhook_retries: u32,
    /// `CAAS_SIMULATOR_MAX_RECORDS`: how many send requests (and webhooks) are kept for
    /// `/_sim/requests` (default 200000; the oldest go first).
    pub max_records: usize,
    /// The knobs the run starts with (and `POST /_sim/reset` returns to):
    /// `CAAS_SIMULATOR_LATENCY_MS` (0), `CAAS_SIMULATOR_LATENCY_JITTER_MS` (0),
    /// `CAAS_SIMULATOR_ERROR_RATE` (0), `CAAS_SIMULATOR_RATE_LIMIT_RATE` (0),
    /// `CAAS_SIMULATOR_MAX_PER_SECOND` (unset: no limit), `CAAS_SIMULATOR_FAILING_NUMBERS`
    /// (comma-separated), `CAAS_SIMULATOR_SENT_AFTER_MS` (200),
    /// `CAAS_SIMULATOR_DELIVERED_AFTER_MS` (1000), `CAAS_SIMULATOR_READ_AFTER_MS` (3000),
    /// `CAAS_SIMULATOR_READ_RATE` (1).
    pub knobs: Knobs,
}

fn optional_url(env: &Env, variable: &str, default: &str) -> Result<Option<String>, ConfigError> {
    let value = env.string(variable, default);
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        return Err(ConfigError::Invalid {
            variable: variable.to_string(),
            value,
            reason: "not an http(s) URL".to_string(),
            expected: "an http(s) URL, or off".to_string(),
        });
    }
    Ok(Some(value))
}

impl Config {
    /// Read the configuration; the error names the variable that is wrong.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Knobs::default();
        let max_per_second = env.parse::<u32>(
            "CAAS_SIMULATOR_MAX_PER_SECOND",
            0,
            "a whole number of requests per second (0 or unset: no limit)",
        )?;
        let knobs = Knobs {
            latency_ms: env.parse("CAAS_SIMULATOR_LATENCY_MS", 0, "milliseconds")?,
            latency_jitter_ms: env.parse("CAAS_SIMULATOR_LATENCY_JITTER_MS", 0, "milliseconds")?,
            error_rate: env.parse("CAAS_SIMULATOR_ERROR_RATE", 0.0, "a share between 0 and 1")?,
            rate_limit_rate: env.parse(
                "CAAS_SIMULATOR_RATE_LIMIT_RATE",
                0.0,
                "a share between 0 and 1",
            )?,
            max_per_second: (max_per_second > 0).then_some(max_per_second),
            failing_numbers: env
                .string("CAAS_SIMULATOR_FAILING_NUMBERS", "")
                .split(',')
                .map(str::trim)
                .filter(|number| !number.is_empty())
                .map(str::to_string)
                .collect(),
            sent_after_ms: env.parse(
                "CAAS_SIMULATOR_SENT_AFTER_MS",
                defaults.sent_after_ms,
                "milliseconds",
            )?,
            delivered_after_ms: env.parse(
                "CAAS_SIMULATOR_DELIVERED_AFTER_MS",
                defaults.delivered_after_ms,
                "milliseconds",
            )?,
            read_after_ms: env.parse(
                "CAAS_SIMULATOR_READ_AFTER_MS",
                defaults.read_after_ms,
                "milliseconds",
            )?,
            read_rate: env.parse("CAAS_SIMULATOR_READ_RATE", 1.0, "a share between 0 and 1")?,
            status_webhooks: true,
        };
        knobs.validate().map_err(|reason| ConfigError::Invalid {
            variable: "CAAS_SIMULATOR_*".to_string(),
            value: format!("{knobs:?}"),
            reason,
            expected: "rates between 0 and 1 and an ordered status timeline".to_string(),
        })?;
        Ok(Self {
            common: CommonConfig::from_env(env)?,
            http_addr: env.socket_addr("CAAS_SIMULATOR_ADDR", "127.0.0.1:8090")?,
            whatsapp_webhook_url: optional_url(
                env,
                "CAAS_SIMULATOR_WHATSAPP_WEBHOOK_URL",
                "http://127.0.0.1:8080/webhooks/whatsapp",
            )?,
            rcs_webhook_url: optional_url(
                env,
                "CAAS_SIMULATOR_RCS_WEBHOOK_URL",
                "http://127.0.0.1:8080/webhooks/rcs",
            )?,
            whatsapp_app_secret: env.secret("CAAS_WHATSAPP_APP_SECRET", "")?,
            rbm_client_token: env.secret("CAAS_RBM_CLIENT_TOKEN", "")?,
            webhook_retries: env.parse("CAAS_SIMULATOR_WEBHOOK_RETRIES", 5, "a whole number")?,
            max_records: env.parse("CAAS_SIMULATOR_MAX_RECORDS", 200_000, "a whole number")?,
            knobs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_the_local_stack() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.http_addr.port(), 8090);
        assert_eq!(
            config.whatsapp_webhook_url.as_deref(),
            Some("http://127.0.0.1:8080/webhooks/whatsapp")
        );
        assert_eq!(config.knobs, Knobs::default());
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("CAAS_SIMULATOR_ADDR", "nowhere"),
            ("CAAS_SIMULATOR_ERROR_RATE", "often"),
            ("CAAS_SIMULATOR_RCS_WEBHOOK_URL", "ftp://x"),
        ] {
            let error = Config::from_env(&Env::from_pairs([(variable, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{error}");
        }
        let error = Config::from_env(&Env::from_pairs([("CAAS_SIMULATOR_ERROR_RATE", "2")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("error_rate"), "{error}");
        let config = Config::from_env(&Env::from_pairs([(
            "CAAS_SIMULATOR_WHATSAPP_WEBHOOK_URL",
            "off",
        )]))
        .unwrap();
        assert_eq!(config.whatsapp_webhook_url, None);
    }
}
