//! How fast the logger moves events from Kafka into MongoDB, against the real local stack.
//!
//! ```text
//! cargo run --release -p caas-logger --example throughput -- [events] [batch] [rate]
//! ```
//!
//! On its own topics (a unique prefix, 12 partitions like production), database and group:
//!
//! 1. **produce** a backlog of `events` mixed events (default 50000; messages, out-of-order
//!    statuses, commands, results, handoffs, presence and campaign events, 2% duplicates);
//! 2. **Kafka alone**: a plain consumer reads the backlog and does nothing (the ceiling);
//! 3. **backlog drain**: the logger starts with the backlog waiting and stores all of it;
//! 4. **sustained**: with the logger caught up, another `events` are offered at a steady `rate`
//!    per second (default 1000) while it runs: whether it keeps up (the backlog when the last
//!    record was sent) and the rate at which it stored them.
//!
//! Figures are printed, never asserted. Topics and the database are dropped at the end.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use caas_events::Codec;
use caas_kafka::{dlq_topic, KafkaConfig, OutboundRecord, Producer};
use caas_logger::config::DEFAULT_TOPICS;
use caas_logger::scenario::{self, ScenarioConfig};
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::Env;
use mongodb::bson::{doc, Document};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::ClientConfig;

fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn scenario_for(tenant: &str, run: &str, events: usize, seed: u64) -> scenario::Scenario {
    // About 54 events per conversation with these settings.
    let conversations = (events / 54).max(1);
    scenario::generate(&ScenarioConfig {
        tenant_id: tenant.to_string(),
        run_id: run.to_string(),
        conversations,
        inbound_per_conversation: 10,
        outbound_per_conversation: 10,
        seed,
        start_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    })
}

async fn produce(
    producer: &Producer,
    codec: &Codec,
    prefix: &str,
    scenario: &scenario::Scenario,
) -> (usize, Duration) {
    let started = Instant::now();
    let mut records = Vec::with_capacity(scenario.events.len());
    for event in &scenario.events {
        let payload = scenario::encode(codec, event).await.expect("encode");
        records.push(OutboundRecord::new(
            format!("{prefix}{}", event.topic()),
            event.conversation_key(),
            payload,
        ));
    }
    let count = records.len();
    for chunk in records.chunks(5000) {
        for result in producer.send_all(chunk.to_vec()).await {
            result.expect("acknowledged");
        }
    }
    (count, started.elapsed())
}

/// Produce at about `rate` records per second, in chunks every 100 ms.
async fn produce_paced(
    producer: &Producer,
    codec: &Codec,
    prefix: &str,
    scenario: &scenario::Scenario,
    rate: usize,
) -> (usize, Duration) {
    let started = Instant::now();
    let chunk = (rate / 10).max(1);
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut sent = 0;
    for events in scenario.events.chunks(chunk) {
        ticker.tick().await;
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            let payload = scenario::encode(codec, event).await.expect("encode");
            records.push(OutboundRecord::new(
                format!("{prefix}{}", event.topic()),
                event.conversation_key(),
                payload,
            ));
        }
        sent += records.len();
        for result in producer.send_all(records).await {
            result.expect("acknowledged");
        }
    }
    (sent, started.elapsed())
}

async fn stored(db: &mongodb::Database) -> u64 {
    db.collection::<Document>("events")
        .estimated_document_count()
        .await
        .expect("count events")
}

/// Poll until `target` events are stored; returns (time to the first stored event, time to
/// the last), measured from `started`.
async fn wait_stored(
    db: &mongodb::Database,
    base: u64,
    target: u64,
    started: Instant,
) -> (Duration, Duration) {
    let mut first = None;
    loop {
        let now = stored(db).await;
        if first.is_none() && now > base {
            first = Some(started.elapsed());
        }
        if now >= target {
            return (first.unwrap_or_default(), started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // `CAAS_LOG=caas_logger=debug` shows the phases of every batch transaction.
    if let Ok(filter) = std::env::var("CAAS_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let mut args = std::env::args().skip(1);
    let events: usize = args
        .next()
        .map(|value| value.parse())
        .transpose()?
        .unwrap_or(50_000);
    let batch: usize = args
        .next()
        .map(|value| value.parse())
        .transpose()?
        .unwrap_or(1000);
    let rate: usize = args
        .next()
        .map(|value| value.parse())
        .transpose()?
        .unwrap_or(1000);
    let bootstrap = var("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092");
    let registry = var(
        "CAAS_SCHEMA_REGISTRY_URL",
        "http://127.0.0.1:8081/apis/ccompat/v7",
    );
    let mongodb_uri = var(
        "CAAS_MONGODB_URI",
        "mongodb://127.0.0.1:27017/?directConnection=true",
    );
    let id = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("bench-{}.", &id[..10]);
    let database = format!("caas_bench_{}", &id[..10]);
    let tenant = format!("b{}", &id[..10]);

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()?;
    let names: Vec<String> = DEFAULT_TOPICS
        .iter()
        .flat_map(|topic| {
            [
                format!("{prefix}{topic}"),
                dlq_topic(&format!("{prefix}{topic}")),
            ]
        })
        .collect();
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                if name.ends_with(".dlq") { 3 } else { 12 },
                TopicReplication::Fixed(1),
            )
        })
        .collect();
    for result in admin
        .create_topics(new_topics.iter(), &AdminOptions::new())
        .await?
    {
        result.map_err(|(topic, error)| anyhow::anyhow!("create {topic}: {error}"))?;
    }

    let codec = Codec::new(registry.clone())?;
    let producer =
        Producer::new(&KafkaConfig::new(bootstrap.clone()).with_client_id("logger-throughput"))?;
    let backlog = scenario_for(&tenant, &format!("{}a", &id[..8]), events, 1);
    let distinct_backlog = backlog.expected.event_ids.len() as u64;
    let (produced, took) = produce(&producer, &codec, &prefix, &backlog).await;
    println!(
        "produce      {produced} records ({distinct_backlog} distinct events) in {:.2} s = {:.0} records/s",
        took.as_secs_f64(),
        produced as f64 / took.as_secs_f64()
    );

    // Kafka alone: read the backlog, do nothing.
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("bench-reader-{id}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    let subscribed: Vec<String> = DEFAULT_TOPICS
        .iter()
        .map(|topic| format!("{prefix}{topic}"))
        .collect();
    let refs: Vec<&str> = subscribed.iter().map(String::as_str).collect();
    let subscribed_at = Instant::now();
    reader.subscribe(&refs)?;
    let mut read = 0usize;
    let mut first_read = None;
    while read < produced {
        reader.recv().await?;
        if first_read.is_none() {
            first_read = Some(Instant::now());
        }
        read += 1;
    }
    let kafka_took = first_read.map(|first| first.elapsed()).unwrap_or_default();
    let kafka_total = subscribed_at.elapsed();
    println!(
        "kafka        a plain consumer read {read} records in {:.2} s from subscribing = {:.0} records/s \
         ({:.2} s after its first record: librdkafka prefetches while the group forms)",
        kafka_total.as_secs_f64(),
        read as f64 / kafka_total.as_secs_f64(),
        kafka_took.as_secs_f64(),
    );
    drop(reader);

    // The logger drains the backlog.
    let pairs = [
        ("CAAS_KAFKA_BOOTSTRAP", bootstrap.clone()),
        ("CAAS_SCHEMA_REGISTRY_URL", registry.clone()),
        ("CAAS_MONGODB_URI", mongodb_uri.clone()),
        ("CAAS_MONGODB_DATABASE", database.clone()),
        ("CAAS_LOGGER_OPS_ADDR", "127.0.0.1:0".to_string()),
        ("CAAS_LOGGER_GROUP_ID", format!("bench-logger-{id}")),
        ("CAAS_LOGGER_TOPIC_PREFIX", prefix.clone()),
        ("CAAS_LOGGER_BATCH_MAX_RECORDS", batch.to_string()),
        ("CAAS_LOGGER_SESSION_TIMEOUT_MS", "6000".to_string()),
    ];
    let config = caas_logger::Config::from_env(&Env::from_pairs(
        pairs.iter().map(|(key, value)| (*key, value.as_str())),
    ))?;
    let mongo = mongodb::Client::with_uri_str(&mongodb_uri).await?;
    let db = mongo.database(&database);
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let service = tokio::spawn(caas_logger::run(config, shutdown.clone(), |_| {}));
    let (first, last) = wait_stored(&db, 0, distinct_backlog, started).await;
    let drain = last - first;
    println!(
        "drain        {distinct_backlog} events stored in {:.2} s after the first one = {:.0} events/s \
         (first stored {:.2} s after start: group join and index creation)",
        drain.as_secs_f64(),
        distinct_backlog as f64 / drain.as_secs_f64(),
        first.as_secs_f64()
    );

    // Sustained: offer another `events` at a steady `rate` while the logger runs.
    let live = scenario_for(&tenant, &format!("{}b", &id[..8]), events, 2);
    let distinct_live = live.expected.event_ids.len() as u64;
    let started = Instant::now();
    let (produced_live, produce_took) =
        produce_paced(&producer, &codec, &prefix, &live, rate).await;
    let stored_when_done = stored(&db).await.saturating_sub(distinct_backlog);
    let (_, all_stored) = wait_stored(
        &db,
        distinct_backlog,
        distinct_backlog + distinct_live,
        started,
    )
    .await;
    println!(
        "sustained    {produced_live} records offered at {:.0}/s for {:.1} s; {} of {distinct_live} events \
         stored when the last was sent (backlog {}), all stored after {:.1} s = {:.0} events/s",
        produced_live as f64 / produce_took.as_secs_f64(),
        produce_took.as_secs_f64(),
        stored_when_done,
        distinct_live.saturating_sub(stored_when_done),
        all_stored.as_secs_f64(),
        distinct_live as f64 / all_stored.as_secs_f64()
    );
    let messages = db
        .collection::<Document>("messages")
        .count_documents(doc! {})
        .await?;
    let conversations = db
        .collection::<Document>("conversations")
        .count_documents(doc! {})
        .await?;
    println!(
        "stored       {} events, {messages} messages, {conversations} conversations",
        stored(&db).await
    );

    let transactions = caas_logger::metrics::metrics().persist_duration.clone();
    let batches = transactions.get_sample_count();
    println!(
        "batches      {batches} transactions, {:.0} events per batch, {:.1} ms per transaction on average",
        (distinct_backlog + distinct_live) as f64 / batches.max(1) as f64,
        1000.0 * transactions.get_sample_sum() / batches.max(1) as f64
    );
    shutdown.cancel();
    service.await??;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let _ = admin.delete_topics(&refs, &AdminOptions::new()).await;
    db.drop().await?;
    Ok(())
}
