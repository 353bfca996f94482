//! Helpers for the sender's tests against the real local stack (Kafka, registry, MongoDB,
//! Redis) and an in-process provider simulator. Every test uses its own tenant, sending
//! numbers and consumer group; the sender runs with `CAAS_SENDER_UNKNOWN_TENANTS=skip`, so
//! it leaves every other command on the shared topic alone.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use caas_events::model::{
    Channel, Content, InboundMessage, Origin, OutboundCommand, OutboundResult, Template,
    TemplateComponent, TemplateParameter, Text,
};
use caas_events::{keys, topics, Codec, Event};
use caas_kafka::{KafkaConfig, OutboundRecord, Producer};
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::Env;
use caas_simulator::records::RequestRecord;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Every wait ends after this with a failure that says what was awaited.
pub const WAIT: Duration = Duration::from_secs(120);

pub fn env_var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

pub fn bootstrap() -> String {
    env_var("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
}

pub fn registry_url() -> String {
    env_var(
        "CAAS_SCHEMA_REGISTRY_URL",
        "http://127.0.0.1:8081/apis/ccompat/v7",
    )
}

pub fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

/// A WhatsApp phone number id nobody else uses (digits only).
pub fn phone_number_id() -> String {
    format!("9{:014}", fastrand::u64(..100_000_000_000_000))
}

/// Create the topics the sender uses if the stack has not yet.
pub async fn ensure_topics() {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let names = [
        topics::OUTBOUND_COMMANDS.to_string(),
        topics::OUTBOUND_RESULTS.to_string(),
        topics::INBOUND_MESSAGES.to_string(),
        topics::dlq(topics::OUTBOUND_COMMANDS),
        topics::dlq(topics::INBOUND_MESSAGES),
    ];
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                if name.ends_with(".dlq") { 3 } else { 12 },
                TopicReplication::Fixed(1),
            )
        })
        .collect();
    // "already exists" is the usual answer; anything else shows up as a failing test later.
    let _ = admin.create_topics(&new_topics, &AdminOptions::new()).await;
}

/// The stack's `CAAS_*` environment plus `overrides`.
pub fn environment(overrides: &[(&str, String)]) -> Vec<(String, String)> {
    let mut pairs: HashMap<String, String> = std::env::vars()
        .filter(|(key, _)| key.starts_with("CAAS_"))
        .collect();
    for (key, value) in overrides {
        pairs.insert(key.to_string(), value.clone());
    }
    pairs.into_iter().collect()
}

pub fn env_of(pairs: &[(String, String)]) -> Env {
    Env::from_pairs(
        pairs
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str())),
    )
}

/// A simulator on port 0 without status webhooks; returns its base URL.
pub async fn start_simulator(knobs: serde_json::Value) -> (String, CancellationToken) {
    let env = Env::from_pairs([
        ("CAAS_SIMULATOR_ADDR", "127.0.0.1:0"),
        ("CAAS_SIMULATOR_WHATSAPP_WEBHOOK_URL", "off"),
        ("CAAS_SIMULATOR_RCS_WEBHOOK_URL", "off"),
    ]);
    let config = caas_simulator::Config::from_env(&env).unwrap();
    let shutdown = CancellationToken::new();
    let (bound_sender, bound) = tokio::sync::oneshot::channel::<SocketAddr>();
    tokio::spawn(caas_simulator::run(
        config,
        shutdown.clone(),
        move |address| {
            let _ = bound_sender.send(address);
        },
    ));
    let base = format!("http://{}", bound.await.unwrap());
    let response = reqwest::Client::new()
        .put(format!("{base}/_sim/knobs"))
        .json(&knobs)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    (base, shutdown)
}

/// Every request the simulator received from `sender` (a phone number id or agent id).
pub async fn simulator_requests(base: &str, sender: &str) -> Vec<RequestRecord> {
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/_sim/requests"))
        .query(&[("sender", sender)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    serde_json::from_value(body["requests"].clone()).unwrap()
}

/// A test tenant with its own endpoints.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub phone_number_id: String,
    pub agent_id: String,
}

impl Tenant {
    pub fn new(prefix: &str) -> Self {
        let id = format!("{prefix}{}", short_id());
        Self {
            agent_id: format!("{id}-agent"),
            phone_number_id: phone_number_id(),
            id,
        }
    }

    /// The sender's environment for this tenant, pointed at the simulator at `base`.
    pub fn sender_env(
        &self,
        base: &str,
        group: &str,
        extra: &[(&str, String)],
    ) -> Vec<(String, String)> {
        let mut overrides: Vec<(&str, String)> = vec![
            ("CAAS_SENDER_OPS_ADDR", "127.0.0.1:0".to_string()),
            ("CAAS_SENDER_GROUP_ID", group.to_string()),
            (
                "CAAS_SENDER_TENANTS",
                format!(
                    "{}:whatsapp={},rcs={}",
                    self.id, self.phone_number_id, self.agent_id
                ),
            ),
            ("CAAS_SENDER_UNKNOWN_TENANTS", "skip".to_string()),
            ("CAAS_SENDER_WHATSAPP_BASE_URL", base.to_string()),
            ("CAAS_SENDER_RBM_BASE_URL", base.to_string()),
            (
                "CAAS_SENDER_WHATSAPP_TOKENS",
                "*=test-whatsapp-token".to_string(),
            ),
            ("CAAS_SENDER_RBM_TOKEN", "test-rbm-token".to_string()),
            ("CAAS_SENDER_SESSION_TIMEOUT_MS", "6000".to_string()),
            ("CAAS_SENDER_RETRY_BASE_MS", "50".to_string()),
            ("CAAS_SENDER_RETRY_MAX_MS", "500".to_string()),
            ("CAAS_SENDER_RATE_LIMIT_BACKOFF_MS", "100".to_string()),
            ("CAAS_SENDER_REQUEST_TIMEOUT_MS", "5000".to_string()),
        ];
        overrides.extend(extra.iter().cloned());
        environment(&overrides)
    }

    pub fn conversation_key(&self, channel: Channel, customer: &str) -> String {
        keys::conversation_key(&self.id, channel, customer)
    }

    pub fn command(
        &self,
        channel: Channel,
        customer: &str,
        content: Content,
        origin: Origin,
    ) -> OutboundCommand {
        let command_id = uuid::Uuid::new_v4().to_string();
        let now = now_millis();
        OutboundCommand {
            event_id: command_id.clone(),
            tenant_id: self.id.clone(),
            conversation_key: self.conversation_key(channel, customer),
            channel,
            occurred_at: now,
            recorded_at: now,
            source: "sender-test".to_string(),
            trace_parent: None,
            command_id,
            to: customer.to_string(),
            content,
            origin,
            campaign_id: None,
            reply_to: None,
            operator_id: None,
            business_id: None,
            callback_data: None,
        }
    }

    pub fn inbound(&self, channel: Channel, customer: &str, occurred_at: i64) -> InboundMessage {
        let provider_message_id = format!("wamid.test{}", short_id());
        InboundMessage {
            event_id: keys::deterministic_event_id(&["sender-test", &provider_message_id]),
            tenant_id: self.id.clone(),
            conversation_key: self.conversation_key(channel, customer),
            channel,
            occurred_at,
            recorded_at: now_millis(),
            source: "sender-test".to_string(),
            trace_parent: None,
            provider_message_id,
            customer_id: customer.to_string(),
            customer_display_name: Some("Test".to_string()),
            business_id: Some(self.phone_number_id.clone()),
            reply_to: None,
            content: text("hello"),
        }
    }
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn text(body: &str) -> Content {
    Content::Text(Text {
        body: body.to_string(),
        preview_url: false,
    })
}

/// A template whose body parameter is `marker`, so a simulator record names its command.
pub fn template(marker: &str) -> Content {
    Content::Template(Template {
        name: "order_update".to_string(),
        language: "en_US".to_string(),
        parameters: vec![TemplateParameter {
            component: TemplateComponent::Body,
            button_index: None,
            text: marker.to_string(),
        }],
        header_media: None,
    })
}

/// Produces events through the registry.
pub struct Events {
    pub codec: Codec,
    pub producer: Producer,
}

impl Events {
    pub fn new() -> Self {
        Self {
            codec: Codec::new(registry_url()).unwrap(),
            producer: Producer::new(&KafkaConfig::new(bootstrap()).with_client_id("sender-tests"))
                .unwrap(),
        }
    }

    pub async fn send<E: Event>(&self, event: &E) {
        let bytes = self.codec.encode(event).await.unwrap();
        self.producer
            .send(OutboundRecord::new(
                E::TOPIC,
                event.key().to_string(),
                bytes,
            ))
            .await
            .unwrap();
    }
}

/// Reads `outbound.results.v1` from its current end, keeping one tenant's results.
pub struct Results {
    consumer: StreamConsumer,
    codec: Codec,
    tenant: String,
    pub seen: Vec<OutboundResult>,
}

impl Results {
    /// Start reading at the current end of every partition, so nothing produced after this
    /// call is missed.
    pub async fn from_now(tenant: &str) -> Self {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", format!("sender-test-results-{}", short_id()))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topics::OUTBOUND_RESULTS), Duration::from_secs(10))
            .unwrap();
        let partitions = metadata.topics()[0].partitions().len() as i32;
        assert!(partitions > 0, "outbound.results.v1 has no partitions");
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            let (_, high) = consumer
                .fetch_watermarks(topics::OUTBOUND_RESULTS, partition, Duration::from_secs(10))
                .unwrap();
            assignment
                .add_partition_offset(topics::OUTBOUND_RESULTS, partition, Offset::Offset(high))
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        Self {
            consumer,
            codec: Codec::new(registry_url()).unwrap(),
            tenant: tenant.to_string(),
            seen: Vec::new(),
        }
    }

    /// Read until `done(results so far)` holds; panics after [`WAIT`] with what was seen.
    pub async fn until(&mut self, what: &str, done: impl Fn(&[OutboundResult]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.seen) {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                panic!(
                    "timed out waiting for {what}; results so far: {:#?}",
                    self.seen
                );
            }
            let Ok(received) =
                tokio::time::timeout(remaining.min(Duration::from_secs(1)), self.consumer.recv())
                    .await
            else {
                continue;
            };
            let message = received.unwrap();
            let Some(payload) = message.payload() else {
                continue;
            };
            let Ok(result) = self.codec.decode::<OutboundResult>(payload).await else {
                continue;
            };
            // The stack's own sender (if `make up` runs one) does not serve test tenants and
            // answers their commands with `tenant_not_configured`; only ours count.
            let foreign = result
                .error
                .as_ref()
                .is_some_and(|error| error.code == "tenant_not_configured");
            if result.tenant_id == self.tenant && !foreign {
                self.seen.push(result);
            }
        }
    }

    /// Results per command id.
    pub fn by_command(&self) -> HashMap<String, Vec<OutboundResult>> {
        let mut map: HashMap<String, Vec<OutboundResult>> = HashMap::new();
        for result in &self.seen {
            map.entry(result.command_id.clone())
                .or_default()
                .push(result.clone());
        }
        map
    }
}

/// Start the sender in-process; returns its ops address, its shutdown token and its task.
pub async fn start_sender(
    pairs: &[(String, String)],
) -> (
    SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let config = caas_sender::Config::from_env(&env_of(pairs)).unwrap();
    let shutdown = CancellationToken::new();
    let (bound_sender, bound) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(caas_sender::run(config, shutdown.clone(), move |address| {
        let _ = bound_sender.send(address);
    }));
    let address = tokio::time::timeout(Duration::from_secs(30), bound)
        .await
        .unwrap()
        .unwrap();
    (address, shutdown, task)
}

pub async fn stop_sender(
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
