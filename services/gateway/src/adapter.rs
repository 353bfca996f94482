//! The socket.io adapter's Redis driver: pub/sub over one `redis` [`ConnectionManager`] that
//! connects lazily, reconnects by itself and re-subscribes after a reconnect.
//!
//! socketioxide-redis ships a driver over a plain multiplexed connection, which must connect
//! before the server starts and stays broken after Redis restarts. The gateway must start (and
//! say "not ready") while Redis is down and heal when it comes back, so it uses this driver
//! instead, through the adapter's [`Driver`] trait:
//!
//! - `subscribe` records the channel's handler first, then asks Redis; a subscription Redis
//!   could not take yet stays pending and a background task retries it every second. Once
//!   confirmed, the connection manager's subscription tracker renews it after every reconnect.
//! - `publish` fails while Redis is unreachable; the fan-out treats that as "emit locally only"
//!   (see `fanout.rs` in the service) rather than dropping the event.
//!
//! Messages arrive as RESP3 pushes (the URL must carry `protocol=resp3`) and are routed to the
//! channel's handler without blocking the connection; a full handler queue drops the message
//! with a warning, as the stock driver does.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, FromRedisValue, PushInfo, PushKind};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

/// A Redis error seen by the adapter.
#[derive(Debug)]
pub struct DriverError(redis::RedisError);

impl fmt::Display for DriverError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "redis: {}", self.0)
    }
}

impl std::error::Error for DriverError {}

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

/// The reconnecting pub/sub driver. Clones share the connection and the handlers.
#[derive(Clone)]
pub struct ReconnectingDriver {
    inner: Arc<Inner>,
}

struct Inner {
    connection: ConnectionManager,
    handlers: Handlers,
    /// Channels whose SUBSCRIBE has not been confirmed by Redis yet.
    pending: Mutex<HashSet<String>>,
}

impl ReconnectingDriver {
    /// Create the driver without connecting. `url` must request RESP3 (`protocol=resp3`).
    /// Must be called inside a Tokio runtime (it starts the retry task).
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let handlers: Handlers = Arc::default();
        let routing = handlers.clone();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(move |push: PushInfo| {
                route(push, &routing);
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            // Fail a call quickly while Redis is down; the next call tries again.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        let inner = Arc::new(Inner {
            connection,
            handlers,
            pending: Mutex::default(),
        });
        tokio::spawn(retry_pending(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// How many subscriptions still wait for Redis (0 once connected).
    pub fn pending_subscriptions(&self) -> usize {
        lock(&self.inner.pending).len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Retry the subscriptions Redis did not confirm, until the driver is dropped.
async fn retry_pending(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let channels: Vec<String> = lock(&inner.pending).iter().cloned().collect();
        for channel in channels {
            match inner.connection.clone().subscribe(&channel).await {
                Ok(()) => {
                    lock(&inner.pending).remove(&channel);
                    tracing::info!(
                        channel,
                        "socket.io adapter subscribed after redis came back"
                    );
                }
                Err(error) => {
                    tracing::debug!(channel, error = %error, "socket.io adapter still cannot subscribe");
                    break;
                }
            }
        }
    }
}

fn route(push: PushInfo, handlers: &Handlers) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) || push.data.len() < 2 {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(channel), Some(message)) = (data.next(), data.next()) else {
        return;
    };
    let (Ok(channel), Ok(message)) = (
        String::from_redis_value(channel),
        Vec::<u8>::from_redis_value(message),
    ) else {
        tracing::warn!("unreadable pub/sub message from redis");
        return;
    };
    let handlers = handlers
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(sender) = handlers.get(&channel) {
        if let Err(error) = sender.try_send((channel, message)) {
            tracing::warn!(error = %error, "socket.io adapter queue full; a cross-instance message was dropped");
        }
    }
}

impl Driver for ReconnectingDriver {
    type Error = DriverError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        self.inner
            .connection
            .clone()
            .publish::<_, _, redis::Value>(chan, val)
            .await
            .map(|_| ())
            .map_err(DriverError)
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (sender, receiver) = mpsc::channel(size);
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(chan.clone(), sender);
        if let Err(error) = self.inner.connection.clone().subscribe(&chan).await {
            tracing::warn!(channel = %chan, error = %error, "redis unreachable; the socket.io adapter subscribes when it is back");
            lock(&self.inner.pending).insert(chan);
        }
        Ok(MessageStream::new(receiver))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&chan);
        lock(&self.inner.pending).remove(&chan);
        self.inner
            .connection
            .clone()
            .unsubscribe(&chan)
            .await
            .map_err(DriverError)
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let mut connection = self.inner.connection.clone();
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut connection)
            .await
            .map_err(DriverError)?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_are_routed_to_their_channel() {
        let handlers: Handlers = Arc::default();
        let (sender, mut receiver) = mpsc::channel(1);
        handlers.write().unwrap().insert("chan".to_string(), sender);
        route(
            PushInfo {
                kind: PushKind::Message,
                data: vec![
                    redis::Value::BulkString(b"chan".to_vec()),
                    redis::Value::BulkString(b"payload".to_vec()),
                ],
            },
            &handlers,
        );
        assert_eq!(
            receiver.try_recv().unwrap(),
            ("chan".to_string(), b"payload".to_vec())
        );
        // Other kinds and unknown channels are ignored without panicking.
        route(
            PushInfo {
                kind: PushKind::Subscribe,
                data: vec![],
            },
            &handlers,
        );
        route(
            PushInfo {
                kind: PushKind::Message,
                data: vec![
                    redis::Value::BulkString(b"other".to_vec()),
                    redis::Value::BulkString(b"x".to_vec()),
                ],
            },
            &handlers,
        );
        assert!(receiver.try_recv().is_err());
    }
}
