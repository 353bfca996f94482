//! Helpers for the logger's integration tests against the real local stack. Each test gets its
//! own topics (a unique prefix), consumer group, database and tenant, so tests never see each
//! other's data and can run in parallel.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use caas_events::Codec;
use caas_kafka::{dlq_topic, KafkaConfig, OutboundRecord, Producer, Record};
use caas_logger::config::DEFAULT_TOPICS;
use caas_logger::domain::event::LoggedEvent;
use caas_logger::scenario;
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::Env;
use mongodb::bson::{doc, Document};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::ClientConfig;

/// Every wait ends after this with a failure saying what was awaited.
pub const WAIT: Duration = Duration::from_secs(240);

pub fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

pub fn bootstrap() -> String {
    var("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
}

pub fn registry() -> String {
    var(
        "CAAS_SCHEMA_REGISTRY_URL",
        "http://127.0.0.1:8081/apis/ccompat/v7",
    )
}

pub fn mongodb_uri() -> String {
    var(
        "CAAS_MONGODB_URI",
        "mongodb://127.0.0.1:27017/?directConnection=true",
    )
}

pub fn redis_url() -> String {
    var("CAAS_REDIS_URL", "redis://127.0.0.1:6379")
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// One test's isolated world.
pub struct World {
    /// Prepended to every topic.
    pub prefix: String,
    /// The consumer group.
    pub group: String,
    /// The database.
    pub database: String,
    /// The tenant.
    pub tenant: String,
}

impl World {
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            prefix: format!("test-{}.", &id[..12]),
            group: format!("caas-logger-test-{}", &id[..12]),
            database: format!("caas_test_{}", &id[..12]),
            tenant: format!("t{}", &id[..10]),
        }
    }

    /// The logger's environment for this world (what the process or `Config` reads).
    pub fn environment(&self, batch_max_records: usize) -> Vec<(String, String)> {
        vec![
            ("CAAS_KAFKA_BOOTSTRAP".to_string(), bootstrap()),
            ("CAAS_SCHEMA_REGISTRY_URL".to_string(), registry()),
            ("CAAS_MONGODB_URI".to_string(), mongodb_uri()),
            ("CAAS_MONGODB_DATABASE".to_string(), self.database.clone()),
            ("CAAS_REDIS_URL".to_string(), redis_url()),
            (
                "CAAS_LOGGER_OPS_ADDR".to_string(),
                "127.0.0.1:0".to_string(),
            ),
            ("CAAS_LOGGER_GROUP_ID".to_string(), self.group.clone()),
            ("CAAS_LOGGER_TOPIC_PREFIX".to_string(), self.prefix.clone()),
            (
                "CAAS_LOGGER_BATCH_MAX_RECORDS".to_string(),
                batch_max_records.to_string(),
            ),
            (
                "CAAS_LOGGER_BATCH_MAX_WAIT_MS".to_string(),
                "50".to_string(),
            ),
            (
                "CAAS_LOGGER_SESSION_TIMEOUT_MS".to_string(),
                "6000".to_string(),
            ),
            ("CAAS_LOG".to_string(), var("CAAS_TEST_LOG", "warn")),
            ("CAAS_SHUTDOWN_GRACE_MS".to_string(), "8000".to_string()),
        ]
    }

    pub fn config(&self, batch_max_records: usize) -> caas_logger::Config {
        let pairs = self.environment(batch_max_records);
        caas_logger::Config::from_env(&Env::from_pairs(
            pairs
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        ))
        .expect("test configuration")
    }

    /// A deterministic scenario of this world's tenant, starting now.
    pub fn scenario(
        &self,
        conversations: usize,
        inbound_per_conversation: usize,
        outbound_per_conversation: usize,
        seed: u64,
    ) -> scenario::Scenario {
        scenario::generate(&scenario::ScenarioConfig {
            tenant_id: self.tenant.clone(),
            run_id: self.prefix.trim_end_matches('.').to_string(),
            conversations,
            inbound_per_conversation,
            outbound_per_conversation,
            seed,
            start_ms: caas_runtime::clock::now_millis(),
        })
    }

    pub fn topic(&self, canonical: &str) -> String {
        format!("{}{canonical}", self.prefix)
    }

    /// Create this world's topics (every logger topic and its DLQ), 3 partitions each.
    pub async fn create_topics(&self) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .create()
            .expect("admin client");
        let names: Vec<String> = DEFAULT_TOPICS
            .iter()
            .flat_map(|topic| [self.topic(topic), dlq_topic(&self.topic(topic))])
            .collect();
        let new_topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| NewTopic::new(name, 3, TopicReplication::Fixed(1)))
            .collect();
        let results = admin
            .create_topics(new_topics.iter(), &AdminOptions::new())
            .await
            .expect("create topics");
        for result in results {
            if let Err((topic, error)) = result {
                assert_eq!(
                    error,
                    rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                    "create {topic}"
                );
            }
        }
    }

    /// Drop the topics and the database (best effort).
    pub async fn clean_up(&self) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .create()
            .expect("admin client");
        let names: Vec<String> = DEFAULT_TOPICS
            .iter()
            .flat_map(|topic| [self.topic(topic), dlq_topic(&self.topic(topic))])
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let _ = admin.delete_topics(&refs, &AdminOptions::new()).await;
        let _ = mongo().await.database(&self.database).drop().await;
    }

    pub async fn db(&self) -> mongodb::Database {
        mongo().await.database(&self.database)
    }

    /// Produce `events` (encoded through the registry) to this world's topics, in order.
    pub async fn produce(&self, producer: &Producer, codec: &Codec, events: &[LoggedEvent]) {
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            let payload = scenario::encode(codec, event).await.expect("encode event");
            records.push(OutboundRecord::new(
                self.topic(event.topic()),
                event.conversation_key(),
                payload,
            ));
        }
        for chunk in records.chunks(2000) {
            for result in producer.send_all(chunk.to_vec()).await {
                result.expect("record acknowledged");
            }
        }
    }
}

pub async fn mongo() -> mongodb::Client {
    mongodb::Client::with_uri_str(mongodb_uri())
        .await
        .expect("mongodb client")
}

pub fn producer() -> Producer {
    Producer::new(&KafkaConfig::new(bootstrap()).with_client_id("caas-logger-tests"))
        .expect("producer")
}

pub fn codec() -> Codec {
    Codec::new(registry()).expect("codec")
}

pub async fn redis() -> redis::aio::ConnectionManager {
    caas_runtime::probe::redis_connection(&redis_url())
        .await
        .expect("redis")
}

/// Count documents matching `filter`.
pub async fn count(db: &mongodb::Database, collection: &str, filter: Document) -> u64 {
    db.collection::<Document>(collection)
        .count_documents(filter)
        .await
        .expect("count documents")
}

/// Poll `check` until it returns `Some`, at most [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let outcome = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    outcome.unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
}

/// Run the logger in-process; returns its ops address, the shutdown token and the task.
pub async fn start_in_process(
    config: caas_logger::Config,
) -> (
    SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let shutdown = CancellationToken::new();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(caas_logger::run(config, shutdown.clone(), move |address| {
        let _ = sender.send(address);
    }));
    let address = tokio::time::timeout(Duration::from_secs(30), receiver)
        .await
        .expect("bound in time")
        .expect("address");
    (address, shutdown, task)
}

pub async fn stop_in_process(
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the logger stops in time")
        .expect("logger task")
        .expect("clean stop");
}

/// Read `count` records of `topic` from the beginning with a throwaway group.
pub async fn read_records(topic: &str, count: usize) -> Vec<Record> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("reader-"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut records = Vec::new();
    tokio::time::timeout(WAIT, async {
        while records.len() < count {
            let message = consumer.recv().await.expect("read");
            records.push(Record::from_message(&message));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out reading {count} records of {topic}"));
    records
}

/// Per conversation key, the `seq` of every stored event.
pub async fn stored_sequences(db: &mongodb::Database) -> HashMap<String, Vec<i64>> {
    use futures::TryStreamExt;
    let mut cursor = db
        .collection::<Document>("events")
        .find(doc! { "seq": { "$exists": true } })
        .projection(doc! { "conversation_key": 1, "seq": 1 })
        .await
        .expect("find events");
    let mut sequences: HashMap<String, Vec<i64>> = HashMap::new();
    while let Some(document) = cursor.try_next().await.expect("read events") {
        sequences
            .entry(document.get_str("conversation_key").unwrap().to_string())
            .or_default()
            .push(document.get_i64("seq").unwrap());
    }
    sequences
}
