//! The `.avsc` files themselves: the expected set, each parses, documents every record, enum and
//! field, starts with the envelope, gives optional fields a default, defines shared types the
//! same way everywhere, and accepts what the Rust types write.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::Schema;
use caas_events::{wire, Event, CONTRACTS};
use serde_json::Value as Json;

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

/// Every schema file, by file name.
fn schema_files() -> BTreeMap<String, Json> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(schemas_dir()).expect("schemas/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|ext| ext.to_str()) != Some("avsc") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .expect("utf-8 name")
            .to_string();
        let text = std::fs::read_to_string(&path).expect("readable");
        let json: Json = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{name} is not JSON: {error}"));
        files.insert(name, json);
    }
    files
}

#[test]
fn the_schema_files_are_exactly_the_contracts() {
    let on_disk: BTreeSet<String> = schema_files().into_keys().collect();
    let expected: BTreeSet<String> = CONTRACTS
        .iter()
        .map(|contract| contract.schema_file.to_string())
        .collect();
    assert_eq!(on_disk, expected);
    for contract in CONTRACTS {
        let text = std::fs::read_to_string(schemas_dir().join(contract.schema_file)).expect("file");
        assert_eq!(
            text, contract.schema_json,
            "{} embedded as is",
            contract.schema_file
        );
        assert_eq!(
            contract.schema_file,
            format!("{}.avsc", contract.record_name),
            "file named after its record"
        );
    }
}

#[test]
fn every_schema_parses_standalone_in_namespace_caas_v1() {
    for (name, json) in schema_files() {
        let schema = Schema::parse(&json).unwrap_or_else(|error| panic!("{name}: {error}"));
        let Schema::Record(record) = &schema else {
            panic!("{name} is not a record");
        };
        assert_eq!(record.name.namespace(), Some("caas.v1"), "{name}");
        assert_eq!(format!("{}.avsc", record.name.fullname(None)), name);
    }
}

/// Calls `visit(path, node)` for every named type definition and every record field.
fn walk<'a>(node: &'a Json, path: &str, visit: &mut dyn FnMut(&str, &'a Json)) {
    match node {
        Json::Array(branches) => {
            for branch in branches {
                walk(branch, path, visit);
            }
        }
        Json::Object(object) => {
            let kind = object.get("type").and_then(Json::as_str);
            if matches!(kind, Some("record" | "enum" | "fixed")) {
                let name = object.get("name").and_then(Json::as_str).unwrap_or("?");
                let here = format!("{path}/{name}");
                visit(&here, node);
                if let Some(fields) = object.get("fields").and_then(Json::as_array) {
                    for field in fields {
                        let field_name = field.get("name").and_then(Json::as_str).unwrap_or("?");
                        let field_path = format!("{here}.{field_name}");
                        visit(&field_path, field);
                        walk(&field["type"], &field_path, visit);
                    }
                }
            } else {
                for key in ["type", "items", "values"] {
                    if let Some(inner) = object.get(key) {
                        walk(inner, path, visit);
                    }
                }
            }
        }
        _ => {}
    }
}

#[test]
fn every_record_enum_and_field_has_a_doc() {
    let mut missing = Vec::new();
    for (name, json) in schema_files() {
        walk(&json, &name, &mut |path, node| {
            let doc = node.get("doc").and_then(Json::as_str).unwrap_or("");
            if doc.trim().is_empty() {
                missing.push(path.to_string());
            }
        });
    }
    assert!(missing.is_empty(), "missing docs: {missing:#?}");
}

#[test]
fn optional_fields_default_to_null_and_arrays_have_defaults_when_optional() {
    let mut wrong = Vec::new();
    for (name, json) in schema_files() {
        walk(&json, &name, &mut |path, node| {
            let Some(branches) = node.get("type").and_then(Json::as_array) else {
                return;
            };
            if node.get("name").is_none() || node.get("fields").is_some() {
                return;
            }
            if branches.first() == Some(&Json::from("null"))
                && node.get("default") != Some(&Json::Null)
            {
                wrong.push(path.to_string());
            }
        });
    }
    assert!(
        wrong.is_empty(),
        "nullable fields without `default: null`: {wrong:#?}"
    );
}

#[test]
fn every_event_starts_with_the_envelope() {
    let timestamp = serde_json::json!({"type": "long", "logicalType": "timestamp-millis"});
    for (name, json) in schema_files() {
        let fields = json["fields"].as_array().expect("fields");
        let names: Vec<&str> = fields[..8]
            .iter()
            .map(|field| field["name"].as_str().expect("name"))
            .collect();
        assert_eq!(
            names,
            [
                "event_id",
                "tenant_id",
                "conversation_key",
                "channel",
                "occurred_at",
                "recorded_at",
                "source",
                "trace_parent"
            ],
            "{name}"
        );
        for index in [0, 1, 2, 6] {
            assert_eq!(fields[index]["type"], "string", "{name} field {index}");
        }
        assert_eq!(fields[4]["type"], timestamp, "{name} occurred_at");
        assert_eq!(fields[5]["type"], timestamp, "{name} recorded_at");
        assert_eq!(
            fields[7]["type"],
            serde_json::json!(["null", "string"]),
            "{name}"
        );
        assert_eq!(fields[7]["default"], Json::Null, "{name}");
        let channel = &fields[3]["type"];
        let channel_enum = if name.starts_with("caas.v1.Presence") {
            // Operator presence belongs to no conversation, so no channel.
            assert_eq!(channel[0], "null", "{name} channel is optional");
            assert_eq!(fields[3]["default"], Json::Null, "{name}");
            &channel[1]
        } else {
            channel
        };
        assert_eq!(channel_enum["name"], "Channel", "{name}");
        assert_eq!(
            channel_enum["symbols"],
            serde_json::json!(["whatsapp", "rcs"])
        );
    }
}

/// Replaces nested named definitions by their full names, so one type's own definition can be
/// compared across files whatever was defined first where.
fn shallow(node: &Json, top: bool) -> Json {
    match node {
        Json::Array(items) => Json::Array(items.iter().map(|item| shallow(item, false)).collect()),
        Json::Object(object) => {
            let kind = object.get("type").and_then(Json::as_str);
            if !top && matches!(kind, Some("record" | "enum" | "fixed")) {
                let name = object["name"].as_str().expect("named");
                return Json::from(format!("caas.v1.{name}"));
            }
            let mut copy = serde_json::Map::new();
            for (key, value) in object {
                let value = match key.as_str() {
                    "type" | "items" | "values" => shallow(value, false),
                    "fields" => Json::Array(
                        value
                            .as_array()
                            .expect("fields")
                            .iter()
                            .map(|field| {
                                let mut field = field.clone();
                                field["type"] = shallow(&field["type"], false);
                                field
                            })
                            .collect(),
                    ),
                    _ => value.clone(),
                };
                copy.insert(key.clone(), value);
            }
            Json::Object(copy)
        }
        other => other.clone(),
    }
}

#[test]
fn shared_types_are_defined_identically_in_every_file() {
    let mut definitions: BTreeMap<String, (String, Json)> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for (name, json) in schema_files() {
        walk(&json, &name, &mut |path, node| {
            if node.get("fields").is_none() && node.get("symbols").is_none() {
                return; // a field, not a type
            }
            let type_name = node["name"].as_str().expect("named").to_string();
            let definition = shallow(node, true);
            match definitions.get(&type_name) {
                Some((first_path, first)) if *first != definition => {
                    conflicts.push(format!("{type_name}: {first_path} vs {path}"));
                }
                Some(_) => {}
                None => {
                    definitions.insert(type_name, (path.to_string(), definition));
                }
            }
        });
    }
    assert!(
        conflicts.is_empty(),
        "diverging definitions: {conflicts:#?}"
    );
    assert!(definitions.contains_key("Media") && definitions.contains_key("Channel"));
}

/// What the Rust type writes is valid Avro for the schema, checked by apache-avro's own
/// generic reader and validator rather than our typed path.
fn assert_valid<E: Event>(event: &E) {
    let body = wire::encode_body(event).expect("encodes");
    let value = GenericDatumReader::builder(E::schema())
        .build()
        .expect("reader")
        .read_value(&mut &body[..])
        .unwrap_or_else(|error| panic!("{}: {error}", E::RECORD_NAME));
    assert!(value.validate(E::schema()), "{} validates", E::RECORD_NAME);
}

#[test]
fn rust_types_serialize_against_their_schemas() {
    for content in common::every_content() {
        assert_valid(&common::inbound_message(content.clone()));
        assert_valid(&common::outbound_command(content));
    }
    assert_valid(&common::inbound_status());
    assert_valid(&common::outbound_result());
    assert_valid(&common::conversation_event());
    assert_valid(&common::presence_event());
    assert_valid(&common::presence_update());
    assert_valid(&common::campaign_command());
    assert_valid(&common::campaign_event());
}
