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
    /// Extension: who replaces the pods. `controller` (the default) renders
    /// `RollingUpdate` and leaves it to the DaemonSet controller; `drover` renders
    /// `OnDelete` and drover replaces the pods node by node, in `waves`, under the
    /// fleet's `disruptionBudget` (docs/driver.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    /// Extension (`driver: drover`): how far each wave reaches inside a group (or,
    /// with `by`, inside each zone), cumulative: `[1, 10%, 50%, 100%]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waves: Option<Vec<IntOrPercent>>,
    /// Extension (`driver: drover`): a node label; the group's nodes are waved one
    /// value of it after another (`topology.kubernetes.io/zone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Extension (`driver: drover`): how long each wave must stay current and
    /// Ready before the next wave (or zone) starts, e.g. `30s`. The last wave's
    /// bake is the stage's `bake`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave_bake: Option<String>,
    /// Extension, fleet level only (`defaults.rollout`): at most this many nodes (or
    /// this share of the fleet's nodes) may lack a Ready pod of a drover-driven
    /// daemon of the stage at one moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<IntOrPercent>,
}

/// Extension: who replaces a DaemonSet's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// The DaemonSet controller, with `RollingUpdate`.
    #[default]
    Controller,
    /// drover, with `OnDelete`: waves, zones, the disruption budget.
    Drover,
}

impl RolloutSpec {
    /// Fields of `self` win; missing ones come from `fallback`.
    pub fn or(&self, fallback: &RolloutSpec) -> RolloutSpec {
        RolloutSpec {
            driver: self.driver.or(fallback.driver),
            waves: self.waves.clone().or_else(|| fallback.waves.clone()),
            by: self.by.clone().or_else(|| fallback.by.clone()),
            wave_bake: self
                .wave_bake
                .clone()
                .or_else(|| fallback.wave_bake.clone()),
            disruption_budget: self
                .disruption_budget
                .clone()
                .or_else(|| fallback.disruption_budget.clone()),
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
    /// Extension: what the fleet's companion objects (`companions/`) may be, besides
    /// the default kinds (see [`crate::companion`]).
    #[serde(default, skip_serializing_if = "CompanionsSpec::is_default")]
    pub companions: CompanionsSpec,
}

/// `spec.companions` of the Fleet: the companion policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CompanionsSpec {
    /// Kinds allowed besides [`crate::companion::DEFAULT_KINDS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_kinds: Vec<CompanionKind>,
    /// Namespaces a namespaced companion may name besides the fleet's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_namespaces: Vec<String>,
    /// Whether a (Cluster)RoleBinding may grant the `cluster-admin` ClusterRole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_cluster_admin: bool,
}

impl CompanionsSpec {
    pub fn is_default(&self) -> bool {
        *self == CompanionsSpec::default()
    }
}

/// One extra companion kind: `{apiVersion, kind, scope}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CompanionKind {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub scope: CompanionScope,
}

/// Whether objects of a companion kind live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum CompanionScope {
    #[default]
    Namespaced,
    Cluster,
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
    /// Extension: the main container's name (default: the daemon's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Extension: the `app.kubernetes.io/name` label (default: the daemon's name).
    /// drover's selector and ownership use its own `drover.dev/*` labels only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// Extension: the main container's `lifecycle` hooks (a Kubernetes `Lifecycle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<JsonValue>,
    /// Extension: containers run before the main one, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    /// Extension: containers run beside the main one (rendered after it in
    /// `containers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<Container>,
    /// Extension: pod volumes of any kind, as Kubernetes `Volume`s, verbatim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<JsonValue>,
    /// Extension: the pod's `dnsPolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<String>,
    /// Extension: the pod's `dnsConfig` (a Kubernetes `PodDNSConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<JsonValue>,
    /// Extension: the pod's `securityContext` (a Kubernetes `PodSecurityContext`);
    /// `securityContext` is the main container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<JsonValue>,
    /// Extension: the pod's `terminationGracePeriodSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// Extension: node labels every node of the daemon must carry, ANDed into every
    /// node-affinity term drover renders for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Extension: required node-affinity expressions, ANDed into every term as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinitySpec>,
    /// Extension: the DaemonSet's `revisionHistoryLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    /// Extension: config files from the repository (`config/`), each entry one
    /// immutable ConfigMap named by its content hash, mounted into the main container
    /// (or the containers named); see docs/config-files.md.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_files: Vec<ConfigFileSpec>,
    /// Upstream spelling: `{type: OnDelete}` alone is accepted and means
    /// `rollout.driver: drover` (drover replaces the pods); anything else is refused
    /// with the reason (`RollingUpdate`'s knobs are `rollout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<JsonValue>,
    /// Extension (`driver: drover`): two daemons of one class never restart on one
    /// node at the same time (the CNI and the CSI node plugin, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_class: Option<String>,
}

/// Extension: one config-file entry of a daemon: the files of one ConfigMap and
/// where they are mounted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigFileSpec {
    /// The entry's name: the volume's name, and the ConfigMap's before its hash.
    pub name: String,
    /// Where the directory of files is mounted (read-only).
    pub mount_path: String,
    /// A directory under `config/` whose files are the keys (default, when `files`
    /// is empty too: `config/<daemon>/<name>/`, the layout `drover import` writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Single files: key → a file under `config/`; added to `from`'s, replacing a
    /// key it has.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// The containers it is mounted in (default: the main container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<String>>,
}

/// Extension: a group's change to a config-file entry: files that replace or are
/// added to the entry's keys, for that group only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigFileOverride {
    /// The `spec.configFiles` entry it changes.
    pub name: String,
    /// A directory under `config/`: each of its files replaces or adds a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// key → a file under `config/`, replacing or adding that key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
}

/// Extension: a daemon's own required node-affinity expressions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeAffinitySpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// Extension: an init container or a sidecar, with the main container's short
/// fields (rendered and validated by the same code as the main one).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Map form or a list of Kubernetes `EnvVar`; checked in validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<JsonValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
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
    pub lifecycle: Option<JsonValue>,
}

impl DaemonSpec {
    /// The main container as a [`Container`], named `name`, so that it is rendered
    /// and validated by the same code as init containers and sidecars.
    pub fn main_container(&self, name: &str) -> Container {
        Container {
            name: name.to_string(),
            image: self.image.clone(),
            image_pull_policy: self.image_pull_policy.clone(),
            command: self.command.clone(),
            args: self.args.clone(),
            working_dir: None,
            env: self.env.clone(),
            ports: self.ports.clone(),
            mounts: self.mounts.clone(),
            resources: self.resources.clone(),
            readiness_probe: self.readiness_probe.clone(),
            liveness_probe: self.liveness_probe.clone(),
            startup_probe: self.startup_probe.clone(),
            security_context: self.security_context.clone(),
            lifecycle: self.lifecycle.clone(),
        }
    }

    /// Every container of the short form with the field its document spells it at:
    /// the main one (`spec`), init containers, then sidecars.
    pub fn short_containers(&self, main_name: &str) -> Vec<(String, ContainerKind, Container)> {
        let mut out = vec![(
            "spec".to_string(),
            ContainerKind::Main,
            self.main_container(main_name),
        )];
        for (i, c) in self.init_containers.iter().enumerate() {
            out.push((
                format!("spec.initContainers[{i}]"),
                ContainerKind::Init,
                c.clone(),
            ));
        }
        for (i, c) in self.sidecars.iter().enumerate() {
            out.push((
                format!("spec.sidecars[{i}]"),
                ContainerKind::Sidecar,
                c.clone(),
            ));
        }
        out
    }
}

/// Which list of the short form a container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    Main,
    Init,
    Sidecar,
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
    /// A hostPath volume of this name, declared by the mount itself; without it the
    /// mount refers to a volume of `spec.volumes` (or another container's hostPath
    /// mount, or a podTemplate volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
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
    /// Extension: this group's files of `spec.configFiles` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_files: Vec<ConfigFileOverride>,
}
