//! The producer: idempotent, `acks=all`, lz4, a few ms of linger. A send resolves only when the
//! broker acknowledged the record (or failed within the per-send timeout).

use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};

use crate::config::{client_config, KafkaConfig};
use crate::context::TracingContext;
use crate::error::{ClientError, ProduceError};
use crate::metrics::metrics;
use crate::record::OutboundRecord;

/// Where the broker wrote an acknowledged record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// The partition it landed in.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

/// A cheap-to-clone handle on one idempotent producer; share it across tasks.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer<TracingContext>,
    /// The per-send timeout (`message.timeout.ms`); also bounds how long a send waits for room
    /// in a full local queue.
    send_timeout: Duration,
}

/// A record handed to the producer by [`Producer::enqueue`], its acknowledgement not yet
/// awaited.
pub struct PendingDelivery {
    producer: Producer,
    in_flight: InFlight,
}

impl PendingDelivery {
    /// Wait until the broker acknowledged the record (or the send failed within the timeout).
    pub async fn acknowledged(self) -> Result<Delivery, ProduceError> {
        self.producer.acknowledged(self.in_flight).await
    }
}

/// A record handed to librdkafka, waiting for its acknowledgement.
struct InFlight {
    topic: String,
    enqueued_at: Instant,
    delivery: DeliveryFuture,
}

impl Producer {
    /// Create the producer. It connects lazily; the first send waits for metadata.
    pub fn new(config: &KafkaConfig) -> Result<Self, ClientError> {
        let properties = config.producer_properties()?;
        let inner = client_config(&properties)
            .create_with_context(TracingContext)
            .map_err(|source| ClientError::Create {
                role: "producer",
                source,
            })?;
        Ok(Self {
            inner,
            send_timeout: config.send_timeout,
        })
    }

    /// Produce one record and wait until the broker acknowledged it (all in-sync replicas).
    pub async fn send(&self, record: OutboundRecord) -> Result<Delivery, ProduceError> {
        let in_flight = self.enqueue_record(&record).await?;
        self.acknowledged(in_flight).await
    }

    /// Produce many records concurrently: all are enqueued first, in order (so records of one
    /// key keep their order), then their acknowledgements are awaited together, so the batch
    /// costs about one linger plus one round trip, not one per record. Results are in input
    /// order.
    pub async fn send_all(
        &self,
        records: impl IntoIterator<Item = OutboundRecord>,
    ) -> Vec<Result<Delivery, ProduceError>> {
        let mut pending = Vec::new();
        for record in records {
            pending.push(self.enqueue_record(&record).await);
        }
        futures::future::join_all(pending.into_iter().map(|enqueued| async move {
            match enqueued {
                Ok(in_flight) => self.acknowledged(in_flight).await,
                Err(error) => Err(error),
            }
        }))
        .await
    }

    /// Hand one record to librdkafka now and return its pending acknowledgement, without
    /// waiting for it. Records enqueued one after the other keep that order in their
    /// partition, so a caller that must order its records (under a lock, say) enqueues there
    /// and awaits [`PendingDelivery::acknowledged`] outside.
    pub async fn enqueue(&self, record: OutboundRecord) -> Result<PendingDelivery, ProduceError> {
        let in_flight = self.enqueue_record(&record).await?;
        Ok(PendingDelivery {
            producer: self.clone(),
            in_flight,
        })
    }

    /// Wait until every record handed to the producer is acknowledged or failed; call it on
    /// shutdown before the process exits.
    pub async fn flush(&self, timeout: Duration) -> Result<(), ProduceError> {
        let inner = self.inner.clone();
        let outcome = tokio::task::spawn_blocking(move || inner.flush(timeout)).await;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(ProduceError::FlushTimeout { timeout }),
        }
    }

    /// Hand the record to librdkafka, waiting (up to the send timeout) while its queue is full.
    async fn enqueue_record(&self, record: &OutboundRecord) -> Result<InFlight, ProduceError> {
        let enqueued_at = Instant::now();
        let mut future_record =
            FutureRecord::<str, [u8]>::to(&record.topic).headers(record.rdkafka_headers());
        if let Some(key) = &record.key {
            future_record = future_record.key(key.as_str());
        }
        if let Some(payload) = &record.payload {
            future_record = future_record.payload(payload.as_slice());
        }
        loop {
            match self.inner.send_result(future_record) {
                Ok(delivery) => {
                    return Ok(InFlight {
                        topic: record.topic.clone(),
                        enqueued_at,
                        delivery,
                    })
                }
                Err((error, returned))
                    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
                        && enqueued_at.elapsed() < self.send_timeout =>
                {
                    future_record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((error, _)) => {
                    let error = ProduceError::from_kafka(&record.topic, self.send_timeout, error);
                    self.count(&record.topic, Err(&error));
                    return Err(error);
                }
            }
        }
    }

    async fn acknowledged(&self, in_flight: InFlight) -> Result<Delivery, ProduceError> {
        let outcome = match in_flight.delivery.await {
            Ok(Ok(delivery)) => Ok(Delivery {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Ok(Err((error, _message))) => Err(ProduceError::from_kafka(
                &in_flight.topic,
                self.send_timeout,
                error,
            )),
            Err(_cancelled) => Err(ProduceError::Closed {
                topic: in_flight.topic.clone(),
            }),
        };
        metrics()
            .produce_duration
            .with_label_values(&[&in_flight.topic])
            .observe(in_flight.enqueued_at.elapsed().as_secs_f64());
        self.count(&in_flight.topic, outcome.as_ref().map(|_| ()));
        outcome
    }

    fn count(&self, topic: &str, outcome: Result<(), &ProduceError>) {
        let label = match outcome {
            Ok(()) => "ok",
            Err(error) => {
                tracing::warn!(topic, error = %error, "kafka produce failed");
                error.outcome_label()
            }
        };
        metrics().produced.with_label_values(&[topic, label]).inc();
    }
}
