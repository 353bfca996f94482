//! Round trips without I/O: every event type and every content variant through the wire format,
//! both with our own schema (the direct path) and from a newer writer schema (the resolving
//! path); schema evolution in both directions; and the poison classification of bad bytes.

mod common;

use std::fmt::Debug;

use apache_avro::types::Value;
use apache_avro::Schema;
use caas_events::model::*;
use caas_events::{wire, DecodeError, Event, WriterSchema};
use common::{framed, from_newer_writer, to_generic, write_generic};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::json;

const OUR_ID: u32 = 7;

fn fail(error: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(error.to_string())
}

fn round_trip<E: Event + PartialEq + Debug>(event: &E) -> Result<(), TestCaseError> {
    let bytes = wire::encode(OUR_ID, event).map_err(fail)?;
    prop_assert_eq!(wire::schema_id(&bytes).map_err(fail)?, OUR_ID);
    let direct: E = wire::decode(&WriterSchema::of::<E>(OUR_ID), &bytes).map_err(fail)?;
    prop_assert_eq!(&direct, event);

    let (newer, newer_bytes) = from_newer_writer(event);
    let resolved: E = wire::decode(&newer, &newer_bytes).map_err(fail)?;
    prop_assert_eq!(&resolved, event);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn inbound_message_round_trips(event in common::inbound_message_strategy()) {
        round_trip(&event)?;
    }

    #[test]
    fn inbound_status_round_trips(event in common::inbound_status_strategy()) {
        round_trip(&event)?;
    }

    #[test]
    fn outbound_command_round_trips(event in common::outbound_command_strategy()) {
        round_trip(&event)?;
    }

    #[test]
    fn outbound_result_round_trips(event in common::outbound_result_strategy()) {
        round_trip(&event)?;
    }

    #[test]
    fn conversation_event_round_trips(event in common::conversation_event_strategy()) {
        round_trip(&event)?;
    }

    #[test]
    fn presence_event_round_trips(event in common::presence_event_strategy()) {
        round_trip(&event)?;
    }

    #[test]
    fn presence_update_round_trips(event in common::presence_update_strategy()) {
        round_trip(&event)?;
    }

    #[test]
    fn campaign_command_round_trips(event in common::campaign_command_strategy()) {
        round_trip(&event)?;
    }

    #[test]
    fn campaign_event_round_trips(event in common::campaign_event_strategy()) {
        round_trip(&event)?;
    }

    /// Whatever the bytes, decoding returns (never panics), and anything it rejects is poison.
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let bytes = framed(OUR_ID, &body);
        if let Err(error) = wire::decode::<InboundMessage>(&WriterSchema::of::<InboundMessage>(OUR_ID), &bytes) {
            prop_assert!(error.is_poison(), "{error}");
        }
    }
}

#[test]
fn every_content_variant_round_trips_inbound_and_outbound() {
    let contents = common::every_content();
    assert_eq!(contents.len(), 9, "one sample per union branch");
    for content in contents {
        round_trip(&common::inbound_message(content.clone())).expect("inbound");
        round_trip(&common::outbound_command(content)).expect("outbound");
    }
}

#[test]
fn samples_of_every_event_round_trip() {
    round_trip(&common::inbound_text()).expect("inbound message");
    round_trip(&common::inbound_status()).expect("inbound status");
    round_trip(&common::outbound_text()).expect("outbound command");
    round_trip(&common::outbound_result()).expect("outbound result");
    round_trip(&common::conversation_event()).expect("conversation event");
    round_trip(&common::presence_event()).expect("presence event");
    round_trip(&common::presence_update()).expect("presence update");
    round_trip(&common::campaign_command()).expect("campaign command");
    round_trip(&common::campaign_event()).expect("campaign event");
}

#[test]
fn samples_round_trip_through_json_too() {
    let message = common::inbound_message(common::every_content()[3].clone());
    let json = serde_json::to_string(&message).expect("to json");
    let back: InboundMessage = serde_json::from_str(&json).expect("from json");
    assert_eq!(back, message);
}

/// Removes `field` from the record definition named `record` anywhere in a schema.
fn remove_field(schema: &mut serde_json::Value, record: &str, field: &str) {
    match schema {
        serde_json::Value::Object(object) => {
            if object.get("name").and_then(|name| name.as_str()) == Some(record) {
                if let Some(fields) = object.get_mut("fields").and_then(|f| f.as_array_mut()) {
                    fields.retain(|candidate| candidate["name"] != field);
                }
            }
            for value in object.values_mut() {
                remove_field(value, record, field);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                remove_field(item, record, field);
            }
        }
        _ => {}
    }
}

/// Removes a field from a generic record value, at the top or inside a union branch.
fn remove_value_field(value: &mut Value, field: &str) {
    match value {
        Value::Record(fields) => {
            fields.retain(|(name, _)| name != field);
            for (_, inner) in fields.iter_mut() {
                remove_value_field(inner, field);
            }
        }
        Value::Union(_, inner) => remove_value_field(inner, field),
        _ => {}
    }
}

#[test]
fn older_writer_without_optional_fields_decodes_with_defaults() {
    let mut message = common::inbound_message(common::every_content()[1].clone());
    message.business_id = None;
    if let Content::Media(media) = &mut message.content {
        media.size_bytes = None;
    }

    let mut old_json: serde_json::Value =
        serde_json::from_str(InboundMessage::SCHEMA_JSON).expect("json");
    remove_field(&mut old_json, "InboundMessage", "business_id");
    remove_field(&mut old_json, "Media", "size_bytes");
    let old_schema = Schema::parse(&old_json).expect("old schema parses");

    let mut value = to_generic(&message);
    remove_value_field(&mut value, "business_id");
    remove_value_field(&mut value, "size_bytes");
    let bytes = framed(3, &write_generic(&old_schema, value));

    let decoded: InboundMessage =
        wire::decode(&WriterSchema::new(3, old_schema), &bytes).expect("old record decodes");
    assert_eq!(decoded, message);
}

#[test]
fn enum_symbol_added_later_reads_as_unknown() {
    let event = common::conversation_event();
    let mut newer_json: serde_json::Value =
        serde_json::from_str(ConversationEvent::SCHEMA_JSON).expect("json");
    let kind_field = newer_json["fields"]
        .as_array_mut()
        .expect("fields")
        .iter_mut()
        .find(|field| field["name"] == "kind")
        .expect("kind field");
    let symbols = kind_field["type"]["symbols"]
        .as_array_mut()
        .expect("symbols");
    symbols.push(json!("transferred"));
    let symbol_count = u32::try_from(symbols.len()).expect("few symbols");
    let newer = Schema::parse(&newer_json).expect("newer schema parses");

    let Value::Record(mut fields) = to_generic(&event) else {
        panic!("record");
    };
    for (name, value) in fields.iter_mut() {
        if name == "kind" {
            *value = Value::Enum(symbol_count - 1, "transferred".into());
        }
    }
    let bytes = framed(5, &write_generic(&newer, Value::Record(fields)));
    let decoded: ConversationEvent =
        wire::decode(&WriterSchema::new(5, newer), &bytes).expect("decodes");
    assert_eq!(decoded.kind, ConversationEventKind::Unknown);
    assert_eq!(decoded.event_id, event.event_id);
}

/// The schema of `conversation.events.v1` as it was before `opted_out` and `opted_in`.
fn conversation_event_schema_without_consent_kinds() -> Schema {
    let mut older_json: serde_json::Value =
        serde_json::from_str(ConversationEvent::SCHEMA_JSON).expect("json");
    let kind_field = older_json["fields"]
        .as_array_mut()
        .expect("fields")
        .iter_mut()
        .find(|field| field["name"] == "kind")
        .expect("kind field");
    kind_field["type"]["symbols"]
        .as_array_mut()
        .expect("symbols")
        .retain(|symbol| symbol != "opted_out" && symbol != "opted_in");
    Schema::parse(&older_json).expect("older schema parses")
}

#[test]
fn consent_kinds_round_trip_and_older_readers_see_them_as_unknown() {
    for kind in [
        ConversationEventKind::OptedOut,
        ConversationEventKind::OptedIn,
    ] {
        let mut event = common::conversation_event();
        event.kind = kind;
        event.assignee_operator_id = None;
        let bytes = wire::encode(OUR_ID, &event).expect("encodes");
        let decoded: ConversationEvent =
            wire::decode(&WriterSchema::of::<ConversationEvent>(OUR_ID), &bytes).expect("decodes");
        assert_eq!(decoded, event);

        // A reader still on the older schema resolves the new symbol to the enum's default.
        let older = conversation_event_schema_without_consent_kinds();
        let value =
            apache_avro::reader::datum::GenericDatumReader::builder(ConversationEvent::schema())
                .reader_schema(&older)
                .build()
                .expect("reader")
                .read_value(&mut &bytes[5..])
                .expect("an older reader resolves the record");
        let Value::Record(fields) = value else {
            panic!("record");
        };
        let (_, kind_value) = fields
            .iter()
            .find(|(name, _)| name == "kind")
            .expect("kind");
        assert!(
            matches!(kind_value, Value::Enum(_, symbol) if symbol == "unknown"),
            "{kind_value:?}"
        );
    }
}

#[test]
fn records_written_before_the_consent_kinds_still_decode() {
    let event = common::conversation_event();
    let older = conversation_event_schema_without_consent_kinds();
    let bytes = framed(6, &write_generic(&older, to_generic(&event)));
    let decoded: ConversationEvent =
        wire::decode(&WriterSchema::new(6, older), &bytes).expect("decodes");
    assert_eq!(decoded, event);
}

#[test]
fn a_different_record_is_a_schema_mismatch_and_poison() {
    let bytes = wire::encode(11, &common::outbound_result()).expect("encodes");
    let writer = WriterSchema::of::<OutboundResult>(11);
    let error = wire::decode::<InboundMessage>(&writer, &bytes).expect_err("not a message");
    assert!(
        matches!(error, DecodeError::SchemaMismatch { .. }),
        "{error}"
    );
    assert!(error.is_poison());
}

#[test]
fn truncated_and_padded_bodies_are_poison() {
    let bytes = wire::encode(OUR_ID, &common::inbound_text()).expect("encodes");
    let writer = WriterSchema::of::<InboundMessage>(OUR_ID);

    let truncated = &bytes[..bytes.len() - 3];
    let error = wire::decode::<InboundMessage>(&writer, truncated).expect_err("truncated");
    assert!(matches!(error, DecodeError::Malformed { .. }), "{error}");
    assert!(error.is_poison());

    let mut padded = bytes.clone();
    padded.extend_from_slice(b"xyz");
    let error = wire::decode::<InboundMessage>(&writer, &padded).expect_err("padded");
    assert!(
        matches!(error, DecodeError::TrailingBytes { trailing: 3, .. }),
        "{error}"
    );
    assert!(error.is_poison());
}

#[test]
fn json_is_not_avro() {
    let error = wire::decode::<InboundMessage>(
        &WriterSchema::of::<InboundMessage>(OUR_ID),
        br#"{"hello":"world"}"#,
    )
    .expect_err("json");
    assert!(matches!(error, DecodeError::NotFramed { .. }), "{error}");
    assert!(error.is_poison());
    assert_eq!(error.kind(), "not_framed");
}

#[test]
fn encode_into_reuses_a_buffer() {
    let mut buffer = Vec::new();
    wire::encode_into(OUR_ID, &common::inbound_text(), &mut buffer).expect("first");
    let first_len = buffer.len();
    buffer.clear();
    wire::encode_into(OUR_ID, &common::inbound_text(), &mut buffer).expect("second");
    assert_eq!(buffer.len(), first_len);
    assert_eq!(
        buffer,
        wire::encode(OUR_ID, &common::inbound_text()).expect("encode")
    );
}
