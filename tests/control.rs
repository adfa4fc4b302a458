//! The operator's controls on the testbed: `drover pause` during stage 1 holds
//! stage 2 unwritten until `drover resume` (proven by the API server's audit log),
//! and both are recorded in drover's own audit trail.

mod cluster_support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Stdio;

use cluster_support::{FleetRepo, TestEnv, daemon, images, staged_fleet};

/// The API server's audit log, as (verb, resource, namespace, name, user agent),
/// one per answered request that was not a dry run, in the order the server
/// answered them.
fn api_log(env: &TestEnv) -> Vec<(String, String, String, String, String)> {
    std::fs::read_to_string(env.tb.dir.join("logs/audit.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .filter(|e| {
            !e["requestURI"]
                .as_str()
                .unwrap_or_default()
                .contains("dryRun")
        })
        .map(|e| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&e["verb"]),
                s(&e["objectRef"]["resource"]),
                s(&e["objectRef"]["namespace"]),
                s(&e["objectRef"]["name"]),
                s(&e["userAgent"]),
            )
        })
        .collect()
}

fn records(state: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn pause_during_stage_one_leaves_stage_two_unwritten_until_resume() {
    let env = TestEnv::new("pause");
    env.nodes("canary", 2, &[("role", "canary")]);
    env.nodes("blue", 2, &[("role", "blue")]);
    env.nodes("green", 2, &[]);
    let work = FleetRepo::new();
    let remote = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(remote.path()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let fleet = staged_fleet(&env.ns, "halt", "90s");
    work.write("drover.yaml", &fleet);
    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("agent v1");
    work.push(remote.path());
    let sync_args = [
        "-v",
        "sync",
        "--repo",
        remote.path().to_str().unwrap(),
        "--state-dir",
        state.path().to_str().unwrap(),
        "--once",
    ];
    env.drover(&sync_args).expect_code(0);

    // v2 with a canary bake long enough to pause in.
    work.write("drover.yaml", &fleet.replace("bake: 3s", "bake: 8s"));
    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v2", ""),
    );
    work.commit("agent v2");
    work.push(remote.path());
    let mut child = env
        .drover_cmd(&sync_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let mut until = |what: &str| {
        for line in lines.by_ref() {
            let line = line.unwrap();
            log.push_str(&line);
            log.push('\n');
            if line.contains(what) {
                return log.clone();
            }
        }
        panic!("the sync ended before logging {what:?}:\n{log}");
    };
    until("baking");
    let repo = work.path_str();
    let paused = env.drover(&["pause", "--repo", &repo, "--reason", "looks odd"]);
    paused.expect_code(0);
    assert!(paused.stdout.contains("paused fleet"), "{}", paused.stdout);
    // Pausing twice changes nothing and says so.
    let again = env.drover(&["pause", "--repo", &repo]);
    again.expect_code(0);
    assert!(again.stdout.contains("already paused"), "{}", again.stdout);
    // The canary's bake runs out, and the sync holds before stage 2.
    until("waiting for `drover resume`");
    assert_eq!(
        images(&env)["agent-blue"],
        "registry.example/agent:v1",
        "stage 2 was written while paused"
    );
    env.drover(&["resume", "--repo", &repo]).expect_code(0);
    let rest = until("commit done");
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest}");
    let imgs = images(&env);
    assert!(
        imgs.values().all(|i| i == "registry.example/agent:v2"),
        "{imgs:?}"
    );

    // The API server's own log: between the pause's write of the control object
    // and the resume's, drover wrote nothing to stage 2's DaemonSet.
    let events = api_log(&env);
    let control_writes: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, (verb, res, ns, name, _))| {
            ["create", "update"].contains(&verb.as_str())
                && res == "configmaps"
                && *ns == env.ns
                && name == "drover-control"
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(control_writes.len(), 2, "one write by pause, one by resume");
    let (pause_at, resume_at) = (control_writes[0], control_writes[1]);
    let blue_writes: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, (verb, res, ns, name, agent))| {
            verb == "patch"
                && res == "daemonsets"
                && *ns == env.ns
                && name == "agent-blue"
                && agent.starts_with("drover/")
        })
        .map(|(i, _)| i)
        .collect();
    let canary_v2 = events
        .iter()
        .rposition(|(verb, res, ns, name, _)| {
            verb == "patch" && res == "daemonsets" && *ns == env.ns && name == "agent-canary"
        })
        .expect("the canary was written");
    assert!(canary_v2 < pause_at, "paused during stage 1");
    assert!(
        !blue_writes
            .iter()
            .any(|i| (pause_at..resume_at).contains(i)),
        "stage 2 written while paused: {blue_writes:?} between {pause_at} and {resume_at}"
    );
    assert!(
        blue_writes.iter().any(|i| *i > resume_at),
        "stage 2 written after the resume"
    );

    // drover's trail: the pause and the resume, each once, inside an intact chain.
    let recs = records(state.path());
    let kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["commit", "pause", "resume", "commit"], "{recs:#?}");
    assert_eq!(recs[1]["control"]["reason"], "looks odd");
    assert_eq!(recs[3]["outcome"], "applied");
    let verify = env.drover(&[
        "audit",
        "verify",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    verify.expect_code(0);
    let history = env.drover(&["history", "--state-dir", state.path().to_str().unwrap()]);
    assert!(history.stdout.contains("pause"), "{}", history.stdout);
}

#[test]
fn a_paused_sync_applies_no_new_commit_and_resume_lets_it() {
    let env = TestEnv::new("pause-idle");
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("blue", 1, &[("role", "blue")]);
    env.nodes("green", 1, &[]);
    let work = FleetRepo::new();
    let remote = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(remote.path()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let fleet = staged_fleet(&env.ns, "halt", "90s");
    work.write("drover.yaml", &fleet);
    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("agent v1");
    work.push(remote.path());
    let repo = work.path_str();
    env.drover(&["pause", "--repo", &repo]).expect_code(0);
    let sync = || {
        env.drover(&[
            "sync",
            "--repo",
            remote.path().to_str().unwrap(),
            "--state-dir",
            state.path().to_str().unwrap(),
            "--once",
        ])
    };
    let r = sync();
    r.expect_code(0);
    assert!(r.stderr.contains("paused"), "{}", r.stderr);
    let list = env.get_json(&["daemonsets"]);
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "applied while paused"
    );
    env.drover(&["resume", "--repo", &repo]).expect_code(0);
    sync().expect_code(0);
    assert_eq!(images(&env).len(), 3);
    let kinds: Vec<String> = records(state.path())
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["pause", "resume", "commit"]);
}

#[test]
fn status_during_a_bake_shows_the_stage_its_gate_and_each_daemon_by_group() {
    let env = TestEnv::new("status");
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("blue", 1, &[("role", "blue")]);
    env.nodes("green", 1, &[]);
    let work = FleetRepo::new();
    let remote = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(remote.path()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let fleet = staged_fleet(&env.ns, "halt", "90s");
    work.write("drover.yaml", &fleet);
    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v1", ""),
    );
    let v1 = work.commit("agent v1");
    work.push(remote.path());
    let state_dir = state.path().to_str().unwrap();
    let sync_args = [
        "-v",
        "sync",
        "--repo",
        remote.path().to_str().unwrap(),
        "--state-dir",
        state_dir,
        "--once",
    ];
    env.drover(&sync_args).expect_code(0);
    let repo = work.path_str();
    let status = || {
        let r = env.drover(&[
            "status",
            "--repo",
            &repo,
            "--state-dir",
            state_dir,
            "--format",
            "json",
        ]);
        r.expect_code(0);
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()
    };
    let idle = status();
    assert_eq!(idle["rollout"], serde_json::Value::Null);
    assert_eq!(idle["last_record"]["outcome"], "applied");
    assert_eq!(idle["last_record"]["commit"], v1.as_str());
    assert_eq!(idle["rows"].as_array().unwrap().len(), 3);

    work.write("drover.yaml", &fleet.replace("bake: 3s", "bake: 30s"));
    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v2", ""),
    );
    let v2 = work.commit("agent v2");
    work.push(remote.path());
    let mut child = env
        .drover_cmd(&sync_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(
        lines.by_ref().any(|l| l.unwrap().contains("baking")),
        "the sync ended before the bake"
    );
    // The gate is published once it has observed a second or more of the bake.
    env.wait_for(
        "the bake's gate published",
        std::time::Duration::from_secs(20),
        || {
            std::fs::read_to_string(state.path().join("progress.json"))
                .is_ok_and(|t| t.contains("\"baking\"") && !t.contains("\"observedSeconds\": 0.0"))
        },
    );
    let s = status();
    let r = &s["rollout"];
    assert_eq!(r["commit"], v2.as_str(), "{s:#}");
    assert_eq!(r["stage"], "canary");
    assert_eq!(r["phase"], "baking");
    assert_eq!(r["bake_seconds"], 30);
    let left = r["left_seconds"].as_f64().unwrap();
    assert!(left > 0.0 && left < 30.0, "{s:#}");
    assert_eq!(s["paused"], serde_json::Value::Null);
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
    let text = env.drover(&["status", "--repo", &repo, "--state-dir", state_dir]);
    text.expect_code(0);
    assert!(
        text.stdout.contains("stage canary, baking: observed"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("paused:      no"), "{}", text.stdout);
    assert!(!text.stdout.contains('\u{1b}'), "{}", text.stdout);
    for _ in lines.by_ref() {}
    assert!(child.wait().unwrap().success());
}

#[test]
fn rollback_restores_the_earlier_commit_stage_by_stage_and_holds_until_the_branch_moves() {
    let env = TestEnv::new("rollback");
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("blue", 1, &[("role", "blue")]);
    env.nodes("green", 1, &[]);
    let work = FleetRepo::new();
    let remote = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(remote.path()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let fleet = staged_fleet(&env.ns, "halt", "90s").replace("bake: 3s", "bake: 1s");
    work.write("drover.yaml", &fleet);
    let agent = |v: &str| daemon("agent", &format!("registry.example/agent:{v}"), "");
    work.write("daemons/agent.yaml", &agent("v1"));
    let v1 = work.commit("agent v1");
    work.push(remote.path());
    let sync = || {
        env.drover(&[
            "-v",
            "sync",
            "--repo",
            remote.path().to_str().unwrap(),
            "--state-dir",
            state_dir,
            "--once",
        ])
    };
    sync().expect_code(0);
    work.write("daemons/agent.yaml", &agent("v2"));
    let v2 = work.commit("agent v2");
    work.push(remote.path());
    sync().expect_code(0);
    let on = |v: &str| {
        let imgs = images(&env);
        imgs.len() == 3
            && imgs
                .values()
                .all(|i| *i == format!("registry.example/agent:{v}"))
    };
    assert!(on("v2"));

    // The default target: the last commit applied before the current one.
    let repo = work.path_str();
    let r = env.drover(&["rollback", "--repo", &repo, "--state-dir", state_dir]);
    r.expect_code(0);
    assert!(r.stdout.contains(&v1[..12]), "{}", r.stdout);
    let mark = api_log(&env).len();
    let rolled = sync();
    rolled.expect_code(0);
    assert!(on("v1"), "{:?}\n{}", images(&env), rolled.stderr);
    // Stage by stage: canary, then blue, then green, each written once.
    let writes: Vec<String> = api_log(&env)[mark..]
        .iter()
        .filter(|(verb, res, ns, _, agent)| {
            verb == "patch" && res == "daemonsets" && *ns == env.ns && agent.starts_with("drover/")
        })
        .map(|(_, _, _, name, _)| name.clone())
        .collect();
    assert_eq!(writes, ["agent-canary", "agent-blue", "agent-green"]);
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
    let mark = api_log(&env).len();
    sync().expect_code(0);
    assert!(on("v1"));
    assert!(
        !api_log(&env)[mark..]
            .iter()
            .any(|(verb, res, ns, _, _)| verb == "patch" && res == "daemonsets" && *ns == env.ns),
        "a DaemonSet was written while held"
    );
    let cm = env.get_json(&["configmap", "drover-control"]);
    let key = format!("{}.json", env.ns);
    let held: serde_json::Value = serde_json::from_str(cm["data"][&key].as_str().unwrap()).unwrap();
    assert_eq!(held["hold"]["commit"], v1.as_str());
    assert_eq!(held["hold"]["branchHead"], v2.as_str());

    // The branch moves: the hold is cleared and the new head applied normally.
    work.write("daemons/agent.yaml", &agent("v3"));
    work.commit("agent v3");
    work.push(remote.path());
    sync().expect_code(0);
    assert!(on("v3"));
    let cm = env.get_json(&["configmap", "drover-control"]);
    let after: serde_json::Value =
        serde_json::from_str(cm["data"][&key].as_str().unwrap()).unwrap();
    assert_eq!(after["hold"], serde_json::Value::Null);
    env.drover(&["audit", "verify", "--state-dir", state_dir])
        .expect_code(0);
}
