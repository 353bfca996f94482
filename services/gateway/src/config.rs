//! The gateway's typed configuration, read from `CAAS_*` variables.

use std::net::SocketAddr;
use std::time::Duration;

use caas_kafka::OffsetReset;
use caas_runtime::{CommonConfig, ConfigError, Env, Secret};

use crate::domain::origin::AllowedOrigins;

/// Configuration of the gateway service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every CAAS process.
    pub common: CommonConfig,
    /// `CAAS_GATEWAY_ADDR`: where socket.io, the REST API, the dashboard and `/health`,
    /// `/ready`, `/metrics` are served (default `127.0.0.1:3000`).
    pub http_addr: SocketAddr,
    /// `CAAS_JWT_SECRET`: the HS256 key operator tokens are signed with. Empty refuses every
    /// token (with an error that says so).
    pub jwt_secret: Secret,
    /// `CAAS_GATEWAY_CONSUMER_GROUP`: the one Kafka consumer group every gateway instance joins
    /// (default `caas-gateway`), so each record is fanned out once, by one instance, to the
    /// sockets of all of them.
    pub consumer_group: String,
    /// `CAAS_GATEWAY_OFFSET_RESET`: where a consumer group without committed offsets starts:
    /// `latest` (default: operators need what happens now; history comes from the REST API)
    /// or `earliest`.
    pub offset_reset: OffsetReset,
    /// `CAAS_GATEWAY_REDIS_PREFIX`: prefix of the socket.io adapter's Redis channels (default
    /// `caas-gateway`). Instances that must reach each other's sockets share it.
    pub redis_prefix: String,
    /// `CAAS_GATEWAY_SEQ_WAIT_MS`: how long a record may wait for the logger to assign its
    /// conversation `seq` before it is emitted without one (default 3000).
    pub seq_wait: Duration,
    /// `CAAS_LOGGER_GROUP_ID`: the logger's consumer group (default `caas-logger`, the same
    /// variable the logger reads); once it committed past a record that has no `seq`, none
    /// will come and the gateway stops waiting.
    pub logger_group: String,
    /// `CAAS_LOGGER_ANNOUNCE_PREFIX`: the prefix of the Redis channel on which the logger
    /// announces the `seq`s it committed (the same variable the logger reads; default
    /// `caas:logger:sequenced`, channel `<prefix>:<CAAS_MONGODB_DATABASE>`); `None` (`off`):
    /// do not listen, read MongoDB only.
    pub announce_prefix: Option<String>,
    /// The REST API's rate limit per token (`CAAS_GATEWAY_API_RATE_PER_TOKEN`, `_BURST`).
    pub api_rate_limit: crate::api_limit::ApiRateLimit,
    /// `CAAS_GATEWAY_ALLOWED_ORIGINS`: browser origins (`scheme://host[:port]`, comma-separated,
    /// or `*` for any) that may call the REST API cross-origin and open socket.io connections.
    /// Default empty: same-origin only (the dashboard this gateway serves). Requests without an
    /// `Origin` header (not a browser) are always allowed.
    pub allowed_origins: AllowedOrigins,
}

impl Config {
    /// Read the configuration; the error names the variable that is wrong.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let offset_reset = match env
            .choice(
                "CAAS_GATEWAY_OFFSET_RESET",
                "latest",
                &["latest", "earliest"],
            )?
            .as_str()
        {
            "earliest" => OffsetReset::Earliest,
            _ => OffsetReset::Latest,
        };
        let consumer_group = env.string("CAAS_GATEWAY_CONSUMER_GROUP", "caas-gateway");
        let redis_prefix = env.string("CAAS_GATEWAY_REDIS_PREFIX", "caas-gateway");
        if redis_prefix.contains('#') {
            return Err(ConfigError::Invalid {
                variable: "CAAS_GATEWAY_REDIS_PREFIX".to_string(),
                value: redis_prefix,
                reason: "the adapter separates channel parts with '#'".to_string(),
                expected: "a prefix without '#', for example caas-gateway".to_string(),
            });
        }
        let allowed_origins = allowed_origins_from_env(env)?;
        Ok(Self {
            common: CommonConfig::from_env(env)?,
            http_addr: env.socket_addr("CAAS_GATEWAY_ADDR", "127.0.0.1:3000")?,
            jwt_secret: env.secret("CAAS_JWT_SECRET", "")?,
            consumer_group,
            offset_reset,
            redis_prefix,
            seq_wait: env.millis("CAAS_GATEWAY_SEQ_WAIT_MS", 3_000)?,
            logger_group: env.string("CAAS_LOGGER_GROUP_ID", "caas-logger"),
            announce_prefix: caas_logger::announce::prefix_from_env(env),
            api_rate_limit: crate::api_limit::ApiRateLimit::from_env(env)?,
            allowed_origins,
        })
    }

    /// The Redis URL for the socket.io adapter: the common `CAAS_REDIS_URL` with
    /// `protocol=resp3` added when it names no protocol, since the adapter receives its
    /// pub/sub messages as RESP3 pushes.
    pub fn adapter_redis_url(&self) -> Secret {
        Secret::new(with_resp3(self.common.redis_url.expose()))
    }
}

/// `CAAS_GATEWAY_ALLOWED_ORIGINS`, parsed; a value that is not an origin stops start-up.
fn allowed_origins_from_env(env: &Env) -> Result<AllowedOrigins, ConfigError> {
    let variable = "CAAS_GATEWAY_ALLOWED_ORIGINS";
    let raw = env.string(variable, "");
    AllowedOrigins::parse(&raw).map_err(|error| ConfigError::Invalid {
        variable: variable.to_string(),
        value: raw.clone(),
        reason: error.to_string(),
        expected:
            "* or comma-separated origins such as https://ops.example.com,http://localhost:5173 \
                   (empty: same-origin only)"
                .to_string(),
    })
}

/// Adds `protocol=resp3` to a Redis URL that names no protocol.
pub fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        return url.to_string();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}protocol=resp3")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_the_local_stack() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.http_addr.port(), 3000);
        assert_eq!(config.consumer_group, "caas-gateway");
        assert_eq!(config.offset_reset, OffsetReset::Latest);
        assert_eq!(config.seq_wait, Duration::from_secs(3));
        assert_eq!(config.allowed_origins, AllowedOrigins::List(Vec::new()));
        assert_eq!(
            config.adapter_redis_url().expose(),
            "redis://127.0.0.1:6379?protocol=resp3"
        );
    }

    #[test]
    fn resp3_is_added_only_when_no_protocol_is_named() {
        assert_eq!(
            with_resp3("redis://:pw@redis:6379/0?timeout=1"),
            "redis://:pw@redis:6379/0?timeout=1&protocol=resp3"
        );
        assert_eq!(
            with_resp3("redis://h:1?protocol=resp2"),
            "redis://h:1?protocol=resp2"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let env = Env::from_pairs([("CAAS_GATEWAY_OFFSET_RESET", "middle")]);
        let error = Config::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("CAAS_GATEWAY_OFFSET_RESET"), "{error}");
        let env = Env::from_pairs([("CAAS_GATEWAY_REDIS_PREFIX", "a#b")]);
        let error = Config::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("CAAS_GATEWAY_REDIS_PREFIX"), "{error}");
    }

    #[test]
    fn an_allowed_origin_that_is_not_an_origin_stops_start_up_with_the_fix() {
        let env = Env::from_pairs([(
            "CAAS_GATEWAY_ALLOWED_ORIGINS",
            "https://ops.example.com, ops.example.org",
        )]);
        let error = Config::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("CAAS_GATEWAY_ALLOWED_ORIGINS"), "{error}");
        assert!(
            error.contains("\"ops.example.org\" has no scheme"),
            "{error}"
        );
        assert!(error.contains("https://ops.example.com"), "{error}");
        let env = Env::from_pairs([("CAAS_GATEWAY_ALLOWED_ORIGINS", "https://ops.example.com/")]);
        let error = Config::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("no trailing slash"), "{error}");
    }

    #[test]
    fn allowed_origins_are_read_as_a_list_or_a_wildcard() {
        let env = Env::from_pairs([(
            "CAAS_GATEWAY_ALLOWED_ORIGINS",
            "https://ops.example.com,http://localhost:5173",
        )]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(
            config.allowed_origins.describe(),
            "https://ops.example.com,http://localhost:5173"
        );
        let env = Env::from_pairs([("CAAS_GATEWAY_ALLOWED_ORIGINS", "*")]);
        assert_eq!(
            Config::from_env(&env).unwrap().allowed_origins,
            AllowedOrigins::Any
        );
    }
}
