//! Gathering the live side of a plan: one labelled LIST of the fleet's DaemonSets,
//! one LIST of Nodes, and server-side-apply dry runs of what may have changed.
//!
//! Owns: deciding which desired objects need a dry run. An object whose live copy
//! carries the same spec hash and already contains every desired field is unchanged
//! without asking the server; everything else is dry-run applied (bounded
//! concurrency) so server defaults never show up as differences. Read-only.
//!
//! Memory: a fleet of thousands of DaemonSets must not be held as JSON trees (about
//! 20 KB of heap each). The LIST is read a page at a time; a live object that is
//! already current is reduced to its uid and commit; every other side the plan
//! compares is kept as compact JSON text and turned back into a tree one comparison
//! at a time ([`Gathered::comparisons`]).

use std::collections::BTreeMap;

use futures::{StreamExt as _, stream};
use serde_json::Value as JsonValue;

use super::cluster::{CONCURRENCY, Cluster, ClusterError, Conflict};
use crate::core::plan::{Comparison, NodeInfo, immutable_changes, namespace_of};
use crate::core::render::{ANN_COMMIT, ANN_SPEC_HASH, DesiredSet, LABEL_FLEET, Manifest};

/// What apply and prune need of a live object: who it is and where it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveObject {
    pub uid: Option<String>,
    /// Its `drover.dev/commit` annotation: rollback renders that commit.
    pub commit: Option<String>,
    /// Its `drover.dev/fleet` label: this fleet's name or one it had before.
    pub fleet: Option<String>,
    /// Its `drover.dev/daemon` and `drover.dev/group` labels.
    pub daemon: Option<String>,
    pub group: Option<String>,
    /// The ConfigMaps its pod template's volumes refer to: a config ConfigMap one of
    /// them mounts is not pruned (the live objects are the rollback targets).
    pub config_maps: Vec<String>,
}

impl LiveObject {
    fn of(obj: &JsonValue) -> LiveObject {
        let s = |p: &str| {
            obj.pointer(p)
                .and_then(JsonValue::as_str)
                .map(str::to_string)
        };
        LiveObject {
            uid: s("/metadata/uid"),
            commit: s(&format!(
                "/metadata/annotations/{}",
                ANN_COMMIT.replace('/', "~1")
            )),
            fleet: s(&format!(
                "/metadata/labels/{}",
                LABEL_FLEET.replace('/', "~1")
            )),
            daemon: s(&format!(
                "/metadata/labels/{}",
                crate::core::render::LABEL_DAEMON.replace('/', "~1")
            )),
            group: s(&format!(
                "/metadata/labels/{}",
                crate::core::render::LABEL_GROUP.replace('/', "~1")
            )),
            config_maps: crate::core::config_diff::referenced_config_maps(obj),
        }
    }
}

/// Where a live object is: `(namespace, name)`.
pub type ObjectKey = (String, String);

/// A DaemonSet a create would collide with but the fleet does not own (the core's
/// type: the guard refuses the plan while there is one).
pub use crate::core::guard::Foreign;

/// One side of a comparison, held until the plan reads it.
#[derive(Debug, Clone, PartialEq)]
enum Side {
    /// The desired manifest: the live object is already current, so both sides are
    /// it (equal sides, as the full live object on both sides also were); or the
    /// new side of a create whose diff is not shown (see [`gather`]).
    Desired,
    /// An object (live, or a dry-run result without managedFields and status), as
    /// compact JSON.
    Json(Box<str>),
}

impl Side {
    fn json(v: &JsonValue) -> Side {
        Side::Json(v.to_string().into_boxed_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Pending {
    name: String,
    before: Option<Side>,
    after: Option<Side>,
}

/// The live side of a plan.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// Sorted by name; see [`Gathered::comparisons`].
    pending: Vec<Pending>,
    /// Live objects of the fleet (labelled with its name or a previous one, in any
    /// namespace) before anything is applied.
    pub live: BTreeMap<ObjectKey, LiveObject>,
    /// Objects the fleet does not own that a create would write over: the plan is
    /// refused while there is one.
    pub foreign: Vec<Foreign>,
    pub nodes: Vec<NodeInfo>,
    /// Fields another manager owns, per DaemonSet, that applying would take over.
    pub conflicts: BTreeMap<String, Vec<Conflict>>,
    /// How many dry runs were needed.
    pub dry_runs: usize,
    /// The companion objects' two sides (see [`gather_companions`]).
    pub companions: Vec<crate::core::plan::CompanionComparison>,
    /// Companion objects in git whose name a live object has that the fleet does not
    /// own (no `drover.dev/fleet` label of it): the plan is refused while there is one.
    pub foreign_companions: Vec<String>,
    /// The kinds of the companions, as the cluster serves them, by
    /// `(apiVersion, kind)`: what apply and prune write through.
    pub companion_kinds: BTreeMap<(String, String), super::cluster::CompanionKind>,
    /// The uid of each live companion of the fleet, by object key: prune deletes
    /// only the object it observed.
    pub companion_uids: BTreeMap<String, String>,
    /// The live config ConfigMaps of the fleet (labelled `drover.dev/config`), by
    /// object key: what their files were, for the plan's file diffs.
    pub config_maps: BTreeMap<String, JsonValue>,
}

impl Gathered {
    /// The comparisons to plan, sorted by name, each built only when it is reached:
    /// handed to `plan`, which consumes them one at a time, at most one pair of
    /// objects is a JSON tree at once. `desired` must be the set given to [`gather`].
    pub fn comparisons<'a>(
        &'a self,
        desired: &'a DesiredSet,
    ) -> impl Iterator<Item = Comparison> + 'a {
        let by_name: BTreeMap<&str, &Manifest> = desired
            .items
            .iter()
            .map(|i| (i.name.as_str(), &i.manifest))
            .collect();
        self.pending.iter().map(move |p| {
            let side = |s: &Option<Side>| match s.as_ref()? {
                Side::Desired => by_name.get(p.name.as_str()).map(|m| m.value()),
                Side::Json(text) => serde_json::from_str(text).ok(),
            };
            Comparison {
                name: p.name.clone(),
                before: side(&p.before),
                after: side(&p.after),
            }
        })
    }

    /// How many comparisons [`Gathered::comparisons`] yields.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
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

/// Lists the fleet's DaemonSets and the Nodes, and dry-runs what may have changed.
///
/// The fleet's DaemonSets are every DaemonSet labelled with its name or one of
/// `previous_fleets` (names it had before), in any namespace. Each is paired with
/// the desired object of its name: in the fleet's namespace an update, or a
/// replacement when an immutable field differs; elsewhere a move (the first copy, by
/// namespace, of a name with no copy in the fleet's namespace) or a stray copy to
/// delete. A desired object with no copy that the fleet owns is a create; when its
/// dry run shows that an object of that name exists all the same (the fleet does not
/// own it), that object is reported in [`Gathered::foreign`] instead, found without
/// a LIST of its own.
///
/// Every dry run completes before this returns, so a commit the server rejects is
/// known before anything is written.
///
/// # Errors
/// When a LIST or a dry run fails for a reason other than a field conflict.
/// With `dry_run_all`, every desired object is dry-run applied, even when its live
/// copy already matches (for checking the comparison itself). With
/// `without_diffs` (the plan shows no diffs), a create whose dry run succeeded
/// keeps the desired manifest as its side rather than the server's answer: a
/// create's action, stage, privileges and placement read the same from either
/// (server defaults add none of them), and on a first sync of a large fleet the
/// answers were thousands of objects held at once.
#[tracing::instrument(name = "gather", skip_all, fields(fleet = %cluster.fleet, namespace = %cluster.namespace, desired = desired.items.len()))]
pub async fn gather(
    cluster: &Cluster,
    desired: &DesiredSet,
    dry_run_all: bool,
    without_diffs: bool,
    previous_fleets: &[String],
) -> Result<Gathered, ClusterError> {
    let here = cluster.namespace.clone();
    let by_name: BTreeMap<&str, &Manifest> = desired
        .items
        .iter()
        .map(|i| (i.name.as_str(), &i.manifest))
        .collect();
    let mut fleets = vec![cluster.fleet.clone()];
    fleets.extend(
        previous_fleets
            .iter()
            .filter(|f| **f != cluster.fleet)
            .cloned(),
    );
    fleets.dedup();
    let mut out = Gathered::default();
    // Live objects that need a dry run: only they keep their JSON, as text.
    let mut changed: BTreeMap<String, Side> = BTreeMap::new();
    // Live objects here whose immutable fields differ from what is desired.
    let mut replaced: BTreeMap<String, Side> = BTreeMap::new();
    // Copies in other namespaces, decided once every copy here is known.
    let mut elsewhere: Vec<(String, String, Side)> = Vec::new();
    let (listed, nodes) = tokio::join!(
        cluster.list_daemonsets(&fleets, |name: String, obj: JsonValue| {
            let ns = namespace_of(&obj).to_string();
            out.live
                .insert((ns.clone(), name.clone()), LiveObject::of(&obj));
            if ns != here {
                elsewhere.push((ns, name, Side::json(&obj)));
                return;
            }
            let desired = by_name.get(name.as_str()).map(|m| m.value());
            let side = match &desired {
                Some(m) if !immutable_changes(&obj, m).is_empty() => {
                    replaced.insert(name, Side::json(&obj));
                    return;
                }
                Some(m) if !dry_run_all && is_current(&obj, m) => Side::Desired,
                Some(_) => {
                    changed.insert(name, Side::json(&obj));
                    return;
                }
                None => Side::json(&obj),
            };
            let after = matches!(side, Side::Desired).then_some(Side::Desired);
            out.pending.push(Pending {
                name,
                before: Some(side),
                after,
            });
        }),
        cluster.list_nodes()
    );
    listed?;
    out.nodes = nodes?;
    let owned_here = |live: &BTreeMap<ObjectKey, LiveObject>, name: &str| {
        live.contains_key(&(here.clone(), name.to_string()))
    };
    elsewhere.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    let mut moved: BTreeMap<String, Side> = BTreeMap::new();
    for (_, name, side) in elsewhere {
        if by_name.contains_key(name.as_str())
            && !owned_here(&out.live, &name)
            && !moved.contains_key(&name)
        {
            moved.insert(name, side);
        } else {
            out.pending.push(Pending {
                name,
                before: Some(side),
                after: None,
            });
        }
    }
    // Desired objects with no copy here that the fleet owns: creates (moves too).
    let creating: std::collections::BTreeSet<&str> = desired
        .items
        .iter()
        .map(|i| i.name.as_str())
        .filter(|n| !owned_here(&out.live, n))
        .collect();
    let to_dry_run: Vec<&Manifest> = desired
        .items
        .iter()
        .filter(|i| changed.contains_key(&i.name) || creating.contains(i.name.as_str()))
        .map(|i| &i.manifest)
        .collect();
    out.dry_runs = to_dry_run.len() + replaced.len();
    let mut forced: Vec<&Manifest> = Vec::new();
    // Creates whose dry run says an object of that name exists after all (the
    // fleet's LIST did not show it, so the fleet does not own it): the dry run of a
    // new object has no resourceVersion, and one over another's object may be
    // refused (a field another manager owns, an immutable selector). Each is looked
    // up, with what to show should it be gone by then.
    let mut suspects: Vec<(String, Result<JsonValue, ClusterError>)> = Vec::new();
    let mut results = dry_runs(cluster, &to_dry_run, false);
    while let Some((manifest, r)) = results.next().await {
        let name = manifest.name();
        let create = creating.contains(name.as_str());
        match r {
            Ok(after) if create && has_resource_version(&after) => suspects.push((name, Ok(after))),
            Ok(after) => {
                let before = changed.remove(&name).or_else(|| moved.remove(&name));
                let after = if create && before.is_none() && without_diffs {
                    Side::Desired
                } else {
                    Side::json(&after)
                };
                out.pending.push(Pending {
                    before,
                    after: Some(after),
                    name,
                });
            }
            Err(e @ (ClusterError::Conflict { .. } | ClusterError::DryRun { .. })) if create => {
                suspects.push((name, Err(e)));
            }
            Err(ClusterError::Conflict { conflicts, .. }) => {
                out.conflicts.insert(name, conflicts);
                forced.push(manifest);
            }
            Err(e) => return Err(e),
        }
    }
    drop(results);
    for (name, seen) in suspects {
        match (cluster.owner_of(&name).await?, seen) {
            (Some(fleet), _) => out.foreign.push(Foreign {
                namespace: here.clone(),
                name,
                fleet,
            }),
            // Gone meanwhile: a create after all.
            (None, Ok(after)) => out.pending.push(Pending {
                before: moved.remove(&name),
                after: Some(Side::json(&after)),
                name,
            }),
            (None, Err(e)) => return Err(e),
        }
    }
    // Show what applying would do once the conflicts are taken over.
    let mut results = dry_runs(cluster, &forced, true);
    while let Some((manifest, r)) = results.next().await {
        let name = manifest.name();
        out.pending.push(Pending {
            before: changed.remove(&name).or_else(|| moved.remove(&name)),
            after: Some(Side::json(&r?)),
            name,
        });
    }
    drop(results);
    // A replacement cannot be dry-run in place (the server refuses the immutable
    // change): it is dry-run as the new object it will be.
    for (name, before) in replaced {
        let Some(manifest) = by_name.get(name.as_str()).map(|m| m.value()) else {
            continue;
        };
        let after = cluster.dry_run_as_new(&manifest).await?.unwrap_or(manifest);
        out.pending.push(Pending {
            name,
            before: Some(before),
            after: Some(Side::json(&after)),
        });
    }
    out.pending.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether an object came from the API server's storage: a dry run of a create
/// leaves `metadata.resourceVersion` empty.
fn has_resource_version(obj: &JsonValue) -> bool {
    obj.pointer("/metadata/resourceVersion")
        .and_then(JsonValue::as_str)
        .is_some_and(|v| !v.is_empty())
}

/// Dry-run applies `manifests` (bounded concurrency), yielding each with its result
/// in input order as it arrives, so no more than [`CONCURRENCY`] results are held.
fn dry_runs<'a>(
    cluster: &'a Cluster,
    manifests: &'a [&'a Manifest],
    force: bool,
) -> impl futures::Stream<Item = (&'a Manifest, Result<JsonValue, ClusterError>)> + 'a {
    stream::iter(
        manifests
            .iter()
            .map(move |m| async move { (*m, cluster.apply_manifest(m, true, force).await) }),
    )
    .buffered(CONCURRENCY)
    .boxed()
}

/// The live side of the fleet's companion objects: for every kind the fleet may hold
/// (the default kinds and those of its companions), one labelled LIST of what the
/// fleet (or a name it had before) owns (a namespaced kind: one per namespace in
/// `namespaces`, the fleet's and those it allows companions in), and a
/// server-side-apply dry run of each
/// companion in git, so that server defaults never show up as differences. A kind the
/// cluster does not serve is an error. Read-only. A live object of a name a companion
/// has that the fleet does not own is reported in
/// [`Gathered::foreign_companions`].
///
/// # Errors
/// When a kind cannot be resolved, a LIST or a dry run fails.
#[tracing::instrument(name = "gather_companions", skip_all, fields(fleet = %cluster.fleet, companions = desired.companions.len(), config_maps = desired.config_maps.len()))]
pub async fn gather_companions(
    cluster: &Cluster,
    desired: &DesiredSet,
    namespaces: &[String],
    previous_fleets: &[String],
    out: &mut Gathered,
) -> Result<(), ClusterError> {
    use crate::core::companion::{DEFAULT_KINDS, object_key};
    use crate::core::plan::CompanionComparison;
    let mut fleets = vec![cluster.fleet.clone()];
    fleets.extend(
        previous_fleets
            .iter()
            .filter(|f| **f != cluster.fleet)
            .cloned(),
    );
    fleets.dedup();
    let mut kinds: std::collections::BTreeSet<(String, String)> = DEFAULT_KINDS
        .iter()
        .map(|(v, k, _)| ((*v).to_string(), (*k).to_string()))
        .collect();
    kinds.extend(
        desired
            .companions
            .iter()
            .map(|c| (c.api_version.clone(), c.kind.clone())),
    );
    let mut resolved = BTreeMap::new();
    let mut live: BTreeMap<String, JsonValue> = BTreeMap::new();
    for (api_version, kind) in kinds {
        let k = cluster.companion_kind(&api_version, &kind).await?;
        let scopes: Vec<Option<&str>> = if k.namespaced {
            namespaces.iter().map(|n| Some(n.as_str())).collect()
        } else {
            vec![None]
        };
        let mut objects = Vec::new();
        for ns in scopes {
            objects.extend(cluster.list_companions(&k, ns, &fleets).await?);
        }
        for obj in objects {
            let name = obj
                .pointer("/metadata/name")
                .and_then(JsonValue::as_str)
                .unwrap_or_default();
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(JsonValue::as_str);
            let key = object_key(&api_version, &kind, ns, name);
            if let Some(uid) = obj.pointer("/metadata/uid").and_then(JsonValue::as_str) {
                out.companion_uids.insert(key.clone(), uid.to_string());
            }
            live.insert(key, obj);
        }
        resolved.insert((api_version, kind), k);
    }
    for (key, obj) in &live {
        let config_label = format!(
            "/metadata/labels/{}",
            crate::core::render::LABEL_CONFIG.replace('/', "~1")
        );
        if obj.pointer(&config_label).is_some() {
            out.config_maps.insert(key.clone(), obj.clone());
        }
    }
    let mut comparisons = Vec::new();
    // The config ConfigMaps travel the companions' path: listed, dry-run, applied
    // before their stage, pruned after (docs/config-files.md).
    let config = crate::core::config_diff::as_companions(desired);
    for c in desired.companions.iter().chain(&config) {
        let key = c.key();
        let k = &resolved[&(c.api_version.clone(), c.kind.clone())];
        let (after, exists) = cluster.dry_run_companion(k, &key, &c.manifest).await?;
        let before = live.remove(&key);
        if exists && before.is_none() {
            out.foreign_companions.push(key);
        }
        comparisons.push(CompanionComparison {
            meta: c.clone(),
            before,
            after: Some(after),
        });
    }
    // What the fleet owns and git no longer has: deletes.
    for (key, obj) in live {
        let s = |p: &str| {
            obj.pointer(p)
                .and_then(JsonValue::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let meta = crate::core::companion::Companion {
            path: s(&format!(
                "/metadata/annotations/{}",
                crate::core::render::ANN_SOURCE.replace('/', "~1")
            )),
            line: 0,
            owner: obj
                .pointer(&format!(
                    "/metadata/labels/{}",
                    crate::core::render::LABEL_DAEMON.replace('/', "~1")
                ))
                .and_then(JsonValue::as_str)
                .map(str::to_string),
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: obj
                .pointer("/metadata/namespace")
                .and_then(JsonValue::as_str)
                .map(str::to_string),
            name: s("/metadata/name"),
            manifest: JsonValue::Null,
        };
        debug_assert_eq!(meta.key(), key);
        comparisons.push(CompanionComparison {
            meta,
            before: Some(obj),
            after: None,
        });
    }
    out.companions = comparisons;
    out.companion_kinds = resolved;
    Ok(())
}

/// The live plan's config files: the config ConfigMaps moved out of the companions
/// (kept while a live DaemonSet, a rollback target, or a desired one mounts them),
/// and each file's diff against the ConfigMap the live DaemonSet mounts. Runs on the
/// plan of the companions, after [`gather_companions`].
pub fn plan_config_files(
    p: &mut crate::core::plan::Plan,
    rendered: &crate::core::snapshot::Rendered,
    gathered: &Gathered,
) {
    use crate::core::config_diff;
    let desired = &rendered.desired;
    let mut referenced: std::collections::BTreeSet<String> = gathered
        .live
        .values()
        .flat_map(|l| l.config_maps.iter().cloned())
        .collect();
    referenced.extend(desired.config_maps.iter().map(|c| c.name.clone()));
    let config: std::collections::BTreeSet<String> = gathered.config_maps.keys().cloned().collect();
    config_diff::split_config_companions(p, desired, &config, &referenced);
    // The live side as a render: each live config ConfigMap with the groups whose
    // live DaemonSets of its daemon mount it.
    let live_maps = gathered
        .config_maps
        .values()
        .filter_map(|obj| {
            let name = obj.pointer("/metadata/name")?.as_str()?;
            let label = |k: &str| {
                obj.pointer(&format!("/metadata/labels/{}", k.replace('/', "~1")))
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string)
            };
            let daemon = label(crate::core::render::LABEL_DAEMON)?;
            let entry = label(crate::core::render::LABEL_CONFIG)?;
            let groups: Vec<String> = gathered
                .live
                .values()
                .filter(|l| l.daemon.as_deref() == Some(daemon.as_str()))
                .filter(|l| l.config_maps.iter().any(|c| c == name))
                .filter_map(|l| l.group.clone())
                .collect();
            Some(crate::core::render::DesiredConfigMap {
                name: name.to_string(),
                daemon,
                entry,
                groups,
                source: String::new(),
                files: config_diff::files_of(obj),
                hash: String::new(),
                manifest: serde_json::Value::Null,
            })
        })
        .collect();
    let live = crate::core::render::DesiredSet {
        fleet: desired.fleet.clone(),
        namespace: desired.namespace.clone(),
        items: Vec::new(),
        companions: Vec::new(),
        config_maps: live_maps,
    };
    p.config_files = config_diff::plan_config_files(&rendered.fleet, Some(&live), desired);
    config_diff::annotate_actions(p);
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

    fn desired_set(name: &str, manifest: JsonValue) -> DesiredSet {
        DesiredSet {
            fleet: "f".into(),
            namespace: "ns".into(),
            items: vec![crate::core::render::DesiredDaemonSet {
                name: name.into(),
                daemon: "d".into(),
                group: "g".into(),
                stage: "s".into(),
                source: "daemons/d.yaml".into(),
                spec_hash: "a".into(),
                manifest: manifest.into(),
            }],
            companions: Vec::new(),
            config_maps: Vec::new(),
        }
    }

    #[test]
    fn stripped_server_fields_do_not_change_a_comparison() {
        let full = json!({"metadata": {"name": "x", "uid": "u", "managedFields": [{"manager": "drover", "fieldsV1": {"f:spec": {}}}], "annotations": {"drover.dev/spec-hash": "a"}}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}, "status": {"numberReady": 3}});
        let mut stripped = full.clone();
        super::super::cluster::strip_server_fields(&mut stripped);
        assert!(stripped.pointer("/metadata/managedFields").is_none());
        assert!(stripped.get("status").is_none());
        assert_eq!(
            stripped.pointer("/metadata/uid"),
            full.pointer("/metadata/uid")
        );
        assert_eq!(
            crate::core::diff::normalize(&stripped),
            crate::core::diff::normalize(&full)
        );
    }

    #[test]
    fn compact_sides_give_back_the_objects_they_were_made_from() {
        let manifest = json!({"metadata": {"name": "x", "annotations": {"drover.dev/spec-hash": "a"}}, "spec": {"z": 1, "a": [true, null, "s"]}});
        let dry_run = json!({"metadata": {"name": "x", "uid": "u"}, "spec": {"z": 1, "a": [true, null, "s"], "revisionHistoryLimit": 10}});
        let desired = desired_set("x", manifest.clone());
        let live = json!({"metadata": {"name": "x", "uid": "u", "annotations": {"drover.dev/commit": "c0"}}});
        let g = Gathered {
            pending: vec![
                // Current: both sides are the desired manifest.
                Pending {
                    name: "x".into(),
                    before: Some(Side::Desired),
                    after: Some(Side::Desired),
                },
                Pending {
                    name: "y".into(),
                    before: Some(Side::json(&live)),
                    after: Some(Side::json(&dry_run)),
                },
                Pending {
                    name: "z".into(),
                    before: None,
                    after: Some(Side::json(&dry_run)),
                },
            ],
            ..Default::default()
        };
        let cs: Vec<Comparison> = g.comparisons(&desired).collect();
        assert_eq!(cs.len(), 3);
        assert_eq!(cs[0].before.as_ref(), Some(&manifest));
        assert_eq!(cs[0].after.as_ref(), Some(&manifest));
        assert_eq!(cs[1].before.as_ref(), Some(&live));
        // Key order survives the text form (the plan's output follows it).
        assert_eq!(
            cs[1].after.as_ref().map(JsonValue::to_string),
            Some(dry_run.to_string())
        );
        assert_eq!(cs[2].before, None);
        assert_eq!(
            LiveObject::of(&live),
            LiveObject {
                uid: Some("u".into()),
                commit: Some("c0".into()),
                fleet: None,
                ..LiveObject::default()
            }
        );
    }

    /// The example fleet, its render and the example nodes.
    fn example() -> (
        crate::core::fleet::Fleet,
        crate::core::render::DesiredSet,
        Vec<crate::core::plan::NodeInfo>,
    ) {
        use crate::core::limits::LIMITS;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let files = crate::shell::source::read_worktree(&root.join("examples/fleet"), &LIMITS)
            .expect("example fleet");
        let fleet = crate::core::validate::load_fleet(&files, &LIMITS).expect("valid");
        let desired =
            crate::core::render::render(&fleet, &Default::default(), usize::MAX).expect("render");
        let nodes_yaml = std::fs::read_to_string(root.join("examples/nodes.yaml")).unwrap();
        let nodes = crate::core::plan::parse_node_list(&nodes_yaml).unwrap();
        (fleet, desired, nodes)
    }

    #[test]
    fn current_objects_plan_as_unchanged_as_with_their_live_copies() {
        // Equal sides are what the plan saw before, with the live object on both.
        let (fleet, desired, nodes) = example();
        let live = |m: &JsonValue| {
            let mut l = m.clone();
            l["metadata"]["uid"] = json!("u");
            l["spec"]["revisionHistoryLimit"] = json!(10);
            l
        };
        let compact = Gathered {
            pending: desired
                .items
                .iter()
                .map(|i| Pending {
                    name: i.name.clone(),
                    before: Some(Side::Desired),
                    after: Some(Side::Desired),
                })
                .collect(),
            ..Default::default()
        };
        let full: Vec<Comparison> = desired
            .items
            .iter()
            .map(|i| Comparison {
                name: i.name.clone(),
                before: Some(live(&i.manifest.value())),
                after: Some(live(&i.manifest.value())),
            })
            .collect();
        let plan = |cs: Vec<Comparison>| {
            crate::core::plan::plan(&fleet, &desired, cs, Some(&nodes), Default::default())
        };
        let a = plan(compact.comparisons(&desired).collect());
        assert_eq!(a, plan(full));
        assert_eq!(a.summary.unchanged, desired.items.len());
    }

    #[test]
    fn creates_kept_as_their_manifests_plan_as_with_the_servers_answers_when_no_diff_is_shown() {
        use crate::core::plan::{Action, PlanMeta};
        let (fleet, desired, nodes) = example();
        // A dry run of a create: the manifest with what the API server fills in.
        let answered = |m: &JsonValue| {
            let mut a = m.clone();
            a["metadata"]["uid"] = json!("u");
            a["metadata"]["generation"] = json!(1);
            a["spec"]["revisionHistoryLimit"] = json!(10);
            let pod = &mut a["spec"]["template"]["spec"];
            pod["dnsPolicy"] = json!("ClusterFirst");
            pod["restartPolicy"] = json!("Always");
            pod["schedulerName"] = json!("default-scheduler");
            pod["terminationGracePeriodSeconds"] = json!(30);
            if pod.get("securityContext").is_none() {
                pod["securityContext"] = json!({});
            }
            for c in pod["containers"].as_array_mut().into_iter().flatten() {
                c["terminationMessagePath"] = json!("/dev/termination-log");
                c["terminationMessagePolicy"] = json!("File");
            }
            a
        };
        let gathered = |after: &dyn Fn(&Manifest) -> Side| Gathered {
            pending: desired
                .items
                .iter()
                .map(|i| Pending {
                    name: i.name.clone(),
                    before: None,
                    after: Some(after(&i.manifest)),
                })
                .collect(),
            ..Default::default()
        };
        let kept = gathered(&|_| Side::Desired);
        let answers = gathered(&|m| Side::json(&answered(&m.value())));
        let plan = |g: &Gathered| {
            let meta = PlanMeta {
                without_diffs: true,
                ..Default::default()
            };
            crate::core::plan::plan(
                &fleet,
                &desired,
                g.comparisons(&desired),
                Some(&nodes),
                meta,
            )
        };
        let a = plan(&kept);
        assert_eq!(a, plan(&answers));
        assert_eq!(a.summary.create, desired.items.len());
        assert!(
            a.stages
                .iter()
                .flat_map(|s| &s.actions)
                .all(|x| x.action == Action::Create && x.nodes.is_some())
        );
        assert!(
            a.summary.nodes_restarted.is_some_and(|n| n > 0),
            "{:?}",
            a.summary
        );
    }

    #[test]
    fn a_changed_spec_hash_needs_a_dry_run() {
        let desired = json!({"metadata": {"annotations": {"drover.dev/spec-hash": "b"}}});
        let live = json!({"metadata": {"annotations": {"drover.dev/spec-hash": "a"}}});
        assert!(!is_current(&live, &desired));
    }
}
