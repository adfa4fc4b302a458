//! The audit anchor: a ConfigMap in the cluster that holds how long the audit trail
//! is and the hashes of its first and last records, updated after every append.
//!
//! Owns: reading and writing that object (optimistic concurrency on its
//! resourceVersion). Why the cluster: whoever can write the state directory can
//! shorten `audit.jsonl` and `state.json` together, but not silently rewrite an
//! object in the API server, whose writes are authorised and audited elsewhere.
//! Must not: decide whether a trail fits its anchor (that is
//! [`crate::core::audit::check_anchor`]).
//!
//! The object's name is [`anchor_name`] of the trail's first line; its data are
//! string keys (`schema`, `records`, `first`, `head`, and informational `commit`,
//! `fleet`), so a later version can add keys (the chain itself) without a new kind.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::core::audit::{ANCHOR_SCHEMA, AnchorState, anchor_name};
use crate::core::render::{LABEL_MANAGED_BY, MANAGER};

/// The label every anchor carries, so an operator can list them.
pub const LABEL_ANCHOR: &str = "drover.dev/audit-anchor";

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("reading the audit anchor configmap {namespace}/{name}: {source}")]
    Read {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("writing the audit anchor configmap {namespace}/{name}: {source}")]
    Write {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("the audit anchor configmap {namespace}/{name} is not one drover wrote: {defect}")]
    Corrupt {
        namespace: String,
        name: String,
        defect: AnchorDefect,
    },
    #[error(
        "the audit anchor configmap {namespace}/{name} changed while drover updated it (another writer?)"
    )]
    Raced { namespace: String, name: String },
}

impl AnchorError {
    /// Whether trying again later may succeed (the API server unreachable or busy).
    pub fn is_transient(&self) -> bool {
        match self {
            AnchorError::Read { source, .. } | AnchorError::Write { source, .. } => match source {
                kube::Error::Api(s) => s.code == 429 || s.code >= 500,
                kube::Error::HyperError(_) | kube::Error::Service(_) => true,
                _ => false,
            },
            AnchorError::Corrupt { .. } | AnchorError::Raced { .. } => false,
        }
    }
}

/// What is wrong with an anchor drover did not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorDefect {
    #[error("no `{key}`")]
    MissingKey { key: String },
    #[error("schema `{schema}`, expected `{ANCHOR_SCHEMA}`")]
    Schema { schema: String },
    #[error("`records` is `{value}`, not a count")]
    NotACount { value: String },
    #[error("`{key}` is not a SHA-256 hash")]
    NotAHash { key: String },
}

/// An anchor as read: what it holds and the version to update it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchored {
    pub state: AnchorState,
    pub resource_version: Option<String>,
}

/// The anchors of trails in one namespace.
#[derive(Clone)]
pub struct AnchorStore {
    api: Api<ConfigMap>,
    pub namespace: String,
}

impl AnchorStore {
    pub fn new(client: kube::Client, namespace: &str) -> AnchorStore {
        AnchorStore {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
        }
    }

    /// The anchor of the trail whose first line hashes to `first`.
    pub fn name_for(first: &str) -> String {
        anchor_name(first)
    }

    /// Reads the anchor `name`; `None` when there is none.
    ///
    /// # Errors
    /// When it cannot be read, or holds something drover did not write.
    pub async fn get(&self, name: &str) -> Result<Option<Anchored>, AnchorError> {
        let cm = self
            .api
            .get_opt(name)
            .await
            .map_err(|source| AnchorError::Read {
                namespace: self.namespace.clone(),
                name: name.to_string(),
                source,
            })?;
        let Some(cm) = cm else {
            return Ok(None);
        };
        let corrupt = |defect: AnchorDefect| AnchorError::Corrupt {
            namespace: self.namespace.clone(),
            name: name.to_string(),
            defect,
        };
        let data = cm.data.unwrap_or_default();
        let field = |k: &str| {
            data.get(k)
                .cloned()
                .ok_or_else(|| corrupt(AnchorDefect::MissingKey { key: k.to_string() }))
        };
        let schema = field("schema")?;
        if schema != ANCHOR_SCHEMA {
            return Err(corrupt(AnchorDefect::Schema { schema }));
        }
        let records = field("records")?;
        let records: u64 = records.parse().map_err(|_| {
            corrupt(AnchorDefect::NotACount {
                value: records.clone(),
            })
        })?;
        let hex64 = |k: &str| {
            let v = field(k)?;
            if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(v)
            } else {
                Err(corrupt(AnchorDefect::NotAHash { key: k.to_string() }))
            }
        };
        Ok(Some(Anchored {
            state: AnchorState {
                records,
                first: hex64("first")?,
                head: hex64("head")?,
            },
            resource_version: cm.metadata.resource_version,
        }))
    }

    /// Writes `state` as the anchor `name`: created when `from` is `None`, else
    /// replaced only if it is still at `from`'s resourceVersion. When someone else
    /// wrote it in between, it is read again: already holding `state` is success,
    /// anything else is [`AnchorError::Raced`].
    ///
    /// # Errors
    /// When it cannot be written, or was changed by another writer.
    pub async fn put(
        &self,
        name: &str,
        state: &AnchorState,
        from: Option<&Anchored>,
        info: &BTreeMap<String, String>,
    ) -> Result<(), AnchorError> {
        let mut data: BTreeMap<String, String> = info.clone();
        data.insert("schema".into(), ANCHOR_SCHEMA.into());
        data.insert("records".into(), state.records.to_string());
        data.insert("first".into(), state.first.clone());
        data.insert("head".into(), state.head.clone());
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(self.namespace.clone()),
                labels: Some(
                    [
                        (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
                        (LABEL_ANCHOR.to_string(), "true".to_string()),
                    ]
                    .into_iter()
                    .collect(),
                ),
                resource_version: from.and_then(|f| f.resource_version.clone()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        let pp = PostParams {
            field_manager: Some(MANAGER.to_string()),
            ..Default::default()
        };
        let written = match from {
            None => self.api.create(&pp, &cm).await,
            Some(_) => self.api.replace(name, &pp, &cm).await,
        };
        match written {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => match self.get(name).await? {
                Some(now) if now.state == *state => Ok(()),
                _ => Err(AnchorError::Raced {
                    namespace: self.namespace.clone(),
                    name: name.to_string(),
                }),
            },
            Err(source) => Err(AnchorError::Write {
                namespace: self.namespace.clone(),
                name: name.to_string(),
                source,
            }),
        }
    }
}

/// An anchor's read or write failure as a [`TrailError`].
fn anchor(source: AnchorError) -> TrailError {
    TrailError::Anchor { source }
}

/// Why sync cannot go on with its trail and anchor.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    #[error("reading the audit trail")]
    ReadTrail { source: super::audit::AuditError },
    #[error(transparent)]
    Anchor { source: AnchorError },
    #[error(
        "{path}: does not fit its anchor configmap {namespace}/{name}: {source}; drover writes no more records to it (restore the trail, or start a new state directory: a new trail gets its own anchor)"
    )]
    Mismatch {
        path: std::path::PathBuf,
        namespace: String,
        name: String,
        source: crate::core::audit::AnchorMismatch,
    },
    #[error(
        "{path}: its records name the anchor configmap {namespace}/{name}, which is gone; drover writes no more records to this trail"
    )]
    Missing {
        path: std::path::PathBuf,
        namespace: String,
        name: String,
    },
}

impl TrailError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, TrailError::Anchor { source } if source.is_transient())
    }
}

/// The anchor of sync's own trail: checked before every append (a trail that lost
/// records is never extended, so a shortening cannot be papered over) and updated
/// after it. The namespace is the one the trail's records name, else (a new trail,
/// or one from before anchoring) the configured one.
pub struct TrailAnchor {
    client: kube::Client,
    configured: String,
    /// The anchor may not hold the whole trail: at start, and after an update that
    /// failed. The next [`TrailAnchor::catch_up`] checks and updates it.
    behind: std::sync::atomic::AtomicBool,
}

impl TrailAnchor {
    pub fn new(client: kube::Client, configured_namespace: &str) -> TrailAnchor {
        TrailAnchor {
            client,
            configured: configured_namespace.to_string(),
            behind: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Where the trail's next record is anchored, and whether a record already
    /// named it.
    fn location(
        &self,
        log: &super::audit::AuditLog,
    ) -> Result<(crate::core::audit::AnchorRef, bool), TrailError> {
        let named = log
            .last()
            .map_err(|source| TrailError::ReadTrail { source })?
            .and_then(|(rec, _)| rec.anchor);
        Ok(match named {
            Some(a) => (a, true),
            None => (
                crate::core::audit::AnchorRef {
                    kind: "ConfigMap".into(),
                    namespace: self.configured.clone(),
                },
                false,
            ),
        })
    }

    /// Checks the trail against its anchor, bringing an anchor that is behind up to
    /// date (a crash or an unreachable API server between an append and its update).
    /// Returns the anchor reference for the next record and the anchor as it now is.
    ///
    /// # Errors
    /// [`TrailError::Mismatch`] or [`TrailError::Missing`] when records were
    /// removed or rewritten, or the anchor deleted; API errors (transient ones to be
    /// retried).
    pub async fn check(
        &self,
        log: &super::audit::AuditLog,
    ) -> Result<(crate::core::audit::AnchorRef, Option<Anchored>), TrailError> {
        let (at, named) = self.location(log)?;
        let hashes = log
            .line_hashes()
            .map_err(|source| TrailError::ReadTrail { source })?;
        let Some(first) = hashes.first() else {
            return Ok((at, None));
        };
        let store = AnchorStore::new(self.client.clone(), &at.namespace);
        let name = AnchorStore::name_for(first);
        let whole = AnchorState {
            records: hashes.len() as u64,
            first: first.clone(),
            head: hashes[hashes.len() - 1].clone(),
        };
        let anchored = match store.get(&name).await.map_err(anchor)? {
            None if named => {
                return Err(TrailError::Missing {
                    path: log.path.clone(),
                    namespace: at.namespace,
                    name,
                });
            }
            None => {
                tracing::warn!(anchor = %format!("{}/{name}", at.namespace), records = hashes.len(), "anchoring a trail written before anchoring");
                store
                    .put(&name, &whole, None, &BTreeMap::new())
                    .await
                    .map_err(anchor)?;
                store.get(&name).await.map_err(anchor)?
            }
            Some(a) => match crate::core::audit::check_anchor(&a.state, &hashes) {
                Err(source) => {
                    return Err(TrailError::Mismatch {
                        path: log.path.clone(),
                        namespace: at.namespace,
                        name,
                        source,
                    });
                }
                Ok(crate::core::audit::AnchorFit::Exact) => Some(a),
                Ok(crate::core::audit::AnchorFit::Behind { anchored }) => {
                    tracing::warn!(anchor = %format!("{}/{name}", at.namespace), anchored, records = hashes.len(), "the audit anchor was behind the trail; anchoring the rest");
                    store
                        .put(&name, &whole, Some(&a), &BTreeMap::new())
                        .await
                        .map_err(anchor)?;
                    store.get(&name).await.map_err(anchor)?
                }
            },
        };
        self.behind
            .store(false, std::sync::atomic::Ordering::Relaxed);
        Ok((at, anchored))
    }

    /// [`TrailAnchor::check`] when the anchor may be behind; nothing otherwise.
    ///
    /// # Errors
    /// As [`TrailAnchor::check`].
    pub async fn catch_up(&self, log: &super::audit::AuditLog) -> Result<(), TrailError> {
        if self.behind.load(std::sync::atomic::Ordering::Relaxed) {
            self.check(log).await?;
        }
        Ok(())
    }

    /// Updates the anchor after an append: `before` is what [`TrailAnchor::check`]
    /// returned. A failure is logged and left for the next
    /// [`TrailAnchor::catch_up`]: the record is written, and failing the step now
    /// would only make sync write it again.
    pub async fn after_append(
        &self,
        log: &super::audit::AuditLog,
        at: &crate::core::audit::AnchorRef,
        before: Option<&Anchored>,
        info: &BTreeMap<String, String>,
    ) -> Result<(), TrailError> {
        let result = async {
            let hashes = log
                .line_hashes()
                .map_err(|source| TrailError::ReadTrail { source })?;
            let (Some(first), Some(head)) = (hashes.first(), hashes.last()) else {
                return Ok(());
            };
            let state = AnchorState {
                records: hashes.len() as u64,
                first: first.clone(),
                head: head.clone(),
            };
            let store = AnchorStore::new(self.client.clone(), &at.namespace);
            store
                .put(&AnchorStore::name_for(first), &state, before, info)
                .await
                .map_err(anchor)?;
            Ok::<(), TrailError>(())
        }
        .await;
        if result.is_err() {
            self.behind
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }
}
