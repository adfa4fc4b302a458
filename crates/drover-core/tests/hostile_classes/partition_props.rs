//! Property (issue 14, "What it must show"): for generated podTemplates, hostile ones
//! included, the rendered DaemonSets still partition the nodes exactly (a node runs a
//! daemon once, in the first group whose selector matches it) and keep every group
//! toleration: after validation (which may refuse the podTemplate, only naming
//! podTemplate fields), and when the podTemplate is injected past validation (the
//! render's merge is additive on its own).
//!
//! Placement is read from the rendered manifests here (nodeName, nodeSelector and
//! `nodeSelectorTerms`), independently of `drover_core::selector`.

use std::collections::BTreeMap;

use drover_core::fleet::Fleet;
use drover_core::load::SourceFile;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::support::*;

const KEYS: [&str; 3] = ["a", "b", "c"];
const VALUES: [&str; 2] = ["x", "y"];

#[derive(Debug, Clone)]
struct Group {
    labels: BTreeMap<&'static str, &'static str>,
    /// `(key, exists)`: `Exists` or `DoesNotExist`.
    exprs: Vec<(&'static str, bool)>,
    tolerations: Vec<Value>,
}

impl Group {
    fn matches(&self, node: &BTreeMap<String, String>) -> bool {
        self.labels
            .iter()
            .all(|(k, v)| node.get(*k).is_some_and(|x| x == v))
            && self
                .exprs
                .iter()
                .all(|(k, exists)| node.contains_key(*k) == *exists)
    }
}

fn toleration() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"})),
        Just(json!({"key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoExecute"})),
        Just(json!({"operator": "Exists", "effect": "NoSchedule"})),
        Just(json!({"key": "spot", "operator": "Exists"})),
    ]
}

fn group() -> impl Strategy<Value = Group> {
    (
        proptest::collection::btree_map(
            proptest::sample::select(KEYS.to_vec()),
            proptest::sample::select(VALUES.to_vec()),
            0..=1,
        ),
        proptest::collection::vec(
            (proptest::sample::select(KEYS.to_vec()), any::<bool>()),
            0..=1,
        ),
        proptest::collection::vec(toleration(), 0..=2),
    )
        .prop_map(|(labels, exprs, mut tolerations)| {
            tolerations.dedup();
            Group {
                labels,
                exprs,
                tolerations,
            }
        })
}

/// Pieces of a podTemplate spec, hostile ones among them.
fn spec_piece() -> impl Strategy<Value = (String, Value)> {
    let p = |k: &str, v: Value| (k.to_string(), v);
    prop_oneof![
        Just(p("affinity", Value::Null)),
        Just(p("affinity", json!({}))),
        Just(p("affinity", json!({"nodeAffinity": null}))),
        Just(p(
            "affinity",
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}})
        )),
        Just(p(
            "affinity",
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}})
        )),
        Just(p("nodeSelector", json!({"a": "x"}))),
        Just(p("nodeName", json!("node-1"))),
        Just(p("tolerations", Value::Null)),
        Just(p("tolerations", json!([]))),
        Just(p(
            "tolerations",
            json!([{"key": "gpu", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}])
        )),
        Just(p(
            "tolerations",
            json!([{"key": "extra", "operator": "Exists"}])
        )),
        Just(p(
            "containers",
            json!([{"name": "d", "image": "evil.example/x:1", "ports": [{"containerPort": 1}]}])
        )),
        Just(p(
            "containers",
            json!([{"name": "side", "image": "registry.example/side:1"}])
        )),
        Just(p("volumes", json!([{"name": "logs", "emptyDir": {}}]))),
        Just(p("volumes", json!([{"name": "cache", "emptyDir": {}}]))),
        Just(p("hostNetwork", json!(true))),
        Just(p("dnsPolicy", json!("Default"))),
    ]
}

fn pod_template() -> impl Strategy<Value = Value> {
    proptest::collection::vec(spec_piece(), 0..=4).prop_map(|pieces| {
        let mut spec = serde_json::Map::new();
        for (k, v) in pieces {
            spec.insert(k, v);
        }
        json!({"spec": spec})
    })
}

#[derive(Debug, Clone)]
struct Case {
    groups: Vec<Group>,
    catch_all: bool,
    pod_template: Value,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(group(), 1..=3),
        any::<bool>(),
        pod_template(),
    )
        .prop_map(|(mut groups, catch_all, pod_template)| {
            if catch_all {
                let last = groups.len() - 1;
                groups[last].labels.clear();
                groups[last].exprs.clear();
            }
            Case {
                groups,
                catch_all,
                pod_template,
            }
        })
}

fn files(case: &Case, with_template: bool) -> Vec<SourceFile> {
    let names: Vec<String> = (0..case.groups.len()).map(|i| format!("g{i}")).collect();
    let mut text = format!(
        "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: props}}\nspec:\n  namespace: agents\n  groups: [{}]\n",
        names.join(", ")
    );
    for (i, g) in case.groups.iter().enumerate() {
        let labels: Vec<String> = g.labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let exprs: Vec<String> = g
            .exprs
            .iter()
            .map(|(k, e)| {
                format!(
                    "{{key: {k}, operator: {}}}",
                    if *e { "Exists" } else { "DoesNotExist" }
                )
            })
            .collect();
        text.push_str(&format!(
            "---\napiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {{name: g{i}}}\nspec:\n  selector: {{matchLabels: {{{}}}, matchExpressions: [{}]}}\n  tolerations: {}\n",
            labels.join(", "),
            exprs.join(", "),
            serde_json::to_string(&g.tolerations).unwrap()
        ));
    }
    let mut daemon = "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: d}\nspec:\n  image: registry.example/d:1\n  ports: [{name: m, containerPort: 9100}]\n  mounts: [{name: logs, hostPath: /var/log, mountPath: /logs, readOnly: true}]\n".to_string();
    if with_template {
        daemon.push_str(&format!(
            "  podTemplate: {}\n",
            serde_json::to_string(&case.pod_template).unwrap()
        ));
    }
    vec![
        SourceFile {
            path: "drover.yaml".into(),
            bytes: text.into_bytes(),
        },
        SourceFile {
            path: "daemons/d.yaml".into(),
            bytes: daemon.into_bytes(),
        },
    ]
}

fn all_nodes() -> Vec<BTreeMap<String, String>> {
    let mut nodes = vec![BTreeMap::new()];
    for k in KEYS {
        let mut next = Vec::new();
        for n in &nodes {
            next.push(n.clone());
            for v in VALUES {
                let mut m = n.clone();
                m.insert(k.to_string(), v.to_string());
                next.push(m);
            }
        }
        nodes = next;
    }
    nodes
}

/// Whether the DaemonSet places a pod on a node with `labels` (named `name`).
fn admits(ds: &Value, name: &str, labels: &BTreeMap<String, String>) -> bool {
    let pod = &ds["spec"]["template"]["spec"];
    if let Some(n) = pod.get("nodeName").and_then(Value::as_str)
        && n != name
    {
        return false;
    }
    if let Some(sel) = pod.get("nodeSelector").and_then(Value::as_object)
        && !sel
            .iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
    {
        return false;
    }
    let Some(terms) = pod
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    terms.iter().any(|t| {
        t["matchExpressions"].as_array().unwrap().iter().all(|e| {
            let key = e["key"].as_str().unwrap();
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().map(|v| v.as_str().unwrap()).collect())
                .unwrap_or_default();
            let have = labels.get(key).map(String::as_str);
            match e["operator"].as_str().unwrap() {
                "In" => have.is_some_and(|v| values.contains(&v)),
                "NotIn" => have.is_none_or(|v| !values.contains(&v)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                other => panic!("operator {other}"),
            }
        })
    })
}

/// The partition and the group tolerations, checked on the render of `fleet`.
fn check(case: &Case, fleet: &Fleet) -> Result<(), TestCaseError> {
    let set = render_all(fleet);
    for (i, node) in all_nodes().iter().enumerate() {
        let name = format!("node-{i}");
        let first = case.groups.iter().position(|g| g.matches(node));
        let hits: Vec<&str> = set
            .items
            .iter()
            .filter(|it| admits(&it.manifest.value(), &name, node))
            .map(|it| it.group.as_str())
            .collect();
        let expected: Vec<String> = first.map(|g| format!("g{g}")).into_iter().collect();
        prop_assert_eq!(
            hits,
            expected.iter().map(String::as_str).collect::<Vec<_>>(),
            "node {:?}",
            node
        );
    }
    for it in &set.items {
        let g: usize = it.group[1..].parse().unwrap();
        let tols = it.manifest.value()["spec"]["template"]["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for t in &case.groups[g].tolerations {
            prop_assert!(tols.contains(t), "{} lost {} (has {:?})", it.name, t, tols);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn pod_templates_never_break_the_partition_or_drop_a_group_toleration(case in case()) {
        let Ok(plain) = load(&files(&case, false)) else {
            // The selectors alone were refused (a shadowed group): nothing to render.
            return Ok(());
        };
        // Through validation: refused only for podTemplate reasons, else exact.
        match load(&files(&case, true)) {
            Ok(fleet) => check(&case, &fleet)?,
            Err(d) => {
                for e in &d.0 {
                    prop_assert!(
                        e.field.starts_with("spec.podTemplate") && e.path == "daemons/d.yaml" && e.pos.line > 0,
                        "refused for another reason: {}", e
                    );
                }
            }
        }
        // Past validation: the merge alone keeps the partition and the tolerations.
        let mut injected = plain;
        injected.daemons[0].spec.pod_template = Some(case.pod_template.clone());
        check(&case, &injected)?;
        let _ = case.catch_all;
    }
}
