//! The event explorer (issue #11) against the real stack: the real logger stores events in this
//! test's database, the gateway searches them for admins of the caller's tenant only, and tails
//! newly stored events over socket.io.

mod common;

use std::time::Duration;

use common::{inbound_text as inbound, token, unique, Cluster, EventProducer, Gateway};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// Search until the answer has `count` events (the logger stores asynchronously).
async fn search_until(gateway: &Gateway, query: &str, token: &str, count: usize) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = gateway
            .get(&format!("/api/v1/events?{query}"), Some(token))
            .await;
        assert_eq!(status, 200, "{body}");
        if body["events"].as_array().unwrap().len() >= count {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET /api/v1/events?{query} found {body} after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn admins_search_their_tenants_events_and_tail_new_ones() {
    let cluster = Cluster::new().await;
    let logger = cluster.start_logger().await;
    let gateway = cluster.start(&[]).await;
    let tenant = unique("ex");
    let other = unique("ey");
    let admin = token(&tenant, "op-admin", "admin");
    let operator = token(&tenant, "op-1", "operator");
    let stranger = token(&other, "op-admin", "admin");
    let run = unique("needle-");
    let producer = EventProducer::new();
    let mine = inbound(&tenant, "4915100000901", &format!("Where is parcel {run}?"));
    let theirs = inbound(&other, "4915100000901", &format!("Other tenant {run}"));
    producer.produce(&mine).await;
    producer.produce(&theirs).await;

    // Free text finds the event by its message text, in the caller's tenant only.
    let query = format!("q={}", run.to_uppercase());
    let found = search_until(&gateway, &query, &admin, 1).await;
    let events = found["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{found}");
    assert_eq!(events[0]["id"], mine.event_id.as_str());
    assert_eq!(events[0]["type"], "inbound_message");
    assert!(events[0]["summary"].as_str().unwrap().contains(&run));
    assert!(
        events[0].get("payload").is_none(),
        "the list leaves payloads out"
    );
    let theirs_found = search_until(&gateway, &query, &stranger, 1).await;
    assert_eq!(theirs_found["events"][0]["id"], theirs.event_id.as_str());

    // One click: the whole payload; another tenant's id is not found.
    let (status, detail) = gateway
        .get(&format!("/api/v1/events/{}", mine.event_id), Some(&admin))
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(
        detail["payload"]["content"]["text"]["body"],
        format!("Where is parcel {run}?")
    );
    assert!(detail["seq"].is_i64(), "{detail}");
    let (status, _) = gateway
        .get(&format!("/api/v1/events/{}", theirs.event_id), Some(&admin))
        .await;
    assert_eq!(status, 404);

    // Filters: type, conversation, time range; refusals say why.
    let other_type = format!("{query}&type=inbound_status");
    let (_, none) = gateway
        .get(&format!("/api/v1/events?{other_type}"), Some(&admin))
        .await;
    assert_eq!(none["events"].as_array().unwrap().len(), 0, "{none}");
    let by_conversation = format!("conversation_key={}", mine.conversation_key);
    let in_conversation = search_until(&gateway, &by_conversation, &admin, 1).await;
    assert_eq!(in_conversation["events"][0]["id"], mine.event_id.as_str());
    let past = format!("{query}&from=1000&to=2000");
    let (_, none) = gateway
        .get(&format!("/api/v1/events?{past}"), Some(&admin))
        .await;
    assert_eq!(none["events"].as_array().unwrap().len(), 0, "{none}");
    let (status, refused) = gateway.get("/api/v1/events", Some(&operator)).await;
    assert_eq!(status, 403, "{refused}");
    let (status, refused) = gateway
        .get(
            &format!(
                "/api/v1/events?conversation_key={}",
                theirs.conversation_key
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    let (status, refused) = gateway.get("/api/v1/events?q=x&from=0", Some(&admin)).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("7 days"));

    // Pages: newest first, the cursor continues without repeats.
    let second = inbound(&tenant, "4915100000902", &format!("Second {run}"));
    producer.produce(&second).await;
    let both = search_until(&gateway, &query, &admin, 2).await;
    assert_eq!(both["events"][0]["id"], second.event_id.as_str());
    let (_, first_page) = gateway
        .get(&format!("/api/v1/events?{query}&limit=1"), Some(&admin))
        .await;
    let cursor = first_page["next_before"].as_str().expect("a next page");
    let (_, second_page) = gateway
        .get(
            &format!("/api/v1/events?{query}&limit=1&before={cursor}"),
            Some(&admin),
        )
        .await;
    assert_eq!(second_page["events"][0]["id"], mine.event_id.as_str());
    assert!(second_page["next_before"].is_null(), "{second_page}");

    // The gateway created the explorer's indexes (this database's events are few).
    let database = cluster.database().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let names = database
            .collection::<mongodb::bson::Document>("events")
            .list_index_names()
            .await
            .unwrap_or_default();
        if names.iter().any(|name| name == "tenant_time")
            && names.iter().any(|name| name == "conversation_time")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no explorer indexes: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Live tail: admins only; a newly stored event of the tenant arrives, another tenant's not.
    let operator_socket = gateway.operator(&operator).await;
    let refused = operator_socket
        .emit_ack("explorer.subscribe", serde_json::json!({}))
        .await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("admin"));
    let admin_socket = gateway.operator(&admin).await;
    let subscribed = admin_socket
        .emit_ack("explorer.subscribe", serde_json::json!({}))
        .await;
    assert_eq!(subscribed["ok"], true, "{subscribed}");
    let live = inbound(&tenant, "4915100000903", &format!("Live {run}"));
    let not_mine = inbound(&other, "4915100000903", &format!("Live other {run}"));
    producer.produce(&not_mine).await;
    producer.produce(&live).await;
    let tailed = admin_socket
        .wait_for("explorer.event", WAIT, |event| {
            event["id"] == live.event_id.as_str()
        })
        .await
        .expect("the new event arrives on the live tail");
    assert_eq!(tailed["type"], "inbound_message");
    assert!(tailed["summary"].as_str().unwrap().contains("Live"));
    assert_eq!(
        admin_socket.count("explorer.event", |event| {
            event["tenant_id"] != tenant.as_str()
        }),
        0,
        "another tenant's event reached the tail"
    );
    assert_eq!(
        operator_socket.count("explorer.event", |_| true),
        0,
        "an operator got tail events"
    );
    let stopped = admin_socket
        .emit_ack("explorer.unsubscribe", serde_json::json!({}))
        .await;
    assert_eq!(stopped["ok"], true);

    gateway.stop().await;
    logger.stop().await;
    cluster.cleanup().await;
}
