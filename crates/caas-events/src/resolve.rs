//! Avro schema resolution (writer schema → reader schema) over generic values, as the Avro
//! specification defines it.
//!
//! apache-avro's own `Value::resolve` picks a reader union branch by trying each branch until
//! the value fits, so a record whose fields are a subset of another branch's (our `Text` inside
//! `Interactive`, `PauseCampaign` and `ResumeCampaign`) resolves to the wrong branch, silently.
//! Here union branches, records and enums are matched by name, as the specification says;
//! record fields by name, with the reader's defaults for fields the writer lacks.

use std::collections::HashMap;

use apache_avro::schema::{Name, RecordField, UnionSchema};
use apache_avro::types::Value;
use apache_avro::Schema;
use serde_json::Value as Json;

/// Named types of one schema by full name, to follow `Schema::Ref`s.
#[derive(Debug, Default)]
pub(crate) struct Names<'s> {
    by_full_name: HashMap<String, &'s Schema>,
}

impl<'s> Names<'s> {
    /// Collects every named type defined in `schema`.
    pub(crate) fn of(schema: &'s Schema) -> Self {
        let mut names = Self::default();
        names.collect(schema);
        names
    }

    fn collect(&mut self, schema: &'s Schema) {
        match schema {
            Schema::Record(record) => {
                self.by_full_name.insert(full_name(&record.name), schema);
                for field in &record.fields {
                    self.collect(&field.schema);
                }
            }
            Schema::Enum(enumeration) => {
                self.by_full_name
                    .insert(full_name(&enumeration.name), schema);
            }
            Schema::Fixed(fixed) | Schema::Duration(fixed) => {
                self.by_full_name.insert(full_name(&fixed.name), schema);
            }
            Schema::Array(array) => self.collect(&array.items),
            Schema::Map(map) => self.collect(&map.types),
            Schema::Union(union) => {
                for variant in union.variants() {
                    self.collect(variant);
                }
            }
            _ => {}
        }
    }

    /// The schema itself, or the definition a `Ref` names.
    fn deref(&self, schema: &'s Schema) -> Result<&'s Schema, String> {
        match schema {
            Schema::Ref { name } => self
                .by_full_name
                .get(&full_name(name))
                .copied()
                .ok_or_else(|| format!("reference to undefined type {}", full_name(name))),
            other => Ok(other),
        }
    }
}

fn full_name(name: &Name) -> String {
    name.fullname(None)
}

/// The name of a named schema (record, enum, fixed), if it is one.
fn schema_name(schema: &Schema) -> Option<&Name> {
    match schema {
        Schema::Record(record) => Some(&record.name),
        Schema::Enum(enumeration) => Some(&enumeration.name),
        Schema::Fixed(fixed) | Schema::Duration(fixed) => Some(&fixed.name),
        _ => None,
    }
}

/// The reader's aliases of a named schema.
fn schema_aliases(schema: &Schema) -> Vec<String> {
    let aliases = match schema {
        Schema::Record(record) => record.aliases.as_ref(),
        Schema::Enum(enumeration) => enumeration.aliases.as_ref(),
        Schema::Fixed(fixed) | Schema::Duration(fixed) => fixed.aliases.as_ref(),
        _ => None,
    };
    aliases
        .map(|aliases| {
            aliases
                .iter()
                .map(|alias| alias.name().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The physical Avro type, logical types mapped to what carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Physical {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Other,
}

fn physical(schema: &Schema) -> Physical {
    match schema {
        Schema::Null => Physical::Null,
        Schema::Boolean => Physical::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Physical::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Physical::Long,
        Schema::Float => Physical::Float,
        Schema::Double => Physical::Double,
        Schema::Bytes => Physical::Bytes,
        Schema::String => Physical::String,
        _ => Physical::Other,
    }
}

/// Whether a writer of `writer` type can be read as `reader` (same type or an Avro promotion).
fn promotable(writer: Physical, reader: Physical) -> bool {
    use Physical::*;
    writer == reader && writer != Other
        || matches!(
            (writer, reader),
            (Int, Long | Float | Double)
                | (Long, Float | Double)
                | (Float, Double)
                | (String, Bytes)
                | (Bytes, String)
        )
}

/// Whether a writer schema matches a reader union branch (spec: "the first schema in the
/// reader's union that matches the selected writer's union schema").
fn branch_matches(writer: &Schema, reader: &Schema) -> bool {
    match (writer, reader) {
        (Schema::Record(_), Schema::Record(_))
        | (Schema::Enum(_), Schema::Enum(_))
        | (Schema::Fixed(_), Schema::Fixed(_)) => names_match(writer, reader),
        (Schema::Array(_), Schema::Array(_)) | (Schema::Map(_), Schema::Map(_)) => true,
        _ => promotable(physical(writer), physical(reader)),
    }
}

fn names_match(writer: &Schema, reader: &Schema) -> bool {
    match (schema_name(writer), schema_name(reader)) {
        (Some(writer_name), Some(reader_name)) => {
            writer_name.name() == reader_name.name()
                || schema_aliases(reader)
                    .iter()
                    .any(|alias| alias == writer_name.name())
        }
        _ => false,
    }
}

/// Resolves `value`, written with `writer`, to `reader`.
pub(crate) fn resolve<'w, 'r>(
    value: Value,
    writer: &'w Schema,
    writer_names: &Names<'w>,
    reader: &'r Schema,
    reader_names: &Names<'r>,
) -> Result<Value, String> {
    let writer = writer_names.deref(writer)?;
    let reader = reader_names.deref(reader)?;

    if let Schema::Union(writer_union) = writer {
        let Value::Union(index, inner) = value else {
            return Err(format!("writer union holds a non-union value {value:?}"));
        };
        let branch = writer_union
            .variants()
            .get(index as usize)
            .ok_or_else(|| format!("writer union has no branch {index}"))?;
        return resolve(*inner, branch, writer_names, reader, reader_names);
    }

    if let Schema::Union(reader_union) = reader {
        return resolve_into_union(value, writer, writer_names, reader_union, reader_names);
    }

    match (writer, reader) {
        (Schema::Record(writer_record), Schema::Record(reader_record)) => {
            if !names_match(writer, reader) {
                return Err(mismatch(writer, reader));
            }
            let Value::Record(values) = value else {
                return Err(format!(
                    "record {} holds a non-record value",
                    full_name(&writer_record.name)
                ));
            };
            let mut written: HashMap<String, Value> = values.into_iter().collect();
            let mut fields = Vec::with_capacity(reader_record.fields.len());
            for reader_field in &reader_record.fields {
                let writer_field = writer_record.fields.iter().find(|candidate| {
                    candidate.name == reader_field.name
                        || reader_field.aliases.contains(&candidate.name)
                });
                let resolved = match writer_field {
                    Some(writer_field) => {
                        let field_value = written.remove(&writer_field.name).ok_or_else(|| {
                            format!("record value lacks field {}", writer_field.name)
                        })?;
                        resolve(
                            field_value,
                            &writer_field.schema,
                            writer_names,
                            &reader_field.schema,
                            reader_names,
                        )
                        .map_err(|error| {
                            format!(
                                "{}.{}: {error}",
                                reader_record.name.name(),
                                reader_field.name
                            )
                        })?
                    }
                    None => default_of(reader_field, reader_names).map_err(|error| {
                        format!(
                            "{}.{}: {error}",
                            reader_record.name.name(),
                            reader_field.name
                        )
                    })?,
                };
                fields.push((reader_field.name.clone(), resolved));
            }
            Ok(Value::Record(fields))
        }
        (Schema::Enum(_), Schema::Enum(reader_enum)) => {
            if !names_match(writer, reader) {
                return Err(mismatch(writer, reader));
            }
            let Value::Enum(_, symbol) = value else {
                return Err(format!(
                    "enum {} holds a non-enum value",
                    full_name(&reader_enum.name)
                ));
            };
            let chosen = if reader_enum.symbols.contains(&symbol) {
                symbol
            } else if let Some(default) = &reader_enum.default {
                default.clone()
            } else {
                return Err(format!(
                    "symbol {symbol:?} is not in enum {} and it has no default",
                    full_name(&reader_enum.name)
                ));
            };
            let index = reader_enum
                .symbols
                .iter()
                .position(|candidate| *candidate == chosen)
                .ok_or_else(|| format!("enum default {chosen:?} is not a symbol"))?;
            Ok(Value::Enum(index as u32, chosen))
        }
        (Schema::Array(writer_array), Schema::Array(reader_array)) => {
            let Value::Array(items) = value else {
                return Err("array holds a non-array value".to_string());
            };
            items
                .into_iter()
                .map(|item| {
                    resolve(
                        item,
                        &writer_array.items,
                        writer_names,
                        &reader_array.items,
                        reader_names,
                    )
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        (Schema::Map(writer_map), Schema::Map(reader_map)) => {
            let Value::Map(entries) = value else {
                return Err("map holds a non-map value".to_string());
            };
            entries
                .into_iter()
                .map(|(key, item)| {
                    resolve(
                        item,
                        &writer_map.types,
                        writer_names,
                        &reader_map.types,
                        reader_names,
                    )
                    .map(|resolved| (key, resolved))
                })
                .collect::<Result<HashMap<_, _>, _>>()
                .map(Value::Map)
        }
        (Schema::Fixed(writer_fixed), Schema::Fixed(reader_fixed)) => {
            if !names_match(writer, reader) || writer_fixed.size != reader_fixed.size {
                return Err(mismatch(writer, reader));
            }
            Ok(value)
        }
        _ if writer == reader && physical(writer) == Physical::Other => Ok(value),
        _ => promote(value, physical(writer), reader).ok_or_else(|| mismatch(writer, reader)),
    }
}

fn resolve_into_union<'w, 'r>(
    value: Value,
    writer: &'w Schema,
    writer_names: &Names<'w>,
    reader_union: &'r UnionSchema,
    reader_names: &Names<'r>,
) -> Result<Value, String> {
    for (index, branch) in reader_union.variants().iter().enumerate() {
        let branch = reader_names.deref(branch)?;
        if branch_matches(writer, branch) {
            let resolved = resolve(value, writer, writer_names, branch, reader_names)?;
            return Ok(Value::Union(index as u32, Box::new(resolved)));
        }
    }
    Err(format!(
        "no branch of the reader's union matches writer type {}",
        describe(writer)
    ))
}

/// Converts a primitive value to the reader's (possibly logical, possibly promoted) type.
fn promote(value: Value, writer: Physical, reader: &Schema) -> Option<Value> {
    if !promotable(writer, physical(reader)) {
        return None;
    }
    let integer = match &value {
        Value::Int(number) | Value::Date(number) | Value::TimeMillis(number) => {
            Some(i64::from(*number))
        }
        Value::Long(number)
        | Value::TimeMicros(number)
        | Value::TimestampMillis(number)
        | Value::TimestampMicros(number)
        | Value::TimestampNanos(number)
        | Value::LocalTimestampMillis(number)
        | Value::LocalTimestampMicros(number)
        | Value::LocalTimestampNanos(number) => Some(*number),
        _ => None,
    };
    let as_i32 = |number: i64| i32::try_from(number).ok();
    Some(match (reader, value) {
        (Schema::Null, Value::Null) => Value::Null,
        (Schema::Boolean, Value::Boolean(flag)) => Value::Boolean(flag),
        (Schema::Int, _) => Value::Int(as_i32(integer?)?),
        (Schema::Date, _) => Value::Date(as_i32(integer?)?),
        (Schema::TimeMillis, _) => Value::TimeMillis(as_i32(integer?)?),
        (Schema::Long, _) => Value::Long(integer?),
        (Schema::TimeMicros, _) => Value::TimeMicros(integer?),
        (Schema::TimestampMillis, _) => Value::TimestampMillis(integer?),
        (Schema::TimestampMicros, _) => Value::TimestampMicros(integer?),
        (Schema::TimestampNanos, _) => Value::TimestampNanos(integer?),
        (Schema::LocalTimestampMillis, _) => Value::LocalTimestampMillis(integer?),
        (Schema::LocalTimestampMicros, _) => Value::LocalTimestampMicros(integer?),
        (Schema::LocalTimestampNanos, _) => Value::LocalTimestampNanos(integer?),
        (Schema::Float, Value::Float(number)) => Value::Float(number),
        // Avro promotes int and long to float and double; precision loss is the spec's.
        #[allow(clippy::cast_precision_loss)]
        (Schema::Float, _) => Value::Float(integer? as f32),
        (Schema::Double, Value::Double(number)) => Value::Double(number),
        (Schema::Double, Value::Float(number)) => Value::Double(f64::from(number)),
        #[allow(clippy::cast_precision_loss)]
        (Schema::Double, _) => Value::Double(integer? as f64),
        (Schema::String, Value::String(text)) => Value::String(text),
        (Schema::String, Value::Bytes(bytes)) => Value::String(String::from_utf8(bytes).ok()?),
        (Schema::Bytes, Value::Bytes(bytes)) => Value::Bytes(bytes),
        (Schema::Bytes, Value::String(text)) => Value::Bytes(text.into_bytes()),
        _ => return None,
    })
}

/// The reader's default for a field the writer lacks.
fn default_of<'r>(field: &'r RecordField, reader_names: &Names<'r>) -> Result<Value, String> {
    let default = field
        .default
        .as_ref()
        .ok_or_else(|| "the writer lacks this field and the reader gives no default".to_string())?;
    json_to_value(default, &field.schema, reader_names)
}

/// A JSON default as a value of `schema` (Avro's JSON encoding of defaults).
fn json_to_value<'r>(json: &Json, schema: &'r Schema, names: &Names<'r>) -> Result<Value, String> {
    let schema = names.deref(schema)?;
    let wrong = || format!("default {json} does not fit {}", describe(schema));
    let integer = || json.as_i64().ok_or_else(wrong);
    Ok(match schema {
        Schema::Union(union) => {
            // A union's default belongs to its first branch that accepts it.
            for (index, branch) in union.variants().iter().enumerate() {
                if let Ok(value) = json_to_value(json, branch, names) {
                    return Ok(Value::Union(index as u32, Box::new(value)));
                }
            }
            return Err(wrong());
        }
        Schema::Null if json.is_null() => Value::Null,
        Schema::Boolean => Value::Boolean(json.as_bool().ok_or_else(wrong)?),
        Schema::Int => Value::Int(i32::try_from(integer()?).map_err(|_| wrong())?),
        Schema::Date => Value::Date(i32::try_from(integer()?).map_err(|_| wrong())?),
        Schema::TimeMillis => Value::TimeMillis(i32::try_from(integer()?).map_err(|_| wrong())?),
        Schema::Long => Value::Long(integer()?),
        Schema::TimeMicros => Value::TimeMicros(integer()?),
        Schema::TimestampMillis => Value::TimestampMillis(integer()?),
        Schema::TimestampMicros => Value::TimestampMicros(integer()?),
        Schema::TimestampNanos => Value::TimestampNanos(integer()?),
        Schema::LocalTimestampMillis => Value::LocalTimestampMillis(integer()?),
        Schema::LocalTimestampMicros => Value::LocalTimestampMicros(integer()?),
        Schema::LocalTimestampNanos => Value::LocalTimestampNanos(integer()?),
        #[allow(clippy::cast_possible_truncation)]
        Schema::Float => Value::Float(json.as_f64().ok_or_else(wrong)? as f32),
        Schema::Double => Value::Double(json.as_f64().ok_or_else(wrong)?),
        Schema::String => Value::String(json.as_str().ok_or_else(wrong)?.to_string()),
        // Bytes defaults are strings whose code points 0-255 are the bytes.
        Schema::Bytes => Value::Bytes(
            json.as_str()
                .ok_or_else(wrong)?
                .chars()
                .map(|character| u8::try_from(u32::from(character)).map_err(|_| wrong()))
                .collect::<Result<_, _>>()?,
        ),
        Schema::Enum(enumeration) => {
            let symbol = json.as_str().ok_or_else(wrong)?;
            let index = enumeration
                .symbols
                .iter()
                .position(|candidate| candidate == symbol)
                .ok_or_else(wrong)?;
            Value::Enum(index as u32, symbol.to_string())
        }
        Schema::Array(array) => Value::Array(
            json.as_array()
                .ok_or_else(wrong)?
                .iter()
                .map(|item| json_to_value(item, &array.items, names))
                .collect::<Result<_, _>>()?,
        ),
        Schema::Map(map) => Value::Map(
            json.as_object()
                .ok_or_else(wrong)?
                .iter()
                .map(|(key, item)| {
                    json_to_value(item, &map.types, names).map(|value| (key.clone(), value))
                })
                .collect::<Result<_, _>>()?,
        ),
        Schema::Record(record) => {
            let object = json.as_object().ok_or_else(wrong)?;
            let mut fields = Vec::with_capacity(record.fields.len());
            for field in &record.fields {
                let value = match object.get(&field.name) {
                    Some(field_json) => json_to_value(field_json, &field.schema, names)?,
                    None => default_of(field, names)?,
                };
                fields.push((field.name.clone(), value));
            }
            Value::Record(fields)
        }
        _ => return Err(wrong()),
    })
}

fn describe(schema: &Schema) -> String {
    match schema_name(schema) {
        Some(name) => full_name(name),
        None => format!("{:?}", physical(schema)).to_lowercase(),
    }
}

fn mismatch(writer: &Schema, reader: &Schema) -> String {
    format!(
        "writer type {} cannot be read as {}",
        describe(writer),
        describe(reader)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(json: &str) -> Schema {
        Schema::parse_str(json).expect("test schema parses")
    }

    #[test]
    fn union_branches_match_by_name_not_by_shape() {
        let union = r#"[
            {"type":"record","name":"Small","fields":[{"name":"a","type":"string"}]},
            {"type":"record","name":"Large","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}
        ]"#;
        let writer = schema(union);
        let reader = schema(union);
        let value = Value::Union(
            1,
            Box::new(Value::Record(vec![
                ("a".into(), Value::String("x".into())),
                ("b".into(), Value::Int(2)),
            ])),
        );
        let resolved = resolve(
            value,
            &writer,
            &Names::of(&writer),
            &reader,
            &Names::of(&reader),
        )
        .expect("resolves");
        assert!(matches!(resolved, Value::Union(1, _)), "{resolved:?}");
    }

    #[test]
    fn missing_fields_take_defaults_and_promotions_apply() {
        let writer = schema(r#"{"type":"record","name":"R","fields":[{"name":"n","type":"int"}]}"#);
        let reader = schema(
            r#"{"type":"record","name":"R","fields":[
                {"name":"n","type":"long"},
                {"name":"tags","type":{"type":"array","items":"string"},"default":[]},
                {"name":"kind","type":{"type":"enum","name":"K","symbols":["a","b"]},"default":"b"},
                {"name":"note","type":["null","string"],"default":null}
            ]}"#,
        );
        let value = Value::Record(vec![("n".into(), Value::Int(5))]);
        let resolved = resolve(
            value,
            &writer,
            &Names::of(&writer),
            &reader,
            &Names::of(&reader),
        )
        .expect("resolves");
        assert_eq!(
            resolved,
            Value::Record(vec![
                ("n".into(), Value::Long(5)),
                ("tags".into(), Value::Array(vec![])),
                ("kind".into(), Value::Enum(1, "b".into())),
                ("note".into(), Value::Union(0, Box::new(Value::Null))),
            ])
        );
    }

    #[test]
    fn a_required_field_the_writer_lacks_is_an_error() {
        let writer = schema(r#"{"type":"record","name":"R","fields":[]}"#);
        let reader = schema(r#"{"type":"record","name":"R","fields":[{"name":"n","type":"int"}]}"#);
        let error = resolve(
            Value::Record(vec![]),
            &writer,
            &Names::of(&writer),
            &reader,
            &Names::of(&reader),
        )
        .expect_err("no default");
        assert!(error.contains("R.n"), "{error}");
    }
}
