//! One function per subcommand. Each returns an [`Exit`] or an error; `main` maps
//! them to the process exit code.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::core::diag::Diagnostics;
use crate::core::fleet::Fleet;
use crate::core::limits::LIMITS;
use crate::core::render::{DesiredSet, RenderContext, render};
use crate::core::validate::load_fleet;
use crate::shell::source::{self, CommitInfo, FleetLocation};

pub mod apply;
pub mod diff;
pub mod history;
pub mod plan;
pub mod render;
pub mod sync;
pub mod validate;

/// Process exit status, `terraform plan -detailed-exitcode` style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success, nothing to change.
    Ok = 0,
    /// Failure.
    Failure = 1,
    /// Success, changes present.
    Changes = 2,
}

/// Where the fleet comes from, shared by most subcommands.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// The fleet repository (or a directory inside it)
    #[arg(long, default_value = ".", value_name = "PATH")]
    pub repo: PathBuf,
    /// Read the files of this commit (default HEAD in a git repository)
    #[arg(long, value_name = "REV", conflicts_with = "worktree")]
    pub rev: Option<String>,
    /// Read the working tree's files, including uncommitted changes
    #[arg(long)]
    pub worktree: bool,
}

/// A fleet read, validated and rendered.
pub struct Loaded {
    pub commit: Option<CommitInfo>,
    pub fleet: Fleet,
    pub desired: DesiredSet,
}

/// An invalid fleet: the diagnostics have been printed; the command fails.
#[derive(Debug, thiserror::Error)]
#[error("the fleet is invalid: {count} problem(s) found; nothing was applied")]
pub struct InvalidFleet {
    pub count: usize,
}

/// Prints diagnostics to stderr, one per line.
pub fn print_diagnostics(d: &Diagnostics) {
    let style = crate::ui::stderr_style();
    for e in &d.0 {
        eprintln!("{} {e}", style.red("error:"));
    }
}

/// Reads, validates and renders the fleet at `loc`.
///
/// # Errors
/// Source errors, and [`InvalidFleet`] after printing every diagnostic.
pub fn load_location(loc: &FleetLocation) -> anyhow::Result<Loaded> {
    let (commit, files) = source::read(loc, &LIMITS)?;
    let fleet = match load_fleet(&files, &LIMITS) {
        Ok(f) => f,
        Err(d) => {
            print_diagnostics(&d);
            return Err(InvalidFleet { count: d.len() }.into());
        }
    };
    let ctx = RenderContext {
        commit: commit.as_ref().map(|c| c.sha.clone()),
    };
    let desired = render(&fleet, &ctx, LIMITS.max_rendered_bytes).context("rendering the fleet")?;
    Ok(Loaded {
        commit,
        fleet,
        desired,
    })
}

/// Reads, validates and renders the fleet named by the CLI arguments.
///
/// # Errors
/// See [`load_location`].
pub fn load(args: &FleetArgs) -> anyhow::Result<Loaded> {
    let loc = source::locate(&args.repo, args.rev.as_deref(), args.worktree)?;
    load_location(&loc)
}

/// Output format of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text, coloured on a terminal
    Text,
    /// The `drover.dev/plan/v1` JSON schema
    Json,
    /// A pull-request comment
    Markdown,
}

/// Formats a plan for stdout.
pub fn format_plan(plan: &crate::core::plan::Plan, format: Format) -> String {
    use crate::core::report;
    match format {
        Format::Text => report::text::render(plan, crate::ui::stdout_style()),
        Format::Json => report::json::render(plan),
        Format::Markdown => report::markdown::render(plan),
    }
}

/// Which cluster to talk to.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The kubeconfig context (default: the current context, or in-cluster config)
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

/// Connects to the cluster of a loaded fleet, gathers the live side and plans.
///
/// # Errors
/// When the cluster cannot be reached or read.
pub async fn live_plan(
    loaded: &Loaded,
    cluster: &ClusterArgs,
    dry_run_all: bool,
) -> anyhow::Result<(
    crate::shell::cluster::Cluster,
    crate::shell::live::Gathered,
    crate::core::plan::Plan,
)> {
    let fleet = &loaded.fleet;
    let cluster = crate::shell::cluster::Cluster::connect(
        cluster.context.as_deref(),
        &fleet.namespace,
        &fleet.name,
    )
    .await
    .context("connecting to the cluster")?;
    let gathered = crate::shell::live::gather(&cluster, &loaded.desired, dry_run_all).await?;
    let p = crate::core::plan::plan(
        fleet,
        &loaded.desired,
        gathered.comparisons(&loaded.desired),
        Some(&gathered.nodes),
        crate::core::plan::PlanMeta {
            base: None,
            head: loaded.commit.as_ref().map(|c| c.sha.clone()),
        },
    );
    Ok((cluster, gathered, p))
}

/// A runtime for the commands that talk to a cluster.
///
/// # Errors
/// When the runtime cannot start.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Renders any commit of the fleet's repository, for rollback to the objects of the
/// commit a DaemonSet came from.
pub struct GitPrevious {
    pub repo: PathBuf,
    pub subdir: PathBuf,
    cache: std::sync::Mutex<std::collections::BTreeMap<String, Option<DesiredSet>>>,
}

impl GitPrevious {
    pub fn new(repo: PathBuf, subdir: PathBuf) -> Self {
        GitPrevious {
            repo,
            subdir,
            cache: Default::default(),
        }
    }

    fn render_commit(&self, commit: &str) -> Option<DesiredSet> {
        let repo = git2::Repository::open(&self.repo).ok()?;
        let c = source::resolve_commit(&repo, commit).ok()?;
        let files = source::read_commit(&repo, &c, &self.subdir, &LIMITS).ok()?;
        let fleet = load_fleet(&files, &LIMITS).ok()?;
        render(
            &fleet,
            &RenderContext {
                commit: Some(c.id().to_string()),
            },
            LIMITS.max_rendered_bytes,
        )
        .ok()
    }
}

impl crate::shell::apply::PreviousObjects for GitPrevious {
    fn manifest(&self, commit: &str, name: &str) -> Option<serde_json::Value> {
        let mut cache = self.cache.lock().ok()?;
        let set = cache
            .entry(commit.to_string())
            .or_insert_with(|| self.render_commit(commit));
        set.as_ref()?
            .items
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.manifest.clone())
    }
}

/// No previous objects: rollback of a working-tree apply is not possible.
pub struct NoPrevious;

impl crate::shell::apply::PreviousObjects for NoPrevious {
    fn manifest(&self, _: &str, _: &str) -> Option<serde_json::Value> {
        None
    }
}
