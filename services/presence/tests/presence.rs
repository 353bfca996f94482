//! The presence worker against the real stack: missed heartbeats end in an offline update,
//! typing lapses without a stop, repeated identical signals publish nothing new, and bad
//! records go to the DLQ. Each test has its own topics (a prefix), group and tenant.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use caas_events::keys::{conversation_key, operator_key};
use caas_events::model::{
    Channel, InboundStatus, MessageStatus, PresenceEvent, PresenceKind, PresenceSubject,
    PresenceUpdate,
};
use caas_events::{topics, Codec};
use caas_kafka::dlq::headers;
use caas_kafka::{dlq_topic, KafkaConfig, OutboundRecord, Producer, Record};
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::Env;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::ClientConfig;
use redis::AsyncCommands;

const WAIT: Duration = Duration::from_secs(60);

fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

struct World {
    prefix: String,
    tenant: String,
    codec: Codec,
    producer: Producer,
    updates: Arc<Mutex<Vec<PresenceUpdate>>>,
    shutdown: CancellationToken,
    service: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

/// The test's own copies of the topics presence reads and writes.
fn topic_names(prefix: &str) -> Vec<String> {
    [
        topics::PRESENCE_EVENTS.to_string(),
        dlq_topic(topics::PRESENCE_EVENTS),
        topics::INBOUND_STATUSES.to_string(),
        dlq_topic(topics::INBOUND_STATUSES),
        topics::PRESENCE_UPDATES.to_string(),
    ]
    .iter()
    .map(|topic| format!("{prefix}{topic}"))
    .collect()
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

impl World {
    async fn start() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("test-{}.", &id[..12]);
        let bootstrap = var("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092");
        let admin = admin(&bootstrap);
        let names = topic_names(&prefix);
        let new_topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| NewTopic::new(name, 3, TopicReplication::Fixed(1)))
            .collect();
        for result in admin
            .create_topics(new_topics.iter(), &AdminOptions::new())
            .await
            .unwrap()
        {
            result.expect("topic created");
        }
        let group = format!("caas-presence-test-{}", &id[..12]);
        let pairs = [
            ("CAAS_KAFKA_BOOTSTRAP", bootstrap.clone()),
            (
                "CAAS_SCHEMA_REGISTRY_URL",
                var(
                    "CAAS_SCHEMA_REGISTRY_URL",
                    "http://127.0.0.1:8081/apis/ccompat/v7",
                ),
            ),
            (
                "CAAS_REDIS_URL",
                var("CAAS_REDIS_URL", "redis://127.0.0.1:6379"),
            ),
            ("CAAS_PRESENCE_OPS_ADDR", "127.0.0.1:0".to_string()),
            ("CAAS_PRESENCE_GROUP_ID", group),
            ("CAAS_PRESENCE_TOPIC_PREFIX", prefix.clone()),
            ("CAAS_PRESENCE_SCAN_INTERVAL_MS", "200".to_string()),
            ("CAAS_SHUTDOWN_GRACE_MS", "8000".to_string()),
        ];
        let config = caas_presence::Config::from_env(&Env::from_pairs(
            pairs.iter().map(|(key, value)| (*key, value.as_str())),
        ))
        .unwrap();
        let shutdown = CancellationToken::new();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let service = tokio::spawn(caas_presence::run(
            config,
            shutdown.clone(),
            move |address| {
                let _ = sender.send(address);
            },
        ));
        receiver.await.expect("bound");

        let codec = Codec::new(var(
            "CAAS_SCHEMA_REGISTRY_URL",
            "http://127.0.0.1:8081/apis/ccompat/v7",
        ))
        .unwrap();
        let updates = Arc::new(Mutex::new(Vec::new()));
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("reader-{id}"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer
            .subscribe(&[format!("{prefix}{}", topics::PRESENCE_UPDATES).as_str()])
            .unwrap();
        let reader = {
            let updates = updates.clone();
            let codec = codec.clone();
            tokio::spawn(async move {
                loop {
                    let Ok(message) = consumer.recv().await else {
                        continue;
                    };
                    let record = Record::from_message(&message);
                    let update: PresenceUpdate = codec
                        .decode(record.payload.as_deref().unwrap_or_default())
                        .await
                        .expect("an update decodes");
                    updates.lock().unwrap().push(update);
                }
            })
        };
        let world = Self {
            prefix,
            tenant: format!("t{}", &id[..10]),
            codec,
            producer: Producer::new(&KafkaConfig::new(bootstrap).with_client_id("presence-tests"))
                .unwrap(),
            updates,
            shutdown,
            service: Some(service),
            reader: Some(reader),
        };
        // Signals lapse: the tests' signals must not wait for the group to form. A warm-up
        // signal's update says the worker consumes.
        let warm_up = "op-warm-up";
        let mut online = world.event(
            PresenceKind::Online,
            &operator_key(&world.tenant, warm_up),
            PresenceSubject::Operator,
            warm_up,
        );
        online.expires_at = Some(online.occurred_at + 120_000);
        world.send_event(&online).await;
        world
            .wait_for(
                "the worker to consume",
                warm_up,
                PresenceKind::Online,
                |updates| !updates.is_empty(),
            )
            .await;
        world
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(service) = self.service.take() {
            tokio::time::timeout(Duration::from_secs(30), service)
                .await
                .expect("presence stops in time")
                .unwrap()
                .unwrap();
        }
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
        let admin = admin(&var("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092"));
        let names = topic_names(&self.prefix);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let _ = admin.delete_topics(&refs, &AdminOptions::new()).await;
    }

    fn event(
        &self,
        kind: PresenceKind,
        key: &str,
        subject: PresenceSubject,
        subject_id: &str,
    ) -> PresenceEvent {
        let now = now_ms();
        PresenceEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: self.tenant.clone(),
            conversation_key: key.to_string(),
            channel: caas_events::keys::parse_conversation_key(key).map(|parsed| parsed.channel),
            occurred_at: now,
            recorded_at: now,
            source: "test".to_string(),
            trace_parent: None,
            kind,
            subject,
            subject_id: subject_id.to_string(),
            provider_message_id: None,
            expires_at: None,
        }
    }

    async fn send_event(&self, event: &PresenceEvent) {
        let payload = self.codec.encode(event).await.unwrap();
        self.producer
            .send(OutboundRecord::new(
                format!("{}{}", self.prefix, topics::PRESENCE_EVENTS),
                event.conversation_key.as_str(),
                payload,
            ))
            .await
            .unwrap();
    }

    async fn send_read_status(&self, key: &str, customer: &str, message: &str) {
        let now = now_ms();
        let status = InboundStatus {
            event_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: self.tenant.clone(),
            conversation_key: key.to_string(),
            channel: Channel::Whatsapp,
            occurred_at: now,
            recorded_at: now,
            source: "test".to_string(),
            trace_parent: None,
            provider_message_id: message.to_string(),
            status: MessageStatus::Read,
            recipient_id: customer.to_string(),
            business_id: None,
            errors: vec![],
            conversation: None,
            pricing: None,
            biz_opaque_callback_data: None,
        };
        let payload = self.codec.encode(&status).await.unwrap();
        self.producer
            .send(OutboundRecord::new(
                format!("{}{}", self.prefix, topics::INBOUND_STATUSES),
                key,
                payload,
            ))
            .await
            .unwrap();
    }

    /// The updates about one subject so far.
    fn updates_of(&self, subject_id: &str, kind: PresenceKind) -> Vec<PresenceUpdate> {
        self.updates
            .lock()
            .unwrap()
            .iter()
            .filter(|update| update.subject_id == subject_id && update.kind == kind)
            .cloned()
            .collect()
    }

    async fn wait_for(
        &self,
        what: &str,
        subject_id: &str,
        kind: PresenceKind,
        test: impl Fn(&[PresenceUpdate]) -> bool,
    ) -> Vec<PresenceUpdate> {
        let outcome = tokio::time::timeout(WAIT, async {
            loop {
                let updates = self.updates_of(subject_id, kind);
                if test(&updates) {
                    return updates;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        outcome.unwrap_or_else(|_| {
            panic!(
                "timed out waiting for {what}; updates: {:?}",
                self.updates_of(subject_id, kind)
            )
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_whose_heartbeats_stop_goes_offline_within_the_expiry() {
    let world = World::start().await;
    let operator = "op-heartbeat";
    let key = operator_key(&world.tenant, operator);
    for _ in 0..5 {
        let mut heartbeat = world.event(
            PresenceKind::Online,
            &key,
            PresenceSubject::Operator,
            operator,
        );
        heartbeat.expires_at = Some(heartbeat.occurred_at + 1_500);
        world.send_event(&heartbeat).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let online = world
        .wait_for("online", operator, PresenceKind::Online, |updates| {
            !updates.is_empty()
        })
        .await;
    assert!(online[0].active);
    let mut redis =
        caas_runtime::probe::redis_connection(&var("CAAS_REDIS_URL", "redis://127.0.0.1:6379"))
            .await
            .unwrap();
    let index = caas_presence::keys::online_index(&world.tenant);
    let score: Option<f64> = redis
        .zscore(&index, format!("operator:{operator}"))
        .await
        .unwrap();
    assert!(score.is_some(), "listed as online while heartbeating");

    // Heartbeats stopped: the worker notices the lapse by itself.
    let updates = world
        .wait_for(
            "offline after the last heartbeat lapsed",
            operator,
            PresenceKind::Online,
            |updates| updates.iter().any(|update| !update.active),
        )
        .await;
    let actives: Vec<bool> = updates.iter().map(|update| update.active).collect();
    assert_eq!(
        actives,
        vec![true, false],
        "one online, one offline: {updates:?}"
    );
    assert_eq!(updates[1].conversation_key, key);
    let score: Option<f64> = redis
        .zscore(&index, format!("operator:{operator}"))
        .await
        .unwrap();
    assert!(score.is_none(), "no longer listed as online");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_lapses_without_a_stop_event_and_repeats_are_not_news() {
    let world = World::start().await;
    let customer = "4917000000001";
    let key = conversation_key(&world.tenant, Channel::Whatsapp, customer);
    for _ in 0..3 {
        let mut typing = world.event(
            PresenceKind::Typing,
            &key,
            PresenceSubject::Customer,
            customer,
        );
        typing.expires_at = Some(typing.occurred_at + 1_000);
        world.send_event(&typing).await;
    }
    let updates = world
        .wait_for(
            "typing to start and lapse",
            customer,
            PresenceKind::Typing,
            |updates| updates.iter().any(|update| !update.active),
        )
        .await;
    let actives: Vec<bool> = updates.iter().map(|update| update.active).collect();
    assert_eq!(actives, vec![true, false], "{updates:?}");
    assert_eq!(updates[0].conversation_key, key);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_identical_reads_publish_one_update() {
    let world = World::start().await;
    let customer = "4917000000002";
    let operator = "op-reader";
    let key = conversation_key(&world.tenant, Channel::Whatsapp, customer);

    // The customer reads m1 (two webhooks), then m2: m2's update proves m1's repeat was handled.
    world.send_read_status(&key, customer, "m1").await;
    world.send_read_status(&key, customer, "m1").await;
    world.send_read_status(&key, customer, "m2").await;
    let reads = world
        .wait_for(
            "the customer's read of m2",
            customer,
            PresenceKind::Read,
            |updates| {
                updates
                    .iter()
                    .any(|update| update.read_provider_message_id.as_deref() == Some("m2"))
            },
        )
        .await;
    let read_ids: Vec<Option<String>> = reads
        .iter()
        .map(|update| update.read_provider_message_id.clone())
        .collect();
    assert_eq!(
        read_ids,
        vec![Some("m1".to_string()), Some("m2".to_string())]
    );

    // The operator reads m1 twice, then types: the typing update proves the repeat was handled.
    for _ in 0..2 {
        let mut read = world.event(
            PresenceKind::Read,
            &key,
            PresenceSubject::Operator,
            operator,
        );
        read.provider_message_id = Some("m1".to_string());
        world.send_event(&read).await;
    }
    let typing = world.event(
        PresenceKind::Typing,
        &key,
        PresenceSubject::Operator,
        operator,
    );
    world.send_event(&typing).await;
    world
        .wait_for(
            "the operator typing",
            operator,
            PresenceKind::Typing,
            |updates| !updates.is_empty(),
        )
        .await;
    assert_eq!(world.updates_of(operator, PresenceKind::Read).len(), 1);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_go_to_the_dlq_and_the_partition_keeps_flowing() {
    let world = World::start().await;
    let operator = "op-after-poison";
    let key = operator_key(&world.tenant, operator);
    let events_topic = format!("{}{}", world.prefix, topics::PRESENCE_EVENTS);
    world
        .producer
        .send(OutboundRecord::new(
            events_topic.as_str(),
            key.as_str(),
            b"garbage".to_vec(),
        ))
        .await
        .unwrap();
    let mut typing_without_conversation = world.event(
        PresenceKind::Typing,
        &key,
        PresenceSubject::Operator,
        operator,
    );
    typing_without_conversation.event_id = "typing-without-conversation".to_string();
    world.send_event(&typing_without_conversation).await;
    let online = world.event(
        PresenceKind::Online,
        &key,
        PresenceSubject::Operator,
        operator,
    );
    world.send_event(&online).await;
    world
        .wait_for(
            "online after the bad records",
            operator,
            PresenceKind::Online,
            |updates| !updates.is_empty(),
        )
        .await;

    let reader: StreamConsumer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            var("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        )
        .set("group.id", format!("dlq-reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    reader
        .subscribe(&[dlq_topic(&events_topic).as_str()])
        .unwrap();
    let mut reasons = Vec::new();
    tokio::time::timeout(WAIT, async {
        while reasons.len() < 2 {
            let message = reader.recv().await.unwrap();
            let record = Record::from_message(&message);
            reasons.push(
                record
                    .header_str(headers::ERROR)
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    })
    .await
    .expect("two dead letters");
    reasons.sort();
    assert!(
        reasons[0].contains("needs a conversation key"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("not Confluent-framed"), "{reasons:?}");
    world.stop().await;
}
