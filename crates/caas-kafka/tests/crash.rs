//! What a consumer crash and a graceful shutdown do to delivery, against the real broker.
//!
//! The crash is real: a child process (this test binary, running [`crash_child`]) consumes,
//! prints each side effect, hangs in the handler of one record, and is killed with SIGKILL, so
//! no shutdown code runs at all.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::process::Stdio;

use caas_kafka::{run_consumer, CancellationToken, Handler, HandlerError, OutboundRecord, Record};
use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};

const CHILD_TOPIC: &str = "CAAS_KAFKA_TEST_CRASH_TOPIC";
const CHILD_GROUP: &str = "CAAS_KAFKA_TEST_CRASH_GROUP";
const SIDE_EFFECT: &str = "SIDE_EFFECT ";
const HANG_ON: &str = "crash-here";

/// Prints the side effect, then never returns for [`HANG_ON`].
struct PrintThenMaybeHang;

impl Handler for PrintThenMaybeHang {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let payload =
            String::from_utf8_lossy(record.payload.as_deref().unwrap_or_default()).into_owned();
        let mut stdout = std::io::stdout();
        let _ = writeln!(
            stdout,
            "{SIDE_EFFECT}{} {} {payload}",
            record.partition, record.offset
        );
        let _ = stdout.flush();
        if payload == HANG_ON {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

/// The consumer process the crash test kills; does nothing unless started by that test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started as a child process by a_consumer_killed_after_its_side_effect_but_before_the_commit_sees_the_record_again"]
async fn crash_child() {
    let (Ok(topic), Ok(group)) = (std::env::var(CHILD_TOPIC), std::env::var(CHILD_GROUP)) else {
        return;
    };
    run_consumer(
        consumer_config(&topic, &group),
        PrintThenMaybeHang,
        producer(),
        CancellationToken::new(),
    )
    .await
    .expect("child consumer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_after_its_side_effect_but_before_the_commit_sees_the_record_again() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let producer = producer();
    let payloads = ["before-0", "before-1", "before-2", HANG_ON, "after-4"];
    let deliveries: Vec<_> = producer
        .send_all(
            payloads
                .iter()
                .map(|payload| OutboundRecord::new(topic.as_str(), "acme:whatsapp:1", *payload)),
        )
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("records acknowledged");
    let partition = deliveries[0].partition;
    let crash_offset = deliveries[3].offset;
    let group = unique("group");

    let mut child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_TOPIC, &topic)
        .env(CHILD_GROUP, &group)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the child consumer");
    let mut lines = BufReader::new(child.stdout.take().expect("child stdout")).lines();
    let mut side_effects = Vec::new();
    within("the child's side effect on the crash record", async {
        while let Some(line) = lines.next_line().await.expect("read child output") {
            if let Some(effect) = line.strip_prefix(SIDE_EFFECT) {
                side_effects.push(effect.to_string());
                if effect.ends_with(HANG_ON) {
                    break;
                }
            }
        }
    })
    .await;
    assert_eq!(
        side_effects.last().map(String::as_str),
        Some(format!("{partition} {crash_offset} {HANG_ON}").as_str()),
        "the child performed the side effect: {side_effects:?}"
    );
    // The records before it were finished, stored and committed; the crash record was not.
    within(
        "the child's commit of the records before the crash",
        async {
            while committed_offset(&group, &topic, partition).await != Some(crash_offset) {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        },
    )
    .await;

    child.kill().await.expect("SIGKILL the child");

    let handler = Recorder::accepting_all();
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_consumer(
        consumer_config(&topic, &group),
        handler.clone(),
        producer.clone(),
        shutdown.clone(),
    ));
    eventually(
        "the new member to handle the record after the crash",
        || {
            handler
                .succeeded()
                .iter()
                .any(|record| record.payload.as_deref() == Some(b"after-4".as_slice()))
        },
    )
    .await;
    let seen: Vec<(i64, String)> = handler
        .calls()
        .iter()
        .map(|call| (call.record.offset, call.payload_text()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (crash_offset, HANG_ON.to_string()),
            (deliveries[4].offset, "after-4".to_string()),
        ],
        "the record whose side effect happened before the kill is delivered again; \
         the committed ones are not"
    );

    shutdown.cancel();
    within("the consumer to stop", consumer)
        .await
        .expect("consumer task")
        .expect("clean stop");
    delete_topic_with_dlq(&topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_graceful_shutdown_nothing_is_redelivered() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let producer = producer();
    let first_batch: Vec<_> = producer
        .send_all((0..30).map(|index| {
            OutboundRecord::new(
                topic.as_str(),
                format!("key-{}", index % 10),
                format!("first-{index}"),
            )
        }))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("first batch acknowledged");
    let group = unique("group");

    let first_handler = Recorder::accepting_all();
    let shutdown = CancellationToken::new();
    let first_member = tokio::spawn(run_consumer(
        consumer_config(&topic, &group),
        first_handler.clone(),
        producer.clone(),
        shutdown.clone(),
    ));
    eventually("the first member to handle the first batch", || {
        first_handler.succeeded().len() >= first_batch.len()
    })
    .await;
    shutdown.cancel();
    within("the first member to stop", first_member)
        .await
        .expect("consumer task")
        .expect("clean stop");

    // One sentinel per partition that held first-batch records: a redelivered record would
    // come before its partition's sentinel.
    let sentinels: Vec<_> = producer
        .send_all((0..30).map(|index| {
            OutboundRecord::new(
                topic.as_str(),
                format!("sentinel-{index}"),
                format!("sentinel-{index}"),
            )
        }))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("sentinels acknowledged");
    let first_partitions: HashSet<i32> = first_batch
        .iter()
        .map(|delivery| delivery.partition)
        .collect();
    let sentinel_partitions: HashSet<i32> = sentinels
        .iter()
        .map(|delivery| delivery.partition)
        .collect();
    assert!(
        sentinel_partitions.is_superset(&first_partitions),
        "test precondition: a sentinel in every partition ({sentinel_partitions:?} vs {first_partitions:?})"
    );

    let second_handler = Recorder::accepting_all();
    let shutdown = CancellationToken::new();
    let second_member = tokio::spawn(run_consumer(
        consumer_config(&topic, &group),
        second_handler.clone(),
        producer.clone(),
        shutdown.clone(),
    ));
    eventually("the second member to handle every sentinel", || {
        second_handler.succeeded().len() >= sentinels.len()
    })
    .await;
    let payloads: Vec<String> = second_handler
        .calls()
        .iter()
        .map(|call| call.payload_text())
        .collect();
    assert!(
        payloads
            .iter()
            .all(|payload| payload.starts_with("sentinel-")),
        "nothing of the first batch is redelivered after a graceful shutdown: {payloads:?}"
    );
    assert_eq!(payloads.len(), sentinels.len());

    shutdown.cancel();
    within("the second member to stop", second_member)
        .await
        .expect("consumer task")
        .expect("clean stop");
    delete_topic_with_dlq(&topic).await;
}
