//! One function per subcommand. Each resolves its arguments into its settings
//! ([`crate::settings`]) before any I/O, runs on those alone, and returns an
//! [`Exit`] or an error; `main` maps them to the process exit code.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::core::diag::Diagnostics;
use crate::core::snapshot::Rendered;
use crate::settings::{ClusterSettings, FleetSettings};
use crate::shell::pipeline::{self, PipelineError};
use crate::shell::source::FleetLocation;

pub mod apply;
pub mod control;
pub mod diff;
pub mod history;
pub mod import;
pub mod plan;
pub mod render;
pub mod status;
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

/// A pipeline failure as a command reports it: an invalid fleet's diagnostics are
/// printed, one per line, and the command fails with their count.
pub fn pipeline_error(e: PipelineError) -> anyhow::Error {
    match e {
        PipelineError::InvalidFleet { diagnostics } => {
            print_diagnostics(&diagnostics);
            InvalidFleet {
                count: diagnostics.len(),
            }
            .into()
        }
        other => other.into(),
    }
}

/// Reads, validates and renders the fleet at `loc`.
///
/// # Errors
/// Source errors, and [`InvalidFleet`] after printing every diagnostic.
pub fn load_location(loc: &FleetLocation) -> anyhow::Result<Rendered> {
    pipeline::load(loc).map_err(pipeline_error)
}

/// Reads, validates and renders the fleet the settings name.
///
/// # Errors
/// See [`load_location`].
pub fn load(fleet: &FleetSettings) -> anyhow::Result<Rendered> {
    load_location(&pipeline::locate(fleet)?)
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

/// Which cluster to talk to, and what of it the fleet owns.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The kubeconfig context (default: the current context, or in-cluster config)
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// A name the fleet had before it was renamed: DaemonSets labelled with it are
    /// this fleet's too, and are replaced (repeatable)
    #[arg(long = "previous-fleet", value_name = "NAME", value_parser = parse_fleet_name)]
    pub previous_fleets: Vec<String>,
}

/// `--state-name` on `sync`, `status`, `history` and `audit verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct StateName {
    /// The sync's cluster copy of its state and audit trail: ConfigMaps
    /// `drover-state-<NAME>` and `drover-trail-<NAME>-<seq>` in the anchor's
    /// namespace, one per sync (each following one fleet). `status`, `history` and
    /// `audit verify` read it unless --state-dir names a local copy
    #[arg(
        long = "state-name",
        default_value = "drover",
        value_name = "NAME",
        env = "DROVER_STATE_NAME"
    )]
    pub name: String,
}

/// `--override-freeze REASON` on `sync` and `apply`: roll out through open freeze
/// windows, for the fix that cannot wait. The reason goes into the audit record.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FreezeArgs {
    /// Roll out through open freeze windows (an emergency); REASON is recorded
    #[arg(long = "override-freeze", value_name = "REASON", value_parser = parse_reason)]
    pub override_freeze: Option<String>,
}

/// A reason an operator gives: not empty, one line, at most 200 characters.
///
/// # Errors
/// A message for clap.
pub fn parse_reason(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("give a reason: it is recorded in the audit trail".into());
    }
    if t.chars().any(char::is_control) {
        return Err("the reason must be one line of text, without control characters".into());
    }
    if t.chars().count() > 200 {
        return Err("the reason is longer than 200 characters".into());
    }
    Ok(t.to_string())
}

/// A fleet name as the command line may give it: a DNS-1123 label, as
/// `metadata.name` of a Fleet must be (it goes into a label selector).
///
/// # Errors
/// A message for clap.
pub fn parse_fleet_name(s: &str) -> Result<String, String> {
    crate::core::syntax::dns_label(s)
        .map(|()| s.to_string())
        .map_err(|why| {
            format!(
                "`{}` is not a fleet name: it {why}",
                crate::core::diag::escape_control(s)
            )
        })
}

/// Connects to the cluster of a rendered fleet, gathers the live side and plans.
///
/// # Errors
/// When the cluster cannot be reached or read.
pub async fn live_plan(
    rendered: &Rendered,
    settings: &ClusterSettings,
    dry_run_all: bool,
) -> anyhow::Result<(
    crate::shell::cluster::Cluster,
    crate::shell::live::Gathered,
    crate::core::plan::Plan,
)> {
    let fleet = &rendered.fleet;
    let cluster = crate::shell::cluster::Cluster::connect(
        settings.context.as_deref(),
        &fleet.namespace,
        &fleet.name,
    )
    .await
    .context("connecting to the cluster")?;
    let (gathered, p) = pipeline::plan_live(
        &cluster,
        rendered,
        None,
        pipeline::LivePlan {
            dry_run_all,
            previous_fleets: &settings.previous_fleets,
            without_diffs: false,
            // No last applied commit is known here, so whether the fleet owns
            // companions git no longer has is not known either: they are listed
            // (one labelled LIST per companion kind and namespace), so the last one
            // removed from git is pruned by `apply` too. A sync knows its last
            // applied commit and lists them only while it or git has some.
            base_has_companions: true,
            // Asked of the cluster when nothing else lists them.
            config_maps_left: None,
        },
    )
    .await?;
    // Refused before the plan is printed: a plan that writes over objects the fleet
    // does not own is not one to show as if it could run.
    crate::core::guard::check_owned(&gathered.foreign)
        .and_then(|()| {
            crate::core::guard::check_companions_owned(&gathered.foreign_companions, &fleet.name)
        })
        .map_err(|r| anyhow::anyhow!("{r}; nothing was applied"))?;
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
