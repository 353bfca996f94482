//! Signed WhatsApp webhooks: open loop (a fixed arrival rate, latency measured from the
//! intended send time so a slow server cannot hide its queue) and closed loop (a fixed number of
//! workers, each sending as soon as its previous request is answered: the maximum).
//!
//! Each message's text carries its send time (`lt=<epoch µs>`), so a socket that receives it
//! measures end-to-end latency with the same clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caas_simulator::webhooks::{
    to_ascii_json, whatsapp_message, whatsapp_signature, CustomerContent,
};
use serde_json::{json, Value};

use crate::stats::{now_micros, Recorder};

/// Where and as whom to send.
#[derive(clap::Args, Clone, Debug)]
pub struct Endpoint {
    /// Our ingest, a peer or the ceiling.
    #[arg(long, default_value = "http://127.0.0.1:8080/webhooks/whatsapp")]
    pub url: String,
    /// Key of `X-Hub-Signature-256`.
    #[arg(
        long,
        env = "CAAS_WHATSAPP_APP_SECRET",
        default_value = "local-whatsapp-app-secret"
    )]
    pub app_secret: String,
    /// The tenant's `phone_number_id`.
    #[arg(long, default_value = "100000000000001")]
    pub phone_number_id: String,
}

/// Who sends which message.
#[derive(Clone, Debug)]
pub struct Target {
    pub endpoint: Endpoint,
    /// Customers are `customer_base + 0 .. customer_base + customers`.
    pub customer_base: u64,
    pub customers: u64,
    /// Makes message ids unique per run, so ingest never sees a duplicate.
    pub run_id: String,
}

/// How to send.
#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// Requests per second, whatever the answers' speed.
    Open { rate: f64 },
    /// Workers sending back to back.
    Closed { workers: usize },
}

/// One signed request: body and signature header.
pub struct Signed {
    pub body: Vec<u8>,
    pub signature: String,
}

impl Target {
    /// The conversation key the `index`-th customer's messages land in.
    pub fn customer(&self, index: u64) -> String {
        (self.customer_base + index % self.customers.max(1)).to_string()
    }

    /// Message number `sequence` from customer `sequence % customers`, stamped `stamp_micros`.
    pub fn signed(&self, sequence: u64, stamp_micros: u64) -> Signed {
        let from = self.customer(sequence);
        let text = format!("load lt={stamp_micros}; n={sequence}");
        let message_id = format!("wamid.load.{}.{sequence}", self.run_id);
        let body = to_ascii_json(&whatsapp_message(
            &self.endpoint.phone_number_id,
            &from,
            "Load",
            &message_id,
            (stamp_micros / 1000) as i64,
            &CustomerContent::Text(text),
        ));
        let signature = whatsapp_signature(self.endpoint.app_secret.as_bytes(), &body);
        Signed { body, signature }
    }
}

/// What a sending run measured.
pub struct SendReport {
    pub recorder: Recorder,
    pub sent: u64,
    pub statuses: std::collections::BTreeMap<String, u64>,
    /// Open loop: arrivals not sent because `max_in_flight` requests were outstanding.
    pub dropped: u64,
}

impl SendReport {
    pub fn to_json(&self, load: Load) -> Value {
        let (mode, rate, workers) = match load {
            Load::Open { rate } => ("open", Some(rate), None),
            Load::Closed { workers } => ("closed", None, Some(workers)),
        };
        json!({
            "mode": mode,
            "target_rate": rate,
            "workers": workers,
            "sent": self.sent,
            "dropped": self.dropped,
            "statuses": self.statuses,
            "acked": self.recorder.summary(),
        })
    }
}

pub fn client(pool: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

struct Shared {
    target: Target,
    client: reqwest::Client,
    recorder: Mutex<Recorder>,
    statuses: Mutex<std::collections::BTreeMap<String, u64>>,
    next_sequence: AtomicU64,
    in_flight: AtomicU64,
}

impl Shared {
    /// Send message `sequence` stamped `intended` (epoch µs); record its ack latency from
    /// `intended` when answered 200.
    async fn send(&self, sequence: u64, intended: u64) {
        let signed = self.target.signed(sequence, intended);
        let answer = self
            .client
            .post(&self.target.endpoint.url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signed.signature)
            .body(signed.body)
            .send()
            .await;
        let outcome = match answer {
            Ok(response) => {
                let status = response.status();
                // Read the body so the connection is reused.
                let _ = response.bytes().await;
                status.as_u16().to_string()
            }
            Err(error) if error.is_timeout() => "timeout".to_string(),
            Err(_) => "connect_error".to_string(),
        };
        if outcome == "200" {
            let latency = now_micros().saturating_sub(intended);
            self.recorder.lock().unwrap().record(intended, latency);
        }
        *self.statuses.lock().unwrap().entry(outcome).or_default() += 1;
    }
}

/// Send for `warmup + measure`, recording what was sent inside the measured window; waits up
/// to 30 s for the answers still in flight.
pub async fn run(
    target: Target,
    load: Load,
    warmup: Duration,
    measure: Duration,
    max_in_flight: u64,
) -> SendReport {
    let start = now_micros();
    let window_start = start + warmup.as_micros() as u64;
    let window_end = window_start + measure.as_micros() as u64;
    let shared = Arc::new(Shared {
        client: client(match load {
            Load::Closed { workers } => workers,
            Load::Open { .. } => max_in_flight as usize,
        }),
        target,
        recorder: Mutex::new(Recorder::new(window_start, window_end)),
        statuses: Mutex::default(),
        next_sequence: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
    });
    let mut dropped = 0;
    match load {
        Load::Closed { workers } => {
            let tasks: Vec<_> = (0..workers)
                .map(|_| {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        loop {
                            let intended = now_micros();
                            if intended >= window_end {
                                break;
                            }
                            let sequence = shared.next_sequence.fetch_add(1, Ordering::Relaxed);
                            shared.send(sequence, intended).await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                let _ = task.await;
            }
        }
        Load::Open { rate } => {
            let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let begun = tokio::time::Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            let mut sequence = 0u64;
            loop {
                // The n-th arrival is due at begun + n × interval (no drift, bursts catch up).
                let due = begun + interval.mul_f64(sequence as f64);
                tokio::time::sleep_until(due).await;
                let intended = start + due.duration_since(begun).as_micros() as u64;
                if intended >= window_end {
                    break;
                }
                while tasks.try_join_next().is_some() {}
                if shared.in_flight.load(Ordering::Relaxed) >= max_in_flight {
                    if intended >= window_start {
                        dropped += 1;
                    }
                    sequence += 1;
                    continue;
                }
                shared.in_flight.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                let this_sequence = shared.next_sequence.fetch_add(1, Ordering::Relaxed);
                tasks.spawn(async move {
                    shared.send(this_sequence, intended).await;
                    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
                });
                sequence += 1;
            }
            let _ = tokio::time::timeout(Duration::from_secs(30), async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
        }
    }
    let shared = Arc::try_unwrap(shared).unwrap_or_else(|_| panic!("every sender finished"));
    SendReport {
        sent: shared.next_sequence.load(Ordering::Relaxed),
        statuses: shared.statuses.into_inner().unwrap(),
        recorder: shared.recorder.into_inner().unwrap(),
        dropped,
    }
}

/// The stamp a message's text carries, from anywhere in a packet: `lt=<digits>`.
pub fn stamp_in(text: &str) -> Option<u64> {
    let start = text.find("lt=")? + 3;
    let digits: &str = &text[start..];
    let end = digits
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_travels_in_the_text() {
        let target = Target {
            endpoint: Endpoint {
                url: String::new(),
                app_secret: "secret".into(),
                phone_number_id: "100000000000001".into(),
            },
            customer_base: 4_900_000_000_000,
            customers: 10,
            run_id: "t".into(),
        };
        let signed = target.signed(12, 1_700_000_000_123_456);
        let body = String::from_utf8(signed.body).unwrap();
        assert_eq!(stamp_in(&body), Some(1_700_000_000_123_456));
        assert!(body.contains("\"from\":\"4900000000002\""));
        assert!(signed.signature.starts_with("sha256="));
        assert_eq!(
            stamp_in("42[\"message.new\",{\"preview\":\"no stamp\"}]"),
            None
        );
    }
}
