//! The short form's full pod (issue 13, item 3) against the testbed's API server:
//! `drover render | kubectl apply --dry-run=server` of the `full-pod-spec` fixture is
//! accepted, and every new field comes back from the server where drover put it
//! (the server drops what it does not know, so a misspelt field would not).

use std::path::Path;

use serde_json::{Value as JsonValue, json};

use crate::harness::{ROOT, TestEnv};
use crate::import::{fleet_in, server_dry_run};

/// The dry-run answer, one object per DaemonSet (`kubectl -o json` prints a List
/// when there are several).
fn daemonsets(stdout: &str) -> Vec<JsonValue> {
    let v: JsonValue = serde_json::from_str(stdout).expect("dry-run json");
    match v["kind"].as_str() {
        Some("List") => v["items"].as_array().expect("items").clone(),
        _ => vec![v],
    }
}

#[test]
fn the_full_pod_spec_fixture_passes_a_server_side_dry_run_with_every_new_field_kept() {
    let env = TestEnv::new("pod-spec-dry-run");
    let tmp = tempfile::tempdir().unwrap();
    let fleet = fleet_in(
        &Path::new(ROOT).join("fixtures/valid/full-pod-spec"),
        &env.ns,
        tmp.path(),
    );
    let r = server_dry_run(&env, &fleet);
    r.expect_code(0);
    let all = daemonsets(&r.stdout);
    let ds = all
        .iter()
        .find(|d| d["metadata"]["name"] == "log-shipper-canary")
        .unwrap_or_else(|| panic!("no log-shipper-canary in {}", r.stdout));
    assert_eq!(ds["metadata"]["namespace"], json!(env.ns));
    let spec = &ds["spec"];
    let pod = &spec["template"]["spec"];
    assert_eq!(spec["revisionHistoryLimit"], 3);
    assert_eq!(
        spec["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
        "fluent-bit"
    );
    assert_eq!(
        spec["selector"]["matchLabels"]["drover.dev/daemon"],
        "log-shipper"
    );
    let names = |list: &JsonValue| -> Vec<String> {
        list.as_array()
            .unwrap_or_else(|| panic!("not a list: {list}"))
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&pod["containers"]), ["fluent-bit", "exporter"]);
    assert_eq!(names(&pod["initContainers"]), ["wait-for-config"]);
    assert_eq!(
        names(&pod["volumes"]),
        ["varlog", "config", "buffer", "token", "tls"]
    );
    assert_eq!(
        pod["volumes"][3]["projected"]["sources"][0]["serviceAccountToken"]["path"],
        "token"
    );
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(pod["dnsConfig"]["options"][0]["name"], "ndots");
    assert_eq!(pod["securityContext"]["fsGroup"], 2000);
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    let main = &pod["containers"][0];
    assert_eq!(
        main["lifecycle"]["preStop"]["exec"]["command"][2],
        "sleep 5"
    );
    assert_eq!(main["volumeMounts"][1]["subPath"], "fluent-bit.conf");
    let side = &pod["containers"][1];
    assert_eq!(side["workingDir"], "/work");
    assert_eq!(
        side["lifecycle"]["postStart"]["exec"]["command"][0],
        "/bin/true"
    );
    assert_eq!(side["readinessProbe"]["httpGet"]["path"], "/metrics");
    let terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"]
        .as_array()
        .expect("terms");
    assert_eq!(terms.len(), 1);
    let keys: Vec<&str> = terms[0]["matchExpressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "drover.dev/canary",
            "eks.amazonaws.com/compute-type",
            "kubernetes.io/arch",
            "kubernetes.io/os",
            "node.example.com/disk",
            "node.example.com/generation"
        ]
    );
}
