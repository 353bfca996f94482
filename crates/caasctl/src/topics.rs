//! `caasctl topics apply` and `caasctl topics docs`.
//!
//! `apply` reads the cluster (brokers, topics, partition counts, replication, topic configs),
//! computes a [`Plan`] with the pure [`plan`] function, then executes it with rdkafka's
//! `AdminClient`: create missing topics, add partitions when the catalogue asks for more, and set
//! `retention.ms`, `cleanup.policy` and `min.insync.replicas`. Running it twice changes nothing the
//! second time. It refuses — before changing anything — to shrink a topic, which Kafka cannot do.
//!
//! The replication factor and `min.insync.replicas` in the catalogue are production values; they
//! are capped at the number of live brokers (a local single node gets 1 and 1), and said so.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::catalogue::{self, Catalogue};
use crate::docs;

/// The topic configs `apply` manages.
pub const RETENTION_MS: &str = "retention.ms";
/// See [`RETENTION_MS`].
pub const CLEANUP_POLICY: &str = "cleanup.policy";
/// See [`RETENTION_MS`].
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// `caasctl topics ...`
#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create and update the catalogue's topics on the cluster (idempotent).
    Apply(ApplyArgs),
    /// Generate topics/README.md and topics/asyncapi.yaml from the catalogue and the schemas.
    Docs(DocsArgs),
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// The topic catalogue (default: topics/catalogue.yaml in this or a parent directory).
    #[arg(long)]
    catalogue: Option<PathBuf>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "CAAS_KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Timeout of each admin request, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    timeout_ms: u64,
    /// Print what would change without changing anything.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct DocsArgs {
    /// The topic catalogue (default: topics/catalogue.yaml in this or a parent directory).
    #[arg(long)]
    catalogue: Option<PathBuf>,
    /// Write nothing; exit non-zero when a generated file is missing or out of date.
    #[arg(long)]
    check: bool,
}

/// Run `caasctl topics ...`.
pub async fn run(arguments: TopicsArgs) -> anyhow::Result<()> {
    match arguments.command {
        TopicsCommand::Apply(apply_arguments) => run_apply(apply_arguments).await,
        TopicsCommand::Docs(docs_arguments) => run_docs(&docs_arguments),
    }
}

fn run_docs(arguments: &DocsArgs) -> anyhow::Result<()> {
    let path = catalogue::locate(arguments.catalogue.as_deref())?;
    let loaded = catalogue::load(&path)?;
    let generated = docs::render(&loaded)?;
    if arguments.check {
        let stale = docs::stale_files(&loaded.root, &generated);
        if stale.is_empty() {
            println!(
                "{} and {} are up to date",
                docs::README_PATH,
                docs::ASYNCAPI_PATH
            );
            return Ok(());
        }
        anyhow::bail!(
            "{} out of date with topics/catalogue.yaml and schemas/; regenerate with `{}` and \
             commit the result",
            stale.join(" and "),
            docs::REGENERATE_COMMAND
        );
    }
    let written = docs::write(&loaded.root, &generated)?;
    if written.is_empty() {
        println!(
            "{} and {} already up to date",
            docs::README_PATH,
            docs::ASYNCAPI_PATH
        );
    }
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

async fn run_apply(arguments: ApplyArgs) -> anyhow::Result<()> {
    let path = catalogue::locate(arguments.catalogue.as_deref())?;
    let loaded = catalogue::load(&path)?;
    let timeout = Duration::from_millis(arguments.timeout_ms);
    let admin = admin_client(&arguments.bootstrap)?;
    let names: Vec<&str> = loaded
        .catalogue
        .topics
        .iter()
        .map(|topic| topic.name.as_str())
        .collect();
    let cluster = read_cluster(&admin, &names, timeout).await?;
    println!(
        "kafka: {} live broker(s) at {}",
        cluster.live_brokers, arguments.bootstrap
    );
    let plan = plan(&loaded.catalogue, &cluster).map_err(|problems| {
        anyhow::anyhow!(
            "nothing was changed, because:\n{}",
            problems
                .iter()
                .map(|problem| format!("  - {problem}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    for note in &plan.notes {
        println!("note: {note}");
    }
    if arguments.dry_run {
        for action in &plan.actions {
            println!("would {}", action.describe(false));
        }
        println!("dry run: nothing was changed");
        return Ok(());
    }
    execute(&admin, &plan, timeout, &mut |line| println!("{line}")).await?;
    println!("{}", plan.summary());
    Ok(())
}

/// An admin client for `bootstrap`.
pub fn admin_client(bootstrap: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    crate::kafka::client_config(bootstrap)?
        .set("client.id", "caasctl")
        .create()
        .map_err(|error| {
            anyhow::anyhow!("cannot create a kafka admin client for {bootstrap}: {error}")
        })
}

/// What the cluster has, as far as the plan is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// Brokers in the metadata answer.
    pub live_brokers: usize,
    /// The catalogue's topics that exist, by name.
    pub topics: BTreeMap<String, ExistingTopic>,
}

/// A topic as it exists on the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExistingTopic {
    /// Its partition count.
    pub partitions: usize,
    /// The smallest replica count among its partitions.
    pub replication_factor: usize,
    /// The effective value of every config the broker reported (any source).
    pub configs: BTreeMap<String, String>,
    /// The topic-level overrides (source: dynamic topic config). Kafka's AlterConfigs replaces
    /// all of them, so the ones the catalogue does not manage are written back unchanged.
    pub overrides: BTreeMap<String, String>,
}

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create a missing topic.
    Create {
        /// Topic name.
        topic: String,
        /// Partition count.
        partitions: usize,
        /// Replication factor after capping.
        replication_factor: usize,
        /// Topic configs to create it with.
        configs: BTreeMap<String, String>,
    },
    /// Grow a topic's partition count.
    AddPartitions {
        /// Topic name.
        topic: String,
        /// The current count.
        from: usize,
        /// The catalogue's count.
        to: usize,
    },
    /// Change topic configs.
    AlterConfigs {
        /// Topic name.
        topic: String,
        /// What changes: (config, current value, new value).
        changes: Vec<(String, Option<String>, String)>,
        /// The complete set of topic-level overrides to write (AlterConfigs is not incremental).
        overrides: BTreeMap<String, String>,
    },
}

impl Action {
    /// The change in words: "create ..." before, "created ..." after it was made.
    pub fn describe(&self, done: bool) -> String {
        let verb = |planned: &str, made: &str| if done { made } else { planned }.to_string();
        match self {
            Action::Create {
                topic,
                partitions,
                replication_factor,
                configs,
            } => {
                let settings: Vec<String> = configs
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect();
                format!(
                    "{} {topic}: {partitions} partitions, replication factor \
                     {replication_factor}, {}",
                    verb("create", "created"),
                    settings.join(", ")
                )
            }
            Action::AddPartitions { topic, from, to } => format!(
                "{} partitions to {topic}: {from} -> {to}",
                verb("add", "added")
            ),
            Action::AlterConfigs { topic, changes, .. } => {
                let described: Vec<String> = changes
                    .iter()
                    .map(|(key, from, to)| {
                        format!("{key} {} -> {to}", from.as_deref().unwrap_or("unset"))
                    })
                    .collect();
                format!(
                    "{} {topic}: {}",
                    verb("update", "updated"),
                    described.join(", ")
                )
            }
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.describe(false))
    }
}

/// What `apply` will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The changes, in execution order: creations, then partition growth, then configs.
    pub actions: Vec<Action>,
    /// Things the operator should know (capping, replication that needs a reassignment).
    pub notes: Vec<String>,
    /// How many catalogue topics there are.
    pub topic_count: usize,
}

impl Plan {
    /// True when the cluster already matches the catalogue.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// One line for the end of the output.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return format!(
                "nothing to change: all {} topics match the catalogue",
                self.topic_count
            );
        }
        let count = |wanted: fn(&Action) -> bool| self.actions.iter().filter(|a| wanted(a)).count();
        format!(
            "{} topics in the catalogue: {} created, {} with more partitions, {} with new configs",
            self.topic_count,
            count(|action| matches!(action, Action::Create { .. })),
            count(|action| matches!(action, Action::AddPartitions { .. })),
            count(|action| matches!(action, Action::AlterConfigs { .. })),
        )
    }
}

/// Compare the catalogue with the cluster. Pure. Errors (each saying why and what to do) mean
/// nothing may be changed.
pub fn plan(catalogue: &Catalogue, cluster: &ClusterState) -> Result<Plan, Vec<String>> {
    if cluster.live_brokers == 0 {
        return Err(vec![
            "the cluster reported no live broker; check --bootstrap and that Kafka is up"
                .to_string(),
        ]);
    }
    let mut creations = Vec::new();
    let mut growths = Vec::new();
    let mut alterations = Vec::new();
    let mut notes = Vec::new();
    let mut problems = Vec::new();

    let highest_factor = catalogue
        .topics
        .iter()
        .map(|topic| topic.replication_factor as usize)
        .max()
        .unwrap_or(0);
    if highest_factor > cluster.live_brokers {
        notes.push(format!(
            "only {} live broker(s): replication factors are capped at {} and \
             min.insync.replicas at the replication factor (the catalogue's production values \
             need {highest_factor} brokers)",
            cluster.live_brokers, cluster.live_brokers
        ));
    }

    for topic in &catalogue.topics {
        let wanted_factor = (topic.replication_factor as usize).min(cluster.live_brokers);
        match cluster.topics.get(&topic.name) {
            None => {
                let min_insync = (topic.min_insync_replicas as usize).min(wanted_factor);
                creations.push(Action::Create {
                    topic: topic.name.clone(),
                    partitions: topic.partitions as usize,
                    replication_factor: wanted_factor,
                    configs: managed_configs(topic, min_insync),
                });
            }
            Some(existing) => {
                let wanted_partitions = topic.partitions as usize;
                if wanted_partitions < existing.partitions {
                    problems.push(format!(
                        "topic `{}` has {} partitions but the catalogue asks for \
                         {wanted_partitions}: Kafka cannot remove partitions (and moving keys \
                         would break per-key order); set `partitions: {}` or more in the \
                         catalogue, or create a new topic version",
                        topic.name, existing.partitions, existing.partitions
                    ));
                } else if wanted_partitions > existing.partitions {
                    growths.push(Action::AddPartitions {
                        topic: topic.name.clone(),
                        from: existing.partitions,
                        to: wanted_partitions,
                    });
                }
                if existing.replication_factor < wanted_factor {
                    notes.push(format!(
                        "topic `{}` has replication factor {} but the catalogue asks for {} and \
                         {} broker(s) are live: raise it with a partition reassignment \
                         (kafka-reassign-partitions.sh); caasctl does not move replicas",
                        topic.name,
                        existing.replication_factor,
                        topic.replication_factor,
                        cluster.live_brokers
                    ));
                }
                let min_insync =
                    (topic.min_insync_replicas as usize).min(existing.replication_factor.max(1));
                let wanted = managed_configs(topic, min_insync);
                let changes: Vec<(String, Option<String>, String)> = wanted
                    .iter()
                    .filter(|(key, value)| {
                        !same_config(key, existing.configs.get(*key).map(String::as_str), value)
                    })
                    .map(|(key, value)| {
                        (
                            key.clone(),
                            existing.configs.get(key).cloned(),
                            value.clone(),
                        )
                    })
                    .collect();
                if !changes.is_empty() {
                    let mut overrides = existing.overrides.clone();
                    overrides.extend(wanted);
                    alterations.push(Action::AlterConfigs {
                        topic: topic.name.clone(),
                        changes,
                        overrides,
                    });
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut actions = creations;
    actions.extend(growths);
    actions.extend(alterations);
    Ok(Plan {
        actions,
        notes,
        topic_count: catalogue.topics.len(),
    })
}

fn managed_configs(topic: &catalogue::Topic, min_insync: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            CLEANUP_POLICY.to_string(),
            topic.cleanup_policy.as_kafka().to_string(),
        ),
        (MIN_INSYNC_REPLICAS.to_string(), min_insync.to_string()),
        (RETENTION_MS.to_string(), topic.retention_ms.to_string()),
    ])
}

/// Config values as Kafka compares them (`compact,delete` equals `delete, compact`).
fn same_config(key: &str, current: Option<&str>, wanted: &str) -> bool {
    let Some(current) = current else { return false };
    if key == CLEANUP_POLICY {
        let normalise = |value: &str| {
            let mut parts: Vec<String> = value
                .split(',')
                .map(|part| part.trim().to_string())
                .filter(|part| !part.is_empty())
                .collect();
            parts.sort();
            parts
        };
        return normalise(current) == normalise(wanted);
    }
    current.trim() == wanted
}

/// Read brokers, the named topics' partitions and replication, and their configs.
///
/// A topic created moments ago can be listed with an error (no leader yet) or be missing from
/// a broker's metadata cache; reading it as "missing" would make `apply` create it again. So a
/// listed-but-not-ready topic is waited for, up to `timeout`.
pub async fn read_cluster(
    admin: &AdminClient<DefaultClientContext>,
    names: &[&str],
    timeout: Duration,
) -> anyhow::Result<ClusterState> {
    let deadline = Instant::now() + timeout;
    let mut state = loop {
        let (state, not_ready) = read_metadata(admin, names, timeout)?;
        if not_ready.is_empty() {
            break state;
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "topics not ready after {} ms: {}; retry in a moment",
                timeout.as_millis(),
                not_ready.join(", ")
            );
        }
        tokio::time::sleep(METADATA_POLL).await;
    };
    if state.topics.is_empty() {
        return Ok(state);
    }
    let specifiers: Vec<ResourceSpecifier<'_>> = state
        .topics
        .keys()
        .map(|name| ResourceSpecifier::Topic(name.as_str()))
        .collect();
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let results = admin
        .describe_configs(specifiers.iter(), &options)
        .await
        .map_err(|error| anyhow::anyhow!("describing topic configs failed: {error}"))?;
    let mut described = Vec::new();
    for result in results {
        let resource = result
            .map_err(|code| anyhow::anyhow!("describing a topic's configs failed: {code}"))?;
        let rdkafka::admin::OwnedResourceSpecifier::Topic(name) = &resource.specifier else {
            continue;
        };
        let mut configs = BTreeMap::new();
        let mut overrides = BTreeMap::new();
        for entry in &resource.entries {
            let Some(value) = &entry.value else { continue };
            configs.insert(entry.name.clone(), value.clone());
            if entry.source == ConfigSource::DynamicTopic && !entry.is_sensitive {
                overrides.insert(entry.name.clone(), value.clone());
            }
        }
        described.push((name.clone(), configs, overrides));
    }
    for (name, configs, overrides) in described {
        if let Some(existing) = state.topics.get_mut(&name) {
            existing.configs = configs;
            existing.overrides = overrides;
        }
    }
    Ok(state)
}

/// How often to re-read metadata while waiting for topics to settle.
const METADATA_POLL: Duration = Duration::from_millis(200);

/// One metadata read: the named topics that exist and are ready, and those listed with an error
/// (as "name: error").
fn read_metadata(
    admin: &AdminClient<DefaultClientContext>,
    names: &[&str],
    timeout: Duration,
) -> anyhow::Result<(ClusterState, Vec<String>)> {
    // A blocking call, short and a few times per run: fine for a command-line tool.
    let metadata = admin
        .inner()
        .fetch_metadata(None, timeout)
        .map_err(|error| anyhow::anyhow!("kafka metadata request failed: {error}; is Kafka up?"))?;
    let mut state = ClusterState {
        live_brokers: metadata.brokers().len(),
        topics: BTreeMap::new(),
    };
    let mut not_ready = Vec::new();
    for topic in metadata.topics() {
        if !names.contains(&topic.name()) {
            continue;
        }
        if let Some(error) = topic.error() {
            let code = RDKafkaErrorCode::from(error);
            if code != RDKafkaErrorCode::UnknownTopicOrPartition {
                not_ready.push(format!("{}: {code}", topic.name()));
            }
            continue;
        }
        let leaderless = topic
            .partitions()
            .iter()
            .any(|partition| partition.leader() < 0 || partition.error().is_some());
        if topic.partitions().is_empty() || leaderless {
            not_ready.push(format!("{}: partitions without a leader", topic.name()));
            continue;
        }
        let replication_factor = topic
            .partitions()
            .iter()
            .map(|partition| partition.replicas().len())
            .min()
            .unwrap_or(0);
        state.topics.insert(
            topic.name().to_string(),
            ExistingTopic {
                partitions: topic.partitions().len(),
                replication_factor,
                ..ExistingTopic::default()
            },
        );
    }
    Ok((state, not_ready))
}

/// Wait until the metadata shows `expected` (topic, partition count) with leaders, so a run
/// that returns has changes the next run will see.
async fn wait_until_visible(
    admin: &AdminClient<DefaultClientContext>,
    expected: &[(&str, usize)],
    timeout: Duration,
) -> anyhow::Result<()> {
    let names: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
    let deadline = Instant::now() + timeout;
    loop {
        let (state, _) = read_metadata(admin, &names, timeout)?;
        let missing: Vec<String> = expected
            .iter()
            .filter(|(name, partitions)| {
                state
                    .topics
                    .get(*name)
                    .is_none_or(|topic| topic.partitions < *partitions)
            })
            .map(|(name, partitions)| format!("{name} ({partitions} partitions)"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the broker accepted the change but the metadata does not show it after {} ms: \
                 {}; run `caasctl topics apply` again",
                timeout.as_millis(),
                missing.join(", ")
            );
        }
        tokio::time::sleep(METADATA_POLL).await;
    }
}

/// Carry out `plan`, calling `report` with one line per change as soon as it is made (so a
/// failure part-way still shows what was done).
pub async fn execute(
    admin: &AdminClient<DefaultClientContext>,
    plan: &Plan,
    timeout: Duration,
    report: &mut (dyn FnMut(String) + Send),
) -> anyhow::Result<()> {
    let options = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    'actions: for action in &plan.actions {
        match action {
            Action::Create {
                topic,
                partitions: partitions_wanted,
                replication_factor,
                configs,
            } => {
                let partitions = i32::try_from(*partitions_wanted)?;
                let factor = i32::try_from(*replication_factor)?;
                let mut new_topic =
                    NewTopic::new(topic, partitions, TopicReplication::Fixed(factor));
                for (key, value) in configs {
                    new_topic = new_topic.set(key, value);
                }
                let results = admin
                    .create_topics([&new_topic], &options)
                    .await
                    .map_err(|error| anyhow::anyhow!("creating {topic} failed: {error}"))?;
                for result in results {
                    match result {
                        Ok(_) => {}
                        // Created by someone else between our read and now: the next run
                        // aligns its settings.
                        Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                            report(format!(
                                "{name} was created concurrently by someone else; run apply \
                                 again to align its settings"
                            ));
                            continue 'actions;
                        }
                        Err((name, code)) => anyhow::bail!("creating {name} failed: {code}"),
                    }
                }
                wait_until_visible(admin, &[(topic.as_str(), *partitions_wanted)], timeout).await?;
            }
            Action::AddPartitions { topic, to, .. } => {
                let growth = NewPartitions::new(topic, *to);
                let results =
                    admin
                        .create_partitions([&growth], &options)
                        .await
                        .map_err(|error| {
                            anyhow::anyhow!("adding partitions to {topic} failed: {error}")
                        })?;
                for result in results {
                    if let Err((name, code)) = result {
                        anyhow::bail!("adding partitions to {name} failed: {code}");
                    }
                }
                wait_until_visible(admin, &[(topic.as_str(), *to)], timeout).await?;
            }
            Action::AlterConfigs {
                topic, overrides, ..
            } => {
                let mut alteration = AlterConfig::new(ResourceSpecifier::Topic(topic));
                for (key, value) in overrides {
                    alteration = alteration.set(key, value);
                }
                let results =
                    admin
                        .alter_configs([&alteration], &options)
                        .await
                        .map_err(|error| {
                            anyhow::anyhow!("updating {topic}'s configs failed: {error}")
                        })?;
                for result in results {
                    if let Err((_, code)) = result {
                        anyhow::bail!("updating {topic}'s configs failed: {code}");
                    }
                }
            }
        }
        report(action.describe(true));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Catalogue {
        catalogue::parse(
            r#"
services:
  - {name: ingest, description: receives webhooks}
  - {name: logger, description: persists events}
keys:
  - {name: conversation, format: utf-8 string, pattern: "t:c:k", example: "a:w:1", description: d}
dead_letter_headers: []
topics:
  - name: inbound.messages.v1
    description: messages
    partitions: 12
    replication_factor: 3
    min_insync_replicas: 2
    retention_ms: 604800000
    cleanup_policy: delete
    key: conversation
    value: {schema: s.avsc, record: caas.v1.InboundMessage}
    producers: [ingest]
    consumers: [logger]
  - name: inbound.messages.v1.dlq
    description: poison
    dead_letter_for: inbound.messages.v1
    partitions: 3
    replication_factor: 3
    min_insync_replicas: 2
    retention_ms: 2592000000
    cleanup_policy: delete
    producers: [logger]
"#,
            "test",
        )
        .expect("valid catalogue")
    }

    fn existing(partitions: usize, factor: usize, configs: &[(&str, &str)]) -> ExistingTopic {
        let configs: BTreeMap<String, String> = configs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        ExistingTopic {
            partitions,
            replication_factor: factor,
            overrides: configs.clone(),
            configs,
        }
    }

    fn up_to_date(partitions: usize, retention: &str) -> ExistingTopic {
        existing(
            partitions,
            1,
            &[
                ("cleanup.policy", "delete"),
                ("min.insync.replicas", "1"),
                ("retention.ms", retention),
            ],
        )
    }

    #[test]
    fn on_an_empty_single_node_cluster_everything_is_created_with_capped_replication() {
        let cluster = ClusterState {
            live_brokers: 1,
            topics: BTreeMap::new(),
        };
        let plan = plan(&catalogue(), &cluster).expect("plan");
        assert_eq!(plan.actions.len(), 2);
        let Action::Create {
            topic,
            partitions,
            replication_factor,
            configs,
        } = &plan.actions[0]
        else {
            panic!("expected a creation, got {:?}", plan.actions[0]);
        };
        assert_eq!(topic, "inbound.messages.v1");
        assert_eq!((*partitions, *replication_factor), (12, 1));
        assert_eq!(configs["min.insync.replicas"], "1");
        assert_eq!(configs["retention.ms"], "604800000");
        assert_eq!(configs["cleanup.policy"], "delete");
        assert!(plan.notes[0].contains("capped at 1"), "{:?}", plan.notes);
    }

    #[test]
    fn a_matching_cluster_needs_nothing() {
        let cluster = ClusterState {
            live_brokers: 1,
            topics: BTreeMap::from([
                (
                    "inbound.messages.v1".to_string(),
                    up_to_date(12, "604800000"),
                ),
                (
                    "inbound.messages.v1.dlq".to_string(),
                    up_to_date(3, "2592000000"),
                ),
            ]),
        };
        let plan = plan(&catalogue(), &cluster).expect("plan");
        assert!(plan.is_empty(), "{plan:#?}");
        assert!(plan.summary().starts_with("nothing to change"));
    }

    #[test]
    fn production_replication_is_kept_with_three_brokers() {
        let cluster = ClusterState {
            live_brokers: 3,
            topics: BTreeMap::new(),
        };
        let plan = plan(&catalogue(), &cluster).expect("plan");
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
        let Action::Create {
            replication_factor,
            configs,
            ..
        } = &plan.actions[0]
        else {
            panic!("expected a creation");
        };
        assert_eq!(*replication_factor, 3);
        assert_eq!(configs["min.insync.replicas"], "2");
    }

    #[test]
    fn shrinking_is_refused_with_the_reason_and_nothing_is_planned() {
        let cluster = ClusterState {
            live_brokers: 1,
            topics: BTreeMap::from([(
                "inbound.messages.v1".to_string(),
                up_to_date(24, "604800000"),
            )]),
        };
        let problems = plan(&catalogue(), &cluster).expect_err("cannot shrink");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("has 24 partitions but the catalogue asks for 12"));
        assert!(problems[0].contains("Kafka cannot remove partitions"));
    }

    #[test]
    fn more_partitions_and_changed_configs_are_planned_and_other_overrides_kept() {
        let mut topic = up_to_date(6, "86400000");
        topic
            .overrides
            .insert("max.message.bytes".to_string(), "2097152".to_string());
        let cluster = ClusterState {
            live_brokers: 1,
            topics: BTreeMap::from([
                ("inbound.messages.v1".to_string(), topic),
                (
                    "inbound.messages.v1.dlq".to_string(),
                    up_to_date(3, "2592000000"),
                ),
            ]),
        };
        let plan = plan(&catalogue(), &cluster).expect("plan");
        assert_eq!(
            plan.actions[0],
            Action::AddPartitions {
                topic: "inbound.messages.v1".to_string(),
                from: 6,
                to: 12
            }
        );
        let Action::AlterConfigs {
            changes, overrides, ..
        } = &plan.actions[1]
        else {
            panic!("expected a config change, got {:?}", plan.actions[1]);
        };
        assert_eq!(
            changes,
            &vec![(
                "retention.ms".to_string(),
                Some("86400000".to_string()),
                "604800000".to_string()
            )]
        );
        assert_eq!(overrides["max.message.bytes"], "2097152");
        assert_eq!(overrides["retention.ms"], "604800000");
    }

    #[test]
    fn cleanup_policy_order_does_not_matter() {
        assert!(same_config(
            CLEANUP_POLICY,
            Some("delete,compact"),
            "compact,delete"
        ));
        assert!(!same_config(
            CLEANUP_POLICY,
            Some("delete"),
            "compact,delete"
        ));
        assert!(!same_config(RETENTION_MS, None, "1"));
    }

    #[test]
    fn under_replicated_existing_topics_get_a_note_not_an_error() {
        let cluster = ClusterState {
            live_brokers: 3,
            topics: BTreeMap::from([(
                "inbound.messages.v1".to_string(),
                up_to_date(12, "604800000"),
            )]),
        };
        let plan = plan(&catalogue(), &cluster).expect("plan");
        assert!(
            plan.notes
                .iter()
                .any(|note| note.contains("partition reassignment")),
            "{:?}",
            plan.notes
        );
    }
}
