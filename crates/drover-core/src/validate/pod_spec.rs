//! Validation of the short form's pod: the main container, init containers and
//! sidecars (one set of rules for all three), their mounts and the pod's volumes,
//! the pod-level fields and the daemon's own node constraints.
//!
//! Owns: the rules of those fields, each reported at the field that breaks it. Must
//! not: check podTemplate (see [`super::pod_template`]) or rules across documents
//! (see [`super::cross`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1 as core;
use serde_json::Value as JsonValue;

use super::pod_template::{HOST_PATH_TYPES, HostPort, host_path_rule, host_ports, mount_path_rule};
use super::{DaemonDoc, Validator};
use crate::diag::did_you_mean;
use crate::model::{Container, ContainerKind, DaemonSpec, LabelSelector, Mount, Port};
use crate::selector::{Requirement, requirements, satisfiable};
use crate::syntax;

/// What the short form's pod resolves to, for [`crate::fleet::Daemon`].
pub(super) struct ShortPod {
    /// The main container's env as `EnvVar`s.
    pub env: Vec<JsonValue>,
    /// Each init container's and sidecar's env, by container name.
    pub container_env: BTreeMap<String, Vec<JsonValue>>,
    pub container_name: String,
    pub app_name: String,
    pub constraints: Vec<Requirement>,
}

const DNS_POLICIES: [&str; 4] = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];

/// Where a volume name is declared, and the hostPath it stands for when a mount
/// declares it.
struct Declared {
    field: String,
    host_path: Option<(String, Option<String>)>,
}

impl Validator<'_> {
    pub(super) fn pod_spec_short(&mut self, d: &DaemonDoc) -> ShortPod {
        let s = &d.value.spec;
        let daemon = &d.value.metadata.name;
        if let Some(n) = &s.container_name {
            self.check(d, "spec.containerName", syntax::dns_label(n));
        }
        if let Some(n) = &s.app_name {
            let r = if n.is_empty() {
                Err("must not be empty".to_string())
            } else {
                syntax::label_value(n)
            };
            self.check(d, "spec.appName", r);
        }
        let container_name = s.container_name.clone().unwrap_or_else(|| daemon.clone());
        let containers = s.short_containers(&container_name);
        let mut names: BTreeMap<&str, &str> = BTreeMap::new();
        let mut env = Vec::new();
        let mut container_env = BTreeMap::new();
        for (prefix, kind, c) in &containers {
            if *kind != ContainerKind::Main {
                self.check(d, &format!("{prefix}.name"), syntax::dns_label(&c.name));
            }
            if let Some(first) = names.insert(&c.name, prefix) {
                let first = if first == "spec" {
                    "the main container".to_string()
                } else {
                    format!(
                        "{first} (line {})",
                        d.index.pos(&format!("{first}.name")).line
                    )
                };
                self.push(d.diag(
                    &format!("{prefix}.name"),
                    format!("container name `{}` is also {first}", c.name),
                ));
            }
            let e = self.container(d, prefix, *kind, c, s.host_network);
            match kind {
                ContainerKind::Main => env = e,
                _ => {
                    container_env.insert(c.name.clone(), e);
                }
            }
        }
        self.volumes(d, s, &containers);
        self.host_ports_across_containers(d, s);
        self.pod_fields(d, s);
        let constraints = self.constraints(d, s);
        ShortPod {
            env,
            container_env,
            app_name: s.app_name.clone().unwrap_or_else(|| daemon.clone()),
            container_name,
            constraints,
        }
    }

    /// One container's fields, the same rules wherever it comes from; its env as
    /// `EnvVar`s.
    fn container(
        &mut self,
        d: &DaemonDoc,
        prefix: &str,
        kind: ContainerKind,
        c: &Container,
        host_network: bool,
    ) -> Vec<JsonValue> {
        let f = |k: &str| format!("{prefix}.{k}");
        self.check(d, &f("image"), syntax::image(&c.image));
        if let Some(p) = &c.image_pull_policy
            && !matches!(p.as_str(), "Always" | "IfNotPresent" | "Never")
        {
            self.push(d.diag(
                &f("imagePullPolicy"),
                format!("`{p}` is not Always, IfNotPresent or Never"),
            ));
        }
        if let Some(w) = &c.working_dir
            && let Err(e) = mount_path_rule(w)
        {
            self.push(d.diag(&f("workingDir"), e));
        }
        let env = self.env(d, &f("env"), c.env.as_ref()).unwrap_or_default();
        self.ports(d, prefix, &c.ports, host_network);
        self.mounts(d, prefix, &c.mounts);
        if let Some(r) = &c.resources {
            self.resources(d, &f("resources"), r);
        }
        for (k, v) in [
            ("readinessProbe", &c.readiness_probe),
            ("livenessProbe", &c.liveness_probe),
            ("startupProbe", &c.startup_probe),
        ] {
            if let Some(v) = v {
                self.typed::<core::Probe, _>(d, &f(k), v);
            }
        }
        if let Some(v) = &c.security_context {
            self.typed::<core::SecurityContext, _>(d, &f("securityContext"), v);
        }
        if let Some(v) = &c.lifecycle {
            self.typed::<core::Lifecycle, _>(d, &f("lifecycle"), v);
        }
        if kind == ContainerKind::Init {
            for (k, set) in [
                ("readinessProbe", c.readiness_probe.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
                ("lifecycle", c.lifecycle.is_some()),
            ] {
                if set {
                    self.push(d.diag(
                        &f(k),
                        format!(
                            "an init container runs to completion before the pod starts: Kubernetes refuses `{k}` on it"
                        ),
                    ));
                }
            }
        }
        env
    }

    fn ports(&mut self, d: &DaemonDoc, prefix: &str, ports: &[Port], host_network: bool) {
        let mut names = BTreeSet::new();
        let mut host_ports = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            let f = format!("{prefix}.ports[{i}]");
            if !(1..=65535).contains(&p.container_port) {
                self.push(d.diag(
                    &format!("{f}.containerPort"),
                    format!("port must be between 1 and 65535 (is {})", p.container_port),
                ));
            }
            if let Some(h) = p.host_port {
                if !(1..=65535).contains(&h) {
                    self.push(d.diag(
                        &format!("{f}.hostPort"),
                        format!("port must be between 1 and 65535 (is {h})"),
                    ));
                } else if host_network && h != p.container_port {
                    self.push(d.diag(
                        &format!("{f}.hostPort"),
                        "with hostNetwork, hostPort must equal containerPort",
                    ));
                }
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                if !host_ports.insert((h, proto)) {
                    self.push(d.diag(
                        &format!("{f}.hostPort"),
                        format!("hostPort {h} is used twice"),
                    ));
                }
            }
            if let Some(n) = &p.name {
                self.check(d, &format!("{f}.name"), syntax::port_name(n));
                if !names.insert(n.as_str()) {
                    self.push(d.diag(&format!("{f}.name"), format!("duplicate port name `{n}`")));
                }
            }
            if let Some(proto) = &p.protocol
                && !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP")
            {
                self.push(d.diag(
                    &format!("{f}.protocol"),
                    format!("`{proto}` is not TCP, UDP or SCTP"),
                ));
            }
        }
    }

    /// One container's mounts: names, paths, one mount per path, and a hostPath
    /// volume declared once per container.
    fn mounts(&mut self, d: &DaemonDoc, prefix: &str, mounts: &[Mount]) {
        let mut host_names = BTreeSet::new();
        let mut paths: BTreeMap<&str, String> = BTreeMap::new();
        for (i, m) in mounts.iter().enumerate() {
            let f = format!("{prefix}.mounts[{i}]");
            self.check(d, &format!("{f}.name"), syntax::dns_label(&m.name));
            if m.host_path.is_some() && !host_names.insert(m.name.as_str()) {
                self.push(d.diag(
                    &format!("{f}.name"),
                    format!("duplicate mount name `{}`", m.name),
                ));
            }
            if let Some(hp) = &m.host_path
                && let Err(e) = host_path_rule(hp)
            {
                self.push(d.diag(&format!("{f}.hostPath"), e));
            }
            match mount_path_rule(&m.mount_path) {
                Err(e) => self.push(d.diag(&format!("{f}.mountPath"), e)),
                Ok(()) => {
                    if let Some(other) = paths.get(m.mount_path.as_str()) {
                        self.push(d.diag(
                            &format!("{f}.mountPath"),
                            format!("`{}` is already mounted by {other}", m.mount_path),
                        ));
                    } else {
                        paths.insert(&m.mount_path, f.clone());
                    }
                }
            }
            if let Some(sp) = &m.sub_path
                && (sp.starts_with('/') || sp.split('/').any(|c| c == ".."))
            {
                self.push(d.diag(
                    &format!("{f}.subPath"),
                    format!("`{sp}` must be a relative path without `..`"),
                ));
            }
            if let Some(t) = &m.host_path_type {
                if m.host_path.is_none() {
                    self.push(d.diag(
                        &format!("{f}.type"),
                        "`type` is the hostPath type, and this mount has no hostPath",
                    ));
                } else if !HOST_PATH_TYPES.contains(&t.as_str()) {
                    self.push(
                        d.diag(&format!("{f}.type"), format!("unknown hostPath type `{t}`"))
                            .with_hint(did_you_mean(t, HOST_PATH_TYPES)),
                    );
                }
            }
            if let Some(p) = &m.mount_propagation
                && !matches!(p.as_str(), "None" | "HostToContainer" | "Bidirectional")
            {
                self.push(d.diag(
                    &format!("{f}.mountPropagation"),
                    format!("`{p}` is not None, HostToContainer or Bidirectional"),
                ));
            }
        }
    }

    /// `spec.volumes` (Kubernetes `Volume`s: a name each, exactly one source) and the
    /// hostPath mounts of every container: one name, one volume; every mount without
    /// a hostPath names a declared volume.
    fn volumes(
        &mut self,
        d: &DaemonDoc,
        s: &DaemonSpec,
        containers: &[(String, ContainerKind, Container)],
    ) {
        let mut declared: BTreeMap<String, Declared> = BTreeMap::new();
        for (i, v) in s.volumes.iter().enumerate() {
            let vf = format!("spec.volumes[{i}]");
            let Some(obj) = v.as_object() else {
                self.push(d.diag(&vf, "a volume must be a mapping with a name and one source"));
                continue;
            };
            let Some(name) = obj
                .get("name")
                .and_then(JsonValue::as_str)
                .filter(|n| !n.is_empty())
            else {
                self.push(d.diag(&vf, "a volume needs a name"));
                continue;
            };
            self.check(d, &format!("{vf}.name"), syntax::dns_label(name));
            let sources: Vec<&str> = obj
                .iter()
                .filter(|(k, v)| k.as_str() != "name" && !v.is_null())
                .map(|(k, _)| k.as_str())
                .collect();
            match sources.as_slice() {
                [] => self.push(d.diag(
                    &vf,
                    format!(
                        "volume `{name}` has no source; give it exactly one (configMap, secret, emptyDir, hostPath, projected, ...)"
                    ),
                )),
                [_] => {}
                many => self.push(d.diag(
                    &format!("{vf}.{}", many[1]),
                    format!(
                        "volume `{name}` has {} sources ({}); a volume has exactly one",
                        many.len(),
                        many.join(", ")
                    ),
                )),
            }
            if let Some(hp) = obj.get("hostPath") {
                let hf = format!("{vf}.hostPath");
                if let Some(p) = hp.get("path").and_then(JsonValue::as_str)
                    && let Err(e) = host_path_rule(p)
                {
                    self.push(d.diag(&format!("{hf}.path"), e));
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
            self.typed::<core::Volume, _>(d, &vf, v);
            if let Some(first) = declared.get(name) {
                self.push(d.diag(
                    &format!("{vf}.name"),
                    format!(
                        "volume `{name}` is also {} (line {}): names of volumes are unique",
                        first.field,
                        d.index.pos(&first.field).line
                    ),
                ));
                continue;
            }
            declared.insert(
                name.to_string(),
                Declared {
                    field: vf,
                    host_path: None,
                },
            );
        }
        for (prefix, _, c) in containers {
            for (j, m) in c.mounts.iter().enumerate() {
                let Some(hp) = &m.host_path else { continue };
                let mf = format!("{prefix}.mounts[{j}]");
                let mine = (hp.clone(), m.host_path_type.clone());
                match declared.get(&m.name) {
                    None => {
                        declared.insert(
                            m.name.clone(),
                            Declared {
                                field: mf,
                                host_path: Some(mine),
                            },
                        );
                    }
                    Some(first) => match &first.host_path {
                        None => self.push(d.diag(
                            &format!("{mf}.hostPath"),
                            format!(
                                "volume `{}` is declared by {} (line {}); leave hostPath out to mount it",
                                m.name,
                                first.field,
                                d.index.pos(&first.field).line
                            ),
                        )),
                        Some(theirs) if *theirs != mine => self.push(d.diag(
                            &format!("{mf}.hostPath"),
                            format!(
                                "mount `{}` is also {} (line {}) with another hostPath or type: one name, one volume",
                                m.name,
                                first.field,
                                d.index.pos(&first.field).line
                            ),
                        )),
                        Some(_) => {}
                    },
                }
            }
        }
        let from_pod_template: BTreeSet<&str> = s
            .pod_template
            .as_ref()
            .and_then(|pt| pt.pointer("/spec/volumes"))
            .and_then(JsonValue::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("name").and_then(JsonValue::as_str))
            .collect();
        for (prefix, _, c) in containers {
            for (j, m) in c.mounts.iter().enumerate() {
                if m.host_path.is_some()
                    || declared.contains_key(&m.name)
                    || from_pod_template.contains(m.name.as_str())
                    || s.config_files.iter().any(|e| e.name == m.name)
                {
                    continue;
                }
                let known = declared
                    .keys()
                    .map(String::as_str)
                    .chain(from_pod_template.iter().copied());
                self.push(
                    d.diag(
                        &format!("{prefix}.mounts[{j}].name"),
                        format!(
                            "mount `{}` names no volume: declare it in spec.volumes, or give the mount a hostPath",
                            m.name
                        ),
                    )
                    .with_hint(did_you_mean(&m.name, known)),
                );
            }
        }
    }

    /// A host port is bound once per pod: two short-form containers cannot both bind
    /// it (one container's own duplicates are [`Self::ports`]' to report). Init
    /// containers are counted among themselves, as Kubernetes does: they have exited
    /// before the others start.
    fn host_ports_across_containers(&mut self, d: &DaemonDoc, s: &DaemonSpec) {
        let container = |hp: &HostPort| hp.field.split(".ports[").next().unwrap_or("").to_string();
        let init = |hp: &HostPort| hp.field.starts_with("spec.initContainers[");
        let mut seen: Vec<HostPort> = Vec::new();
        for hp in host_ports(s) {
            if hp.field.starts_with("spec.podTemplate") {
                continue;
            }
            if let Some(first) = seen
                .iter()
                .find(|x| container(x) != container(&hp) && init(x) == init(&hp) && x.clashes(&hp))
            {
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
    }

    /// Pod and DaemonSet fields: DNS, pod security context, grace period, revision
    /// history, and the update strategy drover refuses.
    fn pod_fields(&mut self, d: &DaemonDoc, s: &DaemonSpec) {
        if let Some(p) = &s.dns_policy
            && !DNS_POLICIES.contains(&p.as_str())
        {
            self.push(
                d.diag(
                    "spec.dnsPolicy",
                    format!("`{p}` is not one of {}", DNS_POLICIES.join(", ")),
                )
                .with_hint(did_you_mean(p, DNS_POLICIES)),
            );
        }
        let nameservers = s
            .dns_config
            .as_ref()
            .and_then(|c| c.get("nameservers"))
            .and_then(JsonValue::as_array)
            .is_some_and(|n| !n.is_empty());
        if s.dns_policy.as_deref() == Some("None") && !nameservers {
            self.push(d.diag(
                "spec.dnsPolicy",
                "dnsPolicy `None` takes every DNS setting from dnsConfig, which names no nameservers",
            ));
        }
        if let Some(v) = &s.dns_config {
            self.typed::<core::PodDNSConfig, _>(d, "spec.dnsConfig", v);
        }
        if let Some(v) = &s.pod_security_context {
            self.typed::<core::PodSecurityContext, _>(d, "spec.podSecurityContext", v);
        }
        if let Some(t) = s.termination_grace_period_seconds
            && t < 0
        {
            self.push(d.diag(
                "spec.terminationGracePeriodSeconds",
                format!("must not be negative (is {t})"),
            ));
        }
        if let Some(r) = s.revision_history_limit
            && !(0..=i64::from(i32::MAX)).contains(&r)
        {
            self.push(d.diag(
                "spec.revisionHistoryLimit",
                format!("must be between 0 and {} (is {r})", i32::MAX),
            ));
        }
        if let Some(c) = &s.disruption_class {
            self.check(d, "spec.disruptionClass", crate::syntax::dns_label(c));
        }
        if let Some(u) = &s.update_strategy
            && !crate::waves::is_on_delete(u)
        {
            let on_delete = u.get("type").and_then(JsonValue::as_str) == Some("OnDelete");
            let message = if on_delete {
                "updateStrategy `OnDelete` takes no other field: drover replaces the pods itself (rollout.driver: drover)"
            } else {
                "drover renders updateStrategy itself; its knobs are spec.rollout (maxUnavailable, maxSurge, minReadySeconds, driver)"
            };
            self.push(d.diag("spec.updateStrategy", message).with_hint(Some(
                "leave updateStrategy out, or write exactly {type: OnDelete}; spec.rollout sets how a stage rolls".into(),
            )));
        }
    }

    /// `nodeSelector` and `nodeAffinity.matchExpressions` as requirements, checked
    /// like a NodeGroup's selector, and able to match some node.
    fn constraints(&mut self, d: &DaemonDoc, s: &DaemonSpec) -> Vec<Requirement> {
        let exprs = s
            .node_affinity
            .as_ref()
            .map(|a| a.match_expressions.clone())
            .unwrap_or_default();
        let before = self.diags.len();
        self.selector(
            d,
            "spec.nodeSelector",
            &s.node_selector,
            "spec.nodeAffinity.matchExpressions",
            &exprs,
        );
        let reqs = requirements(&LabelSelector {
            match_labels: s.node_selector.clone(),
            match_expressions: exprs,
        });
        if self.diags.len() == before && !satisfiable(&reqs) {
            let field = if s.node_affinity.is_some() {
                "spec.nodeAffinity"
            } else {
                "spec.nodeSelector"
            };
            self.push(d.diag(
                field,
                "the daemon's node constraints contradict each other: it could never run on a node",
            ));
        }
        reqs
    }
}

/// The names of the volumes the short form declares (`spec.volumes` and hostPath
/// mounts of every container), with the field that declares each; a podTemplate
/// volume cannot reuse them.
pub(super) fn short_volume_names(s: &DaemonSpec, main: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (i, v) in s.volumes.iter().enumerate() {
        if let Some(n) = v.get("name").and_then(JsonValue::as_str) {
            out.entry(n.to_string())
                .or_insert_with(|| format!("spec.volumes[{i}]"));
        }
    }
    for (prefix, _, c) in s.short_containers(main) {
        for (j, m) in c.mounts.iter().enumerate() {
            if m.host_path.is_some() {
                out.entry(m.name.clone())
                    .or_insert_with(|| format!("{prefix}.mounts[{j}]"));
            }
        }
    }
    out
}
