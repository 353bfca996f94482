//! Room names. Every room is scoped to one tenant, so an emit can never cross tenants:
//!
//! - `tenant:<tenant>`: every operator of the tenant (conversation list, campaigns, operator
//!   presence).
//! - `operator:<tenant>:<operator>`: one operator on all its tabs and instances. Operator ids
//!   are only unique within a tenant, hence the tenant in the name.
//! - `conversation:<conversation key>`: operators who opened the conversation (thread, ticks,
//!   typing). The key starts with the tenant.
//! - `explorer:<tenant>`: admins watching the tenant's event explorer live tail (joined on this
//!   instance only: each instance tails the stored events itself and emits locally).

use caas_events::keys;

/// The room of every operator of `tenant`.
pub fn tenant(tenant: &str) -> String {
    format!("tenant:{tenant}")
}

/// The room of one operator.
pub fn operator(tenant: &str, operator_id: &str) -> String {
    format!("operator:{tenant}:{operator_id}")
}

/// The room of the admins tailing `tenant`'s stored events.
pub fn explorer(tenant: &str) -> String {
    format!("explorer:{tenant}")
}

/// The room of one conversation.
pub fn conversation(conversation_key: &str) -> String {
    format!("conversation:{conversation_key}")
}

/// Why an operator may not touch a conversation key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not `<tenant>:<whatsapp|rcs>:<customer>`.
    #[error("conversation_key {0:?} is not <tenant>:<whatsapp|rcs>:<customer>")]
    Malformed(String),
    /// The key belongs to another tenant.
    #[error("conversation {0:?} is not in your tenant")]
    OtherTenant(String),
}

/// Check that `conversation_key` is a conversation key of `tenant`.
pub fn check_conversation_key<'a>(
    tenant: &str,
    conversation_key: &'a str,
) -> Result<keys::ConversationKey<'a>, KeyError> {
    let parsed = keys::parse_conversation_key(conversation_key)
        .ok_or_else(|| KeyError::Malformed(conversation_key.to_string()))?;
    if parsed.tenant_id != tenant {
        return Err(KeyError::OtherTenant(conversation_key.to_string()));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_other_tenants_are_refused() {
        assert!(check_conversation_key("acme", "acme:whatsapp:49151").is_ok());
        assert_eq!(
            check_conversation_key("acme", "globex:whatsapp:49151"),
            Err(KeyError::OtherTenant("globex:whatsapp:49151".into()))
        );
        // A tenant that is a prefix of another is still another tenant.
        assert!(check_conversation_key("acm", "acme:rcs:1").is_err());
        assert!(matches!(
            check_conversation_key("acme", "acme:campaign:c1"),
            Err(KeyError::Malformed(_))
        ));
        assert!(check_conversation_key("acme", "acme:whatsapp:").is_err());
    }

    #[test]
    fn room_names_carry_the_tenant() {
        assert_eq!(tenant("acme"), "tenant:acme");
        assert_eq!(operator("acme", "op-1"), "operator:acme:op-1");
        assert_eq!(
            conversation("acme:whatsapp:1"),
            "conversation:acme:whatsapp:1"
        );
    }
}
