//! The campaign REST API served by the gateway (issue #8): the gateway's JWT becomes the
//! campaign API's caller, so a campaign is created with an operator token and is invisible to
//! every other tenant; audiences stream in without the small body limit of the other routes.
//!
//! Against the running stack (`make up`): the gateway runs in-process on the stack's database,
//! and the stack's campaign service applies the commands (`campaign.commands.v1`) that the API
//! produces. The campaign is scheduled a day ahead and cancelled at the end, so nothing is sent.

mod common;

use std::time::Duration;

use common::{token, unique, Cluster, Gateway};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// GET `path` until `done` holds for the answer; panics with the last answer after [`WAIT`].
async fn poll(
    gateway: &Gateway,
    path: &str,
    token: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = gateway.get(path, Some(token)).await;
        if done(status, &body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path}: still {status} {body} after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn cancel(gateway: &Gateway, campaign_id: &str, token: &str) -> (u16, Value) {
    let path = format!("/api/v1/campaigns/{campaign_id}/cancel");
    gateway
        .post(&path, Some(token), "application/json", "")
        .await
}

fn json_body(value: &Value) -> String {
    value.to_string()
}

#[tokio::test]
async fn a_campaign_created_through_the_gateway_is_seen_only_by_its_tenant() {
    let cluster = Cluster::new().await;
    let gateway = cluster.start_on_stack().await;
    let tenant = unique("gwc");
    let other_tenant = unique("gwo");
    let admin = token(&tenant, "op-admin", "admin");
    let operator = token(&tenant, "op-1", "operator");
    let stranger = token(&other_tenant, "op-admin", "admin");
    let campaign_id = unique("gw-campaign-");
    let start_at = caas_gateway::realtime::now_ms() + 24 * 3600 * 1000;
    let create = json!({
        "campaign_id": campaign_id,
        "name": "Spring sale",
        "channel": "whatsapp",
        "business_id": "100000000000001",
        "template": { "name": "spring_sale", "language": "en" },
        "recipients": ["+4917012345678", "+4917012345679"],
        "rate_per_second": 5,
        "start_at": start_at,
        "timezone": "Europe/Berlin",
    });

    // No token, or an operator's token: refused before anything is produced.
    let (status, body) = gateway
        .post(
            "/api/v1/campaigns",
            None,
            "application/json",
            json_body(&create),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = gateway
        .post(
            "/api/v1/campaigns",
            Some(&operator),
            "application/json",
            json_body(&create),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("admin"), "{body}");

    // The admin creates it: 202 once the command is on Kafka.
    let (status, accepted) = gateway
        .post(
            "/api/v1/campaigns",
            Some(&admin),
            "application/json",
            json_body(&create),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["campaign_id"], campaign_id.as_str());

    // The stack's campaign service applies it; the tenant's operator reads it.
    let path = format!("/api/v1/campaigns/{campaign_id}");
    let campaign = poll(&gateway, &path, &operator, |status, body| {
        status == 200 && body["state"] == "scheduled"
    })
    .await;
    // Recorded with the caller of the gateway's token (the audience expands at the start).
    assert_eq!(campaign["operator_id"], "op-admin", "{campaign}");
    assert_eq!(campaign["business_id"], "100000000000001", "{campaign}");
    let listed = poll(&gateway, "/api/v1/campaigns", &operator, |status, body| {
        status == 200
            && body["campaigns"].as_array().is_some_and(|list| {
                list.iter()
                    .any(|c| c["campaign_id"] == campaign_id.as_str())
            })
    })
    .await;
    assert!(listed["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["tenant"].as_str().is_none_or(|t| t == tenant)));

    // Another tenant does not see it, cannot list it, cannot change it.
    let (status, body) = gateway.get(&path, Some(&stranger)).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = gateway.get("/api/v1/campaigns", Some(&stranger)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.to_string().contains(&campaign_id),
        "another tenant's list shows the campaign: {body}"
    );
    let (status, body) = gateway
        .get(&format!("{path}/recipients"), Some(&stranger))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = cancel(&gateway, &campaign_id, &stranger).await;
    assert_eq!(status, 404, "{body}");

    // Its own admin cancels it (and nothing was ever sent: it was scheduled a day ahead).
    let (status, body) = cancel(&gateway, &campaign_id, &admin).await;
    assert_eq!(status, 202, "{body}");
    let cancelled = poll(&gateway, &path, &operator, |status, body| {
        status == 200 && body["state"] == "cancelled"
    })
    .await;
    assert_eq!(cancelled["counts"]["sent"], 0, "{cancelled}");

    gateway.stop().await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn audiences_stream_past_the_body_limit_that_other_routes_keep() {
    let cluster = Cluster::new().await;
    let gateway = cluster.start_on_stack().await;
    let tenant = unique("gwa");
    let admin = token(&tenant, "op-admin", "admin");

    // About 2.7 MB of CSV: more than the 2 MiB a JSON body may have.
    let rows = 30_000;
    let block = uuid::Uuid::new_v4().as_u128() % 9_000 + 1_000;
    let mut csv = String::from("phone,first_name,note\n");
    let padding = "x".repeat(64);
    for index in 0..rows {
        csv.push_str(&format!(
            "+49171{block:04}{index:05},Name{index},{padding}\n"
        ));
    }
    csv.push_str("not-a-number,Broken,row\n");
    assert!(csv.len() > 5 * 1024 * 1024 / 2, "{}", csv.len());
    let (status, audience) = gateway
        .post("/api/v1/audiences", Some(&admin), "text/csv", csv)
        .await;
    assert_eq!(status, 201, "{audience}");
    assert_eq!(audience["valid"], rows, "{audience}");
    let errors = audience["errors"].to_string();
    assert!(errors.contains(&format!("{}", rows + 2)), "{audience}");

    // A JSON campaign body of the same size is refused by the default limit.
    let recipients: Vec<String> = (0..120_000)
        .map(|index| format!("+49172{block:04}{index:05}"))
        .collect();
    let body = json!({
        "name": "too big",
        "template": { "name": "spring_sale", "language": "en" },
        "recipients": recipients,
    })
    .to_string();
    assert!(body.len() > 2 * 1024 * 1024);
    let (status, refused) = gateway
        .post("/api/v1/campaigns", Some(&admin), "application/json", body)
        .await;
    assert_eq!(status, 413, "{refused}");

    gateway.stop().await;
    cluster.cleanup().await;
}
