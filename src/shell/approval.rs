//! `sync --require-approved-plan`: renders what the pure decision
//! ([`crate::core::approval::decide`]) needs from git — the last applied commit (the
//! base of the change about to be applied), the head's `Drover-Plan:` trailer, and
//! the change sets a reviewer may have seen on the merge's parents (to explain a
//! mismatch object by object).

use std::path::Path;

use git2::{Oid, Repository};

use super::pipeline;
use super::source::SourceError;
use crate::core::approval::{ChangeSet, Unapproved, change_set, decide, trailer};
use crate::core::render::DesiredSet;
use crate::core::snapshot::BuildError;

/// The change about to be applied could not be established, so it is not approved.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("reading commit {commit} to compare with the approved plan")]
    Read {
        commit: String,
        #[source]
        source: SourceError,
    },
    #[error("rendering the last applied commit {commit} to compare with the approved plan")]
    Build {
        commit: String,
        #[source]
        source: BuildError,
    },
    #[error("rendering commit {commit} to compare with the approved plan panicked")]
    Panicked {
        commit: String,
        #[source]
        source: pipeline::Panicked,
    },
    #[error(transparent)]
    Unapproved(#[from] Unapproved),
}

/// The fleet rendered at `rev`; `None` when the commit has no fleet files (the
/// base before the fleet existed: an empty cluster).
fn render(
    repo: &Repository,
    subdir: &Path,
    rev: &str,
) -> Result<Option<DesiredSet>, ApprovalError> {
    let read = |source| ApprovalError::Read {
        commit: rev.to_string(),
        source,
    };
    let snapshot = pipeline::open_commit(repo, rev)
        .map_err(read)?
        .read(subdir)
        .map_err(read)?;
    if snapshot.files.is_empty() {
        return Ok(None);
    }
    // The merge's parents are the pusher's too: a render that panics refuses the
    // head (fail closed) instead of taking the sync loop down.
    pipeline::catching_panics(|| pipeline::build(snapshot))
        .map_err(|source| ApprovalError::Panicked {
            commit: rev.to_string(),
            source,
        })?
        .map(|r| Some(r.desired))
        .map_err(|source| ApprovalError::Build {
            commit: rev.to_string(),
            source,
        })
}

/// What a reviewer may have been shown for `head`: for a merge, the PR's change
/// (merge base to second parent) and the second parent against the first; for a
/// single parent, parent to head. Commits that do not render are skipped: these
/// only explain a refusal.
fn reviewed(
    repo: &Repository,
    subdir: &Path,
    head: &git2::Commit<'_>,
    desired: &DesiredSet,
) -> Vec<ChangeSet> {
    let ids: Vec<Oid> = head.parent_ids().collect();
    let rendered = |oid: Oid| render(repo, subdir, &oid.to_string()).ok();
    let mut out = Vec::new();
    match ids.as_slice() {
        [p1, p2] => {
            let pr_head = rendered(*p2).flatten();
            if let Some(pr_head) = &pr_head {
                if let Some(base) = repo.merge_base(*p1, *p2).ok().and_then(rendered) {
                    out.push(change_set(base.as_ref(), pr_head));
                }
                if let Some(first) = rendered(*p1) {
                    out.push(change_set(first.as_ref(), pr_head));
                }
            }
        }
        [p] => {
            if let Some(parent) = rendered(*p) {
                out.push(change_set(parent.as_ref(), desired));
            }
        }
        _ => {}
    }
    out
}

/// Whether `head` (rendered as `desired`) may be applied after `last_applied`.
///
/// # Errors
/// [`ApprovalError::Unapproved`] with what differs from the approval; the other
/// variants when the base of the change cannot be rendered (fail closed: refused).
pub fn check(
    repo: &Repository,
    subdir: &Path,
    head: &str,
    desired: &DesiredSet,
    last_applied: Option<&str>,
) -> Result<(), ApprovalError> {
    let base = match last_applied {
        Some(sha) => render(repo, subdir, sha)?,
        None => None,
    };
    let actual = change_set(base.as_ref(), desired);
    let commit =
        super::source::resolve_commit(repo, head).map_err(|source| ApprovalError::Read {
            commit: head.to_string(),
            source,
        })?;
    // A message that is not UTF-8 carries no trailer drover can read.
    let approved = commit.message().ok().and_then(trailer);
    if decide(approved, &actual, &[]).is_ok() {
        return Ok(());
    }
    // Refused: find what the reviewer saw, to say what differs.
    let candidates = match approved {
        Some(_) => reviewed(repo, subdir, &commit, desired),
        None => Vec::new(),
    };
    decide(approved, &actual, &candidates).map_err(ApprovalError::from)
}
