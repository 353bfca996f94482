//! What to do with a command the idempotency ledger already has an entry for.
//!
//! The ledger entry of a command moves `pending → in_flight → pending → ... → accepted |
//! failed`; `in_flight` is written right before each provider call and cleared right after
//! the answer, so only a crash *during* a call leaves it behind. Whoever finds an entry decides:
//!
//! - final (`accepted`/`failed`) → publish the stored result again (idempotent by event id);
//! - the owner is alive (its liveness key exists and, if it is this process, a worker holds the
//!   command) → wait for it;
//! - the owner is gone and no call was in flight → take over and send: nothing went out;
//! - the owner is gone mid-call → RBM: take over and send with the same `messageId` (RBM
//!   drops a repeat); WhatsApp: the outcome is unknown, the policy decides (fail: at most
//!   once; resend: at least once).

use caas_events::model::Channel;

/// Where a ledger entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Claimed; no provider call running.
    Pending,
    /// A provider call was started and its answer not yet recorded.
    InFlight,
    /// Finished: a result is stored.
    Final,
}

/// What to do with an existing entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Publish the stored result.
    Republish,
    /// Another worker is on it; look again shortly.
    Wait,
    /// Take the entry over and send: no earlier attempt can have reached the provider, or the
    /// provider de-duplicates.
    TakeOver,
    /// Take the entry over; an earlier attempt may have reached WhatsApp.
    TakeOverUnknownOutcome,
}

/// Decide for an entry in `phase`, owned by a worker that is (`owner_alive`) or is not alive.
pub fn decide(phase: Phase, owner_alive: bool, channel: Channel) -> Decision {
    match (phase, owner_alive) {
        (Phase::Final, _) => Decision::Republish,
        (_, true) => Decision::Wait,
        (Phase::Pending, false) => Decision::TakeOver,
        (Phase::InFlight, false) => match channel {
            Channel::Rcs => Decision::TakeOver,
            Channel::Whatsapp => Decision::TakeOverUnknownOutcome,
        },
    }
}

/// What to do when a WhatsApp send's outcome is unknown (a crash or a timeout mid-call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownOutcome {
    /// Do not send again; report a failure the operator can act on (at most once).
    Fail,
    /// Send again (at least once: the customer may get the message twice).
    Resend,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_entries_are_republished_whoever_owns_them() {
        for alive in [true, false] {
            for channel in [Channel::Whatsapp, Channel::Rcs] {
                assert_eq!(decide(Phase::Final, alive, channel), Decision::Republish);
            }
        }
    }

    #[test]
    fn a_live_owner_is_waited_for() {
        assert_eq!(
            decide(Phase::Pending, true, Channel::Whatsapp),
            Decision::Wait
        );
        assert_eq!(decide(Phase::InFlight, true, Channel::Rcs), Decision::Wait);
    }

    #[test]
    fn a_dead_owner_is_replaced_and_only_whatsapp_in_flight_is_unknown() {
        assert_eq!(
            decide(Phase::Pending, false, Channel::Whatsapp),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Phase::InFlight, false, Channel::Rcs),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Phase::InFlight, false, Channel::Whatsapp),
            Decision::TakeOverUnknownOutcome
        );
    }
}
