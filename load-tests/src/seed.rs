//! `caas-load seed`: a backlog of valid inbound messages produced straight to Kafka (Avro through
//! the registry, as ingest writes them), for the drain scenario. The messages belong to a tenant
//! of their own that has no chatbot flow, so the stack's bot stays silent; the logger and the
//! gateway handle them like any other message.

use std::time::Instant;

use caas_events::keys::{conversation_key, deterministic_event_id};
use caas_events::model::{Channel, Content, InboundMessage, Text};
use caas_events::{topics, Codec};
use caas_kafka::{KafkaConfig, OutboundRecord, Producer};
use clap::Args;
use serde_json::{json, Value};

/// Records handed to the producer before their acknowledgements are awaited.
const WINDOW: usize = 5_000;

#[derive(Args, Clone)]
pub struct SeedArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// The registry's Confluent-compatible API.
    #[arg(long, default_value = "http://127.0.0.1:8081/apis/ccompat/v7")]
    registry: String,
    /// The tenant the messages belong to (one without a chatbot flow).
    #[arg(long, default_value = "loadseed")]
    tenant: String,
    /// How many messages.
    #[arg(long, default_value_t = 500_000)]
    count: u64,
    /// Conversations they are spread over.
    #[arg(long, default_value_t = 1_000)]
    customers: u64,
    /// Makes the event ids of this run distinct from earlier runs.
    #[arg(long, default_value = "seed")]
    run: String,
}

pub async fn run(args: SeedArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(args.customers > 0, "--customers must be at least 1");
    let codec = Codec::new(args.registry.clone())?;
    let producer = Producer::new(&KafkaConfig::new(args.bootstrap.clone()))?;
    let started = Instant::now();
    let mut produced = 0u64;
    let mut failed = 0u64;
    let mut first_error = None;
    let mut next = 0u64;
    while next < args.count {
        let end = (next + WINDOW as u64).min(args.count);
        let mut records = Vec::with_capacity(WINDOW);
        for n in next..end {
            let event = message(&args, n);
            let payload = codec.encode(&event).await?;
            records.push(OutboundRecord::new(
                topics::INBOUND_MESSAGES,
                event.conversation_key.clone(),
                payload,
            ));
        }
        for outcome in producer.send_all(records).await {
            match outcome {
                Ok(_) => produced += 1,
                Err(error) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| error.to_string());
                }
            }
        }
        next = end;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "seed": {
            "topic": topics::INBOUND_MESSAGES,
            "tenant": args.tenant,
            "produced": produced,
            "failed": failed,
            "first_error": first_error,
            "seconds": seconds,
            "records_per_second": produced as f64 / seconds.max(1e-9),
        }
    }))
}

fn message(args: &SeedArgs, n: u64) -> InboundMessage {
    let customer_id = format!("{}", 4_993_000_000_000 + n % args.customers);
    let provider_message_id = format!("wamid.{}.{n}", args.run);
    let now = caas_runtime::clock::now_millis();
    InboundMessage {
        event_id: deterministic_event_id(&[
            &args.tenant,
            "whatsapp",
            "message",
            &provider_message_id,
        ]),
        conversation_key: conversation_key(&args.tenant, Channel::Whatsapp, &customer_id),
        tenant_id: args.tenant.clone(),
        channel: Channel::Whatsapp,
        occurred_at: now,
        recorded_at: now,
        source: "caas-load-seed".to_string(),
        trace_parent: None,
        provider_message_id,
        customer_id,
        customer_display_name: None,
        business_id: None,
        reply_to: None,
        content: Content::Text(Text {
            body: format!("backlog message {n}"),
            preview_url: false,
        }),
    }
}
