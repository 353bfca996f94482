//! Sessions in Redis, written only over the revision that was read (compare-and-set), and
//! the deadlines of waiting steps in one sorted set per tenant, so the timer of any instance
//! serving the tenant finds them (and an instance without the tenant's flows never touches
//! them).
//!
//! | key | value |
//! |---|---|
//! | `caas:chatbot:session:<conversation key>` | the session as JSON, with a TTL |
//! | `caas:chatbot:deadlines:<tenant>` | sorted set: conversation key scored by its deadline (epoch ms) |

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use crate::domain::session::Session;

/// The sorted set of a tenant's deadlines.
pub fn deadlines_key(tenant: &str) -> String {
    format!("caas:chatbot:deadlines:{tenant}")
}

/// Writes the session only if the stored revision is the expected one (-1: none stored).
const SAVE_IF_REVISION: &str = r"
local current = redis.call('GET', KEYS[1])
local expected = tonumber(ARGV[1])
if current then
  local revision = tonumber(cjson.decode(current)['revision'] or 0)
  if expected < 0 or revision ~= expected then return 0 end
elseif expected >= 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// A store error; the event is retried.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis failed.
    #[error("session store (redis) unavailable: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored session is not valid JSON of a session.
    #[error("stored session of {key} is unreadable: {reason}")]
    Corrupt {
        /// The conversation.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Sessions and deadlines; cheap to clone.
#[derive(Clone)]
pub struct Store {
    connection: ConnectionManager,
    save_if_revision: std::sync::Arc<Script>,
    ttl: Duration,
}

fn session_key(conversation_key: &str) -> String {
    format!("caas:chatbot:session:{conversation_key}")
}

impl Store {
    /// A store on `connection`; sessions live `ttl` after their last write.
    pub fn new(connection: ConnectionManager, ttl: Duration) -> Self {
        Self {
            connection,
            save_if_revision: std::sync::Arc::new(Script::new(SAVE_IF_REVISION)),
            ttl,
        }
    }

    /// The session of a conversation, if any.
    pub async fn load(&self, conversation_key: &str) -> Result<Option<Session>, StoreError> {
        let mut connection = self.connection.clone();
        let text: Option<String> = connection.get(session_key(conversation_key)).await?;
        text.map(|text| {
            serde_json::from_str(&text).map_err(|error| StoreError::Corrupt {
                key: conversation_key.to_string(),
                reason: error.to_string(),
            })
        })
        .transpose()
    }

    /// Store `session` if the stored one still has `read_revision` (`None`: none was
    /// stored); `false` when someone else wrote in between.
    pub async fn save(
        &self,
        conversation_key: &str,
        session: &Session,
        read_revision: Option<u64>,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(session).map_err(|error| StoreError::Corrupt {
            key: conversation_key.to_string(),
            reason: error.to_string(),
        })?;
        let expected: i64 = read_revision.map_or(-1, |revision| revision as i64);
        let mut connection = self.connection.clone();
        let written: i64 = self
            .save_if_revision
            .key(session_key(conversation_key))
            .arg(expected)
            .arg(json)
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut connection)
            .await?;
        Ok(written == 1)
    }

    /// Record (or clear) the deadline of a conversation of `tenant`.
    pub async fn set_deadline(
        &self,
        tenant: &str,
        conversation_key: &str,
        deadline: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let key = deadlines_key(tenant);
        match deadline {
            Some(at) => {
                let _: i64 = connection.zadd(key, conversation_key, at).await?;
            }
            None => {
                let _: i64 = connection.zrem(key, conversation_key).await?;
            }
        }
        Ok(())
    }

    /// Conversations of `tenant` whose deadline is at or before `now`, at most `limit`.
    pub async fn due(
        &self,
        tenant: &str,
        now: i64,
        limit: isize,
    ) -> Result<Vec<String>, StoreError> {
        let mut connection = self.connection.clone();
        Ok(connection
            .zrangebyscore_limit(deadlines_key(tenant), "-inf", now, 0, limit)
            .await?)
    }
}
