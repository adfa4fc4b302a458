//! Regression tests for issue 14's pure-core classes: nothing in a commit can subvert
//! the render, fool the parser, panic the core, slip a placement or rollout mistake
//! past validation, hide from the PR comment, or reach a terminal raw.
//!
//! Each module is one class, tested with variants of its example; no cluster needed.

mod support;

mod companions;
mod fuzz_seeds;
mod one_parse;
mod output;
mod partition_props;
mod placement;
mod pod_template;
mod privileges;
mod verdicts;
