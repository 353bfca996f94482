//! `caasctl schemas apply` and `caasctl schemas check`: the value schemas of the catalogue in
//! the schema registry.
//!
//! - `apply` sets each subject (`<topic>-value`) to FULL_TRANSITIVE *before* registering, so the
//!   very first version already guards later changes, then registers the `.avsc` text as it is on
//!   disk. Re-running registers nothing new (the registry returns the existing id).
//! - `check` compares each working-tree schema with every earlier version, in both directions
//!   (FULL_TRANSITIVE): `--against git` uses every committed version of the file (offline, the
//!   default), `--against registry` every registered version, asking the registry and explaining
//!   each failure with the local check. It exits non-zero with a report naming the subject, the
//!   file, the version and what broke.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use apache_avro::Schema;
use clap::{Args, Subcommand, ValueEnum};

use crate::catalogue::{self, LoadedCatalogue};
use crate::compat::{self, Incompatibility};
use crate::registry::{Registry, RegistryError, DEFAULT_REGISTRY_URL, REGISTRY_URL_VARIABLE};

/// The compatibility level every CAAS subject has.
pub const COMPATIBILITY_LEVEL: &str = "FULL_TRANSITIVE";

/// `caasctl schemas ...`
#[derive(Debug, Args)]
pub struct SchemasArgs {
    #[command(subcommand)]
    command: SchemasCommand,
}

#[derive(Debug, Subcommand)]
enum SchemasCommand {
    /// Register every value schema under `<topic>-value` with FULL_TRANSITIVE compatibility.
    Apply(ApplyArgs),
    /// Fail when a schema in the working tree breaks compatibility with an earlier version.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
struct RegistryArgs {
    /// The topic catalogue (default: topics/catalogue.yaml in this or a parent directory).
    #[arg(long)]
    catalogue: Option<PathBuf>,
    /// The Confluent-compatible registry API.
    #[arg(long = "registry", env = REGISTRY_URL_VARIABLE, default_value = DEFAULT_REGISTRY_URL)]
    registry_url: String,
    /// Timeout of each registry request, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    #[command(flatten)]
    common: RegistryArgs,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    common: RegistryArgs,
    /// What to compare with: every committed version (`git`, works offline) or every registered
    /// version (`registry`).
    #[arg(long, value_enum, default_value_t = Against::Git)]
    against: Against,
}

/// The earlier versions `schemas check` compares with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Against {
    /// Every version of the file in the git history of HEAD.
    Git,
    /// Every version registered under the subject.
    Registry,
}

/// Why a `schemas` command could not run (incompatibilities are a report, not this error).
#[derive(Debug, thiserror::Error)]
pub enum SchemasError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// git failed.
    #[error("{0}")]
    Git(String),
    /// A schema or an answer that cannot be used.
    #[error("{0}")]
    Invalid(String),
}

/// Run `caasctl schemas ...`.
pub async fn run(arguments: SchemasArgs) -> anyhow::Result<()> {
    match arguments.command {
        SchemasCommand::Apply(apply_arguments) => {
            let (loaded, registry) = open(&apply_arguments.common)?;
            let outcomes = apply(&registry, &loaded).await;
            let mut failures = 0;
            for outcome in &outcomes {
                match outcome {
                    Ok(line) => println!("{line}"),
                    Err(error) => {
                        failures += 1;
                        eprintln!("{error}");
                    }
                }
            }
            if failures > 0 {
                anyhow::bail!(
                    "{failures} of {} subject(s) could not be applied",
                    outcomes.len()
                );
            }
            Ok(())
        }
        SchemasCommand::Check(check_arguments) => {
            let (loaded, registry) = open(&check_arguments.common)?;
            let reports = match check_arguments.against {
                Against::Git => check_against_git(&loaded)?,
                Against::Registry => check_against_registry(&registry, &loaded).await?,
            };
            print!("{}", render_reports(&reports, check_arguments.against));
            let failed = reports.iter().filter(|report| !report.is_ok()).count();
            if failed > 0 {
                anyhow::bail!(
                    "{failed} of {} schema(s) break {COMPATIBILITY_LEVEL} compatibility",
                    reports.len()
                );
            }
            Ok(())
        }
    }
}

fn open(arguments: &RegistryArgs) -> anyhow::Result<(LoadedCatalogue, Registry)> {
    let path = catalogue::locate(arguments.catalogue.as_deref())?;
    let loaded = catalogue::load(&path)?;
    let registry = Registry::new(
        &arguments.registry_url,
        Duration::from_millis(arguments.timeout_ms),
    )?;
    Ok((loaded, registry))
}

/// Register every value schema of the catalogue. One result per subject: a line saying what was
/// done, or why that subject failed (the others are still applied).
pub async fn apply(
    registry: &Registry,
    loaded: &LoadedCatalogue,
) -> Vec<Result<String, SchemasError>> {
    let mut outcomes = Vec::new();
    for topic in &loaded.catalogue.topics {
        let Some(schema) = loaded.value_schema(topic) else {
            continue;
        };
        let subject = topic.value_subject();
        outcomes.push(apply_subject(registry, &subject, &schema.path, &schema.text).await);
    }
    outcomes
}

/// Set FULL_TRANSITIVE on `subject`, then register `text` under it; idempotent.
pub async fn apply_subject(
    registry: &Registry,
    subject: &str,
    path: &str,
    text: &str,
) -> Result<String, SchemasError> {
    let mut actions = Vec::new();
    let level = registry.subject_compatibility(subject).await?;
    if level.as_deref() != Some(COMPATIBILITY_LEVEL) {
        registry
            .set_subject_compatibility(subject, COMPATIBILITY_LEVEL)
            .await?;
        actions.push(format!(
            "compatibility {} -> {COMPATIBILITY_LEVEL}",
            level.as_deref().unwrap_or("unset")
        ));
    }
    let registered = match registry.lookup(subject, text).await? {
        Some(existing) => existing,
        None => {
            registry.register(subject, text).await?;
            actions.push("registered a new version".to_string());
            registry.lookup(subject, text).await?.ok_or_else(|| {
                SchemasError::Invalid(format!(
                    "{subject}: registered, but the registry cannot find the schema it just stored"
                ))
            })?
        }
    };
    let what = if actions.is_empty() {
        "unchanged".to_string()
    } else {
        actions.join(", ")
    };
    Ok(format!(
        "{subject}: {what} (id {}, version {}, {path})",
        registered.id, registered.version
    ))
}

/// The result of checking one schema file against its earlier versions.
#[derive(Debug, Clone)]
pub struct SchemaReport {
    /// The registry subject, `<topic>-value`.
    pub subject: String,
    /// The `.avsc` path, relative to the repository root.
    pub path: String,
    /// How many earlier versions it was compared with.
    pub compared: usize,
    /// A remark (no earlier version yet, subject not FULL_TRANSITIVE, ...).
    pub note: Option<String>,
    /// The earlier versions it is incompatible with.
    pub failures: Vec<VersionFailure>,
}

impl SchemaReport {
    /// True when nothing broke.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Incompatibility with one earlier version.
#[derive(Debug, Clone)]
pub struct VersionFailure {
    /// Which version, e.g. `commit 1a2b3c4 (2026-11-22)` or `registry version 2`.
    pub version: String,
    /// What broke.
    pub problems: Vec<String>,
}

/// An earlier version of a schema: a label for the report and its text.
#[derive(Debug, Clone)]
pub struct EarlierVersion {
    /// e.g. `commit 1a2b3c4 (2026-11-22)`.
    pub label: String,
    /// The schema text of that version.
    pub text: String,
}

/// Compare `new` with every earlier version under FULL (together: FULL_TRANSITIVE). Pure.
pub fn check_against_versions(new: &Schema, earlier: &[EarlierVersion]) -> Vec<VersionFailure> {
    earlier
        .iter()
        .filter_map(|version| {
            let problems = match Schema::parse_str(&version.text) {
                Ok(old) => compat::check_full(&old, new)
                    .iter()
                    .map(Incompatibility::to_string)
                    .collect(),
                Err(error) => vec![format!("that version does not parse: {error}")],
            };
            (!problems.is_empty()).then(|| VersionFailure {
                version: version.label.clone(),
                problems,
            })
        })
        .collect()
}

/// Check every value schema against every committed version of its file.
pub fn check_against_git(loaded: &LoadedCatalogue) -> Result<Vec<SchemaReport>, SchemasError> {
    let mut reports = Vec::new();
    for topic in &loaded.catalogue.topics {
        let Some(schema) = loaded.value_schema(topic) else {
            continue;
        };
        let earlier = committed_versions(&loaded.root, &schema.path)?;
        let note = earlier
            .is_empty()
            .then(|| "no committed version yet: nothing to compare with".to_string());
        reports.push(SchemaReport {
            subject: topic.value_subject(),
            path: schema.path.clone(),
            compared: earlier.len(),
            note,
            failures: check_against_versions(&schema.schema, &earlier),
        });
    }
    Ok(reports)
}

/// Every distinct committed version of `path` (relative to `root`) in the history of HEAD,
/// newest first. Empty when the repository has no commit yet or the file was never committed.
pub fn committed_versions(root: &Path, path: &str) -> Result<Vec<EarlierVersion>, SchemasError> {
    let git = |arguments: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(arguments)
            .output()
            .map_err(|error| {
                SchemasError::Git(format!(
                    "cannot run git ({error}); install git or use `--against registry`"
                ))
            })
    };
    let inside = git(&["rev-parse", "--git-dir"])?;
    if !inside.status.success() {
        return Err(SchemasError::Git(format!(
            "{} is not in a git repository ({}); use `--against registry`",
            root.display(),
            String::from_utf8_lossy(&inside.stderr).trim()
        )));
    }
    if !git(&["rev-parse", "--verify", "--quiet", "HEAD"])?
        .status
        .success()
    {
        return Ok(Vec::new()); // no commit yet
    }
    let log = git(&["log", "--format=%H %h %cs", "HEAD", "--", path])?;
    if !log.status.success() {
        return Err(SchemasError::Git(format!(
            "git log of {path} failed: {}",
            String::from_utf8_lossy(&log.stderr).trim()
        )));
    }
    let mut versions: Vec<EarlierVersion> = Vec::new();
    for line in String::from_utf8_lossy(&log.stdout).lines() {
        let mut parts = line.split(' ');
        let (Some(full), Some(short), Some(date)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let shown = git(&["show", &format!("{full}:./{path}")])?;
        if !shown.status.success() {
            continue; // the commit deleted the file
        }
        let text = String::from_utf8_lossy(&shown.stdout).into_owned();
        if versions.iter().any(|version| version.text == text) {
            continue;
        }
        versions.push(EarlierVersion {
            label: format!("commit {short} ({date})"),
            text,
        });
    }
    Ok(versions)
}

/// Check every value schema against every version registered under its subject: the registry's
/// verdict (under the subject's level) and the local FULL check, which also explains failures.
pub async fn check_against_registry(
    registry: &Registry,
    loaded: &LoadedCatalogue,
) -> Result<Vec<SchemaReport>, SchemasError> {
    let mut reports = Vec::new();
    for topic in &loaded.catalogue.topics {
        let Some(schema) = loaded.value_schema(topic) else {
            continue;
        };
        let subject = topic.value_subject();
        reports.push(
            check_subject_against_registry(registry, &subject, &schema.path, &schema.text).await?,
        );
    }
    Ok(reports)
}

/// Check one schema text against every version registered under `subject`.
pub async fn check_subject_against_registry(
    registry: &Registry,
    subject: &str,
    path: &str,
    text: &str,
) -> Result<SchemaReport, SchemasError> {
    let new = Schema::parse_str(text).map_err(|error| {
        SchemasError::Invalid(format!("{path} is not a valid Avro schema: {error}"))
    })?;
    let Some(versions) = registry.versions(subject).await? else {
        return Ok(SchemaReport {
            subject: subject.to_string(),
            path: path.to_string(),
            compared: 0,
            note: Some("not registered yet: nothing to compare with".to_string()),
            failures: Vec::new(),
        });
    };
    let level = registry.subject_compatibility(subject).await?;
    let note = (level.as_deref() != Some(COMPATIBILITY_LEVEL)).then(|| {
        format!(
            "the subject's compatibility is {}, not {COMPATIBILITY_LEVEL}: run `caasctl schemas apply`",
            level.as_deref().unwrap_or("unset")
        )
    });
    let mut failures = Vec::new();
    for version in &versions {
        let registry_says_compatible = registry
            .is_compatible_with_version(subject, *version, text)
            .await?;
        let old_text = registry.schema_of_version(subject, *version).await?;
        let label = format!("registry version {version}");
        let mut local = check_against_versions(
            &new,
            &[EarlierVersion {
                label: label.clone(),
                text: old_text,
            }],
        );
        match local.pop() {
            Some(failure) => failures.push(failure),
            None if !registry_says_compatible => failures.push(VersionFailure {
                version: label,
                problems: vec![
                    "the registry says incompatible (the local check found no explanation; \
                     compare the two versions by hand)"
                        .to_string(),
                ],
            }),
            None => {}
        }
    }
    Ok(SchemaReport {
        subject: subject.to_string(),
        path: path.to_string(),
        compared: versions.len(),
        note,
        failures,
    })
}

/// The human report of a `schemas check` run.
pub fn render_reports(reports: &[SchemaReport], against: Against) -> String {
    let source = match against {
        Against::Git => "every committed version (git history of HEAD)",
        Against::Registry => "every registered version",
    };
    let mut out = format!("schemas check: {COMPATIBILITY_LEVEL} against {source}\n");
    for report in reports {
        let status = if report.is_ok() { "ok  " } else { "FAIL" };
        let _ = write!(
            out,
            "{status} {} ({}): compared with {} version(s)",
            report.subject, report.path, report.compared
        );
        if let Some(note) = &report.note {
            let _ = write!(out, "; {note}");
        }
        out.push('\n');
        for failure in &report.failures {
            let _ = writeln!(out, "     incompatible with {}:", failure.version);
            for problem in &failure.problems {
                let _ = writeln!(out, "       - {problem}");
            }
        }
    }
    let failed = reports.iter().filter(|report| !report.is_ok()).count();
    if failed > 0 {
        let _ = writeln!(
            out,
            "{failed} schema(s) incompatible. Make the change compatible (new fields need \
             defaults; keep required fields), or publish a breaking change as a new major topic \
             (e.g. `.v2`) with its own schema."
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type": "record", "name": "Thing", "namespace": "caas.test", "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "tenant_id", "type": "string"}
    ]}"#;

    fn earlier(text: &str, label: &str) -> EarlierVersion {
        EarlierVersion {
            label: label.to_string(),
            text: text.to_string(),
        }
    }

    #[test]
    fn a_removed_required_field_fails_against_the_version_that_had_it() {
        let new = Schema::parse_str(
            r#"{"type": "record", "name": "Thing", "namespace": "caas.test", "fields": [
                {"name": "event_id", "type": "string"}
            ]}"#,
        )
        .unwrap();
        let failures = check_against_versions(&new, &[earlier(V1, "commit abc")]);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].version, "commit abc");
        assert!(
            failures[0].problems[0].contains("field `tenant_id` removed without a default"),
            "{:?}",
            failures[0].problems
        );
    }

    #[test]
    fn transitive_checks_catch_a_break_with_an_older_version_only() {
        // v1 requires `note`; v2 gives it a default; v3 drops it: fine with v2, not with v1.
        let v1 = r#"{"type": "record", "name": "Thing", "fields": [
            {"name": "note", "type": "string"}]}"#;
        let v2 = r#"{"type": "record", "name": "Thing", "fields": [
            {"name": "note", "type": "string", "default": ""}]}"#;
        let v3 = Schema::parse_str(
            r#"{"type": "record", "name": "Thing", "fields": [
            {"name": "other", "type": "string", "default": ""}]}"#,
        )
        .unwrap();
        let failures = check_against_versions(&v3, &[earlier(v2, "v2"), earlier(v1, "v1")]);
        assert_eq!(failures.len(), 1, "{failures:#?}");
        assert_eq!(failures[0].version, "v1");
    }

    #[test]
    fn the_report_names_subject_file_version_and_problem() {
        let reports = vec![SchemaReport {
            subject: "inbound.messages.v1-value".to_string(),
            path: "schemas/caas.v1.InboundMessage.avsc".to_string(),
            compared: 2,
            note: None,
            failures: vec![VersionFailure {
                version: "commit abc1234 (2026-11-22)".to_string(),
                problems: vec!["field `tenant_id` removed without a default".to_string()],
            }],
        }];
        let text = render_reports(&reports, Against::Git);
        for needle in [
            "FAIL inbound.messages.v1-value",
            "schemas/caas.v1.InboundMessage.avsc",
            "incompatible with commit abc1234",
            "field `tenant_id` removed without a default",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }
}
