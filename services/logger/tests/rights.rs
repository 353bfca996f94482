//! Data rights against the real stack: the export of one customer holds everything about them
//! and nothing about anyone else; after the erasure their export is empty, other customers are
//! untouched, their presence and de-duplication keys are gone, and a replay of their old
//! events from Kafka does not bring them back.

mod common;

use std::collections::BTreeMap;

use caas_events::keys::{campaign_key, deterministic_event_id};
use caas_events::model::{
    CampaignAction, CampaignCommand, Channel, CreateCampaign, PresenceSubject, Template,
};
use caas_logger::domain::event::LoggedEvent;
use caas_logger::rights::{self, Customer, ExportLine, INGEST_DEDUPE_PREFIX};
use common::*;
use mongodb::bson::doc;
use redis::AsyncCommands;

async fn export(db: &mongodb::Database, customer: &Customer) -> Vec<ExportLine> {
    use futures::TryStreamExt;
    let mut redis = redis().await;
    rights::export_customer(db, &mut redis, customer)
        .await
        .expect("export")
        .try_collect()
        .await
        .expect("export lines")
}

fn sources(lines: &[ExportLine]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts.entry(line.source.clone()).or_default() += 1;
    }
    counts
}

/// `caas_logger_events_total{outcome="erased"}` of this process.
fn erased_counter() -> u64 {
    caas_logger::metrics::metrics()
        .events
        .with_label_values(&["erased"])
        .get()
}

fn is_campaign_command(line: &ExportLine) -> bool {
    line.document["type"] == "campaign_command"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_is_complete_and_exclusive_and_erasure_is_total_and_sticks() {
    let world = World::new();
    world.create_topics().await;
    let (_, shutdown, task) = start_in_process(world.config(200)).await;
    let now = caas_runtime::clock::now_millis();
    let scenario = world.scenario(3, 4, 3, 11);
    let customers: Vec<(String, String)> = scenario
        .expected
        .customers
        .iter()
        .map(|(key, customer)| (key.clone(), customer.clone()))
        .collect();
    let (key_a, customer_a) = customers[0].clone();
    let (_, customer_b) = customers[1].clone();
    let campaign = LoggedEvent::CampaignCommand(CampaignCommand {
        event_id: deterministic_event_id(&[&world.prefix, "campaign-create"]),
        tenant_id: world.tenant.clone(),
        conversation_key: campaign_key(&world.tenant, "spring"),
        channel: Channel::Whatsapp,
        occurred_at: now,
        recorded_at: now,
        source: "test".to_string(),
        trace_parent: None,
        command_id: "create-spring".to_string(),
        campaign_id: "spring".to_string(),
        operator_id: Some("op-1".to_string()),
        action: CampaignAction::Create(Box::new(CreateCampaign {
            name: "Spring".to_string(),
            template: Template {
                name: "spring_sale".to_string(),
                language: "en_US".to_string(),
                parameters: vec![],
                header_media: None,
            },
            business_id: None,
            audience_id: None,
            recipients: vec![customer_a.clone(), customer_b.clone()],
            rate_per_minute: 60,
            start_at: None,
            end_at: None,
            sending_window: None,
            timezone: "Europe/Berlin".to_string(),
        })),
    });
    let mut events = scenario.events.clone();
    events.push(campaign.clone());
    world.produce(&producer(), &codec(), &events).await;
    let db = world.db().await;
    let total = scenario.expected.event_ids.len() as u64 + 1;
    eventually("every event stored", || {
        let db = db.clone();
        async move { (count(&db, "events", doc! {}).await >= total).then_some(()) }
    })
    .await;

    // Presence state and ingest de-duplication keys of both customers.
    let mut redis = redis().await;
    let ids_of = |key: &str| -> Vec<String> {
        scenario
            .events
            .iter()
            .filter(|event| event.conversation_key() == key)
            .map(|event| event.event_id().to_string())
            .collect()
    };
    let key_b = customers[1].0.clone();
    for (key, customer) in [(&key_a, &customer_a), (&key_b, &customer_b)] {
        let subject =
            caas_presence::keys::subject_key(&world.tenant, PresenceSubject::Customer, customer);
        let typing =
            caas_presence::keys::conversation_key(key, PresenceSubject::Customer, customer);
        let _: () = redis.set(&subject, r#"{"last_seen_at":1}"#).await.unwrap();
        let _: () = redis.set(&typing, r#"{"typing":null}"#).await.unwrap();
        for id in ids_of(key) {
            let _: () = redis
                .set_ex(format!("{INGEST_DEDUPE_PREFIX}{id}"), "done", 600)
                .await
                .unwrap();
        }
    }

    let a = Customer::new(&world.tenant, &customer_a).unwrap();
    let b = Customer::new(&world.tenant, &customer_b).unwrap();
    let export_a = export(&db, &a).await;
    let counts = sources(&export_a);
    let messages_a = count(&db, "messages", doc! { "conversation_key": &key_a }).await as usize;
    let events_a = ids_of(&key_a)
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(counts.get("mongodb.conversations"), Some(&1), "{counts:?}");
    assert_eq!(
        counts.get("mongodb.messages"),
        Some(&messages_a),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("mongodb.events"),
        Some(&(events_a + 1)),
        "their events and the campaign naming them: {counts:?}"
    );
    assert_eq!(counts.get("redis"), Some(&2), "{counts:?}");
    for line in &export_a {
        let text = line.document.to_string();
        assert!(text.contains(&customer_a), "about A: {text}");
        if !is_campaign_command(line) {
            assert!(!text.contains(&customer_b), "nothing about B: {text}");
        }
    }
    let export_b_before = export(&db, &b).await;

    let report = rights::erase_customer(&db, &mut redis, &a, "test")
        .await
        .expect("erase");
    assert_eq!(report.conversations, 1);
    assert_eq!(report.messages as usize, messages_a);
    assert_eq!(report.events as usize, events_a);
    assert_eq!(report.events_redacted, 1);
    assert_eq!(report.presence_keys, 2);
    assert_eq!(report.dedupe_keys, events_a);

    assert!(export(&db, &a).await.is_empty(), "nothing left about A");
    let export_b_after = export(&db, &b).await;
    let untouched = |lines: &[ExportLine]| -> Vec<String> {
        let mut texts: Vec<String> = lines
            .iter()
            .filter(|line| !is_campaign_command(line))
            .map(|line| serde_json::to_string(line).unwrap())
            .collect();
        texts.sort();
        texts
    };
    assert_eq!(untouched(&export_b_after), untouched(&export_b_before));
    let campaign_after = export_b_after
        .iter()
        .find(|line| is_campaign_command(line))
        .expect("B still named by the campaign");
    let text = campaign_after.document.to_string();
    assert!(
        text.contains(&customer_b) && !text.contains(&customer_a),
        "{text}"
    );

    for id in ids_of(&key_a) {
        let exists: bool = redis
            .exists(format!("{INGEST_DEDUPE_PREFIX}{id}"))
            .await
            .unwrap();
        assert!(!exists, "A's dedupe key {id} deleted");
    }
    for id in ids_of(&key_b) {
        let exists: bool = redis
            .exists(format!("{INGEST_DEDUPE_PREFIX}{id}"))
            .await
            .unwrap();
        assert!(exists, "B's dedupe key {id} kept");
    }
    let erasure = count(
        &db,
        "events",
        doc! { "type": "customer_erased", "status": "completed" },
    )
    .await;
    assert_eq!(erasure, 1, "the erasure is recorded");
    let named = count(
        &db,
        "events",
        doc! { "type": "customer_erased", "requested_by": "test", "tenant_id": &world.tenant },
    )
    .await;
    assert_eq!(named, 1);

    // Kafka still holds A's old events: replaying them must not bring A back.
    let replay: Vec<LoggedEvent> = scenario
        .events
        .iter()
        .filter(|event| event.conversation_key() == key_a)
        .cloned()
        .collect();
    let erased_before = erased_counter();
    world.produce(&producer(), &codec(), &replay).await;
    let distinct = replay
        .iter()
        .map(|event| event.event_id().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    eventually("the replayed events dropped as erased", || async move {
        (erased_counter() >= erased_before + distinct).then_some(())
    })
    .await;
    assert!(
        export(&db, &a).await.is_empty(),
        "the replay did not bring A back"
    );

    stop_in_process(shutdown, task).await;
    world.clean_up().await;
}
