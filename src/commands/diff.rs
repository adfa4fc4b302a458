//! `drover diff`: the plan between two commits of the fleet repository, rendered
//! straight from git objects: no checkout, no cluster, no credentials.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{Exit, InvalidFleet, format_plan, print_diagnostics};
use crate::core::approval::change_set;
use crate::core::plan::{
    NodeInfo, Plan, PlanMeta, compare_companions, compare_renders_owned, parse_node_list, plan,
    plan_companions,
};
use crate::core::snapshot::{BuildError, Rendered};
use crate::core::trust::Verification;
use crate::settings::DiffSettings;
use crate::shell::signature;
use crate::shell::{pipeline, source};

#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// The revision to compare from (e.g. origin/main)
    #[arg(long, value_name = "REV")]
    pub base: String,
    /// The revision to compare to
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub head: String,
    /// The fleet repository (or the fleet's directory inside it)
    #[arg(long, default_value = ".", value_name = "PATH")]
    pub repo: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
    /// A node list (`kubectl get nodes -o yaml`) to count the nodes each change
    /// restarts pods on
    #[arg(long, value_name = "FILE")]
    pub nodes: Option<PathBuf>,
    /// OpenSSH allowed-signers file to verify the head commit's SSH signature with
    #[arg(long, value_name = "FILE", env = "DROVER_ALLOWED_SIGNERS")]
    pub allowed_signers: Option<PathBuf>,
    /// Armoured OpenPGP public keys to verify the head commit's OpenPGP signature with
    #[arg(long, value_name = "FILE", env = "DROVER_TRUSTED_KEYS")]
    pub trusted_keys: Option<PathBuf>,
}

/// The head commit's signature: verified against the trust sources given, else
/// only whether there is one.
fn head_signature(settings: &DiffSettings) -> anyhow::Result<Option<Verification>> {
    let Ok(repo) = git2::Repository::discover(&settings.repo) else {
        return Ok(None);
    };
    let oid = repo
        .revparse_single(&settings.head)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .with_context(|| format!("resolving the head revision `{}`", settings.head))?;
    let c = signature::check(&settings.trust, &repo, None, oid, jiff::Timestamp::now())
        .context("reading the trust sources")?;
    Ok(Some(c.head))
}

struct Side {
    sha: String,
    rendered: Option<Rendered>,
}

/// Reads, validates and renders the fleet at `rev`. A base revision without any
/// fleet file (the commit before the fleet was added) renders to nothing.
fn load_rev(repo: &Path, rev: &str, which: &str) -> anyhow::Result<Side> {
    let loc = source::locate(repo, Some(rev), false)?;
    let snapshot = pipeline::read(&loc)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("reading the {which} revision `{rev}`"))?;
    let sha = snapshot
        .commit
        .as_ref()
        .map(|c| c.sha.clone())
        .unwrap_or_default();
    if snapshot.files.is_empty() && which == "base" {
        return Ok(Side {
            sha,
            rendered: None,
        });
    }
    // It carries config files too: each changed file's own diff.
    match pipeline::build_trees(snapshot) {
        Ok(r) => Ok(Side {
            sha,
            rendered: Some(r),
        }),
        Err(BuildError::InvalidFleet { diagnostics }) => {
            print_diagnostics(&diagnostics);
            Err(anyhow::Error::new(InvalidFleet {
                count: diagnostics.len(),
            })
            .context(format!("the {which} revision `{rev}` is invalid")))
        }
        Err(BuildError::Render { source }) => {
            Err(anyhow::Error::new(source)
                .context(format!("rendering the {which} revision `{rev}`")))
        }
    }
}

/// The plan between two revisions of the fleet repository at `repo`, from git
/// objects only. `nodes` enables the blast radius.
///
/// # Errors
/// When a revision cannot be read, or either revision's fleet is invalid (head
/// first; the diagnostics are printed to stderr).
pub fn plan_revisions(
    repo: &Path,
    base: &str,
    head: &str,
    nodes: Option<&[NodeInfo]>,
) -> anyhow::Result<Plan> {
    let head = load_rev(repo, head, "head")?;
    let base = load_rev(repo, base, "base")?;
    let Some(Rendered {
        fleet, mut desired, ..
    }) = head.rendered
    else {
        unreachable!("a head revision always has a fleet or fails");
    };
    // Both renders serve only this plan: their manifests move into the comparisons
    // rather than being copied, and each is freed once its DaemonSet is planned.
    let changes = change_set(base.rendered.as_ref().map(|r| &r.desired), &desired);
    let companions = plan_companions(compare_companions(
        base.rendered
            .as_ref()
            .map_or(&[][..], |r| r.desired.companions.as_slice()),
        &desired.companions,
    ));
    let config_files = crate::core::config_diff::plan_config_files(
        &fleet,
        base.rendered.as_ref().map(|r| &r.desired),
        &desired,
    );
    let comparisons = compare_renders_owned(base.rendered.map(|r| r.desired), &mut desired);
    let mut p = plan(
        &fleet,
        &desired,
        comparisons,
        nodes,
        PlanMeta {
            base: Some(base.sha),
            head: Some(head.sha),
            without_diffs: false,
        },
    );
    p.plan_digest = Some(changes.digest());
    p.companions = companions;
    crate::core::plan::assign_companion_stages(&mut p);
    p.config_files = config_files;
    crate::core::config_diff::annotate_actions(&mut p);
    Ok(p)
}

/// # Errors
/// See [`plan_revisions`]; also when the node list cannot be read.
pub fn run(args: &DiffArgs) -> anyhow::Result<Exit> {
    diff(&DiffSettings::resolve(args)?)
}

/// # Errors
/// See [`run`].
pub fn diff(settings: &DiffSettings) -> anyhow::Result<Exit> {
    // Read the node list first: a typo in its path should not wait for two renders.
    let nodes = match &settings.nodes {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading the node list {}", p.display()))?;
            Some(parse_node_list(&text).with_context(|| format!("{}", p.display()))?)
        }
        None => None,
    };
    let mut p = plan_revisions(
        &settings.repo,
        &settings.base,
        &settings.head,
        nodes.as_deref(),
    )?;
    p.head_signature = head_signature(settings)?;
    print!("{}", format_plan(&p, settings.format));
    Ok(if p.has_changes() {
        Exit::Changes
    } else {
        Exit::Ok
    })
}
