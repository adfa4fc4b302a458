//! Faults during `drover apply` on the real local control plane: an API server that
//! answers 429/5xx, watches that break mid-rollout, nodes that come and go in the
//! middle of a stage, and a stage whose nodes are all NotReady.
//!
//! Conflicts with another field manager (409 on apply) are covered in
//! `apply.rs`: `field_owned_by_another_manager_is_a_conflict_and_plan_is_empty_after_apply`.
//!
//! 429/5xx and broken watches come from [`ApiProxy`], a proxy between drover and
//! the testbed that can answer instead of the API server or cut connections.

use std::time::{Duration, Instant};

use crate::harness::{ApiProxy, Faults, FleetYaml, Repo, Run, TestEnv, daemon, drover};

/// One stage, one catch-all group over this test's nodes.
fn one_stage_fleet(ns: &str, timeout: &str, max_unavailable: &str, min_ready: u32) -> String {
    FleetYaml::one_group(ns, "all-nodes", Some(timeout))
        .rollout(&format!(
            "{{maxUnavailable: {max_unavailable}, maxSurge: 0, minReadySeconds: {min_ready}}}"
        ))
        .yaml()
}

/// A repository with that fleet and daemon `agent` at v1, committed.
fn agent_v1(fleet: String) -> Repo {
    let repo = Repo::new();
    repo.write("drover.yaml", fleet);
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    repo.commit("agent v1");
    repo
}

fn apply_via(proxy: &ApiProxy, repo: &Repo, limit: Duration) -> Run {
    drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .kubeconfig(&proxy.kubeconfig)
        .deadline(limit)
        .run()
}

#[test]
fn apply_retries_429_and_503_and_completes() {
    let env = TestEnv::new("fault-429");
    env.nodes("n", 2, &[]);
    let repo = agent_v1(one_stage_fleet(&env.ns, "90s", "1", 0));
    let proxy = env.tb.api_proxy();
    // The first six requests (the LISTs, the dry run, the apply…) are refused, then
    // every third one is, for the whole run.
    proxy.set_faults(Faults {
        fail_first: 6,
        statuses: vec![429, 503, 504],
        every: 3,
        ..Default::default()
    });
    let run = apply_via(&proxy, &repo, Duration::from_secs(120));
    run.expect_code(0);
    let reqs = proxy.requests();
    let injected = reqs.iter().filter(|r| r.injected.is_some()).count();
    assert!(injected >= 6, "{reqs:#?}");
    assert!(
        reqs.iter()
            .any(|r| r.method == "PATCH" && r.injected.is_some()),
        "no apply was refused, the test proves nothing: {reqs:#?}"
    );
    assert_eq!(env.images()["agent-all-nodes"], "registry.example/agent:v1");
    assert_eq!(env.counts("agent-all-nodes"), (2, 2, 2));
}

#[test]
fn apply_fails_clearly_on_a_persistent_500_without_hanging() {
    let env = TestEnv::new("fault-500");
    let repo = agent_v1(one_stage_fleet(&env.ns, "30s", "1", 0));
    let proxy = env.tb.api_proxy();
    // Every write fails with 500: not retryable as such (the server says the
    // request itself failed), so drover must stop and say what failed.
    proxy.set_faults(Faults {
        fail_first: usize::MAX,
        statuses: vec![500],
        only_methods: vec!["PATCH"],
        ..Default::default()
    });
    let run = apply_via(&proxy, &repo, Duration::from_secs(60));
    run.expect_code(1);
    assert!(
        run.stderr.contains("agent-all-nodes") && run.stderr.contains("500"),
        "{}",
        run.report()
    );
    let live = env.get_json(&["daemonsets"]);
    assert_eq!(live["items"].as_array().unwrap().len(), 0);
}

#[test]
fn rollout_completes_when_watches_break_midway() {
    let env = TestEnv::new("fault-watch");
    env.nodes("n", 4, &[]);
    let repo = agent_v1(one_stage_fleet(&env.ns, "120s", "1", 0));
    env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .run()
        .expect_code(0);
    // v2 with a slow readiness: one node at a time, ~2 s each, so the rollout takes
    // longer than the watch survives.
    repo.write(
        "daemons/agent.yaml",
        daemon(
            "agent",
            "registry.example/agent:v2",
            "  podTemplate:\n    metadata:\n      annotations: {pod-ready.stage.kwok.x-k8s.io/delay: \"2s\"}\n",
        ),
    );
    repo.commit("agent v2");
    let proxy = env.tb.api_proxy();
    proxy.set_faults(Faults {
        break_watches_after: Some(Duration::from_millis(1500)),
        ..Default::default()
    });
    let run = drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .kubeconfig(&proxy.kubeconfig)
        .run();
    run.expect_code(0);
    let watches = proxy
        .requests()
        .into_iter()
        .filter(|r| r.is_watch())
        .count();
    assert!(
        watches >= 2,
        "the watch was never re-established: {watches}"
    );
    assert_eq!(env.counts("agent-all-nodes"), (4, 4, 4));
    assert_eq!(env.images()["agent-all-nodes"], "registry.example/agent:v2");
}

#[test]
fn node_deleted_and_node_added_mid_stage_still_completes_with_the_right_count() {
    let env = TestEnv::new("fault-node-churn");
    env.nodes("n", 4, &[]);
    let repo = agent_v1(one_stage_fleet(&env.ns, "150s", "1", 3));
    env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .run()
        .expect_code(0);
    assert_eq!(env.counts("agent-all-nodes"), (4, 4, 4));
    repo.write(
        "daemons/agent.yaml",
        daemon(
            "agent",
            "registry.example/agent:v2",
            "  podTemplate:\n    metadata:\n      annotations: {pod-ready.stage.kwok.x-k8s.io/delay: \"3s\"}\n",
        ),
    );
    repo.commit("agent v2");
    let watch = env.watch("daemonsets");
    let (run, churned, finished) = std::thread::scope(|scope| {
        let churn = scope.spawn(|| {
            // As soon as the stage is rolling (the controller has moved a first pod
            // to v2, and three are still to go), one node goes away and another joins.
            watch.wait_until("the v2 rollout under way", Duration::from_secs(60), |ev| {
                ev.iter().any(|e| {
                    let s = &e.object["status"];
                    e.object["metadata"]["generation"].as_i64() == Some(2)
                        && s["observedGeneration"].as_i64() == Some(2)
                        && s["updatedNumberScheduled"].as_i64().unwrap_or(0) >= 1
                })
            });
            env.kubectl(&["delete", "node", &format!("{}-n-3", env.ns), "--wait=false"])
                .expect_code(0);
            env.nodes("late", 1, &[]);
            Instant::now()
        });
        let run = env
            .drover(&["apply", "--repo", &repo.path_str(), "--yes"])
            .deadline(Duration::from_secs(150))
            .run();
        let finished = Instant::now();
        (run, churn.join().expect("the churn thread"), finished)
    });
    run.expect_code(0);
    assert!(
        churned < finished,
        "the rollout ended before the nodes changed; the test proves nothing:\n{}",
        run.stdout
    );
    // 4 - 1 + 1 nodes, every one running v2.
    let (desired, updated, available) = env.counts("agent-all-nodes");
    assert_eq!((desired, updated, available), (4, 4, 4), "{}", run.stdout);
    assert_eq!(env.images()["agent-all-nodes"], "registry.example/agent:v2");
}

#[test]
fn stage_whose_nodes_are_all_not_ready_fails_by_timeout_and_says_so() {
    let env = TestEnv::new("fault-notready");
    // Nodes without KWOK's `kwok.x-k8s.io/node: fake` annotation: no kubelet plays
    // them, so they never become Ready and no pod on them ever runs.
    for i in 0..2 {
        env.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: Node\nmetadata:\n  name: {ns}-dead-{i}\n  labels: {{drover.test/ns: {ns}, kubernetes.io/os: linux}}\n",
                ns = env.ns
            ),
        )
        .expect_code(0);
    }
    let repo = agent_v1(one_stage_fleet(&env.ns, "10s", "1", 0));
    // The stage times out after 10 s; 30 s more and it hung.
    let run = env
        .drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .deadline(Duration::from_secs(10 + 30))
        .run();
    run.expect_code(1);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("rollout did not complete within 10s"), "{all}");
    assert!(all.contains("NotReady"), "{all}");
}
