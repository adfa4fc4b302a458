//! The fleet's control object in the cluster: the ConfigMap `drover-control` in the
//! fleet's namespace, holding each fleet's [`Control`] value as JSON under the key
//! `<fleet>.json`, so every replica and every CLI reads the same pause and hold.
//!
//! Why a ConfigMap and not an annotation on the Lease: the Lease exists only with
//! `--leader-elect`, while `drover apply` and a single replica need the pause too; a
//! ConfigMap is readable with plain `kubectl get`, and its `resourceVersion` gives
//! optimistic concurrency. One object per namespace with a key per fleet (fleets
//! may share a namespace), so RBAC can name it: `resourceNames: [drover-control]`.
//!
//! Owns: reading and writing that object. Writes are read-modify-write with the
//! read's `resourceVersion` as precondition (a create when there is none yet), and
//! are redone from a fresh read on a conflict, so two CLIs never lose each other's
//! change. The object carries drover's labels. Must not: decide what a control
//! value means (see [`crate::core::control`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};

use super::cluster::Cluster;
use crate::core::control::{self, Change, Clearance, Control, ControlError};
use crate::core::render::{LABEL_MANAGED_BY, LABEL_NAME, MANAGER};

/// The control object's name.
pub const NAME: &str = "drover-control";
/// How many times a write is redone after a conflict before it gives up.
const ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ControlStoreError {
    #[error("reading ConfigMap {namespace}/{name}")]
    Read {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("ConfigMap {namespace}/{name}, key {key}")]
    Parse {
        namespace: String,
        name: String,
        key: String,
        source: ControlError,
    },
    #[error("writing ConfigMap {namespace}/{name}")]
    Write {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error(
        "writing ConfigMap {namespace}/{name}: it changed under every one of {ATTEMPTS} attempts"
    )]
    Contended { namespace: String, name: String },
}

/// The control object of one fleet.
#[derive(Clone)]
pub struct ControlStore {
    api: Api<ConfigMap>,
    pub namespace: String,
    pub name: String,
    /// The fleet's key in the object's data.
    pub key: String,
}

impl ControlStore {
    /// The control object of the fleet `cluster` is scoped to.
    pub fn of(cluster: &Cluster) -> ControlStore {
        ControlStore {
            api: Api::namespaced(cluster.client.clone(), &cluster.namespace),
            namespace: cluster.namespace.clone(),
            name: NAME.to_string(),
            key: format!("{}.json", cluster.fleet),
        }
    }

    /// The fleet's control value (the default when the object or the fleet's key
    /// does not exist yet: never paused) and the object's resourceVersion (`None`
    /// when there is no object).
    ///
    /// # Errors
    /// When the object cannot be read, or holds a value that cannot be read
    /// exactly one way.
    pub async fn read(&self) -> Result<(Control, Option<ConfigMap>), ControlStoreError> {
        let cm = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| ControlStoreError::Read {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                source,
            })?;
        let Some(cm) = cm else {
            return Ok((Control::default(), None));
        };
        let Some(text) = cm.data.as_ref().and_then(|d| d.get(&self.key)) else {
            return Ok((Control::default(), Some(cm)));
        };
        let value = Control::parse(text).map_err(|source| ControlStoreError::Parse {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            key: self.key.clone(),
            source,
        })?;
        Ok((value, Some(cm)))
    }

    /// What the control object allows now; an object that cannot be read closes
    /// the gate.
    pub async fn gate(&self) -> (Clearance, Option<Control>) {
        match self.read().await {
            Ok((value, _)) => (control::gate::<String>(Ok(Some(&value))), Some(value)),
            Err(e) => (
                control::gate(Err::<Option<&Control>, _>(crate::core::errors::chain(&e))),
                None,
            ),
        }
    }

    /// Changes the control value with `change`, atomically: read, change, write
    /// with the read's resourceVersion; on a conflict, again from a fresh read.
    /// Safe to retry: a change that finds the value already so writes nothing.
    ///
    /// # Errors
    /// When the object cannot be read or written, or keeps changing under us.
    pub async fn update(
        &self,
        mut change: impl FnMut(&mut Control) -> Change,
    ) -> Result<(Change, Control), ControlStoreError> {
        for _ in 0..ATTEMPTS {
            let (mut value, existing) = self.read().await?;
            let done = change(&mut value);
            if done == Change::Already {
                return Ok((done, value));
            }
            let version = existing
                .as_ref()
                .and_then(|c| c.metadata.resource_version.clone());
            let cm = self.object(&value, existing);
            let pp = PostParams {
                field_manager: Some(MANAGER.to_string()),
                ..Default::default()
            };
            let written = match version {
                Some(_) => self.api.replace(&self.name, &pp, &cm).await,
                None => self.api.create(&pp, &cm).await,
            };
            match written {
                Ok(_) => return Ok((done, value)),
                // 409: changed (or created) since we read it; read again.
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(source) => {
                    return Err(ControlStoreError::Write {
                        namespace: self.namespace.clone(),
                        name: self.name.clone(),
                        source,
                    });
                }
            }
        }
        Err(ControlStoreError::Contended {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        })
    }

    /// The object to write: the one read (its resourceVersion the precondition,
    /// other fleets' keys kept) with this fleet's key set, or a new one.
    fn object(&self, value: &Control, existing: Option<ConfigMap>) -> ConfigMap {
        let mut cm = existing.unwrap_or_else(|| ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        });
        let labels = cm.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(LABEL_NAME.to_string(), MANAGER.to_string());
        labels.insert(LABEL_MANAGED_BY.to_string(), MANAGER.to_string());
        cm.metadata.managed_fields = None;
        cm.data
            .get_or_insert_with(BTreeMap::new)
            .insert(self.key.clone(), value.to_json());
        cm
    }
}

/// What the rollout driver asks before it writes a stage: the gate, with each
/// control value read handed to `seen` (the sync records new events there).
pub struct Controls<'a> {
    pub store: ControlStore,
    pub seen: Box<dyn FnMut(&Control) + Send + 'a>,
    /// The value the last [`Controls::gate`] read, if it could.
    pub last: Option<Control>,
}

impl Controls<'_> {
    /// Controls that only read the gate.
    pub fn reading(store: ControlStore) -> Controls<'static> {
        Controls {
            store,
            seen: Box::new(|_| {}),
            last: None,
        }
    }

    pub async fn gate(&mut self) -> Clearance {
        let (gate, value) = self.store.gate().await;
        if let Some(v) = &value {
            (self.seen)(v);
        }
        self.last = value;
        gate
    }
}
