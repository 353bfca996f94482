//! SIGKILL the `caas-campaign` binary mid-campaign and start it again: the send commands on
//! `outbound.commands.v1` cover every recipient exactly once. De-duplication by command id is
//! the contract (a command produced just before the kill may be produced again after the
//! restart, with the same id), so the test counts distinct ids and checks that no recipient
//! got two different ids.

mod common;

use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(port: u16, instance: &str) -> Child {
    let pairs = environment(&[
        ("CAAS_CAMPAIGN_OPS_ADDR", format!("127.0.0.1:{port}")),
        (
            "CAAS_CAMPAIGN_GROUP_PREFIX",
            "caas-campaign-crash".to_string(),
        ),
        ("CAAS_CAMPAIGN_INSTANCE_ID", instance.to_string()),
    ]);
    Command::new(env!("CARGO_BIN_EXE_caas-campaign"))
        .env_clear()
        .envs(pairs)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts")
}

async fn wait_ready(port: u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/ready")).await {
            if response.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the service never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_resumes_without_skipping_or_sending_twice() {
    let port = free_port();
    let instance = format!("crash-{}", short_id());
    let mut child = start(port, &instance);
    wait_ready(port).await;
    let api = Api::new(format!("127.0.0.1:{port}").parse().unwrap());

    let count = 600;
    let numbers = numbers(count);
    let campaign_id = format!("crash-{}", short_id());
    let (status, upload) = api.upload_csv(csv_of(&numbers), 8192).await;
    assert_eq!(status, 201, "{upload}");
    let mut commands = Commands::from_now(&campaign_id);
    api.create(campaign_body(
        &campaign_id,
        upload["audience_id"].as_str().unwrap(),
        100.0,
    ))
    .await;
    commands.until(150).await;

    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    child.wait().unwrap();
    commands.poll().await;
    let before_kill = commands.seen.len();
    assert!(
        before_kill < count,
        "killed mid-campaign ({before_kill} of {count} sent)"
    );

    let mut child = start(port, &instance);
    wait_ready(port).await;
    let deadline = Instant::now() + WAIT;
    loop {
        commands.poll().await;
        let distinct: HashSet<&str> = commands
            .seen
            .iter()
            .map(|seen| seen.event.to.as_str())
            .collect();
        if distinct.len() == count {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} recipients got a command after the restart",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Wait for the campaign to complete, then look once more for stragglers.
    let deadline = Instant::now() + WAIT;
    while api.campaign(&campaign_id).await["state"] != "completed" {
        assert!(Instant::now() < deadline, "the campaign never completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    commands.poll().await;

    let by_recipient = commands.ids_by_recipient(); // panics on two ids for one recipient
    assert_eq!(by_recipient.len(), count, "every recipient exactly once");
    let expected: HashSet<String> = numbers
        .iter()
        .map(|number| number.trim_start_matches('+').to_string())
        .collect();
    assert_eq!(
        by_recipient.keys().cloned().collect::<HashSet<_>>(),
        expected
    );
    let distinct_ids: HashSet<&str> = commands
        .seen
        .iter()
        .map(|seen| seen.event.command_id.as_str())
        .collect();
    assert_eq!(distinct_ids.len(), count);
    eprintln!(
        "crash test: {} records for {count} recipients ({} re-produced with the same id after the kill)",
        commands.seen.len(),
        commands.seen.len() - count
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
