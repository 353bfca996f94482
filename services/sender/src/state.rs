//! The sender's state in Redis: the customers' last inbound times (for the window), the
//! token buckets and rate-limit pauses per sending number, and the liveness of sender
//! instances (for the idempotency ledger's take-over rule).
//!
//! | key | value | lifetime |
//! |---|---|---|
//! | `caas:sender:last_inbound:<conversation key>` | epoch ms of the customer's latest message | until the window closed + 1 h |
//! | `caas:sender:bucket:<channel>:<endpoint>` | hash `tokens`, `at` | a few seconds idle |
//! | `caas:sender:pause:<channel>:<endpoint>[:<customer>]` | set after a rate-limit answer | the backoff |
//! | `caas:sender:instance:<instance id>` | present while the instance runs | [`LIVENESS_TTL`], refreshed |

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use crate::domain::bucket::Limits;
use crate::domain::window::WINDOW_MS;

/// How long an instance counts as alive after its last heartbeat.
pub const LIVENESS_TTL: Duration = Duration::from_secs(5);

/// Keeps the later of two inbound times; expires when the window it opens has closed.
const RECORD_INBOUND: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
  return 1
end
return 0
";

/// The token bucket of `crate::domain::bucket` on Redis's clock. Returns 0 when a token was
/// taken, otherwise the milliseconds to wait (a pause, or until the next token).
const TAKE_TOKEN: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for index = 2, #KEYS do
  local pause = redis.call('PTTL', KEYS[index])
  if pause > 0 then return pause end
end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
local elapsed = now - at
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate / 1000)
local ttl = math.ceil(burst * 1000 / rate) + 1000
if tokens >= 1 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 0
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ttl)
return math.max(1, math.ceil((1 - tokens) * 1000 / rate))
";

/// Handle on the sender's Redis state; cheap to clone.
#[derive(Clone)]
pub struct RedisState {
    connection: ConnectionManager,
    record_inbound: std::sync::Arc<Script>,
    take_token: std::sync::Arc<Script>,
}

fn last_inbound_key(conversation_key: &str) -> String {
    format!("caas:sender:last_inbound:{conversation_key}")
}

fn instance_key(instance_id: &str) -> String {
    format!("caas:sender:instance:{instance_id}")
}

/// The bucket of a sending endpoint.
pub fn bucket_key(channel: &str, endpoint: &str) -> String {
    format!("caas:sender:bucket:{channel}:{endpoint}")
}

/// The pause of a sending endpoint, or of one endpoint–customer pair.
pub fn pause_key(channel: &str, endpoint: &str, customer: Option<&str>) -> String {
    match customer {
        Some(customer) => format!("caas:sender:pause:{channel}:{endpoint}:{customer}"),
        None => format!("caas:sender:pause:{channel}:{endpoint}"),
    }
}

impl RedisState {
    /// Wrap a connection (it reconnects by itself).
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            record_inbound: std::sync::Arc::new(Script::new(RECORD_INBOUND)),
            take_token: std::sync::Arc::new(Script::new(TAKE_TOKEN)),
        }
    }

    /// The customer's latest inbound time in a conversation, if recorded.
    pub async fn last_inbound(&self, conversation_key: &str) -> redis::RedisResult<Option<i64>> {
        let mut connection = self.connection.clone();
        connection.get(last_inbound_key(conversation_key)).await
    }

    /// Record an inbound time (keeps the latest; idempotent).
    pub async fn record_inbound(
        &self,
        conversation_key: &str,
        occurred_at: i64,
    ) -> redis::RedisResult<()> {
        let expire_at = occurred_at + WINDOW_MS + 3_600_000;
        let mut connection = self.connection.clone();
        let _: i64 = self
            .record_inbound
            .key(last_inbound_key(conversation_key))
            .arg(occurred_at)
            .arg(expire_at)
            .invoke_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Try to take a token; `Ok(0)` when taken, else milliseconds to wait.
    pub async fn take_token(
        &self,
        bucket: &str,
        pauses: &[String],
        limits: Limits,
    ) -> redis::RedisResult<u64> {
        let mut connection = self.connection.clone();
        let mut invocation = self.take_token.key(bucket);
        for pause in pauses {
            invocation.key(pause);
        }
        let wait: i64 = invocation
            .arg(limits.rate_per_second)
            .arg(limits.burst)
            .invoke_async(&mut connection)
            .await?;
        Ok(wait.max(0) as u64)
    }

    /// Pause everyone sending under `key` for `duration` (extends, never shortens, a pause).
    pub async fn pause(&self, key: &str, duration: Duration) -> redis::RedisResult<()> {
        let mut connection = self.connection.clone();
        let millis = duration.as_millis().max(1) as u64;
        let current: i64 = connection.pttl(key).await?;
        if current < millis as i64 {
            let _: () = connection.pset_ex(key, 1, millis).await?;
        }
        Ok(())
    }

    /// Announce that `instance_id` is alive for [`LIVENESS_TTL`].
    pub async fn heartbeat(&self, instance_id: &str) -> redis::RedisResult<()> {
        let mut connection = self.connection.clone();
        connection
            .pset_ex(
                instance_key(instance_id),
                1,
                LIVENESS_TTL.as_millis() as u64,
            )
            .await
    }

    /// Whether `instance_id` sent a heartbeat within [`LIVENESS_TTL`].
    pub async fn is_alive(&self, instance_id: &str) -> redis::RedisResult<bool> {
        let mut connection = self.connection.clone();
        connection.exists(instance_key(instance_id)).await
    }

    /// Withdraw `instance_id` (on a clean shutdown), so others take over at once.
    pub async fn forget(&self, instance_id: &str) -> redis::RedisResult<()> {
        let mut connection = self.connection.clone();
        connection.del(instance_key(instance_id)).await
    }
}
