//! Killing the sender (SIGKILL, the `caas-sender` binary as a child process) in the middle of
//! a burst and starting it again: no command is lost, none is sent twice.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};

use caas_events::model::{Channel, Content, Origin, OutboundCommand, SendOutcome};
use caas_sender::domain::payload::rbm_message_id;
use caas_simulator::records::{Outcome, RequestRecord};
use common::*;

/// Kills the child when the test ends, whatever happens.
struct Sender(Child);

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_sender(environment: &[(String, String)], log: &std::path::Path) -> Sender {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_caas-sender"))
        .env_clear()
        .envs(
            environment
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        )
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("start the caas-sender binary");
    Sender(child)
}

fn marker_of(command: &OutboundCommand) -> String {
    match &command.content {
        Content::Template(template) => template.parameters[0].text.clone(),
        _ => unreachable!("whatsapp commands here are templates"),
    }
}

fn sent_records<'a>(
    command: &OutboundCommand,
    whatsapp: &'a [RequestRecord],
    rbm: &'a [RequestRecord],
) -> Vec<&'a RequestRecord> {
    match command.channel {
        Channel::Whatsapp => {
            let marker = serde_json::json!(marker_of(command));
            whatsapp
                .iter()
                .filter(|record| record.outcome == Outcome::Accepted)
                .filter(|record| {
                    record.body["template"]["components"][0]["parameters"][0]["text"] == marker
                })
                .collect()
        }
        Channel::Rcs => {
            let message_id = rbm_message_id(&command.command_id);
            rbm.iter()
                .filter(|record| record.outcome == Outcome::Accepted)
                .filter(|record| record.provider_message_id.as_deref() == Some(message_id.as_str()))
                .collect()
        }
    }
}

#[tokio::test]
async fn a_killed_sender_loses_nothing_and_sends_nothing_twice() {
    ensure_topics().await;
    let tenant = Tenant::new("crash");
    let (base, simulator) = start_simulator(serde_json::json!({
        "latency_ms": 20, "latency_jitter_ms": 40, "error_rate": 0.05
    }))
    .await;
    let mut results = Results::from_now(&tenant.id).await;
    let environment = tenant.sender_env(
        &base,
        &format!("sender-test-{}", short_id()),
        &[
            ("CAAS_SENDER_RATE_PER_SECOND", "25".to_string()),
            ("CAAS_SENDER_RATE_BURST", "5".to_string()),
            ("CAAS_LOG", "info".to_string()),
        ],
    );
    let log = std::env::temp_dir().join(format!("caas-sender-crash-{}.log", short_id()));
    let first = spawn_sender(&environment, &log);
    let events = Events::new();

    let mut commands = Vec::new();
    for index in 0..90 {
        let customer = format!("49174000000{:02}", index % 10);
        commands.push(tenant.command(
            Channel::Whatsapp,
            &customer,
            template(&format!("k{index}-{}", short_id())),
            Origin::Campaign,
        ));
    }
    for index in 0..30 {
        let customer = format!("+49175000000{:02}", index % 5);
        commands.push(tenant.command(
            Channel::Rcs,
            &customer,
            text(&format!("rcs {index}")),
            Origin::Bot,
        ));
    }
    for command in &commands {
        events.send(command).await;
    }

    results
        .until("the first results before the kill", |seen| seen.len() >= 30)
        .await;
    let mut first = first;
    first.0.kill().expect("SIGKILL the sender");
    first.0.wait().unwrap();
    let finished_before_kill = results.seen.len();
    drop(first);

    let _second = spawn_sender(&environment, &log);
    let wanted: HashSet<String> = commands
        .iter()
        .map(|command| command.command_id.clone())
        .collect();
    results
        .until("a result for every command after the restart", |seen| {
            let done: HashSet<&String> = seen.iter().map(|result| &result.command_id).collect();
            wanted.iter().all(|id| done.contains(id))
        })
        .await;
    assert!(
        finished_before_kill < commands.len(),
        "the kill came after the burst; nothing was tested"
    );

    let whatsapp = simulator_requests(&base, &tenant.phone_number_id).await;
    let rbm = simulator_requests(&base, &tenant.agent_id).await;
    let by_command = results.by_command();
    let mut unknown = 0;
    for command in &commands {
        let outcomes = &by_command[&command.command_id];
        let sent = sent_records(command, &whatsapp, &rbm);
        assert!(
            sent.len() <= 1,
            "command {} reached the provider {} times",
            command.command_id,
            sent.len()
        );
        assert!(
            outcomes
                .windows(2)
                .all(|pair| pair[0].outcome == pair[1].outcome
                    && pair[0].provider_message_id == pair[1].provider_message_id),
            "conflicting results: {outcomes:#?}"
        );
        let result = &outcomes[0];
        match result.outcome {
            SendOutcome::Accepted => {
                assert_eq!(
                    sent.len(),
                    1,
                    "accepted but not at the provider: {result:?}"
                );
                assert_eq!(sent[0].provider_message_id, result.provider_message_id);
            }
            SendOutcome::Failed => {
                let error = result.error.as_ref().unwrap();
                // The one documented residual: a WhatsApp call in flight at the kill.
                assert_eq!(
                    error.code, "outcome_unknown",
                    "unexpected failure: {result:?}"
                );
                assert_eq!(command.channel, Channel::Whatsapp);
                unknown += 1;
            }
        }
    }
    // At most one call per conversation can have been in flight at the kill (10 on WhatsApp).
    assert!(unknown <= 10, "{unknown} commands with an unknown outcome");
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "crash test: {} commands, {finished_before_kill} results before the kill, {unknown} with an unknown \
         outcome, {} taken over from the killed sender, {} results re-published",
        commands.len(),
        logged.matches("taking over a command").count(),
        logged.matches("command already finished").count(),
    );
    simulator.cancel();
    let _ = std::fs::remove_file(&log);
}
