//! `drover sync --leader-elect` on the real local control plane: of two replicas
//! following one repository into one namespace only the Lease holder writes; when it
//! is killed the other takes over within the lease duration and applies the next
//! commit; a holder whose Lease is taken from it stops and exits non-zero.
//!
//! Each replica runs as its own ServiceAccount, so the API audit log shows whose
//! requests wrote the DaemonSets.

mod cluster_support;
mod sa_support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cluster_support::{FleetRepo, TestEnv, daemon, images};
use sa_support::{audit_events, audit_mark, sa_kubeconfig};

const LEASE_SECONDS: u64 = 6;

fn fleet(ns: &str) -> String {
    format!(
        r#"apiVersion: drover.dev/v1alpha1
kind: Fleet
metadata: {{name: {ns}}}
spec:
  namespace: {ns}
  groups: [all-nodes]
  stages:
    - {{name: all, groups: [all-nodes], timeout: 90s}}
  defaults:
    rollout: {{maxUnavailable: "50%", maxSurge: 0}}
---
apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {{name: all-nodes}}
spec:
  selector:
    matchLabels: {{drover.test/ns: {ns}}}
"#
    )
}

struct Replica {
    identity: String,
    child: Child,
    log: PathBuf,
    state: PathBuf,
    port: u16,
}

impl Replica {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn user(&self, ns: &str) -> String {
        format!("system:serviceaccount:{ns}:{}", self.identity)
    }

    /// The `drover_leader` gauge from /metrics, if the replica answers.
    fn leader_gauge(&self) -> Option<String> {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix("drover_leader ").map(str::to_string))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(env: &TestEnv, remote: &Path, work: &Path, identity: &str) -> Replica {
    let kubeconfig = sa_kubeconfig(env, &env.ns, identity, &env.ns, work);
    let state = work.join(format!("state-{identity}"));
    let log = work.join(format!("{identity}.log"));
    let port = free_port();
    let child = env
        .drover_cmd(&[
            "-v",
            "sync",
            "--repo",
            remote.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--interval",
            "2s",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--leader-elect",
            "--lease-duration",
            &format!("{LEASE_SECONDS}s"),
            "--identity",
            identity,
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .stdout(Stdio::null())
        .stderr(Stdio::from(File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    Replica {
        identity: identity.to_string(),
        child,
        log,
        state,
        port,
    }
}

fn holder(env: &TestEnv) -> Option<String> {
    let r = env.kubectl(&["-n", &env.ns, "get", "lease", "drover", "-o", "json"]);
    if r.code != 0 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&r.stdout).ok()?;
    v["spec"]["holderIdentity"].as_str().map(str::to_string)
}

/// Which of the replicas' ServiceAccounts wrote (not dry-ran) DaemonSets in the
/// test namespace. (The DaemonSet controller's status updates are not theirs.)
fn daemonset_writers(env: &TestEnv, from: usize, to: Option<usize>) -> Vec<String> {
    let replicas = format!("system:serviceaccount:{}:", env.ns);
    let events = audit_events(env, from);
    let take = to.map_or(usize::MAX, |t| t.saturating_sub(from));
    let mut users: Vec<String> = events
        .iter()
        .take(take)
        .filter(|e| e.namespace == env.ns && e.resource == "daemonsets" && e.is_write())
        .filter(|e| e.user.starts_with(&replicas))
        .map(|e| e.user.clone())
        .collect();
    users.sort();
    users.dedup();
    users
}

/// Two ServiceAccounts, one per replica; what they may do is not under test here
/// (tests/rbac.rs is), so both get cluster-admin.
fn service_accounts(env: &TestEnv) {
    for sa in ["replica-a", "replica-b"] {
        env.kubectl(&["-n", &env.ns, "create", "serviceaccount", sa])
            .expect_code(0);
    }
    env.kubectl(&[
        "create",
        "clusterrolebinding",
        &format!("{}-replicas", env.ns),
        "--clusterrole=cluster-admin",
        &format!("--serviceaccount={}:replica-a", env.ns),
        &format!("--serviceaccount={}:replica-b", env.ns),
    ])
    .expect_code(0);
}

fn lease(env: &TestEnv) -> Option<serde_json::Value> {
    let r = env.kubectl(&["-n", &env.ns, "get", "lease", "drover", "-o", "json"]);
    if r.code != 0 {
        return None;
    }
    serde_json::from_str(&r.stdout).ok()
}

fn micro_time(v: &serde_json::Value) -> jiff::Timestamp {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a MicroTime: {v}"))
}

struct Cleanup<'a> {
    env: &'a TestEnv,
    replicas: Vec<Replica>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for r in &mut self.replicas {
            let _ = r.child.kill();
            let _ = r.child.wait();
            if std::thread::panicking() {
                eprintln!("=== stderr of {}\n{}", r.identity, r.stderr());
            }
        }
        self.env.kubectl(&[
            "delete",
            "clusterrolebinding",
            &format!("{}-replicas", self.env.ns),
            "--ignore-not-found",
        ]);
    }
}

#[test]
fn only_the_lease_holder_applies_and_the_follower_takes_over_when_it_is_killed() {
    let env = TestEnv::new("leader");
    env.nodes("n", 2, &[]);
    let work = FleetRepo::new();
    let remote = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(remote.path()).unwrap();
    work.write("drover.yaml", &fleet(&env.ns));
    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("agent v1");
    work.push(remote.path());

    service_accounts(&env);

    let mark = audit_mark(&env);
    let mut c = Cleanup {
        env: &env,
        replicas: vec![],
    };
    c.replicas
        .push(start(&env, remote.path(), scratch.path(), "replica-a"));
    c.replicas
        .push(start(&env, remote.path(), scratch.path(), "replica-b"));

    env.wait_for("a Lease holder", Duration::from_secs(60), || {
        holder(&env).is_some()
    });
    env.wait_for("the v1 DaemonSet", Duration::from_secs(90), || {
        images(&env)
            .get("agent-all-nodes")
            .is_some_and(|i| i.ends_with("agent:v1"))
    });
    let first = holder(&env).unwrap();
    let (li, fi) = if first == "replica-a" { (0, 1) } else { (1, 0) };
    env.wait_for("the leader's audit record", Duration::from_secs(60), || {
        !c.replicas[li].records().is_empty()
    });
    // A few renewal periods with both running: the follower stays a follower.
    std::thread::sleep(Duration::from_secs(LEASE_SECONDS));
    assert_eq!(holder(&env).as_deref(), Some(first.as_str()));
    {
        let (l, f) = (&c.replicas[li], &c.replicas[fi]);
        assert!(
            l.stderr().contains("acquired the leader lease"),
            "{}",
            l.stderr()
        );
        assert!(
            !f.stderr().contains("acquired the leader lease"),
            "{}",
            f.stderr()
        );
        assert!(
            f.records().is_empty(),
            "the follower recorded: {:#?}",
            f.records()
        );
        assert_eq!(l.leader_gauge().as_deref(), Some("1"));
        assert_eq!(f.leader_gauge().as_deref(), Some("0"));
    }
    let before_kill = audit_mark(&env);
    assert_eq!(
        daemonset_writers(&env, mark, Some(before_kill)),
        vec![c.replicas[li].user(&env.ns)],
        "only the leader wrote DaemonSets"
    );

    // Kill the leader outright: no release, the Lease must expire.
    c.replicas[li].child.kill().unwrap();
    let killed = Instant::now();
    let _ = c.replicas[li].child.wait();
    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v2", ""),
    );
    let v2 = work.commit("agent v2");
    work.push(remote.path());

    let second = c.replicas[fi].identity.clone();
    env.wait_for(
        "the follower to take the Lease",
        Duration::from_secs(30),
        || holder(&env).as_deref() == Some(second.as_str()),
    );
    let takeover = killed.elapsed();
    eprintln!("takeover after {takeover:?} (lease duration {LEASE_SECONDS}s)");
    // The Lease expires at most LEASE_SECONDS after the last renewal; the follower
    // looks every LEASE_SECONDS/3, and 2 s cover requests on a loaded machine.
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS + LEASE_SECONDS / 3 + 2),
        "takeover took {takeover:?}"
    );
    env.wait_for("the v2 DaemonSet", Duration::from_secs(90), || {
        images(&env)
            .get("agent-all-nodes")
            .is_some_and(|i| i.ends_with("agent:v2"))
    });
    let f = &c.replicas[fi];
    env.wait_for(
        "the new leader's record of v2",
        Duration::from_secs(60),
        || {
            f.records()
                .iter()
                .any(|r| r["commit"]["sha"] == v2.as_str())
        },
    );
    assert!(
        f.stderr().contains("acquired the leader lease"),
        "{}",
        f.stderr()
    );
    assert_eq!(f.leader_gauge().as_deref(), Some("1"));
    assert_eq!(
        daemonset_writers(&env, before_kill, None),
        vec![f.user(&env.ns)],
        "after the kill only the new leader wrote DaemonSets"
    );

    // Someone else takes the Lease from the holder: it stops and exits non-zero.
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    env.kubectl(&[
        "-n",
        &env.ns,
        "patch",
        "lease",
        "drover",
        "--type=merge",
        "-p",
        &format!(r#"{{"spec":{{"holderIdentity":"intruder","renewTime":"{now}","leaseDurationSeconds":600}}}}"#),
    ])
    .expect_code(0);
    let taken = Instant::now();
    let child = &mut c.replicas[fi].child;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            taken.elapsed() < Duration::from_secs(LEASE_SECONDS * 2),
            "the replica kept running after losing the Lease"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "exited {:?} after {:?} once the Lease was taken",
        status.code(),
        taken.elapsed()
    );
    assert_eq!(status.code(), Some(1));
    let err = c.replicas[fi].stderr();
    assert!(err.contains("lost the leader lease"), "{err}");
    assert!(err.contains("held by intruder"), "{err}");
}

#[test]
fn a_leader_stopped_with_sigterm_releases_the_lease_and_the_follower_takes_it_before_it_expires() {
    let env = TestEnv::new("leader-term");
    env.nodes("n", 1, &[]);
    let work = FleetRepo::new();
    let remote = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(remote.path()).unwrap();
    work.write("drover.yaml", &fleet(&env.ns));
    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("agent v1");
    work.push(remote.path());
    service_accounts(&env);
    let mut c = Cleanup {
        env: &env,
        replicas: vec![],
    };
    c.replicas
        .push(start(&env, remote.path(), scratch.path(), "replica-a"));
    c.replicas
        .push(start(&env, remote.path(), scratch.path(), "replica-b"));
    env.wait_for("a Lease holder", Duration::from_secs(60), || {
        holder(&env).is_some()
    });
    let first = holder(&env).unwrap();
    let (li, fi) = if first == "replica-a" { (0, 1) } else { (1, 0) };
    env.wait_for("the leader's audit record", Duration::from_secs(90), || {
        !c.replicas[li].records().is_empty()
    });
    env.wait_for("the follower's /metrics", Duration::from_secs(30), || {
        c.replicas[fi].leader_gauge().as_deref() == Some("0")
    });

    // The Lease as last seen before SIGTERM: it is valid at least until
    // renewTime + leaseDurationSeconds, so a follower holding it before then was
    // handed it by the release.
    let before = lease(&env).unwrap();
    assert_eq!(before["spec"]["holderIdentity"], first.as_str());
    let expires = micro_time(&before["spec"]["renewTime"])
        + jiff::SignedDuration::from_secs(before["spec"]["leaseDurationSeconds"].as_i64().unwrap());
    let pid = c.replicas[li].child.id().to_string();
    let termed = jiff::Timestamp::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = c.replicas[li].child.wait().unwrap();
    let err = c.replicas[li].stderr();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("released the leader lease"), "{err}");

    let second = c.replicas[fi].identity.clone();
    env.wait_for(
        "the follower to take the Lease",
        Duration::from_secs(30),
        || holder(&env).as_deref() == Some(second.as_str()),
    );
    let after = lease(&env).unwrap();
    let acquired = micro_time(&after["spec"]["acquireTime"]);
    eprintln!(
        "takeover {:?} after SIGTERM; the released Lease would have expired {:?} after it",
        acquired.duration_since(termed),
        expires.duration_since(termed)
    );
    assert!(
        acquired < expires,
        "the follower took the Lease at {acquired}, not before it expired at {expires}: \
         it was not released"
    );
    env.wait_for("the new leader's gauge", Duration::from_secs(30), || {
        c.replicas[fi].leader_gauge().as_deref() == Some("1")
    });
}
