//! `drover pause`, `drover resume`: the operator's controls, written to the fleet's
//! control object in the cluster (see [`crate::shell::control`]), where every
//! replica of `drover sync` and every `drover apply` reads them before each stage.
//! The sync records each change in its audit trail.

use anyhow::Context as _;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, PostParams};

use super::{ClusterArgs, Exit, FleetArgs, runtime};
use crate::core::control::Change;
use crate::settings::{ControlSettings, process_env};
use crate::shell::cluster::Cluster;
use crate::shell::control::ControlStore;

#[derive(Debug, Clone, clap::Args)]
pub struct PauseArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Why, for the audit trail and `drover status`
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// The commit to go back to (default: the last commit applied before the
    /// current one, from the audit trail in --state-dir)
    #[arg(long, value_name = "COMMIT")]
    pub to: Option<String>,
    /// The state directory of `drover sync`, for the default --to
    #[arg(long, value_name = "DIR", env = "DROVER_STATE_DIR")]
    pub state_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// What a control command does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlAction {
    Pause {
        reason: String,
    },
    Resume,
    /// Hold the sync on an earlier commit (`to`, else the default from the trail).
    Rollback {
        to: Option<String>,
        state_dir: Option<std::path::PathBuf>,
    },
}

/// # Errors
/// See [`pause`]; also a commit that cannot be found, or no default to go back to.
pub fn rollback(args: &RollbackArgs) -> anyhow::Result<Exit> {
    let settings = ControlSettings::resolve(
        &args.fleet,
        &args.cluster,
        ControlAction::Rollback {
            to: args.to.clone(),
            state_dir: args.state_dir.clone(),
        },
        &process_env,
    );
    control(&settings)
}

/// The full sha of the commit a rollback goes back to: `to` resolved in the fleet
/// repository, else the last commit the trail records applied before the one
/// applied now.
fn rollback_target(
    fleet: &crate::settings::FleetSettings,
    to: Option<&str>,
    state_dir: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    let rev = match (to, state_dir) {
        (Some(to), _) => to.to_string(),
        (None, Some(dir)) => {
            let records = crate::shell::audit::AuditLog::in_dir(dir).verify(None)?;
            let applied: Vec<&str> = records
                .iter()
                .filter(|r| {
                    r.control.is_none() && r.outcome == crate::core::rollout::Outcome::Applied
                })
                .map(|r| r.commit.sha.as_str())
                .collect();
            let current = applied.last().copied();
            applied
                .iter()
                .rev()
                .find(|c| Some(**c) != current)
                .map(|c| (*c).to_string())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "the audit trail in {} records no commit applied before the current one; give --to COMMIT",
                        dir.display()
                    )
                })?
        }
        (None, None) => anyhow::bail!(
            "give --to COMMIT, or --state-dir for the default (the last commit applied before the current one)"
        ),
    };
    let repo = git2::Repository::discover(&fleet.repo)
        .with_context(|| format!("opening the fleet repository {}", fleet.repo.display()))?;
    let commit = repo
        .revparse_single(&rev)
        .and_then(|o| o.peel_to_commit())
        .with_context(|| format!("no commit {rev} in {}", fleet.repo.display()))?;
    Ok(commit.id().to_string())
}

/// # Errors
/// The fleet cannot be read, or the cluster's control object cannot be written.
pub fn pause(args: &PauseArgs) -> anyhow::Result<Exit> {
    let settings = ControlSettings::resolve(
        &args.fleet,
        &args.cluster,
        ControlAction::Pause {
            reason: args.reason.clone().unwrap_or_default(),
        },
        &process_env,
    );
    control(&settings)
}

/// # Errors
/// See [`pause`].
pub fn resume(args: &ResumeArgs) -> anyhow::Result<Exit> {
    let settings = ControlSettings::resolve(
        &args.fleet,
        &args.cluster,
        ControlAction::Resume,
        &process_env,
    );
    control(&settings)
}

/// Connects to the fleet's cluster, scoped to the fleet the settings name.
///
/// # Errors
/// The fleet cannot be read or the cluster cannot be reached.
pub async fn fleet_cluster(
    settings: &crate::settings::FleetSettings,
    cluster: &crate::settings::ClusterSettings,
) -> anyhow::Result<Cluster> {
    let rendered = super::load(settings)?;
    let fleet = &rendered.fleet;
    Cluster::connect(cluster.context.as_deref(), &fleet.namespace, &fleet.name)
        .await
        .context("connecting to the cluster")
}

/// Who the cluster says we are (`SelfSubjectReview`), else the local user.
async fn whoami(cluster: &Cluster, local: &str) -> String {
    let api: Api<SelfSubjectReview> = Api::all(cluster.client.clone());
    match api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(r) => r
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .unwrap_or_else(|| local.to_string()),
        Err(e) => {
            tracing::debug!(error = %e, "cannot ask the cluster who we are");
            local.to_string()
        }
    }
}

/// # Errors
/// See [`pause`].
pub fn control(settings: &ControlSettings) -> anyhow::Result<Exit> {
    runtime()?.block_on(async {
        let cluster = fleet_cluster(&settings.fleet, &settings.cluster).await?;
        let store = ControlStore::of(&cluster);
        let by = whoami(&cluster, &settings.local_user).await;
        let at = jiff::Timestamp::now().to_string();
        let to = match &settings.action {
            ControlAction::Rollback { to, state_dir } => {
                rollback_target(&settings.fleet, to.as_deref(), state_dir.as_deref())?
            }
            _ => String::new(),
        };
        let (change, value) = store
            .update(|c| match &settings.action {
                ControlAction::Pause { reason } => c.pause(reason, &by, &at),
                ControlAction::Resume => c.resume(&by, &at),
                ControlAction::Rollback { .. } => c.hold(&to, &by, &at),
            })
            .await?;
        let fleet = format!("{}/{}", cluster.namespace, cluster.fleet);
        let style = crate::ui::stdout_style();
        match (&settings.action, change) {
            (ControlAction::Pause { .. }, Change::Done(_)) => println!(
                "{} fleet {fleet}: no new stage starts and no new commit is applied until `drover resume`",
                style.yellow("paused")
            ),
            (ControlAction::Pause { .. }, Change::Already) => {
                let (by, at, reason) = value
                    .paused
                    .map(|p| (p.by, p.at, p.reason))
                    .unwrap_or_default();
                let reason = if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", crate::core::diag::escape_control(&reason))
                };
                println!(
                    "fleet {fleet} was already paused by {} at {at}{reason}",
                    crate::core::diag::escape_control(&by)
                );
            }
            (ControlAction::Resume, Change::Done(_)) => {
                println!("{} fleet {fleet}", style.green("resumed"));
            }
            (ControlAction::Resume, Change::Already) => {
                println!("fleet {fleet} is not paused");
            }
            (ControlAction::Rollback { .. }, _) => println!(
                "{} fleet {fleet}: the sync rolls {} out stage by stage and holds on it until the branch moves",
                style.yellow("rollback"),
                &to[..to.len().min(12)]
            ),
        }
        Ok(Exit::Ok)
    })
}
