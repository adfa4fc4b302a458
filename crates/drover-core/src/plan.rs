//! The plan: what changes, in which stage, on how many nodes, and roughly how long.
//!
//! Owns: turning per-DaemonSet comparisons (before → after) into ordered stages of
//! actions, the blast radius of each action from a node list, duration estimates, and
//! the versioned serialisable [`Plan`] (its JSON is `drover.dev/plan/v1`, see
//! `docs/plan-schema.md`). Must not: fetch anything; the shell hands in the objects
//! (two renders offline; live objects and server-side-apply dry runs online) and the
//! nodes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;

use super::diff::{
    FieldChange, Impact, field_changes, impact, sort_keys_deep, strip_noise, unified_diff,
};
use super::fleet::Fleet;
use super::privilege::{self, Privilege};
use super::render::{DesiredDaemonSet, DesiredSet, LABEL_DAEMON, LABEL_FLEET, LABEL_GROUP};
use super::selector::{Op, Requirement, first_match, matches_all};

/// The JSON schema identifier of [`Plan`]. Fields may be added within v1; a field is
/// never removed, renamed or given another meaning without a new version.
pub const PLAN_SCHEMA: &str = "drover.dev/plan/v1";

/// Assumed time for a DaemonSet pod to start and become ready, on top of
/// `minReadySeconds`, when estimating rollout durations.
pub const ASSUMED_POD_START_SECONDS: u64 = 10;

/// A Node as far as placement needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: String,
}

/// One DaemonSet's two sides. `before`: the live object (or the base render);
/// `after`: the desired object (the server-side-apply dry run, or the head render).
/// `None` on a side: the object does not exist there.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub name: String,
    pub before: Option<JsonValue>,
    pub after: Option<JsonValue>,
}

/// The commits a plan compares, when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanMeta {
    pub base: Option<String>,
    pub head: Option<String>,
    /// The caller shows no diff (the sync loop records only counts): every action's
    /// `diff` is left empty. A unified diff holds the whole object of every create,
    /// the largest part of a fresh plan of a large fleet.
    pub without_diffs: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    Unchanged,
}

impl Action {
    /// `+`, `~`, `-`, `=`.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Unchanged => "=",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Unchanged => "unchanged",
        }
    }
}

/// A live object that a create takes the place of: the same DaemonSet (same name,
/// daemon and group) in another namespace (a move), or with a field the API server
/// does not let change in place (a replacement). Either way the live object is
/// deleted and a new one created, never patched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replacement {
    /// Where the live object is.
    pub namespace: String,
    /// Its `drover.dev/fleet` label, when that is not this fleet's name (the fleet
    /// was renamed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<String>,
    /// Why it cannot be updated in place: `metadata.namespace` for a move, else the
    /// immutable fields that differ (`spec.selector`).
    pub fields: Vec<String>,
    /// `true`: the live object is deleted first, then the new one created (same
    /// namespace and name, so they cannot both exist). `false` (a move): the new one
    /// is created first, then the live one deleted.
    pub delete_first: bool,
}

/// What happens to one DaemonSet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionPlan {
    pub name: String,
    /// Where the object is (for a delete) when that is not the plan's namespace: a
    /// copy the fleet owns elsewhere, e.g. left from a move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub daemon: String,
    pub group: String,
    /// The stage it rolls out in; `prune` for deletions.
    pub stage: String,
    pub action: Action,
    /// Pods are replaced (template change), started (create) or stopped (delete).
    pub restarts_pods: bool,
    pub impact: Impact,
    /// Leaf-level changes of the normalised objects, secrets masked; empty for
    /// create, delete and unchanged.
    pub changes: Vec<FieldChange>,
    /// Unified YAML diff of the normalised, masked objects; empty when unchanged.
    pub diff: String,
    /// Nodes whose pods restart (start, stop); `None` without a node list.
    pub nodes: Option<usize>,
    /// Estimated rollout time of this DaemonSet; `None` without a node list.
    pub estimated_seconds: Option<u64>,
    /// Names of those nodes, for the executor and the audit log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_names: Vec<String>,
    /// What the change lets the pods do that they could not before (everything, for
    /// a create): privileged containers, host namespaces, writable host paths, added
    /// capabilities, host ports. Shown in every format, never cut from a PR comment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privileges_added: Vec<Privilege>,
    /// On a create: the live object it replaces (deleted as part of this action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Replacement>,
    /// The config files (`entry/file`) whose change reaches this DaemonSet; its
    /// hashed ConfigMap names are not shown in `changes` or `diff`
    /// ([`crate::config_diff`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_files: Vec<String>,
    /// `rollout.driver: drover`: the waves drover replaces the pods in, with a node
    /// list (docs/driver.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive: Option<DrivePlan>,
}

/// How drover replaces one DaemonSet's pods on the restarting nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrivePlan {
    /// In order: a zone's waves before the next zone's.
    pub waves: Vec<WavePlan>,
    /// The `waves-by` node label, when waves go zone by zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Replacements of this DaemonSet in flight at once.
    pub max_unavailable: usize,
    /// The fleet's disruption budget in nodes, resolved against the node list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_nodes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_class: Option<String>,
    /// The DaemonSet's `minReadySeconds`, for the estimate.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub min_ready_seconds: u64,
    /// `waveBake`: each wave but the last stays settled this long before the next.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub wave_bake_seconds: u64,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// One wave of a [`DrivePlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WavePlan {
    /// The `by` label's value; `None` without `by` (and for nodes without the label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub number: usize,
    pub nodes: usize,
}

impl DrivePlan {
    /// The plan of `obj`'s replacements on `restarting` (of `nodes`), when drover
    /// drives it; `total` nodes resolve its `maxUnavailable`, `fleet_nodes` the budget.
    fn of(
        obj: &JsonValue,
        restarting: &[&NodeInfo],
        total: usize,
        fleet_nodes: usize,
    ) -> Option<DrivePlan> {
        let ann: BTreeMap<String, String> =
            serde_json::from_value(obj.pointer("/metadata/annotations")?.clone()).ok()?;
        let settings = crate::waves::DriverSettings::from_annotations(&ann)?.ok()?;
        let wave_nodes: Vec<crate::waves::WaveNode> = restarting
            .iter()
            .map(|n| crate::waves::WaveNode {
                name: n.name.clone(),
                topology: settings.by.as_ref().and_then(|k| n.labels.get(k).cloned()),
            })
            .collect();
        let waves = crate::waves::plan_waves(&wave_nodes, &settings.waves, settings.by.is_some())
            .ok()?
            .into_iter()
            .map(|w| WavePlan {
                scope: w.scope,
                number: w.number,
                nodes: w.nodes.len(),
            })
            .collect();
        let max_unavailable = settings.max_unavailable.at_least_one_of(total);
        Some(DrivePlan {
            waves,
            by: settings.by,
            max_unavailable,
            budget_nodes: settings
                .budget
                .map(|b| crate::waves::budget_nodes(b, fleet_nodes)),
            disruption_class: settings.class,
            wave_bake_seconds: settings.wave_bake.as_secs(),
            min_ready_seconds: obj
                .pointer("/spec/minReadySeconds")
                .and_then(JsonValue::as_u64)
                .unwrap_or(0),
        })
    }

    /// Seconds to replace every wave, one after another, with `sharing` driven
    /// DaemonSets of the stage splitting the budget evenly.
    pub fn estimate_seconds(&self, sharing: usize) -> u64 {
        let min_ready = self.min_ready_seconds;
        let share = self
            .budget_nodes
            .map_or(usize::MAX, |b| (b / sharing.max(1)).max(1));
        let per_batch = self.max_unavailable.min(share).max(1) as u64;
        // Saturating: the settings come from annotations, which may say anything.
        let bakes =
            (self.waves.len().saturating_sub(1) as u64).saturating_mul(self.wave_bake_seconds);
        self.waves
            .iter()
            .map(|w| (w.nodes as u64).div_ceil(per_batch) * (min_ready + ASSUMED_POD_START_SECONDS))
            .sum::<u64>()
            .saturating_add(bakes)
    }
}

impl ActionPlan {
    /// The namespace of the object this action writes or deletes.
    pub fn namespace_in<'a>(&'a self, plan: &'a Plan) -> &'a str {
        self.namespace.as_deref().unwrap_or(&plan.namespace)
    }
}

/// Something about the plan as a whole that an operator must hear before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Verdict {
    /// A stage that gates later ones selects no node: it would "complete" on zero
    /// pods, and the later stages' changes of `daemons` (placed in its groups, so
    /// meant to be gated by it) would go out without its bake. `apply` and `sync`
    /// refuse such a plan (see [`crate::guard::check_gates`]).
    UngatedStage {
        stage: String,
        groups: Vec<String>,
        daemons: Vec<String>,
        later_stages: Vec<String>,
    },
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::UngatedStage {
                stage,
                groups,
                daemons,
                later_stages,
            } => write!(
                f,
                "stage `{stage}` (groups {}) selects no node, so the changes of {} in stage(s) {} would go out without its bake",
                groups.join(", "),
                daemons
                    .iter()
                    .map(|d| format!("`{d}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                later_stages.join(", ")
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagePlan {
    pub name: String,
    pub groups: Vec<String>,
    pub bake_seconds: u64,
    pub timeout_seconds: u64,
    /// Sorted by name.
    pub actions: Vec<ActionPlan>,
    /// Distinct nodes with restarting pods in this stage; `None` without nodes.
    pub nodes_restarted: Option<usize>,
    /// Slowest DaemonSet rollout plus bake (0 when nothing restarts); `None`
    /// without nodes.
    pub estimated_seconds: Option<u64>,
    /// A freeze window holds this stage back now (set by `drover plan`, which
    /// knows the time; see [`crate::freeze`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<StageFrozen>,
    /// The stage's `progressDeadline` when it is not its timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<u64>,
    /// The stage's `maxUnobserved` when it is not the default (60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unobserved_seconds: Option<u64>,
    /// The fleet's `nodeConditions`, checked besides the defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_conditions: Vec<crate::machine::ConditionRule>,
}

impl StagePlan {
    /// The progress deadline the stage's gate uses.
    pub fn progress_deadline(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.progress_deadline_seconds
                .unwrap_or(self.timeout_seconds),
        )
    }

    /// How long the stage may go unobserved in all.
    pub fn max_unobserved(&self) -> std::time::Duration {
        self.max_unobserved_seconds.map_or(
            crate::fleet::DEFAULT_MAX_UNOBSERVED,
            std::time::Duration::from_secs,
        )
    }

    /// Every node condition the stage's gate checks: the defaults, then the fleet's.
    pub fn condition_rules(&self) -> Vec<crate::machine::ConditionRule> {
        let mut rules = crate::machine::ConditionRule::defaults();
        rules.extend(self.node_conditions.iter().cloned());
        rules
    }
}

/// Why and until when a stage may not start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageFrozen {
    /// RFC 9557, in the window's time zone: `2026-12-07T06:00:00+01:00[Europe/Berlin]`.
    pub until: String,
    /// The windows go on past `until` further than drover looks ahead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_least: bool,
    /// The freeze windows that hold it, by name.
    pub windows: Vec<String>,
}

impl From<super::freeze::Frozen> for StageFrozen {
    fn from(f: super::freeze::Frozen) -> StageFrozen {
        StageFrozen {
            until: f.until.to_string(),
            at_least: f.at_least,
            windows: f.windows,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
    /// Creates that replace a live object (moves and replacements); counted in
    /// `create` too. Their deletes are not counted in `delete`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replace: usize,
    /// DaemonSets whose pods restart (creates and deletes included).
    pub restarts: usize,
    /// Distinct nodes with restarting pods, whole plan; `None` without nodes.
    pub nodes_restarted: Option<usize>,
    /// Sum of the stage estimates; `None` without nodes.
    pub estimated_seconds: Option<u64>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Fields of an `apps/v1` DaemonSet that the API server refuses to change in place.
pub const IMMUTABLE_FIELDS: [&str; 1] = ["spec.selector"];

/// The immutable fields ([`IMMUTABLE_FIELDS`]) whose values differ between a live
/// object and what it should become: a change the API server would refuse, so the
/// object must be replaced (deleted and created) instead.
pub fn immutable_changes(before: &JsonValue, after: &JsonValue) -> Vec<String> {
    IMMUTABLE_FIELDS
        .iter()
        .filter(|f| {
            let pointer = format!("/{}", f.replace('.', "/"));
            match (before.pointer(&pointer), after.pointer(&pointer)) {
                (Some(a), Some(b)) => !super::diff::same(a, b),
                (None, None) => false,
                _ => true,
            }
        })
        .map(|f| (*f).to_string())
        .collect()
}

/// `metadata.namespace` of an object, `""` without one.
pub fn namespace_of(obj: &JsonValue) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(JsonValue::as_str)
        .unwrap_or("")
}

/// Everything one reconcile would do. Its JSON form is the `drover.dev/plan/v1`
/// schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub schema: String,
    pub fleet: String,
    pub namespace: String,
    pub base: Option<String>,
    pub head: Option<String>,
    /// In fleet stage order.
    pub stages: Vec<StagePlan>,
    /// Deletions, sorted by name; they run after the last stage.
    pub prune: Vec<ActionPlan>,
    pub summary: Summary,
    /// What must be said about the plan before it runs; empty without a node list
    /// (nothing is claimed about nodes drover has not seen).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<Verdict>,
    /// The head commit's signature, when the caller checked it (`drover diff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_signature: Option<super::trust::Verification>,
    /// The digest of the change set from base to head (`drover diff`): what a merge
    /// carries as its `Drover-Plan:` trailer to be applied by
    /// `sync --require-approved-plan` ([`super::approval`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// The companion objects' actions, sorted by object (docs/companions.md); absent
    /// from the JSON of a fleet without companions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub companions: Vec<CompanionPlan>,
    /// The config files that change, each with its own diff (docs/config-files.md);
    /// absent from the JSON of a plan without any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_files: Vec<crate::config_diff::ConfigFilePlan>,
    /// The config ConfigMaps to create, keep or prune (`drover plan` and `apply`;
    /// docs/config-files.md): applied like companions, never shown with a diff;
    /// absent from the JSON of a plan without any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_maps: Vec<CompanionPlan>,
}

/// What happens to one companion object (a ServiceAccount, a ClusterRole...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompanionPlan {
    /// `Kind[.group]/[namespace/]name`, as the change set keys it
    /// ([`crate::companion::Companion::key`]).
    pub object: String,
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// The daemon it belongs to; `None` for the fleet's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<String>,
    /// The file it is defined in (for a delete: the file it was in).
    pub source: String,
    pub action: Action,
    /// Leaf-level changes of the normalised objects, secrets masked; empty for
    /// create, delete and unchanged.
    pub changes: Vec<FieldChange>,
    /// Unified YAML diff of the normalised, masked objects; empty when unchanged.
    pub diff: String,
    /// For a create or update: the stage it is applied before (see
    /// [`assign_companion_stages`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// A config ConfigMap's: the groups whose DaemonSets mount it (it is applied
    /// before the first stage that writes one of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// Sets the stage each created or updated companion is applied before: a daemon's
/// before the first stage that creates or updates one of its DaemonSets, the
/// fleet's (and a daemon's whose DaemonSets do not change) before the first stage.
/// RBAC and ServiceAccounts so exist before the pods that need them.
///
/// A config ConfigMap (`plan.config_maps`) is applied before the first stage that
/// creates or updates a DaemonSet of its daemon in one of its groups, so a stage's
/// ConfigMaps are created just before its DaemonSets are written.
pub fn assign_companion_stages(plan: &mut Plan) {
    let first = plan.stages.first().map(|s| s.name.clone());
    let writes = |d: &str, groups: &[String]| {
        plan.stages
            .iter()
            .find(|s| {
                s.actions.iter().any(|a| {
                    a.daemon == d
                        && matches!(a.action, Action::Create | Action::Update)
                        && (groups.is_empty() || groups.contains(&a.group))
                })
            })
            .map(|s| s.name.clone())
    };
    let stage_of = |c: &CompanionPlan| match c.action {
        Action::Create | Action::Update => c
            .daemon
            .as_deref()
            .and_then(|d| writes(d, &c.groups))
            .or_else(|| first.clone()),
        _ => None,
    };
    let stages: Vec<Option<String>> = plan.companions.iter().map(stage_of).collect();
    let config: Vec<Option<String>> = plan.config_maps.iter().map(stage_of).collect();
    for (c, s) in plan.companions.iter_mut().zip(stages) {
        c.stage = s;
    }
    for (c, s) in plan.config_maps.iter_mut().zip(config) {
        c.stage = s;
    }
}

/// One companion object on each side: `before` as the base render (or the cluster)
/// has it, `after` as it should be; the metadata is the head's, else the base's.
#[derive(Debug, Clone, PartialEq)]
pub struct CompanionComparison {
    pub meta: crate::companion::Companion,
    pub before: Option<JsonValue>,
    pub after: Option<JsonValue>,
}

/// Pairs two renders' companion objects by [`crate::companion::Companion::key`]
/// (offline mode), sorted by key.
pub fn compare_companions(
    base: &[crate::companion::Companion],
    head: &[crate::companion::Companion],
) -> Vec<CompanionComparison> {
    let mut by_key: BTreeMap<String, CompanionComparison> = BTreeMap::new();
    for c in base {
        by_key.insert(
            c.key(),
            CompanionComparison {
                meta: c.clone(),
                before: Some(c.manifest.clone()),
                after: None,
            },
        );
    }
    for c in head {
        let e = by_key
            .entry(c.key())
            .or_insert_with(|| CompanionComparison {
                meta: c.clone(),
                before: None,
                after: None,
            });
        e.meta = c.clone();
        e.after = Some(c.manifest.clone());
    }
    by_key.into_values().collect()
}

/// The actions for companion objects, sorted by object: create, update (any
/// difference after normalisation), unchanged or delete.
pub fn plan_companions(
    comparisons: impl IntoIterator<Item = CompanionComparison>,
) -> Vec<CompanionPlan> {
    let mut out: Vec<CompanionPlan> = comparisons
        .into_iter()
        .filter_map(|c| {
            let mut before = c.before.map(strip_noise);
            let mut after = c.after.map(strip_noise);
            let action = match (&before, &after) {
                (None, None) => return None,
                (None, Some(_)) => Action::Create,
                (Some(_), None) => Action::Delete,
                (Some(b), Some(a)) if super::diff::same(b, a) => Action::Unchanged,
                (Some(_), Some(_)) => Action::Update,
            };
            let m = c.meta;
            let object = m.key();
            let (changes, diff) = if action == Action::Unchanged {
                (Vec::new(), String::new())
            } else {
                for side in [&mut before, &mut after].into_iter().flatten() {
                    sort_keys_deep(side);
                }
                let changes = match (&before, &after) {
                    (Some(b), Some(a)) => field_changes(b, a),
                    _ => Vec::new(),
                };
                (
                    changes,
                    unified_diff(&object, before.as_ref(), after.as_ref()),
                )
            };
            Some(CompanionPlan {
                object,
                api_version: m.api_version,
                kind: m.kind,
                namespace: m.namespace,
                name: m.name,
                daemon: m.owner,
                source: m.path,
                action,
                changes,
                diff,
                stage: None,
                groups: Vec::new(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.object.cmp(&b.object));
    out
}

impl Plan {
    /// Every action, stages in order, then prune.
    pub fn actions(&self) -> impl Iterator<Item = &ActionPlan> {
        self.stages
            .iter()
            .flat_map(|s| s.actions.iter())
            .chain(self.prune.iter())
    }

    /// Whether anything is created, updated or deleted: a DaemonSet or a companion
    /// object.
    pub fn has_changes(&self) -> bool {
        self.actions().any(|a| a.action != Action::Unchanged)
            || self
                .companions
                .iter()
                .chain(&self.config_maps)
                .any(|c| c.action != Action::Unchanged)
    }

    /// The groups a rollout of this plan first writes to: those of the first stage
    /// that creates or updates a DaemonSet. A plan that only deletes writes to no
    /// stage first, so it counts every stage's groups (any freeze on any of them
    /// holds it).
    pub fn first_write_groups(&self) -> Vec<String> {
        let writes = |sp: &&StagePlan| {
            sp.actions
                .iter()
                .any(|a| matches!(a.action, Action::Create | Action::Update))
        };
        match self.stages.iter().find(writes) {
            Some(sp) => sp.groups.clone(),
            None => self
                .stages
                .iter()
                .flat_map(|sp| sp.groups.clone())
                .collect(),
        }
    }
}

/// Pairs two renders by DaemonSet name (offline mode: `before` the base render,
/// `after` the head render), sorted by name. Without a base every object is new.
pub fn compare_renders(base: Option<&DesiredSet>, head: &DesiredSet) -> Vec<Comparison> {
    let mut by_name: BTreeMap<&str, Comparison> = BTreeMap::new();
    for i in base.map_or(&[][..], |b| b.items.as_slice()) {
        by_name.insert(
            &i.name,
            Comparison {
                name: i.name.clone(),
                before: Some(i.manifest.value()),
                after: None,
            },
        );
    }
    for i in &head.items {
        by_name
            .entry(&i.name)
            .or_insert_with(|| Comparison {
                name: i.name.clone(),
                before: None,
                after: None,
            })
            .after = Some(i.manifest.value());
    }
    by_name.into_values().collect()
}

/// [`compare_renders`] without copying a manifest: the base render is consumed, and
/// the head render's manifests move into the comparisons (rendered as trees, see
/// [`crate::render::render_trees`], they move without a parse). `head` keeps its
/// names, daemons, groups, stages and spec hashes (all that [`plan`] reads from it);
/// its manifests are left `null`.
///
/// Offline, a plan is the only use of both renders: copying (or parsing) every
/// manifest of both cost time and held four copies of the fleet at once.
pub fn compare_renders_owned(base: Option<DesiredSet>, head: &mut DesiredSet) -> Vec<Comparison> {
    let mut by_name: BTreeMap<String, Comparison> = BTreeMap::new();
    for i in base.map(|b| b.items).unwrap_or_default() {
        by_name.insert(
            i.name.clone(),
            Comparison {
                name: i.name,
                before: Some(i.manifest.into_value()),
                after: None,
            },
        );
    }
    for i in &mut head.items {
        let manifest = std::mem::replace(
            &mut i.manifest,
            crate::render::Manifest::tree(JsonValue::Null),
        );
        by_name
            .entry(i.name.clone())
            .or_insert_with(|| Comparison {
                name: i.name.clone(),
                before: None,
                after: None,
            })
            .after = Some(manifest.into_value());
    }
    by_name.into_values().collect()
}

/// The name of the pseudo-stage that deletions run in.
pub const PRUNE_STAGE: &str = "prune";

/// Computes the plan. Deterministic: the order of `comparisons` does not matter.
/// They are consumed one at a time, so a lazy iterator (the shell builds each
/// comparison from compact JSON as it is reached) never holds them all at once.
///
/// Stage and group come from `desired` (the head render) by name, else from the
/// object's `drover.dev/group` label. A comparison with no `after` is a delete and
/// goes to `prune`; one with neither side is ignored.
pub fn plan(
    fleet: &Fleet,
    desired: &DesiredSet,
    comparisons: impl IntoIterator<Item = Comparison>,
    nodes: Option<&[NodeInfo]>,
    meta: PlanMeta,
) -> Plan {
    let partition = nodes.map(|ns| partition(fleet, ns));
    // The first item of each name, as a linear search would find it.
    let mut items: BTreeMap<&str, &DesiredDaemonSet> = BTreeMap::new();
    for i in &desired.items {
        items.entry(&i.name).or_insert(i);
    }
    let mut by_stage: BTreeMap<String, Vec<ActionPlan>> = BTreeMap::new();
    let mut prune = Vec::new();
    let mut seen = BTreeSet::new();
    for c in comparisons {
        // One object on each side is one action: a name may come twice, e.g. moved to
        // this namespace and a stray copy of it in a third one.
        let key = (
            c.before.as_ref().map(|b| namespace_of(b).to_string()),
            c.after.as_ref().map(|a| namespace_of(a).to_string()),
            c.name.clone(),
        );
        if !seen.insert(key) {
            continue;
        }
        // Each comparison is consumed: its objects are normalised in place, not
        // copied, and freed once its action is planned.
        let before = c.before.map(strip_noise);
        let after = c.after.map(strip_noise);
        let item = items.get(c.name.as_str()).copied();
        let without_diffs = meta.without_diffs;
        let Some(a) = compare(
            fleet,
            item,
            &c.name,
            before,
            after,
            without_diffs,
            |a, b, after| {
                // The blast radius reads only `spec`, which normalising leaves as it is.
                if let (Some(ns), Some(part)) = (nodes, &partition) {
                    blast_radius(a, b, after, fleet, ns, part);
                }
            },
        ) else {
            continue;
        };
        if a.action == Action::Delete {
            prune.push(a);
        } else {
            by_stage.entry(a.stage.clone()).or_default().push(a);
        }
    }
    let mut stages: Vec<StagePlan> = fleet
        .stages
        .iter()
        .map(|s| StagePlan {
            name: s.name.clone(),
            groups: s.groups.clone(),
            bake_seconds: s.bake.as_secs(),
            timeout_seconds: s.timeout.as_secs(),
            actions: by_stage.remove(&s.name).unwrap_or_default(),
            nodes_restarted: None,
            estimated_seconds: None,
            frozen: None,
            progress_deadline_seconds: (s.progress_deadline != s.timeout)
                .then_some(s.progress_deadline.as_secs()),
            max_unobserved_seconds: (s.max_unobserved != crate::fleet::DEFAULT_MAX_UNOBSERVED)
                .then_some(s.max_unobserved.as_secs()),
            node_conditions: fleet.node_conditions.clone(),
        })
        .collect();
    // Objects whose group no longer has a stage still show, in the last stage.
    let leftovers: Vec<ActionPlan> = by_stage.into_values().flatten().collect();
    if !leftovers.is_empty() {
        if let Some(last) = stages.last_mut() {
            last.actions.extend(leftovers);
        } else {
            stages.push(StagePlan {
                name: String::new(),
                groups: Vec::new(),
                bake_seconds: 0,
                timeout_seconds: 0,
                actions: leftovers,
                nodes_restarted: None,
                estimated_seconds: None,
                frozen: None,
                progress_deadline_seconds: None,
                max_unobserved_seconds: None,
                node_conditions: Vec::new(),
            });
        }
    }
    for s in &mut stages {
        s.actions.sort_by(|a, b| a.name.cmp(&b.name));
        if nodes.is_some() {
            s.nodes_restarted = Some(distinct_nodes(&s.actions));
            // The drover driver's DaemonSets of a stage share its budget.
            let sharing = s
                .actions
                .iter()
                .filter(|a| a.restarts_pods && a.drive.is_some())
                .count();
            for a in &mut s.actions {
                if let Some(d) = &a.drive {
                    a.estimated_seconds = Some(d.estimate_seconds(sharing));
                }
            }
            let slowest = s
                .actions
                .iter()
                .filter(|a| a.restarts_pods)
                .filter_map(|a| a.estimated_seconds)
                .max();
            s.estimated_seconds = Some(slowest.map_or(0, |t| t + s.bake_seconds));
        }
    }
    prune.sort_by(|a, b| a.name.cmp(&b.name));

    let mut summary = Summary::default();
    let all: Vec<&ActionPlan> = stages
        .iter()
        .flat_map(|s| s.actions.iter())
        .chain(prune.iter())
        .collect();
    for a in &all {
        if a.replaces.is_some() {
            summary.replace += 1;
        }
        match a.action {
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Delete => summary.delete += 1,
            Action::Unchanged => summary.unchanged += 1,
        }
        if a.restarts_pods {
            summary.restarts += 1;
        }
    }
    if nodes.is_some() {
        let names: BTreeSet<&str> = all
            .iter()
            .filter(|a| a.restarts_pods)
            .flat_map(|a| a.node_names.iter().map(String::as_str))
            .collect();
        summary.nodes_restarted = Some(names.len());
        summary.estimated_seconds = Some(stages.iter().filter_map(|s| s.estimated_seconds).sum());
    }
    let verdicts = partition
        .as_deref()
        .map(|part| gate_verdicts(fleet, &stages, part))
        .unwrap_or_default();
    Plan {
        schema: PLAN_SCHEMA.into(),
        fleet: fleet.name.clone(),
        namespace: fleet.namespace.clone(),
        base: meta.base,
        head: meta.head,
        stages,
        prune,
        summary,
        verdicts,
        head_signature: None,
        plan_digest: None,
        companions: Vec::new(),
        config_files: Vec::new(),
        config_maps: Vec::new(),
    }
}

/// Stages that gate later changes but select no node (see [`Verdict::UngatedStage`]).
fn gate_verdicts(
    fleet: &Fleet,
    stages: &[StagePlan],
    partition: &[Option<String>],
) -> Vec<Verdict> {
    let mut out = Vec::new();
    for (j, stage) in stages.iter().enumerate() {
        let selected = partition.iter().flatten().any(|g| stage.groups.contains(g));
        if selected {
            continue;
        }
        let gated: BTreeSet<&str> = fleet
            .daemons
            .iter()
            .filter(|d| d.placement.iter().any(|g| stage.groups.contains(g)))
            .map(|d| d.name.as_str())
            .collect();
        let mut daemons = BTreeSet::new();
        let mut later = Vec::new();
        for s in &stages[j + 1..] {
            let hit: Vec<&str> = s
                .actions
                .iter()
                .filter(|a| a.restarts_pods && a.action != Action::Delete && a.nodes != Some(0))
                .map(|a| a.daemon.as_str())
                .filter(|d| gated.contains(d))
                .collect();
            if !hit.is_empty() {
                later.push(s.name.clone());
                daemons.extend(hit);
            }
        }
        if !daemons.is_empty() {
            out.push(Verdict::UngatedStage {
                stage: stage.name.clone(),
                groups: stage.groups.clone(),
                daemons: daemons.into_iter().map(str::to_string).collect(),
                later_stages: later,
            });
        }
    }
    out
}

fn distinct_nodes(actions: &[ActionPlan]) -> usize {
    actions
        .iter()
        .filter(|a| a.restarts_pods)
        .flat_map(|a| a.node_names.iter())
        .collect::<BTreeSet<_>>()
        .len()
}

fn label<'a>(obj: Option<&'a JsonValue>, key: &str) -> Option<&'a str> {
    obj?.pointer("/metadata/labels")?.get(key)?.as_str()
}

/// The action for one DaemonSet from its two normalised sides (keys not yet sorted),
/// with `finish` run on it and both sides before they are dropped.
#[allow(clippy::too_many_arguments)] // reason: one caller; the pieces of one comparison
fn compare(
    fleet: &Fleet,
    item: Option<&DesiredDaemonSet>,
    name: &str,
    mut before: Option<JsonValue>,
    mut after: Option<JsonValue>,
    without_diffs: bool,
    finish: impl FnOnce(&mut ActionPlan, Option<&JsonValue>, Option<&JsonValue>),
) -> Option<ActionPlan> {
    let mut replaces = None;
    let (action, imp) = match (&before, &after) {
        (None, None) => return None,
        (None, Some(_)) => (Action::Create, Impact::Restart),
        (Some(_), None) => (Action::Delete, Impact::Restart),
        (Some(b), Some(a)) => {
            let moved = namespace_of(b) != namespace_of(a);
            let immutable = immutable_changes(b, a);
            if moved || !immutable.is_empty() {
                let fleet_label = |o: &JsonValue| label(Some(o), LABEL_FLEET).map(str::to_string);
                replaces = Some(Replacement {
                    namespace: namespace_of(b).to_string(),
                    fleet: fleet_label(b).filter(|f| Some(f) != fleet_label(a).as_ref()),
                    fields: if moved {
                        std::iter::once("metadata.namespace".to_string())
                            .chain(immutable)
                            .collect()
                    } else {
                        immutable
                    },
                    delete_first: !moved,
                });
                (Action::Create, Impact::Restart)
            } else {
                match impact(b, a) {
                    Impact::None => (Action::Unchanged, Impact::None),
                    i => (Action::Update, i),
                }
            }
        }
    };
    let either = after.as_ref().or(before.as_ref());
    let daemon = item
        .map(|i| i.daemon.clone())
        .or_else(|| label(either, LABEL_DAEMON).map(str::to_string))
        .unwrap_or_default();
    let group = item
        .map(|i| i.group.clone())
        .or_else(|| label(either, LABEL_GROUP).map(str::to_string))
        .unwrap_or_default();
    let stage = if action == Action::Delete {
        PRUNE_STAGE.to_string()
    } else {
        item.map(|i| i.stage.clone())
            .or_else(|| fleet.stage_of(&group).map(|s| s.name.clone()))
            .unwrap_or_default()
    };
    // An unchanged DaemonSet has no field changes and no diff; only what is printed
    // needs its keys sorted.
    let (changes, diff) = if action == Action::Unchanged {
        (Vec::new(), String::new())
    } else {
        // A config ConfigMap's hashed name says nothing a reviewer can read: the
        // files' own diffs do (the plan's `config_files`).
        let entries: Vec<String> = item
            .and_then(|i| fleet.daemons.iter().find(|d| d.name == i.daemon))
            .map(|d| d.config.iter().map(|e| e.name.clone()).collect())
            .unwrap_or_default();
        for side in [&mut before, &mut after].into_iter().flatten() {
            if !entries.is_empty() {
                crate::config_diff::without_hashed_names(side, &entries);
            }
            sort_keys_deep(side);
        }
        let changes = match (&before, &after) {
            (Some(b), Some(a)) => field_changes(b, a),
            _ => Vec::new(),
        };
        let diff = if without_diffs {
            String::new()
        } else {
            unified_diff(name, before.as_ref(), after.as_ref())
        };
        (changes, diff)
    };
    let mut a = ActionPlan {
        name: name.to_string(),
        namespace: None,
        daemon,
        group,
        stage,
        action,
        restarts_pods: imp.restarts_pods(),
        impact: imp,
        changes,
        diff,
        nodes: None,
        estimated_seconds: None,
        node_names: Vec::new(),
        drive: None,
        privileges_added: if action == Action::Delete {
            Vec::new()
        } else {
            privilege::added(before.as_ref(), after.as_ref())
        },
        replaces,
        config_files: Vec::new(),
    };
    // A delete of an object outside the plan's namespace says where it is.
    if action == Action::Delete
        && let Some(ns) = before
            .as_ref()
            .map(namespace_of)
            .filter(|ns| *ns != fleet.namespace)
    {
        a.namespace = Some(ns.to_string());
    }
    finish(&mut a, before.as_ref(), after.as_ref());
    Some(a)
}

/// Which group each node belongs to (first match), by node index.
fn partition(fleet: &Fleet, nodes: &[NodeInfo]) -> Vec<Option<String>> {
    let selectors: Vec<Vec<Requirement>> =
        fleet.groups.iter().map(|g| g.selector.clone()).collect();
    nodes
        .iter()
        .map(|n| first_match(&selectors, &n.labels).map(|i| fleet.groups[i].name.clone()))
        .collect()
}

fn blast_radius(
    a: &mut ActionPlan,
    before: Option<&JsonValue>,
    after: Option<&JsonValue>,
    fleet: &Fleet,
    nodes: &[NodeInfo],
    partition: &[Option<String>],
) {
    let placed = |obj: &JsonValue| -> BTreeSet<usize> {
        let known_group = fleet.group(&a.group).is_some() && !a.group.is_empty();
        nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| {
                let in_group = if known_group {
                    partition[*i].as_deref() == Some(a.group.as_str())
                } else {
                    // The group is gone from the fleet: the object's own affinity says.
                    affinity_matches(obj, &n.labels)
                };
                in_group && tolerates_node(obj, n)
            })
            .map(|(i, _)| i)
            .collect()
    };
    let before_nodes = before.map(placed).unwrap_or_default();
    let after_nodes = after.map(placed).unwrap_or_default();
    let runs_on: BTreeSet<usize> = before_nodes.union(&after_nodes).copied().collect();
    let affected: Vec<usize> = if a.restarts_pods {
        runs_on.into_iter().collect()
    } else {
        Vec::new()
    };
    a.node_names = affected.iter().map(|i| nodes[*i].name.clone()).collect();
    a.nodes = Some(affected.len());
    if let Some(obj) = after.filter(|_| a.action != Action::Delete && !affected.is_empty()) {
        let restarting: Vec<&NodeInfo> = affected.iter().map(|i| &nodes[*i]).collect();
        a.drive = DrivePlan::of(obj, &restarting, after_nodes.len(), nodes.len());
    }
    // A deleted DaemonSet's pods all go at once (cascading delete): no rollout.
    a.estimated_seconds = Some(if affected.is_empty() || a.action == Action::Delete {
        0
    } else {
        let obj = after.or(before);
        estimate_seconds(
            obj,
            affected.len(),
            after_nodes.len().max(before_nodes.len()),
        )
    });
}

/// The rollout time of one DaemonSet replacing pods on `restarting` nodes, with its
/// `maxUnavailable` (or `maxSurge` when that is 0) resolved against `total` nodes.
fn estimate_seconds(obj: Option<&JsonValue>, restarting: usize, total: usize) -> u64 {
    let spec = obj.and_then(|o| o.get("spec"));
    let ru = spec.and_then(|s| s.pointer("/updateStrategy/rollingUpdate"));
    let resolve = |field: &str, default: u64| -> u64 {
        match ru.and_then(|r| r.get(field)) {
            Some(JsonValue::Number(n)) => n.as_u64().unwrap_or(default),
            Some(JsonValue::String(s)) => resolve_percent(s, total).unwrap_or(default),
            _ => default,
        }
    };
    let mut per_batch = resolve("maxUnavailable", 1);
    if per_batch == 0 {
        per_batch = resolve("maxSurge", 0);
    }
    let per_batch = per_batch.max(1);
    let batches = (restarting as u64).div_ceil(per_batch);
    let min_ready = spec
        .and_then(|s| s.get("minReadySeconds"))
        .and_then(JsonValue::as_u64)
        .unwrap_or(0);
    batches * (min_ready + ASSUMED_POD_START_SECONDS)
}

/// `"10%"` of `total`, rounded up as Kubernetes does for DaemonSets; a plain integer
/// string is taken as is.
fn resolve_percent(s: &str, total: usize) -> Option<u64> {
    match s.strip_suffix('%') {
        Some(p) => {
            let p: u64 = p.trim().parse().ok()?;
            Some((p * total as u64).div_ceil(100))
        }
        None => s.trim().parse().ok(),
    }
}

/// Taints the DaemonSet controller tolerates for every DaemonSet pod.
const DAEMONSET_AUTO_TOLERATIONS: [(&str, &str); 6] = [
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];

/// Whether a DaemonSet's pods tolerate every NoSchedule/NoExecute taint of the node,
/// by Kubernetes' matching rules (plus the tolerations the DaemonSet controller adds).
pub fn tolerates_node(ds: &JsonValue, node: &NodeInfo) -> bool {
    let pod = ds.pointer("/spec/template/spec");
    let tolerations: &[JsonValue] = pod
        .and_then(|p| p.get("tolerations"))
        .and_then(JsonValue::as_array)
        .map_or(&[], Vec::as_slice);
    let host_network = pod
        .and_then(|p| p.get("hostNetwork"))
        .and_then(JsonValue::as_bool)
        .unwrap_or(false);
    node.taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|t| {
            DAEMONSET_AUTO_TOLERATIONS
                .iter()
                .any(|(k, e)| *k == t.key && *e == t.effect)
                || (host_network
                    && t.key == "node.kubernetes.io/network-unavailable"
                    && t.effect == "NoSchedule")
                || tolerations.iter().any(|tol| tolerates(tol, t))
        })
}

/// Kubernetes' `Toleration.ToleratesTaint`.
pub fn tolerates(tol: &JsonValue, taint: &Taint) -> bool {
    let s = |k: &str| tol.get(k).and_then(JsonValue::as_str).unwrap_or("");
    let effect = s("effect");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = s("key");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match s("operator") {
        "Exists" => true,
        "" | "Equal" => !key.is_empty() && s("value") == taint.value,
        _ => false,
    }
}

/// Whether a DaemonSet's required node affinity and nodeSelector admit a node.
fn affinity_matches(ds: &JsonValue, labels: &BTreeMap<String, String>) -> bool {
    let pod = ds.pointer("/spec/template/spec");
    if let Some(sel) = pod
        .and_then(|p| p.get("nodeSelector"))
        .and_then(JsonValue::as_object)
        && !sel
            .iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
    {
        return false;
    }
    let Some(terms) = pod
        .and_then(|p| {
            p.pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        })
        .and_then(JsonValue::as_array)
    else {
        return true;
    };
    terms.iter().any(|t| {
        let reqs: Vec<Requirement> = t
            .get("matchExpressions")
            .and_then(JsonValue::as_array)
            .map(|es| {
                es.iter()
                    .filter_map(|e| {
                        let op = Op::parse(e.get("operator")?.as_str()?)?;
                        let values = e
                            .get("values")
                            .and_then(JsonValue::as_array)
                            .map(|vs| {
                                vs.iter()
                                    .filter_map(|v| v.as_str().map(str::to_string))
                                    .collect::<Vec<_>>()
                            })
                            .unwrap_or_default();
                        Some(Requirement::new(e.get("key")?.as_str()?, op, values))
                    })
                    .collect()
            })
            .unwrap_or_default();
        matches_all(&reqs, labels)
    })
}

/// Why a node list cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum NodeListError {
    #[error("cannot parse the node list as YAML: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("expected a Node, NodeList or List of Nodes, found kind `{0}`")]
    Kind(String),
    #[error("item {index}: not a Node (kind `{kind}`)")]
    Item { index: usize, kind: String },
    #[error("item {index}: a Node without metadata.name")]
    NoName { index: usize },
}

/// Reads `kubectl get nodes -o yaml` output: a `List` or `NodeList` of Nodes, or a
/// single `Node`; several YAML documents of those are also accepted. Only names,
/// labels and taints are kept; the result is sorted by name.
///
/// # Errors
/// On invalid YAML, or any item that is not a Node with a name.
pub fn parse_node_list(yaml: &str) -> Result<Vec<NodeInfo>, NodeListError> {
    let mut items: Vec<JsonValue> = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let v: JsonValue = serde::Deserialize::deserialize(doc)?;
        if v.is_null() {
            continue;
        }
        match v.get("kind").and_then(JsonValue::as_str).unwrap_or("") {
            "List" | "NodeList" => {
                items.extend(
                    v.get("items")
                        .and_then(JsonValue::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            "Node" => items.push(v),
            other => return Err(NodeListError::Kind(other.to_string())),
        }
    }
    let mut out = items
        .iter()
        .enumerate()
        .map(|(index, n)| node_info(index, n))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What blast-radius estimates need of one Node object (JSON, as the API server or
/// `kubectl get nodes` gives it): its name, labels and taints. `index` is its place
/// in the list, for the error. An object without `kind` is taken as a Node (LIST
/// items have none).
///
/// # Errors
/// When the object is not a Node or has no name.
pub fn node_info(index: usize, n: &JsonValue) -> Result<NodeInfo, NodeListError> {
    let kind = n.get("kind").and_then(JsonValue::as_str).unwrap_or("");
    if !kind.is_empty() && kind != "Node" {
        return Err(NodeListError::Item {
            index,
            kind: kind.to_string(),
        });
    }
    let name = n
        .pointer("/metadata/name")
        .and_then(JsonValue::as_str)
        .ok_or(NodeListError::NoName { index })?;
    let labels = n
        .pointer("/metadata/labels")
        .and_then(JsonValue::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        JsonValue::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    let taints = n
        .pointer("/spec/taints")
        .and_then(JsonValue::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let s = |k: &str| t.get(k).and_then(JsonValue::as_str).unwrap_or("");
                    Taint {
                        key: s("key").to_string(),
                        value: s("value").to_string(),
                        effect: s("effect").to_string(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(NodeInfo {
        name: name.to_string(),
        labels,
        taints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn companion(manifest: JsonValue) -> crate::companion::Companion {
        crate::companion::Companion {
            path: "companions/agent/configmap-agent.yaml".into(),
            line: 1,
            owner: Some("agent".into()),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("agents".into()),
            name: "agent".into(),
            manifest,
        }
    }

    #[test]
    fn a_companion_whose_keys_are_only_reordered_is_unchanged_and_a_changed_secret_value_is_masked()
    {
        let base = companion(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "agent", "namespace": "agents"}, "data": {"api_token": "old-secret", "level": "info"}}),
        );
        let reordered = companion(
            json!({"data": {"level": "info", "api_token": "old-secret"}, "metadata": {"namespace": "agents", "name": "agent"}, "kind": "ConfigMap", "apiVersion": "v1"}),
        );
        let p = plan_companions(compare_companions(
            std::slice::from_ref(&base),
            std::slice::from_ref(&reordered),
        ));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].action, Action::Unchanged);
        assert!(p[0].diff.is_empty());
        assert_eq!(base.content_hash(), reordered.content_hash());

        let changed = companion(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "agent", "namespace": "agents"}, "data": {"api_token": "new-secret", "level": "debug"}}),
        );
        let p = plan_companions(compare_companions(
            std::slice::from_ref(&base),
            std::slice::from_ref(&changed),
        ));
        assert_eq!(p[0].action, Action::Update);
        assert_eq!(p[0].object, "ConfigMap/agents/agent");
        assert_eq!(p[0].daemon.as_deref(), Some("agent"));
        let shown = format!("{:?}{}", p[0].changes, p[0].diff);
        assert!(
            !shown.contains("old-secret") && !shown.contains("new-secret"),
            "{shown}"
        );
        assert!(p[0].diff.contains("+  level: debug"), "{}", p[0].diff);
        assert!(
            p[0].diff.contains(crate::diff::MASK_CHANGED),
            "{}",
            p[0].diff
        );
        assert_ne!(base.content_hash(), changed.content_hash());

        let gone = plan_companions(compare_companions(std::slice::from_ref(&base), &[]));
        assert_eq!(gone[0].action, Action::Delete);
        let new = plan_companions(compare_companions(&[], std::slice::from_ref(&base)));
        assert_eq!(new[0].action, Action::Create);
        assert!(!new[0].diff.contains("old-secret"), "{}", new[0].diff);
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
        }
    }

    #[test]
    fn toleration_matching_follows_kubernetes() {
        let gpu = taint("nvidia.com/gpu", "present", "NoSchedule");
        assert!(tolerates(&json!({"operator": "Exists"}), &gpu));
        assert!(tolerates(
            &json!({"operator": "Exists", "effect": "NoSchedule"}),
            &gpu
        ));
        assert!(!tolerates(
            &json!({"operator": "Exists", "effect": "NoExecute"}),
            &gpu
        ));
        assert!(tolerates(
            &json!({"key": "nvidia.com/gpu", "operator": "Exists"}),
            &gpu
        ));
        assert!(tolerates(
            &json!({"key": "nvidia.com/gpu", "value": "present"}),
            &gpu
        ));
        assert!(!tolerates(
            &json!({"key": "nvidia.com/gpu", "operator": "Equal", "value": "other"}),
            &gpu
        ));
        assert!(!tolerates(
            &json!({"key": "other", "operator": "Exists"}),
            &gpu
        ));
    }

    #[test]
    fn prefer_no_schedule_and_controller_taints_do_not_keep_daemon_pods_off() {
        let ds = json!({"spec": {"template": {"spec": {}}}});
        let node = NodeInfo {
            name: "n".into(),
            labels: BTreeMap::new(),
            taints: vec![
                taint("soft", "", "PreferNoSchedule"),
                taint("node.kubernetes.io/unschedulable", "", "NoSchedule"),
            ],
        };
        assert!(tolerates_node(&ds, &node));
        let tainted = NodeInfo {
            taints: vec![taint("dedicated", "db", "NoExecute")],
            ..node
        };
        assert!(!tolerates_node(&ds, &tainted));
    }

    fn set(items: &[(&str, JsonValue)]) -> DesiredSet {
        DesiredSet {
            fleet: "f".into(),
            namespace: "n".into(),
            items: items
                .iter()
                .map(|(name, manifest)| DesiredDaemonSet {
                    name: (*name).into(),
                    daemon: "d".into(),
                    group: "g".into(),
                    stage: "s".into(),
                    source: "d.yaml".into(),
                    spec_hash: "h".into(),
                    manifest: manifest.clone().into(),
                })
                .collect(),
            companions: Vec::new(),
            config_maps: Vec::new(),
        }
    }

    #[test]
    fn moving_renders_pairs_them_as_copying_does() {
        let base = set(&[("a", json!({"v": 1})), ("b", json!({"v": 2}))]);
        let head = set(&[("b", json!({"v": 3})), ("c", json!({"v": 4}))]);
        let copied = compare_renders(Some(&base), &head);
        let mut moved_head = head.clone();
        assert_eq!(compare_renders_owned(Some(base), &mut moved_head), copied);
        assert!(
            moved_head
                .items
                .iter()
                .all(|i| i.manifest.value().is_null())
        );
        let names: Vec<&str> = moved_head.items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        let mut alone = head.clone();
        assert_eq!(
            compare_renders_owned(None, &mut alone),
            compare_renders(None, &head)
        );
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(resolve_percent("10%", 12), Some(2));
        assert_eq!(resolve_percent("10%", 10), Some(1));
        assert_eq!(resolve_percent("0%", 10), Some(0));
        assert_eq!(resolve_percent("3", 10), Some(3));
    }

    #[test]
    fn estimate_uses_max_surge_when_max_unavailable_is_zero() {
        let ds = json!({"spec": {"minReadySeconds": 5, "updateStrategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "50%"}}}});
        // 4 nodes, 2 per batch: 2 batches of 5 + 10 s.
        assert_eq!(estimate_seconds(Some(&ds), 4, 4), 30);
        let one = json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 1}}}});
        assert_eq!(estimate_seconds(Some(&one), 3, 3), 30);
    }

    #[test]
    fn a_driven_daemonset_plans_its_waves_zone_by_zone_and_its_estimate_shares_the_budget() {
        let ds = json!({
            "metadata": {"annotations": {
                "drover.dev/driver": "drover",
                "drover.dev/waves": "1,10%,100%",
                "drover.dev/waves-by": "zone",
                "drover.dev/max-unavailable": "10%",
                "drover.dev/disruption-budget": "5%",
                "drover.dev/disruption-class": "node-critical"
            }},
            "spec": {"minReadySeconds": 2}
        });
        let nodes: Vec<NodeInfo> = (0..40)
            .map(|i| NodeInfo {
                name: format!("n{i:02}"),
                labels: [(
                    "zone".to_string(),
                    if i < 20 { "a" } else { "b" }.to_string(),
                )]
                .into(),
                taints: Vec::new(),
            })
            .collect();
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let d = DrivePlan::of(&ds, &refs, 40, 40).unwrap();
        let waves: Vec<(Option<&str>, usize, usize)> = d
            .waves
            .iter()
            .map(|w| (w.scope.as_deref(), w.number, w.nodes))
            .collect();
        assert_eq!(
            waves,
            [
                (Some("a"), 1, 1),
                (Some("a"), 2, 1),
                (Some("a"), 3, 18),
                (Some("b"), 1, 1),
                (Some("b"), 2, 1),
                (Some("b"), 3, 18)
            ]
        );
        assert_eq!((d.max_unavailable, d.budget_nodes), (4, Some(2)));
        // Alone: 2 at once (the budget is the tighter); 1+1+9 batches per zone of 12 s.
        assert_eq!(d.estimate_seconds(1), 2 * 11 * 12);
        // Two driven DaemonSets share the budget of 2: 1 each.
        assert_eq!(d.estimate_seconds(2), 2 * 20 * 12);
        // A 30s bake after each of the 6 waves but the last.
        let mut baked = ds.clone();
        baked["metadata"]["annotations"]["drover.dev/wave-bake"] = json!("30s");
        let b = DrivePlan::of(&baked, &refs, 40, 40).unwrap();
        assert_eq!(b.wave_bake_seconds, 30);
        assert_eq!(b.estimate_seconds(1), 2 * 11 * 12 + 5 * 30);
        // An estimate never overflows, whatever the bake.
        let huge = DrivePlan {
            wave_bake_seconds: u64::MAX,
            ..b.clone()
        };
        assert_eq!(huge.estimate_seconds(1), u64::MAX);
        let plain = json!({"metadata": {"annotations": {}}, "spec": {}});
        assert!(DrivePlan::of(&plain, &refs, 40, 40).is_none());
    }

    #[test]
    fn node_lists_in_every_shape_parse() {
        let list = "apiVersion: v1\nkind: List\nitems:\n- kind: Node\n  metadata: {name: b, labels: {x: '1'}}\n  spec: {taints: [{key: k, effect: NoSchedule}]}\n- kind: Node\n  metadata: {name: a}\n";
        let nodes = parse_node_list(list).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].name, "a");
        assert_eq!(nodes[1].taints[0].key, "k");
        assert_eq!(nodes[1].labels["x"], "1");
        let single = "kind: Node\nmetadata: {name: solo}\n";
        assert_eq!(parse_node_list(single).unwrap()[0].name, "solo");
        let nodelist = "kind: NodeList\nitems: [{metadata: {name: c}}]\n";
        assert_eq!(parse_node_list(nodelist).unwrap()[0].name, "c");
        assert!(matches!(
            parse_node_list("kind: Pod\nmetadata: {name: p}\n"),
            Err(NodeListError::Kind(_))
        ));
        assert!(matches!(
            parse_node_list("kind: List\nitems: [{kind: Node, metadata: {}}]\n"),
            Err(NodeListError::NoName { index: 0 })
        ));
    }

    #[test]
    fn a_node_from_the_api_keeps_what_a_parsed_list_keeps_and_a_non_node_is_refused() {
        // A LIST item: no kind, with the status and managed fields the API sends.
        let item = json!({
            "metadata": {"name": "n1", "labels": {"pool": "a"}, "managedFields": [{"manager": "kwok"}]},
            "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoExecute"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        let listed = parse_node_list(
            "kind: List\nitems:\n- metadata: {name: n1, labels: {pool: a}}\n  spec: {taints: [{key: k, value: v, effect: NoExecute}]}\n",
        )
        .unwrap();
        assert_eq!(node_info(0, &item).unwrap(), listed[0]);
        assert!(matches!(
            node_info(3, &json!({"kind": "Pod", "metadata": {"name": "p"}})),
            Err(NodeListError::Item { index: 3, .. })
        ));
        assert!(matches!(
            node_info(2, &json!({"metadata": {}})),
            Err(NodeListError::NoName { index: 2 })
        ));
    }

    #[test]
    fn affinity_of_the_object_places_nodes_when_the_group_is_gone() {
        let ds = json!({"spec": {"template": {"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["true"]}]}
        ]}}}}}}});
        let l = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(affinity_matches(&ds, &l(&[("gpu", "true")])));
        assert!(!affinity_matches(&ds, &l(&[("gpu", "false")])));
        assert!(affinity_matches(&json!({}), &l(&[])));
    }

    /// A fleet `name` in `namespace` with groups `groups` (each selecting `g=<name>`)
    /// and daemons `(name, groups)`, rendered at commit `c`.
    fn fleet_of(
        name: &str,
        namespace: &str,
        groups: &[&str],
        daemons: &[(&str, &[&str])],
    ) -> (Fleet, DesiredSet) {
        use crate::load::SourceFile;
        let mut files = vec![SourceFile {
            path: "drover.yaml".into(),
            bytes: format!(
                "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: {name}}}\nspec: {{namespace: {namespace}, groups: [{}]}}\n",
                groups.join(", ")
            )
            .into_bytes(),
        }];
        for g in groups {
            files.push(SourceFile {
                path: format!("groups/{g}.yaml"),
                bytes: format!("apiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {{name: {g}}}\nspec: {{selector: {{matchLabels: {{g: {g}}}}}}}\n").into_bytes(),
            });
        }
        for (d, gs) in daemons {
            files.push(SourceFile {
                path: format!("daemons/{d}.yaml"),
                bytes: format!("apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {{name: {d}}}\nspec: {{image: 'r.example/{d}:1', groups: [{}]}}\n", gs.join(", ")).into_bytes(),
            });
        }
        let limits = crate::limits::LIMITS;
        let fleet = crate::validate::load_fleet(&files, &limits).expect("a valid fleet");
        let ctx = crate::render::RenderContext {
            commit: Some("c".into()),
        };
        let desired = crate::render::render(&fleet, &ctx, usize::MAX).expect("renders");
        (fleet, desired)
    }

    fn offline(base: &DesiredSet, head: &(Fleet, DesiredSet)) -> Plan {
        let (fleet, desired) = head;
        plan(
            fleet,
            desired,
            compare_renders(Some(base), desired),
            None,
            PlanMeta::default(),
        )
    }

    #[test]
    fn a_namespace_change_plans_as_moves_not_as_metadata_updates() {
        let (_, base) = fleet_of("f", "old-ns", &["a", "b"], &[("agent", &["a", "b"])]);
        let head = fleet_of("f", "new-ns", &["a", "b"], &[("agent", &["a", "b"])]);
        let p = offline(&base, &head);
        let actions: Vec<&ActionPlan> = p.actions().collect();
        assert_eq!(actions.len(), 2, "{p:#?}");
        for a in &actions {
            assert_eq!(a.action, Action::Create, "{a:#?}");
            assert_eq!(a.stage, a.group, "in its own stage, not in prune");
            assert!(a.restarts_pods);
            assert_eq!(
                a.replaces,
                Some(Replacement {
                    namespace: "old-ns".into(),
                    fleet: None,
                    fields: vec!["metadata.namespace".into()],
                    delete_first: false,
                })
            );
        }
        assert!(p.prune.is_empty());
        assert_eq!(
            (p.summary.create, p.summary.replace, p.summary.delete),
            (2, 2, 0)
        );
        assert_eq!(p.summary.update, 0, "never an in-place update");
    }

    #[test]
    fn a_fleet_rename_plans_as_replacements_deleted_first() {
        let (_, base) = fleet_of("old", "ns", &["a"], &[("agent", &["a"]), ("logs", &["a"])]);
        let head = fleet_of("new", "ns", &["a"], &[("agent", &["a"]), ("logs", &["a"])]);
        let p = offline(&base, &head);
        assert_eq!(p.summary.replace, 2, "{p:#?}");
        for a in p.actions() {
            let r = a.replaces.as_ref().expect("a replacement");
            assert_eq!(r.fields, ["spec.selector"]);
            assert_eq!(r.fleet.as_deref(), Some("old"));
            assert!(r.delete_first);
            assert!(
                a.changes
                    .iter()
                    .any(|c| c.path.starts_with("spec.selector")),
                "{a:#?}"
            );
        }
        // Renamed and moved at once: a move, still naming both reasons.
        let moved = fleet_of(
            "new",
            "other",
            &["a"],
            &[("agent", &["a"]), ("logs", &["a"])],
        );
        let p = offline(&base, &moved);
        let r = p.stages[0].actions[0].replaces.as_ref().unwrap();
        assert_eq!(r.fields, ["metadata.namespace", "spec.selector"]);
        assert!(!r.delete_first);
    }

    #[test]
    fn a_daemonset_name_reused_with_another_selector_is_a_replacement() {
        // `a-b` in group `c` and `a` in group `b-c` both render `a-b-c`.
        let (_, base) = fleet_of("f", "ns", &["c", "b-c"], &[("a-b", &["c"])]);
        let head = fleet_of("f", "ns", &["c", "b-c"], &[("a", &["b-c"])]);
        let p = offline(&base, &head);
        let a = p
            .actions()
            .find(|a| a.name == "a-b-c")
            .expect("a-b-c planned");
        assert_eq!(a.action, Action::Create);
        assert_eq!(a.group, "b-c");
        assert_eq!(
            a.replaces.as_ref().map(|r| r.delete_first),
            Some(true),
            "{a:#?}"
        );
        assert_eq!(p.summary.update, 0);
    }

    #[test]
    fn an_unchanged_selector_in_the_same_namespace_is_an_update_as_before() {
        let (_, base) = fleet_of("f", "ns", &["a"], &[("agent", &["a"])]);
        let (fleet, mut head) = fleet_of("f", "ns", &["a"], &[("agent", &["a"])]);
        let mut m = head.items[0].manifest.value();
        m["spec"]["template"]["spec"]["containers"][0]["image"] = json!("r.example/agent:2");
        head.items[0].manifest = m.into();
        let p = offline(&base, &(fleet, head));
        let a = &p.stages[0].actions[0];
        assert_eq!((a.action, a.replaces.is_none()), (Action::Update, true));
        assert_eq!(p.summary.replace, 0);
        assert!(
            !crate::report::json::render(&p).contains("\"replace"),
            "no new fields when nothing is replaced"
        );
    }

    #[test]
    fn copies_in_several_namespaces_are_one_move_and_deletes_naming_where_they_are() {
        let (fleet, desired) = fleet_of("f", "new", &["a"], &[("agent", &["a"])]);
        let at = |ns: &str| {
            let mut m = desired.items[0].manifest.value();
            m["metadata"]["namespace"] = json!(ns);
            m
        };
        let comparisons = vec![
            Comparison {
                name: "agent-a".into(),
                before: Some(at("old")),
                after: Some(at("new")),
            },
            Comparison {
                name: "agent-a".into(),
                before: Some(at("older")),
                after: None,
            },
        ];
        let p = plan(&fleet, &desired, comparisons, None, PlanMeta::default());
        assert_eq!(p.stages[0].actions.len(), 1);
        assert_eq!(
            p.stages[0].actions[0]
                .replaces
                .as_ref()
                .map(|r| r.namespace.as_str()),
            Some("old")
        );
        assert_eq!(p.prune.len(), 1, "{p:#?}");
        assert_eq!(p.prune[0].namespace.as_deref(), Some("older"));
        let text = crate::report::text::render(&p, crate::style::Style::plain());
        assert!(text.contains("older/agent-a"), "{text}");
        assert!(text.contains("+/- agent-a"), "{text}");
    }

    #[test]
    fn immutable_changes_compare_the_selector_only() {
        let a = json!({"spec": {"selector": {"matchLabels": {"x": "1"}}, "minReadySeconds": 1}});
        let b = json!({"spec": {"selector": {"matchLabels": {"x": "2"}}, "minReadySeconds": 2}});
        assert_eq!(immutable_changes(&a, &b), ["spec.selector"]);
        assert!(immutable_changes(&a, &a).is_empty());
        assert_eq!(
            immutable_changes(&a, &json!({"spec": {}})),
            ["spec.selector"]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Whatever the fleet, a new namespace or a new name (or both) turns every
        /// DaemonSet into exactly one create replacing its live object (created first
        /// for a move, deleted first otherwise), never an update or a prune; and with
        /// neither, nothing is replaced.
        #[test]
        fn a_move_or_a_rename_replaces_every_daemonset_exactly_once(
            groups in 1usize..4,
            placements in proptest::collection::vec(proptest::collection::vec(proptest::bool::ANY, 3), 1..4),
            moved in proptest::bool::ANY,
            renamed in proptest::bool::ANY,
        ) {
            let group_names = ["g0", "g1", "g2"];
            let gs = &group_names[..groups];
            let daemons: Vec<(String, Vec<&str>)> = placements
                .iter()
                .enumerate()
                .map(|(i, on)| {
                    let mut placed: Vec<&str> = gs.iter().zip(on).filter(|(_, b)| **b).map(|(g, _)| *g).collect();
                    if placed.is_empty() {
                        placed.push(gs[0]);
                    }
                    (format!("d{i}"), placed)
                })
                .collect();
            let refs: Vec<(&str, &[&str])> = daemons.iter().map(|(d, g)| (d.as_str(), g.as_slice())).collect();
            let (_, base) = fleet_of("f", "ns", gs, &refs);
            let head = fleet_of(
                if renamed { "f2" } else { "f" },
                if moved { "ns2" } else { "ns" },
                gs,
                &refs,
            );
            let p = offline(&base, &head);
            let names: Vec<&str> = p.actions().map(|a| a.name.as_str()).collect();
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            proptest::prop_assert_eq!(names.len(), unique.len(), "each DaemonSet once: {:?}", names);
            proptest::prop_assert_eq!(names.len(), head.1.items.len());
            proptest::prop_assert!(p.prune.is_empty());
            proptest::prop_assert_eq!(p.summary.update, 0);
            for a in p.actions() {
                match &a.replaces {
                    Some(r) => {
                        proptest::prop_assert!(moved || renamed);
                        proptest::prop_assert_eq!(a.action, Action::Create);
                        proptest::prop_assert_eq!(r.delete_first, !moved);
                        proptest::prop_assert_eq!(r.namespace.as_str(), "ns");
                        proptest::prop_assert_eq!(r.fleet.is_some(), renamed);
                    }
                    None => {
                        proptest::prop_assert!(!moved && !renamed);
                        proptest::prop_assert_eq!(a.action, Action::Unchanged);
                    }
                }
            }
        }
    }
}
