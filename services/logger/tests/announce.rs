//! After each committed batch the logger announces on Redis the `seq`s it assigned
//! (`caas:logger:sequenced:<database>`), and the announcements say exactly what `events`
//! holds: every sequenced event once, with its `seq` and changed message.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use caas_logger::announce::{self, Announcement};
use common::*;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Document};

/// event id → (seq, message id), as announced or as stored.
type Sequenced = HashMap<String, (i64, Option<String>)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_batches_announce_the_stored_seqs() {
    let world = World::new();
    world.create_topics().await;
    let config = world.config(20);
    let channel = announce::channel(
        config.announce_prefix.as_deref().expect("announcing is on"),
        &world.database,
    );

    // Listen before anything is produced: pub/sub keeps nothing for late subscribers.
    let client = redis::Client::open(redis_url()).expect("redis url");
    let mut pubsub = client.get_async_pubsub().await.expect("redis pub/sub");
    pubsub.subscribe(&channel).await.expect("subscribe");
    let announced: Arc<Mutex<Vec<Announcement>>> = Arc::default();
    let listener = tokio::spawn({
        let announced = announced.clone();
        async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let announcement = Announcement::from_json(message.get_payload_bytes())
                    .expect("an announcement is valid JSON");
                announced.lock().unwrap().push(announcement);
            }
        }
    });

    let (_address, shutdown, task) = start_in_process(config).await;
    let scenario = world.scenario(4, 4, 3, 11);
    let sequenced_events: i64 = scenario.expected.changes.values().sum();
    world.produce(&producer(), &codec(), &scenario.events).await;

    let entries = eventually("every sequenced event announced", || {
        let announced = announced.clone();
        async move {
            let entries: Vec<(String, i64, Option<String>)> = announced
                .lock()
                .unwrap()
                .iter()
                .flat_map(|announcement| announcement.events.iter())
                .map(|event| (event.id.clone(), event.seq, event.message_id.clone()))
                .collect();
            (entries.len() as i64 >= sequenced_events).then_some(entries)
        }
    })
    .await;
    stop_in_process(shutdown, task).await;
    listener.abort();

    let batches = announced.lock().unwrap().len();
    assert!(
        batches > 1,
        "one announcement per batch (batches of 20 records)"
    );
    let announced_seqs: Sequenced = entries
        .iter()
        .map(|(id, seq, message_id)| (id.clone(), (*seq, message_id.clone())))
        .collect();
    assert_eq!(
        announced_seqs.len(),
        entries.len(),
        "each event is announced once, duplicates never"
    );
    let stored = stored_seqs(&world.db().await).await;
    assert_eq!(stored.len() as i64, sequenced_events);
    assert_eq!(announced_seqs, stored);
    assert!(
        stored.values().any(|(_, message_id)| message_id.is_some()),
        "the scenario changes messages, so some announcements name one"
    );

    world.clean_up().await;
}

/// What the gateway would read: every event with a `seq`, with its message.
async fn stored_seqs(db: &mongodb::Database) -> Sequenced {
    db.collection::<Document>("events")
        .find(doc! { "seq": { "$exists": true } })
        .await
        .expect("find events")
        .try_collect::<Vec<Document>>()
        .await
        .expect("read events")
        .into_iter()
        .map(|event| {
            (
                event.get_str("_id").unwrap().to_string(),
                (
                    event.get_i64("seq").unwrap(),
                    event.get_str("message_id").ok().map(str::to_string),
                ),
            )
        })
        .collect()
}
