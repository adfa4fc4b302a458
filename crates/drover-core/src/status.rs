//! `drover status` as a pure view: recorded observations (the live DaemonSets, the
//! sync's state and last audit record, the gate it last published, the control
//! value) in, a [`Status`] out, printed as aligned text or JSON.
//!
//! Owns: what the status shows and how. Must not: read the cluster, files or a
//! clock - the times shown are the ones recorded, "time left" is as of the moment
//! the sync published it. Every piece of recorded text passes through
//! [`escape_control`] before it reaches a terminal.

use serde::{Deserialize, Serialize};

use crate::audit::RecordKind;
use crate::control::{Control, Pause};
use crate::diag::escape_control;
use crate::rollout::{Outcome, RolloutStatus, StageResult};
use crate::style::{Style, table};

/// The schema tag of `drover status --format json`.
pub const STATUS_SCHEMA: &str = "drover.dev/status/v1";

/// One DaemonSet of the fleet as listed live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveDaemonSet {
    pub name: String,
    /// Its `drover.dev/daemon` and `drover.dev/group` labels.
    pub daemon: String,
    pub group: String,
    /// Its `drover.dev/commit` annotation.
    pub commit: Option<String>,
    /// Container images, in order.
    pub images: Vec<String>,
    pub status: RolloutStatus,
}

/// Where the gate of the stage in progress was when the sync last published it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StageProgress {
    pub stage: String,
    pub phase: Phase,
    /// RFC 3339: when the stage started.
    pub started_at: String,
    pub bake_seconds: u64,
    /// Healthy time the gate has observed so far.
    pub observed_seconds: f64,
    /// RFC 3339: when this was published.
    pub updated_at: String,
}

/// What the stage in progress is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Written; waiting for its rollouts to complete.
    Rolling,
    /// Rolled out; the bake is being observed.
    Baking,
    /// Finished; the next stage has not started (paused, or the run is ending).
    Finished,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Rolling => "rolling",
            Phase::Baking => "baking",
            Phase::Finished => "finished",
        }
    }
}

/// The last audit record about a rollout (operator actions left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRecord {
    pub seq: u64,
    pub kind: RecordKind,
    pub commit: String,
    pub outcome: Outcome,
    pub finished_at: String,
    /// Each stage's result, in order.
    pub stages: Vec<(String, StageResult)>,
}

/// The rollout the sync's cursor says is in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub commit: String,
    pub stage: usize,
}

/// Everything the view is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    pub fleet: String,
    pub namespace: String,
    /// The fleet's stages with their groups, in order.
    pub stages: Vec<(String, Vec<String>)>,
    pub daemonsets: Vec<LiveDaemonSet>,
    pub control: Control,
    /// From the sync's state, when one was given.
    pub in_flight: Option<InFlight>,
    pub progress: Option<StageProgress>,
    pub last: Option<LastRecord>,
    /// The stages a freeze window holds at the moment the command asked (from the
    /// fleet's windows and the clock, by the caller), in stage order.
    pub frozen: Vec<FrozenStage>,
    /// The drover driver's DaemonSets as observed now (their pods, the nodes),
    /// judged as the replacer judges them: where each one's waves are, and the
    /// disruption budget in use.
    pub waves: crate::waves::Replan,
    /// Why the driver's pods and nodes could not be read (the waves are then not
    /// shown as anything, only as not read).
    pub waves_unread: Option<String>,
}

/// Where one drover-driven DaemonSet is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaveView {
    pub daemonset: String,
    /// `None` once every wave is replaced.
    pub wave: Option<WaveAt>,
    pub nodes: usize,
    pub replaced: usize,
}

/// The wave a driven DaemonSet is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaveAt {
    /// The `by` label's value; `None` without `by`.
    pub scope: Option<String>,
    pub number: usize,
    pub of: usize,
    pub nodes: usize,
    pub replaced: usize,
    /// Its nodes not replaced yet (current and Ready), in the order they are taken.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending_nodes: Vec<String>,
    /// RFC 3339: the wave is replaced and bakes until then; `"unknown"` while a
    /// pod's Ready time is not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baking_until: Option<String>,
}

/// The fleet's disruption budget in use now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetView {
    pub budget_nodes: usize,
    pub disrupted_nodes: usize,
}

/// A stage a freeze window holds now: a rollout that reaches it waits before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenStage {
    pub stage: String,
    #[serde(flatten)]
    pub frozen: crate::plan::StageFrozen,
}

/// The status of a fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub schema: &'static str,
    pub fleet: String,
    pub namespace: String,
    pub paused: Option<Pause>,
    pub frozen: Vec<FrozenStage>,
    pub rollout: Option<RolloutView>,
    pub last_record: Option<LastRecord>,
    /// The drover driver's DaemonSets (docs/driver.md); empty when none is live.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WaveView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetView>,
    /// Why the waves could not be read, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waves_unread: Option<String>,
    pub rows: Vec<Row>,
}

/// The stage in progress and its gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutView {
    pub commit: String,
    pub stage: String,
    /// `None` when the sync has published no gate for this stage yet.
    pub phase: Option<Phase>,
    pub bake_seconds: Option<u64>,
    pub observed_seconds: Option<f64>,
    pub left_seconds: Option<f64>,
    /// When the gate figures were published.
    pub as_of: Option<String>,
}

/// One daemon × group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub daemon: String,
    pub group: String,
    pub stage: Option<String>,
    pub commit: Option<String>,
    pub images: Vec<String>,
    pub desired: i64,
    pub updated: i64,
    pub ready: i64,
    /// Its stage is the one in progress.
    pub running: bool,
    /// Its stage's result in the last record, or that record's outcome when the
    /// stage is not in it.
    pub last: Option<String>,
}

/// The view.
pub fn build(inputs: Inputs) -> Status {
    let stage_of = |group: &str| {
        inputs
            .stages
            .iter()
            .find(|(_, groups)| groups.iter().any(|g| g == group))
            .map(|(s, _)| s.clone())
    };
    let running_stage = inputs
        .in_flight
        .as_ref()
        .and_then(|f| inputs.stages.get(f.stage).map(|(s, _)| s.clone()));
    let rollout = inputs.in_flight.as_ref().map(|f| {
        let stage = running_stage
            .clone()
            .unwrap_or_else(|| format!("#{}", f.stage));
        let gate = inputs.progress.as_ref().filter(|p| p.stage == stage);
        RolloutView {
            commit: f.commit.clone(),
            stage,
            phase: gate.map(|p| p.phase),
            bake_seconds: gate.map(|p| p.bake_seconds),
            observed_seconds: gate.map(|p| p.observed_seconds),
            left_seconds: gate.map(|p| (p.bake_seconds as f64 - p.observed_seconds).max(0.0)),
            as_of: gate.map(|p| p.updated_at.clone()),
        }
    });
    let mut rows: Vec<Row> = inputs
        .daemonsets
        .iter()
        .map(|d| {
            let stage = stage_of(&d.group);
            let last = inputs.last.as_ref().map(|r| {
                r.stages
                    .iter()
                    .find(|(s, _)| Some(s) == stage.as_ref())
                    .map_or_else(|| r.outcome.as_str(), |(_, res)| res.as_str())
                    .to_string()
            });
            Row {
                daemon: d.daemon.clone(),
                group: d.group.clone(),
                running: stage.is_some() && stage == running_stage,
                stage,
                commit: d.commit.clone(),
                images: d.images.clone(),
                desired: d.status.desired,
                updated: d.status.updated,
                ready: d.status.ready,
                last,
            }
        })
        .collect();
    let order = |r: &Row| {
        inputs
            .stages
            .iter()
            .position(|(s, _)| Some(s) == r.stage.as_ref())
            .unwrap_or(usize::MAX)
    };
    rows.sort_by(|a, b| (order(a), &a.group, &a.daemon).cmp(&(order(b), &b.group, &b.daemon)));
    let waves = inputs
        .waves
        .progress
        .iter()
        .map(|p| WaveView {
            daemonset: p.daemonset.clone(),
            wave: p.wave.as_ref().map(|(scope, number, of)| WaveAt {
                scope: scope.clone(),
                number: *number,
                of: *of,
                nodes: p.wave_nodes,
                replaced: p.wave_settled,
                pending_nodes: p.wave_pending.clone(),
                baking_until: p.baking_until.map(|t| {
                    jiff::Timestamp::from_second(t)
                        .map_or_else(|_| "unknown".to_string(), |t| t.to_string())
                }),
            }),
            nodes: p.nodes,
            replaced: p.settled,
        })
        .collect();
    let budget = inputs.waves.budget.map(|b| BudgetView {
        budget_nodes: b,
        disrupted_nodes: inputs.waves.disrupted,
    });
    Status {
        schema: STATUS_SCHEMA,
        fleet: inputs.fleet,
        namespace: inputs.namespace,
        paused: inputs.control.paused,
        frozen: inputs.frozen,
        rollout,
        last_record: inputs.last,
        waves,
        budget,
        waves_unread: inputs.waves_unread,
        rows,
    }
}

fn short(sha: &str) -> String {
    escape_control(&sha[..sha.len().min(12)])
}

fn secs(s: f64) -> String {
    crate::syntax::format_duration(std::time::Duration::from_secs_f64(s.max(0.0).round()))
}

/// Aligned text, coloured when `style` says so.
pub fn text(s: &Status, style: Style) -> String {
    let mut out = format!(
        "fleet {} (namespace {})\n",
        style.bold(&escape_control(&s.fleet)),
        escape_control(&s.namespace)
    );
    match &s.paused {
        Some(p) => {
            let reason = if p.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", escape_control(&p.reason))
            };
            out.push_str(&format!(
                "paused:      {} by {} at {}{reason}\n",
                style.yellow("yes"),
                escape_control(&p.by),
                escape_control(&p.at)
            ));
        }
        None => out.push_str("paused:      no\n"),
    }
    if s.frozen.is_empty() {
        out.push_str("frozen:      no\n");
    }
    for (i, f) in s.frozen.iter().enumerate() {
        out.push_str(&format!(
            "{}stage {} {} until {}{} (window {})\n",
            if i == 0 {
                "frozen:      "
            } else {
                "             "
            },
            style.bold(&escape_control(&f.stage)),
            style.yellow("frozen"),
            if f.frozen.at_least { "at least " } else { "" },
            escape_control(&f.frozen.until),
            escape_control(&f.frozen.windows.join(", "))
        ));
    }
    match &s.rollout {
        Some(r) => {
            let gate = match (r.phase, r.bake_seconds, r.observed_seconds, r.left_seconds) {
                (Some(phase), Some(bake), Some(obs), Some(left)) => format!(
                    ", {}: observed {} of {} bake, {} left (as of {})",
                    style.cyan(phase.as_str()),
                    secs(obs),
                    secs(bake as f64),
                    secs(left),
                    escape_control(r.as_of.as_deref().unwrap_or_default())
                ),
                _ => ", gate not published yet".to_string(),
            };
            out.push_str(&format!(
                "rollout:     commit {} stage {}{gate}\n",
                short(&r.commit),
                style.bold(&escape_control(&r.stage))
            ));
        }
        None => out.push_str("rollout:     none in progress\n"),
    }
    match &s.last_record {
        Some(l) => {
            let outcome = if l.outcome.ok() {
                style.green(l.outcome.as_str())
            } else {
                style.red(l.outcome.as_str())
            };
            out.push_str(&format!(
                "last record: #{} {} {} {outcome} at {}\n",
                l.seq,
                format!("{:?}", l.kind).to_lowercase(),
                short(&l.commit),
                escape_control(&l.finished_at)
            ));
        }
        None => out.push_str("last record: none\n"),
    }
    let width = s
        .waves
        .iter()
        .map(|w| escape_control(&w.daemonset).chars().count())
        .max()
        .unwrap_or(0);
    for (i, w) in s.waves.iter().enumerate() {
        let name = escape_control(&w.daemonset);
        let pad = " ".repeat(width - name.chars().count());
        let at = match &w.wave {
            None => style.green("every wave replaced"),
            Some(a) => {
                let scope = a
                    .scope
                    .as_deref()
                    .map(|z| format!("{} ", escape_control(z)))
                    .unwrap_or_default();
                let doing = match &a.baking_until {
                    Some(t) => format!("{} until {}", style.cyan("baking"), escape_control(t)),
                    None => {
                        let mut shown: Vec<String> = a
                            .pending_nodes
                            .iter()
                            .take(3)
                            .map(|n| escape_control(n))
                            .collect();
                        if a.pending_nodes.len() > 3 {
                            shown.push(format!("{} more", a.pending_nodes.len() - 3));
                        }
                        if shown.is_empty() {
                            format!("{}/{} replaced", a.replaced, a.nodes)
                        } else {
                            format!(
                                "{}/{} replaced, pending {}",
                                a.replaced,
                                a.nodes,
                                shown.join(", ")
                            )
                        }
                    }
                };
                format!(
                    "{scope}wave {}/{}: {} node(s), {doing}",
                    a.number, a.of, a.nodes
                )
            }
        };
        out.push_str(&format!(
            "{}{}{pad}  {at} ({}/{} in all)\n",
            if i == 0 {
                "waves:       "
            } else {
                "             "
            },
            style.bold(&name),
            w.replaced,
            w.nodes
        ));
    }
    if let Some(why) = &s.waves_unread {
        out.push_str(&format!(
            "waves:       {}: {}\n",
            style.yellow("not read"),
            escape_control(why)
        ));
    }
    if let Some(b) = &s.budget {
        let used = format!("{}/{}", b.disrupted_nodes, b.budget_nodes);
        let used = if b.disrupted_nodes >= b.budget_nodes {
            style.yellow(&used)
        } else {
            used
        };
        out.push_str(&format!("budget:      {used} node(s) disrupted\n"));
    }
    out.push('\n');
    if s.rows.is_empty() {
        out.push_str("no DaemonSets of this fleet are live\n");
        return out;
    }
    let rows: Vec<Vec<String>> = s
        .rows
        .iter()
        .map(|r| {
            let stage = r.stage.as_deref().map(escape_control).unwrap_or("-".into());
            vec![
                escape_control(&r.daemon),
                escape_control(&r.group),
                if r.running {
                    format!("{stage} *")
                } else {
                    stage
                },
                r.commit.as_deref().map(short).unwrap_or("-".into()),
                format!("{}/{}/{}", r.desired, r.updated, r.ready),
                r.last.clone().unwrap_or("-".into()),
                escape_control(&r.images.join(",")),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "DAEMON",
            "GROUP",
            "STAGE",
            "COMMIT",
            "DESIRED/UPDATED/READY",
            "LAST",
            "IMAGES",
        ],
        &rows,
    ));
    if s.rows.iter().any(|r| r.running) {
        out.push_str("* the stage in progress\n");
    }
    out
}

/// The `drover.dev/status/v1` JSON document.
pub fn json(s: &Status) -> String {
    crate::report::json::to_string_pretty(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(
        daemon: &str,
        group: &str,
        commit: &str,
        image: &str,
        st: (i64, i64, i64),
    ) -> LiveDaemonSet {
        LiveDaemonSet {
            name: format!("{daemon}-{group}"),
            daemon: daemon.into(),
            group: group.into(),
            commit: Some(commit.into()),
            images: vec![image.into()],
            status: RolloutStatus {
                generation: 2,
                observed_generation: 2,
                desired: st.0,
                updated: st.1,
                available: st.2,
                unavailable: st.0 - st.2,
                ready: st.2,
            },
        }
    }

    /// A three-stage fleet mid-rollout: canary on v2 and baking, the rest on v1,
    /// paused by an operator.
    fn recorded() -> Inputs {
        let mut control = Control::default();
        control.pause(
            "canary error rate",
            "alice@example.com",
            "2026-12-01T12:00:05Z",
        );
        Inputs {
            fleet: "prod-eu1".into(),
            namespace: "node-agents".into(),
            stages: vec![
                ("canary".into(), vec!["canary".into()]),
                ("blue".into(), vec!["blue".into()]),
                ("green".into(), vec!["green".into()]),
            ],
            daemonsets: vec![
                ds(
                    "node-exporter",
                    "green",
                    "1111111111111111",
                    "prom/node-exporter:v1.8.0",
                    (5, 5, 5),
                ),
                ds(
                    "node-exporter",
                    "canary",
                    "2222222222222222",
                    "prom/node-exporter:v1.8.1",
                    (2, 2, 2),
                ),
                ds(
                    "node-exporter",
                    "blue",
                    "1111111111111111",
                    "prom/node-exporter:v1.8.0",
                    (3, 3, 3),
                ),
                ds(
                    "fluent-bit",
                    "canary",
                    "2222222222222222",
                    "fluent/fluent-bit:3.1",
                    (2, 1, 1),
                ),
            ],
            control,
            in_flight: Some(InFlight {
                commit: "2222222222222222".into(),
                stage: 0,
            }),
            progress: Some(StageProgress {
                stage: "canary".into(),
                phase: Phase::Baking,
                started_at: "2026-12-01T12:00:00Z".into(),
                bake_seconds: 60,
                observed_seconds: 21.4,
                updated_at: "2026-12-01T12:00:31Z".into(),
            }),
            last: Some(LastRecord {
                seq: 7,
                kind: RecordKind::Commit,
                commit: "1111111111111111".into(),
                outcome: Outcome::Applied,
                finished_at: "2026-11-30T09:00:00Z".into(),
                stages: vec![
                    ("canary".into(), StageResult::Succeeded),
                    ("blue".into(), StageResult::Succeeded),
                    ("green".into(), StageResult::Succeeded),
                ],
            }),
            frozen: Vec::new(),
            waves: crate::waves::Replan::default(),
            waves_unread: None,
        }
    }

    #[test]
    fn status_text_of_a_paused_rollout_mid_bake() {
        insta::assert_snapshot!(text(&build(recorded()), Style::plain()));
    }

    #[test]
    fn status_json_of_a_paused_rollout_mid_bake() {
        insta::assert_snapshot!(json(&build(recorded())));
    }

    #[test]
    fn status_text_of_an_idle_fleet_says_nothing_is_in_progress() {
        let mut i = recorded();
        i.control = Control::default();
        i.in_flight = None;
        i.progress = None;
        let t = text(&build(i), Style::plain());
        insta::assert_snapshot!(t);
        assert!(!t.contains('*'));
    }

    #[test]
    fn status_text_names_each_frozen_stage_and_until_when() {
        let mut i = recorded();
        i.frozen = vec![
            FrozenStage {
                stage: "blue".into(),
                frozen: crate::plan::StageFrozen {
                    until: "2026-12-07T06:00:00+01:00[Europe/Berlin]".into(),
                    at_least: false,
                    windows: vec!["friday-afternoon".into()],
                },
            },
            FrozenStage {
                stage: "green".into(),
                frozen: crate::plan::StageFrozen {
                    until: "2027-01-01T00:00:00+00:00[UTC]".into(),
                    at_least: true,
                    windows: vec!["friday-afternoon".into(), "year-end".into()],
                },
            },
        ];
        let t = text(&build(i.clone()), Style::plain());
        insta::assert_snapshot!(t);
        assert!(t.contains("frozen until 2026-12-07T06:00:00+01:00[Europe/Berlin]"));
        let j = json(&build(i));
        assert!(j.contains("\"at_least\": true"), "{j}");
    }

    #[test]
    fn a_gate_published_for_another_stage_is_not_shown_as_this_ones() {
        let mut i = recorded();
        i.in_flight = Some(InFlight {
            commit: "2222222222222222".into(),
            stage: 1,
        });
        let s = build(i);
        let r = s.rollout.unwrap();
        assert_eq!(r.stage, "blue");
        assert_eq!((r.phase, r.left_seconds), (None, None));
    }

    #[test]
    fn status_shows_each_driven_daemonset_s_wave_and_the_budget_in_use() {
        use crate::waves::{Replan, WaveProgress};
        let mut i = recorded();
        i.waves = Replan {
            progress: vec![
                WaveProgress {
                    daemonset: "cni-all".into(),
                    wave: Some((Some("zone-b".into()), 2, 3)),
                    wave_nodes: 9,
                    wave_settled: 4,
                    wave_pending: (4..9).map(|i| format!("zb-{i}")).collect(),
                    nodes: 300,
                    settled: 104,
                    baking_until: None,
                },
                WaveProgress {
                    daemonset: "csi-node-all".into(),
                    wave: Some((Some("zone-a".into()), 3, 3)),
                    wave_nodes: 90,
                    wave_settled: 90,
                    wave_pending: Vec::new(),
                    nodes: 300,
                    settled: 100,
                    baking_until: Some(1_796_155_200),
                },
                WaveProgress {
                    daemonset: "logs-all".into(),
                    wave: None,
                    wave_nodes: 0,
                    wave_settled: 0,
                    wave_pending: Vec::new(),
                    nodes: 300,
                    settled: 300,
                    baking_until: None,
                },
            ],
            budget: Some(15),
            disrupted: 15,
            ..Replan::default()
        };
        let t = text(&build(i.clone()), Style::plain());
        insta::assert_snapshot!(t);
        assert!(
            t.contains(
                "cni-all       zone-b wave 2/3: 9 node(s), 4/9 replaced, pending zb-4, zb-5, zb-6, 2 more (104/300 in all)"
            ),
            "{t}"
        );
        assert!(t.contains("budget:      15/15 node(s) disrupted"), "{t}");
        let j = json(&build(i));
        assert!(
            j.contains("\"baking_until\": \"2026-12-01T20:00:00Z\""),
            "{j}"
        );
        assert!(j.contains("\"disrupted_nodes\": 15"), "{j}");
        assert!(j.contains("\"zb-8\""), "every pending node in JSON: {j}");
        let mut unread = recorded();
        unread.waves_unread = Some("pods is forbidden\u{1b}[2J".into());
        let u = text(&build(unread), Style::plain());
        assert!(
            u.contains("waves:       not read: pods is forbidden"),
            "{u}"
        );
        assert!(!u.contains('\u{1b}'), "{u:?}");
        // No driven DaemonSet: neither section.
        let plain = text(&build(recorded()), Style::plain());
        assert!(
            !plain.contains("waves:") && !plain.contains("budget:"),
            "{plain}"
        );
    }

    #[test]
    fn recorded_text_cannot_reach_the_terminal_as_control_sequences() {
        let mut i = recorded();
        i.control.paused.as_mut().unwrap().reason = "\u{1b}[2Jgone".into();
        let t = text(&build(i), Style::plain());
        assert!(!t.contains('\u{1b}'), "{t:?}");
    }
}
