//! `drover apply` on the real local control plane: staged order, halt, rollback,
//! prune, conflicts and idempotence.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::harness::{AuditEvent, FleetYaml, NEVER_READY, Repo, Run, TestEnv, WatchEvent, daemon};

/// 4 canary, 4 blue, 4 green nodes for this test.
fn three_groups(env: &TestEnv) {
    env.nodes("canary", 4, &[("role", "canary")]);
    env.nodes("blue", 4, &[("role", "blue")]);
    env.nodes("green", 4, &[]);
}

/// A repository with the staged fleet and daemon `agent` at v1, committed.
fn agent_v1(env: &TestEnv, on_failure: &str, canary_timeout: &str) -> Repo {
    let repo = Repo::new();
    repo.write(
        "drover.yaml",
        FleetYaml::staged(&env.ns, on_failure, canary_timeout).yaml(),
    );
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    repo.commit("agent v1");
    repo
}

fn apply(env: &TestEnv, repo: &Repo) -> Run {
    env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .run()
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

/// Whether a DaemonSet's status says its rollout of the current generation is done.
fn rolled_out(d: &serde_json::Value) -> bool {
    let s = &d["status"];
    let desired = s["desiredNumberScheduled"].as_i64().unwrap_or(-1);
    s["observedGeneration"].as_i64() == d["metadata"]["generation"].as_i64()
        && s["updatedNumberScheduled"].as_i64().unwrap_or(0) == desired
        && s["numberAvailable"].as_i64().unwrap_or(0) == desired
        && s["numberUnavailable"].as_i64().unwrap_or(0) == 0
}

/// When the API server took drover's first (non dry-run) write of `name`.
fn drover_wrote(audit: &[AuditEvent], ns: &str, name: &str) -> Timestamp {
    // The namespace too: tests in parallel write DaemonSets of the same names.
    audit
        .iter()
        .find(|e| {
            e.by_drover()
                && e.is_write()
                && e.resource == "daemonsets"
                && e.namespace == ns
                && e.name == name
        })
        .unwrap_or_else(|| panic!("no write of {name} by drover in the audit log"))
        .received
}

/// When `name`'s rollout of a generation above `base` completed: the watch gives the
/// first event whose status says so and the resourceVersion it was made from; the
/// audit log gives the status update made from that version, and so the time the
/// API server stored it.
fn rolled_out_at(
    events: &[WatchEvent],
    audit: &[AuditEvent],
    ns: &str,
    name: &str,
    base: i64,
) -> Timestamp {
    let mine: Vec<&WatchEvent> = events.iter().filter(|e| e.name() == name).collect();
    let done = mine
        .iter()
        .position(|e| {
            e.object["metadata"]["generation"].as_i64().unwrap_or(0) > base && rolled_out(&e.object)
        })
        .unwrap_or_else(|| panic!("the watch never saw {name} rolled out"));
    assert!(done > 0, "{name} was rolled out before the watch began");
    let from = mine[done - 1].resource_version();
    audit
        .iter()
        .find(|e| {
            e.name == name
                && e.namespace == ns
                && e.subresource == "status"
                && e.code == 200
                && e.resource_version == from
        })
        .unwrap_or_else(|| panic!("no status update of {name} from resourceVersion {from}"))
        .completed
}

#[test]
fn image_change_rolls_canary_then_later_stages_strictly_in_order() {
    let env = TestEnv::new("staged-order");
    three_groups(&env);
    let repo = agent_v1(&env, "halt", "90s");
    apply(&env, &repo).expect_code(0);
    assert_eq!(env.images().len(), 3);

    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", ""),
    );
    repo.commit("agent v2");
    let base = generations(&env);
    let watch = env.watch("daemonsets");
    watch.wait_until(
        "the three DaemonSets listed",
        Duration::from_secs(30),
        |ev| ev.len() >= 3,
    );
    let audit = env.tb.audit();
    let mark = audit.mark();
    let run = apply(&env, &repo);
    run.expect_code(0);
    assert!(
        env.images()
            .values()
            .all(|i| i == "registry.example/agent:v2"),
        "{:?}",
        env.images()
    );
    // The watch has seen every rollout complete before apply returned; the audit log
    // has every request of the run.
    let events = watch.wait_until("green rolled out", Duration::from_secs(30), |ev| {
        ev.iter().any(|e| {
            e.name() == "agent-green"
                && e.object["metadata"]["generation"].as_i64() > base.get("agent-green").copied()
                && rolled_out(&e.object)
        })
    });
    let log = audit.since(mark);
    let updated = |n: &str| drover_wrote(&log, &env.ns, n);
    let done = |n: &str| rolled_out_at(&events, &log, &env.ns, n, base[n]);
    let (canary_updated, blue_updated, green_updated) = (
        updated("agent-canary"),
        updated("agent-blue"),
        updated("agent-green"),
    );
    assert!(
        canary_updated < blue_updated && blue_updated < green_updated,
        "drover's writes are out of stage order: canary {canary_updated}, blue {blue_updated}, green {green_updated}"
    );
    let slack = SignedDuration::from_millis(1000);
    // Stage k+1 is updated only after stage k completed and baked (canary bakes 3s, blue 2s).
    let canary_done = done("agent-canary");
    let blue_done = done("agent-blue");
    eprintln!(
        "by the API server's clock: blue updated {:?} after canary completed, green {:?} after blue",
        blue_updated.duration_since(canary_done),
        green_updated.duration_since(blue_done)
    );
    assert!(
        blue_updated + slack >= canary_done + SignedDuration::from_secs(3),
        "blue updated {:?} after canary completed, before canary's 3s bake ended",
        blue_updated.duration_since(canary_done)
    );
    assert!(
        green_updated + slack >= blue_done + SignedDuration::from_secs(2),
        "green updated {:?} after blue completed, before blue's 2s bake ended",
        green_updated.duration_since(blue_done)
    );
    assert!(run.stdout.contains("outcome: applied"), "{}", run.stdout);
}

fn failing_canary(env: &TestEnv, on_failure: &str) -> Repo {
    three_groups(env);
    let repo = agent_v1(env, on_failure, "15s");
    apply(env, &repo).expect_code(0);
    // v2 pods never become ready (the testbed's fail-ready stage).
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", NEVER_READY),
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
    let imgs = env.images();
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
    let imgs = env.images();
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
    let repo = Repo::new();
    repo.write(
        "drover.yaml",
        FleetYaml::staged(&env.ns, "halt", "90s").yaml(),
    );
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    repo.write(
        "daemons/logs.yaml",
        daemon("logs", "registry.example/logs:v1", ""),
    );
    repo.write(
        "daemons/metrics.yaml",
        daemon("metrics", "registry.example/metrics:v1", ""),
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
    let names: Vec<String> = env.images().into_keys().collect();
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
    let before = env.images();
    let run = apply(&env, &repo);
    run.expect_code(1);
    assert!(
        run.stderr.contains("refusing an empty render"),
        "{}",
        run.stderr
    );
    assert_eq!(env.images(), before, "nothing may be deleted");
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
        daemon("agent", "registry.example/agent:v2", ""),
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
        env.images()["agent-canary"],
        "registry.example/agent:v1",
        "nothing may be applied"
    );

    // The fleet takes the field over; afterwards the plan is empty.
    let fleet = FleetYaml::staged(&env.ns, "halt", "90s").force_conflicts();
    repo.write("drover.yaml", fleet.yaml());
    repo.commit("force conflicts");
    apply(&env, &repo).expect_code(0);
    assert!(
        env.images()
            .values()
            .all(|i| i == "registry.example/agent:v2")
    );
    let plan = env.drover(&["plan", "--repo", &repo.path_str()]).run();
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
