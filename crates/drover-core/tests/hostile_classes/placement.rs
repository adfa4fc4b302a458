//! Class 5: placement and rollout mistakes validation used to let through.
//!
//! Before: a NodeGroup named `all` collided with `groups: [all]`; a first group
//! whose selector could match no node was accepted (its stage then "completed" on
//! zero pods); two daemons could bind one host port on the same nodes; `maxSurge > 0`
//! with a host port was accepted; `bake: 999999999h` was accepted. (The plan's
//! verdict on a gating stage that selects no live node is in `verdicts.rs`.)

use super::support::*;

const TWO_DAEMONS_GROUP: &str = "general";

fn other_daemon(extra: &str) -> String {
    format!(
        "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {{name: other}}\nspec:\n  image: registry.example/other:v1\n{extra}"
    )
}

#[test]
fn a_node_group_named_all_is_refused() {
    let fleet = FLEET
        .replace(
            "groups: [canary, gpu, general]",
            "groups: [canary, gpu, all]",
        )
        .replace("groups: [gpu, general]", "groups: [gpu, all]");
    let all = GENERAL.replace("name: general", "name: all");
    let e = refused_with(
        &fleet_with(&[("drover.yaml", &fleet), ("groups/general.yaml", &all)]),
        &[
            "groups/general.yaml:3:",
            "metadata.name: `all` is reserved for every group",
        ],
    );
    assert!(
        e.contains("drover.yaml:6:") && e.contains("spec.groups[2]: `all` is reserved"),
        "{e}"
    );
}

#[test]
fn a_selector_that_contradicts_itself_is_refused_in_any_position() {
    for (file, base) in [("groups/canary.yaml", CANARY), ("groups/gpu.yaml", GPU)] {
        let text = base.replace(
            "spec:\n  selector:\n",
            "spec:\n  selector:\n    matchExpressions: [{key: zone, operator: In, values: [a]}, {key: zone, operator: DoesNotExist}]\n",
        );
        let text = text.replace(
            "    matchExpressions:\n      - {key: nvidia.com/gpu.present, operator: Exists}\n",
            "",
        );
        refused_with(
            &fleet_with(&[(file, &text)]),
            &[
                &format!("{file}:"),
                "spec.selector: group",
                "can never match a node: its requirements contradict each other",
            ],
        );
    }
}

#[test]
fn two_daemons_binding_one_host_port_on_the_same_nodes_are_refused() {
    let agent = AGENT.replace(
        "containerPort: 9100}",
        "containerPort: 9100, hostPort: 9100}",
    );
    for other in [
        other_daemon("  ports: [{containerPort: 9100, hostPort: 9100}]\n"),
        other_daemon("  hostNetwork: true\n  ports: [{containerPort: 9100}]\n"),
        other_daemon(
            "  podTemplate:\n    spec:\n      containers:\n        - {name: side, image: registry.example/side:1, ports: [{containerPort: 80, hostPort: 9100}]}\n",
        ),
        other_daemon(&format!(
            "  groups: [{TWO_DAEMONS_GROUP}]\n  ports: [{{containerPort: 9100, hostPort: 9100, protocol: TCP}}]\n"
        )),
    ] {
        refused_with(
            &fleet_with(&[
                ("daemons/agent.yaml", &agent),
                ("daemons/other.yaml", &other),
            ]),
            &[
                "daemons/other.yaml:",
                "host port 9100/TCP is also bound by daemon `agent` (daemons/agent.yaml:7:",
                "both would run on the same nodes",
            ],
        );
    }
}

#[test]
fn one_host_port_on_disjoint_nodes_or_protocols_is_fine() {
    let agent = AGENT
        .replace(
            "containerPort: 9100}",
            "containerPort: 9100, hostPort: 9100}",
        )
        .replace("  args:", "  groups: [canary]\n  args:");
    for other in [
        other_daemon("  exclude: [canary]\n  ports: [{containerPort: 9100, hostPort: 9100}]\n"),
        other_daemon("  ports: [{containerPort: 9100, hostPort: 9100, protocol: UDP}]\n"),
    ] {
        load(&fleet_with(&[
            ("daemons/agent.yaml", &agent),
            ("daemons/other.yaml", &other),
        ]))
        .unwrap_or_else(|d| panic!("{d}"));
    }
}

#[test]
fn max_surge_above_zero_with_a_host_port_is_refused_at_every_level_it_resolves_from() {
    let port = AGENT.replace(
        "containerPort: 9100}",
        "containerPort: 9100, hostPort: 9100}",
    );
    let net = AGENT.replace("  args:", "  hostNetwork: true\n  args:");
    for (files, group) in [
        (
            fleet_with(&[(
                "daemons/agent.yaml",
                &format!("{port}  rollout: {{maxSurge: 1, maxUnavailable: 0}}\n"),
            )]),
            "canary",
        ),
        (
            fleet_with(&[(
                "daemons/agent.yaml",
                &format!("{net}  rollout: {{maxSurge: \"10%\", maxUnavailable: 0}}\n"),
            )]),
            "canary",
        ),
        (
            fleet_with(&[
                ("daemons/agent.yaml", &port),
                (
                    "groups/gpu.yaml",
                    &format!("{GPU}  rollout: {{maxSurge: 1}}\n"),
                ),
            ]),
            "gpu",
        ),
        (
            fleet_with(&[
                ("daemons/agent.yaml", &port),
                (
                    "drover.yaml",
                    &FLEET.replace("maxSurge: 0", "maxSurge: \"25%\""),
                ),
            ]),
            "canary",
        ),
        (
            fleet_with(&[(
                "daemons/agent.yaml",
                &format!("{port}  overrides:\n    general: {{rollout: {{maxSurge: 2}}}}\n"),
            )]),
            "general",
        ),
    ] {
        refused_with(
            &files,
            &[
                "daemons/agent.yaml:",
                &format!(
                    "in group `{group}` maxSurge resolves to more than 0 while the daemon binds host port 9100/TCP"
                ),
            ],
        );
    }
    // maxSurge 0 or 0% is fine.
    load(&fleet_with(&[(
        "daemons/agent.yaml",
        &format!("{port}  rollout: {{maxSurge: \"0%\"}}\n"),
    )]))
    .unwrap_or_else(|d| panic!("{d}"));
}

#[test]
fn stage_durations_are_bounded() {
    for (stage, problem) in [
        (
            "bake: 999999999h",
            "spec.stages[0].bake: `999999999h` is longer than the limit of 24h",
        ),
        ("bake: 24h1s", "is longer than the limit of 24h"),
        (
            "timeout: 25h",
            "spec.stages[0].timeout: `25h` is longer than the limit of 24h",
        ),
        (
            "timeout: 0s",
            "spec.stages[0].timeout: `0s` must be longer than 0s",
        ),
    ] {
        let fleet = FLEET.replace("bake: 1m, timeout: 10m", stage);
        refused_with(
            &fleet_with(&[("drover.yaml", &fleet)]),
            &["drover.yaml:8:", problem],
        );
    }
    let fleet = FLEET.replace("bake: 1m, timeout: 10m", "bake: 24h, timeout: 24h");
    load(&fleet_with(&[("drover.yaml", &fleet)])).unwrap_or_else(|d| panic!("{d}"));
}
