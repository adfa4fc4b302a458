//! The pure core: model, load, validate, render, diff and plan.
//!
//! Nothing in here touches git, the network, the filesystem or the clock; every
//! function is deterministic in its inputs. The shell (the `drover` crate) gathers inputs
//! and carries results out.
#![forbid(unsafe_code)]

pub mod approval;
pub mod audit;
pub mod companion;
pub mod config_diff;
pub mod control;
pub mod diag;
pub mod diff;
pub mod emit;
pub mod errors;
pub mod fleet;
pub mod freeze;
pub mod guard;
pub mod import;
pub mod limits;
pub mod load;
pub mod machine;
pub mod model;
pub mod plan;
pub mod privilege;
pub mod render;
pub mod report;
pub mod rollout;
pub mod selector;
pub mod snapshot;
pub mod status;
pub mod style;
pub mod syntax;
pub mod trail;
pub mod trust;
pub mod validate;
pub mod waves;
pub mod webhook;
pub mod yaml;
pub mod yaml_scalar;
