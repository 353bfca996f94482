//! The generated topic docs (`topics/README.md`, `topics/asyncapi.yaml`) match the catalogue
//! and the schemas: this test fails when someone changes either without regenerating.

mod common;

use std::process::Command;

use caasctl::{catalogue, docs};
use common::{repo_root, Scratch};
use serde_yaml::Value;

fn render_repository_docs() -> (catalogue::LoadedCatalogue, docs::Docs) {
    let loaded = catalogue::load(&repo_root().join(catalogue::DEFAULT_CATALOGUE))
        .unwrap_or_else(|error| panic!("the repository's catalogue must load: {error}"));
    let generated = docs::render(&loaded).expect("render docs");
    (loaded, generated)
}

#[test]
fn committed_docs_match_the_catalogue_and_schemas() {
    let (loaded, generated) = render_repository_docs();
    let stale = docs::stale_files(&loaded.root, &generated);
    assert!(
        stale.is_empty(),
        "{} out of date with topics/catalogue.yaml and schemas/: run `{}` and commit the result",
        stale.join(" and "),
        docs::REGENERATE_COMMAND
    );
}

#[test]
fn rendering_is_deterministic() {
    let (_, first) = render_repository_docs();
    let (_, second) = render_repository_docs();
    assert_eq!(first, second);
}

#[test]
fn a_changed_catalogue_or_schema_makes_the_docs_stale() {
    let scratch = Scratch::new("caasctl-docs").with_repository_contracts();
    let catalogue_path = scratch.path.join("topics/catalogue.yaml");
    let loaded = catalogue::load(&catalogue_path).expect("copy loads");
    docs::write(&loaded.root, &docs::render(&loaded).unwrap()).expect("write docs");
    let fresh = catalogue::load(&catalogue_path).unwrap();
    assert!(docs::stale_files(&fresh.root, &docs::render(&fresh).unwrap()).is_empty());

    // a description changes in the catalogue
    let edited = scratch.read("topics/catalogue.yaml").replace(
        "description: A customer's message to the business",
        "description: A message from a customer to the business",
    );
    scratch.write("topics/catalogue.yaml", &edited);
    let changed = catalogue::load(&catalogue_path).unwrap();
    assert_eq!(
        docs::stale_files(&changed.root, &docs::render(&changed).unwrap()),
        [docs::README_PATH, docs::ASYNCAPI_PATH]
    );
    docs::write(&changed.root, &docs::render(&changed).unwrap()).unwrap();

    // a field's doc changes in a schema
    let schema_path = "schemas/caas.v1.ConversationEvent.avsc";
    let schema = scratch.read(schema_path).replace(
        "\"doc\": \"What happened.\"",
        "\"doc\": \"What happened to it.\"",
    );
    scratch.write(schema_path, &schema);
    let changed = catalogue::load(&catalogue_path).unwrap();
    assert_eq!(
        docs::stale_files(&changed.root, &docs::render(&changed).unwrap()),
        [docs::README_PATH, docs::ASYNCAPI_PATH]
    );
}

#[test]
fn the_binary_check_fails_on_stale_docs_and_says_how_to_regenerate() {
    let scratch = Scratch::new("caasctl-docs-bin").with_repository_contracts();
    let catalogue_path = scratch.path.join("topics/catalogue.yaml");
    let run = |arguments: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_caasctl"))
            .args(["topics", "docs", "--catalogue"])
            .arg(&catalogue_path)
            .args(arguments)
            .output()
            .expect("run caasctl")
    };
    let missing = run(&["--check"]);
    assert!(!missing.status.success(), "no docs yet: --check must fail");
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(message.contains("topics/README.md"), "{message}");
    assert!(message.contains(docs::REGENERATE_COMMAND), "{message}");

    assert!(run(&[]).status.success(), "generating succeeds");
    let up_to_date = run(&["--check"]);
    assert!(
        up_to_date.status.success(),
        "{}",
        String::from_utf8_lossy(&up_to_date.stderr)
    );
}

#[test]
fn the_readme_documents_topics_keys_fields_nested_types_and_dlq_headers() {
    let (loaded, generated) = render_repository_docs();
    let readme = &generated.readme;
    for topic in &loaded.catalogue.topics {
        assert!(
            readme.contains(&format!("## `{}`", topic.name)),
            "{}",
            topic.name
        );
        assert!(readme.contains(topic.description.trim()), "{}", topic.name);
        for service in topic.producers.iter().chain(&topic.consumers) {
            assert!(readme.contains(service.as_str()));
        }
    }
    for header in &loaded.catalogue.dead_letter_headers {
        assert!(readme.contains(&format!("`{}`", header.name)));
    }
    for needle in [
        "`<tenant_id>:<channel>:<customer_id>`", // the conversation key
        "#### `caas.v1.InboundMessage` (record)", // the value record
        "#### `caas.v1.ReplyContext` (record)",  // a nested record inside a union
        "#### `caas.v1.Channel` (enum)",         // an enum with its symbols
        "`whatsapp`, `rcs`",
        "`event_id` | `string` | required |", // a field, its type, required
        "`long (timestamp-millis)`",          // logical types
        "`null` \\| [`ReplyContext`]",        // union branches, linked
        "subject `inbound.messages.v1-value`",
    ] {
        assert!(readme.contains(needle), "README lacks {needle:?}");
    }
}

#[test]
fn the_asyncapi_document_has_channels_operations_messages_and_kafka_bindings() {
    let (loaded, generated) = render_repository_docs();
    let document: Value = serde_yaml::from_str(&generated.asyncapi).expect("valid YAML");
    assert_eq!(document["asyncapi"], Value::from("3.0.0"));
    let channels = document["channels"].as_mapping().expect("channels");
    assert_eq!(channels.len(), loaded.catalogue.topics.len());
    let operations = document["operations"].as_mapping().expect("operations");
    let expected_operations: usize = loaded
        .catalogue
        .topics
        .iter()
        .map(|topic| topic.producers.len() + topic.consumers.len())
        .sum();
    assert_eq!(operations.len(), expected_operations);

    let channel = &document["channels"]["inboundMessagesV1"];
    assert_eq!(channel["address"], Value::from("inbound.messages.v1"));
    let kafka = &channel["bindings"]["kafka"];
    assert_eq!(kafka["partitions"], Value::from(12));
    assert_eq!(kafka["replicas"], Value::from(3));
    assert_eq!(
        kafka["topicConfiguration"]["retention.ms"],
        Value::from(604_800_000)
    );

    let send = &document["operations"]["ingestSendInboundMessagesV1"];
    assert_eq!(send["action"], Value::from("send"));
    assert_eq!(
        send["channel"]["$ref"],
        Value::from("#/channels/inboundMessagesV1")
    );
    let receive = &document["operations"]["loggerReceiveInboundMessagesV1"];
    assert_eq!(receive["action"], Value::from("receive"));

    let message = &document["components"]["messages"]["InboundMessage"];
    assert_eq!(
        message["payload"]["schemaFormat"],
        Value::from("application/vnd.apache.avro;version=1.9.0")
    );
    assert_eq!(
        message["payload"]["schema"]["name"],
        Value::from("InboundMessage")
    );
    assert_eq!(
        message["bindings"]["kafka"]["key"]["type"],
        Value::from("string")
    );
    let dead_letter = &document["components"]["messages"]["DeadLetterRecord"];
    assert!(dead_letter["headers"]["properties"]["caas.original.offset"].is_mapping());
}
