//! The round trip's comparison: an upstream DaemonSet against the one drover renders
//! from its import, field for field.
//!
//! Owns: what is compared (`spec.template`, `spec.minReadySeconds`,
//! `spec.updateStrategy`), the few values that mean the same written two ways (the
//! API server's defaults that drover's short form leaves out or spells out), which
//! lists Kubernetes keys by a field, and the field paths of every difference. Must
//! not: excuse a difference that the import did not report.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value as JsonValue, json};

use crate::render::{LABEL_DAEMON, LABEL_FLEET, LABEL_GROUP, LABEL_MANAGED_BY, LABEL_NAME};
use crate::yaml::{join_index, join_key};

/// One field that differs between upstream and drover's render.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDifference {
    /// The field path in the DaemonSet, e.g. `spec.template.spec.containers[0].image`;
    /// items of keyed lists are named by their key: `volumes[name=sys]`.
    pub field: String,
    /// The upstream value, if upstream has the field.
    pub upstream: Option<JsonValue>,
    /// The rendered value, if the render has the field.
    pub rendered: Option<JsonValue>,
}

/// A step in a field path, to name what the import left out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field path as segments, from a DaemonSet's root.
pub type SegPath = Vec<Seg>;

/// `spec.template.spec` + keys.
pub fn pod_path(keys: &[&str]) -> SegPath {
    ["spec", "template", "spec"]
        .iter()
        .chain(keys)
        .map(|k| Seg::Key((*k).to_string()))
        .collect()
}

/// A segment path as text, in the field-path style of diagnostics.
pub fn path_text(p: &[Seg]) -> String {
    let mut s = String::new();
    for seg in p {
        s = match seg {
            Seg::Key(k) => join_key(&s, k),
            Seg::Index(i) => join_index(&s, *i),
        };
    }
    s
}

/// The compared part of a DaemonSet.
pub fn compared_part(ds: &JsonValue) -> JsonValue {
    let spec = &ds["spec"];
    let mut out = Map::new();
    for k in [
        "minReadySeconds",
        "revisionHistoryLimit",
        "updateStrategy",
        "template",
    ] {
        if let Some(v) = spec.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    json!({"spec": JsonValue::Object(out)})
}

/// Removes a field (an object member or a list item) if it is there.
pub fn remove_path(v: &mut JsonValue, path: &[Seg]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parent {
        let next = match seg {
            Seg::Key(k) => cur.get_mut(k.as_str()),
            Seg::Index(i) => cur.get_mut(*i),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (Seg::Key(k), JsonValue::Object(m)) => {
            m.shift_remove(k);
        }
        (Seg::Index(i), JsonValue::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

/// Removes every path, list items from the last one back so indexes stay right.
pub fn remove_paths(v: &mut JsonValue, paths: &[SegPath]) {
    let mut sorted: Vec<&SegPath> = paths.iter().collect();
    sorted.sort();
    sorted.dedup();
    for p in sorted.into_iter().rev() {
        remove_path(v, p);
    }
}

/// Brings a compared part (see [`compared_part`]) to the one spelling both sides are
/// compared in. Each rule is a value the API server treats as the same as its other
/// spelling:
///
/// | field | same as |
/// |---|---|
/// | an empty list (`env: []`) anywhere in the pod template | unset (the API server keeps no empty list) |
/// | `minReadySeconds: 0` | unset |
/// | no `updateStrategy`, `type` or `rollingUpdate` | `{type: RollingUpdate, rollingUpdate: {maxUnavailable: 1, maxSurge: 0}}` (the DaemonSet defaults) |
/// | `hostNetwork`/`hostPID`/`hostIPC: false` | unset |
/// | a port without `protocol` | `protocol: TCP` |
/// | `volumeMounts[].readOnly: false` | unset |
/// | a resource quantity written as a number (`cpu: 1`) | the string (`"1"`) |
/// | `serviceAccount` (deprecated) equal to `serviceAccountName`, or alone | `serviceAccountName` |
///
/// and drover's own parts are taken out of both: its labels, its `drover.dev/`
/// annotations, and the node affinity it renders from the groups.
pub fn normalise(part: &mut JsonValue) {
    let Some(spec) = part.get_mut("spec").and_then(JsonValue::as_object_mut) else {
        return;
    };
    if spec.get("minReadySeconds").is_some_and(|m| m == 0) {
        spec.shift_remove("minReadySeconds");
    }
    let us = spec.entry("updateStrategy").or_insert_with(|| json!({}));
    if let Some(us) = us.as_object_mut() {
        us.entry("type").or_insert_with(|| json!("RollingUpdate"));
        if us["type"] == "RollingUpdate"
            && let Some(ru) = us
                .entry("rollingUpdate")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        {
            ru.entry("maxUnavailable").or_insert_with(|| json!(1));
            ru.entry("maxSurge").or_insert_with(|| json!(0));
        }
    }
    let Some(template) = spec.get_mut("template").and_then(JsonValue::as_object_mut) else {
        return;
    };
    if let Some(meta) = template
        .get_mut("metadata")
        .and_then(JsonValue::as_object_mut)
    {
        meta.retain(|k, _| k == "labels" || k == "annotations");
        if let Some(JsonValue::Object(l)) = meta.get_mut("labels") {
            for k in [
                LABEL_NAME,
                LABEL_MANAGED_BY,
                LABEL_FLEET,
                LABEL_DAEMON,
                LABEL_GROUP,
            ] {
                l.shift_remove(k);
            }
        }
        if let Some(JsonValue::Object(a)) = meta.get_mut("annotations") {
            a.retain(|k, _| !k.starts_with("drover.dev/"));
        }
        meta.retain(|_, v| v.as_object().is_none_or(|o| !o.is_empty()));
    }
    let Some(pod) = template.get_mut("spec").and_then(JsonValue::as_object_mut) else {
        return;
    };
    drop_empty_lists(pod);
    for k in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod.get(k) == Some(&JsonValue::Bool(false)) {
            pod.shift_remove(k);
        }
    }
    if let Some(JsonValue::Object(a)) = pod.get_mut("affinity") {
        a.shift_remove("nodeAffinity");
        if a.is_empty() {
            pod.shift_remove("affinity");
        }
    }
    if let Some(sa) = pod.get("serviceAccount").cloned() {
        match pod.get("serviceAccountName") {
            None => {
                pod.insert("serviceAccountName".into(), sa);
                pod.shift_remove("serviceAccount");
            }
            Some(n) if *n == sa => {
                pod.shift_remove("serviceAccount");
            }
            Some(_) => {}
        }
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        let Some(JsonValue::Array(cs)) = pod.get_mut(list) else {
            continue;
        };
        for c in cs.iter_mut().filter_map(JsonValue::as_object_mut) {
            if let Some(JsonValue::Array(ports)) = c.get_mut("ports") {
                for p in ports.iter_mut().filter_map(JsonValue::as_object_mut) {
                    p.entry("protocol").or_insert_with(|| json!("TCP"));
                }
            }
            if let Some(JsonValue::Array(mounts)) = c.get_mut("volumeMounts") {
                for m in mounts.iter_mut().filter_map(JsonValue::as_object_mut) {
                    if m.get("readOnly") == Some(&JsonValue::Bool(false)) {
                        m.shift_remove("readOnly");
                    }
                }
            }
            if let Some(JsonValue::Object(r)) = c.get_mut("resources") {
                for kind in ["limits", "requests"] {
                    if let Some(JsonValue::Object(q)) = r.get_mut(kind) {
                        for v in q.values_mut() {
                            if let JsonValue::Number(n) = v {
                                *v = JsonValue::String(n.to_string());
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Which side of the round trip a compared part is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Upstream,
    Rendered,
}

/// What the placeholder of a config-file entry's ConfigMap name reads, on both sides:
/// the one a DaemonSet's diff shows.
fn config_placeholder(entry: &str) -> JsonValue {
    JsonValue::String(crate::config_diff::placeholder(entry))
}

/// Brings the volumes and mounts that import turned into `spec.configFiles` entries
/// to one spelling. `entries` maps each entry (the pod volume's name) to the upstream
/// ConfigMap it was read from. Exactly the differences a config-file entry
/// introduces, and only for its own volume and mounts:
///
/// | field | upstream | rendered | compared as |
/// |---|---|---|---|
/// | `volumes[name=<entry>].configMap.name` | the upstream ConfigMap's name | `<entry>-<10 hex>` (the content hash) | `<config files: <entry>>` |
/// | `volumeMounts[].readOnly` of a mount of `<entry>` without `subPath`/`subPathExpr` | unset or `true` | `true` (drover mounts config files read-only; the kubelet mounts a ConfigMap volume read-only anyway) | unset |
///
/// Anything else of such a volume (`items`, `defaultMode`, `optional`) is never
/// converted, so still differs if it were.
pub fn config_files_spelling(part: &mut JsonValue, entries: &BTreeMap<String, String>, side: Side) {
    if entries.is_empty() {
        return;
    }
    let Some(pod) = part
        .pointer_mut("/spec/template/spec")
        .and_then(JsonValue::as_object_mut)
    else {
        return;
    };
    if let Some(JsonValue::Array(vols)) = pod.get_mut("volumes") {
        for v in vols.iter_mut() {
            let Some(entry) = v
                .get("name")
                .and_then(JsonValue::as_str)
                .map(str::to_string)
            else {
                continue;
            };
            let Some(upstream_cm) = entries.get(&entry) else {
                continue;
            };
            let Some(name) = v.pointer_mut("/configMap/name") else {
                continue;
            };
            let same = match side {
                Side::Upstream => name.as_str() == Some(upstream_cm.as_str()),
                Side::Rendered => name
                    .as_str()
                    .is_some_and(|n| crate::render::is_config_map_name(n, &entry)),
            };
            if same {
                *name = config_placeholder(&entry);
            }
        }
    }
    for list in ["containers", "initContainers"] {
        let Some(JsonValue::Array(cs)) = pod.get_mut(list) else {
            continue;
        };
        for c in cs.iter_mut() {
            let Some(JsonValue::Array(mounts)) = c.get_mut("volumeMounts") else {
                continue;
            };
            for m in mounts.iter_mut().filter_map(JsonValue::as_object_mut) {
                let whole = !m.contains_key("subPath") && !m.contains_key("subPathExpr");
                let entry = m
                    .get("name")
                    .and_then(JsonValue::as_str)
                    .is_some_and(|n| entries.contains_key(n));
                if whole && entry && m.get("readOnly") == Some(&JsonValue::Bool(true)) {
                    m.shift_remove("readOnly");
                }
            }
        }
    }
}

/// Removes empty lists at any depth: Kubernetes' list fields are all `omitempty`, so
/// `env: []` and no `env` are the same pod.
pub fn drop_empty_lists(m: &mut Map<String, JsonValue>) {
    m.retain(|_, v| !matches!(v, JsonValue::Array(a) if a.is_empty()));
    for v in m.values_mut() {
        match v {
            JsonValue::Object(o) => drop_empty_lists(o),
            JsonValue::Array(a) => a
                .iter_mut()
                .filter_map(JsonValue::as_object_mut)
                .for_each(drop_empty_lists),
            _ => {}
        }
    }
}

/// The fields the API server fills in when it stores a DaemonSet, at their default
/// values: taken out of objects read from a cluster so an imported Daemon says only
/// what someone chose. Applied to both sides of the comparison of such an import.
pub fn strip_server_defaults(ds: &mut JsonValue) {
    let remove_if = |m: &mut Map<String, JsonValue>, k: &str, v: JsonValue| {
        if m.get(k) == Some(&v) {
            m.shift_remove(k);
        }
    };
    let Some(spec) = ds.get_mut("spec").and_then(JsonValue::as_object_mut) else {
        return;
    };
    remove_if(spec, "revisionHistoryLimit", json!(10));
    if let Some(JsonValue::Object(ru)) = spec
        .get_mut("updateStrategy")
        .and_then(|u| u.get_mut("rollingUpdate"))
    {
        remove_if(ru, "maxUnavailable", json!(1));
        remove_if(ru, "maxSurge", json!(0));
    }
    let Some(pod) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(JsonValue::as_object_mut)
    else {
        return;
    };
    remove_if(pod, "dnsPolicy", json!("ClusterFirst"));
    remove_if(pod, "restartPolicy", json!("Always"));
    remove_if(pod, "schedulerName", json!("default-scheduler"));
    remove_if(pod, "securityContext", json!({}));
    remove_if(pod, "terminationGracePeriodSeconds", json!(30));
    let host_network = pod.get("hostNetwork") == Some(&JsonValue::Bool(true));
    if let Some(JsonValue::Array(vols)) = pod.get_mut("volumes") {
        for v in vols.iter_mut().filter_map(JsonValue::as_object_mut) {
            for (kind, field) in [
                ("configMap", "defaultMode"),
                ("secret", "defaultMode"),
                ("projected", "defaultMode"),
                ("downwardAPI", "defaultMode"),
            ] {
                if let Some(JsonValue::Object(src)) = v.get_mut(kind) {
                    remove_if(src, field, json!(420));
                }
            }
            if let Some(JsonValue::Object(hp)) = v.get_mut("hostPath") {
                remove_if(hp, "type", json!(""));
            }
        }
    }
    for list in ["containers", "initContainers"] {
        let Some(JsonValue::Array(cs)) = pod.get_mut(list) else {
            continue;
        };
        for c in cs.iter_mut().filter_map(JsonValue::as_object_mut) {
            remove_if(c, "terminationMessagePath", json!("/dev/termination-log"));
            remove_if(c, "terminationMessagePolicy", json!("File"));
            remove_if(c, "resources", json!({}));
            if let Some(image) = c.get("image").and_then(JsonValue::as_str) {
                let default = if image_tag_is_latest(image) {
                    "Always"
                } else {
                    "IfNotPresent"
                };
                remove_if(c, "imagePullPolicy", json!(default));
            }
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                if let Some(JsonValue::Object(p)) = c.get_mut(probe) {
                    remove_if(p, "timeoutSeconds", json!(1));
                    remove_if(p, "periodSeconds", json!(10));
                    remove_if(p, "successThreshold", json!(1));
                    remove_if(p, "failureThreshold", json!(3));
                    if let Some(JsonValue::Object(h)) = p.get_mut("httpGet") {
                        remove_if(h, "scheme", json!("HTTP"));
                    }
                }
            }
            if let Some(JsonValue::Array(ports)) = c.get_mut("ports") {
                for p in ports.iter_mut().filter_map(JsonValue::as_object_mut) {
                    remove_if(p, "protocol", json!("TCP"));
                    if host_network && p.get("hostPort") == p.get("containerPort") {
                        p.shift_remove("hostPort");
                    }
                }
            }
            if let Some(JsonValue::Array(env)) = c.get_mut("env") {
                for e in env.iter_mut() {
                    if let Some(JsonValue::Object(f)) = e.pointer_mut("/valueFrom/fieldRef") {
                        remove_if(f, "apiVersion", json!("v1"));
                    }
                }
            }
        }
    }
}

/// Kubernetes' default pull policy is Always for `:latest` or no tag.
fn image_tag_is_latest(image: &str) -> bool {
    let name = image.split('@').next().unwrap_or(image);
    if image.contains('@') {
        return false;
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        None => true,
        Some((_, tag)) => tag == "latest",
    }
}

/// The field a list is keyed by in the Kubernetes API, where its order carries no
/// meaning.
fn list_key(field: &str) -> Option<&'static [&'static str]> {
    match field {
        "volumes" => Some(&["name"]),
        "volumeMounts" => Some(&["mountPath"]),
        "volumeDevices" => Some(&["devicePath"]),
        "ports" => Some(&["containerPort", "protocol"]),
        _ => None,
    }
}

/// Every difference between `upstream` and `rendered`, and how many leaf fields were
/// compared.
pub fn differences(upstream: &JsonValue, rendered: &JsonValue) -> (Vec<FieldDifference>, usize) {
    let mut out = Vec::new();
    let mut count = 0;
    walk(Some(upstream), Some(rendered), "", "", &mut out, &mut count);
    (out, count)
}

fn walk(
    a: Option<&JsonValue>,
    b: Option<&JsonValue>,
    path: &str,
    field: &str,
    out: &mut Vec<FieldDifference>,
    count: &mut usize,
) {
    match (a, b) {
        (Some(JsonValue::Object(x)), Some(JsonValue::Object(y))) => {
            for (k, xv) in x {
                walk(Some(xv), y.get(k), &join_key(path, k), k, out, count);
            }
            for (k, yv) in y {
                if !x.contains_key(k) {
                    walk(None, Some(yv), &join_key(path, k), k, out, count);
                }
            }
        }
        (Some(JsonValue::Array(x)), Some(JsonValue::Array(y))) => {
            if let Some(key) = list_key(field)
                && let (Some(xk), Some(yk)) = (keyed(x, key), keyed(y, key))
            {
                for (k, xv) in &xk {
                    let yv = yk.iter().find(|(yk, _)| yk == k).map(|(_, v)| *v);
                    walk(Some(xv), yv, &format!("{path}[{k}]"), "", out, count);
                }
                for (k, yv) in &yk {
                    if !xk.iter().any(|(xk, _)| xk == k) {
                        walk(None, Some(yv), &format!("{path}[{k}]"), "", out, count);
                    }
                }
                return;
            }
            for i in 0..x.len().max(y.len()) {
                walk(x.get(i), y.get(i), &join_index(path, i), "", out, count);
            }
        }
        (a, b) => {
            *count += 1;
            if a != b {
                out.push(FieldDifference {
                    field: path.to_string(),
                    upstream: a.cloned(),
                    rendered: b.cloned(),
                });
            }
        }
    }
}

/// A keyed list as `(key text, item)` pairs, or `None` when an item lacks a key or two
/// share one (then the list is compared in order).
fn keyed<'a>(items: &'a [JsonValue], key: &[&str]) -> Option<Vec<(String, &'a JsonValue)>> {
    let mut out: Vec<(String, &JsonValue)> = Vec::new();
    for item in items {
        let parts: Option<Vec<String>> = key
            .iter()
            .map(|k| {
                item.get(*k).map(|v| match v {
                    JsonValue::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
            })
            .collect();
        let text = parts?.join(",");
        if out.iter().any(|(k, _)| *k == text) {
            return None;
        }
        out.push((text, item));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_lists_compare_by_their_key_and_name_the_item() {
        let a = json!({"volumes": [{"name": "a", "hostPath": {"path": "/a"}}, {"name": "b", "emptyDir": {}}]});
        let b = json!({"volumes": [{"name": "b", "emptyDir": {}}, {"name": "a", "hostPath": {"path": "/x"}}]});
        let (d, n) = differences(&a, &b);
        assert_eq!(n, 3);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "volumes[name=a].hostPath.path");
        assert_eq!(d[0].upstream, Some(json!("/a")));
        assert_eq!(d[0].rendered, Some(json!("/x")));
    }

    #[test]
    fn ordered_lists_compare_by_position_and_a_missing_field_is_a_difference() {
        let a = json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]});
        let b = json!({"env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}], "x": 1});
        let (d, _) = differences(&a, &b);
        let fields: Vec<_> = d.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "env[0].name",
                "env[0].value",
                "env[1].name",
                "env[1].value",
                "x"
            ]
        );
        assert_eq!(d[4].upstream, None);
    }

    #[test]
    fn normalise_equates_only_the_tabled_spellings() {
        let mut up = compared_part(
            &json!({"spec": {"template": {"metadata": {"name": "x", "labels": {"a": "1"}},
            "spec": {"hostNetwork": false, "serviceAccount": "s", "containers": [{"name": "c",
                "ports": [{"containerPort": 1}], "volumeMounts": [{"name": "v", "mountPath": "/v", "readOnly": false}],
                "resources": {"limits": {"cpu": 1}}}]}}}}),
        );
        let mut rendered = compared_part(&json!({"spec": {"minReadySeconds": 0,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {}},
            "template": {"metadata": {"labels": {"a": "1", "drover.dev/fleet": "f", "app.kubernetes.io/name": "c"}},
            "spec": {"affinity": {"nodeAffinity": {}}, "serviceAccountName": "s", "containers": [{"name": "c",
                "ports": [{"containerPort": 1, "protocol": "TCP"}], "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                "resources": {"limits": {"cpu": "1"}}}]}}}}));
        normalise(&mut up);
        normalise(&mut rendered);
        assert_eq!(differences(&up, &rendered).0, vec![]);
        // A real difference still shows.
        rendered["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] =
            json!("2");
        let (d, _) = differences(&up, &rendered);
        assert_eq!(
            d[0].field,
            "spec.template.spec.containers[0].resources.limits.cpu"
        );
    }

    #[test]
    fn a_config_file_entry_compares_its_hashed_name_and_read_only_mount_as_upstreams() {
        let entries: BTreeMap<String, String> =
            [("cfg".to_string(), "agent-config".to_string())].into();
        let pod = |cm: &str, ro: Option<bool>| {
            let mut mount = json!({"name": "cfg", "mountPath": "/etc/agent"});
            if let Some(ro) = ro {
                mount["readOnly"] = json!(ro);
            }
            compared_part(&json!({"spec": {"template": {"spec": {
                "containers": [{"name": "c", "volumeMounts": [mount,
                    {"name": "cfg", "mountPath": "/etc/one.conf", "subPath": "one.conf", "readOnly": true}]}],
                "volumes": [{"name": "cfg", "configMap": {"name": cm}}]}}}}))
        };
        let mut up = pod("agent-config", None);
        let mut re = pod("cfg-0123456789", Some(true));
        config_files_spelling(&mut up, &entries, Side::Upstream);
        config_files_spelling(&mut re, &entries, Side::Rendered);
        assert_eq!(differences(&up, &re).0, vec![]);
        assert_eq!(
            up["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
            "<config files: cfg>"
        );
        // A subPath mount keeps its readOnly: it is not the entry's.
        assert_eq!(
            up["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][1]["readOnly"],
            true
        );
        // Another ConfigMap on either side, or a name that is not the entry's hash, differs.
        for (u, r) in [
            ("other", "cfg-0123456789"),
            ("agent-config", "cfg-012345678"),
            ("agent-config", "other-0123456789"),
            ("agent-config", "cfg-0123456789X"),
        ] {
            let mut up = pod(u, None);
            let mut re = pod(r, Some(true));
            config_files_spelling(&mut up, &entries, Side::Upstream);
            config_files_spelling(&mut re, &entries, Side::Rendered);
            let (d, _) = differences(&up, &re);
            assert_eq!(d.len(), 1, "{u} {r}: {d:?}");
            assert_eq!(
                d[0].field,
                "spec.template.spec.volumes[name=cfg].configMap.name"
            );
        }
        // Without the entry, nothing is equated.
        let mut up = pod("agent-config", None);
        let mut re = pod("cfg-0123456789", Some(true));
        config_files_spelling(&mut up, &BTreeMap::new(), Side::Upstream);
        config_files_spelling(&mut re, &BTreeMap::new(), Side::Rendered);
        assert_eq!(differences(&up, &re).0.len(), 2);
    }

    #[test]
    fn removing_paths_takes_list_items_from_the_back() {
        let mut v = json!({"spec": {"template": {"spec": {"tolerations": [1, 2, 3, 4]}}}});
        let mut a = pod_path(&["tolerations"]);
        a.push(Seg::Index(1));
        let mut b = pod_path(&["tolerations"]);
        b.push(Seg::Index(3));
        remove_paths(&mut v, &[a.clone(), b]);
        assert_eq!(v["spec"]["template"]["spec"]["tolerations"], json!([1, 3]));
        assert_eq!(path_text(&a), "spec.template.spec.tolerations[1]");
    }
}
