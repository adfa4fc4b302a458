//! The API server stopped in the middle of a staged rollout: `drover sync` keeps its
//! cursor, backs off, and finishes the same commit afterwards without skipping a
//! stage; and an outage during a bake is never counted as baked. Each test runs on a
//! testbed instance of its own, since it stops the API server.

use std::time::Duration;

use crate::harness::{FleetYaml, Remote, Repo, TestEnv, Testbed, daemon, records, wait_for};

#[test]
fn api_server_stopped_for_20s_mid_rollout_then_the_rollout_completes_without_skipping_a_stage() {
    // Its own control plane (it stops the API server), while no other testbed test
    // runs, as when it was a test binary of its own.
    let tb = Testbed::own(&format!("outage-{}", std::process::id()));
    let env = TestEnv::alone_on(&tb, "outage");
    let ns = env.ns.as_str();
    env.nodes("canary", 3, &[("role", "canary")]);
    env.nodes("blue", 3, &[("role", "blue")]);
    env.nodes("green", 3, &[]);

    let work = Repo::new();
    let remote = Remote::new();
    // After an outage the control plane itself is slow to come back: client-go's
    // reflectors back off while the API server is gone (to about 30 s, jittered up
    // to 60 s), so the DaemonSet controller, the scheduler and KWOK each resume
    // their watches up to a minute late, one after another. Measured on the
    // testbed: the blue stage's pods were created 40 s after the restart and not
    // bound 30 s later. The blue stage gets a timeout that covers that recovery;
    // 90 s halted the rollout in CI, as drover should when a stage overruns.
    let fleet = FleetYaml::staged(ns, "halt", "120s").timeout("blue", "420s");
    work.write("drover.yaml", fleet.yaml());
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("v1");
    work.push(&remote);
    let state = tempfile::tempdir().unwrap();
    let sync = |extra: &[&str]| {
        env.drover(&[
            "sync",
            "--repo",
            &remote.path_str(),
            "--state-dir",
            state.path().to_str().unwrap(),
        ])
        .args(extra)
    };
    sync(&["--once"]).run().expect_code(0);

    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", ""),
    );
    let sha = work.commit("v2");
    work.push(&remote);
    let mut reconciler = sync(&["--interval", "2s", "-v"]).spawn_lines();
    reconciler.wait_for_line(&["stage started stage=\"blue\""], Duration::from_secs(120));
    tb.script(&["stop-apiserver"]);
    // The outage itself: the API server is gone for 20 s (what is under test is
    // drover's behaviour across it, not a synchronisation).
    std::thread::sleep(Duration::from_secs(20));
    tb.script(&["start-apiserver"]);

    wait_for(
        "the record of the commit after the outage",
        Duration::from_secs(480),
        || records(state.path()).len() >= 2,
    );
    reconciler.kill();
    let recs = records(state.path());
    let last = &recs[1];
    assert_eq!(last["commit"]["sha"], sha.as_str());
    assert_eq!(last["outcome"], "applied", "{last:#}");
    let stages: Vec<&str> = last["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["canary", "blue", "green"], "{last:#}");
    assert!(
        last["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["result"] == "succeeded")
    );
    let r = env.kubectl(&["-n", ns, "get", "ds", "-o", "jsonpath={range .items[*]}{.spec.template.spec.containers[0].image} {.status.updatedNumberScheduled}/{.status.desiredNumberScheduled}{\"\\n\"}{end}"]);
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("registry.example/agent:v2 3/3"))
            .count(),
        3,
        "{}",
        r.stdout
    );
}

/// When the API server took the (non dry-run) writes of one DaemonSet.
fn writes_of(tb: &Testbed, name: &str) -> Vec<jiff::Timestamp> {
    tb.audit()
        .all()
        .into_iter()
        .filter(|e| {
            matches!(e.verb.as_str(), "patch" | "create" | "update")
                && e.resource == "daemonsets"
                && e.name == name
                && !e.is_dry_run()
        })
        .map(|e| e.received)
        .collect()
}

#[test]
fn api_server_gone_longer_than_the_bake_is_never_counted_as_baked() {
    // Issue 15's hand-verified failure: a 30 s canary bake, the API server stopped a
    // few seconds into it for 40 s. The old gate recorded `succeeded` while nobody
    // watched. Now the bake clock stops while unobserved, so blue may start only once
    // the canary has been seen healthy for 30 s after the API server came back.
    let tb = Testbed::own(&format!("bakeout-{}", std::process::id()));
    let env = TestEnv::alone_on(&tb, "bake-outage");
    let ns = env.ns.as_str();
    env.nodes("canary", 2, &[("role", "canary")]);
    env.nodes("blue", 2, &[("role", "blue")]);
    env.nodes("green", 2, &[]);
    let work = Repo::new();
    let remote = Remote::new();
    let fleet = FleetYaml::staged(ns, "halt", "120s")
        .bake("canary", "30s")
        .timeout("blue", "420s");
    work.write("drover.yaml", fleet.yaml());
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("v1");
    work.push(&remote);
    let state = tempfile::tempdir().unwrap();
    let mut sync = env
        .drover(&[
            "sync",
            "--once",
            "-v",
            "--repo",
            &remote.path_str(),
            "--state-dir",
            state.path().to_str().unwrap(),
        ])
        .spawn_lines();
    sync.wait_for_line(&["baking", "stage=\"canary\""], Duration::from_secs(120));
    // The scenario, not a synchronisation: the outage starts a few seconds into the
    // bake and lasts 40 s, longer than the whole bake.
    std::thread::sleep(Duration::from_secs(3));
    tb.script(&["stop-apiserver"]);
    std::thread::sleep(Duration::from_secs(40));
    let stopped = tb.audit().mark();
    tb.script(&["start-apiserver"]);
    let status = sync.wait_exit(Duration::from_secs(600));
    let log = sync.stderr();
    // When the API server came back, by its own clock: the first request it
    // answered after the restart (no client, drover included, saw it earlier). The
    // moment the start script returned is later by however long its readiness
    // polling took on a loaded machine.
    let back = tb
        .audit()
        .since(stopped)
        .first()
        .map(|e| e.received)
        .expect("the restarted API server answered requests");

    let recs = records(state.path());
    let rec = recs.last().unwrap_or_else(|| panic!("no record:\n{log}"));
    let canary = &rec["stages"][0];
    assert_eq!(canary["name"], "canary", "{rec:#}");
    let bake = canary["bake_seconds"].as_f64().unwrap();
    let unobserved = canary["unobserved_seconds"].as_f64().unwrap_or(0.0);
    if canary["result"] == "succeeded" {
        assert!(status.success(), "{log}");
        // Observed healthy for the whole bake, and the outage is on the record.
        assert!(bake >= 30.0, "{rec:#}");
        assert!(
            unobserved >= 35.0,
            "the 40 s outage is unobserved time: {rec:#}"
        );
        // Blue was first written at least a full bake after the API server returned.
        let blue = writes_of(&tb, "agent-blue");
        let first = *blue.first().expect("blue written");
        let waited = first.duration_since(back).as_secs_f64();
        assert!(
            waited >= 29.0,
            "blue written {waited:.1} s after the API server came back:\n{rec:#}"
        );
    } else {
        // Or the stage failed, and nothing after it started. Two ways are right:
        // unobserved for longer than the stage allows, or what the gate saw once it
        // could see again - after an outage this long the node controller marks the
        // nodes, whose heartbeats it did not get, NotReady and their pods not
        // ready, which a gate must not bake through. `--once` exits non-zero.
        assert!(!status.success(), "{log}");
        assert_eq!(rec["outcome"], "halted", "{rec:#}");
        assert!(writes_of(&tb, "agent-blue").is_empty(), "{rec:#}");
        let reason = rec["reason"].as_str().unwrap_or_default().to_lowercase();
        assert!(
            reason.contains("unobserved")
                || reason.contains("ready")
                || reason.contains("condition"),
            "{rec:#}"
        );
    }
}
