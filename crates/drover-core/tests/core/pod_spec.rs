//! The short form's full pod (issue 13, item 3): init containers and sidecars with
//! the main container's fields, volumes of every kind, pod-level fields, a main
//! container and an `app.kubernetes.io/name` of their own, and per-daemon node
//! constraints ANDed into every rendered term. The reviewed YAML is the
//! `full-pod-spec` snapshot of `render.rs`; these tests check what its CASE.md
//! promises, and the interplay with podTemplate.

use std::collections::BTreeMap;

use crate::support::{admits, labels, load_dir, render_dir, render_files};
use drover_core::limits::LIMITS;
use drover_core::load::SourceFile;
use drover_core::render::{DesiredDaemonSet, DesiredSet, LABEL_NAME};
use drover_core::validate::load_fleet;
use serde_json::{Value as JsonValue, json};

const FIXTURE: &str = "fixtures/valid/full-pod-spec";

fn item<'a>(set: &'a DesiredSet, name: &str) -> &'a DesiredDaemonSet {
    set.items
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no DaemonSet {name}"))
}

fn pod(i: &DesiredDaemonSet) -> JsonValue {
    i.manifest.value()["spec"]["template"]["spec"].clone()
}

fn terms(i: &DesiredDaemonSet) -> Vec<JsonValue> {
    pod(i)
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(JsonValue::as_array)
        .cloned()
        .unwrap_or_default()
}

fn names(list: &JsonValue) -> Vec<&str> {
    list.as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default()
}

/// A one-file-per-document fleet: one catch-all group `all-nodes` (or the given
/// groups) and the daemon `agent` with `spec` appended.
fn fleet(groups: &[(&str, &str)], spec: &str) -> Vec<SourceFile> {
    let file = |path: &str, text: String| SourceFile {
        path: path.into(),
        bytes: text.into_bytes(),
    };
    let names: Vec<&str> = groups.iter().map(|(n, _)| *n).collect();
    let mut out = vec![file(
        "drover.yaml",
        format!(
            "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: f}}\nspec:\n  namespace: n\n  groups: [{}]\n",
            names.join(", ")
        ),
    )];
    for (n, sel) in groups {
        out.push(file(
            &format!("groups/{n}.yaml"),
            format!(
                "apiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {{name: {n}}}\nspec:\n  selector: {sel}\n"
            ),
        ));
    }
    out.push(file(
        "daemons/agent.yaml",
        format!(
            "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {{name: agent}}\nspec:\n  image: registry.example.com/agent:1\n{spec}"
        ),
    ));
    out
}

fn errors(files: &[SourceFile]) -> String {
    match load_fleet(files, &LIMITS) {
        Ok(_) => panic!("the fleet was accepted"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn the_daemons_node_constraints_are_in_every_term_of_every_group_and_only_its_own() {
    let set = render_dir(FIXTURE);
    let wanted = [
        json!({"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]}),
        json!({"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}),
        json!({"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}),
        json!({"key": "node.example.com/disk", "operator": "Exists"}),
        json!({"key": "node.example.com/generation", "operator": "Gt", "values": ["2"]}),
    ];
    for name in ["log-shipper-canary", "log-shipper-general"] {
        let ts = terms(item(&set, name));
        assert!(!ts.is_empty(), "{name}");
        for t in &ts {
            let exprs = t["matchExpressions"].as_array().unwrap();
            for w in &wanted {
                assert!(exprs.contains(w), "{name}: {w} missing from {t}");
            }
        }
    }
    for name in ["plain-canary", "plain-general"] {
        for t in terms(item(&set, name)) {
            let keys: Vec<&str> = t["matchExpressions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["key"].as_str().unwrap())
                .collect();
            assert_eq!(keys, ["drover.dev/canary"], "{name}");
        }
    }
    // Read back as Kubernetes would: a Linux amd64 canary node with a disk of
    // generation 3 runs the shipper's canary DaemonSet only; the same node on
    // Fargate, or of generation 2, runs neither, but still runs `plain`.
    let node = labels(&[
        ("drover.dev/canary", "true"),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("node.example.com/disk", "ssd"),
        ("node.example.com/generation", "3"),
    ]);
    let on = |set: &DesiredSet, node: &BTreeMap<String, String>| -> Vec<String> {
        set.items
            .iter()
            .filter(|i| admits(&i.manifest.value(), node))
            .map(|i| i.name.clone())
            .collect()
    };
    assert_eq!(on(&set, &node), ["log-shipper-canary", "plain-canary"]);
    for (k, v) in [
        ("eks.amazonaws.com/compute-type", "fargate"),
        ("node.example.com/generation", "2"),
    ] {
        let mut n = node.clone();
        n.insert(k.into(), v.into());
        assert_eq!(on(&set, &n), ["plain-canary"], "{k}={v}");
    }
}

#[test]
fn a_lone_catch_all_group_gets_one_term_of_the_daemons_constraints() {
    let set = render_files(&fleet(
        &[("all-nodes", "{}")],
        "  nodeSelector: {kubernetes.io/os: linux}\n",
    ));
    assert_eq!(
        terms(&set.items[0]),
        [
            json!({"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]})
        ]
    );
    // Without constraints a lone catch-all renders no affinity, as before.
    let set = render_files(&fleet(&[("all-nodes", "{}")], ""));
    assert!(pod(&set.items[0]).get("affinity").is_none());
}

#[test]
fn app_name_and_container_name_change_the_label_and_the_container_never_the_selector() {
    let set = render_dir(FIXTURE);
    let ds = item(&set, "log-shipper-general");
    let m = &ds.manifest.value();
    assert_eq!(m["metadata"]["labels"][LABEL_NAME], "fluent-bit");
    assert_eq!(
        m["spec"]["template"]["metadata"]["labels"][LABEL_NAME],
        "fluent-bit"
    );
    assert_eq!(
        m["spec"]["selector"],
        json!({"matchLabels": {"drover.dev/daemon": "log-shipper", "drover.dev/fleet": "test-fleet", "drover.dev/group": "general"}})
    );
    assert_eq!(m["metadata"]["labels"]["drover.dev/daemon"], "log-shipper");
    assert_eq!(names(&pod(ds)["containers"]), ["fluent-bit", "exporter"]);
    assert_eq!(names(&pod(ds)["initContainers"]), ["wait-for-config"]);
    // Without them, both are the daemon's name.
    let plain = item(&set, "plain-general");
    assert_eq!(
        plain.manifest.value()["metadata"]["labels"][LABEL_NAME],
        "plain"
    );
    assert_eq!(names(&pod(plain)["containers"]), ["plain"]);
}

#[test]
fn volumes_are_the_hostpath_mounts_once_each_then_spec_volumes_as_written() {
    let set = render_dir(FIXTURE);
    let p = pod(item(&set, "log-shipper-canary"));
    assert_eq!(
        names(&p["volumes"]),
        ["varlog", "config", "buffer", "token", "tls"]
    );
    assert_eq!(
        p["volumes"][0],
        json!({"name": "varlog", "hostPath": {"path": "/var/log"}})
    );
    assert_eq!(
        p["volumes"][3]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3600
    );
    // The shared hostPath volume is mounted by both containers, each at its path.
    assert_eq!(
        p["containers"][1]["volumeMounts"][0]["mountPath"],
        "/host/var/log"
    );
    assert_eq!(
        p["containers"][0]["volumeMounts"][1]["subPath"],
        "fluent-bit.conf"
    );
}

#[test]
fn pod_and_daemonset_fields_render_where_kubernetes_reads_them() {
    let set = render_dir(FIXTURE);
    let ds = item(&set, "log-shipper-canary");
    let p = pod(ds);
    assert_eq!(ds.manifest.value()["spec"]["revisionHistoryLimit"], 3);
    assert_eq!(p["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(
        p["dnsConfig"]["options"][0],
        json!({"name": "ndots", "value": "1"})
    );
    assert_eq!(p["securityContext"]["fsGroup"], 2000);
    assert_eq!(p["terminationGracePeriodSeconds"], 30);
    assert_eq!(
        p["containers"][0]["securityContext"],
        json!({"readOnlyRootFilesystem": true})
    );
    assert_eq!(
        p["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][2],
        "sleep 5"
    );
    assert_eq!(
        p["containers"][1]["env"],
        json!([{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}])
    );
    let plain = item(&set, "plain-canary");
    assert!(
        plain.manifest.value()["spec"]
            .get("revisionHistoryLimit")
            .is_none()
    );
    for k in [
        "initContainers",
        "volumes",
        "dnsPolicy",
        "dnsConfig",
        "securityContext",
        "terminationGracePeriodSeconds",
    ] {
        assert!(pod(plain).get(k).is_none(), "{k}");
    }
}

#[test]
fn sidecar_env_in_map_form_renders_sorted_as_env_vars() {
    let set = render_files(&fleet(
        &[("all-nodes", "{}")],
        "  sidecars:\n    - name: side\n      image: registry.example.com/side:1\n      env: {B: \"no\", A: \"1\"}\n",
    ));
    assert_eq!(
        pod(&set.items[0])["containers"][1]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "no"}])
    );
}

#[test]
fn pod_template_merges_into_the_main_container_by_its_container_name() {
    let set = render_files(&fleet(
        &[("all-nodes", "{}")],
        "  containerName: main\n  podTemplate:\n    spec:\n      containers:\n        - {name: main, stdin: true}\n",
    ));
    let p = pod(&set.items[0]);
    assert_eq!(names(&p["containers"]), ["main"]);
    assert_eq!(p["containers"][0]["stdin"], true);
    // podTemplate still cannot set what the short form spells on it.
    let e = errors(&fleet(
        &[("all-nodes", "{}")],
        "  containerName: main\n  podTemplate:\n    spec:\n      containers:\n        - {name: main, image: registry.example.com/evil:1}\n",
    ));
    assert!(
        e.contains("spec.podTemplate.spec.containers[0].image: `image` of the main container is spelled spec.image"),
        "{e}"
    );
}

#[test]
fn a_short_form_mount_may_name_a_pod_template_volume() {
    let set = render_files(&fleet(
        &[("all-nodes", "{}")],
        "  mounts:\n    - {name: extra, mountPath: /extra}\n  podTemplate:\n    spec:\n      volumes:\n        - {name: extra, emptyDir: {}}\n",
    ));
    let p = pod(&set.items[0]);
    assert_eq!(names(&p["volumes"]), ["extra"]);
    assert_eq!(p["containers"][0]["volumeMounts"][0]["name"], "extra");
}

#[test]
fn pod_template_cannot_reuse_a_short_form_container_or_volume_name_or_spell_a_field_twice() {
    for (spec, want) in [
        (
            "  sidecars:\n    - {name: side, image: registry.example.com/side:1}\n  podTemplate:\n    spec:\n      containers:\n        - {name: side, image: registry.example.com/side:2}\n",
            "spec.podTemplate.spec.containers[0].name: container name `side` is used twice (also spec.sidecars[0])",
        ),
        (
            "  volumes:\n    - {name: cfg, configMap: {name: c}}\n  podTemplate:\n    spec:\n      volumes:\n        - {name: cfg, emptyDir: {}}\n",
            "spec.podTemplate.spec.volumes[0].name: volume `cfg` is also spec.volumes[0] (line 7)",
        ),
        (
            "  sidecars:\n    - name: side\n      image: registry.example.com/side:1\n      mounts: [{name: logs, hostPath: /var/log, mountPath: /logs}]\n  podTemplate:\n    spec:\n      volumes:\n        - {name: logs, emptyDir: {}}\n",
            "spec.podTemplate.spec.volumes[0].name: volume `logs` is also spec.sidecars[0].mounts[0]",
        ),
        (
            "  podSecurityContext: {runAsUser: 1}\n  podTemplate:\n    spec:\n      securityContext: {runAsUser: 2}\n",
            "spec.podTemplate.spec.securityContext: `securityContext` is also set by spec.podSecurityContext (line 6)",
        ),
        (
            "  lifecycle: {preStop: {exec: {command: [a]}}}\n  podTemplate:\n    spec:\n      containers:\n        - name: agent\n          lifecycle: {preStop: {exec: {command: [b]}}}\n",
            "spec.podTemplate.spec.containers[0].lifecycle: `lifecycle` of the main container is also set by spec.lifecycle (line 6)",
        ),
    ] {
        let e = errors(&fleet(&[("all-nodes", "{}")], spec));
        assert!(e.contains(want), "want {want}\ngot:\n{e}");
    }
}

#[test]
fn container_rules_are_the_main_containers_for_init_containers_and_sidecars() {
    for (spec, want) in [
        (
            "  sidecars:\n    - {name: side, image: \"not an image\"}\n",
            "daemons/agent.yaml:7:27: spec.sidecars[0].image:",
        ),
        (
            "  initContainers:\n    - name: init\n      image: registry.example.com/i:1\n      resources: {requests: {cpu: lots}}\n",
            "spec.initContainers[0].resources.requests.cpu:",
        ),
        (
            "  sidecars:\n    - name: side\n      image: registry.example.com/side:1\n      ports: [{containerPort: 70000}]\n",
            "spec.sidecars[0].ports[0].containerPort: port must be between 1 and 65535 (is 70000)",
        ),
        (
            "  sidecars:\n    - name: side\n      image: registry.example.com/side:1\n      env: [{name: A, value: x, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]\n",
            "spec.sidecars[0].env[0].value: env `A` sets both value and valueFrom",
        ),
        (
            "  sidecars:\n    - name: side\n      image: registry.example.com/side:1\n      livenessProbe: {httpGet: {path: /, port: 1}, bogus: 1}\n",
            "spec.sidecars[0].livenessProbe.bogus: unknown field `bogus`",
        ),
        (
            "  sidecars:\n    - name: side\n      image: registry.example.com/side:1\n      mounts: [{name: logs, hostPath: var/log, mountPath: /logs}]\n",
            "spec.sidecars[0].mounts[0].hostPath: `var/log` must be an absolute path",
        ),
        (
            "  sidecars:\n    - name: Side\n      image: registry.example.com/side:1\n",
            "spec.sidecars[0].name:",
        ),
        (
            "  initContainers:\n    - {name: a, image: registry.example.com/a:1}\n  sidecars:\n    - {name: a, image: registry.example.com/a:1}\n",
            "spec.sidecars[0].name: container name `a` is also spec.initContainers[0] (line 7)",
        ),
        (
            "  mounts:\n    - {name: logs, hostPath: /var/log, mountPath: /logs}\n  sidecars:\n    - name: side\n      image: registry.example.com/side:1\n      mounts: [{name: logs, hostPath: /var/lib, mountPath: /logs}]\n",
            "spec.sidecars[0].mounts[0].hostPath: mount `logs` is also spec.mounts[0] (line 7) with another hostPath or type",
        ),
        (
            "  mounts:\n    - {name: cfg, mountPath: /a, subPath: ../x}\n  volumes: [{name: cfg, emptyDir: {}}]\n",
            "spec.mounts[0].subPath: `../x` must be a relative path without `..`",
        ),
        (
            "  volumes: [{name: cfg, configMap: {name: c, bogus: 1}}]\n",
            "spec.volumes[0].configMap.bogus: unknown field `bogus`",
        ),
        (
            "  dnsPolicy: None\n",
            "spec.dnsPolicy: dnsPolicy `None` takes every DNS setting from dnsConfig, which names no nameservers",
        ),
        (
            "  dnsPolicy: None\n  dnsConfig: {searches: [svc.cluster.local]}\n",
            "spec.dnsPolicy: dnsPolicy `None` takes every DNS setting from dnsConfig, which names no nameservers",
        ),
        (
            "  updateStrategy: {type: RollingUpdate}\n",
            "spec.updateStrategy: drover renders updateStrategy itself; its knobs are spec.rollout",
        ),
        ("  appName: \"-bad-\"\n", "spec.appName:"),
    ] {
        let e = errors(&fleet(&[("all-nodes", "{}")], spec));
        assert!(e.contains(want), "want {want}\ngot:\n{e}");
    }
}

#[test]
fn the_full_pod_spec_fixture_is_valid_and_each_new_field_survives_validation() {
    let f = load_dir(FIXTURE).expect("valid");
    let d = f.daemons.iter().find(|d| d.name == "log-shipper").unwrap();
    assert_eq!(d.container_name, "fluent-bit");
    assert_eq!(d.app_name, "fluent-bit");
    assert_eq!(d.constraints.len(), 5);
    assert_eq!(d.container_env.len(), 2);
}

#[test]
fn an_init_container_may_bind_a_host_port_a_regular_container_binds_too() {
    // Kubernetes counts init containers' host ports among themselves: they have
    // exited before the others start.
    let files = fleet(
        &[("all-nodes", "{}")],
        "  ports: [{containerPort: 9100, hostPort: 9100}]\n  initContainers:\n    - name: probe\n      image: registry.example.com/p:1\n      ports: [{containerPort: 9100, hostPort: 9100}]\n",
    );
    let set = render_files(&files);
    assert_eq!(
        pod(&set.items[0])["initContainers"][0]["ports"][0]["hostPort"],
        9100
    );
    // Two init containers, like two regular ones, cannot.
    let e = errors(&fleet(
        &[("all-nodes", "{}")],
        "  initContainers:\n    - {name: a, image: registry.example.com/p:1, ports: [{containerPort: 1, hostPort: 9100}]}\n    - {name: b, image: registry.example.com/p:1, ports: [{containerPort: 2, hostPort: 9100}]}\n",
    ));
    assert!(
        e.contains("spec.initContainers[1].ports[0].hostPort: host port 9100/TCP is bound twice in one pod (also spec.initContainers[0].ports[0].hostPort)"),
        "{e}"
    );
    let ok = fleet(
        &[("all-nodes", "{}")],
        "  dnsPolicy: None\n  dnsConfig: {nameservers: [1.1.1.1]}\n",
    );
    assert_eq!(pod(&render_files(&ok).items[0])["dnsPolicy"], "None");
}

mod props {
    use super::*;
    use drover_core::render::{RenderContext, render};
    use proptest::prelude::*;

    /// Any JSON value, small: JSON text is YAML, so it goes into a Daemon as written.
    fn any_json() -> impl Strategy<Value = JsonValue> {
        let leaf = prop_oneof![
            Just(JsonValue::Null),
            any::<bool>().prop_map(JsonValue::from),
            (-3i64..70000).prop_map(JsonValue::from),
            prop_oneof![
                Just("name"),
                Just("x"),
                Just("/var/log"),
                Just("../etc"),
                Just("None"),
                Just("emptyDir"),
                Just("configMap"),
                Just("hostPath"),
                Just("In"),
                Just("OnDelete"),
                Just("")
            ]
            .prop_map(JsonValue::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(JsonValue::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("name"),
                        Just("image"),
                        Just("path"),
                        Just("hostPath"),
                        Just("mountPath"),
                        Just("emptyDir"),
                        Just("configMap"),
                        Just("type"),
                        Just("key"),
                        Just("operator"),
                        Just("values"),
                        Just("matchExpressions"),
                        Just("nameservers"),
                        Just("ports"),
                        Just("mounts"),
                        Just("containerPort"),
                        Just("hostPort")
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| JsonValue::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    const FIELDS: [&str; 14] = [
        "initContainers",
        "sidecars",
        "volumes",
        "mounts",
        "lifecycle",
        "dnsPolicy",
        "dnsConfig",
        "podSecurityContext",
        "terminationGracePeriodSeconds",
        "revisionHistoryLimit",
        "nodeSelector",
        "nodeAffinity",
        "updateStrategy",
        "containerName",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_value_in_the_new_fields_is_refused_with_a_diagnostic_or_renders_never_a_panic(
            values in proptest::collection::vec((proptest::sample::select(FIELDS.to_vec()), any_json()), 1..4)
        ) {
            let mut spec = String::new();
            let mut seen = Vec::new();
            for (k, v) in &values {
                if seen.contains(k) {
                    continue;
                }
                seen.push(*k);
                spec.push_str(&format!("  {k}: {}\n", serde_json::to_string(v).unwrap()));
            }
            let files = fleet(&[("canary", "{matchLabels: {role: canary}}"), ("rest", "{}")], &spec);
            match load_fleet(&files, &LIMITS) {
                Err(d) => {
                    for e in &d.0 {
                        // Every diagnostic names the file and a field.
                        prop_assert!(!e.path.is_empty(), "{}", e);
                        prop_assert!(e.pos.line > 0, "{}", e);
                    }
                }
                Ok(f) => {
                    let set = render(&f, &RenderContext::default(), LIMITS.max_rendered_bytes);
                    prop_assert!(set.is_ok(), "{:?}", set);
                }
            }
        }
    }
}
