//! Moves and immutable fields on the real local control plane: a namespace move, a
//! fleet rename and a DaemonSet name reused with another selector each end with
//! exactly one copy of every DaemonSet (and one pod of each daemon per node), the
//! plan showing them as moves or replacements before anything is written; and an
//! object of that name the fleet does not own is never written over.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{Remote, Repo, Run, TestEnv, daemon};
use drover::core::plan::parse_node_list;
use drover::core::report;
use drover::ui::Style;

/// Offline (`drover diff`), a move and a rename show as what they are, in every
/// format: no testbed needed.
fn offline_plans() -> (String, String, String, String) {
    let git = Repo::new();
    git.write(
        "drover.yaml",
        fleet("prod", "agents", "x", &["canary", "rest"]),
    );
    git.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", AGENT),
    );
    let base = git.commit("fleet prod in agents");
    git.write(
        "drover.yaml",
        fleet("prod", "node-agents", "x", &["canary", "rest"]),
    );
    let moved = git.commit("move to node-agents");
    git.write(
        "drover.yaml",
        fleet("prod-eu1", "node-agents", "x", &["canary", "rest"]),
    );
    let renamed = git.commit("rename to prod-eu1");
    let nodes = parse_node_list(
        "kind: List\nitems:\n- {kind: Node, metadata: {name: n1, labels: {drover.test/ns: x, role: canary}}}\n- {kind: Node, metadata: {name: n2, labels: {drover.test/ns: x}}}\n- {kind: Node, metadata: {name: n3, labels: {drover.test/ns: x}}}\n",
    )
    .unwrap();
    let plan = |from: &str, to: &str| {
        drover::commands::diff::plan_revisions(git.path(), from, to, Some(&nodes)).unwrap()
    };
    let m = plan(&base, &moved);
    let r = plan(&moved, &renamed);
    (
        report::text::render(&m, Style::plain()),
        report::markdown::render(&m),
        report::text::render(&r, Style::plain()),
        report::json::render(&r),
    )
}

#[test]
fn offline_a_namespace_move_and_a_rename_show_as_moves_and_replacements() {
    let (moved_text, moved_md, renamed_text, renamed_json) = offline_plans();
    assert!(
        moved_text.contains(", 0 to update, 0 to delete"),
        "{moved_text}"
    );
    insta::assert_snapshot!("move_text", moved_text);
    insta::assert_snapshot!("move_markdown", moved_md);
    insta::assert_snapshot!("rename_text", renamed_text);
    let p: drover::core::plan::Plan = serde_json::from_str(&renamed_json).unwrap();
    assert_eq!(p.summary.replace, 2);
    assert!(p.actions().all(|a| {
        a.replaces
            .as_ref()
            .is_some_and(|r| r.delete_first && r.fleet.as_deref() == Some("prod"))
    }));
}

/// A fleet `name` in `namespace` with two stages (canary, rest) over the test's nodes.
fn fleet(name: &str, namespace: &str, nodes_ns: &str, groups: &[&str]) -> String {
    let mut out = format!(
        r#"apiVersion: drover.dev/v1alpha1
kind: Fleet
metadata: {{name: {name}}}
spec:
  namespace: {namespace}
  groups: [{}]
  defaults:
    rollout: {{maxUnavailable: "50%", maxSurge: 0}}
  prune: {{enabled: true, maxDeleteFraction: 0.5}}
"#,
        groups.join(", ")
    );
    for (i, g) in groups.iter().enumerate() {
        // The first group takes the canary nodes, the last one the rest.
        let selector = if i == 0 {
            format!("{{drover.test/ns: {nodes_ns}, role: canary}}")
        } else {
            format!("{{drover.test/ns: {nodes_ns}}}")
        };
        out.push_str(&format!(
            "---\napiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {{name: {g}}}\nspec:\n  selector:\n    matchLabels: {selector}\n"
        ));
    }
    out
}

/// A second namespace for the test, deleted with it.
struct ExtraNamespace<'a> {
    env: &'a TestEnv<'static>,
    name: String,
}

impl<'a> ExtraNamespace<'a> {
    fn new(env: &'a TestEnv<'static>, suffix: &str) -> Self {
        let name = format!("{}-{suffix}", env.ns);
        env.kubectl(&[
            "delete",
            "namespace",
            &name,
            "--ignore-not-found",
            "--wait=true",
        ]);
        env.kubectl(&["create", "namespace", &name]).expect_code(0);
        ExtraNamespace { env, name }
    }
}

impl Drop for ExtraNamespace<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let r = self
                .env
                .kubectl(&["-n", &self.name, "get", "daemonsets,pods", "-o", "wide"]);
            eprintln!("=== objects in {}\n{}{}", self.name, r.stdout, r.stderr);
        } else {
            self.env
                .kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
        }
    }
}

/// Every DaemonSet in `namespaces`: `(namespace, name)` → its fleet label.
fn daemonsets(env: &TestEnv, namespaces: &[&str]) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for ns in namespaces {
        let r = env.kubectl(&["-n", ns, "get", "daemonsets", "-o", "json"]);
        r.expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        for d in v["items"].as_array().unwrap() {
            out.insert(
                (
                    ns.to_string(),
                    d["metadata"]["name"].as_str().unwrap().to_string(),
                ),
                d["metadata"]["labels"]["drover.dev/fleet"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
        }
    }
    out
}

/// Pods of each daemon on each node, in `namespaces`, not counting pods being
/// deleted: `(node, daemon)` → how many.
fn pods_per_node(env: &TestEnv, namespaces: &[&str]) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for ns in namespaces {
        let r = env.kubectl(&["-n", ns, "get", "pods", "-o", "json"]);
        r.expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        for p in v["items"].as_array().unwrap() {
            if !p["metadata"]["deletionTimestamp"].is_null() {
                continue;
            }
            let node = p["spec"]["nodeName"].as_str().unwrap_or("<unscheduled>");
            let daemon = p["metadata"]["labels"]["drover.dev/daemon"]
                .as_str()
                .unwrap_or("");
            *out.entry((node.to_string(), daemon.to_string()))
                .or_default() += 1;
        }
    }
    out
}

/// Waits until every node of the test runs exactly one pod of each of `daemons`,
/// in `namespaces` together.
fn wait_one_pod_each(env: &TestEnv, namespaces: &[&str], nodes: usize, daemons: &[&str]) {
    env.wait_for(
        "exactly one pod of every daemon on every node",
        Duration::from_secs(120),
        || {
            let pods = pods_per_node(env, namespaces);
            pods.len() == nodes * daemons.len()
                && pods.values().all(|n| *n == 1)
                && pods.keys().all(|(_, d)| daemons.contains(&d.as_str()))
        },
    );
}

fn plan_json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

const AGENT: &str =
    "  hostNetwork: true\n  ports: [{name: metrics, containerPort: 9100, hostPort: 9100}]\n";

#[test]
fn a_namespace_move_ends_with_one_copy_of_every_daemonset_and_the_plan_shows_moves_first() {
    let env = TestEnv::new("moves-namespace");
    let to = ExtraNamespace::new(&env, "to");
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("rest", 2, &[]);
    let work = Repo::new();
    work.write(
        "drover.yaml",
        fleet(&env.ns, &env.ns, &env.ns, &["canary", "rest"]),
    );
    // A hostPort daemon: its new pods can only start once the old ones are gone.
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", AGENT),
    );
    work.write(
        "daemons/logs.yaml",
        daemon("logs", "registry.example/logs:v1", ""),
    );
    work.commit("fleet in the first namespace");
    let repo = work.path_str();
    drover(&env, &["apply", "--repo", &repo, "--yes"]).expect_code(0);
    let both = [env.ns.as_str(), to.name.as_str()];
    wait_one_pod_each(&env, &both, 3, &["agent", "logs"]);

    work.write(
        "drover.yaml",
        fleet(&env.ns, &to.name, &env.ns, &["canary", "rest"]),
    );
    work.commit("move the fleet");
    // The plan: four moves, none an in-place update, no prune.
    let r = drover(&env, &["plan", "--repo", &repo, "--format", "json"]);
    r.expect_code(2);
    let p = plan_json(&r);
    assert_eq!(p["summary"]["create"], 4, "{p:#}");
    assert_eq!(p["summary"]["replace"], 4, "{p:#}");
    assert_eq!(p["summary"]["update"], 0, "{p:#}");
    assert_eq!(p["summary"]["delete"], 0, "{p:#}");
    for stage in p["stages"].as_array().unwrap() {
        for a in stage["actions"].as_array().unwrap() {
            assert_eq!(a["action"], "create", "{a:#}");
            assert_eq!(a["replaces"]["namespace"], env.ns.as_str(), "{a:#}");
            assert_eq!(a["replaces"]["delete_first"], false, "{a:#}");
        }
    }
    let text = drover(&env, &["plan", "--repo", &repo]);
    text.expect_code(2);
    assert!(
        text.stdout.contains(&format!(
            "+/- agent-canary: moves from namespace {}",
            env.ns
        )),
        "{}",
        text.stdout
    );
    // Nothing was written by the plans.
    assert_eq!(daemonsets(&env, &[&to.name]).len(), 0);

    drover(&env, &["apply", "--repo", &repo, "--yes"]).expect_code(0);
    let after = daemonsets(&env, &both);
    let expected: BTreeMap<(String, String), String> =
        ["agent-canary", "agent-rest", "logs-canary", "logs-rest"]
            .iter()
            .map(|n| ((to.name.clone(), n.to_string()), env.ns.clone()))
            .collect();
    assert_eq!(
        after, expected,
        "exactly one copy of each, in the new namespace"
    );
    wait_one_pod_each(&env, &both, 3, &["agent", "logs"]);
    drover(&env, &["plan", "--repo", &repo]).expect_code(0);
}

/// drover with `args`, run to its end, for the test's namespace.
fn drover(env: &TestEnv, args: &[&str]) -> Run {
    env.drover(args).run()
}

/// `sync --once` against `remote`, with the state in `state`.
fn sync_once(env: &TestEnv, remote: &std::path::Path, state: &std::path::Path) -> Run {
    drover(
        env,
        &[
            "sync",
            "--repo",
            remote.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--once",
        ],
    )
}

#[test]
fn a_fleet_rename_is_replaced_by_sync_with_one_copy_of_every_daemonset() {
    let env = TestEnv::new("moves-rename");
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("rest", 2, &[]);
    let old = format!("{}-old", env.ns);
    let new = format!("{}-new", env.ns);
    let work = Repo::new();
    let remote = Remote::new();
    let state = tempfile::tempdir().unwrap();
    work.write(
        "drover.yaml",
        fleet(&old, &env.ns, &env.ns, &["canary", "rest"]),
    );
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", AGENT),
    );
    work.commit("fleet old");
    work.push(&remote);
    sync_once(&env, remote.path(), state.path()).expect_code(0);
    let ns = [env.ns.as_str()];
    wait_one_pod_each(&env, &ns, 3, &["agent"]);

    work.write(
        "drover.yaml",
        fleet(&new, &env.ns, &env.ns, &["canary", "rest"]),
    );
    work.commit("rename the fleet");
    work.push(&remote);
    let repo = work.path_str();
    // Without knowing the old name, the plan refuses to write over its objects.
    let r = drover(&env, &["plan", "--repo", &repo]);
    r.expect_code(1);
    assert_eq!(r.stdout, "", "no plan on a refusal");
    assert!(
        r.stderr.contains(&format!("belongs to fleet `{old}`"))
            && r.stderr.contains(&format!("--previous-fleet {old}")),
        "{}",
        r.stderr
    );
    // Knowing it: replacements, deleted first (same namespace and name).
    let r = drover(&env, &["plan", "--repo", &repo, "--previous-fleet", &old]);
    r.expect_code(2);
    assert!(
        r.stdout.contains(&format!(
            "-/+ agent-canary: replaces the live DaemonSet of fleet {old}: spec.selector cannot change in place"
        )),
        "{}",
        r.stdout
    );
    let r = drover(
        &env,
        &[
            "plan",
            "--repo",
            &repo,
            "--previous-fleet",
            &old,
            "--format",
            "json",
        ],
    );
    let p = plan_json(&r);
    assert_eq!(p["summary"]["replace"], 2, "{p:#}");
    assert_eq!(
        p["stages"][0]["actions"][0]["replaces"]["fleet"],
        old.as_str()
    );
    assert_eq!(
        p["stages"][0]["actions"][0]["replaces"]["delete_first"],
        true
    );
    assert_eq!(
        p["stages"][0]["actions"][0]["nodes"], 1,
        "blast radius: {p:#}"
    );

    // sync knows the old name from the commit it applied last.
    sync_once(&env, remote.path(), state.path()).expect_code(0);
    let after = daemonsets(&env, &ns);
    let expected: BTreeMap<(String, String), String> = ["agent-canary", "agent-rest"]
        .iter()
        .map(|n| ((env.ns.clone(), n.to_string()), new.clone()))
        .collect();
    assert_eq!(after, expected, "one copy of each, of the new fleet");
    wait_one_pod_each(&env, &ns, 3, &["agent"]);
    let rec: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(state.path().join("audit.jsonl"))
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rec["outcome"], "applied", "{rec:#}");
    assert_eq!(rec["fleet"], new.as_str());
    sync_once(&env, remote.path(), state.path()).expect_code(0);
    drover(&env, &["plan", "--repo", &repo]).expect_code(0);
}

#[test]
fn a_daemonset_name_reused_with_another_selector_is_replaced_not_stuck() {
    let env = TestEnv::new("moves-selector");
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("rest", 1, &[]);
    let work = Repo::new();
    // Daemon `a-b` in group `c`, then daemon `a` in group `b-c`: both `a-b-c`.
    work.write(
        "drover.yaml",
        fleet(&env.ns, &env.ns, &env.ns, &["c", "b-c"]),
    );
    work.write(
        "daemons/d.yaml",
        daemon("a-b", "registry.example/ab:v1", "  groups: [c]\n"),
    );
    work.commit("a-b in c");
    let repo = work.path_str();
    drover(&env, &["apply", "--repo", &repo, "--yes"]).expect_code(0);
    work.write(
        "daemons/d.yaml",
        daemon("a", "registry.example/a:v1", "  groups: [b-c]\n"),
    );
    work.commit("a in b-c");
    let r = drover(&env, &["plan", "--repo", &repo]);
    r.expect_code(2);
    assert!(r.stdout.contains("-/+ a-b-c"), "{}", r.stdout);
    drover(&env, &["apply", "--repo", &repo, "--yes"]).expect_code(0);
    let ds = env.get_json(&["daemonset", "a-b-c"]);
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"]["drover.dev/daemon"],
        "a"
    );
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"]["drover.dev/group"],
        "b-c"
    );
    drover(&env, &["plan", "--repo", &repo]).expect_code(0);
}

#[test]
fn a_daemonset_the_fleet_does_not_own_is_never_written_over() {
    let env = TestEnv::new("moves-foreign");
    env.nodes("rest", 1, &[]);
    // Someone else's DaemonSet with the name the fleet would create.
    let theirs = format!(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent-rest, namespace: {ns}, labels: {{team: other}}}}
spec:
  selector: {{matchLabels: {{app: theirs}}}}
  template:
    metadata: {{labels: {{app: theirs}}}}
    spec: {{containers: [{{name: c, image: registry.example/theirs:v1}}]}}
"#,
        ns = env.ns
    );
    env.kubectl_stdin(&["apply", "-f", "-"], &theirs)
        .expect_code(0);
    let before = env.get_json(&["daemonset", "agent-rest"]);
    let work = Repo::new();
    work.write(
        "drover.yaml",
        fleet(&env.ns, &env.ns, &env.ns, &["canary", "rest"]),
    );
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("agent");
    let repo = work.path_str();
    for args in [
        vec!["plan", "--repo", &repo],
        vec!["apply", "--repo", &repo, "--yes"],
    ] {
        let r = drover(&env, &args);
        r.expect_code(1);
        assert_eq!(r.stdout, "", "no plan on a refusal");
        assert!(
            r.stderr.contains(&format!(
                "DaemonSet {}/agent-rest exists and carries no drover.dev/fleet label",
                env.ns
            )) && r.stderr.contains("nothing was applied"),
            "{}",
            r.stderr
        );
    }
    // Its status moves on (the controller writes it), but nothing else was written.
    let after = env.get_json(&["daemonset", "agent-rest"]);
    assert_eq!(
        after["metadata"]["generation"], before["metadata"]["generation"],
        "their DaemonSet's spec was not written"
    );
    assert_eq!(after["metadata"]["labels"], before["metadata"]["labels"]);
    let r = env.kubectl(&[
        "-n",
        &env.ns,
        "get",
        "daemonset",
        "agent-rest",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let full: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let managers: Vec<&str> = full["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(!managers.contains(&"drover"), "{managers:?}");
    assert_eq!(
        daemonsets(&env, &[&env.ns]).len(),
        1,
        "nothing else was created"
    );
}
