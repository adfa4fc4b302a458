//! `/metrics` (Prometheus text), `/healthz` and `/livez` on a configurable address.
//!
//! A minimal HTTP/1.1 responder: drover serves three read-only paths, so a full
//! server framework would only add weight.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// What the sync loop reports.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    last_applied: Option<String>,
    stage_seconds: BTreeMap<String, f64>,
    drift_corrections: u64,
    errors: BTreeMap<String, u64>,
    outcomes: BTreeMap<String, u64>,
    api_requests: u64,
    failing: Option<String>,
    last_success_unix: f64,
    rollout_in_progress: bool,
    leader: bool,
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().expect("metrics lock"))
    }

    pub fn applied(&self, commit: &str) {
        self.with(|i| i.last_applied = Some(commit.to_string()));
    }
    pub fn stage(&self, name: &str, seconds: f64) {
        self.with(|i| {
            i.stage_seconds.insert(name.to_string(), seconds);
        });
    }
    pub fn drift_corrected(&self) {
        self.with(|i| i.drift_corrections += 1);
    }
    pub fn outcome(&self, outcome: &str) {
        self.with(|i| *i.outcomes.entry(outcome.to_string()).or_default() += 1);
    }
    pub fn api_requests(&self, total: u64) {
        self.with(|i| i.api_requests = total);
    }
    pub fn rollout(&self, in_progress: bool) {
        self.with(|i| i.rollout_in_progress = in_progress);
    }
    pub fn leader(&self, leader: bool) {
        self.with(|i| i.leader = leader);
    }
    /// Records a failure of `kind` (git, api, invalid, apply, state) and marks unhealthy.
    pub fn error(&self, kind: &str, message: &str) {
        self.with(|i| {
            *i.errors.entry(kind.to_string()).or_default() += 1;
            i.failing = Some(format!("{kind}: {message}"));
        });
    }
    /// A loop iteration finished without error.
    pub fn healthy(&self) {
        self.with(|i| {
            i.failing = None;
            i.last_success_unix = now_unix();
        });
    }

    /// `None` when healthy, else what is failing.
    pub fn failing(&self) -> Option<String> {
        self.with(|i| i.failing.clone())
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.with(|i| {
            let mut o = String::new();
            o.push_str("# HELP drover_last_applied_commit_info The last commit whose rollout succeeded.\n# TYPE drover_last_applied_commit_info gauge\n");
            if let Some(c) = &i.last_applied {
                o.push_str(&format!("drover_last_applied_commit_info{{commit=\"{}\"}} 1\n", esc(c)));
            }
            o.push_str("# HELP drover_stage_rollout_seconds Duration of the last rollout of each stage.\n# TYPE drover_stage_rollout_seconds gauge\n");
            for (s, v) in &i.stage_seconds {
                o.push_str(&format!("drover_stage_rollout_seconds{{stage=\"{}\"}} {v}\n", esc(s)));
            }
            o.push_str(&format!("# HELP drover_drift_corrections_total Drift corrections applied.\n# TYPE drover_drift_corrections_total counter\ndrover_drift_corrections_total {}\n", i.drift_corrections));
            o.push_str("# HELP drover_errors_total Errors by kind.\n# TYPE drover_errors_total counter\n");
            for (k, v) in &i.errors {
                o.push_str(&format!("drover_errors_total{{kind=\"{}\"}} {v}\n", esc(k)));
            }
            o.push_str("# HELP drover_rollouts_total Rollouts by outcome.\n# TYPE drover_rollouts_total counter\n");
            for (k, v) in &i.outcomes {
                o.push_str(&format!("drover_rollouts_total{{outcome=\"{}\"}} {v}\n", esc(k)));
            }
            o.push_str(&format!("# HELP drover_api_requests_total Requests made to the Kubernetes API.\n# TYPE drover_api_requests_total counter\ndrover_api_requests_total {}\n", i.api_requests));
            o.push_str(&format!("# HELP drover_healthy Whether the last sync iteration succeeded.\n# TYPE drover_healthy gauge\ndrover_healthy {}\n", u8::from(i.failing.is_none())));
            o.push_str(&format!("# HELP drover_last_success_timestamp_seconds When a sync iteration last succeeded.\n# TYPE drover_last_success_timestamp_seconds gauge\ndrover_last_success_timestamp_seconds {}\n", i.last_success_unix));
            o.push_str(&format!("# HELP drover_rollout_in_progress Whether a rollout is running.\n# TYPE drover_rollout_in_progress gauge\ndrover_rollout_in_progress {}\n", u8::from(i.rollout_in_progress)));
            o.push_str(&format!("# HELP drover_leader Whether this replica holds the leader lease.\n# TYPE drover_leader gauge\ndrover_leader {}\n", u8::from(i.leader)));
            o
        })
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
                    "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
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
