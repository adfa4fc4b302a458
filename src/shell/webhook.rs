//! Push webhooks on the `--listen` server: `POST /hooks/github`, `/hooks/gitlab`
//! and `/hooks/generic`. A delivery the core ([`crate::core::webhook`]) finds
//! authentic wakes the sync loop at once; anything else is answered 401 (413 when
//! too large) and counted in `drover_webhook_deliveries_total`.
//!
//! The hook never carries the commit to apply: the sync loop fetches the branch and
//! checks what it finds as on any other iteration. Wake-ups coalesce: while one is
//! pending, more deliveries do not queue further fetches.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::metrics::Metrics;
use crate::core::diag::escape_control;
use crate::core::webhook::{self, Delivery, MAX_BODY_BYTES, Provider, Refusal, Replays, Verdict};

/// How long a sender may take to send the body once its headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("reading the webhook secret {path}")]
    ReadSecret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the webhook secret {path} is empty")]
    EmptySecret { path: PathBuf },
}

/// Reads the shared secret: the file's bytes without one trailing line break.
///
/// # Errors
/// When the file cannot be read or holds no secret.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, WebhookError> {
    let mut bytes = std::fs::read(path).map_err(|source| WebhookError::ReadSecret {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(WebhookError::EmptySecret {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// What the server needs to answer hooks: the secret, the replay memory, the
/// sync loop's wake-up channel and the metrics.
pub struct Hooks {
    secret: Vec<u8>,
    replays: Mutex<Replays>,
    wake: mpsc::Sender<()>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

impl Hooks {
    pub fn new(secret: Vec<u8>, wake: mpsc::Sender<()>, metrics: Arc<Metrics>) -> Hooks {
        Hooks {
            secret,
            replays: Mutex::new(Replays::default()),
            wake,
            metrics,
        }
    }

    /// Answers a request whose path starts with `/hooks/`.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(provider) = Provider::from_path(req.uri().path()) else {
            return text(StatusCode::NOT_FOUND, "not found\n".into());
        };
        if req.method() != Method::POST {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "POST only\n".into());
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        // Header values that are not visible ASCII cannot be a signature or an id;
        // they are kept as a value no check accepts, never dropped.
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                let v = v.to_str().unwrap_or("\u{fffd}");
                (k.as_str().to_string(), v.to_string())
            })
            .collect();
        // A declared length over the limit is refused before reading any of it.
        let declared = hyper::body::Body::size_hint(req.body()).lower();
        if usize::try_from(declared).map_or(true, |n| n > MAX_BODY_BYTES) {
            return self.answer(provider, Verdict::Refuse(Refusal::TooLarge));
        }
        let limited = Limited::new(req.into_body(), MAX_BODY_BYTES);
        let body = match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return self.answer(provider, Verdict::Refuse(Refusal::TooLarge));
            }
            Ok(Err(_)) | Err(_) => {
                self.metrics.webhook(provider.as_str(), "incomplete");
                return text(StatusCode::BAD_REQUEST, "incomplete body\n".into());
            }
        };
        let verdict = {
            let mut replays = self
                .replays
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            webhook::check(
                &Delivery {
                    provider,
                    headers: &headers,
                    body: &body,
                },
                &self.secret,
                now_unix(),
                &mut replays,
            )
        };
        self.answer(provider, verdict)
    }

    fn answer(&self, provider: Provider, verdict: Verdict) -> Response<Full<Bytes>> {
        self.metrics.webhook(provider.as_str(), verdict.label());
        match verdict {
            Verdict::Fetch { delivery } => {
                tracing::info!(
                    provider = provider.as_str(),
                    delivery = delivery.as_deref().map(escape_control).unwrap_or_default(),
                    "push webhook: fetching now"
                );
                // Full means a wake-up is already pending; that fetch will see this push.
                let _ = self.wake.try_send(());
                text(StatusCode::ACCEPTED, "fetching\n".into())
            }
            Verdict::Ignore { event } => text(
                StatusCode::OK,
                format!("ignored: {} is not a push\n", escape_control(&event)),
            ),
            Verdict::Refuse(r) => {
                tracing::warn!(
                    provider = provider.as_str(),
                    reason = %escape_control(&r.to_string()),
                    "push webhook refused"
                );
                let status = if r == Refusal::TooLarge {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::UNAUTHORIZED
                };
                text(status, format!("refused: {r}\n"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    use super::*;
    use crate::core::webhook::{sign_generic, sign_github};
    use crate::shell::metrics::serve_with_hooks;

    const SECRET: &[u8] = b"hook secret";

    async fn post(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, String) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut text = String::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_string(&mut text))
            .await
            .expect("no answer")
            .unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (
            head.split(' ').nth(1).unwrap().parse().unwrap(),
            body.to_string(),
        )
    }

    struct Served {
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        woken: mpsc::Receiver<()>,
        _server: crate::shell::metrics::Server,
    }

    async fn served(hooks: bool) -> Served {
        let metrics = Arc::new(Metrics::default());
        let (wake, woken) = mpsc::channel(1);
        let h = hooks.then(|| Arc::new(Hooks::new(SECRET.to_vec(), wake, metrics.clone())));
        let server = serve_with_hooks("127.0.0.1:0", metrics.clone(), h)
            .await
            .unwrap();
        Served {
            addr: server.local_addr(),
            metrics,
            woken,
            _server: server,
        }
    }

    fn github(body: &[u8], delivery: &str) -> Vec<(&'static str, String)> {
        vec![
            ("X-Hub-Signature-256", sign_github(SECRET, body)),
            ("X-GitHub-Event", "push".into()),
            ("X-GitHub-Delivery", delivery.into()),
        ]
    }

    #[tokio::test]
    async fn a_valid_github_push_wakes_the_loop_and_a_replay_of_it_is_refused_with_401() {
        let mut s = served(true).await;
        let body = br#"{"ref":"refs/heads/main"}"#;
        let (status, text) =
            post(s.addr, "POST", "/hooks/github", &github(body, "d-1"), body).await;
        assert_eq!((status, text.as_str()), (202, "fetching\n"));
        s.woken.try_recv().expect("the loop was not woken");

        let (status, text) =
            post(s.addr, "POST", "/hooks/github", &github(body, "d-1"), body).await;
        assert_eq!(status, 401, "{text}");
        assert!(text.contains("replay"), "{text}");
        assert!(s.woken.try_recv().is_err(), "a replay woke the loop");

        let metrics = s.metrics.render();
        for line in [
            r#"drover_webhook_deliveries_total{provider="github",result="accepted"} 1"#,
            r#"drover_webhook_deliveries_total{provider="github",result="replay"} 1"#,
        ] {
            assert!(metrics.contains(line), "{line} not in\n{metrics}");
        }
    }

    #[tokio::test]
    async fn a_bad_signature_or_an_unsigned_hook_is_refused_with_401_and_counted() {
        let mut s = served(true).await;
        let body = br#"{"ref":"refs/heads/main"}"#;
        let mut forged = github(body, "d-1");
        forged[0].1 = sign_github(b"not the secret", body);
        assert_eq!(
            post(s.addr, "POST", "/hooks/github", &forged, body).await.0,
            401
        );
        let unsigned = vec![
            ("X-GitHub-Event", "push".to_string()),
            ("X-GitHub-Delivery", "d-2".into()),
        ];
        assert_eq!(
            post(s.addr, "POST", "/hooks/github", &unsigned, body)
                .await
                .0,
            401
        );
        let gitlab = vec![
            ("X-Gitlab-Token", "wrong".to_string()),
            ("X-Gitlab-Event", "Push Hook".into()),
        ];
        assert_eq!(
            post(s.addr, "POST", "/hooks/gitlab", &gitlab, body).await.0,
            401
        );
        assert!(s.woken.try_recv().is_err(), "a refused hook woke the loop");
        let metrics = s.metrics.render();
        for line in [
            r#"drover_webhook_deliveries_total{provider="github",result="bad_signature"} 1"#,
            r#"drover_webhook_deliveries_total{provider="github",result="unsigned"} 1"#,
            r#"drover_webhook_deliveries_total{provider="gitlab",result="bad_signature"} 1"#,
        ] {
            assert!(metrics.contains(line), "{line} not in\n{metrics}");
        }
    }

    #[tokio::test]
    async fn a_generic_hook_signed_now_is_accepted_and_one_signed_an_hour_ago_is_stale() {
        let mut s = served(true).await;
        let body = b"{}";
        let now = now_unix();
        let fresh = vec![
            ("X-Drover-Timestamp", now.to_string()),
            ("X-Drover-Signature", sign_generic(SECRET, now, body)),
        ];
        assert_eq!(
            post(s.addr, "POST", "/hooks/generic", &fresh, body).await.0,
            202
        );
        s.woken.try_recv().expect("the loop was not woken");
        let old = now - 3600;
        let stale = vec![
            ("X-Drover-Timestamp", old.to_string()),
            ("X-Drover-Signature", sign_generic(SECRET, old, body)),
        ];
        let (status, text) = post(s.addr, "POST", "/hooks/generic", &stale, body).await;
        assert_eq!(status, 401);
        assert!(text.contains("from now"), "{text}");
    }

    #[tokio::test]
    async fn deliveries_coalesce_into_one_pending_wake_up() {
        let mut s = served(true).await;
        let body = b"{}";
        for i in 0..3 {
            let (status, _) = post(
                s.addr,
                "POST",
                "/hooks/github",
                &github(body, &format!("d-{i}")),
                body,
            )
            .await;
            assert_eq!(status, 202);
        }
        s.woken.try_recv().expect("the loop was not woken");
        assert!(
            s.woken.try_recv().is_err(),
            "more than one wake-up was queued"
        );
    }

    #[tokio::test]
    async fn only_post_is_answered_and_without_a_secret_hooks_do_not_exist() {
        let s = served(true).await;
        assert_eq!(post(s.addr, "GET", "/hooks/github", &[], b"").await.0, 405);
        assert_eq!(
            post(s.addr, "POST", "/hooks/bitbucket", &[], b"").await.0,
            404
        );
        let plain = served(false).await;
        let body = b"{}";
        assert_eq!(
            post(
                plain.addr,
                "POST",
                "/hooks/github",
                &github(body, "d-1"),
                body
            )
            .await
            .0,
            404
        );
        assert_eq!(post(plain.addr, "GET", "/livez", &[], b"").await.0, 200);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_answered_413_without_reading_it_all() {
        let s = served(true).await;
        let mut conn = TcpStream::connect(s.addr).await.unwrap();
        let head = format!(
            "POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        // The declared length alone is over the limit: the answer comes at once.
        let mut text = String::new();
        tokio::time::timeout(Duration::from_secs(30), conn.read_to_string(&mut text))
            .await
            .expect("no answer")
            .unwrap();
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(s.metrics.render().contains(r#"result="too_large"} 1"#));
    }

    #[test]
    fn the_secret_file_loses_one_trailing_line_break_and_empty_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, "abc\r\n").unwrap();
        assert_eq!(read_secret(&p).unwrap(), b"abc");
        std::fs::write(&p, "abc\n\n").unwrap();
        assert_eq!(read_secret(&p).unwrap(), b"abc\n");
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(
            read_secret(&p),
            Err(WebhookError::EmptySecret { .. })
        ));
        assert!(matches!(
            read_secret(&dir.path().join("missing")),
            Err(WebhookError::ReadSecret { .. })
        ));
    }
}
