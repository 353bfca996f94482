//! The gateway with client software we did not write: the official npm `socket.io-client`, and
//! the operator dashboard in headless Chromium (`playwright-core` driving Debian's
//! `chromium`). The Node.js drivers live in `tests/browser/`; this file starts the services
//! in-process, produces the events and checks what the clients saw.
//!
//! They need Node.js, the npm packages and Chromium, which `tests/browser/run.sh` installs
//! (idempotently) before running them, so a plain `cargo test` skips them (`#[ignore]`).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use caas_events::keys;
use caas_events::model::{
    Channel, InboundStatus, MessageStatus, Origin, OutboundCommand, OutboundResult, SendOutcome,
};
use common::{post_whatsapp_text, token, unique, Cluster, EventProducer, TopicTail};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(60);

fn browser_tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

/// Where screenshots go: `CAAS_BROWSER_ARTIFACTS`, else ~/.cache/caas/artifacts/browser.
fn artifacts_dir() -> PathBuf {
    std::env::var("CAAS_BROWSER_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
                .join(".cache/caas/artifacts/browser")
        })
}

/// A Node.js driver speaking JSON lines on stdin/stdout.
struct NodeDriver {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    name: String,
}

impl NodeDriver {
    fn spawn(script: &str, args: &[&str]) -> Self {
        let directory = browser_tests_dir();
        assert!(
            directory.join("node_modules").exists(),
            "npm packages missing: run tests/browser/run.sh"
        );
        let mut child = Command::new("node")
            .arg(directory.join(script))
            .args(args)
            .current_dir(&directory)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (install Node.js)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::unbounded_channel();
        let name = script.to_string();
        let label = name.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(value) => {
                        let _ = sender.send(value);
                    }
                    Err(_) => eprintln!("[{label}] {line}"),
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
            name,
        }
    }

    async fn send(&mut self, command: Value) {
        let mut line = command.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("the driver reads commands");
    }

    /// The next line of `kind` (other lines are kept in `skipped`); panics on an `error` line.
    async fn expect(&mut self, kind: &str, skipped: &mut Vec<Value>) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{}: no {kind:?} within {WAIT:?}; saw {skipped:?}",
                        self.name
                    )
                })
                .unwrap_or_else(|| panic!("{}: the driver exited before {kind:?}", self.name));
            if line["type"] == kind {
                return line;
            }
            if line["type"] == "error" {
                panic!("{}: step failed: {line}", self.name);
            }
            skipped.push(line);
        }
    }

    /// Run a dashboard step and return its answer.
    async fn step(&mut self, command: Value) -> Value {
        let kind = command["cmd"].as_str().unwrap().to_string();
        self.send(command).await;
        let answer = self.expect(&kind, &mut Vec::new()).await;
        let errors = answer["console_errors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            errors.is_empty(),
            "the page logged errors during {kind}: {errors:?}"
        );
        answer
    }

    async fn quit(mut self) {
        let _ = self.send(json!({ "quit": true, "cmd": "quit" })).await;
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
    }
}

/// The next `event` line for `name` whose payload satisfies `matches`.
async fn next_event(
    driver: &mut NodeDriver,
    name: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let mut skipped = Vec::new();
    loop {
        let line = driver.expect("event", &mut skipped).await;
        if line["event"] == name && matches(&line["payload"]) {
            return line["payload"].clone();
        }
    }
}

#[tokio::test]
#[ignore = "needs Node.js and npm packages: run tests/browser/run.sh"]
async fn the_official_socket_io_client_connects_receives_and_acts() {
    let cluster = Cluster::new().await;
    let logger = cluster.start_logger().await;
    let consuming = cluster.start(&[]).await;
    let socket_only = cluster
        .start(&[("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:1")])
        .await;
    let tenant = unique("t");
    let conversation_key = keys::conversation_key(&tenant, Channel::Whatsapp, "4915100000400");
    let operator = token(&tenant, "op-js", "operator");

    // HTTP long-polling only, on the instance that does not consume, so events arrive
    // through the Redis adapter.
    let url = format!("http://{}", socket_only.address);
    let mut client = NodeDriver::spawn("interop.mjs", &[&url, &operator, "polling"]);
    let mut skipped = Vec::new();
    let connected = client.expect("connected", &mut skipped).await;
    assert_eq!(connected["transport"], "polling");
    client
        .send(json!({ "id": 1, "event": "conversation.join", "payload": { "conversation_key": conversation_key } }))
        .await;
    let ack = client.expect("ack", &mut skipped).await;
    assert_eq!(ack["ack"]["ok"], true, "{ack}");
    let session = skipped
        .iter()
        .chain(std::iter::once(&ack))
        .find(|line| line["event"] == "session")
        .cloned();
    if let Some(session) = session {
        assert_eq!(session["payload"]["tenant"], tenant.as_str());
    }

    let producer = EventProducer::new();
    let message = common_inbound(&tenant, "4915100000400", "hello, official client");
    producer.produce(&message).await;
    let id =
        caas_logger::domain::docs::inbound_message_id("whatsapp", &message.provider_message_id);
    let delivered = next_event(&mut client, "message.new", |payload| {
        payload["id"] == id.as_str()
    })
    .await;
    assert_eq!(delivered["seq"], 1);
    assert_eq!(delivered["preview"], "hello, official client");
    next_event(&mut client, "conversation.updated", |payload| {
        payload["conversation_key"] == conversation_key.as_str()
    })
    .await;
    client.quit().await;

    // WebSocket only, on the consuming instance: an action with an ack.
    let url = format!("http://{}", consuming.address);
    let mut client = NodeDriver::spawn("interop.mjs", &[&url, &operator, "websocket"]);
    let connected = client.expect("connected", &mut Vec::new()).await;
    assert_eq!(connected["transport"], "websocket");
    let commands = TopicTail::new(caas_events::topics::OUTBOUND_COMMANDS).await;
    client
        .send(json!({ "id": 2, "event": "message.send", "payload": { "conversation_key": conversation_key, "text": "sent by socket.io-client" } }))
        .await;
    let ack = client.expect("ack", &mut Vec::new()).await;
    assert_eq!(ack["ack"]["ok"], true, "{ack}");
    let command_id = ack["ack"]["id"].as_str().unwrap().to_string();
    commands
        .find(producer.codec(), WAIT, |command: &OutboundCommand| {
            command.command_id == command_id
        })
        .await
        .expect("the command is on Kafka");
    // A refusal comes back as an ack too.
    client
        .send(json!({ "id": 3, "event": "conversation.join", "payload": { "conversation_key": "other:whatsapp:1" } }))
        .await;
    let refused = client.expect("ack", &mut Vec::new()).await;
    assert_eq!(refused["ack"]["ok"], false);
    assert!(refused["ack"]["error"]
        .as_str()
        .unwrap()
        .contains("not in your tenant"));
    client.quit().await;

    // A bad token: connect_error with the reason.
    let mut client = NodeDriver::spawn(
        "interop.mjs",
        &[&url, &token_with_secret(&tenant, "another secret")],
    );
    let refused = client.expect("connect_error", &mut Vec::new()).await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("invalid token signature"),
        "{refused}"
    );
    client.quit().await;

    socket_only.stop().await;
    consuming.stop().await;
    logger.stop().await;
    cluster.cleanup().await;
}

#[tokio::test]
#[ignore = "needs Node.js, npm packages and chromium: run tests/browser/run.sh"]
async fn the_dashboard_shows_a_webhook_message_live_and_sends_a_reply() {
    let cluster = Cluster::new().await;
    let logger = cluster.start_logger().await;
    let ingest = cluster.start_ingest().await;
    let gateway = cluster.start(&[]).await;
    let customer = format!("49152{:08}", uuid::Uuid::new_v4().as_u128() % 100_000_000);
    let conversation_key = format!("demo:whatsapp:{customer}");
    let url = format!(
        "http://{}/?token={}",
        gateway.address,
        token("demo", "op-ada", "admin")
    );
    let artifacts = artifacts_dir();
    let mut page = NodeDriver::spawn("dashboard.mjs", &[&url, artifacts.to_str().unwrap()]);
    page.step(json!({ "cmd": "signed_in" })).await;

    // A customer writes on WhatsApp: signed webhook → ingest → Kafka → logger and gateway.
    post_whatsapp_text(
        &ingest,
        &customer,
        "Ada Lovelace",
        "Is my order on its way?",
    )
    .await;
    // (The stack's chatbot may answer at once, so the row's preview can already be its reply.)
    let listed = page
        .step(json!({ "cmd": "row", "key": conversation_key, "text": "Ada Lovelace" }))
        .await;
    assert_eq!(listed["unread"], "1", "{listed}");
    assert!(listed["mode"].as_str().unwrap().contains("bot"), "{listed}");
    let opened = page
        .step(json!({ "cmd": "open", "key": conversation_key, "text": "Is my order on its way?" }))
        .await;
    assert_eq!(opened["title"], "Ada Lovelace");

    // The operator answers in the reply box.
    let commands = TopicTail::new(caas_events::topics::OUTBOUND_COMMANDS).await;
    let reply_text = "Yes, it ships today!";
    let replied = page
        .step(json!({ "cmd": "reply", "text": reply_text }))
        .await;
    let producer = EventProducer::new();
    let command = commands
        .find(producer.codec(), WAIT, |command: &OutboundCommand| {
            command.conversation_key == conversation_key && command.origin == Origin::Operator
        })
        .await
        .expect("the reply is on outbound.commands.v1");
    assert_eq!(replied["id"], format!("out:demo:{}", command.command_id));

    // The provider's side of the send (what the sender and WhatsApp report), so the tick moves
    // to "sent" whether or not the stack's sender and simulator are running.
    let wamid = unique("wamid.REPLY");
    producer
        .produce(&OutboundResult {
            event_id: unique("result-"),
            tenant_id: "demo".into(),
            conversation_key: conversation_key.clone(),
            channel: Channel::Whatsapp,
            occurred_at: common_now(),
            recorded_at: common_now(),
            source: "gateway-test".into(),
            trace_parent: None,
            command_id: command.command_id.clone(),
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
            tenant_id: "demo".into(),
            conversation_key: conversation_key.clone(),
            channel: Channel::Whatsapp,
            occurred_at: common_now(),
            recorded_at: common_now(),
            source: "gateway-test".into(),
            trace_parent: None,
            provider_message_id: wamid,
            status: MessageStatus::Sent,
            recipient_id: customer.clone(),
            business_id: Some(common::DEMO_PHONE_NUMBER_ID.into()),
            errors: vec![],
            conversation: None,
            pricing: None,
            biz_opaque_callback_data: None,
        })
        .await;
    // The tick moves live. In a shared stack the stack's own sender also takes the command: with
    // the provider simulator running it reports sent/delivered/read like our events; when it
    // cannot send (no simulator, stale configuration) its `failed` is terminal and wins, and
    // the dashboard must show that instead.
    let sent = page
        .step(json!({ "cmd": "status", "text": reply_text, "statuses": ["sent", "delivered", "read", "failed"] }))
        .await;
    if sent["status"] == "failed" {
        let stored = stored_message(
            &gateway,
            &conversation_key,
            &token("demo", "op-ada", "admin"),
            "command_id",
            &command.command_id,
        )
        .await;
        assert_eq!(stored["status"], "failed", "{stored}");
        eprintln!(
            "note: the stack's sender failed the reply ({}); the dashboard shows it as failed",
            stored["error"]
        );
    } else {
        assert!(sent["tick"].as_str().unwrap().contains('✓'), "{sent}");
    }
    let taken = page.step(json!({ "cmd": "takeover" })).await;
    for answer in [&listed, &opened, &replied, &sent, &taken] {
        eprintln!("screenshot: {}", answer["screenshot"]);
    }
    page.quit().await;

    gateway.stop().await;
    ingest.stop().await;
    logger.stop().await;
    cluster.cleanup().await;
}

/// The stack's simulator: the fake WhatsApp Cloud API the stack's sender calls.
const SIMULATOR: &str = "http://127.0.0.1:8090";
/// The demo tenant's WhatsApp number (`.env.example`), the one the stack's sender knows.
const DEMO_NUMBER: &str = common::DEMO_PHONE_NUMBER_ID;

/// Fail early, with a reason, when a part of the running stack a test drives is missing.
async fn require_stack(parts: &[(&str, &str)]) {
    for (name, url) in parts {
        let ready = reqwest::get(*url)
            .await
            .is_ok_and(|response| response.status().is_success());
        assert!(
            ready,
            "this test needs the running stack's {name} ({url}); run make up"
        );
    }
}

#[tokio::test]
#[ignore = "needs Node.js, npm packages, chromium and the running stack: run tests/browser/run.sh"]
async fn the_dashboard_shows_a_running_campaigns_progress_live() {
    require_stack(&[
        ("campaign service", "http://127.0.0.1:9104/ready"),
        ("sender", "http://127.0.0.1:9105/ready"),
        ("provider simulator", "http://127.0.0.1:8090/ready"),
    ])
    .await;
    let cluster = Cluster::new().await;
    let gateway = cluster.start_on_stack().await;
    let admin = token("demo", "op-campaigns", "admin");
    let mut page = open_dashboard(&gateway, &admin, "campaign-").await;

    // A campaign of the demo tenant through the gateway's API, sent by the stack's campaign
    // service and sender to the simulator, at 4 messages per second: a few seconds of
    // progress to watch.
    let recipients = 24;
    let block = uuid::Uuid::new_v4().as_u128() % 9_000 + 1_000;
    let numbers: Vec<String> = (0..recipients)
        .map(|index| format!("+49176{block:04}{index:04}"))
        .collect();
    let campaign_id = unique("browser-");
    page.send(json!({ "cmd": "campaign_watch", "id": campaign_id }))
        .await;
    page.expect("campaign_watch", &mut Vec::new()).await;
    let (status, accepted) = gateway
        .post(
            "/api/v1/campaigns",
            Some(&admin),
            "application/json",
            json!({
                "campaign_id": campaign_id,
                "name": "Browser progress check",
                "channel": "whatsapp",
                "business_id": DEMO_NUMBER,
                "template": { "name": "spring_sale", "language": "en" },
                "recipients": numbers,
                "rate_per_second": 4,
                "timezone": "UTC",
            })
            .to_string(),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");

    let completed = page
        .step(json!({ "cmd": "campaign", "id": campaign_id, "state": "completed", "done": 100 }))
        .await;
    let history: Vec<i64> = completed["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    eprintln!(
        "campaign progress seen in the page: {history:?}; {}",
        completed["counts"]
    );
    assert!(
        history.iter().any(|done| *done > 0 && *done < 100),
        "the bar never showed a value between 0 and 100: {history:?}"
    );
    assert!(
        history.windows(2).all(|pair| pair[0] <= pair[1]),
        "the bar went backwards: {history:?}"
    );
    assert_eq!(history.last(), Some(&100));
    // Every recipient reached the simulator once.
    let requests: Value = reqwest::get(format!(
        "{SIMULATOR}/_sim/requests?api=whatsapp&sender={DEMO_NUMBER}&outcome=accepted"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let reached = requests["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|request| {
            numbers
                .iter()
                .any(|number| request["to"] == number.trim_start_matches('+'))
        })
        .count();
    assert_eq!(reached, recipients, "the simulator's accepted sends");
    eprintln!("screenshot: {}", completed["screenshot"]);
    page.quit().await;

    gateway.stop().await;
    cluster.cleanup().await;
}

/// The simulator plays a customer: signed inbound webhooks to the stack's ingest.
async fn customer_sends(customer: &str, name: &str, message: Value) {
    let response = reqwest::Client::new()
        .post(format!("{SIMULATOR}/_sim/customers/send"))
        .json(&json!({
            "channel": "whatsapp",
            "business_id": DEMO_NUMBER,
            "customers": [customer],
            "customer_name": name,
            "messages": [message],
        }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the simulator answers");
    let answer: Value = response.json().await.expect("json");
    assert_eq!(
        answer["sent"], 1,
        "the simulator could not deliver the webhook: {answer}"
    );
}

/// The first send the simulator received for `customer` whose body satisfies `matches`.
async fn simulator_request(customer: &str, matches: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let requests: Value = reqwest::get(format!("{SIMULATOR}/_sim/requests?to={customer}"))
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("json");
        if let Some(found) = requests["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|request| matches(&request["body"]))
        {
            return found.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the simulator received no such send to {customer} within {WAIT:?}; it has {requests}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
#[ignore = "needs Node.js, npm packages, chromium and the running stack: run tests/browser/run.sh"]
async fn a_handed_off_customer_gets_the_operators_reply_and_the_dashboard_shows_it_read() {
    require_stack(&[
        ("ingest", "http://127.0.0.1:8080/ready"),
        ("logger", "http://127.0.0.1:9101/ready"),
        ("chatbot", "http://127.0.0.1:9103/ready"),
        ("sender", "http://127.0.0.1:9105/ready"),
        ("provider simulator", "http://127.0.0.1:8090/ready"),
    ])
    .await;
    let cluster = Cluster::new().await;
    let gateway = cluster.start_on_stack().await;
    let mut page = open_dashboard(&gateway, &token("demo", "op-e2e", "operator"), "handoff-").await;

    // A customer nobody used before writes "hi"; the stack's chatbot answers with its menu.
    let customer = format!("49157{:08}", uuid::Uuid::new_v4().as_u128() % 100_000_000);
    let conversation_key = format!("demo:whatsapp:{customer}");
    customer_sends(&customer, "Grace Hopper", json!({ "text": "hi" })).await;
    simulator_request(&customer, |body| body["type"] == "interactive").await;
    page.step(json!({ "cmd": "row", "key": conversation_key, "text": "Grace Hopper" }))
        .await;

    // "Talk to a person": the flow's handoff step makes the conversation human.
    customer_sends(
        &customer,
        "Grace Hopper",
        json!({ "button": { "id": "human", "title": "Talk to a person" } }),
    )
    .await;
    let human = page
        .step(json!({ "cmd": "mode", "key": conversation_key, "mode": "human" }))
        .await;
    let opened = page
        .step(json!({ "cmd": "open", "key": conversation_key, "text": "hi" }))
        .await;
    assert_eq!(opened["title"], "Grace Hopper");

    // The operator answers in the dashboard; the sender delivers it to the simulator.
    let reply_text = format!("Hi Grace, Ada here. Ticket {}", unique(""));
    let replied = page
        .step(json!({ "cmd": "reply", "text": reply_text }))
        .await;
    let sent = simulator_request(&customer, |body| {
        body["type"] == "text" && body["text"]["body"] == reply_text.as_str()
    })
    .await;
    assert_eq!(sent["outcome"], "accepted", "{sent}");
    assert_eq!(sent["sender"], DEMO_NUMBER, "{sent}");

    // The simulator's delivered and read webhooks come back through ingest, the logger and the
    // gateway: the bubble's tick turns into ✓✓, then read.
    let delivered = page
        .step(json!({ "cmd": "status", "text": reply_text, "statuses": ["delivered", "read"] }))
        .await;
    assert_eq!(delivered["tick"], "✓✓", "{delivered}");
    let read = page
        .step(json!({ "cmd": "status", "text": reply_text, "statuses": ["read"] }))
        .await;
    assert_eq!(read["tick"], "✓✓", "{read}");
    let stored = stored_message(
        &gateway,
        &conversation_key,
        &token("demo", "op-e2e", "operator"),
        "id",
        replied["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(stored["status"], "read", "{stored}");
    assert_eq!(
        stored["provider_message_id"], sent["provider_message_id"],
        "{stored}"
    );
    for answer in [&human, &opened, &replied, &delivered, &read] {
        eprintln!("screenshot: {}", answer["screenshot"]);
    }
    page.quit().await;

    gateway.stop().await;
    cluster.cleanup().await;
}

#[tokio::test]
#[ignore = "needs Node.js, npm packages and chromium: run tests/browser/run.sh"]
async fn the_event_explorer_finds_a_webhooks_event_and_tails_new_ones_live() {
    let cluster = Cluster::new().await;
    let logger = cluster.start_logger().await;
    let ingest = cluster.start_ingest().await;
    let gateway = cluster.start(&[]).await;
    let customer = format!("49153{:08}", uuid::Uuid::new_v4().as_u128() % 100_000_000);
    let run = unique("explorer-");

    // An operator (not an admin) does not see the Events tab.
    let operator = token("demo", "op-plain", "operator");
    let mut page = open_dashboard(&gateway, &operator, "explorer-operator-").await;
    let tab = page.step(json!({ "cmd": "explorer_tab" })).await;
    assert_eq!(tab["visible"], false, "{tab}");
    page.quit().await;

    // A customer's webhook, stored by the logger.
    let first_text = format!("My parcel {run} never arrived");
    post_whatsapp_text(&ingest, &customer, "Lin Explorer", &first_text).await;

    let admin = token("demo", "op-admin", "admin");
    let mut page = open_dashboard(&gateway, &admin, "explorer-").await;
    let opened = page.step(json!({ "cmd": "explorer_open" })).await;
    eprintln!("explorer: {}", opened["status"]);
    assert_eq!(
        page.step(json!({ "cmd": "explorer_tab" })).await["visible"],
        true
    );

    // The search finds the webhook's event by its text; one click shows its payload.
    let found = page
        .step(json!({ "cmd": "explorer_search", "text": run }))
        .await;
    let rows = found["rows"].as_array().unwrap();
    assert!(
        rows.iter().any(|row| row["type"] == "inbound_message"
            && row["summary"].as_str().unwrap().contains(&first_text)),
        "{found}"
    );
    let detail = page
        .step(json!({ "cmd": "explorer_payload", "text": first_text }))
        .await;
    assert_eq!(
        detail["payload"]["payload"]["content"]["text"]["body"],
        first_text.as_str(),
        "{detail}"
    );
    assert_eq!(detail["payload"]["tenant_id"], "demo");

    // A new webhook appears at the top by the live tail, without reloading the page.
    let second_text = format!("Found it, thanks {run}");
    post_whatsapp_text(&ingest, &customer, "Lin Explorer", &second_text).await;
    let live = page
        .step(json!({ "cmd": "explorer_live", "text": second_text }))
        .await;
    assert_eq!(live["event_type"], "inbound_message", "{live}");
    assert_eq!(live["same_page"], true, "the page was reloaded");
    for answer in [&opened, &found, &detail, &live] {
        eprintln!("screenshot: {}", answer["screenshot"]);
    }
    page.quit().await;

    gateway.stop().await;
    ingest.stop().await;
    logger.stop().await;
    cluster.cleanup().await;
}

/// The dashboard signed in with `token`, live; screenshots named with `prefix`.
async fn open_dashboard(gateway: &common::Gateway, token: &str, prefix: &str) -> NodeDriver {
    let url = format!("http://{}/?token={token}", gateway.address);
    let artifacts = artifacts_dir();
    let mut page = NodeDriver::spawn(
        "dashboard.mjs",
        &[&url, artifacts.to_str().unwrap(), prefix],
    );
    page.step(json!({ "cmd": "signed_in" })).await;
    page
}

/// The stored message of a conversation whose `field` is `value` (REST, as the dashboard reads).
async fn stored_message(
    gateway: &common::Gateway,
    conversation_key: &str,
    token: &str,
    field: &str,
    value: &str,
) -> Value {
    let (_, thread) = gateway
        .get(
            &format!("/api/v1/conversations/{conversation_key}/messages"),
            Some(token),
        )
        .await;
    thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message[field] == value)
        .cloned()
        .unwrap_or_else(|| panic!("no stored message with {field} {value}: {thread}"))
}

fn common_now() -> i64 {
    caas_gateway::realtime::now_ms()
}

fn token_with_secret(tenant: &str, secret: &str) -> String {
    caas_gateway::auth::sign(
        &json!({ "sub": "op", "tenant": tenant, "role": "operator", "exp": caas_gateway::auth::now_seconds() + 600 }),
        secret.as_bytes(),
    )
}

fn common_inbound(tenant: &str, customer: &str, body: &str) -> caas_events::model::InboundMessage {
    common::inbound_text(tenant, customer, body)
}
