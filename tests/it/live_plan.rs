//! `drover plan` against the live cluster: no noise from server defaulting after a
//! kubectl-equivalent server-side apply, exactly the changed DaemonSets after a
//! commit, and no write request (dry runs aside), checked in the API audit log.

use crate::harness::{AuditEvent, FleetYaml, Repo, TestEnv, daemon};

const AGENT_EXTRA: &str = r#"  args: ["--path.rootfs=/host", "--collector.systemd"]
  env: {LOG_LEVEL: info, CLUSTER: test}
  ports: [{name: metrics, containerPort: 9100, hostPort: 9100}]
  hostNetwork: true
  hostPID: true
  mounts:
    - {name: root, hostPath: /, mountPath: /host, readOnly: true}
  resources: {requests: {cpu: 50m, memory: 32Mi}, limits: {memory: 64Mi}}
  readinessProbe: {httpGet: {path: /metrics, port: 9100}}
  securityContext: {readOnlyRootFilesystem: true}
  priorityClassName: system-node-critical
"#;

const LOGS_EXTRA: &str = r#"  env:
    - name: NODE_NAME
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
  mounts:
    - {name: varlog, hostPath: /var/log, mountPath: /var/log, type: Directory}
  tolerations: [{operator: Exists, effect: NoSchedule}]
  podTemplate:
    spec: {dnsPolicy: ClusterFirstWithHostNet, terminationGracePeriodSeconds: 10}
"#;

/// Requests that may change something (dry runs included) drover made in the test's
/// namespace or cluster-wide.
fn writes(env: &TestEnv, events: &[AuditEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.by_drover())
        .filter(|e| e.namespace.is_empty() || e.namespace == env.ns)
        .filter(|e| e.is_mutating())
        .map(|e| format!("{} {}", e.verb, e.uri))
        .collect()
}

#[test]
fn plan_after_kubectl_apply_is_empty_then_names_exactly_the_changed_daemonsets_and_writes_nothing()
{
    let env = TestEnv::new("live-plan");
    env.nodes("canary", 2, &[("role", "canary")]);
    env.nodes("blue", 2, &[("role", "blue")]);
    env.nodes("green", 2, &[]);
    let repo = Repo::new();
    repo.write(
        "drover.yaml",
        FleetYaml::staged(&env.ns, "halt", "90s").yaml(),
    );
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", AGENT_EXTRA),
    );
    repo.write(
        "daemons/logs.yaml",
        daemon("logs", "registry.example/logs:v1", LOGS_EXTRA),
    );
    repo.commit("two daemons");
    let rendered = env.drover(&["render", "--repo", &repo.path_str()]).run();
    rendered.expect_code(0);
    env.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=drover",
            "-f",
            "-",
        ],
        &rendered.stdout,
    )
    .expect_code(0);

    let audit = env.tb.audit();
    let mark = audit.mark();
    let plan = env.drover(&["plan", "--repo", &repo.path_str()]).run();
    plan.expect_code(0);
    assert!(plan.stdout.contains("no changes"), "{}", plan.stdout);
    // The same through the server's own defaulting: every object dry-run applied.
    let plan = env
        .drover(&["plan", "--repo", &repo.path_str(), "--dry-run-all"])
        .run();
    plan.expect_code(0);
    assert!(
        plan.stdout.contains("no changes"),
        "defaulting showed up as changes:\n{}",
        plan.stdout
    );
    let w = writes(&env, &audit.since(mark));
    let dry_runs = w.iter().filter(|x| x.contains("dryRun=All")).count();
    assert_eq!(
        dry_runs, 6,
        "one dry run per DaemonSet with --dry-run-all: {w:#?}"
    );
    assert!(
        w.iter().all(|x| x.contains("dryRun=All")),
        "plan wrote something: {w:#?}"
    );

    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", AGENT_EXTRA),
    );
    repo.commit("agent v2");
    let mark = audit.mark();
    let plan = env
        .drover(&["plan", "--repo", &repo.path_str(), "--format", "json"])
        .run();
    plan.expect_code(2);
    let p: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let mut updated: Vec<&str> = p["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["actions"].as_array().unwrap())
        .filter(|a| a["action"] != "unchanged")
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    updated.sort();
    assert_eq!(
        updated,
        ["agent-blue", "agent-canary", "agent-green"],
        "{}",
        plan.stdout
    );
    assert_eq!(p["summary"]["update"], 3);
    assert_eq!(p["summary"]["unchanged"], 3);
    let w = writes(&env, &audit.since(mark));
    assert_eq!(
        w.iter().filter(|x| x.contains("dryRun=All")).count(),
        3,
        "dry runs only for the changed objects: {w:#?}"
    );
    assert!(
        w.iter().all(|x| x.contains("dryRun=All")),
        "plan wrote something: {w:#?}"
    );
}
