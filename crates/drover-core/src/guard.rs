//! Guards checked before the first write of an apply: a commit that would delete
//! too much of the fleet, take over fields another manager owns, or roll out past a
//! gating stage that selects no node.
//!
//! Pure: decides from the plan, the live count and the fleet's policy.

use std::collections::BTreeMap;

use super::fleet::Fleet;
use super::plan::{Plan, Verdict};

/// A field owned by another field manager that an apply would take over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conflict {
    pub field: String,
    pub manager: String,
}

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
    #[error(
        "fields owned by another field manager: {}",
        conflicts
            .iter()
            .flat_map(|(n, cs)| cs.iter().map(move |c| format!("{n} {} (manager {})", c.field, c.manager)))
            .collect::<Vec<_>>()
            .join(", ")
    )]
    Conflicts {
        /// Per DaemonSet, the fields another manager owns.
        conflicts: BTreeMap<String, Vec<Conflict>>,
    },
    #[error(
        "refusing to roll out: {verdict}; add nodes to its groups, or move its groups into a later stage"
    )]
    UngatedStage { verdict: Verdict },
}

/// Checks that applying takes over no field another manager owns, unless the fleet
/// says to (`forceConflicts`).
///
/// # Errors
/// [`Refusal::Conflicts`] with every conflicting field.
pub fn check_conflicts(
    conflicts: &BTreeMap<String, Vec<Conflict>>,
    force: bool,
) -> Result<(), Refusal> {
    if force || conflicts.is_empty() {
        return Ok(());
    }
    Err(Refusal::Conflicts {
        conflicts: conflicts.clone(),
    })
}

/// Refuses a plan whose gating stage selects no node ([`Verdict::UngatedStage`]):
/// its bake would pass on zero pods and let the change reach every later stage.
///
/// # Errors
/// The first such verdict.
pub fn check_gates(plan: &Plan) -> Result<(), Refusal> {
    match plan
        .verdicts
        .iter()
        .find(|v| matches!(v, Verdict::UngatedStage { .. }))
    {
        Some(v) => Err(Refusal::UngatedStage { verdict: v.clone() }),
        None => Ok(()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_refuse_unless_forced_and_the_refusal_names_every_field() {
        let conflicts: BTreeMap<String, Vec<Conflict>> = [
            (
                "agent-all".to_string(),
                vec![Conflict {
                    field: ".spec.template.spec.containers[name=\"agent\"].image".into(),
                    manager: "kubectl-edit".into(),
                }],
            ),
            (
                "exporter-all".to_string(),
                vec![Conflict {
                    field: ".spec.minReadySeconds".into(),
                    manager: "helm".into(),
                }],
            ),
        ]
        .into();
        assert_eq!(check_conflicts(&BTreeMap::new(), false), Ok(()));
        assert_eq!(check_conflicts(&conflicts, true), Ok(()));
        let refusal = check_conflicts(&conflicts, false).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "fields owned by another field manager: agent-all .spec.template.spec.containers[name=\"agent\"].image (manager kubectl-edit), exporter-all .spec.minReadySeconds (manager helm)"
        );
    }
}
