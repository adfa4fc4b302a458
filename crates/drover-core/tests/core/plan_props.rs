//! Property: a fleet compared with itself at another commit plans no change. Two
//! renders of the same generated tree differ only in the commit annotation; the plan
//! has no changes, restarts no node, and does not depend on the order of the
//! comparisons.

use drover_core::limits::LIMITS;
use drover_core::load::SourceFile;
use drover_core::plan::{Comparison, NodeInfo, PlanMeta, compare_renders, plan};
use drover_core::render::{RenderContext, render};
use drover_core::validate::load_fleet;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct DaemonGen {
    tag: u8,
    env: Vec<(u8, u8)>,
    groups: Option<Vec<usize>>,
    label: bool,
    max_unavailable: Option<u8>,
}

fn daemon() -> impl Strategy<Value = DaemonGen> {
    (
        0u8..5,
        proptest::collection::vec((0u8..4, 0u8..5), 0..4),
        proptest::option::of(proptest::collection::vec(0usize..4, 1..3)),
        any::<bool>(),
        proptest::option::of(0u8..4),
    )
        .prop_map(|(tag, env, groups, label, max_unavailable)| DaemonGen {
            tag,
            env,
            groups,
            label,
            max_unavailable,
        })
}

/// A fleet of `groups` node groups (the last one a catch-all when `catch_all`)
/// and the given daemons, as repository files.
fn fleet_files(groups: usize, catch_all: bool, daemons: &[DaemonGen]) -> Vec<SourceFile> {
    let names: Vec<String> = (0..groups).map(|i| format!("g{i}")).collect();
    let mut files = vec![SourceFile {
        path: "drover.yaml".into(),
        bytes: format!(
            "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: prop}}\nspec:\n  namespace: agents\n  groups: [{}]\n",
            names.join(", ")
        )
        .into_bytes(),
    }];
    for (i, g) in names.iter().enumerate() {
        let selector = if catch_all && i + 1 == groups {
            "{}".to_string()
        } else {
            format!("{{matchLabels: {{pool: {g}}}}}")
        };
        files.push(SourceFile {
            path: format!("groups/{g}.yaml"),
            bytes: format!(
                "apiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {{name: {g}}}\nspec:\n  selector: {selector}\n  tolerations: [{{key: pool-{g}, operator: Exists, effect: NoSchedule}}]\n"
            )
            .into_bytes(),
        });
    }
    for (i, d) in daemons.iter().enumerate() {
        let mut y = format!(
            "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata:\n  name: d{i}\n{}spec:\n  image: example.com/agent:v1.{}\n",
            if d.label { "  labels: {team: t}\n" } else { "" },
            d.tag
        );
        if !d.env.is_empty() {
            y.push_str("  env:\n");
            let mut seen = std::collections::BTreeSet::new();
            for (k, v) in &d.env {
                if seen.insert(k) {
                    let name = ["LEVEL", "API_TOKEN", "REGION", "DB_PASSWORD"][*k as usize];
                    y.push_str(&format!("    {name}: \"v{v}\"\n"));
                }
            }
        }
        if let Some(gs) = &d.groups {
            let mut gs: Vec<&String> = gs.iter().filter_map(|g| names.get(*g)).collect();
            gs.sort();
            gs.dedup();
            if !gs.is_empty() {
                let list: Vec<&str> = gs.iter().map(|s| s.as_str()).collect();
                y.push_str(&format!("  groups: [{}]\n", list.join(", ")));
            }
        }
        if let Some(m) = d.max_unavailable {
            y.push_str(&format!("  rollout: {{maxUnavailable: {}}}\n", m + 1));
        }
        files.push(SourceFile {
            path: format!("daemons/d{i}.yaml"),
            bytes: y.into_bytes(),
        });
    }
    files
}

fn nodes(pools: &[usize]) -> Vec<NodeInfo> {
    pools
        .iter()
        .enumerate()
        .map(|(i, p)| NodeInfo {
            name: format!("n{i}"),
            labels: [("pool".to_string(), format!("g{p}"))].into(),
            taints: vec![],
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn diff_of_a_fleet_with_itself_is_empty(
        groups in 1usize..4,
        catch_all in any::<bool>(),
        daemons in proptest::collection::vec(daemon(), 1..4),
        pools in proptest::collection::vec(0usize..5, 0..8),
    ) {
        let files = fleet_files(groups, catch_all, &daemons);
        let fleet = load_fleet(&files, &LIMITS)
            .map_err(|d| TestCaseError::fail(format!("generated fleet is invalid:\n{d}")))?;
        let at = |c: &str| render(&fleet, &RenderContext { commit: Some(c.repeat(40)) }, LIMITS.max_rendered_bytes).unwrap();
        // Two commits of the same tree: only the commit annotation differs.
        let (a, b) = (at("a"), at("b"));
        let ns = nodes(&pools);
        let comparisons = compare_renders(Some(&a), &b);
        let p = plan(&fleet, &b, comparisons.clone(), Some(&ns), PlanMeta::default());
        prop_assert!(!p.has_changes(), "{:#?}", p);
        prop_assert_eq!(p.summary.unchanged, b.items.len());
        prop_assert_eq!(p.summary.nodes_restarted, Some(0));
        for act in p.actions() {
            prop_assert!(act.diff.is_empty() && act.changes.is_empty(), "{:?}", act);
        }
        // The order of the comparisons does not matter.
        let reversed: Vec<Comparison> = comparisons.into_iter().rev().collect();
        let q = plan(&fleet, &b, reversed, Some(&ns), PlanMeta::default());
        prop_assert_eq!(p, q);
    }
}
