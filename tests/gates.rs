//! The health gate on the testbed: a stage whose nodes go NotReady while its pods
//! roll fails, and with `onFailure: rollback` it is rolled back.

mod cluster_support;

use std::time::Duration;

use cluster_support::{FleetRepo, TestEnv, daemon, images, staged_fleet};

#[test]
fn a_version_that_makes_its_nodes_not_ready_fails_its_stage_and_is_rolled_back() {
    let env = TestEnv::new("gate-nodes");
    env.nodes("canary", 3, &[("role", "canary")]);
    env.nodes("blue", 2, &[("role", "blue")]);
    env.nodes("green", 2, &[]);
    let repo = FleetRepo::new();
    // A long canary bake, so the nodes break while the gate is watching.
    let fleet = staged_fleet(&env.ns, "rollback", "60s").replace("bake: 3s", "bake: 40s");
    assert!(fleet.contains("bake: 40s"));
    repo.write("drover.yaml", &fleet);
    repo.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v1", ""),
    );
    repo.commit("agent v1");
    let fast = staged_fleet(&env.ns, "rollback", "60s").replace("bake: 3s", "bake: 1s");
    repo.write("drover.yaml", &fast);
    repo.commit("short bake for the first rollout");
    env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .expect_code(0);

    repo.write("drover.yaml", &fleet);
    repo.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v2", ""),
    );
    repo.commit("agent v2: breaks the node network");
    let child = env
        .drover_cmd(&["apply", "--repo", &repo.path_str(), "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The new version "breaks its nodes": once the canary runs v2 everywhere, its
    // nodes report Ready=False (what a bad CNI agent does), while the bake watches.
    env.wait_for("canary on v2", Duration::from_secs(60), || {
        let ds = env.get_json(&["daemonset", "agent-canary"]);
        ds["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/agent:v2"
            && ds["status"]["updatedNumberScheduled"] == 3
            && ds["status"]["numberAvailable"] == 3
    });
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
    // The testbed's KWOK stage node-not-ready turns it Ready=False and keeps it so.
    env.kubectl(&["label", &first, "drover.test/not-ready=true"])
        .expect_code(0);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("outcome: rolled-back"),
        "{stdout}\n{stderr}"
    );
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("condition Ready is False"), "{all}");
    let imgs = images(&env);
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
