//! Companion objects (`companions/`): whatever a manifest holds, the core accepts it
//! only inside the policy (an allowed kind, never a Secret, the fleet's namespace,
//! drover's labels, no cluster-admin binding without the opt-in), or refuses it with
//! a diagnostic that names the file; it never panics.

use std::panic::{AssertUnwindSafe, catch_unwind};

use drover_core::companion::DEFAULT_KINDS;
use drover_core::limits::LIMITS;
use drover_core::validate::load_fleet;
use proptest::prelude::*;
use serde_json::{Value as JsonValue, json};

use super::support::*;

/// One of `values`, the first (a value the rules accept) half of the time, so that
/// both arms of the property are exercised.
fn pick(values: Vec<JsonValue>) -> impl Strategy<Value = JsonValue> {
    let first = values[0].clone();
    prop_oneof![Just(first), proptest::sample::select(values)]
}

/// A manifest built from pieces near every rule's edge; `Null` leaves a field out.
fn manifest() -> impl Strategy<Value = JsonValue> {
    (
        pick(vec![json!("v1"), json!("rbac.authorization.k8s.io/v1"), json!("rbac.authorization.k8s.io/v1beta1"), json!("apps/v1"), json!(""), json!(5), JsonValue::Null]),
        pick(vec![json!("ServiceAccount"), json!("Secret"), json!("ClusterRole"), json!("ClusterRoleBinding"), json!("RoleBinding"), json!("ConfigMap"), json!("Deployment"), json!(""), json!([1]), JsonValue::Null]),
        pick(vec![json!("agent"), json!(""), json!(3), json!({"a": "b"}), JsonValue::Null]),
        pick(vec![JsonValue::Null, json!("hostile"), json!("kube-system"), json!(7)]),
        pick(vec![JsonValue::Null, json!({"app.kubernetes.io/managed-by": "Helm"}), json!("labels"), json!({"drover.dev/fleet": "hostile"}), json!({"drover.dev/group": "x"}), json!({"k": 1})]),
        pick(vec![JsonValue::Null, json!({"kind": "ClusterRole", "name": "cluster-admin", "apiGroup": "rbac.authorization.k8s.io"}), json!({"kind": "ClusterRole", "name": "view"}), json!("roleRef")]),
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.8),
    )
        .prop_map(|(api, kind, name, ns, labels, role_ref, status, meta_is_map)| {
            let mut meta = serde_json::Map::new();
            for (k, v) in [("name", name), ("namespace", ns), ("labels", labels)] {
                if !v.is_null() {
                    meta.insert(k.into(), v);
                }
            }
            let mut m = serde_json::Map::new();
            for (k, v) in [("apiVersion", api), ("kind", kind), ("roleRef", role_ref)] {
                if !v.is_null() {
                    m.insert(k.into(), v);
                }
            }
            m.insert("metadata".into(), if meta_is_map { JsonValue::Object(meta) } else { json!("metadata") });
            if status {
                m.insert("status".into(), json!({}));
            }
            JsonValue::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_companion_is_accepted_only_inside_the_policy_or_refused_naming_its_file(
        m in manifest(),
        under_daemon in any::<bool>(),
    ) {
        let path = if under_daemon { "companions/agent/x.yaml" } else { "companions/x.yaml" };
        // JSON is YAML: the manifest as a flow mapping.
        let text = serde_json::to_string(&m).unwrap();
        let files = fleet_with(&[(path, &text)]);
        let result = catch_unwind(AssertUnwindSafe(|| load_fleet(&files, &LIMITS)))
            .unwrap_or_else(|_| panic!("the core panicked on {text}"));
        match result {
            Err(d) => {
                prop_assert!(d.0.iter().all(|e| e.path == path), "{d}");
            }
            Ok(fleet) => {
                let [c] = fleet.companions.as_slice() else {
                    panic!("accepted without its companion: {text}");
                };
                let known = DEFAULT_KINDS.iter().find(|(a, k, _)| *a == c.api_version && *k == c.kind);
                prop_assert!(known.is_some(), "accepted kind outside the allow-list: {text}");
                let namespaced = known.unwrap().2;
                prop_assert_eq!(c.namespace.as_deref(), namespaced.then_some("hostile"), "{}", text);
                let meta = &c.manifest["metadata"];
                prop_assert_eq!(&meta["labels"]["app.kubernetes.io/managed-by"], "drover");
                prop_assert_eq!(&meta["labels"]["drover.dev/fleet"], "hostile");
                prop_assert_eq!(meta["labels"].get("drover.dev/daemon").is_some(), under_daemon);
                prop_assert!(meta["labels"].get("drover.dev/group").is_none());
                if c.kind.ends_with("RoleBinding") {
                    prop_assert_ne!(c.manifest["roleRef"]["name"].as_str(), Some("cluster-admin"), "{}", text);
                }
                prop_assert!(c.manifest.get("status").is_none());
            }
        }
    }
}

#[test]
fn the_generated_companions_include_accepted_ones() {
    // The property above runs in another test thread; run a fixed sample here so this
    // test does not depend on their order: the generator must reach the accepting arm.
    use proptest::strategy::ValueTree as _;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = manifest();
    let accepted = (0..256)
        .filter(|_| {
            let m = strategy.new_tree(&mut runner).unwrap().current();
            let text = serde_json::to_string(&m).unwrap();
            load_fleet(&fleet_with(&[("companions/agent/x.yaml", &text)]), &LIMITS).is_ok()
        })
        .count();
    assert!(
        accepted >= 10,
        "only {accepted} of 256 generated companions were accepted"
    );
}
