//! Guards checked before the first write of an apply: a commit that would write
//! over a DaemonSet the fleet does not own, delete too much of the fleet, take over
//! fields another manager owns, or roll out past a gating stage that selects no
//! node.
//!
//! Pure: decides from the plan, the live count and the fleet's policy.

use std::collections::BTreeMap;

use super::diag::escape_control;
use super::fleet::Fleet;
use super::plan::{Plan, Verdict};
use super::render::LABEL_FLEET;

/// A field owned by another field manager that an apply would take over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conflict {
    pub field: String,
    pub manager: String,
}

/// A DaemonSet that a create would write over but the fleet does not own: another
/// fleet's (its `drover.dev/fleet` label), or one that carries no such label.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Foreign {
    pub namespace: String,
    pub name: String,
    /// Its `drover.dev/fleet` label, if it has one.
    pub fleet: Option<String>,
}

impl std::fmt::Display for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ns = escape_control(&self.namespace);
        let name = escape_control(&self.name);
        match &self.fleet {
            Some(fleet) => write!(
                f,
                "DaemonSet {ns}/{name} belongs to fleet `{}` (its {LABEL_FLEET} label)",
                escape_control(fleet)
            ),
            None => write!(
                f,
                "DaemonSet {ns}/{name} exists and carries no {LABEL_FLEET} label"
            ),
        }
    }
}

/// What [`Refusal::NotOwned`] says: every object, and the flag to pass when one
/// belongs to a fleet this one may have been renamed from.
fn not_owned(objects: &[Foreign]) -> String {
    let list: Vec<String> = objects.iter().map(ToString::to_string).collect();
    let hint = match objects.iter().find_map(|f| f.fleet.as_deref()) {
        Some(old) => {
            let old = escape_control(old);
            format!(
                "; if this fleet was renamed from `{old}`, pass --previous-fleet {old} so its DaemonSets are replaced"
            )
        }
        None => String::new(),
    };
    format!(
        "refusing to write over {} DaemonSet(s) this fleet does not own: {}{hint}",
        objects.len(),
        list.join("; ")
    )
}

/// Why an apply is refused before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Refusal {
    /// A create would write over DaemonSets the fleet does not own.
    #[error("{}", not_owned(objects))]
    NotOwned { objects: Vec<Foreign> },
    /// Companion objects in git whose name a live object has that the fleet does not
    /// own (no `drover.dev/fleet` label of it): drover does not take them over.
    #[error(
        "companion object(s) {} exist in the cluster and are not the fleet's (no `{LABEL_FLEET}: {}` label): drover does not take over objects it does not own",
        escape_control(&objects.join(", ")),
        escape_control(fleet)
    )]
    CompanionsNotOwned { objects: Vec<String>, fleet: String },
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

/// Checks that no create writes over a DaemonSet the fleet does not own.
///
/// # Errors
/// [`Refusal::NotOwned`] with every such object.
pub fn check_owned(foreign: &[Foreign]) -> Result<(), Refusal> {
    if foreign.is_empty() {
        return Ok(());
    }
    Err(Refusal::NotOwned {
        objects: foreign.to_vec(),
    })
}

/// Checks that no companion object in git has the name of a live object the fleet
/// `fleet` does not own.
///
/// # Errors
/// [`Refusal::CompanionsNotOwned`] with every such object.
pub fn check_companions_owned(foreign: &[String], fleet: &str) -> Result<(), Refusal> {
    if foreign.is_empty() {
        return Ok(());
    }
    Err(Refusal::CompanionsNotOwned {
        objects: foreign.to_vec(),
        fleet: fleet.to_string(),
    })
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

/// Checks the mass-delete guard. `live` is how many DaemonSets (and, when the plan
/// has companion objects, live companions) carry the fleet label.
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
    // Companion objects count with the DaemonSets: `live` includes the fleet's live
    // companions when the caller gathered them.
    let deletes = plan.prune.len()
        + plan
            .companions
            .iter()
            .filter(|c| c.action == crate::plan::Action::Delete)
            .count();
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
    fn objects_the_fleet_does_not_own_refuse_the_plan_naming_each_and_the_flag_for_a_rename() {
        assert_eq!(check_owned(&[]), Ok(()));
        let other = Foreign {
            namespace: "agents".into(),
            name: "node-agent-all".into(),
            fleet: Some("old-name".into()),
        };
        let unlabelled = Foreign {
            namespace: "agents".into(),
            name: "exporter-all".into(),
            fleet: None,
        };
        let refusal = check_owned(&[unlabelled.clone(), other.clone()]).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::NotOwned {
                objects: vec![unlabelled.clone(), other]
            }
        );
        assert_eq!(
            refusal.to_string(),
            "refusing to write over 2 DaemonSet(s) this fleet does not own: DaemonSet agents/exporter-all exists and carries no drover.dev/fleet label; DaemonSet agents/node-agent-all belongs to fleet `old-name` (its drover.dev/fleet label); if this fleet was renamed from `old-name`, pass --previous-fleet old-name so its DaemonSets are replaced"
        );
        // Nobody's object: no rename to suggest.
        let refusal = check_owned(&[unlabelled]).unwrap_err().to_string();
        assert!(!refusal.contains("--previous-fleet"), "{refusal}");
        // A label value is printed escaped.
        let odd = Foreign {
            namespace: "agents".into(),
            name: "x".into(),
            fleet: Some("a\u{202e}b".into()),
        };
        let refusal = check_owned(&[odd]).unwrap_err().to_string();
        assert!(!refusal.contains('\u{202e}'), "{refusal}");
    }

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
