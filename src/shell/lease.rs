//! Leader election through a `coordination.k8s.io/v1` Lease, so that of several
//! `drover sync --leader-elect` replicas exactly one writes to the cluster.
//!
//! kube-rs ships no leader election, so this is a small one in the manner of
//! client-go's: a replica may take the Lease when it has no holder or its
//! `renewTime + leaseDurationSeconds` has passed; the holder renews it every
//! duration/3 with an optimistic-concurrency `replace` (the resourceVersion of its
//! last write), and gives up — tells the sync loop to stop — when another replica
//! has taken the Lease or when it could not renew for 2/3 of the duration, so it
//! stops writing before any follower may consider the Lease expired.
//!
//! Owns: the Lease object and the leader/follower state. Must not: touch
//! DaemonSets, or decide anything about rollouts. The decisions ([`can_acquire`],
//! [`expiry`], [`claim`], [`released`]) are pure and take the time as an argument.
//!
//! The expiry check compares the holder's `renewTime` with this replica's clock,
//! so replicas' clocks must agree to well within a third of the duration (NTP on
//! Kubernetes nodes does far better).

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::{oneshot, watch};

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
    /// How often the holder renews and a follower retries.
    pub fn retry_period(&self) -> Duration {
        self.duration / 3
    }

    /// How long the holder keeps writing without a successful renewal: 2/3 of the
    /// duration, so it has stopped a third of the duration before a follower may
    /// take over.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    fn duration_seconds(&self) -> i32 {
        let s = self.duration.as_secs() + u64::from(self.duration.subsec_nanos() > 0);
        i32::try_from(s).unwrap_or(i32::MAX)
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
    #[error("reading Lease {namespace}/{name}: {source}")]
    Get {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("writing Lease {namespace}/{name}: {source}")]
    Write {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("lost the leader lease {namespace}/{name}: {reason}")]
    Lost {
        namespace: String,
        name: String,
        reason: String,
    },
}

/// When the Lease expires: `renewTime` (else `acquireTime`) plus
/// `leaseDurationSeconds`. `None` when either is missing: such a Lease holds nothing.
pub fn expiry(spec: &LeaseSpec) -> Option<Timestamp> {
    let since = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let secs = spec.lease_duration_seconds?;
    since
        .checked_add(SignedDuration::from_secs(i64::from(secs.max(0))))
        .ok()
}

fn holder(spec: Option<&LeaseSpec>) -> Option<&str> {
    spec.and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

/// Whether `identity` may take (or keep) the Lease at `now`: it does not exist, has
/// no holder, is already held by `identity`, or has expired (expiry is exclusive:
/// at exactly `renewTime + duration` it is still held).
pub fn can_acquire(lease: Option<&Lease>, now: Timestamp, identity: &str) -> bool {
    let spec = lease.and_then(|l| l.spec.as_ref());
    match holder(spec) {
        None => true,
        Some(h) if h == identity => true,
        Some(_) => match spec.and_then(expiry) {
            None => true,
            Some(at) => now > at,
        },
    }
}

/// The spec with `identity` holding the Lease from `now`: `acquireTime` and
/// `leaseTransitions` move only when the holder changes.
pub fn claim(
    old: Option<&LeaseSpec>,
    now: Timestamp,
    identity: &str,
    duration_seconds: i32,
) -> LeaseSpec {
    let same = holder(old) == Some(identity);
    let transitions = old.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(duration_seconds),
        acquire_time: if same {
            old.and_then(|s| s.acquire_time.clone())
                .or(Some(MicroTime(now)))
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if same || old.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..old.cloned().unwrap_or_default()
    }
}

/// The spec after the holder steps down: no holder, so any replica may take it at
/// once instead of waiting for it to expire.
pub fn released(old: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        ..old.clone()
    }
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    pub cfg: LeaseConfig,
    /// The Lease as of our last successful write (its resourceVersion guards the next).
    held: Option<Lease>,
    /// Just before the request of our last successful write, whose `renewTime` is
    /// at most this late.
    renewed_at: tokio::time::Instant,
}

impl Elector {
    pub fn new(client: Client, cfg: LeaseConfig) -> Elector {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            held: None,
            renewed_at: tokio::time::Instant::now(),
        }
    }

    fn get_err(&self, source: kube::Error) -> LeaseError {
        LeaseError::Get {
            namespace: self.cfg.namespace.clone(),
            name: self.cfg.name.clone(),
            source,
        }
    }

    fn write_err(&self, source: kube::Error) -> LeaseError {
        LeaseError::Write {
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

    /// One attempt to take the Lease: creates it if missing, else replaces it
    /// (guarded by its resourceVersion) when [`can_acquire`] allows. `Ok(false)`
    /// when another replica holds it or won the race.
    ///
    /// # Errors
    /// API errors other than the conflicts of a lost race. Safe to retry.
    pub async fn try_acquire(&mut self) -> Result<bool, LeaseError> {
        let started = tokio::time::Instant::now();
        let current = self
            .api
            .get_opt(&self.cfg.name)
            .await
            .map_err(|e| self.get_err(e))?;
        let now = Timestamp::now();
        if !can_acquire(current.as_ref(), now, &self.cfg.identity) {
            if let Some(h) = holder(current.as_ref().and_then(|l| l.spec.as_ref())) {
                tracing::debug!(holder = h, "the leader lease is held by another replica");
            }
            return Ok(false);
        }
        let spec = claim(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            now,
            &self.cfg.identity,
            self.cfg.duration_seconds(),
        );
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        namespace: Some(self.cfg.namespace.clone()),
                        labels: Some(
                            [("app.kubernetes.io/name".to_string(), "drover".to_string())].into(),
                        ),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.api
                    .replace(&self.cfg.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(l) => {
                self.held = Some(l);
                self.renewed_at = started;
                Ok(true)
            }
            // 409: someone else created or updated it first.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.write_err(e)),
        }
    }

    /// Renews the held Lease (`renewTime` = now), guarded by the resourceVersion of
    /// our last write. On a conflict the Lease is read again: if another replica
    /// holds it, the lease is lost; if we still do (someone else edited, say, a
    /// label), the renewal is retried with the new resourceVersion.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when another replica holds the Lease (or it is gone);
    /// other API errors, after which the caller may retry until its deadline.
    pub async fn renew(&mut self) -> Result<(), LeaseError> {
        let Some(mut lease) = self.held.clone() else {
            return Err(self.lost("the lease is not held"));
        };
        for _ in 0..3 {
            let started = tokio::time::Instant::now();
            let spec = claim(
                lease.spec.as_ref(),
                Timestamp::now(),
                &self.cfg.identity,
                self.cfg.duration_seconds(),
            );
            lease.spec = Some(spec);
            match self
                .api
                .replace(&self.cfg.name, &PostParams::default(), &lease)
                .await
            {
                Ok(l) => {
                    self.held = Some(l);
                    self.renewed_at = started;
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                    let fresh = self
                        .api
                        .get_opt(&self.cfg.name)
                        .await
                        .map_err(|e| self.get_err(e))?;
                    let Some(fresh) = fresh else {
                        self.held = None;
                        return Err(self.lost("the Lease was deleted"));
                    };
                    match holder(fresh.spec.as_ref()) {
                        Some(h) if h == self.cfg.identity => lease = fresh,
                        other => {
                            let other = other.unwrap_or("nobody").to_string();
                            self.held = None;
                            return Err(self.lost(format!("it is now held by {other}")));
                        }
                    }
                }
                Err(e) => return Err(self.write_err(e)),
            }
        }
        Err(self.lost("the Lease kept changing under us"))
    }

    /// Steps down: clears the holder so a follower takes over at once. Does nothing
    /// when the Lease is not held (or was taken meanwhile: the replace then fails
    /// on its resourceVersion and is ignored).
    pub async fn release(&mut self) {
        let Some(mut lease) = self.held.take() else {
            return;
        };
        let Some(spec) = lease.spec.as_ref() else {
            return;
        };
        lease.spec = Some(released(spec, Timestamp::now()));
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(identity = %self.cfg.identity, "released the leader lease"),
            Err(e) => {
                tracing::warn!(error = %e, "could not release the leader lease; it expires on its own")
            }
        }
    }
}

/// The running holder of the Lease: a task renewing it in the background.
pub struct Leadership {
    done: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<Elector, LeaseError>>,
}

impl Leadership {
    /// Stops renewing and releases the Lease if it is still held.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when the lease had been lost meanwhile (the sync loop
    /// was told to stop then); the process should exit non-zero so that it comes
    /// back as a follower.
    pub async fn step_down(self, metrics: &Metrics) -> Result<(), LeaseError> {
        let _ = self.done.send(());
        let result = match self.task.await {
            Ok(Ok(mut elector)) => {
                elector.release().await;
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

/// Waits as a follower until this replica holds the Lease (retrying every
/// duration/3), then starts renewing it in the background. Returns `None` when
/// `stop` turned true first (SIGTERM while following).
///
/// When the lease is lost — another replica holds it, or no renewal succeeded for
/// [`LeaseConfig::renew_deadline`] — `stop_tx` is set so that the sync loop stops
/// at once, `drover_leader` drops to 0, and [`Leadership::step_down`] reports it.
pub async fn lead(
    mut elector: Elector,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    stop_tx: Arc<watch::Sender<bool>>,
) -> Option<Leadership> {
    metrics.leader(false);
    let cfg = elector.cfg.clone();
    tracing::info!(
        identity = %cfg.identity,
        lease = %format!("{}/{}", cfg.namespace, cfg.name),
        duration = ?cfg.duration,
        "waiting for the leader lease"
    );
    let mut logged_error = false;
    loop {
        if *stop.borrow() {
            return None;
        }
        match elector.try_acquire().await {
            Ok(true) => break,
            Ok(false) => logged_error = false,
            Err(e) => {
                metrics.error("lease", &e.to_string());
                if !logged_error {
                    tracing::error!(error = %e, "cannot take part in leader election; retrying");
                }
                logged_error = true;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(cfg.retry_period()) => {}
            _ = stop.changed() => {}
        }
    }
    metrics.leader(true);
    metrics.healthy();
    tracing::info!(identity = %cfg.identity, lease = %format!("{}/{}", cfg.namespace, cfg.name), "acquired the leader lease");
    let (done, done_rx) = oneshot::channel();
    let task = tokio::spawn(keep(elector, metrics, stop_tx, done_rx));
    Some(Leadership { done, task })
}

async fn keep(
    mut elector: Elector,
    metrics: Arc<Metrics>,
    stop_tx: Arc<watch::Sender<bool>>,
    mut done: oneshot::Receiver<()>,
) -> Result<Elector, LeaseError> {
    let cfg = elector.cfg.clone();
    let mut wait = cfg.retry_period();
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = &mut done => return Ok(elector),
        }
        let deadline = elector.renewed_at + cfg.renew_deadline();
        let outcome = match tokio::time::timeout_at(deadline, elector.renew()).await {
            Ok(r) => r,
            Err(_) => Err(elector.lost(format!(
                "no renewal succeeded within {:?}",
                cfg.renew_deadline()
            ))),
        };
        let err = match outcome {
            Ok(()) => {
                wait = cfg.retry_period();
                tracing::debug!("renewed the leader lease");
                continue;
            }
            Err(e @ LeaseError::Lost { .. }) => e,
            Err(e) if tokio::time::Instant::now() >= deadline => elector.lost(format!(
                "no renewal succeeded within {:?}; last error: {e}",
                cfg.renew_deadline()
            )),
            Err(e) => {
                tracing::warn!(error = %e, "renewing the leader lease failed; retrying");
                // Retry sooner than the period, but not in a tight loop.
                wait = (cfg.retry_period() / 4).max(Duration::from_millis(200));
                continue;
            }
        };
        tracing::error!(error = %err, "stopping all writes");
        metrics.leader(false);
        metrics.error("lease", &err.to_string());
        let _ = stop_tx.send(true);
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn lease(holder: Option<&str>, renew: Option<&str>, secs: Option<i32>) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                renew_time: renew.map(|r| MicroTime(ts(r))),
                acquire_time: renew.map(|r| MicroTime(ts(r))),
                lease_duration_seconds: secs,
                lease_transitions: Some(4),
                ..Default::default()
            }),
        }
    }

    const T0: &str = "2026-03-01T12:00:00Z";

    #[test]
    fn a_missing_or_unheld_lease_can_be_acquired() {
        let now = ts(T0);
        assert!(can_acquire(None, now, "a"));
        assert!(can_acquire(
            Some(&lease(None, Some(T0), Some(15))),
            now,
            "a"
        ));
        assert!(can_acquire(
            Some(&lease(Some(""), Some(T0), Some(15))),
            now,
            "a"
        ));
        let no_spec = Lease::default();
        assert!(can_acquire(Some(&no_spec), now, "a"));
    }

    #[test]
    fn a_lease_held_by_another_replica_is_taken_only_after_it_expires() {
        let l = lease(Some("b"), Some(T0), Some(15));
        assert!(!can_acquire(Some(&l), ts("2026-03-01T12:00:00Z"), "a"));
        assert!(!can_acquire(
            Some(&l),
            ts("2026-03-01T12:00:14.999999Z"),
            "a"
        ));
        // Exactly at renewTime + duration it is still held.
        assert!(!can_acquire(Some(&l), ts("2026-03-01T12:00:15Z"), "a"));
        assert!(can_acquire(
            Some(&l),
            ts("2026-03-01T12:00:15.000001Z"),
            "a"
        ));
        assert!(can_acquire(Some(&l), ts("2026-03-02T00:00:00Z"), "a"));
    }

    #[test]
    fn a_lease_renewed_in_the_future_of_our_clock_is_still_held() {
        let l = lease(Some("b"), Some("2026-03-01T12:00:10Z"), Some(15));
        assert!(!can_acquire(Some(&l), ts(T0), "a"));
    }

    #[test]
    fn the_holder_may_always_renew_its_own_lease() {
        let l = lease(Some("a"), Some(T0), Some(15));
        assert!(can_acquire(Some(&l), ts(T0), "a"));
        assert!(can_acquire(Some(&l), ts("2026-03-01T13:00:00Z"), "a"));
    }

    #[test]
    fn a_held_lease_without_times_or_duration_has_expired() {
        assert!(can_acquire(
            Some(&lease(Some("b"), None, Some(15))),
            ts(T0),
            "a"
        ));
        assert!(can_acquire(
            Some(&lease(Some("b"), Some(T0), None)),
            ts(T0),
            "a"
        ));
    }

    #[test]
    fn expiry_is_renew_time_plus_duration_falling_back_to_acquire_time() {
        let l = lease(Some("b"), Some(T0), Some(6));
        assert_eq!(
            expiry(l.spec.as_ref().unwrap()),
            Some(ts("2026-03-01T12:00:06Z"))
        );
        let mut spec = l.spec.unwrap();
        spec.renew_time = None;
        spec.acquire_time = Some(MicroTime(ts("2026-03-01T11:00:00Z")));
        assert_eq!(expiry(&spec), Some(ts("2026-03-01T11:00:06Z")));
        spec.lease_duration_seconds = Some(-5);
        assert_eq!(expiry(&spec), Some(ts("2026-03-01T11:00:00Z")));
    }

    #[test]
    fn claiming_from_another_holder_counts_a_transition_and_resets_acquire_time() {
        let old = lease(Some("b"), Some(T0), Some(15)).spec.unwrap();
        let now = ts("2026-03-01T12:01:00Z");
        let s = claim(Some(&old), now, "a", 6);
        assert_eq!(s.holder_identity.as_deref(), Some("a"));
        assert_eq!(s.lease_transitions, Some(5));
        assert_eq!(s.acquire_time, Some(MicroTime(now)));
        assert_eq!(s.renew_time, Some(MicroTime(now)));
        assert_eq!(s.lease_duration_seconds, Some(6));
    }

    #[test]
    fn renewing_keeps_acquire_time_and_transitions() {
        let old = lease(Some("a"), Some(T0), Some(15)).spec.unwrap();
        let now = ts("2026-03-01T12:00:05Z");
        let s = claim(Some(&old), now, "a", 15);
        assert_eq!(s.lease_transitions, Some(4));
        assert_eq!(s.acquire_time, Some(MicroTime(ts(T0))));
        assert_eq!(s.renew_time, Some(MicroTime(now)));
        let fresh = claim(None, now, "a", 15);
        assert_eq!(fresh.lease_transitions, Some(0));
        assert_eq!(fresh.acquire_time, Some(MicroTime(now)));
    }

    #[test]
    fn a_released_lease_can_be_taken_at_once_by_anyone() {
        let old = lease(Some("a"), Some(T0), Some(15)).spec.unwrap();
        let r = released(&old, ts(T0));
        let l = Lease {
            metadata: ObjectMeta::default(),
            spec: Some(r),
        };
        assert!(can_acquire(Some(&l), ts(T0), "b"));
    }

    #[test]
    fn renewals_come_every_third_and_the_holder_stops_a_third_before_expiry() {
        let cfg = LeaseConfig {
            name: "drover".into(),
            namespace: "ns".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
        };
        assert_eq!(cfg.retry_period(), Duration::from_secs(5));
        assert_eq!(cfg.renew_deadline(), Duration::from_secs(10));
        assert_eq!(cfg.duration_seconds(), 15);
        let odd = LeaseConfig {
            duration: Duration::from_millis(6500),
            ..cfg
        };
        assert_eq!(odd.duration_seconds(), 7);
    }
}
