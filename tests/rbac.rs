//! deploy/'s RBAC on the real local control plane: drover running as the `drover`
//! ServiceAccount with only deploy/rbac.yaml's grants can plan, apply and sync
//! (leader election included) a fleet in its namespace without a single 403, cannot
//! write anywhere else, and holds nothing broader than what it needs.
//!
//! The manifests are applied as written except for names, so tests can share a
//! testbed: `drover-system` and `node-agents` become `<test ns>-system` and
//! `<test ns>-agents`, and the cluster-scoped ClusterRole(Binding) `drover` gets the
//! same prefix.

mod cluster_support;
mod sa_support;

use std::path::Path;

use cluster_support::{FleetRepo, Run, TestEnv, daemon};
use sa_support::{audit_events, audit_mark, sa_kubeconfig};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// deploy/namespace.yaml, serviceaccount.yaml and rbac.yaml with the test's names.
fn manifests(prefix: &str) -> String {
    let mut out = String::new();
    for f in ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"] {
        let text = std::fs::read_to_string(format!("{ROOT}/deploy/{f}")).unwrap();
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
    format!(
        r#"apiVersion: drover.dev/v1alpha1
kind: Fleet
metadata: {{name: {name}}}
spec:
  namespace: {namespace}
  groups: [canary, rest]
  stages:
    - {{name: canary, groups: [canary], timeout: 90s}}
    - {{name: rest, groups: [rest], timeout: 90s}}
  defaults:
    rollout: {{maxUnavailable: "50%", maxSurge: 0}}
  prune: {{enabled: true, maxDeleteFraction: 1}}
---
apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {{name: canary}}
spec:
  selector:
    matchLabels: {{drover.test/ns: {selector_ns}, role: canary}}
---
apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {{name: rest}}
spec:
  selector:
    matchLabels: {{drover.test/ns: {selector_ns}}}
"#
    )
}

fn as_sa(env: &TestEnv, kubeconfig: &Path, args: &[&str]) -> Run {
    let o = env
        .drover_cmd(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .output()
        .unwrap();
    Run {
        cmd: format!("drover {} (as the drover ServiceAccount)", args.join(" ")),
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn kubectl_as(env: &TestEnv, kubeconfig: &Path, args: &[&str]) -> Run {
    let o = std::process::Command::new(&env.tb.kubectl)
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .unwrap();
    Run {
        cmd: format!("kubectl {} (as the drover ServiceAccount)", args.join(" ")),
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

struct Cleanup<'a>(&'a TestEnv, String);

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
    let kc = sa_kubeconfig(&env, &system, "drover", &system, scratch.path());
    let user = format!("system:serviceaccount:{system}:drover");

    let work = FleetRepo::new();
    work.write("drover.yaml", &fleet(&p, &agents, &p));
    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("agent v1");
    let repo = work.path_str();
    let mark = audit_mark(&env);

    as_sa(&env, &kc, &["plan", "--repo", &repo]).expect_code(2);
    as_sa(&env, &kc, &["apply", "--repo", &repo, "--yes"]).expect_code(0);
    assert_eq!(images_in(&env, &agents).len(), 2);

    // The reconciler as deployed: sync with leader election in its own namespace.
    let remote = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(remote.path()).unwrap();
    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v2", ""),
    );
    work.write(
        "daemons/logs.yaml",
        &daemon("logs", "registry.example/logs:v1", ""),
    );
    work.commit("agent v2, logs");
    work.push(remote.path());
    let state = scratch.path().join("state");
    let sync = |extra: &[&str]| {
        let mut a = vec![
            "-v",
            "sync",
            "--repo",
            remote.path().to_str().unwrap(),
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
    let imgs = images_in(&env, &agents);
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
    // Prune too: removing a daemon deletes its DaemonSets.
    work.remove("daemons/logs.yaml");
    work.commit("logs removed");
    work.push(remote.path());
    sync(&[]).expect_code(0);
    assert_eq!(images_in(&env, &agents).len(), 2);

    // Not one request drover made was refused.
    let denied: Vec<String> = audit_events(&env, mark)
        .into_iter()
        .filter(|e| e.user == user && e.code == 403)
        .map(|e| format!("{} {} {}/{}", e.verb, e.resource, e.namespace, e.name))
        .collect();
    assert!(
        denied.is_empty(),
        "drover needed permissions it lacks: {denied:#?}"
    );

    // Writes outside its namespaces are refused.
    let r = kubectl_as(&env, &kc, &["-n", "default", "create", "configmap", "x"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("forbidden"), "{}", r.stderr);
    let other = FleetRepo::new();
    other.write(
        "drover.yaml",
        &fleet(&format!("{p}-default"), "default", &p),
    );
    other.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v1", ""),
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
        let r = kubectl_as(&env, &kc, &["auth", "can-i", "--list", "-n", ns]);
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
    for (verb, what, ns) in [
        ("*", "*", "--all-namespaces"),
        ("create", "configmaps", "-n=default"),
        ("patch", "daemonsets.apps", "-n=default"),
        ("patch", "daemonsets.apps", "-n=kube-system"),
        ("get", "secrets", &format!("-n={system}")),
        ("list", "secrets", "--all-namespaces"),
        ("create", "pods", &format!("-n={agents}")),
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
        ("create", "clusterrolebindings", ""),
    ] {
        let mut a = vec!["auth", "can-i", verb, what];
        if !ns.is_empty() {
            a.push(ns);
        }
        let r = kubectl_as(&env, &kc, &a);
        assert_eq!(
            r.stdout.trim(),
            "no",
            "can-i {verb} {what} {ns}: {}{}",
            r.stdout,
            r.stderr
        );
    }
}

/// Images of the DaemonSets in `ns`, by name.
fn images_in(env: &TestEnv, ns: &str) -> std::collections::BTreeMap<String, String> {
    let r = env.kubectl(&["-n", ns, "get", "daemonsets", "-o", "json"]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_string(),
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn the_deployment_passes_only_flags_drover_sync_accepts() {
    let text = std::fs::read_to_string(format!("{ROOT}/deploy/deployment.yaml")).unwrap();
    let d: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/healthz");
    let scratch = tempfile::tempdir().unwrap();
    let state = scratch.path().join("state");
    let args: Vec<String> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| match a.as_str().unwrap() {
            "$(DROVER_REPO)" => scratch.path().display().to_string(),
            "/var/lib/drover" => state.display().to_string(),
            "0.0.0.0:8080" => "127.0.0.1:0".to_string(),
            other => other.to_string(),
        })
        .collect();
    assert!(args.contains(&"--leader-elect".to_string()), "{args:?}");
    let env_names: Vec<&str> = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for name in [
        "DROVER_GIT_TOKEN",
        "DROVER_SSH_KEY",
        "POD_NAME",
        "POD_NAMESPACE",
    ] {
        assert!(env_names.contains(&name), "{name} in {env_names:?}");
    }
    // Every flag parses; the run then fails only for want of a cluster.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(&args)
        .env("KUBECONFIG", scratch.path().join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("POD_NAME", "drover-0")
        .env("POD_NAMESPACE", "drover-system")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "drover {args:?}: {stderr}");
    assert!(
        stderr.contains("connecting to the cluster"),
        "drover {args:?}: {stderr}"
    );
}
