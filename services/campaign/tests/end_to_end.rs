//! A campaign through the whole running stack (`make up`): the stack's sender calls the provider
//! simulator, the simulator's status webhooks come back through ingest, and every recipient
//! ends in a final state. The simulator's own `received_at` timestamps show the configured rate
//! held. Uses the stack's demo tenant and its sending number (the only ones the stack's sender
//! is configured for) with numbers nobody else uses.
//!
//! Needs the sender (`127.0.0.1:9105`) and the simulator (`127.0.0.1:8090`) of the running
//! stack; without them it fails and says so. `CAAS_CAMPAIGN_E2E_RECIPIENTS` (default 300) and
//! `CAAS_CAMPAIGN_E2E_RATE` (default 15 per second; keep it at or below the stack sender's
//! `CAAS_SENDER_RATE_PER_SECOND`) size it; 10000 recipients at 15/s take about 11 minutes.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const SIMULATOR: &str = "http://127.0.0.1:8090";
const DEMO_TENANT: &str = "demo";
const DEMO_NUMBER: &str = "100000000000001";

async fn ready(url: &str) -> bool {
    reqwest::get(url)
        .await
        .is_ok_and(|response| response.status().is_success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_through_sender_and_simulator_ends_with_every_recipient_final_at_the_rate() {
    assert!(
        ready("http://127.0.0.1:9105/ready").await && ready(&format!("{SIMULATOR}/ready")).await,
        "this test needs the running stack's sender and provider simulator (make up)"
    );
    let count: usize = env_var("CAAS_CAMPAIGN_E2E_RECIPIENTS", "300")
        .parse()
        .unwrap();
    let rate: f64 = env_var("CAAS_CAMPAIGN_E2E_RATE", "15").parse().unwrap();
    let api = Api::for_tenant(service(), DEMO_TENANT);
    let numbers = numbers(count);
    let campaign_id = format!("e2e-{}", short_id());
    let (status, upload) = api.upload_csv(csv_of(&numbers), 64 * 1024).await;
    assert_eq!(status, 201, "{upload}");
    let mut body = campaign_body(&campaign_id, upload["audience_id"].as_str().unwrap(), rate);
    body["business_id"] = Value::String(DEMO_NUMBER.to_string());
    let started = Instant::now();
    api.create(body).await;

    // Every recipient final: delivered or read (or failed with a reason).
    let budget = Duration::from_secs_f64(count as f64 / rate) + WAIT;
    let counts = loop {
        let campaign = api.campaign(&campaign_id).await;
        let counts = campaign["counts"].clone();
        if campaign["state"] == "completed"
            && counts["queued"] == 0
            && counts["sent"] == counts["delivered"]
        {
            break counts;
        }
        assert!(
            started.elapsed() < budget,
            "not every recipient is final: {campaign}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(counts["audience"], count, "{counts}");
    let failed = api.recipients(&campaign_id, Some("failed")).await;
    assert!(failed
        .iter()
        .all(|recipient| recipient["reason"].is_string()));
    assert!(
        counts["delivered"].as_u64().unwrap() as usize + failed.len() == count,
        "{counts}"
    );

    // The provider saw each recipient once, never faster than the rate.
    let requests: Value = reqwest::get(format!(
        "{SIMULATOR}/_sim/requests?api=whatsapp&sender={DEMO_NUMBER}"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let mine: HashSet<String> = numbers
        .iter()
        .map(|number| number.trim_start_matches('+').to_string())
        .collect();
    let ours: Vec<&Value> = requests["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|request| {
            request["to"]
                .as_str()
                .is_some_and(|to| mine.contains(to.trim_start_matches('+')))
        })
        .collect();
    let accepted: Vec<&&Value> = ours
        .iter()
        .filter(|request| request["outcome"] == "accepted")
        .collect();
    let distinct: HashSet<&str> = accepted
        .iter()
        .filter_map(|request| request["to"].as_str())
        .collect();
    assert_eq!(distinct.len(), accepted.len(), "nobody was messaged twice");
    assert_eq!(accepted.len() + failed.len(), count);
    let times: Vec<i64> = ours
        .iter()
        .filter_map(|request| request["received_at"].as_i64())
        .collect();
    let worst = max_in_window(times, 1000);
    // The campaign's pace (never more than the rate in a second, plus a burst of two ticks'
    // worth at a window's edge) and the sender's own burst allowance for a moment it was
    // held up.
    let allowed = rate.ceil() as usize + (rate * 0.2).ceil() as usize + 5;
    assert!(
        worst <= allowed,
        "{worst} provider calls in one second (rate {rate})"
    );
    eprintln!(
        "end to end: {count} recipients, {} delivered ({} read), {} failed; at most {worst} provider calls in any second at {rate}/s",
        counts["delivered"], counts["read"], failed.len()
    );
}
