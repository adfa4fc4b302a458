//! What the rollout machine observes of one stage: kube-runtime watchers of the
//! stage's DaemonSets, its pods and the nodes, folded into one view, plus a probe
//! that proves the API server answers a quorum read.
//!
//! Owns: turning watch events and errors into [`Observation`]s. Guarantees (fail
//! closed): a [`Snapshot`] is produced only while every watcher has finished a full
//! list since its last error and the last probe succeeded; the moment a watcher or
//! the probe fails, an [`Observation::Unobserved`] notice goes out. A watcher that
//! fails is dropped and started again, so it lists afresh instead of resuming a watch
//! that may have missed events. Must not: decide anything about health (the core's
//! machine does).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Resource;
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

use super::cluster::{Cluster, WATCH_PAGE, pod_health, rollout_status};
use crate::core::machine::{NodeHealth, Observation, Snapshot};
use crate::core::rollout::{PodHealth, RolloutStatus};

/// Where a feed item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    DaemonSets,
    Pods,
    Nodes,
    Probe,
}

/// How many watcher items may wait for the rollout to fold them.
const FEED_QUEUE: usize = 64;

/// One item from the watchers and the probe.
#[derive(Debug)]
pub enum Feed {
    DaemonSet(Event<DaemonSet>),
    Pod(Event<Pod>),
    Node(Event<Node>),
    /// The probe read succeeded.
    ProbeOk,
    /// A watcher or the probe failed.
    Broken {
        source: Source,
        reason: String,
    },
}

/// Objects of one kind as a watcher last listed and watched them.
#[derive(Debug, Default)]
struct Store<V> {
    items: BTreeMap<String, V>,
    /// The list in progress (between `Init` and `InitDone`).
    listing: Option<BTreeMap<String, V>>,
    /// A full list has completed since the last error.
    live: bool,
}

impl<V> Store<V> {
    fn fold<K>(&mut self, ev: Event<K>, mut view: impl FnMut(&K) -> Option<(String, Option<V>)>) {
        match ev {
            Event::Init => self.listing = Some(BTreeMap::new()),
            Event::InitApply(k) => {
                if let (Some(listing), Some((name, Some(v)))) = (self.listing.as_mut(), view(&k)) {
                    listing.insert(name, v);
                }
            }
            Event::InitDone => {
                if let Some(listing) = self.listing.take() {
                    self.items = listing;
                }
                self.live = true;
            }
            Event::Apply(k) => match view(&k) {
                Some((name, Some(v))) => {
                    self.items.insert(name, v);
                }
                Some((name, None)) => {
                    self.items.remove(&name);
                }
                None => {}
            },
            Event::Delete(k) => {
                if let Some((name, _)) = view(&k) {
                    self.items.remove(&name);
                }
            }
        }
    }

    fn broke(&mut self) {
        self.live = false;
        self.listing = None;
    }
}

/// A stage as the watchers see it. Pure: folded from [`Feed`] items, so tests drive
/// it with plain events and no HTTP.
#[derive(Debug, Default)]
pub struct StageView {
    daemonsets: Store<RolloutStatus>,
    /// Pod name -> (node, health). Terminating pods are left out.
    pods: Store<(String, PodHealth)>,
    nodes: Store<NodeHealth>,
    /// Every node a stage pod was bound to since the view began. A node stays a
    /// stage node after its pod is gone: the rolling update deletes the old pod
    /// first, and a node that then goes NotReady gets a NoSchedule taint, so the new
    /// pod never comes and the DaemonSet no longer counts the node. Judging only the
    /// nodes that have pods now would pass exactly the stage that broke its node.
    ran_on: BTreeSet<String>,
    probe_ok: bool,
    wanted: BTreeSet<String>,
}

fn node_health(n: &Node) -> NodeHealth {
    NodeHealth {
        conditions: n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| (c.type_.clone(), c.status.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

impl StageView {
    /// A view of the stage whose DaemonSets are `wanted`.
    pub fn new(wanted: impl IntoIterator<Item = String>) -> StageView {
        StageView {
            wanted: wanted.into_iter().collect(),
            ..StageView::default()
        }
    }

    /// Folds one item; returns the notice to send when something broke.
    pub fn fold(&mut self, feed: Feed) -> Option<Observation> {
        match feed {
            Feed::DaemonSet(ev) => {
                let wanted = &self.wanted;
                self.daemonsets.fold(ev, |ds: &DaemonSet| {
                    let name = ds.meta().name.clone()?;
                    wanted
                        .contains(&name)
                        .then(|| (name, Some(rollout_status(ds))))
                });
            }
            Feed::Pod(ev) => {
                let ran_on = &mut self.ran_on;
                self.pods.fold(ev, |p: &Pod| {
                    let name = p.meta().name.clone()?;
                    let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
                    if let Some(n) = &node {
                        ran_on.insert(n.clone());
                    }
                    if p.meta().deletion_timestamp.is_some() {
                        return Some((name, None));
                    }
                    Some((name, node.map(|n| (n, pod_health(p)))))
                });
            }
            Feed::Node(ev) => self.nodes.fold(ev, |n: &Node| {
                Some((n.meta().name.clone()?, Some(node_health(n))))
            }),
            Feed::ProbeOk => self.probe_ok = true,
            Feed::Broken { source, reason } => {
                match source {
                    Source::DaemonSets => self.daemonsets.broke(),
                    Source::Pods => self.pods.broke(),
                    Source::Nodes => self.nodes.broke(),
                    Source::Probe => self.probe_ok = false,
                }
                return Some(Observation::Unobserved {
                    reason: format!("{source:?} unobserved: {reason}"),
                });
            }
        }
        None
    }

    /// Every watcher has listed since its last error and the probe answered.
    pub fn is_live(&self) -> bool {
        self.daemonsets.live && self.pods.live && self.nodes.live && self.probe_ok
    }

    /// The stage now, when it can be trusted: only while [`StageView::is_live`]. The
    /// nodes are those the stage's pods are bound to, or were at any time since the
    /// view began.
    pub fn snapshot(&self) -> Option<Snapshot> {
        if !self.is_live() {
            return None;
        }
        let mut on: BTreeSet<&str> = self.pods.items.values().map(|(n, _)| n.as_str()).collect();
        on.extend(self.ran_on.iter().map(String::as_str));
        Some(Snapshot {
            held: false,
            daemonsets: self.daemonsets.items.clone(),
            pods: self
                .pods
                .items
                .iter()
                .map(|(name, (_, h))| (name.clone(), h.clone()))
                .collect(),
            nodes: self
                .nodes
                .items
                .iter()
                .filter(|(n, _)| on.contains(n.as_str()))
                .map(|(n, h)| (n.clone(), h.clone()))
                .collect(),
        })
    }

    /// Every node as last listed, when the node watcher is live: the baseline a
    /// stage's nodes are judged against, taken just before its write.
    pub fn all_nodes(&self) -> BTreeMap<String, NodeHealth> {
        if self.nodes.live {
            self.nodes.items.clone()
        } else {
            BTreeMap::new()
        }
    }
}

/// The watchers and the probe of one stage, feeding a channel until dropped.
pub struct StageWatch {
    pub rx: mpsc::Receiver<Feed>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for StageWatch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs one watcher, starting it again (after a backoff) whenever it fails, so that
/// every recovery is a fresh full list.
async fn run_watcher<K>(
    api: Api<K>,
    cfg: watcher::Config,
    source: Source,
    wrap: fn(Event<K>) -> Feed,
    tx: mpsc::Sender<Feed>,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    use backon::BackoffBuilder as _;
    let builder = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times();
    let mut backoff = builder.build();
    loop {
        let stream = watcher::watcher(api.clone(), cfg.clone());
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            let feed = match item {
                Ok(ev) => {
                    if matches!(ev, Event::InitDone) {
                        backoff = builder.build();
                    }
                    wrap(ev)
                }
                Err(e) => Feed::Broken {
                    source,
                    reason: e.to_string(),
                },
            };
            let broken = matches!(feed, Feed::Broken { .. });
            if tx.send(feed).await.is_err() {
                return;
            }
            if broken {
                break;
            }
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(5));
        tokio::time::sleep(delay).await;
    }
}

/// A quorum read of one pod of the stage every `every`: proves the API server and
/// its storage answer, so a quiet watch is not mistaken for a healthy one.
async fn run_probe(api: Api<Pod>, selector: String, every: Duration, tx: mpsc::Sender<Feed>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let lp = ListParams::default().labels(&selector).limit(1);
        let feed = match tokio::time::timeout(every * 2, api.list_metadata(&lp)).await {
            Ok(Ok(_)) => Feed::ProbeOk,
            Ok(Err(e)) => Feed::Broken {
                source: Source::Probe,
                reason: e.to_string(),
            },
            Err(_) => Feed::Broken {
                source: Source::Probe,
                reason: "the API server did not answer in time".into(),
            },
        };
        if tx.send(feed).await.is_err() {
            return;
        }
    }
}

/// Starts watching a stage: its DaemonSets and pods (by `selector`), all nodes, and
/// the probe every `probe_every`.
pub fn watch_stage(cluster: &Cluster, selector: &str, probe_every: Duration) -> StageWatch {
    // Each item holds a whole object as the watcher decoded it: a short queue keeps
    // a stage's initial list from waiting in memory all at once (a list of 2,000
    // DaemonSets queued whole was a quarter of a sync's peak heap).
    let (tx, rx) = mpsc::channel(FEED_QUEUE);
    let ns = cluster.namespace.as_str();
    let client = cluster.client.clone();
    let cfg = watcher::Config::default()
        .labels(selector)
        .page_size(WATCH_PAGE);
    let tasks = vec![
        tokio::spawn(run_watcher(
            Api::<DaemonSet>::namespaced(client.clone(), ns),
            cfg.clone(),
            Source::DaemonSets,
            Feed::DaemonSet,
            tx.clone(),
        )),
        tokio::spawn(run_watcher(
            Api::<Pod>::namespaced(client.clone(), ns),
            cfg,
            Source::Pods,
            Feed::Pod,
            tx.clone(),
        )),
        tokio::spawn(run_watcher(
            Api::<Node>::all(client.clone()),
            watcher::Config::default().page_size(WATCH_PAGE),
            Source::Nodes,
            Feed::Node,
            tx.clone(),
        )),
        tokio::spawn(run_probe(
            Api::<Pod>::namespaced(client, ns),
            selector.to_string(),
            probe_every,
            tx,
        )),
    ];
    StageWatch { rx, tasks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetStatus;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus, PodCondition, PodSpec, PodStatus};
    use kube::api::ObjectMeta;

    fn ds(name: &str, updated: i32) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                generation: Some(2),
                ..ObjectMeta::default()
            },
            status: Some(DaemonSetStatus {
                observed_generation: Some(2),
                desired_number_scheduled: 2,
                updated_number_scheduled: Some(updated),
                number_available: Some(updated),
                number_unavailable: Some(2 - updated),
                number_ready: updated,
                ..DaemonSetStatus::default()
            }),
            ..DaemonSet::default()
        }
    }

    fn pod(name: &str, node: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    fn node(name: &str, ready: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    fn listed(view: &mut StageView) {
        for f in [
            Feed::DaemonSet(Event::Init),
            Feed::DaemonSet(Event::InitApply(ds("agent-canary", 1))),
            Feed::DaemonSet(Event::InitApply(ds("not-this-stage", 0))),
            Feed::DaemonSet(Event::InitDone),
            Feed::Pod(Event::Init),
            Feed::Pod(Event::InitApply(pod("agent-a", "n1", true))),
            Feed::Pod(Event::InitDone),
            Feed::Node(Event::Init),
            Feed::Node(Event::InitApply(node("n1", "True"))),
            Feed::Node(Event::InitApply(node("n9", "False"))),
            Feed::Node(Event::InitDone),
        ] {
            assert_eq!(view.fold(f), None);
        }
    }

    #[test]
    fn no_snapshot_before_every_watcher_has_listed_and_the_probe_answered() {
        let mut view = StageView::new(["agent-canary".to_string()]);
        assert_eq!(view.snapshot(), None);
        listed(&mut view);
        assert_eq!(view.snapshot(), None, "no probe yet");
        view.fold(Feed::ProbeOk);
        let s = view.snapshot().expect("live");
        assert_eq!(s.daemonsets.keys().collect::<Vec<_>>(), ["agent-canary"]);
        assert_eq!(s.daemonsets["agent-canary"].updated, 1);
        assert!(s.pods["agent-a"].ready);
        // Only the nodes the stage's pods run on.
        assert_eq!(s.nodes.keys().collect::<Vec<_>>(), ["n1"]);
    }

    #[test]
    fn a_node_stays_a_stage_node_after_its_pod_is_gone() {
        let mut view = StageView::new(["agent-canary".to_string()]);
        listed(&mut view);
        view.fold(Feed::ProbeOk);
        // The rolling update deletes the old pod on n1; the node then goes NotReady
        // and the new pod never comes.
        view.fold(Feed::Pod(Event::Delete(pod("agent-a", "n1", true))));
        view.fold(Feed::Node(Event::Apply(node("n1", "False"))));
        let s = view.snapshot().expect("live");
        assert!(s.pods.is_empty());
        assert_eq!(s.nodes.keys().collect::<Vec<_>>(), ["n1"]);
        assert_eq!(s.nodes["n1"].conditions["Ready"], "False");
        // A node no stage pod was ever on is still not the stage's.
        assert!(!s.nodes.contains_key("n9"));
    }

    #[test]
    fn a_broken_watcher_is_unobserved_until_it_has_listed_again() {
        let mut view = StageView::new(["agent-canary".to_string()]);
        listed(&mut view);
        view.fold(Feed::ProbeOk);
        let notice = view.fold(Feed::Broken {
            source: Source::Pods,
            reason: "connection refused".into(),
        });
        assert!(
            matches!(notice, Some(Observation::Unobserved { reason }) if reason.contains("connection refused"))
        );
        assert_eq!(view.snapshot(), None);
        // Events of a resumed watch do not make it live again: only a full list does.
        view.fold(Feed::Pod(Event::Apply(pod("agent-a", "n1", false))));
        assert_eq!(view.snapshot(), None);
        view.fold(Feed::Pod(Event::Init));
        view.fold(Feed::Pod(Event::InitApply(pod("agent-b", "n1", true))));
        assert_eq!(view.snapshot(), None, "mid-list");
        view.fold(Feed::Pod(Event::InitDone));
        let s = view.snapshot().expect("live again");
        assert_eq!(
            s.pods.keys().collect::<Vec<_>>(),
            ["agent-b"],
            "the list replaces the store"
        );
    }

    #[test]
    fn a_failed_probe_stops_snapshots_until_it_answers() {
        let mut view = StageView::new(["agent-canary".to_string()]);
        listed(&mut view);
        view.fold(Feed::ProbeOk);
        assert!(view.snapshot().is_some());
        assert!(
            view.fold(Feed::Broken {
                source: Source::Probe,
                reason: "timeout".into()
            })
            .is_some()
        );
        assert_eq!(view.snapshot(), None);
        view.fold(Feed::ProbeOk);
        assert!(view.snapshot().is_some());
    }

    #[test]
    fn terminating_and_deleted_pods_leave_the_view() {
        let mut view = StageView::new(["agent-canary".to_string()]);
        listed(&mut view);
        view.fold(Feed::ProbeOk);
        let mut going = pod("agent-a", "n1", true);
        going.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        view.fold(Feed::Pod(Event::Apply(going)));
        assert!(view.snapshot().unwrap().pods.is_empty());
        view.fold(Feed::Pod(Event::Apply(pod("agent-b", "n1", true))));
        view.fold(Feed::Pod(Event::Delete(pod("agent-b", "n1", true))));
        assert!(view.snapshot().unwrap().pods.is_empty());
    }
}
