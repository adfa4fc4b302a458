//! The sync loop: follow a branch, roll out each new commit through the staged
//! rollout, correct drift between commits, survive restarts, and record every
//! commit acted on in the audit trail.
//!
//! Reads as gather → plan → execute → record. Crash safety: the cursor (commit,
//! stage) is saved before each stage, the audit record is appended (fsynced) before
//! the state says the commit is done, and a restart that finds a cursor whose run is
//! already recorded only finalises the state, so no commit is recorded twice.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use backon::ExponentialBuilder;
use tokio::sync::watch;

use super::apply::{ApplyOptions, ApplyReport, Outcome, execute};
use super::audit::AuditLog;
use super::cluster::{Cluster, ClusterError};
use super::gitsync::{GitError, Mirror, RemoteSpec};
use super::metrics::Metrics;
use super::pipeline::{self, PastRenders};
use super::progress::Progress;
use super::rollout::StageOutcome;
use super::signature::{TrustConfig, verdict};
use super::state::{Cursor, StateStore, SyncState};
use crate::core::audit::{
    AUDIT_SCHEMA, AuditRecord, ClusterRecord, CommitRecord, PlanRecord, RecordKind, StageRecord,
    digest,
};
use crate::core::guard::{check_gates, check_mass_delete};
use crate::core::plan::Plan;
use crate::core::render::to_yaml_stream;
use crate::core::snapshot::{BuildError, Rendered};
use crate::core::trust::Policy;

/// Settings of the sync loop.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub remote: RemoteSpec,
    /// The fleet's directory inside the repository.
    pub subdir: PathBuf,
    pub interval: Duration,
    pub state_dir: PathBuf,
    pub once: bool,
    pub allow_mass_delete: bool,
    pub prune: bool,
    /// Trust sources and the signature policy.
    pub trust: TrustConfig,
}

/// Why an iteration failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    State(#[from] super::state::StateError),
    #[error(transparent)]
    Audit(#[from] super::audit::AuditError),
    #[error("reading commit {commit}: {message}")]
    Source { commit: String, message: String },
    #[error("stopping: {0}")]
    Stopped(String),
}

impl SyncError {
    /// A short kind for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncError::Git(_) => "git",
            SyncError::Cluster(_) => "api",
            SyncError::State(_) | SyncError::Audit(_) => "state",
            SyncError::Source { .. } => "source",
            SyncError::Stopped(_) => "stopped",
        }
    }

    /// Whether the next iteration may succeed without a new commit.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Git(_) | SyncError::Source { .. } => true,
            SyncError::Cluster(e) => {
                e.is_transient()
                    || matches!(e, ClusterError::List { .. } | ClusterError::Get { .. })
            }
            SyncError::State(_) | SyncError::Audit(_) | SyncError::Stopped(_) => false,
        }
    }
}

/// The loop's collaborators.
pub struct Syncer {
    pub cfg: SyncConfig,
    pub cluster: Cluster,
    pub metrics: Arc<Metrics>,
    pub progress: Box<dyn Progress>,
    pub store: StateStore,
    pub audit: AuditLog,
    pub mirror: Mirror,
    /// `true` once SIGTERM (or the leader lease) asks the loop to stop.
    pub stop: watch::Receiver<bool>,
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

/// A commit read, validated and rendered; or why it could not be.
enum Loaded {
    Ok {
        info: CommitRecord,
        rendered: Box<Rendered>,
    },
    Invalid {
        info: CommitRecord,
        reason: String,
    },
}

impl Syncer {
    /// What the audit record says about commit `sha`.
    fn commit_record(&self, sha: &str) -> Result<CommitRecord, SyncError> {
        pipeline::open_commit(&self.mirror.repo, sha)
            .map(|c| c.record)
            .map_err(|e| SyncError::Source {
                commit: sha.to_string(),
                message: e.to_string(),
            })
    }

    fn load_commit(&self, sha: &str) -> Result<Loaded, SyncError> {
        let commit =
            pipeline::open_commit(&self.mirror.repo, sha).map_err(|e| SyncError::Source {
                commit: sha.to_string(),
                message: e.to_string(),
            })?;
        let info = commit.record.clone();
        let snapshot = match commit.read(&self.cfg.subdir) {
            Ok(s) => s,
            Err(e) => {
                return Ok(Loaded::Invalid {
                    info,
                    reason: e.to_string(),
                });
            }
        };
        match pipeline::build(snapshot) {
            Ok(r) => Ok(Loaded::Ok {
                info,
                rendered: Box::new(r),
            }),
            Err(BuildError::InvalidFleet { diagnostics: d }) => {
                for e in &d.0 {
                    tracing::error!(commit = %sha, "{e}");
                }
                Ok(Loaded::Invalid {
                    info,
                    reason: format!(
                        "the fleet is invalid: {} problem(s), first: {}",
                        d.len(),
                        d.0[0]
                    ),
                })
            }
            Err(BuildError::Render { source }) => Ok(Loaded::Invalid {
                info,
                reason: source.to_string(),
            }),
        }
    }

    /// One pass: fetch, decide, and roll out at most one commit.
    ///
    /// # Errors
    /// Failures of git, the API server or the state directory; the state is left
    /// so that the next iteration resumes where this one stopped.
    pub async fn iterate(&mut self) -> Result<Iteration, SyncError> {
        let head = tokio::task::block_in_place(|| self.mirror.fetch(&self.cfg.remote))?;
        let mut state = self.store.load()?;
        if let Some(cursor) = state.cursor.clone() {
            // A previous run stopped mid-rollout; was it recorded before it stopped?
            if let Some((last, hash)) = self.audit.last()?
                && last.run_id == cursor.run_id
            {
                finish_state(&mut state, &last.commit.sha, last.outcome, hash);
                self.store.save(&state)?;
                return Ok(Iteration::Idle);
            }
            tracing::info!(commit = %cursor.commit, stage = cursor.stage, "resuming an interrupted rollout");
            let drift = cursor.kind == RecordKind::Drift;
            let commit = cursor.commit.clone();
            return self.rollout(&commit, Some(cursor), drift, state).await;
        }
        if state.bad_commit.as_deref() == Some(head.as_str()) {
            return Ok(Iteration::WaitingForNewCommit(head));
        }
        if state.last_applied.as_deref() != Some(head.as_str()) {
            return self.rollout(&head, None, false, state).await;
        }
        self.rollout(&head, None, true, state).await
    }

    async fn rollout(
        &mut self,
        sha: &str,
        cursor: Option<Cursor>,
        drift: bool,
        mut state: SyncState,
    ) -> Result<Iteration, SyncError> {
        let started_at = cursor
            .as_ref()
            .map(|c| c.started_at.clone())
            .unwrap_or_else(now_rfc3339);
        let run_id = cursor
            .as_ref()
            .map(|c| c.run_id.clone())
            .unwrap_or_else(|| new_run_id(sha));
        // Signatures before anything else is read from the commit: a refused head is
        // recorded and nothing of it is loaded, planned or applied. Drift correction
        // re-applies the last applied commit, which was checked when it was applied.
        let trust = (!drift).then(|| {
            verdict(
                &self.cfg.trust,
                &self.mirror.repo,
                state.last_applied.as_deref(),
                sha,
                jiff::Timestamp::now(),
            )
        });
        if let Some(t) = &trust {
            self.metrics.signature(t.head.status.as_str());
        }
        if let Some(reason) = trust.as_ref().and_then(|t| t.refusal.clone()) {
            let mut info = self.commit_record(sha)?;
            if let Some(t) = trust {
                info.signature = t.head.status;
                info.verification = Some(t.head);
            }
            let rec = self
                .record(
                    &run_id,
                    RecordKind::Commit,
                    info,
                    "",
                    &started_at,
                    None,
                    None,
                    &[],
                    false,
                    Outcome::Refused,
                    Some(reason.clone()),
                )
                .await?;
            self.finish(&mut state, sha, Outcome::Refused, rec)?;
            self.metrics.refused(sha, &reason);
            tracing::error!(commit = %sha, %reason, "commit refused by the signature policy; nothing was applied");
            return Ok(Iteration::Rolled {
                commit: sha.to_string(),
                outcome: Outcome::Refused,
                drift,
            });
        }
        let (mut info, rendered) = match self.load_commit(sha)? {
            Loaded::Ok { info, rendered } => (info, rendered),
            Loaded::Invalid { mut info, reason } => {
                if let Some(t) = trust {
                    info.signature = t.head.status;
                    info.verification = Some(t.head);
                }
                let rec = self
                    .record(
                        &run_id,
                        RecordKind::Commit,
                        info,
                        "",
                        &started_at,
                        None,
                        None,
                        &[],
                        false,
                        Outcome::Refused,
                        Some(reason.clone()),
                    )
                    .await?;
                self.finish(&mut state, sha, Outcome::Refused, rec)?;
                tracing::error!(commit = %sha, %reason, "commit refused");
                return Ok(Iteration::Rolled {
                    commit: sha.to_string(),
                    outcome: Outcome::Refused,
                    drift,
                });
            }
        };
        if let Some(t) = trust {
            info.signature = t.head.status;
            info.verification = Some(t.head);
        }
        let kind = if drift {
            RecordKind::Drift
        } else {
            RecordKind::Commit
        };
        let fleet = &rendered.fleet;
        let desired = &rendered.desired;
        let cluster = self.cluster.scoped(&fleet.namespace, &fleet.name);
        let (gathered, mut p) =
            pipeline::plan_live(&cluster, &rendered, state.last_applied.clone(), false).await?;
        self.metrics
            .api_requests(cluster.requests.load(Ordering::Relaxed));
        drop_diffs(&mut p);
        let resume_stage = cursor.as_ref().map(|c| c.stage);
        if drift && resume_stage.is_none() && !p.has_changes() {
            return Ok(Iteration::Idle);
        }
        let digest_of = digest(to_yaml_stream(desired).as_bytes());
        let refusal = if !gathered.conflicts.is_empty() && !fleet.force_conflicts {
            Some(format!(
                "fields owned by another field manager: {}",
                gathered
                    .conflicts
                    .iter()
                    .flat_map(|(n, cs)| cs
                        .iter()
                        .map(move |c| format!("{n} {} (manager {})", c.field, c.manager)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else {
            check_mass_delete(
                fleet,
                &p,
                gathered.live.len(),
                self.cfg.prune,
                self.cfg.allow_mass_delete,
            )
            .and_then(|()| check_gates(&p))
            .err()
            .map(|r| r.to_string())
        };
        if let Some(reason) = refusal {
            tracing::error!(commit = %sha, %reason, "commit refused; nothing was applied");
            let rec = self
                .record(
                    &run_id,
                    kind,
                    info,
                    &fleet.name,
                    &started_at,
                    Some((&p, &digest_of)),
                    None,
                    &[],
                    false,
                    Outcome::Refused,
                    Some(reason),
                )
                .await?;
            self.finish(&mut state, sha, Outcome::Refused, rec)?;
            return Ok(Iteration::Rolled {
                commit: sha.to_string(),
                outcome: Outcome::Refused,
                drift,
            });
        }
        let first_stage = resume_stage.unwrap_or(0);
        let mut cursor = cursor.unwrap_or(Cursor {
            run_id: run_id.clone(),
            commit: sha.to_string(),
            kind,
            stage: first_stage,
            started_at: started_at.clone(),
            completed: vec![],
        });
        let opts = ApplyOptions {
            prune: self.cfg.prune && fleet.prune.enabled,
            force: fleet.force_conflicts,
            on_failure: fleet.on_failure,
            start_stage: first_stage,
            resume: resume_stage.is_some(),
        };
        let previous = PastRenders::of_repo(self.mirror.path.clone(), self.cfg.subdir.clone());
        self.metrics
            .rollout(p.has_changes() || resume_stage.is_some());
        let store = self.store.clone();
        let stop = self.stop.clone();
        let mut stop_wait = self.stop.clone();
        let mut saved_state = state.clone();
        let earlier: Vec<StageRecord> = cursor.completed.clone();
        let earlier_stages = earlier.clone();
        let resumed = resume_stage.is_some();
        let mut checkpoint =
            |stage: usize, done: &[super::rollout::StageReport]| -> Result<(), String> {
                if *stop.borrow() {
                    return Err("stop requested".into());
                }
                cursor.stage = stage;
                cursor.completed = earlier.clone();
                cursor.completed.extend(
                    done.iter()
                        .enumerate()
                        .map(|(i, st)| stage_record(st, resumed && i == 0)),
                );
                saved_state.cursor = Some(cursor.clone());
                store.save(&saved_state).map_err(|e| e.to_string())
            };
        let exec = execute(
            &cluster,
            &p,
            desired,
            &gathered.live,
            &opts,
            &previous,
            self.progress.as_ref(),
            &mut checkpoint,
        );
        let report = tokio::select! {
            r = exec => r,
            _ = stop_wait.wait_for(|s| *s) => {
                self.metrics.rollout(false);
                return Err(SyncError::Stopped("stop requested mid-rollout; the cursor is saved and the rollout resumes on restart".into()));
            }
        };
        self.metrics.rollout(false);
        self.metrics
            .api_requests(cluster.requests.load(Ordering::Relaxed));
        let report = match report {
            Ok(r) => r,
            Err(ClusterError::Config(m)) if m.contains("stop requested") => {
                return Err(SyncError::Stopped(m));
            }
            Err(e) => return Err(e.into()),
        };
        for s in &report.stages {
            self.metrics
                .stage(&s.name, s.rollout_seconds + s.bake_seconds);
        }
        let reason = report.stages.iter().find_map(|s| match &s.outcome {
            StageOutcome::Failed { reason } => Some(format!("stage {}: {reason}", s.name)),
            StageOutcome::Succeeded => None,
        });
        let rec = self
            .record(
                &run_id,
                kind,
                info,
                &fleet.name,
                &started_at,
                Some((&p, &digest_of)),
                Some(&report),
                &earlier_stages,
                resumed,
                report.outcome,
                reason,
            )
            .await?;
        let mut state = self.store.load()?;
        self.finish(&mut state, sha, report.outcome, rec)?;
        if drift && report.outcome.ok() {
            self.metrics.drift_corrected();
        }
        Ok(Iteration::Rolled {
            commit: sha.to_string(),
            outcome: report.outcome,
            drift,
        })
    }

    fn finish(
        &self,
        state: &mut SyncState,
        sha: &str,
        outcome: Outcome,
        head_hash: String,
    ) -> Result<(), SyncError> {
        finish_state(state, sha, outcome, head_hash);
        self.store.save(state)?;
        self.metrics.outcome(outcome.as_str());
        if outcome.ok() {
            self.metrics.applied(sha);
        }
        Ok(())
    }

    /// Appends the audit record; returns the hash of its line.
    #[allow(clippy::too_many_arguments)] // reason: a record has this many parts
    async fn record(
        &self,
        run_id: &str,
        kind: RecordKind,
        commit: CommitRecord,
        fleet: &str,
        started_at: &str,
        plan: Option<(&Plan, &str)>,
        report: Option<&ApplyReport>,
        earlier: &[StageRecord],
        resumed: bool,
        outcome: Outcome,
        reason: Option<String>,
    ) -> Result<String, SyncError> {
        let uid = self.cluster.identity().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the cluster identity");
            String::new()
        });
        let plan_rec = plan
            .map(|(p, d)| PlanRecord {
                create: p.summary.create,
                update: p.summary.update,
                delete: p.summary.delete,
                unchanged: p.summary.unchanged,
                manifests_digest: d.to_string(),
            })
            .unwrap_or_default();
        let mut stages = earlier.to_vec();
        if let Some(r) = report {
            stages.extend(
                r.stages
                    .iter()
                    .enumerate()
                    .map(|(i, st)| stage_record(st, resumed && i == 0)),
            );
        }
        let rec = AuditRecord {
            schema: AUDIT_SCHEMA.into(),
            seq: 0,
            kind,
            run_id: run_id.to_string(),
            commit,
            fleet: fleet.to_string(),
            cluster: ClusterRecord {
                server: self.cluster.server.clone(),
                uid,
            },
            plan: plan_rec,
            stages,
            pruned: report.map(|r| r.pruned.clone()).unwrap_or_default(),
            outcome,
            reason,
            signature_policy: (kind == RecordKind::Commit && self.cfg.trust.policy != Policy::Off)
                .then_some(self.cfg.trust.policy),
            started_at: started_at.to_string(),
            finished_at: now_rfc3339(),
            drover_version: crate::VERSION.into(),
            prev_hash: String::new(),
        };
        let (_, hash) = self.audit.append(rec)?;
        Ok(hash)
    }
}

/// Sync prints no plan and records only its counts, but holds it for the whole
/// rollout: the unified diffs (the whole object of every create) go before that.
fn drop_diffs(p: &mut Plan) {
    for s in &mut p.stages {
        for a in &mut s.actions {
            a.diff = String::new();
        }
    }
    for a in &mut p.prune {
        a.diff = String::new();
    }
}

/// The audit form of a stage report.
fn stage_record(s: &super::rollout::StageReport, resumed: bool) -> StageRecord {
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
}
