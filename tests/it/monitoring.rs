//! deploy/monitoring: the Grafana dashboard and the alerting rules name only metrics
//! drover exports, the PrometheusRule holds the same rules as the rule file, and the
//! dashboard is well-formed for its schema version. (`promtool check rules` runs in
//! scripts/test.)

use std::collections::BTreeSet;

use drover::shell::metrics::Metrics;

use crate::harness::root;

fn read(rel: &str) -> String {
    std::fs::read_to_string(root(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The metric families drover's /metrics shows once every one has a sample.
fn exported() -> BTreeSet<String> {
    let m = Metrics::default();
    m.applied("0123456789ab");
    m.stage("canary", 1.0);
    m.drift_corrected();
    m.outcome("applied");
    m.api_requests(3);
    m.rollout(true);
    m.leader(true);
    m.error("audit", "cannot append");
    m.healthy();
    m.render()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// Every `drover_*` metric name in a PromQL-bearing text.
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("drover_") {
        let start = i + at;
        let before = start.checked_sub(1).map(|b| bytes[b]);
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

#[test]
fn every_metric_the_dashboard_and_the_alerts_name_is_one_drover_exports() {
    let exported = exported();
    assert!(exported.contains("drover_healthy"), "{exported:?}");
    for file in [
        "deploy/monitoring/grafana-dashboard.json",
        "deploy/monitoring/drover-rules.yaml",
        "deploy/monitoring/prometheusrule.yaml",
    ] {
        let used = named(&read(file));
        assert!(!used.is_empty(), "{file} names no drover metric");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics drover does not export: {unknown:?}\nexported: {exported:?}"
        );
    }
}

#[test]
fn the_prometheusrule_holds_exactly_the_rules_of_the_rule_file() {
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/monitoring/drover-rules.yaml")).unwrap();
    let cr: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/monitoring/prometheusrule.yaml")).unwrap();
    assert_eq!(cr["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(cr["kind"], "PrometheusRule");
    assert_eq!(cr["spec"]["groups"], rules["groups"]);
    let alerts: Vec<&str> = rules["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    // The alerts issue 16 asks for, by what they watch.
    for want in [
        "DroverRolloutHalted",
        "DroverSyncFailing",
        "DroverLastSuccessTooOld",
        "DroverAuditAppendFailing",
    ] {
        assert!(alerts.contains(&want), "{alerts:?}");
    }
    for r in rules["groups"][0]["rules"].as_sequence().unwrap() {
        assert!(r["expr"].as_str().is_some_and(|e| !e.is_empty()), "{r:?}");
        assert!(r["labels"]["severity"].as_str().is_some(), "{r:?}");
        assert!(r["annotations"]["summary"].as_str().is_some(), "{r:?}");
    }
}

#[test]
fn the_dashboard_is_well_formed_for_its_schema_version() {
    let d: serde_json::Value =
        serde_json::from_str(&read("deploy/monitoring/grafana-dashboard.json")).unwrap();
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion"
    );
    assert!(
        d["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u.len() <= 40)
    );
    assert!(d["title"].as_str().is_some());
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(vars.contains(&"datasource"), "{vars:?}");
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate panel id in {p}"
        );
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].as_u64().is_some(), "gridPos.{k} in {p}");
        }
        assert!(p["gridPos"]["x"].as_u64().unwrap() + p["gridPos"]["w"].as_u64().unwrap() <= 24);
        assert!(
            p["type"]
                .as_str()
                .is_some_and(|t| ["stat", "timeseries", "table", "bargauge"].contains(&t))
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{p}");
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| e.contains("drover_")),
                "{t}"
            );
        }
    }
}
