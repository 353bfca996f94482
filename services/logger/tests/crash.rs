//! Thousands of mixed events through the real broker into the real MongoDB-wire server; the
//! logger process is killed with SIGKILL in the middle and started again; every event ends
//! stored exactly once, every message in its final status, every conversation's `seq` equal to
//! its number of changes.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use futures::TryStreamExt;
use mongodb::bson::{doc, Document};

fn spawn_logger(world: &World) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_caas-logger"));
    // The logger logs to stdout; show it only when asked (`CAAS_TEST_LOG=info`).
    let logs = if std::env::var_os("CAAS_TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    command
        .envs(world.environment(100))
        .stdout(logs)
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command.spawn().expect("start caas-logger")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logger_killed_mid_stream_stores_every_event_exactly_once_after_a_restart() {
    let world = World::new();
    world.create_topics().await;
    let scenario = world.scenario(60, 8, 8, 20_260_101);
    let expected = &scenario.expected;
    let total = expected.event_ids.len() as u64;
    assert!(total > 2000, "thousands of events: {total}");
    world.produce(&producer(), &codec(), &scenario.events).await;
    let db = world.db().await;

    let mut first = spawn_logger(&world);
    let stored_before_kill =
        eventually("a third of the events stored by the first process", || {
            let db = db.clone();
            async move {
                let stored = count(&db, "events", doc! {}).await;
                (stored >= total / 3).then_some(stored)
            }
        })
        .await;
    first.kill().await.expect("SIGKILL the first logger");
    let stored_at_kill = count(&db, "events", doc! {}).await;
    eprintln!(
        "killed the first logger with {stored_at_kill} of {total} events stored \
         ({stored_before_kill} when the kill was decided)"
    );

    let mut second = spawn_logger(&world);
    eventually("every event stored after the restart", || {
        let db = db.clone();
        async move { (count(&db, "events", doc! {}).await >= total).then_some(()) }
    })
    .await;
    // Everything produced is consumed; give the second process a moment to (wrongly) write
    // anything more, then stop it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    second.kill().await.expect("stop the second logger");

    // Every event exactly once: the ids stored are the ids produced (`_id` is unique).
    let mut cursor = db
        .collection::<Document>("events")
        .find(doc! {})
        .projection(doc! { "_id": 1 })
        .await
        .unwrap();
    let mut stored_ids = BTreeSet::new();
    while let Some(document) = cursor.try_next().await.unwrap() {
        stored_ids.insert(document.get_str("_id").unwrap().to_string());
    }
    assert_eq!(stored_ids.len() as u64, total);
    assert_eq!(&stored_ids, &expected.event_ids);

    // Every conversation's seq is its number of changes, and its events hold 1..=n.
    let sequences = stored_sequences(&db).await;
    for (key, changes) in &expected.changes {
        let conversation = db
            .collection::<Document>("conversations")
            .find_one(doc! { "_id": key })
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("conversation {key} stored"));
        assert_eq!(
            conversation.get_i64("seq").unwrap(),
            *changes,
            "seq of {key}"
        );
        let mut seqs = sequences.get(key).cloned().unwrap_or_default();
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=*changes).collect::<Vec<_>>(),
            "event seqs of {key}"
        );
        assert_eq!(conversation.get_str("mode").unwrap(), "human");
    }

    // Every message in its final status.
    for (id, status) in &expected.outbound_status {
        let message = db
            .collection::<Document>("messages")
            .find_one(doc! { "_id": id })
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("message {id} stored"));
        assert_eq!(message.get_str("status").unwrap(), status, "status of {id}");
    }
    let inbound = count(&db, "messages", doc! { "direction": "inbound" }).await;
    assert_eq!(inbound, expected.inbound_messages.len() as u64);
    assert_eq!(count(&db, "orphan_statuses", doc! {}).await, 0);

    world.clean_up().await;
}
