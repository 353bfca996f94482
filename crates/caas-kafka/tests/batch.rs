//! The batch consumer loop against the real broker: batches bounded by size, partition order,
//! offsets stored after the batch, poison records to the DLQ, whole-batch retries, isolation
//! of a record that makes the handler panic, and stopping when retries are exhausted.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caas_kafka::dlq::headers;
use caas_kafka::{
    dlq_topic, run_batch_consumer, BatchConfig, BatchHandler, CancellationToken, ClientError,
    ExhaustedRetries, HandlerError, OutboundRecord, Record, RecordOutcome,
};
use common::*;

/// One handler call: the records and the answer.
type Call = (Vec<Record>, Result<Vec<RecordOutcome>, HandlerError>);
/// The offsets of a batch: (partition, offset) per record.
type Positions = Vec<(i32, i64)>;

type Decide = dyn Fn(&[Record], u32) -> Result<Vec<RecordOutcome>, HandlerError> + Send + Sync;

/// Records every batch it was given (with the attempt number of that exact batch) and answers
/// what `decide` says.
#[derive(Clone)]
struct BatchRecorder {
    batches: Arc<Mutex<Vec<Call>>>,
    attempts: Arc<Mutex<BTreeMap<Positions, u32>>>,
    decide: Arc<Decide>,
}

impl BatchRecorder {
    fn new(
        decide: impl Fn(&[Record], u32) -> Result<Vec<RecordOutcome>, HandlerError>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        Self {
            batches: Arc::default(),
            attempts: Arc::default(),
            decide: Arc::new(decide),
        }
    }

    fn accepting_all() -> Self {
        Self::new(|records, _| Ok(vec![RecordOutcome::Done; records.len()]))
    }

    /// Payloads of records whose batch the handler answered with `Done` for them.
    fn done_payloads(&self) -> Vec<String> {
        let batches = self.batches.lock().unwrap();
        let mut done = Vec::new();
        for (records, outcome) in batches.iter() {
            if let Ok(outcomes) = outcome {
                for (record, outcome) in records.iter().zip(outcomes) {
                    if *outcome == RecordOutcome::Done {
                        done.push(payload(record));
                    }
                }
            }
        }
        done
    }

    fn batch_sizes(&self) -> Vec<usize> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .map(|(records, _)| records.len())
            .collect()
    }
}

impl BatchHandler for BatchRecorder {
    async fn handle_batch(&self, records: &[Record]) -> Result<Vec<RecordOutcome>, HandlerError> {
        let attempt = {
            let positions: Positions = records
                .iter()
                .map(|record| (record.partition, record.offset))
                .collect();
            let mut attempts = self.attempts.lock().unwrap();
            let counter = attempts.entry(positions).or_insert(0);
            *counter += 1;
            *counter
        };
        let outcome = (self.decide)(records, attempt);
        self.batches
            .lock()
            .unwrap()
            .push((records.to_vec(), outcome.clone()));
        outcome
    }
}

fn payload(record: &Record) -> String {
    String::from_utf8_lossy(record.payload.as_deref().unwrap_or_default()).into_owned()
}

async fn produce(topic: &str, payloads: &[String]) -> Vec<caas_kafka::Delivery> {
    producer()
        .send_all(payloads.iter().enumerate().map(|(index, payload)| {
            OutboundRecord::new(topic, format!("key-{}", index % 7), payload.as_str())
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("every record acknowledged")
}

fn batch_config(max_records: usize) -> BatchConfig {
    BatchConfig::new(max_records, Duration::from_millis(50))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_in_bounded_batches_in_partition_order_and_get_committed() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let payloads: Vec<String> = (0..300).map(|index| format!("record-{index}")).collect();
    let deliveries = produce(&topic, &payloads).await;

    let group = unique("group");
    let handler = BatchRecorder::accepting_all();
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_batch_consumer(
        consumer_config(&topic, &group),
        batch_config(40),
        handler.clone(),
        producer(),
        shutdown.clone(),
    ));
    eventually("all 300 records handled", || {
        handler.done_payloads().len() >= payloads.len()
    })
    .await;

    let done = handler.done_payloads();
    let unique_done: HashSet<&String> = done.iter().collect();
    assert_eq!(
        unique_done.len(),
        payloads.len(),
        "every record exactly once"
    );
    assert!(
        handler.batch_sizes().iter().all(|size| *size <= 40),
        "{:?}",
        handler.batch_sizes()
    );
    // Within each partition, offsets only grow across and inside batches.
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    for (records, _) in handler.batches.lock().unwrap().iter() {
        for record in records {
            let previous = last_offset.insert(record.partition, record.offset);
            assert!(
                previous.is_none_or(|previous| previous < record.offset),
                "partition {} went from {previous:?} to {}",
                record.partition,
                record.offset
            );
        }
    }

    let mut highest: BTreeMap<i32, i64> = BTreeMap::new();
    for delivery in &deliveries {
        let entry = highest.entry(delivery.partition).or_insert(delivery.offset);
        *entry = (*entry).max(delivery.offset);
    }
    for (partition, offset) in &highest {
        within("the batch offsets to be committed", async {
            while committed_offset(&group, &topic, *partition).await != Some(offset + 1) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }

    shutdown.cancel();
    within("the consumer to stop", consumer)
        .await
        .expect("consumer task")
        .expect("clean stop");
    delete_topic_with_dlq(&topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_outcomes_go_to_the_dlq_with_their_reason_and_the_rest_is_stored() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let mut payloads: Vec<String> = (0..60).map(|index| format!("good-{index}")).collect();
    payloads[17] = "poison-a".to_string();
    payloads[42] = "poison-b".to_string();
    produce(&topic, &payloads).await;

    let group = unique("group");
    let handler = BatchRecorder::new(|records, _| {
        Ok(records
            .iter()
            .map(|record| {
                let text = payload(record);
                if text.starts_with("poison") {
                    RecordOutcome::poison(format!("{text} is not avro"))
                } else {
                    RecordOutcome::Done
                }
            })
            .collect())
    });
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_batch_consumer(
        consumer_config(&topic, &group),
        batch_config(25),
        handler.clone(),
        producer(),
        shutdown.clone(),
    ));
    let dead = read_records(&dlq_topic(&topic), 2).await;
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|record| {
            record
                .header_str(headers::ERROR)
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec!["poison-a is not avro", "poison-b is not avro"]
    );
    for record in &dead {
        assert_eq!(
            record.header_str(headers::CONSUMER_GROUP),
            Some(group.as_str())
        );
        assert_eq!(
            record.header_str(headers::ORIGINAL_TOPIC),
            Some(topic.as_str())
        );
    }
    eventually("the 58 good records handled", || {
        handler.done_payloads().len() >= 58
    })
    .await;
    shutdown.cancel();
    within("the consumer to stop", consumer)
        .await
        .expect("consumer task")
        .expect("clean stop");
    delete_topic_with_dlq(&topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_error_retries_the_whole_batch() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let payloads: Vec<String> = (0..30).map(|index| format!("record-{index}")).collect();
    produce(&topic, &payloads).await;

    let group = unique("group");
    // Every batch fails twice, then succeeds.
    let handler = BatchRecorder::new(|records, attempt| {
        if attempt <= 2 {
            Err(HandlerError::retryable("store unavailable"))
        } else {
            Ok(vec![RecordOutcome::Done; records.len()])
        }
    });
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_batch_consumer(
        consumer_config(&topic, &group),
        batch_config(100),
        handler.clone(),
        producer(),
        shutdown.clone(),
    ));
    eventually("all records handled after the retries", || {
        handler.done_payloads().len() >= payloads.len()
    })
    .await;
    let batches = handler.batches.lock().unwrap().clone();
    let mut failed_then_done: BTreeMap<Positions, (usize, usize)> = BTreeMap::new();
    for (records, outcome) in &batches {
        let positions = records
            .iter()
            .map(|record| (record.partition, record.offset))
            .collect();
        let entry = failed_then_done.entry(positions).or_default();
        match outcome {
            Ok(_) => entry.1 += 1,
            Err(_) => entry.0 += 1,
        }
    }
    assert!(
        failed_then_done.values().all(|counts| *counts == (2, 1)),
        "each batch: two failed attempts with the same records, then one success: {failed_then_done:?}"
    );
    shutdown.cancel();
    within("the consumer to stop", consumer)
        .await
        .expect("consumer task")
        .expect("clean stop");
    delete_topic_with_dlq(&topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_makes_the_handler_panic_is_isolated_and_dead_lettered_alone() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let mut payloads: Vec<String> = (0..20).map(|index| format!("record-{index}")).collect();
    payloads[9] = "explode".to_string();
    produce(&topic, &payloads).await;

    let group = unique("group");
    let handler = BatchRecorder::new(|records, _| {
        if records.iter().any(|record| payload(record) == "explode") {
            panic!("cannot handle this one");
        }
        Ok(vec![RecordOutcome::Done; records.len()])
    });
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_batch_consumer(
        consumer_config(&topic, &group),
        batch_config(100),
        handler.clone(),
        producer(),
        shutdown.clone(),
    ));
    let dead = read_records(&dlq_topic(&topic), 1).await;
    assert_eq!(payload(&dead[0]), "explode");
    let reason = dead[0].header_str(headers::ERROR).unwrap_or_default();
    assert!(reason.contains("cannot handle this one"), "{reason}");
    eventually("the 19 other records handled", || {
        handler.done_payloads().len() >= 19
    })
    .await;
    assert!(!handler.done_payloads().contains(&"explode".to_string()));
    shutdown.cancel();
    within("the consumer to stop", consumer)
        .await
        .expect("consumer task")
        .expect("clean stop");
    delete_topic_with_dlq(&topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_stop_the_loop_without_storing_and_the_batch_comes_again() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let payloads: Vec<String> = (0..10).map(|index| format!("record-{index}")).collect();
    produce(&topic, &payloads).await;
    let group = unique("group");

    let failing = BatchRecorder::new(|_, _| Err(HandlerError::retryable("database down")));
    let mut config = batch_config(100);
    config.on_retries_exhausted = ExhaustedRetries::Stop;
    let outcome = within(
        "the loop to give up",
        run_batch_consumer(
            consumer_config(&topic, &group),
            config,
            failing.clone(),
            producer(),
            CancellationToken::new(),
        ),
    )
    .await;
    match outcome {
        Err(ClientError::RetriesExhausted {
            attempts, reason, ..
        }) => {
            assert_eq!(attempts, 4, "the first attempt and 3 retries");
            assert!(reason.contains("database down"), "{reason}");
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    for partition in 0..3 {
        assert_eq!(committed_offset(&group, &topic, partition).await, None);
    }

    let handler = BatchRecorder::accepting_all();
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_batch_consumer(
        consumer_config(&topic, &group),
        batch_config(100),
        handler.clone(),
        producer(),
        shutdown.clone(),
    ));
    eventually("the same records handled by the next run", || {
        handler.done_payloads().len() >= payloads.len()
    })
    .await;
    shutdown.cancel();
    within("the consumer to stop", consumer)
        .await
        .expect("consumer task")
        .expect("clean stop");
    delete_topic_with_dlq(&topic).await;
}
