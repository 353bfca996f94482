//! Recipient statuses, the moves between them, and the totals a campaign reports.
//!
//! ```text
//! pending ─▶ queued ─▶ sent ─▶ delivered ─▶ read
//!    │          └────────┴────────┴──▶ failed (with the reason)
//!    ├─▶ skipped_opted_out   (consent withdrawn before the message went out)
//!    ├─▶ cancelled           (the campaign was cancelled)
//!    └─▶ expired             (the campaign's end time came first)
//! skipped_invalid: the row was never a recipient (bad number, missing parameter)
//! ```
//!
//! Statuses only move forward, so results and provider statuses can arrive in any order and
//! more than once. Provider evidence wins over a skip: a message that went out before a crash
//! and was then marked skipped or cancelled is corrected to what the provider reports.

use serde::{Deserialize, Serialize};

use caas_events::model::CampaignCounts;

/// Where one recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientStatus {
    /// Waiting to be sent.
    Pending,
    /// The send command is on `outbound.commands.v1`.
    Queued,
    /// The provider accepted the message.
    Sent,
    /// It reached the device.
    Delivered,
    /// The customer read it.
    Read,
    /// It could not be sent or delivered.
    Failed,
    /// The customer opted out before it went out.
    SkippedOptedOut,
    /// Not a usable recipient: the number or a parameter is invalid.
    SkippedInvalid,
    /// The campaign was cancelled before it went out.
    Cancelled,
    /// The campaign's end time came before it went out.
    Expired,
}

/// Every status, for parsing and listing.
pub const ALL: [RecipientStatus; 10] = [
    RecipientStatus::Pending,
    RecipientStatus::Queued,
    RecipientStatus::Sent,
    RecipientStatus::Delivered,
    RecipientStatus::Read,
    RecipientStatus::Failed,
    RecipientStatus::SkippedOptedOut,
    RecipientStatus::SkippedInvalid,
    RecipientStatus::Cancelled,
    RecipientStatus::Expired,
];

impl RecipientStatus {
    /// The stored name, e.g. `skipped_opted_out`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Pending => "pending",
            RecipientStatus::Queued => "queued",
            RecipientStatus::Sent => "sent",
            RecipientStatus::Delivered => "delivered",
            RecipientStatus::Read => "read",
            RecipientStatus::Failed => "failed",
            RecipientStatus::SkippedOptedOut => "skipped_opted_out",
            RecipientStatus::SkippedInvalid => "skipped_invalid",
            RecipientStatus::Cancelled => "cancelled",
            RecipientStatus::Expired => "expired",
        }
    }

    /// Parse a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Whether nothing more is expected for this recipient (`read`, `failed` and the skips;
    /// `delivered` too, since a read receipt may never come).
    pub const fn is_final(self) -> bool {
        !matches!(
            self,
            RecipientStatus::Pending | RecipientStatus::Queued | RecipientStatus::Sent
        )
    }

    /// The statuses a recipient may be in for a move to `self` to apply (empty: never by an
    /// update). Used as the filter of conditional updates.
    pub fn predecessors(self) -> &'static [RecipientStatus] {
        use RecipientStatus::*;
        match self {
            Pending | SkippedInvalid => &[],
            Queued => &[Pending],
            Sent => &[Pending, Queued, SkippedOptedOut, Cancelled, Expired],
            Delivered => &[Pending, Queued, Sent, SkippedOptedOut, Cancelled, Expired],
            Read => &[
                Pending,
                Queued,
                Sent,
                Delivered,
                SkippedOptedOut,
                Cancelled,
                Expired,
            ],
            Failed => &[Pending, Queued, Sent, SkippedOptedOut, Cancelled, Expired],
            SkippedOptedOut | Cancelled | Expired => &[Pending],
        }
    }

    /// Whether a recipient in `self` may move to `next`.
    pub fn may_become(self, next: RecipientStatus) -> bool {
        next.predecessors().contains(&self)
    }
}

/// The totals of `campaign.events.v1` from the number of recipients per status and of those
/// who replied. Cumulative: `sent` counts everyone the provider accepted (delivered and read
/// included), `delivered` everyone delivered (read included); `queued` is everyone not sent
/// yet; `skipped` is opted out, invalid, cancelled and expired. So
/// `audience = queued + sent + failed + skipped`.
pub fn counts(per_status: &[(RecipientStatus, i64)], replied: i64) -> CampaignCounts {
    let count = |wanted: &[RecipientStatus]| -> i64 {
        per_status
            .iter()
            .filter(|(status, _)| wanted.contains(status))
            .map(|(_, count)| *count)
            .sum()
    };
    use RecipientStatus::*;
    CampaignCounts {
        audience: per_status.iter().map(|(_, count)| *count).sum(),
        queued: count(&[Pending, Queued]),
        sent: count(&[Sent, Delivered, Read]),
        delivered: count(&[Delivered, Read]),
        read: count(&[Read]),
        failed: count(&[Failed]),
        skipped: count(&[SkippedOptedOut, SkippedInvalid, Cancelled, Expired]),
        replied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for status in ALL {
            assert_eq!(RecipientStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(RecipientStatus::parse("nope"), None);
    }

    #[test]
    fn the_usual_path_and_what_is_refused() {
        use RecipientStatus::*;
        assert!(Pending.may_become(Queued));
        assert!(Queued.may_become(Sent));
        assert!(Sent.may_become(Read));
        assert!(Queued.may_become(Failed));
        assert!(!Read.may_become(Delivered));
        assert!(!Delivered.may_become(Failed));
        assert!(!Queued.may_become(Cancelled));
        assert!(!Failed.may_become(Sent));
        assert!(
            Cancelled.may_become(Sent),
            "provider evidence wins over a skip"
        );
        assert!(!SkippedInvalid.may_become(Sent));
    }

    #[test]
    fn counts_are_cumulative_and_add_up() {
        use RecipientStatus::*;
        let counts = counts(
            &[
                (Pending, 5),
                (Queued, 1),
                (Sent, 2),
                (Delivered, 3),
                (Read, 4),
                (Failed, 1),
                (SkippedOptedOut, 1),
                (SkippedInvalid, 2),
                (Cancelled, 1),
            ],
            2,
        );
        assert_eq!(counts.audience, 20);
        assert_eq!(counts.queued, 6);
        assert_eq!(counts.sent, 9);
        assert_eq!(counts.delivered, 7);
        assert_eq!(counts.read, 4);
        assert_eq!(counts.skipped, 4);
        assert_eq!(counts.replied, 2);
        assert_eq!(
            counts.audience,
            counts.queued + counts.sent + counts.failed + counts.skipped
        );
    }

    proptest! {
        /// Applying any sequence of updates in any order never moves a recipient backwards
        /// along sent < delivered < read, and a terminal failure or read stays.
        #[test]
        fn status_never_goes_backwards(updates in prop::collection::vec(0usize..10, 0..30)) {
            let rank = |status: RecipientStatus| match status {
                RecipientStatus::Pending => 0,
                RecipientStatus::Queued => 1,
                RecipientStatus::Sent => 2,
                RecipientStatus::Delivered => 3,
                RecipientStatus::Read => 4,
                _ => 5,
            };
            let mut current = RecipientStatus::Pending;
            for index in updates {
                let next = ALL[index];
                if current.may_become(next) {
                    let forward_on_the_main_path = rank(next) > rank(current)
                        || !matches!(current, RecipientStatus::Sent | RecipientStatus::Delivered | RecipientStatus::Read);
                    prop_assert!(forward_on_the_main_path, "{current:?} -> {next:?}");
                    current = next;
                }
            }
            if matches!(current, RecipientStatus::Read | RecipientStatus::Failed | RecipientStatus::SkippedInvalid) {
                for next in ALL {
                    prop_assert!(!current.may_become(next));
                }
            }
        }
    }
}
