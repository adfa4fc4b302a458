//! The pure half of the one pipeline every command runs: a fleet's files (at a
//! commit, or as a working tree has them) → a validated fleet → its rendered set.
//!
//! Owns: the order of the steps (load, validate, render, with the commit's sha as
//! the render context) and what a failure of each is. Must not: read files or git;
//! the shell's `pipeline` gathers the [`FleetSnapshot`] and hands it here.

use crate::audit::CommitRecord;
use crate::diag::Diagnostics;
use crate::fleet::Fleet;
use crate::limits::Limits;
use crate::load::SourceFile;
use crate::render::{DesiredSet, RenderContext, RenderError, render, render_trees};
use crate::validate::load_fleet;

/// A fleet's files as one source holds them, and the commit they were read from
/// (`None` for a working tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSnapshot {
    pub commit: Option<CommitRecord>,
    /// Sorted by path.
    pub files: Vec<SourceFile>,
}

/// A fleet read, validated and rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub commit: Option<CommitRecord>,
    /// Files under `companions/` and `config/`: not fleet documents (the
    /// companions are read into [`Fleet::companions`]).
    pub reserved_files: usize,
    pub fleet: Fleet,
    pub desired: DesiredSet,
}

impl Rendered {
    /// The sha of the commit it was rendered from.
    pub fn sha(&self) -> Option<&str> {
        self.commit.as_ref().map(|c| c.sha.as_str())
    }
}

/// Which pure step refused a snapshot.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum BuildError {
    /// Loading or validating found problems; every one of them, sorted.
    #[error("the fleet is invalid: {} problem(s) found", diagnostics.len())]
    InvalidFleet { diagnostics: Diagnostics },
    /// The fleet is valid but its rendered set is not (too large, a name clash).
    #[error("rendering the fleet")]
    Render { source: RenderError },
}

/// Validates and renders a snapshot. Deterministic: the same snapshot gives the same
/// bytes.
///
/// # Errors
/// [`BuildError::InvalidFleet`] with every diagnostic, or [`BuildError::Render`].
pub fn build(snapshot: FleetSnapshot, limits: &Limits) -> Result<Rendered, BuildError> {
    build_as(snapshot, limits, false)
}

/// [`build`] with each manifest kept as a tree ([`crate::render::render_trees`]):
/// for the offline diff, which compares two renders and nothing else.
///
/// # Errors
/// As [`build`].
pub fn build_trees(snapshot: FleetSnapshot, limits: &Limits) -> Result<Rendered, BuildError> {
    build_as(snapshot, limits, true)
}

fn build_as(snapshot: FleetSnapshot, limits: &Limits, trees: bool) -> Result<Rendered, BuildError> {
    let FleetSnapshot { commit, files } = snapshot;
    let fleet = load_fleet(&files, limits)
        .map_err(|diagnostics| BuildError::InvalidFleet { diagnostics })?;
    let reserved_files = files
        .iter()
        .filter(|f| crate::load::is_reserved(&f.path))
        .count();
    drop(files);
    let ctx = RenderContext {
        commit: commit.as_ref().map(|c| c.sha.clone()),
    };
    let desired = if trees {
        render_trees(&fleet, &ctx, limits.max_rendered_bytes)
    } else {
        render(&fleet, &ctx, limits.max_rendered_bytes)
    }
    .map_err(|source| BuildError::Render { source })?;
    Ok(Rendered {
        commit,
        reserved_files,
        fleet,
        desired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LIMITS;
    use crate::render::ANN_COMMIT;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    fn fleet_files() -> Vec<SourceFile> {
        vec![
            file(
                "drover.yaml",
                "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {name: f}\nspec:\n  namespace: ns\n  groups: [every]\n  stages:\n    - {name: all, groups: [every]}\n",
            ),
            file(
                "groups/every.yaml",
                "apiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {name: every}\nspec:\n  selector: {}\n",
            ),
            file(
                "daemons/agent.yaml",
                "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: agent}\nspec:\n  image: registry.example/agent:v1\n",
            ),
        ]
    }

    fn commit(sha: &str) -> CommitRecord {
        CommitRecord {
            sha: sha.into(),
            parents: vec![],
            author: "a <a@x>".into(),
            committer: "a <a@x>".into(),
            subject: "s".into(),
            time: 0,
            signature: crate::trust::SignatureStatus::Unsigned,
            verification: None,
        }
    }

    fn commit_annotation(r: &Rendered) -> Option<String> {
        r.desired.items[0]
            .manifest
            .value()
            .pointer(&format!(
                "/metadata/annotations/{}",
                ANN_COMMIT.replace('/', "~1")
            ))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    #[test]
    fn a_commit_snapshot_renders_with_its_sha_and_keeps_its_record() {
        let sha = "a".repeat(40);
        let r = build(
            FleetSnapshot {
                commit: Some(commit(&sha)),
                files: fleet_files(),
            },
            &LIMITS,
        )
        .expect("valid");
        assert_eq!(r.sha(), Some(sha.as_str()));
        assert_eq!(r.fleet.name, "f");
        assert_eq!(r.desired.items.len(), 1);
        assert_eq!(commit_annotation(&r).as_deref(), Some(sha.as_str()));
    }

    #[test]
    fn a_working_tree_snapshot_renders_without_a_commit() {
        let r = build(
            FleetSnapshot {
                commit: None,
                files: fleet_files(),
            },
            &LIMITS,
        )
        .expect("valid");
        assert_eq!(r.sha(), None);
        assert_eq!(commit_annotation(&r).as_deref(), Some("worktree"));
    }

    #[test]
    fn an_invalid_snapshot_gives_every_diagnostic_and_no_render() {
        let mut files = fleet_files();
        files[2] = file(
            "daemons/agent.yaml",
            "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: agent}\nspec:\n  image: registry.example/agent:v1\n  groups: [nope]\n",
        );
        files.push(file(
            "daemons/other.yaml",
            "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: other}\nspec:\n  imagee: x\n",
        ));
        let e = build(
            FleetSnapshot {
                commit: None,
                files,
            },
            &LIMITS,
        )
        .unwrap_err();
        let BuildError::InvalidFleet { diagnostics } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(diagnostics.len(), 2, "{diagnostics:?}");
        let paths: Vec<&str> = diagnostics.0.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["daemons/agent.yaml", "daemons/other.yaml"]);
        assert_eq!(e.to_string(), "the fleet is invalid: 2 problem(s) found");
    }

    #[test]
    fn a_render_past_the_size_limit_is_a_render_error() {
        let limits = Limits {
            max_rendered_bytes: 10,
            ..LIMITS
        };
        let e = build(
            FleetSnapshot {
                commit: None,
                files: fleet_files(),
            },
            &limits,
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                BuildError::Render {
                    source: RenderError::TooLarge { .. }
                }
            ),
            "{e:?}"
        );
    }
}
