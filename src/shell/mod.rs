//! The imperative shell: git, the Kubernetes API, the clock, the audit log.
//!
//! Everything here does I/O; decisions are made by the pure core.

pub mod anchor;
pub mod apply;
pub mod approval;
pub mod audit;
pub mod clock;
pub mod cluster;
pub mod companions;
pub mod control;
pub mod cstate;
pub mod drive;
pub mod gitsync;
pub mod lease;
pub mod live;
pub mod metrics;
pub mod observe;
pub mod pipeline;
pub mod progress;
pub mod replace;
pub mod rollout;
pub mod signature;
pub mod source;
pub mod state;
pub mod sync;
#[cfg(test)]
pub(crate) mod test_support;
pub mod watch;
pub mod webhook;
