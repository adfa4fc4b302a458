//! Node-level replacement for the drover driver (issue 18), the pure part: which
//! nodes each wave of a group covers, zone by zone, and which replacements (one
//! daemon's pod on one node) may be in flight at one moment under the fleet's
//! disruption budget and the daemons' disruption classes.
//!
//! Not wired yet: no fleet field selects the driver, and the shell does not carry
//! out these steps. It is the decision part the driver's steps will be built on,
//! tested on its own as the rollout machine is.
//!
//! Owns: wave partitioning ([`plan_waves`]) and admission ([`admit`]). Must not: read
//! the cluster or the clock, or decide when a wave has passed its gate (the rollout
//! machine's job).

use std::collections::{BTreeMap, BTreeSet};

/// How far a wave reaches, counted from the start of its scope (a zone, or the
/// whole group): waves are cumulative, as in `waves: [1, 10%, 50%, 100%]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaveSize {
    /// This many nodes of the scope in all (capped at the scope's size).
    Nodes(u32),
    /// This share of the scope's nodes in all, rounded up (so `10%` of 5 is 1).
    Percent(u32),
}

impl WaveSize {
    fn reach(self, scope: usize) -> usize {
        match self {
            WaveSize::Nodes(n) => (n as usize).min(scope),
            WaveSize::Percent(p) => (scope * p.min(100) as usize).div_ceil(100),
        }
    }

    fn is_everything(self) -> bool {
        matches!(self, WaveSize::Percent(100))
    }
}

/// A node as the planner needs it: its name and, when waves go by a topology
/// key, its value of that label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaveNode {
    pub name: String,
    pub topology: Option<String>,
}

/// One wave: the nodes whose pods it replaces, in the order they are taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    /// The topology value of the scope, `None` without `by` (the whole group) and
    /// for the nodes that lack the label (their own scope, last).
    pub scope: Option<String>,
    /// 1-based within its scope.
    pub number: usize,
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaveError {
    #[error("a wave list needs at least one wave")]
    Empty,
    #[error(
        "wave {number} reaches `{size}`, less than the wave before it: waves count from the start"
    )]
    Shrinks { number: usize, size: String },
    #[error("the last wave is `{size}`, not `100%`: nodes past it would keep the old version")]
    Incomplete { size: String },
    #[error("wave {number} is `{percent}%`: a share is at most 100%")]
    OverHundred { number: usize, percent: u32 },
    #[error("wave {number} is 0 nodes")]
    Zero { number: usize },
}

impl std::fmt::Display for WaveSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaveSize::Nodes(n) => write!(f, "{n}"),
            WaveSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Checks a wave list: not empty, no zero or over-100% wave, each reaching at
/// least as far as the one before (judged on the kinds that compare: counts with
/// counts, shares with shares), and the last one `100%`.
///
/// # Errors
/// The first defect, with the wave's 1-based number.
pub fn check_sizes(sizes: &[WaveSize]) -> Result<(), WaveError> {
    let Some(last) = sizes.last() else {
        return Err(WaveError::Empty);
    };
    let (mut nodes, mut percent) = (0u32, 0u32);
    for (i, s) in sizes.iter().enumerate() {
        let number = i + 1;
        match *s {
            WaveSize::Nodes(0) | WaveSize::Percent(0) => return Err(WaveError::Zero { number }),
            WaveSize::Percent(p) if p > 100 => {
                return Err(WaveError::OverHundred { number, percent: p });
            }
            WaveSize::Nodes(n) if n < nodes => {
                return Err(WaveError::Shrinks {
                    number,
                    size: s.to_string(),
                });
            }
            WaveSize::Percent(p) if p < percent => {
                return Err(WaveError::Shrinks {
                    number,
                    size: s.to_string(),
                });
            }
            WaveSize::Nodes(n) => nodes = n,
            WaveSize::Percent(p) => percent = p,
        }
    }
    if !last.is_everything() {
        return Err(WaveError::Incomplete {
            size: last.to_string(),
        });
    }
    Ok(())
}

/// Splits a group's nodes into waves. Without `by_topology` the group is one
/// scope; with it, each topology value is a scope, in name order, and the nodes
/// without the label are a last scope of their own. Within a scope nodes are taken
/// in name order, and wave k covers the nodes up to its reach past what earlier
/// waves covered (a wave that would cover nothing new is left out). Every node is
/// in exactly one wave; scopes never share a wave, so a zone is finished before
/// the next begins.
///
/// # Errors
/// A wave list [`check_sizes`] refuses.
pub fn plan_waves(
    nodes: &[WaveNode],
    sizes: &[WaveSize],
    by_topology: bool,
) -> Result<Vec<Wave>, WaveError> {
    check_sizes(sizes)?;
    let mut scopes: BTreeMap<(bool, Option<String>), BTreeSet<&str>> = BTreeMap::new();
    for n in nodes {
        let scope = if by_topology {
            n.topology.clone()
        } else {
            None
        };
        // Labelled scopes sort first (false < true), the unlabelled one last.
        let key = (by_topology && scope.is_none(), scope);
        scopes.entry(key).or_default().insert(&n.name);
    }
    let mut waves = Vec::new();
    for ((_, scope), members) in scopes {
        let members: Vec<&str> = members.into_iter().collect();
        let mut covered = 0;
        let mut number = 0;
        for s in sizes {
            let reach = s.reach(members.len()).max(covered);
            if reach == covered {
                continue;
            }
            number += 1;
            waves.push(Wave {
                scope: scope.clone(),
                number,
                nodes: members[covered..reach]
                    .iter()
                    .map(|n| (*n).to_string())
                    .collect(),
            });
            covered = reach;
        }
    }
    Ok(waves)
}

/// The fleet-wide disruption budget, resolved against the fleet's node count: at
/// most this many nodes may lack a Ready pod of a daemon in the commit at once.
/// At least 1, so a rollout can always move.
pub fn budget_nodes(size: WaveSize, fleet_nodes: usize) -> usize {
    match size {
        WaveSize::Nodes(n) => n as usize,
        WaveSize::Percent(p) => (fleet_nodes * p.min(100) as usize) / 100,
    }
    .max(1)
}

/// One pod to replace: `daemon`'s on `node`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Replacement {
    pub node: String,
    pub daemon: String,
    /// The daemon's `disruptionClass`: two of one class never restart on one node
    /// at the same time.
    pub class: Option<String>,
}

/// Which of `pending` may start now, in `pending`'s order (wave order: earlier
/// waves first), given what is in flight and which nodes are disrupted already.
///
/// `disrupted` are the nodes that lack a Ready pod of some daemon of the commit
/// right now, as observed (in-flight replacements, and anything else: a node whose
/// agent crashed counts too). Starting on a node not yet disrupted takes one unit
/// of `budget`; a node already disrupted takes none, but a replacement there waits
/// while one of its class is in flight on that node. Fail closed: a node is only
/// free when it was observed not disrupted.
pub fn admit<'a>(
    pending: &'a [Replacement],
    in_flight: &[Replacement],
    disrupted: &BTreeSet<String>,
    budget: usize,
) -> Vec<&'a Replacement> {
    let mut nodes: BTreeSet<&str> = disrupted.iter().map(String::as_str).collect();
    nodes.extend(in_flight.iter().map(|r| r.node.as_str()));
    let mut busy: BTreeSet<(&str, &str)> = in_flight
        .iter()
        .filter_map(|r| Some((r.node.as_str(), r.class.as_deref()?)))
        .collect();
    let mut running: BTreeSet<(&str, &str)> = in_flight
        .iter()
        .map(|r| (r.node.as_str(), r.daemon.as_str()))
        .collect();
    let mut started = Vec::new();
    for r in pending {
        if running.contains(&(r.node.as_str(), r.daemon.as_str())) {
            continue;
        }
        if let Some(class) = r.class.as_deref()
            && busy.contains(&(r.node.as_str(), class))
        {
            continue;
        }
        if !nodes.contains(r.node.as_str()) {
            if nodes.len() >= budget {
                continue;
            }
            nodes.insert(&r.node);
        }
        if let Some(class) = r.class.as_deref() {
            busy.insert((&r.node, class));
        }
        running.insert((&r.node, &r.daemon));
        started.push(r);
    }
    started
}

#[cfg(test)]
mod tests {
    use super::*;
    use WaveSize::{Nodes, Percent};

    fn nodes(spec: &[(&str, Option<&str>)]) -> Vec<WaveNode> {
        spec.iter()
            .map(|(n, z)| WaveNode {
                name: (*n).into(),
                topology: z.map(str::to_string),
            })
            .collect()
    }

    fn names(w: &Wave) -> Vec<&str> {
        w.nodes.iter().map(String::as_str).collect()
    }

    #[test]
    fn waves_of_one_then_ten_percent_then_half_then_all_cover_each_node_once() {
        let ns: Vec<WaveNode> = (0..20)
            .map(|i| WaveNode {
                name: format!("n{i:02}"),
                topology: None,
            })
            .collect();
        let w = plan_waves(
            &ns,
            &[Nodes(1), Percent(10), Percent(50), Percent(100)],
            false,
        )
        .unwrap();
        let sizes: Vec<usize> = w.iter().map(|w| w.nodes.len()).collect();
        assert_eq!(sizes, [1, 1, 8, 10]);
        assert_eq!(names(&w[0]), ["n00"]);
        assert_eq!(w.iter().map(|w| w.number).collect::<Vec<_>>(), [1, 2, 3, 4]);
    }

    #[test]
    fn zones_are_waved_one_after_another_and_unlabelled_nodes_come_last() {
        let ns = nodes(&[
            ("b1", Some("zone-b")),
            ("a1", Some("zone-a")),
            ("x", None),
            ("a2", Some("zone-a")),
            ("b2", Some("zone-b")),
        ]);
        let w = plan_waves(&ns, &[Nodes(1), Percent(100)], true).unwrap();
        let got: Vec<(Option<&str>, usize, Vec<&str>)> = w
            .iter()
            .map(|w| (w.scope.as_deref(), w.number, names(w)))
            .collect();
        assert_eq!(
            got,
            [
                (Some("zone-a"), 1, vec!["a1"]),
                (Some("zone-a"), 2, vec!["a2"]),
                (Some("zone-b"), 1, vec!["b1"]),
                (Some("zone-b"), 2, vec!["b2"]),
                (None, 1, vec!["x"]),
            ]
        );
    }

    #[test]
    fn a_wave_list_that_shrinks_stops_short_or_is_empty_is_refused() {
        assert_eq!(check_sizes(&[]), Err(WaveError::Empty));
        assert!(matches!(
            check_sizes(&[Percent(50), Percent(10), Percent(100)]),
            Err(WaveError::Shrinks { number: 2, .. })
        ));
        assert!(matches!(
            check_sizes(&[Nodes(1), Percent(50)]),
            Err(WaveError::Incomplete { .. })
        ));
        assert!(matches!(
            check_sizes(&[Nodes(0), Percent(100)]),
            Err(WaveError::Zero { number: 1 })
        ));
        assert!(matches!(
            check_sizes(&[Percent(150)]),
            Err(WaveError::OverHundred { number: 1, .. })
        ));
        assert_eq!(check_sizes(&[Nodes(1), Percent(100)]), Ok(()));
    }

    fn rep(node: &str, daemon: &str, class: Option<&str>) -> Replacement {
        Replacement {
            node: node.into(),
            daemon: daemon.into(),
            class: class.map(str::to_string),
        }
    }

    #[test]
    fn two_daemons_of_one_class_never_start_together_on_one_node() {
        let pending = [
            rep("n1", "cilium", Some("network")),
            rep("n1", "ebs-csi", Some("network")),
            rep("n1", "fluent-bit", None),
        ];
        let started = admit(&pending, &[], &BTreeSet::new(), 5);
        let got: Vec<&str> = started.iter().map(|r| r.daemon.as_str()).collect();
        assert_eq!(got, ["cilium", "fluent-bit"]);
        // With cilium in flight the other of its class still waits.
        let again = admit(&pending[1..2], &pending[..1], &BTreeSet::new(), 5);
        assert!(again.is_empty());
    }

    #[test]
    fn the_budget_counts_disrupted_nodes_including_ones_drover_did_not_disrupt() {
        let pending = [
            rep("n1", "a", None),
            rep("n2", "a", None),
            rep("n3", "a", None),
        ];
        let disrupted: BTreeSet<String> = ["n9".to_string()].into();
        let started = admit(&pending, &[], &disrupted, 2);
        assert_eq!(started.len(), 1, "n9 already takes one of the two");
        // A node already disrupted takes no more of the budget.
        let on_n9 = [rep("n9", "b", None)];
        assert_eq!(admit(&on_n9, &[], &disrupted, 1).len(), 1);
        assert_eq!(budget_nodes(Percent(1), 50), 1, "never 0");
        assert_eq!(budget_nodes(Percent(10), 300), 30);
    }
}
