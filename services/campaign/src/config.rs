//! The campaign service's configuration, read from `CAAS_*` variables. Every value has a
//! default that fits the local stack; a bad value fails start-up with a message naming the
//! variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use caas_runtime::{CommonConfig, ConfigError, Env, Secret};

use crate::domain::consent::ConsentRules;

/// Configuration of the campaign service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every CAAS process.
    pub common: CommonConfig,
    /// `CAAS_CAMPAIGN_OPS_ADDR`: where `/health`, `/ready`, `/metrics` and the campaign REST API
    /// are served (default `127.0.0.1:9104`).
    pub http_addr: SocketAddr,
    /// `CAAS_JWT_SECRET`: HS256 key of the operators' Bearer tokens, checked by the REST API on
    /// this service's own port (unset: the API answers 503 there; the gateway serves it).
    pub jwt_secret: Secret,
    /// `CAAS_CAMPAIGN_GROUP_PREFIX`: prefix of the three consumer groups (`<prefix>.commands`,
    /// `<prefix>.tracking`, `<prefix>.consent`; default `caas-campaign`).
    pub group_prefix: String,
    /// `CAAS_CAMPAIGN_INSTANCE_ID`: this instance's name in the sending-number leases (default
    /// random per start). Give a restarted instance the same id to take its leases back at once
    /// instead of after `CAAS_CAMPAIGN_LEASE_MS`.
    pub instance_id: String,
    /// `CAAS_CAMPAIGN_LEASE_MS`: how long a sending-number lease lasts without renewal (default
    /// 10000): after a crash, another instance resumes that number's campaigns this much later.
    pub lease: Duration,
    /// `CAAS_CAMPAIGN_TICK_MS`: the pacing granularity (default 100): at most one sending step
    /// per tick; no second ever holds more than the rate.
    pub tick: Duration,
    /// `CAAS_CAMPAIGN_REFRESH_MS`: how often a sending number re-reads its campaigns (default
    /// 200); bounds how late a pause applied by another instance is seen.
    pub refresh: Duration,
    /// `CAAS_CAMPAIGN_PROGRESS_MS`: how often running campaigns report their totals on
    /// `campaign.events.v1` (default 300).
    pub progress: Duration,
    /// `CAAS_CAMPAIGN_NUMBER_RATE`: messages per second one sending number allows when not
    /// listed in `CAAS_CAMPAIGN_NUMBER_RATES` (default 80, WhatsApp Cloud API's default
    /// throughput).
    pub default_number_rate: f64,
    /// `CAAS_CAMPAIGN_NUMBER_RATES`: `<tenant>:<channel>:<business id or default>=<per second>`
    /// separated by `;`.
    pub number_rates: BTreeMap<String, f64>,
    /// `CAAS_CAMPAIGN_MAX_AUDIENCE_ROWS`: the most rows one audience may have (default
    /// 1000000).
    pub max_audience_rows: u64,
    /// `CAAS_CAMPAIGN_REQUIRE_OPT_IN`: send only to customers with a recorded opt-in (default
    /// false: everyone not opted out).
    pub require_opt_in: bool,
    /// `CAAS_CAMPAIGN_CONSENT_RULES` (or `_FILE`): keyword and reply overrides as JSON (see
    /// `domain::consent`).
    pub consent_rules: ConsentRules,
    /// `CAAS_CAMPAIGN_CONFIRMATION_MAX_AGE_MS`: keywords older than this get no confirmation
    /// (default 86400000: the WhatsApp service window), so replaying history sends none.
    pub confirmation_max_age: Duration,
    /// `CAAS_CAMPAIGN_SETTLE_MS`: how long after completion statuses are still reported
    /// (default 86400000).
    pub settle: Duration,
    /// `CAAS_CAMPAIGN_SESSION_TIMEOUT_MS`: how long the consumer groups wait for a crashed
    /// instance before moving its partitions (default 45000; the broker allows 6000 and up).
    pub session_timeout: Duration,
}

impl Config {
    /// Read the configuration; the error names the variable that is wrong.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let number_rates_text = env.string("CAAS_CAMPAIGN_NUMBER_RATES", "");
        let number_rates =
            parse_number_rates(&number_rates_text).map_err(|reason| ConfigError::Invalid {
                variable: "CAAS_CAMPAIGN_NUMBER_RATES".to_string(),
                value: number_rates_text.clone(),
                reason,
                expected:
                    "<tenant>:<whatsapp|rcs>:<business id|default>=<messages per second>[;...]"
                        .to_string(),
            })?;
        let rules_text = env.secret("CAAS_CAMPAIGN_CONSENT_RULES", "")?;
        let consent_rules =
            ConsentRules::parse(rules_text.expose()).map_err(|reason| ConfigError::Invalid {
                variable: "CAAS_CAMPAIGN_CONSENT_RULES".to_string(),
                value: rules_text.expose().chars().take(80).collect(),
                reason,
                expected: "JSON rules as in services/campaign/README.md".to_string(),
            })?;
        let default_number_rate = env.parse::<f64>(
            "CAAS_CAMPAIGN_NUMBER_RATE",
            80.0,
            "a positive number of messages per second",
        )?;
        if default_number_rate <= 0.0 || !default_number_rate.is_finite() {
            return Err(ConfigError::Invalid {
                variable: "CAAS_CAMPAIGN_NUMBER_RATE".to_string(),
                value: default_number_rate.to_string(),
                reason: "must be positive".to_string(),
                expected: "a positive number of messages per second".to_string(),
            });
        }
        let tick = env.millis("CAAS_CAMPAIGN_TICK_MS", 100)?;
        if tick.is_zero() || tick > Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                variable: "CAAS_CAMPAIGN_TICK_MS".to_string(),
                value: tick.as_millis().to_string(),
                reason: "must be between 1 and 1000".to_string(),
                expected: "milliseconds between 1 and 1000".to_string(),
            });
        }
        let lease = env.millis("CAAS_CAMPAIGN_LEASE_MS", 10_000)?;
        if lease < Duration::from_millis(1000) {
            return Err(ConfigError::Invalid {
                variable: "CAAS_CAMPAIGN_LEASE_MS".to_string(),
                value: lease.as_millis().to_string(),
                reason: "a lease shorter than a second would flap between instances".to_string(),
                expected: "at least 1000 milliseconds".to_string(),
            });
        }
        let instance_id = env.string("CAAS_CAMPAIGN_INSTANCE_ID", "");
        let instance_id = if instance_id.is_empty() {
            format!("campaign-{}", uuid::Uuid::new_v4().simple())
        } else {
            instance_id
        };
        Ok(Self {
            common: CommonConfig::from_env(env)?,
            http_addr: env.socket_addr("CAAS_CAMPAIGN_OPS_ADDR", "127.0.0.1:9104")?,
            jwt_secret: env.secret("CAAS_JWT_SECRET", "")?,
            group_prefix: env.string("CAAS_CAMPAIGN_GROUP_PREFIX", "caas-campaign"),
            instance_id,
            lease,
            tick,
            refresh: env.millis("CAAS_CAMPAIGN_REFRESH_MS", 200)?,
            progress: env.millis("CAAS_CAMPAIGN_PROGRESS_MS", 300)?,
            default_number_rate,
            number_rates,
            max_audience_rows: env.parse(
                "CAAS_CAMPAIGN_MAX_AUDIENCE_ROWS",
                crate::api::DEFAULT_MAX_AUDIENCE_ROWS,
                "a whole number of rows",
            )?,
            require_opt_in: env.parse("CAAS_CAMPAIGN_REQUIRE_OPT_IN", false, "true or false")?,
            consent_rules,
            confirmation_max_age: env
                .millis("CAAS_CAMPAIGN_CONFIRMATION_MAX_AGE_MS", 86_400_000)?,
            settle: env.millis("CAAS_CAMPAIGN_SETTLE_MS", 86_400_000)?,
            session_timeout: env.millis("CAAS_CAMPAIGN_SESSION_TIMEOUT_MS", 45_000)?,
        })
    }

    /// The rate one sending number allows, in messages per second.
    pub fn number_rate(&self, sender_key: &str) -> f64 {
        self.number_rates
            .get(sender_key)
            .copied()
            .unwrap_or(self.default_number_rate)
    }
}

/// `acme:whatsapp:100000000000001=20;acme:rcs:default=5`.
fn parse_number_rates(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut rates = BTreeMap::new();
    for entry in text
        .split(';')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (key, rate) = entry
            .rsplit_once('=')
            .ok_or_else(|| format!("{entry:?} has no '=<rate>'"))?;
        let parts: Vec<&str> = key.trim().splitn(3, ':').collect();
        if parts.len() != 3 || parts.iter().any(|part| part.is_empty()) {
            return Err(format!(
                "{key:?} is not <tenant>:<channel>:<business id|default>"
            ));
        }
        if !matches!(parts[1], "whatsapp" | "rcs") {
            return Err(format!("{key:?}: channel must be whatsapp or rcs"));
        }
        let rate: f64 = rate
            .trim()
            .parse()
            .map_err(|_| format!("{rate:?} in {entry:?} is not a number"))?;
        if rate <= 0.0 || !rate.is_finite() {
            return Err(format!("{entry:?}: the rate must be positive"));
        }
        rates.insert(key.trim().to_string(), rate);
    }
    Ok(rates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_the_local_stack() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.http_addr.port(), 9104);
        assert_eq!(config.group_prefix, "caas-campaign");
        assert!(config.instance_id.starts_with("campaign-"));
        assert_eq!(config.number_rate("acme:whatsapp:1"), 80.0);
        assert!(!config.require_opt_in);
    }

    #[test]
    fn number_rates_parse_and_bad_values_name_their_variable() {
        let env = Env::from_pairs([(
            "CAAS_CAMPAIGN_NUMBER_RATES",
            "acme:whatsapp:1001=20; acme:rcs:default=2.5",
        )]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.number_rate("acme:whatsapp:1001"), 20.0);
        assert_eq!(config.number_rate("acme:rcs:default"), 2.5);
        for (variable, value) in [
            ("CAAS_CAMPAIGN_NUMBER_RATES", "acme:fax:1=2"),
            ("CAAS_CAMPAIGN_NUMBER_RATES", "acme:whatsapp:1=-2"),
            ("CAAS_CAMPAIGN_NUMBER_RATE", "0"),
            ("CAAS_CAMPAIGN_TICK_MS", "0"),
            ("CAAS_CAMPAIGN_LEASE_MS", "10"),
            ("CAAS_CAMPAIGN_REQUIRE_OPT_IN", "maybe"),
            ("CAAS_CAMPAIGN_CONSENT_RULES", "{not json"),
            ("CAAS_CAMPAIGN_OPS_ADDR", "nowhere"),
        ] {
            let error = Config::from_env(&Env::from_pairs([(variable, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{variable}: {error}");
        }
    }
}
