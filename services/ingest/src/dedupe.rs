//! De-duplication records: which event ids were already produced, and which are being produced
//! right now by another request.
//!
//! A record is `caas:ingest:dedupe:<event id>` holding either `done` (produced and acknowledged
//! by Kafka; kept for the dedupe TTL) or `claim:<token>` (a request is producing it; kept for a
//! short claim TTL so a crashed request does not block the id for long). See
//! [`crate::pipeline`] for how the records are used.
//!
//! Two stores: [`RedisDedupe`] in the service, and [`MemoryDedupe`], the same semantics in
//! process, for tests of the pipeline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use caas_runtime::shutdown::CancellationToken;
use caas_runtime::Secret;

/// The value of a record whose event was produced.
pub const DONE: &str = "done";

/// The Redis key of an event id's record.
pub fn record_key(event_id: &str) -> String {
    format!("caas:ingest:dedupe:{event_id}")
}

/// The value of a claim held by `token`.
pub fn claim_value(token: &str) -> String {
    format!("claim:{token}")
}

/// The store cannot answer; the caller produces anyway (downstream is idempotent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("de-duplication store unavailable: {0}")]
pub struct DedupeError(pub String);

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimState {
    /// Nobody had the id: it is now claimed by the caller.
    Claimed,
    /// The event was already produced.
    Done,
    /// Another request holds a claim and is producing it now.
    InFlight,
}

/// A store of de-duplication records.
pub trait DedupeStore: Clone + Send + Sync + 'static {
    /// Atomically: if the id has no record, create `claim:<token>` with `ttl` and say
    /// [`ClaimState::Claimed`]; otherwise say what the record is.
    fn claim(
        &self,
        event_id: &str,
        token: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<ClaimState, DedupeError>> + Send;

    /// Record that the event was produced, for `ttl`.
    fn mark_done(
        &self,
        event_id: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), DedupeError>> + Send;

    /// Remove the caller's claim (and only the caller's) after a failed produce, so the
    /// provider's retry can claim the id at once.
    fn release(
        &self,
        event_id: &str,
        token: &str,
    ) -> impl Future<Output = Result<(), DedupeError>> + Send;
}

fn state_of(existing: Option<&str>) -> ClaimState {
    match existing {
        None => ClaimState::Claimed,
        Some(DONE) => ClaimState::Done,
        Some(_) => ClaimState::InFlight,
    }
}

// ---------------------------------------------------------------- Redis ----------------------

/// Claim: return the existing record, or create the claim and return nil. One round trip, atomic.
const CLAIM_SCRIPT: &str = r"
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";

/// Release: delete the record only if it is still the caller's claim.
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Records in Redis. Connects in the background and keeps retrying while Redis is down, so the
/// service starts (and answers webhooks) without it; every call is bounded by a short timeout.
#[derive(Clone)]
pub struct RedisDedupe {
    /// `None` until the first connection succeeded; the manager reconnects by itself after.
    connection: Arc<RwLock<Option<redis::aio::ConnectionManager>>>,
    claim_script: Arc<redis::Script>,
    release_script: Arc<redis::Script>,
    /// Upper bound of one call, so a hung Redis delays a webhook by at most this.
    call_timeout: Duration,
}

impl RedisDedupe {
    /// Start connecting to `url` in the background (retrying every 2 s until it works or
    /// `shutdown` is cancelled).
    pub fn connect_in_background(url: &Secret, shutdown: CancellationToken) -> Self {
        let store = Self {
            connection: Arc::default(),
            claim_script: Arc::new(redis::Script::new(CLAIM_SCRIPT)),
            release_script: Arc::new(redis::Script::new(RELEASE_SCRIPT)),
            call_timeout: Duration::from_millis(500),
        };
        let slot = Arc::clone(&store.connection);
        let url = url.clone();
        tokio::spawn(async move {
            let mut logged_failure = false;
            loop {
                match connect(url.expose()).await {
                    Ok(manager) => {
                        *slot
                            .write()
                            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(manager);
                        tracing::info!("redis connected for de-duplication");
                        return;
                    }
                    Err(error) => {
                        if !logged_failure {
                            tracing::warn!(
                                error = %error,
                                "redis unreachable; webhooks are produced without de-duplication until it is back"
                            );
                            logged_failure = true;
                        }
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        });
        store
    }

    fn connection(&self) -> Result<redis::aio::ConnectionManager, DedupeError> {
        self.connection
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .ok_or_else(|| DedupeError("not connected to redis yet".to_string()))
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, DedupeError> {
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(DedupeError(error.to_string())),
            Err(_) => Err(DedupeError(format!(
                "no answer within {} ms",
                self.call_timeout.as_millis()
            ))),
        }
    }
}

async fn connect(url: &str) -> Result<redis::aio::ConnectionManager, String> {
    let client = redis::Client::open(url).map_err(|error| format!("bad redis url: {error}"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(|error| format!("redis unreachable: {error}"))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl DedupeStore for RedisDedupe {
    async fn claim(
        &self,
        event_id: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<ClaimState, DedupeError> {
        let mut connection = self.connection()?;
        let mut invocation = self.claim_script.key(record_key(event_id));
        invocation.arg(claim_value(token)).arg(millis(ttl));
        let existing: Option<String> = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok(state_of(existing.as_deref()))
    }

    async fn mark_done(&self, event_id: &str, ttl: Duration) -> Result<(), DedupeError> {
        let mut connection = self.connection()?;
        let mut command = redis::cmd("SET");
        command
            .arg(record_key(event_id))
            .arg(DONE)
            .arg("PX")
            .arg(millis(ttl));
        self.bounded(command.query_async::<()>(&mut connection))
            .await
    }

    async fn release(&self, event_id: &str, token: &str) -> Result<(), DedupeError> {
        let mut connection = self.connection()?;
        let mut invocation = self.release_script.key(record_key(event_id));
        invocation.arg(claim_value(token));
        self.bounded(invocation.invoke_async::<i64>(&mut connection))
            .await
            .map(|_| ())
    }
}

// ---------------------------------------------------------------- in process -----------------

/// The same records in process memory, with expiry; for tests (and a single-instance set-up
/// without Redis, should one ever be wanted). `set_available(false)` simulates Redis being down.
#[derive(Clone, Default)]
pub struct MemoryDedupe {
    records: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    unavailable: Arc<std::sync::atomic::AtomicBool>,
}

impl MemoryDedupe {
    /// Make every call fail (or work again).
    pub fn set_available(&self, available: bool) {
        self.unavailable
            .store(!available, std::sync::atomic::Ordering::SeqCst);
    }

    /// The current record of an event id, if any and not expired.
    pub fn record(&self, event_id: &str) -> Option<String> {
        let records = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        records
            .get(event_id)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(value, _)| value.clone())
    }

    fn check(&self) -> Result<(), DedupeError> {
        if self.unavailable.load(std::sync::atomic::Ordering::SeqCst) {
            Err(DedupeError("memory store switched off".to_string()))
        } else {
            Ok(())
        }
    }
}

impl DedupeStore for MemoryDedupe {
    async fn claim(
        &self,
        event_id: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<ClaimState, DedupeError> {
        self.check()?;
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if let Some((value, expires)) = records.get(event_id) {
            if *expires > now {
                return Ok(state_of(Some(value)));
            }
        }
        records.insert(event_id.to_string(), (claim_value(token), now + ttl));
        Ok(ClaimState::Claimed)
    }

    async fn mark_done(&self, event_id: &str, ttl: Duration) -> Result<(), DedupeError> {
        self.check()?;
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        records.insert(
            event_id.to_string(),
            (DONE.to_string(), Instant::now() + ttl),
        );
        Ok(())
    }

    async fn release(&self, event_id: &str, token: &str) -> Result<(), DedupeError> {
        self.check()?;
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if records
            .get(event_id)
            .is_some_and(|(value, _)| *value == claim_value(token))
        {
            records.remove(event_id);
        }
        Ok(())
    }
}
