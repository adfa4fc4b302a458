//! Rendering: a validated fleet → one `apps/v1` DaemonSet per (daemon, group).
//!
//! Owns: names, labels, annotations, node affinity, tolerations, rollout strategy and
//! the podTemplate merge. Deterministic: same fleet, same bytes. Must not: read
//! anything but its arguments.

use std::collections::BTreeMap;

use serde_json::{Map, Value as JsonValue, json};
use sha2::{Digest, Sha256};

use super::fleet::{Daemon, Fleet, Group};
use super::model::{Container, IntOrPercent, QuantityValue, Toleration};
use super::selector::{Affinity, Requirement};
use super::validate::resolve_rollout;

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_FLEET: &str = "drover.dev/fleet";
pub const LABEL_DAEMON: &str = "drover.dev/daemon";
pub const LABEL_GROUP: &str = "drover.dev/group";
pub const ANN_COMMIT: &str = "drover.dev/commit";
pub const ANN_SOURCE: &str = "drover.dev/source";
pub const ANN_SPEC_HASH: &str = "drover.dev/spec-hash";
pub const MANAGER: &str = "drover";
/// On a config ConfigMap: the `spec.configFiles` entry it renders.
pub const LABEL_CONFIG: &str = "drover.dev/config";

/// Where a render comes from; only the commit annotation depends on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderContext {
    /// The commit sha, or `None` for an uncommitted working tree.
    pub commit: Option<String>,
}

/// One rendered DaemonSet with what the plan needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredDaemonSet {
    pub name: String,
    pub daemon: String,
    pub group: String,
    pub stage: String,
    pub source: String,
    /// Digest of the manifest without the commit annotation.
    pub spec_hash: String,
    pub manifest: Manifest,
}

/// A rendered manifest. For a sync (and plan and apply) it is held as its compact
/// JSON text and parsed where it is used, one at a time: a parsed
/// `serde_json::Value` takes four to five times the memory of its text, and 2,000
/// of them were most of what a sync of a large fleet held. An offline diff, whose
/// only use of both renders is to compare them, asks for trees
/// ([`render_trees`]) and moves them into its comparisons unparsed. Shared, so a
/// copy costs a pointer.
#[derive(Clone)]
pub struct Manifest(Form);

#[derive(Clone)]
enum Form {
    Text(std::sync::Arc<str>),
    Tree(std::sync::Arc<JsonValue>),
}

impl Manifest {
    /// The compact text of `v`.
    pub fn new(v: &JsonValue) -> Manifest {
        Manifest(Form::Text(
            serde_json::to_string(v)
                .expect("json values always serialise")
                .into(),
        ))
    }

    /// `v` itself, kept as a tree.
    pub fn tree(v: JsonValue) -> Manifest {
        Manifest(Form::Tree(std::sync::Arc::new(v)))
    }

    /// The manifest, parsed (a tree: copied).
    pub fn value(&self) -> JsonValue {
        match &self.0 {
            Form::Text(t) => {
                serde_json::from_str(t).expect("a manifest is the JSON it was made from")
            }
            Form::Tree(v) => (**v).clone(),
        }
    }

    /// The manifest as a tree, moved out when this is its only holder.
    pub fn into_value(self) -> JsonValue {
        match self.0 {
            Form::Tree(v) => std::sync::Arc::try_unwrap(v).unwrap_or_else(|v| (*v).clone()),
            Form::Text(_) => self.value(),
        }
    }

    /// The length of its compact JSON.
    pub fn len(&self) -> usize {
        match &self.0 {
            Form::Text(t) => t.len(),
            Form::Tree(v) => compact_len(v),
        }
    }

    /// Whether it is empty JSON (never, for a rendered manifest).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `metadata.annotations`, read without building the whole tree.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        #[derive(serde::Deserialize)]
        struct Annotated {
            #[serde(default)]
            metadata: Meta,
        }
        #[derive(serde::Deserialize, Default)]
        struct Meta {
            #[serde(default)]
            annotations: BTreeMap<String, String>,
        }
        match &self.0 {
            Form::Text(t) => serde_json::from_str::<Annotated>(t)
                .map(|n| n.metadata.annotations)
                .unwrap_or_default(),
            Form::Tree(v) => {
                serde_json::from_value(v["metadata"]["annotations"].clone()).unwrap_or_default()
            }
        }
    }

    /// `metadata.name`, read without building the whole tree ("" without one).
    pub fn name(&self) -> String {
        #[derive(serde::Deserialize)]
        struct Named {
            #[serde(default)]
            metadata: Meta,
        }
        #[derive(serde::Deserialize, Default)]
        struct Meta {
            #[serde(default)]
            name: String,
        }
        match &self.0 {
            Form::Text(t) => serde_json::from_str::<Named>(t)
                .map(|n| n.metadata.name)
                .unwrap_or_default(),
            Form::Tree(v) => v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// The length of `v`'s compact JSON, counted as it is written, never held.
fn compact_len(v: &JsonValue) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    serde_json::to_writer(&mut c, v).expect("json values always serialise");
    c.0
}

/// Equal when they are the same JSON, whatever form each is held in.
impl PartialEq for Manifest {
    fn eq(&self, other: &Manifest) -> bool {
        match (&self.0, &other.0) {
            (Form::Text(a), Form::Text(b)) => a == b,
            _ => self.value() == other.value(),
        }
    }
}

/// Serialises as the JSON it holds (a text, to a JSON serialiser, as itself: a
/// server-side apply sends it without building the tree).
impl serde::Serialize for Manifest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        match &self.0 {
            Form::Text(t) => {
                let raw: &serde_json::value::RawValue =
                    serde_json::from_str(t).map_err(S::Error::custom)?;
                raw.serialize(s)
            }
            Form::Tree(v) => v.serialize(s),
        }
    }
}

impl From<JsonValue> for Manifest {
    fn from(v: JsonValue) -> Manifest {
        Manifest::new(&v)
    }
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Form::Text(t) => f.write_str(t),
            Form::Tree(v) => write!(f, "{v}"),
        }
    }
}

/// Everything a fleet renders to, sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredSet {
    pub fleet: String,
    pub namespace: String,
    pub items: Vec<DesiredDaemonSet>,
    /// The fleet's companion objects, validated and labelled, in file order.
    pub companions: Vec<crate::companion::Companion>,
    /// The config ConfigMaps the DaemonSets mount, one per (daemon, entry, content),
    /// sorted by name.
    pub config_maps: Vec<DesiredConfigMap>,
}

/// One config ConfigMap: immutable, named `<entry>-<10 hex of its content hash>`.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredConfigMap {
    pub name: String,
    pub daemon: String,
    /// The `spec.configFiles` entry.
    pub entry: String,
    /// The groups whose DaemonSets mount it, in fleet group order.
    pub groups: Vec<String>,
    /// The daemon's file.
    pub source: String,
    /// key → file.
    pub files: BTreeMap<String, crate::fleet::ConfigFile>,
    /// The whole SHA-256 (hex) its name carries the first 10 digits of.
    pub hash: String,
    pub manifest: JsonValue,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error(
        "{path}: daemon `{daemon}` in group `{group}` brings the rendered manifests to {bytes} bytes, more than the limit of {limit}"
    )]
    TooLarge {
        /// The source file of the daemon whose DaemonSet passed the limit.
        path: String,
        daemon: String,
        group: String,
        bytes: usize,
        limit: usize,
    },
    #[error("two DaemonSets render to the same name `{name}` ({a} and {b})")]
    NameCollision { name: String, a: String, b: String },
}

/// The DaemonSet name for a daemon in a group: `<daemon>-<group>`, shortened with a
/// stable hash when longer than 63 characters.
pub fn daemonset_name(daemon: &str, group: &str) -> String {
    let full = format!("{daemon}-{group}");
    if full.len() <= 63 {
        return full;
    }
    let hash = hex::encode(Sha256::digest(full.as_bytes()));
    let keep = full[..54].trim_end_matches('-');
    format!("{keep}-{}", &hash[..8])
}

/// Renders every DaemonSet of the fleet, each manifest held as its compact text
/// (see [`Manifest`]).
///
/// # Errors
/// When the rendered set passes `max_rendered_bytes` or two names collide.
pub fn render(
    fleet: &Fleet,
    ctx: &RenderContext,
    max_rendered_bytes: usize,
) -> Result<DesiredSet, RenderError> {
    render_as(fleet, ctx, max_rendered_bytes, false)
}

/// [`render`] with each manifest kept as a tree: for a caller that compares
/// renders and would otherwise parse every manifest back (the offline diff).
///
/// # Errors
/// As [`render`].
pub fn render_trees(
    fleet: &Fleet,
    ctx: &RenderContext,
    max_rendered_bytes: usize,
) -> Result<DesiredSet, RenderError> {
    render_as(fleet, ctx, max_rendered_bytes, true)
}

fn render_as(
    fleet: &Fleet,
    ctx: &RenderContext,
    max_rendered_bytes: usize,
    trees: bool,
) -> Result<DesiredSet, RenderError> {
    let mut items: Vec<DesiredDaemonSet> = Vec::new();
    let mut config_maps: BTreeMap<String, DesiredConfigMap> = BTreeMap::new();
    let mut total = 0usize;
    // One serialisation buffer for the whole render: each manifest is serialised once,
    // for its spec hash and its share of the size limit both.
    let mut scratch = Vec::new();
    for d in &fleet.daemons {
        for gname in &d.placement {
            let group = fleet.group(gname).expect("validated placement");
            let mounted = config_maps_of(fleet, d, gname);
            let names: Vec<(String, String)> = mounted
                .iter()
                .map(|c| (c.entry.clone(), c.name.clone()))
                .collect();
            for c in mounted {
                match config_maps.get_mut(&c.name) {
                    Some(have) => have.groups.push(gname.clone()),
                    None => {
                        total += serde_json::to_string(&c.manifest).map_or(0, |s| s.len());
                        config_maps.insert(c.name.clone(), c);
                    }
                }
            }
            let (item, bytes) = render_one(fleet, d, group, &names, ctx, &mut scratch, trees);
            total += bytes;
            if total > max_rendered_bytes {
                return Err(RenderError::TooLarge {
                    path: d.source.clone(),
                    daemon: d.name.clone(),
                    group: gname.clone(),
                    bytes: total,
                    limit: max_rendered_bytes,
                });
            }
            items.push(item);
        }
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    for w in items.windows(2) {
        if w[0].name == w[1].name {
            return Err(RenderError::NameCollision {
                name: w[0].name.clone(),
                a: format!("{}/{}", w[0].daemon, w[0].group),
                b: format!("{}/{}", w[1].daemon, w[1].group),
            });
        }
    }
    Ok(DesiredSet {
        fleet: fleet.name.clone(),
        namespace: fleet.namespace.clone(),
        items,
        companions: fleet.companions.clone(),
        config_maps: config_maps.into_values().collect(),
    })
}

/// How long a config file's value is in its ConfigMap: its text in `data` when it is
/// UTF-8, its base64 in `binaryData` otherwise.
pub fn config_value_len(bytes: &[u8]) -> usize {
    if std::str::from_utf8(bytes).is_ok() {
        bytes.len()
    } else {
        bytes.len().div_ceil(3) * 4
    }
}

/// The content hash of a config entry: SHA-256 over the daemon's and the entry's
/// names and every `(key, bytes)`, each length-prefixed so that no two contents
/// hash alike by moving a boundary. The daemon is part of it so that two daemons'
/// entries of one name never share a ConfigMap.
pub fn config_hash(
    daemon: &str,
    entry: &str,
    files: &BTreeMap<String, crate::fleet::ConfigFile>,
) -> String {
    let mut h = Sha256::new();
    let mut part = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    part(daemon.as_bytes());
    part(entry.as_bytes());
    for (k, f) in files {
        part(k.as_bytes());
        part(&f.bytes);
    }
    hex::encode(h.finalize())
}

/// The ConfigMap name of a config entry with a content hash: `<entry>-<10 hex>`.
pub fn config_map_name(entry: &str, hash: &str) -> String {
    format!("{entry}-{}", &hash[..10])
}

/// Whether `name` is a [`config_map_name`] of `entry`: `<entry>-` and 10 lowercase
/// hex digits, as the content hash is printed.
pub fn is_config_map_name(name: &str, entry: &str) -> bool {
    name.strip_prefix(entry)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|h| h.len() == 10 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// The config ConfigMaps a daemon's DaemonSet in `group` mounts, in entry order.
fn config_maps_of(fleet: &Fleet, d: &Daemon, group: &str) -> Vec<DesiredConfigMap> {
    d.config
        .iter()
        .map(|e| {
            let files = e.files_for(group).clone();
            let hash = config_hash(&d.name, &e.name, &files);
            let name = config_map_name(&e.name, &hash);
            let mut data = Map::new();
            let mut binary = Map::new();
            for (k, f) in &files {
                match std::str::from_utf8(&f.bytes) {
                    Ok(t) => {
                        data.insert(k.clone(), JsonValue::String(t.to_string()));
                    }
                    Err(_) => {
                        use base64::Engine as _;
                        binary.insert(
                            k.clone(),
                            JsonValue::String(
                                base64::engine::general_purpose::STANDARD.encode(&f.bytes),
                            ),
                        );
                    }
                }
            }
            let labels: BTreeMap<&str, &str> = [
                (LABEL_MANAGED_BY, MANAGER),
                (LABEL_FLEET, fleet.name.as_str()),
                (LABEL_DAEMON, d.name.as_str()),
                (LABEL_CONFIG, e.name.as_str()),
            ]
            .into_iter()
            .collect();
            let mut manifest = Map::new();
            manifest.insert("apiVersion".into(), json!("v1"));
            manifest.insert("kind".into(), json!("ConfigMap"));
            manifest.insert(
                "metadata".into(),
                object([
                    ("name", JsonValue::String(name.clone())),
                    ("namespace", JsonValue::String(fleet.namespace.clone())),
                    ("labels", string_map(&labels)),
                    (
                        "annotations",
                        object([(ANN_SOURCE, JsonValue::String(d.source.clone()))]),
                    ),
                ]),
            );
            manifest.insert("immutable".into(), json!(true));
            if !data.is_empty() {
                manifest.insert("data".into(), JsonValue::Object(data));
            }
            if !binary.is_empty() {
                manifest.insert("binaryData".into(), JsonValue::Object(binary));
            }
            DesiredConfigMap {
                name,
                daemon: d.name.clone(),
                entry: e.name.clone(),
                groups: vec![group.to_string()],
                source: d.source.clone(),
                files,
                hash,
                manifest: JsonValue::Object(manifest),
            }
        })
        .collect()
}

fn int_or_percent(v: &IntOrPercent) -> JsonValue {
    match v {
        IntOrPercent::Int(i) => json!(i),
        IntOrPercent::Str(s) => json!(s),
    }
}

/// A JSON object from `(key, value)` pairs, in their order.
fn object<const N: usize>(entries: [(&str, JsonValue); N]) -> JsonValue {
    JsonValue::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// A string map as a JSON object, in the map's (sorted) order.
fn string_map<K: AsRef<str>, V: AsRef<str>>(m: &BTreeMap<K, V>) -> JsonValue {
    JsonValue::Object(
        m.iter()
            .map(|(k, v)| {
                (
                    k.as_ref().to_string(),
                    JsonValue::String(v.as_ref().to_string()),
                )
            })
            .collect(),
    )
}

fn requirement_json(r: &Requirement) -> JsonValue {
    let mut m = Map::new();
    m.insert("key".into(), json!(r.key));
    m.insert("operator".into(), json!(r.op.as_str()));
    if !r.values.is_empty() {
        m.insert("values".into(), json!(r.values));
    }
    JsonValue::Object(m)
}

/// Renders one DaemonSet, and returns with it the length of its compact JSON (what
/// the rendered-size limit counts).
///
/// The manifest is built by moving each part into place: `json!` would copy every
/// interpolated `Value` through the serializer, and the pod template is most of a
/// DaemonSet.
fn render_one(
    fleet: &Fleet,
    d: &Daemon,
    group: &Group,
    config_maps: &[(String, String)],
    ctx: &RenderContext,
    scratch: &mut Vec<u8>,
    tree: bool,
) -> (DesiredDaemonSet, usize) {
    let name = daemonset_name(&d.name, &group.name);
    let stage = fleet
        .stage_of(&group.name)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    let s = &d.spec;
    let over = s.overrides.get(&group.name);

    let selector_labels: BTreeMap<&str, &str> = [
        (LABEL_FLEET, fleet.name.as_str()),
        (LABEL_DAEMON, d.name.as_str()),
        (LABEL_GROUP, group.name.as_str()),
    ]
    .into_iter()
    .collect();
    let mut labels: BTreeMap<String, String> = d.labels.clone();
    labels.insert(LABEL_NAME.into(), d.app_name.clone());
    labels.insert(LABEL_MANAGED_BY.into(), MANAGER.into());
    for (k, v) in &selector_labels {
        labels.insert(k.to_string(), v.to_string());
    }

    // The main container, with the group's overrides.
    let mut main = s.main_container(&d.container_name);
    if let Some(o) = over {
        if let Some(i) = &o.image {
            main.image = i.clone();
        }
        if let Some(c) = &o.command {
            main.command = Some(c.clone());
        }
        if let Some(a) = &o.args {
            main.args = Some(a.clone());
        }
        if let Some(r) = &o.resources {
            main.resources = Some(r.clone());
        }
    }
    let env = d.env_overrides.get(&group.name).unwrap_or(&d.env);
    let no_env = Vec::new();
    let extra_env = |c: &Container| d.container_env.get(&c.name).unwrap_or(&no_env);
    let mut containers = vec![container_json(&main, env)];
    containers.extend(s.sidecars.iter().map(|c| container_json(c, extra_env(c))));
    let mut init_containers: Vec<JsonValue> = s
        .init_containers
        .iter()
        .map(|c| container_json(c, extra_env(c)))
        .collect();
    // Each config entry's mount, in the containers it names (validated: they
    // exist, in the short form or in podTemplate; a podTemplate container gets it
    // through a podTemplate-style patch below).
    let mut template_mounts: Vec<(String, JsonValue)> = Vec::new();
    for e in &d.config {
        let mount = object([
            ("name", JsonValue::String(e.name.clone())),
            ("mountPath", JsonValue::String(e.mount_path.clone())),
            ("readOnly", JsonValue::Bool(true)),
        ]);
        for c in &e.containers {
            let target = containers
                .iter_mut()
                .chain(init_containers.iter_mut())
                .find(|j| j.get("name").and_then(JsonValue::as_str) == Some(c.as_str()));
            match target {
                Some(j) => {
                    let obj = j.as_object_mut().expect("a container is an object");
                    let list = obj
                        .entry("volumeMounts")
                        .or_insert_with(|| JsonValue::Array(Vec::new()));
                    if let Some(list) = list.as_array_mut() {
                        list.push(mount.clone());
                    }
                }
                None => template_mounts.push((c.clone(), mount.clone())),
            }
        }
    }

    // The pod spec.
    let mut pod = Map::new();
    // The daemon's own constraints are ANDed into every term: each term only
    // shrinks, so the groups' partition of the nodes still holds.
    let terms: Option<Vec<Vec<Requirement>>> = match &group.affinity {
        Affinity::All if d.constraints.is_empty() => None,
        Affinity::All => Some(vec![d.constraints.clone()]),
        Affinity::Terms(terms) => Some(
            terms
                .iter()
                .map(|t| {
                    let mut t: Vec<Requirement> = t.iter().chain(&d.constraints).cloned().collect();
                    t.sort();
                    t.dedup();
                    t
                })
                .collect(),
        ),
    };
    if let Some(terms) = terms {
        let terms: Vec<JsonValue> = terms
            .iter()
            .map(|t| {
                object([(
                    "matchExpressions",
                    JsonValue::Array(t.iter().map(requirement_json).collect()),
                )])
            })
            .collect();
        pod.insert(
            "affinity".into(),
            object([(
                "nodeAffinity",
                object([(
                    "requiredDuringSchedulingIgnoredDuringExecution",
                    object([("nodeSelectorTerms", JsonValue::Array(terms))]),
                )]),
            )]),
        );
    }
    pod.insert("containers".into(), JsonValue::Array(containers));
    if !init_containers.is_empty() {
        pod.insert("initContainers".into(), JsonValue::Array(init_containers));
    }
    for (k, on) in [
        ("hostNetwork", s.host_network),
        ("hostPID", s.host_pid),
        ("hostIPC", s.host_ipc),
    ] {
        if on {
            pod.insert(k.into(), json!(true));
        }
    }
    if let Some(p) = &s.priority_class_name {
        pod.insert("priorityClassName".into(), json!(p));
    }
    if let Some(sa) = &s.service_account_name {
        pod.insert("serviceAccountName".into(), json!(sa));
    }
    // One toleration per identity, the group's first: validation refuses two with
    // one identity that say different things.
    let mut tolerations: Vec<&Toleration> = Vec::new();
    let identity = |t: &Toleration| {
        (
            t.key.clone().unwrap_or_default(),
            t.operator.clone().unwrap_or_else(|| "Equal".into()),
            t.value.clone().unwrap_or_default(),
            t.effect.clone().unwrap_or_default(),
        )
    };
    for t in group.tolerations.iter().chain(&s.tolerations) {
        if !tolerations.iter().any(|x| identity(x) == identity(t)) {
            tolerations.push(t);
        }
    }
    if !tolerations.is_empty() {
        pod.insert(
            "tolerations".into(),
            serde_json::to_value(&tolerations).expect("plain data"),
        );
    }
    // Volumes: each hostPath mount's (the main container's first, then init
    // containers' and sidecars'; validation makes one name one volume), then
    // spec.volumes as written.
    let mut vols: Vec<JsonValue> = Vec::new();
    let mut vol_names: Vec<&str> = Vec::new();
    let all_mounts = s
        .mounts
        .iter()
        .chain(s.init_containers.iter().flat_map(|c| &c.mounts))
        .chain(s.sidecars.iter().flat_map(|c| &c.mounts));
    for m in all_mounts {
        let Some(path) = &m.host_path else { continue };
        if vol_names.contains(&m.name.as_str()) {
            continue;
        }
        vol_names.push(&m.name);
        let mut hp = Map::new();
        hp.insert("path".into(), json!(path));
        if let Some(t) = &m.host_path_type {
            hp.insert("type".into(), json!(t));
        }
        vols.push(object([
            ("name", JsonValue::String(m.name.clone())),
            ("hostPath", JsonValue::Object(hp)),
        ]));
    }
    vols.extend(s.volumes.iter().cloned());
    for (entry, cm) in config_maps {
        vols.push(object([
            ("name", JsonValue::String(entry.clone())),
            (
                "configMap",
                object([("name", JsonValue::String(cm.clone()))]),
            ),
        ]));
    }
    if !vols.is_empty() {
        pod.insert("volumes".into(), JsonValue::Array(vols));
    }
    for (k, v) in [
        ("dnsPolicy", s.dns_policy.as_ref().map(|p| json!(p))),
        ("dnsConfig", s.dns_config.clone()),
        ("securityContext", s.pod_security_context.clone()),
        (
            "terminationGracePeriodSeconds",
            s.termination_grace_period_seconds.map(|t| json!(t)),
        ),
    ] {
        if let Some(v) = v {
            pod.insert(k.into(), v);
        }
    }

    let mut template_meta = Map::new();
    template_meta.insert("labels".into(), string_map(&labels));
    if !d.annotations.is_empty() {
        template_meta.insert("annotations".into(), string_map(&d.annotations));
    }
    let mut template = object([
        ("metadata", JsonValue::Object(template_meta)),
        ("spec", JsonValue::Object(pod)),
    ]);
    if let Some(pt) = &s.pod_template {
        merge(&mut template, &without_owned_fields(pt, &d.container_name));
    }
    // A config entry mounted in a container only podTemplate has: its mount is
    // added to that container after the merge.
    for (c, mount) in template_mounts {
        for list in ["containers", "initContainers"] {
            let Some(cs) = template
                .pointer_mut(&format!("/spec/{list}"))
                .and_then(JsonValue::as_array_mut)
            else {
                continue;
            };
            if let Some(j) = cs
                .iter_mut()
                .find(|j| j.get("name").and_then(JsonValue::as_str) == Some(c.as_str()))
                && let Some(obj) = j.as_object_mut()
            {
                let list = obj
                    .entry("volumeMounts")
                    .or_insert_with(|| JsonValue::Array(Vec::new()));
                if let Some(list) = list.as_array_mut() {
                    list.push(mount.clone());
                }
            }
        }
    }

    let rollout = resolve_rollout(
        over.and_then(|o| o.rollout.as_ref()),
        s.rollout.as_ref(),
        &group.rollout,
        &fleet.defaults,
    );
    let mut ru = Map::new();
    if let Some(v) = &rollout.max_surge {
        ru.insert("maxSurge".into(), int_or_percent(v));
    }
    if let Some(v) = &rollout.max_unavailable {
        ru.insert("maxUnavailable".into(), int_or_percent(v));
    }
    let mut spec = Map::new();
    // The API server leaves zero values out; rendering 0 would make every live copy
    // look different from what is desired and cost a dry run on every sync.
    if let Some(m) = rollout.min_ready_seconds.filter(|m| *m > 0) {
        spec.insert("minReadySeconds".into(), json!(m));
    }
    if let Some(r) = s.revision_history_limit {
        spec.insert("revisionHistoryLimit".into(), json!(r));
    }
    spec.insert(
        "selector".into(),
        object([("matchLabels", string_map(&selector_labels))]),
    );
    spec.insert("template".into(), template);
    let driven = crate::waves::driver_of(s.update_strategy.as_ref(), &rollout)
        == crate::model::Driver::Drover;
    if driven {
        spec.insert(
            "updateStrategy".into(),
            object([("type", JsonValue::String("OnDelete".into()))]),
        );
    } else {
        spec.insert(
            "updateStrategy".into(),
            object([
                ("type", JsonValue::String("RollingUpdate".into())),
                ("rollingUpdate", JsonValue::Object(ru)),
            ]),
        );
    }

    let mut annotations: BTreeMap<String, String> = d.annotations.clone();
    if driven {
        annotations.extend(crate::waves::DriverSettings::annotations(
            &rollout,
            s.disruption_class.as_deref(),
        ));
    }
    annotations.insert(ANN_SOURCE.into(), d.source.clone());
    // The user's annotations cannot use drover's keys (validation refuses the
    // `drover.dev/` prefix), so the manifest built here is already what the spec hash
    // covers: no copy with the two annotations removed is needed.
    let own_keys_free =
        !annotations.contains_key(ANN_COMMIT) && !annotations.contains_key(ANN_SPEC_HASH);
    let mut manifest = object([
        ("apiVersion", JsonValue::String("apps/v1".into())),
        ("kind", JsonValue::String("DaemonSet".into())),
        (
            "metadata",
            object([
                ("name", JsonValue::String(name.clone())),
                ("namespace", JsonValue::String(fleet.namespace.clone())),
                ("labels", string_map(&labels)),
                ("annotations", string_map(&annotations)),
            ]),
        ),
        ("spec", JsonValue::Object(spec)),
    ]);
    let commit = ctx.commit.as_deref().unwrap_or("worktree");
    let spec_hash = if own_keys_free {
        hash_serialized(&manifest, scratch)
    } else {
        spec_hash(&manifest)
    };
    let ann = manifest["metadata"]["annotations"]
        .as_object_mut()
        .expect("built above");
    ann.insert(ANN_SPEC_HASH.into(), json!(spec_hash));
    ann.insert(ANN_COMMIT.into(), json!(commit));
    sort_keys(&mut manifest["metadata"]["annotations"]);
    let manifest = if tree {
        Manifest::tree(manifest)
    } else {
        Manifest::new(&manifest)
    };
    let bytes = manifest.len();
    let item = DesiredDaemonSet {
        name,
        daemon: d.name.clone(),
        group: group.name.clone(),
        stage,
        source: d.source.clone(),
        spec_hash,
        manifest,
    };
    (item, bytes)
}

/// One container as Kubernetes spells it, from the short form's fields; `env` is
/// the container's env already resolved to `EnvVar`s.
fn container_json(c: &Container, env: &[JsonValue]) -> JsonValue {
    let mut m = Map::new();
    m.insert("name".into(), json!(c.name));
    m.insert("image".into(), json!(c.image));
    if let Some(p) = &c.image_pull_policy {
        m.insert("imagePullPolicy".into(), json!(p));
    }
    if let Some(cmd) = &c.command {
        m.insert("command".into(), json!(cmd));
    }
    if let Some(args) = &c.args {
        m.insert("args".into(), json!(args));
    }
    if let Some(w) = &c.working_dir {
        m.insert("workingDir".into(), json!(w));
    }
    if !env.is_empty() {
        m.insert("env".into(), JsonValue::Array(env.to_vec()));
    }
    if !c.ports.is_empty() {
        let ports: Vec<JsonValue> = c
            .ports
            .iter()
            .map(|p| {
                let mut o = Map::new();
                if let Some(n) = &p.name {
                    o.insert("name".into(), json!(n));
                }
                o.insert("containerPort".into(), json!(p.container_port));
                if let Some(h) = p.host_port {
                    o.insert("hostPort".into(), json!(h));
                }
                o.insert(
                    "protocol".into(),
                    json!(p.protocol.as_deref().unwrap_or("TCP")),
                );
                JsonValue::Object(o)
            })
            .collect();
        m.insert("ports".into(), JsonValue::Array(ports));
    }
    if let Some(r) = &c.resources {
        let q = |m: &BTreeMap<String, QuantityValue>| -> JsonValue {
            JsonValue::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), json!(v.as_text())))
                    .collect(),
            )
        };
        let mut o = Map::new();
        if !r.limits.is_empty() {
            o.insert("limits".into(), q(&r.limits));
        }
        if !r.requests.is_empty() {
            o.insert("requests".into(), q(&r.requests));
        }
        m.insert("resources".into(), JsonValue::Object(o));
    }
    if !c.mounts.is_empty() {
        let mounts: Vec<JsonValue> = c
            .mounts
            .iter()
            .map(|mt| {
                let mut o = Map::new();
                o.insert("name".into(), json!(mt.name));
                o.insert("mountPath".into(), json!(mt.mount_path));
                if mt.read_only {
                    o.insert("readOnly".into(), json!(true));
                }
                if let Some(p) = &mt.mount_propagation {
                    o.insert("mountPropagation".into(), json!(p));
                }
                if let Some(p) = &mt.sub_path {
                    o.insert("subPath".into(), json!(p));
                }
                JsonValue::Object(o)
            })
            .collect();
        m.insert("volumeMounts".into(), JsonValue::Array(mounts));
    }
    for (k, v) in [
        ("readinessProbe", &c.readiness_probe),
        ("livenessProbe", &c.liveness_probe),
        ("startupProbe", &c.startup_probe),
        ("securityContext", &c.security_context),
        ("lifecycle", &c.lifecycle),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), v.clone());
        }
    }
    JsonValue::Object(m)
}

/// The spec hash of a manifest that carries neither the commit nor the spec-hash
/// annotation, from one serialisation into `scratch`. Equal to [`spec_hash`] of
/// the same manifest.
fn hash_serialized(manifest: &JsonValue, scratch: &mut Vec<u8>) -> String {
    scratch.clear();
    serde_json::to_writer(&mut *scratch, manifest).expect("json values always serialise");
    hex::encode(&Sha256::digest(scratch.as_slice())[..8])
}

/// The digest of a manifest's content, excluding the annotations that describe it.
pub fn spec_hash(manifest: &JsonValue) -> String {
    let mut m = manifest.clone();
    if let Some(a) = m
        .pointer_mut("/metadata/annotations")
        .and_then(JsonValue::as_object_mut)
    {
        a.remove(ANN_COMMIT);
        a.remove(ANN_SPEC_HASH);
    }
    let bytes = serde_json::to_vec(&m).expect("json");
    hex::encode(&Sha256::digest(&bytes)[..8])
}

fn sort_keys(v: &mut JsonValue) {
    if let JsonValue::Object(m) = v {
        let mut entries: Vec<(String, JsonValue)> = std::mem::take(m).into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        m.extend(entries);
    }
}

/// Merges a podTemplate fragment into what drover rendered, **additively**: it adds
/// what is not there and never removes, nulls or replaces anything (the rules, one
/// row per field, are in `docs/pod-template.md`):
///
/// - a `null` in the fragment is skipped;
/// - mappings merge key by key; a key drover set keeps drover's value unless both
///   are mappings, which merge in turn;
/// - `containers`, `initContainers`, `ephemeralContainers` merge by name: a new name
///   is appended, an existing one merges additively;
/// - `volumes`, `env`, `ports` and `volumeMounts` merge by name (a `volumeMounts`
///   entry also by `mountPath`, a `ports` entry also by `containerPort`/`protocol`):
///   a new one is appended, one drover has stays drover's, untouched; among
///   podTemplate's own mounts only `mountPath` counts, since one volume may be mounted
///   at several paths;
/// - `tolerations` merge by identity (key, operator, value, effect): a toleration
///   with a new identity is appended, one drover has stays drover's, untouched;
/// - any other list drover set is kept as drover set it.
///
/// Validation refuses every fragment this would silently ignore (a second spelling of
/// a field drover owns, a clashing toleration, a volume or mount reusing a name), so
/// the merge never has to choose; it is additive so that even a fleet that skipped
/// validation cannot lose drover's placement, tolerations or identity.
pub fn merge(base: &mut JsonValue, patch: &JsonValue) {
    merge_at(base, patch, "");
}

/// Pod fields drover owns even where it renders nothing for them: placement (the
/// node groups decide it) and what the short form spells. podTemplate never sets
/// them (validation refuses them, naming the short form's spelling).
pub const OWNED_POD_FIELDS: [&str; 8] = [
    "nodeName",
    "nodeSelector",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "priorityClassName",
    "serviceAccountName",
    "serviceAccount",
];

/// Main-container fields the short form (and `overrides.<group>`) spells.
pub const OWNED_MAIN_CONTAINER_FIELDS: [&str; 11] = [
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env",
    "ports",
    "resources",
    "readinessProbe",
    "livenessProbe",
    "startupProbe",
    "securityContext",
];

/// The podTemplate without the fields drover owns ([`OWNED_POD_FIELDS`],
/// `affinity.nodeAffinity`, the main container's [`OWNED_MAIN_CONTAINER_FIELDS`]),
/// so that the merge cannot add them where drover renders nothing (one catch-all
/// group has no affinity; `hostPID: false` is left out).
fn without_owned_fields(pt: &JsonValue, main: &str) -> JsonValue {
    let mut pt = pt.clone();
    if let Some(spec) = pt.get_mut("spec").and_then(JsonValue::as_object_mut) {
        for k in OWNED_POD_FIELDS {
            spec.remove(k);
        }
        if let Some(a) = spec.get_mut("affinity").and_then(JsonValue::as_object_mut) {
            a.remove("nodeAffinity");
        }
        if let Some(cs) = spec.get_mut("containers").and_then(JsonValue::as_array_mut) {
            for c in cs.iter_mut().filter_map(JsonValue::as_object_mut) {
                if c.get("name").and_then(JsonValue::as_str) == Some(main) {
                    for k in OWNED_MAIN_CONTAINER_FIELDS {
                        c.remove(k);
                    }
                }
            }
        }
    }
    pt
}

/// Lists merged by identity rather than kept whole, by the field that holds them.
fn list_identity(field: &str) -> Option<fn(&JsonValue, &JsonValue) -> bool> {
    fn same_name(a: &JsonValue, b: &JsonValue) -> bool {
        a.get("name").is_some() && a.get("name") == b.get("name")
    }
    fn same_mount(a: &JsonValue, b: &JsonValue) -> bool {
        same_name(a, b)
            || (a.get("mountPath").is_some() && a.get("mountPath") == b.get("mountPath"))
    }
    fn same_port(a: &JsonValue, b: &JsonValue) -> bool {
        let proto = |v: &JsonValue| {
            v.get("protocol")
                .and_then(JsonValue::as_str)
                .unwrap_or("TCP")
                .to_string()
        };
        same_name(a, b)
            || (a.get("containerPort").is_some()
                && a.get("containerPort") == b.get("containerPort")
                && proto(a) == proto(b))
    }
    fn same_toleration(a: &JsonValue, b: &JsonValue) -> bool {
        toleration_identity(a) == toleration_identity(b)
    }
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env" => {
            Some(same_name)
        }
        "volumeMounts" => Some(same_mount),
        "ports" => Some(same_port),
        "tolerations" => Some(same_toleration),
        _ => None,
    }
}

/// What makes two tolerations the same toleration: key, operator, value and effect,
/// with Kubernetes' defaults filled in (operator `Equal`, empty value and effect).
pub fn toleration_identity(t: &JsonValue) -> (String, String, String, String) {
    let s = |k: &str| {
        t.get(k)
            .and_then(JsonValue::as_str)
            .unwrap_or("")
            .to_string()
    };
    let op = match s("operator") {
        o if o.is_empty() => "Equal".to_string(),
        o => o,
    };
    (s("key"), op, s("value"), s("effect"))
}

fn merge_at(base: &mut JsonValue, patch: &JsonValue, field: &str) {
    match (base, patch) {
        (_, JsonValue::Null) => {}
        (JsonValue::Object(b), JsonValue::Object(p)) => {
            for (k, pv) in p {
                if pv.is_null() {
                    continue;
                }
                match b.get_mut(k) {
                    Some(bv) => merge_at(bv, pv, k),
                    None => {
                        b.insert(k.clone(), pv.clone());
                    }
                }
            }
        }
        (JsonValue::Array(b), JsonValue::Array(p)) => {
            let Some(same) = list_identity(field) else {
                // A list drover set (command, args, ...) is drover's.
                return;
            };
            // A container merges into drover's of its name; any other item drover
            // has (a volume, a toleration, a mount, a port, an env var) stays as it
            // is: merging into it would give a volume two sources or a group's
            // toleration a tolerationSeconds.
            let merges_into = matches!(
                field,
                "containers" | "initContainers" | "ephemeralContainers"
            );
            let drovers = b.len();
            for pv in p {
                if pv.is_null() {
                    continue;
                }
                let hit = if field == "volumeMounts" {
                    // One volume may be mounted at several paths (two subPaths of a
                    // ConfigMap): among podTemplate's own mounts only the path is an
                    // identity, as in Kubernetes.
                    b[..drovers].iter().position(|bv| same(bv, pv)).or_else(|| {
                        b[drovers..]
                            .iter()
                            .position(|bv| bv.get("mountPath") == pv.get("mountPath"))
                            .map(|i| i + drovers)
                    })
                } else {
                    b.iter().position(|bv| same(bv, pv))
                };
                match hit {
                    Some(i) if merges_into => merge_at(&mut b[i], pv, ""),
                    Some(_) => {}
                    None => b.push(pv.clone()),
                }
            }
        }
        // A scalar, or a value of another shape, that drover set stays.
        _ => {}
    }
}

/// The rendered set as a YAML stream: one document per config ConfigMap (first, so
/// that `kubectl apply -f -` creates them before the DaemonSets that mount them),
/// then one per DaemonSet.
pub fn to_yaml_stream(set: &DesiredSet) -> String {
    let mut out = String::new();
    for c in &set.config_maps {
        out.push_str(
            "---
",
        );
        out.push_str(&to_yaml(&c.manifest));
    }
    for item in &set.items {
        out.push_str("---\n");
        out.push_str(&to_yaml(&item.manifest.value()));
    }
    out
}

/// The SHA-256 (hex) of [`to_yaml_stream`] of `set` (config ConfigMaps, then
/// DaemonSets) followed by one document per companion object (file order), hashed
/// as it is written, one manifest at a time: the whole stream of a large fleet is
/// never held at once. Without companions it is the digest of the stream `drover
/// render` prints.
pub fn manifests_digest(set: &DesiredSet) -> String {
    let mut h = Sha256::new();
    for c in &set.config_maps {
        h.update(b"---\n");
        h.update(to_yaml(&c.manifest).as_bytes());
    }
    for item in &set.items {
        h.update(b"---\n");
        h.update(to_yaml(&item.manifest.value()).as_bytes());
    }
    for c in &set.companions {
        h.update(b"---\n");
        h.update(to_yaml(&c.manifest).as_bytes());
    }
    hex::encode(h.finalize())
}

/// One manifest as YAML, every string quoted where some reader would take it for
/// something else (see [`crate::emit`]).
pub fn to_yaml(v: &JsonValue) -> String {
    super::emit::to_yaml(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LIMITS;

    fn example_fleet() -> Fleet {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet");
        let files = crate::load::test_support::read_dir(&dir);
        crate::validate::load_fleet(&files, &LIMITS).expect("the example fleet is valid")
    }

    /// The config ConfigMaps' share of the size limit: each one's compact JSON.
    fn config_maps_bytes(set: &DesiredSet) -> usize {
        set.config_maps
            .iter()
            .map(|c| serde_json::to_string(&c.manifest).unwrap().len())
            .sum()
    }

    /// Renders `fleet` and checks every item's spec hash and the size limit's count
    /// against the separate computations they replace: [`spec_hash`] of the manifest
    /// without drover's two annotations, and the compact JSON of each final manifest.
    fn assert_one_serialisation_serves_hash_and_size(fleet: &Fleet, ctx: &RenderContext) {
        let set = render(fleet, ctx, usize::MAX).expect("render");
        assert!(!set.items.is_empty());
        let mut total = 0;
        for item in &set.items {
            let mut bare = item.manifest.value();
            let ann = bare["metadata"]["annotations"].as_object_mut().unwrap();
            // The annotations are sorted, as they were when hashed.
            ann.shift_remove(ANN_COMMIT);
            ann.shift_remove(ANN_SPEC_HASH);
            assert_eq!(item.spec_hash, spec_hash(&bare), "{}", item.name);
            assert_eq!(
                item.manifest.value()["metadata"]["annotations"][ANN_SPEC_HASH],
                json!(item.spec_hash)
            );
            total += item.manifest.len();
        }
        // Config ConfigMaps count towards the limit too, each once.
        total += config_maps_bytes(&set);
        assert!(render(fleet, ctx, total).is_ok());
        match render(fleet, ctx, total - 1) {
            Err(RenderError::TooLarge { bytes, .. }) => assert_eq!(bytes, total),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn one_serialisation_gives_the_same_spec_hash_and_size_as_two() {
        let fleet = example_fleet();
        for commit in [
            Some("0123456789abcdef0123456789abcdef01234567".to_string()),
            Some("needs \"escaping\" \u{1} é".to_string()),
            None,
        ] {
            assert_one_serialisation_serves_hash_and_size(&fleet, &RenderContext { commit });
        }
    }

    #[test]
    fn a_daemon_annotation_with_drovers_own_key_still_hashes_and_counts_as_before() {
        // Validation refuses it; a fleet built in code can still carry it.
        let mut fleet = example_fleet();
        fleet.daemons[0]
            .annotations
            .insert(ANN_COMMIT.into(), "user".into());
        let ctx = RenderContext {
            commit: Some("abc".into()),
        };
        let set = render(&fleet, &ctx, usize::MAX).unwrap();
        let item = set
            .items
            .iter()
            .find(|i| i.daemon == fleet.daemons[0].name)
            .unwrap();
        assert_eq!(
            item.manifest.value()["metadata"]["annotations"][ANN_COMMIT],
            "abc"
        );
        let total: usize =
            set.items.iter().map(|i| i.manifest.len()).sum::<usize>() + config_maps_bytes(&set);
        match render(&fleet, &ctx, total - 1) {
            Err(RenderError::TooLarge { bytes, .. }) => assert_eq!(bytes, total),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn env_values_a_yaml_1_1_reader_takes_for_booleans_render_quoted() {
        // Issue 13: `yes` printed plain is a boolean to kubectl, so `drover render |
        // kubectl apply -f -` failed on the datadog agent.
        let mut fleet = example_fleet();
        fleet.daemons[0].env = vec![
            json!({"name": "DD_LOGS_CONFIG_K8S_CONTAINER_USE_FILE", "value": "yes"}),
            json!({"name": "MODE", "value": "0755"}),
        ];
        let set = render(&fleet, &RenderContext::default(), usize::MAX).unwrap();
        let yaml = to_yaml_stream(&set);
        assert!(yaml.contains("value: 'yes'\n"), "{yaml}");
        assert!(yaml.contains("value: '0755'\n"), "{yaml}");
        assert!(!yaml.contains("value: yes\n"), "{yaml}");
    }

    #[test]
    fn two_podtemplate_mounts_of_one_volume_are_both_kept_beside_a_short_form_mount() {
        // Found by drover import's round trip: the second subPath mount of a ConfigMap
        // was taken for the first (same volume name) and silently dropped.
        let mut base = json!({"spec": {"containers": [{"name": "a",
            "volumeMounts": [{"name": "root", "mountPath": "/host"}]}]}});
        merge(
            &mut base,
            &json!({"spec": {"containers": [{"name": "a", "volumeMounts": [
                {"name": "cfg", "mountPath": "/etc/a.conf", "subPath": "a.conf"},
                {"name": "cfg", "mountPath": "/etc/b.conf", "subPath": "b.conf"},
                {"name": "root", "mountPath": "/elsewhere"},
                {"name": "cfg", "mountPath": "/etc/a.conf", "subPath": "again"}]}]}}),
        );
        assert_eq!(
            base["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": "root", "mountPath": "/host"},
                {"name": "cfg", "mountPath": "/etc/a.conf", "subPath": "a.conf"},
                {"name": "cfg", "mountPath": "/etc/b.conf", "subPath": "b.conf"}])
        );
    }

    #[test]
    fn long_names_are_shortened_stably() {
        let d = "a".repeat(40);
        let g = "b".repeat(40);
        let n = daemonset_name(&d, &g);
        assert!(n.len() <= 63, "{n}");
        assert_eq!(n, daemonset_name(&d, &g));
        assert_ne!(n, daemonset_name(&d, &"c".repeat(40)));
        assert_eq!(daemonset_name("node-exporter", "gpu"), "node-exporter-gpu");
    }

    #[test]
    fn merge_by_name_keeps_the_main_container() {
        let mut base = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        merge(
            &mut base,
            &json!({"spec": {"containers": [{"name": "a", "stdin": true}, {"name": "sidecar", "image": "y"}], "dnsPolicy": "Default"}}),
        );
        assert_eq!(
            base,
            json!({"spec": {"containers": [{"name": "a", "image": "x", "stdin": true}, {"name": "sidecar", "image": "y"}], "dnsPolicy": "Default"}})
        );
    }

    #[test]
    fn merge_never_removes_nulls_or_replaces_what_drover_rendered() {
        let rendered = json!({"spec": {
            "affinity": {"nodeAffinity": {"required": 1}},
            "containers": [{"name": "a", "image": "x", "ports": [{"name": "m", "containerPort": 1}],
                            "volumeMounts": [{"name": "v", "mountPath": "/v"}], "args": ["--a"]}],
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "volumes": [{"name": "v", "hostPath": {"path": "/v"}}],
            "hostNetwork": true,
            "serviceAccountName": "sa"
        }});
        for patch in [
            json!({"spec": {"affinity": null}}),
            json!({"spec": {"affinity": {"nodeAffinity": null}}}),
            json!({"spec": {"affinity": {"nodeAffinity": {"required": 2}}}}),
            json!({"spec": {"tolerations": [{"key": "x", "operator": "Exists"}]}}),
            json!({"spec": {"tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}]}}),
            json!({"spec": {"tolerations": []}}),
            json!({"spec": {"tolerations": null}}),
            json!({"spec": {"containers": [{"name": "a", "image": "evil", "args": ["--b"], "ports": [{"containerPort": 2}]}]}}),
            json!({"spec": {"containers": [{"name": "a", "ports": [{"name": "m", "containerPort": 9}]}]}}),
            json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/etc"}]}]}}),
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
            json!({"spec": {"hostNetwork": false, "serviceAccountName": "other", "serviceAccount": "other"}}),
            json!({"spec": {"containers": null, "volumes": null}}),
            json!({"spec": null}),
            json!({"spec": "x"}),
        ] {
            let mut merged = rendered.clone();
            merge(&mut merged, &patch);
            // Everything drover rendered is still there, unchanged.
            fn contains(big: &JsonValue, small: &JsonValue) -> bool {
                match (big, small) {
                    (JsonValue::Object(b), JsonValue::Object(s)) => s
                        .iter()
                        .all(|(k, v)| b.get(k).is_some_and(|bv| contains(bv, v))),
                    (JsonValue::Array(b), JsonValue::Array(s)) => {
                        s.iter().all(|v| b.iter().any(|bv| contains(bv, v)))
                    }
                    (b, s) => b == s,
                }
            }
            assert!(contains(&merged, &rendered), "{patch} lost:\n{merged:#}");
            assert_eq!(merged["spec"]["containers"][0]["image"], "x", "{patch}");
            assert_eq!(
                merged["spec"]["containers"][0]["args"],
                json!(["--a"]),
                "{patch}"
            );
            assert_eq!(
                merged["spec"]["volumes"].as_array().unwrap().len(),
                1,
                "{patch}"
            );
            assert_eq!(
                merged["spec"]["containers"][0]["volumeMounts"]
                    .as_array()
                    .unwrap()
                    .len(),
                1,
                "{patch}"
            );
        }
    }
}
