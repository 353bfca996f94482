//! The gateway against the real local stack: Kafka, the registry, MongoDB and Redis from
//! `make up`, gateway instances in-process on port 0 sharing a consumer group and a Redis
//! adapter prefix of their own.

mod common;

use std::time::Duration;

use caas_events::keys;
use caas_events::model::{Channel, Content, ConversationEvent, InboundMessage, OutboundCommand};
use caas_logger::domain::docs::{inbound_message_id, outbound_message_id};
use common::{token, token_with, unique, Cluster, EventProducer, TestSocket, TopicTail};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

fn inbound(tenant: &str, customer: &str, body: &str) -> InboundMessage {
    common::inbound_text(tenant, customer, body)
}

async fn join(socket: &TestSocket, conversation_key: &str) {
    let ack = socket
        .emit_ack(
            "conversation.join",
            json!({ "conversation_key": conversation_key }),
        )
        .await;
    assert_eq!(ack["ok"], true, "join {conversation_key}: {ack}");
}

fn is_message(id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |payload: &Value| payload["id"] == id
}

/// The id operators see for an inbound message (the logger's `messages` `_id`).
fn id_of(message: &InboundMessage) -> String {
    inbound_message_id(message.channel.as_str(), &message.provider_message_id)
}

#[tokio::test]
async fn an_event_consumed_by_one_instance_reaches_operators_on_the_other_with_its_seq() {
    let cluster = Cluster::new().await;
    // Instance A consumes; instance B cannot reach Kafka at all, so whatever its operators get
    // came from A through the Redis adapter.
    let logger = cluster.start_logger().await;
    let consuming = cluster.start(&[]).await;
    let socket_only = cluster
        .start(&[("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:1")])
        .await;
    let tenant = unique("t");
    let operator = socket_only
        .operator(&token(&tenant, "op-b", "operator"))
        .await;
    let message = inbound(&tenant, "4915100000001", "hello from the other side");
    join(&operator, &message.conversation_key).await;

    EventProducer::new().produce(&message).await;

    let delivered = operator
        .wait_for("message.new", WAIT, is_message(&id_of(&message)))
        .await
        .expect("message.new reaches the operator on the other instance");
    // The logger gave the conversation's first event seq 1.
    assert_eq!(delivered["seq"], 1);
    assert_eq!(
        delivered["conversation_key"],
        message.conversation_key.as_str()
    );
    assert_eq!(delivered["direction"], "inbound");
    assert_eq!(delivered["preview"], "hello from the other side");
    assert_eq!(
        delivered["content"]["text"]["body"],
        "hello from the other side"
    );
    let listed = operator
        .wait_for("conversation.updated", WAIT, |payload| {
            payload["conversation_key"] == message.conversation_key.as_str()
        })
        .await
        .expect("the tenant's list hears of it");
    // The logger's snapshot of the conversation, as of this event.
    assert_eq!(listed["partial"], false, "{listed}");
    assert_eq!(listed["seq"], 1);
    assert_eq!(listed["unread_count"], 1);
    assert_eq!(listed["mode"], "bot");
    assert_eq!(listed["customer_name"], "Kim");
    assert_eq!(
        listed["last_message"]["preview"],
        "hello from the other side"
    );
    // Once, not once per instance.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        operator.count("message.new", is_message(&id_of(&message))),
        1
    );

    socket_only.stop().await;
    consuming.stop().await;
    logger.stop().await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn an_event_the_logger_never_sequences_is_emitted_without_seq() {
    let cluster = Cluster::new().await;
    let gateway = cluster.start(&[("CAAS_GATEWAY_SEQ_WAIT_MS", "300")]).await;
    let tenant = unique("t");
    let operator = gateway.operator(&token(&tenant, "op-1", "operator")).await;
    let message = inbound(&tenant, "4915100000002", "no logger here");
    join(&operator, &message.conversation_key).await;
    EventProducer::new().produce(&message).await;
    let delivered = operator
        .wait_for("message.new", WAIT, is_message(&id_of(&message)))
        .await
        .expect("emitted after the bounded wait");
    assert!(delivered["seq"].is_null(), "{delivered}");
    gateway.stop().await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn message_send_becomes_an_operator_command_on_kafka() {
    let cluster = Cluster::new().await;
    let gateway = cluster.start(&[]).await;
    let tenant = unique("t");
    let operator = gateway.operator(&token(&tenant, "op-7", "operator")).await;
    let conversation_key = keys::conversation_key(&tenant, Channel::Whatsapp, "4915100000003");
    join(&operator, &conversation_key).await;
    let commands = TopicTail::new(caas_events::topics::OUTBOUND_COMMANDS).await;

    let payload = json!({
        "conversation_key": conversation_key,
        "text": "Hi, how can I help?",
        "idempotency_id": "reply-1",
    });
    let ack = operator.emit_ack("message.send", payload.clone()).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let command_id = ack["id"]
        .as_str()
        .expect("the ack carries the command id")
        .to_string();

    let producer = EventProducer::new();
    let command: OutboundCommand = commands
        .find(producer.codec(), WAIT, |command: &OutboundCommand| {
            command.command_id == command_id
        })
        .await
        .expect("the command is on outbound.commands.v1");
    assert_eq!(command.origin, caas_events::model::Origin::Operator);
    assert_eq!(command.operator_id.as_deref(), Some("op-7"));
    assert_eq!(command.conversation_key, conversation_key);
    assert_eq!(command.to, "4915100000003");
    assert_eq!(command.source, "gateway");
    assert!(
        matches!(command.content, Content::Text(ref text) if text.body == "Hi, how can I help?")
    );

    // The same idempotency id gives the same command id: a retried send is one message.
    let again = operator.emit_ack("message.send", payload).await;
    assert_eq!(again["id"], command_id.as_str());
    // Without one, every send is a new command.
    let fresh = operator
        .emit_ack(
            "message.send",
            json!({ "conversation_key": conversation_key, "text": "more" }),
        )
        .await;
    assert_eq!(fresh["ok"], true);
    assert_ne!(fresh["id"], command_id.as_str());

    // Operators watching the conversation see the pending message.
    let pending = operator
        .wait_for(
            "message.new",
            WAIT,
            is_message(&outbound_message_id(&tenant, &command_id)),
        )
        .await
        .expect("the command is fanned out as message.new");
    assert_eq!(pending["status"], "queued");
    assert_eq!(pending["command_id"], command_id.as_str());
    assert_eq!(pending["origin"], "operator");
    assert_eq!(pending["direction"], "outbound");

    // Bad requests are refused with a reason, and nothing is produced.
    for (payload, needle) in [
        (
            json!({ "conversation_key": conversation_key }),
            "text or template",
        ),
        (json!({ "text": "x" }), "conversation_key"),
        (json!("not an object"), "invalid message.send payload"),
    ] {
        let ack = operator.emit_ack("message.send", payload).await;
        assert_eq!(ack["ok"], false, "{ack}");
        assert!(ack["error"].as_str().unwrap().contains(needle), "{ack}");
    }
    gateway.stop().await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn conversation_actions_become_conversation_events() {
    let cluster = Cluster::new().await;
    let gateway = cluster.start(&[]).await;
    let tenant = unique("t");
    let operator = gateway.operator(&token(&tenant, "op-1", "operator")).await;
    let conversation_key = keys::conversation_key(&tenant, Channel::Rcs, "+4915100000004");
    let events = TopicTail::new(caas_events::topics::CONVERSATION_EVENTS).await;
    let producer = EventProducer::new();

    for (action, kind) in [
        (
            "conversation.handoff",
            caas_events::model::ConversationEventKind::Assigned,
        ),
        (
            "conversation.assign",
            caas_events::model::ConversationEventKind::Assigned,
        ),
        (
            "conversation.release",
            caas_events::model::ConversationEventKind::ReleasedToBot,
        ),
        (
            "conversation.close",
            caas_events::model::ConversationEventKind::Closed,
        ),
    ] {
        let ack = operator
            .emit_ack(action, json!({ "conversation_key": conversation_key }))
            .await;
        assert_eq!(ack["ok"], true, "{action}: {ack}");
        let event_id = ack["id"].as_str().unwrap().to_string();
        let event: ConversationEvent = events
            .find(producer.codec(), WAIT, |event: &ConversationEvent| {
                event.event_id == event_id
            })
            .await
            .unwrap_or_else(|| panic!("{action} is on conversation.events.v1"));
        assert_eq!(event.kind, kind, "{action}");
        assert_eq!(event.actor_operator_id.as_deref(), Some("op-1"));
    }
    // The tenant's operators see the handoff in their list.
    let updated = operator
        .wait_for("conversation.updated", WAIT, |payload| {
            payload["conversation_key"] == conversation_key.as_str()
                && payload["change"] == "assigned"
        })
        .await
        .expect("conversation.updated after a take-over");
    assert_eq!(updated["mode"], "human");
    assert_eq!(updated["assignee"], "op-1");

    // Operators assign themselves; assigning others takes an admin.
    let ack = operator
        .emit_ack(
            "conversation.assign",
            json!({ "conversation_key": conversation_key, "operator_id": "op-2" }),
        )
        .await;
    assert_eq!(ack["ok"], false);
    assert!(
        ack["error"].as_str().unwrap().contains("only admins"),
        "{ack}"
    );
    gateway.stop().await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn tenants_are_isolated() {
    let cluster = Cluster::new().await;
    let first = cluster.start(&[]).await;
    let second = cluster.start(&[]).await;
    let tenant_a = unique("a");
    let tenant_b = unique("b");
    let operator_a = first.operator(&token(&tenant_a, "op-1", "admin")).await;
    let operator_b = second.operator(&token(&tenant_b, "op-1", "admin")).await;
    let message_a = inbound(&tenant_a, "4915100000010", "for a");
    let message_b = inbound(&tenant_b, "4915100000010", "for b");
    join(&operator_a, &message_a.conversation_key).await;
    join(&operator_b, &message_b.conversation_key).await;

    // A can't join B's rooms, send into B's conversations or act on them.
    for (event, payload) in [
        (
            "conversation.join",
            json!({ "conversation_key": message_b.conversation_key }),
        ),
        (
            "message.send",
            json!({ "conversation_key": message_b.conversation_key, "text": "hi" }),
        ),
        (
            "conversation.handoff",
            json!({ "conversation_key": message_b.conversation_key }),
        ),
        (
            "conversation.close",
            json!({ "conversation_key": message_b.conversation_key }),
        ),
        (
            "typing",
            json!({ "conversation_key": message_b.conversation_key }),
        ),
        (
            "conversation.read",
            json!({ "conversation_key": message_b.conversation_key }),
        ),
    ] {
        let ack = operator_a.emit_ack(event, payload).await;
        assert_eq!(ack["ok"], false, "{event}: {ack}");
        assert!(
            ack["error"]
                .as_str()
                .unwrap()
                .contains("not in your tenant"),
            "{event}: {ack}"
        );
    }

    // B's events reach B's operator, never A's (same operator id in both tenants, too).
    let producer = EventProducer::new();
    producer.produce(&message_b).await;
    producer.produce(&message_a).await;
    operator_b
        .wait_for("message.new", WAIT, is_message(&id_of(&message_b)))
        .await
        .expect("B gets its message");
    operator_a
        .wait_for("message.new", WAIT, is_message(&id_of(&message_a)))
        .await
        .expect("A gets its message");
    operator_b
        .wait_for("conversation.updated", WAIT, |payload| {
            payload["conversation_key"] == message_b.conversation_key.as_str()
        })
        .await
        .expect("B's list is updated");
    operator_a
        .wait_for("conversation.updated", WAIT, |payload| {
            payload["conversation_key"] == message_a.conversation_key.as_str()
        })
        .await
        .expect("A's list is updated");
    // B's typing reaches B's room only.
    let typing = operator_b
        .emit_ack(
            "typing",
            json!({ "conversation_key": message_b.conversation_key }),
        )
        .await;
    assert_eq!(typing["ok"], true, "{typing}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (event, payload) in operator_a.events() {
        let text = payload.to_string();
        assert!(
            !text.contains(&tenant_b),
            "A received {event} of tenant B: {text}"
        );
    }
    for (event, payload) in operator_b.events() {
        let text = payload.to_string();
        assert!(
            !text.contains(&tenant_a),
            "B received {event} of tenant A: {text}"
        );
    }
    first.stop().await;
    second.stop().await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_at_connect_with_a_reason() {
    let cluster = Cluster::new().await;
    let gateway = cluster.start(&[]).await;
    let now = caas_gateway::auth::now_seconds();
    let expired =
        token_with(json!({"sub": "op", "tenant": "t", "role": "operator", "exp": now - 3600}));
    let wrong_role =
        token_with(json!({"sub": "op", "tenant": "t", "role": "root", "exp": now + 60}));
    let other_secret = caas_gateway::auth::sign(
        &json!({"sub": "op", "tenant": "t", "role": "admin", "exp": now + 60}),
        b"another secret",
    );
    let unsigned = {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            json!({"sub": "op", "tenant": "t", "role": "admin", "exp": now + 60}).to_string(),
        );
        format!("{header}.{claims}.")
    };
    for (token, needle) in [
        (None, "authentication required"),
        (Some("garbage".to_string()), "malformed token"),
        (Some(expired), "expired"),
        (Some(wrong_role), "role"),
        (Some(other_secret), "signature"),
        (Some(unsigned), "only HS256"),
    ] {
        let error = TestSocket::connect(gateway.address, token.as_deref())
            .await
            .err()
            .unwrap_or_else(|| panic!("{needle}: the connection must be refused"));
        assert!(error.contains(needle), "{needle}: {error}");
    }
    gateway.stop().await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn killing_one_instance_does_not_stop_the_other() {
    let cluster = Cluster::new().await;
    let doomed = cluster.start(&[]).await;
    let survivor = cluster.start(&[]).await;
    let tenant = unique("t");
    let on_doomed = doomed.operator(&token(&tenant, "op-1", "operator")).await;
    let on_survivor = survivor.operator(&token(&tenant, "op-2", "operator")).await;
    let producer = EventProducer::new();
    let first = inbound(&tenant, "4915100000020", "before");
    join(&on_doomed, &first.conversation_key).await;
    join(&on_survivor, &first.conversation_key).await;
    producer.produce(&first).await;
    for socket in [&on_doomed, &on_survivor] {
        socket
            .wait_for("message.new", WAIT, is_message(&id_of(&first)))
            .await
            .expect("both operators get the first message");
    }

    doomed.stop().await;
    assert!(
        on_doomed.closed_within(Duration::from_secs(10)).await,
        "the stopped instance closes its sockets"
    );
    // Messages to many conversations (all partitions) keep reaching the survivor's operator,
    // including those of partitions the stopped instance owned.
    let mut later = Vec::new();
    for index in 0..12 {
        let message = inbound(&tenant, &format!("49151000001{index:02}"), "after");
        join(&on_survivor, &message.conversation_key).await;
        later.push(message);
    }
    for message in &later {
        producer.produce(message).await;
    }
    for message in &later {
        on_survivor
            .wait_for(
                "message.new",
                Duration::from_secs(60),
                is_message(&id_of(message)),
            )
            .await
            .unwrap_or_else(|| panic!("the survivor delivers {}", message.conversation_key));
    }
    let ack = on_survivor
        .emit_ack(
            "message.send",
            json!({ "conversation_key": first.conversation_key, "text": "still here" }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    survivor.stop().await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn a_flooding_client_is_rate_limited() {
    let cluster = Cluster::new().await;
    let gateway = cluster.start(&[]).await;
    let tenant = unique("t");
    let operator = gateway.operator(&token(&tenant, "op-1", "operator")).await;
    let conversation_key = keys::conversation_key(&tenant, Channel::Rcs, "1");
    let mut refused = 0;
    for attempt in 0..100 {
        let ack = operator
            .emit_ack(
                "conversation.join",
                json!({ "conversation_key": conversation_key }),
            )
            .await;
        if ack["ok"] == false {
            assert!(
                ack["error"].as_str().unwrap().contains("rate limited"),
                "{ack}"
            );
            assert!(
                attempt >= 40,
                "the burst allows 40 events, refused at {attempt}"
            );
            refused += 1;
        }
    }
    assert!(refused > 0, "100 events at once must hit the limit");
    // The allowance comes back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ack = operator
        .emit_ack(
            "conversation.join",
            json!({ "conversation_key": conversation_key }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    gateway.stop().await;
    cluster.cleanup().await;
}
