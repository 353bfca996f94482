//! The consumer loop against the real broker: at-least-once delivery, DLQ, retries, lag.

mod common;

use std::collections::{BTreeMap, HashSet};

use caas_kafka::dlq::headers;
use caas_kafka::{
    dlq_topic, run_consumer, CancellationToken, Delivery, Handler, HandlerError, OutboundRecord,
    Record, TraceParent,
};
use common::*;

fn send_all_ok(results: Vec<Result<Delivery, caas_kafka::ProduceError>>) -> Vec<Delivery> {
    results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("every record acknowledged")
}

fn counter(name: &str, topic: &str, group: &str, outcome: &str) -> f64 {
    metric_value(
        name,
        &[("topic", topic), ("group", group), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_produced_record_is_consumed_in_partition_order() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let producer = producer();
    let outbound: Vec<OutboundRecord> = (0..200)
        .map(|index| {
            OutboundRecord::new(
                topic.as_str(),
                format!("acme:whatsapp:{}", index % 20),
                format!("record-{index}"),
            )
        })
        .collect();
    let deliveries = send_all_ok(producer.send_all(outbound).await);
    let expected: BTreeMap<(i32, i64), String> = deliveries
        .iter()
        .enumerate()
        .map(|(index, delivery)| {
            (
                (delivery.partition, delivery.offset),
                format!("record-{index}"),
            )
        })
        .collect();
    assert_eq!(expected.len(), 200, "200 distinct positions");

    let group = unique("group");
    let handler = Recorder::accepting_all();
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_consumer(
        consumer_config(&topic, &group),
        handler.clone(),
        producer.clone(),
        shutdown.clone(),
    ));

    eventually("all 200 records handled", || {
        let seen: HashSet<(i32, i64)> = handler
            .succeeded()
            .iter()
            .map(|record| (record.partition, record.offset))
            .collect();
        expected.keys().all(|position| seen.contains(position))
    })
    .await;

    let succeeded = handler.succeeded();
    for record in &succeeded {
        let payload = String::from_utf8(record.payload.clone().unwrap()).unwrap();
        assert_eq!(
            expected.get(&(record.partition, record.offset)),
            Some(&payload),
            "payload of {}@{}",
            record.partition,
            record.offset
        );
    }
    for partition in 0..3 {
        let offsets: Vec<i64> = succeeded
            .iter()
            .filter(|record| record.partition == partition)
            .map(|record| record.offset)
            .collect();
        assert!(
            offsets.windows(2).all(|pair| pair[0] < pair[1]),
            "partition {partition} handled in offset order: {offsets:?}"
        );
    }
    assert!(counter("caas_kafka_records_processed_total", &topic, &group, "ok") >= 200.0);

    // Once everything is committed, the lag of every partition that got records reads 0.
    let partitions: HashSet<i32> = deliveries
        .iter()
        .map(|delivery| delivery.partition)
        .collect();
    eventually("consumer lag back to 0 on every partition", || {
        partitions.iter().all(|partition| {
            metric_value(
                "caas_kafka_consumer_lag_records",
                &[
                    ("topic", topic.as_str()),
                    ("partition", partition.to_string().as_str()),
                    ("group", group.as_str()),
                ],
            ) == Some(0.0)
        })
    })
    .await;

    shutdown.cancel();
    within("the consumer to stop", consumer)
        .await
        .expect("consumer task")
        .expect("clean stop");
    delete_topic_with_dlq(&topic).await;
}

/// Blocks every call until the gate opens.
#[derive(Clone)]
struct Gated {
    open: tokio::sync::watch::Receiver<bool>,
    inner: Recorder,
}

impl Handler for Gated {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let mut open = self.open.clone();
        open.wait_for(|is_open| *is_open)
            .await
            .map_err(HandlerError::retryable)?;
        self.inner.handle(record).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_gauge_shows_the_backlog_even_while_a_handler_is_stuck() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let producer = producer();
    let deliveries =
        send_all_ok(
            producer
                .send_all((0..10).map(|index| {
                    OutboundRecord::new(topic.as_str(), "one-key", format!("{index}"))
                }))
                .await,
        );
    let partition = deliveries[0].partition.to_string();
    let group = unique("group");
    let (open_gate, gate) = tokio::sync::watch::channel(false);
    let handler = Gated {
        open: gate,
        inner: Recorder::accepting_all(),
    };
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_consumer(
        consumer_config(&topic, &group),
        handler.clone(),
        producer.clone(),
        shutdown.clone(),
    ));
    let lag = || {
        metric_value(
            "caas_kafka_consumer_lag_records",
            &[
                ("topic", topic.as_str()),
                ("partition", partition.as_str()),
                ("group", group.as_str()),
            ],
        )
    };

    eventually("lag 10 while the first record is stuck", || {
        lag() == Some(10.0)
    })
    .await;
    assert!(handler.inner.calls().is_empty(), "nothing processed yet");
    open_gate.send(true).expect("open the gate");
    eventually("lag 0 after the backlog is processed", || {
        lag() == Some(0.0)
    })
    .await;
    assert_eq!(handler.inner.succeeded().len(), 10);

    shutdown.cancel();
    within("the consumer to stop", consumer)
        .await
        .expect("consumer task")
        .expect("clean stop");
    assert_eq!(
        lag(),
        None,
        "a stopped consumer no longer reports partitions it left"
    );
    delete_topic_with_dlq(&topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dlq_with_their_reason_and_the_partition_keeps_flowing() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let producer = producer();
    let traceparent = TraceParent::new_root();
    // One key, so one partition: the records after each bad one must still be processed.
    let payloads = [
        "ok-0",
        "poison-1",
        "ok-2",
        "ok-3",
        "always-retry-4",
        "ok-5",
        "panic-6",
        "ok-7",
    ];
    let deliveries = send_all_ok(
        producer
            .send_all(payloads.iter().map(|payload| {
                OutboundRecord::new(topic.as_str(), "acme:rcs:+4915112345678", *payload)
                    .with_traceparent(&traceparent)
                    .with_header("x-origin", "test")
            }))
            .await,
    );
    let partition = deliveries[0].partition;
    assert!(deliveries
        .iter()
        .all(|delivery| delivery.partition == partition));

    let group = unique("group");
    let handler = Recorder::new(|record, _attempt| {
        let payload =
            String::from_utf8_lossy(record.payload.as_deref().unwrap_or_default()).to_string();
        if payload.starts_with("poison") {
            Err(HandlerError::poison(format!(
                "not a valid event: {payload}"
            )))
        } else if payload.starts_with("always-retry") {
            Err(HandlerError::retryable("store unavailable"))
        } else if payload.starts_with("panic") {
            panic!("bug triggered by {payload}");
        } else {
            Ok(())
        }
    });
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_consumer(
        consumer_config(&topic, &group),
        handler.clone(),
        producer.clone(),
        shutdown.clone(),
    ));

    eventually("the last record handled", || {
        handler
            .succeeded()
            .iter()
            .any(|record| record.payload.as_deref() == Some(b"ok-7".as_slice()))
    })
    .await;
    let succeeded: Vec<String> = handler
        .succeeded()
        .iter()
        .map(|record| String::from_utf8(record.payload.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(succeeded, vec!["ok-0", "ok-2", "ok-3", "ok-5", "ok-7"]);

    let dead: Vec<Record> = read_records(&dlq_topic(&topic), 3).await;
    let by_payload: BTreeMap<String, &Record> = dead
        .iter()
        .map(|record| {
            (
                String::from_utf8(record.payload.clone().unwrap()).unwrap(),
                record,
            )
        })
        .collect();
    let cases = [
        ("poison-1", 1usize, "not a valid event: poison-1", 1u32),
        (
            "always-retry-4",
            4,
            "retries exhausted after 4 attempts: store unavailable",
            4,
        ),
        (
            "panic-6",
            6,
            "handler panicked: bug triggered by panic-6",
            1,
        ),
    ];
    for (payload, index, reason, attempts) in cases {
        let record = by_payload
            .get(payload)
            .unwrap_or_else(|| panic!("{payload} in the DLQ, got {:?}", by_payload.keys()));
        assert_eq!(record.key.as_deref(), Some("acme:rcs:+4915112345678"));
        assert_eq!(record.header_str(headers::ERROR), Some(reason));
        assert_eq!(
            record.header_str(headers::ORIGINAL_TOPIC),
            Some(topic.as_str())
        );
        assert_eq!(
            record.header_str(headers::ORIGINAL_PARTITION),
            Some(partition.to_string().as_str())
        );
        assert_eq!(
            record.header_str(headers::ORIGINAL_OFFSET),
            Some(deliveries[index].offset.to_string().as_str())
        );
        assert_eq!(
            record.header_str(headers::ATTEMPTS),
            Some(attempts.to_string().as_str())
        );
        assert_eq!(
            record.header_str(headers::CONSUMER_GROUP),
            Some(group.as_str())
        );
        let failed_at = record.header_str(headers::FAILED_AT).expect("failed_at");
        assert!(
            failed_at.len() == 24 && failed_at.ends_with('Z') && failed_at.as_bytes()[10] == b'T',
            "rfc 3339 failed_at: {failed_at}"
        );
        assert_eq!(
            record.traceparent(),
            Some(traceparent),
            "trace context kept"
        );
        assert_eq!(
            record.header_str("x-origin"),
            Some("test"),
            "original headers kept"
        );
    }
    let dlq_count = |reason: &str| {
        metric_value(
            "caas_kafka_dlq_records_total",
            &[
                ("topic", topic.as_str()),
                ("group", group.as_str()),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(dlq_count("poison"), Some(1.0));
    assert_eq!(dlq_count("retries_exhausted"), Some(1.0));
    assert_eq!(dlq_count("panic"), Some(1.0));
    assert_eq!(
        counter("caas_kafka_records_processed_total", &topic, &group, "dlq"),
        3.0
    );
    assert_eq!(
        counter(
            "caas_kafka_records_processed_total",
            &topic,
            &group,
            "retry"
        ),
        3.0,
        "max_retries retries, then the DLQ"
    );

    shutdown.cancel();
    within("the consumer to stop", consumer)
        .await
        .expect("consumer task")
        .expect("clean stop");
    delete_topic_with_dlq(&topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_errors_are_retried_until_they_succeed_without_reordering() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let producer = producer();
    let deliveries = send_all_ok(
        producer
            .send_all((0..12).map(|index| {
                OutboundRecord::new(topic.as_str(), "one-conversation", format!("{index}"))
            }))
            .await,
    );
    // Every third record fails twice before it succeeds (max_retries is 3 in the tests).
    let flaky = |index: usize| index % 3 == 1;
    let group = unique("group");
    let handler = Recorder::new(move |record, attempt| {
        let index: usize = String::from_utf8_lossy(record.payload.as_deref().unwrap_or_default())
            .parse()
            .expect("numeric payload");
        if flaky(index) && attempt <= 2 {
            Err(HandlerError::retryable(format!(
                "transient failure {attempt}"
            )))
        } else {
            Ok(())
        }
    });
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_consumer(
        consumer_config(&topic, &group),
        handler.clone(),
        producer.clone(),
        shutdown.clone(),
    ));

    eventually("all 12 records handled", || handler.succeeded().len() >= 12).await;
    let calls = handler.calls();
    let sequence: Vec<(String, u32, bool)> = calls
        .iter()
        .map(|call| (call.payload_text(), call.attempt, call.outcome.is_ok()))
        .collect();
    let mut expected_sequence = Vec::new();
    for index in 0..12 {
        if flaky(index) {
            expected_sequence.push((index.to_string(), 1, false));
            expected_sequence.push((index.to_string(), 2, false));
            expected_sequence.push((index.to_string(), 3, true));
        } else {
            expected_sequence.push((index.to_string(), 1, true));
        }
    }
    assert_eq!(
        sequence, expected_sequence,
        "retries happen in place, in order"
    );
    let offsets: Vec<i64> = handler
        .succeeded()
        .iter()
        .map(|record| record.offset)
        .collect();
    let produced: Vec<i64> = deliveries.iter().map(|delivery| delivery.offset).collect();
    assert_eq!(offsets, produced);
    assert_eq!(
        counter(
            "caas_kafka_records_processed_total",
            &topic,
            &group,
            "retry"
        ),
        8.0
    );
    assert_eq!(
        counter("caas_kafka_records_processed_total", &topic, &group, "ok"),
        12.0
    );
    assert_eq!(
        counter("caas_kafka_records_processed_total", &topic, &group, "dlq"),
        0.0
    );

    shutdown.cancel();
    within("the consumer to stop", consumer)
        .await
        .expect("consumer task")
        .expect("clean stop");
    delete_topic_with_dlq(&topic).await;
}
