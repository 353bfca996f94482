//! The topic catalogue (`topics/catalogue.yaml`): the single declarative description of every
//! Kafka topic — partitions, replication, retention, cleanup policy, key, value schema, who
//! produces and who consumes. `topics apply`, `schemas apply`, `schemas check` and `topics docs`
//! all start from [`load`], so a catalogue that does not validate stops every one of them.
//!
//! Validation is split in two: [`parse`] checks the YAML and the rules between topics (pure, no
//! I/O); [`load`] also reads every value schema from disk and checks it parses and declares the
//! record the catalogue names. Every problem found is reported at once, each saying what to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use apache_avro::Schema;
use serde::Deserialize;

/// Where the catalogue lives, relative to the repository root.
pub const DEFAULT_CATALOGUE: &str = "topics/catalogue.yaml";

/// The suffix of every dead-letter topic (`<topic>.dlq`), as `caas-kafka` produces it.
pub const DLQ_SUFFIX: &str = ".dlq";

/// Kafka refuses topic names longer than this.
const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// The whole catalogue file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// Why the partition counts and retentions are what they are (Markdown, rendered into the
    /// README's "Sizing" section).
    #[serde(default)]
    pub sizing: String,
    /// Everything that produces or consumes: the CAAS services and external parties, so the
    /// `producers`/`consumers` lists can be checked and the docs can say what each one does.
    pub services: Vec<Service>,
    /// The kinds of record key the topics use, described once and referenced by name.
    pub keys: Vec<KeyKind>,
    /// Headers a dead-lettered record carries on top of its original headers.
    pub dead_letter_headers: Vec<Header>,
    /// Every topic, in the order the docs list them.
    pub topics: Vec<Topic>,
}

/// A producer or consumer of topics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The name used in `producers` and `consumers` (a CAAS service is named after its
    /// directory under `services/`).
    pub name: String,
    /// What it does with the topics, in one or two sentences.
    pub description: String,
    /// True for parties outside CAAS (an integrator's systems): they appear in the docs but no
    /// CAAS process runs for them.
    #[serde(default)]
    pub external: bool,
}

/// A kind of record key, e.g. the conversation key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyKind {
    /// The name topics refer to in `key:`.
    pub name: String,
    /// How the key is encoded on the wire.
    pub format: KeyFormat,
    /// Its structure, e.g. `<tenant_id>:<channel>:<customer_id>`.
    pub pattern: String,
    /// A realistic example value.
    pub example: String,
    /// What it identifies and why records are keyed by it.
    pub description: String,
}

/// How a record key is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KeyFormat {
    /// The key's UTF-8 bytes, no schema, no framing.
    #[serde(rename = "utf-8 string")]
    Utf8String,
}

impl KeyFormat {
    /// The wording used in the docs.
    pub fn describe(self) -> &'static str {
        match self {
            KeyFormat::Utf8String => "UTF-8 string, no schema",
        }
    }
}

/// A documented Kafka record header.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The header name.
    pub name: String,
    /// What its value is and how it is encoded.
    pub description: String,
}

/// One topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    /// The Kafka topic name; regular topics end with their major version (`.v1`).
    pub name: String,
    /// What the topic carries and what it is for; required (integrators read it in the docs).
    #[serde(default)]
    pub description: String,
    /// The partition count in every environment; it can grow, never shrink.
    pub partitions: u32,
    /// The production replication factor; `topics apply` caps it at the live broker count.
    pub replication_factor: u32,
    /// `min.insync.replicas` in production; capped at the effective replication factor.
    pub min_insync_replicas: u32,
    /// `retention.ms`; -1 keeps records forever.
    pub retention_ms: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// The name of a [`KeyKind`]; absent on dead-letter topics, which keep the original key.
    #[serde(default)]
    pub key: Option<String>,
    /// The value's Avro schema; absent on dead-letter topics, whose value is the original bytes.
    #[serde(default)]
    pub value: Option<ValueSchema>,
    /// On a dead-letter topic: the topic whose poison records it keeps.
    #[serde(default)]
    pub dead_letter_for: Option<String>,
    /// Services that write to the topic.
    #[serde(default)]
    pub producers: Vec<String>,
    /// Services that read the topic, each with its own consumer group.
    #[serde(default)]
    pub consumers: Vec<String>,
}

impl Topic {
    /// True for a `<topic>.dlq` topic.
    pub fn is_dead_letter(&self) -> bool {
        self.dead_letter_for.is_some()
    }

    /// The registry subject of the value schema (`<topic>-value`, Confluent's TopicNameStrategy).
    pub fn value_subject(&self) -> String {
        format!("{}-value", self.name)
    }
}

/// Kafka's `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CleanupPolicy {
    /// Delete segments older than the retention.
    #[serde(rename = "delete")]
    Delete,
    /// Keep the latest record per key.
    #[serde(rename = "compact")]
    Compact,
    /// Both: compact, and delete what is older than the retention.
    #[serde(rename = "compact,delete")]
    CompactDelete,
}

impl CleanupPolicy {
    /// The value of Kafka's `cleanup.policy` topic config.
    pub fn as_kafka(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

/// Where a topic's value schema is and which record it declares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueSchema {
    /// The `.avsc` file, relative to the repository root (e.g. `schemas/caas.v1.InboundMessage.avsc`).
    pub schema: String,
    /// The full name of the top-level record in it (e.g. `caas.v1.InboundMessage`).
    pub record: String,
}

/// A value schema read from disk.
#[derive(Debug, Clone)]
pub struct LoadedSchema {
    /// The path as written in the catalogue (relative to the repository root).
    pub path: String,
    /// The file's text, exactly as on disk (this is what `schemas apply` registers).
    pub text: String,
    /// The parsed schema.
    pub schema: Schema,
}

/// A validated catalogue together with its value schemas.
#[derive(Debug, Clone)]
pub struct LoadedCatalogue {
    /// The repository root: catalogue paths are relative to it.
    pub root: PathBuf,
    /// The catalogue itself.
    pub catalogue: Catalogue,
    /// Every value schema, by its catalogue path.
    pub schemas: BTreeMap<String, LoadedSchema>,
}

impl LoadedCatalogue {
    /// The loaded value schema of `topic`, if it has one.
    pub fn value_schema(&self, topic: &Topic) -> Option<&LoadedSchema> {
        topic
            .value
            .as_ref()
            .and_then(|value| self.schemas.get(&value.schema))
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.catalogue
            .topics
            .iter()
            .find(|topic| topic.name == name)
    }
}

/// Why a catalogue could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// No `--catalogue` given and none found by walking up from the current directory.
    #[error(
        "no topic catalogue found: looked for {DEFAULT_CATALOGUE} in {start} and its parent \
         directories; run from the repository or pass --catalogue <path>"
    )]
    NotFound {
        /// Where the search started.
        start: String,
    },
    /// The file could not be read.
    #[error("cannot read the topic catalogue {path}: {cause}")]
    Read {
        /// The catalogue path.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// Not YAML, or not the catalogue's shape (unknown keys, missing or mistyped fields).
    #[error("{path} is not a valid topic catalogue: {cause}")]
    Syntax {
        /// The catalogue path.
        path: String,
        /// serde_yaml's message, which names the key and the line.
        cause: serde_yaml::Error,
    },
    /// The YAML has the right shape but breaks the catalogue's rules.
    #[error("{path} has {} problem(s):\n{}", problems.len(), bullet_list(problems))]
    Invalid {
        /// The catalogue path.
        path: String,
        /// Every problem, each saying what to fix.
        problems: Vec<String>,
    },
}

impl CatalogueError {
    /// The individual problems (one for syntax and I/O errors).
    pub fn problems(&self) -> Vec<String> {
        match self {
            CatalogueError::Invalid { problems, .. } => problems.clone(),
            other => vec![other.to_string()],
        }
    }
}

fn bullet_list(problems: &[String]) -> String {
    problems
        .iter()
        .map(|problem| format!("  - {problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The catalogue to use: `explicit` when given, else `topics/catalogue.yaml` in the current
/// directory or the nearest parent that has one (so `caasctl` works from any subdirectory).
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, CatalogueError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let start = std::env::current_dir().map_err(|cause| CatalogueError::Read {
        path: DEFAULT_CATALOGUE.to_string(),
        cause,
    })?;
    start
        .ancestors()
        .map(|directory| directory.join(DEFAULT_CATALOGUE))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| CatalogueError::NotFound {
            start: start.display().to_string(),
        })
}

/// Parse and validate catalogue text without touching the disk. `source_name` names the file in
/// error messages.
pub fn parse(text: &str, source_name: &str) -> Result<Catalogue, CatalogueError> {
    let catalogue: Catalogue =
        serde_yaml::from_str(text).map_err(|cause| CatalogueError::Syntax {
            path: source_name.to_string(),
            cause,
        })?;
    let problems = validate(&catalogue);
    if problems.is_empty() {
        Ok(catalogue)
    } else {
        Err(CatalogueError::Invalid {
            path: source_name.to_string(),
            problems,
        })
    }
}

/// Read the catalogue at `path`, validate it, and load every value schema. Schema paths are
/// relative to the repository root, the parent of the catalogue's directory.
pub fn load(path: &Path) -> Result<LoadedCatalogue, CatalogueError> {
    let display = path.display().to_string();
    let absolute = path.canonicalize().map_err(|cause| CatalogueError::Read {
        path: display.clone(),
        cause,
    })?;
    let root = absolute
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let text = std::fs::read_to_string(&absolute).map_err(|cause| CatalogueError::Read {
        path: display.clone(),
        cause,
    })?;
    let catalogue: Catalogue =
        serde_yaml::from_str(&text).map_err(|cause| CatalogueError::Syntax {
            path: display.clone(),
            cause,
        })?;
    // Report the rule problems and the schema file problems together.
    let mut problems = validate(&catalogue);
    let (schemas, file_problems) = load_schemas(&catalogue, &root);
    problems.extend(file_problems);
    if !problems.is_empty() {
        return Err(CatalogueError::Invalid {
            path: display,
            problems,
        });
    }
    Ok(LoadedCatalogue {
        root,
        catalogue,
        schemas,
    })
}

/// Read, parse and check each value schema file; the problems say which topic and file.
fn load_schemas(
    catalogue: &Catalogue,
    root: &Path,
) -> (BTreeMap<String, LoadedSchema>, Vec<String>) {
    let mut schemas = BTreeMap::new();
    let mut problems = Vec::new();
    for topic in &catalogue.topics {
        let Some(value) = &topic.value else { continue };
        if schemas.contains_key(&value.schema) {
            continue;
        }
        let file = root.join(&value.schema);
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(error) => {
                problems.push(format!(
                    "topic `{}`: value schema `{}` cannot be read ({error}; looked at {}): fix \
                     the path (relative to the repository root) or add the file",
                    topic.name,
                    value.schema,
                    file.display()
                ));
                continue;
            }
        };
        let schema = match Schema::parse_str(&text) {
            Ok(schema) => schema,
            Err(error) => {
                problems.push(format!(
                    "topic `{}`: value schema `{}` is not a valid Avro schema: {error}",
                    topic.name, value.schema
                ));
                continue;
            }
        };
        match &schema {
            Schema::Record(record) => {
                let declared = record.name.fullname(None);
                if declared != value.record {
                    problems.push(format!(
                        "topic `{}`: the catalogue says `record: {}` but `{}` declares `{declared}`; \
                         make them agree",
                        topic.name, value.record, value.schema
                    ));
                }
            }
            _ => problems.push(format!(
                "topic `{}`: value schema `{}` must be an Avro record at the top level",
                topic.name, value.schema
            )),
        }
        schemas.insert(
            value.schema.clone(),
            LoadedSchema {
                path: value.schema.clone(),
                text,
                schema,
            },
        );
    }
    (schemas, problems)
}

/// Every rule of the catalogue that can be checked without the disk. Returns the problems, each
/// naming the topic (or service, key, header) and what to change.
pub fn validate(catalogue: &Catalogue) -> Vec<String> {
    let mut problems = Vec::new();

    let service_names = unique_names(
        catalogue
            .services
            .iter()
            .map(|service| service.name.as_str()),
        "service",
        &mut problems,
    );
    for service in &catalogue.services {
        if service.description.trim().is_empty() {
            problems.push(format!(
                "service `{}`: add a `description` of what it does with the topics",
                service.name
            ));
        }
    }
    let key_names = unique_names(
        catalogue.keys.iter().map(|key| key.name.as_str()),
        "key",
        &mut problems,
    );
    unique_names(
        catalogue
            .dead_letter_headers
            .iter()
            .map(|header| header.name.as_str()),
        "dead-letter header",
        &mut problems,
    );
    unique_names(
        catalogue.topics.iter().map(|topic| topic.name.as_str()),
        "topic",
        &mut problems,
    );

    let topics_by_name: BTreeMap<&str, &Topic> = catalogue
        .topics
        .iter()
        .map(|topic| (topic.name.as_str(), topic))
        .collect();
    let dead_letter_targets: BTreeSet<&str> = catalogue
        .topics
        .iter()
        .filter_map(|topic| topic.dead_letter_for.as_deref())
        .collect();

    for topic in &catalogue.topics {
        let name = &topic.name;
        if let Some(problem) = topic_name_problem(name) {
            problems.push(format!("topic `{name}`: {problem}"));
        }
        if topic.description.trim().is_empty() {
            problems.push(format!(
                "topic `{name}`: add a `description` saying what the topic carries and what it is \
                 for (integrators read it in topics/README.md)"
            ));
        }
        check_sizes(topic, &mut problems);
        for (role, services) in [
            ("producer", &topic.producers),
            ("consumer", &topic.consumers),
        ] {
            let mut seen = BTreeSet::new();
            for service in services {
                if !service_names.contains(service.as_str()) {
                    problems.push(format!(
                        "topic `{name}`: {role} `{service}` is not listed under `services`; add it \
                         there or fix the name"
                    ));
                }
                if !seen.insert(service.as_str()) {
                    problems.push(format!(
                        "topic `{name}`: {role} `{service}` is listed twice"
                    ));
                }
            }
        }
        match &topic.dead_letter_for {
            Some(original_name) => {
                check_dead_letter_topic(topic, original_name, &topics_by_name, &mut problems)
            }
            None => check_regular_topic(topic, &key_names, &dead_letter_targets, &mut problems),
        }
    }
    problems
}

/// Collects names, reporting each duplicate and each empty name once.
fn unique_names<'a>(
    names: impl Iterator<Item = &'a str>,
    what: &str,
    problems: &mut Vec<String>,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut reported = BTreeSet::new();
    for name in names {
        if name.trim().is_empty() {
            problems.push(format!("a {what} has an empty `name`"));
            continue;
        }
        if !seen.insert(name) && reported.insert(name) {
            problems.push(format!(
                "{what} `{name}` is defined more than once; names must be unique, remove or rename \
                 the duplicate"
            ));
        }
    }
    seen
}

fn topic_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return None; // reported by unique_names
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return Some(format!(
            "the name is {} characters long; Kafka allows at most {MAX_TOPIC_NAME_LENGTH}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|character| !(character.is_ascii_alphanumeric() || "._-".contains(*character)))
    {
        return Some(format!(
            "`{bad}` is not allowed in a Kafka topic name (use ASCII letters, digits, `.`, `_`, `-`)"
        ));
    }
    None
}

fn check_sizes(topic: &Topic, problems: &mut Vec<String>) {
    let name = &topic.name;
    if topic.partitions == 0 {
        problems.push(format!("topic `{name}`: `partitions` must be at least 1"));
    }
    if topic.replication_factor == 0 {
        problems.push(format!(
            "topic `{name}`: `replication_factor` must be at least 1"
        ));
    }
    if topic.min_insync_replicas == 0 || topic.min_insync_replicas > topic.replication_factor {
        problems.push(format!(
            "topic `{name}`: `min_insync_replicas` ({}) must be between 1 and `replication_factor` \
             ({}); above it, every acks=all write would fail",
            topic.min_insync_replicas, topic.replication_factor
        ));
    }
    if topic.retention_ms != -1 && topic.retention_ms <= 0 {
        problems.push(format!(
            "topic `{name}`: `retention_ms` ({}) must be positive, or -1 to keep records forever",
            topic.retention_ms
        ));
    }
}

fn check_regular_topic(
    topic: &Topic,
    key_names: &BTreeSet<&str>,
    dead_letter_targets: &BTreeSet<&str>,
    problems: &mut Vec<String>,
) {
    let name = &topic.name;
    if name.ends_with(DLQ_SUFFIX) {
        problems.push(format!(
            "topic `{name}`: its name ends with `{DLQ_SUFFIX}` but it has no `dead_letter_for`; \
             add `dead_letter_for: <original topic>`"
        ));
    } else if !has_major_version_suffix(name) {
        problems.push(format!(
            "topic `{name}`: end the name with its major version (e.g. `{name}.v1`): a breaking \
             change is a new topic"
        ));
    }
    match &topic.key {
        None => problems.push(format!(
            "topic `{name}`: add `key:` naming one of the `keys` (records are keyed so that order \
             holds per key)"
        )),
        Some(key) if !key_names.contains(key.as_str()) => problems.push(format!(
            "topic `{name}`: key `{key}` is not defined under `keys`; define it or fix the name"
        )),
        Some(_) => {}
    }
    if topic.value.is_none() {
        problems.push(format!(
            "topic `{name}`: add `value: {{schema: schemas/<file>.avsc, record: <full name>}}`"
        ));
    }
    if topic.producers.is_empty() {
        problems.push(format!(
            "topic `{name}`: list at least one producer (who writes to it?)"
        ));
    }
    if !topic.consumers.is_empty() && !dead_letter_targets.contains(name.as_str()) {
        problems.push(format!(
            "topic `{name}` is consumed but has no dead-letter topic: add a topic \
             `{name}{DLQ_SUFFIX}` with `dead_letter_for: {name}` (consumers send poison records there)"
        ));
    }
}

fn check_dead_letter_topic(
    topic: &Topic,
    original_name: &str,
    topics_by_name: &BTreeMap<&str, &Topic>,
    problems: &mut Vec<String>,
) {
    let name = &topic.name;
    let expected_name = format!("{original_name}{DLQ_SUFFIX}");
    if *name != expected_name {
        problems.push(format!(
            "topic `{name}`: a dead-letter topic for `{original_name}` must be named \
             `{expected_name}` (consumers derive the name)"
        ));
    }
    if topic.key.is_some() {
        problems.push(format!(
            "topic `{name}`: remove `key`: a dead-letter record keeps the original record's key"
        ));
    }
    if topic.value.is_some() {
        problems.push(format!(
            "topic `{name}`: remove `value`: a dead-letter record keeps the original bytes, which \
             may not be valid Avro at all"
        ));
    }
    let Some(original) = topics_by_name.get(original_name) else {
        problems.push(format!(
            "topic `{name}`: `dead_letter_for: {original_name}` names no topic in the catalogue; \
             add that topic or fix the name"
        ));
        return;
    };
    if original.is_dead_letter() {
        problems.push(format!(
            "topic `{name}`: `{original_name}` is itself a dead-letter topic; dead-letter topics \
             have no dead-letter topic"
        ));
    }
    if original.consumers.is_empty() {
        problems.push(format!(
            "topic `{name}`: `{original_name}` has no consumers, so nothing can dead-letter its \
             records; remove this topic or list the consumers"
        ));
    }
    let producers: BTreeSet<&str> = topic.producers.iter().map(String::as_str).collect();
    let original_consumers: BTreeSet<&str> =
        original.consumers.iter().map(String::as_str).collect();
    if producers != original_consumers {
        problems.push(format!(
            "topic `{name}`: its producers must be exactly the consumers of `{original_name}` \
             (they are the ones that dead-letter): set `producers: [{}]`",
            original.consumers.join(", ")
        ));
    }
}

fn has_major_version_suffix(name: &str) -> bool {
    name.rsplit_once(".v").is_some_and(|(prefix, version)| {
        !prefix.is_empty()
            && !version.is_empty()
            && version.chars().all(|character| character.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
services:
  - {name: ingest, description: receives webhooks}
  - {name: logger, description: persists events}
keys:
  - name: conversation
    format: utf-8 string
    pattern: "<tenant_id>:<channel>:<customer_id>"
    example: "acme:whatsapp:4915112345678"
    description: one conversation
dead_letter_headers:
  - {name: caas.error, description: why}
topics:
  - name: inbound.messages.v1
    description: a customer's message
    partitions: 12
    replication_factor: 3
    min_insync_replicas: 2
    retention_ms: 604800000
    cleanup_policy: delete
    key: conversation
    value: {schema: schemas/caas.v1.InboundMessage.avsc, record: caas.v1.InboundMessage}
    producers: [ingest]
    consumers: [logger]
  - name: inbound.messages.v1.dlq
    description: poison records of inbound.messages.v1
    dead_letter_for: inbound.messages.v1
    partitions: 3
    replication_factor: 3
    min_insync_replicas: 2
    retention_ms: 2592000000
    cleanup_policy: delete
    producers: [logger]
"#;

    fn problems_of(text: &str) -> Vec<String> {
        match parse(text, "catalogue.yaml") {
            Ok(_) => Vec::new(),
            Err(error) => error.problems(),
        }
    }

    fn assert_one_problem_mentions(text: &str, needles: &[&str]) {
        let problems = problems_of(text);
        assert!(
            problems
                .iter()
                .any(|problem| needles.iter().all(|needle| problem.contains(needle))),
            "expected a problem mentioning {needles:?}, got {problems:#?}"
        );
    }

    #[test]
    fn a_valid_catalogue_parses() {
        let catalogue = parse(VALID, "catalogue.yaml").expect("valid");
        assert_eq!(catalogue.topics.len(), 2);
        assert!(catalogue.topics[1].is_dead_letter());
        assert_eq!(
            catalogue.topics[0].value_subject(),
            "inbound.messages.v1-value"
        );
    }

    #[test]
    fn an_unknown_key_is_rejected_with_its_name_and_the_allowed_ones() {
        let text = VALID.replace(
            "    partitions: 12\n",
            "    partitions: 12\n    partitons: 6\n",
        );
        assert_one_problem_mentions(&text, &["unknown field `partitons`", "expected one of"]);
        let top_level = format!("{VALID}\nowner: team-a\n");
        assert_one_problem_mentions(&top_level, &["unknown field `owner`"]);
    }

    #[test]
    fn a_topic_without_description_is_rejected() {
        let text = VALID.replace("    description: a customer's message\n", "");
        assert_one_problem_mentions(
            &text,
            &["topic `inbound.messages.v1`", "add a `description`"],
        );
        let blank = VALID.replace("description: a customer's message", "description: '  '");
        assert_one_problem_mentions(&blank, &["inbound.messages.v1", "`description`"]);
    }

    #[test]
    fn a_dead_letter_topic_for_a_missing_topic_is_rejected() {
        let text = VALID
            .replace(
                "dead_letter_for: inbound.messages.v1",
                "dead_letter_for: inbound.message.v1",
            )
            .replace(
                "name: inbound.messages.v1.dlq",
                "name: inbound.message.v1.dlq",
            );
        assert_one_problem_mentions(
            &text,
            &["`dead_letter_for: inbound.message.v1` names no topic"],
        );
        // and the consumed topic now lacks its dead-letter topic
        assert_one_problem_mentions(&text, &["inbound.messages.v1", "no dead-letter topic"]);
    }

    #[test]
    fn duplicate_topic_names_are_rejected() {
        let duplicate = r#"
  - name: inbound.messages.v1
    description: again
    partitions: 12
    replication_factor: 3
    min_insync_replicas: 2
    retention_ms: 604800000
    cleanup_policy: delete
    key: conversation
    value: {schema: schemas/caas.v1.InboundMessage.avsc, record: caas.v1.InboundMessage}
    producers: [ingest]
"#;
        let text = format!("{VALID}{duplicate}");
        assert_one_problem_mentions(
            &text,
            &["topic `inbound.messages.v1` is defined more than once"],
        );
    }

    #[test]
    fn unknown_services_and_keys_are_named() {
        let text = VALID.replace("consumers: [logger]", "consumers: [loger]");
        assert_one_problem_mentions(&text, &["consumer `loger` is not listed under `services`"]);
        let text = VALID.replace("key: conversation", "key: conversaton");
        assert_one_problem_mentions(&text, &["key `conversaton` is not defined under `keys`"]);
    }

    #[test]
    fn min_insync_above_replication_is_rejected() {
        let text = VALID.replacen("min_insync_replicas: 2", "min_insync_replicas: 4", 1);
        assert_one_problem_mentions(&text, &["`min_insync_replicas` (4)", "acks=all"]);
    }

    #[test]
    fn dead_letter_topics_keep_the_original_key_and_bytes() {
        let text = VALID.replace(
            "    dead_letter_for: inbound.messages.v1\n",
            "    dead_letter_for: inbound.messages.v1\n    key: conversation\n",
        );
        assert_one_problem_mentions(&text, &["remove `key`"]);
    }

    #[test]
    fn dead_letter_producers_must_be_the_original_consumers() {
        let text = VALID.replace("    producers: [logger]\n", "    producers: [ingest]\n");
        assert_one_problem_mentions(&text, &["set `producers: [logger]`"]);
    }

    #[test]
    fn regular_topics_carry_a_major_version() {
        let text = VALID
            .replace("name: inbound.messages.v1\n", "name: inbound.messages\n")
            .replace(
                "dead_letter_for: inbound.messages.v1",
                "dead_letter_for: inbound.messages",
            )
            .replace(
                "name: inbound.messages.v1.dlq",
                "name: inbound.messages.dlq",
            );
        assert_one_problem_mentions(&text, &["end the name with its major version"]);
    }

    #[test]
    fn an_unknown_cleanup_policy_is_a_syntax_error() {
        let text = VALID.replacen("cleanup_policy: delete", "cleanup_policy: purge", 1);
        assert_one_problem_mentions(&text, &["unknown variant `purge`"]);
    }

    #[test]
    fn a_missing_schema_file_is_reported_with_the_topic_and_path() {
        let directory = std::env::temp_dir().join(format!(
            "caasctl-catalogue-test-{}-{}",
            std::process::id(),
            line!()
        ));
        std::fs::create_dir_all(directory.join("topics")).expect("temp dir");
        let catalogue_path = directory.join("topics/catalogue.yaml");
        std::fs::write(&catalogue_path, VALID).expect("write catalogue");
        let error = load(&catalogue_path).expect_err("the schema file does not exist");
        std::fs::remove_dir_all(&directory).ok();
        let problems = error.problems();
        assert!(
            problems
                .iter()
                .any(|problem| problem.contains("topic `inbound.messages.v1`")
                    && problem.contains("schemas/caas.v1.InboundMessage.avsc")
                    && problem.contains("cannot be read")),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_schema_declaring_another_record_is_rejected() {
        let directory = std::env::temp_dir().join(format!(
            "caasctl-catalogue-test-{}-{}",
            std::process::id(),
            line!()
        ));
        std::fs::create_dir_all(directory.join("topics")).expect("temp dir");
        std::fs::create_dir_all(directory.join("schemas")).expect("temp dir");
        std::fs::write(directory.join("topics/catalogue.yaml"), VALID).expect("write");
        std::fs::write(
            directory.join("schemas/caas.v1.InboundMessage.avsc"),
            r#"{"type":"record","name":"Other","namespace":"caas.v1","fields":[]}"#,
        )
        .expect("write schema");
        let error = load(&directory.join("topics/catalogue.yaml")).expect_err("mismatch");
        std::fs::remove_dir_all(&directory).ok();
        assert!(
            error.to_string().contains("declares `caas.v1.Other`"),
            "{error}"
        );
    }
}
