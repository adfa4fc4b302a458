//! The sync loop: follow a branch, roll out each new commit through the staged
//! rollout, correct drift between commits, survive restarts, and record every
//! commit acted on in the audit trail.
//!
//! An iteration reads as its steps, each a function with a typed result: fetch →
//! decide ([`next_kind`]: a new commit, a drift check, or wait) → load (the
//! [`pipeline`]) → plan → check (the guards) → execute (the staged rollout, with a
//! checkpoint before each stage) → record → finish. A refused commit is an outcome
//! ([`Refusal`]), and so is a stop request ([`Iteration::Stopped`]); neither is an
//! error. Errors ([`SyncError`]) name the step that failed.
//!
//! Crash safety: the cursor (commit, stage) is saved before each stage, the audit
//! record is appended (fsynced) before the state says the commit is done, and a
//! restart that finds a cursor whose run is already recorded only finalises the
//! state, so no commit is recorded twice. Both are written to the cluster copy
//! ([`super::cstate`]) first and then to the local cache, which each iteration
//! after a start or a failure rewrites from the cluster: a new leader resumes as a
//! restarted process does.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use backon::ExponentialBuilder;
use tokio::sync::watch;
use tracing::Instrument as _;

use super::anchor::{TrailAnchor, TrailError};
use super::apply::{
    ApplyError, ApplyOptions, ApplyReport, Execution, FreezeGate, Outcome, Proceed, execute,
};
use super::audit::{AuditError, AuditLog};
use super::clock::Clock;
use super::cluster::{Cluster, ClusterError};
use super::control::{ControlStore, Controls};
use super::cstate::{ClusterCopy, CopyError, blocking};
use super::gitsync::{GitError, Mirror, RemoteSpec};
use super::live::Gathered;
use super::metrics::Metrics;
use super::pipeline::{self, PastRenders};
use super::progress::Progress;
use super::rollout::StageReport;
use super::signature::{TrustConfig, verdict};
use super::source::SourceError;
use super::state::{Cursor, StateError, StateStore, SyncState};
use crate::core::audit::{
    AUDIT_SCHEMA, AuditRecord, ClusterRecord, CommitRecord, PlanRecord, RecordKind, StageRecord,
};
use crate::core::control::{Action, Clearance, Control, Target, target};
use crate::core::diag::{Diagnostics, escape_control};
use crate::core::errors::chain;
use crate::core::fleet::Fleet;
use crate::core::freeze::{Change, FreezeOverride};
use crate::core::guard::{
    self, check_companions_owned, check_conflicts, check_gates, check_mass_delete, check_owned,
};
use crate::core::plan::Plan;
use crate::core::render::{RenderError, manifests_digest};
use crate::core::snapshot::{BuildError, Rendered};
use crate::core::trust::{Policy, Verification};
use crate::settings::PruneSettings;

/// Which step of an iteration failed. The state is left so that the next iteration
/// resumes where this one stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Fetch { source: GitError },
    #[error("loading the sync state")]
    LoadState { source: StateError },
    #[error("reading the audit trail")]
    ReadAudit { source: AuditError },
    #[error("reading commit {commit}")]
    ResolveCommit { commit: String, source: SourceError },
    #[error("gathering the live state of fleet {fleet}")]
    Gather { fleet: String, source: ClusterError },
    #[error(transparent)]
    Apply { source: Box<ApplyError> },
    /// The trail does not fit its anchor in the cluster (records removed or
    /// rewritten, the anchor gone), or the anchor cannot be read or written.
    #[error("checking the audit trail against its anchor")]
    CheckAnchor { source: TrailError },
    #[error("recording commit {commit} in the audit trail")]
    Record { commit: String, source: AuditError },
    #[error("saving the sync state")]
    SaveState { source: StateError },
    /// The cluster copy of the state and trail cannot be read into the local
    /// cache, or this replica is fenced off from it.
    #[error("reading the cluster copy of the sync state and audit trail")]
    SyncDown { source: Box<CopyError> },
    #[error("saving the sync state in the cluster")]
    SaveCopy { source: Box<CopyError> },
    #[error("recording commit {commit} in the audit trail in the cluster")]
    RecordCopy {
        commit: String,
        source: Box<CopyError>,
    },
    /// Fail closed: what cannot be read is not "not paused".
    #[error("{why}")]
    ReadControl { why: String },
    #[error("updating the rollback's hold")]
    WriteControl {
        source: super::control::ControlStoreError,
    },
}

/// Whether an API failure may pass by itself: the server was away or overloaded,
/// or a read failed (a LIST or GET, which nothing half-done depends on).
fn retryable(e: &ClusterError) -> bool {
    e.is_transient() || matches!(e, ClusterError::List { .. } | ClusterError::Get { .. })
}

impl SyncError {
    /// A short kind for metrics (`drover_errors_total{kind}`): git, source, api,
    /// audit (the trail cannot be read or appended to; the DroverAuditAppendFailing
    /// alert watches it) or state.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncError::Fetch { .. } => "git",
            SyncError::ResolveCommit { .. } => "source",
            SyncError::Gather { .. }
            | SyncError::ReadControl { .. }
            | SyncError::WriteControl { .. } => "api",
            SyncError::Apply { source } if source.cluster_error().is_some() => "api",
            // An API server that is away is not a trail that cannot be trusted.
            SyncError::CheckAnchor { source } if source.is_transient() => "api",
            SyncError::SyncDown { source }
            | SyncError::SaveCopy { source }
            | SyncError::RecordCopy { source, .. }
                if source.is_transient() =>
            {
                "api"
            }
            SyncError::RecordCopy { .. } => "audit",
            SyncError::SyncDown { .. } | SyncError::SaveCopy { .. } => "state",
            SyncError::ReadAudit { .. }
            | SyncError::Record { .. }
            | SyncError::CheckAnchor { .. } => "audit",
            SyncError::Apply { .. } | SyncError::LoadState { .. } | SyncError::SaveState { .. } => {
                "state"
            }
        }
    }

    /// Whether another replica now holds the state (a later leader wrote it): the
    /// process must stop, as when it loses the Lease.
    pub fn is_fenced(&self) -> bool {
        super::cstate::fenced(self)
    }

    /// Whether the next iteration may succeed without a new commit.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Fetch { .. }
            | SyncError::ResolveCommit { .. }
            | SyncError::ReadControl { .. }
            | SyncError::WriteControl { .. } => true,
            SyncError::Gather { source, .. } => retryable(source),
            SyncError::Apply { source } => source.cluster_error().is_some_and(retryable),
            SyncError::CheckAnchor { source } => source.is_transient(),
            SyncError::SyncDown { source }
            | SyncError::SaveCopy { source }
            | SyncError::RecordCopy { source, .. } => source.is_transient(),
            SyncError::LoadState { .. }
            | SyncError::ReadAudit { .. }
            | SyncError::Record { .. }
            | SyncError::SaveState { .. } => false,
        }
    }
}

/// Why a commit was refused: recorded in the audit trail with this text as its
/// reason; nothing is applied, and the commit is not retried until the branch
/// moves.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The signature policy refused the head before anything of it was read.
    #[error("{reason}")]
    Signature { reason: String },
    /// The commit's tree cannot be read, or holds what drover refuses to read.
    #[error(transparent)]
    ReadSource { source: SourceError },
    #[error(
        "the fleet is invalid: {} problem(s), first: {}",
        diagnostics.len(),
        diagnostics.0.first().map(ToString::to_string).unwrap_or_default()
    )]
    InvalidFleet { diagnostics: Diagnostics },
    #[error(transparent)]
    Render { source: RenderError },
    /// Reading, validating or rendering the commit panicked (a bug in drover).
    #[error(transparent)]
    Panicked { source: pipeline::Panicked },
    /// A guard refused the plan: fields of another manager, or a mass delete.
    #[error(transparent)]
    Guard { source: guard::Refusal },
    /// `--require-approved-plan`: the change is not the approved one, or carries no
    /// approval.
    #[error(transparent)]
    Unapproved {
        source: super::approval::ApprovalError,
    },
}

/// An iteration's collaborators, and the settings it runs with (resolved from
/// [`crate::settings::SyncSettings`]; the loop's own - interval, once, watch -
/// stay with the loop).
pub struct Syncer {
    /// The branch to follow, with its credentials read.
    pub remote: RemoteSpec,
    /// The fleet's directory inside the repository.
    pub subdir: PathBuf,
    pub prune: PruneSettings,
    /// Trust sources and the signature policy.
    pub trust: TrustConfig,
    /// Apply a new head only when its `Drover-Plan:` trailer is the digest of the
    /// change from the last applied commit ([`super::approval`]).
    pub require_approved_plan: bool,
    /// Names the fleet had before (`--previous-fleet`), besides the one of the last
    /// applied commit, which the loop knows itself.
    pub previous_fleets: Vec<String>,
    pub cluster: Cluster,
    pub metrics: Arc<Metrics>,
    pub progress: Box<dyn Progress>,
    pub store: StateStore,
    pub audit: AuditLog,
    /// The trail's anchor in the cluster, checked before and updated after every
    /// append.
    pub anchor: TrailAnchor,
    /// The cluster copy of the state and the trail, their source of truth (`store`
    /// and `audit` are its cache); `None` only in unit tests without a cluster.
    pub copy: Option<Arc<ClusterCopy>>,
    pub mirror: Mirror,
    /// `true` once SIGTERM (or the leader lease) asks the loop to stop.
    pub stop: watch::Receiver<bool>,
    /// `--override-freeze REASON`: roll out through open freeze windows, recorded.
    pub freeze_override: Option<String>,
    /// The time of day freeze windows are judged at.
    pub clock: Clock,
    /// Whether the last iteration saw config ConfigMaps of the fleet (or git has
    /// some): the next one lists them only then; `None` (a new process) asks the
    /// cluster once ([`pipeline::LivePlan::config_maps_left`]).
    pub config_maps_left: Option<bool>,
}

/// What one iteration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Iteration {
    /// Nothing new: the branch did not move and nothing drifted.
    Idle,
    /// The head commit failed before; waiting for a new one.
    WaitingForNewCommit(String),
    /// A rollout ended with this outcome.
    Rolled {
        commit: String,
        outcome: Outcome,
        drift: bool,
    },
    /// A stop was asked for mid-rollout: the cursor is saved and the rollout
    /// resumes on restart.
    Stopped { commit: String },
    /// The fleet is paused (or its control object cannot be read): nothing was
    /// planned or applied.
    Paused { commit: String, why: String },
    /// A freeze window holds the first stage the run would write: nothing was
    /// applied, and the run starts when the window ends. A new commit waiting so
    /// leaves drift correction of the last applied one to its windows' setting.
    Frozen {
        commit: String,
        why: String,
        drift: bool,
    },
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

fn new_run_id(commit: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:x}", &commit[..commit.len().min(12)])
}

/// Decides what an iteration without an interrupted run does with the branch
/// head: roll out a new commit, check the applied one for drift, or (`None`) wait,
/// since the head failed before and is not retried until the branch moves.
pub fn next_kind(state: &SyncState, head: &str) -> Option<RecordKind> {
    if state.bad_commit.as_deref() == Some(head) {
        None
    } else if state.last_applied.as_deref() != Some(head) {
        Some(RecordKind::Commit)
    } else {
        Some(RecordKind::Drift)
    }
}

/// One attempt to roll out a commit: what its cursor and its audit record carry.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    id: String,
    commit: String,
    kind: RecordKind,
    started_at: String,
    /// Set when this run resumes an interrupted one.
    resumed: Option<Resumed>,
    /// No hold is to be looked for in this run: a hold chose its commit, or the
    /// hold was already looked for against the branch head.
    held: bool,
}

/// Where an interrupted run stopped.
#[derive(Debug, Clone, PartialEq)]
struct Resumed {
    /// The stage it was in; it is applied and gated again, whole.
    stage: usize,
    /// The stages it finished before.
    completed: Vec<StageRecord>,
}

impl Run {
    fn start(commit: &str, kind: RecordKind) -> Run {
        Run {
            id: new_run_id(commit),
            commit: commit.to_string(),
            kind,
            started_at: now_rfc3339(),
            resumed: None,
            held: false,
        }
    }

    fn resume(cursor: Cursor) -> Run {
        Run {
            id: cursor.run_id,
            commit: cursor.commit,
            kind: cursor.kind,
            started_at: cursor.started_at,
            resumed: Some(Resumed {
                stage: cursor.stage,
                completed: cursor.completed,
            }),
            held: cursor.kind == RecordKind::Rollback,
        }
    }

    fn drift(&self) -> bool {
        self.kind == RecordKind::Drift
    }

    /// The stage this run starts at.
    fn first_stage(&self) -> usize {
        self.resumed.as_ref().map_or(0, |r| r.stage)
    }

    /// The stages finished by the run this one resumes.
    fn completed(&self) -> &[StageRecord] {
        self.resumed.as_ref().map_or(&[], |r| &r.completed)
    }

    /// The audit form of the stages this execution finished, after the earlier
    /// ones; the first of them is the resumed stage when resuming.
    fn stage_records(&self, done: &[StageReport]) -> Vec<StageRecord> {
        let mut stages = self.completed().to_vec();
        stages.extend(
            done.iter()
                .enumerate()
                .map(|(i, st)| stage_record(st, self.resumed.is_some() && i == 0)),
        );
        stages
    }

    /// The cursor saved before `stage`, after the stages in `done`.
    fn cursor(&self, stage: usize, done: &[StageReport]) -> Cursor {
        Cursor {
            run_id: self.id.clone(),
            commit: self.commit.clone(),
            kind: self.kind,
            stage,
            started_at: self.started_at.clone(),
            completed: self.stage_records(done),
        }
    }
}

/// What a rollback's hold makes of an iteration.
/// What [`Syncer::admit`] found.
enum Admitted {
    Go {
        commit: CommitRecord,
        rendered: Box<Rendered>,
    },
    /// Recorded as refused; `counted` refusals also show in /healthz and metrics.
    Refused { ending: Ending, counted: bool },
}

/// What [`Syncer::gate`] decided.
enum Gated {
    Go(Box<Controls<'static>>),
    Done(Iteration),
    Divert(Run),
}

enum Held {
    /// No hold (or one the branch moved past): follow the head.
    No,
    /// Roll out (or check for drift) the held commit instead.
    Run(Run),
    /// The held commit failed: wait for the branch to move.
    Failed(String),
}

/// What the signature check found: the head's verification, or the refused
/// commit's record (with what verifying found) and why.
enum Verified {
    Accepted(Verification),
    Refused(Box<(CommitRecord, Refusal)>),
}

/// A commit read, validated and rendered; or why it is refused.
enum Loaded {
    Rendered {
        commit: CommitRecord,
        rendered: Box<Rendered>,
    },
    Refused {
        commit: CommitRecord,
        refusal: Refusal,
    },
}

/// What an audit record says beyond its run.
struct Ending {
    kind: RecordKind,
    commit: CommitRecord,
    fleet: String,
    plan: PlanRecord,
    stages: Vec<StageRecord>,
    pruned: Vec<String>,
    outcome: Outcome,
    reason: Option<String>,
    freeze_override: Option<Box<FreezeOverride>>,
}

/// What a run is to the freeze windows: drift correction restores what was rolled
/// out (held only by `driftCorrection: deny`); anything else is a change.
fn freeze_change(run: &Run) -> Change {
    if run.drift() {
        Change::Drift
    } else {
        Change::Rollout
    }
}

impl Syncer {
    /// One pass: fetch, decide, and roll out at most one commit.
    ///
    /// # Errors
    /// The step that failed: git, the API server or the state directory; the state
    /// is left so that the next iteration resumes where this one stopped.
    #[tracing::instrument(name = "iteration", skip_all)]
    pub async fn iterate(&mut self) -> Result<Iteration, SyncError> {
        // The cluster copy is the truth: the cache is rewritten from it first (on
        // start, and after a failure that may have left the cache behind).
        if let Some(copy) = &self.copy {
            copy.refresh(&self.store, &self.audit)
                .await
                .map_err(|source| SyncError::SyncDown {
                    source: Box::new(source),
                })?;
        }
        let head = tokio::task::block_in_place(|| self.mirror.fetch(&self.remote))
            .map_err(|source| SyncError::Fetch { source })?;
        let mut state = self.load_state()?;
        if let Some(cursor) = state.cursor.clone() {
            // A previous run stopped mid-rollout; was it recorded before it stopped?
            if let Some((last, hash)) = self
                .audit
                .last()
                .map_err(|source| SyncError::ReadAudit { source })?
                && last.run_id == cursor.run_id
            {
                finish_state(&mut state, &last.commit.sha, last.outcome, hash);
                self.save_state(&state)?;
                return Ok(Iteration::Idle);
            }
            tracing::info!(commit = %cursor.commit, stage = cursor.stage, "resuming an interrupted rollout");
            return self.rollout(Run::resume(cursor), state).await;
        }
        match (next_kind(&state, &head), state.last_applied.clone()) {
            // The head was refused or failed: it waits for the branch to move. A
            // rollback is how an operator leaves it: look for a hold first.
            (None, applied) => {
                match self.hold_at_failed_head(&head, &state).await? {
                    Held::Run(run) => return Box::pin(self.rollout(run, state)).await,
                    Held::Failed(c) => return Ok(Iteration::WaitingForNewCommit(c)),
                    Held::No => {}
                }
                // The last applied commit is still kept: drift from it is corrected.
                let Some(applied) = applied else {
                    return Ok(Iteration::WaitingForNewCommit(head));
                };
                let mut run = Run::start(&applied, RecordKind::Drift);
                // The hold was looked for above, against the branch head.
                run.held = true;
                match self.rollout(run, state).await? {
                    Iteration::Idle => Ok(Iteration::WaitingForNewCommit(head)),
                    other => Ok(other),
                }
            }
            (Some(kind), applied) => {
                let it = self.rollout(Run::start(&head, kind), state.clone()).await?;
                // A new commit frozen before its first stage: what is live is still
                // the last applied commit's, and its drift is corrected as the
                // windows allow.
                let (Iteration::Frozen { drift: false, .. }, Some(applied)) = (&it, applied) else {
                    return Ok(it);
                };
                let mut run = Run::start(&applied, RecordKind::Drift);
                run.held = true;
                match self.rollout(run, state).await? {
                    // The loop reports the waiting commit.
                    Iteration::Idle | Iteration::Frozen { .. } => Ok(it),
                    other => {
                        if let Iteration::Frozen { commit, why, .. } = &it {
                            tracing::warn!(%commit, "new commit waits: {}", escape_control(why));
                        }
                        Ok(other)
                    }
                }
            }
        }
    }

    /// How the fleet's freeze windows gate this run's stages.
    fn freeze_gate(&self, run: &Run, fleet: &Fleet) -> FreezeGate {
        FreezeGate {
            windows: fleet.freeze_windows.clone(),
            change: freeze_change(run),
            override_reason: self.freeze_override.clone(),
            clock: self.clock.clone(),
        }
    }

    /// Admit → gate → plan → check → execute → record, for one run.
    #[tracing::instrument(name = "rollout", skip_all, fields(commit = %run.commit, kind = ?run.kind, run = %run.id))]
    async fn rollout(&mut self, run: Run, state: SyncState) -> Result<Iteration, SyncError> {
        let (commit, rendered) = match self.admit(&run, &state)? {
            Admitted::Go { commit, rendered } => (commit, rendered),
            Admitted::Refused { ending, counted } => {
                let reason = ending.reason.clone().unwrap_or_default();
                let it = self.refuse(&run, ending, state).await?;
                if counted {
                    self.metrics.refused(&run.commit, &reason);
                }
                return Ok(it);
            }
        };
        let fleet = &rendered.fleet;
        let cluster = self.cluster.scoped(&fleet.namespace, &fleet.name);
        let controls = match self.gate(&cluster, &run, &commit, &state).await? {
            Gated::Go(controls) => *controls,
            Gated::Done(it) => return Ok(it),
            Gated::Divert(held) => return Box::pin(self.rollout(held, state)).await,
        };
        let (previous_fleets, base_has_companions) = self.previous_fleets(&state, &run.commit);
        let (gathered, plan) = self
            .plan(
                &cluster,
                &rendered,
                state.last_applied.clone(),
                &previous_fleets,
                base_has_companions,
            )
            .await?;
        self.config_maps_left = Some(pipeline::config_maps_left(&rendered, &gathered));
        if run.drift() && run.resumed.is_none() && !plan.has_changes() {
            return Ok(Iteration::Idle);
        }
        let plan_record = plan_record(&plan, &manifests_digest(&rendered.desired));
        if let Err(source) = self.check(fleet, &gathered, &plan) {
            let refusal = Refusal::Guard { source };
            let ending = refused(run.kind, commit, &fleet.name, plan_record, &refusal);
            return self.refuse(&run, ending, state).await;
        }
        // A run frozen before its first write does not start: no cursor, no record,
        // and the loop goes on (drift, new commits) while the window is open. One
        // frozen at a later stage waits there (the driver's gate).
        if run.resumed.is_none()
            && let Some(frozen) = self.freeze_gate(&run, fleet).holds_start(&plan)
        {
            return Ok(Iteration::Frozen {
                commit: run.commit.clone(),
                why: frozen.to_string(),
                drift: run.drift(),
            });
        }
        // A trail that lost records is found before anything is rolled out (and
        // an iteration that rolls nothing out does not ask for the anchor).
        self.anchor
            .catch_up(&self.audit)
            .await
            .map_err(|source| SyncError::CheckAnchor { source })?;
        let report = match self
            .execute(&cluster, &run, &rendered, &gathered, &plan, state, controls)
            .await?
        {
            Execution::Finished(report) => report,
            Execution::Stopped { stage } => {
                tracing::info!(commit = %run.commit, stage, "stopped mid-rollout; the cursor is saved and the rollout resumes on restart");
                return Ok(Iteration::Stopped { commit: run.commit });
            }
        };
        self.conclude(&run, commit, &fleet.name, plan_record, report)
            .await
    }

    /// Whether the run's commit may be acted on at all, before the cluster is asked
    /// anything: its signature (before anything of it is read), then its read,
    /// validation and render, then (`--require-approved-plan`) its approval. Drift
    /// correction re-applies the last applied commit, checked when it was applied.
    fn admit(&self, run: &Run, state: &SyncState) -> Result<Admitted, SyncError> {
        let verification = if run.drift() {
            None
        } else {
            match self.verify(run, state)? {
                Verified::Accepted(v) => Some(v),
                Verified::Refused(refused_head) => {
                    let (commit, refusal) = *refused_head;
                    let ending = refused(
                        RecordKind::Commit,
                        commit,
                        "",
                        PlanRecord::default(),
                        &refusal,
                    );
                    return Ok(Admitted::Refused {
                        ending,
                        counted: true,
                    });
                }
            }
        };
        let verified = |mut commit: CommitRecord| {
            if let Some(v) = &verification {
                commit.signature = v.status;
                commit.verification = Some(v.clone());
            }
            commit
        };
        let (commit, rendered) = match self.load(&run.commit)? {
            Loaded::Rendered { commit, rendered } => (verified(commit), rendered),
            // An unreadable commit is recorded as a commit, whatever started the run.
            Loaded::Refused { commit, refusal } => {
                let ending = refused(
                    RecordKind::Commit,
                    verified(commit),
                    "",
                    PlanRecord::default(),
                    &refusal,
                );
                return Ok(Admitted::Refused {
                    ending,
                    counted: false,
                });
            }
        };
        if let Err(source) = self.approve(run, state, &rendered)? {
            let refusal = Refusal::Unapproved { source };
            let ending = refused(
                run.kind,
                commit,
                &rendered.fleet.name,
                PlanRecord::default(),
                &refusal,
            );
            return Ok(Admitted::Refused {
                ending,
                counted: true,
            });
        }
        Ok(Admitted::Go { commit, rendered })
    }

    /// `--require-approved-plan`: the change from the last applied commit must be the
    /// approved one. Drift needs none, and neither does a rollback to a commit the
    /// trail records applied (approved when it was applied).
    fn approve(
        &self,
        run: &Run,
        state: &SyncState,
        rendered: &Rendered,
    ) -> Result<Result<(), super::approval::ApprovalError>, SyncError> {
        if !self.require_approved_plan || run.drift() {
            return Ok(Ok(()));
        }
        if run.kind == RecordKind::Rollback
            && self
                .audit
                .verify(None)
                .map_err(|source| SyncError::ReadAudit { source })?
                .iter()
                .any(|r| r.commit.sha == run.commit && r.outcome == Outcome::Applied)
        {
            return Ok(Ok(()));
        }
        Ok(super::approval::check(
            &self.mirror.repo,
            &self.subdir,
            &run.commit,
            &rendered.desired,
            state.last_applied.as_deref(),
        ))
    }

    /// The pause gates the whole iteration (new commits and drift alike) before
    /// anything is planned (the driver reads it again before each stage); then an
    /// operator's rollback hold may divert the run to the held commit.
    async fn gate(
        &self,
        cluster: &Cluster,
        run: &Run,
        commit: &CommitRecord,
        state: &SyncState,
    ) -> Result<Gated, SyncError> {
        let mut controls = self.controls(cluster, commit).await;
        let gate = controls
            .gate()
            .instrument(tracing::info_span!("control", fleet = %cluster.fleet))
            .await;
        if let Some(why) = gate.why() {
            return match gate {
                Clearance::Unknown { .. } => Err(SyncError::ReadControl { why }),
                _ => {
                    tracing::warn!(commit = %run.commit, "{why}; nothing is applied until `drover resume`");
                    Ok(Gated::Done(Iteration::Paused {
                        commit: run.commit.clone(),
                        why,
                    }))
                }
            };
        }
        if !run.held && run.resumed.is_none() {
            let control = controls.last.clone().unwrap_or_default();
            match self
                .follow_hold(cluster, &control, &run.commit, state)
                .await?
            {
                Held::No => {}
                Held::Run(held) => return Ok(Gated::Divert(held)),
                Held::Failed(c) => return Ok(Gated::Done(Iteration::WaitingForNewCommit(c))),
            }
        }
        Ok(Gated::Go(Box::new(controls)))
    }

    /// The verify step: the head's signature under the policy, before anything of
    /// the commit is read.
    #[tracing::instrument(name = "verify", skip_all, fields(commit = %run.commit))]
    fn verify(&self, run: &Run, state: &SyncState) -> Result<Verified, SyncError> {
        let v = verdict(
            &self.trust,
            &self.mirror.repo,
            state.last_applied.as_deref(),
            &run.commit,
            jiff::Timestamp::now(),
        );
        self.metrics.signature(v.head.status.as_str());
        let Some(reason) = v.refusal else {
            return Ok(Verified::Accepted(v.head));
        };
        let mut commit = pipeline::open_commit(&self.mirror.repo, &run.commit)
            .map(|c| c.record)
            .map_err(|source| SyncError::ResolveCommit {
                commit: run.commit.clone(),
                source,
            })?;
        commit.signature = v.head.status;
        commit.verification = Some(v.head);
        Ok(Verified::Refused(Box::new((
            commit,
            Refusal::Signature { reason },
        ))))
    }

    /// The load step: the commit through the pipeline. A commit that cannot be
    /// found is an error (the mirror may be mid-fetch); one that cannot be read,
    /// validated or rendered is refused.
    ///
    /// No input may panic, but if reading one commit ever does, that commit is
    /// refused like any invalid one ([`Refusal::Panicked`]): the loop, the last good
    /// commit, /healthz and /metrics carry on.
    #[tracing::instrument(name = "load", skip_all, fields(commit = %sha))]
    fn load(&self, sha: &str) -> Result<Loaded, SyncError> {
        let opened = pipeline::open_commit(&self.mirror.repo, sha).map_err(|source| {
            SyncError::ResolveCommit {
                commit: sha.to_string(),
                source,
            }
        })?;
        let commit = opened.record.clone();
        let refusal = match pipeline::catching_panics(|| self.read_and_build(sha, &opened)) {
            Ok(Ok(rendered)) => {
                return Ok(Loaded::Rendered {
                    commit,
                    rendered: Box::new(rendered),
                });
            }
            Ok(Err(refusal)) => refusal,
            Err(source) => {
                tracing::error!(commit = %sha, panic = %escape_control(&source.message), "drover panicked while reading the commit; refusing it");
                Refusal::Panicked { source }
            }
        };
        Ok(Loaded::Refused { commit, refusal })
    }

    /// Reads, validates and renders one opened commit: the pure part of the load
    /// step, which [`Syncer::load`] runs under [`pipeline::catching_panics`].
    fn read_and_build(
        &self,
        sha: &str,
        opened: &pipeline::OpenCommit<'_>,
    ) -> Result<Rendered, Refusal> {
        // A panic on demand, for the test that sync survives one (debug builds only:
        // a release binary has no such hook).
        #[cfg(debug_assertions)]
        if std::env::var("DROVER_TEST_PANIC_ON_COMMIT_SUBJECT")
            .is_ok_and(|s| !s.is_empty() && s == opened.record.subject)
        {
            panic!("DROVER_TEST_PANIC_ON_COMMIT_SUBJECT matched commit {sha}");
        }
        let snapshot = opened
            .read(&self.subdir)
            .map_err(|source| Refusal::ReadSource { source })?;
        pipeline::build(snapshot).map_err(|e| match e {
            BuildError::InvalidFleet { diagnostics } => {
                for d in &diagnostics.0 {
                    tracing::error!(commit = %sha, "{d}");
                }
                Refusal::InvalidFleet { diagnostics }
            }
            BuildError::Render { source } => Refusal::Render { source },
        })
    }

    /// The plan step: gather the live side and plan, without the diffs.
    async fn plan(
        &self,
        cluster: &Cluster,
        rendered: &Rendered,
        base: Option<String>,
        previous_fleets: &[String],
        base_has_companions: bool,
    ) -> Result<(Gathered, Plan), SyncError> {
        let (gathered, plan) = pipeline::plan_live(
            cluster,
            rendered,
            base,
            pipeline::LivePlan {
                dry_run_all: false,
                previous_fleets,
                without_diffs: true,
                base_has_companions,
                config_maps_left: self.config_maps_left,
            },
        )
        .await
        .map_err(|source| SyncError::Gather {
            fleet: rendered.fleet.name.clone(),
            source,
        })?;
        self.metrics
            .api_requests(cluster.requests.load(Ordering::Relaxed));
        Ok((gathered, plan))
    }

    /// The check step: the guards, before anything is written - objects the fleet
    /// does not own, fields of another manager, a mass delete, a gating stage that
    /// selects no node.
    fn check(&self, fleet: &Fleet, gathered: &Gathered, plan: &Plan) -> Result<(), guard::Refusal> {
        check_owned(&gathered.foreign)?;
        check_companions_owned(&gathered.foreign_companions, &fleet.name)?;
        check_conflicts(&gathered.conflicts, fleet.force_conflicts)?;
        // Companion objects count with the DaemonSets, as for `drover apply`.
        check_mass_delete(
            fleet,
            plan,
            gathered.live.len() + gathered.companion_uids.len(),
            self.prune.prune,
            self.prune.allow_mass_delete,
        )?;
        check_gates(plan)
    }

    /// The execute step: the staged rollout, saving the cursor before each stage
    /// and ending early, as [`Execution::Stopped`], once a stop is asked for (at
    /// the next checkpoint, or at once mid-stage: the stage is redone on restart).
    #[allow(clippy::too_many_arguments)] // reason: the rollout's steps so far, each borrowed once
    async fn execute(
        &mut self,
        cluster: &Cluster,
        run: &Run,
        rendered: &Rendered,
        gathered: &Gathered,
        plan: &Plan,
        state: SyncState,
        mut controls: Controls<'_>,
    ) -> Result<Execution, SyncError> {
        let fleet = &rendered.fleet;
        let opts = ApplyOptions {
            prune: self.prune.prune && fleet.prune.enabled,
            force: fleet.force_conflicts,
            on_failure: fleet.on_failure,
            start_stage: run.first_stage(),
            resume: run.resumed.is_some(),
            freeze: self.freeze_gate(run, fleet),
        };
        let previous = PastRenders::of_repo(self.mirror.path.clone(), self.subdir.clone());
        self.metrics
            .rollout(plan.has_changes() || run.resumed.is_some());
        let store = self.store.clone();
        let copy = self.copy.clone();
        let stop = self.stop.clone();
        let mut saved = state;
        let mut at_stage = run.first_stage();
        let mut checkpoint = |stage: usize, done: &[StageReport]| {
            if *stop.borrow() {
                return Ok(Proceed::Stop);
            }
            at_stage = stage;
            saved.cursor = Some(run.cursor(stage, done));
            match &copy {
                Some(copy) => blocking(copy.save(&store, &saved))?,
                None => store.save(&saved)?,
            }
            Ok(Proceed::Continue)
        };
        let exec = execute(
            cluster,
            plan,
            &rendered.desired,
            gathered,
            &opts,
            &previous,
            self.progress.as_ref(),
            &mut checkpoint,
            Some(&mut controls),
        );
        let mut stop_wait = self.stop.clone();
        let result = tokio::select! {
            r = exec => r,
            _ = stop_wait.wait_for(|s| *s) => Ok(Execution::Stopped { stage: at_stage }),
        };
        self.metrics.rollout(false);
        self.metrics
            .api_requests(cluster.requests.load(Ordering::Relaxed));
        result.map_err(|source| SyncError::Apply {
            source: Box::new(source),
        })
    }

    /// The record and finish steps of a rollout that ran to its end.
    async fn conclude(
        &mut self,
        run: &Run,
        commit: CommitRecord,
        fleet: &str,
        plan: PlanRecord,
        report: ApplyReport,
    ) -> Result<Iteration, SyncError> {
        for s in &report.stages {
            self.metrics
                .stage(&s.name, s.rollout_seconds + s.bake_seconds);
        }
        let reason = report.stages.iter().find_map(|s| {
            s.outcome
                .reason()
                .map(|reason| format!("stage {}: {reason}", s.name))
        });
        let ending = Ending {
            kind: run.kind,
            commit,
            fleet: fleet.to_string(),
            plan,
            stages: run.stage_records(&report.stages),
            pruned: report.pruned.clone(),
            outcome: report.outcome,
            reason,
            freeze_override: report.freeze_override.clone().map(Box::new),
        };
        let hash = self.record(run, ending).await?;
        // The checkpoints saved the cursor since `state` was read.
        let mut state = self.load_state()?;
        self.finish(&mut state, &run.commit, report.outcome, hash)?;
        if run.drift() && report.outcome.ok() {
            self.metrics.drift_corrected();
        }
        Ok(Iteration::Rolled {
            commit: run.commit.clone(),
            outcome: report.outcome,
            drift: run.drift(),
        })
    }

    /// Records a refused commit and marks it bad: nothing was applied.
    async fn refuse(
        &mut self,
        run: &Run,
        ending: Ending,
        mut state: SyncState,
    ) -> Result<Iteration, SyncError> {
        tracing::error!(
            commit = %run.commit,
            reason = %ending.reason.as_deref().unwrap_or_default(),
            "commit refused; nothing was applied"
        );
        let hash = self.record(run, ending).await?;
        self.finish(&mut state, &run.commit, Outcome::Refused, hash)?;
        Ok(Iteration::Rolled {
            commit: run.commit.clone(),
            outcome: Outcome::Refused,
            drift: run.drift(),
        })
    }

    /// Fleet names whose DaemonSets this fleet owns besides its own: the ones given
    /// on the command line, and the name the last applied commit had when `sha` is
    /// another commit (a rename is then a replacement, not a collision).
    ///
    /// Also whether the last applied commit had companion objects: then they are
    /// listed, so that the last one removed from git is pruned.
    fn previous_fleets(&self, state: &SyncState, sha: &str) -> (Vec<String>, bool) {
        let mut names = self.previous_fleets.clone();
        let mut had_companions = false;
        if let Some(last) = state.last_applied.as_deref().filter(|l| *l != sha) {
            match self.load(last) {
                Ok(Loaded::Rendered { rendered, .. }) => {
                    names.push(rendered.fleet.name.clone());
                    had_companions = !rendered.fleet.companions.is_empty();
                }
                _ => {
                    tracing::warn!(commit = %last, "cannot render the last applied commit; its fleet name is not known");
                    // Whether it had companions is not known either: look.
                    had_companions = true;
                }
            }
        }
        (names, had_companions)
    }

    /// [`Syncer::follow_hold`] when the head failed before: the fleet's namespace
    /// comes from the head (when it cannot be read, there is no looking).
    async fn hold_at_failed_head(&self, head: &str, state: &SyncState) -> Result<Held, SyncError> {
        let Loaded::Rendered { rendered, .. } = self.load(head)? else {
            return Ok(Held::No);
        };
        let cluster = self
            .cluster
            .scoped(&rendered.fleet.namespace, &rendered.fleet.name);
        let (control, _) = ControlStore::of(&cluster)
            .read()
            .await
            .map_err(|e| SyncError::ReadControl { why: chain(&e) })?;
        self.follow_hold(&cluster, &control, head, state).await
    }

    /// A rollback's hold: the run on the held commit while the branch head is the
    /// one the hold was pinned to (pinning a new hold to `head` first), or `None`
    /// to follow the head (clearing a hold the branch has moved past).
    async fn follow_hold(
        &self,
        cluster: &Cluster,
        control: &Control,
        head: &str,
        state: &SyncState,
    ) -> Result<Held, SyncError> {
        let store = ControlStore::of(cluster);
        let write = |source| SyncError::WriteControl { source };
        match target(control.hold.as_ref(), head) {
            Target::Head => Ok(Held::No),
            Target::Released { commit } => {
                store
                    .update(|c| c.release_hold(&commit))
                    .await
                    .map_err(write)?;
                tracing::info!(held = %commit, %head, "the branch moved: the rollback's hold is released");
                Ok(Held::No)
            }
            Target::Held { commit, pin } => {
                if pin {
                    store
                        .update(|c| c.pin_hold(&commit, head))
                        .await
                        .map_err(write)?;
                    tracing::info!(held = %commit, %head, "rollback: holding on an earlier commit until the branch moves");
                }
                if state.bad_commit.as_deref() == Some(commit.as_str()) {
                    // The rollback itself failed: wait for the branch to move.
                    return Ok(Held::Failed(commit));
                }
                let kind = if state.last_applied.as_deref() == Some(commit.as_str()) {
                    RecordKind::Drift
                } else {
                    RecordKind::Rollback
                };
                let mut run = Run::start(&commit, kind);
                run.held = true;
                Ok(Held::Run(run))
            }
        }
    }

    /// The fleet's controls for this run: each control value read records the
    /// operator's actions the audit trail does not have yet (pause, resume,
    /// rollback), in order, once each.
    async fn controls(&self, cluster: &Cluster, commit: &CommitRecord) -> Controls<'static> {
        let mut recorder = ControlRecorder {
            audit: self.audit.clone(),
            copy: self.copy.clone(),
            recorded: None,
            commit: commit.clone(),
            fleet: cluster.fleet.clone(),
            connection: self.cluster.clone(),
            metrics: self.metrics.clone(),
        };
        Controls {
            store: ControlStore::of(cluster),
            seen: Box::new(move |c| recorder.record_new(c)),
            last: None,
        }
    }

    fn load_state(&self) -> Result<SyncState, SyncError> {
        self.store
            .load()
            .map_err(|source| SyncError::LoadState { source })
    }

    fn save_state(&self, state: &SyncState) -> Result<(), SyncError> {
        match &self.copy {
            Some(copy) => {
                blocking(copy.save(&self.store, state)).map_err(|source| SyncError::SaveCopy {
                    source: Box::new(source),
                })
            }
            None => self
                .store
                .save(state)
                .map_err(|source| SyncError::SaveState { source }),
        }
    }

    fn finish(
        &self,
        state: &mut SyncState,
        sha: &str,
        outcome: Outcome,
        head_hash: String,
    ) -> Result<(), SyncError> {
        finish_state(state, sha, outcome, head_hash);
        self.save_state(state)?;
        self.metrics.outcome(outcome.as_str());
        if outcome.ok() {
            self.metrics.applied(sha);
        }
        Ok(())
    }

    /// Appends the audit record; returns the hash of its line.
    async fn record(&self, run: &Run, ending: Ending) -> Result<String, SyncError> {
        let uid = self.cluster.identity().await.unwrap_or_else(|e| {
            tracing::warn!(error = %escape_control(&chain(&e)), "cannot read the cluster identity");
            String::new()
        });
        let rec = AuditRecord {
            schema: AUDIT_SCHEMA.into(),
            seq: 0,
            kind: ending.kind,
            run_id: run.id.clone(),
            commit: ending.commit,
            fleet: ending.fleet,
            cluster: ClusterRecord {
                server: self.cluster.server.clone(),
                uid,
            },
            plan: ending.plan,
            stages: ending.stages,
            pruned: ending.pruned,
            outcome: ending.outcome,
            reason: ending.reason,
            signature_policy: (ending.kind == RecordKind::Commit
                && self.trust.policy != Policy::Off)
                .then_some(self.trust.policy),
            started_at: run.started_at.clone(),
            finished_at: now_rfc3339(),
            drover_version: crate::VERSION.into(),
            anchor: None,
            control: None,
            freeze_override: ending.freeze_override.map(|o| *o),
            prev_hash: String::new(),
        };
        // The trail must fit its anchor before it grows, so a shortened trail is
        // never extended and re-anchored as if nothing had been removed.
        let (at, anchored) = self
            .anchor
            .check(&self.audit)
            .await
            .map_err(|source| SyncError::CheckAnchor { source })?;
        let rec = AuditRecord {
            anchor: Some(at.clone()),
            ..rec
        };
        let info: std::collections::BTreeMap<String, String> = [
            ("commit".to_string(), rec.commit.sha.clone()),
            ("fleet".to_string(), rec.fleet.clone()),
        ]
        .into_iter()
        .collect();
        let (_, hash) = match &self.copy {
            Some(copy) => {
                copy.append(&self.audit, rec)
                    .await
                    .map_err(|source| SyncError::RecordCopy {
                        commit: run.commit.clone(),
                        source: Box::new(source),
                    })?
            }
            None => self.audit.append(rec).map_err(|source| SyncError::Record {
                commit: run.commit.clone(),
                source,
            })?,
        };
        if let Err(e) = self
            .anchor
            .after_append(&self.audit, &at, anchored.as_ref(), &info)
            .await
        {
            let error = escape_control(&chain(&e));
            tracing::error!(%error, "cannot update the audit anchor; it is brought up to date before the next step");
            self.metrics.error("audit-anchor", &error);
        }
        Ok(hash)
    }
}

/// Appends a record for each control event the audit trail does not have yet.
struct ControlRecorder {
    audit: AuditLog,
    copy: Option<Arc<ClusterCopy>>,
    /// The last control serial in the trail, once read.
    recorded: Option<u64>,
    /// The commit the sync is on when it records (the one it is about to act on).
    commit: CommitRecord,
    fleet: String,
    /// The connection, for the cluster's identity: read only when an action is
    /// recorded, so an iteration with nothing to record does not ask for it.
    connection: Cluster,
    metrics: Arc<Metrics>,
}

impl ControlRecorder {
    fn record_new(&mut self, c: &Control) {
        if let Err(e) = self.try_record(c) {
            // Not fatal to the rollout; retried at the next read of the control object.
            let message = chain(e.as_ref());
            self.metrics.error("audit", &message);
            tracing::error!(error = %escape_control(&message), "cannot record an operator action in the audit trail");
        }
    }

    fn try_record(&mut self, c: &Control) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let recorded = match self.recorded {
            Some(r) => r,
            None => self.audit.last_control_serial()?,
        };
        self.recorded = Some(recorded);
        let (events, lost) = c.unrecorded(recorded);
        if lost > 0 {
            tracing::warn!(
                lost,
                "operator actions were dropped from the control object before they were recorded"
            );
        }
        if events.is_empty() {
            return Ok(());
        }
        let cluster = ClusterRecord {
            server: self.connection.server.clone(),
            uid: blocking(self.connection.identity()).unwrap_or_default(),
        };
        for ev in events {
            let kind = match ev.action {
                Action::Pause => RecordKind::Pause,
                Action::Resume => RecordKind::Resume,
                Action::Rollback => RecordKind::Rollback,
            };
            let rec = AuditRecord {
                schema: AUDIT_SCHEMA.into(),
                seq: 0,
                kind,
                run_id: format!("control-{}", ev.serial),
                commit: self.commit.clone(),
                fleet: self.fleet.clone(),
                cluster: cluster.clone(),
                plan: PlanRecord::default(),
                stages: vec![],
                pruned: vec![],
                outcome: Outcome::NoOp,
                reason: ev.reason.clone(),
                signature_policy: None,
                started_at: ev.at.clone(),
                finished_at: now_rfc3339(),
                drover_version: crate::VERSION.into(),
                anchor: None,
                control: Some(ev.clone()),
                freeze_override: None,
                prev_hash: String::new(),
            };
            match &self.copy {
                Some(copy) => {
                    blocking(copy.append(&self.audit, rec))?;
                }
                None => {
                    self.audit.append(rec)?;
                }
            }
            self.recorded = Some(ev.serial);
            tracing::info!(action = ev.action.as_str(), by = %escape_control(&ev.by), serial = ev.serial, "operator action recorded");
        }
        Ok(())
    }
}

/// The ending of a refused commit.
fn refused(
    kind: RecordKind,
    commit: CommitRecord,
    fleet: &str,
    plan: PlanRecord,
    refusal: &Refusal,
) -> Ending {
    Ending {
        kind,
        commit,
        fleet: fleet.to_string(),
        plan,
        stages: vec![],
        pruned: vec![],
        outcome: Outcome::Refused,
        reason: Some(chain(refusal)),
        freeze_override: None,
    }
}

/// The plan's counts for the audit record.
fn plan_record(p: &Plan, manifests_digest: &str) -> PlanRecord {
    PlanRecord {
        create: p.summary.create,
        update: p.summary.update,
        delete: p.summary.delete,
        unchanged: p.summary.unchanged,
        manifests_digest: manifests_digest.to_string(),
    }
}

/// The audit form of a stage report.
fn stage_record(s: &StageReport, resumed: bool) -> StageRecord {
    StageRecord {
        name: s.name.clone(),
        result: s.outcome.result(),
        reason: s.outcome.reason().map(str::to_string),
        daemonsets: s.daemonsets.len(),
        rollout_seconds: (s.rollout_seconds * 1000.0).round() / 1000.0,
        bake_seconds: (s.bake_seconds * 1000.0).round() / 1000.0,
        unobserved_seconds: (s.unobserved_seconds * 1000.0).round() / 1000.0,
        resumed,
    }
}

fn finish_state(state: &mut SyncState, sha: &str, outcome: Outcome, head_hash: String) {
    state.cursor = None;
    state.audit_head = Some(head_hash);
    if outcome.ok() {
        state.last_applied = Some(sha.to_string());
        state.bad_commit = None;
    } else {
        state.bad_commit = Some(sha.to_string());
    }
}

/// The longest wait between retries of a transiently failed iteration.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// The backoff between retries of transiently failed iterations: 1 s, 2 s, 4 s …
/// doubling up to half of [`BACKOFF_CAP`], each delay plus up to 100 % random jitter
/// (so never more than [`BACKOFF_CAP`]), and it never runs out. `build()` a fresh one
/// after each success. backon's builder rather than our own arithmetic: it is the one
/// kube-runtime's watchers already back off with.
pub const BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_secs(1))
    .with_max_delay(Duration::from_secs(BACKOFF_CAP.as_secs() / 2))
    .with_jitter()
    .without_max_times();

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rollout::{StageOutcome, StageResult};

    #[test]
    fn backoff_doubles_from_one_second_is_capped_and_never_runs_out() {
        use backon::BackoffBuilder as _;
        let delays: Vec<Duration> = BACKOFF.with_jitter_seed(7).build().take(40).collect();
        assert_eq!(delays.len(), 40, "the backoff never runs out");
        for (i, d) in delays.iter().enumerate() {
            // Without jitter: 1, 2, 4, 8, 16, 30, 30 … seconds.
            let base = Duration::from_secs((1u64 << i.min(5)).min(BACKOFF_CAP.as_secs() / 2));
            assert!(
                *d >= base && *d < base * 2,
                "delay {i} is {d:?}, outside [{base:?}, {:?})",
                base * 2
            );
            assert!(*d <= BACKOFF_CAP, "delay {i} is {d:?}");
        }
    }

    #[test]
    fn backoff_is_jittered_so_replicas_do_not_retry_in_step() {
        use backon::BackoffBuilder as _;
        let a: Vec<Duration> = BACKOFF.with_jitter_seed(1).build().take(8).collect();
        let b: Vec<Duration> = BACKOFF.with_jitter_seed(2).build().take(8).collect();
        assert_ne!(a, b);
        let whole = |v: &[Duration]| v.iter().all(|d| d.subsec_nanos() == 0);
        assert!(!whole(&a) && !whole(&b), "{a:?} {b:?}");
    }

    #[test]
    fn a_failed_outcome_marks_the_commit_bad_and_keeps_the_last_good() {
        let mut s = SyncState {
            last_applied: Some("good".into()),
            ..Default::default()
        };
        finish_state(&mut s, "bad", Outcome::Halted, "h".into());
        assert_eq!(s.last_applied.as_deref(), Some("good"));
        assert_eq!(s.bad_commit.as_deref(), Some("bad"));
        finish_state(&mut s, "new", Outcome::Applied, "h2".into());
        assert_eq!(s.last_applied.as_deref(), Some("new"));
        assert_eq!(s.bad_commit, None);
    }

    #[test]
    fn a_new_head_rolls_out_the_applied_head_is_checked_for_drift_and_a_bad_head_waits() {
        let state = SyncState {
            last_applied: Some("good".into()),
            bad_commit: Some("bad".into()),
            ..Default::default()
        };
        assert_eq!(next_kind(&state, "new"), Some(RecordKind::Commit));
        assert_eq!(next_kind(&state, "good"), Some(RecordKind::Drift));
        assert_eq!(next_kind(&state, "bad"), None);
        assert_eq!(
            next_kind(&SyncState::default(), "first"),
            Some(RecordKind::Commit)
        );
    }

    fn report(name: &str, outcome: StageOutcome) -> StageReport {
        StageReport {
            name: name.into(),
            outcome,
            daemonsets: Default::default(),
            rollout_seconds: 1.23456,
            bake_seconds: 0.0,
            unobserved_seconds: 0.0,
        }
    }

    #[test]
    fn a_resumed_run_records_its_earlier_stages_and_marks_only_the_resumed_one() {
        let earlier = stage_record(&report("canary", StageOutcome::Succeeded), false);
        let run = Run::resume(Cursor {
            run_id: "r".into(),
            commit: "c".into(),
            kind: RecordKind::Drift,
            stage: 1,
            started_at: "t".into(),
            completed: vec![earlier.clone()],
        });
        assert_eq!(run.first_stage(), 1);
        assert!(run.drift());
        let done = [
            report("blue", StageOutcome::Succeeded),
            report(
                "green",
                StageOutcome::Failed {
                    reason: "timeout".into(),
                },
            ),
        ];
        let stages = run.stage_records(&done);
        let names: Vec<(&str, bool, StageResult)> = stages
            .iter()
            .map(|s| (s.name.as_str(), s.resumed, s.result))
            .collect();
        assert_eq!(
            names,
            [
                ("canary", false, StageResult::Succeeded),
                ("blue", true, StageResult::Succeeded),
                ("green", false, StageResult::Failed)
            ]
        );
        assert_eq!(stages[2].reason.as_deref(), Some("timeout"));
        assert_eq!(stages[1].rollout_seconds, 1.235);
        // The cursor saved before the next stage carries the same records.
        let cursor = run.cursor(3, &done);
        assert_eq!((cursor.stage, cursor.kind), (3, RecordKind::Drift));
        assert_eq!(cursor.completed, stages);
        // A fresh run starts at the first stage with nothing before it.
        let fresh = Run::start("0123456789abcdef", RecordKind::Commit);
        assert_eq!(fresh.first_stage(), 0);
        assert!(fresh.stage_records(&[]).is_empty());
        assert!(fresh.id.starts_with("0123456789ab-"), "{}", fresh.id);
    }

    #[test]
    fn a_refusal_is_recorded_with_the_reason_an_operator_can_act_on() {
        let d = |m: &str| {
            crate::core::diag::Diagnostic::new("daemons/a.yaml", Default::default(), "spec", m)
        };
        let refusal = Refusal::InvalidFleet {
            diagnostics: Diagnostics(vec![d("first problem"), d("second problem")]),
        };
        assert_eq!(
            refusal.to_string(),
            "the fleet is invalid: 2 problem(s), first: daemons/a.yaml: spec: first problem"
        );
        let ending = refused(
            RecordKind::Commit,
            CommitRecord {
                sha: "c".into(),
                parents: vec![],
                author: "a".into(),
                committer: "a".into(),
                subject: "s".into(),
                time: 0,
                signature: crate::core::trust::SignatureStatus::Unsigned,
                verification: None,
            },
            "",
            PlanRecord::default(),
            &Refusal::Guard {
                source: guard::Refusal::EmptyRender { live: 3 },
            },
        );
        assert_eq!(ending.outcome, Outcome::Refused);
        assert_eq!(
            ending.reason.as_deref(),
            Some(
                "refusing an empty render: the commit renders no DaemonSets while 3 exist; pass --allow-mass-delete if this is intended"
            )
        );
    }

    #[test]
    fn an_audit_trail_that_cannot_be_written_counts_as_the_kind_the_alert_watches() {
        // deploy/monitoring's DroverAuditAppendFailing fires on
        // drover_errors_total{kind="audit"}; audit failures used to count as "state".
        let audit_error = || AuditError::Io {
            path: "/state/audit.jsonl".into(),
            source: std::io::Error::other("read-only file system"),
        };
        let record = SyncError::Record {
            commit: "c".into(),
            source: audit_error(),
        };
        let read = SyncError::ReadAudit {
            source: audit_error(),
        };
        for e in [&record, &read] {
            assert_eq!(e.kind(), "audit");
            assert!(!e.is_transient());
        }
        let rules = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/monitoring/drover-rules.yaml"),
        )
        .unwrap();
        assert!(
            rules.contains(&format!(
                "drover_errors_total{{kind=\"{}\"}}",
                record.kind()
            )),
            "the alert no longer watches this kind"
        );
    }

    #[test]
    fn a_trail_that_does_not_fit_its_anchor_counts_as_audit_and_an_absent_api_server_as_api() {
        use crate::core::audit::AnchorMismatch;
        use crate::shell::anchor::AnchorError;
        let shortened = SyncError::CheckAnchor {
            source: TrailError::Mismatch {
                path: "/state/audit.jsonl".into(),
                namespace: "drover-system".into(),
                name: "drover-audit-0123".into(),
                source: AnchorMismatch::Shortened {
                    log: 1,
                    anchored: 2,
                },
            },
        };
        assert_eq!(shortened.kind(), "audit", "the kind the alert watches");
        assert!(!shortened.is_transient(), "a shortened trail does not heal");
        assert!(
            chain(&shortened).starts_with(
                "checking the audit trail against its anchor: /state/audit.jsonl: does not fit its anchor configmap drover-system/drover-audit-0123: the trail has 1 record(s) but its anchor counts 2"
            ),
            "{}",
            chain(&shortened)
        );
        let away = SyncError::CheckAnchor {
            source: TrailError::Anchor {
                source: AnchorError::Read {
                    namespace: "drover-system".into(),
                    name: "drover-audit-0123".into(),
                    source: kube::Error::Api(Box::new(kube::core::Status {
                        code: 503,
                        ..Default::default()
                    })),
                },
            },
        };
        assert_eq!(away.kind(), "api");
        assert!(away.is_transient());
    }

    #[test]
    fn progress_that_cannot_be_saved_is_a_state_error_not_a_retry() {
        let e = SyncError::Apply {
            source: Box::new(ApplyError::Checkpoint {
                step: "stage canary".into(),
                source: Box::new(std::io::Error::other("disk full")),
            }),
        };
        assert_eq!(e.kind(), "state");
        assert!(!e.is_transient());
        assert_eq!(
            chain(&e),
            "cannot record progress before stage canary: disk full"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_iteration_opens_a_span_per_step_and_names_the_step_that_failed() {
        use crate::shell::test_support::{capture, example_repo, unreachable_cluster};
        use tracing::instrument::WithSubscriber as _;

        let remote = tempfile::tempdir().unwrap();
        let sha = example_repo(remote.path());
        let state = tempfile::tempdir().unwrap();
        let (_stop_tx, stop) = watch::channel(false);
        let mut syncer = Syncer {
            remote: RemoteSpec {
                url: remote.path().display().to_string(),
                branch: git2::Repository::open(remote.path())
                    .unwrap()
                    .head()
                    .unwrap()
                    .shorthand()
                    .unwrap()
                    .to_string(),
                token: None,
                ssh_key: None,
                known_hosts: None,
            },
            subdir: "fleet".into(),
            prune: PruneSettings {
                prune: true,
                allow_mass_delete: false,
            },
            trust: TrustConfig::new(None, None, None).unwrap(),
            require_approved_plan: false,
            previous_fleets: Vec::new(),
            cluster: unreachable_cluster("default", ""),
            metrics: Arc::default(),
            progress: Box::new(crate::shell::progress::LogProgress::default()),
            store: StateStore::open(state.path()).unwrap(),
            audit: AuditLog::in_dir(state.path()),
            // An empty trail is checked against no anchor: no request is made.
            anchor: TrailAnchor::new(unreachable_cluster("default", "").client, "default"),
            copy: None,
            mirror: Mirror::open(&state.path().join("repo.git")).unwrap(),
            stop,
            freeze_override: None,
            clock: Clock::System,
            config_maps_left: None,
        };
        let (spans, dispatch) = capture();
        let result = syncer.iterate().with_subscriber(dispatch).await;
        // The commit was fetched and rendered; the API server cannot be reached, so
        // the control step (the pause is read before anything is planned) fails, by
        // name, closed, as a failure the next iteration may not see.
        let Err(e @ SyncError::ReadControl { .. }) = &result else {
            panic!("{result:?}");
        };
        assert!(e.is_transient(), "{e:?}");
        assert_eq!(e.kind(), "api");
        assert!(
            chain(e).starts_with(
                "the control object cannot be read (reading ConfigMap node-agents/drover-control: "
            ),
            "{}",
            chain(e)
        );
        let names: Vec<(&str, Option<&str>)> = spans
            .all()
            .iter()
            .filter(|s| ["iteration", "rollout", "load", "control"].contains(&s.name))
            .map(|s| (s.name, s.parent))
            .collect();
        assert_eq!(
            names,
            [
                ("iteration", None),
                ("rollout", Some("iteration")),
                ("load", Some("rollout")),
                ("control", Some("rollout"))
            ]
        );
        let rollout = &spans.named("rollout")[0];
        assert_eq!(rollout.fields["commit"], sha);
        assert_eq!(rollout.fields["kind"], "Commit");
        assert_eq!(spans.named("load")[0].fields["commit"], sha);
        // Nothing was recorded and no cursor saved: the next iteration starts over.
        assert_eq!(syncer.store.load().unwrap(), SyncState::default());
        assert!(syncer.audit.last().unwrap().is_none());
    }
}
