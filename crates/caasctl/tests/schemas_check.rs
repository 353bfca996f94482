//! `schemas check` and `schemas apply` end to end: against the git history of a scratch
//! repository (offline), and against the real schema registry of the local stack on a throwaway
//! subject that is deleted permanently afterwards.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use caasctl::registry::{Registry, DEFAULT_REGISTRY_URL, REGISTRY_URL_VARIABLE};
use caasctl::schemas;
use common::{unique, Scratch};

const V1: &str = r#"{
  "type": "record", "name": "Thing", "namespace": "caas.test",
  "fields": [
    {"name": "event_id", "type": "string", "doc": "id"},
    {"name": "tenant_id", "type": "string", "doc": "tenant"}
  ]
}"#;

const V2_REMOVED_REQUIRED: &str = r#"{
  "type": "record", "name": "Thing", "namespace": "caas.test",
  "fields": [
    {"name": "event_id", "type": "string", "doc": "id"}
  ]
}"#;

const V2_ADDED_WITH_DEFAULT: &str = r#"{
  "type": "record", "name": "Thing", "namespace": "caas.test",
  "fields": [
    {"name": "event_id", "type": "string", "doc": "id"},
    {"name": "tenant_id", "type": "string", "doc": "tenant"},
    {"name": "priority", "type": "int", "default": 0, "doc": "new, with a default"}
  ]
}"#;

const V2_ADDED_WITHOUT_DEFAULT: &str = r#"{
  "type": "record", "name": "Thing", "namespace": "caas.test",
  "fields": [
    {"name": "event_id", "type": "string", "doc": "id"},
    {"name": "tenant_id", "type": "string", "doc": "tenant"},
    {"name": "priority", "type": "int", "doc": "new, without a default"}
  ]
}"#;

const CATALOGUE: &str = r#"
services:
  - {name: producer, description: writes things}
  - {name: consumer, description: reads things}
keys:
  - {name: thing, format: utf-8 string, pattern: "<tenant_id>:<thing>", example: "acme:1", description: a thing}
dead_letter_headers: []
topics:
  - name: things.v1
    description: things
    partitions: 1
    replication_factor: 1
    min_insync_replicas: 1
    retention_ms: 3600000
    cleanup_policy: delete
    key: thing
    value: {schema: schemas/caas.test.Thing.avsc, record: caas.test.Thing}
    producers: [producer]
    consumers: [consumer]
  - name: things.v1.dlq
    description: poison things
    dead_letter_for: things.v1
    partitions: 1
    replication_factor: 1
    min_insync_replicas: 1
    retention_ms: 3600000
    cleanup_policy: delete
    producers: [consumer]
"#;

const SCHEMA_PATH: &str = "schemas/caas.test.Thing.avsc";

/// A scratch git repository with the catalogue and V1 committed.
fn repository_with_v1() -> Scratch {
    let scratch = Scratch::new("caasctl-schemas");
    scratch.write("topics/catalogue.yaml", CATALOGUE);
    scratch.write(SCHEMA_PATH, V1);
    scratch.git(&["init", "--quiet"]);
    scratch.git(&["add", "."]);
    scratch.git(&["commit", "--quiet", "-m", "v1"]);
    scratch
}

fn check_against_git(scratch: &Scratch) -> Output {
    Command::new(env!("CARGO_BIN_EXE_caasctl"))
        .args(["schemas", "check", "--against", "git", "--catalogue"])
        .arg(scratch.path.join("topics/catalogue.yaml"))
        .output()
        .expect("run caasctl")
}

#[test]
fn git_check_rejects_a_removed_required_field_with_a_clear_report() {
    let scratch = repository_with_v1();
    scratch.write(SCHEMA_PATH, V2_REMOVED_REQUIRED);
    let output = check_against_git(&scratch);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "must fail:\n{report}");
    for needle in [
        "FAIL things.v1-value",
        SCHEMA_PATH,
        "incompatible with commit",
        "field `tenant_id` removed without a default",
    ] {
        assert!(
            report.contains(needle),
            "report lacks {needle:?}:\n{report}"
        );
    }
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("1 of 1 schema(s) break FULL_TRANSITIVE"),
        "{error}"
    );
}

#[test]
fn git_check_accepts_an_added_field_with_a_default() {
    let scratch = repository_with_v1();
    scratch.write(SCHEMA_PATH, V2_ADDED_WITH_DEFAULT);
    let output = check_against_git(&scratch);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn git_check_rejects_an_added_field_without_default() {
    let scratch = repository_with_v1();
    scratch.write(SCHEMA_PATH, V2_ADDED_WITHOUT_DEFAULT);
    let output = check_against_git(&scratch);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "must fail:\n{report}");
    assert!(
        report.contains("field `priority` added without a default"),
        "{report}"
    );
}

#[test]
fn git_check_is_transitive_over_every_committed_version() {
    let scratch = repository_with_v1();
    // v2 gives tenant_id a default (compatible with v1) and is committed ...
    scratch.write(
        SCHEMA_PATH,
        &V1.replace(
            r#""doc": "tenant"}"#,
            r#""doc": "tenant", "default": "none"}"#,
        ),
    );
    scratch.git(&["commit", "--quiet", "-am", "v2"]);
    // ... so dropping tenant_id is compatible with v2, but not with v1.
    scratch.write(SCHEMA_PATH, V2_REMOVED_REQUIRED);
    let loaded = caasctl::catalogue::load(&scratch.path.join("topics/catalogue.yaml")).unwrap();
    let reports = schemas::check_against_git(&loaded).expect("git check runs");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].compared, 2);
    assert_eq!(reports[0].failures.len(), 1, "{reports:#?}");
}

#[test]
fn git_check_without_any_commit_has_nothing_to_compare() {
    let scratch = Scratch::new("caasctl-schemas-empty");
    scratch.write("topics/catalogue.yaml", CATALOGUE);
    scratch.write(SCHEMA_PATH, V1);
    scratch.git(&["init", "--quiet"]);
    let output = check_against_git(&scratch);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("no committed version yet"), "{report}");
}

fn registry() -> Registry {
    let url = std::env::var(REGISTRY_URL_VARIABLE)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_REGISTRY_URL.to_string());
    Registry::new(&url, Duration::from_secs(10)).expect("registry client")
}

/// Runs `scenario` on a fresh subject and deletes the subject permanently afterwards, even when
/// the scenario fails.
async fn with_throwaway_subject<F, Fut>(scenario: F)
where
    F: FnOnce(Registry, String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let registry = registry();
    let subject = format!("{}-value", unique("caasctl-test"));
    let outcome = tokio::spawn(scenario(registry.clone(), subject.clone())).await;
    registry
        .delete_subject_permanently(&subject)
        .await
        .expect("delete the throwaway subject");
    assert_eq!(
        registry.versions(&subject).await.expect("versions"),
        None,
        "subject deleted"
    );
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test]
async fn registry_apply_is_idempotent_and_sets_full_transitive_first() {
    with_throwaway_subject(|registry, subject| async move {
        let first = schemas::apply_subject(&registry, &subject, SCHEMA_PATH, V1)
            .await
            .expect("first apply");
        assert!(
            first.contains("compatibility unset -> FULL_TRANSITIVE"),
            "{first}"
        );
        assert!(first.contains("registered a new version"), "{first}");
        let second = schemas::apply_subject(&registry, &subject, SCHEMA_PATH, V1)
            .await
            .expect("second apply");
        assert!(second.contains(": unchanged (id"), "{second}");
        let id = |line: &str| {
            line.split("(id ")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(id(&first), id(&second), "same schema, same id");
        assert_eq!(
            registry
                .subject_compatibility(&subject)
                .await
                .unwrap()
                .as_deref(),
            Some("FULL_TRANSITIVE")
        );
        assert_eq!(registry.versions(&subject).await.unwrap(), Some(vec![1]));
    })
    .await;
}

#[tokio::test]
async fn registry_check_rejects_removed_required_and_added_without_default_and_accepts_added_with_default(
) {
    with_throwaway_subject(|registry, subject| async move {
        schemas::apply_subject(&registry, &subject, SCHEMA_PATH, V1)
            .await
            .expect("apply v1");

        let removed = schemas::check_subject_against_registry(
            &registry,
            &subject,
            SCHEMA_PATH,
            V2_REMOVED_REQUIRED,
        )
        .await
        .expect("check runs");
        assert!(!removed.is_ok());
        assert_eq!(removed.failures[0].version, "registry version 1");
        assert!(
            removed.failures[0]
                .problems
                .iter()
                .any(|problem| problem.contains("field `tenant_id` removed without a default")),
            "{removed:#?}"
        );
        assert!(
            !registry
                .is_compatible_with_version(&subject, 1, V2_REMOVED_REQUIRED)
                .await
                .unwrap(),
            "the registry itself agrees"
        );

        let without_default = schemas::check_subject_against_registry(
            &registry,
            &subject,
            SCHEMA_PATH,
            V2_ADDED_WITHOUT_DEFAULT,
        )
        .await
        .expect("check runs");
        assert!(!without_default.is_ok(), "{without_default:#?}");
        assert!(
            !registry
                .is_compatible_with_version(&subject, 1, V2_ADDED_WITHOUT_DEFAULT)
                .await
                .unwrap(),
            "the registry agrees: FULL needs a default"
        );

        let with_default = schemas::check_subject_against_registry(
            &registry,
            &subject,
            SCHEMA_PATH,
            V2_ADDED_WITH_DEFAULT,
        )
        .await
        .expect("check runs");
        assert!(with_default.is_ok(), "{with_default:#?}");

        // apply refuses the breaking version (the registry answers 409) and keeps one version
        let refused = schemas::apply_subject(&registry, &subject, SCHEMA_PATH, V2_REMOVED_REQUIRED)
            .await
            .expect_err("incompatible schema refused");
        assert!(refused.to_string().contains("409"), "{refused}");
        // the compatible one registers as version 2
        let accepted =
            schemas::apply_subject(&registry, &subject, SCHEMA_PATH, V2_ADDED_WITH_DEFAULT)
                .await
                .expect("compatible schema registered");
        assert!(accepted.contains("version 2"), "{accepted}");
    })
    .await;
}
