//! The Redis key layout of presence state. Pure string functions: the worker, the logger's
//! erasure and the gateway (reading who is online) all use these.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `caas:presence:subject:{<tenant>}:<subject>:<id>` | string (JSON [`crate::domain::EntityState`]) | online and last seen of a customer or operator in a tenant |
//! | `caas:presence:conversation:{<conversation key>}:<subject>:<id>` | string (JSON) | typing and last read of a subject in one conversation |
//! | `caas:presence:online:{<tenant>}` | sorted set, member `<subject>:<id>`, score = deadline (epoch ms) | who is online: `ZRANGEBYSCORE key <now> +inf` |
//! | `caas:presence:deadlines` | sorted set, member `<activity>\|<entity key>`, score = deadline | what the worker must expire, and when ([`deadlines`]: suffixed with the topic prefix when one is set) |
//!
//! The braces are Redis Cluster hash tags: a tenant's or a conversation's keys share a slot.
//! Entity keys expire by themselves ([`crate::Config::state_ttl`]) once nobody touches them.

use caas_events::model::PresenceSubject;

/// The sorted set of activity deadlines the expiry scanner reads (no topic prefix).
pub const DEADLINES: &str = "caas:presence:deadlines";

/// The deadline index of the deployment whose topics carry `topic_prefix`: [`DEADLINES`]
/// without a prefix, `caas:presence:deadlines:<prefix>` with one. Separate indexes keep a
/// scanner from expiring (and publishing to its own topic) what another deployment sharing
/// the Redis scheduled.
pub fn deadlines(topic_prefix: &str) -> String {
    if topic_prefix.is_empty() {
        DEADLINES.to_string()
    } else {
        format!("{DEADLINES}:{topic_prefix}")
    }
}

/// The name of a subject in keys and members: `customer` or `operator`.
pub fn subject_name(subject: PresenceSubject) -> &'static str {
    match subject {
        PresenceSubject::Customer => "customer",
        PresenceSubject::Operator => "operator",
    }
}

/// The key of a subject's tenant-wide state (online, last seen).
pub fn subject_key(tenant_id: &str, subject: PresenceSubject, subject_id: &str) -> String {
    format!(
        "caas:presence:subject:{{{tenant_id}}}:{}:{subject_id}",
        subject_name(subject)
    )
}

/// The key of a subject's state in one conversation (typing, last read).
pub fn conversation_key(
    conversation_key: &str,
    subject: PresenceSubject,
    subject_id: &str,
) -> String {
    format!(
        "caas:presence:conversation:{{{conversation_key}}}:{}:{subject_id}",
        subject_name(subject)
    )
}

/// A `SCAN MATCH` pattern for every subject's state in one conversation.
pub fn conversation_pattern(conversation_key: &str) -> String {
    format!(
        "caas:presence:conversation:{{{}}}:*",
        escape_glob(conversation_key)
    )
}

/// The sorted set of who is online in a tenant.
pub fn online_index(tenant_id: &str) -> String {
    format!("caas:presence:online:{{{tenant_id}}}")
}

/// A member of [`online_index`].
pub fn online_member(subject: PresenceSubject, subject_id: &str) -> String {
    format!("{}:{subject_id}", subject_name(subject))
}

/// An activity with a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    /// Online (heartbeats renew it).
    Online,
    /// Typing (renewed by repeated typing signals).
    Typing,
}

impl Activity {
    /// The name in deadline members.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Online => "online",
            Activity::Typing => "typing",
        }
    }
}

/// A member of [`DEADLINES`]: `<activity>|<entity key>`.
pub fn deadline_member(activity: Activity, entity_key: &str) -> String {
    format!("{}|{entity_key}", activity.as_str())
}

/// Split a [`DEADLINES`] member; `None` if it is not one of ours.
pub fn parse_deadline_member(member: &str) -> Option<(Activity, &str)> {
    let (activity, entity_key) = member.split_once('|')?;
    let activity = match activity {
        "online" => Activity::Online,
        "typing" => Activity::Typing,
        _ => return None,
    };
    Some((activity, entity_key))
}

/// Escape Redis glob characters so a pattern matches `text` literally.
pub fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tag_the_tenant_or_conversation() {
        assert_eq!(
            subject_key("acme", PresenceSubject::Operator, "op-1"),
            "caas:presence:subject:{acme}:operator:op-1"
        );
        assert_eq!(
            conversation_key("acme:whatsapp:49", PresenceSubject::Customer, "49"),
            "caas:presence:conversation:{acme:whatsapp:49}:customer:49"
        );
        assert_eq!(online_index("acme"), "caas:presence:online:{acme}");
    }

    #[test]
    fn deadline_members_round_trip() {
        let entity = conversation_key("acme:rcs:+49|1", PresenceSubject::Customer, "+49|1");
        let member = deadline_member(Activity::Typing, &entity);
        assert_eq!(
            parse_deadline_member(&member),
            Some((Activity::Typing, entity.as_str()))
        );
        assert_eq!(parse_deadline_member("other|x"), None);
    }

    #[test]
    fn patterns_match_literally() {
        assert_eq!(
            conversation_pattern("acme:whatsapp:4*9"),
            "caas:presence:conversation:{acme:whatsapp:4\\*9}:*"
        );
    }
}
