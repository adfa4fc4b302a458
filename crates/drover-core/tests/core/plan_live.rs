//! The plan in live mode, without a cluster: objects as a LIST returns them (server
//! fields, an older commit annotation, status) against the render of the example fleet.

use drover_core::diff::Impact;
use drover_core::limits::LIMITS;
use drover_core::plan::{Action, Comparison, PlanMeta, plan};
use drover_core::render::{RenderContext, render};
use drover_core::validate::load_fleet;
use serde_json::json;

fn example() -> (drover_core::fleet::Fleet, drover_core::render::DesiredSet) {
    let files = crate::support::read_dir("examples/fleet");
    let fleet = load_fleet(&files, &LIMITS).unwrap();
    let ctx = RenderContext {
        commit: Some("c".repeat(40)),
    };
    let desired = render(&fleet, &ctx, LIMITS.max_rendered_bytes).unwrap();
    (fleet, desired)
}

/// What a LIST returns for an object drover applied at an older commit.
fn as_live(manifest: &serde_json::Value) -> serde_json::Value {
    let mut v = manifest.clone();
    let meta = v["metadata"].as_object_mut().unwrap();
    meta.insert("uid".into(), json!("0b7c9a4e-1"));
    meta.insert("resourceVersion".into(), json!("4711"));
    meta.insert("generation".into(), json!(3));
    meta.insert("creationTimestamp".into(), json!("2024-10-01T08:10:00Z"));
    meta.insert("managedFields".into(), json!([{"manager": "drover"}]));
    let ann = meta["annotations"].as_object_mut().unwrap();
    ann.insert("drover.dev/commit".into(), json!("a".repeat(40)));
    ann.insert(
        "deprecated.daemonset.template.generation".into(),
        json!("3"),
    );
    v["status"] = json!({"desiredNumberScheduled": 5, "numberReady": 5});
    v
}

#[test]
fn live_objects_differing_only_in_server_fields_and_commit_are_unchanged() {
    let (fleet, desired) = example();
    let comparisons: Vec<Comparison> = desired
        .items
        .iter()
        .map(|i| Comparison {
            name: i.name.clone(),
            before: Some(as_live(&i.manifest.value())),
            after: Some(i.manifest.value()),
        })
        .collect();
    let p = plan(&fleet, &desired, comparisons, None, PlanMeta::default());
    assert!(!p.has_changes(), "{p:#?}");
    assert_eq!(p.summary.unchanged, desired.items.len());
}

#[test]
fn a_label_added_to_a_live_daemonset_is_a_metadata_only_update() {
    let (fleet, desired) = example();
    let item = &desired.items[0];
    let mut live = as_live(&item.manifest.value());
    live["metadata"]["labels"]["owner"] = json!("someone");
    let nodes = crate::support::example_nodes();
    let p = plan(
        &fleet,
        &desired,
        vec![Comparison {
            name: item.name.clone(),
            before: Some(live),
            after: Some(item.manifest.value()),
        }],
        Some(&nodes),
        PlanMeta::default(),
    );
    let a = p.actions().find(|a| a.name == item.name).unwrap();
    assert_eq!((a.action, a.impact), (Action::Update, Impact::MetadataOnly));
    assert!(!a.restarts_pods);
    assert_eq!(a.nodes, Some(0));
    assert_eq!(a.changes.len(), 1, "{:?}", a.changes);
    assert_eq!(a.changes[0].path, "metadata.labels.owner");
    assert_eq!(a.changes[0].after, None);
}

#[test]
fn a_live_daemonset_no_longer_in_git_is_pruned_and_placed_by_its_own_affinity() {
    let (fleet, desired) = example();
    let gone = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "old-agent-retired", "namespace": "node-agents",
            "labels": {"drover.dev/fleet": "prod-eu1", "drover.dev/daemon": "old-agent", "drover.dev/group": "retired"}},
        "spec": {"template": {"spec": {
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "node-role.kubernetes.io/infra", "operator": "Exists"}]}]}}},
            "tolerations": [{"operator": "Exists"}]}}}
    });
    let nodes = crate::support::example_nodes();
    let p = plan(
        &fleet,
        &desired,
        vec![Comparison {
            name: "old-agent-retired".into(),
            before: Some(gone),
            after: None,
        }],
        Some(&nodes),
        PlanMeta::default(),
    );
    assert_eq!(p.prune.len(), 1);
    assert_eq!(p.prune[0].action, Action::Delete);
    assert_eq!(p.prune[0].group, "retired");
    assert_eq!(p.prune[0].nodes, Some(2), "the two infra nodes");
}

#[test]
fn a_plan_without_diffs_is_the_same_plan_with_every_diff_left_empty() {
    // The sync loop shows no diff; the actions, their impact and field changes
    // must not depend on whether the text was made.
    let (fleet, desired) = example();
    let comparisons = || -> Vec<Comparison> {
        desired
            .items
            .iter()
            .enumerate()
            .map(|(n, i)| {
                let mut live = as_live(&i.manifest.value());
                if n % 2 == 0 {
                    live["metadata"]["labels"]["owner"] = json!("someone");
                }
                Comparison {
                    name: i.name.clone(),
                    // One create among the updates.
                    before: (n != 1).then_some(live),
                    after: Some(i.manifest.value()),
                }
            })
            .collect()
    };
    let with = plan(&fleet, &desired, comparisons(), None, PlanMeta::default());
    let mut without = plan(
        &fleet,
        &desired,
        comparisons(),
        None,
        PlanMeta {
            without_diffs: true,
            ..PlanMeta::default()
        },
    );
    assert!(
        with.actions()
            .filter(|a| a.action != Action::Unchanged)
            .all(|a| !a.diff.is_empty())
    );
    assert!(without.actions().all(|a| a.diff.is_empty()));
    assert!(without.actions().any(|a| a.action == Action::Create));
    let mut with = with;
    for p in [&mut with, &mut without] {
        for s in &mut p.stages {
            for a in &mut s.actions {
                a.diff.clear();
            }
        }
    }
    assert_eq!(with, without);
}
