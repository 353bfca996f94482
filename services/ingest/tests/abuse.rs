//! Bad input and abuse against the real `run` in-process (port 0) on the local stack: a corpus
//! of malformed but correctly signed webhooks (wrong types, huge strings, deep nesting, invalid
//! UTF-8, truncated base64), oversized bodies, wrong signatures and a flood from one source.
//!
//! Every request gets a clear JSON error (`error` and a `message` saying what is wrong), the
//! service keeps answering, and nothing is produced: this instance's own
//! `caas_ingest_events_produced_total` stays at zero (the test process runs only this ingest,
//! so the counter is exact even while other tests produce to the same topics).

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use caas_ingest::signature::{rbm_signature, whatsapp_signature};
use caas_ingest::Config;
use caas_runtime::shutdown::Spawned;
use caas_runtime::Env;

const APP_SECRET: &str = "abuse-test-whatsapp-app-secret";
const CLIENT_TOKEN: &str = "abuse-test-rbm-client-token";
/// A tenant of this test's own: nothing it could produce reaches the demo tenant's workers.
const TENANTS: &str = "abuse-test:whatsapp=100000000000001,rcs=demo-agent";

fn stack_variable(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_string())
}

struct Ingest {
    service: Spawned<anyhow::Result<()>>,
    address: SocketAddr,
    http: reqwest::Client,
}

impl Ingest {
    async fn start(extra: &[(&str, &str)]) -> Self {
        let mut pairs = vec![
            ("CAAS_INGEST_ADDR", "127.0.0.1:0".to_string()),
            (
                "CAAS_KAFKA_BOOTSTRAP",
                stack_variable("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            ),
            (
                "CAAS_SCHEMA_REGISTRY_URL",
                stack_variable(
                    "CAAS_SCHEMA_REGISTRY_URL",
                    "http://127.0.0.1:8081/apis/ccompat/v7",
                ),
            ),
            (
                "CAAS_REDIS_URL",
                stack_variable("CAAS_REDIS_URL", "redis://127.0.0.1:6379"),
            ),
            ("CAAS_WHATSAPP_APP_SECRET", APP_SECRET.to_string()),
            ("CAAS_RBM_CLIENT_TOKEN", CLIENT_TOKEN.to_string()),
            ("CAAS_INGEST_TENANTS", TENANTS.to_string()),
            ("CAAS_INGEST_MAX_BODY_BYTES", "2097152".to_string()),
            ("CAAS_LOG", "warn".to_string()),
        ];
        for (key, value) in extra {
            pairs.retain(|(existing, _)| existing != key);
            pairs.push((key, value.to_string()));
        }
        let config = Config::from_env(&Env::from_pairs(
            pairs.iter().map(|(key, value)| (*key, value.as_str())),
        ))
        .expect("valid test configuration");
        let service = Spawned::start(Duration::from_secs(30), |shutdown, on_bound| {
            caas_ingest::run(config, shutdown, on_bound)
        })
        .await
        .expect("ingest starts");
        Self {
            address: service.address,
            service,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    async fn post_whatsapp(&self, body: Vec<u8>) -> reqwest::Response {
        let signature = whatsapp_signature(APP_SECRET.as_bytes(), &body);
        self.http
            .post(self.url("/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .expect("ingest answers")
    }

    async fn post_unsigned(&self) -> reqwest::Response {
        self.http
            .post(self.url("/webhooks/whatsapp"))
            .body("{}")
            .send()
            .await
            .expect("ingest answers")
    }

    async fn produced(&self) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|line| line.starts_with("caas_ingest_events_produced_total"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn stop(self) {
        self.service
            .stop(Duration::from_secs(20))
            .await
            .expect("stops within 20 s")
            .expect("run ended without error");
    }
}

/// A WhatsApp webhook whose `messages[0]` is `message` (a JSON fragment, possibly broken).
fn whatsapp_with_message(message: &str) -> Vec<u8> {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"1555","phone_number_id":"100000000000001"}},"messages":[{message}]}}}}]}}]}}"#
    )
    .into_bytes()
}

/// Malformed webhooks, each correctly signed so it reaches the parser.
fn whatsapp_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let huge = "x".repeat(1_500_000);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(5_000), "}".repeat(5_000));
    let mut invalid_utf8 = whatsapp_with_message(
        r#"{"from":"49151","id":"wamid.X","timestamp":"1","type":"text","text":{"body":"__"}}"#,
    );
    let at = invalid_utf8
        .windows(2)
        .position(|window| window == b"__")
        .expect("marker");
    invalid_utf8[at] = 0xff;
    invalid_utf8[at + 1] = 0xfe;
    vec![
        ("empty body", Vec::new()),
        ("not json", b"this is not json".to_vec()),
        ("json array", b"[1,2,3]".to_vec()),
        (
            "truncated json",
            br#"{"object":"whatsapp_business_account","entry":[{"#.to_vec(),
        ),
        (
            "entry of wrong type",
            br#"{"object":"whatsapp_business_account","entry":"nope"}"#.to_vec(),
        ),
        ("wrong object", br#"{"object":"page","entry":[]}"#.to_vec()),
        (
            "timestamp of wrong type",
            whatsapp_with_message(
                r#"{"from":"49151","id":"wamid.X","timestamp":{"a":1},"type":"text","text":{"body":"hi"}}"#,
            ),
        ),
        (
            "message id of wrong type",
            whatsapp_with_message(
                r#"{"from":"49151","id":12,"timestamp":"1","type":"text","text":{"body":"hi"}}"#,
            ),
        ),
        // Not here: a known type whose part has an unexpected shape (`"text": ["hi"]`). That is
        // a customer's message, kept as `unsupported` with its raw JSON, never refused
        // (whatsapp.rs, `order_system_unsupported_and_unknown_types_are_kept_verbatim`).
        (
            "messages of wrong type",
            br#"{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1555","phone_number_id":"100000000000001"},"messages":"nope"}}]}]}"#.to_vec(),
        ),
        (
            "missing sender",
            whatsapp_with_message(
                r#"{"id":"wamid.X","timestamp":"1","type":"text","text":{"body":"hi"}}"#,
            ),
        ),
        (
            "huge message id",
            whatsapp_with_message(&format!(
                r#"{{"from":"49151","id":"{huge}","timestamp":"1","type":"text","text":{{"body":"hi"}}}}"#
            )),
        ),
        (
            "huge sender",
            whatsapp_with_message(&format!(
                r#"{{"from":"{huge}","id":"wamid.X","timestamp":"1","type":"text","text":{{"body":"hi"}}}}"#
            )),
        ),
        (
            // All or nothing: the small message beside the huge one is not produced either.
            "a normal message beside a huge one",
            whatsapp_with_message(&format!(
                r#"{{"from":"49152","id":"wamid.BESIDE","timestamp":"1","type":"text","text":{{"body":"hi"}}}},{{"from":"49153","id":"wamid.HUGE","timestamp":"1","type":"text","text":{{"body":"{huge}"}}}}"#
            )),
        ),
        ("deeply nested arrays", deep.into_bytes()),
        ("deeply nested objects", deep_object.into_bytes()),
        ("invalid utf-8", invalid_utf8),
        ("nul bytes", b"{\"object\":\0\0\0}".to_vec()),
    ]
}

fn assert_clear_error(name: &str, status: reqwest::StatusCode, body: &str) {
    assert!(
        status.is_client_error(),
        "{name}: answered {status}, not a client error: {}",
        &body[..body.len().min(300)]
    );
    let parsed: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|error| panic!("{name}: the error is not JSON ({error}): {body}"));
    let message = parsed["message"].as_str().unwrap_or_default();
    assert!(
        parsed["error"].is_string() && message.len() > 5,
        "{name}: the error does not say what is wrong: {body}"
    );
    assert!(
        message.len() < 2_000,
        "{name}: the error echoes the input back ({} bytes)",
        message.len()
    );
}

#[tokio::test]
async fn malformed_webhooks_get_a_clear_error_and_produce_nothing() {
    let ingest = Ingest::start(&[]).await;
    for (name, body) in whatsapp_corpus() {
        let answer = ingest.post_whatsapp(body).await;
        let status = answer.status();
        let text = answer.text().await.expect("a body");
        // A well-formed webhook whose parts are skipped (e.g. an unknown object kind) may be
        // answered 200 "ok, nothing to do"; everything else must be a clear 4xx.
        if status.is_success() {
            assert!(text.contains("\"status\":\"ok\""), "{name}: {text}");
            continue;
        }
        assert_clear_error(name, status, &text);
    }
    // RBM: truncated and invalid base64 in the Pub/Sub envelope, and a data field of wrong type.
    let data = br#"{"senderPhoneNumber":"+4915112345678","messageId":"M1","sendTime":"2025-02-12T00:43:44Z","agentId":"demo-agent","text":"hi"}"#;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    for (name, envelope_data) in [
        (
            "truncated base64",
            serde_json::json!(&encoded[..encoded.len() - 3]),
        ),
        ("invalid base64", serde_json::json!("%%%not-base64%%%")),
        ("data of wrong type", serde_json::json!({"nested": true})),
        (
            "base64 of invalid utf-8",
            serde_json::json!(base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, 0x00])),
        ),
    ] {
        let body = serde_json::to_vec(&serde_json::json!({
            "message": {"data": envelope_data, "messageId": "1", "publishTime": "2025-02-12T00:43:44Z"},
            "subscription": "projects/x/subscriptions/y"
        }))
        .unwrap();
        let answer = ingest
            .http
            .post(ingest.url("/webhooks/rcs"))
            .header("content-type", "application/json")
            .header(
                "x-goog-signature",
                rbm_signature(CLIENT_TOKEN.as_bytes(), data),
            )
            .body(body)
            .send()
            .await
            .expect("ingest answers");
        let status = answer.status();
        assert_clear_error(name, status, &answer.text().await.unwrap());
    }
    // Still alive and healthy after all of it, and nothing reached Kafka.
    let health = ingest.http.get(ingest.url("/health")).send().await.unwrap();
    assert!(health.status().is_success());
    assert_eq!(
        ingest.produced().await,
        0.0,
        "a malformed webhook produced events"
    );
    ingest.stop().await;
}

#[tokio::test]
async fn wrong_signatures_and_oversized_bodies_are_refused_before_parsing() {
    let ingest = Ingest::start(&[("CAAS_INGEST_MAX_BODY_BYTES", "65536")]).await;
    let body = whatsapp_with_message(
        r#"{"from":"49151","id":"wamid.SIG","timestamp":"1","type":"text","text":{"body":"hi"}}"#,
    );
    for (name, signature) in [
        ("missing", None),
        (
            "wrong secret",
            Some(whatsapp_signature(b"another-secret", &body)),
        ),
        ("not hex", Some("sha256=zzzz".to_string())),
        ("sha1 scheme", Some("sha1=0123".to_string())),
    ] {
        let mut request = ingest
            .http
            .post(ingest.url("/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401, "signature {name}");
        assert_clear_error(name, answer.status(), &answer.text().await.unwrap());
    }
    let oversized = ingest.post_whatsapp(vec![b' '; 65_537]).await;
    assert_eq!(oversized.status(), 413);
    assert_clear_error(
        "oversized",
        oversized.status(),
        &oversized.text().await.unwrap(),
    );
    assert_eq!(ingest.produced().await, 0.0);
    ingest.stop().await;
}

#[tokio::test]
async fn a_source_above_its_rate_gets_429_with_retry_after() {
    let ingest = Ingest::start(&[
        ("CAAS_INGEST_RATE_PER_SOURCE", "2"),
        ("CAAS_INGEST_RATE_BURST_PER_SOURCE", "5"),
    ])
    .await;
    let mut refused = 0;
    let mut retry_after = None;
    for _ in 0..12 {
        // Unsigned: each would be 401; the limit answers first, before the body is read.
        let answer = ingest.post_unsigned().await;
        if answer.status() == 429 {
            refused += 1;
            retry_after = answer
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok());
            assert_clear_error(
                "rate limited",
                answer.status(),
                &answer.text().await.unwrap(),
            );
        }
    }
    assert!(
        refused >= 5,
        "only {refused} of 12 requests at once were refused"
    );
    let limited = retry_after.expect("a burst of 12 at 2/s with burst 5 was never answered 429");
    assert!((1..=5).contains(&limited), "Retry-After {limited}");
    // The ops endpoints are not limited: readiness probes keep working during a flood.
    for _ in 0..10 {
        let health = ingest.http.get(ingest.url("/health")).send().await.unwrap();
        assert!(health.status().is_success());
    }
    // After Retry-After (the time it names, not a guess) the source is served again.
    tokio::time::sleep(Duration::from_secs(limited)).await;
    let again = ingest.post_unsigned().await;
    assert_eq!(
        again.status(),
        401,
        "served (and refused for its missing signature)"
    );
    ingest.stop().await;
}
