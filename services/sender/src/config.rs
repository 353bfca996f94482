//! The sender's configuration, read from `CAAS_*` variables. Every value has a default that
//! fits the local stack (the provider simulator on `127.0.0.1:8090`); a bad value fails
//! start-up with a message naming the variable.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use caas_events::model::Channel;
use caas_runtime::{CommonConfig, ConfigError, Env, Secret};

use crate::domain::backoff::Backoff;
use crate::domain::bucket::Limits;
use crate::domain::claim::UnknownOutcome;

/// The sending endpoints of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// The WhatsApp `phone_number_id` messages are sent from.
    pub whatsapp: Option<String>,
    /// The RBM `agentId` messages are sent as.
    pub rcs: Option<String>,
}

impl Endpoints {
    /// The default endpoint for `channel`.
    pub fn for_channel(&self, channel: Channel) -> Option<&str> {
        match channel {
            Channel::Whatsapp => self.whatsapp.as_deref(),
            Channel::Rcs => self.rcs.as_deref(),
        }
    }
}

/// Tenants and their endpoints: `demo:whatsapp=100000000000001,rcs=demo-agent;acme:...`
/// (the format of `CAAS_INGEST_TENANTS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenants(BTreeMap<String, Endpoints>);

impl Tenants {
    /// Parse the text form; the error says which part is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut tenants = BTreeMap::new();
        for entry in text
            .split(';')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (tenant, endpoints_text) = entry
                .split_once(':')
                .ok_or_else(|| format!("{entry:?} has no ':' after the tenant id"))?;
            let tenant = tenant.trim();
            if tenant.is_empty() {
                return Err(format!("{entry:?} has an empty tenant id"));
            }
            let mut endpoints = Endpoints::default();
            for pair in endpoints_text
                .split(',')
                .map(str::trim)
                .filter(|pair| !pair.is_empty())
            {
                let (channel, id) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("{pair:?} in tenant {tenant} is not channel=id"))?;
                let id = id.trim().to_string();
                if id.is_empty() {
                    return Err(format!("{pair:?} in tenant {tenant} has an empty id"));
                }
                match channel.trim() {
                    "whatsapp" => endpoints.whatsapp = Some(id),
                    "rcs" => endpoints.rcs = Some(id),
                    other => {
                        return Err(format!(
                        "unknown channel {other:?} in tenant {tenant} (expected whatsapp or rcs)"
                    ))
                    }
                }
            }
            if tenants.insert(tenant.to_string(), endpoints).is_some() {
                return Err(format!("tenant {tenant} is listed twice"));
            }
        }
        Ok(Self(tenants))
    }

    /// The endpoints of `tenant`, if it is configured.
    pub fn get(&self, tenant: &str) -> Option<&Endpoints> {
        self.0.get(tenant)
    }
}

/// WhatsApp access tokens per tenant: `demo=<token>;acme=<token>;*=<token for the others>`.
#[derive(Clone, Default)]
pub struct Tokens(BTreeMap<String, Secret>);

impl Tokens {
    /// Parse the text form (never echoes a token in its errors).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut tokens = BTreeMap::new();
        for entry in text
            .split(';')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (tenant, token) = entry
                .split_once('=')
                .ok_or_else(|| "an entry is not tenant=token".to_string())?;
            if tenant.trim().is_empty() || token.trim().is_empty() {
                return Err("an entry has an empty tenant or token".to_string());
            }
            tokens.insert(tenant.trim().to_string(), Secret::new(token.trim()));
        }
        Ok(Self(tokens))
    }

    /// The token of `tenant`, or the `*` token.
    pub fn get(&self, tenant: &str) -> Option<&Secret> {
        self.0.get(tenant).or_else(|| self.0.get("*"))
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_set().entries(self.0.keys()).finish()
    }
}

/// What to do with a command of a tenant this sender has no configuration for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownTenants {
    /// Publish a failed result (`tenant_not_configured`): the operator learns of it.
    Fail,
    /// Leave it alone: another sender deployment serves that tenant (and tests share a topic).
    Skip,
}

/// Configuration of the sender service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by every CAAS process.
    pub common: CommonConfig,
    /// `CAAS_SENDER_OPS_ADDR`: where `/health`, `/ready` and `/metrics` are served (default `127.0.0.1:9105`).
    pub http_addr: SocketAddr,
    /// `CAAS_SENDER_GROUP_ID`: consumer group of `outbound.commands.v1` (default `caas-sender`);
    /// the window tracker consumes `inbound.messages.v1` as `<group>-window`.
    pub group_id: String,
    /// `CAAS_SENDER_CONCURRENCY`: conversations sent in parallel by one process (default 32);
    /// the commands of one conversation always go one after the other, in order.
    pub concurrency: usize,
    /// `CAAS_SENDER_TENANTS`: each tenant's sending endpoints, as for ingest
    /// (default `demo:whatsapp=100000000000001,rcs=demo-agent`).
    pub tenants: Tenants,
    /// `CAAS_SENDER_UNKNOWN_TENANTS`: `fail` (default) publishes a failed result for a tenant
    /// missing from `CAAS_SENDER_TENANTS`; `skip` leaves such commands to another deployment.
    pub unknown_tenants: UnknownTenants,
    /// `CAAS_SENDER_WHATSAPP_BASE_URL`: the Graph API (default the simulator,
    /// `http://127.0.0.1:8090`; production `https://graph.facebook.com`).
    pub whatsapp_base_url: String,
    /// `CAAS_SENDER_WHATSAPP_API_VERSION`: the Graph API version in the path (default `v21.0`).
    pub whatsapp_api_version: String,
    /// `CAAS_SENDER_WHATSAPP_TOKENS`: Bearer tokens per tenant, `tenant=token;*=default`.
    pub whatsapp_tokens: Tokens,
    /// `CAAS_SENDER_RBM_BASE_URL`: the RBM API (default the simulator; production
    /// `https://rcsbusinessmessaging.googleapis.com`).
    pub rbm_base_url: String,
    /// `CAAS_SENDER_RBM_TOKEN`: the Bearer token of RBM calls (production: an OAuth token of
    /// the partner's service account).
    pub rbm_token: Secret,
    /// `CAAS_SENDER_RATE_PER_SECOND` (default 20) and `CAAS_SENDER_RATE_BURST` (default 5):
    /// the token bucket per sending number, shared by all instances through Redis.
    pub rate: Limits,
    /// `CAAS_SENDER_REQUEST_TIMEOUT_MS`: one provider call (default 10000).
    pub request_timeout: Duration,
    /// `CAAS_SENDER_MAX_ATTEMPTS`: provider calls per command before it fails (default 8).
    pub max_attempts: u32,
    /// `CAAS_SENDER_RETRY_BASE_MS` (200) and `CAAS_SENDER_RETRY_MAX_MS` (10000): backoff after
    /// 5xx answers and unreachable providers.
    pub retry_backoff: Backoff,
    /// `CAAS_SENDER_RATE_LIMIT_BACKOFF_MS` (1000, doubling to 20 s): backoff after a rate-limit
    /// answer, also imposed on every instance sending from the same number (or to the same pair).
    pub rate_limit_backoff: Backoff,
    /// `CAAS_SENDER_WINDOW_GRACE_MS`: how long a free-form reply waits for the customer's
    /// message to be recorded before the window counts as closed (default 5000); see the
    /// README on the race it covers.
    pub window_grace: Duration,
    /// `CAAS_SENDER_UNKNOWN_OUTCOME`: `fail` (default: at most once) or `resend` (at least once)
    /// for a WhatsApp call whose outcome is unknown (timeout, crash mid-call).
    pub unknown_outcome: UnknownOutcome,
    /// `CAAS_SENDER_COMMAND_DEADLINE_MS`: the most one command may take, waits and retries
    /// included, before it fails as retryable (default 240000; it must stay under half the
    /// consumer's poll interval of 10 minutes).
    pub command_deadline: Duration,
    /// `CAAS_SENDER_LEDGER_RETENTION_HOURS`: how long the idempotency ledger remembers a
    /// command (default 336, two weeks; longer than the topic's retention, so a replay never
    /// sends twice).
    pub ledger_retention: Duration,
    /// `CAAS_SENDER_SESSION_TIMEOUT_MS`: how long the group waits for a silent (crashed)
    /// sender before its partitions move to the others (default 45000; the broker's minimum
    /// is usually 6000).
    pub session_timeout: Duration,
}

/// The consumer poll interval the sender runs with: a command may take minutes (backoff).
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(600);

fn invalid(
    variable: &str,
    value: impl fmt::Display,
    reason: impl Into<String>,
    expected: &str,
) -> ConfigError {
    ConfigError::Invalid {
        variable: variable.to_string(),
        value: value.to_string(),
        reason: reason.into(),
        expected: expected.to_string(),
    }
}

fn base_url(env: &Env, variable: &str, default: &str) -> Result<String, ConfigError> {
    let value = env.string(variable, default);
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        return Err(invalid(
            variable,
            &value,
            "not an http(s) URL",
            "an http(s) base URL",
        ));
    }
    Ok(value.trim_end_matches('/').to_string())
}

impl Config {
    /// Read the configuration; the error names the variable that is wrong.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let tenants_text = env.string(
            "CAAS_SENDER_TENANTS",
            "demo:whatsapp=100000000000001,rcs=demo-agent",
        );
        let tenants = Tenants::parse(&tenants_text).map_err(|reason| {
            invalid(
                "CAAS_SENDER_TENANTS",
                &tenants_text,
                reason,
                "<tenant>:whatsapp=<phone_number_id>,rcs=<agentId>[;<tenant>:...]",
            )
        })?;
        let tokens_secret = env.secret("CAAS_SENDER_WHATSAPP_TOKENS", "")?;
        let whatsapp_tokens = Tokens::parse(tokens_secret.expose()).map_err(|reason| {
            invalid(
                "CAAS_SENDER_WHATSAPP_TOKENS",
                "***",
                reason,
                "<tenant>=<token>[;...][;*=<token>]",
            )
        })?;
        let unknown_tenants = match env
            .choice("CAAS_SENDER_UNKNOWN_TENANTS", "fail", &["fail", "skip"])?
            .as_str()
        {
            "skip" => UnknownTenants::Skip,
            _ => UnknownTenants::Fail,
        };
        let unknown_outcome = match env
            .choice("CAAS_SENDER_UNKNOWN_OUTCOME", "fail", &["fail", "resend"])?
            .as_str()
        {
            "resend" => UnknownOutcome::Resend,
            _ => UnknownOutcome::Fail,
        };
        let concurrency = env.parse::<usize>(
            "CAAS_SENDER_CONCURRENCY",
            32,
            "a whole number from 1 to 1000",
        )?;
        if !(1..=1000).contains(&concurrency) {
            return Err(invalid(
                "CAAS_SENDER_CONCURRENCY",
                concurrency,
                "out of range",
                "a whole number from 1 to 1000",
            ));
        }
        let rate_per_second = env.parse::<f64>(
            "CAAS_SENDER_RATE_PER_SECOND",
            20.0,
            "messages per second, above 0",
        )?;
        if !(rate_per_second > 0.0 && rate_per_second.is_finite()) {
            return Err(invalid(
                "CAAS_SENDER_RATE_PER_SECOND",
                rate_per_second,
                "must be above 0",
                "messages per second, above 0",
            ));
        }
        let burst = env.parse::<f64>(
            "CAAS_SENDER_RATE_BURST",
            5.0,
            "a number of messages, at least 1",
        )?;
        if !(burst >= 1.0 && burst.is_finite()) {
            return Err(invalid(
                "CAAS_SENDER_RATE_BURST",
                burst,
                "must be at least 1",
                "a number of messages, at least 1",
            ));
        }
        let max_attempts =
            env.parse::<u32>("CAAS_SENDER_MAX_ATTEMPTS", 8, "a whole number from 1 to 50")?;
        if !(1..=50).contains(&max_attempts) {
            return Err(invalid(
                "CAAS_SENDER_MAX_ATTEMPTS",
                max_attempts,
                "out of range",
                "a whole number from 1 to 50",
            ));
        }
        let retry_backoff = Backoff {
            base: env.millis("CAAS_SENDER_RETRY_BASE_MS", 200)?,
            max: env.millis("CAAS_SENDER_RETRY_MAX_MS", 10_000)?,
        };
        if retry_backoff.base.is_zero() || retry_backoff.max < retry_backoff.base {
            return Err(invalid(
                "CAAS_SENDER_RETRY_MAX_MS",
                retry_backoff.max.as_millis(),
                "must be at least CAAS_SENDER_RETRY_BASE_MS, which must be above 0",
                "0 < CAAS_SENDER_RETRY_BASE_MS <= CAAS_SENDER_RETRY_MAX_MS",
            ));
        }
        let rate_limit_base = env.millis("CAAS_SENDER_RATE_LIMIT_BACKOFF_MS", 1_000)?;
        if rate_limit_base.is_zero() {
            return Err(invalid(
                "CAAS_SENDER_RATE_LIMIT_BACKOFF_MS",
                0,
                "must be above 0",
                "milliseconds above 0",
            ));
        }
        let request_timeout = env.millis("CAAS_SENDER_REQUEST_TIMEOUT_MS", 10_000)?;
        if request_timeout < Duration::from_millis(100) {
            return Err(invalid(
                "CAAS_SENDER_REQUEST_TIMEOUT_MS",
                request_timeout.as_millis(),
                "too short",
                "at least 100 milliseconds",
            ));
        }
        let command_deadline = env.millis("CAAS_SENDER_COMMAND_DEADLINE_MS", 240_000)?;
        if command_deadline >= MAX_POLL_INTERVAL / 2 || command_deadline < request_timeout {
            return Err(invalid(
                "CAAS_SENDER_COMMAND_DEADLINE_MS",
                command_deadline.as_millis(),
                format!(
                    "must be at least one request timeout and under {} ms (half the consumer poll interval; \
                     a longer command would get the consumer thrown out of its group)",
                    (MAX_POLL_INTERVAL / 2).as_millis()
                ),
                "milliseconds",
            ));
        }
        let retention_hours = env.parse::<u64>(
            "CAAS_SENDER_LEDGER_RETENTION_HOURS",
            336,
            "a whole number of hours, at least 1",
        )?;
        if retention_hours == 0 {
            return Err(invalid(
                "CAAS_SENDER_LEDGER_RETENTION_HOURS",
                0,
                "must be at least 1",
                "a whole number of hours, at least 1",
            ));
        }
        let session_timeout = env.millis("CAAS_SENDER_SESSION_TIMEOUT_MS", 45_000)?;
        if session_timeout < Duration::from_secs(1) {
            return Err(invalid(
                "CAAS_SENDER_SESSION_TIMEOUT_MS",
                session_timeout.as_millis(),
                "too short",
                "at least 1000 milliseconds",
            ));
        }
        let group_id = env.string("CAAS_SENDER_GROUP_ID", "caas-sender");
        Ok(Self {
            common: CommonConfig::from_env(env)?,
            http_addr: env.socket_addr("CAAS_SENDER_OPS_ADDR", "127.0.0.1:9105")?,
            group_id,
            concurrency,
            tenants,
            unknown_tenants,
            whatsapp_base_url: base_url(
                env,
                "CAAS_SENDER_WHATSAPP_BASE_URL",
                "http://127.0.0.1:8090",
            )?,
            whatsapp_api_version: env.string("CAAS_SENDER_WHATSAPP_API_VERSION", "v21.0"),
            whatsapp_tokens,
            rbm_base_url: base_url(env, "CAAS_SENDER_RBM_BASE_URL", "http://127.0.0.1:8090")?,
            rbm_token: env.secret("CAAS_SENDER_RBM_TOKEN", "")?,
            rate: Limits {
                rate_per_second,
                burst,
            },
            request_timeout,
            max_attempts,
            retry_backoff,
            rate_limit_backoff: Backoff {
                base: rate_limit_base,
                max: Duration::from_secs(20).max(rate_limit_base),
            },
            window_grace: env.millis("CAAS_SENDER_WINDOW_GRACE_MS", 5_000)?,
            unknown_outcome,
            command_deadline,
            ledger_retention: Duration::from_secs(retention_hours * 3600),
            session_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_the_local_stack() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.http_addr.port(), 9105);
        assert_eq!(config.whatsapp_base_url, "http://127.0.0.1:8090");
        let demo = config.tenants.get("demo").unwrap();
        assert_eq!(demo.for_channel(Channel::Whatsapp), Some("100000000000001"));
        assert_eq!(demo.for_channel(Channel::Rcs), Some("demo-agent"));
        assert_eq!(config.unknown_tenants, UnknownTenants::Fail);
        assert_eq!(config.unknown_outcome, UnknownOutcome::Fail);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("CAAS_SENDER_TENANTS", "demo:sms=1"),
            ("CAAS_SENDER_TENANTS", "demo"),
            ("CAAS_SENDER_UNKNOWN_TENANTS", "drop"),
            ("CAAS_SENDER_WHATSAPP_BASE_URL", "graph.facebook.com"),
            ("CAAS_SENDER_RATE_PER_SECOND", "0"),
            ("CAAS_SENDER_RATE_BURST", "0.5"),
            ("CAAS_SENDER_MAX_ATTEMPTS", "0"),
            ("CAAS_SENDER_RETRY_MAX_MS", "1"),
            ("CAAS_SENDER_COMMAND_DEADLINE_MS", "400000"),
            ("CAAS_SENDER_CONCURRENCY", "0"),
            ("CAAS_SENDER_UNKNOWN_OUTCOME", "maybe"),
        ] {
            let error = Config::from_env(&Env::from_pairs([(variable, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{variable}={value}: {error}");
        }
    }

    #[test]
    fn tokens_fall_back_to_the_wildcard_and_never_show() {
        let config = Config::from_env(&Env::from_pairs([
            (
                "CAAS_SENDER_WHATSAPP_TOKENS",
                "acme=acme-secret;*=shared-secret",
            ),
            ("CAAS_SENDER_RBM_TOKEN", "rbm-secret"),
        ]))
        .unwrap();
        assert_eq!(
            config.whatsapp_tokens.get("acme").unwrap().expose(),
            "acme-secret"
        );
        assert_eq!(
            config.whatsapp_tokens.get("demo").unwrap().expose(),
            "shared-secret"
        );
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("acme-secret") && !shown.contains("rbm-secret"),
            "{shown}"
        );
        let error = Config::from_env(&Env::from_pairs([(
            "CAAS_SENDER_WHATSAPP_TOKENS",
            "oops-secret",
        )]))
        .unwrap_err()
        .to_string();
        assert!(!error.contains("oops-secret"), "{error}");
    }
}
