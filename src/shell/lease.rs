//! Leader election through a `coordination.k8s.io/v1` Lease, so that of several
//! `drover sync --leader-elect` replicas exactly one writes to the cluster.
//!
//! The Lease protocol is `kube-lease-manager`'s: it creates the Lease, takes a free
//! one with a server-side apply (so of two replicas racing for it one gets a
//! conflict), takes an expired one by clearing it first, renews the held one
//! every third of the duration (its `grace` is two thirds) and releases it.
//!
//! What the crate leaves to its user, drover adds with a watch on its one Lease,
//! whose events are folded by the pure functions below ([`seen`], [`Observer`],
//! [`verdict`]):
//! - a holder learns at once that another replica holds the Lease (or that it was
//!   cleared or deleted) and tells the sync loop to stop; the crate would notice
//!   only at its next renewal;
//! - a holder that has seen none of its renewals for 2/3 of the duration stops
//!   too, a third of the duration before a follower may take over (the crate does
//!   not report renewals, nor fail them on a deadline);
//! - a follower learns at once that the Lease was released: the crate re-reads the
//!   Lease only when the holder's term it last saw runs out, so drover starts a
//!   fresh manager, which reads it and takes it.
//!
//! Owns: the Lease object and the leader/follower state. Must not: touch
//! DaemonSets, or decide anything about rollouts.
//!
//! Expiry compares the holder's `renewTime` with this replica's clock, so
//! replicas' clocks must agree to well within a third of the duration (NTP on
//! Kubernetes nodes does far better).

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt as _, StreamExt as _};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerError, LeaseParams};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::metrics::Metrics;

/// Where the Lease lives and who this replica is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// `leaseDurationSeconds`; renewals every third of it.
    pub duration: Duration,
}

impl LeaseConfig {
    /// How often the holder renews: a third of the duration.
    pub fn retry_period(&self) -> Duration {
        self.duration / 3
    }

    /// How long the holder keeps writing without seeing a renewal of its own: 2/3
    /// of the duration, so it has stopped a third of the duration before a
    /// follower may take over.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// `leaseDurationSeconds`: the duration rounded up to whole seconds, at least 2.
    fn duration_seconds(&self) -> u64 {
        let s = self.duration.as_secs() + u64::from(self.duration.subsec_nanos() > 0);
        s.max(2)
    }

    /// The crate's `grace`, how long before expiry the holder renews: two thirds of
    /// the duration, so it renews every third. Always in `1..duration_seconds`.
    fn grace_seconds(&self) -> u64 {
        let d = self.duration_seconds();
        (d * 2 / 3).clamp(1, d - 1)
    }

    fn lease(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The default identity of this replica: `$POD_NAME` is handled by the CLI; this is
/// the fallback, `<hostname>-<pid>`.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "drover".into());
    format!("{host}-{}", std::process::id())
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("taking part in the election for Lease {namespace}/{name}: {source}")]
    Elect {
        namespace: String,
        name: String,
        source: LeaseManagerError,
    },
    #[error("lost the leader lease {namespace}/{name}: {reason}")]
    Lost {
        namespace: String,
        name: String,
        reason: String,
    },
}

/// What one observed state of the Lease says about this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// This replica holds it, last renewed at `renewed`.
    Ours { renewed: Timestamp },
    /// Another replica holds it (whether or not its term has run out).
    Theirs { holder: String },
    /// Nobody holds it: released, or never taken.
    Free,
    /// There is no Lease.
    Gone,
}

/// What `lease` says about `identity`. A holder without a renewal or acquisition
/// time counts as renewed at the epoch (long expired).
pub fn seen(lease: Option<&Lease>, identity: &str) -> Seen {
    let Some(lease) = lease else {
        return Seen::Gone;
    };
    let spec = lease.spec.as_ref();
    match spec.and_then(|s| s.holder_identity.as_deref()) {
        None | Some("") => Seen::Free,
        Some(h) if h == identity => Seen::Ours {
            renewed: spec
                .and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()))
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
        },
        Some(h) => Seen::Theirs {
            holder: h.to_string(),
        },
    }
}

/// Folds the watcher's events for the one Lease into [`Seen`] values: an object
/// applied or deleted, and a re-list that did not find it.
#[derive(Debug, Default)]
pub struct Observer {
    listed: bool,
}

impl Observer {
    pub fn observe(&mut self, event: Event<Lease>, identity: &str) -> Option<Seen> {
        match event {
            Event::Apply(l) => Some(seen(Some(&l), identity)),
            Event::InitApply(l) => {
                self.listed = true;
                Some(seen(Some(&l), identity))
            }
            Event::Delete(_) => Some(Seen::Gone),
            Event::Init => {
                self.listed = false;
                None
            }
            Event::InitDone => (!self.listed).then_some(Seen::Gone),
        }
    }
}

/// What the holder makes of an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still ours, renewed at this time.
    Renewed(Timestamp),
    /// Lost: stop writing.
    Lost(String),
    /// Nothing to act on.
    Ignore,
}

/// The holder's reading of `seen`. Until `confirmed` — the watch has shown this
/// replica holding the Lease once — other states are from before the acquisition
/// (the watch delivers events in order) and are ignored; after it, a Lease held by
/// another replica, cleared or deleted is lost.
pub fn verdict(seen: &Seen, confirmed: bool) -> Verdict {
    match seen {
        Seen::Ours { renewed } => Verdict::Renewed(*renewed),
        _ if !confirmed => Verdict::Ignore,
        Seen::Theirs { holder } => Verdict::Lost(format!("it is now held by {holder}")),
        Seen::Free => Verdict::Lost("it was cleared by someone else".into()),
        Seen::Gone => Verdict::Lost("the Lease was deleted".into()),
    }
}

/// How much of the renewal deadline is left at `now` after a renewal at `renewed`.
pub fn time_left(renewed: Timestamp, now: Timestamp, deadline: Duration) -> Duration {
    let age = now.duration_since(renewed);
    let age = Duration::try_from(age).unwrap_or(Duration::ZERO);
    deadline.saturating_sub(age)
}

/// One replica's side of the election.
pub struct Elector {
    client: Client,
    pub cfg: LeaseConfig,
}

impl Elector {
    pub fn new(client: Client, cfg: LeaseConfig) -> Elector {
        Elector { client, cfg }
    }

    fn api(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.cfg.namespace)
    }

    /// A manager with a fresh view of the Lease (creating it if missing).
    async fn manager(&self) -> Result<LeaseManager, LeaseError> {
        let params = LeaseParams::new(
            &self.cfg.identity,
            self.cfg.duration_seconds(),
            self.cfg.grace_seconds(),
        );
        LeaseManager::new(
            self.client.clone(),
            &self.cfg.name,
            &self.cfg.namespace,
            params,
            LeaseCreateMode::AutoCreate,
        )
        .await
        .map_err(|source| self.elect_err(source))
    }

    /// The watch on the Lease, as [`Seen`] values; it never ends (the watcher
    /// re-lists with a backoff after errors).
    fn observe(&self) -> BoxStream<'static, Seen> {
        let identity = self.cfg.identity.clone();
        let cfg = watcher::Config::default().fields(&format!("metadata.name={}", self.cfg.name));
        let mut observer = Observer::default();
        watcher::watcher(self.api(), cfg)
            .default_backoff()
            .filter_map(move |ev| {
                let seen = match ev {
                    Ok(ev) => observer.observe(ev, &identity),
                    Err(e) => {
                        tracing::debug!(error = %e, "watching the leader lease failed; retrying");
                        None
                    }
                };
                std::future::ready(seen)
            })
            .chain(futures::stream::pending())
            .boxed()
    }

    fn elect_err(&self, source: LeaseManagerError) -> LeaseError {
        LeaseError::Elect {
            namespace: self.cfg.namespace.clone(),
            name: self.cfg.name.clone(),
            source,
        }
    }

    fn lost(&self, reason: impl Into<String>) -> LeaseError {
        LeaseError::Lost {
            namespace: self.cfg.namespace.clone(),
            name: self.cfg.name.clone(),
            reason: reason.into(),
        }
    }
}

/// The running holder of the Lease: a task renewing and watching it.
pub struct Leadership {
    done: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<Held, LeaseError>>,
}

/// What the holder's task hands back when asked to stop.
struct Held {
    elector: Elector,
    manager: LeaseManager,
}

impl Leadership {
    /// Stops renewing and releases the Lease, so a follower takes over at once.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when the lease had been lost meanwhile (the sync loop
    /// was told to stop then); the process should exit non-zero so that it comes
    /// back as a follower.
    pub async fn step_down(self, metrics: &Metrics) -> Result<(), LeaseError> {
        let _ = self.done.send(());
        let result = match self.task.await {
            Ok(Ok(held)) => {
                let cfg = &held.elector.cfg;
                match tokio::time::timeout(cfg.renew_deadline(), held.manager.release()).await {
                    Ok(Ok(())) => {
                        tracing::info!(identity = %cfg.identity, "released the leader lease")
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "could not release the leader lease; it expires on its own")
                    }
                    Err(_) => tracing::warn!(
                        "releasing the leader lease took too long; it expires on its own"
                    ),
                }
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(join) => Err(LeaseError::Lost {
                namespace: String::new(),
                name: String::new(),
                reason: format!("the renewal task failed: {join}"),
            }),
        };
        metrics.leader(false);
        result
    }
}

/// The fence of this replica's term, taken on the Lease once it holds it: its
/// identity and a `leaseTransitions` this replica raises itself, by one, with the
/// read's resourceVersion as precondition. The lease library raises the count when
/// it takes an orphaned Lease, but a second replica was seen to get the count its
/// predecessor held (and then refuse the state as "two holders in one term"); a
/// count this holder raised under its own holdership is later than every earlier
/// holder's, whatever the library did ([`crate::shell::cstate`]).
///
/// # Errors
/// When the Lease cannot be read or written, or another replica holds it already.
pub async fn term(
    client: &Client,
    cfg: &LeaseConfig,
) -> Result<crate::core::trail::Fence, LeaseError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let lost = |reason: String| LeaseError::Lost {
        namespace: cfg.namespace.clone(),
        name: cfg.name.clone(),
        reason,
    };
    for _ in 0..5 {
        let lease = api
            .get(&cfg.name)
            .await
            .map_err(|e| lost(format!("reading it after taking it: {e}")))?;
        let spec = lease.spec.clone().unwrap_or_default();
        match spec.holder_identity.as_deref() {
            Some(h) if h == cfg.identity => {}
            other => return Err(lost(format!("held by {}", other.unwrap_or("nobody")))),
        }
        let next = spec.lease_transitions.unwrap_or(0).saturating_add(1);
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": lease.metadata.resource_version},
            "spec": {"leaseTransitions": next},
        });
        match api
            .patch(
                &cfg.name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                return Ok(crate::core::trail::Fence {
                    holder: cfg.identity.clone(),
                    term: i64::from(next),
                });
            }
            // Renewed meanwhile: read again.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(lost(format!("raising its term: {e}"))),
        }
    }
    Err(lost("raising its term: the Lease kept changing".into()))
}

/// The pause between failed attempts to take part in the election.
fn retry_backoff(cfg: &LeaseConfig) -> impl Iterator<Item = Duration> + Send + use<> {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(cfg.retry_period().max(Duration::from_millis(400)))
        .with_jitter()
        .without_max_times()
        .build()
}

enum Followed {
    Acquired,
    Released,
    Stopped,
}

/// Waits as a follower until this replica holds the Lease, then starts renewing and
/// watching it in the background. Returns `None` when `stop` turned true first
/// (SIGTERM while following).
///
/// When the lease is lost — another replica holds it, it was cleared or deleted,
/// or no renewal was seen for [`LeaseConfig::renew_deadline`] — `stop_tx` is set
/// so that the sync loop stops at once, `drover_leader` drops to 0, and
/// [`Leadership::step_down`] reports it.
pub async fn lead(
    elector: Elector,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    stop_tx: Arc<watch::Sender<bool>>,
) -> Option<Leadership> {
    metrics.leader(false);
    let cfg = elector.cfg.clone();
    tracing::info!(
        identity = %cfg.identity,
        lease = %cfg.lease(),
        duration = ?cfg.duration,
        "waiting for the leader lease"
    );
    let mut events = elector.observe();
    let mut retry = retry_backoff(&cfg);
    // Every error goes to the metrics, the first of a streak to the log.
    let logged_error = std::cell::Cell::new(false);
    let report = |e: &LeaseError| {
        metrics.error("lease", &e.to_string());
        if !logged_error.replace(true) {
            tracing::error!(error = %e, "cannot take part in leader election; retrying");
        }
    };
    let manager = loop {
        if *stop.borrow() {
            return None;
        }
        let manager = match elector.manager().await {
            Ok(m) => m,
            Err(e) => {
                report(&e);
                tokio::select! {
                    () = tokio::time::sleep(retry.next().unwrap_or(cfg.retry_period())) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
                continue;
            }
        };
        let followed = {
            let mut changed: BoxFuture<'_, _> = manager.changed().boxed();
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => break Followed::Stopped,
                    r = &mut changed => match r {
                        Ok(true) => break Followed::Acquired,
                        Ok(false) => {
                            logged_error.set(false);
                            retry = retry_backoff(&cfg);
                            changed = manager.changed().boxed();
                        }
                        Err(e) => {
                            report(&elector.elect_err(e));
                            let wait = retry.next().unwrap_or(cfg.retry_period());
                            let manager = &manager;
                            changed = async move {
                                tokio::time::sleep(wait).await;
                                manager.changed().await
                            }
                            .boxed();
                        }
                    },
                    Some(seen) = events.next() => {
                        if matches!(seen, Seen::Free | Seen::Gone) {
                            break Followed::Released;
                        }
                    }
                }
            }
        };
        match followed {
            Followed::Acquired => break manager,
            // A fresh manager reads the Lease now instead of at the end of the
            // term it last saw.
            Followed::Released => tracing::debug!("the leader lease is free"),
            Followed::Stopped => {
                // In case the manager took the Lease just as the stop came; with
                // the API server unreachable, not for long.
                let _ = tokio::time::timeout(cfg.retry_period(), manager.release()).await;
                return None;
            }
        }
    };
    metrics.leader(true);
    metrics.healthy();
    tracing::info!(identity = %cfg.identity, lease = %cfg.lease(), "acquired the leader lease");
    let (done, done_rx) = oneshot::channel();
    let task = tokio::spawn(keep(elector, manager, events, metrics, stop_tx, done_rx));
    Some(Leadership { done, task })
}

/// The holder's task: keeps the manager renewing, watches the Lease, and gives up
/// (stopping the sync loop) as soon as [`verdict`] or the renewal deadline says so.
async fn keep(
    elector: Elector,
    manager: LeaseManager,
    mut events: BoxStream<'static, Seen>,
    metrics: Arc<Metrics>,
    stop_tx: Arc<watch::Sender<bool>>,
    mut done: oneshot::Receiver<()>,
) -> Result<Held, LeaseError> {
    let cfg = elector.cfg.clone();
    let mut deadline = Instant::now() + cfg.renew_deadline();
    let mut confirmed = false;
    let mut holder: Option<String> = None;
    let outcome = {
        let mut changed: BoxFuture<'_, _> = manager.changed().boxed();
        loop {
            tokio::select! {
                biased;
                _ = &mut done => break Ok(()),
                () = tokio::time::sleep_until(deadline) => break Err(format!(
                    "no renewal was seen within {:?}",
                    cfg.renew_deadline()
                )),
                Some(seen) = events.next() => {
                    if let Seen::Theirs { holder: h } = &seen {
                        holder = Some(h.clone());
                    }
                    match verdict(&seen, confirmed) {
                        Verdict::Renewed(at) => {
                            confirmed = true;
                            let left = time_left(at, Timestamp::now(), cfg.renew_deadline());
                            deadline = deadline.max(Instant::now() + left);
                            tracing::debug!("renewed the leader lease");
                        }
                        Verdict::Lost(reason) => break Err(reason),
                        Verdict::Ignore => {}
                    }
                }
                r = &mut changed => match r {
                    Ok(true) => changed = manager.changed().boxed(),
                    Ok(false) => break Err(format!(
                        "it is now held by {}",
                        holder.as_deref().unwrap_or("another replica")
                    )),
                    Err(e) => {
                        tracing::warn!(error = %e, "renewing the leader lease failed; retrying");
                        changed = async {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            manager.changed().await
                        }
                        .boxed();
                    }
                },
            }
        }
    };
    match outcome {
        Ok(()) => Ok(Held { elector, manager }),
        Err(reason) => {
            let err = elector.lost(reason);
            tracing::error!(error = %err, "stopping all writes");
            metrics.leader(false);
            metrics.error("lease", &err.to_string());
            let _ = stop_tx.send(true);
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const T0: &str = "2026-03-01T12:00:00Z";

    fn lease(holder: Option<&str>, renew: Option<&str>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("drover".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                renew_time: renew.map(|r| MicroTime(ts(r))),
                acquire_time: Some(MicroTime(ts("2026-03-01T11:00:00Z"))),
                lease_duration_seconds: Some(15),
                ..Default::default()
            }),
        }
    }

    fn cfg(duration: Duration) -> LeaseConfig {
        LeaseConfig {
            name: "drover".into(),
            namespace: "ns".into(),
            identity: "a".into(),
            duration,
        }
    }

    #[test]
    fn a_lease_is_ours_theirs_free_or_gone() {
        assert_eq!(
            seen(Some(&lease(Some("a"), Some(T0))), "a"),
            Seen::Ours { renewed: ts(T0) }
        );
        assert_eq!(
            seen(Some(&lease(Some("b"), Some(T0))), "a"),
            Seen::Theirs { holder: "b".into() }
        );
        assert_eq!(seen(Some(&lease(None, Some(T0))), "a"), Seen::Free);
        assert_eq!(seen(Some(&lease(Some(""), None)), "a"), Seen::Free);
        assert_eq!(seen(Some(&Lease::default()), "a"), Seen::Free);
        assert_eq!(seen(None, "a"), Seen::Gone);
    }

    #[test]
    fn a_held_lease_without_a_renewal_counts_from_its_acquisition_or_the_epoch() {
        assert_eq!(
            seen(Some(&lease(Some("a"), None)), "a"),
            Seen::Ours {
                renewed: ts("2026-03-01T11:00:00Z")
            }
        );
        let mut bare = lease(Some("a"), None);
        bare.spec.as_mut().unwrap().acquire_time = None;
        assert_eq!(
            seen(Some(&bare), "a"),
            Seen::Ours {
                renewed: Timestamp::UNIX_EPOCH
            }
        );
    }

    #[test]
    fn the_watch_reports_applied_and_deleted_leases_and_a_relist_that_finds_none() {
        let mut o = Observer::default();
        let ours = lease(Some("a"), Some(T0));
        let seen: Vec<Option<Seen>> = vec![
            Event::Init,
            Event::InitDone,
            Event::Apply(lease(None, None)),
            Event::Apply(ours.clone()),
            Event::Delete(ours.clone()),
            Event::Init,
            Event::InitApply(lease(Some("b"), Some(T0))),
            Event::InitDone,
        ]
        .into_iter()
        .map(|e| o.observe(e, "a"))
        .collect();
        assert_eq!(
            seen,
            vec![
                None,
                Some(Seen::Gone),
                Some(Seen::Free),
                Some(Seen::Ours { renewed: ts(T0) }),
                Some(Seen::Gone),
                None,
                Some(Seen::Theirs { holder: "b".into() }),
                None,
            ]
        );
    }

    #[test]
    fn until_the_watch_shows_the_acquisition_older_states_are_ignored() {
        for s in [Seen::Theirs { holder: "b".into() }, Seen::Free, Seen::Gone] {
            assert_eq!(verdict(&s, false), Verdict::Ignore, "{s:?}");
        }
        assert_eq!(
            verdict(&Seen::Ours { renewed: ts(T0) }, false),
            Verdict::Renewed(ts(T0))
        );
    }

    #[test]
    fn once_confirmed_another_holder_a_cleared_or_a_deleted_lease_is_lost() {
        assert_eq!(
            verdict(&Seen::Theirs { holder: "b".into() }, true),
            Verdict::Lost("it is now held by b".into())
        );
        assert!(matches!(verdict(&Seen::Free, true), Verdict::Lost(_)));
        assert!(matches!(verdict(&Seen::Gone, true), Verdict::Lost(_)));
        assert_eq!(
            verdict(&Seen::Ours { renewed: ts(T0) }, true),
            Verdict::Renewed(ts(T0))
        );
    }

    #[test]
    fn the_renewal_deadline_counts_from_the_last_renewal_seen() {
        let d = Duration::from_secs(4);
        assert_eq!(
            time_left(ts(T0), ts("2026-03-01T12:00:01Z"), d),
            Duration::from_secs(3)
        );
        assert_eq!(
            time_left(ts(T0), ts("2026-03-01T12:00:09Z"), d),
            Duration::ZERO
        );
        // A renewal stamped in our future (clock skew) leaves the whole deadline.
        assert_eq!(time_left(ts("2026-03-01T12:00:05Z"), ts(T0), d), d);
    }

    #[test]
    fn renewals_come_every_third_and_the_holder_stops_a_third_before_expiry() {
        let c = cfg(Duration::from_secs(15));
        assert_eq!(c.retry_period(), Duration::from_secs(5));
        assert_eq!(c.renew_deadline(), Duration::from_secs(10));
        assert_eq!((c.duration_seconds(), c.grace_seconds()), (15, 10));
        assert_eq!(cfg(Duration::from_secs(6)).grace_seconds(), 4);
        let odd = cfg(Duration::from_millis(6500));
        assert_eq!((odd.duration_seconds(), odd.grace_seconds()), (7, 4));
    }

    #[test]
    fn every_duration_gives_the_crate_a_grace_it_accepts() {
        // LeaseParams::new panics unless 0 < grace < duration.
        for ms in [0, 1, 999, 1000, 1001, 2000, 3000, 4000, 10_000, 3_600_000] {
            let c = cfg(Duration::from_millis(ms));
            let (d, g) = (c.duration_seconds(), c.grace_seconds());
            assert!(0 < g && g < d, "{ms} ms: duration {d}, grace {g}");
            let _ = LeaseParams::new("a", d, g);
        }
    }
}
