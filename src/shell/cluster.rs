//! The Kubernetes API edge: labelled LISTs, server-side apply (real and dry run),
//! deletes, watches of rollouts and pods.
//!
//! Owns: every request drover makes to the API server, with field manager `drover`.
//! Must not: decide what to change (that is the plan) or print.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt as _, stream};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::config::KubeConfigOptions;
use kube::{Client, Config};
use serde_json::Value as JsonValue;

use crate::core::plan::NodeInfo;
use crate::core::render::{LABEL_FLEET, MANAGER, Manifest};
use crate::core::rollout::{PodHealth, RolloutStatus};

/// How many dry runs or applies run at once.
pub const CONCURRENCY: usize = 16;

/// DaemonSets per page of the fleet's LIST in a plan: bounds the response body and
/// its decoded form held at once (a DaemonSet is about 10 KB of JSON with its
/// managedFields), while a fleet of up to 500 is still read in one request (a no-op
/// sync of 500 makes two: this LIST and the Nodes'). 500 is kubectl's chunk size.
pub const LIST_PAGE: u32 = 500;

/// Objects per page of the LIST behind a rollout's watches, which run during every
/// stage: smaller, since a page of 500 DaemonSets was a 20 MB peak mid-rollout.
pub const WATCH_PAGE: u32 = 100;

/// Drops what the API server keeps for itself and drover never reads from a
/// DaemonSet: `metadata.managedFields` (often half the object) and `status`. Both
/// are removed by normalisation before any comparison, so a stripped object plans
/// exactly as the full one; rollout status comes from watches, not from these.
pub fn strip_server_fields(obj: &mut JsonValue) {
    if let Some(m) = obj.as_object_mut() {
        m.shift_remove("status");
        if let Some(meta) = m.get_mut("metadata").and_then(JsonValue::as_object_mut) {
            meta.shift_remove("managedFields");
        }
    }
}

/// One page of a LIST as the API server sent it: each item is decoded on its own
/// and handed to `each`, so the page is held as text plus one object, never as
/// 500 typed objects with their managed fields. Returns the continue token.
fn list_page(
    text: &str,
    mut each: impl FnMut(JsonValue),
) -> Result<Option<String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Page<'a> {
        #[serde(default)]
        metadata: Option<kube::core::ListMeta>,
        #[serde(borrow, default)]
        items: Vec<&'a serde_json::value::RawValue>,
    }
    let page: Page<'_> = serde_json::from_str(text)?;
    for raw in page.items {
        each(serde_json::from_str(raw.get())?);
    }
    Ok(page
        .metadata
        .and_then(|m| m.continue_)
        .filter(|c| !c.is_empty()))
}

/// A field owned by another manager that an apply would take over (the core's
/// type: the guard decides on it).
pub use crate::core::guard::Conflict;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot load kubeconfig: {source}")]
    Kubeconfig {
        source: kube::config::KubeconfigError,
    },
    #[error("cannot load kubeconfig: {source}")]
    InferConfig {
        source: kube::config::InferConfigError,
    },
    #[error("cannot make a client for the cluster: {source}")]
    Client { source: kube::Error },
    #[error("listing {what}: {source}")]
    List { what: String, source: kube::Error },
    #[error("dry-run apply of DaemonSet {name}: {source}")]
    DryRun { name: String, source: kube::Error },
    #[error("applying DaemonSet {name}: {source}")]
    Apply { name: String, source: kube::Error },
    #[error("DaemonSet {name}: {} field(s) are owned by another field manager: {}; set `forceConflicts: true` in the Fleet to take them over", conflicts.len(), conflicts.iter().map(|c| format!("{} (manager {})", c.field, c.manager)).collect::<Vec<_>>().join(", "))]
    Conflict {
        name: String,
        conflicts: Vec<Conflict>,
    },
    #[error("deleting DaemonSet {name}: {source}")]
    Delete { name: String, source: kube::Error },
    #[error("reading {what}: {source}")]
    Get { what: String, source: kube::Error },
    #[error("DaemonSet {name} is still present {waited} after it was deleted (a finalizer?)")]
    StillPresent { name: String, waited: String },
    /// `kind` is ``kind `K` of `apiVersion` ``.
    #[error("the cluster does not serve {kind} (a companion object's kind): {source}")]
    ResolveKind { kind: String, source: kube::Error },
    #[error("dry-run apply of companion {object}: {source}")]
    CompanionDryRun { object: String, source: kube::Error },
    #[error("applying companion {object}: {source}")]
    ApplyCompanion { object: String, source: kube::Error },
    #[error("deleting companion {object}: {source}")]
    DeleteCompanion { object: String, source: kube::Error },
}

/// A companion object's kind as the cluster serves it.
#[derive(Debug, Clone)]
pub struct CompanionKind {
    pub resource: kube::discovery::ApiResource,
    pub namespaced: bool,
}

impl ClusterError {
    /// Whether retrying later may succeed (API server unreachable, overloaded, 5xx).
    pub fn is_transient(&self) -> bool {
        let source = match self {
            ClusterError::List { source, .. }
            | ClusterError::ResolveKind { source, .. }
            | ClusterError::CompanionDryRun { source, .. }
            | ClusterError::ApplyCompanion { source, .. }
            | ClusterError::DeleteCompanion { source, .. }
            | ClusterError::DryRun { source, .. }
            | ClusterError::Apply { source, .. }
            | ClusterError::Delete { source, .. }
            | ClusterError::Get { source, .. } => source,
            _ => return false,
        };
        match source {
            kube::Error::Api(s) => s.code == 429 || s.code >= 500,
            kube::Error::HyperError(_) | kube::Error::Service(_) => true,
            _ => false,
        }
    }
}

/// A connection to one cluster, scoped to one fleet and namespace.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
    pub fleet: String,
    /// The API server URL, for the audit trail.
    pub server: String,
    /// Requests made through this connection (and its clones), for metrics.
    pub requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The cluster's identity once read: it never changes, so it is read at most
    /// once per connection (and only when a record needs it).
    pub identity: std::sync::Arc<tokio::sync::OnceCell<String>>,
}

impl Cluster {
    /// Connects with the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or in-cluster
    /// config, optionally choosing a context.
    ///
    /// # Errors
    /// When no usable configuration is found.
    pub async fn connect(
        context: Option<&str>,
        namespace: &str,
        fleet: &str,
    ) -> Result<Cluster, ClusterError> {
        let config = match context {
            Some(ctx) => Config::from_kubeconfig(&KubeConfigOptions {
                context: Some(ctx.to_string()),
                ..Default::default()
            })
            .await
            .map_err(|source| ClusterError::Kubeconfig { source })?,
            None => Config::infer()
                .await
                .map_err(|source| ClusterError::InferConfig { source })?,
        };
        let mut config = config;
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(concat!("drover/", env!("CARGO_PKG_VERSION"))),
        ));
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|source| ClusterError::Client { source })?;
        Ok(Cluster {
            client,
            namespace: namespace.to_string(),
            fleet: fleet.to_string(),
            server,
            requests: Default::default(),
            identity: Default::default(),
        })
    }

    /// The same connection for another fleet or namespace.
    pub fn scoped(&self, namespace: &str, fleet: &str) -> Cluster {
        Cluster {
            namespace: namespace.to_string(),
            fleet: fleet.to_string(),
            ..self.clone()
        }
    }

    fn count(&self) {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn daemonsets(&self) -> Api<DaemonSet> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The label selector of everything this fleet owns.
    pub fn fleet_selector(&self) -> String {
        format!("{LABEL_FLEET}={}", self.fleet)
    }

    /// The label selector of everything labelled with one of `fleets` (this fleet's
    /// name and the names it had before). Names are DNS labels (validated), so they
    /// cannot change the selector's meaning.
    pub fn fleets_selector(fleets: &[String]) -> String {
        format!("{LABEL_FLEET} in ({})", fleets.join(","))
    }

    /// Every DaemonSet labelled with one of `fleets`, in every namespace: what the
    /// fleet owns wherever it is (a namespace move leaves copies behind), as JSON
    /// without [`strip_server_fields`], one page of at most [`LIST_PAGE`] at a time:
    /// `each` sees every object once, so a caller that keeps only what it needs holds
    /// one page, never the whole fleet.
    ///
    /// # Errors
    /// When the API server cannot be reached or refuses (including an expired
    /// continue token: the next LIST starts over).
    pub async fn list_daemonsets(
        &self,
        fleets: &[String],
        mut each: impl FnMut(String, JsonValue),
    ) -> Result<(), ClusterError> {
        let params = ListParams::default()
            .labels(&Self::fleets_selector(fleets))
            .limit(LIST_PAGE);
        self.list_paged("/apis/apps/v1/daemonsets", params, "DaemonSets", |mut v| {
            strip_server_fields(&mut v);
            // List items lack their apiVersion and kind.
            if let Some(m) = v.as_object_mut() {
                m.insert("apiVersion".into(), "apps/v1".into());
                m.insert("kind".into(), "DaemonSet".into());
            }
            let Some(name) = v
                .pointer("/metadata/name")
                .and_then(JsonValue::as_str)
                .map(str::to_string)
            else {
                return;
            };
            each(name, v);
        })
        .await
    }

    /// Every object of a LIST at `path`, one page (of `params`' limit) at a time,
    /// each object handed to `each` as it is decoded (see [`list_page`]). `what`
    /// names the objects in errors.
    async fn list_paged(
        &self,
        path: &str,
        mut params: ListParams,
        what: &str,
        mut each: impl FnMut(JsonValue),
    ) -> Result<(), ClusterError> {
        let error = |source| ClusterError::List {
            what: what.into(),
            source,
        };
        loop {
            self.count();
            let request = kube::core::Request::new(path)
                .list(&params)
                .map_err(|source| error(kube::Error::BuildRequest(source)))?;
            let text = self.read_body(request).await.map_err(error)?;
            let next = list_page(&text, &mut each)
                .map_err(|source| error(kube::Error::SerdeError(source)))?;
            match next {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(()),
            }
        }
    }

    /// The body of a GET as text, read straight into one buffer (kube's
    /// `request_text` holds it three times over: the chunks, their concatenation
    /// and a copy; on a page of 500 DaemonSets that was most of a sync's heap). A
    /// body cut off midway is a transport failure, as a failed request is.
    async fn read_body(&self, request: http::Request<Vec<u8>>) -> Result<String, kube::Error> {
        use futures::AsyncReadExt as _;
        let mut body = self.client.request_stream(request).await?;
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes)
            .await
            .map_err(|e| kube::Error::Service(Box::new(e)))?;
        String::from_utf8(bytes).map_err(kube::Error::FromUtf8)
    }

    /// Whether a DaemonSet `name` exists in this namespace, and if so its
    /// `drover.dev/fleet` label: `None` when there is none, `Some(None)` when it has
    /// no such label. A metadata-only GET.
    ///
    /// # Errors
    /// When the API server cannot be reached or refuses.
    pub async fn owner_of(&self, name: &str) -> Result<Option<Option<String>>, ClusterError> {
        self.count();
        self.daemonsets()
            .get_metadata_opt(name)
            .await
            .map(|m| m.map(|m| m.metadata.labels.and_then(|mut l| l.remove(LABEL_FLEET))))
            .map_err(|source| ClusterError::Get {
                what: format!("DaemonSet {name}"),
                source,
            })
    }

    /// The uid of the DaemonSet `name` in this namespace, `None` when there is none.
    ///
    /// # Errors
    /// When the API server cannot be reached or refuses.
    pub async fn uid_of(&self, name: &str) -> Result<Option<String>, ClusterError> {
        self.count();
        self.daemonsets()
            .get_opt(name)
            .await
            .map(|ds| ds.and_then(|d| d.metadata.uid))
            .map_err(|source| ClusterError::Get {
                what: format!("DaemonSet {name}"),
                source,
            })
    }

    /// Waits until the DaemonSet `name` with `uid` is gone (or another object took
    /// its name), with kube-runtime's watch of one object, for at most `limit`.
    ///
    /// # Errors
    /// [`ClusterError::StillPresent`] when it is still there after `limit`;
    /// [`ClusterError::Delete`] (transient) when the watch fails.
    pub async fn wait_deleted(
        &self,
        name: &str,
        uid: &str,
        limit: Duration,
    ) -> Result<(), ClusterError> {
        use kube::runtime::wait::{await_condition, conditions};
        self.count();
        let gone = await_condition(self.daemonsets(), name, conditions::is_deleted(uid));
        match tokio::time::timeout(limit, gone).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ClusterError::Delete {
                name: name.to_string(),
                source: kube::Error::Service(Box::new(e)),
            }),
            Err(_) => Err(ClusterError::StillPresent {
                name: name.to_string(),
                waited: crate::core::syntax::format_duration(limit),
            }),
        }
    }

    /// What `manifest` would be if it were created new, although an object of its
    /// name exists (a replacement): a server-side-apply dry run of it under a name no
    /// object has, so the server's defaults are filled in as for any create, with
    /// the name put back. `None` when even that name is taken (then there is nothing
    /// to learn without a write).
    ///
    /// # Errors
    /// As [`Cluster::apply`].
    pub async fn dry_run_as_new(
        &self,
        manifest: &JsonValue,
    ) -> Result<Option<JsonValue>, ClusterError> {
        let name = manifest
            .pointer("/metadata/name")
            .and_then(JsonValue::as_str)
            .unwrap_or_default()
            .to_string();
        let scratch = format!(
            "drover-dry-run-{}",
            &crate::core::audit::digest(name.as_bytes())[..16]
        );
        let mut renamed = manifest.clone();
        renamed["metadata"]["name"] = JsonValue::String(scratch.clone());
        let ds = self.apply_raw(&scratch, &renamed, true, true).await?;
        if ds
            .metadata
            .resource_version
            .as_deref()
            .is_some_and(|v| !v.is_empty())
        {
            return Ok(None);
        }
        let mut v = serde_json::to_value(ds).unwrap_or(JsonValue::Null);
        strip_server_fields(&mut v);
        v["metadata"]["name"] = JsonValue::String(name);
        Ok(Some(v))
    }

    /// The resource of a companion kind: a default kind is a known built-in
    /// ([`crate::core::companion::DEFAULT_KINDS`]), any other is asked of the API
    /// server's discovery, and a kind it does not serve is an error (nothing is
    /// planned for a kind drover cannot read).
    ///
    /// # Errors
    /// [`ClusterError::ResolveKind`].
    pub async fn companion_kind(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<CompanionKind, ClusterError> {
        use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
        use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
        use k8s_openapi::api::scheduling::v1::PriorityClass;
        use kube::discovery::ApiResource;
        let builtin = match (api_version, kind) {
            ("v1", "ServiceAccount") => Some(ApiResource::erase::<ServiceAccount>(&())),
            ("v1", "Service") => Some(ApiResource::erase::<Service>(&())),
            ("v1", "ConfigMap") => Some(ApiResource::erase::<ConfigMap>(&())),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                Some(ApiResource::erase::<ClusterRole>(&()))
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                Some(ApiResource::erase::<ClusterRoleBinding>(&()))
            }
            ("rbac.authorization.k8s.io/v1", "Role") => Some(ApiResource::erase::<Role>(&())),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                Some(ApiResource::erase::<RoleBinding>(&()))
            }
            ("scheduling.k8s.io/v1", "PriorityClass") => {
                Some(ApiResource::erase::<PriorityClass>(&()))
            }
            _ => None,
        };
        if let Some(resource) = builtin {
            let namespaced = crate::core::companion::DEFAULT_KINDS
                .iter()
                .any(|(v, k, ns)| *v == api_version && *k == kind && *ns);
            return Ok(CompanionKind {
                resource,
                namespaced,
            });
        }
        self.count();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|source| ClusterError::ResolveKind {
                kind: format!("kind `{kind}` of `{api_version}`"),
                source,
            })?;
        Ok(CompanionKind {
            resource,
            namespaced: caps.scope == kube::discovery::Scope::Namespaced,
        })
    }

    /// Every object of a companion kind labelled with one of `fleets`, in
    /// `namespace` (a namespaced kind; the namespaces a fleet may put companions in
    /// are known, so drover needs no cluster-wide read of ConfigMaps or Services) or
    /// cluster-wide (a cluster-scoped kind: `None`), as JSON without
    /// [`strip_server_fields`].
    ///
    /// # Errors
    /// When the API server cannot be reached or refuses.
    pub async fn list_companions(
        &self,
        kind: &CompanionKind,
        namespace: Option<&str>,
        fleets: &[String],
    ) -> Result<Vec<JsonValue>, ClusterError> {
        use kube::api::DynamicObject;
        self.count();
        let api: Api<DynamicObject> = self.companion_api(kind, namespace);
        let params = ListParams::default().labels(&Self::fleets_selector(fleets));
        let list = api
            .list(&params)
            .await
            .map_err(|source| ClusterError::List {
                what: format!("{} objects of the fleet", kind.resource.kind),
                source,
            })?;
        Ok(list
            .items
            .into_iter()
            .map(|mut o| {
                // A list's items carry no apiVersion/kind of their own.
                o.types = Some(kube::api::TypeMeta {
                    api_version: kind.resource.api_version.clone(),
                    kind: kind.resource.kind.clone(),
                });
                serde_json::to_value(o).unwrap_or(JsonValue::Null)
            })
            .collect())
    }

    /// Whether the fleet (or one of its previous names) has any config ConfigMap
    /// (labelled `drover.dev/config`) in `namespace`: one metadata LIST of at most
    /// one item. A run whose git and base have no config files asks this once, so
    /// the ConfigMaps the last config file removed from git left behind are still
    /// found and pruned (docs/config-files.md).
    ///
    /// # Errors
    /// When the API server cannot be reached or refuses.
    pub async fn has_config_maps(
        &self,
        namespace: &str,
        fleets: &[String],
    ) -> Result<bool, ClusterError> {
        use k8s_openapi::api::core::v1::ConfigMap;
        self.count();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let params = ListParams::default()
            .labels(&format!(
                "{},{}",
                Self::fleets_selector(fleets),
                crate::core::render::LABEL_CONFIG
            ))
            .limit(1);
        let list = api
            .list_metadata(&params)
            .await
            .map_err(|source| ClusterError::List {
                what: "config ConfigMaps of the fleet".to_string(),
                source,
            })?;
        Ok(!list.items.is_empty())
    }

    /// A server-side-apply dry run of a companion object, with drover's field
    /// manager and force (as for DaemonSets), without server-owned fields; and
    /// whether an object of its name exists already.
    ///
    /// # Errors
    /// [`ClusterError::CompanionDryRun`].
    pub async fn dry_run_companion(
        &self,
        kind: &CompanionKind,
        object: &str,
        manifest: &JsonValue,
    ) -> Result<(JsonValue, bool), ClusterError> {
        use kube::api::DynamicObject;
        self.count();
        let name = manifest
            .pointer("/metadata/name")
            .and_then(JsonValue::as_str)
            .unwrap_or_default();
        let api: Api<DynamicObject> = match manifest
            .pointer("/metadata/namespace")
            .and_then(JsonValue::as_str)
        {
            Some(ns) if kind.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &kind.resource)
            }
            _ => Api::all_with(self.client.clone(), &kind.resource),
        };
        let pp = PatchParams::apply(MANAGER).dry_run().force();
        let o = api
            .patch(name, &pp, &Patch::Apply(manifest))
            .await
            .map_err(|source| ClusterError::CompanionDryRun {
                object: object.to_string(),
                source,
            })?;
        let exists = o
            .metadata
            .resource_version
            .as_deref()
            .is_some_and(|v| !v.is_empty());
        let mut v = serde_json::to_value(o).unwrap_or(JsonValue::Null);
        strip_server_fields(&mut v);
        Ok((v, exists))
    }

    fn companion_api(
        &self,
        kind: &CompanionKind,
        namespace: Option<&str>,
    ) -> Api<kube::api::DynamicObject> {
        match namespace {
            Some(ns) if kind.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &kind.resource)
            }
            _ => Api::all_with(self.client.clone(), &kind.resource),
        }
    }

    /// Server-side apply of a companion object with drover's field manager, forced
    /// (as DaemonSets are). Returns the uid of the object applied (a rollback deletes
    /// one it created only while it is still that object).
    ///
    /// # Errors
    /// [`ClusterError::ApplyCompanion`].
    pub async fn apply_companion(
        &self,
        kind: &CompanionKind,
        object: &str,
        manifest: &JsonValue,
    ) -> Result<Option<String>, ClusterError> {
        self.count();
        let name = manifest
            .pointer("/metadata/name")
            .and_then(JsonValue::as_str)
            .unwrap_or_default();
        let ns = manifest
            .pointer("/metadata/namespace")
            .and_then(JsonValue::as_str);
        let pp = PatchParams::apply(MANAGER).force();
        let applied = self
            .companion_api(kind, ns)
            .patch(name, &pp, &Patch::Apply(manifest))
            .await
            .map_err(|source| ClusterError::ApplyCompanion {
                object: object.to_string(),
                source,
            })?;
        Ok(applied.metadata.uid)
    }

    /// Deletes a companion object, only if it is still the one observed (`uid`
    /// precondition); one already gone is no error.
    ///
    /// # Errors
    /// [`ClusterError::DeleteCompanion`].
    pub async fn delete_companion(
        &self,
        kind: &CompanionKind,
        object: &str,
        namespace: Option<&str>,
        name: &str,
        uid: &str,
    ) -> Result<(), ClusterError> {
        self.count();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.companion_api(kind, namespace).delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(ClusterError::DeleteCompanion {
                object: object.to_string(),
                source,
            }),
        }
    }

    /// The Nodes (one LIST of up to [`LIST_PAGE`] a page), reduced to what
    /// blast-radius estimates need as each is decoded, sorted by name: a Node's
    /// status and managed fields are most of it, and no more than one is held.
    ///
    /// # Errors
    /// When the API server cannot be reached or refuses, or sends an object that is
    /// not a Node with a name.
    pub async fn list_nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let mut nodes = Vec::new();
        let mut bad = None;
        let params = ListParams::default().limit(LIST_PAGE);
        self.list_paged(
            "/api/v1/nodes",
            params,
            "Nodes",
            |v| match crate::core::plan::node_info(nodes.len(), &v) {
                Ok(n) => nodes.push(n),
                Err(e) => {
                    bad.get_or_insert(e);
                }
            },
        )
        .await?;
        if let Some(e) = bad {
            return Err(ClusterError::List {
                what: "Nodes".into(),
                source: kube::Error::SerdeError(serde::de::Error::custom(e)),
            });
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }

    /// The UID of the kube-system namespace: a stable identity of the cluster.
    ///
    /// # Errors
    /// When it cannot be read.
    pub async fn identity(&self) -> Result<String, ClusterError> {
        let uid = self
            .identity
            .get_or_try_init(|| async {
                self.count();
                let api: Api<Namespace> = Api::all(self.client.clone());
                let ns = api
                    .get("kube-system")
                    .await
                    .map_err(|source| ClusterError::Get {
                        what: "namespace kube-system".into(),
                        source,
                    })?;
                Ok::<_, ClusterError>(ns.metadata.uid.unwrap_or_default())
            })
            .await?;
        Ok(uid.clone())
    }

    /// Server-side apply of one manifest; with `dry_run` nothing is persisted and the
    /// result is what the object would become.
    ///
    /// # Errors
    /// [`ClusterError::Conflict`] when another manager owns a field and `force` is
    /// off; other API errors as they come.
    pub async fn apply(
        &self,
        manifest: &JsonValue,
        dry_run: bool,
        force: bool,
    ) -> Result<JsonValue, ClusterError> {
        let name = manifest
            .pointer("/metadata/name")
            .and_then(JsonValue::as_str)
            .unwrap_or_default();
        self.apply_stripped(name, manifest, dry_run, force).await
    }

    /// [`Cluster::apply`] of a rendered manifest, sent as the text it is held as.
    ///
    /// # Errors
    /// As [`Cluster::apply`].
    pub async fn apply_manifest(
        &self,
        manifest: &Manifest,
        dry_run: bool,
        force: bool,
    ) -> Result<JsonValue, ClusterError> {
        self.apply_stripped(&manifest.name(), manifest, dry_run, force)
            .await
    }

    /// [`Cluster::apply_raw`], its result as JSON with [`strip_server_fields`] applied.
    async fn apply_stripped<T: serde::Serialize + std::fmt::Debug>(
        &self,
        name: &str,
        manifest: &T,
        dry_run: bool,
        force: bool,
    ) -> Result<JsonValue, ClusterError> {
        let mut v = self
            .apply_raw(name, manifest, dry_run, force)
            .await
            .map(|ds| serde_json::to_value(ds).unwrap_or(JsonValue::Null))?;
        strip_server_fields(&mut v);
        Ok(v)
    }

    /// Server-side apply of `manifest` (any serialisable form of it, e.g. compact
    /// JSON text), returning the typed result.
    ///
    /// # Errors
    /// As [`Cluster::apply`].
    #[tracing::instrument(name = "apply", skip_all, fields(daemonset = %name, dry_run = dry_run, force = force))]
    pub async fn apply_raw<T: serde::Serialize + std::fmt::Debug>(
        &self,
        name: &str,
        manifest: &T,
        dry_run: bool,
        force: bool,
    ) -> Result<DaemonSet, ClusterError> {
        self.count();
        let name = name.to_string();
        let mut pp = PatchParams::apply(MANAGER);
        if dry_run {
            pp = pp.dry_run();
        }
        if force {
            pp = pp.force();
        }
        match self
            .daemonsets()
            .patch(&name, &pp, &Patch::Apply(manifest))
            .await
        {
            Ok(ds) => Ok(ds),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let mut conflicts: Vec<Conflict> = status
                    .details
                    .as_ref()
                    .map(|d| {
                        d.causes
                            .iter()
                            .map(|c| Conflict {
                                field: c.field.clone(),
                                manager: c
                                    .message
                                    .split('"')
                                    .nth(1)
                                    .unwrap_or("unknown")
                                    .to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if conflicts.is_empty() {
                    conflicts.push(Conflict {
                        field: status.message.clone(),
                        manager: "unknown".into(),
                    });
                }
                Err(ClusterError::Conflict { name, conflicts })
            }
            Err(source) if dry_run => Err(ClusterError::DryRun { name, source }),
            Err(source) => Err(ClusterError::Apply { name, source }),
        }
    }

    /// Applies many manifests concurrently (bounded), results in input order. Only
    /// the generation written (what a rollout must be observed at) or the error of
    /// each is kept: the server's copy of a written object is not needed, and 2,000
    /// of them were most of an apply's memory.
    pub async fn write_all(
        &self,
        manifests: &[&Manifest],
        force: bool,
    ) -> Vec<Result<i64, ClusterError>> {
        stream::iter(manifests.iter().map(|m| async move {
            let name = m.name();
            self.apply_raw(&name, *m, false, force)
                .await
                .map(|ds| ds.metadata.generation.unwrap_or_default())
        }))
        .buffered(CONCURRENCY)
        .collect()
        .await
    }

    /// Deletes a DaemonSet, only if it still has `uid` (so a re-created object of the
    /// same name is never deleted by mistake). Already gone is success.
    ///
    /// # Errors
    /// API errors other than 404.
    pub async fn delete(&self, name: &str, uid: Option<&str>) -> Result<(), ClusterError> {
        self.count();
        let dp = DeleteParams {
            preconditions: uid.map(|u| Preconditions {
                uid: Some(u.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match self.daemonsets().delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(ClusterError::Delete {
                name: name.to_string(),
                source,
            }),
        }
    }

    /// Health of the pods matching a label selector.
    ///
    /// # Errors
    /// When the LIST fails.
    pub async fn pod_health(
        &self,
        selector: &str,
    ) -> Result<BTreeMap<String, PodHealth>, ClusterError> {
        self.count();
        let pods = self
            .pods()
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|source| ClusterError::List {
                what: "Pods".into(),
                source,
            })?;
        Ok(pods
            .items
            .iter()
            .filter_map(|p| Some((p.metadata.name.clone()?, pod_health(p))))
            .collect())
    }

    /// A stream of DaemonSet changes matching a label selector, with kube-runtime's
    /// re-list/re-watch and backoff when the watch breaks or the API server is away.
    pub fn watch_daemonsets(
        &self,
        selector: &str,
    ) -> impl futures::Stream<
        Item = Result<kube::runtime::watcher::Event<DaemonSet>, kube::runtime::watcher::Error>,
    > + Send
    + use<> {
        self.count();
        use kube::runtime::WatchStreamExt as _;
        // Pages as small as the fleet's LIST: a page of 500 DaemonSets (the default)
        // was the largest thing a rollout of a big stage held.
        let cfg = kube::runtime::watcher::Config::default()
            .labels(selector)
            .page_size(WATCH_PAGE);
        kube::runtime::watcher(self.daemonsets(), cfg).default_backoff()
    }

    /// Waits until the API server answers, for at most `limit`.
    pub async fn wait_reachable(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.client.apiserver_version().await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    }
}

/// Rollout status numbers of a DaemonSet.
pub fn rollout_status(ds: &DaemonSet) -> RolloutStatus {
    let st = ds.status.clone().unwrap_or_default();
    RolloutStatus {
        generation: ds.metadata.generation.unwrap_or(0),
        observed_generation: st.observed_generation.unwrap_or(0),
        desired: i64::from(st.desired_number_scheduled),
        updated: i64::from(st.updated_number_scheduled.unwrap_or(0)),
        available: i64::from(st.number_available.unwrap_or(0)),
        unavailable: i64::from(st.number_unavailable.unwrap_or(0)),
        ready: i64::from(st.number_ready),
    }
}

pub fn pod_health(p: &Pod) -> PodHealth {
    let status = p.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let restarts = status
        .container_statuses
        .unwrap_or_default()
        .iter()
        .map(|c| i64::from(c.restart_count))
        .sum();
    PodHealth { ready, restarts }
}
