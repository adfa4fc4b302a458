//! Validation of a daemon's config files (`spec.configFiles` and
//! `overrides.<group>.configFiles`), and reading their files from `config/`.
//!
//! Owns: the entry rules (names, mount paths, containers, the directory or files
//! each reads), the ConfigMap rules of what they read (keys, the 1 MiB limit), and
//! resolving each group's files. Must not: render (see [`crate::render`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::pod_template::mount_path_rule;
use super::{DaemonDoc, Validator};
use crate::diag::did_you_mean;
use crate::fleet::{ConfigEntry, ConfigFile};
use crate::load::CONFIG_DIR;
use crate::model::DaemonSpec;
use crate::syntax;
use serde_json::Value as JsonValue;

/// The most a ConfigMap may hold (data and binaryData together), as the API server
/// counts it: 1 MiB.
pub const MAX_CONFIG_MAP_BYTES: usize = 1024 * 1024;

/// Kubernetes' rule for a ConfigMap key: `[-._a-zA-Z0-9]+`, at most 253
/// characters, not `.` or `..`.
pub fn config_map_key(k: &str) -> Result<(), String> {
    if k.is_empty() {
        return Err("a ConfigMap key must not be empty".into());
    }
    if k.len() > 253 {
        return Err(format!(
            "a ConfigMap key is at most 253 characters (is {})",
            k.len()
        ));
    }
    if k == "." || k == ".." {
        return Err("a ConfigMap key may not be `.` or `..`".into());
    }
    if let Some(c) = k
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "`{}` is not a ConfigMap key: `{}` is not one of letters, digits, `-`, `_` and `.`",
            crate::diag::escape_control(k),
            crate::diag::escape_control(&c.to_string())
        ));
    }
    Ok(())
}

/// A path as written in `from` or `files`: relative to the fleet root, under
/// `config/`, without `.` or `..` components. Returns it without a trailing `/`.
fn config_path(p: &str) -> Result<String, String> {
    let trimmed = p.trim_end_matches('/');
    if trimmed.starts_with('/') {
        return Err(format!(
            "`{p}` must be relative to the fleet's root (config/...)"
        ));
    }
    if trimmed
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!("`{p}` must not have empty, `.` or `..` components"));
    }
    if !crate::load::is_config_path(trimmed) {
        return Err(format!(
            "`{p}` is not under {CONFIG_DIR}/: config files are read from there only"
        ));
    }
    Ok(trimmed.to_string())
}

/// What a daemon's config entries must not clash with: its containers' names (the
/// main one first), its other volumes (name → the field declaring it), and each
/// container's mount paths (container → path → the field mounting it), from the
/// short form and podTemplate.
pub(super) struct PodNames {
    pub containers: Vec<String>,
    pub volumes: BTreeMap<String, String>,
    pub mounts: BTreeMap<String, BTreeMap<String, String>>,
}

pub(super) fn pod_names(s: &DaemonSpec, main: &str) -> PodNames {
    let mut containers = Vec::new();
    let mut mounts: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (prefix, _, c) in s.short_containers(main) {
        containers.push(c.name.clone());
        let paths = mounts.entry(c.name.clone()).or_default();
        for (j, m) in c.mounts.iter().enumerate() {
            let p = m.mount_path.trim_end_matches('/');
            paths
                .entry(if p.is_empty() {
                    "/".into()
                } else {
                    p.to_string()
                })
                .or_insert_with(|| format!("{prefix}.mounts[{j}]"));
        }
    }
    let mut volumes = super::pod_spec::short_volume_names(s, main);
    if let Some(pt) = &s.pod_template {
        for (list, field) in [
            ("containers", "containers"),
            ("initContainers", "initContainers"),
        ] {
            for (i, c) in pt
                .pointer(&format!("/spec/{list}"))
                .and_then(JsonValue::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let Some(name) = c.get("name").and_then(JsonValue::as_str) else {
                    continue;
                };
                if !containers.iter().any(|n| n == name) {
                    containers.push(name.to_string());
                }
                let paths = mounts.entry(name.to_string()).or_default();
                for (j, m) in c
                    .get("volumeMounts")
                    .and_then(JsonValue::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if let Some(p) = m.get("mountPath").and_then(JsonValue::as_str) {
                        let p = p.trim_end_matches('/');
                        paths
                            .entry(if p.is_empty() {
                                "/".into()
                            } else {
                                p.to_string()
                            })
                            .or_insert_with(|| {
                                format!("spec.podTemplate.spec.{field}[{i}].volumeMounts[{j}]")
                            });
                    }
                }
            }
        }
        for (i, v) in pt
            .pointer("/spec/volumes")
            .and_then(JsonValue::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(n) = v.get("name").and_then(JsonValue::as_str) {
                volumes
                    .entry(n.to_string())
                    .or_insert_with(|| format!("spec.podTemplate.spec.volumes[{i}]"));
            }
        }
    }
    PodNames {
        containers,
        volumes,
        mounts,
    }
}

impl Validator<'_> {
    /// The daemon's config-file entries with their files read, each group's
    /// override applied. `container_names` are the short form's and podTemplate's
    /// containers (the main one first); `volume_names` the volumes declared
    /// elsewhere, with the field that declares each; `mounts` each container's mount
    /// paths with the field that mounts each.
    pub(super) fn config_files(
        &mut self,
        d: &DaemonDoc,
        main: &str,
        placement: &[String],
    ) -> Vec<ConfigEntry> {
        let s = &d.value.spec;
        if s.config_files.is_empty() && s.overrides.values().all(|o| o.config_files.is_empty()) {
            return Vec::new();
        }
        let PodNames {
            containers: container_names,
            volumes: volume_names,
            mounts,
        } = pod_names(s, main);
        let daemon = &d.value.metadata.name;
        let mut out = Vec::new();
        let mut names: BTreeMap<&str, String> = BTreeMap::new();
        // Mount paths taken per container, the config entries' included.
        let mut taken = mounts;
        for (i, e) in s.config_files.iter().enumerate() {
            let f = format!("spec.configFiles[{i}]");
            let before = self.diags.len();
            if let Err(m) = syntax::dns_label(&e.name) {
                self.push(d.diag(
                    &format!("{f}.name"),
                    format!("`{}` is not a volume name: {m}", e.name),
                ));
            }
            if let Some(first) = names.get(e.name.as_str()) {
                self.push(d.diag(
                    &format!("{f}.name"),
                    format!("config entry `{}` is also {first}", e.name),
                ));
            } else {
                names.insert(&e.name, f.clone());
            }
            if let Some(other) = volume_names.get(&e.name) {
                self.push(d.diag(
                    &format!("{f}.name"),
                    format!(
                        "volume `{}` is also declared by {other} (line {}): a config entry is a volume of its own name",
                        e.name,
                        d.index.pos(other).line
                    ),
                ));
            }
            let containers: Vec<String> = match &e.containers {
                None => vec![main.to_string()],
                Some(cs) if cs.is_empty() => {
                    self.push(d.diag(
                        &format!("{f}.containers"),
                        "an empty list mounts the files nowhere; leave it out for the main container",
                    ));
                    Vec::new()
                }
                Some(cs) => {
                    for (j, c) in cs.iter().enumerate() {
                        if !container_names.contains(c) {
                            self.push(
                                d.diag(
                                    &format!("{f}.containers[{j}]"),
                                    format!("no container of the daemon is named `{c}`"),
                                )
                                .with_hint(did_you_mean(
                                    c,
                                    container_names.iter().map(String::as_str),
                                )),
                            );
                        }
                    }
                    cs.clone()
                }
            };
            let path = e.mount_path.trim_end_matches('/');
            let path = if path.is_empty() { "/" } else { path };
            match mount_path_rule(&e.mount_path) {
                Err(m) => self.push(d.diag(&format!("{f}.mountPath"), m)),
                Ok(()) => {
                    for c in &containers {
                        let paths = taken.entry(c.clone()).or_default();
                        if let Some(other) = paths.get(path) {
                            self.push(d.diag(
                                &format!("{f}.mountPath"),
                                format!(
                                    "`{}` is already mounted in container `{c}` by {other}",
                                    e.mount_path
                                ),
                            ));
                        } else {
                            paths.insert(path.to_string(), f.clone());
                        }
                    }
                }
            }
            let default_dir = (e.from.is_none() && e.files.is_empty())
                .then(|| format!("{CONFIG_DIR}/{daemon}/{}", e.name));
            let files = self.read_files(d, &f, e.from.as_deref(), default_dir.as_deref(), &e.files);
            if self.diags.len() == before {
                self.size(d, &f, &files);
                out.push(ConfigEntry {
                    name: e.name.clone(),
                    line: d.index.pos(&f).line,
                    mount_path: e.mount_path.clone(),
                    containers,
                    files,
                    per_group: BTreeMap::new(),
                });
            }
        }
        for (g, o) in &s.overrides {
            let og = super::super::yaml::join_key("spec.overrides", g);
            let mut seen = BTreeSet::new();
            for (i, co) in o.config_files.iter().enumerate() {
                let f = format!("{og}.configFiles[{i}]");
                if !seen.insert(co.name.as_str()) {
                    self.push(d.diag(
                        &format!("{f}.name"),
                        format!(
                            "config entry `{}` is overridden twice for group `{g}`",
                            co.name
                        ),
                    ));
                    continue;
                }
                if !s.config_files.iter().any(|e| e.name == co.name) {
                    self.push(
                        d.diag(
                            &format!("{f}.name"),
                            format!("no entry of spec.configFiles is named `{}`", co.name),
                        )
                        .with_hint(did_you_mean(
                            &co.name,
                            s.config_files.iter().map(|e| e.name.as_str()),
                        )),
                    );
                    continue;
                }
                if co.from.is_none() && co.files.is_empty() {
                    self.push(d.diag(
                        &f,
                        "an override of a config entry needs `from` or `files`: the files it replaces or adds",
                    ));
                    continue;
                }
                let before = self.diags.len();
                let extra = self.read_files(d, &f, co.from.as_deref(), None, &co.files);
                if self.diags.len() != before || !placement.contains(g) {
                    continue;
                }
                if let Some(entry) = out.iter_mut().find(|e| e.name == co.name) {
                    let mut merged = entry.files.clone();
                    merged.extend(extra);
                    self.size(d, &f, &merged);
                    entry.per_group.insert(g.clone(), merged);
                }
            }
        }
        out
    }

    /// The files of `from` (or `default_dir`, when the entry names neither a
    /// directory nor files) and of `files`, by key; a missing directory or file, a
    /// nested directory and a file name that is no ConfigMap key are errors.
    fn read_files(
        &mut self,
        d: &DaemonDoc,
        f: &str,
        from: Option<&str>,
        default_dir: Option<&str>,
        files: &BTreeMap<String, String>,
    ) -> BTreeMap<String, ConfigFile> {
        let mut out = BTreeMap::new();
        let dir = match (from, default_dir) {
            (Some(p), _) => match config_path(p) {
                Ok(p) => Some((p, format!("{f}.from"))),
                Err(m) => {
                    self.push(d.diag(&format!("{f}.from"), m));
                    None
                }
            },
            (None, Some(p)) => Some((p.to_string(), format!("{f}.name"))),
            (None, None) => None,
        };
        if let Some((dir, field)) = dir {
            let prefix = format!("{dir}/");
            let mut any = false;
            let config = self.config;
            for (path, bytes) in config.range(prefix.clone()..) {
                let Some(rest) = path.strip_prefix(&prefix) else {
                    break;
                };
                any = true;
                if rest.contains('/') {
                    self.push(d.diag(
                        &field,
                        format!(
                            "{path}: a config directory holds files only (its files are the ConfigMap's keys); {dir}/ has a directory in it"
                        ),
                    ));
                    continue;
                }
                match config_map_key(rest) {
                    Err(m) => self.push(d.diag(&field, format!("{path}: {m}"))),
                    Ok(()) => {
                        out.insert(
                            rest.to_string(),
                            ConfigFile {
                                source: path.clone(),
                                bytes: Arc::clone(bytes),
                            },
                        );
                    }
                }
            }
            if !any {
                let hint = if from.is_none() {
                    Some(format!(
                        "the default directory is {CONFIG_DIR}/<daemon>/<name>/ (as drover import writes it); name another with `from`, or single files with `files`"
                    ))
                } else {
                    None
                };
                self.push(
                    d.diag(
                        &field,
                        format!("the config directory {dir}/ is missing or holds no file"),
                    )
                    .with_hint(hint),
                );
            }
        }
        for (key, path) in files {
            let kf = super::super::yaml::join_key(&format!("{f}.files"), key);
            if let Err(m) = config_map_key(key) {
                self.push(d.diag(&kf, m));
                continue;
            }
            let path = match config_path(path) {
                Ok(p) => p,
                Err(m) => {
                    self.push(d.diag(&kf, m));
                    continue;
                }
            };
            let config = self.config;
            match config.get(&path) {
                Some(bytes) => {
                    out.insert(
                        key.clone(),
                        ConfigFile {
                            source: path,
                            bytes: Arc::clone(bytes),
                        },
                    );
                }
                None => self.push(d.diag(&kf, format!("the config file {path} is missing"))),
            }
        }
        out
    }

    /// The 1 MiB a ConfigMap may hold.
    fn size(&mut self, d: &DaemonDoc, f: &str, files: &BTreeMap<String, ConfigFile>) {
        let total: usize = files
            .iter()
            .map(|(k, v)| k.len() + crate::render::config_value_len(&v.bytes))
            .sum();
        if total > MAX_CONFIG_MAP_BYTES {
            self.push(d.diag(
                f,
                format!(
                    "its files make a ConfigMap of {total} bytes, more than the {MAX_CONFIG_MAP_BYTES} (1 MiB) Kubernetes allows"
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_map_keys_are_letters_digits_dash_underscore_and_dot() {
        assert!(config_map_key("fluent-bit.conf").is_ok());
        assert!(config_map_key("parsers_gpu.conf").is_ok());
        assert!(config_map_key("a b").is_err());
        assert!(config_map_key("..").is_err());
        assert!(config_map_key(&"x".repeat(254)).is_err());
    }

    #[test]
    fn config_paths_must_stay_under_config() {
        assert_eq!(
            config_path("config/agent/x/").as_deref(),
            Ok("config/agent/x")
        );
        assert!(config_path("/config/x").is_err());
        assert!(config_path("config/../daemons").is_err());
        assert!(config_path("daemons/x").is_err());
        assert!(config_path("config").is_err());
    }
}
