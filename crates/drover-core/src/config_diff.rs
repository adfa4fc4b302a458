//! How a plan shows config files (docs/config-files.md): each changed file's own
//! unified diff, secrets masked, for the groups whose DaemonSets mount it; and the
//! DaemonSets' own diffs without the hashed ConfigMap names, which say nothing a
//! reviewer can read.
//!
//! Owns: pairing two renders' config files by (daemon, entry, group, file), the
//! masking of secret-looking lines, and the placeholder that stands for a hashed
//! name. Must not: read anything but its arguments.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;

use crate::diff::{MASK, MASK_CHANGED, is_secret_key};
use crate::fleet::{ConfigFile, Fleet};
use crate::plan::{Action, Plan};
use crate::render::DesiredSet;

/// One config file that is created, changed or removed, for the groups listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigFilePlan {
    pub daemon: String,
    /// The `spec.configFiles` entry.
    pub entry: String,
    /// The file's key (its name in the mounted directory).
    pub file: String,
    /// The groups whose DaemonSets see this change, in fleet group order.
    pub groups: Vec<String>,
    pub action: Action,
    /// The file in the repository (the head's, for a delete the base's).
    pub source: String,
    /// Unified diff of the file's text, secret-looking values masked; for a file
    /// that is not UTF-8, one line saying so and the sizes.
    pub diff: String,
}

impl ConfigFilePlan {
    /// `entry/file`, as the DaemonSets' actions list it.
    pub fn id(&self) -> String {
        format!("{}/{}", self.entry, self.file)
    }
}

/// `(daemon, entry, group)` → the files that group's DaemonSet mounts.
fn mounted(set: &DesiredSet) -> BTreeMap<(String, String, String), BTreeMap<String, ConfigFile>> {
    let mut out = BTreeMap::new();
    for c in &set.config_maps {
        for g in &c.groups {
            out.insert(
                (c.daemon.clone(), c.entry.clone(), g.clone()),
                c.files.clone(),
            );
        }
    }
    out
}

/// The config files that differ between `base` (none: everything is new) and
/// `head`, one entry per (daemon, entry, file, change) with the groups it reaches,
/// sorted by daemon, entry and file. Groups are ordered as `fleet` (the head's)
/// orders them.
pub fn plan_config_files(
    fleet: &Fleet,
    base: Option<&DesiredSet>,
    head: &DesiredSet,
) -> Vec<ConfigFilePlan> {
    let before = base.map(mounted).unwrap_or_default();
    let after = mounted(head);
    let keys: BTreeSet<&(String, String, String)> = before.keys().chain(after.keys()).collect();
    let empty = BTreeMap::new();
    // (daemon, entry, file, before bytes, after bytes) → groups and the sources.
    type Change<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a [u8]>,
        Option<&'a [u8]>,
    );
    let mut changes: BTreeMap<Change<'_>, (Vec<String>, String)> = BTreeMap::new();
    for k in keys {
        let (daemon, entry, group) = k;
        let b = before.get(k).unwrap_or(&empty);
        let a = after.get(k).unwrap_or(&empty);
        let files: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
        for f in files {
            let (bf, af) = (b.get(f), a.get(f));
            let (bb, ab) = (bf.map(|x| &x.bytes[..]), af.map(|x| &x.bytes[..]));
            if bb == ab {
                continue;
            }
            let source = af.or(bf).map(|x| x.source.clone()).unwrap_or_default();
            let e = changes
                .entry((daemon, entry, f, bb, ab))
                .or_insert_with(|| (Vec::new(), source));
            e.0.push(group.clone());
        }
    }
    let order: BTreeMap<&str, usize> = fleet
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.name.as_str(), i))
        .collect();
    let mut out: Vec<ConfigFilePlan> = changes
        .into_iter()
        .map(|((daemon, entry, file, b, a), (mut groups, source))| {
            groups.sort_by_key(|g| order.get(g.as_str()).copied().unwrap_or(usize::MAX));
            let action = match (b, a) {
                (None, _) => Action::Create,
                (_, None) => Action::Delete,
                _ => Action::Update,
            };
            ConfigFilePlan {
                daemon: daemon.to_string(),
                entry: entry.to_string(),
                file: file.to_string(),
                groups,
                action,
                diff: file_diff(&format!("{entry}/{file}"), b, a),
                source,
            }
        })
        .collect();
    out.sort_by(|x, y| {
        (&x.daemon, &x.entry, &x.file, &x.groups).cmp(&(&y.daemon, &y.entry, &y.file, &y.groups))
    });
    out
}

/// Sets each DaemonSet action's `config_files`: the files of `plan.config_files`
/// its daemon's group sees change.
pub fn annotate_actions(plan: &mut Plan) {
    let files = std::mem::take(&mut plan.config_files);
    for s in &mut plan.stages {
        for a in &mut s.actions {
            a.config_files = files
                .iter()
                .filter(|f| f.daemon == a.daemon && f.groups.contains(&a.group))
                .map(ConfigFilePlan::id)
                .collect();
        }
    }
    plan.config_files = files;
}

/// The unified diff of one file, masked; a file that is not UTF-8 shows as one line.
fn file_diff(name: &str, before: Option<&[u8]>, after: Option<&[u8]>) -> String {
    fn text(b: Option<&[u8]>) -> Option<Result<&str, std::str::Utf8Error>> {
        b.map(std::str::from_utf8)
    }
    let (old, new) = match (text(before), text(after)) {
        (Some(Err(_)), _) | (_, Some(Err(_))) => {
            let size =
                |b: Option<&[u8]>| b.map_or("none".to_string(), |b| format!("{} bytes", b.len()));
            return format!(
                "binary file {name} changed ({} -> {})\n",
                size(before),
                size(after)
            );
        }
        (b, a) => (
            b.map(|r| r.unwrap_or_default()),
            a.map(|r| r.unwrap_or_default()),
        ),
    };
    let old_masked = old.map(|t| mask_text(t, None)).unwrap_or_default();
    let new_masked = new.map(|t| mask_text(t, old)).unwrap_or_default();
    let header = |side: &str, present: bool| {
        if present {
            format!("{side}/{name}")
        } else {
            "/dev/null".to_string()
        }
    };
    similar::TextDiff::from_lines(&old_masked, &new_masked)
        .unified_diff()
        .context_radius(3)
        .header(&header("a", old.is_some()), &header("b", new.is_some()))
        .to_string()
}

/// A config file's text with each secret-looking value masked: a line
/// `<key><sep><value>` (`password = x`, `api_key: x`, `HTTP_Passwd x`, `"token": "x"`)
/// whose key looks secret keeps its key and separator. The value becomes
/// [`MASK_CHANGED`] when `before` is given and has no line with that key and value,
/// [`MASK`] otherwise, so that a changed secret still shows as a changed line.
pub fn mask_text(text: &str, before: Option<&str>) -> String {
    let old: BTreeSet<(String, String)> = before
        .map(|b| {
            b.lines()
                .filter_map(secret_line)
                .map(|(k, _, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        match secret_line(body) {
            Some((key, head, value)) => {
                let mask =
                    if before.is_some() && !old.contains(&(key.to_string(), value.to_string())) {
                        MASK_CHANGED
                    } else {
                        MASK
                    };
                out.push_str(head);
                out.push_str(mask);
            }
            None => out.push_str(&crate::diff::mask_in_text(body)),
        }
        out.push_str(nl);
    }
    out
}

/// A line that assigns a secret-looking key: `(key, the line up to the value, the
/// value)`. The key is the first token, without quotes or leading dashes; the
/// separator `=`, `:` or whitespace.
fn secret_line(line: &str) -> Option<(&str, &str, &str)> {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    let key_end = trimmed
        .find(|c: char| c == '=' || c == ':' || c.is_whitespace())
        .filter(|i| *i > 0)?;
    let key = trimmed[..key_end].trim_matches(|c| c == '"' || c == '\'' || c == '-');
    if key.is_empty() || !is_secret_key(key) || key.starts_with('#') {
        return None;
    }
    let rest = &trimmed[key_end..];
    let value_start = rest.find(|c: char| !(c == '=' || c == ':' || c.is_whitespace()))?;
    let value = rest[value_start..].trim_end();
    if value.is_empty() {
        return None;
    }
    let head = &line[..indent + key_end + value_start];
    Some((key, head, value))
}

/// The config ConfigMaps of `set` as companion objects (a daemon's `ConfigMap`s), so
/// that the live plan lists, dry-runs, applies and prunes them on the companions'
/// path (docs/config-files.md).
pub fn as_companions(set: &DesiredSet) -> Vec<crate::companion::Companion> {
    set.config_maps
        .iter()
        .map(|c| crate::companion::Companion {
            path: c.source.clone(),
            line: 1,
            owner: Some(c.daemon.clone()),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some(set.namespace.clone()),
            name: c.name.clone(),
            manifest: c.manifest.clone(),
        })
        .collect()
}

/// The files of a live ConfigMap: `data` as text, `binaryData` decoded (a value
/// that is not base64 is kept as its text).
pub fn files_of(cm: &JsonValue) -> BTreeMap<String, ConfigFile> {
    use base64::Engine as _;
    let mut out = BTreeMap::new();
    let name = cm
        .pointer("/metadata/name")
        .and_then(JsonValue::as_str)
        .unwrap_or_default();
    for (field, binary) in [("data", false), ("binaryData", true)] {
        let Some(m) = cm.get(field).and_then(JsonValue::as_object) else {
            continue;
        };
        for (k, v) in m {
            let Some(t) = v.as_str() else { continue };
            let bytes = if binary {
                base64::engine::general_purpose::STANDARD
                    .decode(t)
                    .unwrap_or_else(|_| t.as_bytes().to_vec())
            } else {
                t.as_bytes().to_vec()
            };
            out.insert(
                k.clone(),
                ConfigFile {
                    source: format!("ConfigMap/{name}"),
                    bytes: std::sync::Arc::from(bytes),
                },
            );
        }
    }
    out
}

/// The configMap names the volumes of a DaemonSet's pod template refer to.
pub fn referenced_config_maps(ds: &JsonValue) -> Vec<String> {
    ds.pointer("/spec/template/spec/volumes")
        .and_then(JsonValue::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/configMap/name").and_then(JsonValue::as_str))
        .map(str::to_string)
        .collect()
}

/// Moves the config ConfigMaps out of `plan.companions` into `plan.config_maps`:
/// `config` names every config ConfigMap, desired or live (the `drover.dev/config`
/// label). Their diffs are dropped (the files' own diffs say it; the blob and the
/// hash are never shown); each desired one gets the groups that mount it, so that
/// it is applied before the first stage that writes one of those groups' DaemonSets.
/// A live one git no longer renders is deleted only when `referenced` (the
/// ConfigMaps the live DaemonSets, which are the rollback targets, and the desired
/// ones mount) does not name it: it is left out of the plan otherwise.
pub fn split_config_companions(
    plan: &mut Plan,
    desired: &DesiredSet,
    config: &BTreeSet<String>,
    referenced: &BTreeSet<String>,
) {
    let groups: BTreeMap<&str, &Vec<String>> = desired
        .config_maps
        .iter()
        .map(|c| (c.name.as_str(), &c.groups))
        .collect();
    let (mut maps, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut plan.companions)
        .into_iter()
        .partition(|c| {
            c.kind == "ConfigMap"
                && c.api_version == "v1"
                && c.namespace.as_deref() == Some(desired.namespace.as_str())
                && (groups.contains_key(c.name.as_str()) || config.contains(&c.object))
        });
    plan.companions = rest;
    maps.retain(|c| c.action != Action::Delete || !referenced.contains(&c.name));
    for c in &mut maps {
        c.diff.clear();
        c.changes.clear();
        c.groups = groups
            .get(c.name.as_str())
            .map(|g| (*g).clone())
            .unwrap_or_default();
    }
    plan.config_maps = maps;
}

/// What a hashed config ConfigMap name shows as in a DaemonSet's diff: the entry,
/// not the hash.
pub fn placeholder(entry: &str) -> String {
    format!("<config files: {entry}>")
}

/// `obj` (a DaemonSet) with the configMap name of each volume of `entries` that
/// carries a content hash (`<entry>-<10 hex>`) replaced by [`placeholder`]: both
/// sides of a comparison so show a config change as no volume change (the change is
/// in the action's `config_files`).
pub fn without_hashed_names(obj: &mut JsonValue, entries: &[String]) {
    let Some(vols) = obj
        .pointer_mut("/spec/template/spec/volumes")
        .and_then(JsonValue::as_array_mut)
    else {
        return;
    };
    for v in vols {
        let Some(name) = v
            .get("name")
            .and_then(JsonValue::as_str)
            .map(str::to_string)
        else {
            continue;
        };
        if !entries.contains(&name) {
            continue;
        }
        let Some(cm) = v.pointer_mut("/configMap/name") else {
            continue;
        };
        if cm
            .as_str()
            .is_some_and(|n| crate::render::is_config_map_name(n, &name))
        {
            *cm = JsonValue::String(placeholder(&name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_looking_line_keeps_its_key_and_masks_its_value() {
        let t = "[OUTPUT]\n    Name  http\n    HTTP_Passwd hunter2\n    api_key = abc\n    token: \"t0k\"\n    Port 443\n";
        let m = mask_text(t, None);
        assert!(m.contains("    HTTP_Passwd <masked>\n"), "{m}");
        assert!(m.contains("    api_key = <masked>\n"), "{m}");
        assert!(m.contains("    token: <masked>\n"), "{m}");
        assert!(m.contains("    Port 443\n"), "{m}");
        assert!(!m.contains("hunter2") && !m.contains("abc") && !m.contains("t0k"));
    }

    #[test]
    fn a_changed_secret_shows_as_a_changed_line_without_its_value() {
        let d = file_diff(
            "e/out.conf",
            Some(b"user admin\npassword old-secret\n"),
            Some(b"user admin\npassword new-secret\n"),
        );
        assert!(d.contains("-password <masked>\n"), "{d}");
        assert!(d.contains("+password <masked, changed>\n"), "{d}");
        assert!(
            !d.contains("secret\n") && !d.contains("old-") && !d.contains("new-"),
            "{d}"
        );
    }

    #[test]
    fn a_url_with_a_password_in_it_is_masked_too() {
        let m = mask_text("Host https://user:pa55@logs.example.com\n", None);
        assert!(!m.contains("pa55"), "{m}");
    }

    #[test]
    fn a_binary_file_is_named_and_sized_never_shown() {
        let d = file_diff("e/blob", Some(&[0xff, 1]), Some(&[0xff, 2, 3]));
        assert_eq!(d, "binary file e/blob changed (2 bytes -> 3 bytes)\n");
    }

    #[test]
    fn only_hashed_config_map_names_of_the_entries_are_replaced() {
        let mut ds = serde_json::json!({"spec": {"template": {"spec": {"volumes": [
            {"name": "cfg", "configMap": {"name": "cfg-0123456789"}},
            {"name": "other", "configMap": {"name": "other-0123456789"}},
            {"name": "cfg2", "configMap": {"name": "cfg2-plain"}},
        ]}}}});
        without_hashed_names(&mut ds, &["cfg".into(), "cfg2".into()]);
        let v = &ds["spec"]["template"]["spec"]["volumes"];
        assert_eq!(v[0]["configMap"]["name"], "<config files: cfg>");
        assert_eq!(v[1]["configMap"]["name"], "other-0123456789");
        assert_eq!(v[2]["configMap"]["name"], "cfg2-plain");
    }
}
