//! Waiting for the conversation `seq` the logger assigns to each event of a batch.
//!
//! The logger consumes the same topics in its own group and is the only authority for a
//! conversation's sequence. A batch waits at most `CAAS_GATEWAY_SEQ_WAIT_MS` (3 s) for it:
//!
//! 1. What the logger already announced ([`crate::announced`]) is taken at once.
//! 2. The rest is read from the logger's `events` right away (events committed before this
//!    instance heard of them, or while Redis was down), in one MongoDB query.
//! 3. Then the wait is woken by every announcement, and reads `events` again for what is
//!    still missing: every [`POLL_WHILE_ANNOUNCED`] while announcements flow, with the old
//!    backoff (20 ms doubling to 250 ms) while they do not (Redis down, a logger that does not
//!    announce, the first batch after a quiet spell). The announcement usually wins: the
//!    batch goes out as soon as the logger commits.
//!
//! An event the logger has not stored by the end of the wait is emitted with `"seq": null`
//! rather than stalling the partition: clients apply it and fetch the thread by `after_seq` on
//! their next sequenced event or reconnect. Some events never get a `seq` although the logger
//! is healthy (it processed and dropped them, e.g. an erased customer's): once the logger's
//! consumer group committed past the record ([`crate::progress`]), checked from
//! [`PROGRESS_CHECK_AFTER`] on before each MongoDB read, the wait for it ends. The check comes
//! before the read, so an event the logger stored just before committing its offset is still
//! found by that read rather than skipped. After three batches in a row that ran out of time
//! (the logger is down or far behind), the gateway waits a tenth of the budget until a lookup
//! succeeds again, so a missing logger costs operators the `seq`, never their live updates.
//!
//! `caas_gateway_seq_lookups_total{outcome}` counts each event once: `announced`, `found`
//! (read from MongoDB), `skipped`, `missing` (the wait ran out) or `error` (MongoDB failed).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::announced::{Announced, SeqAndMessage};
use crate::metrics::metrics;
use crate::progress::LoggerProgress;
use crate::store::Store;

/// Batches in a row whose wait ran out before the gateway waits less for `seq`.
const MISSES_BEFORE_DEGRADED: u32 = 3;

/// How long a lookup waits before asking whether the logger already passed a record.
pub const PROGRESS_CHECK_AFTER: Duration = Duration::from_millis(200);

/// How often MongoDB is read while announcements flow: only to catch what an announcement
/// missed (pub/sub drops messages across a reconnect; the logger drops them when Redis is slow).
pub const POLL_WHILE_ANNOUNCED: Duration = Duration::from_millis(250);

/// The first pause between MongoDB reads while no announcements flow; it doubles up to
/// [`POLL_WHILE_ANNOUNCED`].
const POLL_FIRST: Duration = Duration::from_millis(20);

/// What the logger stored for the events of a batch: event id → (seq, changed message).
pub type Sequenced = HashMap<String, SeqAndMessage>;

/// An event waiting for its `seq`, and the record that carried it.
#[derive(Debug, Clone, Copy)]
pub struct Awaited<'a> {
    /// The event id (`events._id`).
    pub event_id: &'a str,
    /// The record's topic, partition and offset: whether the logger passed it.
    pub topic: &'a str,
    /// The record's partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
}

/// Waits for the logger's `seq`s; one per consumer (it keeps the count of missed batches).
pub struct SeqWaiter {
    store: Store,
    progress: LoggerProgress,
    announced: Announced,
    /// `CAAS_GATEWAY_SEQ_WAIT_MS`: the budget of one batch.
    seq_wait: Duration,
    /// Consecutive batches whose wait ran out.
    misses: AtomicU32,
}

/// Where each found `seq` came from, for the metrics.
#[derive(Default)]
struct Tally {
    announced: usize,
    stored: usize,
    failed: bool,
}

impl SeqWaiter {
    /// A waiter reading `store`, `progress` and `announced`, for at most `seq_wait` a batch.
    pub fn new(
        store: Store,
        progress: LoggerProgress,
        announced: Announced,
        seq_wait: Duration,
    ) -> Self {
        Self {
            store,
            progress,
            announced,
            seq_wait,
            misses: AtomicU32::new(0),
        }
    }

    /// The `seq` of every awaited event that has one by the end of the wait (see the module
    /// docs).
    pub async fn wait(&self, awaited: &[Awaited<'_>]) -> Sequenced {
        let mut found = Sequenced::new();
        if awaited.is_empty() {
            return found;
        }
        let budget = if self.misses.load(Ordering::Relaxed) >= MISSES_BEFORE_DEGRADED {
            self.seq_wait / 10
        } else {
            self.seq_wait
        };
        // Before looking at what is known, so an announcement in between still wakes us.
        let mut changes = self.announced.changes();
        let started = Instant::now();
        let deadline = started + budget;
        let mut next_read = started;
        let mut backoff = POLL_FIRST;
        let mut skipped: HashSet<&str> = HashSet::new();
        let mut tally = Tally::default();
        loop {
            tally.announced += self.announced.collect_into(
                awaited
                    .iter()
                    .map(|event| event.event_id)
                    .filter(|id| !skipped.contains(id)),
                &mut found,
            );
            let missing: Vec<&Awaited<'_>> = awaited
                .iter()
                .filter(|event| {
                    !found.contains_key(event.event_id) && !skipped.contains(event.event_id)
                })
                .collect();
            if missing.is_empty() {
                break;
            }
            let now = Instant::now();
            if now >= next_read {
                self.read_store(&missing, started, &mut found, &mut skipped, &mut tally)
                    .await;
                let pause = if self.announced.flowing() {
                    POLL_WHILE_ANNOUNCED
                } else {
                    let pause = backoff;
                    backoff = (backoff * 2).min(POLL_WHILE_ANNOUNCED);
                    pause
                };
                next_read = Instant::now() + pause;
                // Look again at once: the read may have found everything.
                continue;
            }
            if now >= deadline {
                break;
            }
            tokio::select! {
                // Woken by any announcement; the next turn looks for ours.
                Ok(()) = changes.changed() => {}
                () = tokio::time::sleep_until(next_read.min(deadline)) => {}
            }
        }
        self.count(awaited.len(), &found, skipped.len(), &tally);
        found
    }

    /// One read of `events` for `missing`, after asking (past [`PROGRESS_CHECK_AFTER`]) which
    /// records the logger already passed; those it passed and did not store are skipped.
    async fn read_store<'a>(
        &self,
        missing: &[&Awaited<'a>],
        started: Instant,
        found: &mut Sequenced,
        skipped: &mut HashSet<&'a str>,
        tally: &mut Tally,
    ) {
        let mut passed: Vec<&'a str> = Vec::new();
        if started.elapsed() >= PROGRESS_CHECK_AFTER {
            for event in missing {
                if self
                    .progress
                    .passed(event.topic, event.partition, event.offset)
                    .await
                {
                    passed.push(event.event_id);
                }
            }
        }
        let ids: Vec<&str> = missing
            .iter()
            .map(|event| event.event_id)
            .filter(|id| !found.contains_key(*id))
            .collect();
        match self.store.event_seqs(&ids).await {
            Ok(stored) => {
                for (event_id, seq) in stored {
                    if let Entry::Vacant(vacant) = found.entry(event_id) {
                        vacant.insert(seq);
                        tally.stored += 1;
                    }
                }
            }
            Err(error) => {
                if !tally.failed {
                    tracing::warn!(error = %error, "cannot look up the events' seq");
                }
                tally.failed = true;
            }
        }
        for event_id in passed {
            if !found.contains_key(event_id) {
                // The logger is done with this record and stored no seq: none will come.
                skipped.insert(event_id);
            }
        }
    }

    /// Count the outcomes and track the batches that ran out of time.
    fn count(&self, awaited: usize, found: &Sequenced, skipped: usize, tally: &Tally) {
        let lookups = &metrics().seq_lookups;
        let missing = awaited.saturating_sub(found.len() + skipped);
        lookups
            .with_label_values(&["announced"])
            .inc_by(tally.announced as u64);
        lookups
            .with_label_values(&["found"])
            .inc_by(tally.stored as u64);
        lookups
            .with_label_values(&["skipped"])
            .inc_by(skipped as u64);
        lookups
            .with_label_values(&[if tally.failed { "error" } else { "missing" }])
            .inc_by(missing as u64);
        if missing == 0 {
            self.misses.store(0, Ordering::Relaxed);
        } else if found.is_empty() {
            let misses = self.misses.fetch_add(1, Ordering::Relaxed) + 1;
            if misses == MISSES_BEFORE_DEGRADED {
                tracing::warn!(
                    wait_ms = self.seq_wait.as_millis() as u64,
                    "the logger assigned no seq in {MISSES_BEFORE_DEGRADED} batches in a row; waiting less until it does again"
                );
            }
        } else {
            // Some found: the logger works; the rest were just late.
            self.misses.store(0, Ordering::Relaxed);
        }
    }
}
