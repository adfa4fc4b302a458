//! `drover apply` on the real local control plane: staged order, halt, rollback,
//! prune, conflicts and idempotence.

mod cluster_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::{FleetRepo, TestEnv, daemon, images, staged_fleet};

/// 4 canary, 4 blue, 4 green nodes for this test.
fn three_groups(env: &TestEnv) {
    env.nodes("canary", 4, &[("role", "canary")]);
    env.nodes("blue", 4, &[("role", "blue")]);
    env.nodes("green", 4, &[]);
}

/// A repository with the staged fleet and daemon `agent` at v1, committed.
fn agent_v1(env: &TestEnv, on_failure: &str, canary_timeout: &str) -> FleetRepo {
    let repo = FleetRepo::new();
    repo.write(
        "drover.yaml",
        &staged_fleet(&env.ns, on_failure, canary_timeout),
    );
    repo.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v1", ""),
    );
    repo.commit("agent v1");
    repo
}

fn apply(env: &TestEnv, repo: &FleetRepo) -> cluster_support::Run {
    env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
}

#[derive(Default, Clone, Copy, Debug)]
struct Seen {
    updated: Option<Instant>,
    complete: Option<Instant>,
}

/// Polls the namespace's DaemonSets and records, per DaemonSet, when its spec change
/// (a generation above `base`) and its completed rollout were first seen.
fn observe(
    env: &TestEnv,
    base: BTreeMap<String, i64>,
    stop: Arc<Mutex<bool>>,
) -> std::thread::JoinHandle<BTreeMap<String, Seen>> {
    let ns = env.ns.clone();
    let tb = env.tb;
    std::thread::spawn(move || {
        let env = TestEnv { ns, tb };
        let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
        while !*stop.lock().unwrap() {
            let list = env.get_json(&["daemonsets"]);
            let now = Instant::now();
            for d in list["items"].as_array().unwrap() {
                let name = d["metadata"]["name"].as_str().unwrap().to_string();
                let generation = d["metadata"]["generation"].as_i64().unwrap_or(0);
                let s = &d["status"];
                let e = seen.entry(name.clone()).or_default();
                if generation > base.get(&name).copied().unwrap_or(0) {
                    e.updated.get_or_insert(now);
                    let desired = s["desiredNumberScheduled"].as_i64().unwrap_or(-1);
                    let complete = s["observedGeneration"].as_i64() == Some(generation)
                        && s["updatedNumberScheduled"].as_i64().unwrap_or(0) == desired
                        && s["numberAvailable"].as_i64().unwrap_or(0) == desired
                        && s["numberUnavailable"].as_i64().unwrap_or(0) == 0;
                    if complete {
                        e.complete.get_or_insert(now);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        std::mem::forget(env); // the test's own TestEnv cleans up
        seen
    })
}

fn generations(env: &TestEnv) -> BTreeMap<String, i64> {
    env.get_json(&["daemonsets"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_string(),
                d["metadata"]["generation"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn image_change_rolls_canary_then_later_stages_strictly_in_order() {
    let env = TestEnv::new("staged-order");
    three_groups(&env);
    let repo = agent_v1(&env, "halt", "90s");
    apply(&env, &repo).expect_code(0);
    assert_eq!(images(&env).len(), 3);

    repo.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v2", ""),
    );
    repo.commit("agent v2");
    let stop = Arc::new(Mutex::new(false));
    let watcher = observe(&env, generations(&env), stop.clone());
    let run = apply(&env, &repo);
    *stop.lock().unwrap() = true;
    let seen = watcher.join().unwrap();
    run.expect_code(0);
    assert!(
        images(&env)
            .values()
            .all(|i| i == "registry.example/agent:v2"),
        "{:?}",
        images(&env)
    );

    let get = |n: &str| {
        seen.get(n)
            .copied()
            .unwrap_or_else(|| panic!("{n} never seen: {seen:?}"))
    };
    let (canary, blue, green) = (get("agent-canary"), get("agent-blue"), get("agent-green"));
    let slack = Duration::from_millis(1000);
    // Stage k+1 is updated only after stage k completed and baked (canary bakes 3s, blue 2s).
    let canary_done = canary.complete.expect("canary completed");
    let blue_updated = blue.updated.expect("blue updated");
    assert!(
        blue_updated + slack >= canary_done + Duration::from_secs(3),
        "blue updated {:?} after canary completed, before canary's 3s bake ended",
        blue_updated.saturating_duration_since(canary_done)
    );
    let blue_done = blue.complete.expect("blue completed");
    let green_updated = green.updated.expect("green updated");
    assert!(
        green_updated + slack >= blue_done + Duration::from_secs(2),
        "green updated {:?} after blue completed, before blue's 2s bake ended",
        green_updated.saturating_duration_since(blue_done)
    );
    assert!(run.stdout.contains("outcome: applied"), "{}", run.stdout);
}

fn failing_canary(env: &TestEnv, on_failure: &str) -> FleetRepo {
    three_groups(env);
    let repo = agent_v1(env, on_failure, "15s");
    apply(env, &repo).expect_code(0);
    // v2 pods never become ready (the testbed's fail-ready stage).
    repo.write(
        "daemons/agent.yaml",
        &daemon(
            "agent",
            "registry.example/agent:v2",
            "  podTemplate:\n    metadata:\n      labels: {drover.test/fail-ready: \"true\"}\n",
        ),
    );
    repo.commit("agent v2, broken");
    repo
}

#[test]
fn failing_canary_halts_and_later_stages_keep_the_old_image() {
    let env = TestEnv::new("halt");
    let repo = failing_canary(&env, "halt");
    let run = apply(&env, &repo);
    run.expect_code(1);
    assert!(run.stdout.contains("outcome: halted"), "{}", run.stdout);
    assert!(
        run.stdout.contains("rollout did not complete"),
        "{}",
        run.stdout
    );
    let imgs = images(&env);
    assert_eq!(imgs["agent-canary"], "registry.example/agent:v2");
    assert_eq!(imgs["agent-blue"], "registry.example/agent:v1");
    assert_eq!(imgs["agent-green"], "registry.example/agent:v1");
    let blue = env.get_json(&["daemonset", "agent-blue"]);
    assert_eq!(
        blue["metadata"]["generation"].as_i64(),
        Some(1),
        "blue must not be touched"
    );
}

#[test]
fn failing_canary_with_rollback_returns_to_the_previous_image_and_is_ready() {
    let env = TestEnv::new("rollback");
    let repo = failing_canary(&env, "rollback");
    let run = apply(&env, &repo);
    run.expect_code(1);
    assert!(
        run.stdout.contains("outcome: rolled-back"),
        "{}",
        run.stdout
    );
    let imgs = images(&env);
    assert_eq!(imgs["agent-canary"], "registry.example/agent:v1");
    assert_eq!(imgs["agent-blue"], "registry.example/agent:v1");
    env.wait_for("canary ready again", Duration::from_secs(60), || {
        let d = env.get_json(&["daemonset", "agent-canary"]);
        let s = &d["status"];
        s["numberReady"].as_i64() == Some(4) && s["updatedNumberScheduled"].as_i64() == Some(4)
    });
}

#[test]
fn removed_daemon_is_pruned_unlabelled_objects_survive_and_empty_render_is_refused() {
    let env = TestEnv::new("prune");
    three_groups(&env);
    let repo = FleetRepo::new();
    repo.write("drover.yaml", &staged_fleet(&env.ns, "halt", "90s"));
    repo.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v1", ""),
    );
    repo.write(
        "daemons/logs.yaml",
        &daemon("logs", "registry.example/logs:v1", ""),
    );
    repo.write(
        "daemons/metrics.yaml",
        &daemon("metrics", "registry.example/metrics:v1", ""),
    );
    repo.commit("three daemons");
    apply(&env, &repo).expect_code(0);
    // A DaemonSet drover does not own, in the same namespace.
    env.kubectl_stdin(
        &["-n", &env.ns, "apply", "-f", "-"],
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: foreign}\nspec:\n  selector: {matchLabels: {app: foreign}}\n  template:\n    metadata: {labels: {app: foreign}}\n    spec:\n      nodeSelector: {drover.test/none: \"x\"}\n      containers: [{name: c, image: registry.example/foreign:v1}]\n",
    )
    .expect_code(0);

    repo.remove("daemons/logs.yaml");
    repo.commit("drop logs");
    let run = apply(&env, &repo);
    run.expect_code(0);
    let names: Vec<String> = images(&env).into_keys().collect();
    assert!(
        !names.iter().any(|n| n.starts_with("logs-")),
        "logs not pruned: {names:?}"
    );
    assert!(
        names.contains(&"foreign".to_string()),
        "foreign deleted: {names:?}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("agent-") || n.starts_with("metrics-"))
            .count(),
        6
    );

    repo.remove("daemons/agent.yaml");
    repo.remove("daemons/metrics.yaml");
    repo.commit("delete everything");
    let before = images(&env);
    let run = apply(&env, &repo);
    run.expect_code(1);
    assert!(
        run.stderr.contains("refusing an empty render"),
        "{}",
        run.stderr
    );
    assert_eq!(images(&env), before, "nothing may be deleted");
}

#[test]
fn field_owned_by_another_manager_is_a_conflict_and_plan_is_empty_after_apply() {
    let env = TestEnv::new("conflict");
    three_groups(&env);
    let repo = agent_v1(&env, "halt", "90s");
    apply(&env, &repo).expect_code(0);
    // Someone edits the image by hand (an Update by another field manager).
    env.kubectl(&[
        "-n",
        &env.ns,
        "set",
        "image",
        "daemonset/agent-green",
        "agent=registry.example/agent:hotfix",
        "--field-manager=kubectl-edit",
    ])
    .expect_code(0);
    repo.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v2", ""),
    );
    repo.commit("v2");
    let run = apply(&env, &repo);
    run.expect_code(1);
    assert!(
        run.stderr.contains("kubectl-edit"),
        "manager not named: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("image"),
        "field not named: {}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was applied"), "{}", run.stderr);
    assert_eq!(
        images(&env)["agent-canary"],
        "registry.example/agent:v1",
        "nothing may be applied"
    );

    // The fleet takes the field over; afterwards the plan is empty.
    let fleet = staged_fleet(&env.ns, "halt", "90s")
        .replace("onFailure: halt", "onFailure: halt\n  forceConflicts: true");
    repo.write("drover.yaml", &fleet);
    repo.commit("force conflicts");
    apply(&env, &repo).expect_code(0);
    assert!(
        images(&env)
            .values()
            .all(|i| i == "registry.example/agent:v2")
    );
    let plan = env.drover(&["plan", "--repo", &repo.path_str()]);
    plan.expect_code(0);
    assert!(plan.stdout.contains("no changes"), "{}", plan.stdout);
}

#[test]
fn applying_the_same_commit_twice_writes_nothing_the_second_time() {
    let env = TestEnv::new("idempotent");
    three_groups(&env);
    let repo = agent_v1(&env, "halt", "90s");
    apply(&env, &repo).expect_code(0);
    let versions = |env: &TestEnv| -> BTreeMap<String, String> {
        env.get_json(&["daemonsets"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["metadata"]["name"].as_str().unwrap().to_string(),
                    d["metadata"]["managedFields"].to_string(),
                )
            })
            .collect()
    };
    let before = versions(&env);
    let run = apply(&env, &repo);
    run.expect_code(0);
    assert!(run.stdout.contains("no changes to apply"), "{}", run.stdout);
    assert_eq!(versions(&env), before, "the second apply changed an object");
}
