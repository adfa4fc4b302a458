//! Companion objects in a rollback (`onFailure: rollback`): what the failed run
//! changed is put back as the previous commit had it.
//!
//! Owns: which companions a rollback restores and how. Only the companions this run
//! applied are touched (each applied before a stage that is now rolled back: every
//! stage a run writes is rolled back together). One the previous commit renders gets
//! that manifest again, applied before the DaemonSets go back (so their pods find
//! their RBAC and ServiceAccount as they were); one the run created that the previous
//! commit did not have is deleted after the DaemonSets went back, only while it is
//! still the object the apply returned (uid precondition). One that cannot be put
//! back (no previous commit known, or it does not render the object) stays as the
//! failed commit has it, and is reported as not rolled back.
//!
//! A resumed rollout counts every companion it finds unchanged as applied by the
//! run it resumes (see `apply::resumed_companions`): nothing recorded which of them
//! that run had applied before it stopped.
//!
//! The previous commit is the plan's base (sync: the last applied commit), else the
//! commit the live DaemonSets of the stages came from (`drover apply`, which knows no
//! last applied commit). Must not: decide when to roll back (the machine does).

use std::collections::BTreeMap;

use super::apply::PreviousObjects;
use super::cluster::{Cluster, ClusterError};
use super::live::{Gathered, LiveObject, ObjectKey};
use crate::core::plan::{Action, CompanionPlan, Plan};

/// What a companion rollback did, and what it could not do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Objects put back to the previous commit's manifest, or deleted.
    pub restored: Vec<String>,
    /// Objects left as the failed commit has them (no previous version known).
    pub skipped: Vec<String>,
    /// Objects the API server refused to restore, with why.
    pub failed: Vec<String>,
    /// Created objects to delete once the DaemonSets went back: (plan entry, uid).
    deletes: Vec<(usize, String)>,
}

/// The commit a rollback restores companions from: the plan's base, else the
/// `drover.dev/commit` the first live DaemonSet of the rolled-back stages came from.
fn previous_commit(
    plan: &Plan,
    live: &BTreeMap<ObjectKey, LiveObject>,
    stages: &[usize],
) -> Option<String> {
    if let Some(base) = &plan.base {
        return Some(base.clone());
    }
    stages.iter().find_map(|&i| {
        plan.stages[i].actions.iter().find_map(|a| {
            let ns = a.namespace_in(plan).to_string();
            live.get(&(ns, a.name.clone()))
                .and_then(|l| l.commit.clone())
        })
    })
}

/// Puts back, before the DaemonSets of `stages` (plan indexes) go back, every
/// companion this run applied (`applied`: object key -> the uid the apply returned)
/// that the previous commit renders; records the created ones it did not render for
/// [`delete_created`].
///
/// # Errors
/// Transient API errors (the caller retries the rollback).
pub async fn restore_previous(
    cluster: &Cluster,
    plan: &Plan,
    gathered: &Gathered,
    previous: &dyn PreviousObjects,
    applied: &BTreeMap<String, Option<String>>,
    stages: &[usize],
) -> Result<Restored, ClusterError> {
    let mut out = Restored::default();
    if applied.is_empty() {
        return Ok(out);
    }
    let commit = previous_commit(plan, &gathered.live, stages);
    for (i, c) in plan.companions.iter().enumerate() {
        let Some(uid) = applied.get(&c.object) else {
            continue;
        };
        let before = commit
            .as_deref()
            .and_then(|sha| previous.companion(sha, &c.object));
        match (before, c.action, uid) {
            (Some(manifest), _, _) => {
                let Some(kind) = kind_of(gathered, c) else {
                    out.skipped.push(c.object.clone());
                    continue;
                };
                match cluster.apply_companion(kind, &c.object, &manifest).await {
                    Ok(_) => {
                        tracing::info!(object = %c.object, commit = ?commit, "companion rolled back to the previous commit's");
                        out.restored.push(c.object.clone());
                    }
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => out.failed.push(e.to_string()),
                }
            }
            // Not in the previous commit and created by this run (or, unchanged, by
            // the interrupted run a resumed one continues): nothing was there.
            (None, Action::Create | Action::Unchanged, Some(uid)) => {
                out.deletes.push((i, uid.clone()));
            }
            _ => out.skipped.push(c.object.clone()),
        }
    }
    Ok(out)
}

/// Deletes, after the DaemonSets went back, the companions this run created that
/// the previous commit did not have, each only while it is the object created.
///
/// # Errors
/// Transient API errors (the caller retries the rollback).
pub async fn delete_created(
    cluster: &Cluster,
    plan: &Plan,
    gathered: &Gathered,
    restored: &mut Restored,
) -> Result<(), ClusterError> {
    for (i, uid) in std::mem::take(&mut restored.deletes) {
        let c = &plan.companions[i];
        let Some(kind) = kind_of(gathered, c) else {
            restored.skipped.push(c.object.clone());
            continue;
        };
        match cluster
            .delete_companion(kind, &c.object, c.namespace.as_deref(), &c.name, &uid)
            .await
        {
            Ok(()) => {
                tracing::info!(object = %c.object, "companion created by the rolled-back commit deleted");
                restored.restored.push(c.object.clone());
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => restored.failed.push(e.to_string()),
        }
    }
    Ok(())
}

fn kind_of<'g>(
    gathered: &'g Gathered,
    c: &CompanionPlan,
) -> Option<&'g super::cluster::CompanionKind> {
    gathered
        .companion_kinds
        .get(&(c.api_version.clone(), c.kind.clone()))
}
