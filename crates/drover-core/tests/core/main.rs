//! drover-core's integration tests, on the pure core alone (no cluster, no git, no
//! binary): reviewed snapshots of rendered YAML and diagnostics, properties of render,
//! placement and plan, and hostile-input regressions. Fixtures are the repository's
//! `fixtures/` and `examples/`. The tests that need the shell or the binary are the
//! root package's `tests/it`.
#![forbid(unsafe_code)]

mod companions;
mod config_files;
mod gates;
mod hostile;
mod order;
mod partition;
mod plan_live;
mod plan_props;
mod pod_spec;
mod render;
mod support;
mod validate;
mod waves;
mod yaml_readers;
