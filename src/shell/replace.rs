//! The drover driver's hands: replaces the pods of a stage's `OnDelete` DaemonSets
//! (`rollout.driver: drover`) node by node, as the core's [`replan`] says.
//!
//! Owns: watching the fleet's DaemonSets and pods and the nodes (kube-runtime
//! reflectors; every DaemonSet of the fleet counts towards the disruption budget,
//! only the stage's are driven), learning each DaemonSet's current revision (its newest
//! ControllerRevision), and deleting old pods with uid and resourceVersion
//! preconditions. Must not: decide which pod goes when (the core's [`replan`]), or
//! judge the stage (the rollout machine gates it on the DaemonSets' status, which
//! counts a pod updated only once it is of the current revision).
//!
//! Fail closed: nothing is deleted while any watcher has not listed since its last
//! error, while a DaemonSet's current revision is unknown, or while the fleet is
//! paused or frozen (or its control object cannot be read). A crash at any point
//! leaves at most the deleted pods in flight; the DaemonSet controller recreates
//! them from the current template whatever drover does, and a resumed run replans
//! from what it observes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PartialObjectMeta, Preconditions};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

use super::apply::FreezeGate;
use super::cluster::{Cluster, WATCH_PAGE};
use super::control::ControlStore;
use crate::core::control::Clearance;
use crate::core::render::Manifest;
use crate::core::waves::{DriverSettings, PodSlot, Replan, SetView, WaveProgress, replan};

/// The label the DaemonSet controller puts on each pod: its revision's hash.
const REVISION_HASH: &str = "controller-revision-hash";

/// How long the replacer lets a burst of watch events settle before it replans.
const SETTLE: Duration = Duration::from_millis(20);

/// When to replan again without a new event: after deletions (their events are
/// expected).
const RETRY: Duration = Duration::from_millis(250);

/// The longest the replacer sleeps until a bake's end before it looks again.
const MAX_WAKE_SECONDS: u64 = 86_400;

/// Whether a manifest is driven by drover (`OnDelete`, `drover.dev/driver: drover`).
pub fn is_driven(m: &Manifest) -> bool {
    DriverSettings::drives(&m.annotations())
}

/// What may hold new replacements: the operator's pause and the freeze windows,
/// read afresh (at most once a second) before pods are deleted. A rollback's
/// replacements are never held.
#[derive(Clone, Default)]
pub struct ReplaceGate {
    pub controls: Option<ControlStore>,
    pub freeze: Option<(FreezeGate, Vec<String>)>,
}

impl ReplaceGate {
    async fn why_held(&self) -> Option<String> {
        if let Some(c) = &self.controls {
            let (clearance, _) = c.gate().await;
            if let Some(why) = clearance.why() {
                return Some(why);
            }
        }
        if let Some((freeze, groups)) = &self.freeze {
            let (clearance, _) = freeze.check(groups);
            if matches!(clearance, Clearance::Frozen(_)) {
                return clearance.why();
            }
        }
        None
    }
}

/// A running replacer; dropping it stops it (a deletion already sent stands).
pub struct Replacer {
    task: tokio::task::JoinHandle<()>,
    held: Arc<AtomicBool>,
}

impl Replacer {
    /// Whether replacements are due and held by a pause or a freeze window right
    /// now: the stage is not stuck, so its deadlines do not run.
    pub fn held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }
}

impl Drop for Replacer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts replacing the pods of the driven DaemonSets among `manifests` (the
/// stage's). Every DaemonSet of the fleet counts towards the budget, and a `%`
/// budget is of the nodes the fleet's DaemonSets run on. `None` when none of
/// `manifests` is driven.
pub fn start(
    cluster: &Cluster,
    manifests: &[&Manifest],
    gate: ReplaceGate,
    stage: &str,
) -> Option<Replacer> {
    if !manifests.iter().any(|m| is_driven(m)) {
        return None;
    }
    let names: BTreeSet<String> = manifests.iter().map(|m| m.name()).collect();
    let held = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(run(
        cluster.clone(),
        names,
        gate,
        stage.to_string(),
        held.clone(),
    ));
    Some(Replacer { task, held })
}

/// Which watcher a signal comes from.
#[derive(Debug, Clone, Copy)]
enum Kind {
    DaemonSets = 0,
    Pods = 1,
    Nodes = 2,
}

#[derive(Debug)]
enum Signal {
    Changed,
    Listed(Kind),
    Broken(Kind, String),
}

fn reflect<K>(
    api: Api<K>,
    cfg: watcher::Config,
    kind: Kind,
    tx: mpsc::Sender<Signal>,
    trim: fn(&mut K),
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = watcher::watcher(api, cfg)
        .default_backoff()
        .modify(trim)
        .reflect(writer);
    (reader, tokio::spawn(forward(stream, kind, tx)))
}

/// What the replacer keeps of a pod: its identity, owner, labels (the revision
/// hash), node, deletion and conditions. The rest (containers, volumes, container
/// statuses, managed fields) is dropped before the store, which holds every pod of
/// the fleet.
fn trim_pod(p: &mut Pod) {
    p.metadata.managed_fields = None;
    p.metadata.annotations = None;
    let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
    p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
        node_name: node,
        ..Default::default()
    });
    let conditions = p.status.as_ref().and_then(|s| s.conditions.clone());
    p.status = Some(k8s_openapi::api::core::v1::PodStatus {
        conditions,
        ..Default::default()
    });
}

/// What the replacer keeps of a DaemonSet: its metadata (the driver's annotations,
/// generation, uid), its selector and observed generation; not its pod template.
fn trim_daemonset(d: &mut DaemonSet) {
    d.metadata.managed_fields = None;
    d.spec.template = Default::default();
    if let Some(st) = d.status.as_mut() {
        st.conditions = None;
    }
}

async fn forward<K>(
    stream: impl futures::Stream<Item = Result<Event<K>, watcher::Error>>,
    kind: Kind,
    tx: mpsc::Sender<Signal>,
) {
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let signal = match item {
            Ok(Event::InitDone) => Signal::Listed(kind),
            Ok(Event::Init | Event::InitApply(_)) => continue,
            Ok(_) => Signal::Changed,
            Err(e) => Signal::Broken(kind, e.to_string()),
        };
        if tx.send(signal).await.is_err() {
            return;
        }
    }
}

/// A progress line as last shown: the wave (scope, number, of) and whether it bakes.
type Shown = (Option<(Option<String>, usize, usize)>, bool);

/// What the replacer keeps between replans.
#[derive(Default)]
struct State {
    /// Per DaemonSet: every node one of its pods was bound to since the start.
    ran_on: BTreeMap<String, BTreeSet<String>>,
    /// Per DaemonSet: (generation, uid) the revision was read for, and its hash.
    revisions: BTreeMap<String, ((i64, String), String)>,
    /// Uids of pods asked to be deleted and still seen.
    requested: BTreeSet<String>,
    /// The last progress line per DaemonSet, so each change is one line.
    shown: BTreeMap<String, Shown>,
    held: Option<String>,
    /// Pod uid -> when this replacer first saw it Ready, for a pod whose Ready
    /// condition carries no transition time.
    first_ready: BTreeMap<String, i64>,
    /// A revision could not be read in the last view: read again on a timer.
    revision_failed: bool,
}

#[tracing::instrument(name = "replace", skip_all, fields(stage = %stage))]
async fn run(
    cluster: Cluster,
    names: BTreeSet<String>,
    gate: ReplaceGate,
    stage: String,
    held_now: Arc<AtomicBool>,
) {
    let (tx, mut rx) = mpsc::channel(256);
    let ns = cluster.namespace.as_str();
    let cfg = watcher::Config::default()
        .labels(&cluster.fleet_selector())
        .page_size(WATCH_PAGE);
    let (daemonsets, t1) = reflect(
        Api::<DaemonSet>::namespaced(cluster.client.clone(), ns),
        cfg.clone(),
        Kind::DaemonSets,
        tx.clone(),
        trim_daemonset,
    );
    let (pods, t2) = reflect(
        Api::<Pod>::namespaced(cluster.client.clone(), ns),
        cfg,
        Kind::Pods,
        tx.clone(),
        trim_pod,
    );
    let (nodes_reader, nodes_writer) = reflector::store::<PartialObjectMeta<Node>>();
    let node_stream = watcher::watcher(
        Api::<PartialObjectMeta<Node>>::all(cluster.client.clone()),
        watcher::Config::default().page_size(WATCH_PAGE),
    )
    .default_backoff()
    .reflect(nodes_writer);
    let t3 = tokio::spawn(forward(node_stream, Kind::Nodes, tx));
    let _tasks = AbortOnDrop(vec![t1, t2, t3]);
    let mut live = [false; 3];
    // When the next replan is due: soon after a change, never without one.
    let mut due: Option<tokio::time::Instant> = Some(tokio::time::Instant::now());
    let soon = |after: Duration| Some(tokio::time::Instant::now() + after);
    // A change brings the next replan forward to SETTLE from now, never later.
    let sooner = |due: Option<tokio::time::Instant>| match (due, soon(SETTLE)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut state = State::default();
    let mut gate_read: Option<(tokio::time::Instant, Option<String>)> = None;
    loop {
        let wake = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            s = rx.recv() => match s {
                Some(Signal::Changed) => due = sooner(due),
                Some(Signal::Listed(k)) => {
                    live[k as usize] = true;
                    due = sooner(due);
                }
                Some(Signal::Broken(k, why)) => {
                    if live[k as usize] {
                        tracing::warn!(watch = ?k, "replacements wait: {why}");
                    }
                    live[k as usize] = false;
                }
                None => return,
            },
            () = wake => {
                due = None;
                if !live.iter().all(|l| *l) {
                    // A Listed signal schedules the next replan.
                    continue;
                }
                let now = jiff::Timestamp::now().as_second();
                let (sets, labels, fleet_nodes) =
                    gather(&cluster, &names, &daemonsets, &pods, &nodes_reader, &mut state, now).await;
                let plan = replan(&sets, &labels, fleet_nodes, &state.requested, now);
                show(&mut state, &plan);
                if let Some(at) = plan.wake_at {
                    // A wave's bake ends: replan then (within the second), or in a day
                    // at most, so a bake of any length cannot overflow the timer.
                    let secs = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
                    due = soon(Duration::from_secs(secs.min(MAX_WAKE_SECONDS)));
                }
                if state.revision_failed {
                    due = soon(Duration::from_secs(1));
                }
                if plan.delete.is_empty() {
                    held_now.store(false, Ordering::Relaxed);
                    continue;
                }
                let fresh = gate_read.as_ref().is_some_and(|(at, _)| at.elapsed() < Duration::from_secs(1));
                if !fresh {
                    gate_read = Some((tokio::time::Instant::now(), gate.why_held().await));
                }
                let held = gate_read.as_ref().and_then(|(_, w)| w.clone());
                if held != state.held {
                    match &held {
                        Some(why) => tracing::warn!("replacements held: {why}"),
                        None if state.held.is_some() => tracing::info!("replacements resumed"),
                        None => {}
                    }
                    state.held.clone_from(&held);
                }
                held_now.store(held.is_some(), Ordering::Relaxed);
                if held.is_some() {
                    // Asked again once the last reading is stale.
                    due = soon(Duration::from_secs(1));
                    continue;
                }
                delete_all(&cluster, &plan, &mut state).await;
                due = soon(RETRY);
            }
        }
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

type Labels = BTreeMap<String, BTreeMap<String, String>>;

/// One consistent view for [`replan`]: the fleet's sets (those of `names`
/// driven, the others counted), the nodes' labels and the number of nodes the
/// fleet's DaemonSets run on (what a `%` budget is of).
#[allow(clippy::too_many_arguments)] // reason: the replacer's stores, borrowed for one view
async fn gather(
    cluster: &Cluster,
    names: &BTreeSet<String>,
    daemonsets: &Store<DaemonSet>,
    pods: &Store<Pod>,
    nodes: &Store<PartialObjectMeta<Node>>,
    state: &mut State,
    now: i64,
) -> (Vec<SetView>, Labels, usize) {
    let labels = node_labels(nodes.state().iter().map(AsRef::as_ref));
    state.revision_failed = false;
    let dss = daemonsets.state();
    let mut hashes = BTreeMap::new();
    for ds in &dss {
        let Some(name) = ds.metadata.name.clone() else {
            continue;
        };
        if names.contains(&name) && is_driven_live(ds) {
            let hash = revision(cluster, ds, state).await;
            hashes.insert(name, hash);
        }
    }
    let all_pods = pods.state();
    let mut seen = Seen {
        ran_on: std::mem::take(&mut state.ran_on),
        first_ready: std::mem::take(&mut state.first_ready),
        uids: BTreeSet::new(),
    };
    let sets = set_views(
        dss.iter().map(AsRef::as_ref),
        all_pods.iter().map(AsRef::as_ref),
        &hashes,
        &mut seen,
        now,
    );
    state.ran_on = seen.ran_on;
    state.first_ready = seen.first_ready;
    state.first_ready.retain(|u, _| seen.uids.contains(u));
    state.requested.retain(|u| seen.uids.contains(u));
    let fleet_nodes = fleet_nodes(&state.ran_on, &labels);
    (sets, labels, fleet_nodes)
}

/// Each listed node's labels, by its name.
fn node_labels<'a>(nodes: impl Iterator<Item = &'a PartialObjectMeta<Node>>) -> Labels {
    nodes
        .filter_map(|n| {
            let name = n.metadata.name.clone()?;
            Some((name, n.metadata.labels.clone().unwrap_or_default()))
        })
        .collect()
}

/// Whether a live DaemonSet says drover drives it.
fn is_driven_live(ds: &DaemonSet) -> bool {
    ds.metadata
        .annotations
        .as_ref()
        .is_some_and(DriverSettings::drives)
}

/// The nodes the fleet's DaemonSets run on that are still listed.
fn fleet_nodes(ran_on: &BTreeMap<String, BTreeSet<String>>, labels: &Labels) -> usize {
    ran_on
        .values()
        .flatten()
        .filter(|n| labels.contains_key(*n))
        .collect::<BTreeSet<_>>()
        .len()
}

/// What views remember between them.
#[derive(Default)]
struct Seen {
    /// Per DaemonSet: every node one of its pods was bound to so far.
    ran_on: BTreeMap<String, BTreeSet<String>>,
    /// Pod uid -> when it was first seen Ready.
    first_ready: BTreeMap<String, i64>,
    /// Uids of the pods of this view.
    uids: BTreeSet<String>,
}

/// The sets of a view of the fleet: each DaemonSet with its pods by node. A set in
/// `hashes` (DaemonSet -> its current revision's hash, `None` when unknown) is
/// driven; the others only count towards the budget.
fn set_views<'a>(
    daemonsets: impl Iterator<Item = &'a DaemonSet>,
    pods: impl Iterator<Item = &'a Pod>,
    hashes: &BTreeMap<String, Option<String>>,
    seen: &mut Seen,
    now: i64,
) -> Vec<SetView> {
    let mut owned: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for p in pods {
        let Some(owner) = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true) && o.kind == "DaemonSet")
        else {
            continue;
        };
        if let Some(uid) = &p.metadata.uid {
            seen.uids.insert(uid.clone());
        }
        owned.entry(owner.name.clone()).or_default().push(p);
    }
    let mut sets = Vec::new();
    for ds in daemonsets {
        let Some(name) = ds.metadata.name.clone() else {
            continue;
        };
        let driven = hashes.get(&name);
        let settings = match driven.and_then(|_| {
            DriverSettings::from_annotations(&ds.metadata.annotations.clone().unwrap_or_default())
        }) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                tracing::warn!(daemonset = %name, "not replaced: {e}");
                None
            }
        };
        let hash = driven.cloned().flatten();
        let ran_on = seen.ran_on.entry(name.clone()).or_default();
        let mut slots: BTreeMap<String, Option<PodSlot>> = BTreeMap::new();
        for p in owned.get(&name).into_iter().flatten() {
            let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                continue;
            };
            ran_on.insert(node.clone());
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let pod_hash = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH));
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let ready = super::cluster::pod_health(p).ready;
            let ready_since = ready.then(|| {
                let first = *seen.first_ready.entry(uid.clone()).or_insert(now);
                ready_since(p).unwrap_or(first)
            });
            slots.insert(
                node,
                Some(PodSlot {
                    pod: p.metadata.name.clone().unwrap_or_default(),
                    uid,
                    resource_version: p.metadata.resource_version.clone().unwrap_or_default(),
                    current: hash.is_some() && pod_hash == hash.as_ref(),
                    ready,
                    ready_since,
                }),
            );
        }
        for n in ran_on.iter() {
            slots.entry(n.clone()).or_insert(None);
        }
        sets.push(SetView {
            daemonset: name,
            revision_known: settings.is_none() || hash.is_some(),
            settings,
            pods: slots,
        });
    }
    sets
}

/// The hash of `ds`'s current revision: its newest ControllerRevision, read once
/// per generation the controller has observed. `None` until the controller has
/// caught up with the generation, or when it cannot be read.
async fn revision(cluster: &Cluster, ds: &DaemonSet, state: &mut State) -> Option<String> {
    let name = ds.metadata.name.clone()?;
    let uid = ds.metadata.uid.clone()?;
    let generation = ds.metadata.generation.unwrap_or(0);
    if let Some(((g, u), hash)) = state.revisions.get(&name)
        && *g == generation
        && *u == uid
    {
        return Some(hash.clone());
    }
    match newest_revision(cluster, ds).await {
        Ok(Some(hash)) => {
            state
                .revisions
                .insert(name, ((generation, uid), hash.clone()));
            Some(hash)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(daemonset = %name, "revision unknown, nothing replaced: {e}");
            state.revision_failed = true;
            None
        }
    }
}

/// `ds`'s newest ControllerRevision's hash, once the controller has observed its
/// generation (`None` before, or when it owns none).
async fn newest_revision(cluster: &Cluster, ds: &DaemonSet) -> Result<Option<String>, kube::Error> {
    let Some(uid) = ds.metadata.uid.clone() else {
        return Ok(None);
    };
    let generation = ds.metadata.generation.unwrap_or(0);
    let observed = ds
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    if observed < generation {
        return Ok(None);
    }
    let labels = ds.spec.selector.match_labels.clone().unwrap_or_default();
    let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let api = Api::<ControllerRevision>::namespaced(cluster.client.clone(), &cluster.namespace);
    let list = api
        .list(&ListParams::default().labels(&selector.join(",")))
        .await?;
    let newest = list
        .items
        .iter()
        .filter(|r| {
            r.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid && o.controller == Some(true))
        })
        .max_by_key(|r| r.revision);
    Ok(newest
        .and_then(|r| r.metadata.labels.as_ref()?.get(REVISION_HASH))
        .cloned())
}

/// Where the fleet's driven DaemonSets are now, as `drover status` shows it: one
/// listing of the fleet's DaemonSets, pods and nodes, judged by [`replan`] as the
/// replacer would (with nothing in flight that the listing does not show).
///
/// # Errors
/// A listing fails.
pub async fn waves_now(cluster: &Cluster, daemonsets: &[DaemonSet]) -> Result<Replan, kube::Error> {
    let mut hashes = BTreeMap::new();
    for ds in daemonsets.iter().filter(|d| is_driven_live(d)) {
        if let Some(name) = ds.metadata.name.clone() {
            hashes.insert(name, newest_revision(cluster, ds).await?);
        }
    }
    if hashes.is_empty() {
        return Ok(Replan::default());
    }
    let params = ListParams::default().labels(&cluster.fleet_selector());
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &cluster.namespace)
        .list(&params)
        .await?;
    let nodes = Api::<Node>::all(cluster.client.clone())
        .list_metadata(&ListParams::default())
        .await?;
    let labels = node_labels(nodes.items.iter());
    let now = jiff::Timestamp::now().as_second();
    let mut seen = Seen::default();
    let sets = set_views(
        daemonsets.iter(),
        pods.items.iter(),
        &hashes,
        &mut seen,
        now,
    );
    let fleet_nodes = fleet_nodes(&seen.ran_on, &labels);
    let mut plan = replan(&sets, &labels, fleet_nodes, &BTreeSet::new(), now);
    plan.delete.clear();
    Ok(plan)
}

/// When `p` last became Ready, by its Ready condition (Unix seconds).
fn ready_since(p: &Pod) -> Option<i64> {
    let conditions = p.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(ready.last_transition_time.as_ref()?.0.as_second())
}

/// Deletes the planned pods, each only if it is still the object judged old.
async fn delete_all(cluster: &Cluster, plan: &Replan, state: &mut State) {
    let api = Api::<Pod>::namespaced(cluster.client.clone(), &cluster.namespace);
    for d in &plan.delete {
        state.requested.insert(d.uid.clone());
    }
    let calls = plan.delete.iter().map(|d| {
        let api = api.clone();
        async move {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(d.uid.clone()),
                    resource_version: Some(d.resource_version.clone()),
                }),
                ..DeleteParams::default()
            };
            cluster
                .requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (d, api.delete(&d.pod, &dp).await)
        }
    });
    for (d, r) in futures::future::join_all(calls).await {
        match r {
            Ok(_) => {
                tracing::debug!(daemonset = %d.daemonset, node = %d.node, pod = %d.pod, "replacing");
            }
            // Gone already: its replacement is on its way.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                // A changed pod (409) is judged again from the next view.
                state.requested.remove(&d.uid);
                tracing::debug!(pod = %d.pod, "not deleted: {e}");
            }
        }
    }
}

/// One line per change of a DaemonSet's wave.
fn show(state: &mut State, plan: &Replan) {
    for WaveProgress {
        daemonset,
        wave,
        wave_nodes,
        nodes,
        settled,
        baking_until,
        ..
    } in &plan.progress
    {
        let key = (wave.clone(), baking_until.is_some());
        if state.shown.get(daemonset) == Some(&key) {
            continue;
        }
        match (wave, baking_until) {
            (Some((scope, n, of)), Some(until)) => tracing::info!(
                daemonset = %daemonset,
                scope = scope.as_deref().unwrap_or("all nodes"),
                "wave {n}/{of}: {wave_nodes} nodes replaced, baking until {}",
                jiff::Timestamp::from_second(*until).map_or_else(|_| "its pods' Ready times are known".to_string(), |t| t.to_string())
            ),
            (Some((scope, n, of)), None) => tracing::info!(
                daemonset = %daemonset,
                scope = scope.as_deref().unwrap_or("all nodes"),
                "wave {n}/{of}: {wave_nodes} nodes ({settled}/{nodes} replaced)"
            ),
            (None, _) => {
                tracing::info!(daemonset = %daemonset, "every wave replaced ({nodes} nodes)")
            }
        }
        state.shown.insert(daemonset.clone(), key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "agent-nodes-x1", "uid": "u1", "resourceVersion": "7",
                "labels": {"controller-revision-hash": "abc"},
                "annotations": {"big": "x".repeat(1000)},
                "managedFields": [{"manager": "kubelet", "operation": "Update"}],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                    "name": "agent-nodes", "uid": "d1", "controller": true}]
            },
            "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "registry.example/a:v1"}]},
            "status": {
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                    "lastTransitionTime": "2026-12-01T12:00:00Z"}],
                "containerStatuses": [{"name": "a", "image": "a", "imageID": "", "ready": ready, "restartCount": 2}]
            }
        }))
        .unwrap()
    }

    fn daemonset() -> DaemonSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "agent-nodes", "uid": "d1", "generation": 2,
                "annotations": {"drover.dev/driver": "drover", "drover.dev/waves": "1,100%"}},
            "spec": {"selector": {"matchLabels": {"app": "a"}},
                "template": {"spec": {"containers": [{"name": "a", "image": "registry.example/a:v1"}]}}},
            "status": {"observedGeneration": 2, "currentNumberScheduled": 1, "desiredNumberScheduled": 1,
                "numberMisscheduled": 0, "numberReady": 1}
        }))
        .unwrap()
    }

    fn views(ds: &DaemonSet, p: &Pod) -> Vec<SetView> {
        let hashes: BTreeMap<String, Option<String>> =
            [("agent-nodes".to_string(), Some("abc".to_string()))].into();
        set_views(
            [ds].into_iter(),
            [p].into_iter(),
            &hashes,
            &mut Seen::default(),
            100,
        )
    }

    #[test]
    fn trimmed_objects_give_the_replacer_the_same_view_as_whole_ones() {
        for ready in [true, false] {
            let (ds, p) = (daemonset(), pod(ready));
            let (mut tds, mut tp) = (ds.clone(), p.clone());
            trim_daemonset(&mut tds);
            trim_pod(&mut tp);
            assert_eq!(views(&ds, &p), views(&tds, &tp));
            assert!(tp.metadata.managed_fields.is_none() && tp.metadata.annotations.is_none());
            assert!(tp.spec.as_ref().unwrap().containers.is_empty());
            assert!(tds.spec.template.spec.is_none());
        }
        let v = views(&daemonset(), &pod(true));
        let slot = v[0].pods["n1"].clone().unwrap();
        assert!(slot.current && slot.ready);
        assert_eq!(slot.ready_since, Some(1_796_126_400));
        assert!(v[0].settings.is_some(), "the driver's annotations are kept");
    }
}
