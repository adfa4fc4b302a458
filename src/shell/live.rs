//! Gathering the live side of a plan: one labelled LIST of the fleet's DaemonSets,
//! one LIST of Nodes, and server-side-apply dry runs of what may have changed.
//!
//! Owns: deciding which desired objects need a dry run. An object whose live copy
//! carries the same spec hash and already contains every desired field is unchanged
//! without asking the server; everything else is dry-run applied (bounded
//! concurrency) so server defaults never show up as differences. Read-only.

use std::collections::BTreeMap;

use serde_json::Value as JsonValue;

use super::cluster::{Cluster, ClusterError, Conflict};
use crate::core::plan::{Comparison, NodeInfo, parse_node_list};
use crate::core::render::{ANN_COMMIT, ANN_SPEC_HASH, DesiredSet};

/// The live side of a plan.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    pub comparisons: Vec<Comparison>,
    /// Live objects of the fleet before anything is applied, by name.
    pub live: BTreeMap<String, JsonValue>,
    pub nodes: Vec<NodeInfo>,
    /// Fields another manager owns, per DaemonSet, that applying would take over.
    pub conflicts: BTreeMap<String, Vec<Conflict>>,
    /// How many dry runs were needed.
    pub dry_runs: usize,
}

/// Whether every field of `want` is present with the same value in `have`. A field
/// missing from `have` matches a zero value in `want` (`0`, `false`, `""`, `[]`,
/// `{}`, `null`): the API server omits those (Go's `omitempty`), so a live
/// DaemonSet never shows e.g. `minReadySeconds: 0` however it was applied.
pub fn contains(have: &JsonValue, want: &JsonValue) -> bool {
    match (have, want) {
        (JsonValue::Object(h), JsonValue::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).map_or(is_zero(wv), |hv| contains(hv, wv))),
        (JsonValue::Array(h), JsonValue::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(hv, wv)| contains(hv, wv))
        }
        (h, w) => h == w,
    }
}

fn is_zero(v: &JsonValue) -> bool {
    match v {
        JsonValue::Null => true,
        JsonValue::Bool(b) => !b,
        JsonValue::Number(n) => n.as_f64() == Some(0.0),
        JsonValue::String(s) => s.is_empty(),
        JsonValue::Array(a) => a.is_empty(),
        JsonValue::Object(m) => m.is_empty(),
    }
}

/// Whether a live object already is what `desired` asks for, without a dry run.
pub fn is_current(live: &JsonValue, desired: &JsonValue) -> bool {
    let hash = |v: &JsonValue| {
        v.pointer(&format!(
            "/metadata/annotations/{}",
            ANN_SPEC_HASH.replace('/', "~1")
        ))
        .cloned()
    };
    if hash(live).is_none() || hash(live) != hash(desired) {
        return false;
    }
    let mut want = desired.clone();
    if let Some(a) = want
        .pointer_mut("/metadata/annotations")
        .and_then(JsonValue::as_object_mut)
    {
        a.remove(ANN_COMMIT);
    }
    contains(live, &want)
}

/// Converts Node objects (JSON) into what blast-radius estimates need.
pub fn node_infos(nodes: Vec<JsonValue>) -> Vec<NodeInfo> {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": nodes});
    parse_node_list(&list.to_string()).unwrap_or_default()
}

/// Lists the fleet's DaemonSets and the Nodes, and dry-runs what may have changed.
///
/// # Errors
/// When a LIST or a dry run fails for a reason other than a field conflict.
/// With `dry_run_all`, every desired object is dry-run applied, even when its live
/// copy already matches (for checking the comparison itself).
pub async fn gather(
    cluster: &Cluster,
    desired: &DesiredSet,
    dry_run_all: bool,
) -> Result<Gathered, ClusterError> {
    let (live, nodes) = tokio::join!(cluster.list_daemonsets(), cluster.list_nodes());
    let live = live?;
    let nodes = node_infos(nodes?);
    let mut out = Gathered {
        live: live.clone(),
        nodes,
        ..Default::default()
    };
    let mut to_dry_run: Vec<&JsonValue> = Vec::new();
    for item in &desired.items {
        match live.get(&item.name) {
            Some(l) if !dry_run_all && is_current(l, &item.manifest) => {
                out.comparisons.push(Comparison {
                    name: item.name.clone(),
                    before: Some(l.clone()),
                    after: Some(l.clone()),
                })
            }
            _ => to_dry_run.push(&item.manifest),
        }
    }
    out.dry_runs = to_dry_run.len();
    let results = cluster.apply_all(&to_dry_run, true, false).await;
    let mut forced: Vec<&JsonValue> = Vec::new();
    for (manifest, r) in to_dry_run.iter().zip(results) {
        let name = manifest["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match r {
            Ok(after) => out.comparisons.push(Comparison {
                before: live.get(&name).cloned(),
                after: Some(after),
                name,
            }),
            Err(ClusterError::Conflict { conflicts, .. }) => {
                out.conflicts.insert(name, conflicts);
                forced.push(manifest);
            }
            Err(e) => return Err(e),
        }
    }
    // Show what applying would do once the conflicts are taken over.
    let results = cluster.apply_all(&forced, true, true).await;
    for (manifest, r) in forced.iter().zip(results) {
        let name = manifest["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        out.comparisons.push(Comparison {
            before: live.get(&name).cloned(),
            after: Some(r?),
            name,
        });
    }
    for (name, l) in &live {
        if !desired.items.iter().any(|i| &i.name == name) {
            out.comparisons.push(Comparison {
                name: name.clone(),
                before: Some(l.clone()),
                after: None,
            });
        }
    }
    out.comparisons.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_defaults_do_not_make_an_object_look_changed() {
        let desired = json!({"metadata": {"annotations": {"drover.dev/spec-hash": "a", "drover.dev/commit": "new"}}, "spec": {"x": [{"name": "c", "image": "i"}]}});
        let live = json!({"metadata": {"annotations": {"drover.dev/spec-hash": "a", "drover.dev/commit": "old"}, "uid": "u"}, "spec": {"x": [{"name": "c", "image": "i", "imagePullPolicy": "IfNotPresent"}], "revisionHistoryLimit": 10}});
        assert!(is_current(&live, &desired));
    }

    #[test]
    fn a_drifted_field_is_noticed_even_with_the_same_hash() {
        let desired = json!({"metadata": {"annotations": {"drover.dev/spec-hash": "a"}}, "spec": {"x": [{"image": "i"}]}});
        let live = json!({"metadata": {"annotations": {"drover.dev/spec-hash": "a"}}, "spec": {"x": [{"image": "edited"}]}});
        assert!(!is_current(&live, &desired));
        let live_extra = json!({"metadata": {"annotations": {"drover.dev/spec-hash": "a"}}, "spec": {"x": [{"image": "i"}, {"image": "sidecar"}]}});
        assert!(!is_current(&live_extra, &desired));
    }

    #[test]
    fn zero_values_the_server_omits_do_not_need_a_dry_run() {
        // Found by bench/compare: every DaemonSet of a fleet with minReadySeconds 0
        // was dry-run again on every sync, because the API server omits the field.
        let desired = json!({"metadata": {"annotations": {"drover.dev/spec-hash": "a"}}, "spec": {"minReadySeconds": 0, "template": {"spec": {"hostNetwork": false, "x": 1}}}});
        let live = json!({"metadata": {"annotations": {"drover.dev/spec-hash": "a"}}, "spec": {"template": {"spec": {"x": 1}}}});
        assert!(is_current(&live, &desired));
        let desired_nonzero = json!({"metadata": {"annotations": {"drover.dev/spec-hash": "a"}}, "spec": {"minReadySeconds": 5, "template": {"spec": {"x": 1}}}});
        assert!(!is_current(&live, &desired_nonzero));
    }

    #[test]
    fn a_changed_spec_hash_needs_a_dry_run() {
        let desired = json!({"metadata": {"annotations": {"drover.dev/spec-hash": "b"}}});
        let live = json!({"metadata": {"annotations": {"drover.dev/spec-hash": "a"}}});
        assert!(!is_current(&live, &desired));
    }
}
