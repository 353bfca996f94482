//! Component tests: the real `run` in-process on port 0 against the local stack (Kafka, the
//! schema registry, Redis, as `make up` starts them), fed signed webhooks with reqwest.
//!
//! What reached Kafka is read back exactly: the high watermarks of every partition are taken
//! before posting and after the answers, and every record in between is read and decoded. Each
//! test puts a unique token into its provider ids, so concurrent tests never see each other's
//! events, and "exactly once" is a count, not a wait. The expected events come from the pure
//! core (unit-tested against explicit values) applied to the same bodies; the tests check that
//! exactly those reached Kafka, with the right topic, key, schema id and trace header.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine as _;
use caas_events::model::{ConversationEvent, InboundMessage, InboundStatus, PresenceEvent};
use caas_events::{topics, Codec};
use caas_ingest::events::{IngestEvent, Stamp};
use caas_ingest::signature::{rbm_signature, whatsapp_signature};
use caas_ingest::{rcs, whatsapp, Config, Tenants};
use caas_runtime::shutdown::Spawned;
use caas_runtime::Env;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const APP_SECRET: &str = "test-whatsapp-app-secret";
const VERIFY_TOKEN: &str = "test-verify-token";
const CLIENT_TOKEN: &str = "test-rbm-client-token";
/// The fixtures' numbers and agent belong to a tenant of the tests' own, so the stack's workers
/// (the demo tenant's chatbot above all) do not answer the hundreds of fixture messages.
const TENANT: &str = "ingest-test";
const TENANTS: &str = "ingest-test:whatsapp=100000000000001,rcs=demo-agent";
const TOPICS: [&str; 4] = [
    topics::INBOUND_MESSAGES,
    topics::INBOUND_STATUSES,
    topics::PRESENCE_EVENTS,
    topics::CONVERSATION_EVENTS,
];
const WHATSAPP_FIXTURES: [&str; 21] = [
    "whatsapp_text",
    "whatsapp_image",
    "whatsapp_audio",
    "whatsapp_video",
    "whatsapp_document",
    "whatsapp_sticker",
    "whatsapp_location",
    "whatsapp_contacts",
    "whatsapp_interactive_button_reply",
    "whatsapp_interactive_list_reply",
    "whatsapp_button",
    "whatsapp_reaction",
    "whatsapp_reaction_removed",
    "whatsapp_order",
    "whatsapp_system",
    "whatsapp_unsupported",
    "whatsapp_unknown_type",
    "whatsapp_status_sent",
    "whatsapp_status_delivered",
    "whatsapp_status_read",
    "whatsapp_status_failed",
];
const RCS_FIXTURES: [&str; 9] = [
    "rcs_text",
    "rcs_user_file",
    "rcs_location",
    "rcs_suggestion_response",
    "rcs_event_delivered",
    "rcs_event_read",
    "rcs_event_is_typing",
    "rcs_event_unsubscribe",
    "rcs_event_subscribe",
];

// ---------------------------------------------------------------- helpers --------------------

fn stack_variable(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn bootstrap() -> String {
    stack_variable("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
}

fn registry_url() -> String {
    stack_variable(
        "CAAS_SCHEMA_REGISTRY_URL",
        "http://127.0.0.1:8081/apis/ccompat/v7",
    )
}

/// A token unique to this test run and call, put into provider ids.
fn unique_token() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "T{nanos:x}{}P{}",
        COUNTER.fetch_add(1, Ordering::SeqCst),
        std::process::id()
    )
}

/// A fixture with `FIXTURE` in its ids replaced by `token`.
fn fixture(name: &str, token: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{path}: {error}"))
        .replace("FIXTURE", token)
        .into_bytes()
}

struct Service {
    service: Spawned<anyhow::Result<()>>,
    address: SocketAddr,
}

impl Service {
    async fn start(overrides: &[(&str, &str)]) -> Self {
        let defaults = [
            ("CAAS_INGEST_ADDR", "127.0.0.1:0".to_string()),
            ("CAAS_KAFKA_BOOTSTRAP", bootstrap()),
            ("CAAS_SCHEMA_REGISTRY_URL", registry_url()),
            (
                "CAAS_REDIS_URL",
                stack_variable("CAAS_REDIS_URL", "redis://127.0.0.1:6379"),
            ),
            ("CAAS_WHATSAPP_APP_SECRET", APP_SECRET.to_string()),
            ("CAAS_WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN.to_string()),
            ("CAAS_RBM_CLIENT_TOKEN", CLIENT_TOKEN.to_string()),
            ("CAAS_INGEST_TENANTS", TENANTS.to_string()),
            ("CAAS_LOG", "warn".to_string()),
        ];
        let mut pairs: HashMap<&str, String> = defaults.into_iter().collect();
        for (key, value) in overrides {
            pairs.insert(key, value.to_string());
        }
        let config = Config::from_env(&Env::from_pairs(
            pairs.iter().map(|(key, value)| (*key, value.as_str())),
        ))
        .expect("valid test configuration");
        let service = Spawned::start(Duration::from_secs(30), |shutdown, on_bound| {
            caas_ingest::run(config, shutdown, on_bound)
        })
        .await
        .expect("ingest starts");
        Self {
            address: service.address,
            service,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    async fn stop(self) {
        self.service
            .stop(Duration::from_secs(30))
            .await
            .expect("stops within 30 s")
            .expect("run returns Ok");
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Post a WhatsApp body signed with `secret` (or unsigned).
async fn post_whatsapp(
    service: &Service,
    body: Vec<u8>,
    signature: Option<String>,
) -> (u16, serde_json::Value) {
    let mut request = http()
        .post(service.url("/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    let response = request.send().await.expect("ingest answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

async fn post_signed_whatsapp(service: &Service, body: Vec<u8>) -> (u16, serde_json::Value) {
    let signature = whatsapp_signature(APP_SECRET.as_bytes(), &body);
    post_whatsapp(service, body, Some(signature)).await
}

fn rcs_envelope(data: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "message": {
            "attributes": {"product": "RBM"},
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "messageId": "13857373627490154",
            "publishTime": "2025-02-12T00:43:44.333Z"
        },
        "subscription": "projects/rbm-demo-agent/subscriptions/rbm-demo-agent-sub"
    }))
    .unwrap()
}

async fn post_rcs(
    service: &Service,
    body: Vec<u8>,
    signature: Option<String>,
) -> (u16, serde_json::Value) {
    let mut request = http()
        .post(service.url("/webhooks/rcs"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(signature) = signature {
        request = request.header("x-goog-signature", signature);
    }
    let response = request.send().await.expect("ingest answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

async fn post_signed_rcs(service: &Service, data: &[u8]) -> (u16, serde_json::Value) {
    let signature = rbm_signature(CLIENT_TOKEN.as_bytes(), data);
    post_rcs(service, rcs_envelope(data), Some(signature)).await
}

/// What the pure core makes of a body: the events the service must have produced.
fn expected_whatsapp(body: &[u8]) -> Vec<IngestEvent> {
    whatsapp::parse(body, &Tenants::parse(TENANTS).unwrap(), &any_stamp())
        .expect("fixture parses")
        .events
}

fn expected_rcs(data: &[u8]) -> Vec<IngestEvent> {
    rcs::parse_data(data, &Tenants::parse(TENANTS).unwrap(), &any_stamp())
        .expect("fixture parses")
        .events
}

fn any_stamp() -> Stamp {
    Stamp {
        recorded_at: 0,
        trace_parent: None,
    }
}

/// Create the topics ingest writes when `caasctl topics apply` has not run yet.
async fn ensure_topics() {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let new_topics: Vec<NewTopic<'_>> = TOPICS
        .iter()
        .map(|topic| NewTopic::new(topic, 12, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    // "already exists" is the normal case; anything else shows up as a missing topic below.
    let _ = admin.create_topics(&new_topics, &options).await;
}

/// Every partition's high watermark of the three topics.
fn watermarks() -> HashMap<(String, i32), i64> {
    let consumer = reader();
    let mut marks = HashMap::new();
    for topic in TOPICS {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("kafka metadata");
        let partitions = metadata.topics()[0].partitions().len();
        assert!(partitions > 0, "topic {topic} is missing");
        for partition in 0..partitions as i32 {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("watermarks");
            marks.insert((topic.to_string(), partition), high);
        }
    }
    marks
}

fn reader() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("caas-ingest-test-{}", unique_token()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer")
}

/// One record read back.
#[derive(Debug, Clone)]
struct Produced {
    topic: String,
    key: String,
    traceparent: Option<String>,
    event: IngestEvent,
}

/// Snapshot of the watermarks before the webhooks were posted.
struct Before(HashMap<(String, i32), i64>);

async fn before() -> Before {
    ensure_topics().await;
    Before(tokio::task::spawn_blocking(watermarks).await.unwrap())
}

impl Before {
    /// Every record produced since the snapshot (up to the watermarks now), decoded.
    async fn produced_since(&self) -> Vec<Produced> {
        let start = self.0.clone();
        let raw = tokio::task::spawn_blocking(move || {
            let end = watermarks();
            let consumer = reader();
            let mut assignment = TopicPartitionList::new();
            let mut remaining = 0;
            for ((topic, partition), high) in &end {
                let low = start
                    .get(&(topic.clone(), *partition))
                    .copied()
                    .unwrap_or(0);
                if *high > low {
                    assignment
                        .add_partition_offset(topic, *partition, Offset::Offset(low))
                        .unwrap();
                    remaining += high - low;
                }
            }
            let mut records = Vec::new();
            if remaining == 0 {
                return records;
            }
            consumer.assign(&assignment).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let mut seen = 0;
            while seen < remaining && std::time::Instant::now() < deadline {
                let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                    continue;
                };
                let message = message.expect("consume");
                let high = end[&(message.topic().to_string(), message.partition())];
                if message.offset() >= high {
                    continue;
                }
                seen += 1;
                let traceparent = message.headers().and_then(|headers| {
                    headers
                        .iter()
                        .find(|header| header.key == "traceparent")
                        .and_then(|header| header.value)
                        .map(|value| String::from_utf8_lossy(value).into_owned())
                });
                records.push((
                    message.topic().to_string(),
                    message
                        .key()
                        .map(|key| String::from_utf8_lossy(key).into_owned())
                        .unwrap_or_default(),
                    traceparent,
                    message.payload().unwrap_or_default().to_vec(),
                ));
            }
            assert_eq!(seen, remaining, "read every record up to the watermarks");
            records
        })
        .await
        .unwrap();
        let codec = Codec::new(registry_url()).unwrap();
        let mut produced = Vec::new();
        for (topic, key, traceparent, payload) in raw {
            let event = match topic.as_str() {
                topics::INBOUND_MESSAGES => {
                    IngestEvent::Message(codec.decode::<InboundMessage>(&payload).await.unwrap())
                }
                topics::INBOUND_STATUSES => {
                    IngestEvent::Status(codec.decode::<InboundStatus>(&payload).await.unwrap())
                }
                topics::CONVERSATION_EVENTS => IngestEvent::Conversation(
                    codec.decode::<ConversationEvent>(&payload).await.unwrap(),
                ),
                _ => IngestEvent::Presence(codec.decode::<PresenceEvent>(&payload).await.unwrap()),
            };
            produced.push(Produced {
                topic,
                key,
                traceparent,
                event,
            });
        }
        produced
    }
}

/// The produced WhatsApp records whose provider message id contains `token` (RBM statuses and
/// typing carry no id of ours; they are matched by their expected event ids instead).
fn mine<'a>(produced: &'a [Produced], token: &str) -> Vec<&'a Produced> {
    produced
        .iter()
        .filter(|record| match &record.event {
            IngestEvent::Message(message) => message.provider_message_id.contains(token),
            IngestEvent::Status(status) => status.provider_message_id.contains(token),
            IngestEvent::Presence(_) | IngestEvent::Conversation(_) => false,
        })
        .collect()
}

/// Each expected event is on Kafka exactly once, on its topic, under its key, with the trace
/// header matching its envelope, and equal to the expectation (apart from the request-time
/// fields `recorded_at` and `trace_parent`).
fn assert_exactly(produced: &[Produced], expected: &[IngestEvent]) {
    for want in expected {
        let found: Vec<&Produced> = produced
            .iter()
            .filter(|record| record.event.event_id() == want.event_id())
            .collect();
        assert_eq!(
            found.len(),
            1,
            "event {} ({:?}) must be on Kafka exactly once",
            want.event_id(),
            want
        );
        let record = found[0];
        assert_eq!(record.topic, want.topic());
        assert_eq!(record.key, want.key(), "keyed by conversation key");
        assert_eq!(record.event.tenant_id(), TENANT);
        let (normalised, envelope_trace) = normalise(&record.event);
        assert_eq!(&normalised, want, "content of {}", want.event_id());
        let trace = envelope_trace.expect("the envelope carries the trace");
        assert_eq!(record.traceparent.as_deref(), Some(trace.as_str()));
    }
}

/// The event with `recorded_at` zero and no trace parent, and the trace parent it had.
fn normalise(event: &IngestEvent) -> (IngestEvent, Option<String>) {
    let mut event = event.clone();
    let trace = match &mut event {
        IngestEvent::Message(message) => {
            message.recorded_at = 0;
            message.trace_parent.take()
        }
        IngestEvent::Status(status) => {
            status.recorded_at = 0;
            status.trace_parent.take()
        }
        IngestEvent::Presence(presence) => {
            presence.recorded_at = 0;
            presence.trace_parent.take()
        }
        IngestEvent::Conversation(change) => {
            change.recorded_at = 0;
            change.trace_parent.take()
        }
    };
    (event, trace)
}

fn none_of(produced: &[Produced], unexpected: &[IngestEvent]) {
    for event in unexpected {
        assert!(
            produced
                .iter()
                .all(|record| record.event.event_id() != event.event_id()),
            "{} must not have been produced",
            event.event_id()
        );
    }
}

// ---------------------------------------------------------------- tests ----------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_whatsapp_message_type_and_status_reaches_kafka_once_with_tenant_key_and_content() {
    let service = Service::start(&[]).await;
    let snapshot = before().await;
    let token = unique_token();
    let mut expected = Vec::new();
    for name in WHATSAPP_FIXTURES {
        let body = fixture(name, &token);
        expected.extend(expected_whatsapp(&body));
        let (status, answer) = post_signed_whatsapp(&service, body).await;
        assert_eq!(status, 200, "{name}: {answer}");
        assert_eq!(answer["produced"], 1, "{name}: {answer}");
    }
    assert_eq!(expected.len(), WHATSAPP_FIXTURES.len());
    let produced = snapshot.produced_since().await;
    assert_exactly(&produced, &expected);
    assert_eq!(mine(&produced, &token).len(), expected.len());
    // Spot checks against the provider's values, not only the pure core's.
    let text = produced
        .iter()
        .find_map(|record| match &record.event {
            IngestEvent::Message(message)
                if message.provider_message_id
                    == format!("wamid.HBgNNDkxNTExMjM0NTY3OBUCABIY{token}01") =>
            {
                Some(message.clone())
            }
            _ => None,
        })
        .expect("the text message is on Kafka");
    assert_eq!(
        text.conversation_key,
        format!("{TENANT}:whatsapp:4915112345678")
    );
    assert_eq!(
        text.content,
        caas_events::model::Content::Text(caas_events::model::Text {
            body: "Grüße aus Köln! Ich hätte gern Auskunft.".into(),
            preview_url: false
        })
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rcs_message_and_event_reaches_kafka_once() {
    let service = Service::start(&[]).await;
    let snapshot = before().await;
    let token = unique_token();
    let mut expected = Vec::new();
    for name in RCS_FIXTURES {
        let data = fixture(name, &token);
        expected.extend(expected_rcs(&data));
        let (status, answer) = post_signed_rcs(&service, &data).await;
        assert_eq!(status, 200, "{name}: {answer}");
        assert_eq!(answer["produced"], 1, "{name}: {answer}");
    }
    for name in ["rcs_unknown_agent"] {
        let (status, answer) = post_signed_rcs(&service, &fixture(name, &token)).await;
        assert_eq!(status, 200, "{name}: {answer}");
        assert_eq!(answer["produced"], 0, "{name}: {answer}");
    }
    let produced = snapshot.produced_since().await;
    assert_exactly(&produced, &expected);
    let topics: Vec<&str> = expected.iter().map(IngestEvent::topic).collect();
    assert!(topics.contains(&topics::PRESENCE_EVENTS));
    assert!(topics.contains(&topics::INBOUND_STATUSES));
    assert!(topics.contains(&topics::CONVERSATION_EVENTS));
    let unknown_agent = expected_rcs_unknown(&token);
    none_of(&produced, &unknown_agent);
    service.stop().await;
}

/// What `rcs_unknown_agent` would have been, had its agent been ours.
fn expected_rcs_unknown(token: &str) -> Vec<IngestEvent> {
    let data = String::from_utf8(fixture("rcs_unknown_agent", token))
        .unwrap()
        .replace("someone-elses-agent", "demo-agent");
    expected_rcs(data.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_yields_every_entry_change_message_and_status() {
    let service = Service::start(&[]).await;
    let snapshot = before().await;
    let token = unique_token();
    let body = fixture("whatsapp_batch", &token);
    let expected = expected_whatsapp(&body);
    assert_eq!(expected.len(), 7);
    let (status, answer) = post_signed_whatsapp(&service, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["produced"], 7, "{answer}");
    assert_eq!(answer["unknown_tenant"], 1, "{answer}");
    let produced = snapshot.produced_since().await;
    assert_exactly(&produced, &expected);
    // The message for the unknown number in the same batch is not there.
    let ours = mine(&produced, &token);
    assert_eq!(ours.len(), 7);
    assert!(ours
        .iter()
        .all(|record| !record.key.ends_with(":4915100000000")));
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_webhook_twice_and_concurrently_is_on_kafka_once() {
    let service = Service::start(&[]).await;
    let snapshot = before().await;

    // Twice, one after the other.
    let sequential_token = unique_token();
    let body = fixture("whatsapp_batch", &sequential_token);
    let sequential = expected_whatsapp(&body);
    let (first, answer) = post_signed_whatsapp(&service, body.clone()).await;
    assert_eq!(
        (first, &answer["produced"]),
        (200, &serde_json::json!(7)),
        "{answer}"
    );
    let (second, answer) = post_signed_whatsapp(&service, body).await;
    assert_eq!(second, 200, "{answer}");
    assert_eq!(answer["produced"], 0, "{answer}");
    assert_eq!(answer["duplicates"], 7, "{answer}");

    // Five at once, WhatsApp and RCS.
    let concurrent_token = unique_token();
    let body = fixture("whatsapp_batch", &concurrent_token);
    let concurrent = expected_whatsapp(&body);
    let data = fixture("rcs_text", &concurrent_token);
    let concurrent_rcs = expected_rcs(&data);
    let whatsapp_posts = (0..5).map(|_| post_signed_whatsapp(&service, body.clone()));
    let rcs_posts = (0..5).map(|_| post_signed_rcs(&service, &data));
    let (whatsapp_answers, rcs_answers) = tokio::join!(
        futures::future::join_all(whatsapp_posts),
        futures::future::join_all(rcs_posts)
    );
    let mut produced_count = 0;
    for (status, answer) in whatsapp_answers.iter().chain(&rcs_answers) {
        assert_eq!(*status, 200, "{answer}");
        produced_count += answer["produced"].as_u64().unwrap();
    }
    assert_eq!(
        produced_count, 8,
        "7 WhatsApp events and 1 RCS message, once each"
    );

    let produced = snapshot.produced_since().await;
    assert_exactly(&produced, &sequential);
    assert_exactly(&produced, &concurrent);
    assert_exactly(&produced, &concurrent_rcs);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_webhooks_get_their_status_and_produce_nothing() {
    let service = Service::start(&[]).await;
    let snapshot = before().await;
    let token = unique_token();
    let body = fixture("whatsapp_text", &token);
    let would_be = expected_whatsapp(&body);

    // Wrong signature, missing signature, malformed signature.
    let wrong = whatsapp_signature(b"not-the-app-secret", &body);
    let (status, answer) = post_whatsapp(&service, body.clone(), Some(wrong)).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"], "invalid_signature");
    let (status, answer) = post_whatsapp(&service, body.clone(), None).await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("missing"),
        "{answer}"
    );
    let (status, _) = post_whatsapp(&service, body.clone(), Some("sha256=xyz".into())).await;
    assert_eq!(status, 401);

    // A signature over the same JSON re-serialised (non-ASCII unescaped, spacing changed) does
    // not authenticate the bytes Meta sent.
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let reserialised = serde_json::to_vec(&value).unwrap();
    assert_ne!(reserialised, body);
    let signature_of_reserialised = whatsapp_signature(APP_SECRET.as_bytes(), &reserialised);
    let (status, answer) =
        post_whatsapp(&service, body.clone(), Some(signature_of_reserialised)).await;
    assert_eq!(status, 401, "{answer}");

    // Bad JSON and the wrong shape, correctly signed: 400 with what is wrong.
    let (status, answer) =
        post_signed_whatsapp(&service, b"{\"object\": \"whatsapp_busi".to_vec()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "invalid_json");
    let (status, answer) =
        post_signed_whatsapp(&service, br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[]}}]}]}"#.to_vec()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "invalid_payload");
    assert!(
        answer["message"].as_str().unwrap().contains("metadata"),
        "{answer}"
    );

    // An unknown business number: 200 so Meta stops retrying, nothing produced.
    let unknown = fixture("whatsapp_unknown_number", &token);
    let (status, answer) = post_signed_whatsapp(&service, unknown.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            answer["produced"].as_u64(),
            answer["unknown_tenant"].as_u64()
        ),
        (Some(0), Some(1))
    );
    let unknown_would_be = expected_whatsapp(
        String::from_utf8(unknown)
            .unwrap()
            .replace("999999999999999", "100000000000001")
            .as_bytes(),
    );

    // Above 3 MiB: 413.
    let huge = vec![b' '; 3 * 1024 * 1024 + 1];
    let signature = whatsapp_signature(APP_SECRET.as_bytes(), &huge);
    let (status, answer) = post_whatsapp(&service, huge, Some(signature)).await;
    assert_eq!(status, 413, "{answer}");

    // RCS: wrong and missing signatures, a signed body that is not a user message.
    let data = fixture("rcs_text", &token);
    let rcs_would_be = expected_rcs(&data);
    let wrong = rbm_signature(b"not-the-client-token", &data);
    let (status, _) = post_rcs(&service, rcs_envelope(&data), Some(wrong)).await;
    assert_eq!(status, 401);
    let (status, _) = post_rcs(&service, rcs_envelope(&data), None).await;
    assert_eq!(status, 401);
    let (status, answer) = post_signed_rcs(&service, b"{not json").await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) =
        post_rcs(&service, b"{\"message\":{\"data\":\"%%%\"}}".to_vec(), None).await;
    assert_eq!(status, 400, "{answer}");

    let produced = snapshot.produced_since().await;
    none_of(&produced, &would_be);
    none_of(&produced, &unknown_would_be);
    none_of(&produced, &rcs_would_be);
    assert!(mine(&produced, &token).is_empty());
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_answer_only_our_tokens() {
    let service = Service::start(&[]).await;
    let client = http();
    let response = client
        .get(service.url("/webhooks/whatsapp"))
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", "1158201444"),
            ("hub.verify_token", VERIFY_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "1158201444");
    let response = client
        .get(service.url("/webhooks/whatsapp"))
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", "1158201444"),
            ("hub.verify_token", "guess"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    let (status, answer) = post_rcs(
        &service,
        serde_json::to_vec(
            &serde_json::json!({"clientToken": CLIENT_TOKEN, "secret": "rbm-secret-42"}),
        )
        .unwrap(),
        None,
    )
    .await;
    assert_eq!((status, answer), (200, serde_json::json!("rbm-secret-42")));
    let (status, _) = post_rcs(
        &service,
        br#"{"clientToken":"guess","secret":"rbm-secret-42"}"#.to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 403);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_unreachable_the_webhook_is_503_and_the_retry_is_produced() {
    let snapshot = before().await;
    let token = unique_token();
    let body = fixture("whatsapp_batch", &token);
    let data = fixture("rcs_event_read", &token);
    let expected: Vec<IngestEvent> = expected_whatsapp(&body)
        .into_iter()
        .chain(expected_rcs(&data))
        .collect();

    let broken = Service::start(&[
        ("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:1"),
        ("CAAS_INGEST_PRODUCE_TIMEOUT_MS", "1500"),
    ])
    .await;
    let (status, answer) = post_signed_whatsapp(&broken, body.clone()).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "unavailable");
    let (status, answer) = post_signed_rcs(&broken, &data).await;
    assert_eq!(status, 503, "{answer}");
    let ready = http().get(broken.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    broken.stop().await;

    // The provider retries; the broker is reachable again (a working instance).
    let working = Service::start(&[]).await;
    let (status, answer) = post_signed_whatsapp(&working, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["produced"], 7,
        "the failed attempt left no done mark: {answer}"
    );
    let (status, answer) = post_signed_rcs(&working, &data).await;
    assert_eq!(
        (status, &answer["produced"]),
        (200, &serde_json::json!(1)),
        "{answer}"
    );
    let produced = snapshot.produced_since().await;
    assert_exactly(&produced, &expected);
    working.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_webhooks_are_still_produced() {
    let service = Service::start(&[("CAAS_REDIS_URL", "redis://127.0.0.1:1")]).await;
    let snapshot = before().await;
    let token = unique_token();
    let body = fixture("whatsapp_text", &token);
    let expected = expected_whatsapp(&body);
    let (status, answer) = post_signed_whatsapp(&service, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["produced"], 1, "{answer}");
    let produced = snapshot.produced_since().await;
    assert_exactly(&produced, &expected);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_endpoints_and_the_openapi_document_share_the_port() {
    let service = Service::start(&[]).await;
    let client = http();
    let health = client.get(service.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(service.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    // Count something, then look for it.
    let _ = post_whatsapp(&service, b"{}".to_vec(), None).await;
    let metrics = client
        .get(service.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("caas_ingest_requests_total"), "{metrics}");
    assert!(
        metrics.contains("caas_ingest_signature_failures_total"),
        "{metrics}"
    );
    let openapi = client
        .get(service.url("/openapi.yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(openapi.status(), 200);
    let text = openapi.text().await.unwrap();
    assert!(text.starts_with("openapi: 3"), "{text}");
    assert!(text.contains("/webhooks/whatsapp") && text.contains("/webhooks/rcs"));
    service.stop().await;
}
