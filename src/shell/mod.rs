//! The imperative shell: git, the Kubernetes API, the clock, the audit log.
//!
//! Everything here does I/O; decisions are made by the pure core.

pub mod source;
