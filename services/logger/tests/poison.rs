//! Records the logger can never store (not Avro, an unknown schema id, a key of another
//! tenant) go to the DLQ with the reason, and the records after them are still stored.

mod common;

use caas_events::topics;
use caas_kafka::dlq::headers;
use caas_kafka::{dlq_topic, OutboundRecord};
use caas_logger::domain::event::LoggedEvent;
use common::*;
use mongodb::bson::doc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dlq_with_a_reason_and_later_records_are_stored() {
    let world = World::new();
    world.create_topics().await;
    let (address, shutdown, task) = start_in_process(world.config(50)).await;

    let producer = producer();
    let codec = codec();
    let inbound_topic = world.topic(topics::INBOUND_MESSAGES);
    let key = format!("{}:whatsapp:4900", world.tenant);
    let scenario = world.scenario(1, 3, 2, 3);
    // A valid record whose key belongs to another tenant breaks the contract.
    let mut foreign = scenario
        .events
        .iter()
        .find_map(|event| match event {
            LoggedEvent::InboundMessage(message) => Some(message.clone()),
            _ => None,
        })
        .unwrap();
    foreign.event_id = "foreign-tenant-event".to_string();
    foreign.conversation_key = "someone-else:whatsapp:4900".to_string();
    let foreign_bytes = codec.encode(&foreign).await.unwrap();

    let poison = vec![
        OutboundRecord::new(
            inbound_topic.as_str(),
            key.as_str(),
            b"this is not avro".to_vec(),
        ),
        OutboundRecord::new(
            inbound_topic.as_str(),
            key.as_str(),
            vec![0, 0x7f, 0xff, 0xff, 0xf0, 2, 4, 6],
        ),
        OutboundRecord::new(inbound_topic.as_str(), key.as_str(), foreign_bytes),
    ];
    for result in producer.send_all(poison).await {
        result.expect("poison produced");
    }
    world.produce(&producer, &codec, &scenario.events).await;

    let dead = read_records(&dlq_topic(&inbound_topic), 3).await;
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
    assert!(
        reasons[0].contains("does not belong to tenant"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("not Confluent-framed"), "{reasons:?}");
    assert!(
        reasons[2].contains("schema id 2147483632") && reasons[2].contains("unknown_schema_id"),
        "{reasons:?}"
    );
    for record in &dead {
        assert_eq!(
            record.header_str(headers::CONSUMER_GROUP),
            Some(world.group.as_str())
        );
    }

    let db = world.db().await;
    let total = scenario.expected.event_ids.len() as u64;
    eventually("the valid records stored after the poison ones", || {
        let db = db.clone();
        async move { (count(&db, "events", doc! {}).await >= total).then_some(()) }
    })
    .await;
    assert_eq!(count(&db, "events", doc! {}).await, total);
    assert_eq!(
        count(&db, "events", doc! { "_id": "foreign-tenant-event" }).await,
        0
    );

    let metrics = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("caas_logger_rejected_total"), "{metrics}");
    assert!(metrics.contains("caas_kafka_batch_records"), "{metrics}");

    stop_in_process(shutdown, task).await;
    world.clean_up().await;
}
