//! The delivery status of an outbound message, as a pure function of what was observed.
//!
//! A message keeps, per status, the earliest observation of it (smallest time, then smallest
//! event id). Everything else is derived from that set, so the final document does not depend
//! on the order in which the observations arrived (out-of-order webhooks, statuses before the
//! send result, redeliveries):
//!
//! - the current status is the highest observed one in the order
//!   `queued < accepted < sent < delivered < read < failed`: it only moves forward, and
//!   `failed` is terminal;
//! - the timeline lists every observed status, and fills the gaps of the provider's ladder: a
//!   `read` without `delivered` (or a `delivered` without `sent`) adds the missing steps,
//!   marked `inferred`, at the time of the lowest higher status observed. A real observation
//!   arriving later replaces the inferred one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where an outbound message is, lowest to highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// A send was requested (`outbound.commands.v1`).
    Queued,
    /// The provider took it (`outbound.results.v1`, accepted).
    Accepted,
    /// The provider sent it (`inbound.statuses.v1`).
    Sent,
    /// It reached the customer's device.
    Delivered,
    /// The customer read it.
    Read,
    /// It could not be sent or delivered; terminal.
    Failed,
}

impl DeliveryStatus {
    /// Every status, lowest first.
    pub const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Queued,
        DeliveryStatus::Accepted,
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
        DeliveryStatus::Failed,
    ];

    /// The provider's ladder that gaps are filled on.
    const LADDER: [DeliveryStatus; 3] = [
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
    ];

    /// The name stored in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Accepted => "accepted",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// Why a message failed, as the provider or the sender said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageError {
    /// The provider's or CAAS's code.
    pub code: String,
    /// Short explanation.
    pub title: String,
    /// Longer explanation, when given.
    #[serde(default)]
    pub detail: Option<String>,
}

/// One observed status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusObservation {
    /// Which status.
    pub status: DeliveryStatus,
    /// When it happened (provider time), epoch milliseconds.
    pub at: i64,
    /// The event that reported it.
    pub event_id: String,
    /// The reason, for `failed`.
    #[serde(default)]
    pub error: Option<MessageError>,
}

impl StatusObservation {
    /// Whether this observation wins over `other` for the same status: the earliest, then the
    /// smallest event id, so the choice is the same whatever the arrival order.
    fn precedes(&self, other: &StatusObservation) -> bool {
        (self.at, &self.event_id) < (other.at, &other.event_id)
    }
}

/// One step of the derived timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// The status reached.
    pub status: DeliveryStatus,
    /// When, epoch milliseconds.
    pub at: i64,
    /// The event that reported it; `None` when inferred.
    #[serde(default)]
    pub event_id: Option<String>,
    /// True when no event reported this step and it was filled from a later one.
    pub inferred: bool,
}

/// The earliest observation of each status of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSet {
    observations: BTreeMap<DeliveryStatus, StatusObservation>,
}

impl StatusSet {
    /// A set holding `observations` (any order, duplicates allowed).
    pub fn from_observations(observations: impl IntoIterator<Item = StatusObservation>) -> Self {
        let mut set = Self::default();
        for observation in observations {
            set.observe(observation);
        }
        set
    }

    /// Add an observation; returns whether the set changed.
    pub fn observe(&mut self, observation: StatusObservation) -> bool {
        match self.observations.get(&observation.status) {
            Some(kept) if !observation.precedes(kept) => false,
            _ => {
                self.observations.insert(observation.status, observation);
                true
            }
        }
    }

    /// Add every observation of `other`; returns whether the set changed.
    pub fn merge(&mut self, other: &StatusSet) -> bool {
        let mut changed = false;
        for observation in other.observations.values() {
            changed |= self.observe(observation.clone());
        }
        changed
    }

    /// The kept observations, lowest status first.
    pub fn observations(&self) -> Vec<StatusObservation> {
        self.observations.values().cloned().collect()
    }

    /// Whether nothing was observed.
    pub fn is_empty(&self) -> bool {
        self.observations.is_empty()
    }

    /// The current status: the highest observed.
    pub fn current(&self) -> Option<DeliveryStatus> {
        self.observations.keys().next_back().copied()
    }

    /// The reason of the failure, when failed.
    pub fn error(&self) -> Option<&MessageError> {
        self.observations
            .get(&DeliveryStatus::Failed)
            .and_then(|observation| observation.error.as_ref())
    }

    /// Every observed status plus the inferred steps of the provider's ladder, lowest first.
    pub fn timeline(&self) -> Vec<TimelineEntry> {
        let mut timeline: Vec<TimelineEntry> = Vec::new();
        for status in DeliveryStatus::ALL {
            if let Some(observation) = self.observations.get(&status) {
                timeline.push(TimelineEntry {
                    status,
                    at: observation.at,
                    event_id: Some(observation.event_id.clone()),
                    inferred: false,
                });
            } else if let Some(at) = self.inferred_time(status) {
                timeline.push(TimelineEntry {
                    status,
                    at,
                    event_id: None,
                    inferred: true,
                });
            }
        }
        timeline
    }

    /// When a ladder step that was not observed is implied by a higher observed one: the
    /// earliest time among the observed higher steps.
    fn inferred_time(&self, status: DeliveryStatus) -> Option<i64> {
        if !DeliveryStatus::LADDER.contains(&status) {
            return None;
        }
        DeliveryStatus::LADDER
            .iter()
            .filter(|higher| **higher > status)
            .filter_map(|higher| self.observations.get(higher))
            .map(|observation| observation.at)
            .min()
    }

    /// The time the timeline reached `status` (observed or inferred).
    pub fn reached_at(&self, status: DeliveryStatus) -> Option<i64> {
        self.observations
            .get(&status)
            .map(|observation| observation.at)
            .or_else(|| self.inferred_time(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn observation(status: DeliveryStatus, at: i64, event_id: &str) -> StatusObservation {
        StatusObservation {
            status,
            at,
            event_id: event_id.to_string(),
            error: (status == DeliveryStatus::Failed).then(|| MessageError {
                code: format!("code-{event_id}"),
                title: "undeliverable".to_string(),
                detail: None,
            }),
        }
    }

    #[test]
    fn read_without_delivered_fills_the_gap_until_the_real_one_arrives() {
        let mut set = StatusSet::from_observations([
            observation(DeliveryStatus::Accepted, 5, "a"),
            observation(DeliveryStatus::Read, 30, "r"),
        ]);
        assert_eq!(set.current(), Some(DeliveryStatus::Read));
        let timeline = set.timeline();
        let statuses: Vec<(DeliveryStatus, i64, bool)> = timeline
            .iter()
            .map(|entry| (entry.status, entry.at, entry.inferred))
            .collect();
        assert_eq!(
            statuses,
            vec![
                (DeliveryStatus::Accepted, 5, false),
                (DeliveryStatus::Sent, 30, true),
                (DeliveryStatus::Delivered, 30, true),
                (DeliveryStatus::Read, 30, false),
            ]
        );
        assert!(set.observe(observation(DeliveryStatus::Delivered, 20, "d")));
        assert_eq!(set.reached_at(DeliveryStatus::Delivered), Some(20));
        assert_eq!(set.reached_at(DeliveryStatus::Sent), Some(20));
        assert_eq!(set.current(), Some(DeliveryStatus::Read), "still read");
    }

    #[test]
    fn failed_is_terminal_and_keeps_its_reason() {
        let mut set = StatusSet::from_observations([observation(DeliveryStatus::Failed, 10, "f")]);
        set.observe(observation(DeliveryStatus::Delivered, 20, "d"));
        assert_eq!(set.current(), Some(DeliveryStatus::Failed));
        assert_eq!(set.error().unwrap().code, "code-f");
        assert_eq!(
            set.reached_at(DeliveryStatus::Sent),
            Some(20),
            "sent is inferred from delivered, not from the failure"
        );
        let only_failed =
            StatusSet::from_observations([observation(DeliveryStatus::Failed, 10, "f")]);
        assert_eq!(only_failed.reached_at(DeliveryStatus::Sent), None);
    }

    #[test]
    fn a_repeated_status_keeps_the_earliest_and_changes_nothing_else() {
        let mut set = StatusSet::from_observations([observation(DeliveryStatus::Sent, 10, "s1")]);
        assert!(
            !set.observe(observation(DeliveryStatus::Sent, 10, "s1")),
            "redelivery"
        );
        assert!(
            !set.observe(observation(DeliveryStatus::Sent, 15, "s2")),
            "later duplicate"
        );
        assert!(
            set.observe(observation(DeliveryStatus::Sent, 5, "s3")),
            "earlier duplicate"
        );
        assert_eq!(set.reached_at(DeliveryStatus::Sent), Some(5));
    }

    fn any_status() -> impl Strategy<Value = DeliveryStatus> {
        prop::sample::select(DeliveryStatus::ALL.to_vec())
    }

    fn any_observations() -> impl Strategy<Value = Vec<StatusObservation>> {
        prop::collection::vec(
            (any_status(), 0i64..50, 0u8..6)
                .prop_map(|(status, at, id)| observation(status, at, &format!("event-{id}"))),
            0..12,
        )
    }

    proptest! {
        /// Any order of the same statuses gives the same final document.
        #[test]
        fn any_order_of_the_same_statuses_gives_the_same_result(
            (observations, shuffled) in any_observations().prop_flat_map(|observations| {
                let shuffled = Just(observations.clone()).prop_shuffle();
                (Just(observations), shuffled)
            })
        ) {
            let in_order = StatusSet::from_observations(observations.clone());
            let reordered = StatusSet::from_observations(shuffled);
            prop_assert_eq!(&in_order, &reordered);
            prop_assert_eq!(in_order.timeline(), reordered.timeline());
            prop_assert_eq!(in_order.current(), reordered.current());
            prop_assert_eq!(in_order.error(), reordered.error());
            // Redelivering everything again changes nothing.
            let mut redelivered = in_order.clone();
            for observation in observations {
                prop_assert!(!redelivered.observe(observation));
            }
            prop_assert_eq!(redelivered, in_order);
        }

        /// Merging two halves in either order equals observing everything: an orphan status
        /// store merged into its message converges to the same document.
        #[test]
        fn merging_sets_is_order_independent(
            first in any_observations(),
            second in any_observations(),
        ) {
            let mut left = StatusSet::from_observations(first.clone());
            left.merge(&StatusSet::from_observations(second.clone()));
            let mut right = StatusSet::from_observations(second.clone());
            right.merge(&StatusSet::from_observations(first.clone()));
            let all = StatusSet::from_observations(first.into_iter().chain(second));
            prop_assert_eq!(&left, &all);
            prop_assert_eq!(&right, &all);
        }

        /// The status never moves backwards, failed is terminal, and the timeline has every
        /// ladder step below the highest observed one.
        #[test]
        fn the_status_only_moves_forward(observations in any_observations()) {
            let mut set = StatusSet::default();
            let mut previous: Option<DeliveryStatus> = None;
            for observation in observations {
                set.observe(observation);
                let current = set.current();
                prop_assert!(current >= previous, "{:?} after {:?}", current, previous);
                if previous == Some(DeliveryStatus::Failed) {
                    prop_assert_eq!(current, Some(DeliveryStatus::Failed));
                }
                previous = current;
            }
            let timeline = set.timeline();
            let statuses: Vec<DeliveryStatus> = timeline.iter().map(|entry| entry.status).collect();
            let mut sorted = statuses.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&statuses, &sorted, "one entry per status, in order");
            let highest_step = DeliveryStatus::LADDER
                .iter()
                .rev()
                .find(|step| set.observations.contains_key(step));
            if let Some(highest) = highest_step {
                for step in DeliveryStatus::LADDER.iter().filter(|step| *step <= highest) {
                    prop_assert!(statuses.contains(step), "{:?} missing below {:?}", step, highest);
                }
            }
        }
    }
}
