//! A stage's gate settings from the Fleet (`progressDeadline`, `maxUnobserved`,
//! `spec.nodeConditions`) reach the plan the rollout machine's gate is built from.

use drover_core::limits::LIMITS;
use drover_core::load::SourceFile;
use drover_core::machine::ConditionRule;
use drover_core::plan::{PlanMeta, plan};
use drover_core::validate::load_fleet;

fn fleet_yaml(stages: &str, extra: &str) -> String {
    format!(
        "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: gates}}\nspec:\n  namespace: gates\n  groups: [canary, general]\n  stages:\n{stages}{extra}"
    )
}

fn stage_plans(drover_yaml: &str) -> Vec<drover_core::plan::StagePlan> {
    let base = crate::support::repo_root().join("fixtures/hostile/base");
    let mut files: Vec<SourceFile> = [
        "groups/canary.yaml",
        "groups/general.yaml",
        "daemons/agent.yaml",
    ]
    .iter()
    .map(|p| SourceFile {
        path: (*p).into(),
        bytes: std::fs::read(base.join(p)).unwrap(),
    })
    .collect();
    files.push(SourceFile {
        path: "drover.yaml".into(),
        bytes: drover_yaml.as_bytes().to_vec(),
    });
    let fleet = load_fleet(&files, &LIMITS).unwrap_or_else(|d| panic!("{d}"));
    let desired = crate::support::render_files(&files);
    plan(&fleet, &desired, [], None, PlanMeta::default()).stages
}

#[test]
fn without_settings_a_stage_gates_on_its_timeout_sixty_seconds_unobserved_and_the_default_conditions()
 {
    let stages = stage_plans(&fleet_yaml(
        "    - {name: canary, groups: [canary], timeout: 5m}\n    - {name: fleet, groups: [general]}\n",
        "",
    ));
    assert_eq!(stages[0].progress_deadline().as_secs(), 300);
    assert_eq!(stages[0].max_unobserved().as_secs(), 60);
    assert_eq!(stages[0].condition_rules(), ConditionRule::defaults());
    // The default values are not written into the plan.
    let json = serde_json::to_value(&stages[0]).unwrap();
    for k in [
        "progress_deadline_seconds",
        "max_unobserved_seconds",
        "node_conditions",
    ] {
        assert!(json.get(k).is_none(), "{k} in {json}");
    }
}

#[test]
fn a_stage_s_deadline_unobserved_limit_and_the_fleet_s_conditions_reach_its_gate() {
    let stages = stage_plans(&fleet_yaml(
        "    - {name: canary, groups: [canary], timeout: 10m, progressDeadline: 2m, maxUnobserved: 20s}\n    - {name: fleet, groups: [general]}\n",
        "  nodeConditions:\n    - {type: KernelDeadlock, notStatus: \"True\"}\n    - {type: example.com/GpuHealthy, status: \"True\"}\n",
    ));
    assert_eq!(stages[0].progress_deadline().as_secs(), 120);
    assert_eq!(stages[0].max_unobserved().as_secs(), 20);
    assert_eq!(
        stages[1].max_unobserved().as_secs(),
        60,
        "only the stage that says so"
    );
    let mut want = ConditionRule::defaults();
    want.push(ConditionRule::MustNotBe {
        condition: "KernelDeadlock".into(),
        status: "True".into(),
    });
    want.push(ConditionRule::MustBe {
        condition: "example.com/GpuHealthy".into(),
        status: "True".into(),
    });
    // Every stage checks the fleet's conditions, after the defaults (which stay).
    for s in &stages {
        assert_eq!(s.condition_rules(), want, "{}", s.name);
    }
}
