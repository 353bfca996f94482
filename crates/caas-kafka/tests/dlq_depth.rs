//! A running consumer reports how many records of its topic's DLQ wait for a replay
//! (`caas_kafka_dlq_pending_records`), against the real broker.

mod common;

use caas_kafka::{dlq_topic, run_consumer, CancellationToken, OutboundRecord};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_reports_the_dead_letters_of_its_topic_not_replayed_yet() {
    init_logs();
    let topic = create_topic_with_dlq().await;
    let dlq = dlq_topic(&topic);
    let producer = producer();
    for index in 0..2 {
        producer
            .send(OutboundRecord::new(
                dlq.as_str(),
                "acme:whatsapp:1",
                format!("dead-{index}"),
            ))
            .await
            .expect("dead letter produced");
    }
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_consumer(
        consumer_config(&topic, &unique("group")),
        Recorder::accepting_all(),
        producer.clone(),
        shutdown.clone(),
    ));
    // The first measurement is taken when the loop starts.
    eventually("two dead letters reported as pending", || {
        metric_value("caas_kafka_dlq_pending_records", &[("topic", &dlq)]) == Some(2.0)
    })
    .await;
    shutdown.cancel();
    within("the consumer stops", consumer)
        .await
        .unwrap()
        .expect("consumer ended cleanly");
    delete_topic_with_dlq(&topic).await;
}
