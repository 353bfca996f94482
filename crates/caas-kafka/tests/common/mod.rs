//! Helpers for the integration tests: they talk to the real broker at `CAAS_KAFKA_BOOTSTRAP`
//! (default `127.0.0.1:9092`), each test on its own throwaway topics and consumer groups.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use caas_kafka::{dlq_topic, ConsumerConfig, HandlerError, KafkaConfig, Producer, Record};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Every wait in these tests ends after this, with a failure that says what was awaited.
pub const WAIT: Duration = Duration::from_secs(60);

pub fn bootstrap() -> String {
    std::env::var("CAAS_KAFKA_BOOTSTRAP")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:9092".to_string())
}

pub fn init_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("CAAS_TEST_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}.{}", uuid::Uuid::new_v4().simple())
}

pub fn kafka_config() -> KafkaConfig {
    KafkaConfig::new(bootstrap()).with_client_id("caas-kafka-tests")
}

pub fn producer() -> Producer {
    Producer::new(&kafka_config()).expect("create producer")
}

/// A consumer config with short delays so the tests run fast (never asserted on).
pub fn consumer_config(topic: &str, group: &str) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(kafka_config(), group, [topic]);
    config.max_retries = 3;
    config.backoff_base = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(100);
    config.auto_commit_interval = Duration::from_millis(100);
    config.lag_refresh_interval = Duration::from_millis(200);
    // The broker's minimum; lets a killed member's partitions move quickly.
    config.session_timeout = Duration::from_secs(6);
    config
}

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("create admin client")
}

/// A throwaway topic with 3 partitions and its `.dlq`, both replication 1.
pub async fn create_topic_with_dlq() -> String {
    let topic = unique("test");
    let dlq = dlq_topic(&topic);
    let new_topics = [
        NewTopic::new(&topic, 3, TopicReplication::Fixed(1)),
        NewTopic::new(&dlq, 3, TopicReplication::Fixed(1)),
    ];
    let results = admin()
        .create_topics(new_topics.iter(), &AdminOptions::new())
        .await
        .expect("create topics request");
    for result in results {
        result.expect("topic created");
    }
    topic
}

/// Best-effort cleanup of a test topic and its DLQ.
pub async fn delete_topic_with_dlq(topic: &str) {
    let dlq = dlq_topic(topic);
    let _ = admin()
        .delete_topics(&[topic, dlq.as_str()], &AdminOptions::new())
        .await;
}

/// Wait until `condition` holds, polling; panics with `what` after [`WAIT`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let outcome = tokio::time::timeout(WAIT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(outcome.is_ok(), "timed out waiting for: {what}");
}

/// Await `future` for at most [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
}

/// Read `count` records of `topic` from the beginning with a fresh group (not ours).
pub async fn read_records(topic: &str, count: usize) -> Vec<Record> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("create reader");
    consumer.subscribe(&[topic]).expect("subscribe reader");
    let mut records = Vec::new();
    within(&format!("{count} records in {topic}"), async {
        while records.len() < count {
            let message = consumer.recv().await.expect("read record");
            records.push(Record::from_message(&message));
        }
    })
    .await;
    records
}

/// The group's committed offset for one partition (`None` if nothing was committed).
pub async fn committed_offset(group: &str, topic: &str, partition: i32) -> Option<i64> {
    let group = group.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", &group)
            .create()
            .expect("create offset reader");
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition(&topic, partition);
        let committed = consumer
            .committed_offsets(partitions, Duration::from_secs(10))
            .expect("fetch committed offsets");
        committed
            .elements()
            .first()
            .and_then(|element| match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            })
    })
    .await
    .expect("offset reader task")
}

/// One handler call as the test saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub record: Record,
    /// 1 for the first call for this (topic, partition, offset).
    pub attempt: u32,
    pub outcome: Result<(), HandlerError>,
}

impl Call {
    pub fn payload_text(&self) -> String {
        String::from_utf8_lossy(self.record.payload.as_deref().unwrap_or_default()).into_owned()
    }
}

/// (topic, partition, offset).
type Position = (String, i32, i64);

type Decide = dyn Fn(&Record, u32) -> Result<(), HandlerError> + Send + Sync;

/// A handler that records every call and answers what `decide` says (given the attempt).
#[derive(Clone)]
pub struct Recorder {
    calls: Arc<Mutex<Vec<Call>>>,
    attempts: Arc<Mutex<HashMap<Position, u32>>>,
    decide: Arc<Decide>,
}

impl Recorder {
    pub fn new(
        decide: impl Fn(&Record, u32) -> Result<(), HandlerError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            calls: Arc::default(),
            attempts: Arc::default(),
            decide: Arc::new(decide),
        }
    }

    pub fn accepting_all() -> Self {
        Self::new(|_, _| Ok(()))
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn succeeded(&self) -> Vec<Record> {
        self.calls()
            .into_iter()
            .filter(|call| call.outcome.is_ok())
            .map(|call| call.record)
            .collect()
    }
}

impl caas_kafka::Handler for Recorder {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let counter = attempts
                .entry((record.topic.clone(), record.partition, record.offset))
                .or_insert(0);
            *counter += 1;
            *counter
        };
        let outcome = (self.decide)(record, attempt);
        self.calls.lock().unwrap().push(Call {
            record: record.clone(),
            attempt,
            outcome: outcome.clone(),
        });
        outcome
    }
}

/// The value of a counter or gauge series in the default registry, without creating it.
pub fn metric_value(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let family = prometheus::gather()
        .into_iter()
        .find(|family| family.name() == name)?;
    let is_counter = family.get_field_type() == prometheus::proto::MetricType::COUNTER;
    family
        .get_metric()
        .iter()
        .find(|metric| {
            labels.iter().all(|(label, value)| {
                metric
                    .get_label()
                    .iter()
                    .any(|pair| pair.name() == *label && pair.value() == *value)
            })
        })
        .map(|metric| {
            if is_counter {
                metric.get_counter().get_value()
            } else {
                metric.get_gauge().get_value()
            }
        })
}
