//! The rollout machine driven by event sequences, with no cluster: unit tests of its
//! decisions and property tests of its invariants against a simulated world.

use super::*;
use proptest::prelude::*;

const S: Duration = Duration::from_secs(1);

fn gate(bake: u64) -> Gate {
    Gate {
        bake: S * bake as u32,
        timeout: S * 120,
        progress_deadline: S * 30,
        max_unobserved: S * 20,
        max_gap: S * 5,
        node_conditions: ConditionRule::defaults(),
    }
}

fn spec(bakes: &[u64], on_failure: OnFailure) -> RolloutSpec {
    RolloutSpec {
        stages: bakes
            .iter()
            .enumerate()
            .map(|(i, b)| StageSpec {
                name: format!("s{i}"),
                daemonsets: vec![format!("ds{i}")],
                gate: gate(*b),
            })
            .collect(),
        on_failure,
        prune: false,
    }
}

fn status(gen_: i64, desired: i64, updated: i64, available: i64) -> RolloutStatus {
    RolloutStatus {
        generation: gen_,
        observed_generation: gen_,
        desired,
        updated,
        available,
        unavailable: desired - available,
        ready: available,
    }
}

fn ready_node() -> NodeHealth {
    NodeHealth {
        conditions: [("Ready".to_string(), "True".to_string())].into(),
    }
}

/// A snapshot of stage `i`: its DaemonSet with `updated`/`available` of 2, two pods.
fn snap(i: usize, updated: i64, available: i64, pods: &[(&str, bool, i64)]) -> Observation {
    Observation::Snapshot(Snapshot {
        daemonsets: [(format!("ds{i}"), status(2, 2, updated, available))].into(),
        pods: pods
            .iter()
            .map(|(n, ready, restarts)| {
                (
                    n.to_string(),
                    PodHealth {
                        ready: *ready,
                        restarts: *restarts,
                    },
                )
            })
            .collect(),
        nodes: [("n1".to_string(), ready_node())].into(),
        held: false,
    })
}

/// `snap` with the drover driver holding the stage's replacements.
fn held(i: usize, updated: i64, available: i64) -> Observation {
    let Observation::Snapshot(mut s) = snap(i, updated, available, &[("a", true, 0)]) else {
        unreachable!("snap is a snapshot")
    };
    s.held = true;
    Observation::Snapshot(s)
}

fn healthy(i: usize) -> Observation {
    snap(i, 2, 2, &[("a", true, 0), ("b", true, 0)])
}

fn applied(i: usize) -> Observation {
    Observation::Applied {
        stage: i,
        nodes_before: [("n1".to_string(), ready_node())].into(),
        generations: [(format!("ds{i}"), 2)].into(),
    }
}

/// Feeds `(seconds, observation)` pairs; returns every step.
fn run(m: &mut Machine, events: &[(u64, Observation)]) -> Vec<Step> {
    events
        .iter()
        .map(|(t, o)| m.handle(&Event::new(S * *t as u32, o.clone())))
        .collect()
}

#[test]
fn a_healthy_stage_succeeds_after_its_bake_and_only_then_the_next_is_applied() {
    let mut m = Machine::new(spec(&[10, 0], OnFailure::Halt));
    let steps = run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, snap(0, 1, 1, &[("a", true, 0)])),
            (2, healthy(0)),
            (5, healthy(0)),
            (9, healthy(0)),
        ],
    );
    assert_eq!(steps[0], Step::Apply { stage: 0 });
    assert!(steps[1..].iter().all(|s| *s == Step::Observe { stage: 0 }));
    assert_eq!(m.bake_observed(), Some(S * 7));
    let step = m.handle(&Event::new(S * 12, healthy(0)));
    assert_eq!(step, Step::Apply { stage: 1 });
    let r = &m.cursor().finished[0];
    assert!(r.succeeded());
    assert_eq!(r.bake_observed, S * 10);
    assert_eq!(r.rollout, Some(S * 2));
}

#[test]
fn a_display_learns_from_the_machine_when_a_bake_starts_and_which_statuses_are_current() {
    let mut m = Machine::new(spec(&[10, 0], OnFailure::Halt));
    run(&mut m, &[(0, Observation::Start), (0, applied(0))]);
    // Before drover's write had been seen: generation 1, complete for the old spec.
    assert!(!m.is_current("ds0", &status(1, 2, 2, 2)));
    assert!(m.is_current("ds0", &status(2, 2, 1, 1)));
    run(&mut m, &[(1, snap(0, 1, 1, &[("a", true, 0)]))]);
    assert!(!m.baking(), "half rolled out is not baking");
    run(&mut m, &[(2, healthy(0))]);
    assert!(m.baking());
    // The next stage's machine state starts over.
    let steps = run(
        &mut m,
        &[
            (6, healthy(0)),
            (10, healthy(0)),
            (13, healthy(0)),
            (13, applied(1)),
        ],
    );
    assert_eq!(steps[2], Step::Apply { stage: 1 }, "{steps:?}");
    assert!(!m.baking(), "the next stage has not rolled out yet");
}

#[test]
fn a_status_older_than_the_write_is_never_complete() {
    // The watch still holds the object from before the write: generation 1, complete.
    let stale = Observation::Snapshot(Snapshot {
        held: false,
        daemonsets: [("ds0".to_string(), status(1, 2, 2, 2))].into(),
        pods: [(
            "a".to_string(),
            PodHealth {
                ready: true,
                restarts: 0,
            },
        )]
        .into(),
        nodes: [("n1".to_string(), ready_node())].into(),
    });
    let mut m = Machine::new(spec(&[0, 0], OnFailure::Halt));
    let steps = run(
        &mut m,
        &[(0, Observation::Start), (0, applied(0)), (1, stale)],
    );
    assert_eq!(
        steps[2],
        Step::Observe { stage: 0 },
        "a stale status passed the gate"
    );
    assert_eq!(
        m.handle(&Event::new(S * 2, healthy(0))),
        Step::Apply { stage: 1 }
    );
}

#[test]
fn an_api_outage_during_the_bake_stops_the_bake_clock_and_fails_past_max_unobserved() {
    // The scenario verified by hand: bake 60 s, the API server gone 2 s into the bake
    // for 78 s. Nothing may call the stage healthy while nobody watches it.
    let mut m = Machine::new(spec(&[60, 0], OnFailure::Halt));
    run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, healthy(0)),
            (3, healthy(0)),
        ],
    );
    assert_eq!(m.bake_observed(), Some(S * 2));
    let mut last = Step::Observe { stage: 0 };
    for t in 4..=81 {
        let o = if t % 2 == 0 {
            Observation::Unobserved {
                reason: "connection refused".into(),
            }
        } else {
            Observation::Tick
        };
        last = m.handle(&Event::new(S * t, o));
        if last != (Step::Observe { stage: 0 }) {
            break;
        }
    }
    let Step::Record(record) = last else {
        panic!("expected the stage to fail, got {last:?}");
    };
    assert_eq!(record.outcome, Outcome::Halted);
    let r = &record.stages[0];
    assert!(matches!(
        r.verdict,
        StageVerdict::Failed {
            reason: FailReason::Unobserved { .. }
        }
    ));
    assert_eq!(r.bake_observed, S * 2, "only observed time counts");
    assert_eq!(record.stages.len(), 1, "the next stage never started");
}

#[test]
fn after_a_short_outage_the_bake_needs_its_full_observed_time() {
    let mut m = Machine::new(spec(&[10, 0], OnFailure::Halt));
    run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, healthy(0)),
            (3, healthy(0)),
        ],
    );
    // 3..15: unobserved (12 s > max_gap, under max_unobserved).
    let steps = run(
        &mut m,
        &[
            (
                6,
                Observation::Unobserved {
                    reason: "watch broke".into(),
                },
            ),
            (15, healthy(0)),
            (20, healthy(0)),
        ],
    );
    assert!(
        steps.iter().all(|s| *s == Step::Observe { stage: 0 }),
        "{steps:?}"
    );
    assert_eq!(
        m.bake_observed(),
        Some(S * 7),
        "1..3 and 15..20 observed, 3..15 not"
    );
    let step = m.handle(&Event::new(S * 23, healthy(0)));
    assert_eq!(step, Step::Apply { stage: 1 });
    assert_eq!(
        m.cursor().finished[0].unobserved,
        S * 13,
        "0..1 before the first snapshot, 3..15"
    );
}

#[test]
fn ticks_without_fresh_snapshots_fail_the_stage_even_without_an_error() {
    // A watch that hangs silently: no error arrives, but no snapshot either.
    let mut m = Machine::new(spec(&[30], OnFailure::Halt));
    run(
        &mut m,
        &[(0, Observation::Start), (0, applied(0)), (1, healthy(0))],
    );
    let mut t = 1;
    let step = loop {
        t += 1;
        let s = m.handle(&Event::new(S * t, Observation::Tick));
        if s != (Step::Observe { stage: 0 }) {
            break s;
        }
        assert!(t < 100, "never failed");
    };
    assert!(matches!(step, Step::Record(_)));
    assert!(t > 20 && t <= 27, "failed at {t}");
}

#[test]
fn a_snapshot_gap_wider_than_max_gap_is_not_observed_time() {
    let mut m = Machine::new(spec(&[10], OnFailure::Halt));
    run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, healthy(0)),
            (9, healthy(0)), // 8 s apart: more than max_gap (5 s)
        ],
    );
    assert_eq!(m.bake_observed(), Some(Duration::ZERO));
}

#[test]
fn a_restart_or_a_pod_gone_unready_during_the_bake_fails_the_stage() {
    for bad in [
        snap(0, 2, 2, &[("a", true, 1), ("b", true, 0)]),
        snap(0, 2, 1, &[("a", false, 0), ("b", true, 0)]),
    ] {
        let mut m = Machine::new(spec(&[10, 0], OnFailure::Halt));
        let steps = run(
            &mut m,
            &[
                (0, Observation::Start),
                (0, applied(0)),
                (1, healthy(0)),
                (2, bad),
            ],
        );
        let Step::Record(r) = steps.last().unwrap() else {
            panic!("{steps:?}");
        };
        assert!(matches!(
            r.stages[0].verdict,
            StageVerdict::Failed {
                reason: FailReason::PodRestarted { .. } | FailReason::PodNotReady { .. }
            }
        ));
    }
}

#[test]
fn a_pod_that_appears_during_the_bake_is_judged_from_when_it_is_ready() {
    let mut m = Machine::new(spec(&[10, 0], OnFailure::Halt));
    let steps = run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, healthy(0)),
            // A node joined: a new pod, not ready yet; the bake clock holds.
            (
                3,
                snap(0, 2, 2, &[("a", true, 0), ("b", true, 0), ("c", false, 0)]),
            ),
            (
                5,
                snap(0, 2, 2, &[("a", true, 0), ("b", true, 0), ("c", true, 2)]),
            ),
            (
                7,
                snap(0, 2, 2, &[("a", true, 0), ("b", true, 0), ("c", true, 3)]),
            ),
        ],
    );
    let Step::Record(r) = steps.last().unwrap() else {
        panic!("{steps:?}");
    };
    assert_eq!(
        r.stages[0].verdict,
        StageVerdict::Failed {
            reason: FailReason::PodRestarted {
                pod: "c".into(),
                from: 2,
                to: 3
            }
        }
    );
    // 1..3 ends on a snapshot with a pod not ready, 3..5 starts on one: neither counts.
    assert_eq!(r.stages[0].bake_observed, Duration::ZERO);
}

#[test]
fn a_new_pod_that_never_gets_ready_fails_the_bake_at_the_progress_deadline() {
    let mut m = Machine::new(spec(&[300], OnFailure::Halt));
    run(
        &mut m,
        &[(0, Observation::Start), (0, applied(0)), (1, healthy(0))],
    );
    let mut t = 1;
    let step = loop {
        t += 2;
        let s = m.handle(&Event::new(
            S * t,
            snap(0, 2, 2, &[("a", true, 0), ("b", true, 0), ("c", false, 0)]),
        ));
        if s != (Step::Observe { stage: 0 }) {
            break s;
        }
    };
    let Step::Record(r) = step else { panic!() };
    assert!(matches!(
        r.stages[0].verdict,
        StageVerdict::Failed {
            reason: FailReason::NoProgress { .. }
        }
    ));
    assert!(t <= 35, "failed at {t}");
}

#[test]
fn a_node_going_not_ready_fails_the_stage_and_rollback_returns_every_applied_stage() {
    let mut m = Machine::new(spec(&[2, 30, 0], OnFailure::Rollback));
    run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, healthy(0)),
            (3, healthy(0)),
        ],
    );
    assert_eq!(m.cursor().stage, 1);
    let mut bad = Snapshot {
        daemonsets: [("ds1".to_string(), status(2, 2, 1, 1))].into(),
        ..Snapshot::default()
    };
    bad.nodes.insert(
        "n1".into(),
        NodeHealth {
            conditions: [("Ready".to_string(), "False".to_string())].into(),
        },
    );
    let steps = run(&mut m, &[(4, applied(1)), (5, Observation::Snapshot(bad))]);
    assert_eq!(steps[1], Step::RollBack { stages: vec![1, 0] });
    let step = m.handle(&Event::new(S * 9, Observation::RolledBack));
    let Step::Record(r) = step else { panic!() };
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert!(r.reason.unwrap().contains("condition Ready is False"));
}

#[test]
fn a_node_already_not_ready_before_the_stage_does_not_fail_it() {
    let mut m = Machine::new(spec(&[0], OnFailure::Halt));
    let down = NodeHealth {
        conditions: [("Ready".to_string(), "Unknown".to_string())].into(),
    };
    let mut s = match healthy(0) {
        Observation::Snapshot(s) => s,
        _ => unreachable!(),
    };
    s.nodes.insert("n2".into(), down.clone());
    let steps = run(
        &mut m,
        &[
            (0, Observation::Start),
            (
                0,
                Observation::Applied {
                    stage: 0,
                    nodes_before: [("n1".to_string(), ready_node()), ("n2".to_string(), down)]
                        .into(),
                    generations: [("ds0".to_string(), 2)].into(),
                },
            ),
            (1, Observation::Snapshot(s)),
        ],
    );
    assert!(matches!(
        steps.last(),
        Some(Step::Record(RunRecord {
            outcome: Outcome::Applied,
            ..
        }))
    ));
}

#[test]
fn no_rollout_progress_for_the_deadline_fails_but_unobserved_time_does_not_count() {
    let mut m = Machine::new(spec(&[0], OnFailure::Halt));
    run(&mut m, &[(0, Observation::Start), (0, applied(0))]);
    // Stuck at 1/2 for 28 observed seconds, with an outage of 15 s in between.
    for t in (1..=15).step_by(2) {
        assert_eq!(
            m.handle(&Event::new(S * t, snap(0, 1, 1, &[]))),
            Step::Observe { stage: 0 }
        );
    }
    m.handle(&Event::new(
        S * 20,
        Observation::Unobserved { reason: "x".into() },
    ));
    // 1..15 is 14 s observed; 15..30 is broken by the notice; 30..46 is 16 s more:
    // 30 s observed without progress is the limit, 48 passes it.
    for t in (30..=46).step_by(2) {
        assert_eq!(
            m.handle(&Event::new(S * t, snap(0, 1, 1, &[]))),
            Step::Observe { stage: 0 },
            "at {t}"
        );
    }
    let step = m.handle(&Event::new(S * 48, snap(0, 1, 1, &[])));
    let Step::Record(r) = step else {
        panic!("{step:?}")
    };
    assert!(matches!(
        r.stages[0].verdict,
        StageVerdict::Failed {
            reason: FailReason::NoProgress { .. }
        }
    ));
    assert_eq!(r.stages[0].unobserved, S * 16, "0..1 and 15..30");
}

#[test]
fn replacements_held_by_a_pause_or_freeze_stop_the_deadline_and_the_timeout() {
    // Progress deadline 30 s, timeout 120 s; held from 10 s to 200 s.
    let mut m = Machine::new(spec(&[0], OnFailure::Halt));
    run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, snap(0, 1, 1, &[("a", true, 0)])),
        ],
    );
    let mut t = 10;
    while t <= 200 {
        let step = m.handle(&Event::new(S * t as u32, held(0, 1, 1)));
        assert_eq!(step, Step::Observe { stage: 0 }, "held at {t}s");
        t += 2;
    }
    // Released, and still stuck: the deadline runs again from here.
    let mut failed = None;
    while t <= 260 {
        let step = m.handle(&Event::new(S * t as u32, snap(0, 1, 1, &[("a", true, 0)])));
        if step != (Step::Observe { stage: 0 }) {
            failed = Some(t);
            break;
        }
        t += 2;
    }
    let at = failed.expect("a stuck stage fails once it is no longer held");
    assert!(
        (230..=236).contains(&at),
        "failed at {at}s, 30 s after the hold ended"
    );
    let r = &m.cursor().finished[0];
    assert!(
        matches!(
            &r.verdict,
            StageVerdict::Failed {
                reason: FailReason::NoProgress { .. }
            }
        ),
        "{r:?}"
    );
}

#[test]
fn a_stage_not_held_is_failed_by_its_progress_deadline_as_before() {
    let mut m = Machine::new(spec(&[0], OnFailure::Halt));
    run(&mut m, &[(0, Observation::Start), (0, applied(0))]);
    let mut t = 1;
    let at = loop {
        let step = m.handle(&Event::new(S * t as u32, snap(0, 1, 1, &[("a", true, 0)])));
        if step != (Step::Observe { stage: 0 }) {
            break t;
        }
        t += 2;
        assert!(t < 100, "never failed");
    };
    assert!(at <= 35, "failed at {at}s");
}

#[test]
fn a_stage_past_its_timeout_fails() {
    let mut m = Machine::new(spec(&[0], OnFailure::Halt));
    run(&mut m, &[(0, Observation::Start), (0, applied(0))]);
    let mut t = 0;
    let step = loop {
        t += 2;
        // Progress every time, so only the timeout can end it.
        let s = m.handle(&Event::new(S * t, snap(0, ((t / 2) % 2) as i64, 0, &[])));
        if s != (Step::Observe { stage: 0 }) {
            break s;
        }
    };
    let Step::Record(r) = step else { panic!() };
    let StageVerdict::Failed { reason } = &r.stages[0].verdict else {
        panic!("{r:?}")
    };
    assert!(
        matches!(
            reason,
            FailReason::Timeout {
                timeout_seconds: 120,
                ..
            }
        ),
        "{reason:?}"
    );
    let text = reason.to_string();
    assert!(
        text.starts_with("rollout did not complete within 2m: ds0 ("),
        "{text}"
    );
    assert!(text.contains("are the stage's nodes NotReady?"), "{text}");
}

#[test]
fn a_refused_apply_fails_the_stage_and_a_retryable_one_is_retried() {
    let mut m = Machine::new(spec(&[0], OnFailure::Halt));
    let steps = run(
        &mut m,
        &[
            (0, Observation::Start),
            (
                1,
                Observation::ApplyFailed {
                    stage: 0,
                    reason: "connection refused".into(),
                    retryable: true,
                },
            ),
            (
                2,
                Observation::ApplyFailed {
                    stage: 0,
                    reason: "conflict with kubectl".into(),
                    retryable: false,
                },
            ),
        ],
    );
    assert_eq!(steps[1], Step::Apply { stage: 0 });
    let Step::Record(r) = &steps[2] else { panic!() };
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .contains("conflict with kubectl")
    );
}

#[test]
fn a_paused_fleet_starts_no_new_stage_until_resumed() {
    let mut m = Machine::new(spec(&[0, 0], OnFailure::Halt));
    let steps = run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, Observation::Pause),
            (2, healthy(0)),
            (3, Observation::Tick),
            (4, Observation::Resume),
        ],
    );
    assert_eq!(steps[3], Step::WaitForResume { stage: 1 });
    assert_eq!(steps[4], Step::WaitForResume { stage: 1 });
    assert_eq!(steps[5], Step::Apply { stage: 1 });
}

#[test]
fn a_resumed_rollout_reapplies_and_regates_its_stage_from_scratch() {
    let mut m = Machine::new(spec(&[0, 10], OnFailure::Halt));
    run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, healthy(0)),
            (2, applied(1)),
            (3, healthy(1)),
            (7, healthy(1)),
        ],
    );
    let saved = m.cursor().clone();
    let mut r = Machine::resume(m.spec().clone(), saved);
    let step = r.handle(&Event::new(Duration::ZERO, Observation::Start));
    assert_eq!(step, Step::Apply { stage: 1 });
    run(&mut r, &[(0, applied(1)), (1, healthy(1)), (6, healthy(1))]);
    assert_eq!(r.bake_observed(), Some(S * 5), "the bake starts again");
    let step = r.handle(&Event::new(S * 11, healthy(1)));
    let Step::Record(rec) = step else { panic!() };
    assert!(rec.stages[1].resumed && !rec.stages[0].resumed);
    assert_eq!(rec.outcome, Outcome::Applied);
}

#[test]
fn prune_runs_after_the_last_stage_and_its_failure_is_recorded() {
    let mut s = spec(&[0], OnFailure::Halt);
    s.prune = true;
    let mut m = Machine::new(s);
    let steps = run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, healthy(0)),
            (
                2,
                Observation::PruneFailed {
                    reason: "403".into(),
                },
            ),
            (3, Observation::Recorded),
        ],
    );
    assert_eq!(steps[2], Step::Prune);
    let Step::Record(r) = &steps[3] else { panic!() };
    assert_eq!(r.outcome, Outcome::Halted);
    assert_eq!(steps[4], Step::Done);
}

#[test]
fn the_cursor_round_trips_through_json() {
    let mut m = Machine::new(spec(&[0, 5], OnFailure::Rollback));
    run(
        &mut m,
        &[(0, Observation::Start), (0, applied(0)), (1, healthy(0))],
    );
    let text = serde_json::to_string(m.cursor()).unwrap();
    let back: Cursor = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, m.cursor());
}

// ---------------------------------------------------------------------------------
// Properties, against a simulated world.

/// How a stage's world behaves, as a function of time since its (re)apply.
#[derive(Debug, Clone)]
enum Behaviour {
    /// Complete after `rollout` snapshots, then healthy.
    Healthy { rollout: u8 },
    /// Never completes.
    Stuck,
    /// A pod restarts at snapshot `at`.
    Restarts { at: u8 },
    /// The node goes NotReady at snapshot `at`.
    NodeBreaks { at: u8 },
    /// Healthy, but the API is gone from snapshot `from` for `len` seconds.
    Outage { from: u8, len: u8 },
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        4 => (0u8..4).prop_map(|rollout| Behaviour::Healthy { rollout }),
        1 => Just(Behaviour::Stuck),
        1 => (0u8..20).prop_map(|at| Behaviour::Restarts { at }),
        1 => (0u8..20).prop_map(|at| Behaviour::NodeBreaks { at }),
        2 => ((0u8..15), (1u8..40)).prop_map(|(from, len)| Behaviour::Outage { from, len }),
    ]
}

/// What the world shows of stage `i` at `k` seconds after its apply.
fn world(i: usize, b: &Behaviour, k: u64) -> Observation {
    let done = |r: u8| k > r as u64;
    match b {
        Behaviour::Healthy { rollout } if !done(*rollout) => snap(i, (k % 2) as i64, 0, &[]),
        Behaviour::Stuck => snap(i, 1, 1, &[("a", true, 0)]),
        Behaviour::Restarts { at } if k >= *at as u64 + 2 => {
            snap(i, 2, 2, &[("a", true, 1), ("b", true, 0)])
        }
        Behaviour::NodeBreaks { at } if k >= *at as u64 + 2 => {
            let mut s = match healthy(i) {
                Observation::Snapshot(s) => s,
                _ => unreachable!(),
            };
            s.nodes.insert(
                "n1".into(),
                NodeHealth {
                    conditions: [("Ready".to_string(), "False".to_string())].into(),
                },
            );
            Observation::Snapshot(s)
        }
        Behaviour::Outage { from, len } if k > *from as u64 && k <= *from as u64 + *len as u64 => {
            if k.is_multiple_of(3) {
                Observation::Unobserved {
                    reason: "connection refused".into(),
                }
            } else {
                Observation::Tick
            }
        }
        _ => healthy(i),
    }
}

/// The end state of a run, without timings.
#[derive(Debug, Clone, PartialEq, Eq)]
struct End {
    outcome: Outcome,
    verdicts: Vec<(String, String)>,
    rolled_back: Option<Vec<usize>>,
}

/// Drives the machine against the world; crashes (rebuilding from the last saved
/// cursor) after each event count in `crashes`. Checks the invariants as it goes.
fn drive(spec: &RolloutSpec, world_of: &[Behaviour], crashes: &[usize]) -> End {
    let mut m = Machine::new(spec.clone());
    let mut saved = m.cursor().clone();
    let mut t = Duration::ZERO;
    let mut ev = Observation::Start;
    let mut count = 0usize;
    let mut since_apply = 0u64;
    let mut applied_set: BTreeSet<usize> = BTreeSet::new();
    let mut rolled_back = None;
    // Independent oracle: per stage attempt, the healthy snapshots seen after
    // completion, and whether an unobserved notice broke the chain.
    let mut oracle: Vec<(Duration, bool)> = Vec::new();
    let mut oracle_observed = Duration::ZERO;
    loop {
        count += 1;
        if count > 5_000 {
            panic!("the rollout never ended");
        }
        if crashes.contains(&count) {
            m = Machine::resume(spec.clone(), saved.clone());
            ev = Observation::Start;
        }
        let finished_before = m.cursor().finished.len();
        let step = m.handle(&Event::new(t, ev.clone()));
        t += S;
        // Invariant: a stage that just succeeded was observed healthy, by the
        // independent oracle's count, for at least its whole bake.
        let finished = &m.cursor().finished;
        if finished.len() > finished_before
            && let Some(last) = finished.last()
            && last.succeeded()
        {
            let i = finished.len() - 1;
            assert!(
                oracle_observed >= spec.stages[i].gate.bake,
                "stage {i} succeeded after {oracle_observed:?} observed, bake {:?}",
                spec.stages[i].gate.bake
            );
        }
        if matches!(
            step,
            Step::Apply { .. } | Step::RollBack { .. } | Step::Prune | Step::Record(_)
        ) {
            saved = m.cursor().clone();
        }
        ev = match &step {
            Step::Apply { stage } => {
                // Invariant: stage n+1 is applied only after stage n passed its gate.
                let finished = &m.cursor().finished;
                assert_eq!(finished.len(), *stage, "applying {stage} out of order");
                assert!(
                    finished.iter().all(StageResult::succeeded),
                    "after a failure"
                );
                applied_set.insert(*stage);
                since_apply = 0;
                oracle.clear();
                oracle_observed = Duration::ZERO;
                applied(*stage)
            }
            Step::Observe { stage } => {
                since_apply += 1;
                let o = world(*stage, &world_of[*stage], since_apply);
                // The oracle: consecutive healthy, complete, all-ready snapshots no
                // further apart than max_gap, with no notice between, are observed.
                match &o {
                    Observation::Snapshot(s) => {
                        let ok = s.daemonsets.values().all(RolloutStatus::is_complete)
                            && s.pods.values().all(|p| p.ready && p.restarts == 0)
                            && !s.pods.is_empty()
                            && s.nodes.values().all(|n| n.conditions["Ready"] == "True");
                        if let Some((prev, prev_ok)) = oracle.last()
                            && ok
                            && *prev_ok
                            && t - *prev <= spec.stages[*stage].gate.max_gap
                        {
                            oracle_observed += t - *prev;
                        }
                        oracle.push((t, ok));
                    }
                    Observation::Unobserved { .. } => oracle.push((t, false)),
                    _ => {}
                }
                o
            }
            Step::WaitForResume { .. } => Observation::Resume,
            Step::RollBack { stages } => {
                // Invariant: rollback touches only stages that were applied.
                assert!(stages.iter().all(|s| applied_set.contains(s)), "{stages:?}");
                rolled_back = Some(stages.clone());
                Observation::RolledBack
            }
            Step::Prune => Observation::Pruned,
            Step::Record(r) => {
                // Invariant: a stage is never succeeded without having been observed
                // healthy for its whole bake (checked for the stage that just ran).
                for (i, res) in r.stages.iter().enumerate() {
                    if res.succeeded() {
                        assert!(res.bake_observed >= spec.stages[i].gate.bake);
                    }
                }
                Observation::Recorded
            }
            Step::Done => {
                let Step::Done = step else { unreachable!() };
                let rec = match &m.cursor().after {
                    After::Done => m.cursor().finished.clone(),
                    other => panic!("done in {other:?}"),
                };
                let outcome =
                    if rec.iter().all(StageResult::succeeded) && rec.len() == spec.stages.len() {
                        Outcome::Applied
                    } else if rolled_back.is_some() {
                        Outcome::RolledBack
                    } else {
                        Outcome::Halted
                    };
                return End {
                    outcome,
                    verdicts: rec
                        .iter()
                        .map(|r| {
                            let v = match &r.verdict {
                                StageVerdict::Succeeded => "succeeded".to_string(),
                                StageVerdict::Failed { reason } => serde_json::to_value(reason)
                                    .unwrap()["kind"]
                                    .as_str()
                                    .unwrap()
                                    .to_string(),
                            };
                            (r.name.clone(), v)
                        })
                        .collect(),
                    rolled_back,
                };
            }
        };
    }
}

fn rollout_spec() -> impl Strategy<Value = (RolloutSpec, Vec<Behaviour>)> {
    (
        prop::collection::vec(((0u64..12), behaviour()), 1..4),
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(|(stages, rollback, prune)| {
            let bakes: Vec<u64> = stages.iter().map(|(b, _)| *b).collect();
            let mut s = spec(
                &bakes,
                if rollback {
                    OnFailure::Rollback
                } else {
                    OnFailure::Halt
                },
            );
            s.prune = prune;
            (s, stages.into_iter().map(|(_, b)| b).collect())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Stage order, observed bakes and rollback scope hold for every world, and
    /// resuming after any prefix of events reaches the same end as an uninterrupted run.
    #[test]
    fn invariants_hold_and_resuming_after_any_prefix_reaches_the_same_end(
        (spec, worlds) in rollout_spec(),
        crashes in prop::collection::vec(1usize..200, 0..3),
    ) {
        let straight = drive(&spec, &worlds, &[]);
        let resumed = drive(&spec, &worlds, &crashes);
        prop_assert_eq!(straight, resumed);
    }
}

#[test]
fn a_pause_between_the_apply_step_and_the_write_leaves_the_stage_unwritten_until_resumed() {
    let mut m = Machine::new(spec(&[0, 0], OnFailure::Rollback));
    let steps = run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, healthy(0)),
            // The machine asked for stage 1; the shell reads the control object
            // before writing it and finds the fleet paused.
            (2, Observation::Pause),
            (3, Observation::Tick),
        ],
    );
    assert_eq!(steps[2], Step::Apply { stage: 1 });
    assert_eq!(steps[3], Step::WaitForResume { stage: 1 });
    assert_eq!(steps[4], Step::WaitForResume { stage: 1 });
    assert!(
        !m.cursor().applied.contains(&1),
        "a stage never written is not one to roll back"
    );
    assert!(m.cursor().paused);
    let steps = run(
        &mut m,
        &[
            (4, Observation::Resume),
            (5, applied(1)),
            (6, healthy(1)),
            (7, Observation::Recorded),
        ],
    );
    assert_eq!(steps[0], Step::Apply { stage: 1 });
    let Step::Record(rec) = &steps[2] else {
        panic!("{steps:?}")
    };
    assert_eq!(rec.outcome, Outcome::Applied);
    assert_eq!(rec.stages.len(), 2);
    assert_eq!(steps[3], Step::Done);
}

#[test]
fn a_pause_during_a_bake_lets_the_bake_finish_and_holds_the_next_stage() {
    let mut m = Machine::new(spec(&[4, 0], OnFailure::Halt));
    let steps = run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, healthy(0)),
            (2, Observation::Pause),
            (3, healthy(0)),
            (5, healthy(0)),
            (6, Observation::Tick),
        ],
    );
    // The in-flight stage is not reverted and its gate keeps counting.
    assert_eq!(steps[3], Step::Observe { stage: 0 });
    assert_eq!(steps[4], Step::Observe { stage: 0 });
    assert_eq!(steps[5], Step::WaitForResume { stage: 1 });
    assert_eq!(steps[6], Step::WaitForResume { stage: 1 });
    assert_eq!(m.cursor().finished.len(), 1);
    assert_eq!(m.cursor().finished[0].verdict, StageVerdict::Succeeded);
    assert_eq!(
        m.handle(&Event::new(S * 7, Observation::Resume)),
        Step::Apply { stage: 1 }
    );
}

#[test]
fn a_stage_that_fails_while_paused_is_still_rolled_back() {
    let mut m = Machine::new(spec(&[10], OnFailure::Rollback));
    let steps = run(
        &mut m,
        &[
            (0, Observation::Start),
            (0, applied(0)),
            (1, healthy(0)),
            (2, Observation::Pause),
            (3, snap(0, 2, 2, &[("a", false, 0), ("b", true, 0)])),
        ],
    );
    assert_eq!(steps[4], Step::RollBack { stages: vec![0] });
}

#[test]
fn pause_and_resume_before_the_first_stage_start_nothing_until_resumed() {
    let mut m = Machine::new(spec(&[0], OnFailure::Halt));
    assert_eq!(
        m.handle(&Event::new(Duration::ZERO, Observation::Pause)),
        Step::WaitForResume { stage: 0 }
    );
    assert_eq!(
        m.handle(&Event::new(S, Observation::Start)),
        Step::WaitForResume { stage: 0 }
    );
    assert!(m.cursor().applied.is_empty());
    assert_eq!(
        m.handle(&Event::new(S * 2, Observation::Resume)),
        Step::Apply { stage: 0 }
    );
}
