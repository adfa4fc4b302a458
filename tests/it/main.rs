//! drover's integration tests: one binary (in the manner of uv's `tests/it`), one
//! harness ([`harness`]), a module per area.
//!
//! Each test runs with the least power that proves its point: the CLI tests and the
//! hostile-input refusals run the binary without a cluster; the testbed tests attach
//! to the shared local control plane (`DROVER_TESTBED_KUBECONFIG`, or the instance
//! `cargo-test`, started if needed), each in its own namespace; the outage test runs
//! a control plane of its own. The pure core's tests are drover-core's
//! (`crates/drover-core/tests/core`).
#![forbid(unsafe_code)]

mod harness;

// Without a cluster.
mod cli;
mod diff;
mod hostile;
mod import;
mod monitoring;

// Against the testbed.
mod apply;
mod approval;
mod audit_anchor;
mod companions;
mod config_files;
mod control;
mod driver;
mod faults;
mod freeze;
mod gates;
mod leader;
mod live_plan;
mod moves;
mod outage;
mod pod_spec;
mod progress;
mod rbac;
mod secrets;
mod signatures;
mod sync;
mod sync_panic;
mod webhook;
