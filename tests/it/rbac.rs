//! deploy/'s RBAC on the real local control plane: drover running as the `drover`
//! ServiceAccount with only deploy/rbac.yaml's grants can plan, apply and sync
//! (leader election included) a fleet in its namespace without a single 403, cannot
//! write anywhere else, and holds nothing broader than what it needs.
//!
//! The manifests are applied as written except for names, so tests can share a
//! testbed: `drover-system` and `node-agents` become `<test ns>-system` and
//! `<test ns>-agents`, and the cluster-scoped ClusterRole(Binding) `drover` gets the
//! same prefix.

use std::path::Path;

use crate::harness::testbed::images_in;
use crate::harness::{FleetYaml, Remote, Repo, Run, TestEnv, daemon, root};

/// deploy/namespace.yaml, serviceaccount.yaml and rbac.yaml with the test's names.
fn manifests(prefix: &str) -> String {
    let mut out = String::new();
    for f in ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"] {
        let text = std::fs::read_to_string(root(&format!("deploy/{f}"))).unwrap();
        let text = text
            .replace("drover-system", &format!("{prefix}-system"))
            .replace("node-agents", &format!("{prefix}-agents"));
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let mut v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            if v.is_null() {
                continue;
            }
            let kind = v["kind"].as_str().unwrap_or_default().to_string();
            if kind == "ClusterRole" || kind == "ClusterRoleBinding" {
                let name = v["metadata"]["name"].as_str().unwrap().to_string();
                v["metadata"]["name"] = format!("{prefix}-{name}").into();
            }
            if kind == "ClusterRoleBinding" {
                let name = v["roleRef"]["name"].as_str().unwrap().to_string();
                v["roleRef"]["name"] = format!("{prefix}-{name}").into();
            }
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&v).unwrap());
        }
    }
    out
}

fn fleet(name: &str, namespace: &str, selector_ns: &str) -> String {
    FleetYaml::new(name)
        .namespace(namespace)
        .selecting(selector_ns)
        .group("canary", &[("role", "canary")])
        .group("rest", &[])
        .stage("canary", &["canary"], None, "90s")
        .stage("rest", &["rest"], None, "90s")
        .rollout(r#"{maxUnavailable: "50%", maxSurge: 0}"#)
        .prune("{enabled: true, maxDeleteFraction: 1}")
        .yaml()
}

/// drover as the `drover` ServiceAccount (its kubeconfig), clean environment.
fn as_sa(env: &TestEnv, kubeconfig: &Path, args: &[&str]) -> Run {
    env.drover(args)
        .kubeconfig(kubeconfig)
        .note("(as the drover ServiceAccount)")
        .run()
}

struct Cleanup<'a>(&'a TestEnv<'static>, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let p = &self.1;
        for what in [
            format!("namespace/{p}-system"),
            format!("namespace/{p}-agents"),
        ] {
            self.0
                .kubectl(&["delete", &what, "--wait=false", "--ignore-not-found"]);
        }
        for what in [
            format!("clusterrole/{p}-drover"),
            format!("clusterrolebinding/{p}-drover"),
            format!("clusterrole/{p}-agent"),
            format!("clusterrolebinding/{p}-agent"),
            format!("priorityclass/{p}-agents"),
        ] {
            self.0.kubectl(&["delete", &what, "--ignore-not-found"]);
        }
    }
}

#[test]
fn the_deploy_rbac_lets_drover_sync_its_fleet_and_nothing_else() {
    let env = TestEnv::new("rbac");
    let p = env.ns.clone();
    let (system, agents) = (format!("{p}-system"), format!("{p}-agents"));
    let _cleanup = Cleanup(&env, p.clone());
    env.kubectl_stdin(&["apply", "-f", "-"], &manifests(&p))
        .expect_code(0);
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("rest", 2, &[]);
    let scratch = tempfile::tempdir().unwrap();
    // As in the pod: the token of drover-system's `drover`, context namespace its own.
    let kc = env
        .tb
        .sa_kubeconfig(&system, "drover", &system, scratch.path());
    let user = format!("system:serviceaccount:{system}:drover");

    let work = Repo::new();
    work.write("drover.yaml", fleet(&p, &agents, &p));
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("agent v1");
    let repo = work.path_str();
    let audit = env.tb.audit();
    let mark = audit.mark();

    as_sa(&env, &kc, &["plan", "--repo", &repo]).expect_code(2);
    as_sa(&env, &kc, &["apply", "--repo", &repo, "--yes"]).expect_code(0);
    assert_eq!(images_in(env.tb, &agents).len(), 2);

    // The reconciler as deployed: sync with leader election in its own namespace.
    let remote = Remote::new();
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", ""),
    );
    work.write(
        "daemons/logs.yaml",
        daemon("logs", "registry.example/logs:v1", ""),
    );
    // Companion objects of every default kind. The RBAC ones grant what drover itself
    // does not hold (pods and namespaces cluster-wide, any ConfigMap's get), so the
    // API server's escalation check applies to them.
    for (path, text) in companions(&p) {
        work.write(&path, text);
    }
    work.commit("agent v2, logs, companions");
    work.push(&remote);
    let state = scratch.path().join("state");
    let remote_path = remote.path_str();
    let sync = |extra: &[&str]| {
        let mut a = vec![
            "-v",
            "sync",
            "--repo",
            &remote_path,
            "--state-dir",
            state.to_str().unwrap(),
            "--once",
            "--leader-elect",
        ];
        a.extend_from_slice(extra);
        as_sa(&env, &kc, &a)
    };
    let r = sync(&[]);
    r.expect_code(0);
    assert!(
        r.stderr.contains("acquired the leader lease"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("lease={system}/drover")),
        "{}",
        r.stderr
    );
    let imgs = images_in(env.tb, &agents);
    assert_eq!(imgs.len(), 4, "{imgs:?}");
    assert!(imgs["agent-rest"].ends_with("agent:v2"));
    let rec: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(state.join("audit.jsonl"))
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rec["outcome"], "applied", "{rec:#}");
    let uid = env.kubectl(&[
        "get",
        "namespace",
        "kube-system",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    assert_eq!(
        rec["cluster"]["uid"],
        uid.stdout.trim(),
        "the cluster identity (kube-system uid) was readable: {rec:#}"
    );
    for (what, name) in [
        ("serviceaccount", "agent".to_string()),
        ("configmap", "agent".to_string()),
        ("service", "agent".to_string()),
        ("role", "agent".to_string()),
        ("rolebinding", "agent".to_string()),
        ("clusterrole", format!("{p}-agent")),
        ("clusterrolebinding", format!("{p}-agent")),
        ("priorityclass", format!("{p}-agents")),
    ] {
        env.kubectl(&["get", what, &name, "-n", &agents])
            .expect_code(0);
    }
    // Prune too: removing a daemon deletes its DaemonSets, and companions removed
    // from git are deleted.
    work.remove("daemons/logs.yaml");
    work.remove("companions/agent/configmap-agent.yaml");
    work.remove("companions/agent/clusterrolebinding-agent.yaml");
    work.remove("companions/priorityclass-agents.yaml");
    work.commit("logs removed, a ConfigMap, a ClusterRoleBinding and a PriorityClass too");
    work.push(&remote);
    sync(&[]).expect_code(0);
    assert_eq!(images_in(env.tb, &agents).len(), 2);
    for (what, name) in [
        ("configmap", "agent".to_string()),
        ("clusterrolebinding", format!("{p}-agent")),
        ("priorityclass", format!("{p}-agents")),
    ] {
        let r = env.kubectl(&["get", what, &name, "-n", &agents]);
        assert_ne!(r.code, 0, "{what} {name} was not pruned: {}", r.stdout);
    }

    // Not one request drover made was refused.
    let denied: Vec<String> = audit
        .since(mark)
        .into_iter()
        .filter(|e| e.user == user && e.code == 403)
        .map(|e| format!("{} {} {}/{}", e.verb, e.resource, e.namespace, e.name))
        .collect();
    assert!(
        denied.is_empty(),
        "drover needed permissions it lacks: {denied:#?}"
    );

    // Writes outside its namespaces are refused.
    let r = env
        .tb
        .kubectl_as(&kc, &["-n", "default", "create", "configmap", "x"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("forbidden"), "{}", r.stderr);
    let other = Repo::new();
    other.write("drover.yaml", fleet(&format!("{p}-default"), "default", &p));
    other.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    other.commit("a fleet in default");
    let r = as_sa(&env, &kc, &["apply", "--repo", &other.path_str(), "--yes"]);
    r.expect_code(1);
    assert!(
        r.stderr.contains("forbidden") || r.stderr.contains("403"),
        "{}",
        r.stderr
    );
    let in_default = env.kubectl(&[
        "-n",
        "default",
        "get",
        "daemonsets",
        "-l",
        &format!("drover.dev/fleet={p}-default"),
        "-o",
        "name",
    ]);
    assert_eq!(
        in_default.stdout.trim(),
        "",
        "nothing was written to default"
    );

    // Nothing broader than what it needs.
    for ns in [system.as_str(), agents.as_str(), "default", "kube-system"] {
        let r = env
            .tb
            .kubectl_as(&kc, &["auth", "can-i", "--list", "-n", ns]);
        r.expect_code(0);
        for line in r.stdout.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let resource = cols.first().copied().unwrap_or_default();
            let verbs = line.rsplit('[').next().unwrap_or_default();
            assert!(
                !resource.starts_with('*') && !verbs.contains('*'),
                "a wildcard grant in {ns}: {line}\n{}",
                r.stdout
            );
            assert!(
                !resource.contains("secrets"),
                "secrets readable in {ns}: {line}"
            );
        }
    }
    // The one cluster-wide DaemonSet grant: a LIST finds the fleet's copies in every
    // namespace (a move); nothing else about DaemonSets reaches past its namespace.
    let r = env.tb.kubectl_as(
        &kc,
        &[
            "auth",
            "can-i",
            "list",
            "daemonsets.apps",
            "--all-namespaces",
        ],
    );
    assert_eq!(r.stdout.trim(), "yes", "{}{}", r.stdout, r.stderr);
    for (verb, what, ns) in [
        ("*", "*", "--all-namespaces"),
        ("create", "configmaps", "-n=default"),
        ("patch", "daemonsets.apps", "-n=default"),
        ("delete", "daemonsets.apps", "-n=default"),
        ("watch", "daemonsets.apps", "--all-namespaces"),
        ("patch", "daemonsets.apps", "-n=kube-system"),
        ("get", "secrets", &format!("-n={system}")),
        ("list", "secrets", "--all-namespaces"),
        ("create", "pods", &format!("-n={agents}")),
        // The control object only: no other ConfigMap is read or written.
        ("get", "configmaps/other", &format!("-n={agents}")),
        ("update", "configmaps/other", &format!("-n={agents}")),
        (
            "update",
            "leases.coordination.k8s.io/other",
            &format!("-n={system}"),
        ),
        (
            "watch",
            "leases.coordination.k8s.io/other",
            &format!("-n={system}"),
        ),
        (
            "list",
            "leases.coordination.k8s.io",
            &format!("-n={system}"),
        ),
        ("get", "namespaces/default", ""),
        ("delete", "nodes", ""),
        // Companion kinds: only the requests drover makes, only where it makes them.
        ("get", "clusterroles", ""),
        ("update", "clusterrolebindings", ""),
        ("watch", "serviceaccounts", &format!("-n={agents}")),
        ("get", "serviceaccounts", &format!("-n={agents}")),
        ("patch", "serviceaccounts", "-n=default"),
        ("list", "configmaps", "--all-namespaces"),
        (
            "delete",
            "rolebindings.rbac.authorization.k8s.io",
            "-n=kube-system",
        ),
    ] {
        let mut a = vec!["auth", "can-i", verb, what];
        if !ns.is_empty() {
            a.push(ns);
        }
        let r = env.tb.kubectl_as(&kc, &a);
        assert_eq!(
            r.stdout.trim(),
            "no",
            "can-i {verb} {what} {ns}: {}{}",
            r.stdout,
            r.stderr
        );
    }
}

/// A companion of every default kind for fleet `p` (namespace `<p>-agents`): file
/// path and manifest.
fn companions(p: &str) -> Vec<(String, String)> {
    let agents = format!("{p}-agents");
    vec![
        (
            "companions/agent/serviceaccount-agent.yaml".into(),
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: agent\n".into(),
        ),
        (
            "companions/agent/configmap-agent.yaml".into(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: agent\ndata: {level: info}\n".into(),
        ),
        (
            "companions/agent/service-agent.yaml".into(),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: agent\nspec:\n  selector: {app: agent}\n  ports:\n    - {name: metrics, port: 9100}\n".into(),
        ),
        (
            "companions/agent/role-agent.yaml".into(),
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: agent\nrules:\n  - apiGroups: [\"\"]\n    resources: [configmaps]\n    verbs: [get, watch]\n".into(),
        ),
        (
            "companions/agent/rolebinding-agent.yaml".into(),
            format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: agent\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: agent\nsubjects:\n  - {{kind: ServiceAccount, name: agent, namespace: {agents}}}\n"),
        ),
        (
            "companions/agent/clusterrole-agent.yaml".into(),
            format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {p}-agent\nrules:\n  - apiGroups: [\"\"]\n    resources: [pods, namespaces]\n    verbs: [get, list, watch]\n"),
        ),
        (
            "companions/agent/clusterrolebinding-agent.yaml".into(),
            format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {p}-agent\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: {p}-agent\nsubjects:\n  - {{kind: ServiceAccount, name: agent, namespace: {agents}}}\n"),
        ),
        (
            "companions/priorityclass-agents.yaml".into(),
            format!("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: {p}-agents\nvalue: 1000\n"),
        ),
    ]
}
