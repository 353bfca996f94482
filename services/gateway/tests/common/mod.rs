//! Helpers for the gateway's tests against the real local stack (`make up`): gateways
//! in-process on port 0 with their own consumer group, Redis channel prefix and MongoDB
//! database, events produced through the registry, tokens.

#![allow(dead_code)]

pub mod socket;

use std::net::SocketAddr;
use std::time::Duration;

use caas_events::{Codec, Event};
use caas_kafka::{KafkaConfig, OutboundRecord, Producer};
use caas_runtime::shutdown::{CancellationToken, Spawned};
use caas_runtime::{CommonConfig, Env};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{json, Value};

pub use socket::TestSocket;

/// The JWT secret of the test gateways.
pub const SECRET: &str = "gateway-test-secret";

/// The stack's endpoints, as the services see them.
pub fn stack() -> CommonConfig {
    CommonConfig::from_env(&Env::from_process()).expect("CAAS_* variables are valid")
}

/// A fresh name.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A signed token.
pub fn token(tenant: &str, sub: &str, role: &str) -> String {
    token_with(json!({
        "sub": sub, "tenant": tenant, "role": role,
        "exp": caas_gateway::auth::now_seconds() + 3600,
    }))
}

/// A token with arbitrary claims, signed with [`SECRET`].
pub fn token_with(claims: Value) -> String {
    caas_gateway::auth::sign(&claims, SECRET.as_bytes())
}

/// What several gateway instances of one test share: consumer group, adapter prefix, database.
pub struct Cluster {
    pub group: String,
    pub prefix: String,
    pub database: String,
    /// Whether a logger runs: then gateways wait long for each seq (it comes, even on a loaded
    /// machine); without one they wait briefly.
    logger_started: std::sync::atomic::AtomicBool,
    /// The logger's consumer group: gateways read its progress.
    logger_group: String,
}

impl Cluster {
    /// A new isolated cluster whose consumer group starts at the current end of every topic.
    pub async fn new() -> Self {
        let cluster = Self {
            group: unique("caas-gateway-test-"),
            prefix: unique("gwtest"),
            database: unique("caas_gwtest_"),
            logger_started: std::sync::atomic::AtomicBool::new(false),
            logger_group: unique("caas-logger-gwtest-"),
        };
        pin_group_to_end(
            &stack().kafka_bootstrap,
            &cluster.group,
            &caas_gateway::domain::fanout::TOPICS,
        )
        .await;
        cluster
    }

    fn environment(&self, fixed: &[(&str, &str)], overrides: &[(&str, &str)]) -> Env {
        let mut pairs: Vec<(String, String)> = std::env::vars()
            .filter(|(key, _)| key.starts_with("CAAS_"))
            .collect();
        // GATEWAY_TEST_LOG=debug shows the services' logs; by default none.
        let log_filter = std::env::var("GATEWAY_TEST_LOG").unwrap_or_else(|_| "off".to_string());
        let common = [
            ("CAAS_MONGODB_DATABASE", self.database.as_str()),
            ("CAAS_LOG_FORMAT", "pretty"),
            ("CAAS_LOG", log_filter.as_str()),
        ];
        for (key, value) in common.iter().chain(fixed.iter()).chain(overrides.iter()) {
            pairs.retain(|(existing, _)| existing != key);
            pairs.push((key.to_string(), value.to_string()));
        }
        Env::from_pairs(
            pairs
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        )
    }

    /// Start the real logger on this cluster's database, from the current end of its topics:
    /// it assigns the `seq` the gateway reads and writes the documents the REST API serves.
    pub async fn start_logger(&self) -> Service {
        let group = self.logger_group.clone();
        pin_group_to_end(
            &stack().kafka_bootstrap,
            &group,
            &caas_logger::config::DEFAULT_TOPICS,
        )
        .await;
        let env = self.environment(
            &[
                ("CAAS_LOGGER_OPS_ADDR", "127.0.0.1:0"),
                ("CAAS_LOGGER_GROUP_ID", group.as_str()),
                ("CAAS_LOGGER_BATCH_MAX_WAIT_MS", "20"),
            ],
            &[],
        );
        let config = caas_logger::Config::from_env(&env).expect("valid logger configuration");
        self.logger_started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let spawned = Spawned::start(Duration::from_secs(30), |shutdown, on_bound| {
            caas_logger::run(config, shutdown, on_bound)
        })
        .await
        .expect("the logger starts");
        Service::from(spawned)
    }

    /// Start one gateway instance; `overrides` replace variables (e.g. a dead Kafka).
    pub async fn start(&self, overrides: &[(&str, &str)]) -> Gateway {
        let seq_wait = if self
            .logger_started
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            "10000"
        } else {
            "1500"
        };
        let env = self.environment(
            &[
                ("CAAS_GATEWAY_ADDR", "127.0.0.1:0"),
                ("CAAS_JWT_SECRET", SECRET),
                ("CAAS_GATEWAY_CONSUMER_GROUP", self.group.as_str()),
                ("CAAS_GATEWAY_REDIS_PREFIX", self.prefix.as_str()),
                ("CAAS_LOGGER_GROUP_ID", self.logger_group.as_str()),
                // Other tests' events flow through every test's consumer group too; without a
                // logger each would wait for its seq.
                ("CAAS_GATEWAY_SEQ_WAIT_MS", seq_wait),
            ],
            overrides,
        );
        let config = caas_gateway::Config::from_env(&env).expect("valid test configuration");
        caas_runtime::telemetry::init("gateway-test", &config.common);
        let spawned = Spawned::start(Duration::from_secs(30), |shutdown, on_bound| {
            caas_gateway::run(config, shutdown, on_bound)
        })
        .await
        .expect("the gateway starts");
        Service::from(spawned)
    }

    /// Start one gateway instance on the running stack's data: the stack's MongoDB database
    /// (where the stack's logger and campaign service write) and the stack's logger group, with
    /// this cluster's own consumer group and adapter prefix. For tests that drive the whole
    /// platform as `make up` runs it (campaigns, the sender and the provider simulator).
    pub async fn start_on_stack(&self) -> Gateway {
        let stack = stack();
        let logger_group =
            std::env::var("CAAS_LOGGER_GROUP_ID").unwrap_or_else(|_| "caas-logger".to_string());
        self.start(&[
            ("CAAS_MONGODB_DATABASE", stack.mongodb_database.as_str()),
            ("CAAS_LOGGER_GROUP_ID", logger_group.as_str()),
            ("CAAS_GATEWAY_SEQ_WAIT_MS", "5000"),
        ])
        .await
    }

    /// Start the real ingest (webhooks → Kafka); tenant `demo` owns WhatsApp number id
    /// [`DEMO_PHONE_NUMBER_ID`] (as in `.env.example`), webhooks are signed with
    /// [`WHATSAPP_APP_SECRET`].
    pub async fn start_ingest(&self) -> Service {
        let tenants = format!("demo:whatsapp={DEMO_PHONE_NUMBER_ID}");
        let env = self.environment(
            &[
                ("CAAS_INGEST_ADDR", "127.0.0.1:0"),
                ("CAAS_INGEST_TENANTS", tenants.as_str()),
                ("CAAS_WHATSAPP_APP_SECRET", WHATSAPP_APP_SECRET),
            ],
            &[],
        );
        let config = caas_ingest::Config::from_env(&env).expect("valid ingest configuration");
        let spawned = Spawned::start(Duration::from_secs(30), |shutdown, on_bound| {
            caas_ingest::run(config, shutdown, on_bound)
        })
        .await
        .expect("ingest starts");
        Service::from(spawned)
    }

    /// The test's database (the logger's collections live here).
    pub async fn database(&self) -> mongodb::Database {
        let client = mongodb::Client::with_uri_str(&stack().mongodb_uri)
            .await
            .expect("mongodb client");
        client.database(&self.database)
    }

    /// Drop the test database (best effort).
    pub async fn cleanup(&self) {
        let _ = self.database().await.drop().await;
    }
}

/// A gateway instance.
pub type Gateway = Service;

/// A service running in-process.
pub struct Service {
    pub address: SocketAddr,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl From<Spawned<anyhow::Result<()>>> for Service {
    fn from(spawned: Spawned<anyhow::Result<()>>) -> Self {
        Service {
            address: spawned.address,
            shutdown: spawned.shutdown,
            task: Some(spawned.task),
        }
    }
}

impl Service {
    /// Stop it and wait until `run` returned.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the service stops within 30 s")
                .expect("the service task does not panic")
                .expect("the service stops cleanly");
        }
    }

    /// A socket.io client signed in with `token`.
    pub async fn operator(&self, token: &str) -> TestSocket {
        TestSocket::connect(self.address, Some(token))
            .await
            .expect("operator connects")
    }

    /// GET `path` with a bearer token; (status, JSON body).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let request = reqwest::Client::new().get(format!("http://{}{path}", self.address));
        self.call(request, token).await
    }

    /// POST `body` (with its content type) to `path` with a bearer token; (status, JSON body).
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let request = reqwest::Client::new()
            .post(format!("http://{}{path}", self.address))
            .header("content-type", content_type)
            .body(body);
        self.call(request, token).await
    }

    async fn call(&self, request: reqwest::RequestBuilder, token: Option<&str>) -> (u16, Value) {
        let mut request = request.timeout(Duration::from_secs(60));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("http request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Commit the current end of every partition of `topics` for `group`, so a group member that
/// joins later starts there whatever partitions it gets in a rebalance.
pub async fn pin_group_to_end(bootstrap: &str, group: &str, topics: &[&'static str]) {
    let bootstrap = bootstrap.to_string();
    let group = group.to_string();
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        let mut positions = TopicPartitionList::new();
        for topic in topics {
            let described = metadata
                .topics()
                .iter()
                .find(|described| described.name() == topic)
                .unwrap_or_else(|| panic!("topic {topic} exists (make up applies the catalogue)"));
            for partition in described.partitions() {
                let (_, high) = consumer
                    .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
                    .expect("watermarks");
                positions
                    .add_partition_offset(topic, partition.id(), Offset::Offset(high))
                    .expect("offset");
            }
        }
        consumer
            .commit(&positions, CommitMode::Sync)
            .expect("commit the end offsets");
    })
    .await
    .expect("pinning task");
}

/// Produces events the way the services do.
pub struct EventProducer {
    producer: Producer,
    codec: Codec,
}

impl EventProducer {
    pub fn new() -> Self {
        let stack = stack();
        Self {
            producer: Producer::new(&KafkaConfig::new(stack.kafka_bootstrap)).expect("producer"),
            codec: Codec::new(stack.schema_registry_url).expect("codec"),
        }
    }

    pub async fn produce<E: Event>(&self, event: &E) {
        let payload = self.codec.encode(event).await.expect("encode");
        self.producer
            .send(OutboundRecord::new(E::TOPIC, event.key(), payload))
            .await
            .expect("kafka acknowledges");
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }
}

/// Reads a topic from its current end (no consumer group).
pub struct TopicTail {
    consumer: StreamConsumer,
}

impl TopicTail {
    pub async fn new(topic: &'static str) -> Self {
        let bootstrap = stack().kafka_bootstrap;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", unique("gateway-test-tail-"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics()[0].partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
                .expect("watermarks");
            assignment
                .add_partition_offset(topic, partition.id(), Offset::Offset(high))
                .expect("offset");
        }
        consumer.assign(&assignment).expect("assign");
        Self { consumer }
    }

    /// The next record whose decoded value satisfies `matches`, within `timeout`.
    pub async fn find<E: Event>(
        &self,
        codec: &Codec,
        timeout: Duration,
        matches: impl Fn(&E) -> bool,
    ) -> Option<E> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.consumer.recv())
                .await
                .ok()?
                .expect("kafka receive");
            let Some(payload) = message.payload() else {
                continue;
            };
            if let Ok(event) = codec.decode::<E>(payload).await {
                if matches(&event) {
                    return Some(event);
                }
            }
        }
    }
}

/// The WhatsApp business number of the `demo` tenant in `.env.example`.
pub const DEMO_PHONE_NUMBER_ID: &str = "100000000000001";

/// The Meta app secret the test ingest verifies webhooks with.
pub const WHATSAPP_APP_SECRET: &str = "gateway-test-whatsapp-app-secret";

/// Post a signed WhatsApp text-message webhook (as Meta sends it) to ingest; returns the
/// provider message id. Panics unless ingest answers 200.
pub async fn post_whatsapp_text(
    ingest: &Service,
    customer: &str,
    name: &str,
    text: &str,
) -> String {
    let wamid = unique("wamid.GW");
    let now = caas_gateway::auth::now_seconds();
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "WABA-DEMO",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550000001", "phone_number_id": DEMO_PHONE_NUMBER_ID },
                    "contacts": [{ "profile": { "name": name }, "wa_id": customer }],
                    "messages": [{
                        "from": customer, "id": wamid, "timestamp": now.to_string(),
                        "type": "text", "text": { "body": text }
                    }]
                }
            }]
        }]
    })
    .to_string();
    let signature =
        caas_ingest::signature::whatsapp_signature(WHATSAPP_APP_SECRET.as_bytes(), body.as_bytes());
    let response = reqwest::Client::new()
        .post(format!("http://{}/webhooks/whatsapp", ingest.address))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("ingest answers");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status.as_u16(), 200, "ingest refused the webhook: {text}");
    wamid
}

/// A customer's WhatsApp text message as ingest produces it (a fresh provider id), with the
/// display name "Kim".
pub fn inbound_text(
    tenant: &str,
    customer: &str,
    body: &str,
) -> caas_events::model::InboundMessage {
    use caas_events::keys;
    use caas_events::model::{Channel, Content, InboundMessage, Text};
    let wamid = unique("wamid.");
    let now = caas_gateway::realtime::now_ms();
    InboundMessage {
        event_id: keys::deterministic_event_id(&["whatsapp", "message", &wamid]),
        tenant_id: tenant.to_string(),
        conversation_key: keys::conversation_key(tenant, Channel::Whatsapp, customer),
        channel: Channel::Whatsapp,
        occurred_at: now,
        recorded_at: now,
        source: "gateway-test".to_string(),
        trace_parent: None,
        provider_message_id: wamid,
        customer_id: customer.to_string(),
        customer_display_name: Some("Kim".to_string()),
        business_id: None,
        reply_to: None,
        content: Content::Text(Text {
            body: body.to_string(),
            preview_url: false,
        }),
    }
}
