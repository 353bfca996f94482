//! The 24-hour window against the real stack: a free-form command outside the window fails
//! with the reason and nothing reaches the provider; a template is sent; a message inside the
//! window is sent, also when the customer's message is recorded only after the reply arrived.

mod common;

use caas_events::model::{Channel, Origin, SendOutcome};
use common::*;

#[tokio::test]
async fn free_form_needs_the_window_and_templates_do_not() {
    ensure_topics().await;
    let tenant = Tenant::new("win");
    let (base, simulator) = start_simulator(serde_json::json!({})).await;
    let mut results = Results::from_now(&tenant.id).await;
    let environment = tenant.sender_env(
        &base,
        &format!("sender-test-{}", short_id()),
        &[("CAAS_SENDER_WINDOW_GRACE_MS", "3000".to_string())],
    );
    let (_, shutdown, task) = start_sender(&environment).await;
    let events = Events::new();

    let stranger = "4917100000001";
    let writer = "4917100000002";
    let long_ago = "4917100000003";
    let late_record = "4917100000004";

    let outside = tenant.command(
        Channel::Whatsapp,
        stranger,
        text("are you there?"),
        Origin::Operator,
    );
    let template_command = tenant.command(
        Channel::Whatsapp,
        stranger,
        template("tpl-marker"),
        Origin::Operator,
    );
    events.send(&outside).await;
    events.send(&template_command).await;

    events
        .send(&tenant.inbound(Channel::Whatsapp, writer, now_millis() - 60_000))
        .await;
    events
        .send(&tenant.inbound(Channel::Whatsapp, long_ago, now_millis() - 25 * 3_600_000))
        .await;
    // Give the window tracker a head start for these two; the race is covered below.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let inside = tenant.command(
        Channel::Whatsapp,
        writer,
        text("thanks for writing"),
        Origin::Bot,
    );
    let expired = tenant.command(
        Channel::Whatsapp,
        long_ago,
        text("hello again"),
        Origin::Bot,
    );
    events.send(&inside).await;
    events.send(&expired).await;

    // The race: the bot's reply is produced before the customer's message that caused it.
    let raced = tenant.command(
        Channel::Whatsapp,
        late_record,
        text("hi! how can we help?"),
        Origin::Bot,
    );
    events.send(&raced).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    events
        .send(&tenant.inbound(Channel::Whatsapp, late_record, now_millis()))
        .await;

    let rcs_template = tenant.command(
        Channel::Rcs,
        "+4917100000005",
        template("x"),
        Origin::Campaign,
    );
    events.send(&rcs_template).await;

    let all = [
        &outside,
        &template_command,
        &inside,
        &expired,
        &raced,
        &rcs_template,
    ];
    results
        .until("a result for every command", |seen| {
            all.iter().all(|command| {
                seen.iter()
                    .any(|result| result.command_id == command.command_id)
            })
        })
        .await;
    let by_command = results.by_command();
    let result_of =
        |command: &caas_events::model::OutboundCommand| by_command[&command.command_id][0].clone();

    let refused = result_of(&outside);
    assert_eq!(refused.outcome, SendOutcome::Failed);
    let error = refused.error.unwrap();
    assert_eq!(error.code, "window_closed");
    assert!(error.reason.contains("template"), "{}", error.reason);
    assert!(!error.retryable);

    let sent_template = result_of(&template_command);
    assert_eq!(
        sent_template.outcome,
        SendOutcome::Accepted,
        "{sent_template:?}"
    );
    assert_eq!(result_of(&inside).outcome, SendOutcome::Accepted);
    assert_eq!(
        result_of(&raced).outcome,
        SendOutcome::Accepted,
        "the reply waits for the late record"
    );

    let expired_result = result_of(&expired);
    assert_eq!(expired_result.error.unwrap().code, "window_closed");
    let unsupported = result_of(&rcs_template);
    assert_eq!(unsupported.error.unwrap().code, "unsupported_content");

    // Nothing of the refused commands reached the provider; the template did, once.
    let requests = simulator_requests(&base, &tenant.phone_number_id).await;
    let to_stranger: Vec<_> = requests
        .iter()
        .filter(|record| record.to == stranger)
        .collect();
    assert_eq!(to_stranger.len(), 1, "{to_stranger:#?}");
    assert_eq!(to_stranger[0].body["type"], serde_json::json!("template"));
    assert_eq!(
        to_stranger[0].provider_message_id,
        sent_template.provider_message_id
    );
    assert!(requests.iter().all(|record| record.to != long_ago));
    assert!(simulator_requests(&base, &tenant.agent_id).await.is_empty());

    stop_sender(shutdown, task).await;
    simulator.cancel();
}
