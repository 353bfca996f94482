//! The contracts on the wire, end to end through the real broker and the real registry:
//! every event type (and every content variant) is produced to its topic by the CAAS producer,
//! read back from Kafka and decoded equal; records that are not our Avro (not framed at all, or
//! framed with a schema id the registry does not know) go to the DLQ with a reason while the
//! records after them are still processed.

mod common;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caas_events::model::InboundMessage;
use caas_events::{wire, Codec, Event};
use caas_kafka::dlq::headers;
use caas_kafka::{
    dlq_topic, run_consumer, CancellationToken, ConsumerConfig, Handler, HandlerError, KafkaConfig,
    OutboundRecord, Producer, Record,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn bootstrap() -> String {
    std::env::var("CAAS_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".to_string())
}

fn registry_url() -> String {
    std::env::var("CAAS_SCHEMA_REGISTRY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".to_string())
}

fn producer() -> Producer {
    Producer::new(&KafkaConfig::new(bootstrap())).expect("producer")
}

/// Read exactly the record at `partition`/`offset` of `topic`.
fn read_at(
    topic: &str,
    partition: i32,
    offset: i64,
) -> (Option<String>, Vec<u8>, Vec<(String, String)>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", "caas-events-through-kafka")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    for _ in 0..60 {
        if let Some(result) = consumer.poll(Duration::from_millis(500)) {
            let message = result.expect("no consumer error");
            let key = message
                .key()
                .map(|key| String::from_utf8_lossy(key).to_string());
            let header_pairs = message
                .headers()
                .map(|all| {
                    all.iter()
                        .map(|header| {
                            (
                                header.key.to_string(),
                                String::from_utf8_lossy(header.value.unwrap_or_default())
                                    .to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            return (
                key,
                message.payload().unwrap_or_default().to_vec(),
                header_pairs,
            );
        }
    }
    panic!("no record at {topic}[{partition}]@{offset} within 30 s");
}

async fn through_kafka<E: Event + PartialEq + Debug>(codec: &Codec, event: E) {
    let bytes = codec.encode(&event).await.expect("encode");
    let delivery = producer()
        .send(OutboundRecord::new(E::TOPIC, event.key(), bytes))
        .await
        .unwrap_or_else(|error| panic!("{} not acknowledged: {error}", E::TOPIC));
    let (key, payload, _) =
        tokio::task::spawn_blocking(move || read_at(E::TOPIC, delivery.partition, delivery.offset))
            .await
            .unwrap();
    assert_eq!(key.as_deref(), Some(event.key()), "{} key", E::TOPIC);
    // A consumer with cold caches, as another service would be.
    let fresh = Codec::new(registry_url()).expect("codec");
    let decoded: E = fresh.decode(&payload).await.expect("decode");
    assert_eq!(decoded, event, "{} round trip", E::TOPIC);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_round_trips_through_the_real_broker_and_registry() {
    let codec = Codec::new(registry_url()).expect("codec");
    for content in common::every_content() {
        through_kafka(&codec, common::inbound_message(content.clone())).await;
        through_kafka(&codec, common::outbound_command(content)).await;
    }
    through_kafka(&codec, common::inbound_status()).await;
    through_kafka(&codec, common::outbound_result()).await;
    through_kafka(&codec, common::conversation_event()).await;
    through_kafka(&codec, common::presence_event()).await;
    through_kafka(&codec, common::presence_update()).await;
    through_kafka(&codec, common::campaign_command()).await;
    through_kafka(&codec, common::campaign_event()).await;
}

/// Decodes inbound messages with the registry-backed codec, the way every CAAS worker does.
#[derive(Clone)]
struct DecodingHandler {
    codec: Codec,
    decoded: Arc<Mutex<Vec<String>>>,
}

impl Handler for DecodingHandler {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let payload = record.payload.as_deref().unwrap_or_default();
        match self.codec.decode::<InboundMessage>(payload).await {
            Ok(message) => {
                self.decoded.lock().unwrap().push(message.event_id);
                Ok(())
            }
            Err(error) if error.is_poison() => Err(HandlerError::poison(error)),
            Err(error) => Err(HandlerError::retryable(error)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_are_not_our_avro_go_to_the_dlq_and_the_partition_keeps_flowing() {
    let topic = format!("test.contracts.{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let dlq = dlq_topic(&topic);
    let new_topics = [
        NewTopic::new(&topic, 1, TopicReplication::Fixed(1)),
        NewTopic::new(&dlq, 1, TopicReplication::Fixed(1)),
    ];
    for result in admin
        .create_topics(&new_topics, &AdminOptions::new())
        .await
        .unwrap()
    {
        result.expect("topic created");
    }

    let codec = Codec::new(registry_url()).expect("codec");
    let mut first = common::inbound_text();
    first.event_id = "first-good".into();
    let mut last = common::inbound_text();
    last.event_id = "last-good".into();
    let key = first.key().to_string();
    let unknown_id = common::framed(2_000_000_000, &wire::encode_body(&first).unwrap());
    let records = vec![
        OutboundRecord::new(
            topic.as_str(),
            key.as_str(),
            codec.encode(&first).await.unwrap(),
        ),
        OutboundRecord::new(topic.as_str(), key.as_str(), b"{\"not\":\"avro\"}".to_vec()),
        OutboundRecord::new(topic.as_str(), key.as_str(), unknown_id),
        OutboundRecord::new(
            topic.as_str(),
            key.as_str(),
            codec.encode(&last).await.unwrap(),
        ),
    ];
    let producer = producer();
    for result in producer.send_all(records).await {
        result.expect("acknowledged");
    }

    let handler = DecodingHandler {
        codec: codec.clone(),
        decoded: Arc::default(),
    };
    let shutdown = CancellationToken::new();
    let group = format!("test-contracts-{}", uuid::Uuid::new_v4().simple());
    let mut config = ConsumerConfig::new(KafkaConfig::new(bootstrap()), group, vec![topic.clone()]);
    config.max_retries = 2;
    let consumer = tokio::spawn(run_consumer(
        config,
        handler.clone(),
        producer.clone(),
        shutdown.clone(),
    ));

    let mut dead = Vec::new();
    for offset in 0..2 {
        let dlq_name = dlq.clone();
        dead.push(
            tokio::task::spawn_blocking(move || read_at(&dlq_name, 0, offset))
                .await
                .unwrap(),
        );
    }
    for _ in 0..100 {
        if handler.decoded.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shutdown.cancel();
    consumer.await.unwrap().expect("consumer loop ends cleanly");

    assert_eq!(
        *handler.decoded.lock().unwrap(),
        vec!["first-good".to_string(), "last-good".to_string()],
        "the good records on both sides of the poison are processed, in order"
    );
    let reasons: Vec<String> = dead
        .iter()
        .map(|(key, _, header_pairs)| {
            assert_eq!(
                key.as_deref(),
                Some(first.key()),
                "the DLQ keeps the original key"
            );
            let header = |name: &str| {
                header_pairs
                    .iter()
                    .find(|(header_name, _)| header_name == name)
                    .map(|(_, value)| value.clone())
                    .unwrap_or_else(|| panic!("DLQ record lacks header {name}"))
            };
            assert_eq!(header(headers::ORIGINAL_TOPIC), topic);
            header(headers::ERROR)
        })
        .collect();
    let offsets: BTreeSet<String> = dead
        .iter()
        .map(|(_, _, header_pairs)| {
            header_pairs
                .iter()
                .find(|(name, _)| name == headers::ORIGINAL_OFFSET)
                .map(|(_, value)| value.clone())
                .unwrap()
        })
        .collect();
    assert_eq!(offsets, BTreeSet::from(["1".to_string(), "2".to_string()]));
    assert_eq!(
        dead[0].1,
        b"{\"not\":\"avro\"}".to_vec(),
        "the DLQ keeps the original bytes"
    );
    assert!(
        reasons.iter().all(|reason| !reason.is_empty()),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|reason| reason.contains("2000000000")),
        "the unknown schema id is named in the reason: {reasons:?}"
    );

    let _ = admin
        .delete_topics(&[topic.as_str(), dlq.as_str()], &AdminOptions::new())
        .await;
}
