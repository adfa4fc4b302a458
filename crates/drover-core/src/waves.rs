//! Node-level replacement for the drover driver (issue 18), the pure part: which
//! nodes each wave of a group covers, zone by zone, and which replacements (one
//! daemon's pod on one node) may be in flight at one moment under the fleet's
//! disruption budget and the daemons' disruption classes.
//!
//! Not wired yet: no fleet field selects the driver, and the shell does not carry
//! out these steps. It is the decision part the driver's steps will be built on,
//! tested on its own as the rollout machine is.
//!
//! Owns: wave partitioning ([`plan_waves`]) and admission ([`admit`]). Must not: read
//! the cluster or the clock, or decide when a wave has passed its gate (the rollout
//! machine's job).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Driver, IntOrPercent, RolloutSpec};

/// Whether an upstream `updateStrategy` is exactly `{type: OnDelete}`, which drover
/// reads as `rollout.driver: drover`.
pub fn is_on_delete(u: &serde_json::Value) -> bool {
    u.as_object().is_some_and(|o| {
        o.len() == 1 && o.get("type").and_then(serde_json::Value::as_str) == Some("OnDelete")
    })
}

/// Who replaces a daemon's pods in a group, from its resolved rollout settings and
/// its upstream `updateStrategy` (`OnDelete` means drover).
pub fn driver_of(update_strategy: Option<&serde_json::Value>, resolved: &RolloutSpec) -> Driver {
    if update_strategy.is_some_and(is_on_delete) {
        Driver::Drover
    } else {
        resolved.driver.unwrap_or_default()
    }
}

/// How far a wave reaches, counted from the start of its scope (a zone, or the
/// whole group): waves are cumulative, as in `waves: [1, 10%, 50%, 100%]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaveSize {
    /// This many nodes of the scope in all (capped at the scope's size).
    Nodes(u32),
    /// This share of the scope's nodes in all, rounded up (so `10%` of 5 is 1).
    Percent(u32),
}

impl WaveSize {
    fn reach(self, scope: usize) -> usize {
        match self {
            WaveSize::Nodes(n) => (n as usize).min(scope),
            WaveSize::Percent(p) => (scope * p.min(100) as usize).div_ceil(100),
        }
    }

    /// A limit (a budget, `maxUnavailable`) resolved against `total` nodes: a share
    /// rounded down, and at least 1, so a rollout can always move.
    pub fn at_least_one_of(self, total: usize) -> usize {
        match self {
            WaveSize::Nodes(n) => n as usize,
            WaveSize::Percent(p) => (total * p.min(100) as usize) / 100,
        }
        .max(1)
    }

    fn is_everything(self) -> bool {
        matches!(self, WaveSize::Percent(100))
    }
}

/// A node as the planner needs it: its name and, when waves go by a topology
/// key, its value of that label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaveNode {
    pub name: String,
    pub topology: Option<String>,
}

/// One wave: the nodes whose pods it replaces, in the order they are taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    /// The topology value of the scope, `None` without `by` (the whole group) and
    /// for the nodes that lack the label (their own scope, last).
    pub scope: Option<String>,
    /// 1-based within its scope.
    pub number: usize,
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaveError {
    #[error("a wave list needs at least one wave")]
    Empty,
    #[error(
        "wave {number} reaches `{size}`, less than the wave before it: waves count from the start"
    )]
    Shrinks { number: usize, size: String },
    #[error("the last wave is `{size}`, not `100%`: nodes past it would keep the old version")]
    Incomplete { size: String },
    #[error("wave {number} is `{percent}%`: a share is at most 100%")]
    OverHundred { number: usize, percent: u32 },
    #[error("wave {number} is 0 nodes")]
    Zero { number: usize },
}

impl WaveSize {
    /// One wave size or budget as the fleet spells it: a positive integer, or a
    /// share `"N%"` with 0 < N <= 100.
    ///
    /// # Errors
    /// What is wrong with the spelling.
    pub fn parse(v: &IntOrPercent) -> Result<WaveSize, String> {
        match v {
            IntOrPercent::Int(i) if *i <= 0 => Err(format!("must be at least 1 (is {i})")),
            IntOrPercent::Int(i) => u32::try_from(*i)
                .map(WaveSize::Nodes)
                .map_err(|_| format!("is too large ({i})")),
            IntOrPercent::Str(s) => match crate::syntax::percent(s) {
                Some(0) => Err("must be more than 0%".into()),
                Some(p) if p > 100 => Err(format!("a share is at most 100% (is {p}%)")),
                Some(p) => Ok(WaveSize::Percent(p)),
                _ => Err(format!(
                    "`{s}` is neither a count of nodes nor a share like \"10%\""
                )),
            },
        }
    }

    /// A whole wave list; the first bad entry is named by its 0-based index.
    ///
    /// # Errors
    /// `(index, message)` of the first entry [`WaveSize::parse`] refuses, or the
    /// list's defect from [`check_sizes`] (index `None`).
    pub fn parse_list(vs: &[IntOrPercent]) -> Result<Vec<WaveSize>, (Option<usize>, String)> {
        let sizes = vs
            .iter()
            .enumerate()
            .map(|(i, v)| WaveSize::parse(v).map_err(|e| (Some(i), e)))
            .collect::<Result<Vec<_>, _>>()?;
        check_sizes(&sizes).map_err(|e| (None, e.to_string()))?;
        Ok(sizes)
    }
}

impl std::fmt::Display for WaveSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaveSize::Nodes(n) => write!(f, "{n}"),
            WaveSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Checks a wave list: not empty, no zero or over-100% wave, each reaching at
/// least as far as the one before (judged on the kinds that compare: counts with
/// counts, shares with shares), and the last one `100%`.
///
/// # Errors
/// The first defect, with the wave's 1-based number.
pub fn check_sizes(sizes: &[WaveSize]) -> Result<(), WaveError> {
    let Some(last) = sizes.last() else {
        return Err(WaveError::Empty);
    };
    let (mut nodes, mut percent) = (0u32, 0u32);
    for (i, s) in sizes.iter().enumerate() {
        let number = i + 1;
        match *s {
            WaveSize::Nodes(0) | WaveSize::Percent(0) => return Err(WaveError::Zero { number }),
            WaveSize::Percent(p) if p > 100 => {
                return Err(WaveError::OverHundred { number, percent: p });
            }
            WaveSize::Nodes(n) if n < nodes => {
                return Err(WaveError::Shrinks {
                    number,
                    size: s.to_string(),
                });
            }
            WaveSize::Percent(p) if p < percent => {
                return Err(WaveError::Shrinks {
                    number,
                    size: s.to_string(),
                });
            }
            WaveSize::Nodes(n) => nodes = n,
            WaveSize::Percent(p) => percent = p,
        }
    }
    if !last.is_everything() {
        return Err(WaveError::Incomplete {
            size: last.to_string(),
        });
    }
    Ok(())
}

/// Splits a group's nodes into waves. Without `by_topology` the group is one
/// scope; with it, each topology value is a scope, in name order, and the nodes
/// without the label are a last scope of their own. Within a scope nodes are taken
/// in name order, and wave k covers the nodes up to its reach past what earlier
/// waves covered (a wave that would cover nothing new is left out). Every node is
/// in exactly one wave; scopes never share a wave, so a zone is finished before
/// the next begins.
///
/// # Errors
/// A wave list [`check_sizes`] refuses.
pub fn plan_waves(
    nodes: &[WaveNode],
    sizes: &[WaveSize],
    by_topology: bool,
) -> Result<Vec<Wave>, WaveError> {
    check_sizes(sizes)?;
    let mut scopes: BTreeMap<(bool, Option<String>), BTreeSet<&str>> = BTreeMap::new();
    for n in nodes {
        let scope = if by_topology {
            n.topology.clone()
        } else {
            None
        };
        // Labelled scopes sort first (false < true), the unlabelled one last.
        let key = (by_topology && scope.is_none(), scope);
        scopes.entry(key).or_default().insert(&n.name);
    }
    let mut waves = Vec::new();
    for ((_, scope), members) in scopes {
        let members: Vec<&str> = members.into_iter().collect();
        let mut covered = 0;
        let mut number = 0;
        for s in sizes {
            let reach = s.reach(members.len()).max(covered);
            if reach == covered {
                continue;
            }
            number += 1;
            waves.push(Wave {
                scope: scope.clone(),
                number,
                nodes: members[covered..reach]
                    .iter()
                    .map(|n| (*n).to_string())
                    .collect(),
            });
            covered = reach;
        }
    }
    Ok(waves)
}

/// The fleet-wide disruption budget, resolved against the fleet's node count: at
/// most this many nodes may lack a Ready pod of a daemon in the commit at once.
/// At least 1, so a rollout can always move.
pub fn budget_nodes(size: WaveSize, fleet_nodes: usize) -> usize {
    size.at_least_one_of(fleet_nodes)
}

/// One pod to replace: `daemon`'s on `node`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Replacement {
    pub node: String,
    pub daemon: String,
    /// The daemon's `disruptionClass`: two of one class never restart on one node
    /// at the same time.
    pub class: Option<String>,
}

/// Which of `pending` may start now, in `pending`'s order (wave order: earlier
/// waves first), given what is in flight and which nodes are disrupted already.
///
/// `disrupted` are the nodes that lack a Ready pod of some daemon of the commit
/// right now, as observed (in-flight replacements, and anything else: a node whose
/// agent crashed counts too). Starting on a node not yet disrupted takes one unit
/// of `budget`; a node already disrupted takes none, but a replacement there waits
/// while one of its class is in flight on that node. Fail closed: a node is only
/// free when it was observed not disrupted.
pub fn admit<'a>(
    pending: &'a [Replacement],
    in_flight: &[Replacement],
    disrupted: &BTreeSet<String>,
    budget: usize,
) -> Vec<&'a Replacement> {
    let mut nodes: BTreeSet<&str> = disrupted.iter().map(String::as_str).collect();
    nodes.extend(in_flight.iter().map(|r| r.node.as_str()));
    let mut busy: BTreeSet<(&str, &str)> = in_flight
        .iter()
        .filter_map(|r| Some((r.node.as_str(), r.class.as_deref()?)))
        .collect();
    let mut running: BTreeSet<(&str, &str)> = in_flight
        .iter()
        .map(|r| (r.node.as_str(), r.daemon.as_str()))
        .collect();
    let mut started = Vec::new();
    for r in pending {
        if running.contains(&(r.node.as_str(), r.daemon.as_str())) {
            continue;
        }
        if let Some(class) = r.class.as_deref()
            && busy.contains(&(r.node.as_str(), class))
        {
            continue;
        }
        if !nodes.contains(r.node.as_str()) {
            if nodes.len() >= budget {
                continue;
            }
            nodes.insert(&r.node);
        }
        if let Some(class) = r.class.as_deref() {
            busy.insert((&r.node, class));
        }
        running.insert((&r.node, &r.daemon));
        started.push(r);
    }
    started
}

/// The annotations that carry a driven DaemonSet's settings to the shell: the
/// live object says how it is rolled, so a resumed run needs nothing else.
pub const ANN_DRIVER: &str = "drover.dev/driver";
pub const ANN_WAVES: &str = "drover.dev/waves";
pub const ANN_WAVES_BY: &str = "drover.dev/waves-by";
pub const ANN_MAX_UNAVAILABLE: &str = "drover.dev/max-unavailable";
pub const ANN_BUDGET: &str = "drover.dev/disruption-budget";
pub const ANN_CLASS: &str = "drover.dev/disruption-class";
pub const ANN_WAVE_BAKE: &str = "drover.dev/wave-bake";

/// How drover replaces one driven DaemonSet's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverSettings {
    /// Cumulative waves per scope; `[100%]` when none are set.
    pub waves: Vec<WaveSize>,
    /// The node label whose values are the scopes, one after another.
    pub by: Option<String>,
    /// Replacements of this DaemonSet in flight at once, resolved against its nodes.
    pub max_unavailable: WaveSize,
    /// The fleet's budget: nodes lacking a Ready pod of the stage at once.
    pub budget: Option<WaveSize>,
    pub class: Option<String>,
    /// How long a wave stays settled before the next wave (or zone) starts.
    pub wave_bake: std::time::Duration,
}

fn spell(v: &IntOrPercent) -> String {
    match v {
        IntOrPercent::Int(i) => i.to_string(),
        IntOrPercent::Str(s) => s.clone(),
    }
}

fn unspell(s: &str) -> IntOrPercent {
    s.parse::<i64>()
        .map_or_else(|_| IntOrPercent::Str(s.to_string()), IntOrPercent::Int)
}

impl DriverSettings {
    /// The annotations of a driven DaemonSet rendered with `resolved` settings.
    pub fn annotations(resolved: &RolloutSpec, class: Option<&str>) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        a.insert(ANN_DRIVER.to_string(), "drover".to_string());
        let waves = resolved.waves.as_ref().map_or_else(
            || "100%".to_string(),
            |ws| ws.iter().map(spell).collect::<Vec<_>>().join(","),
        );
        a.insert(ANN_WAVES.to_string(), waves);
        if let Some(by) = &resolved.by {
            a.insert(ANN_WAVES_BY.to_string(), by.clone());
        }
        let mu = resolved
            .max_unavailable
            .as_ref()
            .map_or_else(|| "1".to_string(), spell);
        a.insert(ANN_MAX_UNAVAILABLE.to_string(), mu);
        if let Some(b) = &resolved.disruption_budget {
            a.insert(ANN_BUDGET.to_string(), spell(b));
        }
        if let Some(c) = class {
            a.insert(ANN_CLASS.to_string(), c.to_string());
        }
        if let Some(b) = resolved
            .wave_bake
            .as_deref()
            .and_then(|b| crate::syntax::duration(b).ok())
            .filter(|b| !b.is_zero())
        {
            a.insert(ANN_WAVE_BAKE.to_string(), crate::syntax::format_duration(b));
        }
        a
    }

    /// Whether a DaemonSet with annotations `a` is drover's to drive
    /// (`drover.dev/driver: drover`), whether or not its settings parse.
    pub fn drives(a: &BTreeMap<String, String>) -> bool {
        a.get(ANN_DRIVER).map(String::as_str) == Some("drover")
    }

    /// The settings of a live DaemonSet: `None` when drover does not drive it.
    ///
    /// # Errors
    /// An annotation that does not parse (fail closed: such a DaemonSet's pods are
    /// never replaced).
    pub fn from_annotations(
        a: &BTreeMap<String, String>,
    ) -> Option<Result<DriverSettings, String>> {
        if !DriverSettings::drives(a) {
            return None;
        }
        let parse = |key: &str, v: &str| {
            WaveSize::parse(&unspell(v)).map_err(|e| format!("annotation {key}: {e}"))
        };
        let settings = (|| {
            let waves_text = a.get(ANN_WAVES).map_or("100%", String::as_str);
            let waves = waves_text
                .split(',')
                .map(|w| parse(ANN_WAVES, w.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            check_sizes(&waves).map_err(|e| format!("annotation {ANN_WAVES}: {e}"))?;
            let max_unavailable = parse(
                ANN_MAX_UNAVAILABLE,
                a.get(ANN_MAX_UNAVAILABLE).map_or("1", String::as_str),
            )?;
            let budget = a
                .get(ANN_BUDGET)
                .map(|b| parse(ANN_BUDGET, b))
                .transpose()?;
            let wave_bake = a
                .get(ANN_WAVE_BAKE)
                .map(|b| {
                    crate::syntax::duration(b)
                        .map_err(|e| format!("annotation {ANN_WAVE_BAKE}: {e}"))
                })
                .transpose()?
                .unwrap_or_default();
            Ok(DriverSettings {
                waves,
                by: a.get(ANN_WAVES_BY).cloned(),
                max_unavailable,
                budget,
                class: a.get(ANN_CLASS).cloned(),
                wave_bake,
            })
        })();
        Some(settings)
    }
}

/// A DaemonSet's pod on one node, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSlot {
    pub pod: String,
    pub uid: String,
    pub resource_version: String,
    /// Of the DaemonSet's current revision.
    pub current: bool,
    pub ready: bool,
    /// When it became Ready (Unix seconds, its Ready condition's last transition),
    /// for a wave's bake; `None` when not Ready or not known.
    pub ready_since: Option<i64>,
}

impl PodSlot {
    fn settled(&self) -> bool {
        self.current && self.ready
    }
}

/// One DaemonSet of the stage as the replacer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetView {
    pub daemonset: String,
    /// `None`: the controller rolls it (it still counts towards the budget).
    pub settings: Option<DriverSettings>,
    /// Whether its current revision is known; until it is, none of its pods is
    /// replaced (a pod is only old when observed old).
    pub revision_known: bool,
    /// Node -> its pod now; `None` for a node that had one of its pods during
    /// the observation and has none now (deleted, not yet recreated).
    pub pods: BTreeMap<String, Option<PodSlot>>,
}

/// A pod to delete (with preconditions on both fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub daemonset: String,
    pub node: String,
    pub pod: String,
    pub uid: String,
    pub resource_version: String,
}

/// Where one driven DaemonSet is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaveProgress {
    pub daemonset: String,
    /// The wave being replaced: its scope, its number in the scope, and how many
    /// waves the scope has; `None` when every wave is done.
    pub wave: Option<(Option<String>, usize, usize)>,
    /// Nodes of that wave and how many of them are settled (current and Ready).
    pub wave_nodes: usize,
    pub wave_settled: usize,
    /// The wave's nodes not settled yet, in the order they are taken.
    pub wave_pending: Vec<String>,
    /// All its nodes, and those settled.
    pub nodes: usize,
    pub settled: usize,
    /// The wave is settled and bakes until then (Unix seconds) before the next
    /// wave starts.
    pub baking_until: Option<i64>,
}

/// What the replacer does now, and where the rollout is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replan {
    pub delete: Vec<Deletion>,
    pub progress: Vec<WaveProgress>,
    /// The budget in nodes, when one is set, and the nodes disrupted now.
    pub budget: Option<usize>,
    pub disrupted: usize,
    /// When a wave's bake ends (Unix seconds): replan then, even without a change.
    pub wake_at: Option<i64>,
}

/// The next pods to delete, from one consistent view of the stage.
///
/// For each driven DaemonSet, its nodes are split into waves ([`plan_waves`], by
/// the node label `by` when set; `node_labels` are the nodes' labels). The wave
/// it is in is the first one with a node whose pod is not settled (current and
/// Ready, observed): an earlier wave that is not settled holds every later one, so
/// a wave failing halts the zones and waves after it. Its old pods are candidates,
/// at most `maxUnavailable` of the set unsettled at once; [`admit`] then applies the
/// fleet's budget (over every DaemonSet of the stage, driven or not) and the
/// disruption classes. `requested` are pods already asked to be deleted (by uid),
/// counted in flight until they are gone. `fleet_nodes` resolves a `%` budget.
///
/// With a `wave_bake`, a settled wave holds the next one (and the next zone) until
/// every pod of it has been Ready that long at `now` (Unix seconds); a pod whose
/// Ready time is unknown holds it (fail closed). The last wave's bake is the
/// stage's.
pub fn replan(
    sets: &[SetView],
    node_labels: &BTreeMap<String, BTreeMap<String, String>>,
    fleet_nodes: usize,
    requested: &BTreeSet<String>,
    now: i64,
) -> Replan {
    // A node lacks a settled pod of the set (it is disrupted) when the pod is gone,
    // not Ready, or asked to go. A replacement is in flight when the pod is gone, a
    // new one is not Ready yet, or the old one is asked to go; an old pod that is
    // not Ready is disrupted but waits for its replacement like any old pod.
    let disrupting = |p: &Option<PodSlot>| match p {
        None => true,
        Some(p) => !p.ready || requested.contains(&p.uid),
    };
    let in_flight_pod = |p: &Option<PodSlot>| match p {
        None => true,
        Some(p) => (p.current && !p.ready) || requested.contains(&p.uid),
    };
    // Nodes that have left free their share: only nodes still listed count.
    let listed = |n: &str| node_labels.contains_key(n);
    let mut disrupted: BTreeSet<String> = BTreeSet::new();
    let mut in_flight: Vec<Replacement> = Vec::new();
    for s in sets {
        for (node, p) in &s.pods {
            if listed(node) && disrupting(p) {
                disrupted.insert(node.clone());
            }
            if listed(node) && in_flight_pod(p) {
                in_flight.push(Replacement {
                    node: node.clone(),
                    daemon: s.daemonset.clone(),
                    class: s.settings.as_ref().and_then(|x| x.class.clone()),
                });
            }
        }
    }
    let budget = sets
        .iter()
        .filter_map(|s| s.settings.as_ref()?.budget)
        .map(|b| budget_nodes(b, fleet_nodes))
        .min();
    let mut candidates: Vec<Vec<Replacement>> = Vec::new();
    let mut plan = Replan {
        budget,
        disrupted: disrupted.len(),
        ..Replan::default()
    };
    let mut slots: BTreeMap<(String, String), &PodSlot> = BTreeMap::new();
    for s in sets {
        let Some(settings) = &s.settings else {
            continue;
        };
        let nodes: Vec<WaveNode> = s
            .pods
            .keys()
            .filter(|n| listed(n))
            .map(|n| WaveNode {
                name: n.clone(),
                topology: settings
                    .by
                    .as_ref()
                    .and_then(|k| node_labels.get(n)?.get(k).cloned()),
            })
            .collect();
        let Ok(waves) = plan_waves(&nodes, &settings.waves, settings.by.is_some()) else {
            continue;
        };
        let settled_on = |n: &str| {
            s.pods
                .get(n)
                .and_then(Option::as_ref)
                .is_some_and(PodSlot::settled)
                && !s
                    .pods
                    .get(n)
                    .and_then(Option::as_ref)
                    .is_some_and(|p| requested.contains(&p.uid))
        };
        let total = nodes.len();
        let settled = nodes.iter().filter(|n| settled_on(&n.name)).count();
        let bake = i64::try_from(settings.wave_bake.as_secs()).unwrap_or(i64::MAX);
        // The first wave not settled, or settled and still baking (`Some(until)`;
        // `Some(i64::MAX)` while a Ready time is unknown).
        let mut current = None;
        for (i, w) in waves.iter().enumerate() {
            if !w.nodes.iter().all(|n| settled_on(n)) {
                current = Some((i, None));
                break;
            }
            if bake == 0 || i + 1 == waves.len() || w.nodes.is_empty() {
                continue;
            }
            let since = w.nodes.iter().try_fold(i64::MIN, |acc, n| {
                let t = s.pods.get(n).and_then(Option::as_ref)?.ready_since?;
                Some(acc.max(t))
            });
            let until = since.map_or(i64::MAX, |t| t.saturating_add(bake));
            if until > now {
                current = Some((i, Some(until)));
                break;
            }
        }
        let mut progress = WaveProgress {
            daemonset: s.daemonset.clone(),
            wave: None,
            wave_nodes: 0,
            wave_settled: 0,
            wave_pending: Vec::new(),
            nodes: total,
            settled,
            baking_until: None,
        };
        if let Some((i, baking)) = current {
            let w = &waves[i];
            let of = waves.iter().filter(|x| x.scope == w.scope).count();
            progress.wave = Some((w.scope.clone(), w.number, of));
            progress.wave_nodes = w.nodes.len();
            progress.wave_settled = w.nodes.iter().filter(|n| settled_on(n)).count();
            progress.wave_pending = w.nodes.iter().filter(|n| !settled_on(n)).cloned().collect();
            progress.baking_until = baking;
            if let Some(until) = baking {
                // Settled: nothing to replace before the bake ends.
                if until != i64::MAX {
                    plan.wake_at = Some(plan.wake_at.map_or(until, |t| t.min(until)));
                }
                plan.progress.push(progress);
                continue;
            }
            let limit = settings.max_unavailable.at_least_one_of(total);
            let unsettled_now = s
                .pods
                .iter()
                .filter(|(n, p)| listed(n) && disrupting(p))
                .count();
            let room = limit.saturating_sub(unsettled_now);
            let mut mine = Vec::new();
            let mut taken = 0;
            if s.revision_known {
                for n in &w.nodes {
                    if let Some(Some(p)) = s.pods.get(n)
                        && !p.current
                        && !requested.contains(&p.uid)
                    {
                        // An old pod that is not Ready is unavailable already: replacing
                        // it takes none of maxUnavailable (as the DaemonSet controller
                        // deletes unavailable old pods first).
                        if p.ready {
                            if taken >= room {
                                continue;
                            }
                            taken += 1;
                        }
                        slots.insert((n.clone(), s.daemonset.clone()), p);
                        mine.push(Replacement {
                            node: n.clone(),
                            daemon: s.daemonset.clone(),
                            class: settings.class.clone(),
                        });
                    }
                }
            }
            candidates.push(mine);
        }
        plan.progress.push(progress);
    }
    // Round-robin across the DaemonSets, so one set's wave does not take the whole
    // budget before the others start theirs.
    let mut pending = Vec::new();
    let longest = candidates.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for c in &candidates {
            if let Some(r) = c.get(i) {
                pending.push(r.clone());
            }
        }
    }
    let start = admit(
        &pending,
        &in_flight,
        &disrupted,
        budget.unwrap_or(usize::MAX),
    );
    for r in start {
        if let Some(p) = slots.get(&(r.node.clone(), r.daemon.clone())) {
            plan.delete.push(Deletion {
                daemonset: r.daemon.clone(),
                node: r.node.clone(),
                pod: p.pod.clone(),
                uid: p.uid.clone(),
                resource_version: p.resource_version.clone(),
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use WaveSize::{Nodes, Percent};

    #[test]
    fn a_share_is_spelled_as_the_api_server_takes_it_no_sign_or_space() {
        let str_ = |s: &str| IntOrPercent::Str(s.into());
        assert_eq!(WaveSize::parse(&str_("10%")), Ok(Percent(10)));
        for bad in ["+10%", " 10%", "10 %", "-0%"] {
            assert!(WaveSize::parse(&str_(bad)).is_err(), "{bad:?}");
        }
        let mut a = BTreeMap::new();
        a.insert(ANN_DRIVER.to_string(), "drover".to_string());
        a.insert(ANN_MAX_UNAVAILABLE.to_string(), "+10%".to_string());
        assert!(matches!(DriverSettings::from_annotations(&a), Some(Err(_))));
    }

    fn nodes(spec: &[(&str, Option<&str>)]) -> Vec<WaveNode> {
        spec.iter()
            .map(|(n, z)| WaveNode {
                name: (*n).into(),
                topology: z.map(str::to_string),
            })
            .collect()
    }

    fn names(w: &Wave) -> Vec<&str> {
        w.nodes.iter().map(String::as_str).collect()
    }

    #[test]
    fn waves_of_one_then_ten_percent_then_half_then_all_cover_each_node_once() {
        let ns: Vec<WaveNode> = (0..20)
            .map(|i| WaveNode {
                name: format!("n{i:02}"),
                topology: None,
            })
            .collect();
        let w = plan_waves(
            &ns,
            &[Nodes(1), Percent(10), Percent(50), Percent(100)],
            false,
        )
        .unwrap();
        let sizes: Vec<usize> = w.iter().map(|w| w.nodes.len()).collect();
        assert_eq!(sizes, [1, 1, 8, 10]);
        assert_eq!(names(&w[0]), ["n00"]);
        assert_eq!(w.iter().map(|w| w.number).collect::<Vec<_>>(), [1, 2, 3, 4]);
    }

    #[test]
    fn zones_are_waved_one_after_another_and_unlabelled_nodes_come_last() {
        let ns = nodes(&[
            ("b1", Some("zone-b")),
            ("a1", Some("zone-a")),
            ("x", None),
            ("a2", Some("zone-a")),
            ("b2", Some("zone-b")),
        ]);
        let w = plan_waves(&ns, &[Nodes(1), Percent(100)], true).unwrap();
        let got: Vec<(Option<&str>, usize, Vec<&str>)> = w
            .iter()
            .map(|w| (w.scope.as_deref(), w.number, names(w)))
            .collect();
        assert_eq!(
            got,
            [
                (Some("zone-a"), 1, vec!["a1"]),
                (Some("zone-a"), 2, vec!["a2"]),
                (Some("zone-b"), 1, vec!["b1"]),
                (Some("zone-b"), 2, vec!["b2"]),
                (None, 1, vec!["x"]),
            ]
        );
    }

    #[test]
    fn a_wave_list_that_shrinks_stops_short_or_is_empty_is_refused() {
        assert_eq!(check_sizes(&[]), Err(WaveError::Empty));
        assert!(matches!(
            check_sizes(&[Percent(50), Percent(10), Percent(100)]),
            Err(WaveError::Shrinks { number: 2, .. })
        ));
        assert!(matches!(
            check_sizes(&[Nodes(1), Percent(50)]),
            Err(WaveError::Incomplete { .. })
        ));
        assert!(matches!(
            check_sizes(&[Nodes(0), Percent(100)]),
            Err(WaveError::Zero { number: 1 })
        ));
        assert!(matches!(
            check_sizes(&[Percent(150)]),
            Err(WaveError::OverHundred { number: 1, .. })
        ));
        assert_eq!(check_sizes(&[Nodes(1), Percent(100)]), Ok(()));
    }

    fn rep(node: &str, daemon: &str, class: Option<&str>) -> Replacement {
        Replacement {
            node: node.into(),
            daemon: daemon.into(),
            class: class.map(str::to_string),
        }
    }

    #[test]
    fn two_daemons_of_one_class_never_start_together_on_one_node() {
        let pending = [
            rep("n1", "cilium", Some("network")),
            rep("n1", "ebs-csi", Some("network")),
            rep("n1", "fluent-bit", None),
        ];
        let started = admit(&pending, &[], &BTreeSet::new(), 5);
        let got: Vec<&str> = started.iter().map(|r| r.daemon.as_str()).collect();
        assert_eq!(got, ["cilium", "fluent-bit"]);
        // With cilium in flight the other of its class still waits.
        let again = admit(&pending[1..2], &pending[..1], &BTreeSet::new(), 5);
        assert!(again.is_empty());
    }

    #[test]
    fn the_budget_counts_disrupted_nodes_including_ones_drover_did_not_disrupt() {
        let pending = [
            rep("n1", "a", None),
            rep("n2", "a", None),
            rep("n3", "a", None),
        ];
        let disrupted: BTreeSet<String> = ["n9".to_string()].into();
        let started = admit(&pending, &[], &disrupted, 2);
        assert_eq!(started.len(), 1, "n9 already takes one of the two");
        // A node already disrupted takes no more of the budget.
        let on_n9 = [rep("n9", "b", None)];
        assert_eq!(admit(&on_n9, &[], &disrupted, 1).len(), 1);
        assert_eq!(budget_nodes(Percent(1), 50), 1, "never 0");
        assert_eq!(budget_nodes(Percent(10), 300), 30);
    }

    fn settings(
        waves: &[WaveSize],
        by: bool,
        mu: u32,
        budget: u32,
        class: Option<&str>,
    ) -> DriverSettings {
        DriverSettings {
            waves: waves.to_vec(),
            by: by.then(|| "zone".to_string()),
            max_unavailable: Nodes(mu),
            budget: Some(Nodes(budget)),
            class: class.map(str::to_string),
            wave_bake: std::time::Duration::ZERO,
        }
    }

    /// A small cluster the tests play the DaemonSet controller and the kubelet in.
    struct World {
        labels: BTreeMap<String, BTreeMap<String, String>>,
        sets: Vec<SetView>,
        requested: BTreeSet<String>,
        next_uid: u64,
        /// The kubelet's clock: what a pod made Ready records as its Ready time.
        now: i64,
    }

    impl World {
        fn new(nodes: usize, zones: usize, sets: &[(&str, Option<DriverSettings>)]) -> World {
            let mut labels = BTreeMap::new();
            for i in 0..nodes {
                let zone = format!("z{}", i % zones);
                labels.insert(format!("n{i:03}"), [("zone".to_string(), zone)].into());
            }
            let mut next_uid = 0;
            let sets = sets
                .iter()
                .map(|(name, st)| SetView {
                    daemonset: (*name).into(),
                    settings: st.clone(),
                    revision_known: true,
                    pods: labels
                        .keys()
                        .map(|n| {
                            next_uid += 1;
                            let slot = PodSlot {
                                pod: format!("{name}-{next_uid}"),
                                uid: next_uid.to_string(),
                                resource_version: "1".into(),
                                current: false,
                                ready: true,
                                ready_since: Some(0),
                            };
                            (n.clone(), Some(slot))
                        })
                        .collect(),
                })
                .collect();
            World {
                labels,
                sets,
                requested: BTreeSet::new(),
                next_uid,
                now: 0,
            }
        }

        fn zone(&self, node: &str) -> &str {
            &self.labels[node]["zone"]
        }

        /// Deletes what the plan says (the pods go at once).
        fn delete(&mut self, plan: &Replan) {
            for d in &plan.delete {
                let set = self
                    .sets
                    .iter_mut()
                    .find(|s| s.daemonset == d.daemonset)
                    .unwrap();
                set.pods.insert(d.node.clone(), None);
            }
        }

        /// The controller recreates one gone pod (current, not ready), or the
        /// kubelet makes one new pod Ready; `pick` chooses which.
        fn progress(&mut self, pick: usize) -> bool {
            let mut moves = Vec::new();
            for (si, s) in self.sets.iter().enumerate() {
                for (n, p) in &s.pods {
                    match p {
                        None => moves.push((si, n.clone(), false)),
                        Some(p) if !p.ready => moves.push((si, n.clone(), true)),
                        Some(_) => {}
                    }
                }
            }
            if moves.is_empty() {
                return false;
            }
            let (si, n, ready) = moves[pick % moves.len()].clone();
            self.next_uid += 1;
            let uid = self.next_uid.to_string();
            let name = self.sets[si].daemonset.clone();
            let slot = self.sets[si].pods.get_mut(&n).unwrap();
            if ready {
                let p = slot.as_mut().unwrap();
                p.ready = true;
                p.ready_since = Some(self.now);
            } else {
                *slot = Some(PodSlot {
                    pod: format!("{name}-{uid}"),
                    uid,
                    resource_version: "1".into(),
                    current: true,
                    ready: false,
                    ready_since: None,
                });
            }
            true
        }

        fn all_settled(&self) -> bool {
            self.sets.iter().all(|s| {
                s.pods
                    .values()
                    .all(|p| p.as_ref().is_some_and(PodSlot::settled))
            })
        }

        fn disrupted(&self) -> BTreeSet<String> {
            self.sets
                .iter()
                .flat_map(|s| s.pods.iter())
                .filter(|(_, p)| !p.as_ref().is_some_and(|p| p.ready))
                .map(|(n, _)| n.clone())
                .collect()
        }
    }

    #[test]
    fn replan_starts_with_the_first_wave_of_the_first_zone_only() {
        let st = settings(&[Nodes(1), Percent(100)], true, 5, 10, None);
        let w = World::new(9, 3, &[("a", Some(st))]);
        let plan = replan(&w.sets, &w.labels, 9, &BTreeSet::new(), 0);
        let nodes: Vec<&str> = plan.delete.iter().map(|d| d.node.as_str()).collect();
        assert_eq!(nodes, ["n000"], "wave 1 of zone z0 is one node");
        assert_eq!(plan.progress[0].wave, Some((Some("z0".into()), 1, 2)));
        // A pod asked to go is in flight: nothing more until it is replaced.
        let requested: BTreeSet<String> = [plan.delete[0].uid.clone()].into();
        assert!(
            replan(&w.sets, &w.labels, 9, &requested, 0)
                .delete
                .is_empty()
        );
    }

    #[test]
    fn an_unready_new_pod_holds_its_wave_and_every_later_zone() {
        let st = settings(&[Nodes(1), Percent(100)], true, 5, 10, None);
        let mut w = World::new(9, 3, &[("a", Some(st))]);
        let plan = replan(&w.sets, &w.labels, 9, &BTreeSet::new(), 0);
        w.delete(&plan);
        w.progress(0); // recreated, never Ready (the fail-ready case)
        for _ in 0..3 {
            let again = replan(&w.sets, &w.labels, 9, &BTreeSet::new(), 0);
            assert!(again.delete.is_empty(), "{again:?}");
            assert_eq!(again.progress[0].wave, Some((Some("z0".into()), 1, 2)));
        }
        let old: usize = w.sets[0]
            .pods
            .values()
            .flatten()
            .filter(|p| !p.current)
            .count();
        assert_eq!(old, 8, "later waves and zones untouched");
    }

    #[test]
    fn an_old_pod_that_is_not_ready_is_replaced_even_with_max_unavailable_used_up() {
        // A rollback: the failed new version's pod is old now, and not Ready.
        let st = settings(&[Percent(100)], false, 1, 10, None);
        let mut w = World::new(3, 1, &[("a", Some(st))]);
        w.sets[0]
            .pods
            .get_mut("n000")
            .unwrap()
            .as_mut()
            .unwrap()
            .ready = false;
        for p in w.sets[0].pods.values_mut().skip(1) {
            p.as_mut().unwrap().current = true;
        }
        let plan = replan(&w.sets, &w.labels, 3, &BTreeSet::new(), 0);
        let nodes: Vec<&str> = plan.delete.iter().map(|d| d.node.as_str()).collect();
        assert_eq!(nodes, ["n000"]);
    }

    #[test]
    fn a_settled_wave_bakes_before_the_next_wave_and_an_unknown_ready_time_holds_it() {
        let mut st = settings(&[Nodes(1), Percent(100)], false, 5, 10, None);
        st.wave_bake = std::time::Duration::from_secs(30);
        let mut w = World::new(4, 1, &[("a", Some(st))]);
        let plan = replan(&w.sets, &w.labels, 4, &BTreeSet::new(), 0);
        assert_eq!(plan.delete.len(), 1, "wave 1 is one node");
        w.delete(&plan);
        w.progress(0); // recreated
        w.now = 100;
        w.progress(0); // Ready at 100
        let baking = replan(&w.sets, &w.labels, 4, &BTreeSet::new(), 129);
        assert!(baking.delete.is_empty(), "{baking:?}");
        assert_eq!(baking.progress[0].baking_until, Some(130));
        assert_eq!(baking.progress[0].wave, Some((None, 1, 2)));
        assert_eq!(baking.wake_at, Some(130));
        let next = replan(&w.sets, &w.labels, 4, &BTreeSet::new(), 130);
        assert_eq!(next.delete.len(), 3, "wave 2 once wave 1 has baked 30s");
        assert_eq!(next.progress[0].wave, Some((None, 2, 2)));
        assert_eq!(next.wake_at, None);
        // A Ready time not known: the wave never counts as baked.
        let slot = w.sets[0].pods.values_mut().flatten().find(|p| p.current);
        slot.unwrap().ready_since = None;
        let unknown = replan(&w.sets, &w.labels, 4, &BTreeSet::new(), 10_000);
        assert!(unknown.delete.is_empty());
        assert_eq!(unknown.progress[0].baking_until, Some(i64::MAX));
        assert_eq!(unknown.wake_at, None);
    }

    #[test]
    fn the_last_wave_has_no_bake_of_its_own_but_a_zone_s_last_wave_holds_the_next_zone() {
        let mut st = settings(&[Percent(100)], true, 5, 10, None);
        st.wave_bake = std::time::Duration::from_secs(60);
        // Two zones, one wave each: z0's only wave bakes before z1 starts.
        let mut w = World::new(4, 2, &[("a", Some(st))]);
        let plan = replan(&w.sets, &w.labels, 4, &BTreeSet::new(), 0);
        assert_eq!(plan.delete.len(), 2);
        w.delete(&plan);
        w.progress(0);
        w.progress(0);
        w.now = 5;
        while w.progress(0) {}
        let z0 = replan(&w.sets, &w.labels, 4, &BTreeSet::new(), 6);
        assert!(z0.delete.is_empty(), "zone z1 waits for z0's bake: {z0:?}");
        let z1 = replan(&w.sets, &w.labels, 4, &BTreeSet::new(), 65);
        assert_eq!(z1.delete.len(), 2);
        w.delete(&z1);
        while w.progress(0) {}
        let done = replan(&w.sets, &w.labels, 4, &BTreeSet::new(), 66);
        assert_eq!(
            done.progress[0].wave, None,
            "the last wave does not bake here"
        );
        assert_eq!(done.wake_at, None);
    }

    #[test]
    fn an_old_pod_whose_revision_is_unknown_is_never_deleted() {
        let st = settings(&[Percent(100)], false, 5, 10, None);
        let mut w = World::new(4, 1, &[("a", Some(st))]);
        w.sets[0].revision_known = false;
        assert!(
            replan(&w.sets, &w.labels, 4, &BTreeSet::new(), 0)
                .delete
                .is_empty()
        );
    }

    #[test]
    fn a_node_that_left_frees_its_share_of_the_budget() {
        let st = settings(&[Percent(100)], false, 5, 1, None);
        let mut w = World::new(3, 1, &[("a", Some(st))]);
        w.sets[0].pods.insert("n000".into(), None); // its pod went with the node
        assert!(
            replan(&w.sets, &w.labels, 3, &BTreeSet::new(), 0)
                .delete
                .is_empty()
        );
        w.labels.remove("n000");
        assert_eq!(
            replan(&w.sets, &w.labels, 2, &BTreeSet::new(), 0)
                .delete
                .len(),
            1
        );
    }

    #[test]
    fn settings_round_trip_through_the_annotations_and_bad_ones_are_refused() {
        let r = RolloutSpec {
            driver: Some(Driver::Drover),
            waves: Some(vec![
                IntOrPercent::Int(1),
                IntOrPercent::Str("10%".into()),
                IntOrPercent::Str("100%".into()),
            ]),
            by: Some("topology.kubernetes.io/zone".into()),
            max_unavailable: Some(IntOrPercent::Str("20%".into())),
            disruption_budget: Some(IntOrPercent::Int(3)),
            wave_bake: Some("1m30s".into()),
            ..RolloutSpec::default()
        };
        let a = DriverSettings::annotations(&r, Some("network"));
        let s = DriverSettings::from_annotations(&a).unwrap().unwrap();
        assert_eq!(s.waves, [Nodes(1), Percent(10), Percent(100)]);
        assert_eq!(s.max_unavailable, Percent(20));
        assert_eq!(s.budget, Some(Nodes(3)));
        assert_eq!(s.class.as_deref(), Some("network"));
        assert_eq!(s.wave_bake, std::time::Duration::from_secs(90));
        assert_eq!(s.by.as_deref(), Some("topology.kubernetes.io/zone"));
        let mut bad = a.clone();
        bad.insert(ANN_WAVES.into(), "1,50%".into());
        assert!(DriverSettings::from_annotations(&bad).unwrap().is_err());
        bad.insert(ANN_WAVES.into(), "x".into());
        assert!(DriverSettings::from_annotations(&bad).unwrap().is_err());
        let mut bad = a.clone();
        bad.insert(ANN_WAVE_BAKE.into(), "soon".into());
        assert!(DriverSettings::from_annotations(&bad).unwrap().is_err());
        assert!(DriverSettings::from_annotations(&BTreeMap::new()).is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Played to the end in any order of controller and kubelet moves: never
        /// more nodes disrupted than the budget, never two of one class in flight
        /// on one node, zones strictly in order per set, waves never ahead of an
        /// unsettled earlier wave, and everything replaced at the end.
        #[test]
        fn the_driver_keeps_its_budget_classes_and_zone_order_in_any_interleaving(
            nodes in 3usize..24,
            zones in 1usize..4,
            budget in 1u32..6,
            mu in 1u32..4,
            picks in proptest::collection::vec(0usize..1000, 0..400),
        ) {
            let waves = [Nodes(1), Percent(50), Percent(100)];
            let mut w = World::new(nodes, zones, &[
                ("cni", Some(settings(&waves, true, mu, budget, Some("network")))),
                ("csi", Some(settings(&waves, true, mu, budget, Some("network")))),
                ("logs", Some(settings(&waves, true, mu, budget, None))),
            ]);
            let mut picks = picks.into_iter();
            let mut zones_done: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for _ in 0..20_000 {
                let plan = replan(&w.sets, &w.labels, nodes, &w.requested, 0);
                for d in &plan.delete {
                    // Zone order: every node of an earlier zone is settled for this set.
                    let set = w.sets.iter().find(|s| s.daemonset == d.daemonset).unwrap();
                    let z = w.zone(&d.node).to_string();
                    for (n, p) in &set.pods {
                        if w.zone(n) < z.as_str() {
                            proptest::prop_assert!(p.as_ref().is_some_and(PodSlot::settled),
                                "{} deleted in {z} while {n} of an earlier zone is not settled", d.pod);
                        }
                    }
                    zones_done.entry(d.daemonset.clone()).or_default().push(z);
                }
                w.delete(&plan);
                proptest::prop_assert!(w.disrupted().len() <= budget as usize,
                    "{} disrupted > budget {budget}", w.disrupted().len());
                // Class: cni and csi never both unsettled on one node.
                for n in w.labels.keys() {
                    let busy = |s: &SetView| !s.pods[n].as_ref().is_some_and(PodSlot::settled) && s.pods[n].as_ref().is_none_or(|p| p.current);
                    proptest::prop_assert!(!(busy(&w.sets[0]) && busy(&w.sets[1])), "cni and csi together on {n}");
                }
                if !w.progress(picks.next().unwrap_or(0)) && plan.delete.is_empty() {
                    break;
                }
            }
            proptest::prop_assert!(w.all_settled(), "not finished");
            for zs in zones_done.values() {
                proptest::prop_assert!(zs.windows(2).all(|p| p[0] <= p[1]), "zones out of order: {zs:?}");
            }
        }

        /// With a wave bake and a clock that moves on in any steps: no pod of a wave
        /// is deleted before every pod of the wave before it (in its zone, or the
        /// last wave of the zone before) has been Ready for the bake, and the
        /// rollout still ends with everything replaced.
        #[test]
        fn no_wave_starts_before_the_wave_before_it_has_baked(
            nodes in 3usize..16,
            zones in 1usize..3,
            bake in 1u64..5,
            mu in 1u32..4,
            picks in proptest::collection::vec(0usize..1000, 0..300),
        ) {
            let sizes = [Nodes(1), Percent(50), Percent(100)];
            let mut st = settings(&sizes, true, mu, 100, None);
            st.wave_bake = std::time::Duration::from_secs(bake);
            let mut w = World::new(nodes, zones, &[("agent", Some(st))]);
            let wave_nodes: Vec<WaveNode> = w
                .labels
                .iter()
                .map(|(n, l)| WaveNode { name: n.clone(), topology: l.get("zone").cloned() })
                .collect();
            let waves = plan_waves(&wave_nodes, &sizes, true).unwrap();
            let wave_of = |n: &str| waves.iter().position(|x| x.nodes.iter().any(|m| m == n)).unwrap();
            let mut picks = picks.into_iter();
            for _ in 0..20_000 {
                let plan = replan(&w.sets, &w.labels, nodes, &w.requested, w.now);
                for d in &plan.delete {
                    let k = wave_of(&d.node);
                    if k == 0 || waves[k - 1].nodes.is_empty() {
                        continue;
                    }
                    for n in &waves[k - 1].nodes {
                        let p = w.sets[0].pods[n].as_ref();
                        let baked = p.is_some_and(|p| {
                            p.settled() && p.ready_since.is_some_and(|t| t + bake as i64 <= w.now)
                        });
                        proptest::prop_assert!(baked,
                            "{} (wave {}) deleted at {} before {n} of wave {} baked {bake}s: {p:?}",
                            d.node, k + 1, w.now, k);
                    }
                }
                w.delete(&plan);
                let pick = picks.next().unwrap_or(0);
                w.now += (pick % 3) as i64;
                if !w.progress(pick) && plan.delete.is_empty() {
                    match plan.wake_at {
                        Some(t) => w.now = w.now.max(t),
                        None => break,
                    }
                }
            }
            proptest::prop_assert!(w.all_settled(), "not finished");
        }
    }
}
