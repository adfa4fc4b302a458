//! The health gate on the testbed: a stage whose nodes go NotReady while its pods
//! roll fails, and with `onFailure: rollback` it is rolled back.

use std::time::Duration;

use crate::harness::{FleetYaml, Repo, TestEnv, daemon};

#[test]
fn a_version_that_makes_its_nodes_not_ready_fails_its_stage_and_is_rolled_back() {
    let env = TestEnv::new("gate-nodes");
    env.nodes("canary", 3, &[("role", "canary")]);
    env.nodes("blue", 2, &[("role", "blue")]);
    env.nodes("green", 2, &[]);
    let repo = Repo::new();
    // A long canary bake, so the nodes break while the gate is watching.
    let fleet = FleetYaml::staged(&env.ns, "rollback", "60s").bake("canary", "40s");
    repo.write("drover.yaml", fleet.yaml());
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    repo.commit("agent v1");
    let fast = FleetYaml::staged(&env.ns, "rollback", "60s").bake("canary", "1s");
    repo.write("drover.yaml", fast.yaml());
    repo.commit("short bake for the first rollout");
    env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .run()
        .expect_code(0);

    repo.write("drover.yaml", fleet.yaml());
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", ""),
    );
    repo.commit("agent v2: breaks the node network");
    let watch = env.watch("daemonsets");
    let (run, first) = std::thread::scope(|scope| {
        let apply = env.drover(&["apply", "--repo", &repo.path_str(), "--yes"]);
        let apply = scope.spawn(move || apply.run());
        // The new version "breaks its nodes": once the canary runs v2 everywhere, its
        // nodes report Ready=False (what a bad CNI agent does), while the bake watches.
        watch.wait_until("canary on v2", Duration::from_secs(60), |ev| {
            ev.iter().any(|e| {
                let ds = &e.object;
                e.name() == "agent-canary"
                    && ds["spec"]["template"]["spec"]["containers"][0]["image"]
                        == "registry.example/agent:v2"
                    && ds["status"]["updatedNumberScheduled"] == 3
                    && ds["status"]["numberAvailable"] == 3
            })
        });
        let first = break_a_canary_node(&env);
        (apply.join().expect("the apply thread"), first)
    });
    run.expect_code(1)
        .expect_stdout_contains("outcome: rolled-back");
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("condition Ready is False"), "{all}");
    let imgs = env.images();
    assert_eq!(
        imgs["agent-canary"], "registry.example/agent:v1",
        "rolled back"
    );
    assert_eq!(
        imgs["agent-blue"], "registry.example/agent:v1",
        "never touched"
    );
    // Put the node back for whoever comes next.
    env.kubectl(&["label", &first, "drover.test/not-ready-"]);
}

/// Turns the first canary node Ready=False (the testbed's KWOK stage node-not-ready
/// keeps it so); returns its name.
fn break_a_canary_node(env: &TestEnv) -> String {
    let nodes = env.kubectl(&[
        "get",
        "nodes",
        "-l",
        &format!("drover.test/ns={},role=canary", env.ns),
        "-o",
        "name",
    ]);
    let first = nodes
        .stdout
        .lines()
        .next()
        .expect("a canary node")
        .to_string();
    env.kubectl(&["label", &first, "drover.test/not-ready=true"])
        .expect_code(0);
    first
}
