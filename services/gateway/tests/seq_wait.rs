//! Waiting for the logger's `seq` against the real Redis and MongoDB: an announcement the
//! logger publishes while a batch waits releases it with the announced `seq` (the event is in
//! no database here, so nothing else could have), and without any announcement the MongoDB
//! fallback still finds what the logger stored, before and during the wait.

mod common;

use std::time::Duration;

use caas_gateway::announced::Announced;
use caas_gateway::progress::LoggerProgress;
use caas_gateway::seq_wait::{Awaited, SeqWaiter};
use caas_gateway::store::Store;
use caas_logger::announce::{self, Announcement, SequencedEvent};
use caas_runtime::shutdown::CancellationToken;
use common::{stack, unique};
use mongodb::bson::{doc, Document};

/// Far longer than any of these tests takes: a wait that ends releases on what it found.
const BUDGET: Duration = Duration::from_secs(60);

/// How long a wait is left alone before the test acts, so it has begun (its first MongoDB
/// read done) and waits.
const LET_IT_WAIT: Duration = Duration::from_millis(400);

async fn waiter(database: &str, announced: Announced) -> SeqWaiter {
    let stack = stack();
    let store = Store::new(&stack.mongodb_uri, database)
        .await
        .expect("mongodb client");
    // A group that never committed: the logger "passed" no record, so no wait is cut short.
    let progress = LoggerProgress::new(
        &stack.kafka_bootstrap,
        &stack.kafka_security,
        &unique("caas-logger-seqwait-"),
    )
    .expect("kafka client");
    SeqWaiter::new(store, progress, announced, BUDGET)
}

fn awaited(event_id: &str) -> Awaited<'_> {
    Awaited {
        event_id,
        topic: caas_events::topics::INBOUND_MESSAGES,
        partition: 0,
        offset: 0,
    }
}

async fn database(name: &str) -> mongodb::Database {
    mongodb::Client::with_uri_str(&stack().mongodb_uri)
        .await
        .expect("mongodb client")
        .database(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_after_the_wait_began_releases_it_with_the_seq() {
    let database_name = unique("caas_gwtest_");
    let channel = announce::channel(announce::DEFAULT_PREFIX, &database_name);
    let stop = CancellationToken::new();
    let announced = Announced::listen(stack().redis_url, channel.clone(), stop.clone());
    let waiter = waiter(&database_name, announced).await;
    let event_id = unique("event-");
    let other_id = unique("event-");

    let batch = [awaited(&event_id)];
    let wait = waiter.wait(&batch);
    tokio::pin!(wait);
    // Nothing is stored or announced: the wait goes on.
    assert!(
        tokio::time::timeout(LET_IT_WAIT, &mut wait).await.is_err(),
        "the wait must not end before its seq or its budget"
    );

    // The logger commits and announces (another event of the batch first: it does not
    // release the wait).
    let announcement = Announcement {
        events: vec![
            SequencedEvent {
                id: other_id.clone(),
                seq: 41,
                message_id: None,
            },
            SequencedEvent {
                id: event_id.clone(),
                seq: 42,
                message_id: Some("in:whatsapp:wamid.42".to_string()),
            },
        ],
    };
    let publisher = tokio::spawn(publish_until_heard(channel, announcement));
    let found = wait.await;
    publisher.abort();
    stop.cancel();

    assert_eq!(
        found.get(&event_id),
        Some(&(42, Some("in:whatsapp:wamid.42".to_string()))),
        "the announced seq and message are delivered"
    );
    assert!(
        !found.contains_key(&other_id),
        "only the awaited events are returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_announcements_mongodb_still_gives_the_seq() {
    let database_name = unique("caas_gwtest_");
    let events = database(&database_name)
        .await
        .collection::<Document>("events");
    // Announcements never come (as with Redis down or a logger that does not announce).
    let waiter = waiter(&database_name, Announced::default()).await;

    // Stored before the wait: the first read finds it.
    let stored_before = unique("event-");
    events
        .insert_one(doc! { "_id": &stored_before, "seq": 7_i64, "message_id": "out:t:c7" })
        .await
        .expect("insert event");
    let found = waiter.wait(&[awaited(&stored_before)]).await;
    assert_eq!(
        found.get(&stored_before),
        Some(&(7, Some("out:t:c7".to_string())))
    );

    // Stored while the batch waits: a later read finds it.
    let stored_during = unique("event-");
    let batch = [awaited(&stored_during)];
    let wait = waiter.wait(&batch);
    tokio::pin!(wait);
    assert!(
        tokio::time::timeout(LET_IT_WAIT, &mut wait).await.is_err(),
        "the wait must not end before its seq or its budget"
    );
    events
        .insert_one(doc! { "_id": &stored_during, "seq": 8_i64 })
        .await
        .expect("insert event");
    let found = wait.await;
    assert_eq!(found.get(&stored_during), Some(&(8, None)));

    let _ = database(&database_name).await.drop().await;
}

/// Publish `announcement` on `channel` until a subscriber got it (the listener may still be
/// connecting), as the logger does after a commit.
async fn publish_until_heard(channel: String, announcement: Announcement) {
    let mut redis = caas_runtime::probe::redis_connection(stack().redis_url.expose())
        .await
        .expect("redis");
    loop {
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(announcement.to_json())
            .query_async(&mut redis)
            .await
            .expect("publish");
        if receivers > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
