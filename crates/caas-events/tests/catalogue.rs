//! The topic catalogue (`topics/catalogue.yaml`, the source of truth for topics) lists every
//! topic an event type is bound to.

use std::collections::BTreeSet;
use std::path::PathBuf;

use caas_events::{topics, CONTRACTS};

/// Every string scalar in a YAML document (keys and values), wherever it sits.
fn scalars(node: &serde_yaml::Value, into: &mut BTreeSet<String>) {
    match node {
        serde_yaml::Value::String(text) => {
            into.insert(text.clone());
        }
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|item| scalars(item, into)),
        serde_yaml::Value::Mapping(mapping) => {
            for (key, value) in mapping {
                scalars(key, into);
                scalars(value, into);
            }
        }
        serde_yaml::Value::Tagged(tagged) => scalars(&tagged.value, into),
        _ => {}
    }
}

#[test]
fn every_event_topic_is_in_the_catalogue() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../topics/catalogue.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let document: serde_yaml::Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()));
    let mut names = BTreeSet::new();
    scalars(&document, &mut names);
    let missing: Vec<&str> = CONTRACTS
        .iter()
        .map(|contract| contract.topic)
        .chain(topics::ALL)
        .filter(|topic| !names.contains(*topic))
        .collect();
    assert!(
        missing.is_empty(),
        "topics of caas-events missing from {}: {missing:?}",
        path.display()
    );
}
