//! A MongoDB that stops answering in the middle of a batch must not stall the logger: the batch
//! fails after its deadline (so the consumer retries it) and, once the server answers again,
//! the retry stores every event exactly once.
//!
//! The fault is a network one: a relay between the logger's client and the real MongoDB-wire
//! server that can freeze (hold every byte, keep the connections open), the way a hung server
//! or a black-holed link behaves.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use caas_logger::domain::event::Incoming;
use caas_logger::error::StoreError;
use caas_logger::scenario::{self, ScenarioConfig};
use caas_logger::Store;
use mongodb::bson::doc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards bytes one way while not frozen; while frozen it holds them (and reads nothing).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// A relay to `upstream` on an ephemeral port; the flag freezes every connection through it.
async fn relay(upstream: String) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let frozen = Arc::new(AtomicBool::new(false));
    let flag = frozen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(client_read, server_write, flag.clone()));
            tokio::spawn(pump(server_read, client_write, flag.clone()));
        }
    });
    (address, frozen)
}

fn upstream_address(uri: &str) -> String {
    let rest = uri.trim_start_matches("mongodb://");
    let hosts = rest.split(['/', '?']).next().unwrap();
    let host = hosts.rsplit('@').next().unwrap();
    host.split(',').next().unwrap().to_string()
}

fn batch(events: &[caas_logger::domain::event::LoggedEvent]) -> Vec<Incoming> {
    Incoming::in_order(events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_fails_the_batch_in_time_and_the_retry_stores_it_once() {
    let world = common::World::new();
    let (address, frozen) = relay(upstream_address(&common::mongodb_uri())).await;
    let store = Store::connect(
        &format!("mongodb://{address}/?directConnection=true"),
        &world.database,
        Duration::from_secs(5),
    )
    .await
    .unwrap()
    .with_batch_deadline(Duration::from_secs(3));
    let scenario = scenario::generate(&ScenarioConfig {
        tenant_id: world.tenant.clone(),
        run_id: world.prefix.clone(),
        conversations: 4,
        inbound_per_conversation: 3,
        outbound_per_conversation: 2,
        seed: 7,
        start_ms: 1_790_000_000_000,
    });
    let (first, second) = scenario.events.split_at(scenario.events.len() / 2);
    store
        .persist(&batch(first), 1_790_000_100_000)
        .await
        .unwrap();

    frozen.store(true, Ordering::SeqCst);
    let hung = store.persist(&batch(second), 1_790_000_100_000).await;
    assert!(
        matches!(hung, Err(StoreError::Deadline { .. })),
        "a frozen server must fail the batch by its deadline, got {hung:?}"
    );

    frozen.store(false, Ordering::SeqCst);
    let mut retried = store.persist(&batch(second), 1_790_000_100_000).await;
    for _ in 0..10 {
        // The frozen connections may still be closing; the next attempt gets a fresh one.
        if retried.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        retried = store.persist(&batch(second), 1_790_000_100_000).await;
    }
    retried.unwrap();

    let direct = mongodb::Client::with_uri_str(common::mongodb_uri())
        .await
        .unwrap()
        .database(&world.database);
    let events = direct
        .collection::<mongodb::bson::Document>("events")
        .count_documents(doc! { "tenant_id": &world.tenant })
        .await
        .unwrap();
    assert_eq!(events as usize, scenario.expected.event_ids.len());
    direct.drop().await.unwrap();
}
