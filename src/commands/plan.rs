//! `drover plan`: what applying a commit would change in the live cluster. Read-only:
//! two LISTs and server-side-apply dry runs.

use anyhow::Context as _;

use super::{ClusterArgs, Exit, FleetArgs, Format, format_plan, load, runtime};
use crate::core::plan::{PlanMeta, plan};
use crate::shell::cluster::Cluster;
use crate::shell::live::gather;

#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// # Errors
/// When the fleet is invalid or the cluster cannot be read.
pub fn run(args: &PlanArgs) -> anyhow::Result<Exit> {
    let loaded = load(&args.fleet)?;
    runtime()?.block_on(async {
        let cluster = Cluster::connect(
            args.cluster.context.as_deref(),
            &loaded.fleet.namespace,
            &loaded.fleet.name,
        )
        .await
        .context("connecting to the cluster")?;
        let gathered = gather(&cluster, &loaded.desired).await?;
        let p = plan(
            &loaded.fleet,
            &loaded.desired,
            gathered.comparisons.clone(),
            Some(&gathered.nodes),
            PlanMeta {
                base: None,
                head: loaded.commit.as_ref().map(|c| c.sha.clone()),
            },
        );
        print!("{}", format_plan(&p, args.format));
        super::apply::warn_conflicts(&gathered.conflicts, loaded.fleet.force_conflicts);
        Ok(if p.has_changes() {
            Exit::Changes
        } else {
            Exit::Ok
        })
    })
}
