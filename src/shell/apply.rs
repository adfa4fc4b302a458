//! Executing a plan: stages in order, each gated on its rollouts and its bake; halt
//! or roll back on failure; prune last.
//!
//! Owns: the order of writes and what is written on failure. Guarantees: no stage
//! starts before the previous one succeeded; stages a failing commit never reached
//! are never touched; every delete has a uid precondition and touches only an
//! object the plan found labelled with the fleet (its name or a previous one).
//! Prune runs only after every stage succeeded. A replacement is part of its stage:
//! the live object is deleted (and gone) before the stage is written; a move
//! applies the new object first and deletes the old one only once that apply
//! succeeded, then the stage is written and gated as any other.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value as JsonValue;

use super::clock::Clock;
use super::cluster::{Cluster, ClusterError};
use super::control::Controls;
use super::drive::{At, Driven, StageIo, Steps, drive};
use super::live::{Gathered, LiveObject, ObjectKey};
use super::progress::Progress;
use super::rollout::{StageOutcome, StageReport, StageRun, names, run_stage};
use crate::core::control::Clearance;
use crate::core::freeze::{self, Change, FreezeOverride, FreezeWindow};
use crate::core::machine::{
    self, Gate, Machine, RolloutSpec, StageResult, StageSpec, StageVerdict,
};
use crate::core::model::OnFailure;
use crate::core::plan::{Action, ActionPlan, Plan, Replacement};
use crate::core::render::{DesiredSet, Manifest};
use crate::core::rollout::RolloutStatus;

/// How a commit's rollout ended: the core's type, which the audit trail records.
pub use crate::core::rollout::Outcome;

/// What an apply did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApplyReport {
    pub outcome: Outcome,
    pub stages: Vec<StageReport>,
    /// The stage that failed, if one did.
    pub failed_stage: Option<String>,
    pub rollback: Vec<StageReport>,
    /// DaemonSets that could not be rolled back (no previous commit to take them from).
    pub rollback_skipped: Vec<String>,
    pub pruned: Vec<String>,
    pub seconds: f64,
    /// The freeze windows `--override-freeze` went through, and why.
    pub freeze_override: Option<FreezeOverride>,
}

/// Settings of one apply, resolved from the fleet and the command line.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub prune: bool,
    pub force: bool,
    pub on_failure: OnFailure,
    /// Skip stages before this index (resuming an interrupted rollout).
    pub start_stage: usize,
    /// Resuming: the stage at `start_stage` re-applies and re-waits for all of its
    /// DaemonSets, even those already current, so its gate is never skipped.
    pub resume: bool,
    pub freeze: FreezeGate,
}

/// How the fleet's freeze windows gate the stages of one apply: read before each
/// stage starts, with the clock of the moment.
#[derive(Debug, Clone)]
pub struct FreezeGate {
    pub windows: Vec<FreezeWindow>,
    /// A new change, or a drift correction (held only by `driftCorrection: deny`).
    pub change: Change,
    /// `--override-freeze REASON`: stages start through open windows, and the run
    /// records which and why.
    pub override_reason: Option<String>,
    pub clock: Clock,
}

impl FreezeGate {
    /// No windows: nothing is ever frozen.
    pub fn none() -> FreezeGate {
        FreezeGate {
            windows: Vec::new(),
            change: Change::Rollout,
            override_reason: None,
            clock: Clock::System,
        }
    }

    /// Whether a stage of `groups` may start now: frozen, or clear; when clear only
    /// by the override, also what the override went through.
    pub fn check(&self, groups: &[String]) -> (Clearance, Option<FreezeOverride>) {
        let now = self.clock.now();
        let Some(frozen) = freeze::stage_gate(&self.windows, groups, self.change, now) else {
            return (Clearance::Clear, None);
        };
        match &self.override_reason {
            Some(reason) => (
                Clearance::Clear,
                Some(FreezeOverride {
                    reason: reason.clone(),
                    windows: frozen.windows,
                    frozen_until: frozen.until.to_string(),
                }),
            ),
            None => (Clearance::Frozen(frozen), None),
        }
    }

    /// Whether a window holds the first stage `plan` writes
    /// ([`Plan::first_write_groups`]): such a rollout does not start. Never with the
    /// override.
    pub fn holds_start(&self, plan: &Plan) -> Option<freeze::Frozen> {
        match self.check(&plan.first_write_groups()) {
            (Clearance::Frozen(f), _) => Some(f),
            _ => None,
        }
    }
}

/// Where rollback finds the objects of the last good commit.
pub trait PreviousObjects: Send + Sync {
    /// The manifest `name` had at `commit`, if that commit rendered it.
    fn manifest(&self, commit: &str, name: &str) -> Option<Manifest>;
    /// The manifest of the companion object `object` (its key) at `commit`, if
    /// that commit rendered it.
    fn companion(&self, commit: &str, object: &str) -> Option<JsonValue>;
}

/// What a checkpoint tells the rollout to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proceed {
    /// Progress is saved: run the step.
    Continue,
    /// A stop was asked for: end before the step, touching nothing more.
    Stop,
}

/// Called before each step with the index of the stage about to run (the number of
/// stages for the prune step) and the reports of the stages this run finished so
/// far, so that a crash can resume there. An error (progress could not be saved)
/// ends the rollout before the step.
pub type Checkpoint<'a> = dyn FnMut(usize, &[StageReport]) -> Result<Proceed, Box<dyn std::error::Error + Send + Sync>>
    + Send
    + 'a;

/// How a run of [`execute`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Execution {
    /// The rollout ran to its end (whatever the outcome).
    Finished(ApplyReport),
    /// A checkpoint asked to stop before `stage` (the number of stages: before
    /// pruning); the checkpoint has the reports of the stages before it.
    Stopped { stage: usize },
}

/// Which step of an apply failed for a reason that is not the stage's fault (the
/// API server is away, progress cannot be saved). Nothing half-done is reported as
/// finished: the caller may retry from the last checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot record progress before {step}")]
    Checkpoint {
        /// `stage <name>` or `pruning`.
        step: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("stage {stage}")]
    ApplyStage { stage: String, source: ClusterError },
    /// Taking out the live objects a stage's moves and replacements replace,
    /// before the stage is written.
    #[error("replacing DaemonSets before stage {stage}")]
    Replace { stage: String, source: ClusterError },
    #[error("pruning")]
    Prune { source: ClusterError },
    /// Applying companion objects of a plan that writes no DaemonSet, or a transient
    /// failure applying them before a stage.
    #[error("applying companion objects")]
    Companions { source: ClusterError },
    /// The API server refused a companion object of a plan that writes no DaemonSet.
    #[error("applying companion objects: {reason}")]
    CompanionRefused { reason: String },
    #[error("rolling back stage {stage}")]
    Rollback { stage: String, source: ClusterError },
}

impl ApplyError {
    /// The API error underneath, if the failure was the cluster's.
    pub fn cluster_error(&self) -> Option<&ClusterError> {
        match self {
            ApplyError::Checkpoint { .. } | ApplyError::CompanionRefused { .. } => None,
            ApplyError::ApplyStage { source, .. }
            | ApplyError::Replace { source, .. }
            | ApplyError::Prune { source }
            | ApplyError::Companions { source }
            | ApplyError::Rollback { source, .. } => Some(source),
        }
    }
}

/// The desired manifests a stage applies: creates and updates, or with `all` every
/// DaemonSet of the stage. Borrowed from `desired`: a stage of thousands is not
/// copied.
pub fn stage_manifests<'a>(
    plan: &Plan,
    desired: &'a DesiredSet,
    stage: usize,
    all: bool,
) -> Vec<&'a Manifest> {
    let by_name: BTreeMap<&str, &Manifest> = desired
        .items
        .iter()
        .map(|i| (i.name.as_str(), &i.manifest))
        .collect();
    plan.stages[stage]
        .actions
        .iter()
        .filter(|a| all || matches!(a.action, Action::Create | Action::Update))
        .filter_map(|a| by_name.get(a.name.as_str()).copied())
        .collect()
}

/// Two snapshots further apart than this are not one observed interval.
pub const MAX_GAP: Duration = Duration::from_secs(5);

/// The machine's gate of a planned stage.
fn gate(sp: &crate::core::plan::StagePlan) -> Gate {
    Gate {
        bake: Duration::from_secs(sp.bake_seconds),
        timeout: Duration::from_secs(sp.timeout_seconds),
        progress_deadline: sp.progress_deadline(),
        max_unobserved: sp.max_unobserved(),
        max_gap: MAX_GAP,
        node_conditions: sp.condition_rules(),
    }
}

/// A finished stage of the machine as the apply report and the audit trail show it.
fn stage_report(r: &StageResult, statuses: BTreeMap<String, RolloutStatus>) -> StageReport {
    StageReport {
        name: r.name.clone(),
        outcome: match &r.verdict {
            StageVerdict::Succeeded => StageOutcome::Succeeded,
            StageVerdict::Failed { reason } => StageOutcome::Failed {
                reason: reason.to_string(),
            },
        },
        daemonsets: statuses,
        rollout_seconds: r.rollout.unwrap_or_default().as_secs_f64(),
        bake_seconds: r.bake_observed.as_secs_f64(),
        unobserved_seconds: r.unobserved.as_secs_f64(),
    }
}

/// The connection for the live object a replacement takes the place of: its
/// namespace and fleet label.
fn old_side(cluster: &Cluster, r: &Replacement) -> Cluster {
    cluster.scoped(&r.namespace, r.fleet.as_deref().unwrap_or(&cluster.fleet))
}

/// Takes out the live objects that a stage's replacements and moves replace:
/// replacements are deleted and awaited gone; moves get their new object applied
/// first and the old one deleted only when that apply succeeded (a failed apply is
/// left for the stage, which applies again and reports it). Returns why the stage
/// cannot be written, if it cannot.
///
/// # Errors
/// Transient API errors, so the caller retries from the checkpoint.
async fn replace_live(
    cluster: &Cluster,
    actions: &[&ActionPlan],
    desired: &DesiredSet,
    live: &BTreeMap<ObjectKey, LiveObject>,
    force: bool,
    timeout: Duration,
) -> Result<Result<(), String>, ClusterError> {
    let uid_of = |r: &Replacement, name: &str| {
        live.get(&(r.namespace.clone(), name.to_string()))
            .and_then(|l| l.uid.clone())
    };
    let mut failures = Vec::new();
    let mut step = |r: Result<(), ClusterError>| -> Result<(), ClusterError> {
        match r {
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                failures.push(e.to_string());
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    };
    for a in actions {
        let Some(r) = a.replaces.as_ref().filter(|r| r.delete_first) else {
            continue;
        };
        let old = old_side(cluster, r);
        let uid = uid_of(r, &a.name);
        step(old.delete(&a.name, uid.as_deref()).await)?;
        if let Some(uid) = &uid {
            step(old.wait_deleted(&a.name, uid, timeout).await)?;
        }
    }
    let moves: Vec<&ActionPlan> = actions
        .iter()
        .copied()
        .filter(|a| a.replaces.as_ref().is_some_and(|r| !r.delete_first))
        .collect();
    let by_name: BTreeMap<&str, &Manifest> = desired
        .items
        .iter()
        .map(|i| (i.name.as_str(), &i.manifest))
        .collect();
    let manifests: Vec<&Manifest> = moves
        .iter()
        .filter_map(|a| by_name.get(a.name.as_str()).copied())
        .collect();
    let written = cluster.write_all(&manifests, force).await;
    for (a, w) in moves.iter().zip(written) {
        match w {
            Err(e) if e.is_transient() => return Err(e),
            // The stage applies it again and reports why it failed; the old one stays.
            Err(_) => {}
            Ok(_) => {
                let r = a.replaces.as_ref().expect("a move");
                step(
                    old_side(cluster, r)
                        .delete(&a.name, uid_of(r, &a.name).as_deref())
                        .await,
                )?;
            }
        }
    }
    Ok(if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    })
}

impl ApplySteps<'_, '_, '_> {
    /// Server-side applies every created or updated companion object assigned to a
    /// stage up to plan stage `through` (all with `None`) that is not applied yet.
    /// A refusal by the API server fails the stage (`Ok(Err)`), before it is written.
    async fn apply_companions(
        &mut self,
        through: Option<usize>,
    ) -> Result<Result<(), String>, ApplyError> {
        // The config ConfigMaps go the companions' way, each before the first stage
        // that writes a DaemonSet mounting it.
        for c in self.plan.companions.iter().chain(&self.plan.config_maps) {
            if !matches!(c.action, Action::Create | Action::Update)
                || self.companions_applied.contains_key(&c.object)
            {
                continue;
            }
            let at = c
                .stage
                .as_ref()
                .and_then(|s| self.plan.stages.iter().position(|sp| &sp.name == s))
                .unwrap_or(0);
            if through.is_some_and(|t| at > t) {
                continue;
            }
            let config = crate::core::config_diff::as_companions(self.desired);
            let manifest = self
                .desired
                .companions
                .iter()
                .chain(&config)
                .find(|d| d.key() == c.object);
            let kind = self
                .gathered
                .companion_kinds
                .get(&(c.api_version.clone(), c.kind.clone()));
            let (Some(manifest), Some(kind)) = (manifest, kind) else {
                return Ok(Err(format!(
                    "{}: not in the rendered set or its kind not resolved",
                    c.object
                )));
            };
            match self
                .cluster
                .apply_companion(kind, &c.object, &manifest.manifest)
                .await
            {
                Ok(uid) => {
                    tracing::info!(object = %c.object, "companion applied");
                    self.companions_applied.insert(c.object.clone(), uid);
                }
                Err(source) if source.is_transient() => {
                    return Err(ApplyError::Companions { source });
                }
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
        Ok(Ok(()))
    }
}

/// The companions a resumed rollout counts as applied by the run it resumes: each
/// the plan finds unchanged (the interrupted run may have applied it, and nothing
/// recorded which it did), with its live uid. A rollback then puts each back as
/// the previous commit had it, or deletes it (uid precondition) when that commit did
/// not have it; one the previous commit had alike is re-applied unchanged. Empty for
/// a rollout that is not resumed.
fn resumed_companions(
    plan: &Plan,
    gathered: &Gathered,
    resume: bool,
) -> BTreeMap<String, Option<String>> {
    if !resume {
        return BTreeMap::new();
    }
    plan.companions
        .iter()
        .filter(|c| c.action == Action::Unchanged)
        .map(|c| {
            (
                c.object.clone(),
                gathered.companion_uids.get(&c.object).cloned(),
            )
        })
        .collect()
}

/// The steps of an apply that are the shell's: checkpoint, replacements, rollback,
/// prune.
struct ApplySteps<'a, 'c, 'd> {
    cluster: &'a Cluster,
    plan: &'a Plan,
    desired: &'a DesiredSet,
    live: &'a BTreeMap<ObjectKey, LiveObject>,
    /// The companion objects' kinds and live uids (empty without companions).
    gathered: &'a Gathered,
    /// Companion objects applied so far, by object key, with the uid applied.
    companions_applied: BTreeMap<String, Option<String>>,
    opts: &'a ApplyOptions,
    previous: &'a dyn PreviousObjects,
    progress: &'a dyn Progress,
    checkpoint: &'a mut Checkpoint<'c>,
    /// Machine stage index -> plan stage index.
    plan_index: Vec<usize>,
    rollback: Vec<StageReport>,
    rollback_skipped: Vec<String>,
    pruned: Vec<String>,
    /// The plan index a checkpoint asked to stop before.
    stopped_at: Option<usize>,
    controls: Option<&'a mut Controls<'d>>,
    overridden: Option<FreezeOverride>,
}

impl Steps for ApplySteps<'_, '_, '_> {
    fn checkpoint(&mut self, at: At, machine: &Machine) -> Result<Proceed, ApplyError> {
        let (index, step) = match at {
            At::Stage(s) => {
                let i = self.plan_index[s];
                (i, format!("stage {}", self.plan.stages[i].name))
            }
            At::Prune => (self.plan.stages.len(), "pruning".to_string()),
        };
        let done: Vec<StageReport> = machine
            .cursor()
            .finished
            .iter()
            .map(|r| stage_report(r, BTreeMap::new()))
            .collect();
        let proceed = (self.checkpoint)(index, &done)
            .map_err(|source| ApplyError::Checkpoint { step, source })?;
        self.stopped_at = (proceed == Proceed::Stop).then_some(index);
        Ok(proceed)
    }

    async fn prepare(&mut self, stage: usize) -> Result<Result<(), String>, ApplyError> {
        // RBAC, ServiceAccounts, ConfigMaps... before the pods that use them.
        if let Err(reason) = self.apply_companions(Some(self.plan_index[stage])).await? {
            return Ok(Err(reason));
        }
        let sp = &self.plan.stages[self.plan_index[stage]];
        let replacing: Vec<&ActionPlan> =
            sp.actions.iter().filter(|a| a.replaces.is_some()).collect();
        if replacing.is_empty() {
            return Ok(Ok(()));
        }
        replace_live(
            self.cluster,
            &replacing,
            self.desired,
            self.live,
            self.opts.force,
            Duration::from_secs(sp.timeout_seconds),
        )
        .await
        .map_err(|source| ApplyError::Replace {
            stage: sp.name.clone(),
            source,
        })
    }

    async fn roll_back(&mut self, stages: &[usize]) -> Result<Result<(), String>, ApplyError> {
        let mut failed = Vec::new();
        // The companions this run applied go back with the stages (see
        // super::companions): previous versions before the DaemonSets, created
        // ones deleted after them.
        let plan_stages: Vec<usize> = stages.iter().map(|&s| self.plan_index[s]).collect();
        let companion_error = |source| ApplyError::Rollback {
            stage: "companion objects".into(),
            source,
        };
        let mut companions = super::companions::restore_previous(
            self.cluster,
            self.plan,
            self.gathered,
            self.previous,
            &self.companions_applied,
            &plan_stages,
        )
        .await
        .map_err(companion_error)?;
        for &s in stages {
            let i = self.plan_index[s];
            for r in rollback_stage(
                self.cluster,
                self.plan,
                self.live,
                self.previous,
                self.progress,
                &mut self.rollback_skipped,
                i,
            )
            .await
            .map_err(|source| ApplyError::Rollback {
                stage: self.plan.stages[i].name.clone(),
                source,
            })? {
                if let StageOutcome::Failed { reason } = &r.outcome {
                    failed.push(format!("{}: {reason}", r.name));
                }
                self.rollback.push(r);
            }
        }
        super::companions::delete_created(self.cluster, self.plan, self.gathered, &mut companions)
            .await
            .map_err(companion_error)?;
        self.rollback_skipped.append(&mut companions.skipped);
        failed.append(&mut companions.failed);
        let _ = self.opts;
        if failed.is_empty() {
            Ok(Ok(()))
        } else {
            tracing::warn!("rollback did not fully succeed");
            Ok(Err(failed.join("; ")))
        }
    }

    async fn prune(&mut self) -> Result<Result<(), String>, ApplyError> {
        for a in &self.plan.prune {
            let ns = a.namespace_in(self.plan);
            let uid = self
                .live
                .get(&(ns.to_string(), a.name.clone()))
                .and_then(|l| l.uid.as_deref());
            let at = self.cluster.scoped(ns, &self.cluster.fleet);
            match at.delete(&a.name, uid).await {
                Ok(()) => self.pruned.push(match &a.namespace {
                    Some(ns) => format!("{ns}/{}", a.name),
                    None => a.name.clone(),
                }),
                Err(source) if source.is_transient() => return Err(ApplyError::Prune { source }),
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
        // Companion objects git no longer has (a removed daemon's too), each only if
        // it is still the object the plan observed.
        // Config ConfigMaps here are those no live DaemonSet (a rollback target) and no
        // desired one mounts: the plan kept the others out.
        for c in self
            .plan
            .companions
            .iter()
            .chain(&self.plan.config_maps)
            .filter(|c| c.action == Action::Delete)
        {
            let (Some(kind), Some(uid)) = (
                self.gathered
                    .companion_kinds
                    .get(&(c.api_version.clone(), c.kind.clone())),
                self.gathered.companion_uids.get(&c.object),
            ) else {
                return Ok(Err(format!(
                    "{}: its kind or uid was not observed, so it is not deleted",
                    c.object
                )));
            };
            match self
                .cluster
                .delete_companion(kind, &c.object, c.namespace.as_deref(), &c.name, uid)
                .await
            {
                Ok(()) => self.pruned.push(c.object.clone()),
                Err(source) if source.is_transient() => return Err(ApplyError::Prune { source }),
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
        Ok(Ok(()))
    }

    fn replace_gate(&self, stage: usize) -> super::replace::ReplaceGate {
        super::replace::ReplaceGate {
            controls: self.controls.as_ref().map(|c| c.store.clone()),
            freeze: Some((
                self.opts.freeze.clone(),
                self.plan.stages[self.plan_index[stage]].groups.clone(),
            )),
        }
    }

    async fn gate(&mut self, stage: usize) -> Clearance {
        // The operator's pause first: it holds every stage, frozen or not.
        if let Some(c) = self.controls.as_mut() {
            let paused = c.gate().await;
            if !paused.is_open() {
                return paused;
            }
        }
        let groups = &self.plan.stages[self.plan_index[stage]].groups;
        let (clearance, overridden) = self.opts.freeze.check(groups);
        if let Some(o) = overridden {
            tracing::warn!(
                stage = %self.plan.stages[self.plan_index[stage]].name,
                windows = %o.windows.join(", "),
                "freeze overridden: {}",
                crate::core::diag::escape_control(&o.reason)
            );
            self.overridden = Some(match self.overridden.take() {
                Some(earlier) => earlier.merge(o),
                None => o,
            });
        }
        clearance
    }
}

/// Runs the plan through the core's rollout machine: stages in order, each applied,
/// then gated on its rollouts and on observed health for its bake; halt or roll back
/// on failure; prune last. `live` are the fleet's objects as they were before (for
/// rollback and uid preconditions).
///
/// # Errors
/// API errors that end a step before it finished (the caller retries from the
/// checkpoint), or a checkpoint that could not save progress. A checkpoint that
/// asks to stop is not an error: [`Execution::Stopped`].
#[allow(clippy::too_many_arguments)] // reason: one call site per command; a struct would only rename them
pub async fn execute(
    cluster: &Cluster,
    plan: &Plan,
    desired: &DesiredSet,
    gathered: &Gathered,
    opts: &ApplyOptions,
    previous: &dyn PreviousObjects,
    progress: &dyn Progress,
    checkpoint: &mut Checkpoint<'_>,
    controls: Option<&mut Controls<'_>>,
) -> Result<Execution, ApplyError> {
    let started = Instant::now();
    let live = &gathered.live;
    if !plan.has_changes() && !opts.resume {
        return Ok(Execution::Finished(ApplyReport {
            outcome: Outcome::NoOp,
            stages: Vec::new(),
            failed_stage: None,
            rollback: Vec::new(),
            rollback_skipped: Vec::new(),
            pruned: Vec::new(),
            seconds: 0.0,
            freeze_override: None,
        }));
    }
    // The stages with something to write; the others are neither written nor gated.
    let mut specs = Vec::new();
    let mut io = Vec::new();
    let mut plan_index = Vec::new();
    for (i, sp) in plan.stages.iter().enumerate().skip(opts.start_stage) {
        let manifests = stage_manifests(plan, desired, i, opts.resume && i == opts.start_stage);
        if manifests.is_empty() {
            continue;
        }
        specs.push(StageSpec {
            name: sp.name.clone(),
            daemonsets: names(&manifests),
            gate: gate(sp),
        });
        io.push(StageIo {
            name: sp.name.clone(),
            groups: sp.groups.clone(),
            manifests,
        });
        plan_index.push(i);
    }
    let spec = RolloutSpec {
        stages: specs,
        on_failure: match opts.on_failure {
            OnFailure::Halt => machine::OnFailure::Halt,
            OnFailure::Rollback => machine::OnFailure::Rollback,
        },
        prune: opts.prune,
    };
    let mut m = Machine::new(spec);
    let mut steps = ApplySteps {
        cluster,
        plan,
        desired,
        live,
        opts,
        previous,
        progress,
        checkpoint,
        plan_index,
        gathered,
        companions_applied: resumed_companions(plan, gathered, opts.resume),
        rollback: Vec::new(),
        rollback_skipped: Vec::new(),
        pruned: Vec::new(),
        stopped_at: None,
        controls,
        overridden: None,
    };
    // No stage writes a DaemonSet: the companion objects are applied before the
    // machine runs (its prune, if any, after them), unless the fleet is paused.
    if io.is_empty()
        && plan
            .companions
            .iter()
            .chain(&plan.config_maps)
            .any(|c| c.action != Action::Unchanged)
    {
        if let Some(c) = steps.controls.as_mut() {
            let gate = c.gate().await;
            if let Some(why) = gate.why() {
                return Err(ApplyError::CompanionRefused {
                    reason: format!("{why}; nothing was applied"),
                });
            }
        }
        if let Err(reason) = steps.apply_companions(None).await? {
            return Err(ApplyError::CompanionRefused { reason });
        }
    }
    let (record, mut statuses) =
        match drive(cluster, &mut m, &io, opts.force, progress, &mut steps).await? {
            Driven::Finished(record, statuses) => (record, statuses),
            Driven::Stopped => {
                return Ok(Execution::Stopped {
                    stage: steps.stopped_at.unwrap_or(opts.start_stage),
                });
            }
        };
    let stages: Vec<StageReport> = record
        .stages
        .iter()
        .enumerate()
        .map(|(i, r)| stage_report(r, statuses.remove(&i).unwrap_or_default()))
        .collect();
    Ok(Execution::Finished(ApplyReport {
        outcome: match record.outcome {
            machine::Outcome::Applied => Outcome::Applied,
            machine::Outcome::Halted => Outcome::Halted,
            machine::Outcome::RolledBack => Outcome::RolledBack,
        },
        failed_stage: stages.iter().find(|s| !s.ok()).map(|s| s.name.clone()),
        stages,
        rollback: steps.rollback,
        rollback_skipped: steps.rollback_skipped,
        pruned: steps.pruned,
        seconds: started.elapsed().as_secs_f64(),
        freeze_override: steps.overridden,
    }))
}

/// Puts one stage back to the objects it had before: updated DaemonSets get the
/// manifest of the commit they came from, created ones are deleted, and a replaced or
/// moved one is deleted and its old object (from the commit it came from, in its old
/// namespace) applied again. Waits for the rollouts of what it re-applied (no bake),
/// one report per namespace and fleet it wrote to; none when there was nothing to
/// put back.
async fn rollback_stage(
    cluster: &Cluster,
    plan: &Plan,
    live: &BTreeMap<ObjectKey, LiveObject>,
    previous: &dyn PreviousObjects,
    progress: &dyn Progress,
    skipped: &mut Vec<String>,
    i: usize,
) -> Result<Vec<StageReport>, ClusterError> {
    let sp = &plan.stages[i];
    let here = cluster.namespace.clone();
    let mut manifests = Vec::new();
    // Old objects of replacements, per (namespace, fleet) they go back to.
    let mut restore: BTreeMap<(String, String), Vec<Manifest>> = BTreeMap::new();
    for a in &sp.actions {
        match (a.action, &a.replaces) {
            (Action::Create, None) => {
                cluster.delete(&a.name, None).await?;
            }
            (Action::Create, Some(r)) => {
                let key = (r.namespace.clone(), a.name.clone());
                let commit = live.get(&key).and_then(|l| l.commit.as_deref());
                let Some(m) = commit.and_then(|c| previous.manifest(c, &a.name)) else {
                    // Without the old object the new one stays: deleting it would leave
                    // the DaemonSet running nowhere.
                    skipped.push(a.name.clone());
                    continue;
                };
                let uid = cluster.uid_of(&a.name).await?;
                cluster.delete(&a.name, uid.as_deref()).await?;
                // Same name: the new object must be gone before the old one can be
                // created again.
                if r.namespace == here
                    && let Some(uid) = &uid
                {
                    let limit = Duration::from_secs(sp.timeout_seconds);
                    cluster.wait_deleted(&a.name, uid, limit).await?;
                }
                let fleet = r.fleet.clone().unwrap_or_else(|| cluster.fleet.clone());
                restore
                    .entry((r.namespace.clone(), fleet))
                    .or_default()
                    .push(m);
            }
            (Action::Update, _) => {
                let commit = live
                    .get(&(here.clone(), a.name.clone()))
                    .and_then(|l| l.commit.as_deref());
                match commit.and_then(|c| previous.manifest(c, &a.name)) {
                    Some(m) => manifests.push(m),
                    None => skipped.push(a.name.clone()),
                }
            }
            (Action::Delete | Action::Unchanged, _) => {}
        }
    }
    let runs = std::iter::once((cluster.clone(), manifests)).chain(
        restore
            .into_iter()
            .map(|((ns, fleet), ms)| (cluster.scoped(&ns, &fleet), ms)),
    );
    let mut reports = Vec::new();
    for (target, manifests) in runs {
        if manifests.is_empty() {
            continue;
        }
        let run = StageRun {
            name: format!("rollback-{}", sp.name),
            groups: sp.groups.clone(),
            bake: Duration::ZERO,
            timeout: Duration::from_secs(sp.timeout_seconds),
            manifests: manifests.iter().collect(),
            force: true,
        };
        reports.push(run_stage(&target, &run, progress).await?);
    }
    Ok(reports)
}

#[cfg(all(test, debug_assertions))]
mod freeze_gate_tests {
    use super::*;
    use crate::core::diag::{Diagnostic, Pos};
    use crate::core::model::{DriftCorrection, FreezeWindowSpec};

    fn gate(now: &str, change: Change, reason: Option<&str>) -> (FreezeGate, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("now");
        std::fs::write(&path, now).unwrap();
        let spec = FreezeWindowSpec {
            name: "canary-mornings".into(),
            start: "0 9 * * *".into(),
            time_zone: "UTC".into(),
            duration: "2h".into(),
            groups: Some(vec!["canary".into()]),
            drift_correction: DriftCorrection::Deny,
        };
        let windows =
            freeze::validate_windows(&[spec], &["canary".into(), "rest".into()], |f, m, h| {
                Diagnostic::new("drover.yaml", Pos::default(), f, m).with_hint(h)
            })
            .unwrap();
        let g = FreezeGate {
            windows,
            change,
            override_reason: reason.map(str::to_string),
            clock: Clock::File(path),
        };
        (g, dir)
    }

    #[test]
    fn a_stage_of_a_frozen_group_is_held_until_the_window_ends_and_other_groups_are_not() {
        let (g, _d) = gate("2026-06-01T10:00:00Z", Change::Rollout, None);
        match g.check(&["canary".into()]) {
            (Clearance::Frozen(f), None) => {
                assert_eq!(f.until.to_string(), "2026-06-01T11:00:00+00:00[UTC]");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(g.check(&["rest".into()]), (Clearance::Clear, None));
        let (g, _d) = gate("2026-06-01T11:00:00Z", Change::Rollout, None);
        assert_eq!(g.check(&["canary".into()]), (Clearance::Clear, None));
    }

    #[test]
    fn drift_is_held_by_a_deny_window_and_the_override_opens_it_and_says_what_it_went_through() {
        let (g, _d) = gate("2026-06-01T09:30:00Z", Change::Drift, None);
        assert!(matches!(
            g.check(&["canary".into()]).0,
            Clearance::Frozen(_)
        ));
        let (g, _d) = gate("2026-06-01T09:30:00Z", Change::Rollout, Some("CVE fix"));
        let (c, o) = g.check(&["canary".into()]);
        assert_eq!(c, Clearance::Clear);
        let o = o.expect("an override record");
        assert_eq!(o.reason, "CVE fix");
        assert_eq!(o.windows, vec!["canary-mornings"]);
        assert_eq!(o.frozen_until, "2026-06-01T11:00:00+00:00[UTC]");
        // Nothing frozen: nothing overridden, nothing recorded.
        assert_eq!(g.check(&["rest".into()]), (Clearance::Clear, None));
    }
}
