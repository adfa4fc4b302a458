//! `drover apply`: plan a commit against the live cluster, then roll it out stage by
//! stage. Nothing is written unless every check passed: validation, conflicts, the
//! mass-delete guard and (on a terminal) the operator's confirmation.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};

use super::{ClusterArgs, Exit, FleetArgs, runtime};
use crate::core::freeze::Change;
use crate::core::guard::{check_gates, check_mass_delete};
use crate::core::syntax::format_duration;
use crate::settings::{ApplySettings, Confirm, process_env};
use crate::shell::apply::{ApplyOptions, ApplyReport, Execution, FreezeGate, Proceed, execute};
use crate::shell::cluster::Conflict;
use crate::shell::control::{ControlStore, Controls};
use crate::shell::pipeline::{self, PastRenders};
use crate::shell::progress::{BarProgress, LogProgress, Progress};
use crate::ui::{Style, table};

#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Do not delete DaemonSets the commit no longer renders
    #[arg(long)]
    pub no_prune: bool,
    /// Allow deleting more than prune.maxDeleteFraction of the fleet, or everything
    #[arg(long)]
    pub allow_mass_delete: bool,
    #[command(flatten)]
    pub freeze: super::FreezeArgs,
}

/// Prints conflicts with other field managers to stderr.
pub fn warn_conflicts(conflicts: &BTreeMap<String, Vec<Conflict>>, forced: bool) {
    let style = crate::ui::stderr_style();
    for (name, cs) in conflicts {
        for c in cs {
            let verb = if forced {
                "will take over"
            } else {
                "conflict:"
            };
            eprintln!(
                "{} DaemonSet {name}: {verb} field {} owned by field manager {}",
                style.yellow("warning:"),
                c.field,
                c.manager
            );
        }
    }
}

/// # Errors
/// When the fleet is invalid, the cluster cannot be reached, or a guard refuses.
pub fn run(args: &ApplyArgs) -> anyhow::Result<Exit> {
    apply(&ApplySettings::resolve(args, &process_env))
}

/// # Errors
/// See [`run`].
pub fn apply(settings: &ApplySettings) -> anyhow::Result<Exit> {
    let loc = pipeline::locate(&settings.fleet)?;
    let loaded = super::load_location(&loc)?;
    let previous = PastRenders::for_location(&loc);
    runtime()?.block_on(async {
        let fleet = &loaded.fleet;
        let (cluster, gathered, p) = super::live_plan(&loaded, &settings.cluster, false).await?;
        // Refused before the plan is printed: a refused commit leaves no plan on
        // stdout for a script or a PR comment to mistake for one that will run.
        check_mass_delete(
            fleet,
            &p,
            gathered.live.len() + gathered.companion_uids.len(),
            settings.prune.prune,
            settings.prune.allow_mass_delete,
        )
        .and_then(|()| check_gates(&p))
            .map_err(|r| anyhow::anyhow!("{r}; nothing was applied"))?;
        print!("{}", super::format_plan(&p, super::Format::Text));
        warn_conflicts(&gathered.conflicts, fleet.force_conflicts);
        if !gathered.conflicts.is_empty() && !fleet.force_conflicts {
            anyhow::bail!(
                "{} DaemonSet(s) have fields owned by another field manager; nothing was applied (set `forceConflicts: true` in the Fleet to take them over)",
                gathered.conflicts.len()
            );
        }
        if !p.has_changes() {
            println!("no changes to apply");
            return Ok(Exit::Ok);
        }
        // Held before anything is asked or written; a later stage that is frozen
        // when the rollout reaches it waits there.
        let freeze = FreezeGate {
            windows: fleet.freeze_windows.clone(),
            change: Change::Rollout,
            override_reason: settings.freeze_override.clone(),
            clock: settings.clock.clone(),
        };
        if let Some(f) = freeze.holds_start(&p) {
            eprintln!(
                "{} {f}; nothing was applied (`--override-freeze REASON` rolls out through it)",
                crate::ui::stderr_style().yellow("frozen:")
            );
            return Ok(Exit::Failure);
        }
        if settings.confirm == Confirm::Ask && std::io::stdin().is_terminal() && !confirm()? {
            println!("aborted; nothing was applied");
            return Ok(Exit::Failure);
        }
        let progress: Box<dyn Progress> = if std::io::stderr().is_terminal() {
            Box::new(BarProgress::default())
        } else {
            Box::new(LogProgress::default())
        };
        let opts = ApplyOptions {
            prune: settings.prune.prune && fleet.prune.enabled,
            force: fleet.force_conflicts,
            on_failure: fleet.on_failure,
            start_stage: 0,
            resume: false,
            freeze,
        };
        let execution = execute(
            &cluster,
            &p,
            &loaded.desired,
            &gathered,
            &opts,
            &previous,
            progress.as_ref(),
            &mut |_, _| Ok(Proceed::Continue),
            // `drover pause` holds a manual apply too: no stage starts while paused.
            Some(&mut Controls::reading(ControlStore::of(&cluster))),
        )
        .await?;
        let report = match execution {
            Execution::Finished(report) => report,
            // Only a checkpoint stops a rollout, and this one never asks to.
            Execution::Stopped { stage } => {
                anyhow::bail!("the rollout stopped before stage {stage}")
            }
        };
        print!("{}", summary(&report, crate::ui::stdout_style()));
        Ok(if report.outcome.ok() { Exit::Ok } else { Exit::Failure })
    })
}

fn confirm() -> anyhow::Result<bool> {
    eprint!("Apply these changes? [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// The final table: stages, DaemonSets, nodes updated, durations, outcome.
pub fn summary(r: &ApplyReport, style: Style) -> String {
    let mut rows = Vec::new();
    for s in r.stages.iter().chain(&r.rollback) {
        let nodes: i64 = s.daemonsets.values().map(|d| d.updated).sum();
        let outcome = match &s.outcome {
            crate::shell::rollout::StageOutcome::Succeeded => style.green("succeeded"),
            crate::shell::rollout::StageOutcome::Failed { reason } => style.red(&format!(
                "failed: {}",
                crate::core::diag::escape_control(reason)
            )),
        };
        rows.push(vec![
            s.name.clone(),
            s.daemonsets.len().to_string(),
            nodes.to_string(),
            format_duration(std::time::Duration::from_secs_f64(s.rollout_seconds)),
            format_duration(std::time::Duration::from_secs_f64(s.bake_seconds)),
            outcome,
        ]);
    }
    let mut out = String::from("\n");
    out.push_str(&table(
        &[
            "STAGE",
            "DAEMONSETS",
            "NODES UPDATED",
            "ROLLOUT",
            "BAKE",
            "OUTCOME",
        ],
        &rows,
    ));
    if !r.pruned.is_empty() {
        out.push_str(&format!("pruned: {}\n", r.pruned.join(", ")));
    }
    if !r.rollback_skipped.is_empty() {
        out.push_str(&format!(
            "not rolled back (no previous commit to take them from): {}\n",
            r.rollback_skipped.join(", ")
        ));
    }
    if let Some(o) = &r.freeze_override {
        out.push_str(&format!(
            "{} window {} (frozen until {}): {}\n",
            style.yellow("freeze overridden:"),
            o.windows.join(", "),
            o.frozen_until,
            crate::core::diag::escape_control(&o.reason)
        ));
    }
    out.push_str(&format!(
        "outcome: {} in {}\n",
        style.bold(r.outcome.as_str()),
        format_duration(std::time::Duration::from_secs_f64(r.seconds))
    ));
    out
}
