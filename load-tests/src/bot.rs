//! Inbound message → the chatbot's reply at the provider simulator: each message comes from a
//! new customer (the bot's `first_message` trigger answers it), and the reply's arrival is read
//! from the simulator's request log (`received_at`, epoch ms).

use std::collections::HashMap;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use crate::stats::{latency_histogram, latency_summary, now_micros};
use crate::webhook::{client, Endpoint, Target};

#[derive(Args, Clone)]
pub struct BotArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    simulator: String,
    /// New customers per second (the sender's provider rate limit is 20/s per number).
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    #[arg(long, default_value_t = 50)]
    count: u64,
    /// Seconds to wait for the replies after the last message.
    #[arg(long, default_value_t = 20.0)]
    wait: f64,
}

async fn requests_after(
    http: &reqwest::Client,
    simulator: &str,
    after_seq: u64,
) -> anyhow::Result<Vec<Value>> {
    let answer: Value = http
        .get(format!(
            "{simulator}/_sim/requests?api=whatsapp&after_seq={after_seq}"
        ))
        .send()
        .await?
        .json()
        .await?;
    Ok(answer["requests"].as_array().cloned().unwrap_or_default())
}

pub async fn run(args: BotArgs) -> anyhow::Result<Value> {
    let http = client(64);
    let existing = requests_after(&http, &args.simulator, 0).await?;
    let first_seq = existing
        .iter()
        .filter_map(|request| request["seq"].as_u64())
        .max()
        .unwrap_or(0);
    // Fresh customers per run: 497 + the run's seconds, then the message's index.
    let customer_base = 4_970_000_000_000 + (now_micros() / 1_000_000 % 1_000_000) * 10_000;
    let target = Target {
        endpoint: args.endpoint.clone(),
        customer_base,
        customers: args.count,
        run_id: format!("bot{:x}", now_micros()),
    };
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let begun = tokio::time::Instant::now();
    let mut sent_at: HashMap<String, u64> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..args.count {
        tokio::time::sleep_until(begun + interval.mul_f64(index as f64)).await;
        let stamp = now_micros();
        sent_at.insert(target.customer(index), stamp);
        let signed = target.signed(index, stamp);
        let request = http
            .post(&target.endpoint.url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signed.signature)
            .body(signed.body);
        tasks.spawn(async move {
            request
                .send()
                .await
                .map(|response| response.status().as_u16())
        });
    }
    let mut acked = 0;
    while let Some(outcome) = tasks.join_next().await {
        if matches!(outcome, Ok(Ok(200))) {
            acked += 1;
        }
    }
    let mut replied_at: HashMap<String, i64> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.wait);
    let mut after_seq = first_seq;
    while replied_at.len() < sent_at.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for request in requests_after(&http, &args.simulator, after_seq).await? {
            after_seq = after_seq.max(request["seq"].as_u64().unwrap_or(0));
            let to = request["to"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('+')
                .to_string();
            if sent_at.contains_key(&to) {
                let at = request["received_at"].as_i64().unwrap_or(0);
                replied_at.entry(to).or_insert(at);
            }
        }
    }
    let mut histogram = latency_histogram();
    for (customer, replied) in &replied_at {
        let sent = sent_at[customer];
        let latency = (*replied as u64 * 1000).saturating_sub(sent);
        histogram.saturating_record(latency.max(1));
    }
    Ok(json!({
        "sent": args.count,
        "acked": acked,
        "replied": replied_at.len(),
        "rate": args.rate,
        "reply_latency_ms": latency_summary(&histogram),
        "note": "latency = simulator received_at (ms resolution) - webhook send time",
    }))
}
