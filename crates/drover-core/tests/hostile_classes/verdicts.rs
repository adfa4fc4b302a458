//! Class 5, the plan's half: a canary (or any gating) stage that selects no node.
//! Before: its stage "completed" on zero pods, and the change went fleet-wide
//! without the canary's bake, silently.

use std::collections::BTreeMap;

use drover_core::guard::{Refusal, check_gates};
use drover_core::plan::{NodeInfo, Plan, PlanMeta, Verdict, compare_renders, plan};
use drover_core::report;
use drover_core::style::Style;

use super::support::*;

fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        taints: vec![],
    }
}

/// The plan of an image bump of the agent (placed per `placement`) over `nodes`.
fn bump(placement: &str, nodes: Option<&[NodeInfo]>) -> Plan {
    let agent = |img: &str| agent_with(placement).replace("agent:v1", img);
    let base = load(&fleet_with(&[("daemons/agent.yaml", &agent("agent:v1"))])).expect("base");
    let head = load(&fleet_with(&[("daemons/agent.yaml", &agent("agent:v2"))])).expect("head");
    let (b, h) = (render_all(&base), render_all(&head));
    plan(
        &head,
        &h,
        compare_renders(Some(&b), &h),
        nodes,
        PlanMeta::default(),
    )
}

#[test]
fn a_canary_stage_with_no_node_is_a_verdict_and_apply_refuses_it() {
    let nodes = [node("g1", &[]), node("g2", &[])];
    let p = bump("", Some(&nodes));
    assert_eq!(
        p.verdicts,
        [Verdict::UngatedStage {
            stage: "canary".into(),
            groups: vec!["canary".into()],
            daemons: vec!["agent".into()],
            later_stages: vec!["fleet".into()],
        }]
    );
    match check_gates(&p) {
        Err(r @ Refusal::UngatedStage { .. }) => {
            let m = r.to_string();
            assert!(m.starts_with("refusing to roll out: stage `canary` (groups canary) selects no node, so the changes of `agent` in stage(s) fleet would go out without its bake"), "{m}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let text = report::text::render(&p, Style::plain());
    assert!(
        text.contains("warning: stage `canary` (groups canary) selects no node"),
        "{text}"
    );
    let md = report::markdown::render(&p);
    assert!(
        md.contains(":warning: **stage `canary` (groups canary) selects no node"),
        "{md}"
    );
    let json = report::json::render(&p);
    assert!(json.contains("\"kind\": \"ungated-stage\""), "{json}");
}

#[test]
fn a_gating_stage_that_selects_nodes_or_gates_nothing_is_no_verdict() {
    let with_canary = [node("c1", &[("role", "canary")]), node("g1", &[])];
    for (placement, nodes) in [
        // The canary has a node.
        ("", Some(&with_canary[..])),
        // Nothing drover has not seen is called empty: no node list, no verdict.
        ("", None),
        // The daemon is not placed in the canary: it was never meant to gate it.
        ("  exclude: [canary]\n", Some(&with_canary[1..])),
        // Nothing restarts after the empty stage (no node anywhere).
        ("", Some(&[][..])),
    ] {
        let p = bump(placement, nodes);
        assert!(
            p.verdicts.is_empty(),
            "{placement:?} {nodes:?}: {:?}",
            p.verdicts
        );
        assert!(check_gates(&p).is_ok());
    }
}

#[test]
fn a_middle_stage_with_no_node_is_a_verdict_too() {
    let fleet = FLEET.replace(
        "    - {name: fleet, groups: [gpu, general]}\n",
        "    - {name: gpus, groups: [gpu]}\n    - {name: fleet, groups: [general]}\n",
    );
    let nodes = [node("c1", &[("role", "canary")]), node("g1", &[])];
    let agent = |img: &str| AGENT.replace("agent:v1", img);
    let base = load(&fleet_with(&[
        ("drover.yaml", &fleet),
        ("daemons/agent.yaml", &agent("agent:v1")),
    ]))
    .unwrap();
    let head = load(&fleet_with(&[
        ("drover.yaml", &fleet),
        ("daemons/agent.yaml", &agent("agent:v2")),
    ]))
    .unwrap();
    let (b, h) = (render_all(&base), render_all(&head));
    let p = plan(
        &head,
        &h,
        compare_renders(Some(&b), &h),
        Some(&nodes),
        PlanMeta::default(),
    );
    assert!(
        matches!(&p.verdicts[..], [Verdict::UngatedStage { stage, .. }] if stage == "gpus"),
        "{:?}",
        p.verdicts
    );
}
