//! Presence state in Redis: load an entity, write a decision atomically if nobody changed the
//! entity meanwhile (compare-and-set in a Lua script, together with its deadline and the
//! tenant's online index), claim due deadlines, and the customer export and erasure the logger
//! calls.
//!
//! The scripts touch keys of different hash slots (an entity, the global deadline index, the
//! tenant's online index), so this layout needs a single Redis (or one primary), not Redis
//! Cluster.

use redis::aio::ConnectionLike;
use redis::{AsyncCommands, RedisResult, Script};

use caas_events::model::{Channel, PresenceSubject};

use crate::domain::{DeadlineChange, Decision, EntityState};
use crate::keys::{self, Activity};

/// Compare-and-set of one entity plus its deadline and online-index entries.
/// KEYS: entity, deadlines, online index. ARGV: expected ('' = absent), new state, state TTL
/// ms, deadline member, deadline op, deadline score, online member ('' = none), online op,
/// online score. Ops: `keep`, `set`, `clear`. Returns 1 if written, 0 if the entity changed.
const APPLY: &str = r"
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[5] == 'set' then
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[4])
elseif ARGV[5] == 'clear' then
  redis.call('ZREM', KEYS[2], ARGV[4])
end
if ARGV[7] ~= '' then
  if ARGV[8] == 'set' then
    redis.call('ZADD', KEYS[3], ARGV[9], ARGV[7])
    redis.call('PEXPIRE', KEYS[3], ARGV[3])
  elseif ARGV[8] == 'clear' then
    redis.call('ZREM', KEYS[3], ARGV[7])
  end
end
return 1
";

/// Take up to ARGV[3] deadlines due at ARGV[1]: each is pushed to ARGV[1] + ARGV[2] (a lease,
/// so another scanner does not take it, and it comes back if this one dies) and returned with
/// its scheduled score.
const CLAIM: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
local lease = tonumber(ARGV[1]) + tonumber(ARGV[2])
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], lease, due[i])
end
return due
";

/// Remove a deadline only if it still holds the claimer's lease (a renewal moved it otherwise).
const RELEASE: &str = r"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
";

/// An entity as loaded: its raw value (for the compare-and-set) and its parsed state.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The stored JSON, empty when absent.
    pub raw: String,
    /// The parsed state; `None` when absent or unreadable (then overwritten).
    pub state: Option<EntityState>,
}

/// The Redis side of presence.
#[derive(Clone)]
pub struct StateStore {
    connection: redis::aio::ConnectionManager,
    apply: std::sync::Arc<Script>,
    claim: std::sync::Arc<Script>,
    release: std::sync::Arc<Script>,
    /// How long an untouched entity is kept, ms.
    state_ttl_ms: i64,
    /// This deployment's deadline index ([`keys::deadlines`]).
    deadlines: String,
}

impl StateStore {
    /// Wrap a connection; `topic_prefix` selects the deadline index ([`keys::deadlines`]).
    pub fn new(
        connection: redis::aio::ConnectionManager,
        state_ttl_ms: i64,
        topic_prefix: &str,
    ) -> Self {
        Self {
            connection,
            apply: std::sync::Arc::new(Script::new(APPLY)),
            claim: std::sync::Arc::new(Script::new(CLAIM)),
            release: std::sync::Arc::new(Script::new(RELEASE)),
            state_ttl_ms,
            deadlines: keys::deadlines(topic_prefix),
        }
    }

    /// Load one entity.
    pub async fn load(&self, entity_key: &str) -> RedisResult<Loaded> {
        let mut connection = self.connection.clone();
        let raw: Option<String> = connection.get(entity_key).await?;
        let raw = raw.unwrap_or_default();
        let state = if raw.is_empty() {
            None
        } else {
            match serde_json::from_str(&raw) {
                Ok(state) => Some(state),
                Err(error) => {
                    tracing::warn!(entity_key, error = %error, "unreadable presence state; starting afresh");
                    None
                }
            }
        };
        Ok(Loaded { raw, state })
    }

    /// Write `decision` for `entity_key` if the entity still holds `expected_raw`. `deadline`
    /// overrides what is done to the deadline entry (the scanner keeps its lease until the
    /// update is confirmed). Returns false when someone changed the entity meanwhile.
    pub async fn apply(
        &self,
        entity_key: &str,
        expected_raw: &str,
        decision: &Decision,
        deadline_override: Option<DeadlineChange>,
    ) -> RedisResult<bool> {
        let state_json = serde_json::to_string(&decision.state).map_err(|error| {
            redis::RedisError::from((
                redis::ErrorKind::Client,
                "cannot encode presence state",
                error.to_string(),
            ))
        })?;
        if state_json == expected_raw && decision.deadline.is_none() {
            return Ok(true);
        }
        let (activity, change) = decision
            .deadline
            .unwrap_or((Activity::Online, DeadlineChange::Keep));
        let change_for_index = deadline_override.unwrap_or(change);
        let (deadline_op, deadline_score) = op(change_for_index);
        let (online_member, online_op, online_score) = if activity == Activity::Online {
            let (operation, score) = op(change);
            (
                keys::online_member(decision.state.subject, &decision.state.subject_id),
                operation,
                score,
            )
        } else {
            (String::new(), "keep", 0)
        };
        let mut connection = self.connection.clone();
        let written: i64 = self
            .apply
            .key(entity_key)
            .key(&self.deadlines)
            .key(keys::online_index(&decision.state.tenant_id))
            .arg(expected_raw)
            .arg(state_json)
            .arg(self.state_ttl_ms)
            .arg(keys::deadline_member(activity, entity_key))
            .arg(deadline_op)
            .arg(deadline_score)
            .arg(online_member)
            .arg(online_op)
            .arg(online_score)
            .invoke_async(&mut connection)
            .await?;
        Ok(written == 1)
    }

    /// Claim up to `limit` deadlines due at `now` for `lease_ms`; returns (member, scheduled).
    pub async fn claim_due(
        &self,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> RedisResult<Vec<(String, i64)>> {
        let mut connection = self.connection.clone();
        let flat: Vec<String> = self
            .claim
            .key(&self.deadlines)
            .arg(now)
            .arg(lease_ms)
            .arg(limit)
            .invoke_async(&mut connection)
            .await?;
        Ok(flat
            .chunks(2)
            .filter_map(|pair| match pair {
                [member, score] => score
                    .parse::<f64>()
                    .ok()
                    .map(|score| (member.clone(), score as i64)),
                _ => None,
            })
            .collect())
    }

    /// Drop a claimed deadline if it still holds `lease_score`.
    pub async fn release(&self, member: &str, lease_score: i64) -> RedisResult<()> {
        let mut connection = self.connection.clone();
        let _: i64 = self
            .release
            .key(&self.deadlines)
            .arg(member)
            .arg(lease_score)
            .invoke_async(&mut connection)
            .await?;
        Ok(())
    }

    /// `PING`.
    pub async fn ping(&self) -> RedisResult<()> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| ())
    }
}

fn op(change: DeadlineChange) -> (&'static str, i64) {
    match change {
        DeadlineChange::Keep => ("keep", 0),
        DeadlineChange::Set(at) => ("set", at),
        DeadlineChange::Clear => ("clear", 0),
    }
}

/// Every key holding presence state about one customer of a tenant: the tenant-wide entity
/// and every subject's entity in the customer's conversations (both channels).
pub async fn customer_keys<C: ConnectionLike + Send>(
    connection: &mut C,
    tenant_id: &str,
    customer_id: &str,
) -> RedisResult<Vec<String>> {
    let mut found = vec![keys::subject_key(
        tenant_id,
        PresenceSubject::Customer,
        customer_id,
    )];
    for channel in [Channel::Whatsapp, Channel::Rcs] {
        let conversation = caas_events::keys::conversation_key(tenant_id, channel, customer_id);
        let pattern = keys::conversation_pattern(&conversation);
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(connection)
                .await?;
            found.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// The stored presence state about one customer: (key, JSON) for each key that exists.
pub async fn customer_state<C: ConnectionLike + Send>(
    connection: &mut C,
    tenant_id: &str,
    customer_id: &str,
) -> RedisResult<Vec<(String, String)>> {
    let mut state = Vec::new();
    for key in customer_keys(connection, tenant_id, customer_id).await? {
        let value: Option<String> = redis::cmd("GET").arg(&key).query_async(connection).await?;
        if let Some(value) = value {
            state.push((key, value));
        }
    }
    Ok(state)
}

/// Delete every presence key about one customer, their deadlines and their online entry;
/// returns how many keys were deleted.
pub async fn erase_customer<C: ConnectionLike + Send>(
    connection: &mut C,
    tenant_id: &str,
    customer_id: &str,
) -> RedisResult<usize> {
    let found = customer_keys(connection, tenant_id, customer_id).await?;
    let mut deleted = 0usize;
    for key in &found {
        let removed: usize = redis::cmd("DEL").arg(key).query_async(connection).await?;
        deleted += removed;
        let members = [
            keys::deadline_member(Activity::Online, key),
            keys::deadline_member(Activity::Typing, key),
        ];
        let _: usize = redis::cmd("ZREM")
            .arg(keys::DEADLINES)
            .arg(&members[..])
            .query_async(connection)
            .await?;
    }
    let _: usize = redis::cmd("ZREM")
        .arg(keys::online_index(tenant_id))
        .arg(keys::online_member(PresenceSubject::Customer, customer_id))
        .query_async(connection)
        .await?;
    Ok(deleted)
}
