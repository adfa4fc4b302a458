//! `drover plan`: what applying a commit would change in the live cluster. Read-only:
//! two LISTs and server-side-apply dry runs.

use anyhow::Context as _;

use crate::core::freeze::frozen_until;

use super::{ClusterArgs, Exit, FleetArgs, Format, format_plan, load, runtime};
use crate::settings::{PlanSettings, process_env};

#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Plan again on every change to the fleet directory (files or commits)
    #[arg(long)]
    pub watch: bool,
    /// Dry-run every desired DaemonSet, even those whose live copy already matches
    #[arg(long, hide = true)]
    pub dry_run_all: bool,
}

/// # Errors
/// When the fleet is invalid or the cluster cannot be read.
pub fn run(args: &PlanArgs) -> anyhow::Result<Exit> {
    plan(&PlanSettings::resolve(args, &process_env))
}

/// # Errors
/// See [`run`].
pub fn plan(settings: &PlanSettings) -> anyhow::Result<Exit> {
    if !settings.watch {
        return runtime()?.block_on(plan_once(settings));
    }
    runtime()?.block_on(async {
        let repo = &settings.fleet.repo;
        let (_watcher, mut changes) = crate::shell::watch::watch(
            std::slice::from_ref(repo),
            std::time::Duration::from_millis(300),
        )
        .with_context(|| format!("watching {}", repo.display()))?;
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        loop {
            if tty {
                print!("\x1b[2J\x1b[H");
            }
            eprintln!(
                "drover plan --watch: {} (Ctrl-C to stop)",
                jiff::Timestamp::now().strftime("%H:%M:%S")
            );
            if let Err(e) = plan_once(settings).await {
                eprintln!(
                    "error: {}",
                    crate::core::diag::escape_control(&crate::core::errors::chain(e.as_ref()))
                );
            }
            tokio::select! {
                c = changes.recv() => if c.is_none() { return Ok(Exit::Ok) },
                _ = tokio::signal::ctrl_c() => return Ok(Exit::Ok),
            }
        }
    })
}

async fn plan_once(settings: &PlanSettings) -> anyhow::Result<Exit> {
    // `plan` carries companion objects (it lists, dry-runs and shows them); apply and
    // sync still refuse a fleet that has them.
    let loaded = load(&settings.fleet)?;
    {
        let (_, gathered, mut p) =
            super::live_plan(&loaded, &settings.cluster, settings.dry_run_all).await?;
        // The one clock reading of a plan: which stages a freeze window holds now.
        let now = settings.clock.now();
        for st in &mut p.stages {
            st.frozen = frozen_until(&loaded.fleet.freeze_windows, &st.groups, now).map(Into::into);
        }
        print!("{}", format_plan(&p, settings.format));
        super::apply::warn_conflicts(&gathered.conflicts, loaded.fleet.force_conflicts);
        Ok(if p.has_changes() {
            Exit::Changes
        } else {
            Exit::Ok
        })
    }
}
