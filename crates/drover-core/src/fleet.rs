//! The validated fleet: what rendering, diff and plan work from.
//!
//! Values of these types only come out of [`crate::validate`], so every name,
//! reference and setting in them has been checked.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as JsonValue;

use super::freeze::FreezeWindow;
use super::model::{DaemonSpec, OnFailure, PruneSpec, RolloutSpec, Toleration};
use super::selector::{Affinity, Requirement};

#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    pub name: String,
    pub namespace: String,
    /// In first-match order.
    pub groups: Vec<Group>,
    pub stages: Vec<Stage>,
    pub defaults: RolloutSpec,
    pub prune: PruneSpec,
    pub on_failure: OnFailure,
    pub force_conflicts: bool,
    /// Sorted by name.
    pub daemons: Vec<Daemon>,
    /// In the order written.
    pub freeze_windows: Vec<FreezeWindow>,
    /// Node conditions the fleet adds to every stage's gate, in the order written.
    pub node_conditions: Vec<crate::machine::ConditionRule>,
    /// Companion objects, validated and labelled, in file order.
    pub companions: Vec<crate::companion::Companion>,
    /// Namespaces besides `namespace` a namespaced companion may be in
    /// (`spec.companions.allowNamespaces`): where the live plan looks for them.
    pub companion_namespaces: Vec<String>,
}

impl Fleet {
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The stage a group rolls out in.
    pub fn stage_of(&self, group: &str) -> Option<&Stage> {
        self.stages
            .iter()
            .find(|s| s.groups.iter().any(|g| g == group))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub selector: Vec<Requirement>,
    /// Its selector AND NOT every earlier group's selector.
    pub affinity: Affinity,
    pub tolerations: Vec<Toleration>,
    pub rollout: RolloutSpec,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    pub groups: Vec<String>,
    pub bake: Duration,
    pub timeout: Duration,
    /// No rollout progress for this long fails the stage (at most `timeout`).
    pub progress_deadline: Duration,
    /// Unobserved for this long in all fails the stage.
    pub max_unobserved: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Daemon {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: DaemonSpec,
    /// Kubernetes `EnvVar`s, in order.
    pub env: Vec<JsonValue>,
    /// Per-group env after overrides, for groups that override env.
    pub env_overrides: BTreeMap<String, Vec<JsonValue>>,
    /// Env of each init container and sidecar, by container name, as `EnvVar`s.
    pub container_env: BTreeMap<String, Vec<JsonValue>>,
    /// The main container's name (`spec.containerName`, else the daemon's name).
    pub container_name: String,
    /// The `app.kubernetes.io/name` label (`spec.appName`, else the daemon's name).
    pub app_name: String,
    /// The daemon's own node constraints (`nodeSelector` and `nodeAffinity`),
    /// ANDed into every node-affinity term of its DaemonSets.
    pub constraints: Vec<Requirement>,
    /// Groups the daemon runs in, in fleet group order.
    pub placement: Vec<String>,
    pub source: String,
    /// Its config-file entries (`spec.configFiles`), files read, in the order written.
    pub config: Vec<ConfigEntry>,
}

/// A config-file entry of a daemon with its files read from the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The volume's name and the ConfigMap's before its hash.
    pub name: String,
    /// The line of the entry in the daemon's file.
    pub line: usize,
    pub mount_path: String,
    /// The containers it is mounted in, by name.
    pub containers: Vec<String>,
    /// key → file, for every group without an override.
    pub files: BTreeMap<String, ConfigFile>,
    /// group → key → file, for the groups whose override changes the entry.
    pub per_group: BTreeMap<String, BTreeMap<String, ConfigFile>>,
}

impl ConfigEntry {
    /// The files a group's DaemonSet mounts.
    pub fn files_for(&self, group: &str) -> &BTreeMap<String, ConfigFile> {
        self.per_group.get(group).unwrap_or(&self.files)
    }
}

/// One config file: where it is in the repository, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub source: String,
    pub bytes: std::sync::Arc<[u8]>,
}

/// Default stage timeout when a stage names none.
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How long a stage may go unobserved in all before it fails, unless its
/// `maxUnobserved` says otherwise.
pub const DEFAULT_MAX_UNOBSERVED: Duration = Duration::from_secs(60);
