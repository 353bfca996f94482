//! End to end on the local stack, as far as it goes without the operator dashboard: a customer
//! writes "hi" by signed webhook (the simulator playing the customer) → ingest →
//! `inbound.messages.v1` → chatbot → `outbound.commands.v1` → sender → the simulator receives
//! the menu; tapping buttons walks the flow; the handoff step sends its text and hands the
//! conversation to a human; the simulator's delivered and read webhooks come back through
//! ingest as `inbound.statuses.v1`. Ingest, chatbot, sender and simulator run in-process with
//! their own tenant; Kafka, the registry, MongoDB and Redis are the stack's.

use std::net::SocketAddr;
use std::time::Duration;

use caas_events::model::{ConversationEvent, ConversationEventKind, InboundStatus, MessageStatus};
use caas_events::{topics, Codec};
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::Env;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);
const APP_SECRET: &str = "e2e-whatsapp-app-secret";
const CLIENT_TOKEN: &str = "e2e-rbm-client-token";

fn env_var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

fn environment(overrides: &[(&str, String)]) -> Env {
    let mut pairs: std::collections::HashMap<String, String> = std::env::vars()
        .filter(|(key, _)| key.starts_with("CAAS_"))
        .collect();
    for (key, value) in overrides {
        pairs.insert(key.to_string(), value.clone());
    }
    let pairs: Vec<(String, String)> = pairs.into_iter().collect();
    Env::from_pairs(
        pairs
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str())),
    )
}

async fn bound(start: impl FnOnce(tokio::sync::oneshot::Sender<SocketAddr>)) -> SocketAddr {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    start(sender);
    tokio::time::timeout(Duration::from_secs(30), receiver)
        .await
        .unwrap()
        .unwrap()
}

/// Reads topics from their current end.
fn reader(topic_names: &[&str]) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            env_var("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        )
        .set("group.id", format!("e2e-reader-{}", short_id()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for topic in topic_names {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        for partition in 0..metadata.topics()[0].partitions().len() as i32 {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .unwrap();
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(high))
                .unwrap();
        }
    }
    consumer.assign(&assignment).unwrap();
    consumer
}

async fn accepted_at_simulator(base: &str, sender: &str, customer: &str) -> Vec<Value> {
    let body: Value = reqwest::Client::new()
        .get(format!("{base}/_sim/requests"))
        .query(&[
            ("sender", sender),
            ("to", customer),
            ("outcome", "accepted"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["requests"].as_array().cloned().unwrap_or_default()
}

/// Wait until the simulator has accepted `count` messages to `customer`; returns them all.
async fn wait_for_sends(base: &str, sender: &str, customer: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let requests = accepted_at_simulator(base, sender, customer).await;
        if requests.len() >= count {
            return requests;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {count} sends to {customer}, the simulator has {requests:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn customer_sends(base: &str, business_id: &str, customer: &str, message: Value) {
    let report: Value = reqwest::Client::new()
        .post(format!("{base}/_sim/customers/send"))
        .json(&json!({ "channel": "whatsapp", "business_id": business_id, "customers": [customer], "customer_name": "Kim", "messages": [message] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        report["sent"],
        json!(1),
        "ingest refused the customer's webhook: {report}"
    );
}

#[tokio::test]
async fn hi_by_webhook_gets_the_menu_buttons_walk_the_flow_handoff_and_ticks_come_back() {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set(
            "bootstrap.servers",
            env_var("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        )
        .create()
        .unwrap();
    let names = [
        topics::INBOUND_MESSAGES,
        topics::INBOUND_STATUSES,
        topics::OUTBOUND_COMMANDS,
        topics::OUTBOUND_RESULTS,
        topics::CONVERSATION_EVENTS,
        topics::PRESENCE_EVENTS,
    ];
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| NewTopic::new(name, 12, TopicReplication::Fixed(1)))
        .collect();
    let _ = admin.create_topics(&new_topics, &AdminOptions::new()).await;

    let tenant = format!("e2e{}", short_id());
    let phone_number_id = format!("7{:014}", fastrand_digits());
    let agent_id = format!("{tenant}-agent");
    let customer = "4917700000001";
    let tenants = format!("{tenant}:whatsapp={phone_number_id},rcs={agent_id}");
    let flows_dir = std::env::temp_dir().join(format!("caas-e2e-flows-{}", short_id()));
    std::fs::create_dir_all(&flows_dir).unwrap();
    std::fs::write(
        flows_dir.join(format!("{tenant}.yaml")),
        include_str!("../flows/demo.yaml").replace("tenant: demo", &format!("tenant: {tenant}")),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let statuses = reader(&[topics::INBOUND_STATUSES, topics::CONVERSATION_EVENTS]);
    let codec = Codec::new(env_var(
        "CAAS_SCHEMA_REGISTRY_URL",
        "http://127.0.0.1:8081/apis/ccompat/v7",
    ))
    .unwrap();

    // ingest, on its own port, knowing only this test's tenant.
    let ingest_config = caas_ingest::Config::from_env(&environment(&[
        ("CAAS_INGEST_ADDR", "127.0.0.1:0".to_string()),
        ("CAAS_INGEST_TENANTS", tenants.clone()),
        ("CAAS_WHATSAPP_APP_SECRET", APP_SECRET.to_string()),
        ("CAAS_RBM_CLIENT_TOKEN", CLIENT_TOKEN.to_string()),
    ]))
    .unwrap();
    let token = shutdown.clone();
    let ingest = bound(move |sender| {
        tokio::spawn(caas_ingest::run(ingest_config, token, move |address| {
            let _ = sender.send(address);
        }));
    })
    .await;

    // The simulator, sending its webhooks to that ingest.
    let simulator_config = caas_simulator::Config::from_env(&Env::from_pairs([
        ("CAAS_SIMULATOR_ADDR", "127.0.0.1:0"),
        (
            "CAAS_SIMULATOR_WHATSAPP_WEBHOOK_URL",
            format!("http://{ingest}/webhooks/whatsapp").as_str(),
        ),
        (
            "CAAS_SIMULATOR_RCS_WEBHOOK_URL",
            format!("http://{ingest}/webhooks/rcs").as_str(),
        ),
        ("CAAS_WHATSAPP_APP_SECRET", APP_SECRET),
        ("CAAS_RBM_CLIENT_TOKEN", CLIENT_TOKEN),
        ("CAAS_SIMULATOR_SENT_AFTER_MS", "100"),
        ("CAAS_SIMULATOR_DELIVERED_AFTER_MS", "300"),
        ("CAAS_SIMULATOR_READ_AFTER_MS", "600"),
    ]))
    .unwrap();
    let token = shutdown.clone();
    let simulator = bound(move |sender| {
        tokio::spawn(caas_simulator::run(
            simulator_config,
            token,
            move |address| {
                let _ = sender.send(address);
            },
        ));
    })
    .await;
    let simulator = format!("http://{simulator}");

    let chatbot_config = caas_chatbot::Config::from_env(&environment(&[
        ("CAAS_CHATBOT_OPS_ADDR", "127.0.0.1:0".to_string()),
        (
            "CAAS_CHATBOT_GROUP_ID",
            format!("e2e-chatbot-{}", short_id()),
        ),
        ("CAAS_CHATBOT_FLOWS_DIR", flows_dir.display().to_string()),
    ]))
    .unwrap();
    let token = shutdown.clone();
    let chatbot_task = tokio::spawn(caas_chatbot::run(chatbot_config, token, |_| {}));

    let sender_config = caas_sender::Config::from_env(&environment(&[
        ("CAAS_SENDER_OPS_ADDR", "127.0.0.1:0".to_string()),
        ("CAAS_SENDER_GROUP_ID", format!("e2e-sender-{}", short_id())),
        ("CAAS_SENDER_TENANTS", tenants.clone()),
        ("CAAS_SENDER_UNKNOWN_TENANTS", "skip".to_string()),
        ("CAAS_SENDER_WHATSAPP_BASE_URL", simulator.clone()),
        ("CAAS_SENDER_RBM_BASE_URL", simulator.clone()),
        ("CAAS_SENDER_WHATSAPP_TOKENS", "*=e2e-token".to_string()),
        ("CAAS_SENDER_RBM_TOKEN", "e2e-token".to_string()),
    ]))
    .unwrap();
    let token = shutdown.clone();
    let sender_task = tokio::spawn(caas_sender::run(sender_config, token, |_| {}));

    // "hi" → the menu as reply buttons.
    customer_sends(
        &simulator,
        &phone_number_id,
        customer,
        json!({ "text": "hi" }),
    )
    .await;
    let sent = wait_for_sends(&simulator, &phone_number_id, customer, 1).await;
    let menu = &sent[0]["body"];
    assert_eq!(menu["type"], json!("interactive"), "{menu}");
    assert_eq!(menu["interactive"]["type"], json!("button"));
    assert!(
        menu["interactive"]["body"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Hi Kim!"),
        "{menu}"
    );
    let buttons: Vec<&str> = menu["interactive"]["action"]["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|button| button["reply"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(buttons, ["track", "hours", "human"]);
    let menu_id = sent[0]["provider_message_id"].as_str().unwrap().to_string();

    // A button walks the flow.
    customer_sends(
        &simulator,
        &phone_number_id,
        customer,
        json!({ "button": { "id": "hours", "title": "Opening hours" } }),
    )
    .await;
    let sent = wait_for_sends(&simulator, &phone_number_id, customer, 3).await;
    assert_eq!(
        sent[1]["body"]["text"]["body"],
        json!("We are open Monday to Friday, 9:00 to 18:00.")
    );
    assert_eq!(
        sent[2]["body"]["interactive"]["action"]["buttons"][0]["reply"]["id"],
        json!("main_menu")
    );

    // The handoff step: its text reaches the customer and the conversation goes to a human.
    customer_sends(
        &simulator,
        &phone_number_id,
        customer,
        json!({ "button": { "id": "human", "title": "Talk to a person" } }),
    )
    .await;
    let sent = wait_for_sends(&simulator, &phone_number_id, customer, 4).await;
    assert!(
        sent[3]["body"]["text"]["body"]
            .as_str()
            .unwrap()
            .contains("colleague"),
        "{}",
        sent[3]
    );

    // Back through ingest: the handoff event, and delivered / read for the menu.
    let mut handed_off = false;
    let mut menu_statuses = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(handed_off && menu_statuses.contains("delivered") && menu_statuses.contains("read")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "handoff seen: {handed_off}; menu statuses: {menu_statuses:?}"
        );
        let Ok(received) = tokio::time::timeout(Duration::from_secs(1), statuses.recv()).await
        else {
            continue;
        };
        let message = received.unwrap();
        let Some(payload) = message.payload() else {
            continue;
        };
        if message.topic() == topics::INBOUND_STATUSES {
            if let Ok(status) = codec.decode::<InboundStatus>(payload).await {
                if status.tenant_id == tenant && status.provider_message_id == menu_id {
                    menu_statuses.insert(match status.status {
                        MessageStatus::Sent => "sent",
                        MessageStatus::Delivered => "delivered",
                        MessageStatus::Read => "read",
                        MessageStatus::Failed => "failed",
                    });
                }
            }
        } else if let Ok(event) = codec.decode::<ConversationEvent>(payload).await {
            if event.tenant_id == tenant && event.kind == ConversationEventKind::HandoffToHuman {
                assert!(event.conversation_key.ends_with(customer));
                handed_off = true;
            }
        }
    }

    // The bot is silent now: a further message gets no reply.
    customer_sends(
        &simulator,
        &phone_number_id,
        customer,
        json!({ "text": "hello?" }),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        accepted_at_simulator(&simulator, &phone_number_id, customer)
            .await
            .len(),
        4
    );

    shutdown.cancel();
    for task in [chatbot_task, sender_task] {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    let _ = std::fs::remove_dir_all(&flows_dir);
}

fn fastrand_digits() -> u64 {
    u64::from_str_radix(&uuid::Uuid::new_v4().simple().to_string()[..12], 16).unwrap()
        % 100_000_000_000_000
}
