//! The local stack is real: Kafka, the schema registry, MongoDB and Redis each do real work.

use std::time::Duration;

use caas_stack_tests::{create_topic, delete_topic, stack, unique};
use futures::StreamExt;
use mongodb::bson::{doc, Document};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

#[tokio::test]
async fn kafka_round_trips_records_through_the_real_broker() {
    let config = stack();
    let topic = unique("stack-test");
    create_topic(&config.kafka_bootstrap, &topic, 3).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka_bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let sent: Vec<String> = (0..20).map(|index| format!("record-{index}")).collect();
    for payload in &sent {
        producer
            .send(
                FutureRecord::to(&topic)
                    .key("acme:whatsapp:1")
                    .payload(payload),
                Duration::from_secs(10),
            )
            .await
            .expect("the broker acknowledged the record");
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka_bootstrap)
        .set("group.id", unique("stack-test-group"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut received = Vec::new();
    let mut stream = consumer.stream();
    while received.len() < sent.len() {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("records arrive within 30 s")
            .expect("stream open")
            .expect("no consumer error");
        assert_eq!(message.key(), Some("acme:whatsapp:1".as_bytes()));
        received.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
    }
    // One key, so one partition, so the order is the order of sending.
    assert_eq!(received, sent);
    drop(stream);
    drop(consumer);
    delete_topic(&config.kafka_bootstrap, &topic).await;
}

#[tokio::test]
async fn the_registry_stores_a_schema_and_serves_it_back_by_id() {
    let config = stack();
    let subject = format!("{}-value", unique("stack-test"));
    let schema = r#"{"type":"record","name":"Probe","namespace":"caas.test","fields":[{"name":"id","type":"string"}]}"#;
    let client = reqwest::Client::new();
    let registered: serde_json::Value = client
        .post(format!(
            "{}/subjects/{subject}/versions",
            config.schema_registry_url
        ))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({ "schema": schema }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = registered["id"]
        .as_i64()
        .expect("the registry returns an id");

    let fetched: serde_json::Value = client
        .get(format!("{}/schemas/ids/{id}", config.schema_registry_url))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let fetched_schema: serde_json::Value =
        serde_json::from_str(fetched["schema"].as_str().unwrap()).unwrap();
    let original: serde_json::Value = serde_json::from_str(schema).unwrap();
    assert_eq!(fetched_schema, original);

    for url in [
        format!("{}/subjects/{subject}", config.schema_registry_url),
        format!(
            "{}/subjects/{subject}?permanent=true",
            config.schema_registry_url
        ),
    ] {
        client.delete(url).send().await.unwrap();
    }
}

#[tokio::test]
async fn mongodb_writes_and_reads_a_document() {
    let config = stack();
    let client = caas_runtime::probe::mongodb_client(&config.mongodb_uri, Duration::from_secs(5))
        .await
        .unwrap();
    let collection = client
        .database("caas_stack_tests")
        .collection::<Document>(&unique("probe"));
    let id = unique("doc");
    collection
        .insert_one(doc! { "_id": &id, "tenant": "acme", "count": 3 })
        .await
        .unwrap();
    collection
        .update_one(doc! { "_id": &id }, doc! { "$inc": { "count": 2 } })
        .await
        .unwrap();
    let stored = collection
        .find_one(doc! { "_id": &id })
        .await
        .unwrap()
        .expect("the document is there");
    assert_eq!(stored.get_str("tenant").unwrap(), "acme");
    assert_eq!(stored.get_i32("count").unwrap(), 5);
    collection.drop().await.unwrap();
}

#[tokio::test]
async fn redis_sets_and_gets_a_key_with_expiry() {
    let config = stack();
    let mut connection = caas_runtime::probe::redis_connection(config.redis_url.expose())
        .await
        .unwrap();
    let key = unique("caas:stack-test");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("online")
        .arg("EX")
        .arg(60)
        .query_async(&mut connection)
        .await
        .unwrap();
    let value: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(value, "online");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
}
