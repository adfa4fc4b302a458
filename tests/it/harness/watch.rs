//! A watch on one kind of object in a namespace (`kubectl get --watch
//! --output-watch-events -o json`): every change in the order the API server made it,
//! so a test waits for a state as an event, and can tell what happened before what,
//! instead of sleeping or sampling.

use std::process::{Child, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Testbed;

/// One event of the watch: `ADDED`, `MODIFIED` or `DELETED`, and the object after it.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub kind: String,
    pub object: Value,
}

impl WatchEvent {
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub fn resource_version(&self) -> &str {
        self.object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Seen {
    events: Vec<WatchEvent>,
    ended: bool,
}

/// The running watch; stopped on drop.
pub struct Watch {
    what: String,
    child: Child,
    seen: Arc<(Mutex<Seen>, Condvar)>,
}

impl Watch {
    /// Watches `resource` (e.g. `daemonsets`) in `ns`. kubectl lists first, then
    /// watches from the list's resourceVersion, so no change after the list is missed;
    /// the list arrives as `ADDED` events.
    pub fn start(tb: &Testbed, ns: &str, resource: &str) -> Watch {
        let mut child = std::process::Command::new(&tb.kubectl)
            .env("KUBECONFIG", &tb.kubeconfig)
            .args([
                "-n",
                ns,
                "get",
                resource,
                "--watch",
                "--output-watch-events",
                "-o",
                "json",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kubectl get --watch");
        let out = child.stdout.take().expect("piped stdout");
        let seen: Arc<(Mutex<Seen>, Condvar)> = Arc::default();
        let s = seen.clone();
        std::thread::spawn(move || {
            let stream = serde_json::Deserializer::from_reader(out).into_iter::<Value>();
            for v in stream {
                let Ok(v) = v else { break };
                let (lock, cond) = &*s;
                lock.lock().unwrap().events.push(WatchEvent {
                    kind: v["type"].as_str().unwrap_or_default().to_string(),
                    object: v["object"].clone(),
                });
                cond.notify_all();
            }
            let (lock, cond) = &*s;
            lock.lock().unwrap().ended = true;
            cond.notify_all();
        });
        Watch {
            what: format!("{resource} in {ns}"),
            child,
            seen,
        }
    }

    /// Blocks until `done(events so far)` holds; panics after `limit` or if the watch
    /// ends, with the events it saw.
    pub fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[WatchEvent]) -> bool,
    ) -> Vec<WatchEvent> {
        let deadline = Instant::now() + limit;
        let (lock, cond) = &*self.seen;
        let mut seen = lock.lock().unwrap();
        loop {
            if done(&seen.events) {
                return seen.events.clone();
            }
            let now = Instant::now();
            if seen.ended || now >= deadline {
                let summary: Vec<String> = seen
                    .events
                    .iter()
                    .map(|e| format!("{} {} rv={}", e.kind, e.name(), e.resource_version()))
                    .collect();
                panic!(
                    "waiting for {what} on the watch of {}: {} after {limit:?}; events:\n{}",
                    self.what,
                    if seen.ended {
                        "the watch ended"
                    } else {
                        "timed out"
                    },
                    summary.join("\n")
                );
            }
            seen = cond.wait_timeout(seen, deadline - now).unwrap().0;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
