//! Rendered YAML of the example fleet and of every valid fixture, as reviewed
//! snapshots, plus explicit checks of what each fixture's CASE.md promises.

use std::collections::BTreeMap;

use crate::support::{COMMIT, admits, labels, load_dir, render_dir, repo_root};
use drover_core::render::{DesiredDaemonSet, DesiredSet, manifests_digest, to_yaml_stream};
use serde_json::{Value as JsonValue, json};

fn item<'a>(set: &'a DesiredSet, name: &str) -> &'a DesiredDaemonSet {
    set.items
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = set.items.iter().map(|i| i.name.as_str()).collect();
            panic!("no DaemonSet {name}; rendered: {names:?}")
        })
}

fn names(set: &DesiredSet) -> Vec<&str> {
    set.items.iter().map(|i| i.name.as_str()).collect()
}

/// `(maxUnavailable, maxSurge, minReadySeconds)` as rendered.
fn rollout(i: &DesiredDaemonSet) -> (JsonValue, JsonValue, JsonValue) {
    let m = &i.manifest.value()["spec"];
    let ru = &m["updateStrategy"]["rollingUpdate"];
    assert_eq!(m["updateStrategy"]["type"], "RollingUpdate", "{}", i.name);
    (
        ru["maxUnavailable"].clone(),
        ru["maxSurge"].clone(),
        // Left out when 0, as the API server does.
        m.get("minReadySeconds")
            .cloned()
            .unwrap_or(serde_json::json!(0)),
    )
}

fn container(i: &DesiredDaemonSet) -> JsonValue {
    i.manifest.value()["spec"]["template"]["spec"]["containers"][0].clone()
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[test]
fn example_fleet_renders_to_the_reviewed_yaml_stream() {
    let set = render_dir("examples/fleet");
    insta::assert_snapshot!("examples_fleet", to_yaml_stream(&set));
}

#[test]
fn every_valid_fixture_renders_to_its_reviewed_yaml_stream() {
    let dir = repo_root().join("fixtures/valid");
    let mut cases: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    assert!(cases.len() >= 4, "{cases:?}");
    for case in cases {
        let set = render_dir(format!("fixtures/valid/{case}"));
        insta::with_settings!({snapshot_suffix => case.clone()}, {
            insta::assert_snapshot!("valid_fixture", to_yaml_stream(&set));
        });
    }
}

#[test]
fn rendering_the_same_tree_twice_gives_the_same_bytes() {
    let a = to_yaml_stream(&render_dir("examples/fleet"));
    let b = to_yaml_stream(&render_dir("examples/fleet"));
    assert_eq!(a, b);
}

#[test]
fn the_streamed_manifests_digest_is_the_digest_of_the_whole_yaml_stream_then_the_companions() {
    // The audit record's manifests digest: recorded digests stay comparable only
    // while the streamed hash and the hash of the stream agree, for every fixture
    // (the companion objects' manifests follow the DaemonSets', as documents).
    let mut dirs = vec!["examples/fleet".to_string()];
    for e in std::fs::read_dir(repo_root().join("fixtures/valid")).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            dirs.push(format!(
                "fixtures/valid/{}",
                e.file_name().to_string_lossy()
            ));
        }
    }
    let mut with_companions = 0;
    for d in &dirs {
        let set = render_dir(d);
        let mut stream = to_yaml_stream(&set);
        for c in &set.companions {
            stream.push_str("---\n");
            stream.push_str(&drover_core::render::to_yaml(&c.manifest));
        }
        with_companions += usize::from(!set.companions.is_empty());
        assert_eq!(
            manifests_digest(&set),
            drover_core::audit::digest(stream.as_bytes()),
            "{d}"
        );
    }
    assert!(with_companions > 0, "no fixture has companions: {dirs:?}");
    assert!(dirs.len() > 3, "{dirs:?}");
}

#[test]
fn example_fleet_renders_twelve_daemonsets_as_its_readme_tables_say() {
    let set = render_dir("examples/fleet");
    assert_eq!(set.fleet, "prod-eu1");
    assert_eq!(set.namespace, "node-agents");
    assert_eq!(
        names(&set),
        [
            "falco-canary",
            "falco-general",
            "falco-gpu",
            "falco-infra",
            "fluent-bit-canary",
            "fluent-bit-general",
            "fluent-bit-gpu",
            "node-exporter-canary",
            "node-exporter-general",
            "node-exporter-gpu",
            "node-exporter-infra",
            "nvidia-device-plugin-gpu",
        ]
    );
    // node-exporter: the canary override, v1.8.2 elsewhere.
    for (g, tag) in [
        ("canary", "v1.9.0"),
        ("gpu", "v1.8.2"),
        ("infra", "v1.8.2"),
        ("general", "v1.8.2"),
    ] {
        let i = item(&set, &format!("node-exporter-{g}"));
        assert_eq!(
            container(i)["image"],
            format!("quay.io/prometheus/node-exporter:{tag}")
        );
    }
    // Rollout: fluent-bit 20% everywhere (its own beats gpu's 1), the others 1 on
    // gpu and the fleet's 10% elsewhere; maxSurge 0 and minReadySeconds 5 from the
    // fleet defaults.
    for i in &set.items {
        let expected = if i.daemon == "fluent-bit" {
            json!("20%")
        } else if i.group == "gpu" {
            json!(1)
        } else {
            json!("10%")
        };
        assert_eq!(rollout(i), (expected, json!(0), json!(5)), "{}", i.name);
    }
    // Stages.
    for i in &set.items {
        let stage = match i.group.as_str() {
            "canary" => "canary",
            "gpu" | "infra" => "specialised",
            _ => "fleet",
        };
        assert_eq!(i.stage, stage, "{}", i.name);
    }
    // Labels and annotations from DESIGN.md.
    let i = item(&set, "fluent-bit-gpu");
    let meta = &i.manifest.value()["metadata"];
    assert_eq!(meta["namespace"], "node-agents");
    for (k, v) in [
        ("app.kubernetes.io/name", "fluent-bit"),
        ("app.kubernetes.io/managed-by", "drover"),
        ("drover.dev/fleet", "prod-eu1"),
        ("drover.dev/daemon", "fluent-bit"),
        ("drover.dev/group", "gpu"),
        ("team", "logging"),
    ] {
        assert_eq!(meta["labels"][k], v, "label {k}");
        assert_eq!(
            i.manifest.value()["spec"]["template"]["metadata"]["labels"][k],
            v,
            "pod label {k}"
        );
    }
    assert_eq!(meta["annotations"]["drover.dev/commit"], COMMIT);
    assert_eq!(
        meta["annotations"]["drover.dev/source"],
        "daemons/fluent-bit.yaml"
    );
    assert_eq!(meta["annotations"]["drover.dev/spec-hash"], i.spec_hash);
    // The group's toleration is added to the daemon's.
    let tolerations = &i.manifest.value()["spec"]["template"]["spec"]["tolerations"];
    assert_eq!(
        tolerations,
        &json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    );
    // podTemplate merged last: annotations and dnsPolicy.
    let pod = &i.manifest.value()["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/port"], "2020");
    assert_eq!(pod["spec"]["dnsPolicy"], "ClusterFirstWithHostNet");
}

#[test]
fn example_fleet_affinity_places_each_snapshot_node_in_exactly_its_first_matching_group() {
    let set = render_dir("examples/fleet");
    let text = std::fs::read_to_string(repo_root().join("examples/nodes.yaml")).unwrap();
    let list: JsonValue = serde_yaml::from_str(&text).unwrap();
    let nodes = list["items"].as_array().unwrap();
    assert_eq!(nodes.len(), 12);
    let mut per_group: BTreeMap<String, usize> = BTreeMap::new();
    for node in nodes {
        let name = node["metadata"]["name"].as_str().unwrap();
        let node_labels: BTreeMap<String, String> =
            serde_json::from_value(node["metadata"]["labels"].clone()).unwrap();
        // falco runs in every group: exactly one of its DaemonSets admits each node.
        let falco: Vec<&DesiredDaemonSet> = set
            .items
            .iter()
            .filter(|i| i.daemon == "falco" && admits(&i.manifest.value(), &node_labels))
            .collect();
        assert_eq!(
            falco.len(),
            1,
            "node {name}: {:?}",
            falco.iter().map(|i| &i.name).collect::<Vec<_>>()
        );
        let group = falco[0].group.clone();
        // Every daemon: at most one DaemonSet, and it is the one of that group.
        for daemon in ["fluent-bit", "node-exporter", "nvidia-device-plugin"] {
            let hits: Vec<&str> = set
                .items
                .iter()
                .filter(|i| i.daemon == daemon && admits(&i.manifest.value(), &node_labels))
                .map(|i| i.group.as_str())
                .collect();
            let placed = set
                .items
                .iter()
                .any(|i| i.daemon == daemon && i.group == group);
            let expected: Vec<&str> = if placed { vec![group.as_str()] } else { vec![] };
            assert_eq!(hits, expected, "node {name}, daemon {daemon}");
        }
        *per_group.entry(group).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> =
        [("canary", 3), ("gpu", 2), ("infra", 2), ("general", 5)]
            .into_iter()
            .map(|(g, n)| (g.to_string(), n))
            .collect();
    assert_eq!(per_group, expected);
}

#[test]
fn rollout_resolves_each_knob_from_the_most_specific_level() {
    let set = render_dir("fixtures/valid/overrides-and-rollout");
    // CASE.md's table: override > daemon > group > fleet defaults > Kubernetes.
    let table = [
        ("agent-canary", json!("50%"), json!(0)),
        ("agent-gpu", json!(2), json!(30)),
        ("agent-general", json!(2), json!(5)),
        ("plain-canary", json!("10%"), json!(5)),
        ("plain-gpu", json!(1), json!(30)),
        ("plain-general", json!("10%"), json!(5)),
    ];
    assert_eq!(set.items.len(), table.len(), "{:?}", names(&set));
    for (name, max_unavailable, min_ready) in table {
        assert_eq!(
            rollout(item(&set, name)),
            (max_unavailable, json!(0), min_ready),
            "{name}"
        );
    }
}

#[test]
fn overrides_replace_image_command_args_env_and_resources_on_their_group_only() {
    let set = render_dir("fixtures/valid/overrides-and-rollout");
    let canary = container(item(&set, "agent-canary"));
    assert_eq!(
        canary["image"],
        "registry.example.com/platform/node-agent:2.4.0-rc.1"
    );
    assert_eq!(
        canary["command"],
        json!(["/usr/local/bin/node-agent", "--experimental"])
    );
    assert_eq!(
        canary["args"],
        json!(["--log-level=debug", "--interval=10s"])
    );
    let env: BTreeMap<String, String> = canary["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        env,
        labels(&[
            ("FEATURE_GATES", "NewScheduler=true"),
            ("LOG_FORMAT", "json"),
            ("UPSTREAM", "https://collector-canary.example.com"),
        ])
    );
    assert_eq!(
        canary["resources"],
        json!({"limits": {"cpu": "1", "memory": "256Mi"}, "requests": {"cpu": "200m", "memory": "128Mi"}})
    );
    for g in ["gpu", "general"] {
        let c = container(item(&set, &format!("agent-{g}")));
        assert_eq!(c["image"], "registry.example.com/platform/node-agent:2.3.0");
        assert_eq!(c["command"], json!(["/usr/local/bin/node-agent"]));
        assert_eq!(c["args"], json!(["--log-level=info", "--interval=30s"]));
        assert_eq!(
            c["env"],
            json!([{"name": "LOG_FORMAT", "value": "json"}, {"name": "UPSTREAM", "value": "https://collector.example.com"}])
        );
        assert_eq!(
            c["resources"],
            json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}})
        );
    }
    // The daemon's labels reach the DaemonSet and its pods.
    assert_eq!(
        item(&set, "agent-gpu").manifest.value()["metadata"]["labels"]["team"],
        "platform"
    );
    assert_eq!(
        container(item(&set, "plain-gpu"))["image"],
        "registry.example.com/platform/plain-agent@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
    );
}

#[test]
fn overrides_fixture_keeps_its_stages_durations_prune_and_failure_policy() {
    let fleet = load_dir("fixtures/valid/overrides-and-rollout").unwrap();
    let stages: Vec<(&str, Vec<&str>, u64, u64)> = fleet
        .stages
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.groups.iter().map(String::as_str).collect(),
                s.bake.as_secs(),
                s.timeout.as_secs(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("canary", vec!["canary"], 60, 600),
            ("rest", vec!["gpu", "general"], 5400, 15 * 60),
        ]
    );
    assert!(!fleet.prune.enabled);
    assert_eq!(fleet.on_failure, drover_core::model::OnFailure::Rollback);
}

#[test]
fn fleet_without_stages_or_defaults_rolls_each_group_alone_with_kubernetes_defaults() {
    let fleet = load_dir("fixtures/valid/no-stages").unwrap();
    let stages: Vec<(&str, Vec<&str>)> = fleet
        .stages
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.groups.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("canary", vec!["canary"]),
            ("gpu", vec!["gpu"]),
            ("general", vec!["general"])
        ]
    );
    assert!(fleet.prune.enabled);
    assert_eq!(fleet.prune.max_delete_fraction, 0.5);
    assert_eq!(fleet.on_failure, drover_core::model::OnFailure::Halt);

    let set = render_dir("fixtures/valid/no-stages");
    assert_eq!(
        names(&set),
        [
            "node-exporter-canary",
            "node-exporter-general",
            "node-exporter-gpu"
        ]
    );
    for i in &set.items {
        assert_eq!(rollout(i), (json!(1), json!(0), json!(0)), "{}", i.name);
        assert_eq!(i.stage, i.group);
        // hostPort without hostNetwork is allowed and kept.
        assert_eq!(
            container(i)["ports"],
            json!([{"name": "metrics", "containerPort": 9100, "hostPort": 9100, "protocol": "TCP"}])
        );
        assert!(
            i.manifest.value()["spec"]["template"]["spec"]
                .get("hostNetwork")
                .is_none()
        );
    }
    // The three groups came from one multi-document file.
    assert!(
        fleet
            .groups
            .iter()
            .all(|g| g.source == "groups/groups.yaml")
    );
}

#[test]
fn daemonset_names_past_63_characters_are_shortened_and_exactly_63_are_kept() {
    let set = render_dir("fixtures/valid/long-names");
    assert_eq!(set.items.len(), 6);
    let mut shortened = 0;
    for i in &set.items {
        let full = format!("{}-{}", i.daemon, i.group);
        assert!(
            is_dns1123_label(&i.name),
            "{} is not a DNS-1123 label",
            i.name
        );
        if full.len() <= 63 {
            assert_eq!(i.name, full, "{full} must not be shortened");
        } else {
            shortened += 1;
            assert_ne!(i.name, full);
            // A readable prefix of the full name, then `-` and an 8-digit hash.
            let (prefix, hash) = i.name.rsplit_once('-').unwrap();
            assert!(full.starts_with(prefix), "{} vs {full}", i.name);
            assert_eq!(hash.len(), 8, "{}", i.name);
            assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{}", i.name);
        }
        // The labels keep the full names.
        let l = &i.manifest.value()["metadata"]["labels"];
        assert_eq!(l["drover.dev/daemon"], i.daemon.as_str());
        assert_eq!(l["drover.dev/group"], i.group.as_str());
        assert_eq!(i.manifest.value()["metadata"]["name"], i.name.as_str());
    }
    assert_eq!(shortened, 4);
    let exactly_63 = item(
        &set,
        "kernel-runtime-security-audit-agent-for-regulated-nodes-general",
    );
    assert_eq!(exactly_63.name.len(), 63);
    let mut unique = names(&set);
    unique.dedup();
    assert_eq!(unique.len(), 6, "names collide: {unique:?}");
    // Stable: a second render gives the same names.
    assert_eq!(names(&render_dir("fixtures/valid/long-names")), names(&set));
    // No stages: each group is its own stage.
    for i in &set.items {
        assert_eq!(i.stage, i.group);
    }
}

#[test]
fn selectors_fixture_places_daemons_and_keeps_both_env_forms() {
    let set = render_dir("fixtures/valid/selectors-and-env");
    assert_eq!(
        names(&set),
        [
            "exporter-edge",
            "exporter-modern-kernel",
            "shipper-edge",
            "shipper-modern-kernel"
        ]
    );
    assert_eq!(set.namespace, "agents");
    for i in &set.items {
        assert_eq!(i.stage, "all");
    }
    // env map form, sorted by name, empty value kept.
    assert_eq!(
        container(item(&set, "exporter-edge"))["env"],
        json!([
            {"name": "EMPTY", "value": ""},
            {"name": "GOMAXPROCS", "value": "2"},
            {"name": "QUOTED_NUMBER", "value": "8080"}
        ])
    );
    // EnvVar list form kept in order, valueFrom untouched.
    let shipper = container(item(&set, "shipper-modern-kernel"));
    let env_names: Vec<&str> = shipper["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        env_names,
        [
            "NODE_NAME",
            "POD_IP",
            "MEMORY_LIMIT",
            "OUTPUT_TOKEN",
            "CLUSTER"
        ]
    );
    assert_eq!(
        shipper["env"][3]["valueFrom"],
        json!({"secretKeyRef": {"name": "shipper-output", "key": "token", "optional": true}})
    );
    assert_eq!(
        item(&set, "shipper-edge").manifest.value()["metadata"]["annotations"]["drover.dev/source"],
        "daemons/logging/shipper.yml"
    );
    // Edge's toleration with tolerationSeconds.
    assert_eq!(
        item(&set, "exporter-edge").manifest.value()["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "example.com/edge", "operator": "Equal", "value": "true", "effect": "NoExecute", "tolerationSeconds": 300}])
    );
}

#[test]
fn selectors_fixture_affinity_is_own_selector_and_not_every_earlier_group() {
    let set = render_dir("fixtures/valid/selectors-and-env");
    let edge_node = labels(&[
        ("example.com/tier", "edge"),
        ("kubernetes.io/os", "linux"),
        ("topology.kubernetes.io/zone", "eu-west-1b"),
        ("node.kubernetes.io/instance-type", "m6i.large"),
        ("example.com/edge-gateway", ""),
        ("example.com/disk", "nvme"),
        ("example.com/kernel-major", "6"),
    ]);
    // Matches all three selectors: the first (edge) wins.
    assert!(admits(
        &item(&set, "exporter-edge").manifest.value(),
        &edge_node
    ));
    assert!(!admits(
        &item(&set, "exporter-modern-kernel").manifest.value(),
        &edge_node
    ));

    // Not edge (decommissioning), storage (nvme) and kernel 6: storage wins, and
    // both daemons stay off it (exporter is not placed there, shipper excludes it).
    let mut storage_node = edge_node.clone();
    storage_node.insert("example.com/decommissioning".into(), "true".into());
    for i in &set.items {
        assert!(
            !admits(&i.manifest.value(), &storage_node),
            "{} runs on a storage node",
            i.name
        );
    }
    // Same node with a SATA disk: now modern-kernel.
    let mut kernel_node = storage_node.clone();
    kernel_node.insert("example.com/disk".into(), "sata".into());
    assert!(admits(
        &item(&set, "exporter-modern-kernel").manifest.value(),
        &kernel_node
    ));
    assert!(admits(
        &item(&set, "shipper-modern-kernel").manifest.value(),
        &kernel_node
    ));
    assert!(!admits(
        &item(&set, "exporter-edge").manifest.value(),
        &kernel_node
    ));
    // No group at all (kernel 5 is not > 5): nothing runs.
    let mut old_kernel = kernel_node.clone();
    old_kernel.insert("example.com/kernel-major".into(), "5".into());
    for i in &set.items {
        assert!(
            !admits(&i.manifest.value(), &old_kernel),
            "{} runs on an ungrouped node",
            i.name
        );
    }
    // The first group's affinity is its own selector alone: one term.
    let edge_terms = item(&set, "exporter-edge").manifest.value()
        ["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        .clone();
    assert_eq!(edge_terms.as_array().unwrap().len(), 1);
    assert_eq!(
        edge_terms[0]["matchExpressions"].as_array().unwrap().len(),
        6
    );
}
