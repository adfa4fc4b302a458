//! The one pipeline: a commit (or a working tree) → a validated fleet → a rendered
//! set → a plan against the live cluster. validate, render, diff, plan, apply, sync
//! and rollback all read a fleet through here.
//!
//! Steps, each with its own error: open the repository and resolve the revision
//! ([`open_repo`], [`open_commit`]), read the fleet's files ([`OpenCommit::read`],
//! [`read`]), validate and render them (the core's pure
//! [`crate::core::snapshot::build`], through [`build`]), then gather the live side
//! and plan ([`plan_live`]). [`load`] runs the first three for a [`FleetLocation`];
//! [`PastRenders`] runs them for any past commit, for rollback.
//!
//! Owns: the order of the steps and which one failed ([`PipelineError`]). Must not:
//! print, or decide what a failure means (a command reports it; the sync loop
//! records the commit as refused).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use git2::Repository;
use serde_json::Value as JsonValue;

use super::apply::PreviousObjects;
use super::cluster::{Cluster, ClusterError};
use super::live::{Gathered, gather, gather_companions};
use super::source::{self, FleetLocation, SourceError};
use crate::core::audit::CommitRecord;
use crate::core::limits::LIMITS;
use crate::core::plan::{Plan, PlanMeta};
use crate::core::render::{DesiredSet, Manifest};
use crate::core::snapshot::{BuildError, FleetSnapshot, Rendered};
use crate::settings::FleetSettings;

/// Which step of reading, validating and rendering a fleet failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The repository cannot be opened, or the revision names no commit.
    #[error(transparent)]
    ResolveCommit { source: SourceError },
    /// The commit's tree or the directory cannot be read, or holds what drover
    /// refuses to read (a symlink, a submodule, a file past the size limit).
    #[error(transparent)]
    ReadSource { source: SourceError },
    /// The files do not make a valid fleet: every problem found, sorted.
    #[error("the fleet is invalid: {} problem(s) found", diagnostics.len())]
    InvalidFleet {
        diagnostics: crate::core::diag::Diagnostics,
    },
    /// The fleet is valid but its rendered set is not.
    #[error("rendering the fleet")]
    Render {
        source: crate::core::render::RenderError,
    },
    /// A step panicked (a bug in drover), caught by [`catching_panics`].
    #[error(transparent)]
    Panicked { source: Panicked },
}

impl From<BuildError> for PipelineError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::InvalidFleet { diagnostics } => PipelineError::InvalidFleet { diagnostics },
            BuildError::Render { source } => PipelineError::Render { source },
        }
    }
}

/// A panic while reading, validating or rendering a commit, caught by
/// [`catching_panics`]: the message it carried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "drover panicked while reading the commit ({}); the commit is refused and this is a bug in drover",
    crate::core::diag::escape_control(message)
)]
pub struct Panicked {
    pub message: String,
}

/// Runs one step of the pipeline, turning a panic into [`Panicked`]. No input may
/// panic; this is for the long-running loop, which must outlive a bug: the commit
/// that hit it is refused, the loop goes on. (The panic hook still prints the panic
/// to stderr.)
///
/// # Errors
/// [`Panicked`] with the panic's message, when `f` panicked.
pub fn catching_panics<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| Panicked {
        message: panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into()),
    })
}

/// Where the settings say the fleet is: a commit of the git repository around
/// `repo` (`HEAD` unless a revision is given), or the directory's files.
///
/// # Errors
/// When a revision is given for a path outside a git repository.
pub fn locate(fleet: &FleetSettings) -> Result<FleetLocation, SourceError> {
    source::locate(&fleet.repo, fleet.rev(), fleet.worktree())
}

/// Opens a repository (a work tree's or a bare one, such as the sync mirror).
///
/// # Errors
/// [`SourceError::OpenRepo`].
pub fn open_repo(path: &Path) -> Result<Repository, SourceError> {
    Repository::open(path).map_err(|source| SourceError::OpenRepo {
        path: path.to_path_buf(),
        source,
    })
}

/// A commit resolved for reading, and what drover records about it.
pub struct OpenCommit<'r> {
    repo: &'r Repository,
    commit: git2::Commit<'r>,
    pub record: CommitRecord,
}

/// Resolves `rev` to a commit of `repo`.
///
/// # Errors
/// [`SourceError::ResolveRev`] when it names no commit.
pub fn open_commit<'r>(repo: &'r Repository, rev: &str) -> Result<OpenCommit<'r>, SourceError> {
    let commit = source::resolve_commit(repo, rev)?;
    let record = source::commit_record(repo, &commit);
    Ok(OpenCommit {
        repo,
        commit,
        record,
    })
}

impl OpenCommit<'_> {
    /// The fleet's files under `subdir` of the commit's tree, from git objects only.
    ///
    /// # Errors
    /// See [`source::read_commit`].
    pub fn read(&self, subdir: &Path) -> Result<FleetSnapshot, SourceError> {
        let files = source::read_commit(self.repo, &self.commit, subdir, &LIMITS)?;
        Ok(FleetSnapshot {
            commit: Some(self.record.clone()),
            files,
        })
    }
}

/// The files of a located fleet, and the commit when there is one.
///
/// # Errors
/// [`PipelineError::ResolveCommit`] or [`PipelineError::ReadSource`].
pub fn read(loc: &FleetLocation) -> Result<FleetSnapshot, PipelineError> {
    match loc {
        FleetLocation::Dir(dir) => Ok(FleetSnapshot {
            commit: None,
            files: source::read_worktree(dir, &LIMITS)
                .map_err(|source| PipelineError::ReadSource { source })?,
        }),
        FleetLocation::Git { repo, subdir, rev } => {
            let repo = open_repo(repo).map_err(|source| PipelineError::ResolveCommit { source })?;
            let commit = open_commit(&repo, rev)
                .map_err(|source| PipelineError::ResolveCommit { source })?;
            commit
                .read(subdir)
                .map_err(|source| PipelineError::ReadSource { source })
        }
    }
}

/// Validates and renders a snapshot with drover's limits (the core's pure step),
/// companion objects included.
///
/// # Errors
/// [`BuildError`].
pub fn build(snapshot: FleetSnapshot) -> Result<Rendered, BuildError> {
    crate::core::snapshot::build(snapshot, &LIMITS)
}

/// [`build`] with the manifests kept as trees, for a caller that only compares
/// renders (the offline diff; see [`crate::core::render::render_trees`]).
///
/// # Errors
/// [`BuildError`].
pub fn build_trees(snapshot: FleetSnapshot) -> Result<Rendered, BuildError> {
    crate::core::snapshot::build_trees(snapshot, &LIMITS)
}

/// Reads, validates and renders the fleet at `loc` (see [`build`]).
///
/// # Errors
/// The first step that failed.
pub fn load(loc: &FleetLocation) -> Result<Rendered, PipelineError> {
    Ok(build(read(loc)?)?)
}

/// Gathers the live side of a rendered fleet and plans it, companion objects
/// included (each assigned the stage it is applied before): the read-only half of
/// `plan`, `apply` and every sync iteration. `base` is the commit the plan says it
/// starts from, when one is known; `previous_fleets` are names the fleet had
/// before, whose DaemonSets it owns too (see [`gather`]).
///
/// # Errors
/// When the cluster cannot be read (see [`gather`]).
pub async fn plan_live(
    cluster: &Cluster,
    rendered: &Rendered,
    base: Option<String>,
    opts: LivePlan<'_>,
) -> Result<(Gathered, Plan), ClusterError> {
    let mut gathered = gather(
        cluster,
        &rendered.desired,
        opts.dry_run_all,
        opts.without_diffs,
        opts.previous_fleets,
    )
    .await?;
    // Listed while git has companions, or the base had some (the last one removed
    // from git is pruned); a fleet that never had any costs no LISTs.
    // Config ConfigMaps go the same way (docs/config-files.md), and are also
    // listed while a live DaemonSet mounts one or some may be left in the cluster
    // (the last config file removed from git leaves its ConfigMap to a later run,
    // which finds it here).
    let mut list = !rendered.desired.companions.is_empty()
        || opts.base_has_companions
        || !rendered.desired.config_maps.is_empty()
        || gathered.live.values().any(|l| !l.config_maps.is_empty());
    if !list {
        list = match opts.config_maps_left {
            Some(known) => known,
            None => {
                let mut fleets = vec![rendered.fleet.name.clone()];
                fleets.extend(opts.previous_fleets.iter().cloned());
                fleets.dedup();
                cluster
                    .has_config_maps(&rendered.fleet.namespace, &fleets)
                    .await?
            }
        };
    }
    if list {
        let mut namespaces = vec![rendered.fleet.namespace.clone()];
        for ns in &rendered.fleet.companion_namespaces {
            if !namespaces.contains(ns) {
                namespaces.push(ns.clone());
            }
        }
        gather_companions(
            cluster,
            &rendered.desired,
            &namespaces,
            opts.previous_fleets,
            &mut gathered,
        )
        .await?;
    }
    let mut plan = plan(rendered, &gathered, base, opts.without_diffs);
    plan.companions = crate::core::plan::plan_companions(std::mem::take(&mut gathered.companions));
    if !rendered.desired.config_maps.is_empty() || !gathered.config_maps.is_empty() {
        super::live::plan_config_files(&mut plan, rendered, &gathered);
    }
    crate::core::plan::assign_companion_stages(&mut plan);
    Ok((gathered, plan))
}

/// How [`plan_live`] plans.
#[derive(Debug, Clone, Copy, Default)]
pub struct LivePlan<'a> {
    /// Dry-run every desired DaemonSet, even those already current.
    pub dry_run_all: bool,
    /// Names the fleet had before, whose DaemonSets it owns too.
    pub previous_fleets: &'a [String],
    /// No unified diffs: the caller shows none (see [`PlanMeta::without_diffs`]).
    pub without_diffs: bool,
    /// The commit the plan starts from had companion objects, or it is not known
    /// (`plan`, `apply`): they are listed (and those git no longer has pruned) even
    /// when the fleet has none now.
    pub base_has_companions: bool,
    /// Whether config ConfigMaps of the fleet may be left in the cluster by an
    /// earlier commit: `Some` when the caller knows (a running sync remembers what
    /// its last iteration saw, see [`config_maps_left`]), `None` to ask the cluster
    /// (one metadata LIST, only when nothing else lists them).
    pub config_maps_left: Option<bool>,
}

/// What a sync iteration remembers for the next one's [`LivePlan::config_maps_left`]:
/// whether the fleet's config ConfigMaps were listed and some existed, or git has
/// some. One that this iteration prunes makes the next one look once more.
pub fn config_maps_left(rendered: &Rendered, gathered: &Gathered) -> bool {
    !rendered.desired.config_maps.is_empty() || !gathered.config_maps.is_empty()
}

/// The core's plan of a rendered fleet against what was gathered.
#[tracing::instrument(name = "plan", skip_all, fields(commit = %rendered.sha().unwrap_or("worktree"), fleet = %rendered.fleet.name))]
fn plan(
    rendered: &Rendered,
    gathered: &Gathered,
    base: Option<String>,
    without_diffs: bool,
) -> Plan {
    crate::core::plan::plan(
        &rendered.fleet,
        &rendered.desired,
        gathered.comparisons(&rendered.desired),
        Some(&gathered.nodes),
        PlanMeta {
            base,
            head: rendered.sha().map(str::to_string),
            without_diffs,
        },
    )
}

/// Past commits' renders, for rollback: the object a DaemonSet had at the commit it
/// came from (its `drover.dev/commit` annotation). Each commit is rendered once and
/// kept for the life of the value, since a rollback asks for many DaemonSets of one
/// commit.
pub struct PastRenders {
    /// The repository and the fleet's directory in it; `None` for a working tree,
    /// which has no past commits.
    repo: Option<(PathBuf, PathBuf)>,
    cache: Mutex<BTreeMap<String, Option<DesiredSet>>>,
}

impl PastRenders {
    /// Renders past commits of the repository at `repo` (a work tree or a bare
    /// mirror), reading the fleet from `subdir`.
    pub fn of_repo(repo: PathBuf, subdir: PathBuf) -> PastRenders {
        PastRenders {
            repo: Some((repo, subdir)),
            cache: Mutex::default(),
        }
    }

    /// No past commits: a working tree's apply cannot be rolled back.
    pub fn none() -> PastRenders {
        PastRenders {
            repo: None,
            cache: Mutex::default(),
        }
    }

    /// The past commits of where a command read its fleet.
    pub fn for_location(loc: &FleetLocation) -> PastRenders {
        match loc {
            FleetLocation::Git { repo, subdir, .. } => {
                PastRenders::of_repo(repo.clone(), subdir.clone())
            }
            FleetLocation::Dir(_) => PastRenders::none(),
        }
    }

    /// The whole render of `commit`; `None` when there is no repository or the
    /// commit cannot be read, is invalid, or does not render (logged).
    fn render(&self, commit: &str) -> Option<DesiredSet> {
        let (repo, subdir) = self.repo.as_ref()?;
        // A commit that cannot be rendered, panic included, has no objects to roll
        // back to.
        let rendered = catching_panics(|| -> Result<Rendered, PipelineError> {
            let repo = open_repo(repo).map_err(|source| PipelineError::ResolveCommit { source })?;
            let c = open_commit(&repo, commit)
                .map_err(|source| PipelineError::ResolveCommit { source })?;
            let snapshot = c
                .read(subdir)
                .map_err(|source| PipelineError::ReadSource { source })?;
            Ok(build(snapshot)?)
        })
        .map_err(|source| PipelineError::Panicked { source })
        .and_then(|r| r);
        match rendered {
            Ok(r) => Some(r.desired),
            Err(e) => {
                tracing::warn!(
                    commit,
                    error = %crate::core::diag::escape_control(&crate::core::errors::chain(&e)),
                    "cannot render the previous commit for rollback"
                );
                None
            }
        }
    }
}

impl PreviousObjects for PastRenders {
    fn manifest(&self, commit: &str, name: &str) -> Option<Manifest> {
        let mut cache = self.cache.lock().ok()?;
        let set = cache
            .entry(commit.to_string())
            .or_insert_with(|| self.render(commit));
        set.as_ref()?
            .items
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.manifest.clone())
    }

    fn companion(&self, commit: &str, object: &str) -> Option<JsonValue> {
        let mut cache = self.cache.lock().ok()?;
        let set = cache
            .entry(commit.to_string())
            .or_insert_with(|| self.render(commit));
        set.as_ref()?
            .companions
            .iter()
            .find(|c| c.key() == object)
            .map(|c| c.manifest.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::test_support::{capture, example_repo, unreachable_cluster};
    use tracing::instrument::WithSubscriber as _;

    #[test]
    fn a_commit_and_its_working_tree_render_the_same_daemonsets() {
        let dir = tempfile::tempdir().unwrap();
        let sha = example_repo(dir.path());
        let committed = load(&FleetLocation::Git {
            repo: dir.path().to_path_buf(),
            subdir: "fleet".into(),
            rev: "HEAD".into(),
        })
        .expect("the commit renders");
        let worktree = load(&FleetLocation::Dir(dir.path().join("fleet"))).expect("renders");
        assert_eq!(committed.sha(), Some(sha.as_str()));
        let record = committed.commit.as_ref().unwrap();
        assert_eq!(record.subject, "the example fleet");
        assert_eq!(record.author, "t <t@example.com>");
        assert_eq!(worktree.commit, None);
        let names = |r: &Rendered| -> Vec<String> {
            r.desired.items.iter().map(|i| i.name.clone()).collect()
        };
        assert_eq!(names(&committed), names(&worktree));
        assert_eq!(committed.fleet, worktree.fleet);
    }

    #[test]
    fn each_step_names_itself_when_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        example_repo(dir.path());
        let at = |rev: &str, subdir: &str| FleetLocation::Git {
            repo: dir.path().to_path_buf(),
            subdir: subdir.into(),
            rev: rev.into(),
        };
        assert!(matches!(
            read(&at("no-such-rev", "fleet")),
            Err(PipelineError::ResolveCommit {
                source: SourceError::ResolveRev { .. }
            })
        ));
        assert!(matches!(
            read(&FleetLocation::Git {
                repo: dir.path().join("not-a-repo"),
                subdir: PathBuf::new(),
                rev: "HEAD".into()
            }),
            Err(PipelineError::ResolveCommit {
                source: SourceError::OpenRepo { .. }
            })
        ));
        assert!(matches!(
            read(&at("HEAD", "no-such-dir")),
            Err(PipelineError::ReadSource {
                source: SourceError::NoSuchDir { .. }
            })
        ));
        // The repository root holds no Fleet document: the validation step refuses.
        std::fs::write(dir.path().join("stray.yaml"), "a: 1\n").unwrap();
        assert!(matches!(
            load(&FleetLocation::Dir(dir.path().to_path_buf())),
            Err(PipelineError::InvalidFleet { .. })
        ));
    }

    #[test]
    fn a_panic_in_a_step_becomes_an_error_carrying_its_message_and_escaped_when_shown() {
        assert_eq!(catching_panics(|| 7), Ok(7));
        let e = catching_panics(|| -> u8 { panic!("bad \u{202e}input") }).unwrap_err();
        assert_eq!(e.message, "bad \u{202e}input");
        let shown = e.to_string();
        assert!(
            shown.contains("drover panicked while reading the commit"),
            "{shown}"
        );
        assert!(!shown.contains('\u{202e}'), "{shown}");
        let e = catching_panics(|| std::panic::panic_any(42_u32)).unwrap_err();
        assert_eq!(e.message, "(no message)");
    }

    #[test]
    fn past_renders_give_a_daemonset_as_its_commit_rendered_it_and_nothing_without_a_repo() {
        let dir = tempfile::tempdir().unwrap();
        let sha = example_repo(dir.path());
        let past = PastRenders::of_repo(dir.path().to_path_buf(), "fleet".into());
        let now = load(&FleetLocation::Git {
            repo: dir.path().to_path_buf(),
            subdir: "fleet".into(),
            rev: sha.clone(),
        })
        .unwrap();
        let item = &now.desired.items[0];
        assert_eq!(past.manifest(&sha, &item.name), Some(item.manifest.clone()));
        assert_eq!(past.manifest(&sha, "no-such-daemonset"), None);
        assert_eq!(past.manifest(&"0".repeat(40), &item.name), None);
        assert_eq!(PastRenders::none().manifest(&sha, &item.name), None);
    }

    #[tokio::test]
    async fn planning_opens_a_gather_span_and_a_plan_span_for_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let sha = example_repo(dir.path());
        let rendered = load(&FleetLocation::Git {
            repo: dir.path().to_path_buf(),
            subdir: "fleet".into(),
            rev: "HEAD".into(),
        })
        .unwrap();
        let (spans, dispatch) = capture();
        let cluster = unreachable_cluster(&rendered.fleet.namespace, &rendered.fleet.name);
        let gathered = plan_live(&cluster, &rendered, None, LivePlan::default())
            .with_subscriber(dispatch.clone())
            .await;
        assert!(
            gathered.is_err(),
            "nothing listens: gathering cannot succeed"
        );
        let gather = spans.named("gather");
        assert_eq!(gather.len(), 1, "{:?}", spans.all());
        assert_eq!(gather[0].fields["fleet"], "prod-eu1");
        assert_eq!(gather[0].fields["namespace"], "node-agents");
        assert_eq!(
            gather[0].fields["desired"],
            rendered.desired.items.len().to_string()
        );
        tracing::dispatcher::with_default(&dispatch, || {
            plan(&rendered, &Gathered::default(), None, false);
        });
        let planned = spans.named("plan");
        assert_eq!(planned.len(), 1, "{:?}", spans.all());
        assert_eq!(planned[0].fields["commit"], sha);
        assert_eq!(planned[0].fields["fleet"], "prod-eu1");
    }
}
