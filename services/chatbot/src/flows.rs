//! The flow files on disk: loaded at start and reloaded when they change (polled), so a
//! change takes effect without a restart. A file that fails validation is refused with the
//! message of [`crate::domain::flow::parse`] (file, flow, step) and the tenant keeps the flows
//! it had; the refusal is logged and shown on `GET /flows` until the file is fixed.

use caas_runtime::clock::now_millis;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};

use crate::domain::flow::{self, TenantFlows};
use crate::metrics::metrics;

struct Loaded {
    flows: Arc<TenantFlows>,
    file: PathBuf,
    loaded_at: i64,
}

#[derive(Default)]
struct State {
    /// Content hash of each file as last read (valid or not), to notice changes.
    seen: BTreeMap<PathBuf, u64>,
    /// The flows in force per tenant.
    tenants: HashMap<String, Loaded>,
    /// Files refused, with why.
    errors: BTreeMap<PathBuf, String>,
}

/// What one reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reload {
    /// Tenants whose flows were (re)loaded.
    pub loaded: Vec<String>,
    /// Messages of files refused in this reload.
    pub refused: Vec<String>,
    /// Tenants removed with their file.
    pub removed: Vec<String>,
}

/// The flows in force, per tenant.
pub struct FlowRegistry {
    dir: PathBuf,
    state: RwLock<State>,
}

fn is_flow_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|extension| extension.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

impl FlowRegistry {
    /// A registry of the files in `dir` (nothing is loaded until [`FlowRegistry::reload`]).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            state: RwLock::new(State::default()),
        }
    }

    /// The flows of `tenant`, if it has any.
    pub fn get(&self, tenant: &str) -> Option<Arc<TenantFlows>> {
        let state = self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.tenants.get(tenant).map(|loaded| loaded.flows.clone())
    }

    /// The tenants that have flows.
    pub fn tenants(&self) -> Vec<String> {
        let state = self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.tenants.keys().cloned().collect()
    }

    /// Read the directory and apply what changed.
    pub fn reload(&self) -> Reload {
        let mut report = Reload::default();
        let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.is_file() && is_flow_file(&path) {
                        match std::fs::read_to_string(&path) {
                            Ok(text) => {
                                files.insert(path, text);
                            }
                            Err(error) => {
                                tracing::warn!(file = %path.display(), error = %error, "cannot read a flow file")
                            }
                        }
                    }
                }
            }
            Err(error) => {
                let mut state = self
                    .state
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let message = format!(
                    "cannot read the flows directory {}: {error} (CAAS_CHATBOT_FLOWS_DIR)",
                    self.dir.display()
                );
                if state
                    .errors
                    .insert(self.dir.clone(), message.clone())
                    .is_none()
                {
                    tracing::error!(directory = %self.dir.display(), error = %error, "cannot read the flows directory; the bot answers nobody");
                    report.refused.push(message);
                }
                return report;
            }
        }
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.errors.remove(&self.dir);
        // Files that disappeared take their tenant with them.
        let gone: Vec<PathBuf> = state
            .seen
            .keys()
            .filter(|path| !files.contains_key(*path))
            .cloned()
            .collect();
        for path in gone {
            state.seen.remove(&path);
            state.errors.remove(&path);
            let tenants: Vec<String> = state
                .tenants
                .iter()
                .filter(|(_, loaded)| loaded.file == path)
                .map(|(tenant, _)| tenant.clone())
                .collect();
            for tenant in tenants {
                state.tenants.remove(&tenant);
                tracing::info!(tenant, file = %path.display(), "flow file removed; the tenant's bot stops");
                report.removed.push(tenant);
            }
        }
        for (path, text) in files {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            text.hash(&mut hasher);
            let hash = hasher.finish();
            if state.seen.get(&path) == Some(&hash) {
                continue;
            }
            state.seen.insert(path.clone(), hash);
            let name = path.display().to_string();
            let parsed = flow::parse(&name, &text).and_then(|flows| {
                match state.tenants.get(&flows.tenant) {
                    Some(other) if other.file != path => Err(flow::FlowError {
                        file: name.clone(),
                        message: format!(
                            "tenant {:?} is already defined by {}",
                            flows.tenant,
                            other.file.display()
                        ),
                    }),
                    _ => Ok(flows),
                }
            });
            match parsed {
                Ok(flows) => {
                    let tenant = flows.tenant.clone();
                    // The file may have been renamed to another tenant.
                    state
                        .tenants
                        .retain(|other, loaded| loaded.file != path || *other == tenant);
                    state.errors.remove(&path);
                    tracing::info!(tenant, file = %name, flows = flows.flows.len(), "flows loaded");
                    metrics().reloads.with_label_values(&["loaded"]).inc();
                    state.tenants.insert(
                        tenant.clone(),
                        Loaded {
                            flows: Arc::new(flows),
                            file: path.clone(),
                            loaded_at: now_millis(),
                        },
                    );
                    report.loaded.push(tenant);
                }
                Err(error) => {
                    let message = error.to_string();
                    tracing::error!(file = %name, error = %message, "flow file refused; the flows loaded before stay in force");
                    metrics().reloads.with_label_values(&["refused"]).inc();
                    state.errors.insert(path.clone(), message.clone());
                    report.refused.push(message);
                }
            }
        }
        report
    }

    /// What is loaded and what was refused, for `GET /flows`.
    pub fn status(&self) -> Value {
        let state = self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tenants: BTreeMap<&String, Value> = state
            .tenants
            .iter()
            .map(|(tenant, loaded)| {
                (
                    tenant,
                    json!({
                        "file": loaded.file.display().to_string(),
                        "loaded_at": loaded.loaded_at,
                        "idle_expiry_ms": loaded.flows.idle_expiry_ms,
                        "flows": flow::summary(&loaded.flows),
                    }),
                )
            })
            .collect();
        let errors: BTreeMap<String, &String> = state
            .errors
            .iter()
            .map(|(path, message)| (path.display().to_string(), message))
            .collect();
        json!({ "directory": self.dir.display().to_string(), "tenants": tenants, "errors": errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "caas-chatbot-flows-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const VALID: &str = "flows:\n  - id: main\n    triggers: [ { keyword: hi } ]\n    steps:\n      - { id: hello, type: send, text: Hello }\n";
    const INVALID: &str = "flows:\n  - id: main\n    triggers: [ { keyword: hi } ]\n    steps:\n      - { id: hello, type: send, text: Hello, next: missing_step }\n";

    #[test]
    fn an_invalid_change_is_refused_and_the_loaded_flows_stay() {
        let dir = scratch();
        let file = dir.join("acme.yaml");
        std::fs::write(&file, VALID).unwrap();
        let registry = FlowRegistry::new(&dir);
        assert_eq!(registry.reload().loaded, ["acme"]);
        assert_eq!(registry.reload(), Reload::default(), "nothing changed");

        std::fs::write(&file, INVALID).unwrap();
        let report = registry.reload();
        assert_eq!(report.refused.len(), 1);
        assert!(report.refused[0].contains("step \"hello\""), "{report:?}");
        assert!(report.refused[0].contains("acme.yaml"), "{report:?}");
        assert_eq!(registry.get("acme").unwrap().flows[0].steps[0].id, "hello");
        assert!(registry.status()["errors"]
            .to_string()
            .contains("missing_step"));

        std::fs::write(&file, VALID.replace("Hello", "Hello again")).unwrap();
        assert_eq!(registry.reload().loaded, ["acme"]);
        assert_eq!(registry.status()["errors"], json!({}));

        std::fs::remove_file(&file).unwrap();
        assert_eq!(registry.reload().removed, ["acme"]);
        assert!(registry.get("acme").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_files_cannot_claim_one_tenant_and_a_missing_directory_is_reported() {
        let dir = scratch();
        std::fs::write(dir.join("a.yaml"), format!("tenant: shared\n{VALID}")).unwrap();
        std::fs::write(dir.join("b.yaml"), format!("tenant: shared\n{VALID}")).unwrap();
        let report = FlowRegistry::new(&dir).reload();
        assert_eq!(report.loaded, ["shared"]);
        assert!(report.refused[0].contains("already defined"), "{report:?}");
        let missing = FlowRegistry::new(dir.join("nope")).reload();
        assert!(missing.refused[0].contains("CAAS_CHATBOT_FLOWS_DIR"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
