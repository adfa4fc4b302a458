//! `drover sync` on the real local control plane: pushes applied in order with one
//! audit record each, a tamper-evident trail, drift repair, and crash safety.

use std::path::Path;
use std::time::Duration;

use crate::harness::{FleetYaml, Remote, Repo, Run, TestEnv, daemon, kill_sync_once_at, records};

fn three_groups(env: &TestEnv) {
    env.nodes("canary", 3, &[("role", "canary")]);
    env.nodes("blue", 3, &[("role", "blue")]);
    env.nodes("green", 3, &[]);
}

fn sync_once(env: &TestEnv, remote: &Remote, state: &Path) -> Run {
    env.drover(&[
        "sync",
        "--repo",
        &remote.path_str(),
        "--state-dir",
        state.to_str().unwrap(),
        "--once",
    ])
    .run()
}

struct Setup {
    env: TestEnv<'static>,
    work: Repo,
    remote: Remote,
    state: tempfile::TempDir,
}

fn setup(test: &str) -> Setup {
    let env = TestEnv::new(test);
    three_groups(&env);
    let work = Repo::new();
    let remote = Remote::new();
    work.write(
        "drover.yaml",
        FleetYaml::staged(&env.ns, "halt", "90s").yaml(),
    );
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("agent v1");
    work.push(&remote);
    let state = tempfile::tempdir().unwrap();
    Setup {
        env,
        work,
        remote,
        state,
    }
}

#[test]
fn three_pushes_are_applied_in_order_with_one_audit_record_each_and_tampering_is_caught() {
    let s = setup("sync-pushes");
    sync_once(&s.env, &s.remote, s.state.path()).expect_code(0);

    let mut shas = vec![];
    s.work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", ""),
    );
    shas.push(s.work.commit("image bump"));
    s.work.push(&s.remote);
    sync_once(&s.env, &s.remote, s.state.path()).expect_code(0);
    assert!(s.env.images().values().all(|i| i.ends_with("agent:v2")));

    s.work.write(
        "daemons/logs.yaml",
        daemon("logs", "registry.example/logs:v1", ""),
    );
    shas.push(s.work.commit("new daemon"));
    s.work.push(&s.remote);
    sync_once(&s.env, &s.remote, s.state.path()).expect_code(0);
    assert_eq!(s.env.images().len(), 6);

    s.work.remove("daemons/logs.yaml");
    shas.push(s.work.commit("daemon removed"));
    s.work.push(&s.remote);
    sync_once(&s.env, &s.remote, s.state.path()).expect_code(0);
    assert_eq!(s.env.images().len(), 3);

    let recs = records(s.state.path());
    assert_eq!(recs.len(), 4, "one record per commit: {recs:#?}");
    let got: Vec<&str> = recs[1..]
        .iter()
        .map(|r| r["commit"]["sha"].as_str().unwrap())
        .collect();
    assert_eq!(got, shas.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(recs.iter().all(|r| r["outcome"] == "applied"), "{recs:#?}");
    assert_eq!(
        recs[3]["pruned"],
        serde_json::json!(["logs-blue", "logs-canary", "logs-green"])
    );
    assert_eq!(recs[2]["plan"]["create"], 3);

    let verify = |env: &TestEnv| {
        env.drover(&[
            "audit",
            "verify",
            "--state-dir",
            s.state.path().to_str().unwrap(),
        ])
        .run()
    };
    verify(&s.env).expect_code(0);
    let log = s.state.path().join("audit.jsonl");
    let original = std::fs::read(&log).unwrap();

    // Flip one byte inside record 2.
    let mut flipped = original.clone();
    let line2 = original.iter().position(|b| *b == b'\n').unwrap() + 1;
    let at = line2
        + original[line2..]
            .windows(8)
            .position(|w| w == b"\"fleet\":")
            .unwrap()
        + 10;
    flipped[at] ^= 0x01;
    std::fs::write(&log, &flipped).unwrap();
    let r = verify(&s.env);
    r.expect_code(1);
    assert!(
        r.stderr.contains("line 2") || r.stderr.contains("line 3"),
        "{}",
        r.stderr
    );

    // Delete record 2.
    let text = String::from_utf8(original.clone()).unwrap();
    let without: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&log, without.join("\n") + "\n").unwrap();
    let r = verify(&s.env);
    r.expect_code(1);
    assert!(r.stderr.contains("line 2 (record 3)"), "{}", r.stderr);

    // Delete the last record: caught by the head hash in state.json.
    let all: Vec<&str> = text.lines().collect();
    std::fs::write(&log, all[..3].join("\n") + "\n").unwrap();
    let r = verify(&s.env);
    r.expect_code(1);
    assert!(r.stderr.contains("last record"), "{}", r.stderr);

    std::fs::write(&log, &original).unwrap();
    verify(&s.env).expect_code(0);
}

#[test]
fn a_deleted_daemonset_is_repaired_within_one_interval_and_recorded() {
    let s = setup("sync-drift");
    let logs = tempfile::tempdir().unwrap();
    let mut reconciler = s
        .env
        .drover(&[
            "sync",
            "--repo",
            &s.remote.path_str(),
            "--state-dir",
            s.state.path().to_str().unwrap(),
            "--interval",
            "2s",
        ])
        .spawn_logged(&logs.path().join("sync.log"));
    let state = s.state.path().to_path_buf();
    s.env
        .wait_for("the first commit applied", Duration::from_secs(90), || {
            records(&state).len() == 1
        });
    s.env
        .kubectl(&["-n", &s.env.ns, "delete", "daemonset", "agent-blue"])
        .expect_code(0);
    s.env
        .wait_for("agent-blue re-created", Duration::from_secs(60), || {
            s.env.images().contains_key("agent-blue")
        });
    s.env
        .wait_for("a drift record", Duration::from_secs(60), || {
            records(&state).len() == 2
        });
    reconciler.kill();
    let recs = records(&state);
    assert_eq!(recs[1]["kind"], "drift", "{recs:#?}");
    assert_eq!(recs[1]["outcome"], "applied");
    assert_eq!(recs[1]["plan"]["create"], 1);
    assert_eq!(recs[1]["commit"]["sha"], recs[0]["commit"]["sha"]);
}

#[test]
fn sync_killed_at_each_stage_boundary_finishes_the_same_commit_with_one_record() {
    let s = setup("sync-crash");
    sync_once(&s.env, &s.remote, s.state.path()).expect_code(0);
    let state = s.state.path();
    for (version, marker) in [
        ("v2", "baking stage=\"canary\""),
        ("v3", "stage started stage=\"blue\""),
        ("v4", "stage started stage=\"green\""),
    ] {
        s.work.write(
            "daemons/agent.yaml",
            daemon("agent", &format!("registry.example/agent:{version}"), ""),
        );
        let sha = s.work.commit(&format!("agent {version}"));
        s.work.push(&s.remote);
        kill_sync_once_at(&s.env, &s.remote, state, &[marker]);
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state.join("state.json")).unwrap()).unwrap();
        assert_eq!(
            saved["cursor"]["commit"],
            sha.as_str(),
            "cursor saved before the kill: {saved}"
        );
        let r = sync_once(&s.env, &s.remote, state);
        r.expect_code(0);
        assert!(
            s.env.images().values().all(|i| i.ends_with(version)),
            "{version}: {:?}",
            s.env.images()
        );
        let recs = records(state);
        let for_commit = recs
            .iter()
            .filter(|r| r["commit"]["sha"] == sha.as_str())
            .count();
        assert_eq!(
            for_commit, 1,
            "{version}: exactly one record for the commit: {recs:#?}"
        );
        assert_eq!(recs.last().unwrap()["outcome"], "applied");
        // The record lists every stage once, and the stage the run stopped in was
        // resumed and gated again.
        let last = recs.last().unwrap();
        let stages: Vec<&str> = last["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert_eq!(stages, ["canary", "blue", "green"], "{version}: {last:#}");
        let resumed: Vec<&str> = last["stages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["resumed"] == true)
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        let resumed_at = marker.split('"').nth(1).unwrap();
        assert_eq!(resumed, [resumed_at], "{version}: {last:#}");
    }
    s.env
        .drover(&["audit", "verify", "--state-dir", state.to_str().unwrap()])
        .run()
        .expect_code(0);
}
