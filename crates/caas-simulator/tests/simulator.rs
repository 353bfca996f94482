//! The simulator over HTTP, with a stand-in webhook receiver that checks every signature.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use caas_runtime::shutdown::CancellationToken;
use caas_runtime::Env;
use caas_simulator::webhooks::{rbm_signature, whatsapp_signature};
use serde_json::{json, Value};

const APP_SECRET: &str = "test-app-secret";
const CLIENT_TOKEN: &str = "test-client-token";

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Value)>>>);

impl Received {
    fn all(&self) -> Vec<(String, Value)> {
        self.0.lock().unwrap().clone()
    }
}

async fn whatsapp_hook(
    State(received): State<Received>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let signature = headers["x-hub-signature-256"].to_str().unwrap();
    assert_eq!(signature, whatsapp_signature(APP_SECRET.as_bytes(), &body));
    assert!(body.is_ascii(), "non-ASCII is escaped like Meta does");
    received
        .0
        .lock()
        .unwrap()
        .push(("whatsapp".into(), serde_json::from_slice(&body).unwrap()));
    "ok"
}

async fn rcs_hook(
    State(received): State<Received>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let envelope: Value = serde_json::from_slice(&body).unwrap();
    let data = base64::engine::general_purpose::STANDARD
        .decode(envelope["message"]["data"].as_str().unwrap())
        .unwrap();
    let signature = headers["x-goog-signature"].to_str().unwrap();
    assert_eq!(signature, rbm_signature(CLIENT_TOKEN.as_bytes(), &data));
    received
        .0
        .lock()
        .unwrap()
        .push(("rcs".into(), serde_json::from_slice(&data).unwrap()));
    "ok"
}

async fn start() -> (String, Received, CancellationToken) {
    let received = Received::default();
    let receiver = Router::new()
        .route("/webhooks/whatsapp", post(whatsapp_hook))
        .route("/webhooks/rcs", post(rcs_hook))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let whatsapp_url = format!("http://{receiver_address}/webhooks/whatsapp");
    let rcs_url = format!("http://{receiver_address}/webhooks/rcs");
    let env = Env::from_pairs([
        ("CAAS_SIMULATOR_ADDR", "127.0.0.1:0"),
        ("CAAS_SIMULATOR_WHATSAPP_WEBHOOK_URL", whatsapp_url.as_str()),
        ("CAAS_SIMULATOR_RCS_WEBHOOK_URL", rcs_url.as_str()),
        ("CAAS_WHATSAPP_APP_SECRET", APP_SECRET),
        ("CAAS_RBM_CLIENT_TOKEN", CLIENT_TOKEN),
        ("CAAS_SIMULATOR_SENT_AFTER_MS", "10"),
        ("CAAS_SIMULATOR_DELIVERED_AFTER_MS", "30"),
        ("CAAS_SIMULATOR_READ_AFTER_MS", "60"),
    ]);
    let config = caas_simulator::Config::from_env(&env).unwrap();
    let shutdown = CancellationToken::new();
    let (bound_sender, bound) = tokio::sync::oneshot::channel::<SocketAddr>();
    tokio::spawn(caas_simulator::run(
        config,
        shutdown.clone(),
        move |address| {
            let _ = bound_sender.send(address);
        },
    ));
    let address = bound.await.unwrap();
    (format!("http://{address}"), received, shutdown)
}

async fn wait_for(received: &Received, count: usize) -> Vec<(String, Value)> {
    for _ in 0..200 {
        let all = received.all();
        if all.len() >= count {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("expected {count} webhooks, got {:?}", received.all());
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn a_whatsapp_send_is_answered_recorded_and_reported_sent_delivered_read() {
    let (base, received, shutdown) = start().await;
    let response = client()
        .post(format!("{base}/v21.0/100000000000001/messages"))
        .bearer_auth("token")
        .json(
            &json!({"messaging_product":"whatsapp","to":"4915112345678","type":"text",
            "text":{"body":"Grüße"},"biz_opaque_callback_data":"campaign-7"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["messaging_product"], json!("whatsapp"));
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_string();
    assert!(wamid.starts_with("wamid."));

    let webhooks = wait_for(&received, 3).await;
    let statuses: Vec<&str> = webhooks
        .iter()
        .map(|(_, body)| {
            body["entry"][0]["changes"][0]["value"]["statuses"][0]["status"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(statuses, ["sent", "delivered", "read"]);
    let first = &webhooks[0].1["entry"][0]["changes"][0]["value"];
    assert_eq!(first["statuses"][0]["id"], json!(wamid));
    assert_eq!(
        first["statuses"][0]["biz_opaque_callback_data"],
        json!("campaign-7")
    );
    assert_eq!(
        first["metadata"]["phone_number_id"],
        json!("100000000000001")
    );

    let records: Value = client()
        .get(format!(
            "{base}/_sim/requests?api=whatsapp&to=4915112345678&outcome=accepted"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(records["count"], json!(1));
    assert_eq!(records["requests"][0]["provider_message_id"], json!(wamid));
    assert_eq!(
        records["requests"][0]["body"]["text"]["body"],
        json!("Grüße")
    );
    shutdown.cancel();
}

#[tokio::test]
async fn rbm_sends_are_echoed_once_per_message_id_and_reported() {
    let (base, received, shutdown) = start().await;
    let url =
        format!("{base}/v1/phones/+4915112345678/agentMessages?messageId=m-1&agentId=demo-agent");
    let request = json!({"contentMessage":{"text":"Hallo","suggestions":[{"reply":{"text":"Yes","postbackData":"yes"}}]}});
    let first = client()
        .post(&url)
        .bearer_auth("t")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let echo: Value = first.json().await.unwrap();
    assert_eq!(
        echo["name"],
        json!("phones/+4915112345678/agentMessages/m-1")
    );
    assert_eq!(echo["contentMessage"]["text"], json!("Hallo"));
    let again = client()
        .post(&url)
        .bearer_auth("t")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let error: Value = again.json().await.unwrap();
    assert_eq!(error["error"]["status"], json!("ALREADY_EXISTS"));

    let webhooks = wait_for(&received, 2).await;
    let events: Vec<&str> = webhooks
        .iter()
        .map(|(_, data)| data["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["DELIVERED", "READ"]);
    assert_eq!(webhooks[0].1["messageId"], json!("m-1"));
    assert_eq!(webhooks[0].1["agentId"], json!("demo-agent"));
    shutdown.cancel();
}

#[tokio::test]
async fn knobs_inject_faults_and_failing_numbers() {
    let (base, received, shutdown) = start().await;
    let send = |to: &'static str| {
        let base = base.clone();
        async move {
            client()
                .post(format!("{base}/v21.0/100000000000002/messages"))
                .bearer_auth("t")
                .json(&json!({"messaging_product":"whatsapp","to":to,"type":"text","text":{"body":"x"}}))
                .send()
                .await
                .unwrap()
        }
    };
    let put = |knobs: Value| {
        let base = base.clone();
        async move {
            client()
                .put(format!("{base}/_sim/knobs"))
                .json(&knobs)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(put(json!({"rate_limit_rate": 1.0})).await.status(), 200);
    let limited = send("4915100000001").await;
    assert_eq!(limited.status(), 429);
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["code"], json!(130429));

    put(json!({"error_rate": 1.0})).await;
    let failed = send("4915100000001").await;
    assert!([500, 503].contains(&failed.status().as_u16()));

    assert_eq!(put(json!({"error_rate": 3})).await.status(), 400);

    put(json!({"failing_numbers": ["4915100000009"], "sent_after_ms": 5, "delivered_after_ms": 5, "read_after_ms": 5})).await;
    assert_eq!(send("4915100000009").await.status(), 200);
    let webhooks = wait_for(&received, 1).await;
    let status = &webhooks[0].1["entry"][0]["changes"][0]["value"]["statuses"][0];
    assert_eq!(status["status"], json!("failed"));
    assert_eq!(status["errors"][0]["code"], json!(131026));
    let rbm = client()
        .post(format!(
            "{base}/v1/phones/+4915100000009/agentMessages?messageId=m&agentId=a"
        ))
        .bearer_auth("t")
        .json(&json!({"contentMessage":{"text":"x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(rbm.status(), 404);

    let unauthorized = client()
        .post(format!("{base}/v21.0/100000000000002/messages"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    let all: Value = client()
        .get(format!("{base}/_sim/requests?sender=100000000000002"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outcomes: Vec<&str> = all["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["rate_limited", "server_error", "accepted", "unauthorized"]
    );
    shutdown.cancel();
}

#[tokio::test]
async fn customers_are_played_with_signed_webhooks() {
    let (base, received, shutdown) = start().await;
    let report: Value = client()
        .post(format!("{base}/_sim/customers/send"))
        .json(
            &json!({"channel":"whatsapp","customer_count":2,"count":4,"rate_per_second":200,
            "messages":[{"text":"hi"},{"button":{"id":"talk","title":"Talk to us"}}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["sent"], json!(4), "{report}");
    let rcs: Value = client()
        .post(format!("{base}/_sim/customers/send"))
        .json(
            &json!({"channel":"rcs","customers":["+4915112345678"],"messages":[{"text":"hallo"}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rcs["sent"], json!(1), "{rcs}");
    let webhooks = wait_for(&received, 5).await;
    let whatsapp: Vec<&Value> = webhooks
        .iter()
        .filter(|(channel, _)| channel == "whatsapp")
        .map(|(_, body)| body)
        .collect();
    let froms: std::collections::BTreeSet<&str> = whatsapp
        .iter()
        .map(|body| {
            body["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(froms.len(), 2);
    assert!(whatsapp.iter().any(
        |body| body["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"]
            ["button_reply"]["id"]
            == json!("talk")
    ));
    let (_, rcs_data) = webhooks
        .iter()
        .find(|(channel, _)| channel == "rcs")
        .unwrap();
    assert_eq!(rcs_data["text"], json!("hallo"));
    assert_eq!(rcs_data["senderPhoneNumber"], json!("+4915112345678"));
    shutdown.cancel();
}
