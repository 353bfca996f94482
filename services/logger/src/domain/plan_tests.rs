//! The planner against an in-memory store that loads and commits exactly like the real one:
//! any arrival order, any batch cuts and crashes before a commit end in the same documents.

use std::collections::{BTreeMap, HashMap};

use caas_events::model::{ConversationEventKind, Origin};
use proptest::prelude::*;

use super::*;
use crate::domain::docs::{ConversationState, Mode};
use crate::scenario::{self, ScenarioConfig};

/// The four collections, committed whole per batch (like one transaction).
#[derive(Debug, Default, Clone)]
struct MemoryStore {
    events: BTreeMap<String, EventDoc>,
    conversations: HashMap<String, ConversationDoc>,
    messages: HashMap<String, MessageDoc>,
    orphans: HashMap<String, OrphanStatusDoc>,
    erasures: HashMap<String, i64>,
}

impl MemoryStore {
    fn snapshot(&self, needs: &Needs) -> Snapshot {
        Snapshot {
            stored_event_ids: needs
                .event_ids
                .iter()
                .filter(|id| self.events.contains_key(*id))
                .cloned()
                .collect(),
            conversations: needs
                .conversation_keys
                .iter()
                .filter_map(|key| {
                    self.conversations
                        .get(key)
                        .map(|doc| (key.clone(), doc.clone()))
                })
                .collect(),
            messages: self
                .messages
                .values()
                .filter(|message| {
                    needs.message_ids.contains(&message.id)
                        || (message.direction == Direction::Outbound
                            && message
                                .provider_message_id
                                .as_ref()
                                .is_some_and(|id| needs.provider_message_ids.contains(id)))
                })
                .map(|message| (message.id.clone(), message.clone()))
                .collect(),
            orphans: needs
                .orphan_ids
                .iter()
                .filter_map(|id| self.orphans.get(id).map(|doc| (id.clone(), doc.clone())))
                .collect(),
            erasures: needs
                .subject_hashes
                .iter()
                .filter_map(|hash| self.erasures.get(hash).map(|at| (hash.clone(), *at)))
                .collect(),
        }
    }

    fn commit(&mut self, plan: Plan) {
        for event in plan.events {
            assert!(
                self.events.insert(event.id.clone(), event).is_none(),
                "an event was inserted twice"
            );
        }
        for conversation in plan.conversations {
            self.conversations
                .insert(conversation.key.clone(), conversation);
        }
        for message in plan.messages {
            self.messages.insert(message.id.clone(), message);
        }
        for orphan in plan.orphans {
            self.orphans.insert(orphan.id.clone(), orphan);
        }
        for id in plan.orphans_to_delete {
            self.orphans.remove(&id);
        }
    }

    /// Plan and commit one batch.
    fn persist(&mut self, batch: &[Incoming], now: i64) -> Plan {
        let plan = plan(batch, self.snapshot(&needs(batch)), now);
        self.commit(plan.clone());
        plan
    }
}

fn incoming(events: &[LoggedEvent]) -> Vec<Incoming> {
    Incoming::in_order(events)
}

fn small_scenario(seed: u64) -> scenario::Scenario {
    scenario::generate(&ScenarioConfig {
        tenant_id: "acme".to_string(),
        run_id: format!("r{seed}"),
        conversations: 3,
        inbound_per_conversation: 2,
        outbound_per_conversation: 4,
        seed,
        start_ms: 1_700_000_000_000,
    })
}

/// Everything the scenario promises holds in `store`.
fn assert_final(store: &MemoryStore, expected: &scenario::Expected) {
    assert_eq!(
        store.events.keys().cloned().collect::<Vec<_>>(),
        expected.event_ids.iter().cloned().collect::<Vec<_>>(),
        "every event stored exactly once"
    );
    for (key, changes) in &expected.changes {
        let conversation = &store.conversations[key];
        assert_eq!(conversation.seq, *changes, "seq of {key}");
        let mut seqs: Vec<i64> = store
            .events
            .values()
            .filter(|event| &event.conversation_key == key)
            .filter_map(|event| event.seq)
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=*changes).collect::<Vec<_>>(), "seqs of {key}");
        assert_eq!(conversation.mode, Mode::Human);
        assert_eq!(conversation.assignee.as_deref(), Some("op-1"));
    }
    for (id, status) in &expected.outbound_status {
        assert_eq!(&store.messages[id].status, status, "status of {id}");
    }
    for id in &expected.inbound_messages {
        assert_eq!(store.messages[id].status, "received");
    }
    assert!(store.orphans.is_empty(), "every status found its message");
    for message in store.messages.values() {
        let highest = store
            .events
            .values()
            .filter(|event| event.message_id.as_deref() == Some(message.id.as_str()))
            .filter_map(|event| event.seq)
            .max()
            .unwrap_or_default();
        assert!(
            message.seq >= highest,
            "{} seq {} < {highest}",
            message.id,
            message.seq
        );
    }
}

#[test]
fn a_batch_gets_consecutive_sequence_numbers_and_a_redelivery_changes_nothing() {
    let scenario = small_scenario(1);
    let batch = incoming(&scenario.events);
    let mut store = MemoryStore::default();
    let first = store.persist(&batch, 1);
    assert!(first.duplicates > 0, "the scenario repeats some events");
    for seqs in sequences(&first).values() {
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(seqs, &expected, "in batch order");
    }
    assert_final(&store, &scenario.expected);
    let before = store.clone();
    let again = store.persist(&batch, 2);
    assert!(again.events.is_empty() && again.conversations.is_empty() && again.messages.is_empty());
    assert_eq!(again.duplicates, batch.len());
    assert_eq!(store.conversations, before.conversations);
}

#[test]
fn a_status_before_its_result_waits_as_an_orphan_and_converges() {
    let scenario = small_scenario(3);
    let statuses: Vec<LoggedEvent> = scenario
        .events
        .iter()
        .filter(|event| matches!(event, LoggedEvent::InboundStatus(_)))
        .cloned()
        .collect();
    let rest: Vec<LoggedEvent> = scenario
        .events
        .iter()
        .filter(|event| !matches!(event, LoggedEvent::InboundStatus(_)))
        .cloned()
        .collect();
    assert!(!statuses.is_empty());
    let mut store = MemoryStore::default();
    store.persist(&incoming(&statuses), 1);
    assert!(!store.orphans.is_empty(), "no message claims them yet");
    store.persist(&incoming(&rest), 2);
    assert_final(&store, &scenario.expected);
}

#[test]
fn conversation_events_set_mode_assignee_and_state() {
    let mut store = MemoryStore::default();
    let scenario = small_scenario(5);
    store.persist(&incoming(&scenario.events), 1);
    let key = scenario.expected.changes.keys().next().unwrap().clone();
    let change = |kind: ConversationEventKind, id: &str| {
        LoggedEvent::ConversationEvent(caas_events::model::ConversationEvent {
            event_id: id.to_string(),
            tenant_id: "acme".to_string(),
            conversation_key: key.clone(),
            channel: parse_conversation_key(&key).unwrap().channel,
            occurred_at: 1,
            recorded_at: 2,
            source: "test".to_string(),
            trace_parent: None,
            kind,
            actor_operator_id: None,
            assignee_operator_id: None,
            previous_assignee_operator_id: None,
            reason: None,
        })
    };
    store.persist(
        &incoming(&[
            change(ConversationEventKind::ReleasedToBot, "x1"),
            change(ConversationEventKind::Closed, "x2"),
        ]),
        3,
    );
    let conversation = &store.conversations[&key];
    assert_eq!(conversation.mode, Mode::Bot);
    assert_eq!(conversation.assignee, None);
    assert_eq!(conversation.state, ConversationState::Closed);
    assert_eq!(conversation.seq, scenario.expected.changes[&key] + 2);
}

#[test]
fn unread_counts_customer_messages_since_the_last_operator_reply() {
    let scenario = small_scenario(9);
    let mut store = MemoryStore::default();
    // Customer messages first, then everything else.
    let (inbound, rest): (Vec<LoggedEvent>, Vec<LoggedEvent>) = scenario
        .events
        .iter()
        .cloned()
        .partition(|event| matches!(event, LoggedEvent::InboundMessage(_)));
    store.persist(&incoming(&inbound), 1);
    for conversation in store.conversations.values() {
        assert_eq!(conversation.unread_count, 2);
        assert!(conversation.last_inbound_at.is_some());
        assert_eq!(
            conversation.last_message.as_ref().unwrap().direction,
            Direction::Inbound
        );
    }
    store.persist(&incoming(&rest), 2);
    let operator_replied = rest.iter().any(|event| {
        matches!(event, LoggedEvent::OutboundCommand(command) if command.origin == Origin::Operator)
    });
    assert!(operator_replied);
    for conversation in store.conversations.values() {
        assert_eq!(conversation.unread_count, 0, "an operator replied in each");
    }
}

#[test]
fn events_recorded_before_an_erasure_are_dropped_and_later_ones_kept() {
    let scenario = small_scenario(11);
    let key = scenario.expected.changes.keys().next().unwrap().clone();
    let customer = scenario.expected.customers[&key].clone();
    let mut store = MemoryStore::default();
    store
        .erasures
        .insert(subject_hash("acme", &customer), i64::MAX - 1);
    let plan = store.persist(&incoming(&scenario.events), 1);
    assert!(plan.erased > 0);
    assert!(!store.conversations.contains_key(&key));
    assert!(store
        .events
        .values()
        .all(|event| event.conversation_key != key));
    store.erasures.insert(subject_hash("acme", &customer), 0);
    let again = store.persist(&incoming(&scenario.events), 2);
    assert_eq!(again.erased, 0);
    assert!(store.conversations.contains_key(&key));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any arrival order, any batch cuts, and batches lost to a crash before their commit
    /// (and delivered again) end in the same documents.
    #[test]
    fn any_order_batching_and_crash_converge(
        scenario_seed in 0u64..1000,
        order in any::<u64>(),
        cuts in prop::collection::vec(1usize..40, 1..20),
        crashes in prop::collection::vec(any::<bool>(), 1..20),
    ) {
        let scenario = small_scenario(scenario_seed);
        let mut events = scenario.events.clone();
        // Reorder by a seeded key: any permutation is a possible arrival order across topics.
        let mut keyed: Vec<(u64, LoggedEvent)> = events
            .drain(..)
            .enumerate()
            .map(|(index, event)| ((index as u64).wrapping_mul(order | 1).rotate_left(17) ^ order, event))
            .collect();
        keyed.sort_by_key(|(key, _)| *key);
        let events: Vec<LoggedEvent> = keyed.into_iter().map(|(_, event)| event).collect();
        let batches = incoming(&events);

        let mut store = MemoryStore::default();
        let mut position = 0;
        let mut step = 0;
        while position < batches.len() {
            let size = cuts[step % cuts.len()];
            let end = (position + size).min(batches.len());
            let crash = crashes[step % crashes.len()] && step < 10;
            step += 1;
            if crash {
                // Planned, never committed; and the crash loses the last committed batch's
                // offsets too: redelivery starts earlier.
                let _ = plan(&batches[position..end], store.snapshot(&needs(&batches[position..end])), 0);
                position = position.saturating_sub(size / 2);
                continue;
            }
            store.persist(&batches[position..end], step as i64);
            position = end;
        }
        assert_final(&store, &scenario.expected);
    }
}
