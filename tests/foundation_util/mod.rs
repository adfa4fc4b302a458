//! Helpers shared by the foundation tests (issue 2): loading a fleet directory the
//! way the CLI does, and an independent evaluator of rendered `nodeSelectorTerms`.
//!
//! The evaluator deliberately does not use `drover::core::selector`: it reads the
//! rendered manifest JSON and applies Kubernetes' documented semantics, so the tests
//! compare the code under test against a second implementation.
#![allow(dead_code, reason = "each test crate uses a different subset")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use drover::core::diag::Diagnostics;
use drover::core::fleet::Fleet;
use drover::core::limits::LIMITS;
use drover::core::load::SourceFile;
use drover::core::render::{DesiredSet, RenderContext, render};
use drover::core::validate::load_fleet;
use serde_json::Value as JsonValue;

/// A fixed commit so that snapshots do not depend on the repository's history.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// The repository root (where `Cargo.toml` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reads a fleet directory from the filesystem (relative to the repository root).
pub fn read_dir(rel: impl AsRef<Path>) -> Vec<SourceFile> {
    let dir = repo_root().join(rel);
    drover::shell::source::read_worktree(&dir, &LIMITS)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
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

/// `key=value` pairs as a label map.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
