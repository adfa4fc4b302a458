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
pub struct ResumeArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// What a control command does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlAction {
    Pause { reason: String },
    Resume,
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
        let (change, value) = store
            .update(|c| match &settings.action {
                ControlAction::Pause { reason } => c.pause(reason, &by, &at),
                ControlAction::Resume => c.resume(&by, &at),
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
        }
        Ok(Exit::Ok)
    })
}
