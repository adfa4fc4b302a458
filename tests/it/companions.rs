//! Companion objects (`companions/`) against the testbed. drover validates, plans
//! (`drover plan`: labelled LISTs and server-side dry runs) and applies them (`drover
//! apply` and every `sync` iteration: before the stage that uses them, restored when
//! they drift, put back by a rollback, pruned after), in the order the API server's
//! audit log shows; a companion drover's rules refuse (a kind outside the allow-list,
//! a Secret, a binding to cluster-admin) is refused at its file and line with nothing
//! written.

use crate::harness::{AuditEvent, FleetYaml, Remote, Repo, Run, TestEnv, daemon};

fn service_account() -> &'static str {
    "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: agent\n"
}

fn cluster_role(ns: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {ns}-agent\nrules:\n  - apiGroups: [\"\"]\n    resources: [nodes]\n    verbs: [get, list]\n"
    )
}

/// The test's fleet (one group, one stage) with daemon `agent`, committed.
fn fleet(env: &TestEnv, companions: &[(&str, &str)]) -> Repo {
    let repo = Repo::new();
    repo.write(
        "drover.yaml",
        FleetYaml::one_group(&env.ns, "every", Some("60s")).yaml(),
    );
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    for (path, text) in companions {
        repo.write(path, text);
    }
    repo.commit("fleet with companions");
    repo
}

/// drover's writes that persisted something in the test's namespace or to a
/// cluster-scoped object named after it.
fn drovers_writes(events: &[AuditEvent], ns: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.is_write() && e.by_drover())
        .filter(|e| e.namespace == ns || (e.namespace.is_empty() && e.name.starts_with(ns)))
        .map(|e| format!("{} {}/{}/{}", e.verb, e.resource, e.namespace, e.name))
        .collect()
}

fn refused_at(run: &Run, positions: &[&str], what: &str) {
    run.expect_code(1);
    for p in positions {
        assert!(run.stderr.contains(p), "{p} not named: {}", run.stderr);
    }
    assert!(run.stderr.contains(what), "{what} not said: {}", run.stderr);
}

/// `drover -v sync --once` of `remote` with its state in `state`.
fn sync_once(env: &TestEnv, remote: &Remote, state: &std::path::Path) -> Run {
    env.drover(&crate::harness::sync_once_args(remote, state))
        .run()
}

/// The position in `events` of drover's first successful write of `resource`
/// `name` in namespace `ns` (or cluster-scoped).
fn first_write(events: &[AuditEvent], ns: &str, resource: &str, name: &str) -> Option<usize> {
    events.iter().position(|e| {
        e.is_write()
            && e.by_drover()
            && e.resource == resource
            && e.name == name
            && (e.namespace == ns || e.namespace.is_empty())
            && e.code < 300
    })
}

#[test]
fn a_fleet_with_valid_companions_is_validated_and_planned_with_nothing_written() {
    let env = TestEnv::new("companions-validated");
    env.nodes("n", 2, &[]);
    let role = cluster_role(&env.ns);
    let repo = fleet(
        &env,
        &[
            (
                "companions/agent/serviceaccount-agent.yaml",
                service_account(),
            ),
            ("companions/clusterrole-agent.yaml", &role),
        ],
    );
    let validated = env.drover(&["validate", "--repo", &repo.path_str()]).run();
    validated.expect_code(0);
    assert!(
        validated
            .stderr
            .contains("2 companion object(s) under companions/ are valid"),
        "{}",
        validated.stderr
    );
    let audit = env.tb.audit();
    let mark = audit.mark();
    // `plan` shows them, and writes nothing.
    let planned = env.drover(&["plan", "--repo", &repo.path_str()]).run();
    planned.expect_code(2);
    assert!(
        planned
            .stdout
            .contains(&format!("+  ServiceAccount/{}/agent", env.ns)),
        "{}",
        planned.report()
    );
    let writes = drovers_writes(&audit.since(mark), &env.ns);
    assert!(writes.is_empty(), "plan wrote: {writes:?}");
}

#[test]
fn sync_creates_a_companion_service_account_and_cluster_role_before_the_daemonset_that_uses_them_restores_them_when_edited_or_deleted_updates_them_in_place_and_prunes_one_removed_from_git_with_its_daemon_or_the_last_one()
 {
    let env = TestEnv::new("companions-sync");
    env.nodes("n", 2, &[]);
    let ns = env.ns.clone();
    let role_name = format!("{ns}-agent");
    let repo = Repo::new();
    repo.write(
        "drover.yaml",
        FleetYaml::one_group(&ns, "every", Some("60s")).yaml(),
    );
    repo.write(
        "daemons/agent.yaml",
        daemon(
            "agent",
            "registry.example/agent:v1",
            "  serviceAccountName: agent\n",
        ),
    );
    repo.write(
        "companions/agent/serviceaccount-agent.yaml",
        service_account(),
    );
    repo.write("companions/clusterrole-agent.yaml", cluster_role(&ns));
    repo.write(
        "daemons/helper.yaml",
        daemon("helper", "registry.example/helper:v1", ""),
    );
    repo.write(
        "companions/helper/configmap-helper.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: helper\ndata: {level: info}\n",
    );
    repo.commit("agent with its ServiceAccount and ClusterRole; helper with its ConfigMap");
    let remote = Remote::new();
    repo.push(&remote);
    let state = tempfile::tempdir().unwrap();

    // Created before the DaemonSet whose pods use them (the API server's audit log).
    let audit = env.tb.audit();
    let mark = audit.mark();
    let synced = sync_once(&env, &remote, state.path());
    synced.expect_code(0);
    let events = audit.since(mark);
    let at = |resource: &str, name: &str| {
        first_write(&events, &ns, resource, name)
            .unwrap_or_else(|| panic!("drover wrote no {resource}/{name}: {}", synced.report()))
    };
    let (sa, cr, ds) = (
        at("serviceaccounts", "agent"),
        at("clusterroles", &role_name),
        at("daemonsets", "agent-every"),
    );
    assert!(
        sa < ds && cr < ds,
        "the companions were not written before the DaemonSet (sa {sa}, clusterrole {cr}, daemonset {ds})"
    );
    at("configmaps", "helper");
    let uid = |kind: &str, name: &str| {
        env.kubectl(&[
            "get",
            kind,
            name,
            "-n",
            &ns,
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .stdout
        .trim()
        .to_string()
    };
    let verbs = || {
        env.kubectl(&[
            "get",
            "clusterrole",
            &role_name,
            "-o",
            "jsonpath={.rules[0].verbs}",
        ])
        .stdout
        .trim()
        .to_string()
    };
    assert_eq!(verbs(), r#"["get","list"]"#);
    let role_uid = uid("clusterrole", &role_name);
    assert!(!role_uid.is_empty());

    // Drift: an operator's kubectl edit of one companion and delete of another is put
    // back by the next iteration (the drift run), as a DaemonSet's would be.
    env.kubectl(&[
        "patch",
        "clusterrole",
        &role_name,
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/rules/0/verbs","value":["get"]}]"#,
    ])
    .expect_code(0);
    env.kubectl(&["delete", "serviceaccount", "agent", "-n", &ns])
        .expect_code(0);
    assert_eq!(verbs(), r#"["get"]"#);
    let drift = sync_once(&env, &remote, state.path());
    drift.expect_code(0);
    assert_eq!(verbs(), r#"["get","list"]"#, "{}", drift.report());
    assert_eq!(uid("clusterrole", &role_name), role_uid);
    assert!(
        !uid("serviceaccount", "agent").is_empty(),
        "the deleted ServiceAccount was not restored: {}",
        drift.report()
    );
    let recs = crate::harness::records(state.path());
    let last = recs.last().unwrap();
    assert_eq!(last["kind"], "drift", "{recs:#?}");
    assert_eq!(last["outcome"], "applied", "{recs:#?}");

    // Updated in place by a commit that changes only a companion: the same object,
    // the new rules, and an audit digest that differs from the last one's.
    let digest_before = last["plan"]["manifests_digest"].clone();
    repo.edit(
        "companions/clusterrole-agent.yaml",
        "verbs: [get, list]",
        "verbs: [get, list, watch]",
    );
    repo.commit("watch nodes too");
    repo.push(&remote);
    sync_once(&env, &remote, state.path()).expect_code(0);
    assert_eq!(verbs(), r#"["get","list","watch"]"#);
    assert_eq!(uid("clusterrole", &role_name), role_uid);
    let recs = crate::harness::records(state.path());
    let last = recs.last().unwrap();
    assert_eq!(last["kind"], "commit", "{recs:#?}");
    assert_eq!(last["outcome"], "applied", "{recs:#?}");
    assert_ne!(
        last["plan"]["manifests_digest"], digest_before,
        "the audit digest does not cover the companion"
    );

    // Removed from git: pruned once, by drover, with its uid as precondition.
    repo.remove("companions/clusterrole-agent.yaml");
    repo.commit("no ClusterRole");
    repo.push(&remote);
    let mark = audit.mark();
    let pruned = sync_once(&env, &remote, state.path());
    pruned.expect_code(0);
    let gone = env.kubectl(&["get", "clusterrole", &role_name]);
    assert_ne!(
        gone.code, 0,
        "the ClusterRole is still there: {}",
        gone.stdout
    );
    let deleted: Vec<AuditEvent> = audit
        .since(mark)
        .into_iter()
        .filter(|e| {
            e.verb == "delete"
                && e.by_drover()
                && e.resource == "clusterroles"
                && e.name == role_name
        })
        .collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    let recs = crate::harness::records(state.path());
    let pruned_list = recs.last().unwrap()["pruned"].to_string();
    assert!(
        pruned_list.contains(&format!(
            "ClusterRole.rbac.authorization.k8s.io/{role_name}"
        )),
        "{pruned_list}"
    );
    assert!(!uid("serviceaccount", "agent").is_empty());

    // A daemon removed from git takes its companions with it.
    assert!(!uid("configmap", "helper").is_empty());
    repo.remove("daemons/helper.yaml");
    repo.remove("companions/helper/configmap-helper.yaml");
    repo.commit("no helper");
    repo.push(&remote);
    sync_once(&env, &remote, state.path()).expect_code(0);
    let left = env.kubectl(&["get", "configmap,daemonset", "-n", &ns, "-o", "name"]);
    assert!(
        !left.stdout.contains("configmap/helper") && !left.stdout.contains("helper-every"),
        "{}",
        left.stdout
    );
    assert!(left.stdout.contains("agent-every"), "{}", left.stdout);

    // The last companion removed from git is pruned too: the last applied commit had
    // companions, so the iteration still lists them.
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    repo.remove("companions/agent/serviceaccount-agent.yaml");
    repo.commit("no companions at all");
    repo.push(&remote);
    let last = sync_once(&env, &remote, state.path());
    last.expect_code(0);
    assert!(
        uid("serviceaccount", "agent").is_empty(),
        "the last companion was not pruned: {}",
        last.report()
    );
}

/// How a rollback scenario rolls out each commit: `sync --once` of a remote, or
/// `drover apply` of the work tree's repository.
enum Roll {
    Sync(Remote, tempfile::TempDir),
    /// As `Sync`, but from the second rollout on the first `sync --once` is killed
    /// (SIGKILL) once its stage has started, after its companions were applied, and
    /// the next one resumes it.
    SyncKilled(Remote, tempfile::TempDir, std::cell::Cell<u32>),
    Apply,
}

impl Roll {
    /// Rolls out `repo`'s head; with `sync`, the last audit record's outcome.
    fn out(&self, env: &TestEnv, repo: &Repo) -> (Run, Option<String>) {
        match self {
            Roll::Sync(remote, state) | Roll::SyncKilled(remote, state, _) => {
                repo.push(remote);
                if let Roll::SyncKilled(_, _, rolled) = self {
                    rolled.set(rolled.get() + 1);
                    if rolled.get() > 1 {
                        crate::harness::kill_sync_once_at(
                            env,
                            remote,
                            state.path(),
                            &["stage started"],
                        );
                    }
                }
                let run = sync_once(env, remote, state.path());
                let recs = crate::harness::records(state.path());
                let outcome = recs
                    .last()
                    .and_then(|r| r["outcome"].as_str())
                    .map(str::to_string);
                (run, outcome)
            }
            Roll::Apply => (
                env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
                    .run(),
                None,
            ),
        }
    }
}

/// v1 with its ServiceAccount rolled out, then v2 that never becomes ready (the
/// testbed's fail-ready stage), updates the ServiceAccount and brings a new
/// ConfigMap, with `onFailure: rollback`: the rollback puts the ServiceAccount back
/// (the same object, v1's manifest) and deletes the ConfigMap v1 did not have.
fn companions_roll_back_with_their_stage(env: &TestEnv, roll: &Roll) {
    env.nodes("n", 2, &[]);
    let ns = env.ns.clone();
    let repo = Repo::new();
    repo.write(
        "drover.yaml",
        FleetYaml::one_group(&ns, "every", Some("10s"))
            .on_failure("rollback")
            .yaml(),
    );
    repo.write(
        "daemons/agent.yaml",
        daemon(
            "agent",
            "registry.example/agent:v1",
            "  serviceAccountName: agent\n",
        ),
    );
    repo.write(
        "companions/agent/serviceaccount-agent.yaml",
        service_account(),
    );
    repo.commit("agent v1 with its ServiceAccount");
    roll.out(env, &repo).0.expect_code(0);
    let sa_uid = env
        .kubectl(&[
            "get",
            "serviceaccount",
            "agent",
            "-n",
            &ns,
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .stdout;

    repo.write(
        "daemons/agent.yaml",
        daemon(
            "agent",
            "registry.example/agent:v2",
            "  serviceAccountName: agent\n  podTemplate:\n    metadata:\n      labels: {drover.test/fail-ready: \"true\"}\n",
        ),
    );
    repo.write(
        "companions/agent/serviceaccount-agent.yaml",
        format!("{}automountServiceAccountToken: false\n", service_account()),
    );
    repo.write(
        "companions/agent/configmap-agent.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: agent-v2\ndata: {level: debug}\n",
    );
    repo.commit("agent v2, broken, with a new ConfigMap");
    let audit = env.tb.audit();
    let mark = audit.mark();
    let (failed, outcome) = roll.out(env, &repo);
    match outcome {
        Some(o) => assert_eq!(o, "rolled-back", "{}", failed.report()),
        None => {
            failed.expect_code(1);
            assert!(
                failed.stdout.contains("outcome: rolled-back"),
                "{}",
                failed.report()
            );
        }
    }
    let events = audit.since(mark);
    // The failed commit did write both before its stage ...
    assert!(
        first_write(&events, &ns, "configmaps", "agent-v2").is_some(),
        "{}",
        failed.report()
    );
    assert!(
        first_write(&events, &ns, "serviceaccounts", "agent").is_some(),
        "{}",
        failed.report()
    );
    // ... and the rollback put the ServiceAccount back (the same object) and deleted
    // the ConfigMap the previous commit did not have.
    let sa = env.get_json(&["serviceaccount", "agent"]);
    assert_eq!(
        sa["automountServiceAccountToken"],
        serde_json::Value::Null,
        "{sa:#}\n{}",
        failed.report()
    );
    assert_eq!(sa["metadata"]["uid"].as_str(), Some(sa_uid.trim()));
    let cm = env.kubectl(&["get", "configmap", "agent-v2", "-n", &ns]);
    assert_ne!(
        cm.code, 0,
        "the new ConfigMap survived the rollback: {}",
        cm.stdout
    );
    assert_eq!(env.images()["agent-every"], "registry.example/agent:v1");
}

#[test]
fn a_rolled_back_sync_puts_the_companions_the_failed_commit_changed_back_as_the_last_applied_commit_had_them()
 {
    let env = TestEnv::new("companions-rollback");
    let roll = Roll::Sync(Remote::new(), tempfile::tempdir().unwrap());
    companions_roll_back_with_their_stage(&env, &roll);
}

#[test]
fn a_rollback_resumed_after_a_crash_puts_back_the_companions_the_crashed_run_applied() {
    let env = TestEnv::new("companions-rollback-crash");
    let roll = Roll::SyncKilled(
        Remote::new(),
        tempfile::tempdir().unwrap(),
        std::cell::Cell::new(0),
    );
    companions_roll_back_with_their_stage(&env, &roll);
}

#[test]
fn a_rolled_back_apply_puts_the_companions_back_as_the_commit_of_the_live_daemonsets_had_them() {
    let env = TestEnv::new("companions-rollback-apply");
    companions_roll_back_with_their_stage(&env, &Roll::Apply);
}

#[test]
fn sync_refuses_a_commit_whose_companion_has_the_name_of_an_object_the_fleet_does_not_own_and_writes_nothing()
 {
    let env = TestEnv::new("companions-sync-foreign");
    env.nodes("n", 1, &[]);
    let ns = env.ns.clone();
    // Someone else's ServiceAccount `agent`, without drover's labels.
    env.kubectl(&["create", "serviceaccount", "agent", "-n", &ns])
        .expect_code(0);
    let repo = fleet(
        &env,
        &[(
            "companions/agent/serviceaccount-agent.yaml",
            service_account(),
        )],
    );
    let remote = Remote::new();
    repo.push(&remote);
    let state = tempfile::tempdir().unwrap();
    let audit = env.tb.audit();
    let mark = audit.mark();
    let run = sync_once(&env, &remote, state.path());
    let recs = crate::harness::records(state.path());
    let last = recs.last().unwrap_or_else(|| panic!("{}", run.report()));
    assert_eq!(last["outcome"], "refused", "{}", run.report());
    let reason = last["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("ServiceAccount/{ns}/agent"))
            && reason.contains("not the fleet's"),
        "{reason}"
    );
    // drover's own bookkeeping (the state's and trail's ConfigMaps) aside.
    let persisted: Vec<String> = drovers_writes(&audit.since(mark), &ns)
        .into_iter()
        .filter(|w| w.contains("daemonsets/") || w.contains("serviceaccounts/"))
        .collect();
    assert!(persisted.is_empty(), "drover wrote: {persisted:?}");
    let labels = env.kubectl(&[
        "get",
        "serviceaccount",
        "agent",
        "-n",
        &ns,
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(
        !labels.stdout.contains("drover.dev/fleet"),
        "the ServiceAccount was taken over: {}",
        labels.stdout
    );
}

#[test]
fn a_companion_outside_the_allow_list_a_secret_and_a_cluster_admin_binding_are_refused_with_file_and_line_and_nothing_written()
 {
    let env = TestEnv::new("companions-policy");
    env.nodes("n", 2, &[]);
    let binding = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {}-agent\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n  - {{kind: ServiceAccount, name: agent, namespace: {}}}\n",
        env.ns, env.ns
    );
    let cases = [
        (
            "companions/agent/deployment-agent.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: agent\nspec: {}\n".to_string(),
            "companions/agent/deployment-agent.yaml:2:7",
            "kind `Deployment` of `apps/v1` is not allowed as a companion",
        ),
        (
            "companions/agent/secret-agent.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: agent\nstringData: {token: hunter2}\n".to_string(),
            "companions/agent/secret-agent.yaml:2:7",
            "a `Secret` cannot be a companion",
        ),
        (
            "companions/agent/clusterrolebinding-agent.yaml",
            binding,
            "companions/agent/clusterrolebinding-agent.yaml:8:9",
            "grants `cluster-admin`",
        ),
    ];
    let audit = env.tb.audit();
    for (path, text, at, why) in &cases {
        let repo = fleet(&env, &[(path, text)]);
        let mark = audit.mark();
        let validated = env.drover(&["validate", "--repo", &repo.path_str()]).run();
        refused_at(&validated, &[at], why);
        let applied = env
            .drover(&["apply", "--repo", &repo.path_str(), "--yes"])
            .run();
        refused_at(&applied, &[at], why);
        assert!(
            applied.stderr.contains("nothing was applied"),
            "{}",
            applied.stderr
        );
        let writes = drovers_writes(&audit.since(mark), &env.ns);
        assert!(writes.is_empty(), "{path}: drover wrote {writes:?}");
    }
    let secrets = env.kubectl(&["get", "secrets", "-n", &env.ns, "-o", "name"]);
    assert!(
        !secrets.stdout.contains("secret/agent"),
        "{}",
        secrets.stdout
    );
}

/// `ServiceAccount agent` as drover labels it for fleet `ns`, daemon `agent`, from
/// `companions/agent/serviceaccount-agent.yaml`: what an earlier apply left.
fn owned_service_account(ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: agent\n  namespace: {ns}\n  labels:\n    app.kubernetes.io/managed-by: drover\n    drover.dev/fleet: {ns}\n    drover.dev/daemon: agent\n  annotations:\n    drover.dev/source: companions/agent/serviceaccount-agent.yaml\n"
    )
}

#[test]
fn drover_plan_lists_the_fleets_live_companions_by_label_and_shows_each_created_updated_unchanged_or_deleted_after_a_server_side_dry_run()
 {
    let env = TestEnv::new("companions-plan");
    env.nodes("n", 1, &[]);
    let ns = env.ns.clone();
    let role = cluster_role(&ns);
    let repo = fleet(
        &env,
        &[
            (
                "companions/agent/serviceaccount-agent.yaml",
                service_account(),
            ),
            ("companions/clusterrole-agent.yaml", &role),
        ],
    );
    // Live: the ServiceAccount as drover would write it (server defaults added by
    // the API server), the ClusterRole with other rules, and a ConfigMap of the fleet
    // that git no longer has.
    env.kubectl_stdin(&["create", "-f", "-"], &owned_service_account(&ns))
        .expect_code(0);
    let live_role = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {ns}-agent\n  labels:\n    app.kubernetes.io/managed-by: drover\n    drover.dev/fleet: {ns}\n  annotations:\n    drover.dev/source: companions/clusterrole-agent.yaml\nrules:\n  - apiGroups: [\"\"]\n    resources: [nodes]\n    verbs: [get]\n"
    );
    env.kubectl_stdin(&["create", "-f", "-"], &live_role)
        .expect_code(0);
    let stale = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: agent-old\n  namespace: {ns}\n  labels:\n    app.kubernetes.io/managed-by: drover\n    drover.dev/fleet: {ns}\n    drover.dev/daemon: agent\n  annotations:\n    drover.dev/source: companions/agent/configmap-agent-old.yaml\ndata: {{a: b}}\n"
    );
    env.kubectl_stdin(&["create", "-f", "-"], &stale)
        .expect_code(0);
    // Not the fleet's: another fleet's ConfigMap is not listed.
    env.kubectl(&["create", "configmap", "other", "-n", &ns])
        .expect_code(0);

    let audit = env.tb.audit();
    let mark = audit.mark();
    let planned = env
        .drover(&["plan", "--repo", &repo.path_str(), "--format", "json"])
        .run();
    planned.expect_code(2);
    let v: serde_json::Value = serde_json::from_str(&planned.stdout).unwrap();
    let actions: Vec<(String, String)> = v["companions"]
        .as_array()
        .unwrap_or_else(|| panic!("no companions: {}", planned.report()))
        .iter()
        .map(|c| {
            (
                c["object"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            (
                format!("ClusterRole.rbac.authorization.k8s.io/{ns}-agent"),
                "update".to_string()
            ),
            (format!("ConfigMap/{ns}/agent-old"), "delete".to_string()),
            (
                format!("ServiceAccount/{ns}/agent"),
                "unchanged".to_string()
            ),
        ],
        "{}",
        planned.report()
    );
    assert!(
        v["companions"][0]["diff"]
            .as_str()
            .unwrap()
            .contains("+  - list"),
        "{}",
        planned.report()
    );
    let writes = drovers_writes(&audit.since(mark), &ns);
    assert!(writes.is_empty(), "plan wrote: {writes:?}");
    let text = env.drover(&["plan", "--repo", &repo.path_str()]).run();
    assert!(
        text.stdout
            .contains("companion objects: 0 to create, 1 to update, 1 to delete, 1 unchanged."),
        "{}",
        text.report()
    );

    // A companion whose name an object the fleet does not own has: refused.
    env.kubectl(&["delete", "serviceaccount", "agent", "-n", &ns])
        .expect_code(0);
    env.kubectl(&["create", "serviceaccount", "agent", "-n", &ns])
        .expect_code(0);
    let refused = env.drover(&["plan", "--repo", &repo.path_str()]).run();
    refused.expect_code(1);
    assert!(
        refused
            .stderr
            .contains(&format!("ServiceAccount/{ns}/agent"))
            && refused.stderr.contains("not the fleet's"),
        "{}",
        refused.report()
    );
    env.kubectl(&["delete", "clusterrole", &format!("{ns}-agent")])
        .expect_code(0);
}

#[test]
fn drover_plan_of_a_companion_whose_allowed_kind_the_cluster_does_not_serve_fails_naming_the_kind_with_nothing_written()
 {
    let env = TestEnv::new("companions-unserved");
    env.nodes("n", 1, &[]);
    let repo = Repo::new();
    repo.write(
        "drover.yaml",
        FleetYaml::one_group(&env.ns, "every", Some("60s"))
            .spec_lines("  companions:\n    allowKinds:\n      - {apiVersion: widgets.drover.test/v1, kind: Widget}\n")
            .yaml(),
    );
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    repo.write(
        "companions/agent/widget-agent.yaml",
        "apiVersion: widgets.drover.test/v1\nkind: Widget\nmetadata:\n  name: agent\nspec: {size: 1}\n",
    );
    repo.commit("a companion of a kind no CRD serves");
    let audit = env.tb.audit();
    let mark = audit.mark();
    let planned = env.drover(&["plan", "--repo", &repo.path_str()]).run();
    planned.expect_code(1);
    assert!(
        planned
            .stderr
            .contains("the cluster does not serve kind `Widget` of `widgets.drover.test/v1`"),
        "{}",
        planned.report()
    );
    assert!(planned.stdout.is_empty(), "{}", planned.report());
    let writes = drovers_writes(&audit.since(mark), &env.ns);
    assert!(writes.is_empty(), "plan wrote: {writes:?}");
}

#[test]
fn drover_apply_creates_a_companion_service_account_and_cluster_role_before_the_daemonset_that_uses_them_updates_them_in_place_and_prunes_one_removed_from_git_or_with_its_daemon()
 {
    let env = TestEnv::new("companions-apply");
    env.nodes("n", 2, &[]);
    let ns = env.ns.clone();
    let role_name = format!("{ns}-agent");
    let role = cluster_role(&ns);
    let repo = Repo::new();
    repo.write(
        "drover.yaml",
        FleetYaml::one_group(&ns, "every", Some("60s")).yaml(),
    );
    repo.write(
        "daemons/agent.yaml",
        daemon(
            "agent",
            "registry.example/agent:v1",
            "  serviceAccountName: agent\n",
        ),
    );
    repo.write(
        "companions/agent/serviceaccount-agent.yaml",
        service_account(),
    );
    repo.write("companions/clusterrole-agent.yaml", &role);
    repo.write(
        "daemons/helper.yaml",
        daemon("helper", "registry.example/helper:v1", ""),
    );
    repo.write(
        "companions/helper/configmap-helper.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: helper\ndata: {level: info}\n",
    );
    repo.commit("agent with its ServiceAccount and ClusterRole; helper with its ConfigMap");

    let audit = env.tb.audit();
    let mark = audit.mark();
    let applied = env
        .drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .run();
    applied.expect_code(0);
    let events = audit.since(mark);
    let first = |resource: &str, name: &str| {
        events
            .iter()
            .position(|e| {
                e.is_write()
                    && e.by_drover()
                    && e.resource == resource
                    && e.name == name
                    && (e.namespace == ns || e.namespace.is_empty())
                    && e.code < 300
            })
            .unwrap_or_else(|| panic!("drover wrote no {resource}/{name}: {}", applied.report()))
    };
    let sa = first("serviceaccounts", "agent");
    let cr = first("clusterroles", &role_name);
    let ds = first("daemonsets", "agent-every");
    assert!(
        sa < ds && cr < ds,
        "the companions were not written before the DaemonSet (sa {sa}, clusterrole {cr}, daemonset {ds})"
    );
    let labels = env.kubectl(&[
        "get",
        "serviceaccount",
        "agent",
        "-n",
        &ns,
        "-o",
        "jsonpath={.metadata.labels.drover\\.dev/fleet}",
    ]);
    assert_eq!(labels.stdout.trim(), ns);
    let uid = |kind: &str, name: &str| {
        env.kubectl(&[
            "get",
            kind,
            name,
            "-n",
            &ns,
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .stdout
        .trim()
        .to_string()
    };
    let role_uid = uid("clusterrole", &role_name);
    assert!(!role_uid.is_empty());

    // Updated in place: the same object, the new rules.
    repo.edit(
        "companions/clusterrole-agent.yaml",
        "verbs: [get, list]",
        "verbs: [get, list, watch]",
    );
    repo.commit("watch nodes too");
    env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .run()
        .expect_code(0);
    assert_eq!(uid("clusterrole", &role_name), role_uid);
    let verbs = env.kubectl(&[
        "get",
        "clusterrole",
        &role_name,
        "-o",
        "jsonpath={.rules[0].verbs}",
    ]);
    assert!(verbs.stdout.contains("watch"), "{}", verbs.stdout);

    // Removed from git: pruned, with its uid as precondition.
    repo.remove("companions/clusterrole-agent.yaml");
    repo.commit("no ClusterRole");
    let mark = audit.mark();
    let pruned = env
        .drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .run();
    pruned.expect_code(0);
    let gone = env.kubectl(&["get", "clusterrole", &role_name]);
    assert_ne!(
        gone.code, 0,
        "the ClusterRole is still there: {}",
        gone.stdout
    );
    let deleted: Vec<AuditEvent> = audit
        .since(mark)
        .into_iter()
        .filter(|e| e.verb == "delete" && e.resource == "clusterroles" && e.name == role_name)
        .collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert!(
        !uid("serviceaccount", "agent").is_empty(),
        "the ServiceAccount was pruned"
    );

    // A daemon removed from git takes its companions with it.
    assert!(!uid("configmap", "helper").is_empty());
    repo.remove("daemons/helper.yaml");
    repo.remove("companions/helper/configmap-helper.yaml");
    repo.commit("no helper");
    env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .run()
        .expect_code(0);
    let left = env.kubectl(&["get", "configmap,daemonset", "-n", &ns, "-o", "name"]);
    assert!(
        !left.stdout.contains("configmap/helper") && !left.stdout.contains("helper-every"),
        "{}",
        left.stdout
    );
    assert!(left.stdout.contains("agent-every"), "{}", left.stdout);

    // The last companion removed from git: `apply` knows no last applied commit,
    // so it lists the fleet's companions anyway and prunes it.
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    repo.remove("companions/agent/serviceaccount-agent.yaml");
    repo.commit("no companions left");
    let mark = audit.mark();
    env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .run()
        .expect_code(0);
    let sa = env.kubectl(&["get", "serviceaccount", "agent", "-n", &ns]);
    assert_ne!(
        sa.code, 0,
        "the last companion is still there: {}",
        sa.stdout
    );
    let deleted: Vec<AuditEvent> = audit
        .since(mark)
        .into_iter()
        .filter(|e| {
            e.verb == "delete"
                && e.resource == "serviceaccounts"
                && e.name == "agent"
                && e.by_drover()
        })
        .collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
}

#[test]
fn a_paused_fleet_holds_a_manual_apply_that_changes_only_companions() {
    let env = TestEnv::new("companions-paused");
    env.nodes("n", 1, &[]);
    let ns = env.ns.clone();
    let repo = fleet(
        &env,
        &[(
            "companions/agent/serviceaccount-agent.yaml",
            service_account(),
        )],
    );
    let repo_s = repo.path_str();
    env.drover(&["apply", "--repo", &repo_s, "--yes"])
        .run()
        .expect_code(0);
    repo.write(
        "companions/agent/serviceaccount-agent.yaml",
        format!("{}automountServiceAccountToken: false\n", service_account()),
    );
    repo.commit("no token mount");
    env.drover(&["pause", "--repo", &repo_s, "--reason", "hold"])
        .run()
        .expect_code(0);
    let held = env.drover(&["apply", "--repo", &repo_s, "--yes"]).run();
    assert_ne!(held.code, 0, "{}", held.report());
    assert!(held.stderr.contains("paused"), "{}", held.report());
    let automount = || {
        env.kubectl(&[
            "get",
            "serviceaccount",
            "agent",
            "-n",
            &ns,
            "-o",
            "jsonpath={.automountServiceAccountToken}",
        ])
        .stdout
        .trim()
        .to_string()
    };
    assert_eq!(automount(), "", "the paused apply wrote the ServiceAccount");
    env.drover(&["resume", "--repo", &repo_s])
        .run()
        .expect_code(0);
    env.drover(&["apply", "--repo", &repo_s, "--yes"])
        .run()
        .expect_code(0);
    assert_eq!(automount(), "false");
}
