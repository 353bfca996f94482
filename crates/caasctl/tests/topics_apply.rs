//! `topics apply` against the real local Kafka, on throwaway topics deleted afterwards: creates
//! what is missing, changes nothing the second time, grows partitions and updates configs, and
//! refuses to shrink.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use caasctl::catalogue;
use caasctl::topics::{self, Action};
use common::{unique, Scratch};
use rdkafka::admin::AdminOptions;

const TIMEOUT: Duration = Duration::from_secs(15);

fn bootstrap() -> String {
    std::env::var("CAAS_KAFKA_BOOTSTRAP")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:9092".to_string())
}

fn catalogue_text(prefix: &str, partitions: u32, retention_ms: u64) -> String {
    format!(
        r#"
services:
  - {{name: producer, description: writes things}}
  - {{name: consumer, description: reads things}}
keys:
  - {{name: thing, format: utf-8 string, pattern: "<id>", example: "1", description: a thing}}
dead_letter_headers: []
topics:
  - name: {prefix}.things.v1
    description: things
    partitions: {partitions}
    replication_factor: 3
    min_insync_replicas: 2
    retention_ms: {retention_ms}
    cleanup_policy: delete
    key: thing
    value: {{schema: schemas/caas.test.Thing.avsc, record: caas.test.Thing}}
    producers: [producer]
    consumers: [consumer]
  - name: {prefix}.things.v1.dlq
    description: poison things
    dead_letter_for: {prefix}.things.v1
    partitions: 1
    replication_factor: 3
    min_insync_replicas: 2
    retention_ms: 7200000
    cleanup_policy: delete
    producers: [consumer]
"#
    )
}

fn topic_names(prefix: &str) -> [String; 2] {
    [
        format!("{prefix}.things.v1"),
        format!("{prefix}.things.v1.dlq"),
    ]
}

/// Best effort: the topics are throwaway, a leftover does no harm beyond clutter.
async fn delete_topics(prefix: &str) {
    let admin = topics::admin_client(&bootstrap()).expect("admin client");
    let names = topic_names(prefix);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let _ = admin
        .delete_topics(
            &names,
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await;
}

struct Throwaway {
    scratch: Scratch,
    prefix: String,
}

impl Throwaway {
    fn new(prefix: &str) -> Self {
        let scratch = Scratch::new("caasctl-topics");
        scratch.write(
            "schemas/caas.test.Thing.avsc",
            r#"{"type": "record", "name": "Thing", "namespace": "caas.test", "fields": [
                {"name": "id", "type": "string"}]}"#,
        );
        Self {
            scratch,
            prefix: prefix.to_string(),
        }
    }

    fn topics(&self) -> [String; 2] {
        topic_names(&self.prefix)
    }

    fn write_catalogue(&self, partitions: u32, retention_ms: u64) -> catalogue::LoadedCatalogue {
        self.scratch.write(
            "topics/catalogue.yaml",
            &catalogue_text(&self.prefix, partitions, retention_ms),
        );
        catalogue::load(&self.scratch.path.join("topics/catalogue.yaml")).expect("catalogue")
    }

    async fn plan(&self, loaded: &catalogue::LoadedCatalogue) -> Result<topics::Plan, Vec<String>> {
        let admin = topics::admin_client(&bootstrap()).expect("admin client");
        let names = self.topics();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let cluster = topics::read_cluster(&admin, &names, TIMEOUT)
            .await
            .expect("read the cluster (is the local stack up? `make up`)");
        topics::plan(&loaded.catalogue, &cluster)
    }

    /// Metadata and configs reach the broker's caches shortly after a change: poll until the
    /// plan is empty.
    async fn wait_until_applied(&self, loaded: &catalogue::LoadedCatalogue) {
        let started = Instant::now();
        loop {
            let plan = self.plan(loaded).await.expect("plan");
            if plan.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the cluster never matched the catalogue; still planned: {:?}",
                plan.actions
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    fn run_binary(&self) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_caasctl"))
            .args([
                "topics",
                "apply",
                "--bootstrap",
                &bootstrap(),
                "--catalogue",
            ])
            .arg(self.scratch.path.join("topics/catalogue.yaml"))
            .output()
            .expect("run caasctl");
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    }
}

#[tokio::test]
async fn apply_creates_then_changes_nothing_then_grows_and_refuses_to_shrink() {
    let prefix = unique("caasctl-test");
    let throwaway = Throwaway::new(&prefix);
    let outcome = tokio::spawn(async move {
        let [topic, dead_letter] = throwaway.topics();
        throwaway.write_catalogue(2, 3_600_000);

        // first run: both topics are created, replication capped on the local single node
        let (ok, output) = throwaway.run_binary();
        assert!(ok, "{output}");
        assert!(output.contains(&format!("created {topic}: 2 partitions")), "{output}");
        assert!(output.contains(&format!("created {dead_letter}: 1 partitions")), "{output}");
        assert!(output.contains("min.insync.replicas="), "{output}");

        // second run, straight away: nothing to do (apply returned only once its changes were
        // visible, so this run does not see half-created topics)
        let (ok, output) = throwaway.run_binary();
        assert!(ok, "{output}");
        assert!(output.contains("nothing to change: all 2 topics match"), "{output}");
        assert!(!output.contains("created"), "{output}");

        // more partitions and a new retention
        let loaded = throwaway.write_catalogue(4, 7_200_000);
        let plan = throwaway.plan(&loaded).await.expect("plan");
        assert!(plan.actions.contains(&Action::AddPartitions {
            topic: topic.clone(),
            from: 2,
            to: 4
        }));
        assert!(plan.actions.iter().any(|action| matches!(
            action,
            Action::AlterConfigs { topic: altered, changes, .. }
                if altered == &topic && changes.iter().any(|(key, _, value)| key == "retention.ms" && value == "7200000")
        )));
        let admin = topics::admin_client(&bootstrap()).unwrap();
        let mut lines = Vec::new();
        topics::execute(&admin, &plan, TIMEOUT, &mut |line| lines.push(line))
            .await
            .expect("execute");
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with(&format!("added partitions to {topic}: 2 -> 4")), "{lines:?}");
        throwaway.wait_until_applied(&loaded).await;

        // fewer partitions than the topic has: refused, with the reason
        let loaded = throwaway.write_catalogue(3, 7_200_000);
        let problems = throwaway.plan(&loaded).await.expect_err("cannot shrink");
        assert!(problems[0].contains("has 4 partitions but the catalogue asks for 3"));
        let (ok, output) = throwaway.run_binary();
        assert!(!ok, "shrinking must fail: {output}");
        assert!(output.contains("nothing was changed"), "{output}");
        assert!(output.contains("Kafka cannot remove partitions"), "{output}");
    })
    .await;
    delete_topics(&prefix).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}
