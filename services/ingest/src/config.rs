//! The ingest service's configuration, read from `CAAS_*` variables. Every value has a default
//! that fits the local stack; a bad value fails start-up with a message naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

use caas_runtime::{CommonConfig, ConfigError, Env, Secret};

use crate::tenants::{Tenants, DEFAULT_TENANTS};

/// Largest body Meta sends (3 MB); larger bodies are answered 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Webhook requests per second per source address (far above what one provider sends to one
/// deployment; a load test from one machine may need more).
pub const DEFAULT_RATE_PER_SOURCE: f64 = 1000.0;
/// Requests one source may send at once.
pub const DEFAULT_RATE_BURST_PER_SOURCE: u32 = 2000;

/// Configuration of the ingest service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every CAAS process (Kafka, registry, Redis, logs).
    pub common: CommonConfig,
    /// `CAAS_INGEST_ADDR`: where the webhooks, `/openapi.yaml`, `/health`, `/ready` and
    /// `/metrics` are served (default `127.0.0.1:8080`).
    pub http_addr: SocketAddr,
    /// `CAAS_INGEST_TENANTS`: which WhatsApp `phone_number_id` and RBM `agentId` belong to which
    /// tenant, e.g. `demo:whatsapp=100000000000001,rcs=demo-agent;acme:whatsapp=...` (default:
    /// the demo tenant). See [`crate::tenants`].
    pub tenants: Tenants,
    /// `CAAS_WHATSAPP_APP_SECRET`: key of the `X-Hub-Signature-256` HMAC. Unset → WhatsApp
    /// posts are answered 503 (Meta retries until it is configured).
    pub whatsapp_app_secret: Secret,
    /// `CAAS_WHATSAPP_VERIFY_TOKEN`: the token of Meta's subscribe handshake. Unset → the
    /// handshake is refused.
    pub whatsapp_verify_token: Secret,
    /// `CAAS_RBM_CLIENT_TOKEN`: RBM client token, key of the `X-Goog-Signature` HMAC and token
    /// of the set-up handshake. Unset → RBM posts are answered 503.
    pub rbm_client_token: Secret,
    /// `CAAS_INGEST_PRODUCE_TIMEOUT_MS`: how long Kafka may take to acknowledge the events of a
    /// webhook before it is answered 503 (default 5000).
    pub produce_timeout: Duration,
    /// `CAAS_INGEST_PRODUCE_LINGER_MS`: how long the producer collects records into one batch
    /// (`linger.ms`, default 1). The provider waits for the acknowledgement, so latency wins over
    /// larger batches; under load batches fill up anyway while a request is in flight.
    pub produce_linger: Duration,
    /// `CAAS_INGEST_DEDUPE_TTL_SECS`: how long an event id is remembered in Redis after it was
    /// produced, so a provider's retry is not produced again (default 86400, one day; later
    /// retries are de-duplicated downstream by event id).
    pub dedupe_ttl: Duration,
    /// `CAAS_INGEST_MAX_BODY_BYTES`: bodies above this are answered 413 (default 3 MiB).
    pub max_body_bytes: usize,
    /// `CAAS_INGEST_RATE_PER_SOURCE`: webhook requests per second one peer address may send
    /// before it is answered 429 with `Retry-After` (default 1000; 0 turns the limit off). Per
    /// instance; the providers retry a 429.
    pub rate_per_source: f64,
    /// `CAAS_INGEST_RATE_BURST_PER_SOURCE`: requests one source may send at once above the
    /// rate (default 2000).
    pub rate_burst_per_source: u32,
}

impl Config {
    /// Read the configuration; the error names the variable that is wrong.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let tenants_variable = "CAAS_INGEST_TENANTS";
        let tenants_text = env.string(tenants_variable, DEFAULT_TENANTS);
        let tenants = Tenants::parse(&tenants_text).map_err(|error| ConfigError::Invalid {
            variable: tenants_variable.to_string(),
            value: tenants_text.clone(),
            reason: error.to_string(),
            expected: "<tenant>:whatsapp=<phone_number_id>,rcs=<agentId>[;<tenant>:...]"
                .to_string(),
        })?;
        let produce_timeout = env.millis("CAAS_INGEST_PRODUCE_TIMEOUT_MS", 5_000)?;
        if produce_timeout < Duration::from_millis(100) {
            return Err(ConfigError::Invalid {
                variable: "CAAS_INGEST_PRODUCE_TIMEOUT_MS".to_string(),
                value: produce_timeout.as_millis().to_string(),
                reason: "too short for Kafka to acknowledge anything".to_string(),
                expected: "at least 100 milliseconds".to_string(),
            });
        }
        let produce_linger = env.millis("CAAS_INGEST_PRODUCE_LINGER_MS", 1)?;
        if produce_linger >= produce_timeout {
            return Err(ConfigError::Invalid {
                variable: "CAAS_INGEST_PRODUCE_LINGER_MS".to_string(),
                value: produce_linger.as_millis().to_string(),
                reason: "records would time out while the producer collects them".to_string(),
                expected: "fewer milliseconds than CAAS_INGEST_PRODUCE_TIMEOUT_MS".to_string(),
            });
        }
        let dedupe_ttl_seconds = env.parse::<u64>(
            "CAAS_INGEST_DEDUPE_TTL_SECS",
            86_400,
            "a whole number of seconds, at least 1",
        )?;
        if dedupe_ttl_seconds == 0 {
            return Err(ConfigError::Invalid {
                variable: "CAAS_INGEST_DEDUPE_TTL_SECS".to_string(),
                value: "0".to_string(),
                reason: "an event id must be remembered for some time".to_string(),
                expected: "a whole number of seconds, at least 1".to_string(),
            });
        }
        let max_body_bytes = env.parse::<usize>(
            "CAAS_INGEST_MAX_BODY_BYTES",
            DEFAULT_MAX_BODY_BYTES,
            "a whole number of bytes",
        )?;
        let (rate_per_source, rate_burst_per_source) = caas_runtime::ratelimit::rate_from_env(
            env,
            "CAAS_INGEST_RATE_PER_SOURCE",
            DEFAULT_RATE_PER_SOURCE,
            "CAAS_INGEST_RATE_BURST_PER_SOURCE",
            DEFAULT_RATE_BURST_PER_SOURCE,
        )?;
        Ok(Self {
            common: CommonConfig::from_env(env)?,
            http_addr: env.socket_addr("CAAS_INGEST_ADDR", "127.0.0.1:8080")?,
            tenants,
            whatsapp_app_secret: env.secret("CAAS_WHATSAPP_APP_SECRET", "")?,
            whatsapp_verify_token: env.secret("CAAS_WHATSAPP_VERIFY_TOKEN", "")?,
            rbm_client_token: env.secret("CAAS_RBM_CLIENT_TOKEN", "")?,
            produce_timeout,
            produce_linger,
            dedupe_ttl: Duration::from_secs(dedupe_ttl_seconds),
            max_body_bytes,
            rate_per_source,
            rate_burst_per_source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_the_local_stack() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.http_addr.port(), 8080);
        assert_eq!(
            config.tenants.by_phone_number_id("100000000000001"),
            Some("demo")
        );
        assert_eq!(config.tenants.by_agent_id("demo-agent"), Some("demo"));
        assert_eq!(config.produce_timeout, Duration::from_secs(5));
        assert_eq!(config.produce_linger, Duration::from_millis(1));
        assert_eq!(config.max_body_bytes, 3 * 1024 * 1024);
        assert_eq!(config.whatsapp_app_secret.expose(), "");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("CAAS_INGEST_TENANTS", "demo:sms=1"),
            ("CAAS_INGEST_PRODUCE_TIMEOUT_MS", "soon"),
            ("CAAS_INGEST_PRODUCE_TIMEOUT_MS", "5"),
            ("CAAS_INGEST_PRODUCE_LINGER_MS", "5000"),
            ("CAAS_INGEST_PRODUCE_LINGER_MS", "later"),
            ("CAAS_INGEST_DEDUPE_TTL_SECS", "0"),
            ("CAAS_INGEST_MAX_BODY_BYTES", "3MB"),
            ("CAAS_INGEST_RATE_PER_SOURCE", "fast"),
            ("CAAS_INGEST_RATE_PER_SOURCE", "-1"),
            ("CAAS_INGEST_RATE_BURST_PER_SOURCE", "-5"),
        ] {
            let error = Config::from_env(&Env::from_pairs([(variable, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{variable}={value}: {error}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let config = Config::from_env(&Env::from_pairs([(
            "CAAS_WHATSAPP_APP_SECRET",
            "very-secret",
        )]))
        .unwrap();
        assert!(!format!("{config:?}").contains("very-secret"));
    }
}
