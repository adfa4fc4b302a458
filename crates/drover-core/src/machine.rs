//! The staged rollout as a pure state machine: (progress, observation) -> next step.
//!
//! Owns every decision of a rollout: which stage to apply next, when a stage's
//! rollout is complete, whether its health gate has held for the whole bake, when it
//! has failed (timeout, no progress, unobserved too long, a pod or node gone bad),
//! whether to halt or roll back, prune, record. Must not: read a clock, talk to the
//! API server, or sleep. The shell feeds it [`Event`]s stamped with its own monotonic
//! time (`at`, time since the run began) and carries out the [`Step`] it returns.
//!
//! Fail closed: a gate counts only **observed** time. An interval between two fresh
//! snapshots counts towards the bake only when both snapshots were healthy, no
//! [`Observation::Unobserved`] came between them and they are at most
//! [`Gate::max_gap`] apart. Time without a fresh snapshot is unobserved; past
//! [`Gate::max_unobserved`] of it in all, the stage fails. A stage is never `succeeded`
//! without having been observed healthy for its whole bake.
//!
//! Resumable: [`Machine::cursor`] is the durable part (the stage reached, the results
//! of finished stages, what remains to do after the stages). A machine rebuilt from a
//! cursor re-applies and re-gates the stage it was in, from scratch.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rollout::{PodHealth, RolloutStatus};

/// What fails a node during a stage (compared with the node when the stage first saw it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConditionRule {
    /// The condition must have this status; a node without the condition fails it.
    MustBe { condition: String, status: String },
    /// The condition must not have this status; a node without it passes.
    MustNotBe { condition: String, status: String },
}

impl ConditionRule {
    /// `Ready` must be `True`, `NetworkUnavailable` must not be `True`.
    pub fn defaults() -> Vec<ConditionRule> {
        vec![
            ConditionRule::MustBe {
                condition: "Ready".into(),
                status: "True".into(),
            },
            ConditionRule::MustNotBe {
                condition: "NetworkUnavailable".into(),
                status: "True".into(),
            },
        ]
    }

    /// The first rule `conditions` breaks, as `(condition, status seen)`.
    fn broken<'a>(
        rules: &'a [ConditionRule],
        conditions: &'a BTreeMap<String, String>,
    ) -> Option<(&'a str, &'a str)> {
        rules.iter().find_map(|r| match r {
            ConditionRule::MustBe { condition, status } => match conditions.get(condition) {
                Some(s) if s == status => None,
                Some(s) => Some((condition.as_str(), s.as_str())),
                None => Some((condition.as_str(), "missing")),
            },
            ConditionRule::MustNotBe { condition, status } => conditions
                .get(condition)
                .filter(|s| *s == status)
                .map(|s| (condition.as_str(), s.as_str())),
        })
    }
}

/// A stage's health gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// Observed healthy time required after the rollout completes.
    pub bake: Duration,
    /// From the stage's first apply to rollout completion, wall clock.
    pub timeout: Duration,
    /// Observed time without rollout progress (and, while baking, with pods not ready)
    /// after which the stage fails.
    pub progress_deadline: Duration,
    /// Unobserved time in all (intervals without fresh, unbroken observation) after
    /// which the stage fails. The rollout's wall time is bounded by `timeout`, the
    /// bake's by `bake + max_unobserved + progress_deadline`.
    pub max_unobserved: Duration,
    /// Two snapshots further apart than this do not make an observed interval.
    pub max_gap: Duration,
    /// Node conditions that fail the stage when a node of the stage breaks them.
    pub node_conditions: Vec<ConditionRule>,
}

/// One stage to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSpec {
    pub name: String,
    /// The DaemonSets this stage applies and gates.
    pub daemonsets: Vec<String>,
    pub gate: Gate,
}

/// What to do when a stage fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    Halt,
    Rollback,
}

/// The rollout of one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutSpec {
    pub stages: Vec<StageSpec>,
    pub on_failure: OnFailure,
    /// Whether there is anything to prune after the last stage.
    pub prune: bool,
}

/// A node as a snapshot sees it: condition type -> status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeHealth {
    pub conditions: BTreeMap<String, String>,
}

/// One fresh, consistent view of a stage, read at the event's time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The stage's DaemonSets; one missing from here is not complete.
    pub daemonsets: BTreeMap<String, RolloutStatus>,
    /// The stage's pods by name.
    pub pods: BTreeMap<String, PodHealth>,
    /// The nodes the stage's pods run on (or its groups select).
    pub nodes: BTreeMap<String, NodeHealth>,
    /// The drover driver holds the stage's replacements (the fleet is paused, or a
    /// freeze window is open): the rollout is not stuck, so while this holds the
    /// stage's timeout and progress deadline do not run.
    pub held: bool,
}

/// What the shell observed or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Begin the run (or resume it from a cursor).
    Start,
    /// The stage's DaemonSets were written; `nodes_before` is how the stage's nodes
    /// looked just before (the baseline a node condition is judged against), and
    /// `generations` the generation each write left: a status older than that (a
    /// watch that has not caught up with the write) never counts as complete.
    Applied {
        stage: usize,
        nodes_before: BTreeMap<String, NodeHealth>,
        generations: BTreeMap<String, i64>,
    },
    /// Writing the stage failed; `retryable` when the API server could not be reached.
    ApplyFailed {
        stage: usize,
        reason: String,
        retryable: bool,
    },
    /// A fresh view of the current stage.
    Snapshot(Snapshot),
    /// A watch broke, a read failed, the API server is gone: the interval since the
    /// last snapshot is not observed.
    Unobserved {
        reason: String,
    },
    /// Time passed.
    Tick,
    /// The operator paused the fleet, or the shell could not read whether it is
    /// paused (fail closed): no new stage starts until [`Observation::Resume`]. A
    /// stage already written keeps being gated (its bake runs on, and a failure
    /// still halts or rolls back); one started but not yet written waits unwritten.
    Pause,
    /// The pause was lifted.
    Resume,
    /// The rollback step finished.
    RolledBack,
    RollbackFailed {
        reason: String,
    },
    /// The prune step finished.
    Pruned,
    PruneFailed {
        reason: String,
    },
    /// The record was written durably.
    Recorded,
}

/// An observation at a time on the shell's monotonic clock (since the run began).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: Duration,
    pub observation: Observation,
}

impl Event {
    pub fn new(at: Duration, observation: Observation) -> Event {
        Event { at, observation }
    }
}

/// Why a stage failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FailReason {
    /// The API server refused the stage's writes (conflict, invalid, forbidden).
    ApplyRefused { reason: String },
    /// The stage's rollout did not complete within its timeout.
    Timeout {
        timeout_seconds: u64,
        detail: String,
    },
    /// No rollout progress (or pods not ready) for the progress deadline.
    NoProgress {
        deadline_seconds: u64,
        detail: String,
    },
    /// Nothing was observed for longer than allowed.
    Unobserved { seconds: u64, reason: String },
    /// A pod that was ready is not.
    PodNotReady { pod: String },
    /// A pod's containers restarted during the bake.
    PodRestarted { pod: String, from: i64, to: i64 },
    /// A node of the stage broke a condition rule.
    NodeCondition {
        node: String,
        condition: String,
        status: String,
    },
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::ApplyRefused { reason } => write!(f, "apply refused: {reason}"),
            FailReason::Timeout {
                timeout_seconds,
                detail,
            } => write!(
                f,
                "rollout did not complete within {}: {detail}",
                crate::syntax::format_duration(Duration::from_secs(*timeout_seconds))
            ),
            FailReason::NoProgress {
                deadline_seconds,
                detail,
            } => write!(
                f,
                "no progress for {deadline_seconds}s of observed time: {detail}"
            ),
            FailReason::Unobserved { seconds, reason } => write!(
                f,
                "the stage went unobserved for {seconds}s (health cannot be confirmed): {reason}"
            ),
            FailReason::PodNotReady { pod } => write!(f, "pod {pod} is no longer ready"),
            FailReason::PodRestarted { pod, from, to } => {
                write!(f, "pod {pod} restarted ({from} -> {to} restarts)")
            }
            FailReason::NodeCondition {
                node,
                condition,
                status,
            } => write!(f, "node {node}: condition {condition} is {status}"),
        }
    }
}

/// How a stage ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum StageVerdict {
    Succeeded,
    Failed { reason: FailReason },
}

/// A finished stage, with what its gate observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageResult {
    pub name: String,
    pub verdict: StageVerdict,
    /// From the first apply to rollout completion (wall clock), if it completed.
    pub rollout: Option<Duration>,
    /// Observed healthy time during the bake.
    pub bake_observed: Duration,
    /// Time during the stage with no fresh observation.
    pub unobserved: Duration,
    /// The stage was resumed after an interruption and gated again from scratch.
    pub resumed: bool,
}

impl StageResult {
    pub fn succeeded(&self) -> bool {
        self.verdict == StageVerdict::Succeeded
    }
}

/// How a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Applied,
    Halted,
    RolledBack,
}

/// The record the machine asks the shell to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub outcome: Outcome,
    pub stages: Vec<StageResult>,
    /// Why it did not apply, when it did not.
    pub reason: Option<String>,
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Save the cursor, then write the stage's DaemonSets.
    Apply { stage: usize },
    /// Keep observing the stage: send snapshots, unobserved notices and ticks.
    Observe { stage: usize },
    /// Paused before `stage`: wait for [`Observation::Resume`] (ticks are fine).
    WaitForResume { stage: usize },
    /// Save the cursor, then return these stages' DaemonSets to their previous objects
    /// (in the order given: the last applied first).
    RollBack { stages: Vec<usize> },
    /// Save the cursor, then prune.
    Prune,
    /// Write the record durably, then report [`Observation::Recorded`].
    Record(RunRecord),
    /// Nothing left to do.
    Done,
}

/// What is left after the stages, durably.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum After {
    /// Still running stages.
    Stages,
    RollingBack {
        stages: Vec<usize>,
    },
    Pruning,
    Recording {
        record: RunRecord,
    },
    Done,
}

/// The durable part of a rollout: enough to resume it after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The stage in progress (or the next one to start).
    pub stage: usize,
    /// Results of the stages finished so far, in order.
    pub finished: Vec<StageResult>,
    /// Stages whose apply has been started in this run (for rollback).
    pub applied: BTreeSet<usize>,
    pub paused: bool,
    pub after: After,
}

/// The stage being gated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Live {
    started: Duration,
    applied: Option<Duration>,
    completed: Option<Duration>,
    last_fresh: Option<Duration>,
    last_healthy: bool,
    broken_since_last: bool,
    unobserved_reason: String,
    unobserved: Duration,
    no_progress: Duration,
    progress_key: BTreeMap<String, (i64, i64, i64, i64)>,
    bake_observed: Duration,
    pods: BTreeMap<String, PodHealth>,
    nodes: BTreeMap<String, bool>,
    resumed: bool,
    /// What the last snapshot showed pending, for a timeout's message.
    last_detail: String,
    /// The generation each DaemonSet was written at.
    written: BTreeMap<String, i64>,
    /// Starting the stage added it to [`Cursor::applied`] (it was not there before).
    marked_applied: bool,
    /// Observed time the driver held the stage's replacements (see
    /// [`Snapshot::held`]); left out of the stage's timeout.
    held: Duration,
}

/// The rollout state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    spec: RolloutSpec,
    cursor: Cursor,
    live: Option<Live>,
    resumed: bool,
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

impl Machine {
    /// A new rollout of `spec`.
    pub fn new(spec: RolloutSpec) -> Machine {
        Machine {
            spec,
            cursor: Cursor {
                stage: 0,
                finished: Vec::new(),
                applied: BTreeSet::new(),
                paused: false,
                after: After::Stages,
            },
            live: None,
            resumed: false,
        }
    }

    /// A rollout resumed from a saved cursor. The stage in progress is applied and
    /// gated again from scratch; a rollback, prune or record in progress is redone
    /// (each is idempotent in the shell).
    pub fn resume(spec: RolloutSpec, cursor: Cursor) -> Machine {
        Machine {
            spec,
            cursor,
            live: None,
            resumed: true,
        }
    }

    /// The durable state, to save before each step that writes.
    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    pub fn spec(&self) -> &RolloutSpec {
        &self.spec
    }

    /// Observed healthy bake time of the stage in progress, for status displays.
    pub fn bake_observed(&self) -> Option<Duration> {
        self.live.as_ref().map(|l| l.bake_observed)
    }

    /// Whether the stage in progress has completed its rollout and is baking: the
    /// machine's judgement (statuses of the written generations), for progress
    /// displays, which must not judge completion themselves.
    pub fn baking(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.completed.is_some())
    }

    /// Whether `status` of DaemonSet `name` is of its written generation or later,
    /// i.e. not a status from before drover's write.
    pub fn is_current(&self, name: &str, status: &RolloutStatus) -> bool {
        self.live
            .as_ref()
            .is_some_and(|l| status.generation >= l.written.get(name).copied().unwrap_or_default())
    }

    /// Feeds one event; returns what to do next.
    pub fn handle(&mut self, ev: &Event) -> Step {
        let at = ev.at;
        match &ev.observation {
            Observation::Pause => self.cursor.paused = true,
            Observation::Resume => self.cursor.paused = false,
            _ => {}
        }
        match self.cursor.after.clone() {
            After::Done => return Step::Done,
            After::Recording { record } => {
                return if ev.observation == Observation::Recorded {
                    self.cursor.after = After::Done;
                    Step::Done
                } else {
                    Step::Record(record)
                };
            }
            After::Pruning => {
                return match &ev.observation {
                    Observation::Pruned => self.record(Outcome::Applied, None),
                    Observation::PruneFailed { reason } => {
                        self.record(Outcome::Halted, Some(format!("prune failed: {reason}")))
                    }
                    _ => Step::Prune,
                };
            }
            After::RollingBack { stages } => {
                let failed = self.failure_text();
                return match &ev.observation {
                    Observation::RolledBack => self.record(Outcome::RolledBack, failed),
                    Observation::RollbackFailed { reason } => self.record(
                        Outcome::Halted,
                        Some(format!(
                            "{}; rollback failed: {reason}",
                            failed.unwrap_or_default()
                        )),
                    ),
                    _ => Step::RollBack { stages },
                };
            }
            After::Stages => {}
        }
        if self.cursor.stage >= self.spec.stages.len() {
            return self.after_stages();
        }
        let stage = self.cursor.stage;
        if ev.observation == Observation::Pause
            && self.live.as_ref().is_some_and(|l| l.applied.is_none())
        {
            // Paused before the stage was written: it has not started, so it waits
            // for the resume like a stage that was never begun.
            return self.unstart_stage();
        }
        let Some(live) = self.live.as_mut() else {
            // Between stages (or starting): start the next stage unless paused.
            return self.start_stage(at);
        };
        let gate = &self.spec.stages[stage].gate;
        if live.completed.is_none()
            && at.saturating_sub(live.started).saturating_sub(live.held) > gate.timeout
        {
            let detail = if live.last_detail.is_empty() {
                "no fresh observation of the stage".to_string()
            } else {
                live.last_detail.clone()
            };
            return self.fail(FailReason::Timeout {
                timeout_seconds: secs(gate.timeout),
                detail,
            });
        }
        match &ev.observation {
            Observation::ApplyFailed {
                stage: s,
                reason,
                retryable,
            } if *s == stage && live.applied.is_none() => {
                if *retryable {
                    return Step::Apply { stage };
                }
                let reason = reason.clone();
                return self.fail(FailReason::ApplyRefused { reason });
            }
            Observation::Applied {
                stage: s,
                nodes_before,
                generations,
            } if *s == stage && live.applied.is_none() => {
                live.applied = Some(at);
                live.written.clone_from(generations);
                live.nodes = nodes_before
                    .iter()
                    .map(|(n, h)| {
                        let ok = ConditionRule::broken(&gate.node_conditions, &h.conditions);
                        (n.clone(), ok.is_none())
                    })
                    .collect();
                return Step::Observe { stage };
            }
            _ if live.applied.is_none() => return Step::Apply { stage },
            Observation::Unobserved { reason } => {
                live.broken_since_last = true;
                live.unobserved_reason.clone_from(reason);
            }
            Observation::Snapshot(snap) => {
                let snap = snap.clone();
                if let Some(step) = self.observe(at, &snap) {
                    return step;
                }
            }
            _ => {}
        }
        self.check_unobserved(at)
    }

    /// Starts the stage the cursor points at, unless the fleet is paused.
    fn start_stage(&mut self, at: Duration) -> Step {
        let stage = self.cursor.stage;
        if self.cursor.paused {
            return Step::WaitForResume { stage };
        }
        self.live = Some(Live {
            started: at,
            resumed: self.resumed,
            ..Live::default()
        });
        self.resumed = false;
        let newly = self.cursor.applied.insert(stage);
        if let Some(live) = self.live.as_mut() {
            live.marked_applied = newly;
        }
        Step::Apply { stage }
    }

    /// Takes back a stage started but not yet written (a pause came in between):
    /// it is neither applied nor counted for rollback, and starts afresh on resume.
    fn unstart_stage(&mut self) -> Step {
        let stage = self.cursor.stage;
        if let Some(live) = self.live.take() {
            if live.marked_applied {
                self.cursor.applied.remove(&stage);
            }
            self.resumed = live.resumed;
        }
        Step::WaitForResume { stage }
    }

    /// Fails the stage when it has gone unobserved for too long in all: the time
    /// before each fresh snapshot that did not follow an observed interval, plus the
    /// time since the last fresh snapshot.
    fn check_unobserved(&mut self, at: Duration) -> Step {
        let stage = self.cursor.stage;
        let gate = &self.spec.stages[stage].gate;
        let Some(live) = self.live.as_ref() else {
            return Step::Observe { stage };
        };
        let since = live.last_fresh.or(live.applied).unwrap_or(live.started);
        let current = at.saturating_sub(since);
        // The current interval is unobserved once it is broken or longer than a gap.
        let gap = if live.broken_since_last || current > gate.max_gap {
            live.unobserved + current
        } else {
            live.unobserved
        };
        if gap > gate.max_unobserved {
            let reason = if live.unobserved_reason.is_empty() {
                "no fresh observation".to_string()
            } else {
                live.unobserved_reason.clone()
            };
            return self.fail(FailReason::Unobserved {
                seconds: secs(gap),
                reason,
            });
        }
        Step::Observe { stage }
    }

    /// Judges one fresh snapshot of the stage in progress.
    fn observe(&mut self, at: Duration, snap: &Snapshot) -> Option<Step> {
        let stage = self.cursor.stage;
        let spec = &self.spec.stages[stage];
        let gate = &spec.gate;
        let live = self.live.as_mut()?;
        let gap = live.last_fresh.map(|l| at.saturating_sub(l));
        let observed_gap = match gap {
            Some(g) if !live.broken_since_last && g <= gate.max_gap => Some(g),
            _ => None,
        };
        let since = live.last_fresh.or(live.applied).unwrap_or(live.started);
        if observed_gap.is_none() {
            live.unobserved += at.saturating_sub(since);
        }
        live.last_fresh = Some(at);
        live.broken_since_last = false;

        // Nodes: judged against how the stage first saw them.
        for (node, health) in &snap.nodes {
            let broken = ConditionRule::broken(&gate.node_conditions, &health.conditions);
            let was_ok = *live.nodes.entry(node.clone()).or_insert(broken.is_none());
            if let (true, Some((condition, status))) = (was_ok, broken) {
                let reason = FailReason::NodeCondition {
                    node: node.clone(),
                    condition: condition.to_string(),
                    status: status.to_string(),
                };
                return Some(self.fail(reason));
            }
        }

        let complete = spec.daemonsets.iter().all(|n| {
            let written = live.written.get(n).copied().unwrap_or_default();
            snap.daemonsets
                .get(n)
                .is_some_and(|s| s.generation >= written && s.is_complete())
        });
        let key: BTreeMap<String, (i64, i64, i64, i64)> = snap
            .daemonsets
            .iter()
            .map(|(n, s)| {
                (
                    n.clone(),
                    (s.observed_generation, s.updated, s.available, s.desired),
                )
            })
            .collect();
        let progressed = key != live.progress_key;
        live.progress_key = key;
        live.last_detail = pending_detail(&spec.daemonsets, snap, &gate.node_conditions);

        if live.completed.is_none() {
            if complete {
                live.completed = Some(at);
                live.pods = snap
                    .pods
                    .iter()
                    .filter(|(_, h)| h.ready)
                    .map(|(n, h)| (n.clone(), h.clone()))
                    .collect();
                live.last_healthy = snap.pods.values().all(|h| h.ready);
                live.no_progress = Duration::ZERO;
                return Some(self.maybe_baked(at));
            }
            if snap.held {
                // Held by the operator's pause or a freeze: not stuck.
                live.held += observed_gap.unwrap_or_default();
            } else if progressed {
                live.no_progress = Duration::ZERO;
            } else if let Some(g) = observed_gap {
                live.no_progress += g;
            }
            if live.no_progress > gate.progress_deadline {
                let detail = pending(&spec.daemonsets, snap);
                let reason = FailReason::NoProgress {
                    deadline_seconds: secs(gate.progress_deadline),
                    detail,
                };
                return Some(self.fail(reason));
            }
            return None;
        }

        // Baking: every pod that was ready stays ready and does not restart; a pod that
        // appears is judged from when it is first ready.
        let mut all_ready = true;
        for (pod, now) in &snap.pods {
            match live.pods.get(pod) {
                Some(base) if now.restarts > base.restarts => {
                    let reason = FailReason::PodRestarted {
                        pod: pod.clone(),
                        from: base.restarts,
                        to: now.restarts,
                    };
                    return Some(self.fail(reason));
                }
                Some(base) if base.ready && !now.ready => {
                    let reason = FailReason::PodNotReady { pod: pod.clone() };
                    return Some(self.fail(reason));
                }
                Some(_) => {}
                None if now.ready => {
                    live.pods.insert(pod.clone(), now.clone());
                }
                None => all_ready = false,
            }
        }
        let healthy = complete && all_ready;
        match observed_gap {
            Some(g) if healthy && live.last_healthy => {
                live.bake_observed += g;
                live.no_progress = Duration::ZERO;
            }
            Some(g) if !healthy => live.no_progress += g,
            _ => {}
        }
        live.last_healthy = healthy;
        if live.no_progress > gate.progress_deadline {
            let detail = if complete {
                "pods that appeared during the bake are not ready".to_string()
            } else {
                pending(&spec.daemonsets, snap)
            };
            let reason = FailReason::NoProgress {
                deadline_seconds: secs(gate.progress_deadline),
                detail,
            };
            return Some(self.fail(reason));
        }
        Some(self.maybe_baked(at))
    }

    /// Finishes the stage when its bake has been observed in full, and starts the next.
    fn maybe_baked(&mut self, at: Duration) -> Step {
        let stage = self.cursor.stage;
        let bake = self.spec.stages[stage].gate.bake;
        let done = self
            .live
            .as_ref()
            .is_some_and(|l| l.completed.is_some() && l.bake_observed >= bake && l.last_healthy);
        if !done {
            return Step::Observe { stage };
        }
        let result = self.result(StageVerdict::Succeeded);
        self.cursor.finished.push(result);
        self.cursor.stage += 1;
        self.live = None;
        if self.cursor.stage >= self.spec.stages.len() {
            return self.after_stages();
        }
        self.start_stage(at)
    }

    fn result(&self, verdict: StageVerdict) -> StageResult {
        let spec = &self.spec.stages[self.cursor.stage];
        let live = self.live.clone().unwrap_or_default();
        StageResult {
            name: spec.name.clone(),
            verdict,
            rollout: live.completed.map(|c| c.saturating_sub(live.started)),
            bake_observed: live.bake_observed,
            unobserved: live.unobserved,
            resumed: live.resumed,
        }
    }

    fn fail(&mut self, reason: FailReason) -> Step {
        let result = self.result(StageVerdict::Failed { reason });
        self.cursor.finished.push(result);
        self.live = None;
        match self.spec.on_failure {
            OnFailure::Halt => {
                let text = self.failure_text();
                self.record(Outcome::Halted, text)
            }
            OnFailure::Rollback => {
                let stages: Vec<usize> = self.cursor.applied.iter().rev().copied().collect();
                self.cursor.after = After::RollingBack {
                    stages: stages.clone(),
                };
                Step::RollBack { stages }
            }
        }
    }

    fn failure_text(&self) -> Option<String> {
        self.cursor.finished.iter().find_map(|r| match &r.verdict {
            StageVerdict::Failed { reason } => Some(format!("stage {}: {reason}", r.name)),
            StageVerdict::Succeeded => None,
        })
    }

    fn after_stages(&mut self) -> Step {
        if self.spec.prune {
            self.cursor.after = After::Pruning;
            Step::Prune
        } else {
            self.record(Outcome::Applied, None)
        }
    }

    fn record(&mut self, outcome: Outcome, reason: Option<String>) -> Step {
        let record = RunRecord {
            outcome,
            stages: self.cursor.finished.clone(),
            reason,
        };
        self.cursor.after = After::Recording {
            record: record.clone(),
        };
        Step::Record(record)
    }
}

/// What holds a rollout: its pending DaemonSets, and nodes that break a condition.
fn pending_detail(names: &[String], snap: &Snapshot, rules: &[ConditionRule]) -> String {
    let mut out = pending(names, snap);
    let stuck = snap
        .daemonsets
        .values()
        .any(|s| s.desired > 0 && s.available == 0);
    let bad: Vec<String> = snap
        .nodes
        .iter()
        .filter_map(|(n, h)| {
            ConditionRule::broken(rules, &h.conditions).map(|(c, st)| format!("{n} ({c} {st})"))
        })
        .collect();
    if !bad.is_empty() {
        out.push_str(&format!(
            "; nodes NotReady or unhealthy: {}",
            bad.join(", ")
        ));
    } else if stuck {
        out.push_str("; no pod became available: are the stage's nodes NotReady?");
    }
    out
}

/// `name (3/5 updated, 2/5 available)` for each DaemonSet not complete.
fn pending(names: &[String], snap: &Snapshot) -> String {
    names
        .iter()
        .filter(|n| {
            !snap
                .daemonsets
                .get(*n)
                .is_some_and(RolloutStatus::is_complete)
        })
        .map(|n| match snap.daemonsets.get(n) {
            Some(s) => format!("{n} ({})", s.progress()),
            None => format!("{n} (not observed)"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
