//! Against the real schema registry that `make up` starts (`CAAS_SCHEMA_REGISTRY_URL`, default
//! `http://127.0.0.1:8081/apis/ccompat/v7`): every event type registers under `<topic>-value`,
//! encodes, and decodes back equal through a codec that knows nothing yet; an unknown schema id
//! is poison; an unreachable registry is not.

mod common;

use std::fmt::Debug;

use caas_events::{topics, wire, Codec, CodecOptions, DecodeError, Event, RegistryClient};

fn registry_url() -> String {
    std::env::var("CAAS_SCHEMA_REGISTRY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".to_string())
}

async fn round_trip<E: Event + PartialEq + Debug>(producer: &Codec, event: E) {
    let bytes = producer
        .encode(&event)
        .await
        .unwrap_or_else(|error| panic!("encode {}: {error}", E::RECORD_NAME));
    let id = producer.schema_id::<E>().await.expect("cached id");
    assert_eq!(wire::schema_id(&bytes).expect("framed"), id);

    // The schema is there under the topic's subject, with exactly our text's id.
    let looked_up = producer
        .registry()
        .lookup(&topics::value_subject(E::TOPIC), E::SCHEMA_JSON)
        .await
        .expect("lookup");
    assert_eq!(looked_up, Some(id), "{} registered", E::TOPIC);

    // A consumer with cold caches fetches the writer schema by id.
    let consumer = Codec::new(registry_url()).expect("codec");
    let decoded: E = consumer
        .decode(&bytes)
        .await
        .unwrap_or_else(|error| panic!("decode {}: {error}", E::RECORD_NAME));
    assert_eq!(decoded, event);
    // And again from its cache.
    let again: E = consumer.decode(&bytes).await.expect("cached decode");
    assert_eq!(again, event);
}

#[tokio::test]
async fn every_event_type_round_trips_through_the_registry() {
    let producer = Codec::new(registry_url()).expect("codec");
    for content in common::every_content() {
        round_trip(&producer, common::inbound_message(content.clone())).await;
        round_trip(&producer, common::outbound_command(content)).await;
    }
    round_trip(&producer, common::inbound_status()).await;
    round_trip(&producer, common::outbound_result()).await;
    round_trip(&producer, common::conversation_event()).await;
    round_trip(&producer, common::presence_event()).await;
    round_trip(&producer, common::presence_update()).await;
    round_trip(&producer, common::campaign_command()).await;
    round_trip(&producer, common::campaign_event()).await;
}

#[tokio::test]
async fn registering_twice_gives_the_same_id() {
    let first = Codec::new(registry_url()).expect("codec");
    let second = Codec::new(registry_url()).expect("codec");
    let first_id = first
        .schema_id::<caas_events::model::InboundMessage>()
        .await
        .expect("id");
    let second_id = second
        .schema_id::<caas_events::model::InboundMessage>()
        .await
        .expect("id");
    assert_eq!(first_id, second_id);
}

#[tokio::test]
async fn a_codec_without_auto_register_finds_registered_schemas() {
    let registering = Codec::new(registry_url()).expect("codec");
    let expected = registering
        .schema_id::<caas_events::model::CampaignEvent>()
        .await
        .expect("id");
    let client = RegistryClient::new(registry_url()).expect("client");
    let lookup_only = Codec::with_registry(
        client,
        CodecOptions {
            auto_register: false,
            ..CodecOptions::default()
        },
    );
    let id = lookup_only
        .schema_id::<caas_events::model::CampaignEvent>()
        .await
        .expect("found without registering");
    assert_eq!(id, expected);
}

#[tokio::test]
async fn an_unknown_schema_id_is_poison() {
    let codec = Codec::new(registry_url()).expect("codec");
    // Ids are small counters in practice; this one is far beyond any registry's.
    let unknown_id: u32 = 2_000_000_017;
    let bytes = wire::encode(unknown_id, &common::inbound_text()).expect("encodes");
    let error = codec
        .decode::<caas_events::model::InboundMessage>(&bytes)
        .await
        .expect_err("unknown id");
    assert!(
        matches!(error, DecodeError::UnknownSchemaId { id } if id == unknown_id),
        "{error}"
    );
    assert!(error.is_poison());
    // Remembered for a while: the second time does not need the registry to say so again.
    let error = codec
        .decode::<caas_events::model::InboundMessage>(&bytes)
        .await
        .expect_err("still unknown");
    assert!(error.is_poison(), "{error}");
}

#[tokio::test]
async fn bytes_that_are_not_avro_are_poison_before_any_registry_call() {
    let codec = Codec::new("http://127.0.0.1:1/apis/ccompat/v7").expect("codec");
    let error = codec
        .decode::<caas_events::model::InboundMessage>(br#"{"not":"avro"}"#)
        .await
        .expect_err("json");
    assert!(error.is_poison(), "{error}");
}

#[tokio::test]
async fn an_unreachable_registry_is_retryable() {
    // Port 1 refuses connections: nothing listens there.
    let codec = Codec::new("http://127.0.0.1:1/apis/ccompat/v7").expect("codec");
    let bytes = wire::encode(1, &common::inbound_text()).expect("encodes");
    let error = codec
        .decode::<caas_events::model::InboundMessage>(&bytes)
        .await
        .expect_err("no registry");
    assert!(matches!(error, DecodeError::Registry { .. }), "{error}");
    assert!(!error.is_poison());

    let error = codec
        .encode(&common::inbound_text())
        .await
        .expect_err("no registry");
    assert!(error.is_retryable(), "{error}");
}
