//! Property: the rendered DaemonSets partition the nodes. For random node groups,
//! daemon placements and per-daemon node constraints (`nodeSelector` and
//! `nodeAffinity.matchExpressions`, every operator), built through the real YAML
//! path, every possible node runs at most one copy of each daemon, and that copy is
//! the DaemonSet of the first group whose selector matches the node, when the node
//! satisfies the daemon's constraints (none when the daemon is not placed there or
//! the node fails them).
//!
//! Both sides are computed here, independently of `drover_core::selector`: the
//! expected group from the selectors as generated, the actual placement from the
//! rendered `nodeSelectorTerms` (see `crate::support::admits`).

use std::collections::BTreeMap;

use crate::support::admits;
use drover_core::limits::LIMITS;
use drover_core::load::SourceFile;
use drover_core::render::{RenderContext, render};
use drover_core::validate::load_fleet;
use proptest::prelude::*;
use proptest::sample::subsequence;

const KEYS: [&str; 4] = ["a", "b", "c", "d"];
const VALUES: [&str; 3] = ["x", "y", "z"];
/// An integer-valued key, used only by `Gt`/`Lt` in the last group (the only place
/// they are allowed: nothing after it needs their negation).
const NUM_KEY: &str = "n";
const NUMS: [&str; 3] = ["1", "2", "3"];

#[derive(Debug, Clone)]
enum Expr {
    In(&'static str, Vec<&'static str>),
    NotIn(&'static str, Vec<&'static str>),
    Exists(&'static str),
    DoesNotExist(&'static str),
    Gt(&'static str),
    Lt(&'static str),
}

impl Expr {
    fn matches(&self, node: &BTreeMap<String, String>) -> bool {
        let get = |k: &str| node.get(k).map(String::as_str);
        match self {
            Expr::In(k, vs) => get(k).is_some_and(|v| vs.contains(&v)),
            Expr::NotIn(k, vs) => get(k).is_none_or(|v| !vs.contains(&v)),
            Expr::Exists(k) => get(k).is_some(),
            Expr::DoesNotExist(k) => get(k).is_none(),
            Expr::Gt(b) => {
                get(NUM_KEY).is_some_and(|v| v.parse::<i64>().unwrap() > b.parse::<i64>().unwrap())
            }
            Expr::Lt(b) => {
                get(NUM_KEY).is_some_and(|v| v.parse::<i64>().unwrap() < b.parse::<i64>().unwrap())
            }
        }
    }

    fn yaml(&self) -> String {
        let list = |vs: &[&str]| {
            vs.iter()
                .map(|v| format!("\"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Expr::In(k, vs) => format!("{{key: {k}, operator: In, values: [{}]}}", list(vs)),
            Expr::NotIn(k, vs) => format!("{{key: {k}, operator: NotIn, values: [{}]}}", list(vs)),
            Expr::Exists(k) => format!("{{key: {k}, operator: Exists}}"),
            Expr::DoesNotExist(k) => format!("{{key: {k}, operator: DoesNotExist}}"),
            Expr::Gt(b) => format!("{{key: {NUM_KEY}, operator: Gt, values: [\"{b}\"]}}"),
            Expr::Lt(b) => format!("{{key: {NUM_KEY}, operator: Lt, values: [\"{b}\"]}}"),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Selector {
    match_labels: BTreeMap<&'static str, &'static str>,
    exprs: Vec<Expr>,
}

impl Selector {
    fn matches(&self, node: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| node.get(*k).is_some_and(|have| have == v))
            && self.exprs.iter().all(|e| e.matches(node))
    }
}

#[derive(Debug, Clone)]
struct DaemonCase {
    /// `None`: no `groups:` field; `Some(None)`: `groups: [all]`; else a subset.
    groups: Option<Option<Vec<usize>>>,
    exclude: Vec<usize>,
    /// `nodeSelector` (its labels) and `nodeAffinity.matchExpressions` (its exprs).
    constraints: Selector,
}

#[derive(Debug, Clone)]
struct FleetCase {
    groups: Vec<Selector>,
    daemons: Vec<DaemonCase>,
}

fn key() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(KEYS.to_vec())
}

fn values() -> impl Strategy<Value = Vec<&'static str>> {
    subsequence(VALUES.to_vec(), 1..=3)
}

fn expr() -> impl Strategy<Value = Expr> {
    prop_oneof![
        (key(), values()).prop_map(|(k, v)| Expr::In(k, v)),
        (key(), values()).prop_map(|(k, v)| Expr::NotIn(k, v)),
        key().prop_map(Expr::Exists),
        key().prop_map(Expr::DoesNotExist),
    ]
}

/// A non-empty selector (an empty one is the catch-all, generated separately).
fn selector() -> impl Strategy<Value = Selector> {
    (
        proptest::collection::btree_map(key(), proptest::sample::select(VALUES.to_vec()), 0..=1),
        proptest::collection::vec(expr(), 0..=2),
    )
        .prop_filter("a non-catch-all selector", |(l, e)| {
            !l.is_empty() || !e.is_empty()
        })
        .prop_map(|(match_labels, exprs)| Selector {
            match_labels,
            exprs,
        })
}

fn numeric() -> impl Strategy<Value = Option<Expr>> {
    prop_oneof![
        2 => Just(None),
        1 => proptest::sample::select(NUMS.to_vec()).prop_map(|b| Some(Expr::Gt(b))),
        1 => proptest::sample::select(NUMS.to_vec()).prop_map(|b| Some(Expr::Lt(b))),
    ]
}

fn daemon(n: usize) -> impl Strategy<Value = DaemonCase> {
    let idx: Vec<usize> = (0..n).collect();
    (
        prop_oneof![
            Just(None),
            Just(Some(None)),
            subsequence(idx.clone(), 1..=n).prop_map(|s| Some(Some(s))),
        ],
        subsequence(idx, 0..=n.saturating_sub(1)),
        constraints(),
    )
        .prop_map(|(groups, exclude, constraints)| DaemonCase {
            groups,
            exclude,
            constraints,
        })
}

/// A daemon's node constraints: any operator, `Gt`/`Lt` included (they are ANDed,
/// never negated, so nothing limits where they may appear).
fn constraints() -> impl Strategy<Value = Selector> {
    let any_expr = prop_oneof![
        3 => expr(),
        1 => proptest::sample::select(NUMS.to_vec()).prop_map(Expr::Gt),
        1 => proptest::sample::select(NUMS.to_vec()).prop_map(Expr::Lt),
    ];
    prop_oneof![
        1 => Just(Selector::default()),
        2 => (
            proptest::collection::btree_map(key(), proptest::sample::select(VALUES.to_vec()), 0..=2),
            proptest::collection::vec(any_expr, 0..=2),
        )
            .prop_map(|(match_labels, exprs)| Selector {
                match_labels,
                exprs,
            }),
    ]
}

fn fleet() -> impl Strategy<Value = FleetCase> {
    (1..=5usize).prop_flat_map(|n| {
        (
            proptest::collection::vec(selector(), n),
            any::<bool>(),
            numeric(),
            proptest::collection::vec(daemon(n), 1..=3),
        )
            .prop_map(move |(mut groups, catch_all, num, mut daemons)| {
                // A daemon placed nowhere is (rightly) a validation error: keep at
                // least one group by dropping its `exclude`.
                for d in &mut daemons {
                    if d.placement(n).is_empty() {
                        d.exclude.clear();
                    }
                }
                if catch_all {
                    groups[n - 1] = Selector::default();
                } else if let Some(e) = num {
                    groups[n - 1].exprs.push(e);
                }
                FleetCase { groups, daemons }
            })
    })
}

fn group_name(i: usize) -> String {
    format!("g{i}")
}

impl DaemonCase {
    /// The groups the daemon is placed in, as FLEET-FORMAT defines `groups`/`exclude`.
    fn placement(&self, n: usize) -> Vec<usize> {
        let chosen: Vec<usize> = match &self.groups {
            None | Some(None) => (0..n).collect(),
            Some(Some(s)) => s.clone(),
        };
        chosen
            .into_iter()
            .filter(|g| !self.exclude.contains(g))
            .collect()
    }
}

/// The fleet as YAML files: drover.yaml, all groups in one multi-document file,
/// one file per daemon.
fn files(case: &FleetCase) -> Vec<SourceFile> {
    let n = case.groups.len();
    let names: Vec<String> = (0..n).map(group_name).collect();
    let mut out = vec![SourceFile {
        path: "drover.yaml".into(),
        bytes: format!(
            "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: props}}\nspec:\n  namespace: agents\n  groups: [{}]\n",
            names.join(", ")
        )
        .into_bytes(),
    }];
    let mut groups = String::new();
    for (i, sel) in case.groups.iter().enumerate() {
        groups.push_str(&format!(
            "---\napiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {{name: {}}}\nspec:\n  selector:",
            group_name(i)
        ));
        if sel.match_labels.is_empty() && sel.exprs.is_empty() {
            groups.push_str(" {}\n");
            continue;
        }
        groups.push('\n');
        if !sel.match_labels.is_empty() {
            let l: Vec<String> = sel
                .match_labels
                .iter()
                .map(|(k, v)| format!("{k}: \"{v}\""))
                .collect();
            groups.push_str(&format!("    matchLabels: {{{}}}\n", l.join(", ")));
        }
        if !sel.exprs.is_empty() {
            groups.push_str("    matchExpressions:\n");
            for e in &sel.exprs {
                groups.push_str(&format!("      - {}\n", e.yaml()));
            }
        }
    }
    out.push(SourceFile {
        path: "groups/all.yaml".into(),
        bytes: groups.into_bytes(),
    });
    for (i, d) in case.daemons.iter().enumerate() {
        let mut text = format!(
            "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {{name: d{i}}}\nspec:\n  image: registry.example.com/agent:1.0\n"
        );
        match &d.groups {
            None => {}
            Some(None) => text.push_str("  groups: [all]\n"),
            Some(Some(s)) => text.push_str(&format!(
                "  groups: [{}]\n",
                s.iter()
                    .map(|g| group_name(*g))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        if !d.exclude.is_empty() {
            text.push_str(&format!(
                "  exclude: [{}]\n",
                d.exclude
                    .iter()
                    .map(|g| group_name(*g))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let c = &d.constraints;
        if !c.match_labels.is_empty() {
            let l: Vec<String> = c
                .match_labels
                .iter()
                .map(|(k, v)| format!("{k}: \"{v}\""))
                .collect();
            text.push_str(&format!("  nodeSelector: {{{}}}\n", l.join(", ")));
        }
        if !c.exprs.is_empty() {
            text.push_str("  nodeAffinity:\n    matchExpressions:\n");
            for e in &c.exprs {
                text.push_str(&format!("      - {}\n", e.yaml()));
            }
        }
        out.push(SourceFile {
            path: format!("daemons/d{i}.yaml"),
            bytes: text.into_bytes(),
        });
    }
    out
}

/// Every node over the label universe: each key absent or one of its values.
fn all_nodes() -> Vec<BTreeMap<String, String>> {
    let mut nodes = vec![BTreeMap::new()];
    let universe: Vec<(&str, &[&str])> = KEYS
        .iter()
        .map(|k| (*k, &VALUES[..]))
        .chain([(NUM_KEY, &NUMS[..])])
        .collect();
    for (k, vs) in universe {
        let mut next = Vec::new();
        for n in &nodes {
            next.push(n.clone());
            for v in vs {
                let mut m = n.clone();
                m.insert(k.to_string(), v.to_string());
                next.push(m);
            }
        }
        nodes = next;
    }
    nodes
}

fn source_text(files: &[SourceFile]) -> String {
    files
        .iter()
        .map(|f| format!("# {}\n{}", f.path, String::from_utf8_lossy(&f.bytes)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_global_rejects: 4096, ..ProptestConfig::default() })]

    #[test]
    fn every_node_runs_each_daemon_at_most_once_and_only_in_its_first_matching_group(case in fleet()) {
        let files = files(&case);
        let fleet = match load_fleet(&files, &LIMITS) {
            Ok(f) => f,
            Err(d) => {
                // The only fleets the validator may reject here: a group that can
                // never match (shadowed by earlier ones), one whose exclusion of
                // earlier groups needs too many terms, or a daemon whose own
                // constraints no node can satisfy.
                let text = d.to_string();
                prop_assert!(
                    d.0.iter().all(|e| e.message.contains("can never match a node")
                        || e.message.contains("nodeSelectorTerms")
                        || e.message.contains("node constraints contradict each other")),
                    "unexpected rejection:\n{}\n{}",
                    text,
                    source_text(&files)
                );
                // A group rejected as shadowed really is: no node has it as its
                // first match.
                for e in d.0.iter().filter(|e| e.message.contains("can never match a node")) {
                    let g: usize = e.message.split('`').nth(1).and_then(|n| n.strip_prefix('g'))
                        .and_then(|i| i.parse().ok()).expect("group name in the message");
                    let reachable = all_nodes().into_iter()
                        .find(|node| case.groups.iter().position(|s| s.matches(node)) == Some(g));
                    prop_assert!(reachable.is_none(), "group g{} rejected as shadowed, yet node {:?} belongs to it:\n{}\n{}", g, reachable, text, source_text(&files));
                }
                // Constraints rejected as contradictory really are: no node
                // satisfies them.
                for e in d.0.iter().filter(|e| e.message.contains("node constraints contradict")) {
                    let i: usize = e.path.strip_prefix("daemons/d").and_then(|p| p.strip_suffix(".yaml"))
                        .and_then(|i| i.parse().ok()).expect("a daemon file");
                    let node = all_nodes().into_iter().find(|node| case.daemons[i].constraints.matches(node));
                    prop_assert!(node.is_none(), "d{}'s constraints rejected, yet node {:?} satisfies them:\n{}\n{}", i, node, text, source_text(&files));
                }
                prop_assume!(false, "rejected as intended: {}", text);
                unreachable!()
            }
        };
        let set = render(&fleet, &RenderContext::default(), LIMITS.max_rendered_bytes)
            .expect("render");
        let n = case.groups.len();
        for node in all_nodes() {
            let first = case.groups.iter().position(|g| g.matches(&node));
            for (i, d) in case.daemons.iter().enumerate() {
                let daemon = format!("d{i}");
                let hits: Vec<&str> = set
                    .items
                    .iter()
                    .filter(|it| it.daemon == daemon && admits(&it.manifest.value(), &node))
                    .map(|it| it.group.as_str())
                    .collect();
                let expected: Vec<String> = first
                    .filter(|g| d.placement(n).contains(g) && d.constraints.matches(&node))
                    .map(group_name)
                    .into_iter()
                    .collect();
                prop_assert_eq!(
                    &hits,
                    &expected.iter().map(String::as_str).collect::<Vec<_>>(),
                    "node {:?}, daemon {}\n{}",
                    node,
                    daemon,
                    source_text(&files)
                );
            }
        }
    }
}
