//! Helpers shared by caasctl's integration tests: the repository root, throwaway directories
//! (a copy of the catalogue and schemas, or a scratch git repository) removed on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the workspace that holds `topics/` and `schemas/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/caasctl is two levels below the root")
        .to_path_buf()
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A directory under the system temp dir, deleted when dropped.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&path).expect("create scratch directory");
        Self { path }
    }

    pub fn write(&self, relative: &str, content: &str) {
        let target = self.path.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).expect("create parent directory");
        }
        std::fs::write(target, content).expect("write scratch file");
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path.join(relative)).expect("read scratch file")
    }

    /// Copy the real catalogue and every schema into this directory.
    pub fn with_repository_contracts(self) -> Self {
        let root = repo_root();
        self.write(
            "topics/catalogue.yaml",
            &std::fs::read_to_string(root.join("topics/catalogue.yaml")).expect("catalogue"),
        );
        for entry in std::fs::read_dir(root.join("schemas")).expect("schemas directory") {
            let path = entry.expect("entry").path();
            if path
                .extension()
                .is_some_and(|extension| extension == "avsc")
            {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                self.write(
                    &format!("schemas/{name}"),
                    &std::fs::read_to_string(&path).expect("schema"),
                );
            }
        }
        self
    }

    /// Run git in this directory; panics with git's output on failure.
    pub fn git(&self, arguments: &[&str]) {
        let output = Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args([
                "-c",
                "user.name=caasctl tests",
                "-c",
                "user.email=tests@caas.invalid",
            ])
            .args(["-c", "commit.gpgsign=false"])
            .args(arguments)
            .output()
            .expect("run git");
        assert!(
            output.status.success(),
            "git {arguments:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
