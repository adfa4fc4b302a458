//! `drover validate`: read and check a fleet, print a one-line summary.

use super::{Exit, FleetArgs, load};
use crate::settings::FleetSettings;

/// # Errors
/// When the fleet cannot be read or is invalid.
pub fn run(args: &FleetArgs) -> anyhow::Result<Exit> {
    validate(&FleetSettings::resolve(args))
}

/// # Errors
/// See [`run`].
pub fn validate(fleet: &FleetSettings) -> anyhow::Result<Exit> {
    let loaded = load(fleet)?;
    let at = loaded
        .sha()
        .map(|sha| format!(" at {}", &sha[..12]))
        .unwrap_or_default();
    println!(
        "fleet {} is valid{at}: {} groups, {} stages, {} daemons, {} DaemonSets",
        loaded.fleet.name,
        loaded.fleet.groups.len(),
        loaded.fleet.stages.len(),
        loaded.fleet.daemons.len(),
        loaded.desired.items.len()
    );
    if !loaded.fleet.companions.is_empty() {
        eprintln!(
            "note: {} companion object(s) under companions/ are valid (plan, apply and sync carry them; render prints only the DaemonSets)",
            loaded.fleet.companions.len()
        );
    }
    if !loaded.desired.config_maps.is_empty() {
        eprintln!(
            "note: {} config ConfigMap(s) render from config/ (plan, apply and sync carry them; render prints them before the DaemonSets)",
            loaded.desired.config_maps.len()
        );
    }
    if loaded.reserved_files > 0 {
        eprintln!(
            "note: {} file(s) under companions/ and config/ are not fleet documents",
            loaded.reserved_files,
        );
    }
    Ok(Exit::Ok)
}
