//! The API server's audit log (`<testbed>/logs/audit.log`, level Metadata, one JSON
//! event per line; testbed/README.md): who asked for what, in the order the server
//! answered, with the server's own timestamps. Tests use it to prove what a command
//! wrote (or did not) and in which order, instead of inferring it from polling.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;

use jiff::Timestamp;

/// The audit log of one testbed.
pub struct AuditLog {
    pub path: PathBuf,
}

/// A position in the log: events after it are [`AuditLog::since`] it.
#[derive(Debug, Clone, Copy)]
pub struct Mark(u64);

/// One request, as the API server logged it when it had answered.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub verb: String,
    pub user: String,
    pub user_agent: String,
    pub resource: String,
    pub subresource: String,
    /// "" for a cluster-scoped request.
    pub namespace: String,
    pub name: String,
    pub uri: String,
    pub code: i64,
    /// The resourceVersion the request was made against (an update's precondition).
    pub resource_version: String,
    pub received: Timestamp,
    pub completed: Timestamp,
}

impl AuditEvent {
    /// create, update, patch, delete or deletecollection, dry run or not.
    pub fn is_mutating(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }

    pub fn is_dry_run(&self) -> bool {
        self.uri.contains("dryRun")
    }

    /// A write that persisted something (not a dry run).
    pub fn is_write(&self) -> bool {
        self.is_mutating() && !self.is_dry_run()
    }

    /// Made by a drover process (its User-Agent is `drover/<version>`).
    pub fn by_drover(&self) -> bool {
        self.user_agent.starts_with("drover/")
    }
}

impl AuditLog {
    /// Where the log ends now.
    pub fn mark(&self) -> Mark {
        Mark(std::fs::metadata(&self.path).map_or(0, |m| m.len()))
    }

    /// Every answered request in the log, in order.
    pub fn all(&self) -> Vec<AuditEvent> {
        self.between(Mark(0), None)
    }

    /// Every answered request logged after `mark`, in order.
    pub fn since(&self, mark: Mark) -> Vec<AuditEvent> {
        self.between(mark, None)
    }

    /// The answered requests logged after `from` and (when given) before `to`.
    pub fn between(&self, from: Mark, to: Option<Mark>) -> Vec<AuditEvent> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = f.metadata().map_or(0, |m| m.len());
        // The log rotates at 200 MB: a shorter file is a new one, read from its start.
        let start = if len < from.0 { 0 } else { from.0 };
        let end = to.map_or(len, |t| t.0.min(len));
        let mut buf = Vec::new();
        f.seek(SeekFrom::Start(start))
            .expect("seek in the audit log");
        f.take(end.saturating_sub(start))
            .read_to_end(&mut buf)
            .expect("read the audit log");
        let text = String::from_utf8_lossy(&buf);
        // A last line without its newline is still being written: left for later.
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete.lines().filter_map(parse).collect()
    }
}

fn parse(line: &str) -> Option<AuditEvent> {
    let e: serde_json::Value = serde_json::from_str(line).ok()?;
    if e["stage"] != "ResponseComplete" {
        return None;
    }
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let t = |v: &serde_json::Value| v.as_str().and_then(|x| x.parse::<Timestamp>().ok());
    let o = &e["objectRef"];
    Some(AuditEvent {
        verb: s(&e["verb"]),
        user: s(&e["user"]["username"]),
        user_agent: s(&e["userAgent"]),
        resource: s(&o["resource"]),
        subresource: s(&o["subresource"]),
        namespace: s(&o["namespace"]),
        name: s(&o["name"]),
        uri: s(&e["requestURI"]),
        code: e["responseStatus"]["code"].as_i64().unwrap_or(0),
        resource_version: s(&o["resourceVersion"]),
        received: t(&e["requestReceivedTimestamp"])?,
        completed: t(&e["stageTimestamp"])?,
    })
}
