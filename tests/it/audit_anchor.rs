//! The audit trail's anchor on the real local control plane: `drover audit verify`
//! fails after the last record is removed, whether `state.json` is intact, deleted,
//! corrupted or rewritten to match; it says which anchors it checked; and `drover
//! sync` refuses to extend a trail that lost records (in its local cache and in
//! the cluster copy, which is otherwise where the cache is restored from).

use std::path::Path;

use crate::harness::{FleetYaml, Remote, Repo, Run, TestEnv, daemon};

struct Setup {
    env: TestEnv<'static>,
    work: Repo,
    remote: Remote,
    state: tempfile::TempDir,
}

fn setup(test: &str) -> Setup {
    let env = TestEnv::new(test);
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("blue", 1, &[("role", "blue")]);
    env.nodes("green", 1, &[]);
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
    Setup {
        env,
        work,
        remote,
        state: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    /// `sync --once`, its anchor in the test's namespace.
    fn sync_once(&self) -> Run {
        self.env
            .drover(&[
                "sync",
                "--repo",
                self.remote.path().to_str().unwrap(),
                "--state-dir",
                self.state.path().to_str().unwrap(),
                "--audit-anchor-namespace",
                &self.env.ns,
                "--once",
            ])
            .run()
    }

    fn verify(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "audit",
            "verify",
            "--state-dir",
            self.state.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.env.drover(&args).run()
    }

    fn push_image(&self, version: &str) {
        self.work.write(
            "daemons/agent.yaml",
            daemon("agent", &format!("registry.example/agent:{version}"), ""),
        );
        self.work.commit(&format!("agent {version}"));
        self.work.push(&self.remote);
    }

    fn file(&self, name: &str) -> std::path::PathBuf {
        self.state.path().join(name)
    }
}

/// The audit log without its last line.
fn without_last_record(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    lines[..lines.len() - 1].join("\n") + "\n"
}

/// `state.json` rewritten as its owner could: its head hash set to the new last line.
fn forged_state(state: &[u8], log_text: &str) -> Vec<u8> {
    use sha2::Digest as _;
    let mut v: serde_json::Value = serde_json::from_slice(state).unwrap();
    let last = log_text.lines().last().unwrap();
    v["audit_head"] = hex::encode(sha2::Sha256::digest(last.as_bytes())).into();
    serde_json::to_vec_pretty(&v).unwrap()
}

fn anchor_removal_message(r: &Run) -> bool {
    r.stderr
        .contains("but its anchor counts 2: records were removed from the end")
}

#[test]
fn audit_verify_fails_after_the_last_record_is_removed_whatever_state_json_says() {
    let s = setup("anchor-verify");
    s.sync_once().expect_code(0);
    s.push_image("v2");
    s.sync_once().expect_code(0);
    let log = s.file("audit.jsonl");
    let state = s.file("state.json");
    let (original_log, original_state) =
        (std::fs::read(&log).unwrap(), std::fs::read(&state).unwrap());

    let r = s.verify(&[]);
    r.expect_code(0);
    assert!(
        r.stdout.contains(&format!(
            "checked: the anchor configmap {}/drover-audit-",
            s.env.ns
        )) && r.stdout.contains("it counts 2 record(s)")
            && r.stdout.contains("state.json: its head hash is record 2")
            && r.stdout.contains("checked: the hash chain of 2 record(s)")
            && r.stdout.contains("audit trail intact: 2 record(s)"),
        "{}",
        r.stdout
    );
    let anchors = s.env.kubectl(&[
        "-n",
        &s.env.ns,
        "get",
        "configmaps",
        "-l",
        "drover.dev/audit-anchor=true",
        "-o",
        "name",
    ]);
    assert_eq!(anchors.stdout.lines().count(), 1, "{}", anchors.stdout);

    let shortened = without_last_record(&log);
    std::fs::write(&log, &shortened).unwrap();
    // state.json intact: both it and the anchor catch it.
    let r = s.verify(&[]);
    r.expect_code(1);
    assert!(r.stderr.contains("last record"), "{}", r.stderr);
    assert!(anchor_removal_message(&r), "{}", r.stderr);

    // state.json deleted: an error, never a skip; the anchor still catches it.
    std::fs::remove_file(&state).unwrap();
    let r = s.verify(&[]);
    r.expect_code(1);
    assert!(r.stderr.contains("state.json: missing"), "{}", r.stderr);
    assert!(anchor_removal_message(&r), "{}", r.stderr);

    // state.json corrupted.
    std::fs::write(&state, b"{\"last_applied\": tru").unwrap();
    let r = s.verify(&[]);
    r.expect_code(1);
    assert!(r.stderr.contains("corrupt state file"), "{}", r.stderr);
    assert!(anchor_removal_message(&r), "{}", r.stderr);

    // state.json rewritten to match the shortened trail: only the anchor knows.
    std::fs::write(&state, forged_state(&original_state, &shortened)).unwrap();
    let r = s.verify(&[]);
    r.expect_code(1);
    assert!(
        r.stdout.contains("state.json: its head hash is record 1"),
        "{}",
        r.stdout
    );
    assert!(anchor_removal_message(&r), "{}", r.stderr);
    // Offline, it says the anchor was not checked.
    let r = s.verify(&["--offline"]);
    r.expect_code(0);
    assert!(
        r.stdout.contains(&format!(
            "not checked: the anchor configmap {}/drover-audit-",
            s.env.ns
        )) && r.stdout.contains("(--offline)"),
        "{}",
        r.stdout
    );

    // Every record removed, state.json deleted.
    std::fs::write(&log, "").unwrap();
    std::fs::remove_file(&state).unwrap();
    s.verify(&[]).expect_code(1);

    std::fs::write(&log, &original_log).unwrap();
    std::fs::write(&state, &original_state).unwrap();
    s.verify(&[]).expect_code(0);
}

#[test]
fn sync_refuses_to_extend_a_trail_that_lost_its_last_record() {
    let s = setup("anchor-sync");
    s.sync_once().expect_code(0);
    s.push_image("v2");
    s.sync_once().expect_code(0);
    let log = s.file("audit.jsonl");
    let state = s.file("state.json");
    // Whoever can write both the state directory and the cluster copy removes the
    // last record from both, and rewrites both states' head to match.
    let shortened = without_last_record(&log);
    std::fs::write(&log, &shortened).unwrap();
    let forged = forged_state(&std::fs::read(&state).unwrap(), &shortened);
    std::fs::write(&state, &forged).unwrap();
    s.env
        .kubectl(&[
            "-n",
            &s.env.ns,
            "delete",
            "configmap",
            &format!("drover-trail-{}-0000000002", s.env.state_name()),
        ])
        .expect_code(0);
    let state_json =
        serde_json::to_string(&serde_json::from_slice::<serde_json::Value>(&forged).unwrap())
            .unwrap();
    s.env
        .kubectl(&[
            "-n",
            &s.env.ns,
            "patch",
            "configmap",
            &format!("drover-state-{}", s.env.state_name()),
            "--type=merge",
            "-p",
            &serde_json::json!({"data": {"state": state_json}}).to_string(),
        ])
        .expect_code(0);
    // `audit verify` of the cluster copy finds it.
    let r = s
        .env
        .drover(&["audit", "verify", "--audit-anchor-namespace", &s.env.ns])
        .run();
    r.expect_code(1);
    assert!(
        r.stdout.contains("read the cluster copy") && anchor_removal_message(&r),
        "{}\n{}",
        r.stdout,
        r.stderr
    );

    s.push_image("v3");
    let r = s.sync_once();
    r.expect_code(1);
    assert!(
        r.stderr.contains("does not fit its anchor configmap")
            && r.stderr.contains("records were removed from the end"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        shortened,
        "no record was added to the shortened trail"
    );
    assert!(
        s.env.images().values().all(|i| i.ends_with("agent:v2")),
        "nothing was rolled out: {:?}",
        s.env.images()
    );
}

#[test]
fn a_sync_of_another_repository_does_not_adopt_the_cluster_state_of_the_first() {
    let s = setup("state-other-source");
    s.sync_once().expect_code(0);
    // The same fleet pushed to a second repository, synced under the same
    // --state-name from an empty state directory.
    let other = Remote::new();
    s.work.push(&other);
    let fresh = tempfile::tempdir().unwrap();
    let r = s
        .env
        .drover(&[
            "sync",
            "--repo",
            other.path().to_str().unwrap(),
            "--state-dir",
            fresh.path().to_str().unwrap(),
            "--audit-anchor-namespace",
            &s.env.ns,
            "--once",
        ])
        .run();
    r.expect_code(1);
    assert!(
        r.stderr.contains("holds the state of a sync of")
            && r.stderr.contains("pass another --state-name"),
        "{}",
        r.stderr
    );
    assert!(
        !fresh.path().join("audit.jsonl").exists(),
        "the other sync's trail was copied into this one's cache"
    );
}

#[test]
fn a_no_op_sync_writes_nothing_and_reads_the_cluster_copy_whole_once_it_changed() {
    let s = setup("state-unchanged");
    s.sync_once().expect_code(0);
    s.push_image("v2");
    s.sync_once().expect_code(0);
    let log = s.file("audit.jsonl");
    let whole = std::fs::read_to_string(&log).unwrap();
    assert_eq!(whole.lines().count(), 2, "{whole}");

    // Nothing changed anywhere: nothing is written, not even the state object.
    let audit = s.env.tb.audit();
    let mark = audit.mark();
    s.sync_once().expect_code(0);
    // This test's namespace only: other tests' syncs run at the same time.
    let writes: Vec<String> = audit
        .since(mark)
        .into_iter()
        .filter(|e| e.by_drover() && e.is_write() && e.namespace == s.env.ns)
        .map(|e| format!("{} {}", e.verb, e.uri))
        .collect();
    assert!(writes.is_empty(), "a no-op sync wrote: {writes:?}");

    // The cache lost a record the cluster copy has: it is restored from the cluster.
    std::fs::write(&log, without_last_record(&log)).unwrap();
    s.sync_once().expect_code(0);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), whole);

    // The state object changed behind the cache's back (here: another sync's): the
    // cache is not trusted, the object is read, and its owner is told apart.
    s.env
        .kubectl(&[
            "-n",
            &s.env.ns,
            "patch",
            "configmap",
            &format!("drover-state-{}", s.env.state_name()),
            "--type=merge",
            "-p",
            r#"{"data": {"source": "/elsewhere main "}}"#,
        ])
        .expect_code(0);
    let r = s.sync_once();
    r.expect_code(1);
    assert!(
        r.stderr.contains("holds the state of a sync of /elsewhere"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_running_sync_whose_cache_is_deleted_reads_the_cluster_copy_again_and_records_nothing_twice() {
    let s = setup("state-cache-gone");
    let mut sync = s
        .env
        .drover(&[
            "-v",
            "sync",
            "--repo",
            s.remote.path().to_str().unwrap(),
            "--state-dir",
            s.state.path().to_str().unwrap(),
            "--audit-anchor-namespace",
            &s.env.ns,
            "--interval",
            "1s",
        ])
        .spawn_lines();
    sync.wait_for_line(&["commit done"], std::time::Duration::from_secs(120));
    sync.wait_for_line(&["up to date"], std::time::Duration::from_secs(30));
    let log = s.file("audit.jsonl");
    let whole = std::fs::read_to_string(&log).unwrap();
    assert_eq!(whole.lines().count(), 1, "{whole}");
    // The cache goes away under the running process (a wiped volume).
    std::fs::remove_file(&log).unwrap();
    std::fs::remove_file(s.file("state.json")).unwrap();
    // Two whole iterations later: the cache is the cluster copy again, and the
    // commit was not taken for a new one (no second record, no error).
    sync.wait_for_line(
        &["the local state is the cluster copy"],
        std::time::Duration::from_secs(30),
    );
    sync.wait_for_line(&["up to date"], std::time::Duration::from_secs(30));
    sync.wait_for_line(&["up to date"], std::time::Duration::from_secs(30));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), whole);
    let records = s.env.kubectl(&[
        "-n",
        &s.env.ns,
        "get",
        "configmaps",
        "-l",
        &format!("drover.dev/trail={},drover.dev/seq", s.env.state_name()),
        "-o",
        "name",
    ]);
    records.expect_code(0);
    assert_eq!(records.stdout.lines().count(), 1, "{}", records.stdout);
    let printed = sync.stderr();
    assert!(!printed.contains("ERROR"), "{printed}");
}
