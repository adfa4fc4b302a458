//! A running `drover sync` that panics while reading one commit, on the real local
//! control plane: the commit is recorded as refused, the last good commit stays
//! applied, `/healthz` and `/metrics` keep answering, and the next commit is applied.
//!
//! The panic comes from a test-only hook honoured in debug builds only
//! (`DROVER_TEST_PANIC_ON_COMMIT_SUBJECT`, in `shell::sync`), so the test does not
//! depend on a panic that the core is meant to be free of.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use crate::harness::{FleetYaml, Remote, Repo, TestEnv, daemon, records};

const PANICKING: &str = "agent v2, which drover panics on";

/// `GET path` over plain HTTP/1.0: the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: drover\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

#[test]
fn a_commit_that_panics_is_refused_by_a_running_sync_which_keeps_serving_healthz() {
    let env = TestEnv::new("sync-panic");
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("blue", 1, &[("role", "blue")]);
    env.nodes("green", 1, &[]);
    let work = Repo::new();
    let remote = Remote::new();
    let state = tempfile::tempdir().unwrap();
    work.write(
        "drover.yaml",
        FleetYaml::staged(&env.ns, "halt", "90s").yaml(),
    );
    let agent = |v: &str| daemon("agent", &format!("registry.example/agent:{v}"), "");
    work.write("daemons/agent.yaml", agent("v1"));
    let good = work.commit("agent v1");
    work.push(&remote);

    let mut sync = env
        .drover(&[
            "sync",
            "--repo",
            &remote.path_str(),
            "--state-dir",
            state.path().to_str().unwrap(),
            "--audit-anchor-namespace",
            &env.ns,
            "--interval",
            "1s",
            "--listen",
            "127.0.0.1:0",
            "-v",
        ])
        .env("DROVER_TEST_PANIC_ON_COMMIT_SUBJECT", PANICKING)
        .spawn_lines();
    // The log, line by line, as it comes: the listen address is in it.
    let line = sync.wait_for_line(&["addr="], Duration::from_secs(60));
    let addr = line
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    env.wait_for("the first commit applied", Duration::from_secs(90), || {
        records(state.path()).len() == 1
    });

    work.write("daemons/agent.yaml", agent("v2"));
    let bad = work.commit(PANICKING);
    work.push(&remote);
    env.wait_for(
        "the panicking commit recorded",
        Duration::from_secs(60),
        || records(state.path()).len() == 2,
    );
    let rec = &records(state.path())[1];
    assert_eq!(rec["commit"]["sha"], bad.as_str(), "{rec:#}");
    assert_eq!(rec["outcome"], "refused", "{rec:#}");
    let reason = rec["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("drover panicked while reading the commit")
            && reason.contains("DROVER_TEST_PANIC_ON_COMMIT_SUBJECT"),
        "{rec:#}"
    );
    assert!(
        sync.child.try_wait().unwrap().is_none(),
        "drover sync is still running"
    );
    assert!(
        env.images().values().all(|i| i.ends_with("agent:v1")),
        "the last good commit stays applied: {:?}",
        env.images()
    );
    let (status, body) = get(&addr, "/healthz");
    assert!(status.contains("200"), "{status}: {body}");
    let (status, metrics) = get(&addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(
        metrics.contains(&format!(
            "drover_last_applied_commit_info{{commit=\"{good}\"}} 1"
        )) && metrics.contains("drover_rollouts_total{outcome=\"refused\"} 1"),
        "{metrics}"
    );

    // The loop goes on: the next commit is applied.
    work.write("daemons/agent.yaml", agent("v3"));
    work.commit("agent v3");
    work.push(&remote);
    env.wait_for("the next commit applied", Duration::from_secs(90), || {
        records(state.path()).len() == 3
    });
    assert_eq!(records(state.path())[2]["outcome"], "applied");
    assert!(env.images().values().all(|i| i.ends_with("agent:v3")));
    assert!(sync.child.try_wait().unwrap().is_none());
    let r = env
        .drover(&[
            "audit",
            "verify",
            "--state-dir",
            state.path().to_str().unwrap(),
        ])
        .run();
    r.expect_code(0);
}
