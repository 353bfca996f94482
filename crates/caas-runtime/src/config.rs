//! Typed configuration from `CAAS_*` environment variables.
//!
//! Every service declares one config struct and fills it through [`Env`], which records the
//! variable each value came from, so a bad value fails start-up with a message that names the
//! variable, what was wrong and what would be accepted.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// A configuration value that was present but could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The variable is set but does not parse.
    #[error("invalid value for {variable}: {reason} (got {value:?}; expected {expected})")]
    Invalid {
        /// The environment variable, e.g. `CAAS_KAFKA_BOOTSTRAP`.
        variable: String,
        /// The raw value (secrets are never echoed, see [`Env::secret`]).
        value: String,
        /// Why it was refused.
        reason: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A required variable without a usable default is missing.
    #[error("missing required variable {variable}: {hint}")]
    Missing {
        /// The environment variable.
        variable: String,
        /// How to provide it.
        hint: String,
    },
}

/// A string that must never reach a log line or a `Debug` print.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (an HMAC key, a password).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret(***)")
    }
}

/// Reads `CAAS_*` variables from a snapshot of the environment (or a map in tests).
#[derive(Debug, Clone, Default)]
pub struct Env {
    variables: HashMap<String, String>,
}

impl Env {
    /// A snapshot of the process environment.
    pub fn from_process() -> Self {
        Self {
            variables: std::env::vars().collect(),
        }
    }

    /// An environment built from pairs, for tests.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            variables: pairs
                .into_iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        }
    }

    fn raw(&self, variable: &str) -> Option<&str> {
        self.variables
            .get(variable)
            .map(String::as_str)
            .filter(|value| !value.trim().is_empty())
    }

    /// A string, or the default when unset or empty.
    pub fn string(&self, variable: &str, default: &str) -> String {
        self.raw(variable).unwrap_or(default).trim().to_string()
    }

    /// Any `FromStr` value, or the default when unset.
    pub fn parse<T>(&self, variable: &str, default: T, expected: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(variable) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse::<T>()
                .map_err(|error| ConfigError::Invalid {
                    variable: variable.to_string(),
                    value: raw.to_string(),
                    reason: error.to_string(),
                    expected: expected.to_string(),
                }),
        }
    }

    /// A socket address such as `127.0.0.1:8080`.
    pub fn socket_addr(&self, variable: &str, default: &str) -> Result<SocketAddr, ConfigError> {
        let fallback: SocketAddr = default.parse().expect("default socket address is valid");
        self.parse(variable, fallback, "host:port, for example 127.0.0.1:8080")
    }

    /// A duration in milliseconds.
    pub fn millis(&self, variable: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.parse::<u64>(variable, default_ms, "a whole number of milliseconds")
            .map(Duration::from_millis)
    }

    /// A secret: its value is never echoed in errors. Also read from `<VARIABLE>_FILE` when set,
    /// so container secrets can be mounted as files.
    pub fn secret(&self, variable: &str, default: &str) -> Result<Secret, ConfigError> {
        let file_variable = format!("{variable}_FILE");
        if let Some(path) = self.raw(&file_variable) {
            return std::fs::read_to_string(path)
                .map(|content| Secret::new(content.trim_end_matches(['\r', '\n'])))
                .map_err(|error| ConfigError::Invalid {
                    variable: file_variable.clone(),
                    value: path.to_string(),
                    reason: format!("cannot read the secret file: {error}"),
                    expected: "a readable file holding the secret".to_string(),
                });
        }
        Ok(Secret::new(self.raw(variable).unwrap_or(default)))
    }

    /// A value from a fixed set of choices (case-insensitive).
    pub fn choice(
        &self,
        variable: &str,
        default: &str,
        choices: &[&str],
    ) -> Result<String, ConfigError> {
        let value = self.string(variable, default).to_ascii_lowercase();
        if choices.contains(&value.as_str()) {
            Ok(value)
        } else {
            Err(ConfigError::Invalid {
                variable: variable.to_string(),
                value,
                reason: "not one of the accepted values".to_string(),
                expected: choices.join(" | "),
            })
        }
    }
}

/// Settings every CAAS process reads, whatever its role.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `CAAS_LOG_FORMAT`: `json` (default, one object per line) or `pretty` for humans.
    pub log_format: String,
    /// `CAAS_LOG` (an `EnvFilter` directive, default `info`).
    pub log_filter: String,
    /// `CAAS_KAFKA_BOOTSTRAP`: Kafka bootstrap servers (default `127.0.0.1:9092`).
    pub kafka_bootstrap: String,
    /// `CAAS_SCHEMA_REGISTRY_URL`: Confluent-compatible registry base URL
    /// (default `http://127.0.0.1:8081/apis/ccompat/v7`).
    pub schema_registry_url: String,
    /// `CAAS_MONGODB_URI`: MongoDB connection string (default
    /// `mongodb://127.0.0.1:27017/?directConnection=true`).
    pub mongodb_uri: String,
    /// `CAAS_MONGODB_DATABASE`: database name (default `caas`).
    pub mongodb_database: String,
    /// `CAAS_REDIS_URL`: Redis URL (default `redis://127.0.0.1:6379`).
    pub redis_url: Secret,
    /// `CAAS_SHUTDOWN_GRACE_MS`: how long in-flight work may take after SIGTERM (default 10000).
    pub shutdown_grace: Duration,
    /// How every Kafka client of the process authenticates (`CAAS_KAFKA_SECURITY_PROTOCOL`,
    /// `CAAS_KAFKA_SASL_USERNAME`, `CAAS_KAFKA_SASL_PASSWORD`); none by default.
    pub kafka_security: KafkaSecurity,
}

impl CommonConfig {
    /// Read the common settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            log_format: env.choice("CAAS_LOG_FORMAT", "json", &["json", "pretty"])?,
            log_filter: env.string("CAAS_LOG", "info"),
            kafka_bootstrap: env.string("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            schema_registry_url: env.string(
                "CAAS_SCHEMA_REGISTRY_URL",
                "http://127.0.0.1:8081/apis/ccompat/v7",
            ),
            mongodb_uri: env.string(
                "CAAS_MONGODB_URI",
                "mongodb://127.0.0.1:27017/?directConnection=true",
            ),
            mongodb_database: env.string("CAAS_MONGODB_DATABASE", "caas"),
            redis_url: env.secret("CAAS_REDIS_URL", "redis://127.0.0.1:6379")?,
            shutdown_grace: env.millis("CAAS_SHUTDOWN_GRACE_MS", 10_000)?,
            kafka_security: KafkaSecurity::from_env(env)?,
        })
    }

    /// The librdkafka properties every Kafka client of this process adds to its own (for
    /// `caas_kafka::KafkaConfig::extra`): the authentication settings, none for plaintext.
    pub fn kafka_properties(&self) -> BTreeMap<String, String> {
        self.kafka_security.client_properties()
    }
}

/// How Kafka clients authenticate to the brokers.
///
/// `plaintext` (the local stack) or `sasl_plaintext` with SASL/PLAIN (the compose stack). The
/// bundled librdkafka is built without OpenSSL (the workspace's `rdkafka` has no `ssl`
/// feature), so SCRAM and TLS (`sasl_ssl`, `ssl`) are not offered: they would fail at the first
/// connection instead of at start-up. PLAIN sends the password in clear text: keep such a
/// listener on a private network, or build with `ssl` and add `sasl_ssl` here.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSecurity {
    /// `CAAS_KAFKA_SECURITY_PROTOCOL`: `plaintext` (default) or `sasl_plaintext`.
    pub protocol: KafkaProtocol,
    /// `CAAS_KAFKA_SASL_USERNAME`: the SASL/PLAIN user (required with `sasl_plaintext`).
    pub sasl_username: String,
    /// `CAAS_KAFKA_SASL_PASSWORD` (or `CAAS_KAFKA_SASL_PASSWORD_FILE`): its password.
    pub sasl_password: Secret,
}

/// The Kafka `security.protocol` of CAAS clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaProtocol {
    /// No authentication, no encryption.
    Plaintext,
    /// SASL/PLAIN authentication, no encryption.
    SaslPlaintext,
}

impl Default for KafkaSecurity {
    fn default() -> Self {
        Self {
            protocol: KafkaProtocol::Plaintext,
            sasl_username: String::new(),
            sasl_password: Secret::new(""),
        }
    }
}

impl KafkaSecurity {
    /// Read the settings; credentials without SASL, or SASL without credentials, stop start-up
    /// with a message that names the variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let protocol = match env
            .choice(
                "CAAS_KAFKA_SECURITY_PROTOCOL",
                "plaintext",
                &["plaintext", "sasl_plaintext"],
            )?
            .as_str()
        {
            "sasl_plaintext" => KafkaProtocol::SaslPlaintext,
            _ => KafkaProtocol::Plaintext,
        };
        let sasl_username = env.string("CAAS_KAFKA_SASL_USERNAME", "");
        let sasl_password = env.secret("CAAS_KAFKA_SASL_PASSWORD", "")?;
        match protocol {
            KafkaProtocol::SaslPlaintext => {
                if sasl_username.is_empty() {
                    return Err(ConfigError::Missing {
                        variable: "CAAS_KAFKA_SASL_USERNAME".to_string(),
                        hint: "CAAS_KAFKA_SECURITY_PROTOCOL=sasl_plaintext needs the Kafka user \
                               name (SASL/PLAIN)"
                            .to_string(),
                    });
                }
                if sasl_password.expose().is_empty() {
                    return Err(ConfigError::Missing {
                        variable: "CAAS_KAFKA_SASL_PASSWORD".to_string(),
                        hint: "CAAS_KAFKA_SECURITY_PROTOCOL=sasl_plaintext needs the Kafka user's \
                               password (or CAAS_KAFKA_SASL_PASSWORD_FILE with its path)"
                            .to_string(),
                    });
                }
            }
            KafkaProtocol::Plaintext => {
                if !sasl_username.is_empty() || !sasl_password.expose().is_empty() {
                    return Err(ConfigError::Invalid {
                        variable: "CAAS_KAFKA_SECURITY_PROTOCOL".to_string(),
                        value: "plaintext".to_string(),
                        reason: "Kafka credentials are set (CAAS_KAFKA_SASL_USERNAME or \
                                 CAAS_KAFKA_SASL_PASSWORD) but would never be sent"
                            .to_string(),
                        expected: "sasl_plaintext to authenticate, or no Kafka credentials"
                            .to_string(),
                    });
                }
            }
        }
        Ok(Self {
            protocol,
            sasl_username,
            sasl_password,
        })
    }

    /// The librdkafka properties that carry these settings (empty for plaintext, librdkafka's
    /// default). The password is among them: never log the map.
    pub fn client_properties(&self) -> BTreeMap<String, String> {
        let mut properties = BTreeMap::new();
        if self.protocol == KafkaProtocol::SaslPlaintext {
            for (key, value) in [
                ("security.protocol", "sasl_plaintext"),
                ("sasl.mechanism", "PLAIN"),
                ("sasl.username", self.sasl_username.as_str()),
                ("sasl.password", self.sasl_password.expose()),
            ] {
                properties.insert(key.to_string(), value.to_string());
            }
        }
        properties
    }

    /// Add these settings to an rdkafka client configuration (tools and probes that build
    /// their own clients).
    pub fn apply(&self, client: &mut rdkafka::ClientConfig) {
        for (key, value) in self.client_properties() {
            client.set(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_the_local_stack() {
        let config = CommonConfig::from_env(&Env::default()).unwrap();
        assert_eq!(config.kafka_bootstrap, "127.0.0.1:9092");
        assert_eq!(config.log_format, "json");
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let env = Env::from_pairs([("CAAS_SHUTDOWN_GRACE_MS", "soon")]);
        let message = CommonConfig::from_env(&env).unwrap_err().to_string();
        assert!(message.contains("CAAS_SHUTDOWN_GRACE_MS"), "{message}");
        assert!(message.contains("milliseconds"), "{message}");
    }

    #[test]
    fn a_bad_choice_lists_the_accepted_values() {
        let env = Env::from_pairs([("CAAS_LOG_FORMAT", "xml")]);
        let message = CommonConfig::from_env(&env).unwrap_err().to_string();
        assert!(message.contains("CAAS_LOG_FORMAT"), "{message}");
        assert!(message.contains("json | pretty"), "{message}");
    }

    #[test]
    fn kafka_clients_authenticate_only_when_told_to() {
        let default = CommonConfig::from_env(&Env::default()).unwrap();
        assert_eq!(default.kafka_security.protocol, KafkaProtocol::Plaintext);
        assert!(default.kafka_properties().is_empty());
        let env = Env::from_pairs([
            ("CAAS_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("CAAS_KAFKA_SASL_USERNAME", "caas"),
            ("CAAS_KAFKA_SASL_PASSWORD", "s3cret"),
        ]);
        let config = CommonConfig::from_env(&env).unwrap();
        let properties = config.kafka_properties();
        assert_eq!(properties["security.protocol"], "sasl_plaintext");
        assert_eq!(properties["sasl.mechanism"], "PLAIN");
        assert_eq!(properties["sasl.username"], "caas");
        assert_eq!(properties["sasl.password"], "s3cret");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn the_bundled_librdkafka_accepts_the_sasl_settings() {
        use rdkafka::consumer::BaseConsumer;
        let env = Env::from_pairs([
            ("CAAS_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
            ("CAAS_KAFKA_SASL_USERNAME", "caas"),
            ("CAAS_KAFKA_SASL_PASSWORD", "s3cret"),
        ]);
        let security = KafkaSecurity::from_env(&env).unwrap();
        let mut client = rdkafka::ClientConfig::new();
        client.set("bootstrap.servers", "127.0.0.1:1");
        security.apply(&mut client);
        // Creating a client validates every property against the built-in features; no
        // connection is made.
        let created: Result<BaseConsumer, _> = client.create();
        assert!(created.is_ok(), "{:?}", created.err());
        // Why only PLAIN is offered: this build has no OpenSSL, which SCRAM needs.
        client.set("sasl.mechanism", "SCRAM-SHA-512");
        let scram: Result<BaseConsumer, _> = client.create();
        assert!(scram.is_err(), "SCRAM works now: offer it in KafkaSecurity");
    }

    #[test]
    fn kafka_credentials_and_protocol_must_agree() {
        let without_user = Env::from_pairs([
            ("CAAS_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
            ("CAAS_KAFKA_SASL_PASSWORD", "s3cret"),
        ]);
        let message = KafkaSecurity::from_env(&without_user)
            .unwrap_err()
            .to_string();
        assert!(message.contains("CAAS_KAFKA_SASL_USERNAME"), "{message}");
        let without_password = Env::from_pairs([
            ("CAAS_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
            ("CAAS_KAFKA_SASL_USERNAME", "caas"),
        ]);
        let message = KafkaSecurity::from_env(&without_password)
            .unwrap_err()
            .to_string();
        assert!(message.contains("CAAS_KAFKA_SASL_PASSWORD"), "{message}");
        let credentials_unused = Env::from_pairs([
            ("CAAS_KAFKA_SASL_USERNAME", "caas"),
            ("CAAS_KAFKA_SASL_PASSWORD", "s3cret"),
        ]);
        let message = KafkaSecurity::from_env(&credentials_unused)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("CAAS_KAFKA_SECURITY_PROTOCOL"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
        let unsupported = Env::from_pairs([("CAAS_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")]);
        let message = KafkaSecurity::from_env(&unsupported)
            .unwrap_err()
            .to_string();
        assert!(message.contains("plaintext | sasl_plaintext"), "{message}");
    }

    #[test]
    fn socket_addresses_are_validated() {
        let env = Env::from_pairs([("CAAS_X_ADDR", "localhost")]);
        let error = env.socket_addr("CAAS_X_ADDR", "127.0.0.1:1").unwrap_err();
        assert!(error.to_string().contains("CAAS_X_ADDR"));
        let env = Env::from_pairs([("CAAS_X_ADDR", "127.0.0.1:9")]);
        assert_eq!(
            env.socket_addr("CAAS_X_ADDR", "127.0.0.1:1")
                .unwrap()
                .port(),
            9
        );
    }

    #[test]
    fn secrets_never_show_in_debug_and_can_come_from_files() {
        let directory = std::env::temp_dir().join(format!("caas-secret-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        let path_text = path.to_string_lossy().to_string();
        let env = Env::from_pairs([("CAAS_TOKEN", "inline"), ("CAAS_TOKEN_FILE", &path_text)]);
        let secret = env.secret("CAAS_TOKEN", "").unwrap();
        assert_eq!(secret.expose(), "from-file");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        let missing = Env::from_pairs([("CAAS_TOKEN_FILE", "/nonexistent/caas")]);
        assert!(missing
            .secret("CAAS_TOKEN", "")
            .unwrap_err()
            .to_string()
            .contains("CAAS_TOKEN_FILE"));
    }
}
