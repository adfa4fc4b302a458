//! Comparing two DaemonSet objects: normalisation, secret masking, leaf-level field
//! changes, the kind of impact a change has, and the unified YAML diff.
//!
//! Owns: what counts as a change (and what is noise), which values are secret, and
//! how a change is shown. Must not: know where the objects came from (a render, a
//! live LIST or a server-side-apply dry run) or do any I/O.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as JsonValue};

use super::render::{ANN_COMMIT, to_yaml};

/// What replaces a secret-looking value in every output.
pub const MASK: &str = "<masked>";
/// What replaces a secret-looking value that differs between the two sides.
pub const MASK_CHANGED: &str = "<masked, changed>";

/// Metadata the API server owns; never part of a comparison.
const SERVER_METADATA: [&str; 6] = [
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
];

/// Annotations that describe an object rather than what it should be.
const NOISE_ANNOTATIONS: [&str; 3] = [
    ANN_COMMIT,
    "deprecated.daemonset.template.generation",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// Field names that look secret but hold names or references, never secret material
/// (`tolerations[].key`, `secretKeyRef.key`, `secret.secretName`, ...).
const NOT_SECRET_FIELDS: [&str; 4] = ["key", "secretName", "secretKeyRef", "secretRef"];

/// One leaf-level difference between two objects. Values are masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Like `spec.template.spec.containers[0].image`; map keys that are not plain
    /// identifiers are quoted: `metadata.labels["app.kubernetes.io/name"]`.
    pub path: String,
    /// `None`: the field is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<JsonValue>,
    /// `None`: the field is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<JsonValue>,
}

/// What a change does to running pods, from most to least disruptive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Impact {
    /// The pod template changes (or the DaemonSet is created or deleted): every pod
    /// of the DaemonSet is replaced.
    Restart,
    /// Only rollout settings (`updateStrategy`, `minReadySeconds`, ...) change.
    RolloutSettings,
    /// Only the DaemonSet's own labels or annotations change.
    MetadataOnly,
    /// Nothing changes.
    None,
}

impl Impact {
    pub fn restarts_pods(self) -> bool {
        self == Impact::Restart
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Impact::Restart => "restart",
            Impact::RolloutSettings => "rollout-settings",
            Impact::MetadataOnly => "metadata-only",
            Impact::None => "none",
        }
    }
}

/// Whether a key (a field name, label or annotation key, an env var's, header's or
/// flag's name) looks like it holds a secret: contains `password`, `passwd`, `token`,
/// `secret`, `key`, `credential`, `authorization` or `cookie`, in any case.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "token",
        "secret",
        "key",
        "credential",
        "authorization",
        "cookie",
    ]
    .iter()
    .any(|p| k.contains(p))
}

/// `--password` (then the next argument is its value): a flag with a secret-looking
/// name and no `=value` of its own. `-p` is not one: for most tools (psql, ssh,
/// redis-cli) it is a port.
fn is_secret_flag(v: &JsonValue) -> bool {
    let Some(s) = v.as_str() else {
        return false;
    };
    let bare = s.trim_start_matches('-');
    s.starts_with('-')
        && bare.len() > 1
        && !s.contains('=')
        && !bare.contains(char::is_whitespace)
        && is_secret_key(bare)
}

fn masks_child(key: &str) -> bool {
    !NOT_SECRET_FIELDS.contains(&key) && is_secret_key(key)
}

/// The object without what the API server or drover itself writes to describe it:
/// `status`, server-owned metadata, the commit annotation and other bookkeeping
/// annotations. Key order is sorted so that two equal objects print the same.
pub fn normalize(obj: &JsonValue) -> JsonValue {
    let mut v = strip_noise(obj.clone());
    sort_keys_deep(&mut v);
    v
}

/// [`normalize`] without the key sort, on an object the caller owns: what it removes
/// is the same, the key order is not. Equality ([`same`], `==`) does not depend on
/// key order, so a plan sorts only the objects it prints.
pub fn strip_noise(mut v: JsonValue) -> JsonValue {
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
        if let Some(meta) = m.get_mut("metadata").and_then(JsonValue::as_object_mut) {
            for k in SERVER_METADATA {
                meta.remove(k);
            }
            let empty = match meta.get_mut("annotations") {
                Some(JsonValue::Object(a)) => {
                    for k in NOISE_ANNOTATIONS {
                        a.remove(k);
                    }
                    a.is_empty()
                }
                Some(JsonValue::Null) => true,
                _ => false,
            };
            if empty {
                meta.remove("annotations");
            }
        }
    }
    v
}

/// Sorts every map's keys, in place: `normalize` already owns its copy, and a
/// second, sorted copy of every object was most of its cost on large fleets.
pub fn sort_keys_deep(v: &mut JsonValue) {
    match v {
        JsonValue::Object(m) => {
            m.sort_keys();
            m.values_mut().for_each(sort_keys_deep);
        }
        JsonValue::Array(a) => a.iter_mut().for_each(sort_keys_deep),
        _ => {}
    }
}

/// Whether `path` names an object key that is a plain identifier.
fn is_ident(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !k.starts_with(|c: char| c.is_ascii_digit())
}

fn join_key(parent: &str, k: &str) -> String {
    let mut p = parent.to_string();
    push_key(&mut p, k);
    p
}

/// Appends the path segment of key `k` to `path`: `.k`, `k` at the root, or
/// `["k"]` when `k` is not a plain identifier.
fn push_key(path: &mut String, k: &str) {
    if is_ident(k) {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(k);
    } else {
        path.push('[');
        path.push_str(&serde_json::to_string(k).expect("a string always serialises"));
        path.push(']');
    }
}

/// Appends the path segment of list index `i` to `path`: `[i]`.
fn push_index(path: &mut String, i: usize) {
    use std::fmt::Write as _;
    write!(path, "[{i}]").expect("writing to a String");
}

/// `a == b`, without hashing when both sides keep their keys in the same order (two
/// renders by the same code, two normalised objects): maps are compared entry by
/// entry, and only where the key orders differ by looking keys up, as `==` does.
/// Like `==`, key order never changes the answer.
pub fn same(a: &JsonValue, b: &JsonValue) -> bool {
    match (a, b) {
        (JsonValue::Object(x), JsonValue::Object(y)) => {
            if x.len() != y.len() {
                return false;
            }
            for ((kx, vx), (ky, vy)) in x.iter().zip(y) {
                if kx != ky {
                    // Another order: look every key up.
                    return x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)));
                }
                // Keys are unique, so `vy` is what `y[kx]` is: a difference is final.
                if !same(vx, vy) {
                    return false;
                }
            }
            true
        }
        (JsonValue::Array(x), JsonValue::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

fn same_opt(a: Option<&JsonValue>, b: Option<&JsonValue>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Whether an object is a `{name, value}` pair whose name looks secret (an env var,
/// a header): its `value` is then secret.
fn secret_named(m: &Map<String, JsonValue>) -> bool {
    m.get("name")
        .and_then(JsonValue::as_str)
        .is_some_and(is_secret_key)
}

fn mask_leaf(v: &JsonValue, changed: bool) -> JsonValue {
    match v {
        JsonValue::Null | JsonValue::Bool(_) => v.clone(),
        _ if changed => JsonValue::String(MASK_CHANGED.into()),
        _ => JsonValue::String(MASK.into()),
    }
}

/// A copy of `v` with every secret-looking value replaced by [`MASK`], or by
/// [`MASK_CHANGED`] where its path is in `changed`.
pub fn mask(v: &JsonValue, changed: &BTreeSet<String>) -> JsonValue {
    mask_at(v, "", false, changed)
}

/// A masked copy of `v`, which sits at `path`: a plain copy (maps keep their hash
/// tables) masked in place, with one path buffer for the whole walk.
fn mask_at(v: &JsonValue, path: &str, secret: bool, changed: &BTreeSet<String>) -> JsonValue {
    let mut out = v.clone();
    mask_in_place(&mut out, &mut path.to_string(), secret, changed);
    out
}

fn mask_in_place(v: &mut JsonValue, path: &mut String, secret: bool, changed: &BTreeSet<String>) {
    match v {
        JsonValue::Object(m) => {
            let named = secret_named(m);
            for (k, child) in m.iter_mut() {
                let len = path.len();
                push_key(path, k);
                let s = secret || masks_child(k) || (named && k == "value");
                mask_in_place(child, path, s, changed);
                path.truncate(len);
            }
        }
        JsonValue::Array(a) => {
            let mut after_flag = false;
            for (i, x) in a.iter_mut().enumerate() {
                let len = path.len();
                push_index(path, i);
                let flag = is_secret_flag(x);
                mask_in_place(x, path, secret || after_flag, changed);
                after_flag = flag;
                path.truncate(len);
            }
        }
        leaf if secret => *leaf = mask_leaf(leaf, changed.contains(path.as_str())),
        JsonValue::String(s) => {
            let m = if changed.contains(path.as_str()) {
                MASK_CHANGED
            } else {
                MASK
            };
            if let Some(masked) = masked_text(s, m) {
                *s = masked;
            }
        }
        _ => {}
    }
}

/// `s` with the secrets inside it masked (assignments, headers, auth schemes, URL
/// passwords), or `s` as it is: what a line of a config file gets when its key
/// does not look secret itself ([`crate::config_diff::mask_text`]).
pub fn mask_in_text(s: &str) -> String {
    masked_text(s, MASK).unwrap_or_else(|| s.to_string())
}

/// A string with the secrets inside it masked by `mask`, when it has any:
/// `--db-password=x` (a secret-looking name before `=`), `Authorization: Bearer x`
/// (a header whose name looks secret), `Bearer x` / `Basic x`, and the password of a
/// URL's userinfo (`postgres://user:x@host`; a userinfo without a password, often a
/// token, is masked whole).
fn masked_text(s: &str, mask: &str) -> Option<String> {
    if let Some(name) = secret_assignment(s) {
        return Some(format!("{name}={mask}"));
    }
    let mut out = s.to_string();
    let mut hit = false;
    if let Some(masked) = mask_secret_header(&out, mask) {
        out = masked;
        hit = true;
    }
    if let Some(masked) = mask_auth_scheme(&out, mask) {
        out = masked;
        hit = true;
    }
    if let Some(masked) = mask_userinfo(&out, mask) {
        out = masked;
        hit = true;
    }
    hit.then_some(out)
}

/// `...Authorization: <value>`: a header-like `Name: value` whose name looks secret;
/// the rest of the string is its value.
fn mask_secret_header(s: &str, mask: &str) -> Option<String> {
    let mut from = 0;
    while let Some(i) = s[from..].find(": ").map(|i| i + from) {
        let name_start = s[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(0, |j| j + 1);
        let name = &s[name_start..i];
        if !name.is_empty() && is_secret_key(name) && !s[i + 2..].starts_with(mask) {
            return Some(format!("{}: {mask}", &s[..i]));
        }
        from = i + 2;
    }
    None
}

/// `Bearer <token>`, `Basic <credentials>`: the word after the scheme.
fn mask_auth_scheme(s: &str, mask: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    for scheme in ["bearer ", "basic "] {
        let Some(i) = lower.find(scheme) else {
            continue;
        };
        if i > 0 && s[..i].chars().last().is_some_and(char::is_alphanumeric) {
            continue;
        }
        let start = i + scheme.len();
        let end = s[start..]
            .find(char::is_whitespace)
            .map_or(s.len(), |j| start + j);
        if end > start && &s[start..end] != mask {
            return Some(format!("{}{mask}{}", &s[..start], &s[end..]));
        }
    }
    None
}

/// `scheme://user:password@host`: the password (or a lone user, often a token).
fn mask_userinfo(s: &str, mask: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut hit = false;
    while let Some(i) = rest.find("://") {
        let auth_start = i + 3;
        out.push_str(&rest[..auth_start]);
        let after = &rest[auth_start..];
        let auth_end = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..auth_end];
        match authority.rfind('@') {
            Some(at) if at > 0 => {
                let userinfo = &authority[..at];
                let masked = match userinfo.split_once(':') {
                    Some((user, pass)) if pass != mask => format!("{user}:{mask}"),
                    Some(_) => userinfo.to_string(),
                    None if userinfo == mask => userinfo.to_string(),
                    None => mask.to_string(),
                };
                hit |= masked != userinfo;
                out.push_str(&masked);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &after[auth_end..];
    }
    out.push_str(rest);
    hit.then_some(out)
}

/// `--db-password=hunter2` (an argument, a `-o key=value` option) with a
/// secret-looking name keeps the name and masks the value: the name part, when `s`
/// is such an assignment.
fn secret_assignment(s: &str) -> Option<&str> {
    let (name, _) = s.split_once('=')?;
    let bare = name.trim_start_matches('-');
    if bare.is_empty() || bare.contains(char::is_whitespace) || !is_secret_key(bare) {
        return None;
    }
    Some(name)
}

/// Leaf-level differences between two normalised objects, in path order, masked.
/// A field present on one side only is one change carrying the whole value.
pub fn field_changes(before: &JsonValue, after: &JsonValue) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk(Some(before), Some(after), "", false, &mut out);
    out
}

fn masked_side(
    v: Option<&JsonValue>,
    path: &str,
    secret: bool,
    changed: &BTreeSet<String>,
) -> Option<JsonValue> {
    v.map(|x| mask_at(x, path, secret, changed))
}

fn walk(
    a: Option<&JsonValue>,
    b: Option<&JsonValue>,
    path: &str,
    secret: bool,
    out: &mut Vec<FieldChange>,
) {
    // Equal subtrees hold no change: skip them before building any path. Most of a
    // plan's DaemonSets, and most of a changed one, are equal.
    if same_opt(a, b) {
        return;
    }
    match (a, b) {
        (Some(JsonValue::Object(x)), Some(JsonValue::Object(y))) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            let named = secret_named(x) || secret_named(y);
            for k in keys {
                let s = secret || masks_child(k) || (named && k == "value");
                walk(x.get(k), y.get(k), &join_key(path, k), s, out);
            }
        }
        (Some(JsonValue::Array(x)), Some(JsonValue::Array(y))) => {
            let flag =
                |l: &[JsonValue], i: usize| i > 0 && l.get(i - 1).is_some_and(is_secret_flag);
            for i in 0..x.len().max(y.len()) {
                let s = secret || flag(x, i) || flag(y, i);
                walk(x.get(i), y.get(i), &format!("{path}[{i}]"), s, out);
            }
        }
        (x, y) if x == y => {}
        (x, y) => {
            // A changed secret leaf shows as MASK before and MASK_CHANGED after.
            let changed: BTreeSet<String> = [path.to_string()].into();
            let before = masked_side(x, path, secret, &BTreeSet::new());
            let after = masked_side(y, path, secret, &changed);
            out.push(FieldChange {
                path: path.to_string(),
                before,
                after,
            });
        }
    }
}

/// How disruptive the change from `before` to `after` (both normalised) is.
pub fn impact(before: &JsonValue, after: &JsonValue) -> Impact {
    if same(before, after) {
        return Impact::None;
    }
    if !same_opt(
        before.pointer("/spec/template"),
        after.pointer("/spec/template"),
    ) {
        return Impact::Restart;
    }
    if !same_opt(before.get("spec"), after.get("spec")) {
        return Impact::RolloutSettings;
    }
    Impact::MetadataOnly
}

/// Paths of leaves that differ between `a` and `b` and sit under a secret key; the
/// masked `after` side shows [`MASK_CHANGED`] there.
fn changed_secret_paths(a: Option<&JsonValue>, b: Option<&JsonValue>) -> BTreeSet<String> {
    let (Some(a), Some(b)) = (a, b) else {
        return BTreeSet::new();
    };
    let mut raw = Vec::new();
    walk_raw(a, b, &mut String::new(), &mut raw);
    raw.into_iter().collect()
}

fn walk_raw(a: &JsonValue, b: &JsonValue, path: &mut String, out: &mut Vec<String>) {
    match (a, b) {
        (JsonValue::Object(x), JsonValue::Object(y)) => {
            for (k, xv) in x {
                if let Some(yv) = y.get(k) {
                    let len = path.len();
                    push_key(path, k);
                    walk_raw(xv, yv, path, out);
                    path.truncate(len);
                }
            }
        }
        (JsonValue::Array(x), JsonValue::Array(y)) => {
            for (i, (xv, yv)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                push_index(path, i);
                walk_raw(xv, yv, path, out);
                path.truncate(len);
            }
        }
        (x, y) if x != y => out.push(path.clone()),
        _ => {}
    }
}

/// A unified diff (3 lines of context) of the two normalised objects as YAML, with
/// secrets masked; empty when they are equal. `name` labels the `---`/`+++` lines.
pub fn unified_diff(name: &str, before: Option<&JsonValue>, after: Option<&JsonValue>) -> String {
    if same_opt(before, after) {
        return String::new();
    }
    let changed = changed_secret_paths(before, after);
    let yaml = |v: Option<&JsonValue>, ch: &BTreeSet<String>| {
        v.map(|x| to_yaml(&mask(x, ch))).unwrap_or_default()
    };
    let old = yaml(before, &BTreeSet::new());
    let new = yaml(after, &changed);
    let (a, b) = (
        if before.is_some() {
            format!("a/{name}")
        } else {
            "/dev/null".to_string()
        },
        if after.is_some() {
            format!("b/{name}")
        } else {
            "/dev/null".to_string()
        },
    );
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_yaml_diff_quotes_strings_a_yaml_1_1_reader_would_misread() {
        let a = json!({"env": [{"name": "DD_LOGS_ENABLED", "value": "no"}]});
        let b = json!({"env": [{"name": "DD_LOGS_ENABLED", "value": "yes"}]});
        let d = unified_diff("ds", Some(&a), Some(&b));
        assert!(d.contains("-  value: 'no'\n"), "{d}");
        assert!(d.contains("+  value: 'yes'\n"), "{d}");
    }

    #[test]
    fn normalize_drops_server_fields_and_the_commit_annotation() {
        let live = json!({
            "metadata": {"name": "x", "uid": "u", "resourceVersion": "7", "generation": 3,
                "managedFields": [{}], "creationTimestamp": "t",
                "annotations": {"drover.dev/commit": "abc", "deprecated.daemonset.template.generation": "3"}},
            "spec": {"b": 1, "a": 2},
            "status": {"numberReady": 3}
        });
        let n = normalize(&live);
        assert_eq!(
            n,
            json!({"metadata": {"name": "x"}, "spec": {"a": 2, "b": 1}})
        );
        assert_eq!(
            serde_json::to_string(&n).unwrap(),
            r#"{"metadata":{"name":"x"},"spec":{"a":2,"b":1}}"#
        );
    }

    #[test]
    fn keys_are_sorted_at_every_depth_including_inside_lists() {
        let v = json!({"z": [{"y": 1, "x": {"q": 1, "p": 2}}], "a": {"c": 1, "b": 2}});
        assert_eq!(
            serde_json::to_string(&normalize(&v)).unwrap(),
            r#"{"a":{"b":2,"c":1},"z":[{"x":{"p":2,"q":1},"y":1}]}"#
        );
    }

    #[test]
    fn only_the_changed_leaf_is_reported_among_equal_siblings() {
        let before = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "i:1", "env": [{"name": "K", "value": "v"}]},
            {"name": "b", "image": "j:1"}]}}}, "metadata": {"name": "x"}});
        let mut after = before.clone();
        after["spec"]["template"]["spec"]["containers"][1]["image"] = json!("j:2");
        let ch = field_changes(&before, &after);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].path, "spec.template.spec.containers[1].image");
        assert_eq!(ch[0].before, Some(json!("j:1")));
        assert_eq!(ch[0].after, Some(json!("j:2")));
        assert!(field_changes(&before, &before.clone()).is_empty());
    }

    #[test]
    fn a_different_commit_annotation_is_no_change() {
        let a = json!({"metadata": {"annotations": {"drover.dev/commit": "a", "drover.dev/source": "d.yaml"}}});
        let b = json!({"metadata": {"annotations": {"drover.dev/commit": "b", "drover.dev/source": "d.yaml"}}});
        assert_eq!(normalize(&a), normalize(&b));
        assert_eq!(impact(&normalize(&a), &normalize(&b)), Impact::None);
    }

    #[test]
    fn impact_distinguishes_template_rollout_and_metadata() {
        let base = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"minReadySeconds": 0, "template": {"spec": {"x": 1}}}});
        let mut t = base.clone();
        t["spec"]["template"]["spec"]["x"] = json!(2);
        assert_eq!(impact(&base, &t), Impact::Restart);
        let mut r = base.clone();
        r["spec"]["minReadySeconds"] = json!(10);
        assert_eq!(impact(&base, &r), Impact::RolloutSettings);
        let mut m = base.clone();
        m["metadata"]["labels"]["a"] = json!("2");
        assert_eq!(impact(&base, &m), Impact::MetadataOnly);
    }

    #[test]
    fn secret_env_values_and_keys_are_masked_everywhere() {
        let a = json!({"env": [{"name": "API_TOKEN", "value": "s3cr3t-a"}, {"name": "LEVEL", "value": "info"}],
                       "config": {"dbPassword": "hunter2"},
                       "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]});
        let mut b = a.clone();
        b["env"][0]["value"] = json!("s3cr3t-b");
        b["env"][1]["value"] = json!("debug");
        let changes = field_changes(&a, &b);
        let text = serde_json::to_string(&changes).unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].path, "env[0].value");
        assert_eq!(changes[0].before, Some(json!(MASK)));
        assert_eq!(changes[0].after, Some(json!(MASK_CHANGED)));
        assert_eq!(changes[1].after, Some(json!("debug")));

        let d = unified_diff("x", Some(&a), Some(&b));
        assert!(!d.contains("s3cr3t") && !d.contains("hunter2"), "{d}");
        assert!(d.contains(MASK_CHANGED), "{d}");
        let masked = mask(&a, &BTreeSet::new());
        assert_eq!(
            masked["tolerations"], a["tolerations"],
            "toleration keys are not secrets"
        );
        assert_eq!(masked["env"][1], a["env"][1]);
    }

    #[test]
    fn secret_looking_flags_in_args_are_masked() {
        let a = json!({"args": ["--db-password=hunter2", "-o", "http_output.token=abc", "--level=info"]});
        let mut b = a.clone();
        b["args"][0] = json!("--db-password=hunter3");
        let m = mask(&a, &BTreeSet::new());
        assert_eq!(
            m["args"],
            json!([
                "--db-password=<masked>",
                "-o",
                "http_output.token=<masked>",
                "--level=info"
            ])
        );
        let changes = field_changes(&a, &b);
        assert_eq!(changes[0].before, Some(json!("--db-password=<masked>")));
        assert_eq!(
            changes[0].after,
            Some(json!("--db-password=<masked, changed>"))
        );
        let d = unified_diff("x", Some(&a), Some(&b));
        assert!(!d.contains("hunter") && !d.contains("abc"), "{d}");
    }

    #[test]
    fn a_secret_given_as_the_next_argument_is_masked() {
        let a = json!({"args": ["--password", "hunter2", "--db-token", "tok-1", "--level", "info", "-p", "5432"]});
        let m = mask(&a, &BTreeSet::new());
        assert_eq!(
            m["args"],
            json!([
                "--password",
                MASK,
                "--db-token",
                MASK,
                "--level",
                "info",
                "-p",
                "5432"
            ])
        );
        let mut b = a.clone();
        b["args"][1] = json!("hunter3");
        let changes = field_changes(&a, &b);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].before, Some(json!(MASK)));
        assert_eq!(changes[0].after, Some(json!(MASK_CHANGED)));
        let d = unified_diff("x", Some(&a), Some(&b));
        assert!(!d.contains("hunter") && !d.contains("tok-1"), "{d}");
        // A flag that gains a value in `after` masks it too.
        let c = json!({"args": ["--token", "fresh-secret"]});
        let text =
            serde_json::to_string(&field_changes(&json!({"args": ["--token"]}), &c)).unwrap();
        assert!(!text.contains("fresh-secret"), "{text}");
    }

    #[test]
    fn url_userinfo_authorization_headers_and_bearer_tokens_are_masked() {
        for (raw, want) in [
            (
                "postgres://app:hunter2@db:5432/x",
                "postgres://app:<masked>@db:5432/x",
            ),
            (
                "--dsn=mysql://root:pw@tcp(db)/",
                "--dsn=mysql://root:<masked>@tcp(db)/",
            ),
            (
                "https://ghp_abc123@github.com/o/r",
                "https://<masked>@github.com/o/r",
            ),
            (
                "a redis://:pw@r:6379 and amqp://u:p@q",
                "a redis://:<masked>@r:6379 and amqp://u:<masked>@q",
            ),
            ("Authorization: Bearer abc.def", "Authorization: <masked>"),
            ("--header=X-Api-Key: k123", "--header=X-Api-Key: <masked>"),
            ("Bearer abc.def", "Bearer <masked>"),
            ("basic dXNlcjpwYXNz", "basic <masked>"),
        ] {
            let v = json!({"args": [raw]});
            let m = mask(&v, &BTreeSet::new());
            assert_eq!(m["args"][0], json!(want), "{raw}");
        }
        for plain in [
            "registry.example/keycloak:26.0",
            "https://example.com/x@y",
            "nvidia.com/gpu:NoSchedule",
            "plain text: fine",
        ] {
            let v = json!({"image": plain});
            assert_eq!(mask(&v, &BTreeSet::new())["image"], json!(plain), "{plain}");
        }
        // As a probe header.
        let probe = json!({"httpGet": {"httpHeaders": [{"name": "Authorization", "value": "Bearer t0ken"}]}});
        let d = unified_diff("x", None, Some(&probe));
        assert!(!d.contains("t0ken"), "{d}");
        let changes = field_changes(
            &probe,
            &json!({"httpGet": {"httpHeaders": [{"name": "Authorization", "value": "Bearer t1ken"}]}}),
        );
        assert_eq!(changes[0].after, Some(json!(MASK_CHANGED)));
    }

    #[test]
    fn an_added_secret_subtree_is_masked() {
        let a = json!({});
        let b = json!({"annotations": {"vault-token": "abc"}, "x": {"apiKey": {"inner": "zzz"}}});
        let changes = field_changes(&a, &b);
        let text = serde_json::to_string(&changes).unwrap();
        assert!(!text.contains("abc") && !text.contains("zzz"), "{text}");
    }

    #[test]
    fn equal_objects_have_no_diff() {
        let a = json!({"a": [1, 2, {"b": "c"}]});
        assert!(field_changes(&a, &a).is_empty());
        assert_eq!(unified_diff("x", Some(&a), Some(&a)), "");
    }

    #[test]
    fn same_agrees_with_eq_whatever_the_key_order() {
        let values = [
            json!({"a": 1, "b": {"x": [1, {"p": 1, "q": 2}], "y": null}}),
            json!({"b": {"y": null, "x": [1, {"q": 2, "p": 1}]}, "a": 1}),
            json!({"b": {"y": null, "x": [1, {"q": 3, "p": 1}]}, "a": 1}),
            json!({"a": 1, "b": {"x": [1, {"p": 1, "q": 2}], "y": null}, "c": 0}),
            json!({"a": 1, "b": 2}),
            json!({"b": 1, "a": 2}),
            json!({"b": 2, "a": 1}),
            json!({"a": 1, "c": 2}),
            json!([1, 2]),
            json!([2, 1]),
            json!([]),
            json!({}),
            json!(null),
            json!(1.5),
            json!("1.5"),
        ];
        for x in &values {
            for y in &values {
                assert_eq!(same(x, y), x == y, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn paths_quote_keys_that_are_not_identifiers() {
        let a = json!({"metadata": {"labels": {"app.kubernetes.io/name": "a"}}});
        let b = json!({"metadata": {"labels": {"app.kubernetes.io/name": "b"}}});
        assert_eq!(
            field_changes(&a, &b)[0].path,
            r#"metadata.labels["app.kubernetes.io/name"]"#
        );
    }
}
