//! The operator's controls on the testbed: `drover pause` during stage 1 holds
//! stage 2 unwritten until `drover resume` (proven by the API server's audit log),
//! `drover status` during a bake, and `drover rollback` restoring an earlier commit
//! stage by stage and holding the sync on it until the branch moves.

use std::time::Duration;

use crate::harness::{
    AuditEvent, FleetYaml, Remote, Repo, TestEnv, daemon, records, sync_once_args,
};

const LONG: Duration = Duration::from_secs(120);

/// Writes (not dry runs) to this test's namespace.
fn writes<'a>(events: &'a [AuditEvent], env: &TestEnv) -> Vec<&'a AuditEvent> {
    events
        .iter()
        .filter(|e| e.is_write() && e.namespace == env.ns)
        .collect()
}

fn three_groups(env: &TestEnv) {
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("blue", 1, &[("role", "blue")]);
    env.nodes("green", 1, &[]);
}

fn agent(v: &str) -> String {
    daemon("agent", &format!("registry.example/agent:{v}"), "")
}

fn on(env: &TestEnv, v: &str) -> bool {
    let imgs = env.images();
    imgs.len() == 3
        && imgs
            .values()
            .all(|i| *i == format!("registry.example/agent:{v}"))
}

#[test]
fn pause_during_stage_one_leaves_stage_two_unwritten_until_resume() {
    let env = TestEnv::new("pause");
    three_groups(&env);
    let work = Repo::new();
    let remote = Remote::new();
    let state = tempfile::tempdir().unwrap();
    let fleet = FleetYaml::staged(&env.ns, "halt", "90s");
    work.write("drover.yaml", fleet.yaml());
    work.write("daemons/agent.yaml", agent("v1"));
    work.commit("agent v1");
    work.push(&remote);
    let args = sync_once_args(&remote, state.path());
    env.drover(&args).run().expect_code(0);

    // v2 with a canary bake long enough to pause in.
    work.write("drover.yaml", fleet.bake("canary", "8s").yaml());
    work.write("daemons/agent.yaml", agent("v2"));
    work.commit("agent v2");
    work.push(&remote);
    let audit = env.tb.audit();
    let mark = audit.mark();
    let mut sync = env.drover(&args).spawn_lines();
    sync.wait_for_line(&["baking", "canary"], LONG);
    let repo = work.path_str();
    env.drover(&["pause", "--repo", &repo, "--reason", "looks odd"])
        .run()
        .expect_code(0)
        .expect_stdout_contains("paused fleet");
    // Pausing twice changes nothing and says so.
    env.drover(&["pause", "--repo", &repo])
        .run()
        .expect_code(0)
        .expect_stdout_contains("already paused");
    // The canary's bake runs out, and the sync holds before stage 2.
    sync.wait_for_line(&["waiting for `drover resume`"], LONG);
    assert_eq!(
        env.images()["agent-blue"],
        "registry.example/agent:v1",
        "stage 2 was written while paused"
    );
    env.drover(&["resume", "--repo", &repo])
        .run()
        .expect_code(0);
    sync.wait_for_line(&["commit done"], LONG);
    assert!(sync.wait_exit(LONG).success(), "{}", sync.stderr());
    assert!(on(&env, "v2"), "{:?}", env.images());

    // The API server's own log: between the pause's write of the control object
    // and the resume's, drover wrote nothing to stage 2's DaemonSet.
    let events = audit.since(mark);
    let w = writes(&events, &env);
    let control: Vec<usize> = w
        .iter()
        .enumerate()
        .filter(|(_, e)| e.resource == "configmaps" && e.name == "drover-control")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(control.len(), 2, "one write by pause, one by resume");
    let (pause_at, resume_at) = (control[0], control[1]);
    let at = |name: &str| -> Vec<usize> {
        w.iter()
            .enumerate()
            .filter(|(_, e)| e.resource == "daemonsets" && e.name == name && e.by_drover())
            .map(|(i, _)| i)
            .collect()
    };
    assert!(
        at("agent-canary").iter().any(|i| *i < pause_at),
        "paused during stage 1"
    );
    let blue = at("agent-blue");
    assert!(
        !blue.iter().any(|i| (pause_at..resume_at).contains(i)),
        "stage 2 written while paused: {blue:?} between {pause_at} and {resume_at}"
    );
    assert!(
        blue.iter().any(|i| *i > resume_at),
        "stage 2 written after the resume"
    );

    // drover's trail: the pause and the resume, each once, inside an intact chain.
    let recs = records(state.path());
    let kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["commit", "pause", "resume", "commit"], "{recs:#?}");
    assert_eq!(recs[1]["control"]["reason"], "looks odd");
    assert_eq!(recs[3]["outcome"], "applied");
    let dir = state.path().to_str().unwrap();
    env.drover(&["audit", "verify", "--state-dir", dir])
        .run()
        .expect_code(0);
    env.drover(&["history", "--state-dir", dir])
        .run()
        .expect_code(0)
        .expect_stdout_contains("pause");
}

#[test]
fn a_paused_sync_applies_no_new_commit_and_resume_lets_it() {
    let env = TestEnv::new("pause-idle");
    three_groups(&env);
    let work = Repo::new();
    let remote = Remote::new();
    let state = tempfile::tempdir().unwrap();
    work.write(
        "drover.yaml",
        FleetYaml::staged(&env.ns, "halt", "90s").yaml(),
    );
    work.write("daemons/agent.yaml", agent("v1"));
    work.commit("agent v1");
    work.push(&remote);
    let repo = work.path_str();
    env.drover(&["pause", "--repo", &repo]).run().expect_code(0);
    let args = sync_once_args(&remote, state.path());
    env.drover(&args)
        .run()
        .expect_code(0)
        .expect_stderr_contains("paused");
    assert!(env.images().is_empty(), "applied while paused");
    env.drover(&["resume", "--repo", &repo])
        .run()
        .expect_code(0);
    env.drover(&args).run().expect_code(0);
    assert!(on(&env, "v1"));
    let kinds: Vec<String> = records(state.path())
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["pause", "resume", "commit"]);
}

#[test]
fn status_during_a_bake_shows_the_stage_its_gate_and_each_daemon_by_group() {
    let env = TestEnv::new("status");
    three_groups(&env);
    let work = Repo::new();
    let remote = Remote::new();
    let state = tempfile::tempdir().unwrap();
    let fleet = FleetYaml::staged(&env.ns, "halt", "90s");
    work.write("drover.yaml", fleet.yaml());
    work.write("daemons/agent.yaml", agent("v1"));
    let v1 = work.commit("agent v1");
    work.push(&remote);
    let args = sync_once_args(&remote, state.path());
    env.drover(&args).run().expect_code(0);
    let repo = work.path_str();
    let dir = state.path().to_str().unwrap();
    let status = || {
        let r = env
            .drover(&[
                "status",
                "--repo",
                &repo,
                "--state-dir",
                dir,
                "--format",
                "json",
            ])
            .run();
        r.expect_code(0);
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()
    };
    let idle = status();
    assert_eq!(idle["rollout"], serde_json::Value::Null);
    assert_eq!(idle["last_record"]["outcome"], "applied");
    assert_eq!(idle["last_record"]["commit"], v1.as_str());
    assert_eq!(idle["rows"].as_array().unwrap().len(), 3);

    work.write("drover.yaml", fleet.bake("canary", "30s").yaml());
    work.write("daemons/agent.yaml", agent("v2"));
    let v2 = work.commit("agent v2");
    work.push(&remote);
    let mut sync = env.drover(&args).spawn_lines();
    sync.wait_for_line(&["baking", "canary"], LONG);
    // The gate is published once it has observed a second or more of the bake.
    env.wait_for("the bake's gate published", Duration::from_secs(20), || {
        std::fs::read_to_string(state.path().join("progress.json"))
            .is_ok_and(|t| t.contains("\"baking\"") && !t.contains("\"observedSeconds\": 0.0"))
    });
    let s = status();
    let r = &s["rollout"];
    assert_eq!(r["commit"], v2.as_str(), "{s:#}");
    assert_eq!(r["stage"], "canary");
    assert_eq!(r["phase"], "baking");
    assert_eq!(r["bake_seconds"], 30);
    let left = r["left_seconds"].as_f64().unwrap();
    assert!(left > 0.0 && left < 30.0, "{s:#}");
    assert_eq!(s["paused"], serde_json::Value::Null);
    // Without the state directory, from anywhere: the cluster copy every replica
    // writes has the rollout in progress and the last record (the gate's progress
    // is published in the state directory only).
    let anywhere = env
        .drover(&["status", "--repo", &repo, "--format", "json"])
        .run();
    anywhere.expect_code(0);
    let c: serde_json::Value = serde_json::from_str(&anywhere.stdout).unwrap();
    assert_eq!(c["rollout"]["commit"], v2.as_str(), "{c:#}");
    assert_eq!(c["rollout"]["stage"], "canary", "{c:#}");
    assert_eq!(c["last_record"]["commit"], v1.as_str(), "{c:#}");
    let rows = s["rows"].as_array().unwrap();
    let row = |group: &str| rows.iter().find(|r| r["group"] == group).unwrap().clone();
    let canary = row("canary");
    assert_eq!(canary["running"], true);
    assert_eq!(canary["commit"], v2.as_str());
    assert_eq!(canary["images"][0], "registry.example/agent:v2");
    assert_eq!(
        (canary["desired"].as_i64(), canary["ready"].as_i64()),
        (Some(1), Some(1))
    );
    let blue = row("blue");
    assert_eq!(blue["running"], false);
    assert_eq!(blue["commit"], v1.as_str());
    assert_eq!(blue["images"][0], "registry.example/agent:v1");
    // The text form says the same, aligned, without colour off a terminal.
    let text = env
        .drover(&["status", "--repo", &repo, "--state-dir", dir])
        .run();
    text.expect_code(0)
        .expect_stdout_contains("stage canary, baking: observed")
        .expect_stdout_contains("paused:      no");
    assert!(!text.stdout.contains('\u{1b}'), "{}", text.stdout);
    assert!(sync.wait_exit(LONG).success(), "{}", sync.stderr());
}

#[test]
fn rollback_restores_the_earlier_commit_stage_by_stage_and_holds_until_the_branch_moves() {
    let env = TestEnv::new("ctl-rollback");
    three_groups(&env);
    let work = Repo::new();
    let remote = Remote::new();
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_str().unwrap();
    let fleet = FleetYaml::staged(&env.ns, "halt", "90s")
        .bake("canary", "1s")
        .bake("blue", "1s");
    work.write("drover.yaml", fleet.yaml());
    work.write("daemons/agent.yaml", agent("v1"));
    let v1 = work.commit("agent v1");
    work.push(&remote);
    let args = sync_once_args(&remote, state.path());
    let sync = || env.drover(&args).run();
    sync().expect_code(0);
    work.write("daemons/agent.yaml", agent("v2"));
    let v2 = work.commit("agent v2");
    work.push(&remote);
    sync().expect_code(0);
    assert!(on(&env, "v2"));

    // The default target: the last commit applied before the current one.
    let repo = work.path_str();
    env.drover(&["rollback", "--repo", &repo, "--state-dir", dir])
        .run()
        .expect_code(0)
        .expect_stdout_contains(&v1[..12]);
    let audit = env.tb.audit();
    let mark = audit.mark();
    let rolled = sync();
    rolled.expect_code(0);
    assert!(on(&env, "v1"), "{:?}\n{}", env.images(), rolled.stderr);
    // Stage by stage: canary, then blue, then green, each written once.
    let events = audit.since(mark);
    let order: Vec<&str> = writes(&events, &env)
        .iter()
        .filter(|e| e.resource == "daemonsets" && e.by_drover())
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(order, ["agent-canary", "agent-blue", "agent-green"]);
    let recs = records(state.path());
    let last = recs.last().unwrap();
    assert_eq!(last["kind"], "rollback");
    assert_eq!(last["commit"]["sha"], v1.as_str());
    assert_eq!(last["outcome"], "applied");
    assert_eq!(last["stages"].as_array().unwrap().len(), 3);
    let action = &recs[recs.len() - 2];
    assert_eq!(action["kind"], "rollback");
    assert_eq!(action["control"]["commit"], v1.as_str());

    // The branch has not moved: the newer commit is not applied again.
    let mark = audit.mark();
    sync().expect_code(0);
    assert!(on(&env, "v1"));
    let events = audit.since(mark);
    assert!(
        !writes(&events, &env)
            .iter()
            .any(|e| e.resource == "daemonsets"),
        "a DaemonSet was written while held"
    );
    let key = format!("{}.json", env.ns);
    let control = || -> serde_json::Value {
        let cm = env.get_json(&["configmap", "drover-control"]);
        serde_json::from_str(cm["data"][&key].as_str().unwrap()).unwrap()
    };
    let held = control();
    assert_eq!(held["hold"]["commit"], v1.as_str());
    assert_eq!(held["hold"]["branchHead"], v2.as_str());

    // The branch moves: the hold is cleared and the new head applied normally.
    work.write("daemons/agent.yaml", agent("v3"));
    work.commit("agent v3");
    work.push(&remote);
    sync().expect_code(0);
    assert!(on(&env, "v3"));
    assert_eq!(control()["hold"], serde_json::Value::Null);
    env.drover(&["audit", "verify", "--state-dir", dir])
        .run()
        .expect_code(0);
}

#[test]
fn a_control_object_that_cannot_be_read_starts_nothing() {
    let env = TestEnv::new("control-closed");
    three_groups(&env);
    let work = Repo::new();
    let remote = Remote::new();
    let state = tempfile::tempdir().unwrap();
    work.write(
        "drover.yaml",
        FleetYaml::staged(&env.ns, "halt", "90s").yaml(),
    );
    work.write("daemons/agent.yaml", agent("v1"));
    work.commit("agent v1");
    work.push(&remote);
    // A value drover cannot read exactly one way: an unknown field.
    let bad = r#"{"schema":"drover.dev/control/v1","paused_by":"someone"}"#;
    env.kubectl(&[
        "-n",
        &env.ns,
        "create",
        "configmap",
        "drover-control",
        &format!("--from-literal={}.json={bad}", env.ns),
    ])
    .expect_code(0);
    let args = sync_once_args(&remote, state.path());
    env.drover(&args)
        .run()
        .expect_code(1)
        .expect_stderr_contains("the control object cannot be read");
    assert!(env.images().is_empty(), "applied without reading the pause");
    assert!(records(state.path()).is_empty());
    // `drover pause` refuses to overwrite what it cannot read, too.
    env.drover(&["pause", "--repo", &work.path_str()])
        .run()
        .expect_code(1)
        .expect_stderr_contains("unknown field");
}
