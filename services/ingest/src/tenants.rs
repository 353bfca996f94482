//! Which tenant a webhook belongs to: WhatsApp `metadata.phone_number_id` and RBM `agentId`
//! map to tenant ids through configuration.
//!
//! The configuration is one line (`CAAS_INGEST_TENANTS`):
//!
//! ```text
//! demo:whatsapp=100000000000001,rcs=demo-agent;acme:whatsapp=200000000000002,whatsapp=200000000000003
//! ```
//!
//! Tenants are separated by `;`; each is `<tenant id>:` followed by comma-separated
//! `whatsapp=<phone_number_id>` and `rcs=<agentId>` bindings (any number of each). A
//! `phone_number_id` or `agentId` may belong to one tenant only. Tenant ids are letters, digits,
//! `-`, `_` and `.` (they become the first part of conversation keys, so never `:`).

use std::collections::HashMap;

/// The tenants of the local stack: `demo`, WhatsApp number id `100000000000001`, RBM agent
/// `demo-agent`.
pub const DEFAULT_TENANTS: &str = "demo:whatsapp=100000000000001,rcs=demo-agent";

/// A tenant specification that cannot be used; the message says which part and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("in {part:?}: {reason}")]
pub struct TenantsError {
    /// The offending part of the specification.
    pub part: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

/// The mapping from provider endpoints to tenants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenants {
    /// WhatsApp `phone_number_id` → tenant id.
    by_phone_number_id: HashMap<String, String>,
    /// RBM `agentId` → tenant id.
    by_agent_id: HashMap<String, String>,
}

impl Tenants {
    /// Parses a specification (see the module docs). An empty one maps nothing.
    pub fn parse(specification: &str) -> Result<Self, TenantsError> {
        let mut tenants = Tenants::default();
        for tenant_part in specification.split(';').map(str::trim) {
            if tenant_part.is_empty() {
                continue;
            }
            let error = |reason: String| TenantsError {
                part: tenant_part.to_string(),
                reason,
            };
            let (tenant_id, bindings) = tenant_part.split_once(':').ok_or_else(|| {
                error("expected <tenant>:whatsapp=<phone_number_id>,rcs=<agentId>".to_string())
            })?;
            let tenant_id = tenant_id.trim();
            if !is_valid_tenant_id(tenant_id) {
                return Err(error(format!(
                    "tenant id {tenant_id:?} must be non-empty letters, digits, '-', '_' or '.'"
                )));
            }
            let mut bound_any = false;
            for binding in bindings.split(',').map(str::trim) {
                if binding.is_empty() {
                    continue;
                }
                let (channel, endpoint) = binding.split_once('=').ok_or_else(|| {
                    error(format!(
                        "binding {binding:?} is not whatsapp=<phone_number_id> or rcs=<agentId>"
                    ))
                })?;
                let endpoint = endpoint.trim();
                if endpoint.is_empty() {
                    return Err(error(format!("binding {binding:?} has an empty id")));
                }
                let map = match channel.trim() {
                    "whatsapp" => &mut tenants.by_phone_number_id,
                    "rcs" => &mut tenants.by_agent_id,
                    other => {
                        return Err(error(format!(
                            "unknown channel {other:?}; expected whatsapp or rcs"
                        )))
                    }
                };
                if let Some(previous) = map.insert(endpoint.to_string(), tenant_id.to_string()) {
                    if previous != tenant_id {
                        return Err(error(format!(
                            "{channel}={endpoint} already belongs to tenant {previous:?}"
                        )));
                    }
                }
                bound_any = true;
            }
            if !bound_any {
                return Err(error(format!(
                    "tenant {tenant_id:?} has no whatsapp= or rcs= binding"
                )));
            }
        }
        Ok(tenants)
    }

    /// Binds a WhatsApp `phone_number_id` to a tenant (tests and tools).
    pub fn with_whatsapp(mut self, tenant_id: &str, phone_number_id: &str) -> Self {
        self.by_phone_number_id
            .insert(phone_number_id.to_string(), tenant_id.to_string());
        self
    }

    /// Binds an RBM `agentId` to a tenant (tests and tools).
    pub fn with_rcs(mut self, tenant_id: &str, agent_id: &str) -> Self {
        self.by_agent_id
            .insert(agent_id.to_string(), tenant_id.to_string());
        self
    }

    /// The tenant of a WhatsApp business phone number id.
    pub fn by_phone_number_id(&self, phone_number_id: &str) -> Option<&str> {
        self.by_phone_number_id
            .get(phone_number_id)
            .map(String::as_str)
    }

    /// The tenant of an RBM agent.
    pub fn by_agent_id(&self, agent_id: &str) -> Option<&str> {
        self.by_agent_id.get(agent_id).map(String::as_str)
    }

    /// How many endpoints are bound, per channel: (WhatsApp numbers, RBM agents).
    pub fn counts(&self) -> (usize, usize) {
        (self.by_phone_number_id.len(), self.by_agent_id.len())
    }
}

fn is_valid_tenant_id(tenant_id: &str) -> bool {
    !tenant_id.is_empty()
        && tenant_id
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_has_the_demo_tenant() {
        let tenants = Tenants::parse(DEFAULT_TENANTS).unwrap();
        assert_eq!(tenants.by_phone_number_id("100000000000001"), Some("demo"));
        assert_eq!(tenants.by_agent_id("demo-agent"), Some("demo"));
        assert_eq!(tenants.by_agent_id("other"), None);
    }

    #[test]
    fn several_tenants_and_bindings() {
        let tenants =
            Tenants::parse(" demo:whatsapp=1, rcs=a ; acme:whatsapp=2,whatsapp=3;;globex:rcs=g; ")
                .unwrap();
        assert_eq!(tenants.by_phone_number_id("1"), Some("demo"));
        assert_eq!(tenants.by_phone_number_id("3"), Some("acme"));
        assert_eq!(tenants.by_agent_id("g"), Some("globex"));
        assert_eq!(tenants.counts(), (3, 2));
        assert_eq!(Tenants::parse("").unwrap().counts(), (0, 0));
    }

    #[test]
    fn mistakes_are_named() {
        for (specification, expected) in [
            ("demo", "expected <tenant>"),
            (":whatsapp=1", "tenant id"),
            ("de:mo:whatsapp=1", "unknown channel \"mo:whatsapp\""),
            ("demo:whatsapp", "is not whatsapp="),
            ("demo:sms=1", "unknown channel \"sms\""),
            ("demo:whatsapp=", "empty id"),
            ("demo:", "no whatsapp= or rcs="),
            (
                "a:whatsapp=1;b:whatsapp=1",
                "already belongs to tenant \"a\"",
            ),
        ] {
            let error = Tenants::parse(specification).unwrap_err().to_string();
            assert!(error.contains(expected), "{specification:?} gave {error}");
        }
    }
}
