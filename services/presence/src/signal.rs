//! Pure conversion of the input events into [`Signal`]s, with the entity each one is about.
//! An event that breaks the contract is an `Err` with the reason (the record goes to the DLQ);
//! an event presence does not care about is `Ok(None)`.

use caas_events::keys::parse_conversation_key;
use caas_events::model::{
    InboundStatus, MessageStatus, PresenceEvent, PresenceKind, PresenceSubject,
};

use crate::domain::{Signal, SignalKind};
use crate::keys;

/// A signal and the Redis key of the entity it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The entity's key.
    pub entity_key: String,
    /// The signal.
    pub signal: Signal,
    /// For signals inside a conversation: the tenant-wide entity whose last-seen they move.
    pub touches: Option<String>,
}

fn belongs_to_tenant(key: &str, tenant: &str) -> bool {
    !tenant.is_empty()
        && key
            .strip_prefix(tenant)
            .is_some_and(|rest| rest.starts_with(':'))
}

/// A presence signal from `presence.events.v1`.
pub fn from_presence_event(event: &PresenceEvent) -> Result<Option<Routed>, String> {
    if !belongs_to_tenant(&event.conversation_key, &event.tenant_id) {
        return Err(format!(
            "conversation_key {:?} does not belong to tenant {:?}",
            event.conversation_key, event.tenant_id
        ));
    }
    if event.subject_id.is_empty() {
        return Err("subject_id is empty".to_string());
    }
    let kind = match event.kind {
        PresenceKind::Online => SignalKind::Online {
            expires_at: event.expires_at,
        },
        PresenceKind::Offline => SignalKind::Offline,
        PresenceKind::LastSeen => SignalKind::LastSeen,
        PresenceKind::Typing => SignalKind::Typing {
            expires_at: event.expires_at,
        },
        PresenceKind::Read => match &event.provider_message_id {
            Some(id) if !id.is_empty() => SignalKind::Read {
                provider_message_id: id.clone(),
            },
            _ => return Err("a read signal needs provider_message_id".to_string()),
        },
        PresenceKind::Unknown => return Ok(None),
    };
    let in_conversation = matches!(kind, SignalKind::Typing { .. } | SignalKind::Read { .. });
    let subject_entity = keys::subject_key(&event.tenant_id, event.subject, &event.subject_id);
    let (entity_key, touches) = if in_conversation {
        if parse_conversation_key(&event.conversation_key).is_none() {
            return Err(format!(
                "{:?} needs a conversation key <tenant>:<whatsapp|rcs>:<customer>, got {:?}",
                event.kind, event.conversation_key
            ));
        }
        (
            keys::conversation_key(&event.conversation_key, event.subject, &event.subject_id),
            Some(subject_entity),
        )
    } else {
        (subject_entity, None)
    };
    Ok(Some(Routed {
        entity_key,
        touches,
        signal: Signal {
            event_id: event.event_id.clone(),
            tenant_id: event.tenant_id.clone(),
            update_key: event.conversation_key.clone(),
            channel: event.channel,
            subject: event.subject,
            subject_id: event.subject_id.clone(),
            occurred_at: event.occurred_at,
            trace_parent: event.trace_parent.clone(),
            kind,
        },
    }))
}

/// A customer's read from `inbound.statuses.v1`; other statuses are not presence.
pub fn from_status(status: &InboundStatus) -> Result<Option<Routed>, String> {
    if status.status != MessageStatus::Read {
        return Ok(None);
    }
    let Some(conversation) = parse_conversation_key(&status.conversation_key) else {
        return Err(format!(
            "a status needs a conversation key <tenant>:<whatsapp|rcs>:<customer>, got {:?}",
            status.conversation_key
        ));
    };
    if conversation.tenant_id != status.tenant_id {
        return Err(format!(
            "conversation_key {:?} does not belong to tenant {:?}",
            status.conversation_key, status.tenant_id
        ));
    }
    let customer = if status.recipient_id.is_empty() {
        conversation.customer_id.to_string()
    } else {
        status.recipient_id.clone()
    };
    Ok(Some(Routed {
        entity_key: keys::conversation_key(
            &status.conversation_key,
            PresenceSubject::Customer,
            &customer,
        ),
        touches: Some(keys::subject_key(
            &status.tenant_id,
            PresenceSubject::Customer,
            &customer,
        )),
        signal: Signal {
            event_id: status.event_id.clone(),
            tenant_id: status.tenant_id.clone(),
            update_key: status.conversation_key.clone(),
            channel: Some(status.channel),
            subject: PresenceSubject::Customer,
            subject_id: customer,
            occurred_at: status.occurred_at,
            trace_parent: status.trace_parent.clone(),
            kind: SignalKind::Read {
                provider_message_id: status.provider_message_id.clone(),
            },
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_events::model::Channel;

    fn event(kind: PresenceKind, key: &str) -> PresenceEvent {
        PresenceEvent {
            event_id: "e1".to_string(),
            tenant_id: "acme".to_string(),
            conversation_key: key.to_string(),
            channel: Some(Channel::Whatsapp),
            occurred_at: 1_000,
            recorded_at: 1_001,
            source: "gateway".to_string(),
            trace_parent: None,
            kind,
            subject: PresenceSubject::Operator,
            subject_id: "op-1".to_string(),
            provider_message_id: None,
            expires_at: None,
        }
    }

    #[test]
    fn online_is_tenant_wide_and_typing_is_per_conversation() {
        let online = from_presence_event(&event(PresenceKind::Online, "acme:operator:op-1"))
            .unwrap()
            .unwrap();
        assert_eq!(
            online.entity_key,
            "caas:presence:subject:{acme}:operator:op-1"
        );
        assert_eq!(online.touches, None);
        let typing = from_presence_event(&event(PresenceKind::Typing, "acme:whatsapp:49"))
            .unwrap()
            .unwrap();
        assert_eq!(
            typing.entity_key,
            "caas:presence:conversation:{acme:whatsapp:49}:operator:op-1"
        );
        assert_eq!(
            typing.touches.as_deref(),
            Some("caas:presence:subject:{acme}:operator:op-1")
        );
    }

    #[test]
    fn contract_violations_are_reasons_and_unknown_kinds_are_ignored() {
        assert!(from_presence_event(&event(PresenceKind::Typing, "acme:operator:op-1")).is_err());
        assert!(from_presence_event(&event(PresenceKind::Online, "other:operator:op-1")).is_err());
        assert!(from_presence_event(&event(PresenceKind::Read, "acme:whatsapp:49")).is_err());
        assert_eq!(
            from_presence_event(&event(PresenceKind::Unknown, "acme:whatsapp:49")),
            Ok(None)
        );
    }
}
