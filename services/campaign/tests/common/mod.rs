//! Helpers for the campaign service's tests against the real local stack (Kafka, registry,
//! MongoDB). One service per test binary runs on a runtime of its own; every test uses its own
//! campaign ids and customer numbers under the binary's tenant, and reads the topics from the
//! offsets it took before acting, so tests never see each other's records.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use caas_campaign::auth::sign;
use caas_events::model::OutboundCommand;
use caas_events::{topics, Codec, Event};
use caas_kafka::{KafkaConfig, OutboundRecord, Producer};
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::Env;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{json, Value};

/// Every wait ends after this with a failure that says what was awaited.
pub const WAIT: Duration = Duration::from_secs(120);
/// The MongoDB database of the test services.
pub const TEST_DATABASE: &str = "caas_campaign_it";
/// The JWT secret of the test service.
pub const JWT_SECRET: &str = "campaign-test-jwt-secret";

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

/// This test binary's tenant (one per run).
pub fn tenant() -> &'static str {
    static TENANT: OnceLock<String> = OnceLock::new();
    TENANT.get_or_init(|| format!("ct{}", short_id()))
}

/// A unique block of 8-digit subscriber numbers: `+49 170 <block><index>`.
pub fn numbers(count: usize) -> Vec<String> {
    let block = u64::from_str_radix(&short_id()[..6], 16).unwrap() % 9_000 + 1_000;
    (0..count)
        .map(|index| format!("+49170{block:04}{index:05}"))
        .collect()
}

/// The service's environment: the stack's `CAAS_*` settings plus the test's.
pub fn environment(extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut pairs: BTreeMap<String, String> = std::env::vars()
        .filter(|(key, _)| key.starts_with("CAAS_"))
        .collect();
    for (key, value) in [
        ("CAAS_CAMPAIGN_OPS_ADDR", "127.0.0.1:0".to_string()),
        ("CAAS_JWT_SECRET", JWT_SECRET.to_string()),
        ("CAAS_CAMPAIGN_GROUP_PREFIX", "caas-campaign-it".to_string()),
        ("CAAS_CAMPAIGN_NUMBER_RATE", "2000".to_string()),
        ("CAAS_CAMPAIGN_LEASE_MS", "4000".to_string()),
        ("CAAS_CAMPAIGN_SESSION_TIMEOUT_MS", "6000".to_string()),
        // A database of its own: a campaign service of the running stack (same topics, its own
        // consumer groups) then never takes this test's campaigns over.
        ("CAAS_MONGODB_DATABASE", TEST_DATABASE.to_string()),
        ("CAAS_LOG", env_var("CAAS_TEST_LOG", "warn")),
        ("CAAS_LOG_FORMAT", "pretty".to_string()),
        (
            "CAAS_CAMPAIGN_CONSENT_RULES",
            // Confirm only for this run's tenant: replaying other tests' STOP messages from the
            // shared topic must not message their customers.
            json!({ "*": { "confirm": false }, tenant(): { "confirm": true } }).to_string(),
        ),
    ] {
        pairs.insert(key.to_string(), value);
    }
    for (key, value) in extra {
        pairs.insert(key.to_string(), value.clone());
    }
    pairs.into_iter().collect()
}

/// Commit the end of every partition of `topics` for each of the test service's consumer
/// groups before it starts. The topics are the stack's shared ones: whatever other suites, load
/// runs or `make bench` (a 500,000-message backlog) wrote since this binary last ran is no
/// business of these tests, which only look at what they produce after the service started, but
/// the groups would have to consume all of it first (minutes, in a debug build) before reaching
/// a test's STOP or delivery status.
fn skip_to_the_end(groups: &[(&str, &[&str])]) {
    for (group, topics) in groups {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", *group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer to commit the group's offsets");
        let mut ends = TopicPartitionList::new();
        for topic in *topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .expect("topic metadata");
            for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                let (_, high) = consumer
                    .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
                    .expect("watermarks");
                ends.add_partition_offset(topic, partition.id(), Offset::Offset(high))
                    .expect("a partition offset");
            }
        }
        consumer
            .commit(&ends, rdkafka::consumer::CommitMode::Sync)
            .expect("commit the end of the topics for the test group");
    }
}

/// The in-process service shared by the tests of this binary.
pub fn service() -> SocketAddr {
    static ADDRESS: OnceLock<SocketAddr> = OnceLock::new();
    *ADDRESS.get_or_init(|| {
        let pairs = environment(&[]);
        let env = Env::from_pairs(
            pairs
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        );
        let config = caas_campaign::Config::from_env(&env).expect("test configuration");
        caas_runtime::telemetry::init(caas_campaign::SERVICE, &config.common);
        skip_to_the_end(&[
            (
                "caas-campaign-it.consent",
                &[topics::INBOUND_MESSAGES, topics::CONVERSATION_EVENTS],
            ),
            (
                "caas-campaign-it.tracking",
                &[topics::OUTBOUND_RESULTS, topics::INBOUND_STATUSES],
            ),
        ]);
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let outcome =
                    caas_campaign::run(config, CancellationToken::new(), move |address| {
                        let _ = sender.send(address);
                    })
                    .await;
                panic!("the campaign service stopped: {outcome:?}");
            });
        });
        receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("the service binds")
    })
}

pub fn token(role: &str) -> String {
    token_for(tenant(), role)
}

pub fn token_for(tenant: &str, role: &str) -> String {
    sign(
        &json!({ "sub": "op-test", "tenant": tenant, "role": role, "exp": 4_102_444_800i64 }),
        JWT_SECRET.as_bytes(),
    )
}

/// A client of the service's API as an admin of the test tenant.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
}

impl Api {
    pub fn new(address: SocketAddr) -> Self {
        Self::for_tenant(address, tenant())
    }

    pub fn for_tenant(address: SocketAddr, tenant: &str) -> Self {
        Self {
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
            token: token_for(tenant, "admin"),
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("the api answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.client.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    /// Upload CSV text in small chunks (a streamed body).
    pub async fn upload_csv(&self, csv: String, chunk: usize) -> (u16, Value) {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = csv
            .into_bytes()
            .chunks(chunk)
            .map(|piece| Ok(piece.to_vec()))
            .collect();
        let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        self.send(
            self.client
                .post(format!("{}/api/v1/audiences", self.base))
                .header("content-type", "text/csv")
                .body(body),
        )
        .await
    }

    /// Create a campaign and wait until the worker stored it.
    pub async fn create(&self, body: Value) -> String {
        let (status, answer) = self.post("/api/v1/campaigns", body).await;
        assert_eq!(status, 202, "{answer}");
        let campaign_id = answer["campaign_id"].as_str().unwrap().to_string();
        eventually("the campaign is stored", || async {
            self.get(&format!("/api/v1/campaigns/{campaign_id}"))
                .await
                .0
                == 200
        })
        .await;
        campaign_id
    }

    pub async fn campaign(&self, campaign_id: &str) -> Value {
        let (status, answer) = self.get(&format!("/api/v1/campaigns/{campaign_id}")).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// Every recipient of a campaign (optionally of one status).
    pub async fn recipients(&self, campaign_id: &str, status: Option<&str>) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after: Option<i64> = None;
        loop {
            let mut path = format!("/api/v1/campaigns/{campaign_id}/recipients?limit=1000");
            if let Some(status) = status {
                path.push_str(&format!("&status={status}"));
            }
            if let Some(after) = after {
                path.push_str(&format!("&after={after}"));
            }
            let (code, page) = self.get(&path).await;
            assert_eq!(code, 200, "{page}");
            all.extend(page["recipients"].as_array().unwrap().iter().cloned());
            match page["next_after"].as_i64() {
                Some(next) => after = Some(next),
                None => return all,
            }
        }
    }
}

/// Poll `condition` until it holds, at most [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if condition().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A record read back from a topic, decoded, with its Kafka timestamp.
#[derive(Debug, Clone)]
pub struct Seen<E> {
    pub event: E,
    pub timestamp_ms: i64,
}

/// Reads a topic from the end offsets taken at creation.
pub struct TopicReader {
    consumer: BaseConsumer,
    codec: Codec,
}

impl TopicReader {
    pub fn from_now(topic: &str) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", format!("campaign-test-reader-{}", short_id()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let partitions = metadata.topics()[0].partitions().len() as i32;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("watermarks");
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(high))
                .unwrap();
        }
        consumer.assign(&assignment).expect("assign");
        Self {
            consumer,
            codec: Codec::new(registry_url()).unwrap(),
        }
    }

    /// Read what arrived (for up to `quiet` without a record), decoding records of `E`.
    pub async fn drain<E: Event>(&self, quiet: Duration) -> Vec<Seen<E>> {
        let mut out = Vec::new();
        loop {
            let polled = self.consumer.poll(Duration::from_millis(0));
            match polled {
                Some(Ok(message)) => {
                    let Some(payload) = message.payload() else {
                        continue;
                    };
                    if let Ok(event) = self.codec.decode::<E>(payload).await {
                        out.push(Seen {
                            event,
                            timestamp_ms: message.timestamp().to_millis().unwrap_or_default(),
                        });
                    }
                }
                Some(Err(error)) => panic!("kafka read failed: {error}"),
                None => {
                    if quiet.is_zero() {
                        return out;
                    }
                    let started = Instant::now();
                    let mut got = false;
                    while started.elapsed() < quiet {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        if let Some(result) = self.consumer.poll(Duration::from_millis(0)) {
                            let message = result.expect("kafka read");
                            if let Some(payload) = message.payload() {
                                if let Ok(event) = self.codec.decode::<E>(payload).await {
                                    out.push(Seen {
                                        event,
                                        timestamp_ms: message
                                            .timestamp()
                                            .to_millis()
                                            .unwrap_or_default(),
                                    });
                                }
                            }
                            got = true;
                            break;
                        }
                    }
                    if !got {
                        return out;
                    }
                }
            }
        }
    }
}

/// Collects the send commands of one campaign as they arrive.
pub struct Commands {
    reader: TopicReader,
    pub campaign_id: String,
    pub seen: Vec<Seen<OutboundCommand>>,
}

impl Commands {
    pub fn from_now(campaign_id: &str) -> Self {
        Self {
            reader: TopicReader::from_now(caas_events::topics::OUTBOUND_COMMANDS),
            campaign_id: campaign_id.to_string(),
            seen: Vec::new(),
        }
    }

    /// Read what is there now.
    pub async fn poll(&mut self) {
        let campaign_id = self.campaign_id.clone();
        let new = self.reader.drain::<OutboundCommand>(Duration::ZERO).await;
        self.seen.extend(
            new.into_iter()
                .filter(|seen| seen.event.campaign_id.as_deref() == Some(campaign_id.as_str())),
        );
    }

    /// Read until at least `count` commands of the campaign were seen.
    pub async fn until(&mut self, count: usize) {
        let deadline = Instant::now() + WAIT;
        while self.seen.len() < count {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {count} commands of {} (saw {})",
                self.campaign_id,
                self.seen.len()
            );
            self.poll().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Distinct command ids per recipient; panics if a recipient got two different ids.
    pub fn ids_by_recipient(&self) -> HashMap<String, String> {
        let mut by_recipient: HashMap<String, String> = HashMap::new();
        for seen in &self.seen {
            let previous =
                by_recipient.insert(seen.event.to.clone(), seen.event.command_id.clone());
            if let Some(previous) = previous {
                assert_eq!(
                    previous, seen.event.command_id,
                    "recipient {} got two different command ids",
                    seen.event.to
                );
            }
        }
        by_recipient
    }
}

/// The largest number of timestamps in any window of `window_ms`.
pub fn max_in_window(mut times: Vec<i64>, window_ms: i64) -> usize {
    times.sort_unstable();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= window_ms {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

pub fn producer() -> Producer {
    Producer::new(&KafkaConfig::new(bootstrap())).expect("producer")
}

/// Produce an event to its topic.
pub async fn produce<E: Event>(event: &E) {
    let codec = Codec::new(registry_url()).unwrap();
    let payload = codec.encode(event).await.expect("encodes");
    producer()
        .send(OutboundRecord::new(E::TOPIC, event.key(), payload))
        .await
        .expect("kafka acknowledges");
}

/// The test database.
pub async fn database() -> mongodb::Database {
    let client = mongodb::Client::with_uri_str(env_var(
        "CAAS_MONGODB_URI",
        "mongodb://127.0.0.1:27017/?directConnection=true",
    ))
    .await
    .unwrap();
    client.database(TEST_DATABASE)
}

/// A campaign body with sensible defaults.
pub fn campaign_body(campaign_id: &str, audience_id: &str, rate_per_second: f64) -> Value {
    json!({
        "campaign_id": campaign_id,
        "name": format!("test {campaign_id}"),
        "channel": "whatsapp",
        "business_id": format!("biz-{campaign_id}"),
        "template": {
            "name": "spring_sale",
            "language": "en",
            "parameters": [{ "component": "body", "text": "{{first_name}}" }]
        },
        "audience_id": audience_id,
        "rate_per_second": rate_per_second,
        "timezone": "Europe/Berlin",
    })
}

/// CSV of `numbers` with a first_name column.
pub fn csv_of(numbers: &[String]) -> String {
    let mut csv = String::from("phone,first_name\n");
    for (index, number) in numbers.iter().enumerate() {
        csv.push_str(&format!("{number},Name{index}\n"));
    }
    csv
}
