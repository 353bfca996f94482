//! Avro compatibility under the registry's FULL rule, checked locally and explained.
//!
//! FULL means both directions hold between an old and a new version of a schema:
//! - *backward*: the new schema reads records written with the old one (consumers upgrade first);
//! - *forward*: the old schema reads records written with the new one (producers upgrade first).
//!
//! FULL_TRANSITIVE applies that to every earlier version, which callers do by calling
//! [`check_full`] once per version. The verdict comes from `apache-avro`'s
//! `SchemaCompatibility` (the Avro resolution rules); a structural walk of the two schemas then
//! says *what* broke and *where* (`field `tenant_id` removed without a default`), because the
//! library's own errors name neither the path nor the fix. Pure: no I/O.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use apache_avro::error::CompatibilityError;
use apache_avro::schema::{RecordField, RecordSchema};
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;

/// Which reader cannot read which writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// The new schema cannot read records written with the old one.
    Backward,
    /// Readers still on the old schema cannot read records written with the new one.
    Forward,
}

impl fmt::Display for Direction {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Direction::Backward => "backward (new schema reading old records)",
            Direction::Forward => "forward (old schema reading new records)",
        })
    }
}

/// One reason two versions are not FULL compatible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// Which direction breaks.
    pub direction: Direction,
    /// Where in the schema, e.g. `content[Text].body`; empty for the top-level record.
    pub location: String,
    /// What broke and how to fix it.
    pub problem: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            write!(formatter, "{}: {}", self.direction, self.problem)
        } else {
            write!(
                formatter,
                "{}: at `{}`: {}",
                self.direction, self.location, self.problem
            )
        }
    }
}

/// Check `new` against `old` under FULL compatibility. Empty means compatible both ways.
pub fn check_full(old: &Schema, new: &Schema) -> Vec<Incompatibility> {
    let explanations = explain(old, new);
    let mut found = Vec::new();
    for direction in [Direction::Backward, Direction::Forward] {
        let (writer, reader) = match direction {
            Direction::Backward => (old, new),
            Direction::Forward => (new, old),
        };
        let verdict = SchemaCompatibility::can_read(writer, reader);
        if matches!(verdict, Ok(Compatibility::Full)) {
            continue;
        }
        let explained: Vec<Incompatibility> = explanations
            .iter()
            .filter(|explanation| explanation.direction == direction)
            .cloned()
            .collect();
        if explained.is_empty() {
            let problem = match verdict {
                Err(error) => describe_error(&error),
                Ok(_) => "only partially compatible: some values (an enum symbol or a union \
                          branch that exists on one side only) cannot be resolved"
                    .to_string(),
            };
            found.push(Incompatibility {
                direction,
                location: String::new(),
                problem,
            });
        } else {
            found.extend(explained);
        }
    }
    found
}

/// The library's error in words, without its debug dumps of whole schemas.
fn describe_error(error: &CompatibilityError) -> String {
    match error {
        CompatibilityError::FieldTypeMismatch(field, inner) => {
            format!("field `{field}`: {}", describe_error(inner))
        }
        CompatibilityError::WrongType { .. } => {
            "the types differ and Avro cannot promote one to the other".to_string()
        }
        CompatibilityError::MissingDefaultValue(field) => {
            format!("field `{field}` is missing on the writer side and has no default")
        }
        other => other.to_string(),
    }
}

/// The structural differences between `old` and `new` that break a direction, with locations.
pub fn explain(old: &Schema, new: &Schema) -> Vec<Incompatibility> {
    let mut walker = Walker {
        old_names: named_types(old),
        new_names: named_types(new),
        visited: HashSet::new(),
        found: Vec::new(),
    };
    walker.walk(old, new, "");
    walker.found
}

fn named_types(schema: &Schema) -> HashMap<String, &Schema> {
    let mut names = HashMap::new();
    collect_named_types(schema, &mut names);
    names
}

fn collect_named_types<'a>(schema: &'a Schema, names: &mut HashMap<String, &'a Schema>) {
    match schema {
        Schema::Record(record) => {
            names.insert(record.name.fullname(None), schema);
            for field in &record.fields {
                collect_named_types(&field.schema, names);
            }
        }
        Schema::Enum(enumeration) => {
            names.insert(enumeration.name.fullname(None), schema);
        }
        Schema::Fixed(fixed) => {
            names.insert(fixed.name.fullname(None), schema);
        }
        Schema::Array(array) => collect_named_types(&array.items, names),
        Schema::Map(map) => collect_named_types(&map.types, names),
        Schema::Union(union) => {
            for variant in union.variants() {
                collect_named_types(variant, names);
            }
        }
        _ => {}
    }
}

struct Walker<'a> {
    old_names: HashMap<String, &'a Schema>,
    new_names: HashMap<String, &'a Schema>,
    /// Pairs of named types already compared, so each is explained once and recursion ends.
    visited: HashSet<(String, String)>,
    found: Vec<Incompatibility>,
}

impl<'a> Walker<'a> {
    fn report(&mut self, direction: Direction, location: &str, problem: String) {
        self.found.push(Incompatibility {
            direction,
            location: location.to_string(),
            problem,
        });
    }

    fn resolve(names: &HashMap<String, &'a Schema>, schema: &'a Schema) -> &'a Schema {
        match schema {
            Schema::Ref { name } => names.get(&name.fullname(None)).copied().unwrap_or(schema),
            other => other,
        }
    }

    fn walk(&mut self, old: &'a Schema, new: &'a Schema, location: &str) {
        let old = Self::resolve(&self.old_names, old);
        let new = Self::resolve(&self.new_names, new);
        if let (Some(old_name), Some(new_name)) = (old.name(), new.name()) {
            let pair = (old_name.fullname(None), new_name.fullname(None));
            if !self.visited.insert(pair) {
                return;
            }
            if old_name.name() != new_name.name() {
                let problem = format!(
                    "`{}` became `{}`: Avro matches named types by name, so neither side can read \
                     the other; keep the name",
                    old_name.fullname(None),
                    new_name.fullname(None)
                );
                self.report(Direction::Backward, location, problem.clone());
                self.report(Direction::Forward, location, problem);
                return;
            }
        }
        match (old, new) {
            (Schema::Record(old_record), Schema::Record(new_record)) => {
                self.walk_records(old_record, new_record, location);
            }
            (Schema::Enum(old_enum), Schema::Enum(new_enum)) => {
                let name = old_enum.name.fullname(None);
                let added: Vec<&str> = new_enum
                    .symbols
                    .iter()
                    .filter(|symbol| !old_enum.symbols.contains(symbol))
                    .map(String::as_str)
                    .collect();
                let removed: Vec<&str> = old_enum
                    .symbols
                    .iter()
                    .filter(|symbol| !new_enum.symbols.contains(symbol))
                    .map(String::as_str)
                    .collect();
                if !added.is_empty() && old_enum.default.is_none() {
                    let problem = format!(
                        "enum `{name}` gained {}; readers on the old schema fail on records that \
                         use {} because the old enum has no `default` symbol to fall back to \
                         (enums that may grow need a `default` from their first version)",
                        symbols_phrase(&added),
                        if added.len() == 1 { "it" } else { "them" }
                    );
                    self.report(Direction::Forward, location, problem);
                }
                if !removed.is_empty() && new_enum.default.is_none() {
                    let problem = format!(
                        "enum `{name}` lost {}; the new schema cannot read old records that carry \
                         them (keep the symbols, or give the enum a `default`)",
                        symbols_phrase(&removed)
                    );
                    self.report(Direction::Backward, location, problem);
                }
            }
            (Schema::Union(old_union), Schema::Union(new_union)) => {
                self.walk_unions(old_union.variants(), new_union.variants(), location);
            }
            (Schema::Union(old_union), _) => {
                self.walk_unions(old_union.variants(), std::slice::from_ref(new), location);
            }
            (_, Schema::Union(new_union)) => {
                self.walk_unions(std::slice::from_ref(old), new_union.variants(), location);
            }
            (Schema::Array(old_array), Schema::Array(new_array)) => {
                self.walk(&old_array.items, &new_array.items, &format!("{location}[]"));
            }
            (Schema::Map(old_map), Schema::Map(new_map)) => {
                self.walk(&old_map.types, &new_map.types, &format!("{location}{{}}"));
            }
            _ => self.compare_leaves(old, new, location),
        }
    }

    fn walk_records(&mut self, old: &'a RecordSchema, new: &'a RecordSchema, location: &str) {
        for new_field in &new.fields {
            let field_location = join(location, &new_field.name);
            match find_field(&old.fields, new_field) {
                Some(old_field) => self.walk(&old_field.schema, &new_field.schema, &field_location),
                None if new_field.default.is_none() => self.report(
                    Direction::Backward,
                    &field_location,
                    format!(
                        "field `{}` added without a default: the new schema cannot read records \
                         written with the old one; give it a default (for an optional value: \
                         type `[\"null\", ...]` with `\"default\": null`)",
                        new_field.name
                    ),
                ),
                None => {}
            }
        }
        for old_field in &old.fields {
            let still_there = new.fields.iter().any(|new_field| {
                new_field.name == old_field.name || new_field.aliases.contains(&old_field.name)
            });
            if !still_there && old_field.default.is_none() {
                self.report(
                    Direction::Forward,
                    &join(location, &old_field.name),
                    format!(
                        "field `{}` removed without a default: readers still on the old schema \
                         require it; keep the field (say it is deprecated in its doc) — only \
                         fields that have a default can be removed",
                        old_field.name
                    ),
                );
            }
        }
    }

    fn walk_unions(&mut self, old: &'a [Schema], new: &'a [Schema], location: &str) {
        let old_keys: Vec<String> = old
            .iter()
            .map(|branch| branch_key(Self::resolve(&self.old_names, branch)))
            .collect();
        let new_keys: Vec<String> = new
            .iter()
            .map(|branch| branch_key(Self::resolve(&self.new_names, branch)))
            .collect();
        let added: Vec<&str> = new_keys
            .iter()
            .filter(|key| !old_keys.contains(key))
            .map(String::as_str)
            .collect();
        let removed: Vec<&str> = old_keys
            .iter()
            .filter(|key| !new_keys.contains(key))
            .map(String::as_str)
            .collect();
        let describe = |keys: &[&str]| {
            keys.iter()
                .map(|key| format!("`{key}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !added.is_empty() {
            let problem = if old.len() == 1 {
                format!(
                    "`{}` became a union that adds {}: readers on the old schema cannot read \
                     those values",
                    old_keys[0],
                    describe(&added)
                )
            } else {
                format!(
                    "union gained {}: readers on the old schema cannot read records that use {}",
                    describe(&added),
                    if added.len() == 1 { "it" } else { "them" }
                )
            };
            self.report(Direction::Forward, location, problem);
        }
        if !removed.is_empty() {
            let problem = if new.len() == 1 {
                format!(
                    "a union became `{}`, dropping {}: the new schema cannot read old records \
                     that used them",
                    new_keys[0],
                    describe(&removed)
                )
            } else {
                format!(
                    "union lost {}: the new schema cannot read old records that used {}",
                    describe(&removed),
                    if removed.len() == 1 { "it" } else { "them" }
                )
            };
            self.report(Direction::Backward, location, problem);
        }
        for (old_index, old_key) in old_keys.iter().enumerate() {
            if let Some(new_index) = new_keys.iter().position(|new_key| new_key == old_key) {
                let branch_location = if old.len() > 1 || new.len() > 1 {
                    format!("{location}[{}]", short_name(old_key))
                } else {
                    location.to_string()
                };
                self.walk(&old[old_index], &new[new_index], &branch_location);
            }
        }
    }

    /// Non-record, non-union, non-container types: primitives, logical types, fixed, or a
    /// change of kind (string → record).
    fn compare_leaves(&mut self, old: &'a Schema, new: &'a Schema, location: &str) {
        let named = old.name().is_some() || new.name().is_some();
        let (backward_ok, forward_ok) =
            if named && !matches!((old, new), (Schema::Fixed(_), Schema::Fixed(_))) {
                (false, false)
            } else {
                (
                    matches!(
                        SchemaCompatibility::can_read(old, new),
                        Ok(Compatibility::Full)
                    ),
                    matches!(
                        SchemaCompatibility::can_read(new, old),
                        Ok(Compatibility::Full)
                    ),
                )
            };
        let change = format!(
            "type changed from `{}` to `{}`",
            type_label(old),
            type_label(new)
        );
        if !backward_ok {
            self.report(
                Direction::Backward,
                location,
                format!("{change}: the new schema cannot read the old values"),
            );
        }
        if !forward_ok {
            self.report(
                Direction::Forward,
                location,
                format!("{change}: readers on the old schema cannot read the new values"),
            );
        }
    }
}

fn find_field<'f>(
    old_fields: &'f [RecordField],
    new_field: &RecordField,
) -> Option<&'f RecordField> {
    std::iter::once(&new_field.name)
        .chain(new_field.aliases.iter())
        .find_map(|name| old_fields.iter().find(|old_field| &old_field.name == name))
}

fn join(location: &str, field: &str) -> String {
    if location.is_empty() {
        field.to_string()
    } else {
        format!("{location}.{field}")
    }
}

fn symbols_phrase(symbols: &[&str]) -> String {
    let listed = symbols
        .iter()
        .map(|symbol| format!("`{symbol}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if symbols.len() == 1 {
        format!("the symbol {listed}")
    } else {
        format!("the symbols {listed}")
    }
}

fn short_name(full_name: &str) -> &str {
    full_name.rsplit('.').next().unwrap_or(full_name)
}

/// How Avro tells union branches apart: named types by full name, others by their base type
/// (a union may hold only one `long`, whatever its logical type).
fn branch_key(schema: &Schema) -> String {
    if let Some(name) = schema.name() {
        return name.fullname(None);
    }
    base_type(schema).to_string()
}

fn base_type(schema: &Schema) -> &'static str {
    match schema {
        Schema::Null => "null",
        Schema::Boolean => "boolean",
        Schema::Int | Schema::Date | Schema::TimeMillis => "int",
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long",
        Schema::Float => "float",
        Schema::Double => "double",
        Schema::Bytes | Schema::BigDecimal => "bytes",
        Schema::String => "string",
        Schema::Uuid(_) => "string",
        Schema::Decimal(_) => "bytes",
        Schema::Array(_) => "array",
        Schema::Map(_) => "map",
        Schema::Union(_) => "union",
        Schema::Record(_) => "record",
        Schema::Enum(_) => "enum",
        Schema::Fixed(_) | Schema::Duration(_) => "fixed",
        Schema::Ref { .. } => "named",
    }
}

/// A short human label for a type, e.g. `long (timestamp-millis)`, `null | string`,
/// `record caas.v1.Text`, `array<string>`.
pub fn type_label(schema: &Schema) -> String {
    match schema {
        Schema::Record(record) => format!("record {}", record.name.fullname(None)),
        Schema::Enum(enumeration) => format!("enum {}", enumeration.name.fullname(None)),
        Schema::Fixed(fixed) => {
            format!("fixed {} ({} bytes)", fixed.name.fullname(None), fixed.size)
        }
        Schema::Ref { name } => name.fullname(None),
        Schema::Array(array) => format!("array<{}>", type_label(&array.items)),
        Schema::Map(map) => format!("map<{}>", type_label(&map.types)),
        Schema::Union(union) => union
            .variants()
            .iter()
            .map(type_label)
            .collect::<Vec<_>>()
            .join(" | "),
        Schema::Date => "int (date)".to_string(),
        Schema::TimeMillis => "int (time-millis)".to_string(),
        Schema::TimeMicros => "long (time-micros)".to_string(),
        Schema::TimestampMillis => "long (timestamp-millis)".to_string(),
        Schema::TimestampMicros => "long (timestamp-micros)".to_string(),
        Schema::TimestampNanos => "long (timestamp-nanos)".to_string(),
        Schema::LocalTimestampMillis => "long (local-timestamp-millis)".to_string(),
        Schema::LocalTimestampMicros => "long (local-timestamp-micros)".to_string(),
        Schema::LocalTimestampNanos => "long (local-timestamp-nanos)".to_string(),
        Schema::Uuid(_) => "string (uuid)".to_string(),
        Schema::Decimal(decimal) => {
            format!("bytes (decimal({}, {}))", decimal.precision, decimal.scale)
        }
        Schema::BigDecimal => "bytes (big-decimal)".to_string(),
        Schema::Duration(_) => "fixed (duration)".to_string(),
        other => base_type(other).to_string(),
    }
}

/// The distinct directions in a list of incompatibilities, for summaries.
pub fn directions(found: &[Incompatibility]) -> BTreeSet<Direction> {
    found
        .iter()
        .map(|incompatibility| incompatibility.direction)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> Schema {
        Schema::parse_str(text).expect("test schema parses")
    }

    const BASE: &str = r#"{
      "type": "record", "name": "Event", "namespace": "caas.test",
      "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "tenant_id", "type": "string"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b"]}},
        {"name": "note", "type": ["null", "string"], "default": null},
        {"name": "content", "type": [
          {"type": "record", "name": "Text", "fields": [{"name": "body", "type": "string"}]},
          {"type": "record", "name": "Image", "fields": [{"name": "link", "type": "string"}]}
        ]}
      ]
    }"#;

    fn with_fields(fields: &str) -> Schema {
        schema(&format!(
            r#"{{"type": "record", "name": "Event", "namespace": "caas.test", "fields": [{fields}]}}"#
        ))
    }

    #[test]
    fn an_identical_schema_is_compatible() {
        assert_eq!(check_full(&schema(BASE), &schema(BASE)), Vec::new());
    }

    #[test]
    fn a_removed_required_field_is_rejected_forward_with_its_name() {
        let old = with_fields(
            r#"{"name": "event_id", "type": "string"}, {"name": "tenant_id", "type": "string"}"#,
        );
        let new = with_fields(r#"{"name": "event_id", "type": "string"}"#);
        let found = check_full(&old, &new);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].direction, Direction::Forward);
        assert_eq!(found[0].location, "tenant_id");
        assert!(
            found[0]
                .problem
                .contains("field `tenant_id` removed without a default"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn an_added_field_with_a_default_is_accepted() {
        let old = with_fields(r#"{"name": "event_id", "type": "string"}"#);
        let new = with_fields(
            r#"{"name": "event_id", "type": "string"},
               {"name": "priority", "type": "int", "default": 0},
               {"name": "label", "type": ["null", "string"], "default": null}"#,
        );
        assert_eq!(check_full(&old, &new), Vec::new());
    }

    #[test]
    fn an_added_field_without_default_is_rejected_backward() {
        let old = with_fields(r#"{"name": "event_id", "type": "string"}"#);
        let new = with_fields(
            r#"{"name": "event_id", "type": "string"}, {"name": "priority", "type": "int"}"#,
        );
        let found = check_full(&old, &new);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].direction, Direction::Backward);
        assert!(found[0]
            .problem
            .contains("field `priority` added without a default"));
    }

    #[test]
    fn a_removed_field_that_had_a_default_is_accepted() {
        let old = with_fields(
            r#"{"name": "event_id", "type": "string"},
               {"name": "note", "type": ["null", "string"], "default": null}"#,
        );
        let new = with_fields(r#"{"name": "event_id", "type": "string"}"#);
        assert_eq!(check_full(&old, &new), Vec::new());
    }

    #[test]
    fn a_nested_removed_field_is_located_inside_its_union_branch() {
        let new = schema(&BASE.replace(
            r#"{"name": "body", "type": "string"}"#,
            r#"{"name": "text", "type": "string", "default": ""}"#,
        ));
        let found = check_full(&schema(BASE), &new);
        assert!(
            found.iter().any(
                |incompatibility| incompatibility.direction == Direction::Forward
                    && incompatibility.location == "content[Text].body"
            ),
            "{found:#?}"
        );
    }

    #[test]
    fn a_new_enum_symbol_without_default_breaks_forward() {
        let new = schema(&BASE.replace(r#"["a", "b"]"#, r#"["a", "b", "c"]"#));
        let found = check_full(&schema(BASE), &new);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].direction, Direction::Forward);
        assert!(found[0].problem.contains("gained the symbol `c`"));
    }

    #[test]
    fn a_new_enum_symbol_is_fine_when_the_old_enum_has_a_default() {
        let old = schema(&BASE.replace(
            r#""symbols": ["a", "b"]"#,
            r#""symbols": ["a", "b"], "default": "a""#,
        ));
        let new = schema(&BASE.replace(
            r#""symbols": ["a", "b"]"#,
            r#""symbols": ["a", "b", "c"], "default": "a""#,
        ));
        assert_eq!(check_full(&old, &new), Vec::new());
    }

    #[test]
    fn a_new_union_branch_breaks_forward() {
        let new = schema(&BASE.replace(
            r#"{"type": "record", "name": "Image", "fields": [{"name": "link", "type": "string"}]}"#,
            r#"{"type": "record", "name": "Image", "fields": [{"name": "link", "type": "string"}]},
               {"type": "record", "name": "Audio", "fields": [{"name": "link", "type": "string"}]}"#,
        ));
        let found = check_full(&schema(BASE), &new);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].direction, Direction::Forward);
        assert_eq!(found[0].location, "content");
        assert!(found[0].problem.contains("`caas.test.Audio`"));
    }

    #[test]
    fn a_type_widening_breaks_only_forward() {
        let old = with_fields(r#"{"name": "count", "type": "int"}"#);
        let new = with_fields(r#"{"name": "count", "type": "long"}"#);
        let found = check_full(&old, &new);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].direction, Direction::Forward);
        assert!(found[0]
            .problem
            .contains("type changed from `int` to `long`"));
    }

    #[test]
    fn making_a_field_optional_breaks_forward_only() {
        let old = with_fields(r#"{"name": "note", "type": "string"}"#);
        let new = with_fields(r#"{"name": "note", "type": ["null", "string"], "default": null}"#);
        let found = check_full(&old, &new);
        assert_eq!(
            directions(&found),
            BTreeSet::from([Direction::Forward]),
            "{found:#?}"
        );
        assert!(found[0].problem.contains("`null`"), "{}", found[0]);
    }

    #[test]
    fn renaming_a_field_with_an_alias_and_default_is_compatible() {
        let old = with_fields(r#"{"name": "note", "type": "string", "default": ""}"#);
        let new = with_fields(
            r#"{"name": "remark", "aliases": ["note"], "type": "string", "default": ""}"#,
        );
        assert_eq!(check_full(&old, &new), Vec::new());
    }
}
