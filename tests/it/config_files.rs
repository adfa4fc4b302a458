//! Config files (`spec.configFiles`, docs/config-files.md) against the testbed with
//! `drover apply`: a changed file is a new immutable ConfigMap, created before the
//! first stage's DaemonSet is written, and the stages roll in order like an image
//! bump (the API server's audit log); the old ConfigMap stays while a rollback target
//! mounts it and is pruned, with its uid as precondition, once nothing does; a
//! failed canary rolls back to the previous ConfigMap, which still exists. `drover
//! sync` does the same for a change pushed to git (canary first, the old ConfigMap
//! pruned by a later iteration) and restores a deleted ConfigMap as drift. And,
//! without a cluster, `drover render` prints (and `--out` writes) the ConfigMaps.

use crate::harness::{AuditEvent, FleetYaml, Repo, TestEnv, daemon};

const CONF_V1: &str = "[SERVICE]\n    Flush 1\n    Log_Level info\n";
const CONF_V2: &str = "[SERVICE]\n    Flush 1\n    Log_Level debug\n";

/// The config ConfigMaps of the daemon in the namespace: `name -> uid`.
fn config_maps(env: &TestEnv) -> std::collections::BTreeMap<String, String> {
    let list = env.get_json(&["configmaps", "-l", "drover.dev/config=agent-config"]);
    list["items"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|cm| {
            (
                cm["metadata"]["name"].as_str().unwrap().to_string(),
                cm["metadata"]["uid"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The ConfigMap a DaemonSet's `agent-config` volume refers to.
fn mounted(env: &TestEnv, ds: &str) -> String {
    let obj = env.get_json(&["daemonset", ds]);
    obj["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "agent-config")
        .and_then(|v| v["configMap"]["name"].as_str())
        .expect("the config volume")
        .to_string()
}

#[test]
fn a_config_file_change_creates_its_config_map_before_the_canary_rolls_stage_by_stage_and_prunes_the_old_one_once_no_rollback_target_mounts_it()
 {
    let env = TestEnv::new("config-files-apply");
    env.nodes("c", 1, &[("role", "canary")]);
    env.nodes("b", 1, &[("role", "blue")]);
    env.nodes("g", 1, &[]);
    let ns = env.ns.clone();
    let repo = Repo::new();
    repo.write("drover.yaml", FleetYaml::staged(&ns, "halt", "90s").yaml());
    repo.write(
        "daemons/agent.yaml",
        daemon(
            "agent",
            "registry.example/agent:v1",
            "  configFiles:\n    - {name: agent-config, mountPath: /etc/agent}\n",
        ),
    );
    repo.write("config/agent/agent-config/agent.conf", CONF_V1);
    repo.commit("agent with its config file");
    let repo_s = repo.path_str();
    env.drover(&["apply", "--repo", &repo_s, "--yes"])
        .run()
        .expect_code(0);
    let first = config_maps(&env);
    assert_eq!(first.len(), 1, "{first:?}");
    let (old, old_uid) = first.into_iter().next().unwrap();
    for ds in ["agent-canary", "agent-blue", "agent-green"] {
        assert_eq!(mounted(&env, ds), old);
    }
    let immutable = env.get_json(&["configmap", &old]);
    assert_eq!(immutable["immutable"], true);
    assert_eq!(immutable["data"]["agent.conf"], CONF_V1);

    // The file changes: a new ConfigMap, then the stages in order.
    repo.write("config/agent/agent-config/agent.conf", CONF_V2);
    repo.commit("debug logging");
    let audit = env.tb.audit();
    let mark = audit.mark();
    let applied = env.drover(&["apply", "--repo", &repo_s, "--yes"]).run();
    applied.expect_code(0);
    // The plan shows the file's own diff, not the hashed names.
    assert!(
        applied
            .stdout
            .contains("-    Log_Level info\n+    Log_Level debug\n"),
        "{}",
        applied.report()
    );
    assert!(
        applied
            .stdout
            .contains("agent-canary: config file agent-config/agent.conf changed"),
        "{}",
        applied.report()
    );
    assert!(!applied.stdout.contains(&old), "{}", applied.stdout);
    let now = config_maps(&env);
    assert_eq!(now.len(), 2, "the old ConfigMap must stay: {now:?}");
    assert_eq!(
        now.get(&old),
        Some(&old_uid),
        "the old ConfigMap was replaced"
    );
    let new = now.keys().find(|n| **n != old).unwrap().clone();
    for ds in ["agent-canary", "agent-blue", "agent-green"] {
        assert_eq!(mounted(&env, ds), new, "{ds}");
    }
    let events: Vec<AuditEvent> = audit
        .since(mark)
        .into_iter()
        .filter(|e| e.is_write() && e.by_drover() && e.namespace == ns && e.code < 300)
        .collect();
    let at = |resource: &str, name: &str| {
        events
            .iter()
            .position(|e| e.resource == resource && e.name == name && e.subresource.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "drover wrote no {resource}/{name}: {:?}",
                    events
                        .iter()
                        .map(|e| format!("{} {}/{}", e.verb, e.resource, e.name))
                        .collect::<Vec<_>>()
                )
            })
    };
    let cm = at("configmaps", &new);
    let canary = at("daemonsets", "agent-canary");
    let blue = at("daemonsets", "agent-blue");
    let green = at("daemonsets", "agent-green");
    assert!(
        cm < canary && canary < blue && blue < green,
        "order: configmap {cm}, canary {canary}, blue {blue}, green {green}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.resource == "configmaps" && e.verb == "delete"),
        "a ConfigMap was deleted while a rollback target mounts it"
    );

    // Nothing mounts the old one any more (the live DaemonSets, the rollback targets
    // of the next change, mount the new one): the next apply prunes it, with its uid.
    let mark = audit.mark();
    let pruned = env.drover(&["apply", "--repo", &repo_s, "--yes"]).run();
    pruned.expect_code(0);
    let left = config_maps(&env);
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        [&new],
        "{}",
        pruned.report()
    );
    let deletes: Vec<AuditEvent> = audit
        .since(mark)
        .into_iter()
        .filter(|e| e.is_write() && e.by_drover() && e.resource == "configmaps")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(
        (deletes[0].verb.as_str(), deletes[0].name.as_str()),
        ("delete", old.as_str())
    );
}

#[test]
fn render_prints_the_config_maps_first_and_writes_one_file_each_with_out() {
    let fixture = crate::harness::root("fixtures/valid/config-files");
    let fixture_s = fixture.to_str().unwrap();
    let printed = crate::harness::drover(&["render", "--repo", fixture_s, "--worktree"]).run();
    printed.expect_code(0);
    let kinds: Vec<String> = printed
        .stdout
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| {
            let v: serde_json::Value = serde_yaml::from_str(d).unwrap();
            v["kind"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(kinds.len(), 10, "{kinds:?}");
    assert!(kinds[..4].iter().all(|k| k == "ConfigMap"), "{kinds:?}");
    assert!(kinds[4..].iter().all(|k| k == "DaemonSet"), "{kinds:?}");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("rendered");
    let written = crate::harness::drover(&[
        "render",
        "--repo",
        fixture_s,
        "--worktree",
        "--out",
        dir.to_str().unwrap(),
    ])
    .run();
    written.expect_code(0);
    assert!(
        written
            .stderr
            .contains("wrote 6 DaemonSets and 4 config ConfigMaps"),
        "{}",
        written.report()
    );
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let config: Vec<&String> = files
        .iter()
        .filter(|f| f.starts_with("configmap-"))
        .collect();
    assert_eq!(config.len(), 4, "{files:?}");
    for f in config {
        let v: serde_json::Value =
            serde_yaml::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap();
        assert_eq!(v["kind"], "ConfigMap", "{f}");
        assert_eq!(v["immutable"], true, "{f}");
    }
}

#[test]
fn a_config_change_whose_canary_fails_rolls_back_to_the_previous_config_map_which_still_exists() {
    let env = TestEnv::new("config-files-rollback");
    env.nodes("c", 2, &[("role", "canary")]);
    env.nodes("b", 1, &[("role", "blue")]);
    env.nodes("g", 1, &[]);
    let ns = env.ns.clone();
    let repo = Repo::new();
    repo.write(
        "drover.yaml",
        FleetYaml::staged(&ns, "rollback", "15s").yaml(),
    );
    let agent = |extra: &str| {
        daemon(
            "agent",
            "registry.example/agent:v1",
            &format!(
                "  configFiles:\n    - {{name: agent-config, mountPath: /etc/agent}}\n{extra}"
            ),
        )
    };
    repo.write("daemons/agent.yaml", agent(""));
    repo.write("config/agent/agent-config/agent.conf", CONF_V1);
    repo.commit("agent with its config file");
    let repo_s = repo.path_str();
    env.drover(&["apply", "--repo", &repo_s, "--yes"])
        .run()
        .expect_code(0);
    let (old, old_uid) = config_maps(&env).into_iter().next().expect("a ConfigMap");

    // A config change whose pods never become ready (the testbed's fail-ready label
    // stands for a config the agent cannot start with).
    repo.write("config/agent/agent-config/agent.conf", CONF_V2);
    repo.write(
        "daemons/agent.yaml",
        agent("  podTemplate:\n    metadata:\n      labels: {drover.test/fail-ready: \"true\"}\n"),
    );
    repo.commit("a config the agent cannot start with");
    let audit = env.tb.audit();
    let mark = audit.mark();
    let run = env.drover(&["apply", "--repo", &repo_s, "--yes"]).run();
    run.expect_code(1);
    assert!(
        run.stdout.contains("outcome: rolled-back"),
        "{}",
        run.report()
    );
    // Every stage mounts the previous ConfigMap, the same object as before.
    for ds in ["agent-canary", "agent-blue", "agent-green"] {
        assert_eq!(mounted(&env, ds), old, "{ds}");
    }
    let now = config_maps(&env);
    assert_eq!(now.get(&old), Some(&old_uid), "{now:?}");
    let writes: Vec<AuditEvent> = audit
        .since(mark)
        .into_iter()
        .filter(|e| e.is_write() && e.by_drover() && e.namespace == ns)
        .collect();
    assert!(
        !writes
            .iter()
            .any(|e| e.resource == "configmaps" && e.verb == "delete"),
        "a ConfigMap was deleted during the rollout"
    );
    assert!(
        writes
            .iter()
            .any(|e| e.resource == "daemonsets" && e.name == "agent-canary"),
        "the canary was never written"
    );
    assert!(
        !writes
            .iter()
            .any(|e| e.resource == "daemonsets" && e.name == "agent-blue"),
        "blue was written although the canary failed"
    );
}

/// The positions in `events` of drover's writes of the ConfigMap `cm` and the staged
/// DaemonSets, panicking with the writes seen when one is missing.
fn positions(events: &[AuditEvent], cm: &str) -> [usize; 4] {
    let at = |resource: &str, name: &str| {
        events
            .iter()
            .position(|e| e.resource == resource && e.name == name && e.subresource.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "drover wrote no {resource}/{name}: {:?}",
                    events
                        .iter()
                        .map(|e| format!("{} {}/{}", e.verb, e.resource, e.name))
                        .collect::<Vec<_>>()
                )
            })
    };
    [
        at("configmaps", cm),
        at("daemonsets", "agent-canary"),
        at("daemonsets", "agent-blue"),
        at("daemonsets", "agent-green"),
    ]
}

#[test]
fn sync_rolls_a_config_file_change_pushed_to_git_canary_first_after_creating_its_config_map_keeps_the_old_one_while_the_previous_commit_is_a_rollback_target_and_prunes_it_in_a_later_sync()
 {
    let env = TestEnv::new("config-files-sync-roll");
    env.nodes("c", 1, &[("role", "canary")]);
    env.nodes("b", 1, &[("role", "blue")]);
    env.nodes("g", 1, &[]);
    let ns = env.ns.clone();
    let repo = Repo::new();
    repo.write("drover.yaml", FleetYaml::staged(&ns, "halt", "90s").yaml());
    repo.write(
        "daemons/agent.yaml",
        daemon(
            "agent",
            "registry.example/agent:v1",
            "  configFiles:\n    - {name: agent-config, mountPath: /etc/agent}\n",
        ),
    );
    repo.write("config/agent/agent-config/agent.conf", CONF_V1);
    repo.commit("agent with its config file");
    let remote = crate::harness::Remote::new();
    repo.push(&remote);
    let state = tempfile::tempdir().unwrap();
    let sync = || {
        env.drover(&crate::harness::sync_once_args(&remote, state.path()))
            .run()
    };
    let audit = env.tb.audit();
    let mark = audit.mark();
    let first = sync();
    first.expect_code(0);
    let maps = config_maps(&env);
    assert_eq!(maps.len(), 1, "{maps:?} {}", first.report());
    let (old, old_uid) = maps.into_iter().next().unwrap();
    for ds in ["agent-canary", "agent-blue", "agent-green"] {
        assert_eq!(mounted(&env, ds), old, "{ds}");
    }
    assert_eq!(
        env.get_json(&["configmap", &old])["data"]["agent.conf"],
        CONF_V1
    );
    // Even the first rollout creates the ConfigMap before any DaemonSet mounts it.
    let events: Vec<AuditEvent> = audit
        .since(mark)
        .into_iter()
        .filter(|e| e.is_write() && e.by_drover() && e.namespace == ns && e.code < 300)
        .collect();
    let [cm, canary, blue, green] = positions(&events, &old);
    assert!(
        cm < canary && canary < blue && blue < green,
        "order: configmap {cm}, canary {canary}, blue {blue}, green {green}"
    );

    // The file changes in git: the next iteration creates the new ConfigMap, then
    // rolls the stages canary first.
    repo.write("config/agent/agent-config/agent.conf", CONF_V2);
    let v2 = repo.commit("debug logging");
    repo.push(&remote);
    let mark = audit.mark();
    let rolled = sync();
    rolled.expect_code(0);
    let recs = crate::harness::records(state.path());
    let last = recs.last().unwrap();
    assert_eq!(last["outcome"], "applied", "{recs:#?}");
    assert_eq!(last["commit"]["sha"], v2.as_str(), "{recs:#?}");
    let now = config_maps(&env);
    assert_eq!(now.len(), 2, "the old ConfigMap must stay: {now:?}");
    assert_eq!(
        now.get(&old),
        Some(&old_uid),
        "the old ConfigMap was replaced"
    );
    let new = now.keys().find(|n| **n != old).unwrap().clone();
    assert_eq!(
        env.get_json(&["configmap", &new])["data"]["agent.conf"],
        CONF_V2
    );
    for ds in ["agent-canary", "agent-blue", "agent-green"] {
        assert_eq!(mounted(&env, ds), new, "{ds}");
    }
    let events: Vec<AuditEvent> = audit
        .since(mark)
        .into_iter()
        .filter(|e| e.is_write() && e.by_drover() && e.namespace == ns && e.code < 300)
        .collect();
    let [cm, canary, blue, green] = positions(&events, &new);
    assert!(
        cm < canary && canary < blue && blue < green,
        "order: configmap {cm}, canary {canary}, blue {blue}, green {green}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.resource == "configmaps" && e.verb == "delete"),
        "a ConfigMap was deleted while the previous commit, a rollback target, mounts it"
    );

    // A later iteration: no live DaemonSet mounts the old ConfigMap any more, so it is
    // pruned, and only it.
    let mark = audit.mark();
    let later = sync();
    later.expect_code(0);
    let left = config_maps(&env);
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        [&new],
        "{}",
        later.report()
    );
    let deletes: Vec<AuditEvent> = audit
        .since(mark)
        .into_iter()
        .filter(|e| {
            e.is_write() && e.by_drover() && e.namespace == ns && e.resource == "configmaps"
        })
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(
        (deletes[0].verb.as_str(), deletes[0].name.as_str()),
        ("delete", old.as_str())
    );
}

#[test]
fn a_config_map_deleted_with_kubectl_is_restored_by_the_next_sync_iteration_as_drift() {
    let env = TestEnv::new("config-files-sync-drift");
    env.nodes("n", 1, &[]);
    let ns = env.ns.clone();
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
            "  configFiles:\n    - {name: agent-config, mountPath: /etc/agent}\n",
        ),
    );
    repo.write("config/agent/agent-config/agent.conf", CONF_V1);
    repo.commit("agent with its config file");
    let remote = crate::harness::Remote::new();
    repo.push(&remote);
    let state = tempfile::tempdir().unwrap();
    let sync = || {
        env.drover(&crate::harness::sync_once_args(&remote, state.path()))
            .run()
    };
    sync().expect_code(0);
    let maps = config_maps(&env);
    assert_eq!(maps.len(), 1, "{maps:?}");
    let (name, uid) = maps.into_iter().next().unwrap();
    assert_eq!(mounted(&env, "agent-every"), name);

    env.kubectl(&["delete", "configmap", &name, "-n", &ns])
        .expect_code(0);
    assert!(config_maps(&env).is_empty());
    let audit = env.tb.audit();
    let mark = audit.mark();
    let drift = sync();
    drift.expect_code(0);
    let back = config_maps(&env);
    assert_eq!(
        back.keys().collect::<Vec<_>>(),
        [&name],
        "the deleted ConfigMap was not restored: {}",
        drift.report()
    );
    assert_ne!(back[&name], uid, "a new object, under the same hashed name");
    let restored = env.get_json(&["configmap", &name]);
    assert_eq!(restored["immutable"], true);
    assert_eq!(restored["data"]["agent.conf"], CONF_V1);
    let created: Vec<String> = audit
        .since(mark)
        .into_iter()
        .filter(|e| e.is_write() && e.by_drover() && e.namespace == ns && e.code < 300)
        .filter(|e| e.resource == "configmaps")
        .map(|e| format!("{} {}", e.verb, e.name))
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(created[0].ends_with(&name), "{created:?}");
    let recs = crate::harness::records(state.path());
    let last = recs.last().unwrap();
    assert_eq!(last["kind"], "drift", "{recs:#?}");
    assert_eq!(last["outcome"], "applied", "{recs:#?}");
}

/// The writes drover made to ConfigMaps of the namespace since `mark`, as `verb name`.
fn config_writes(
    env: &TestEnv,
    audit: &crate::harness::audit::AuditLog,
    mark: crate::harness::audit::Mark,
) -> Vec<String> {
    audit
        .since(mark)
        .into_iter()
        .filter(|e| e.is_write() && e.by_drover() && e.namespace == env.ns && e.code < 300)
        .filter(|e| e.resource == "configmaps" && e.name != "drover-control")
        .map(|e| format!("{} {}", e.verb, e.name))
        .collect()
}

#[test]
fn the_config_map_of_the_last_config_file_removed_from_git_is_pruned_by_a_later_run_of_a_running_sync_a_new_sync_process_and_apply()
 {
    let env = TestEnv::new("config-files-last-removed");
    env.nodes("n", 1, &[]);
    let repo = Repo::new();
    repo.write(
        "drover.yaml",
        FleetYaml::one_group(&env.ns, "every", Some("60s")).yaml(),
    );
    let with_config = |tag: &str| {
        repo.write(
            "daemons/agent.yaml",
            daemon(
                "agent",
                &format!("registry.example/agent:{tag}"),
                "  configFiles:\n    - {name: agent-config, mountPath: /etc/agent}\n",
            ),
        );
        repo.write("config/agent/agent-config/agent.conf", CONF_V1);
    };
    let without_config = |tag: &str| {
        repo.write(
            "daemons/agent.yaml",
            daemon("agent", &format!("registry.example/agent:{tag}"), ""),
        );
        repo.remove("config/agent/agent-config/agent.conf");
    };
    let remote = crate::harness::Remote::new();
    let state = tempfile::tempdir().unwrap();
    let once = crate::harness::sync_once_args(&remote, state.path());
    let sync = || env.drover(&once).run();
    let audit = env.tb.audit();

    // 1. A running sync: the iteration that rolls the commit without config files
    // keeps the ConfigMap (the live DaemonSets, its rollback targets, mount it);
    // the iteration after it, which remembers seeing one, prunes it.
    with_config("v1");
    repo.commit("agent with its config file");
    repo.push(&remote);
    sync().expect_code(0);
    let maps = config_maps(&env);
    assert_eq!(maps.len(), 1, "{maps:?}");
    let name = maps.keys().next().unwrap().clone();
    without_config("v2");
    repo.commit("agent without config files");
    repo.push(&remote);
    let mark = audit.mark();
    let mut running: Vec<&str> = once.iter().copied().filter(|a| *a != "--once").collect();
    running.extend(["--interval", "1s"]);
    let mut loop_ = env.drover(&running).spawn_lines();
    // The first "up to date" comes after the roll and the iteration that prunes.
    loop_.wait_for_line(&["up to date"], std::time::Duration::from_secs(120));
    loop_.terminate();
    assert!(
        config_maps(&env).is_empty(),
        "the ConfigMap of the last config file removed is left behind:\n{}",
        loop_.stderr()
    );
    assert_eq!(
        config_writes(&env, &audit, mark),
        [format!("delete {name}")]
    );
    assert_eq!(env.images()["agent-every"], "registry.example/agent:v2");

    // 2. A new `sync --once` process each time: it does not know what the last one
    // saw, and asks the cluster (one metadata LIST) before it plans.
    with_config("v3");
    repo.commit("config files again");
    repo.push(&remote);
    sync().expect_code(0);
    assert_eq!(config_maps(&env).len(), 1);
    without_config("v4");
    repo.commit("no config files again");
    repo.push(&remote);
    let mark = audit.mark();
    let rolled = sync();
    rolled.expect_code(0);
    assert_eq!(
        config_maps(&env).keys().collect::<Vec<_>>(),
        [&name],
        "pruned while a rollback target mounted it: {}",
        rolled.report()
    );
    assert!(config_writes(&env, &audit, mark).is_empty());
    let later = sync();
    later.expect_code(0);
    assert!(config_maps(&env).is_empty(), "{}", later.report());
    assert_eq!(
        config_writes(&env, &audit, mark),
        [format!("delete {name}")]
    );

    // 3. `drover apply` of a working tree asks the cluster the same way.
    let tree = repo.path_str();
    let apply = || env.drover(&["apply", "--repo", &tree, "--yes"]).run();
    with_config("v5");
    repo.commit("config files for apply");
    apply().expect_code(0);
    assert_eq!(config_maps(&env).len(), 1);
    without_config("v6");
    repo.commit("no config files for apply");
    apply().expect_code(0);
    assert_eq!(
        config_maps(&env).len(),
        1,
        "pruned while a rollback target mounted it"
    );
    let mark = audit.mark();
    let again = apply();
    again.expect_code(0);
    assert!(config_maps(&env).is_empty(), "{}", again.report());
    assert_eq!(
        config_writes(&env, &audit, mark),
        [format!("delete {name}")]
    );
}
