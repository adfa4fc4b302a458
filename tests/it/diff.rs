//! `drover diff` and the plan core on a real two-commit git history built from
//! `examples/fleet`: snapshots of the three formats, the blast radius, secret
//! masking and exit codes of the binary. (The diff(x, x) = ∅ property and the plan of
//! live objects are drover-core's tests: `crates/drover-core/tests/core`.)

use std::path::Path;

use drover::commands::diff::plan_revisions;
use drover::core::diff::Impact;
use drover::core::plan::{Action, ActionPlan, NodeInfo, Plan, parse_node_list};
use drover::core::report;
use drover::ui::Style;

use crate::harness::{Repo, Run, drover, root};

fn example_nodes() -> Vec<NodeInfo> {
    let text = std::fs::read_to_string(root("examples/nodes.yaml")).unwrap();
    parse_node_list(&text).unwrap()
}

const BASE_TOKEN: &str = "base-secret-token-111";
const HEAD_TOKEN: &str = "head-secret-token-222";

const NODE_PROBLEM_DETECTOR: &str = "\
apiVersion: drover.dev/v1alpha1
kind: Daemon
metadata:
  name: node-problem-detector
  labels:
    team: platform
spec:
  image: registry.k8s.io/node-problem-detector/node-problem-detector:v0.8.19
  command: [/node-problem-detector, --logtostderr]
  mounts:
    - {name: log, hostPath: /var/log, mountPath: /var/log, readOnly: true}
  resources:
    requests: {cpu: 10m, memory: 40Mi}
    limits: {memory: 80Mi}
";

const CADVISOR: &str = "\
apiVersion: drover.dev/v1alpha1
kind: Daemon
metadata:
  name: cadvisor
spec:
  image: gcr.io/cadvisor/cadvisor:v0.49.1
  groups: [general]
";

/// Commit 1: examples/fleet plus a cadvisor daemon and a secret-looking env var.
/// Commit 2: the seven kinds of change the plan must tell apart.
struct History {
    git: Repo,
    base: String,
    head: String,
}

fn history() -> History {
    let git = Repo::with_copy_of("examples/fleet");
    git.write("daemons/cadvisor.yaml", CADVISOR);
    let host = "      value: loki-gateway.logging.svc.cluster.local\n";
    git.edit(
        "daemons/fluent-bit.yaml",
        host,
        &format!("{host}    - name: LOKI_TOKEN\n      value: {BASE_TOKEN}\n"),
    );
    let base = git.commit("base fleet");

    // 1. An image bump in one group's override: restarts that group only.
    git.edit(
        "daemons/node-exporter.yaml",
        "image: quay.io/prometheus/node-exporter:v1.9.0",
        "image: quay.io/prometheus/node-exporter:v1.9.1",
    );
    // 2. An env change everywhere, including the secret-looking one.
    git.edit(
        "daemons/fluent-bit.yaml",
        "value: loki-gateway.logging.svc.cluster.local",
        "value: loki.logging.svc.cluster.local",
    );
    git.edit("daemons/fluent-bit.yaml", BASE_TOKEN, HEAD_TOKEN);
    // 3. A new daemon.
    git.write("daemons/node-problem-detector.yaml", NODE_PROBLEM_DETECTOR);
    // 4. A removed daemon.
    git.remove("daemons/nvidia-device-plugin.yaml");
    // 5. A toleration change.
    git.edit(
        "daemons/falco.yaml",
        "    - {operator: Exists, effect: NoSchedule}\n",
        "    - {operator: Exists, effect: NoSchedule}\n    - {operator: Exists, effect: NoExecute}\n",
    );
    // 6. A metadata-only change: the file moves, only drover.dev/source changes.
    git.rename(
        "daemons/cadvisor.yaml",
        "daemons/observability/cadvisor.yaml",
    );
    // 7. A rollout-setting change in one group.
    git.edit(
        "daemons/node-exporter.yaml",
        "      image: quay.io/prometheus/node-exporter:v1.9.1\n",
        "      image: quay.io/prometheus/node-exporter:v1.9.1\n    infra:\n      rollout: {maxUnavailable: 2, minReadySeconds: 20}\n",
    );
    let head = git.commit("seven changes");
    History { git, base, head }
}

fn fixture_plan(h: &History, nodes: Option<&[NodeInfo]>) -> Plan {
    plan_revisions(h.git.path(), &h.base, &h.head, nodes)
        .unwrap_or_else(|e| panic!("{e:#}\nfixture tree:\n{}", h.git.listing()))
}

fn action<'p>(plan: &'p Plan, name: &str) -> &'p ActionPlan {
    plan.actions()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no action for {name}"))
}

#[test]
fn each_kind_of_change_gets_the_right_action_and_impact() {
    let h = history();
    let plan = fixture_plan(&h, Some(&example_nodes()));

    let canary = action(&plan, "node-exporter-canary");
    assert_eq!(
        (canary.action, canary.impact),
        (Action::Update, Impact::Restart)
    );
    // 3 canary nodes, but one is a GPU node whose nvidia.com/gpu taint node-exporter
    // does not tolerate: its pods run on 2.
    assert_eq!(canary.nodes, Some(2));
    for unchanged in ["node-exporter-gpu", "node-exporter-general"] {
        assert_eq!(action(&plan, unchanged).action, Action::Unchanged);
        assert_eq!(action(&plan, unchanged).nodes, Some(0));
    }
    let infra = action(&plan, "node-exporter-infra");
    assert_eq!(
        (infra.action, infra.impact),
        (Action::Update, Impact::RolloutSettings)
    );
    assert!(!infra.restarts_pods);
    assert_eq!(infra.nodes, Some(0));

    for g in ["canary", "gpu", "general"] {
        let a = action(&plan, &format!("fluent-bit-{g}"));
        assert_eq!(
            (a.action, a.impact),
            (Action::Update, Impact::Restart),
            "{g}"
        );
    }
    for g in ["canary", "gpu", "infra", "general"] {
        let a = action(&plan, &format!("falco-{g}"));
        assert!(a.restarts_pods, "{g}");
        assert!(
            a.changes.iter().any(|c| c.path.contains("tolerations")),
            "{:?}",
            a.changes
        );
        let npd = action(&plan, &format!("node-problem-detector-{g}"));
        assert_eq!(npd.action, Action::Create, "{g}");
        assert_eq!(
            npd.stage,
            plan.stages
                .iter()
                .find(|s| s.groups.contains(&g.to_string()))
                .unwrap()
                .name
        );
    }
    assert_eq!(action(&plan, "falco-general").nodes, Some(5));
    assert_eq!(action(&plan, "falco-infra").nodes, Some(2));

    let cadvisor = action(&plan, "cadvisor-general");
    assert_eq!(
        (cadvisor.action, cadvisor.impact),
        (Action::Update, Impact::MetadataOnly)
    );
    assert!(!cadvisor.restarts_pods);

    assert_eq!(plan.prune.len(), 1);
    assert_eq!(plan.prune[0].name, "nvidia-device-plugin-gpu");
    assert_eq!(plan.prune[0].action, Action::Delete);
    assert_eq!(
        plan.prune[0].nodes,
        Some(2),
        "2 gpu nodes (the third is a canary)"
    );

    let s = &plan.summary;
    assert_eq!((s.create, s.delete, s.unchanged), (4, 1, 2));
    assert_eq!(s.update, 10);
    assert_eq!(s.nodes_restarted, Some(12), "falco restarts on every node");
    assert_eq!(plan.base.as_deref(), Some(h.base.as_str()));
    assert!(plan.has_changes());
}

#[test]
fn the_commit_annotation_alone_never_makes_a_daemonset_look_changed() {
    let h = history();
    let plan = fixture_plan(&h, None);
    for a in plan.actions() {
        assert!(
            !a.diff.contains("drover.dev/commit")
                && a.changes
                    .iter()
                    .all(|c| !c.path.contains("drover.dev/commit")),
            "{}: {}",
            a.name,
            a.diff
        );
    }
}

#[test]
fn secret_values_never_appear_in_any_format() {
    let h = history();
    let plan = fixture_plan(&h, Some(&example_nodes()));
    let fb = action(&plan, "fluent-bit-general");
    assert!(
        fb.changes.iter().any(|c| c.path.ends_with(".value")
            && c.after == Some(serde_json::json!("<masked, changed>"))),
        "{:?}",
        fb.changes
    );
    for (format, out) in [
        ("text", report::text::render(&plan, Style::plain())),
        ("json", report::json::render(&plan)),
        ("markdown", report::markdown::render(&plan)),
    ] {
        for secret in [BASE_TOKEN, HEAD_TOKEN] {
            assert!(!out.contains(secret), "{format} output leaks {secret}");
        }
        assert!(
            out.contains("LOKI_TOKEN"),
            "{format} output still names the variable"
        );
    }
}

#[test]
fn text_plan_snapshot() {
    let h = history();
    let plan = fixture_plan(&h, Some(&example_nodes()));
    insta::assert_snapshot!(report::text::render(&plan, Style::plain()));
}

#[test]
fn text_plan_without_nodes_snapshot() {
    let h = history();
    let plan = fixture_plan(&h, None);
    insta::assert_snapshot!(report::text::render(&plan, Style::plain()));
}

#[test]
fn json_plan_snapshot() {
    let h = history();
    let plan = fixture_plan(&h, Some(&example_nodes()));
    let json = report::json::render(&plan);
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan, "the JSON round-trips");
    insta::assert_snapshot!(json);
}

#[test]
fn markdown_plan_snapshot() {
    let h = history();
    let plan = fixture_plan(&h, Some(&example_nodes()));
    insta::assert_snapshot!(report::markdown::render(&plan));
}

#[test]
fn markdown_past_the_size_limit_leaves_diffs_out_with_a_note() {
    let h = history();
    let plan = fixture_plan(&h, Some(&example_nodes()));
    let full = report::markdown::render(&plan);
    let limit = 6_000;
    assert!(full.len() > limit, "the fixture is big enough to cut");
    let cut = report::markdown::render_with_limit(&plan, limit);
    assert!(
        cut.chars().count() <= limit,
        "{} chars",
        cut.chars().count()
    );
    assert!(cut.contains("| canary |"), "the summary table stays");
    let changed = plan.actions().filter(|a| !a.diff.is_empty()).count();
    let shown = cut.matches("<details>").count();
    assert!(shown < changed);
    assert!(
        cut.contains(&format!(
            "{} of {changed} diff(s) left out",
            changed - shown
        )),
        "{cut}"
    );
    assert!(cut.contains("run `drover diff --base"), "{cut}");
}

// ---- the binary, black box ------------------------------------------------------

/// `drover ARGS` in `dir`; no cluster.
fn drover_in(dir: &Path, args: &[&str]) -> Run {
    drover(args).current_dir(dir).tree(dir).run()
}

#[test]
fn drover_diff_prints_the_plan_and_exits_2_when_there_are_changes() {
    let h = history();
    let nodes = root("examples/nodes.yaml");
    let repo = h.git.path().to_str().unwrap();
    let args = [
        "diff",
        "--base",
        &h.base,
        "--head",
        &h.head,
        "--repo",
        repo,
        "--nodes",
        nodes.to_str().unwrap(),
    ];
    let r = drover_in(Path::new("/"), &args);
    r.expect_code(2);
    let plan = fixture_plan(&h, Some(&example_nodes()));
    assert_eq!(r.stdout, report::text::render(&plan, Style::plain()));
    assert!(
        r.stdout.contains("~  node-exporter-canary"),
        "{}",
        r.report()
    );
}

#[test]
fn drover_diff_of_a_commit_against_itself_prints_no_changes_and_exits_0() {
    let h = history();
    let args = ["diff", "--base", "HEAD", "--head", "HEAD"];
    let r = drover_in(h.git.path(), &args);
    r.expect_code(0);
    assert!(r.stdout.contains("no changes"), "{}", r.report());
    let md = [
        "diff", "--base", &h.head, "--head", &h.head, "--format", "markdown",
    ];
    let r = drover_in(h.git.path(), &md);
    r.expect_code(0);
    assert!(r.stdout.contains("**no changes**"), "{}", r.report());
}

#[test]
fn drover_diff_json_follows_the_schema() {
    let h = history();
    let args = [
        "diff", "--base", &h.base, "--head", &h.head, "--format", "json",
    ];
    let r = drover_in(h.git.path(), &args);
    r.expect_code(2);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["schema"], "drover.dev/plan/v1");
    assert_eq!(v["summary"]["create"], 4);
    assert!(
        v["summary"]["nodes_restarted"].is_null(),
        "no node list given"
    );
}

#[test]
fn invalid_head_fails_the_diff_with_file_line_errors() {
    let h = history();
    h.git.edit("daemons/falco.yaml", "  image:", "  imgae:");
    let bad = h.git.commit("typo");
    let args = ["diff", "--base", &h.head, "--head", &bad];
    let r = drover_in(h.git.path(), &args);
    r.expect_code(1);
    assert!(r.stderr.contains("daemons/falco.yaml:"), "{}", r.report());
    assert!(r.stderr.contains("head revision"), "{}", r.report());
    assert!(r.stdout.is_empty(), "{}", r.report());
}

#[test]
fn invalid_base_is_an_error_that_names_the_base() {
    let h = history();
    h.git.edit("daemons/falco.yaml", "  image:", "  imgae:");
    let bad = h.git.commit("typo");
    let args = ["diff", "--base", &bad, "--head", &h.head];
    let r = drover_in(h.git.path(), &args);
    r.expect_code(1);
    assert!(r.stderr.contains("base revision"), "{}", r.report());
}

#[test]
fn a_base_before_the_fleet_existed_creates_everything() {
    let git = Repo::new();
    git.write("README.md", "empty\n");
    let empty = git.commit("empty");
    git.copy_dir(&root("examples/fleet"), "");
    let full = git.commit("fleet");
    let plan = plan_revisions(git.path(), &empty, &full, None).unwrap();
    assert_eq!(plan.summary.create, 12);
    assert!(plan.actions().all(|a| a.action == Action::Create));
}

const CM_BASE_TOKEN: &str = "companion-secret-token-333";
const CM_HEAD_TOKEN: &str = "companion-secret-token-444";

const FLUENT_BIT_SA: &str = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: fluent-bit\n";

const READ_NODES: &str = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: drover-example-read-nodes\nrules:\n  - apiGroups: [\"\"]\n    resources: [nodes]\n    verbs: [get, list]\n";

fn fluent_bit_config(token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fluent-bit\ndata:\n  api_token: {token}\n  parsers.conf: |\n    [PARSER]\n        Name docker\n"
    )
}

const NVIDIA_SA: &str =
    "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: nvidia-device-plugin\n";

const METRICS_SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: node-exporter\nspec:\n  clusterIP: None\n  selector: {app.kubernetes.io/name: node-exporter}\n  ports:\n    - {name: metrics, port: 9100}\n";

/// Commit 1: examples/fleet with companions: fluent-bit's ServiceAccount and
/// ConfigMap (a secret-looking key), nvidia-device-plugin's ServiceAccount and the
/// fleet's ClusterRole. Commit 2: the ServiceAccount unchanged, the ClusterRole and
/// the ConfigMap updated, nvidia-device-plugin removed with its companion, a
/// Service for node-exporter added.
fn companion_history() -> History {
    let git = Repo::with_copy_of("examples/fleet");
    // Without the example's own companions: this history is about these.
    std::fs::remove_dir_all(git.path().join("companions")).unwrap();
    git.write(
        "companions/fluent-bit/serviceaccount-fluent-bit.yaml",
        FLUENT_BIT_SA,
    );
    git.write(
        "companions/fluent-bit/configmap-fluent-bit.yaml",
        fluent_bit_config(CM_BASE_TOKEN),
    );
    git.write(
        "companions/nvidia-device-plugin/serviceaccount-nvidia-device-plugin.yaml",
        NVIDIA_SA,
    );
    git.write("companions/clusterrole-read-nodes.yaml", READ_NODES);
    let base = git.commit("fleet with companions");
    git.edit(
        "companions/clusterrole-read-nodes.yaml",
        "verbs: [get, list]",
        "verbs: [get, list, watch]",
    );
    git.write(
        "companions/fluent-bit/configmap-fluent-bit.yaml",
        fluent_bit_config(CM_HEAD_TOKEN),
    );
    git.remove("daemons/nvidia-device-plugin.yaml");
    git.remove("companions/nvidia-device-plugin/serviceaccount-nvidia-device-plugin.yaml");
    git.write(
        "companions/node-exporter/service-node-exporter.yaml",
        METRICS_SERVICE,
    );
    let head = git.commit("companions change");
    History { git, base, head }
}

#[test]
fn drover_diff_shows_companion_objects_created_updated_unchanged_and_deleted_with_a_removed_daemons_companions_deleted()
 {
    let h = companion_history();
    let plan = fixture_plan(&h, None);
    let ns = &plan.namespace;
    let actions: Vec<(String, Action)> = plan
        .companions
        .iter()
        .map(|c| (c.object.clone(), c.action))
        .collect();
    assert_eq!(
        actions,
        vec![
            (
                "ClusterRole.rbac.authorization.k8s.io/drover-example-read-nodes".to_string(),
                Action::Update
            ),
            (format!("ConfigMap/{ns}/fluent-bit"), Action::Update),
            (format!("Service/{ns}/node-exporter"), Action::Create),
            (format!("ServiceAccount/{ns}/fluent-bit"), Action::Unchanged),
            (
                format!("ServiceAccount/{ns}/nvidia-device-plugin"),
                Action::Delete
            ),
        ]
    );
    let role = &plan.companions[0];
    assert_eq!(role.daemon, None);
    assert_eq!(role.source, "companions/clusterrole-read-nodes.yaml");
    assert!(
        role.diff.contains("\n+  - watch\n"),
        "the ClusterRole's diff: {}",
        role.diff
    );
    assert_eq!(plan.companions[2].daemon.as_deref(), Some("node-exporter"));
    // node-exporter's DaemonSets do not change: its Service goes before the first
    // stage, as the fleet's ClusterRole does; nothing is applied for the rest.
    let first = plan.stages[0].name.clone();
    let stages: Vec<Option<&str>> = plan.companions.iter().map(|c| c.stage.as_deref()).collect();
    assert_eq!(
        stages,
        [
            Some(first.as_str()),
            Some(first.as_str()),
            Some(first.as_str()),
            None,
            None
        ]
    );
    assert!(plan.companions[3].diff.is_empty());

    let text = report::text::render(&plan, Style::plain());
    assert!(text.contains("companion objects\n"), "{text}");
    assert!(
        text.contains("companion objects: 1 to create, 2 to update, 1 to delete, 1 unchanged."),
        "{text}"
    );
    assert!(
        text.contains(&format!("+  Service/{ns}/node-exporter")),
        "{text}"
    );
    let md = report::markdown::render(&plan);
    assert!(
        md.contains(&format!("| `-` | ServiceAccount/{ns}/nvidia-device-plugin | daemon nvidia-device-plugin | - | companions/nvidia-device-plugin/serviceaccount-nvidia-device-plugin.yaml |")),
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_str(&report::json::render(&plan)).unwrap();
    assert_eq!(json["companions"][1]["action"], "update");
    assert_eq!(json["companions"][1]["kind"], "ConfigMap");
    for (format, out) in [
        ("text", &text),
        ("markdown", &md),
        ("json", &json.to_string()),
    ] {
        for token in [CM_BASE_TOKEN, CM_HEAD_TOKEN] {
            assert!(
                !out.contains(token),
                "{format} shows the companion's secret: {out}"
            );
        }
    }
    assert!(text.contains("<masked, changed>"), "{text}");
}

#[test]
fn the_plan_digest_of_drover_diff_covers_companion_objects_and_not_their_key_order() {
    let git = Repo::with_copy_of("examples/fleet");
    git.write("companions/clusterrole-read-nodes.yaml", READ_NODES);
    let base = git.commit("a companion");
    let digest = |base: &str, head: &str| {
        plan_revisions(git.path(), base, head, None)
            .unwrap()
            .plan_digest
            .unwrap()
    };
    let none = digest(&base, &base);
    git.edit(
        "companions/clusterrole-read-nodes.yaml",
        "verbs: [get, list]",
        "verbs: [get, list, watch]",
    );
    let watch = git.commit("watch");
    git.edit(
        "companions/clusterrole-read-nodes.yaml",
        "verbs: [get, list, watch]",
        "verbs: [get, list, watch, patch]",
    );
    let patch = git.commit("patch");
    let one = digest(&base, &watch);
    assert_ne!(
        one, none,
        "a companion-only change leaves the digest as it was"
    );
    assert_ne!(
        digest(&base, &patch),
        one,
        "two companion changes, one digest"
    );

    // The same ClusterRole, its keys in another order: no change.
    git.write(
        "companions/clusterrole-read-nodes.yaml",
        "kind: ClusterRole\nrules:\n  - verbs: [get, list, watch, patch]\n    resources: [nodes]\n    apiGroups: [\"\"]\nmetadata:\n  name: drover-example-read-nodes\napiVersion: rbac.authorization.k8s.io/v1\n",
    );
    let reordered = git.commit("reordered");
    let p = plan_revisions(git.path(), &patch, &reordered, None).unwrap();
    assert!(!p.has_changes(), "{:?}", p.companions);
    let r = drover_in(git.path(), &["diff", "--base", &base, "--head", &watch]);
    r.expect_code(2);
    assert!(r.stdout.contains(&one), "{}", r.report());
}

const FB_CONF: &str = "[SERVICE]\n    Flush 1\n\n[OUTPUT]\n    Name  loki\n    Match *\n    http_passwd config-secret-555\n";
const FB_GPU_PARSERS: &str = "[PARSER]\n    Name dcgm\n    Format json\n";

/// Commit 1: examples/fleet, whose fluent-bit mounts `fluent-bit-config` (from
/// config/fluent-bit/fluent-bit-config/), with two more files there, and whose gpu
/// group overrides parsers.conf. Commit 2: gpu's parsers.conf changes. Commit 3 (returned beside):
/// the shared file's secret changes.
fn config_history() -> (History, String) {
    let git = Repo::with_copy_of("examples/fleet");
    git.write(
        "config/fluent-bit/fluent-bit-config/fluent-bit.conf",
        FB_CONF,
    );
    git.write(
        "config/fluent-bit/fluent-bit-config/parsers.conf",
        "[PARSER]\n    Name cri\n",
    );
    git.write("config/fluent-bit/gpu/parsers.conf", FB_GPU_PARSERS);
    git.edit(
        "daemons/fluent-bit.yaml",
        "  exclude: [infra]\n",
        "  exclude: [infra]\n  overrides:\n    gpu:\n      configFiles:\n        - {name: fluent-bit-config, files: {parsers.conf: config/fluent-bit/gpu/parsers.conf}}\n",
    );
    let base = git.commit("fluent-bit with config files");
    git.edit(
        "config/fluent-bit/gpu/parsers.conf",
        "Format json",
        "Format logfmt",
    );
    let head = git.commit("gpu parsers change");
    git.edit(
        "config/fluent-bit/fluent-bit-config/fluent-bit.conf",
        "config-secret-555",
        "config-secret-666",
    );
    let secret = git.commit("the shared secret changes");
    (History { git, base, head }, secret)
}

#[test]
fn drover_diff_shows_a_config_file_change_as_its_own_diff_for_only_the_groups_it_reaches() {
    let (h, _) = config_history();
    let plan = fixture_plan(&h, None);
    let changed: Vec<(&str, &[String])> = plan
        .actions()
        .filter(|a| a.action != Action::Unchanged)
        .map(|a| (a.name.as_str(), a.config_files.as_slice()))
        .collect();
    assert_eq!(
        changed,
        [(
            "fluent-bit-gpu",
            &["fluent-bit-config/parsers.conf".to_string()][..]
        )]
    );
    let gpu = action(&plan, "fluent-bit-gpu");
    assert_eq!(gpu.impact, Impact::Restart);
    assert_eq!(gpu.stage, "specialised");
    let repo = h.git.path().to_str().unwrap();
    let r = drover_in(
        Path::new("/"),
        &["diff", "--base", &h.base, "--head", &h.head, "--repo", repo],
    );
    r.expect_code(2);
    assert!(
        r.stdout.contains("-    Format json\n+    Format logfmt\n"),
        "{}",
        r.report()
    );
    assert!(
        r.stdout
            .contains("fluent-bit-gpu: config file fluent-bit-config/parsers.conf changed"),
        "{}",
        r.report()
    );
    // Never a hashed name: neither side's.
    assert!(
        !r.stdout.contains("fluent-bit-config-"),
        "a hashed ConfigMap name is shown: {}",
        r.stdout
    );
}

#[test]
fn a_changed_secret_in_a_config_file_is_masked_in_text_json_and_markdown() {
    let (h, head) = config_history();
    let repo = h.git.path().to_str().unwrap();
    for format in ["text", "json", "markdown"] {
        let r = drover_in(
            Path::new("/"),
            &[
                "diff", "--base", &h.head, "--head", &head, "--repo", repo, "--format", format,
            ],
        );
        r.expect_code(2);
        assert!(
            !r.stdout.contains("config-secret-"),
            "{format}: {}",
            r.stdout
        );
        assert!(
            r.stdout.contains("<masked, changed>"),
            "{format}: {}",
            r.stdout
        );
        // The shared file reaches every group fluent-bit runs in but infra.
        for ds in ["fluent-bit-canary", "fluent-bit-gpu", "fluent-bit-general"] {
            assert!(r.stdout.contains(ds), "{format}: {ds} missing");
        }
    }
}
