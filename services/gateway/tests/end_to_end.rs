//! End to end through the real services, in-process on the local stack: a signed WhatsApp
//! webhook posted to ingest reaches, as `message.new` with the logger's `seq`, an operator
//! connected to the gateway instance that did not consume it; that operator's colleague answers
//! and the answer is a record on `outbound.commands.v1`.

mod common;

use std::time::Duration;

use caas_events::model::{Content, OutboundCommand};
use caas_logger::domain::docs::inbound_message_id;
use common::{post_whatsapp_text, token, Cluster, EventProducer, TopicTail};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_signed_webhook_reaches_an_operator_on_the_other_instance_and_the_reply_goes_to_kafka() {
    let cluster = Cluster::new().await;
    let logger = cluster.start_logger().await;
    let ingest = cluster.start_ingest().await;
    // The first instance consumes; the second cannot reach Kafka, so its operators only get
    // what the first emits through the Redis adapter.
    let consuming = cluster.start(&[]).await;
    let socket_only = cluster
        .start(&[("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:1")])
        .await;
    // The tenant `demo` owns the WhatsApp number the webhook names (.env.example).
    let customer = format!("49151{:08}", uuid::Uuid::new_v4().as_u128() % 100_000_000);
    let conversation_key = format!("demo:whatsapp:{customer}");
    let watcher = socket_only
        .operator(&token("demo", "op-watch", "operator"))
        .await;
    let replier = consuming
        .operator(&token("demo", "op-reply", "operator"))
        .await;
    for socket in [&watcher, &replier] {
        let ack = socket
            .emit_ack(
                "conversation.join",
                json!({ "conversation_key": conversation_key }),
            )
            .await;
        assert_eq!(ack["ok"], true, "{ack}");
    }

    let wamid = post_whatsapp_text(&ingest, &customer, "Ada", "Hello from WhatsApp").await;
    let id = inbound_message_id("whatsapp", &wamid);
    let delivered = watcher
        .wait_for("message.new", WAIT, |payload| payload["id"] == id.as_str())
        .await
        .expect("the webhook's message reaches the operator on the other instance");
    assert_eq!(
        delivered["seq"], 1,
        "the conversation's first change: {delivered}"
    );
    assert_eq!(delivered["conversation_key"], conversation_key.as_str());
    assert_eq!(delivered["content"]["text"]["body"], "Hello from WhatsApp");
    assert_eq!(delivered["origin"], "customer");
    let listed = watcher
        .wait_for("conversation.updated", WAIT, |payload| {
            payload["conversation_key"] == conversation_key.as_str()
        })
        .await
        .expect("the conversation list is updated");
    assert_eq!(listed["customer_name"], "Ada");
    assert_eq!(listed["unread_count"], 1);
    assert_eq!(listed["event_seq"], 1);
    // (The stack's chatbot may already have answered: the snapshot is at least as new.)
    assert!(listed["seq"].as_i64().unwrap() >= 1, "{listed}");

    // The colleague on the consuming instance answers; the command is on Kafka.
    let commands = TopicTail::new(caas_events::topics::OUTBOUND_COMMANDS).await;
    let ack = replier
        .emit_ack(
            "message.send",
            json!({ "conversation_key": conversation_key, "text": "Hi Ada, how can I help?" }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let command_id = ack["id"].as_str().unwrap().to_string();
    let producer = EventProducer::new();
    let command = commands
        .find(producer.codec(), WAIT, |command: &OutboundCommand| {
            command.command_id == command_id
        })
        .await
        .expect("the reply is on outbound.commands.v1");
    assert_eq!(command.origin, caas_events::model::Origin::Operator);
    assert_eq!(command.operator_id.as_deref(), Some("op-reply"));
    assert_eq!(command.to, customer);
    assert!(
        matches!(command.content, Content::Text(ref text) if text.body == "Hi Ada, how can I help?")
    );
    // Both operators see the reply in the thread, with the logger's seq.
    let reply_id = format!("out:demo:{command_id}");
    for socket in [&watcher, &replier] {
        let reply = socket
            .wait_for("message.new", WAIT, |payload| {
                payload["id"] == reply_id.as_str()
            })
            .await
            .expect("the reply is fanned out");
        assert!(reply["seq"].as_i64().unwrap() >= 2, "{reply}");
    }

    watcher.drop_connection();
    replier.drop_connection();
    socket_only.stop().await;
    consuming.stop().await;
    ingest.stop().await;
    logger.stop().await;
    cluster.cleanup().await;
}
