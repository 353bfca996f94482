//! Campaigns end to end against the real stack: the API (streamed CSV, line-numbered errors),
//! emission on `outbound.commands.v1` (deterministic ids, rate held on the commands'
//! timestamps), pause / resume / cancel, and opt-outs mid-campaign. No wall-clock asserts:
//! rates and the pause latency are measured on the records' own timestamps.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use caas_campaign::domain::ids;
use caas_events::keys;
use caas_events::model::{
    Channel, Content, ConversationEvent, ConversationEventKind, InboundMessage, Origin,
    OutboundCommand, Text,
};
use common::*;
use serde_json::{json, Value};

fn now_ms() -> i64 {
    caas_campaign::context::now_ms()
}

fn wa(number: &str) -> String {
    number.trim_start_matches('+').to_string()
}

async fn wait_for_state(api: &Api, campaign_id: &str, state: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let campaign = api.campaign(campaign_id).await;
        if campaign["state"] == state {
            return campaign;
        }
        assert!(
            Instant::now() < deadline,
            "campaign {campaign_id} never became {state}: {campaign}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll a consent until `check` holds; returns the last answer.
async fn wait_for_consent(api: &Api, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, consent) = api.get(path).await;
        if check(&consent) {
            return consent;
        }
        assert!(
            Instant::now() < deadline,
            "consent never matched: {consent}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_csv_row_is_reported_by_line_and_the_rest_is_sent() {
    let api = Api::new(service());
    let numbers = numbers(31);
    let campaign_id = format!("csv-{}", short_id());
    let mut csv = String::from("\u{feff}phone,first_name\r\n");
    for (index, number) in numbers[..30].iter().enumerate() {
        csv.push_str(&format!("{number},Name{index}\r\n")); // lines 2..=31
    }
    csv.push_str("0151 1234567,National\n"); // line 32: not international
    csv.push_str("+4917000000001,\"Bad\"quote\n"); // line 33: text after a closing quote
    csv.push_str(&format!("{},Again\n", numbers[0])); // line 34: a duplicate
    csv.push_str(&format!("{},\n", numbers[30])); // line 35: no value for {{first_name}}
    let (status, upload) = api.upload_csv(csv, 7).await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(upload["rows"], 34, "{upload}");
    assert_eq!(upload["invalid"], 2, "{upload}");
    let lines: Vec<i64> = upload["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, vec![32, 33], "{upload}");
    assert!(upload["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("international"));
    assert!(upload["errors"][1]["reason"]
        .as_str()
        .unwrap()
        .contains("closing quote"));

    let audience_id = upload["audience_id"].as_str().unwrap();
    let mut commands = Commands::from_now(&campaign_id);
    api.create(campaign_body(&campaign_id, audience_id, 50.0))
        .await;
    commands.until(30).await;
    let campaign = wait_for_state(&api, &campaign_id, "completed").await;
    commands.poll().await;

    let by_recipient = commands.ids_by_recipient();
    let expected: HashSet<String> = numbers[..30].iter().map(|number| wa(number)).collect();
    assert_eq!(
        by_recipient.keys().cloned().collect::<HashSet<_>>(),
        expected
    );
    for (index, number) in numbers[..30].iter().enumerate() {
        let to = wa(number);
        assert_eq!(
            by_recipient[&to],
            ids::command_id(tenant(), &campaign_id, Channel::Whatsapp, &to)
        );
        let command = &commands
            .seen
            .iter()
            .find(|seen| seen.event.to == to)
            .unwrap()
            .event;
        assert_eq!(command.origin, Origin::Campaign);
        assert_eq!(
            command.business_id.as_deref(),
            Some(format!("biz-{campaign_id}").as_str())
        );
        let Content::Template(template) = &command.content else {
            panic!("{command:?}");
        };
        assert_eq!(template.name, "spring_sale");
        let expected_name = if index == 0 {
            "Name0"
        } else {
            &format!("Name{index}")
        };
        assert_eq!(
            template.parameters[0].text, expected_name,
            "first row wins for a duplicate"
        );
        assert_eq!(
            ids::parse_callback_data(command.callback_data.as_deref().unwrap()),
            Some((campaign_id.as_str(), command.command_id.as_str()))
        );
    }
    assert_eq!(campaign["audience"]["duplicates"], 1, "{campaign}");
    let invalid = api.recipients(&campaign_id, Some("skipped_invalid")).await;
    let invalid_lines: Vec<i64> = invalid
        .iter()
        .map(|row| row["line"].as_i64().unwrap())
        .collect();
    assert_eq!(invalid_lines, vec![32, 33, 35], "{invalid:?}");
    assert!(invalid[2]["reason"]
        .as_str()
        .unwrap()
        .contains("{{first_name}}"));
    let counts = &campaign["counts"];
    assert_eq!(counts["audience"], 33, "{campaign}");
    assert_eq!(counts["skipped"], 3, "{campaign}");

    let (status, errors) = api
        .get(&format!("/api/v1/audiences/{audience_id}/errors"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(errors["errors"].as_array().unwrap().len(), 2, "{errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_sending_within_a_second_resume_continues_and_cancel_marks_the_rest() {
    let api = Api::new(service());
    let numbers = numbers(400);
    let campaign_id = format!("pause-{}", short_id());
    let (status, upload) = api.upload_csv(csv_of(&numbers), 4096).await;
    assert_eq!(status, 201, "{upload}");
    let mut commands = Commands::from_now(&campaign_id);
    api.create(campaign_body(
        &campaign_id,
        upload["audience_id"].as_str().unwrap(),
        20.0,
    ))
    .await;
    commands.until(10).await;

    let paused_at = now_ms();
    let (status, answer) = api
        .post(
            &format!("/api/v1/campaigns/{campaign_id}/pause"),
            json!({"reason": "test"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    wait_for_state(&api, &campaign_id, "paused").await;
    // Give late commands every chance to show up before looking.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    commands.poll().await;
    let late: Vec<i64> = commands
        .seen
        .iter()
        .map(|seen| seen.timestamp_ms)
        .filter(|timestamp| *timestamp > paused_at + 1000)
        .collect();
    assert!(
        late.is_empty(),
        "commands more than a second after the pause: {late:?}"
    );
    let sent_while_running = commands.seen.len();
    assert!(sent_while_running < numbers.len());

    let (status, _) = api
        .post(
            &format!("/api/v1/campaigns/{campaign_id}/resume"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    commands.until(sent_while_running + 20).await;
    let (status, _) = api
        .post(
            &format!("/api/v1/campaigns/{campaign_id}/cancel"),
            json!({"reason": "enough"}),
        )
        .await;
    assert_eq!(status, 202);
    wait_for_state(&api, &campaign_id, "cancelled").await;
    let cancelled_at = now_ms();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    commands.poll().await;
    assert!(
        commands
            .seen
            .iter()
            .all(|seen| seen.timestamp_ms <= cancelled_at + 1000),
        "nothing is sent once cancelled"
    );

    let by_recipient = commands.ids_by_recipient();
    assert_eq!(
        by_recipient.len(),
        commands.seen.len(),
        "no recipient was sent twice"
    );
    let recipients = api.recipients(&campaign_id, None).await;
    assert_eq!(recipients.len(), numbers.len());
    let mut cancelled = 0;
    for recipient in &recipients {
        let to = recipient["to"].as_str().unwrap();
        match recipient["status"].as_str().unwrap() {
            "pending" => panic!("{to} is still pending after the cancel"),
            "cancelled" => {
                cancelled += 1;
                assert!(
                    !by_recipient.contains_key(to),
                    "{to} was sent and cancelled"
                );
            }
            _ => assert!(
                by_recipient.contains_key(to),
                "{to} has a status but no command"
            ),
        }
    }
    assert_eq!(cancelled + by_recipient.len(), numbers.len());
    assert!(cancelled > 0);
    let (status, refused) = api
        .post(
            &format!("/api/v1/campaigns/{campaign_id}/resume"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_who_sends_stop_mid_campaign_gets_nothing_after_the_opt_out_is_recorded() {
    let api = Api::new(service());
    let numbers = numbers(120);
    let campaign_id = format!("stop-{}", short_id());
    let customer = wa(&numbers[100]);
    let (status, upload) = api.upload_csv(csv_of(&numbers), 4096).await;
    assert_eq!(status, 201, "{upload}");
    let mut commands = Commands::from_now(&campaign_id);
    let replies = TopicReader::from_now(caas_events::topics::OUTBOUND_COMMANDS);
    let changes = TopicReader::from_now(caas_events::topics::CONVERSATION_EVENTS);
    api.create(campaign_body(
        &campaign_id,
        upload["audience_id"].as_str().unwrap(),
        10.0,
    ))
    .await;
    commands.until(5).await;
    // Hold the campaign while the STOP travels, so the customer's turn cannot come before the
    // opt-out is recorded however slow the machine is; the skip itself happens after resume.
    let (status, paused) = api
        .post(&format!("/api/v1/campaigns/{campaign_id}/pause"), json!({}))
        .await;
    assert_eq!(status, 202, "{paused}");
    wait_for_state(&api, &campaign_id, "paused").await;

    let event_id = format!("stop-{}", short_id());
    let stop = InboundMessage {
        event_id: event_id.clone(),
        tenant_id: tenant().to_string(),
        conversation_key: keys::conversation_key(tenant(), Channel::Whatsapp, &customer),
        channel: Channel::Whatsapp,
        occurred_at: now_ms(),
        recorded_at: now_ms(),
        source: "test".into(),
        trace_parent: None,
        provider_message_id: format!("wamid.{event_id}"),
        customer_id: customer.clone(),
        customer_display_name: None,
        business_id: Some(format!("biz-{campaign_id}")),
        reply_to: None,
        content: Content::Text(Text {
            body: " Stop! ".into(),
            preview_url: false,
        }),
    };
    produce(&stop).await;
    let consent = wait_for_consent(
        &api,
        &format!("/api/v1/consents/whatsapp/{customer}"),
        |consent| consent["status"] == "opted_out",
    )
    .await;
    let recorded_at = consent["recorded_at"].as_i64().unwrap();
    assert_eq!(consent["history"][0]["keyword"], "STOP");
    assert_eq!(consent["history"][0]["language"], "en");
    let (status, resumed) = api
        .post(
            &format!("/api/v1/campaigns/{campaign_id}/resume"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{resumed}");
    wait_for_state(&api, &campaign_id, "completed").await;
    commands.poll().await;
    let to_customer: Vec<i64> = commands
        .seen
        .iter()
        .filter(|seen| seen.event.to == customer)
        .map(|seen| seen.timestamp_ms)
        .collect();
    assert!(
        to_customer.iter().all(|timestamp| *timestamp < recorded_at),
        "campaign message after the opt-out was recorded at {recorded_at}: {to_customer:?}"
    );
    assert_eq!(commands.ids_by_recipient().len(), numbers.len() - 1);
    let skipped = api
        .recipients(&campaign_id, Some("skipped_opted_out"))
        .await;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["to"], customer.as_str());

    // The customer got a confirmation; the platform heard of the change.
    let confirmation_id = ids::confirmation_command_id(&event_id);
    let deadline = Instant::now() + WAIT;
    let confirmation = loop {
        let batch = replies
            .drain::<OutboundCommand>(Duration::from_millis(200))
            .await;
        if let Some(found) = batch
            .into_iter()
            .find(|seen| seen.event.command_id == confirmation_id)
        {
            break found.event;
        }
        assert!(
            Instant::now() < deadline,
            "no confirmation on outbound.commands.v1"
        );
    };
    assert_eq!(confirmation.origin, Origin::Bot);
    assert_eq!(confirmation.to, customer);
    assert_eq!(
        confirmation.business_id.as_deref(),
        Some(format!("biz-{campaign_id}").as_str())
    );
    let Content::Text(text) = &confirmation.content else {
        panic!("{confirmation:?}")
    };
    assert!(text.body.contains("unsubscribed"), "{}", text.body);
    let opted_out = changes
        .drain::<ConversationEvent>(Duration::from_millis(500))
        .await;
    assert!(opted_out.iter().any(
        |seen| seen.event.event_id == ids::consent_event_id(&event_id)
            && seen.event.kind == ConversationEventKind::OptedOut
    ));

    // START opts in again; an RCS UNSUBSCRIBE (from ingest) opts out on that channel only.
    let mut start = stop.clone();
    start.event_id = format!("start-{}", short_id());
    start.occurred_at = now_ms();
    start.content = Content::Text(Text {
        body: "start".into(),
        preview_url: false,
    });
    produce(&start).await;
    let rcs_customer = format!("+{customer}");
    let unsubscribe = ConversationEvent {
        event_id: format!("unsub-{}", short_id()),
        tenant_id: tenant().to_string(),
        conversation_key: keys::conversation_key(tenant(), Channel::Rcs, &rcs_customer),
        channel: Channel::Rcs,
        occurred_at: now_ms(),
        recorded_at: now_ms(),
        source: "ingest".into(),
        trace_parent: None,
        kind: ConversationEventKind::OptedOut,
        actor_operator_id: None,
        assignee_operator_id: None,
        previous_assignee_operator_id: None,
        reason: Some("RBM UNSUBSCRIBE user event".into()),
    };
    produce(&unsubscribe).await;
    wait_for_consent(
        &api,
        &format!("/api/v1/consents/whatsapp/{customer}"),
        |consent| {
            consent["status"] == "opted_in"
                && consent["history"]
                    .as_array()
                    .is_some_and(|history| history.len() == 2)
        },
    )
    .await;
    let rcs = wait_for_consent(
        &api,
        &format!("/api/v1/consents/rcs/{}", rcs_customer.replace('+', "%2B")),
        |consent| consent["status"] == "opted_out",
    )
    .await;
    assert_eq!(rcs["history"][0]["source"], "rcs_event", "{rcs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_recipients_are_sent_once_each_at_the_configured_rate() {
    let api = Api::new(service());
    let count = 10_000;
    let rate = 250.0;
    let numbers = numbers(count);
    let campaign_id = format!("bulk-{}", short_id());
    let (status, upload) = api.upload_csv(csv_of(&numbers), 64 * 1024).await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(upload["valid"], count);
    let mut commands = Commands::from_now(&campaign_id);
    api.create(campaign_body(
        &campaign_id,
        upload["audience_id"].as_str().unwrap(),
        rate,
    ))
    .await;
    commands.until(count).await;
    wait_for_state(&api, &campaign_id, "completed").await;
    commands.poll().await;

    let by_recipient = commands.ids_by_recipient();
    assert_eq!(by_recipient.len(), count, "every recipient exactly once");
    let distinct: HashSet<&String> = commands
        .seen
        .iter()
        .map(|seen| &seen.event.command_id)
        .collect();
    assert_eq!(distinct.len(), count);
    // The rate, on the commands' own timestamps: no second holds more than the rate (the
    // Kafka timestamps are taken a moment later, when the record is handed to the producer).
    let produced: Vec<i64> = commands.seen.iter().map(|seen| seen.timestamp_ms).collect();
    let emitted: Vec<i64> = commands
        .seen
        .iter()
        .map(|seen| seen.event.occurred_at)
        .collect();
    let lags: Vec<i64> = commands
        .seen
        .iter()
        .map(|seen| seen.timestamp_ms - seen.event.occurred_at)
        .collect();
    eprintln!(
        "kafka timestamp - occurred_at: min {} max {}",
        lags.iter().min().unwrap(),
        lags.iter().max().unwrap()
    );
    let worst_produced = max_in_window(produced, 1000);
    let worst_emitted = max_in_window(emitted, 1000);
    assert!(
        worst_emitted <= rate as usize,
        "{worst_emitted} in one second"
    );
    // Kafka stamps a record a few milliseconds after the pace granted it, so a window on
    // those timestamps may also hold one burst (two ticks' worth) from its edge.
    let burst = (rate * 0.2).ceil() as usize;
    assert!(
        worst_produced <= rate as usize + burst,
        "{worst_produced} in one second"
    );
    eprintln!("10k campaign: at most {worst_emitted} commands in any second (rate {rate}/s)");

    // With the stack's sender running, every recipient reaches a final state (this test's
    // tenant is unknown to it, so each send fails with its reason; with the provider
    // simulator and a configured tenant they are delivered).
    let sender_up = reqwest::get("http://127.0.0.1:9105/ready")
        .await
        .is_ok_and(|response| response.status().is_success());
    if sender_up {
        let deadline = Instant::now() + WAIT;
        loop {
            let counts = api.campaign(&campaign_id).await["counts"].clone();
            if counts["queued"] == 0 && counts["sent"] == counts["delivered"] {
                break;
            }
            assert!(Instant::now() < deadline, "recipients not final: {counts}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let failed = api.recipients(&campaign_id, Some("failed")).await;
        assert!(failed
            .iter()
            .all(|recipient| recipient["reason"].is_string()));
        eprintln!(
            "10k campaign: every recipient final ({} failed with a reason)",
            failed.len()
        );
    } else {
        eprintln!("10k campaign: no sender on 127.0.0.1:9105; final states not checked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_its_sending_hours_a_campaign_sends_nothing_and_says_when_it_will() {
    use chrono::{Datelike, Duration as Days, Utc};
    let api = Api::new(service());
    let numbers = numbers(5);
    let campaign_id = format!("hours-{}", short_id());
    let (status, upload) = api.upload_csv(csv_of(&numbers), 4096).await;
    assert_eq!(status, 201, "{upload}");
    // Only tomorrow (UTC), all day: closed today.
    let tomorrow = Utc::now().date_naive() + Days::days(1);
    let weekday = tomorrow.weekday().to_string().to_lowercase();
    let weekday = match weekday.as_str() {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    };
    let mut body = campaign_body(&campaign_id, upload["audience_id"].as_str().unwrap(), 50.0);
    body["timezone"] = json!("UTC");
    body["sending_window"] = json!({ "start": "00:00", "end": "24:00", "days": [weekday] });
    let mut commands = Commands::from_now(&campaign_id);
    api.create(body).await;
    // Give the lane every chance to send (it would within a few hundred ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    commands.poll().await;
    assert!(
        commands.seen.is_empty(),
        "sent outside the window: {}",
        commands.seen.len()
    );
    let campaign = api.campaign(&campaign_id).await;
    assert_eq!(campaign["state"], "scheduled", "{campaign}");
    assert_eq!(campaign["sending_now"], false);
    let midnight = tomorrow
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    assert_eq!(campaign["next_send_at"], midnight, "{campaign}");
    assert_eq!(campaign["counts"]["queued"], 5, "{campaign}");
    let (status, _) = api
        .post(
            &format!("/api/v1/campaigns/{campaign_id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    wait_for_state(&api, &campaign_id, "cancelled").await;
}
