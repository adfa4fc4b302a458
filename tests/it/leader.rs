//! `drover sync --leader-elect` on the real local control plane: of two replicas
//! following one repository into one namespace only the Lease holder writes; when it
//! is killed the other takes over within the lease duration and applies the next
//! commit; a holder whose Lease is taken from it stops and exits non-zero; a holder
//! stopped with SIGTERM releases the Lease, so the other takes it before it expires.
//!
//! Each replica runs as its own ServiceAccount, so the API audit log shows whose
//! requests wrote the DaemonSets.

use std::path::Path;
use std::time::{Duration, Instant};

use jiff::SignedDuration;

use crate::harness::{AuditEvent, FleetYaml, Process, Remote, Repo, TestEnv, daemon, records};

const LEASE_SECONDS: u64 = 6;

fn fleet(ns: &str) -> String {
    FleetYaml::one_group(ns, "all-nodes", Some("90s"))
        .rollout(r#"{maxUnavailable: "50%", maxSurge: 0}"#)
        .yaml()
}

struct Replica {
    identity: String,
    process: Process,
    state: std::path::PathBuf,
    port: u16,
}

impl Replica {
    fn stderr(&mut self) -> String {
        self.process.stderr()
    }

    fn records(&self) -> Vec<serde_json::Value> {
        records(&self.state)
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

fn start(env: &TestEnv, remote: &Remote, work: &Path, identity: &str) -> Replica {
    let kubeconfig = env.tb.sa_kubeconfig(&env.ns, identity, &env.ns, work);
    let state = work.join(format!("state-{identity}"));
    let log = work.join(format!("{identity}.log"));
    let port = free_port();
    let process = env
        .drover(&[
            "-v",
            "sync",
            "--repo",
            &remote.path_str(),
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
        .kubeconfig(&kubeconfig)
        .spawn_logged(&log);
    Replica {
        identity: identity.to_string(),
        process,
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
fn daemonset_writers(env: &TestEnv, events: &[AuditEvent]) -> Vec<String> {
    let replicas = format!("system:serviceaccount:{}:", env.ns);
    let mut users: Vec<String> = events
        .iter()
        .filter(|e| e.namespace == env.ns && e.resource == "daemonsets" && e.is_write())
        .filter(|e| e.user.starts_with(&replicas))
        .map(|e| e.user.clone())
        .collect();
    users.sort();
    users.dedup();
    users
}

/// The successful writes of `user` to the test's Lease, in order.
fn lease_writes<'a>(env: &TestEnv, events: &'a [AuditEvent], user: &str) -> Vec<&'a AuditEvent> {
    events
        .iter()
        .filter(|e| e.namespace == env.ns && e.resource == "leases" && e.name == "drover")
        .filter(|e| e.user == user && e.is_write() && e.code < 300)
        .collect()
}

/// Two ServiceAccounts, one per replica; what they may do is not under test here
/// (rbac.rs is), so both get cluster-admin.
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

/// A fleet repository with `agent` v1, pushed to a new remote.
fn agent_v1(env: &TestEnv) -> (Repo, Remote) {
    let work = Repo::new();
    let remote = Remote::new();
    work.write("drover.yaml", fleet(&env.ns));
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("agent v1");
    work.push(&remote);
    (work, remote)
}

struct Cleanup<'a> {
    env: &'a TestEnv<'static>,
    replicas: Vec<Replica>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        // Each replica's process is killed (and its stderr shown on failure) when
        // it drops.
        self.replicas.clear();
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
    // Alone on the machine: it measures how long a takeover takes.
    let env = TestEnv::alone("leader");
    env.nodes("n", 2, &[]);
    let (work, remote) = agent_v1(&env);
    let scratch = tempfile::tempdir().unwrap();

    service_accounts(&env);

    let audit = env.tb.audit();
    let mark = audit.mark();
    let mut c = Cleanup {
        env: &env,
        replicas: vec![],
    };
    c.replicas
        .push(start(&env, &remote, scratch.path(), "replica-a"));
    c.replicas
        .push(start(&env, &remote, scratch.path(), "replica-b"));

    env.wait_for("a Lease holder", Duration::from_secs(60), || {
        holder(&env).is_some()
    });
    env.wait_for("the v1 DaemonSet", Duration::from_secs(90), || {
        env.images()
            .get("agent-all-nodes")
            .is_some_and(|i| i.ends_with("agent:v1"))
    });
    let first = holder(&env).unwrap();
    let (li, fi) = if first == "replica-a" { (0, 1) } else { (1, 0) };
    env.wait_for("the leader's audit record", Duration::from_secs(60), || {
        !c.replicas[li].records().is_empty()
    });
    // A few renewal periods with both running (the leader renews the Lease three
    // times, a whole lease duration, as the audit log shows): the follower, which
    // watches the Lease and may claim it at any time, stays a follower.
    let (leader_user, follower_user) = (c.replicas[li].user(&env.ns), c.replicas[fi].user(&env.ns));
    let periods = audit.mark();
    env.wait_for(
        "three renewals of the Lease",
        Duration::from_secs(30),
        || lease_writes(&env, &audit.since(periods), &leader_user).len() >= 3,
    );
    assert_eq!(holder(&env).as_deref(), Some(first.as_str()));
    {
        let [a, b] = &mut c.replicas[..] else {
            unreachable!("two replicas")
        };
        let (l, f) = if li == 0 { (a, b) } else { (b, a) };
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
    let before_kill = audit.mark();
    assert_eq!(
        daemonset_writers(&env, &audit.between(mark, Some(before_kill))),
        vec![leader_user.clone()],
        "only the leader wrote DaemonSets"
    );

    // Kill the leader outright: no release, the Lease must expire.
    c.replicas[li].process.kill();
    let killed = Instant::now();
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", ""),
    );
    let v2 = work.commit("agent v2");
    work.push(&remote);

    let second = c.replicas[fi].identity.clone();
    env.wait_for(
        "the follower to take the Lease",
        Duration::from_secs(30),
        || holder(&env).as_deref() == Some(second.as_str()),
    );
    eprintln!(
        "the test saw the takeover {:?} after the kill (lease duration {LEASE_SECONDS}s)",
        killed.elapsed()
    );
    // By the API server's clock: from the killed leader's last renewal to the
    // follower's first write of the Lease.
    let events = audit.since(mark);
    let last_renewal = *lease_writes(&env, &events, &leader_user)
        .last()
        .expect("the leader renewed the Lease");
    let takeover_write = lease_writes(&env, &events, &follower_user)
        .into_iter()
        .find(|e| e.received > last_renewal.completed)
        .expect("the follower wrote the Lease");
    let takeover = takeover_write
        .completed
        .duration_since(last_renewal.completed);
    eprintln!("takeover {takeover:?} after the last renewal");
    // The Lease expires at most LEASE_SECONDS after the last renewal; the follower
    // looks every LEASE_SECONDS/3, and 2 s cover requests on a loaded machine.
    assert!(
        takeover <= SignedDuration::from_secs((LEASE_SECONDS + LEASE_SECONDS / 3 + 2) as i64),
        "takeover took {takeover:?}"
    );
    env.wait_for("the v2 DaemonSet", Duration::from_secs(90), || {
        env.images()
            .get("agent-all-nodes")
            .is_some_and(|i| i.ends_with("agent:v2"))
    });
    let f = &mut c.replicas[fi];
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
        daemonset_writers(&env, &audit.since(before_kill)),
        vec![follower_user.clone()],
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
    // It must notice within two lease durations; past that it kept running.
    let status = c.replicas[fi]
        .process
        .wait_exit(Duration::from_secs(LEASE_SECONDS * 2));
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
    // Alone on the machine: the follower must take the Lease before it would expire.
    let env = TestEnv::alone("leader-term");
    env.nodes("n", 1, &[]);
    let (_work, remote) = agent_v1(&env);
    let scratch = tempfile::tempdir().unwrap();
    service_accounts(&env);
    let mut c = Cleanup {
        env: &env,
        replicas: vec![],
    };
    c.replicas
        .push(start(&env, &remote, scratch.path(), "replica-a"));
    c.replicas
        .push(start(&env, &remote, scratch.path(), "replica-b"));
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
        + SignedDuration::from_secs(before["spec"]["leaseDurationSeconds"].as_i64().unwrap());
    let termed = jiff::Timestamp::now();
    c.replicas[li].process.terminate();
    let status = c.replicas[li].process.wait_exit(Duration::from_secs(60));
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

/// The audit records in the cluster copy (`drover-trail-<state name>-*` in the test's
/// namespace), in sequence order.
fn cluster_records(env: &TestEnv) -> Vec<serde_json::Value> {
    let r = env.kubectl(&[
        "-n",
        &env.ns,
        "get",
        "configmaps",
        "-l",
        &format!("drover.dev/trail={}", env.state_name()),
        "-o",
        "json",
    ]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let mut recs: Vec<serde_json::Value> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|cm| cm["data"]["record"].as_str())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    recs.sort_by_key(|r| r["seq"].as_u64());
    recs
}

/// The first successful write of DaemonSet `name` in the test namespace by a
/// replica.
fn first_write<'a>(env: &TestEnv, events: &'a [AuditEvent], name: &str) -> Option<&'a AuditEvent> {
    let replicas = format!("system:serviceaccount:{}:", env.ns);
    events.iter().find(|e| {
        e.namespace == env.ns
            && e.resource == "daemonsets"
            && e.name == name
            && e.is_write()
            && e.code < 300
            && e.user.starts_with(&replicas)
    })
}

#[test]
fn a_follower_that_takes_over_mid_bake_resumes_that_stage_and_the_cluster_trail_records_the_commit_once()
 {
    const BAKE: i64 = 20;
    let env = TestEnv::new("handover");
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("rest", 1, &[]);
    let work = Repo::new();
    let remote = Remote::new();
    work.write(
        "drover.yaml",
        FleetYaml::new(&env.ns)
            .group("canary", &[("role", "canary")])
            .group("rest", &[])
            .stage("canary", &["canary"], Some(&format!("{BAKE}s")), "120s")
            .stage("rest", &["rest"], None, "90s")
            .rollout(r#"{maxUnavailable: "50%", maxSurge: 0}"#)
            .yaml(),
    );
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    let v1 = work.commit("agent v1");
    work.push(&remote);
    let scratch = tempfile::tempdir().unwrap();
    service_accounts(&env);
    let audit = env.tb.audit();
    let mark = audit.mark();
    let mut c = Cleanup {
        env: &env,
        replicas: vec![],
    };
    c.replicas
        .push(start(&env, &remote, scratch.path(), "replica-a"));
    c.replicas
        .push(start(&env, &remote, scratch.path(), "replica-b"));
    env.wait_for("a Lease holder", Duration::from_secs(60), || {
        holder(&env).is_some()
    });
    let first = holder(&env).unwrap();
    let (li, fi) = if first == "replica-a" { (0, 1) } else { (1, 0) };
    // The leader bakes the canary stage: kill it outright, no release.
    env.wait_for("the leader's canary bake", Duration::from_secs(90), || {
        c.replicas[li]
            .stderr()
            .lines()
            .any(|l| l.contains("baking") && l.contains("canary"))
    });
    c.replicas[li].process.kill();
    let killed = audit.mark();
    assert!(
        !env.images().contains_key("agent-rest"),
        "the second stage started before the kill: {:?}",
        env.images()
    );
    assert!(
        cluster_records(&env).is_empty(),
        "the leader recorded before its bake ended"
    );

    let second = c.replicas[fi].identity.clone();
    env.wait_for(
        "the follower's record of v1",
        Duration::from_secs(120),
        || {
            cluster_records(&env)
                .iter()
                .any(|r| r["commit"]["sha"] == v1.as_str())
        },
    );
    assert_eq!(holder(&env).as_deref(), Some(second.as_str()));
    let f = &mut c.replicas[fi];
    assert!(
        f.stderr().contains("resuming an interrupted rollout"),
        "{}",
        f.stderr()
    );

    // The second stage: written by the follower only, a whole bake after it took
    // the Lease (by the API server's clock), so after the canary's resumed bake.
    let events = audit.since(mark);
    let rest = first_write(&env, &events, "agent-rest").expect("agent-rest was written");
    assert_eq!(rest.user, c.replicas[fi].user(&env.ns));
    let takeover = lease_writes(&env, &audit.since(killed), &c.replicas[fi].user(&env.ns))
        .first()
        .copied()
        .expect("the follower wrote the Lease")
        .completed;
    assert!(
        rest.received.duration_since(takeover) >= SignedDuration::from_secs(BAKE),
        "agent-rest written {:?} after the takeover, before a {BAKE}s bake",
        rest.received.duration_since(takeover)
    );
    assert!(
        daemonset_writers(&env, &audit.since(killed))
            .iter()
            .all(|u| *u == c.replicas[fi].user(&env.ns)),
        "after the kill only the follower wrote DaemonSets"
    );

    // One unbroken chain in the cluster with one record for the commit: the
    // resumed canary stage baked a whole bake under the follower.
    let recs = cluster_records(&env);
    let of_v1: Vec<_> = recs
        .iter()
        .filter(|r| r["commit"]["sha"] == v1.as_str() && r["kind"] == "commit")
        .collect();
    assert_eq!(of_v1.len(), 1, "{recs:#?}");
    let stages = of_v1[0]["stages"].as_array().unwrap();
    assert_eq!(stages[0]["name"], "canary");
    assert_eq!(stages[0]["resumed"], true, "{stages:#?}");
    assert!(stages[0]["bake_seconds"].as_f64().unwrap() >= BAKE as f64);
    assert_eq!(stages[1]["name"], "rest");

    // The local state and trail are caches: with both replicas' wiped, the cluster
    // copy is read. (The follower's mirror of the repository stays: it runs on.)
    for r in &c.replicas {
        for cache in ["state.json", "audit.jsonl"] {
            let _ = std::fs::remove_file(r.state.join(cache));
        }
        assert!(records(&r.state).is_empty());
    }
    let verify = env
        .drover(&["audit", "verify", "--audit-anchor-namespace", &env.ns])
        .run();
    verify.expect_code(0);
    assert!(
        verify.stdout.contains(&format!(
            "checked: read the cluster copy {}/drover-state-{}: {} record object(s)",
            env.ns,
            env.state_name(),
            recs.len()
        )) && verify.stdout.contains(&format!(
            "checked: the hash chain of {} record(s)",
            recs.len()
        )) && verify.stdout.contains("its head hash is record")
            && verify.stdout.contains("it counts"),
        "{}",
        verify.stdout
    );
    let history = env
        .drover(&[
            "history",
            "--audit-anchor-namespace",
            &env.ns,
            "--format",
            "json",
        ])
        .run();
    history.expect_code(0);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(listed, recs);

    // A process without leader election does not write a leader's state.
    let fresh = scratch.path().join("unelected");
    let r = env
        .drover(&[
            "sync",
            "--repo",
            &remote.path_str(),
            "--state-dir",
            fresh.to_str().unwrap(),
            "--audit-anchor-namespace",
            &env.ns,
            "--once",
        ])
        .run();
    r.expect_code(1);
    assert!(
        r.stderr
            .contains("without --leader-elect this process does not write it"),
        "{}",
        r.stderr
    );

    // A later term in the state object fences the leader off: its next state write
    // is refused and it stops.
    env.kubectl(&[
        "-n",
        &env.ns,
        "patch",
        "configmap",
        &format!("drover-state-{}", env.state_name()),
        "--type=merge",
        "-p",
        r#"{"data":{"holder":"newer","term":"1000"}}"#,
    ])
    .expect_code(0);
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", ""),
    );
    work.commit("agent v2");
    work.push(&remote);
    let status = c.replicas[fi].process.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1));
    let err = c.replicas[fi].stderr();
    assert!(
        err.contains("written by leader newer in lease term 1000"),
        "{err}"
    );
    assert!(
        env.images().values().all(|i| i.ends_with("agent:v1")),
        "a fenced leader applied v2: {:?}",
        env.images()
    );
}
