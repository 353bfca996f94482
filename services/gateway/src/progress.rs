//! How far the logger got: its consumer group's committed offsets.
//!
//! The gateway waits for the `seq` the logger assigns to each event. Some events never get one
//! although the logger is healthy: it processed them and chose not to store them (an event
//! about an erased customer, a record it dead-lettered). Once the logger's group has committed
//! an offset past a record, no `seq` will come for it, so the wait can end at once instead of
//! running out its budget and holding up the partition.
//!
//! Reading committed offsets needs no group membership: this client never subscribes or
//! commits, it only asks the group coordinator (`OffsetFetch`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caas_runtime::KafkaSecurity;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// How long a fetched offset is reused before asking again.
const FRESH_FOR: Duration = Duration::from_millis(250);

/// Reads the logger group's committed offsets, cached briefly per partition.
#[derive(Clone)]
pub struct LoggerProgress {
    consumer: Arc<BaseConsumer>,
    /// (topic, partition) → (committed offset, when fetched).
    cache: Arc<Mutex<Fetched>>,
}

type Fetched = HashMap<(String, i32), (i64, Instant)>;

impl LoggerProgress {
    /// A reader of `group`'s progress (the logger's `CAAS_LOGGER_GROUP_ID`), authenticated like
    /// the gateway's other Kafka clients. Connects lazily.
    pub fn new(
        bootstrap_servers: &str,
        security: &KafkaSecurity,
        group: &str,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", bootstrap_servers)
            .set("group.id", group)
            .set("client.id", "caas-gateway-logger-progress")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("log_level", "3");
        security.apply(&mut client);
        let consumer: BaseConsumer = client.create()?;
        Ok(Self {
            consumer: Arc::new(consumer),
            cache: Arc::default(),
        })
    }

    /// Whether the logger's group has committed past `offset` of `topic`/`partition`, i.e. it
    /// is done with that record. `false` when unknown (no commit yet, Kafka unreachable).
    pub async fn passed(&self, topic: &str, partition: i32, offset: i64) -> bool {
        let key = (topic.to_string(), partition);
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
            .copied();
        let committed = match cached {
            Some((committed, fetched)) if fetched.elapsed() < FRESH_FOR => committed,
            _ => {
                let consumer = self.consumer.clone();
                let (topic_name, partition_id) = key.clone();
                let fetched = tokio::task::spawn_blocking(move || {
                    let mut wanted = TopicPartitionList::new();
                    wanted.add_partition(&topic_name, partition_id);
                    consumer
                        .committed_offsets(wanted, Duration::from_secs(2))
                        .ok()
                        .and_then(|list| {
                            list.find_partition(&topic_name, partition_id)
                                .map(|element| element.offset())
                        })
                })
                .await
                .ok()
                .flatten();
                let committed = match fetched {
                    Some(Offset::Offset(committed)) => committed,
                    _ => -1,
                };
                self.cache
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(key, (committed, Instant::now()));
                committed
            }
        };
        // A committed offset is the next one to read.
        committed > offset
    }
}
