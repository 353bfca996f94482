//! The producer against the real broker (and against no broker at all).

mod common;

use std::time::Duration;

use caas_kafka::{KafkaConfig, OutboundRecord, ProduceError, Producer};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_resolves_with_the_acknowledged_position_and_keeps_headers() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let producer = producer();
    let first = producer
        .send(OutboundRecord::new(topic.as_str(), "k", "one").with_header("h", "v"))
        .await
        .expect("acknowledged");
    let second = producer
        .send(OutboundRecord::new(topic.as_str(), "k", "two"))
        .await
        .expect("acknowledged");
    assert_eq!(
        first.partition, second.partition,
        "same key, same partition"
    );
    assert_eq!(second.offset, first.offset + 1);
    let tombstone = OutboundRecord {
        topic: topic.clone(),
        key: Some("k".to_string()),
        payload: None,
        headers: Vec::new(),
    };
    producer
        .send(tombstone)
        .await
        .expect("tombstone acknowledged");
    producer
        .flush(Duration::from_secs(10))
        .await
        .expect("flush");

    let records = read_records(&topic, 3).await;
    let mut in_order: Vec<_> = records.iter().collect();
    in_order.sort_by_key(|record| record.offset);
    assert_eq!(in_order[0].payload.as_deref(), Some(b"one".as_slice()));
    assert_eq!(in_order[0].header_str("h"), Some("v"));
    assert_eq!(in_order[0].key.as_deref(), Some("k"));
    assert_eq!(in_order[1].payload.as_deref(), Some(b"two".as_slice()));
    assert_eq!(in_order[2].payload, None, "a tombstone stays a tombstone");
    assert!(
        metric_value(
            "caas_kafka_produced_total",
            &[("topic", topic.as_str()), ("outcome", "ok")]
        ) >= Some(3.0)
    );
    delete_topic_with_dlq(&topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_returns_one_result_per_record_in_input_order() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let producer = producer();
    let results = producer
        .send_all(
            (0..100).map(|index| OutboundRecord::new(topic.as_str(), "same", format!("{index}"))),
        )
        .await;
    let offsets: Vec<i64> = results
        .into_iter()
        .map(|result| result.expect("acknowledged").offset)
        .collect();
    assert_eq!(offsets.len(), 100);
    assert!(
        offsets.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "one key keeps the input order: {offsets:?}"
    );
    delete_topic_with_dlq(&topic).await;
}

#[tokio::test]
async fn a_send_to_an_unreachable_cluster_fails_as_a_timeout() {
    init_logs();
    let mut config = KafkaConfig::new("127.0.0.1:1");
    config.send_timeout = Duration::from_millis(300);
    let producer = Producer::new(&config).expect("create producer");
    let error = within(
        "the send to fail",
        producer.send(OutboundRecord::new("caas.unreachable", "k", "v")),
    )
    .await
    .expect_err("no broker, no ack");
    assert!(error.is_timeout(), "{error:?}");
    assert!(matches!(error, ProduceError::Timeout { .. }), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_enqueued_one_after_the_other_keep_their_order_and_are_acknowledged_later() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let producer = producer();
    let mut pending = Vec::new();
    for index in 0..20 {
        pending.push(
            producer
                .enqueue(OutboundRecord::new(
                    topic.as_str(),
                    "one-key",
                    format!("r{index}"),
                ))
                .await
                .expect("enqueued"),
        );
    }
    let mut offsets = Vec::new();
    for delivery in pending {
        offsets.push(delivery.acknowledged().await.expect("acknowledged").offset);
    }
    let mut sorted = offsets.clone();
    sorted.sort_unstable();
    assert_eq!(offsets, sorted, "enqueue order is partition order");
    delete_topic_with_dlq(&topic).await;
}
