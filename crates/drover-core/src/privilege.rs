//! What an object lets its pods do to the node, and which changes add to it: the part
//! of a plan a reviewer must see whatever else a PR comment leaves out.
//!
//! Owns: the list of privileges per object kind and the difference between two
//! sides. Must not: decide whether a privilege is acceptable (that is the reviewer's
//! call, or a policy's).
//!
//! Extending it: [`privileges`] dispatches on the object's `kind`. A DaemonSet's pod
//! template is read today; a companion `ClusterRole` (once a daemon brings its RBAC)
//! adds an arm returning one [`Privilege`] per (apiGroup, resource, verb) its rules
//! grant, so that a new or widened role shows as added privileges with no change
//! anywhere else.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;

/// One thing an object's pods may do beyond an ordinary container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Privilege {
    /// `securityContext.privileged: true`.
    Privileged { container: String },
    /// `hostPID`, `hostNetwork` or `hostIPC`.
    HostNamespace { namespace: String },
    /// A `hostPath` volume a container mounts without `readOnly: true`.
    WritableHostPath { path: String, container: String },
    /// `securityContext.capabilities.add`.
    Capability {
        capability: String,
        container: String,
    },
    /// A port bound on the node (`hostPort`, or a container port under `hostNetwork`).
    HostPort { port: i64, protocol: String },
    /// `securityContext.allowPrivilegeEscalation: true`, set explicitly.
    PrivilegeEscalation { container: String },
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Privilege::Privileged { container } => write!(f, "privileged container `{container}`"),
            Privilege::HostNamespace { namespace } => write!(f, "{namespace}"),
            Privilege::WritableHostPath { path, container } => {
                write!(f, "writable hostPath `{path}` (container `{container}`)")
            }
            Privilege::Capability {
                capability,
                container,
            } => write!(f, "capability `{capability}` (container `{container}`)"),
            Privilege::HostPort { port, protocol } => write!(f, "host port {port}/{protocol}"),
            Privilege::PrivilegeEscalation { container } => {
                write!(f, "allowPrivilegeEscalation (container `{container}`)")
            }
        }
    }
}

/// Every privilege `obj` grants, by its kind; nothing for kinds that grant none.
pub fn privileges(obj: &JsonValue) -> BTreeSet<Privilege> {
    match obj.get("kind").and_then(JsonValue::as_str) {
        // A DaemonSet without `kind` (a bare spec in a test) is read the same way.
        Some("DaemonSet") | None => obj
            .pointer("/spec/template/spec")
            .map(pod_privileges)
            .unwrap_or_default(),
        Some(_) => BTreeSet::new(),
    }
}

/// What `after` grants that `before` did not (everything, for a new object).
pub fn added(before: Option<&JsonValue>, after: Option<&JsonValue>) -> Vec<Privilege> {
    let Some(after) = after else {
        return Vec::new();
    };
    let had = before.map(privileges).unwrap_or_default();
    privileges(after).difference(&had).cloned().collect()
}

fn pod_privileges(pod: &JsonValue) -> BTreeSet<Privilege> {
    let mut out = BTreeSet::new();
    let flag = |k: &str| pod.get(k).and_then(JsonValue::as_bool) == Some(true);
    for ns in ["hostPID", "hostNetwork", "hostIPC"] {
        if flag(ns) {
            out.insert(Privilege::HostNamespace {
                namespace: ns.into(),
            });
        }
    }
    let host_network = flag("hostNetwork");
    let host_paths: Vec<(&str, &str)> = pod
        .get("volumes")
        .and_then(JsonValue::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(|v| {
                    Some((
                        v.get("name")?.as_str()?,
                        v.pointer("/hostPath/path")?.as_str()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in pod
            .get(list)
            .and_then(JsonValue::as_array)
            .map_or(&[][..], Vec::as_slice)
        {
            let name = c
                .get("name")
                .and_then(JsonValue::as_str)
                .unwrap_or("")
                .to_string();
            let sc = c.get("securityContext");
            let sc_flag = |k: &str| sc.and_then(|s| s.get(k)).and_then(JsonValue::as_bool);
            if sc_flag("privileged") == Some(true) {
                out.insert(Privilege::Privileged {
                    container: name.clone(),
                });
            }
            if sc_flag("allowPrivilegeEscalation") == Some(true) {
                out.insert(Privilege::PrivilegeEscalation {
                    container: name.clone(),
                });
            }
            for cap in sc
                .and_then(|s| s.pointer("/capabilities/add"))
                .and_then(JsonValue::as_array)
                .map_or(&[][..], Vec::as_slice)
            {
                if let Some(cap) = cap.as_str() {
                    let cap = cap.to_ascii_uppercase();
                    out.insert(Privilege::Capability {
                        capability: cap.strip_prefix("CAP_").unwrap_or(&cap).to_string(),
                        container: name.clone(),
                    });
                }
            }
            for m in c
                .get("volumeMounts")
                .and_then(JsonValue::as_array)
                .map_or(&[][..], Vec::as_slice)
            {
                let read_only = m.get("readOnly").and_then(JsonValue::as_bool) == Some(true);
                let vol = m.get("name").and_then(JsonValue::as_str);
                if let Some((_, path)) = host_paths.iter().find(|(n, _)| Some(*n) == vol)
                    && !read_only
                {
                    out.insert(Privilege::WritableHostPath {
                        path: (*path).to_string(),
                        container: name.clone(),
                    });
                }
            }
            for p in c
                .get("ports")
                .and_then(JsonValue::as_array)
                .map_or(&[][..], Vec::as_slice)
            {
                let protocol = p
                    .get("protocol")
                    .and_then(JsonValue::as_str)
                    .unwrap_or("TCP")
                    .to_string();
                let port = match p.get("hostPort").and_then(JsonValue::as_i64) {
                    Some(h) if h != 0 => Some(h),
                    _ if host_network => p.get("containerPort").and_then(JsonValue::as_i64),
                    _ => None,
                };
                if let Some(port) = port {
                    out.insert(Privilege::HostPort { port, protocol });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ds(pod: JsonValue) -> JsonValue {
        json!({"kind": "DaemonSet", "spec": {"template": {"spec": pod}}})
    }

    #[test]
    fn every_kind_of_privilege_is_read_from_the_pod_template() {
        let p = privileges(&ds(json!({
            "hostPID": true, "hostNetwork": true, "hostIPC": false,
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}, {"name": "ro", "hostPath": {"path": "/etc"}}, {"name": "e", "emptyDir": {}}],
            "containers": [{"name": "a",
                "securityContext": {"privileged": true, "allowPrivilegeEscalation": true, "capabilities": {"add": ["net_admin", "CAP_SYS_ADMIN"], "drop": ["ALL"]}},
                "volumeMounts": [{"name": "root", "mountPath": "/host"}, {"name": "ro", "mountPath": "/etc-host", "readOnly": true}, {"name": "e", "mountPath": "/e"}],
                "ports": [{"containerPort": 9100}]}],
            "initContainers": [{"name": "i", "ports": [{"containerPort": 1, "hostPort": 53, "protocol": "UDP"}]}]
        })));
        let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "privileged container `a`",
                "hostNetwork",
                "hostPID",
                "writable hostPath `/` (container `a`)",
                "capability `NET_ADMIN` (container `a`)",
                "capability `SYS_ADMIN` (container `a`)",
                "host port 53/UDP",
                "host port 9100/TCP",
                "allowPrivilegeEscalation (container `a`)",
            ]
        );
    }

    #[test]
    fn only_what_the_change_adds_counts() {
        let before = ds(
            json!({"hostPID": true, "containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}),
        );
        let after = ds(
            json!({"hostPID": true, "containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["NET_ADMIN", "SYS_PTRACE"]}}}]}),
        );
        assert_eq!(
            added(Some(&before), Some(&after)),
            [Privilege::Capability {
                capability: "SYS_PTRACE".into(),
                container: "a".into()
            }]
        );
        assert!(added(Some(&after), Some(&before)).is_empty());
        assert!(added(Some(&after), None).is_empty());
        assert_eq!(added(None, Some(&before)).len(), 2);
        assert!(privileges(&json!({"kind": "ConfigMap"})).is_empty());
    }
}
