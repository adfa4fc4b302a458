//! Class 1: podTemplate can add to what drover renders, never undo it.
//!
//! Before: `affinity: null` deleted the node affinity (every group's DaemonSet then
//! targeted every node), a tolerations list replaced the group's, a volume reusing a
//! mount's name got two sources, an unnamed port replaced every short-form port, a
//! main-container image beat `overrides.<group>.image` and skipped the image rules,
//! and podTemplate hostPath volumes skipped the `..` and relative-path rules.

use serde_json::{Value, json};

use super::support::*;

fn daemon_with(pt: &str) -> Vec<drover_core::load::SourceFile> {
    fleet_with(&[(
        "daemons/agent.yaml",
        &agent_with(&format!("  podTemplate:\n{pt}")),
    )])
}

/// The pod spec of the agent's DaemonSet in `group`.
fn pod(files: &[drover_core::load::SourceFile], group: &str) -> Value {
    let fleet = load(files).expect("valid");
    let set = render_all(&fleet);
    set.items
        .iter()
        .find(|i| i.group == group)
        .expect("rendered in the group")
        .manifest
        .value()["spec"]["template"]["spec"]
        .clone()
}

#[test]
fn a_null_anywhere_in_pod_template_is_refused_so_nothing_drover_renders_is_removed() {
    for (pt, line, field) in [
        (
            "    spec: {affinity: null}\n",
            12,
            "spec.podTemplate.spec.affinity",
        ),
        (
            "    spec:\n      affinity:\n",
            13,
            "spec.podTemplate.spec.affinity",
        ),
        (
            "    spec: {affinity: ~}\n",
            12,
            "spec.podTemplate.spec.affinity",
        ),
        (
            "    spec: {affinity: {nodeAffinity: null}}\n",
            12,
            "spec.podTemplate.spec.affinity.nodeAffinity",
        ),
        (
            "    spec: {tolerations: null}\n",
            12,
            "spec.podTemplate.spec.tolerations",
        ),
        (
            "    spec: {volumes: ~}\n",
            12,
            "spec.podTemplate.spec.volumes",
        ),
        (
            "    metadata: {labels: null}\n",
            12,
            "spec.podTemplate.metadata.labels",
        ),
        ("    spec: null\n", 12, "spec.podTemplate.spec"),
    ] {
        refused_with(
            &daemon_with(pt),
            &[
                &format!("daemons/agent.yaml:{line}:"),
                &format!("{field}: null in podTemplate would remove what drover renders"),
            ],
        );
    }
}

#[test]
fn node_placement_cannot_be_spelled_a_second_time() {
    for (pt, field, why) in [
        (
            "    spec: {nodeSelector: {a: b}}\n",
            "spec.podTemplate.spec.nodeSelector",
            "break the node-group partition",
        ),
        (
            "    spec: {nodeName: n1}\n",
            "spec.podTemplate.spec.nodeName",
            "break the node-group partition",
        ),
        (
            "    spec: {affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: []}}}\n",
            "spec.podTemplate.spec.affinity.nodeAffinity",
            "set by drover",
        ),
    ] {
        refused_with(&daemon_with(pt), &["daemons/agent.yaml:12:", field, why]);
    }
}

#[test]
fn pod_fields_the_short_form_spells_cannot_come_from_pod_template() {
    for key in [
        "hostNetwork: false",
        "hostPID: true",
        "hostIPC: true",
        "priorityClassName: other",
        "serviceAccountName: other",
        "serviceAccount: other",
    ] {
        let name = key.split(':').next().unwrap();
        refused_with(
            &daemon_with(&format!("    spec: {{{key}}}\n")),
            &[
                "daemons/agent.yaml:12:",
                &format!("spec.podTemplate.spec.{name}: `{name}`"),
                "is spelled spec.",
            ],
        );
    }
}

#[test]
fn the_main_container_cannot_respell_what_the_short_form_and_overrides_spell() {
    for (field, value) in [
        ("image", "evil.example/agent:v9"),
        ("imagePullPolicy", "Always"),
        ("command", "[/bin/sh]"),
        ("args", "[--evil]"),
        ("env", "[{name: A, value: b}]"),
        ("ports", "[{containerPort: 1}]"),
        ("resources", "{limits: {cpu: 1}}"),
        ("securityContext", "{privileged: true}"),
        ("readinessProbe", "{tcpSocket: {port: 1}}"),
        ("livenessProbe", "{tcpSocket: {port: 1}}"),
        ("startupProbe", "{tcpSocket: {port: 1}}"),
    ] {
        refused_with(
            &daemon_with(&format!(
                "    spec:\n      containers:\n        - name: agent\n          {field}: {value}\n"
            )),
            &[
                "daemons/agent.yaml:",
                &format!(
                    "spec.podTemplate.spec.containers[0].{field}: `{field}` of the main container is spelled spec."
                ),
            ],
        );
    }
}

#[test]
fn an_override_image_stays_the_image_of_its_group() {
    let files = fleet_with(&[(
        "daemons/agent.yaml",
        &agent_with(
            "  overrides:\n    canary: {image: registry.example/agent:v2}\n  podTemplate:\n    spec:\n      containers:\n        - {name: agent, workingDir: /work}\n",
        ),
    )]);
    let canary = pod(&files, "canary");
    assert_eq!(
        canary["containers"][0]["image"],
        "registry.example/agent:v2"
    );
    assert_eq!(canary["containers"][0]["workingDir"], "/work");
    assert_eq!(
        pod(&files, "general")["containers"][0]["image"],
        "registry.example/agent:v1"
    );
}

#[test]
fn pod_template_tolerations_join_the_group_s_and_never_replace_them() {
    let files = daemon_with(
        "    spec:\n      tolerations:\n        - {key: dedicated, operator: Equal, value: logs, effect: NoSchedule}\n        - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}\n",
    );
    let gpu = pod(&files, "gpu");
    let tols = gpu["tolerations"].as_array().unwrap();
    assert_eq!(tols.len(), 2, "{tols:?}");
    assert!(
        tols.contains(
            &json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
        )
    );
    assert!(tols.contains(
        &json!({"key": "dedicated", "operator": "Equal", "value": "logs", "effect": "NoSchedule"})
    ));
    // An empty list takes nothing away either.
    let gpu = pod(&daemon_with("    spec: {tolerations: []}\n"), "gpu");
    assert_eq!(gpu["tolerations"].as_array().unwrap().len(), 1);
}

#[test]
fn a_toleration_clashing_with_the_group_s_names_both_places() {
    refused_with(
        &daemon_with(
            "    spec:\n      tolerations:\n        - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule, tolerationSeconds: 30}\n",
        ),
        &[
            "daemons/agent.yaml:14:",
            "spec.podTemplate.spec.tolerations[0]: toleration {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule} clashes with group `gpu`'s (groups/gpu.yaml:9)",
        ],
    );
    // The same in the short form.
    refused_with(
        &fleet_with(&[(
            "daemons/agent.yaml",
            &agent_with(
                "  tolerations:\n    - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule, tolerationSeconds: 5}\n",
            ),
        )]),
        &[
            "daemons/agent.yaml:12:",
            "spec.tolerations[0]: toleration",
            "clashes with group `gpu`'s",
        ],
    );
    // And against the daemon's own short-form toleration.
    refused_with(
        &fleet_with(&[(
            "daemons/agent.yaml",
            &agent_with(
                "  tolerations:\n    - {key: a, operator: Exists}\n  podTemplate:\n    spec:\n      tolerations: [{key: a, operator: Exists, tolerationSeconds: 1}]\n",
            ),
        )]),
        &[
            "daemons/agent.yaml:15:",
            "is also spec.tolerations[0] (line 12)",
        ],
    );
}

#[test]
fn pod_template_tolerations_pass_the_short_form_rules() {
    refused_with(
        &daemon_with("    spec:\n      tolerations: [{key: a, operator: Equals}]\n"),
        &["spec.podTemplate.spec.tolerations[0].operator: unknown operator `Equals`"],
    );
    refused_with(
        &daemon_with("    spec:\n      tolerations: [{operator: Equal, value: x}]\n"),
        &["a toleration without a key must use operator Exists"],
    );
}

#[test]
fn a_volume_cannot_reuse_a_short_form_mount_s_name_or_path() {
    refused_with(
        &daemon_with("    spec:\n      volumes: [{name: logs, emptyDir: {}}]\n"),
        &[
            "daemons/agent.yaml:13:",
            "spec.podTemplate.spec.volumes[0].name: volume `logs` is also spec.mounts[0] (line 9): one volume would get two sources",
        ],
    );
    refused_with(
        &daemon_with(
            "    spec:\n      containers:\n        - name: agent\n          volumeMounts: [{name: logs, mountPath: /elsewhere}]\n",
        ),
        &["containers[0].volumeMounts[0].name: the mount of `logs` is spelled spec.mounts[0]"],
    );
    refused_with(
        &daemon_with(
            "    spec:\n      volumes: [{name: cache, emptyDir: {}}]\n      containers:\n        - name: agent\n          volumeMounts: [{name: cache, mountPath: /host/logs}]\n",
        ),
        &["volumeMounts[0].mountPath: `/host/logs` is already mounted by spec.mounts[0]"],
    );
    refused_with(
        &daemon_with(
            "    spec:\n      volumes: [{name: a, emptyDir: {}}, {name: a, emptyDir: {}}]\n",
        ),
        &[
            "spec.podTemplate.spec.volumes[1].name: volume `a` is also spec.podTemplate.spec.volumes[0]",
        ],
    );
}

#[test]
fn added_volumes_and_mounts_join_the_short_form_s() {
    let files = daemon_with(
        "    spec:\n      volumes: [{name: cache, emptyDir: {}}]\n      containers:\n        - name: agent\n          volumeMounts: [{name: cache, mountPath: /cache}]\n",
    );
    let p = pod(&files, "general");
    assert_eq!(
        p["volumes"],
        json!([{"name": "logs", "hostPath": {"path": "/var/log"}}, {"name": "cache", "emptyDir": {}}])
    );
    assert_eq!(
        p["containers"][0]["volumeMounts"],
        json!([{"name": "logs", "mountPath": "/host/logs", "readOnly": true}, {"name": "cache", "mountPath": "/cache"}])
    );
    assert_eq!(
        p["containers"][0]["ports"],
        json!([{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}])
    );
}

#[test]
fn pod_template_host_paths_pass_the_short_form_rules() {
    for (path, why) in [
        ("../../etc", "must be an absolute path"),
        ("etc", "must be an absolute path"),
        ("/var/log/../../etc", "must not contain `..`"),
        ("/..", "must not contain `..`"),
    ] {
        refused_with(
            &daemon_with(&format!(
                "    spec:\n      volumes: [{{name: host, hostPath: {{path: \"{path}\"}}}}]\n"
            )),
            &[
                "daemons/agent.yaml:13:",
                "spec.podTemplate.spec.volumes[0].hostPath.path",
                why,
            ],
        );
    }
    refused_with(
        &daemon_with("    spec:\n      volumes: [{name: host, hostPath: {path: /x, type: Dir}}]\n"),
        &["hostPath.type: unknown hostPath type `Dir`"],
    );
    refused_with(
        &daemon_with(
            "    spec:\n      volumes: [{name: c, emptyDir: {}}]\n      containers:\n        - {name: side, image: registry.example/side:1, volumeMounts: [{name: c, mountPath: \"c/../..\"}]}\n",
        ),
        &["containers[0].volumeMounts[0].mountPath: `c/../..` must be an absolute path"],
    );
}

#[test]
fn added_containers_pass_the_short_form_rules() {
    for (c, problem) in [
        (
            "{name: side, image: \"Evil Image\"}",
            "is not a valid image reference",
        ),
        (
            "{name: side, image: \"x@sha256:deadbeef\"}",
            "a sha256 digest has 64 lowercase hex digits",
        ),
        ("{name: side}", "a container needs an image"),
        ("{image: registry.example/x:1}", "needs a name"),
        ("{name: Side, image: registry.example/x:1}", "DNS-1123"),
        (
            "{name: side, image: registry.example/x:1, ports: [{containerPort: 70000}]}",
            "port must be between 1 and 65535 (is 70000)",
        ),
        (
            "{name: side, image: registry.example/x:1, ports: [{containerPort: 80, hostPort: 70000}]}",
            "port must be between 1 and 65535 (is 70000)",
        ),
        (
            "{name: side, image: registry.example/x:1, ports: [{containerPort: 80, protocol: ICMP}]}",
            "is not TCP, UDP or SCTP",
        ),
        (
            "{name: side, image: registry.example/x:1, imagePullPolicy: Sometimes}",
            "is not Always, IfNotPresent or Never",
        ),
        (
            "{name: side, image: registry.example/x:1, resources: {limits: {memory: 9999999999999999999Ei}}}",
            "is too large",
        ),
        (
            "{name: side, image: registry.example/x:1, env: [{name: A, value: x, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]}",
            "sets both value and valueFrom",
        ),
        (
            "{name: agent, image: registry.example/x:1}\n        - {name: agent, image: registry.example/x:1}",
            "is used twice",
        ),
    ] {
        refused_with(
            &daemon_with(&format!("    spec:\n      containers:\n        - {c}\n")),
            &[
                "daemons/agent.yaml:",
                "spec.podTemplate.spec.containers[",
                problem,
            ],
        );
    }
    refused_with(
        &daemon_with(
            "    spec:\n      initContainers:\n        - {name: agent, image: registry.example/x:1}\n",
        ),
        &["spec.podTemplate.spec.initContainers[0].name: `agent` is the main container's name"],
    );
}

#[test]
fn a_host_port_is_bound_once_per_pod() {
    refused_with(
        &fleet_with(&[(
            "daemons/agent.yaml",
            &agent_with("  ports: [{name: metrics, containerPort: 9100, hostPort: 9100}]\n  podTemplate:\n    spec:\n      containers:\n        - {name: side, image: registry.example/x:1, ports: [{containerPort: 9100, hostPort: 9100}]}\n")
                .replace("  ports: [{name: metrics, containerPort: 9100}]\n", ""),
        )]),
        &["containers[0].ports[0].hostPort: host port 9100/TCP is bound twice in one pod (also spec.ports[0].hostPort)"],
    );
}

#[test]
fn pod_labels_and_annotations_cannot_contradict_the_daemon_s() {
    let files = fleet_with(&[(
        "daemons/agent.yaml",
        &(AGENT.replace(
            "metadata: {name: agent}",
            "metadata: {name: agent, labels: {team: obs}}",
        ) + "  podTemplate:\n    metadata:\n      labels: {team: other}\n"),
    )]);
    refused_with(
        &files,
        &[
            "spec.podTemplate.metadata.labels.team: `team` is also set by metadata.labels.team (line 3)",
        ],
    );
}

#[test]
fn a_harmless_pod_template_adds_and_keeps_every_drover_field() {
    let files = daemon_with(
        "    metadata:\n      annotations: {prometheus.io/scrape: \"true\"}\n    spec:\n      dnsPolicy: ClusterFirstWithHostNet\n      affinity:\n        podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: []}\n      containers:\n        - {name: side, image: registry.example/side:1, ports: [{containerPort: 8080}]}\n",
    );
    for group in ["canary", "gpu", "general"] {
        let p = pod(&files, group);
        assert_eq!(p["dnsPolicy"], "ClusterFirstWithHostNet");
        assert!(p["affinity"]["nodeAffinity"].is_object(), "{group}: {p:#}");
        assert!(p["affinity"]["podAntiAffinity"].is_object(), "{group}");
        assert_eq!(p["containers"][0]["name"], "agent");
        assert_eq!(p["containers"][1]["name"], "side");
    }
}
