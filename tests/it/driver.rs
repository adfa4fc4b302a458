//! The drover driver (`rollout.driver: drover`) on the testbed: DaemonSets rendered
//! `OnDelete` whose pods drover replaces itself, in waves, zone by zone, under the
//! fleet's disruption budget and the daemons' disruption classes. Judged from the
//! pod watch (every change in the API server's order), not from drover's own words.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::harness::{
    Cmd, FleetYaml, NEVER_READY, Remote, Repo, Run, TEST_CLOCK, TestClock, TestEnv, WatchEvent,
    daemon, kill_sync_once_at, records, sync_once_args,
};

const ZONE: &str = "topology.kubernetes.io/zone";

const LONG: Duration = Duration::from_secs(120);

fn apply(env: &TestEnv, repo: &Repo) -> Run {
    env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .run()
}

/// `zones` zones of `per_zone` nodes each, prefixes `za`, `zb`, ... and zone labels
/// `zone-a`, `zone-b`, ...
fn zoned_nodes(env: &TestEnv, zones: usize, per_zone: usize) {
    for z in 0..zones {
        let letter = (b'a' + z as u8) as char;
        env.nodes(
            &format!("z{letter}"),
            per_zone,
            &[(ZONE, &format!("zone-{letter}"))],
        );
    }
}

/// One pod as the watch last showed it.
#[derive(Debug, Clone)]
struct PodState {
    ds: String,
    node: String,
    image: String,
    ready: bool,
    terminating: bool,
}

fn pod_state(o: &serde_json::Value) -> Option<(String, PodState)> {
    let uid = o["metadata"]["uid"].as_str()?.to_string();
    let ds = o["metadata"]["ownerReferences"][0]["name"]
        .as_str()?
        .to_string();
    let node = o["spec"]["nodeName"].as_str()?.to_string();
    let image = o["spec"]["containers"][0]["image"].as_str()?.to_string();
    let ready = o["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    let terminating = !o["metadata"]["deletionTimestamp"].is_null();
    Some((
        uid,
        PodState {
            ds,
            node,
            image,
            ready,
            terminating,
        },
    ))
}

/// The zone of a node, from its name (`<ns>-z<letter>-<i>`).
fn zone_of(node: &str) -> String {
    let part = node.rsplit('-').nth(1).unwrap_or_default();
    part.trim_start_matches('z').to_string()
}

/// Which wave of its zone each node is in, as the fleet's waves `[1, 10%, 100%]`
/// say: nodes in name order, cumulative reach.
fn expected_waves(nodes: &BTreeSet<String>) -> BTreeMap<String, usize> {
    let mut by_zone: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for n in nodes {
        by_zone.entry(zone_of(n)).or_default().push(n);
    }
    let mut wave = BTreeMap::new();
    for members in by_zone.values() {
        let reach = [1, members.len().div_ceil(10), members.len()];
        for (i, n) in members.iter().enumerate() {
            let w = reach.iter().position(|r| i < *r).unwrap() + 1;
            wave.insert((*n).clone(), w);
        }
    }
    wave
}

/// The watch's events one object each: kubectl prints a long initial list as
/// `ADDED` events holding a `PodList` chunk each.
fn each_object(events: &[WatchEvent]) -> Vec<(&str, &serde_json::Value)> {
    let mut out = Vec::new();
    for e in events {
        match e.object["items"].as_array() {
            Some(items)
                if e.object["kind"]
                    .as_str()
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                out.extend(items.iter().map(|o| (e.kind.as_str(), o)));
            }
            _ => out.push((e.kind.as_str(), &e.object)),
        }
    }
    out
}

/// What the replay of the pod watch found.
#[derive(Debug, Default)]
struct Replay {
    max_disrupted: usize,
    class_overlaps: Vec<String>,
    order_violations: Vec<String>,
    /// (daemonset, node) of each old pod drover deleted, in order.
    deleted: Vec<(String, String)>,
}

/// Replays `events` from the moment `settled` pods were listed Ready: the nodes
/// lacking a Ready pod of one of `sets` at each moment, two of `class` missing on
/// one node together, and, at each deletion of an old pod, whether every node of
/// an earlier zone or earlier wave of that set was already replaced (new image,
/// Ready).
fn replay(
    events: &[WatchEvent],
    sets: &[&str],
    class: (&str, &str),
    new_image: &str,
    settled: usize,
) -> Replay {
    let mut pods: BTreeMap<String, PodState> = BTreeMap::new();
    // (set, node) -> Ready pods not terminating, and those of the new image.
    let mut up: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    let count = |up: &mut BTreeMap<(String, String), (usize, usize)>, p: &PodState, d: isize| {
        if p.ready && !p.terminating {
            let e = up.entry((p.ds.clone(), p.node.clone())).or_default();
            e.0 = e.0.saturating_add_signed(d);
            if p.image == new_image {
                e.1 = e.1.saturating_add_signed(d);
            }
        }
    };
    let mut r = Replay::default();
    let mut started = false;
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    let mut waves = BTreeMap::new();
    for (kind, object) in each_object(events) {
        let Some((uid, now)) = pod_state(object) else {
            continue;
        };
        let before = pods.get(&uid).cloned();
        if let Some(b) = &before {
            count(&mut up, b, -1);
        }
        if kind == "DELETED" {
            pods.remove(&uid);
        } else {
            count(&mut up, &now, 1);
            pods.insert(uid.clone(), now.clone());
        }
        if !started {
            if pods.values().filter(|p| p.ready).count() < settled {
                continue;
            }
            started = true;
            nodes = pods.values().map(|p| p.node.clone()).collect();
            waves = expected_waves(&nodes);
        }
        let is_up = |ds: &str, node: &str| {
            up.get(&(ds.to_string(), node.to_string()))
                .is_some_and(|c| c.0 > 0)
        };
        // Only the nodes this event can have changed need looking at for classes;
        // the disrupted count is over every node.
        let disrupted = nodes
            .iter()
            .filter(|n| sets.iter().any(|s| !is_up(s, n)))
            .count();
        r.max_disrupted = r.max_disrupted.max(disrupted);
        if !is_up(class.0, &now.node) && !is_up(class.1, &now.node) {
            r.class_overlaps.push(format!(
                "{} and {} both down on {}",
                class.0, class.1, now.node
            ));
        }
        // An old pod asked to go: drover's deletion.
        let newly_terminating = now.terminating && before.as_ref().is_none_or(|b| !b.terminating);
        if newly_terminating && now.image != new_image {
            let (zone, wave) = (zone_of(&now.node), waves[&now.node]);
            r.deleted.push((now.ds.clone(), now.node.clone()));
            for n in &nodes {
                let earlier = zone_of(n) < zone || (zone_of(n) == zone && waves[n] < wave);
                let replaced = up
                    .get(&(now.ds.clone(), n.clone()))
                    .is_some_and(|c| c.1 > 0);
                if earlier && !replaced {
                    r.order_violations.push(format!(
                        "{} deleted on {} (zone {zone}, wave {wave}) before {n} (zone {}, wave {}) was replaced",
                        now.ds, now.node, zone_of(n), waves[n]
                    ));
                }
            }
        }
    }
    r
}

fn fleet(env: &TestEnv, on_failure: &str, timeout: &str, budget: &str) -> String {
    FleetYaml::one_group(&env.ns, "nodes", Some(timeout))
        .rollout(&format!(
            r#"{{driver: drover, waves: [1, "10%", "100%"], by: {ZONE}, maxUnavailable: "10%", maxSurge: 0, disruptionBudget: "{budget}"}}"#
        ))
        .on_failure(on_failure)
        .yaml()
}

/// A fleet repository whose agent v1 one `sync --once` has rolled out.
struct Synced {
    repo: Repo,
    remote: Remote,
    state: tempfile::TempDir,
    /// The test clock the syncs read, when there is one.
    clock: Option<String>,
}

impl Synced {
    fn v1(env: &TestEnv, fleet: &str, clock: Option<&TestClock>) -> Synced {
        let s = Synced {
            repo: Repo::new(),
            remote: Remote::new(),
            state: tempfile::tempdir().unwrap(),
            clock: clock.map(|c| c.path().to_string()),
        };
        s.repo.write("drover.yaml", fleet);
        s.repo.write(
            "daemons/agent.yaml",
            daemon("agent", "registry.example/agent:v1", ""),
        );
        s.repo.commit("agent v1");
        s.repo.push(&s.remote);
        s.sync(env).run().expect_code(0);
        s
    }

    /// `sync --once` of the remote into the state directory.
    fn sync(&self, env: &TestEnv) -> Cmd {
        let c = env.drover(&sync_once_args(&self.remote, self.state.path()));
        match &self.clock {
            Some(path) => c.env(TEST_CLOCK, path),
            None => c,
        }
    }

    /// Commits and pushes agent v2; its sha.
    fn v2(&self) -> String {
        self.repo.edit("daemons/agent.yaml", "agent:v1", "agent:v2");
        let sha = self.repo.commit("agent v2");
        self.repo.push(&self.remote);
        sha
    }
}

#[test]
fn three_daemons_roll_zone_by_zone_in_waves_under_the_budget_on_300_nodes() {
    let env = TestEnv::alone("driver-waves");
    zoned_nodes(&env, 3, 100);
    let repo = Repo::new();
    // 5% of 300 nodes: at most 15 nodes without a Ready pod of one of the three.
    repo.write("drover.yaml", fleet(&env, "halt", "15m", "5%"));
    let classed = "  disruptionClass: node-critical\n";
    repo.write(
        "daemons/cni.yaml",
        daemon("cni", "registry.example/cni:v1", classed),
    );
    repo.write(
        "daemons/csi.yaml",
        daemon("csi", "registry.example/csi:v1", classed),
    );
    repo.write(
        "daemons/logs.yaml",
        daemon("logs", "registry.example/logs:v1", ""),
    );
    repo.commit("three driven daemons, v1");
    apply(&env, &repo).expect_code(0);
    let ds = env.get_json(&["daemonset", "cni-nodes"]);
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "OnDelete", "{ds}");

    let watch = env.watch("pods");
    let node_of = pods_by_name(&env);
    let mark = env.tb.audit().mark();
    for d in ["cni", "csi", "logs"] {
        repo.edit(
            &format!("daemons/{d}.yaml"),
            &format!("{d}:v1"),
            &format!("{d}:v2"),
        );
    }
    repo.commit("three driven daemons, v2");
    let run = apply(&env, &repo);
    run.expect_code(0);
    assert!(run.stdout.contains("outcome: applied"), "{}", run.stdout);
    let new_ready = |es: &[WatchEvent], image: &str| {
        let mut pods = BTreeMap::new();
        for (kind, object) in each_object(es) {
            if let Some((uid, p)) = pod_state(object) {
                if kind == "DELETED" {
                    pods.remove(&uid);
                } else {
                    pods.insert(uid, p);
                }
            }
        }
        pods.values()
            .filter(|p| p.image.ends_with(image) && p.ready && !p.terminating)
            .count()
    };
    let events = watch.wait_until("900 v2 pods Ready", Duration::from_secs(60), |es| {
        new_ready(es, ":v2") == 900
    });
    // Every set is judged; the replay takes the images' tags one at a time.
    let mut deleted = 0;
    for (set, image) in [
        ("cni-nodes", "registry.example/cni:v2"),
        ("csi-nodes", "registry.example/csi:v2"),
        ("logs-nodes", "registry.example/logs:v2"),
    ] {
        let r = replay(
            &events,
            &["cni-nodes", "csi-nodes", "logs-nodes"],
            ("cni-nodes", "csi-nodes"),
            image,
            900,
        );
        eprintln!(
            "{set}: at most {} nodes disrupted at once; {} events, {} deletions",
            r.max_disrupted,
            events.len(),
            r.deleted.len()
        );
        assert!(
            r.max_disrupted <= 15,
            "{} nodes disrupted at once, budget 15",
            r.max_disrupted
        );
        assert!(
            r.max_disrupted >= 2,
            "the budget was never used: {}",
            r.max_disrupted
        );
        assert!(
            r.class_overlaps.is_empty(),
            "{:?}",
            &r.class_overlaps[..r.class_overlaps.len().min(5)]
        );
        let mine: Vec<&(String, String)> = r.deleted.iter().filter(|(d, _)| d == set).collect();
        assert_eq!(
            mine.len(),
            300,
            "{set}: every old pod replaced once by drover"
        );
        let violations: Vec<&String> = r
            .order_violations
            .iter()
            .filter(|v| v.starts_with(set))
            .collect();
        assert!(
            violations.is_empty(),
            "{:?}",
            &violations[..violations.len().min(5)]
        );
        // Zones strictly in order, by the deletions' order.
        let zones: Vec<String> = mine.iter().map(|(_, n)| zone_of(n)).collect();
        assert!(
            zones.windows(2).all(|w| w[0] <= w[1]),
            "{set}: zones out of order"
        );
        deleted += mine.len();
    }
    assert_eq!(deleted, 900);
    // The API server's audit log says the same: 900 deletions by drover, each of
    // an old pod (named before the change), each set zone after zone.
    let audit = env.tb.audit();
    let by_drover: Vec<crate::harness::AuditEvent> = audit
        .since(mark)
        .into_iter()
        .filter(|e| {
            e.verb == "delete" && e.resource == "pods" && e.namespace == env.ns && e.by_drover()
        })
        .collect();
    let ok: Vec<&crate::harness::AuditEvent> = by_drover.iter().filter(|e| e.code == 200).collect();
    assert_eq!(ok.len(), 900, "{} deletions answered 200", ok.len());
    let names: BTreeSet<&str> = ok.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.len(), 900, "each old pod deleted once");
    assert!(
        names.iter().all(|n| node_of.contains_key(*n)),
        "only pods that existed before the change were deleted"
    );
    for set in ["cni-nodes", "csi-nodes", "logs-nodes"] {
        let zones: Vec<String> = ok
            .iter()
            .filter(|e| e.name.starts_with(&format!("{set}-")))
            .map(|e| zone_of(&node_of[&e.name]))
            .collect();
        assert_eq!(zones.len(), 300, "{set}");
        assert!(
            zones.windows(2).all(|w| w[0] <= w[1]),
            "{set}: the audit log shows zones out of order"
        );
    }
}

/// 3 zones of 4 nodes, one daemon at v1; v2's pods never become Ready.
fn failing_wave(env: &TestEnv, on_failure: &str) -> (Repo, BTreeMap<String, String>) {
    zoned_nodes(env, 3, 4);
    let repo = Repo::new();
    repo.write("drover.yaml", fleet(env, on_failure, "20s", "50%"));
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    repo.commit("agent v1");
    apply(env, &repo).expect_code(0);
    let before = pod_uids(env);
    assert_eq!(before.len(), 12, "{before:?}");
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", NEVER_READY),
    );
    repo.commit("agent v2, never Ready");
    (repo, before)
}

/// Node -> uid of the agent pod on it.
fn pod_uids(env: &TestEnv) -> BTreeMap<String, String> {
    env.get_json(&["pods"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["spec"]["nodeName"].as_str().unwrap().to_string(),
                p["metadata"]["uid"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_failing_first_wave_halts_with_later_waves_and_zones_untouched() {
    let env = TestEnv::new("driver-halt");
    let (repo, before) = failing_wave(&env, "halt");
    let run = apply(&env, &repo);
    run.expect_code(1);
    assert!(run.stdout.contains("outcome: halted"), "{}", run.stdout);
    let after = pod_uids(&env);
    let touched: Vec<&String> = before
        .keys()
        .filter(|n| after.get(*n) != before.get(*n))
        .collect();
    // Wave 1 of zone a is its first node by name; nothing else was replaced.
    let first = before.keys().find(|n| zone_of(n) == "a").unwrap();
    assert_eq!(touched, [first], "only wave 1 of zone a is touched");
}

#[test]
fn rollback_of_a_failing_wave_returns_only_the_nodes_it_touched() {
    let env = TestEnv::new("driver-rollback");
    let (repo, before) = failing_wave(&env, "rollback");
    let watch = env.watch("pods");
    let run = apply(&env, &repo);
    run.expect_code(1);
    assert!(
        run.stdout.contains("outcome: rolled-back"),
        "{}",
        run.stdout
    );
    env.wait_for("12 v1 pods Ready", Duration::from_secs(30), || {
        let pods = env.get_json(&["pods"]);
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                p["spec"]["containers"][0]["image"] == "registry.example/agent:v1"
                    && p["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                    && p["metadata"]["deletionTimestamp"].is_null()
            })
            .count()
            == 12
    });
    let after = pod_uids(&env);
    let first = before.keys().find(|n| zone_of(n) == "a").unwrap();
    for (node, uid) in &before {
        if node == first {
            assert_ne!(
                after.get(node),
                Some(uid),
                "{node} was touched: its pod is a new v1"
            );
        } else {
            assert_eq!(
                after.get(node),
                Some(uid),
                "{node} was not touched and keeps its pod"
            );
        }
    }
    // Deleted: the first node's v1 pod, then its v2 pod; nothing else.
    let events = watch.wait_until("the watch", Duration::from_secs(5), |_| true);
    let deleted: BTreeSet<String> = each_object(&events)
        .into_iter()
        .filter(|(kind, _)| *kind == "DELETED")
        .filter_map(|(_, o)| pod_state(o).map(|(_, p)| p.node))
        .collect();
    assert_eq!(deleted.iter().collect::<Vec<_>>(), [first]);
}

#[test]
fn sync_killed_at_random_points_during_the_waves_finishes_the_commit_with_one_record() {
    let env = TestEnv::new("driver-crash");
    // 20 a zone: waves of 1, 1 and 18 nodes.
    zoned_nodes(&env, 3, 20);
    let s = Synced::v1(&env, &fleet(&env, "halt", "3m", "20%"), None);
    let before = pod_uids(&env);

    let sha = s.v2();
    // Three kills, each at a wave line picked at random (the seed is printed), in
    // zone order so each lands in a later part of the rollout than the one before.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    eprintln!("kill points seed {seed}");
    let mut points = Vec::new();
    for (i, zone) in ["zone-a", "zone-b", "zone-c"].iter().enumerate() {
        let wave = 1 + (seed as usize >> (i * 2)) % 3;
        points.push((*zone, format!("wave {wave}/3")));
    }
    for (zone, wave) in &points {
        eprintln!("killing at {wave} of {zone}");
        kill_sync_once_at(&env, &s.remote, s.state.path(), &[wave.as_str(), zone]);
    }
    let r = s.sync(&env).run();
    r.expect_code(0);
    let pods = env.get_json(&["pods"]);
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 60, "one pod per node");
    assert!(
        items
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "registry.example/agent:v2"),
        "every node at v2"
    );
    let after = pod_uids(&env);
    assert!(
        before.keys().all(|n| after.get(n) != before.get(n)),
        "every pod replaced"
    );
    let recs = records(s.state.path());
    let for_commit: Vec<&serde_json::Value> = recs
        .iter()
        .filter(|r| r["commit"]["sha"] == sha.as_str())
        .collect();
    assert_eq!(for_commit.len(), 1, "one record for the commit: {recs:#?}");
    assert_eq!(for_commit[0]["outcome"], "applied");
    env.drover(&[
        "audit",
        "verify",
        "--state-dir",
        s.state.path().to_str().unwrap(),
    ])
    .run()
    .expect_code(0);
}

/// A fleet of one group whose daemons drover drives with `rollout` (a flow map's
/// inside, after `driver: drover`).
fn driven_fleet(env: &TestEnv, rollout: &str, timeout: &str) -> FleetYaml {
    FleetYaml::one_group(&env.ns, "nodes", Some(timeout))
        .rollout(&format!("{{driver: drover, maxSurge: 0, {rollout}}}"))
}

/// Node -> name of each pod of the namespace now.
fn pods_by_name(env: &TestEnv) -> BTreeMap<String, String> {
    env.get_json(&["pods"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["spec"]["nodeName"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Node -> the Ready condition's last transition of the pod on it now.
fn ready_times(env: &TestEnv) -> BTreeMap<String, jiff::Timestamp> {
    env.get_json(&["pods"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let node = p["spec"]["nodeName"].as_str()?.to_string();
            let cs = p["status"]["conditions"].as_array()?;
            let ready = cs
                .iter()
                .find(|c| c["type"] == "Ready" && c["status"] == "True")?;
            let t: jiff::Timestamp = ready["lastTransitionTime"].as_str()?.parse().ok()?;
            Some((node, t))
        })
        .collect()
}

/// drover's pod deletions in the test's namespace, from the API server's audit log:
/// (node, when the server received it), in the server's order.
fn drover_pod_deletes(
    env: &TestEnv,
    mark: crate::harness::audit::Mark,
    node_of: &BTreeMap<String, String>,
) -> Vec<(String, jiff::Timestamp)> {
    env.tb
        .audit()
        .since(mark)
        .into_iter()
        .filter(|e| {
            e.verb == "delete"
                && e.resource == "pods"
                && e.namespace == env.ns
                && e.by_drover()
                && e.code == 200
        })
        .map(|e| {
            let node = node_of.get(&e.name).cloned().unwrap_or_default();
            (node, e.received)
        })
        .collect()
}

#[test]
fn each_wave_bakes_before_the_next_wave_and_zone_and_status_shows_it() {
    let env = TestEnv::new("driver-bake");
    zoned_nodes(&env, 2, 3);
    let s = Synced::v1(
        &env,
        &driven_fleet(
            &env,
            &format!(
                r#"waves: [1, "100%"], by: {ZONE}, maxUnavailable: "50%", disruptionBudget: "50%", waveBake: 4s"#
            ),
            "2m",
        )
        .yaml(),
        None,
    );
    let node_of = pods_by_name(&env);
    let ds = env.get_json(&["daemonset", "agent-nodes"]);
    assert_eq!(
        ds["metadata"]["annotations"]["drover.dev/wave-bake"], "4s",
        "{ds}"
    );

    s.v2();
    let mark = env.tb.audit().mark();
    let mut sync = s.sync(&env).spawn_lines();
    sync.wait_for_line(&["wave 1/2", "baking until", "zone-a"], LONG);
    // While wave 1 of zone a bakes, `status` shows the wave and the budget in use.
    let status = env
        .drover(&[
            "status",
            "--repo",
            &s.repo.path_str(),
            "--state-dir",
            s.state.path().to_str().unwrap(),
        ])
        .run();
    status.expect_code(0);
    let out = &status.stdout;
    assert!(
        out.contains("waves:") && out.contains("agent-nodes"),
        "{out}"
    );
    assert!(
        out.contains("zone-a wave 1/2: 1 node(s), baking until"),
        "{out}"
    );
    assert!(out.contains("(1/6 in all)"), "{out}");
    assert!(out.contains("budget:      0/3 node(s) disrupted"), "{out}");
    assert!(sync.wait_exit(LONG).success(), "{}", sync.stderr());

    // The API server's log: each wave's deletions come 4 s or more after every pod
    // of the wave before (in the same zone, or the last wave of the zone before)
    // was Ready, by the pods' own Ready times.
    let deletes = drover_pod_deletes(&env, mark, &node_of);
    assert_eq!(deletes.len(), 6, "{deletes:?}");
    let ready = ready_times(&env);
    let nodes: Vec<&String> = node_of
        .values()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let zone_nodes =
        |z: &str| -> Vec<&String> { nodes.iter().copied().filter(|n| zone_of(n) == z).collect() };
    let (a, b) = (zone_nodes("a"), zone_nodes("b"));
    let deleted_at = |n: &str| {
        deletes
            .iter()
            .find(|(d, _)| d == n)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| panic!("{n} was not deleted: {deletes:?}"))
    };
    let bake = jiff::SignedDuration::from_secs(4);
    // Zone a: wave 1 is its first node; wave 2 the other two.
    for n in &a[1..] {
        let gap = deleted_at(n).duration_since(ready[a[0]]);
        assert!(
            gap >= bake,
            "{n} deleted {gap:?} after wave 1's pod was Ready, bake 4s"
        );
    }
    // Zone b starts after zone a's last wave has baked.
    let a_done = a.iter().map(|n| ready[*n]).max().unwrap();
    let gap = deleted_at(b[0]).duration_since(a_done);
    assert!(gap >= bake, "zone b began {gap:?} after zone a was Ready");
    for n in &b[1..] {
        let gap = deleted_at(n).duration_since(ready[b[0]]);
        assert!(gap >= bake, "{n} deleted {gap:?} after zone b's wave 1");
    }
}

/// How a test holds the replacements mid-wave, and lets them go.
struct Hold<'a> {
    /// Extra lines of the Fleet's spec.
    spec: &'a str,
    clock: Option<&'a TestClock>,
    hold: &'a dyn Fn(&Repo),
    /// What the sync logs once the replacements are held.
    held_line: &'a [&'a str],
    release: &'a dyn Fn(&Repo),
}

/// 6 nodes, one replacement at a time, a stage that fails after 20 s without
/// progress: held during wave 2 for 25 s, nothing is deleted and the stage does not
/// fail; released, the commit finishes with one record.
fn held_mid_wave_past_the_timeout(env: &TestEnv, h: &Hold<'_>) {
    zoned_nodes(env, 1, 6);
    let fleet = driven_fleet(env, r#"waves: [1, "100%"], maxUnavailable: 1"#, "20s")
        .spec_lines(h.spec)
        .yaml();
    let s = Synced::v1(env, &fleet, h.clock);
    let before = pod_uids(env);

    let sha = s.v2();
    let mut sync = s.sync(env).spawn_lines();
    sync.wait_for_line(&["wave 2/2"], LONG);
    (h.hold)(&s.repo);
    sync.wait_for_line(h.held_line, LONG);
    // Let what was in flight settle, then nothing more may be deleted.
    std::thread::sleep(Duration::from_secs(3));
    let audit = env.tb.audit();
    let mark = audit.mark();
    let now = pod_uids(env);
    let replaced_when_held = before
        .iter()
        .filter(|(n, u)| now.get(*n) != Some(*u))
        .count();
    assert!(
        (2..6).contains(&replaced_when_held),
        "wave 2 was under way when held: {replaced_when_held} of 6 replaced"
    );
    // Longer than the stage's 20 s timeout and progress deadline.
    std::thread::sleep(Duration::from_secs(25));
    let deletes: Vec<_> = audit
        .since(mark)
        .into_iter()
        .filter(|e| e.verb == "delete" && e.resource == "pods" && e.namespace == env.ns)
        .collect();
    assert!(deletes.is_empty(), "deleted while held: {deletes:?}");
    assert!(
        sync.child.try_wait().unwrap().is_none(),
        "the sync ended while held (the held stage must not time out): {}",
        sync.stderr()
    );
    (h.release)(&s.repo);
    assert!(sync.wait_exit(LONG).success(), "{}", sync.stderr());
    let after = pod_uids(env);
    assert!(
        before
            .iter()
            .all(|(n, u)| after.get(n).is_some_and(|a| a != u)),
        "every pod replaced after the release"
    );
    let recs = records(s.state.path());
    let mine: Vec<_> = recs
        .iter()
        .filter(|r| r["commit"]["sha"] == sha.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{recs:#?}");
    assert_eq!(mine[0]["outcome"], "applied");
}

#[test]
fn a_pause_during_the_waves_holds_replacements_past_the_stage_timeout_and_resume_finishes() {
    let env = TestEnv::new("driver-pause");
    let pause = |repo: &Repo| {
        env.drover(&[
            "pause",
            "--repo",
            &repo.path_str(),
            "--reason",
            "watching wave 2",
        ])
        .run()
        .expect_code(0);
    };
    let resume = |repo: &Repo| {
        env.drover(&["resume", "--repo", &repo.path_str()])
            .run()
            .expect_code(0);
    };
    held_mid_wave_past_the_timeout(
        &env,
        &Hold {
            spec: "",
            clock: None,
            hold: &pause,
            held_line: &["replacements held", "watching wave 2"],
            release: &resume,
        },
    );
}

#[test]
fn a_freeze_window_that_opens_during_the_waves_holds_replacements_until_it_ends() {
    let env = TestEnv::new("driver-freeze");
    // Open 15:00-16:00 UTC; the test clock moves into it mid-wave, then past it.
    let clock = TestClock::at("2026-06-05T14:50:00Z");
    let open = |_: &Repo| clock.set("2026-06-05T15:10:00Z");
    let over = |_: &Repo| clock.set("2026-06-05T16:10:00Z");
    held_mid_wave_past_the_timeout(
        &env,
        &Hold {
            spec: "  freezeWindows:\n    - {name: change-freeze, start: \"0 15 * * *\", timeZone: UTC, duration: 1h}\n",
            clock: Some(&clock),
            hold: &open,
            held_line: &["replacements held", "change-freeze"],
            release: &over,
        },
    );
}

#[test]
fn a_node_that_joins_mid_rollout_gets_the_new_version_and_one_that_leaves_does_not_stall_it() {
    let env = TestEnv::new("driver-churn");
    zoned_nodes(&env, 1, 6);
    // One node at a time (the budget), a 3 s bake between the waves to join in.
    let fleet = driven_fleet(
        &env,
        r#"waves: [1, "100%"], maxUnavailable: 2, disruptionBudget: 1, waveBake: 3s"#,
        "2m",
    );
    let s = Synced::v1(&env, &fleet.yaml(), None);
    let before = pod_uids(&env);
    let mut nodes: Vec<&String> = before.keys().collect();
    nodes.sort();
    let leaving = nodes.last().unwrap().to_string();

    s.v2();
    let watch = env.watch("pods");
    let mut run = s.sync(&env).spawn_lines();
    run.wait_for_line(&["wave 1/2", "baking until"], LONG);
    // Mid-rollout: a node joins, and a node not yet replaced leaves; a node that
    // is gone takes no share of the budget of 1, so the rollout goes on.
    env.nodes("zlate", 1, &[(ZONE, "zone-a")]);
    env.tb
        .kubectl(&["delete", "node", &leaving, "--wait=false"])
        .expect_code(0);
    assert!(run.wait_exit(LONG).success(), "{}", run.stderr());

    let pods = env.get_json(&["pods"]);
    let live: Vec<&serde_json::Value> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null()
                && p["spec"]["nodeName"] != leaving.as_str()
        })
        .collect();
    assert_eq!(live.len(), 6, "5 old nodes and the new one");
    assert!(
        live.iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "registry.example/agent:v2"),
        "every node at v2"
    );
    // The joining node's pod was created at v2 and never replaced.
    let events = watch.wait_until("the watch", Duration::from_secs(5), |_| true);
    let late: Vec<PodState> = each_object(&events)
        .into_iter()
        .filter_map(|(_, o)| pod_state(o).map(|(_, p)| p))
        .filter(|p| p.node.contains("-zlate-"))
        .collect();
    assert!(!late.is_empty(), "a pod on the new node");
    assert!(
        late.iter()
            .all(|p| p.image == "registry.example/agent:v2" && !p.terminating),
        "{late:?}"
    );
}

#[test]
fn calico_node_from_its_upstream_manifest_with_on_delete_is_imported_and_rolled_by_the_driver() {
    // Calico's manifest as its careful-upgrade guide has it: `updateStrategy:
    // OnDelete` (fixtures/import/calico-node, one edit). `drover import` reads that
    // as `rollout.driver: drover`, and drover replaces the pods zone by zone.
    let env = TestEnv::new("driver-calico");
    zoned_nodes(&env, 2, 3);
    let tmp = tempfile::tempdir().unwrap();
    let upstream = tmp.path().join("upstream");
    std::fs::create_dir_all(&upstream).unwrap();
    let manifest = std::fs::read_to_string(crate::harness::root(
        "fixtures/import/calico-node/calico.yaml",
    ))
    .unwrap();
    let rolling =
        "  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 1\n";
    assert_eq!(
        manifest.matches(rolling).count(),
        1,
        "calico-node's strategy"
    );
    std::fs::write(
        upstream.join("calico.yaml"),
        manifest.replacen(rolling, "  updateStrategy:\n    type: OnDelete\n", 1),
    )
    .unwrap();
    let fleet = tmp.path().join("fleet");
    env.drover(&[
        "import",
        upstream.to_str().unwrap(),
        "--out",
        fleet.to_str().unwrap(),
        "--fleet-namespace",
        &env.ns,
    ])
    .run()
    .expect_any(&[0, 2]);
    let daemon_file = fleet.join("daemons/calico-node.yaml");
    let text = std::fs::read_to_string(&daemon_file).unwrap();
    assert!(text.contains("  rollout:\n    driver: drover\n"), "{text}");
    let edit = |rel: &str, from: &str, to: &str| {
        let p = fleet.join(rel);
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains(from), "{rel} has no `{from}`:\n{t}");
        std::fs::write(&p, t.replacen(from, to, 1)).unwrap();
    };
    // This test's own fleet name and nodes; the cluster-scoped RBAC left out (the
    // import test's fleet owns calico-node's ClusterRole on the shared testbed).
    edit(
        "drover.yaml",
        "  name: imported\n",
        &format!("  name: {}\n", env.ns),
    );
    edit(
        "drover.yaml",
        "  companions:\n",
        &format!(
            "  defaults:\n    rollout: {{waves: [1, \"100%\"], by: {ZONE}, maxUnavailable: 1, maxSurge: 0}}\n  companions:\n"
        ),
    );
    edit(
        "groups/default.yaml",
        "selector: {}",
        &format!("selector: {{matchLabels: {{drover.test/ns: {}}}}}", env.ns),
    );
    for f in [
        "clusterrole-calico-node.yaml",
        "clusterrolebinding-calico-node.yaml",
    ] {
        std::fs::remove_file(fleet.join("companions/calico-node").join(f)).unwrap();
    }
    let apply = || {
        env.drover(&[
            "apply",
            "--repo",
            fleet.to_str().unwrap(),
            "--worktree",
            "--yes",
        ])
        .run()
    };
    apply().expect_code(0);
    let ds = env.get_json(&["daemonset", "calico-node-default"]);
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "OnDelete", "{ds}");
    let before = pod_uids(&env);
    assert_eq!(before.len(), 6, "{before:?}");
    let node_of = pods_by_name(&env);

    edit(
        "daemons/calico-node.yaml",
        "image: quay.io/calico/node:v3.31.7",
        "image: quay.io/calico/node:v3.31.8",
    );
    let mark = env.tb.audit().mark();
    let run = apply();
    run.expect_code(0);
    assert!(run.stdout.contains("outcome: applied"), "{}", run.report());
    let after = pod_uids(&env);
    assert!(
        before
            .iter()
            .all(|(n, u)| after.get(n).is_some_and(|a| a != u)),
        "every calico-node pod replaced: {before:?} -> {after:?}"
    );
    // drover deleted each old pod once, zone a's before zone b's.
    let deletes = drover_pod_deletes(&env, mark, &node_of);
    let zones: Vec<String> = deletes.iter().map(|(n, _)| zone_of(n)).collect();
    assert_eq!(zones.len(), 6, "{deletes:?}");
    assert!(zones.windows(2).all(|w| w[0] <= w[1]), "{zones:?}");
    let ds = env.get_json(&["daemonset", "calico-node-default"]);
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"],
        "quay.io/calico/node:v3.31.8"
    );
}
