//! The cluster copy of the sync state and the audit trail: the source of truth
//! that every replica sees, so a leader handover or a pod restart resumes the
//! in-flight rollout and extends the one trail.
//!
//! Owns: the ConfigMap `drover-state-<name>` (the [`SyncState`] as JSON, with the
//! fence of its last writer) and one ConfigMap `drover-trail-<name>-<seq>` per
//! audit record (the record's exact line, created once, `immutable: true`), all in
//! the anchor namespace and labelled `drover.dev/trail=<name>`. Must not: decide
//! fencing or merging (that is [`crate::core::trail`]), or what a state means.
//!
//! Writes: the state is read, checked against the writer's fence
//! ([`crate::core::trail::may_write`]) and replaced with the read's
//! resourceVersion as precondition, so a stale leader can neither overwrite a
//! newer leader's state nor slip in between a read and a write. A record object is
//! created, never updated: two writers can never both write record n. Either
//! refusal is [`CopyError::Fenced`] / [`CopyError::Raced`]: sync stops, as it
//! does when it loses the Lease.
//!
//! Order, as with the files before: the cluster is written first, then the local
//! cache (`state.json`, `audit.jsonl` in the state directory), which
//! [`ClusterCopy::sync_down`] rewrites from the cluster when a replica starts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};

use super::audit::{AuditError, AuditLog};
use super::state::{StateError, StateStore, SyncState};
use crate::core::audit::AuditRecord;
use crate::core::render::{LABEL_MANAGED_BY, MANAGER};
use crate::core::trail::{
    self, Diverged, Fence, FenceRefusal, GapError, Merge, RECORD_SCHEMA, STATE_SCHEMA, TooLarge,
};

/// The label on every object of a trail: its name.
pub const LABEL_TRAIL: &str = "drover.dev/trail";
/// The label on a record object: its sequence number.
pub const LABEL_SEQ: &str = "drover.dev/seq";

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading configmap {namespace}/{name}")]
    Read {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("writing configmap {namespace}/{name}")]
    Write {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("configmap {namespace}/{name} is not one drover wrote: {defect}")]
    Corrupt {
        namespace: String,
        name: String,
        defect: String,
    },
    /// This writer is fenced off: another leader took over.
    #[error("configmap {namespace}/{name}: {source}")]
    Fenced {
        namespace: String,
        name: String,
        source: FenceRefusal,
    },
    #[error(
        "configmap {namespace}/{name} changed while this replica wrote it (another writer): this replica stops"
    )]
    Raced { namespace: String, name: String },
    #[error(
        "configmap {namespace}/{name} already holds a different record: another writer extended the trail"
    )]
    RecordTaken { namespace: String, name: String },
    #[error("the audit trail {namespace}/{trail} in the cluster")]
    Gap {
        namespace: String,
        trail: String,
        source: GapError,
    },
    #[error("the audit trail {namespace}/{trail} and the local cache {}", path.display())]
    Diverged {
        namespace: String,
        trail: String,
        path: std::path::PathBuf,
        source: Diverged,
    },
    /// The state belongs to a sync of another repository, branch or path.
    #[error(
        "configmap {namespace}/{name} holds the state of a sync of {theirs}, not of {mine}: pass another --state-name (one per sync)"
    )]
    OtherSource {
        namespace: String,
        name: String,
        theirs: String,
        mine: String,
    },
    #[error(transparent)]
    TooLarge { source: TooLarge },
    #[error("the local cache")]
    CacheState { source: StateError },
    #[error("the local cache")]
    CacheAudit { source: AuditError },
}

impl CopyError {
    /// Whether trying again later may succeed (the API server away or busy).
    pub fn is_transient(&self) -> bool {
        match self {
            CopyError::Read { source, .. } | CopyError::Write { source, .. } => match source {
                kube::Error::Api(s) => s.code == 429 || s.code >= 500,
                kube::Error::HyperError(_) | kube::Error::Service(_) => true,
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether another writer holds the state now: the process must stop.
    pub fn is_fenced(&self) -> bool {
        matches!(
            self,
            CopyError::Fenced { .. } | CopyError::Raced { .. } | CopyError::RecordTaken { .. }
        )
    }
}

/// Whether an error, or one of its causes, is a [`CopyError`] that fences this
/// process off.
pub fn fenced(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(e) = at {
        let copy = e
            .downcast_ref::<CopyError>()
            .or_else(|| e.downcast_ref::<Box<CopyError>>().map(AsRef::as_ref));
        if copy.is_some_and(CopyError::is_fenced) {
            return true;
        }
        at = e.source();
    }
    false
}

/// The state object as read.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredState {
    pub state: SyncState,
    /// The repository, branch and path of the sync that wrote it.
    pub source: Option<String>,
    pub fence: Option<Fence>,
    pub resource_version: Option<String>,
}

/// The cluster copy of one trail.
pub struct ClusterCopy {
    api: Api<ConfigMap>,
    pub namespace: String,
    /// The trail's name (`--state-name`).
    pub name: String,
    /// This writer's fence: the Lease it holds, `None` without leader election.
    pub fence: Option<Fence>,
    /// What this sync follows (`<repo> <branch> <path>`), kept in the state so
    /// that a second sync given the same name does not adopt another's state;
    /// `None` for a reader.
    pub source: Option<String>,
    /// Whether the local cache was rewritten from the cluster since the last
    /// failure (a failure may leave the cache behind the cluster).
    fresh: AtomicBool,
    /// The size of the cache's audit file when it was last known to match.
    cached: AtomicU64,
}

impl ClusterCopy {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        fence: Option<Fence>,
    ) -> ClusterCopy {
        ClusterCopy {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            fence,
            source: None,
            fresh: AtomicBool::new(false),
            cached: AtomicU64::new(0),
        }
    }

    pub fn state_object(&self) -> String {
        trail::state_object_name(&self.name)
    }

    fn read_err(&self, name: &str) -> impl FnOnce(kube::Error) -> CopyError {
        let (namespace, name) = (self.namespace.clone(), name.to_string());
        move |source| CopyError::Read {
            namespace,
            name,
            source,
        }
    }

    fn write_err(&self, name: &str) -> impl FnOnce(kube::Error) -> CopyError {
        let (namespace, name) = (self.namespace.clone(), name.to_string());
        move |source| CopyError::Write {
            namespace,
            name,
            source,
        }
    }

    fn corrupt(&self, name: &str, defect: impl Into<String>) -> CopyError {
        CopyError::Corrupt {
            namespace: self.namespace.clone(),
            name: name.to_string(),
            defect: defect.into(),
        }
    }

    fn labels(&self, seq: Option<u64>) -> BTreeMap<String, String> {
        let mut l: BTreeMap<String, String> = [
            (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
            (LABEL_TRAIL.to_string(), self.name.clone()),
        ]
        .into_iter()
        .collect();
        if let Some(seq) = seq {
            l.insert(LABEL_SEQ.to_string(), seq.to_string());
        }
        l
    }

    fn pp() -> PostParams {
        PostParams {
            field_manager: Some(MANAGER.to_string()),
            ..Default::default()
        }
    }

    /// The state object; `None` when there is none yet.
    ///
    /// # Errors
    /// When it cannot be read or holds something drover did not write.
    pub async fn read_state(&self) -> Result<Option<StoredState>, CopyError> {
        let name = self.state_object();
        let Some(cm) = self
            .api
            .get_opt(&name)
            .await
            .map_err(self.read_err(&name))?
        else {
            return Ok(None);
        };
        let data = cm.data.unwrap_or_default();
        let key = |k: &str| {
            data.get(k)
                .ok_or_else(|| self.corrupt(&name, format!("no `{k}`")))
        };
        if key("schema")? != STATE_SCHEMA {
            return Err(self.corrupt(&name, format!("schema is not `{STATE_SCHEMA}`")));
        }
        let state: SyncState = serde_json::from_str(key("state")?)
            .map_err(|e| self.corrupt(&name, format!("`state`: {e}")))?;
        let fence = match (data.get("holder"), data.get("term")) {
            (Some(holder), Some(term)) => Some(Fence {
                holder: holder.clone(),
                term: term.parse().map_err(|_| {
                    self.corrupt(&name, format!("`term` is `{term}`, not a number"))
                })?,
            }),
            (None, None) => None,
            _ => return Err(self.corrupt(&name, "`holder` and `term` come together")),
        };
        Ok(Some(StoredState {
            state,
            source: data.get("source").cloned(),
            fence,
            resource_version: cm.metadata.resource_version,
        }))
    }

    /// Writes `state`, fenced: read, check the fence, replace with the read's
    /// resourceVersion as precondition (create when there is none).
    ///
    /// # Errors
    /// [`CopyError::Fenced`] when a later leader wrote it, [`CopyError::Raced`]
    /// when it changed between the read and the write; API errors.
    #[tracing::instrument(name = "save-state", skip_all, fields(object = %self.state_object()))]
    pub async fn save_state(&self, state: &SyncState) -> Result<Option<String>, CopyError> {
        let stored = self.read_state().await?;
        self.write_state(state, stored.as_ref()).await
    }

    /// The write of [`ClusterCopy::save_state`] over `stored` as just read;
    /// returns the resourceVersion written.
    async fn write_state(
        &self,
        state: &SyncState,
        stored: Option<&StoredState>,
    ) -> Result<Option<String>, CopyError> {
        let name = self.state_object();
        trail::may_write(stored.and_then(|s| s.fence.as_ref()), self.fence.as_ref()).map_err(
            |source| CopyError::Fenced {
                namespace: self.namespace.clone(),
                name: name.clone(),
                source,
            },
        )?;
        let mut data: BTreeMap<String, String> = BTreeMap::new();
        data.insert("schema".into(), STATE_SCHEMA.into());
        data.insert(
            "state".into(),
            serde_json::to_string(state).expect("state serialises"),
        );
        if let Some(source) = &self.source {
            data.insert("source".into(), source.clone());
        }
        if let Some(f) = &self.fence {
            data.insert("holder".into(), f.holder.clone());
            data.insert("term".into(), f.term.to_string());
        }
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(self.labels(None)),
                resource_version: stored.and_then(|s| s.resource_version.clone()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        let written = match stored {
            None => self.api.create(&Self::pp(), &cm).await,
            Some(_) => self.api.replace(&name, &Self::pp(), &cm).await,
        };
        match written {
            Ok(cm) => Ok(cm.metadata.resource_version),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(CopyError::Raced {
                namespace: self.namespace.clone(),
                name,
            }),
            Err(e) => Err(self.write_err(&name)(e)),
        }
    }

    /// Every record line in the cluster, in order.
    ///
    /// # Errors
    /// API errors, an object drover did not write, a missing or doubled record.
    pub async fn records(&self) -> Result<Vec<String>, CopyError> {
        let lp = ListParams::default().labels(&format!("{LABEL_TRAIL}={},{LABEL_SEQ}", self.name));
        let list = self
            .api
            .list(&lp)
            .await
            .map_err(self.read_err(&format!("-l {LABEL_TRAIL}={}", self.name)))?;
        let mut found = Vec::with_capacity(list.items.len());
        for cm in list.items {
            let name = cm.metadata.name.clone().unwrap_or_default();
            let data = cm.data.unwrap_or_default();
            if data.get("schema").map(String::as_str) != Some(RECORD_SCHEMA) {
                return Err(self.corrupt(&name, format!("schema is not `{RECORD_SCHEMA}`")));
            }
            let line = data
                .get("record")
                .ok_or_else(|| self.corrupt(&name, "no `record`"))?
                .clone();
            let rec: AuditRecord = serde_json::from_str(&line)
                .map_err(|e| self.corrupt(&name, format!("`record`: {e}")))?;
            if name != trail::record_object_name(&self.name, rec.seq) {
                return Err(self.corrupt(&name, format!("holds record {}", rec.seq)));
            }
            found.push((rec.seq, line));
        }
        trail::in_order(found).map_err(|source| CopyError::Gap {
            namespace: self.namespace.clone(),
            trail: self.name.clone(),
            source,
        })
    }

    /// Creates the object of record `seq`. When it exists already, holding the
    /// same line is success (a write whose answer was lost), anything else
    /// [`CopyError::RecordTaken`].
    ///
    /// # Errors
    /// As above, a record over the object size limit, API errors.
    pub async fn create_record(&self, seq: u64, line: &str) -> Result<(), CopyError> {
        trail::check_size(seq, line).map_err(|source| CopyError::TooLarge { source })?;
        let name = trail::record_object_name(&self.name, seq);
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(self.labels(Some(seq))),
                ..Default::default()
            },
            data: Some(
                [
                    ("schema".to_string(), RECORD_SCHEMA.to_string()),
                    ("record".to_string(), line.to_string()),
                ]
                .into_iter()
                .collect(),
            ),
            immutable: Some(true),
            ..Default::default()
        };
        match self.api.create(&Self::pp(), &cm).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let now = self
                    .api
                    .get_opt(&name)
                    .await
                    .map_err(self.read_err(&name))?;
                let same = now
                    .and_then(|c| c.data)
                    .and_then(|d| d.get("record").cloned())
                    .is_some_and(|l| l == line);
                if same {
                    Ok(())
                } else {
                    Err(CopyError::RecordTaken {
                        namespace: self.namespace.clone(),
                        name,
                    })
                }
            }
            Err(e) => Err(self.write_err(&name)(e)),
        }
    }

    /// Appends a record: fills in its sequence number and previous hash from the
    /// cache (which [`ClusterCopy::sync_down`] keeps equal to the cluster), creates
    /// its object, then appends it to the cache. Returns the record and the hash
    /// of its line.
    ///
    /// # Errors
    /// When either write fails; after a failed cache write the cluster has the
    /// record and the next [`ClusterCopy::sync_down`] brings it into the cache.
    pub async fn append(
        &self,
        log: &AuditLog,
        rec: AuditRecord,
    ) -> Result<(AuditRecord, String), CopyError> {
        let (rec, line) = log
            .prepare(rec)
            .map_err(|source| CopyError::CacheAudit { source })?;
        let written = async {
            self.create_record(rec.seq, &line).await?;
            log.write_line(&line)
                .map_err(|source| CopyError::CacheAudit { source })
        }
        .await;
        match &written {
            Ok(()) => self.cached.store(file_len(log), Ordering::Relaxed),
            Err(_) => self.fresh.store(false, Ordering::Relaxed),
        }
        written.map(|()| (rec, crate::core::audit::line_hash(&line)))
    }

    /// Saves the state in the cluster, then in the cache.
    ///
    /// # Errors
    /// As [`ClusterCopy::save_state`], or when the cache cannot be written.
    pub async fn save(&self, store: &StateStore, state: &SyncState) -> Result<(), CopyError> {
        let saved = async {
            let written = self.save_state(state).await?;
            store
                .save(state)
                .map_err(|source| CopyError::CacheState { source })?;
            self.remember(store, written)
        }
        .await;
        if saved.is_err() {
            self.fresh.store(false, Ordering::Relaxed);
        }
        saved
    }

    /// [`ClusterCopy::sync_down`] unless the cache is known to match the cluster:
    /// since the last failure, or because one metadata LIST of the trail's
    /// objects shows the cluster as this cache last saw it ([`ClusterCopy::unchanged`]).
    ///
    /// # Errors
    /// As [`ClusterCopy::sync_down`].
    pub async fn refresh(&self, store: &StateStore, log: &AuditLog) -> Result<(), CopyError> {
        // The cache is files on disk: what was true of it at the last read holds
        // only while they are still there, the trail as long as this process left
        // it (a stat, not a read, at every iteration).
        let intact = || store.exists() && file_len(log) == self.cached.load(Ordering::Relaxed);
        if self.fresh.load(Ordering::Relaxed) && intact() {
            return Ok(());
        }
        if self.unchanged(store, log).await? {
            tracing::debug!(object = %format!("{}/{}", self.namespace, self.state_object()), "the local cache is the cluster copy as last seen");
            self.fresh.store(true, Ordering::Relaxed);
            return Ok(());
        }
        self.sync_down(store, log).await?;
        Ok(())
    }

    /// Whether the cluster copy is exactly as this cache last saw it: the state
    /// object at the resourceVersion this cache last wrote or read, under this
    /// writer's fence and source, and the record objects exactly `1..=n` for the
    /// cache's `n` records. Objects are written before the cache, and record
    /// objects are immutable, so then the cache holds what the cluster holds and
    /// nothing needs to be read or written; any doubt is `false` (a full
    /// [`ClusterCopy::sync_down`]).
    ///
    /// # Errors
    /// When the trail's objects cannot be listed.
    pub async fn unchanged(&self, store: &StateStore, log: &AuditLog) -> Result<bool, CopyError> {
        let Some(seen) = Seen::load(store) else {
            return Ok(false);
        };
        let object = self.state_object();
        if seen.namespace != self.namespace
            || seen.object != object
            || seen.source != self.source
            || seen.fence != self.fence.as_ref().map(SeenFence::of)
        {
            return Ok(false);
        }
        let Ok(local) = log.lines() else {
            return Ok(false);
        };
        let lp = ListParams::default().labels(&format!("{LABEL_TRAIL}={}", self.name));
        let list = self
            .api
            .list_metadata(&lp)
            .await
            .map_err(self.read_err(&format!("-l {LABEL_TRAIL}={}", self.name)))?;
        let mut state_rv = None;
        let mut records = std::collections::BTreeSet::new();
        for item in list.items {
            let name = item.metadata.name.unwrap_or_default();
            if name == object {
                state_rv = item.metadata.resource_version;
            } else {
                records.insert(name);
            }
        }
        let expected: std::collections::BTreeSet<String> = (1..=local.len() as u64)
            .map(|seq| trail::record_object_name(&self.name, seq))
            .collect();
        let same = state_rv.is_some() && state_rv == seen.resource_version && records == expected;
        if same {
            self.cached.store(file_len(log), Ordering::Relaxed);
        }
        Ok(same)
    }

    /// Notes what the cache now matches in the cluster (see [`ClusterCopy::unchanged`]).
    /// A note that cannot be written only costs the next start a full read.
    fn remember(
        &self,
        store: &StateStore,
        resource_version: Option<String>,
    ) -> Result<(), CopyError> {
        let seen = Seen {
            namespace: self.namespace.clone(),
            object: self.state_object(),
            resource_version,
            source: self.source.clone(),
            fence: self.fence.as_ref().map(SeenFence::of),
        };
        if let Err(error) = seen.save(store) {
            tracing::warn!(%error, "cannot note the cluster copy's version in the state directory; the next start reads it whole");
            Seen::forget(store);
        }
        Ok(())
    }

    /// Makes the cluster copy and the local cache one: records only the cache has
    /// (a trail from before the cluster copy) are uploaded, then the cache is
    /// rewritten from the cluster; the cluster's state wins over the cache's (the
    /// cache's is uploaded when the cluster has none). The state is then written
    /// back under this writer's fence, which claims it for this leader's term and
    /// fences off an earlier leader that has not noticed yet.
    ///
    /// # Errors
    /// When the two disagree on a record, the cluster trail has a gap, a write is
    /// fenced off, or the API or the cache fail.
    #[tracing::instrument(name = "sync-down", skip_all, fields(trail = %self.name))]
    pub async fn sync_down(
        &self,
        store: &StateStore,
        log: &AuditLog,
    ) -> Result<SyncState, CopyError> {
        Seen::forget(store);
        // Whose state this is comes first: nothing of another sync's is cached.
        let stored = self.read_state().await?;
        if let Some(StoredState {
            source: Some(theirs),
            ..
        }) = &stored
            && let Some(mine) = self.source.as_ref().filter(|mine| *mine != theirs)
        {
            return Err(CopyError::OtherSource {
                namespace: self.namespace.clone(),
                name: self.state_object(),
                theirs: theirs.clone(),
                mine: mine.clone(),
            });
        }
        let cluster = self.records().await?;
        let local = log
            .lines()
            .map_err(|source| CopyError::CacheAudit { source })?;
        let lines = match trail::merge(&cluster, &local).map_err(|source| CopyError::Diverged {
            namespace: self.namespace.clone(),
            trail: self.name.clone(),
            path: log.path.clone(),
            source,
        })? {
            Merge::FromCluster => cluster,
            Merge::Upload { from } => {
                // Only an unbroken chain is uploaded: objects are never rewritten.
                log.verify(None)
                    .map_err(|source| CopyError::CacheAudit { source })?;
                tracing::warn!(
                    records = local.len() - from,
                    "uploading audit records only the local cache has"
                );
                for (i, line) in local.iter().enumerate().skip(from) {
                    self.create_record(i as u64 + 1, line).await?;
                }
                local
            }
        };
        log.replace(&lines)
            .map_err(|source| CopyError::CacheAudit { source })?;
        let state = match &stored {
            Some(s) => s.state.clone(),
            None => store
                .load()
                .map_err(|source| CopyError::CacheState { source })?,
        };
        // Claimed under this writer's fence; nothing is written when the object
        // already says exactly that (a restart in the same term, or no election).
        let written = match &stored {
            Some(s) if s.state == state && s.fence == self.fence && s.source == self.source => {
                s.resource_version.clone()
            }
            _ => self.save_state(&state).await?,
        };
        store
            .save(&state)
            .map_err(|source| CopyError::CacheState { source })?;
        self.remember(store, written)?;
        self.cached.store(file_len(log), Ordering::Relaxed);
        tracing::info!(records = lines.len(), object = %format!("{}/{}", self.namespace, self.state_object()), "the local state is the cluster copy");
        self.fresh.store(true, Ordering::Relaxed);
        Ok(state)
    }
}

/// The size of the audit file, 0 when there is none (as [`AuditLog::lines`] reads
/// a missing file as an empty trail).
fn file_len(log: &AuditLog) -> u64 {
    std::fs::metadata(&log.path).map_or(0, |m| m.len())
}

/// What the local cache last matched in the cluster: `cluster-copy.json` in the
/// state directory, written after the cache, so a crash in between leaves an
/// old note (or none) and the next start reads the cluster copy whole.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Seen {
    namespace: String,
    object: String,
    resource_version: Option<String>,
    source: Option<String>,
    fence: Option<SeenFence>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct SeenFence {
    holder: String,
    term: i64,
}

impl SeenFence {
    fn of(f: &Fence) -> SeenFence {
        SeenFence {
            holder: f.holder.clone(),
            term: f.term,
        }
    }
}

impl Seen {
    const FILE: &str = "cluster-copy.json";

    fn load(store: &StateStore) -> Option<Seen> {
        let bytes = std::fs::read(store.dir.join(Self::FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn save(&self, store: &StateStore) -> std::io::Result<()> {
        let tmp = store.dir.join("cluster-copy.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self).expect("a note serialises"))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, store.dir.join(Self::FILE))?;
        super::state::sync_dir(&store.dir)
    }

    /// Removes the note before the cache is rewritten, so that a crash midway
    /// leaves none.
    fn forget(store: &StateStore) {
        match std::fs::remove_file(store.dir.join(Self::FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(%error, "cannot remove the note of the cluster copy's version")
            }
        }
    }
}

/// Runs `f` to completion from synchronous code inside the sync loop's
/// multi-threaded runtime (a checkpoint, an operator action's record).
pub fn blocking<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::apply::ApplyError;
    use crate::shell::sync::SyncError;

    fn stale() -> CopyError {
        CopyError::Fenced {
            namespace: "drover-system".into(),
            name: "drover-state-drover".into(),
            source: FenceRefusal::Stale {
                holder: "b".into(),
                term: 2,
                mine: 1,
            },
        }
    }

    #[test]
    fn a_fenced_state_write_stops_sync_whether_it_failed_at_a_checkpoint_or_at_the_end() {
        let at_end = SyncError::SaveCopy {
            source: Box::new(stale()),
        };
        assert!(at_end.is_fenced());
        let at_checkpoint = SyncError::Apply {
            source: Box::new(ApplyError::Checkpoint {
                step: "stage canary".into(),
                source: Box::new(stale()),
            }),
        };
        assert!(at_checkpoint.is_fenced());
        assert!(
            crate::core::errors::chain(&at_checkpoint).contains("after this replica's term 1"),
            "{}",
            crate::core::errors::chain(&at_checkpoint)
        );
        let too_large = SyncError::SaveCopy {
            source: Box::new(CopyError::TooLarge {
                source: crate::core::trail::TooLarge { seq: 1, bytes: 1 },
            }),
        };
        assert!(!too_large.is_fenced());
        assert!(!too_large.is_transient());
    }
}
