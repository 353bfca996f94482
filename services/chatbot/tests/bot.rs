//! The chatbot against the real stack: customer messages in on `inbound.messages.v1`, bot
//! replies out on `outbound.commands.v1`, handoffs on `conversation.events.v1`, sessions in
//! Redis, flow files from a scratch directory. Each test has its own tenant and group.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use caas_events::model::{
    Channel, Content, ConversationEvent, ConversationEventKind, InboundMessage, InteractiveKind,
    InteractiveReply, InteractiveReplyKind, Origin, OutboundCommand, Text,
};
use caas_events::{keys, topics, Codec, Event};
use caas_kafka::{KafkaConfig, OutboundRecord, Producer};
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::Env;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(60);
const DEMO: &str = include_str!("../flows/demo.yaml");

fn env_var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn bootstrap() -> String {
    env_var("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
}

fn registry_url() -> String {
    env_var(
        "CAAS_SCHEMA_REGISTRY_URL",
        "http://127.0.0.1:8081/apis/ccompat/v7",
    )
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn ensure_topics() {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let names = [
        topics::INBOUND_MESSAGES.to_string(),
        topics::CONVERSATION_EVENTS.to_string(),
        topics::OUTBOUND_COMMANDS.to_string(),
        topics::dlq(topics::INBOUND_MESSAGES),
        topics::dlq(topics::CONVERSATION_EVENTS),
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
    let _ = admin.create_topics(&new_topics, &AdminOptions::new()).await;
}

/// What the bot produced for one tenant: commands and conversation events.
#[derive(Debug, Clone)]
enum Output {
    Command(Box<OutboundCommand>),
    Handling(Box<ConversationEvent>),
}

struct Outputs {
    consumer: StreamConsumer,
    codec: Codec,
    tenant: String,
    seen: Vec<Output>,
}

impl Outputs {
    fn from_now(tenant: &str) -> Self {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", format!("chatbot-test-out-{}", short_id()))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for topic in [topics::OUTBOUND_COMMANDS, topics::CONVERSATION_EVENTS] {
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
        Self {
            consumer,
            codec: Codec::new(registry_url()).unwrap(),
            tenant: tenant.to_string(),
            seen: Vec::new(),
        }
    }

    async fn poll_for(&mut self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return;
            }
            let Ok(received) = tokio::time::timeout(remaining, self.consumer.recv()).await else {
                return;
            };
            let message = received.unwrap();
            let Some(payload) = message.payload() else {
                continue;
            };
            if message.topic() == topics::OUTBOUND_COMMANDS {
                if let Ok(command) = self.codec.decode::<OutboundCommand>(payload).await {
                    if command.tenant_id == self.tenant {
                        self.seen.push(Output::Command(Box::new(command)));
                    }
                }
            } else if let Ok(event) = self.codec.decode::<ConversationEvent>(payload).await {
                if event.tenant_id == self.tenant && event.source == "chatbot" {
                    self.seen.push(Output::Handling(Box::new(event)));
                }
            }
        }
    }

    /// Wait until `count` outputs for `customer` arrived (beyond those already seen).
    async fn expect(&mut self, customer: &str, count: usize) -> Vec<Output> {
        let before = self.for_customer(customer).len();
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.for_customer(customer).len() < before + count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {count} outputs for {customer}: {:#?}",
                self.for_customer(customer)
            );
            self.poll_for(Duration::from_millis(300)).await;
        }
        self.for_customer(customer)[before..].to_vec()
    }

    fn for_customer(&self, customer: &str) -> Vec<Output> {
        self.seen
            .iter()
            .filter(|output| match output {
                Output::Command(command) => command.to == customer,
                Output::Handling(event) => {
                    event.conversation_key.ends_with(&format!(":{customer}"))
                }
            })
            .cloned()
            .collect()
    }
}

struct Harness {
    tenant: String,
    phone_number_id: String,
    flows_dir: PathBuf,
    ops: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    codec: Codec,
    producer: Producer,
    outputs: Outputs,
}

impl Harness {
    async fn start(flow_text: impl Fn(&str) -> String) -> Self {
        ensure_topics().await;
        let tenant = format!("bot{}", short_id());
        let flows_dir = std::env::temp_dir().join(format!("caas-chatbot-test-{}", short_id()));
        std::fs::create_dir_all(&flows_dir).unwrap();
        std::fs::write(flows_dir.join(format!("{tenant}.yaml")), flow_text(&tenant)).unwrap();
        let outputs = Outputs::from_now(&tenant);
        let mut pairs: Vec<(String, String)> = std::env::vars()
            .filter(|(key, _)| key.starts_with("CAAS_"))
            .collect();
        pairs.extend([
            (
                "CAAS_CHATBOT_OPS_ADDR".to_string(),
                "127.0.0.1:0".to_string(),
            ),
            (
                "CAAS_CHATBOT_GROUP_ID".to_string(),
                format!("chatbot-test-{}", short_id()),
            ),
            (
                "CAAS_CHATBOT_FLOWS_DIR".to_string(),
                flows_dir.display().to_string(),
            ),
            ("CAAS_CHATBOT_RELOAD_MS".to_string(), "200".to_string()),
            ("CAAS_CHATBOT_TICK_MS".to_string(), "200".to_string()),
        ]);
        let env = Env::from_pairs(
            pairs
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        );
        let config = caas_chatbot::Config::from_env(&env).unwrap();
        let shutdown = CancellationToken::new();
        let (bound_sender, bound) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(caas_chatbot::run(
            config,
            shutdown.clone(),
            move |address| {
                let _ = bound_sender.send(address);
            },
        ));
        let ops = tokio::time::timeout(Duration::from_secs(30), bound)
            .await
            .unwrap()
            .unwrap();
        Self {
            tenant,
            phone_number_id: format!("8{:014}", now_millis()),
            flows_dir,
            ops,
            shutdown,
            task,
            codec: Codec::new(registry_url()).unwrap(),
            producer: Producer::new(&KafkaConfig::new(bootstrap()).with_client_id("chatbot-tests"))
                .unwrap(),
            outputs,
        }
    }

    async fn produce<E: Event>(&self, event: &E) {
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

    fn inbound(&self, customer: &str, content: Content) -> InboundMessage {
        let provider_message_id = format!("wamid.bot{}", short_id());
        InboundMessage {
            event_id: keys::deterministic_event_id(&["chatbot-test", &provider_message_id]),
            tenant_id: self.tenant.clone(),
            conversation_key: keys::conversation_key(&self.tenant, Channel::Whatsapp, customer),
            channel: Channel::Whatsapp,
            occurred_at: now_millis(),
            recorded_at: now_millis(),
            source: "chatbot-test".to_string(),
            trace_parent: None,
            provider_message_id,
            customer_id: customer.to_string(),
            customer_display_name: Some("Kim".to_string()),
            business_id: Some(self.phone_number_id.clone()),
            reply_to: None,
            content,
        }
    }

    async fn say(&self, customer: &str, text: &str) -> InboundMessage {
        let message = self.inbound(
            customer,
            Content::Text(Text {
                body: text.to_string(),
                preview_url: false,
            }),
        );
        self.produce(&message).await;
        message
    }

    async fn choose(&self, customer: &str, id: &str, title: &str) {
        let reply = InteractiveReply {
            kind: InteractiveReplyKind::Button,
            id: id.to_string(),
            title: title.to_string(),
            description: None,
        };
        self.produce(&self.inbound(customer, Content::InteractiveReply(reply)))
            .await;
    }

    async fn flows_status(&self) -> serde_json::Value {
        reqwest::get(format!("http://{}/flows", self.ops))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let _ = std::fs::remove_dir_all(&self.flows_dir);
    }
}

fn demo_for(tenant: &str) -> String {
    DEMO.replace("tenant: demo", &format!("tenant: {tenant}"))
}

fn command(output: &Output) -> &OutboundCommand {
    match output {
        Output::Command(command) => command,
        other => panic!("expected a command, got {other:?}"),
    }
}

fn menu_options(output: &Output) -> (InteractiveKind, String, Vec<String>) {
    match &command(output).content {
        Content::Interactive(interactive) => (
            interactive.kind,
            interactive.body.clone(),
            interactive
                .options
                .iter()
                .map(|option| option.id.clone())
                .collect(),
        ),
        other => panic!("expected a menu, got {other:?}"),
    }
}

fn text_of(output: &Output) -> String {
    match &command(output).content {
        Content::Text(text) => text.body.clone(),
        other => panic!("expected a text, got {other:?}"),
    }
}

#[tokio::test]
async fn hi_menu_button_handoff_silence_and_release() {
    let mut harness = Harness::start(demo_for).await;
    let customer = "4917600000001";

    let hi = harness.say(customer, "hi").await;
    let menu = harness.outputs.expect(customer, 1).await;
    let (kind, body, options) = menu_options(&menu[0]);
    assert_eq!(kind, InteractiveKind::Buttons);
    assert!(body.starts_with("Hi Kim!"), "{body}");
    assert_eq!(options, ["track", "hours", "human"]);
    let first_command = command(&menu[0]);
    assert_eq!(first_command.origin, Origin::Bot);
    assert_eq!(
        first_command.business_id.as_deref(),
        Some(harness.phone_number_id.as_str())
    );

    // The same event delivered again: no second reply.
    harness.produce(&hi).await;
    harness.outputs.poll_for(Duration::from_secs(3)).await;
    assert_eq!(
        harness.outputs.for_customer(customer).len(),
        1,
        "a redelivered message got a second reply"
    );

    harness.choose(customer, "hours", "Opening hours").await;
    let hours = harness.outputs.expect(customer, 2).await;
    assert_eq!(
        text_of(&hours[0]),
        "We are open Monday to Friday, 9:00 to 18:00."
    );
    assert_eq!(menu_options(&hours[1]).2, ["main_menu", "human", "done"]);

    harness.choose(customer, "human", "Talk to a person").await;
    // The text and the handoff event travel on different topics: their order is not given.
    let handoff = harness.outputs.expect(customer, 2).await;
    let (texts, events): (Vec<&Output>, Vec<&Output>) = handoff
        .iter()
        .partition(|output| matches!(output, Output::Command(_)));
    assert!(text_of(texts[0]).contains("colleague"));
    match events[0] {
        Output::Handling(event) => {
            assert_eq!(event.kind, ConversationEventKind::HandoffToHuman);
            assert_eq!(
                event.reason.as_deref(),
                Some("the customer asked for a person")
            );
        }
        other => panic!("expected the handoff event, got {other:?}"),
    }

    // A human has it: the bot says nothing.
    harness.say(customer, "hello?").await;
    harness.outputs.poll_for(Duration::from_secs(3)).await;
    assert_eq!(
        harness.outputs.for_customer(customer).len(),
        5,
        "the bot spoke during the handoff"
    );

    // An operator releases it back to the bot.
    let released = ConversationEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        tenant_id: harness.tenant.clone(),
        conversation_key: keys::conversation_key(&harness.tenant, Channel::Whatsapp, customer),
        channel: Channel::Whatsapp,
        occurred_at: now_millis(),
        recorded_at: now_millis(),
        source: "gateway".to_string(),
        trace_parent: None,
        kind: ConversationEventKind::ReleasedToBot,
        actor_operator_id: Some("op-1".to_string()),
        assignee_operator_id: None,
        previous_assignee_operator_id: Some("op-1".to_string()),
        reason: None,
    };
    harness.produce(&released).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    harness.say(customer, "menu").await;
    let again = harness.outputs.expect(customer, 1).await;
    assert!(menu_options(&again[0]).1.starts_with("Hi Kim!"));

    let ids: std::collections::HashSet<String> = harness
        .outputs
        .for_customer(customer)
        .iter()
        .filter_map(|output| match output {
            Output::Command(command) => Some(command.command_id.clone()),
            Output::Handling(_) => None,
        })
        .collect();
    assert_eq!(ids.len(), 5, "every reply has its own command id");
    harness.stop().await;
}

#[tokio::test]
async fn an_invalid_flow_file_is_refused_naming_the_step_and_the_running_flows_stay() {
    let mut harness = Harness::start(demo_for).await;
    let file = harness.flows_dir.join(format!("{}.yaml", harness.tenant));

    harness.say("4917600000011", "hi").await;
    harness.outputs.expect("4917600000011", 1).await;

    let broken = demo_for(&harness.tenant).replace(
        "        on_timeout: end\n\n      - id: route_order",
        "        on_timeout: nowhere\n\n      - id: route_order",
    );
    assert_ne!(broken, demo_for(&harness.tenant));
    std::fs::write(&file, broken).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let message = loop {
        let status = harness.flows_status().await;
        if let Some(message) = status["errors"]
            .as_object()
            .and_then(|errors| errors.values().next())
            .and_then(|value| value.as_str())
        {
            break message.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broken file was not noticed: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(message.contains("step \"ask_order\""), "{message}");
    assert!(message.contains("\"nowhere\""), "{message}");
    assert!(
        message.contains(&format!("{}.yaml", harness.tenant)),
        "{message}"
    );

    // The flows loaded before still answer.
    harness.say("4917600000012", "hi").await;
    let still = harness.outputs.expect("4917600000012", 1).await;
    assert!(menu_options(&still[0]).1.starts_with("Hi Kim!"));

    // A fixed file takes effect without a restart.
    std::fs::write(
        &file,
        demo_for(&harness.tenant).replace("I'm the demo assistant", "I'm the new assistant"),
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while harness.flows_status().await["errors"] != serde_json::json!({}) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fixed file was not loaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    harness.say("4917600000013", "hi").await;
    let fixed = harness.outputs.expect("4917600000013", 1).await;
    assert!(
        menu_options(&fixed[0]).1.contains("new assistant"),
        "{:?}",
        menu_options(&fixed[0])
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_waiting_step_times_out_by_itself() {
    let flow = |tenant: &str| {
        format!(
            "tenant: {tenant}\nflows:\n  - id: main\n    triggers: [ {{ first_message: true }} ]\n    steps:\n      \
             - {{ id: ask, type: wait, text: Still there?, timeout: 1s, on_timeout: nudge }}\n      \
             - {{ id: thanks, type: end, text: Thanks! }}\n      \
             - {{ id: nudge, type: end, text: We will close this chat now. }}\n"
        )
    };
    let mut harness = Harness::start(flow).await;
    let customer = "4917600000021";
    harness.say(customer, "hello").await;
    let outputs = harness.outputs.expect(customer, 2).await;
    assert_eq!(text_of(&outputs[0]), "Still there?");
    assert_eq!(text_of(&outputs[1]), "We will close this chat now.");
    harness.stop().await;
}
