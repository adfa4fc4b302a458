//! The fleet repository format (`drover.dev/v1alpha1`) as typed data.
//!
//! Owns: the serde shapes of `Fleet`, `NodeGroup` and `Daemon` documents exactly as
//! `FLEET-FORMAT.md` names their fields. Must not: read files, know about positions
//! (see [`crate::load`]) or check cross-document rules (see
//! [`crate::validate`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;

/// The only accepted `apiVersion`.
pub const API_VERSION: &str = "drover.dev/v1alpha1";

/// `metadata` of every document.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One document: header, metadata and a kind-specific spec.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Document<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: S,
}

/// `maxUnavailable` / `maxSurge`: an integer or a percentage string, as in Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    Int(i64),
    Str(String),
}

/// Rollout knobs; every field optional so levels can be merged field by field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrPercent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i64>,
}

impl RolloutSpec {
    /// Fields of `self` win; missing ones come from `fallback`.
    pub fn or(&self, fallback: &RolloutSpec) -> RolloutSpec {
        RolloutSpec {
            max_unavailable: self
                .max_unavailable
                .clone()
                .or_else(|| fallback.max_unavailable.clone()),
            max_surge: self
                .max_surge
                .clone()
                .or_else(|| fallback.max_surge.clone()),
            min_ready_seconds: self.min_ready_seconds.or(fallback.min_ready_seconds),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetSpec {
    pub namespace: String,
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<StageSpec>>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub prune: PruneSpec,
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Extension: take over fields owned by another field manager on apply.
    #[serde(default)]
    pub force_conflicts: bool,
    /// Extension: times in which new commits are not rolled out (see
    /// [`crate::freeze`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze_windows: Vec<FreezeWindowSpec>,
    /// Extension: node conditions every stage's gate checks, besides the defaults
    /// (`Ready` must be `True`, `NetworkUnavailable` must not be `True`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_conditions: Vec<NodeConditionSpec>,
}

/// A freeze window as written: from every match of `start` (a 5-field cron in
/// `timeZone`) for `duration`, new commits are not rolled out to `groups` (default:
/// the whole fleet).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FreezeWindowSpec {
    pub name: String,
    pub start: String,
    pub time_zone: String,
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default)]
    pub drift_correction: DriftCorrection,
}

/// Whether drift is corrected (back to the last applied commit) during a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DriftCorrection {
    /// Drift is corrected: it restores what was already rolled out, no new change.
    #[default]
    Allow,
    /// Nothing is written to the window's groups while it is open, drift included.
    Deny,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StageSpec {
    pub name: String,
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Extension: the stage fails when its rollout makes no progress for this long
    /// (default: the stage timeout; at most the timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<String>,
    /// Extension: the stage fails when the watchers could not observe it for this
    /// long in all (default 60s); the bake clock stops meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unobserved: Option<String>,
}

/// Extension: a node condition that fails a stage when one of its nodes breaks it
/// while the stage rolls or bakes. Exactly one of `status` (the condition must have
/// it) and `notStatus` (the condition must not have it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeConditionSpec {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Defaults {
    #[serde(default)]
    pub rollout: RolloutSpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PruneSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_max_delete_fraction")]
    pub max_delete_fraction: f64,
}

impl Default for PruneSpec {
    fn default() -> Self {
        PruneSpec {
            enabled: true,
            max_delete_fraction: default_max_delete_fraction(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_max_delete_fraction() -> f64 {
    0.5
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    #[default]
    Halt,
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeGroupSpec {
    pub selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
}

/// A Kubernetes label selector over Node labels.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

impl LabelSelector {
    /// The empty selector is the catch-all.
    pub fn is_catch_all(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Toleration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DaemonSpec {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Map form or a list of Kubernetes `EnvVar`; checked in validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<JsonValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub host_network: bool,
    #[serde(rename = "hostPID", default)]
    pub host_pid: bool,
    #[serde(rename = "hostIPC", default)]
    pub host_ipc: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<JsonValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<JsonValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<JsonValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<JsonValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, Override>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<JsonValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Port {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub container_port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mount {
    pub name: String,
    pub host_path: String,
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
    /// `hostPath.type`, e.g. `Directory` or `DirectoryOrCreate`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub host_path_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_propagation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, QuantityValue>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, QuantityValue>,
}

/// A resource quantity as written: `50m`, `64Mi` or a bare number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum QuantityValue {
    Int(i64),
    Float(FloatText),
    Str(String),
}

/// A float kept as text so that the model stays `Eq` and emits what was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FloatText(pub String);

impl<'de> Deserialize<'de> for FloatText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = f64::deserialize(d)?;
        Ok(FloatText(format!("{f}")))
    }
}

impl QuantityValue {
    pub fn as_text(&self) -> String {
        match self {
            QuantityValue::Int(i) => i.to_string(),
            QuantityValue::Float(f) => f.0.clone(),
            QuantityValue::Str(s) => s.clone(),
        }
    }
}

/// Per-group changes of a daemon.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Override {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<JsonValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
}
