//! With the provider answering 429 and 5xx part of the time: every command ends accepted or
//! finally failed, none is sent twice (also when delivered twice), and the sending rate per
//! number never exceeds the configured limit, measured from the simulator's records.

mod common;

use std::collections::HashMap;

use caas_events::model::{Channel, Origin, OutboundCommand, SendOutcome};
use caas_sender::domain::payload::rbm_message_id;
use caas_simulator::records::{Outcome, RequestRecord};
use common::*;

const RATE: f64 = 10.0;
const BURST: f64 = 1.0;

/// The most requests in any half-open window of `window_ms` (by arrival time).
fn busiest_window(records: &[RequestRecord], window_ms: i64) -> usize {
    let mut times: Vec<i64> = records.iter().map(|record| record.received_at).collect();
    times.sort_unstable();
    (0..times.len())
        .map(|start| {
            times[start..]
                .iter()
                .take_while(|at| **at < times[start] + window_ms)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn faults_end_in_one_outcome_each_without_duplicates_and_within_the_rate() {
    ensure_topics().await;
    let tenant = Tenant::new("flt");
    let (base, simulator) = start_simulator(serde_json::json!({
        "rate_limit_rate": 0.2, "error_rate": 0.2, "latency_ms": 5, "latency_jitter_ms": 20
    }))
    .await;
    let mut results = Results::from_now(&tenant.id).await;
    let environment = tenant.sender_env(
        &base,
        &format!("sender-test-{}", short_id()),
        &[
            ("CAAS_SENDER_RATE_PER_SECOND", RATE.to_string()),
            ("CAAS_SENDER_RATE_BURST", BURST.to_string()),
            ("CAAS_SENDER_MAX_ATTEMPTS", "10".to_string()),
        ],
    );
    let (_, shutdown, task) = start_sender(&environment).await;
    let events = Events::new();

    let mut commands: Vec<OutboundCommand> = Vec::new();
    for index in 0..40 {
        let customer = format!("49172000000{:02}", index % 8);
        let marker = format!("m{index}-{}", short_id());
        commands.push(tenant.command(
            Channel::Whatsapp,
            &customer,
            template(&marker),
            Origin::Campaign,
        ));
    }
    for index in 0..20 {
        let customer = format!("+49173000000{:02}", index % 4);
        commands.push(tenant.command(
            Channel::Rcs,
            &customer,
            text(&format!("hello {index}")),
            Origin::Bot,
        ));
    }
    for command in &commands {
        events.send(command).await;
    }
    // Five commands delivered a second time, as a producer retry or a replay would.
    for command in commands.iter().step_by(12) {
        events.send(command).await;
    }

    results
        .until("a result for every command", |seen| {
            commands.iter().all(|command| {
                seen.iter()
                    .any(|result| result.command_id == command.command_id)
            })
        })
        .await;
    // The duplicates' results (re-published from the ledger) arrive too: wait for them rather
    // than for a fixed time, which a loaded machine can outlast.
    results
        .until("a second result for every redelivered command", |seen| {
            commands.iter().step_by(12).all(|command| {
                seen.iter()
                    .filter(|result| result.command_id == command.command_id)
                    .count()
                    >= 2
            })
        })
        .await;

    let whatsapp_records = simulator_requests(&base, &tenant.phone_number_id).await;
    let rbm_records = simulator_requests(&base, &tenant.agent_id).await;
    let by_command = results.by_command();
    let mut accepted = 0;
    for command in &commands {
        let outcomes = &by_command[&command.command_id];
        // Every result of one command says the same thing (a re-published result is identical).
        assert!(
            outcomes
                .windows(2)
                .all(|pair| pair[0].event_id == pair[1].event_id
                    && pair[0].outcome == pair[1].outcome
                    && pair[0].provider_message_id == pair[1].provider_message_id),
            "{outcomes:#?}"
        );
        let result = &outcomes[0];
        let sent: Vec<&RequestRecord> = match command.channel {
            Channel::Whatsapp => {
                let marker = match &command.content {
                    caas_events::model::Content::Template(template) => {
                        template.parameters[0].text.clone()
                    }
                    _ => unreachable!(),
                };
                whatsapp_records
                    .iter()
                    .filter(|record| record.outcome == Outcome::Accepted)
                    .filter(|record| {
                        record.body["template"]["components"][0]["parameters"][0]["text"]
                            == serde_json::json!(marker)
                    })
                    .collect()
            }
            Channel::Rcs => {
                let message_id = rbm_message_id(&command.command_id);
                rbm_records
                    .iter()
                    .filter(|record| record.outcome == Outcome::Accepted)
                    .filter(|record| {
                        record.provider_message_id.as_deref() == Some(message_id.as_str())
                    })
                    .collect()
            }
        };
        assert!(
            sent.len() <= 1,
            "command {} was sent {} times",
            command.command_id,
            sent.len()
        );
        match result.outcome {
            SendOutcome::Accepted => {
                accepted += 1;
                assert_eq!(
                    sent.len(),
                    1,
                    "accepted but not at the provider: {result:?}"
                );
                assert_eq!(sent[0].provider_message_id, result.provider_message_id);
                assert!(result.attempts >= 1);
            }
            SendOutcome::Failed => {
                let error = result.error.as_ref().unwrap();
                assert!(
                    error.retryable,
                    "only exhausted retries may fail here: {error:?}"
                );
                assert!(sent.is_empty(), "failed but delivered: {result:?}");
            }
        }
    }
    for command in commands.iter().step_by(12) {
        assert_eq!(
            by_command[&command.command_id].len(),
            2,
            "a redelivered command gets its result again, not a second send"
        );
    }
    assert!(
        accepted >= commands.len() - 3,
        "too few accepted: {accepted} of {}",
        commands.len()
    );

    // The faults were really exercised.
    let count = |records: &[RequestRecord], outcome: Outcome| {
        records
            .iter()
            .filter(|record| record.outcome == outcome)
            .count()
    };
    assert!(
        count(&whatsapp_records, Outcome::RateLimited) > 0
            && count(&whatsapp_records, Outcome::ServerError) > 0
    );

    // The rate: every request (accepted or not) took a token of its number's bucket.
    for records in [&whatsapp_records, &rbm_records] {
        let busiest = busiest_window(records, 1000);
        assert!(
            busiest as f64 <= RATE + BURST,
            "{busiest} requests within one second; the limit is {RATE}/s with a burst of {BURST}"
        );
    }
    let per_sender: HashMap<&str, usize> = [
        (tenant.phone_number_id.as_str(), whatsapp_records.len()),
        (tenant.agent_id.as_str(), rbm_records.len()),
    ]
    .into();
    assert!(per_sender.values().all(|count| *count > 0));

    stop_sender(shutdown, task).await;
    simulator.cancel();
}
