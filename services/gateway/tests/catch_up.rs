//! Catch-up and the REST API, with the real logger assigning `seq` and writing the documents:
//! a client that was disconnected while messages arrived fetches exactly what it missed by
//! `after_seq` and ends with the same thread as one that stayed connected.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use caas_events::keys;
use caas_events::model::{
    Channel, Content, InboundMessage, InboundStatus, MessageStatus, Origin, OutboundResult,
    SendOutcome, Text,
};
use caas_logger::domain::docs::inbound_message_id;
use common::{token, unique, Cluster, EventProducer, TestSocket};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

fn now_ms() -> i64 {
    caas_gateway::realtime::now_ms()
}

fn inbound(tenant: &str, customer: &str, body: &str) -> InboundMessage {
    let wamid = unique("wamid.");
    InboundMessage {
        event_id: keys::deterministic_event_id(&["whatsapp", "message", &wamid]),
        tenant_id: tenant.to_string(),
        conversation_key: keys::conversation_key(tenant, Channel::Whatsapp, customer),
        channel: Channel::Whatsapp,
        occurred_at: now_ms(),
        recorded_at: now_ms(),
        source: "gateway-test".to_string(),
        trace_parent: None,
        provider_message_id: wamid,
        customer_id: customer.to_string(),
        customer_display_name: None,
        business_id: None,
        reply_to: None,
        content: Content::Text(Text {
            body: body.to_string(),
            preview_url: false,
        }),
    }
}

/// A thread as a client keeps it: messages by id, each with the fields a client shows.
#[derive(Debug, Default, Clone, PartialEq)]
struct Thread {
    messages: BTreeMap<String, (String, String, String)>,
    seqs: BTreeMap<String, i64>,
    by_provider_id: BTreeMap<String, String>,
}

const RANK: [&str; 7] = [
    "received",
    "queued",
    "accepted",
    "sent",
    "delivered",
    "read",
    "failed",
];

fn rank(status: &str) -> usize {
    RANK.iter().position(|known| *known == status).unwrap_or(0)
}

impl Thread {
    fn apply_message(&mut self, message: &Value) {
        let id = message["id"].as_str().unwrap().to_string();
        let seq = message["seq"].as_i64().unwrap_or(0);
        if let Some(provider_id) = message["provider_message_id"].as_str() {
            self.by_provider_id
                .insert(provider_id.to_string(), id.clone());
        }
        let incoming = (
            message["direction"].as_str().unwrap().to_string(),
            message["preview"].as_str().unwrap().to_string(),
            message["status"].as_str().unwrap().to_string(),
        );
        match self.messages.get_mut(&id) {
            Some(existing) if rank(&incoming.2) < rank(&existing.2) => {}
            Some(existing) => *existing = incoming,
            None => {
                self.messages.insert(id.clone(), incoming);
            }
        }
        let known = self.seqs.entry(id).or_insert(seq);
        *known = (*known).max(seq);
    }

    fn apply_status(&mut self, status: &Value) {
        if let (Some(provider_id), Some(id)) = (
            status["provider_message_id"].as_str(),
            status["message_id"].as_str(),
        ) {
            self.by_provider_id
                .insert(provider_id.to_string(), id.to_string());
        }
        let id = status["message_id"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                status["provider_message_id"]
                    .as_str()
                    .and_then(|provider_id| self.by_provider_id.get(provider_id).cloned())
            });
        let Some(id) = id else { return };
        if let (Some(seq), Some(known)) = (status["seq"].as_i64(), self.seqs.get_mut(&id)) {
            *known = (*known).max(seq);
        }
        if let Some(existing) = self.messages.get_mut(&id) {
            let next = status["status"].as_str().unwrap();
            if rank(next) > rank(&existing.2) {
                existing.2 = next.to_string();
            }
        }
    }

    fn apply_socket_events(&mut self, socket: &TestSocket, conversation_key: &str) {
        for (event, payload) in socket.events() {
            if payload["conversation_key"] != conversation_key {
                continue;
            }
            match event.as_str() {
                "message.new" => self.apply_message(&payload),
                "message.status" => self.apply_status(&payload),
                _ => {}
            }
        }
    }

    fn last_seq(&self) -> i64 {
        self.seqs.values().copied().max().unwrap_or(0)
    }
}

/// Wait until the conversation's seq stopped moving for two seconds (and the fan-out of the
/// last change had time to arrive); returns that seq.
async fn wait_until_quiet(gateway: &common::Gateway, token: &str, conversation_key: &str) -> i64 {
    let mut last = -1;
    let mut stable_since = tokio::time::Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = gateway
            .get(
                &format!("/api/v1/conversations/{conversation_key}"),
                Some(token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let seq = body["seq"].as_i64().unwrap();
        if seq != last {
            last = seq;
            stable_since = tokio::time::Instant::now();
        } else if stable_since.elapsed() > Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return seq;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the conversation never settled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_reconnected_client_fetches_exactly_what_it_missed() {
    let cluster = Cluster::new().await;
    let logger = cluster.start_logger().await;
    let first = cluster.start(&[]).await;
    let second = cluster.start(&[]).await;
    let tenant = unique("t");
    let operator_token = token(&tenant, "op-1", "operator");
    let steady = first.operator(&operator_token).await;
    let flaky = second.operator(&token(&tenant, "op-2", "operator")).await;
    let producer = EventProducer::new();
    let customer = "4915100000100";
    let conversation_key = keys::conversation_key(&tenant, Channel::Whatsapp, customer);
    for socket in [&steady, &flaky] {
        let ack = socket
            .emit_ack(
                "conversation.join",
                json!({ "conversation_key": conversation_key }),
            )
            .await;
        assert_eq!(ack["ok"], true);
    }

    // Two messages both clients see.
    let before: Vec<InboundMessage> = (1..=2)
        .map(|index| inbound(&tenant, customer, &format!("before {index}")))
        .collect();
    for message in &before {
        producer.produce(message).await;
    }
    for message in &before {
        let id = inbound_message_id("whatsapp", &message.provider_message_id);
        for socket in [&steady, &flaky] {
            socket
                .wait_for("message.new", WAIT, |payload| payload["id"] == id.as_str())
                .await
                .expect("both clients get the first messages");
        }
    }
    let mut flaky_thread = Thread::default();
    flaky_thread.apply_socket_events(&flaky, &conversation_key);
    let seen = flaky_thread.last_seq();
    assert_eq!(seen, 2, "{flaky_thread:?}");
    flaky.drop_connection();

    // While it is away: more customer messages, an operator reply, its send result and a
    // delivery status (so a message it knew nothing about arrives with a later status too).
    let during: Vec<InboundMessage> = (1..=3)
        .map(|index| inbound(&tenant, customer, &format!("during {index}")))
        .collect();
    for message in &during {
        producer.produce(message).await;
    }
    let reply = steady
        .emit_ack(
            "message.send",
            json!({ "conversation_key": conversation_key, "text": "on it" }),
        )
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let command_id = reply["id"].as_str().unwrap().to_string();
    let wamid = unique("wamid.out.");
    producer
        .produce(&OutboundResult {
            event_id: unique("result-"),
            tenant_id: tenant.clone(),
            conversation_key: conversation_key.clone(),
            channel: Channel::Whatsapp,
            occurred_at: now_ms(),
            recorded_at: now_ms(),
            source: "gateway-test".into(),
            trace_parent: None,
            command_id: command_id.clone(),
            outcome: SendOutcome::Accepted,
            provider_message_id: Some(wamid.clone()),
            error: None,
            origin: Origin::Operator,
            campaign_id: None,
            attempts: 1,
        })
        .await;
    producer
        .produce(&InboundStatus {
            event_id: unique("status-"),
            tenant_id: tenant.clone(),
            conversation_key: conversation_key.clone(),
            channel: Channel::Whatsapp,
            occurred_at: now_ms(),
            recorded_at: now_ms(),
            source: "gateway-test".into(),
            trace_parent: None,
            provider_message_id: wamid.clone(),
            status: MessageStatus::Delivered,
            recipient_id: customer.into(),
            business_id: None,
            errors: vec![],
            conversation: None,
            pricing: None,
            biz_opaque_callback_data: None,
        })
        .await;
    // The connected client sees everything: 2 + 3 messages, the reply, its result and status.
    steady
        .wait_for("message.status", WAIT, |payload| {
            payload["status"] == "delivered" && payload["provider_message_id"] == wamid.as_str()
        })
        .await
        .expect("the delivery status reaches the connected client");
    // Other services of the stack (the sender, the chatbot) may add their own changes to the
    // conversation: wait until it is quiet, so "what was missed" is well defined.
    let quiet_seq = wait_until_quiet(&second, &operator_token, &conversation_key).await;
    // The connected client gets the last change live (its fan-out may trail the logger).
    let seen_live = |socket: &TestSocket| {
        socket.events().iter().any(|(event, payload)| {
            event.starts_with("message.")
                && payload["conversation_key"] == conversation_key.as_str()
                && payload["seq"].as_i64().is_some_and(|seq| seq >= quiet_seq)
        })
    };
    let live_deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen_live(&steady) && tokio::time::Instant::now() < live_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut steady_thread = Thread::default();
    steady_thread.apply_socket_events(&steady, &conversation_key);
    if steady_thread.last_seq() < quiet_seq {
        // An event went out without seq (the logger was slower than the gateway's wait): the
        // connected client catches up by after_seq too, as EVENTS.md tells clients to.
        let (_, body) = first
            .get(
                &format!(
                    "/api/v1/conversations/{conversation_key}/messages?after_seq={}",
                    steady_thread.last_seq()
                ),
                Some(&operator_token),
            )
            .await;
        for message in body["messages"].as_array().unwrap() {
            steady_thread.apply_message(message);
        }
    }
    assert!(steady_thread.messages.len() >= 6, "{steady_thread:?}");
    assert_eq!(steady_thread.last_seq(), quiet_seq, "{steady_thread:?}");
    let changed_while_away: Vec<String> = steady_thread
        .seqs
        .iter()
        .filter(|(_, seq)| **seq > seen)
        .map(|(id, _)| id.clone())
        .collect();

    // The client comes back: reconnect, rejoin, fetch after the last seq it saw.
    let flaky_again = second.operator(&token(&tenant, "op-2", "operator")).await;
    let ack = flaky_again
        .emit_ack(
            "conversation.join",
            json!({ "conversation_key": conversation_key }),
        )
        .await;
    assert_eq!(ack["ok"], true);
    let path = format!("/api/v1/conversations/{conversation_key}/messages?after_seq={seen}");
    let (status, body) = second.get(&path, Some(&operator_token)).await;
    assert_eq!(status, 200, "{body}");
    let missed = body["messages"].as_array().unwrap();
    // Exactly the messages created or changed since seq 2 (the three customer messages and the
    // reply, at least), in seq order.
    let mut fetched_ids: Vec<String> = missed
        .iter()
        .map(|message| message["id"].as_str().unwrap().to_string())
        .collect();
    fetched_ids.sort();
    assert_eq!(fetched_ids, changed_while_away, "{body}");
    assert!(missed.len() >= 4, "{body}");
    let seqs: Vec<i64> = missed
        .iter()
        .map(|message| message["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    assert_eq!(body["has_more"], false);
    assert_eq!(body["last_seq"], quiet_seq);
    for message in missed {
        flaky_thread.apply_message(message);
    }
    flaky_thread.apply_socket_events(&flaky_again, &conversation_key);
    assert_eq!(flaky_thread.messages, steady_thread.messages);
    let reply_id = caas_logger::domain::docs::outbound_message_id(&tenant, &command_id);
    assert_ne!(
        flaky_thread.messages[&reply_id].2, "queued",
        "the reply's later status was caught up"
    );

    // The same thread as the logger's full history.
    let (_, everything) = second
        .get(
            &format!("/api/v1/conversations/{conversation_key}/messages?after_seq=0"),
            Some(&operator_token),
        )
        .await;
    let mut truth = Thread::default();
    for message in everything["messages"].as_array().unwrap() {
        truth.apply_message(message);
    }
    assert_eq!(truth.messages, flaky_thread.messages);

    // Asking again from the new last seq gives nothing: nothing is fetched twice.
    let (_, again) = second
        .get(
            &format!(
                "/api/v1/conversations/{conversation_key}/messages?after_seq={}",
                body["last_seq"]
            ),
            Some(&operator_token),
        )
        .await;
    assert_eq!(again["messages"].as_array().unwrap().len(), 0, "{again}");

    flaky_again.drop_connection();
    steady.drop_connection();
    first.stop().await;
    second.stop().await;
    logger.stop().await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn the_rest_api_lists_filters_and_pages_conversations_of_one_tenant() {
    let cluster = Cluster::new().await;
    let logger = cluster.start_logger().await;
    let gateway = cluster.start(&[]).await;
    let tenant = unique("t");
    let other_tenant = unique("o");
    let admin = token(&tenant, "boss", "admin");
    let operator = gateway.operator(&token(&tenant, "op-1", "operator")).await;
    let producer = EventProducer::new();

    let messages: Vec<InboundMessage> = (0..3)
        .map(|index| {
            inbound(
                &tenant,
                &format!("49151000002{index}"),
                &format!("hi {index}"),
            )
        })
        .collect();
    for message in &messages {
        producer.produce(message).await;
    }
    producer
        .produce(&inbound(&other_tenant, "4915100000299", "elsewhere"))
        .await;
    let taken = &messages[1].conversation_key;
    let ack = operator
        .emit_ack("conversation.handoff", json!({ "conversation_key": taken }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    operator
        .wait_for("conversation.updated", WAIT, |payload| {
            payload["conversation_key"] == taken.as_str() && payload["mode"] == "human"
        })
        .await
        .expect("the handoff is visible");

    // Every conversation of the tenant, none of the other's.
    let (status, body) = gateway.get("/api/v1/conversations", Some(&admin)).await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<&str> = body["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|conversation| conversation["conversation_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 3, "{body}");
    assert!(keys
        .iter()
        .all(|key| key.starts_with(&format!("{tenant}:"))));
    // Filters.
    let (_, human) = gateway
        .get("/api/v1/conversations?mode=human", Some(&admin))
        .await;
    assert_eq!(
        human["conversations"].as_array().unwrap().len(),
        1,
        "{human}"
    );
    assert_eq!(human["conversations"][0]["assignee"], "op-1", "{human}");
    let (_, mine) = gateway
        .get(
            "/api/v1/conversations?assignee=me",
            Some(&token(&tenant, "op-1", "operator")),
        )
        .await;
    assert_eq!(mine["conversations"].as_array().unwrap().len(), 1, "{mine}");
    let (_, unassigned) = gateway
        .get(
            "/api/v1/conversations?assignee=none&unread=true",
            Some(&admin),
        )
        .await;
    assert_eq!(
        unassigned["conversations"].as_array().unwrap().len(),
        2,
        "{unassigned}"
    );
    // Pages of one, newest activity first, each conversation once.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/conversations?limit=1&cursor={cursor}"),
            None => "/api/v1/conversations?limit=1".to_string(),
        };
        let (status, page) = gateway.get(&path, Some(&admin)).await;
        assert_eq!(status, 200, "{page}");
        for conversation in page["conversations"].as_array().unwrap() {
            paged.push(
                conversation["conversation_key"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let mut sorted_keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
    assert_eq!(paged, sorted_keys, "pages follow the same order");
    sorted_keys.sort();
    sorted_keys.dedup();
    assert_eq!(sorted_keys.len(), 3);

    // Errors are JSON with a reason.
    let (status, body) = gateway.get("/api/v1/conversations", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("authentication required"));
    let (status, body) = gateway
        .get("/api/v1/conversations?mode=robot", Some(&admin))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = gateway
        .get("/api/v1/conversations?cursor=bogus", Some(&admin))
        .await;
    assert_eq!(status, 400, "{body}");
    let foreign = keys::conversation_key(&other_tenant, Channel::Whatsapp, "4915100000299");
    let (status, body) = gateway
        .get(
            &format!("/api/v1/conversations/{foreign}/messages"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = gateway
        .get(&format!("/api/v1/conversations/{taken}"), Some(&admin))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "human");
    let (status, body) = gateway.get("/api/v1/me", Some(&admin)).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("admin")));
    let (status, body) = gateway.get("/openapi.yaml", None).await;
    assert_eq!(status, 200);
    assert!(body.as_str().unwrap().contains("/api/v1/conversations"));

    operator.drop_connection();
    gateway.stop().await;
    logger.stop().await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn admins_export_and_erase_a_customer_and_dashboards_drop_the_conversation() {
    let cluster = Cluster::new().await;
    let logger = cluster.start_logger().await;
    let gateway = cluster.start(&[]).await;
    let tenant = unique("t");
    let customer = "4915100000500";
    let conversation_key = keys::conversation_key(&tenant, Channel::Whatsapp, customer);
    let admin = token(&tenant, "boss", "admin");
    let watcher = gateway.operator(&token(&tenant, "op-1", "operator")).await;
    let producer = EventProducer::new();
    producer
        .produce(&inbound(&tenant, customer, "please forget me"))
        .await;
    watcher
        .wait_for("conversation.updated", WAIT, |payload| {
            payload["conversation_key"] == conversation_key.as_str() && payload["partial"] == false
        })
        .await
        .expect("the conversation is stored and listed");

    // Operators may not; admins get every stored document as JSON lines.
    let path = format!("/api/v1/customers/{customer}/export");
    let (status, body) = gateway
        .get(&path, Some(&token(&tenant, "op-1", "operator")))
        .await;
    assert_eq!(status, 403, "{body}");
    let response = reqwest::Client::new()
        .get(format!("http://{}{path}", gateway.address))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let lines: Vec<Value> = response
        .text()
        .await
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let sources: Vec<&str> = lines
        .iter()
        .map(|line| line["source"].as_str().unwrap())
        .collect();
    assert!(sources.contains(&"mongodb.conversations"), "{sources:?}");
    assert!(sources.contains(&"mongodb.messages"), "{sources:?}");
    assert!(sources.contains(&"mongodb.events"), "{sources:?}");
    assert!(lines
        .iter()
        .any(|line| line["document"].to_string().contains("please forget me")));

    // Erasure: the report, the live removal, and nothing left to read.
    let response = reqwest::Client::new()
        .delete(format!(
            "http://{}/api/v1/customers/{customer}",
            gateway.address
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["conversations"], 1, "{report}");
    assert!(report["messages"].as_u64().unwrap() >= 1, "{report}");
    watcher
        .wait_for("conversation.updated", WAIT, |payload| {
            payload["conversation_key"] == conversation_key.as_str() && payload["erased"] == true
        })
        .await
        .expect("dashboards are told to drop the conversation");
    let (status, _) = gateway
        .get(
            &format!("/api/v1/conversations/{conversation_key}"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = gateway
        .get("/api/v1/customers/%20/export", Some(&admin))
        .await;
    assert_eq!(status, 400, "{body}");

    watcher.drop_connection();
    gateway.stop().await;
    logger.stop().await;
    cluster.cleanup().await;
}
