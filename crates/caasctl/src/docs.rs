//! `caasctl topics docs`: the human reference (`topics/README.md`) and the AsyncAPI 3.0.0
//! document (`topics/asyncapi.yaml`), generated from the catalogue and the `.avsc` files.
//!
//! [`render`] is pure and deterministic: the same catalogue and schemas give byte-identical
//! files (no timestamps; YAML mappings keep insertion order; the Avro schemas are embedded in
//! their file order). [`stale_files`] compares with what is on disk, which is what
//! `topics docs --check` and the `docs` test use.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use apache_avro::schema::{EnumSchema, RecordSchema};
use apache_avro::Schema;
use serde_yaml::{Mapping, Value};

use crate::catalogue::{Catalogue, LoadedCatalogue, Topic};

/// The README, relative to the repository root.
pub const README_PATH: &str = "topics/README.md";
/// The AsyncAPI document, relative to the repository root.
pub const ASYNCAPI_PATH: &str = "topics/asyncapi.yaml";
/// How to regenerate, for messages and the generated headers.
pub const REGENERATE_COMMAND: &str = "cargo run -p caasctl -- topics docs";

const AVRO_SCHEMA_FORMAT: &str = "application/vnd.apache.avro;version=1.9.0";
const KAFKA_BINDING_VERSION: &str = "0.5.0";
const LOCAL_BOOTSTRAP: &str = "127.0.0.1:9092";
const LOCAL_REGISTRY: &str = "http://127.0.0.1:8081/apis/ccompat/v7";

/// The generated files' contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Docs {
    /// `topics/README.md`.
    pub readme: String,
    /// `topics/asyncapi.yaml`.
    pub asyncapi: String,
}

impl Docs {
    /// Each file with its path relative to the repository root.
    pub fn files(&self) -> [(&'static str, &str); 2] {
        [(README_PATH, &self.readme), (ASYNCAPI_PATH, &self.asyncapi)]
    }
}

/// Why the docs could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    /// An `.avsc` file is not valid YAML/JSON for embedding (it parsed as Avro, so this is rare).
    #[error("cannot embed {path} in the AsyncAPI document: {cause}")]
    Embed {
        /// The schema path.
        path: String,
        /// The parse error.
        cause: serde_yaml::Error,
    },
    /// The AsyncAPI document could not be serialised.
    #[error("cannot write the AsyncAPI document: {0}")]
    Serialise(String),
}

/// Render both documents.
pub fn render(loaded: &LoadedCatalogue) -> Result<Docs, DocsError> {
    Ok(Docs {
        readme: render_readme(loaded),
        asyncapi: render_asyncapi(loaded)?,
    })
}

/// The generated files whose content on disk differs from `docs` (missing counts as stale).
pub fn stale_files(root: &Path, docs: &Docs) -> Vec<String> {
    docs.files()
        .into_iter()
        .filter(|(path, content)| {
            std::fs::read_to_string(root.join(path)).map_or(true, |on_disk| on_disk != *content)
        })
        .map(|(path, _)| path.to_string())
        .collect()
}

/// Write the files that differ; returns the paths written.
pub fn write(root: &Path, docs: &Docs) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for path in stale_files(root, docs) {
        let content = docs
            .files()
            .into_iter()
            .find(|(candidate, _)| *candidate == path)
            .map(|(_, content)| content)
            .unwrap_or_default();
        let target = root.join(&path);
        std::fs::write(&target, content)?;
        written.push(target);
    }
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// README
// ---------------------------------------------------------------------------------------------

fn render_readme(loaded: &LoadedCatalogue) -> String {
    let catalogue = &loaded.catalogue;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!-- Generated from topics/catalogue.yaml and schemas/*.avsc by `{REGENERATE_COMMAND}`. \
         Do not edit: change the catalogue or the schemas and regenerate. -->"
    );
    out.push_str("# CAAS topics\n\n");
    out.push_str(
        "Every Kafka topic of CAAS: what it carries, how it is keyed, who writes and who reads it, \
         and every field of its records. The single source of truth is \
         [`catalogue.yaml`](catalogue.yaml) with the Avro schemas in [`../schemas`](../schemas); \
         the same content, machine-readable, is in the AsyncAPI 3 document \
         [`asyncapi.yaml`](asyncapi.yaml).\n\n",
    );
    render_conventions(&mut out);
    render_sizing(&mut out, catalogue);
    render_keys(&mut out, catalogue);
    render_overview(&mut out, catalogue);
    render_services(&mut out, catalogue);
    render_dead_letter_headers(&mut out, catalogue);
    for topic in &catalogue.topics {
        render_topic(&mut out, loaded, topic);
    }
    out
}

fn render_conventions(out: &mut String) {
    out.push_str("## Conventions\n\n");
    out.push_str(
        "- **Values** are Avro records in the Confluent wire format: magic byte `0`, the 4-byte \
         big-endian schema id, then the Avro binary encoding. The schema is registered under the \
         subject `<topic>-value` (TopicNameStrategy); fetch it with \
         `GET /schemas/ids/{id}` from the registry.\n\
         - **Compatibility** is FULL_TRANSITIVE per subject: a new version must read every \
         record written with any earlier version, and every earlier version must read records \
         written with the new one. In practice: new fields get defaults, required fields are \
         never removed, enums fall back to a `default` symbol. `caasctl schemas check` enforces \
         it in CI.\n\
         - **Keys** are UTF-8 strings without a schema. Everything with the same key lands on \
         one partition, in order. Producers must use Kafka's default murmur2 partitioner (the \
         Java client's default; librdkafka clients set `partitioner=murmur2_random`), or the \
         same key lands on different partitions depending on the client.\n\
         - **Versions**: a topic name ends with its major version; a breaking change is a new \
         topic (`.v2`), never an incompatible schema on the old one.\n\
         - **Replication**: the replication factor and `min.insync.replicas` below are the \
         production values; `caasctl topics apply` caps both at the number of live brokers \
         (a local single node gets 1 and 1).\n\
         - **Dead letters**: a record a consumer cannot process (not Avro, unknown schema id, \
         a handler's non-retryable error, retries exhausted) goes to `<topic>.dlq` with its \
         original key, bytes and headers plus the headers listed below; the partition keeps \
         flowing. Dead-letter topics keep records longer so they can be inspected and replayed.\n\n",
    );
}

fn render_sizing(out: &mut String, catalogue: &Catalogue) {
    let total: u32 = catalogue.topics.iter().map(|topic| topic.partitions).sum();
    let _ = writeln!(
        out,
        "## Sizing\n\n{} topics, {total} partitions in total.\n",
        catalogue.topics.len()
    );
    let sizing = catalogue.sizing.trim();
    if !sizing.is_empty() {
        let _ = writeln!(out, "{sizing}\n");
    }
}

fn render_keys(out: &mut String, catalogue: &Catalogue) {
    out.push_str("## Keys\n\n| key | format | pattern | example | what it identifies |\n|---|---|---|---|---|\n");
    for key in &catalogue.keys {
        let _ = writeln!(
            out,
            "| {} | {} | `{}` | `{}` | {} |",
            key.name,
            key.format.describe(),
            cell(&key.pattern),
            cell(&key.example),
            cell(&key.description)
        );
    }
    out.push('\n');
}

fn render_overview(out: &mut String, catalogue: &Catalogue) {
    out.push_str(
        "## Topics\n\n| topic | partitions | replication (min ISR) | retention | cleanup | key | value | producers | consumers |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for topic in &catalogue.topics {
        let key = topic
            .key
            .clone()
            .unwrap_or_else(|| "original key".to_string());
        let value = match &topic.value {
            Some(value) => format!("`{}`", value.record),
            None => "original bytes".to_string(),
        };
        let _ = writeln!(
            out,
            "| [`{}`](#{}) | {} | {} ({}) | {} | {} | {} | {} | {} | {} |",
            topic.name,
            topic_anchor(&topic.name),
            topic.partitions,
            topic.replication_factor,
            topic.min_insync_replicas,
            human_duration(topic.retention_ms),
            topic.cleanup_policy.as_kafka(),
            key,
            value,
            list_or_dash(&topic.producers),
            list_or_dash(&topic.consumers),
        );
    }
    out.push('\n');
}

fn render_services(out: &mut String, catalogue: &Catalogue) {
    out.push_str("## Services\n\n| service | produces | consumes | role |\n|---|---|---|---|\n");
    for service in &catalogue.services {
        // Dead-letter topics are left out: every consumer dead-letters what it consumes.
        let mut produces: Vec<String> = catalogue
            .topics
            .iter()
            .filter(|topic| !topic.is_dead_letter() && topic.producers.contains(&service.name))
            .map(|topic| format!("`{}`", topic.name))
            .collect();
        let consumes: Vec<String> = catalogue
            .topics
            .iter()
            .filter(|topic| topic.consumers.contains(&service.name))
            .map(|topic| format!("`{}`", topic.name))
            .collect();
        if !consumes.is_empty() {
            produces.push("the `.dlq` of each topic it consumes".to_string());
        }
        let name = if service.external {
            format!("{} (external)", service.name)
        } else {
            service.name.clone()
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} |",
            list_or_dash(&produces),
            list_or_dash(&consumes),
            cell(&service.description)
        );
    }
    out.push('\n');
}

fn render_dead_letter_headers(out: &mut String, catalogue: &Catalogue) {
    out.push_str(
        "## Dead-letter headers\n\nA dead-lettered record keeps the original record's headers \
         (including `traceparent`) and adds:\n\n| header | value |\n|---|---|\n",
    );
    for header in &catalogue.dead_letter_headers {
        let _ = writeln!(out, "| `{}` | {} |", header.name, cell(&header.description));
    }
    out.push('\n');
}

fn render_topic(out: &mut String, loaded: &LoadedCatalogue, topic: &Topic) {
    let catalogue = &loaded.catalogue;
    let anchor = topic_anchor(&topic.name);
    let _ = writeln!(out, "<a id=\"{anchor}\"></a>\n\n## `{}`\n", topic.name);
    let _ = writeln!(out, "{}\n", topic.description.trim());
    out.push_str("| | |\n|---|---|\n");
    let _ = writeln!(out, "| partitions | {} |", topic.partitions);
    let _ = writeln!(
        out,
        "| replication | factor {}, `min.insync.replicas` {} |",
        topic.replication_factor, topic.min_insync_replicas
    );
    let _ = writeln!(
        out,
        "| retention | {} (`retention.ms` {}) |",
        human_duration(topic.retention_ms),
        topic.retention_ms
    );
    let _ = writeln!(
        out,
        "| cleanup policy | `{}` |",
        topic.cleanup_policy.as_kafka()
    );
    match topic
        .key
        .as_ref()
        .and_then(|name| catalogue.keys.iter().find(|key| &key.name == name))
    {
        Some(key) => {
            let _ = writeln!(
                out,
                "| key | {}: `{}`, e.g. `{}` ({}) |",
                key.name,
                cell(&key.pattern),
                cell(&key.example),
                key.format.describe()
            );
        }
        None => out.push_str("| key | the original record's key, unchanged |\n"),
    }
    match (&topic.value, loaded.value_schema(topic)) {
        (Some(value), Some(_)) => {
            let _ = writeln!(
                out,
                "| value | [`{}`](#{}) from [`{}`](../{}), subject `{}` |",
                value.record,
                type_anchor(&topic.name, &value.record),
                value.schema,
                value.schema,
                topic.value_subject()
            );
        }
        _ => out.push_str(
            "| value | the original record's bytes, unchanged (they may not be valid Avro) |\n",
        ),
    }
    if let Some(original) = &topic.dead_letter_for {
        let _ = writeln!(
            out,
            "| dead letters of | [`{original}`](#{}) |",
            topic_anchor(original)
        );
    }
    let _ = writeln!(out, "| producers | {} |", list_or_dash(&topic.producers));
    let _ = writeln!(out, "| consumers | {} |", list_or_dash(&topic.consumers));
    if let Some(dead_letter) = catalogue
        .topics
        .iter()
        .find(|candidate| candidate.dead_letter_for.as_deref() == Some(topic.name.as_str()))
    {
        let _ = writeln!(
            out,
            "| dead-letter topic | [`{}`](#{}) |",
            dead_letter.name,
            topic_anchor(&dead_letter.name)
        );
    }
    out.push('\n');
    if topic.is_dead_letter() {
        out.push_str(
            "Headers: the original record's, plus those in [Dead-letter headers](#dead-letter-headers).\n\n",
        );
    }
    if let Some(schema) = loaded.value_schema(topic) {
        render_schema_types(out, &topic.name, &schema.schema);
    }
}

/// Every named type reachable from `root`, in order of first appearance (breadth first, so the
/// top-level record comes first, then what its fields use).
fn named_types_in_order(root: &Schema) -> Vec<&Schema> {
    let mut ordered: Vec<&Schema> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue: std::collections::VecDeque<&Schema> = std::collections::VecDeque::from([root]);
    while let Some(schema) = queue.pop_front() {
        match schema {
            Schema::Record(_) | Schema::Enum(_) | Schema::Fixed(_) => {
                let name = schema
                    .name()
                    .map(|name| name.fullname(None))
                    .unwrap_or_default();
                if !seen.insert(name) {
                    continue;
                }
                ordered.push(schema);
                if let Schema::Record(record) = schema {
                    for field in &record.fields {
                        enqueue_children(&field.schema, &mut queue);
                    }
                }
            }
            other => enqueue_children(other, &mut queue),
        }
    }
    ordered
}

fn enqueue_children<'a>(schema: &'a Schema, queue: &mut std::collections::VecDeque<&'a Schema>) {
    match schema {
        Schema::Record(_) | Schema::Enum(_) | Schema::Fixed(_) => queue.push_back(schema),
        Schema::Array(array) => enqueue_children(&array.items, queue),
        Schema::Map(map) => enqueue_children(&map.types, queue),
        Schema::Union(union) => {
            for variant in union.variants() {
                enqueue_children(variant, queue);
            }
        }
        _ => {}
    }
}

fn render_schema_types(out: &mut String, topic: &str, root: &Schema) {
    for schema in named_types_in_order(root) {
        match schema {
            Schema::Record(record) => render_record(out, topic, record),
            Schema::Enum(enumeration) => render_enum(out, topic, enumeration),
            Schema::Fixed(fixed) => {
                let full_name = fixed.name.fullname(None);
                let _ = writeln!(
                    out,
                    "<a id=\"{}\"></a>\n\n#### `{full_name}` (fixed, {} bytes)\n",
                    type_anchor(topic, &full_name),
                    fixed.size
                );
                if let Some(doc) = &fixed.doc {
                    let _ = writeln!(out, "{}\n", doc.trim());
                }
            }
            _ => {}
        }
    }
}

fn render_record(out: &mut String, topic: &str, record: &RecordSchema) {
    let full_name = record.name.fullname(None);
    let _ = writeln!(
        out,
        "<a id=\"{}\"></a>\n\n#### `{full_name}` (record)\n",
        type_anchor(topic, &full_name)
    );
    if let Some(doc) = &record.doc {
        let _ = writeln!(out, "{}\n", doc.trim());
    }
    if record.fields.is_empty() {
        out.push_str("No fields.\n\n");
        return;
    }
    out.push_str("| field | type | default | description |\n|---|---|---|---|\n");
    for field in &record.fields {
        let default = match &field.default {
            Some(value) => format!("`{}`", cell(&value.to_string())),
            None => "required".to_string(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            field.name,
            type_markdown(topic, &field.schema),
            default,
            cell(field.doc.as_deref().unwrap_or(""))
        );
    }
    out.push('\n');
}

fn render_enum(out: &mut String, topic: &str, enumeration: &EnumSchema) {
    let full_name = enumeration.name.fullname(None);
    let _ = writeln!(
        out,
        "<a id=\"{}\"></a>\n\n#### `{full_name}` (enum)\n",
        type_anchor(topic, &full_name)
    );
    if let Some(doc) = &enumeration.doc {
        let _ = writeln!(out, "{}\n", doc.trim());
    }
    let symbols: Vec<String> = enumeration
        .symbols
        .iter()
        .map(|symbol| format!("`{symbol}`"))
        .collect();
    let _ = write!(out, "Symbols: {}.", symbols.join(", "));
    if let Some(default) = &enumeration.default {
        let _ = write!(
            out,
            " Default (what a reader uses for a symbol it does not know): `{default}`."
        );
    }
    out.push_str("\n\n");
}

/// A type as Markdown for a table cell: named types link to their section in this topic.
fn type_markdown(topic: &str, schema: &Schema) -> String {
    match schema {
        Schema::Record(_) | Schema::Enum(_) | Schema::Fixed(_) | Schema::Ref { .. } => {
            let full_name = schema
                .name()
                .map(|name| name.fullname(None))
                .unwrap_or_default();
            let short = full_name
                .rsplit('.')
                .next()
                .unwrap_or(&full_name)
                .to_string();
            format!("[`{short}`](#{})", type_anchor(topic, &full_name))
        }
        Schema::Array(array) => format!("array of {}", type_markdown(topic, &array.items)),
        Schema::Map(map) => format!("map of {}", type_markdown(topic, &map.types)),
        Schema::Union(union) => union
            .variants()
            .iter()
            .map(|variant| type_markdown(topic, variant))
            .collect::<Vec<_>>()
            .join(" \\| "),
        other => format!("`{}`", crate::compat::type_label(other)),
    }
}

fn topic_anchor(topic: &str) -> String {
    slug(topic)
}

fn type_anchor(topic: &str, full_name: &str) -> String {
    format!("{}--{}", slug(topic), slug(full_name))
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() {
                character.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// Text safe inside a Markdown table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn list_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "—".to_string()
    } else {
        items.join(", ")
    }
}

/// `604800000` → `7 days`; `-1` → `forever`.
pub fn human_duration(milliseconds: i64) -> String {
    const UNITS: [(i64, &str); 5] = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
        (1, "millisecond"),
    ];
    if milliseconds < 0 {
        return "forever".to_string();
    }
    for (size, unit) in UNITS {
        if milliseconds >= size && milliseconds % size == 0 {
            let count = milliseconds / size;
            let plural = if count == 1 { "" } else { "s" };
            return format!("{count} {unit}{plural}");
        }
    }
    format!("{milliseconds} milliseconds")
}

// ---------------------------------------------------------------------------------------------
// AsyncAPI
// ---------------------------------------------------------------------------------------------

fn string(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

fn mapping<const N: usize>(entries: [(&str, Value); N]) -> Value {
    let mut map = Mapping::new();
    for (key, value) in entries {
        map.insert(string(key), value);
    }
    Value::Mapping(map)
}

fn reference(path: &str) -> Value {
    mapping([("$ref", string(path))])
}

/// `inbound.messages.v1` → `inboundMessagesV1`; `.dlq` topics → `...V1Dlq`.
fn channel_id(topic: &str) -> String {
    let mut id = String::new();
    for (index, part) in topic
        .split(|character: char| !character.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .enumerate()
    {
        let mut characters = part.chars();
        if let Some(first) = characters.next() {
            if index == 0 {
                id.push(first.to_ascii_lowercase());
            } else {
                id.push(first.to_ascii_uppercase());
            }
            id.extend(characters);
        }
    }
    id
}

fn upper_first(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + characters.as_str(),
        None => String::new(),
    }
}

fn short_record_name(record: &str) -> &str {
    record.rsplit('.').next().unwrap_or(record)
}

const DEAD_LETTER_MESSAGE: &str = "DeadLetterRecord";

fn message_name(topic: &Topic) -> String {
    match &topic.value {
        Some(value) => short_record_name(&value.record).to_string(),
        None => DEAD_LETTER_MESSAGE.to_string(),
    }
}

fn render_asyncapi(loaded: &LoadedCatalogue) -> Result<String, DocsError> {
    let catalogue = &loaded.catalogue;

    let mut channels = Mapping::new();
    let mut operations = Mapping::new();
    let mut messages = Mapping::new();
    let mut tags = Mapping::new();

    for service in &catalogue.services {
        let mut description = service.description.trim().to_string();
        if service.external {
            description.push_str(" (external to CAAS)");
        }
        tags.insert(
            string(&service.name),
            mapping([
                ("name", string(&service.name)),
                ("description", string(description)),
            ]),
        );
    }

    for topic in &catalogue.topics {
        let id = channel_id(&topic.name);
        let message = message_name(topic);
        let mut topic_configuration = Mapping::new();
        topic_configuration.insert(
            string("cleanup.policy"),
            Value::Sequence(
                topic
                    .cleanup_policy
                    .as_kafka()
                    .split(',')
                    .map(string)
                    .collect(),
            ),
        );
        topic_configuration.insert(string("retention.ms"), Value::from(topic.retention_ms));
        topic_configuration.insert(
            string("min.insync.replicas"),
            Value::from(topic.min_insync_replicas),
        );
        let mut channel_messages = Mapping::new();
        channel_messages.insert(
            string(&message),
            reference(&format!("#/components/messages/{message}")),
        );
        channels.insert(
            string(&id),
            mapping([
                ("address", string(&topic.name)),
                ("title", string(&topic.name)),
                ("description", string(topic.description.trim())),
                ("messages", Value::Mapping(channel_messages)),
                (
                    "bindings",
                    mapping([(
                        "kafka",
                        mapping([
                            ("topic", string(&topic.name)),
                            ("partitions", Value::from(topic.partitions)),
                            ("replicas", Value::from(topic.replication_factor)),
                            ("topicConfiguration", Value::Mapping(topic_configuration)),
                            ("bindingVersion", string(KAFKA_BINDING_VERSION)),
                        ]),
                    )]),
                ),
            ]),
        );

        for (action, services) in [("send", &topic.producers), ("receive", &topic.consumers)] {
            for service in services {
                let operation_id = format!("{service}{}{}", upper_first(action), upper_first(&id));
                let summary = match action {
                    "send" => format!("{service} produces to {}", topic.name),
                    _ => format!("{service} consumes {}", topic.name),
                };
                operations.insert(
                    string(operation_id),
                    mapping([
                        ("action", string(action)),
                        ("channel", reference(&format!("#/channels/{id}"))),
                        ("summary", string(summary)),
                        (
                            "tags",
                            Value::Sequence(vec![reference(&format!(
                                "#/components/tags/{service}"
                            ))]),
                        ),
                        (
                            "messages",
                            Value::Sequence(vec![reference(&format!(
                                "#/channels/{id}/messages/{message}"
                            ))]),
                        ),
                    ]),
                );
            }
        }

        if messages.contains_key(string(&message)) {
            continue;
        }
        match (&topic.value, loaded.value_schema(topic)) {
            (Some(value), Some(schema)) => {
                let avro: Value =
                    serde_yaml::from_str(&schema.text).map_err(|cause| DocsError::Embed {
                        path: schema.path.clone(),
                        cause,
                    })?;
                let summary = match &schema.schema {
                    Schema::Record(record) => record.doc.clone().unwrap_or_default(),
                    _ => String::new(),
                };
                let key_description = topic
                    .key
                    .as_ref()
                    .and_then(|name| catalogue.keys.iter().find(|key| &key.name == name))
                    .map(|key| {
                        (
                            format!("{}: {}. {}", key.name, key.pattern, key.description.trim()),
                            key.example.clone(),
                        )
                    })
                    .unwrap_or_default();
                messages.insert(
                    string(&message),
                    mapping([
                        ("name", string(&message)),
                        ("title", string(&value.record)),
                        ("summary", string(summary.trim())),
                        (
                            "description",
                            string(format!(
                                "Avro in the Confluent wire format (magic byte 0, 4-byte schema \
                                 id, Avro binary); schema file `{}`, registry subject \
                                 `<topic>-value`, compatibility FULL_TRANSITIVE.",
                                value.schema
                            )),
                        ),
                        ("contentType", string("avro/binary")),
                        (
                            "payload",
                            mapping([
                                ("schemaFormat", string(AVRO_SCHEMA_FORMAT)),
                                ("schema", avro),
                            ]),
                        ),
                        (
                            "bindings",
                            mapping([(
                                "kafka",
                                mapping([
                                    (
                                        "key",
                                        mapping([
                                            ("type", string("string")),
                                            ("description", string(key_description.0)),
                                            (
                                                "examples",
                                                Value::Sequence(vec![string(key_description.1)]),
                                            ),
                                        ]),
                                    ),
                                    ("schemaIdLocation", string("payload")),
                                    ("schemaIdPayloadEncoding", string("confluent")),
                                    ("schemaLookupStrategy", string("TopicNameStrategy")),
                                    ("bindingVersion", string(KAFKA_BINDING_VERSION)),
                                ]),
                            )]),
                        ),
                    ]),
                );
            }
            _ => {
                messages.insert(string(&message), dead_letter_message(catalogue));
            }
        }
    }

    let document = mapping([
        ("asyncapi", string("3.0.0")),
        (
            "info",
            mapping([
                ("title", string("CAAS event contracts")),
                ("version", string("1.0.0")),
                (
                    "description",
                    string(format!(
                        "The Kafka topics of CAAS, an event-driven customer-messaging platform \
                         (WhatsApp and RCS). Generated from topics/catalogue.yaml and \
                         schemas/*.avsc by `{REGENERATE_COMMAND}`; do not edit. Values are Avro \
                         in the Confluent wire format, registered under `<topic>-value` with \
                         FULL_TRANSITIVE compatibility; keys are UTF-8 strings partitioned with \
                         murmur2 (Kafka's default). Replication factors are production values."
                    )),
                ),
            ]),
        ),
        ("defaultContentType", string("avro/binary")),
        (
            "servers",
            mapping([(
                "local",
                mapping([
                    ("host", string(LOCAL_BOOTSTRAP)),
                    ("protocol", string("kafka")),
                    (
                        "description",
                        string("The local stack started by `make up` (one KRaft broker)."),
                    ),
                    (
                        "bindings",
                        mapping([(
                            "kafka",
                            mapping([
                                ("schemaRegistryUrl", string(LOCAL_REGISTRY)),
                                ("schemaRegistryVendor", string("apicurio")),
                                ("bindingVersion", string(KAFKA_BINDING_VERSION)),
                            ]),
                        )]),
                    ),
                ]),
            )]),
        ),
        ("channels", Value::Mapping(channels)),
        ("operations", Value::Mapping(operations)),
        (
            "components",
            mapping([
                ("messages", Value::Mapping(messages)),
                ("tags", Value::Mapping(tags)),
            ]),
        ),
    ]);
    let body = serde_yaml::to_string(&document)
        .map_err(|error| DocsError::Serialise(error.to_string()))?;
    Ok(format!(
        "# Generated from topics/catalogue.yaml and schemas/*.avsc by `{REGENERATE_COMMAND}`.\n\
         # Do not edit: change the catalogue or the schemas and regenerate.\n{body}"
    ))
}

fn dead_letter_message(catalogue: &Catalogue) -> Value {
    let mut properties = Mapping::new();
    for header in &catalogue.dead_letter_headers {
        properties.insert(
            string(&header.name),
            mapping([
                ("type", string("string")),
                ("description", string(header.description.trim())),
            ]),
        );
    }
    mapping([
        ("name", string(DEAD_LETTER_MESSAGE)),
        ("title", string("Dead-letter record")),
        (
            "summary",
            string(
                "A record a consumer could not process, with its original key, bytes and \
                 headers, plus headers that say why.",
            ),
        ),
        ("contentType", string("application/octet-stream")),
        (
            "headers",
            mapping([
                ("type", string("object")),
                ("properties", Value::Mapping(properties)),
            ]),
        ),
        (
            "payload",
            mapping([
                ("type", string("string")),
                ("format", string("binary")),
                (
                    "description",
                    string(
                        "The original record's value, byte for byte (it may not be valid Avro).",
                    ),
                ),
            ]),
        ),
        (
            "bindings",
            mapping([(
                "kafka",
                mapping([
                    (
                        "key",
                        mapping([
                            ("type", string("string")),
                            (
                                "description",
                                string("The original record's key, unchanged."),
                            ),
                        ]),
                    ),
                    ("bindingVersion", string(KAFKA_BINDING_VERSION)),
                ]),
            )]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(604_800_000), "7 days");
        assert_eq!(human_duration(3_600_000), "1 hour");
        assert_eq!(human_duration(90_000), "90 seconds");
        assert_eq!(human_duration(-1), "forever");
    }

    #[test]
    fn channel_ids_are_camel_case() {
        assert_eq!(channel_id("inbound.messages.v1"), "inboundMessagesV1");
        assert_eq!(
            channel_id("inbound.messages.v1.dlq"),
            "inboundMessagesV1Dlq"
        );
    }

    #[test]
    fn table_cells_stay_on_one_line_and_escape_pipes() {
        assert_eq!(cell("a |\n  b"), "a \\| b");
    }

    #[test]
    fn named_types_come_in_order_of_first_use_once_each() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "Top", "namespace": "n", "fields": [
                {"name": "a", "type": {"type": "enum", "name": "E", "symbols": ["x"]}},
                {"name": "b", "type": ["null", {"type": "record", "name": "Inner", "fields": [
                    {"name": "e", "type": "E"}]}], "default": null},
                {"name": "c", "type": {"type": "array", "items": "Inner"}}
            ]}"#,
        )
        .unwrap();
        let names: Vec<String> = named_types_in_order(&schema)
            .iter()
            .map(|schema| schema.name().unwrap().fullname(None))
            .collect();
        assert_eq!(names, ["n.Top", "n.E", "n.Inner"]);
    }
}
