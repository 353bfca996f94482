//! `dlq replay` against the real local Kafka, on throwaway topics this test creates and deletes:
//! each dead-lettered record goes back to its original partition exactly once — also when
//! replay runs again, when it runs with a fresh replay group, and when two consumer groups
//! dead-lettered the same original record.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime};

use caas_kafka::dlq::{dead_letter, Failure};
use caas_kafka::Record;
use caasctl::dlq::{self, ReplayOptions, ReplayReport, REPLAYED_FROM};
use caasctl::topics;
use common::unique;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(20);

fn bootstrap() -> String {
    std::env::var("CAAS_KAFKA_BOOTSTRAP")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:9092".to_string())
}

struct Topics {
    original: String,
    dlq: String,
}

impl Topics {
    async fn create() -> Self {
        let original = unique("test-dlq-replay");
        let dlq = caas_kafka::dlq_topic(&original);
        let admin = topics::admin_client(&bootstrap()).expect("admin client");
        let results = admin
            .create_topics(
                &[
                    NewTopic::new(&original, 2, TopicReplication::Fixed(1)),
                    NewTopic::new(&dlq, 1, TopicReplication::Fixed(1)),
                ],
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            )
            .await
            .expect("create topics");
        for result in results {
            result.expect("topic created");
        }
        Self { original, dlq }
    }

    /// Best effort: the topics are throwaway.
    async fn delete(&self) {
        let admin = topics::admin_client(&bootstrap()).expect("admin client");
        let _ = admin
            .delete_topics(
                &[&self.original, &self.dlq],
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            )
            .await;
    }
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

/// Produce one record and return it as a consumer would have read it.
async fn produce(producer: &FutureProducer, record: Record) -> Record {
    let mut headers = OwnedHeaders::new();
    for (name, value) in &record.headers {
        headers = headers.insert(Header {
            key: name,
            value: Some(value),
        });
    }
    let key = record.key.clone().unwrap_or_default();
    let payload = record.payload.clone().unwrap_or_default();
    let mut outbound = FutureRecord::to(&record.topic)
        .key(&key)
        .payload(&payload)
        .headers(headers);
    if record.partition >= 0 {
        outbound = outbound.partition(record.partition);
    }
    let delivery = producer
        .send(outbound, TIMEOUT)
        .await
        .map_err(|(error, _)| error)
        .expect("delivered");
    Record {
        partition: delivery.partition,
        offset: delivery.offset,
        ..record
    }
}

/// An original record on `partition`, produced, then dead-lettered by `group`.
async fn original_then_dead_lettered(
    producer: &FutureProducer,
    topics: &Topics,
    partition: i32,
    text: &str,
    groups: &[&str],
) -> Record {
    let original = produce(
        producer,
        Record {
            topic: topics.original.clone(),
            partition,
            offset: -1,
            key: Some(format!("acme:whatsapp:{text}")),
            payload: Some(format!("payload {text}").into_bytes()),
            headers: vec![("traceparent".to_string(), format!("00-{text}").into_bytes())],
            timestamp_ms: None,
        },
    )
    .await;
    for group in groups {
        let outbound = dead_letter(
            &original,
            &Failure {
                reason: "schema id 99 not found",
                attempts: 5,
                group_id: group,
                failed_at: SystemTime::now(),
            },
        );
        produce(
            producer,
            Record {
                topic: outbound.topic,
                partition: 0,
                offset: -1,
                key: outbound.key,
                payload: outbound.payload,
                headers: outbound.headers,
                timestamp_ms: None,
            },
        )
        .await;
    }
    original
}

/// Every committed record of `topic` now, per partition in offset order.
fn read_all(topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("test-dlq-reader"))
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..2 {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut at_end = std::collections::BTreeSet::new();
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while at_end.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} timed out"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => records.push(Record::from_message(&message)),
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(error)) => panic!("read {topic}: {error}"),
            None => {}
        }
    }
    records
}

fn replay(topics: &Topics, group: &str) -> ReplayReport {
    dlq::replay(&ReplayOptions {
        bootstrap: bootstrap(),
        dlq_topic: topics.dlq.clone(),
        group: group.to_string(),
        failed_group: None,
        timeout: Duration::from_secs(60),
    })
    .expect("replay succeeds")
}

/// How many times each original (partition/offset) was replayed into the original topic.
fn replay_counts(topics: &Topics) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in read_all(&topics.original) {
        if let Some((_, mark)) = record
            .headers
            .iter()
            .find(|(name, _)| name == REPLAYED_FROM)
        {
            *counts
                .entry(String::from_utf8(mark.clone()).unwrap())
                .or_default() += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_moves_every_dead_lettered_record_back_exactly_once() {
    let topics = Topics::create().await;
    let producer = producer();
    let first = original_then_dead_lettered(&producer, &topics, 0, "one", &["caas-logger"]).await;
    // Two services gave up on the same record: it must still come back once.
    let second = original_then_dead_lettered(
        &producer,
        &topics,
        1,
        "two",
        &["caas-logger", "caas-presence"],
    )
    .await;
    let third = original_then_dead_lettered(&producer, &topics, 1, "three", &["caas-sender"]).await;
    let group = unique("test-dlq-replay-group");

    let report = tokio::task::spawn_blocking({
        let topics = Topics {
            original: topics.original.clone(),
            dlq: topics.dlq.clone(),
        };
        let group = group.clone();
        move || replay(&topics, &group)
    })
    .await
    .unwrap();
    assert_eq!(
        report,
        ReplayReport {
            replayed: 3,
            already_replayed: 1,
            other_group: 0,
            unreplayable: 0
        }
    );

    let records = read_all(&topics.original);
    assert_eq!(records.len(), 6, "three originals and three replays");
    for original in [&first, &second, &third] {
        let mark = format!(
            "{}/{}/{}",
            original.topic, original.partition, original.offset
        );
        let replayed: Vec<&Record> = records
            .iter()
            .filter(|record| {
                record
                    .headers
                    .iter()
                    .any(|(name, value)| name == REPLAYED_FROM && value == mark.as_bytes())
            })
            .collect();
        assert_eq!(replayed.len(), 1, "{mark} replayed once: {records:?}");
        let replayed = replayed[0];
        assert_eq!(replayed.partition, original.partition, "same partition");
        assert_eq!(replayed.key, original.key);
        assert_eq!(replayed.payload, original.payload);
        assert_eq!(
            replayed
                .headers
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>(),
            vec!["traceparent", REPLAYED_FROM],
            "original headers kept, failure headers dropped"
        );
        assert!(replayed.offset > original.offset);
    }

    // The same group again: its committed progress says everything is done.
    let topics_again = Topics {
        original: topics.original.clone(),
        dlq: topics.dlq.clone(),
    };
    let again = tokio::task::spawn_blocking({
        let group = group.clone();
        move || replay(&topics_again, &group)
    })
    .await
    .unwrap();
    assert_eq!(again, ReplayReport::default(), "nothing left to replay");

    // A fresh group reads the whole DLQ again; the replay marks stop every duplicate.
    let topics_fresh = Topics {
        original: topics.original.clone(),
        dlq: topics.dlq.clone(),
    };
    let fresh = tokio::task::spawn_blocking(move || {
        replay(&topics_fresh, &unique("test-dlq-replay-other"))
    })
    .await
    .unwrap();
    assert_eq!(fresh.replayed, 0, "{fresh:?}");
    assert_eq!(fresh.already_replayed, 4, "{fresh:?}");

    // A new failure after the first replay is picked up by the next run, and only it.
    let fourth = original_then_dead_lettered(&producer, &topics, 0, "four", &["caas-logger"]).await;
    let topics_next = Topics {
        original: topics.original.clone(),
        dlq: topics.dlq.clone(),
    };
    let next = tokio::task::spawn_blocking({
        let group = group.clone();
        move || replay(&topics_next, &group)
    })
    .await
    .unwrap();
    assert_eq!(next.replayed, 1, "{next:?}");
    let counts = replay_counts(&topics);
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert!(counts.values().all(|&count| count == 1), "{counts:?}");
    assert!(counts.contains_key(&format!(
        "{}/{}/{}",
        fourth.topic, fourth.partition, fourth.offset
    )));

    // What the services report as caas_kafka_dlq_pending_records counts from the default
    // replay group: it never ran on this DLQ, so all five wait; a default replay (which moves
    // nothing, every origin is marked) brings it to zero.
    let depth_client =
        caas_kafka::dlq_depth::replay_progress_client(&caas_kafka::KafkaConfig::new(bootstrap()))
            .expect("depth client");
    let depth = |client: &BaseConsumer| {
        caas_kafka::dlq_depth::measure(client, &topics.dlq)
            .expect("measure")
            .expect("the DLQ exists")
    };
    assert_eq!(depth(&depth_client), 5);
    let topics_default = Topics {
        original: topics.original.clone(),
        dlq: topics.dlq.clone(),
    };
    let by_default =
        tokio::task::spawn_blocking(move || replay(&topics_default, caas_kafka::dlq::REPLAY_GROUP))
            .await
            .unwrap();
    assert_eq!((by_default.replayed, by_default.already_replayed), (0, 5));
    assert_eq!(depth(&depth_client), 0);

    // The command line: `dlq list` shows every DLQ record as replayed for that group.
    let output = Command::new(env!("CARGO_BIN_EXE_caasctl"))
        .args(["dlq", "list", "--topic", &topics.dlq, "--group", &group])
        .env("CAAS_KAFKA_BOOTSTRAP", bootstrap())
        .output()
        .expect("run caasctl");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("5 record(s) listed, 0 pending"), "{stdout}");
    assert!(stdout.contains("schema id 99 not found"), "{stdout}");
    topics.delete().await;
}
