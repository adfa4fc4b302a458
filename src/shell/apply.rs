//! Executing a plan: stages in order, each gated on its rollouts and its bake; halt
//! or roll back on failure; prune last.
//!
//! Owns: the order of writes and what is written on failure. Guarantees: no stage
//! starts before the previous one succeeded; stages a failing commit never reached
//! are never touched; deletes happen only after every stage succeeded, only to
//! objects carrying the fleet label, each with a uid precondition.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value as JsonValue;

use super::cluster::{Cluster, ClusterError};
use super::live::LiveObject;
use super::progress::Progress;
use super::rollout::{StageOutcome, StageReport, StageRun, run_stage};
use crate::core::model::OnFailure;
use crate::core::plan::{Action, Plan};
use crate::core::render::DesiredSet;

/// How a commit's rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Applied,
    NoOp,
    Halted,
    RolledBack,
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::NoOp => "no-op",
            Outcome::Halted => "halted",
            Outcome::RolledBack => "rolled-back",
            Outcome::Refused => "refused",
        }
    }
    pub fn ok(self) -> bool {
        matches!(self, Outcome::Applied | Outcome::NoOp)
    }
}

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
}

/// Where rollback finds the objects of the last good commit.
pub trait PreviousObjects: Send + Sync {
    /// The manifest `name` had at `commit`, if that commit rendered it.
    fn manifest(&self, commit: &str, name: &str) -> Option<JsonValue>;
}

/// Called before each step with the index of the stage about to run, so that a
/// crash can resume there. Returning an error stops the rollout before the step.
/// It also gets the reports of the stages this run finished so far.
pub type Checkpoint<'a> = dyn FnMut(usize, &[StageReport]) -> Result<(), String> + Send + 'a;

/// The desired manifests a stage applies: creates and updates, or with `all` every
/// DaemonSet of the stage. Borrowed from `desired`: a stage of thousands is not
/// copied.
pub fn stage_manifests<'a>(
    plan: &Plan,
    desired: &'a DesiredSet,
    stage: usize,
    all: bool,
) -> Vec<&'a JsonValue> {
    let by_name: BTreeMap<&str, &JsonValue> = desired
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

/// Runs the plan. `live` are the fleet's objects as they were before (for rollback
/// and uid preconditions).
///
/// # Errors
/// Transient API errors (the caller retries from the checkpoint), or a refused
/// checkpoint.
#[allow(clippy::too_many_arguments)] // reason: one call site per command; a struct would only rename them
pub async fn execute(
    cluster: &Cluster,
    plan: &Plan,
    desired: &DesiredSet,
    live: &BTreeMap<String, LiveObject>,
    opts: &ApplyOptions,
    previous: &dyn PreviousObjects,
    progress: &dyn Progress,
    checkpoint: &mut Checkpoint<'_>,
) -> Result<ApplyReport, ClusterError> {
    let started = Instant::now();
    let mut report = ApplyReport {
        outcome: Outcome::Applied,
        stages: Vec::new(),
        failed_stage: None,
        rollback: Vec::new(),
        rollback_skipped: Vec::new(),
        pruned: Vec::new(),
        seconds: 0.0,
    };
    if !plan.has_changes() && !opts.resume {
        report.outcome = Outcome::NoOp;
        return Ok(report);
    }
    for (i, sp) in plan.stages.iter().enumerate().skip(opts.start_stage) {
        let manifests = stage_manifests(plan, desired, i, opts.resume && i == opts.start_stage);
        if manifests.is_empty() {
            continue;
        }
        checkpoint(i, &report.stages)
            .map_err(|e| ClusterError::Config(format!("cannot record progress: {e}")))?;
        let run = StageRun {
            name: sp.name.clone(),
            groups: sp.groups.clone(),
            bake: std::time::Duration::from_secs(sp.bake_seconds),
            timeout: std::time::Duration::from_secs(sp.timeout_seconds),
            manifests,
            force: opts.force,
        };
        let r = run_stage(cluster, &run, progress).await?;
        let ok = r.ok();
        report.stages.push(r);
        if !ok {
            report.failed_stage = Some(sp.name.clone());
            report.outcome = Outcome::Halted;
            if opts.on_failure == OnFailure::Rollback {
                rollback(
                    cluster,
                    plan,
                    live,
                    opts,
                    previous,
                    progress,
                    &mut report,
                    i,
                )
                .await?;
                report.outcome = Outcome::RolledBack;
            }
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
    }
    if opts.prune {
        checkpoint(plan.stages.len(), &report.stages)
            .map_err(|e| ClusterError::Config(format!("cannot record progress: {e}")))?;
        for a in &plan.prune {
            let uid = live.get(&a.name).and_then(|l| l.uid.as_deref());
            cluster.delete(&a.name, uid).await?;
            report.pruned.push(a.name.clone());
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Puts every stage up to and including `failed` back to the objects it had before:
/// updated DaemonSets get the manifest of the commit they came from, created ones
/// are deleted. Stages after `failed` were never touched and are left alone.
#[allow(clippy::too_many_arguments)] // reason: internal step of execute
async fn rollback(
    cluster: &Cluster,
    plan: &Plan,
    live: &BTreeMap<String, LiveObject>,
    opts: &ApplyOptions,
    previous: &dyn PreviousObjects,
    progress: &dyn Progress,
    report: &mut ApplyReport,
    failed: usize,
) -> Result<(), ClusterError> {
    for (i, sp) in plan
        .stages
        .iter()
        .enumerate()
        .take(failed + 1)
        .skip(opts.start_stage)
        .rev()
    {
        let mut manifests = Vec::new();
        for a in &sp.actions {
            match a.action {
                Action::Create => {
                    cluster.delete(&a.name, None).await?;
                }
                Action::Update => {
                    let commit = live.get(&a.name).and_then(|l| l.commit.as_deref());
                    match commit.and_then(|c| previous.manifest(c, &a.name)) {
                        Some(m) => manifests.push(m),
                        None => report.rollback_skipped.push(a.name.clone()),
                    }
                }
                Action::Delete | Action::Unchanged => {}
            }
        }
        if manifests.is_empty() {
            continue;
        }
        let run = StageRun {
            name: format!("rollback-{}", sp.name),
            groups: sp.groups.clone(),
            bake: std::time::Duration::ZERO,
            timeout: std::time::Duration::from_secs(sp.timeout_seconds),
            manifests: manifests.iter().collect(),
            force: true,
        };
        let r = run_stage(cluster, &run, progress).await?;
        report.rollback.push(r);
        let _ = i;
    }
    if report
        .rollback
        .iter()
        .any(|r| matches!(r.outcome, StageOutcome::Failed { .. }))
    {
        tracing::warn!("rollback did not fully succeed");
    }
    Ok(())
}
