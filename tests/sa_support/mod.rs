//! ServiceAccount credentials on the testbed: a token from the TokenRequest API in a
//! kubeconfig of its own, so a drover process (or kubectl) runs as that account and
//! the API audit log tells its requests apart.
#![allow(dead_code)] // reason: each test binary uses a different part of the support

use std::path::{Path, PathBuf};

use crate::cluster_support::TestEnv;

/// A value of the testbed's `env` file (`DROVER_TESTBED_SERVER`, `DROVER_TESTBED_CA`, …).
pub fn testbed_env(env: &TestEnv, key: &str) -> String {
    let text = std::fs::read_to_string(env.tb.dir.join("env")).expect("testbed env file");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("{key} in the testbed env file"))
}

/// Writes a kubeconfig at `dir/<namespace>-<name>.kubeconfig` authenticating as the
/// ServiceAccount `namespace/name` with a fresh one-hour token; its context's
/// namespace is `context_ns`.
pub fn sa_kubeconfig(
    env: &TestEnv,
    namespace: &str,
    name: &str,
    context_ns: &str,
    dir: &Path,
) -> PathBuf {
    let token = env.kubectl(&["create", "token", name, "-n", namespace, "--duration", "1h"]);
    token.expect_code(0);
    let server = testbed_env(env, "DROVER_TESTBED_SERVER");
    let ca = testbed_env(env, "DROVER_TESTBED_CA");
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {name}\n  user:\n    token: {}\ncontexts:\n- name: {name}\n  context:\n    cluster: testbed\n    user: {name}\n    namespace: {context_ns}\ncurrent-context: {name}\n",
        token.stdout.trim()
    );
    let path = dir.join(format!("{namespace}-{name}.kubeconfig"));
    std::fs::write(&path, kc).unwrap();
    path
}

/// One event of the API server's audit log.
pub struct AuditEvent {
    pub verb: String,
    pub user: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub uri: String,
    pub code: i64,
}

impl AuditEvent {
    /// A write that persisted something (not a dry run).
    pub fn is_write(&self) -> bool {
        matches!(self.verb.as_str(), "create" | "update" | "patch" | "delete")
            && !self.uri.contains("dryRun")
    }
}

/// The audit log's events from line `from` on (`ResponseComplete` stage only).
pub fn audit_events(env: &TestEnv, from: usize) -> Vec<AuditEvent> {
    let text = std::fs::read_to_string(env.tb.dir.join("logs/audit.log")).unwrap_or_default();
    text.lines()
        .skip(from)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .map(|e| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            AuditEvent {
                verb: s(&e["verb"]),
                user: s(&e["user"]["username"]),
                resource: s(&e["objectRef"]["resource"]),
                namespace: s(&e["objectRef"]["namespace"]),
                name: s(&e["objectRef"]["name"]),
                uri: s(&e["requestURI"]),
                code: e["responseStatus"]["code"].as_i64().unwrap_or(0),
            }
        })
        .collect()
}

/// How many lines the audit log has now (a mark for [`audit_events`]).
pub fn audit_mark(env: &TestEnv) -> usize {
    std::fs::read_to_string(env.tb.dir.join("logs/audit.log"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}
