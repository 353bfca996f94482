//! The sender's own record of when each customer last wrote: a consumer of
//! `inbound.messages.v1` (group `<group>-window`) that keeps the latest `occurred_at` per
//! conversation in Redis. The sender does not wait for the logger to persist a message
//! before a reply to it may be sent; see `crate::pipeline` for the remaining race.

use caas_events::model::InboundMessage;
use caas_events::Codec;
use caas_kafka::{Handler, HandlerError, Record};

use crate::config::Tenants;
use crate::domain::window::WINDOW_MS;
use crate::metrics::metrics;
use crate::state::RedisState;

/// Records inbound times.
pub struct WindowTracker {
    /// Avro through the registry.
    pub codec: Codec,
    /// Where the times go.
    pub redis: RedisState,
    /// When set, only these tenants are recorded (`CAAS_SENDER_UNKNOWN_TENANTS=skip`).
    pub only_tenants: Option<Tenants>,
}

impl Handler for WindowTracker {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let Some(payload) = record.payload.as_deref() else {
            return Ok(());
        };
        let message: InboundMessage = self.codec.decode(payload).await.map_err(|error| {
            if error.is_poison() {
                HandlerError::poison(format!("undecodable inbound message: {error}"))
            } else {
                HandlerError::retryable(format!("cannot decode the inbound message yet: {error}"))
            }
        })?;
        if let Some(tenants) = &self.only_tenants {
            if tenants.get(&message.tenant_id).is_none() {
                return Ok(());
            }
        }
        let now = caas_runtime::clock::now_millis();
        if message.occurred_at + WINDOW_MS <= now {
            // Too old to open a window (a replay of history): nothing to record.
            return Ok(());
        }
        self.redis
            .record_inbound(&message.conversation_key, message.occurred_at)
            .await
            .map_err(|error| {
                HandlerError::retryable(format!("cannot record the inbound time in redis: {error}"))
            })?;
        metrics()
            .inbound_recorded
            .with_label_values(&[message.channel.as_str()])
            .inc();
        Ok(())
    }
}
