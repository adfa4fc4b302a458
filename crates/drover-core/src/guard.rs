//! Guards checked before the first write of an apply: a commit that would delete
//! too much of the fleet, or take over fields another manager owns.
//!
//! Pure: decides from the plan, the live count and the fleet's policy.

use super::fleet::Fleet;
use super::plan::Plan;

/// Why an apply is refused before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Refusal {
    #[error(
        "refusing to delete {deletes} of the fleet's {live} DaemonSets (more than prune.maxDeleteFraction {max}); pass --allow-mass-delete if this is intended"
    )]
    MassDelete {
        deletes: usize,
        live: usize,
        max: String,
    },
    #[error(
        "refusing an empty render: the commit renders no DaemonSets while {live} exist; pass --allow-mass-delete if this is intended"
    )]
    EmptyRender { live: usize },
    #[error("{0}")]
    Conflicts(String),
}

/// Checks the mass-delete guard. `live` is how many DaemonSets carry the fleet label.
///
/// # Errors
/// The refusal, when the plan deletes more than the fleet allows.
pub fn check_mass_delete(
    fleet: &Fleet,
    plan: &Plan,
    live: usize,
    prune: bool,
    allow: bool,
) -> Result<(), Refusal> {
    if allow || !prune || !fleet.prune.enabled || live == 0 {
        return Ok(());
    }
    let rendered = plan.stages.iter().map(|s| s.actions.len()).sum::<usize>();
    if rendered == 0 {
        return Err(Refusal::EmptyRender { live });
    }
    let deletes = plan.prune.len();
    if deletes as f64 / live as f64 > fleet.prune.max_delete_fraction {
        return Err(Refusal::MassDelete {
            deletes,
            live,
            max: format!("{}", fleet.prune.max_delete_fraction),
        });
    }
    Ok(())
}
