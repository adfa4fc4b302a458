//! drover: a GitOps reconciler for Kubernetes DaemonSets.
//!
//! `core` is the pure part (model, validation, rendering, diff, plan); `shell` does
//! the I/O (git, the Kubernetes API, the clock, the audit log); `commands` wires them
//! into the CLI.
#![forbid(unsafe_code)]

pub mod commands;
pub mod core;
pub mod logging;
pub mod shell;
pub mod ui;

/// `drover --version`: the crate version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("DROVER_GIT_SHA"), ")");
