//! Import: upstream DaemonSet manifests → drover's own documents, with the proof that
//! they render back to what they came from.
//!
//! Owns: turning each `apps/v1` DaemonSet into a Daemon (the short form where the
//! model has the field, `podTemplate` for the rest), the Fleet skeleton (one catch-all
//! group, one stage), finding each DaemonSet's companion objects and config files,
//! naming everything it could not carry, and the round trip: the imported fleet is
//! loaded, validated and rendered exactly as `drover render` would, and each rendered
//! DaemonSet is compared field for field with its upstream. Must not: read or write
//! files (the command does), or call a difference it did not report anything but a
//! failed round trip.
//!
//! Companion objects and config files are written as plain manifests and files: the
//! companions are reported as applied with their daemon ([`COMPANIONS_APPLIED`]); a
//! ConfigMap's keys are written as config files only for the `spec.configFiles`
//! entries its plain volumes become ([`CONFIG_FILES_APPLIED`]). A ConfigMap also
//! used another way (by `items`, a projected volume, env...) is written as a
//! companion as well, and the report says why.

mod compare;
mod read;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value as JsonValue, json};

pub use compare::{FieldDifference, Seg, SegPath, path_text};
pub use read::{Manifest, drop_nulls, read_manifests, strip_server_fields};

use crate::emit::to_yaml;
use crate::limits::Limits;
use crate::load::SourceFile;
use crate::model::API_VERSION;
use crate::render::{LABEL_MANAGED_BY, LABEL_NAME, RenderContext, daemonset_name, render};
use crate::syntax;
use crate::validate::load_fleet;
use compare::{compared_part, normalise, pod_path, remove_paths, strip_server_defaults};

/// The directories an import writes plain manifests and config files into; drover
/// does not read them as fleet documents (see [`crate::load::RESERVED_DIRS`]).
pub const COMPANIONS_DIR: &str = "companions";
pub const CONFIG_DIR: &str = "config";

/// What the import report says of the config files written for `spec.configFiles`.
pub const CONFIG_FILES_APPLIED: &str = "applied by drover as config files: an immutable ConfigMap named by their content hash, so a change to a file rolls out stage by stage";

/// What the import report and each companion file's header say of a companion.
pub const COMPANIONS_APPLIED: &str = "applied by drover plan/apply/sync before the first stage of their daemon, pruned when removed from git";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("{path}:{line}:{column}: {message}")]
    ReadManifest {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("no apps/v1 DaemonSet in the input")]
    FindDaemonSets,
    #[error("no DaemonSet could be imported: {}", reasons.join("; "))]
    ConvertDaemonSets { reasons: Vec<String> },
    #[error("--{option} `{value}`: {message}")]
    CheckOption {
        option: &'static str,
        value: String,
        message: String,
    },
}

/// How to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The Fleet's name (the `drover.dev/fleet` label).
    pub fleet: String,
    /// The Fleet's namespace; default: the DaemonSets' own.
    pub namespace: Option<String>,
    /// The one, catch-all, NodeGroup.
    pub group: String,
    /// The objects were read from a cluster: fields at the API server's defaults are
    /// left out (of the Daemon, and of both sides of the round trip).
    pub from_cluster: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            fleet: "imported".into(),
            namespace: None,
            group: "default".into(),
            from_cluster: false,
        }
    }
}

/// Everything an import produces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Imported {
    pub files: Vec<OutFile>,
    pub report: Report,
}

/// One file to write, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutFile {
    pub path: String,
    pub role: FileRole,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileRole {
    Fleet,
    NodeGroup,
    Daemon,
    /// A plain manifest: a companion object, applied with its daemon.
    Companion,
    /// A file of a ConfigMap's data, read by a `spec.configFiles` entry.
    Config,
}

/// What was imported, what was not, and whether each round trip held.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub fleet: String,
    pub namespace: String,
    pub group: String,
    pub daemons: Vec<DaemonReport>,
    /// Input objects that are neither an imported DaemonSet nor a companion of one.
    pub left_out: Vec<LeftOut>,
}

impl Report {
    /// Whether every imported DaemonSet renders back field for field.
    pub fn round_trips_hold(&self) -> bool {
        self.daemons
            .iter()
            .all(|d| matches!(d.round_trip, RoundTrip::Exact { .. }))
    }

    /// Whether anything of a DaemonSet could not be carried, or an input object was
    /// left out.
    pub fn anything_left_behind(&self) -> bool {
        !self.left_out.is_empty() || self.daemons.iter().any(|d| !d.not_carried.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonReport {
    /// `namespace/name` of the upstream DaemonSet.
    pub daemonset: String,
    /// `path:line` it was read from.
    pub source: String,
    pub daemon: String,
    /// The Daemon's file.
    pub file: String,
    /// The DaemonSet drover renders for it.
    pub renders_as: String,
    /// Short-form fields of the Daemon that were filled.
    pub short_form: Vec<String>,
    /// Upstream fields carried in `podTemplate`.
    pub pod_template: Vec<String>,
    pub not_carried: Vec<NotCarried>,
    pub notes: Vec<String>,
    /// Companion manifests written for it (applied with it, [`COMPANIONS_APPLIED`]).
    pub companions: Vec<String>,
    /// Config files its `spec.configFiles` entries read ([`CONFIG_FILES_APPLIED`]).
    pub config_files: Vec<String>,
    /// Secrets it refers to: never written.
    pub secrets: Vec<String>,
    pub round_trip: RoundTrip,
}

/// An upstream field the imported Daemon cannot express.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotCarried {
    pub field: String,
    pub value: JsonValue,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum RoundTrip {
    /// Rendering gives back every compared field.
    Exact { fields: usize },
    /// These fields differ.
    Differs { differences: Vec<FieldDifference> },
    /// The imported fleet does not load or render.
    Invalid { problems: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeftOut {
    pub source: String,
    pub object: String,
    pub reason: String,
}

const NODE_CONSTRAINTS: &str = "only required node affinity of one term (and a nodeSelector) becomes the Daemon's node constraints: the imported Daemon runs on every node of its groups that satisfies them; narrow the NodeGroup selectors by hand";
const TEMPLATE_METADATA: &str = "the API server ignores it in a DaemonSet's pod template";
const RESERVED_KEY: &str =
    "drover sets the drover.dev/ keys and app.kubernetes.io/managed-by itself";

/// Imports `manifests` (read with [`read_manifests`], or from a cluster and passed
/// through [`strip_server_fields`]).
///
/// # Errors
/// When no DaemonSet is found, or an option is not a valid name.
pub fn import(
    manifests: &[Manifest],
    opts: &ImportOptions,
    limits: &Limits,
) -> Result<Imported, ImportError> {
    check_options(opts)?;
    let mut left_out = Vec::new();
    let mut sets: Vec<(usize, JsonValue)> = Vec::new();
    for (i, m) in manifests.iter().enumerate() {
        if m.kind() == "DaemonSet" {
            if m.api_version() == "apps/v1" {
                let mut ds = m.value.clone();
                drop_nulls(&mut ds);
                if let Some(JsonValue::Object(pod)) = ds.pointer_mut("/spec/template/spec") {
                    compare::drop_empty_lists(pod);
                }
                if is_live(m, opts) {
                    strip_server_defaults(&mut ds);
                }
                strip_server_fields(&mut ds);
                sets.push((i, ds));
            } else {
                left_out.push(LeftOut {
                    source: m.source.clone(),
                    object: m.describe(),
                    reason: format!(
                        "only apps/v1 DaemonSets are imported, this one is {}",
                        m.api_version()
                    ),
                });
            }
        }
    }
    if sets.is_empty() {
        return Err(ImportError::FindDaemonSets);
    }
    let namespace = opts.namespace.clone().unwrap_or_else(|| {
        let nss: BTreeSet<&str> = sets
            .iter()
            .filter_map(|(i, _)| manifests[*i].namespace())
            .collect();
        nss.iter().next().map_or("default", |s| *s).to_string()
    });

    let mut drafts: Vec<Draft> = Vec::new();
    for (i, ds) in &sets {
        let m = &manifests[*i];
        match convert(m, ds, opts, &namespace) {
            Ok(d) => {
                if let Some(other) = drafts.iter().find(|o| o.name == d.name) {
                    left_out.push(LeftOut {
                        source: m.source.clone(),
                        object: m.describe(),
                        reason: format!(
                            "its first container `{}` names the daemon, and {} already has that name",
                            d.name, other.report.daemonset
                        ),
                    });
                    continue;
                }
                drafts.push(d);
            }
            Err(reason) => left_out.push(LeftOut {
                source: m.source.clone(),
                object: m.describe(),
                reason,
            }),
        }
    }

    if drafts.is_empty() {
        return Err(ImportError::ConvertDaemonSets {
            reasons: left_out
                .iter()
                .map(|l| format!("{} ({}): {}", l.object, l.source, l.reason))
                .collect(),
        });
    }
    let mut files = vec![
        fleet_file(opts, &namespace),
        OutFile {
            path: format!("groups/{}.yaml", opts.group),
            role: FileRole::NodeGroup,
            bytes: yaml_file(
                &["Written by `drover import`: the catch-all group, every node."],
                &json!({"apiVersion": API_VERSION, "kind": "NodeGroup",
                    "metadata": {"name": opts.group}, "spec": {"selector": {}}}),
            ),
        },
    ];
    let mut written = Vec::new();
    let unclaimed = companions(
        manifests,
        &sets,
        &mut drafts,
        &mut files,
        &mut written,
        &namespace,
    );
    let policy = companion_policy(&written, &namespace);
    if !policy.is_default() {
        files[0] = fleet_file_with(opts, &namespace, &policy);
    }
    // Read from a cluster, the other objects are the namespace's, not a chosen input.
    if !opts.from_cluster {
        left_out.extend(unclaimed);
    }
    for d in &drafts {
        files.push(OutFile {
            path: d.report.file.clone(),
            role: FileRole::Daemon,
            bytes: daemon_file(d),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for d in &mut drafts {
        d.report.companions.sort();
        d.report.config_files.sort();
    }
    round_trip(&files, &mut drafts, opts, limits);
    Ok(Imported {
        files,
        report: Report {
            fleet: opts.fleet.clone(),
            namespace,
            group: opts.group.clone(),
            daemons: drafts.into_iter().map(|d| d.report).collect(),
            left_out,
        },
    })
}

/// Whether an object came back from an API server (read with `--from-cluster`, or
/// `kubectl get -o yaml` saved to a file): then it carries every default the server
/// filled in.
fn is_live(m: &Manifest, opts: &ImportOptions) -> bool {
    opts.from_cluster
        || [
            "uid",
            "resourceVersion",
            "managedFields",
            "creationTimestamp",
        ]
        .iter()
        .any(|k| m.value["metadata"].get(*k).is_some_and(|v| !v.is_null()))
}

fn check_options(opts: &ImportOptions) -> Result<(), ImportError> {
    let checks: [(&'static str, Option<&String>); 3] = [
        ("fleet-name", Some(&opts.fleet)),
        ("group", Some(&opts.group)),
        ("fleet-namespace", opts.namespace.as_ref()),
    ];
    for (option, v) in checks {
        if let Some(v) = v {
            syntax::dns_label(v).map_err(|message| ImportError::CheckOption {
                option,
                value: v.clone(),
                message,
            })?;
        }
    }
    if opts.group == "all" {
        return Err(ImportError::CheckOption {
            option: "group",
            value: opts.group.clone(),
            message: "`all` means every group in a Daemon's `groups`".into(),
        });
    }
    Ok(())
}

/// One DaemonSet on its way to being a Daemon.
struct Draft {
    name: String,
    /// The upstream DaemonSet as compared (without server fields for a cluster).
    upstream: JsonValue,
    /// Upstream fields reported as not carried, left out of the comparison.
    excluded: Vec<SegPath>,
    doc: JsonValue,
    namespace: String,
    pod_labels: Map<String, JsonValue>,
    service_account: Option<String>,
    /// Read back from an API server: its defaults are left out of both sides.
    live: bool,
    /// The pod volumes turned into `spec.configFiles` entries: entry → the upstream
    /// ConfigMap (for the round trip's [`compare::config_files_spelling`]).
    config_entries: BTreeMap<String, String>,
    report: DaemonReport,
}

impl Draft {
    fn not_carried(&mut self, path: SegPath, value: &JsonValue, reason: impl Into<String>) {
        self.report.not_carried.push(NotCarried {
            field: path_text(&path),
            value: value.clone(),
            reason: reason.into(),
        });
        self.excluded.push(path);
    }
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// One DaemonSet → a Daemon document and what the report says about it.
fn convert(
    m: &Manifest,
    ds: &JsonValue,
    opts: &ImportOptions,
    fleet_namespace: &str,
) -> Result<Draft, String> {
    let template = ds
        .pointer("/spec/template")
        .ok_or("it has no spec.template")?;
    let pod = template
        .get("spec")
        .and_then(JsonValue::as_object)
        .ok_or("it has no spec.template.spec")?;
    let containers = pod
        .get("containers")
        .and_then(JsonValue::as_array)
        .filter(|c| !c.is_empty())
        .ok_or("it has no containers")?;
    let main = containers[0]
        .as_object()
        .ok_or("its first container is not a mapping")?;
    let name = main
        .get("name")
        .and_then(JsonValue::as_str)
        .ok_or("its first container has no name")?
        .to_string();
    syntax::dns_label(&name).map_err(|e| format!("its first container's name: {e}"))?;
    let ns = m.namespace().unwrap_or("default").to_string();
    let pod_labels = template
        .pointer("/metadata/labels")
        .and_then(JsonValue::as_object)
        .cloned()
        .unwrap_or_default();
    let mut d = Draft {
        name: name.clone(),
        upstream: ds.clone(),
        excluded: Vec::new(),
        doc: JsonValue::Null,
        namespace: ns.clone(),
        pod_labels,
        service_account: None,
        live: is_live(m, opts),
        config_entries: BTreeMap::new(),
        report: DaemonReport {
            daemonset: format!("{ns}/{}", m.name()),
            source: m.source.clone(),
            daemon: name.clone(),
            file: format!("daemons/{name}.yaml"),
            renders_as: daemonset_name(&name, &opts.group),
            short_form: Vec::new(),
            pod_template: Vec::new(),
            not_carried: Vec::new(),
            notes: Vec::new(),
            companions: Vec::new(),
            config_files: Vec::new(),
            secrets: Vec::new(),
            round_trip: RoundTrip::Invalid {
                problems: vec!["not checked".into()],
            },
        },
    };
    if d.live {
        d.report.notes.push(
            "it was read back from an API server: fields at the server's defaults are left out (the server fills them in again)".into(),
        );
    }
    if m.name() != name {
        d.report.notes.push(format!(
            "the daemon is named after its first container `{name}`, the DaemonSet was `{}` (rename the daemon and set spec.containerName to keep the container's name)",
            m.name()
        ));
    }
    if ns != fleet_namespace {
        d.report.notes.push(format!(
            "it moves from namespace `{ns}` to the Fleet's `{fleet_namespace}`"
        ));
    }
    d.report.notes.push(format!(
        "drover selects the pods by its own labels and the selector of a live DaemonSet cannot change, so drover creates `{}` next to a running `{}` instead of updating it: delete the old one once the new one is ready",
        d.report.renders_as,
        m.name()
    ));

    let mut spec = Map::new();
    let mut pt_spec = Map::new();
    let mut pt_meta = Map::new();
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));

    daemonset_fields(&mut d, ds, &mut spec);
    labels_and_annotations(
        &mut d,
        ds,
        template,
        &name,
        &mut metadata,
        &mut pt_meta,
        &mut spec,
    );
    let main_rest = main_container(&mut d, main, pod, &mut spec)?;
    pod_fields(&mut d, pod, main_rest, &mut spec, &mut pt_spec);

    let mut pt = Map::new();
    if !pt_meta.is_empty() {
        pt.insert("metadata".into(), JsonValue::Object(pt_meta));
    }
    if !pt_spec.is_empty() {
        pt.insert("spec".into(), JsonValue::Object(pt_spec));
    }
    d.report.pod_template = pod_template_fields(&pt);
    if !pt.is_empty() {
        spec.insert("podTemplate".into(), JsonValue::Object(pt));
    }
    let spec = order_spec(spec);
    d.report.short_form = spec
        .keys()
        .filter(|k| *k != "podTemplate")
        .cloned()
        .collect();
    d.doc = json!({
        "apiVersion": API_VERSION,
        "kind": "Daemon",
        "metadata": JsonValue::Object(metadata),
        "spec": JsonValue::Object(spec),
    });
    Ok(d)
}

/// The short form's fields in FLEET-FORMAT's order.
fn order_spec(mut spec: Map<String, JsonValue>) -> Map<String, JsonValue> {
    const ORDER: [&str; 26] = [
        "image",
        "imagePullPolicy",
        "command",
        "args",
        "env",
        "ports",
        "hostNetwork",
        "hostPID",
        "hostIPC",
        "mounts",
        "volumes",
        "configFiles",
        "resources",
        "readinessProbe",
        "livenessProbe",
        "startupProbe",
        "securityContext",
        "priorityClassName",
        "serviceAccountName",
        "appName",
        "tolerations",
        "nodeSelector",
        "nodeAffinity",
        "revisionHistoryLimit",
        "rollout",
        "podTemplate",
    ];
    let mut out = Map::new();
    for k in ORDER {
        if let Some(v) = spec.shift_remove(k) {
            out.insert(k.into(), v);
        }
    }
    out.extend(spec);
    out
}

fn pod_template_fields(pt: &Map<String, JsonValue>) -> Vec<String> {
    let mut out = Vec::new();
    for (section, v) in pt {
        if let Some(o) = v.as_object() {
            for (k, v) in o {
                let base = format!("{section}.{k}");
                match (k.as_str(), v) {
                    ("containers" | "initContainers", JsonValue::Array(cs)) => {
                        for c in cs {
                            let n = c["name"].as_str().unwrap_or("");
                            out.push(format!("{base}[{n}]"));
                        }
                    }
                    _ => out.push(base),
                }
            }
        }
    }
    out
}

/// The DaemonSet's own fields: rollout settings, and what drover cannot carry.
fn daemonset_fields(d: &mut Draft, ds: &JsonValue, spec: &mut Map<String, JsonValue>) {
    let mut rollout = Map::new();
    if let Some(s) = ds.get("spec").and_then(JsonValue::as_object) {
        for (k, v) in s {
            let path = vec![key("spec"), key(k)];
            match k.as_str() {
                "template" => {}
                "selector" => {
                    let labels = v.get("matchLabels").and_then(JsonValue::as_object);
                    let only_labels = v
                        .as_object()
                        .is_some_and(|o| o.keys().all(|k| k == "matchLabels"));
                    let subset = labels
                        .is_some_and(|l| l.iter().all(|(k, val)| d.pod_labels.get(k) == Some(val)));
                    if !(only_labels && subset) {
                        d.not_carried(
                            path,
                            v,
                            "drover selects a DaemonSet's pods by its own labels; this selector is not the pod labels",
                        );
                    }
                }
                "minReadySeconds" => match v.as_i64() {
                    Some(0) => {}
                    Some(n) => {
                        rollout.insert("minReadySeconds".into(), json!(n));
                    }
                    None => d.not_carried(path, v, "not an integer"),
                },
                "updateStrategy" => {
                    let ty = v
                        .get("type")
                        .and_then(JsonValue::as_str)
                        .unwrap_or("RollingUpdate");
                    if ty == "OnDelete" {
                        // drover replaces the pods itself, with the same stages and
                        // gates (rollout.driver: drover renders OnDelete again).
                        rollout.insert("driver".into(), json!("drover"));
                        if let Some(ru) = v.get("rollingUpdate") {
                            let rpath = vec![key("spec"), key(k), key("rollingUpdate")];
                            d.not_carried(rpath, ru, "OnDelete has no rolling update settings");
                        }
                        continue;
                    }
                    if ty != "RollingUpdate" {
                        d.not_carried(
                            path,
                            v,
                            format!("`{ty}` is not a DaemonSet update strategy (RollingUpdate or OnDelete)"),
                        );
                        continue;
                    }
                    if let Some(ru) = v.get("rollingUpdate").and_then(JsonValue::as_object) {
                        for (rk, rv) in ru {
                            let rpath = vec![key("spec"), key(k), key("rollingUpdate"), key(rk)];
                            let int_or_pct =
                                rv.is_i64() || rv.as_str().is_some_and(|s| s.ends_with('%'));
                            match rk.as_str() {
                                "maxUnavailable" | "maxSurge" if int_or_pct => {
                                    rollout.insert(rk.clone(), rv.clone());
                                }
                                _ => {
                                    d.not_carried(rpath, rv, "not a rollout setting drover renders")
                                }
                            }
                        }
                    }
                }
                "revisionHistoryLimit" => match v.as_i64() {
                    Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => {
                        spec.insert("revisionHistoryLimit".into(), json!(n));
                    }
                    _ => d.not_carried(path, v, "not an integer between 0 and 2147483647"),
                },
                _ => d.not_carried(path, v, "not a DaemonSet field drover renders"),
            }
        }
    }
    if let Some(meta) = ds.get("metadata").and_then(JsonValue::as_object) {
        for (k, v) in meta {
            if !matches!(k.as_str(), "name" | "namespace" | "labels" | "annotations") {
                d.not_carried(
                    vec![key("metadata"), key(k)],
                    v,
                    "not a DaemonSet field drover renders",
                );
            }
        }
    }
    if !rollout.is_empty() {
        spec.insert("rollout".into(), JsonValue::Object(rollout));
    }
}

/// Labels and annotations: on both the DaemonSet and its pods → the Daemon's
/// metadata; on the pods only → podTemplate.metadata; on the DaemonSet only → not
/// carried.
fn labels_and_annotations(
    d: &mut Draft,
    ds: &JsonValue,
    template: &JsonValue,
    name: &str,
    metadata: &mut Map<String, JsonValue>,
    pt_meta: &mut Map<String, JsonValue>,
    spec: &mut Map<String, JsonValue>,
) {
    // The pods' app.kubernetes.io/name, when it is not the daemon's, is the Daemon's
    // appName (drover puts it on the DaemonSet and the pods alike).
    let app_name: Option<String> = template
        .pointer("/metadata/labels")
        .and_then(|l| l.get(LABEL_NAME))
        .and_then(JsonValue::as_str)
        .filter(|v| *v != name && !v.is_empty() && syntax::label_value(v).is_ok())
        .map(str::to_string);
    if let Some(a) = &app_name {
        spec.insert("appName".into(), json!(a));
    }
    let own_name = |v: &JsonValue| v.as_str() == Some(app_name.as_deref().unwrap_or(name));
    if let Some(tm) = template.get("metadata").and_then(JsonValue::as_object) {
        for (k, v) in tm {
            if !matches!(k.as_str(), "labels" | "annotations") {
                d.not_carried(
                    vec![key("spec"), key("template"), key("metadata"), key(k)],
                    v,
                    TEMPLATE_METADATA,
                );
            }
        }
    }
    for field in ["labels", "annotations"] {
        let on_ds = ds
            .pointer(&format!("/metadata/{field}"))
            .and_then(JsonValue::as_object)
            .cloned()
            .unwrap_or_default();
        let on_pods = template
            .pointer(&format!("/metadata/{field}"))
            .and_then(JsonValue::as_object)
            .cloned()
            .unwrap_or_default();
        let reserved = |k: &str| {
            k.starts_with("drover.dev/")
                || (field == "labels" && (k == LABEL_MANAGED_BY || k == LABEL_NAME))
        };
        let mut both = Map::new();
        let mut pods_only = Map::new();
        for (k, v) in &on_pods {
            let path = vec![
                key("spec"),
                key("template"),
                key("metadata"),
                key(field),
                key(k),
            ];
            if field == "labels" && k == LABEL_NAME {
                if !own_name(v) {
                    d.not_carried(
                        path,
                        v,
                        format!("drover sets {LABEL_NAME} to the daemon's name, `{name}`, or to spec.appName, a label value"),
                    );
                }
                continue;
            }
            if reserved(k) {
                d.not_carried(path, v, RESERVED_KEY);
                continue;
            }
            let valid = v.is_string()
                && syntax::label_key(k).is_ok()
                && (field == "annotations"
                    || syntax::label_value(v.as_str().unwrap_or("")).is_ok());
            if !valid {
                d.not_carried(
                    path,
                    v,
                    format!("not a valid {} for drover", &field[..field.len() - 1]),
                );
                continue;
            }
            if on_ds.get(k) == Some(v) {
                both.insert(k.clone(), v.clone());
            } else {
                pods_only.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in &on_ds {
            if both.contains_key(k) {
                continue;
            }
            if field == "labels" && k == LABEL_NAME && own_name(v) {
                continue;
            }
            d.not_carried(
                vec![key("metadata"), key(field), key(k)],
                v,
                if field == "labels" && k == LABEL_NAME {
                    format!("drover sets {LABEL_NAME} on the DaemonSet and its pods alike: to the daemon's name, `{name}`, or to spec.appName (here the pods' value)")
                } else if reserved(k) {
                    RESERVED_KEY.to_string()
                } else {
                    format!("only on the DaemonSet, not on its pods: drover puts a Daemon's {field} on both")
                },
            );
        }
        if !both.is_empty() {
            metadata.insert(field.into(), JsonValue::Object(both));
        }
        if !pods_only.is_empty() {
            pt_meta.insert(field.into(), JsonValue::Object(pods_only));
        }
    }
}

/// The main (first) container: short-form fields into `spec`; the rest is returned,
/// for podTemplate. A field the short form spells but refuses in this value cannot go
/// to podTemplate either (it may not spell the main container's owned fields), so the
/// DaemonSet is not imported: the error says which field and why.
fn main_container(
    d: &mut Draft,
    main: &Map<String, JsonValue>,
    pod: &Map<String, JsonValue>,
    spec: &mut Map<String, JsonValue>,
) -> Result<Map<String, JsonValue>, String> {
    let mut rest = main.clone();
    rest.shift_remove("name");
    let host_network = pod.get("hostNetwork") == Some(&JsonValue::Bool(true));
    let field = |k: &str| format!("spec.template.spec.containers[0].{k}");
    match rest.shift_remove("image") {
        Some(JsonValue::String(image)) => {
            spec.insert("image".into(), json!(image));
        }
        _ => return Err("its first container has no image".into()),
    }
    if let Some(p) = rest.shift_remove("imagePullPolicy") {
        match p.as_str() {
            Some(v @ ("Always" | "IfNotPresent" | "Never")) => {
                spec.insert("imagePullPolicy".into(), json!(v));
            }
            _ => {
                return Err(format!(
                    "{}: `{p}` is not Always, IfNotPresent or Never",
                    field("imagePullPolicy")
                ));
            }
        }
    }
    for k in ["command", "args"] {
        if let Some(v) = rest.shift_remove(k) {
            match &v {
                JsonValue::Array(items) if items.iter().all(JsonValue::is_string) => {
                    spec.insert(k.into(), v);
                }
                _ => return Err(format!("{}: must be a list of strings", field(k))),
            }
        }
    }
    if let Some(env) = rest.shift_remove("env") {
        let items = env
            .as_array()
            .ok_or_else(|| format!("{}: must be a list", field("env")))?;
        let (short, dropped) = short_env(items).map_err(|e| format!("{}: {e}", field("env")))?;
        for i in dropped {
            let mut p = pod_path(&["containers"]);
            p.extend([Seg::Index(0), key("env"), Seg::Index(i)]);
            d.excluded.push(p);
            d.report.notes.push(format!(
                "{}[{i}] is set again later in the list, which wins in Kubernetes; it is left out",
                field("env")
            ));
        }
        spec.insert("env".into(), short);
    }
    if let Some(ports) = rest.shift_remove("ports") {
        let items = ports
            .as_array()
            .ok_or_else(|| format!("{}: must be a list", field("ports")))?;
        let short =
            short_ports(items, host_network).map_err(|e| format!("{}: {e}", field("ports")))?;
        spec.insert("ports".into(), JsonValue::Array(short));
    }
    if let Some(r) = rest.shift_remove("resources") {
        let obj = r
            .as_object()
            .ok_or_else(|| format!("{}: must be a mapping", field("resources")))?;
        let short = short_resources(obj).map_err(|e| format!("{}: {e}", field("resources")))?;
        spec.insert("resources".into(), short);
    }
    for k in [
        "readinessProbe",
        "livenessProbe",
        "startupProbe",
        "securityContext",
    ] {
        if let Some(v) = rest.shift_remove(k) {
            if !v.is_object() {
                return Err(format!("{}: must be a mapping", field(k)));
            }
            spec.insert(k.into(), v);
        }
    }
    // Mounts: a hostPath volume mounted once by the main container, with nothing but
    // what the short form has, becomes a short-form mount.
    if let Some(JsonValue::Array(mounts)) = rest.get("volumeMounts").cloned() {
        let volumes = pod
            .get("volumes")
            .and_then(JsonValue::as_array)
            .cloned()
            .unwrap_or_default();
        let mut short = Vec::new();
        let mut left = Vec::new();
        for m in &mounts {
            let vname = m.get("name").and_then(JsonValue::as_str).unwrap_or("");
            let once = mounts
                .iter()
                .filter(|x| x.get("name").and_then(JsonValue::as_str) == Some(vname))
                .count()
                == 1;
            let vol = volumes
                .iter()
                .find(|v| v.get("name").and_then(JsonValue::as_str) == Some(vname));
            match vol.filter(|_| once).and_then(|v| short_mount(m, v)) {
                Some(s) => short.push(s),
                None => left.push(m.clone()),
            }
        }
        if !short.is_empty() {
            spec.insert("mounts".into(), JsonValue::Array(short));
        }
        if left.is_empty() {
            rest.shift_remove("volumeMounts");
        } else {
            rest.insert("volumeMounts".into(), JsonValue::Array(left));
        }
    }
    Ok(rest)
}

fn valid_env_name(n: &str) -> bool {
    !n.is_empty() && !n.contains('=') && !n.chars().any(char::is_control)
}

/// Env in the short form: the map form when every item is a plain value and the
/// names are already sorted (the map form renders sorted), the list form otherwise.
/// A name set twice keeps its last item, as Kubernetes does; the indexes of the
/// earlier ones are returned.
fn short_env(env: &[JsonValue]) -> Result<(JsonValue, Vec<usize>), String> {
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, e) in env.iter().enumerate() {
        let o = e.as_object().ok_or("an item is not a mapping")?;
        if let Some(k) = o
            .keys()
            .find(|k| !matches!(k.as_str(), "name" | "value" | "valueFrom"))
        {
            return Err(format!("`{k}` is not an EnvVar field"));
        }
        let n = o
            .get("name")
            .and_then(JsonValue::as_str)
            .ok_or("an item has no name")?;
        if !valid_env_name(n) {
            return Err(format!("`{n}` is not a valid environment variable name"));
        }
        if o.contains_key("value") && o.contains_key("valueFrom") {
            return Err(format!("`{n}` sets both value and valueFrom"));
        }
        if let Some(v) = o.get("value")
            && !v.is_string()
        {
            return Err(format!("the value of `{n}` is not a string"));
        }
        last.insert(n, i);
    }
    let dropped: Vec<usize> = (0..env.len())
        .filter(|i| !last.values().any(|l| l == i))
        .collect();
    let kept: Vec<&JsonValue> = env
        .iter()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(_, e)| e)
        .collect();
    let plain = kept.iter().all(|e| {
        e.as_object()
            .is_some_and(|o| o.len() == 2 && o.contains_key("value"))
    });
    let sorted = kept
        .windows(2)
        .all(|w| w[0]["name"].as_str() < w[1]["name"].as_str());
    let short = if plain && sorted && !kept.is_empty() {
        JsonValue::Object(
            kept.iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap_or_default().to_string(),
                        e["value"].clone(),
                    )
                })
                .collect(),
        )
    } else {
        JsonValue::Array(kept.into_iter().cloned().collect())
    };
    Ok((short, dropped))
}

fn short_ports(ports: &[JsonValue], host_network: bool) -> Result<Vec<JsonValue>, String> {
    let mut names = BTreeSet::new();
    let mut host = BTreeSet::new();
    let mut out = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let o = p
            .as_object()
            .ok_or_else(|| format!("[{i}] is not a mapping"))?;
        if let Some(k) = o.keys().find(|k| {
            !matches!(
                k.as_str(),
                "name" | "containerPort" | "hostPort" | "protocol"
            )
        }) {
            return Err(format!("[{i}].{k}: the short form has no `{k}`"));
        }
        let cp = o
            .get("containerPort")
            .and_then(JsonValue::as_i64)
            .filter(|cp| (1..=65535).contains(cp))
            .ok_or_else(|| format!("[{i}].containerPort must be between 1 and 65535"))?;
        let proto = match o.get("protocol") {
            None => "TCP",
            Some(JsonValue::String(s)) if matches!(s.as_str(), "TCP" | "UDP" | "SCTP") => s,
            Some(v) => return Err(format!("[{i}].protocol `{v}` is not TCP, UDP or SCTP")),
        };
        if let Some(h) = o.get("hostPort") {
            let h = h
                .as_i64()
                .filter(|h| (1..=65535).contains(h))
                .ok_or_else(|| format!("[{i}].hostPort must be between 1 and 65535"))?;
            if host_network && h != cp {
                return Err(format!(
                    "[{i}].hostPort must equal containerPort under hostNetwork"
                ));
            }
            if !host.insert((h, proto.to_string())) {
                return Err(format!("[{i}].hostPort {h}/{proto} is bound twice"));
            }
        }
        if let Some(n) = o.get("name") {
            let n = n
                .as_str()
                .ok_or_else(|| format!("[{i}].name is not a string"))?;
            syntax::port_name(n).map_err(|e| format!("[{i}].name: {e}"))?;
            if !names.insert(n.to_string()) {
                return Err(format!("[{i}].name `{n}` is used twice"));
            }
        }
        out.push(p.clone());
    }
    Ok(out)
}

fn short_resources(r: &Map<String, JsonValue>) -> Result<JsonValue, String> {
    let mut out = Map::new();
    for (kind, v) in r {
        if !matches!(kind.as_str(), "limits" | "requests") {
            return Err(format!("the short form has no `{kind}`"));
        }
        let mut q = Map::new();
        let list = v
            .as_object()
            .ok_or_else(|| format!("{kind} is not a mapping"))?;
        for (name, val) in list {
            let text = match val {
                JsonValue::String(s) => s.clone(),
                JsonValue::Number(n) => n.to_string(),
                _ => return Err(format!("{kind}.{name} is not a quantity")),
            };
            syntax::label_key(name).map_err(|e| format!("{kind}.{name}: {e}"))?;
            syntax::quantity(&text).map_err(|e| format!("{kind}.{name}: {e}"))?;
            q.insert(name.clone(), JsonValue::String(text));
        }
        out.insert(kind.clone(), JsonValue::Object(q));
    }
    Ok(JsonValue::Object(out))
}

fn clean_path(p: &str) -> bool {
    p.starts_with('/') && !p.split('/').any(|c| c == "..")
}

fn short_mount(m: &JsonValue, vol: &JsonValue) -> Option<JsonValue> {
    let mo = m.as_object()?;
    let vo = vol.as_object()?;
    if !vo.keys().all(|k| k == "name" || k == "hostPath") {
        return None;
    }
    let hp = vo.get("hostPath")?.as_object()?;
    if !hp.keys().all(|k| k == "path" || k == "type") {
        return None;
    }
    if !mo.keys().all(|k| {
        matches!(
            k.as_str(),
            "name" | "mountPath" | "readOnly" | "mountPropagation"
        )
    }) {
        return None;
    }
    let name = mo.get("name")?.as_str()?;
    let host_path = hp.get("path")?.as_str()?;
    let mount_path = mo.get("mountPath")?.as_str()?;
    if syntax::dns_label(name).is_err() || !clean_path(host_path) || !clean_path(mount_path) {
        return None;
    }
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    out.insert("hostPath".into(), json!(host_path));
    out.insert("mountPath".into(), json!(mount_path));
    match mo.get("readOnly") {
        None | Some(JsonValue::Bool(false)) => {}
        Some(JsonValue::Bool(true)) => {
            out.insert("readOnly".into(), json!(true));
        }
        Some(_) => return None,
    }
    if let Some(t) = hp.get("type") {
        let t = t.as_str()?;
        const TYPES: [&str; 8] = [
            "",
            "DirectoryOrCreate",
            "Directory",
            "FileOrCreate",
            "File",
            "Socket",
            "CharDevice",
            "BlockDevice",
        ];
        if !TYPES.contains(&t) {
            return None;
        }
        out.insert("type".into(), json!(t));
    }
    if let Some(p) = mo.get("mountPropagation") {
        let p = p.as_str()?;
        if !matches!(p, "None" | "HostToContainer" | "Bidirectional") {
            return None;
        }
        out.insert("mountPropagation".into(), json!(p));
    }
    Some(JsonValue::Object(out))
}

/// drover's toleration rules (validate.rs), so that a toleration it would refuse is
/// reported here rather than failing the whole import.
fn toleration_problem(t: &JsonValue) -> Option<String> {
    let parsed: crate::model::Toleration = match serde_json::from_value(t.clone()) {
        Ok(p) => p,
        Err(e) => return Some(e.to_string()),
    };
    let op = parsed.operator.as_deref().unwrap_or("Equal");
    if !matches!(op, "Equal" | "Exists") {
        return Some(format!("unknown operator `{op}`"));
    }
    if op == "Exists" && parsed.value.as_deref().is_some_and(|v| !v.is_empty()) {
        return Some("a value with operator Exists".into());
    }
    let key = parsed.key.as_deref().unwrap_or("");
    if op == "Equal" && key.is_empty() {
        return Some("a toleration without a key must use operator Exists".into());
    }
    if !key.is_empty()
        && let Err(e) = syntax::label_key(key)
    {
        return Some(e);
    }
    if let Some(e) = &parsed.effect
        && !matches!(
            e.as_str(),
            "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute"
        )
    {
        return Some(format!("unknown effect `{e}`"));
    }
    None
}

/// The pod's fields: short form where it has them, podTemplate for the rest, and
/// placement, which drover owns, reported.
fn pod_fields(
    d: &mut Draft,
    pod: &Map<String, JsonValue>,
    main_rest: Map<String, JsonValue>,
    spec: &mut Map<String, JsonValue>,
    pt_spec: &mut Map<String, JsonValue>,
) {
    let short_mounts: BTreeSet<String> = spec
        .get("mounts")
        .and_then(JsonValue::as_array)
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in pod {
        let path = pod_path(&[k]);
        match k.as_str() {
            "containers" => {
                let mut list = Vec::new();
                if !main_rest.is_empty() {
                    let mut c = Map::new();
                    c.insert("name".into(), json!(d.name));
                    c.extend(main_rest.clone());
                    list.push(JsonValue::Object(c));
                }
                list.extend(v.as_array().into_iter().flatten().skip(1).cloned());
                if !list.is_empty() {
                    pt_spec.insert(k.clone(), JsonValue::Array(list));
                }
            }
            "volumes" => {
                // A volume drover's rules take as written goes to spec.volumes; a
                // hostPath volume, or one they would refuse, stays in podTemplate
                // (whose rules for hostPath are the short form's mounts').
                let (short, rest): (Vec<JsonValue>, Vec<JsonValue>) = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|vol| {
                        !vol["name"]
                            .as_str()
                            .is_some_and(|n| short_mounts.contains(n))
                    })
                    .cloned()
                    .partition(short_volume);
                if !short.is_empty() {
                    spec.insert(k.clone(), JsonValue::Array(short));
                }
                if !rest.is_empty() {
                    pt_spec.insert(k.clone(), JsonValue::Array(rest));
                }
            }
            "hostNetwork" | "hostPID" | "hostIPC" => match v {
                JsonValue::Bool(true) => {
                    spec.insert(k.clone(), json!(true));
                }
                JsonValue::Bool(false) => {}
                _ => {
                    pt_spec.insert(k.clone(), v.clone());
                }
            },
            "priorityClassName" | "serviceAccountName" => match v.as_str() {
                Some(s) if syntax::dns_subdomain(s).is_ok() => {
                    spec.insert(k.clone(), json!(s));
                    if k == "serviceAccountName" {
                        d.service_account = Some(s.to_string());
                    }
                }
                _ => {
                    pt_spec.insert(k.clone(), v.clone());
                }
            },
            "serviceAccount" => {
                let name = pod.get("serviceAccountName");
                match (v.as_str(), name) {
                    (Some(s), None) if syntax::dns_subdomain(s).is_ok() => {
                        spec.insert("serviceAccountName".into(), json!(s));
                        d.service_account = Some(s.to_string());
                        d.report.notes.push(
                            "spec.template.spec.serviceAccount (deprecated) is carried as serviceAccountName".into(),
                        );
                    }
                    (_, Some(n)) if n == v => {
                        d.report.notes.push(
                            "spec.template.spec.serviceAccount (deprecated) equals serviceAccountName and is left out; the API server fills it in".into(),
                        );
                    }
                    _ => d.not_carried(
                        path,
                        v,
                        "the deprecated serviceAccount differs from serviceAccountName; the API server uses serviceAccountName",
                    ),
                }
            }
            "tolerations" => {
                let mut ok = Vec::new();
                for (i, t) in v.as_array().into_iter().flatten().enumerate() {
                    match toleration_problem(t) {
                        // drover renders each toleration once.
                        None if ok.contains(t) => {
                            let mut p = path.clone();
                            p.push(Seg::Index(i));
                            d.excluded.push(p);
                            d.report.notes.push(format!(
                                "spec.template.spec.tolerations[{i}] repeats an earlier toleration and is left out"
                            ));
                        }
                        None => ok.push(t.clone()),
                        Some(e) => {
                            let mut p = path.clone();
                            p.push(Seg::Index(i));
                            d.not_carried(p, t, format!("drover refuses this toleration: {e}"));
                        }
                    }
                }
                if !v.is_array() {
                    d.not_carried(path, v, "tolerations must be a list");
                } else if !ok.is_empty() {
                    spec.insert(k.clone(), JsonValue::Array(ok));
                }
            }
            "nodeSelector" => match short_node_selector(v) {
                Ok(sel) => {
                    // Carried, but rendered into every node-affinity term rather than
                    // as a pod nodeSelector: the comparison leaves it out, as it leaves
                    // out the affinity.
                    d.excluded.push(path);
                    d.report.notes.push(
                        "spec.template.spec.nodeSelector is carried as the Daemon's nodeSelector: drover ANDs it into every node-affinity term it renders, instead of a pod nodeSelector".into(),
                    );
                    spec.insert("nodeSelector".into(), sel);
                }
                Err(e) => d.not_carried(path, v, e),
            },
            "nodeName" => d.not_carried(
                path,
                v,
                "nodeName pins every pod to one node, which breaks the node-group partition",
            ),
            "affinity" => {
                let mut rest = v.as_object().cloned().unwrap_or_default();
                if let Some(na) = rest.shift_remove("nodeAffinity") {
                    node_affinity(d, &na, spec);
                }
                if !rest.is_empty() {
                    pt_spec.insert(k.clone(), JsonValue::Object(rest));
                }
            }
            _ => {
                pt_spec.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Whether a volume goes to `spec.volumes` as written: a DNS-label name, exactly one
/// source that is not hostPath, and nothing the Kubernetes type does not read back
/// the same.
fn short_volume(v: &JsonValue) -> bool {
    let Some(o) = v.as_object() else {
        return false;
    };
    let named = o
        .get("name")
        .and_then(JsonValue::as_str)
        .is_some_and(|n| syntax::dns_label(n).is_ok());
    let sources: Vec<&String> = o.keys().filter(|k| *k != "name").collect();
    let one = matches!(sources.as_slice(), [s] if *s != "hostPath" && !o[s.as_str()].is_null());
    named
        && one
        && serde_json::from_value::<k8s_openapi::api::core::v1::Volume>(v.clone())
            .ok()
            .and_then(|t| serde_json::to_value(t).ok())
            .is_some_and(|back| &back == v)
}

/// A pod `nodeSelector` as the Daemon's: every key and value one drover accepts.
fn short_node_selector(v: &JsonValue) -> Result<JsonValue, String> {
    let m = v.as_object().ok_or("nodeSelector is not a mapping")?;
    for (k, val) in m {
        let val = val
            .as_str()
            .ok_or_else(|| format!("the value of `{k}` is not a string"))?;
        syntax::label_key(k).map_err(|e| format!("`{k}`: {e}"))?;
        syntax::label_value(val).map_err(|e| format!("`{k}`: {e}"))?;
    }
    Ok(v.clone())
}

/// Required node affinity of one term of `matchExpressions` → the Daemon's
/// `nodeAffinity` (ANDed into every term drover renders); the rest is named.
fn node_affinity(d: &mut Draft, na: &JsonValue, spec: &mut Map<String, JsonValue>) {
    let base = ["affinity", "nodeAffinity"];
    let Some(o) = na.as_object() else {
        d.not_carried(pod_path(&base), na, NODE_CONSTRAINTS);
        return;
    };
    for (k, v) in o {
        let path = pod_path(&["affinity", "nodeAffinity", k]);
        if k != "requiredDuringSchedulingIgnoredDuringExecution" {
            d.not_carried(
                path,
                v,
                "only required node affinity can be carried: drover renders the node affinity from the groups and the daemon's constraints",
            );
            continue;
        }
        match short_node_affinity(v) {
            Ok(exprs) => {
                d.excluded.push(path);
                d.report.notes.push(
                    "the required node affinity is carried as the Daemon's nodeAffinity: drover ANDs it into every node-affinity term it renders".into(),
                );
                spec.insert("nodeAffinity".into(), json!({"matchExpressions": exprs}));
            }
            Err(e) => d.not_carried(path, v, e),
        }
    }
}

/// One `nodeSelectorTerm` of `matchExpressions` drover's selector rules accept; more
/// terms are ORed, which a daemon's (ANDed) constraints cannot say.
fn short_node_affinity(v: &JsonValue) -> Result<Vec<JsonValue>, String> {
    let terms = v
        .get("nodeSelectorTerms")
        .and_then(JsonValue::as_array)
        .ok_or("no nodeSelectorTerms list")?;
    if v.as_object().is_some_and(|o| o.len() != 1) {
        return Err("only nodeSelectorTerms can be carried".into());
    }
    let [term] = terms.as_slice() else {
        return Err(format!(
            "{} nodeSelectorTerms are ORed; a daemon's node constraints are ANDed, so only one term can be carried: narrow the NodeGroup selectors by hand",
            terms.len()
        ));
    };
    let t = term.as_object().ok_or("a term is not a mapping")?;
    if let Some(k) = t.keys().find(|k| *k != "matchExpressions") {
        return Err(format!(
            "`{k}` in a term cannot be carried (only matchExpressions)"
        ));
    }
    let exprs = t
        .get("matchExpressions")
        .and_then(JsonValue::as_array)
        .filter(|e| !e.is_empty())
        .ok_or("a term without matchExpressions")?;
    let mut reqs = Vec::new();
    for e in exprs {
        let r: crate::model::SelectorRequirement =
            serde_json::from_value(e.clone()).map_err(|x| format!("{e}: {x}"))?;
        syntax::label_key(&r.key).map_err(|x| format!("`{}`: {x}", r.key))?;
        let op = crate::selector::Op::parse(&r.operator)
            .ok_or_else(|| format!("unknown operator `{}`", r.operator))?;
        use crate::selector::Op;
        let ok = match op {
            Op::In | Op::NotIn => {
                !r.values.is_empty() && r.values.iter().all(|v| syntax::label_value(v).is_ok())
            }
            Op::Exists | Op::DoesNotExist => r.values.is_empty(),
            Op::Gt | Op::Lt => r.values.len() == 1 && r.values[0].parse::<i64>().is_ok(),
        };
        if !ok {
            return Err(format!(
                "`{} {}` has values drover refuses",
                r.key, r.operator
            ));
        }
        reqs.push(crate::selector::Requirement::new(
            r.key.clone(),
            op,
            r.values.clone(),
        ));
    }
    if !crate::selector::satisfiable(&reqs) {
        return Err("its expressions contradict each other".into());
    }
    Ok(exprs.clone())
}

/// Names of the ConfigMaps and Secrets a pod spec refers to.
fn references(pod: &JsonValue) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cms = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let add = |set: &mut BTreeSet<String>, v: Option<&JsonValue>| {
        if let Some(s) = v.and_then(JsonValue::as_str) {
            set.insert(s.to_string());
        }
    };
    for v in pod["volumes"].as_array().into_iter().flatten() {
        add(&mut cms, v.pointer("/configMap/name"));
        add(&mut secrets, v.pointer("/secret/secretName"));
        for s in v
            .pointer("/projected/sources")
            .and_then(JsonValue::as_array)
            .into_iter()
            .flatten()
        {
            add(&mut cms, s.pointer("/configMap/name"));
            add(&mut secrets, s.pointer("/secret/name"));
        }
    }
    for list in ["containers", "initContainers"] {
        for c in pod[list].as_array().into_iter().flatten() {
            for e in c["env"].as_array().into_iter().flatten() {
                add(&mut cms, e.pointer("/valueFrom/configMapKeyRef/name"));
                add(&mut secrets, e.pointer("/valueFrom/secretKeyRef/name"));
            }
            for e in c["envFrom"].as_array().into_iter().flatten() {
                add(&mut cms, e.pointer("/configMapRef/name"));
                add(&mut secrets, e.pointer("/secretRef/name"));
            }
        }
    }
    for s in pod["imagePullSecrets"].as_array().into_iter().flatten() {
        add(&mut secrets, s.get("name"));
    }
    (cms, secrets)
}

fn subset_of(selector: Option<&JsonValue>, labels: &Map<String, JsonValue>) -> bool {
    selector
        .and_then(JsonValue::as_object)
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Finds each daemon's companion objects and ConfigMaps among the other input
/// objects and adds their files; returns the objects no daemon uses.
fn companions<'m>(
    manifests: &'m [Manifest],
    sets: &[(usize, JsonValue)],
    drafts: &mut [Draft],
    files: &mut Vec<OutFile>,
    written: &mut Vec<&'m Manifest>,
    fleet_namespace: &str,
) -> Vec<LeftOut> {
    let mut left_out = Vec::new();
    let ds_indexes: BTreeSet<usize> = sets.iter().map(|(i, _)| *i).collect();
    let pool: Vec<(usize, &Manifest)> = manifests
        .iter()
        .enumerate()
        .filter(|(i, _)| !ds_indexes.contains(i))
        .collect();
    // (pool position, daemon index): a companion claimed by a daemon.
    let mut claims: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let mut config: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let same_ns = |m: &Manifest, ns: &str| m.namespace().is_none_or(|n| n == ns);
    for (di, d) in drafts.iter_mut().enumerate() {
        let pod = d
            .upstream
            .pointer("/spec/template/spec")
            .cloned()
            .unwrap_or_default();
        let (cms, secrets) = references(&pod);
        for s in &secrets {
            d.report.secrets.push(s.clone());
        }
        if !secrets.is_empty() {
            d.report.notes.push(format!(
                "it refers to Secret(s) {}: drover never writes a Secret to git; create them with a SealedSecret or an ExternalSecret",
                secrets.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        for cm in &cms {
            match pool.iter().position(|(_, m)| {
                m.kind() == "ConfigMap" && m.name() == cm && same_ns(m, &d.namespace)
            }) {
                Some(p) => {
                    config.entry(p).or_default().insert(di);
                }
                None => d.report.notes.push(format!(
                    "it refers to ConfigMap `{cm}`, which is not in the input"
                )),
            }
        }
        let mut services = Vec::new();
        for (p, (_, m)) in pool.iter().enumerate() {
            let v = &m.value;
            let matches = match m.kind() {
                "ServiceAccount" => {
                    d.service_account.as_deref() == Some(m.name()) && same_ns(m, &d.namespace)
                }
                "Service" => {
                    let hit = same_ns(m, &d.namespace)
                        && subset_of(v.pointer("/spec/selector"), &d.pod_labels);
                    if hit {
                        services.push(v.pointer("/metadata/labels").cloned().unwrap_or_default());
                    }
                    hit
                }
                "NetworkPolicy" => {
                    same_ns(m, &d.namespace)
                        && subset_of(v.pointer("/spec/podSelector/matchLabels"), &d.pod_labels)
                }
                "PodMonitor" | "PodDisruptionBudget" => {
                    same_ns(m, &d.namespace)
                        && subset_of(v.pointer("/spec/selector/matchLabels"), &d.pod_labels)
                }
                "RoleBinding" | "ClusterRoleBinding" => {
                    let Some(sa) = d.service_account.as_deref() else {
                        continue;
                    };
                    let binding_ns = m.namespace().unwrap_or(&d.namespace);
                    v["subjects"].as_array().into_iter().flatten().any(|s| {
                        s["kind"] == "ServiceAccount"
                            && s["name"].as_str() == Some(sa)
                            && s["namespace"].as_str().unwrap_or(binding_ns) == d.namespace
                    })
                }
                _ => false,
            };
            if matches {
                claims.entry(p).or_default().insert(di);
            }
        }
        // What the claimed bindings grant, and monitors of the claimed services.
        let bound: Vec<(String, String, Option<String>)> = claims
            .iter()
            .filter(|(_, ds)| ds.contains(&di))
            .map(|(p, _)| pool[*p].1)
            .filter(|m| m.kind().ends_with("RoleBinding"))
            .map(|m| {
                (
                    m.value
                        .pointer("/roleRef/kind")
                        .and_then(JsonValue::as_str)
                        .unwrap_or("")
                        .to_string(),
                    m.value
                        .pointer("/roleRef/name")
                        .and_then(JsonValue::as_str)
                        .unwrap_or("")
                        .to_string(),
                    m.namespace().map(str::to_string),
                )
            })
            .collect();
        for (p, (_, m)) in pool.iter().enumerate() {
            let granted = bound.iter().any(|(kind, name, ns)| {
                m.kind() == kind
                    && m.name() == name
                    && (kind == "ClusterRole" || m.namespace() == ns.as_deref())
            });
            let monitors = m.kind() == "ServiceMonitor"
                && services.iter().any(|l| {
                    l.as_object().is_some_and(|l| {
                        subset_of(m.value.pointer("/spec/selector/matchLabels"), l)
                    })
                });
            if granted || monitors {
                claims.entry(p).or_default().insert(di);
            }
        }
    }
    // Each input ConfigMap a daemon refers to: its keys become files under config/,
    // read by the `spec.configFiles` entries its plain volumes become; a use that
    // cannot be an entry keeps the ConfigMap by name, and the ConfigMap is then
    // written as a companion, so drover applies it either way.
    for (p, owners) in &config {
        let m = pool[*p].1;
        let first = drafts[*owners.iter().next().expect("one")].name.clone();
        let dir = format!("{CONFIG_DIR}/{first}/{}", safe_name(m.name()));
        let (keys, problems) = config_map_files(m);
        let unwritable = if !problems.is_empty() {
            Some(format!("cannot be config files: {}", problems.join(", ")))
        } else if keys.is_empty() {
            Some("cannot be config files: the ConfigMap holds no data".to_string())
        } else {
            None
        };
        let paths: Vec<String> = keys.keys().map(|k| format!("{dir}/{k}")).collect();
        let mut any_entry = false;
        for o in owners {
            let d = &mut drafts[*o];
            let (entries, by_name) = config_uses(d, m.name(), &dir, unwritable.as_deref());
            if !entries.is_empty() {
                any_entry = true;
                d.report.config_files.extend(paths.iter().cloned());
                d.report.notes.push(format!(
                    "ConfigMap `{}` ({}) is written as {} file(s) under {dir}/ and mounted as spec.configFiles {}: {CONFIG_FILES_APPLIED}",
                    m.name(),
                    m.source,
                    paths.len(),
                    entries
                        .iter()
                        .map(|e| format!("`{e}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if !by_name.is_empty() {
                claims.entry(*p).or_default().insert(*o);
                d.report.notes.push(format!(
                    "ConfigMap `{}` ({}) is written as a companion and the pod template uses it by name, because {}: drover applies it with the companions, but a change to it does not restart the pods",
                    m.name(),
                    m.source,
                    by_name.join("; ")
                ));
            }
        }
        if any_entry {
            for (k, bytes) in keys {
                files.push(OutFile {
                    path: format!("{dir}/{k}"),
                    role: FileRole::Config,
                    bytes,
                });
            }
        }
    }
    let mut used_paths: BTreeSet<String> = BTreeSet::new();
    for (p, owners) in &claims {
        let m = pool[*p].1;
        let file = file_name(m);
        let dir = if owners.len() == 1 {
            let d = &drafts[*owners.iter().next().expect("one")];
            format!("{COMPANIONS_DIR}/{}", d.name)
        } else {
            COMPANIONS_DIR.to_string()
        };
        let path = unique(&mut used_paths, format!("{dir}/{file}"));
        let owner_names: Vec<&str> = owners.iter().map(|o| drafts[*o].name.as_str()).collect();
        let mut header = vec![
            format!(
                "Companion of {} (from {}).",
                owner_names.join(", "),
                m.source
            ),
            "A companion object: drover applies it before the first stage that writes its daemon's DaemonSets, and prunes it when it is removed from git."
                .to_string(),
        ];
        if let Some(ns) = m.namespace() {
            let fleet_ns = &drafts[*owners.iter().next().expect("one")].namespace;
            if ns != fleet_ns {
                header.push(format!("Its namespace is `{ns}`."));
            }
        }
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut manifest = m.value.clone();
        strip_server_fields(&mut manifest);
        own_companion(
            &mut manifest,
            &drafts[*owners.iter().next().expect("one")].namespace,
        );
        if m.kind().ends_with("RoleBinding") {
            let accounts: Vec<(&str, &str)> = owners
                .iter()
                .filter_map(|o| {
                    let d = &drafts[*o];
                    Some((d.service_account.as_deref()?, d.namespace.as_str()))
                })
                .collect();
            for sa in bind_moved_accounts(&mut manifest, &accounts, fleet_namespace) {
                for o in owners {
                    drafts[*o].report.notes.push(format!(
                        "{} `{}` binds ServiceAccount `{sa}`, which moves with it: its subject names the Fleet's namespace `{fleet_namespace}`",
                        m.kind(),
                        m.name()
                    ));
                }
            }
        }
        written.push(m);
        files.push(OutFile {
            path: path.clone(),
            role: FileRole::Companion,
            bytes: yaml_file(&header, &manifest),
        });
        for o in owners {
            drafts[*o].report.companions.push(path.clone());
        }
    }
    for (p, (_, m)) in pool.iter().enumerate() {
        // A DaemonSet here is not apps/v1, and is reported as such already.
        if claims.contains_key(&p) || config.contains_key(&p) || m.kind() == "DaemonSet" {
            continue;
        }
        let reason = match m.kind() {
            "Secret" => {
                "drover never writes a Secret to git: use a SealedSecret or an ExternalSecret"
                    .to_string()
            }
            "Namespace" => {
                "a namespace: the Fleet's spec.namespace names where drover puts the DaemonSets"
                    .to_string()
            }
            "CustomResourceDefinition" => {
                "a CRD: install it with the tool that owns it".to_string()
            }
            _ => "not a DaemonSet, and no imported DaemonSet uses it".to_string(),
        };
        left_out.push(LeftOut {
            source: m.source.clone(),
            object: m.describe(),
            reason,
        });
    }
    left_out
}

/// What [`CONFIG_DIR`] files of a ConfigMap are (key → bytes), and why a key cannot
/// be one (a key that is not a file name, a value that is not a string).
fn config_map_files(m: &Manifest) -> (BTreeMap<String, Vec<u8>>, Vec<String>) {
    let mut keys = BTreeMap::new();
    let mut problems = Vec::new();
    for (field, binary) in [("data", false), ("binaryData", true)] {
        for (k, v) in m.value[field].as_object().into_iter().flatten() {
            let ok_name = !k.is_empty()
                && k != "."
                && k != ".."
                && k.len() <= 253
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            let bytes = match (v.as_str(), binary) {
                (Some(s), false) => Some(s.as_bytes().to_vec()),
                (Some(s), true) => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(s).ok()
                }
                (None, _) => None,
            };
            match (ok_name, bytes) {
                (true, Some(bytes)) => {
                    keys.insert(k.clone(), bytes);
                }
                (false, _) => problems.push(format!("its key `{k}` is not a file name")),
                (true, None) => problems.push(format!(
                    "its `{field}.{k}` is not a {}",
                    if binary { "base64 string" } else { "string" }
                )),
            }
        }
    }
    (keys, problems)
}

/// How daemon `d` uses ConfigMap `cm`, whose files are (to be) written under `dir`:
/// each plain `configMap` volume that can be a `spec.configFiles` entry is turned
/// into one (in `d.doc`), and returned by name; every other use is returned as the
/// reason the ConfigMap must also exist by name.
fn config_uses(
    d: &mut Draft,
    cm: &str,
    dir: &str,
    unwritable: Option<&str>,
) -> (Vec<String>, Vec<String>) {
    let pod = d
        .upstream
        .pointer("/spec/template/spec")
        .cloned()
        .unwrap_or_default();
    let names_cm = |v: Option<&JsonValue>| v.and_then(JsonValue::as_str) == Some(cm);
    let mut by_name = Vec::new();
    let mut entries = Vec::new();
    for v in pod["volumes"].as_array().into_iter().flatten() {
        let vname = v["name"].as_str().unwrap_or_default();
        let projected = v
            .pointer("/projected/sources")
            .and_then(JsonValue::as_array)
            .into_iter()
            .flatten()
            .any(|s| names_cm(s.pointer("/configMap/name")));
        if projected {
            by_name.push(format!(
                "volume `{vname}` is a projected volume, which a config-file entry is not"
            ));
        }
        if !names_cm(v.pointer("/configMap/name")) {
            continue;
        }
        match config_entry(&pod, v, &d.name, dir, unwritable) {
            Ok(entry) => {
                take_config_volume(&mut d.doc, vname);
                let spec = d.doc["spec"].as_object_mut().expect("a Daemon has a spec");
                let list = spec
                    .entry("configFiles")
                    .or_insert_with(|| JsonValue::Array(Vec::new()));
                if let Some(list) = list.as_array_mut() {
                    list.push(entry);
                }
                d.config_entries.insert(vname.to_string(), cm.to_string());
                entries.push(vname.to_string());
            }
            Err(reason) => by_name.push(format!("volume `{vname}` {reason}")),
        }
    }
    for list in ["containers", "initContainers"] {
        for c in pod[list].as_array().into_iter().flatten() {
            let cname = c["name"].as_str().unwrap_or_default();
            let env = c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| names_cm(e.pointer("/valueFrom/configMapKeyRef/name")));
            let env_from = c["envFrom"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| names_cm(e.pointer("/configMapRef/name")));
            if env || env_from {
                by_name.push(format!("container `{cname}` reads it into its environment"));
            }
        }
    }
    if !entries.is_empty() {
        refresh_fields(d);
    }
    (entries, by_name)
}

/// The `spec.configFiles` entry a plain `configMap` volume becomes, or why it cannot:
/// named after the volume, reading `dir` (with `from` when that is not the entry's
/// default directory), mounted where every container that mounts it whole mounts
/// it. A `subPath` mount stays as it is, mounting the entry by name.
fn config_entry(
    pod: &JsonValue,
    vol: &JsonValue,
    daemon: &str,
    dir: &str,
    unwritable: Option<&str>,
) -> Result<JsonValue, String> {
    if let Some(u) = unwritable {
        return Err(u.to_string());
    }
    let vname = vol["name"].as_str().unwrap_or_default();
    syntax::dns_label(vname).map_err(|e| format!("cannot name a config-file entry: {e}"))?;
    let src = vol["configMap"].as_object().ok_or("is not a mapping")?;
    for (k, v) in src {
        match k.as_str() {
            "name" => {}
            "items" => return Err(
                "maps keys to other paths with `items`, and a config-file entry mounts every key under its own name".into(),
            ),
            "defaultMode" => return Err(format!(
                "sets defaultMode {v}, and drover mounts config files with the default mode (0644)"
            )),
            "optional" => return Err(format!(
                "sets `optional: {v}`, and drover renders a config-file entry's volume without it"
            )),
            other => return Err(format!("sets `{other}`, which a config-file entry does not have")),
        }
    }
    let mut whole: Vec<(String, String)> = Vec::new();
    let mut partial = false;
    for list in ["containers", "initContainers"] {
        for c in pod[list].as_array().into_iter().flatten() {
            let cname = c["name"].as_str().unwrap_or_default();
            for mt in c["volumeMounts"].as_array().into_iter().flatten() {
                let Some(mo) = mt.as_object() else { continue };
                if mo.get("name").and_then(JsonValue::as_str) != Some(vname) {
                    continue;
                }
                if mo.contains_key("subPath") || mo.contains_key("subPathExpr") {
                    partial = true;
                    continue;
                }
                if let Some(k) = mo
                    .keys()
                    .find(|k| !matches!(k.as_str(), "name" | "mountPath" | "readOnly"))
                {
                    return Err(format!(
                        "is mounted in container `{cname}` with `{k}`, which a config-file entry's mount does not have"
                    ));
                }
                if mo.get("readOnly").is_some_and(|r| !r.is_boolean()) {
                    return Err(format!(
                        "is mounted in container `{cname}` with a readOnly that is not a boolean"
                    ));
                }
                let path = mo
                    .get("mountPath")
                    .and_then(JsonValue::as_str)
                    .filter(|p| clean_path(p))
                    .ok_or_else(|| {
                        format!("is mounted in container `{cname}` at a path that is not absolute")
                    })?;
                whole.push((cname.to_string(), path.to_string()));
            }
        }
    }
    let Some((_, mount_path)) = whole.first().cloned() else {
        return Err(if partial {
            "is mounted only with subPath, and a config-file entry is mounted whole in at least one container".into()
        } else {
            "is not mounted by any container".into()
        });
    };
    let paths: BTreeSet<&str> = whole.iter().map(|(_, p)| p.as_str()).collect();
    if paths.len() > 1 {
        return Err(format!(
            "is mounted at different paths ({}), and a config-file entry has one mountPath",
            whole
                .iter()
                .map(|(c, p)| format!("{p} in `{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut containers: Vec<&str> = Vec::new();
    for (c, _) in &whole {
        if containers.contains(&c.as_str()) {
            return Err(format!("is mounted twice in container `{c}`"));
        }
        containers.push(c);
    }
    let mut entry = Map::new();
    entry.insert("name".into(), json!(vname));
    entry.insert("mountPath".into(), json!(mount_path));
    if dir != format!("{CONFIG_DIR}/{daemon}/{vname}") {
        entry.insert("from".into(), json!(format!("{dir}/")));
    }
    if containers != [daemon] {
        entry.insert("containers".into(), json!(containers));
    }
    Ok(JsonValue::Object(entry))
}

/// Takes volume `vname` and its whole (not `subPath`) mounts out of a Daemon
/// document: a config-file entry renders them.
fn take_config_volume(doc: &mut JsonValue, vname: &str) {
    let Some(spec) = doc.get_mut("spec").and_then(JsonValue::as_object_mut) else {
        return;
    };
    let named = |v: &JsonValue| v.get("name").and_then(JsonValue::as_str) == Some(vname);
    if let Some(JsonValue::Array(vols)) = spec.get_mut("volumes") {
        vols.retain(|v| !named(v));
        if vols.is_empty() {
            spec.shift_remove("volumes");
        }
    }
    let Some(JsonValue::Object(pt)) = spec.get_mut("podTemplate") else {
        return;
    };
    if let Some(JsonValue::Object(ps)) = pt.get_mut("spec") {
        if let Some(JsonValue::Array(vols)) = ps.get_mut("volumes") {
            vols.retain(|v| !named(v));
        }
        for list in ["containers", "initContainers"] {
            let Some(JsonValue::Array(cs)) = ps.get_mut(list) else {
                continue;
            };
            for c in cs.iter_mut().filter_map(JsonValue::as_object_mut) {
                if let Some(JsonValue::Array(ms)) = c.get_mut("volumeMounts") {
                    ms.retain(|m| {
                        !(named(m) && m.get("subPath").is_none() && m.get("subPathExpr").is_none())
                    });
                    if ms.is_empty() {
                        c.shift_remove("volumeMounts");
                    }
                }
            }
            // A container patch left with its name only says nothing.
            cs.retain(|c| c.as_object().is_none_or(|o| o.keys().any(|k| k != "name")));
        }
        ps.retain(|_, v| !matches!(v, JsonValue::Array(a) if a.is_empty()));
        if ps.is_empty() {
            pt.shift_remove("spec");
        }
    }
    if pt.is_empty() {
        spec.shift_remove("podTemplate");
    }
}

/// The report's lists of short-form and podTemplate fields, and the spec's order,
/// after the document changed.
fn refresh_fields(d: &mut Draft) {
    let Some(spec) = d.doc.get_mut("spec").and_then(JsonValue::as_object_mut) else {
        return;
    };
    *spec = order_spec(std::mem::take(spec));
    d.report.pod_template = spec
        .get("podTemplate")
        .and_then(JsonValue::as_object)
        .map(pod_template_fields)
        .unwrap_or_default();
    d.report.short_form = spec
        .keys()
        .filter(|k| *k != "podTemplate")
        .cloned()
        .collect();
}

fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn file_name(m: &Manifest) -> String {
    format!(
        "{}-{}.yaml",
        m.kind().to_ascii_lowercase(),
        safe_name(m.name())
    )
}

fn unique(used: &mut BTreeSet<String>, path: String) -> String {
    if used.insert(path.clone()) {
        return path;
    }
    let stem = path.trim_end_matches(".yaml").to_string();
    (2..)
        .map(|i| format!("{stem}-{i}.yaml"))
        .find(|p| used.insert(p.clone()))
        .expect("an unused name")
}

/// Text that is safe in a YAML comment: printable ASCII, anything else escaped.
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if (' '..='~').contains(&c) {
                c.to_string()
            } else {
                c.escape_unicode().to_string()
            }
        })
        .collect()
}

fn yaml_file(header: &[&str], v: &JsonValue) -> Vec<u8> {
    let mut out = String::new();
    for h in header {
        out.push_str("# ");
        out.push_str(&comment_text(h));
        out.push('\n');
    }
    out.push_str(&to_yaml(v));
    out.into_bytes()
}

/// Makes an upstream companion drover's: its namespace, when it is the fleet's, is
/// left to default (so it follows the Fleet's `spec.namespace`), and the upstream
/// `app.kubernetes.io/managed-by` label (`Helm`...) is dropped, since drover stamps
/// its own.
/// Points a binding's ServiceAccount subjects at the Fleet's namespace where the
/// account is an imported daemon's (`accounts`: name and upstream namespace) and the
/// subject names that namespace or none (a kustomize base leaves it to kustomize):
/// the ServiceAccount moves to the Fleet's namespace with its daemon, and a binding
/// still naming the old one would grant nothing. Returns the accounts it changed.
fn bind_moved_accounts(
    binding: &mut JsonValue,
    accounts: &[(&str, &str)],
    fleet_namespace: &str,
) -> Vec<String> {
    let mut changed = Vec::new();
    let binding_ns = binding
        .pointer("/metadata/namespace")
        .and_then(JsonValue::as_str)
        .map(str::to_string);
    for s in binding
        .get_mut("subjects")
        .and_then(JsonValue::as_array_mut)
        .into_iter()
        .flatten()
    {
        if s["kind"] != "ServiceAccount" {
            continue;
        }
        let name = s["name"].as_str().unwrap_or_default().to_string();
        let ns = s["namespace"].as_str().map(str::to_string);
        let moves = accounts.iter().any(|(a, upstream)| {
            *a == name
                && ns
                    .as_deref()
                    .or(binding_ns.as_deref())
                    .is_none_or(|n| n == *upstream)
        });
        if moves && ns.as_deref() != Some(fleet_namespace) {
            s["namespace"] = JsonValue::String(fleet_namespace.to_string());
            changed.push(name);
        }
    }
    changed
}

fn own_companion(manifest: &mut JsonValue, fleet_ns: &str) {
    let Some(meta) = manifest
        .get_mut("metadata")
        .and_then(JsonValue::as_object_mut)
    else {
        return;
    };
    if meta.get("namespace").and_then(JsonValue::as_str) == Some(fleet_ns) {
        meta.shift_remove("namespace");
    }
    if let Some(labels) = meta.get_mut("labels").and_then(JsonValue::as_object_mut) {
        labels.shift_remove(crate::render::LABEL_MANAGED_BY);
        if labels.is_empty() {
            meta.shift_remove("labels");
        }
    }
}

fn fleet_file(opts: &ImportOptions, namespace: &str) -> OutFile {
    fleet_file_with(opts, namespace, &crate::model::CompanionsSpec::default())
}

/// The Fleet's `spec.companions` that lets the written companions validate: the kinds
/// outside drover's defaults and the namespaces other than the fleet's. A binding to
/// `cluster-admin` is not opted in: validation names it, a person decides.
fn companion_policy(written: &[&Manifest], namespace: &str) -> crate::model::CompanionsSpec {
    use crate::model::{CompanionKind, CompanionScope};
    // Kinds drover does not know whose objects live in a namespace even when the
    // manifest leaves it out (helm charts often do).
    const NAMESPACED: [&str; 4] = [
        "NetworkPolicy",
        "PodMonitor",
        "ServiceMonitor",
        "PodDisruptionBudget",
    ];
    let mut spec = crate::model::CompanionsSpec::default();
    let mut kinds = BTreeSet::new();
    let mut namespaces = BTreeSet::new();
    for m in written {
        let api_version = m.value["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let default = crate::companion::DEFAULT_KINDS
            .iter()
            .any(|(a, k, _)| *a == api_version && *k == m.kind());
        if !default && m.kind() != "Secret" {
            let scope = if m.namespace().is_some() || NAMESPACED.contains(&m.kind()) {
                CompanionScope::Namespaced
            } else {
                CompanionScope::Cluster
            };
            kinds.insert((
                api_version,
                m.kind().to_string(),
                scope == CompanionScope::Cluster,
            ));
        }
        if let Some(ns) = m.namespace()
            && ns != namespace
        {
            namespaces.insert(ns.to_string());
        }
    }
    spec.allow_kinds = kinds
        .into_iter()
        .map(|(api_version, kind, cluster)| CompanionKind {
            api_version,
            kind,
            scope: if cluster {
                CompanionScope::Cluster
            } else {
                CompanionScope::Namespaced
            },
        })
        .collect();
    spec.allow_namespaces = namespaces.into_iter().collect();
    spec
}

fn fleet_file_with(
    opts: &ImportOptions,
    namespace: &str,
    companions: &crate::model::CompanionsSpec,
) -> OutFile {
    let mut spec = json!({
        "namespace": namespace,
        "groups": [opts.group],
        "stages": [{"name": opts.group, "groups": [opts.group]}],
    });
    if !companions.is_default() {
        spec["companions"] = serde_json::to_value(companions).unwrap_or_default();
    }
    OutFile {
        path: "drover.yaml".into(),
        role: FileRole::Fleet,
        bytes: yaml_file(
            &[
                "Written by `drover import`: one catch-all group, one stage.",
                "Add groups (canary first) and stages before the first rollout.",
            ],
            &json!({
                "apiVersion": API_VERSION,
                "kind": "Fleet",
                "metadata": {"name": opts.fleet},
                "spec": spec,
            }),
        ),
    }
}

fn daemon_file(d: &Draft) -> Vec<u8> {
    let mut header = vec![format!(
        "Imported by `drover import` from DaemonSet {} ({}).",
        d.report.daemonset, d.report.source
    )];
    if !d.report.not_carried.is_empty() {
        header.push("Not carried (see the import report):".into());
        for n in &d.report.not_carried {
            let mut value = serde_json::to_string(&n.value).unwrap_or_default();
            if value.len() > 100 {
                let cut = (0..=100)
                    .rev()
                    .find(|i| value.is_char_boundary(*i))
                    .unwrap_or(0);
                value.truncate(cut);
                value.push_str("...");
            }
            header.push(format!("  {} = {value}: {}", n.field, n.reason));
        }
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    yaml_file(&header, &d.doc)
}

/// Loads, validates and renders the imported fleet as `drover render` does, and
/// compares each rendered DaemonSet with its upstream.
fn round_trip(files: &[OutFile], drafts: &mut [Draft], opts: &ImportOptions, limits: &Limits) {
    let sources: Vec<SourceFile> = files
        .iter()
        .filter(|f| {
            matches!(
                f.role,
                FileRole::Fleet | FileRole::NodeGroup | FileRole::Daemon | FileRole::Config
            )
        })
        .map(|f| SourceFile {
            path: f.path.clone(),
            bytes: f.bytes.clone(),
        })
        .collect();
    let fleet = match load_fleet(&sources, limits) {
        Ok(f) => f,
        Err(diags) => {
            for d in drafts.iter_mut() {
                let problems: Vec<String> = diags
                    .0
                    .iter()
                    .filter(|x| x.path == d.report.file || !x.path.starts_with("daemons/"))
                    .map(ToString::to_string)
                    .collect();
                d.report.round_trip = if problems.is_empty() {
                    RoundTrip::Invalid {
                        problems: vec![
                            "another imported daemon is invalid, so the fleet does not load".into(),
                        ],
                    }
                } else {
                    RoundTrip::Invalid { problems }
                };
            }
            return;
        }
    };
    let set = match render(&fleet, &RenderContext::default(), limits.max_rendered_bytes) {
        Ok(s) => s,
        Err(e) => {
            for d in drafts.iter_mut() {
                d.report.round_trip = RoundTrip::Invalid {
                    problems: vec![e.to_string()],
                };
            }
            return;
        }
    };
    for d in drafts.iter_mut() {
        let Some(item) = set
            .items
            .iter()
            .find(|i| i.daemon == d.name && i.group == opts.group)
        else {
            d.report.round_trip = RoundTrip::Invalid {
                problems: vec![format!("nothing rendered for daemon `{}`", d.name)],
            };
            continue;
        };
        let mut up = d.upstream.clone();
        remove_paths(&mut up, &d.excluded);
        let mut up = compared_part(&up);
        let mut re = compared_part(&item.manifest.value());
        if d.live {
            strip_server_defaults(&mut up);
            strip_server_defaults(&mut re);
        }
        normalise(&mut up);
        normalise(&mut re);
        compare::config_files_spelling(&mut up, &d.config_entries, compare::Side::Upstream);
        compare::config_files_spelling(&mut re, &d.config_entries, compare::Side::Rendered);
        let (differences, fields) = compare::differences(&up, &re);
        d.report.round_trip = if differences.is_empty() {
            RoundTrip::Exact { fields }
        } else {
            RoundTrip::Differs { differences }
        };
    }
}

#[cfg(test)]
mod tests;
