//! The drover driver's hands: replaces the pods of a stage's `OnDelete` DaemonSets
//! (`rollout.driver: drover`) node by node, as the core's [`replan`] says.
//!
//! Owns: watching the stage's DaemonSets, pods and the nodes (kube-runtime
//! reflectors), learning each DaemonSet's current revision (its newest
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

/// Whether a manifest is driven by drover (`OnDelete`, `drover.dev/driver: drover`).
pub fn is_driven(m: &Manifest) -> bool {
    DriverSettings::from_annotations(&m.annotations()).is_some()
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
}

impl Drop for Replacer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts replacing the pods of the driven DaemonSets among `names` (the stage's
/// DaemonSets, all of which count towards the budget), whose objects and pods
/// `selector` selects. `None` when none of `manifests` is driven.
pub fn start(
    cluster: &Cluster,
    selector: &str,
    manifests: &[&Manifest],
    gate: ReplaceGate,
    stage: &str,
) -> Option<Replacer> {
    if !manifests.iter().any(|m| is_driven(m)) {
        return None;
    }
    let names: BTreeSet<String> = manifests.iter().map(|m| m.name()).collect();
    let task = tokio::spawn(run(
        cluster.clone(),
        selector.to_string(),
        names,
        gate,
        stage.to_string(),
    ));
    Some(Replacer { task })
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
    let stream = watcher::watcher(api, cfg).default_backoff().reflect(writer);
    (reader, tokio::spawn(forward(stream, kind, tx)))
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
    shown: BTreeMap<String, Option<(Option<String>, usize, usize)>>,
    held: Option<String>,
}

#[tracing::instrument(name = "replace", skip_all, fields(stage = %stage))]
async fn run(
    cluster: Cluster,
    selector: String,
    names: BTreeSet<String>,
    gate: ReplaceGate,
    stage: String,
) {
    let (tx, mut rx) = mpsc::channel(256);
    let ns = cluster.namespace.as_str();
    let cfg = watcher::Config::default()
        .labels(&selector)
        .page_size(WATCH_PAGE);
    let (daemonsets, t1) = reflect(
        Api::<DaemonSet>::namespaced(cluster.client.clone(), ns),
        cfg.clone(),
        Kind::DaemonSets,
        tx.clone(),
    );
    let (pods, t2) = reflect(
        Api::<Pod>::namespaced(cluster.client.clone(), ns),
        cfg,
        Kind::Pods,
        tx.clone(),
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
                let (sets, labels, fleet_nodes) =
                    gather(&cluster, &names, &daemonsets, &pods, &nodes_reader, &mut state).await;
                let plan = replan(&sets, &labels, fleet_nodes, &state.requested);
                show(&mut state, &plan);
                if plan.delete.is_empty() {
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

/// One consistent view for [`replan`]: the stage's sets, the nodes' labels and the
/// number of nodes the stage's DaemonSets run on (what a `%` budget is of).
async fn gather(
    cluster: &Cluster,
    names: &BTreeSet<String>,
    daemonsets: &Store<DaemonSet>,
    pods: &Store<Pod>,
    nodes: &Store<PartialObjectMeta<Node>>,
    state: &mut State,
) -> (Vec<SetView>, Labels, usize) {
    let labels: Labels = nodes
        .state()
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.clone()?;
            Some((name, n.metadata.labels.clone().unwrap_or_default()))
        })
        .collect();
    let mut by_set: BTreeMap<String, BTreeMap<String, Option<PodSlot>>> = BTreeMap::new();
    let mut seen_uids = BTreeSet::new();
    let all_pods = pods.state();
    let mut owned: Vec<(String, &Pod)> = Vec::new();
    for p in &all_pods {
        let Some(owner) = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true) && o.kind == "DaemonSet")
        else {
            continue;
        };
        if !names.contains(&owner.name) {
            continue;
        }
        if let Some(uid) = &p.metadata.uid {
            seen_uids.insert(uid.clone());
        }
        owned.push((owner.name.clone(), p.as_ref()));
    }
    state.requested.retain(|u| seen_uids.contains(u));
    let mut sets = Vec::new();
    for ds in daemonsets.state() {
        let Some(name) = ds.metadata.name.clone() else {
            continue;
        };
        if !names.contains(&name) {
            continue;
        }
        let settings = match DriverSettings::from_annotations(
            &ds.metadata.annotations.clone().unwrap_or_default(),
        ) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                tracing::warn!(daemonset = %name, "not replaced: {e}");
                None
            }
        };
        let hash = if settings.is_some() {
            revision(cluster, &ds, state).await
        } else {
            None
        };
        let ran_on = state.ran_on.entry(name.clone()).or_default();
        let slots = by_set.entry(name.clone()).or_default();
        for (_, p) in owned.iter().filter(|(o, _)| *o == name) {
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
            slots.insert(
                node,
                Some(PodSlot {
                    pod: p.metadata.name.clone().unwrap_or_default(),
                    uid: p.metadata.uid.clone().unwrap_or_default(),
                    resource_version: p.metadata.resource_version.clone().unwrap_or_default(),
                    current: hash.is_some() && pod_hash == hash.as_ref(),
                    ready: super::cluster::pod_health(p).ready,
                }),
            );
        }
        for n in ran_on.iter() {
            slots.entry(n.clone()).or_insert(None);
        }
        sets.push(SetView {
            daemonset: name.clone(),
            revision_known: settings.is_none() || hash.is_some(),
            settings,
            pods: slots.clone(),
        });
    }
    let fleet_nodes = state
        .ran_on
        .values()
        .flatten()
        .filter(|n| labels.contains_key(*n))
        .collect::<BTreeSet<_>>()
        .len();
    (sets, labels, fleet_nodes)
}

/// The hash of `ds`'s current revision: its newest ControllerRevision, read once
/// per generation the controller has observed. `None` until the controller has
/// caught up with the generation, or when it cannot be read.
async fn revision(cluster: &Cluster, ds: &Arc<DaemonSet>, state: &mut State) -> Option<String> {
    let name = ds.metadata.name.clone()?;
    let uid = ds.metadata.uid.clone()?;
    let generation = ds.metadata.generation.unwrap_or(0);
    let observed = ds
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    if observed < generation {
        return None;
    }
    if let Some(((g, u), hash)) = state.revisions.get(&name)
        && *g == generation
        && *u == uid
    {
        return Some(hash.clone());
    }
    let labels = ds.spec.selector.match_labels.clone().unwrap_or_default();
    let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let api = Api::<ControllerRevision>::namespaced(cluster.client.clone(), &cluster.namespace);
    let list = match api
        .list(&ListParams::default().labels(&selector.join(",")))
        .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(daemonset = %name, "revision unknown, nothing replaced: {e}");
            return None;
        }
    };
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
        .max_by_key(|r| r.revision)?;
    let hash = newest.metadata.labels.as_ref()?.get(REVISION_HASH)?.clone();
    state
        .revisions
        .insert(name, ((generation, uid), hash.clone()));
    Some(hash)
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
        ..
    } in &plan.progress
    {
        if state.shown.get(daemonset) == Some(wave) {
            continue;
        }
        match wave {
            Some((scope, n, of)) => tracing::info!(
                daemonset = %daemonset,
                scope = scope.as_deref().unwrap_or("all nodes"),
                "wave {n}/{of}: {wave_nodes} nodes ({settled}/{nodes} replaced)"
            ),
            None => tracing::info!(daemonset = %daemonset, "every wave replaced ({nodes} nodes)"),
        }
        state.shown.insert(daemonset.clone(), wave.clone());
    }
}
