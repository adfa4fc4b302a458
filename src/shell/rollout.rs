//! Puts one stage back during a rollback: apply the previous objects and wait for
//! their rollouts with a watch (no bake). The stages of a rollout itself are run by
//! the core's machine through `shell::drive`.
//!
//! Owns: the rollback stage's timing and outcome. Must not: decide which stages are
//! rolled back (the machine does).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use kube::runtime::watcher::Event;

use super::cluster::{Cluster, ClusterError, rollout_status};
use super::progress::Progress;
use crate::core::render::{LABEL_FLEET, LABEL_GROUP, Manifest};
use crate::core::rollout::RolloutStatus;

/// What to do in one stage.
#[derive(Debug, Clone)]
pub struct StageRun<'a> {
    pub name: String,
    pub groups: Vec<String>,
    pub bake: Duration,
    pub timeout: Duration,
    /// Desired manifests to apply (creates and updates).
    pub manifests: Vec<&'a Manifest>,
    /// Whether to take over fields owned by other managers.
    pub force: bool,
}

/// How a stage ended: the core's type.
pub use crate::core::rollout::StageOutcome;

/// What happened in a stage, for the summary and the audit trail.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageReport {
    pub name: String,
    pub outcome: StageOutcome,
    pub daemonsets: BTreeMap<String, RolloutStatus>,
    pub rollout_seconds: f64,
    /// Observed healthy time of the bake.
    pub bake_seconds: f64,
    /// Time in the stage with no fresh observation of it.
    #[serde(default)]
    pub unobserved_seconds: f64,
}

impl StageReport {
    pub fn ok(&self) -> bool {
        self.outcome == StageOutcome::Succeeded
    }
}

/// The names of `manifests` (those that have one), in order.
pub fn names(manifests: &[&Manifest]) -> Vec<String> {
    manifests
        .iter()
        .map(|m| m.name())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Runs one stage to its end.
///
/// # Errors
/// Only for failures that are not the stage's fault and leave nothing half-done:
/// a refused apply (conflict, forbidden) before any write of this stage succeeded is
/// still reported as a failed stage, not an error. Errors are returned when the API
/// server cannot be reached at all, so the caller can retry.
#[tracing::instrument(name = "stage", skip_all, fields(stage = %stage.name, daemonsets = stage.manifests.len()))]
pub async fn run_stage(
    cluster: &Cluster,
    stage: &StageRun<'_>,
    progress: &dyn Progress,
) -> Result<StageReport, ClusterError> {
    let started = Instant::now();
    let names = names(&stage.manifests);
    progress.stage_started(&stage.name, &names);
    let results = cluster.write_all(&stage.manifests, stage.force).await;
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(_) => {}
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if !failures.is_empty() {
        let reason = failures.join("; ");
        progress.stage_finished(&stage.name, false, &reason);
        return Ok(StageReport {
            name: stage.name.clone(),
            outcome: StageOutcome::Failed { reason },
            daemonsets: BTreeMap::new(),
            rollout_seconds: started.elapsed().as_secs_f64(),
            bake_seconds: 0.0,
            unobserved_seconds: 0.0,
        });
    }
    // Rolling back a drover-driven DaemonSet replaces the pods of the nodes the
    // rollout touched: only their pods are not of the restored revision. Never held
    // by a pause or a freeze: a rollback is how a failed stage is made safe.
    let _replacer = super::replace::start(
        cluster,
        &stage.manifests,
        super::replace::ReplaceGate::default(),
        &stage.name,
    );
    let (statuses, done) = wait_rollouts(cluster, stage, &names, progress).await;
    let rollout_seconds = started.elapsed().as_secs_f64();
    if !done {
        let pending: Vec<String> = names
            .iter()
            .filter(|n| !statuses.get(*n).is_some_and(RolloutStatus::is_complete))
            .map(|n| match statuses.get(n) {
                Some(s) => format!("{n} ({})", s.progress()),
                None => format!("{n} (no status)"),
            })
            .collect();
        let mut reason = format!(
            "rollout did not complete within {}: {}",
            crate::core::syntax::format_duration(stage.timeout),
            pending.join(", ")
        );
        if let Some(nr) = not_ready_nodes_hint(&statuses) {
            reason.push_str(&nr);
        }
        progress.stage_finished(&stage.name, false, &reason);
        return Ok(StageReport {
            name: stage.name.clone(),
            outcome: StageOutcome::Failed { reason },
            daemonsets: statuses,
            rollout_seconds,
            bake_seconds: 0.0,
            unobserved_seconds: 0.0,
        });
    }
    // Rollback only: the new rollout's stages are gated by the core's machine
    // (shell::drive); putting a stage back waits for its rollouts and nothing more.
    let _ = stage.bake;
    progress.stage_finished(&stage.name, true, "");
    Ok(StageReport {
        name: stage.name.clone(),
        outcome: StageOutcome::Succeeded,
        daemonsets: statuses,
        rollout_seconds,
        bake_seconds: 0.0,
        unobserved_seconds: 0.0,
    })
}

fn not_ready_nodes_hint(statuses: &BTreeMap<String, RolloutStatus>) -> Option<String> {
    let stuck = statuses.values().any(|s| s.desired > 0 && s.available == 0);
    stuck.then(|| "; no pod became available: are the stage's nodes NotReady?".to_string())
}

/// The label selector of a stage's DaemonSets and their pods.
pub fn stage_selector(fleet: &str, groups: &[String]) -> String {
    format!(
        "{LABEL_FLEET}={fleet},{LABEL_GROUP} in ({})",
        groups.join(",")
    )
}

/// Watches the stage's DaemonSets until all named ones are complete, or the timeout.
async fn wait_rollouts(
    cluster: &Cluster,
    stage: &StageRun<'_>,
    names: &[String],
    progress: &dyn Progress,
) -> (BTreeMap<String, RolloutStatus>, bool) {
    let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let mut statuses: BTreeMap<String, RolloutStatus> = BTreeMap::new();
    let stream = cluster.watch_daemonsets(&stage_selector(&cluster.fleet, &stage.groups));
    futures::pin_mut!(stream);
    let deadline = tokio::time::Instant::now() + stage.timeout;
    let complete = |s: &BTreeMap<String, RolloutStatus>| {
        wanted
            .iter()
            .all(|n| s.get(*n).is_some_and(RolloutStatus::is_complete))
    };
    loop {
        let next = tokio::select! {
            ev = stream.next() => ev,
            () = tokio::time::sleep_until(deadline) => return (statuses, false),
        };
        match next {
            None => return (statuses, false),
            Some(Err(e)) => tracing::debug!(error = %e, "daemonset watch error; retrying"),
            Some(Ok(Event::Apply(ds) | Event::InitApply(ds))) => {
                let Some(name) = ds.metadata.name.clone() else {
                    continue;
                };
                if !wanted.contains(name.as_str()) {
                    continue;
                }
                let s = rollout_status(&ds);
                progress.daemonset(&stage.name, &name, &s);
                statuses.insert(name, s);
                if complete(&statuses) {
                    return (statuses, true);
                }
            }
            Some(Ok(Event::Delete(ds))) => {
                if let Some(name) = ds.metadata.name {
                    statuses.remove(&name);
                }
            }
            Some(Ok(Event::Init | Event::InitDone)) => {
                if complete(&statuses) {
                    return (statuses, true);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::progress::LogProgress;
    use crate::shell::test_support::{capture, unreachable_cluster};
    use tracing::instrument::WithSubscriber as _;

    #[tokio::test]
    async fn a_rollback_stage_and_each_of_its_daemonset_applies_open_their_own_spans() {
        let (spans, dispatch) = capture();
        let cluster = unreachable_cluster("ns", "f");
        let ds = |name: &str| serde_json::json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name}});
        let (a, b) = (
            Manifest::new(&ds("agent-canary")),
            Manifest::new(&ds("exporter-canary")),
        );
        let run = StageRun {
            name: "rollback-canary".into(),
            groups: vec!["canary".into()],
            bake: Duration::ZERO,
            timeout: Duration::from_secs(1),
            manifests: vec![&a, &b],
            force: false,
        };
        let r = run_stage(&cluster, &run, &LogProgress::default())
            .with_subscriber(dispatch)
            .await;
        assert!(
            !matches!(&r, Ok(report) if report.ok()),
            "nothing listens: the stage cannot succeed: {r:?}"
        );
        let stage = spans.named("stage");
        assert_eq!(stage.len(), 1, "{:?}", spans.all());
        assert_eq!(stage[0].fields["stage"], "rollback-canary");
        assert_eq!(stage[0].fields["daemonsets"], "2");
        let applies = spans.named("apply");
        let mut names: Vec<&str> = applies
            .iter()
            .map(|s| s.fields["daemonset"].as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["agent-canary", "exporter-canary"], "{applies:?}");
        assert!(
            applies
                .iter()
                .all(|s| s.parent == Some("stage") && s.fields["dry_run"] == "false"),
            "{applies:?}"
        );
    }
}
