//! Carries out the core's rollout machine against the cluster: applies what a step
//! says, feeds back what [`super::observe`] sees, ticks the clock.
//!
//! Owns: the machine's I/O and its clock (a monotonic [`Instant`] taken at the start
//! of the run). Must not: decide anything - every verdict (complete, healthy, failed,
//! next stage, rollback) is the machine's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::Instrument as _;

use super::apply::{ApplyError, Proceed};
use super::cluster::{Cluster, ClusterError};
use super::observe::{Feed, StageView, watch_stage};
use super::progress::Progress;
use super::replace::{self, ReplaceGate};
use super::rollout::stage_selector;
use crate::core::control::Clearance;
use crate::core::machine::{Event, Machine, Observation, Step};
use crate::core::render::Manifest;
use crate::core::rollout::RolloutStatus;

/// How often the shell ticks and takes a snapshot of the stage it observes; also the
/// probe's interval.
pub const TICK: Duration = Duration::from_secs(1);

/// What the driver needs of one stage of the machine's spec.
pub struct StageIo<'a> {
    pub name: String,
    pub groups: Vec<String>,
    pub manifests: Vec<&'a Manifest>,
}

/// Which step a checkpoint comes before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// Writing the stage with this machine index.
    Stage(usize),
    /// Pruning, after every stage.
    Prune,
}

/// The steps that are not the machine's to define: what a rollback, a prune and a
/// checkpoint do. A rollback and a prune return `Ok(Ok(()))` when they succeeded,
/// `Ok(Err(reason))` for the machine to judge, and `Err` for a transient API failure
/// the caller retries from the last checkpoint.
#[allow(async_fn_in_trait)] // reason: used only inside this crate, with concrete types
pub trait Steps {
    /// Save where the rollout is, before the step `at`; or learn that a stop was
    /// asked for ([`Proceed::Stop`]), and end the rollout there.
    fn checkpoint(&mut self, at: At, machine: &Machine) -> Result<Proceed, ApplyError>;
    /// What must happen before the stage `stage` (machine index) is written, after
    /// its checkpoint: taking out the live objects its moves and replacements
    /// replace. `Ok(Err(reason))` fails the stage as a refused apply would.
    async fn prepare(&mut self, _stage: usize) -> Result<Result<(), String>, ApplyError> {
        Ok(Ok(()))
    }
    async fn roll_back(&mut self, stages: &[usize]) -> Result<Result<(), String>, ApplyError>;
    async fn prune(&mut self) -> Result<Result<(), String>, ApplyError>;
    /// What holds the drover driver's replacements in stage `stage` (machine
    /// index) once it is written: the pause and the freeze windows, as [`Self::gate`]
    /// reads them.
    fn replace_gate(&self, _stage: usize) -> super::replace::ReplaceGate {
        super::replace::ReplaceGate::default()
    }
    /// Whether the stage `stage` (machine index) may start: the fleet's control
    /// object read afresh (a pause, or an object that cannot be read, closes the
    /// gate), then the freeze windows at the time of asking.
    async fn gate(&mut self, stage: usize) -> Clearance;
}

/// How a drive ended.
#[derive(Debug)]
pub enum Driven {
    /// The machine asked for its record.
    Finished(crate::core::machine::RunRecord, Statuses),
    /// A checkpoint asked to stop before a step.
    Stopped,
}

/// The last statuses the observer saw, per stage, for the apply report.
pub type Statuses = BTreeMap<usize, BTreeMap<String, RolloutStatus>>;

/// Runs the machine to its record, or until a checkpoint asks to stop.
///
/// # Errors
/// A transient API failure while writing (the caller resumes from the checkpoint), or
/// a checkpoint that could not be saved.
pub async fn drive(
    cluster: &Cluster,
    machine: &mut Machine,
    stages: &[StageIo<'_>],
    force: bool,
    progress: &dyn Progress,
    steps: &mut impl Steps,
) -> Result<Driven, ApplyError> {
    let start = Instant::now();
    let at = || start.elapsed();
    let mut statuses: Statuses = BTreeMap::new();
    let mut step = machine.handle(&Event::new(at(), Observation::Start));
    loop {
        step = match step {
            Step::Apply { stage } => {
                // The pause and the freeze windows are observations: read before
                // each stage is written. A frozen stage waits as a paused one does.
                let gate = steps.gate(stage).await;
                if let Some(why) = gate.why() {
                    let until = match gate {
                        Clearance::Unknown { .. } => "waiting until it can be read",
                        Clearance::Frozen(_) => "waiting for the window to end",
                        _ => "waiting for `drover resume`",
                    };
                    tracing::warn!(stage = %stages[stage].name, "{why}; {until}");
                    step = machine.handle(&Event::new(at(), Observation::Pause));
                    continue;
                }
                if steps.checkpoint(At::Stage(stage), machine)? == Proceed::Stop {
                    return Ok(Driven::Stopped);
                }
                let io = &stages[stage];
                let span =
                    tracing::info_span!("stage", stage = %io.name, daemonsets = io.manifests.len());
                match steps.prepare(stage).instrument(span.clone()).await? {
                    // Fails the stage before it is written, as a refused apply does.
                    Err(reason) => {
                        progress.stage_started(&io.name, &machine.spec().stages[stage].daemonsets);
                        let obs = Observation::ApplyFailed {
                            stage,
                            reason,
                            retryable: false,
                        };
                        let next = machine.handle(&Event::new(at(), obs));
                        finished(progress, machine, &io.name);
                        next
                    }
                    Ok(()) => {
                        let gate = steps.replace_gate(stage);
                        let (next, last) =
                            run_stage(cluster, machine, stage, io, force, progress, &at, gate)
                                .instrument(span)
                                .await
                                .map_err(|source| stage_failed(io, source))?;
                        statuses.insert(stage, last);
                        next
                    }
                }
            }
            Step::Observe { stage } => {
                // Only reached when a stage's observation ended without a new step;
                // run_stage keeps observing until the machine moves on.
                let io = &stages[stage];
                let span =
                    tracing::info_span!("stage", stage = %io.name, daemonsets = io.manifests.len());
                let gate = steps.replace_gate(stage);
                let (next, last) = observe_stage(cluster, machine, stage, io, progress, &at, gate)
                    .instrument(span)
                    .await
                    .map_err(|source| stage_failed(io, source))?;
                statuses.insert(stage, last);
                next
            }
            Step::WaitForResume { stage } => {
                tokio::time::sleep(TICK).await;
                let obs = if steps.gate(stage).await.is_open() {
                    tracing::info!(stage = %stages[stage].name, "resumed");
                    Observation::Resume
                } else {
                    Observation::Tick
                };
                machine.handle(&Event::new(at(), obs))
            }
            Step::RollBack { stages: which } => {
                let obs = match steps.roll_back(&which).await? {
                    Ok(()) => Observation::RolledBack,
                    Err(reason) => Observation::RollbackFailed { reason },
                };
                machine.handle(&Event::new(at(), obs))
            }
            Step::Prune => {
                if steps.checkpoint(At::Prune, machine)? == Proceed::Stop {
                    return Ok(Driven::Stopped);
                }
                let obs = match steps.prune().await? {
                    Ok(()) => Observation::Pruned,
                    Err(reason) => Observation::PruneFailed { reason },
                };
                machine.handle(&Event::new(at(), obs))
            }
            Step::Record(record) => return Ok(Driven::Finished(record, statuses)),
            Step::Done => {
                return Ok(Driven::Finished(
                    crate::core::machine::RunRecord {
                        outcome: crate::core::machine::Outcome::Applied,
                        stages: machine.cursor().finished.clone(),
                        reason: None,
                    },
                    statuses,
                ));
            }
        };
    }
}

fn stage_failed(io: &StageIo<'_>, source: ClusterError) -> ApplyError {
    ApplyError::ApplyStage {
        stage: io.name.clone(),
        source,
    }
}

/// Applies one stage and observes it until the machine decides; the drover
/// driver's DaemonSets of the stage have their pods replaced meanwhile.
#[allow(clippy::too_many_arguments)] // reason: the drive's state, borrowed for one stage
async fn run_stage(
    cluster: &Cluster,
    machine: &mut Machine,
    stage: usize,
    io: &StageIo<'_>,
    force: bool,
    progress: &dyn Progress,
    at: &impl Fn() -> Duration,
    gate: ReplaceGate,
) -> Result<(Step, BTreeMap<String, RolloutStatus>), ClusterError> {
    let names: Vec<String> = machine.spec().stages[stage].daemonsets.clone();
    progress.stage_started(&io.name, &names);
    // Watch first, so the nodes' state before the write is known.
    let selector = stage_selector(&cluster.fleet, &io.groups);
    let mut watch = watch_stage(cluster, &selector, TICK);
    let mut view = StageView::new(names.iter().cloned());
    let deadline = tokio::time::Instant::now() + TICK * 10;
    while !view.is_live() {
        let feed = tokio::select! {
            f = watch.rx.recv() => f,
            () = tokio::time::sleep_until(deadline) => None,
        };
        match feed {
            Some(f) => {
                view.fold(f);
            }
            None => break,
        }
    }
    let nodes_before = view.all_nodes();
    let results = cluster.write_all(&io.manifests, force).await;
    let mut refused = Vec::new();
    let mut generations = BTreeMap::new();
    for (r, name) in results.into_iter().zip(&names) {
        match r {
            Ok(generation) => {
                generations.insert(name.clone(), generation);
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => refused.push(e.to_string()),
        }
    }
    let obs = if refused.is_empty() {
        Observation::Applied {
            stage,
            nodes_before,
            generations,
        }
    } else {
        Observation::ApplyFailed {
            stage,
            reason: refused.join("; "),
            retryable: false,
        }
    };
    let step = machine.handle(&Event::new(at(), obs));
    if step != (Step::Observe { stage }) {
        finished(progress, machine, &io.name);
        return Ok((step, BTreeMap::new()));
    }
    observe_with(cluster, machine, stage, io, progress, at, watch, view, gate).await
}

/// Observes a stage already applied (a resumed observation).
async fn observe_stage(
    cluster: &Cluster,
    machine: &mut Machine,
    stage: usize,
    io: &StageIo<'_>,
    progress: &dyn Progress,
    at: &impl Fn() -> Duration,
    gate: ReplaceGate,
) -> Result<(Step, BTreeMap<String, RolloutStatus>), ClusterError> {
    let names = machine.spec().stages[stage].daemonsets.clone();
    let selector = stage_selector(&cluster.fleet, &io.groups);
    let watch = watch_stage(cluster, &selector, TICK);
    let view = StageView::new(names);
    observe_with(cluster, machine, stage, io, progress, at, watch, view, gate).await
}

/// Observes a written stage until the machine decides, with the drover driver
/// replacing the pods of its driven DaemonSets meanwhile: each snapshot says
/// whether the replacer holds them (pause, freeze).
#[allow(clippy::too_many_arguments)] // reason: the stage's state, borrowed for its observation
async fn observe_with(
    cluster: &Cluster,
    machine: &mut Machine,
    stage: usize,
    io: &StageIo<'_>,
    progress: &dyn Progress,
    at: &impl Fn() -> Duration,
    mut watch: super::observe::StageWatch,
    mut view: StageView,
    gate: ReplaceGate,
) -> Result<(Step, BTreeMap<String, RolloutStatus>), ClusterError> {
    let replacer = replace::start(cluster, &io.manifests, gate, &io.name);
    let snapshot = |view: &StageView| {
        view.snapshot().map(|mut snap| {
            snap.held = replacer.as_ref().is_some_and(replace::Replacer::held);
            snap
        })
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut baking = false;
    let mut was_live = view.is_live();
    let mut last = BTreeMap::new();
    loop {
        let step = tokio::select! {
            feed = watch.rx.recv() => match feed {
                Some(feed) => {
                    // Every change is judged, not only the state at a tick: a pod or a
                    // node that goes bad and back between two ticks is still seen.
                    let change = !matches!(feed, Feed::ProbeOk);
                    let notice = view.fold(feed);
                    let live = view.is_live();
                    if live != was_live {
                        if live {
                            tracing::info!(stage = %io.name, "stage observed again");
                        } else {
                            tracing::warn!(stage = %io.name, "stage unobserved: the bake clock stops");
                        }
                        was_live = live;
                    }
                    match (notice, change) {
                        (Some(notice), _) => machine.handle(&Event::new(at(), notice)),
                        (None, true) => match snapshot(&view) {
                            Some(snap) => judge(machine, stage, io, progress, at(), snap, &mut baking, &mut last),
                            None => continue,
                        },
                        (None, false) => continue,
                    }
                }
                None => {
                    // The watch tasks are gone; the machine fails the stage when
                    // nothing fresh arrives.
                    tick.tick().await;
                    machine.handle(&Event::new(at(), Observation::Tick))
                }
            },
            _ = tick.tick() => match snapshot(&view) {
                Some(snap) => judge(machine, stage, io, progress, at(), snap, &mut baking, &mut last),
                None => machine.handle(&Event::new(at(), Observation::Tick)),
            },
        };
        if step != (Step::Observe { stage }) {
            finished(progress, machine, &io.name);
            return Ok((step, last));
        }
    }
}

/// Hands one snapshot to the machine, reporting progress on the way.
#[allow(clippy::too_many_arguments)] // reason: the loop's state, borrowed for one call
fn judge(
    machine: &mut Machine,
    stage: usize,
    io: &StageIo<'_>,
    progress: &dyn Progress,
    at: Duration,
    snap: crate::core::machine::Snapshot,
    baking: &mut bool,
    last: &mut BTreeMap<String, RolloutStatus>,
) -> Step {
    // A status from before drover's write says nothing about this rollout: no line.
    for (name, s) in &snap.daemonsets {
        if machine.is_current(name, s) {
            progress.daemonset(&io.name, name, s);
        }
    }
    last.clone_from(&snap.daemonsets);
    let step = machine.handle(&Event::new(at, Observation::Snapshot(snap)));
    // The machine says when the bake starts; the display does not judge it.
    if machine.baking() && !*baking {
        *baking = true;
        progress.baking(&io.name, machine.spec().stages[stage].gate.bake);
    }
    if *baking && let Some(observed) = machine.bake_observed() {
        progress.gate(&io.name, spec_bake(machine, stage), observed);
    }
    step
}

fn spec_bake(machine: &Machine, stage: usize) -> Duration {
    machine
        .spec()
        .stages
        .get(stage)
        .map_or(Duration::ZERO, |s| s.gate.bake)
}

fn finished(progress: &dyn Progress, machine: &Machine, name: &str) {
    if let Some(r) = machine
        .cursor()
        .finished
        .iter()
        .rev()
        .find(|r| r.name == name)
    {
        match &r.verdict {
            crate::core::machine::StageVerdict::Succeeded => {
                progress.stage_finished(name, true, "")
            }
            crate::core::machine::StageVerdict::Failed { reason } => {
                progress.stage_finished(name, false, &reason.to_string());
            }
        }
    }
}
