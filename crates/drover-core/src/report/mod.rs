//! Printing a [`Plan`](crate::plan::Plan): human text, JSON and a Markdown PR
//! comment.
//!
//! Owns: the three output formats. Pure functions of the plan and a
//! [`Style`](crate::style::Style); every piece of repository-provided text passes
//! through [`escape_control`](crate::diag::escape_control). Must not: decide
//! what changed (that is [`crate::plan`]) or print.

pub mod json;
pub mod markdown;
pub mod text;

use crate::plan::Plan;
use crate::syntax::format_duration;

/// `abc1234..def5678`, or whichever side is known.
pub(crate) fn revisions(plan: &Plan) -> Option<String> {
    let short = |s: &Option<String>| {
        s.as_deref()
            .map(|c| crate::diag::escape_control(&c[..c.len().min(12)]))
    };
    match (short(&plan.base), short(&plan.head)) {
        (Some(b), Some(h)) => Some(format!("{b}..{h}")),
        (None, Some(h)) => Some(h),
        (Some(b), None) => Some(format!("{b}..")),
        (None, None) => None,
    }
}

/// `~1m30s`.
pub(crate) fn seconds(s: u64) -> String {
    format_duration(std::time::Duration::from_secs(s))
}

/// `3`, or `?` when the plan was made without a node list.
pub(crate) fn count(n: Option<usize>) -> String {
    n.map_or_else(|| "?".to_string(), |n| n.to_string())
}
