//! Properties of the driver's wave plan and budget admission (issue 18's pure part):
//! every node is in exactly one wave, zones never interleave and waves follow
//! their sizes; a simulated rollout that completes replacements in any order never
//! disrupts more nodes than the budget, never runs two daemons of one class on one
//! node at once, and replaces every pod exactly once.

use std::collections::{BTreeMap, BTreeSet};

use drover_core::waves::{Replacement, WaveNode, WaveSize, admit, check_sizes, plan_waves};
use proptest::prelude::*;

fn sizes() -> impl Strategy<Value = Vec<WaveSize>> {
    proptest::collection::vec(
        prop_oneof![
            (1u32..6).prop_map(WaveSize::Nodes),
            (1u32..100).prop_map(WaveSize::Percent)
        ],
        0..4,
    )
    .prop_map(|mut v| {
        // Non-decreasing within each kind, ending at 100%.
        let mut counts: Vec<u32> = v
            .iter()
            .filter_map(|s| match s {
                WaveSize::Nodes(n) => Some(*n),
                _ => None,
            })
            .collect();
        let mut shares: Vec<u32> = v
            .iter()
            .filter_map(|s| match s {
                WaveSize::Percent(p) => Some(*p),
                _ => None,
            })
            .collect();
        counts.sort_unstable();
        shares.sort_unstable();
        let (mut c, mut p) = (counts.into_iter(), shares.into_iter());
        for s in &mut v {
            *s = match s {
                WaveSize::Nodes(_) => WaveSize::Nodes(c.next().unwrap()),
                WaveSize::Percent(_) => WaveSize::Percent(p.next().unwrap()),
            };
        }
        v.push(WaveSize::Percent(100));
        v
    })
}

fn group() -> impl Strategy<Value = Vec<WaveNode>> {
    proptest::collection::btree_map(0u16..500, proptest::option::of(0u8..4), 0..40).prop_map(|m| {
        m.into_iter()
            .map(|(n, z)| WaveNode {
                name: format!("node-{n:03}"),
                topology: z.map(|z| format!("zone-{z}")),
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn waves_partition_the_group_and_zones_finish_in_order(
        nodes in group(),
        sizes in sizes(),
        by in any::<bool>(),
    ) {
        prop_assert!(check_sizes(&sizes).is_ok());
        let waves = plan_waves(&nodes, &sizes, by).unwrap();
        // Each node exactly once.
        let mut seen = BTreeSet::new();
        for w in &waves {
            prop_assert!(!w.nodes.is_empty(), "an empty wave: {w:?}");
            for n in &w.nodes {
                prop_assert!(seen.insert(n.clone()), "{n} in two waves");
            }
        }
        let all: BTreeSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
        prop_assert_eq!(&seen, &all);
        // Scopes are contiguous: once a scope is left it never comes back.
        let mut left: BTreeSet<Option<String>> = BTreeSet::new();
        let mut current: Option<Option<String>> = None;
        for w in &waves {
            if current.as_ref() != Some(&w.scope) {
                if let Some(c) = current.take() {
                    left.insert(c);
                }
                prop_assert!(!left.contains(&w.scope), "scope {:?} came back", w.scope);
                current = Some(w.scope.clone());
            }
            if by {
                let zone = nodes.iter().find(|n| n.name == w.nodes[0]).unwrap().topology.clone();
                prop_assert!(w.nodes.iter().all(|n| nodes.iter().find(|m| &m.name == n).unwrap().topology == zone));
                prop_assert_eq!(&w.scope, &zone);
            } else {
                prop_assert_eq!(&w.scope, &None);
            }
        }
        // Within a scope, the cumulative count after each wave is the reach of
        // some size, and the first wave is no larger than the first size asks.
        let mut per_scope: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
        for w in &waves {
            per_scope.entry(w.scope.clone()).or_default().push(w.nodes.len());
        }
        for (scope, lens) in per_scope {
            let total = if by {
                nodes.iter().filter(|n| n.topology == scope).count()
            } else {
                nodes.len()
            };
            let reach = |s: &WaveSize| match *s {
                WaveSize::Nodes(n) => (n as usize).min(total),
                WaveSize::Percent(p) => (total * p as usize).div_ceil(100),
            };
            let reaches: BTreeSet<usize> = sizes.iter().map(reach).collect();
            let mut sum = 0;
            for l in &lens {
                sum += l;
                prop_assert!(reaches.contains(&sum), "{sum} is no size's reach in {scope:?}: {lens:?} {sizes:?}");
            }
            prop_assert_eq!(sum, total);
            prop_assert!(lens[0] <= reach(&sizes[0]).max(1));
        }
    }

    #[test]
    fn a_rollout_in_any_completion_order_stays_in_budget_and_class_and_replaces_each_pod_once(
        nodes in 1usize..12,
        daemons in proptest::collection::vec(proptest::option::of(0u8..2), 1..4),
        budget in 1usize..4,
        external in proptest::collection::btree_set(0usize..12, 0..3),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..200),
    ) {
        let external: BTreeSet<String> = external
            .into_iter()
            .filter(|n| *n < nodes)
            .take(budget - 1)
            .map(|n| format!("n{n}"))
            .collect();
        let mut pending: Vec<Replacement> = Vec::new();
        for n in 0..nodes {
            for (d, class) in daemons.iter().enumerate() {
                pending.push(Replacement {
                    node: format!("n{n}"),
                    daemon: format!("d{d}"),
                    class: class.map(|c| format!("class-{c}")),
                });
            }
        }
        let total = pending.len();
        let mut in_flight: Vec<Replacement> = Vec::new();
        let mut done: Vec<Replacement> = Vec::new();
        let mut picks = picks.into_iter();
        for _ in 0..(total * 4 + 10) {
            let mut disrupted = external.clone();
            disrupted.extend(in_flight.iter().map(|r| r.node.clone()));
            let started: Vec<Replacement> = admit(&pending, &in_flight, &disrupted, budget)
                .into_iter()
                .cloned()
                .collect();
            pending.retain(|p| !started.contains(p));
            in_flight.extend(started);
            // The invariants, at this moment.
            let mut now: BTreeSet<&str> = external.iter().map(String::as_str).collect();
            now.extend(in_flight.iter().map(|r| r.node.as_str()));
            prop_assert!(now.len() <= budget, "{} nodes disrupted, budget {budget}", now.len());
            let mut classes = BTreeSet::new();
            for r in &in_flight {
                if let Some(c) = &r.class {
                    prop_assert!(classes.insert((r.node.clone(), c.clone())), "two of {c} on {}", r.node);
                }
            }
            if in_flight.is_empty() {
                break;
            }
            // One replacement finishes: any of those in flight.
            let i = picks.next().map_or(0, |p| p.index(in_flight.len()));
            done.push(in_flight.remove(i));
        }
        prop_assert!(pending.is_empty() && in_flight.is_empty(), "stuck: {} pending", pending.len());
        let unique: BTreeSet<&Replacement> = done.iter().collect();
        prop_assert_eq!(unique.len(), total);
        prop_assert_eq!(done.len(), total);
    }
}
