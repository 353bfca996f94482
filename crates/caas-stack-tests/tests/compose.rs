//! `docker-compose.yml` can't be run here (no Docker engine), so these tests check offline what
//! can be checked: the file parses, every service it builds exists in the workspace, every
//! `CAAS_*` variable a service reads is set for it, every `${VAR}` it references is defined in
//! `.env.example`, no two services publish the same host port, every bind mount exists,
//! Prometheus and Grafana get the shipped provisioning and scrape every service, and the `tools`
//! profile has Kafka, MongoDB and Redis web UIs bound to localhost.
//!
//! Security: every Kafka listener requires SASL and every Kafka client authenticates, MongoDB
//! and Redis require credentials, no secret is written into the file (all come from `.env`),
//! and only ingest and the gateways publish ports unless the operator opts in (the `tools`
//! profile, or `docker-compose.ports.yml`, which publishes on 127.0.0.1 only).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compose() -> Value {
    compose_file("docker-compose.yml")
}

/// A compose file of the repository, parsed, with its merge keys resolved.
fn compose_file(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join(name)).unwrap();
    let mut value: Value =
        serde_yaml::from_str(&text).unwrap_or_else(|error| panic!("{name} parses: {error}"));
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
    for file in ["docker-compose.yml", "docker-compose.ports.yml"] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        for reference in text.split("${").skip(1) {
            let inner = reference.split('}').next().unwrap();
            if inner.contains(":-") {
                continue; // has a default
            }
            assert!(
                example.contains_key(inner),
                "{file} uses ${{{inner}}}, which .env.example does not define"
            );
        }
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

/// The `ports:` entries of a service as strings (`[ip:]host:container`).
fn ports(definition: &Value) -> Vec<String> {
    definition["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|port| match port {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            other => panic!("unexpected port entry {other:?}"),
        })
        .collect()
}

#[test]
fn no_two_services_publish_the_same_host_port() {
    let mut published: BTreeMap<String, String> = BTreeMap::new();
    // The opt-in override's ports count too: both files are used together.
    for file in ["docker-compose.yml", "docker-compose.ports.yml"] {
        let compose = compose_file(file);
        for (name, definition) in services(&compose) {
            let name = name.as_str().unwrap().to_string();
            for text in ports(definition) {
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

/// A service's environment as `name → value` strings (values as written: `${VAR}` unexpanded).
fn environment(definition: &Value) -> BTreeMap<String, String> {
    definition["environment"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(key, value)| {
            let value = match value {
                Value::String(text) => text.clone(),
                Value::Null => String::new(),
                other => serde_yaml::to_string(other).unwrap().trim().to_string(),
            };
            (key.as_str().unwrap().to_string(), value)
        })
        .collect()
}

/// A SASL/PLAIN JAAS line whose credentials all come from `.env`.
fn assert_plain_jaas_from_env(owner: &str, jaas: &str) {
    assert!(
        jaas.starts_with("org.apache.kafka.common.security.plain.PlainLoginModule required"),
        "{owner}: not a PLAIN login: {jaas}"
    );
    for piece in jaas
        .split("password=\"")
        .skip(1)
        .chain(jaas.split("=\"").skip(1))
    {
        let value = piece.split('"').next().unwrap();
        if value == "broker" {
            continue; // the brokers' user name
        }
        assert!(
            value.starts_with("${") && value.ends_with('}'),
            "{owner}: a credential in its JAAS config is written into the file: {value:?}"
        );
    }
}

#[test]
fn every_kafka_listener_requires_sasl_and_every_kafka_client_authenticates() {
    let compose = compose();
    let services = services(&compose);
    let brokers: Vec<(&str, BTreeMap<String, String>)> = services
        .iter()
        .map(|(name, definition)| (name.as_str().unwrap(), environment(definition)))
        .filter(|(name, _)| name.starts_with("kafka-"))
        .collect();
    assert_eq!(brokers.len(), 3);
    for (name, environment) in &brokers {
        let protocols: BTreeMap<&str, &str> = environment["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
            .split(',')
            .map(|pair| pair.split_once(':').expect("NAME:PROTOCOL"))
            .collect();
        for (listener, protocol) in &protocols {
            assert!(
                protocol.starts_with("SASL_"),
                "{name}: listener {listener} is {protocol}, which needs no authentication"
            );
            let jaas = format!("KAFKA_LISTENER_NAME_{listener}_PLAIN_SASL_JAAS_CONFIG");
            assert_plain_jaas_from_env(name, &environment[&jaas]);
        }
        // Every listener it opens is one of those (an unmapped name would not start; a
        // PLAINTEXT:// one would be open to anyone on the network).
        for listeners in ["KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS"] {
            for listener in environment[listeners].split(',') {
                let listener_name = listener.split("://").next().unwrap();
                assert!(
                    protocols.contains_key(listener_name),
                    "{name}: {listeners} opens {listener}, which has no SASL protocol"
                );
            }
        }
        assert_eq!(
            environment["KAFKA_SASL_ENABLED_MECHANISMS"], "PLAIN",
            "{name}"
        );
        assert_eq!(
            environment["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"],
            "PLAIN"
        );
        assert_eq!(
            environment["KAFKA_SASL_MECHANISM_CONTROLLER_PROTOCOL"],
            "PLAIN"
        );
        assert!(
            protocols.contains_key(environment["KAFKA_INTER_BROKER_LISTENER_NAME"].as_str())
                && protocols.contains_key(environment["KAFKA_CONTROLLER_LISTENER_NAMES"].as_str()),
            "{name}: the broker and controller listeners are SASL listeners"
        );
        // The apache/kafka image turns every KAFKA_* variable into a broker setting.
        for variable in environment.keys() {
            assert!(
                variable.starts_with("KAFKA_")
                    || variable == "CLUSTER_ID"
                    || variable.starts_with("HEALTHCHECK_"),
                "{name}: {variable} is neither a broker setting nor the health check's"
            );
        }
    }
    let health = serde_yaml::to_string(&services["kafka-1"]["healthcheck"]["test"]).unwrap();
    assert!(health.contains("--command-config"), "{health}");

    // Every client of the brokers authenticates, each the way its software is configured.
    let mut clients = BTreeSet::new();
    for (name, definition) in services {
        let name = name.as_str().unwrap();
        let environment = environment(definition);
        if name.starts_with("kafka-")
            || !environment
                .values()
                .any(|value| value.contains("kafka-1:9092"))
        {
            continue;
        }
        clients.insert(name.to_string());
        let authenticated = if built_service(definition).is_some() {
            environment["CAAS_KAFKA_SECURITY_PROTOCOL"] == "sasl_plaintext"
                && environment["CAAS_KAFKA_SASL_USERNAME"] == "${KAFKA_CLIENT_USER}"
                && environment["CAAS_KAFKA_SASL_PASSWORD"] == "${KAFKA_CLIENT_PASSWORD}"
        } else if let Some(protocol) = environment.get("APICURIO_KAFKA_COMMON_SECURITY_PROTOCOL") {
            assert_plain_jaas_from_env(
                name,
                &environment["APICURIO_KAFKA_COMMON_SASL_JAAS_CONFIG"],
            );
            protocol == "SASL_PLAINTEXT"
                && environment["APICURIO_KAFKA_COMMON_SASL_MECHANISM"] == "PLAIN"
        } else if let Some(protocol) =
            environment.get("KAFKA_CLUSTERS_0_PROPERTIES_SECURITY_PROTOCOL")
        {
            assert_plain_jaas_from_env(
                name,
                &environment["KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG"],
            );
            protocol == "SASL_PLAINTEXT"
                && environment["KAFKA_CLUSTERS_0_PROPERTIES_SASL_MECHANISM"] == "PLAIN"
        } else {
            false
        };
        assert!(
            authenticated,
            "{name} connects to Kafka without SASL: {environment:?}"
        );
    }
    for wanted in [
        "registry",
        "init-kafka",
        "ingest",
        "gateway-1",
        "logger",
        "ui-kafka",
    ] {
        assert!(
            clients.contains(wanted),
            "{wanted} is a Kafka client: {clients:?}"
        );
    }
}

#[test]
fn mongodb_and_redis_require_credentials() {
    let compose = compose();
    let services = services(&compose);
    for (name, definition) in services {
        let name = name.as_str().unwrap();
        let environment = environment(definition);
        if name.starts_with("mongo-") {
            let command = serde_yaml::to_string(&definition["command"]).unwrap();
            // A keyfile turns on authorization: no client gets in without a user.
            assert!(command.contains("--keyFile"), "{name}: {command}");
            assert!(!command.contains("--noauth"), "{name}: {command}");
            assert_eq!(
                environment["MONGO_INITDB_ROOT_PASSWORD"],
                "${MONGO_INITDB_ROOT_PASSWORD}"
            );
        }
        if let Some(uri) = environment.get("CAAS_MONGODB_URI") {
            assert!(
                uri.starts_with("mongodb://${CAAS_MONGO_APP_USER}:${CAAS_MONGO_APP_PASSWORD}@"),
                "{name}: {uri}"
            );
        }
        if let Some(uri) = environment.get("ME_CONFIG_MONGODB_URL") {
            assert!(
                uri.contains(":${MONGO_INITDB_ROOT_PASSWORD}@"),
                "{name}: {uri}"
            );
        }
        if let Some(url) = environment.get("CAAS_REDIS_URL") {
            assert!(
                url.starts_with("redis://:${REDIS_PASSWORD}@"),
                "{name}: {url}"
            );
        }
    }
    let redis = services["redis"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|part| part.as_str().unwrap())
        .collect::<Vec<_>>();
    let position = redis
        .iter()
        .position(|part| *part == "--requirepass")
        .expect("--requirepass");
    assert_eq!(redis[position + 1], "${REDIS_PASSWORD}");
    let init = std::fs::read_to_string(root().join("init/mongodb/init-replica-set.js")).unwrap();
    assert!(
        init.contains("createUser"),
        "the init job creates the application's user"
    );
}

#[test]
fn no_secret_is_written_into_the_compose_file() {
    let compose = compose();
    for (name, definition) in services(&compose) {
        for (variable, value) in environment(definition) {
            let secret = ["PASSWORD", "SECRET", "TOKEN", "KEY", "JAAS"]
                .iter()
                .any(|marker| variable.contains(marker));
            if secret && !value.is_empty() {
                assert!(
                    value.contains("${"),
                    "{name:?}: {variable} is written into docker-compose.yml; take it from .env"
                );
            }
        }
    }
}

#[test]
fn only_ingest_and_the_gateways_publish_ports_unless_the_operator_opts_in() {
    let compose = compose();
    let services = services(&compose);
    let mut published_by_default = BTreeSet::new();
    for (name, definition) in services {
        let name = name.as_str().unwrap().to_string();
        let opt_in = definition["profiles"]
            .as_sequence()
            .is_some_and(|profiles| !profiles.is_empty());
        let ports = ports(definition);
        if ports.is_empty() {
            continue;
        }
        if opt_in {
            for port in &ports {
                assert!(
                    port.starts_with("127.0.0.1:"),
                    "{name} (opt-in) publishes {port} beyond localhost"
                );
            }
        } else {
            published_by_default.insert(name);
        }
    }
    let expected: BTreeSet<String> = services
        .iter()
        .filter(|(name, definition)| {
            name.as_str() == Some("ingest")
                || built_service(definition).as_deref() == Some("gateway")
        })
        .map(|(name, _)| name.as_str().unwrap().to_string())
        .collect();
    assert_eq!(expected.len(), 3, "ingest and two gateways: {expected:?}");
    assert_eq!(
        published_by_default, expected,
        "only ingest and the gateways are published by default"
    );

    // The opt-in override publishes the registry, Prometheus and Grafana on loopback only.
    let override_file = compose_file("docker-compose.ports.yml");
    let overridden = override_file["services"].as_mapping().expect("services");
    for (name, definition) in overridden {
        let name = name.as_str().unwrap();
        assert!(
            !services[name].is_null(),
            "docker-compose.ports.yml names {name}, not a service"
        );
        for port in ports(definition) {
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name} publishes {port} beyond localhost"
            );
        }
    }
    for wanted in ["registry", "prometheus", "grafana"] {
        assert!(
            !ports(&overridden[wanted]).is_empty(),
            "docker-compose.ports.yml publishes {wanted}"
        );
    }
}
