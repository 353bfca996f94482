//! `caas-interop`: our side of the interoperability tests in `tests/interop/` (Python
//! `confluent-kafka`, software we didn't write).
//!
//! - `caas-interop produce <marker>`: encodes an `InboundMessage` whose text body is `<marker>`
//!   with our codec (schema id from the registry) and produces it to `inbound.messages.v1`;
//!   prints `{"partition":..,"offset":..,"event_id":..}`.
//! - `caas-interop consume <partition> <offset>`: reads the record at that position of
//!   `inbound.messages.v1`, decodes it with our codec and prints it as JSON.

use std::time::Duration;

use anyhow::Context;
use caas_events::model::{Channel, Content, InboundMessage, Text};
use caas_events::{keys, topics, Codec, Event};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let config = caas_stack_tests::stack();
    let codec = Codec::new(config.schema_registry_url.clone())?;
    match arguments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["produce", marker] => produce(&config.kafka_bootstrap, &codec, marker).await,
        ["consume", partition, offset] => {
            consume(
                &config.kafka_bootstrap,
                &codec,
                partition.parse()?,
                offset.parse()?,
            )
            .await
        }
        _ => anyhow::bail!("usage: caas-interop produce <marker> | consume <partition> <offset>"),
    }
}

async fn produce(bootstrap: &str, codec: &Codec, marker: &str) -> anyhow::Result<()> {
    let customer = "4915100000000";
    let message = InboundMessage {
        event_id: keys::deterministic_event_id(&["interop", marker]),
        tenant_id: "interop".into(),
        conversation_key: keys::conversation_key("interop", Channel::Whatsapp, customer),
        channel: Channel::Whatsapp,
        occurred_at: 1_739_321_024_000,
        recorded_at: 1_739_321_024_500,
        source: "caas-interop".into(),
        trace_parent: None,
        provider_message_id: format!("wamid.{marker}"),
        customer_id: customer.into(),
        customer_display_name: Some("Interop Ümlaut".into()),
        business_id: Some("100000000000001".into()),
        reply_to: None,
        content: Content::Text(Text {
            body: marker.into(),
            preview_url: false,
        }),
    };
    let payload = codec.encode(&message).await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .create()?;
    let delivery = producer
        .send(
            FutureRecord::to(InboundMessage::TOPIC)
                .key(message.key())
                .payload(&payload),
            Duration::from_secs(15),
        )
        .await
        .map_err(|(error, _)| error)
        .context("the broker did not acknowledge the record")?;
    println!(
        "{}",
        serde_json::json!({
            "partition": delivery.partition,
            "offset": delivery.offset,
            "event_id": message.event_id,
        })
    );
    Ok(())
}

async fn consume(
    bootstrap: &str,
    codec: &Codec,
    partition: i32,
    offset: i64,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "caas-interop")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topics::INBOUND_MESSAGES, partition, Offset::Offset(offset))?;
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        let Some(result) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let record = result?;
        let payload = record.payload().context("the record has no value")?;
        let message: InboundMessage = codec.decode(payload).await?;
        println!("{}", serde_json::to_string(&message)?);
        return Ok(());
    }
    anyhow::bail!(
        "no record at {}[{partition}]@{offset} within 20 s",
        topics::INBOUND_MESSAGES
    )
}
