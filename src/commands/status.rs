//! `drover status`: for each daemon × group of the fleet, the commit, images and
//! desired/updated/ready that are live, the stage in progress and its gate, whether
//! the fleet is paused, and the last audit outcome. Gathers the recorded
//! observations (live DaemonSets, the control object, the sync's state directory)
//! and hands them to the core's pure view ([`crate::core::status`]).

use std::path::PathBuf;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::DaemonSet;

use super::{ClusterArgs, Exit, FleetArgs, runtime};
use crate::core::audit::RecordKind;
use crate::core::audit::{AuditRecord, verify};
use crate::core::freeze::frozen_until;
use crate::core::render::{ANN_COMMIT, LABEL_DAEMON, LABEL_GROUP};
use crate::core::status::{
    self, FrozenStage, InFlight, Inputs, LastRecord, LiveDaemonSet, StageProgress,
};
use crate::settings::{StatusSettings, process_env};
use crate::shell::audit::AuditLog;
use crate::shell::cluster::rollout_status;
use crate::shell::control::ControlStore;
use crate::shell::cstate::ClusterCopy;
use crate::shell::state::{StateStore, SyncState};

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// The state directory of `drover sync` (the stage in progress, its gate, the
    /// last audit record); without it, only what the cluster shows
    #[arg(long, value_name = "DIR", env = "DROVER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub copy: super::StateName,
    /// The namespace of the sync's cluster copy (its audit anchor's; default: the
    /// kubeconfig context's)
    #[arg(long, value_name = "NS")]
    pub audit_anchor_namespace: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: StatusFormat,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}

/// # Errors
/// The fleet cannot be read, or the cluster (its DaemonSets, the control object)
/// cannot be.
pub fn run(args: &StatusArgs) -> anyhow::Result<Exit> {
    status(&StatusSettings::resolve(args, &process_env))
}

/// A live DaemonSet as the view needs it.
fn live(ds: &DaemonSet) -> LiveDaemonSet {
    let labels = ds.metadata.labels.clone().unwrap_or_default();
    let images = ds
        .spec
        .template
        .spec
        .as_ref()
        .map(|p| {
            p.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default();
    LiveDaemonSet {
        name: ds.metadata.name.clone().unwrap_or_default(),
        daemon: labels.get(LABEL_DAEMON).cloned().unwrap_or_default(),
        group: labels.get(LABEL_GROUP).cloned().unwrap_or_default(),
        commit: ds
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANN_COMMIT).cloned()),
        images,
        status: rollout_status(ds),
    }
}

/// What the sync recorded, from its state and its audit records (verified as one
/// chain): the rollout in progress, and the last record about a rollout.
fn recorded(
    state: Option<SyncState>,
    records: &[AuditRecord],
) -> (Option<InFlight>, Option<LastRecord>) {
    let in_flight = state.and_then(|s| s.cursor).map(|c| InFlight {
        commit: c.commit,
        stage: c.stage,
    });
    let last = records
        .iter()
        .rev()
        .find(|r| matches!(r.kind, RecordKind::Commit | RecordKind::Drift))
        .map(|r| LastRecord {
            seq: r.seq,
            kind: r.kind,
            commit: r.commit.sha.clone(),
            outcome: r.outcome,
            finished_at: r.finished_at.clone(),
            stages: r
                .stages
                .iter()
                .map(|s| (s.name.clone(), s.result))
                .collect(),
        });
    (in_flight, last)
}

/// The state directory's copy, and the gate the sync last published there.
fn recorded_in_dir(
    dir: &std::path::Path,
) -> anyhow::Result<(Option<InFlight>, Option<StageProgress>, Option<LastRecord>)> {
    let state = StateStore::open(dir)?.load()?;
    let progress = match std::fs::read_to_string(dir.join("progress.json")) {
        Ok(t) => Some(
            serde_json::from_str(&t)
                .with_context(|| format!("{}", dir.join("progress.json").display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let records = AuditLog::in_dir(dir).verify(None)?;
    let (in_flight, last) = recorded(Some(state), &records);
    Ok((in_flight, progress, last))
}

/// The cluster copy every replica writes (`--state-name` in the anchor's
/// namespace): the cursor and the trail. The gate's progress is published only in
/// the sync's state directory.
async fn recorded_in_cluster(
    cluster: &crate::shell::cluster::Cluster,
    settings: &StatusSettings,
) -> anyhow::Result<(Option<InFlight>, Option<LastRecord>)> {
    let ns = settings
        .state_namespace
        .clone()
        .unwrap_or_else(|| cluster.client.default_namespace().to_string());
    let copy = ClusterCopy::new(cluster.client.clone(), &ns, &settings.state_name, None);
    let what = || format!("reading the cluster copy {ns}/{}", copy.state_object());
    let state = copy.read_state().await.with_context(what)?;
    let lines = copy.records().await.with_context(what)?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let records = verify(&text).with_context(what)?;
    Ok(recorded(state.map(|s| s.state), &records))
}

/// The stages a freeze window holds at `now`, for a new commit.
fn frozen_stages(fleet: &crate::core::fleet::Fleet, now: jiff::Timestamp) -> Vec<FrozenStage> {
    fleet
        .stages
        .iter()
        .filter_map(|s| {
            frozen_until(&fleet.freeze_windows, &s.groups, now).map(|f| FrozenStage {
                stage: s.name.clone(),
                frozen: f.into(),
            })
        })
        .collect()
}

/// # Errors
/// See [`run`].
pub fn status(settings: &StatusSettings) -> anyhow::Result<Exit> {
    let rendered = super::load(&settings.fleet)?;
    let fleet = &rendered.fleet;
    let local = match &settings.state_dir {
        Some(d) => Some(
            recorded_in_dir(d)
                .with_context(|| format!("reading the state directory {}", d.display()))?,
        ),
        None => None,
    };
    let (daemonsets, control, (in_flight, progress, last), (waves, waves_unread)) = runtime()?
        .block_on(async {
            let cluster = crate::shell::cluster::Cluster::connect(
                settings.cluster.context.as_deref(),
                &fleet.namespace,
                &fleet.name,
            )
            .await
            .context("connecting to the cluster")?;
            // Not `list_daemonsets`: that strips the status, which is what is shown here.
            let params = kube::api::ListParams::default().labels(&cluster.fleet_selector());
            let listed = cluster
                .daemonsets()
                .list(&params)
                .await
                .context("listing the fleet's DaemonSets")?
                .items;
            // Not being able to read them hides only the waves, said as such.
            let (waves, waves_unread) =
                match crate::shell::replace::waves_now(&cluster, &listed).await {
                    Ok(w) => (w, None),
                    Err(e) => (
                        crate::core::waves::Replan::default(),
                        Some(format!(
                            "listing the drover driver's pods, nodes and revisions: {e}"
                        )),
                    ),
                };
            let daemonsets: Vec<LiveDaemonSet> = listed.iter().map(live).collect();
            let (control, _) = ControlStore::of(&cluster).read().await?;
            let recorded = match local {
                Some(r) => r,
                None => {
                    let (in_flight, last) = recorded_in_cluster(&cluster, settings).await?;
                    (in_flight, None, last)
                }
            };
            anyhow::Ok((daemonsets, control, recorded, (waves, waves_unread)))
        })?;
    let view = status::build(Inputs {
        fleet: fleet.name.clone(),
        namespace: fleet.namespace.clone(),
        stages: fleet
            .stages
            .iter()
            .map(|s| (s.name.clone(), s.groups.clone()))
            .collect(),
        daemonsets,
        control,
        in_flight,
        progress,
        last,
        frozen: frozen_stages(fleet, settings.clock.now()),
        waves,
        waves_unread,
    });
    match settings.format {
        StatusFormat::Text => print!("{}", status::text(&view, crate::ui::stdout_style())),
        StatusFormat::Json => println!("{}", status::json(&view)),
    }
    Ok(Exit::Ok)
}
