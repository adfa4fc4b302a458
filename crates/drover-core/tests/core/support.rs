//! What the core's tests share: reading a fleet directory of the repository into
//! [`SourceFile`]s (as the shell's working-tree reader does, without its I/O checks),
//! loading and rendering it, and an independent evaluator of rendered
//! `nodeSelectorTerms`.
//!
//! The evaluator deliberately does not use `drover_core::selector`: it reads the
//! rendered manifest JSON and applies Kubernetes' documented semantics, so the tests
//! compare the code under test against a second implementation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use drover_core::diag::Diagnostics;
use drover_core::fleet::Fleet;
use drover_core::limits::LIMITS;
use drover_core::load::SourceFile;
use drover_core::plan::{NodeInfo, parse_node_list};
use drover_core::render::{DesiredSet, RenderContext, render};
use drover_core::validate::load_fleet;
use serde_json::Value as JsonValue;

/// A fixed commit so that snapshots do not depend on the repository's history.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// The repository root (the workspace's, where `fixtures/` and `examples/` are).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Reads a fleet directory of the repository (relative to its root) the way
/// `drover::shell::source::read_worktree` hands it to the core: every `.yaml`/`.yml`
/// file, skipping names that start with a dot, as slash-separated paths sorted by
/// bytes. (The shell's checks on symlinks and sizes are the shell's tests' business;
/// the fixtures here hold neither.)
pub fn read_dir(rel: impl AsRef<Path>) -> Vec<SourceFile> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<SourceFile>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry"))
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let kind = e.file_type().expect("a file type");
            assert!(!kind.is_symlink(), "a fixture holds a symlink: {path}");
            if kind.is_dir() {
                walk(&e.path(), &path, out);
            } else if name.ends_with(".yaml")
                || name.ends_with(".yml")
                || path.starts_with("config/")
            {
                let bytes = std::fs::read(e.path()).expect("a fixture file");
                out.push(SourceFile { path, bytes });
            }
        }
    }
    let dir = repo_root().join(rel);
    let mut out = Vec::new();
    walk(&dir, "", &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Loads and validates a fleet directory.
pub fn load_dir(rel: impl AsRef<Path>) -> Result<Fleet, Diagnostics> {
    load_fleet(&read_dir(rel), &LIMITS)
}

/// Renders a set of files that must be a valid fleet; panics with the diagnostics
/// otherwise.
pub fn render_files(files: &[SourceFile]) -> DesiredSet {
    let fleet = load_fleet(files, &LIMITS).unwrap_or_else(|d| panic!("invalid fleet:\n{d}"));
    let ctx = RenderContext {
        commit: Some(COMMIT.into()),
    };
    render(&fleet, &ctx, LIMITS.max_rendered_bytes).expect("render")
}

/// Loads, validates and renders a fleet directory that must be valid.
pub fn render_dir(rel: impl AsRef<Path>) -> DesiredSet {
    render_files(&read_dir(rel))
}

/// Whether a pod of `manifest` (a DaemonSet) may run on a node with `labels`, by
/// its required node affinity: terms are ORed, a term's expressions ANDed, and no
/// required affinity at all admits every node.
pub fn admits(manifest: &JsonValue, labels: &BTreeMap<String, String>) -> bool {
    let Some(terms) = manifest.pointer(
        "/spec/template/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
    ) else {
        return true;
    };
    let terms = terms.as_array().expect("nodeSelectorTerms is a list");
    // Kubernetes: an empty list of terms matches nothing.
    terms.iter().any(|t| term_matches(t, labels))
}

fn term_matches(term: &JsonValue, labels: &BTreeMap<String, String>) -> bool {
    assert!(
        term.get("matchFields").is_none(),
        "drover renders no matchFields: {term}"
    );
    let exprs = term
        .get("matchExpressions")
        .and_then(JsonValue::as_array)
        .cloned()
        .unwrap_or_default();
    // Kubernetes: a term with no requirements matches no node.
    !exprs.is_empty() && exprs.iter().all(|e| expression_matches(e, labels))
}

fn expression_matches(e: &JsonValue, labels: &BTreeMap<String, String>) -> bool {
    let key = e["key"].as_str().expect("key");
    let op = e["operator"].as_str().expect("operator");
    let values: Vec<&str> = e
        .get("values")
        .and_then(JsonValue::as_array)
        .map(|v| {
            v.iter()
                .map(|x| x.as_str().expect("string value"))
                .collect()
        })
        .unwrap_or_default();
    let have = labels.get(key).map(String::as_str);
    match op {
        "In" => have.is_some_and(|v| values.contains(&v)),
        "NotIn" => have.is_none_or(|v| !values.contains(&v)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        "Gt" | "Lt" => {
            assert_eq!(values.len(), 1, "{op} takes exactly one value: {e}");
            let bound: i64 = values[0].parse().expect("integer bound");
            match have.and_then(|v| v.parse::<i64>().ok()) {
                None => false,
                Some(v) if op == "Gt" => v > bound,
                Some(v) => v < bound,
            }
        }
        other => panic!("unknown node selector operator {other}"),
    }
}

/// The nodes of `examples/nodes.yaml` (a `kubectl get nodes -o yaml` snapshot).
pub fn example_nodes() -> Vec<NodeInfo> {
    let text = std::fs::read_to_string(repo_root().join("examples/nodes.yaml"))
        .expect("examples/nodes.yaml");
    parse_node_list(&text).expect("a node list")
}

/// `key=value` pairs as a label map.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
