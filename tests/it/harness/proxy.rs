//! A recording, fault-injecting HTTP proxy in front of the testbed's API server.
//!
//! drover → `http://127.0.0.1:<port>` (this proxy) → `kubectl proxy` (which holds
//! the testbed's admin credentials and speaks TLS) → kube-apiserver. Every request
//! drover makes passes here, so the proxy's log is a complete record of what drover
//! asked the API server for (method, path and query, `dryRun` included), and a test
//! can make the proxy answer 429/5xx or cut watch connections on a schedule.
//!
//! [`ApiProxy::offline`] is the same recorder with no API server behind it: every
//! request is answered 403, which no client retries. A test of a command that must
//! refuse before it touches a cluster points the command at it and needs no control
//! plane: an empty record proves that no request, let alone a write, was made.
//!
//! Plain threads and blocking sockets: one request per connection (the proxy
//! forces `Connection: close`), which is all a faithful record and fault injection
//! need. Binds 127.0.0.1 only.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::Testbed;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request drover made, as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/apis/apps/v1/namespaces/x/daemonsets/y?dryRun=All&…`.
    pub target: String,
    /// The status the proxy injected instead of forwarding, if any.
    pub injected: Option<u16>,
}

impl Request {
    /// POST, PUT, PATCH or DELETE: a request that may change the cluster.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }
    pub fn is_watch(&self) -> bool {
        self.target.contains("watch=true") || self.target.contains("watch=1")
    }
}

/// Which requests to fail and how.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer the first N requests that match `only` with these statuses, in turn.
    pub fail_first: usize,
    /// Statuses to inject, cycled (e.g. `[429, 503]`).
    pub statuses: Vec<u16>,
    /// Only requests whose method is in this list are failed (empty: any).
    pub only_methods: Vec<&'static str>,
    /// Also fail every Nth matching request after the first ones (0: never).
    pub every: usize,
    /// Cut every watch connection this long after it opened.
    pub break_watches_after: Option<Duration>,
}

struct Shared {
    log: Mutex<Vec<Request>>,
    faults: Mutex<Faults>,
    matched: AtomicUsize,
    stop: AtomicBool,
    /// `kubectl proxy`'s port; none for [`ApiProxy::offline`].
    upstream: Option<u16>,
}

/// The running proxy; stops (and stops its `kubectl proxy`) on drop.
pub struct ApiProxy {
    pub port: u16,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    shared: Arc<Shared>,
    kubectl: Option<Child>,
}

impl ApiProxy {
    /// Starts `kubectl proxy` against the testbed and the recording proxy in front.
    pub fn start(tb: &Testbed) -> ApiProxy {
        let mut child = Command::new(&tb.kubectl)
            .env("KUBECONFIG", &tb.kubeconfig)
            .args(["proxy", "--port=0", "--address=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kubectl proxy");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).expect("kubectl proxy output");
        // Keep draining its stdout: a closed pipe would kill it on its next write.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let upstream: u16 = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("kubectl proxy said {line:?}"));
        ApiProxy::listen(Some(upstream), Some(child))
    }

    /// A recorder with no cluster behind it, answering every request with 403.
    pub fn offline() -> ApiProxy {
        ApiProxy::listen(None, None)
    }

    fn listen(upstream: Option<u16>, kubectl: Option<Child>) -> ApiProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: proxy, cluster: {{server: \"http://127.0.0.1:{port}\"}}}}]\nusers: [{{name: proxy, user: {{}}}}]\ncontexts: [{{name: proxy, context: {{cluster: proxy, user: proxy}}}}]\ncurrent-context: proxy\n"
            ),
        )
        .unwrap();
        let shared = Arc::new(Shared {
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            matched: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            upstream,
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = handle(conn, &s);
                });
            }
        });
        ApiProxy {
            port,
            kubeconfig,
            _dir: dir,
            shared,
            kubectl,
        }
    }

    pub fn set_faults(&self, f: Faults) {
        self.shared.matched.store(0, Ordering::SeqCst);
        *self.shared.faults.lock().unwrap() = f;
    }

    /// Everything requested so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Requests that may have changed the cluster (dry runs included: they are
    /// writes as far as the API server's admission chain is concerned).
    pub fn writes(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::is_write)
            .collect()
    }
}

impl Drop for ApiProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(k) = &mut self.kubectl {
            let _ = k.kill();
            let _ = k.wait();
        }
    }
}

fn handle(mut client: TcpStream, s: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    // Request head, byte by byte up to the blank line (heads are small).
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut b)? == 0 {
            return Ok(());
        }
        head.push(b[0]);
        if head.len() > 1 << 20 {
            return Ok(());
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers: Vec<String> = Vec::new();
    let mut length = 0usize;
    for l in lines.filter(|l| !l.is_empty()) {
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        headers.push(l.to_string());
    }
    let mut body = vec![0u8; length];
    client.read_exact(&mut body)?;
    let mut req = Request {
        method: method.clone(),
        target: target.clone(),
        injected: None,
    };
    let (inject, break_after) = {
        let f = s.faults.lock().unwrap();
        let applies = f.only_methods.is_empty() || f.only_methods.contains(&method.as_str());
        let mut inject = None;
        if applies && !f.statuses.is_empty() {
            let n = s.matched.fetch_add(1, Ordering::SeqCst);
            let fail = n < f.fail_first
                || (f.every > 0 && (n - f.fail_first.min(n)) % f.every == f.every - 1);
            if fail {
                inject = Some(f.statuses[n % f.statuses.len()]);
            }
        }
        (inject, f.break_watches_after.filter(|_| req.is_watch()))
    };
    // Offline: nothing to forward to, and nothing worth retrying.
    let inject = inject.or(if s.upstream.is_none() {
        Some(403)
    } else {
        None
    });
    req.injected = inject;
    s.log.lock().unwrap().push(req);
    if let Some(code) = inject {
        let reason = match code {
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            403 => "Forbidden",
            _ => "Injected",
        };
        let status = format!(
            "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":\"injected by the test proxy: {reason}\",\"reason\":\"{}\",\"code\":{code}}}",
            match code {
                429 => "TooManyRequests",
                403 => "Forbidden",
                _ => "ServiceUnavailable",
            }
        );
        write!(
            client,
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{status}",
            status.len()
        )?;
        client.flush()?;
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    let Some(upstream) = s.upstream else {
        return Ok(());
    };
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut out = format!("{request_line}\r\n");
    for h in &headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    up.write_all(out.as_bytes())?;
    up.write_all(&body)?;
    up.flush()?;
    if let Some(after) = break_after {
        let (c, u) = (client.try_clone()?, up.try_clone()?);
        std::thread::spawn(move || {
            std::thread::sleep(after);
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        });
    }
    let mut up_read = up.try_clone()?;
    let _ = std::io::copy(&mut up_read, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
    Ok(())
}
