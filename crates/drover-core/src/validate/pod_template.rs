//! Validation of `podTemplate`, the escape hatch: it may add to what drover renders,
//! never take away from it or spell a second time what the short form spells, and
//! what it brings passes the same rules as the short form.
//!
//! Owns: the per-daemon podTemplate rules (the table in `docs/pod-template.md`), and
//! reading the host ports and tolerations a podTemplate adds for the checks across
//! documents (see [`super::cross`]). The render's additive merge
//! ([`crate::render::merge`]) is its twin: every fragment this module accepts merges
//! without the merge having to drop anything.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as JsonValue};

use super::{DaemonDoc, RESERVED_LABEL_PREFIXES, Validator};
use crate::diag::did_you_mean;
use crate::model::{DaemonSpec, Toleration};
use crate::syntax;
use crate::yaml::{join_index, join_key};

/// Pod fields the short form spells, or that decide placement: podTemplate cannot
/// set them, whatever their value.
const OWNED_POD_FIELDS: [(&str, &str); 8] = [
    (
        "nodeName",
        "`nodeName` would break the node-group partition; use a NodeGroup",
    ),
    (
        "nodeSelector",
        "`nodeSelector` here would break the node-group partition; spell it spec.nodeSelector (ANDed into every group's placement)",
    ),
    ("hostNetwork", "`hostNetwork` is spelled spec.hostNetwork"),
    ("hostPID", "`hostPID` is spelled spec.hostPID"),
    ("hostIPC", "`hostIPC` is spelled spec.hostIPC"),
    (
        "priorityClassName",
        "`priorityClassName` is spelled spec.priorityClassName",
    ),
    (
        "serviceAccountName",
        "`serviceAccountName` is spelled spec.serviceAccountName",
    ),
    (
        "serviceAccount",
        "`serviceAccount` (the deprecated spelling of serviceAccountName) is spelled spec.serviceAccountName",
    ),
];

/// Fields of the main container the short form spells.
const OWNED_MAIN_FIELDS: [(&str, &str); 11] = [
    ("image", "spec.image (and overrides.<group>.image)"),
    ("imagePullPolicy", "spec.imagePullPolicy"),
    ("command", "spec.command (and overrides.<group>.command)"),
    ("args", "spec.args (and overrides.<group>.args)"),
    ("env", "spec.env (and overrides.<group>.env)"),
    ("ports", "spec.ports"),
    (
        "resources",
        "spec.resources (and overrides.<group>.resources)",
    ),
    ("readinessProbe", "spec.readinessProbe"),
    ("livenessProbe", "spec.livenessProbe"),
    ("startupProbe", "spec.startupProbe"),
    ("securityContext", "spec.securityContext"),
];

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// `hostPath.type` values.
pub(super) const HOST_PATH_TYPES: [&str; 8] = [
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

/// A port bound on the node, and where the daemon's document says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostPort {
    pub port: i64,
    pub protocol: String,
    /// Empty: every address.
    pub host_ip: String,
    pub field: String,
}

impl HostPort {
    /// Whether two bindings want the same port on the same node.
    pub fn clashes(&self, other: &HostPort) -> bool {
        let any = |ip: &str| matches!(ip, "" | "0.0.0.0" | "::");
        self.port == other.port
            && self.protocol == other.protocol
            && (any(&self.host_ip) || any(&other.host_ip) || self.host_ip == other.host_ip)
    }
}

/// Every port the daemon's pods bind on the node: short-form `hostPort`s, every
/// `containerPort` under `hostNetwork` (Kubernetes makes it the host port), and the
/// same for the short form's init containers and sidecars and for the containers and
/// init containers podTemplate adds.
pub(super) fn host_ports(s: &DaemonSpec) -> Vec<HostPort> {
    let mut out = Vec::new();
    for (i, p) in s.ports.iter().enumerate() {
        let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        match p.host_port {
            Some(h) => out.push(HostPort {
                port: h,
                protocol,
                host_ip: String::new(),
                field: format!("spec.ports[{i}].hostPort"),
            }),
            None if s.host_network => out.push(HostPort {
                port: p.container_port,
                protocol,
                host_ip: String::new(),
                field: format!("spec.ports[{i}].containerPort"),
            }),
            None => {}
        }
    }
    for (list, cs) in [
        ("initContainers", &s.init_containers),
        ("sidecars", &s.sidecars),
    ] {
        for (i, c) in cs.iter().enumerate() {
            for (j, p) in c.ports.iter().enumerate() {
                let f = format!("spec.{list}[{i}].ports[{j}]");
                let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                match p.host_port {
                    Some(h) => out.push(HostPort {
                        port: h,
                        protocol,
                        host_ip: String::new(),
                        field: format!("{f}.hostPort"),
                    }),
                    None if s.host_network => out.push(HostPort {
                        port: p.container_port,
                        protocol,
                        host_ip: String::new(),
                        field: format!("{f}.containerPort"),
                    }),
                    None => {}
                }
            }
        }
    }
    let Some(spec) = s.pod_template.as_ref().and_then(|pt| pt.get("spec")) else {
        return out;
    };
    for list in ["containers", "initContainers"] {
        let Some(cs) = spec.get(list).and_then(JsonValue::as_array) else {
            continue;
        };
        for (i, c) in cs.iter().enumerate() {
            let Some(ports) = c.get("ports").and_then(JsonValue::as_array) else {
                continue;
            };
            for (j, p) in ports.iter().enumerate() {
                let f = format!("spec.podTemplate.spec.{list}[{i}].ports[{j}]");
                let int = |k: &str| p.get(k).and_then(JsonValue::as_i64);
                let protocol = p
                    .get("protocol")
                    .and_then(JsonValue::as_str)
                    .unwrap_or("TCP")
                    .to_string();
                let host_ip = p
                    .get("hostIP")
                    .and_then(JsonValue::as_str)
                    .unwrap_or("")
                    .to_string();
                match (int("hostPort"), int("containerPort")) {
                    (Some(h), _) if h != 0 => out.push(HostPort {
                        port: h,
                        protocol,
                        host_ip,
                        field: format!("{f}.hostPort"),
                    }),
                    (_, Some(c)) if s.host_network => out.push(HostPort {
                        port: c,
                        protocol,
                        host_ip,
                        field: format!("{f}.containerPort"),
                    }),
                    _ => {}
                }
            }
        }
    }
    out
}

/// The tolerations podTemplate adds, with their fields.
pub(super) fn tolerations(s: &DaemonSpec) -> Vec<(JsonValue, String)> {
    s.pod_template
        .as_ref()
        .and_then(|pt| pt.pointer("/spec/tolerations"))
        .and_then(JsonValue::as_array)
        .map(|ts| {
            ts.iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), format!("spec.podTemplate.spec.tolerations[{i}]")))
                .collect()
        })
        .unwrap_or_default()
}

/// A toleration as a JSON value (as it renders).
pub(super) fn toleration_json(t: &Toleration) -> JsonValue {
    serde_json::to_value(t).unwrap_or(JsonValue::Null)
}

/// `{key: k, operator: Exists, effect: NoSchedule}`, for messages.
pub(super) fn describe_toleration(t: &JsonValue) -> String {
    let (k, op, v, e) = crate::render::toleration_identity(t);
    let mut parts = Vec::new();
    if !k.is_empty() {
        parts.push(format!("key: {k}"));
    }
    parts.push(format!("operator: {op}"));
    if !v.is_empty() {
        parts.push(format!("value: {v}"));
    }
    if !e.is_empty() {
        parts.push(format!("effect: {e}"));
    }
    format!("{{{}}}", parts.join(", "))
}

/// Whether two tolerations with one identity differ in what else they say
/// (`tolerationSeconds`): then they clash.
pub(super) fn tolerations_clash(a: &JsonValue, b: &JsonValue) -> bool {
    crate::render::toleration_identity(a) == crate::render::toleration_identity(b)
        && a.get("tolerationSeconds") != b.get("tolerationSeconds")
}

impl Validator<'_> {
    pub(super) fn pod_template(&mut self, d: &DaemonDoc, pt: &JsonValue) {
        let Some(obj) = pt.as_object() else {
            self.push(d.diag(
                "spec.podTemplate",
                "must be a mapping with metadata and/or spec",
            ));
            return;
        };
        self.no_nulls(d, pt, "spec.podTemplate");
        for (k, v) in obj {
            let f = join_key("spec.podTemplate", k);
            match k.as_str() {
                "metadata" => self.pod_metadata(d, &f, v),
                "spec" => match v.as_object() {
                    Some(o) => self.pod_spec(d, &f, o),
                    None if v.is_null() => {}
                    None => self.push(d.diag(&f, "must be a mapping (a PodSpec fragment)")),
                },
                other => self.push(d.diag(
                    &f,
                    format!("podTemplate may only hold metadata and spec, not `{other}`"),
                )),
            }
        }
    }

    /// A `null` would remove what drover renders there (the API server treats null as
    /// "unset"); drover's merge skips it, so it is refused rather than ignored.
    fn no_nulls(&mut self, d: &DaemonDoc, v: &JsonValue, field: &str) {
        match v {
            // At the key: an empty value's position is past the end of its line.
            JsonValue::Null => self.push(crate::diag::Diagnostic::new(
                d.path.clone(),
                d.index.key_pos(field),
                field,
                "null in podTemplate would remove what drover renders; leave the field out",
            )),
            JsonValue::Object(m) => {
                for (k, x) in m {
                    self.no_nulls(d, x, &join_key(field, k));
                }
            }
            JsonValue::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    self.no_nulls(d, x, &join_index(field, i));
                }
            }
            _ => {}
        }
    }

    fn pod_metadata(&mut self, d: &DaemonDoc, f: &str, v: &JsonValue) {
        let Some(m) = v.as_object() else {
            if !v.is_null() {
                self.push(d.diag(f, "must be a mapping"));
            }
            return;
        };
        for (mk, mv) in m {
            let mf = join_key(f, mk);
            let own = match mk.as_str() {
                "labels" => &d.value.metadata.labels,
                "annotations" => &d.value.metadata.annotations,
                _ => {
                    self.push(d.diag(
                        &mf,
                        format!(
                            "podTemplate.metadata may only set labels and annotations, not `{mk}`"
                        ),
                    ));
                    continue;
                }
            };
            if mv.is_null() {
                continue;
            }
            for key in mv
                .as_object()
                .map(|o| o.keys().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                let lf = join_key(&mf, key);
                if RESERVED_LABEL_PREFIXES.iter().any(|p| key.starts_with(p)) {
                    self.push(d.diag(
                        &lf,
                        format!("`{key}` is set by drover and cannot be overridden"),
                    ));
                }
            }
            let Some(map) = self.typed::<BTreeMap<String, String>, _>(d, &mf, mv) else {
                continue;
            };
            for (k, v) in &map {
                let lf = join_key(&mf, k);
                if mk == "labels" {
                    // Pod labels reach selectors and the API server's validation:
                    // check them as metadata.labels are.
                    if self.check(
                        d,
                        &lf,
                        syntax::label_key(k).map_err(|e| format!("label key `{k}`: {e}")),
                    ) {
                        self.check(
                            d,
                            &lf,
                            syntax::label_value(v).map_err(|e| format!("label `{k}`: {e}")),
                        );
                    }
                } else {
                    self.check(d, &lf, syntax::label_key(k));
                }
                if let Some(theirs) = own.get(k)
                    && theirs != v
                {
                    let other = join_key(&format!("metadata.{mk}"), k);
                    self.push(d.diag(
                        &lf,
                        format!(
                            "`{k}` is also set by {other} (line {}) to another value; set it in one place",
                            d.index.pos(&other).line
                        ),
                    ));
                }
            }
        }
    }

    fn pod_spec(&mut self, d: &DaemonDoc, f: &str, o: &Map<String, JsonValue>) {
        let s = &d.value.spec;
        for (key, why) in OWNED_POD_FIELDS {
            if o.contains_key(key) {
                self.push(d.diag(&join_key(f, key), why));
            }
        }
        if o.get("affinity")
            .and_then(|a| a.get("nodeAffinity"))
            .is_some()
        {
            self.push(d.diag(
                &format!("{f}.affinity.nodeAffinity"),
                "nodeAffinity is set by drover from the node groups",
            ));
        }
        // Pod fields the short form may spell too: in one place only.
        for (key, set, short) in [
            ("dnsPolicy", s.dns_policy.is_some(), "spec.dnsPolicy"),
            ("dnsConfig", s.dns_config.is_some(), "spec.dnsConfig"),
            (
                "securityContext",
                s.pod_security_context.is_some(),
                "spec.podSecurityContext",
            ),
            (
                "terminationGracePeriodSeconds",
                s.termination_grace_period_seconds.is_some(),
                "spec.terminationGracePeriodSeconds",
            ),
        ] {
            if set && o.contains_key(key) {
                self.push(d.diag(
                    &join_key(f, key),
                    format!(
                        "`{key}` is also set by {short} (line {}); set it in one place",
                        d.index.pos(short).line
                    ),
                ));
            }
        }
        let main_name = s
            .container_name
            .clone()
            .unwrap_or_else(|| d.value.metadata.name.clone());
        // Containers of every kind: one name each (the short form's init containers
        // and sidecars included), and what they bring checked as the short form is.
        let mut names: BTreeMap<String, String> = s
            .short_containers(&main_name)
            .into_iter()
            .filter(|(_, kind, _)| *kind != crate::model::ContainerKind::Main)
            .map(|(prefix, _, c)| (c.name, prefix))
            .collect();
        for list in CONTAINER_LISTS {
            let lf = join_key(f, list);
            let Some(v) = o.get(list) else {
                continue;
            };
            let Some(items) = v.as_array() else {
                if !v.is_null() {
                    self.push(d.diag(&lf, "must be a list of containers"));
                }
                continue;
            };
            for (i, c) in items.iter().enumerate() {
                let cf = join_index(&lf, i);
                let Some(c) = c.as_object() else {
                    self.push(d.diag(&cf, "a container must be a mapping"));
                    continue;
                };
                let Some(name) = c
                    .get("name")
                    .and_then(JsonValue::as_str)
                    .filter(|n| !n.is_empty())
                else {
                    self.push(d.diag(
                        &cf,
                        "a podTemplate container needs a name (containers merge by name)",
                    ));
                    continue;
                };
                self.check(d, &format!("{cf}.name"), syntax::dns_label(name));
                if let Some(first) = names.insert(name.to_string(), cf.clone()) {
                    self.push(d.diag(
                        &format!("{cf}.name"),
                        format!("container name `{name}` is used twice (also {first})"),
                    ));
                }
                let main = list == "containers" && name == main_name;
                if main {
                    self.main_container(d, &cf, c);
                } else {
                    if name == main_name {
                        self.push(d.diag(
                            &format!("{cf}.name"),
                            format!("`{name}` is the main container's name"),
                        ));
                    }
                    self.extra_container(d, &cf, c, s.host_network);
                }
            }
        }
        // Volumes: one source per name; a short-form mount's name is taken.
        let mut vol_names = super::pod_spec::short_volume_names(s, &main_name);
        if let Some(vs) = o.get("volumes").and_then(JsonValue::as_array) {
            for (i, v) in vs.iter().enumerate() {
                let vf = join_index(&join_key(f, "volumes"), i);
                let Some(name) = v
                    .get("name")
                    .and_then(JsonValue::as_str)
                    .filter(|n| !n.is_empty())
                else {
                    self.push(d.diag(&vf, "a volume needs a name"));
                    continue;
                };
                self.check(d, &format!("{vf}.name"), syntax::dns_label(name));
                if let Some(first) = vol_names.insert(name.to_string(), vf.clone()) {
                    self.push(d.diag(
                        &format!("{vf}.name"),
                        format!(
                            "volume `{name}` is also {first} (line {}): one volume would get two sources",
                            d.index.pos(&first).line
                        ),
                    ));
                }
                if let Some(hp) = v.get("hostPath") {
                    let hf = format!("{vf}.hostPath");
                    match hp.get("path").and_then(JsonValue::as_str) {
                        Some(p) => {
                            if let Err(e) = host_path_rule(p) {
                                self.push(d.diag(&format!("{hf}.path"), e));
                            }
                        }
                        None => self.push(d.diag(&format!("{hf}.path"), "missing field `path`")),
                    }
                    if let Some(t) = hp.get("type").and_then(JsonValue::as_str)
                        && !HOST_PATH_TYPES.contains(&t)
                    {
                        self.push(
                            d.diag(
                                &format!("{hf}.type"),
                                format!("unknown hostPath type `{t}`"),
                            )
                            .with_hint(did_you_mean(t, HOST_PATH_TYPES)),
                        );
                    }
                }
            }
        }
        // Tolerations: the short form's rules, and one identity, one toleration.
        if let Some(tv) = o.get("tolerations") {
            let tf = join_key(f, "tolerations");
            if let Some(list) = self.typed::<Vec<Toleration>, _>(d, &tf, tv) {
                self.tolerations(d, &tf, &list);
            }
            let mine: Vec<(JsonValue, String)> = s
                .tolerations
                .iter()
                .enumerate()
                .map(|(i, t)| (toleration_json(t), format!("spec.tolerations[{i}]")))
                .collect();
            let added = tolerations(s);
            for (i, (t, field)) in added.iter().enumerate() {
                let earlier = mine.iter().chain(&added[..i]);
                if let Some((_, other)) = earlier.into_iter().find(|(o, _)| tolerations_clash(o, t))
                {
                    self.push(d.diag(
                        field,
                        format!(
                            "toleration {} is also {other} (line {}) with another tolerationSeconds; give it once",
                            describe_toleration(t),
                            d.index.pos(other).line
                        ),
                    ));
                }
            }
        }
        // Every port bound on the node, once per pod.
        let mut seen: Vec<HostPort> = Vec::new();
        for hp in host_ports(s) {
            if !hp.field.starts_with("spec.podTemplate") {
                seen.push(hp);
                continue;
            }
            if let Some(first) = seen.iter().find(|x| x.clashes(&hp)) {
                self.push(d.diag(
                    &hp.field,
                    format!(
                        "host port {}/{} is bound twice in one pod (also {})",
                        hp.port, hp.protocol, first.field
                    ),
                ));
            }
            seen.push(hp);
        }
        // The whole fragment against the Kubernetes type: unknown fields, types.
        let mut spec = JsonValue::Object(o.clone());
        if let Some(o) = spec.as_object_mut() {
            o.entry("containers").or_insert(JsonValue::Array(vec![]));
            for list in CONTAINER_LISTS {
                if let Some(JsonValue::Array(cs)) = o.get_mut(list) {
                    for c in cs.iter_mut() {
                        if let Some(c) = c.as_object_mut() {
                            c.entry("name").or_insert(JsonValue::String(String::new()));
                        }
                    }
                }
            }
        }
        self.typed::<k8s_openapi::api::core::v1::PodSpec, _>(d, f, &spec);
    }

    /// The main container may add what the short form has no spelling for; its mounts
    /// join the short form's, without reusing a name or a mount path.
    fn main_container(&mut self, d: &DaemonDoc, cf: &str, c: &Map<String, JsonValue>) {
        let s = &d.value.spec;
        if s.lifecycle.is_some() && c.contains_key("lifecycle") {
            self.push(d.diag(
                &join_key(cf, "lifecycle"),
                format!(
                    "`lifecycle` of the main container is also set by spec.lifecycle (line {}); set it in one place",
                    d.index.pos("spec.lifecycle").line
                ),
            ));
        }
        for (key, spelled) in OWNED_MAIN_FIELDS {
            if c.contains_key(key) {
                self.push(d.diag(
                    &join_key(cf, key),
                    format!(
                        "`{key}` of the main container is spelled {spelled}; podTemplate cannot set it"
                    ),
                ));
            }
        }
        let taken: Vec<(String, String, String)> = s
            .mounts
            .iter()
            .enumerate()
            .map(|(i, m)| {
                (
                    m.name.clone(),
                    m.mount_path.clone(),
                    format!("spec.mounts[{i}]"),
                )
            })
            .collect();
        self.volume_mounts(d, cf, c, &taken);
    }

    fn extra_container(
        &mut self,
        d: &DaemonDoc,
        cf: &str,
        c: &Map<String, JsonValue>,
        host_network: bool,
    ) {
        match c.get("image").and_then(JsonValue::as_str) {
            Some(img) => {
                self.check(d, &format!("{cf}.image"), syntax::image(img));
            }
            None => self.push(d.diag(cf, "a container needs an image")),
        }
        if let Some(p) = c.get("imagePullPolicy").and_then(JsonValue::as_str)
            && !matches!(p, "Always" | "IfNotPresent" | "Never")
        {
            self.push(d.diag(
                &format!("{cf}.imagePullPolicy"),
                format!("`{p}` is not Always, IfNotPresent or Never"),
            ));
        }
        if let Some(ports) = c.get("ports").and_then(JsonValue::as_array) {
            let mut names = BTreeSet::new();
            for (j, p) in ports.iter().enumerate() {
                let pf = format!("{cf}.ports[{j}]");
                let int = |k: &str| p.get(k).and_then(JsonValue::as_i64);
                for k in ["containerPort", "hostPort"] {
                    if let Some(n) = int(k)
                        && !(k == "hostPort" && n == 0)
                        && !(1..=65535).contains(&n)
                    {
                        self.push(d.diag(
                            &format!("{pf}.{k}"),
                            format!("port must be between 1 and 65535 (is {n})"),
                        ));
                    }
                }
                if host_network
                    && let (Some(h), Some(cp)) = (int("hostPort"), int("containerPort"))
                    && h != 0
                    && h != cp
                {
                    self.push(d.diag(
                        &format!("{pf}.hostPort"),
                        "with hostNetwork, hostPort must equal containerPort",
                    ));
                }
                if let Some(n) = p.get("name").and_then(JsonValue::as_str) {
                    self.check(d, &format!("{pf}.name"), syntax::port_name(n));
                    if !names.insert(n.to_string()) {
                        self.push(
                            d.diag(&format!("{pf}.name"), format!("duplicate port name `{n}`")),
                        );
                    }
                }
                if let Some(proto) = p.get("protocol").and_then(JsonValue::as_str)
                    && !matches!(proto, "TCP" | "UDP" | "SCTP")
                {
                    self.push(d.diag(
                        &format!("{pf}.protocol"),
                        format!("`{proto}` is not TCP, UDP or SCTP"),
                    ));
                }
            }
        }
        if let Some(env) = c.get("env")
            && env.is_array()
        {
            self.env(d, &format!("{cf}.env"), Some(env));
        }
        if let Some(r) = c.get("resources") {
            for kind in ["requests", "limits"] {
                let Some(m) = r.get(kind).and_then(JsonValue::as_object) else {
                    continue;
                };
                for (name, q) in m {
                    let qf = join_key(&format!("{cf}.resources.{kind}"), name);
                    let text = match q {
                        JsonValue::String(s) => s.clone(),
                        JsonValue::Number(n) => n.to_string(),
                        _ => continue,
                    };
                    self.check(d, &qf, syntax::quantity(&text));
                }
            }
        }
        self.volume_mounts(d, cf, c, &[]);
    }

    /// Mount paths absolute and without `..`; no name or path of `taken` (the short
    /// form's mounts, for the main container) reused.
    fn volume_mounts(
        &mut self,
        d: &DaemonDoc,
        cf: &str,
        c: &Map<String, JsonValue>,
        taken: &[(String, String, String)],
    ) {
        let Some(mounts) = c.get("volumeMounts").and_then(JsonValue::as_array) else {
            return;
        };
        let mut paths: Vec<(String, String)> = taken
            .iter()
            .map(|(_, p, f)| (p.clone(), f.clone()))
            .collect();
        for (j, m) in mounts.iter().enumerate() {
            let mf = format!("{cf}.volumeMounts[{j}]");
            if let Some(name) = m.get("name").and_then(JsonValue::as_str)
                && let Some((_, _, other)) = taken.iter().find(|(n, _, _)| n == name)
            {
                self.push(d.diag(
                    &format!("{mf}.name"),
                    format!(
                        "the mount of `{name}` is spelled {other} (line {}); podTemplate cannot mount it again",
                        d.index.pos(other).line
                    ),
                ));
            }
            if let Some(p) = m.get("mountPath").and_then(JsonValue::as_str) {
                if let Err(e) = mount_path_rule(p) {
                    self.push(d.diag(&format!("{mf}.mountPath"), e));
                }
                if let Some((_, other)) = paths.iter().find(|(q, _)| q == p) {
                    self.push(d.diag(
                        &format!("{mf}.mountPath"),
                        format!("`{p}` is already mounted by {other}"),
                    ));
                }
                paths.push((p.to_string(), mf.clone()));
            }
        }
    }
}

/// The short form's rule for a `hostPath`: absolute, no `..`.
pub(super) fn host_path_rule(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        Err(format!("`{p}` must be an absolute path"))
    } else if p.split('/').any(|c| c == "..") {
        Err(format!("`{p}` must not contain `..`"))
    } else {
        Ok(())
    }
}

/// The short form's rule for a `mountPath`: the same as for host paths.
pub(super) fn mount_path_rule(p: &str) -> Result<(), String> {
    host_path_rule(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_refuses_exactly_the_fields_the_render_leaves_out() {
        let refused: Vec<&str> = OWNED_POD_FIELDS.iter().map(|(k, _)| *k).collect();
        assert_eq!(refused, crate::render::OWNED_POD_FIELDS);
        let main: Vec<&str> = OWNED_MAIN_FIELDS.iter().map(|(k, _)| *k).collect();
        assert_eq!(main, crate::render::OWNED_MAIN_CONTAINER_FIELDS);
    }
}
