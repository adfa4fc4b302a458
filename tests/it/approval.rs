//! Plan-bound apply on the testbed (`sync --require-approved-plan`): a merge that
//! carries the digest `drover diff` printed for its PR is applied; a merge whose
//! change grew after the approval (another merge landed in between) is refused,
//! naming the objects nobody approved, with no DaemonSet written; and drift from
//! the last applied commit is still corrected while the refused head waits.

use std::path::Path;
use std::time::Duration;

use git2::IndexAddOption;

use crate::harness::{FleetYaml, Remote, Repo, Run, TestEnv, daemon, records};

/// Commits the work tree with exactly `parents`; moves HEAD only when `on_head`.
fn commit_with(repo: &Repo, parents: &[&str], message: &str, on_head: bool) -> String {
    let mut index = repo.git.index().unwrap();
    index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
    index.update_all(["*"], None).unwrap();
    index.write().unwrap();
    let tree = repo.git.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = repo.signature("Fleet Tester", "tester@example.com");
    let parents: Vec<git2::Commit<'_>> = parents
        .iter()
        .map(|p| {
            repo.git
                .find_commit(git2::Oid::from_str(p).unwrap())
                .unwrap()
        })
        .collect();
    let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    let update = on_head.then_some("HEAD");
    repo.git
        .commit(update, &sig, &sig, message, &tree, &refs)
        .unwrap()
        .to_string()
}

/// The digest `drover diff --format json` prints for base..head.
fn digest(env: &TestEnv, repo: &Repo, base: &str, head: &str) -> String {
    let run = env
        .drover(&[
            "diff",
            "--repo",
            &repo.path_str(),
            "--base",
            base,
            "--head",
            head,
            "--format",
            "json",
        ])
        .run();
    run.expect_code(2);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    plan["plan_digest"]
        .as_str()
        .expect("a plan digest")
        .to_string()
}

fn sync_once(env: &TestEnv, remote: &Remote, state: &Path) -> Run {
    env.drover(&[
        "sync",
        "--repo",
        &remote.path_str(),
        "--state-dir",
        state.to_str().unwrap(),
        "--once",
        "--require-approved-plan",
    ])
    .run()
}

#[test]
fn an_approved_merge_is_applied_a_grown_one_is_refused_by_object_and_drift_is_still_corrected() {
    let env = TestEnv::new("approval");
    env.nodes("n", 2, &[]);
    let work = Repo::new();
    let remote = Remote::new();
    let state = tempfile::tempdir().unwrap();
    let fleet = FleetYaml::one_group(&env.ns, "every", Some("60s")).yaml();

    work.write("README.md", "the fleet\n");
    let a = work.commit("readme");
    // PR 1 adds the fleet; its merge carries the digest of the PR's diff.
    work.write("drover.yaml", &fleet);
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    let b = commit_with(&work, &[&a], "add the fleet", false);
    let d1 = digest(&env, &work, &a, &b);
    let m1 = commit_with(
        &work,
        &[&a, &b],
        &format!("Merge pr 1\n\nDrover-Plan: {d1}\n"),
        true,
    );
    work.push(&remote);
    let first = sync_once(&env, &remote, state.path());
    first.expect_code(0);
    assert!(
        env.images().values().all(|i| i.ends_with("agent:v1")),
        "{}",
        first.report()
    );

    // PR 2 bumps the image and is reviewed against m1.
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", ""),
    );
    let c = commit_with(&work, &[&m1], "agent v2", false);
    let d2 = digest(&env, &work, &m1, &c);
    // PR 3 (a new daemon) is merged first, and drover does not run in between.
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    work.write(
        "daemons/logs.yaml",
        daemon("logs", "registry.example/logs:v1", ""),
    );
    let d = commit_with(&work, &[&m1], "add logs", false);
    let m2 = commit_with(&work, &[&m1, &d], "Merge pr 3", true);
    // Then PR 2 is merged with the digest its review approved.
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", ""),
    );
    let m3 = commit_with(
        &work,
        &[&m2, &c],
        &format!("Merge pr 2\n\nDrover-Plan: {d2}\n"),
        true,
    );
    work.push(&remote);

    let audit = env.tb.audit();
    let mark = audit.mark();
    let refused = sync_once(&env, &remote, state.path());
    refused.expect_code(1);
    let recs = records(state.path());
    let last = recs.last().unwrap();
    assert_eq!(last["commit"]["sha"], m3.as_str(), "{recs:#?}");
    assert_eq!(last["outcome"], "refused", "{recs:#?}");
    let reason = last["reason"].as_str().unwrap();
    let logs = format!("DaemonSet/{}/logs-every: create", env.ns);
    assert!(
        reason.contains(&logs) && reason.contains("was not approved"),
        "{reason}"
    );
    assert!(
        !reason.contains("agent-every"),
        "the approved change is not named: {reason}"
    );
    assert!(
        env.images().values().all(|i| i.ends_with("agent:v1")),
        "nothing applied"
    );
    // A marker write proves the audit log has caught up; no DaemonSet was written.
    env.kubectl(&["-n", &env.ns, "create", "configmap", "approval-marker"])
        .expect_code(0);
    env.wait_for(
        "the marker in the API audit log",
        Duration::from_secs(60),
        || {
            audit
                .since(mark)
                .iter()
                .any(|e| e.name == "approval-marker")
        },
    );
    let ds_writes: Vec<String> = audit
        .since(mark)
        .iter()
        .filter(|e| e.namespace == env.ns && e.resource == "daemonsets" && e.is_write())
        .map(|e| format!("{} {}", e.verb, e.name))
        .collect();
    assert!(ds_writes.is_empty(), "{ds_writes:?}");

    // The refused head waits; the last applied commit is still kept.
    env.kubectl(&[
        "-n",
        &env.ns,
        "delete",
        "daemonset",
        "agent-every",
        "--wait=true",
    ])
    .expect_code(0);
    let repaired = sync_once(&env, &remote, state.path());
    repaired.expect_code(0);
    assert_eq!(
        env.images().get("agent-every").map(String::as_str),
        Some("registry.example/agent:v1"),
        "{}",
        repaired.report()
    );
    let recs = records(state.path());
    let last = recs.last().unwrap();
    assert_eq!(last["kind"], "drift", "{recs:#?}");
    assert_eq!(last["commit"]["sha"], m1.as_str(), "{recs:#?}");
}
