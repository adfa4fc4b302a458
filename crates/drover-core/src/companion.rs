//! Companion objects: the plain Kubernetes manifests a fleet repository holds under
//! `companions/` beside its daemons (a daemon's ServiceAccount, RBAC, Service,
//! ConfigMap...), as `drover import` writes them.
//!
//! Layout (see docs/companions.md): `companions/<daemon>/*.yaml` belong to that
//! daemon, `companions/*.yaml` to the fleet. Owns: reading those documents (load
//! step, [`load_file`]) and checking them against the fleet's companion policy
//! ([`validate`]): the kind allow-list, the namespace, no `Secret`, no binding to
//! `cluster-admin` without the opt-in, no duplicates; and stamping drover's
//! ownership labels on them. Must not: read files, or talk to a cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value as JsonValue};

use crate::diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
use crate::model::CompanionsSpec;
use crate::render::{ANN_SOURCE, LABEL_DAEMON, LABEL_FLEET, LABEL_MANAGED_BY, MANAGER};
use crate::yaml::{PosIndex, ScannedDoc};

/// The top-level directory that holds companion objects.
pub const DIR: &str = "companions";

/// The kinds a fleet may hold without listing them: `(apiVersion, kind, namespaced)`.
pub const DEFAULT_KINDS: [(&str, &str, bool); 8] = [
    ("v1", "ServiceAccount", true),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", false),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", false),
    ("rbac.authorization.k8s.io/v1", "Role", true),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", true),
    ("v1", "Service", true),
    ("v1", "ConfigMap", true),
    ("scheduling.k8s.io/v1", "PriorityClass", false),
];

/// Server-owned metadata a manifest in git must not carry.
const SERVER_FIELDS: [&str; 6] = [
    "uid",
    "resourceVersion",
    "managedFields",
    "creationTimestamp",
    "generation",
    "selfLink",
];

/// A companion document as loaded: where it is, and its content.
#[derive(Debug, Clone)]
pub struct RawCompanion {
    pub path: String,
    /// The daemon directory it is under (`companions/<daemon>/...`), `None` for the
    /// fleet's own (`companions/<file>`).
    pub owner: Option<String>,
    pub index: Arc<PosIndex>,
    pub value: JsonValue,
}

impl RawCompanion {
    fn diag(&self, field: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(self.path.clone(), self.index.pos(field), field, message)
    }

    /// Where the document starts (`path:line`), for messages naming another one.
    pub fn at(&self) -> String {
        format!("{}:{}", self.path, self.index.start.line)
    }
}

/// A validated companion object, labelled and namespaced, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Companion {
    /// The file it came from.
    pub path: String,
    /// Its first line in that file.
    pub line: usize,
    /// The daemon it belongs to; `None` for the fleet's.
    pub owner: Option<String>,
    pub api_version: String,
    pub kind: String,
    /// `None` for a cluster-scoped kind.
    pub namespace: Option<String>,
    pub name: String,
    /// The manifest as it is applied: drover's labels and source annotation added,
    /// the namespace set.
    pub manifest: JsonValue,
}

impl Companion {
    /// `Kind/name` or `Kind/namespace/name`, for messages and plans.
    pub fn id(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }

    /// The object as plans and change sets key it: `Kind[.group]/[namespace/]name`,
    /// the group as kubectl spells it (`ClusterRole.rbac.authorization.k8s.io/agent`,
    /// `ServiceAccount/agents/agent`). Two companions that Kubernetes tells apart have
    /// two keys; the API version is not part of it (`v1beta1` to `v1` is an update).
    pub fn key(&self) -> String {
        object_key(
            &self.api_version,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }

    /// SHA-256 (hex) of the manifest as it is applied, normalised (keys sorted, no
    /// server-owned fields): what a change set records, so that reordering the keys
    /// of a manifest in git is no change.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let yaml = crate::render::to_yaml(&crate::diff::normalize(&self.manifest));
        hex::encode(Sha256::digest(yaml.as_bytes()))
    }
}

/// See [`Companion::key`].
pub fn object_key(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> String {
    let group = group_of(api_version);
    let kind = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    match namespace {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// Whether `path` is a companion file (under [`DIR`]).
pub fn is_companion_path(path: &str) -> bool {
    path.strip_prefix(DIR).is_some_and(|r| r.starts_with('/'))
}

/// The documents of one file under `companions/`, scanned by the loader (which has
/// made the encoding checks). A path nested deeper than `companions/<daemon>/<file>`
/// is refused.
pub fn from_docs(path: &str, docs: Vec<ScannedDoc>, diags: &mut Diagnostics) -> Vec<RawCompanion> {
    let rest = path.strip_prefix("companions/").unwrap_or(path);
    let parts: Vec<&str> = rest.split('/').collect();
    let owner = match parts.as_slice() {
        [_file] => None,
        [daemon, _file] => Some((*daemon).to_string()),
        _ => {
            diags.push(
                Diagnostic::new(path, Pos::default(), "", "companion files are `companions/<file>.yaml` (the fleet's) or `companions/<daemon>/<file>.yaml` (a daemon's); this one is nested deeper")
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.empty) {
        let index = Arc::new(doc.index);
        let Some(root) = doc.root.as_deref() else {
            continue;
        };
        if !doc.root_is_mapping {
            diags.push(Diagnostic::new(
                path,
                index.start,
                "",
                "a companion document must be a mapping with apiVersion, kind and metadata",
            ));
            continue;
        }
        match crate::yaml::de::from_node::<JsonValue>(root) {
            Ok(value) => out.push(RawCompanion {
                path: path.to_string(),
                owner: owner.clone(),
                index,
                value,
            }),
            Err(e) => diags.push(Diagnostic::new(
                path,
                index.pos(e.path.as_deref().unwrap_or("")),
                e.path.clone().unwrap_or_default(),
                e.message.clone(),
            )),
        }
    }
    out
}

/// What validation needs to know about the fleet.
pub struct FleetContext<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    /// Every daemon's name.
    pub daemons: &'a [String],
    pub policy: &'a CompanionsSpec,
}

fn str_at<'v>(v: &'v JsonValue, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(JsonValue::as_str)
}

/// Checks every companion against the fleet's policy and returns them labelled, in
/// file order. Every problem is pushed to `diags`.
pub fn validate(
    raw: &[RawCompanion],
    ctx: &FleetContext<'_>,
    diags: &mut Diagnostics,
) -> Vec<Companion> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<(String, String, Option<String>, String), String> = BTreeMap::new();
    for r in raw {
        let before = diags.len();
        if let Some(c) = one(r, ctx, diags) {
            let key = (
                group_of(&c.api_version).to_string(),
                c.kind.clone(),
                c.namespace.clone(),
                c.name.clone(),
            );
            if let Some(first) = seen.get(&key) {
                diags.push(r.diag(
                    "metadata.name",
                    format!("{} is defined twice (first at {first})", c.id()),
                ));
            } else {
                seen.insert(key, r.at());
                if diags.len() == before {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// The API group of an apiVersion (`""` for the core group).
fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

fn one(r: &RawCompanion, ctx: &FleetContext<'_>, diags: &mut Diagnostics) -> Option<Companion> {
    let v = &r.value;
    let mut ok = true;
    if let Some(owner) = &r.owner
        && !ctx.daemons.iter().any(|d| d == owner)
    {
        diags.push(
            Diagnostic::new(r.path.clone(), Pos { line: r.index.start.line, column: 1 }, "", format!("the directory companions/{owner}/ names no daemon of the fleet"))
                .with_hint(did_you_mean(owner, ctx.daemons.iter().map(String::as_str)).or_else(|| Some("a daemon's companions go under companions/<daemon>/, the fleet's directly under companions/".into()))),
        );
        ok = false;
    }
    let Some(api_version) = str_at(v, "/apiVersion") else {
        diags.push(r.diag("apiVersion", "missing field `apiVersion` (a string)"));
        return None;
    };
    let Some(kind) = str_at(v, "/kind") else {
        diags.push(r.diag("kind", "missing field `kind` (a string)"));
        return None;
    };
    let Some(meta) = v.get("metadata").and_then(JsonValue::as_object) else {
        diags.push(r.diag(
            "metadata",
            "missing field `metadata` (a mapping with a name)",
        ));
        return None;
    };
    let Some(name) = meta
        .get("name")
        .and_then(JsonValue::as_str)
        .filter(|n| !n.is_empty())
    else {
        diags.push(r.diag("metadata.name", "missing field `metadata.name`: a companion needs a fixed name (generateName is not supported)"));
        return None;
    };
    let name_rule = if group_of(api_version) == "rbac.authorization.k8s.io"
        || allowed(api_version, kind, &CompanionsSpec::default()).is_none()
    {
        // RBAC names are path segments (`system:node`); an extra kind's rule is its
        // API server's.
        path_segment(name)
    } else {
        crate::syntax::dns_subdomain(name)
    };
    if let Err(e) = name_rule {
        diags.push(r.diag(
            "metadata.name",
            format!("`{name}` is not a valid {kind} name: {e}"),
        ));
        ok = false;
    }
    if kind == "Secret" && group_of(api_version).is_empty() {
        diags.push(
            r.diag("kind", "a `Secret` cannot be a companion: its value would sit in git in plain text")
                .with_hint(Some("commit an encrypted SealedSecret (bitnami.com/v1alpha1) or an ExternalSecret (external-secrets.io/v1beta1) instead, and list its kind in spec.companions.allowKinds".into())),
        );
        return None;
    }
    let namespaced = match allowed(api_version, kind, ctx.policy) {
        Some(n) => n,
        None => {
            let kinds: Vec<String> = DEFAULT_KINDS
                .iter()
                .map(|(_, k, _)| (*k).to_string())
                .chain(ctx.policy.allow_kinds.iter().map(|k| k.kind.clone()))
                .collect();
            diags.push(
                r.diag("kind", format!("kind `{kind}` of `{api_version}` is not allowed as a companion"))
                    .with_hint(Some(match did_you_mean(kind, kinds.iter().map(String::as_str)) {
                        Some(h) => h,
                        None => format!("allowed: {}; list other kinds in the Fleet's spec.companions.allowKinds", allowed_list(ctx.policy)),
                    })),
            );
            return None;
        }
    };
    for f in SERVER_FIELDS {
        if meta.contains_key(f) {
            diags.push(r.diag(
                &format!("metadata.{f}"),
                format!("`metadata.{f}` is set by the API server; remove it from the manifest"),
            ));
            ok = false;
        }
    }
    if v.get("status").is_some() {
        diags.push(r.diag(
            "status",
            "`status` is set by the API server; remove it from the manifest",
        ));
        ok = false;
    }
    let namespace = match (namespaced, meta.get("namespace")) {
        (false, Some(_)) => {
            diags.push(r.diag(
                "metadata.namespace",
                format!("{kind} is cluster-scoped and takes no namespace"),
            ));
            ok = false;
            None
        }
        (false, None) => None,
        (true, None) => Some(ctx.namespace.to_string()),
        (true, Some(JsonValue::String(ns))) if crate::syntax::dns_label(ns).is_err() => {
            diags.push(r.diag(
                "metadata.namespace",
                format!("`{ns}` is not a namespace name"),
            ));
            ok = false;
            None
        }
        (true, Some(JsonValue::String(ns)))
            if ns == ctx.namespace || ctx.policy.allow_namespaces.iter().any(|a| a == ns) =>
        {
            Some(ns.clone())
        }
        (true, Some(JsonValue::String(ns))) => {
            diags.push(
                r.diag("metadata.namespace", format!("namespace `{ns}` is not the fleet's (`{}`)", ctx.namespace))
                    .with_hint(Some("leave it out to use the fleet's namespace, or list it in the Fleet's spec.companions.allowNamespaces".into())),
            );
            ok = false;
            None
        }
        (true, Some(_)) => {
            diags.push(r.diag("metadata.namespace", "expected a string"));
            ok = false;
            None
        }
    };
    if matches!(kind, "ClusterRoleBinding" | "RoleBinding")
        && group_of(api_version) == "rbac.authorization.k8s.io"
        && str_at(v, "/roleRef/kind") == Some("ClusterRole")
        && str_at(v, "/roleRef/name") == Some("cluster-admin")
        && !ctx.policy.allow_cluster_admin
    {
        diags.push(
            r.diag("roleRef.name", format!("{kind} `{name}` grants `cluster-admin`"))
                .with_hint(Some("grant a narrower ClusterRole, or opt in with the Fleet's spec.companions.allowClusterAdmin: true".into())),
        );
        ok = false;
    }
    // A ClusterRoleBinding's ServiceAccount subject names its namespace, or the API
    // server refuses the whole commit at its dry run (kustomize fills it in, so
    // upstream bases often leave it out). A RoleBinding's defaults to its own.
    if kind == "ClusterRoleBinding" && group_of(api_version) == "rbac.authorization.k8s.io" {
        for (i, s) in v["subjects"].as_array().into_iter().flatten().enumerate() {
            if s["kind"] == "ServiceAccount" && s.get("namespace").is_none() {
                diags.push(
                    r.diag(
                        &format!("subjects[{i}]"),
                        format!(
                            "ServiceAccount subject `{}` has no namespace (a ClusterRoleBinding needs it)",
                            s["name"].as_str().unwrap_or_default()
                        ),
                    )
                    .with_hint(Some(format!(
                        "add `namespace: {}`: the fleet's namespace, where its ServiceAccounts go",
                        ctx.namespace
                    ))),
                );
                ok = false;
            }
        }
    }
    let mut manifest = v.clone();
    if let Err(d) = stamp(r, &mut manifest, ctx, namespace.as_deref()) {
        diags.push(d);
        ok = false;
    }
    ok.then(|| Companion {
        path: r.path.clone(),
        line: r.index.start.line,
        owner: r.owner.clone(),
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        namespace,
        name: name.to_string(),
        manifest,
    })
}

/// Kubernetes' rule for names that are path segments (RBAC objects): not empty, not
/// `.` or `..`, no `/` or `%`.
fn path_segment(name: &str) -> Result<(), String> {
    if name == "." || name == ".." {
        return Err("it may not be `.` or `..`".into());
    }
    if name.contains(['/', '%']) {
        return Err("it may not contain `/` or `%`".into());
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters".into());
    }
    Ok(())
}

/// Checks the Fleet's `spec.companions`: each extra kind names an apiVersion and a
/// kind, and is not a Secret or one of drover's own kinds; each extra namespace is a
/// namespace name. Returns the problems as `(field, message)`.
pub fn check_policy(policy: &CompanionsSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, k) in policy.allow_kinds.iter().enumerate() {
        let f = format!("spec.companions.allowKinds[{i}]");
        if k.api_version.is_empty() || k.kind.is_empty() {
            out.push((
                f.clone(),
                "an allowed kind needs both `apiVersion` and `kind`".into(),
            ));
        }
        if k.kind == "Secret" && group_of(&k.api_version).is_empty() {
            out.push((format!("{f}.kind"), "a `Secret` is never allowed as a companion; use a SealedSecret or an ExternalSecret kind".into()));
        }
        if group_of(&k.api_version) == "drover.dev" {
            out.push((
                format!("{f}.apiVersion"),
                "drover's own kinds are fleet documents, not companions".into(),
            ));
        }
    }
    for (i, ns) in policy.allow_namespaces.iter().enumerate() {
        if let Err(e) = crate::syntax::dns_label(ns) {
            out.push((
                format!("spec.companions.allowNamespaces[{i}]"),
                format!("`{ns}` is not a namespace name: {e}"),
            ));
        }
    }
    out
}

/// Whether `(apiVersion, kind)` is allowed, and if so whether it is namespaced.
fn allowed(api_version: &str, kind: &str, policy: &CompanionsSpec) -> Option<bool> {
    DEFAULT_KINDS
        .iter()
        .find(|(a, k, _)| *a == api_version && *k == kind)
        .map(|(_, _, n)| *n)
        .or_else(|| {
            policy
                .allow_kinds
                .iter()
                .find(|k| k.api_version == api_version && k.kind == kind)
                .map(|k| k.scope != crate::model::CompanionScope::Cluster)
        })
}

fn allowed_list(policy: &CompanionsSpec) -> String {
    DEFAULT_KINDS
        .iter()
        .map(|(a, k, _)| format!("{k} ({a})"))
        .chain(
            policy
                .allow_kinds
                .iter()
                .map(|k| format!("{} ({})", k.kind, k.api_version)),
        )
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds drover's ownership labels and source annotation, and the namespace. A
/// manifest that sets one of drover's labels to another value is refused.
fn stamp(
    r: &RawCompanion,
    manifest: &mut JsonValue,
    ctx: &FleetContext<'_>,
    namespace: Option<&str>,
) -> Result<(), Diagnostic> {
    let mut labels = vec![(LABEL_MANAGED_BY, MANAGER), (LABEL_FLEET, ctx.name)];
    if let Some(owner) = &r.owner {
        labels.push((LABEL_DAEMON, owner.as_str()));
    }
    let meta = manifest
        .get_mut("metadata")
        .and_then(JsonValue::as_object_mut)
        .ok_or_else(|| r.diag("metadata", "expected a mapping"))?;
    if let Some(ns) = namespace {
        meta.insert("namespace".into(), JsonValue::String(ns.into()));
    }
    let have = meta
        .entry("labels")
        .or_insert_with(|| JsonValue::Object(Map::new()));
    let have = have
        .as_object_mut()
        .ok_or_else(|| r.diag("metadata.labels", "expected a mapping of strings"))?;
    for (k, want) in labels {
        match have.get(k) {
            Some(JsonValue::String(s)) if s == want => {}
            Some(other) => {
                return Err(r.diag(
                    &format!("metadata.labels.{k}"),
                    format!(
                        "label `{k}` is drover's own (it would be `{want}`), not {other}; remove it"
                    ),
                ));
            }
            None => {
                have.insert(k.into(), JsonValue::String(want.into()));
            }
        }
    }
    if have.keys().any(|k| k == crate::render::LABEL_GROUP) {
        return Err(r.diag(
            "metadata.labels",
            format!(
                "label `{}` is drover's own; remove it",
                crate::render::LABEL_GROUP
            ),
        ));
    }
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| JsonValue::Object(Map::new()));
    let ann = ann
        .as_object_mut()
        .ok_or_else(|| r.diag("metadata.annotations", "expected a mapping of strings"))?;
    ann.insert(ANN_SOURCE.into(), JsonValue::String(r.path.clone()));
    Ok(())
}
