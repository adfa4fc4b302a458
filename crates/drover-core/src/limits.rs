//! Documented input limits, enforced before expensive work.
//!
//! Chosen generously for real fleets (hundreds of daemons, dozens of groups) and low
//! enough that a hostile repository cannot exhaust memory or time. The README's
//! "Limits" table mirrors these numbers; change both together.

use std::time::Duration;

/// The limits applied while loading, validating and rendering a fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single `*.yaml` file.
    pub max_file_bytes: u64,
    /// Most `*.yaml` files in the fleet tree.
    pub max_files: usize,
    /// Sum of all fleet files.
    pub max_total_bytes: u64,
    /// Most YAML documents in one file.
    pub max_documents_per_file: usize,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most nodes a document may expand to once aliases are resolved.
    pub max_expanded_nodes: usize,
    /// Most node groups in a fleet.
    pub max_groups: usize,
    /// Most daemons in a fleet.
    pub max_daemons: usize,
    /// Most `nodeSelectorTerms` one DaemonSet's affinity may expand to.
    pub max_negation_terms: usize,
    /// Sum of the rendered manifests' YAML.
    pub max_rendered_bytes: usize,
    /// Longest `bake` of a stage: a bake holds every later change back.
    pub max_stage_bake: Duration,
    /// Longest `timeout` of a stage.
    pub max_stage_timeout: Duration,
}

/// The limits drover runs with.
pub const LIMITS: Limits = Limits {
    max_file_bytes: 1024 * 1024,
    max_files: 5_000,
    max_total_bytes: 32 * 1024 * 1024,
    max_documents_per_file: 1_000,
    max_depth: 64,
    max_expanded_nodes: 1_000_000,
    max_groups: 256,
    max_daemons: 5_000,
    max_negation_terms: 64,
    max_rendered_bytes: 64 * 1024 * 1024,
    max_stage_bake: Duration::from_secs(24 * 3600),
    max_stage_timeout: Duration::from_secs(24 * 3600),
};
