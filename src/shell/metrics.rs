//! `/metrics` (Prometheus text), `/healthz` and `/livez` on a configurable address.
//!
//! The server is hyper's HTTP/1.1 connection driver on a tokio listener: it reads
//! requests properly (headers within a timeout), closes each connection after its
//! response (as the hand-written server did: a scrape every few seconds gains
//! nothing from keep-alive, and a client may read to EOF), backs off when
//! `accept()` fails, and stops with the sync loop.
//!
//! The metrics live in a `prometheus-client` registry, encoded in the Prometheus
//! text format. Must not: decide anything; it only reports.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backon::{BackoffBuilder as _, ExponentialBuilder};
use bytes::Bytes;
use http::header::{CONTENT_TYPE as CONTENT_TYPE_HEADER, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The `Content-Type` of [`Metrics::render`]: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommitLabel {
    commit: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabel {
    provider: String,
    result: String,
}

type GaugeF64 = Gauge<f64, AtomicU64>;

/// What the sync loop reports, in a `prometheus-client` registry (the metric handles
/// are shared with it, so updating one is all it takes), plus the reason `/healthz`
/// gives while something fails.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    last_applied: Family<CommitLabel, Gauge>,
    stage_seconds: Family<StageLabel, GaugeF64>,
    drift_corrections: Counter,
    errors: Family<KindLabel, Counter>,
    rollouts: Family<OutcomeLabel, Counter>,
    api_requests: Counter,
    healthy: Gauge,
    last_success: GaugeF64,
    rollout_in_progress: Gauge,
    paused: Gauge,
    frozen: Gauge,
    leader: Gauge,
    refused_commit: Family<CommitLabel, Gauge>,
    signature_checks: Family<StatusLabel, Counter>,
    webhook_deliveries: Family<HookLabel, Counter>,
    /// Held while `failing` and `healthy` change together.
    failing: Mutex<Option<String>>,
    /// The branch head refused by policy, and why, until a commit is applied.
    refused: Mutex<Option<(String, String)>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("drover");
        let m = Metrics {
            last_applied: Family::default(),
            stage_seconds: Family::default(),
            drift_corrections: Counter::default(),
            errors: Family::default(),
            rollouts: Family::default(),
            api_requests: Counter::default(),
            healthy: Gauge::default(),
            last_success: GaugeF64::default(),
            rollout_in_progress: Gauge::default(),
            paused: Gauge::default(),
            frozen: Gauge::default(),
            leader: Gauge::default(),
            refused_commit: Family::default(),
            signature_checks: Family::default(),
            webhook_deliveries: Family::default(),
            failing: Mutex::new(None),
            refused: Mutex::new(None),
            registry: Registry::default(),
        };
        // Counters are registered without `_total`: the encoder appends it.
        registry.register(
            "last_applied_commit_info",
            "The last commit whose rollout succeeded",
            m.last_applied.clone(),
        );
        registry.register(
            "stage_rollout_seconds",
            "Duration of the last rollout of each stage",
            m.stage_seconds.clone(),
        );
        registry.register(
            "drift_corrections",
            "Drift corrections applied",
            m.drift_corrections.clone(),
        );
        registry.register("errors", "Errors by kind", m.errors.clone());
        registry.register("rollouts", "Rollouts by outcome", m.rollouts.clone());
        registry.register(
            "api_requests",
            "Requests made to the Kubernetes API",
            m.api_requests.clone(),
        );
        registry.register(
            "healthy",
            "Whether the last sync iteration succeeded",
            m.healthy.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When a sync iteration last succeeded",
            m.last_success.clone(),
        );
        registry.register(
            "rollout_in_progress",
            "Whether a rollout is running",
            m.rollout_in_progress.clone(),
        );
        registry.register(
            "paused",
            "Whether the last sync iteration found the fleet paused (drover pause)",
            m.paused.clone(),
        );
        registry.register(
            "frozen",
            "Whether the last sync iteration found its next rollout held by a freeze window",
            m.frozen.clone(),
        );
        registry.register(
            "leader",
            "Whether this replica holds the leader lease",
            m.leader.clone(),
        );
        registry.register(
            "refused_commit_info",
            "The branch head drover refused to apply (until a commit is applied)",
            m.refused_commit.clone(),
        );
        registry.register(
            "signature_checks",
            "Branch heads whose signature was checked, by result",
            m.signature_checks.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Push webhook deliveries, by provider and result (accepted, ignored, or why refused)",
            m.webhook_deliveries.clone(),
        );
        // Nothing has failed yet.
        m.healthy.set(1);
        Metrics { registry, ..m }
    }
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Metrics {
    fn failing_lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic elsewhere while holding it leaves a plain Option: still usable.
        self.failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refused_lock(&self) -> std::sync::MutexGuard<'_, Option<(String, String)>> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The head was refused (by the signature policy); /healthz says so until a
    /// commit is applied.
    pub fn refused(&self, commit: &str, reason: &str) {
        let mut refused = self.refused_lock();
        self.refused_commit.clear();
        self.refused_commit
            .get_or_create(&CommitLabel {
                commit: commit.to_string(),
            })
            .set(1);
        *refused = Some((commit.to_string(), reason.to_string()));
    }

    /// A head's signature was checked with this status.
    pub fn signature(&self, status: &str) {
        self.signature_checks
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc();
    }

    /// A push webhook delivery was answered with this result.
    pub fn webhook(&self, provider: &str, result: &str) {
        self.webhook_deliveries
            .get_or_create(&HookLabel {
                provider: provider.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub fn applied(&self, commit: &str) {
        {
            let mut refused = self.refused_lock();
            self.refused_commit.clear();
            *refused = None;
        }
        self.last_applied.clear();
        self.last_applied
            .get_or_create(&CommitLabel {
                commit: commit.to_string(),
            })
            .set(1);
    }
    pub fn stage(&self, name: &str, seconds: f64) {
        self.stage_seconds
            .get_or_create(&StageLabel {
                stage: name.to_string(),
            })
            .set(seconds);
    }
    pub fn drift_corrected(&self) {
        self.drift_corrections.inc();
    }
    pub fn outcome(&self, outcome: &str) {
        self.rollouts
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }
    /// The connection's running total of requests (a counter only moves up).
    pub fn api_requests(&self, total: u64) {
        let seen = self.api_requests.get();
        self.api_requests.inc_by(total.saturating_sub(seen));
    }
    pub fn rollout(&self, in_progress: bool) {
        self.rollout_in_progress.set(i64::from(in_progress));
    }
    /// What held the last iteration back: the operator's pause, a freeze window.
    pub fn held(&self, paused: bool, frozen: bool) {
        self.paused.set(i64::from(paused));
        self.frozen.set(i64::from(frozen));
    }
    pub fn leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
    /// Records a failure of `kind` (git, api, invalid, apply, state) and marks unhealthy.
    pub fn error(&self, kind: &str, message: &str) {
        let mut failing = self.failing_lock();
        self.errors
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .inc();
        *failing = Some(format!("{kind}: {message}"));
        self.healthy.set(0);
    }
    /// A loop iteration finished without error.
    pub fn healthy(&self) {
        let mut failing = self.failing_lock();
        *failing = None;
        self.healthy.set(1);
        self.last_success.set(now_unix());
    }

    /// `None` when healthy, else what is failing (or which head was refused).
    pub fn failing(&self) -> Option<String> {
        self.failing_lock().clone().or_else(|| {
            self.refused_lock()
                .as_ref()
                .map(|(c, r)| format!("refused: commit {c}: {r}"))
        })
    }

    /// The Prometheus text exposition (format 0.0.4, [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`Server::shutdown`] waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// The pause after a failed `accept()` (out of file descriptors, say): 10 ms
/// doubling to 0.5 s, each plus up to 100 % jitter (so at most 1 s), and back to
/// 10 ms after the next success: a lasting failure costs a few wake-ups a second
/// instead of a busy loop.
const ACCEPT_BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(10))
    .with_max_delay(Duration::from_millis(500))
    .with_jitter()
    .without_max_times();

/// The answer to a request for `path`: `/metrics`, `/healthz` (503 with the reason
/// while something fails), `/livez` (the process answers), else 404.
fn respond(metrics: &Metrics, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (StatusCode::OK, CONTENT_TYPE, metrics.render()),
        "/livez" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/healthz" => match metrics.failing() {
            None => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            Some(f) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("failing: {}\n", crate::core::diag::escape_control(&f)),
            ),
        },
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(content_type));
    response
}

/// The running server of `/metrics`, `/healthz` and `/livez`. Dropping it stops
/// accepting; [`Server::shutdown`] also lets the requests in flight finish.
pub struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits up to a second for the requests in flight, and
    /// returns once the listening socket is closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Serves `/metrics`, `/healthz` and `/livez` on `addr` (HTTP/1.1, hyper) until
/// the returned [`Server`] is shut down or dropped.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(addr: &str, metrics: Arc<Metrics>) -> std::io::Result<Server> {
    serve_with_hooks(addr, metrics, None).await
}

/// [`serve`], and with `hooks` also the push webhooks under `/hooks/` (without,
/// those paths are 404 like any other unknown path).
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve_with_hooks(
    addr: &str,
    metrics: Arc<Metrics>,
    hooks: Option<Arc<super::webhook::Hooks>>,
) -> std::io::Result<Server> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    if hooks.is_some() {
        tracing::info!(%addr, "serving /metrics, /healthz, /livez and /hooks/{{github,gitlab,generic}}");
    } else {
        tracing::info!(%addr, "serving /metrics, /healthz and /livez");
    }
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        accept_loop::<(TcpStream, SocketAddr), _, _>(
            || listener.accept(),
            tokio::time::sleep,
            stopped,
            |(sock, _peer): (TcpStream, SocketAddr)| {
                let metrics = metrics.clone();
                let hooks = hooks.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let metrics = metrics.clone();
                    let hooks = hooks.clone();
                    async move {
                        if let Some(h) = hooks.as_deref()
                            && req.uri().path().starts_with("/hooks/")
                        {
                            return Ok::<_, Infallible>(h.handle(req).await);
                        }
                        Ok(respond(&metrics, req.uri().path()))
                    }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(sock), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "a /metrics connection failed");
                    }
                });
            },
        )
        .await;
        drop(listener);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::debug!("requests still in flight when the server stopped");
        }
    });
    Ok(Server { addr, stop, task })
}

/// Accepts until `stop` fires (or its sender is dropped), handing each connection to
/// `handle`; after a failed accept it `pause`s ([`ACCEPT_BACKOFF`]) before the next.
async fn accept_loop<S, A, P>(
    mut accept: impl FnMut() -> A,
    mut pause: impl FnMut(Duration) -> P,
    mut stop: oneshot::Receiver<()>,
    mut handle: impl FnMut(S),
) where
    A: Future<Output = std::io::Result<S>>,
    P: Future<Output = ()>,
{
    let mut backoff = ACCEPT_BACKOFF.build();
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut stop => return,
            r = accept() => r,
        };
        match accepted {
            Ok(conn) => {
                if failing {
                    tracing::info!("accepting /metrics connections again");
                    failing = false;
                    backoff = ACCEPT_BACKOFF.build();
                }
                handle(conn);
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "accepting a /metrics connection failed; backing off");
                    failing = true;
                }
                let wait = backoff.next().unwrap_or(Duration::from_secs(1));
                tokio::select! {
                    biased;
                    _ = &mut stop => return,
                    () = pause(wait) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_head_fails_healthz_and_shows_in_the_metrics_until_a_commit_applies() {
        let m = Metrics::default();
        m.refused(
            "abc123",
            "signature policy `head`: commit abc123 is not signed",
        );
        m.signature("unsigned");
        m.healthy();
        assert_eq!(
            m.failing().as_deref(),
            Some("refused: commit abc123: signature policy `head`: commit abc123 is not signed")
        );
        let text = m.render();
        assert!(
            text.contains("drover_refused_commit_info{commit=\"abc123\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("drover_signature_checks_total{status=\"unsigned\"} 1"),
            "{text}"
        );
        m.applied("def456");
        assert_eq!(m.failing(), None);
        assert!(!m.render().contains("drover_refused_commit_info{"));
    }

    fn lines(m: &Metrics) -> Vec<String> {
        m.render().lines().map(str::to_string).collect()
    }

    fn has(m: &Metrics, line: &str) {
        let all = lines(m);
        assert!(
            all.iter().any(|l| l == line),
            "no {line:?} in\n{}",
            all.join("\n")
        );
    }

    #[test]
    fn a_fresh_replica_exposes_every_unlabelled_series_the_readme_names() {
        let m = Metrics::default();
        for line in [
            "# TYPE drover_drift_corrections_total counter",
            "drover_drift_corrections_total 0",
            "# TYPE drover_api_requests_total counter",
            "drover_api_requests_total 0",
            "# TYPE drover_healthy gauge",
            "drover_healthy 1",
            "drover_last_success_timestamp_seconds 0.0",
            "drover_rollout_in_progress 0",
            "drover_paused 0",
            "drover_frozen 0",
            "# HELP drover_leader Whether this replica holds the leader lease.",
            "drover_leader 0",
        ] {
            has(&m, line);
        }
        assert_eq!(m.failing(), None);
    }

    #[test]
    fn the_sync_loop_s_reports_appear_as_labelled_series() {
        let m = Metrics::default();
        m.applied("aaaa");
        m.applied("bbbb");
        m.stage("canary", 1.5);
        m.drift_corrected();
        m.outcome("applied");
        m.outcome("applied");
        m.outcome("halted");
        m.api_requests(7);
        m.api_requests(12);
        m.api_requests(3);
        m.rollout(true);
        m.held(false, true);
        m.leader(true);
        has(&m, "# TYPE drover_last_applied_commit_info gauge");
        has(&m, r#"drover_last_applied_commit_info{commit="bbbb"} 1"#);
        assert!(
            !m.render().contains("aaaa"),
            "only the last applied commit is reported"
        );
        has(&m, "# TYPE drover_stage_rollout_seconds gauge");
        has(&m, r#"drover_stage_rollout_seconds{stage="canary"} 1.5"#);
        has(&m, "drover_drift_corrections_total 1");
        has(&m, "# TYPE drover_rollouts_total counter");
        has(&m, r#"drover_rollouts_total{outcome="applied"} 2"#);
        has(&m, r#"drover_rollouts_total{outcome="halted"} 1"#);
        has(&m, "drover_api_requests_total 12");
        has(&m, "drover_rollout_in_progress 1");
        has(&m, "drover_paused 0");
        has(&m, "drover_frozen 1");
        has(&m, "drover_leader 1");
    }

    #[test]
    fn an_error_makes_the_replica_unhealthy_until_an_iteration_succeeds() {
        let m = Metrics::default();
        m.error("git", "the remote hung up");
        m.error("git", "again");
        assert_eq!(m.failing().as_deref(), Some("git: again"));
        has(&m, "# TYPE drover_errors_total counter");
        has(&m, r#"drover_errors_total{kind="git"} 2"#);
        has(&m, "drover_healthy 0");
        m.healthy();
        assert_eq!(m.failing(), None);
        has(&m, "drover_healthy 1");
        has(&m, r#"drover_errors_total{kind="git"} 2"#);
        let ts: f64 = lines(&m)
            .iter()
            .find_map(|l| l.strip_prefix("drover_last_success_timestamp_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(ts > 1.7e9, "{ts}");
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.stage("a\"b\\c\nd", 2.0);
        has(
            &m,
            r#"drover_stage_rollout_seconds{stage="a\"b\\c\nd"} 2.0"#,
        );
    }
    #[test]
    fn the_series_the_readme_names_are_the_series_served() {
        let readme = include_str!("../../README.md");
        let mut named: Vec<&str> = readme
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|t| t.split('{').next().unwrap_or(t))
            // Metric names only, not `drover_core::...` paths.
            .filter(|t| {
                t.starts_with("drover_")
                    && t.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
            .collect();
        named.sort_unstable();
        named.dedup();
        let m = Metrics::default();
        m.applied("c");
        m.stage("s", 1.0);
        m.error("git", "x");
        m.outcome("applied");
        m.refused("d", "r");
        m.signature("good");
        m.webhook("github", "accepted");
        let mut served: Vec<String> = m
            .render()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_string)
            .collect();
        served.sort_unstable();
        assert_eq!(named, served);
    }

    #[test]
    fn failed_accepts_back_off_instead_of_looping() {
        let (stop, stopped) = oneshot::channel();
        let mut stop = Some(stop);
        let mut calls = 0;
        let mut pauses = Vec::new();
        let mut handled = 0;
        let accept = || {
            calls += 1;
            let n = calls;
            if n > 7 {
                let _ = stop.take().map(|s| s.send(()));
            }
            async move {
                match n {
                    4 => Ok(()),
                    n if n > 7 => std::future::pending().await,
                    _ => Err(std::io::Error::other("too many open files")),
                }
            }
        };
        let pause = |d| {
            pauses.push(d);
            std::future::ready(())
        };
        futures::executor::block_on(accept_loop(accept, pause, stopped, |()| handled += 1));
        assert_eq!(handled, 1);
        assert_eq!(pauses.len(), 6, "one pause per failed accept: {pauses:?}");
        let ms = Duration::from_millis;
        // Three failures, a success that resets the backoff, three failures.
        for run in pauses.chunks(3) {
            assert!(run[0] >= ms(10) && run[0] < ms(20), "{pauses:?}");
            assert!(run.windows(2).all(|w| w[1] > w[0]), "{pauses:?}");
        }
        assert!(pauses.iter().all(|p| *p <= ms(1000)), "{pauses:?}");
        let many: Vec<Duration> = ACCEPT_BACKOFF.build().take(30).collect();
        assert!(many.iter().all(|p| *p <= ms(1000)), "{many:?}");
    }

    /// One request, read to EOF: the server closes the connection after answering
    /// even when the client does not ask it to.
    async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut text = String::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_string(&mut text))
            .await
            .expect("the server did not close the connection after answering")
            .unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.lines().any(|l| l == "connection: close"),
            "the server keeps the connection open: {head}"
        );
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("content-type: "))
            .unwrap_or_default()
            .to_string();
        (status, content_type, body.to_string())
    }

    #[tokio::test]
    async fn the_server_answers_metrics_health_and_liveness_and_stops_on_shutdown() {
        let metrics = Arc::new(Metrics::default());
        let server = serve("127.0.0.1:0", metrics.clone()).await.unwrap();
        let addr = server.local_addr();

        let (status, ctype, body) = get(addr, "/metrics").await;
        assert_eq!((status, ctype.as_str()), (200, CONTENT_TYPE));
        assert!(body.lines().any(|l| l == "drover_leader 0"), "{body}");
        assert_eq!(get(addr, "/livez").await.0, 200);
        assert_eq!(
            get(addr, "/healthz").await,
            (200, "text/plain".into(), "ok\n".into())
        );
        assert_eq!(get(addr, "/nope").await.0, 404);

        metrics.error("git", "the remote\nhung up");
        let (status, _, body) = get(addr, "/healthz").await;
        assert_eq!(status, 503);
        assert_eq!(body, "failing: git: the remote\\nhung up\n");
        assert_eq!(get(addr, "/livez").await.0, 200, "alive while unhealthy");
        metrics.healthy();
        assert_eq!(get(addr, "/healthz").await.0, 200);

        server.shutdown().await;
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still accepting after shutdown"
        );
    }
}
