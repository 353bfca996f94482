//! The shipped dashboards and alert rules (`deploy/observability/`) query only metrics the
//! services really export.
//!
//! The check runs against the services `make up` started, at the addresses
//! `deploy/observability/prometheus/prometheus.local.yml` scrapes (so that file is checked too).
//! Prometheus client vectors export nothing before their first sample, so the test first drives
//! ordinary traffic — a customer message played by the provider simulator (ingest, Kafka, logger,
//! presence, chatbot, sender, gateway) and a webhook with a wrong signature — and then requires
//! every `caas_*` metric a query names to be exported. Metrics that need rarer events (a poison
//! record, a campaign, an operator socket) are listed in
//! `deploy/observability/metrics-after-traffic.txt`; each of those must be registered under
//! exactly that name in the Rust sources instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn observability() -> PathBuf {
    root().join("deploy/observability")
}

/// Every PromQL expression of the dashboards (panel targets and template variables), by file.
fn dashboard_queries() -> Vec<(String, String)> {
    fn collect(value: &Json, file: &str, found: &mut Vec<(String, String)>) {
        match value {
            Json::Object(object) => {
                for (key, inner) in object {
                    match (key.as_str(), inner) {
                        ("expr" | "definition", Json::String(text)) => {
                            found.push((file.to_string(), text.clone()))
                        }
                        _ => collect(inner, file, found),
                    }
                }
            }
            Json::Array(items) => items.iter().for_each(|item| collect(item, file, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(observability().join("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            let file = path.file_name().unwrap().to_string_lossy().to_string();
            let dashboard: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|error| panic!("{file} is not JSON: {error}"));
            collect(&dashboard, &file, &mut found);
        }
    }
    found
}

/// Every alerting and recording rule expression, by file.
fn rule_queries() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(observability().join("prometheus/rules")).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let rules: Yaml = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|error| panic!("{file} is not YAML: {error}"));
        for group in rules["groups"].as_sequence().expect("groups") {
            for rule in group["rules"].as_sequence().expect("rules") {
                let expr = rule["expr"].as_str().expect("every rule has an expr");
                found.push((file.clone(), expr.to_string()));
            }
        }
    }
    found
}

/// The `caas_*` metric names a PromQL expression uses, outside quoted strings (label values).
fn metric_names(expression: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut unquoted = String::new();
    let mut quote = None;
    for character in expression.chars() {
        match quote {
            Some(open) if character == open => quote = None,
            Some(_) => {}
            None if character == '"' || character == '\'' || character == '`' => {
                quote = Some(character);
                unquoted.push(' ');
            }
            None => unquoted.push(character),
        }
    }
    for token in unquoted.split(|character: char| {
        !(character.is_ascii_alphanumeric() || character == '_' || character == ':')
    }) {
        if token.starts_with("caas_") {
            names.insert(token.to_string());
        }
    }
    names
}

/// A histogram's series name → the family name it belongs to.
fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

/// The `host:port` targets of the local scrape config.
fn local_targets() -> BTreeMap<String, String> {
    let config: Yaml = serde_yaml::from_str(
        &std::fs::read_to_string(observability().join("prometheus/prometheus.local.yml")).unwrap(),
    )
    .unwrap();
    let mut targets = BTreeMap::new();
    for job in config["scrape_configs"].as_sequence().unwrap() {
        for static_config in job["static_configs"].as_sequence().unwrap() {
            let service = static_config["labels"]["service"]
                .as_str()
                .unwrap()
                .to_string();
            for target in static_config["targets"].as_sequence().unwrap() {
                targets.insert(target.as_str().unwrap().to_string(), service.clone());
            }
        }
    }
    targets
}

/// The metric families the services export now: sample names, and `# TYPE` lines.
async fn exported(
    client: &reqwest::Client,
    targets: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for target in targets.keys() {
        let url = format!("http://{target}/metrics");
        let response = client.get(&url).send().await.unwrap_or_else(|error| {
            panic!("{url} does not answer (is `make up` running?): {error}")
        });
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        for line in response.text().await.unwrap().lines() {
            let name = if let Some(rest) = line.strip_prefix("# TYPE ") {
                rest.split(' ').next().unwrap_or_default()
            } else if line.starts_with('#') || line.is_empty() {
                continue;
            } else {
                line.split(['{', ' ']).next().unwrap_or_default()
            };
            names.insert(family(name).to_string());
        }
    }
    names
}

/// Metric names registered in the Rust sources: string literals starting with `caas_`.
fn registered_in_sources() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root().join("crates"), root().join("services")];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|name| name == "tests" || name == "target")
            {
                continue;
            }
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for piece in code.split('"').skip(1).step_by(2) {
                if piece.starts_with("caas_")
                    && piece.chars().all(|character| {
                        character.is_ascii_lowercase()
                            || character.is_ascii_digit()
                            || character == '_'
                    })
                {
                    found.insert(piece.to_string());
                }
            }
        }
    }
    found
}

/// The documented metrics that only appear after rare events.
fn after_traffic() -> BTreeSet<String> {
    std::fs::read_to_string(observability().join("metrics-after-traffic.txt"))
        .unwrap()
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// Ordinary traffic: a customer's message through the simulator (signed, so it flows through
/// every worker), and one webhook with a wrong signature.
async fn drive_traffic(client: &reqwest::Client) {
    let customer = format!("49151{:08}", std::process::id() % 100_000_000);
    let played = client
        .post("http://127.0.0.1:8090/_sim/customers/send")
        .json(&serde_json::json!({
            "channel": "whatsapp",
            "customers": [customer],
            "messages": [{ "text": "hi" }],
        }))
        .send()
        .await
        .expect("the provider simulator answers on 127.0.0.1:8090");
    assert!(
        played.status().is_success(),
        "simulator: {}",
        played.status()
    );
    let refused = client
        .post("http://127.0.0.1:8080/webhooks/whatsapp")
        .header("content-type", "application/json")
        .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
        .body(r#"{"object":"whatsapp_business_account","entry":[]}"#)
        .send()
        .await
        .expect("ingest answers on 127.0.0.1:8080");
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
}

#[test]
fn every_query_names_a_metric() {
    let queries: Vec<_> = dashboard_queries()
        .into_iter()
        .chain(rule_queries())
        .collect();
    assert!(
        queries.len() > 40,
        "dashboards and rules found: {}",
        queries.len()
    );
    for (file, query) in &queries {
        let names = metric_names(query);
        assert!(
            !names.is_empty() || query.contains("up{"),
            "{file}: the query names no caas_ metric: {query}"
        );
    }
}

#[test]
fn every_service_is_scraped_locally_and_in_compose() {
    let local: BTreeSet<String> = local_targets().into_values().collect();
    let compose_config =
        std::fs::read_to_string(observability().join("prometheus/prometheus.yml")).unwrap();
    for entry in std::fs::read_dir(root().join("services")).unwrap() {
        let service = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            local.contains(&service),
            "prometheus.local.yml does not scrape {service}"
        );
        assert!(
            compose_config.contains(&format!("service: {service} ")),
            "prometheus.yml does not scrape {service}"
        );
    }
}

#[test]
fn the_documented_rare_metrics_are_registered_in_the_sources() {
    let registered = registered_in_sources();
    assert!(
        registered.contains("caas_kafka_records_processed_total"),
        "{registered:?}"
    );
    for name in after_traffic() {
        assert!(
            registered.contains(&name),
            "metrics-after-traffic.txt lists {name}, which no source registers (renamed?)"
        );
    }
}

#[tokio::test]
async fn dashboards_and_alerts_query_only_metrics_the_running_services_export() {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let targets = local_targets();
    let rare = after_traffic();
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, query) in dashboard_queries().into_iter().chain(rule_queries()) {
        for name in metric_names(&query) {
            wanted
                .entry(family(&name).to_string())
                .or_default()
                .insert(file.clone());
        }
    }
    drive_traffic(&client).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let missing = loop {
        let exported = exported(&client, &targets).await;
        let missing: BTreeMap<&String, &BTreeSet<String>> = wanted
            .iter()
            .filter(|(name, _)| !exported.contains(*name) && !rare.contains(*name))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing
                .into_iter()
                .map(|(name, files)| format!("{name} (queried in {files:?})"))
                .collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        missing.is_empty(),
        "queried but exported by no service at {:?}: {missing:#?}",
        targets.keys().collect::<Vec<_>>()
    );
}

#[test]
fn metric_names_skip_functions_labels_and_quoted_values() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, group) (rate(caas_kafka_handler_duration_seconds_bucket{group=~"caas_logger|x"}[5m]))) / on (group) caas_kafka_consumer_lag_records"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec![
            "caas_kafka_consumer_lag_records".to_string(),
            "caas_kafka_handler_duration_seconds_bucket".to_string()
        ]
    );
    assert_eq!(
        family("caas_kafka_handler_duration_seconds_bucket"),
        "caas_kafka_handler_duration_seconds"
    );
    assert_eq!(
        family("caas_ingest_requests_total"),
        "caas_ingest_requests_total"
    );
}
