//! A minimal socket.io v5 client over engine.io v4 WebSocket transport, written for these tests
//! so they can see every packet (and drop a connection abruptly). The interoperability with
//! the official JavaScript client is tested separately (`tests/browser`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_tungstenite::tungstenite::Message;

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A connected socket.io client.
pub struct TestSocket {
    outgoing: mpsc::UnboundedSender<String>,
    received: Arc<Mutex<Vec<(String, Value)>>>,
    arrived: Arc<Notify>,
    acks: Acks,
    next_ack: AtomicU64,
    closed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl TestSocket {
    /// Connect to the default namespace with `auth: { token }` (or no auth). `Err` carries the
    /// server's `connect_error` message.
    pub async fn connect(
        address: std::net::SocketAddr,
        token: Option<&str>,
    ) -> Result<Self, String> {
        let url = format!("ws://{address}/socket.io/?EIO=4&transport=websocket");
        let (mut stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|error| format!("websocket: {error}"))?;
        // engine.io OPEN
        let open = next_text(&mut stream).await?;
        if !open.starts_with('0') {
            return Err(format!("expected an engine.io open packet, got {open}"));
        }
        let connect = match token {
            Some(token) => format!("40{}", serde_json::json!({ "token": token })),
            None => "40".to_string(),
        };
        stream
            .send(Message::text(connect))
            .await
            .map_err(|error| error.to_string())?;
        loop {
            let packet = next_text(&mut stream).await?;
            if packet == "2" {
                let _ = stream.send(Message::text("3")).await;
                continue;
            }
            if let Some(body) = packet.strip_prefix("40") {
                let _ = body;
                break;
            }
            if let Some(body) = packet.strip_prefix("44") {
                let error: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                return Err(error["message"].as_str().unwrap_or(body).to_string());
            }
        }

        let (outgoing, mut to_send) = mpsc::unbounded_channel::<String>();
        let received: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let acks: Acks = Arc::default();
        let closed = Arc::new(Notify::new());
        let task = {
            let received = received.clone();
            let arrived = arrived.clone();
            let acks = acks.clone();
            let closed = closed.clone();
            let (mut sink, mut source) = stream.split();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        text = to_send.recv() => match text {
                            Some(text) => { if sink.send(Message::text(text)).await.is_err() { break; } }
                            None => { let _ = sink.close().await; break; }
                        },
                        message = source.next() => {
                            let Some(Ok(message)) = message else { break };
                            let Ok(text) = message.into_text() else { continue };
                            let text = text.as_str();
                            if text == "2" {
                                if sink.send(Message::text("3")).await.is_err() { break; }
                            } else if let Some(body) = text.strip_prefix("42") {
                                if let Some((event, payload)) = parse_event(body) {
                                    received.lock().unwrap().push((event, payload));
                                    arrived.notify_waiters();
                                }
                            } else if let Some(body) = text.strip_prefix("43") {
                                let digits: String = body.chars().take_while(char::is_ascii_digit).collect();
                                let rest = &body[digits.len()..];
                                if let (Ok(id), Ok(Value::Array(mut values))) = (digits.parse::<u64>(), serde_json::from_str::<Value>(rest)) {
                                    if let Some(sender) = acks.lock().unwrap().remove(&id) {
                                        let _ = sender.send(if values.is_empty() { Value::Null } else { values.remove(0) });
                                    }
                                }
                            } else if text.starts_with("41") || text.starts_with('1') {
                                break;
                            }
                        }
                    }
                }
                closed.notify_waiters();
            })
        };
        Ok(Self {
            outgoing,
            received,
            arrived,
            acks,
            next_ack: AtomicU64::new(1),
            closed,
            task,
        })
    }

    /// Emit `event` with `payload` and wait for its ack (panics after 15 s without one).
    pub async fn emit_ack(&self, event: &str, payload: Value) -> Value {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        self.acks.lock().unwrap().insert(id, sender);
        let packet = format!("42{id}{}", serde_json::json!([event, payload]));
        self.outgoing.send(packet).expect("socket open");
        tokio::time::timeout(Duration::from_secs(15), receiver)
            .await
            .unwrap_or_else(|_| panic!("no ack for {event} within 15 s"))
            .expect("ack sender kept")
    }

    /// Every event received so far, in order.
    pub fn events(&self) -> Vec<(String, Value)> {
        self.received.lock().unwrap().clone()
    }

    /// Wait until an event named `name` whose payload satisfies `matches` arrived; returns it.
    pub async fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            if let Some(found) = self
                .events()
                .into_iter()
                .find(|(event, payload)| event == name && matches(payload))
            {
                return Some(found.1);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// How many received events match.
    pub fn count(&self, name: &str, matches: impl Fn(&Value) -> bool) -> usize {
        self.events()
            .iter()
            .filter(|(event, payload)| event == name && matches(payload))
            .count()
    }

    /// Wait until the server closes the connection.
    pub async fn closed_within(&self, timeout: Duration) -> bool {
        let notified = self.closed.notified();
        if self.task.is_finished() {
            return true;
        }
        tokio::time::timeout(timeout, notified).await.is_ok() || self.task.is_finished()
    }

    /// Drop the connection without a goodbye (like a network failure).
    pub fn drop_connection(self) {
        self.task.abort();
    }
}

async fn next_text<S>(stream: &mut S) -> Result<String, String>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .map_err(|_| "no packet within 10 s".to_string())?
            .ok_or("connection closed")?
            .map_err(|error| error.to_string())?;
        if let Ok(text) = message.into_text() {
            if !text.is_empty() {
                return Ok(text.as_str().to_string());
            }
        }
    }
}

/// `["event", payload, ...]` (optionally preceded by an ack id) → (event, first argument).
fn parse_event(body: &str) -> Option<(String, Value)> {
    let start = body.find('[')?;
    let Value::Array(mut values) = serde_json::from_str(&body[start..]).ok()? else {
        return None;
    };
    if values.is_empty() {
        return None;
    }
    let event = values.remove(0).as_str()?.to_string();
    let payload = if values.is_empty() {
        Value::Null
    } else {
        values.remove(0)
    };
    Some((event, payload))
}
