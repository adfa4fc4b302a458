//! `/metrics` (Prometheus text), `/healthz` and `/livez` on a configurable address.
//!
//! The metrics live in a `prometheus-client` registry, encoded in the Prometheus
//! text format. Must not: decide anything; it only reports.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

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
    leader: Gauge,
    /// Held while `failing` and `healthy` change together.
    failing: Mutex<Option<String>>,
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
            leader: Gauge::default(),
            failing: Mutex::new(None),
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
            "leader",
            "Whether this replica holds the leader lease",
            m.leader.clone(),
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

    pub fn applied(&self, commit: &str) {
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

    /// `None` when healthy, else what is failing.
    pub fn failing(&self) -> Option<String> {
        self.failing_lock().clone()
    }

    /// The Prometheus text exposition (format 0.0.4, [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Serves `/metrics`, `/healthz` (503 with the reason while something fails) and
/// `/livez` (the process answers) until the task is dropped.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(
    addr: &str,
    metrics: std::sync::Arc<Metrics>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /livez");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    sock.read(&mut buf),
                )
                .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("/");
                let (status, ctype, body) = match path {
                    "/metrics" => ("200 OK", CONTENT_TYPE, metrics.render()),
                    "/livez" => ("200 OK", "text/plain", "ok\n".to_string()),
                    "/healthz" => match metrics.failing() {
                        None => ("200 OK", "text/plain", "ok\n".to_string()),
                        Some(f) => (
                            "503 Service Unavailable",
                            "text/plain",
                            format!("failing: {}\n", crate::core::diag::escape_control(&f)),
                        ),
                    },
                    _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
