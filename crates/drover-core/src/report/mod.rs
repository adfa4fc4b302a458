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

use crate::diag::escape_control;
use crate::plan::{ActionPlan, Plan};
use crate::syntax::format_duration;

/// Whose a companion object is, for a table: `daemon <name>` or `fleet`.
pub(crate) fn companion_owner(c: &crate::plan::CompanionPlan) -> String {
    match &c.daemon {
        Some(d) => format!("daemon {}", escape_control(d)),
        None => "fleet".to_string(),
    }
}

/// `1 to create, 1 to update, 0 to delete, 3 unchanged` for the companion objects;
/// `None` when the fleet has none.
pub(crate) fn companion_counts(plan: &Plan) -> Option<String> {
    if plan.companions.is_empty() {
        return None;
    }
    let n = |a: crate::plan::Action| plan.companions.iter().filter(|c| c.action == a).count();
    Some(format!(
        "{} to create, {} to update, {} to delete, {} unchanged",
        n(crate::plan::Action::Create),
        n(crate::plan::Action::Update),
        n(crate::plan::Action::Delete),
        n(crate::plan::Action::Unchanged)
    ))
}

/// An action's symbol: terraform's `-/+` for a replacement deleted first, `+/-` for
/// one created first (a move), else the action's own.
pub(crate) fn symbol(a: &ActionPlan) -> &'static str {
    match &a.replaces {
        Some(r) if r.delete_first => "-/+",
        Some(_) => "+/-",
        None => a.action.symbol(),
    }
}

/// The DaemonSet an action is about: `namespace/name` when it is not in the plan's
/// namespace.
pub(crate) fn object_name(a: &ActionPlan) -> String {
    match &a.namespace {
        Some(ns) => escape_control(&format!("{ns}/{}", a.name)),
        None => escape_control(&a.name),
    }
}

/// What a replacing create does, in one sentence (without the symbol and name), or
/// `None` for any other action.
pub(crate) fn replacement_note(a: &ActionPlan) -> Option<String> {
    let r = a.replaces.as_ref()?;
    let of_fleet = match &r.fleet {
        Some(f) => format!(" of fleet {}", escape_control(f)),
        None => String::new(),
    };
    let nodes = match a.nodes {
        Some(n) => format!(" on {n} node(s)"),
        None => String::new(),
    };
    Some(if r.delete_first {
        format!(
            "replaces the live DaemonSet{of_fleet}: {} cannot change in place, so it is deleted first and its pods stop{nodes} at once, then the new one starts",
            escape_control(&r.fields.join(", "))
        )
    } else {
        format!(
            "moves from namespace {}{of_fleet}: the new DaemonSet is created first, then the old one deleted; pods move{nodes}",
            escape_control(&r.namespace)
        )
    })
}

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
