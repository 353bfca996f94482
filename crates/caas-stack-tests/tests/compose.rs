//! `docker-compose.yml` can't be run here (no Docker engine), so these tests check offline what
//! can be checked: the file parses, every service it builds exists in the workspace, every
//! `CAAS_*` variable a service reads is set for it, every `${VAR}` it references is defined in
//! `.env.example`, no two services publish the same host port, every bind mount exists,
//! Prometheus and Grafana get the shipped provisioning and scrape every service, and the `tools`
//! profile has Kafka, MongoDB and Redis web UIs bound to localhost.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let mut value: Value = serde_yaml::from_str(&text).expect("docker-compose.yml parses");
    value.apply_merge().expect("merge keys resolve");
    // apply_merge resolves one level of `<<`; nested mappings need it too.
    fn merge_all(value: &mut Value) {
        let _ = value.apply_merge();
        match value {
            Value::Mapping(mapping) => mapping.values_mut().for_each(merge_all),
            Value::Sequence(sequence) => sequence.iter_mut().for_each(merge_all),
            _ => {}
        }
    }
    merge_all(&mut value);
    value
}

fn services(compose: &Value) -> &serde_yaml::Mapping {
    compose["services"]
        .as_mapping()
        .expect("services is a mapping")
}

/// The `CAAS_*` string literals in Rust sources under `directory`.
fn variables_read_in(directory: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![directory.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            let whole = std::fs::read_to_string(&path).unwrap();
            // Unit-test modules use made-up variables; only the code above them counts.
            let text = whole.split("#[cfg(test)]").next().unwrap_or_default();
            for piece in text.split('"').skip(1).step_by(2) {
                let is_variable = piece.starts_with("CAAS_")
                    && piece.len() > 5
                    && piece.chars().all(|character| {
                        character.is_ascii_uppercase()
                            || character.is_ascii_digit()
                            || character == '_'
                    });
                if is_variable {
                    found.insert(piece.to_string());
                }
            }
        }
    }
    found
}

/// Variables every service reads through `CommonConfig`.
fn common_variables() -> BTreeSet<String> {
    variables_read_in(&root().join("crates/caas-runtime/src"))
}

fn env_example() -> BTreeMap<String, String> {
    std::fs::read_to_string(root().join(".env.example"))
        .unwrap()
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && line.contains('='))
        .map(|line| {
            let (key, value) = line.split_once('=').unwrap();
            (key.trim().to_string(), value.trim().to_string())
        })
        .collect()
}

/// The workspace service a compose service builds, from its `SERVICE` build argument.
fn built_service(definition: &Value) -> Option<String> {
    definition["build"]["args"]["SERVICE"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn every_built_service_exists_in_the_workspace_and_every_workspace_service_is_deployed() {
    let compose = compose();
    let mut deployed = BTreeSet::new();
    for (name, definition) in services(&compose) {
        if let Some(service) = built_service(definition) {
            let path = if service == "ctl" {
                root().join("crates/caasctl")
            } else {
                root().join("services").join(&service)
            };
            assert!(
                path.join("Cargo.toml").exists(),
                "compose service {name:?} builds {service:?}, which is not in the workspace"
            );
            deployed.insert(service);
        }
    }
    for entry in std::fs::read_dir(root().join("services")).unwrap() {
        let service = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            deployed.contains(&service),
            "services/{service} is not in docker-compose.yml"
        );
    }
}

#[test]
fn every_variable_a_service_reads_is_set_for_it() {
    let compose = compose();
    let common = common_variables();
    assert!(common.contains("CAAS_KAFKA_BOOTSTRAP"), "{common:?}");
    for (name, definition) in services(&compose) {
        let Some(service) = built_service(definition) else {
            continue;
        };
        if service == "ctl" {
            continue;
        }
        let environment = definition["environment"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{name:?} has no environment"));
        let mut required = common.clone();
        required.extend(variables_read_in(
            &root().join("services").join(&service).join("src"),
        ));
        for variable in required
            .iter()
            .filter(|variable| !variable.ends_with("_FILE"))
        {
            assert!(
                environment.contains_key(Value::String(variable.clone())),
                "compose service {name:?} does not set {variable}"
            );
        }
    }
}

#[test]
fn env_example_holds_every_variable_the_services_and_compose_use() {
    let example = env_example();
    let mut read = common_variables();
    for entry in std::fs::read_dir(root().join("services")).unwrap() {
        read.extend(variables_read_in(&entry.unwrap().path().join("src")));
    }
    for variable in read.iter().filter(|variable| !variable.ends_with("_FILE")) {
        assert!(
            example.contains_key(variable),
            ".env.example lacks {variable}"
        );
    }
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    for reference in text.split("${").skip(1) {
        let inner = reference.split('}').next().unwrap();
        if inner.contains(":-") {
            continue; // has a default
        }
        assert!(
            example.contains_key(inner),
            "docker-compose.yml uses ${{{inner}}}, which .env.example does not define"
        );
    }
    for secret in [
        "CAAS_WHATSAPP_APP_SECRET",
        "CAAS_WHATSAPP_VERIFY_TOKEN",
        "CAAS_RBM_CLIENT_TOKEN",
        "CAAS_JWT_SECRET",
    ] {
        assert!(example.contains_key(secret), ".env.example lacks {secret}");
    }
}

#[test]
fn no_two_services_publish_the_same_host_port() {
    let compose = compose();
    let mut published: BTreeMap<String, String> = BTreeMap::new();
    for (name, definition) in services(&compose) {
        let name = name.as_str().unwrap().to_string();
        for port in definition["ports"].as_sequence().into_iter().flatten() {
            let text = match port {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                other => panic!("unexpected port entry {other:?} in {name}"),
            };
            // "[ip:]host:container" → "[ip:]host"
            let host = text
                .rsplit_once(':')
                .map(|(host, _)| host.to_string())
                .unwrap_or(text.clone());
            let host_port = host.rsplit(':').next().unwrap().to_string();
            if let Some(previous) = published.insert(host_port.clone(), name.clone()) {
                panic!("{name} and {previous} both publish host port {host_port}");
            }
        }
    }
    assert!(
        published.contains_key("8080"),
        "ingest is published: {published:?}"
    );
}

#[test]
fn the_production_shape_is_there() {
    let compose = compose();
    let services = services(&compose);
    let brokers = services
        .keys()
        .filter(|name| name.as_str().unwrap().starts_with("kafka-"))
        .count();
    assert_eq!(brokers, 3, "three Kafka brokers");
    let mongo = services
        .iter()
        .filter(|(name, _)| name.as_str().unwrap().starts_with("mongo-"))
        .collect::<Vec<_>>();
    assert_eq!(mongo.len(), 3, "a three-node replica set");
    for (name, definition) in &mongo {
        let command = serde_yaml::to_string(&definition["command"]).unwrap();
        assert!(
            command.contains("--replSet") && command.contains("--keyFile"),
            "{name:?}: {command}"
        );
    }
    let redis = serde_yaml::to_string(&services["redis"]["command"]).unwrap();
    assert!(
        redis.contains("--requirepass") && redis.contains("--appendonly"),
        "{redis}"
    );
    let gateways = services
        .iter()
        .filter(|(_, definition)| built_service(definition).as_deref() == Some("gateway"))
        .count();
    assert_eq!(gateways, 2, "two gateway instances");
    for (name, definition) in services {
        if name.as_str() == Some("init-kafka") || name.as_str() == Some("init-mongodb") {
            continue;
        }
        assert!(
            definition["restart"].as_str().is_some(),
            "{name:?} has a restart policy"
        );
        assert!(
            definition["healthcheck"]["test"].as_sequence().is_some(),
            "{name:?} has a health check"
        );
    }
}

#[test]
fn every_bind_mount_source_exists_in_the_repository() {
    let compose = compose();
    for (name, definition) in services(&compose) {
        for volume in definition["volumes"].as_sequence().into_iter().flatten() {
            let Some(text) = volume.as_str() else {
                continue;
            };
            let source = text.split(':').next().unwrap();
            if source.starts_with("./") {
                assert!(
                    root().join(source).exists(),
                    "{name:?} mounts {source}, which is not in the repository"
                );
            }
        }
    }
}

#[test]
fn prometheus_and_grafana_run_with_the_shipped_provisioning() {
    let compose = compose();
    let services = services(&compose);
    let mounts = |service: &str| -> Vec<String> {
        services[service]["volumes"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{service} has volumes"))
            .iter()
            .filter_map(|volume| volume.as_str().map(str::to_string))
            .collect()
    };
    for (service, wanted) in [
        (
            "prometheus",
            [
                "./deploy/observability/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml",
                "./deploy/observability/prometheus/rules:/etc/prometheus/rules",
            ],
        ),
        (
            "grafana",
            [
                "./deploy/observability/grafana/provisioning:/etc/grafana/provisioning",
                "./deploy/observability/grafana/dashboards:/var/lib/grafana/dashboards/caas",
            ],
        ),
    ] {
        assert!(
            services[service]["profiles"].is_null(),
            "{service} runs by default, not behind a profile"
        );
        for mount in wanted {
            assert!(
                mounts(service).iter().any(|found| found.starts_with(mount)),
                "{service} mounts {mount}: {:?}",
                mounts(service)
            );
        }
    }
    // The dashboards provider reads the directory Grafana gets the dashboards in.
    let provider = std::fs::read_to_string(
        root().join("deploy/observability/grafana/provisioning/dashboards/caas.yml"),
    )
    .unwrap();
    assert!(provider.contains("path: /var/lib/grafana/dashboards/caas"));
    // Every scrape target of the compose Prometheus is a compose service on the port the
    // service listens on (its CAAS_*_ADDR).
    let config: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("deploy/observability/prometheus/prometheus.yml"))
            .unwrap(),
    )
    .unwrap();
    let mut scraped = BTreeSet::new();
    for job in config["scrape_configs"].as_sequence().unwrap() {
        if job["job_name"].as_str() != Some("caas") {
            continue;
        }
        for group in job["static_configs"].as_sequence().unwrap() {
            for target in group["targets"].as_sequence().unwrap() {
                let (host, port) = target.as_str().unwrap().split_once(':').unwrap();
                let definition = &services[host];
                assert!(
                    !definition.is_null(),
                    "prometheus.yml scrapes {host}, not a compose service"
                );
                let environment = serde_yaml::to_string(&definition["environment"]).unwrap();
                assert!(
                    environment.contains(&format!("0.0.0.0:{port}")),
                    "{host} does not listen on {port}: {environment}"
                );
                scraped.insert(host.to_string());
            }
        }
    }
    for (name, definition) in services {
        if built_service(definition).is_some_and(|service| service != "ctl") {
            assert!(
                scraped.contains(name.as_str().unwrap()),
                "{name:?} is not scraped"
            );
        }
    }
}

#[test]
fn the_tools_profile_has_kafka_mongodb_and_redis_web_uis_on_localhost() {
    let compose = compose();
    let services = services(&compose);
    let tools: BTreeMap<String, &Value> = services
        .iter()
        .filter(|(_, definition)| {
            definition["profiles"]
                .as_sequence()
                .is_some_and(|profiles| profiles.iter().any(|profile| profile == "tools"))
        })
        .map(|(name, definition)| (name.as_str().unwrap().to_string(), definition))
        .collect();
    for (wanted, image) in [
        ("ui-kafka", "kafka-ui"),
        ("ui-mongodb", "mongo-express"),
        ("ui-redis", "redisinsight"),
    ] {
        let definition = tools
            .get(wanted)
            .unwrap_or_else(|| panic!("the tools profile has {wanted}: {:?}", tools.keys()));
        assert!(
            definition["image"].as_str().unwrap().contains(image),
            "{wanted}"
        );
        for port in definition["ports"].as_sequence().unwrap() {
            assert!(
                port.as_str().unwrap().starts_with("127.0.0.1:"),
                "{wanted} publishes {port:?} beyond localhost"
            );
        }
    }
    let kafka_ui = serde_yaml::to_string(&tools["ui-kafka"]["environment"]).unwrap();
    assert!(kafka_ui.contains("kafka-1:9092") && kafka_ui.contains("registry:8080"));
}
