//! drover: a GitOps reconciler for Kubernetes DaemonSets.
//!
//! `core` is the pure part, the `drover-core` crate (model, validation, rendering, diff,
//! plan, rollout decisions, audit chain, reports); `shell` does
//! the I/O (git, the Kubernetes API, the clock, the audit log); `commands` wires them
//! into the CLI.
#![forbid(unsafe_code)]

pub mod commands;
/// The pure core, its own crate ([`drover_core`]); re-exported so `drover::core::…`
/// paths keep working for the shell, the tests and the benches.
pub use drover_core as core;
pub mod logging;
pub mod settings;
pub mod shell;
pub mod ui;

/// `drover --version`: the crate version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("DROVER_GIT_SHA"), ")");
