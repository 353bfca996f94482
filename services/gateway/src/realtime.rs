//! The socket.io side: authentication at connect, rooms, and operator actions with acks.
//!
//! - A connect without a valid token (`auth: { token }`, or an `Authorization: Bearer` header
//!   on the handshake) is refused by the connect middleware; the client gets `connect_error`
//!   with the reason (`token expired; get a new one`, ...).
//! - A connected operator is in `tenant:<t>` and `operator:<t>:<id>`; it joins
//!   `conversation:<key>` rooms of its own tenant on request. The socket is disconnected when
//!   its token expires.
//! - Every client event is acknowledged with `{ ok: true, id }` (the id of the command or event
//!   it produced) or `{ ok: false, error }`, and only after Kafka acknowledged what it produced.
//!
//! `EVENTS.md` documents every event and payload.

use std::sync::Arc;
use std::time::Duration;

use caas_runtime::shutdown::CancellationToken;
use serde_json::{json, Value};
use socketioxide::adapter::Emitter;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use socketioxide::SocketIo;
use socketioxide_redis::CustomRedisAdapter;

use crate::adapter::ReconnectingDriver;
use crate::auth::{self, AuthError, Claims};
use crate::domain::actions::{self, ActionError, ConversationAction};
use crate::domain::rooms;
use crate::metrics::metrics;
use crate::state::{PublishError, Shared};

/// The adapter: socketioxide-redis over the reconnecting driver.
pub type Adapter = CustomRedisAdapter<Emitter, ReconnectingDriver>;

/// The socket.io server handle.
pub type Io = SocketIo<Adapter>;

type Socket = SocketRef<Adapter>;
type Ack = AckSender<Adapter>;
type SharedState = State<Arc<Shared>>;

/// Client events and their handlers, registered on every connected socket.
pub const CLIENT_EVENTS: [&str; 13] = [
    "conversation.join",
    "conversation.leave",
    "message.send",
    "conversation.assign",
    "conversation.handoff",
    "conversation.release",
    "conversation.close",
    "typing",
    "conversation.read",
    "heartbeat",
    "session.refresh",
    "explorer.subscribe",
    "explorer.unsubscribe",
];

/// Why a client event failed; sent back as `{ ok: false, error }`.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// The action itself is refused.
    #[error(transparent)]
    Action(#[from] ActionError),
    /// Kafka or the registry did not take it; the client may retry.
    #[error("not published, try again: {0}")]
    Unavailable(#[from] PublishError),
    /// Too many events from this socket.
    #[error("rate limited: more than {EVENTS_PER_SECOND} events per second; slow down")]
    RateLimited,
}

/// Register the default namespace: the auth middleware and the connect handler. Resolves once
/// the adapter subscribed to its Redis channels (or recorded them for when Redis is back).
pub async fn register(io: &Io) -> anyhow::Result<()> {
    io.ns("/", on_connect.with(authenticate))
        .await
        .map_err(|error| anyhow::anyhow!("cannot start the socket.io adapter: {error:?}"))
}

/// Connect middleware: verify the token, keep the claims on the socket.
async fn authenticate(
    socket: Socket,
    TryData(auth): TryData<Value>,
    State(shared): SharedState,
) -> Result<(), AuthError> {
    let from_auth = auth.ok().and_then(|auth| {
        auth.get("token")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let from_header = || {
        socket
            .req_parts()
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    let token = from_auth.or_else(from_header).unwrap_or_default();
    let verified = if token.trim().is_empty() {
        Err(AuthError::Missing)
    } else {
        auth::verify(
            &token,
            shared.jwt_secret.expose().as_bytes(),
            auth::now_seconds(),
        )
    };
    match verified {
        Ok(claims) => {
            socket.extensions.insert(claims);
            Ok(())
        }
        Err(error) => {
            metrics()
                .connections
                .with_label_values(&[error.label()])
                .inc();
            tracing::info!(reason = error.label(), "socket.io connection refused");
            Err(error)
        }
    }
}

async fn on_connect(
    socket: Socket,
    Extension(claims): Extension<Claims>,
    State(shared): SharedState,
) {
    metrics().connections.with_label_values(&["accepted"]).inc();
    metrics().connected_sockets.inc();
    socket.join(vec![
        rooms::tenant(&claims.tenant),
        rooms::operator(&claims.tenant, &claims.sub),
    ]);
    tracing::debug!(tenant = %claims.tenant, operator = %claims.sub, "operator connected");

    socket.on("conversation.join", on_join);
    socket.on("conversation.leave", on_leave);
    socket.on("message.send", on_send);
    socket.on("conversation.assign", on_assign);
    socket.on("conversation.handoff", on_handoff);
    socket.on("conversation.release", on_release);
    socket.on("conversation.close", on_close);
    socket.on("typing", on_typing);
    socket.on("conversation.read", on_read);
    socket.on("heartbeat", on_heartbeat);
    socket.on("session.refresh", on_refresh);
    socket.on("explorer.subscribe", on_explorer_subscribe);
    socket.on("explorer.unsubscribe", on_explorer_unsubscribe);
    socket.on_disconnect(on_disconnect);

    let session_ended = CancellationToken::new();
    socket.extensions.insert(session_ended.clone());
    socket.extensions.insert(Allowance::new());
    expire_at_token_end(socket.clone(), claims.exp, session_ended);

    let _ = socket.emit(
        "session",
        &json!({
            "operator_id": claims.sub,
            "tenant": claims.tenant,
            "role": claims.role.as_str(),
            "exp": claims.exp,
        }),
    );
    let online = actions::operator_presence(&claims, true, now_ms(), &fresh_id());
    tokio::spawn(async move {
        if let Err(error) = shared.publisher.publish(&online).await {
            tracing::warn!(error = %error, "cannot publish the operator's online presence");
        }
    });
}

/// Disconnect the socket when its token expires, unless it ends first or is refreshed.
fn expire_at_token_end(socket: Socket, exp: i64, session_ended: CancellationToken) {
    let remaining = (exp + auth::LEEWAY_SECONDS - auth::now_seconds()).max(0) as u64;
    tokio::spawn(async move {
        tokio::select! {
            _ = session_ended.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_secs(remaining)) => {
                let _ = socket.emit("session.expired", &json!({ "error": AuthError::Expired.to_string() }));
                let _ = socket.disconnect();
            }
        }
    });
}

/// Marks a socket that tails the event explorer (so it is counted out once).
#[derive(Clone)]
struct TailsExplorer;

/// `explorer.subscribe {}` (admins): receive `explorer.event` for every event of the tenant
/// stored from now on.
async fn on_explorer_subscribe(socket: Socket, State(shared): SharedState, ack: Ack) {
    const EVENT: &str = "explorer.subscribe";
    let outcome = (|| {
        let claims = admit(&socket)?;
        if !claims.is_admin() {
            return Err(Refusal::Action(ActionError::Forbidden(
                "the event explorer takes the admin role".into(),
            )));
        }
        if socket.extensions.get::<TailsExplorer>().is_none() {
            socket.extensions.insert(TailsExplorer);
            socket.join(rooms::explorer(&claims.tenant));
            shared.explorer.add(&claims.tenant);
        }
        Ok(rooms::explorer(&claims.tenant))
    })();
    answer(EVENT, ack, outcome);
}

/// `explorer.unsubscribe {}`: stop the live tail.
async fn on_explorer_unsubscribe(socket: Socket, State(shared): SharedState, ack: Ack) {
    const EVENT: &str = "explorer.unsubscribe";
    let outcome = (|| {
        let claims = admit(&socket)?;
        stop_tailing(&socket, &shared, &claims);
        Ok(rooms::explorer(&claims.tenant))
    })();
    answer(EVENT, ack, outcome);
}

fn stop_tailing(socket: &Socket, shared: &Shared, claims: &Claims) {
    if socket.extensions.remove::<TailsExplorer>().is_some() {
        socket.leave(rooms::explorer(&claims.tenant));
        shared.explorer.remove(&claims.tenant);
    }
}

async fn on_disconnect(socket: Socket, State(shared): SharedState, reason: DisconnectReason) {
    metrics().connected_sockets.dec();
    if let Some(claims) = socket.extensions.get::<Claims>() {
        stop_tailing(&socket, &shared, &claims);
    }
    if let Some(session_ended) = socket.extensions.get::<CancellationToken>() {
        session_ended.cancel();
    }
    let Some(claims) = socket.extensions.get::<Claims>() else {
        return;
    };
    if reason == DisconnectReason::ClosingServer {
        // This instance is stopping; the client reconnects to another one at once, and the
        // presence expiry covers an operator who does not.
        return;
    }
    // Offline only when none of the operator's sockets remains, on any instance.
    let operator_room = rooms::operator(&claims.tenant, &claims.sub);
    let others = match socket.within(operator_room).fetch_sockets().await {
        Ok(sockets) => sockets
            .iter()
            .filter(|remote| remote.data().id != socket.id)
            .count(),
        Err(_) => 0,
    };
    if others == 0 {
        let offline = actions::operator_presence(&claims, false, now_ms(), &fresh_id());
        if let Err(error) = shared.publisher.publish(&offline).await {
            tracing::warn!(error = %error, "cannot publish the operator's offline presence");
        }
    }
}

/// Client events a socket may send per second, sustained, and in a burst. Far above what a
/// person at a dashboard does (typing signals are throttled client-side to one per 3 s); a
/// runaway client is refused instead of flooding Kafka.
const EVENTS_PER_SECOND: f64 = 20.0;
const EVENTS_BURST: f64 = 40.0;

/// A socket's token bucket (shared by its handlers).
#[derive(Clone)]
struct Allowance(Arc<std::sync::Mutex<(f64, std::time::Instant)>>);

impl Allowance {
    fn new() -> Self {
        Self(Arc::new(std::sync::Mutex::new((
            EVENTS_BURST,
            std::time::Instant::now(),
        ))))
    }

    fn take(&self) -> bool {
        let mut bucket = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (tokens, last) = *bucket;
        let refilled =
            (tokens + last.elapsed().as_secs_f64() * EVENTS_PER_SECOND).min(EVENTS_BURST);
        if refilled < 1.0 {
            *bucket = (refilled, std::time::Instant::now());
            return false;
        }
        *bucket = (refilled - 1.0, std::time::Instant::now());
        true
    }
}

/// The operator behind a socket, if it may send one more event now.
fn admit(socket: &Socket) -> Result<Claims, Refusal> {
    let claims = socket
        .extensions
        .get::<Claims>()
        .ok_or(ActionError::Forbidden("not signed in".into()))?;
    if let Some(allowance) = socket.extensions.get::<Allowance>() {
        if !allowance.take() {
            return Err(Refusal::RateLimited);
        }
    }
    Ok(claims)
}

fn payload_of(
    event: &'static str,
    data: Result<Value, socketioxide::ParserError>,
) -> Result<Value, Refusal> {
    data.map_err(|error| {
        Refusal::Action(ActionError::Invalid {
            event,
            reason: format!("expected one JSON object argument ({error})"),
        })
    })
}

/// Send the ack and count the outcome.
fn answer(event: &'static str, ack: Ack, outcome: Result<String, Refusal>) {
    let (label, body) = match &outcome {
        Ok(id) => ("ok", json!({ "ok": true, "id": id })),
        Err(refusal) => (
            match refusal {
                Refusal::Action(_) => "rejected",
                Refusal::Unavailable(_) => "unavailable",
                Refusal::RateLimited => "rate_limited",
            },
            json!({ "ok": false, "error": refusal.to_string() }),
        ),
    };
    metrics()
        .client_events
        .with_label_values(&[event, label])
        .inc();
    if let Err(refusal) = &outcome {
        tracing::debug!(event, error = %refusal, "client event refused");
    }
    let _ = ack.send(&body);
}

async fn on_join(socket: Socket, TryData(data): TryData<Value>, ack: Ack) {
    const EVENT: &str = "conversation.join";
    let outcome = (|| {
        let claims = admit(&socket)?;
        let request: actions::RoomRequest = actions::parse(EVENT, payload_of(EVENT, data)?)?;
        rooms::check_conversation_key(&claims.tenant, &request.conversation_key)
            .map_err(ActionError::from)?;
        socket.join(rooms::conversation(&request.conversation_key));
        Ok(request.conversation_key)
    })();
    answer(EVENT, ack, outcome);
}

async fn on_leave(socket: Socket, TryData(data): TryData<Value>, ack: Ack) {
    const EVENT: &str = "conversation.leave";
    let outcome = (|| {
        let request: actions::RoomRequest = actions::parse(EVENT, payload_of(EVENT, data)?)?;
        socket.leave(rooms::conversation(&request.conversation_key));
        Ok(request.conversation_key)
    })();
    answer(EVENT, ack, outcome);
}

async fn on_send(
    socket: Socket,
    State(shared): SharedState,
    TryData(data): TryData<Value>,
    ack: Ack,
) {
    const EVENT: &str = "message.send";
    let outcome = async {
        let claims = admit(&socket)?;
        let request: actions::SendRequest = actions::parse(EVENT, payload_of(EVENT, data)?)?;
        rooms::check_conversation_key(&claims.tenant, &request.conversation_key)
            .map_err(ActionError::from)?;
        let state = shared.conversation_state(&request.conversation_key).await;
        let mut command = actions::send_message(&claims, request, &state, now_ms(), &fresh_id())?;
        command.trace_parent = Some(new_trace());
        shared.publisher.publish(&command).await?;
        Ok(command.command_id)
    }
    .await;
    answer(EVENT, ack, outcome);
}

async fn conversation_action(
    action: ConversationAction,
    socket: Socket,
    shared: Arc<Shared>,
    data: Result<Value, socketioxide::ParserError>,
    ack: Ack,
) {
    let event = action.event();
    let outcome = async {
        let claims = admit(&socket)?;
        let request: actions::ConversationRequest =
            actions::parse(event, payload_of(event, data)?)?;
        rooms::check_conversation_key(&claims.tenant, &request.conversation_key)
            .map_err(ActionError::from)?;
        let state = shared.conversation_state(&request.conversation_key).await;
        let mut change =
            actions::change_conversation(action, &claims, request, &state, now_ms(), &fresh_id())?;
        change.trace_parent = Some(new_trace());
        shared.publisher.publish(&change).await?;
        Ok(change.event_id)
    }
    .await;
    answer(event, ack, outcome);
}

async fn on_assign(
    socket: Socket,
    State(shared): SharedState,
    TryData(data): TryData<Value>,
    ack: Ack,
) {
    conversation_action(ConversationAction::Assign, socket, shared, data, ack).await;
}

async fn on_handoff(
    socket: Socket,
    State(shared): SharedState,
    TryData(data): TryData<Value>,
    ack: Ack,
) {
    conversation_action(ConversationAction::Handoff, socket, shared, data, ack).await;
}

async fn on_release(
    socket: Socket,
    State(shared): SharedState,
    TryData(data): TryData<Value>,
    ack: Ack,
) {
    conversation_action(ConversationAction::Release, socket, shared, data, ack).await;
}

async fn on_close(
    socket: Socket,
    State(shared): SharedState,
    TryData(data): TryData<Value>,
    ack: Ack,
) {
    conversation_action(ConversationAction::Close, socket, shared, data, ack).await;
}

async fn on_typing(
    socket: Socket,
    State(shared): SharedState,
    TryData(data): TryData<Value>,
    ack: Ack,
) {
    const EVENT: &str = "typing";
    let outcome = async {
        let claims = admit(&socket)?;
        let request: actions::TypingRequest = actions::parse(EVENT, payload_of(EVENT, data)?)?;
        let signal = actions::typing(&claims, request, now_ms(), &fresh_id())?;
        // Operators see each other type at once, through the adapter; the signal also goes to
        // presence.events.v1 for the presence service's state (its derived typing updates of
        // operators are not fanned out again, see domain::fanout).
        let _ = socket
            .to(rooms::conversation(&signal.conversation_key))
            .emit(
                "typing",
                &json!({
                    "conversation_key": signal.conversation_key,
                    "seq": Value::Null,
                    "subject": "operator",
                    "subject_id": signal.subject_id,
                    "active": signal.expires_at.is_some_and(|expires| expires > signal.occurred_at),
                    "expires_at": signal.expires_at,
                }),
            )
            .await;
        shared.publisher.publish(&signal).await?;
        Ok(signal.event_id)
    }
    .await;
    answer(EVENT, ack, outcome);
}

async fn on_read(
    socket: Socket,
    State(shared): SharedState,
    TryData(data): TryData<Value>,
    ack: Ack,
) {
    const EVENT: &str = "conversation.read";
    let outcome = async {
        let claims = admit(&socket)?;
        let request: actions::ReadRequest = actions::parse(EVENT, payload_of(EVENT, data)?)?;
        let signal = actions::read(&claims, request, now_ms(), &fresh_id())?;
        shared.publisher.publish(&signal).await?;
        Ok(signal.event_id)
    }
    .await;
    answer(EVENT, ack, outcome);
}

async fn on_heartbeat(socket: Socket, State(shared): SharedState, ack: Ack) {
    const EVENT: &str = "heartbeat";
    let outcome = async {
        let claims = admit(&socket)?;
        let signal = actions::operator_presence(&claims, true, now_ms(), &fresh_id());
        shared.publisher.publish(&signal).await?;
        Ok(signal.event_id)
    }
    .await;
    answer(EVENT, ack, outcome);
}

/// `session.refresh { token }`: a new token for the same operator and tenant extends the
/// session without reconnecting.
async fn on_refresh(
    socket: Socket,
    State(shared): SharedState,
    TryData(data): TryData<Value>,
    ack: Ack,
) {
    const EVENT: &str = "session.refresh";
    let outcome = (|| {
        let current = admit(&socket)?;
        let data = payload_of(EVENT, data)?;
        let token = data
            .get("token")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let renewed = auth::verify(
            token,
            shared.jwt_secret.expose().as_bytes(),
            auth::now_seconds(),
        )
        .map_err(|error| ActionError::Invalid {
            event: EVENT,
            reason: error.to_string(),
        })?;
        if renewed.sub != current.sub || renewed.tenant != current.tenant {
            return Err(ActionError::Forbidden(
                "the new token is for another operator or tenant; reconnect instead".into(),
            )
            .into());
        }
        if let Some(previous) = socket.extensions.get::<CancellationToken>() {
            previous.cancel();
        }
        let session_ended = CancellationToken::new();
        socket.extensions.insert(session_ended.clone());
        socket.extensions.insert(renewed.clone());
        expire_at_token_end(socket.clone(), renewed.exp, session_ended);
        Ok(renewed.exp.to_string())
    })();
    answer(EVENT, ack, outcome);
}

/// Now, epoch milliseconds.
pub use caas_runtime::clock::now_millis as now_ms;

/// A new W3C trace: an operator action starts one, carried to the services that act on it.
fn new_trace() -> String {
    caas_kafka::TraceParent::new_root().to_string()
}

fn fresh_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
