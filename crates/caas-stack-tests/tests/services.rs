//! Every service starts, serves `/health`, `/ready` and `/metrics`, reports each dependency in
//! `/ready`, says not ready when a dependency is unreachable, and stops cleanly on shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use caas_runtime::probe::Part;
use caas_runtime::shutdown::Spawned;
use caas_runtime::Env;

fn check_name(part: &Part) -> &'static str {
    match part {
        Part::Kafka => "kafka",
        Part::Registry => "schema_registry",
        Part::MongoDb => "mongodb",
        Part::Redis => "redis",
    }
}

/// Environment for a service on port 0, optionally with every dependency pointed at a port
/// where nothing listens.
fn environment(address_variable: &'static str, broken: bool) -> Env {
    let mut pairs: Vec<(&str, String)> = std::env::vars()
        .filter(|(key, _)| key.starts_with("CAAS_"))
        .map(|(key, value)| (Box::leak(key.into_boxed_str()) as &str, value))
        .collect();
    pairs.push((address_variable, "127.0.0.1:0".to_string()));
    if broken {
        pairs.push(("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:1".to_string()));
        pairs.push((
            "CAAS_SCHEMA_REGISTRY_URL",
            "http://127.0.0.1:1/apis/ccompat/v7".to_string(),
        ));
        pairs.push((
            "CAAS_MONGODB_URI",
            "mongodb://127.0.0.1:1/?directConnection=true".to_string(),
        ));
        pairs.push(("CAAS_REDIS_URL", "redis://127.0.0.1:1".to_string()));
    }
    Env::from_pairs(pairs.iter().map(|(key, value)| (*key, value.as_str())))
}

async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("http://{address}{path}"))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

macro_rules! service_lifecycle_tests {
    ($($module:ident: $crate_name:ident, $variable:literal;)*) => {$(
        mod $module {
            use super::*;

            async fn start(broken: bool) -> Spawned<anyhow::Result<()>> {
                let config = $crate_name::Config::from_env(&environment($variable, broken)).unwrap();
                Spawned::start(Duration::from_secs(30), |shutdown, on_bound| {
                    $crate_name::run(config, shutdown, on_bound)
                })
                .await
                .expect("the service binds within 30 s")
            }

            async fn stop(service: Spawned<anyhow::Result<()>>) {
                service
                    .stop(Duration::from_secs(20))
                    .await
                    .expect("the service stops within 20 s of shutdown")
                    .unwrap();
            }

            #[tokio::test]
            async fn is_healthy_ready_against_the_stack_and_stops_cleanly() {
                let service = start(false).await;
                let address = service.address;
                let (status, body) = get(address, "/health").await;
                assert_eq!(status, 200);
                assert!(body.contains($crate_name::SERVICE), "{body}");
                let (status, body) = get(address, "/ready").await;
                assert_eq!(status, 200, "every dependency is up in the local stack: {body}");
                for part in $crate_name::DEPENDENCIES {
                    assert!(body.contains(check_name(part)), "{body}");
                }
                let (status, body) = get(address, "/metrics").await;
                assert_eq!(status, 200, "{body}");
                stop(service).await;
            }

            #[tokio::test]
            async fn is_not_ready_when_its_dependencies_are_unreachable() {
                let service = start(true).await;
                let address = service.address;
                let (status, body) = get(address, "/health").await;
                assert_eq!(status, 200, "alive even without dependencies: {body}");
                let (status, body) = get(address, "/ready").await;
                assert_eq!(status, 503, "{body}");
                let report: serde_json::Value = serde_json::from_str(&body).unwrap();
                for part in $crate_name::DEPENDENCIES {
                    let outcome = report["checks"][check_name(part)].as_str().unwrap_or_default();
                    assert_ne!(outcome, "ok", "{} should fail: {body}", check_name(part));
                }
                stop(service).await;
            }

            #[test]
            fn a_bad_address_names_its_variable() {
                let env = Env::from_pairs([($variable, "nowhere")]);
                let error = $crate_name::Config::from_env(&env).unwrap_err().to_string();
                assert!(error.contains($variable), "{error}");
            }
        }
    )*};
}

service_lifecycle_tests! {
    ingest: caas_ingest, "CAAS_INGEST_ADDR";
    gateway: caas_gateway, "CAAS_GATEWAY_ADDR";
    logger: caas_logger, "CAAS_LOGGER_OPS_ADDR";
    presence: caas_presence, "CAAS_PRESENCE_OPS_ADDR";
    chatbot: caas_chatbot, "CAAS_CHATBOT_OPS_ADDR";
    campaign: caas_campaign, "CAAS_CAMPAIGN_OPS_ADDR";
    sender: caas_sender, "CAAS_SENDER_OPS_ADDR";
}
