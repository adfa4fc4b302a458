//! Freeze windows on the testbed, with an injected clock (`DROVER_TEST_CLOCK_FILE`,
//! read afresh at every reading by debug builds): a rollout waits before a frozen
//! stage and resumes once the clock leaves the window; a new commit frozen at its
//! first stage starts nothing while drift is corrected as each window allows;
//! `drover apply` refuses a frozen rollout; `--override-freeze` rolls through and is
//! recorded. Which stage was written when comes from the API server's audit log.

use std::time::Duration;

use crate::harness::{
    AuditEvent, FleetYaml, Remote, Repo, TestClock, TestEnv, daemon, records, sync_once_args,
};

const LONG: Duration = Duration::from_secs(120);
use crate::harness::TEST_CLOCK as CLOCK;

fn agent(v: &str) -> String {
    daemon("agent", &format!("registry.example/agent:{v}"), "")
}

fn three_groups(env: &TestEnv) {
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("blue", 1, &[("role", "blue")]);
    env.nodes("green", 1, &[]);
}

/// A fleet repository with agent v1 applied by `sync --once` at `clock`.
struct Applied {
    work: Repo,
    remote: Remote,
    state: tempfile::TempDir,
}

impl Applied {
    fn v1(env: &TestEnv, fleet: &FleetYaml, clock: &TestClock) -> Applied {
        let a = Applied {
            work: Repo::new(),
            remote: Remote::new(),
            state: tempfile::tempdir().unwrap(),
        };
        a.work.write("drover.yaml", fleet.yaml());
        a.work.write("daemons/agent.yaml", agent("v1"));
        a.work.commit("agent v1");
        a.work.push(&a.remote);
        env.drover(&a.args())
            .env(CLOCK, clock.path())
            .run()
            .expect_code(0);
        a
    }

    fn args(&self) -> Vec<&str> {
        sync_once_args(&self.remote, self.state.path())
    }

    fn push_v2(&self) {
        self.work.write("daemons/agent.yaml", agent("v2"));
        self.work.commit("agent v2");
        self.work.push(&self.remote);
    }
}

/// drover's writes to DaemonSet `name` of this test's namespace.
fn written(events: &[AuditEvent], env: &TestEnv, name: &str) -> usize {
    events
        .iter()
        .filter(|e| {
            e.is_write()
                && e.by_drover()
                && e.namespace == env.ns
                && e.resource == "daemonsets"
                && e.name == name
        })
        .count()
}

fn image(env: &TestEnv, ds: &str) -> String {
    env.images()
        .get(ds)
        .cloned()
        .unwrap_or_else(|| panic!("no DaemonSet {ds}: {:?}", env.images()))
}

#[test]
fn a_rollout_waits_before_a_frozen_stage_and_resumes_when_the_clock_leaves_the_window() {
    let env = TestEnv::new("freeze-wait");
    three_groups(&env);
    let clock = TestClock::at("2026-06-01T08:00:00Z");
    // Blue is frozen every day 09:00-11:00 UTC; canary and green are not.
    let fleet = FleetYaml::staged(&env.ns, "halt", "90s").spec_lines(
        "  freezeWindows:\n    - {name: blue-mornings, start: \"0 9 * * *\", timeZone: UTC, duration: 2h, groups: [blue]}\n",
    );
    let a = Applied::v1(&env, &fleet, &clock);
    let args = a.args();
    assert_eq!(image(&env, "agent-blue"), "registry.example/agent:v1");

    clock.set("2026-06-01T10:00:00Z");
    a.push_v2();
    let audit = env.tb.audit();
    let start = audit.mark();
    let mut sync = env.drover(&args).env(CLOCK, clock.path()).spawn_lines();
    let line = sync.wait_for_line(&["waiting for the window to end"], LONG);
    assert!(
        line.contains("frozen until 2026-06-01T11:00:00+00:00[UTC] (window blue-mornings)"),
        "{line}"
    );
    assert_eq!(image(&env, "agent-canary"), "registry.example/agent:v2");
    assert_eq!(image(&env, "agent-blue"), "registry.example/agent:v1");
    assert_eq!(image(&env, "agent-green"), "registry.example/agent:v1");
    // `status` at the same clock names the frozen stage.
    env.drover(&["status", "--repo", &a.work.path_str()])
        .env(CLOCK, clock.path())
        .run()
        .expect_code(0)
        .expect_stdout_contains("stage blue frozen until 2026-06-01T11:00:00+00:00[UTC]");

    let thaw = audit.mark();
    clock.set("2026-06-01T11:00:01Z");
    sync.wait_for_line(&["commit done"], LONG);
    assert!(sync.wait_exit(LONG).success(), "{}", sync.stderr());
    for ds in ["agent-canary", "agent-blue", "agent-green"] {
        assert_eq!(image(&env, ds), "registry.example/agent:v2", "{ds}");
    }

    // The API server's own log: inside the window only the canary was written;
    // blue and green only after the clock left it.
    let during = audit.between(start, Some(thaw));
    assert!(written(&during, &env, "agent-canary") > 0);
    assert_eq!(
        written(&during, &env, "agent-blue"),
        0,
        "blue written while frozen"
    );
    assert_eq!(
        written(&during, &env, "agent-green"),
        0,
        "green written before blue"
    );
    let after = audit.since(thaw);
    assert!(written(&after, &env, "agent-blue") > 0);
    assert!(written(&after, &env, "agent-green") > 0);

    let recs = records(a.state.path());
    let last = recs.last().unwrap();
    assert_eq!(last["outcome"], "applied", "{last:#}");
    assert_eq!(last["stages"].as_array().unwrap().len(), 3, "{last:#}");
    assert!(last.get("freeze_override").is_none(), "{last:#}");
}

#[test]
fn a_new_commit_frozen_at_its_first_stage_starts_nothing_drift_follows_each_window_and_an_override_is_recorded()
 {
    let env = TestEnv::new("freeze-start");
    three_groups(&env);
    let clock = TestClock::at("2026-06-05T12:00:00Z");
    // Fridays 15:00 Berlin for the weekend, the whole fleet, drift corrected; and the
    // canary's own window, in which not even drift is written.
    // Drift here is `kubectl set image`, whose field manager drover takes over.
    let fleet = FleetYaml::staged(&env.ns, "halt", "90s").force_conflicts().spec_lines(concat!(
        "  freezeWindows:\n",
        "    - {name: weekend, start: \"0 15 * * FRI\", timeZone: Europe/Berlin, duration: 2d15h}\n",
        "    - {name: canary-hands-off, start: \"0 15 * * FRI\", timeZone: Europe/Berlin, duration: 1d, groups: [canary], driftCorrection: deny}\n",
    ));
    let a = Applied::v1(&env, &fleet, &clock);
    let args = a.args();

    // Friday 16:00 Berlin: both windows open. Blue drifts; v2 is pushed.
    clock.set("2026-06-05T16:00:00+02:00[Europe/Berlin]");
    env.kubectl(&[
        "-n",
        &env.ns,
        "set",
        "image",
        "daemonset/agent-blue",
        "agent=registry.example/agent:tampered",
    ])
    .expect_code(0);
    a.push_v2();
    let audit = env.tb.audit();
    let mark = audit.mark();
    let run = env.drover(&args).env(CLOCK, clock.path()).run();
    run.expect_code(0).expect_stderr_contains(
        "new commit waits: frozen until 2026-06-08T06:00:00+02:00[Europe/Berlin] (window canary-hands-off, weekend)",
    );
    // v2 started nowhere; blue's drift (allowed by the weekend window) was
    // corrected back to v1.
    let events = audit.since(mark);
    assert_eq!(written(&events, &env, "agent-canary"), 0);
    assert_eq!(written(&events, &env, "agent-green"), 0);
    assert!(written(&events, &env, "agent-blue") > 0);
    for ds in ["agent-canary", "agent-blue", "agent-green"] {
        assert_eq!(image(&env, ds), "registry.example/agent:v1", "{ds}");
    }
    let kinds: Vec<String> = records(a.state.path())
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["commit", "drift"]);

    // The canary drifts too: its window denies drift correction, and drift is
    // corrected stage by stage, so nothing is written.
    env.kubectl(&[
        "-n",
        &env.ns,
        "set",
        "image",
        "daemonset/agent-canary",
        "agent=registry.example/agent:tampered",
    ])
    .expect_code(0);
    let mark = audit.mark();
    env.drover(&args)
        .env(CLOCK, clock.path())
        .run()
        .expect_code(0)
        .expect_stderr_contains("new commit waits: frozen until");
    assert_eq!(written(&audit.since(mark), &env, "agent-canary"), 0);
    assert_eq!(
        image(&env, "agent-canary"),
        "registry.example/agent:tampered"
    );

    // A manual apply is refused before it asks or writes anything.
    let mark = audit.mark();
    env.drover(&["apply", "--repo", &a.work.path_str(), "--yes"])
        .env(CLOCK, clock.path())
        .run()
        .expect_code(1)
        .expect_stderr_contains("frozen: frozen until 2026-06-08T06:00:00+02:00[Europe/Berlin]");
    // (The DaemonSet controller goes on writing the tampered canary's status.)
    let events = audit.since(mark);
    assert!(
        !events
            .iter()
            .any(|e| e.is_write() && e.by_drover() && e.namespace == env.ns),
        "apply wrote while frozen"
    );

    // The emergency fix goes through, and the trail says which windows it broke.
    let mut override_args = args.clone();
    override_args.extend(["--override-freeze", "CVE-2026-1234 hotfix"]);
    env.drover(&override_args)
        .env(CLOCK, clock.path())
        .run()
        .expect_code(0);
    for ds in ["agent-canary", "agent-blue", "agent-green"] {
        assert_eq!(image(&env, ds), "registry.example/agent:v2", "{ds}");
    }
    let recs = records(a.state.path());
    let last = recs.last().unwrap();
    assert_eq!(
        (&last["kind"], &last["outcome"]),
        (&"commit".into(), &"applied".into())
    );
    let o = &last["freeze_override"];
    assert_eq!(o["reason"], "CVE-2026-1234 hotfix", "{last:#}");
    assert_eq!(
        o["windows"],
        serde_json::json!(["canary-hands-off", "weekend"]),
        "{last:#}"
    );
    assert_eq!(
        o["frozen_until"],
        "2026-06-08T06:00:00+02:00[Europe/Berlin]"
    );
    env.drover(&[
        "audit",
        "verify",
        "--state-dir",
        a.state.path().to_str().unwrap(),
    ])
    .run()
    .expect_code(0);
}
