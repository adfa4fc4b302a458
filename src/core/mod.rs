//! The pure core: model, load, validate, render, diff and plan.
//!
//! Nothing in here touches git, the network, the filesystem or the clock; every
//! function is deterministic in its inputs. The shell (`crate::shell`) gathers inputs
//! and carries results out.

pub mod audit;
pub mod diag;
pub mod diff;
pub mod fleet;
pub mod guard;
pub mod limits;
pub mod load;
pub mod model;
pub mod plan;
pub mod render;
pub mod report;
pub mod rollout;
pub mod selector;
pub mod syntax;
pub mod validate;
pub mod yaml;
