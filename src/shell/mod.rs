//! The imperative shell: git, the Kubernetes API, the clock, the audit log.
//!
//! Everything here does I/O; decisions are made by the pure core.

pub mod apply;
pub mod cluster;
pub mod live;
pub mod progress;
pub mod rollout;
pub mod source;
