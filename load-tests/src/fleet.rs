//! A fleet of socket.io v5 (engine.io v4, WebSocket transport) operator clients, lean enough
//! that one process holds 10,000+ connections: no per-socket buffers beyond the WebSocket's,
//! packets inspected as text (only `message.new` carrying a `lt=` stamp is parsed), latencies
//! recorded into a few shared histograms rather than one per socket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::stats::{now_micros, Recorder};
use crate::webhook::stamp_in;

/// Histograms shared by the sockets (socket `i` records into shard `i % SHARDS`).
const SHARDS: usize = 16;

/// An HS256 operator token as the gateway (and the Node peer) accept it.
pub fn operator_token(secret: &str, tenant: &str, operator: &str, role: &str) -> String {
    let now = now_micros() / 1_000_000;
    let claims =
        json!({ "sub": operator, "tenant": tenant, "role": role, "iat": now, "exp": now + 7200 });
    caas_runtime::jwt::sign(&claims, secret.as_bytes())
}

/// What the fleet connects to and does once connected.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// `host:port` of each server; socket `i` goes to `servers[i % len]`.
    pub servers: Vec<String>,
    pub jwt_secret: String,
    pub tenant: String,
    pub sockets: usize,
    /// Conversation keys; socket `i` joins `rooms[i % len]` (none: idle sockets).
    pub rooms: Vec<String>,
    /// Take each joined conversation over from the bot (`conversation.handoff`, by the first
    /// socket of each room), so the chatbot stays silent while we load the conversation.
    pub handoff: bool,
    /// Handshakes in progress at once.
    pub connect_concurrency: usize,
}

/// A connected fleet; [`Fleet::finish`] closes it and returns what it received.
pub struct Fleet {
    pub connected: usize,
    pub failures: Vec<String>,
    pub connect_seconds: f64,
    window: Arc<OnceLock<(u64, u64)>>,
    shards: Arc<Vec<Mutex<Option<Recorder>>>>,
    received_total: Arc<AtomicU64>,
    /// Every other event the fleet received (room updates, presence, acks).
    other_total: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl Fleet {
    /// Connect every socket (join and hand off as configured) and return once all have
    /// either succeeded or failed.
    pub async fn connect(config: FleetConfig) -> Fleet {
        let begun = Instant::now();
        let (stop, stop_receiver) = watch::channel(false);
        let window: Arc<OnceLock<(u64, u64)>> = Arc::default();
        let shards: Arc<Vec<Mutex<Option<Recorder>>>> =
            Arc::new((0..SHARDS).map(|_| Mutex::new(None)).collect());
        let received_total = Arc::new(AtomicU64::new(0));
        let other_total = Arc::new(AtomicU64::new(0));
        let permits = Arc::new(Semaphore::new(config.connect_concurrency.max(1)));
        let (ready_sender, mut ready_receiver) =
            tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..config.sockets {
            let config = config.clone();
            let permits = permits.clone();
            let ready = ready_sender.clone();
            let stop = stop_receiver.clone();
            let window = window.clone();
            let shards = shards.clone();
            let received_total = received_total.clone();
            let other_total = other_total.clone();
            tasks.spawn(async move {
                let permit = permits.acquire_owned().await.expect("semaphore open");
                let setup =
                    tokio::time::timeout(Duration::from_secs(30), open(&config, index)).await;
                drop(permit);
                let stream = match setup {
                    Ok(Ok(stream)) => {
                        let _ = ready.send(Ok(()));
                        stream
                    }
                    Ok(Err(error)) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                    Err(_) => {
                        let _ = ready.send(Err("setup timed out after 30 s".into()));
                        return;
                    }
                };
                drop(ready);
                let shard = &shards[index % SHARDS];
                listen(stream, stop, &window, shard, &received_total, &other_total).await;
            });
        }
        drop(ready_sender);
        let mut connected = 0;
        let mut failures = Vec::new();
        while let Some(outcome) = ready_receiver.recv().await {
            match outcome {
                Ok(()) => connected += 1,
                Err(error) => failures.push(error),
            }
        }
        Fleet {
            connected,
            failures,
            connect_seconds: begun.elapsed().as_secs_f64(),
            window,
            shards,
            received_total,
            other_total,
            stop,
            tasks,
        }
    }

    /// Wait until no event has arrived for `quiet` (at most `max`): what joining and handing
    /// off set going (every handoff's `conversation.updated` goes to the whole tenant room, so
    /// 1,000 operators handing off 1,000 conversations receive a million updates) must not
    /// queue in front of the measured messages. Returns how long it waited and the events seen.
    pub async fn settle(&self, quiet: Duration, max: Duration) -> (Duration, u64) {
        let began = tokio::time::Instant::now();
        let count = || {
            self.other_total.load(Ordering::Relaxed) + self.received_total.load(Ordering::Relaxed)
        };
        let mut last = count();
        let mut last_change = tokio::time::Instant::now();
        while began.elapsed() < max {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = count();
            if now != last {
                last = now;
                last_change = tokio::time::Instant::now();
            } else if last_change.elapsed() >= quiet {
                break;
            }
        }
        (began.elapsed(), last)
    }

    /// From now on record `message.new` events stamped inside `[start, end)` (epoch µs).
    pub fn measure(&self, start: u64, end: u64) {
        for shard in self.shards.iter() {
            *shard.lock().unwrap() = Some(Recorder::new(start, end));
        }
        let _ = self.window.set((start, end));
    }

    /// Close every socket and merge what they recorded.
    pub async fn finish(mut self) -> (Option<Recorder>, u64) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        let mut merged: Option<Recorder> = None;
        for shard in self.shards.iter() {
            if let Some(recorder) = shard.lock().unwrap().take() {
                match merged.as_mut() {
                    Some(total) => total.merge(&recorder),
                    None => merged = Some(recorder),
                }
            }
        }
        (merged, self.received_total.load(Ordering::Relaxed))
    }

    pub fn to_json(&self) -> Value {
        let mut reasons = std::collections::BTreeMap::<String, u64>::new();
        for failure in &self.failures {
            *reasons.entry(failure.clone()).or_default() += 1;
        }
        json!({
            "connected": self.connected,
            "failed": self.failures.len(),
            "failure_reasons": reasons,
            "connect_seconds": self.connect_seconds,
        })
    }
}

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Handshake, `conversation.join` and `conversation.handoff` for socket `index`.
async fn open(config: &FleetConfig, index: usize) -> Result<Stream, String> {
    let server = &config.servers[index % config.servers.len()];
    let url = format!("ws://{server}/socket.io/?EIO=4&transport=websocket");
    let websocket_config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20);
    let (mut stream, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(websocket_config), true)
            .await
            .map_err(|error| format!("websocket: {error}"))?;
    let open_packet = next_text(&mut stream).await?;
    if !open_packet.starts_with('0') {
        return Err(format!(
            "expected an engine.io open packet, got {open_packet}"
        ));
    }
    let operator = format!("load-{index}");
    let token = operator_token(&config.jwt_secret, &config.tenant, &operator, "admin");
    send(&mut stream, format!("40{}", json!({ "token": token }))).await?;
    loop {
        let packet = next_text(&mut stream).await?;
        if packet == "2" {
            send(&mut stream, "3".into()).await?;
        } else if packet.starts_with("40") {
            break;
        } else if let Some(body) = packet.strip_prefix("44") {
            return Err(format!("connect_error: {body}"));
        }
    }
    if config.rooms.is_empty() {
        return Ok(stream);
    }
    let room = &config.rooms[index % config.rooms.len()];
    call(
        &mut stream,
        1,
        "conversation.join",
        json!({ "conversation_key": room }),
    )
    .await?;
    // One operator per room takes the conversation over (enough to keep the bot silent). Every
    // handoff is an event fanned out to the whole room: 10,000 sockets each handing off the same
    // conversation would emit 10,000 updates to up to 10,000 sockets before the first message.
    if config.handoff && index < config.rooms.len() {
        let answer = call(
            &mut stream,
            2,
            "conversation.handoff",
            json!({ "conversation_key": room, "reason": "load test" }),
        )
        .await?;
        // A conversation already held (by this operator or another run's) is fine.
        let refused = answer["ok"] == json!(false)
            && !answer["error"].as_str().unwrap_or("").contains("assigned");
        if refused {
            return Err(format!("handoff refused: {}", answer["error"]));
        }
    }
    Ok(stream)
}

/// Emit `event` with ack id `id` and wait for the ack, answering pings and skipping events.
async fn call(stream: &mut Stream, id: u64, event: &str, payload: Value) -> Result<Value, String> {
    send(stream, format!("42{id}{}", json!([event, payload]))).await?;
    let prefix = format!("43{id}");
    loop {
        let packet = next_text(stream).await?;
        if packet == "2" {
            send(stream, "3".into()).await?;
        } else if let Some(body) = packet.strip_prefix(&prefix) {
            let mut values: Vec<Value> =
                serde_json::from_str(body).map_err(|error| format!("ack: {error}"))?;
            let answer = if values.is_empty() {
                Value::Null
            } else {
                values.remove(0)
            };
            if answer["ok"] == json!(false) && event == "conversation.join" {
                return Err(format!("{event} refused: {}", answer["error"]));
            }
            return Ok(answer);
        }
    }
}

/// Receive until told to stop: answer pings, time `message.new` stamps.
async fn listen(
    stream: Stream,
    mut stop: watch::Receiver<bool>,
    window: &OnceLock<(u64, u64)>,
    shard: &Mutex<Option<Recorder>>,
    received_total: &AtomicU64,
    other_total: &AtomicU64,
) {
    let (mut sink, mut source) = stream.split();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            message = source.next() => {
                let Some(Ok(message)) = message else { return };
                let Message::Text(text) = message else { continue };
                let text = text.as_str();
                if text == "2" {
                    if sink.send(Message::text("3")).await.is_err() { return; }
                } else if text.starts_with("42[\"message.new\"") {
                    let arrived = now_micros();
                    received_total.fetch_add(1, Ordering::Relaxed);
                    if let (Some(stamp), Some(_)) = (stamp_in(text), window.get()) {
                        if let Some(recorder) = shard.lock().unwrap().as_mut() {
                            recorder.record(stamp, arrived.saturating_sub(stamp));
                        }
                    }
                } else if text.starts_with('1') || text.starts_with("41") {
                    return;
                } else {
                    other_total.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    let _ = sink.send(Message::text("41")).await;
    let _ = sink.close().await;
}

async fn send(stream: &mut Stream, text: String) -> Result<(), String> {
    stream
        .send(Message::text(text))
        .await
        .map_err(|error| format!("send: {error}"))
}

async fn next_text(stream: &mut Stream) -> Result<String, String> {
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
            Some(Ok(Message::Close(_))) | None => return Err("closed by the server".into()),
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(format!("websocket: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_as_the_gateway_checks_them() {
        use caas_runtime::jwt;
        let token = operator_token("secret", "demo", "op-1", "admin");
        let claims = jwt::verify(&token, b"secret", jwt::now_seconds()).unwrap();
        assert_eq!(claims.tenant, "demo");
        assert_eq!(claims.sub, "op-1");
        assert_eq!(claims.role, jwt::Role::Admin);
    }
}
