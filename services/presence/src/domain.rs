//! The pure decision core of presence: a signal (or an expiry), the current state of one entity
//! and `now` give the next state and the updates to publish. No I/O, no clock.
//!
//! An entity is one subject (customer or operator) either tenant-wide (online, last seen) or in
//! one conversation (typing, last read). Rules:
//!
//! - **online**: a signal starts it (update `online`, active) or, while it holds, only moves its
//!   deadline (no update: heartbeats are not news). `offline` ends it (update, inactive). The
//!   worker ends it when the deadline passes without a heartbeat (update, inactive).
//! - **typing**: the same with its own short time to live; a typing signal whose `expires_at`
//!   is not after its `occurred_at` means "stopped typing".
//! - **read**: a new message id read at or after the stored one is an update; the same id again,
//!   or an older read, is not.
//! - **last seen**: every signal moves it forward silently; an explicit `last_seen` signal that
//!   moves it forward is an update.
//! - a signal delivered again (same event id) that caused the current state publishes the same
//!   update again, with the same update id: the consumer retries a record whose update was not
//!   acknowledged, and the update must not be lost.
//! - a deadline is capped at `now + max_ttl`, and a signal whose deadline already passed is
//!   ignored (it arrived too late to mean anything).

use caas_events::keys::deterministic_event_id;
use caas_events::model::{Channel, PresenceKind, PresenceSubject, PresenceUpdate};
use serde::{Deserialize, Serialize};

use crate::keys::Activity;

/// Times the decisions need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long a typing signal without `expires_at` lasts, ms.
    pub typing_ttl_ms: i64,
    /// How long an online signal (heartbeat) without `expires_at` lasts, ms.
    pub online_ttl_ms: i64,
    /// The longest any signal may last, ms.
    pub max_ttl_ms: i64,
}

/// What a signal says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalKind {
    /// Online (a heartbeat); lapses at `expires_at` unless repeated.
    Online {
        /// When it lapses, epoch ms.
        expires_at: Option<i64>,
    },
    /// Offline.
    Offline,
    /// Typing in a conversation; lapses at `expires_at`; not after `occurred_at` means stop.
    Typing {
        /// When it lapses, epoch ms.
        expires_at: Option<i64>,
    },
    /// Read a conversation up to a message.
    Read {
        /// The provider message id read up to.
        provider_message_id: String,
    },
    /// Seen at `occurred_at` (an explicit last-seen signal: news when it moves forward).
    LastSeen,
    /// Active at `occurred_at` somewhere else (typing or reading in a conversation): moves the
    /// tenant-wide last seen silently.
    Seen,
}

/// One normalised input signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// The input event's id.
    pub event_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The Kafka key updates about this entity use (conversation key, or operator key).
    pub update_key: String,
    /// The conversation's channel, if in a conversation.
    pub channel: Option<Channel>,
    /// Whose presence.
    pub subject: PresenceSubject,
    /// The customer or operator id.
    pub subject_id: String,
    /// When it happened, epoch ms.
    pub occurred_at: i64,
    /// The input's W3C trace context, carried to the updates.
    pub trace_parent: Option<String>,
    /// What it says.
    pub kind: SignalKind,
}

/// An activity with a deadline (online, typing), as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityState {
    /// Whether it holds.
    pub active: bool,
    /// When it lapses without renewal, epoch ms (meaningful while active).
    pub deadline: i64,
    /// When it last started or ended, epoch ms.
    pub changed_at: i64,
    /// The event (or expiry) that last started or ended it.
    pub cause: String,
}

/// The last read mark, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadState {
    /// The provider message id read up to.
    pub provider_message_id: String,
    /// When, epoch ms.
    pub at: i64,
    /// The event that set it.
    pub cause: String,
}

/// The stored state of one entity (one Redis key, see [`crate::keys`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityState {
    /// The tenant.
    pub tenant_id: String,
    /// Whose presence.
    pub subject: PresenceSubject,
    /// The customer or operator id.
    pub subject_id: String,
    /// Where updates about this entity go (Kafka key).
    pub update_key: String,
    /// The channel, when in a conversation.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Online (tenant-wide entities).
    #[serde(default)]
    pub online: Option<ActivityState>,
    /// Typing (conversation entities).
    #[serde(default)]
    pub typing: Option<ActivityState>,
    /// Last read (conversation entities).
    #[serde(default)]
    pub read: Option<ReadState>,
    /// Last seen, epoch ms.
    #[serde(default)]
    pub last_seen_at: Option<i64>,
    /// The explicit last-seen signal that last moved `last_seen_at`.
    #[serde(default)]
    pub last_seen_cause: Option<String>,
}

impl EntityState {
    /// A fresh state for the entity a signal is about.
    pub fn for_signal(signal: &Signal) -> Self {
        Self {
            tenant_id: signal.tenant_id.clone(),
            subject: signal.subject,
            subject_id: signal.subject_id.clone(),
            update_key: signal.update_key.clone(),
            channel: signal.channel,
            online: None,
            typing: None,
            read: None,
            last_seen_at: None,
            last_seen_cause: None,
        }
    }

    fn activity(&self, activity: Activity) -> Option<&ActivityState> {
        match activity {
            Activity::Online => self.online.as_ref(),
            Activity::Typing => self.typing.as_ref(),
        }
    }

    fn activity_mut(&mut self, activity: Activity) -> &mut Option<ActivityState> {
        match activity {
            Activity::Online => &mut self.online,
            Activity::Typing => &mut self.typing,
        }
    }
}

/// What to do about the deadline index of one activity after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineChange {
    /// Leave it as it is.
    Keep,
    /// The activity holds until this time: (re)schedule its expiry.
    Set(i64),
    /// The activity ended: nothing to expire.
    Clear,
}

/// The outcome of a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The state to store.
    pub state: EntityState,
    /// Updates to publish, in order.
    pub updates: Vec<PresenceUpdate>,
    /// The activity whose deadline changes, and how.
    pub deadline: Option<(Activity, DeadlineChange)>,
}

impl Decision {
    fn unchanged(state: EntityState) -> Self {
        Self {
            state,
            updates: Vec::new(),
            deadline: None,
        }
    }
}

/// The deterministic id of the update a cause produced.
pub fn update_id(cause: &str, kind: PresenceKind, state: &EntityState) -> String {
    let kind_name = format!("{kind:?}");
    deterministic_event_id(&[
        "presence-update",
        cause,
        &kind_name,
        crate::keys::subject_name(state.subject),
        &state.subject_id,
    ])
}

struct UpdateFields<'a> {
    cause: &'a str,
    kind: PresenceKind,
    active: bool,
    occurred_at: i64,
    expires_at: Option<i64>,
    read_provider_message_id: Option<String>,
    trace_parent: Option<String>,
}

fn update(state: &EntityState, fields: UpdateFields<'_>, now: i64) -> PresenceUpdate {
    PresenceUpdate {
        event_id: update_id(fields.cause, fields.kind, state),
        tenant_id: state.tenant_id.clone(),
        conversation_key: state.update_key.clone(),
        channel: state.channel,
        occurred_at: fields.occurred_at,
        recorded_at: now,
        source: "presence".to_string(),
        trace_parent: fields.trace_parent,
        kind: fields.kind,
        subject: state.subject,
        subject_id: state.subject_id.clone(),
        active: fields.active,
        last_seen_at: state.last_seen_at,
        read_provider_message_id: fields.read_provider_message_id,
        expires_at: fields.expires_at,
    }
}

/// Decide what `signal` changes in `current` (a fresh state when `None`) at `now`.
pub fn decide(
    signal: &Signal,
    current: Option<EntityState>,
    now: i64,
    settings: &Settings,
) -> Decision {
    let mut state = current.unwrap_or_else(|| EntityState::for_signal(signal));
    // Keep where updates go current: a customer's latest conversation, a channel once known.
    // A `Seen` from elsewhere does not move it.
    if signal.kind != SignalKind::Seen {
        state.update_key = signal.update_key.clone();
        if signal.channel.is_some() {
            state.channel = signal.channel;
        }
    }
    let seen_before = state.last_seen_at;
    state.last_seen_at =
        Some(seen_before.map_or(signal.occurred_at, |seen| seen.max(signal.occurred_at)));
    let cap = now.saturating_add(settings.max_ttl_ms);
    match &signal.kind {
        SignalKind::Online { expires_at } => {
            let deadline = expires_at
                .unwrap_or(signal.occurred_at.saturating_add(settings.online_ttl_ms))
                .min(cap);
            start_or_renew(
                state,
                signal,
                Activity::Online,
                PresenceKind::Online,
                deadline,
                now,
            )
        }
        SignalKind::Offline => end(state, signal, Activity::Online, PresenceKind::Online, now),
        SignalKind::Typing { expires_at } => {
            let deadline = expires_at
                .unwrap_or(signal.occurred_at.saturating_add(settings.typing_ttl_ms))
                .min(cap);
            if deadline <= signal.occurred_at {
                end(state, signal, Activity::Typing, PresenceKind::Typing, now)
            } else {
                start_or_renew(
                    state,
                    signal,
                    Activity::Typing,
                    PresenceKind::Typing,
                    deadline,
                    now,
                )
            }
        }
        SignalKind::Read {
            provider_message_id,
        } => {
            let read_update = |state: &EntityState, cause: &str, at: i64| {
                update(
                    state,
                    UpdateFields {
                        cause,
                        kind: PresenceKind::Read,
                        active: true,
                        occurred_at: at,
                        expires_at: None,
                        read_provider_message_id: Some(provider_message_id.clone()),
                        trace_parent: signal.trace_parent.clone(),
                    },
                    now,
                )
            };
            match state.read.clone() {
                Some(read) if read.cause == signal.event_id => {
                    let again = read_update(&state, &read.cause, read.at);
                    Decision {
                        updates: vec![again],
                        ..Decision::unchanged(state)
                    }
                }
                Some(read)
                    if read.provider_message_id == *provider_message_id
                        || signal.occurred_at < read.at =>
                {
                    Decision::unchanged(state)
                }
                _ => {
                    state.read = Some(ReadState {
                        provider_message_id: provider_message_id.clone(),
                        at: signal.occurred_at,
                        cause: signal.event_id.clone(),
                    });
                    let published = read_update(&state, &signal.event_id, signal.occurred_at);
                    Decision {
                        updates: vec![published],
                        ..Decision::unchanged(state)
                    }
                }
            }
        }
        SignalKind::Seen => Decision::unchanged(state),
        SignalKind::LastSeen => {
            let fields = UpdateFields {
                cause: &signal.event_id,
                kind: PresenceKind::LastSeen,
                active: true,
                occurred_at: signal.occurred_at,
                expires_at: None,
                read_provider_message_id: None,
                trace_parent: signal.trace_parent.clone(),
            };
            if state.last_seen_cause.as_deref() == Some(signal.event_id.as_str()) {
                let again = update(&state, fields, now);
                return Decision {
                    updates: vec![again],
                    ..Decision::unchanged(state)
                };
            }
            let moved = seen_before.is_none_or(|seen| signal.occurred_at > seen);
            if !moved {
                return Decision::unchanged(state);
            }
            state.last_seen_cause = Some(signal.event_id.clone());
            let published = update(&state, fields, now);
            Decision {
                updates: vec![published],
                ..Decision::unchanged(state)
            }
        }
    }
}

fn holds(activity: Option<&ActivityState>, now: i64) -> bool {
    activity.is_some_and(|activity| activity.active && activity.deadline > now)
}

fn start_or_renew(
    mut state: EntityState,
    signal: &Signal,
    activity: Activity,
    kind: PresenceKind,
    deadline: i64,
    now: i64,
) -> Decision {
    let current = state.activity(activity).cloned();
    if let Some(current) = &current {
        if current.cause == signal.event_id && current.active {
            // Delivered again: publish the update it caused again.
            let again = update(
                &state,
                UpdateFields {
                    cause: &current.cause,
                    kind,
                    active: true,
                    occurred_at: current.changed_at,
                    expires_at: Some(current.deadline),
                    read_provider_message_id: None,
                    trace_parent: signal.trace_parent.clone(),
                },
                now,
            );
            return Decision {
                updates: vec![again],
                ..Decision::unchanged(state)
            };
        }
    }
    if deadline <= now {
        // Too late to mean anything; the expiry (if any) stays scheduled as it is.
        return Decision::unchanged(state);
    }
    if holds(current.as_ref(), now) {
        let renewed = current.map(|mut current| {
            current.deadline = current.deadline.max(deadline);
            current
        });
        let new_deadline = renewed
            .as_ref()
            .map_or(deadline, |renewed| renewed.deadline);
        *state.activity_mut(activity) = renewed;
        return Decision {
            deadline: Some((activity, DeadlineChange::Set(new_deadline))),
            ..Decision::unchanged(state)
        };
    }
    *state.activity_mut(activity) = Some(ActivityState {
        active: true,
        deadline,
        changed_at: signal.occurred_at,
        cause: signal.event_id.clone(),
    });
    let published = update(
        &state,
        UpdateFields {
            cause: &signal.event_id,
            kind,
            active: true,
            occurred_at: signal.occurred_at,
            expires_at: Some(deadline),
            read_provider_message_id: None,
            trace_parent: signal.trace_parent.clone(),
        },
        now,
    );
    Decision {
        updates: vec![published],
        deadline: Some((activity, DeadlineChange::Set(deadline))),
        state,
    }
}

fn end(
    mut state: EntityState,
    signal: &Signal,
    activity: Activity,
    kind: PresenceKind,
    now: i64,
) -> Decision {
    let current = state.activity(activity).cloned();
    match current {
        Some(current) if !current.active && current.cause == signal.event_id => {
            let again = update(
                &state,
                UpdateFields {
                    cause: &current.cause,
                    kind,
                    active: false,
                    occurred_at: current.changed_at,
                    expires_at: None,
                    read_provider_message_id: None,
                    trace_parent: signal.trace_parent.clone(),
                },
                now,
            );
            Decision {
                updates: vec![again],
                ..Decision::unchanged(state)
            }
        }
        Some(current) if holds(Some(&current), now) => {
            *state.activity_mut(activity) = Some(ActivityState {
                active: false,
                deadline: current.deadline,
                changed_at: signal.occurred_at,
                cause: signal.event_id.clone(),
            });
            let published = update(
                &state,
                UpdateFields {
                    cause: &signal.event_id,
                    kind,
                    active: false,
                    occurred_at: signal.occurred_at,
                    expires_at: None,
                    read_provider_message_id: None,
                    trace_parent: signal.trace_parent.clone(),
                },
                now,
            );
            Decision {
                updates: vec![published],
                deadline: Some((activity, DeadlineChange::Clear)),
                state,
            }
        }
        // Not active (or already lapsed, which the expiry scanner reports): nothing changes.
        _ => Decision::unchanged(state),
    }
}

/// The cause recorded when an activity lapses at `deadline`.
pub fn expiry_cause(activity: Activity, deadline: i64) -> String {
    format!("expired:{}:{deadline}", activity.as_str())
}

/// Decide what the scanner does for an activity whose deadline entry came due at `now`.
/// `scheduled` is the deadline the index held.
pub fn expire(state: EntityState, activity: Activity, scheduled: i64, now: i64) -> Decision {
    let kind = match activity {
        Activity::Online => PresenceKind::Online,
        Activity::Typing => PresenceKind::Typing,
    };
    let Some(current) = state.activity(activity).cloned() else {
        return Decision {
            deadline: Some((activity, DeadlineChange::Clear)),
            ..Decision::unchanged(state)
        };
    };
    let cause = expiry_cause(activity, current.deadline);
    if !current.active {
        let updates = if current.cause == expiry_cause(activity, scheduled) {
            // A previous scan changed the state but its update was not confirmed: again.
            vec![update(
                &state,
                UpdateFields {
                    cause: &current.cause,
                    kind,
                    active: false,
                    occurred_at: current.changed_at,
                    expires_at: None,
                    read_provider_message_id: None,
                    trace_parent: None,
                },
                now,
            )]
        } else {
            Vec::new()
        };
        return Decision {
            updates,
            deadline: Some((activity, DeadlineChange::Clear)),
            state,
        };
    }
    if current.deadline > now {
        // Renewed since it was scheduled.
        return Decision {
            deadline: Some((activity, DeadlineChange::Set(current.deadline))),
            ..Decision::unchanged(state)
        };
    }
    let mut state = state;
    *state.activity_mut(activity) = Some(ActivityState {
        active: false,
        deadline: current.deadline,
        changed_at: current.deadline,
        cause: cause.clone(),
    });
    let published = update(
        &state,
        UpdateFields {
            cause: &cause,
            kind,
            active: false,
            occurred_at: current.deadline,
            expires_at: None,
            read_provider_message_id: None,
            trace_parent: None,
        },
        now,
    );
    Decision {
        updates: vec![published],
        deadline: Some((activity, DeadlineChange::Clear)),
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: Settings = Settings {
        typing_ttl_ms: 6_000,
        online_ttl_ms: 30_000,
        max_ttl_ms: 300_000,
    };

    fn signal(event_id: &str, at: i64, kind: SignalKind) -> Signal {
        Signal {
            event_id: event_id.to_string(),
            tenant_id: "acme".to_string(),
            update_key: "acme:operator:op-1".to_string(),
            channel: None,
            subject: PresenceSubject::Operator,
            subject_id: "op-1".to_string(),
            occurred_at: at,
            trace_parent: None,
            kind,
        }
    }

    fn online(event_id: &str, at: i64) -> Signal {
        signal(
            event_id,
            at,
            SignalKind::Online {
                expires_at: Some(at + 10_000),
            },
        )
    }

    /// Feed signals in order at their own time; return every update.
    fn run(signals: &[Signal]) -> (Option<EntityState>, Vec<PresenceUpdate>) {
        let mut state = None;
        let mut updates = Vec::new();
        for signal in signals {
            let decision = decide(signal, state.take(), signal.occurred_at, &SETTINGS);
            updates.extend(decision.updates);
            state = Some(decision.state);
        }
        (state, updates)
    }

    #[test]
    fn the_first_heartbeat_is_news_and_the_next_ones_are_not() {
        let (state, updates) = run(&[
            online("h1", 1_000),
            online("h2", 4_000),
            online("h3", 7_000),
        ]);
        assert_eq!(updates.len(), 1);
        assert!(updates[0].active);
        assert_eq!(updates[0].kind, PresenceKind::Online);
        assert_eq!(updates[0].expires_at, Some(11_000));
        let online = state.unwrap().online.unwrap();
        assert_eq!(online.deadline, 17_000, "renewed by the last heartbeat");
        assert_eq!(online.cause, "h1");
    }

    #[test]
    fn heartbeats_that_stop_expire_into_one_offline_update() {
        let (state, _) = run(&[online("h1", 1_000), online("h2", 4_000)]);
        let state = state.unwrap();
        let early = expire(state.clone(), Activity::Online, 11_000, 12_000);
        assert!(early.updates.is_empty(), "renewed to 14000");
        assert_eq!(
            early.deadline,
            Some((Activity::Online, DeadlineChange::Set(14_000)))
        );
        let due = expire(state, Activity::Online, 14_000, 14_500);
        assert_eq!(due.updates.len(), 1);
        assert!(!due.updates[0].active);
        assert_eq!(
            due.updates[0].occurred_at, 14_000,
            "it lapsed at the deadline"
        );
        assert_eq!(
            due.deadline,
            Some((Activity::Online, DeadlineChange::Clear))
        );
        // The scanner crashed before the update was confirmed: the next scan sends the same one.
        let again = expire(due.state.clone(), Activity::Online, 14_000, 16_000);
        assert_eq!(
            again.updates,
            due.updates
                .iter()
                .map(|update| PresenceUpdate {
                    recorded_at: 16_000,
                    ..update.clone()
                })
                .collect::<Vec<_>>()
        );
        // After a later heartbeat the old expiry is not news.
        let back = decide(&online("h4", 20_000), Some(due.state), 20_000, &SETTINGS);
        assert_eq!(back.updates.len(), 1);
        assert!(back.updates[0].active);
        let stale = expire(back.state, Activity::Online, 14_000, 21_000);
        assert!(stale.updates.is_empty());
    }

    #[test]
    fn offline_ends_online_once() {
        let (_, updates) = run(&[
            online("h1", 1_000),
            signal("off", 2_000, SignalKind::Offline),
            signal("off2", 2_500, SignalKind::Offline),
        ]);
        let actives: Vec<bool> = updates.iter().map(|update| update.active).collect();
        assert_eq!(actives, vec![true, false]);
    }

    #[test]
    fn typing_expires_without_a_stop_and_a_stop_ends_it() {
        let typing = |id: &str, at: i64| signal(id, at, SignalKind::Typing { expires_at: None });
        let (state, updates) = run(&[typing("t1", 1_000), typing("t2", 2_000)]);
        assert_eq!(updates.len(), 1, "repeated typing is not news");
        let state = state.unwrap();
        assert_eq!(state.typing.as_ref().unwrap().deadline, 8_000);
        let expired = expire(state.clone(), Activity::Typing, 8_000, 8_100);
        assert_eq!(expired.updates.len(), 1);
        assert!(!expired.updates[0].active);
        assert_eq!(expired.updates[0].kind, PresenceKind::Typing);

        let stop = signal(
            "stop",
            3_000,
            SignalKind::Typing {
                expires_at: Some(3_000),
            },
        );
        let stopped = decide(&stop, Some(state), 3_000, &SETTINGS);
        assert_eq!(stopped.updates.len(), 1);
        assert!(!stopped.updates[0].active);
        assert_eq!(
            stopped.deadline,
            Some((Activity::Typing, DeadlineChange::Clear))
        );
    }

    #[test]
    fn reads_move_forward_only_and_repeats_are_silent() {
        let read = |id: &str, at: i64, message: &str| {
            signal(
                id,
                at,
                SignalKind::Read {
                    provider_message_id: message.to_string(),
                },
            )
        };
        let (state, updates) = run(&[
            read("r1", 1_000, "m1"),
            read("r2", 2_000, "m1"),
            read("r3", 3_000, "m2"),
        ]);
        let read_ids: Vec<Option<String>> = updates
            .iter()
            .map(|update| update.read_provider_message_id.clone())
            .collect();
        assert_eq!(
            read_ids,
            vec![Some("m1".to_string()), Some("m2".to_string())]
        );
        let older = decide(&read("r0", 500, "m0"), state, 4_000, &SETTINGS);
        assert!(
            older.updates.is_empty(),
            "an older read does not move the mark back"
        );
    }

    #[test]
    fn a_redelivered_signal_publishes_the_same_update_again() {
        let first = decide(&online("h1", 1_000), None, 1_000, &SETTINGS);
        let again = decide(
            &online("h1", 1_000),
            Some(first.state.clone()),
            1_200,
            &SETTINGS,
        );
        assert_eq!(again.updates.len(), 1);
        assert_eq!(again.updates[0].event_id, first.updates[0].event_id);
        let off = decide(
            &signal("off", 2_000, SignalKind::Offline),
            Some(first.state),
            2_000,
            &SETTINGS,
        );
        let off_again = decide(
            &signal("off", 2_000, SignalKind::Offline),
            Some(off.state),
            2_100,
            &SETTINGS,
        );
        assert_eq!(off_again.updates.len(), 1);
        assert_eq!(off_again.updates[0].event_id, off.updates[0].event_id);
    }

    #[test]
    fn late_and_far_future_signals_are_bounded() {
        let late = decide(&online("h1", 1_000), None, 60_000, &SETTINGS);
        assert!(late.updates.is_empty(), "lapsed before it arrived");
        let far = decide(
            &signal(
                "h2",
                1_000,
                SignalKind::Online {
                    expires_at: Some(i64::MAX),
                },
            ),
            None,
            1_000,
            &SETTINGS,
        );
        assert_eq!(far.state.online.unwrap().deadline, 301_000);
    }

    #[test]
    fn last_seen_is_news_only_when_it_moves_forward() {
        let (_, updates) = run(&[
            signal("s1", 1_000, SignalKind::LastSeen),
            signal("s2", 1_000, SignalKind::LastSeen),
            online("h1", 2_000),
            signal("s3", 1_500, SignalKind::LastSeen),
            signal("s4", 3_000, SignalKind::LastSeen),
        ]);
        let kinds: Vec<(PresenceKind, Option<i64>)> = updates
            .iter()
            .map(|update| (update.kind, update.last_seen_at))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (PresenceKind::LastSeen, Some(1_000)),
                (PresenceKind::Online, Some(2_000)),
                (PresenceKind::LastSeen, Some(3_000)),
            ]
        );
    }
}
